"""A planted "production day" built from real text, with the gold kept as hidden truth.

The public golden sets under the shared data root (OpenAI moderation, HateCheck,
COLD, XSTest; each loaded through its suite card) — or the packaged
``short_video_v1`` items when that folder is absent — are scored by a real
embedded classifier (``profanity_baseline`` by default), actioned at a threshold,
given heavy-tailed seeded view counts and written as one day of Parquet decision
logs with a logs card. The gold labels go to a separate truth file that the
audit never reads except to play the human labellers (:func:`demo_labels`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audit.production.errors import ProductionError

PUBLIC_SETS = ("openai_moderation", "hatecheck", "cold", "xstest")
FALLBACK = "short_video_v1"


@dataclass(frozen=True)
class DemoDay:
    """Paths and counts of a written demo day."""

    card: Path
    truth: Path
    n_rows: int
    sources: tuple[str, ...]
    threshold: float


def _available_sets() -> list[str]:
    from audit._util.settings import data_root

    root = data_root()
    return [s for s in PUBLIC_SETS if (root / s).exists()]


def build_demo_day(
    out: Path,
    *,
    day: str = "2026-11-30",
    seed: int = 0,
    threshold: float = 0.5,
    categories: tuple[str, ...] = ("hate", "harassment"),
    sources: tuple[str, ...] | None = None,
    limit_per_source: int | None = None,
    pathway: str = "profanity_clf",
) -> DemoDay:
    """Score the sets, action at ``threshold``, write logs + card + truth."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = list(sources) if sources else (_available_sets() or [FALLBACK])
    rows = _scored_rows(names, categories, limit_per_source)
    n = len(rows["item_id"])
    if n == 0:
        raise ProductionError(
            "no items with known gold for the demo categories",
            where=", ".join(names),
            field="categories",
            expected=f"gold for {list(categories)}",
            actual="0 rows",
        )
    views_of, ts_of = _views_and_times(sorted(set(rows["item_id"])), day, seed)
    score = np.asarray(rows["score"])
    actioned = score >= threshold
    logs_dir = out / "logs" / f"date={day}"
    logs_dir.mkdir(parents=True, exist_ok=True)
    tbl = pa.table(
        {
            "item_id": rows["item_id"],
            "ts": pa.array([ts_of[i] for i in rows["item_id"]], pa.timestamp("s")),
            "pathway": [pathway] * n,
            "category": rows["category"],
            "score": score,
            "actioned": actioned,
            "action": np.where(actioned, "remove", "none").tolist(),
            "views": pa.array([views_of[i] for i in rows["item_id"]], pa.int64()),
            "policy_version": ["platform-v1"] * n,
            "source": rows["source"],
            "text": rows["text"],
        }
    )
    pq.write_table(tbl, logs_dir / "part-0.parquet")
    card = out / "logs.yaml"
    card.write_text(_CARD, encoding="utf-8")
    # one truth file per day: a second day built into the same folder adds a hive
    # partition to the logs and must not overwrite the first day's hidden truth
    truth = out / f"truth_{day}.parquet"
    pq.write_table(
        pa.table(
            {"item_id": rows["item_id"], "category": rows["category"], "label": rows["label"]}
        ),
        truth,
    )
    truth.with_suffix(".json").write_text(
        json.dumps(truth_summary(tbl.to_pydict(), rows["label"]), indent=2), encoding="utf-8"
    )
    return DemoDay(card, truth, n, tuple(names), threshold)


_CARD = (
    "# planted production day (audit production demo-day)\n"
    "card_version: 1\n"
    "name: demo_production\n"
    "policy: platform-v1\n"
    "source: {path: logs, hive_partitioning: true, partition_date_column: date}\n"
    "slices: [source]\n"
    "content: {fields: {comment: text}}\n"
)
"""The logs card of a demo day (hive-partitioned by date, so days accumulate)."""


