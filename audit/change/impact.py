"""Relabel impact of a policy change on a golden suite (docs/methods/change.md §2).

Three parts, on one suite split labelled against the old version ``A``:

(a) **Structural migration** (:func:`migrate_gold`): gold moves mechanically where the
    change is mechanical. Kept and renamed categories copy; a merge target is the OR of
    its sources (positive if any source is positive, negative only if all are known
    negatives, else unknown); a split parent's negatives are negatives for every child,
    its positives go to the first branch whose rule matches (the other children
    negative) and positives no branch takes are *unknown* and listed for human review.
    A category new in ``B`` with no origin has unknown gold everywhere.
(b) **Judge flips** (:func:`judge_flips`): one judge configuration is built twice, with
    its prompt rendered from ``A`` and from ``B``, and scores the same items. Decisions
    are compared per lineage group (a one-to-one category, or a split parent with its
    children, or a merge target with its sources: the OR of the group's decisions on each
    side). Flip matrix, McNemar on the discordant pairs (exact binomial below 25, as in
    :func:`audit.compare.mcnemar`), the flipping items with both sides' reasoning.
(c) **Expected metric change** (:func:`metric_change`): if gold moves as the judge
    suggests (flip items take the judge's ``B`` decision; split positives the rule left
    unassigned take it too), how recall / precision / F1 / FPR of each enforcement
    pathway change, with paired Poisson-bootstrap percentile intervals (both golds
    evaluated on the same resample).

Everything feeds one review queue (:func:`review_queue`): the flips, a seeded random
slice of non-flips as a control, and the unassigned split positives. Items that touch a
restricted category carry id and content hash only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from audit.change.lineage import Lineage
from audit.config import ModeratorSpec
from audit.errors import ConfigError
from audit.policy import Policy, SplitCondition
from audit.schema import NEGATIVE, POSITIVE, UNKNOWN, Item, ModeratorOutput

#: Below this many moved gold labels a bootstrap interval of the change is flagged as
#: unreliable (docs/methods/change.md §2: percentile intervals of a small count under-cover).
MIN_MOVED = 10

#: Metrics of :func:`metric_change` (all need only the confusion counts).
METRICS: tuple[str, ...] = ("recall", "precision", "f1", "fpr")


class ImpactConfig(BaseModel):
    """``audit policy impact --config``: the judge, the pathways and the statistics.

    Attributes:
        judge: a moderator spec (an ``llm_judge`` in practice: its prompt is rendered
            from the policy it is built with, so building it from A and from B is what
            changes). ``fake`` is accepted for dry runs; its flips are not policy-driven.
        pathways: classifier pathways (moderator specs with thresholds) whose metric
            change is estimated.
        pathways_policy: which version the pathways are built with: ``from`` (as
            deployed today, before they are re-mapped; categories they do not score
            are "not applicable") or ``to`` (already re-mapped to the new version).
        n_boot / ci / seed: paired bootstrap.
        control_slice: random non-flip items added to the review queue per group.
        error_budget: share of items a moderator may fail on.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    judge: ModeratorSpec
    pathways: tuple[ModeratorSpec, ...] = ()
    pathways_policy: Literal["from", "to"] = "from"
    n_boot: int = Field(default=1000, ge=0, le=100_000)
    ci: float = Field(default=0.95, gt=0.5, lt=1.0)
    seed: int = 0
    control_slice: int = Field(default=5, ge=0)
    error_budget: float = Field(default=0.05, ge=0.0, le=1.0)


# --------------------------------------------------------------------------- (a)
@dataclass
class Migration:
    """Gold in the new version's categories.

    Attributes:
        labels: (n, K_new) int8, -1 unknown.
        review: ``(row, new category or old parent, reason)`` for items a human must label.
        counts: per new category ``{"positive", "negative", "unknown", "how"}``.
        dropped: old categories whose gold is dropped (removed categories).
    """

    categories: tuple[str, ...]
    labels: np.ndarray
    review: list[tuple[int, str, str]]
    counts: dict[str, dict[str, Any]]
    dropped: list[str]


def _or(cols: list[np.ndarray]) -> np.ndarray:
    """Three-valued OR: positive if any positive, negative if all negative, else unknown."""
    st = np.stack(cols, axis=1)
    out = np.full(st.shape[0], UNKNOWN, dtype=np.int8)
    out[(st == NEGATIVE).all(axis=1)] = NEGATIVE
    out[(st == POSITIVE).any(axis=1)] = POSITIVE
    return out


