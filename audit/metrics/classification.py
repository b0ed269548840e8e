"""Operating-point metrics from the 2×2 confusion table (docs/methods.md §1).

Precision, recall, F1 and FPR at the configured threshold, plus the descriptive counts
(``support``, ``n_pos``, ``prevalence``). Everything is computed from a
:class:`Confusion` table whose cells may be vectors: the point estimate is one row, a
bootstrap is ``B`` rows (:mod:`audit.metrics.bootstrap` resamples the four cell counts).

Definitions (``tp``... are counts over items with a known label and a non-NaN score):

* ``precision = tp / (tp + fp)``, undefined without predicted positives;
* ``recall = tp / (tp + fn)``, undefined without gold positives;
* ``f1 = 2 tp / (2 tp + fp + fn)`` (scikit-learn's formula), undefined without gold
  positives (recall undefined ⇒ F1 undefined; with gold positives but no predicted
  positives it is a genuine 0);
* ``fpr = fp / (fp + tn)``, undefined without gold negatives;
* ``prevalence = (tp + fn) / n``; ``support = n``; ``n_pos = tp + fn``;
* judge validation (gold as one rater, the decisions as the other): ``cohen_kappa``,
  ``positive_agreement = 2 tp / (2 tp + fp + fn)`` and ``negative_agreement =
  2 tn / (2 tn + fn + fp)`` (specific agreement; Fleiss 1975, Cicchetti & Feinstein
  1990), each NaN when its denominator is 0.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from audit.metrics.registry import (
    MetricResult,
    MetricSpec,
    get_metric,
    point_result,
    prepare,
    register_metric,
)


class Confusion(NamedTuple):
    """Confusion-table cells as float arrays of equal shape (``(B,)`` for a bootstrap)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray

    @property
    def n(self) -> np.ndarray:
        out: np.ndarray = self.tp + self.fp + self.fn + self.tn
        return out

    @property
    def n_pos(self) -> np.ndarray:
        out: np.ndarray = self.tp + self.fn
        return out

    @property
    def n_pred_pos(self) -> np.ndarray:
        out: np.ndarray = self.tp + self.fp
        return out

    @classmethod
    def from_cells(cls, cells: np.ndarray) -> Confusion:
        """From an ``(..., 4)`` array ordered ``tn, fp, fn, tp`` (code ``2·y + pred``)."""
        c = np.asarray(cells, dtype=np.float64)
        return cls(tp=c[..., 3], fp=c[..., 1], fn=c[..., 2], tn=c[..., 0])


