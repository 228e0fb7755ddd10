"""Retrieval metrics with every convention an explicit argument; relevance = sharing at least one label.

Labels are bit-packed into unsigned words (one uint8/16/32/64 word up to 64 labels, several uint64 words
beyond), so the relevance of ``(nq, k)`` retrieved items is a gather, an AND and a compare per word.
Ranked lists come from :mod:`tagcode.retrieval.search`; ``rel[q, j]`` is the relevance of the j-th item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from tagcode.errors import TagcodeError


def pack_labels(labels: np.ndarray) -> np.ndarray:
    """0/1 labels ``(n, L)`` → ``(n, words)`` unsigned words (the narrowest single word up to 64 labels)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise TagcodeError(f"labels must be (n, L), got shape {labels.shape}")
    n, width = labels.shape
    dtype = next((t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if width <= 8 * np.dtype(t).itemsize),
                 np.uint64)
    bits = 8 * np.dtype(dtype).itemsize
    padded = np.zeros((n, -(-width // bits) * bits), dtype=bool)
    padded[:, :width] = labels != 0
    return np.packbits(padded, axis=1, bitorder="little").view(dtype)


def relevance(q_labels: np.ndarray, db_labels: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``rel[q, j]``: retrieved database item ``indices[q, j]`` shares at least one label with query q."""
    q_masks, db_masks = _pack_pair(q_labels, db_labels)
    indices = np.asarray(indices)
    if indices.ndim != 2 or len(indices) != len(q_masks):
        raise TagcodeError(f"indices must be (nq={len(q_masks)}, k), got shape {indices.shape}")
    return relevance_packed(q_masks, db_masks, indices)


def relevance_packed(q_masks: np.ndarray, db_masks: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """:func:`relevance` on masks from :func:`pack_labels`, so a chunked evaluation packs only once."""
    rel = (db_masks[indices, 0] & q_masks[:, :1]) != 0
    for w in range(1, q_masks.shape[1]):
        rel |= (db_masks[indices, w] & q_masks[:, w : w + 1]) != 0
    return rel


def n_relevant(q_labels: np.ndarray, db_labels: np.ndarray) -> np.ndarray:
    """Relevant items per query in the whole database (int64), the normaliser of true AP and of recall."""
    q_masks, db_masks = _pack_pair(q_labels, db_labels)
    uniq_db, counts = np.unique(db_masks, axis=0, return_counts=True)  # few distinct label sets
    uniq_q, inverse = np.unique(q_masks, axis=0, return_inverse=True)
    totals = np.empty(len(uniq_q), np.int64)
    step = max(1, (1 << 22) // max(len(uniq_db), 1))
    for lo in range(0, len(uniq_q), step):
        share = ((uniq_q[lo : lo + step, None, :] & uniq_db[None]) != 0).any(axis=2)
        totals[lo : lo + step] = share @ counts
    return totals[inverse.ravel()]


def average_precision(rel: np.ndarray, *, normaliser: Literal["retrieved", "total"],
                      n_total: np.ndarray | None = None) -> np.ndarray:
    """AP per query (float64) of a ranked list: Σ_i P@i · rel_i divided by the relevant items retrieved in the
    list (``retrieved``: DeepHash/WSDHQ @K) or by all relevant items in the database (``total``: true AP,
    needs ``n_total``; equal to ``retrieved`` when the list is the whole database). 0 when the divisor is 0."""
    rel = _rel(rel)
    return average_precision_from_hits(rel, np.cumsum(rel, axis=1, dtype=np.int32), normaliser=normaliser,
                                       n_total=n_total)


def average_precision_from_hits(rel: np.ndarray, hits: np.ndarray, *, normaliser: Literal["retrieved", "total"],
                                n_total: np.ndarray | None) -> np.ndarray:
    """:func:`average_precision` given ``hits = cumsum(rel, axis=1)``, shared with the other metrics."""
    k = rel.shape[1]
    num = np.where(rel, hits, 0).astype(np.float64) @ (1.0 / np.arange(1, k + 1))
    if normaliser == "retrieved":
        den = hits[:, -1].astype(np.float64) if k else np.zeros(len(rel))
    elif normaliser == "total":
        if n_total is None:
            raise TagcodeError("normaliser='total' needs n_total (relevant items per query in the database)")
        den = np.asarray(n_total, dtype=np.float64)
        if den.shape != (len(rel),) or (k and (den < hits[:, -1]).any()):
            raise TagcodeError("n_total must give, per query, at least the relevant items found in its list")
    else:
        raise TagcodeError(f"unknown AP normaliser {normaliser!r}; known: retrieved, total")
    return np.divide(num, den, out=np.zeros(len(rel)), where=den > 0)


def mean_average_precision(ap: np.ndarray, *, empty: Literal["skip", "zero"], is_empty: np.ndarray) -> float:
    """Mean AP; empty queries are left out of the mean (``skip``: WSDHQ, thulab) or count as 0 (``zero``:
    WSHRCA, DeepHash-pytorch). With ``skip`` and no non-empty query the result is 0.0."""
    ap, is_empty = np.asarray(ap, dtype=np.float64), np.asarray(is_empty, dtype=bool)
    if ap.shape != is_empty.shape:
        raise TagcodeError(f"ap {ap.shape} and is_empty {is_empty.shape} differ in shape")
    if empty == "skip":
        return float(ap[~is_empty].mean()) if (~is_empty).any() else 0.0
    if empty == "zero":
        return float(np.where(is_empty, 0.0, ap).mean()) if len(ap) else 0.0
    raise TagcodeError(f"unknown empty-query policy {empty!r}; known: skip, zero")


def precision_at(rel: np.ndarray, ns: Sequence[int]) -> dict[int, float]:
    """Mean over all given queries of (relevant in the first n) / n, for each 1 ≤ n ≤ the list length."""
    rel = _rel(rel)
    cut, hits_at = _hits_at(rel, ns, "precision@n cut-offs")
    return {int(n): float(v) for n, v in zip(cut, precision_from_hits(hits_at, cut), strict=True)}


def precision_from_hits(hits_at: np.ndarray, ns: np.ndarray) -> np.ndarray:
    """:func:`precision_at` from the hit counts at each n, ``(nq, len(ns))``: one mean per n."""
    return (hits_at / np.asarray(ns)).mean(axis=0) if len(hits_at) else np.zeros(len(ns))


def pr_curve(rel: np.ndarray, n_total: np.ndarray, *, cutoffs: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at each cut-off of the ranked list, averaged over the queries that have at least
    one relevant item in the database (recall is undefined for the others)."""
    cut, hits_at = _hits_at(_rel(rel), cutoffs, "PR cut-offs")
    return pr_from_hits(hits_at, cut, n_total)


def pr_from_hits(hits_at: np.ndarray, cutoffs: np.ndarray, n_total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pr_curve` from the hit counts at each cut-off, ``(nq, len(cutoffs))``."""
    n_total = np.asarray(n_total)
    some = n_total > 0
    if not some.any():
        return np.zeros(len(cutoffs)), np.zeros(len(cutoffs))
    h = hits_at[some].astype(np.float64)
    return (h / cutoffs).mean(axis=0), (h / n_total[some, None]).mean(axis=0)


def pr_curve_hamming(distances: np.ndarray, rel: np.ndarray, n_total: np.ndarray,
                     nbits: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall within Hamming radius r = 0..nbits, all items tied at a radius entering together;
    ``distances``/``rel`` must rank the whole database (at least every item within radius nbits)."""
    return pr_from_radius_counts(*radius_counts(distances, rel, nbits), n_total)


def radius_counts(distances: np.ndarray, rel: np.ndarray, nbits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query, items and relevant items within each radius 0..nbits: two int64 ``(nq, nbits + 1)``."""
    rel, d = _rel(rel), np.asarray(distances, dtype=np.int64)
    if d.shape != rel.shape or (d.size and (d.min() < 0 or d.max() > nbits)):
        raise TagcodeError(f"distances must match rel {rel.shape} and lie in [0, {nbits}]")
    flat = d + (np.arange(len(d)) * (nbits + 1))[:, None]
    size = len(d) * (nbits + 1)
    got = np.bincount(flat.ravel(), minlength=size).reshape(len(d), nbits + 1)
    tp = np.bincount(flat[rel], minlength=size).reshape(len(d), nbits + 1)
    return np.cumsum(got, axis=1), np.cumsum(tp, axis=1)


def pr_from_radius_counts(got: np.ndarray, tp: np.ndarray, n_total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pr_curve_hamming` from :func:`radius_counts`: a query retrieving nothing within r has precision
    0 there; means are over queries with ≥ 1 relevant item in the database."""
    some = np.asarray(n_total) > 0
    if not some.any():
        return np.zeros(got.shape[1]), np.zeros(got.shape[1])
    got, tp = got[some], tp[some].astype(np.float64)
    precision = np.divide(tp, got, out=np.zeros(tp.shape), where=got > 0).mean(axis=0)
    return precision, (tp / np.asarray(n_total)[some, None]).mean(axis=0)


def _pack_pair(q_labels: np.ndarray, db_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q, db = np.asarray(q_labels), np.asarray(db_labels)
    if q.ndim != 2 or db.ndim != 2 or q.shape[1] != db.shape[1]:
        raise TagcodeError(f"query labels {q.shape} and database labels {db.shape} must be (n, L) with the same L")
    return pack_labels(q), pack_labels(db)


def _hits_at(rel: np.ndarray, cutoffs: Sequence[int], what: str) -> tuple[np.ndarray, np.ndarray]:
    """(cut-offs as int64, relevant items within each, ``(nq, len(cutoffs))``); each must be in [1, list length]."""
    cut = np.asarray(cutoffs, dtype=np.int64)
    if len(cut) and (cut.min() < 1 or cut.max() > rel.shape[1]):
        raise TagcodeError(f"{what} must lie in [1, list length {rel.shape[1]}], got {cut.tolist()}")
    return cut, np.cumsum(rel, axis=1, dtype=np.int32)[:, cut - 1]


def _rel(rel: np.ndarray) -> np.ndarray:
    rel = np.asarray(rel, dtype=bool)
    if rel.ndim != 2:
        raise TagcodeError(f"rel must be (nq, k), got shape {rel.shape}")
    return rel