def _matches(
    cond: SplitCondition,
    row: int,
    old_labels: np.ndarray,
    old_ids: tuple[str, ...],
    slices: dict[str, list[Any]],
    texts: list[str],
    where: str,
    fld: str,
) -> bool:
    if cond.label is not None:
        return bool(old_labels[row, old_ids.index(cond.label)] == POSITIVE)
    if cond.slice is not None:
        ((col, values),) = cond.slice.items()
        if col not in slices:
            raise ConfigError(
                "split condition reads a slice column the suite does not have",
                where=where,
                field=fld + ".when.slice",
                expected=f"one of {sorted(slices)}",
                actual=repr(col),
                fix="use a slice the suite card declares, or a text_matches / label condition",
            )
        return str(slices[col][row]) in values
    assert cond.text_matches is not None
    return re.search(cond.text_matches, texts[row]) is not None


def migrate_gold(
    lin: Lineage,
    old_labels: np.ndarray,
    items: Sequence[Item],
    slices: dict[str, list[Any]],
    where: str,
) -> Migration:
    """Move gold from ``lin.old`` to ``lin.new`` categories (part (a) of the module doc).

    Args:
        old_labels: (n, K_old) gold of the suite under the old version.
        items: the suite's items, in the same order (texts for ``text_matches``).
        slices: slice column → values, in the same order (for ``slice`` conditions).
        where: the new policy's file, for errors.
    """
    old_ids, new_ids = lin.old.category_ids, lin.new.category_ids
    n = old_labels.shape[0]
    texts = [it.text() for it in items]
    contrib: dict[str, list[np.ndarray]] = {c: [] for c in new_ids}
    how: dict[str, list[str]] = {c: [] for c in new_ids}
    review: list[tuple[int, str, str]] = []
    retired = {r.id: (i, r) for i, r in enumerate(lin.new.retired)}
    for o, fate in lin.fates.items():
        col = old_labels[:, old_ids.index(o)]
        if fate.kind in ("kept", "renamed", "merged"):
            contrib[fate.targets[0]].append(col.astype(np.int8))
            how[fate.targets[0]].append(f"{fate.kind} from {o}" if fate.kind != "kept" else "kept")
        elif fate.kind == "split":
            ri, r = retired[o]
            assert r.split_into is not None
            child = {
                t: np.where(col == NEGATIVE, NEGATIVE, UNKNOWN).astype(np.int8)
                for t in fate.targets
            }
            for row in np.flatnonzero(col == POSITIVE):
                chosen: str | None = None
                for bi, b in enumerate(r.split_into):
                    if b.when is None or _matches(
                        b.when,
                        int(row),
                        old_labels,
                        old_ids,
                        slices,
                        texts,
                        where,
                        f"retired[{ri}].split_into[{bi}]",
                    ):
                        chosen = b.into
                        break
                if chosen is None:
                    review.append((int(row), o, f"split of {o}: no branch of the rule matched"))
                    continue
                for t in fate.targets:
                    child[t][row] = POSITIVE if t == chosen else NEGATIVE
            for t in fate.targets:
                contrib[t].append(child[t])
                how[t].append(f"split from {o}")
    labels = np.full((n, len(new_ids)), UNKNOWN, dtype=np.int8)
    counts: dict[str, dict[str, Any]] = {}
    for k, c in enumerate(new_ids):
        if contrib[c]:
            labels[:, k] = _or(contrib[c])
        col = labels[:, k]
        counts[c] = {
            "positive": int((col == POSITIVE).sum()),
            "negative": int((col == NEGATIVE).sum()),
            "unknown": int((col == UNKNOWN).sum()),
            "how": ", ".join(how[c]) or "added: no origin, gold unknown",
        }
    dropped = [o for o, f in lin.fates.items() if f.kind == "removed"]
    return Migration(new_ids, labels, review, counts, dropped)


