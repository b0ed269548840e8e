"""Plan (Neyman, floors, bulk stratum, sizes) and the hash-ranked two-frame sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit.production import DecisionLogs, Period, build_plan, draw_sample, sampling_sql
from audit.production.allocation import _n_for_variance
from audit.production.sample import seed_key

DAY = Period.parse("2026-11-30")


def test_textbook_sample_size() -> None:
    # METHODS §6.6: precision ±2 points at p ≈ 0.9 needs ~865 labels (one stratum, N large)
    S = np.array([np.sqrt(0.9 * 0.1)])
    N = np.array([1e9])
    n = _n_for_variance(N, S, (0.02 / 1.959964) ** 2 * N.sum() ** 2)
    assert 860 <= n <= 870


def test_plan_allocation_rules(card: Path) -> None:
    logs = DecisionLogs.open(card)
    # the score-band rules; view bands (split after allocation) are tested below
    plan = build_plan(logs, DAY, floor=25, reference_factor=2.0, view_bands=False)
    assert {c.key for c in plan.cells} == {"clf/hate", "clf/spam"}
    for s in plan.strata:
        assert s.N_h > 0
        assert min(25, s.N_h) <= s.n_h <= s.N_h  # floor, capped at N_h
        assert s.n_h <= s.m_h <= min(s.N_h, 2 * s.n_h + 1)
    bulk = [s for s in plan.strata if s.bulk]
    assert len(bulk) == 2 and all(s.n_h >= 25 for s in bulk)  # never zero allocation
    # Neyman: among unfloored, uncapped strata of one frame n_h ∝ N_h S_h
    hate_b = [s for s in plan.strata if s.category == "hate" and s.frame == "not_actioned"]
    free = [s for s in hate_b if 25 < s.n_h < s.N_h]
    if len(free) >= 2:
        r = [s.n_h / (s.N_h * np.sqrt(s.p_prior * (1 - s.p_prior))) for s in free]
        assert max(r) / min(r) < 1.1
    for c in plan.cells:
        assert c.half_width_precision <= 0.05 + 1e-9
        assert c.half_width_recall <= 0.0501
        assert c.mde_precision > c.half_width_precision


def test_view_bands_split_each_large_stratum_by_views(card: Path, tmp_path: Path) -> None:
    from audit.production.viewbands import BAND_FLOOR

    logs = DecisionLogs.open(card)
    flat = build_plan(logs, DAY, floor=25, view_bands=False)
    plan = build_plan(logs, DAY, floor=25)  # the default with a views column
    assert plan.view_bands and not flat.view_bands
    banded = [s for s in plan.strata if s.views_lo is not None or s.views_hi is not None]
    assert banded, "the large strata of the fixture should be split"
    # each parent score band keeps its N_h and its n_h; each view band gets its floor
    for f in flat.strata:
        kids = [s for s in plan.strata if s.key.startswith(f.key + "|v")]
        if not kids:
            continue
        assert sum(s.N_h for s in kids) == f.N_h
        assert sum(s.n_h for s in kids) == f.n_h
        assert all(min(BAND_FLOOR, s.N_h) <= s.n_h <= s.N_h for s in kids)
        # higher view bands are sampled at a higher rate (the Neyman half of the allocation)
        rates = [s.n_h / s.N_h for s in sorted(kids, key=lambda s: s.views_lo or -1)]
        assert rates[-1] > rates[0]
    # the sampler's SQL puts every sampled row in the view band its views belong to
    man = draw_sample(logs, plan, DAY, tmp_path / "s", seed=3)
    smp = pd.read_parquet(tmp_path / "s" / "sample.parquet")
    logs_df = pd.read_parquet(
        Path(card).parent / "logs.parquet", columns=["item_id", "category", "views"]
    )
    smp = smp.merge(logs_df, on=["item_id", "category"], suffixes=("", "_log"))
    by_id = {s.id: s for s in man.strata}
    for sid, v in zip(smp["stratum"], smp["views_log"]):
        s = by_id[int(sid)]
        assert s.views_lo is None or v >= s.views_lo
        assert s.views_hi is None or v < s.views_hi
    assert {s.id: s.N_h for s in man.strata} == {s.id: s.N_h for s in plan.strata}


def test_budget_and_bad_inputs(card: Path) -> None:
    logs = DecisionLogs.open(card)
    plan = build_plan(logs, DAY, max_labels=800)
    assert sum(s.n_h for s in plan.strata) <= 800
    from audit.production import PlanError

    with pytest.raises(PlanError, match="--max-labels"):
        build_plan(logs, DAY, max_labels=50)
    with pytest.raises(PlanError, match="slices"):
        build_plan(logs, DAY, slices=("language",))


def test_sample_deterministic_nested_and_frozen(tmp_path: Path, card: Path) -> None:
    logs = DecisionLogs.open(card)
    plan = build_plan(logs, DAY, reference_factor=3.0, slices=("surface",))
    m1 = draw_sample(logs, plan, DAY, tmp_path / "a", seed=7, restricted=frozenset({"spam"}))
    m2 = draw_sample(logs, plan, DAY, tmp_path / "b", seed=7)
    m3 = draw_sample(logs, plan, DAY, tmp_path / "c", seed=8)
    s1, s2, s3 = (pd.read_parquet(tmp_path / x / "sample.parquet") for x in "abc")
    assert s1["item_id"].tolist() == s2["item_id"].tolist()
    assert s1["item_id"].tolist() != s3["item_id"].tolist()
    # different seeds give (nearly) independent draws: overlap ≈ the chance overlap m_h²/N_h
    big = max(m1.strata, key=lambda st: st.N_h)
    a = set(s1[s1["stratum"] == big.id]["item_id"])
    c = set(s3[s3["stratum"] == big.id]["item_id"])
    expect = big.m_h**2 / big.N_h
    assert abs(len(a & c) - expect) < 4 * expect**0.5 + 3, (len(a & c), expect)
    assert m1.logs_digest == logs.digest(DAY) and m1.plan_digest == plan.digest()
    for st in m1.strata:
        rows = s1[s1["stratum"] == st.id]
        assert len(rows) == st.m_h and rows["human"].sum() == st.n_h
        # the human sample is the first n_h ranks of the reference sample
        assert rows[rows["human"]]["rank"].max() == st.n_h
        assert (rows["score"] >= st.lo).all() and (
            rows["actioned"] == (st.frame == "actioned")
        ).all()
        assert rows["slice.surface"].eq(st.slice["surface"]).all()
    assert sum(s.N_h for s in m1.strata) == m1.n_rows
    # restricted categories leave as id + content hash only; batches are blind
    lines = [json.loads(x) for x in (tmp_path / "a" / "batch_human.jsonl").read_text().splitlines()]
    spam = [x for x in lines if x["category"] == "spam"]
    assert spam and all(
        x["restricted"] and set(x) == {"item_id", "category", "content_hash", "restricted"}
        for x in spam
    )
    assert all("score" not in x and "actioned" not in x for x in lines)
    del m2, m3


def test_emit_sql_is_the_sampling_query(tmp_path: Path, card: Path) -> None:
    logs = DecisionLogs.open(card)
    plan = build_plan(logs, DAY)
    man = draw_sample(logs, plan, DAY, tmp_path / "s", seed=3)
    alloc = {s.id: s.m_h for s in man.strata}
    sql = sampling_sql(logs, plan, DAY, 3, alloc, None)
    assert "row_number() OVER (PARTITION BY stratum ORDER BY h, item_id)" in sql
    assert f"hash(xor(hash(item_id), {seed_key(3)}::UBIGINT))" in sql
    smp = pd.read_parquet(tmp_path / "s" / "sample.parquet")
    # with or without the hash pre-filter, the query returns exactly the drawn sample
    assert logs.con.execute(sql).fetchdf()["item_id"].tolist() == smp["item_id"].tolist()
    fast = sampling_sql(logs, plan, DAY, 3, alloc, None, {s.id: s.N_h for s in man.strata})
    # without sizes every cut-off is the largest hash (no pre-filter); with them, some are lower
    assert sql.count(f"{2**64 - 1}::UBIGINT") == sum(1 for v in alloc.values() if v > 0)
    assert fast.count(f"{2**64 - 1}::UBIGINT") < sql.count(f"{2**64 - 1}::UBIGINT")
    assert logs.con.execute(fast).fetchdf()["item_id"].tolist() == smp["item_id"].tolist()


def test_hash_ranked_selection_is_uniform_within_strata(tmp_path: Path) -> None:
    """Every item of a stratum is drawn with probability n_h/N_h, independently across seeds.

    The estimators assume a simple random sample within each stratum. Over 400 seeds of the
    real sampling query, each item's inclusion count must be Binomial(400, n_h/N_h): the
    dispersion statistic Σ (c - Sπ)²/(Sπ(1-π)) has mean Σ 1 and sd ≈ √(2 Σ 1), the count of
    violators drawn matches π times their number (no selection associated with the label),
    and consecutive seeds overlap by the chance amount Σ n_h²/N_h. DuckDB's two-argument
    ``hash(item_id, seed)`` fails the dispersion check (z ≈ 48 on this population).
    """
    from scipy.stats import binom

    from audit.production.plan import stratum_case_sql
    from audit.production.synthetic import plant, write_logs

    planted = plant(1_500, ("hate",), seed=5)
    logs = DecisionLogs.open(write_logs(planted, tmp_path / "logs"))
    plan = build_plan(logs, DAY, floor=20, half_width=0.1, view_bands=False, certainty_views=0)
    alloc = {s.id: s.n_h for s in plan.strata}
    pi = {s.id: s.n_h / s.N_h for s in plan.strata}
    rel = logs.relation_sql(DAY, None, None, native_ids=True)
    pop = logs.con.execute(
        f"SELECT CAST(item_id AS VARCHAR) AS item_id, "
        f"{stratum_case_sql(plan.strata, plan.slices)} AS stratum FROM ({rel})"
    ).fetchdf()
    pop["truth"] = pop["item_id"].map(dict(zip(planted.item_id.tolist(), planted.truth.tolist())))
    S = 400
    counts: dict[str, int] = {}
    overlap: list[int] = []
    prev: set[str] = set()
    for seed in range(S):
        ids = logs.con.execute(sampling_sql(logs, plan, DAY, seed, alloc, None)).fetchnumpy()
        cur = set(ids["item_id"].tolist())
        for i in cur:
            counts[i] = counts.get(i, 0) + 1
        if seed:
            overlap.append(len(cur & prev))
        prev = cur
    pop["c"] = pop["item_id"].map(counts).fillna(0)
    pop["p"] = pop["stratum"].map(pi)
    part = pop[(pop["p"] > 0) & (pop["p"] < 1)]
    assert len(part) > 1_000 and part["stratum"].nunique() >= 3, plan.strata
    var = S * part["p"] * (1 - part["p"])
    z = (((part["c"] - S * part["p"]) ** 2 / var).sum() - len(part)) / np.sqrt(2 * len(part))
    assert abs(z) < 4, z
    # no single item drawn too often or too rarely (Bonferroni over the items)
    lo = binom.ppf(1e-4 / len(part), S, part["p"])
    hi = binom.isf(1e-4 / len(part), S, part["p"])
    assert ((part["c"] >= lo) & (part["c"] <= hi)).all()
    # violators are drawn at the stratum's rate (what an unbiased prevalence needs)
    for h, g in part.groupby("stratum"):
        pos = g[g["truth"] == 1]
        if len(pos) >= 5:
            p = pi[int(h)]
            # the items' counts are negatively correlated within a stratum, so the
            # independent-binomial sd is conservative
            sd = np.sqrt(len(pos) * S * p * (1 - p))
            assert abs(pos["c"].sum() - len(pos) * S * p) < 4 * sd, (h, len(pos))
    chance = sum(s.n_h**2 / s.N_h for s in plan.strata if s.N_h)
    assert abs(np.mean(overlap) - chance) < 0.05 * chance + 1, (np.mean(overlap), chance)


def test_view_bands_are_the_default_and_old_plan_files_still_load(
    card: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from audit.production.plan import load_plan
    from tests.helpers.cli import run_cli

    base = ["production", "plan", str(card), "--period", DAY.label, "--floor", "25"]
    r = run_cli(capsys, *base, "--out", str(tmp_path / "banded.json"))
    assert r.code == 0, r.err
    assert "view bands" in r.out
    banded = json.loads((tmp_path / "banded.json").read_text())
    assert banded["view_bands"] is True  # the logs have views: on by default
    assert any(s["views_lo"] is not None for s in banded["strata"])
    r = run_cli(capsys, *base, "--no-view-bands", "--out", str(tmp_path / "flat.json"))
    assert r.code == 0, r.err
    flat = json.loads((tmp_path / "flat.json").read_text())
    assert flat["view_bands"] is False  # the opt-out is recorded in the plan file
    assert all(s["views_lo"] is None and s["views_hi"] is None for s in flat["strata"])
    # a plan file written before the field existed (always flat) still loads, as flat
    flat.pop("view_bands")
    (tmp_path / "old.json").write_text(json.dumps(flat))
    assert load_plan(tmp_path / "old.json").view_bands is False
