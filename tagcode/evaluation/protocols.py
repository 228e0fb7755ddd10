"""Named evaluation protocols: each paper's mAP conventions, declared rather than implied.

| protocol | score | k | AP normaliser | empty queries |
|---|---|---|---|---|
| ``wsdhq`` | AQD ⟨x_q, x̂_d⟩ | 5000 | relevant retrieved in the top k | skipped |
| ``wsdhq_sqd`` / ``wsdhq_feats`` | SQD ⟨x̂_q, x̂_d⟩ / float inner product | 5000 | retrieved | skipped |
| ``wshrca_mirflickr`` | Hamming | all | all relevant (= retrieved at all) | count as 0 |
| ``wshrca_nuswide`` | Hamming | 50000 | retrieved | count as 0 |
| ``wshrca_at5000`` | Hamming | 5000 | retrieved | count as 0 |
| ``top100`` | Hamming | 100 | retrieved | count as 0 |

A query is *empty* when no relevant item is retrieved within its top k (at k = all: none in the database).
Ties are broken by ascending database index (:mod:`tagcode.retrieval.search`). Queries without any label
are an error by default, or a reported skip (``n_unlabelled``), never a silent zero.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from tagcode.errors import TagcodeError
from tagcode.evaluation import metrics
from tagcode.registry import Registry
from tagcode.retrieval import search

Score = Literal["hamming", "aqd", "sqd", "float"]
NEEDS = {"hamming": ({"bits"}, {"bits"}), "aqd": ({"x"}, {"codes", "codebooks"}),
         "sqd": ({"codes"}, {"codes", "codebooks"}), "float": ({"x"}, {"x"})}
CHUNK_ELEMENTS = 1 << 22  # ranked entries (queries × k) evaluated at once, so memory stays bounded
PR_POINTS = 50  # log-spaced cut-offs of the PR curve


@dataclass(frozen=True)
class Protocol:
    """The conventions of one mAP: score, cut-off (None = whole database), AP normaliser, empty policy."""

    name: str
    score: Score
    k: int | None
    normaliser: Literal["retrieved", "total"]
    empty: Literal["skip", "zero"]

    def __post_init__(self) -> None:
        if self.score not in NEEDS:
            raise TagcodeError(f"protocol {self.name!r}: unknown score {self.score!r}; known: {', '.join(NEEDS)}")
        if self.k is not None and self.k < 1:
            raise TagcodeError(f"protocol {self.name!r}: k must be ≥ 1 or None (whole database), got {self.k}")
        if self.normaliser not in ("retrieved", "total") or self.empty not in ("skip", "zero"):
            raise TagcodeError(f"protocol {self.name!r}: normaliser must be retrieved|total and empty skip|zero")


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
    """An MLflow-safe metric name (MLflow refuses '@'): ``wsdhq_map@5000`` → ``wsdhq_map_at_5000``."""
    return re.sub(r"[^0-9A-Za-z_\-. /:]", "_", name.replace("@", "_at_"))


def evaluate(protocol: Protocol, *, query: dict[str, np.ndarray], database: dict[str, np.ndarray],
             q_labels: np.ndarray, db_labels: np.ndarray, pr: bool = True, p_at: Sequence[int] = (10, 100, 1000),
             on_unlabelled: Literal["skip", "error"] = "error") -> dict[str, Any]:
    """mAP, P@N and (with ``pr``) precision–recall curves under ``protocol``, as a JSON-ready dict that records
    every convention. ``query``/``database`` carry what the score needs: ``bits`` (packed) for hamming,
    query ``x`` + database ``codes``/``codebooks`` for aqd, ``codes`` on both sides for sqd, ``x`` for float."""
    q_labels, db_labels = np.asarray(q_labels), np.asarray(db_labels)
    nq, n, rank = _searcher(protocol, query, database)
    if len(q_labels) != nq or len(db_labels) != n:
        raise TagcodeError(f"labels ({len(q_labels)} query, {len(db_labels)} database) do not match the codes "
                           f"({nq} query, {n} database)")
    unlabelled = np.flatnonzero(~np.asarray(q_labels != 0).any(axis=1))
    if len(unlabelled) and on_unlabelled == "error":
        raise TagcodeError(f"query {unlabelled[0]} has no label ({len(unlabelled)} such queries); "
                           "pass on_unlabelled='skip' to leave them out")
    queries = np.setdiff1d(np.arange(nq), unlabelled)
    if not len(queries):
        raise TagcodeError("no labelled query to evaluate")
    k = n if protocol.k is None else min(protocol.k, n)
    ns = np.asarray(sorted({int(v) for v in p_at if 1 <= v <= k}), dtype=np.int64)
    cutoffs = np.unique(np.geomspace(1, k, PR_POINTS).round().astype(np.int64))
    q_masks, db_masks = metrics.pack_labels(q_labels), metrics.pack_labels(db_labels)
    n_total = (metrics.n_relevant(q_labels[queries], db_labels)
               if pr or protocol.normaliser == "total" else None)
    with_radius = pr and protocol.score == "hamming" and k == n  # radii need the whole ranking
    ap, empty, at_n, at_cut, radius = [], [], [], [], []
    step = max(1, CHUNK_ELEMENTS // k)
    # The next chunk is searched while this one is scored, so no core waits on the metric arithmetic.
    with ThreadPoolExecutor(1) as ahead:
        pending = ahead.submit(rank, queries[:step], k)
        for lo in range(0, len(queries), step):
            sel = queries[lo : lo + step]
            dist, idx = pending.result()
            if lo + step < len(queries):
                pending = ahead.submit(rank, queries[lo + step : lo + 2 * step], k)
            rel = metrics.relevance_packed(q_masks[sel], db_masks, idx)
            hits = np.cumsum(rel, axis=1, dtype=np.int32)
            chunk_total = None if n_total is None else n_total[lo : lo + step]
            ap.append(metrics.average_precision_from_hits(rel, hits, normaliser=protocol.normaliser,
                                                          n_total=chunk_total))
            empty.append(hits[:, -1] == 0)
            at_n.append(hits[:, ns - 1])
            at_cut.append(hits[:, cutoffs - 1])
            if with_radius:
                radius.append(metrics.radius_counts(dist, rel, 8 * np.asarray(database["bits"]).shape[1]))
    is_empty = np.concatenate(empty)
    n_eval = len(queries)
    result: dict[str, Any] = {
        **asdict(protocol), "k_used": k, "database": n, "tie_break": "ascending database index",
        "map": metrics.mean_average_precision(np.concatenate(ap), empty=protocol.empty, is_empty=is_empty),
        "n_queries": n_eval, "n_unlabelled": len(unlabelled), "n_empty": int(is_empty.sum()),
        "n_averaged": n_eval - int(is_empty.sum()) if protocol.empty == "skip" else n_eval,
        "precision_at": {str(v): float(p) for v, p in
                         zip(ns, metrics.precision_from_hits(np.concatenate(at_n), ns), strict=True)},
        "precision_at_queries": "all evaluated queries",
        "precision_at_skipped": sorted({int(v) for v in p_at} - set(ns.tolist())),  # n beyond the ranked list
    }
    if pr:
        precision, recall = metrics.pr_from_hits(np.concatenate(at_cut), cutoffs, n_total)
        result["pr"] = {"cutoffs": cutoffs.tolist(), "precision": precision.tolist(), "recall": recall.tolist(),
                        "queries": "queries with at least one relevant item in the database"}
    if with_radius:
        got, tp = (np.concatenate(c) for c in zip(*radius, strict=True))
        precision, recall = metrics.pr_from_radius_counts(got, tp, n_total)
        result["pr_hamming"] = {"radius": list(range(len(precision))), "precision": precision.tolist(),
                                "recall": recall.tolist()}
    return result


def _searcher(protocol: Protocol, query: dict[str, np.ndarray], database: dict[str, np.ndarray]
              ) -> tuple[int, int, Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]]:
    """(nq, database size, rank(selected queries, k) → (scores, indices)) for the protocol's score."""
    need_q, need_db = NEEDS[protocol.score]
    if not need_q <= set(query) or not need_db <= set(database):
        raise TagcodeError(f"protocol {protocol.name!r} scores by {protocol.score}, which needs query "
                           f"{sorted(need_q)} and database {sorted(need_db)}; got query {sorted(query)}, "
                           f"database {sorted(database)}")
    if protocol.score == "hamming":
        qb, db = np.asarray(query["bits"]), np.asarray(database["bits"])
        return len(qb), len(db), lambda sel, k: search.hamming_knn(qb[sel], db, k)
    if protocol.score == "float":
        xq, xb = np.asarray(query["x"], dtype=np.float32), np.asarray(database["x"], dtype=np.float32)
        return len(xq), len(xb), lambda sel, k: search.float_knn(xq[sel], xb, k, "ip")
    codes, codebooks = np.asarray(database["codes"]), np.asarray(database["codebooks"], dtype=np.float32)
    # SQD is AQD of the reconstructed query (the codebooks are the database's).
    xq = search.reconstruct(query["codes"], codebooks) if protocol.score == "sqd" else np.asarray(query["x"])
    return len(xq), len(codes), lambda sel, k: search.aqd_knn(xq[sel], codes, codebooks, k)
