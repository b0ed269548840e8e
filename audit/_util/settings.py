"""Process-wide settings resolved from the environment, and where project files are found.

| variable | default | meaning |
|---|---|---|
| ``AUDIT_HOME`` | the current directory | the project folder (``configs/``, ``suites/``, ``runs/``) |
| ``AUDIT_DATA_ROOT`` | ``<project>/../shared/data`` | where local copies of public golden sets live |
| ``AUDIT_RUNS_DIR`` | ``<project>/runs`` | run records, prediction cache, embedded MLflow store |
| ``MLFLOW_TRACKING_URI`` | ``sqlite:///<runs>/mlflow.db`` | the tracking store (a server URL switches to it) |
| ``AUDIT_REQUIRE_SHARED_DATA`` | unset | tests that need the shared sets fail instead of skipping |

Resolution (README, "Installing from the wheel / outside a clone"): policies, gate
rules and suite cards are looked up in the project folder first, then in the packaged
defaults. The packaged defaults are ``audit/_defaults/`` in an installed wheel (copied
there from the repository's ``configs/`` and ``suites/`` at build time, see setup.py),
or those repository folders themselves in a source checkout or editable install.
Everything the harness writes goes under the project folder (``runs/``,
``configs/baselines/``) or a user cache directory, never inside the installed package.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from audit.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent.parent
"""The ``audit`` package folder (site-packages/audit in a wheel install)."""

# What lives where, relative to a project folder or to the defaults root. The layout
# is the repository's own, so a clone is a project and ``audit init`` copies it.
LAYOUT = {
    "policies": Path("configs") / "policies",
    "gates": Path("configs") / "gates",
    "baselines": Path("configs") / "baselines",
    "suites": Path("suites"),
}


def project_root() -> Path:
    """The project folder: ``AUDIT_HOME`` when set, else the current directory.

    Read on every call (not cached) so a process that changes directory, or a test
    that sets ``AUDIT_HOME``, sees the new folder.
    """
    env = os.environ.get("AUDIT_HOME")
    return Path(env).expanduser().resolve() if env else Path.cwd().resolve()


def repo_root() -> Path:
    """Former name of :func:`project_root`, kept for callers written before the wheel
    worked outside a clone (it used to guess the repository from the package location)."""
    return project_root()


def defaults_root() -> Path | None:
    """The folder holding the packaged ``configs/`` and ``suites/``, or None if absent.

    A built wheel carries them in ``audit/_defaults``. A source checkout (and an editable
    install, which imports the checkout) has no ``_defaults``: the repository's own
    folders are the defaults, recognised by the ``pyproject.toml`` beside the package.
    """
    packaged = _PACKAGE / "_defaults"
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / LAYOUT["policies"]).is_dir():
        return checkout
    return None


def search_dirs(kind: str) -> list[Path]:
    """Where files of ``kind`` (a key of :data:`LAYOUT`) are looked up, first match wins:
    the project folder, then the packaged defaults (one entry when they coincide)."""
    rel = LAYOUT[kind]
    out = [project_root() / rel]
    d = defaults_root()
    if d is not None and (d / rel).resolve() != out[0].resolve():
        out.append(d / rel)
    return out


def find_file(kind: str, relpath: str | Path) -> tuple[Path | None, list[Path]]:
    """The first existing ``<dir>/<relpath>`` over :func:`search_dirs`, and every
    candidate tried (for an error that names each place searched)."""
    tried = [d / relpath for d in search_dirs(kind)]
    for p in tried:
        if p.exists():
            return p, tried
    return None, tried


def data_root() -> Path:
    env = os.environ.get("AUDIT_DATA_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    return (project_root().parent / "shared" / "data").resolve()


def runs_dir() -> Path:
    """Run records, prediction cache and the embedded MLflow store: ``AUDIT_RUNS_DIR``,
    else the project's ``runs/`` (never inside an installed package, even when the
    current directory is one)."""
    env = os.environ.get("AUDIT_RUNS_DIR")
    rdir = Path(env).expanduser().resolve() if env else (project_root() / "runs").resolve()
    return check_writable(rdir, "runs directory")


def baselines_dir() -> Path:
    """Where ``audit baseline update`` writes snapshots: the project's configs/baselines."""
    return check_writable(project_root() / LAYOUT["baselines"], "baseline snapshot")


def check_writable(path: Path, what: str) -> Path:
    """Refuse to write ``path`` inside an installed package (wheel install).

    A source checkout is exempt: there ``audit/`` is the developer's own tree, and
    nothing the harness writes lands in it anyway (outputs go to ``runs/``).
    """
    target = path.expanduser().resolve()
    if (_PACKAGE / "_defaults").is_dir() and target.is_relative_to(_PACKAGE):
        raise ConfigError(
            f"refusing to write the {what} inside the installed package",
            where=str(target),
            expected="a location in the project folder or a user cache directory",
            actual=f"a path under {_PACKAGE}",
            fix="run from the project folder (see `audit init`) or set AUDIT_HOME",
        )
    return path


#: Defaults that make HF libraries fail fast instead of retrying hub calls for ~45 s, and
#: keep MLflow's usage telemetry off: it is a network call in an offline harness and
#: writes ``~/.config/mlflow/telemetry.json``, outside the project
#: (``MLFLOW_DISABLE_TELEMETRY=false`` turns it back on).
OFFLINE_DEFAULTS: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
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
