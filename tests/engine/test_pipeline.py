"""End to end through the CLI with the fake moderator: record, predictions, MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.cli import run_cli
from tests.helpers.suites import base_config, mini_rows, write_config, write_suite


def _mlflow_runs(runs: Path, experiment: str = "test"):
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], max_results=100), mlflow


def test_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    suite = write_suite(tmp_path)
    cfg = base_config(suite, runs)
    cfg["moderators"].append(
        {
            "name": "fake_b",
            "type": "fake",
            "params": {"seed": 2, "fail": {"m005": "scripted failure"}},
        }
    )
    path = write_config(tmp_path / "run.yaml", cfg)
    r = run_cli(capsys, "run", str(path))
    assert r.code == 0, r.err
    assert "record:" in r.out and "mini:test × fake_a" in r.out
    rec_path = next(runs.glob("*/record.json"))
    rec = json.loads(rec_path.read_text())
    assert rec["status"] == "finished" and rec["schema_version"] == 2
    assert rec["suites"]["mini:test"]["digest"] and len(rec["suites"]["mini:test"]["digest"]) == 64
    assert set(rec["provenance"]["git"]) == {"commit", "dirty"}
    assert rec["policy"]["ref"] == "platform-v1"
    res = {x["moderator"]: x for x in rec["results"]}
    assert res["fake_b"]["n_errors"] == 1
    m = res["fake_a"]["metrics"]
    for cat in ("overall", "hate", "harassment", "minor_sexual"):
        f1 = m[cat]["f1"]
        assert f1["ci_low"] <= f1["value"] <= f1["ci_high"]
    # categories the suite does not cover are not scored as misses
    assert "spam" not in m
    pred = pd.read_parquet(rec_path.parent / res["fake_b"]["predictions"])
    assert len(pred) == 40 and pred["id"].is_unique
    row = pred.set_index("id").loc["m005"]
    assert (
        row["error"] == "scripted failure"
        and pd.isna(row["score.hate"])
        and pd.isna(row["pred.hate"])
    )
    # unknown (not covered) categories keep gold -1
    assert (pred["gold.spam"] == -1).all()
    # MLflow: parent + one child per suite x moderator, all terminated
    client, mruns, _ = _mlflow_runs(runs)
    assert len(mruns) == 3 and all(x.info.status == "FINISHED" for x in mruns)
    children = [x for x in mruns if "mlflow.parentRunId" in x.data.tags]
    assert len(children) == 2
    ch = next(x for x in children if x.data.tags["audit.moderator"] == "fake_a")
    assert "mini/hate/f1" in ch.data.metrics and "mini/hate/f1_ci_low" in ch.data.metrics
    assert "mini/overall/auprc" in ch.data.metrics
    assert ch.data.tags["audit.suite_digest"] == rec["suites"]["mini:test"]["digest"]
    arts = {a.path for a in client.list_artifacts(ch.info.run_id)}
    assert "fp_fn.json" in arts and "predictions" in arts
    full = client.get_run(ch.info.run_id)
    assert full.inputs.dataset_inputs and full.inputs.dataset_inputs[0].dataset.name == "mini:test"


def test_unchanged_rerun_hits_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    path = write_config(tmp_path / "run.yaml", base_config(write_suite(tmp_path), runs))
    assert run_cli(capsys, "run", str(path), "--no-mlflow").code == 0
    assert run_cli(capsys, "run", str(path), "--no-mlflow").code == 0
    recs = sorted(runs.glob("*/record.json"))
    assert len(recs) == 2
    second = json.loads(recs[-1].read_text())
    assert second["results"][0]["n_cached"] == 40


def test_restricted_text_never_reaches_mlflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scan every MLflow artifact, param, tag and table for restricted item text."""
    runs = tmp_path / "runs"
    rows = mini_rows()
    secrets = [r["caption"] for r in rows if "minor_sexual" in r["labels"]]
    assert secrets
    cfg = base_config(write_suite(tmp_path, rows=rows), runs)
    # score everything as violating so restricted items show up as FP/FN candidates too
    cfg["moderators"][0]["params"] = {"default": 0.9, "categories": ["hate", "harassment"]}
    path = write_config(tmp_path / "run.yaml", cfg)
    assert run_cli(capsys, "run", str(path)).code == 0
    _client, mruns, _ = _mlflow_runs(runs)
    blobs: list[str] = []
    for p in (runs / "mlartifacts").rglob("*"):
        if p.is_file():
            blobs.append(p.read_bytes().decode("utf-8", errors="replace"))
    for x in mruns:
        blobs += [str(v) for v in x.data.params.values()] + [str(v) for v in x.data.tags.values()]
    text = "\n".join(blobs)
    assert "caption text" in text  # unrestricted FP text is logged, so the scan is meaningful
    for s in secrets:
        marker = s.split("RESTRICTED-SECRET-")[1]
        assert f"RESTRICTED-SECRET-{marker}" not in text


def test_disagreement_matrix_logged_for_moderator_pairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    cfg = base_config(write_suite(tmp_path), runs)
    cfg["moderators"].append({"name": "fake_b", "type": "fake", "params": {"seed": 9}})
    assert run_cli(capsys, "run", str(write_config(tmp_path / "run.yaml", cfg))).code == 0
    client, mruns, _ = _mlflow_runs(runs)
    parent = next(x for x in mruns if "mlflow.parentRunId" not in x.data.tags)
    table = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "disagreements/mini.json")).read_text()
    )
    cols = table["columns"]
    assert cols[:5] == ["moderator_a", "moderator_b", "category", "a", "b"]
    rows = [dict(zip(cols, r)) for r in table["data"]]
    hate = [r for r in rows if r["category"] == "hate"]
    assert sum(r["count"] for r in hate) == 40
    assert {r["moderator_a"] for r in rows} == {"fake_a"}
