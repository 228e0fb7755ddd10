"""Safe decoding: every kind of bad or unusual image from design.md's Bad input list."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tagcode.data.images import ImageDecodeError, decode_image


def _encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_output_is_square_rgb_letterboxed() -> None:
    out = decode_image(_encode(Image.new("RGB", (40, 20), (255, 0, 0))), 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert tuple(out[8, 8]) == (255, 0, 0)
    assert tuple(out[0, 8]) == (255, 255, 255)  # letterbox band above a wide image


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"definitely not an image", "not an image"),
        (_encode(Image.new("RGB", (64, 64), (10, 200, 10)), "JPEG")[:300], "truncated or corrupt"),
        (_encode(Image.new("RGB", (64, 64), (10, 200, 10)), "PNG")[:-40], "truncated or corrupt"),
    ],
)
def test_broken_files_are_one_line_errors(data: bytes, reason: str) -> None:
    with pytest.raises(ImageDecodeError, match=f"broken.img: {reason}") as info:
        decode_image(data, 8, name="broken.img")
    assert "\n" not in str(info.value)


def test_decompression_bomb_refused_from_header() -> None:
    bomb = _encode(Image.new("L", (4000, 3000)))
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        decode_image(bomb, 8, name="bomb.png", max_pixels=1_000_000)
    assert decode_image(bomb, 8, max_pixels=20_000_000).shape == (8, 8, 3)


def test_alpha_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (10, 10), (0, 0, 255, 0))
    assert tuple(decode_image(_encode(rgba), 4)[2, 2]) == (255, 255, 255)
    half = Image.new("LA", (10, 10), (0, 128))
    assert abs(int(decode_image(_encode(half), 4)[2, 2, 0]) - 127) <= 2


def test_palette_with_transparency() -> None:
    p = Image.new("P", (10, 10), 1)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.info["transparency"] = 1
    assert tuple(decode_image(_encode(p, transparency=1), 4)[2, 2]) == (255, 255, 255)
    p.info.pop("transparency")
    assert tuple(decode_image(_encode(p), 4)[2, 2]) == (255, 0, 0)


def test_cmyk_and_sixteen_bit() -> None:
    cmyk = Image.new("CMYK", (10, 10), (0, 255, 255, 0))  # red
    r, g, b = decode_image(_encode(cmyk, "JPEG", quality=95), 4)[2, 2]
    assert r > 200 and g < 60 and b < 60
    arr = np.full((10, 10), 65535 // 2, dtype=np.uint16)
    sixteen = Image.fromarray(arr)
    assert sixteen.mode.startswith("I;16")
    assert abs(int(decode_image(_encode(sixteen), 4)[2, 2, 0]) - 128) <= 2  # scaled, not clipped to 255


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (20, 10), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 10))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = decode_image(_encode(img, "JPEG", exif=exif.tobytes(), quality=95), 20)
    # After rotation the white half is on top: the top-centre is white, the bottom-centre dark.
    assert out[2, 10].mean() > 200 and out[17, 10].mean() < 60


def test_arrays_are_accepted() -> None:
    grey = np.full((28, 56), 200, np.uint8)
    out = decode_image(grey, 8)
    assert out.shape == (8, 8, 3) and out[4, 4, 0] == 200
