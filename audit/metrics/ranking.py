"""Threshold-free ranking metrics over continuous scores (docs/methods.md §1).

AUPRC (average precision), AUROC, recall at a precision target (R@P0.9 by default) and
TPR at an FPR target (1% by default), all computed from a :class:`ScoreBins`: per-class
item weights in score bins sorted by *descending* score. With one bin per distinct score
value and unit weights (:func:`exact_bins`) this is exactly the curve scikit-learn builds
(``_binary_clf_curve``: one point per distinct threshold, ties grouped), so the point
estimates match ``average_precision_score``, ``roc_auc_score``, ``precision_recall_curve``
and ``roc_curve``. The bootstrap (:mod:`audit.metrics.bootstrap`) reuses the same kernels
with resampled weights, either on the exact bins (row bootstrap) or on a coarser
per-class quantile histogram (:func:`quantile_bins`, cell bootstrap).

Definitions, with ``tps_i``/``fps_i`` the cumulative positive/negative weight at the
``i``-th threshold (scores ≥ threshold), ``P``/``N`` the totals:

* AUPRC = ``Σ_i (R_i − R_{i−1}) · P_i`` with ``R_i = tps_i / P`` and
  ``P_i = tps_i / (tps_i + fps_i)``: average precision as in scikit-learn (no
  interpolation); undefined without gold positives (scikit-learn returns 0 and warns);
* AUROC = trapezoidal area under (``fps/N``, ``tps/P``) = P(s⁺ > s⁻) + ½ P(s⁺ = s⁻);
  undefined unless both classes are present;
* R@P(t) = ``max {R_i : P_i ≥ t}`` over the PR curve including its end point
  (recall 0, precision 1), so it is 0 when no threshold reaches the target; undefined
  without gold positives;
* TPR@FPR(t) = ``max {tps_i / P : fps_i / N ≤ t}`` over the ROC curve including (0, 0)
  (no interpolation); undefined unless both classes are present.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from audit.metrics.registry import (
    MetricResult,
    MetricSpec,
    get_metric,
    point_result,
    prepare,
    register_metric,
)


@dataclass(frozen=True)
class ScoreBins:
    """Per-class weights in score bins, bins sorted by descending score.

    Attributes:
        pos: ``(B, J)`` positive weight per bin (one row per resample; one row for a
            point estimate).
        neg: ``(B, J)`` negative weight per bin.
        s_pos: ``(J,)`` mean score of the positives in each bin (used by ECE).
        s_neg: ``(J,)`` mean score of the negatives in each bin.
        se_pos: ``(J,)`` mean squared error ``(1 − s)²`` of the positives (Brier).
        se_neg: ``(J,)`` mean squared error ``s²`` of the negatives (Brier).
    """

    pos: np.ndarray
    neg: np.ndarray
    s_pos: np.ndarray
    s_neg: np.ndarray
    se_pos: np.ndarray
    se_neg: np.ndarray

    @property
    def n_pos(self) -> np.ndarray:
        out: np.ndarray = self.pos.sum(axis=1)
        return out

    @property
    def n_neg(self) -> np.ndarray:
        out: np.ndarray = self.neg.sum(axis=1)
        return out

    @cached_property
    def tps(self) -> np.ndarray:
        """``(B, J)`` cumulative positive weight at each threshold (scores ≥ bin)."""
        return np.cumsum(self.pos, axis=1)

    @cached_property
    def fps(self) -> np.ndarray:
        """``(B, J)`` cumulative negative weight at each threshold."""
        return np.cumsum(self.neg, axis=1)

    @cached_property
    def flagged(self) -> np.ndarray:
        """``(B, J)`` cumulative weight at each threshold (``tps + fps``)."""
        out: np.ndarray = self.tps + self.fps
        return out

    @cached_property
    def precision_curve(self) -> np.ndarray:
        """``(B, J)`` precision at each threshold, 0 where nothing is flagged."""
        # tps == 0 wherever flagged == 0, so flooring the denominator yields 0 there and
        # leaves every other quotient bit-identical to tps / flagged
        out: np.ndarray = self.tps / np.maximum(self.flagged, np.finfo(np.float64).tiny)
        return out

    def with_counts(self, pos: np.ndarray, neg: np.ndarray) -> ScoreBins:
        """Same bins, new (resampled) weights of shape ``(B, J)``."""
        return ScoreBins(pos, neg, self.s_pos, self.s_neg, self.se_pos, self.se_neg)


def sort_desc(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort filtered items by descending score: ``(order, y_sorted, score_sorted)``."""
    order = np.argsort(-score)
    return order, y[order], score[order]


