"""Content-addressed prediction cache.

Key = sha256(moderator fingerprint, scoring settings, item content hash). One
SQLite file (WAL mode) per cache directory: every committed batch survives a
SIGKILL, concurrent readers are safe, and an unchanged rerun reads all its
predictions in one query instead of loading a model.

Transient failures (exceptions, timeouts) are not cached, so a rerun retries
them; deterministic outcomes (scores, parse failures) are.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audit.schema import TRANSIENT_ERRORS, ModeratorOutput


def fingerprint_hash(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(fingerprint, sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()


class PredictionCache:
    """SQLite-backed map from (fingerprint hash, content hash) to a moderator output."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS predictions ("
            " model TEXT NOT NULL, item TEXT NOT NULL, output TEXT NOT NULL,"
            " created REAL NOT NULL, PRIMARY KEY (model, item)) WITHOUT ROWID"
        )

    def get_many(self, model: str, items: Iterable[str]) -> dict[str, ModeratorOutput]:
        """Cached outputs for the given content hashes (missing ones absent)."""
        wanted = list(dict.fromkeys(items))
        out: dict[str, ModeratorOutput] = {}
        for start in range(0, len(wanted), 900):
            chunk = wanted[start : start + 900]
            q = "SELECT item, output FROM predictions WHERE model = ? AND item IN ({})".format(
                ",".join("?" * len(chunk))
            )
            for item, payload in self._db.execute(q, [model, *chunk]):
                out[item] = ModeratorOutput.from_json(json.loads(payload))
        return out

    def put_many(self, model: str, outputs: dict[str, ModeratorOutput]) -> int:
        """Store outputs in one transaction; transient errors are skipped."""
        now = time.time()
        rows = [
            (model, item, json.dumps(o.to_json(), ensure_ascii=False), now)
            for item, o in outputs.items()
            if not (o.error is not None and o.error_type in TRANSIENT_ERRORS)
        ]
        if rows:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?)", rows)
        return len(rows)

    def count(self, model: str | None = None) -> int:
        if model is None:
            return int(self._db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])
        return int(
            self._db.execute(
                "SELECT COUNT(*) FROM predictions WHERE model = ?", (model,)
            ).fetchone()[0]
        )

    def close(self) -> None:
        self._db.close()
