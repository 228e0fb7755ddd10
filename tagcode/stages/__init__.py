"""Pipeline stages: one module each, with a pydantic ``Config`` and one ``run(cfg)`` function.

The CLI (and so dvc.yaml), the Kubeflow components and the tests all go through :func:`run_stage`
or :func:`execute`; no stage logic lives anywhere else.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import types
from pathlib import Path
from typing import Any

from tagcode.config import StageConfig, build_config, check_params_file, read_params
from tagcode.io import atomic_path, fetch, is_s3

STAGES = ("prepare", "clean_tags", "embed_tags", "features", "train", "encode", "evaluate", "promote", "report")
# Config fields naming another stage's output (or a user file) that a stage reads; "out" is what it writes.
INPUT_FIELDS = ("prepared", "tags", "embed", "features", "model", "codes", "metrics", "weights", "vectors")


def execute(module: types.ModuleType, cfg: StageConfig) -> dict[str, Any]:
    """Run ``module.run(cfg)`` with ``s3://`` inputs fetched to a local cache and an ``s3://`` ``out``
    staged locally and published on success, so every stage reads and writes S3 the same way."""
    updates = {name: str(fetch(value)) for name in INPUT_FIELDS
               if isinstance(value := getattr(cfg, name, None), str) and is_s3(value)}
    out = getattr(cfg, "out", None)
    with contextlib.ExitStack() as stack:
        if isinstance(out, str) and is_s3(out):
            updates["out"] = str(stack.enter_context(atomic_path(out)))
        summary = module.run(cfg.model_copy(update=updates) if updates else cfg)
    if isinstance(summary, dict) and "out" in updates and summary.get("out") == updates["out"]:
        summary = {**summary, "out": out}
    return summary


def run_stage(name: str, values: dict[str, Any]) -> str:
    """Validate ``values`` into stage ``name``'s Config, run it, and return its summary as JSON."""
    module = importlib.import_module(f"tagcode.stages.{name}")
    cfg = build_config(module.Config, name, overrides=values)
    return json.dumps(execute(module, cfg), default=str, sort_keys=True)


def load_params(path: str | Path) -> dict[str, Any]:
    """Read a params file after validating every section and the grid (``tagcode check-params``'s
    one-line errors), so a typo never reaches a pod."""
    check_params_file(path, {s: importlib.import_module(f"tagcode.stages.{s}").Config for s in STAGES})
    return read_params(path)
