"""Restricted items are withheld run-wide, per item: whichever moderator (or gold)
puts an item in a restricted category, its text is in no artifact of the run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from audit.engine.cache import PredictionCache
from audit.schema import ModeratorOutput
from tests.helpers.cli import run_cli
from tests.helpers.suites import base_config, mini_rows, write_config, write_suite

#: flagged minor_sexual by fake_a only (gold: nothing restricted)
SECRET_A = "FLAGGED-BY-A-7f3c"
#: flagged minor_sexual by fake_b only
SECRET_B = "FLAGGED-BY-B-91d2"
#: gold minor_sexual (m003); neither moderator flags it
SECRET_GOLD = "RESTRICTED-SECRET-3"
#: an unrestricted false positive of both moderators: its text must show up
CONTROL = "PUBLIC-CONTROL-5e0a"


def _rows() -> list[dict[str, Any]]:
    rows = mini_rows()
    by_id = {r["id"]: r for r in rows}
    by_id["m001"]["caption"] = f"caption one {SECRET_A}"
    by_id["m002"]["caption"] = f"caption two {SECRET_B}"
    by_id["m005"]["caption"] = f"caption five {CONTROL}"
    assert "minor_sexual" in by_id["m003"]["labels"]
    assert not {"minor_sexual", "hate"} & set(by_id["m001"]["labels"] + by_id["m002"]["labels"])
    assert "hate" not in by_id["m005"]["labels"]
    return rows


def _fake(name: str, flags: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Scripted: nothing scores minor_sexual except ``flags``; m001, m002, m003 and
    m005 are confident hate false positives, so they land in every FP/FN table."""
    scores: dict[str, dict[str, float]] = {r["id"]: {"minor_sexual": 0.0} for r in rows}
    scores[flags]["minor_sexual"] = 0.97
    for iid in ("m001", "m002", "m003", "m005"):
        scores[iid]["hate"] = 0.99
    return {
        "name": name,
        "type": "fake",
        "params": {
            "seed": 3,
            "scores": scores,
            "categories": ["hate", "harassment", "minor_sexual"],
        },
        "batch_size": 8,
    }


def _blob(paths: list[Path]) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", errors="replace") for p in paths if p.is_file())


def test_two_moderators_and_gold_restrict_different_items_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow.tracking import MlflowClient

    runs = tmp_path / "runs"
    rows = _rows()
    cfg = base_config(write_suite(tmp_path, rows=rows), runs)
    cfg["moderators"] = [_fake("fake_a", "m001", rows), _fake("fake_b", "m002", rows)]
    assert run_cli(capsys, "run", str(write_config(tmp_path / "run.yaml", cfg))).code == 0
    run_dir = next(runs.glob("*/record.json")).parent
    export = tmp_path / "export"
    r = run_cli(capsys, "disagreements", str(run_dir), "--export-dir", str(export))
    assert r.code == 0, r.err
    assert (export / "review_queue.jsonl").is_file()

    # MLflow: every stored file (artifacts, tables) plus params and tags
    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    exp = client.get_experiment_by_name("test")
    mruns = client.search_runs([exp.experiment_id], max_results=100)
    assert len(mruns) == 3
    mlflow_text = _blob(list((runs / "mlartifacts").rglob("*")))
    for x in mruns:
        mlflow_text += "\n".join(map(str, [*x.data.params.values(), *x.data.tags.values()]))
    run_text = _blob(list(run_dir.rglob("*")))
    export_text = _blob(list(export.rglob("*")))
    cache_files = list((runs / "cache").glob("predictions.sqlite*"))
    assert cache_files
    everything = "\n".join([mlflow_text, run_text, export_text, _blob(cache_files)])

    # the scan sees item text where it is allowed: the control's FP rows
    assert CONTROL in mlflow_text
    assert CONTROL in (run_dir / "report.html").read_text(encoding="utf-8")
    assert CONTROL in export_text
    for secret in (SECRET_A, SECRET_B, SECRET_GOLD):
        assert secret not in everything, secret
    assert (run_dir / "report.md").is_file() and (run_dir / "record.json").is_file()

    # the three items are flagged restricted in *both* moderators' prediction files
    import pandas as pd

    for mod in ("fake_a", "fake_b"):
        pred = pd.read_parquet(run_dir / "predictions" / f"mini__{mod}.parquet").set_index("id")
        assert pred.loc[["m001", "m002", "m003"], "restricted"].all(), mod
        assert not pred.loc["m005", "restricted"], mod
    # and the FP table of each moderator keeps the other's item as id + hash only
    fp = json.loads(
        Path(
            client.download_artifacts(
                next(
                    x for x in mruns if x.data.tags.get("audit.moderator") == "fake_b"
                ).info.run_id,
                "fp_fn.json",
            )
        ).read_text()
    )
    rowsd = [dict(zip(fp["columns"], v)) for v in fp["data"]]
    hit = [x for x in rowsd if x["id"] == "m001"]
    assert hit and all(x["text"].startswith("[redacted") for x in hit)
    assert hit[0]["content_hash"]


