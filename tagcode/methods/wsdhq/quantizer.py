"""WSDHQ's quantizer: block-wise k-means initialisation, ICM code assignment, ridge refit.

M codebooks × K = 256 codewords; x̂ = Σ_m C_m[k_m]. Codes are assigned by ICM in a metric G,
‖x − x̂‖²_G, with the codebooks fixed (the spec's tag metric G = WᵀW, W: T×D tag vectors as stored, or the
identity); the codebooks are refitted by float64 ridge least squares on the memory-bank features, either
as full-width codewords (additive quantization, spec §3.5) or each within its k-means block (product
quantization). Everything is numpy in, numpy out.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.linalg
import scipy.sparse

K = 256


def split_blocks(d: int, m: int) -> list[tuple[int, int]]:
    """Contiguous (start, stop) blocks of ``d`` dims for ``m`` codebooks, as even as possible, larger first:
    300/M as in the reference (300, 150, 100, 75); 50 dims for M = 3 give 17/17/16, for M = 4 13/13/12/12."""
    sizes = [d // m + (1 if j < d % m else 0) for j in range(m)]
    stops = np.cumsum(sizes)
    return [(int(b - s), int(b)) for b, s in zip(stops, sizes, strict=True)]


def kmeans_init(u: np.ndarray, m: int, seed: int, *, k: int = K, batch_size: int = 100, n_init: int = 3,
                max_iter: int = 100) -> np.ndarray:
    """Block-diagonal codebooks (m, k, d): MiniBatchKMeans with k clusters on each block of ``u``.

    sklearn 0.23's defaults, which the reference used, are set explicitly (k-means++, batch 100, n_init 3,
    max_iter 100, tol 0, reassignment 0.01); block j is seeded ``seed + j``. One OpenMP thread: the problems
    are small, and spinning OpenMP threads slowed them down many times on the busy 2-core machine."""
    from sklearn.cluster import MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    u = np.asarray(u, dtype=np.float32)
    out = np.zeros((m, k, u.shape[1]), dtype=np.float32)
    for j, (a, b) in enumerate(split_blocks(u.shape[1], m)):
        km = MiniBatchKMeans(n_clusters=k, init="k-means++", batch_size=batch_size, n_init=n_init,
                             max_iter=max_iter, tol=0.0, max_no_improvement=10, reassignment_ratio=0.01,
                             random_state=seed + j)
        with threadpool_limits(limits=1):
            out[j, :, a:b] = km.fit(u[:, a:b]).cluster_centers_
    return out


def reconstruct(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """x̂ = Σ_m codebooks[m, codes[:, m]], (n, d) in the codebooks' dtype."""
    m = codebooks.shape[0]
    return codebooks[np.arange(m), np.asarray(codes, dtype=np.intp)].sum(axis=1)


