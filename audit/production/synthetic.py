"""Planted synthetic decision logs with a known truth (tests, simulations, benchmarks).

Scores come from a two-component beta mixture per category; the true label is
drawn from a deliberately *miscalibrated* link of the score (so score bands are
informative but not probabilities), plus a fixed rate of violators hidden at low
scores. Views are heavy-tailed (a Pareto/lognormal mix), seeded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Population:
    """A planted population (one pathway, several categories)."""

    item_id: np.ndarray
    category: np.ndarray
    score: np.ndarray
    actioned: np.ndarray
    views: np.ndarray
    truth: np.ndarray
    reference: np.ndarray
    surface: np.ndarray


def plant(
    n_items: int,
    categories: tuple[str, ...] = ("hate", "spam"),
    *,
    seed: int = 0,
    threshold: float = 0.7,
    hidden_rate: float = 0.01,
    reference_accuracy: float = 0.9,
) -> Population:
    """One row per item × category with score, decision, views, truth and a reference label.

    ``reference_accuracy`` is the probability the reference labeller agrees with the
    truth (its errors are independent of the truth: an imperfect labeller).
    """
    rng = np.random.default_rng(seed)
    K = len(categories)
    ids = np.array([f"it{i:08d}" for i in range(n_items)])
    item_id = np.repeat(ids, K)
    category = np.tile(np.array(categories), n_items)
    m = n_items * K
    bad = rng.random(m) < 0.08
    score = np.where(bad, rng.beta(5, 2, m), rng.beta(1, 8, m))
    # miscalibrated: truth probability is a steep function of the score, not the score
    p_true = 1 / (1 + np.exp(-(score - 0.55) * 9)) * 0.95 + hidden_rate
    truth = (rng.random(m) < p_true).astype(np.int8)
    actioned = score >= threshold
    views = np.floor(rng.lognormal(3.0, 1.5, m) * np.where(rng.random(m) < 0.02, 30, 1)).astype(
        np.int64
    )
    agree = rng.random(m) < reference_accuracy
    reference = np.where(agree, truth, 1 - truth).astype(np.int8)
    surface = np.where(rng.random(m) < 0.6, "feed", "comments")
    return Population(item_id, category, score, actioned, views, truth, reference, surface)


def write_logs(
    pop: Population,
    out_dir: Path,
    *,
    day: str = "2026-11-30",
    pathway: str = "clf",
    policy_version: str = "platform-v1",
) -> Path:
    """Write the population as Parquet logs + a logs card; returns the card path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    d = dt.date.fromisoformat(day)
    base = np.datetime64(dt.datetime(d.year, d.month, d.day), "s")
    rng = np.random.default_rng(len(pop.item_id))
    ts = base + rng.integers(0, 86_400, len(pop.item_id)).astype("timedelta64[s]")
    tbl = pa.table(
        {
            "item_id": pa.array(pop.item_id),
            "ts": pa.array(ts),
            "pathway": pa.array(np.full(len(pop.item_id), pathway)),
            "category": pa.array(pop.category),
            "score": pa.array(pop.score),
            "actioned": pa.array(pop.actioned),
            "action": pa.array(np.where(pop.actioned, "remove", "none")),
            "views": pa.array(pop.views),
            "policy_version": pa.array(np.full(len(pop.item_id), policy_version)),
            "surface": pa.array(pop.surface),
        }
    )
    pq.write_table(tbl, out_dir / "logs.parquet", row_group_size=1_000_000)
    card = out_dir / "logs.yaml"
    card.write_text(
        "card_version: 1\nname: synthetic\nsource: {path: logs.parquet}\nslices: [surface]\n",
        encoding="utf-8",
    )
    return card
