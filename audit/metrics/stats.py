"""Interval and multiple-testing helpers shared by metrics, analysis, the gate and probes.

* :func:`wilson` — Wilson score interval for a binomial proportion (docs/methods.md §Intervals);
* :func:`z_value` — standard-normal quantile for a confidence level;
* :func:`bh_qvalues` — Benjamini–Hochberg step-up adjusted p-values (docs/methods.md §Multiple testing).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def z_value(conf: float, *, one_sided: bool = False) -> float:
    """Standard-normal quantile for a two-sided (or one-sided) confidence level."""
    from scipy.stats import norm

    return float(norm.ppf(conf if one_sided else 0.5 + conf / 2))


def wilson(k: Any, n: Any, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval ``(low, high)`` for ``k`` successes in ``n`` trials.

    Vectorised over ``k`` and ``n``; NaN where ``n == 0`` (docs/methods.md §Intervals).
    With ``z = z_value(1 - alpha, one_sided=True)`` the low end is a one-sided lower
    confidence bound at level ``1 - alpha``.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        den = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
        lo = np.where(n > 0, np.clip(centre - half, 0, 1), np.nan)
        hi = np.where(n > 0, np.clip(centre + half, 0, 1), np.nan)
    return lo, hi


def bh_qvalues(p: Any) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values); NaN p-values are left out.

    ``q_(i) = min_{j ≥ i} m · p_(j) / j`` over the ``m`` defined p-values sorted
    ascending, capped at 1 (docs/methods.md §Multiple testing).
    """
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.where(~np.isnan(p))[0]
    m = ok.size
    if m == 0:
        return q
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    return q
