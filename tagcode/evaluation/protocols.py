"""Named evaluation protocols: each paper's mAP conventions, declared rather than implied.

| protocol | score | k | AP normaliser | empty queries |
|---|---|---|---|---|
| ``wsdhq`` | AQD ⟨x_q, x̂_d⟩ | 5000 | relevant retrieved in top k | skipped |
| ``wsdhq_sqd`` / ``wsdhq_feats`` | SQD / float inner product | 5000 | retrieved | skipped |
| ``wshrca_mirflickr`` | Hamming | all | all relevant | count as 0 |
| ``wshrca_nuswide`` | Hamming | 50000 | retrieved | count as 0 |
| ``wshrca_at5000`` | Hamming | 5000 | retrieved | count as 0 |
| ``top100`` | Hamming | 100 | retrieved | count as 0 |

A query is *empty* when no relevant item is retrieved within its top k (at k = all: none in the database).
Ties are broken by ascending database index (``tagcode.retrieval.search``). Queries without any label are
a reported skip (``n_unlabelled``), never a silent zero.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from tagcode.errors import TagcodeError
from tagcode.evaluation import metrics
from tagcode.registry import Registry
from tagcode.retrieval import search

Score = Literal["hamming", "aqd", "sqd", "float"]


@dataclass(frozen=True)
class Protocol:
    """The conventions of one mAP: score, cut-off (None = whole database), AP normaliser, empty policy."""

    name: str
    score: Score
    k: int | None
    normaliser: Literal["retrieved", "total"]
    empty: Literal["skip", "zero"]


PROTOCOLS: Registry[Protocol] = Registry("protocol")
for _p in (
    Protocol("wsdhq", "aqd", 5000, "retrieved", "skip"),
    Protocol("wsdhq_sqd", "sqd", 5000, "retrieved", "skip"),
    Protocol("wsdhq_feats", "float", 5000, "retrieved", "skip"),
    Protocol("wshrca_mirflickr", "hamming", None, "total", "zero"),
    Protocol("wshrca_nuswide", "hamming", 50000, "retrieved", "zero"),
    Protocol("wshrca_at5000", "hamming", 5000, "retrieved", "zero"),
    Protocol("top100", "hamming", 100, "retrieved", "zero"),
):
    PROTOCOLS.register(_p.name)(lambda _p=_p: _p)


def metric_key(name: str) -> str:
    """An MLflow-safe metric name (no '@'): ``wsdhq_map@5000`` → ``wsdhq_map_at_5000``."""
    return re.sub(r"[^0-9A-Za-z_\-. /:]", "_", name.replace("@", "_at_"))


def rank(protocol: Protocol, query: dict[str, np.ndarray], database: dict[str, np.ndarray],
         k: int) -> tuple[np.ndarray, np.ndarray]:
    """Run the search the protocol's score calls for, on the given representations."""
    try:
        if protocol.score == "hamming":
            return search.hamming_knn(query["bits"], database["bits"], k)
        if protocol.score == "aqd":
            return search.aqd_knn(query["x"], database["codes"], database["codebooks"], k)
        if protocol.score == "sqd":
            return search.sqd_knn(query["codes"], database["codes"], database["codebooks"], k)
        return search.float_knn(query["x"], database["x"], k, "ip")
    except KeyError as exc:
        raise TagcodeError(f"protocol {protocol.name!r} scores by {protocol.score}, which needs "
                           f"{exc.args[0]!r}; the codes given have query {sorted(query)}, "
                           f"database {sorted(database)}") from None


def evaluate(protocol: Protocol, *, query: dict[str, np.ndarray], database: dict[str, np.ndarray],
             q_labels: np.ndarray, db_labels: np.ndarray, pr: bool = True,
             p_at: Sequence[int] = (10, 100, 1000)) -> dict[str, Any]:
    """mAP, P@N and (optionally) a PR curve under ``protocol``; a JSON-ready dict recording the conventions."""
    labelled = np.asarray(q_labels).sum(axis=1) > 0
    q_sel = {key: v[labelled] for key, v in query.items()}
    n_db = len(next(iter(database.values())))
    k = n_db if protocol.k is None else min(protocol.k, n_db)
    _, idx = rank(protocol, q_sel, database, k)
    rel = metrics.relevance(q_labels[labelled], db_labels, idx)
    total = metrics.n_relevant(q_labels[labelled], db_labels)
    ap = metrics.average_precision(rel, normaliser=protocol.normaliser, n_total=total)
    is_empty = rel.sum(axis=1) == 0
    result: dict[str, Any] = {
        **asdict(protocol), "k": protocol.k, "k_used": k,
        "map": metrics.mean_average_precision(ap, empty=protocol.empty, is_empty=is_empty),
        "n_queries": int(labelled.sum()), "n_unlabelled": int((~labelled).sum()),
        "n_empty": int(is_empty.sum()), "database": n_db,
        "precision_at": {str(n): v for n, v in metrics.precision_at(rel, p_at).items()},
    }
    if pr:
        p, r = metrics.pr_curve(rel, total)
        result["pr"] = {"precision": p.tolist(), "recall": r.tolist()}
    return result
