"""The backbone registry: every backbone declares its preprocessing and its feature dimension."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from tagcode.errors import TagcodeError
from tagcode.registry import Registry

BACKBONES: Registry[Backbone] = Registry("backbone")


@dataclass(frozen=True)
class Preprocess:
    """How uint8 RGB images become network input: x = (pixel·scale − mean) / std, in ``channels`` order.

    Images from the cache are square; they are resized to ``resize`` and centre-cropped (or, in training,
    randomly cropped and flipped) to ``size``.
    """

    size: int
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = 1.0
    channels: Literal["RGB", "BGR"] = "RGB"


class Backbone(nn.Module):
    """A feature extractor: ``forward(x) -> (n, feature_dim)`` on preprocessed input."""

    feature_dim: int
    preprocess: Preprocess


def to_tensor(images: np.ndarray, pre: Preprocess, *, train: bool = False,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Preprocess a ``(n, H, W, 3)`` uint8 batch into ``(n, 3, size, size)`` float32 (no torchvision)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    if x.shape[-1] != pre.resize or x.shape[-2] != pre.resize:
        x = nn.functional.interpolate(x, size=(pre.resize, pre.resize), mode="bilinear", align_corners=False,
                                      antialias=True)
    off = pre.resize - pre.size
    if train and off > 0:
        top, left = (int(v) for v in torch.randint(0, off + 1, (2,), generator=generator))
    else:
        top = left = off // 2
    x = x[..., top:top + pre.size, left:left + pre.size]
    if train and bool(torch.rand((), generator=generator) < 0.5):
        x = x.flip(-1)
    if pre.channels == "BGR":
        x = x.flip(1)
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    return ((x * pre.scale - mean) / std).contiguous()


def ten_crop(images: np.ndarray, pre: Preprocess) -> torch.Tensor:
    """WSDHQ's test-time 10 crops: 5 offsets × (original, flipped) → ``(10, n, 3, size, size)``."""
    base = to_tensor(images, Preprocess(pre.resize, pre.resize, pre.mean, pre.std, pre.scale, pre.channels))
    off = pre.resize - pre.size
    offsets = [(0, 0), (off, off), (off, 0), (0, off), (off // 2, off // 2)]
    crops = [base[..., t:t + pre.size, left:left + pre.size] for t, left in offsets]
    return torch.stack(crops + [c.flip(-1) for c in crops])


def create_backbone(name: str, *, weights: str | None = None, pretrained: bool = True, **kwargs: Any) -> Backbone:
    """Build a registered backbone; backbones without packaged weights need ``weights`` or ``pretrained=False``."""
    return BACKBONES.create(name, weights=weights, pretrained=pretrained, **kwargs)


def load_state(module: nn.Module, state: dict[str, torch.Tensor], path: str) -> None:
    """Load a state dict, turning missing/unexpected keys or shape mismatches into one line naming ``path``."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise TagcodeError(f"{path}: weights lack {missing[0]!r} ({len(missing)} missing keys)")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise TagcodeError(f"{path}: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
    module.load_state_dict({k: state[k] for k in own})
