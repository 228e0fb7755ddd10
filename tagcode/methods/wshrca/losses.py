"""WSHRCA's and WDHT's loss terms: small modules, each returning a dict of named terms (all loggable).

WSHRCA (spec §2.5): L1 pairwise |D − (1 − S)/2|, L2 one-directional cross-modal cosine hinge, L3
quantization; total λ1·L1 + λ2·L2 + λ3·L3 with (1, 10, 1). WDHT (Vijetha1/WDHT): MSE between the code
distance and the cosine distance of mean tag vectors, the dot-product vector hinge (margin 0.2, weight 10)
and the same quantization term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def code_distance(h: torch.Tensor) -> torch.Tensor:
    """D_ij = ‖h_i − h_j‖² / K ∈ [0, 1] for relaxed codes h ∈ (0, 1)^K."""
    return (h[:, None, :] - h[None, :, :]).pow(2).sum(-1) / h.shape[1]


def cosine_matrix(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-15) -> torch.Tensor:
    """C_ij = cos(a_i, b_j), each row divided by (‖·‖ + eps) as the reference code does."""
    a = a / (a.norm(dim=1, keepdim=True) + eps)
    b = b / (b.norm(dim=1, keepdim=True) + eps)
    return a @ b.T


def with_total(terms: dict[str, torch.Tensor], weights: tuple[float, float, float]) -> dict[str, torch.Tensor]:
    """``terms`` plus ``loss`` = weights · (pairwise, hinge, quantization)."""
    parts = (terms["pairwise"], terms["hinge"], terms["quantization"])
    return {**terms, "loss": sum(lam * t for lam, t in zip(weights, parts, strict=True))}


class PairwiseL1(nn.Module):
    """L1 = mean over all N² pairs (diagonal included) of |D_ij − (1 − cos(w_i, w_j))/2|; the target is
    not detached, so gradients reach both h and w."""

    def forward(self, h: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
        target = (1 - cosine_matrix(w, w)) / 2
        return {"pairwise": (code_distance(h) - target).abs().mean()}


class CrossModalHinge(nn.Module):
    """L2 = (1/(N(N−1))) Σ_{i≠j} relu(m + C_ij − C_jj), C_ij = cos(w_i, r̂_j): anchor r̂_j, positive its own
    w_j, negatives every other w_i. Computed as the reference does: (Σ over all N² − N·m) / (N² − N)."""

    def __init__(self, margin: float = 0.8) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, r: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
        c = cosine_matrix(w, r)
        n = c.shape[0]
        total = F.relu(self.margin + c - c.diagonal()[None, :]).sum()
        return {"hinge": (total - n * self.margin) / (n * n - n)}


class Quantization(nn.Module):
    """L3 = −mean (h − 0.5)² ∈ [−0.25, 0]: pushes the sigmoid outputs toward 0 or 1."""

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"quantization": -(h - 0.5).pow(2).mean()}


class WSHRCALoss(nn.Module):
    """λ1·L1 + λ2·L2 + λ3·L3; returns the three terms and ``loss`` (the weighted total)."""

    def __init__(self, margin: float = 0.8, weights: tuple[float, float, float] = (1.0, 10.0, 1.0)) -> None:
        super().__init__()
        self.pairwise, self.hinge, self.quantization = PairwiseL1(), CrossModalHinge(margin), Quantization()
        self.weights = weights

    def forward(self, h: torch.Tensor, r: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {**self.pairwise(h, w), **self.hinge(r, w), **self.quantization(h)}
        return with_total(terms, self.weights)


class PairwiseMSE(nn.Module):
    """WDHT's similarity term: mean over all N² pairs of (D_ij − (1 − cos(v_i, v_j)))², v = mean tag vectors
    (Keras ``mean_squared_error`` against scipy's cosine distance)."""

    def forward(self, h: torch.Tensor, v: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pairwise": (code_distance(h) - (1 - cosine_matrix(v, v))).pow(2).mean()}


class VectorHinge(nn.Module):
    """WDHT's vector loss: (1/(N(N−1))) Σ_{a≠b} relu(m − p_a·(v_a − v_b)), dot products of the predicted
    word vector p_a with its own and the others' mean tag vectors.

    The Keras original also averages the constant b = a terms (value m) and scales by (N−1)/N; both leave
    the gradient direction unchanged, so this keeps the clean i≠j mean.
    """

    def __init__(self, margin: float = 0.2) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, p: torch.Tensor, v: torch.Tensor) -> dict[str, torch.Tensor]:
        dots = p @ v.T                                  # dots[a, b] = p_a · v_b
        n = dots.shape[0]
        total = F.relu(self.margin - dots.diagonal()[:, None] + dots).sum()
        return {"hinge": (total - n * self.margin) / (n * n - n)}


class WDHTLoss(nn.Module):
    """λ1·MSE + λ2·vector hinge + λ3·quantization with WDHT's (1, 10, 1); returns the terms and ``loss``."""

    def __init__(self, margin: float = 0.2, weights: tuple[float, float, float] = (1.0, 10.0, 1.0)) -> None:
        super().__init__()
        self.pairwise, self.hinge, self.quantization = PairwiseMSE(), VectorHinge(margin), Quantization()
        self.weights = weights

    def forward(self, h: torch.Tensor, p: torch.Tensor, v: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {**self.pairwise(h, v), **self.hinge(p, v), **self.quantization(h)}
        return with_total(terms, self.weights)
