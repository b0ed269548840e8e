"""Judge-validation agreement: Cohen's κ equals scikit-learn's; positive-specific
agreement is F1 with gold as one rater."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from audit.metrics import compute_metrics, get_metric
from audit.metrics.classification import cohen_kappa, f1


@given(st.lists(st.tuples(st.integers(0, 1), st.booleans()), min_size=2, max_size=80))
def test_kappa_matches_sklearn(pairs: list[tuple[int, bool]]) -> None:
    y = np.array([a for a, _ in pairs])
    p = np.array([b for _, b in pairs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = cohen_kappa(y, p)
        ref = cohen_kappa_score(y, p.astype(int))
    if np.isnan(ref):  # chance agreement 1: both raters constant and equal
        assert np.isnan(ours.value) and ours.reason
    else:
        assert abs(ours.value - ref) < 1e-9


def test_kappa_is_chance_corrected_where_raw_agreement_flatters() -> None:
    # 1,000 items, 3% violations: a judge that agrees 97% of the time by mostly saying "no"
    y = np.zeros(1000, dtype=int)
    y[:30] = 1
    p = np.zeros(1000, dtype=bool)
    p[:12] = True
    p[30:48] = True
    raw = float((y == p).mean())
    k = cohen_kappa(y, p).value
    assert raw >= 0.96 and k < 0.45
    pa = 2 * 12 / (2 * 12 + 18 + 18)
    assert abs(f1(y, p).value - pa) < 1e-12


def test_kappa_registered_with_interval() -> None:
    assert get_metric("cohen_kappa").direction == "higher"
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (400, 1)).astype(np.int8)
    out = compute_metrics(y, rng.random((400, 1)), y.astype(bool), ["c"], n_boot=100)
    v = out["c"]["cohen_kappa"]
    assert v.value == 1.0 and v.ci_low <= v.value <= v.ci_high
