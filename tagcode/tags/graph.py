"""Tag correlation graph, graph enhancement of tag embeddings and DBSCAN synonym merging (WSDHQ spec §2.2).

The WSDHQ preprocessing script is not public; this is the spec's documented reconstruction, every choice a
parameter: edges A_ij = P(j | i) from co-occurrence on training images, thresholded at ``tau`` and
row-normalised; t̃_i = normalize((1 − α) t_i + α Σ_j Â_ij t_j); DBSCAN (cosine, ``eps``) merges synonyms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float64 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _binary(matrix: sp.spmatrix | np.ndarray) -> sp.csr_matrix:
    """A 0/1 float64 CSR copy of an image×tag matrix."""
    m = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    m.eliminate_zeros()
    m.data[:] = 1.0
    return m


def cooccurrence(matrix: sp.spmatrix | np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
    """Per-tag image counts ``n_i`` and pairwise co-occurrence counts ``n_ij`` (zero diagonal) of a 0/1
    ``(n_train, V)`` matrix."""
    m = _binary(matrix)
    n_ij = sp.csr_matrix(m.T @ m)
    n_i = n_ij.diagonal().copy()
    n_ij.setdiag(0)
    n_ij.eliminate_zeros()
    n_ij.sort_indices()
    return n_i, n_ij


def correlation_graph(matrix: sp.spmatrix | np.ndarray, *, tau: float = 0.4, min_count: int = 1) -> sp.csr_matrix:
    """Row-normalised conditional-probability graph Â: keep A_ij = n_ij / n_i where it is ≥ ``tau`` and
    ``n_ij`` ≥ ``min_count`` (guards rare tags, whose P(j | i) rests on a handful of images)."""
    n_i, n_ij = cooccurrence(matrix)
    rows = np.repeat(np.arange(n_ij.shape[0]), np.diff(n_ij.indptr))
    prob = n_ij.data / np.maximum(n_i[rows], 1.0)
    keep = (prob >= tau) & (n_ij.data >= min_count)
    a = sp.csr_matrix((prob[keep], (rows[keep], n_ij.indices[keep])), shape=n_ij.shape)
    total = np.asarray(a.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)) @ a)


def enhance(emb: np.ndarray, graph: sp.spmatrix, *, alpha: float = 0.3) -> np.ndarray:
    """One propagation step on unit vectors, t̃_i = normalize((1 − α) t_i + α Σ_j Â_ij t_j); a tag without
    edges keeps its own (unit) vector."""
    if graph.shape != (len(emb), len(emb)):
        raise ValueError(f"graph {graph.shape} does not match {len(emb)} embeddings")
    t = _unit(emb)
    has_edge = np.diff(sp.csr_matrix(graph).indptr) > 0
    mixed = (1 - alpha) * t + alpha * (graph @ t)
    return _unit(np.where(has_edge[:, None], mixed, t)).astype(np.float32)


def cosine_distances(emb: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances ``1 − cos`` in float64, clipped to [0, 2] (what DBSCAN's brute cosine uses)."""
    w = _unit(emb)
    return np.clip(1.0 - w @ w.T, 0.0, 2.0)


def _groups(distances: np.ndarray, eps: float, min_samples: int) -> list[list[int]]:
    """DBSCAN clusters on precomputed distances as member lists ordered by smallest member; noise points
    (only possible with ``min_samples`` > 1) become single-tag groups."""
    from sklearn.cluster import DBSCAN

    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(distances)
    clusters: dict[int, list[int]] = {}
    singles = []
    for i, lab in enumerate(labels):
        if lab < 0:
            singles.append([i])
        else:
            clusters.setdefault(int(lab), []).append(i)
    return sorted([*clusters.values(), *singles], key=lambda g: g[0])


def merge_synonyms(emb: np.ndarray, *, eps: float, min_samples: int = 1) -> tuple[np.ndarray, list[list[int]]]:
    """DBSCAN (cosine distance ≤ ``eps``) clusters of tags → (unit mean of the members' unit vectors per group,
    member index lists ordered by smallest member). ``min_samples=1``: single-linkage at ``eps``."""
    groups = _groups(cosine_distances(emb), eps, min_samples)
    unit = _unit(emb)
    merged = _unit(np.stack([unit[g].mean(axis=0) for g in groups]))
    return merged.astype(np.float32), groups


def merge_matrix(matrix: sp.spmatrix | np.ndarray, groups: list[list[int]]) -> sp.csr_matrix:
    """Image×group uint8 matrix: the logical OR of each group's member columns, in ``groups`` order."""
    members = np.fromiter((i for g in groups for i in g), dtype=np.int64)
    owner = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    assign = sp.csr_matrix((np.ones(len(members)), (members, owner)), shape=(matrix.shape[1], len(groups)))
    out = sp.csr_matrix(_binary(matrix) @ assign)
    out.data[:] = 1
    return out.astype(np.uint8)


def calibrate_eps(emb: np.ndarray, target_size: int, *, lo: float = 1e-4, hi: float = 1.0, iters: int = 25,
                  min_samples: int = 1) -> float:
    """Bisection on DBSCAN's ``eps`` for a merged vocabulary near ``target_size`` (WSDHQ: 1,178 of 1,386
    Flickr tags, 928 of 1,000 NUS-WIDE tags); returns the eps tried whose size came closest (ties: fewer merges).
    """
    distances = cosine_distances(emb)
    best = (abs(len(emb) - target_size), -len(emb), lo)
    for _ in range(iters):
        mid = (lo + hi) / 2
        size = len(_groups(distances, mid, min_samples))
        best = min(best, (abs(size - target_size), -size, mid))
        if size == target_size:
            break
        if size > target_size:
            lo = mid
        else:
            hi = mid
    return best[2]


def margin_statistics(emb: np.ndarray, matrix: sp.spmatrix | np.ndarray) -> dict[str, Any]:
    """WSDHQ calibration (spec §2.2): triplet-weighted mean cos(w̄_p, w̄_n) over (image, positive p, negative n)
    and the implied initial embedding loss 1 − mean (the reference logs show 0.89–0.90).

    Per image, Σ_p Σ_n cos = Σ_p (Σ_all cos − Σ_positives cos) = y·(W s) − ‖yᵀW‖² with s = Σ_t w̄_t, so
    the cost is O(nnz · D): no T×T or B×T×T array.
    """
    w = _unit(emb)
    m = _binary(matrix)
    if m.shape[1] != len(w):
        raise ValueError(f"matrix has {m.shape[1]} tag columns, embeddings {len(w)} rows")
    n_tags = len(w)
    s = w.sum(axis=0)
    pos_total = m @ (w @ s)
    summed = m @ w
    pos_pos = np.einsum("ij,ij->i", summed, summed)
    n_pos = np.diff(m.indptr)
    triplets = n_pos * (n_tags - n_pos)
    total = float(triplets.sum())
    mean = float((pos_total - pos_pos).sum() / total) if total else float("nan")
    pairs = n_tags * (n_tags - 1)
    return {"mean_cosine": mean, "initial_loss": 1 - mean, "triplets": int(total),
            "mean_pairwise_cosine": float((s @ s - (w * w).sum()) / pairs) if pairs else float("nan")}
