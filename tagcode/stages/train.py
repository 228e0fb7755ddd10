"""train: fit a registered method (a baseline, WSDHQ, WSHRCA, WDHT) for one code length.

The stage builds a :class:`~tagcode.methods.trainset.TrainSet` from the stage outputs (training ids, their
features, the image cache for end-to-end training, and the embed_tags tags and tag vectors); nothing here can
read ground-truth labels. Torch-trained methods checkpoint into ``checkpoint_dir`` (default ``<out>.ckpt``)
and resume from it after a kill; it is removed once the model is saved. Output: the method's model directory
(config JSON + arrays).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import Field

from tagcode.config import StageConfig


class Config(StageConfig):
    """Options of the train stage."""

    method: str = Field("itq", description="registered method name (tagcode methods: lsh, itq, pq, opq, lsq, "
                                           "float, wsdhq, wshrca, wdht)")
    bits: int = Field(32, ge=1, description="code length in bits")
    seed: int = Field(0, description="random seed")
    options: dict[str, Any] = Field(default_factory=dict, description="method-specific options (JSON object)")
    prepared: str = Field("data/prepared", description="output directory of the prepare stage")
    features: str = Field("data/features", description="output directory of the features stage")
    embed: str | None = Field(None, description="output directory of the embed_tags stage (tags and tag vectors; "
                                                "needed by tag-supervised methods)")
    checkpoint_dir: str | None = Field(None, description="where torch methods keep resumable checkpoints "
                                                         "(None: <out>.ckpt)")
    out: str = Field("models/itq-32", description="model directory to write")


def run(cfg: Config, log: Any = None) -> dict[str, Any]:
    """Run the stage; ``log(step, terms)`` receives the per-step loss terms; returns a summary."""
    from tagcode.methods import create_method
    from tagcode.methods.trainset import load_trainset

    method = create_method(cfg.method, bits=cfg.bits, seed=cfg.seed, **cfg.options)
    train = load_trainset(cfg.prepared, features=cfg.features if method.input == "features" else None,
                          embed=cfg.embed if method.supervision == "tags" else None,
                          images=method.input == "images")
    ckpt = cfg.checkpoint_dir or f"{cfg.out.rstrip('/')}.ckpt"
    method.fit(train, log=log, checkpoint_dir=Path(ckpt) if method.supervision == "tags" else None)
    method.save(cfg.out)
    shutil.rmtree(ckpt, ignore_errors=True)  # the saved model supersedes the checkpoints
    return {"method": cfg.method, "bits": cfg.bits, "train_images": len(train), "out": cfg.out}


def format_summary(summary: dict[str, Any]) -> str:
    """A short human summary for the CLI."""
    return (f"train: {summary['method']} {summary['bits']} bits on {summary['train_images']} training images "
            f"→ {summary['out']}")