def confusion(y: np.ndarray, pred: np.ndarray) -> Confusion:
    """Confusion table (one row) of already-filtered labels in {0, 1} and decisions."""
    code = 2 * y.astype(np.intp) + pred.astype(np.intp)
    return Confusion.from_cells(np.bincount(code, minlength=4)[None, :])


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with ``NaN`` where ``den == 0``."""
    num, den = np.broadcast_arrays(np.asarray(num, float), np.asarray(den, float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


# ------------------------------------------------------------------ vectorised forms


def precision_batch(c: Confusion) -> np.ndarray:
    """``tp / (tp + fp)``; NaN without predicted positives."""
    return _div(c.tp, c.tp + c.fp)


def recall_batch(c: Confusion) -> np.ndarray:
    """``tp / (tp + fn)`` (= TPR); NaN without gold positives."""
    return _div(c.tp, c.tp + c.fn)


def f1_batch(c: Confusion) -> np.ndarray:
    """``2 tp / (2 tp + fp + fn)``; NaN without gold positives."""
    out = _div(2 * c.tp, 2 * c.tp + c.fp + c.fn)
    out[c.n_pos == 0] = np.nan
    return out


def fpr_batch(c: Confusion) -> np.ndarray:
    """``fp / (fp + tn)``; NaN without gold negatives."""
    return _div(c.fp, c.fp + c.tn)


def cohen_kappa_batch(c: Confusion) -> np.ndarray:
    """Cohen's κ between decisions and gold, ``(p_o − p_e) / (1 − p_e)``.

    Chance-corrected agreement for judge validation (docs/methods.md §5; Cohen 1960): with
    rare violations raw agreement can be 0.97 beside κ 0.39. NaN when ``p_e = 1``
    (both raters constant). Positive-specific agreement ``2a / (2a + b + c)`` with
    gold as one rater is exactly ``f1``.
    """
    n = np.asarray(c.tp + c.fp + c.fn + c.tn, dtype=np.float64)
    po = _div(c.tp + c.tn, n)
    pe = _div((c.tp + c.fp) * (c.tp + c.fn) + (c.fn + c.tn) * (c.fp + c.tn), n * n)
    return _div(po - pe, 1.0 - pe + 0.0 * po)


def positive_agreement_batch(c: Confusion) -> np.ndarray:
    """Positive-specific agreement ``2 tp / (2 tp + fp + fn)``; NaN when ``tp = fp = fn = 0``.

    Same formula as F1; it differs from :func:`f1_batch` only without gold positives,
    where F1 is NaN but the agreement is a genuine 0 if the judge flagged anything.
    """
    return _div(2 * c.tp, 2 * c.tp + c.fp + c.fn)


def negative_agreement_batch(c: Confusion) -> np.ndarray:
    """Negative-specific agreement ``2 tn / (2 tn + fn + fp)``; NaN when ``tn = fn = fp = 0``."""
    return _div(2 * c.tn, 2 * c.tn + c.fn + c.fp)


def support_batch(c: Confusion) -> np.ndarray:
    """Items with a known label and a score."""
    return np.asarray(c.n, dtype=np.float64)


def n_pos_batch(c: Confusion) -> np.ndarray:
    """Gold positives among them."""
    return np.asarray(c.n_pos, dtype=np.float64)


def prevalence_batch(c: Confusion) -> np.ndarray:
    """``n_pos / n``; NaN without items."""
    return _div(c.n_pos, c.n)


# ------------------------------------------------------------------ pure functions


def _point(
    name: str, y: Any, pred: Any | None, score: Any | None, *, warn: bool = True
) -> MetricResult:
    yy, _, pp, n_excluded = prepare(y, score, pred)
    if pp is None:
        pp = np.zeros(yy.shape, dtype=bool)
    c = confusion(yy, pp)
    return point_result(
        get_metric(name),
        c,
        n=int(yy.size),
        n_pos=int(c.n_pos[0]),
        n_pred_pos=int(c.n_pred_pos[0]),
        n_excluded=n_excluded,
        warn=warn,
    )


def precision(y: Any, pred: Any, score: Any | None = None) -> MetricResult:
    """Precision at the threshold, ``tp / (tp + fp)``.

    Args:
        y: labels (1 positive, 0 negative, -1 unknown → excluded).
        pred: bool decisions.
        score: optional scores; rows with a NaN score are excluded.

    Returns:
        :class:`MetricResult`; NaN with a reason when nothing was predicted positive.
    """
    return _point("precision", y, pred, score)


def recall(y: Any, pred: Any, score: Any | None = None) -> MetricResult:
    """Recall (TPR) at the threshold, ``tp / (tp + fn)``; NaN without gold positives."""
    return _point("recall", y, pred, score)


def cohen_kappa(y: Any, pred: Any, score: Any | None = None) -> MetricResult:
    """Cohen's κ between decisions and gold labels; NaN when chance agreement is 1."""
    return _point("cohen_kappa", y, pred, score)


def positive_agreement(y: Any, pred: Any, score: Any | None = None) -> MetricResult:
    """Positive-specific agreement between decisions and gold, ``2 tp / (2 tp + fp + fn)``.

    The proportion of specific agreement on the positive class (Fleiss 1975, "Measuring
    agreement between two judges on the presence or absence of a trait", Biometrics 31;
    Cicchetti & Feinstein 1990, "High agreement but low kappa: II. Resolving the
    paradoxes", J Clin Epidemiol 43): the agreement on "violating" given that at least one
    rater (gold or judge) said so. Reported beside κ because κ collapses with rare
    positives even when both specific agreements are high.

    It is the F1 formula: it equals :func:`f1` wherever gold positives exist (and
    scikit-learn's ``f1_score(..., zero_division=nan)`` everywhere). Without gold
    positives F1 is NaN here, while the agreement is a genuine 0 if the judge flagged
    anything. NaN with a reason (and an :class:`UndefinedMetricWarning`) when
    ``tp = fp = fn = 0``: no gold positives and no predicted positives.
    """
    return _point("positive_agreement", y, pred, score)


