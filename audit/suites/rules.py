"""Applying a card's label rules to source rows, and the checks that catch rules that lie.

A rule maps a source value onto positive / negative / unknown in one of three ways:

* **value lists** (``positive: [hateful]``, ``negative: [non-hateful]``), compared by
  type: a card number matches a data number or a string that *parses* as that number
  (CSV ``"0"`` and ``"0.0"`` match ``0``), a card string matches the data's text exactly
  (after stripping), a card boolean matches a data boolean or ``true``/``false``;
* **a numeric condition** (``positive_if: ">= 0.5"``, optional ``negative_if``; without
  it every other number is negative) for fraction or score columns;
* **a constant** (``constant: positive``) for one-class sets such as an all-unsafe list.

Missing values are always unknown, never negative.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audit.errors import SuiteError
from audit.schema import NEGATIVE, POSITIVE, UNKNOWN

if TYPE_CHECKING:
    from audit.suites.card import LabelRule

_COND = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
# strings that look like a pattern or a condition but are compared literally
_PATTERN_LIKE = re.compile(r"^\s*(>=|<=|==|!=|>|<)|[*?\[\]^$|\\]")


def parse_condition(text: str) -> tuple[str, float]:
    """``">= 0.5"`` → ``(">=", 0.5)``; ``ValueError`` for anything else."""
    m = _COND.match(text)
    if not m:
        raise ValueError(
            f"condition {text!r} must be an operator (>=, >, <=, <, ==, !=) and a number, "
            "e.g. '>= 0.5'"
        )
    return m.group(1), float(m.group(2))


def is_missing(v: Any) -> bool:
    """None, NaN, or a blank string: the source says nothing."""
    return (
        v is None
        or (isinstance(v, float) and math.isnan(v))
        or (isinstance(v, str) and not v.strip())
    )


def as_number(v: Any) -> float | None:
    """A data value as a number: numbers as they are, strings only if they parse fully."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def same(card_value: Any, data_value: Any) -> bool:
    """Whether a data value equals a card value, compared by the card value's type."""
    if isinstance(card_value, bool):
        if isinstance(data_value, bool):
            return card_value is data_value
        return isinstance(data_value, str) and data_value.strip().lower() == str(card_value).lower()
    if isinstance(card_value, (int, float)):
        num = as_number(data_value)
        return num is not None and num == float(card_value)
    if isinstance(data_value, (bool, int, float)):
        # a card string against a typed data value: compare the data's plain rendering
        rendered = str(data_value).lower() if isinstance(data_value, bool) else str(data_value)
        return rendered == str(card_value).strip()
    return str(data_value).strip() == str(card_value).strip()


@dataclass
class RuleStats:
    """How many rows a rule mapped to each class (for the zero-match warnings)."""

    positive: int = 0
    negative: int = 0
    unknown: int = 0
    present: int = 0
    """rows where at least one of the rule's columns held a value"""
    matched_values: dict[int, int] = field(default_factory=dict)
    """index into ``positive + negative`` → rows that matched that card value."""


def apply_rule(
    rule: LabelRule,
    row: dict[str, Any],
    row_id: str,
    where: str,
    field_name: str,
    stats: RuleStats | None = None,
) -> int:
    """The gold label (POSITIVE / NEGATIVE / UNKNOWN) ``rule`` gives ``row``.

    With several columns the label is positive if any column is positive, negative
    if all are known negatives, unknown otherwise.

    Raises:
        SuiteError: a value the rule does not map (with ``other: error``), a value that
            is not a number under ``positive_if``, or a mapping where a value belongs.
    """
    if rule.constant is not None:
        out_label = POSITIVE if rule.constant == "positive" else NEGATIVE
        _count(stats, out_label)
        return out_label
    listed = (*rule.positive, *rule.negative)
    out: list[int] = []
    if stats is not None and any(not is_missing(row.get(c)) for c in rule.columns):
        stats.present += 1
    for col in rule.columns:
        v = row.get(col)
        if isinstance(v, (dict, list)):
            raise SuiteError(
                f"label column holds a {type(v).__name__} (item {row_id!r}, column {col!r})",
                where=where,
                field=field_name,
                expected="a scalar value",
                actual=type(v).__name__,
                fix="name a nested scalar with a dotted path (e.g. annotations.label)",
            )
        if is_missing(v):
            out.append(UNKNOWN)
            continue
        if rule.positive_if is not None:
            out.append(_by_condition(rule, v, row_id, col, where, field_name))
            continue
        hit = next((j for j, c in enumerate(listed) if same(c, v)), None)
        if hit is not None:
            if stats is not None:
                stats.matched_values[hit] = stats.matched_values.get(hit, 0) + 1
            out.append(POSITIVE if hit < len(rule.positive) else NEGATIVE)
        elif rule.other == "unknown":
            out.append(UNKNOWN)
        elif rule.other == "negative":
            out.append(NEGATIVE)
        else:
            raise SuiteError(
                f"label value not mapped (item {row_id!r}, column {col!r})",
                where=where,
                field=field_name,
                expected=f"one of {list(listed)}",
                actual=repr(v)[:80],
                fix="add the value to positive/negative, or set other: unknown",
            )
    label = (
        POSITIVE
        if POSITIVE in out
        else NEGATIVE
        if out and all(o == NEGATIVE for o in out)
        else UNKNOWN
    )
    _count(stats, label)
    return label


def _by_condition(
    rule: LabelRule, v: Any, row_id: str, col: str, where: str, field_name: str
) -> int:
    num = as_number(v)
    if num is None or math.isnan(num):
        raise SuiteError(
            f"value is not a number (item {row_id!r}, column {col!r})",
            where=where,
            field=f"{field_name}.positive_if",
            expected="a number (the rule compares with positive_if)",
            actual=repr(v)[:80],
            fix="fix the value, or map this column with positive/negative value lists",
        )
    assert rule.positive_if is not None
    op, thr = parse_condition(rule.positive_if)
    if _OPS[op](num, thr):
        return POSITIVE
    if rule.negative_if is None:
        return NEGATIVE
    nop, nthr = parse_condition(rule.negative_if)
    return NEGATIVE if _OPS[nop](num, nthr) else UNKNOWN


def _count(stats: RuleStats | None, label: int) -> None:
    if stats is None:
        return
    if label == POSITIVE:
        stats.positive += 1
    elif label == NEGATIVE:
        stats.negative += 1
    else:
        stats.unknown += 1


def rule_warnings(rule: LabelRule, stats: RuleStats, field_name: str) -> list[str]:
    """Warnings for a rule that looks wrong on this data (shown by validate and run):
    a class it names that no row received, a listed value no row matched, a value that
    looks like a pattern or a condition but is compared literally."""
    out: list[str] = []
    if rule.constant is None and stats.present == 0:
        # the column is absent from this split (allowed by missing_column: unknown):
        # every row is unknown, which the card asked for
        return out
    if rule.constant is None:
        if stats.positive == 0 and (rule.positive or rule.positive_if):
            out.append(f"{field_name}: no row mapped to positive")
        if stats.negative == 0 and (rule.negative or rule.negative_if):
            out.append(f"{field_name}: no row mapped to negative")
        if rule.positive_if is None:
            listed = (*rule.positive, *rule.negative)
            for j, value in enumerate(listed):
                if stats.matched_values.get(j, 0) == 0:
                    out.append(f"{field_name}: value {value!r} matched no row")
                if isinstance(value, str) and _PATTERN_LIKE.search(value):
                    out.append(
                        f"{field_name}: value {value!r} looks like a pattern or condition but "
                        "is compared literally (use positive_if for numeric conditions)"
                    )
    return out
