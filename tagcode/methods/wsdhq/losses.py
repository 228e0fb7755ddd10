"""WSDHQ's two losses, each a small module returning a dict of named terms (every term can be logged).

- :class:`AdaptiveMarginLoss`: the hyperspherical ranking loss of spec §3.3, a hinge per (image, positive
  tag, negative tag) triplet with margin m_pn = 2^{1−γ}(1 − cos(w̄_p, w̄_n))^γ (or a fixed margin), summed
  over the gathered positive pairs (never the B×T×T tensor) and divided by Σ_i |P_i|(T − |P_i|).
- :class:`QuantizationLoss`: ‖F(x − x̂)‖² / B (spec §3.4: F = W, the tag vectors), times λ; zero while there
  is no x̂ (λ is forced to 0 until the codebooks exist).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def adaptive_margins(tag_vectors: torch.Tensor, gamma: float = 1.0, fixed_margin: float | None = None) -> torch.Tensor:
    """(T, T) float32 margins m_pn = 2^{1−γ}(1 − cos(w̄_p, w̄_n))^γ (computed in float64), or ``fixed_margin``
    everywhere when given."""
    w = F.normalize(tag_vectors.double(), dim=1)
    if fixed_margin is not None:
        return torch.full((len(w), len(w)), float(fixed_margin))
    one_minus_cos = (1.0 - w @ w.T).clamp(min=0.0)
    return (2.0 ** (1.0 - gamma) * one_minus_cos**gamma).float()


class AdaptiveMarginLoss(nn.Module):
    """Cosine ranking loss on the hypersphere: for each image i, positive p ∈ P_i, negative n ∉ P_i,
    max(0, m_pn − cos(z_i, w̄_p) + cos(z_i, w̄_n)), averaged over the valid triplets of the batch."""

    def __init__(self, tag_vectors: torch.Tensor, *, gamma: float = 1.0, fixed_margin: float | None = None) -> None:
        super().__init__()
        self.register_buffer("wbar", F.normalize(tag_vectors.detach(), dim=1), persistent=False)
        self.register_buffer("margin", adaptive_margins(tag_vectors, gamma, fixed_margin), persistent=False)

    def forward(self, x: torch.Tensor, tags: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x`` (B, D) embeddings, ``tags`` (B, T) bool multi-hot; returns {"embedding": loss}."""
        cos = F.normalize(x, dim=1) @ self.wbar.T  # (B, T)
        rows, pos = tags.nonzero(as_tuple=True)  # the gathered positive (i, p) pairs
        hinge = (self.margin[pos] - cos[rows, pos, None] + cos[rows]).clamp(min=0.0)  # (P, T) against every n
        hinge = hinge.masked_fill(tags[rows], 0.0)  # negatives only: tags absent from image i
        n_pos = tags.sum(dim=1)
        triplets = (n_pos * (tags.shape[1] - n_pos)).sum()
        return {"embedding": hinge.sum() / triplets.clamp(min=1)}


class QuantizationLoss(nn.Module):
    """λ · (1/B) Σ_i ‖F(x_i − x̂_i)‖², the error in the metric G = FᵀF the codes are assigned in: F = the tag
    vectors W as stored (the spec) or the identity; the gradient reaches x only (x̂ is built from the stored
    codes and fixed codebooks)."""

    def __init__(self, factor: torch.Tensor, *, lam: float = 1e-4) -> None:
        super().__init__()
        self.register_buffer("w", factor.detach().clone(), persistent=False)
        self.lam = float(lam)

    def forward(self, x: torch.Tensor, xhat: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """{"quantization": λ·L_q, "quantization_raw": L_q}; both 0 while ``xhat`` is None (no codebooks yet)."""
        if xhat is None:
            zero = x.new_zeros(())
            return {"quantization": zero, "quantization_raw": zero}
        raw = (((x - xhat.detach()) @ self.w.T) ** 2).sum(dim=1).mean()
        return {"quantization": self.lam * raw, "quantization_raw": raw.detach()}
