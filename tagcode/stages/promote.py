"""promote: register a cell's trained model and move its ``champion`` alias only past the metric gate.

The model directory's ``tracking.json`` names the MLflow run (trained and evaluated); the registered model
is ``tagcode-<dataset>-<method>-<bits>``. The candidate becomes champion when there is none, or when on the
same query/database ids its ``metric`` beats the champion's by more than ``margin``; otherwise nothing but
the candidate version's decision tags changes. Output: ``out``, the decision as JSON.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tagcode.errors import TagcodeError
from tagcode.io import write_json
from tagcode.tracking import TrackedConfig


class Config(TrackedConfig):
    """Options of the promote stage."""

    model: str = Field("models/itq-32", description="model directory written by the train stage (with tracking.json)")
    metric: str = Field("wsdhq_map_at_5000", description="primary metric (an evaluate metric name, higher is better)")
    margin: float = Field(0.0, ge=0.0, description="the candidate must beat the champion by more than this")
    out: str = Field("promotions/itq-32.json", description="decision file to write")


def run(cfg: Config) -> dict[str, Any]:
    """Run the stage; returns the decision also written to ``out``."""
    if not cfg.tracking:
        decision: dict[str, Any] = {"promoted": False, "reason": "tracking is off: no registry to promote in",
                                    "model": cfg.model}
        write_json(cfg.out, decision)
        return decision
    from tagcode.tracking.backend import connect, mlflow_errors, probe
    from tagcode.tracking.registry import promote
    from tagcode.tracking.run import read_run_ref

    ref = read_run_ref(cfg.model)
    if ref is None:
        raise TagcodeError(f"{cfg.model}: no tracking.json (the model was trained with tracking off); "
                           "train it with tracking on to promote it")
    probe(ref.tracking_uri)
    client, _ = connect(ref.tracking_uri)
    with mlflow_errors(ref.tracking_uri):
        decision = {**promote(client, ref, cfg.metric, cfg.margin).as_dict(), "run_id": ref.run_id}
    write_json(cfg.out, decision)
    return decision


def format_summary(decision: dict[str, Any]) -> str:
    """A short human summary for the CLI."""
    if "name" not in decision:
        return f"promote: skipped ({decision['reason']})"
    verdict = "champion" if decision["promoted"] else "not promoted"
    champion = "none" if decision["champion"] is None else f"{decision['champion']:.4f}"
    return (f"promote: {decision['name']} v{decision['version']} {verdict}: {decision['metric']} "
            f"{decision['candidate']:.4f} vs champion {champion} ({decision['reason']})")
