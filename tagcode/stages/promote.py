"""promote: register trained models and move each one's ``champion`` alias only past the metric gate.

``model`` is one model directory or a directory of them (the DVC pipeline promotes the whole grid in one
process). A model trained with tracking on names its MLflow run in ``tracking.json``; one trained with
tracking off is first logged as a finished run from its record on disk (params, loss curves, the model, and
``<metrics>/<name>/metrics.json`` with the PR curve), so MLflow is imported once for the grid rather than in
every train and evaluate process. The registered model is ``tagcode-<dataset>-<method>-<bits>``. The
candidate becomes champion when there is none, or when on the same query/database ids its ``metric`` beats
the champion's by more than ``margin``; otherwise nothing but the candidate version's decision tags
changes. Output: the decision as JSON, ``out`` for one model, ``out/<name>.json`` each for a directory.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from tagcode.errors import TagcodeError
from tagcode.io import write_json
from tagcode.tracking import TrackedConfig

MODEL_FILE = "config.json"  # what every saved method directory holds


class Config(TrackedConfig):
    """Options of the promote stage."""

    model: str = Field("models", description="a model directory written by the train stage, or a directory of "
                                             "them (every subdirectory holding a model, in name order)")
    metrics: str = Field("metrics", description="evaluate's output: <metrics>/<model name>/metrics.json (or "
                                                "<metrics>/metrics.json for one model), read to log a model "
                                                "trained with tracking off")
    prepared: str = Field("data/prepared", description="output directory of the prepare stage (dataset name)")
    features: str = Field("data/features", description="output directory of the features stage (input example)")
    metric: str = Field("wsdhq_map_at_5000", description="primary metric (an evaluate metric name, higher is better)")
    margin: float = Field(0.0, ge=0.0, description="the candidate must beat the champion by more than this")
    experiment: str = Field("tagcode", description="MLflow experiment of runs logged for untracked models")
    out: str | None = Field(None, description="decision file for one model (None: promotions/<its name>.json); "
                                              "for a directory of models, the folder of <name>.json files "
                                              "(None: promotions)")

    @model_validator(mode="after")
    def _out(self) -> Config:
        name = Path(self.model).name
        return self.default_out(f"promotions/{name}.json" if is_model(self.model) else "promotions")


def is_model(path: str | Path) -> bool:
    """Whether ``path`` is one saved model directory (rather than a directory of them)."""
    return (Path(path) / MODEL_FILE).is_file()


def model_dirs(path: str | Path) -> list[Path]:
    """``path`` when it holds a saved model, else its subdirectories that do (one-line error when none)."""
    p = Path(path)
    if is_model(p):
        return [p]
    found = sorted(d for d in p.iterdir() if is_model(d)) if p.is_dir() else []
    if not found:
        raise TagcodeError(f"{p}: no trained model here or in its subdirectories (run `tagcode train` first)")
    return found


def run(cfg: Config) -> dict[str, Any]:
    """Run the stage; returns the decision (one model) or ``{"decisions": [...]}``, also written to ``out``."""

    @functools.cache
    def example(images: bool) -> np.ndarray:
        """Two inputs for the input example of the models logged here, read once for the whole grid."""
        from tagcode.data.cache import ImageCache
        from tagcode.data.features import read_features

        if images:
            return ImageCache(Path(cfg.prepared) / "images").get(slice(0, 2))
        return read_features(cfg.features)[1][:2]

    single = is_model(cfg.model)
    decisions = [promote_one(cfg, d, example, skip_unevaluated=not single) for d in model_dirs(cfg.model)]
    if single:
        write_json(cfg.out, decisions[0])
        return decisions[0]
    for d in decisions:
        write_json(Path(cfg.out) / f"{Path(d['model']).name}.json", d)
    return {"decisions": decisions, "out": cfg.out}


def promote_one(cfg: Config, model_dir: Path, example: Callable[[bool], np.ndarray],
                skip_unevaluated: bool = False) -> dict[str, Any]:
    """Promote one model: its own run, or one logged now from its record (``example(images)``: the input
    example); the decision as a dict. With ``skip_unevaluated`` (a directory of models), an untracked model
    without metrics is a reported skip."""
    if not cfg.tracking:
        return {"promoted": False, "reason": "tracking is off: no registry to promote in", "model": str(model_dir)}
    from tagcode.tracking.backend import connect, mlflow_errors, probe
    from tagcode.tracking.registry import promote
    from tagcode.tracking.run import read_run_ref

    ref = read_run_ref(model_dir)
    metrics = _metrics_dir(cfg, model_dir)
    if ref is None and skip_unevaluated and not (metrics / "metrics.json").is_file():
        return {"promoted": False, "reason": f"not evaluated (no {metrics / 'metrics.json'})",
                "model": str(model_dir)}
    ref = ref or log_untracked(cfg, model_dir, metrics, example)
    probe(ref.tracking_uri)
    client, _ = connect(ref.tracking_uri)
    with mlflow_errors(ref.tracking_uri):
        decision = promote(client, ref, cfg.metric, cfg.margin).as_dict()
    return {**decision, "run_id": ref.run_id, "model": str(model_dir)}


def _metrics_dir(cfg: Config, model_dir: Path) -> Path:
    """Where evaluate wrote this model's metrics: ``metrics`` itself, or its subdirectory of the model's name."""
    metrics = Path(cfg.metrics)
    return metrics if (metrics / "metrics.json").is_file() else metrics / model_dir.name


def log_untracked(cfg: Config, model_dir: Path, metrics_dir: Path, example: Callable[[bool], np.ndarray]) -> Any:
    """Log a model trained with tracking off (and its evaluation in ``metrics_dir``) as a finished MLflow
    run; its RunRef."""
    from tagcode.methods import load_method
    from tagcode.tracking.run import dataset_name, log_offline

    method = load_method(model_dir)
    cell = {"dataset": dataset_name(cfg.prepared), "method": method.label, "bits": method.bits}
    params = {"train": {"method": method.label, "bits": method.bits, "seed": method.seed},
              "method_options": method.options}
    inputs = {"features": cfg.features, "manifest": Path(cfg.prepared) / "manifest.parquet"}
    return log_offline(cfg.experiment, cell, params, inputs, model_dir, example(method.input == "images"),
                       metrics_dir)


def format_summary(summary: dict[str, Any]) -> str:
    """A short human summary for the CLI: one line per model."""
    return "\n".join(_decision_line(d) for d in summary.get("decisions", [summary]))


def _decision_line(decision: dict[str, Any]) -> str:
    if "name" not in decision:
        return f"promote: {Path(decision['model']).name} skipped ({decision['reason']})"
    verdict = "champion" if decision["promoted"] else "not promoted"
    champion = "none" if decision["champion"] is None else f"{decision['champion']:.4f}"
    return (f"promote: {decision['name']} v{decision['version']} {verdict}: {decision['metric']} "
            f"{decision['candidate']:.4f} vs champion {champion} ({decision['reason']})")