def bins_from_sorted(y_desc: np.ndarray, s_desc: np.ndarray, starts: np.ndarray) -> ScoreBins:
    """Aggregate sorted items into bins starting at positions ``starts``."""
    yf = y_desc.astype(np.float64)
    total = np.diff(np.append(starts, y_desc.size)).astype(np.float64)
    pos = np.add.reduceat(yf, starts) if starts.size else np.zeros(0)
    neg = total - pos
    sp = np.add.reduceat(s_desc * yf, starts) if starts.size else np.zeros(0)
    sall = np.add.reduceat(s_desc, starts) if starts.size else np.zeros(0)
    sep = np.add.reduceat((1.0 - s_desc) ** 2 * yf, starts) if starts.size else np.zeros(0)
    sen = np.add.reduceat(s_desc**2 * (1.0 - yf), starts) if starts.size else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        s_pos = np.where(pos > 0, sp / pos, 0.0)
        s_neg = np.where(neg > 0, (sall - sp) / neg, 0.0)
        se_pos = np.where(pos > 0, sep / pos, 0.0)
        se_neg = np.where(neg > 0, sen / neg, 0.0)
    return ScoreBins(pos[None, :], neg[None, :], s_pos, s_neg, se_pos, se_neg)


def tie_starts(s_desc: np.ndarray) -> np.ndarray:
    """Start position of every run of equal scores in a descending-sorted array."""
    if s_desc.size == 0:
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.r_[True, s_desc[1:] != s_desc[:-1]])


def exact_bins(y_desc: np.ndarray, s_desc: np.ndarray) -> ScoreBins:
    """One bin per distinct score (exact; what scikit-learn's curves use).

    Args:
        y_desc: labels in {0, 1}, sorted by descending score.
        s_desc: the scores, descending.
    """
    return bins_from_sorted(y_desc, s_desc, tie_starts(s_desc))


def quantile_bins(y_desc: np.ndarray, s_desc: np.ndarray, n_bins: int) -> ScoreBins:
    """A per-class quantile histogram with at most ``n_bins`` bins (cell bootstrap).

    Half the cut points are quantiles of the positives' scores and half of the
    negatives', so the bins resolve the top of the ranking where rare positives sit (a
    histogram of all scores would put most positives in a few bins). Cuts are moved to
    the start of their tie run, so equal scores never straddle two bins.
    """
    return bins_from_sorted(y_desc, s_desc, quantile_starts(y_desc, s_desc, n_bins))


