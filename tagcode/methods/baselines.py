"""Unsupervised baselines on frozen features: LSH and ITQ (binary), PQ, OPQ and LSQ (quantizers), float.

Preprocessing, shared by every baseline: centre on the training mean, then L2-normalise each vector, so
inner products are cosines (the float reference) and AQD ⟨q, x̂⟩ compares like with like. The mean is
part of the saved model.

Binary baselines are linear hash functions, bit = [x·W > t]. Quantizers use K = 256 codewords per
codebook, so bits = 8·M (8–64 bits: M = 1–8), and all export full-dimensional additive codebooks
``(M, 256, d)`` in the preprocessed input space: x̂ = Σ_m C_m[code_m], so one AQD search serves them all.
faiss's PQ needs d divisible by M: PQ and OPQ zero-pad the features to the next multiple of M for
training and encoding, and the exported codebooks drop the padded columns again, which changes no inner
product with a (zero-padded) query.

Training-size needs are checked before any native call: a quantizer needs ≥ 256 training images (256
codewords per codebook), ITQ needs bits ≤ both the feature dims and the images. OPQ's rotation needs more
images than dims (faiss's ``OPQMatrix`` crashes otherwise): OPQ is learned in the top min(``dim``, n − 1)
PCA directions of the training set (recorded as ``basis`` in the model).

Same params and seed give the same arrays on any core count: ITQ, PQ, OPQ and LSQ train and encode with
exactly ``threads`` (default 2, the project machine's cores) BLAS and OpenMP threads, whatever the machine
has, since faiss's k-means and OPQ updates and BLAS reductions sum in a thread-dependent order. Exact
equality cannot be promised across CPU architectures whose BLAS kernels round differently, nor on a GPU
(none of these run there today).
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import numpy as np
from pydantic import Field

from tagcode.errors import TagcodeError
from tagcode.methods.base import METHODS, LogFn, Method, Options, as_features, check_byte_bits
from tagcode.methods.trainset import TrainSet
from tagcode.retrieval.codes import BinaryCodes, FloatCodes, QuantizedCodes


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` BLAS (threadpoolctl) and faiss OpenMP threads, restoring them after, so
    reductions sum in the same order on every machine."""
    import faiss
    from threadpoolctl import threadpool_limits

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        faiss.omp_set_num_threads(before)


class ThreadOptions(Options):
    """Options of the baselines whose native reductions depend on the thread count."""

    threads: int = Field(2, ge=1, description="BLAS and faiss OpenMP threads while training and encoding (fixed, "
                                              "so the bits do not depend on the machine's core count)")


class _Baseline(Method):
    """Fits on centred, L2-normalised features; ``_fit`` sees the preprocessed training set. Methods with a
    ``threads`` option train and encode under :func:`fixed_threads`."""

    def fit(self, train: TrainSet, *, log: LogFn | None = None, checkpoint_dir: str | Path | None = None) -> Self:
        train.require(self.name, "features")
        x = as_features(train.features, self.name)
        self.check_training_size(x)
        self.arrays = {"mean": x.mean(axis=0)}
        with self._threads():
            self._fit(self._prep(x))
        return self

    def check_training_size(self, x: np.ndarray) -> None:
        """Raise a one-line TagcodeError when ``x`` (n, d) is too small to train on (before any native call)."""

    def _threads(self) -> contextlib.AbstractContextManager[None]:
        threads = self.options.get("threads")
        return contextlib.nullcontext() if threads is None else fixed_threads(threads)

    @abstractmethod
    def _fit(self, x: np.ndarray) -> None: ...

    def _prep(self, x: np.ndarray) -> np.ndarray:
        if "mean" not in self.arrays:
            raise TagcodeError(f"{self.name}: the method is not fitted (call fit, or load a trained model)")
        x = as_features(x, self.name, len(self.arrays["mean"])) - self.arrays["mean"]
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def encode_query(self, x: np.ndarray, ids: np.ndarray) -> BinaryCodes | FloatCodes:
        return FloatCodes(ids=ids, x=self._prep(x))


