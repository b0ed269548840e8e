"""Image loading limits, the near-uniform frame statistic, hashing."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from audit.media import MediaItemError, luminance_std, open_image, sha256_bytes
from audit.media.image import looks_like_video
from tests.media._gen import bomb_png, gradient, png_bytes, solid, text_image


def test_open_image_rgb_and_alpha_on_white() -> None:
    im = open_image(png_bytes(gradient()))
    assert im.mode == "RGB" and im.size == (96, 64)
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # fully transparent black
    out = open_image(png_bytes(rgba))
    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_bomb_header_refused_before_decoding() -> None:
    data = bomb_png()
    assert len(data) < 200
    with pytest.raises(MediaItemError) as ei:
        open_image(data, max_pixels=50_000_000)
    assert ei.value.error_type == "image_too_many_pixels"
    assert "10000000000 pixels" in ei.value.message and "50000000" in ei.value.message
    # below Pillow's own guard, the per-call limit still applies
    with pytest.raises(MediaItemError, match="12000x12000 = 144000000 pixels"):
        open_image(bomb_png(12_000, 12_000), max_pixels=50_000_000)


def test_pixel_limit_is_per_call() -> None:
    data = png_bytes(solid((1, 2, 3), (100, 100)))
    open_image(data, max_pixels=10_000)
    with pytest.raises(MediaItemError, match="over the limit of 9999"):
        open_image(data, max_pixels=9_999)


@pytest.mark.parametrize(
    ("data", "etype"),
    [
        (b"", "media_empty"),
        (b"just some text, not an image", "media_decode"),
        (png_bytes(gradient())[:200], "media_decode"),  # truncated PNG
        (b"\x00\x00\x00\x18ftypisom" + b"\x00" * 40, "media_wrong_type"),  # an MP4 header
    ],
)
def test_bad_images(data: bytes, etype: str) -> None:
    with pytest.raises(MediaItemError) as ei:
        open_image(data, name="x.png")
    assert ei.value.error_type == etype and "x.png" in ei.value.message


def test_truncated_jpeg_is_an_error_not_grey_pixels() -> None:
    buf = io.BytesIO()
    gradient((256, 256)).save(buf, format="JPEG")
    with pytest.raises(MediaItemError, match="truncated or corrupt"):
        open_image(buf.getvalue()[: len(buf.getvalue()) // 2])


def test_luminance_std_separates_uniform_from_content() -> None:
    assert luminance_std(solid((0, 0, 0))) == 0.0
    assert luminance_std(solid((200, 30, 90))) == 0.0
    assert luminance_std(text_image()) > 10
    assert luminance_std(gradient()) > 30


def test_magic_and_hash() -> None:
    assert looks_like_video(b"\x00\x00\x00\x18ftypisom")
    assert not looks_like_video(b"\x00\x00\x00\x18ftypavif")  # AVIF is an image
    assert not looks_like_video(png_bytes(solid((1, 1, 1))))
    assert sha256_bytes(b"a") != sha256_bytes(b"b") and len(sha256_bytes(b"")) == 64


def test_unknown_error_type_is_a_bug() -> None:
    with pytest.raises(ValueError):
        MediaItemError("nope", "x")
