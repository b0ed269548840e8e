"""Paired comparison: McNemar, deltas on a tiny pair of runs, ``audit compare`` JSON.

The synthetic record builders live in ``tests/helpers/runs.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from audit.release.compare import align, mcnemar, paired_compare
from tests.helpers.cli import run_cli
from tests.helpers.runs import make_frame, make_run


@pytest.mark.parametrize("b,c", [(0, 0), (0, 1), (3, 9), (12, 12), (1, 23), (24, 0)])
def test_mcnemar_exact_matches_scipy_binomtest(b: int, c: int) -> None:
    res = mcnemar(b, c)
    assert res.method == "exact"
    want = 1.0 if b + c == 0 else stats.binomtest(b, b + c, 0.5).pvalue
    assert res.p_value == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_mcnemar_chi2_with_continuity_correction_from_25() -> None:
    res = mcnemar(20, 5)
    assert res.method == "chi2-cc"
    assert res.statistic == pytest.approx((15 - 1) ** 2 / 25)
    assert res.p_value == pytest.approx(stats.chi2.sf(196 / 25, 1))


def _tiny_pair() -> tuple[pd.DataFrame, pd.DataFrame]:
    # 8 positives, 8 negatives, one category "hate"
    y = np.array([1] * 8 + [0] * 8)
    pa = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    pb = np.array([1, 1, 1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1], bool)
    fa = make_frame(y, np.where(pa, 0.9, 0.1), ["hate"])
    fb = make_frame(y, np.where(pb, 0.9, 0.1), ["hate"])
    return fa, fb


def test_tiny_pair_expected_deltas_mcnemar_and_flips() -> None:
    fa, fb = _tiny_pair()
    out = paired_compare(align(fa, fb), metrics=["recall", "fpr", "precision"], n_boot=200)
    h = out["hate"]
    assert h.n == 16
    assert h.metrics["recall"].a == pytest.approx(0.5)
    assert h.metrics["recall"].delta == pytest.approx(0.75 - 0.5)
    assert h.metrics["fpr"].delta == pytest.approx(0.25 - 0.25)
    lo, hi = h.metrics["recall"].lo, h.metrics["recall"].hi
    assert lo <= 0.25 <= hi
    assert (h.mcnemar["recall"].b, h.mcnemar["recall"].c) == (1, 3)
    assert (h.mcnemar["fpr"].b, h.mcnemar["fpr"].c) == (1, 1)
    # A right on 4 positives + 6 negatives = 10; B wrong on 1 positive + 1 negative of them
    assert h.negative_flip_rate == pytest.approx(2 / 10)
    assert h.n_flips == 2


def test_identical_runs_have_zero_width_delta() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((300, 2)) < 0.3).astype(int)
    f = make_frame(y, rng.random((300, 2)), ["a", "b"])
    out = paired_compare(align(f, f.copy()), n_boot=100)
    for cat in ("a", "b", "overall"):
        for d in out[cat].metrics.values():
            if np.isfinite(d.delta):
                assert d.delta == 0 and d.lo == 0 and d.hi == 0


def test_cell_path_agrees_with_row_path() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    y = (rng.random(n) < 0.3).astype(int)
    sa = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)
    sb = np.clip(sa + rng.normal(0, 0.08, n) + 0.03 * y, 0, 1)
    al = align(make_frame(y, sa, ["a"]), make_frame(y, sb, ["a"]))
    kw = {"metrics": ["recall", "f1", "auroc", "auprc"], "n_boot": 400}
    row, cell = paired_compare(al, method="row", **kw), paired_compare(al, method="cell", **kw)
    for m in kw["metrics"]:
        r, c = row["a"].metrics[m], cell["a"].metrics[m]
        assert r.delta == pytest.approx(c.delta)
        assert c.hi - c.lo == pytest.approx(r.hi - r.lo, rel=0.25)


def test_audit_compare_json_and_digest_check(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fa, fb = _tiny_pair()
    a = make_run(tmp_path, "runA", {("s", "m"): fa})
    b = make_run(tmp_path, "runB", {("s", "m"): fb})
    out = tmp_path / "cmp.json"
    res = run_cli(
        capsys, "compare", str(a), str(b), "--n-boot", "100", "--json", str(out), "--no-mlflow"
    )
    assert res.code == 0, res.err
    assert "hate" in res.out
    data = json.loads(out.read_text())
    assert data["a"] == "runA" and data["b"] == "runB"
    s = data["suites"][0]
    assert (s["suite"], s["moderator_a"], s["n"]) == ("s", "m", 16)
    rec = s["categories"]["hate"]
    assert rec["metrics"]["recall"]["delta"] == pytest.approx(0.25)
    assert rec["mcnemar"]["recall"]["method"] == "exact"
    assert rec["negative_flip_rate"] == pytest.approx(0.2)
    c = make_run(tmp_path, "runC", {("s", "m"): fb}, digest="other")
    assert run_cli(capsys, "compare", str(a), str(c), "--no-mlflow").code == 2
    res = run_cli(
        capsys,
        "compare",
        str(a),
        str(c),
        "--allow-digest-mismatch",
        "--no-mlflow",
        "--n-boot",
        "50",
    )
    assert res.code == 0, res.err


def test_compare_pairs_explicit_moderators_and_logs_to_mlflow(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fa, fb = _tiny_pair()
    a = make_run(tmp_path, "runA", {("s", "old"): fa, ("s", "other"): fa})
    b = make_run(tmp_path, "runB", {("s", "new"): fb})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'ml.db'}")
    res = run_cli(
        capsys,
        "compare",
        str(a),
        str(b),
        "--moderator-a",
        "old",
        "--moderator-b",
        "new",
        "--n-boot",
        "50",
    )
    assert res.code == 0, res.err
    assert "mlflow run:" in res.out
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'ml.db'}")
    exp = client.get_experiment_by_name("audit-compare")
    run = client.search_runs([exp.experiment_id])[0]
    assert run.data.tags["audit.run_a"] == "runA" and run.data.tags["audit.run_b"] == "runB"
    assert run.data.metrics["delta/s/hate/recall"] == pytest.approx(0.25)
    assert "delta/s/hate/recall_ci_low" in run.data.metrics
