"""`dvc repro` from a fresh git repository on a tiny dataset where methods score differently, with the
repository's own dvc.yaml (the grid comes from params.yaml; stages of families outside the test grid are
left out): an unchanged second run does nothing; the outputs go through an S3 remote (moto over HTTP) and
come back byte-identical; and the Kubeflow DAG run locally (kfp.local, features and encode over 3 shards)
reports the same metric values."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.tiny_dataset import build_tiny_dataset, tiny_params

REPO = Path(__file__).resolve().parents[1]
# Every family of the repository's dvc.yaml, one small cell each; the torch methods as quick variants.
GRID = {"binary": {"method": ["itq"], "bits": [16]}, "quantizer": {"method": ["pq"], "bits": [8]},
        "float": {"method": ["float"], "bits": [32]},
        "wsdhq": {"method": ["wsdhq_quick"], "bits": [8], "gpu": True},
        "wsdhq_ablation": {"method": ["wsdhq_quick_fixed"], "bits": [8], "gpu": True},
        "hashing": {"method": ["wshrca_quick"], "bits": [16], "gpu": True},
        "hashing_ablation": {"method": ["wdht_quick"], "bits": [16], "gpu": True}}
VARIANTS = {"wsdhq_quick": {"method": "wsdhq", "options": {"iterations": 12, "batch_size": 32, "update_period": 4}},
            "wsdhq_quick_fixed": {"method": "wsdhq", "options": {"iterations": 12, "batch_size": 32, "update_period": 4,
                                                                 "fixed_margin": 0.7}},
            "wshrca_quick": {"method": "wshrca", "options": {"epochs": 2, "batch_size": 16}},
            "wdht_quick": {"method": "wdht", "options": {"epochs": 2, "batch_size": 16}}}
CELLS = {("itq", 16), ("pq", 8), ("float", 32), ("wsdhq_quick", 8), ("wsdhq_quick_fixed", 8),
         ("wshrca_quick", 16), ("wdht_quick", 16)}
OUTPUTS = ("data", "models", "codes")
pytestmark = pytest.mark.slow


def _dvc_yaml_for(grid: dict) -> dict:
    """The repository's dvc.yaml (merge keys resolved) without the stages of grid families the test leaves out."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {"stages": {name: stage for name, stage in stages.items()
                       if "matrix" not in stage or stage["matrix"]["method"].split(".")[1] in grid}}


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _tree(root: Path) -> dict[str, bytes]:
    """Every file DVC tracks under the output folders (not the git-tracked .gitignore files)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for d in OUTPUTS for p in sorted((root / d).rglob("*"))
            if p.is_file() and ".partial" not in p.parts and p.name != ".gitignore"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict, dict, str]]:
    """A git + DVC project with the repository's dvc.yaml and tagcode, after one `dvc repro`:
    (project dir, params, environment, output of the first repro)."""
    tmp = tmp_path_factory.mktemp("dvc")
    work = tmp / "proj"
    work.mkdir()
    params = {**tiny_params(build_tiny_dataset(tmp / "dataset", mix=0.9)), "grid": GRID,
              "promote": {"metric": "wsdhq_map_at_5000", "margin": 0.0}}
    # As the demo: cells train and evaluate with tracking off; the one promote stage logs and registers them.
    params["train"] = {**params["train"], "variants": VARIANTS, "tracking": False}
    params["evaluate"] = {**params["evaluate"], "tracking": False}
    shutil.copytree(REPO / "tagcode", work / "tagcode", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "dvc.yaml").write_text(yaml.safe_dump(_dvc_yaml_for(GRID), sort_keys=False))
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp / "dvc-site"), "HOME": str(tmp),
           "PYTHONPATH": str(work), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    dvc = str(Path(sys.executable).parent / "dvc")
    _run(["git", "init", "-q"], work, env)
    _run([dvc, "init", "-q"], work, env)
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "init"], work, env)
    yield work, params, env, _run([dvc, "repro"], work, env)


def test_dvc_repro_fresh_repo_then_noop(project: tuple[Path, dict, dict, str]) -> None:
    work, params, env, first = project
    dvc = str(Path(sys.executable).parent / "dvc")
    for stage in ("prepare", "clean_tags", "embed_tags", "features", "train_binary@itq-16", "encode_quantizer@pq-8",
                  "evaluate_float@float-32", "promote", "report"):
        assert f"Running stage '{stage}'" in first
    assert "prepare: 280 records from folder" in first
    for path in ("data/prepared/manifest.parquet", "data/tags/vocab.parquet", "data/embed/tag_embeddings.npy",
                 "data/features/features.npy", "models/itq-16", "codes/pq-8/index.faiss",
                 "metrics/itq-16/metrics.json", "reports/table.md"):
        assert (work / path).exists(), path
    rows = [r for r in json.loads((work / "reports" / "table.json").read_text())["rows"] if r["method"] != "random"]
    assert {(r["method"], r["bits"]) for r in rows} == CELLS
    assert len({r["wshrca"] for r in rows}) == len(rows) and max(r["wshrca"] for r in rows) < 1.0
    decisions = {p.stem: json.loads(p.read_text()) for p in (work / "promotions").glob("*.json")}
    assert set(decisions) == {f"{m}-{b}" for m, b in CELLS} and all(d["promoted"] for d in decisions.values())

    # Unchanged: only the dataset listing runs (always, a directory walk); it finds nothing new.
    second = _run([dvc, "repro"], work, env)
    assert second.count("Running stage") == 1 and "Running stage 'dataset_listing'" in second
    assert "didn't change, skipping" in second
    status = _run([dvc, "status"], work, env)
    assert "always changed" in status and "prepare" not in status
    assert not list(work.glob("mlflow.db"))

    # A changed dataset re-runs prepare; here the manifest comes out the same, so nothing after it runs.
    tags = Path(params["prepare"]["root"]) / "tags.jsonl"
    os.utime(tags, ns=(tags.stat().st_atime_ns, tags.stat().st_mtime_ns + 10**9))
    third = _run([dvc, "repro"], work, env)
    assert "Running stage 'prepare'" in third and "Running stage 'clean_tags'" not in third


def test_s3_remote_push_and_pull_are_byte_identical(project: tuple[Path, dict, dict, str]) -> None:
    """The README's S3 remote commands against a moto server over HTTP."""
    import boto3
    from moto.server import ThreadedMotoServer

    work, _, env, _ = project
    dvc = str(Path(sys.executable).parent / "dvc")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3_env = {**env, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                  "AWS_DEFAULT_REGION": "us-east-1"}
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                     region_name="us-east-1").create_bucket(Bucket="tagcode-dvc")
        _run([dvc, "remote", "add", "-d", "s3remote", "s3://tagcode-dvc/store"], work, s3_env)
        _run([dvc, "remote", "modify", "s3remote", "endpointurl", endpoint], work, s3_env)
        before = _tree(work)
        assert "data/features/features.npy" in before and "models/itq-16/arrays.safetensors" in before
        assert "pushed" in _run([dvc, "push"], work, s3_env)
        for out in (p for d in OUTPUTS for p in (work / d).iterdir() if p.is_dir()):  # the cached outputs
            shutil.rmtree(out)
        shutil.rmtree(work / ".dvc" / "cache")
        assert "fetched" in _run([dvc, "pull"], work, s3_env)
        assert _tree(work) == before
    finally:
        server.stop()


def test_kfp_local_run_equals_dvc_repro(project: tuple[Path, dict, dict, str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole Kubeflow DAG on the same data and params (3 shards): the same metric values as dvc."""
    from pipeline.run_local import run_local

    work, params, _, _ = project
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    run = run_local(params, tmp_path / "kfp", num_shards=3)
    kfp_rows = json.loads((run / "report" / "tables" / "table.json").read_text())["rows"]
    dvc_rows = json.loads((work / "reports" / "table.json").read_text())["rows"]
    assert kfp_rows == dvc_rows
    grid = "retrieval_grid.png"  # drawn from the merged shards' codes: the same picture as dvc's
    assert (run / "report" / "tables" / grid).read_bytes() == (work / "reports" / grid).read_bytes()
    assert len(list(run.glob("for-loop-*/features/feats"))) == 3
