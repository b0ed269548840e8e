"""``audit drift``: tables, JSON, exit codes, policy boundaries, MLflow series."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import run_cli
from tests.helpers.drift_runs import MakeRun


def _scores(seed: int, a: float = 0.5, n: int = 3000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"hate": rng.beta(0.5, 3, n), "spam": rng.beta(a, 3, n)}


def test_no_drift_exit_0_and_json(
    make_run: MakeRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a = make_run("A", _scores(0))
    b = make_run("B", _scores(1))
    out = tmp_path / "d.json"
    r = run_cli(capsys, "drift", str(a), str(b), "--fail-on", "alert", "--json", str(out))
    assert r.code == 0, r.err
    assert "s1:test × m1" in r.out and "OK" in r.out
    doc = json.loads(out.read_text())
    cats = {c["category"]: c for c in doc["results"][0]["report"]["categories"]}
    assert set(cats) == {"hate", "spam", "overall"} and not doc["alert"]
    assert cats["hate"]["bins"]["edges"] and cats["hate"]["decision_rate"]["method"].startswith(
        "newcombe"
    )


def test_alert_exit_1_only_when_asked(
    make_run: MakeRun, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_run("A", _scores(0))
    b = make_run("B", _scores(1, a=1.5))
    r = run_cli(capsys, "drift", str(a), str(b), "--persistence", "1/1", "--fail-on", "alert")
    assert r.code == 1 and "ALERT" in r.out
    r = run_cli(capsys, "drift", str(a), str(b), "--persistence", "1/1")
    assert r.code == 0


def test_series_three_runs_pending_then_alert(
    make_run: MakeRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    runs = [
        make_run("A", _scores(0)),
        make_run("B", _scores(1, a=1.5)),
        make_run("C", _scores(2, a=1.5)),
    ]
    out = tmp_path / "d.json"
    r = run_cli(capsys, "drift", *map(str, runs), "--persistence", "2/2", "--json", str(out))
    assert r.code == 0
    reps = [x["report"] for x in json.loads(out.read_text())["results"]]
    states = [{c["category"]: c["state"] for c in rep["categories"]}["spam"] for rep in reps]
    assert states == ["PENDING", "ALERT"]


def test_policy_change_is_an_error_unless_allowed(
    make_run: MakeRun, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_run("A", _scores(0))
    b = make_run("B", _scores(1), policy_digest="e" * 64)
    r = run_cli(capsys, "drift", str(a), str(b))
    assert r.code == 2 and "policy versions" in r.err
    r = run_cli(capsys, "drift", str(a), str(b), "--allow-policy-change")
    assert r.code == 0 and "policy break" in r.out
    # in a longer series the break is marked and a new reference starts there
    c = make_run("C", _scores(2, a=1.5), policy_digest="e" * 64)
    r = run_cli(capsys, "drift", str(a), str(b), str(c), "--persistence", "1/1")
    assert r.code == 0 and "policy version changed at B" in r.out
    assert "B → C" in r.out and "A → B" not in r.out


def test_usage_errors(make_run: MakeRun, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run("A", _scores(0))
    assert run_cli(capsys, "drift", str(a)).code == 2
    assert run_cli(capsys, "drift", str(a), str(a), "--persistence", "3/2").code == 2
    assert run_cli(capsys, "drift", str(a), "nope").code == 2


def test_bad_scores_exit_3(make_run: MakeRun, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run("A", _scores(0))
    bad = _scores(1)
    bad["hate"][0] = 1.7
    b = make_run("B", bad)
    r = run_cli(capsys, "drift", str(a), str(b))
    assert r.code == 3 and "outside [0, 1]" in r.err


def test_mlflow_series(
    make_run: MakeRun, capsys: pytest.CaptureFixture[str], runs_dir: Path
) -> None:
    runs = [make_run("A", _scores(0)), make_run("B", _scores(1)), make_run("C", _scores(2, a=1.0))]
    r = run_cli(capsys, "drift", *map(str, runs), "--mlflow")
    assert r.code == 0, r.err
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{runs_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("audit-drift")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    hist = client.get_metric_history(run.info.run_id, "drift/spam/psi")
    assert [m.step for m in hist] == [1, 2]
    assert hist[1].value > hist[0].value


def test_two_runs_default_rule_is_one_of_one(
    make_run: MakeRun, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_run("A", _scores(0))
    b = make_run("B", _scores(1, a=1.5))
    assert run_cli(capsys, "drift", str(a), str(b), "--fail-on", "alert").code == 1
    c = make_run("C", _scores(2))
    # three runs: 2-of-3 by default, one breaching period is only PENDING
    r = run_cli(capsys, "drift", str(a), str(b), str(c), "--fail-on", "alert")
    assert r.code == 0 and "PENDING" in r.out
