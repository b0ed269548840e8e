"""``run_audit``: the one place where config, policy, suites, moderators, runner,
metrics, record and MLflow mirror are wired together.

Everything that can be validated is validated before the run directory exists,
so bad input never leaves a record behind.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from audit.errors import AuditError

if TYPE_CHECKING:
    from rich.console import Console

    from audit.config import ModeratorSpec, RunConfig
    from audit.engine.cache import PredictionCache
    from audit.engine.record import RecordFile
    from audit.engine.results import SuiteResult
    from audit.engine.runner import ScoreResult
    from audit.moderators.base import Moderator
    from audit.policy import Policy
    from audit.records import ResultEntry, RunStatus
    from audit.schema import Item
    from audit.suites import LoadedSuite


from audit.engine.prepare import Prepared, prepare, usable_dir


def run_audit(
    config_path: str | Path | Mapping[str, Any] | RunConfig,
    overrides: tuple[str, ...] = (),
    *,
    console: Console | None = None,
    mlflow: bool = True,
    runs_dir: Path | None = None,
    tracking_uri: str | None = None,
) -> tuple[RecordFile, list[SuiteResult]]:
    """Run an audit end to end; returns the closed record and the results.

    Args:
        config_path: a YAML path, a dict or a :class:`RunConfig`.
        overrides: ``key=value`` assignments applied to the config (``--set``).
        console: where progress and notices go (``None``: silent).
        mlflow: mirror the run to MLflow when the config's tracking is enabled.
        runs_dir: where the run folder goes unless the config sets ``output_dir``
            (default :func:`audit._util.settings.runs_dir`, resolved here once).
        tracking_uri: MLflow store; default the config's ``tracking.uri``, then
            ``MLFLOW_TRACKING_URI``, then ``sqlite:///<runs_dir>/mlflow.db``.

    The environment is changed only for the duration of the call (offline HF
    switches; see :func:`audit._util.settings.scoped_env`) and restored after.
    """
    from audit._util.settings import runs_dir as default_runs_dir
    from audit._util.settings import scoped_env

    rdir_default = runs_dir if runs_dir is not None else default_runs_dir()
    # Python warnings (scikit-learn's UndefinedMetricWarning on a slice without
    # positives, library deprecations) go into the record, not onto the terminal
    # between progress bars; the summary says how many there were in one line.
    with scoped_env(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record, results = _run_audit(
            config_path, overrides, console, mlflow, rdir_default, tracking_uri
        )
    record.update(warnings=summarise_warnings(caught))
    return record, results


def summarise_warnings(caught: list[warnings.WarningMessage]) -> list[dict[str, Any]]:
    """Caught warnings as record entries: one per (category, message, source line), with
    how often it was raised, in first-seen order."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for w in caught:
        src = f"{w.filename}:{w.lineno}"
        key = (w.category.__name__, str(w.message), src)
        entry = out.setdefault(key, {"category": key[0], "message": key[1], "source": src})
        entry["count"] = entry.get("count", 0) + 1
    return list(out.values())


@dataclass(frozen=True)
class _Run:
    """What every phase of one run shares once the record is open."""

    cfg: RunConfig
    policy: Policy
    record: RecordFile
    cache: PredictionCache | None
    console: Console | None
    fingerprints: dict[str, tuple[dict[str, Any], str]]
    """per moderator name: its fingerprint and the fingerprint's hash"""


def _run_audit(
    config_path: str | Path | Mapping[str, Any] | RunConfig,
    overrides: tuple[str, ...],
    console: Console | None,
    mlflow: bool,
    runs_dir: Path,
    tracking_uri: str | None,
) -> tuple[RecordFile, list[SuiteResult]]:
    """prepare → locate (folders, tracking store) → open the record → score and measure
    each moderator × suite → redact and explain → finish, report, mirror."""
    from audit.engine.record import reap_interrupted

    prep = prepare(config_path, overrides, console=console)
    rdir, cache_dir, tracking_uri = _locate(prep, runs_dir, mlflow, tracking_uri)
    reaped = reap_interrupted(rdir)
    if reaped and console is not None:
        console.print(f"[yellow]marked {len(reaped)} interrupted run(s)[/]: {', '.join(reaped)}")
    fps = _fingerprints(prep)
    record = _open_record(prep, overrides, rdir, fps)
    run = _Run(prep.config, prep.policy, record, _open_cache(prep, cache_dir), console, fps)
    results = _score_all(run, prep)
    record.finish("finished")
    _publish(run, results, rdir, tracking_uri)
    return record, results


