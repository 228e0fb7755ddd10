"""Exact k-nearest-neighbour search for every code kind: numpy in, ``(D, I)`` or ``(S, I)`` out.

Each row is ordered best first (Hamming/L2 distance ascending, inner product descending) and equal scores
are ordered by ascending database index, also across the k-th place: row q is the first k entries of a
stable sort of the whole database, so mAP is deterministic.

faiss is the reference and the serving layer: ``hamming_knn`` returns exactly what ``faiss.knn_hamming``
returns and AQD ranks exactly as the exported ``IndexLocalSearchQuantizer`` (both tested), but at the
evaluator's k = 5000 faiss's top-k selection costs more than the scoring (faiss's counting-sort Hamming kNN
is 1.6× slower than this module, its inner-product heap 2.6×: bench/results/eval_speed.md), so the
evaluator searches here.

How: query batches run on a small thread pool, each worker reusing its buffers; a batch is scored
(popcount, per-query look-up tables for AQD/SQD, BLAS for float vectors), a threshold from a strided sample
keeps a little more than k candidates per row, and only those are radix-sorted. Memory stays bounded (tens
of MB per worker) at NUS-WIDE scale.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np

from tagcode.errors import TagcodeError

BATCH = 1 << 22  # scores computed at once per worker (queries × database items): a few MB, cache-sized
GEMM_BATCH = 1 << 24  # BLAS inner products per worker (64 MB of float32): amortises BLAS packing
SAMPLE = 4096  # database items sampled per query to place the candidate threshold
MARGIN = 1.1  # candidates kept per row ≈ MARGIN × k (+ a few), so the threshold rarely falls short
# Worker threads (each holds its own buffers): the usable cores, capped because containers often see many.
THREADS = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """{0,1}, {−1,+1} or bool codes ``(n, nbits)`` → packed uint8 ``(n, nbits // 8)`` (faiss's binary layout)."""
    bits = np.asarray(bits)
    if bits.ndim != 2 or bits.shape[1] % 8:
        raise TagcodeError(f"binary codes must be (n, nbits) with nbits a multiple of 8, got shape {bits.shape}")
    if bits.dtype != bool:
        ones = bits == 1
        if not (np.all(ones | (bits == 0)) or np.all(ones | (bits == -1))):
            raise TagcodeError("binary codes must hold only {0,1} or only {-1,+1} (or be bool)")
        bits = ones
    return np.packbits(bits, axis=1)


def hamming_knn(q_packed: np.ndarray, db_packed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distances (int32, ascending) and database indices (int64) of the ``k`` nearest packed codes."""
    q, db = _packed(q_packed, "query"), _packed(db_packed, "database")
    if q.shape[1] != db.shape[1]:
        raise TagcodeError(f"query codes have {8 * q.shape[1]} bits, database codes {8 * db.shape[1]}")
    n, nbits = len(db), 8 * db.shape[1]
    _check_k(k, n)
    qw, dbw = _words(q), np.ascontiguousarray(_words(db).T)  # database word-major: one contiguous row per word
    top_d, top_i = np.empty((len(q), k), np.int32), np.empty((len(q), k), np.int64)

    def run(lo: int, hi: int, rows: int, scratch: dict[str, np.ndarray]) -> None:
        if not scratch:
            scratch.update(dist=np.empty((rows, n), np.uint8 if nbits < 256 else np.uint16),
                           xor=np.empty((rows, n), dbw.dtype), count=np.empty((rows, n), np.uint8))
        dist, xor, count = (scratch[name][: hi - lo] for name in ("dist", "xor", "count"))
        for w in range(dbw.shape[0]):
            np.bitwise_xor(qw[lo:hi, w, None], dbw[w], out=xor)
            np.bitwise_count(xor, out=count if w else dist)
            if w:
                dist += count
        _select(dist, k, top_d[lo:hi], top_i[lo:hi], larger_is_better=False)

    _run_batches(run, len(q), BATCH // n)
    return top_d, top_i


def reconstruct(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Additive reconstruction x̂ = Σ_m codebooks[m, codes[:, m]] (summed in m order) → float32 ``(n, d)``.

    Product quantization is the special case of block-sparse codebooks.
    """
    codebooks = np.asarray(codebooks, dtype=np.float32)
    codes = _checked_codes(codes, codebooks)
    out = np.zeros((len(codes), codebooks.shape[2]), dtype=np.float32)
    for m in range(codebooks.shape[0]):
        out += codebooks[m][codes[:, m]]
    return out


def aqd_knn(xq: np.ndarray, codes: np.ndarray, codebooks: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetric quantizer distance (WSDHQ's AQD): scores ⟨x_q, x̂_d⟩ (float32, descending) and indices.

    Scored as Σ_m LUT[q, m, code_m] (summed in m order) from a per-query table computed in a fixed order, so
    identical codes tie exactly and every score is bit-reproducible whatever the batching or machine.
    """
    xq, codebooks = _floats(xq, "query"), np.asarray(codebooks, dtype=np.float32)
    n = len(_checked_codes(codes, codebooks))
    if xq.shape[1] != codebooks.shape[2]:
        raise TagcodeError(f"query vectors have {xq.shape[1]} dimensions, codebooks {codebooks.shape[2]}")
    _check_k(k, n)
    columns = [np.ascontiguousarray(codes[:, m], dtype=np.intp) for m in range(codebooks.shape[0])]
    top_s, top_i = np.empty((len(xq), k), np.float32), np.empty((len(xq), k), np.int64)

    def run(lo: int, hi: int, rows: int, scratch: dict[str, np.ndarray]) -> None:
        if not scratch:
            scratch.update(scores=np.empty((rows, n), np.float32), term=np.empty(n, np.float32))
        scores, term = scratch["scores"][: hi - lo], scratch["term"]
        for row, table in zip(scores, _lut(xq[lo:hi], codebooks), strict=True):
            np.take(table[0], columns[0], out=row, mode="clip")  # codes were range-checked: clip never clips
            for m in range(1, len(columns)):
                np.take(table[m], columns[m], out=term, mode="clip")
                row += term
        _select(scores, k, top_s[lo:hi], top_i[lo:hi], larger_is_better=True)

    _run_batches(run, len(xq), BATCH // n)
    return top_s, top_i


def sqd_knn(q_codes: np.ndarray, db_codes: np.ndarray, codebooks: np.ndarray,
            k: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric quantizer distance: scores ⟨x̂_q, x̂_d⟩ (float32, descending), as AQD of the reconstructed query."""
    return aqd_knn(reconstruct(q_codes, codebooks), db_codes, codebooks, k)


def float_knn(xq: np.ndarray, xb: np.ndarray, k: int,
              metric: Literal["ip", "cosine", "l2"] = "ip") -> tuple[np.ndarray, np.ndarray]:
    """Uncompressed reference search: inner product or cosine (descending), or squared L2 (ascending)."""
    xq, xb = _floats(xq, "query"), _floats(xb, "database")
    if metric == "ip":
        return _ip_knn(xq, xb, k)
    if metric == "cosine":
        return _ip_knn(_unit(xq), _unit(xb), k)
    if metric == "l2":
        # argmin ‖q − b‖² = argmax 2⟨q, b⟩ − ‖b‖²: one GEMM on augmented vectors, then add ‖q‖² back.
        sq = np.einsum("ij,ij->i", xb, xb)
        s, i = _ip_knn(np.hstack([2 * xq, -np.ones((len(xq), 1), np.float32)]), np.hstack([xb, sq[:, None]]), k)
        return np.maximum(np.einsum("ij,ij->i", xq, xq)[:, None] - s, 0), i
    raise TagcodeError(f"unknown metric {metric!r}; known: ip, cosine, l2")


def _ip_knn(xq: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k float32 BLAS inner products; equal scores go by index. As with any BLAS (faiss too), a score's last
    bit may depend on batching and on the item's position, even for identical vectors (AQD uses exact tables)."""
    xq, xb = _floats(xq, "query"), _floats(xb, "database")
    if xq.shape[1] != xb.shape[1]:
        raise TagcodeError(f"query vectors have {xq.shape[1]} dimensions, database vectors {xb.shape[1]}")
    _check_k(k, len(xb))
    xb_t = np.ascontiguousarray(xb.T)  # (d, n): BLAS reads it faster than the transposed view
    top_s, top_i = np.empty((len(xq), k), np.float32), np.empty((len(xq), k), np.int64)

    def run(lo: int, hi: int, rows: int, scratch: dict[str, np.ndarray]) -> None:
        scores = scratch.setdefault("scores", np.empty((rows, len(xb)), np.float32))[: hi - lo]
        np.matmul(xq[lo:hi], xb_t, out=scores)
        _select(scores, k, top_s[lo:hi], top_i[lo:hi], larger_is_better=True)

    _run_batches(run, len(xq), GEMM_BATCH // len(xb))
    return top_s, top_i


def _run_batches(run: Callable[[int, int, int, dict[str, np.ndarray]], None], nq: int, rows: int) -> None:
    """Call ``run(lo, hi, batch, scratch)`` over query batches of about ``rows`` queries on THREADS threads;
    ``scratch`` is a per-thread dict, so each worker reuses its buffers instead of mapping fresh memory."""
    batch = int(np.clip(rows, 1, max(1, -(-nq // THREADS))))
    spans = [(lo, min(lo + batch, nq)) for lo in range(0, nq, batch)]
    if THREADS == 1 or len(spans) == 1:
        scratch: dict[str, np.ndarray] = {}
        for lo, hi in spans:
            run(lo, hi, batch, scratch)
        return
    from threadpoolctl import threadpool_limits

    local = threading.local()

    def work(lo: int, hi: int) -> None:
        if not hasattr(local, "scratch"):
            local.scratch = {}
        run(lo, hi, batch, local.scratch)

    # One BLAS thread per worker: the workers already occupy every core.
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(work, lo, hi) for lo, hi in spans]:
            future.result()


def _select(v: np.ndarray, k: int, out_v: np.ndarray, out_i: np.ndarray, *, larger_is_better: bool) -> None:
    """Write each row's first k by (value, then index) into ``out_v``/``out_i``, without sorting the row.

    A threshold at a quantile of a strided sample keeps a few more than k candidates (a row where it keeps
    fewer is taken whole); candidates come in index order, so a stable radix sort on the value bits orders
    them by value with ties by index.
    """
    n = v.shape[1]
    step = max(1, n // SAMPLE)
    sample = v[:, ::step]
    want = int(MARGIN * k * sample.shape[1] / n) + 16
    if want < sample.shape[1]:
        kth = sample.shape[1] - want if larger_is_better else want - 1
        thresh = np.partition(sample, kth, axis=1)[:, kth]
    keep = np.empty(n, bool)
    for r, row in enumerate(v):
        if want < sample.shape[1]:
            (np.greater_equal if larger_is_better else np.less_equal)(row, thresh[r], out=keep)
            cand = np.flatnonzero(keep)
        if want >= sample.shape[1] or len(cand) < k:
            cand = np.arange(n)
        vals = row[cand]
        order = _stable_order(_order_bits(vals, larger_is_better) if vals.dtype.kind == "f" else vals)[:k]
        out_i[r], out_v[r] = cand[order], vals[order]


def _stable_order(key: np.ndarray) -> np.ndarray:
    """Stable argsort of unsigned keys by LSD radix passes over 16-bit digits (numpy radix-sorts ≤16 bits)."""
    if key.dtype.itemsize <= 2:
        return np.argsort(key, kind="stable")
    order = np.argsort(key.astype(np.uint16), kind="stable")
    return order[np.argsort((key[order] >> 16).astype(np.uint16), kind="stable")]


def _order_bits(values: np.ndarray, larger_is_better: bool) -> np.ndarray:
    """uint32 whose ascending order is the ranking order of float32 ``values`` (−0.0 ties with +0.0)."""
    u = (values + np.float32(0)).view(np.uint32)
    ascending = u ^ ((u.view(np.int32) >> 31).view(np.uint32) | np.uint32(0x80000000))
    return ~ascending if larger_is_better else ascending


def _lut(xq: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Per-query tables ⟨x_q, C_m[j]⟩ → (nq, M, K) float32, accumulated over dimensions in index order with
    separate multiplies and adds (no BLAS), so each entry is the same on every machine and batching."""
    m, kk, d = codebooks.shape
    flat = np.ascontiguousarray(codebooks.reshape(m * kk, d).T)  # (d, M·K)
    out, term = np.zeros((len(xq), m * kk), np.float32), np.empty((len(xq), m * kk), np.float32)
    for j in range(d):
        np.multiply(xq[:, j, None], flat[j], out=term)
        out += term
    return out.reshape(len(xq), m, kk)


def _checked_codes(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """``codes`` as an (n, M) integer array whose entries index the (M, K, d) ``codebooks``."""
    codes = np.asarray(codes)
    if codebooks.ndim != 3 or codes.ndim != 2 or codes.shape[1] != codebooks.shape[0] or codes.dtype.kind not in "iu":
        raise TagcodeError(f"codes {codes.dtype} {codes.shape} do not fit codebooks {codebooks.shape} "
                           "(need integer (n, M) and (M, K, d))")
    if codes.size and (codes.min() < 0 or codes.max() >= codebooks.shape[1]):
        raise TagcodeError(f"codes must lie in [0, {codebooks.shape[1]}), got [{codes.min()}, {codes.max()}]")
    return codes


def _check_k(k: int, n: int) -> None:
    if not 1 <= k <= n:
        raise TagcodeError(f"k must be between 1 and the database size {n}, got {k}")


def _words(packed: np.ndarray) -> np.ndarray:
    """Packed codes viewed as the widest unsigned words that divide the code width: (n, words)."""
    width = packed.shape[1]
    dtype = next(t for t in (np.uint64, np.uint32, np.uint16, np.uint8) if width % np.dtype(t).itemsize == 0)
    return packed.view(dtype)


def _packed(codes: np.ndarray, what: str) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.dtype != np.uint8 or codes.ndim != 2:
        raise TagcodeError(f"{what} codes must be packed uint8 (n, nbits/8) (see pack_bits), got "
                           f"{codes.dtype} {codes.shape}")
    return np.ascontiguousarray(codes)


def _floats(x: np.ndarray, what: str) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise TagcodeError(f"{what} vectors must be (n, d), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise TagcodeError(f"{what} vectors contain NaN or infinity")
    return x


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-12))
