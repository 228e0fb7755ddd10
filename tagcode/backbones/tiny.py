"""A tiny random-init CNN for tests and quick pipeline runs: deterministic from its seed, any input ≥ 16 px."""

from __future__ import annotations

import torch
from torch import nn

from tagcode.backbones.base import BACKBONES, Backbone, Preprocess
from tagcode.errors import TagcodeError


class TinyCNN(Backbone):
    """Three 3×3 conv blocks and global average pooling → 64-d features; He-normal weights from ``seed``."""

    feature_dim = 64

    def __init__(self, size: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for conv in self.body:
                if isinstance(conv, nn.Conv2d):
                    fan_in = conv.weight[0].numel()
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
                    conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * 0.1)
        self.preprocess = Preprocess(size=size, resize=None, mean=(127.5,) * 3, std=(64.0,) * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)


@BACKBONES.register("tiny_cnn")
def tiny_cnn(*, weights: str | None = None, pretrained: bool = True, size: int = 32, seed: int = 0) -> Backbone:
    """The tiny CNN at ``size`` px (≥ 16); its weights are seeded random by design, ``pretrained`` changes nothing."""
    if weights is not None:
        raise TagcodeError(f"{weights}: tiny_cnn takes no weights file (its weights are seeded random)")
    if size < 16:
        raise TagcodeError(f"tiny_cnn needs an input size of at least 16 px, got {size}")
    return TinyCNN(size=size, seed=seed)
