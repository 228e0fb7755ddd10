"""Pipeline stages: one module each, with a pydantic ``Config`` and one ``run(cfg)`` function.

The CLI (and so dvc.yaml), the Kubeflow components and the tests all go through :func:`run_stage`
or the module's ``run`` directly; no stage logic lives anywhere else.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from tagcode.config import build_config

STAGES = ("prepare", "clean_tags", "embed_tags", "features", "train", "encode", "evaluate", "promote", "report")


def run_stage(name: str, values: dict[str, Any]) -> str:
    """Validate ``values`` into stage ``name``'s Config, run it, and return its summary as JSON."""
    module = importlib.import_module(f"tagcode.stages.{name}")
    cfg = build_config(module.Config, name, overrides=values)
    return json.dumps(module.run(cfg), default=str, sort_keys=True)
