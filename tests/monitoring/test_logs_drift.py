"""``audit production drift``: drift of one pathway across periods of its decision logs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from audit.production.synthetic import plant, write_logs
from tests.helpers.cli import run_cli


def _two_days(tmp: Path, *, shift: float, policy_2: str = "platform-v1") -> Path:
    a = plant(3_000, ("hate", "spam"), seed=1)
    b = plant(3_000, ("hate", "spam"), seed=2)
    if shift:
        b.score[:] = np.clip(b.score + shift, 0, 1)
        b.actioned[:] = b.score >= 0.7
    root = tmp / "logs"
    card = write_logs(a, tmp / "d1", day="2026-11-29")
    write_logs(b, tmp / "d2", day="2026-11-30", policy_version=policy_2)
    root.mkdir()
    shutil.move(str(tmp / "d1" / "logs.parquet"), root / "day1.parquet")
    shutil.move(str(tmp / "d2" / "logs.parquet"), root / "day2.parquet")
    text = card.read_text().replace("source: {path: logs.parquet}", "source: {path: logs}")
    out = tmp / "logs.yaml"
    out.write_text(text, encoding="utf-8")
    return out


def test_no_drift_between_two_days_of_the_same_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = _two_days(tmp_path, shift=0.0)
    out = tmp_path / "drift.json"
    r = run_cli(
        capsys, "production", "drift", str(card), "--periods", "2026-11-29,2026-11-30",
        "--pathway", "clf", "--fail-on", "alert", "--json", str(out),
    )  # fmt: skip
    assert r.code == 0, r.out + r.err
    doc = json.loads(out.read_text())
    cats = doc["results"][0]["report"]["categories"]
    assert {c["category"] for c in cats} == {"hate", "spam"}
    assert all(c["state"] == "OK" for c in cats)
    assert all(c["psi"]["value"] < 0.05 for c in cats)


def test_shifted_scores_alert_and_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _two_days(tmp_path, shift=0.15)
    r = run_cli(
        capsys, "production", "drift", str(card), "--periods", "2026-11-29,2026-11-30",
        "--pathway", "clf", "--fail-on", "alert",
    )  # fmt: skip
    assert r.code == 1, r.out + r.err
    assert "ALERT" in r.out


def test_policy_version_change_is_a_break_not_a_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = _two_days(tmp_path, shift=0.15, policy_2="platform-v2")
    r = run_cli(
        capsys, "production", "drift", str(card), "--periods", "2026-11-29,2026-11-30",
        "--pathway", "clf", "--fail-on", "alert",
    )  # fmt: skip
    # the second day starts a new segment: nothing is compared, so no alert
    assert r.code == 0, r.out + r.err
    assert "policy version changed at 2026-11-30" in r.out


def test_one_period_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _two_days(tmp_path, shift=0.0)
    r = run_cli(capsys, "production", "drift", str(card), "--periods", "2026-11-29",
                "--pathway", "clf")  # fmt: skip
    assert r.code == 2 and "--periods" in r.err and len(r.err.strip().splitlines()) == 1
