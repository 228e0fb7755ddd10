"""Device choice shared by feature extraction and torch-trained methods: ``auto`` means CUDA when present."""

from __future__ import annotations

import torch

from tagcode.errors import TagcodeError


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; otherwise the named device, which must exist."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise TagcodeError(f"unknown device {device!r} (use auto, cpu or cuda[:N])") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TagcodeError(f"device {device!r} requested but CUDA is not available")
    return dev
