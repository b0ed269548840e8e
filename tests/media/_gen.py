"""Generated media for the media tests: images, clips and hostile files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from audit.media.video import write_test_clip


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.new("RGB", size, colour)


def gradient(size: tuple[int, int] = (96, 64)) -> Image.Image:
    w, h = size
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    arr[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    return Image.fromarray(arr)


def text_image(text: str = "HELLO 123") -> Image.Image:
    im = Image.new("RGB", (120, 40), (255, 255, 255))
    ImageDraw.Draw(im).text((5, 12), text, fill=(0, 0, 0))
    return im


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid-looking PNG whose header claims ``width x height`` pixels (a few
    hundred bytes on disk, tens of GB decoded)."""
    raw = png_bytes(Image.new("1", (1, 1)))
    ihdr_data = struct.pack(">II", width, height) + raw[24:29]
    chunk = b"IHDR" + ihdr_data
    ihdr = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    return raw[:8] + ihdr + raw[33:]


def clip(path: Path, colours: list[tuple[int, int, int]], **kw: object) -> Path:
    return write_test_clip(path, colours, **kw)  # type: ignore[arg-type]


def zero_frame_avi(path: Path) -> Path:
    """An AVI with a video stream header and no frames."""
    import av

    out = av.open(str(path), "w", format="avi")
    s = out.add_stream("mpeg4", rate=10)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    out.start_encoding()
    out.close()
    return path


def audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("aac", rate=8000)
        fr = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        fr.sample_rate = 8000
        for pk in s.encode(fr):
            out.mux(pk)
        for pk in s.encode(None):
            out.mux(pk)
    return path
