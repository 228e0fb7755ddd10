"""MLflow tracking on the SQLite default (no server): one run per cell through train → encode → evaluate,
the pyfunc model against `tagcode encode`, the promotion gate, the URI rules and a down server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tagcode.errors import TagcodeError
from tagcode.stages import run_stage
from tests.tiny_dataset import build_tiny_dataset

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                                        "ignore::FutureWarning")


def build_tiny(root: Path) -> tuple[Path, Path]:
    """A prepared tiny dataset and its tiny_cnn features (272 training images, 8 queries)."""
    ds = build_tiny_dataset(root / "ds")
    run_stage("prepare", {"source": "folder", "root": str(ds), "n_query": 8, "image_size": 16,
                          "out": str(root / "prep")})
    run_stage("features", {"prepared": str(root / "prep"), "backbone": "tiny_cnn", "progress": False,
                           "out": str(root / "feats")})
    return root / "prep", root / "feats"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny dataset, prepared once for the module."""
    return build_tiny(tmp_path_factory.mktemp("tiny"))


def run_cell(root: Path, tiny: tuple[Path, Path], method: str, bits: int, seed: int = 0,
             tag: str = "") -> dict[str, Path]:
    """train → encode → evaluate one cell with tracking on; returns its directories."""
    prep, feats = tiny
    cell = f"{method}-{bits}{tag}"
    dirs = {"model": root / "models" / cell, "codes": root / "codes" / cell, "metrics": root / "metrics" / cell}
    run_stage("train", {"method": method, "bits": bits, "seed": seed, "prepared": str(prep), "features": str(feats),
                        "out": str(dirs["model"])})
    run_stage("encode", {"model": str(dirs["model"]), "prepared": str(prep), "features": str(feats),
                         "out": str(dirs["codes"])})
    run_stage("evaluate", {"codes": str(dirs["codes"]), "prepared": str(prep), "out": str(dirs["metrics"])})
    return dirs


def tiny_embed(root: Path, prep: Path) -> Path:
    """clean_tags and embed_tags on the tiny dataset (for the tag-supervised methods); the embed directory."""
    run_stage("clean_tags", {"prepared": str(prep), "min_freq": 2, "out": str(root / "tags")})
    run_stage("embed_tags", {"tags": str(root / "tags"), "eps": 0.05, "out": str(root / "embed")})
    return root / "embed"


def client():
    """An MlflowClient on the test's tracking URI."""
    import mlflow

    return mlflow.MlflowClient()


def test_one_run_per_cell_carries_training_and_evaluation(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    from tagcode.tracking.run import read_run_ref

    dirs = run_cell(tmp_path, tiny, "itq", 16)
    ref = read_run_ref(dirs["model"])
    assert ref is not None and read_run_ref(dirs["codes"]) == ref
    assert (ref.dataset, ref.method, ref.bits) == ("folder", "itq", 16)
    run = client().get_run(ref.run_id)
    assert run.info.run_name == "folder-itq-16" and run.info.status == "FINISHED"
    assert run.data.params["train.method"] == "itq" and run.data.params["train.bits"] == "16"
    tags = run.data.tags
    assert len(tags["mlflow.source.git.commit"]) == 40
    assert tags["md5.features"].endswith(".dir") and len(tags["md5.manifest"]) == 32
    assert tags["machine.device"] == "cpu" and tags["machine.faiss"] and tags["machine.torch"]
    metrics = json.loads((dirs["metrics"] / "metrics.json").read_text())
    for key, value in metrics["scalars"].items():
        assert "@" not in key and run.data.metrics[key] == pytest.approx(value)
    assert run.data.metrics["wsdhq_p_at_10"] == pytest.approx(metrics["protocols"]["wsdhq"]["precision_at"]["10"])
    assert len(tags["tagcode.eval_fingerprint"]) == 64 and tags["eval.protocols"] == '["wsdhq", "wshrca"]'
    artifacts = [a.path for a in client().list_artifacts(ref.run_id, "evaluation")]
    assert artifacts == ["evaluation/pr_curve.png"]
    # the logged model: from code, method directory as artifact, a signature and an input example
    import mlflow

    info = mlflow.models.get_model_info(ref.model_uri)
    assert info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 64)
    assert info.signature.params.to_dict()[0]["name"] == "side" and info.saved_input_example_info
    local = Path(mlflow.artifacts.download_artifacts(ref.model_uri, dst_path=str(tmp_path / "dl")))
    files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    assert "artifacts/itq-16/arrays.safetensors" in files and "artifacts/itq-16/config.json" in files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files
    # the report's mAP-vs-bits plot and table: a run of their own
    run_stage("report", {"metrics": str(tmp_path / "metrics"), "prepared": str(tiny[0]),
                         "out": str(tmp_path / "reports")})
    (report,) = client().search_runs([ref.experiment_id], "tags.`tagcode.kind` = 'report'")
    assert sorted(a.path for a in client().list_artifacts(report.info.run_id)) == \
        ["map_vs_bits.png", "table.json", "table.md"]


