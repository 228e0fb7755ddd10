"""Image transforms on uint8 RGB batches, in torch (torchvision is unusable with the project's CPU wheel).

Resizing is bilinear with antialiasing (PIL-like when shrinking); on the square images of the image cache a
shorter-side resize is a plain resize, so WSDHQ's 256×256 squash and WSHRCA's shorter-side resize coincide.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from tagcode.backbones.base import Preprocess


def to_tensor(images: np.ndarray, pre: Preprocess, *, train: bool = False, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> torch.Tensor:
    """A ``(n, H, W, 3)`` uint8 RGB batch → ``(n, 3, size, size)`` float32 network input on ``device``.

    Evaluation: centre crop. ``train=True``: an independent random crop and horizontal flip (p = 0.5) per image,
    drawn from ``generator``, after resizing to ``pre.train_resize`` when it is set.
    """
    x = _as_float(images, device)
    x = _resize(x, (pre.train_resize or pre.resize) if train else pre.resize, pre.size)
    h, w = x.shape[-2:]
    if not train:
        top, left = (h - pre.size) // 2, (w - pre.size) // 2
        return _normalise(x[..., top:top + pre.size, left:left + pre.size], pre)
    n = len(x)
    tops = torch.randint(0, h - pre.size + 1, (n,), generator=generator).tolist()
    lefts = torch.randint(0, w - pre.size + 1, (n,), generator=generator).tolist()
    flips = (torch.rand(n, generator=generator) < 0.5).tolist()
    crops = [x[i, :, t:t + pre.size, s:s + pre.size] for i, (t, s) in enumerate(zip(tops, lefts, strict=True))]
    return _normalise(torch.stack([c.flip(-1) if f else c for c, f in zip(crops, flips, strict=True)]), pre)


def ten_crop(images: np.ndarray, pre: Preprocess, *, device: torch.device | str | None = None) -> torch.Tensor:
    """WSDHQ's test-time crops → ``(10, n, 3, size, size)``: the flipped image, then the original, 5 crops each.

    As in WSDHQ's ``net_val.py``: the image is resized to ``resize`` square (shorter side, then centre square),
    flipped whole before cropping, and cropped at (top, left) = (0, 0), (f, f), (f, 0), (0, f), (f/2, f/2) with
    f = resize − size − 1, i.e. (0, 0), (28, 28), (28, 0), (0, 28), (14, 14) for 256 → 227 (one short of the far
    edge, as in the reference). The WSDHQ feature is the mean of the 10 outputs.
    """
    side = pre.resize or pre.size
    x = _resize(_as_float(images, device), side, pre.size)
    h, w = x.shape[-2:]
    x = x[..., (h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    far = max(side - pre.size - 1, 0)
    offsets = [(0, 0), (far, far), (far, 0), (0, far), (far // 2, far // 2)]
    crops = [img[..., t:t + pre.size, s:s + pre.size] for img in (x.flip(-1), x) for t, s in offsets]
    return _normalise(torch.stack(crops), pre)


def _as_float(images: np.ndarray, device: torch.device | str | None) -> torch.Tensor:
    """uint8 NHWC numpy → float32 NCHW tensor; the uint8 data moves to ``device`` first (4× less to copy)."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected a (n, H, W, 3) uint8 batch, got {images.shape} {images.dtype}")
    return torch.from_numpy(np.require(images, requirements=["C", "W"])).to(device).permute(0, 3, 1, 2).float()


def _resize(x: torch.Tensor, side: int | None, size: int) -> torch.Tensor:
    """Resize the shorter side to ``side`` (aspect kept), or the whole image to ``size`` × ``size`` if None."""
    h, w = x.shape[-2:]
    if side is None:
        target = (size, size)
    else:
        target = (side, max(side, round(w * side / h))) if h <= w else (max(side, round(h * side / w)), side)
    if target == (h, w):
        return x
    return F.interpolate(x, size=target, mode="bilinear", align_corners=False, antialias=True)


def _normalise(x: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """Reorder channels (dim −3) to ``pre.channels`` and apply (x · scale − mean) / std."""
    if pre.channels == "BGR":
        x = x.flip(-3)
    mean = torch.tensor(pre.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(pre.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return ((x * pre.scale - mean) / std).contiguous()