# --------------------------------------------------------------------------- (b)
@dataclass
class GroupFlips:
    """Judge decisions under A vs B for one lineage group.

    Attributes:
        label: ``old ids → new ids`` (or the id when one-to-one and unchanged).
        matrix: ``[[neg→neg, neg→pos], [pos→neg, pos→pos]]`` over items both sides scored.
        mcnemar: ``{"b": pos→neg, "c": neg→pos, "statistic", "p_value", "method"}``.
        flip_rows: rows that flip.
        reason: why the group was not compared (judge cannot speak to a category), or None.
    """

    old: tuple[str, ...]
    new: tuple[str, ...]
    label: str
    n: int
    matrix: list[list[int]]
    mcnemar: dict[str, Any]
    flip_rows: list[int] = field(default_factory=list)
    reason: str | None = None

    @property
    def flip_rate(self) -> float:
        if self.n == 0:
            return math.nan
        return (self.matrix[0][1] + self.matrix[1][0]) / self.n


def decisions(
    outputs: Sequence[ModeratorOutput], categories: Sequence[str], spec: ModeratorSpec
) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) 0/1 decisions at the spec's thresholds and an (n, K) "scored" mask."""
    n, k = len(outputs), len(categories)
    dec = np.zeros((n, k), dtype=np.int8)
    ok = np.zeros((n, k), dtype=bool)
    for i, o in enumerate(outputs):
        if o.error is not None:
            continue
        for j, c in enumerate(categories):
            v = o.scores.get(c)
            if v is None or math.isnan(v):
                continue
            ok[i, j] = True
            dec[i, j] = 1 if v >= spec.threshold(c) else 0
    return dec, ok


def judge_flips(
    lin: Lineage,
    dec_a: np.ndarray,
    ok_a: np.ndarray,
    cats_a: Sequence[str],
    dec_b: np.ndarray,
    ok_b: np.ndarray,
    cats_b: Sequence[str],
) -> list[GroupFlips]:
    """Flip matrix and McNemar per lineage group (part (b) of the module doc)."""
    from audit.release.compare import mcnemar

    out: list[GroupFlips] = []
    for olds, news in lin.groups():
        label = (
            olds[0]
            if olds == news and len(olds) == 1
            else f"{'+'.join(olds) or '∅'} → {'+'.join(news) or '∅'}"
        )
        missing = list(
            dict.fromkeys(
                [c for c in olds if c not in cats_a] + [c for c in news if c not in cats_b]
            )
        )
        if not olds or not news or missing:
            why = (
                "added in the new version (no old decision to compare)"
                if not olds
                else "removed in the new version (no new decision to compare)"
                if not news
                else f"the judge does not score {missing}"
            )
            nan = math.nan
            out.append(
                GroupFlips(
                    olds,
                    news,
                    label,
                    0,
                    [[0, 0], [0, 0]],
                    {"b": 0, "c": 0, "statistic": nan, "p_value": nan, "method": "n/a"},
                    reason=why,
                )
            )
            continue
        ia = [list(cats_a).index(c) for c in olds]
        ib = [list(cats_b).index(c) for c in news]
        valid = ok_a[:, ia].all(axis=1) & ok_b[:, ib].all(axis=1)
        da = dec_a[:, ia].max(axis=1)
        db = dec_b[:, ib].max(axis=1)
        m = [[0, 0], [0, 0]]
        for x in (0, 1):
            for y in (0, 1):
                m[x][y] = int((valid & (da == x) & (db == y)).sum())
        t = mcnemar(m[1][0], m[0][1])
        rows = np.flatnonzero(valid & (da != db)).tolist()
        out.append(
            GroupFlips(
                olds,
                news,
                label,
                int(valid.sum()),
                m,
                {
                    "b": t.b,
                    "c": t.c,
                    "statistic": t.statistic,
                    "p_value": t.p_value,
                    "method": t.method,
                },
                rows,
            )
        )
    return out


