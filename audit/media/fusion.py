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

* ``learned`` (:func:`fit_stacked`, :class:`StackedCategory`): a logistic
  regression per category on the members' score logits, fitted on a declared suite
  split (stacked generalisation, Wolpert 1992, Neural Networks 5(2); logit features
  as in Platt 1999). The ``fusion`` moderator fits and records it.

See docs/methods/media.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


# --------------------------------------------------------------------------- learned

#: member scores are clipped to [EPS, 1 - EPS] before the logit
EPS = 1e-6


def _logit(p: float) -> float:
    q = min(1.0 - EPS, max(EPS, p))
    return math.log(q / (1.0 - q))


@dataclass(frozen=True)
class StackedCategory:
    """A logistic regression of one category's label on its members' score logits
    (stacked generalisation, Wolpert 1992; Platt 1999 for the logit scale).

    ``P(violates) = sigmoid(intercept + sum_m coef[m] * logit(s_m))``; an item is
    scored only when every member in ``members`` scored it.
    """

    members: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    n: int
    n_positive: int

    def score(self, values: Mapping[str, float]) -> tuple[float, str | None]:
        """Fused score and the member with the largest contribution ``coef * logit``."""
        xs = [values.get(m, math.nan) for m in self.members]
        if any(math.isnan(x) for x in xs):
            return math.nan, None
        parts = [c * _logit(x) for c, x in zip(self.coef, xs)]
        z = self.intercept + sum(parts)
        top = max(range(len(parts)), key=lambda j: (parts[j], self.members[j]))
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0, self.members[top]

    def record(self) -> dict[str, object]:
        return {
            "members": list(self.members),
            "coef": [round(c, 10) for c in self.coef],
            "intercept": round(self.intercept, 10),
            "n": self.n,
            "n_positive": self.n_positive,
            "features": "logit(member score)",
        }


def fit_stacked(
    rows: Sequence[Mapping[str, float]],
    labels: Sequence[bool],
    members: Sequence[str],
    *,
    c: float = 1.0,
    min_per_class: int = 5,
) -> StackedCategory | str:
    """Fit one category's stacked logistic regression (L2, ``C = c``, lbfgs; the
    solver is deterministic), or the reason it cannot be fitted.

    Args:
        rows: per fit item, member → score (NaN or absent: not scored; such items
            are left out of the fit).
        labels: per fit item, whether the gold marks the category positive.
        members: the members that speak to the category.
        min_per_class: fewer positive or negative fit items than this: no fit.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    keep = [
        i for i, r in enumerate(rows) if all(not math.isnan(r.get(m, math.nan)) for m in members)
    ]
    y = np.array([bool(labels[i]) for i in keep], dtype=bool)
    n_pos = int(y.sum())
    if n_pos < min_per_class or len(y) - n_pos < min_per_class:
        return (
            f"{n_pos} positive and {len(y) - n_pos} negative fit items scored by every "
            f"member (need >= {min_per_class} of each)"
        )
    x = np.array([[_logit(rows[i][m]) for m in members] for i in keep], dtype=np.float64)
    lr = LogisticRegression(C=c, solver="lbfgs", max_iter=1000).fit(x, y)
    return StackedCategory(
        members=tuple(members),
        coef=tuple(float(v) for v in lr.coef_[0]),
        intercept=float(lr.intercept_[0]),
        n=len(y),
        n_positive=n_pos,
    )
