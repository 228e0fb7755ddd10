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

QUERY_BATCH = 128


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
    d, i = faiss.knn_hamming(np.ascontiguousarray(q_packed, dtype=np.uint8),
                             np.ascontiguousarray(db_packed, dtype=np.uint8), k)
    # knn_hamming keeps equal distances in ascending id order; make it a guarantee, not an assumption.
    order = np.lexsort((i, d), axis=1)
    return np.take_along_axis(d, order, 1).astype(np.int32), np.take_along_axis(i, order, 1).astype(np.int64)


def _topk_desc(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of ``scores`` by (score descending, index ascending), exact at the boundary."""
    n = scores.shape[1]
    if k >= n:
        order = np.lexsort((np.broadcast_to(np.arange(n), scores.shape), -scores), axis=1)
        return np.take_along_axis(scores, order, 1), order.astype(np.int64)
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1:k]
    out_s = np.empty((len(scores), k), dtype=scores.dtype)
    out_i = np.empty((len(scores), k), dtype=np.int64)
    for r in range(len(scores)):
        cand = np.flatnonzero(scores[r] >= kth[r, 0])  # ascending indices: ties at the k-th place keep the lowest
        order = np.lexsort((cand, -scores[r, cand]))[:k]
        out_i[r] = cand[order]
        out_s[r] = scores[r, out_i[r]]
    return out_s, out_i


def _ip_knn(xq: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    xq = np.ascontiguousarray(xq, dtype=np.float32)
    xb = np.ascontiguousarray(xb, dtype=np.float32)
    k = min(k, len(xb))
    parts = [_topk_desc(xq[s:s + QUERY_BATCH] @ xb.T, k) for s in range(0, len(xq), QUERY_BATCH)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


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
