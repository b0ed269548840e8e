"""Hostile logs and labels through the CLI: exit code and a one-line message naming
the file and the field (or, for documented non-errors, the counted handling)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.helpers.cli import Result, run_cli

DAY = "2026-11-30"


def _logs(tmp: Path, n: int = 600, seed: int = 0, **over: Any) -> Path:
    """Write a small valid log (two categories) with column overrides; returns the card."""
    rng = np.random.default_rng(seed)
    k = n // 2
    df = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(k)] * 2,
            "ts": pd.Timestamp(f"{DAY} 10:00:00") + pd.to_timedelta(rng.integers(0, 3600, n), "s"),
            "pathway": "clf",
            "category": ["hate"] * k + ["spam"] * k,
            "score": rng.beta(1, 4, n),
            "policy_version": "v1",
            "views": rng.integers(1, 500, n),
        }
    )
    df["actioned"] = df["score"] > 0.5
    df["action"] = np.where(df["actioned"], "remove", "none")
    for c, v in over.items():
        df[c] = v
    d = tmp / "logs"
    d.mkdir(parents=True, exist_ok=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    # pa.array keeps NaN as NaN (pandas' to_parquet would turn it into NULL)
    cols = {c: pa.array(df[c].to_numpy()) if c != "ts" else pa.array(df[c]) for c in df.columns}
    pq.write_table(pa.table(cols), d / "logs.parquet")
    card = tmp / "logs.yaml"
    card.write_text("name: t\nsource: {path: logs/logs.parquet}\n")
    return card


def _one_line(r: Result) -> str:
    lines = [x for x in r.err.strip().splitlines() if x.strip()]
    assert len(lines) == 1, r.err
    return lines[0]


def _expect(r: Result, code: int, *needles: str) -> None:
    assert r.code == code, (r.code, r.out, r.err)
    msg = _one_line(r) if code else r.out
    for n in needles:
        assert n in msg, (n, msg)


def _check(capsys: pytest.CaptureFixture[str], card: Path, *extra: str) -> Result:
    return run_cli(capsys, "production", "check", str(card), "--period", DAY, *extra)


def test_missing_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _logs(tmp_path)
    card.write_text("name: t\nsource: {path: logs/logs.parquet}\ncolumns: {score: prob}\n")
    _expect(_check(capsys, card), 2, "logs.parquet", "columns.score", "'prob' not found")


def test_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _logs(tmp_path, score=["0.5"] * 600)
    _expect(_check(capsys, card), 2, "logs.parquet", "columns.score", "wrong type", "VARCHAR")


def test_duplicate_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _logs(tmp_path, item_id=["same"] * 300 + [f"j{i}" for i in range(300)])
    _expect(
        _check(capsys, card), 2, "logs.parquet", "columns.item_id", "duplicate", "299 extra rows"
    )
    card.write_text("name: t\nsource: {path: logs/logs.parquet}\nduplicates: latest\n")
    _expect(_check(capsys, card), 0, "299 duplicates dropped")


def test_score_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _logs(tmp_path, score=np.r_[np.full(599, 0.2), 1.5])
    _expect(_check(capsys, card), 2, "logs.parquet", "columns.score", "outside [0, 1] in 1 of 600")


def test_nan_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _logs(tmp_path, score=np.r_[np.full(598, 0.2), np.nan, np.nan])
    _expect(_check(capsys, card), 2, "logs.parquet", "columns.score", "NaN score in 2 of 600")


def test_null_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _logs(tmp_path, score=np.array([0.2] * 599 + [None], dtype=object))
    _expect(_check(capsys, card), 2, "logs.parquet", "columns.score", "NULL score in 1 of 600")


def test_negative_views(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _logs(tmp_path, views=np.r_[np.full(599, 3), -1])
    _expect(_check(capsys, card), 2, "logs.parquet", "columns.views", "negative view count")


def test_two_policy_versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _logs(tmp_path, policy_version=["v1"] * 500 + ["v2"] * 100)
    _expect(
        _check(capsys, card),
        2,
        "logs.parquet",
        "columns.policy_version",
        "2 policy versions",
        "v1, v2",
    )
    _expect(_check(capsys, card, "--policy-version", "v2"), 0, "100 decisions")


def test_empty_period(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _logs(tmp_path)
    r = run_cli(capsys, "production", "check", str(card), "--period", "2026-12-05")
    _expect(r, 2, "logs.parquet", "columns.ts", "no decisions")


def test_unreadable_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _logs(tmp_path)
    (tmp_path / "logs" / "logs.parquet").write_bytes(b"not parquet at all")
    _expect(
        _check(capsys, card), 2, "logs.parquet", "source.path", "cannot read the logs as Parquet"
    )


def test_bad_card_key_and_period(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _logs(tmp_path)
    card.write_text("name: t\nsource: {path: logs/logs.parquet}\nslice: [x]\n")
    _expect(_check(capsys, card), 2, "logs.yaml", "slice")
    card.write_text("name: t\nsource: {path: logs/logs.parquet}\n")
    r = run_cli(capsys, "production", "check", str(card), "--period", "last week")
    _expect(r, 2, "--period", "YYYY-MM-DD")


def _pipeline(tmp: Path, capsys: pytest.CaptureFixture[str], card: Path, *plan_args: str) -> Path:
    r = run_cli(
        capsys,
        "production",
        "plan",
        str(card),
        "--period",
        DAY,
        "--out",
        str(tmp / "plan.json"),
        "--floor",
        "10",
        *plan_args,
    )
    assert r.code == 0, r.err
    r = run_cli(
        capsys,
        "production",
        "sample",
        str(card),
        "--plan",
        str(tmp / "plan.json"),
        "--period",
        DAY,
        "--out",
        str(tmp / "s"),
    )
    assert r.code == 0, r.err
    return tmp / "s"


def _gold(sdir: Path) -> pd.DataFrame:
    smp = pd.read_parquet(sdir / "sample.parquet")
    smp = smp[smp["human"]].drop_duplicates(["item_id", "category"])
    lab = (smp["score"] > 0.4).astype(int)
    return pd.DataFrame(
        {"item_id": smp["item_id"], "category": smp["category"], "label": lab, "labeler": "a"}
    )


def _estimate(capsys: pytest.CaptureFixture[str], sdir: Path, labels: Path, *extra: str) -> Result:
    return run_cli(
        capsys,
        "production",
        "estimate",
        str(sdir / "manifest.json"),
        "--human",
        str(labels),
        "--bootstrap",
        "50",
        "--no-mlflow",
        *extra,
    )


def test_labels_for_unsampled_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sdir = _pipeline(tmp_path, capsys, _logs(tmp_path))
    lab = pd.concat(
        [
            _gold(sdir),
            pd.DataFrame([{"item_id": "ghost", "category": "hate", "label": 1, "labeler": "a"}]),
        ]
    )
    lab.to_csv(tmp_path / "h.csv", index=False)
    _expect(
        _estimate(capsys, sdir, tmp_path / "h.csv"),
        2,
        "h.csv",
        "item_id",
        "not sampled",
        "--allow-unsampled",
    )
    _expect(_estimate(capsys, sdir, tmp_path / "h.csv", "--allow-unsampled"), 0, "precision")
    rec = (sdir / "production_record.json").read_text()
    assert '"n_unsampled_ignored": 1' in rec


def test_conflicting_duplicate_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sdir = _pipeline(tmp_path, capsys, _logs(tmp_path))
    g = _gold(sdir)
    row = g.iloc[[0]]
    flipped = row.assign(label=1 - row["label"], labeler="b")
    pd.concat([g, flipped]).to_csv(tmp_path / "h.csv", index=False)
    _expect(
        _estimate(capsys, sdir, tmp_path / "h.csv"),
        2,
        "h.csv",
        "label",
        "conflicting labels",
        "--resolve majority",
    )
    # a tie cannot be resolved by majority either
    _expect(
        _estimate(capsys, sdir, tmp_path / "h.csv", "--resolve", "majority"),
        2,
        "h.csv",
        "strict majority",
    )
    pd.concat([g, flipped, row.assign(labeler="c")]).to_csv(tmp_path / "h3.csv", index=False)
    _expect(_estimate(capsys, sdir, tmp_path / "h3.csv", "--resolve", "majority"), 0, "precision")
    assert '"n_conflicts_resolved": 1' in (sdir / "production_record.json").read_text()


def test_category_absent_from_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sdir = _pipeline(tmp_path, capsys, _logs(tmp_path))
    g = _gold(sdir)
    g.loc[g.index[0], "category"] = "violence"
    g.to_csv(tmp_path / "h.csv", index=False)
    _expect(
        _estimate(capsys, sdir, tmp_path / "h.csv"),
        2,
        "h.csv",
        "category",
        "'violence' is not in the sample",
    )


def test_bad_label_values_and_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sdir = _pipeline(tmp_path, capsys, _logs(tmp_path))
    g = _gold(sdir)
    g["label"] = g["label"].astype(object)
    g.loc[g.index[3], "label"] = "yes"
    g.to_csv(tmp_path / "h.csv", index=False)
    _expect(
        _estimate(capsys, sdir, tmp_path / "h.csv"),
        2,
        "h.csv",
        "label",
        "bad label on row 5",
        "'yes'",
    )
    g.drop(columns=["label"]).to_csv(tmp_path / "h2.csv", index=False)
    _expect(_estimate(capsys, sdir, tmp_path / "h2.csv"), 2, "h2.csv", "label", "missing")


def test_missing_labels_reweighted_and_singleton_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sdir = _pipeline(tmp_path, capsys, _logs(tmp_path))
    smp = pd.read_parquet(sdir / "sample.parquet")
    g = _gold(sdir).merge(
        smp[["item_id", "category", "stratum"]].drop_duplicates(["item_id", "category"])
    )
    # drop 5 labels from stratum 1 and all but one label of stratum 2 (a singleton)
    s2 = g[g["stratum"] == 2]
    drop = list(g[g["stratum"] == 1].index[:5]) + list(s2.index[1:])
    g.drop(index=drop).drop(columns=["stratum"]).to_csv(tmp_path / "h.csv", index=False)
    r = _estimate(capsys, sdir, tmp_path / "h.csv")
    _expect(r, 0, "missing_labels:", f"{5 + len(s2) - 1} sampled items", "singleton_strata: 1")


def test_stratum_without_labels_is_nan_with_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sdir = _pipeline(tmp_path, capsys, _logs(tmp_path))
    smp = pd.read_parquet(sdir / "sample.parquet")
    g = _gold(sdir).merge(
        smp[["item_id", "category", "stratum"]].drop_duplicates(["item_id", "category"])
    )
    g[g["stratum"] != 0].drop(columns=["stratum"]).to_csv(tmp_path / "h.csv", index=False)
    r = _estimate(capsys, sdir, tmp_path / "h.csv")
    _expect(r, 0, "n/a")
    import json

    rec = json.loads((sdir / "production_record.json").read_text())
    cell = next(c for c in rec["cells"] if c["key"] == "clf/hate")
    est = cell["classical"]["prevalence"]
    assert est["value"] != est["value"]  # NaN, never 0
    assert "1 stratum/strata with N_h > 0 have no human labels" in est["reason"]


def test_empty_actioned_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = _logs(tmp_path, actioned=False)
    sdir = _pipeline(tmp_path, capsys, card)
    _gold(sdir).to_csv(tmp_path / "h.csv", index=False)
    r = _estimate(capsys, sdir, tmp_path / "h.csv")
    _expect(r, 0, "precision")
    import json

    rec = json.loads((sdir / "production_record.json").read_text())
    cell = next(c for c in rec["cells"] if c["key"] == "clf/hate")
    est = cell["classical"]["precision"]
    assert est["value"] != est["value"] and "denominator total is 0" in est["reason"]
    # the flag names the real cause, not "few positives" on an estimate that does not exist
    assert any(f.startswith("undefined: precision:") for f in cell["flags"]), cell["flags"]
    assert not any(f.startswith("few_positives: precision") for f in cell["flags"])


def test_all_views_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sdir = _pipeline(tmp_path, capsys, _logs(tmp_path, views=0), "--certainty-views", "0")
    _gold(sdir).to_csv(tmp_path / "h.csv", index=False)
    r = _estimate(capsys, sdir, tmp_path / "h.csv")
    assert r.code == 0, r.err
    import json

    rec = json.loads((sdir / "production_record.json").read_text())
    est = next(c for c in rec["cells"] if c["key"] == "clf/hate")["classical"]["prevalence_views"]
    assert est["value"] != est["value"] and "denominator total is 0" in est["reason"]


def test_new_category_and_empty_stratum_next_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = _logs(tmp_path)
    r = run_cli(
        capsys,
        "production",
        "plan",
        str(card),
        "--period",
        DAY,
        "--out",
        str(tmp_path / "plan.json"),
    )
    assert r.code == 0, r.err
    # next day: a category the plan never saw
    day2 = tmp_path / "d2"
    card2 = _logs(day2, category=["hate"] * 300 + ["scam"] * 300)
    r = run_cli(
        capsys,
        "production",
        "sample",
        str(card2),
        "--plan",
        str(tmp_path / "plan.json"),
        "--period",
        DAY,
        "--out",
        str(day2 / "s"),
    )
    _expect(r, 2, "logs.parquet", "columns.category", "clf/scam", "no planned stratum")
    # next day: no high scores at all, so the actioned strata are empty (N_h = 0, noted)
    day3 = tmp_path / "d3"
    card3 = _logs(day3, score=0.1, actioned=False)
    r = run_cli(
        capsys,
        "production",
        "sample",
        str(card3),
        "--plan",
        str(tmp_path / "plan.json"),
        "--period",
        DAY,
        "--out",
        str(day3 / "s"),
    )
    _expect(r, 0, "is empty in 2026-11-30 (N_h = 0)")


def test_floor_below_two_and_edited_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = _logs(tmp_path)
    r = run_cli(
        capsys,
        "production",
        "plan",
        str(card),
        "--period",
        DAY,
        "--out",
        str(tmp_path / "p.json"),
        "--floor",
        "1",
    )
    _expect(r, 2, "--floor", "singleton")
    sdir = _pipeline(tmp_path, capsys, card)
    _gold(sdir).to_csv(tmp_path / "h.csv", index=False)
    (sdir / "sample.parquet").write_bytes((sdir / "sample.parquet").read_bytes() + b"x")
    _expect(
        _estimate(capsys, sdir, tmp_path / "h.csv"), 2, "sample.parquet", "sample_sha256", "changed"
    )


def test_fully_enumerated_actioned_frame_is_flagged_zero_variance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # about 8 actioned items per category, all taken (floor 10 >= N_h): precision has design
    # variance 0 at a value inside (0, 1); the flag must say so, not "boundary"
    n = 600
    score = np.random.default_rng(3).beta(1, 6, n) * 0.5
    score[[0, 1, 2, 3, 4, 5, 6, 7]] = [0.45, 0.42, 0.41, 0.9, 0.95, 0.85, 0.38, 0.99]
    score[[300, 301, 302, 303, 304, 305, 306, 307]] = score[[0, 1, 2, 3, 4, 5, 6, 7]]
    card = _logs(tmp_path, n=n, score=score, actioned=score > 0.35)
    sdir = _pipeline(tmp_path, capsys, card, "--no-view-bands")
    _gold(sdir).to_csv(tmp_path / "h.csv", index=False)
    r = _estimate(capsys, sdir, tmp_path / "h.csv")
    assert r.code == 0, r.err
    import json

    rec = json.loads((sdir / "production_record.json").read_text())
    cell = next(c for c in rec["cells"] if c["key"] == "clf/hate")
    est = cell["classical"]["precision"]
    assert 0 < est["value"] < 1 and est["se"] == 0.0, est
    assert any(f.startswith("zero_variance: precision") for f in cell["flags"]), cell["flags"]
    assert not any(f.startswith("boundary: precision") for f in cell["flags"])
