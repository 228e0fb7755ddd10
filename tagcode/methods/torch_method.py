"""TorchMethod: the base of torch-trained methods (WSDHQ, WSHRCA, WDHT).

It owns what every such method needs and none should write twice: options (device, training mode,
backbone, checkpoint period), seeding, the trunk that turns training rows into network input (frozen
features, or images through a fine-tuned backbone for end-to-end training), periodic checkpoints with exact
resume, and the saved state (the model's tensors in ``arrays.safetensors`` under ``model.``, everything else
in ``config.json``; no pickle). A subclass builds its model, runs its own training loop and encodes.

Resume is exact: a checkpoint holds the model, the optimizers and schedulers, the method's own arrays and
values, and every random state (torch's global generator, which dropout uses, the context's torch and numpy
generators), so a run killed at any point and resumed ends with the same model as an uninterrupted run.
"""

from __future__ import annotations

import json
import random
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import torch
from pydantic import Field
from torch import nn

from tagcode.device import resolve_device
from tagcode.errors import TagcodeError
from tagcode.io import atomic_path
from tagcode.methods.base import LogFn, Method, Options
from tagcode.methods.trainset import TrainSet

ENCODE_BATCH = 1024  # rows per forward pass when encoding


class TorchOptions(Options):
    """Options every torch-trained method has."""

    device: str = Field("auto", description="auto (CUDA when present), cpu or cuda[:N]")
    mode: Literal["features", "end_to_end"] = Field(
        "features", description="train a head on frozen backbone features, or fine-tune the backbone from the "
                                "image cache (the papers' GPU setting)")
    backbone: str = Field("efficientnet_lite0", description="backbone for end_to_end mode (tagcode.backbones)")
    backbone_weights: str | None = Field(None, description="weights file for the backbone (end_to_end mode)")
    input_size: int | None = Field(None, ge=16, description="backbone input size in end_to_end mode (None: its own)")
    checkpoint_every: int = Field(50, ge=1, description="training steps between checkpoints")


