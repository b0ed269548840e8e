"""End to end with the fake moderator: run, calibrate, rerun with ``calibration:``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.cli import run_cli
from tests.helpers.suites import base_config, mini_rows, write_config, write_suite


def test_calibrated_rerun_uses_cache_and_records_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from audit.engine.pipeline import run_audit

    runs = tmp_path / "runs"
    suite = write_suite(tmp_path, rows=mini_rows(200))
    cfg = base_config(suite, runs)
    rec1, _ = run_audit(write_config(tmp_path / "a.yaml", cfg), mlflow=False)
    art = tmp_path / "cal.json"
    r = run_cli(
        capsys,
        "calibrate",
        str(rec1.dir),
        "--method",
        "platt",
        "--out",
        str(art),
        "--bootstrap",
        "0",
    )
    assert r.code == 0, r.err
    cfg["moderators"][0]["calibration"] = str(art)
    rec2, res2 = run_audit(write_config(tmp_path / "b.yaml", cfg), mlflow=False)
    spec = rec2.data["config"]["moderators"][0]
    digest = spec["calibration_digest"]
    assert digest and rec2.data["config_hash"] != rec1.data["config_hash"]
    e1, e2 = rec1.data["results"][0], rec2.data["results"][0]
    assert e2["n_cached"] == e2["n"]  # raw scores came from the cache
    assert res2[0].fingerprint["calibration"]["digest"] == digest
    p1 = pd.read_parquet(rec1.dir / e1["predictions"])
    p2 = pd.read_parquet(rec2.dir / e2["predictions"])
    cal = json.loads(art.read_text())["categories"]
    for c in cal:
        a, b = p1[f"score.{c}"].to_numpy(), p2[f"score.{c}"].to_numpy()
        assert not np.allclose(a, b)
        # a non-decreasing map: the order of the scores is kept (ties may form)
        order = np.argsort(a, kind="stable")
        assert np.all(np.diff(b[order]) >= -1e-12)
    # the artifact changed after the config was resolved: the run refuses it
    pinned = dict(cfg["moderators"][0], calibration_digest="0" * 64)
    cfg["moderators"] = [pinned]
    from audit.errors import ConfigError

    with pytest.raises(ConfigError, match="changed"):
        run_audit(write_config(tmp_path / "c.yaml", cfg), mlflow=False)
