"""Design-based estimators for a stratified two-frame sample (numpy only).

Every production metric is a ratio of two Horvitz–Thompson totals,
``theta = T(a) / T(b)``, of per-item variables built from the label ``y``:

================  ==================  ==================
metric            a                   b
================  ==================  ==================
precision         y · d · A           d · A
recall            y · d · A           y · d
prevalence        y · d               d
prevalence_views  v · y · d           v · d
================  ==================  ==================

(``A``: the item is in the actioned frame, ``d``: it is in the reporting domain,
``v``: its views). Variances are by linearisation, ``z = (a − theta b) / T(b)``,
summed over strata with the finite-population correction; intervals on the logit
scale; a Rao–Wu rescaled stratified bootstrap; and PPI++ (power-tuned, clipped λ)
when a reference labeller covers a larger, nested sample. Formulas and citations:
docs/methods/production.md §4–§6.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class StratifiedSample:
    """The sampled units of one reporting cell.

    Attributes:
        N: (H,) stratum sizes N_h.
        m: (H,) reference-sample sizes m_h (0 where no reference labels).
        h: (u,) stratum index of each unit.
        y: (u,) human label in {0, 1}; NaN where the unit has no human label.
        f: (u,) reference label or score in [0, 1]; NaN where none.
    """

    N: np.ndarray
    m: np.ndarray
    h: np.ndarray
    y: np.ndarray
    f: np.ndarray

    @property
    def labelled(self) -> np.ndarray:
        """Mask of units with a human label."""
        return np.asarray(~np.isnan(self.y), dtype=bool)

    @property
    def n(self) -> np.ndarray:
        """(H,) human-labelled count per stratum."""
        return np.bincount(self.h[self.labelled], minlength=len(self.N)).astype(np.float64)


@dataclass(frozen=True)
class Ratio:
    """``theta = T(a) / T(b)`` with ``a = coef_a · y^a_y`` and ``b = coef_b · y^b_y``."""

    coef_a: np.ndarray
    a_y: bool
    coef_b: np.ndarray
    b_y: bool

    def a(self, y: np.ndarray) -> np.ndarray:
        return self.coef_a * y if self.a_y else self.coef_a

    def b(self, y: np.ndarray) -> np.ndarray:
        return self.coef_b * y if self.b_y else self.coef_b


@dataclass(frozen=True)
class Interval:
    """A point estimate with its standard error and interval (NaN + reason if undefined)."""

    value: float
    se: float
    ci_low: float
    ci_high: float
    reason: str | None = None
    boundary: bool = False

    @classmethod
    def undefined(cls, reason: str) -> Interval:
        nan = float("nan")
        return cls(nan, nan, nan, nan, reason)


def _stratum_means(h: np.ndarray, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    s = np.bincount(h, weights=x, minlength=len(n))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(s / n, dtype=np.float64)


def _stratum_vars(h: np.ndarray, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Unbiased within-stratum variances (NaN where n_h < 2)."""
    mean = _stratum_means(h, x, n)
    dev = x - mean[h]
    ss = np.bincount(h, weights=dev * dev, minlength=len(n))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 2, ss / (n - 1), np.nan)


def _stratum_cov(h: np.ndarray, x: np.ndarray, w: np.ndarray, n: np.ndarray) -> np.ndarray:
    mx = _stratum_means(h, x, n)
    mw = _stratum_means(h, w, n)
    s = np.bincount(h, weights=(x - mx[h]) * (w - mw[h]), minlength=len(n))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 2, s / (n - 1), np.nan)


