"""Synthetic run records with prediction Parquet files, for comparison and gate tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def make_frame(
    y: np.ndarray,
    score: np.ndarray,
    cats: list[str],
    *,
    pred: np.ndarray | None = None,
    errors: np.ndarray | None = None,
    slices: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """A predictions frame in the run-record layout (ids i0..; overall = any category)."""
    y = np.asarray(y).reshape(len(y), -1)
    score = np.asarray(score, float).reshape(y.shape)
    pred = score >= 0.5 if pred is None else np.asarray(pred, bool).reshape(y.shape)
    n = y.shape[0]
    d: dict[str, Any] = {
        "id": [f"i{j}" for j in range(n)],
        "content_hash": [f"h{j}" for j in range(n)],
    }
    for k, c in enumerate(cats):
        d[f"score.{c}"] = score[:, k]
        d[f"pred.{c}"] = pd.array(pred[:, k], dtype="boolean")
        d[f"gold.{c}"] = y[:, k].astype(np.int8)
    d["score.overall"] = score.max(axis=1)
    d["pred.overall"] = pd.array(pred.any(axis=1), dtype="boolean")
    d["gold.overall"] = y.max(axis=1).astype(np.int8)
    err = np.zeros(n, bool) if errors is None else np.asarray(errors, bool)
    d["error"] = [("boom" if e else None) for e in err]
    d["error_type"] = [("parse_failure" if e else None) for e in err]
    f = pd.DataFrame(d)
    for name, vals in (slices or {}).items():
        f[f"slice.{name}"] = vals
    if err.any():
        for c in [*cats, "overall"]:
            f.loc[err, f"score.{c}"] = np.nan
            f[f"pred.{c}"] = f[f"pred.{c}"].mask(err)
    return f


def make_run(
    root: Path,
    run_id: str,
    frames: dict[tuple[str, str], pd.DataFrame],
    *,
    digest: str = "d1",
    policy: tuple[str, str] = ("platform-v1", "p1"),
) -> Path:
    """Write ``root/run_id`` with record.json and one Parquet per (suite, moderator)."""
    run = root / run_id
    (run / "predictions").mkdir(parents=True)
    results, suites = [], {}
    for (suite, mod), f in frames.items():
        rel = f"predictions/{suite}__{mod}.parquet"
        f.to_parquet(run / rel, index=False)
        et = f["error_type"].dropna().value_counts().to_dict()
        suites[f"{suite}:test"] = {
            "name": suite,
            "version": "1",
            "split": "test",
            "n": len(f),
            "digest": digest,
            "policy": policy[0],
            "card": f"suites/{suite}/suite.yaml",
        }
        results.append(
            {
                "suite": suite,
                "split": "test",
                "moderator": mod,
                "key": f"{suite}__{mod}",
                "n": len(f),
                "n_errors": int(f["error"].notna().sum()),
                "error_types": {str(k): int(v) for k, v in et.items()},
                "predictions": rel,
                "metrics": {},
            }
        )
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
        "moderators": {},
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
    (run / "record.json").write_text(json.dumps(rec), encoding="utf-8")
    return run