def test_restricted_ids_includes_judge_rationale_naming_a_category(tmp_path: Path) -> None:
    from audit.engine.pipeline import run_audit
    from audit.engine.results import apply_restricted, restricted_ids
    from audit.policy import load_policy

    rows = _rows()
    cfg = base_config(write_suite(tmp_path, rows=rows), tmp_path / "runs")
    cfg["moderators"] = [_fake("fake_a", "m001", rows)]
    _rec, results = run_audit(cfg, mlflow=False)
    policy = load_policy("platform-v1")
    hashes = dict(zip(results[0].suite.dataset["id"], results[0].suite.dataset["content_hash"]))
    base = restricted_ids(results, policy)
    assert {hashes["m001"], hashes["m003"]} <= base and hashes["m007"] not in base
    results[0].rationales[7] = "Sexualises a child: Child sexual exploitation applies."
    got = restricted_ids(results, policy)
    assert hashes["m007"] in got
    apply_restricted(results, got)
    assert results[0].restricted_mask is not None and results[0].restricted_mask[7]


def test_cache_keeps_scores_but_no_text_for_restricted_items(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = PredictionCache(path, restricted_categories={"minor_sexual"})
    cache.withhold(["gold-h"])
    quote = "the item says QUOTED-ITEM-TEXT"
    outs = {
        "flag-h": ModeratorOutput(
            scores={"minor_sexual": 0.8, "hate": 0.1}, rationale=quote, raw_output=quote
        ),
        "gold-h": ModeratorOutput(scores={"minor_sexual": 0.1}, rationale=quote, raw_output=quote),
        "late-h": ModeratorOutput(scores={"hate": 0.9}, rationale=quote, raw_output=quote),
        "free-h": ModeratorOutput(scores={"hate": 0.9}, rationale="fine", raw_output="fine"),
    }
    assert cache.put_many("m", outs) == 4
    got = cache.get_many("m", outs)
    for h in ("flag-h", "gold-h"):
        assert got[h].rationale is None and got[h].raw_output is None
        assert got[h].scores == outs[h].scores  # a cached output reproduces the same scores
    assert got["late-h"].rationale == quote and got["free-h"].rationale == "fine"
    # flagged by another moderator after it was cached: scrubbed, scores intact
    assert cache.scrub(["late-h"]) == 1
    late = cache.get_many("m", ["late-h"])["late-h"]
    assert late.rationale is None and late.raw_output is None and late.scores == {"hate": 0.9}
    cache.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("c.sqlite*"))
    assert b"QUOTED-ITEM-TEXT" not in raw
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 4


def test_failed_run_keeps_run_wide_restricted_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A later moderator blows its error budget: the pairs that finished still get
    the run-wide restricted set in their prediction files."""
    import pandas as pd

    runs = tmp_path / "runs"
    rows = _rows()
    cfg = base_config(write_suite(tmp_path, rows=rows), runs)
    broken = {
        "name": "fake_c",
        "type": "fake",
        "params": {"fail_batches_containing": ["m000", "m010", "m020"]},
        "batch_size": 8,
    }
    cfg["moderators"] = [_fake("fake_a", "m001", rows), _fake("fake_b", "m002", rows), broken]
    path = write_config(tmp_path / "run.yaml", cfg)
    assert run_cli(capsys, "run", str(path), "--no-mlflow").code != 0
    run_dir = next(runs.glob("*/record.json")).parent
    assert json.loads((run_dir / "record.json").read_text())["status"] == "failed"
    pred = pd.read_parquet(run_dir / "predictions" / "mini__fake_a.parquet").set_index("id")
    assert pred.loc[["m001", "m002", "m003"], "restricted"].all()
