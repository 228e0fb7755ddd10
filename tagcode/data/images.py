"""Safe image decoding: any user image → a square RGB uint8 thumbnail, or a one-line ImageDecodeError.

What it handles, and how:

- zero-byte, truncated, corrupt and non-image data: ``ImageDecodeError("<name>: <reason> (<detail>)")``;
  truncated files are refused even if some other code set PIL's ``ImageFile.LOAD_TRUNCATED_IMAGES``.
- decompression bombs: the declared width × height is read from the header by ``Image.open`` (no pixels are
  decoded) and refused above ``max_pixels``.
- large images with bounded memory: JPEGs are shrunk while decoding (``draft``: DCT scaling by 1/2..1/8);
  large non-interlaced 8-bit PNGs (clip art up to 21k × 30k pixels) are decoded in horizontal strips, each
  box-reduced at once, so memory stays near ``_STRIP_BYTES`` whatever the image size; other images are
  decoded whole and box-reduced (``Image.reduce``) before any further copy.
- modes: 1, L, P (with or without transparency), LA, RGB, RGBA, CMYK, YCbCr, 16-bit grey (``I;16*``), 32-bit
  ``I`` and float ``F``. Transparency is kept as premultiplied alpha through the resampling and composited
  onto ``background`` at the end (never just dropped). Wide grey modes are scaled to 8 bits, not clipped.
- EXIF (or XMP) orientation, with the table of ``ImageOps.exif_transpose``, applied to the small image.

Resampling: an integer box reduction down to at least ``REDUCING_GAP`` times the target, then LANCZOS (what
``Image.resize(reducing_gap=...)`` does), aspect kept, centred on a square ``background`` canvas.

PIL's process-wide settings are not changed permanently: ``Image.MAX_IMAGE_PIXELS`` (PIL's own bomb limit,
replaced here by ``max_pixels``) is switched off, and ``LOAD_TRUNCATED_IMAGES`` forced off, only while a
header is parsed (and, if another library turned truncated loading on, while pixels load), under a module
lock. Other threads calling PIL directly during that moment see those values; that is the price of not
having a per-call PIL setting.
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator

import numpy as np
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from tagcode.errors import TagcodeError, one_line

REDUCING_GAP = 3.0  # box-reduce to ≥ 3x the target before LANCZOS ("fair in most cases" per Pillow)
STRIP_PIXELS = 1 << 22  # 8-bit PNGs with more pixels (16 MB as RGBA) are decoded strip by strip
_STRIP_BYTES = 1 << 22  # raw scanline bytes per strip (at least one reduction block of rows)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type → samples per pixel
_SIGNATURES = {b"\xff\xd8\xff": "JPEG", _PNG_SIGNATURE: "PNG", b"GIF8": "GIF", b"II*\x00": "TIFF",
               b"MM\x00*": "TIFF", b"BM": "BMP"}
_ORIENTATION = {  # EXIF orientation → transpose, as in ImageOps.exif_transpose
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_PIL_SETTINGS = threading.Lock()


class ImageDecodeError(TagcodeError):
    """An image that cannot be used; the message is ``<name>: <reason>`` on one line."""


def decode_image(
    data: bytes | np.ndarray,
    size: int,
    *,
    name: str = "<image>",
    max_pixels: int = 200_000_000,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Decode encoded bytes (or take an HxW / HxWx3 / HxWx4 array) into a ``(size, size, 3)`` uint8 thumbnail.

    The image keeps its aspect ratio, is centred on a ``background`` square, and any alpha is composited
    onto ``background``. Raises ImageDecodeError naming ``name`` for anything unusable.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    if isinstance(data, np.ndarray):
        img = _from_array(data, name)
        nw, nh = _fit(*img.size, size)
        return _finish(_working(img, name), nw, nh, None, size, background)
    if len(data) == 0:
        raise ImageDecodeError(f"{name}: empty file")
    try:
        return _decode(data, size, name, max_pixels, background)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"{name}: decompression bomb ({_detail(exc)})") from None
    except UnidentifiedImageError:
        kind = next((k for sig, k in _SIGNATURES.items() if bytes(data[: len(sig)]) == sig), None)
        reason = (f"truncated or corrupt image ({kind} header unreadable)" if kind
                  else "not an image (unrecognised format)")
        raise ImageDecodeError(f"{name}: {reason}") from None
    except MemoryError:
        raise ImageDecodeError(f"{name}: out of memory while decoding") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError) as exc:
        raise ImageDecodeError(f"{name}: truncated or corrupt image ({_detail(exc)})") from None


def _decode(data: bytes, size: int, name: str, max_pixels: int, background: tuple[int, int, int]) -> np.ndarray:
    """Header check, then the cheapest decode that reaches the target size (see the module docstring)."""
    with _pil_settings():
        img = Image.open(io.BytesIO(data))
    w, h = img.size
    if w * h > max_pixels:
        raise ImageDecodeError(f"{name}: decompression bomb ({w}x{h} = {w * h} pixels > limit {max_pixels})")
    nw, nh = _fit(w, h, size)
    if img.format == "PNG" and w * h > STRIP_PIXELS and data[24] == 8 and data[25] in _PNG_CHANNELS \
            and data[28] == 0:
        reduced, box, exif = _png_in_strips(memoryview(data), img, nw, nh, name)
        return _finish(reduced, nw, nh, _orientation(img, exif), size, background, box)
    if img.format in ("JPEG", "MPO"):
        img.draft(None, (math.ceil(nw * REDUCING_GAP), math.ceil(nh * REDUCING_GAP)))
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone turned it on: load with it off, so truncation is an error
        with _pil_settings():
            img.load()
    else:
        img.load()
    return _finish(_working(img, name), nw, nh, _orientation(img), size, background)


@contextlib.contextmanager
def _pil_settings() -> Iterator[None]:
    """Within: PIL's global pixel limit off (``max_pixels`` replaces it) and truncated files refused."""
    with _PIL_SETTINGS:
        saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _fit(w: int, h: int, size: int) -> tuple[int, int]:
    """Width and height of a ``w`` × ``h`` image scaled to fit a ``size`` square, aspect kept."""
    scale = size / max(w, h)
    return max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))


