"""Operating points under a precision target, and production-prevalence re-projection.

Threshold choice (docs/methods.md §1): candidate thresholds are the distinct scores, scanned
from high to low; at each the one-sided ``1 − alpha`` Wilson lower bound on precision
(Wilson 1927) is compared with the target, and the scan **stops at the first failure**.
The chosen threshold is the lowest one before that failure. Testing the hypotheses in
a fixed order and stopping at the first non-rejection controls the error at ``alpha``
without a multiplicity correction ("Learn then Test", Angelopoulos et al. 2021,
arXiv:2110.01052). Thresholds that flag fewer items than even an all-correct set would
need to pass (``n/(n + z²) < target``) are not tested: with 1 flagged item the 95% bound
is 0.27, so a scan starting at the single top score would always stop at once. Which
thresholds are skipped depends on the scores only, never on the labels, so the order of
the hypotheses is still fixed before the labels are looked at.

Benchmark precision does not transfer to production prevalence ``π``; the precision the
operating point would have there is ``TPR·π / (TPR·π + FPR·(1−π))`` (docs/methods.md §1). A
conservative version uses the Wilson lower bound on TPR and upper bound on FPR.

Thresholds fit on a test split are optimistic for that split: validate them on another.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from audit.metrics.stats import wilson, z_value


def reproject_precision(tpr: float, fpr: float, prevalence: float) -> float:
    """Precision at production prevalence ``π``: ``TPR·π / (TPR·π + FPR·(1−π))``.

    NaN when TPR and FPR are both 0 (nothing is ever flagged).
    """
    num = tpr * prevalence
    den = num + fpr * (1 - prevalence)
    return num / den if den > 0 else math.nan


@dataclass
class OperatingPoint:
    """The operating point chosen for one category (NaN + ``reason`` when none)."""

    category: str
    target: float
    alpha: float
    n: int
    n_pos: int
    threshold: float = math.nan
    precision: float = math.nan
    precision_lower: float = math.nan
    recall: float = math.nan
    recall_lo: float = math.nan
    recall_hi: float = math.nan
    fpr: float = math.nan
    fpr_hi: float = math.nan
    tp: int = 0
    fp: int = 0
    prevalence: float | None = None
    precision_at_prevalence: float = math.nan
    precision_at_prevalence_conservative: float = math.nan
    candidates_passed: int = 0
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def operating_point(
    y: np.ndarray,
    score: np.ndarray,
    *,
    category: str = "category",
    target: float = 0.9,
    alpha: float = 0.05,
    prevalence: float | None = None,
) -> OperatingPoint:
    """Lowest threshold whose Wilson lower bound on precision meets ``target``.

    Args:
        y: gold labels (1, 0, -1 unknown → excluded).
        score: scores (NaN → excluded).
        category: name carried into the result.
        target: precision target.
        alpha: one-sided error level of the lower bound (bound at ``1 − alpha``).
        prevalence: production prevalence for the re-projection (optional).

    Returns:
        :class:`OperatingPoint`; decisions are ``score >= threshold``.
    """
    y = np.asarray(y)
    s = np.asarray(score, dtype=float)
    ok = (y != -1) & ~np.isnan(s)
    y, s = y[ok].astype(np.int64), s[ok]
    n, n_pos = int(y.size), int(y.sum())
    op = OperatingPoint(category, target, alpha, n, n_pos, prevalence=prevalence)
    if n_pos == 0:
        op.reason = f"no gold positives among {n} scored items"
        return op
    order = np.argsort(-s, kind="stable")
    ss, yy = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(ss))[0], ss.size - 1]  # last index of each tie group
    tp = np.cumsum(yy)[last]
    fp = (last + 1) - tp
    z1 = z_value(1 - alpha, one_sided=True)
    lower, _ = wilson(tp, tp + fp, z1)
    flagged = last + 1
    start = int(np.searchsorted(flagged / (flagged + z1 * z1) >= target, True))
    if start >= len(last):
        op.reason = f"too few items ({n}) for a {1 - alpha:.0%} lower bound of {target}"
        return op
    fails = np.nonzero(~(lower[start:] >= target))[0]
    k = int(fails[0]) if fails.size else len(last) - start
    op.candidates_passed = k
    if k == 0:
        op.reason = (
            f"no threshold qualifies: at the first tested threshold ({ss[last[start]]:.4g}, "
            f"{flagged[start]} flagged) the {1 - alpha:.0%} Wilson lower bound on precision "
            f"is {lower[start]:.3f} < {target}"
        )
        return op
    i = start + k - 1
    t_p, f_p = int(tp[i]), int(fp[i])
    n_neg = n - n_pos
    zt = z_value(1 - alpha)
    r_lo, r_hi = wilson(t_p, n_pos, zt)
    _, f_hi = wilson(f_p, n_neg, zt)
    op.threshold = float(ss[last[i]])
    op.tp, op.fp = t_p, f_p
    op.precision = t_p / (t_p + f_p)
    op.precision_lower = float(lower[i])
    op.recall, op.recall_lo, op.recall_hi = t_p / n_pos, float(r_lo), float(r_hi)
    op.fpr = f_p / n_neg if n_neg else math.nan
    op.fpr_hi = float(f_hi)
    if prevalence is not None:
        if n_neg == 0:
            op.reason = "no gold negatives: FPR unknown, precision cannot be re-projected"
        else:
            op.precision_at_prevalence = reproject_precision(op.recall, op.fpr, prevalence)
            op.precision_at_prevalence_conservative = reproject_precision(
                op.recall_lo, op.fpr_hi, prevalence
            )
    return op


def fit_thresholds(
    df: Any,
    *,
    target: float = 0.9,
    alpha: float = 0.05,
    prevalence: dict[str, float] | None = None,
) -> list[OperatingPoint]:
    """:func:`operating_point` for every scored category of a prediction table.

    Only policy categories (not ``overall``): a moderator config has no threshold for
    the overall decision, which is the maximum over categories.
    """
    from audit.analysis._data import analysable_categories, category_arrays

    prevalence = prevalence or {}
    out = []
    for cat in analysable_categories(df, overall=False):
        y, s, _ = category_arrays(df, cat)
        out.append(
            operating_point(
                y,
                s,
                category=cat,
                target=target,
                alpha=alpha,
                prevalence=prevalence.get(cat, prevalence.get("default")),
            )
        )
    return out


def thresholds_yaml(
    points: list[OperatingPoint],
    *,
    default: float,
    run_id: str,
    suite: str,
    split: str,
    moderator: str,
) -> str:
    """A YAML fragment for a moderator's ``thresholds:`` mapping, with provenance comments.

    Categories without a qualifying threshold are left out (they use ``default``) and
    named in a comment.
    """
    p0 = points[0] if points else None
    lines = [
        f"# operating points from audit thresholds: run {run_id}, suite {suite}:{split}, "
        f"moderator {moderator}",
        f"# target precision {p0.target if p0 else 'n/a'} at the one-sided "
        f"{1 - p0.alpha if p0 else 0.95:.0%} Wilson lower bound (alpha {p0.alpha if p0 else 'n/a'}),"
        " fixed-sequence scan high to low (docs/methods.md §1)",
        "# WARNING: thresholds fit on a test split are optimistic; validate them on another split",
        "thresholds:",
        f"  default: {default}",
    ]
    for p in points:
        if math.isnan(p.threshold):
            lines.append(f"  # {p.category}: none qualifies ({p.reason}); uses default")
        else:
            lines.append(
                f"  {p.category}: {p.threshold!r}  # precision {p.precision:.3f} "
                f"(lower {p.precision_lower:.3f}), recall {p.recall:.3f}, n {p.n}"
            )
    return "\n".join(lines) + "\n"
