"""WSDHQ's embedding head: the reference's fc8 "transform layer", Linear(in_dim → D) + tanh, D = tag width.

Initialised like fc8 (weights N(0, 0.01²), bias 0). In frozen-feature mode the optional input dropout
stands in for the reference's dropout after fc7; its masks are drawn from the training generator so a
resumed run replays them exactly. Hypersphere normalisation happens only inside the margin loss.
"""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingHead(nn.Module):
    """x = tanh(Linear(dropout(f))), the un-normalised embedding that is quantized and searched."""

    def __init__(self, in_dim: int, dim: int, *, dropout: float = 0.0, init_std: float = 0.01) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, dim)
        self.dropout = float(dropout)
        nn.init.normal_(self.fc.weight, std=init_std)
        nn.init.zeros_(self.fc.bias)

    def forward(self, f: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Embeddings of inputs ``f`` (B, in_dim); input dropout in train mode, masks from ``generator``."""
        if self.training and self.dropout > 0:
            keep = torch.rand(f.shape, generator=generator, device=f.device) >= self.dropout
            f = f * keep / (1.0 - self.dropout)
        return torch.tanh(self.fc(f))
