"""Safe decoding: every kind of bad or unusual image from design.md's Bad input list, and big clip art."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

import tagcode.data.images as images
from tagcode.data.images import ImageDecodeError, decode_image


def _encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _pattern(w: int, h: int) -> np.ndarray:
    """An RGBA test card: gradients, a xor texture, a noisy band and an alpha disc (exercises PNG filters)."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.stack([xx * 255 // w, yy * 255 // h, (xx ^ yy) & 255,
                    np.where((xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (h / 3) ** 2, 255, xx % 256)], axis=-1)
    out[h // 3:h // 3 + 7] = np.random.default_rng(0).integers(0, 256, (7, w, 4))
    return out.astype(np.uint8)


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def test_output_is_square_rgb_letterboxed_on_the_background() -> None:
    out = decode_image(_encode(Image.new("RGB", (40, 20), (255, 0, 0))), 16, background=(0, 0, 90))
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert tuple(out[8, 8]) == (255, 0, 0)
    assert tuple(out[1, 8]) == (0, 0, 90) and tuple(out[14, 8]) == (0, 0, 90)  # bands above and below
    assert (out[4:12, :] == (255, 0, 0)).all()  # 40x20 → 16x8, centred
    tall = decode_image(_encode(Image.new("L", (10, 30), 50)), 9)
    assert (tall[:, 3:6] == 50).all() and (tall[:, :3] == 255).all() and (tall[:, 6:] == 255).all()


_JPEG = _encode(Image.fromarray(_pattern(64, 64)[..., :3]), "JPEG")
_PNG = _encode(Image.fromarray(_pattern(64, 64)), "PNG")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"definitely not an image", r"not an image \(unrecognised format\)"),
        (_JPEG[:300], "truncated or corrupt image"),
        (_JPEG[: len(_JPEG) // 2], "truncated or corrupt image"),
        (_PNG[: len(_PNG) // 2], "truncated or corrupt image"),
        (_PNG[:20], "truncated or corrupt image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "truncated or corrupt image"),
    ],
)
def test_broken_files_are_one_line_errors_naming_the_file(data: bytes, reason: str) -> None:
    with pytest.raises(ImageDecodeError, match=f"^broken.img: {reason}") as info:
        decode_image(data, 8, name="broken.img")
    assert "\n" not in str(info.value)


def test_truncation_is_refused_even_when_pil_is_told_to_accept_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    cut = _encode(Image.fromarray(_pattern(64, 64)[..., :3]), "JPEG", quality=95)[:-700]
    with pytest.raises(ImageDecodeError, match="truncated or corrupt"):
        decode_image(cut, 8, name="cut.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is left as it was


def test_decompression_bomb_refused_from_the_header_alone() -> None:
    # A 100,000 x 100,000 RGBA header with no pixel data at all: only the header can have been read.
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 6, 0, 0, 0))
    bomb = b"\x89PNG\r\n\x1a\n" + ihdr + _png_chunk(b"IEND", b"")
    max_before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageDecodeError, match=r"^bomb.png: decompression bomb \(100000x100000 = "):
        decode_image(bomb, 8, name="bomb.png")
    assert max_before == Image.MAX_IMAGE_PIXELS  # PIL's global limit is untouched afterwards
    real = _encode(Image.new("L", (4000, 3000)))
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        decode_image(real, 8, max_pixels=1_000_000)
    assert decode_image(real, 8, max_pixels=20_000_000).shape == (8, 8, 3)


def test_concurrent_decoding_matches_sequential_and_restores_pil_settings() -> None:
    jobs = [(_encode(Image.fromarray(_pattern(40 + i, 30))), 1_000_000 if i % 3 else 100) for i in range(24)]

    def run(job: tuple[bytes, int]) -> np.ndarray | str:
        try:
            return decode_image(job[0], 16, max_pixels=job[1])
        except ImageDecodeError as exc:
            return str(exc)

    settings = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(run, jobs))
    alone = [run(job) for job in jobs]
    for a, b in zip(together, alone, strict=True):
        assert type(a) is type(b)
        assert a == b if isinstance(a, str) else np.array_equal(a, b)
    assert sum(isinstance(a, str) for a in together) == 8
    assert settings == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)


