"""Logs card, DuckDB reading with pushdown, validation counts, digest, drift arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit.production import DecisionLogs, LogsError, Period, load_logs_card
from audit.production.synthetic import Population


def test_check_counts_and_digest(card: Path, pop: Population) -> None:
    logs = DecisionLogs.open(card)
    rep = logs.check(Period.parse("2026-11-30"))
    assert rep.n_rows == len(pop.item_id) and logs.count_items(Period.parse("2026-11-30")) == 6_000
    assert rep.categories == ("hate", "spam") and rep.policy_version == "platform-v1"
    assert rep.n_views_zero == int((pop.views == 0).sum())
    d1 = logs.digest()
    assert d1 == DecisionLogs.open(card).digest() and len(d1) == 64
    # another day has no rows: a clear error naming the ts column
    with pytest.raises(LogsError, match=r"columns\.ts.*no decisions"):
        logs.check(Period.parse("2026-12-01"))


def test_category_arrays_for_drift(card: Path, pop: Population) -> None:
    arr = DecisionLogs.open(card).category_arrays(Period.parse("2026-11-30"), "clf")
    assert set(arr) == {"hate", "spam"}
    m = pop.category == "hate"
    assert len(arr["hate"].scores) == m.sum()
    assert np.isclose(arr["hate"].scores.sum(), pop.score[m].sum())
    assert arr["hate"].actioned.sum() == pop.actioned[m].sum()
    assert arr["hate"].actioned.dtype == bool


def _hive(tmp: Path) -> Path:
    for day, n in (("2026-11-29", 5), ("2026-11-30", 7)):
        d = tmp / "logs" / f"date={day}"
        d.mkdir(parents=True)
        pq.write_table(
            pa.table(
                {
                    "id": [f"{day}-{i}" for i in range(n)],
                    "ts": pa.array([np.datetime64(f"{day}T12:00:00", "s")] * n),
                    "pathway": ["p"] * n,
                    "category": ["hate"] * n,
                    "score": [0.5] * n,
                    "actioned": [True] * n,
                    "action": ["remove"] * n,
                    "views": pa.array([1] * n, pa.int64()),
                    "policy_version": ["v1"] * n,
                }
            ),
            d / "part.parquet",
        )
    card = tmp / "card.yaml"
    card.write_text(
        "name: hive\nsource: {path: logs, hive_partitioning: true, partition_date_column: date}\n"
        "columns: {item_id: id}\n"
    )
    return card


def test_hive_partitions_pruned_by_period(tmp_path: Path) -> None:
    logs = DecisionLogs.open(_hive(tmp_path))
    assert logs.check(Period.parse("2026-11-30")).n_rows == 7
    assert logs.check(Period.parse("2026-11-29..2026-11-30")).n_rows == 12
    # only the period's partition is hashed and named in the plan SQL
    assert len(logs.files(Period.parse("2026-11-30"))) == 1
    assert logs.digest(Period.parse("2026-11-30")) != logs.digest(Period.parse("2026-11-29"))
    sql = logs.relation_sql(Period.parse("2026-11-30"))
    assert 'CAST("date" AS DATE) BETWEEN' in sql
    plan = logs.con.execute(f"EXPLAIN {sql}").fetchall()
    assert "date" in str(plan)


def test_card_rejects_unknown_keys(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nsource: {path: a.parquet}\ncolums: {}\n")
    with pytest.raises(LogsError, match="colums"):
        load_logs_card(p)


def test_period_parse() -> None:
    p = Period.parse("2026-11-24..2026-11-30")
    assert p.step == 20261124 and p.label == "2026-11-24..2026-11-30"
    with pytest.raises(LogsError, match="--period"):
        Period.parse("yesterday")
