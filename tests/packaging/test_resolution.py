"""Project-first resolution of policies, gate rules, suites and the runs dir, and the
guard that keeps writes out of an installed package."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit._util import settings
from audit.errors import ConfigError, SuiteError
from audit.policy import available_policies, load_policy
from audit.release.gate import load_rules
from audit.suites import available_suites, load_card

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as AUDIT_HOME, with the current directory elsewhere."""
    home = tmp_path / "project"
    home.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("AUDIT_HOME", str(home))
    monkeypatch.chdir(elsewhere)
    return home


def test_checkout_is_the_defaults_root() -> None:
    # a source checkout (or editable install) has no audit/_defaults: the repo folders are it
    assert settings.defaults_root() == REPO


def test_project_root_is_cwd_without_audit_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUDIT_HOME", raising=False)
    monkeypatch.delenv("AUDIT_RUNS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert settings.project_root() == tmp_path.resolve()
    assert settings.runs_dir() == tmp_path.resolve() / "runs"


def test_runs_dir_follows_audit_home(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUDIT_RUNS_DIR", raising=False)
    assert settings.runs_dir() == project.resolve() / "runs"
    assert settings.baselines_dir() == project.resolve() / "configs" / "baselines"


def test_policy_falls_back_to_packaged(project: Path) -> None:
    assert load_policy("platform-v1").ref == "platform-v1"
    assert "platform-v1" in available_policies()


def test_project_policy_shadows_packaged(project: Path) -> None:
    text = (REPO / "configs/policies/platform-v1.yaml").read_text(encoding="utf-8")
    (project / "configs/policies").mkdir(parents=True)
    edited = text.replace("\nname: ", "\nname: Project copy of ", 1)
    assert edited != text
    (project / "configs/policies/platform-v1.yaml").write_text(edited, encoding="utf-8")
    assert load_policy("platform-v1").name.startswith("Project copy of ")


def test_missing_policy_names_every_place_searched(project: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_policy("platfrom-v1")
    msg = str(exc.value)
    assert str(project / "configs/policies/platfrom-v1.yaml") in msg
    assert str(REPO / "configs/policies/platfrom-v1.yaml") in msg
    assert "did you mean 'platform-v1'" in msg


def test_missing_policy_hint_without_any_policy(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a wheel built without its defaults: the hint says where a policy should go
    monkeypatch.setattr(settings, "defaults_root", lambda: None)
    with pytest.raises(ConfigError) as exc:
        load_policy("platform-v1")
    assert "configs/policies" in (exc.value.fix or "")
    assert "audit init" in (exc.value.fix or "")


def test_suite_falls_back_and_project_suite_shadows(project: Path) -> None:
    card, path = load_card("short_video_v1")
    assert path == REPO / "suites/short_video_v1/suite.yaml"
    assert "short_video_v1" in available_suites()
    mine = project / "suites/short_video_v1"
    mine.mkdir(parents=True)
    text = path.read_text(encoding="utf-8").replace('version: "1.0.0"', 'version: "9.9.9"')
    (mine / "suite.yaml").write_text(text, encoding="utf-8")
    card, path = load_card("short_video_v1")
    assert (card.version, path) == ("9.9.9", mine / "suite.yaml")


def test_missing_suite_names_every_place_searched(project: Path) -> None:
    with pytest.raises(SuiteError) as exc:
        load_card("short_video_v2")
    msg = str(exc.value)
    assert str(project / "suites/short_video_v2/suite.yaml") in msg
    assert str(REPO / "suites/short_video_v2/suite.yaml") in msg


def test_gate_rules_by_name(project: Path) -> None:
    assert load_rules(Path("release")) == load_rules(REPO / "configs/gates/release.yaml")
    with pytest.raises(ConfigError) as exc:
        load_rules(Path("nightly"))
    assert str(project / "configs/gates/nightly.yaml") in str(exc.value)


def test_no_write_inside_an_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "site-packages" / "audit"
    (pkg / "_defaults").mkdir(parents=True)
    monkeypatch.setattr(settings, "_PACKAGE", pkg)
    with pytest.raises(ConfigError, match="inside the installed package"):
        settings.check_writable(pkg / "_defaults" / "configs" / "baselines", "baseline snapshot")
    ok = tmp_path / "project" / "configs" / "baselines"
    assert settings.check_writable(ok, "baseline snapshot") == ok


def test_model_cache_is_a_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audit.moderators.judge.packaged import cache_root

    monkeypatch.delenv("AUDIT_MODEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == (tmp_path / "xdg" / "audit" / "models").resolve()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == (tmp_path / "home" / ".cache" / "audit" / "models").resolve()


def test_runs_dir_never_inside_an_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "site-packages" / "audit"
    (pkg / "_defaults").mkdir(parents=True)
    monkeypatch.setattr(settings, "_PACKAGE", pkg)
    monkeypatch.delenv("AUDIT_RUNS_DIR", raising=False)
    monkeypatch.delenv("AUDIT_HOME", raising=False)
    monkeypatch.chdir(pkg)  # a user who runs `audit` from inside site-packages/audit
    with pytest.raises(ConfigError, match="runs directory inside the installed package"):
        settings.runs_dir()
