"""The Kubeflow DAG: golden compile, agreement with dvc.yaml, GPU settings, submit errors, a kfp.local run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from pipeline.compile import compile_pipeline
from pipeline.dag import DEFAULT_CELLS
from pipeline.submit import submit
from tagcode.errors import TagcodeError
from tests.tiny_dataset import build_tiny_dataset, tiny_params

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "tagcode_pipeline.yaml"


def _compiled(tmp_path: Path, gpu: bool = False) -> list[dict]:
    return list(yaml.safe_load_all(Path(compile_pipeline(str(tmp_path / "p.yaml"), gpu=gpu)).read_text()))


def test_compiles_to_the_golden_yaml(tmp_path: Path) -> None:
    """Regenerate with ``UPDATE_GOLDEN=1 pytest tests/test_pipeline.py`` after an intended change."""
    text = Path(compile_pipeline(str(tmp_path / "p.yaml"))).read_text()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    # Compare the documents, not the text: kfp's header comment formats defaults differently between runs.
    assert list(yaml.safe_load_all(text)) == list(yaml.safe_load_all(GOLDEN.read_text()))


def test_dag_wires_every_stage_in_its_image(tmp_path: Path) -> None:
    spec, platform = _compiled(tmp_path)
    executors = spec["deploymentSpec"]["executors"]
    images = {name.removeprefix("exec-"): ex["container"]["image"] for name, ex in executors.items()}
    assert images == {
        "prepare": "ghcr.io/tagcode/tagcode-data:0.1.0", "clean-tags": "ghcr.io/tagcode/tagcode-cpu:0.1.0",
        "embed-tags": "ghcr.io/tagcode/tagcode-cpu:0.1.0", "features": "ghcr.io/tagcode/tagcode-cuda:0.1.0",
        "train": "ghcr.io/tagcode/tagcode-cuda:0.1.0", "encode": "ghcr.io/tagcode/tagcode-cpu:0.1.0",
        "evaluate": "ghcr.io/tagcode/tagcode-cpu:0.1.0", "promote": "ghcr.io/tagcode/tagcode-cpu:0.1.0",
    }
    loop = next(t for t in spec["root"]["dag"]["tasks"].values() if "parameterIterator" in t)
    tasks = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert set(tasks) == {"train", "encode", "evaluate", "promote"}
    secret = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-prepare"]["secretAsEnv"]
    assert secret[0]["secretName"] == "tagcode-s3"


def test_gpu_option_requests_a_gpu_for_training(tmp_path: Path) -> None:
    spec, platform = _compiled(tmp_path, gpu=True)
    resources = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert "tolerations" in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    spec_cpu, _ = _compiled(tmp_path)
    assert "resources" not in spec_cpu["deploymentSpec"]["executors"]["exec-train"]["container"]


def test_default_grid_matches_dvc_matrix() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    dvc_cells = {(m, b) for name in ("train_binary", "train_quantizer", "train_float")
                 for m in stages[name]["matrix"]["method"] for b in stages[name]["matrix"]["bits"]}
    assert dvc_cells == {(c["method"], c["bits"]) for c in DEFAULT_CELLS}


def test_submit_to_unreachable_host_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TagcodeError, match=r"http://127\.0\.0\.1:9: cannot submit") as info:
        submit("http://127.0.0.1:9", str(REPO / "params.yaml"))
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_kfp_local_run_of_the_whole_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.run_local import run_local

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    params = tiny_params(build_tiny_dataset(tmp_path / "dataset"))
    root = run_local(params, tmp_path / "kfp", cells=[{"method": "itq", "bits": 16}, {"method": "pq", "bits": 8}])
    metrics = sorted(root.glob("outputs/**/evaluate/results/metrics.json"))
    assert len(metrics) == 2
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in metrics}
    assert kinds == {"binary", "quantizer"}
