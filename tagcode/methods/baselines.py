"""Unsupervised baselines on the same features: LSH and ITQ (binary), PQ, OPQ and LSQ (quantizers), and
the uncompressed float reference. faiss does PQ, OPQ and LSQ; LSH and ITQ are a few lines of numpy.

Quantizers use K = 256 codewords per codebook, so bits = 8·M (8–32 bits: M = 1–4). PQ and OPQ split the
feature dimension into M blocks; when it is not divisible by M the features are zero-padded (which
changes no inner product). Every quantizer exports full-dimensional additive codebooks ``(M, 256, d)``
in the (padded) input space, so one asymmetric search serves them all.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from tagcode.errors import TagcodeError
from tagcode.methods.base import METHODS, Method
from tagcode.retrieval.codes import BinaryCodes, FloatCodes, QuantizedCodes


def _ids(ids: np.ndarray) -> np.ndarray:
    return np.asarray(ids, dtype=object)


class _Binary(Method):
    kind = "binary"

    @classmethod
    def check_bits(cls, bits: int) -> None:
        if bits < 8 or bits % 8:
            raise TagcodeError(f"method {cls.name!r} cannot make {bits}-bit codes: use a multiple of 8 (≥ 8)")

    @abstractmethod
    def _project(self, x: np.ndarray) -> np.ndarray:
        """Real-valued projections whose signs are the bits."""

    def encode(self, x: np.ndarray, ids: np.ndarray) -> BinaryCodes:
        bits = self._project(self._prep(x)) > 0
        return BinaryCodes(ids=_ids(ids), bits=np.packbits(bits, axis=1), nbits=self.bits)

    def encode_query(self, x: np.ndarray, ids: np.ndarray) -> BinaryCodes:
        return self.encode(x, ids)


@METHODS.register("lsh")
class LSH(_Binary):
    """Sign random projections (Charikar): ``bits`` Gaussian hyperplanes through the training mean."""

    name = "lsh"

    def _fit(self, x: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        self.arrays["w"] = rng.standard_normal((x.shape[1], self.bits)).astype(np.float32)

    def _project(self, x: np.ndarray) -> np.ndarray:
        return x @ self.arrays["w"]


@METHODS.register("itq")
class ITQ(_Binary):
    """Iterative quantization (Gong & Lazebnik): PCA to ``bits`` dims, then the rotation that best fits ±1."""

    name = "itq"

    def _fit(self, x: np.ndarray) -> None:
        if self.bits > min(x.shape):
            raise TagcodeError(f"itq: {self.bits} bits need at least {self.bits} training images and feature dims")
        _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
        pca = vt[: self.bits].T
        v = x @ pca
        rng = np.random.default_rng(self.seed)
        r, _ = np.linalg.qr(rng.standard_normal((self.bits, self.bits)))
        for _ in range(int(self.options.get("iterations", 50))):
            b = np.where(v @ r >= 0, 1.0, -1.0)
            u, _, wt = np.linalg.svd(v.T @ b)
            r = u @ wt
        self.arrays["w"] = (pca @ r).astype(np.float32)

    def _project(self, x: np.ndarray) -> np.ndarray:
        return x @ self.arrays["w"]


class _Quantizer(Method):
    kind = "quantizer"

    @classmethod
    def check_bits(cls, bits: int) -> None:
        if bits % 8 or not 8 <= bits <= 64:
            raise TagcodeError(f"method {cls.name!r} cannot make {bits}-bit codes: 8·M bits with M = 1..8 "
                               "codebooks of 256 codewords")

    @property
    def m(self) -> int:
        return self.bits // 8

    def fit(self, x: np.ndarray) -> _Quantizer:
        if len(x) < 256:
            raise TagcodeError(f"{self.name}: 256 codewords per codebook need at least 256 training images, "
                               f"got {len(x)}")
        return super().fit(x)

    def _pad(self, x: np.ndarray) -> np.ndarray:
        d = int(self.arrays["codebooks"].shape[2]) if "codebooks" in self.arrays else x.shape[1]
        return np.pad(x, ((0, 0), (0, d - x.shape[1]))) if d > x.shape[1] else x

    def _padded_dim(self, d: int) -> int:
        return -(-d // self.m) * self.m

    def encode(self, x: np.ndarray, ids: np.ndarray) -> QuantizedCodes:
        return QuantizedCodes(ids=_ids(ids), codes=self._codes(self._pad(self._prep(x))),
                              codebooks=self.arrays["codebooks"])

    def encode_query(self, x: np.ndarray, ids: np.ndarray) -> FloatCodes:
        return FloatCodes(ids=_ids(ids), x=self._pad(self._prep(x)))

    @abstractmethod
    def _codes(self, x: np.ndarray) -> np.ndarray:
        """(n, M) uint8 codes of preprocessed, padded features."""


def _block_codebooks(centroids: np.ndarray, m: int, d: int) -> np.ndarray:
    """PQ centroids (M, K, d/M) → block-sparse full-dimensional codebooks (M, K, d)."""
    dsub = d // m
    out = np.zeros((m, centroids.shape[1], d), dtype=np.float32)
    for j in range(m):
        out[j, :, j * dsub:(j + 1) * dsub] = centroids[j]
    return out


def _nearest_block_codes(x: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Independent nearest-codeword assignment per block (exact PQ encoding)."""
    m, _, d = codebooks.shape
    dsub = d // m
    codes = np.empty((len(x), m), dtype=np.uint8)
    for j in range(m):
        c = codebooks[j, :, j * dsub:(j + 1) * dsub]
        xs = x[:, j * dsub:(j + 1) * dsub]
        codes[:, j] = np.argmin((c * c).sum(1)[None] - 2 * xs @ c.T, axis=1)
    return codes


