"""Tag correlation graph, graph enhancement of tag embeddings and DBSCAN synonym merging (WSDHQ §2.2).

The WSDHQ preprocessing script is not public; this is the spec's documented reconstruction, every choice a
parameter: edges A_ij = P(j | i) from co-occurrence on training images, thresholded at ``tau`` and
row-normalised; t̃_i = normalize((1 − α) t_i + α Σ_j Â_ij t_j); DBSCAN (cosine, ``eps``) merges synonyms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cooccurrence(matrix: sp.spmatrix) -> tuple[np.ndarray, sp.csr_matrix]:
    """Per-tag image counts ``n_i`` and pairwise co-occurrence counts ``n_ij`` (zero diagonal)."""
    m = sp.csr_matrix(matrix, dtype=np.float64)
    m.data[:] = 1.0
    n_ij = sp.csr_matrix(m.T @ m)
    n_i = n_ij.diagonal().copy()
    n_ij.setdiag(0)
    n_ij.eliminate_zeros()
    return n_i, n_ij


def correlation_graph(matrix: sp.spmatrix, *, tau: float = 0.4, min_count: int = 1) -> sp.csr_matrix:
    """Row-normalised conditional-probability graph Â: A_ij = n_ij / n_i kept where ≥ ``tau``."""
    n_i, n_ij = cooccurrence(matrix)
    a = sp.csr_matrix(sp.diags(1.0 / np.maximum(n_i, 1)) @ n_ij)
    a.data[(a.data < tau) | (n_ij.data < min_count)] = 0.0
    a.eliminate_zeros()
    rows = np.asarray(a.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(np.where(rows > 0, 1.0 / np.maximum(rows, 1e-12), 0.0)) @ a)


def enhance(emb: np.ndarray, graph: sp.spmatrix, *, alpha: float = 0.3) -> np.ndarray:
    """One propagation step on unit vectors; tags without edges keep their own vector."""
    t = _unit(np.asarray(emb, dtype=np.float64))
    has_edge = np.asarray(graph.sum(axis=1)).ravel() > 0
    mixed = (1 - alpha) * t + alpha * (graph @ t)
    return _unit(np.where(has_edge[:, None], mixed, t)).astype(np.float32)


def merge_synonyms(emb: np.ndarray, *, eps: float, min_samples: int = 1) -> tuple[np.ndarray, list[list[int]]]:
    """DBSCAN (cosine) clusters of tags → (unit mean embedding per group, member lists by first member)."""
    from sklearn.cluster import DBSCAN

    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="cosine", algorithm="brute").fit_predict(emb)
    groups: dict[int, list[int]] = {}
    singles = []
    for i, lab in enumerate(labels):
        if lab < 0:
            singles.append([i])
        else:
            groups.setdefault(int(lab), []).append(i)
    members = sorted([*groups.values(), *singles], key=lambda g: g[0])
    unit = _unit(np.asarray(emb, dtype=np.float64))
    merged = _unit(np.stack([unit[g].mean(axis=0) for g in members]))
    return merged.astype(np.float32), members


def merge_matrix(matrix: sp.spmatrix, groups: list[list[int]]) -> sp.csr_matrix:
    """Image×group matrix: the logical OR of each group's member columns, in ``groups`` order."""
    assign = sp.csr_matrix((np.ones(sum(map(len, groups))),
                            ([i for g in groups for i in g], [k for k, g in enumerate(groups) for _ in g])),
                           shape=(matrix.shape[1], len(groups)))
    out = sp.csr_matrix(sp.csr_matrix(matrix, dtype=np.float64) @ assign)
    out.data[:] = 1
    return out.astype(np.uint8)


def calibrate_eps(emb: np.ndarray, target_size: int, *, lo: float = 1e-4, hi: float = 1.0, iters: int = 20) -> float:
    """Bisection on DBSCAN's eps so the merged vocabulary lands at (or just above) ``target_size``."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        size = len(merge_synonyms(emb, eps=mid)[1])
        if size > target_size:
            lo = mid
        else:
            hi = mid
    return lo


def margin_statistics(emb: np.ndarray, matrix: sp.spmatrix) -> dict[str, Any]:
    """WSDHQ calibration: the triplet-weighted mean cos(w̄_p, w̄_n) over (image, positive, negative) triplets,
    and the implied initial embedding loss 1 − mean (the reference logs show ≈0.89–0.90)."""
    w = _unit(np.asarray(emb, dtype=np.float64))
    m = sp.csr_matrix(matrix, dtype=np.float64)
    m.data[:] = 1.0
    cos = w @ w.T
    row_sum = cos.sum(axis=1)
    n_tags = w.shape[0]
    pos_total = np.asarray(m @ row_sum).ravel()
    pos_pos = np.asarray(m.multiply(m @ cos).sum(axis=1)).ravel()
    n_pos = np.asarray(m.sum(axis=1)).ravel()
    triplets = n_pos * (n_tags - n_pos)
    total = float(triplets.sum())
    mean = float((pos_total - pos_pos).sum() / total) if total else float("nan")
    off = cos[~np.eye(n_tags, dtype=bool)]
    return {"mean_cosine": mean, "initial_loss": 1 - mean, "triplets": int(total),
            "mean_pairwise_cosine": float(off.mean()) if off.size else float("nan")}
