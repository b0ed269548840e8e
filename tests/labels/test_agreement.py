"""Agreement statistics against independent implementations (krippendorff, statsmodels,
scikit-learn) to 1e-9, undefined cases, and bootstrap interval coverage on a planted truth."""

from __future__ import annotations

import math
import warnings

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from audit.labels import agreement as A


def sparse_ratings(
    rng: np.random.Generator, n: int, raters: int, values: int, p_missing: float
) -> np.ndarray:
    """Ratings correlated through a latent item value, with missing cells."""
    truth = rng.integers(0, values, n)
    noise = rng.integers(0, values, (n, raters))
    keep = rng.random((n, raters)) < 0.7
    r = np.where(keep, truth[:, None], noise).astype(float)
    r[rng.random((n, raters)) < p_missing] = np.nan
    return r


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("level", ["nominal", "ordinal"])
def test_alpha_equals_krippendorff_package(seed: int, level: str) -> None:
    rng = np.random.default_rng(seed)
    r = sparse_ratings(rng, 120, 5, 2 + seed % 4, 0.5)
    ours = A.krippendorff_alpha(r, level).value  # type: ignore[arg-type]
    ref = krippendorff.alpha(reliability_data=r.T, level_of_measurement=level)  # type: ignore[arg-type]
    assert abs(ours - ref) < 1e-9


def test_alpha_krippendorff_published_example() -> None:
    # Krippendorff (2011) "Computing Krippendorff's alpha-reliability", 4 coders x 12 units
    nan = np.nan
    data = np.array(
        [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
            [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
        ]
    ).T
    assert A.krippendorff_alpha(data, "nominal").value == pytest.approx(0.743, abs=5e-4)
    assert A.krippendorff_alpha(data, "ordinal").value == pytest.approx(0.815, abs=5e-4)


@pytest.mark.parametrize("seed", range(6))
def test_fleiss_equals_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    r = sparse_ratings(rng, 200, 6, 3, 0.3)
    est, m = A.fleiss_kappa(r)
    counts = (~np.isnan(r)).sum(axis=1)
    sub = r[counts == m]
    table = np.stack([(sub == v).sum(axis=1) for v in np.unique(r[~np.isnan(r)])], axis=1)
    assert est.n == len(sub) and m >= 2
    assert abs(est.value - sm_fleiss(table, method="fleiss")) < 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_cohen_equals_sklearn(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    r = sparse_ratings(rng, 150, 2, 2 + seed % 3, 0.3)
    both = ~np.isnan(r).any(axis=1)
    ours = A.cohen_kappa(r[:, 0], r[:, 1])
    assert ours.n == int(both.sum())
    assert abs(ours.value - cohen_kappa_score(r[both, 0], r[both, 1])) < 1e-9


def test_specific_agreement_two_raters_is_2a_over_2a_b_c() -> None:
    rng = np.random.default_rng(7)
    r = rng.integers(0, 2, (300, 2)).astype(float)
    r[:50, 1] = r[:50, 0]
    a = np.sum((r[:, 0] == 1) & (r[:, 1] == 1))
    d = np.sum((r[:, 0] == 0) & (r[:, 1] == 0))
    bc = np.sum(r[:, 0] != r[:, 1])
    assert A.specific_agreement(r).value == pytest.approx(2 * a / (2 * a + bc), abs=1e-12)
    neg = A.specific_agreement(r, positive=False).value
    assert neg == pytest.approx(2 * d / (2 * d + bc), abs=1e-12)


def test_undefined_statistics_are_nan_with_reason() -> None:
    const = np.ones((20, 3))
    alpha = A.krippendorff_alpha(const)
    assert math.isnan(alpha.value) and "same value" in (alpha.reason or "")
    k = A.cohen_kappa(const[:, 0], const[:, 1])
    assert math.isnan(k.value) and "chance agreement 1" in (k.reason or "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(cohen_kappa_score(const[:, 0], const[:, 1]))  # same convention
    single = np.full((10, 3), np.nan)
    single[:, 0] = 1.0
    a2 = A.krippendorff_alpha(single)
    assert math.isnan(a2.value) and a2.n == 0 and "two ratings" in (a2.reason or "")
    no_overlap = A.cohen_kappa(np.array([1.0, np.nan]), np.array([np.nan, 0.0]))
    assert math.isnan(no_overlap.value) and "share no item" in (no_overlap.reason or "")
    neg_only = A.specific_agreement(np.zeros((5, 2)))
    assert math.isnan(neg_only.value) and "positive" in (neg_only.reason or "")


def test_one_annotator_and_unrated_items_counted_not_used() -> None:
    rng = np.random.default_rng(3)
    r = sparse_ratings(rng, 60, 3, 2, 0.0)
    r[:5, 1:] = np.nan  # five one-annotator items
    r[5:8, :] = np.nan  # three unrated items
    res = A.category_agreement(r, ("a", "b", "c"), n_boot=20)
    assert (res["n_single"], res["n_unrated"], res["n_pairable"]) == (5, 3, 52)
    ref = krippendorff.alpha(reliability_data=r.T, level_of_measurement="nominal")
    assert abs(res["stats"]["krippendorff_alpha_nominal"]["value"] - ref) < 1e-9


def test_loo_majority_excludes_the_annotator() -> None:
    r = np.array([[1, 0, 0], [1, 1, 0], [0, np.nan, np.nan], [1, 1, 1]], dtype=float)
    maj = A.loo_majority(r, 0)
    assert maj[0] == 0 and math.isnan(maj[1]) and math.isnan(maj[2]) and maj[3] == 1


def _coverage(reps: int, n: int, n_boot: int, seed: int) -> tuple[float, float]:
    """Coverage of the percentile interval for alpha around a population alpha."""
    rng = np.random.default_rng(seed)
    pop = sparse_ratings(rng, 200_000, 4, 2, 0.4)
    truth = A.krippendorff_alpha(pop).value
    hits = 0
    for r in range(reps):
        idx = rng.integers(0, len(pop), n)
        est = A.krippendorff_alpha(pop[idx], weights=A.bootstrap_weights(n, n_boot, seed + r))
        hits += est.low <= truth <= est.high
    return hits / reps, truth


def test_bootstrap_interval_covers_planted_alpha_fast() -> None:
    cov, truth = _coverage(reps=60, n=300, n_boot=300, seed=11)
    assert 0.2 < truth < 0.8
    # 60 replications at nominal 0.95: binomial sd 0.028; 0.83 is ~4 sd below
    assert cov >= 0.83


@pytest.mark.slow
def test_bootstrap_interval_covers_planted_alpha_slow() -> None:
    cov, _ = _coverage(reps=400, n=300, n_boot=1000, seed=12)
    assert 0.92 <= cov <= 0.98  # sd 0.011 at 400 replications


def test_weighted_point_equals_resampled_data() -> None:
    rng = np.random.default_rng(5)
    r = sparse_ratings(rng, 80, 4, 3, 0.4)
    idx = rng.integers(0, 80, 80)
    w = np.bincount(idx, minlength=80)[None, :].astype(float)
    for level in ("nominal", "ordinal"):
        a = A.krippendorff_alpha(r, level, weights=w).value
        b = A.krippendorff_alpha(r[idx], level).value
        assert abs(a - b) < 1e-12
