"""Records that cross module boundaries.

The canonical item schema (what every suite is loaded into):

* ``id`` (string, unique within a split)
* text fields, each a nullable string: see :data:`TEXT_FIELDS`
* optional ``image`` (``datasets.Image``)
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
RESERVED_COLUMNS = ("id", "image", "labels", "label_overall", "rationale", "content_hash")


@dataclass(frozen=True)
class Item:
    """One item handed to a moderator.

    Attributes:
        id: item id within its suite split.
        content_hash: sha256 over the canonical content (text fields + image bytes).
        fields: present text fields only (canonical names → text).
        image: raw image bytes, if the item has one.
        context: slice values (language, surface...) a moderator may use for prompts.
    """

    id: str
    content_hash: str
    fields: dict[str, str]
    image: bytes | None = None
    context: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """All present text fields joined into one string.

        A single field is returned as-is; several are prefixed with their labels.
        """
        present = [(k, v) for k, v in self.fields.items() if v]
        if len(present) == 1:
            return present[0][1]
        return "\n".join(f"{TEXT_FIELDS.get(k, k)}: {v}" for k, v in present)


def content_hash(fields: dict[str, str | None], image: bytes | None = None) -> str:
    """Canonical content hash of an item (labels and ids excluded)."""
    payload = {k: fields.get(k) for k in TEXT_FIELDS if fields.get(k)}
    h = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    if image is not None:
        h.update(b"\x00image\x00")
        h.update(hashlib.sha256(image).digest())
    return h.hexdigest()


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
    """

    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    rationale: str | None = None
    raw_output: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "scores": {k: (None if math.isnan(v) else float(v)) for k, v in self.scores.items()},
            "error": self.error,
            "error_type": self.error_type,
            "rationale": self.rationale,
            "raw_output": self.raw_output,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModeratorOutput:
        return cls(
            scores={k: (math.nan if v is None else float(v)) for k, v in d["scores"].items()},
            error=d.get("error"),
            error_type=d.get("error_type"),
            rationale=d.get("rationale"),
            raw_output=d.get("raw_output"),
        )
