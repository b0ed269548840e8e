"""Unknown labels and NaN scores are excluded (never negatives); undefined metrics are NaN
with a reason and an UndefinedMetricWarning; the registry is complete."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from audit import metrics as M
from audit.errors import ConfigError

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _all(y: np.ndarray, s: np.ndarray, pred: np.ndarray) -> dict[str, M.MetricResult]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: spec(y, s, pred) for name, spec in M.METRICS}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


@st.composite
def base_and_junk(draw: st.DrawFn) -> tuple:
    n = draw(st.integers(1, 40))
    y = draw(arrays(np.int8, n, elements=st.integers(0, 1)))
    s = draw(arrays(np.int64, n, elements=st.integers(0, 10))) / 10
    pred = s >= 0.5
    m = draw(st.integers(1, 20))
    junk_s = draw(arrays(np.int64, m, elements=st.integers(0, 10))) / 10
    junk_p = draw(arrays(np.bool_, m))
    junk_y = draw(arrays(np.int8, m, elements=st.integers(0, 1)))
    return y, s, pred, junk_y, junk_s, junk_p


@SETTINGS
@given(base_and_junk())
def test_unknown_labels_leave_every_metric_unchanged(d: tuple) -> None:
    y, s, pred, _, junk_s, junk_p = d
    before = _all(y, s, pred)
    y2 = np.concatenate([y, np.full(junk_s.size, -1, dtype=np.int8)])
    after = _all(y2, np.concatenate([s, junk_s]), np.concatenate([pred, junk_p]))
    for name in before:
        assert _same(before[name].value, after[name].value), name
        assert after[name].n == before[name].n
        assert after[name].n_excluded == before[name].n_excluded + junk_s.size


@SETTINGS
@given(base_and_junk())
def test_nan_scores_leave_every_metric_unchanged(d: tuple) -> None:
    y, s, pred, junk_y, _, junk_p = d
    before = _all(y, s, pred)
    s2 = np.concatenate([s, np.full(junk_y.size, np.nan)])
    after = _all(np.concatenate([y, junk_y]), s2, np.concatenate([pred, junk_p]))
    for name in before:
        assert _same(before[name].value, after[name].value), name
        assert after[name].n_excluded == junk_y.size


def test_unknown_is_not_a_negative() -> None:
    y = np.array([1, 0, 0, -1, -1], dtype=np.int8)
    pred = np.array([True, False, False, True, True])
    assert M.fpr(y, pred).value == 0.0
    assert M.fpr(y, pred).n_excluded == 2
    y_as_negative = np.where(y < 0, 0, y)
    assert M.fpr(y_as_negative, pred).value == pytest.approx(2 / 4)
    assert M.precision(y, pred).value == 1.0
    assert M.precision(y_as_negative, pred).value == pytest.approx(1 / 3)


def test_nan_score_excludes_pred_metrics_too() -> None:
    y = np.array([1, 0, 1])
    pred = np.array([True, True, False])
    s = np.array([0.9, np.nan, 0.2])
    assert M.precision(y, pred, score=s).value == 1.0
    assert M.precision(y, pred).value == 0.5


@pytest.mark.parametrize(
    ("fn", "args", "needle"),
    [
        (M.recall, (np.zeros(37, int), np.zeros(37, bool)), "no gold positives among 37"),
        (M.f1, (np.zeros(5, int), np.ones(5, bool)), "no gold positives among 5"),
        (M.precision, (np.ones(4, int), np.zeros(4, bool)), "no predicted positives among 4"),
        (M.fpr, (np.ones(3, int), np.ones(3, bool)), "no gold negatives among 3"),
        (M.auprc, (np.zeros(6, int), np.linspace(0, 1, 6)), "no gold positives among 6"),
        (M.auroc, (np.ones(6, int), np.linspace(0, 1, 6)), "no gold negatives among 6"),
        (M.recall_at_precision, (np.zeros(2, int), np.ones(2)), "no gold positives"),
        (M.tpr_at_fpr, (np.ones(2, int), np.ones(2)), "no gold negatives"),
        (M.ece, (np.array([-1, -1]), np.array([0.1, 0.2])), "no scored items"),
        (M.brier, (np.array([1, 0]), np.array([np.nan, np.nan])), "no scored items"),
        (M.prevalence, (np.array([-1]),), "no scored items"),
    ],
)
def test_undefined_is_nan_with_reason_and_warning(
    fn: Callable[..., M.MetricResult], args: tuple[Any, ...], needle: str
) -> None:
    with pytest.warns(M.UndefinedMetricWarning, match=needle):
        res = fn(*args)
    assert math.isnan(res.value)
    assert res.reason is not None and needle in res.reason


def test_reason_counts_exclusions() -> None:
    y = np.array([0, 0, -1, 0])
    s = np.array([0.1, np.nan, 0.3, 0.4])
    with pytest.warns(M.UndefinedMetricWarning):
        res = M.auprc(y, s)
    assert res.reason == (
        "no gold positives among 2 scored items (2 excluded: unknown label or not scored)"
    )


def test_undefined_metric_warning_is_dedicated_subclass() -> None:
    assert issubclass(M.UndefinedMetricWarning, UserWarning)
    assert M.UndefinedMetricWarning is not UserWarning


def test_registry_is_complete() -> None:
    names = M.metric_names()
    expected = {
        "support",
        "n_pos",
        "prevalence",
        "precision",
        "recall",
        "f1",
        "fpr",
        "cohen_kappa",
        "positive_agreement",
        "negative_agreement",
        "auprc",
        "auroc",
        "recall_at_precision",
        "tpr_at_fpr",
        "ece",
        "brier",
    }
    assert expected <= set(names)
    directions = M.metric_directions()
    for name in names:
        spec = M.get_metric(name)
        assert directions[name] in ("higher", "lower", "none")
        assert spec.needs in ("pred", "score")
        assert spec.description
        assert callable(spec.fn) and callable(spec.batch)
    quality = {n for n in names if directions[n] != "none"}
    assert quality == expected - {"support", "n_pos", "prevalence"}
    assert directions["fpr"] == directions["ece"] == directions["brier"] == "lower"


def test_unknown_metric_is_config_error_with_hint() -> None:
    with pytest.raises(ConfigError, match="did you mean 'auprc'"):
        M.get_metric("auprcc")


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="labels"):
        M.recall(np.array([2, 0]), np.array([True, False]))
    with pytest.raises(ValueError, match="labels"):
        M.recall(np.array([257, 0]), np.array([True, False]))  # would wrap to 1 in int8
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.auroc(np.array([1, 0]), np.array([1.5, 0.2]))
    with pytest.raises(ValueError, match="shape"):
        M.auroc(np.array([1, 0]), np.array([0.5]))
