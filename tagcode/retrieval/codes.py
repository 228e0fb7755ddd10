"""Code containers written by ``encode`` and read by ``evaluate``: binary, additive-quantized, float.

Each container holds one set (database or queries) in row order with its image ids (unique strings).
Binary and quantized sets may also carry ``x``, the float embedding the codes were made from: a query set
then serves asymmetric search (AQD: float query against the database codes) as well as symmetric search
(Hamming, SQD), and a database set serves the unquantized ``feats`` reference. :func:`views` lists what a
set offers; the evaluator picks the score from the protocol and these views, never from the class.
On disk a set is one directory: ``meta.json`` (kind, counts, shapes) and ``arrays.npz`` (no pickles).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from tagcode.errors import TagcodeError, check_unique_ids, one_line
from tagcode.io import atomic_path


def _ids(ids: Any) -> np.ndarray:
    """Image ids as a 1-D object array of ``str``."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise TagcodeError(f"image ids must be one-dimensional, got shape {ids.shape}")
    return ids.astype(str).astype(object)


def _rows(name: str, a: np.ndarray, ids: np.ndarray) -> None:
    if a.ndim != 2 or len(a) != len(ids):
        raise TagcodeError(f"{name} must have one row per id ({len(ids)}), got shape {a.shape}")


def _embedding(x: np.ndarray | None, ids: np.ndarray) -> np.ndarray | None:
    """The optional float view: float32 C-contiguous, one row per id."""
    if x is None:
        return None
    x = np.ascontiguousarray(x, dtype=np.float32)
    _rows("float embeddings", x, ids)
    return x


@dataclass
class BinaryCodes:
    """Packed bits (``np.packbits`` of {0,1}, shape ``(n, nbits // 8)``, uint8) per image id."""

    ids: np.ndarray
    bits: np.ndarray
    nbits: int
    x: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ids, self.nbits = _ids(self.ids), int(self.nbits)
        self.bits = np.ascontiguousarray(self.bits)
        self.x = _embedding(self.x, self.ids)
        _rows("binary codes", self.bits, self.ids)
        if self.bits.dtype != np.uint8 or self.nbits % 8 or self.bits.shape[1] * 8 != self.nbits:
            raise TagcodeError(f"binary codes must be packed uint8 of shape (n, {self.nbits // 8}) for "
                               f"{self.nbits} bits (a multiple of 8), got {self.bits.dtype} {self.bits.shape}")


@dataclass
class QuantizedCodes:
    """Additive codes: x̂ = Σ_m codebooks[m, codes[:, m]]; ``codes`` (n, M) uint8, ``codebooks`` (M, K, d) float32.

    PQ is the block-sparse special case (codebook m is zero outside block m).
    """

    ids: np.ndarray
    codes: np.ndarray
    codebooks: np.ndarray
    x: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ids = _ids(self.ids)
        self.x = _embedding(self.x, self.ids)
        self.codes = np.ascontiguousarray(self.codes)
        self.codebooks = np.ascontiguousarray(self.codebooks, dtype=np.float32)
        _rows("quantizer codes", self.codes, self.ids)
        if self.codebooks.ndim != 3 or not 1 <= self.codebooks.shape[1] <= 256:
            raise TagcodeError(f"codebooks must be (M, K ≤ 256, d), got shape {self.codebooks.shape}")
        m, k, _ = self.codebooks.shape
        if self.codes.dtype != np.uint8 or self.codes.shape[1] != m:
            raise TagcodeError(f"quantizer codes must be uint8 of shape (n, {m}) for {m} codebooks, "
                               f"got {self.codes.dtype} {self.codes.shape}")
        if self.codes.size and int(self.codes.max()) >= k:
            raise TagcodeError(f"quantizer code {int(self.codes.max())} is out of range for {k} codewords")


@dataclass
class FloatCodes:
    """Uncompressed float32 vectors (the float reference, and quantizers' query side for asymmetric search)."""

    ids: np.ndarray
    x: np.ndarray

    def __post_init__(self) -> None:
        self.ids = _ids(self.ids)
        self.x = np.ascontiguousarray(self.x, dtype=np.float32)
        _rows("float codes", self.x, self.ids)


