"""The replay moderator through `audit run`, and the CLI flow into MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit.production.synthetic import Population
from tests.helpers.cli import run_cli
from tests.helpers.suites import base_config, mini_rows, write_config, write_suite


def _replay_logs(tmp: Path) -> Path:
    rows = mini_rows()
    ids = [r["id"] for r in rows if r["id"] != "m007"]  # production never saw m007
    n = len(ids)
    rng = np.random.default_rng(0)
    tbl = pa.table(
        {
            "item_id": ids * 2,
            "ts": pa.array([np.datetime64("2026-11-30T08:00:00", "s")] * (2 * n)),
            "pathway": ["clf"] * (2 * n),
            "category": ["hate"] * n + ["harassment"] * n,
            "score": rng.random(2 * n),
            "actioned": [True, False] * n,
            "action": ["remove", "none"] * n,
            "views": pa.array([5] * (2 * n), pa.int64()),
            "policy_version": ["platform-v1"] * (2 * n),
        }
    )
    (tmp / "plogs").mkdir()
    pq.write_table(tbl, tmp / "plogs" / "day.parquet")
    card = tmp / "plogs.yaml"
    card.write_text("name: replay\nsource: {path: plogs}\n")
    return card


def test_replay_through_audit_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    suite = write_suite(tmp_path)
    card = _replay_logs(tmp_path)
    cfg = base_config(suite, runs)
    cfg["moderators"] = [
        {
            "name": "prod",
            "type": "replay",
            "params": {"logs": str(card), "pathway": "clf"},
            "batch_size": 8,
        },
        {
            "name": "prod_dec",
            "type": "replay",
            "params": {"logs": str(card), "pathway": "clf", "use": "decision"},
        },
    ]
    r = run_cli(capsys, "run", str(write_config(tmp_path / "run.yaml", cfg)), "--no-mlflow")
    assert r.code == 0, r.err
    rec_path = next(runs.glob("*/record.json"))
    rec = json.loads(rec_path.read_text())
    res = {x["moderator"]: x for x in rec["results"]}
    assert res["prod"]["n_errors"] == 1  # the absent item is an error, not a negative
    pred = pd.read_parquet(rec_path.parent / res["prod"]["predictions"]).set_index("id")
    assert "not in the logs" in pred.loc["m007", "error"] and pd.isna(
        pred.loc["m007", "score.hate"]
    )
    logged = pq.read_table(tmp_path / "plogs" / "day.parquet").to_pandas()
    want = logged[(logged.item_id == "m001") & (logged.category == "hate")]["score"].iloc[0]
    assert pred.loc["m001", "score.hate"] == pytest.approx(want)
    dec = pd.read_parquet(rec_path.parent / res["prod_dec"]["predictions"]).set_index("id")
    assert set(dec["score.hate"].dropna()) <= {0.0, 1.0}
    # minor_sexual is not in the logs: not applicable, never scored as a miss
    assert "minor_sexual" not in res["prod"]["metrics"]


def test_replay_bad_logs_is_a_moderator_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path)
    card = tmp_path / "missing.yaml"
    cfg = base_config(suite, tmp_path / "runs")
    cfg["moderators"] = [
        {"name": "prod", "type": "replay", "params": {"logs": str(card), "pathway": "clf"}}
    ]
    r = run_cli(capsys, "run", str(write_config(tmp_path / "run.yaml", cfg)), "--no-mlflow")
    assert r.code == 2 and "logs card not found" in r.err and "missing.yaml" in r.err


def test_cli_flow_to_mlflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], card: Path, pop: Population
) -> None:
    d = "2026-11-30"
    assert (
        run_cli(
            capsys,
            "production",
            "plan",
            str(card),
            "--period",
            d,
            "--out",
            str(tmp_path / "p.json"),
            "--reference-factor",
            "2",
        ).code
        == 0
    )
    r = run_cli(
        capsys,
        "production",
        "sample",
        str(card),
        "--plan",
        str(tmp_path / "p.json"),
        "--period",
        d,
        "--out",
        str(tmp_path / "s"),
        "--format",
        "csv",
    )
    assert r.code == 0, r.err
    assert (
        (tmp_path / "s" / "batch_human.csv").read_text().startswith("item_id,category,content_hash")
    )
    r = run_cli(
        capsys,
        "production",
        "sample",
        str(card),
        "--plan",
        str(tmp_path / "p.json"),
        "--period",
        d,
        "--emit-sql",
    )
    assert r.code == 0 and r.out.startswith("WITH logs AS")
    truth = pd.DataFrame(
        {"item_id": pop.item_id, "category": pop.category, "label": pop.truth, "ref": pop.reference}
    )
    smp = pd.read_parquet(tmp_path / "s" / "sample.parquet").merge(
        truth, on=["item_id", "category"]
    )
    smp[smp.human][["item_id", "category", "label"]].to_csv(tmp_path / "h.csv", index=False)
    smp[["item_id", "category", "ref"]].rename(columns={"ref": "score"}).to_parquet(
        tmp_path / "r.parquet"
    )
    r = run_cli(
        capsys,
        "production",
        "estimate",
        str(tmp_path / "s" / "manifest.json"),
        "--human",
        str(tmp_path / "h.csv"),
        "--reference",
        str(tmp_path / "r.parquet"),
        "--bootstrap",
        "100",
    )
    assert r.code == 0, r.err
    assert "mlflow: 1 run(s)" in r.out
    html = (tmp_path / "s" / "production_report.html").read_text()
    assert "human vs reference disagreement" in html and "clf/hate" in html
    from mlflow.tracking import MlflowClient

    runs_dir = Path(__import__("os").environ["AUDIT_RUNS_DIR"])
    client = MlflowClient(tracking_uri=f"sqlite:///{runs_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("production")
    (run,) = client.search_runs([exp.experiment_id])
    m = run.data.metrics
    for key in (
        "clf/hate/precision",
        "clf/hate/precision_ci_low",
        "clf/hate/precision_ci_high",
        "clf/hate/precision/n_labelled",
        "clf/spam/recall",
        "clf/spam/prevalence_views",
        "clf/hate/prevalence_ppi",
        "clf/hate/surface.feed/recall",
    ):
        assert key in m, key
    assert (
        m["clf/hate/precision_ci_low"] <= m["clf/hate/precision"] <= m["clf/hate/precision_ci_high"]
    )
    hist = client.get_metric_history(run.info.run_id, "clf/hate/precision")
    assert hist[0].step == 20261130 and run.data.tags["audit.period"] == d


def test_demo_day_falls_back_to_packaged_items(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIT_DATA_ROOT", str(tmp_path / "no_shared_data"))
    r = run_cli(capsys, "production", "demo-day", "--out", str(tmp_path / "d"))
    assert r.code == 0, r.err
    assert "from short_video_v1" in r.out
    truth = json.loads((tmp_path / "d" / "truth_2026-11-30.json").read_text())
    assert set(truth) == {"profanity_clf/harassment", "profanity_clf/hate"}
    r = run_cli(
        capsys, "production", "check", str(tmp_path / "d" / "logs.yaml"), "--period", "2026-11-30"
    )
    assert r.code == 0 and "1,046 decisions" in r.out
    # a second day in the same folder: its own partition and truth; day 1's truth survives
    day1 = (tmp_path / "d" / "truth_2026-11-30.parquet").read_bytes()
    r = run_cli(
        capsys, "production", "demo-day", "--out", str(tmp_path / "d"), "--day", "2026-12-01",
        "--seed", "2",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert (tmp_path / "d" / "truth_2026-11-30.parquet").read_bytes() == day1
    assert (tmp_path / "d" / "truth_2026-12-01.json").exists()
    for day in ("2026-11-30", "2026-12-01"):
        r = run_cli(
            capsys, "production", "check", str(tmp_path / "d" / "logs.yaml"), "--period", day
        )
        assert r.code == 0 and "1,046 decisions" in r.out, (day, r.out, r.err)
