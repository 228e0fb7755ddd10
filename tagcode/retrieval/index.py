"""Export codes as a faiss index (the serving format) and read/write it atomically.

Binary codes → ``IndexBinaryFlat`` (Hamming); float → ``IndexFlatIP``; additive codes →
``IndexLocalSearchQuantizer`` with the learned codebooks, inner-product metric and look-up-table search
(``ST_LUT_nonorm``), codes added with ``add_sa_codes``: faiss then ranks by ⟨q, x̂⟩, the same AQD.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tagcode.io import atomic_path
from tagcode.retrieval.codes import BinaryCodes, Codes, FloatCodes


def to_faiss_index(codes: Codes) -> Any:
    """A faiss index holding ``codes`` in their order (faiss ids = row positions)."""
    import faiss

    if isinstance(codes, BinaryCodes):
        index = faiss.IndexBinaryFlat(codes.nbits)
        index.add(np.ascontiguousarray(codes.bits, dtype=np.uint8))
        return index
    if isinstance(codes, FloatCodes):
        index = faiss.IndexFlatIP(codes.x.shape[1])
        index.add(np.ascontiguousarray(codes.x, dtype=np.float32))
        return index
    m, k, d = codes.codebooks.shape
    index = faiss.IndexLocalSearchQuantizer(d, m, int(np.log2(k)), faiss.METRIC_INNER_PRODUCT,
                                            faiss.AdditiveQuantizer.ST_LUT_nonorm)
    faiss.copy_array_to_vector(np.ascontiguousarray(codes.codebooks, dtype=np.float32).ravel(), index.lsq.codebooks)
    index.is_trained = True
    index.add_sa_codes(np.ascontiguousarray(codes.codes, dtype=np.uint8))
    return index


def write_index(index: Any, path: str | Path) -> None:
    """Write a float or binary faiss index atomically."""
    import faiss

    with atomic_path(path) as tmp:
        (faiss.write_index_binary if isinstance(index, faiss.IndexBinary) else faiss.write_index)(index, str(tmp))


def read_index(path: str | Path) -> Any:
    """Read an index written by :func:`write_index` (binary or float)."""
    import faiss

    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        return faiss.read_index_binary(str(path))
