"""Shared fixtures: every test runs offline, with runs, caches and the MLflow store
under its own tmp_path, never in the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs a fixed, reproducible set of Hypothesis examples; local runs explore new ones.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPO = Path(__file__).resolve().parent.parent

# shared fixtures defined in helper modules (the fake vLLM engine)
pytest_plugins = ["tests.helpers.fake_vllm"]


def shared_data_root() -> Path:
    env = os.environ.get("AUDIT_DATA_ROOT")
    return Path(env) if env else (REPO.parent / "shared" / "data")


def require_shared(name: str) -> Path:
    """Path of a public set in the shared data root; skip (or fail in CI) when absent."""
    p = shared_data_root() / name
    if not p.exists():
        msg = (
            f"public golden set {name!r} not found at {p}; set AUDIT_DATA_ROOT to the folder "
            "holding the shared sets (a fresh clone has no ../shared)"
        )
        if os.environ.get("AUDIT_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(msg + " [AUDIT_REQUIRE_SHARED_DATA=1]")
        pytest.skip(msg)
    return p


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in (
        "HF_HUB_OFFLINE",
        "HF_DATASETS_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_EVALUATE_OFFLINE",
    ):
        monkeypatch.setenv(k, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    monkeypatch.setenv("AUDIT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    if "AUDIT_DATA_ROOT" not in os.environ:
        monkeypatch.setenv("AUDIT_DATA_ROOT", str(shared_data_root()))


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture(scope="session")
def policy():
    from audit.policy import load_policy

    return load_policy("platform-v1")
