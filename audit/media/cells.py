"""Turn one suite row's media cells into canonical values or a per-item error.

A card's ``media:`` block names the image and video columns; each cell holds a
path relative to the media root (the card's folder by default). Reading a cell
never raises for a bad *item*: every failure comes back as
``MediaCell(error=..., error_type=...)`` and the loader stores it on the item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from audit.media.errors import MediaItemError
from audit.media.image import looks_like_video, open_image, sha256_bytes
from audit.media.video import SampledFrame, sample_frames

#: ``scheme://`` or ``data:``: cards are URL-free, media must be local files
_URL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.\-]{1,}://|data:|//)")


@dataclass
class MediaCell:
    """The media of one item after loading.

    Attributes:
        image: validated image bytes (as stored on disk), or ``None``.
        video: ``{"path": <as written in the data>, "sha256": ...}``, or ``None``.
        frames: frames sampled from the video (empty without a video or on error).
        error: the first media failure of the item, naming the column and file.
        error_type: its :data:`~audit.media.errors.MEDIA_ERROR_TYPES` entry.
    """

    image: bytes | None = None
    video: dict[str, str] | None = None
    frames: list[SampledFrame] = field(default_factory=list)
    error: str | None = None
    error_type: str | None = None

    def hash_parts(self) -> list[str]:
        """What of the media enters the item's content hash (besides ``image``)."""
        parts: list[str] = []
        if self.video is not None:
            parts.append(f"video:{self.video['sha256']}")
        parts.extend(
            f"frame:{f.index}:{f.timestamp_s!r}:{sha256_bytes(f.png)}" for f in self.frames
        )
        if self.error is not None:
            parts.append(f"error:{self.error_type}:{self.error}")
        return parts


def _locate(value: Any, root: Path, column: str, max_bytes: int) -> tuple[Path, str]:
    """Resolve a cell to a readable file inside ``root``, or raise MediaItemError."""
    if not isinstance(value, str):
        raise MediaItemError(
            "media_bad_value",
            f"column {column!r} holds a {type(value).__name__}, expected a file path string",
        )
    name = value.strip()
    if _URL.match(name):
        raise MediaItemError(
            "media_url",
            f"column {column!r} holds a URL ({name[:60]!r}); suites are URL-free: "
            "download the file next to the card and give its relative path",
        )
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise MediaItemError(
            "media_outside_root",
            f"{name!r} (column {column!r}) resolves outside the media root {root}",
        )
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise MediaItemError("media_missing", f"{name!r} (column {column!r}) {what}")
    size = path.stat().st_size
    if size == 0:
        raise MediaItemError("media_empty", f"{name!r} (column {column!r}) is empty (0 bytes)")
    if size > max_bytes:
        raise MediaItemError(
            "media_too_large",
            f"{name!r} (column {column!r}) is {size} bytes, over media.max_file_bytes={max_bytes}",
        )
    return path, name


def load_image_cell(
    value: Any, root: Path, column: str, *, max_bytes: int, max_pixels: int
) -> bytes:
    """Bytes of a valid image (decoded once here to validate it), or MediaItemError."""
    path, name = _locate(value, root, column, max_bytes)
    data = path.read_bytes()
    open_image(data, max_pixels=max_pixels, name=repr(name))
    return data


def load_video_cell(
    value: Any,
    root: Path,
    column: str,
    *,
    max_bytes: int,
    frames: dict[str, Any] | None,
    max_decoded_frames: int,
) -> tuple[dict[str, str], list[SampledFrame]]:
    """The video reference and (when ``frames`` is set) its sampled frames."""
    path, name = _locate(value, root, column, max_bytes)
    data = path.read_bytes()
    ref = {"path": name, "sha256": sha256_bytes(data)}
    if frames is None:  # reference only: still refuse what is plainly not a video
        if not looks_like_video(data):
            raise MediaItemError("media_decode", f"{name!r} does not look like a video container")
        return ref, []
    method: Literal["uniform", "scene"] = frames["method"]
    sampled, _ = sample_frames(
        path,
        k=int(frames["k"]),
        method=method,
        scene_threshold=float(frames["scene_threshold"]),
        max_side=int(frames["max_side"]),
        max_decoded_frames=max_decoded_frames,
        name=repr(name),
    )
    return ref, sampled


def load_cell(
    row: dict[str, Any],
    *,
    root: Path,
    image_column: str | None,
    video_column: str | None,
    frames: dict[str, Any] | None,
    max_bytes: int,
    max_pixels: int,
    max_decoded_frames: int,
) -> MediaCell:
    """Load an item's image and video cells; a failure becomes the cell's error.

    A missing or empty cell (``None``, ``""``) means "this item has no such media",
    which is not an error.
    """
    cell = MediaCell()
    try:
        v = row.get(image_column) if image_column else None
        if v is not None and not (isinstance(v, str) and not v.strip()):
            cell.image = load_image_cell(
                v, root, image_column or "", max_bytes=max_bytes, max_pixels=max_pixels
            )
        v = row.get(video_column) if video_column else None
        if v is not None and not (isinstance(v, str) and not v.strip()):
            cell.video, cell.frames = load_video_cell(
                v,
                root,
                video_column or "",
                max_bytes=max_bytes,
                frames=frames,
                max_decoded_frames=max_decoded_frames,
            )
    except MediaItemError as exc:
        return MediaCell(error=exc.message, error_type=exc.error_type)
    return cell
