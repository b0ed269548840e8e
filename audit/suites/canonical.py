"""Flat source rows → canonical rows, gold arrays and a :class:`LoadedSuite`.

Each row is checked once, with errors that name the card, the field, the expected
and actual value and the fix: empty and duplicate ids, non-string text fields,
rows with no content, list-column labels outside the policy or the covered set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audit.errors import SuiteError
from audit.schema import NEGATIVE, POSITIVE, TEXT_FIELDS, UNKNOWN, content_hash
from audit.suites.card import SuiteCard
from audit.suites.digest import to_dataset
from audit.suites.loaded import LoadedSuite
from audit.suites.media_files import image_bytes, media_cell
from audit.suites.rules import RuleStats, apply_rule, is_missing, rule_warnings

if TYPE_CHECKING:
    from audit.media.cells import MediaCell
    from audit.policy import Policy


@dataclass(frozen=True)
class _Mapping:
    """What every row of one card is mapped with (fixed for the whole split)."""

    card: SuiteCard
    cpath: Path
    where: str
    policy: Policy
    covers: tuple[str, ...]
    kidx: dict[str, int]
    cover_idx: list[int]
    slice_names: list[str]


@dataclass
class _Gold:
    """The gold arrays being filled, and the per-rule statistics behind the warnings."""

    labels: np.ndarray
    overall: np.ndarray
    rule_stats: list[RuleStats]
    overall_stats: RuleStats


def canonicalise(
    card: SuiteCard,
    cpath: Path,
    split: str,
    rows: list[dict[str, Any]],
    source: dict[str, Any],
    covers: tuple[str, ...],
    policy: Policy,
    *,
    gold: np.ndarray | None = None,
) -> LoadedSuite:
    """``gold``: (n, K) labels derived elsewhere (multi-annotator majority); when
    given it replaces the card's label rules."""
    cats = policy.category_ids
    kidx = {c: i for i, c in enumerate(cats)}
    m = _Mapping(
        card=card,
        cpath=cpath,
        where=str(cpath),
        policy=policy,
        covers=covers,
        kidx=kidx,
        cover_idx=[kidx[c] for c in covers],
        slice_names=card.slice_names(),
    )
    n = len(rows)
    g = _Gold(
        labels=np.full((n, len(cats)), UNKNOWN, dtype=np.int8),
        overall=np.full(n, UNKNOWN, dtype=np.int8),
        rule_stats=[RuleStats() for _ in card.labels.rules],
        overall_stats=RuleStats(),
    )
    seen: dict[str, int] = {}
    out_rows: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        iid = _item_id(m, row, i, split, seen)
        texts = _texts(m, row, iid)
        image, media = _content(m, row, iid, texts)
        _label_row(m, g, row, i, iid, gold)
        out_rows.append(_canonical_row(m, row, iid, texts, image, media))
    ds, digest = to_dataset(
        out_rows,
        g.labels,
        g.overall,
        cats,
        m.slice_names,
        with_image=card.has_image,
        with_video=card.media is not None and card.media.video is not None,
        with_media_errors=card.media is not None,
    )
    return LoadedSuite(
        card=card,
        card_path=cpath,
        split=split,
        dataset=ds,
        categories=cats,
        covers=covers,
        labels=g.labels,
        overall=g.overall,
        digest=digest,
        source=source,
        slice_names=m.slice_names,
        warnings=_warnings(card, g),
    )


def _item_id(m: _Mapping, row: dict[str, Any], i: int, split: str, seen: dict[str, int]) -> str:
    """The row's prefixed id (from the id column or generated); records it in ``seen``."""
    card = m.card
    if card.id.column is not None:
        raw_id = row.get(card.id.column)
        if is_missing(raw_id):
            raise SuiteError(
                f"empty id in row {i}",
                where=m.where,
                field="id.column",
                expected="a non-empty id in every row",
                actual=repr(raw_id),
                fix="fill the id or use id: {generate: row_index}",
            )
        iid = f"{card.id.prefix}{raw_id}"
    else:
        iid = f"{card.id.prefix}{split}-{i}"
    if iid in seen:
        raise SuiteError(
            "duplicate item id",
            where=m.where,
            field="id",
            expected="unique ids",
            actual=f"{iid!r} in rows {seen[iid]} and {i}",
            fix="deduplicate the data or use id: {generate: row_index}",
        )
    seen[iid] = i
    return iid


def _texts(m: _Mapping, row: dict[str, Any], iid: str) -> dict[str, str | None]:
    """Every canonical text field of the row (None where unmapped or missing)."""
    texts: dict[str, str | None] = {}
    for fname in TEXT_FIELDS:
        col = m.card.fields.get(fname)
        v = row.get(col) if col else None
        if v is None and col and any(k.startswith(col + ".") for k in row):
            v = {}  # the source holds a mapping here (flattened into dotted keys)
        if isinstance(v, (dict, list, bytes)):
            raise SuiteError(
                f"text field holds a {type(v).__name__} (item {iid!r})",
                where=m.where,
                field=f"fields.{fname}",
                expected="a string",
                actual=type(v).__name__,
                fix="map a nested string with a dotted path (e.g. meta.text)",
            )
        texts[fname] = None if is_missing(v) else str(v)
    return texts