def _scored_rows(
    names: list[str], categories: tuple[str, ...], limit_per_source: int | None
) -> dict[str, list[Any]]:
    """One row per (item, demo category) with known gold: the profanity baseline's
    score, the text, the source set and the gold label."""
    from audit.moderators.classifiers.profanity import ProfanityBaseline
    from audit.policy import load_policy
    from audit.suites import load_suite
    from audit.suites.loader import suite_items

    policy = load_policy("platform-v1")
    model = ProfanityBaseline(ProfanityBaseline.Params(categories=categories), policy)
    rows: dict[str, list[Any]] = {
        k: [] for k in ("item_id", "category", "score", "text", "source", "label")
    }
    for name in names:
        suite = load_suite(name, policy, limit=limit_per_source)
        items = suite_items(suite)
        outs = []
        for i in range(0, len(items), 256):
            outs.extend(model.predict(items[i : i + 256]))
        cat_idx = {c: j for j, c in enumerate(suite.categories)}
        for it, o, lab in zip(items, outs, suite.labels):
            if o.error:
                raise ProductionError(
                    f"profanity_baseline failed on {it.id}: {o.error}", where=name, field="score"
                )
            for c in categories:
                if c not in cat_idx or lab[cat_idx[c]] < 0:
                    continue  # unknown gold: not part of the planted population
                rows["item_id"].append(f"{name}:{it.id}")
                rows["category"].append(c)
                rows["score"].append(float(o.scores[c]))
                rows["text"].append(it.text())
                rows["source"].append(name)
                rows["label"].append(int(lab[cat_idx[c]]))
    return rows


def _views_and_times(
    uniq: list[str], day: str, seed: int
) -> tuple[dict[str, Any], dict[str, dt.datetime]]:
    """Seeded view count and timestamp per item (shared by its categories): views
    from a lognormal body with a Pareto tail for ~3% viral items."""
    rng = np.random.default_rng(seed)
    body = rng.lognormal(3.0, 1.4, len(uniq))
    viral = rng.random(len(uniq)) < 0.03
    v = np.floor(np.where(viral, body * (1 + rng.pareto(1.2, len(uniq)) * 50), body))
    views_of = dict(zip(uniq, v.astype(np.int64)))
    d0 = dt.datetime.fromisoformat(day)
    secs = rng.integers(0, 86_400, len(uniq))
    ts_of = {u: d0 + dt.timedelta(seconds=int(s)) for u, s in zip(uniq, secs)}
    return views_of, ts_of


def truth_summary(logs: dict[str, list[Any]], labels: list[int]) -> dict[str, Any]:
    """The planted truth per pathway/category: precision, recall, prevalence (item, view)."""
    cat = np.asarray(logs["category"])
    pw = np.asarray(logs["pathway"])
    act = np.asarray(logs["actioned"], bool)
    y = np.asarray(labels, float)
    v = np.asarray(logs["views"], float)
    out: dict[str, Any] = {}
    for p in np.unique(pw):
        for c in np.unique(cat):
            m = (pw == p) & (cat == c)
            pos = y[m].sum()
            out[f"{p}/{c}"] = {
                "N": int(m.sum()),
                "precision": float(y[m & act].mean()) if (m & act).any() else float("nan"),
                "recall": float(y[m & act].sum() / pos) if pos else float("nan"),
                "prevalence": float(y[m].mean()),
                "prevalence_views": float((v * y)[m].sum() / v[m].sum())
                if v[m].sum()
                else float("nan"),
            }
    return out


def demo_labels(
    manifest_dir: Path,
    truth: Path,
    out: Path,
    *,
    reference_noise: float = 0.1,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Play the labellers: gold for the human batch, and a reference labeller.

    The reference here is the gold flipped with probability ``reference_noise``
    (an imperfect labeller of known quality, seeded); point ``audit production
    estimate --reference`` at a real judge's labels instead in production.
    """
    import pandas as pd

    gold = pd.read_parquet(truth)
    smp = pd.read_parquet(manifest_dir / "sample.parquet", columns=["item_id", "category", "human"])
    key = ["item_id", "category"]
    smp = smp.groupby(key, as_index=False)["human"].max()
    m = smp.merge(gold, on=key, how="left")
    if m["label"].isna().any():
        raise ProductionError(
            "sampled items missing from the truth file",
            where=str(truth),
            field="item_id",
            expected="every sampled id",
            actual=f"{int(m['label'].isna().sum())} missing",
        )
    out.mkdir(parents=True, exist_ok=True)
    human = out / "human.csv"
    m[m["human"]][[*key, "label"]].assign(labeler="gold").to_csv(human, index=False)
    rng = np.random.default_rng(seed)
    flip = rng.random(len(m)) < reference_noise
    ref = m[key].assign(label=np.where(flip, 1 - m["label"], m["label"]).astype(int))
    reference = out / "reference.csv"
    ref.to_csv(reference, index=False)
    return human, reference