Codes = BinaryCodes | QuantizedCodes | FloatCodes
_KINDS: dict[str, type[Codes]] = {"binary": BinaryCodes, "quantized": QuantizedCodes, "float": FloatCodes}


def views(codes: Codes) -> dict[str, np.ndarray]:
    """The arrays a search can use: ``bits`` (packed), ``codes`` + ``codebooks``, and/or the float ``x``."""
    return {f.name: v for f in fields(codes) if f.name not in ("ids", "nbits")
            and isinstance(v := getattr(codes, f.name), np.ndarray)}


def concat_codes(parts: list[Codes]) -> Codes:
    """Rows of several sets of one kind in order (database shards back into one set); the shared
    parameters (``nbits``, ``codebooks``) must be identical, duplicate ids are refused."""
    if not parts:
        raise TagcodeError("no code sets to concatenate")
    cls = type(parts[0])
    if any(type(p) is not cls for p in parts):
        raise TagcodeError(f"cannot concatenate different code kinds: {sorted({type(p).__name__ for p in parts})}")
    values: dict[str, Any] = {}
    for f in fields(cls):
        first = getattr(parts[0], f.name)
        if f.name == "codebooks" or not isinstance(first, np.ndarray):
            if any(not np.array_equal(getattr(p, f.name), first) for p in parts[1:]):
                raise TagcodeError(f"code sets disagree on {f.name}; they come from different models")
            values[f.name] = first
        else:
            values[f.name] = np.concatenate([getattr(p, f.name) for p in parts])
    check_unique_ids(values["ids"], "concatenated code sets")
    return cls(**values)


def save_codes(codes: Codes, path: str | Path) -> None:
    """Write one set as ``path/{meta.json,arrays.npz}``, atomically; duplicate ids are refused."""
    check_unique_ids(codes.ids, path)
    kind = next(k for k, cls in _KINDS.items() if isinstance(codes, cls))
    arrays = {f.name: getattr(codes, f.name) for f in fields(codes) if isinstance(getattr(codes, f.name), np.ndarray)}
    arrays["ids"] = arrays["ids"].astype(str)
    meta: dict[str, Any] = {"kind": kind, "n": len(codes.ids), "shapes": {k: list(v.shape) for k, v in arrays.items()}}
    if isinstance(codes, BinaryCodes):
        meta["nbits"] = codes.nbits
    with atomic_path(path) as tmp:
        tmp.mkdir()
        with open(tmp / "arrays.npz", "wb") as fh:
            np.savez(fh, **arrays)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_codes(path: str | Path) -> Codes:
    """Read a set written by :func:`save_codes` (the container type is recorded in ``meta.json``)."""
    path = Path(path)
    npz = path / "arrays.npz"
    try:
        meta = json.loads((path / "meta.json").read_text())
        with open(npz, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":  # np.load would otherwise try a pickle and blame allow_pickle
                raise TagcodeError(f"{npz}: not an .npz archive (damaged or overwritten; re-run `tagcode encode`)")
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise TagcodeError(f"{path}: no codes here (run `tagcode encode` first)") from None
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise TagcodeError(f"{npz}: damaged .npz archive ({one_line(exc)}; re-run `tagcode encode`)") from None
    except (ValueError, OSError, json.JSONDecodeError) as exc:
        raise TagcodeError(f"{path}: unreadable codes ({one_line(exc)})") from None
    if meta.get("kind") not in _KINDS:
        raise TagcodeError(f"{path}: unknown code kind {meta.get('kind')!r} in meta.json")
    cls = _KINDS[meta["kind"]]
    extra = {"nbits": meta.get("nbits")} if cls is BinaryCodes else {}
    names = {f.name for f in fields(cls)}
    optional = {f.name for f in fields(cls) if f.default is None}
    if not names - optional <= set(arrays) | set(extra) <= names or None in extra.values():
        raise TagcodeError(f"{path}: arrays {sorted(arrays)} and meta.json do not describe {meta['kind']} codes")
    codes = cls(**arrays, **extra)
    check_unique_ids(codes.ids, path)
    return codes
