"""train: fit a registered method (a baseline, WSDHQ, WSHRCA, WDHT) for one code length.

The stage builds a :class:`~tagcode.methods.trainset.TrainSet` from the stage outputs (training ids, their
features, the image cache for end-to-end training, and the embed_tags tags and tag vectors); nothing here can
read ground-truth labels. ``method`` is a registered method or a named variant from ``variants`` (a method
with its own options and tag embedding: the ablations, or a method on another tag-vector source), so the
method × bits grid can list variants like methods; the model is saved under that name (``label``). Torch-trained
methods checkpoint into ``checkpoint_dir`` (default ``<out>.ckpt``) and resume from it after a kill; it is
removed once the model is saved. Output: the method's model directory
(config JSON + arrays).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tagcode.errors import TagcodeError
from tagcode.progress import step_progress
from tagcode.tracking import TrackedConfig
from tagcode.tracking.run import LossHistory, tee, write_run_ref


class Variant(BaseModel):
    """A named configuration of a registered method (an ablation, another tag-vector source)."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="the registered method it configures")
    options: dict[str, Any] = Field(default_factory=dict, description="method options, over the stage's options")
    embedding: str | None = Field(None, description="an embed_tags variant (its `variants` name) to train on "
                                                    "instead of the main embedding")


class Config(TrackedConfig):
    """Options of the train stage."""

    method: str = Field("itq", description="registered method name (tagcode methods: lsh, itq, pq, opq, lsq, "
                                           "float, wsdhq, wshrca, wdht)")
    bits: int = Field(32, ge=1, description="code length in bits")
    seed: int = Field(0, ge=0, description="random seed")
    options: dict[str, Any] = Field(default_factory=dict, description="method-specific options (JSON object)")
    variants: dict[str, Variant] = Field(default_factory=dict, description="named method configurations usable "
                                         "as `method` (ablations, other tag vectors): {name: {method, options, "
                                         "embedding}}")
    prepared: str = Field("data/prepared", description="output directory of the prepare stage")
    features: str = Field("data/features", description="output directory of the features stage")
    embed: str | None = Field(None, description="output directory of the embed_tags stage (tags and tag vectors; "
                                                "needed by tag-supervised methods)")
    checkpoint_dir: str | None = Field(None, description="where torch methods keep resumable checkpoints "
                                                         "(None: <out>.ckpt)")
    out: str | None = Field(None, description="model directory to write (None: models/<method>-<bits>)")
    experiment: str = Field("tagcode", description="MLflow experiment of the cell's run (with tracking on)")
    progress: bool | None = Field(None, description="show training steps and loss terms (None: when stderr is a "
                                                    "terminal and CI is not set)")

    @model_validator(mode="after")
    def _out(self) -> Config:
        return self.default_out(f"models/{self.method}-{self.bits}")


def run(cfg: Config, log: Any = None) -> dict[str, Any]:
    """Run the stage; ``log(step, terms)`` receives the per-step loss terms; returns a summary. With tracking
    on, the cell's MLflow run is opened first (a down server is an error before any training), the loss
    terms also go to it, and ``tracking.json`` in the model directory names it."""
    from tagcode.methods import create_method
    from tagcode.methods.trainset import load_trainset

    variant = resolve_variant(cfg)
    method = create_method(variant.method, bits=cfg.bits, seed=cfg.seed, **variant.options)
    method.label = cfg.method
    with contextlib.ExitStack() as stack:
        tracked = None
        if cfg.tracking:
            from tagcode.tracking.run import dataset_name, input_example, train_run

            cell = {"dataset": dataset_name(cfg.prepared), "method": cfg.method, "bits": cfg.bits}
            params = {"train": cfg.model_dump(exclude={"tracking", "experiment"}), "method_options": method.options}
            inputs = {"features": cfg.features, "manifest": Path(cfg.prepared) / "manifest.parquet",
                      **({"embed": cfg.embed} if cfg.embed and method.supervision == "tags" else {})}
            tracked = stack.enter_context(train_run(cfg.experiment, cell, params, inputs))
            log = tee(log, tracked.log)
        train = load_trainset(cfg.prepared, features=cfg.features if method.input == "features" else None,
                              embed=cfg.embed if method.supervision == "tags" else None,
                              embedding=variant.embedding,
                              images=method.input == "images")
        ckpt = cfg.checkpoint_dir or f"{cfg.out.rstrip('/')}.ckpt"
        steps = stack.enter_context(step_progress(f"train {cfg.method} {cfg.bits} bits", enabled=cfg.progress))
        history = LossHistory()
        log = tee(log, steps, history)
        method.fit(train, log=log, checkpoint_dir=Path(ckpt) if method.supervision == "tags" else None)
        method.save(cfg.out)
        history.write(cfg.out)
        shutil.rmtree(ckpt, ignore_errors=True)  # the saved model supersedes the checkpoints
        summary = {"method": cfg.method, "bits": cfg.bits, "train_images": len(train), "out": cfg.out}
        if tracked is not None:
            ref = tracked.log_model(cfg.out, input_example(train))
            write_run_ref(cfg.out, ref)
            summary["run_id"] = ref.run_id
    return summary


def resolve_variant(cfg: Config) -> Variant:
    """The method, options and tag embedding that ``cfg.method`` names (a variant, or a method as is)."""
    if cfg.method not in cfg.variants:
        return Variant(method=cfg.method, options=cfg.options)
    from tagcode.methods import METHODS

    variant = cfg.variants[cfg.method]
    if variant.method not in METHODS and variant.method in cfg.variants:
        raise TagcodeError(f"train variant {cfg.method!r} names another variant ({variant.method!r}); name a method")
    return Variant(method=variant.method, options={**cfg.options, **variant.options}, embedding=variant.embedding)


def format_summary(summary: dict[str, Any]) -> str:
    """A short human summary for the CLI."""
    run = f" (MLflow run {summary['run_id']})" if "run_id" in summary else ""
    return (f"train: {summary['method']} {summary['bits']} bits on {summary['train_images']} training images "
            f"(prepare's: database images with ≥1 tag) → {summary['out']}{run}")
