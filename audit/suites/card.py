"""The suite card (``suites/<name>/suite.yaml``): where a golden set comes from and
how its columns and labels map onto the canonical schema and a policy version.

Example (abridged)::

    card_version: 1
    name: hatecheck
    version: "2021.11.26"
    description: HateCheck functional tests for hate speech detection (English).
    policy: platform-v1
    license: CC-BY-4.0
    citation: "Röttger et al., ACL 2021"
    source:
      hub: {id: Paul/hatecheck, revision: <sha>, splits: {test: test}}
      local:
        root: "${data_root}/hatecheck"
        format: csv
        splits: {test: test_suite_cases.csv}
    id: {column: case_id, prefix: "hc-"}
    fields: {prompt: test_case}
    labels:
      covers: [hate]
      rules:
        - {category: hate, column: label_gold, positive: [hateful], negative: [non-hateful]}
    slices: {functionality: functionality, target: target_ident}
    constants: {source: hatecheck}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from audit.media.image import DEFAULT_MAX_PIXELS
from audit.schema import RESERVED_COLUMNS, TEXT_FIELDS

Scalar = str | int | float | bool
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSource(_Strict):
    """A Hugging Face dataset: used when the local copy is absent (needs network)."""

    id: str
    # A commit hash, never a branch: `main` moves, and a golden set that changes under
    # a fixed card makes two runs with the same card incomparable.
    revision: str = Field(pattern=r"^[0-9a-f]{40}$")
    config: str | None = None
    splits: dict[str, str] = Field(default_factory=dict)
    """canonical split → hub split name (default: same name)."""


class LocalSource(_Strict):
    """Files on disk. ``root`` may use ``${data_root}`` (setting ``AUDIT_DATA_ROOT``);
    a relative root resolves from the card's folder.

    ``json`` is a whole-file document: a list of records, or an object holding the
    list under ``records_path`` (dotted, e.g. ``data.instances``). Nested fields of
    JSON, JSONL and Parquet records are addressed with dotted paths everywhere in the
    card (``annotations.toxicity.majority_human``).
    """

    root: str = "."
    format: Literal["csv", "jsonl", "json", "parquet"]
    splits: dict[str, str | tuple[str, ...]] = Field(min_length=1)
    encoding: str = "utf-8"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    """CSV field separator (``;`` for many European exports, ``\t`` for TSV)."""
    quotechar: str = Field(default='"', min_length=1, max_length=1)
    records_path: str | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        from audit.suites.reading import check_encoding

        return check_encoding(v)

    @model_validator(mode="after")
    def _format_options(self) -> LocalSource:
        if self.records_path is not None and self.format != "json":
            raise ValueError("records_path applies to format: json only")
        if self.format != "csv" and (self.delimiter != "," or self.quotechar != '"'):
            raise ValueError("delimiter and quotechar apply to format: csv only")
        return self

    header_overrides: dict[int, str] = Field(default_factory=dict)
    """CSV only: 0-based column position → name, for files whose header repeats a
    name (ConvAbuse's wide files). Any header name still repeated is an error."""


class Source(_Strict):
    hub: HubSource | None = None
    local: LocalSource | None = None

    @model_validator(mode="after")
    def _one_at_least(self) -> Source:
        if self.hub is None and self.local is None:
            raise ValueError("a source needs 'local' files, a 'hub' dataset, or both")
        return self


class IdSpec(_Strict):
    """Where item ids come from: a unique column, or ``<split>-<row index>``."""

    column: str | None = None
    generate: Literal["row_index"] | None = None
    prefix: str = ""

    @model_validator(mode="after")
    def _exactly_one(self) -> IdSpec:
        if (self.column is None) == (self.generate is None):
            raise ValueError("set exactly one of 'column' or 'generate: row_index'")
        return self


class LabelRule(_Strict):
    """Maps source column value(s) onto one gold label (see :mod:`audit.suites.rules`).

    Exactly one of: value lists (``positive`` and optional ``negative``), a numeric
    condition (``positive_if: ">= 0.5"``, optional ``negative_if``), or a ``constant``
    label for one-class sets (no column then). With several ``columns`` the label is
    positive if any is positive, negative if all are known and negative, unknown
    otherwise. Values in neither list follow ``other``; a missing value is unknown.
    """

    category: str | None = None
    column: str | tuple[str, ...] | None = None
    positive: tuple[Scalar, ...] = ()
    negative: tuple[Scalar, ...] = ()
    positive_if: str | None = None
    negative_if: str | None = None
    constant: Literal["positive", "negative"] | None = None
    other: Literal["error", "unknown", "negative"] = "error"
    missing_column: Literal["error", "unknown"] = "error"

    @property
    def columns(self) -> tuple[str, ...]:
        if self.column is None:
            return ()
        return (self.column,) if isinstance(self.column, str) else self.column

    @model_validator(mode="after")
    def _one_way(self) -> LabelRule:
        from audit.suites.rules import parse_condition, same

        ways = [bool(self.positive), self.positive_if is not None, self.constant is not None]
        if sum(ways) != 1:
            raise ValueError(
                "give exactly one of 'positive' (value list), 'positive_if' (numeric "
                "condition) or 'constant'"
            )
        if self.constant is not None:
            if self.column is not None or self.negative or self.negative_if:
                raise ValueError("a 'constant' rule takes no column, values or conditions")
            return self
        if self.column is None:
            raise ValueError("a rule needs a 'column' (or 'constant' for one-class sets)")
        if self.positive_if is not None:
            parse_condition(self.positive_if)
            if self.negative:
                raise ValueError("with 'positive_if' use 'negative_if', not a value list")
        if self.negative_if is not None:
            if self.positive_if is None:
                raise ValueError("'negative_if' needs 'positive_if'")
            parse_condition(self.negative_if)
        both = [p for p in self.positive if any(same(p, n) or same(n, p) for n in self.negative)]
        if both:
            raise ValueError(f"value(s) {both} listed as both positive and negative")
        return self


class LabelSpec(_Strict):
    """How gold labels map onto the suite's policy.

    ``covers``: categories the set's gold speaks to (``all`` = every category).
    Rules give per-category labels; ``list_column`` names a column holding the list
    of violated category ids (covered categories not listed are negative);
    ``overall`` gives an any-violation label for sets without categories.
    Categories not covered are unknown (-1) for every row.
    """

    covers: tuple[str, ...] | Literal["all"]
    rules: tuple[LabelRule, ...] = ()
    list_column: str | None = None
    overall: LabelRule | None = None

    @model_validator(mode="after")
    def _some_labels(self) -> LabelSpec:
        if not self.rules and self.list_column is None and self.overall is None:
            raise ValueError("give label 'rules', a 'list_column', or an 'overall' rule")
        for r in self.rules:
            if r.category is None:
                raise ValueError("every entry in 'rules' needs a 'category'")
        if self.overall is not None and self.overall.category is not None:
            raise ValueError("the 'overall' rule takes no 'category'")
        return self


class OrdinalScale(_Strict):
    """An ordered per-annotator rating (e.g. severity) read from one-hot columns, used
    for Krippendorff's ordinal alpha; ``onehot`` maps column → numeric level."""

    name: str
    onehot: dict[str, float] = Field(min_length=2)


class AnnotationSpec(_Strict):
    """Per-annotator labels (docs/methods/labels.md).

    ``long``: one row per (item, annotator); rows sharing ``item_key`` form an item,
    ``annotator_column`` names the annotator. ``wide``: one row per item, one
    column per (annotator, source column) named by ``column_template``. Label rules
    are applied to each annotator's judgement; gold is the majority over annotators
    (tie → unknown) or the adjudicated ``gold_column`` rule set when the set has one.
    """

    format: Literal["long", "wide"]
    annotators: tuple[str, ...] = Field(min_length=2)
    item_key: tuple[str, ...] = Field(min_length=1)
    """Columns whose values identify an item; the item id is a hash of them."""
    key_column: str = "item_key"
    """Name of the synthesised key column (refer to it in ``id.column``)."""
    annotator_column: str | None = None
    order_column: str | None = None
    repeats: Literal["first", "error"] = "error"
    """An annotator judging an item twice: keep the first (by ``order_column``, or the
    first value of a multi-valued wide cell) or fail."""
    column_template: str = "{annotator}_{column}"
    multi_value_separator: str | None = None
    gold: Literal["majority"] = "majority"
    scales: tuple[OrdinalScale, ...] = ()

    @model_validator(mode="after")
    def _format_fields(self) -> AnnotationSpec:
        if self.format == "long" and self.annotator_column is None:
            raise ValueError("a long-format annotation spec needs 'annotator_column'")
        if self.format == "wide" and self.annotator_column is not None:
            raise ValueError("'annotator_column' is for the long format only")
        if len(set(self.annotators)) != len(self.annotators):
            raise ValueError("annotator names must be unique")
        if self.format == "wide" and "{annotator}" not in self.column_template:
            raise ValueError("column_template must contain '{annotator}' and '{column}'")
        return self


class VideoFramesSpec(_Strict):
    """How ``video_frames`` are sampled, once, at load time (see audit/media/video.py)."""

    k: int = Field(default=8, ge=1, le=256)
    method: Literal["uniform", "scene"] = "uniform"
    scene_threshold: float = Field(default=0.25, gt=0.0, le=1.0)
    """mean absolute RGB thumbnail difference (0–1) that counts as a cut (``scene``)"""
    max_side: int = Field(default=512, ge=16, le=8192)
    """frames are scaled down so their longer side is at most this (pixels)"""


class MediaSpec(_Strict):
    """Media columns: each cell a file path relative to ``root`` (URL-free).

    ``root`` resolves from the card's folder (``${data_root}`` allowed); a path that
    escapes it, a URL, or an unreadable / undecodable / oversized file is a
    per-item error kept on the item (``media_error``), not a load failure.
    """

    root: str = "."
    image: str | None = None
    video: str | None = None
    frames: VideoFramesSpec | None = Field(default_factory=lambda: VideoFramesSpec())
    """frame sampling for ``video`` (``null``: keep the reference only)"""
    max_file_bytes: int = Field(default=200_000_000, ge=1)
    max_image_pixels: int = Field(default=DEFAULT_MAX_PIXELS, ge=1)
    max_decoded_frames: int = Field(default=20_000, ge=1)

    @model_validator(mode="after")
    def _some_column(self) -> MediaSpec:
        if self.image is None and self.video is None:
            raise ValueError("media: name an 'image' column, a 'video' column, or both")
        return self


class SuiteCard(_Strict):
    card_version: Literal[1] = 1
    name: str
    version: str
    description: str
    policy: str
    license: str
    citation: str | None = None
    source: Source
    id: IdSpec
    fields: dict[str, str] = Field(min_length=1)
    labels: LabelSpec
    slices: dict[str, str] = Field(default_factory=dict)
    constants: dict[str, str] = Field(default_factory=dict)
    rationale_column: str | None = None
    image_column: str | None = None
    """Column with an image file path (relative to the local root) or raw bytes; the
    image bytes enter the content hash and the canonical ``image`` feature."""
    media: MediaSpec | None = None
    """Image / video columns with per-item error handling (see :class:`MediaSpec`)."""
    default_split: str = "test"
    annotations: AnnotationSpec | None = None
    """Multi-annotator sets: per-annotator labels and how gold is derived."""

    @field_validator("name")
    @classmethod
    def _name_format(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"suite name must match {_NAME.pattern}")
        return v

    @field_validator("fields")
    @classmethod
    def _canonical_fields(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(set(v) - set(TEXT_FIELDS))
        if bad:
            raise ValueError(
                f"unknown canonical text field(s) {bad}; expected keys among {list(TEXT_FIELDS)}"
            )
        return v

    @field_validator("slices", "constants")
    @classmethod
    def _slice_names(cls, v: dict[str, str]) -> dict[str, str]:
        # a field validator (not a model one) so the error names `slices` / `constants`
        for name in v:
            if name in RESERVED_COLUMNS or name in TEXT_FIELDS:
                raise ValueError(f"slice name {name!r} clashes with a canonical column")
            if not _NAME.match(name):
                raise ValueError(f"slice name {name!r} must match {_NAME.pattern}")
        return v

    @model_validator(mode="after")
    def _one_image_column(self) -> SuiteCard:
        if self.media is not None and self.media.image is not None and self.image_column:
            raise ValueError("set either image_column or media.image, not both")
        return self

    @property
    def has_image(self) -> bool:
        """Whether the canonical dataset has an ``image`` column."""
        return bool(self.image_column) or (self.media is not None and self.media.image is not None)

    def splits(self) -> list[str]:
        names: set[str] = set()
        if self.source.local:
            names |= set(self.source.local.splits)
        if self.source.hub and self.source.hub.splits:
            names |= set(self.source.hub.splits)
        return sorted(names)

    def slice_names(self) -> list[str]:
        return list(self.slices) + [c for c in self.constants if c not in self.slices]


def card_dict_for_record(card: SuiteCard) -> dict[str, Any]:
    return card.model_dump(mode="json")


def card_path(name_or_path: str, suites_root: Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return p
    if p.is_dir():
        return p / "suite.yaml"
    return suites_root / name_or_path / "suite.yaml"