def judge_moved_gold(
    mig: Migration,
    flips: list[GroupFlips],
    dec_b: np.ndarray,
    ok_b: np.ndarray,
    cats_b: Sequence[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Gold after moving it as the judge suggests, and a mask of the cells that moved.

    Flip items take the judge's B decision for every new category of the flipping group;
    split positives the rule left unassigned take it for the split's children.
    """
    gold = mig.labels.copy()
    moved = np.zeros_like(gold, dtype=bool)
    col = {c: k for k, c in enumerate(mig.categories)}
    jb = {c: k for k, c in enumerate(cats_b)}

    def put(row: int, c: str) -> None:
        if c in jb and c in col and ok_b[row, jb[c]]:
            v = int(dec_b[row, jb[c]])
            if gold[row, col[c]] != v:
                moved[row, col[c]] = True
            gold[row, col[c]] = v

    for g in flips:
        for row in g.flip_rows:
            for c in g.new:
                put(row, c)
    for row, parent, _ in mig.review:
        for g in flips:
            if parent in g.old:
                for c in g.new:
                    put(row, c)
    return gold, moved


# --------------------------------------------------------------------------- (c)
def _rates(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = tp / (tp + fn)
        prec = tp / (tp + fp)
        f1 = 2 * tp / (2 * tp + fp + fn)
        fpr = fp / (fp + tn)
    return {"recall": rec, "precision": prec, "f1": f1, "fpr": fpr}


def _counts(w: np.ndarray, y: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted confusion counts; ``w`` is (B, n) or (n,), unknown gold (-1) excluded."""
    known = y != UNKNOWN
    pos, neg = known & (y == POSITIVE), known & (y == NEGATIVE)
    tp = w @ (pos & (d == 1)).astype(float)
    fn = w @ (pos & (d == 0)).astype(float)
    fp = w @ (neg & (d == 1)).astype(float)
    tn = w @ (neg & (d == 0)).astype(float)
    return tp, fp, fn, tn


@dataclass
class MetricDelta:
    """One metric before and after the gold moves, with the paired-bootstrap interval."""

    before: float
    after: float
    delta: float
    lo: float
    hi: float
    n_before: int
    n_after: int
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        def f(v: float) -> float | None:
            return None if not math.isfinite(v) else float(v)

        return {
            "before": f(self.before),
            "after": f(self.after),
            "delta": f(self.delta),
            "lo": f(self.lo),
            "hi": f(self.hi),
            "n_before": self.n_before,
            "n_after": self.n_after,
            "reason": self.reason,
        }


def metric_change(
    y_before: np.ndarray,
    y_after: np.ndarray,
    d: np.ndarray,
    *,
    n_boot: int,
    ci: float,
    seed: int,
) -> dict[str, MetricDelta]:
    """Change of each of :data:`METRICS` of decisions ``d`` when gold goes from
    ``y_before`` to ``y_after`` (same items; -1 unknown), with a paired bootstrap.

    Items are resampled with Poisson(1) weights (Hanley & MacGibbon 2006; Oza 2005), the
    same weights for both golds, so the interval reflects the item-level pairing.
    Undefined metrics (no positives, no negatives) are NaN with a reason.
    """
    ones = np.ones_like(d, dtype=float)
    pb = _rates(*_counts(ones, y_before, d))
    pa = _rates(*_counts(ones, y_after, d))
    boots_b: dict[str, np.ndarray] = {}
    boots_a: dict[str, np.ndarray] = {}
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        w = rng.poisson(1.0, size=(n_boot, d.size)).astype(float)
        boots_b = _rates(*_counts(w, y_before, d))
        boots_a = _rates(*_counts(w, y_after, d))
    nb = int((y_before != UNKNOWN).sum())
    na = int((y_after != UNKNOWN).sum())
    n_moved = int((y_before != y_after).sum())
    out: dict[str, MetricDelta] = {}
    alpha = (1.0 - ci) / 2.0
    for m in METRICS:
        before, after = float(pb[m]), float(pa[m])
        delta = after - before
        lo = hi = math.nan
        reason = None
        if not (math.isfinite(before) and math.isfinite(after)):
            reason = {
                "recall": "no gold positives on one side",
                "precision": "no positive decisions on gold-known items",
                "f1": "no positives and no positive decisions",
                "fpr": "no gold negatives on one side",
            }[m]
        elif n_boot > 0:
            diff = boots_a[m] - boots_b[m]
            diff = diff[np.isfinite(diff)]
            if diff.size >= max(10, n_boot // 2):
                lo, hi = (float(x) for x in np.quantile(diff, [alpha, 1.0 - alpha]))
                if 0 < n_moved < MIN_MOVED:
                    # the delta is a small count of moved items: its bootstrap
                    # distribution is lumpy and percentile intervals under-cover
                    reason = f"only {n_moved} item(s) moved: the interval is unreliable"
            else:
                reason = "too few bootstrap resamples with the metric defined"
        else:
            reason = "n_boot = 0: no interval"
        out[m] = MetricDelta(before, after, delta, lo, hi, nb, na, reason)
    return out


# --------------------------------------------------------------------------- queue
def _restricted_rows(
    labels: list[tuple[np.ndarray, Sequence[str]]], restricted: frozenset[str]
) -> np.ndarray:
    """Rows positive (gold or decision) for any restricted category."""
    n = labels[0][0].shape[0]
    out = np.zeros(n, dtype=bool)
    for arr, cats in labels:
        for k, c in enumerate(cats):
            if c in restricted:
                out |= arr[:, k] == POSITIVE
    return out


def review_queue(
    suite_name: str,
    items: Sequence[Item],
    restricted_rows: np.ndarray,
    reasons: dict[int, list[str]],
    payload: dict[int, dict[str, Any]],
) -> list[dict[str, Any]]:
    """Review-queue tasks in the layout of
    :func:`audit.analysis.disagreements.review_queue` (``{"id": k, "data": {...}}``
    with flat scalar fields), so one exporter and one labelling set-up serve both.

    A restricted row is ``item_id``, ``content_hash`` and ``restricted`` only: not even
    its reasons, which would name the restricted category it flipped in.
    """
    tasks: list[dict[str, Any]] = []
    for k, row in enumerate(sorted(reasons), start=1):
        it = items[row]
        data: dict[str, Any] = {
            "item_id": it.id,
            "content_hash": it.content_hash,
            "restricted": bool(restricted_rows[row]),
        }
        if not restricted_rows[row]:
            data["suite"] = suite_name
            data["text"] = it.text()
            data.update(it.fields)
            data["reasons"] = "; ".join(reasons[row])
            for key, value in payload.get(row, {}).items():
                if isinstance(value, dict):
                    for cat, v in value.items():
                        data[f"{key}_{cat}"] = v
                else:
                    data[key] = value
        tasks.append({"id": k, "data": data})
    return tasks


# --------------------------------------------------------------------------- run
@dataclass
class ImpactResult:
    """Everything ``audit policy impact`` reports."""

    summary: dict[str, Any]
    queue: list[dict[str, Any]]
    migrated: list[dict[str, Any]]


def _score(
    spec: ModeratorSpec,
    policy: Policy,
    items: Sequence[Item],
    where: str,
    field_: str,
    budget: float,
) -> tuple[Any, list[ModeratorOutput]]:
    from audit.engine.pipeline import fit_missing_head, needs_fit
    from audit.engine.runner import score_items
    from audit.errors import AuditError
    from audit.moderators import MODERATORS

    cls = MODERATORS.get(spec.type, where=where, field=f"{field_}.type")
    params = cls.Params.model_validate(spec.params)
    if needs_fit(params):
        # an embedding_head with ``fit:`` and no head on disk is trained once, as in a run
        fit_missing_head(params, policy, None)
    try:
        mod = cls(params, policy)
    except AuditError as exc:
        raise exc.relocated(where, field_) from None
    try:
        res = score_items(
            lambda: mod,
            mod.fingerprint(),
            items,
            batch_size=spec.batch_size,
            cache=None,
            error_budget=budget,
            where=f"{spec.name} under {policy.ref}",
        )
    finally:
        close = getattr(mod, "close", None)
        if callable(close):
            close()
    return mod, res.outputs


def run_impact(
    cfg: ImpactConfig,
    lin: Lineage,
    suite: Any,
    *,
    config_where: str,
    policy_where: str,
) -> ImpactResult:
    """Parts (a), (b), (c) and the review queue for one loaded suite split."""
    from pydantic import ValidationError

    from audit._util.validation import validation_error
    from audit.suites.loader import suite_items

    items = suite_items(suite)
    slices = {s: list(suite.dataset[s]) for s in suite.slice_names}
    mig = migrate_gold(lin, suite.labels, items, slices, policy_where)

    try:
        judge_a, out_a = _score(cfg.judge, lin.old, items, config_where, "judge", cfg.error_budget)
        judge_b, out_b = _score(cfg.judge, lin.new, items, config_where, "judge", cfg.error_budget)
    except ValidationError as exc:
        raise validation_error(exc, config_where) from None
    cats_a, cats_b = tuple(judge_a.categories), tuple(judge_b.categories)
    dec_a, ok_a = decisions(out_a, cats_a, cfg.judge)
    dec_b, ok_b = decisions(out_b, cats_b, cfg.judge)
    flips = judge_flips(lin, dec_a, ok_a, cats_a, dec_b, ok_b, cats_b)
    moved_gold, moved = judge_moved_gold(mig, flips, dec_b, ok_b, cats_b)

    pathways: dict[str, Any] = {}
    built = lin.old if cfg.pathways_policy == "from" else lin.new
    for i, spec in enumerate(cfg.pathways):
        try:
            mod, outs = _score(spec, built, items, config_where, f"pathways[{i}]", cfg.error_budget)
        except ValidationError as exc:
            raise validation_error(exc, config_where) from None
        pc = tuple(mod.categories)
        dec, ok = decisions(outs, pc, spec)
        per: dict[str, Any] = {}
        for k, c in enumerate(mig.categories):
            if c not in pc:
                per[c] = {"reason": "not applicable: the pathway does not score this category"}
                continue
            j = pc.index(c)
            yb = np.where(ok[:, j], mig.labels[:, k], UNKNOWN)
            ya = np.where(ok[:, j], moved_gold[:, k], UNKNOWN)
            mc = metric_change(yb, ya, dec[:, j], n_boot=cfg.n_boot, ci=cfg.ci, seed=cfg.seed)
            per[c] = {
                "n_moved": int((moved[:, k] & ok[:, j]).sum()),
                "metrics": {m: v.to_json() for m, v in mc.items()},
            }
        pathways[spec.name] = {"type": spec.type, "built_with": built.ref, "categories": per}

    restricted = lin.old.restricted_ids | lin.new.restricted_ids
    rrows = _restricted_rows(
        [
            (suite.labels, lin.old.category_ids),
            (mig.labels, mig.categories),
            (dec_a * ok_a, cats_a),
            (dec_b * ok_b, cats_b),
        ],
        restricted,
    )
    reasons: dict[int, list[str]] = {}
    payload: dict[int, dict[str, Any]] = {}

    def add(row: int, why: str) -> None:
        reasons.setdefault(row, []).append(why)
        if row not in payload:
            payload[row] = {
                "gold_old": {
                    c: int(suite.labels[row, k]) for k, c in enumerate(lin.old.category_ids)
                },
                "gold_migrated": {c: int(mig.labels[row, k]) for k, c in enumerate(mig.categories)},
                "judge_old": {c: int(dec_a[row, k]) for k, c in enumerate(cats_a) if ok_a[row, k]},
                "judge_new": {c: int(dec_b[row, k]) for k, c in enumerate(cats_b) if ok_b[row, k]},
                "scores_old": out_a[row].scores,
                "scores_new": out_b[row].scores,
                "rationale_old": out_a[row].rationale,
                "rationale_new": out_b[row].rationale,
            }

    rng = np.random.default_rng(cfg.seed)
    for g in flips:
        for row in g.flip_rows:
            add(row, f"judge flip in {g.label}")
        if g.n and cfg.control_slice:
            flipping = set(g.flip_rows)
            valid_rows = [
                r
                for r in range(len(items))
                if r not in flipping
                and all(ok_a[r, list(cats_a).index(c)] for c in g.old)
                and all(ok_b[r, list(cats_b).index(c)] for c in g.new)
            ]
            k = min(cfg.control_slice, len(valid_rows))
            for row in sorted(rng.choice(valid_rows, size=k, replace=False).tolist()) if k else []:
                add(int(row), f"control: random non-flip in {g.label} (seed {cfg.seed})")
    for row, _parent, why in mig.review:
        add(row, why)
    queue = review_queue(suite.name, items, rrows, reasons, payload)

    flip_json = []
    for g in flips:
        rows_out = []
        for row in g.flip_rows:
            it = items[row]
            entry: dict[str, Any] = {"item_id": it.id, "content_hash": it.content_hash}
            if not rrows[row]:
                entry["rationale_old"] = out_a[row].rationale
                entry["rationale_new"] = out_b[row].rationale
                entry["judge_old"] = payload[row]["judge_old"]
                entry["judge_new"] = payload[row]["judge_new"]
            else:
                entry["restricted"] = True
            rows_out.append(entry)
        flip_json.append(
            {
                "group": g.label,
                "old": list(g.old),
                "new": list(g.new),
                "n": g.n,
                "matrix": g.matrix,
                "flip_rate": None if math.isnan(g.flip_rate) else g.flip_rate,
                "mcnemar": {
                    k: (None if isinstance(v, float) and math.isnan(v) else v)
                    for k, v in g.mcnemar.items()
                },
                "reason": g.reason,
                "flips": rows_out,
            }
        )
    migrated = [
        {
            "item_id": it.id,
            "content_hash": it.content_hash,
            "labels": {c: int(mig.labels[r, k]) for k, c in enumerate(mig.categories)},
        }
        for r, it in enumerate(items)
    ]
    summary = {
        "from": {"ref": lin.old.ref, "digest": lin.old.digest()},
        "to": {"ref": lin.new.ref, "digest": lin.new.digest()},
        "suite": {
            "name": suite.name,
            "split": suite.split,
            "digest": suite.digest,
            "n": len(items),
        },
        "migration": {
            "counts": mig.counts,
            "dropped": mig.dropped,
            "n_review": len({r for r, _, _ in mig.review}),
        },
        "judge": {
            "name": cfg.judge.name,
            "type": cfg.judge.type,
            "errors_old": sum(o.error is not None for o in out_a),
            "errors_new": sum(o.error is not None for o in out_b),
            "groups": flip_json,
        },
        "pathways": pathways,
        "bootstrap": {"n_boot": cfg.n_boot, "ci": cfg.ci, "seed": cfg.seed},
        "review_queue": {
            "n": len(queue),
            "n_restricted": int(sum(t["data"]["restricted"] for t in queue)),
        },
    }
    return ImpactResult(summary, queue, migrated)


def load_impact_config(path: Path) -> ImpactConfig:
    """Strict YAML → :class:`ImpactConfig` (ConfigError, exit 2, naming file and field)."""
    from audit._util.validation import load_model

    return load_model(ImpactConfig, path)


def impact_markdown(s: dict[str, Any]) -> str:
    """The impact summary as markdown tables."""

    def f(v: Any, pct: bool = False) -> str:
        if v is None:
            return "n/a"
        return f"{v:.1%}" if pct else f"{v:+.3f}" if isinstance(v, float) else str(v)

    lines = [
        f"# Relabel impact: {s['from']['ref']} → {s['to']['ref']} on "
        f"{s['suite']['name']}:{s['suite']['split']} (n = {s['suite']['n']})",
        "",
        "## (a) Structural migration",
        "",
        "| category | how | positive | negative | unknown |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for c, v in s["migration"]["counts"].items():
        lines.append(f"| {c} | {v['how']} | {v['positive']} | {v['negative']} | {v['unknown']} |")
    lines += [
        "",
        f"Items needing human review: {s['migration']['n_review']}. "
        f"Dropped categories: {', '.join(s['migration']['dropped']) or 'none'}.",
        "",
        f"## (b) Judge `{s['judge']['name']}` ({s['judge']['type']}): prompts from "
        f"{s['from']['ref']} vs {s['to']['ref']}",
        "",
        "| group | n | neg→neg | neg→pos | pos→neg | pos→pos | flip rate | McNemar p | test |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for g in s["judge"]["groups"]:
        if g["reason"]:
            lines.append(f"| {g['group']} | 0 | | | | | n/a | n/a | {g['reason']} |")
            continue
        m = g["matrix"]
        p = g["mcnemar"]["p_value"]
        lines.append(
            f"| {g['group']} | {g['n']} | {m[0][0]} | {m[0][1]} | {m[1][0]} | {m[1][1]} | "
            f"{f(g['flip_rate'], True)} | {'n/a' if p is None else f'{p:.3g}'} | "
            f"{g['mcnemar']['method']} |"
        )
    lines += [
        "",
        "## (c) Expected metric change per pathway (gold moved as the judge suggests)",
        "",
    ]
    if not s["pathways"]:
        lines.append("No pathways configured.")
    for name, pw in s["pathways"].items():
        lines += [
            f"### {name} ({pw['type']})",
            "",
            "| category | moved | Δ recall | Δ precision | Δ F1 | Δ FPR |",
            "| --- | ---: | --- | --- | --- | --- |",
        ]
        for c, v in pw["categories"].items():
            if "metrics" not in v:
                continue
            cells = []
            for m in METRICS:
                d = v["metrics"][m]
                if d["delta"] is None:
                    cells.append("NaN (" + (d["reason"] or "undefined") + ")")
                elif d["lo"] is None:
                    cells.append(f"{d['delta']:+.3f} (no interval: {d['reason']})")
                else:
                    cells.append(f"{d['delta']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]")
            lines.append(f"| {c} | {v['n_moved']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