def _factors(w: int, h: int, nw: int, nh: int) -> tuple[int, int]:
    """Integer box-reduction factors that leave at least ``REDUCING_GAP`` times the target size."""
    return max(1, int(w / nw / REDUCING_GAP)), max(1, int(h / nh / REDUCING_GAP))


def _finish(img: Image.Image, nw: int, nh: int, transpose: Image.Transpose | None, size: int,
            background: tuple[int, int, int], box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Reduce (unless ``box`` says ``img`` is already reduced), LANCZOS to ``nw`` × ``nh``, orient, letterbox."""
    if box is None:
        fx, fy = _factors(*img.size, nw, nh)
        box = (0.0, 0.0, img.size[0] / fx, img.size[1] / fy)
        if (fx, fy) != (1, 1):
            img = img.reduce((fx, fy))
    img = img.resize((nw, nh), Image.Resampling.LANCZOS, box=box)
    if transpose is not None:
        img = img.transpose(transpose)
    rgb = _composite(np.asarray(img), background)
    canvas = np.empty((size, size, 3), dtype=np.uint8)
    canvas[...] = background
    top, left = (size - rgb.shape[0]) // 2, (size - rgb.shape[1]) // 2
    canvas[top:top + rgb.shape[0], left:left + rgb.shape[1]] = rgb
    return canvas


def _composite(arr: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """HxW, HxWx3 or premultiplied HxWx2 / HxWx4 (alpha last) → HxWx3 RGB over ``background``."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] in (2, 4):
        alpha = arr[..., -1:].astype(np.float32) / 255.0
        out = arr[..., :-1].astype(np.float32) + np.asarray(background, np.float32) * (1.0 - alpha)
        arr = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return np.broadcast_to(arr, (*arr.shape[:2], 3))


def _working(img: Image.Image, name: str) -> Image.Image:
    """Convert to one of L, RGB, La or RGBa (alpha premultiplied), the modes that resample correctly."""
    mode = img.mode
    if mode in _WIDE_GREY:
        return _wide_grey(img)
    if mode in ("La", "RGBa") or (mode in ("L", "RGB") and not img.has_transparency_data):
        return img
    try:
        if mode == "LA":
            return img.convert("La")
        if img.has_transparency_data:  # alpha band, tRNS chunk or palette alpha
            return (img if mode == "RGBA" else img.convert("RGBA")).convert("RGBa")
        return img.convert("L" if mode == "1" else "RGB")
    except ValueError:
        raise ImageDecodeError(f"{name}: unsupported colour mode {mode}") from None


def _wide_grey(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float grey → 8-bit L (or La for a tRNS grey level), scaled, never clipped.

    The range mapped to 0..255 is 0..65535 for ``I;16*``; for ``I`` and ``F`` the narrowest of 0..1 (``F``
    only), 0..255 and 0..65535 that holds every finite value, else the values' own min..max.
    """
    arr = np.asarray(img).astype(np.float32)
    finite = arr[np.isfinite(arr)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if img.mode.startswith("I;16"):
        lo, hi = 0.0, 65535.0
    elif lo >= 0:
        ranges = ((1.0,) if img.mode == "F" else ()) + (255.0, 65535.0)
        lo, hi = 0.0, next((r for r in ranges if hi <= r), hi)
    scaled = np.nan_to_num((arr - lo) * (255.0 / max(hi - lo, 1e-12)), nan=0.0, posinf=255.0, neginf=0.0)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    transparent = img.info.get("transparency")
    if isinstance(transparent, int):
        alpha = np.where(np.asarray(img) == transparent, 0, 255).astype(np.uint8)
        return Image.fromarray(np.dstack([np.where(alpha > 0, grey, 0).astype(np.uint8), alpha]), "La")
    return Image.fromarray(grey, "L")


def _from_array(arr: np.ndarray, name: str) -> Image.Image:
    """A PIL image from an HxW (any PIL-supported dtype), HxWx1, HxWx3 or HxWx4 uint8 (RGBA) array."""
    if arr.size == 0:
        raise ImageDecodeError(f"{name}: empty array {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] in (3, 4) and arr.dtype != np.uint8:
        raise ImageDecodeError(f"{name}: colour arrays must be uint8, got {arr.dtype}")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageDecodeError(f"{name}: unsupported array shape {arr.shape} (expected HxW, HxWx3 or HxWx4)")
    try:
        return Image.fromarray(np.ascontiguousarray(arr))
    except TypeError:
        raise ImageDecodeError(f"{name}: unsupported array dtype {arr.dtype}") from None


def _orientation(img: Image.Image, png_exif: bytes | None = None) -> Image.Transpose | None:
    """The transpose that the EXIF (or XMP) orientation asks for; unreadable EXIF counts as none.

    ``Image.Image.getexif`` is called instead of the PNG override, which would decode every pixel first;
    ``png_exif`` is a PNG's eXIf chunk found by the strip decoder (PIL reads it only while loading pixels).
    """
    if png_exif is not None:
        img.info["exif"] = b"Exif\x00\x00" + png_exif
    try:
        value = Image.Image.getexif(img).get(ExifTags.Base.Orientation)
    except (SyntaxError, ValueError, TypeError, KeyError, IndexError, OSError, struct.error):
        return None
    return _ORIENTATION.get(value) if isinstance(value, int) else None


def _png_in_strips(data: memoryview, img: Image.Image, nw: int, nh: int,
                   name: str) -> tuple[Image.Image, tuple[float, float, float, float], bytes | None]:
    """Decode a large 8-bit non-interlaced PNG strip by strip; return it box-reduced, its resize box, its eXIf.

    The IDAT stream is inflated incrementally; each strip of scanlines (still filtered) is wrapped in a small
    PNG of its own, preceded by the previous strip's last row stored unfiltered (filter 0), so PIL's C
    decoder undoes the filters exactly as for the whole file. Strips are a multiple of the vertical reduction
    factor high, so the strip-wise box reduction equals the whole-image one.
    """
    w, h = img.size
    colour = data[25]
    row = 1 + w * _PNG_CHANNELS[colour]
    fx, fy = _factors(w, h, nw, nh)
    rows_per_strip = max(1, _STRIP_BYTES // row // fy) * fy
    palette, idat, exif = b"", [], None
    for ctype, chunk, payload in _png_chunks(data):
        if ctype in (b"PLTE", b"tRNS"):
            palette += chunk
        elif ctype == b"IDAT":
            idat.append(payload)
        elif ctype == b"eXIf":
            exif = bytes(payload)
    out: Image.Image | None = None
    previous, y = b"", 0
    for raw in _scanline_strips(idat, row, rows_per_strip, h, name):
        rows = (len(previous) + len(raw)) // row
        deflate = zlib.compressobj(0)  # stored blocks: PIL's decoder needs a zlib stream, not compression
        stream = b"".join((deflate.compress(previous), deflate.compress(raw), deflate.flush()))
        header = struct.pack(">IIBBBBB", w, rows, 8, colour, 0, 0, 0)
        strip = Image.open(io.BytesIO(b"".join((_PNG_SIGNATURE, *_png_chunk(b"IHDR", header), palette,
                                                *_png_chunk(b"IDAT", stream), *_png_chunk(b"IEND", b"")))))
        strip.load()
        top = 1 if previous else 0
        previous = b"\x00" + strip.crop((0, rows - 1, w, rows)).tobytes()
        work = _working(strip, name)
        part = work.reduce((fx, fy), box=(0, top, w, rows))
        if out is None:
            out = Image.new(work.mode, (math.ceil(w / fx), math.ceil(h / fy)))
        out.paste(part, (0, y // fy))
        y += rows - top
    assert out is not None  # _scanline_strips yields at least one strip or raises
    return out, (0.0, 0.0, w / fx, h / fy), exif


def _png_chunks(data: memoryview) -> Iterator[tuple[bytes, memoryview, memoryview]]:
    """(type, whole chunk, payload) for each complete chunk after the signature, up to IEND."""
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            return  # a cut-off chunk: missing pixel rows are reported by _scanline_strips
        yield ctype, data[pos:end], data[pos + 8:pos + 8 + length]
        if ctype == b"IEND":
            return
        pos = end


def _png_chunk(ctype: bytes, payload: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """The parts of one PNG chunk: length, type, payload, CRC (joined by the caller, to copy only once)."""
    return struct.pack(">I", len(payload)), ctype, payload, struct.pack(">I", zlib.crc32(payload, zlib.crc32(ctype)))


def _scanline_strips(idat: Iterable[memoryview], row: int, rows_per_strip: int, height: int,
                     name: str) -> Iterator[bytes]:
    """Inflate the IDAT payloads incrementally; yield the filtered scanlines ``rows_per_strip`` rows at a time."""
    inflater = zlib.decompressobj()
    total, strip_bytes = row * height, row * rows_per_strip
    buf, done = bytearray(), 0

    def pieces() -> Iterator[bytes]:
        for payload in idat:
            for i in range(0, len(payload), 1 << 16):  # small inputs: no big unconsumed_tail copies
                pending = payload[i:i + (1 << 16)]
                while pending and not inflater.eof:
                    yield inflater.decompress(pending, strip_bytes)
                    pending = inflater.unconsumed_tail
        yield inflater.flush()

    for piece in pieces():
        buf += piece
        while len(buf) >= strip_bytes and done + strip_bytes < total:
            yield bytes(buf[:strip_bytes])
            del buf[:strip_bytes]
            done += strip_bytes
        if done + len(buf) >= total:
            break
    if done + len(buf) < total:
        got = (done + len(buf)) // row
        raise ImageDecodeError(f"{name}: truncated or corrupt image (PNG data ends after {got} of {height} rows)")
    yield bytes(buf[:total - done])


def _detail(exc: BaseException) -> str:
    """The first line of an exception's message, safe to put in a one-line ``name: reason (detail)``."""
    return one_line(exc).replace(": ", " - ")[:160]