def negative_agreement(y: Any, pred: Any, score: Any | None = None) -> MetricResult:
    """Negative-specific agreement between decisions and gold, ``2 tn / (2 tn + fn + fp)``.

    The proportion of specific agreement on the negative class (Fleiss 1975; Cicchetti &
    Feinstein 1990, "High agreement but low kappa: II", J Clin Epidemiol 43): F1 of the
    negative class, i.e. scikit-learn's ``f1_score(..., pos_label=0)``. NaN with a reason
    (and an :class:`UndefinedMetricWarning`) when ``tn = fn = fp = 0``: no gold negatives
    and no predicted negatives.
    """
    return _point("negative_agreement", y, pred, score)


def f1(y: Any, pred: Any, score: Any | None = None) -> MetricResult:
    """F1 at the threshold, ``2 tp / (2 tp + fp + fn)``; NaN without gold positives."""
    return _point("f1", y, pred, score)


def fpr(y: Any, pred: Any, score: Any | None = None) -> MetricResult:
    """False-positive rate at the threshold, ``fp / (fp + tn)``; NaN without negatives."""
    return _point("fpr", y, pred, score)


def support(y: Any, score: Any | None = None) -> MetricResult:
    """Number of items with a known label and a non-NaN score (the denominator ``n``)."""
    return _point("support", y, None, score)


def n_pos(y: Any, score: Any | None = None) -> MetricResult:
    """Number of gold positives among the scored items with a known label."""
    return _point("n_pos", y, None, score)


def prevalence(y: Any, score: Any | None = None) -> MetricResult:
    """Share of gold positives among the scored items with a known label."""
    return _point("prevalence", y, None, score)


_SPECS = [
    MetricSpec(
        "support",
        "none",
        "score",
        "items with a known label and a score (n)",
        support,
        "count",
        support_batch,
        requires=(),
    ),
    MetricSpec(
        "n_pos",
        "none",
        "score",
        "gold positives among the scored items",
        n_pos,
        "count",
        n_pos_batch,
        requires=(),
    ),
    MetricSpec(
        "prevalence",
        "none",
        "score",
        "share of gold positives among the scored items",
        prevalence,
        "confusion",
        prevalence_batch,
    ),
    MetricSpec(
        "precision",
        "higher",
        "pred",
        "tp / (tp + fp) at the threshold",
        precision,
        "confusion",
        precision_batch,
        requires=("items", "pred_pos"),
    ),
    MetricSpec(
        "recall",
        "higher",
        "pred",
        "tp / (tp + fn) at the threshold (TPR)",
        recall,
        "confusion",
        recall_batch,
        requires=("items", "pos"),
    ),
    MetricSpec(
        "f1",
        "higher",
        "pred",
        "2 tp / (2 tp + fp + fn) at the threshold",
        f1,
        "confusion",
        f1_batch,
        requires=("items", "pos"),
    ),
    MetricSpec(
        "cohen_kappa",
        "higher",
        "pred",
        "Cohen's kappa: chance-corrected agreement of decisions with gold",
        cohen_kappa,
        "confusion",
        cohen_kappa_batch,
        requires=("items",),
    ),
    MetricSpec(
        "positive_agreement",
        "higher",
        "pred",
        "positive-specific agreement 2 tp / (2 tp + fp + fn) of decisions with gold "
        "(Cicchetti & Feinstein 1990); equals F1 where gold positives exist",
        positive_agreement,
        "confusion",
        positive_agreement_batch,
        requires=("items", "pos", "pred_pos"),
    ),
    MetricSpec(
        "negative_agreement",
        "higher",
        "pred",
        "negative-specific agreement 2 tn / (2 tn + fn + fp) of decisions with gold "
        "(Cicchetti & Feinstein 1990); F1 of the negative class",
        negative_agreement,
        "confusion",
        negative_agreement_batch,
        requires=("items", "neg"),
    ),
    MetricSpec(
        "fpr",
        "lower",
        "pred",
        "fp / (fp + tn) at the threshold",
        fpr,
        "confusion",
        fpr_batch,
        requires=("items", "neg"),
    ),
]

for _spec in _SPECS:
    register_metric(_spec)
