"""The planted production day from real text: estimators recover the hidden truth.

The day is built once from the public sets (scored by the real profanity_baseline
classifier, actioned at 0.5, heavy-tailed views); then it is sampled with several
seeds, labelled from the hidden gold (humans) and a 10%-noisy reference, and
estimated. Over the draws, the 95% intervals must hold the truth (a binomial
bound), and the naive unweighted sample mean must be visibly biased.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from scipy.stats import binom

from audit.production import DecisionLogs, Period, build_plan, demo_labels, draw_sample, estimate
from audit.production.demo import build_demo_day
from tests.conftest import require_shared

DAY = Period.parse("2026-11-30")
METRICS = ("precision", "recall", "prevalence", "prevalence_views")


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_shared("openai_moderation")
    out = tmp_path_factory.mktemp("day")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_DATASETS_CACHE", str(out / "hf"))
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        d = build_demo_day(out, seed=0)
        logs = DecisionLogs.open(d.card)
        # the flat design on purpose: the figures of methods §7 and the flag test below
        plan = build_plan(logs, DAY, half_width=0.07, reference_factor=3.0, view_bands=False)
        draws = []
        for seed in range(6):
            sdir = out / f"s{seed}"
            man = draw_sample(logs, plan, DAY, sdir, seed=seed)
            h, r = demo_labels(sdir, d.truth, sdir / "labels", seed=seed)
            draws.append(estimate(man, sdir, h, r, bootstrap_reps=100, seed=seed))
    truth = json.loads(d.truth.with_suffix(".json").read_text())
    return {"draws": draws, "truth": truth, "n_rows": d.n_rows, "sources": d.sources}


@pytest.mark.shared_data
def test_intervals_hold_the_planted_truth(day: dict[str, Any]) -> None:
    assert day["n_rows"] > 10_000 and "openai_moderation" in day["sources"]
    for method in ("classical", "ppi"):
        for m in METRICS if method == "classical" else METRICS[:3]:
            hits = total = 0
            for rec in day["draws"]:
                for c in rec.cells:
                    if c.domain:
                        continue
                    e = getattr(c, method)[m]
                    t = day["truth"][c.key][m]
                    assert math.isfinite(e.ci_low), (c.key, m, e)
                    total += 1
                    hits += e.ci_low <= t <= e.ci_high
            # P(hits <= k) under 95% coverage; fail only when that is below 0.1%
            assert binom.cdf(hits, total, 0.95) > 1e-3, (method, m, hits, total)


@pytest.mark.shared_data
def test_naive_unweighted_estimate_is_biased(day: dict[str, Any]) -> None:
    for key in ("profanity_clf/harassment", "profanity_clf/hate"):
        for m in ("recall", "prevalence"):
            t = day["truth"][key][m]
            naive = np.array(
                [next(c for c in r.cells if c.key == key).naive[m] for r in day["draws"]]
            )
            weighted = np.array(
                [next(c for c in r.cells if c.key == key).classical[m].value for r in day["draws"]]
            )
            se_naive = naive.std(ddof=1) / math.sqrt(len(naive))
            # the naive mean over 6 draws sits many standard errors from the truth...
            assert abs(naive.mean() - t) > 4 * se_naive, (key, m, naive.mean(), t)
            # ...and much farther than the design-weighted estimate does
            assert abs(naive.mean() - t) > 2 * abs(weighted.mean() - t), (key, m)


@pytest.mark.shared_data
def test_record_reports_flags_and_strata(day: dict[str, Any]) -> None:
    rec = day["draws"][0]
    assert rec.n_missing_labels == 0 and rec.reference_labels is not None
    assert all(s.n_labelled == s.n_h for s in rec.strata)
    # the noisy reference disagrees with the gold about 10% of the time
    dis = [s.disagreement for s in rec.strata if s.n_both >= 50]
    assert 0.05 < float(np.mean(dis)) < 0.15
    # slice domains exist and XSTest-sized slices with no positives are flagged, not hidden
    doms = [c for c in rec.cells if c.domain]
    assert {c.domain["source"] for c in doms} >= {"openai_moderation", "hatecheck"}


@pytest.mark.shared_data
def test_flat_design_flags_the_view_weighted_interval(day: dict[str, Any]) -> None:
    # the fixture's plan opts out of view bands (--no-view-bands): every cell with views says so and names
    # the fix, because that interval under-covers (docs/methods/production.md §7)
    rec = day["draws"][0]
    for c in rec.cells:
        assert any(f.startswith("views_flat_design") and "--view-bands" in f for f in c.flags)
