"""The backbone registry: every backbone declares its input preprocessing and its feature dimension."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from tagcode.errors import TagcodeError, one_line
from tagcode.registry import Registry

BACKBONES: Registry[Backbone] = Registry("backbone")


@dataclass(frozen=True)
class Preprocess:
    """How uint8 RGB images become network input (see :func:`tagcode.backbones.transforms.to_tensor`).

    Geometry: the shorter side is resized to ``resize`` (``None``: the whole image is resized to ``size``, no
    crop), then a ``size`` square is cut: the centre one at evaluation, a random one in training, where
    ``train_resize`` (``None``: same as ``resize``) replaces ``resize``. Values: channels are put in
    ``channels`` order, then x = (pixel · scale − mean) / std with ``mean``/``std`` given in that order.
    """

    size: int
    resize: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = 1.0
    channels: Literal["RGB", "BGR"] = "RGB"
    train_resize: int | None = None

    def __post_init__(self) -> None:
        for side in (self.resize, self.train_resize):
            if side is not None and side < self.size:
                raise ValueError(f"resize {side} is smaller than the crop size {self.size}")


class Backbone(nn.Module):
    """A feature extractor: ``forward(x) -> (n, feature_dim)`` on input prepared with ``preprocess``.

    ``name`` is the registry name :func:`create_backbone` built it under (recorded with extracted features).
    """

    name: str = ""
    feature_dim: int
    preprocess: Preprocess


def create_backbone(name: str, *, weights: str | None = None, pretrained: bool = True, **kwargs: Any) -> Backbone:
    """Build backbone ``name`` in eval mode from a ``weights`` file, its packaged weights, or random init
    (``pretrained=False``); ``kwargs`` are backbone options such as ``size``. An option the backbone does not
    take is a one-line error (the AlexNets have a fixed input size)."""
    import inspect

    accepted = [p for p in inspect.signature(BACKBONES.get(name)).parameters if p not in ("weights", "pretrained")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        fix = " (its input size is fixed: set input_size to none, --input-size none)" if "size" in unknown else ""
        raise TagcodeError(f"backbone {name!r} has no option {unknown[0]!r}{fix}; options: "
                           f"{', '.join(accepted) or 'none'}")
    net = BACKBONES.create(name, weights=weights, pretrained=pretrained, **kwargs)
    net.name = name
    return net.eval()


def require_weights(name: str, weights: str | None, pretrained: bool) -> None:
    """The rule for backbones whose weights cannot be installed: a file by path, or ``pretrained=False``."""
    if pretrained and weights is None:
        raise TagcodeError(f"backbone {name!r} has no installable weights: give the weights file by path "
                           "(weights=...) or use pretrained=False for random initialisation")


def load_torch_state(path: str) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` state dict (tensors only, no pickled code); unreadable files are one-line errors."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TagcodeError(f"{path}: weights file not found") from None
    except Exception as exc:  # torch.load raises many types for corrupt or non-state-dict files
        raise TagcodeError(f"{path}: not a readable PyTorch state dict ({one_line(exc)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TagcodeError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def load_state(module: nn.Module, state: dict[str, torch.Tensor], path: str) -> None:
    """Load ``state`` into ``module``; extra keys are ignored, the first missing or mis-shaped key is an error."""
    for key, own in module.state_dict().items():
        if key not in state:
            raise TagcodeError(f"{path}: weights file lacks {key!r}")
        if tuple(state[key].shape) != tuple(own.shape):
            raise TagcodeError(f"{path}: {key!r} has shape {tuple(state[key].shape)}, expected {tuple(own.shape)}")
    module.load_state_dict({k: state[k] for k in module.state_dict()})
