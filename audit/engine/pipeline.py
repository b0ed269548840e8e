"""``run_audit``: the one place where config, policy, suites, moderators, runner,
metrics, record and MLflow mirror are wired together.

Everything that can be validated is validated before the run directory exists,
so bad input never leaves a record behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from audit.errors import AuditError, ConfigError, RunError

if TYPE_CHECKING:
    from rich.console import Console

    from audit.config import ModeratorSpec, RunConfig
    from audit.engine.record import RunRecord
    from audit.engine.results import SuiteResult
    from audit.moderators.base import Moderator
    from audit.policy import Policy
    from audit.suites import LoadedSuite


@dataclass
class Prepared:
    """A fully validated run, before any scoring."""

    config: RunConfig
    config_path: Path
    policy: Policy
    suites: list[LoadedSuite]
    skipped: list[dict[str, str]]
    moderators: list[tuple[ModeratorSpec, Moderator]]


def prepare(
    config_path: str | Path,
    overrides: tuple[str, ...] = (),
    *,
    console: Console | None = None,
    fit_heads: bool = True,
) -> Prepared:
    """Validate config, policy, suites and moderator specs; build moderators.

    With ``fit_heads=False`` (``audit validate``) an ``embedding_head`` whose head is
    missing but has ``fit:`` is validated without training it and not built.
    """
    from audit._util.settings import offline_env
    from audit.config import check_against_policy, load_config
    from audit.moderators import MODERATORS
    from audit.policy import load_policy
    from audit.suites.loader import SuiteDataMissing, load_suite

    offline_env()
    path = Path(config_path)
    cfg = load_config(path, overrides)
    policy = load_policy(cfg.policy, base=path.parent)
    check_against_policy(cfg, policy.category_ids, str(path))
    suites: list[LoadedSuite] = []
    skipped: list[dict[str, str]] = []
    for ref in cfg.suites:
        try:
            suites.append(load_suite(ref.name, policy, split=ref.split, limit=ref.limit))
        except SuiteDataMissing as exc:
            if not ref.optional:
                raise
            skipped.append({"suite": ref.name, "reason": exc.render()})
            if console is not None:
                console.print(f"[yellow]skipping optional suite {ref.name}[/]: {exc.render()}")
    if not suites:
        raise RunError(
            "no suite could be loaded",
            where=str(path),
            field="suites",
            expected="at least one suite with data",
            actual=f"{len(skipped)} optional suite(s) skipped",
            fix="set AUDIT_DATA_ROOT or add a suite whose data is present",
        )
    known = {ref.name for ref in cfg.suites} | {s.name for s in suites}
    for i, spec in enumerate(cfg.moderators):
        bad = sorted(set(spec.suites or ()) - known)
        if bad:
            raise ConfigError(
                "the moderator lists suites this config does not score",
                where=str(path),
                field=f"moderators[{i}].suites",
                expected=f"names among {sorted(known)}",
                actual=repr(bad),
                fix="use a suite's name as listed under suites: (or its card name)",
            )
    mods: list[tuple[ModeratorSpec, Moderator]] = []
    for i, spec in enumerate(cfg.moderators):
        cls = MODERATORS.get(spec.type, where=str(path), field=f"moderators[{i}].type")
        params = cls.Params.model_validate(spec.params)
        if _needs_fit(params) and not fit_heads:
            continue
        if _needs_fit(params):
            _fit_missing_head(params, policy, console)
        try:
            mod = cls(params, policy)
        except AuditError as exc:
            # re-anchor the adapter's error on the config file and the moderator entry
            raise exc.relocated(str(path), f"moderators[{i}]") from None
        if spec.explain is not None:
            reason = mod.explain_unsupported()
            if reason is not None:
                raise ConfigError(
                    "explain: is set for a moderator that cannot write rationales",
                    where=str(path),
                    field=f"moderators[{i}].explain",
                    expected="an llm_judge whose preset has a rationale slot (e.g. platform_binary)",
                    actual=reason,
                    fix="remove explain:, or use an llm_judge preset that supports it",
                )
        mods.append((spec, mod))
    return Prepared(cfg, path, policy, suites, skipped, mods)


def _needs_fit(params: Any) -> bool:
    fit, head = getattr(params, "fit", None), getattr(params, "head", None)
    return fit is not None and head is not None and not (Path(head) / "head.json").exists()


def _fit_missing_head(params: Any, policy: Policy, console: Console | None) -> None:
    """An ``embedding_head`` with ``fit:`` and no head on disk is trained first."""
    from audit.moderators.classifiers.heads import train_head_on_suite

    fit, head = params.fit, params.head

    if console is not None:
        console.print(f"training the missing head {head} on {fit.suite}:{fit.split} (once)")
    train_head_on_suite(
        fit.suite,
        fit.split,
        Path(head),
        policy_ref=policy.ref,
        encoder=params.encoder,
        C=fit.C,
        min_positives=fit.min_positives,
        seed=fit.seed,
    )


def run_audit(
    config_path: str | Path,
    overrides: tuple[str, ...] = (),
    *,
    console: Console | None = None,
    mlflow: bool = True,
    runs_dir: Path | None = None,
) -> tuple[RunRecord, list[SuiteResult]]:
    """Run an audit end to end; returns the closed record and the results."""
    from audit._util.settings import repo_root
    from audit._util.settings import runs_dir as default_runs_dir
    from audit.engine.cache import PredictionCache, fingerprint_hash
    from audit.engine.record import RunRecord, make_run_id, provenance, reap_interrupted
    from audit.engine.results import build_result, compute_result_metrics, predictions_frame
    from audit.engine.runner import score_items
    from audit.report.markdown import write_report
    from audit.suites.loader import suite_items

    prep = prepare(config_path, overrides, console=console)
    cfg, policy = prep.config, prep.policy
    rdir = Path(cfg.output_dir).resolve() if cfg.output_dir else (runs_dir or default_runs_dir())
    rdir.mkdir(parents=True, exist_ok=True)
    reaped = reap_interrupted(rdir)
    if reaped and console is not None:
        console.print(f"[yellow]marked {len(reaped)} interrupted run(s)[/]: {', '.join(reaped)}")
    fps = {}
    for spec, mod in prep.moderators:
        fp = {"type": spec.type, **mod.fingerprint()}
        fps[spec.name] = (fp, fingerprint_hash(fp))
    header = {
        "config": cfg.model_dump(mode="json"),
        "config_path": str(prep.config_path),
        "config_hash": cfg.config_hash(),
        "overrides": list(overrides),
        "provenance": provenance(repo_root(), cfg.seed),
        "policy": {"ref": policy.ref, "digest": policy.digest()},
        "suites": {f"{s.name}:{s.split}": s.describe() for s in prep.suites},
        "moderators": {
            spec.name: {
                "type": spec.type,
                "kind": mod.kind,
                "categories": list(mod.categories),
                "thresholds": spec.thresholds,
                "batch_size": spec.batch_size,
                "fingerprint": fps[spec.name][0],
                "fingerprint_hash": fps[spec.name][1],
            }
            for spec, mod in prep.moderators
        },
    }
    record = RunRecord.create(rdir, make_run_id(cfg.name, header["config_hash"]), header)
    record.data["skipped"] = prep.skipped
    (record.dir / "config.yaml").write_text(
        yaml.safe_dump(header["config"], sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    cache = None
    if cfg.runner.cache:
        cache_dir = Path(cfg.runner.cache_dir) if cfg.runner.cache_dir else rdir / "cache"
        cache = PredictionCache(cache_dir / "predictions.sqlite")
    results: list[SuiteResult] = []
    try:
        for spec, mod in prep.moderators:
            fp, fph = fps[spec.name]
            for full in prep.suites:
                if spec.suites is not None and full.name not in spec.suites:
                    continue
                suite = (
                    full.sample(spec.sample.n, seed=spec.sample.seed, stratify=spec.sample.stratify)
                    if spec.sample is not None
                    else full
                )
                items = suite_items(suite)
                label = f"{suite.name}:{suite.split} × {spec.name}"
                with _progress(console, label, len(items), cfg.runner.progress) as advance:
                    sr = score_items(
                        lambda m=mod: m,
                        fp,
                        items,
                        batch_size=spec.batch_size,
                        cache=cache,
                        error_budget=cfg.runner.error_budget,
                        where=label,
                        progress=advance,
                    )
                t0 = time.perf_counter()
                res = build_result(
                    suite,
                    spec,
                    policy,
                    tuple(mod.categories),
                    fp,
                    fph,
                    sr.outputs,
                    sr.cached,
                    {"scoring_s": sr.seconds, "model_s": sr.model_seconds},
                )
                compute_result_metrics(
                    res,
                    names=cfg.metrics.names,
                    n_boot=cfg.metrics.bootstrap,
                    ci=cfg.metrics.ci,
                    seed=cfg.metrics.seed,
                )
                res.timings["metrics_s"] = time.perf_counter() - t0
                pq = record.dir / "predictions" / f"{res.key}.parquet"
                predictions_frame(res).to_parquet(pq, index=False)
                results.append(res)
                record.data["results"].append(_result_entry(res, sr, pq, record.dir))
                record.save()
            if spec.explain is None:
                _close(mod)
        for spec, mod in prep.moderators:
            if spec.explain is not None:
                _explain_pass(spec, mod, results, record, cache, console)
                _close(mod)
    except BaseException as exc:
        msg = exc.render() if isinstance(exc, AuditError) else f"{type(exc).__name__}: {exc}"
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        record.finish(status, msg)
        raise
    finally:
        if cache is not None:
            cache.close()
    record.finish("finished")
    write_report(record, results)
    from audit.report.html import write_html_report

    write_html_report(record.dir, mlflow=False)
    if mlflow and cfg.tracking.enabled:
        from audit.tracking.mirror import default_tracking_uri, mirror

        uri = cfg.tracking.uri or default_tracking_uri(rdir)
        record.data["mlflow"] = mirror(
            record,
            results,
            uri=uri,
            experiment=cfg.tracking.experiment,
            runs_dir=rdir,
            max_table_rows=cfg.tracking.max_table_rows,
        )
        record.save()
    return record, results


def _close(mod: Moderator) -> None:
    mod.close()


def _explain_pass(
    spec: ModeratorSpec,
    mod: Moderator,
    results: list[SuiteResult],
    record: RunRecord,
    cache: Any,
    console: Console | None,
) -> None:
    """Rationales for the judge's disagreements with gold and with the other moderators
    (``explain:``); written into its results, prediction files and record entries."""
    from audit.analysis.explain import explain_disagreements
    from audit.engine.results import predictions_frame

    assert spec.explain is not None
    for res in [r for r in results if r.spec.name == spec.name]:
        others = [r for r in results if r.suite.name == res.suite.name and r is not res]
        t0 = time.perf_counter()
        summary = explain_disagreements(res, others, mod, spec.explain, cache=cache)
        res.timings["explain_s"] = time.perf_counter() - t0
        pq = record.dir / "predictions" / f"{res.key}.parquet"
        predictions_frame(res).to_parquet(pq, index=False)
        for entry in record.data["results"]:
            if entry["key"] == res.key:
                entry["explained"] = summary
                entry["timings"] = res.timings
        record.save()
        if console is not None and summary["requested"]:
            console.print(
                f"{res.suite.name} × {spec.name}: {summary['written']} rationale(s) for "
                f"{summary['requested']} disagreement(s) ({res.timings['explain_s']:.1f}s)"
            )


def _result_entry(res: SuiteResult, sr: Any, pq: Path, run_dir: Path) -> dict[str, Any]:
    return {
        "suite": res.suite.name,
        "split": res.suite.split,
        "moderator": res.spec.name,
        "key": res.key,
        "n": res.n,
        "n_errors": res.n_errors,
        "error_types": sr.error_types,
        "n_cached": int(sr.cached.sum()),
        "batches": sr.batches,
        "predictions": str(pq.relative_to(run_dir)),
        "categories_scored": list(res.categories),
        "timings": res.timings,
        "metrics": res.metrics,
        "error_slices": res.error_slices,
        "sample": res.suite.source.get("sample"),
    }


class _progress:
    """Rich progress bar (stderr) as a context manager yielding ``advance(n)``."""

    def __init__(self, console: Console | None, label: str, total: int, enabled: bool) -> None:
        self.console, self.label, self.total = console, label, total
        self.enabled = enabled and console is not None
        self._p: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._p.start()
        task = self._p.add_task(self.label, total=self.total)
        return lambda n: self._p.advance(task, n)

    def __exit__(self, *exc: Any) -> None:
        if self._p is not None:
            self._p.stop()
