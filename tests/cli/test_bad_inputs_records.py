"""Hostile run records, baselines and gate inputs, and the commands that read them
(``audit compare | gate | report | baseline update | validate | production | policy``).

Each case exits 2 (bad input) or 3 (the gate refuses a candidate it cannot trust) with one
line naming the file and the field, no traceback, and nothing written under ``runs/``.
Inputs live under ``tmp/in`` so that the runs folder (``tmp/runs``) must stay empty.

Classes: records truncated, of a past or future schema, with NaN / Infinity or negative
counts, pointing at missing or corrupt predictions, or of another suite digest;
snapshots of a future version or with item tables that lie; gate rules with typos,
numbers as strings, out-of-range levels or unknown metrics; missing and corrupt
inputs to report, validate, production and policy commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.helpers.cli import run_cli
from tests.helpers.hostile import (
    Case,
    Expect,
    as_expect,
    check_outcome,
    missing_from_table,
    rewrite_json,
)
from tests.helpers.runs import make_frame, make_run

CATS = ["hate", "harassment"]


def _pair(t: Path, *, digest_b: str = "d1") -> tuple[Path, Path]:
    """Two finished runs (A, B) of one suite × moderator, 80 items, under ``t/in``."""
    rng = np.random.default_rng(0)
    y = (rng.random((80, 2)) < 0.3).astype(int)
    fa = make_frame(y, np.clip(y * 0.6 + rng.random((80, 2)) * 0.5, 0, 1), CATS)
    fb = make_frame(y, np.clip(y * 0.6 + rng.random((80, 2)) * 0.5, 0, 1), CATS)
    for f in (fa, fb):
        f["restricted"] = False  # the column real runs write (the report redacts by it)
    a = make_run(t / "in", "run-a", {("mini", "m"): fa})
    b = make_run(t / "in", "run-b", {("mini", "m"): fb}, digest=digest_b)
    config = {"metrics": {"ci": 0.95, "bootstrap": 50, "seed": 0}}  # what the report reads
    for run in (a, b):
        rewrite_json(run / "record.json", lambda d: d.update(config=config))
    return a, b


def _rules(t: Path, **changes: Any) -> Path:
    rules: dict[str, Any] = {
        "version": 1,
        "alpha": 0.05,
        "n_boot": 50,
        "rules": [{"name": "recall", "metric": "recall", "margin": 0.5}],
    }
    rules.update(changes)
    p = t / "in" / "rules.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return p


def _gate(cand: Path, base: Path, rules: Path) -> list[str]:
    return ["gate", "--candidate", str(cand), "--baseline", str(base), "--rules", str(rules)]


def _compare(a: Path, b: Path) -> list[str]:
    return ["compare", str(a), str(b), "--no-mlflow", "--n-boot", "50"]


def _edit_record(run: Path, edit: Any) -> Path:
    return rewrite_json(run / "record.json", edit)


def _snapshot(t: Path, run: Path) -> Path:
    """A baseline snapshot of ``run`` written by the CLI itself."""
    from audit.cli import main

    out = t / "in" / "baselines"
    try:
        main(["baseline", "update", str(run), "--name", "base", "--out-dir", str(out)])
    except SystemExit as exc:
        assert exc.code == 0, exc.code
    return out / "base.json"


# --- run records read by compare / report / gate ------------------------------------------


def c_compare_run_missing(t: Path):
    a, _ = _pair(t)
    gone = t / "in" / "gone"
    return _compare(a, gone), str(gone), "", 2


def c_record_truncated(t: Path):
    a, b = _pair(t)
    rec = b / "record.json"
    rec.write_text(rec.read_text()[:200])
    return _compare(a, b), str(rec), ""


def c_record_empty_file(t: Path):
    a, b = _pair(t)
    (b / "record.json").write_text("")
    return _compare(a, b), str(b / "record.json"), ""


def c_record_is_list(t: Path):
    a, b = _pair(t)
    (b / "record.json").write_text("[]")
    return _compare(a, b), str(b / "record.json"), "(top level)"


def c_record_future_schema(t: Path):
    a, b = _pair(t)

    def edit(d: dict[str, Any]) -> None:
        d.pop("record_version")
        d["schema_version"] = 99

    _edit_record(b, edit)
    return _compare(a, b), str(b / "record.json"), "schema_version"


def c_record_schema_version_string(t: Path):
    a, b = _pair(t)

    def edit(d: dict[str, Any]) -> None:
        d.pop("record_version")
        d["schema_version"] = "2"

    _edit_record(b, edit)
    return _compare(a, b), str(b / "record.json"), "schema_version"


def c_record_nan_count(t: Path):
    a, b = _pair(t)
    rec = b / "record.json"
    rec.write_text(rec.read_text().replace('"n": 80', '"n": NaN', 1))
    return _compare(a, b), str(rec), "suites.mini:test.n"


def c_record_infinity_count(t: Path):
    a, b = _pair(t)
    rec = b / "record.json"
    rec.write_text(rec.read_text().replace('"n_errors": 0', '"n_errors": Infinity', 1))
    return _compare(a, b), str(rec), "results[0].n_errors"


def c_record_negative_count(t: Path):
    a, b = _pair(t)
    _edit_record(b, lambda d: d["results"][0].update(n=-80))
    return _compare(a, b), str(b / "record.json"), "results[0].n"


def c_record_unknown_status(t: Path):
    a, b = _pair(t)
    _edit_record(b, lambda d: d.update(status="finishd"))
    return _compare(a, b), str(b / "record.json"), "status"


def c_record_missing_run_id(t: Path):
    a, b = _pair(t)
    _edit_record(b, lambda d: d.pop("run_id"))
    return _compare(a, b), str(b / "record.json"), "run_id"


def c_record_predictions_missing(t: Path):
    a, b = _pair(t)
    (b / "predictions" / "mini__m.parquet").unlink()
    return _compare(a, b), "mini__m.parquet", "results[0].predictions"


def c_record_predictions_corrupt(t: Path):
    a, b = _pair(t)
    (b / "predictions" / "mini__m.parquet").write_bytes(b"PAR1 nonsense PAR1")
    return _compare(a, b), "mini__m.parquet", "results[0].predictions"


def c_record_predictions_escape(t: Path):
    # a predictions path that leaves the run folder is refused, not followed
    a, b = _pair(t)
    _edit_record(b, lambda d: d["results"][0].update(predictions="../../../../etc/passwd"))
    return _compare(a, b), str(b / "record.json"), "results[0].predictions"


def c_record_not_utf8(t: Path):
    a, b = _pair(t)
    rec = b / "record.json"
    rec.write_bytes(rec.read_bytes().replace(b'"run-b"', b'"run-\xff"'))
    return _compare(a, b), str(rec), ""


def c_record_deeply_nested(t: Path):
    a, b = _pair(t)
    (b / "record.json").write_text("[" * 100_000 + "]" * 100_000)
    return _compare(a, b), str(b / "record.json"), ""


def c_compare_other_suite_digest(t: Path):
    a, b = _pair(t, digest_b="d2")
    return _compare(a, b), f"{a / 'record.json'} vs {b / 'record.json'}", "suites.mini:test.digest"


def c_compare_unknown_metric(t: Path):
    a, b = _pair(t)
    return Expect([*_compare(a, b), "--metrics", "recal"], "--metrics", "[0]", extra=("'recall'",))


def c_report_run_missing(t: Path):
    gone = t / "in" / "gone"
    return ["report", str(gone), "--no-open", "--no-mlflow"], str(gone), ""


def c_report_record_corrupt(t: Path):
    a, _ = _pair(t)
    (a / "record.json").write_text('{"run_id": "run-a", "status": ')
    return ["report", str(a), "--no-open", "--no-mlflow"], str(a / "record.json"), ""


def c_report_predictions_corrupt(t: Path):
    a, _ = _pair(t)
    (a / "predictions" / "mini__m.parquet").write_bytes(b"not parquet")
    args = ["report", str(a), "--no-open", "--no-mlflow"]
    return args, str(a / "record.json"), "results[0].predictions"


def c_report_predictions_escape(t: Path):
    a, _ = _pair(t)
    outside = t / "in" / "outside.parquet"  # a readable file that is not the run's
    outside.write_bytes((a / "predictions" / "mini__m.parquet").read_bytes())
    _edit_record(a, lambda d: d["results"][0].update(predictions=str(outside)))
    args = ["report", str(a), "--no-open", "--no-mlflow"]
    return args, str(a / "record.json"), "results[0].predictions"


def c_baseline_update_run_missing(t: Path):
    gone = t / "in" / "gone"
    out = t / "in" / "baselines"
    return ["baseline", "update", str(gone), "--name", "b", "--out-dir", str(out)], str(gone), ""


def c_baseline_update_out_dir_is_file(t: Path):
    a, _ = _pair(t)
    f = t / "in" / "a_file"
    f.write_text("x")
    return ["baseline", "update", str(a), "--name", "b", "--out-dir", str(f)], str(f), ""


# --- the gate: rules, baselines, candidates ------------------------------------------------


def c_gate_rules_typo_did_you_mean(t: Path):
    a, b = _pair(t)
    rules = _rules(t, rules=[{"metric": "recall", "margn": 0.05}])
    return Expect(_gate(b, a, rules), str(rules), "rules[0].margn", extra=("'margin'",))


def c_gate_margin_as_string(t: Path):
    a, b = _pair(t)
    rules = _rules(t, rules=[{"metric": "recall", "margin": "0.05"}])
    return _gate(b, a, rules), str(rules), "rules[0].margin"


def c_gate_alpha_out_of_range(t: Path):
    a, b = _pair(t)
    rules = _rules(t, alpha=0.9)
    return _gate(b, a, rules), str(rules), "alpha"


def c_gate_n_boot_bool(t: Path):
    a, b = _pair(t)
    rules = _rules(t, n_boot=True)
    return _gate(b, a, rules), str(rules), "n_boot"


def c_gate_unknown_metric(t: Path):
    a, b = _pair(t)
    rules = _rules(t, rules=[{"metric": "recal", "margin": 0.05}])
    return _gate(b, a, rules), str(rules), "rules[0]"


def c_gate_rule_without_bound(t: Path):
    a, b = _pair(t)
    rules = _rules(t, rules=[{"metric": "recall"}])
    return _gate(b, a, rules), str(rules), "rules[0]"


def c_gate_budget_negative(t: Path):
    a, b = _pair(t)
    rules = _rules(t, budgets={"error_rate": {"max": -0.1}})
    return _gate(b, a, rules), str(rules), "budgets.error_rate.max"


def c_gate_rules_future_version(t: Path):
    a, b = _pair(t)
    rules = _rules(t, version=2)
    return _gate(b, a, rules), str(rules), "version"


def c_gate_rules_missing(t: Path):
    a, b = _pair(t)
    gone = t / "in" / "nope.yaml"
    return _gate(b, a, gone), str(gone), ""


def c_gate_rules_is_directory(t: Path):
    a, b = _pair(t)
    d = t / "in" / "rules.d"
    d.mkdir()
    return _gate(b, a, d), "rules.d", ""


def c_gate_baseline_truncated_snapshot(t: Path):
    a, b = _pair(t)
    snap = _snapshot(t, a)
    snap.write_text(snap.read_text()[:300])
    return _gate(b, snap, _rules(t)), str(snap), ""


def c_gate_baseline_future_snapshot(t: Path):
    a, b = _pair(t)
    snap = rewrite_json(_snapshot(t, a), lambda d: d.update(snapshot_version=2))
    return _gate(b, snap, _rules(t)), str(snap), "snapshot_version"


def c_gate_baseline_negative_count(t: Path):
    a, b = _pair(t)
    snap = rewrite_json(_snapshot(t, a), lambda d: d["results"][0].update(n=-1))
    return _gate(b, snap, _rules(t)), str(snap), "results[0].n"


def c_gate_baseline_nan_metric(t: Path):
    a, b = _pair(t)
    snap = _snapshot(t, a)
    text = snap.read_text()
    snap.write_text(text.replace('"n_errors": 0', '"n_errors": NaN', 1))
    return _gate(b, snap, _rules(t)), str(snap), "results[0].n_errors"


def c_gate_candidate_running(t: Path):
    a, b = _pair(t)
    _edit_record(b, lambda d: d.update(status="running"))
    return Expect(_gate(b, a, _rules(t)), "run-b", "", code=3, extra=("'running'",))


def c_gate_candidate_failed(t: Path):
    a, b = _pair(t)
    _edit_record(b, lambda d: d.update(status="failed"))
    return Expect(_gate(b, a, _rules(t)), "run-b", "", code=3, extra=("'failed'",))


def c_gate_candidate_missing_pair(t: Path):
    # an interrupted candidate that scored only one of the baseline's two moderators
    rng = np.random.default_rng(1)
    y = (rng.random((60, 2)) < 0.3).astype(int)
    f = make_frame(y, rng.random((60, 2)), CATS)
    base = make_run(t / "in", "base", {("mini", "m"): f, ("mini", "m2"): f})
    cand = make_run(t / "in", "cand", {("mini", "m"): f})
    return Expect(_gate(cand, base, _rules(t)), "cand", "", code=3, extra=("mini:test × m2",))


# --- validate, production, policy -----------------------------------------------------------


def c_validate_missing_path(t: Path):
    gone = t / "in" / "nothing.yaml"
    return Expect(["validate", str(gone)], str(gone), "", report=True)


def c_validate_corrupt_card(t: Path):
    d = t / "in" / "suites" / "bad"
    d.mkdir(parents=True)
    card = d / "suite.yaml"
    card.write_text("name: bad\nsource: [\n")
    return Expect(["validate", str(card)], str(card), "", report=True)


def c_production_check_card_missing(t: Path):
    gone = t / "in" / "logs.yaml"
    return ["production", "check", str(gone), "--period", "2026-01-01"], str(gone), ""


def c_production_check_card_unknown_key(t: Path):
    p = t / "in" / "logs.yaml"
    p.parent.mkdir(parents=True)
    p.write_text("logs_version: 1\nnmae: x\n")
    return ["production", "check", str(p), "--period", "2026-01-01"], str(p), ""


def c_production_estimate_manifest_corrupt(t: Path):
    m = t / "in" / "sample" / "manifest.json"
    m.parent.mkdir(parents=True)
    m.write_text('{"plan": ')
    human = t / "in" / "human.csv"
    human.write_text("id,label\n")
    return ["production", "estimate", str(m), "--human", str(human), "--no-mlflow"], str(m), ""


def c_policy_diff_unknown_version(t: Path):
    return ["policy", "diff", "platform-v1", "platform-v7"], "platform-v7", ""


def c_policy_diff_corrupt_file(t: Path):
    p = t / "in" / "policy.yaml"
    p.parent.mkdir(parents=True)
    p.write_text("policy: x\ncategories:\n  - id: hate\n  - id: hate\n    name: [\n")
    return ["policy", "diff", "platform-v1", str(p)], str(p), ""


CASES: list[Case] = [v for k, v in list(globals().items()) if k.startswith("c_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[2:] for c in CASES])
def test_bad_record_or_gate_input(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = as_expect(case(tmp_path))
    r = run_cli(capsys, *exp.args)
    check_outcome(exp, r.code, r.out, r.err, tmp_path / "runs")


def test_the_unbroken_inputs_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Control: the same builders without the hostile edit compare, gate and report."""
    a, b = _pair(tmp_path)
    assert run_cli(capsys, *_compare(a, b)).code == 0
    r = run_cli(capsys, *_gate(b, a, _rules(tmp_path)))
    assert r.code in (0, 1), r.err
    snap = _snapshot(tmp_path, a)
    assert json.loads(snap.read_text())["snapshot_version"] == 1
    assert run_cli(capsys, "report", str(a), "--no-open", "--no-mlflow").code == 0


def test_every_case_is_in_the_table() -> None:
    """docs/hostile-inputs.md lists every case (scripts/hostile_table.py regenerates it)."""
    assert missing_from_table("test_bad_inputs_records", CASES) == []
