"""Video decoding with PyAV and frame sampling (uniform or scene-change).

A clip is decoded twice, both times sequentially (no seeking, which is unreliable
on short or damaged files): the first pass reads every frame's timestamp and a
32 x 32 colour thumbnail, from which the frames to keep are chosen; the second pass
keeps only those frames at full colour, scaled so the longer side is at most
``max_side``. Only the chosen frames are ever held in memory.

Sampling (docs/methods/media.md):

* ``uniform``: frame ``floor((j + 0.5) * n / k)`` for ``j < k`` — the centres of k
  equal slices of the clip, so neither the first nor the last (often a fade) frame
  is favoured.
* ``scene``: the first frame plus the frames whose mean absolute thumbnail
  difference to the previous frame is at least ``scene_threshold`` (a hard cut),
  strongest first, capped at k; when a clip has fewer cuts than k, the remainder
  is filled with uniform picks not already chosen. A thumbnail difference is the
  simple pixel-difference cut detector (Zhang, Kankanhalli & Smoliar 1993).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from audit.media.errors import MediaItemError
from audit.media.image import encode_png, looks_like_video

if TYPE_CHECKING:
    import numpy as np

SamplingMethod = Literal["uniform", "scene"]

_THUMB = 32


@dataclass(frozen=True)
class SampledFrame:
    """One sampled frame.

    Attributes:
        index: decode-order index of the frame in the clip (0-based).
        timestamp_s: presentation time in seconds (from the stream's time base;
            ``index / average_rate`` when the container gives none).
        png: the frame as PNG bytes.
    """

    index: int
    timestamp_s: float
    png: bytes


@dataclass(frozen=True)
class VideoProbe:
    """What the first pass learned: per-frame timestamps and cut scores."""

    n_frames: int
    timestamps: list[float]
    cut_scores: np.ndarray  # (n,) mean |thumb_i - thumb_{i-1}| / 255; frame 0: +inf
    width: int
    height: int


def _open(path: Path, name: str) -> Any:
    import av

    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise MediaItemError("media_missing", f"{name} cannot be read ({exc})") from None
    # FFmpeg happily opens a still image as a one-frame "video": refuse it by its magic
    if _is_image(head) and not looks_like_video(head):
        raise MediaItemError("media_wrong_type", f"{name} is an image file, expected a video")
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaItemError(
            "media_decode", f"{name} cannot be opened as a video ({type(exc).__name__}: {exc})"
        ) from None


def _is_image(head: bytes) -> bool:
    return head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    )


def _video_stream(container: Any, name: str) -> Any:
    streams = [s for s in container.streams if s.type == "video"]
    if not streams:
        raise MediaItemError("video_no_stream", f"{name} has no video stream")
    stream = streams[0]
    stream.thread_type = "AUTO"
    return stream


def _frame_time(frame: Any, index: int, rate: float | None) -> float:
    if frame.time is not None:
        return float(frame.time)
    return index / rate if rate else float(index)


def probe_video(path: Path, *, max_decoded_frames: int, name: str = "video") -> VideoProbe:
    """First pass: timestamps and cut scores of every frame.

    Raises:
        MediaItemError: the file is not a video, has no video stream, decodes to
            no frames, breaks mid-stream, or has more than ``max_decoded_frames``.
    """
    import av
    import numpy as np

    container = _open(path, name)
    try:
        stream = _video_stream(container, name)
        rate = float(stream.average_rate) if stream.average_rate else None
        times: list[float] = []
        diffs: list[float] = []
        prev: np.ndarray | None = None
        w = h = 0
        try:
            for frame in container.decode(stream):
                if len(times) >= max_decoded_frames:
                    raise MediaItemError(
                        "video_too_long",
                        f"{name} has more than {max_decoded_frames} frames "
                        "(raise media.max_decoded_frames, or cut the clip)",
                    )
                w, h = frame.width, frame.height
                thumb = frame.to_ndarray(format="rgb24", width=_THUMB, height=_THUMB)
                cur = thumb.astype(np.float32)
                diffs.append(math.inf if prev is None else float(np.abs(cur - prev).mean() / 255.0))
                prev = cur
                times.append(_frame_time(frame, len(times), rate))
        except av.FFmpegError as exc:
            raise MediaItemError(
                "media_decode",
                f"{name} breaks after {len(times)} frames ({type(exc).__name__}: {exc})",
            ) from None
        if not times:
            raise MediaItemError("video_zero_frames", f"{name} has a video stream with no frames")
        return VideoProbe(len(times), times, np.asarray(diffs), w, h)
    finally:
        container.close()


def choose_frames(
    probe: VideoProbe, k: int, method: SamplingMethod, scene_threshold: float
) -> list[int]:
    """Indices (ascending) of the frames to keep; see the module docstring."""
    n = probe.n_frames
    if n <= k:
        return list(range(n))
    uniform = sorted({math.floor((j + 0.5) * n / k) for j in range(k)})
    if method == "uniform":
        return uniform
    cuts = [i for i in range(n) if probe.cut_scores[i] >= scene_threshold]
    cuts.sort(key=lambda i: (-probe.cut_scores[i], i))  # frame 0 (inf) first, then strongest
    chosen = set(cuts[:k])
    for i in uniform:
        if len(chosen) >= k:
            break
        chosen.add(i)
    # uniform picks may collide with cuts: fill from the nearest unused frames
    j = 0
    while len(chosen) < k and j < n:
        chosen.add(j)
        j += 1
    return sorted(chosen)


def sample_frames(
    path: Path,
    *,
    k: int,
    method: SamplingMethod = "uniform",
    scene_threshold: float = 0.25,
    max_side: int = 512,
    max_decoded_frames: int = 20_000,
    name: str = "video",
) -> tuple[list[SampledFrame], VideoProbe]:
    """Decode ``path`` and keep ``k`` frames (fewer when the clip is shorter).

    Returns:
        The frames in time order, and the first-pass probe.
    """
    import av

    probe = probe_video(path, max_decoded_frames=max_decoded_frames, name=name)
    want = set(choose_frames(probe, k, method, scene_threshold))
    frames: list[SampledFrame] = []
    container = _open(path, name)
    try:
        stream = _video_stream(container, name)
        try:
            for i, frame in enumerate(container.decode(stream)):
                if i in want:
                    im = frame.to_image()
                    if max(im.size) > max_side:
                        im.thumbnail((max_side, max_side))
                    frames.append(SampledFrame(i, probe.timestamps[i], encode_png(im)))
                    if len(frames) == len(want):
                        break
        except av.FFmpegError as exc:  # the first pass succeeded: a non-deterministic decoder?
            raise MediaItemError(
                "media_decode", f"{name} failed on the second decode ({exc})"
            ) from None
    finally:
        container.close()
    if len(frames) != len(want):
        raise MediaItemError(
            "media_decode", f"{name} yielded {len(frames)} of {len(want)} frames on the second pass"
        )
    return frames, probe


def write_test_clip(
    path: Path,
    colours: list[tuple[int, int, int]],
    *,
    frames_per_colour: int = 5,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    codec: str = "mpeg4",
    pattern: bool = True,
) -> Path:
    """Encode a short synthetic clip: one scene per colour (for tests and the example).

    With ``pattern`` each frame carries a moving bar, so frames are not uniform and
    consecutive frames differ a little (as real footage does) while a colour change
    is a hard cut. ``mpeg4`` ships in every PyAV wheel.
    """
    import av
    import numpy as np

    w, h = size
    with av.open(str(path), mode="w") as out:
        stream: Any = out.add_stream(codec, rate=fps)  # a VideoStream for a video codec
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        t = 0
        for colour in colours:
            for _ in range(frames_per_colour):
                arr = np.empty((h, w, 3), dtype=np.uint8)
                arr[:] = colour
                if pattern:
                    x = (t * 3) % max(1, w - 8)
                    arr[:, x : x + 8] = [255 - c for c in colour]
                frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
                t += 1
        for packet in stream.encode(None):
            out.mux(packet)
    return path
