from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_shared
from tests.helpers.cli import run_cli


def test_help_is_light() -> None:
    """``audit --help`` must not import the heavy libraries (timing lives in the notes)."""
    code = (
        "import sys; from audit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'mlflow', 'evaluate', 'pandas')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Exit codes" in r.stdout


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    r = run_cli(capsys, "list")
    assert r.code == 0
    for name in (
        "hf_classifier",
        "embedding_head",
        "profanity_baseline",
        "fake",
        "auprc",
        "short_video_v1",
        "platform-v1",
    ):
        assert name in r.out


def test_validate_repository(capsys: pytest.CaptureFixture[str]) -> None:
    """Every policy, suite (with its data) and config in the repo really validates."""
    for name in ("openai_moderation", "hatecheck", "xstest", "cold"):
        require_shared(name)
    r = run_cli(capsys, "validate")
    assert r.code == 0, r.out
    assert "0 invalid" in r.out
    assert "suite short_video_v1" in r.out and "test=523, train=225" in r.out
    assert "config quickstart" in r.out


def test_validate_reports_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsuites: []\nmoderators: []\n")
    r = run_cli(capsys, "validate", str(bad))
    assert r.code == 2 and "invalid" in r.out and "1 invalid" in r.out
