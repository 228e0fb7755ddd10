"""Safe image decoding: any user image → a square RGB uint8 thumbnail, or a one-line ImageDecodeError.

Handles zero-byte and truncated files, decompression bombs (refused from the header, before any pixel is
decoded), large images (JPEGs shrunk while decoding with ``draft``; others resized with a reducing gap),
CMYK/palette/alpha/16-bit/float modes (alpha composited onto the background) and EXIF orientation.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from tagcode.errors import TagcodeError

# Our own pixel limit replaces PIL's global one (checked from the header in decode_image).
Image.MAX_IMAGE_PIXELS = None


class ImageDecodeError(TagcodeError):
    """An image that cannot be used; the message is ``<name>: <reason>``."""


def _to_rgb(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Convert any PIL mode to RGB, compositing transparency onto ``background``."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if img.mode.startswith("I;16") else (float(arr.min()), float(arr.max()))
        if img.mode == "I" and hi <= 255 and lo >= 0:
            lo, hi = 0.0, 255.0
        scaled = np.clip((arr - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(scaled, "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        canvas = Image.new("RGBA", img.size, (*background, 255))
        return Image.alpha_composite(canvas, img).convert("RGB")
    return img.convert("RGB")


def _letterbox(img: Image.Image, size: int, background: tuple[int, int, int]) -> np.ndarray:
    """Resize keeping the aspect ratio and centre on a square ``size`` canvas."""
    w, h = img.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=3.0)
    canvas = Image.new("RGB", (size, size), background)
    canvas.paste(img, ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def decode_image(
    data: bytes | np.ndarray,
    size: int,
    *,
    name: str = "<image>",
    max_pixels: int = 200_000_000,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Decode encoded bytes (or take an HxW[x3] array) into a ``(size, size, 3)`` uint8 RGB thumbnail."""
    if isinstance(data, np.ndarray):
        arr = data if data.ndim == 3 else np.repeat(data[..., None], 3, axis=2)
        return _letterbox(Image.fromarray(np.ascontiguousarray(arr[..., :3]).astype(np.uint8)), size, background)
    if len(data) == 0:
        raise ImageDecodeError(f"{name}: empty file")
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise ImageDecodeError(f"{name}: decompression bomb ({w}x{h} = {w * h} pixels > {max_pixels})")
            if img.format == "JPEG":  # decode at 1/2..1/8 scale straight from the DCT
                img.draft(img.mode, (size * 2, size * 2))
            img.load()
            img = ImageOps.exif_transpose(img)
            return _letterbox(_to_rgb(img, background), size, background)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{name}: not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = "truncated or corrupt image" if "truncat" in str(exc).lower() or isinstance(exc, OSError) else str(exc)
        raise ImageDecodeError(f"{name}: {reason}") from None