def objective(x: np.ndarray, codes: np.ndarray, codebooks: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Per-row ICM objective (x − x̂)ᵀ G (x − x̂) in float64."""
    r = np.asarray(x, np.float64) - reconstruct(codes, np.asarray(codebooks, np.float64))
    return np.einsum("nd,de,ne->n", r, np.asarray(g, np.float64), r)


class ICM:
    """ICM encoder for fixed ``codebooks`` (M, K, D) in the metric ``g`` (D, D) = WᵀW.

    score_m(k) = c_kᵀGc_k − 2 (x − Σ_{j≠m} c_j)ᵀ G c_k. The tables c_kᵀGc_k (M, K), −2GC_mᵀ (M, D, K) and the
    pairwise C_j G C_mᵀ (M, M, K, K) are built once, so one codebook step of one vector costs M−1 table
    rows of K, after M (B, D) × (D, K) products per batch; never the B×K×T tensor of the reference."""

    def __init__(self, codebooks: np.ndarray, g: np.ndarray, *, passes: int = 3) -> None:
        c = np.asarray(codebooks, dtype=np.float32)
        self.m, self.k, self.d = c.shape
        self.passes = passes
        gc = c.reshape(-1, self.d) @ np.asarray(g, dtype=np.float32)  # rows: G c_k (G symmetric)
        # (M, D, K): x @ gct[m] = −2 xᵀG c_k for the codewords of codebook m
        self.gct = np.ascontiguousarray(-2.0 * gc.reshape(self.m, self.k, self.d).transpose(0, 2, 1))
        self.unary = np.einsum("nd,nd->n", gc, c.reshape(-1, self.d)).reshape(self.m, 1, self.k)  # c_kᵀ G c_k
        flat = 2.0 * (gc @ c.reshape(-1, self.d).T)  # (M·K, M·K): 2 c_aᵀ G c_b
        self.pair2 = np.ascontiguousarray(flat.reshape(self.m, self.k, self.m, self.k).transpose(0, 2, 1, 3))

    def encode(self, x: np.ndarray, rng: np.random.Generator, *, batch: int = 500, threads: int = 2) -> np.ndarray:
        """(n, M) uint8 codes of ``x``, in batches of ``batch`` rows, each from zero codes with its own random
        codebook order per pass (``passes`` permutations per batch drawn from ``rng`` in batch order, so the
        codes do not depend on ``threads``, the batches encoded at once with one BLAS thread each)."""
        from threadpoolctl import threadpool_limits

        x = np.asarray(x, dtype=np.float32)
        starts = range(0, len(x), batch)
        orders = [[rng.permutation(self.m) for _ in range(self.passes)] for _ in starts]
        codes = np.zeros((len(x), self.m), dtype=np.uint8)

        def one(i: int) -> None:
            codes[starts[i]:starts[i] + batch] = self._encode_batch(x[starts[i]:starts[i] + batch], orders[i])

        if threads <= 1 or len(starts) == 1:
            for i in range(len(starts)):
                one(i)
            return codes
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(len(starts))))
        return codes

    def _encode_batch(self, x: np.ndarray, orders: list[np.ndarray]) -> np.ndarray:
        lin = np.empty((self.m, len(x), self.k), dtype=np.float32)  # unary + linear term of every codeword
        for m in range(self.m):
            np.matmul(x, self.gct[m], out=lin[m])
        lin += self.unary
        codes = np.zeros((self.m, len(x)), dtype=np.intp)
        score = np.empty((len(x), self.k), dtype=np.float32)
        row = np.empty_like(score)
        visited: list[int] = []  # zero start: unvisited codebooks contribute nothing
        for order in orders:
            for m in order:
                others = [j for j in visited if j != m]
                if not others:
                    codes[m] = lin[m].argmin(axis=1)
                else:
                    np.add(lin[m], self.pair2[others[0], m].take(codes[others[0]], axis=0, out=row), out=score)
                    for j in others[1:]:
                        np.add(score, self.pair2[j, m].take(codes[j], axis=0, out=row), out=score)
                    codes[m] = score.argmin(axis=1)
                if m not in visited:
                    visited.append(m)
        return codes.T.astype(np.uint8)


def refit(codes: np.ndarray, u: np.ndarray, previous: np.ndarray, *, ridge: float = 1e-3,
          unused_tol: float = 1e-8, blocks: list[tuple[int, int]] | None = None) -> np.ndarray:
    """Codebooks C = (BᵀB + ridge·I)⁻¹ BᵀU in float64 (B: the one-hot codes, sparse), returned (M, K, D)
    float32; codewords whose new squared norm is below ``unused_tol`` (unused ones) keep ``previous``.

    With ``blocks`` (one (start, stop) per codebook) codebook m stays zero outside its block: the least
    squares then decouple into per-block ridge means, Σ u[a:b] / (count + ridge) over the rows coded k
    (product quantization, whose refit is a k-means step), instead of M·K full-width codewords."""
    n, m = codes.shape
    k, d = previous.shape[1], previous.shape[2]
    if blocks is not None:
        c = np.zeros((m, k, d))
        for j, (a, b) in enumerate(blocks):
            col = np.asarray(codes[:, j], dtype=np.int64)
            sums = np.zeros((k, b - a))
            np.add.at(sums, col, np.asarray(u[:, a:b], dtype=np.float64))
            c[j, :, a:b] = sums / (np.bincount(col, minlength=k) + ridge)[:, None]
        c = c.reshape(m * k, d)
    else:
        cols = (np.asarray(codes, dtype=np.int64) + np.arange(m) * k).ravel()
        b = scipy.sparse.csr_matrix((np.ones(n * m), (np.repeat(np.arange(n), m), cols)), shape=(n, m * k))
        btb = (b.T @ b).toarray() + ridge * np.eye(m * k)
        btu = b.T @ np.asarray(u, dtype=np.float64)
        c = scipy.linalg.solve(btb, btu, assume_a="pos")
    prev = np.asarray(previous, dtype=np.float64).reshape(m * k, d)
    unused = (c * c).sum(axis=1) < unused_tol
    c[unused] = prev[unused]
    return c.reshape(m, k, d).astype(np.float32)