def test_images_over_pils_own_limit_decode_when_under_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL alone would refuse 2,000+ pixels
    out = decode_image(_encode(Image.new("RGB", (100, 50), (0, 255, 0))), 10, max_pixels=10_000)
    assert tuple(out[5, 5]) == (0, 255, 0)


def test_alpha_is_composited_on_the_background_not_dropped() -> None:
    clear = Image.new("RGBA", (10, 10), (0, 0, 255, 0))
    assert tuple(decode_image(_encode(clear), 4)[2, 2]) == (255, 255, 255)
    assert tuple(decode_image(_encode(clear), 4, background=(0, 0, 0))[2, 2]) == (0, 0, 0)
    half = Image.new("RGBA", (10, 10), (255, 0, 0, 128))
    assert np.abs(decode_image(_encode(half), 4)[2, 2].astype(int) - (255, 127, 127)).max() <= 1
    grey = Image.new("LA", (10, 10), (0, 128))
    assert abs(int(decode_image(_encode(grey), 4)[2, 2, 0]) - 127) <= 1


def test_resampling_does_not_bleed_the_colour_of_transparent_pixels() -> None:
    # Fully transparent pixels hold pure green; premultiplied resampling must not let it show at the edge.
    arr = np.zeros((64, 64, 4), np.uint8)
    arr[..., 1] = 255
    arr[:, 32:] = (255, 0, 0, 255)
    out = decode_image(arr, 16).astype(int)
    assert (out[:, :, 1] - out[:, :, 0] <= 2).all()  # nowhere greener than red: the green never leaks


def test_palette_with_and_without_transparency() -> None:
    p = Image.new("P", (10, 10), 1)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    assert tuple(decode_image(_encode(p, transparency=1), 4)[2, 2]) == (255, 255, 255)
    assert tuple(decode_image(_encode(p), 4)[2, 2]) == (255, 0, 0)
    alphas = Image.new("P", (10, 10), 1)
    alphas.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    out = decode_image(_encode(alphas, transparency=bytes([255, 128])), 4)[2, 2].astype(int)
    assert np.abs(out - (127, 127, 255)).max() <= 1  # a per-entry alpha of 128 over white


