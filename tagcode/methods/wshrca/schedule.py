"""WSHRCA's alternating schedule (spec §2.6): cycles of [tag, tag, img, img] epochs, one SGD optimizer per
side, each with its own gradual warm-up stepped only in the epochs it owns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

CYCLE: tuple[Literal["tag", "img"], ...] = ("tag", "tag", "img", "img")


def epoch_kind(epoch: int, has_tag_side: bool = True) -> Literal["tag", "img"]:
    """Which optimizer owns global epoch ``epoch``; every epoch is an image epoch without a tag module."""
    return CYCLE[epoch % len(CYCLE)] if has_tag_side else "img"


def owned_before(epoch: int, kind: str, has_tag_side: bool = True) -> int:
    """How many epochs before ``epoch`` the ``kind`` optimizer owned (its warm-up step count k)."""
    return sum(epoch_kind(e, has_tag_side) == kind for e in range(epoch))


def warmup_factor(k: int, warmup: int, zero_first: bool) -> float:
    """lr multiplier for an optimizer's k-th owned epoch (k = 0, 1, ...).

    The reference (``GradualWarmupScheduler``, multiplier 1) gives min(k, W)/W, so its first owned epoch
    runs at lr 0 (``zero_first``); otherwise min(k + 1, W)/W, the same ramp without the no-op epoch.
    """
    if warmup <= 0:
        return 1.0
    return min(k if zero_first else k + 1, warmup) / warmup


def set_lr(optimizer: torch.optim.Optimizer, base: Sequence[float], factor: float) -> None:
    """Set each parameter group's lr to its base lr × ``factor``."""
    for group, lr in zip(optimizer.param_groups, base, strict=True):
        group["lr"] = lr * factor

