"""Code containers: validation, save/load round trips for all three kinds, duplicate ids, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tagcode.errors import TagcodeError
from tagcode.retrieval.codes import BinaryCodes, FloatCodes, QuantizedCodes, load_codes, save_codes

RNG = np.random.default_rng(0)


def _binary(n: int = 6, nbits: int = 24) -> BinaryCodes:
    return BinaryCodes(ids=[f"img{i}" for i in range(n)], bits=np.packbits(RNG.integers(0, 2, (n, nbits)), axis=1),
                       nbits=nbits)


def _quantized(n: int = 6, m: int = 3, d: int = 5) -> QuantizedCodes:
    return QuantizedCodes(ids=[f"img{i}" for i in range(n)], codes=RNG.integers(0, 256, (n, m)).astype(np.uint8),
                          codebooks=RNG.standard_normal((m, 256, d)).astype(np.float32))


def _float(n: int = 6, d: int = 5) -> FloatCodes:
    return FloatCodes(ids=[f"img{i}" for i in range(n)], x=RNG.standard_normal((n, d)))


@pytest.mark.parametrize("make", [_binary, _quantized, _float])
def test_round_trip_keeps_type_ids_and_arrays(make, tmp_path: Path) -> None:
    codes = make()
    save_codes(codes, tmp_path / "set")
    back = load_codes(tmp_path / "set")
    assert type(back) is type(codes)
    assert back.ids.dtype == object and list(back.ids) == [f"img{i}" for i in range(6)]
    for name, value in vars(codes).items():
        if name != "ids":
            np.testing.assert_array_equal(getattr(back, name), value)
            assert np.asarray(getattr(back, name)).dtype == np.asarray(value).dtype
    meta = json.loads((tmp_path / "set" / "meta.json").read_text())
    assert meta["n"] == 6 and meta["kind"] in {"binary", "quantized", "float"}


def test_containers_normalise_dtypes_and_ids() -> None:
    f = _float()
    assert f.x.dtype == np.float32 and f.ids.dtype == object
    q = QuantizedCodes(ids=np.arange(2), codes=np.zeros((2, 1), np.uint8), codebooks=np.zeros((1, 256, 3)))
    assert q.codebooks.dtype == np.float32 and list(q.ids) == ["0", "1"]
    assert _binary(nbits=16).bits.shape == (6, 2)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: BinaryCodes(ids=["a", "b"], bits=np.zeros((2, 16), np.uint8), nbits=16), "packed uint8"),
    (lambda: BinaryCodes(ids=["a", "b"], bits=np.zeros((2, 2), np.int64), nbits=16), "packed uint8"),
    (lambda: BinaryCodes(ids=["a", "b"], bits=np.zeros((2, 2), np.uint8), nbits=12), "multiple of 8"),
    (lambda: BinaryCodes(ids=["a"], bits=np.zeros((2, 2), np.uint8), nbits=16), "one row per id"),
    (lambda: QuantizedCodes(ids=["a"], codes=np.zeros((1, 2), np.uint8), codebooks=np.zeros((3, 256, 4))),
     r"\(n, 3\) for 3 codebooks"),
    (lambda: QuantizedCodes(ids=["a"], codes=np.zeros((1, 1), np.int32), codebooks=np.zeros((1, 256, 4))), "uint8"),
    (lambda: QuantizedCodes(ids=["a"], codes=np.full((1, 1), 20, np.uint8), codebooks=np.zeros((1, 16, 4))),
     "out of range for 16 codewords"),
    (lambda: QuantizedCodes(ids=["a"], codes=np.zeros((1, 1), np.uint8), codebooks=np.zeros((256, 4))), r"\(M, K"),
    (lambda: FloatCodes(ids=[["a"]], x=np.zeros((1, 3))), "one-dimensional"),
])
def test_malformed_containers_are_one_line_errors(build, message: str) -> None:
    with pytest.raises(TagcodeError, match=message) as err:
        build()
    assert "\n" not in str(err.value)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    dup = FloatCodes(ids=np.array(["a", "b", "a"], dtype=object), x=np.zeros((3, 2), np.float32))
    with pytest.raises(TagcodeError, match=r"duplicate image ids, e\.g\. 'a' \(1 duplicates\)"):
        save_codes(dup, tmp_path / "dup")
    assert not (tmp_path / "dup").exists()
    # a hand-made file with duplicates is refused on load too
    save_codes(_float(2), tmp_path / "ok")
    with open(tmp_path / "ok" / "arrays.npz", "wb") as fh:
        np.savez(fh, ids=np.array(["x", "x"]), x=np.zeros((2, 5), np.float32))
    with pytest.raises(TagcodeError, match="duplicate image ids"):
        load_codes(tmp_path / "ok")


def test_missing_and_corrupt_sets_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(TagcodeError, match="no codes here"):
        load_codes(tmp_path / "nothing")
    save_codes(_binary(), tmp_path / "set")
    (tmp_path / "set" / "arrays.npz").write_bytes(b"not a zip")
    with pytest.raises(TagcodeError, match=r"not an \.npz archive"):
        load_codes(tmp_path / "set")
    save_codes(_binary(), tmp_path / "set")
    (tmp_path / "set" / "meta.json").write_text(json.dumps({"kind": "float", "n": 6}))
    with pytest.raises(TagcodeError, match="do not describe float codes"):
        load_codes(tmp_path / "set")


def test_save_replaces_atomically(tmp_path: Path) -> None:
    save_codes(_float(4), tmp_path / "set")
    save_codes(_quantized(3), tmp_path / "set")  # overwrites a previous set of another kind
    assert isinstance(load_codes(tmp_path / "set"), QuantizedCodes)
    with pytest.raises(TagcodeError):
        save_codes(FloatCodes(ids=["a", "a"], x=np.zeros((2, 1))), tmp_path / "set")
    assert len(load_codes(tmp_path / "set").ids) == 3  # the failed write left the old set intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no temporaries left behind


@pytest.mark.parametrize(("damage", "message"), [
    (lambda b: b[: len(b) // 2], r"arrays\.npz: damaged \.npz archive"),
    (lambda b: bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
     r"arrays\.npz: not an \.npz archive"),
    (lambda b: b"", r"arrays\.npz: not an \.npz archive"),
])
def test_damaged_arrays_are_one_line_errors(tmp_path: Path, damage, message: str) -> None:
    save_codes(_float(4), tmp_path / "set")
    npz = tmp_path / "set" / "arrays.npz"
    npz.write_bytes(damage(npz.read_bytes()))
    with pytest.raises(TagcodeError, match=message) as info:
        load_codes(tmp_path / "set")
    assert "\n" not in str(info.value) and "allow_pickle" not in str(info.value)
