"""Export codes as a faiss index (the serving format) and write/read it atomically.

- ``BinaryCodes`` → ``IndexBinaryFlat`` (Hamming on the packed bits);
- ``FloatCodes`` → ``IndexFlatIP`` (inner product);
- ``QuantizedCodes`` → ``IndexLocalSearchQuantizer`` holding the exported codebooks as its additive
  codebooks (``is_trained`` set, no faiss training), the model's codes added as-is with ``add_sa_codes``,
  inner-product metric and look-up-table search (``ST_LUT_nonorm``): faiss then scores ⟨q, Σ_m C_m[k_m]⟩,
  the same AQD as the evaluator. This covers PQ/OPQ (block-sparse codebooks), LSQ and WSDHQ alike.

faiss row ids are positions in the container; map them back with ``codes.ids``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tagcode.errors import TagcodeError
from tagcode.io import atomic_path
from tagcode.retrieval.codes import BinaryCodes, Codes, FloatCodes


def to_faiss_index(codes: Codes) -> Any:
    """A faiss index (``faiss.Index`` or ``faiss.IndexBinary``) holding ``codes`` in their row order."""
    import faiss

    if isinstance(codes, BinaryCodes):
        index = faiss.IndexBinaryFlat(codes.nbits)
        index.add(codes.bits)
        return index
    if isinstance(codes, FloatCodes):
        index = faiss.IndexFlatIP(codes.x.shape[1])
        index.add(codes.x)
        return index
    m, k, d = codes.codebooks.shape
    if k != 256:
        raise TagcodeError(f"faiss export of additive codes needs 256 codewords per codebook (one byte per "
                           f"code), got {k}")
    index = faiss.IndexLocalSearchQuantizer(d, m, 8, faiss.METRIC_INNER_PRODUCT,
                                            faiss.AdditiveQuantizer.ST_LUT_nonorm)
    faiss.copy_array_to_vector(codes.codebooks.ravel(), index.lsq.codebooks)
    index.lsq.nperts = min(index.lsq.nperts, m)  # lets index.add() encode new vectors when M < 4
    index.lsq.is_trained = index.is_trained = True
    index.add_sa_codes(codes.codes)
    return index


def write_index(index: Any, path: str | Path) -> None:
    """Write a float or binary faiss index to the file ``path``, atomically."""
    import faiss

    write = faiss.write_index_binary if isinstance(index, faiss.IndexBinary) else faiss.write_index
    with atomic_path(path) as tmp:
        write(index, str(tmp))


def read_index(path: str | Path) -> Any:
    """Read an index written by :func:`write_index`, float or binary."""
    import faiss

    if not Path(path).is_file():
        raise TagcodeError(f"{path}: no faiss index here (run `tagcode encode` first)")
    for read in (faiss.read_index, faiss.read_index_binary):
        try:
            return read(str(path))
        except RuntimeError:
            continue
    raise TagcodeError(f"{path}: not a faiss index (unreadable as a float or binary index)")
