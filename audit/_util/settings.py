"""Settings resolved from the environment, and a scoped environment for runs.

| variable | default | meaning |
|---|---|---|
| ``AUDIT_DATA_ROOT`` | ``<repo>/../shared/data`` | where local copies of public golden sets live |
| ``AUDIT_RUNS_DIR`` | ``<cwd>/runs`` | run records, prediction cache, embedded MLflow store |
| ``MLFLOW_TRACKING_URI`` | ``sqlite:///<runs>/mlflow.db`` | the tracking store (a server URL switches to it) |
| ``AUDIT_REQUIRE_SHARED_DATA`` | unset | tests that need the shared sets fail instead of skipping |
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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


#: Defaults that make HF libraries fail fast instead of retrying hub calls for ~45 s.
OFFLINE_DEFAULTS: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@contextmanager
def scoped_env(defaults: Mapping[str, str] = OFFLINE_DEFAULTS) -> Iterator[None]:
    """Set ``defaults`` where unset for the duration of the block, then restore the
    environment exactly as it was (keys added inside — by us or by a library, e.g.
    MLflow's progress-bar switch — are removed, changed ones put back).

    This is what lets ``audit.run`` leave a notebook's environment untouched. Libraries
    that read a variable once at import (``huggingface_hub`` reads ``HF_HUB_OFFLINE``
    then) keep what they read inside the block.
    """
    saved = dict(os.environ)
    for k, v in defaults.items():
        os.environ.setdefault(k, v)
    try:
        yield
    finally:
        for k in set(os.environ) - set(saved):
            del os.environ[k]
        for k, v in saved.items():
            if os.environ.get(k) != v:
                os.environ[k] = v


def offline_env() -> None:
    """Set :data:`OFFLINE_DEFAULTS` for the whole process (where unset).

    For CLI processes only (``audit probe``); library code uses :func:`scoped_env`.
    """
    for k, v in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(k, v)