def _content(
    m: _Mapping, row: dict[str, Any], iid: str, texts: dict[str, str | None]
) -> tuple[bytes | None, MediaCell | None]:
    """The row's image bytes and media cell; a row with no content at all is an error."""
    card = m.card
    image = image_bytes(card, m.cpath, row, iid) if card.image_column else None
    media = media_cell(card, m.cpath, row) if card.media is not None else None
    if media is not None:
        image = media.image if card.media and card.media.image else image
    has_media = media is not None and (
        media.image is not None or media.video is not None or media.error is not None
    )
    if not any(texts.values()) and image is None and not has_media:
        raise SuiteError(
            f"item {iid!r} has no text in any field",
            where=m.where,
            field="fields",
            expected="at least one non-empty text field per item",
            actual="all empty",
            fix="remove the row or map another column",
        )
    return image, media


def _label_row(
    m: _Mapping, g: _Gold, row: dict[str, Any], i: int, iid: str, gold: np.ndarray | None
) -> None:
    """Fill row ``i`` of the gold arrays: rules (or the given gold), the list column,
    then the any-violation label (its own rule, or derived from the covered labels)."""
    card = m.card
    for j, rule in enumerate(card.labels.rules if gold is None else ()):
        assert rule.category is not None  # LabelSpec guarantees it
        g.labels[i, m.kidx[rule.category]] = apply_rule(
            rule, row, iid, m.where, f"labels.rules[{j}]", g.rule_stats[j]
        )
    if gold is not None:
        g.labels[i] = gold[i]
    if card.labels.list_column:
        _list_labels(m, g.labels[i], row, iid)
    if card.labels.overall is not None:
        g.overall[i] = apply_rule(
            card.labels.overall, row, iid, m.where, "labels.overall", g.overall_stats
        )
    else:
        sub = g.labels[i, m.cover_idx]
        g.overall[i] = (
            POSITIVE
            if (sub == POSITIVE).any()
            else NEGATIVE
            if (sub == NEGATIVE).all()
            else UNKNOWN
        )


def _list_labels(m: _Mapping, labels: np.ndarray, row: dict[str, Any], iid: str) -> None:
    """Apply the card's ``list_column`` (a list or comma-separated categories) to one
    row's labels in place: listed covered categories positive, unlisted ones negative
    unless a rule already set them."""
    column = m.card.labels.list_column
    assert column is not None
    lst = row.get(column)
    if lst is None and any(k.startswith(column + ".") for k in row):
        lst = {}  # a mapping (flattened): {"hate": false} must not read as "none"
    if lst is None:
        lst = []
    if isinstance(lst, str):
        lst = [x.strip() for x in lst.split(",") if x.strip()]
    if not isinstance(lst, (list, tuple)):
        raise SuiteError(
            f"label list holds a {type(lst).__name__} (item {iid!r})",
            where=m.where,
            field=f"labels.list_column ({column})",
            expected="a list of category ids (or a comma-separated string)",
            actual=type(lst).__name__,
            fix="write the violated categories as a list, e.g. [hate]",
        )
    for c in lst:
        if c not in m.kidx:
            raise SuiteError(
                f"label not in the policy (item {iid!r})",
                where=m.where,
                field=f"labels.list_column ({column})",
                expected=f"categories of {m.policy.ref}: {list(m.policy.category_ids)}",
                actual=repr(c),
                fix="fix the label or the policy mapping",
            )
        if c not in m.covers:
            raise SuiteError(
                f"label for a category the suite does not cover (item {iid!r})",
                where=m.where,
                field="labels.covers",
                expected=f"{c!r} in covers",
                actual=str(list(m.covers)),
            )
    listed = set(lst)
    for c in m.covers:
        if labels[m.kidx[c]] == UNKNOWN or c in listed:
            labels[m.kidx[c]] = POSITIVE if c in listed else NEGATIVE


def _canonical_row(
    m: _Mapping,
    row: dict[str, Any],
    iid: str,
    texts: dict[str, str | None],
    image: bytes | None,
    media: MediaCell | None,
) -> dict[str, Any]:
    """The row in the canonical schema, less the label columns (added from the arrays)."""
    card = m.card
    rec: dict[str, Any] = {"id": iid, **texts}
    rec["rationale"] = (
        str(row.get(card.rationale_column))
        if card.rationale_column and not is_missing(row.get(card.rationale_column))
        else None
    )
    for s in m.slice_names:
        if s in card.slices:
            v = row.get(card.slices[s])
            rec[s] = None if is_missing(v) else str(v)
        else:
            rec[s] = card.constants[s]
    if card.has_image:
        rec["image"] = {"bytes": image, "path": None} if image is not None else None
    if card.media is not None and media is not None:
        if card.media.video:
            rec["video"] = media.video
            rec["video_frames"] = [
                {
                    "image": {"bytes": f.png, "path": None},
                    "index": f.index,
                    "timestamp_s": f.timestamp_s,
                }
                for f in media.frames
            ]
        rec["media_error"] = media.error
        rec["media_error_type"] = media.error_type
    rec["content_hash"] = content_hash(
        texts, image, tuple(media.hash_parts()) if media is not None else ()
    )
    return rec


def _warnings(card: SuiteCard, g: _Gold) -> list[str]:
    """Card rules that look wrong on this data, from the statistics gathered per row."""
    warnings = [
        w
        for j, rule in enumerate(card.labels.rules)
        for w in rule_warnings(rule, g.rule_stats[j], f"labels.rules[{j}]")
    ]
    if card.labels.overall is not None:
        warnings += rule_warnings(card.labels.overall, g.overall_stats, "labels.overall")
    return warnings
