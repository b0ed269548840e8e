"""Small shared helpers of the label-quality commands: loading a suite with its own
policy, writing JSON records, content hashes for restricted exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audit.errors import UsageError
from audit.suites.loader import LoadedSuite


def load_labelled_suite(
    suite: str, policy_ref: str | None = None, split: str | None = None
) -> LoadedSuite:
    """Load ``suite`` (name or card path) under ``policy_ref`` or the card's policy."""
    from audit.policy import load_policy
    from audit.suites import load_card, load_suite

    card, _ = load_card(suite)
    policy = load_policy(policy_ref or card.policy)
    return load_suite(suite, policy, split=split)


def write_json(path: Path, payload: Any) -> Path:
    """Write ``payload`` as JSON (NaN → null); parent folders are created."""
    from audit._util.jsonutil import jsonable

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(jsonable(payload), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
            encoding="utf-8",
        )
    except OSError as exc:
        raise UsageError(
            f"cannot write {path.name}: {exc.strerror}",
            where=str(path),
            field="--out",
            expected="a writable path",
            actual=str(path),
        ) from None
    return path


def write_rows(jsonl: Path, csv_path: Path, rows: list[dict[str, Any]]) -> tuple[Path, Path]:
    """Write rows as JSONL and CSV (nested values JSON-encoded in the CSV)."""
    import csv

    from audit._util.jsonutil import jsonable

    try:
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        with open(jsonl, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(jsonable(r), ensure_ascii=False, allow_nan=False) + "\n")
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        with open(csv_path, "w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            for r in rows:
                w.writerow(
                    {
                        k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                        for k, v in jsonable(r).items()
                    }
                )
    except OSError as exc:
        raise UsageError(
            f"cannot write {jsonl.name}: {exc.strerror}",
            where=str(jsonl.parent),
            field="--out",
            expected="a writable folder",
            actual=str(jsonl.parent),
        ) from None
    return jsonl, csv_path
