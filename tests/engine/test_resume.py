"""SIGKILL mid-scoring, rerun: resumes from the cache, predictions complete with no
duplicates, the killed record is marked interrupted, and no MLflow run is RUNNING."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.cli import run_cli
from tests.helpers.suites import base_config, write_config, write_suite


def _cached(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(str(db), timeout=5) as c:
            return int(c.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_sigkill_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    cfg = base_config(write_suite(tmp_path), runs)
    cfg["moderators"][0]["params"] = {"seed": 3, "sleep_per_batch_s": 0.25}
    cfg["moderators"][0]["batch_size"] = 4
    path = write_config(tmp_path / "run.yaml", cfg)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "audit", "run", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = runs / "cache" / "predictions.sqlite"
    deadline = time.time() + 120
    while _cached(db) < 12 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _cached(db)
    assert 12 <= done_before < 40
    killed = json.loads(next(runs.glob("*/record.json")).read_text())
    assert killed["status"] == "running"

    r = run_cli(capsys, "run", str(path))
    assert r.code == 0, r.err
    recs = {
        json.loads(p.read_text())["run_id"]: json.loads(p.read_text())
        for p in runs.glob("*/record.json")
    }
    assert recs[killed["run_id"]]["status"] == "interrupted"
    new = next(v for k, v in recs.items() if k != killed["run_id"])
    assert new["status"] == "finished"
    assert new["results"][0]["n_cached"] >= done_before
    pred = pd.read_parquet(runs / new["run_id"] / new["results"][0]["predictions"])
    assert len(pred) == 40 and pred["id"].is_unique and pred["error"].isna().all()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    exp = client.get_experiment_by_name("test")
    statuses = [x.info.status for x in client.search_runs([exp.experiment_id])]
    assert statuses and "RUNNING" not in statuses
