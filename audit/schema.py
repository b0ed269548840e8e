"""Records that cross module boundaries.

The canonical item schema (what every suite is loaded into):

* ``id`` (string, unique within a split)
* text fields, each a nullable string: see :data:`TEXT_FIELDS`
* optional ``image`` (``datasets.Image``)
* optional ``video`` (``{path, sha256}``: a file reference, never decoded by a moderator)
  and ``video_frames`` (a list of ``{image, index, timestamp_s}``: k frames sampled once
  at load time), with ``media_error`` / ``media_error_type`` (strings) for an item whose
  media could not be used (see :mod:`audit.media`)
* ``labels``: a struct with one ``ClassLabel(names=["negative", "positive"])`` per
  policy category; ``-1`` means **unknown** (the set does not cover the category,
  or the source row has no label for it). Unknown is never counted as negative.
* ``label_overall``: ``ClassLabel`` any-violation gold, ``-1`` unknown (set by a
  suite whose source only says "unsafe" without a category, else derived)
* ``rationale`` (nullable string): one-sentence gold rationale
* slice columns (strings) declared by the suite card
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

#: Canonical text fields, in rendering order, with the label used when a
#: moderator needs one text string.
TEXT_FIELDS: dict[str, str] = {
    "caption": "Caption",
    "ocr_text": "On-screen text",
    "transcript": "Speech transcript",
    "comment": "Comment",
    "prompt": "Text",
}

UNKNOWN = -1
NEGATIVE = 0
POSITIVE = 1
LABEL_NAMES = ["negative", "positive"]

#: Key a moderator may use in ``ModeratorOutput.scores`` for its own any-violation
#: score (e.g. Llama Guard's P(unsafe)); otherwise ``overall`` is the max over categories.
OVERALL_KEY = "_overall"

#: Columns every canonical dataset has besides text fields and slices.
RESERVED_COLUMNS = (
    "id",
    "image",
    "video",
    "video_frames",
    "media_error",
    "media_error_type",
    "labels",
    "label_overall",
    "rationale",
    "content_hash",
)


@dataclass(frozen=True)
class Frame:
    """One frame sampled from an item's video.

    Attributes:
        index: decode-order index in the clip (0-based).
        timestamp_s: presentation time in seconds.
        image: PNG bytes.
    """

    index: int
    timestamp_s: float
    image: bytes


@dataclass(frozen=True)
class Item:
    """One item handed to a moderator.

    Attributes:
        id: item id within its suite split.
        content_hash: sha256 over the canonical content (text fields + image bytes).
        fields: present text fields only (canonical names → text).
        image: raw image bytes, if the item has one.
        context: slice values (language, surface...) a moderator may use for prompts.
        video: path of the item's video file (a reference; moderators use ``video_frames``).
        video_frames: frames sampled from the video at load time, in time order.
        media_error: why the item's media could not be used (then ``image`` and
            ``video_frames`` are empty); a moderator that needs media returns it as
            the item's error.
        media_error_type: machine-readable class of ``media_error``.
    """

    id: str
    content_hash: str
    fields: dict[str, str]
    image: bytes | None = None
    context: dict[str, str] = field(default_factory=dict)
    video: str | None = None
    video_frames: tuple[Frame, ...] = ()
    media_error: str | None = None
    media_error_type: str | None = None

    def text(self) -> str:
        """All present text fields joined into one string.

        A single field is returned as-is; several are prefixed with their labels.
        """
        present = [(k, v) for k, v in self.fields.items() if v]
        if len(present) == 1:
            return present[0][1]
        return "\n".join(f"{TEXT_FIELDS.get(k, k)}: {v}" for k, v in present)


def content_hash(
    fields: dict[str, str | None], image: bytes | None = None, media: tuple[str, ...] = ()
) -> str:
    """Canonical content hash of an item (labels and ids excluded).

    ``media`` holds further media parts (video digest, sampled frames with their
    index and timestamp, a media error) as strings; an item without them hashes
    exactly as before they existed.
    """
    payload = {k: fields.get(k) for k in TEXT_FIELDS if fields.get(k)}
    h = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    if image is not None:
        h.update(b"\x00image\x00")
        h.update(hashlib.sha256(image).digest())
    for part in media:
        h.update(b"\x00media\x00")
        h.update(part.encode("utf-8"))
    return h.hexdigest()


#: Per-item outcome classes (docs/methods.md §5). *Transient* failures say nothing about
#: the model (the server was down, slow or rate-limited; a batch crashed): they are never
#: cached, a rerun retries them, and they are reported apart from parse failures.
#: *Model errors* (``engine_error``, ``bad_response``, ``prompt_too_long``, a 4xx
#: ``http_error``) and *unparsable output* (``parse_failure``) are what the model did
#: with the item: deterministic, cached, and counted against the error budget.
TRANSIENT_ERRORS = frozenset(
    {
        "exception",
        "batch_exception",
        "timeout",
        "rate_limited",
        "server_error",
        "connection_error",
        "truncated_response",
        "scripted",
    }
)
PARSE_FAILURE = "parse_failure"


def error_class(error_type: str | None) -> str:
    """``"transient"``, ``"parse_failure"`` or ``"model_error"`` for an error type."""
    if error_type in TRANSIENT_ERRORS:
        return "transient"
    if error_type == PARSE_FAILURE:
        return "parse_failure"
    return "model_error"


@dataclass
class ModeratorOutput:
    """What a moderator returns for one item.

    Attributes:
        scores: category → score in [0, 1]. Categories the moderator cannot speak
            to are absent (scored "not applicable", NaN), never 0.
        error: message when scoring this item failed; then ``scores`` is empty.
        error_type: short machine-readable class of the error (``exception``,
            ``timeout``, ``parse_failure``...).
        rationale: free-text reasoning (LLM judges), if any.
        raw_output: raw model output (LLM judges), if any.
        evidence: JSON-ready details behind the scores (an image moderator's
            per-frame scores and the frame that decided each category), if any.
    """

    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    rationale: str | None = None
    raw_output: str | None = None
    evidence: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scores": {k: (None if math.isnan(v) else float(v)) for k, v in self.scores.items()},
            "error": self.error,
            "error_type": self.error_type,
            "rationale": self.rationale,
            "raw_output": self.raw_output,
        }
        if self.evidence is not None:  # absent key: outputs without evidence serialise as before
            out["evidence"] = self.evidence
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModeratorOutput:
        return cls(
            scores={k: (math.nan if v is None else float(v)) for k, v in d["scores"].items()},
            error=d.get("error"),
            error_type=d.get("error_type"),
            rationale=d.get("rationale"),
            raw_output=d.get("raw_output"),
            evidence=d.get("evidence"),
        )