class _Binary(_Baseline):
    """bit_j = [x·W[:, j] > t_j] on preprocessed features; ``_fit`` sets ``w`` (d, bits) and ``t`` (bits,)."""

    kind = "binary"

    @classmethod
    def check_bits(cls, bits: int) -> None:
        check_byte_bits(cls.name, bits)

    def encode(self, x: np.ndarray, ids: np.ndarray) -> BinaryCodes:
        with self._threads():
            bits = self._prep(x) @ self.arrays["w"] > self.arrays["t"]
        return BinaryCodes(ids=ids, bits=np.packbits(bits, axis=1), nbits=self.bits)

    def encode_query(self, x: np.ndarray, ids: np.ndarray) -> BinaryCodes:
        return self.encode(x, ids)


@METHODS.register("lsh")
class LSH(_Binary):
    """Sign random projections (Charikar): ``bits`` Gaussian hyperplanes through the training mean."""

    name = "lsh"

    def _fit(self, x: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        self.arrays["w"] = rng.standard_normal((x.shape[1], self.bits)).astype(np.float32)
        self.arrays["t"] = np.zeros(self.bits, dtype=np.float32)


@METHODS.register("itq")
class ITQ(_Binary):
    """Iterative quantization (Gong & Lazebnik): PCA to ``bits`` dims, then ``iterations`` (50) alternating
    updates of the codes B = sign(V R) and the rotation R (orthogonal Procrustes), from a seeded random R.
    Needs bits ≤ feature dims and training images. Written out rather than faiss's ``ITQTransform``, whose
    rotation gave 0.02–0.03 lower mAP@all on the OpenClipArt demo features at 16–32 bits, for every seed tried."""

    name = "itq"

    class Options(ThreadOptions):
        iterations: int = Field(50, ge=0, description="alternating code/rotation updates")

    def check_training_size(self, x: np.ndarray) -> None:
        if self.bits > min(x.shape):
            raise TagcodeError(f"method 'itq' cannot make {self.bits}-bit codes from {x.shape[1]}-dim features "
                               f"and {len(x)} training images: it supports bits ≤ both")

    def _fit(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
        pca = vt[: self.bits].T
        v = x @ pca
        r, _ = np.linalg.qr(np.random.default_rng(self.seed).standard_normal((self.bits, self.bits)))
        for _ in range(int(self.options["iterations"])):
            u, _, wt = np.linalg.svd(v.T @ np.where(v @ r >= 0, 1.0, -1.0))
            r = u @ wt
        self.arrays["w"] = (pca @ r).astype(np.float32)
        self.arrays["t"] = np.zeros(self.bits, dtype=np.float32)


class _Quantizer(_Baseline):
    """M = bits / 8 codebooks of 256 codewords; ``_fit`` sets ``codebooks`` (M, 256, d) and encoder state."""

    kind = "quantizer"

    @classmethod
    def check_bits(cls, bits: int) -> None:
        if bits % 8 or not 8 <= bits <= 64:
            raise TagcodeError(f"method {cls.name!r} cannot make {bits}-bit codes: it supports 8·M bits with "
                               "M = 1..8 codebooks of 256 codewords (8, 16, 24, 32, ..., 64)")

    @property
    def m(self) -> int:
        return self.bits // 8

    Options = ThreadOptions

    def check_training_size(self, x: np.ndarray) -> None:
        if len(x) < 256:
            raise TagcodeError(f"{self.name}: 256 codewords per codebook need at least 256 training images, "
                               f"got {len(x)}")

    def _padded(self, x: np.ndarray) -> np.ndarray:
        """Zero-pad preprocessed features to a multiple of M dims (faiss PQ's block layout)."""
        return np.ascontiguousarray(np.pad(x, ((0, 0), (0, -x.shape[1] % self.m))))

    def encode(self, x: np.ndarray, ids: np.ndarray) -> QuantizedCodes:
        with self._threads():
            codes = self._codes(self._prep(x))
        return QuantizedCodes(ids=ids, codes=codes, codebooks=self.arrays["codebooks"])

    def encode_query(self, x: np.ndarray, ids: np.ndarray) -> QuantizedCodes:
        """The preprocessed float query (AQD) and its codes (SQD)."""
        y = self._prep(x)
        with self._threads():
            codes = self._codes(y)
        return QuantizedCodes(ids=ids, codes=codes, codebooks=self.arrays["codebooks"], x=y)

    @abstractmethod
    def _codes(self, x: np.ndarray) -> np.ndarray:
        """(n, M) uint8 codes of preprocessed features."""


def _new_pq(d: int, m: int, seed: int) -> Any:
    """An untrained faiss ``ProductQuantizer(d, m, 8)`` seeded with ``seed``."""
    import faiss

    pq = faiss.ProductQuantizer(d, m, 8)
    pq.cp.min_points_per_centroid = 1  # small training sets are expected (tests, subsets): no warning
    pq.cp.seed = seed
    return pq


def _train_pq(y: np.ndarray, m: int, seed: int) -> np.ndarray:
    """faiss PQ centroids (m, 256, d/m) trained on ``y``."""
    import faiss

    pq = _new_pq(y.shape[1], m, seed)
    pq.train(np.ascontiguousarray(y, dtype=np.float32))
    return faiss.vector_to_array(pq.centroids).reshape(m, 256, -1)


def _pq_codes(y: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """faiss PQ encoding (nearest codeword per block) of ``y`` with stored ``centroids`` (M, 256, dsub)."""
    import faiss

    m, _, dsub = centroids.shape
    pq = faiss.ProductQuantizer(m * dsub, m, 8)
    faiss.copy_array_to_vector(np.ascontiguousarray(centroids, dtype=np.float32).ravel(), pq.centroids)
    return pq.compute_codes(np.ascontiguousarray(y, dtype=np.float32))


def _block_sparse(centroids: np.ndarray) -> np.ndarray:
    """PQ centroids (M, K, dsub) → full-dimensional codebooks (M, K, M·dsub), zero outside block m."""
    m, k, dsub = centroids.shape
    out = np.zeros((m, k, m * dsub), dtype=np.float32)
    for j in range(m):
        out[j, :, j * dsub:(j + 1) * dsub] = centroids[j]
    return out


@METHODS.register("pq")
class PQ(_Quantizer):
    """Product quantization (faiss ``ProductQuantizer``): M blocks × 256 codewords, block-sparse codebooks."""

    name = "pq"

    def _fit(self, x: np.ndarray) -> None:
        self.arrays["centroids"] = _train_pq(self._padded(x), self.m, self.seed)
        self.arrays["codebooks"] = _block_sparse(self.arrays["centroids"])[:, :, : x.shape[1]]

    def _codes(self, x: np.ndarray) -> np.ndarray:
        return _pq_codes(self._padded(x), self.arrays["centroids"])


@METHODS.register("opq")
class OPQ(_Quantizer):
    """Optimized PQ (faiss ``OPQMatrix``, ``niter`` rotation updates, faiss's default 50), then PQ retrained
    on the rotated features as faiss's ``OPQ…,PQ…`` factory does. With y = x·Rᵀ quantized blockwise,
    x̂ = ŷ·R, so the exported codebooks are the block-sparse ones times R, in the input space. OPQ runs on
    the projection onto the top k = min(``dim``, n − 1) principal directions P (d, k) of the training set
    when k < d, and x̂ = ŷ·R·Pᵀ."""

    name = "opq"

    class Options(ThreadOptions):
        niter: int = Field(50, ge=1, description="OPQ rotation updates (faiss's default)")
        dim: int | None = Field(256, ge=1, description="learn the rotation in the top `dim` principal directions "
                                "(faiss's OPQ<M>_<dim>; each update costs a dim × dim SVD: 1280-d takes ~170 s a "
                                "cell on 2 cores, 256-d a few seconds); None: the full feature space")

    def _project(self, x: np.ndarray) -> np.ndarray:
        """Features in the space OPQ was trained in (the PCA basis when one was learned)."""
        return x @ self.arrays["basis"] if "basis" in self.arrays else x

    def _fit(self, x: np.ndarray) -> None:
        import faiss

        # OPQMatrix also needs n > d, so the subspace never has more than n - 1 directions.
        keep = min(self.options["dim"] or x.shape[1], x.shape[1], len(x) - 1)
        if keep < x.shape[1]:
            _, _, vt = np.linalg.svd(x.astype(np.float64) - x.mean(axis=0), full_matrices=False)
            self.arrays["basis"] = np.ascontiguousarray(vt[:keep].T, dtype=np.float32)
        y = self._project(x)
        yp = self._padded(y)
        opq = faiss.OPQMatrix(yp.shape[1], self.m)
        opq.niter = int(self.options["niter"])
        inner = _new_pq(yp.shape[1], self.m, self.seed)
        opq.pq = inner  # `inner` stays referenced here while faiss uses it
        opq.train(yp)
        r = faiss.vector_to_array(opq.A).reshape(yp.shape[1], yp.shape[1])
        self.arrays["rotation"] = r
        self.arrays["centroids"] = _train_pq(yp @ r.T, self.m, self.seed)
        rotated_back = (_block_sparse(self.arrays["centroids"]) @ r)[:, :, : y.shape[1]]  # ŷ·R
        if "basis" in self.arrays:
            rotated_back = rotated_back @ self.arrays["basis"].T  # back from the PCA subspace
        self.arrays["codebooks"] = np.ascontiguousarray(rotated_back, dtype=np.float32)

    def _codes(self, x: np.ndarray) -> np.ndarray:
        return _pq_codes(self._padded(self._project(x)) @ self.arrays["rotation"].T, self.arrays["centroids"])


@METHODS.register("lsq")
class LSQ(_Quantizer):
    """Local search quantization (faiss ``LocalSearchQuantizer``): M full-dimensional additive codebooks,
    ICM encoding. ``train_iters`` (default 10; faiss's is 25) and ``encode_ils_iters`` (faiss default 16)
    trade time for quality. Codes are deterministic for a given seed and batch.

    ``lambd`` is the ridge of the codebook least squares (faiss's default 1e-2). With M·256 codewords
    fitted to about as many unit-norm training vectors that system is near-singular and the codebooks
    overfit: LSQ-32 on 1,000 demo images scored 0.123 mAP at 1e-2, 0.230 at 1 (README, Baselines)."""

    name = "lsq"

    class Options(ThreadOptions):
        train_iters: int = Field(10, ge=1, description="LSQ training iterations (faiss default 25)")
        encode_ils_iters: int = Field(16, ge=1, description="iterated local search steps per encoding")
        lambd: float = Field(1.0, ge=0, description="ridge of the codebook least-squares update (faiss's default "
                                                    "1e-2 overfits when the training set is near M × 256 images)")

    def _lsq(self, d: int) -> Any:
        """A faiss ``LocalSearchQuantizer`` configured from the options."""
        import faiss

        lsq = faiss.LocalSearchQuantizer(d, self.m, 8)
        lsq.train_iters = int(self.options["train_iters"])
        lsq.encode_ils_iters = int(self.options["encode_ils_iters"])
        lsq.lambd = float(self.options["lambd"])
        lsq.random_seed = self.seed
        lsq.nperts = min(lsq.nperts, self.m)  # perturb at most M codes per step
        return lsq

    def _fit(self, x: np.ndarray) -> None:
        import faiss

        lsq = self._lsq(x.shape[1])
        lsq.train(np.ascontiguousarray(x))
        self.arrays["codebooks"] = faiss.vector_to_array(lsq.codebooks).reshape(self.m, 256, x.shape[1])

    def _codes(self, x: np.ndarray) -> np.ndarray:
        import faiss

        lsq = self._lsq(x.shape[1])
        faiss.copy_array_to_vector(self.arrays["codebooks"].ravel(), lsq.codebooks)
        lsq.is_trained = True
        return lsq.compute_codes(np.ascontiguousarray(x))


@METHODS.register("float")
class Float(_Baseline):
    """The uncompressed reference: preprocessed float32 features; ``bits`` must be 32 (per dimension)."""

    name = "float"
    kind = "float"

    @classmethod
    def check_bits(cls, bits: int) -> None:
        if bits != 32:
            raise TagcodeError(f"method 'float' cannot make {bits}-bit codes: it stores float32 features, "
                               "bits must be 32 (per dimension)")

    def _fit(self, x: np.ndarray) -> None:
        return None

    def encode(self, x: np.ndarray, ids: np.ndarray) -> FloatCodes:
        return FloatCodes(ids=ids, x=self._prep(x))
