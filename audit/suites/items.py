"""A loaded suite's rows as moderator inputs (:class:`audit.schema.Item`)."""

from __future__ import annotations

from typing import Any

from audit.schema import TEXT_FIELDS, Frame, Item
from audit.suites.loaded import LoadedSuite
from audit.suites.media_files import media_root


def suite_items(suite: LoadedSuite) -> list[Item]:
    """The suite's rows as moderator inputs (text fields present, slices as context)."""
    has_image = "image" in suite.dataset.column_names
    names = ["id", "content_hash", *TEXT_FIELDS, *suite.slice_names]
    cols = suite.dataset.select_columns(names).to_dict()
    images: list[Any] = []
    if has_image:
        import datasets

        raw = suite.dataset.cast_column("image", datasets.Image(decode=False))["image"]
        images = [None if im is None else im["bytes"] for im in raw]
    videos, frames, errors, error_types = _media_columns(suite)
    out: list[Item] = []
    for i, iid in enumerate(cols["id"]):
        fields = {f: cols[f][i] for f in TEXT_FIELDS if cols[f][i]}
        ctx = {s: cols[s][i] for s in suite.slice_names if cols[s][i] is not None}
        out.append(
            Item(
                id=iid,
                content_hash=cols["content_hash"][i],
                fields=fields,
                image=images[i] if has_image else None,
                context=ctx,
                video=videos[i],
                video_frames=frames[i],
                media_error=errors[i],
                media_error_type=error_types[i],
            )
        )
    return out


def _media_columns(
    suite: LoadedSuite,
) -> tuple[list[str | None], list[tuple[Frame, ...]], list[str | None], list[str | None]]:
    """Per item: resolved video path, sampled frames, media error and its type."""
    ds, n = suite.dataset, len(suite.dataset)
    cols = set(ds.column_names)
    videos: list[str | None] = [None] * n
    frames: list[tuple[Frame, ...]] = [()] * n
    if "video" in cols and suite.card.media is not None:
        import datasets

        root = media_root(suite.card, suite.card_path)
        videos = [None if v is None else str(root / v["path"]) for v in ds["video"]]
        raw = ds.cast_column(
            "video_frames",
            datasets.List(
                {
                    "image": datasets.Image(decode=False),
                    "index": datasets.Value("int32"),
                    "timestamp_s": datasets.Value("float64"),
                }
            ),
        )["video_frames"]
        frames = [
            tuple(Frame(f["index"], f["timestamp_s"], f["image"]["bytes"]) for f in fl or [])
            for fl in raw
        ]
    errors: list[str | None] = list(ds["media_error"]) if "media_error" in cols else [None] * n
    types: list[str | None] = (
        list(ds["media_error_type"]) if "media_error_type" in cols else [None] * n
    )
    return videos, frames, errors, types
