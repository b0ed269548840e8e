"""Process-wide settings resolved from the environment.

| variable | default | meaning |
|---|---|---|
| ``AUDIT_DATA_ROOT`` | ``<repo>/../shared/data`` | where local copies of public golden sets live |
| ``AUDIT_RUNS_DIR`` | ``<cwd>/runs`` | run records, prediction cache, embedded MLflow store |
| ``MLFLOW_TRACKING_URI`` | ``sqlite:///<runs>/mlflow.db`` | the tracking store (a server URL switches to it) |
| ``AUDIT_REQUIRE_SHARED_DATA`` | unset | tests that need the shared sets fail instead of skipping |
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def repo_root() -> Path:
    """The project root: the folder holding ``configs/`` and ``suites/``.

    Resolved from the package location (an editable install lives in the repo);
    ``AUDIT_HOME`` overrides it.
    """
    env = os.environ.get("AUDIT_HOME")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent.parent
    return here


def data_root() -> Path:
    env = os.environ.get("AUDIT_DATA_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    return (repo_root().parent / "shared" / "data").resolve()


def runs_dir() -> Path:
    env = os.environ.get("AUDIT_RUNS_DIR")
    return Path(env).expanduser().resolve() if env else (Path.cwd() / "runs").resolve()


def offline_env() -> None:
    """Make HF libraries fail fast instead of retrying hub calls for ~45 s."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
