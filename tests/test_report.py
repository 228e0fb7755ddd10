"""report refuses cells measured on other data and names them; the random-ranking mAP is a table row and a
plot line; `tagcode show` prints only what belongs to the current run and says what is missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tagcode.cli import show_lines
from tagcode.errors import TagcodeError
from tagcode.stages import run_stage
from tests.tiny_dataset import build_tiny_dataset


def _prepare(ds: Path, out: Path, seed: int) -> None:
    run_stage("prepare", {"source": "folder", "root": str(ds), "n_query": 8, "seed": seed, "image_size": 16,
                          "out": str(out)})


def _cell(root: Path, method: str, bits: int) -> None:
    """train, encode and evaluate one cell on ``root/data``."""
    prepared, feats = str(root / "data" / "prepared"), str(root / "data" / "features")
    name = f"{method}-{bits}"
    # tracking off: the module fixture runs before conftest points MLflow at a temporary store
    run_stage("train", {"method": method, "bits": bits, "prepared": prepared, "features": feats, "tracking": False,
                        "out": str(root / "models" / name)})
    run_stage("encode", {"model": str(root / "models" / name), "prepared": prepared, "features": feats,
                         "out": str(root / "codes" / name)})
    run_stage("evaluate", {"codes": str(root / "codes" / name), "prepared": prepared, "protocols": ["wshrca", "at100"],
                           "p_at": [5], "tracking": False, "out": str(root / "metrics" / name)})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    ds = build_tiny_dataset(root / "ds", n_per_class=12)
    _prepare(ds, root / "data" / "prepared", seed=0)
    run_stage("features", {"prepared": str(root / "data" / "prepared"), "backbone": "tiny_cnn", "batch_size": 16,
                           "progress": False, "out": str(root / "data" / "features")})
    for method, bits in (("lsh", 16), ("float", 32)):
        _cell(root, method, bits)
    return root


def test_table_has_the_random_ranking_row(project: Path, tmp_path: Path) -> None:
    summary = json.loads(run_stage("report", {"metrics": str(project / "metrics"),
                                              "prepared": str(project / "data" / "prepared"),
                                              "out": str(tmp_path / "reports")}))
    rows = {r["method"]: r for r in summary["rows"]}
    metrics = json.loads((project / "metrics" / "lsh-16" / "metrics.json").read_text())
    assert rows["random"]["kind"] == "reference"
    assert rows["random"]["wshrca"] == metrics["protocols"]["wshrca"]["random_map"]
    assert 0 < rows["random"]["wshrca"] < rows["float"]["wshrca"]
    assert "| random | reference | – |" in (tmp_path / "reports" / "table.md").read_text()
    assert (tmp_path / "reports" / "map_vs_bits.png").stat().st_size > 0


def test_cells_from_other_data_are_refused_by_name(project: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(project, work, ignore=shutil.ignore_patterns("ds"))
    _prepare(project / "ds", work / "data" / "prepared", seed=1)  # new split: new query ids
    _cell(work, "lsh", 16)  # re-run one cell; float-32 keeps its old metrics
    with pytest.raises(TagcodeError, match=r"1 of 2 cells were evaluated on other data than .*: float-32 ") as info:
        run_stage("report", {"metrics": str(work / "metrics"), "prepared": str(work / "data" / "prepared"),
                             "out": str(tmp_path / "reports")})
    assert "\n" not in str(info.value)
    with pytest.raises(TagcodeError, match=r"1 of 2 cells were evaluated on other data"):  # cells disagree
        run_stage("report", {"metrics": str(work / "metrics"), "prepared": None, "out": str(tmp_path / "r2")})
    (work / "metrics" / "lsh-16" / "metrics.json").unlink()
    shutil.rmtree(work / "metrics" / "lsh-16")
    with pytest.raises(TagcodeError, match=r"1 of 1 cells .*: float-32 "):  # all stale: still refused
        run_stage("report", {"metrics": str(work / "metrics"), "prepared": str(work / "data" / "prepared"),
                             "out": str(tmp_path / "r3")})


def test_show_prints_only_the_current_run(project: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(project, work, ignore=shutil.ignore_patterns("ds"))
    assert show_lines(work / "nothing") == [f"prepare: missing ({work / 'nothing' / 'data/prepared/report.json'} "
                                            "not found; run `dvc repro` or `tagcode prepare`)"]
    run_stage("report", {"metrics": str(work / "metrics"), "prepared": str(work / "data" / "prepared"),
                         "out": str(work / "reports")})
    run_stage("clean_tags", {"prepared": str(work / "data" / "prepared"), "min_freq": 1,
                             "out": str(work / "data" / "tags")})
    lines = show_lines(work)
    assert lines[0].startswith("prepare: ") and lines[1].startswith("clean_tags: ")
    assert lines[2].startswith("embed_tags: missing") and "| random | reference |" in lines[-1]
    grid = {"grid": {"binary": {"method": ["lsh"], "bits": [16, 32]}, "float": {"method": ["float"], "bits": [32]}}}
    (work / "params.yaml").write_text(yaml.safe_dump(grid))
    assert show_lines(work)[-1] == ("report: 1 of 3 cells of the grid are missing from the table: lsh-32 "
                                    "(run `dvc repro`)")
    grid["grid"]["binary"]["bits"] = [16]
    (work / "params.yaml").write_text(yaml.safe_dump(grid))
    assert "| random | reference |" in show_lines(work)[-1]  # every cell is in
    _prepare(project / "ds", work / "data" / "prepared", seed=1)
    lines = show_lines(work)
    assert lines[1].startswith("clean_tags: stale") and lines[2].startswith("embed_tags: missing")
    assert lines[-1].startswith("report: stale") and not any("| lsh |" in ln for ln in lines)