@pytest.mark.parametrize(
    ("img", "fmt", "expected"),
    [
        (Image.new("CMYK", (10, 10), (0, 255, 255, 0)), "JPEG", (255, 0, 0)),
        (Image.new("L", (10, 10), 77), "PNG", (77, 77, 77)),
        (Image.new("1", (10, 10), 1), "PNG", (255, 255, 255)),
        (Image.new("1", (10, 10), 0), "PNG", (0, 0, 0)),
        (Image.new("YCbCr", (10, 10), (76, 85, 255)), "JPEG", (254, 0, 0)),
        (Image.fromarray(np.full((10, 10), 65535 // 2, np.uint16)), "PNG", (128, 128, 128)),
        (Image.fromarray(np.full((10, 10), 65535, np.uint16)), "PNG", (255, 255, 255)),
        (Image.fromarray(np.full((10, 10), 1 << 14, np.int32)), "TIFF", (64, 64, 64)),
        (Image.fromarray(np.full((10, 10), 0.25, np.float32)), "TIFF", (64, 64, 64)),
    ],
    ids=["cmyk-jpeg", "L", "1-white", "1-black", "ycbcr-jpeg", "I;16-half", "I;16-max", "I-32bit", "F-unit"],
)
def test_colour_modes_are_converted_not_clipped(img: Image.Image, fmt: str, expected: tuple[int, int, int]) -> None:
    data = _encode(img, fmt, quality=98) if fmt == "JPEG" else _encode(img, fmt)
    reopened = Image.open(io.BytesIO(data)).mode
    assert reopened == img.mode or (img.mode, reopened) in {("I;16", "I;16"), ("YCbCr", "RGB")}
    assert np.abs(decode_image(data, 4)[2, 2].astype(int) - expected).max() <= 3


def test_sixteen_bit_grey_keeps_its_gradient() -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (8, 1))
    out = decode_image(_encode(Image.fromarray(ramp)), 256)[128, :, 0].astype(int)
    assert out[0] == 0 and out[-1] == 255 and (np.diff(out) >= 0).all() and len(np.unique(out)) > 200


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_imageops(orientation: int) -> None:
    card = Image.fromarray(_pattern(48, 24)[..., :3])
    exif = Image.Exif()
    exif[0x0112] = orientation
    tagged = Image.open(io.BytesIO(_encode(card, "PNG", exif=exif.tobytes())))
    expected = decode_image(_encode(ImageOps.exif_transpose(tagged)), 24)
    got = decode_image(_encode(card, "PNG", exif=exif.tobytes()), 24)
    # Shrinking before or after the transpose rounds differently by a few levels; a wrong turn differs a lot.
    assert np.abs(got.astype(int) - expected).mean() < 0.5


def test_exif_orientation_six_rotates_a_jpeg() -> None:
    img = Image.new("RGB", (20, 10), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 10))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = decode_image(_encode(img, "JPEG", exif=exif.tobytes(), quality=95), 20)
    # After rotation the white half is on top: the top-centre is white, the bottom-centre dark.
    assert out[2, 10].mean() > 200 and out[17, 10].mean() < 60
    assert out[10, 2].mean() > 200 and out[10, 17].mean() > 200  # letterbox bands left and right


def test_large_jpeg_is_drafted_and_matches_a_full_decode() -> None:
    card = Image.fromarray(_pattern(2400, 1600)[..., :3])
    data = _encode(card, "JPEG", quality=95)
    reference = np.asarray(card.resize((96, 64), Image.Resampling.LANCZOS)).astype(int)
    out = decode_image(data, 96).astype(int)
    assert np.abs(out[16:80] - reference).mean() < 4
    opened = Image.open(io.BytesIO(data))
    opened.draft(None, (288, 192))
    assert opened.size == (300, 200)  # what decode_image asks for (3x the target): DCT scaling by 1/8


def _modes() -> dict[str, bytes]:
    rgba = Image.fromarray(_pattern(600, 400))
    pal = rgba.convert("RGB").quantize(64)
    return {"RGBA": _encode(rgba), "RGB": _encode(rgba.convert("RGB")), "L": _encode(rgba.convert("L")),
            "LA": _encode(rgba.convert("LA")), "P": _encode(pal), "P-tRNS": _encode(pal, transparency=3),
            "L-tRNS": _encode(rgba.convert("L"), transparency=7)}


@pytest.mark.parametrize("mode", list(_modes()))
@pytest.mark.parametrize("size", [37, 64])
def test_strip_decoding_of_large_pngs_equals_whole_decoding(mode: str, size: int,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    data = _modes()[mode]
    whole = decode_image(data, size)
    calls = []
    real = images._png_in_strips
    monkeypatch.setattr(images, "_png_in_strips", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(images, "STRIP_PIXELS", 10_000)
    monkeypatch.setattr(images, "_STRIP_BYTES", 30_000)  # many strips, several rows each
    assert np.array_equal(decode_image(data, size), whole) and calls == [1]


def test_strip_decoding_applies_exif_after_the_pixel_data(monkeypatch: pytest.MonkeyPatch) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(Image.fromarray(_pattern(300, 200)), exif=exif.tobytes())
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        chunks.append(data[pos:pos + 12 + length])
        pos += 12 + length
    moved = sorted(chunks, key=lambda c: {b"eXIf": 1, b"IEND": 2}.get(c[4:8], 0))  # eXIf after IDAT
    late = data[:8] + b"".join(moved)
    assert late.index(b"eXIf") > late.index(b"IDAT")
    whole = decode_image(late, 32)
    monkeypatch.setattr(images, "STRIP_PIXELS", 1000)
    assert np.array_equal(decode_image(late, 32), whole)
    assert np.array_equal(whole, decode_image(data, 32))
    upright = decode_image(_encode(Image.fromarray(_pattern(300, 200)).transpose(Image.Transpose.ROTATE_270)), 32)
    assert np.abs(whole.astype(int) - upright).mean() < 3


def test_truncated_large_png_is_reported_by_the_strip_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "STRIP_PIXELS", 1000)
    data = _modes()["RGBA"]
    idat = data.index(b"IDAT")
    with pytest.raises(ImageDecodeError, match=r"^big.png: truncated or corrupt image \(PNG data ends after \d+ of"):
        decode_image(data[:idat + 20_000], 16, name="big.png")


def _big_png(path: Path, w: int, h: int) -> None:
    """Write a w x h RGBA PNG row by row (a diagonal stripe pattern) without ever holding its pixels."""
    deflate = zlib.compressobj(1)
    parts = []
    for y in range(h):
        row = np.zeros((w, 4), np.uint8)
        row[:, 3] = 255
        row[(np.arange(w) + y) % 64 < 32, 0] = 255
        parts.append(deflate.compress(b"\x00" + row.tobytes()))
    parts.append(deflate.flush())
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
                     + _png_chunk(b"IEND", b""))


def test_large_png_decodes_in_bounded_memory(tmp_path: Path) -> None:
    # 8,000 x 6,000 RGBA is 192 MB decoded (and twice that while premultiplying): far above what we allow.
    path = tmp_path / "big.png"
    _big_png(path, 8000, 6000)
    script = (
        "import json, resource, sys\n"
        "from tagcode.data.images import decode_image\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "out = decode_image(data, 64, max_pixels=10**9)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'growth_mb': (peak - base) / 1024, 'red': int(out[32, :, 0].mean())}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
    stats = json.loads(result.stdout)
    assert stats["growth_mb"] < 80, stats
    assert 100 < stats["red"] < 160  # half the columns are red stripes: averaged to about half intensity


def test_arrays_are_accepted_like_decoded_images() -> None:
    grey = np.full((28, 56), 200, np.uint8)
    out = decode_image(grey, 8)
    assert out.shape == (8, 8, 3) and (out[2:6] == 200).all() and (out[0] == 255).all()
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[..., 2] = 250
    assert tuple(decode_image(rgb, 5)[2, 2]) == (0, 0, 250)
    assert tuple(decode_image(np.ones((6, 6), bool), 3)[1, 1]) == (255, 255, 255)
    assert tuple(decode_image(np.full((6, 6), 0.5, np.float32), 3)[1, 1]) == (128, 128, 128)
    assert tuple(decode_image(np.zeros((6, 6, 4), np.uint8), 3)[1, 1]) == (255, 255, 255)  # transparent
    png = decode_image(_encode(Image.fromarray(_pattern(50, 30)[..., :3])), 20)
    assert np.array_equal(decode_image(_pattern(50, 30)[..., :3], 20), png)


@pytest.mark.parametrize(
    ("arr", "reason"),
    [
        (np.zeros((0, 5), np.uint8), "empty array"),
        (np.zeros((4, 4, 2), np.uint8), "unsupported array shape"),
        (np.zeros((4, 4, 3), np.float32), "colour arrays must be uint8"),
        (np.zeros((4, 4), np.complex64), "unsupported array dtype"),
    ],
)
def test_bad_arrays_are_one_line_errors(arr: np.ndarray, reason: str) -> None:
    with pytest.raises(ImageDecodeError, match=f"^synthetic/3: {reason}"):
        decode_image(arr, 8, name="synthetic/3")