class Trunk(nn.Module):
    """What comes before a method's head: nothing (features mode) or a backbone on images (end-to-end)."""

    def __init__(self, backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.backbone is None else self.backbone(x)


class TrainContext:
    """The training loop's services: device, seeded generators, inputs, loss logging and checkpoints."""

    def __init__(self, method: TorchMethod, train: TrainSet, model: nn.Module, device: torch.device,
                 log: LogFn | None, checkpoint_dir: Path | None) -> None:
        self.method, self.train, self.model, self.device = method, train, model, device
        self.generator = torch.Generator().manual_seed(method.seed)
        self.rng = np.random.default_rng(method.seed)
        self._log, self.checkpoint_dir = log, checkpoint_dir
        self._features = None if train.features is None else torch.from_numpy(train.features).to(device)

    def inputs(self, rows: np.ndarray, *, train: bool = True) -> torch.Tensor:
        """Network input for training rows ``rows``: their features, or their images through the trunk's backbone
        (a random crop and flip per image when ``train``, drawn from :attr:`generator`)."""
        trunk: Trunk = self.model.trunk  # type: ignore[assignment]
        if trunk.backbone is None:
            return self._features[torch.as_tensor(rows, device=self.device)]
        from tagcode.backbones.transforms import to_tensor

        images = self.train.images_of(rows)
        return trunk(to_tensor(images, trunk.backbone.preprocess, train=train, generator=self.generator,
                               device=self.device))

    def log(self, step: int, terms: dict[str, Any]) -> None:
        """Send the named loss terms of ``step`` (tensors or numbers) to the ``log`` callback, as floats."""
        if self._log is not None:
            self._log(int(step), {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in terms.items()})

    def due(self, step: int) -> bool:
        """True when a checkpoint is due after finishing ``step`` (1-based count of steps done)."""
        return self.checkpoint_dir is not None and step % self.method.opts.checkpoint_every == 0

    def save(self, step: int, state: dict[str, Any]) -> None:
        """Checkpoint after ``step`` steps: the model, and ``state`` (optimizers, schedulers, arrays, tensors and
        JSON values by name), with every random state; published atomically, replacing the previous one."""
        if self.checkpoint_dir is None:
            return
        tensors: dict[str, torch.Tensor] = {}
        values: dict[str, Any] = {"step": int(step), "rng": {
            "torch": _b64(torch.get_rng_state()), "generator": _b64(self.generator.get_state()),
            "numpy": self.rng.bit_generator.state, "python": list(random.getstate()[1]),
            "cuda": [_b64(s) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        }}
        _flatten("model", self.model.state_dict(), tensors, values)
        for name, obj in state.items():
            _flatten(name, obj.state_dict() if hasattr(obj, "state_dict") else obj, tensors, values)
        from safetensors.torch import save_file

        with atomic_path(self.checkpoint_dir / "last") as tmp:
            tmp.mkdir()
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / "tensors.safetensors"))
            (tmp / "state.json").write_text(json.dumps(values) + "\n")

    def resume(self, state: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """Restore the last checkpoint, if any: the model and every object of ``state`` with ``load_state_dict``
        in place, and the random states; returns (steps done, the other saved values by name)."""
        if self.checkpoint_dir is None or not (self.checkpoint_dir / "last" / "state.json").is_file():
            return None
        from safetensors.torch import load_file

        last = self.checkpoint_dir / "last"
        try:
            values = json.loads((last / "state.json").read_text())
            tensors = load_file(str(last / "tensors.safetensors"))
        except Exception as exc:  # a checkpoint from another version or a corrupt file
            raise TagcodeError(f"{last}: unreadable checkpoint ({exc}); delete it to start afresh") from None
        self.model.load_state_dict(_unflatten("model", tensors, values))
        out: dict[str, Any] = {}
        for name, obj in state.items():
            saved = _unflatten(name, tensors, values)
            if hasattr(obj, "load_state_dict"):
                obj.load_state_dict(saved)
            else:
                out[name] = saved
        rng = values["rng"]
        torch.set_rng_state(_unb64(rng["torch"]))
        self.generator.set_state(_unb64(rng["generator"]))
        self.rng.bit_generator.state = rng["numpy"]
        random.setstate((3, tuple(rng["python"]), None))
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([_unb64(s) for s in rng["cuda"]])
        return int(values["step"]), out


class TorchMethod(Method):
    """Base of torch-trained, tag-supervised methods. Subclasses implement :meth:`describe`, :meth:`build`,
    :meth:`train_loop` and the encoders (with :meth:`embed`); the base does the rest."""

    supervision = "tags"
    Options = TorchOptions

    def __init__(self, bits: int, seed: int = 0, **options: Any) -> None:
        super().__init__(bits, seed, **options)
        self.model: nn.Module | None = None

    @property
    def input(self) -> Literal["features", "images"]:
        return "images" if self.opts.mode == "end_to_end" else "features"

    @abstractmethod
    def describe(self, train: TrainSet, in_dim: int) -> dict[str, Any]:
        """JSON-ready facts the model's shape depends on (saved in ``meta``; ``in_dim`` is included for you)."""

    @abstractmethod
    def build(self, meta: dict[str, Any]) -> nn.Module:
        """The method's model (without the trunk) for ``meta``; :meth:`fit` seeds torch before calling it."""

    @abstractmethod
    def train_loop(self, ctx: TrainContext) -> dict[str, np.ndarray]:
        """Train ``ctx.model`` (resuming with ``ctx.resume`` when a checkpoint exists); return the arrays to save
        besides the model's tensors (e.g. codebooks)."""

    def fit(self, train: TrainSet, *, log: LogFn | None = None, checkpoint_dir: str | Path | None = None) -> Self:
        train.require(self.name, "tags", "images" if self.opts.mode == "end_to_end" else "features")
        device = resolve_device(self.opts.device)
        _seed_everything(self.seed)
        trunk = Trunk(self._backbone(pretrained=True)) if self.opts.mode == "end_to_end" else Trunk()
        in_dim = trunk.backbone.feature_dim if trunk.backbone is not None else int(train.features.shape[1])
        self.meta = {"in_dim": in_dim, **self.describe(train, in_dim)}
        model = _Model(trunk, self.build(self.meta)).to(device)
        ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
        with _deterministic():
            extra = self.train_loop(TrainContext(self, train, model, device, log, ckpt))
        self.model = model.cpu().eval()
        self.arrays = {**{f"model.{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}, **extra}
        return self

    def restore(self) -> None:
        """Rebuild the model from the saved ``meta`` and its tensors (``model.*`` arrays)."""
        trunk = Trunk(self._backbone(pretrained=False)) if self.opts.mode == "end_to_end" else Trunk()
        _seed_everything(self.seed)
        model = _Model(trunk, self.build(self.meta))
        state = {k[len("model."):]: torch.from_numpy(np.array(v)) for k, v in self.arrays.items()
                 if k.startswith("model.")}
        built = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        saved = {k: tuple(v.shape) for k, v in state.items()}
        if built != saved:
            misfit = [f"{k} (saved {saved.get(k, 'none')}, built {built.get(k, 'none')})"
                      for k in sorted(built.keys() | saved.keys()) if built.get(k) != saved.get(k)]
            more = f" and {len(misfit) - 4} more" if len(misfit) > 4 else ""
            raise TagcodeError(f"{self.name}: the saved tensors do not fit the network its options build: "
                               f"{'; '.join(misfit[:4])}{more}; saved by another tagcode version or with other "
                               "options, retrain it")
        model.load_state_dict(state)
        self.model = model.eval()

    @torch.no_grad()
    def embed(self, x: Any, head: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> np.ndarray:
        """``head(model.net, trunk(batch))`` in eval mode over ``x`` in batches, as float32 numpy: ``x`` is a
        features array (features mode) or a uint8 image array (end-to-end mode, centre crop)."""
        if self.model is None:
            raise TagcodeError(f"{self.name}: the method is not fitted (call fit, or load a trained model)")
        model = self.model.eval()
        dev = next(model.parameters()).device
        out = []
        for lo in range(0, len(x), ENCODE_BATCH):
            batch = np.asarray(x[lo:lo + ENCODE_BATCH])
            if model.trunk.backbone is None:
                if batch.ndim != 2 or batch.shape[1] != self.meta["in_dim"]:
                    raise TagcodeError(f"{self.name}: expected ({self.meta['in_dim']},)-dim features, got shape "
                                       f"{batch.shape}")
                inp = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(dev)
            else:
                from tagcode.backbones.transforms import to_tensor

                inp = model.trunk(to_tensor(batch, model.trunk.backbone.preprocess, device=dev))
            out.append(head(model.net, inp).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)

    def _backbone(self, *, pretrained: bool) -> nn.Module:
        from tagcode.backbones import create_backbone

        kwargs = {"size": self.opts.input_size} if self.opts.input_size is not None else {}
        return create_backbone(self.opts.backbone, weights=self.opts.backbone_weights, pretrained=pretrained,
                               **kwargs)


class _Model(nn.Module):
    """The trunk (identity or backbone) and the method's network, saved as one state dict."""

    def __init__(self, trunk: Trunk, net: nn.Module) -> None:
        super().__init__()
        self.trunk, self.net = trunk, net


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic torch kernels while training (same seed, same bits on one machine), restored afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _b64(t: torch.Tensor) -> str:
    import base64

    return base64.b64encode(t.cpu().numpy().tobytes()).decode()


def _unb64(s: str) -> torch.Tensor:
    import base64

    return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.uint8).copy())


def _flatten(prefix: str, obj: Any, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
    """Split a nested state (dicts, lists, tensors, arrays, JSON values) into named tensors and a JSON skeleton."""
    values.setdefault("tree", {})[prefix] = _skeleton(prefix, obj, tensors)


def _skeleton(path: str, obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if torch.is_tensor(obj):
        tensors[path] = obj
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(obj))
        return {"__array__": path}
    if isinstance(obj, dict):
        return {"__dict__": [[_skeleton(f"{path}.k{i}", k, tensors), _skeleton(f"{path}.{i}", v, tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, list | tuple):
        return {"__list__": [_skeleton(f"{path}.{i}", v, tensors) for i, v in enumerate(obj)],
                "tuple": isinstance(obj, tuple)}
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _unflatten(prefix: str, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> Any:
    return _rebuild(values["tree"][prefix], tensors)


def _rebuild(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, dict):
        if "__tensor__" in node:
            return tensors[node["__tensor__"]]
        if "__array__" in node:
            return tensors[node["__array__"]].numpy()
        if "__dict__" in node:
            return {_rebuild(k, tensors): _rebuild(v, tensors) for k, v in node["__dict__"]}
        if "__list__" in node:
            items = [_rebuild(v, tensors) for v in node["__list__"]]
            return tuple(items) if node["tuple"] else items
    return node
