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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from audit.change.impact_flips import GroupFlips, decisions, judge_flips, judge_moved_gold
from audit.change.impact_metrics import METRICS, MIN_MOVED, MetricDelta, metric_change
from audit.change.impact_migration import Migration, migrate_gold
from audit.change.lineage import Lineage
from audit.config import ModeratorSpec
from audit.policy import Policy
from audit.schema import POSITIVE, UNKNOWN, Item, ModeratorOutput

# The parts live in impact_migration / impact_flips / impact_metrics; their public names
# stay importable from here, where the CLI and audit.change import them.
__all__ = [
    "METRICS",
    "MIN_MOVED",
    "GroupFlips",
    "ImpactConfig",
    "ImpactResult",
    "MetricDelta",
    "Migration",
    "decisions",
    "impact_markdown",
    "judge_flips",
    "judge_moved_gold",
    "load_impact_config",
    "metric_change",
    "migrate_gold",
    "run_impact",
]


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
    from audit.engine.prepare import fit_missing_head, needs_fit
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


#: One side of the judge comparison: decisions, which of them are valid, the judge's
#: categories and its raw outputs.
_Side = tuple[np.ndarray, np.ndarray, tuple[str, ...], list[ModeratorOutput]]


def _judge_side(
    cfg: ImpactConfig, policy: Policy, items: Sequence[Item], config_where: str
) -> _Side:
    """The judge built with its prompt rendered from ``policy``, scored on ``items``."""
    from pydantic import ValidationError

    from audit._util.validation import validation_error

    try:
        judge, outs = _score(cfg.judge, policy, items, config_where, "judge", cfg.error_budget)
    except ValidationError as exc:
        raise validation_error(exc, config_where) from None
    cats = tuple(judge.categories)
    dec, ok = decisions(outs, cats, cfg.judge)
    return dec, ok, cats, outs


def run_impact(
    cfg: ImpactConfig,
    lin: Lineage,
    suite: Any,
    *,
    config_where: str,
    policy_where: str,
) -> ImpactResult:
    """Parts (a), (b), (c) and the review queue for one loaded suite split."""
    from audit.suites.loader import suite_items

    items = suite_items(suite)
    slices = {s: list(suite.dataset[s]) for s in suite.slice_names}
    mig = migrate_gold(lin, suite.labels, items, slices, policy_where)

    (dec_a, ok_a, cats_a, out_a), (dec_b, ok_b, cats_b, out_b) = (
        _judge_side(cfg, policy, items, config_where) for policy in (lin.old, lin.new)
    )
    flips = judge_flips(lin, dec_a, ok_a, cats_a, dec_b, ok_b, cats_b)
    moved_gold, moved = judge_moved_gold(mig, flips, dec_b, ok_b, cats_b)

    pathways = _pathway_changes(cfg, lin, items, mig, moved_gold, moved, config_where)

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
    reasons, payload = _review_rows(
        cfg, suite, lin, mig, flips, len(items),
        (dec_a, ok_a, cats_a, out_a), (dec_b, ok_b, cats_b, out_b),
    )  # fmt: skip
    queue = review_queue(suite.name, items, rrows, reasons, payload)

    flip_json = _flip_json(flips, items, rrows, payload, out_a, out_b)
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


def _pathway_changes(
    cfg: ImpactConfig,
    lin: Lineage,
    items: Sequence[Item],
    mig: Migration,
    moved_gold: np.ndarray,
    moved: np.ndarray,
    config_where: str,
) -> dict[str, Any]:
    """Part (c) per configured pathway: each category's expected metric change."""
    from pydantic import ValidationError

    from audit._util.validation import validation_error

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
    return pathways


def _review_rows(
    cfg: ImpactConfig,
    suite: Any,
    lin: Lineage,
    mig: Migration,
    flips: list[GroupFlips],
    n_items: int,
    side_a: _Side,
    side_b: _Side,
) -> tuple[dict[int, list[str]], dict[int, dict[str, Any]]]:
    """Rows for the review queue with why each is there (flips, a seeded control slice of
    non-flips, split positives the rules left unassigned) and what a reviewer sees."""
    dec_a, ok_a, cats_a, out_a = side_a
    dec_b, ok_b, cats_b, out_b = side_b
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
                for r in range(n_items)
                if r not in flipping
                and all(ok_a[r, list(cats_a).index(c)] for c in g.old)
                and all(ok_b[r, list(cats_b).index(c)] for c in g.new)
            ]
            k = min(cfg.control_slice, len(valid_rows))
            for row in sorted(rng.choice(valid_rows, size=k, replace=False).tolist()) if k else []:
                add(int(row), f"control: random non-flip in {g.label} (seed {cfg.seed})")
    for row, _parent, why in mig.review:
        add(row, why)
    return reasons, payload


def _flip_json(
    flips: list[GroupFlips],
    items: Sequence[Item],
    rrows: np.ndarray,
    payload: dict[int, dict[str, Any]],
    out_a: list[ModeratorOutput],
    out_b: list[ModeratorOutput],
) -> list[dict[str, Any]]:
    """Part (b) for the summary: per group the flip matrix, McNemar and the flipping
    items (restricted ones as id and content hash only)."""
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
    return flip_json


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
