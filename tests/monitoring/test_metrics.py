"""Drift metrics against scipy and hand computations; invariances; hostile inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from audit.monitoring import metrics as dm
from audit.monitoring._ecdf import SampleIndex, compare_samples, ks_statistic

RNG = np.random.default_rng(7)


def _samples(kind: int, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == 0:
        return RNG.beta(0.5, 3, n), RNG.beta(0.7, 3, m)
    if kind == 1:  # heavy ties on a coarse grid
        return np.round(RNG.random(n), 2), np.round(RNG.random(m), 1)
    if kind == 2:  # all tied reference, two-point current
        return np.zeros(n), np.where(RNG.random(m) < 0.5, 0.0, 1.0)
    return np.ones(n), RNG.random(m)


@pytest.mark.parametrize("grid", [1 << 10, 1 << 16, 1 << 18])
@pytest.mark.parametrize("kind", range(4))
def test_ks_quantiles_counts_exact(kind: int, grid: int) -> None:
    for _ in range(10):
        n, m = int(RNG.integers(1, 2000)), int(RNG.integers(1, 2000))
        a, b = _samples(kind, n, m)
        A, B = SampleIndex(a, grid=grid), SampleIndex(b, grid=grid)
        assert ks_statistic(A, B) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
        p = np.arange(1, 10) / 10
        assert np.array_equal(A.quantiles(p), np.quantile(a, p, method="inverted_cdf"))
        edges, rc, cc, d = compare_samples(A, B, 10)
        assert np.array_equal(edges, np.unique(np.quantile(a, p, method="inverted_cdf")))
        # right-closed bins: x goes to the number of edges strictly below it
        assert np.array_equal(rc, np.bincount(np.searchsorted(edges, a), minlength=edges.size + 1))
        assert np.array_equal(cc, np.bincount(np.searchsorted(edges, b), minlength=edges.size + 1))
        assert d == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)


def test_ks_pvalue_matches_scipy_asymp() -> None:
    a, b = RNG.beta(2, 5, 3000), RNG.beta(2.2, 5, 2500)
    d, p = dm.ks_test(SampleIndex(a), SampleIndex(b))
    ref = ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-6)


def test_psi_hand_computation() -> None:
    rc = np.array([50, 30, 20])
    cc = np.array([40, 40, 20])
    p, q = rc / 100, cc / 100
    want = float(np.sum((q - p) * np.log(q / p)))  # 0.1·ln(4/3)·... by hand below
    hand = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3)
    assert want == pytest.approx(hand)
    v, pv = dm.psi(rc, cc)
    assert v == pytest.approx(hand, rel=1e-12)
    from scipy.stats import chi2

    assert pv == pytest.approx(chi2.sf(hand / (1 / 100 + 1 / 100), 2))


def test_psi_empty_bin_epsilon() -> None:
    rc, cc = np.array([100, 0]), np.array([50, 50])
    v, _ = dm.psi(rc, cc, epsilon=1e-4)
    p = np.array([1.0, 1e-4]) / (1 + 1e-4)
    q = np.array([0.5, 0.5])
    assert v == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    assert math.isfinite(v) and v > 1


def test_js_matches_scipy() -> None:
    for _ in range(20):
        rc = RNG.integers(0, 50, size=8)
        cc = RNG.integers(0, 50, size=8)
        rc[0] += 1
        cc[0] += 1
        want = jensenshannon(rc / rc.sum(), cc / cc.sum(), base=2)
        assert dm.js_distance(rc, cc) == pytest.approx(float(want), abs=1e-12)


def test_invariances() -> None:
    a = RNG.beta(0.5, 3, 20000)
    A = SampleIndex(a)
    _, rc, cc, d = compare_samples(A, SampleIndex(a.copy()), 10)
    assert d == 0 and dm.psi(rc, cc)[0] == pytest.approx(0, abs=1e-12)
    assert dm.js_distance(rc, cc) == pytest.approx(0, abs=1e-7)
    b = np.clip(a + 0.2, 0, 1)
    _edges, rc, cc, d = compare_samples(A, SampleIndex(b), 10)
    assert d > 0.5 and dm.psi(rc, cc)[0] > 1 and dm.js_distance(rc, cc) > 0.5


def test_js_bounded_disjoint() -> None:
    assert dm.js_distance(np.array([10, 0]), np.array([0, 10])) == pytest.approx(1.0)


def test_undefined_are_nan() -> None:
    empty = SampleIndex(np.array([], dtype=float))
    full = SampleIndex(np.array([0.1, 0.2]))
    assert math.isnan(ks_statistic(empty, full))
    assert all(math.isnan(x) for x in dm.psi(np.array([0, 0]), np.array([1, 1])))
    assert math.isnan(dm.js_distance(np.array([0]), np.array([3])))
    r = dm.rate_change(0, 0, 3, 10, 0.95)
    assert math.isnan(r.delta) and r.reason


def test_newcombe_interval_hand_values() -> None:
    # Newcombe (1998) Table II example (a): 56/70 vs 48/80, delta 0.2, CI 0.0524–0.3339
    r = dm.rate_change(48, 80, 56, 70, 0.95)
    assert r.delta == pytest.approx(0.2)
    assert r.ci_low == pytest.approx(0.0524, abs=5e-4)
    assert r.ci_high == pytest.approx(0.3339, abs=5e-4)


def test_rate_change_no_variation() -> None:
    r = dm.rate_change(0, 50, 0, 60, 0.95)
    assert r.delta == 0 and math.isnan(r.p_value) and r.reason
    assert r.ci_low < 0 < r.ci_high


def test_reference_bins_ties() -> None:
    a = np.concatenate([np.zeros(600), RNG.random(400)])
    bins = dm.reference_bins(SampleIndex(a), 10)
    assert bins.edges[0] == 0.0 and bins.n_bins < 10
    counts = dm.bin_counts(SampleIndex(a), bins)
    assert counts[0] == 600 and counts.sum() == 1000


def test_report_ks_matches_scipy_at_every_size() -> None:
    from audit.monitoring import DriftInput, drift_report

    for n in (1, 7, 1000, 5000, 70000):
        a, b = RNG.beta(0.5, 3, n), RNG.beta(0.6, 3, max(n // 2, 1))
        rep = drift_report({"c": DriftInput(a)}, {"c": DriftInput(b)})
        assert rep.category("c").ks.value == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
