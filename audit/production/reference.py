"""``audit production reference``: the reference sample scored by a moderator, cached.

The reference labeller of §5 (docs/methods/production.md), normally an
``llm_judge``, scores every item of the sample's reference batch (all ``m_h``
ranks). It runs through the engine's runner, :func:`audit.engine.runner.score_items`,
with the run config's content-addressed prediction cache, so a rerun or a golden-set
run that already saw the same content scores nothing again. The output is the
reference-labels file that ``audit production estimate --reference`` reads:
``item_id, category, label, score``, with label = score ≥ the moderator's threshold
for the category.

An item the moderator cannot score is a per-item error kept as data. That covers
items with no content in the logs (a ``content_ref`` only, or empty fields) and
items the model failed on. Errors go to ``reference_errors.csv`` with their type,
are counted in the result, and are left out of the labels file. The estimate then
counts those items as reference labels missing within their stratum (§4.6).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import AuditError, ConfigError, UsageError
from audit.production.errors import ProductionError
from audit.production.sample import SampleManifest, load_manifest


@dataclass(frozen=True)
class ReferenceResult:
    """What one reference pass wrote and did."""

    labels: Path
    errors: Path
    moderator: str
    fingerprint_hash: str
    n_items: int
    """distinct sampled items (an item sampled in two categories is scored once)"""
    n_pairs: int
    """(item, category) pairs written to the labels file"""
    n_cached: int
    """items answered from the prediction cache"""
    n_scored: int
    """items the model scored in this call"""
    error_types: dict[str, int]
    """per-item errors by type (``no_content`` and the runner's types)"""

    @property
    def n_errors(self) -> int:
        return sum(self.error_types.values())


def _sample_rows(manifest_path: Path) -> tuple[SampleManifest, list[dict[str, Any]]]:
    """The manifest and the sample's rows, after checking the sample file's sha256."""
    import pyarrow.parquet as pq

    man = load_manifest(manifest_path)
    path = manifest_path.parent / man.sample_file
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != man.sample_sha256:
        raise ProductionError(
            "the sample file is missing or was edited after sampling",
            where=str(path),
            field="sample_sha256",
            expected=man.sample_sha256,
            actual="no such file" if not path.is_file() else "another sha256",
            fix="score the sample written with this manifest (rerun `audit production sample`)",
        )
    tbl = pq.read_table(path)
    keep = [
        c
        for c in tbl.column_names
        if c in ("item_id", "category", "content_ref") or c.startswith("content.")
    ]
    return man, tbl.select(keep).to_pylist()


def _resolve_moderator(config_path: Path, name: str, overrides: tuple[str, ...]) -> Any:
    """The run config, its policy and the named moderator's spec (validated)."""
    from audit.config import check_against_policy, load_config
    from audit.moderators.checks import check_moderator_params
    from audit.policy import load_policy

    cfg = load_config(config_path, overrides)
    check_moderator_params(cfg, str(config_path))
    names = [m.name for m in cfg.moderators]
    if name not in names:
        raise UsageError(
            "no such moderator in the run config",
            where=str(config_path),
            field="--moderator",
            expected=f"one of {', '.join(names)}",
            actual=repr(name),
        )
    policy = load_policy(cfg.policy, base=config_path.parent)
    check_against_policy(cfg, policy.category_ids, str(config_path))
    return cfg, policy, names.index(name)


def _items(rows: list[dict[str, Any]]) -> tuple[list[Any], dict[str, list[str]], list[str]]:
    """One :class:`Item` per sampled id with content, the categories sampled for each id,
    and the ids without any content (per-item ``no_content`` errors)."""
    from audit.schema import Item, content_hash

    cats: dict[str, list[str]] = {}
    fields_of: dict[str, dict[str, str]] = {}
    for r in rows:
        iid = str(r["item_id"])
        if r["category"] not in cats.setdefault(iid, []):
            cats[iid].append(str(r["category"]))
        fields_of.setdefault(
            iid,
            {
                k[len("content.") :]: str(v)
                for k, v in r.items()
                if k.startswith("content.") and v is not None and str(v).strip()
            },
        )
    items = [Item(i, content_hash(dict(f)), f) for i, f in fields_of.items() if f]
    return items, cats, [i for i, f in fields_of.items() if not f]


def score_reference(
    manifest: str | Path,
    config: str | Path,
    moderator: str,
    *,
    out: str | Path | None = None,
    overrides: tuple[str, ...] = (),
    runs_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    overall: bool = False,
) -> ReferenceResult:
    """Score the reference batch of ``manifest`` with ``moderator`` of run ``config``.

    The prediction cache is the run config's (``runner.cache_dir``, else
    ``<output_dir or runs_dir>/cache``), shared with ``audit run``. With ``overall``, the
    moderator's overall score (P(unsafe) of a judge that gives no per-category scores)
    stands for every sampled category, thresholded at its ``overall`` threshold.

    Raises:
        UsageError: no such moderator, or one that does not score a sampled category.
        ProductionError: a missing or edited sample file.
        RunError: more per-item model failures than ``runner.error_budget`` allows.
    """
    from audit.engine.cache import fingerprint_hash
    from audit.engine.runner import score_items
    from audit.moderators import MODERATORS

    mpath, cpath = Path(manifest), Path(config)
    man, rows = _sample_rows(mpath)
    cfg, policy, i = _resolve_moderator(cpath, moderator, overrides)
    spec = cfg.moderators[i]
    cls = MODERATORS.get(spec.type, where=str(cpath), field=f"moderators[{i}].type")
    try:
        mod = cls(cls.Params.model_validate(spec.params), policy)
    except AuditError as exc:  # re-anchored on the config, as `audit run` does
        raise exc.relocated(str(cpath), f"moderators[{i}]") from None
    try:
        if not overall:
            _check_categories(man, mod, cpath, i)
        items, cats, no_content = _items(rows)
        fp = {"type": spec.type, **mod.fingerprint()}
        cache = _open_cache(cfg, cpath, runs_dir, policy)
        if cache is not None:
            # raw text of items sampled in a restricted category never enters the cache
            restricted = set(man.restricted_categories)
            cache.withhold(it.content_hash for it in items if restricted & set(cats[it.id]))
        try:
            sr = score_items(
                lambda: mod,
                fp,
                items,
                batch_size=spec.batch_size,
                cache=cache,
                error_budget=cfg.runner.error_budget,
                where=f"production sample {man.period} × {spec.name}",
                progress=progress,
            )
        finally:
            if cache is not None:
                cache.close()
    finally:
        close = getattr(mod, "close", None)
        if callable(close):
            close()
    labels_path = Path(out) if out is not None else mpath.parent / "reference_labels.csv"
    n_pairs, errors = _write(labels_path, items, sr.outputs, cats, no_content, spec, overall)
    n_cached = int(sr.cached.sum())
    return ReferenceResult(
        labels=labels_path,
        errors=labels_path.with_name("reference_errors.csv"),
        moderator=spec.name,
        fingerprint_hash=fingerprint_hash(fp),
        n_items=len(cats),
        n_pairs=n_pairs,
        n_cached=n_cached,
        n_scored=len(items) - n_cached,
        error_types=errors,
    )


def _check_categories(man: SampleManifest, mod: Any, cpath: Path, i: int) -> None:
    """Every sampled category must be one the moderator scores."""
    sampled = sorted({s.category for s in man.strata})
    missing = [c for c in sampled if c not in mod.categories]
    if missing:
        raise UsageError(
            f"the moderator does not score the sampled category {missing[0]!r}",
            where=str(cpath),
            field=f"moderators[{i}]",
            expected=f"a moderator covering {sampled}",
            actual=f"categories {sorted(mod.categories)}",
            fix="pick a moderator covering every audited category, or pass --overall to use "
            "its overall score for each",
        )


def _open_cache(cfg: Any, cpath: Path, runs_dir: Path | None, policy: Any) -> Any:
    """The run config's prediction cache (None when ``runner.cache`` is off)."""
    if not cfg.runner.cache:
        return None
    from audit._util.settings import runs_dir as default_runs_dir
    from audit.engine.cache import PredictionCache
    from audit.engine.prepare import usable_dir

    root = Path(cfg.output_dir) if cfg.output_dir else (runs_dir or default_runs_dir())
    cache_dir = Path(cfg.runner.cache_dir) if cfg.runner.cache_dir else root / "cache"
    usable_dir(cache_dir, where=str(cpath), field="runner.cache_dir", create=True)
    return PredictionCache(
        cache_dir / "predictions.sqlite", restricted_categories=policy.restricted_ids
    )


def _write(
    path: Path,
    items: list[Any],
    outputs: list[Any],
    cats: dict[str, list[str]],
    no_content: list[str],
    spec: Any,
    overall: bool,
) -> tuple[int, dict[str, int]]:
    """Write the labels and the per-item errors; returns the pairs written and the error
    counts by type."""
    import csv

    scores = _calibrated(items, outputs, cats, spec, overall)
    labels: list[dict[str, Any]] = []
    errs: list[dict[str, Any]] = [
        {"item_id": i, "category": c, "error_type": "no_content", "error": _NO_CONTENT}
        for i in no_content
        for c in cats[i]
    ]
    for it, o, sc in zip(items, outputs, scores):
        for c in cats[it.id]:
            s = sc.get(c, math.nan)
            if o.error is not None or not math.isfinite(s):
                kind = (o.error_type or "error") if o.error is not None else "no_score"
                msg = o.error if o.error is not None else f"no score for {c!r}"
                errs.append({"item_id": it.id, "category": c, "error_type": kind, "error": msg})
                continue
            t = (
                spec.thresholds.get(OVERALL_THRESHOLD, spec.threshold(c))
                if overall
                else spec.threshold(c)
            )
            labels.append(
                {"item_id": it.id, "category": c, "label": int(s >= t), "score": round(s, 6)}
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    for p, rows, names in (
        (path, labels, ["item_id", "category", "label", "score"]),
        (
            path.with_name("reference_errors.csv"),
            errs,
            ["item_id", "category", "error_type", "error"],
        ),
    ):
        with p.open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=names)
            w.writeheader()
            w.writerows(rows)
    counts: dict[str, int] = {}
    for e in errs:
        counts[e["error_type"]] = counts.get(e["error_type"], 0) + 1
    return len(labels), counts


def _calibrated(
    items: list[Any], outputs: list[Any], cats: dict[str, list[str]], spec: Any, overall: bool
) -> list[dict[str, float]]:
    """Per item, its sampled categories' scores; with ``calibration:`` in the moderator's
    config, mapped by the artifact after the cache and before thresholds, as in a run
    (per-category calibrators do not apply to the overall score)."""
    from audit.schema import OVERALL_KEY

    raw = [
        {
            c: float(o.scores.get(OVERALL_KEY if overall else c, math.nan))
            if o.error is None
            else math.nan
            for c in cats[it.id]
        }
        for it, o in zip(items, outputs)
    ]
    if spec.calibration is None or overall or not raw:
        return raw
    import numpy as np

    from audit.calibration.artifact import load_artifact
    from audit.calibration.calibrators import apply_calibration

    cals, _, digest = load_artifact(spec.calibration)
    if spec.calibration_digest is not None and digest != spec.calibration_digest:
        raise ConfigError(
            "calibration artifact changed since the config was loaded",
            where=str(spec.calibration),
            field=f"moderators.{spec.name}.calibration_digest",
            expected=spec.calibration_digest,
            actual=digest,
            fix="rerun, or pin the intended artifact's digest",
        )
    names = sorted({c for r in raw for c in r})
    m = np.array([[r.get(c, math.nan) for c in names] for r in raw], dtype=float)
    m = apply_calibration(m, names, cals)
    return [{c: float(m[k, j]) for j, c in enumerate(names) if c in r} for k, r in enumerate(raw)]


OVERALL_THRESHOLD = "overall"
_NO_CONTENT = "no content fields in the logs for this item (a content_ref is not fetched)"
