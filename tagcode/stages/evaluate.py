"""evaluate: mAP under named protocols, P@N and precision–recall curves for one encoded cell.

Protocol families name each paper's conventions; the score follows the code kind (binary → Hamming,
quantizer → asymmetric quantizer distance, float → inner product), so every method is measured under
both papers' conventions. Outputs in ``out``: ``metrics.json`` and ``pr_curve.png``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pydantic import Field

from tagcode.data.manifest import read_labels
from tagcode.errors import TagcodeError
from tagcode.io import read_json, write_json
from tagcode.tracking import TrackedConfig

# Which registered protocol carries each family's conventions (k, AP normaliser, empty-query policy).
FAMILIES = {"wsdhq": "wsdhq", "wshrca": "wshrca_mirflickr", "wshrca_nuswide": "wshrca_nuswide",
            "at5000": "wshrca_at5000", "at100": "top100"}
SCORES = {"BinaryCodes": "hamming", "QuantizedCodes": "aqd", "FloatCodes": "float"}


class Config(TrackedConfig):
    """Options of the evaluate stage."""

    codes: str = Field("codes/itq-32", description="output directory of the encode stage")
    prepared: str = Field("data/prepared", description="output directory of the prepare stage")
    protocols: list[str] = Field(default_factory=lambda: ["wsdhq", "wshrca"],
                                 description=f"protocol families: {', '.join(FAMILIES)}")
    p_at: list[int] = Field(default_factory=lambda: [10, 100, 1000], description="cut-offs for precision@N")
    out: str = Field("metrics/itq-32", description="output directory")


def representation(codes: Any) -> dict[str, Any]:
    """The arrays a search needs from a code container (BinaryCodes, QuantizedCodes or FloatCodes)."""
    kind = type(codes).__name__
    if kind == "BinaryCodes":
        return {"bits": codes.bits}
    if kind == "QuantizedCodes":
        return {"codes": codes.codes, "codebooks": codes.codebooks}
    return {"x": codes.x}


def run(cfg: Config) -> dict[str, Any]:
    """Run the stage; returns the metrics also written to ``metrics.json``. With tracking on, they and the
    PR curve are logged on the model's MLflow run (named by ``tracking.json`` in the codes directory)."""
    from tagcode.evaluation.plots import plot_pr_curves
    from tagcode.evaluation.protocols import PROTOCOLS, evaluate, metric_key
    from tagcode.retrieval.codes import load_codes
    from tagcode.tracking.run import read_run_ref
    ref = read_run_ref(cfg.codes) if cfg.tracking else None
    if ref is not None:
        from tagcode.tracking.backend import probe
        probe(ref.tracking_uri)
    database, query = load_codes(Path(cfg.codes) / "database"), load_codes(Path(cfg.codes) / "query")
    manifest = Path(cfg.prepared) / "manifest.parquet"
    db_labels, _ = read_labels(manifest, list(database.ids))
    q_labels, _ = read_labels(manifest, list(query.ids))
    score = SCORES[type(database).__name__]
    results: dict[str, Any] = {}
    curves = {}
    for family in cfg.protocols:
        if family not in FAMILIES:
            raise TagcodeError(f"unknown protocol family {family!r}; known: {', '.join(FAMILIES)}")
        protocol = dataclasses.replace(PROTOCOLS.create(FAMILIES[family]), score=score)
        res = evaluate(protocol, query=representation(query), database=representation(database),
                       q_labels=q_labels, db_labels=db_labels, p_at=tuple(cfg.p_at),
                       on_unlabelled="skip")
        results[family] = res
        curves[family] = (res["pr"]["precision"], res["pr"]["recall"])
    meta = read_json(Path(cfg.codes) / "meta.json")
    scalars = {metric_key(f"{fam}_map@{'all' if r['k'] is None else r['k']}"): r["map"] for fam, r in results.items()}
    metrics = {"method": meta["method"], "bits": meta["bits"], "kind": meta["kind"],
               "score": score, "queries": len(query.ids), "database": len(database.ids),
               "protocols": {fam: {k: v for k, v in r.items() if k != "pr"} for fam, r in results.items()},
               "scalars": scalars}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    plot_pr_curves(curves, out / "pr_curve.png")
    if ref is not None:
        from tagcode.tracking.run import id_fingerprint, log_evaluation
        log_evaluation(ref, metrics, id_fingerprint(query.ids, database.ids),
                       cfg.model_dump(exclude={"tracking"}), [out / "pr_curve.png"])
    return {**metrics, **({"run_id": ref.run_id} if ref is not None else {})}


def format_summary(metrics: dict[str, Any]) -> str:
    """A short human summary for the CLI."""
    parts = ", ".join(f"{k} {v:.4f}" for k, v in metrics["scalars"].items())
    return f"evaluate: {metrics['method']} {metrics['bits']} bits ({metrics['score']}): {parts}"
