"""``audit validate`` behaves like ``audit run``: offline unless asked, optional suites
without data are "no data", and the process environment is left as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def test_validate_without_shared_data_is_offline_and_ok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import datasets

    monkeypatch.setenv("AUDIT_DATA_ROOT", str(tmp_path / "no-shared-data"))
    for k in OFFLINE_VARS:
        monkeypatch.delenv(k, raising=False)

    def no_hub(*a: object, **k: object) -> None:
        raise AssertionError("validate tried the hub without --allow-hub")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    r = run_cli(capsys, "validate")
    assert r.code == 0, r.out + r.err
    assert "0 invalid" in r.out
    for name in ("openai_moderation", "hatecheck", "xstest", "cold"):
        line = next(ln for ln in r.out.splitlines() if f"suites/{name}/suite.yaml" in ln)
        assert line.startswith("no data"), line
    assert "suite short_video_v1" in r.out
    # the offline switch was scoped to the command
    assert all(k not in os.environ for k in OFFLINE_VARS)


def test_allow_hub_reaches_the_hub_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import datasets

    monkeypatch.setenv("AUDIT_DATA_ROOT", str(tmp_path / "no-shared-data"))
    for k in OFFLINE_VARS:
        monkeypatch.delenv(k, raising=False)
    calls: list[str] = []

    def fake_hub(name: str, *a: object, **k: object) -> None:
        calls.append(name)
        raise ConnectionError("no network in tests")

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    r = run_cli(capsys, "validate", "--allow-hub", "suites/hatecheck/suite.yaml")
    assert calls, "the hub loader was not called with --allow-hub"
    assert r.code == 2 and "cannot load hub dataset" in r.out
