"""Images for the LLM judge: which of an item's images a preset sees, as PNG data
URLs, and which items fail before any model call (docs/methods/media.md,
"Multimodal judges").

* A text preset (``Preset.media is None``) sees no image: its prompts are unchanged.
* ``image`` (Llama Guard 4): the item's photo and video frames when it has some,
  else the text-only prompt; ``image_only`` (ShieldGemma 2): an item without any
  image is an error ``no_media``.
* An item whose media failed to load (``media_error``) is that error, never judged on
  its text alone: a broken photo cannot make a post look safe.
* More images than ``Preset.max_images``: the first, then evenly spaced ones (a clip
  is seen across its length). Each is decoded under the pixel limit and re-encoded
  as PNG with a bounded side (:func:`audit.media.to_data_url`); a decode failure is
  the item's error with its media error type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from audit.moderators.judge.backends._common import Suffix
from audit.schema import Item, ModeratorOutput

if TYPE_CHECKING:
    from audit.moderators.judge.presets import Preset

__all__ = ["append_text", "item_images", "media_fingerprint", "split_items", "spread"]


def spread(images: list[bytes], k: int) -> list[bytes]:
    """At most ``k`` of ``images``: the first and then evenly spaced ones, in order."""
    if len(images) <= k:
        return images
    if k == 1:
        return images[:1]
    step = (len(images) - 1) / (k - 1)
    return [images[round(j * step)] for j in range(k)]


def item_images(
    item: Item, preset: Preset, *, max_side: int, max_pixels: int
) -> tuple[str, ...] | ModeratorOutput:
    """The item's images as PNG data URLs for ``preset`` (none for text presets), or
    the item's error output."""
    if preset.media is None:
        return ()
    if item.media_error is not None:
        return ModeratorOutput(
            error=item.media_error, error_type=item.media_error_type or "media_decode"
        )
    raw = ([item.image] if item.image else []) + [f.image for f in item.video_frames]
    if not raw:
        if preset.media == "image_only":
            return ModeratorOutput(
                error=f"preset {preset.name!r} judges images and the item has none",
                error_type="no_media",
            )
        return ()
    from audit.media import MediaItemError, to_data_url

    try:
        return tuple(
            to_data_url(
                b, max_side=max_side, max_pixels=max_pixels, name=f"item {item.id!r} image {k}"
            )
            for k, b in enumerate(spread(raw, preset.max_images))
        )
    except MediaItemError as exc:
        return ModeratorOutput(error=exc.message, error_type=exc.error_type)


def split_items(
    items: Sequence[Item], preset: Preset, *, max_side: int, max_pixels: int
) -> tuple[list[int], list[tuple[str, ...]], list[ModeratorOutput | None]]:
    """(indices of the items to score, their image data URLs, outputs so far): an
    item the preset cannot use is an error output here and never reaches a backend."""
    live: list[int] = []
    images: list[tuple[str, ...]] = []
    outs: list[ModeratorOutput | None] = [None] * len(items)
    for i, it in enumerate(items):
        got = item_images(it, preset, max_side=max_side, max_pixels=max_pixels)
        if isinstance(got, ModeratorOutput):
            outs[i] = got
        else:
            live.append(i)
            images.append(got)
    return live, images, outs


def append_text(suffix: Suffix, text: str) -> Suffix:
    """``suffix`` followed by ``text`` (a preset's answer prefix), text or parts."""
    if not text:
        return suffix
    if isinstance(suffix, str):
        return suffix + text
    return [*suffix, {"type": "text", "text": text}]


def media_fingerprint(preset: Preset, max_side: int, max_pixels: int) -> dict[str, Any]:
    """``{"media": ...}`` for the judge's fingerprint; empty for a text preset, so
    text judges keep the fingerprint (and cache entries) they had."""
    if preset.media is None:
        return {}
    return {
        "media": {
            "kind": preset.media,
            "max_images": preset.max_images,
            "image_max_side": max_side,
            "max_image_pixels": max_pixels,
            "encoding": "png data URL",
            "native_policies": dict(preset.native_policies or ()) or None,
        }
    }
