"""``audit init``: what it writes, what it refuses, and that the project it makes runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from audit.cli.project import scaffold
from audit.errors import ConfigError
from tests.helpers.cli import run_cli

REPO = Path(__file__).resolve().parents[2]


def test_init_writes_the_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "proj"
    r = run_cli(capsys, "init", str(dest))
    assert r.code == 0, r.err
    rel = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert rel == [
        "configs/gates/default.yaml",
        "configs/gates/release.yaml",
        "configs/policies/platform-v1.yaml",
        "configs/policies/platform-v2.yaml",
        "configs/quickstart.yaml",
        "runs/.gitignore",
        "suites/README.md",
    ]
    # unfiltered, the quickstart is the packaged file byte for byte
    assert (dest / "configs/quickstart.yaml").read_bytes() == (
        REPO / "configs/quickstart.yaml"
    ).read_bytes()
    assert "short_video_v1" in (dest / "suites/README.md").read_text(encoding="utf-8")
    assert "next steps" in r.out and "audit run configs/quickstart.yaml" in r.out


def test_init_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "proj"
    (dest / "configs").mkdir(parents=True)
    (dest / "configs/quickstart.yaml").write_text("mine\n", encoding="utf-8")
    r = run_cli(capsys, "init", str(dest))
    assert r.code == 2
    assert "configs/quickstart.yaml" in r.err and "--force" in r.err
    # refused before the first write: nothing else appeared
    assert sorted(p.name for p in dest.rglob("*")) == ["configs", "quickstart.yaml"]
    assert (dest / "configs/quickstart.yaml").read_text(encoding="utf-8") == "mine\n"
    r = run_cli(capsys, "init", str(dest), "--force")
    assert r.code == 0, r.err
    assert (dest / "configs/quickstart.yaml").read_text(encoding="utf-8") != "mine\n"


def test_init_keeps_only_named_moderators(tmp_path: Path) -> None:
    scaffold(tmp_path, moderators=["profanity"])
    cfg = yaml.safe_load((tmp_path / "configs/quickstart.yaml").read_text(encoding="utf-8"))
    assert [m["name"] for m in cfg["moderators"]] == ["profanity"]
    assert cfg["policy"] == "platform-v1"
    with pytest.raises(ConfigError, match="unknown moderator"):
        scaffold(tmp_path / "other", moderators=["nope"])


def test_init_project_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scaffold(tmp_path, moderators=["profanity"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUDIT_HOME", raising=False)
    r = run_cli(capsys, "validate", "configs/quickstart.yaml")
    assert r.code == 0, r.out + r.err
