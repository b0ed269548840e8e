"""``run_audit``: the one place where config, policy, suites, moderators, runner,
metrics, record and MLflow mirror are wired together.

Everything that can be validated is validated before the run directory exists,
so bad input never leaves a record behind.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from audit.errors import AuditError, ConfigError, RunError

if TYPE_CHECKING:
    from rich.console import Console

    from audit.config import ModeratorSpec, RunConfig
    from audit.engine.record import RecordFile
    from audit.engine.results import SuiteResult
    from audit.moderators.base import Moderator
    from audit.policy import Policy
    from audit.records import ResultEntry, RunStatus
    from audit.suites import LoadedSuite


@dataclass
class Prepared:
    """A fully validated run, before any scoring."""

    config: RunConfig
    config_path: Path
    """the config file, or ``<dict>`` / ``<RunConfig>`` for a config given in Python"""
    policy: Policy
    suites: list[LoadedSuite]
    skipped: list[dict[str, str]]
    moderators: list[tuple[ModeratorSpec, Moderator]]


def resolve_config(
    config: str | Path | Mapping[str, Any] | RunConfig, overrides: tuple[str, ...] = ()
) -> tuple[RunConfig, Path, Path]:
    """A run config from a YAML path, a dict or a :class:`RunConfig`, validated like a
    file (moderator params included), with ``--set`` style ``overrides`` applied.

    Returns:
        The config, the name it is recorded under (the file, or ``<dict>`` /
        ``<RunConfig>``) and the folder relative paths in it resolve against (the
        file's folder; the working directory for a config given in Python).
    """
    import copy

    from audit._util.validation import parse_model
    from audit.config import RunConfig, apply_override, load_config
    from audit.moderators.checks import check_moderator_params as validate_moderator_params

    if isinstance(config, (str, Path)):
        path = Path(config)
        cfg = load_config(path, overrides)
        validate_moderator_params(cfg, str(path) + (" (with --set overrides)" if overrides else ""))
        return cfg, path, path.parent
    if isinstance(config, RunConfig):
        if not overrides:
            validate_moderator_params(config, "<RunConfig>")
            return config, Path("<RunConfig>"), Path.cwd()
        data = config.model_dump(mode="json")
        label = "<RunConfig>"
    elif isinstance(config, Mapping):
        data = copy.deepcopy(dict(config))
        label = "<dict>"
    else:
        raise ConfigError(
            "a run config must be a path, a dict or a RunConfig",
            where="audit.run",
            field="config",
            expected="str | Path | dict | RunConfig",
            actual=type(config).__name__,
        )
    for o in overrides:
        apply_override(data, o)
    where = label + (" (with overrides)" if overrides else "")
    cfg = parse_model(RunConfig, data, where)
    validate_moderator_params(cfg, where)
    return cfg, Path(label), Path.cwd()


def prepare(
    config_path: str | Path | Mapping[str, Any] | RunConfig,
    overrides: tuple[str, ...] = (),
    *,
    console: Console | None = None,
    fit_heads: bool = True,
) -> Prepared:
    """Validate config, policy, suites and moderator specs; build moderators.

    ``config_path`` is a YAML path, a dict or a :class:`RunConfig` (:func:`resolve_config`).
    With ``fit_heads=False`` (``audit validate``) an ``embedding_head`` whose head is
    missing but has ``fit:`` is validated without training it and not built. Hub
    libraries run offline meanwhile (:func:`audit._util.settings.scoped_env`).
    """
    from audit._util.settings import scoped_env

    with scoped_env():
        return _prepare(config_path, overrides, console, fit_heads)


def _prepare(
    config_path: str | Path | Mapping[str, Any] | RunConfig,
    overrides: tuple[str, ...],
    console: Console | None,
    fit_heads: bool,
) -> Prepared:
    from audit.config import check_against_policy
    from audit.moderators import MODERATORS
    from audit.policy import load_policy
    from audit.suites import SuiteDataMissing, load_suite

    cfg, path, base = resolve_config(config_path, overrides)
    policy = load_policy(cfg.policy, base=base)
    check_against_policy(cfg, policy.category_ids, str(path))
    _check_metric_names(cfg, str(path))
    if cfg.output_dir:
        usable_dir(Path(cfg.output_dir), where=str(path), field="output_dir", create=False)
    if cfg.runner.cache_dir:
        usable_dir(
            Path(cfg.runner.cache_dir), where=str(path), field="runner.cache_dir", create=False
        )
    suites: list[LoadedSuite] = []
    skipped: list[dict[str, str]] = []
    seen_cards: dict[tuple[Path, str], int] = {}
    for i, ref in enumerate(cfg.suites):
        try:
            suites.append(load_suite(ref.name, policy, split=ref.split, limit=ref.limit))
            key = (suites[-1].card_path.resolve(), suites[-1].split)
            if key in seen_cards:
                raise ConfigError(
                    "the same suite split is listed twice",
                    where=str(path),
                    field=f"suites[{i}]",
                    expected="each suite card and split once",
                    actual=f"{ref.name!r} is suites[{seen_cards[key]}] again ({key[0]})",
                    fix="remove one of the two entries",
                )
            seen_cards[key] = i
            if console is not None:
                for w in suites[-1].warnings:
                    console.print(f"[yellow]warning[/] suite {ref.name}:{ref.split}: {w}")
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
        if needs_fit(params) and not fit_heads:
            continue
        if needs_fit(params):
            fit_missing_head(params, policy, console)
        try:
            with _status(console, f"loading moderator {spec.name} ({spec.type})"):
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


def needs_fit(params: Any) -> bool:
    fit, head = getattr(params, "fit", None), getattr(params, "head", None)
    return fit is not None and head is not None and not (Path(head) / "head.json").exists()


def fit_missing_head(params: Any, policy: Policy, console: Console | None) -> None:
    """An ``embedding_head`` with ``fit:`` and no head on disk is trained first."""
    from audit.moderators.classifiers.heads import train_head_on_suite

    fit, head = params.fit, params.head

    what = f"training the missing head {head} on {fit.suite}:{fit.split} (once)"
    t0 = time.perf_counter()
    with _status(console, what) as say:
        train_head_on_suite(
            fit.suite,
            fit.split,
            Path(head),
            policy_ref=policy.ref,
            encoder=params.encoder,
            C=fit.C,
            min_positives=fit.min_positives,
            seed=fit.seed,
            status=lambda msg: say(f"{what}: {msg}"),
        )
    if console is not None:
        console.print(f"trained the head {head} ({time.perf_counter() - t0:.0f} s)")


@contextlib.contextmanager
def _status(console: Console | None, text: str) -> Iterator[Callable[[str], None]]:
    """A live spinner line on ``console`` (nothing without one) for a slow step that
    has no item count (model loading, head training); yields a function that replaces
    the line's text. Transient: the line is gone when the step ends."""
    if console is None:
        yield lambda _msg: None
        return
    with console.status(text) as st:
        yield lambda msg: st.update(msg)


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


def _run_audit(
    config_path: str | Path | Mapping[str, Any] | RunConfig,
    overrides: tuple[str, ...],
    console: Console | None,
    mlflow: bool,
    runs_dir: Path,
    tracking_uri: str | None,
) -> tuple[RecordFile, list[SuiteResult]]:
    from audit._util.settings import repo_root
    from audit.engine.cache import PredictionCache, fingerprint_hash
    from audit.engine.record import RecordFile, make_run_id, provenance, reap_interrupted
    from audit.engine.results import build_result, compute_result_metrics, predictions_frame
    from audit.engine.runner import score_items
    from audit.report.markdown import write_report
    from audit.suites.loader import suite_items

    prep = prepare(config_path, overrides, console=console)
    cfg, policy = prep.config, prep.policy
    rdir = Path(cfg.output_dir).resolve() if cfg.output_dir else runs_dir
    usable_dir(rdir, where=str(prep.config_path), field="output_dir", create=True)
    # the cache folder too, before a run directory exists: a bad one leaves nothing behind
    cache_dir = Path(cfg.runner.cache_dir) if cfg.runner.cache_dir else rdir / "cache"
    if cfg.runner.cache:
        usable_dir(cache_dir, where=str(prep.config_path), field="runner.cache_dir", create=True)
    if not (mlflow and cfg.tracking.enabled):
        tracking_uri = None
    else:
        # Fail fast, before anything is scored: an unreachable server, a half-migrated
        # store or a lock held too long is a one-line error in seconds (store.py).
        from audit.tracking.store import default_tracking_uri, open_experiment

        tracking_uri = tracking_uri or cfg.tracking.uri or default_tracking_uri(rdir)
        open_experiment(tracking_uri, cfg.tracking.experiment, rdir)
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
        "skipped": prep.skipped,
    }
    record = RecordFile.create(rdir, make_run_id(cfg.name, cfg.config_hash()), header)
    (record.dir / "config.yaml").write_text(
        yaml.safe_dump(header["config"], sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    cache = None
    if cfg.runner.cache:
        cache = PredictionCache(
            cache_dir / "predictions.sqlite", restricted_categories=policy.restricted_ids
        )
        # gold is known before scoring: those items' raw text never enters the cache
        cache.withhold(_gold_restricted(prep.suites, policy))
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
                    if cfg.runner.engine == "ray":
                        # actors rebuild the moderator from the same spec; the driver
                        # keeps the cache, the error budget and the output order
                        from audit.engine import ray_runner

                        sr = ray_runner.score_items(
                            ray_runner.ModeratorFactory(spec.type, dict(spec.params), policy),
                            fp,
                            items,
                            batch_size=spec.batch_size,
                            cache=cache,
                            error_budget=cfg.runner.error_budget,
                            where=label,
                            progress=advance,
                            address=cfg.runner.ray_address,
                        )
                    else:
                        sr = score_items(
                            functools.partial(_same, mod),
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
                record.add_result(_result_entry(res, sr, pq, record.dir))
            if spec.explain is None:
                _close(mod)
        # one run-wide set, after every moderator scored: an item any moderator (or
        # gold) puts in a restricted category is withheld by all writers, and no
        # judge is asked to explain it
        _redact(results, policy, record, cache)
        explained = False
        for spec, mod in prep.moderators:
            if spec.explain is not None:
                _explain_pass(spec, mod, results, record, cache, console)
                _close(mod)
                explained = True
        if explained:  # a post-hoc rationale can name a restricted category
            _redact(results, policy, record, cache)
    except BaseException as exc:
        msg = exc.render() if isinstance(exc, AuditError) else f"{type(exc).__name__}: {exc}"
        # the prediction files of the pairs that did finish stay readable (audit report,
        # audit disagreements): give them the run-wide restricted set too. Best effort
        # only: a second failure here must not hide the one being reported.
        with contextlib.suppress(Exception):
            _redact(results, policy, record, cache)
        status: RunStatus = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        record.finish(status, msg)
        raise
    finally:
        if cache is not None:
            cache.close()
    record.finish("finished")
    write_report(record, results)
    from audit.report.html import write_html_report

    write_html_report(record.dir, mlflow=False)
    if tracking_uri is not None:
        from audit.errors import TrackingError
        from audit.tracking.mirroring import mirror

        try:
            ref = mirror(
                record,
                results,
                uri=tracking_uri,
                experiment=cfg.tracking.experiment,
                runs_dir=rdir,
                max_table_rows=cfg.tracking.max_table_rows,
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
    return record, results


def _gold_restricted(suites: list[LoadedSuite], policy: Policy) -> set[str]:
    """Content hashes of items gold marks positive in a restricted category."""
    from audit.schema import POSITIVE

    out: set[str] = set()
    for s in suites:
        ks = [k for k, c in enumerate(s.categories) if c in policy.restricted_ids]
        if ks:
            hashes = s.dataset["content_hash"]
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


def _check_metric_names(cfg: RunConfig, where: str) -> None:
    """Every name in ``metrics.names`` is a registered metric (did-you-mean otherwise)."""
    from audit.metrics import get_metric

    for i, name in enumerate(cfg.metrics.names or ()):
        try:
            get_metric(name)
        except AuditError as exc:
            raise ConfigError(
                exc.message,
                where=where,
                field=f"metrics.names[{i}]",
                expected=exc.expected or "a registered metric (audit list metrics)",
                actual=repr(name),
                fix=exc.fix or "see 'audit list metrics'",
            ) from None


def usable_dir(path: Path, *, where: str, field: str, create: bool) -> Path:
    """``path`` as a directory the run can write to, or a ConfigError before any work.

    A file, a special path (``/dev/null``), a folder under a file, or one that cannot
    be created or written is refused with the config field that named it; nothing is
    left behind. With ``create`` the directory is made (the run's own folder).
    """
    p = path.expanduser()
    problem = None
    if p.exists() and not p.is_dir():
        problem = "a file" if p.is_file() else "a special file"
    else:
        probe = p
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            problem = f"under {probe}, which is not a directory"
        elif not os.access(probe, os.W_OK | os.X_OK):
            problem = f"not writable ({probe})"
    if problem is None and create:
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = f"cannot be created ({exc.strerror or exc})"
    if problem is not None:
        raise ConfigError(
            "not a usable directory",
            where=where,
            field=field,
            expected="a writable directory (created if missing)",
            actual=f"{str(p)[:200]}: {problem}",
            fix=f"point {field} at a folder you can write to",
        )
    return p