@METHODS.register("pq")
class PQ(_Quantizer):
    """Product quantization (faiss ``ProductQuantizer``), M blocks × 256 codewords."""

    name = "pq"

    def _fit(self, x: np.ndarray) -> None:
        import faiss

        x = np.pad(x, ((0, 0), (0, self._padded_dim(x.shape[1]) - x.shape[1])))
        pq = faiss.ProductQuantizer(x.shape[1], self.m, 8)
        pq.cp.min_points_per_centroid = 1  # small training sets are expected (tests, subsets)
        pq.train(np.ascontiguousarray(x))
        cents = faiss.vector_to_array(pq.centroids).reshape(self.m, 256, -1)
        self.arrays["codebooks"] = _block_codebooks(cents, self.m, x.shape[1])

    def _codes(self, x: np.ndarray) -> np.ndarray:
        return _nearest_block_codes(x, self.arrays["codebooks"])


@METHODS.register("opq")
class OPQ(_Quantizer):
    """Optimized PQ (faiss ``OPQMatrix`` + PQ; option ``niter``, default 10 rotation updates); codebooks are
    rotated back into the input space."""

    name = "opq"

    def _fit(self, x: np.ndarray) -> None:
        import faiss

        x = np.ascontiguousarray(np.pad(x, ((0, 0), (0, self._padded_dim(x.shape[1]) - x.shape[1]))))
        d = x.shape[1]
        opq = faiss.OPQMatrix(d, self.m)
        opq.niter = int(self.options.get("niter", 10))  # faiss's 50 costs ~2 min per model on 1280-d features
        inner = faiss.ProductQuantizer(d, self.m, 8)
        inner.cp.min_points_per_centroid = 1
        opq.pq = inner
        opq.train(x)
        a = faiss.vector_to_array(opq.A).reshape(d, d)
        y = x @ a.T
        pq = faiss.ProductQuantizer(d, self.m, 8)
        pq.cp.min_points_per_centroid = 1
        pq.train(np.ascontiguousarray(y, dtype=np.float32))
        block = _block_codebooks(faiss.vector_to_array(pq.centroids).reshape(self.m, 256, -1), self.m, d)
        self.arrays["rotation"] = a.astype(np.float32)
        self.arrays["block"] = block
        self.arrays["codebooks"] = (block @ a).astype(np.float32)  # x̂ = Aᵀ ŷ, row-vector form

    def _codes(self, x: np.ndarray) -> np.ndarray:
        return _nearest_block_codes(x @ self.arrays["rotation"].T, self.arrays["block"])


@METHODS.register("lsq")
class LSQ(_Quantizer):
    """Local search quantization (faiss ``LocalSearchQuantizer``): full-dimensional additive codebooks."""

    name = "lsq"

    def _fit(self, x: np.ndarray) -> None:
        import faiss

        lsq = self._lsq(x.shape[1])
        lsq.train(np.ascontiguousarray(x))
        self.arrays["codebooks"] = faiss.vector_to_array(lsq.codebooks).reshape(self.m, 256, x.shape[1])

    def _lsq(self, d: int):
        import faiss

        lsq = faiss.LocalSearchQuantizer(d, self.m, 8)
        lsq.train_iters = int(self.options.get("train_iters", 10))
        lsq.encode_ils_iters = int(self.options.get("encode_ils_iters", 16))
        lsq.random_seed = self.seed
        lsq.nperts = min(lsq.nperts, self.m)
        return lsq

    def _codes(self, x: np.ndarray) -> np.ndarray:
        import faiss

        lsq = self._lsq(x.shape[1])
        faiss.copy_array_to_vector(self.arrays["codebooks"].ravel(), lsq.codebooks)
        lsq.is_trained = True
        return lsq.compute_codes(np.ascontiguousarray(x, dtype=np.float32)).reshape(len(x), self.m)


@METHODS.register("float")
class Float(Method):
    """The uncompressed reference: centred, L2-normalised float32 features (``bits`` must be 32)."""

    name = "float"
    kind = "float"

    @classmethod
    def check_bits(cls, bits: int) -> None:
        if bits != 32:
            raise TagcodeError(f"method 'float' stores float32 features: bits must be 32, got {bits}")

    def _fit(self, x: np.ndarray) -> None:
        return None

    def encode(self, x: np.ndarray, ids: np.ndarray) -> FloatCodes:
        return FloatCodes(ids=_ids(ids), x=self._prep(x))
