"""The canonical ``datasets`` schema of a suite and its content digest.

The digest is computed over the schema and the rows sorted by id, with image and
frame bytes replaced by their sha256, so the same content gives the same digest
whatever the source format or Arrow layout.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from audit.schema import LABEL_NAMES, TEXT_FIELDS

if TYPE_CHECKING:
    import datasets


def canonical_features(
    categories: tuple[str, ...],
    slice_names: list[str],
    *,
    with_image: bool = False,
    with_video: bool = False,
    with_media_errors: bool = False,
) -> datasets.Features:
    import datasets

    feats: dict[str, Any] = {"id": datasets.Value("string")}
    for f in TEXT_FIELDS:
        feats[f] = datasets.Value("string")
    if with_image:
        feats["image"] = datasets.Image()
    if with_video:
        feats["video"] = {"path": datasets.Value("string"), "sha256": datasets.Value("string")}
        feats["video_frames"] = datasets.List(
            {
                "image": datasets.Image(),
                "index": datasets.Value("int32"),
                "timestamp_s": datasets.Value("float64"),
            }
        )
    if with_media_errors:
        feats["media_error"] = datasets.Value("string")
        feats["media_error_type"] = datasets.Value("string")
    feats["labels"] = {c: datasets.ClassLabel(names=LABEL_NAMES) for c in categories}
    feats["label_overall"] = datasets.ClassLabel(names=LABEL_NAMES)
    feats["rationale"] = datasets.Value("string")
    for s in slice_names:
        feats[s] = datasets.Value("string")
    feats["content_hash"] = datasets.Value("string")
    return datasets.Features(feats)


def to_dataset(
    rows: list[dict[str, Any]],
    labels: np.ndarray,
    overall: np.ndarray,
    cats: tuple[str, ...],
    slice_names: list[str],
    *,
    with_image: bool = False,
    with_video: bool = False,
    with_media_errors: bool = False,
) -> tuple[datasets.Dataset, str]:
    """Canonical rows and gold arrays → the ``Dataset`` and its content digest."""
    import datasets

    feats = canonical_features(
        cats,
        slice_names,
        with_image=with_image,
        with_video=with_video,
        with_media_errors=with_media_errors,
    )
    cols: dict[str, list[Any]] = {k: [r[k] for r in rows] for k in rows[0]}
    cols["labels"] = [dict(zip(cats, map(int, lab))) for lab in labels]
    cols["label_overall"] = [int(v) for v in overall]
    ordered = {k: cols[k] for k in feats}
    ds = datasets.Dataset.from_dict(ordered, features=feats)
    hashed = dict(ordered)
    if with_image:  # digest image content by hash, not raw bytes in JSON
        hashed["image"] = [
            None if im is None else hashlib.sha256(im["bytes"]).hexdigest()
            for im in ordered["image"]
        ]
    if with_video:  # frames by hash too, with their index and timestamp
        hashed["video_frames"] = [
            [
                {
                    "sha256": hashlib.sha256(f["image"]["bytes"]).hexdigest(),
                    "index": f["index"],
                    "timestamp_s": f["timestamp_s"],
                }
                for f in frames
            ]
            for frames in ordered["video_frames"]
        ]
    return ds, content_digest(hashed, feats)


def content_digest(columns: dict[str, list[Any]], features: datasets.Features) -> str:
    """sha256 over the schema (with label names) and every row, sorted by id.

    Independent of Arrow layout and ``Dataset._fingerprint``: the same content
    gives the same digest whether loaded from CSV, JSONL, Parquet or the hub.
    """
    h = hashlib.sha256()
    h.update(json.dumps(features.to_dict(), sort_keys=True).encode("utf-8"))
    keys = list(columns)
    order = sorted(range(len(columns["id"])), key=lambda i: columns["id"][i])
    for i in order:
        row = {k: columns[k][i] for k in keys}
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()
