"""Disagreements between two moderators on one suite, FP/FN tables, review-queue export.

Two results on the same suite (two moderators of one run, e.g. an LLM judge and a
classifier, or the same suite in two runs) are joined on item id and content hash:

* :func:`decision_matrix` — per category (and ``overall``) counts of
  (decision A, decision B, gold), decisions ``flag`` / ``pass`` / ``none`` (not scored),
  gold ``positive`` / ``negative`` / ``unknown``;
* :func:`error_table` — false positives and false negatives of each moderator with scores,
  the other moderator's decision, rationale and slice values (docs/methods.md §5, §8);
* :func:`review_queue` / :func:`export_review_queue` — items where the two disagree or
  either is wrong, as Label Studio tasks (JSONL, ``{"id", "data"}``) and CSV, for
  re-adjudication (docs/methods.md §8: confirmed root causes become new cases).

Restricted items — gold or either decision positive for a policy category with
``restricted: true``, or the ``restricted`` flag of either prediction table (set
run-wide by :func:`audit.engine.results.restricted_ids`) — carry
their id and content hash only: no text, no rationale, no scores (docs/design.md).
Text is read from the suite (:func:`audit.suites.load_suite`) and only used where the
item's content hash still matches the run's.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audit._util.jsonutil import jsonable
from audit.analysis._data import analysable_categories, category_arrays, load_predictions
from audit.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from audit.engine.record import RecordFile
    from audit.records import ResultEntry

DECISION = {1.0: "flag", 0.0: "pass"}
GOLD = {1: "positive", 0: "negative", -1: "unknown"}


def _decisions(p: np.ndarray) -> np.ndarray:
    return np.array([DECISION.get(float(x), "none") for x in p], dtype=object)


def join_results(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Inner join of two prediction tables on ``id`` (columns prefixed ``a:`` / ``b:``).

    Gold, slices and content hash come from ``a``; rows whose content hash differs
    between the two tables are dropped (they are not the same item).

    Raises:
        ConfigError: no item in common.
    """
    shared = ["id", "content_hash"] + [c for c in a.columns if c.startswith(("gold.", "slice."))]
    own = [c for c in a.columns if c not in shared]
    left = a[shared + own].rename(columns={c: f"a:{c}" for c in own})
    bown = [c for c in b.columns if c not in shared or c == "content_hash"]
    right = b[["id", *bown]].rename(columns={c: f"b:{c}" for c in bown})
    m = left.merge(right, on="id", how="inner")
    m = m[m["content_hash"] == m["b:content_hash"]].drop(columns=["b:content_hash"])
    if m.empty:
        raise ConfigError(
            "the two results have no item in common",
            field="--with/--other",
            expected="two results on the same suite (same ids and content hashes)",
            actual="0 shared items",
        )
    return m.reset_index(drop=True)


def _side(m: pd.DataFrame, side: str) -> pd.DataFrame:
    """View of one side of a joined table with the original column names."""
    cols = {c: c[2:] for c in m.columns if c.startswith(f"{side}:")}
    base = [c for c in m.columns if not c.startswith(("a:", "b:"))]
    return m[base + list(cols)].rename(columns=cols)


def common_categories(m: pd.DataFrame) -> list[str]:
    """Categories (and ``overall``) both sides scored and the gold knows."""
    ca = analysable_categories(_side(m, "a"))
    cb = set(analysable_categories(_side(m, "b")))
    return [c for c in ca if c in cb]


def decision_matrix(m: pd.DataFrame, categories: list[str] | None = None) -> pd.DataFrame:
    """Long table ``category, a, b, gold, count`` (non-zero cells only)."""
    import pandas as pd

    rows = []
    for cat in categories or common_categories(m):
        y, _, pa = category_arrays(_side(m, "a"), cat)
        _, _, pb = category_arrays(_side(m, "b"), cat)
        g = np.array([GOLD[int(v)] for v in y], dtype=object)
        t = pd.DataFrame({"a": _decisions(pa), "b": _decisions(pb), "gold": g})
        for (da, db, gg), k in t.value_counts().sort_index().items():
            rows.append({"category": cat, "a": da, "b": db, "gold": gg, "count": int(k)})
    return pd.DataFrame(rows, columns=["category", "a", "b", "gold", "count"])


