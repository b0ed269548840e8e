"""Relabel impact, part (c): expected metric change per enforcement pathway if gold moves
as the judge suggests (docs/methods/change.md §2), paired Poisson-bootstrap intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from audit.schema import NEGATIVE, POSITIVE, UNKNOWN

#: Below this many moved gold labels a bootstrap interval of the change is flagged as
#: unreliable (docs/methods/change.md §2: percentile intervals of a small count under-cover).
MIN_MOVED = 10

#: Metrics of :func:`metric_change` (all need only the confusion counts).
METRICS: tuple[str, ...] = ("recall", "precision", "f1", "fpr")


def _rates(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = tp / (tp + fn)
        prec = tp / (tp + fp)
        f1 = 2 * tp / (2 * tp + fp + fn)
        fpr = fp / (fp + tn)
    return {"recall": rec, "precision": prec, "f1": f1, "fpr": fpr}


def _counts(w: np.ndarray, y: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted confusion counts; ``w`` is (B, n) or (n,), unknown gold (-1) excluded."""
    known = y != UNKNOWN
    pos, neg = known & (y == POSITIVE), known & (y == NEGATIVE)
    tp = w @ (pos & (d == 1)).astype(float)
    fn = w @ (pos & (d == 0)).astype(float)
    fp = w @ (neg & (d == 1)).astype(float)
    tn = w @ (neg & (d == 0)).astype(float)
    return tp, fp, fn, tn


@dataclass
class MetricDelta:
    """One metric before and after the gold moves, with the paired-bootstrap interval."""

    before: float
    after: float
    delta: float
    lo: float
    hi: float
    n_before: int
    n_after: int
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        def f(v: float) -> float | None:
            return None if not math.isfinite(v) else float(v)

        return {
            "before": f(self.before),
            "after": f(self.after),
            "delta": f(self.delta),
            "lo": f(self.lo),
            "hi": f(self.hi),
            "n_before": self.n_before,
            "n_after": self.n_after,
            "reason": self.reason,
        }


def metric_change(
    y_before: np.ndarray,
    y_after: np.ndarray,
    d: np.ndarray,
    *,
    n_boot: int,
    ci: float,
    seed: int,
) -> dict[str, MetricDelta]:
    """Change of each of :data:`METRICS` of decisions ``d`` when gold goes from
    ``y_before`` to ``y_after`` (same items; -1 unknown), with a paired bootstrap.

    Items are resampled with Poisson(1) weights (Hanley & MacGibbon 2006; Oza 2005), the
    same weights for both golds, so the interval reflects the item-level pairing.
    Undefined metrics (no positives, no negatives) are NaN with a reason.
    """
    ones = np.ones_like(d, dtype=float)
    pb = _rates(*_counts(ones, y_before, d))
    pa = _rates(*_counts(ones, y_after, d))
    boots_b: dict[str, np.ndarray] = {}
    boots_a: dict[str, np.ndarray] = {}
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        w = rng.poisson(1.0, size=(n_boot, d.size)).astype(float)
        boots_b = _rates(*_counts(w, y_before, d))
        boots_a = _rates(*_counts(w, y_after, d))
    nb = int((y_before != UNKNOWN).sum())
    na = int((y_after != UNKNOWN).sum())
    n_moved = int((y_before != y_after).sum())
    out: dict[str, MetricDelta] = {}
    alpha = (1.0 - ci) / 2.0
    for m in METRICS:
        before, after = float(pb[m]), float(pa[m])
        delta = after - before
        lo = hi = math.nan
        reason = None
        if not (math.isfinite(before) and math.isfinite(after)):
            reason = {
                "recall": "no gold positives on one side",
                "precision": "no positive decisions on gold-known items",
                "f1": "no positives and no positive decisions",
                "fpr": "no gold negatives on one side",
            }[m]
        elif n_boot > 0:
            diff = boots_a[m] - boots_b[m]
            diff = diff[np.isfinite(diff)]
            if diff.size >= max(10, n_boot // 2):
                lo, hi = (float(x) for x in np.quantile(diff, [alpha, 1.0 - alpha]))
                if 0 < n_moved < MIN_MOVED:
                    # the delta is a small count of moved items: its bootstrap
                    # distribution is lumpy and percentile intervals under-cover
                    reason = f"only {n_moved} item(s) moved: the interval is unreliable"
            else:
                reason = "too few bootstrap resamples with the metric defined"
        else:
            reason = "n_boot = 0: no interval"
        out[m] = MetricDelta(before, after, delta, lo, hi, nb, na, reason)
    return out