def _locate(
    prep: Prepared, runs_dir: Path, mlflow: bool, tracking_uri: str | None
) -> tuple[Path, Path, str | None]:
    """The runs folder, the cache folder and the tracking URI (None: no mirror), each
    checked before a run directory exists: a bad one leaves nothing behind."""
    cfg = prep.config
    rdir = Path(cfg.output_dir).resolve() if cfg.output_dir else runs_dir
    usable_dir(rdir, where=str(prep.config_path), field="output_dir", create=True)
    cache_dir = Path(cfg.runner.cache_dir) if cfg.runner.cache_dir else rdir / "cache"
    if cfg.runner.cache:
        usable_dir(cache_dir, where=str(prep.config_path), field="runner.cache_dir", create=True)
    if not (mlflow and cfg.tracking.enabled):
        return rdir, cache_dir, None
    # Fail fast, before anything is scored: an unreachable server, a half-migrated
    # store or a lock held too long is a one-line error in seconds (store.py).
    from audit.tracking.store import default_tracking_uri, open_experiment

    tracking_uri = tracking_uri or cfg.tracking.uri or default_tracking_uri(rdir)
    open_experiment(tracking_uri, cfg.tracking.experiment, rdir)
    return rdir, cache_dir, tracking_uri


def _fingerprints(prep: Prepared) -> dict[str, tuple[dict[str, Any], str]]:
    from audit.engine.cache import fingerprint_hash

    fps = {}
    for spec, mod in prep.moderators:
        fp = {"type": spec.type, **mod.fingerprint()}
        fps[spec.name] = (fp, fingerprint_hash(fp))
    return fps


