"""Every point metric equals scikit-learn's (to 1e-9) on random inputs, and is NaN exactly
where scikit-learn warns / falls back to 0 (docs/methods.md §2: undefined → NaN, never 0)."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from audit import metrics as M

TOL = 1e-9
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@st.composite
def problems(draw: st.DrawFn, min_size: int = 1, max_size: int = 60) -> tuple:
    """Labels in {0, 1}, scores in [0, 1] (often tied), decisions."""
    n = draw(st.integers(min_size, max_size))
    y = draw(arrays(np.int8, n, elements=st.integers(0, 1)))
    grid = draw(st.sampled_from([None, 1, 3, 10, 100]))
    if grid is None:
        s = draw(arrays(np.float64, n, elements=st.floats(0.0, 1.0)))
    else:
        s = draw(arrays(np.int64, n, elements=st.integers(0, grid))) / grid
    if draw(st.booleans()):
        pred = s >= draw(st.sampled_from([0.0, 0.3, 0.5, 0.9, 1.0]))
    else:
        pred = draw(arrays(np.bool_, n))
    return y, s, pred


def _close(ours: float, ref: float) -> bool:
    return math.isclose(ours, ref, rel_tol=0.0, abs_tol=TOL)


def _quiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@SETTINGS
@given(problems())
def test_precision_recall_match_sklearn(p: tuple) -> None:
    y, _, pred = p
    for ours, ref in (
        (M.precision, precision_score),
        (M.recall, recall_score),
    ):
        got = _quiet(ours, y, pred).value
        want = _quiet(ref, y, pred, zero_division=np.nan)
        if math.isnan(want):
            assert math.isnan(got)
        else:
            assert _close(got, want)


@SETTINGS
@given(problems())
def test_f1_matches_sklearn_and_is_nan_without_positives(p: tuple) -> None:
    y, _, pred = p
    got = _quiet(M.f1, y, pred)
    if y.sum() == 0:
        # scikit-learn returns 0 here (recall is undefined); we refuse to report 0
        assert math.isnan(got.value)
        assert got.reason is not None and "no gold positives" in got.reason
    else:
        assert _close(got.value, f1_score(y, pred, zero_division=np.nan))


@SETTINGS
@given(problems())
def test_fpr_matches_confusion_matrix(p: tuple) -> None:
    y, _, pred = p
    tn, fp, _, _ = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    got = _quiet(M.fpr, y, pred).value
    if fp + tn == 0:
        assert math.isnan(got)
    else:
        assert _close(got, fp / (fp + tn))


@SETTINGS
@given(problems())
def test_auprc_matches_average_precision(p: tuple) -> None:
    y, s, _ = p
    got = _quiet(M.auprc, y, s)
    if y.sum() == 0 or y.sum() == y.size:
        # one class: scikit-learn warns and returns 0 (no positives) or 1 (no negatives);
        # neither says anything about ranking, so the harness reports NaN with a reason
        assert math.isnan(got.value) and got.reason
    else:
        assert _close(got.value, average_precision_score(y, s))


@SETTINGS
@given(problems())
def test_auroc_matches_roc_auc(p: tuple) -> None:
    y, s, _ = p
    got = _quiet(M.auroc, y, s)
    if len(np.unique(y)) < 2:
        assert math.isnan(got.value)
        with contextlib.suppress(ValueError):  # scikit-learn 1.9 warns + NaN, older raise
            assert math.isnan(_quiet(roc_auc_score, y, s))
    else:
        assert _close(got.value, roc_auc_score(y, s))


@SETTINGS
@given(problems())
def test_brier_matches_sklearn(p: tuple) -> None:
    y, s, _ = p
    assert _close(M.brier(y, s).value, brier_score_loss(y, s, pos_label=1))


@SETTINGS
@given(problems(), st.sampled_from([0.0, 0.5, 0.8, 0.9, 0.95, 1.0]))
def test_recall_at_precision_matches_pr_curve(p: tuple, target: float) -> None:
    y, s, _ = p
    got = _quiet(M.recall_at_precision, y, s, target=target)
    if y.sum() == 0 or y.sum() == y.size:
        assert math.isnan(got.value) and got.reason  # one class: trivially 0 or 1
        return
    prec, rec, _ = precision_recall_curve(y, s)
    assert _close(got.value, float(rec[prec >= target].max()))


@SETTINGS
@given(problems(), st.sampled_from([0.0, 0.01, 0.1, 0.25, 0.5, 1.0]))
def test_tpr_at_fpr_matches_roc_curve(p: tuple, target: float) -> None:
    y, s, _ = p
    got = _quiet(M.tpr_at_fpr, y, s, target=target)
    if len(np.unique(y)) < 2:
        assert math.isnan(got.value)
        return
    fpr_c, tpr_c, _ = roc_curve(y, s, drop_intermediate=False)
    assert _close(got.value, float(tpr_c[fpr_c <= target].max()))


def ece_reference(y: np.ndarray, s: np.ndarray, n_bins: int) -> float:
    """Loop implementation of the documented equal-mass ECE."""
    n = len(s)
    total = 0.0
    for m in range(n_bins):
        gap = 0.0
        for yi, si in zip(y, s, strict=True):
            below = int(np.sum(s < si))
            if min(below * n_bins // n, n_bins - 1) == m:
                gap += yi - si
        total += abs(gap)
    return total / n


@SETTINGS
@given(problems(max_size=40), st.integers(1, 12))
def test_ece_matches_reference(p: tuple, n_bins: int) -> None:
    y, s, _ = p
    assert _close(M.ece(y, s, n_bins=n_bins).value, ece_reference(y, s, n_bins))


def test_ece_equal_mass_bins_without_ties() -> None:
    # 20 distinct scores, 10 bins → 2 items per bin
    s = np.linspace(0.01, 0.99, 20)
    table = M.reliability_table(np.zeros(20, dtype=int), s, n_bins=10)
    assert table["count"].tolist() == [2.0] * 10
    # perfectly calibrated in expectation: score == observed frequency per bin
    y = np.array([0, 0, 0, 1] * 5)
    s2 = np.full(20, 0.25)
    assert M.ece(y, s2).value == pytest.approx(0.0)


def test_ece_score_range_restricts_to_actionable_region() -> None:
    y = np.array([1, 0, 1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1, 0.05, 0.0])
    inside = M.ece(y, s, n_bins=1, score_range=(0.5, 1.0))
    assert inside.n == 3
    assert inside.value == pytest.approx(abs(2 - (0.9 + 0.8 + 0.7)) / 3)


def test_counts() -> None:
    y = np.array([1, 0, -1, 1, 0, 0])
    s = np.array([0.1, np.nan, 0.3, 0.4, 0.5, 0.6])
    assert M.support(y, s) == (4.0, 4, 2, None)
    assert M.n_pos(y, s).value == 2
    assert M.prevalence(y, s).value == pytest.approx(0.5)
    assert M.support(y).value == 5  # without scores only the unknown label is excluded
