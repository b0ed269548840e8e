"""Rank likely gold-label errors of a run's suite for re-adjudication (docs/methods/labels.md §3).

For each suite × moderator result and each category with scores and known gold, the
run's scores are the out-of-sample predicted probabilities confident learning needs
(Northcutt, Jiang & Chuang, JAIR 2021): the moderators never trained on the suite.
Per category, binary ``cleanlab.filter.find_label_issues`` flags items and
``cleanlab.rank.get_label_quality_scores`` (self-confidence) ranks them; for a
multi-annotator suite CROWDLAB (Goh, Tkachenko & Mueller, arXiv:2210.06812;
``cleanlab.multiannotator.get_label_quality_multiannotator``) combines the annotators
with the model into a consensus label and a consensus quality score. Judge-vs-gold
disagreement (the moderator's decision against gold) is reported beside them.

Nothing here changes a label: the output is a queue for human adjudication.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from audit.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from audit.engine.record import RecordFile as RunRecord
    from audit.records import ResultEntry
    from audit.suites.loader import LoadedSuite

#: Columns of the suspects table, in order.
COLUMNS = (
    "rank",
    "suite",
    "moderator",
    "category",
    "item_id",
    "content_hash",
    "restricted",
    "gold",
    "score",
    "decision",
    "judge_disagrees",
    "label_quality",
    "cleanlab_issue",
    "crowdlab_consensus",
    "crowdlab_quality",
    "annotator_agreement",
    "n_annotations",
    "suspicion",
)


def _pred_probs(score: np.ndarray) -> np.ndarray:
    # cleanlab wants rows summing to 1 strictly inside (0, 1)
    s = np.clip(score.astype(float), 1e-6, 1 - 1e-6)
    return np.column_stack([1 - s, s])


def _crowdlab(
    ann_labels: np.ndarray, probs: np.ndarray, annotators: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str | None]:
    """CROWDLAB consensus, quality, agreement and counts (NaN where not computable)."""
    import pandas as pd
    from cleanlab.multiannotator import get_label_quality_multiannotator

    n = ann_labels.shape[0]
    nan = np.full(n, np.nan)
    counts = (~np.isnan(ann_labels)).sum(axis=1).astype(float)
    keep = counts >= 1
    cols = (~np.isnan(ann_labels[keep])).any(axis=0)
    if keep.sum() < 2 or cols.sum() < 1:
        return nan, nan.copy(), nan.copy(), counts, "too few annotated items for CROWDLAB"
    values = ann_labels[keep][:, cols]
    if len(np.unique(values[~np.isnan(values)])) < 2:
        return nan, nan.copy(), nan.copy(), counts, "annotators used a single class"
    frame = pd.DataFrame(values, columns=[a for a, c in zip(annotators, cols) if c])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = get_label_quality_multiannotator(frame, probs[keep], verbose=False)
    except (ValueError, AssertionError) as exc:  # cleanlab's own input checks
        return nan, nan.copy(), nan.copy(), counts, f"CROWDLAB failed: {exc}"
    lq = out["label_quality"]
    cons, qual, agree = nan.copy(), nan.copy(), nan.copy()
    cons[keep] = lq["consensus_label"].to_numpy(dtype=float)
    qual[keep] = lq["consensus_quality_score"].to_numpy(dtype=float)
    agree[keep] = lq["annotator_agreement"].to_numpy(dtype=float)
    return cons, qual, agree, counts, None


def category_suspects(
    gold: np.ndarray,
    score: np.ndarray,
    decision: np.ndarray,
    *,
    annotator_labels: np.ndarray | None = None,
    annotators: tuple[str, ...] = (),
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per-item suspicion columns for one category (items with known gold and score).

    ``suspicion`` is the CROWDLAB consensus quality where available, else the
    self-confidence label quality; lower is more suspect. Returns (columns, notes).
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    notes: list[str] = []
    y = gold.astype(int)
    probs = _pred_probs(score)
    quality = get_label_quality_scores(y, probs)
    issue = np.full(len(y), np.nan)
    if len(np.unique(y)) < 2:
        notes.append("gold has a single class: cleanlab find_label_issues not run")
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                issue = find_label_issues(y, probs).astype(float)
        except (ValueError, AssertionError) as exc:
            notes.append(f"cleanlab find_label_issues failed: {exc}")
    cols: dict[str, np.ndarray] = {
        "label_quality": quality,
        "cleanlab_issue": issue,
        "judge_disagrees": np.where(np.isnan(decision), np.nan, (decision != y).astype(float)),
    }
    if annotator_labels is not None:
        cons, qual, agree, counts, why = _crowdlab(annotator_labels, probs, annotators)
        if why:
            notes.append(why)
        cols.update(
            crowdlab_consensus=cons,
            crowdlab_quality=qual,
            annotator_agreement=agree,
            n_annotations=counts,
        )
        cols["suspicion"] = np.where(np.isnan(qual), quality, qual)
    else:
        cols["suspicion"] = quality
    return cols, notes


def run_suspects(
    record: RunRecord,
    *,
    suite: str | None = None,
    moderator: str | None = None,
    loaded: dict[str, LoadedSuite] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The ranked suspects table of a run (all suite × moderator results by default).

    ``loaded``: suites keyed ``"<name>:<split>"`` (loaded from the run's card paths
    when absent) supply per-annotator labels for CROWDLAB.

    Raises:
        ConfigError: no result matches, or no category has scores and known gold.
    """
    import pandas as pd

    from audit.analysis import load_predictions, select_results
    from audit.policy import load_policy

    policy = load_policy(record.data["policy"]["ref"])
    restricted_cats = policy.restricted_ids
    frames = []
    notes: list[str] = []
    for entry in select_results(record, suite=suite, moderator=moderator):
        df = load_predictions(record, entry)
        key = f"{entry.suite}:{entry.split}"
        s = (loaded or {}).get(key)
        if s is None and loaded is None:
            s = _load_run_suite(record, entry, policy)
        if s is None:
            notes.append(
                f"{key}: suite not loadable from the run's card; ranking from the model "
                "scores only (no CROWDLAB, no text in the export)"
            )
        parts, enotes = _entry_suspects(record, entry, df, s, restricted_cats)
        frames += parts
        notes += enotes
    if not frames:
        raise ConfigError(
            "no category with scores and known gold in the run",
            where=str(record.path),
            field="results",
            expected="at least one category with gold 0/1 and a score",
            actual="none",
            fix="run a moderator that scores the suite's covered categories",
        )
    table = pd.concat(frames, ignore_index=True)
    # most suspect first; ties broken by judge disagreement, then a stable id order
    table["_dis"] = -table["judge_disagrees"].fillna(0)
    table = table.sort_values(["suspicion", "_dis", "item_id", "category"], kind="mergesort").drop(
        columns="_dis"
    )
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    for c in COLUMNS:
        if c not in table.columns:
            table[c] = np.nan
    return table[list(COLUMNS)].reset_index(drop=True), notes


