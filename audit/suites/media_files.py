"""Where a suite's media live: the card's media root, per-row media cells (image,
video, sampled frames, decode errors) and image-column bytes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit._util.settings import data_root
from audit.errors import SuiteError
from audit.suites.card import SuiteCard
from audit.suites.reading import resolve_root
from audit.suites.rules import is_missing

if TYPE_CHECKING:
    from audit.media.cells import MediaCell


def media_root(card: SuiteCard, cpath: Path) -> Path:
    """The folder media paths resolve from; SuiteError when it does not exist."""
    assert card.media is not None
    raw = card.media.root.replace("${data_root}", str(data_root()))
    p = Path(os.path.expandvars(raw)).expanduser()
    root = (p if p.is_absolute() else cpath.parent / p).resolve()
    if not root.is_dir():
        raise SuiteError(
            "media root folder not found",
            where=str(cpath),
            field="media.root",
            expected="an existing folder (relative to the card's folder, ${data_root} allowed)",
            actual=str(root),
            fix="create the folder or correct media.root",
        )
    return root


def media_cell(card: SuiteCard, cpath: Path, row: dict[str, Any]) -> MediaCell:
    """One row's media (``card.media`` set), decoded under the card's limits."""
    from audit.media.cells import load_cell

    m = card.media
    assert m is not None
    return load_cell(
        row,
        root=media_root(card, cpath),
        image_column=m.image,
        video_column=m.video,
        frames=m.frames.model_dump() if m.frames is not None else None,
        max_bytes=m.max_file_bytes,
        max_pixels=m.max_image_pixels,
        max_decoded_frames=m.max_decoded_frames,
    )


def image_bytes(card: SuiteCard, cpath: Path, row: dict[str, Any], iid: str) -> bytes | None:
    """The bytes of a row's ``image_column`` (inline bytes or a path under the root)."""
    v = row.get(card.image_column or "")
    if is_missing(v):
        return None
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, dict) and v.get("bytes"):
        return bytes(v["bytes"])
    root = resolve_root(card, cpath) if card.source.local else cpath.parent
    p = Path(str(v))
    p = p if p.is_absolute() else root / p
    if not p.is_file():
        raise SuiteError(
            f"image file not found (item {iid!r})",
            where=str(cpath),
            field=f"image_column ({card.image_column})",
            expected="a path relative to the local root, or image bytes",
            actual=str(p),
            fix="fix the path or remove the column from the card",
        )
    return p.read_bytes()
