"""A tiny random-init CNN for tests and quick runs (deterministic from its seed)."""

from __future__ import annotations

import torch
from torch import nn

from tagcode.backbones.base import BACKBONES, Backbone, Preprocess
from tagcode.errors import TagcodeError


class TinyCNN(Backbone):
    """Three conv blocks and global pooling → 64-d features."""

    feature_dim = 64

    def __init__(self, size: int = 32, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        self.preprocess = Preprocess(size=size, resize=size, mean=(127.5,) * 3, std=(64.0,) * 3)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)


@BACKBONES.register("tiny_cnn")
def tiny_cnn(*, weights: str | None = None, pretrained: bool = True, size: int = 32, seed: int = 0) -> Backbone:
    """The tiny CNN; its weights are random by design (seeded), so a weights file is an error."""
    if weights is not None:
        raise TagcodeError(f"{weights}: tiny_cnn takes no weights file (its weights are seeded random)")
    return TinyCNN(size=size, seed=seed)
