"""The method registry and interface: baselines now, WSDHQ/WSHRCA later, all created and loaded by name.

A method is built for one code length (``create_method(name, bits=...)``), fitted on training features,
then encodes the database side (binary, quantized or float codes) and the query side (binary codes for
Hamming search, or float vectors for asymmetric/inner-product search). A fitted method saves to a
directory (``config.json`` + ``arrays.safetensors``) and loads back with identical codes.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np

from tagcode.errors import TagcodeError
from tagcode.io import atomic_path
from tagcode.registry import Registry
from tagcode.retrieval.codes import BinaryCodes, FloatCodes, QuantizedCodes

METHODS: Registry[type[Method]] = Registry("method")


class Method(ABC):
    """A retrieval method for one code length; learned state lives in ``arrays``, options in ``options``.

    Subclasses declare their options as keyword-only arguments of ``__init__`` (``create_method`` accepts
    no others) and pass them on to this one, which keeps them for ``save``.
    """

    name: ClassVar[str]
    kind: ClassVar[Literal["binary", "quantizer", "float"]]
    supervision: ClassVar[Literal["none", "tags"]] = "none"

    def __init__(self, bits: int, seed: int = 0, **options: Any) -> None:
        self.check_bits(bits)
        self.bits, self.seed, self.options = int(bits), int(seed), options
        self.arrays: dict[str, np.ndarray] = {}

    @classmethod
    @abstractmethod
    def check_bits(cls, bits: int) -> None:
        """Raise a one-line TagcodeError naming the method, ``bits`` and what it supports."""

    @abstractmethod
    def fit(self, x: np.ndarray) -> Self:
        """Learn from float32 training features ``x`` (n, d)."""

    @abstractmethod
    def encode(self, x: np.ndarray, ids: np.ndarray) -> BinaryCodes | QuantizedCodes | FloatCodes:
        """Database-side codes of features ``x`` (n, d) for image ``ids`` (n,)."""

    @abstractmethod
    def encode_query(self, x: np.ndarray, ids: np.ndarray) -> BinaryCodes | FloatCodes:
        """Query-side representation: binary codes for Hamming search, float vectors otherwise."""

    def save(self, path: str | Path) -> None:
        """Write ``config.json`` and ``arrays.safetensors`` into directory ``path``, atomically."""
        from safetensors.numpy import save_file

        if not self.arrays:
            raise TagcodeError(f"{self.name}: nothing to save, the method is not fitted")
        config = {"name": self.name, "bits": self.bits, "seed": self.seed, "options": self.options}
        with atomic_path(path) as tmp:
            tmp.mkdir()
            (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
            save_file({k: np.ascontiguousarray(v) for k, v in self.arrays.items()}, str(tmp / "arrays.safetensors"))

    @classmethod
    def load(cls, path: str | Path) -> Method:
        """Load a method saved with :meth:`save`; ``Method.load`` dispatches on the saved name."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = Path(path)
        try:
            config = json.loads((path / "config.json").read_text())
            arrays = load_file(str(path / "arrays.safetensors"))
        except FileNotFoundError:
            raise TagcodeError(f"{path}: no trained model here (run `tagcode train` first)") from None
        except (json.JSONDecodeError, SafetensorError) as exc:
            raise TagcodeError(f"{path}: unreadable model ({exc})") from None
        method = create_method(config["name"], bits=config["bits"], seed=config["seed"], **config["options"])
        if not isinstance(method, cls):
            raise TagcodeError(f"{path}: holds a {config['name']!r} model, not {cls.__name__}")
        method.arrays = arrays
        return method


def as_features(x: np.ndarray, who: str, dim: int | None = None) -> np.ndarray:
    """``x`` as a finite float32 (n, d) array, ``d == dim`` when given; otherwise a one-line TagcodeError."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise TagcodeError(f"{who}: features must be a non-empty (n, d) array, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise TagcodeError(f"{who}: features have {x.shape[1]} dims, the model was fitted on {dim}")
    if not np.isfinite(x).all():
        raise TagcodeError(f"{who}: features contain NaN/inf")
    return x


def create_method(name: str, *, bits: int, seed: int = 0, **options: Any) -> Method:
    """Create registered method ``name`` for ``bits``-bit codes; unknown names or options are one-line errors."""
    cls = METHODS.get(name)
    params = inspect.signature(cls).parameters.values()
    accepted = sorted(p.name for p in params if p.kind == p.KEYWORD_ONLY)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TagcodeError(f"method {name!r} has no option {unknown[0]!r} (options: {', '.join(accepted) or 'none'})")
    return cls(bits=bits, seed=seed, **options)


def load_method(path: str | Path) -> Method:
    """Load any saved method (the ``encode`` stage's entry point): ``Method.load(path)``."""
    return Method.load(path)
