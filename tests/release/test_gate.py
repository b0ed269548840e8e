"""Release gate: truth table through the CLI (exit codes), JUnit / step summary, snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers.cli import run_cli
from tests.helpers.runs import make_frame, make_run

N_POS = N_NEG = 1000


def _data(
    recall_drop: int = 0, fpr_rise: int = 0, errors: int = 0, flips: int = 0, no_pos_b: bool = False
) -> tuple:
    """Baseline (recall 0.9, FPR 0.1) and a candidate that loses ``recall_drop`` true
    positives, gains ``fpr_rise`` false positives, fails on ``errors`` items and swaps
    ``flips`` positives both ways (discordance without a net change)."""
    y = np.array([1] * N_POS + [0] * N_NEG)
    pa = np.zeros(y.size, bool)
    pa[: int(0.9 * N_POS)] = True  # recall 0.9
    pa[N_POS : N_POS + N_NEG // 10] = True  # FPR 0.1
    pb = pa.copy()
    pb[: recall_drop + flips] = False
    pb[int(0.9 * N_POS) : int(0.9 * N_POS) + flips] = True
    pb[N_POS + N_NEG // 10 : N_POS + N_NEG // 10 + fpr_rise] = True
    if no_pos_b:
        pb[:] = False
    err = np.zeros(y.size, bool)
    err[N_POS + N_NEG - errors :] = True
    sl = {"lang": ["en" if i % 2 else "de" for i in range(y.size)]}
    fa = make_frame(y, np.where(pa, 0.9, 0.1), ["hate"], slices=sl)
    fb = make_frame(y, np.where(pb, 0.9, 0.1), ["hate"], errors=err, slices=sl)
    return fa, fb


def _gate(capsys, tmp_path: Path, rules: dict, cand_kw: dict | None = None, **run_kw) -> int:
    fa, fb = _data(**(cand_kw or {}))
    base = make_run(tmp_path, "base", {("s", "m"): fa})
    cand = make_run(tmp_path, "cand", {("s", "m"): fb}, **run_kw)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"n_boot": 200, **rules}))
    res = run_cli(
        capsys, "gate", "--candidate", str(cand), "--baseline", str(base), "--rules", str(path)
    )
    return res.code


def R(**kw) -> dict:
    return {"rules": [{"categories": ["hate"], **kw}]}


CASES = [
    # id, rules, candidate changes, run kwargs, expected exit
    ("higher-abs-equal-pass", R(metric="recall", margin=0.02), {}, {}, 0),
    ("higher-abs-noisy-pass", R(metric="recall", margin=0.03), {"flips": 20}, {}, 0),
    ("higher-abs-regress-fail", R(metric="recall", margin=0.015), {"recall_drop": 40}, {}, 1),
    ("higher-rel-pass", R(metric="recall", margin=0.1, relative=True), {"recall_drop": 20}, {}, 0),
    ("higher-rel-fail", R(metric="recall", margin=0.02, relative=True), {"recall_drop": 40}, {}, 1),
    ("lower-abs-fail", R(metric="fpr", margin=0.01), {"fpr_rise": 40}, {}, 1),
    ("lower-abs-better-pass", R(metric="fpr", margin=0.01), {"fpr_rise": 0}, {}, 0),
    ("floor-higher-fail", R(metric="recall", floor=0.9), {"recall_drop": 10}, {}, 1),
    ("floor-higher-pass", R(metric="recall", floor=0.85), {"recall_drop": 10}, {}, 0),
    ("floor-lower-fail", R(metric="fpr", floor=0.1), {"fpr_rise": 10}, {}, 1),
    (
        "warn-only-fail-passes",
        R(metric="recall", margin=0.01, severity="warn"),
        {"recall_drop": 40},
        {},
        0,
    ),
    ("nan-unverifiable", R(metric="precision", margin=0.05), {"no_pos_b": True}, {}, 3),
    (
        "missing-slice-unverifiable",
        R(metric="recall", margin=0.05, slice={"surface": "x"}),
        {},
        {},
        3,
    ),
    ("slice-pass", R(metric="recall", margin=0.05, slice={"lang": "en"}), {}, {}, 0),
    ("min-n-uninformative", R(metric="recall", margin=0.05, min_n=5000), {}, {}, 3),
    (
        "min-n-allowed",
        R(metric="recall", margin=0.05, min_n=5000, allow_uninformative=True),
        {},
        {},
        0,
    ),
    (
        "mde-wide-but-clear-regression-fails",
        R(metric="recall", margin=0.005),
        {"recall_drop": 60},
        {},
        1,
    ),
    ("mde-uninformative", R(metric="recall", margin=0.005), {"flips": 60}, {}, 3),
    ("digest-mismatch", R(metric="recall", margin=0.05), {}, {"digest": "d2"}, 3),
    (
        "digest-mismatch-allowed",
        {**R(metric="recall", margin=0.05), "allow_digest_mismatch": True},
        {},
        {"digest": "d2"},
        0,
    ),
    ("policy-mismatch", R(metric="recall", margin=0.05), {}, {"policy": ("platform-v2", "p2")}, 3),
    ("budget-error-fail", {"budgets": {"error_rate": {"max": 0.01}}}, {"errors": 40}, {}, 1),
    (
        "budget-parse-pass",
        {"budgets": {"parse_failure_rate": {"max": 0.05}}},
        {"errors": 40},
        {},
        0,
    ),
    (
        "budget-nfr-fail",
        {"budgets": {"negative_flip_rate": {"max": 0.01, "categories": ["hate"]}}},
        {"flips": 40},
        {},
        1,
    ),
    ("budget-nfr-pass", {"budgets": {"negative_flip_rate": {"max": 0.05}}}, {"flips": 20}, {}, 0),
    (
        "fail-beats-unverifiable",
        {
            "rules": R(metric="recall", margin=0.01)["rules"]
            + R(metric="recall", margin=0.05, min_n=9999)["rules"]
        },
        {"recall_drop": 40},
        {},
        1,
    ),
    ("direction-none-config-error", R(metric="support", margin=0.05), {}, {}, 2),
    ("unknown-key-config-error", R(metric="recall", margin=0.05, marign=1), {}, {}, 2),
    ("no-margin-no-floor-config-error", R(metric="recall"), {}, {}, 2),
]


@pytest.mark.parametrize(
    "rules,cand_kw,run_kw,code", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_gate_truth_table(
    capsys, tmp_path: Path, rules: dict, cand_kw: dict, run_kw: dict, code: int
) -> None:
    assert _gate(capsys, tmp_path, rules, cand_kw, **run_kw) == code


def test_junit_summary_and_snapshot_baseline(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fa, fb = _data(recall_drop=40)
    base = make_run(tmp_path, "base", {("s", "m"): fa})
    cand = make_run(tmp_path, "cand", {("s", "m"): fb})
    rules = tmp_path / "r.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "n_boot": 200,
                **R(metric="recall", margin=0.01),
                "budgets": {"error_rate": {"max": 0.1}},
            }
        )
    )
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    res = run_cli(
        capsys, "baseline", "update", str(base), "--name", "b1", "--out-dir", str(tmp_path / "bl")
    )
    assert res.code == 0, res.err
    snap = json.loads((tmp_path / "bl" / "b1.json").read_text())
    assert snap["snapshot_version"] == 1 and snap["results"][0]["items"]
    for baseline in (str(base), str(tmp_path / "bl" / "b1.json")):
        junit, js = tmp_path / "j.xml", tmp_path / "g.json"
        args = ["gate", "--candidate", str(cand), "--baseline", baseline, "--rules", str(rules)]
        res = run_cli(capsys, *args, "--junit", str(junit), "--json", str(js))
        assert res.code == 1, res.err
        xml = junit.read_text()
        assert xml.count("<testcase") == 2 and xml.count("<failure") == 1
        assert json.loads(js.read_text())["verdict"] == "FAIL"
    assert summary.read_text().count("## audit gate: FAIL") == 2


def test_baseline_from_mlflow_by_id_and_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    from audit.release.gate import resolve_side

    uri = f"sqlite:///{tmp_path / 'ml.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    fa, _ = _data()
    base = make_run(tmp_path, "base", {("s", "m"): fa})
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("audit", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp, tags={"audit.run_id": "base", "release": "v1"}).info.run_id
    client.log_artifact(parent, str(base / "record.json"))
    child = client.create_run(exp, tags={"mlflow.parentRunId": parent}).info.run_id
    client.log_artifact(
        child, str(base / "predictions" / "s__m.parquet"), artifact_path="predictions"
    )
    for i, ref in enumerate((f"mlflow:{parent}", "mlflow-tag:release=v1")):
        side = resolve_side(ref, tmp_path / f"dl{i}")
        assert side.run_id == "base" and side.mlflow_parent == parent
        assert len(side.results[0].load()) == len(fa)
