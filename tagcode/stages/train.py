"""train: fit a registered method (a baseline today; WSDHQ/WSHRCA share the registry) for one code length.

Unsupervised baselines fit on the training images' features; nothing here can read ground-truth
labels (the manifest view has none). Output: the method's model directory (config JSON + arrays).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from tagcode.config import StageConfig
from tagcode.data.manifest import read_manifest
from tagcode.errors import TagcodeError


class Config(StageConfig):
    """Options of the train stage."""

    method: str = Field("itq", description="registered method name (tagcode methods: lsh, itq, pq, opq, lsq, "
                                           "float)")
    bits: int = Field(32, ge=1, description="code length in bits")
    seed: int = Field(0, ge=0, description="random seed")
    options: dict[str, Any] = Field(default_factory=dict, description="method-specific options (JSON object)")
    prepared: str = Field("data/prepared", description="output directory of the prepare stage")
    features: str = Field("data/features", description="output directory of the features stage")
    out: str = Field("models/itq-32", description="model directory to write")


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
    """Run the stage; returns a summary."""
    from tagcode.methods import create_method
    manifest = read_manifest(Path(cfg.prepared) / "manifest.parquet")
    train_ids = manifest.ids_of("train")
    if len(train_ids) == 0:
        raise TagcodeError(f"{cfg.prepared}: the split has no training images")
    method = create_method(cfg.method, bits=cfg.bits, seed=cfg.seed, **cfg.options)
    (x,) = features_for(cfg.features, train_ids)
    method.fit(x)
    method.save(cfg.out)
    return {"method": cfg.method, "bits": cfg.bits, "train_images": len(train_ids), "out": cfg.out}


def format_summary(summary: dict[str, Any]) -> str:
    """A short human summary for the CLI."""
    return (f"train: {summary['method']} {summary['bits']} bits on {summary['train_images']} training images "
            f"(prepare's: database images with ≥1 tag) → {summary['out']}")
