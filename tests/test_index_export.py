"""faiss export: every code kind written, read back and searched by faiss ranks like numpy brute force.

The additive-quantizer path (IndexLocalSearchQuantizer with external codebooks, ST_LUT_nonorm, inner
product, add_sa_codes) is checked on random full-dimensional codebooks and on fitted PQ/OPQ/LSQ codes.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from tagcode.errors import TagcodeError
from tagcode.methods import create_method
from tagcode.methods.trainset import TrainSet
from tagcode.retrieval.codes import BinaryCodes, FloatCodes, QuantizedCodes
from tagcode.retrieval.index import read_index, to_faiss_index, write_index

RNG = np.random.default_rng(0)
K = 10


def _assert_same_ranking(scores: np.ndarray, s: np.ndarray, i: np.ndarray, tol: float = 1e-4) -> None:
    """faiss's top-K (``s``, ``i``, best first) agrees with the brute-force ``scores`` (higher is better) up to ties:
    every returned item has the score faiss reports, the scores are the true top-K, and every item strictly
    better than the K-th is returned."""
    np.testing.assert_allclose(np.take_along_axis(scores, i, 1), s, rtol=tol, atol=tol)
    np.testing.assert_allclose(-np.sort(-scores, axis=1)[:, :K], s, rtol=tol, atol=tol)
    for row, got in zip(scores, i, strict=True):
        must = np.flatnonzero(row > row[got[-1]] + tol)
        assert set(must) <= set(got.tolist())


def _round_trip(index: object, tmp_path: Path) -> object:
    write_index(index, tmp_path / "index.faiss")
    back = read_index(tmp_path / "index.faiss")
    assert type(back) is type(index) and back.ntotal == index.ntotal
    return back


@pytest.mark.parametrize("nbits", [16, 32, 64])
def test_binary_codes_export_to_index_binary_flat(nbits: int, tmp_path: Path) -> None:
    bits01 = RNG.integers(0, 2, (300, nbits))
    db = BinaryCodes(ids=np.arange(300), bits=np.packbits(bits01, axis=1), nbits=nbits)
    q01 = RNG.integers(0, 2, (15, nbits))
    index = _round_trip(to_faiss_index(db), tmp_path)
    assert isinstance(index, faiss.IndexBinaryFlat) and index.d == nbits
    d, i = index.search(np.packbits(q01, axis=1), K)
    hamming = (q01[:, None, :] != bits01[None]).sum(-1)
    _assert_same_ranking(-hamming.astype(np.float64), -d.astype(np.float64), i, tol=0)


def test_float_codes_export_to_flat_inner_product(tmp_path: Path) -> None:
    db = FloatCodes(ids=np.arange(300), x=RNG.standard_normal((300, 24)))
    q = RNG.standard_normal((15, 24)).astype(np.float32)
    index = _round_trip(to_faiss_index(db), tmp_path)
    assert isinstance(index, faiss.IndexFlatIP) and index.metric_type == faiss.METRIC_INNER_PRODUCT
    _assert_same_ranking(q @ db.x.T, *index.search(q, K))


@pytest.mark.parametrize("m", [1, 2, 4])
def test_additive_codes_export_searches_aqd(m: int, tmp_path: Path) -> None:
    """Random full-dimensional codebooks: faiss LUT search with external codebooks = ⟨q, Σ_m C_m[k_m]⟩."""
    db = QuantizedCodes(ids=np.arange(400), codes=RNG.integers(0, 256, (400, m)).astype(np.uint8),
                        codebooks=RNG.standard_normal((m, 256, 20)))
    q = RNG.standard_normal((15, 20)).astype(np.float32)
    index = _round_trip(to_faiss_index(db), tmp_path)
    assert isinstance(index, faiss.IndexLocalSearchQuantizer)
    assert (index.metric_type, index.lsq.search_type, index.code_size) == \
        (faiss.METRIC_INNER_PRODUCT, faiss.AdditiveQuantizer.ST_LUT_nonorm, m)
    xhat = db.codebooks[np.arange(m), db.codes].sum(axis=1)
    np.testing.assert_allclose(index.reconstruct_n(0, 400), xhat, atol=1e-5)  # codes and codebooks survive as-is
    _assert_same_ranking(q @ xhat.T, *index.search(q, K))


@pytest.mark.parametrize("name", ["pq", "opq", "lsq"])
def test_fitted_quantizers_export_searches_aqd(name: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((400, 30)) + rng.standard_normal((8, 30))[rng.integers(0, 8, 400)]).astype(np.float32)
    method = create_method(name, bits=24, **({"train_iters": 3} if name == "lsq" else {}))
    method.fit(TrainSet.from_features(x))
    db, q = method.encode(x, np.arange(400)), method.encode_query(x[:15], np.arange(15))
    index = _round_trip(to_faiss_index(db), tmp_path)
    xhat = db.codebooks[np.arange(3), db.codes].sum(axis=1)
    _assert_same_ranking(q.x @ xhat.T, *index.search(q.x, K))


def test_exported_additive_index_can_encode_new_vectors() -> None:
    """Serving can add items with faiss's own (ICM) encoder: a reconstruction is encoded back to its codes."""
    db = QuantizedCodes(ids=np.arange(50), codes=RNG.integers(0, 256, (50, 2)).astype(np.uint8),
                        codebooks=RNG.standard_normal((2, 256, 16)))
    index = to_faiss_index(db)
    index.add(index.reconstruct_n(0, 50))
    assert index.ntotal == 100
    added = faiss.vector_to_array(index.codes).reshape(100, 2)[50:]
    assert (added == db.codes).all(axis=1).mean() > 0.8


def test_additive_export_needs_byte_codes() -> None:
    db = QuantizedCodes(ids=["a"], codes=np.zeros((1, 2), np.uint8), codebooks=np.zeros((2, 16, 4)))
    with pytest.raises(TagcodeError, match="needs 256 codewords per codebook"):
        to_faiss_index(db)


def test_read_index_errors_and_atomic_write(tmp_path: Path) -> None:
    with pytest.raises(TagcodeError, match="no faiss index here"):
        read_index(tmp_path / "missing.faiss")
    (tmp_path / "junk.faiss").write_bytes(b"definitely not an index")
    with pytest.raises(TagcodeError, match="not a faiss index"):
        read_index(tmp_path / "junk.faiss")
    good = to_faiss_index(FloatCodes(ids=["a", "b"], x=np.eye(2)))
    write_index(good, tmp_path / "index.faiss")
    with pytest.raises(TypeError):
        write_index("not an index", tmp_path / "index.faiss")
    assert read_index(tmp_path / "index.faiss").ntotal == 2  # the failed write left the old index intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.faiss", "junk.faiss"]
