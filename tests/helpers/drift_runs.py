"""Synthetic run records (record.json + predictions Parquet) for the drift/calibrate CLIs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.records import write_v1_record

MakeRun = Callable[..., Path]


@pytest.fixture
def make_run(runs_dir: Path) -> MakeRun:
    """``make_run(name, scores={cat: array}, gold=..., policy_digest=..., splits=...)``."""

    def make(
        name: str,
        scores: dict[str, np.ndarray],
        *,
        gold: dict[str, np.ndarray] | None = None,
        policy_digest: str = "d" * 64,
        split: str = "test",
        suite: str = "s1",
        moderator: str = "m1",
        threshold: float = 0.5,
        extra_splits: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] | None = None,
    ) -> Path:
        run = runs_dir / name
        (run / "predictions").mkdir(parents=True)
        suites: dict[str, dict[str, object]] = {}
        results: list[dict[str, object]] = []
        todo = {split: (scores, gold)}
        todo.update(extra_splits or {})
        for sp, (sc, gd) in todo.items():
            n = len(next(iter(sc.values())))
            rng = np.random.default_rng(0)
            cols: dict[str, object] = {"id": [f"i{k}" for k in range(n)], "content_hash": ["h"] * n}
            for c, s in sc.items():
                cols[f"score.{c}"] = s
                cols[f"pred.{c}"] = pd.array(
                    [None if np.isnan(v) else bool(v >= threshold) for v in s], dtype="boolean"
                )
                g = (gd or {}).get(c)
                cols[f"gold.{c}"] = g if g is not None else (rng.random(n) < 0.1).astype(np.int8)
            cols["score.overall"] = np.nanmax(np.column_stack(list(sc.values())), axis=1)
            cols["gold.overall"] = np.zeros(n, dtype=np.int8)
            rel = f"predictions/{suite}_{sp}__{moderator}.parquet"
            pd.DataFrame(cols).to_parquet(run / rel, index=False)
            suites[f"{suite}:{sp}"] = {
                "name": suite, "version": "1", "split": sp, "n": n, "digest": "s" * 64,
                "policy": "platform-v1", "card": f"suites/{suite}/suite.yaml",
            }  # fmt: skip
            results.append(
                {
                    "suite": suite, "split": sp, "moderator": moderator,
                    "key": f"{suite}_{sp}__{moderator}", "n": n, "n_errors": 0,
                    "error_types": {}, "predictions": rel, "metrics": {},
                }
            )  # fmt: skip
        mods = {
            moderator: {
                "type": "fake", "categories": sorted(scores), "thresholds": {"default": threshold},
                "batch_size": 32, "fingerprint": {}, "fingerprint_hash": "f" * 64,
            }
        }  # fmt: skip
        return write_v1_record(
            run, run_id=name, results=results, suites=suites,
            policy=("platform-v1", policy_digest), moderators=mods,
        )  # fmt: skip

    return make