def restricted_mask(m: pd.DataFrame, restricted_ids: frozenset[str] | set[str]) -> np.ndarray:
    """Items whose gold or either decision involves a restricted category."""
    mask = np.zeros(len(m), dtype=bool)
    for col in ("a:restricted", "b:restricted"):
        if col in m.columns:
            mask |= m[col].fillna(True).to_numpy(dtype=bool)
    for c in restricted_ids:
        if f"gold.{c}" in m.columns:
            mask |= m[f"gold.{c}"].to_numpy() == 1
        for side in ("a", "b"):
            col = f"{side}:pred.{c}"
            if col in m.columns:
                mask |= m[col].fillna(False).to_numpy(dtype=bool)
    return mask


def error_table(
    m: pd.DataFrame,
    names: tuple[str, str],
    texts: dict[str, str],
    restricted: np.ndarray,
    categories: list[str] | None = None,
) -> pd.DataFrame:
    """FP and FN rows of both moderators, most confident errors first.

    Restricted items keep id, content hash, category and error kind; text, rationale
    and scores are replaced by ``REDACTED``.
    """
    import pandas as pd

    from audit.engine.results import REDACTED

    slices = [c for c in m.columns if c.startswith("slice.")]
    rows = []
    for cat in categories or common_categories(m):
        for side, other, name in (("a", "b", names[0]), ("b", "a", names[1])):
            y, s, p = category_arrays(_side(m, side), cat)
            _, so, po = category_arrays(_side(m, other), cat)
            for kind, sel in (("FP", (y == 0) & (p == 1)), ("FN", (y == 1) & (p == 0))):
                for i in np.nonzero(sel)[0]:
                    red = bool(restricted[i])
                    rows.append(
                        {
                            "id": m.at[i, "id"],
                            "content_hash": m.at[i, "content_hash"],
                            "moderator": name,
                            "category": cat,
                            "error": kind,
                            "gold": int(y[i]),
                            "score": None if red else float(s[i]),
                            "other_decision": None if red else DECISION.get(po[i], "none"),
                            "other_score": None if red else float(so[i]),
                            "rationale": REDACTED if red else m.at[i, f"{side}:rationale"],
                            "text": REDACTED if red else texts.get(m.at[i, "id"]),
                            **{c: None if red else m.at[i, c] for c in slices},
                            "restricted": red,
                            "_conf": 0.0 if red else (s[i] if kind == "FP" else 1 - s[i]),
                        }
                    )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df = df.sort_values(["category", "_conf"], ascending=[True, False], kind="stable")
    return df.drop(columns="_conf").reset_index(drop=True)


