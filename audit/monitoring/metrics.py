"""Drift metrics as pure, vectorised functions over arrays (docs/methods.md §7).

* :func:`reference_bins` — bin edges at the reference's quantiles (stored with it);
* :func:`bin_counts` — counts of a sample in those bins;
* :func:`psi` — population stability index with ε-floored empty bins, and its χ² p-value
  under no drift (Yurdakul 2018);
* :func:`js_distance` — Jensen–Shannon distance, base 2 (Lin 1991; Endres & Schindelin 2003);
* :func:`ks_test` — two-sample Kolmogorov–Smirnov D and its asymptotic p-value
  (Smirnov 1948);
* :func:`rate_change` — difference of two proportions with the Newcombe hybrid-score
  interval (Newcombe 1998, method 10) and a two-proportion z-test p-value.

Formulas, the ε and tie handling are written up in ``docs/methods/drift.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from audit.monitoring._ecdf import SampleIndex, ks_statistic

DEFAULT_EPSILON = 1e-4
"""Floor for an empty bin's proportion in PSI (``ln(0)`` is undefined)."""


@dataclass(frozen=True)
class Bins:
    """Reference-quantile bins: right-closed intervals ``(e_{j-1}, e_j]``.

    Attributes:
        edges: the interior edges, strictly increasing (duplicates from ties removed);
            the outer edges are ``−∞`` and ``+∞`` so every current score has a bin.
        requested: the number of bins asked for; ``len(edges) + 1`` may be smaller
            when the reference has ties (e.g. many exact zeros).
    """

    edges: tuple[float, ...]
    requested: int

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 1


def reference_bins(ref: SampleIndex, n_bins: int) -> Bins:
    """Edges at the reference's ``j / n_bins`` quantiles (inverted CDF), ``j = 1..B−1``.

    Repeated quantiles (ties, e.g. 40% exact zeros) are merged into one edge, so tied
    mass stays in one bin and the bin count drops. An edge may equal the reference
    maximum (heavy ties at the top): the bin above it is then empty in the reference and
    any current mass there (outside the reference's support) shows as drift, which is
    what it is; an all-tied reference keeps its single edge for the same reason.
    """
    if n_bins < 2:
        raise ValueError(f"n_bins must be >= 2, got {n_bins}")
    if ref.n == 0:
        return Bins((), n_bins)
    q = ref.quantiles(np.arange(1, n_bins) / n_bins)
    return Bins(tuple(float(e) for e in np.unique(q)), n_bins)


def bin_counts(sample: SampleIndex, bins: Bins) -> NDArray[np.int64]:
    """Counts of ``sample`` in each bin of ``bins`` (right-closed), exact."""
    if not bins.edges:
        return np.array([sample.n], dtype=np.int64)
    e = np.asarray(bins.edges, dtype=np.float64)
    sub, other = sample.subset(np.unique(sample.cell_of(e)))
    le = sample.count_le(e, sub, other)
    cum = np.concatenate(([0], le, [sample.n]))
    out: NDArray[np.int64] = np.diff(cum).astype(np.int64)
    return out


def proportions(counts: NDArray[np.int64], epsilon: float) -> NDArray[np.float64]:
    """Proportions with empty bins raised to ``epsilon`` and renormalised to sum to 1."""
    total = counts.sum()
    if total == 0:
        return np.full(counts.shape, np.nan)
    p = counts / total
    p = np.where(counts == 0, epsilon, p)
    out: NDArray[np.float64] = p / p.sum()
    return out


def psi(
    ref_counts: NDArray[np.int64], cur_counts: NDArray[np.int64], epsilon: float = DEFAULT_EPSILON
) -> tuple[float, float]:
    """Population stability index and its p-value under no drift.

    ``PSI = Σ_j (q_j − p_j) ln(q_j / p_j)`` over ε-floored proportions ``p`` (reference)
    and ``q`` (current). Under no drift ``PSI / (1/n + 1/m)`` is approximately
    χ² with ``B − 1`` degrees of freedom (Yurdakul 2018), which gives the p-value.

    Returns:
        ``(psi, p_value)``; both NaN when either sample is empty, the p-value NaN with a
        single bin (nothing to compare).
    """
    n, m = int(ref_counts.sum()), int(cur_counts.sum())
    if n == 0 or m == 0:
        return math.nan, math.nan
    p = proportions(ref_counts, epsilon)
    q = proportions(cur_counts, epsilon)
    value = float(np.sum((q - p) * np.log(q / p)))
    k = ref_counts.size
    if k < 2:
        return value, math.nan
    from scipy.stats import chi2

    return value, float(chi2.sf(value / (1.0 / n + 1.0 / m), k - 1))