def _open_record(
    prep: Prepared,
    overrides: tuple[str, ...],
    rdir: Path,
    fps: dict[str, tuple[dict[str, Any], str]],
) -> RecordFile:
    """Create the run folder and its record header (config, provenance, policy, suites,
    moderators) and write the resolved config beside it."""
    from audit._util.settings import repo_root
    from audit.engine.record import RecordFile, make_run_id, provenance

    cfg, policy = prep.config, prep.policy
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
        "skipped": prep.skipped,
    }
    record = RecordFile.create(rdir, make_run_id(cfg.name, cfg.config_hash()), header)
    (record.dir / "config.yaml").write_text(
        yaml.safe_dump(header["config"], sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    return record


def _open_cache(prep: Prepared, cache_dir: Path) -> PredictionCache | None:
    if not prep.config.runner.cache:
        return None
    from audit.engine.cache import PredictionCache

    policy = prep.policy
    cache = PredictionCache(
        cache_dir / "predictions.sqlite", restricted_categories=policy.restricted_ids
    )
    # gold is known before scoring: those items' raw text never enters the cache
    cache.withhold(_gold_restricted(prep.suites, policy))
    return cache


def _score_all(run: _Run, prep: Prepared) -> list[SuiteResult]:
    """Every moderator × suite scored and measured, then the run-wide redaction and the
    explain passes. On any failure the record is closed as failed (or interrupted)."""
    results: list[SuiteResult] = []
    try:
        for spec, mod in prep.moderators:
            for full in prep.suites:
                if spec.suites is not None and full.name not in spec.suites:
                    continue
                results.append(_score_pair(run, spec, mod, full))
            if spec.explain is None:
                _close(mod)
        # one run-wide set, after every moderator scored: an item any moderator (or
        # gold) puts in a restricted category is withheld by all writers, and no
        # judge is asked to explain it
        _redact(results, run.policy, run.record, run.cache)
        explained = False
        for spec, mod in prep.moderators:
            if spec.explain is not None:
                _explain_pass(spec, mod, results, run.record, run.cache, run.console)
                _close(mod)
                explained = True
        if explained:  # a post-hoc rationale can name a restricted category
            _redact(results, run.policy, run.record, run.cache)
    except BaseException as exc:
        msg = exc.render() if isinstance(exc, AuditError) else f"{type(exc).__name__}: {exc}"
        # the prediction files of the pairs that did finish stay readable (audit report,
        # audit disagreements): give them the run-wide restricted set too. Best effort
        # only: a second failure here must not hide the one being reported.
        with contextlib.suppress(Exception):
            _redact(results, run.policy, run.record, run.cache)
        status: RunStatus = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        run.record.finish(status, msg)
        raise
    finally:
        if run.cache is not None:
            run.cache.close()
    return results


def _score_pair(run: _Run, spec: ModeratorSpec, mod: Moderator, full: LoadedSuite) -> SuiteResult:
    """One moderator on one suite (its sample, if the spec asks for one): scored, its
    metrics computed, its prediction file written and its record entry added."""
    from audit.engine.results import build_result, compute_result_metrics, predictions_frame
    from audit.suites import suite_items

    cfg = run.cfg
    fp, fph = run.fingerprints[spec.name]
    suite = (
        full.sample(spec.sample.n, seed=spec.sample.seed, stratify=spec.sample.stratify)
        if spec.sample is not None
        else full
    )
    items = suite_items(suite)
    label = f"{suite.name}:{suite.split} × {spec.name}"
    with _progress(run.console, label, len(items), cfg.runner.progress) as advance:
        sr = _score(run, spec, mod, fp, items, label, advance)
    t0 = time.perf_counter()
    res = build_result(
        suite,
        spec,
        run.policy,
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
    pq = run.record.dir / "predictions" / f"{res.key}.parquet"
    predictions_frame(res).to_parquet(pq, index=False)
    run.record.add_result(_result_entry(res, sr, pq, run.record.dir))
    return res


def _score(
    run: _Run,
    spec: ModeratorSpec,
    mod: Moderator,
    fp: dict[str, Any],
    items: list[Item],
    label: str,
    advance: Callable[[int], None],
) -> ScoreResult:
    """Score ``items`` on the configured engine (local loop, or Ray actors or tasks)."""
    cfg = run.cfg
    if cfg.runner.engine == "ray":
        # actors rebuild the moderator from the same spec; the driver
        # keeps the cache, the error budget and the output order
        from audit.engine import ray_runner

        return ray_runner.score_items(
            ray_runner.ModeratorFactory(spec.type, dict(spec.params), run.policy),
            fp,
            items,
            batch_size=spec.batch_size,
            cache=run.cache,
            error_budget=cfg.runner.error_budget,
            where=label,
            progress=advance,
            address=cfg.runner.ray_address,
            workers=ray_runner.resolve_workers(cfg.runner.ray_workers, mod.kind),
        )
    from audit.engine.runner import score_items

    return score_items(
        functools.partial(_same, mod),
        fp,
        items,
        batch_size=spec.batch_size,
        cache=run.cache,
        error_budget=cfg.runner.error_budget,
        where=label,
        progress=advance,
    )


def _publish(run: _Run, results: list[SuiteResult], rdir: Path, tracking_uri: str | None) -> None:
    """The finished run's Markdown and HTML reports, then its MLflow mirror."""
    from audit.report.html import write_html_report
    from audit.report.markdown import write_report

    record = run.record
    write_report(record, results)
    write_html_report(record.dir, mlflow=False)
    if tracking_uri is None:
        return
    from audit.errors import TrackingError
    from audit.tracking.mirroring import mirror

    try:
        ref = mirror(
            record,
            results,
            uri=tracking_uri,
            experiment=run.cfg.tracking.experiment,
            runs_dir=rdir,
            max_table_rows=run.cfg.tracking.max_table_rows,
        )
    except TrackingError as exc:
        # The scores and metrics are complete and stay "finished"; the record says
        # the mirror failed (README: "When MLflow is unreachable").
        record.update(
            mlflow={"status": "failed", "tracking_uri": tracking_uri, "error": exc.render()}
        )
        raise TrackingError(
            f"the run finished but was not mirrored to MLflow: {exc.message}",
            where=tracking_uri,
            expected="a reachable tracking store",
            actual="mirror failed",
            fix=f"the record is complete at {record.path}; rerun the same config once the "
            "store is back (every prediction is cached) or pass --no-mlflow",
        ) from None
    record.update(mlflow=ref)


def _gold_restricted(suites: list[LoadedSuite], policy: Policy) -> set[str]:
    """Content hashes of items gold marks positive in a restricted category."""
    from audit.schema import POSITIVE

    out: set[str] = set()
    for s in suites:
        ks = [k for k, c in enumerate(s.categories) if c in policy.restricted_ids]
        if ks:
            hashes = s.column("content_hash")
            out.update(hashes[i] for i in (s.labels[:, ks] == POSITIVE).any(axis=1).nonzero()[0])
    return out


def _redact(results: list[SuiteResult], policy: Policy, record: RecordFile, cache: Any) -> None:
    """Apply the run-wide :func:`audit.engine.results.restricted_ids` to every
    result, rewrite the prediction files whose ``restricted`` column changed, and
    scrub those items' raw text from the prediction cache."""
    import numpy as np

    from audit.engine.results import apply_restricted, predictions_frame, restricted_ids

    restricted = restricted_ids(results, policy)
    before = [None if r.restricted_mask is None else r.restricted_mask.copy() for r in results]
    apply_restricted(results, restricted)
    for res, old in zip(results, before):
        if old is None or not np.array_equal(old, np.asarray(res.restricted_mask)):
            pq = record.dir / "predictions" / f"{res.key}.parquet"
            predictions_frame(res).to_parquet(pq, index=False)
    if cache is not None and restricted:
        cache.scrub(restricted)


def _same(mod: Moderator) -> Moderator:
    """The moderator factory handed to the runner: the already-built moderator."""
    return mod


def _close(mod: Moderator) -> None:
    mod.close()


def _explain_pass(
    spec: ModeratorSpec,
    mod: Moderator,
    results: list[SuiteResult],
    record: RecordFile,
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
        entry = next(e for e in record.record.results if e.key == res.key)
        record.replace_result(
            entry.model_copy(update={"explained": summary, "timings": dict(res.timings)})
        )
        if console is not None and summary["requested"]:
            console.print(
                f"{res.suite.name} × {spec.name}: {summary['written']} rationale(s) for "
                f"{summary['requested']} disagreement(s) ({res.timings['explain_s']:.1f}s)"
            )


def _result_entry(res: SuiteResult, sr: Any, pq: Path, run_dir: Path) -> ResultEntry:
    """The record's typed entry for one result: metrics with their directions."""
    from audit.engine.record import metric_direction
    from audit.records import ErrorSlice, MetricValue, ResultEntry

    def mv(name: str, d: dict[str, Any]) -> MetricValue:
        return MetricValue.model_validate({**d, "direction": metric_direction(name)})

    metrics = {cat: {m: mv(m, d) for m, d in per.items()} for cat, per in res.metrics.items()}
    slices = [
        ErrorSlice.model_validate(
            {
                **row,
                "error_rate": mv("error_rate", row["error_rate"]),
                "parse_failure_rate": mv("parse_failure_rate", row["parse_failure_rate"]),
            }
        )
        for row in res.error_slices
    ]
    return ResultEntry(
        suite=res.suite.name,
        split=res.suite.split,
        moderator=res.spec.name,
        key=res.key,
        n=res.n,
        n_errors=res.n_errors,
        error_types=sr.error_types,
        n_cached=int(sr.cached.sum()),
        batches=sr.batches,
        predictions=str(pq.relative_to(run_dir)),
        categories_scored=tuple(res.categories),
        timings=dict(res.timings),
        engine=dict(sr.engine),
        metrics=metrics,
        error_slices=tuple(slices),
        sample=res.suite.source.get("sample"),
    )


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
