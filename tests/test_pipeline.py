"""The Kubeflow DAG: golden compile, every stage wired in its image, no install at start, Kubernetes settings
as parameters (resources, GPU only on features and torch-trained cells), retries, parallelism, caching, the
PVC option, the grid shared with dvc.yaml, and params validation before submit/run_local. The kfp.local run
of the whole DAG, compared with dvc repro, is in tests/test_dvc_repro.py."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from pipeline.compile import compile_pipeline
from pipeline.dag import arguments
from pipeline.settings import RESOURCES, ClusterOptions
from pipeline.submit import submit
from tagcode.config import read_grid, read_params
from tagcode.errors import TagcodeError

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "tagcode_pipeline.yaml"
TORCH_GRID = {**read_params(REPO / "params.yaml"),
              "grid": {"binary": {"method": ["itq"], "bits": [16]}, "torch": {"method": ["itq"], "bits": [32],
                                                                             "gpu": True}}}


def _compiled(tmp_path: Path, params: dict | None = None, options: ClusterOptions | None = None) -> list[dict]:
    path = compile_pipeline(str(tmp_path / "p.yaml"), params or read_params(REPO / "params.yaml"), options)
    return list(yaml.safe_load_all(Path(path).read_text()))


def _k8s(platform: dict) -> dict:
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task of the DAG and its sub-DAGs (loops), by task name."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for comp in spec["components"].values():
        tasks.update(comp.get("dag", {}).get("tasks", {}))
    return tasks


def test_compiles_to_the_golden_yaml(tmp_path: Path) -> None:
    """Regenerate with ``UPDATE_GOLDEN=1 pytest tests/test_pipeline.py`` after an intended change."""
    text = Path(compile_pipeline(str(tmp_path / "p.yaml"), read_params(REPO / "params.yaml"))).read_text()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    # Compare the documents, not the text: kfp's header comment formats defaults differently between runs.
    assert list(yaml.safe_load_all(text)) == list(yaml.safe_load_all(GOLDEN.read_text()))


def test_dag_wires_every_stage_in_its_image_installing_nothing(tmp_path: Path) -> None:
    spec, platform = _compiled(tmp_path)
    executors = spec["deploymentSpec"]["executors"]
    images = {name.removeprefix("exec-"): ex["container"]["image"] for name, ex in executors.items()}
    cpu, cuda = "ghcr.io/tagcode/tagcode-cpu:0.1.0", "ghcr.io/tagcode/tagcode-cuda:0.1.0"
    cell = {"train": cuda, "encode": cpu, "merge-codes": cpu, "evaluate": cpu, "promote": cpu}
    assert images == {
        "prepare": "ghcr.io/tagcode/tagcode-data:0.1.0", "clean-tags": cpu, "embed-tags": cpu, "shard-indices": cpu,
        "features": cuda, "merge-features": cpu, "report": cpu, **cell, **{f"{k}-2": v for k, v in cell.items()},
    }  # "-2": the torch-trained cells' loop (the repo grid has gpu families)
    for name, ex in executors.items():
        command = " ".join(ex["container"]["command"])
        assert "pip install" not in command, f"{name} installs packages at start"
    tasks = _tasks(spec)
    loops = [t for t in tasks.values() if "parameterIterator" in t]
    assert len(loops) == 5  # feature shards; baseline cells and torch cells, each with its encode shards
    for items in ("cells", "gpu_cells"):
        cell_loop = next(t for t in loops if t["parameterIterator"]["itemInput"].endswith(f"--{items}-loop-item"))
        assert {name.split("-2")[0] for name in spec["components"][cell_loop["componentRef"]["name"]]["dag"]["tasks"]
                if not name.startswith("for-loop")} == {"train", "merge-codes", "evaluate", "promote"}
    report_inputs = spec["root"]["dag"]["tasks"]["report"]["inputs"]["artifacts"]
    assert set(report_inputs) == {"prepared", "results", "gpu_results", "codes", "gpu_codes"}  # the grid draws codes
    assert all(ex["secretAsEnv"][0]["secretName"] == "tagcode-s3" for ex in _k8s(platform).values())


def test_resources_retries_and_caching_on_every_task(tmp_path: Path) -> None:
    spec, _ = _compiled(tmp_path)
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    for kind, values in RESOURCES.items():
        for field, value in zip(("cpu_request", "cpu_limit", "memory_request", "memory_limit"), values, strict=True):
            assert inputs[f"{kind}_{field}"]["defaultValue"] == value
    for name, ex in spec["deploymentSpec"]["executors"].items():
        resources = ex["container"]["resources"]
        for field in ("resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest", "resourceMemoryLimit"):
            assert re.fullmatch(r"\{\{\$\.inputs\.parameters\['pipelinechannel--\w+'\]\}\}", resources[field]), name
    for name, task in _tasks(spec).items():
        if "componentRef" in task and not name.startswith("for-loop"):
            assert task["retryPolicy"]["maxRetryCount"] == 2, name
            assert task["cachingOptions"].get("enableCache") is True, name


def test_gpu_only_on_features_and_torch_cells(tmp_path: Path) -> None:
    spec, platform = _compiled(tmp_path, TORCH_GRID)
    executors = spec["deploymentSpec"]["executors"]
    gpu = {name for name, ex in executors.items() if "accelerator" in ex["container"]["resources"]}
    assert gpu == {"exec-features", "exec-train-2"}
    assert "tolerations" in _k8s(platform)["exec-train-2"] and "nodeSelector" in _k8s(platform)["exec-train-2"]
    assert "tolerations" not in _k8s(platform)["exec-train"]
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["gpu_type"]["defaultValue"] == "nvidia.com/gpu" and inputs["gpu_count"]["defaultValue"] == 1
    assert inputs["gpu_cells"]["defaultValue"] == [{"bits": 32, "method": "itq"}]
    assert inputs["cells"]["defaultValue"] == [{"bits": 16, "method": "itq"}]


def test_parallelism_caching_off_and_pvc_options(tmp_path: Path) -> None:
    spec, platform = _compiled(tmp_path, options=ClusterOptions(parallelism=3, caching=False, retries=5,
                                                                image_cache_pvc="image-cache"))
    tasks = _tasks(spec)
    cell_loop = next(t for t in tasks.values() if "cells" in t.get("parameterIterator", {}).get("itemInput", ""))
    assert cell_loop["iteratorPolicy"]["parallelismLimit"] == 3
    assert tasks["train"]["retryPolicy"]["maxRetryCount"] == 5
    assert not tasks["train"]["cachingOptions"].get("enableCache")
    mounted = {name for name, ex in _k8s(platform).items() if ex.get("pvcMount")}
    assert mounted == {"exec-prepare", "exec-features", "exec-merge-features"}


def test_grid_is_read_from_params_by_dag_and_dvc_yaml() -> None:
    params = read_params(REPO / "params.yaml")
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for family in read_grid(params):
        for step in ("train", "encode", "evaluate"):
            assert stages[f"{step}_{family}"]["matrix"] == {"method": f"${{grid.{family}.method}}",
                                                           "bits": f"${{grid.{family}.bits}}"}
    matrices = {s["matrix"]["method"].split(".")[1] for s in stages.values() if "matrix" in s}
    assert matrices == set(read_grid(params))
    args = arguments(params)
    assert {(c["method"], c["bits"]) for c in args["cells"] + args["gpu_cells"]} == {
        (m, b) for fam in read_grid(params).values() for m in fam.method for b in fam.bits}


def test_submit_validates_params_before_the_network(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("train:\n  sed: 1\n")
    with pytest.raises(TagcodeError, match=r"params\.yaml: train: unknown key 'sed'"):
        submit("http://127.0.0.1:9", str(bad))
    bad.write_text("grid:\n  binary: {method: [itq]}\n")
    with pytest.raises(TagcodeError, match=r"grid\.binary: bits: Field required"):
        submit("http://127.0.0.1:9", str(bad))


def test_run_local_validates_params(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "params.yaml"
    bad.write_text("features:\n  batch_size: many\n")
    proc = subprocess.run([sys.executable, "-m", "pipeline.run_local", "--params", str(bad), "--root",
                           str(tmp_path / "kfp")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "features: batch_size" in proc.stderr


def test_submit_to_unreachable_host_is_one_line() -> None:
    with pytest.raises(TagcodeError, match=r"http://127\.0\.0\.1:9: cannot submit") as info:
        submit("http://127.0.0.1:9", str(REPO / "params.yaml"))
    assert "\n" not in str(info.value)