def review_queue(
    m: pd.DataFrame,
    names: tuple[str, str],
    fields: dict[str, dict[str, str]],
    restricted: np.ndarray,
    *,
    suite: str,
    categories: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Label Studio tasks for items where A and B disagree or either is wrong.

    Each task is ``{"id": k, "data": {...}}``; ``data`` holds ``item_id``,
    ``content_hash``, ``text`` and the text fields, per-category decisions, scores, gold,
    the reasons the item is queued, rationales and slices — or, for a restricted item,
    ``item_id``, ``content_hash`` and ``restricted`` only.
    """
    cats = categories or common_categories(m)
    reasons: dict[int, list[str]] = {}
    per: dict[str, tuple[np.ndarray, ...]] = {}
    for cat in cats:
        y, sa, pa = category_arrays(_side(m, "a"), cat)
        _, sb, pb = category_arrays(_side(m, "b"), cat)
        per[cat] = (y, sa, pa, sb, pb)
        wrong_a = ((y == 0) & (pa == 1)) | ((y == 1) & (pa == 0))
        wrong_b = ((y == 0) & (pb == 1)) | ((y == 1) & (pb == 0))
        disagree = ~np.isnan(pa) & ~np.isnan(pb) & (pa != pb)
        for hit in np.nonzero(disagree | wrong_a | wrong_b)[0]:
            reasons.setdefault(int(hit), []).append(
                f"{cat}: {names[0]} {DECISION.get(pa[hit], 'none')}, "
                f"{names[1]} {DECISION.get(pb[hit], 'none')}, gold {GOLD[int(y[hit])]}"
            )
    slices = [c for c in m.columns if c.startswith("slice.")]
    tasks = []
    for k, i in enumerate(sorted(reasons), start=1):
        iid, h = str(m.at[i, "id"]), str(m.at[i, "content_hash"])
        if restricted[i]:
            data: dict[str, Any] = {"item_id": iid, "content_hash": h, "restricted": True}
        else:
            f = fields.get(iid, {})
            data = {"item_id": iid, "content_hash": h, "restricted": False, "suite": suite}
            data["text"] = "\n".join(v for v in f.values() if v) or None
            data.update(f)
            data["reasons"] = "; ".join(reasons[i])
            for cat in cats:
                y, sa, pa, sb, pb = per[cat]
                data[f"gold.{cat}"] = GOLD[int(y[i])]
                data[f"{names[0]}.{cat}"] = DECISION.get(pa[i], "none")
                data[f"{names[1]}.{cat}"] = DECISION.get(pb[i], "none")
                data[f"{names[0]}.score.{cat}"] = sa[i]
                data[f"{names[1]}.score.{cat}"] = sb[i]
            data[f"{names[0]}.rationale"] = m.at[i, "a:rationale"]
            data[f"{names[1]}.rationale"] = m.at[i, "b:rationale"]
            data.update({c: m.at[i, c] for c in slices})
        tasks.append({"id": k, "data": jsonable(data)})
    return tasks


def export_review_queue(tasks: list[dict[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """Write ``review_queue.jsonl`` (Label Studio tasks) and ``review_queue.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jl, cv = out_dir / "review_queue.jsonl", out_dir / "review_queue.csv"
    with jl.open("w", encoding="utf-8") as fh:
        for t in tasks:
            fh.write(json.dumps(t, ensure_ascii=False) + "\n")
    cols: list[str] = ["id"]
    for t in tasks:
        cols += [c for c in t["data"] if c not in cols]
    with cv.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for t in tasks:
            w.writerow({"id": t["id"], **t["data"]})
    return jl, cv


def suite_fields(
    record: RecordFile, suite: str, split: str, hashes: dict[str, str]
) -> dict[str, dict[str, str]]:
    """``{item id: {text field: text}}`` from the suite, for items whose content hash
    matches ``hashes`` (the run's); other items get no text."""
    from audit.policy import load_policy
    from audit.schema import TEXT_FIELDS
    from audit.suites import load_suite

    info = record.record.suite_entry(suite, split)
    policy = load_policy(record.record.policy.ref)
    ds = load_suite(info.card if info else suite, policy, split=split).dataset
    cols = [f for f in TEXT_FIELDS if f in ds.column_names]
    d = ds.select_columns(["id", "content_hash", *cols]).to_dict()
    return {
        iid: {f: d[f][i] for f in cols if d[f][i]}
        for i, iid in enumerate(d["id"])
        if hashes.get(iid) == d["content_hash"][i]
    }


def pair(
    record: RecordFile,
    *,
    other: RecordFile | None = None,
    suite: str | None = None,
    moderators: tuple[str | None, str | None] = (None, None),
) -> tuple[ResultEntry, ResultEntry, pd.DataFrame]:
    """Pick result A (``record``) and result B (``other`` or ``record``) on one suite.

    Raises:
        ConfigError: the choice is ambiguous or impossible (the message lists results).
    """
    rb = other or record
    res_a = [r for r in record.record.results if suite in (None, r.suite)]
    res_b = [r for r in rb.record.results if suite in (None, r.suite)]
    cands = [
        (a, b)
        for a in res_a
        for b in res_b
        if a.suite == b.suite
        and a.split == b.split
        and (other is not None or a.moderator != b.moderator)
        and moderators[0] in (None, a.moderator)
        and moderators[1] in (None, b.moderator)
    ]
    if other is None and moderators == (None, None):  # unordered: A before B in the record
        seen = [r.key for r in record.record.results]
        cands = [(a, b) for a, b in cands if seen.index(a.key) < seen.index(b.key)]
    if len(cands) != 1:
        have = ", ".join(f"{r.suite} × {r.moderator}" for r in record.record.results)
        raise ConfigError(
            "need exactly one pair of results on the same suite",
            where=str(record.path),
            field="--suite/--moderator/--other",
            expected=f"filters that pick one pair among: {have}",
            actual=f"{len(cands)} candidate pairs",
        )
    a, b = cands[0]
    return a, b, join_results(load_predictions(record, a), load_predictions(rb, b))
