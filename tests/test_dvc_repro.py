"""`dvc repro` from a fresh git repository on a tiny dataset; an unchanged second run does nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.tiny_dataset import build_tiny_dataset, tiny_params

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _trimmed_dvc_yaml() -> dict:
    """The repository's dvc.yaml (merge keys resolved) with one method × bits cell per family."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    cells = {"binary": {"method": ["itq"], "bits": [16]}, "quantizer": {"method": ["pq"], "bits": [8]}}
    for name, stage in stages.items():
        family = name.rpartition("_")[2]
        if "matrix" in stage and family in cells:
            stage["matrix"] = cells[family]
    return {"stages": stages}


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_dvc_repro_fresh_repo_then_noop(tmp_path: Path) -> None:
    work = tmp_path / "proj"
    work.mkdir()
    dataset = build_tiny_dataset(tmp_path / "dataset")
    shutil.copytree(REPO / "tagcode", work / "tagcode", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "dvc.yaml").write_text(yaml.safe_dump(_trimmed_dvc_yaml(), sort_keys=False))
    (work / "params.yaml").write_text(yaml.safe_dump(tiny_params(dataset), sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site"), "HOME": str(tmp_path),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    dvc = str(Path(sys.executable).parent / "dvc")
    _run(["git", "init", "-q"], work, env)
    _run([dvc, "init", "-q"], work, env)
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "init"], work, env)

    first = _run([dvc, "repro"], work, env)
    for stage in ("prepare", "clean_tags", "embed_tags", "features", "train_binary@itq-16",
                  "encode_quantizer@pq-8", "evaluate_float@float-32", "report"):
        assert f"Running stage '{stage}'" in first
    assert "prepare: 280 records from folder" in first
    for path in ("data/prepared/manifest.parquet", "data/tags/vocab.parquet", "data/embed/tag_embeddings.npy",
                 "data/features/features.npy", "models/itq-16", "codes/pq-8/index.faiss",
                 "metrics/itq-16/metrics.json", "reports/table.md"):
        assert (work / path).exists(), path
    table = (work / "reports" / "table.md").read_text()
    assert "| itq | binary | 16 |" in table and "| pq | quantizer | 8 |" in table

    # Unchanged: only the dataset listing runs (always, a directory walk); it finds nothing new.
    second = _run([dvc, "repro"], work, env)
    assert second.count("Running stage") == 1 and "Running stage 'dataset_listing'" in second
    assert "didn't change, skipping" in second

    status = _run([dvc, "status"], work, env)
    assert "always changed" in status and "prepare" not in status
    assert not list(tmp_path.glob("proj/mlflow.db"))

    # A changed dataset re-runs prepare; here the manifest comes out the same, so nothing after it runs.
    tags = dataset / "tags.jsonl"
    os.utime(tags, ns=(tags.stat().st_atime_ns, tags.stat().st_mtime_ns + 10**9))
    third = _run([dvc, "repro"], work, env)
    assert "Running stage 'prepare'" in third and "Running stage 'clean_tags'" not in third
