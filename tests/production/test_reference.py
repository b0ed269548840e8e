"""The reference sample scored by a tiny llm_judge through the runner, cached, into PPI."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from audit.production import DecisionLogs, Period, build_plan, demo_labels, draw_sample, estimate
from audit.production.demo import build_demo_day
from audit.production.reference import score_reference
from tests.helpers.cli import run_cli
from tests.helpers.tiny_lm import build_tiny_causal_lm

DAY = Period.parse("2026-11-30")


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A planted day from the packaged short_video_v1 items; every 15th item loses its
    text in the logs (no content for the reference labeller), then plan and sample."""
    out = tmp_path_factory.mktemp("ref")
    d = build_demo_day(out / "day", sources=("short_video_v1",))
    part = next((out / "day" / "logs").rglob("*.parquet"))
    tbl = pq.read_table(part)
    ids = tbl.column("item_id").to_pylist()
    blank = set(sorted(set(ids))[::15])
    text = [None if i in blank else t for i, t in zip(ids, tbl.column("text").to_pylist())]
    tbl = tbl.set_column(tbl.column_names.index("text"), "text", pa.array(text, pa.string()))
    pq.write_table(tbl, part)
    logs = DecisionLogs.open(d.card)
    plan = build_plan(logs, DAY, half_width=0.2, reference_factor=2.0, floor=10)
    man = draw_sample(logs, plan, DAY, out / "s", seed=1)
    lm = build_tiny_causal_lm(out / "lm")
    judge = {"model": str(lm), "preset": "llama_guard_3", "mode": "logprob", "device": "cpu"}
    cfg = {
        "name": "reference",
        "policy": "platform-v1",
        "suites": [{"name": "short_video_v1"}],
        "moderators": [
            {"name": "judge", "type": "llm_judge", "batch_size": 16, "params": judge},
            {"name": "spam_only", "type": "fake", "params": {"seed": 0, "categories": ["spam"]}},
        ],
        "runner": {"error_budget": 0.2, "progress": False},
        "output_dir": str(out / "runs"),
    }
    (out / "run.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return {"out": out, "man": man, "truth": d.truth, "blank": blank, "config": out / "run.yaml"}


def test_reference_is_scored_cached_and_feeds_ppi(
    sampled: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out, man = sampled["out"], sampled["man"]
    mpath = out / "s" / "manifest.json"
    assert sum(s.m_h for s in man.strata) > sum(s.n_h for s in man.strata)
    r1 = run_cli(
        capsys, "production", "reference", str(mpath), "--config", str(sampled["config"]),
        "--moderator", "judge",
    )  # fmt: skip
    assert r1.code == 0, r1.err
    assert "per-item errors" in r1.out and "no_content" in r1.out
    labels = out / "s" / "reference_labels.csv"
    first = labels.read_bytes()
    smp = pd.read_parquet(out / "s" / "sample.parquet")
    pairs = set(zip(smp["item_id"], smp["category"]))
    lab = pd.read_csv(labels, dtype={"item_id": str})
    err = pd.read_csv(out / "s" / "reference_errors.csv", dtype={"item_id": str})
    # every sampled pair is either labelled or a reported per-item error, never dropped
    got = set(zip(lab["item_id"], lab["category"])) | set(zip(err["item_id"], err["category"]))
    assert got == pairs and not set(zip(lab["item_id"], lab["category"])) & set(
        zip(err["item_id"], err["category"])
    )
    blanked = {i for i in smp["item_id"] if i in sampled["blank"]}
    assert blanked and set(err[err["error_type"] == "no_content"]["item_id"]) == blanked
    assert smp[smp["item_id"].isin(blanked)]["human"].any()  # PPI must cope (not nested)
    assert lab["label"].isin([0, 1]).all() and lab["score"].between(0, 1).all()
    assert (lab["label"] == (lab["score"] >= 0.5)).all()
    # the second call is a full cache hit: the runner scores nothing, same labels
    r2 = score_reference(mpath, sampled["config"], "judge")
    assert r2.n_scored == 0 and r2.n_cached == r2.n_items - len(blanked)
    assert labels.read_bytes() == first
    # the estimate reads it: PPI rows beside the classical ones
    h, _ = demo_labels(out / "s", sampled["truth"], out / "labels")
    rec = estimate(man, out / "s", h, labels, bootstrap_reps=20)
    assert rec.reference_labels is not None and rec.reference_labels.path == str(labels)
    whole = [c for c in rec.cells if not c.domain]
    assert whole and all(math.isfinite(c.ppi["precision"].value) for c in whole)
    assert all(math.isfinite(c.ppi["prevalence"].ci_low) for c in whole)
    assert sum(s.n_reference for s in rec.strata) == len(lab)


def test_reference_bad_moderator_is_a_one_line_error(
    sampled: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    mpath = str(sampled["out"] / "s" / "manifest.json")
    cfg = str(sampled["config"])
    r = run_cli(capsys, "production", "reference", mpath, "--config", cfg, "--moderator", "nope")
    assert r.code == 2 and "--moderator" in r.err and "judge" in r.err
    r = run_cli(
        capsys, "production", "reference", mpath, "--config", cfg, "--moderator", "spam_only"
    )
    assert r.code == 2 and "does not score the sampled category" in r.err
