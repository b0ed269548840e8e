"""Calibration metrics: expected calibration error and Brier score (METHODS.md §4).

Both are computed from the same :class:`~audit.metrics.ranking.ScoreBins` as the ranking
metrics, so the bootstrap resamples them together.

**ECE with equal-mass bins** (Naeini et al., AAAI 2015, "Obtaining Well Calibrated
Probabilities Using Bayesian Binning"; equal-mass / adaptive bins as recommended by
Nixon et al., CVPR-W 2019, "Measuring Calibration in Deep Learning", because moderation
scores are heavily skewed towards 0 and equal-width bins would leave almost all items in
the first bin). With ``N`` items, ``M`` bins (default 10) and ``r_i`` the number of items
whose score is *strictly smaller* than item ``i``'s, item ``i`` goes to bin
``⌊M · r_i / N⌋``. Without ties every bin holds ``⌊N/M⌋`` or ``⌈N/M⌉`` items; tied scores
always share a bin (so a huge tie, e.g. many exact zeros, can leave some bins empty and
make others larger), and the result does not depend on the input order. Then::

    ECE = Σ_m (n_m / N) · |mean(y in m) − mean(score in m)| = Σ_m |Σ_{i∈m} (y_i − s_i)| / N

Undefined (NaN) only without items. The actionable-region variant of METHODS.md §4 is
:func:`ece` on the items whose score lies in that region.

**Brier score** ``mean((s − y)²)`` (Brier 1950), as ``sklearn.metrics.brier_score_loss``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audit.metrics.ranking import ScoreBins, score_point
from audit.metrics.registry import MetricResult, MetricSpec, register_metric


def ece_batch(b: ScoreBins, n_bins: int = 10) -> np.ndarray:
    """Equal-mass ECE per row of ``b`` (see the module docstring); NaN without items.

    Each bin of ``b`` (a distinct score, or a fine histogram bin in the cell bootstrap)
    goes whole to the equal-mass bin given by the weight strictly below it.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    rows = b.pos.shape[0]
    if b.pos.shape[1] == 0:
        return np.full(rows, np.nan)
    # bins are in descending score order: the weight strictly below bin i is the total
    # minus the cumulative weight down to i (tps + fps)
    flagged = b.flagged
    total = flagged[:, -1]
    safe_total = np.where(total > 0, total, 1.0)[:, None]
    # weights are integer-valued, so (below · M) / total is rounded once and its floor is
    # exact (no bin-edge error) while below · M < 2**53
    below = safe_total - flagged
    below[total <= 0] = 0.0
    below *= n_bins
    below /= safe_total
    coarse = below.astype(np.intp)
    np.minimum(coarse, n_bins - 1, out=coarse)
    resid = b.pos - b.pos * b.s_pos - b.neg * b.s_neg
    coarse += (np.arange(rows, dtype=np.intp) * n_bins)[:, None]
    per_bin = np.bincount(coarse.ravel(), weights=resid.ravel(), minlength=rows * n_bins)
    gap = np.abs(per_bin.reshape(rows, n_bins)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = gap / total
    out[total <= 0] = np.nan
    return out


def brier_batch(b: ScoreBins) -> np.ndarray:
    """Brier score per row, ``Σ w (s − y)² / Σ w``; NaN without items."""
    rows = b.pos.shape[0]
    if b.pos.shape[1] == 0:
        return np.full(rows, np.nan)
    total = b.pos.sum(axis=1) + b.neg.sum(axis=1)
    sq = b.pos @ b.se_pos + b.neg @ b.se_neg
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sq / total
    out[total <= 0] = np.nan
    return out


def ece(
    y: Any,
    score: Any,
    n_bins: int = 10,
    score_range: tuple[float, float] | None = None,
) -> MetricResult:
    """Expected calibration error with ``n_bins`` equal-mass bins.

    Args:
        y: labels (1 positive, 0 negative, -1 unknown → excluded).
        score: scores in [0, 1]; NaN → excluded.
        n_bins: number of equal-mass bins (default 10).
        score_range: optional ``(lo, hi)``: restrict to items with ``lo <= score <= hi``
            (the actionable region, METHODS.md §4); items outside are not counted as
            excluded.

    Returns:
        :class:`MetricResult`; NaN with a reason when there are no items.
    """
    if score_range is not None:
        s = np.asarray(score, dtype=np.float64)
        keep = np.isnan(s) | ((s >= score_range[0]) & (s <= score_range[1]))
        y, score = np.asarray(y)[keep], s[keep]
    return score_point("ece", y, score, n_bins=n_bins)


def brier(y: Any, score: Any) -> MetricResult:
    """Brier score ``mean((score − y)²)`` over scored items with a known label."""
    return score_point("brier", y, score)


def reliability_table(y: Any, score: Any, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-mass reliability diagram data (same bins as :func:`ece`).

    Returns:
        ``{"count", "mean_score", "frac_pos"}``, one entry per bin (empty bins are NaN).
    """
    from audit.metrics.registry import prepare

    yy, ss, _, _ = prepare(y, score)
    assert ss is not None
    n = ss.size
    s_sorted = np.sort(ss)
    below = np.searchsorted(s_sorted, ss, side="left")
    idx = np.minimum((below * n_bins) // max(n, 1), n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.bincount(idx, weights=ss, minlength=n_bins) / count
        frac_pos = np.bincount(idx, weights=yy.astype(float), minlength=n_bins) / count
    return {"count": count, "mean_score": mean_score, "frac_pos": frac_pos}


for _spec in (
    MetricSpec("ece", "lower", "score",
               "expected calibration error, 10 equal-mass bins", ece, "ranking", ece_batch,
               requires=("items",), params={"n_bins": 10}),
    MetricSpec("brier", "lower", "score", "Brier score, mean squared error of the score",
               brier, "ranking", brier_batch, requires=("items",)),
):
    register_metric(_spec)
