"""Synthetic run records (record.json + predictions Parquet) for the drift/calibrate CLIs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit.engine.record import RunRecord

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
        header = {
            "policy": {"ref": "platform-v1", "digest": policy_digest},
            "suites": {},
            "moderators": {
                moderator: {"fingerprint_hash": "f" * 64, "thresholds": {"default": threshold}}
            },
        }
        rec = RunRecord.create(runs_dir, name, header)
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
            pq = rec.dir / "predictions" / f"{suite}_{sp}__{moderator}.parquet"
            pd.DataFrame(cols).to_parquet(pq, index=False)
            rec.data["suites"][f"{suite}:{sp}"] = {"digest": "s" * 64}
            rec.data["results"].append(
                {
                    "suite": suite,
                    "split": sp,
                    "moderator": moderator,
                    "predictions": str(pq.relative_to(rec.dir)),
                    "n": n,
                }
            )
        rec.finish("finished")
        return rec.dir

    return make
