"""evaluate: mAP under named protocols, P@N and precision–recall curves for one encoded cell.

Protocol families name each paper's conventions. The score comes from the protocol when the encoded sets
carry the views it needs (``wsdhq``: AQD, float query against database codes; ``wsdhq_sqd``: query codes
against database codes; ``wsdhq_feats``: float against float; ``wshrca*``: Hamming). The ranking families
(``wsdhq``, ``wshrca``, ``wshrca_nuswide``, ``at5000``, ``at100``) measure every method under their
conventions (k, AP normaliser, empty queries), so where a method's codes cannot be scored the protocol's
way they use the codes' own search (Hamming on bits, AQD on additive codes, inner product on floats);
``wsdhq_sqd`` and ``wsdhq_feats`` are reported as unavailable instead. The score used is recorded.
Outputs in ``out``: ``metrics.json`` and ``pr_curve.png``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from tagcode.data.manifest import read_labels
from tagcode.errors import TagcodeError
from tagcode.io import read_json, write_json
from tagcode.tracking import TrackedConfig

# Which registered protocol carries each family's conventions (score, k, AP normaliser, empty-query policy).
FAMILIES = {"wsdhq": "wsdhq", "wsdhq_sqd": "wsdhq_sqd", "wsdhq_feats": "wsdhq_feats",
            "wshrca": "wshrca_mirflickr", "wshrca_nuswide": "wshrca_nuswide",
            "at5000": "wshrca_at5000", "at100": "top100"}
RANKING_FAMILIES = {"wsdhq", "wshrca", "wshrca_nuswide", "at5000", "at100"}


class Config(TrackedConfig):
    """Options of the evaluate stage."""

    codes: str = Field("codes/itq-32", description="output directory of the encode stage")
    prepared: str = Field("data/prepared", description="output directory of the prepare stage")
    protocols: list[str] = Field(default_factory=lambda: ["wsdhq", "wshrca"],
                                 description=f"protocol families: {', '.join(FAMILIES)}")
    p_at: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [10, 100, 1000],
                                                    description="cut-offs for precision@N")
    out: str | None = Field(None, description="output directory (None: metrics/<the codes directory's name>)")

    @model_validator(mode="after")
    def _out(self) -> Config:
        return self.default_out(f"metrics/{Path(self.codes).name}")


def own_score(query: dict[str, Any], database: dict[str, Any]) -> str | None:
    """The search the codes themselves support: Hamming on bits, AQD on additive codes, else inner product."""
    if "bits" in query and "bits" in database:
        return "hamming"
    if "codes" in database and "x" in query:
        return "aqd"
    return "float" if "x" in query and "x" in database else None


def choose_score(family: str, protocol_score: str, query: dict[str, Any], database: dict[str, Any]) -> str | None:
    """The protocol's score when the views allow it; a ranking family falls back to the codes' own search."""
    from tagcode.evaluation.protocols import NEEDS

    need_q, need_db = NEEDS[protocol_score]
    if need_q <= set(query) and need_db <= set(database):
        return protocol_score
    return own_score(query, database) if family in RANKING_FAMILIES else None


def run(cfg: Config) -> dict[str, Any]:
    """Run the stage; returns the metrics also written to ``metrics.json``. With tracking on, they and the
    PR curve are logged on the model's MLflow run (named by ``tracking.json`` in the codes directory)."""
    from tagcode.data.listing import split_fingerprint
    from tagcode.data.manifest import read_manifest
    from tagcode.evaluation.chance import random_map
    from tagcode.evaluation.plots import plot_pr_curves
    from tagcode.evaluation.protocols import PROTOCOLS, evaluate, metric_key
    from tagcode.retrieval.codes import load_codes, views
    from tagcode.tracking.run import read_run_ref
    ref = read_run_ref(cfg.codes) if cfg.tracking else None
    if ref is not None:
        from tagcode.tracking.backend import probe
        probe(ref.tracking_uri)
    database, query = load_codes(Path(cfg.codes) / "database"), load_codes(Path(cfg.codes) / "query")
    manifest = Path(cfg.prepared) / "manifest.parquet"
    db_labels, _ = read_labels(manifest, list(database.ids))
    q_labels, _ = read_labels(manifest, list(query.ids))
    q_views, db_views = views(query), views(database)
    results: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    curves = {}
    for family in cfg.protocols:
        if family not in FAMILIES:
            raise TagcodeError(f"unknown protocol family {family!r}; known: {', '.join(FAMILIES)}")
        protocol = PROTOCOLS.create(FAMILIES[family])
        score = choose_score(family, protocol.score, q_views, db_views)
        if score is None:
            unavailable[family] = (f"needs the {protocol.score} views; the codes offer query {sorted(q_views)}, "
                                   f"database {sorted(db_views)}")
            continue
        protocol = dataclasses.replace(protocol, score=score)
        res = evaluate(protocol, query=q_views, database=db_views,
                       q_labels=q_labels, db_labels=db_labels, p_at=tuple(cfg.p_at), on_unlabelled="skip")
        res["random_map"] = random_map(protocol, q_labels, db_labels)  # the chance level, exact
        results[family] = res
        curves[family] = (res["pr"]["precision"], res["pr"]["recall"])
    meta = read_json(Path(cfg.codes) / "meta.json")
    scalars = {metric_key(f"{fam}_map@{'all' if r['k'] is None else r['k']}"): r["map"] for fam, r in results.items()}
    metrics = {"method": meta["method"], "bits": meta["bits"], "kind": meta["kind"],
               "score": own_score(q_views, db_views), "queries": len(query.ids), "database": len(database.ids),
               "fingerprint": split_fingerprint(read_manifest(manifest).meta, list(query.ids), list(database.ids)),
               "protocols": {fam: {k: v for k, v in r.items() if k != "pr"} for fam, r in results.items()},
               "unavailable": unavailable, "scalars": scalars}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    plot_pr_curves(curves, out / "pr_curve.png")
    if ref is not None:
        from tagcode.tracking.run import eval_fingerprint, log_evaluation
        log_evaluation(ref, metrics, eval_fingerprint(metrics),
                       cfg.model_dump(exclude={"tracking"}), [out / "pr_curve.png"])
    return {**metrics, **({"run_id": ref.run_id} if ref is not None else {})}


def format_summary(metrics: dict[str, Any]) -> str:
    """A short human summary for the CLI."""
    parts = ", ".join(f"{k} {v:.4f}" for k, v in metrics["scalars"].items())
    return f"evaluate: {metrics['method']} {metrics['bits']} bits ({metrics['score']}): {parts}"
