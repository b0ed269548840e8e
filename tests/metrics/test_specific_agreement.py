"""Positive- and negative-specific agreement (Fleiss 1975; Cicchetti & Feinstein 1990):
hand-computed confusion counts, scikit-learn parity, NaN (never 0) where undefined, and
the vectorised form equal to the point form."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from audit import metrics as M
from audit.metrics.classification import (
    Confusion,
    confusion,
    negative_agreement_batch,
    positive_agreement_batch,
)

TOL = 1e-9


def _quiet(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _arrays(tp: int, fp: int, fn: int, tn: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.array([1] * tp + [0] * fp + [1] * fn + [0] * tn, dtype=np.int8)
    p = np.array([True] * tp + [True] * fp + [False] * fn + [False] * tn)
    return y, p


@pytest.mark.parametrize(
    ("tp", "fp", "fn", "tn"),
    [(12, 18, 18, 952), (5, 0, 0, 5), (1, 2, 3, 4), (0, 3, 0, 7), (7, 0, 2, 0), (0, 0, 4, 6)],
)
def test_values_from_hand_counts(tp: int, fp: int, fn: int, tn: int) -> None:
    y, p = _arrays(tp, fp, fn, tn)
    pa = _quiet(M.positive_agreement, y, p)
    na = _quiet(M.negative_agreement, y, p)
    assert pa.n == na.n == tp + fp + fn + tn
    assert math.isclose(pa.value, 2 * tp / (2 * tp + fp + fn), abs_tol=TOL)
    assert math.isclose(na.value, 2 * tn / (2 * tn + fn + fp), abs_tol=TOL)
    assert pa.reason is None and na.reason is None


def test_rare_positives_high_agreement_low_kappa() -> None:
    # Cicchetti & Feinstein's paradox: p_o 0.964, negative agreement 0.98, kappa ~0.39
    y, p = _arrays(12, 18, 18, 952)
    k = M.cohen_kappa(y, p).value
    assert k < 0.45
    assert M.negative_agreement(y, p).value > 0.98
    assert math.isclose(M.positive_agreement(y, p).value, 0.4, abs_tol=TOL)


def test_positive_agreement_is_f1_where_gold_positives_exist() -> None:
    y, p = _arrays(3, 4, 5, 6)
    assert math.isclose(M.positive_agreement(y, p).value, M.f1(y, p).value, abs_tol=TOL)
    # without gold positives F1 is undefined, the agreement a genuine 0 (judge flagged 3)
    y, p = _arrays(0, 3, 0, 7)
    assert math.isnan(_quiet(M.f1, y, p).value)
    assert M.positive_agreement(y, p).value == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.booleans()), min_size=1, max_size=80))
def test_match_sklearn_f1_of_each_class(pairs: list[tuple[int, bool]]) -> None:
    y = np.array([a for a, _ in pairs], dtype=np.int8)
    p = np.array([b for _, b in pairs])
    pos = _quiet(M.positive_agreement, y, p)
    neg = _quiet(M.negative_agreement, y, p)
    ref_pos = _quiet(f1_score, y, p.astype(int), labels=[0, 1], zero_division=np.nan)
    ref_neg = _quiet(f1_score, y, p.astype(int), labels=[0, 1], pos_label=0, zero_division=np.nan)
    for ours, ref in ((pos, ref_pos), (neg, ref_neg)):
        if math.isnan(ref):
            assert math.isnan(ours.value) and ours.reason
        else:
            assert math.isclose(ours.value, ref, rel_tol=0.0, abs_tol=TOL)
            assert ours.reason is None


def test_nan_with_reason_and_warning_never_zero() -> None:
    # all negatives, nothing flagged: positive agreement has a zero denominator
    y, p = _arrays(0, 0, 0, 9)
    with pytest.warns(M.UndefinedMetricWarning, match="positive_agreement is undefined"):
        res = M.positive_agreement(y, p)
    assert math.isnan(res.value) and res.value != 0
    assert res.reason == "no gold positives among 9 scored items"
    assert M.negative_agreement(y, p).value == 1.0
    # all positives, everything flagged: negative agreement undefined
    y, p = _arrays(4, 0, 0, 0)
    with pytest.warns(M.UndefinedMetricWarning, match="negative_agreement is undefined"):
        res = M.negative_agreement(y, p)
    assert math.isnan(res.value) and res.reason == "no gold negatives among 4 scored items"
    # nothing scored: unknown labels and NaN scores are excluded, never negatives
    with pytest.warns(M.UndefinedMetricWarning):
        res = M.positive_agreement(
            np.array([-1, 0]), np.array([True, False]), score=np.array([0.9, np.nan])
        )
    assert math.isnan(res.value) and res.n == 0 and res.n_excluded == 2
    assert "no scored items" in (res.reason or "")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.booleans()), min_size=0, max_size=60))
def test_batch_equals_point(pairs: list[tuple[int, bool]]) -> None:
    y = np.array([a for a, _ in pairs], dtype=np.int8)
    p = np.array([b for _, b in pairs], dtype=bool)
    c = confusion(y, p)
    for name, batch in (
        ("positive_agreement", positive_agreement_batch),
        ("negative_agreement", negative_agreement_batch),
    ):
        point = _quiet(M.get_metric(name), y, pred=p).value
        got = float(batch(c)[0])
        assert (math.isnan(point) and math.isnan(got)) or point == got


def test_batch_rows_are_independent() -> None:
    cells = np.array([[952, 18, 18, 12], [9, 0, 0, 0], [0, 0, 0, 4], [4, 3, 2, 1]], float)
    c = Confusion.from_cells(cells)  # ordered tn, fp, fn, tp
    pa, na = positive_agreement_batch(c), negative_agreement_batch(c)
    assert pa.shape == na.shape == (4,)
    assert math.isclose(pa[0], 24 / 60) and math.isnan(pa[1]) and pa[2] == 1.0
    assert math.isclose(na[3], 8 / 13) and math.isnan(na[2]) and na[1] == 1.0
    for i, row in enumerate(cells):
        y, p = _arrays(int(row[3]), int(row[1]), int(row[2]), int(row[0]))
        for fn, arr in ((M.positive_agreement, pa), (M.negative_agreement, na)):
            v = _quiet(fn, y, p).value
            assert (math.isnan(v) and math.isnan(arr[i])) or v == arr[i]


def test_registered_with_bootstrap_interval() -> None:
    for name in ("positive_agreement", "negative_agreement"):
        spec = M.get_metric(name)
        assert spec.direction == "higher" and spec.family == "confusion"
    assert "F1" in M.get_metric("positive_agreement").description
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (300, 2)).astype(np.int8)
    y[:, 1] = 0  # second category: no gold positives
    pred = rng.random((300, 2)) < 0.5
    pred[:, 1] = False  # ... and nothing flagged
    with pytest.warns(M.UndefinedMetricWarning):
        out = M.compute_metrics(y, rng.random((300, 2)), pred, ["a", "b"], n_boot=200)
    for name in ("positive_agreement", "negative_agreement"):
        v = out["a"][name]
        assert v.ci_low <= v.value <= v.ci_high and v.method.endswith("bootstrap")
        ref = _quiet(getattr(M, name), y[:, 0], pred[:, 0]).value
        assert math.isclose(v.value, ref, abs_tol=TOL)
    b = out["b"]["positive_agreement"]
    assert math.isnan(b.value) and b.reason and "no gold positives" in b.reason
    assert out["b"]["negative_agreement"].value == 1.0
