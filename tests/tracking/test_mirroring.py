"""The MLflow mirror as users read it: parent summaries, real times, names, honest counts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.suites import base_config, write_config, write_suite


def test_mirror_conventions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path)
    runs = tmp_path / "runs"
    cfg = base_config(suite, runs)
    cfg["moderators"].append({"name": "fake_b", "type": "fake", "params": {"seed": 2}})
    r = run_cli(capsys, "run", str(write_config(tmp_path / "run.yaml", cfg)), "--quiet")
    assert r.code == 0, r.err
    (rec_path,) = runs.glob("*/record.json")
    rec = json.loads(rec_path.read_text())
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    exp = client.get_experiment_by_name("test")
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    found = client.search_runs([exp.experiment_id])
    (parent,) = [x for x in found if "mlflow.parentRunId" not in x.data.tags]
    children = [x for x in found if "mlflow.parentRunId" in x.data.tags]
    # the parent compares audits at a glance: overall F1/recall/FPR/AUPRC with intervals
    pm = parent.data.metrics
    for mod in ("fake_a", "fake_b"):
        for m in ("f1", "recall", "fpr", "auprc"):
            key = f"{mod}/mini/overall/{m}"
            assert key in pm and f"{key}_ci_low" in pm and f"{key}_ci_high" in pm, key
        assert pm[f"{mod}/mini/overall/n"] == 40
    # runs carry the audit's real start and end
    started = int(datetime.fromisoformat(rec["started_at"]).timestamp() * 1000)
    ended = int(datetime.fromisoformat(rec["finished_at"]).timestamp() * 1000)
    for run in (parent, *children):
        assert run.info.start_time == started and run.info.end_time == ended
    # child names lead with the moderator
    assert sorted(c.info.run_name for c in children) == ["fake_a · mini", "fake_b · mini"]
    cm = children[0].data.metrics
    # counts carry no interval; support is logged once, as /n
    assert "mini/hate/n" in cm and "mini/hate/n_pos" in cm
    assert not [k for k in cm if k.rsplit("/", 1)[-1] in ("n_ci_low", "n_ci_high", "n_pos_ci_low")]
    assert not [k for k in cm if "/support" in k]
    assert "mini/hate/f1_ci_low" in cm
