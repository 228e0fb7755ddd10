"""train: fit a registered method (a baseline today; WSDHQ/WSHRCA share the registry) for one code length.

Unsupervised baselines fit on the training images' features; nothing here can read ground-truth
labels (the manifest view has none). Output: the method's model directory (config JSON + arrays).
"""

from __future__ import annotations

import contextlib
import inspect
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from tagcode.data.manifest import read_manifest
from tagcode.errors import TagcodeError
from tagcode.tracking import TrackedConfig


class Config(TrackedConfig):
    """Options of the train stage."""

    method: str = Field("itq", description="registered method name (tagcode methods: lsh, itq, pq, opq, lsq, "
                                           "float)")
    bits: int = Field(32, ge=1, description="code length in bits")
    seed: int = Field(0, description="random seed")
    options: dict[str, Any] = Field(default_factory=dict, description="method-specific options (JSON object)")
    prepared: str = Field("data/prepared", description="output directory of the prepare stage")
    features: str = Field("data/features", description="output directory of the features stage")
    out: str = Field("models/itq-32", description="model directory to write")
    experiment: str = Field("tagcode", description="MLflow experiment of the cell's run (with tracking on)")


def features_for(features_dir: str | Path, *id_sets: np.ndarray) -> list[np.ndarray]:
    """Feature rows for each set of image ids (by id, never by position), from one read of the features;
    an unknown id is a one-line error."""
    from tagcode.backbones.extract import load_features

    ids, x = load_features(features_dir)
    pos = {i: k for k, i in enumerate(ids)}
    out = []
    for image_ids in id_sets:
        missing = [i for i in image_ids if i not in pos]
        if missing:
            raise TagcodeError(f"{features_dir}: no features for {len(missing)} images, e.g. {missing[0]!r}")
        out.append(x[[pos[i] for i in image_ids]])
    return out


def run(cfg: Config) -> dict[str, Any]:
    """Run the stage; returns a summary. With tracking on, the cell's MLflow run is opened (a down server is
    an error) before the features are read, and ``tracking.json`` in the model directory names it."""
    from tagcode.methods import create_method
    manifest = read_manifest(Path(cfg.prepared) / "manifest.parquet")
    train_ids = manifest.ids_of("train")
    if len(train_ids) == 0:
        raise TagcodeError(f"{cfg.prepared}: the split has no training images")
    method = create_method(cfg.method, bits=cfg.bits, seed=cfg.seed, **cfg.options)
    summary: dict[str, Any] = {"method": cfg.method, "bits": cfg.bits, "train_images": len(train_ids),
                               "out": cfg.out}
    with contextlib.ExitStack() as stack:
        tracked = None
        if cfg.tracking:
            from tagcode.tracking.run import dataset_name, train_run

            cell = {"dataset": dataset_name(cfg.prepared), "method": cfg.method, "bits": cfg.bits}
            params = {"train": cfg.model_dump(exclude={"tracking", "experiment"}), "method_options": method.options}
            inputs = {"features": cfg.features, "manifest": Path(cfg.prepared) / "manifest.parquet"}
            tracked = stack.enter_context(train_run(cfg.experiment, cell, params, inputs))
        (x,) = features_for(cfg.features, train_ids)
        if tracked is not None and "log" in inspect.signature(method.fit).parameters:
            method.fit(x, log=tracked.log)
        else:
            method.fit(x)
        method.save(cfg.out)
        if tracked is not None:
            summary["run_id"] = tracked.log_model(cfg.out, x[:2]).run_id
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A short human summary for the CLI."""
    run = f" (MLflow run {summary['run_id']})" if "run_id" in summary else ""
    return (f"train: {summary['method']} {summary['bits']} bits on {summary['train_images']} training images "
            f"→ {summary['out']}{run}")
