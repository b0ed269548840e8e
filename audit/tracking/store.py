"""The tracking store: where it is, whether it can be used, and opening it safely.

Every MLflow client in the package is obtained here, so the tracking-URI lookup,
the creation lock and the fail-fast checks exist once.

* **Location.** ``MLFLOW_TRACKING_URI`` when set, else the embedded store
  ``sqlite:///<runs>/mlflow.db`` with artifacts under ``<runs>/mlartifacts``.
* **Creation and migration are serialised.** MLflow creates and migrates the SQLite
  schema on first use; two processes doing that at once corrupt the file (a duplicate
  column, a leftover ``_alembic_tmp_*`` table), after which every run in the folder
  fails. A file lock next to the database (``mlflow.db.lock``) is held while a process
  opens the store, so only one migrates and the others see a finished schema.
* **A half-migrated store is a clear error** naming the file and the fix, never a
  traceback from inside alembic.
* **Servers fail fast.** An ``http(s)`` store is probed (``/health``, a few seconds,
  bounded retries) before any scoring, so an unreachable server costs seconds, not the
  minutes of MLflow's own retry loop after the work is done.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audit.errors import TrackingError

STORE_LOCK_TIMEOUT_S = 300.0
# MLflow 3's UI opens an experiment tagged "custom_model_development" on the classic
# runs table instead of the GenAI traces view
_KIND_TAG, _KIND_RUNS = "mlflow.experimentKind", "custom_model_development"
PROBE_TIMEOUT_S = 3.0
PROBE_ATTEMPTS = 3

# MLflow reads these per request; bounded values keep a dead server from stalling a
# finished run for minutes. Applied only while this module talks to the store.
_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GIT_PYTHON_REFRESH": "quiet",
}


def default_tracking_uri(runs_dir: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the embedded SQLite store under ``runs_dir``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{runs_dir / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


@contextmanager
def bounded_http() -> Iterator[None]:
    """Bounded MLflow HTTP retries and timeouts for the duration of the block only."""
    saved = {k: os.environ.get(k) for k in _HTTP_ENV}
    for k, v in _HTTP_ENV.items():
        os.environ.setdefault(k, v)
    try:
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def quiet_logging() -> None:
    """MLflow and alembic log every migration step at INFO: keep them out of summaries."""
    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)


def check_half_migrated(db: Path) -> None:
    """Refuse a SQLite store left half-way through a schema migration.

    Raises:
        TrackingError: leftover ``_alembic_tmp_*`` tables, or MLflow tables without a
            recorded schema version.
    """
    if not db.is_file() or db.stat().st_size == 0:
        return
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            names = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
            version = None
            if "alembic_version" in names:
                row = con.execute("select version_num from alembic_version").fetchone()
                version = row[0] if row else None
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise TrackingError(
            f"the MLflow store is not a readable SQLite database ({exc})",
            where=str(db),
            expected="an MLflow SQLite store",
            actual="unreadable file",
            fix=f"move {db.name} aside and rerun (run records under runs/ are unaffected)",
        ) from None
    leftovers = sorted(n for n in names if n.startswith("_alembic_tmp_"))
    if leftovers or (names and "experiments" in names and version is None):
        raise TrackingError(
            "the MLflow store was left half-migrated (an interrupted or concurrent first run)",
            where=str(db),
            field="schema",
            expected="a fully migrated MLflow schema",
            actual=f"leftover tables {leftovers}" if leftovers else "no schema version",
            fix=f"move {db.name} aside (e.g. mv {db} {db}.broken) and rerun; "
            "run records under runs/ are unaffected",
        )


def probe_server(uri: str) -> None:
    """Fail fast when an ``http(s)`` tracking server does not answer its health check.

    Raises:
        TrackingError: no answer after :data:`PROBE_ATTEMPTS` tries of
            :data:`PROBE_TIMEOUT_S` seconds each.
    """
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    last = ""
    for attempt in range(PROBE_ATTEMPTS):
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as resp:
                if resp.status < 500:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return  # the server answers (auth or routing are MLflow's to report)
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            last = f"{type(reason).__name__}: {reason}"
        if attempt + 1 < PROBE_ATTEMPTS:
            time.sleep(0.5 * (attempt + 1))
    raise TrackingError(
        "the MLflow tracking server is unreachable",
        where="MLFLOW_TRACKING_URI",
        field="tracking",
        expected=f"a server answering {url}",
        actual=last,
        fix="start the server, fix MLFLOW_TRACKING_URI, or run with --no-mlflow "
        "(the run record is written either way)",
    )


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    from filelock import FileLock, Timeout

    db.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(db) + ".lock")
    try:
        lock.acquire(timeout=STORE_LOCK_TIMEOUT_S)
    except Timeout:
        raise TrackingError(
            "timed out waiting for another process to finish creating the MLflow store",
            where=str(db) + ".lock",
            expected=f"the lock within {STORE_LOCK_TIMEOUT_S:.0f} s",
            actual="still held",
            fix="wait for the other audit to finish, or remove a stale lock file",
        ) from None
    try:
        yield
    finally:
        lock.release()


def open_experiment(uri: str, experiment: str, runs_dir: Path) -> tuple[Any, str]:
    """An ``MlflowClient`` on ``uri`` and the id of ``experiment`` (created if missing).

    The store is opened (and so created or migrated) under the store lock, after the
    half-migration check; new experiments are tagged as classic ML experiments so the
    UI opens on the runs view.

    Raises:
        TrackingError: half-migrated store, unreachable server, lock timeout.
    """
    probe_server(uri)
    db = sqlite_path(uri)
    with bounded_http(), _store_lock(uri):
        if db is not None:
            check_half_migrated(db)
        from mlflow.tracking import MlflowClient

        quiet_logging()  # after the import: mlflow sets its logger up when imported

        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is not None:
            if _KIND_TAG not in (exp.tags or {}):  # an experiment made before the tag existed
                client.set_experiment_tag(exp.experiment_id, _KIND_TAG, _KIND_RUNS)
            return client, str(exp.experiment_id)
        kwargs: dict[str, Any] = {}
        if db is not None:
            kwargs["artifact_location"] = (runs_dir / "mlartifacts").resolve().as_uri()
        # "mlflow.experimentKind" tells MLflow 3's UI to open the classic runs table
        # rather than the GenAI traces view.
        kwargs["tags"] = {_KIND_TAG: _KIND_RUNS}
        try:
            exp_id = client.create_experiment(experiment, **kwargs)
        except Exception:
            # another process created it between our lookup and create
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                raise
            exp_id = exp.experiment_id
        return client, str(exp_id)


def log_metrics(client: Any, run_id: str, metrics: dict[str, float], *, step: int = 0) -> None:
    """Log ``metrics`` in batches of 1,000 (MLflow's per-call limit)."""
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    items = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
    with bounded_http():
        for i in range(0, len(items), 1000):
            client.log_batch(run_id, metrics=items[i : i + 1000])


def log_params(client: Any, run_id: str, params: dict[str, Any]) -> None:
    """Log ``params`` in batches of 100; values clipped to MLflow's 6,000-character limit."""
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    with bounded_http():
        for i in range(0, len(items), 100):
            client.log_batch(run_id, params=items[i : i + 100])
