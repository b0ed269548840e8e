"""``compute_metrics``: exact points, bootstrap intervals, the row/cell switch."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

from audit import metrics as M
from audit.errors import ConfigError
from audit.metrics import bootstrap as B

BOOTSTRAPPED = [
    "prevalence",
    "precision",
    "recall",
    "f1",
    "fpr",
    "auprc",
    "auroc",
    "recall_at_precision",
    "tpr_at_fpr",
    "ece",
    "brier",
]


def make(n: int, k: int = 3, seed: int = 0, unknown: float = 0.1, nan: float = 0.05):
    """Synthetic suite: prevalence ~20%, informative scores, unknowns and NaNs."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < 0.2).astype(np.int8)
    score = np.clip(0.5 * rng.random((n, k)) + 0.45 * y * rng.random((n, k)), 0, 1)
    score = np.round(score, 3)  # ties, like real model scores
    pred = score >= 0.4
    y[rng.random((n, k)) < unknown] = -1
    score[rng.random((n, k)) < nan] = np.nan
    return y, score, pred, [f"c{i}" for i in range(k)]


def quiet(*args: Any, **kwargs: Any) -> dict[str, dict[str, M.MetricValue]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        return M.compute_metrics(*args, **kwargs)


def test_points_equal_pure_functions_and_exclusions() -> None:
    y, s, p, cats = make(600)
    out = quiet(y, s, p, cats, n_boot=50)
    for k, cat in enumerate(cats):
        for name in M.metric_names():
            ref = M.get_metric(name)(y[:, k], s[:, k], p[:, k])
            mv = out[cat][name]
            assert mv.value == pytest.approx(ref.value, abs=1e-12), (cat, name)
            assert mv.n == ref.n == int(((y[:, k] >= 0) & ~np.isnan(s[:, k])).sum())
            assert mv.n_excluded == ref.n_excluded


@pytest.mark.parametrize("method", ["row", "cell"])
def test_intervals_contain_point(method: str) -> None:
    for seed in range(3):
        y, s, p, cats = make(400, seed=seed)
        out = quiet(y, s, p, cats, n_boot=200, seed=seed, method=method)
        for cat in cats:
            for name, mv in out[cat].items():
                if math.isnan(mv.value):
                    continue
                assert mv.ci_low <= mv.value <= mv.ci_high, (cat, name, mv)
                want = "exact" if name in ("support", "n_pos") else f"{method}-bootstrap"
                assert mv.method == want


def test_percentile_interval_widens_to_point() -> None:
    boot = np.array([0.5, 0.6, 0.7, np.nan])
    assert B.percentile_interval(boot, 0.9, 0.95) == (pytest.approx(0.505), 0.9)
    assert B.percentile_interval(boot, 0.1, 0.95)[0] == 0.1
    assert all(math.isnan(v) for v in B.percentile_interval(boot, math.nan, 0.95))
    assert all(math.isnan(v) for v in B.percentile_interval(np.array([np.nan]), 0.3, 0.95))


@pytest.mark.parametrize("method", ["row", "cell"])
def test_intervals_narrow_as_n_grows(method: str) -> None:
    width = {}
    for n in (250, 4000):
        y, s, p, cats = make(n, k=1, seed=1, unknown=0.0, nan=0.0)
        out = quiet(y, s, p, cats, n_boot=300, seed=0, method=method)["c0"]
        width[n] = {m: out[m].ci_high - out[m].ci_low for m in BOOTSTRAPPED}
    for m in BOOTSTRAPPED:
        assert width[4000][m] < width[250][m], (m, width[250][m], width[4000][m])


def test_same_seed_same_intervals_and_threads_do_not_matter() -> None:
    y, s, p, cats = make(500)
    for method in ("row", "cell"):
        a = quiet(y, s, p, cats, n_boot=100, seed=7, method=method, threads=1)
        b = quiet(y, s, p, cats, n_boot=100, seed=7, method=method, threads=4)
        c = quiet(y, s, p, cats, n_boot=100, seed=8, method=method)
        assert a == b
        assert a != c


def test_row_bootstrap_is_paired_across_categories() -> None:
    # two identical columns get identical intervals only if the resample is shared
    y, s, p, _ = make(300, k=1)
    y2, s2, p2 = (np.repeat(a, 2, axis=1) for a in (y, s, p))
    row = quiet(y2, s2, p2, ["a", "b"], n_boot=200, method="row")
    assert row["a"] == row["b"]
    cell = quiet(y2, s2, p2, ["a", "b"], n_boot=200, method="cell")
    assert cell["a"]["auprc"].ci_low != cell["b"]["auprc"].ci_low  # documented: unpaired


def test_overall_is_resampled_with_the_rows() -> None:
    y, s, p, cats = make(300)
    overall = (y.max(axis=1), np.nanmax(s, axis=1), p.any(axis=1))
    out = quiet(y, s, p, cats, n_boot=100, overall=overall)
    assert set(out) == {*cats, "overall"}
    ref = M.auprc(*overall[:2]).value
    assert out["overall"]["auprc"].value == pytest.approx(ref)
    with pytest.raises(ValueError, match="shape"):
        quiet(y, s, p, cats, overall=(overall[0][:-1], overall[1], overall[2]))


def test_auto_switch_uses_cell_bootstrap_above_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    y, s, p, cats = make(200)
    assert quiet(y, s, p, cats, n_boot=20)["c0"]["auroc"].method == "row-bootstrap"
    monkeypatch.setattr(B, "ROW_BOOTSTRAP_MAX_CELLS", 200 * 3 - 1)
    assert quiet(y, s, p, cats, n_boot=20)["c0"]["auroc"].method == "cell-bootstrap"


def test_cell_and_row_intervals_agree() -> None:
    y, s, p, cats = make(20_000, k=1, seed=3, unknown=0.0, nan=0.0)
    row = quiet(y, s, p, cats, n_boot=400, method="row")["c0"]
    cell = quiet(y, s, p, cats, n_boot=400, method="cell")["c0"]
    for m in BOOTSTRAPPED:
        w = row[m].ci_high - row[m].ci_low
        assert abs(row[m].ci_low - cell[m].ci_low) < 0.25 * w + 1e-9, m
        assert abs(row[m].ci_high - cell[m].ci_high) < 0.25 * w + 1e-9, m


def test_undefined_in_a_category_warns_with_category() -> None:
    y, s, p, _ = make(100, k=2)
    y[:, 1] = np.where(y[:, 1] == 1, 0, y[:, 1])  # no positives in c1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = M.compute_metrics(y, s, p, ["c0", "c1"], n_boot=20)
    messages = [str(w.message) for w in caught if w.category is M.UndefinedMetricWarning]
    assert any(m.startswith("category 'c1': recall is undefined") for m in messages)
    assert not any("'c0'" in m for m in messages)
    mv = out["c1"]["recall"]
    assert math.isnan(mv.value) and math.isnan(mv.ci_low) and math.isnan(mv.ci_high)
    assert mv.reason is not None and mv.reason.startswith("no gold positives among")
    assert mv.to_dict()["value"] is None
    assert not math.isnan(out["c1"]["fpr"].value)


def test_empty_category_and_counts() -> None:
    y, s, p, cats = make(100, k=2)
    y[:, 1] = -1
    out = quiet(y, s, p, cats, n_boot=30)
    assert out["c1"]["support"].value == 0 and out["c1"]["support"].method == "exact"
    assert math.isnan(out["c1"]["auroc"].value)
    assert out["c1"]["auroc"].reason.startswith("no scored items")
    assert out["c1"]["support"].n_excluded == 100
    sup = out["c0"]["support"]
    assert sup.ci_low == sup.value == sup.ci_high == sup.n


def test_no_bootstrap_and_metric_subset() -> None:
    y, s, p, cats = make(100)
    out = quiet(y, s, p, cats, n_boot=0, metrics=["f1", "auprc"])
    assert set(out["c0"]) == {"f1", "auprc"}
    assert out["c0"]["f1"].method == "none" and math.isnan(out["c0"]["f1"].ci_low)


def test_bad_arguments() -> None:
    y, s, p, cats = make(50)
    with pytest.raises(ConfigError, match="unknown metric"):
        quiet(y, s, p, cats, metrics=["recal"])
    with pytest.raises(ValueError, match="category names"):
        quiet(y, s, p, cats[:2])
    with pytest.raises(ValueError, match="shapes differ"):
        quiet(y, s[:, :2], p, cats)
    with pytest.raises(ValueError, match="ci"):
        quiet(y, s, p, cats, ci=1.5)


def test_one_dimensional_inputs_are_one_category() -> None:
    y, s, p, _ = make(200, k=1)
    a = quiet(y[:, 0], s[:, 0], p[:, 0], ["only"], n_boot=50)
    b = quiet(y, s, p, ["only"], n_boot=50)
    assert a == b


def test_boundary_proportions_get_a_wilson_interval_not_a_point() -> None:
    """3 of 3 flagged items correct: every bootstrap replicate repeats precision 1.0, so
    the percentile interval would be 1.000-1.000; the Wilson interval on 3/3 is used."""
    import numpy as np

    from audit.metrics.bootstrap import compute_metrics
    from audit.metrics.stats import wilson, z_value

    y = np.array([[1], [1], [1], [0], [0], [0], [0], [0], [0], [0]])
    s = np.array([[0.9], [0.8], [0.95], [0.1], [0.2], [0.1], [0.3], [0.2], [0.1], [0.05]])
    m = compute_metrics(y, s, s > 0.5, ["hate"], metrics=["precision", "recall", "fpr", "f1"])[
        "hate"
    ]
    lo, _ = wilson(np.asarray(3.0), np.asarray(3.0), z_value(0.95))
    for name in ("precision", "recall"):
        v = m[name]
        assert (v.value, v.ci_high, v.method) == (1.0, 1.0, "wilson (boundary)")
        assert abs(v.ci_low - float(lo)) < 1e-12 and v.ci_low < 0.45
    fpr = m["fpr"]  # 0 of 7 negatives flagged: upper bound reported, lower exactly 0
    assert (fpr.value, fpr.ci_low, fpr.method) == (0.0, 0.0, "wilson (boundary)")
    assert 0.3 < fpr.ci_high < 0.4
    assert m["f1"].method != "wilson (boundary)"


def test_boundary_wilson_keeps_coverage_at_small_n() -> None:
    """Planted precision 0.95 on 8 flagged items: most draws are 8/8 (the boundary).
    The reported 95% interval must cover the truth in about 95% of draws; the
    collapsed percentile interval covered only the non-boundary draws (~34%)."""
    import numpy as np

    from audit.metrics.bootstrap import compute_metrics

    rng = np.random.default_rng(0)
    reps, hits = 400, 0
    for _ in range(reps):
        correct = rng.random(8) < 0.95
        y = np.concatenate([correct.astype(int), np.zeros(12, dtype=int)])[:, None]
        pred = np.concatenate([np.ones(8, bool), np.zeros(12, bool)])[:, None]
        score = pred.astype(float) * 0.9 + 0.05
        v = compute_metrics(y, score, pred, ["hate"], metrics=["precision"], n_boot=200)["hate"][
            "precision"
        ]
        hits += v.ci_low <= 0.95 <= v.ci_high
    assert hits / reps >= 0.93, hits / reps
