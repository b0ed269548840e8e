"""Content-addressed prediction cache.

Key = sha256(moderator fingerprint, scoring settings, item content hash). One
SQLite file (WAL mode) per cache directory: every committed batch survives a
SIGKILL, concurrent readers are safe, and an unchanged rerun reads all its
predictions in one query instead of loading a model.

Transient failures (exceptions, timeouts) are not cached, so a rerun retries
them; deterministic outcomes (scores, parse failures) are.

Restricted content: a judge's ``rationale`` and ``raw_output`` may quote the item.
For a restricted item the cache keeps scores, error, error type and evidence, and
stores ``rationale`` and ``raw_output`` as null. An item is restricted here when its
output scores a ``restricted_categories`` category ≥ 0.5, when its content hash was
passed to :meth:`PredictionCache.withhold` (gold-positive in a restricted category,
known before scoring), or when :meth:`PredictionCache.scrub` is called for it after
the run (flagged by another moderator or named by a judge's rationale). The cached
scores are untouched, so a rerun reproduces the same scores and decisions; only the
free text is gone (a rerun shows no rationale for such items, which every report
redacts anyway).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from audit.schema import TRANSIENT_ERRORS, ModeratorOutput


def fingerprint_hash(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(fingerprint, sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()


#: a restricted-category score at or above this makes the cache drop an output's text
RESTRICTED_SCORE = 0.5


def _payload(o: ModeratorOutput, restricted: bool) -> dict[str, Any]:
    """The stored JSON of ``o``: without rationale and raw output when ``restricted``."""
    d = o.to_json()
    if restricted:
        d["rationale"] = d["raw_output"] = None
    return d


class PredictionCache:
    """SQLite-backed map from (fingerprint hash, content hash) to a moderator output."""

    def __init__(self, path: Path, restricted_categories: Collection[str] = ()) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.restricted_categories = frozenset(restricted_categories)
        self._withheld: set[str] = set()
        self._db = sqlite3.connect(str(path), timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # overwritten or deleted rows are zeroed on disk, so scrubbed text does not linger
        self._db.execute("PRAGMA secure_delete=ON")
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

    def withhold(self, content_hashes: Iterable[str]) -> None:
        """Never store raw text (rationale, raw output) for these content hashes."""
        self._withheld.update(content_hashes)

    def _restricted(self, item: str, o: ModeratorOutput) -> bool:
        if item in self._withheld:
            return True
        # NaN >= 0.5 is False: a category the moderator did not score never restricts
        return any(o.scores.get(c, 0.0) >= RESTRICTED_SCORE for c in self.restricted_categories)

    def put_many(self, model: str, outputs: dict[str, ModeratorOutput]) -> int:
        """Store outputs in one transaction; transient errors are skipped, and a
        restricted item's rationale and raw output are stored as null."""
        now = time.time()
        rows = [
            (
                model,
                item,
                json.dumps(_payload(o, self._restricted(item, o)), ensure_ascii=False),
                now,
            )
            for item, o in outputs.items()
            if not (o.error is not None and o.error_type in TRANSIENT_ERRORS)
        ]
        if rows:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?)", rows)
        return len(rows)

    def scrub(self, content_hashes: Iterable[str]) -> int:
        """Null the rationale and raw output of every stored output (any model) of
        these content hashes; returns how many rows changed. Scores stay as they were."""
        wanted = list(dict.fromkeys(content_hashes))
        self._withheld.update(wanted)
        changed: list[tuple[str, str, str]] = []
        for start in range(0, len(wanted), 900):
            chunk = wanted[start : start + 900]
            q = "SELECT model, item, output FROM predictions WHERE item IN ({})".format(
                ",".join("?" * len(chunk))
            )
            for model, item, payload in self._db.execute(q, chunk):
                d = json.loads(payload)
                if d.get("rationale") is not None or d.get("raw_output") is not None:
                    d["rationale"] = d["raw_output"] = None
                    changed.append((json.dumps(d, ensure_ascii=False), model, item))
        if changed:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "UPDATE predictions SET output = ? WHERE model = ? AND item = ?", changed
                )
            # secure_delete zeroes the replaced cells; the checkpoint empties the WAL,
            # which still holds the pages written with the text
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(changed)

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
