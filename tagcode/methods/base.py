"""The method registry and interface: baselines and the tag-supervised methods, created and loaded by name.

A method is built for one code length (``create_method(name, bits=...)``) with options declared once, as the
pydantic ``Options`` model of its class (validated: an unknown option or a wrong type is a one-line error).
It is fitted on a :class:`~tagcode.methods.trainset.TrainSet` (features and/or images, tags, tag vectors;
never labels), then encodes the database side (binary, quantized or float codes) and the query side, which
carries every view a protocol may score (codes for Hamming/SQD, the float embedding for AQD/inner product).
A fitted method saves to a directory (``config.json`` + ``arrays.safetensors``, no pickle) and loads back
with identical codes.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from tagcode.config import validation_message
from tagcode.errors import TagcodeError
from tagcode.io import atomic_path
from tagcode.methods.trainset import TrainSet
from tagcode.registry import Registry
from tagcode.retrieval.codes import BinaryCodes, FloatCodes, QuantizedCodes

METHODS: Registry[type[Method]] = Registry("method")
LogFn = Callable[[int, dict[str, float]], None]
"""Receives (global step, named loss terms) once per training step; the tracking stage sends them to MLflow."""


class Options(BaseModel):
    """Base of every method's options: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Method(ABC):
    """A retrieval method for one code length; learned state lives in ``arrays`` (and ``meta``, JSON), options
    in ``opts`` (an instance of the class's ``Options`` model; ``options`` is its dict form, as saved)."""

    name: ClassVar[str]
    kind: ClassVar[Literal["binary", "quantizer", "float"]]
    supervision: ClassVar[Literal["none", "tags"]] = "none"
    Options: ClassVar[type[Options]] = Options

    def __init__(self, bits: int, seed: int = 0, **options: Any) -> None:
        self.check_bits(bits)
        try:
            self.opts = self.Options.model_validate(options)
        except ValidationError as exc:
            raise TagcodeError(validation_message(exc, f"method {self.name!r} options")) from None
        self.bits, self.seed, self.options = int(bits), int(seed), self.opts.model_dump()
        self.arrays: dict[str, np.ndarray] = {}
        self.meta: dict[str, Any] = {}
        self.label = self.name  # what results call it: the method, or the train stage's variant name

    @property
    def input(self) -> Literal["features", "images"]:
        """What encode feeds this method: backbone features, or images (end-to-end trained methods)."""
        return "features"

    @classmethod
    @abstractmethod
    def check_bits(cls, bits: int) -> None:
        """Raise a one-line TagcodeError naming the method, ``bits`` and what it supports."""

    @abstractmethod
    def fit(self, train: TrainSet, *, log: LogFn | None = None, checkpoint_dir: str | Path | None = None) -> Self:
        """Learn from ``train``; ``log`` receives per-step loss terms, ``checkpoint_dir`` holds resumable state."""

    @abstractmethod
    def encode(self, x: np.ndarray, ids: np.ndarray) -> BinaryCodes | QuantizedCodes | FloatCodes:
        """Database-side codes of features ``x`` (n, d) for image ``ids`` (n,)."""

    @abstractmethod
    def encode_query(self, x: np.ndarray, ids: np.ndarray) -> BinaryCodes | QuantizedCodes | FloatCodes:
        """Query-side representation carrying every view a protocol may score (codes and/or float ``x``)."""

    def save(self, path: str | Path) -> None:
        """Write ``config.json`` and ``arrays.safetensors`` into directory ``path``, atomically."""
        from safetensors.numpy import save_file

        if not self.arrays:
            raise TagcodeError(f"{self.name}: nothing to save, the method is not fitted")
        config = {"name": self.name, "label": self.label, "bits": self.bits, "seed": self.seed,
                  "options": self.options, "meta": self.meta}
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
        method.arrays, method.meta = arrays, config.get("meta", {})
        method.label = config.get("label", method.name)
        method.restore()
        return method

    def restore(self) -> None:
        """Rebuild any derived state after :meth:`load` set ``arrays`` and ``meta`` (torch methods: the model)."""
        return None


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


def check_byte_bits(name: str, bits: int) -> None:
    """The rule of binary codes packed into bytes: ``bits`` a positive multiple of 8, else a one-line error."""
    if bits < 8 or bits % 8:
        raise TagcodeError(f"method {name!r} cannot make {bits}-bit codes: it supports multiples of 8 "
                           "(8, 16, 32, 64, ...)")


def create_method(name: str, *, bits: int, seed: int = 0, **options: Any) -> Method:
    """Create registered method ``name`` for ``bits``-bit codes; unknown names or options are one-line errors."""
    cls = METHODS.get(name)
    accepted = sorted(cls.Options.model_fields)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TagcodeError(f"method {name!r} has no option {unknown[0]!r} (options: {', '.join(accepted) or 'none'})")
    return cls(bits=bits, seed=seed, **options)


def load_method(path: str | Path) -> Method:
    """Load any saved method (the ``encode`` stage's entry point): ``Method.load(path)``."""
    return Method.load(path)
