"""The tracking store: concurrent first runs, half-migrated stores, unreachable servers."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.suites import base_config, write_config, write_suite

REPO = Path(__file__).resolve().parents[2]


def test_four_concurrent_first_runs_share_a_fresh_store(tmp_path: Path) -> None:
    """Four audits started at once on an empty runs/ folder: every one is recorded intact
    (MLflow migrates the new SQLite schema once, under the store lock)."""
    suite = write_suite(tmp_path)
    runs = tmp_path / "runs"
    cfgs = []
    for i in range(4):
        cfg = base_config(suite, runs, name=f"concurrent-{i}")
        cfg["metrics"]["bootstrap"] = 0
        cfgs.append(write_config(tmp_path / f"run{i}.yaml", cfg))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "audit", "run", str(c), "--quiet"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in cfgs
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    db = runs / "mlflow.db"
    con = sqlite3.connect(db)
    try:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    finally:
        con.close()
    assert not [t for t in tables if t.startswith("_alembic_tmp_")]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("test")
    assert exp is not None
    runs_found = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs_found if "mlflow.parentRunId" not in r.data.tags]
    assert sorted(r.data.tags["audit.run_id"].split("-")[2] for r in parents) == [
        "0",
        "1",
        "2",
        "3",
    ]
    assert all(r.info.status == "FINISHED" for r in runs_found)
    children = [r for r in runs_found if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4 and all(r.data.metrics for r in children)
    records = [json.loads(p.read_text()) for p in runs.glob("*/record.json")]
    assert len(records) == 4 and {r["status"] for r in records} == {"finished"}


def test_half_migrated_store_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path)
    runs = tmp_path / "runs"
    runs.mkdir()
    con = sqlite3.connect(runs / "mlflow.db")
    con.execute("create table experiments (experiment_id integer)")
    con.execute("create table _alembic_tmp_tags (key text)")
    con.commit()
    con.close()
    cfg = write_config(tmp_path / "run.yaml", base_config(suite, runs))
    r = run_cli(capsys, "run", str(cfg))
    assert r.code == 3, r.err
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "half-migrated" in lines[0] and "mlflow.db" in lines[0]
    assert "_alembic_tmp_tags" in lines[0] and "Fix:" in lines[0]
    assert not list(runs.glob("*/record.json")), "no run may start on a broken store"


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_server_fails_fast_before_scoring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path)
    runs = tmp_path / "runs"
    cfg = base_config(suite, runs)
    cfg["tracking"]["uri"] = f"http://127.0.0.1:{_closed_port()}"
    path = write_config(tmp_path / "run.yaml", cfg)
    t0 = time.monotonic()
    r = run_cli(capsys, "run", str(path))
    took = time.monotonic() - t0
    assert r.code == 3, r.err
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unreachable" in lines[0] and "--no-mlflow" in lines[0]
    assert took < 60, f"fail-fast took {took:.0f} s"
    assert not list(runs.glob("*/record.json"))


def test_store_lost_after_scoring_marks_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store answers at start but the mirror fails: the record stays finished (its
    numbers are complete) and says the mirror failed; exit 3 with one line."""
    from audit.errors import TrackingError
    from audit.tracking import mirroring as mirror_mod

    def broken(*a: object, **k: object) -> None:
        raise TrackingError("writing to MLflow failed: connection reset", where="test")

    monkeypatch.setattr(mirror_mod, "mirror", broken)
    suite = write_suite(tmp_path)
    runs = tmp_path / "runs"
    path = write_config(tmp_path / "run.yaml", base_config(suite, runs))
    r = run_cli(capsys, "run", str(path))
    assert r.code == 3
    assert "not mirrored to MLflow" in r.err and len(r.err.strip().splitlines()) == 1
    (rec,) = [json.loads(p.read_text()) for p in runs.glob("*/record.json")]
    assert rec["status"] == "finished"
    assert rec["mlflow"]["status"] == "failed" and "connection reset" in rec["mlflow"]["error"]
