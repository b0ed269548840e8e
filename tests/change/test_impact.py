"""Relabel impact: gold migration, judge flips + McNemar, expected metric change."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from audit.change import lineage, metric_change, migrate_gold
from audit.change.impact import judge_flips
from audit.change.impact_migration import _or
from audit.policy import load_policy
from audit.schema import NEGATIVE, POSITIVE, UNKNOWN
from audit.suites.loader import load_suite, suite_items
from tests.change._util import harassment_rows, write_suite, write_yaml
from tests.helpers.cli import run_cli


@pytest.fixture(scope="module")
def v1v2():
    a, b = load_policy("platform-v1"), load_policy("platform-v2")
    return a, b, lineage(a, b)


def _col(labels: np.ndarray, cats: tuple[str, ...], c: str) -> list[int]:
    return labels[:, cats.index(c)].tolist()


def test_split_rule_migrates_gold_and_lists_the_rest(v1v2, tmp_path: Path) -> None:
    a, _b, lin = v1v2
    suite = load_suite(str(write_suite(tmp_path)), a)
    items = suite_items(suite)
    slices = {s: list(suite.dataset[s]) for s in suite.slice_names}
    mig = migrate_gold(lin, suite.labels, items, slices, "platform-v2.yaml")
    ids = [it.id for it in items]
    th = dict(zip(ids, _col(mig.labels, mig.categories, "targeted_harassment"), strict=True))
    bu = dict(zip(ids, _col(mig.labels, mig.categories, "bullying"), strict=True))
    # branch by branch: hate label, violent_threats label, doxxing text, school text
    assert (th["r01"], bu["r01"]) == (POSITIVE, NEGATIVE)
    assert (th["r02"], bu["r02"]) == (POSITIVE, NEGATIVE)
    assert (th["r03"], bu["r03"]) == (POSITIVE, NEGATIVE)
    assert (th["r04"], bu["r04"]) == (NEGATIVE, POSITIVE)
    # positives no branch takes: unknown and queued for review, never guessed
    for r in ("r05", "r11"):
        assert (th[r], bu[r]) == (UNKNOWN, UNKNOWN)
    assert sorted(ids[row] for row, _, _ in mig.review) == ["r05", "r11"]
    # harassment negatives are negatives for both children
    assert th["r06"] == bu["r06"] == NEGATIVE
    # kept categories copy exactly
    assert _col(mig.labels, mig.categories, "spam") == _col(suite.labels, a.category_ids, "spam")
    assert mig.counts["bullying"] == {
        "positive": 1,
        "negative": 9,
        "unknown": 2,
        "how": "split from harassment",
    }


def test_three_valued_or_for_merges() -> None:
    x = np.array([POSITIVE, NEGATIVE, NEGATIVE, UNKNOWN, UNKNOWN], dtype=np.int8)
    y = np.array([UNKNOWN, NEGATIVE, POSITIVE, NEGATIVE, UNKNOWN], dtype=np.int8)
    assert _or([x, y]).tolist() == [POSITIVE, NEGATIVE, POSITIVE, UNKNOWN, UNKNOWN]


def test_flip_matrix_and_mcnemar_on_planted_decisions(v1v2) -> None:
    a, b, lin = v1v2
    rng = np.random.default_rng(0)
    n = 400
    cats_a, cats_b = a.category_ids, b.category_ids
    dec_a = rng.integers(0, 2, size=(n, len(cats_a))).astype(np.int8)
    dec_b = np.zeros((n, len(cats_b)), dtype=np.int8)
    for k, c in enumerate(cats_b):
        if c in cats_a:
            dec_b[:, k] = dec_a[:, cats_a.index(c)]
    # plant: spam loses 30 positives, gains 3; harassment split keeps every decision
    sp_a, sp_b = cats_a.index("spam"), cats_b.index("spam")
    pos = np.flatnonzero(dec_a[:, sp_a] == 1)[:30]
    neg = np.flatnonzero(dec_a[:, sp_a] == 0)[:3]
    dec_b[pos, sp_b] = 0
    dec_b[neg, sp_b] = 1
    h = dec_a[:, cats_a.index("harassment")]
    dec_b[:, cats_b.index("targeted_harassment")] = h
    ok_a, ok_b = np.ones_like(dec_a, bool), np.ones_like(dec_b, bool)
    ok_b[:5, sp_b] = False  # 5 items the new judge failed on leave the comparison
    groups = {g.label: g for g in judge_flips(lin, dec_a, ok_a, cats_a, dec_b, ok_b, cats_b)}
    spam = groups["spam"]
    m = spam.matrix
    assert spam.n == n - 5 == sum(map(sum, m))
    b_, c_ = m[1][0], m[0][1]
    assert (b_, c_) == (int((dec_a[5:, sp_a] == 1).sum() - (dec_b[5:, sp_b] == 1).sum() + c_), c_)
    assert spam.mcnemar["method"] == "chi2-cc"
    assert spam.mcnemar["p_value"] == pytest.approx(
        stats.chi2.sf((abs(b_ - c_) - 1) ** 2 / (b_ + c_), 1)
    )
    split = groups["harassment → targeted_harassment+bullying"]
    assert split.matrix[0][1] + split.matrix[1][0] == 0 and split.mcnemar["p_value"] == 1.0
    assert groups["hate"].flip_rows == []


def test_exact_mcnemar_for_few_discordant_pairs(v1v2) -> None:
    a, b, lin = v1v2
    n = 50
    dec_a = np.zeros((n, len(a.category_ids)), np.int8)
    dec_b = np.zeros((n, len(b.category_ids)), np.int8)
    dec_b[:6, b.category_ids.index("hate")] = 1  # 6 neg→pos, 0 pos→neg
    ok_a, ok_b = np.ones_like(dec_a, bool), np.ones_like(dec_b, bool)
    g = {
        x.label: x
        for x in judge_flips(lin, dec_a, ok_a, a.category_ids, dec_b, ok_b, b.category_ids)
    }
    hate = g["hate"]
    assert hate.mcnemar["method"] == "exact"
    assert hate.mcnemar["p_value"] == pytest.approx(stats.binomtest(0, 6, 0.5).pvalue)
    assert hate.flip_rows == list(range(6))


def _population(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yb = (rng.random(n) < 0.3).astype(np.int8)
    d = np.where(yb == 1, rng.random(n) < 0.8, rng.random(n) < 0.1).astype(np.int8)
    # the new text moves 30% of the gold positives the model misses to negative, and 20%
    # of the negatives it flags to positive (about 15 and 10 moved items at n = 800;
    # intervals of fewer moved items are flagged unreliable, see MIN_MOVED)
    ya = yb.copy()
    ya[(yb == 1) & (d == 0) & (rng.random(n) < 0.30)] = 0
    ya[(yb == 0) & (d == 1) & (rng.random(n) < 0.20)] = 1
    unk = rng.random(n) < 0.02
    yb[unk] = UNKNOWN
    ya[unk] = UNKNOWN
    return yb, ya, d


def _truth() -> dict[str, float]:
    yb, ya, d = _population(np.random.default_rng(12345), 2_000_000)
    full = metric_change(yb, ya, d, n_boot=0, ci=0.95, seed=0)
    return {m: v.delta for m, v in full.items()}


def _coverage(reps: int, n: int, n_boot: int) -> dict[str, float]:
    truth = _truth()
    hits = {m: 0 for m in truth}
    rng = np.random.default_rng(7)
    for r in range(reps):
        yb, ya, d = _population(rng, n)
        res = metric_change(yb, ya, d, n_boot=n_boot, ci=0.9, seed=r)
        for m, v in res.items():
            hits[m] += int(v.lo <= truth[m] <= v.hi)
    return {m: h / reps for m, h in hits.items()}


def test_metric_change_point_estimate_and_nan() -> None:
    y_b = np.array([1, 1, 0, 0, -1], np.int8)
    y_a = np.array([1, 0, 0, 1, -1], np.int8)
    d = np.array([1, 0, 0, 1, 1], np.int8)
    res = metric_change(y_b, y_a, d, n_boot=200, ci=0.95, seed=0)
    assert res["recall"].before == 0.5 and res["recall"].after == 1.0
    assert res["fpr"].before == 0.5 and res["fpr"].after == 0.0
    assert res["recall"].n_before == res["recall"].n_after == 4
    none = metric_change(np.zeros(5, np.int8), np.zeros(5, np.int8), d, n_boot=50, ci=0.95, seed=0)
    assert (
        math.isnan(none["recall"].delta)
        and none["recall"].reason == "no gold positives on one side"
    )


def test_metric_change_interval_covers_planted_truth_fast() -> None:
    # 90% intervals, 150 replications of n = 800: coverage within about ±3 SE of 0.9
    cov = _coverage(150, 800, 200)
    for m, c in cov.items():
        assert 0.81 <= c <= 0.97, (m, c)


@pytest.mark.slow
def test_metric_change_interval_covers_planted_truth_slow() -> None:
    cov = _coverage(1000, 800, 500)
    for m, c in cov.items():
        # percentile intervals of a change driven by 10-15 moved items under-cover
        # slightly (about 0.88 for a nominal 0.90 here): docs/methods/change.md §2
        assert 0.85 <= c <= 0.93, (m, c)


def _cfg(tmp: Path, **extra: object) -> Path:
    cfg = {
        "judge": {"name": "judge", "type": "fake", "params": {"default": 0.2}},
        "pathways": [{"name": "clf", "type": "fake", "params": {"seed": 11}}],
        "n_boot": 100,
        **extra,
    }
    return write_yaml(tmp / "impact.yaml", cfg)


def test_cli_impact_end_to_end(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    card = write_suite(tmp_path / "suites")
    out = tmp_path / "out"
    r = run_cli(
        capsys,
        "policy",
        "impact",
        "--from",
        "platform-v1",
        "--to",
        "platform-v2",
        "--suite",
        str(card),
        "--config",
        str(_cfg(tmp_path, control_slice=50)),
        "--out",
        str(out),
    )
    assert r.code == 0, r.err
    s = json.loads((out / "impact.json").read_text(encoding="utf-8"))
    assert s["suite"]["n"] == 12 and s["migration"]["n_review"] == 2
    groups = {g["group"]: g for g in s["judge"]["groups"]}
    for g in groups.values():
        assert sum(map(sum, g["matrix"])) == g["n"] == 12
        assert len(g["flips"]) == g["matrix"][0][1] + g["matrix"][1][0]
    # a fake judge scores a category the same under both prompts: only the split can flip
    assert all(len(g["flips"]) == 0 for k, g in groups.items() if "→" not in k)
    queue = [
        json.loads(x) for x in (out / "review_queue.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    by_id = {t["data"]["item_id"]: t["data"] for t in queue}
    assert "no branch of the rule matched" in by_id["r05"]["reasons"]
    assert by_id["r05"]["gold_migrated_bullying"] == -1 and by_id["r05"]["gold_old_harassment"] == 1
    # the restricted item is id + hash only
    assert set(by_id["r09"]) == {"item_id", "content_hash", "restricted"}
    assert by_id["r09"]["restricted"] is True
    assert "text" in by_id["r06"] and by_id["r06"]["restricted"] is False
    assert (out / "review_queue.csv").read_text(encoding="utf-8").startswith("id,")
    pw = s["pathways"]["clf"]["categories"]
    assert "metrics" in pw["spam"] and pw["spam"]["n_moved"] == 0
    assert pw["spam"]["metrics"]["recall"]["delta"] == 0.0
    md = (out / "impact.md").read_text(encoding="utf-8")
    assert "## (b) Judge" in md and "McNemar" in md
    migrated = (out / "migrated_gold.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(migrated) == 12 and "bullying" in json.loads(migrated[0])["labels"]


def _tiny_judge(lm: Path, threshold: float) -> dict:
    return {
        "name": "judge",
        "type": "llm_judge",
        "batch_size": 4,
        "params": {
            "model": str(lm),
            "preset": "shieldgemma",
            "mode": "logprob",
            "device": "cpu",
            "max_length": 4096,
            "categories": ["hate"],
        },
        "thresholds": {"default": threshold},
    }


def test_cli_impact_with_a_tiny_llm_judge(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, v1v2
) -> None:
    """End to end with a real ``llm_judge`` (a tiny random-weight LM on CPU): the judge
    is built with its prompt rendered from each version and scores the same items.

    v2 adds a counter-speech clarification to hate, so the two prompts differ and the
    same model gives the counter-speech item r10 two different scores; a threshold
    between them makes r10 flip by construction, which the flip matrix, McNemar and the
    flipped-item list must all show."""
    from audit.moderators import MODERATORS
    from tests.helpers.tiny_lm import build_tiny_causal_lm

    a, b, _ = v1v2
    lm = build_tiny_causal_lm(tmp_path / "lm", max_position_embeddings=4096)
    rows = [r for r in harassment_rows() if r["id"] in ("r06", "r07", "r10")]
    card = write_suite(tmp_path / "suites", rows)
    r10 = [it for it in suite_items(load_suite(str(card), a)) if it.id == "r10"]
    spec = _tiny_judge(lm, 0.5)
    cls = MODERATORS.get("llm_judge", where="test", field="type")
    p_old, p_new = (
        cls(cls.Params.model_validate(spec["params"]), pol).predict(r10)[0].scores["hate"]
        for pol in (a, b)
    )
    assert p_old != p_new  # the prompts rendered from A and B differ
    cfg = write_yaml(
        tmp_path / "impact.yaml",
        {"judge": _tiny_judge(lm, (p_old + p_new) / 2), "n_boot": 50, "control_slice": 2},
    )
    out = tmp_path / "out"
    args = ["--suite", str(card), "--config", str(cfg), "--out", str(out)]
    r = run_cli(capsys, "policy", "impact", "--from", "platform-v1", "--to", "platform-v2", *args)
    assert r.code == 0, r.err
    s = json.loads((out / "impact.json").read_text(encoding="utf-8"))
    assert s["judge"]["type"] == "llm_judge" and s["judge"]["errors_old"] == 0
    groups = {g["group"]: g for g in s["judge"]["groups"]}
    hate = groups["hate"]
    assert hate["n"] == 3 and sum(map(sum, hate["matrix"])) == 3
    (flip,) = [f for f in hate["flips"] if f["item_id"] == "r10"]
    went_up = p_new > p_old
    assert flip["judge_old"] == {"hate": int(not went_up)}
    assert flip["judge_new"] == {"hate": int(went_up)}
    assert {"rationale_old", "rationale_new"} <= set(flip)  # logprob mode: no free text
    assert len(hate["flips"]) == hate["matrix"][0][1] + hate["matrix"][1][0]
    m = hate["mcnemar"]
    assert m["method"] == "exact" and m["b"] + m["c"] == len(hate["flips"])
    assert m["p_value"] == pytest.approx(
        min(1.0, 2 * stats.binom.cdf(min(m["b"], m["c"]), m["b"] + m["c"], 0.5))
    )
    # categories the judge does not score are reported, not guessed
    assert groups["spam"]["reason"].startswith("the judge does not score")
    queue = [json.loads(x) for x in (out / "review_queue.jsonl").read_text().splitlines()]
    by_id = {t["data"]["item_id"]: t["data"] for t in queue}
    assert "judge flip in hate" in by_id["r10"]["reasons"]
    flipped = {f["item_id"] for g in groups.values() for f in g["flips"]}
    assert flipped == {i for i, d in by_id.items() if "judge flip" in d.get("reasons", "")}
    assert by_id["r10"]["scores_old_hate"] == pytest.approx(p_old, abs=1e-6)
    assert by_id["r10"]["scores_new_hate"] == pytest.approx(p_new, abs=1e-6)
    assert "McNemar" in (out / "impact.md").read_text(encoding="utf-8")
