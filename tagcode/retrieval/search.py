"""k-nearest-neighbour search for every code kind, numpy in and numpy out, faiss underneath.

Every function returns ``(S, I)`` of shape ``(nq, k)`` ordered best first, with ties broken by ascending
database index, exactly (also at the k-th place), so that mAP is deterministic and comparable.
Hamming distances come from ``faiss.knn_hamming`` (ascending distance); the other scores are inner
products (descending), computed in query batches so memory stays bounded at NUS-WIDE scale.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from tagcode.errors import TagcodeError

QUERY_BATCH = 256


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """{0,1}, {−1,+1} or bool codes ``(n, nbits)`` → packed uint8 ``(n, nbits // 8)``."""
    bits = np.asarray(bits)
    if bits.shape[1] % 8:
        raise TagcodeError(f"binary codes need a multiple of 8 bits, got {bits.shape[1]}")
    return np.packbits(bits > 0, axis=1)


def hamming_knn(q_packed: np.ndarray, db_packed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distances (int32, ascending) and database indices (int64) of the ``k`` nearest codes."""
    import faiss

    k = min(k, len(db_packed))
    # The counting-sort variant scans the database in order and buckets by distance, so equal distances stay
    # in ascending id order (checked against a stable brute force in tests), and it beats the heap at large k.
    d, i = faiss.knn_hamming(np.ascontiguousarray(q_packed, dtype=np.uint8),
                             np.ascontiguousarray(db_packed, dtype=np.uint8), k, variant="mc")
    return d.astype(np.int32), i.astype(np.int64)


def _exact_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Full sort of each row by (score descending, index ascending); the reference ordering."""
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), order.astype(np.int64)


def _ties_by_index(d: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Reorder each row's runs of equal scores so their ids ascend; ``d`` is already sorted descending."""
    n, k = d.shape
    new_run = np.ones((n, k), dtype=bool)
    new_run[:, 1:] = d[:, 1:] != d[:, :-1]
    pos = np.broadcast_to(np.arange(k), (n, k))
    start = np.maximum.accumulate(np.where(new_run, pos, 0), axis=1)
    order = np.lexsort((i, start), axis=1)  # by run, then by id
    return np.take_along_axis(i, order, 1)


def _ip_knn(xq: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k with ties by ascending index.

    faiss (BLAS + heap) finds the k+1 best; runs of equal scores are re-ordered by id, and in rows whose
    k-th and (k+1)-th scores tie, the items tied at the boundary are recomputed so the lowest ids win.
    """
    import faiss

    xq = np.ascontiguousarray(xq, dtype=np.float32)
    xb = np.ascontiguousarray(xb, dtype=np.float32)
    n = len(xb)
    k = min(k, n)
    if k == n:
        parts = [_exact_rows(xq[s:s + QUERY_BATCH] @ xb.T, k) for s in range(0, len(xq), QUERY_BATCH)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    d, i = faiss.knn(xq, xb, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    boundary = np.flatnonzero(d[:, k - 1] == d[:, k])
    d, i = np.ascontiguousarray(d[:, :k]), np.ascontiguousarray(i[:, :k])
    tied = np.flatnonzero((d[:, 1:] == d[:, :-1]).any(axis=1))
    if len(tied):
        i[tied] = _ties_by_index(d[tied], i[tied])
    for r in boundary:  # a tie straddles the cut: redo the row exactly so the lowest tied ids win
        d[r], i[r] = _exact_row_topk(xb @ xq[r], k)
    return d, i.astype(np.int64)


def _exact_row_topk(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of one score vector by (score descending, index ascending) in O(n + k log k)."""
    v = np.partition(s, len(s) - k)[len(s) - k]
    above = np.flatnonzero(s > v)
    above = above[np.lexsort((above, -s[above]))]
    idx = np.concatenate([above, np.flatnonzero(s == v)[: k - len(above)]])
    return s[idx], idx


def reconstruct(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Additive reconstruction x̂ = Σ_m codebooks[m, codes[:, m]] → float32 ``(n, d)``."""
    codes = np.asarray(codes, dtype=np.int64)
    out = np.zeros((len(codes), codebooks.shape[2]), dtype=np.float32)
    for m in range(codebooks.shape[0]):
        out += codebooks[m][codes[:, m]]
    return out


def aqd_knn(xq: np.ndarray, codes: np.ndarray, codebooks: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetric quantizer distance: score ⟨x_q, x̂_d⟩ with the continuous query (WSDHQ's AQD)."""
    return _ip_knn(xq, reconstruct(codes, codebooks), k)


def sqd_knn(q_codes: np.ndarray, db_codes: np.ndarray, codebooks: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric quantizer distance: score ⟨x̂_q, x̂_d⟩."""
    return _ip_knn(reconstruct(q_codes, codebooks), reconstruct(db_codes, codebooks), k)


def float_knn(xq: np.ndarray, xb: np.ndarray, k: int,
              metric: Literal["ip", "cosine", "l2"] = "ip") -> tuple[np.ndarray, np.ndarray]:
    """Uncompressed reference: inner product, cosine, or (negated, so larger is nearer) squared L2."""
    xq, xb = np.asarray(xq, dtype=np.float32), np.asarray(xb, dtype=np.float32)
    if metric == "cosine":
        xq = xq / np.maximum(np.linalg.norm(xq, axis=1, keepdims=True), 1e-12)
        xb = xb / np.maximum(np.linalg.norm(xb, axis=1, keepdims=True), 1e-12)
    if metric == "l2":
        # −‖q − b‖² = 2⟨q, b⟩ − ‖b‖² − ‖q‖²; the last term is constant per query.
        aug_q = np.hstack([2 * xq, -np.ones((len(xq), 1), np.float32)])
        aug_b = np.hstack([xb, (xb * xb).sum(1, keepdims=True)])
        s, i = _ip_knn(aug_q, aug_b, k)
        return s - (xq * xq).sum(1, keepdims=True), i
    return _ip_knn(xq, xb, k)
