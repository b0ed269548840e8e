"""cleanlab / CROWDLAB suspects on a planted-error suite; exports mask restricted items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.labels.synth import PLANTED

SECRET = "MINOR-SECRET"


def test_planted_errors_rank_first(synth_run: Path) -> None:
    from audit.analysis import load_record as load_run
    from audit.labels.suspects import run_suspects

    table, _notes = run_suspects(load_run(synth_run))
    har = table[table["category"] == "harassment"]
    assert len(har) > 100 and har["crowdlab_quality"].notna().all()
    assert (har["n_annotations"] == 3).all()
    planted = {f"s{i:03d}" for i in PLANTED}
    from audit.policy import load_policy
    from audit.suites import load_suite

    rec = json.loads((synth_run / "record.json").read_text())
    card = rec["suites"]["synth:test"]["card"]
    s = load_suite(card, load_policy("platform-v1"))
    id_to_item = {
        i: f"s{int(t.split()[2]):03d}" for i, t in zip(s.dataset["id"], s.dataset["prompt"])
    }
    top = [id_to_item[i] for i in har["item_id"].head(len(planted))]
    # 8 planted among 120: a random ranking would put ~0.5 of them in the top 8
    assert len(planted & set(top)) >= 6, top
    flagged = {id_to_item[i] for i in har[har["cleanlab_issue"] == 1]["item_id"]}
    # confident learning is conservative (per-class thresholds at the mean
    # self-confidence): it flags a subset, and here only planted items
    assert len(flagged) >= 3 and flagged <= planted
    dis = {id_to_item[i] for i in har[har["judge_disagrees"] == 1]["item_id"]}
    assert planted <= dis
    # the ranking never changes gold: the table's gold is the suite's
    gold = dict(zip(s.dataset["id"], [d["harassment"] for d in s.dataset["labels"]]))
    assert all(gold[i] == g for i, g in zip(har["item_id"], har["gold"]))


def test_cli_exports_restricted_as_id_and_hash(
    capsys: pytest.CaptureFixture[str], synth_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sus"
    res = run_cli(capsys, "suspects", str(synth_run), "--out", str(out), "--top", "5")
    assert res.code == 0, res.err
    lines = [json.loads(x) for x in (out / "suspects.jsonl").read_text().splitlines()]
    assert SECRET not in (out / "suspects.jsonl").read_text()
    assert SECRET not in (out / "suspects.csv").read_text()
    restricted = [x for x in lines if x["restricted"]]
    assert restricted and all(
        set(x)
        == {"rank", "suite", "moderator", "category", "item_id", "content_hash", "restricted"}
        for x in restricted
    )
    assert any(x["text"].get("prompt") for x in lines if not x["restricted"])
    assert [x["rank"] for x in lines] == list(range(1, len(lines) + 1))
