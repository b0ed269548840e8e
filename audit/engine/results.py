"""Assemble one suite × moderator result: score/decision/gold arrays, the
per-item predictions table, metrics, the FP/FN table (with restricted text
redacted), and the per-slice error accounting (:func:`error_breakdown`)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from audit.schema import (
    OVERALL_KEY,
    POSITIVE,
    TEXT_FIELDS,
    TRANSIENT_ERRORS,
    UNKNOWN,
    ModeratorOutput,
)

if TYPE_CHECKING:
    import pandas as pd

    from audit.config import ModeratorSpec
    from audit.policy import Policy
    from audit.suites import LoadedSuite

REDACTED = "[redacted: restricted category; see id and content_hash]"
#: ``error_type`` of an LLM judge's unparsable output (never turned into a label)
PARSE_FAILURE = "parse_failure"
#: ``slice`` / ``value`` of the all-items row of :func:`error_breakdown`
OVERALL_SLICE, OVERALL_VALUE = "overall", "all"
MISSING_SLICE_VALUE = "(missing)"


@dataclass
class SuiteResult:
    suite: LoadedSuite
    spec: ModeratorSpec
    fingerprint: dict[str, Any]
    fingerprint_hash: str
    categories: tuple[str, ...]
    """policy categories the moderator speaks to"""
    scores: np.ndarray  # (n, K) float, NaN = not applicable / error
    preds: np.ndarray  # (n, K) float 1/0, NaN where score NaN
    thresholds: dict[str, float]
    overall_score: np.ndarray
    overall_pred: np.ndarray
    errors: list[str | None]
    error_types: list[str | None]
    rationales: list[str | None]
    cached: np.ndarray
    timings: dict[str, float]
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    restricted_mask: np.ndarray | None = None
    error_slices: list[dict[str, Any]] = field(default_factory=list)
    """:func:`error_breakdown` rows (overall + every slice value), JSON-ready; filled by
    :func:`compute_result_metrics`"""
    evidence: list[dict[str, Any] | None] = field(default_factory=list)
    """per-item ``ModeratorOutput.evidence`` (image moderators: per-frame scores)"""

    @property
    def n(self) -> int:
        return len(self.errors)

    @property
    def n_errors(self) -> int:
        return sum(e is not None for e in self.errors)

    @property
    def key(self) -> str:
        return f"{self.suite.name}__{self.spec.name}"


def build_result(
    suite: LoadedSuite,
    spec: ModeratorSpec,
    policy: Policy,
    mod_categories: tuple[str, ...],
    fingerprint: dict[str, Any],
    fingerprint_hash: str,
    outputs: list[ModeratorOutput],
    cached: np.ndarray,
    timings: dict[str, float],
) -> SuiteResult:
    cats = policy.category_ids
    n, k = len(outputs), len(cats)
    scores = np.full((n, k), np.nan)
    kidx = {c: i for i, c in enumerate(cats)}
    for i, o in enumerate(outputs):
        if o.error is None:
            for c, v in o.scores.items():
                if c in kidx and c in mod_categories:
                    scores[i, kidx[c]] = v
    if spec.calibration is not None:
        # after the cache (which holds raw scores), before thresholds; the digest joins the
        # fingerprint so MLflow and comparisons never mistake calibrated for raw scores
        scores, fingerprint, fingerprint_hash = _calibrate(scores, cats, spec, fingerprint)
    thresholds = {c: spec.threshold(c) for c in cats}
    thr = np.array([thresholds[c] for c in cats])
    with np.errstate(invalid="ignore"):
        preds = np.where(np.isnan(scores), np.nan, (scores >= thr).astype(float))
    cover = [kidx[c] for c in suite.covers if c in mod_categories]
    if cover:
        sub = scores[:, cover]
        subp = preds[:, cover]
        all_nan = np.isnan(sub).all(axis=1)
        with np.errstate(invalid="ignore"):
            overall_score = np.where(
                all_nan, np.nan, np.nanmax(np.where(all_nan[:, None], 0, sub), axis=1)
            )
            overall_pred = np.where(
                all_nan, np.nan, np.nanmax(np.where(all_nan[:, None], 0, subp), axis=1)
            )
    else:
        overall_score = np.full(n, np.nan)
        overall_pred = np.full(n, np.nan)
    # a moderator's own any-violation score (Llama Guard P(unsafe)) wins over the max
    own = np.array(
        [o.scores.get(OVERALL_KEY, np.nan) if o.error is None else np.nan for o in outputs]
    )
    if (~np.isnan(own)).any():
        t_all = spec.thresholds.get("overall", spec.thresholds.get("default", 0.5))
        has = ~np.isnan(own)
        overall_score = np.where(has, own, overall_score)
        overall_pred = np.where(has, (own >= t_all).astype(float), overall_pred)
    restricted = [kidx[c] for c in policy.restricted_ids]
    rmask = np.zeros(n, dtype=bool)
    if restricted:
        rmask |= (suite.labels[:, restricted] == POSITIVE).any(axis=1)
        with np.errstate(invalid="ignore"):
            rmask |= (preds[:, restricted] == 1).any(axis=1)
    return SuiteResult(
        suite=suite,
        spec=spec,
        fingerprint=fingerprint,
        fingerprint_hash=fingerprint_hash,
        categories=mod_categories,
        scores=scores,
        preds=preds,
        thresholds=thresholds,
        overall_score=overall_score,
        overall_pred=overall_pred,
        errors=[o.error for o in outputs],
        error_types=[o.error_type for o in outputs],
        rationales=[o.rationale for o in outputs],
        evidence=[o.evidence for o in outputs],
        cached=cached,
        timings=timings,
        restricted_mask=rmask,
    )


def restricted_ids(results: Sequence[SuiteResult], policy: Policy) -> frozenset[str]:
    """Content hashes of every item that is restricted anywhere in the run.

    An item is restricted when gold marks it positive in a ``restricted: true``
    policy category, when *any* moderator's decision in such a category is positive
    (score ≥ its threshold), or when a judge's rationale names one (its id or name).
    Keyed by content hash, so the same text is withheld in every suite, sample and
    moderator table where it appears — the writers never decide per moderator.
    Call it after all moderators (and any ``explain:`` pass) have run.
    """
    rcats = policy.restricted_ids
    if not rcats:
        return frozenset()
    names = {c.lower() for c in rcats} | {policy.category(c).name.lower() for c in rcats}
    out: set[str] = set()
    for res in results:
        cats = list(res.suite.categories)
        ks = [cats.index(c) for c in rcats if c in cats]
        hit = np.zeros(res.n, dtype=bool)
        if ks:
            hit |= (res.suite.labels[:, ks] == POSITIVE).any(axis=1)
            with np.errstate(invalid="ignore"):
                hit |= (res.preds[:, ks] == 1).any(axis=1)
        for i, r in enumerate(res.rationales):
            if r and any(nm in r.lower() for nm in names):
                hit[i] = True
        if res.restricted_mask is not None:
            hit |= res.restricted_mask
        hashes = res.suite.column("content_hash")
        out.update(hashes[i] for i in np.flatnonzero(hit))
    return frozenset(out)


def apply_restricted(results: Sequence[SuiteResult], restricted: frozenset[str]) -> None:
    """Set every result's ``restricted_mask`` from the run-wide set of
    :func:`restricted_ids`, so every writer (FP/FN, judge and disagreement tables,
    review queues, reports, MLflow) redacts the same items."""
    for res in results:
        hashes = res.suite.column("content_hash")
        res.restricted_mask = np.array([h in restricted for h in hashes], dtype=bool)


def _calibrate(
    scores: np.ndarray, cats: tuple[str, ...], spec: ModeratorSpec, fingerprint: dict[str, Any]
) -> tuple[np.ndarray, dict[str, Any], str]:
    """Apply ``spec.calibration`` (checked against its recorded digest)."""
    from audit.calibration.artifact import load_artifact
    from audit.calibration.calibrators import apply_calibration
    from audit.engine.cache import fingerprint_hash as fp_hash
    from audit.errors import ConfigError

    cals, _, digest = load_artifact(spec.calibration or "")
    if spec.calibration_digest is not None and digest != spec.calibration_digest:
        raise ConfigError(
            "calibration artifact changed since the config was loaded",
            where=str(spec.calibration),
            field=f"moderators.{spec.name}.calibration_digest",
            expected=spec.calibration_digest,
            actual=digest,
            fix="rerun, or pin the intended artifact's digest",
        )
    fp = {**fingerprint, "calibration": {"path": spec.calibration, "digest": digest}}
    return apply_calibration(scores, cats, cals), fp, fp_hash(fp)


def compute_result_metrics(
    res: SuiteResult, *, names: tuple[str, ...] | None, n_boot: int, ci: float, seed: int
) -> None:
    """Per-category metrics over categories the suite covers and the moderator speaks to,
    plus ``overall``; stores JSON-ready dicts on ``res.metrics``."""
    from audit.metrics import compute_metrics

    cats = list(res.suite.categories)
    use = [c for c in cats if c in res.suite.covers and c in res.categories]
    idx = [cats.index(c) for c in use]
    y = res.suite.labels[:, idx]
    known_any = (y != UNKNOWN).any(axis=0)
    use = [c for c, ok in zip(use, known_any) if ok]
    idx = [cats.index(c) for c in use]
    pred = np.nan_to_num(res.preds[:, idx], nan=0.0).astype(bool)
    out = compute_metrics(
        res.suite.labels[:, idx],
        res.scores[:, idx],
        pred,
        use,
        metrics=list(names) if names else None,
        n_boot=n_boot,
        ci=ci,
        seed=seed,
        overall=(
            res.suite.overall,
            res.overall_score,
            np.nan_to_num(res.overall_pred, nan=0.0).astype(bool),
        ),
    )
    res.metrics = {cat: {m: _mv_json(v) for m, v in per.items()} for cat, per in out.items()}
    err = res.n_errors / res.n if res.n else math.nan
    res.metrics.setdefault("overall", {})["error_rate"] = {
        "value": None if math.isnan(err) else err,
        "ci_low": None,
        "ci_high": None,
        "n": res.n,
        "reason": None if res.n else "no items",
        "method": "count",
    }
    res.error_slices = error_breakdown(res, ci=ci)


def _rate(k: int, n: int, z: float) -> dict[str, Any]:
    """``k / n`` with its Wilson score interval, JSON-ready (NaN → ``None`` + reason)."""
    from audit.metrics.stats import wilson

    if n == 0:
        return {
            "value": None,
            "ci_low": None,
            "ci_high": None,
            "n": 0,
            "reason": "no items",
            "method": "wilson",
        }
    lo, hi = wilson(k, n, z)
    return {
        "value": k / n,
        "ci_low": float(lo),
        "ci_high": float(hi),
        "n": int(n),
        "reason": None,
        "method": "wilson",
    }


def _missing(v: Any) -> bool:
    """``None``, NaN or a pandas missing value (as read back from Parquet)."""
    if v is None:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    return type(v).__name__ in ("NAType", "NaTType")


def _slice_key(v: Any) -> str:
    return MISSING_SLICE_VALUE if _missing(v) else str(v)


def error_breakdown_table(
    errors: Sequence[Any],
    error_types: Sequence[Any],
    slices: Mapping[str, Sequence[Any]],
    *,
    ci: float = 0.95,
) -> list[dict[str, Any]]:
    """Failed items per slice: counts by error type, error and parse-failure rates.

    Args:
        errors: per-item error message, ``None`` (or NaN) when the item scored.
        error_types: per-item ``error_type`` (``"parse_failure"``, ``"timeout"``...).
        slices: slice name → per-item slice value.
        ci: level of the Wilson score intervals (Wilson 1927).

    Returns:
        One row for all items (``slice="overall"``, ``value="all"``), then one per
        ``(slice, value)`` — values as strings, ``"(missing)"`` for none — most items
        first. Each row: ``slice``, ``value``, ``n``, ``n_errors``, ``n_parse_failures``,
        ``errors_by_type`` (type → count; ``"unspecified"`` when an error has no type),
        and ``error_rate`` / ``parse_failure_rate`` as ``{value, ci_low, ci_high, n,
        reason, method="wilson"}`` (value ``None`` with a reason when ``n == 0``).
    """
    from audit.metrics.stats import z_value

    z = z_value(ci)
    n = len(errors)
    if len(error_types) != n:
        raise ValueError(f"{len(error_types)} error types for {n} items")
    failed = np.array([not _missing(e) for e in errors], dtype=bool)
    types = [
        ("unspecified" if _missing(t) else str(t)) if f else None
        for f, t in zip(failed, error_types)
    ]
    parse = np.array([t == PARSE_FAILURE for t in types], dtype=bool)
    transient = np.array([t is not None and t in TRANSIENT_ERRORS for t in types], dtype=bool)

    def row(name: str, value: str, mask: np.ndarray) -> dict[str, Any]:
        k, ne, npf = int(mask.sum()), int(failed[mask].sum()), int(parse[mask].sum())
        ntr = int(transient[mask].sum())
        by_type = Counter(t for t, m in zip(types, mask) if m and t is not None)
        return {
            "slice": name,
            "value": value,
            "n": k,
            "n_errors": ne,
            "n_parse_failures": npf,
            # transport failures (server down, timeouts): not the model's doing, never
            # cached, retried by the next run; kept apart from parse failures
            "n_transient": ntr,
            "errors_by_type": dict(sorted(by_type.items())),
            "error_rate": _rate(ne, k, z),
            "parse_failure_rate": _rate(npf, k, z),
        }

    rows = [row(OVERALL_SLICE, OVERALL_VALUE, np.ones(n, dtype=bool))]
    for name, vals in slices.items():
        keys = np.array([_slice_key(v) for v in vals], dtype=object)
        if len(keys) != n:
            raise ValueError(f"slice {name!r} has {len(keys)} values for {n} items")
        counts = Counter(keys.tolist())
        for value, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            rows.append(row(name, value, keys == value))
    return rows


def error_breakdown(res: SuiteResult, *, ci: float = 0.95) -> list[dict[str, Any]]:
    """:func:`error_breakdown_table` of one result: its errors over the suite's slices,
    so a judge that fails to parse mostly on one language or surface shows it."""
    slices = {s: res.suite.column(s) for s in res.suite.slice_names}
    return error_breakdown_table(res.errors, res.error_types, slices, ci=ci)


def error_breakdown_frame(df: pd.DataFrame, *, ci: float = 0.95) -> list[dict[str, Any]]:
    """:func:`error_breakdown_table` from a :func:`predictions_frame` (the run's Parquet)."""
    slices = {c[len("slice.") :]: df[c].tolist() for c in df.columns if c.startswith("slice.")}
    return error_breakdown_table(df["error"].tolist(), df["error_type"].tolist(), slices, ci=ci)


def _mv_json(v: Any) -> dict[str, Any]:
    def f(x: Any) -> float | None:
        if x is None:
            return None
        x = float(x)
        return None if math.isnan(x) else x

    return {
        "value": f(v.value),
        "ci_low": f(v.ci_low),
        "ci_high": f(v.ci_high),
        "n": int(v.n),
        "reason": v.reason,
        "method": getattr(v, "method", None),
    }


def predictions_frame(res: SuiteResult) -> pd.DataFrame:
    """One row per item: ids, hashes, scores, decisions, gold, errors, slices. No text."""
    import pandas as pd

    cols: dict[str, Any] = {
        "id": res.suite.column("id"),
        "content_hash": res.suite.column("content_hash"),
    }
    for k, c in enumerate(res.suite.categories):
        if c in res.categories:
            cols[f"score.{c}"] = res.scores[:, k]
            cols[f"pred.{c}"] = pd.array(
                [None if math.isnan(p) else bool(p) for p in res.preds[:, k]], dtype="boolean"
            )
        cols[f"gold.{c}"] = res.suite.labels[:, k]
    cols["score.overall"] = res.overall_score
    cols["pred.overall"] = pd.array(
        [None if math.isnan(p) else bool(p) for p in res.overall_pred], dtype="boolean"
    )
    cols["gold.overall"] = res.suite.overall
    cols["error"] = res.errors
    cols["error_type"] = res.error_types
    cols["rationale"] = [
        REDACTED if (r is not None and res.restricted_mask[i]) else r  # type: ignore[index]
        for i, r in enumerate(res.rationales)
    ]
    cols["restricted"] = res.restricted_mask
    cols["cached"] = res.cached
    for s in res.suite.slice_names:
        cols[f"slice.{s}"] = res.suite.column(s)
    return pd.DataFrame(cols)


def fp_fn_frame(res: SuiteResult, max_rows: int) -> pd.DataFrame:
    """False positives and false negatives per category (and overall), most
    confident errors first, with text — redacted for restricted items."""
    import pandas as pd

    suite = res.suite  # columns read once per suite (LoadedSuite.column)
    texts = {f: suite.column(f) for f in TEXT_FIELDS}
    ids, hashes = suite.column("id"), suite.column("content_hash")
    slices = {sl: suite.column(sl) for sl in suite.slice_names}
    rows: list[dict[str, Any]] = []
    cats = list(res.suite.categories)
    pairs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, float]] = []
    for c in cats:
        if c in res.categories and c in res.suite.covers:
            k = cats.index(c)
            pairs.append(
                (c, res.suite.labels[:, k], res.scores[:, k], res.preds[:, k], res.thresholds[c])
            )
    pairs.append(("overall", res.suite.overall, res.overall_score, res.overall_pred, math.nan))
    with_frames = any(e and e.get("decided_by") for e in res.evidence)
    for c, y, s, p, t in pairs:
        ok = (y != UNKNOWN) & ~np.isnan(s)
        fp = np.where(ok & (y == 0) & (p == 1))[0]
        fn = np.where(ok & (y == 1) & (p == 0))[0]
        for kind, idx in (("FP", fp), ("FN", fn)):
            for i in idx:
                redact = bool(res.restricted_mask[i])  # type: ignore[index]
                text = "\n".join(f"{f}: {texts[f][i]}" for f in TEXT_FIELDS if texts[f][i])
                rows.append(
                    {
                        "id": ids[i],
                        "content_hash": hashes[i],
                        "category": c,
                        "error": kind,
                        "gold": int(y[i]),
                        "score": float(s[i]),
                        "threshold": None if math.isnan(t) else t,
                        "text": REDACTED if redact else text,
                        "rationale": REDACTED
                        if (redact and res.rationales[i])
                        else res.rationales[i],
                        **{f"slice.{sl}": v[i] for sl, v in slices.items()},
                        **(_frame_evidence(res, i, c) if with_frames else {}),
                    }
                )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["confidence"] = np.where(df["error"] == "FP", df["score"], 1 - df["score"])
    df = df.sort_values(["confidence"], ascending=False).head(max_rows).reset_index(drop=True)
    return df


def _frame_evidence(res: SuiteResult, i: int, category: str) -> dict[str, Any]:
    """``frame_index`` / ``frame_timestamp_s`` of the frame that decided item ``i``'s
    score for ``category`` (``overall``: its highest-scoring covered category), from an
    image moderator's evidence (directly or through a fusion member); ``None`` when
    the score came from a still image, a text member, or a moderator without evidence."""
    ev = res.evidence[i] if i < len(res.evidence) else None
    decided = (ev or {}).get("decided_by") or {}
    cat = category
    if category == "overall":
        cats = list(res.suite.categories)
        best = -math.inf
        for c in res.suite.covers:
            if c in res.categories and c in decided:
                v = res.scores[i, cats.index(c)]
                if not math.isnan(v) and v > best:
                    best, cat = v, c
    d = decided.get(cat) or {}
    return {
        "frame_index": d.get("frame_index"),
        "frame_timestamp_s": d.get("timestamp_s"),
        "decided_by": d.get("member"),
    }
