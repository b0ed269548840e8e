"""The Python API: run an audit, load a past run, compare two runs, gate a release.

These are the functions ``import audit`` exposes (``audit.run``, ``audit.load_run``,
``audit.compare``, ``audit.gate``); the ``audit`` CLI calls the same code paths. They sit
in the top layer beside the CLI: they wire the pipeline and the release package, and
return typed values (:class:`RunResult`, :class:`~audit.records.RunRecord`,
:class:`~audit.records.Verdict`) instead of nested dicts.

No function here changes the process environment: runs go through
:func:`audit._util.settings.scoped_env`, and the runs folder and tracking store are
arguments, resolved once at this boundary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.errors import ConfigError
from audit.records import ResultEntry, RunRecord, Verdict

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from audit.config import RunConfig
    from audit.release.gate import GateRules

#: Columns of :attr:`RunResult.metrics`, in order.
METRIC_COLUMNS = ("suite", "moderator", "category", "metric", "value", "ci_low", "ci_high", "n")


@dataclass(frozen=True)
class RunResult:
    """A finished (or failed) run: its typed record and the files beside it.

    Attributes:
        record: the run record (``record.json``) as a frozen model.
        run_dir: the run folder (``runs/<run_id>/``).
    """

    record: RunRecord
    run_dir: Path
    _frames: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def metrics(self) -> pd.DataFrame:
        """Every metric of every result, one row each (long format).

        Columns :data:`METRIC_COLUMNS`: ``suite``, ``moderator``, ``category``
        (``overall`` for any-violation), ``metric``, ``value``, ``ci_low``, ``ci_high``
        (NaN where undefined or without an interval) and ``n``. Row order follows the
        record (results, then categories, then metrics).
        """
        if "metrics" not in self._frames:
            self._frames["metrics"] = metrics_frame(self.record.results)
        frame: pd.DataFrame = self._frames["metrics"].copy()
        return frame

    def result(self, suite: str, moderator: str) -> ResultEntry:
        """The record entry of ``suite`` × ``moderator`` (``KeyError`` naming what exists)."""
        return self.record.result(suite, moderator)

    def predictions(self, suite: str, moderator: str) -> pd.DataFrame:
        """Per-item predictions of ``suite`` × ``moderator`` from the run's Parquet file:
        ids, content hashes, ``score.<cat>`` / ``pred.<cat>`` / ``gold.<cat>``, errors,
        slices (no item text)."""
        import pandas as pd

        entry = self.record.result(suite, moderator)
        path = self.run_dir / entry.predictions
        if not path.exists():
            raise ConfigError(
                "the run's predictions file is missing",
                where=str(path),
                expected=f"the Parquet file written for {suite} × {moderator}",
                actual="no such file",
                fix="rerun the audit, or load the run from the folder that holds it",
            )
        return pd.read_parquet(path)


def metrics_frame(results: Sequence[ResultEntry]) -> pd.DataFrame:
    """The long metrics table of :attr:`RunResult.metrics` for ``results``."""
    import numpy as np
    import pandas as pd

    rows = [
        (r.suite, r.moderator, cat, name, mv.estimate, mv.ci_low, mv.ci_high, mv.n)
        for r in results
        for cat, per in r.metrics.items()
        for name, mv in per.items()
    ]
    frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    for col in ("value", "ci_low", "ci_high"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(np.float64)
    frame["n"] = frame["n"].astype(np.int64)
    return frame


def load_config(config: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> RunConfig:
    """A run config from a YAML path or a dict, validated exactly as ``audit run``
    validates it (each moderator's ``params`` against its adapter included).

    Raises:
        ConfigError / ModeratorError: the first problem, naming file and field.
    """
    from audit.engine.prepare import resolve_config

    cfg, _, _ = resolve_config(config, tuple(overrides))
    return cfg


def run(
    config: str | Path | Mapping[str, Any] | RunConfig,
    *,
    overrides: Sequence[str] = (),
    runs_dir: str | Path | None = None,
    mlflow: bool = True,
    tracking_uri: str | None = None,
    console: Console | None = None,
) -> RunResult:
    """Run an audit: score every suite with every moderator, write the run folder.

    Args:
        config: a YAML path, a dict with the same keys, or a :class:`~audit.config.RunConfig`.
            Relative paths in a dict or model resolve against the working directory.
        overrides: ``key=value`` assignments applied first (like ``audit run --set``).
        runs_dir: where the run folder goes unless the config sets ``output_dir``
            (default ``$AUDIT_RUNS_DIR``, else ``./runs``).
        mlflow: mirror the run to MLflow when the config's ``tracking.enabled`` is on.
        tracking_uri: MLflow store (default the config's ``tracking.uri``, then
            ``MLFLOW_TRACKING_URI``, then ``sqlite:///<runs_dir>/mlflow.db``).
        console: a ``rich`` console for progress and notices (default: silent).

    Returns:
        The finished run. A run that fails raises (:class:`~audit.errors.RunError` and
        friends) after closing its record as ``failed``.
    """
    from audit.engine.pipeline import run_audit

    record, _ = run_audit(
        config,
        tuple(overrides),
        console=console,
        mlflow=mlflow,
        runs_dir=Path(runs_dir).expanduser().resolve() if runs_dir is not None else None,
        tracking_uri=tracking_uri,
    )
    return RunResult(record.record, record.dir)


def load_run(path_or_id: str | Path, *, runs_dir: str | Path | None = None) -> RunResult:
    """A past run: its folder, its ``record.json``, or its run id under ``runs_dir``
    (default ``$AUDIT_RUNS_DIR``, else ``./runs``). Records of earlier versions are
    migrated on load."""
    from audit._util.settings import runs_dir as default_runs_dir
    from audit.engine.record import RecordFile

    root = Path(runs_dir).expanduser() if runs_dir is not None else default_runs_dir()
    p = Path(path_or_id).expanduser()
    for cand in (p, root / str(path_or_id)):
        rec = cand / "record.json" if cand.is_dir() else cand
        if rec.is_file():
            loaded = RecordFile.load(rec)
            return RunResult(loaded.record, loaded.dir)
    raise ConfigError(
        "run not found",
        where=str(path_or_id),
        expected=f"a run folder, a record.json path or a run id under {root}",
        actual="no such file",
        fix="pass the run folder printed by `audit run`, or set runs_dir=",
    )


def _side_ref(run: RunResult | str | Path) -> str:
    return str(run.run_dir) if isinstance(run, RunResult) else str(run)


def compare(
    a: RunResult | str | Path,
    b: RunResult | str | Path,
    *,
    moderator_a: str | None = None,
    moderator_b: str | None = None,
    metrics: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    allow_digest_mismatch: bool = False,
) -> dict[str, Any]:
    """Paired comparison of run ``b`` against run ``a`` (what ``audit compare --json``
    writes): per suite × moderator pair and category, bootstrap deltas with intervals,
    McNemar tests and the negative flip rate.

    ``a`` and ``b`` are :class:`RunResult` objects, run folders, ``record.json`` paths,
    run ids or baseline snapshot files.
    """
    from audit.release.compare import compare_sides, comparison_json, load_side

    side_a, side_b = load_side(_side_ref(a)), load_side(_side_ref(b))
    entries = compare_sides(
        side_a,
        side_b,
        moderator_a=moderator_a,
        moderator_b=moderator_b,
        allow_digest_mismatch=allow_digest_mismatch,
        metrics=list(metrics) if metrics is not None else None,
        n_boot=n_boot,
        ci=ci,
        seed=seed,
    )
    return comparison_json(side_a, side_b, entries, n_boot=n_boot, ci=ci, seed=seed)


def gate(
    candidate: RunResult | str | Path,
    baseline: RunResult | str | Path,
    rules: str | Path | GateRules,
) -> Verdict:
    """The release gate of ``candidate`` against ``baseline`` under ``rules`` (a rules
    YAML path or a :class:`~audit.release.gate.GateRules`): every check and the
    intersection–union verdict (``Verdict.exit_code`` is what ``audit gate`` exits with).

    ``baseline`` may also be a committed snapshot JSON (``configs/baselines/*.json``).
    """
    from audit.release.compare import load_side
    from audit.release.gate import GateRules, evaluate_gate, load_rules, verdict

    parsed = rules if isinstance(rules, GateRules) else load_rules(Path(rules))
    cand, base = load_side(_side_ref(candidate)), load_side(_side_ref(baseline))
    report = evaluate_gate(parsed, cand, base)
    code, word = verdict(report.checks)
    return Verdict.model_validate(
        {
            "candidate": cand.run_id,
            "baseline": base.run_id,
            "word": word,
            "exit_code": code,
            "checks": report.checks,
            "notes": report.notes,
        }
    )
