"""Build small suites and run configs in a temp folder for pipeline tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

CARD: dict[str, Any] = {
    "card_version": 1,
    "name": "mini",
    "version": "0.1",
    "description": "tiny test suite",
    "policy": "platform-v1",
    "license": "test",
    "source": {"local": {"root": "data", "format": "jsonl", "splits": {"test": "test.jsonl"}}},
    "id": {"column": "id"},
    "fields": {"caption": "caption", "comment": "comment"},
    "labels": {"covers": ["hate", "harassment", "minor_sexual"], "list_column": "labels"},
    "slices": {"language": "language"},
    "constants": {"source": "mini"},
    "rationale_column": "rationale",
}


def mini_rows(n: int = 40) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        labels = []
        if i % 4 == 0:
            labels.append("hate")
        if i % 5 == 0:
            labels.append("harassment")
        if i % 10 == 3:
            labels.append("minor_sexual")
        rows.append(
            {
                "id": f"m{i:03d}",
                "caption": f"caption text {i} "
                + ("RESTRICTED-SECRET-" + str(i) if "minor_sexual" in labels else ""),
                "comment": None if i % 2 else f"comment {i}",
                "labels": labels,
                "language": "en" if i % 3 else "es",
                "rationale": "test",
            }
        )
    return rows


def write_suite(
    root: Path,
    *,
    name: str = "mini",
    card: dict[str, Any] | None = None,
    rows: list[dict[str, Any]] | None = None,
    raw_lines: str | None = None,
) -> Path:
    d = root / "suites" / name
    (d / "data").mkdir(parents=True, exist_ok=True)
    c = dict(CARD if card is None else card)
    c.setdefault("name", name)
    (d / "suite.yaml").write_text(yaml.safe_dump(c, sort_keys=False), encoding="utf-8")
    if raw_lines is not None:
        (d / "data" / "test.jsonl").write_text(raw_lines, encoding="utf-8")
    else:
        (d / "data" / "test.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in (mini_rows() if rows is None else rows)),
            encoding="utf-8",
        )
    return d / "suite.yaml"


def base_config(suite_path: Path, runs: Path, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "test-run",
        "policy": "platform-v1",
        "suites": [{"name": str(suite_path)}],
        "moderators": [
            {"name": "fake_a", "type": "fake", "params": {"seed": 1}, "batch_size": 8},
        ],
        "metrics": {"bootstrap": 50, "seed": 0},
        "runner": {"error_budget": 0.1, "progress": False},
        "tracking": {"uri": f"sqlite:///{runs / 'mlflow.db'}", "experiment": "test"},
        "output_dir": str(runs),
    }
    cfg.update(extra)
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path
