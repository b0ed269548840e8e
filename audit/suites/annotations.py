"""Per-annotator labels of a multi-annotator suite card (long or wide format).

The card's ``annotations:`` block (:class:`audit.suites.card.AnnotationSpec`) says how
the raw rows hold one judgement per (item, annotator). :func:`collapse_annotations`
turns them into one row per item for the canonical loader, plus an
:class:`AnnotatorLabels` array: the card's label rules applied to every judgement, and
the gold label derived from them (majority over annotators, ties unknown). See
docs/methods/labels.md §1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audit.errors import SuiteError
from audit.schema import NEGATIVE, POSITIVE, UNKNOWN

if TYPE_CHECKING:
    from audit.policy import Policy
    from audit.suites.card import AnnotationSpec, OrdinalScale, SuiteCard


@dataclass(frozen=True)
class AnnotatorLabels:
    """Row-aligned per-annotator labels of a loaded suite.

    Attributes:
        annotators: declared annotator names (axis 1).
        categories: the policy's category ids (axis 2 of ``labels``).
        covers: categories the set's labels speak to.
        labels: (n, A, K) int8; 1 / 0 per judgement, -1 where the annotator did not
            judge the item (or the rule gave unknown).
        scales: name → (n, A) float ordinal level, NaN where not judged.
        gold: (n, K) int8 gold derived from ``labels`` (majority, tie → -1).
        gold_method: how ``gold`` was derived (written to records).
        stats: counts from collapsing (judgements, repeats dropped, multi-valued cells).
    """

    annotators: tuple[str, ...]
    categories: tuple[str, ...]
    covers: tuple[str, ...]
    labels: np.ndarray
    scales: dict[str, np.ndarray]
    gold: np.ndarray
    gold_method: str
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, rows: Iterable[int]) -> AnnotatorLabels:
        """The same annotations restricted to ``rows`` (in that order)."""
        idx = np.asarray(list(rows), dtype=np.int64)
        return AnnotatorLabels(
            annotators=self.annotators,
            categories=self.categories,
            covers=self.covers,
            labels=self.labels[idx],
            scales={k: v[idx] for k, v in self.scales.items()},
            gold=self.gold[idx],
            gold_method=self.gold_method,
            stats=dict(self.stats),
        )

    def category(self, cat: str) -> np.ndarray:
        """(n, A) float matrix for one category: 1.0 / 0.0, NaN where not rated."""
        k = self.categories.index(cat)
        lab = self.labels[:, :, k].astype(float)
        lab[self.labels[:, :, k] == UNKNOWN] = np.nan
        return lab

    def digest(self) -> str:
        """sha256 over annotators, labels and scales (row order as loaded)."""
        h = hashlib.sha256()
        h.update(json.dumps([self.annotators, self.categories, self.gold_method]).encode())
        h.update(np.ascontiguousarray(self.labels).tobytes())
        for name in sorted(self.scales):
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.scales[name]).tobytes())
        return h.hexdigest()


def majority_gold(labels: np.ndarray) -> np.ndarray:
    """(n, A, K) judgements → (n, K) gold: the strict majority of known votes.

    A tie (including an item nobody rated) is unknown (-1): ties are sent to
    adjudication rather than resolved by a convention that would bias the gold.
    """
    pos = (labels == POSITIVE).sum(axis=1)
    neg = (labels == NEGATIVE).sum(axis=1)
    out = np.full(pos.shape, UNKNOWN, dtype=np.int8)
    out[pos > neg] = POSITIVE
    out[neg > pos] = NEGATIVE
    return out


def item_key(values: Sequence[Any]) -> str:
    """Stable item key: sha256 of the JSON of the key columns' values (first 16 hex)."""
    raw = json.dumps([None if v is None else str(v) for v in values], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def _order_value(v: Any) -> tuple[int, float | str]:
    try:
        return (0, float(v))
    except (TypeError, ValueError):
        return (1, str(v))


def _scale_level(
    scale: OrdinalScale, values: dict[str, Any], where: str, fld: str, what: str
) -> float:
    """Level of a one-hot scale; NaN when no column is filled (not judged)."""
    from audit.suites.rules import is_missing as _is_missing
    from audit.suites.rules import same as _same

    on = []
    filled = False
    for col, level in scale.onehot.items():
        v = values.get(col)
        if _is_missing(v):
            continue
        filled = True
        if _same(v, 1):
            on.append(level)
        elif not _same(v, 0):
            raise SuiteError(
                f"one-hot value not 0/1 ({what}, column {col!r})",
                where=where,
                field=fld,
                expected="0 or 1",
                actual=repr(v),
                fix="correct the data or the scale's columns",
            )
    if not filled:
        return float("nan")
    if len(on) != 1:
        raise SuiteError(
            f"one-hot scale {scale.name!r} has {len(on)} columns set ({what})",
            where=where,
            field=fld,
            expected="exactly one of " + ", ".join(scale.onehot),
            actual=f"{len(on)} set",
            fix="fix the row, or drop the scale from the card",
        )
    return float(on[0])


def collapse_annotations(
    card: SuiteCard,
    cpath: Path,
    rows: list[dict[str, Any]],
    covers: tuple[str, ...],
    policy: Policy,
) -> tuple[list[dict[str, Any]], AnnotatorLabels]:
    """One row per item (with ``key_column`` added) and the per-annotator labels.

    Raises:
        SuiteError: a declared column or annotator is absent, an annotator in the
            data is not declared, a repeat judgement when ``repeats: error``, a
            multi-valued cell without ``multi_value_separator``, a broken one-hot.
    """
    spec = card.annotations
    assert spec is not None
    if spec.format == "long":
        items, judgements, stats = _long(card, spec, str(cpath), rows)
    else:
        items, judgements, stats = _wide(card, spec, str(cpath), rows)
    cats = policy.category_ids
    kidx = {c: i for i, c in enumerate(cats)}
    n, a = len(items), len(spec.annotators)
    labels = np.full((n, a, len(cats)), UNKNOWN, dtype=np.int8)
    scales = {s.name: np.full((n, a), np.nan) for s in spec.scales}
    from audit.suites.rules import apply_rule as _apply_rule

    where = str(cpath)
    for (i, j), values in judgements.items():
        what = f"item {items[i][spec.key_column]!r}, annotator {spec.annotators[j]!r}"
        for r, rule in enumerate(card.labels.rules):
            labels[i, j, kidx[rule.category]] = _apply_rule(  # type: ignore[index]
                rule, values, what, where, f"labels.rules[{r}]"
            )
        for s, scale in enumerate(spec.scales):
            scales[scale.name][i, j] = _scale_level(
                scale, values, where, f"annotations.scales[{s}]", what
            )
    stats["items"] = n
    stats["judgements"] = len(judgements)
    return items, AnnotatorLabels(
        annotators=spec.annotators,
        categories=cats,
        covers=covers,
        labels=labels,
        scales=scales,
        gold=majority_gold(labels),
        gold_method="majority of annotators per category (tie or no judgement: unknown)",
        stats=stats,
    )


def _needed_columns(card: SuiteCard, spec: AnnotationSpec) -> list[tuple[str, str]]:
    """(source column, card field) pairs each judgement must have."""
    out = []
    for r, rule in enumerate(card.labels.rules):
        out += [(c, f"labels.rules[{r}].column") for c in rule.columns]
    for s, scale in enumerate(spec.scales):
        out += [(c, f"annotations.scales[{s}].onehot") for c in scale.onehot]
    return out


def _missing_column(where: str, fld: str, col: str, have: Iterable[str]) -> SuiteError:
    return SuiteError(
        "column not found in the data",
        where=where,
        field=fld,
        expected=f"a column among {sorted(str(h) for h in have)[:40]}",
        actual=repr(col),
        fix="correct the column name in the suite card",
    )


_Judgements = dict[tuple[int, int], dict[str, Any]]


def _long(
    card: SuiteCard, spec: AnnotationSpec, where: str, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], _Judgements, dict[str, int]]:
    from audit.suites.rules import is_missing as _is_missing

    have = set(rows[0])
    ann_col = spec.annotator_column
    assert ann_col is not None
    checks = [(ann_col, "annotations.annotator_column")]
    checks += [(c, "annotations.item_key") for c in spec.item_key]
    if spec.order_column:
        checks.append((spec.order_column, "annotations.order_column"))
    for col, fld in checks + _needed_columns(card, spec):
        if col not in have:
            raise _missing_column(where, fld, col, have)
    order = list(range(len(rows)))
    if spec.order_column:  # repeats keep the first judgement in the set's own order
        oc = spec.order_column
        order.sort(key=lambda r: _order_value(rows[r].get(oc)))
    aidx = {a: j for j, a in enumerate(spec.annotators)}
    items: list[dict[str, Any]] = []
    by_key: dict[str, int] = {}
    judgements: _Judgements = {}
    repeats = 0
    for r in order:
        row = rows[r]
        ann = row.get(ann_col)
        if _is_missing(ann) or str(ann) not in aidx:
            raise SuiteError(
                f"annotator not declared in the card (data row {r})",
                where=where,
                field="annotations.annotators",
                expected=f"one of {list(spec.annotators)}",
                actual=repr(ann),
                fix="declare the annotator, or fix the data",
            )
        key = item_key([row.get(c) for c in spec.item_key])
        i = by_key.get(key)
        if i is None:
            i = by_key[key] = len(items)
            items.append({**row, spec.key_column: key})
        j = aidx[str(ann)]
        if (i, j) in judgements:
            if spec.repeats == "error":
                raise SuiteError(
                    f"annotator {ann!r} judged item {key!r} twice (data row {r})",
                    where=where,
                    field="annotations.repeats",
                    expected="one judgement per (item, annotator)",
                    actual="a repeat",
                    fix="set repeats: first to keep the first judgement",
                )
            repeats += 1
            continue
        judgements[(i, j)] = row
    seen = {j for (_, j) in judgements}
    absent = [a for a, j in aidx.items() if j not in seen]
    if absent:
        raise SuiteError(
            "declared annotator(s) have no judgement in the data",
            where=where,
            field="annotations.annotators",
            expected=f"every declared annotator in column {ann_col!r}",
            actual=f"absent: {absent}",
            fix="remove them from the card or check the data file",
        )
    return items, judgements, {"repeats_dropped": repeats, "rows": len(rows)}


