"""Fusion rules: several moderators' per-category scores → one item score.

The rules are pure functions over the members' scores of one item; the
``fusion`` moderator (audit/moderators/fusion.py) applies one and records it.

* ``max``: the highest member score per category — the item violates when any
  member is confident it does. With a common decision threshold t this is the
  "any member flags" OR rule, and the fused score stays a member's calibrated
  probability (no new scale is invented).
* ``noisy_or``: ``1 - prod(1 - s_m)`` — treats members as independent detectors
  (Pearl 1988, noisy-OR); it rises with agreement, so two members at 0.4 give
  0.64. It is only as calibrated as the independence assumption is true.
* ``mean``: the arithmetic mean, the simplest linear opinion pool (Stone 1961;
  Genest & Zidek 1986); one confident member is diluted by the others.

Members that cannot speak to a category (NaN, or not in their categories) are
left out of that category's rule; a category no member scores stays NaN.
See docs/methods/media.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

FusionRule = Literal["max", "noisy_or", "mean"]
RULES: tuple[str, ...] = ("max", "noisy_or", "mean")


def fuse_category(values: Mapping[str, float], rule: FusionRule) -> tuple[float, str | None]:
    """Fused score of one category and the member that decided it.

    Args:
        values: member name → score (NaN = the member does not speak to it).
        rule: one of :data:`RULES`.

    Returns:
        ``(score, member)``; ``member`` is the member with the highest score (for
        ``max`` the one whose score *is* the result), ``None`` when no member scored.
    """
    present = {m: v for m, v in values.items() if not math.isnan(v)}
    if not present:
        return math.nan, None
    top = max(present, key=lambda m: (present[m], m))
    if rule == "max":
        return present[top], top
    if rule == "noisy_or":
        keep = 1.0
        for v in present.values():
            keep *= 1.0 - v
        return 1.0 - keep, top
    if rule == "mean":
        return sum(present.values()) / len(present), top
    raise ValueError(f"unknown fusion rule {rule!r}; expected one of {RULES}")


def fuse(
    member_scores: Mapping[str, Mapping[str, float]],
    categories: tuple[str, ...],
    rule: FusionRule,
) -> tuple[dict[str, float], dict[str, str]]:
    """Fused scores for ``categories`` and, per category, the deciding member.

    Args:
        member_scores: member name → {category: score}; a missing category is NaN.
    """
    scores: dict[str, float] = {}
    decided: dict[str, str] = {}
    for cat in categories:
        v, m = fuse_category({n: s.get(cat, math.nan) for n, s in member_scores.items()}, rule)
        if m is not None:
            scores[cat] = v
            decided[cat] = m
    return scores, decided
