"""Disagreement matrix, FP/FN tables and the review-queue export (restricted → ids only)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.cli import run_cli
from tests.helpers.suites import base_config, mini_rows, write_config, write_suite

SECRET = "RESTRICTED-SECRET"


def _run(tmp: Path, name: str, moderators: list[dict]) -> Path:
    from audit.engine.pipeline import run_audit

    cfg = base_config(write_suite(tmp), tmp / "runs", name=name, moderators=moderators)
    cfg["tracking"] = {"enabled": False}
    record, _ = run_audit(write_config(tmp / f"{name}.yaml", cfg), mlflow=False)
    return record.dir


@pytest.fixture
def two_mod_run(tmp_path: Path) -> Path:
    return _run(
        tmp_path,
        "pair",
        [
            {"name": "judge", "type": "fake", "params": {"seed": 1}},
            {"name": "clf", "type": "fake", "params": {"seed": 2}},
        ],
    )


def test_matrix_counts_and_restricted_mask(two_mod_run: Path) -> None:
    from audit.analysis import disagreements as d
    from audit.analysis import load_record

    rec = load_record(two_mod_run)
    a, b, m = d.pair(rec)
    assert (a.moderator, b.moderator) == ("judge", "clf") and len(m) == 40
    cats = d.common_categories(m)
    assert {"hate", "harassment", "minor_sexual", "overall"} <= set(cats)
    mx = d.decision_matrix(m, cats)
    assert (mx.groupby("category")["count"].sum() == 40).all()
    assert set(mx["a"]) <= {"flag", "pass", "none"} and set(mx["gold"]) <= set(d.GOLD.values())
    hate = mx[mx["category"] == "hate"]
    assert hate[hate["gold"] == "positive"]["count"].sum() == 10  # every 4th item
    mask = d.restricted_mask(m, frozenset({"minor_sexual"}))
    assert mask[(m["gold.minor_sexual"] == 1).to_numpy()].all()
    assert mask[(m["a:pred.minor_sexual"] == True).to_numpy()].all()  # noqa: E712
    # the Parquet flag alone is enough
    m2 = m.copy()
    m2["b:restricted"] = False
    m2.loc[0, "b:restricted"] = True
    assert d.restricted_mask(m2, frozenset())[0]


def test_error_table_redacts_restricted(two_mod_run: Path) -> None:
    from audit.analysis import disagreements as d
    from audit.analysis import load_record
    from audit.engine.results import REDACTED

    rec = load_record(two_mod_run)
    _, _, m = d.pair(rec)
    mask = d.restricted_mask(m, frozenset({"minor_sexual"}))
    texts = {r["id"]: r["caption"] for r in mini_rows()}
    t = d.error_table(m, ("judge", "clf"), texts, mask)
    assert set(t["error"]) == {"FP", "FN"} and set(t["moderator"]) == {"judge", "clf"}
    red = t[t["restricted"]]
    assert len(red) and (red["text"] == REDACTED).all() and red["score"].isna().all()
    assert not t["text"].astype(str).str.contains(SECRET).any()
    assert (t[~t["restricted"]]["text"].notna()).all()


def _assert_no_secret_export(exp: Path, n_restricted_min: int = 1) -> list[dict]:
    for f in ("review_queue.jsonl", "review_queue.csv", "fp_fn.csv", "matrix.csv"):
        assert SECRET not in (exp / f).read_text(encoding="utf-8"), f
    tasks = [json.loads(x) for x in (exp / "review_queue.jsonl").read_text().splitlines()]
    restricted = [t for t in tasks if t["data"]["restricted"]]
    assert len(restricted) >= n_restricted_min
    for t in restricted:
        assert set(t["data"]) == {"item_id", "content_hash", "restricted"}
        assert len(t["data"]["content_hash"]) == 64
    rows = list(csv.DictReader((exp / "review_queue.csv").open(encoding="utf-8")))
    assert len(rows) == len(tasks)
    for r in rows:
        if r["restricted"] == "True":
            assert not r["text"] and not r["caption"] and not r["reasons"]
    return tasks


def test_export_review_queue_cli(two_mod_run: Path, tmp_path: Path, capsys) -> None:
    exp = tmp_path / "exp"
    r = run_cli(capsys, "disagreements", str(two_mod_run), "--moderator", "clf", "--other",
                "judge", "--export-dir", str(exp))  # fmt: skip
    assert r.code == 0, r.err
    assert "clf (a) × judge (b)" in r.out and "review queue" in r.out
    tasks = _assert_no_secret_export(exp)
    assert [t["id"] for t in tasks] == list(range(1, len(tasks) + 1))
    gold_restricted = {f"m{i:03d}" for i in range(40) if i % 10 == 3}
    by_id = {t["data"]["item_id"]: t for t in tasks}
    assert all(by_id[i]["data"]["restricted"] for i in gold_restricted if i in by_id)
    rows = {r["id"]: r for r in mini_rows()}
    opened = [t["data"] for t in tasks if not t["data"]["restricted"]]
    assert opened
    for dd in opened:
        assert dd["caption"] == rows[dd["item_id"]]["caption"] and dd["reasons"]
        assert dd["clf.hate"] in {"flag", "pass"} and "slice.language" in dd
    fp_fn = pd.read_csv(exp / "fp_fn.csv")
    assert {"id", "content_hash", "moderator", "category", "error", "score", "rationale"} <= set(
        fp_fn.columns
    )
    # no pair can be chosen when the moderator does not exist
    r = run_cli(capsys, "disagreements", str(two_mod_run), "--moderator", "nope")
    assert r.code == 2 and "exactly one pair" in r.err


def test_with_second_run(tmp_path: Path, capsys) -> None:
    run_a = _run(tmp_path, "a", [{"name": "m", "type": "fake", "params": {"seed": 1}}])
    run_b = _run(tmp_path, "b", [{"name": "m", "type": "fake", "params": {"seed": 3}}])
    exp = tmp_path / "exp2"
    r = run_cli(capsys, "disagreements", str(run_a), "--with", str(run_b), "--export-dir",
                str(exp))  # fmt: skip
    assert r.code == 0, r.err
    assert "A:m (a) × B:m (b)" in r.out
    tasks = _assert_no_secret_export(exp)
    assert any("A:m.score.hate" in t["data"] for t in tasks)
    assert not np.isnan(
        [t["data"]["A:m.score.hate"] for t in tasks if not t["data"]["restricted"]]
    ).any()
