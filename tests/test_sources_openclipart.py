"""OpenClipArt source: counts on the installed Debian packages (data notes §3.3–3.4) and a synthetic tree
with file and directory symlinks, a cycle, bad SVGs and missing PNGs."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest
from PIL import Image

from tagcode.data.sources import load_source
from tagcode.data.sources.openclipart import blocked_names, parse_svg_metadata
from tagcode.errors import TagcodeError

OPENCLIPART = Path("/usr/share/openclipart")
installed = pytest.mark.skipif(not (OPENCLIPART / "svg").is_dir(),
                               reason="Debian openclipart-svg/openclipart-png not installed")


@installed
def test_content_subset_matches_the_data_notes() -> None:
    start = time.perf_counter()
    src = load_source("openclipart", str(OPENCLIPART))
    seconds = time.perf_counter() - start
    r = src.records
    assert len(r) == 3471 and len(src.label_names) == 53 and src.skipped == []
    assert r["labels"].map(len).mean() == pytest.approx(1.094, abs=0.001)
    assert r["labels"].map(len).min() == 1 and r["image_id"].is_unique
    assert set(src.label_names) == {x for v in r["labels"] for x in v}
    assert not any(i.split("/")[0] in {"computer", "shapes", "unsorted", "special", "buttons", "logos"}
                   for i in r["image_id"])
    assert r["image_uri"].map(lambda p: Path(p).is_file() and p.endswith(".png")).all()
    assert {"animals", "birds", "breads_and_carbs", "breads and carbs"} <= set(src.blocked_tags)
    assert "animals/birds" in src.label_names and "computer" not in src.blocked_tags
    assert seconds < 10, f"parsing the content subset took {seconds:.1f} s"


@installed
def test_all_images_and_tag_statistics() -> None:
    r = load_source("openclipart", str(OPENCLIPART), subset="all").records
    tags = collections.Counter(t for ts in r["tags"] for t in ts)
    assert len(r) == 7458 and len(tags) == 2074
    assert r["tags"].map(len).mean() == pytest.approx(3.72, abs=0.01)
    assert (r["tags"].map(len) == 0).sum() == 118
    assert all(t == t.strip().lower() and t for t in tags)
    titled = load_source("openclipart", str(OPENCLIPART), subset="all", title_words=True).records
    assert (titled["tags"].map(len) >= r["tags"].map(len)).all()
    assert titled["tags"].map(len).sum() > r["tags"].map(len).sum() + 7000


def _svg(title: bytes, *tags: bytes) -> bytes:
    items = b"".join(b"<rdf:li>" + t + b"</rdf:li>" for t in tags)
    return (b'<svg><metadata><rdf:RDF><cc:Work><dc:title>' + title + b"</dc:title><dc:subject><rdf:Bag>" + items
            + b"</rdf:Bag></dc:subject><dc:publisher><cc:Agent><dc:title>Open Clip Art Library</dc:title>"
            b"</cc:Agent></dc:publisher></cc:Work></rdf:RDF></metadata></svg>")


def _tree(root: Path) -> Path:
    """svg/ + png/ with: a file symlink, a directory symlink, a cycle, a broken link, bad and missing files."""
    svg = root / "svg"
    files = {
        "animals/birds/owl.svg": _svg(b"Night Owl", b" Owl ", b"bird", b"rock &amp; roll", b"bird"),
        "animals/birds/crow.svg": _svg(b"Crow", b"crow"),
        "animals/birds/parrots/macaw.svg": _svg(b"Macaw", b"parrot"),
        "animals/cats/lion.svg": _svg(b"Lion", b"cat"),
        "nature/plain.svg": b"<svg>no metadata</svg>",
        "nature/latin1.svg": _svg(b"Caf\xe9", b"caf\xe9", b"ok"),
        "computer/icons/mouse.svg": _svg(b"Mouse", b"mouse"),
        "people/nopng.svg": _svg(b"x", b"x"),
    }
    for rel, data in files.items():
        (svg / rel).parent.mkdir(parents=True, exist_ok=True)
        (svg / rel).write_bytes(data)
        if rel != "people/nopng.svg":
            (root / "png" / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4)).save((root / "png" / rel).with_suffix(".png"))
    (svg / "nature" / "owl.svg").symlink_to(svg / "animals" / "birds" / "owl.svg")
    (svg / "computer" / "icons" / "crow.svg").symlink_to(svg / "animals" / "birds" / "crow.svg")
    (svg / "nature" / "wild_cats").symlink_to(svg / "animals" / "cats", target_is_directory=True)
    (svg / "animals" / "cats" / "loop").symlink_to(svg / "animals", target_is_directory=True)
    (svg / "nature" / "gone.svg").symlink_to(svg / "nowhere.svg")
    (svg / "top.svg").write_bytes(_svg(b"t", b"t"))
    return root


def test_synthetic_tree_symlinks_and_bad_files(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    src = load_source("openclipart", str(root), subset="all", min_label_images=1, title_words=True)
    rows = src.records.set_index("image_id")
    assert rows.index.tolist() == ["animals/birds/crow", "animals/birds/owl", "animals/birds/parrots/macaw",
                                   "animals/cats/lion", "computer/icons/mouse", "nature/latin1", "nature/plain"]
    assert rows.loc["animals/birds/owl", "labels"] == ["animals/birds", "nature"]
    assert rows.loc["animals/birds/owl", "tags"] == ["owl", "bird", "rock & roll", "night"]
    assert rows.loc["animals/birds/owl", "image_uri"] == str(root / "png" / "animals" / "birds" / "owl.png")
    assert rows.loc["animals/birds/crow", "labels"] == ["animals/birds", "computer/icons"]
    assert rows.loc["animals/cats/lion", "labels"] == ["animals/cats", "nature/wild_cats"]
    assert rows.loc["animals/birds/parrots/macaw", "labels"] == ["animals/birds"]
    assert rows.loc["nature/plain", "tags"] == [] and rows.loc["nature/plain", "labels"] == ["nature"]
    assert rows.loc["nature/latin1", "tags"] == ["caf\ufffd", "ok", "caf"]  # title word split at U+FFFD
    assert sorted(src.skipped) == [
        ("nature/gone.svg", "broken symlink"),
        ("people/nopng.svg", "no matching PNG"),
        ("top.svg", "not in a category directory"),
    ]
    assert src.notes == [("nature/latin1.svg", "metadata not UTF-8; decoded with replacement characters")]
    assert {"wild_cats", "wild cats", "icons", "nature"} <= set(src.blocked_tags)


def test_content_subset_and_label_threshold(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    src = load_source("openclipart", str(root))
    rows = src.records.set_index("image_id")
    assert "animals/birds/crow" not in rows.index and "computer/icons/mouse" not in rows.index
    assert rows.loc["animals/birds/owl", "labels"] == ["animals", "nature"]  # depth-2 paths below 15 images
    assert src.label_names == ["animals", "nature"]
    assert src.blocked_tags == ["animals", "nature"]
    two = load_source("openclipart", str(root), min_label_images=2).records.set_index("image_id")
    assert two.loc["animals/birds/owl", "labels"] == ["animals/birds", "nature"]
    assert two.loc["animals/cats/lion", "labels"] == ["animals", "nature"]


def test_bad_options_and_roots(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    for options, message in [({"subset": "most"}, "option 'subset' must be one of"),
                             ({"subsett": "all"}, r"unknown option\(s\) \['subsett'\]; accepted: \['subset'"),
                             ({"title_words": "yes"}, "option 'title_words' must be bool, got str"),
                             ({"min_label_images": 0}, "option 'min_label_images' must be ≥ 1")]:
        with pytest.raises(TagcodeError, match=message):
            load_source("openclipart", str(root), **options)
    with pytest.raises(TagcodeError, match="svg: not found"):
        load_source("openclipart", str(tmp_path / "nothing"))
    with pytest.raises(TagcodeError, match="reads the local Debian packages"):
        load_source("openclipart", "s3://bucket/openclipart")


def test_metadata_parser_and_blocked_names() -> None:
    tags, title, ok = parse_svg_metadata(_svg(b"A &lt;Big&gt; Title", b"  Sky ", b"", b"sea"))
    assert (tags, title, ok) == (["sky", "sea"], "A <Big> Title", True)
    assert parse_svg_metadata(b"<svg/>") == ([], "", True)
    assert blocked_names(["signs_and_symbols/aiga-symbols"]) == [
        "aiga symbols", "aiga-symbols", "signs and symbols", "signs_and_symbols"]