def fill_singletons(s2: np.ndarray, n: np.ndarray, N: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Variance of singleton strata (n_h = 1 < N_h) borrowed from their frame.

    A single unit gives no within-stratum variance; leaving it out under-reports
    the variance. We use the pooled within-stratum variance of the other strata
    of the same frame (the collapsed-strata idea, Cochran 1977 §5A.12).
    Strata sampled in full (n_h = N_h) need no variance.
    """
    out = s2.copy()
    for g in np.unique(group):
        sel = (group == g) & (n >= 2)
        dfree = n[sel] - 1
        pooled = float(np.sum(dfree * s2[sel]) / np.sum(dfree)) if dfree.sum() > 0 else math.nan
        fix = (group == g) & (n == 1) & (N > 1)
        out[fix] = pooled
    out[(n >= 1) & (n >= N)] = 0.0
    return out


def ht_total(s: StratifiedSample, x: np.ndarray) -> float:
    """Horvitz–Thompson total Σ_h N_h x̄_h over the human-labelled units."""
    L = s.labelled
    n = s.n
    mean = _stratum_means(s.h[L], x[L], n)
    live = s.N > 0
    return float(np.sum(s.N[live] * mean[live]))


def pure_floor(s: StratifiedSample, s2: np.ndarray, dz: np.ndarray | None) -> np.ndarray:
    """Variance floor for strata whose labels are all equal (all 0 or all 1).

    A stratum with violators too rare to show up in its n_h labels (the bulk of
    the not-actioned frame) has s²_h = 0, so it adds nothing to the variance
    although it holds violators; normal intervals then under-cover (METHODS §6:
    "< 5 expected positives"). For such strata (2 <= n_h < N_h) the label is given
    the Bernoulli variance of p̃_h = 0.5/(n_h + 1), a half pseudo-positive
    (cf. the add-half adjustments of Agresti & Coull 1998), times the mean squared
    change ``dz`` of the linearised variable when a label flips 0 → 1.
    """
    if dz is None:
        return s2
    L = s.labelled
    n = s.n
    y = np.nan_to_num(s.y[L])
    hL = s.h[L]
    H = len(s.N)
    lo = np.full(H, np.inf)
    hi = np.full(H, -np.inf)
    np.minimum.at(lo, hL, y)
    np.maximum.at(hi, hL, y)
    pure = (n >= 2) & (n < s.N) & (lo == hi)
    if not pure.any():
        return s2
    pt = 0.5 / (n + 1)
    mdz2 = _stratum_means(hL, dz[L] ** 2, n)
    out = s2.copy()
    out[pure] = np.maximum(s2[pure], (pt * (1 - pt) * mdz2)[pure])
    return out


def stratum_df(h: np.ndarray, x: np.ndarray, n: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Degrees of freedom behind each stratum's variance s²_h of ``x``.

    Satterthwaite's ν matches a scaled χ² to the first two moments of the variance
    estimate, ν_h = 2 S⁴ / Var(s²_h); under normality that is n_h − 1. Where ``x``
    takes more than two values in the stratum (view-weighted totals, PPI residuals:
    mostly near 0 with a few reference disagreements) its variance estimate carries
    noise of its own, set by the fourth moment: Var(s²) = (μ₄ − σ⁴ (n − 3)/(n − 1))/n,
    estimated with the sample moments, ν_h clipped to [1, n_h − 1]. A two-valued
    ``x`` (a 0/1 label times constants) has s² a function of its mean, so the
    moment ν, which assumes independent noise in s², does not apply: it keeps
    n_h − 1 (and measured too wide, 0.961 for precision, methods §7). A singleton
    stratum gets the pooled n − 1 of its frame, whose variance it borrows.
    Methods: docs/methods/production.md §4.2.
    """
    H = len(n)
    base = np.maximum(n - 1, 0.0)
    mean = _stratum_means(h, x, n)
    d = x - mean[h]
    lo, hi = np.full(H, np.inf), np.full(H, -np.inf)
    np.minimum.at(lo, h, x)
    np.maximum.at(hi, h, x)
    inner = np.bincount(h, weights=(x > lo[h] + 1e-12) & (x < hi[h] - 1e-12), minlength=H)
    with np.errstate(invalid="ignore", divide="ignore"):
        m2 = np.bincount(h, weights=d * d, minlength=H) / n
        m4 = np.bincount(h, weights=d**4, minlength=H) / n
        var_s2 = (m4 - m2 * m2 * (n - 3) / (n - 1)) / n
        nu = np.where((var_s2 > 0) & (inner > 0), 2 * (m2 * n / (n - 1)) ** 2 / var_s2, base)
    df = np.asarray(np.clip(np.nan_to_num(nu, nan=1.0), 1.0, np.maximum(base, 1.0)), np.float64)
    df[n < 2] = 0.0
    for g in np.unique(group):
        sel = group == g
        df[sel & (n == 1)] = float(base[sel].sum())
    return df


def satterthwaite_df(terms: np.ndarray, df: np.ndarray) -> float:
    """Effective degrees of freedom of a sum of independent variance terms,
    ν = (Σ g_h)² / Σ g_h²/ν_h (Satterthwaite 1946; Cochran 1977 §5.4, eq. 5.16).

    Terms that are 0 (census strata) or have no degrees of freedom drop out; with no
    term left the variance is exact or 0 and ν is infinite (the normal quantile).
    """
    live = (terms > 0) & (df > 0) & np.isfinite(terms)
    if not live.any():
        return math.inf
    den = float(np.sum(terms[live] ** 2 / df[live]))
    return float(np.sum(terms[live]) ** 2 / den) if den > 0 else math.inf


def t_quantile(z: float, df: float) -> float:
    """The Student-t quantile at the level of the normal quantile ``z`` (two-sided),
    with ``df`` degrees of freedom; ``z`` itself when df is infinite."""
    if not math.isfinite(df):
        return z
    from scipy import special

    return float(special.stdtrit(max(df, 1.0), special.ndtr(z)))


def ht_var_terms(
    s: StratifiedSample, x: np.ndarray, group: np.ndarray, dz: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-stratum terms N_h² (1 − f_h) s²_h / n_h (0 for empty strata) and their degrees
    of freedom, with singleton strata filled and pure strata floored (see
    :func:`fill_singletons`, :func:`pure_floor`)."""
    L = s.labelled
    n = s.n
    live = s.N > 0
    s2 = fill_singletons(_stratum_vars(s.h[L], x[L], n), n, s.N, group)
    s2 = pure_floor(s, s2, dz)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = s.N**2 * (1 - n / s.N) * s2 / n
    return np.where(live, terms, 0.0), stratum_df(s.h[L], x[L], n, group)


def ht_var(
    s: StratifiedSample, x: np.ndarray, group: np.ndarray, dz: np.ndarray | None = None
) -> float:
    """Σ_h N_h² (1 − f_h) s²_h / n_h (see :func:`ht_var_terms`)."""
    return float(np.sum(ht_var_terms(s, x, group, dz)[0]))


def logit_interval(
    theta: float, var: float, n_eff: float, census: bool, z: float = Z95
) -> Interval:
    """Interval for a proportion built on the logit scale (delta method).

    At 0 or 1 the logit is undefined: a census gives the exact value; otherwise a
    Wilson interval at the domain's labelled count (design effect 1), flagged.
    """
    if not math.isfinite(theta) or not math.isfinite(var):
        return Interval.undefined("variance undefined")
    se = math.sqrt(max(var, 0.0))
    if census and var <= 1e-300:
        return Interval(theta, 0.0, theta, theta)
    if 0.0 < theta < 1.0 and se > 0:
        lg = math.log(theta / (1 - theta))
        sl = se / (theta * (1 - theta))
        lo = 1 / (1 + math.exp(-(lg - z * sl)))
        hi = 1 / (1 + math.exp(-(lg + z * sl)))
        return Interval(theta, se, lo, hi)
    if n_eff <= 0:
        return Interval.undefined("no labelled items in the domain")
    p = min(max(theta, 0.0), 1.0)
    denom = 1 + z * z / n_eff
    centre = (p + z * z / (2 * n_eff)) / denom
    half = z * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff * n_eff)) / denom
    return Interval(theta, se, max(0.0, centre - half), min(1.0, centre + half), boundary=True)


def _missing_strata(s: StratifiedSample) -> str | None:
    empty = np.flatnonzero((s.N > 0) & (s.n == 0))
    if empty.size:
        return f"{empty.size} stratum/strata with N_h > 0 have no human labels (e.g. index {int(empty[0])})"
    return None


def classical(
    s: StratifiedSample, r: Ratio, group: np.ndarray, z: float = Z95, use_t: bool = True
) -> Interval:
    """Ratio of HT totals with a linearised, logit-scale interval.

    The quantile is Student-t at the Satterthwaite degrees of freedom of the
    stratified variance (``use_t``; docs/methods/production.md §4.2), which matters
    when the variance sits in a few small strata (view bands) and is the normal
    quantile for large ones."""
    why = _missing_strata(s)
    if why:
        return Interval.undefined(why)
    y = np.nan_to_num(s.y)
    ta, tb = ht_total(s, r.a(y)), ht_total(s, r.b(y))
    if tb <= 0:
        return Interval.undefined("denominator total is 0 (no items of this kind in the sample)")
    theta = ta / tb
    u = (r.a(y) - theta * r.b(y)) / tb
    dz = (r.coef_a * float(r.a_y) - theta * r.coef_b * float(r.b_y)) / tb
    terms, df = ht_var_terms(s, u, group, dz)
    var = float(np.sum(terms))
    L = s.labelled
    n_eff = float(np.count_nonzero(r.b(y)[L]))
    census = bool(np.all(s.n[s.N > 0] >= s.N[s.N > 0]))
    nu = satterthwaite_df(terms, df) if use_t else math.inf
    return logit_interval(theta, var, n_eff, census, t_quantile(z, nu))


@dataclass(frozen=True)
class PPIResult:
    """PPI++ estimate, its tuned λ and the effective sample-size gain over classical."""

    interval: Interval
    lam: float
    ess_gain: float


# Over 80 lines on purpose: one estimator read top to bottom (λ tuning, the ratio, its
# two-phase variance, METHODS §6.7); split up, the derivation no longer reads as one.
def _ppi_sample(s: StratifiedSample, classical_result: Interval) -> StratifiedSample | PPIResult:
    """The nested sample PPI works on, or the undefined result saying why there is none.

    Human-labelled items the reference could not label (its per-item errors) break the
    nesting: PPI uses the units that have both, still an SRS of the stratum if the
    failures are missing at random within it (docs §5); the classical estimate keeps
    them all.
    """
    nan = float("nan")
    if classical_result.reason is not None and "no human labels" in classical_result.reason:
        return PPIResult(classical_result, nan, nan)
    why = _missing_strata(s)
    if why:
        return PPIResult(Interval.undefined(why), nan, nan)
    R = ~np.isnan(s.f)
    if not R.any():
        return PPIResult(Interval.undefined("no reference labels"), nan, nan)
    if np.any(s.labelled & ~R):
        s = StratifiedSample(N=s.N, m=s.m, h=s.h, y=np.where(R, s.y, nan), f=s.f)
        why = _missing_strata(s)
        if why:
            return PPIResult(Interval.undefined(f"{why} with a reference label"), nan, nan)
    return s


def ppi(
    s: StratifiedSample,
    r: Ratio,
    group: np.ndarray,
    classical_result: Interval,
    z: float = Z95,
    var_floor: float = 1.0,
    use_t: bool = True,
) -> PPIResult:
    """Stratified two-phase PPI++ for a ratio of totals.

    Per stratum, humans label an SRS of n_h of the m_h reference-labelled units
    (themselves an SRS of N_h). The total is Σ N_h [λ mean_m(a_f) + mean_n(a − λ a_f)].
    λ is tuned once per cell to minimise the variance (PPI++, Angelopoulos et al.
    2023) and clipped to [0, 1]. ``var_floor`` adds a pseudo-count to each
    stratum's residual variance, ``(n_h s²_res + c s²_u) / (n_h + c)``, which keeps a
    tuned λ from making tiny strata anti-conservative (METHODS §6.7).
    """
    nan = float("nan")
    nested = _ppi_sample(s, classical_result)
    if isinstance(nested, PPIResult):
        return nested
    s = nested
    R = ~np.isnan(s.f)
    L = s.labelled
    H = len(s.N)
    y = np.nan_to_num(s.y)
    f = np.nan_to_num(s.f)
    n = s.n
    m = np.bincount(s.h[R], minlength=H).astype(np.float64)
    live = s.N > 0

    def total(x_ref: np.ndarray, x_res: np.ndarray) -> float:
        # λ-weighted reference mean over the m-sample + residual mean over the n-sample
        mr = _stratum_means(s.h[R], x_ref[R], m)
        mn = _stratum_means(s.h[L], x_res[L], n)
        return float(np.sum((s.N * (mr + mn))[live]))

    lam = _tuned_lambda(s, r, classical_result.value, y, f, n, m)
    if lam is None:
        return PPIResult(Interval.undefined("classical estimate undefined"), nan, nan)
    hL = s.h[L]
    ta = total(lam * r.a(f), r.a(y) - lam * r.a(f))
    tb = total(lam * r.b(f), r.b(y) - lam * r.b(f))
    if tb <= 0:
        return PPIResult(Interval.undefined("denominator total is 0"), lam, nan)
    theta = ta / tb
    u = (r.a(y) - theta * r.b(y)) / tb
    uf = (r.a(f) - theta * r.b(f)) / tb
    s2u = fill_singletons(_stratum_vars(hL, u[L], n), n, s.N, group)
    s2u = pure_floor(s, s2u, (r.coef_a * float(r.a_y) - theta * r.coef_b * float(r.b_y)) / tb)
    res = u - lam * uf
    s2r = fill_singletons(_stratum_vars(hL, res[L], n), n, s.N, group)
    # pseudo-count floor: c pseudo-observations at the classical variance s²_u, so a
    # residual variance estimated from a handful of units cannot collapse to ~0
    with np.errstate(invalid="ignore", divide="ignore"):
        s2r = (n * s2r + var_floor * s2u) / (n + var_floor)
    with np.errstate(invalid="ignore", divide="ignore"):
        v1 = np.where(m < s.N, s.N**2 * (1 - m / s.N) * s2u / m, 0.0)
        v2 = np.where(n < m, s.N**2 * (1 - n / m) * s2r / n, 0.0)
    v1, v2 = np.where(live, v1, 0.0), np.where(live, v2, 0.0)
    var = float(np.sum(v1 + v2))
    n_eff = float(np.count_nonzero(r.b(y)[L]))
    census = bool(np.all(n[live] >= s.N[live]))
    # both phases' variances come from the n_h human labels: s²_u (first phase) and
    # the residual s²_res (second), each with its own effective df (stratum_df)
    df = np.concatenate([stratum_df(hL, u[L], n, group), stratum_df(hL, res[L], n, group)])
    nu = satterthwaite_df(np.concatenate([v1, v2]), df) if use_t else math.inf
    iv = logit_interval(theta, var, n_eff, census, t_quantile(z, nu))
    cv = classical_result.se**2
    gain = cv / var if var > 0 and math.isfinite(cv) else nan
    return PPIResult(iv, lam, gain)


def _tuned_lambda(
    s: StratifiedSample,
    r: Ratio,
    theta0: float,
    y: np.ndarray,
    f: np.ndarray,
    n: np.ndarray,
    m: np.ndarray,
) -> float | None:
    """PPI++ power-tuning λ for a ratio, clipped to [0, 1] (None: no classical θ).

    λ minimises the two-phase variance Σ c_h (s²_u − 2λ cov_h + λ² s²_f) of the
    linearised variable u = a − θ₀ b at the classical ``theta0`` (recomputed from
    the human labels when the classical interval has none), with c_h the
    second-phase weight N_h² (1 − n_h/m_h) / n_h (docs/methods/production.md).
    """
    L = s.labelled
    live = s.N > 0
    if not math.isfinite(theta0):
        ya = ht_total(s, r.a(y))
        yb = ht_total(s, r.b(y))
        theta0 = ya / yb if yb > 0 else float("nan")
    if not math.isfinite(theta0):
        return None
    u = r.a(y) - theta0 * r.b(y)
    uf = r.a(f) - theta0 * r.b(f)
    hL = s.h[L]
    cov = np.nan_to_num(_stratum_cov(hL, u[L], uf[L], n))
    varf = np.nan_to_num(_stratum_vars(hL, uf[L], n))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(live & (n > 0), s.N**2 * (1 - n / np.maximum(m, 1)) / np.maximum(n, 1), 0.0)
    den = float(np.sum(c * varf))
    return float(np.clip(np.sum(c * cov) / den, 0.0, 1.0)) if den > 0 else 0.0


def bootstrap(
    s: StratifiedSample,
    ratios: list[Ratio],
    reps: int,
    seed: int,
    alpha: float = 0.05,
) -> list[tuple[float, float]]:
    """Percentile intervals from a Rao–Wu rescaled stratified bootstrap.

    Per stratum, m_h = n_h − 1 units are drawn with replacement and the replicate
    stratum mean is (1 − λ_h) x̄_h + λ_h x̄*_h with λ_h = √(1 − f_h), which
    reproduces the without-replacement variance with the fpc (Rao & Wu 1988).
    One draw of counts per stratum is shared by every ratio (a matrix product).
    """
    nan = float("nan")
    if not ratios:
        return []
    if _missing_strata(s) is not None or reps <= 0:
        return [(nan, nan)] * len(ratios)
    L = s.labelled
    y = np.nan_to_num(s.y[L])
    hL = s.h[L]
    cols: list[np.ndarray] = []
    for r in ratios:
        ca, cb = r.coef_a[L], r.coef_b[L]
        cols.append(ca * y if r.a_y else ca)
        cols.append(cb * y if r.b_y else cb)
    Zm = np.column_stack(cols)  # (nL, 2R)
    rng = np.random.default_rng(seed)
    n = s.n
    tot = np.zeros((reps, Zm.shape[1]))
    order = np.argsort(hL, kind="stable")
    starts = np.concatenate([[0], np.cumsum(n.astype(np.int64))])
    with _single_thread_blas():
        _accumulate(tot, Zm, order, starts, n, s.N, reps, rng)
    out: list[tuple[float, float]] = []
    for i in range(len(ratios)):
        ta, tb = tot[:, 2 * i], tot[:, 2 * i + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            th = np.where(tb > 0, ta / tb, np.nan)
        th = th[np.isfinite(th)]
        if th.size < 0.9 * reps:
            out.append((nan, nan))
        else:
            out.append((float(np.quantile(th, alpha / 2)), float(np.quantile(th, 1 - alpha / 2))))
    return out


def _single_thread_blas() -> Any:
    """Limit BLAS to one thread for the many small products of the bootstrap.

    On a shared host a threaded BLAS call on a (1000 × 250) @ (250 × 8) product
    was ~30× slower than a single-threaded one (threads fight for the cores).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the products just use BLAS defaults
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _accumulate(
    tot: np.ndarray,
    Zm: np.ndarray,
    order: np.ndarray,
    starts: np.ndarray,
    n: np.ndarray,
    N: np.ndarray,
    reps: int,
    rng: np.random.Generator,
) -> None:
    """Add each stratum's Rao–Wu replicate contribution N_h[(1−λ)x̄ + λ x̄*] to ``tot``."""
    for k in range(len(N)):
        nk = int(n[k])
        if nk == 0 or N[k] == 0:
            continue
        Zh = Zm[order[starts[k] : starts[k + 1]]]
        mean = Zh.mean(axis=0)
        if nk == 1 or nk >= N[k]:
            tot += N[k] * mean
            continue
        mk = nk - 1
        lam = math.sqrt(1 - nk / N[k])
        idx = rng.integers(0, nk, size=(reps, mk))
        idx += (np.arange(reps) * nk)[:, None]
        counts = np.bincount(idx.ravel(), minlength=reps * nk).reshape(reps, nk)
        star = (counts.astype(np.float64) @ Zh) / mk
        tot += N[k] * ((1 - lam) * mean + lam * star)