def js_distance(ref_counts: NDArray[np.int64], cur_counts: NDArray[np.int64]) -> float:
    """Jensen–Shannon distance (square root of the divergence, base 2, in [0, 1]).

    Computed on raw proportions: the divergence is finite with empty bins
    (``0 · log 0 = 0``), so no smoothing is needed. NaN when either sample is empty.
    """
    n, m = ref_counts.sum(), cur_counts.sum()
    if n == 0 or m == 0:
        return math.nan
    p, q = ref_counts / n, cur_counts / m
    mid = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / mid), 0.0)
        kq = np.where(q > 0, q * np.log2(q / mid), 0.0)
    div = max(float(np.sum(kp) + np.sum(kq)) / 2, 0.0)  # rounding can give -1e-17
    return math.sqrt(min(div, 1.0))


def ks_test(ref: SampleIndex, cur: SampleIndex) -> tuple[float, float]:
    """Two-sample KS statistic ``D`` (exact) and its asymptotic two-sided p-value.

    The p-value is ``kstwo.sf(D, round(n·m/(n+m)))``, the same large-sample rule as
    ``scipy.stats.ks_2samp(method="asymp")``. At production sizes every p-value is tiny:
    ``D`` is the effect size, the p-value only a guard for small samples.
    """
    d = ks_statistic(ref, cur)
    return d, ks_pvalue(d, ref.n, cur.n)


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Asymptotic two-sided KS p-value ``kstwo.sf(D, round(n·m/(n+m)))``; NaN if undefined."""
    if math.isnan(d) or n == 0 or m == 0:
        return math.nan
    from scipy.stats import kstwo

    en = round(n * m / (n + m))
    return float(np.clip(kstwo.sf(d, max(en, 1)), 0.0, 1.0))


@dataclass(frozen=True)
class RateDiff:
    """``p_cur − p_ref`` with a Newcombe interval and a z-test p-value (NaN if undefined)."""

    ref: float
    cur: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    reason: str | None


def rate_change(k_ref: int, n_ref: int, k_cur: int, n_cur: int, conf: float) -> RateDiff:
    """Change in a proportion between reference and current.

    Interval: Newcombe's hybrid score method (method 10 in Newcombe 1998, "Interval
    estimation for the difference between independent proportions", Stat. Med. 17) from
    the two Wilson intervals ``(l_i, u_i)``::

        δ = p₂ − p₁,  L = δ − √((p₂ − l₂)² + (u₁ − p₁)²),  U = δ + √((u₂ − p₂)² + (p₁ − l₁)²)

    p-value: pooled two-proportion z-test (NaN when the pooled rate is 0 or 1: no
    variation, nothing to test; the interval is still reported).
    """
    from audit.metrics.stats import wilson, z_value

    if n_ref == 0 or n_cur == 0:
        side = "reference" if n_ref == 0 else "current"
        nan = math.nan
        return RateDiff(
            k_ref / n_ref if n_ref else nan,
            k_cur / n_cur if n_cur else nan,
            nan,
            nan,
            nan,
            nan,
            f"no items with a value in the {side}",
        )
    z = z_value(conf)
    p1, p2 = k_ref / n_ref, k_cur / n_cur
    lo1, hi1 = (float(v) for v in wilson(k_ref, n_ref, z))
    lo2, hi2 = (float(v) for v in wilson(k_cur, n_cur, z))
    d = p2 - p1
    low = d - math.sqrt((p2 - lo2) ** 2 + (hi1 - p1) ** 2)
    high = d + math.sqrt((hi2 - p2) ** 2 + (p1 - lo1) ** 2)
    pooled = (k_ref + k_cur) / (n_ref + n_cur)
    if pooled in (0.0, 1.0):
        pv, reason = math.nan, "no variation in either sample: nothing to test"
    else:
        from scipy.stats import norm

        se = math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
        pv, reason = float(2 * norm.sf(abs(d) / se)), None
    return RateDiff(p1, p2, d, low, high, pv, reason)
