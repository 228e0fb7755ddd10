"""Every registered method (timm-style parametrised): fit, encode, save/load, quality, faiss export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagcode.errors import TagcodeError
from tagcode.methods import METHODS, create_method, load_method
from tagcode.retrieval.codes import BinaryCodes, FloatCodes, QuantizedCodes, load_codes, save_codes
from tagcode.retrieval.index import read_index, to_faiss_index, write_index
from tagcode.retrieval.search import aqd_knn, float_knn, hamming_knn, reconstruct

BITS = {"lsh": 32, "itq": 16, "pq": 16, "opq": 16, "lsq": 16, "float": 32}


def _clustered(n: int = 400, d: int = 30, clusters: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)) * 3
    y = rng.integers(0, clusters, n)
    return (centres[y] + rng.standard_normal((n, d))).astype(np.float32), y


def _neighbours(method, x: np.ndarray, k: int) -> np.ndarray:
    ids = np.arange(len(x)).astype(str)
    db, q = method.encode(x, ids), method.encode_query(x, ids)
    if isinstance(db, BinaryCodes):
        return hamming_knn(q.bits, db.bits, k + 1)[1]
    if isinstance(db, QuantizedCodes):
        return aqd_knn(q.x, db.codes, db.codebooks, k + 1)[1]
    return float_knn(q.x, db.x, k + 1)[1]


@pytest.mark.parametrize("name", METHODS.names())
def test_method_round_trip_and_quality(name: str, tmp_path: Path) -> None:
    x, y = _clustered()
    method = create_method(name, bits=BITS[name], seed=0, **({"train_iters": 4} if name == "lsq" else {}))
    method.fit(x)
    ids = np.arange(len(x)).astype(str)
    codes = method.encode(x, ids)
    assert {"binary": BinaryCodes, "quantizer": QuantizedCodes, "float": FloatCodes}[method.kind] is type(codes)
    if isinstance(codes, BinaryCodes):
        assert codes.bits.shape == (len(x), BITS[name] // 8) and codes.bits.dtype == np.uint8
    if isinstance(codes, QuantizedCodes):
        assert codes.codes.shape == (len(x), BITS[name] // 8) and codes.codebooks.shape[:2] == (BITS[name] // 8, 256)
    method.save(tmp_path / "model")
    again = load_method(tmp_path / "model").encode(x, ids)
    for field in ("bits", "codes", "x"):
        if hasattr(codes, field):
            np.testing.assert_array_equal(getattr(again, field), getattr(codes, field))
    nn = _neighbours(method, x, 10)[:, 1:]
    same = (y[nn] == y[:, None]).mean()
    assert same > 0.6, f"{name}: only {same:.2f} of the neighbours share the cluster (random: 0.125)"


@pytest.mark.parametrize(("name", "bits"), [("lsh", 12), ("itq", 4), ("pq", 12), ("lsq", 72), ("float", 16)])
def test_impossible_code_lengths(name: str, bits: int) -> None:
    with pytest.raises(TagcodeError, match=f"'{name}'.*{bits}"):
        create_method(name, bits=bits)


def test_unknown_method_and_bad_features() -> None:
    with pytest.raises(TagcodeError, match="unknown method 'itqq'"):
        create_method("itqq", bits=16)
    x, _ = _clustered(50)
    x[3, 2] = np.nan
    with pytest.raises(TagcodeError, match="NaN/inf"):
        create_method("lsh", bits=16).fit(x)


def test_opq_codebooks_live_in_the_input_space() -> None:
    x, _ = _clustered(500, d=16)
    m = create_method("opq", bits=16).fit(x)
    db = m.encode(x, np.arange(500).astype(str))
    xp = m._prep(x)
    recon = np.sum([db.codebooks[j][db.codes[:, j]] for j in range(2)], axis=0)
    rotated = (m.arrays["block"][0][db.codes[:, 0]] + m.arrays["block"][1][db.codes[:, 1]]) @ m.arrays["rotation"]
    np.testing.assert_allclose(recon, rotated, atol=1e-5)
    assert ((xp - recon) ** 2).sum(1).mean() < ((xp - xp.mean(0)) ** 2).sum(1).mean()


@pytest.mark.parametrize("name", ["itq", "lsq", "opq", "float"])
def test_faiss_export_ranks_like_the_evaluator(name: str, tmp_path: Path) -> None:
    x, _ = _clustered(300)
    m = create_method(name, bits=BITS[name], **({"train_iters": 4} if name == "lsq" else {})).fit(x)
    ids = np.arange(300).astype(str)
    db, q = m.encode(x, ids), m.encode_query(x[:20], ids[:20])
    save_codes(db, tmp_path / "db")
    db = load_codes(tmp_path / "db")
    write_index(to_faiss_index(db), tmp_path / "index.faiss")
    index = read_index(tmp_path / "index.faiss")
    if isinstance(db, BinaryCodes):
        d, _ = index.search(q.bits, 10)
        np.testing.assert_array_equal(d, hamming_knn(q.bits, db.bits, 10)[0])
    else:
        s, i = index.search(q.x, 10)
        ref_s, ref_i = aqd_knn(q.x, db.codes, db.codebooks, 10) if isinstance(db, QuantizedCodes) else \
            float_knn(q.x, db.x, 10)
        np.testing.assert_allclose(s, ref_s, rtol=1e-4, atol=1e-4)
        xb = db.x if isinstance(db, FloatCodes) else reconstruct(db.codes, db.codebooks)
        own = np.take_along_axis(q.x @ xb.T, i, 1)  # faiss's items score what the evaluator says (ties may reorder)
        np.testing.assert_allclose(own, s, rtol=1e-4, atol=1e-4)
        assert (i[:, 0] == ref_i[:, 0]).mean() > 0.5


def test_codes_refuse_duplicate_ids(tmp_path: Path) -> None:
    with pytest.raises(TagcodeError, match="duplicate image ids"):
        save_codes(FloatCodes(ids=np.array(["a", "a"], dtype=object), x=np.zeros((2, 3), np.float32)), tmp_path / "c")
    with pytest.raises(TagcodeError, match="no codes here"):
        load_codes(tmp_path / "c")
