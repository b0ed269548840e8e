"""Calibration metrics: expected calibration error and Brier score (docs/methods.md §4).

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

Undefined (NaN) only without items. The actionable-region variant of docs/methods.md §4 is
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
    rows, n_cols = b.pos.shape
    if n_cols == 0:
        return np.full(rows, np.nan)
    # Bins run in descending score order and F_i = tps_i + fps_i is the weight at or above
    # bin i, so the weight strictly below it is T − F_i and bin i lands in equal-mass bin
    # ⌊M (T − F_i) / T⌋, which is ≥ m  ⇔  M·F_i ≤ T·(M − m). Both sides are integer-valued
    # (exact in float64 below 2**53), so the bin edges are found exactly by one vectorised
    # searchsorted over rows (offset so the flattened keys stay sorted), and each
    # equal-mass bin's Σ(y − s) is a difference of cumulative sums at its edges.
    flagged = b.flagged
    total = flagged[:, -1]
    key = flagged * n_bins
    offset = float(np.max(total, initial=0.0)) * n_bins + 1.0
    row_off = np.arange(rows, dtype=np.float64) * offset
    key += row_off[:, None]
    m = np.arange(1, n_bins, dtype=np.float64)
    query = total[:, None] * (n_bins - m)[None, :] + row_off[:, None]
    edges = np.searchsorted(key.ravel(), query.ravel(), side="right").reshape(rows, -1)
    edges -= (np.arange(rows) * n_cols)[:, None]
    # c_0 = J (everything), c_m for m = 1..M−1, c_M = 0
    counts = np.concatenate(
        [np.full((rows, 1), n_cols), edges, np.zeros((rows, 1), dtype=edges.dtype)], axis=1
    )
    resid = b.tps - np.cumsum(b.pos * b.s_pos + b.neg * b.s_neg, axis=1)
    cum = np.concatenate([np.zeros((rows, 1)), resid], axis=1)
    at = np.take_along_axis(cum, counts, axis=1)
    gap = np.abs(at[:, :-1] - at[:, 1:]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray = gap / total
    out[total <= 0] = np.nan
    return out


def brier_batch(b: ScoreBins) -> np.ndarray:
    """Brier score per row, ``Σ w (s − y)² / Σ w``; NaN without items."""
    rows = b.pos.shape[0]
    if b.pos.shape[1] == 0:
        return np.full(rows, np.nan)
    total = b.pos.sum(axis=1) + b.neg.sum(axis=1)
    sq = np.einsum("ij,j->i", b.pos, b.se_pos) + np.einsum("ij,j->i", b.neg, b.se_neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray = sq / total
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
            (the actionable region, docs/methods.md §4); items outside are not counted as
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
    MetricSpec(
        "ece",
        "lower",
        "score",
        "expected calibration error, 10 equal-mass bins",
        ece,
        "ranking",
        ece_batch,
        requires=("items",),
        params={"n_bins": 10},
    ),
    MetricSpec(
        "brier",
        "lower",
        "score",
        "Brier score, mean squared error of the score",
        brier,
        "ranking",
        brier_batch,
        requires=("items",),
    ),
):
    register_metric(_spec)
