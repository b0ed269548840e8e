"""Image loading with size limits, the near-uniform frame test, and media hashing.

Every decode goes through :func:`open_image`, which reads the header first and
refuses images whose pixel count exceeds a limit *before* the pixels are
decompressed: a 100 000 x 100 000 PNG is a few hundred bytes on disk and 30 GB in
memory (a "decompression bomb"). Pillow has its own global guard
(``Image.MAX_IMAGE_PIXELS``), but it is process-wide and warns instead of failing
below twice the limit; the explicit per-call check here is what the suite card's
``max_image_pixels`` means. See docs/methods/media.md.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from typing import TYPE_CHECKING

from audit.media.errors import MediaItemError

if TYPE_CHECKING:
    from PIL import Image as PILImage

#: Default decompression-bomb limit (pixels): 50 MP covers any phone photo.
DEFAULT_MAX_PIXELS = 50_000_000

#: Signatures of common video containers, to tell "a video in the image column"
#: (``media_wrong_type``) apart from bytes that are no media at all.
_VIDEO_MAGIC = (b"ftyp", b"\x1aE\xdf\xa3", b"RIFF", b"OggS", b"FLV")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of raw media bytes (what enters the content hash and digest)."""
    return hashlib.sha256(data).hexdigest()


def looks_like_video(data: bytes) -> bool:
    """Whether ``data`` starts like a common video container (MP4/MOV, MKV/WebM, AVI, Ogg)."""
    head = data[:16]
    if head[4:8] == b"ftyp":  # ISO BMFF: size(4) 'ftyp' brand
        return not head[8:12].startswith((b"avif", b"heic", b"heix", b"mif1"))
    return head.startswith(_VIDEO_MAGIC[1:])


def open_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image"
) -> PILImage.Image:
    """Decode image bytes into an RGB Pillow image, or raise :class:`MediaItemError`.

    The size check happens on the header, before decoding. The image is fully
    loaded here so truncation surfaces now (Pillow otherwise decodes lazily).
    Animated images (GIF, APNG, WebP) yield their first frame.

    Args:
        data: encoded bytes.
        max_pixels: width x height limit.
        name: how to name the source in messages (a path relative to the card).
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise MediaItemError("media_empty", f"{name} is empty (0 bytes)")
    with warnings.catch_warnings():
        # Pillow's own bomb warning is superseded by the explicit check below
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:  # Pillow's own guard fires first
            raise MediaItemError(
                "image_too_many_pixels",
                f"{name} is refused before decoding: {exc} (limit here: {max_pixels} pixels)",
            ) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            if looks_like_video(data):
                raise MediaItemError(
                    "media_wrong_type", f"{name} is a video file, expected an image"
                ) from None
            raise MediaItemError(
                "media_decode", f"{name} is not a decodable image ({type(exc).__name__})"
            ) from None
        w, h = im.size
        if w <= 0 or h <= 0:
            raise MediaItemError("media_decode", f"{name} has no pixels ({w}x{h})")
        if w * h > max_pixels:
            raise MediaItemError(
                "image_too_many_pixels",
                f"{name} is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}",
            )
        try:
            im.load()
            rgb = _to_rgb(im)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise MediaItemError(
                "media_decode", f"{name} is truncated or corrupt ({type(exc).__name__}: {exc})"
            ) from None
    return rgb


def _to_rgb(im: PILImage.Image) -> PILImage.Image:
    """RGB copy; transparency is composited onto white (a transparent pixel is no
    content, and black would look like the dark frames the filter drops)."""
    from PIL import Image

    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")


def luminance_std(im: PILImage.Image, *, side: int = 64) -> float:
    """Standard deviation of the luma (ITU-R BT.601, 0–255) on a ``side``-pixel thumbnail.

    0 for a solid colour; a few units for a dark frame with sensor noise or a
    fade; tens for any frame with visible content. Downscaling first keeps the
    cost independent of resolution and ignores pixel-level compression noise.
    """
    import numpy as np

    small = im.convert("L").resize((side, side))
    return float(np.asarray(small, dtype=np.float64).std())


def encode_png(im: PILImage.Image) -> bytes:
    """Lossless PNG bytes (how sampled frames are stored and hashed)."""
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


#: Longest side (pixels) of an image handed to a vision-language judge: large enough
#: for any VLM's own resize (Llama 4 tiles at 336, Gemma 3 / SigLIP at 896), small
#: enough that a data URL stays a few hundred kB.
DEFAULT_JUDGE_MAX_SIDE = 896

_DATA_URL_PNG = "data:image/png;base64,"


def to_data_url(
    data: bytes,
    *,
    max_side: int = DEFAULT_JUDGE_MAX_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str = "image",
) -> str:
    """``data`` (any image format Pillow reads) as a PNG data URL, the canonical image
    part of a judge prompt (``{"type": "image_url", "image_url": {"url": ...}}``).

    The image is decoded through :func:`open_image` (pixel limit, truncation, RGB),
    shrunk so its longer side is at most ``max_side`` (aspect kept, Lanczos) and
    re-encoded as PNG, so every backend and server sees the same lossless pixels
    whatever the source format. Raises :class:`MediaItemError` like :func:`open_image`.
    """
    import base64

    from PIL import Image

    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    im = open_image(data, max_pixels=max_pixels, name=name)
    w, h = im.size
    if max(w, h) > max_side:
        scale = max_side / max(w, h)
        im = im.resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS
        )
    return _DATA_URL_PNG + base64.b64encode(encode_png(im)).decode("ascii")


def from_data_url(
    url: str, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image part"
) -> PILImage.Image:
    """The RGB image of a ``data:image/...;base64,`` URL (what :func:`to_data_url`
    writes, or any base64 image data URL). A remote URL is refused: judges read
    only the pixels the suite holds. Raises :class:`MediaItemError`."""
    import base64
    import binascii

    if not url.startswith("data:image/"):
        raise MediaItemError("media_url", f"{name} is not an image data URL (starts {url[:24]!r})")
    head, sep, payload = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise MediaItemError("media_decode", f"{name} is not a base64 data URL ({head[:40]!r})")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MediaItemError("media_decode", f"{name} holds invalid base64") from None
    return open_image(data, max_pixels=max_pixels, name=name)