def _entry_suspects(
    record: RunRecord,
    entry: Any,
    df: pd.DataFrame,
    s: LoadedSuite | None,
    restricted_cats: frozenset[str],
) -> tuple[list[pd.DataFrame], list[str]]:
    """Suspect rows of one suite × moderator result, one frame per analysable category,
    and the notes explaining categories left out; refuses a run whose items differ from
    the suite on disk (the annotator rows would not line up)."""
    import pandas as pd

    from audit.analysis import analysable_categories

    frames: list[pd.DataFrame] = []
    notes: list[str] = []
    ann = s.annotations if s is not None else None
    pos = {iid: i for i, iid in enumerate(s.dataset["id"])} if s is not None else {}
    if s is not None:
        hashes = dict(zip(s.dataset["id"], s.dataset["content_hash"]))
        stale = [i for i, h in zip(df["id"], df["content_hash"]) if hashes.get(i) != h]
        if stale:
            raise ConfigError(
                f"{len(stale)} run item(s) differ from the suite on disk (e.g. {stale[0]!r})",
                where=str(record.path),
                field=f"results[{entry.suite}].content_hash",
                expected="the suite version the run scored",
                actual="changed or missing items",
                fix="rerun on the current suite, or restore the suite version of the run",
            )
    item_restricted = (
        df["restricted"].fillna(True).to_numpy(dtype=bool)
        if "restricted" in df.columns
        else np.zeros(len(df), dtype=bool)
    )
    for cat in analysable_categories(df, overall=False):
        y = df[f"gold.{cat}"].to_numpy(dtype=np.int8)
        sc = df[f"score.{cat}"].to_numpy(dtype=float)
        ok = (y != -1) & ~np.isnan(sc)
        if ok.sum() < 2:
            notes.append(f"{entry.suite} × {entry.moderator} · {cat}: < 2 items")
            continue
        dec = df[f"pred.{cat}"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        ann_lab = None
        if ann is not None and cat in ann.covers:
            rows = [pos[i] for i in df["id"][ok]]
            ann_lab = ann.category(cat)[rows]
        cols, cnotes = category_suspects(
            y[ok],
            sc[ok],
            dec[ok],
            annotator_labels=ann_lab,
            annotators=ann.annotators if ann is not None else (),
        )
        notes += [f"{entry.suite} × {entry.moderator} · {cat}: {x}" for x in cnotes]
        part = pd.DataFrame(
            {
                "suite": entry.suite,
                "moderator": entry.moderator,
                "category": cat,
                "item_id": df["id"][ok].to_numpy(),
                "content_hash": df["content_hash"][ok].to_numpy(),
                "restricted": item_restricted[ok] | (cat in restricted_cats),
                "gold": y[ok].astype(int),
                "score": sc[ok],
                "decision": dec[ok],
                **cols,
            }
        )
        frames.append(part)
    return frames, notes


def load_run_suites(
    record: RunRecord, *, suite: str | None = None, moderator: str | None = None
) -> dict[str, LoadedSuite]:
    """The suites of a run's results keyed ``"<name>:<split>"`` (those that still load)."""
    from audit.analysis import select_results
    from audit.policy import load_policy

    policy = load_policy(record.data["policy"]["ref"])
    out: dict[str, LoadedSuite] = {}
    for entry in select_results(record, suite=suite, moderator=moderator):
        key = f"{entry.suite}:{entry.split}"
        if key not in out:
            s = _load_run_suite(record, entry, policy)
            if s is not None:
                out[key] = s
    return out


def suite_texts(suites: dict[str, LoadedSuite]) -> dict[str, dict[str, str]]:
    """``{item id: {text field: text}}`` over the given suites."""
    from audit.schema import TEXT_FIELDS

    out: dict[str, dict[str, str]] = {}
    for s in suites.values():
        cols = [f for f in TEXT_FIELDS if f in s.dataset.column_names]
        d = s.dataset.select_columns(["id", *cols]).to_dict()
        for i, iid in enumerate(d["id"]):
            out[iid] = {f: d[f][i] for f in cols if d[f][i]}
    return out


def _load_run_suite(record: RunRecord, entry: ResultEntry, policy: Any) -> LoadedSuite | None:
    """The suite a result was scored on, from the card path in the run record."""
    from audit.errors import SuiteError
    from audit.suites import load_suite

    info = record.data.get("suites", {}).get(f"{entry.suite}:{entry.split}", {})
    card = info.get("card") or entry.suite
    try:
        return load_suite(card, policy, split=entry.split)
    except SuiteError:
        return None  # no per-annotator labels then; the model-only scores still rank


def export_rows(table: pd.DataFrame, texts: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """Rows for JSONL / CSV: restricted rows keep rank, suite, category, id and content
    hash only; other rows carry every column plus the item's text fields."""
    from audit._util.jsonutil import jsonable

    out = []
    for rec in table.to_dict(orient="records"):
        if rec["restricted"]:
            keep = ("rank", "suite", "moderator", "category", "item_id", "content_hash")
            out.append({**{k: rec[k] for k in keep}, "restricted": True})
            continue
        row = jsonable(rec)
        row["text"] = texts.get(str(rec["item_id"]), {})
        out.append(row)
    return out
