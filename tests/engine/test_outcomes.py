"""Per-item outcome taxonomy: a judge server that is down, refuses connections or times
out produces *transient* errors (never cached, retried on the next run, reported apart
from parse failures); unparsable answers are parse failures; both are data."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from audit.schema import TRANSIENT_ERRORS, error_class
from tests.helpers.cli import run_cli
from tests.helpers.stub_openai_server import StubOpenAIServer, ok, server_error
from tests.helpers.suites import base_config, write_config, write_suite


def _verdict(prompt: str) -> str:
    return 'Reasoning.\nVERDICT: {"violations": [], "rationale": "benign"}'


def _judge_cfg(tmp: Path, base_url: str) -> Path:
    cfg = base_config(write_suite(tmp), tmp / "runs")
    cfg["runner"]["error_budget"] = 1.0  # let the run finish so the record can be read
    cfg["moderators"] = [
        {
            "name": "judge",
            "type": "llm_judge",
            "batch_size": 8,
            "params": {
                "model": "stub-model",
                "backend": "openai_compat",
                "base_url": base_url,
                "preset": "platform_cot",
                "mode": "generate",
                "max_retries": 0,
                "timeout_s": 5,
                "categories": ["hate", "harassment"],
            },
        }
    ]
    cfg["tracking"]["enabled"] = False
    return write_config(tmp / "run.yaml", cfg)


def _entry(runs: Path) -> dict[str, Any]:
    recs = sorted(runs.glob("*/record.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(recs[-1].read_text())["results"][0]


def _cached_rows(runs: Path) -> int:
    con = sqlite3.connect(runs / "cache" / "predictions.sqlite")
    try:
        return int(con.execute("select count(*) from predictions").fetchone()[0])
    finally:
        con.close()


def test_taxonomy_classes() -> None:
    for t in ("timeout", "rate_limited", "server_error", "connection_error", "exception"):
        assert t in TRANSIENT_ERRORS and error_class(t) == "transient"
    assert error_class("parse_failure") == "parse_failure"
    assert error_class("bad_response") == error_class("http_error") == "model_error"


def test_server_errors_are_transient_and_retried_after_recovery(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with StubOpenAIServer() as srv:
        srv.default = server_error(503)
        path = _judge_cfg(tmp_path, srv.base_url)
        r = run_cli(capsys, "run", str(path), "--quiet")
        assert r.code == 0, r.err
        e = _entry(tmp_path / "runs")
        assert e["error_types"] == {"server_error": 40}
        overall = e["error_slices"][0]
        assert overall["n_transient"] == 40 and overall["n_parse_failures"] == 0
        assert overall["parse_failure_rate"]["value"] == 0.0
        assert _cached_rows(tmp_path / "runs") == 0, "a transient failure was cached"
        # the server is back: the rerun scores every item instead of replaying errors
        srv.default = ok(_verdict)
        r = run_cli(capsys, "run", str(path), "--quiet")
        assert r.code == 0, r.err
        e = _entry(tmp_path / "runs")
        assert e["n_errors"] == 0 and e["n_cached"] == 0
        assert _cached_rows(tmp_path / "runs") == 40


def test_refused_connection_is_transient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    path = _judge_cfg(tmp_path, f"http://127.0.0.1:{port}/v1")
    r = run_cli(capsys, "run", str(path), "--quiet")
    if r.code == 2:  # the backend may refuse to start against a dead server: also fine
        assert "127.0.0.1" in r.err
        return
    assert r.code == 0, r.err
    e = _entry(tmp_path / "runs")
    assert set(e["error_types"]) == {"connection_error"}
    assert _cached_rows(tmp_path / "runs") == 0


def test_unparsable_answers_are_parse_failures_and_cached(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with StubOpenAIServer() as srv:
        srv.default = ok(lambda prompt: "I cannot decide.")
        path = _judge_cfg(tmp_path, srv.base_url)
        r = run_cli(capsys, "run", str(path), "--quiet")
        assert r.code == 0, r.err
        e = _entry(tmp_path / "runs")
        assert e["error_types"] == {"parse_failure": 40}
        assert e["error_slices"][0]["n_transient"] == 0
        assert _cached_rows(tmp_path / "runs") == 40  # deterministic: replayed, not re-asked
