"""Plots are valid PNGs of a sensible size, written atomically."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image

from tagcode.evaluation.plots import plot_map_vs_bits, plot_pr_curves


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_pr_curves_png(tmp_path: Path) -> None:
    out = tmp_path / "plots" / "pr.png"
    plot_pr_curves({"wsdhq": ([1.0, 0.8, 0.5], [0.01, 0.3, 0.9]), "wshrca": ([0.9, 0.4], [0.1, 1.0])}, out)
    width, height = png_size(out)
    assert 300 < width < 1000 and 250 < height < 800 and out.stat().st_size > 10_000
    assert sorted(p.name for p in out.parent.iterdir()) == ["pr.png"]  # no temporary left behind


def test_map_vs_bits_one_panel_per_protocol(tmp_path: Path) -> None:
    panels = {"wsdhq": [("itq", 16, 0.3), ("itq", 32, 0.35), ("lsh", 16, 0.2), ("lsh", 32, 0.25)],
              "wshrca": [("itq", 32, 0.4), ("itq", 16, 0.33)]}
    plot_map_vs_bits(panels, tmp_path / "one.png")
    plot_map_vs_bits({"wsdhq": panels["wsdhq"]}, tmp_path / "two.png")
    wide, single = png_size(tmp_path / "one.png"), png_size(tmp_path / "two.png")
    assert wide[0] > 1.7 * single[0] and abs(wide[1] - single[1]) < 20


def test_empty_inputs_still_draw(tmp_path: Path) -> None:
    plot_pr_curves({}, tmp_path / "pr.png")
    plot_map_vs_bits({"wsdhq": []}, tmp_path / "m.png")
    assert png_size(tmp_path / "pr.png")[0] > 300 and png_size(tmp_path / "m.png")[0] > 300


def test_map_vs_bits_draws_reference_lines(tmp_path: Path) -> None:
    panels = {"wsdhq": [("itq", 16, 0.3), ("itq", 32, 0.35)]}
    plot_map_vs_bits(panels, tmp_path / "plain.png")
    plot_map_vs_bits(panels, tmp_path / "ref.png", references={"wsdhq": {"float (uncompressed)": 0.5}})
    plot_map_vs_bits(panels, tmp_path / "other.png", references={"wshrca": {"float (uncompressed)": 0.5}})
    plain, ref, other = (np.asarray(Image.open(tmp_path / f"{n}.png").convert("L")) for n in ("plain", "ref", "other"))
    assert plain.shape == other.shape and np.array_equal(plain, other)  # a reference for another panel: none here
    assert plain.shape != ref.shape or not np.array_equal(plain, ref)
