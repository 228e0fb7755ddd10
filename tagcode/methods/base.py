"""The method registry: baselines now, WSDHQ/WSHRCA later, all created and loaded by name."""

from __future__ import annotations

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
    """A retrieval method for one code length: ``fit`` on training features, ``encode`` database and queries.

    Features are centred on the training mean and L2-normalised first, so inner products are cosines.
    Subclasses keep their learned state in ``self.arrays`` (numpy) and their options in ``self.options``.
    """

    name: ClassVar[str]
    kind: ClassVar[Literal["binary", "quantizer", "float"]]
    supervision: ClassVar[Literal["none", "tags"]] = "none"

    def __init__(self, bits: int, seed: int = 0, **options: Any) -> None:
        self.check_bits(bits)
        self.bits, self.seed, self.options = bits, seed, options
        self.arrays: dict[str, np.ndarray] = {}

    @classmethod
    @abstractmethod
    def check_bits(cls, bits: int) -> None:
        """Raise a one-line TagcodeError when the method cannot produce ``bits``-bit codes."""

    def _prep(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32) - self.arrays["mean"]
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def fit(self, x: np.ndarray) -> Self:
        """Learn the method's state from training features ``x`` (n, d)."""
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0 or not np.isfinite(x).all():
            raise TagcodeError(f"{self.name}: training features are empty or contain NaN/inf")
        self.arrays["mean"] = x.mean(axis=0)
        self._fit(self._prep(x))
        return self

    @abstractmethod
    def _fit(self, x: np.ndarray) -> None: ...

    @abstractmethod
    def encode(self, x: np.ndarray, ids: np.ndarray) -> BinaryCodes | QuantizedCodes | FloatCodes:
        """Database-side codes."""

    def encode_query(self, x: np.ndarray, ids: np.ndarray) -> BinaryCodes | FloatCodes:
        """Query-side representation: the same codes for binary methods, the vector for asymmetric search."""
        return FloatCodes(ids=np.asarray(ids, dtype=object), x=self._prep(x))

    def save(self, path: str | Path) -> None:
        """Write ``config.json`` and ``arrays.npz`` atomically."""
        with atomic_path(path) as tmp:
            tmp.mkdir()
            (tmp / "config.json").write_text(json.dumps({"name": self.name, "bits": self.bits, "seed": self.seed,
                                                         "options": self.options}, indent=2))
            np.savez(tmp / "arrays.npz", **self.arrays)


def create_method(name: str, *, bits: int, seed: int = 0, **options: Any) -> Method:
    """Create a registered method for a code length (options are method-specific)."""
    cls = METHODS.get(name)
    try:
        return cls(bits=bits, seed=seed, **options)
    except TypeError as exc:
        raise TagcodeError(f"method {name!r}: {exc}") from None


def load_method(path: str | Path) -> Method:
    """Load a method saved with :meth:`Method.save`."""
    path = Path(path)
    try:
        cfg = json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        raise TagcodeError(f"{path}: no trained model here (run `tagcode train` first)") from None
    method = create_method(cfg["name"], bits=cfg["bits"], seed=cfg["seed"], **cfg["options"])
    with np.load(path / "arrays.npz") as z:
        method.arrays = {k: z[k] for k in z.files}
    return method
