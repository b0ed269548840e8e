"""Hand-made run records for tests that need a past run without scoring one.

They are written in the version-1 layout and so also exercise the migration to the
current typed record on every load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_v1_record(
    run: Path,
    *,
    run_id: str,
    results: list[dict[str, Any]],
    suites: dict[str, dict[str, Any]],
    policy: tuple[str, str] = ("platform-v1", "p1"),
    moderators: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """``run/record.json`` for ``results`` (each: suite, split, moderator, key, n,
    n_errors, error_types, predictions, metrics) over ``suites``."""
    rec = {
        "record_version": 1,
        "run_id": run_id,
        "status": "finished",
        "started_at": "2026-01-01T00:00:00+00:00",
        "config": {},
        "config_path": "run.yaml",
        "config_hash": "0" * 64,
        "policy": {"ref": policy[0], "digest": policy[1]},
        "suites": suites,
        "moderators": moderators or {},
        "provenance": {
            "git": {"commit": None, "dirty": None},
            "python": "3",
            "platform": "test",
            "host": "test",
            "pid": 1,
        },
        "results": results,
        "mlflow": None,
    }
    run.mkdir(parents=True, exist_ok=True)
    (run / "record.json").write_text(json.dumps(rec), encoding="utf-8")
    return run