def test_loss_terms_arrive_per_step(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    from tagcode.tracking.run import train_run

    with train_run("steps", {"dataset": "folder", "method": "fake", "bits": 8}, {"lr": 0.1},
                   {"manifest": tiny[0] / "manifest.parquet"}) as run:
        for step in range(3):
            run.log(step, {"quantization": 1.0 / (step + 1), "embedding": 2.0 + step})
    history = client().get_metric_history(run.run_id, "train/quantization")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
    assert [m.value for m in client().get_metric_history(run.run_id, "train/embedding")] == [2.0, 3.0, 4.0]
    assert client().get_run(run.run_id).data.params["lr"] == "0.1"


def test_champion_predicts_the_codes_encode_writes(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    import mlflow

    from tagcode.data.features import features_for
    from tagcode.retrieval.codes import load_codes

    feats = tiny[1]
    for method, bits in (("itq", 16), ("pq", 8)):
        dirs = run_cell(tmp_path, tiny, method, bits)
        decision = json.loads(run_stage("promote", {"model": str(dirs["model"]), "metric": "wshrca_map_at_all",
                                                    "out": str(tmp_path / f"{method}.json")}))
        assert decision["promoted"] and decision["name"] == f"tagcode-folder-{method}-{bits}"
        model = mlflow.pyfunc.load_model(f"models:/{decision['name']}@champion")
        database, query = load_codes(dirs["codes"] / "database"), load_codes(dirs["codes"] / "query")
        x_db, x_q = features_for(feats, database.ids, query.ids)
        expected = database.bits if method == "itq" else database.codes
        got = model.predict(x_db)
        assert got.dtype == np.uint8 and np.array_equal(got, expected)
        q_expected = query.bits if method == "itq" else query.codes
        assert np.array_equal(model.predict(x_q, params={"side": "query"}), q_expected)
        if method == "pq":  # the float query an asymmetric (AQD) search takes
            assert np.array_equal(model.predict(x_q, params={"side": "query", "view": "x"}), query.x)


def _set_metric(run_id: str, name: str, value: float) -> None:
    client().log_metric(run_id, name, value, step=1)


def test_gate_moves_the_alias_only_past_the_margin(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    from tagcode.tracking.registry import champions
    from tagcode.tracking.run import read_run_ref

    metric = "wshrca_map_at_all"
    refs = [read_run_ref(run_cell(tmp_path, tiny, "lsh", 16, seed=s, tag=f"s{s}")["model"]) for s in range(3)]
    for ref, value in zip(refs, (0.50, 0.45, 0.52), strict=True):
        _set_metric(ref.run_id, metric, value)

    def promote(i: int, margin: float) -> dict:
        return json.loads(run_stage("promote", {"model": str(tmp_path / "models" / f"lsh-16s{i}"), "metric": metric,
                                                "margin": margin, "out": str(tmp_path / f"p{i}.json")}))

    name = "tagcode-folder-lsh-16"
    assert promote(0, 0.0)["reason"] == "no champion yet"
    c = client()
    before = c.get_model_version_by_alias(name, "champion")
    worse = promote(1, 0.0)
    assert not worse["promoted"] and worse["candidate"] == 0.45 and worse["champion"] == 0.50
    close = promote(2, 0.05)  # +0.02 is not more than the 0.05 margin
    assert not close["promoted"] and close["version"] == "3"
    after = c.get_model_version_by_alias(name, "champion")
    assert (after.version, after.tags) == (before.version, before.tags)  # a failed gate changes nothing
    v2 = c.get_model_version(name, "2").tags
    assert (v2["tagcode.decision"], v2["tagcode.candidate_value"], v2["tagcode.champion_value"]) == \
        ("rejected", "0.45", "0.5")
    better = promote(2, 0.01)  # the same version again, now past the margin: no second registration
    assert better["promoted"] and better["version"] == "3" and better["champion_version"] == "1"
    assert str(c.get_model_version_by_alias(name, "champion").version) == "3"
    assert len(c.search_model_versions(f"name = '{name}'")) == 3
    # a champion measured on other query/database ids is not comparable
    c.set_tag(refs[1].run_id, "tagcode.eval_fingerprint", "0" * 64)
    _set_metric(refs[1].run_id, metric, 0.9)
    other = promote(1, 0.0)
    assert not other["promoted"] and "another query/database set" in other["reason"]
    assert [(r["name"], r["version"], r["value"]) for r in champions(c)] == [(name, "3", 0.52)]


def test_tracking_uri_defaults_to_the_project_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tagcode.tracking.backend import artifact_root, tracking_uri

    (tmp_path / "proj" / "sub").mkdir(parents=True)
    (tmp_path / "proj" / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path / "proj" / "sub")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking_uri() == f"sqlite:///{tmp_path / 'proj' / 'mlflow.db'}"
    assert artifact_root(tracking_uri()) == (tmp_path / "proj" / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000" and artifact_root(tracking_uri()) is None


def test_tracking_off_writes_no_run(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    prep, feats = tiny
    summary = json.loads(run_stage("train", {"method": "lsh", "bits": 8, "tracking": False, "prepared": str(prep),
                                             "features": str(feats), "out": str(tmp_path / "m")}))
    assert "run_id" not in summary and sorted(p.name for p in (tmp_path / "m").iterdir()) == \
        ["arrays.safetensors", "config.json"]
    assert not (tmp_path / "mlflow.db").exists()
    with pytest.raises(TagcodeError, match=r"no metrics for model .*\(run `tagcode evaluate` first\)"):
        run_stage("promote", {"model": str(tmp_path / "m"), "metrics": str(tmp_path / "none"),
                              "prepared": str(prep), "features": str(feats), "out": str(tmp_path / "p.json")})


def test_untracked_grid_is_logged_and_promoted_in_one_stage(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    """The demo's way: cells trained and evaluated with tracking off, then one promote over the models
    directory logs each as a finished run (loss curve, model, metrics) and makes it champion; promoting
    again reuses the runs and versions."""
    from tagcode.tracking.registry import champions
    from tagcode.tracking.run import LOSSES_FILE, read_losses

    prep, feats = tiny
    cells = {"lsh-16": {"method": "lsh", "bits": 16}, "wdht-16": {"method": "wdht", "bits": 16,
                                                                  "options": {"epochs": 2}}}
    embed = tiny_embed(tmp_path, prep)
    for cell, values in cells.items():
        run_stage("train", {**values, "tracking": False, "prepared": str(prep), "features": str(feats),
                            "embed": str(embed), "out": str(tmp_path / "models" / cell)})
        run_stage("encode", {"model": str(tmp_path / "models" / cell), "prepared": str(prep),
                             "features": str(feats), "out": str(tmp_path / "codes" / cell)})
        run_stage("evaluate", {"codes": str(tmp_path / "codes" / cell), "prepared": str(prep), "tracking": False,
                               "out": str(tmp_path / "metrics" / cell)})
    assert not (tmp_path / "models" / "lsh-16" / LOSSES_FILE).exists()
    steps = read_losses(tmp_path / "models" / "wdht-16")
    assert steps and {"loss", "pairwise", "hinge"} <= set(steps[0][1])

    def promote() -> dict:
        return json.loads(run_stage("promote", {"model": str(tmp_path / "models"), "metrics": str(tmp_path / "metrics"),
                                                "prepared": str(prep), "features": str(feats),
                                                "metric": "wshrca_map_at_all", "out": str(tmp_path / "promotions")}))

    first = promote()["decisions"]
    assert [d["promoted"] for d in first] == [True, True]
    assert sorted(p.name for p in (tmp_path / "promotions").iterdir()) == ["lsh-16.json", "wdht-16.json"]
    c = client()
    rows = champions(c)
    assert [r["name"] for r in rows] == ["tagcode-folder-lsh-16", "tagcode-folder-wdht-16"]
    for row, cell in zip(rows, cells, strict=True):
        metrics = json.loads((tmp_path / "metrics" / cell / "metrics.json").read_text())
        assert row["value"] == pytest.approx(metrics["scalars"]["wshrca_map_at_all"])
        run = c.get_run(row["run_id"])
        assert run.info.status == "FINISHED" and run.data.params["train.method"] == cells[cell]["method"]
        assert len(run.data.tags["tagcode.eval_fingerprint"]) == 64
    curve = c.get_metric_history(rows[1]["run_id"], "train/loss")
    assert [m.step for m in curve] == [s for s, _ in steps]
    assert not (tmp_path / "models" / "lsh-16" / "tracking.json").exists()  # DVC outputs of train stay as they were
    again = promote()["decisions"]
    assert [(d["run_id"], d["version"], d["reason"]) for d in again] == \
        [(d["run_id"], d["version"], "already champion") for d in first]


def test_a_down_server_is_one_line_before_training(tmp_path: Path, tiny: tuple[Path, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prep, feats = tiny

    def no_training(*_a, **_k):
        raise AssertionError("features were read although the tracking server is down")

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setattr("tagcode.methods.trainset.load_trainset", no_training)
    with pytest.raises(TagcodeError, match=f"MLflow server http://127.0.0.1:{port} is unreachable"):
        run_stage("train", {"method": "itq", "bits": 16, "prepared": str(prep), "features": str(feats),
                            "out": str(tmp_path / "m")})
    assert not (tmp_path / "m").exists()
    proc = subprocess.run([sys.executable, "-m", "tagcode", "train", "--method", "itq", "--bits", "16",
                           "--prepared", str(prep), "--features", str(feats), "--out", str(tmp_path / "m")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"tagcode: error: MLflow server http://127.0.0.1:{port} is unreachable")
