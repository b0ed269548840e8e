"""Unit tests of the statistics behind the analyses: Wilson, BH, operating points."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from audit.analysis.thresholds import (
    operating_point,
    reproject_precision,
    thresholds_yaml,
)
from audit.metrics.stats import bh_qvalues, wilson, z_value


def test_wilson_known_values() -> None:
    lo, hi = wilson(5, 10, z_value(0.95))
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo0, hi0 = wilson(0, 20, z_value(0.95))
    assert lo0 == 0 and 0 < hi0 < 0.2
    lo_n, _ = wilson(0, 0, 1.96)
    assert math.isnan(lo_n)
    # one-sided 95% lower bound of 1/1 is 1 / (1 + z²)
    z1 = z_value(0.95, one_sided=True)
    assert wilson(1, 1, z1)[0] == pytest.approx(1 / (1 + z1 * z1))


def test_bh_matches_definition() -> None:
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.5])
    q = bh_qvalues(p)
    assert math.isnan(q[2])
    # m = 4 defined: sorted 0.01, 0.03, 0.04, 0.5 → 0.04, min(0.06, 0.0533), 0.0533, 0.5
    assert q[0] == pytest.approx(0.04)
    assert q[3] == pytest.approx(0.04 * 4 / 3) and q[1] == pytest.approx(0.04 * 4 / 3)
    assert q[4] == pytest.approx(0.5)
    assert (q[~np.isnan(q)] >= p[~np.isnan(p)]).all()


def test_reprojection_reproduces_methods_anchors() -> None:
    assert reproject_precision(0.9, 0.01, 0.07) == pytest.approx(0.87, abs=0.005)
    assert reproject_precision(0.9, 0.01, 0.001) == pytest.approx(0.08, abs=0.005)
    assert math.isnan(reproject_precision(0.0, 0.0, 0.1))


def test_operating_point_separable() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(200), np.zeros(800)].astype(np.int8)
    s = np.r_[rng.uniform(0.6, 1, 200), rng.uniform(0, 0.5, 800)]
    op = operating_point(y, s, target=0.9, alpha=0.05, prevalence=0.01)
    # the scan goes past the last positive while the lower bound still holds
    assert op.recall == 1 and op.tp == 200 and op.fp > 0
    assert op.precision_lower >= 0.9
    flagged = s >= op.threshold
    assert flagged.sum() == op.tp + op.fp
    # one more item flagged (the next candidate) breaks the bound
    nxt = np.sort(s[~flagged])[-1]
    k = int((s >= nxt).sum())
    assert wilson(200, k, z_value(0.95, one_sided=True))[0] < 0.9
    assert op.precision_at_prevalence == pytest.approx(reproject_precision(1.0, op.fp / 800, 0.01))
    assert op.precision_at_prevalence_conservative < op.precision_at_prevalence


def test_fixed_sequence_stops_at_first_failure() -> None:
    # 40 clean positives on top, then a block of 40 negatives, then 400 positives:
    # precision recovers lower down, but the scan must stop before the negative block.
    y = np.r_[np.ones(40), np.zeros(40), np.ones(400), np.zeros(100)].astype(np.int8)
    s = np.linspace(1, 0, y.size)
    op = operating_point(y, s, target=0.9, alpha=0.05)
    assert op.tp <= 40 + 4 and op.fp <= 4
    assert op.recall < 0.1
    # the lowest threshold with point precision ≥ 0.9 is far lower; LTT does not go there
    assert op.threshold > s[80]


def test_operating_point_undefined_has_reason() -> None:
    op = operating_point(np.zeros(50, np.int8), np.linspace(0, 1, 50))
    assert math.isnan(op.threshold) and "no gold positives" in op.reason
    y = np.r_[np.zeros(100), np.ones(100)].astype(np.int8)
    op = operating_point(y, np.r_[np.ones(100), np.zeros(100)], target=0.9)
    assert math.isnan(op.threshold) and "no threshold qualifies" in op.reason
    op = operating_point(np.array([1, 0, -1], np.int8), np.array([0.9, 0.1, np.nan]))
    assert "too few items" in op.reason and op.n == 2


def test_yaml_fragment_is_a_moderator_thresholds_mapping() -> None:
    from audit.config import ModeratorSpec

    y = np.r_[np.ones(100), np.zeros(100)].astype(np.int8)
    s = np.r_[np.linspace(0.7, 1, 100), np.linspace(0, 0.69, 100)]
    points = [
        operating_point(y, s, category="hate", target=0.9),
        operating_point(np.zeros(5, np.int8), np.ones(5), category="spam"),
    ]
    text = thresholds_yaml(
        points, default=0.5, run_id="r1", suite="mini", split="test", moderator="m"
    )
    assert "validate them on another split" in text and "r1" in text and "0.9" in text
    th = yaml.safe_load(text)["thresholds"]
    assert th["default"] == 0.5 and th["hate"] == points[0].threshold and "spam" not in th
    assert (s >= th["hate"]).sum() == points[0].tp + points[0].fp  # exact, no rounding
    ModeratorSpec(name="m", type="fake", thresholds=th)


def test_slice_table_finds_planted_bad_slice() -> None:
    import pandas as pd

    from audit.analysis.slices import slice_table

    rng = np.random.default_rng(1)
    n = 600
    lang = np.array(["en", "es", "fr"] * (n // 3), dtype=object)
    y = rng.integers(0, 2, n).astype(np.int8)
    pred = y.astype(bool).copy()
    bad = np.nonzero(lang == "fr")[0]
    flip = rng.choice(bad, 80, replace=False)  # 40% errors in fr, 2% elsewhere
    pred[flip] = ~pred[flip]
    other = rng.choice(np.nonzero(lang != "fr")[0], 8, replace=False)
    pred[other] = ~pred[other]
    lang[:5] = None
    df = pd.DataFrame(
        {
            "score.hate": np.where(pred, 0.8, 0.2),
            "pred.hate": pd.array(pred, dtype="boolean"),
            "gold.hate": y,
            "score.overall": np.where(pred, 0.8, 0.2),
            "pred.overall": pd.array(pred, dtype="boolean"),
            "gold.overall": np.full(n, -1, np.int8),
            "slice.language": lang,
            "slice.source": "synthetic",
            "slice.only_neg": np.where(y == 1, "pos", "neg"),
        }
    )
    t = slice_table(df, n_boot=20)
    assert set(t["category"]) == {"hate"}  # overall gold unknown: not analysed
    assert set(t["slice"]) == {"language", "only_neg"}  # constant `source` skipped
    lt = t[t["slice"] == "language"]
    assert lt.iloc[0]["value"] == "fr" and lt.iloc[0]["q_value"] < 1e-6
    assert "(missing)" in set(lt["value"]) and lt["n"].sum() == n
    assert lt["error_contribution"].sum() == pytest.approx(1.0)
    assert (lt[lt["value"] != "fr"]["q_value"] > 0.05).all()
    neg = t[(t["slice"] == "only_neg") & (t["value"] == "neg")].iloc[0]
    assert math.isnan(neg["recall"]) and "recall: no gold positives" in neg["reason"]
    assert math.isnan(neg["f1"]) and neg["fpr_lo"] <= neg["fpr"] <= neg["fpr_hi"]