def _wide(
    card: SuiteCard, spec: AnnotationSpec, where: str, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], _Judgements, dict[str, int]]:
    from audit.suites.rules import is_missing as _is_missing

    have = set(rows[0])
    for c in spec.item_key:
        if c not in have:
            raise _missing_column(where, "annotations.item_key", c, have)
    needed = _needed_columns(card, spec)
    absent = []
    for a in spec.annotators:
        for col, fld in needed:
            name = spec.column_template.format(annotator=a, column=col)
            if name not in have:
                if not any(
                    spec.column_template.format(annotator=a, column=c) in have for c, _ in needed
                ):
                    absent.append(a)
                    break
                raise _missing_column(where, fld, name, have)
    if absent:
        raise SuiteError(
            "declared annotator(s) have no columns in the data",
            where=where,
            field="annotations.annotators",
            expected="columns named by column_template "
            + repr(spec.column_template)
            + " for every annotator",
            actual=f"absent: {absent}",
            fix="remove them from the card or check the template",
        )
    items: list[dict[str, Any]] = []
    by_key: dict[str, int] = {}
    judgements: _Judgements = {}
    multi = 0
    for r, row in enumerate(rows):
        key = item_key([row.get(c) for c in spec.item_key])
        if key in by_key:
            raise SuiteError(
                f"two data rows share the item key (rows {by_key[key]} and {r})",
                where=where,
                field="annotations.item_key",
                expected="one row per item in the wide format",
                actual=repr(key),
                fix="add a column to item_key, or deduplicate the data",
            )
        by_key[key] = r
        i = len(items)
        items.append({**row, spec.key_column: key})
        for j, a in enumerate(spec.annotators):
            values: dict[str, Any] = {}
            for col, fld in needed:
                name = spec.column_template.format(annotator=a, column=col)
                v = row.get(name)
                if isinstance(v, str) and (spec.multi_value_separator or ",") in v:
                    if spec.multi_value_separator is None or spec.repeats == "error":
                        raise SuiteError(
                            f"multi-valued cell (row {r}, column {name!r})",
                            where=where,
                            field=fld,
                            expected="one value per cell",
                            actual=repr(v),
                            fix="set annotations.multi_value_separator and repeats: first",
                        )
                    v = v.split(spec.multi_value_separator)[0].strip()  # first judgement
                    multi += 1
                values[col] = v
            if any(not _is_missing(v) for v in values.values()):
                judgements[(i, j)] = values
    return items, judgements, {"multi_valued_cells": multi, "rows": len(rows)}


__all__ = ["AnnotatorLabels", "collapse_annotations", "item_key", "majority_gold"]