def quantile_starts(y_desc: np.ndarray, s_desc: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin start indices (into the descending order) of :func:`quantile_bins`."""
    if s_desc.size == 0:
        return np.zeros(0, dtype=np.intp)
    cuts = [np.zeros(1, dtype=np.intp)]
    half = max(n_bins // 2, 1)
    for cls in (1, 0):
        idx = np.flatnonzero(y_desc == cls)
        if idx.size > 1:
            k = np.unique((np.arange(1, half) * idx.size) // half)
            cuts.append(idx[k[(k > 0) & (k < idx.size)]])
    cand = np.unique(np.concatenate(cuts))
    # snap each cut to the first item of its tie run (−s is ascending)
    return np.unique(np.searchsorted(-s_desc, -s_desc[cand], side="left"))


# ------------------------------------------------------------------ vectorised kernels


def _curve(b: ScoreBins) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tps, fps = b.tps, b.fps
    return tps, fps, tps[:, -1], fps[:, -1]


def _nan_where(values: np.ndarray, bad: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    out[bad] = np.nan
    return out


def average_precision_batch(b: ScoreBins) -> np.ndarray:
    """Average precision per row, ``Σ (ΔR) · precision``; NaN unless both classes.

    Without gold negatives every threshold has precision 1, so the "area" is 1 whatever
    the scores: it says nothing about ranking. scikit-learn returns 1.0 there; this
    harness reports NaN with a reason (one-class data, docs/methods.md §2).
    """
    if b.pos.shape[1] == 0:
        return np.full(b.pos.shape[0], np.nan)
    _, _, p_tot, n_tot = _curve(b)
    num = np.einsum("ij,ij->i", b.pos, b.precision_curve)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _nan_where(num / p_tot, (p_tot <= 0) | (n_tot <= 0))


def auroc_batch(b: ScoreBins) -> np.ndarray:
    """Area under the ROC curve per row (ties count ½); NaN unless both classes."""
    if b.pos.shape[1] == 0:
        return np.full(b.pos.shape[0], np.nan)
    tps, _, p_tot, n_tot = _curve(b)
    # Σ_i neg_i · (positives strictly above i + ½ positives tied with i)
    num = np.einsum("ij,ij->i", b.neg, tps) - 0.5 * np.einsum("ij,ij->i", b.neg, b.pos)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _nan_where(num / (p_tot * n_tot), (p_tot <= 0) | (n_tot <= 0))


def recall_at_precision_batch(b: ScoreBins, target: float = 0.9) -> np.ndarray:
    """Max recall over thresholds with precision ≥ ``target``; NaN unless both classes
    (without negatives precision is 1 at every threshold and the value is trivially 1)."""
    if b.pos.shape[1] == 0:
        return np.full(b.pos.shape[0], np.nan)
    tps, _, p_tot, n_tot = _curve(b)
    ok = b.precision_curve >= target
    if target <= 0:
        ok &= b.flagged > 0
    best = (tps * ok).max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _nan_where(best / p_tot, (p_tot <= 0) | (n_tot <= 0))


def tpr_at_fpr_batch(b: ScoreBins, target: float = 0.01) -> np.ndarray:
    """Max TPR over thresholds with FPR ≤ ``target``; NaN unless both classes."""
    rows = b.pos.shape[0]
    if b.pos.shape[1] == 0:
        return np.full(rows, np.nan)
    tps, fps, p_tot, n_tot = _curve(b)
    # fps / N is non-decreasing, so {FPR ≤ target} is a prefix of the thresholds and the
    # best TPR sits at its end (computed as fps / N, exactly as roc_curve does)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.count_nonzero(fps / n_tot[:, None] <= target, axis=1)
    best = np.where(k > 0, tps[np.arange(rows), np.maximum(k - 1, 0)], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _nan_where(best / p_tot, (p_tot <= 0) | (n_tot <= 0))


# ------------------------------------------------------------------ pure functions


def score_point(name: str, y: Any, score: Any, **params: Any) -> MetricResult:
    """Point value of a score-based metric ``name`` on 1-D ``y``/``score``."""
    yy, ss, _, n_excluded = prepare(y, score)
    assert ss is not None
    _, y_desc, s_desc = sort_desc(yy, ss)
    return point_result(
        get_metric(name),
        exact_bins(y_desc, s_desc),
        n=int(yy.size),
        n_pos=int(yy.sum()),
        n_pred_pos=None,
        n_excluded=n_excluded,
        params=params,
    )


def auprc(y: Any, score: Any) -> MetricResult:
    """Area under the precision–recall curve as average precision (scikit-learn's).

    Args:
        y: labels (1 positive, 0 negative, -1 unknown → excluded).
        score: scores in [0, 1]; NaN → excluded.
    """
    return score_point("auprc", y, score)


def auroc(y: Any, score: Any) -> MetricResult:
    """Area under the ROC curve (ties count ½); NaN unless both classes are present."""
    return score_point("auroc", y, score)


def recall_at_precision(y: Any, score: Any, target: float = 0.9) -> MetricResult:
    """Max recall over thresholds whose precision is ≥ ``target`` (R@P0.9 by default)."""
    return score_point("recall_at_precision", y, score, target=target)


def tpr_at_fpr(y: Any, score: Any, target: float = 0.01) -> MetricResult:
    """Max TPR over thresholds whose FPR is ≤ ``target`` (1% by default)."""
    return score_point("tpr_at_fpr", y, score, target=target)


for _spec in (
    MetricSpec(
        "auprc",
        "higher",
        "score",
        "average precision (area under the PR curve)",
        auprc,
        "ranking",
        average_precision_batch,
        requires=("items", "pos", "neg"),
    ),
    MetricSpec(
        "auroc",
        "higher",
        "score",
        "area under the ROC curve",
        auroc,
        "ranking",
        auroc_batch,
        requires=("items", "pos", "neg"),
    ),
    MetricSpec(
        "recall_at_precision",
        "higher",
        "score",
        "max recall at precision >= target (default 0.9)",
        recall_at_precision,
        "ranking",
        recall_at_precision_batch,
        requires=("items", "pos", "neg"),
        params={"target": 0.9},
    ),
    MetricSpec(
        "tpr_at_fpr",
        "higher",
        "score",
        "max TPR at FPR <= target (default 0.01)",
        tpr_at_fpr,
        "ranking",
        tpr_at_fpr_batch,
        requires=("items", "pos", "neg"),
        params={"target": 0.01},
    ),
):
    register_metric(_spec)
