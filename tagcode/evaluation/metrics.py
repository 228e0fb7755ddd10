"""Retrieval metrics with every convention explicit: relevance = sharing at least one label.

Labels are bit-packed (uint64 words), so relevance of ``(nq, k)`` retrieved items is a few AND operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np


def pack_labels(labels: np.ndarray) -> np.ndarray:
    """0/1 labels ``(n, L)`` → uint64 words ``(n, ceil(L/64))``."""
    labels = np.asarray(labels, dtype=bool)
    width = -(-labels.shape[1] // 64) * 64
    padded = np.zeros((len(labels), width), dtype=bool)
    padded[:, : labels.shape[1]] = labels
    return np.packbits(padded, axis=1, bitorder="little").view(np.uint64)


def relevance(q_labels: np.ndarray, db_labels: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``rel[q, j]`` is True when retrieved item ``indices[q, j]`` shares ≥ 1 label with query q."""
    qm, dm = pack_labels(q_labels), pack_labels(db_labels)
    if qm.shape[1] == 1:  # ≤ 64 labels: one word per item
        return (qm[:, :1] & dm[:, 0][indices]) != 0
    return ((qm[:, None, :] & dm[indices]) != 0).any(axis=2)


def n_relevant(q_labels: np.ndarray, db_labels: np.ndarray) -> np.ndarray:
    """Number of relevant database items per query (over the whole database)."""
    qm, dm = pack_labels(q_labels), pack_labels(db_labels)
    uniq, counts = np.unique(dm, axis=0, return_counts=True)
    return ((((qm[:, None, :] & uniq[None]) != 0).any(axis=2)) * counts).sum(axis=1).astype(np.int64)


def average_precision(rel: np.ndarray, *, normaliser: Literal["retrieved", "total"],
                      n_total: np.ndarray | None = None) -> np.ndarray:
    """AP per query over the ranked list ``rel``: Σ P@i·rel_i divided by the relevant items retrieved
    (DeepHash/WSDHQ @K) or by all relevant items in the database (true AP; equal at K = all). 0 if none."""
    rel = np.asarray(rel, dtype=bool)
    hits = np.cumsum(rel, axis=1)
    precision = hits / np.arange(1, rel.shape[1] + 1)
    num = (precision * rel).sum(axis=1)
    if normaliser == "retrieved":
        den = hits[:, -1].astype(np.float64)
    else:
        if n_total is None:
            raise ValueError("normaliser='total' needs n_total")
        den = np.asarray(n_total, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(len(rel)), where=den > 0)


def mean_average_precision(ap: np.ndarray, *, empty: Literal["skip", "zero"], is_empty: np.ndarray) -> float:
    """Mean AP; empty queries (nothing relevant) are left out (``skip``) or count as 0 (``zero``)."""
    ap, is_empty = np.asarray(ap, dtype=np.float64), np.asarray(is_empty, dtype=bool)
    if empty == "skip":
        return float(ap[~is_empty].mean()) if (~is_empty).any() else 0.0
    return float(np.where(is_empty, 0.0, ap).mean()) if len(ap) else 0.0


def precision_at(rel: np.ndarray, ns: Sequence[int]) -> dict[int, float]:
    """Mean precision over the first n retrieved items, for each n (capped at the list length)."""
    return {int(n): float(rel[:, : min(n, rel.shape[1])].mean()) for n in ns if rel.shape[1]}


def pr_curve(rel: np.ndarray, n_total: np.ndarray, points: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Mean precision and recall at ``points`` cut-offs (log-spaced over the ranked list)."""
    hits = np.cumsum(np.asarray(rel, dtype=bool), axis=1)
    cuts = np.unique(np.geomspace(1, rel.shape[1], num=points).astype(int)) - 1
    precision = (hits[:, cuts] / (cuts + 1)).mean(axis=0)
    recall = (hits[:, cuts] / np.maximum(np.asarray(n_total)[:, None], 1)).mean(axis=0)
    return precision, recall


def pr_curve_hamming(distances: np.ndarray, rel: np.ndarray, n_total: np.ndarray,
                     nbits: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall within Hamming radius r = 0..nbits (all items tied at a radius count together);
    precision averages over queries that retrieve something at that radius."""
    precision, recall = [], []
    for r in range(nbits + 1):
        within = distances <= r
        got = within.sum(axis=1)
        tp = (rel & within).sum(axis=1)
        precision.append(float((tp[got > 0] / got[got > 0]).mean()) if (got > 0).any() else 0.0)
        recall.append(float((tp / np.maximum(n_total, 1)).mean()))
    return np.asarray(precision), np.asarray(recall)
