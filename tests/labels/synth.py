"""A synthetic multi-annotator suite (long format, planted label errors) and a run on it
(fixtures exposed by tests/labels/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

ANNOTATORS = ["ann1", "ann2", "ann3", "ann4"]
N_ITEMS = 120
PLANTED = tuple(range(0, 120, 15))  # 8 items whose annotators all got it wrong


def card(**over: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "card_version": 1,
        "name": "synth",
        "version": "1",
        "description": "synthetic multi-annotator suite",
        "policy": "platform-v1",
        "license": "test",
        "source": {"local": {"root": "data", "format": "jsonl", "splits": {"test": "a.jsonl"}}},
        "id": {"column": "item_key", "prefix": "syn-"},
        "fields": {"prompt": "text"},
        "labels": {
            "covers": ["harassment", "minor_sexual"],
            "rules": [
                {
                    "category": "harassment",
                    "column": "harassment",
                    "positive": ["yes"],
                    "negative": ["no"],
                },
                {
                    "category": "minor_sexual",
                    "column": "minor",
                    "positive": ["yes"],
                    "negative": ["no"],
                },
            ],
        },
        "annotations": {
            "format": "long",
            "annotators": ANNOTATORS,
            "annotator_column": "annotator",
            "item_key": ["item"],
            "order_column": "order",
            "repeats": "first",
        },
        "slices": {"group": "group"},
    }
    c.update(over)
    return c


def truth() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random(N_ITEMS) < 0.35).astype(int)


def rows() -> list[dict[str, Any]]:
    """3 of 4 annotators per item, each right with p = 0.92; planted items all wrong."""
    rng = np.random.default_rng(1)
    t = truth()
    out = []
    k = 0
    for i in range(N_ITEMS):
        who = [ANNOTATORS[(i + d) % 4] for d in range(3)]
        for a in who:
            lab = t[i] if rng.random() < 0.92 else 1 - t[i]
            if i in PLANTED:
                lab = 1 - t[i]
            minor = "yes" if i % 40 == 7 else "no"
            out.append(
                {
                    "item": f"s{i:03d}",
                    "annotator": a,
                    "text": f"synthetic text {i}" + (" MINOR-SECRET" if minor == "yes" else ""),
                    "harassment": "yes" if lab else "no",
                    "minor": minor,
                    "order": k,
                    "group": "g" + str(i % 3),
                }
            )
            k += 1
    return out


def write_suite(
    root: Path, *, c: dict[str, Any] | None = None, data: list[dict[str, Any]] | None = None
) -> Path:
    d = root / "suites" / "synth"
    (d / "data").mkdir(parents=True, exist_ok=True)
    (d / "suite.yaml").write_text(yaml.safe_dump(c or card(), sort_keys=False), encoding="utf-8")
    (d / "data" / "a.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in (rows() if data is None else data)),
        encoding="utf-8",
    )
    return d / "suite.yaml"


@pytest.fixture
def synth_card(tmp_path: Path) -> Path:
    return write_suite(tmp_path)


@pytest.fixture
def synth_run(tmp_path: Path, synth_card: Path) -> Path:
    """A run of a scripted moderator whose harassment score follows the truth."""
    from audit.engine.pipeline import run_audit
    from audit.policy import load_policy
    from audit.suites import load_suite
    from tests.helpers.suites import base_config, write_config

    s = load_suite(str(synth_card), load_policy("platform-v1"))
    rng = np.random.default_rng(2)
    t = dict(zip([f"s{i:03d}" for i in range(N_ITEMS)], truth()))
    by_item = {r["item"]: r for r in rows()}
    scores = {}
    for iid, key_text in zip(s.dataset["id"], s.dataset["prompt"]):
        item = f"s{int(key_text.split()[2]):03d}"
        h = float(np.clip((0.85 if t[item] else 0.12) + rng.normal(0, 0.05), 0.01, 0.99))
        m = 0.9 if by_item[item]["minor"] == "yes" else 0.05
        scores[iid] = {"harassment": h, "minor_sexual": m}
    mod = {"name": "judge", "type": "fake", "params": {"scores": scores, "default": 0.5}}
    cfg = base_config(synth_card, tmp_path / "runs", name="synth-run", moderators=[mod])
    cfg["tracking"] = {"enabled": False}
    record, _ = run_audit(write_config(tmp_path / "run.yaml", cfg), mlflow=False)
    return Path(record.dir)
