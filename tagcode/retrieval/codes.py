"""Code containers written by ``encode`` and read by ``evaluate``: binary, additive-quantized, float."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagcode.errors import TagcodeError
from tagcode.io import atomic_path


@dataclass
class BinaryCodes:
    """Packed bits (``np.packbits`` of {0,1}, shape ``(n, nbits // 8)``) per image id."""

    ids: np.ndarray
    bits: np.ndarray
    nbits: int


@dataclass
class QuantizedCodes:
    """Additive codes: x̂ = Σ_m codebooks[m, codes[:, m]]; ``codes`` (n, M) uint8, ``codebooks`` (M, K, d)."""

    ids: np.ndarray
    codes: np.ndarray
    codebooks: np.ndarray


@dataclass
class FloatCodes:
    """Uncompressed vectors (the float reference, and quantizers' query side for asymmetric search)."""

    ids: np.ndarray
    x: np.ndarray


Codes = BinaryCodes | QuantizedCodes | FloatCodes
_KINDS = {"binary": BinaryCodes, "quantized": QuantizedCodes, "float": FloatCodes}


def save_codes(codes: Codes, path: str | Path) -> None:
    """Write a container as ``path/{meta.json,arrays.npz}``, atomically; duplicate ids are refused."""
    ids = np.asarray(codes.ids, dtype=str)
    if len(set(ids.tolist())) != len(ids):
        raise TagcodeError(f"{path}: duplicate image ids in codes")
    kind = next(k for k, cls in _KINDS.items() if isinstance(codes, cls))
    arrays = {k: v for k, v in vars(codes).items() if isinstance(v, np.ndarray) and k != "ids"}
    meta = {"kind": kind, **{k: v for k, v in vars(codes).items() if isinstance(v, int)}}
    with atomic_path(path) as tmp:
        tmp.mkdir()
        np.savez(tmp / "arrays.npz", ids=ids, **arrays)
        (tmp / "meta.json").write_text(json.dumps(meta))


def load_codes(path: str | Path) -> Codes:
    """Read a container written by :func:`save_codes`."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
        z = np.load(path / "arrays.npz", allow_pickle=False)
    except FileNotFoundError:
        raise TagcodeError(f"{path}: no codes here (run `tagcode encode` first)") from None
    cls = _KINDS[meta.pop("kind")]
    fields = {k: z[k] for k in z.files}
    fields["ids"] = fields["ids"].astype(object)
    return cls(**fields, **meta)
