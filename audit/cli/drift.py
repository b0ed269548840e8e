"""``audit drift RUN_A RUN_B [RUN_C ...]`` and ``audit calibrate RUN``.

Only click is imported at top level so ``audit --help`` stays instant; the work lives in
:mod:`audit.monitoring` and :mod:`audit.calibration`.

``audit drift`` exit codes: 0 no alert (or alerts without ``--fail-on alert``), 1 an
ALERT with ``--fail-on alert``, 2 usage/config error (bad flags, a policy-version change
without ``--allow-policy-change``), 3 run error (unreadable predictions, bad scores).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click


def _fmt(v: float | None, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--suite", default=None, help="Only this suite.")
@click.option("--moderator", default=None, help="Only this moderator.")
@click.option("--bins", "n_bins", default=10, show_default=True, type=click.IntRange(2, 1000))
@click.option("--alpha", default=0.05, show_default=True, type=float, help="Test level.")
@click.option("--psi", "t_psi", default=0.25, show_default=True, type=float)
@click.option("--ks", "t_ks", default=0.1, show_default=True, type=float)
@click.option("--js", "t_js", default=0.1, show_default=True, type=float)
@click.option(
    "--rate",
    "t_rate",
    default=0.02,
    show_default=True,
    type=float,
    help="Absolute decision/label-rate change.",
)
@click.option(
    "--persistence",
    default=None,
    metavar="N/M",
    help="ALERT when N of the last M periods breach [default: 1/1 for two runs (one "
    "comparison), 2/3 for a longer series].",
)
@click.option("--correction", type=click.Choice(["bh", "none"]), default="bh", show_default=True)
@click.option(
    "--allow-policy-change",
    is_flag=True,
    help="Two runs only: compare across policy versions, with the break marked.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["alert", "never"]),
    default="never",
    show_default=True,
    help="'alert': exit 1 when any category is in ALERT.",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--mlflow/--no-mlflow",
    default=False,
    show_default=True,
    help="Log the series to MLflow (drift/{category}/{psi|ks|js}, step = period).",
)
@click.option("--experiment", default="audit-drift", show_default=True)
def drift(
    runs: tuple[str, ...],
    suite: str | None,
    moderator: str | None,
    n_bins: int,
    alpha: float,
    t_psi: float,
    t_ks: float,
    t_js: float,
    t_rate: float,
    persistence: str | None,
    correction: str,
    allow_policy_change: bool,
    fail_on: str,
    json_out: Path | None,
    mlflow: bool,
    experiment: str,
) -> None:
    """Score-distribution and decision-rate drift between golden-set runs.

    The first run is the reference; each later run is a period compared with it, per
    suite × moderator × category (PSI, KS D, JS distance, decision/label-rate change),
    with an OK / PENDING / ALERT state under the N-of-M rule. Exit: 0 ok, 1 ALERT with
    --fail-on alert, 2 usage/config, 3 run error.
    """

    from audit.analysis import load_record as load_run
    from audit.errors import UsageError

    if len(runs) < 2:
        raise UsageError(
            "drift needs a reference run and at least one more",
            where="audit drift",
            field="RUNS",
            expected="RUN_A RUN_B [...]",
            actual=f"{len(runs)} run(s)",
        )
    cfg = drift_config(
        "audit drift",
        len(runs),
        persistence,
        n_bins=n_bins,
        alpha=alpha,
        correction=correction,
        thresholds={
            "psi": t_psi,
            "ks": t_ks,
            "js": t_js,
            "decision_rate": t_rate,
            "label_rate": t_rate,
        },
    )
    records = [load_run(r) for r in runs]
    if allow_policy_change:
        results = _across_policy_change(records, cfg, suite, moderator)
        notes: list[str] = []
        series_items: list[Any] = []
    else:
        results, notes, series_items = _run_series(records, cfg, suite, moderator)
    emit_drift(
        results,
        notes,
        series_items,
        label={"runs": list(runs)},
        json_out=json_out,
        mlflow=mlflow,
        experiment=experiment,
        fail_on=fail_on,
    )


_Results = list[tuple[tuple[str, str, str], list[Any]]]
"""Per (suite, split, moderator): its drift reports, oldest period first."""


def _across_policy_change(
    records: list[Any], cfg: Any, suite: str | None, moderator: str | None
) -> _Results:
    """``--allow-policy-change``: the second run against the first, per shared result
    entry, with the policy break marked on each report (two runs only)."""
    from audit.analysis import select_results
    from audit.errors import UsageError
    from audit.monitoring import drift_report
    from audit.monitoring.runs import run_inputs

    if len(records) != 2:
        raise UsageError(
            "--allow-policy-change compares exactly two runs",
            where="audit drift",
            field="--allow-policy-change",
            expected="RUN_A RUN_B",
            actual=f"{len(records)} runs",
        )
    results: _Results = []
    for e in select_results(records[0], suite=suite, moderator=moderator):
        key = (e.suite, e.split, e.moderator)
        other = [x for x in records[1].record.results if (x.suite, x.split, x.moderator) == key]
        if other:
            rep = drift_report(
                run_inputs(records[0], e),
                run_inputs(records[1], other[0]),
                cfg,
                reference_label=records[0].run_id,
                current_label=records[1].run_id,
                allow_policy_change=True,
            )
            results.append((key, [rep]))
    return results


def _run_series(
    records: list[Any], cfg: Any, suite: str | None, moderator: str | None
) -> tuple[_Results, list[str], list[Any]]:
    """The runs as a drift series per suite × moderator: the reports, notes on policy
    breaks (an error for two runs: nothing could be compared) and the series to log."""
    from audit.monitoring.runs import runs_drift

    series, notes = runs_drift(records, cfg, suite=suite, moderator=moderator)
    for s in series:
        for p in s.series.periods:
            if p.policy_break:
                if len(records) == 2:
                    from audit.monitoring import PolicyBoundaryError

                    raise PolicyBoundaryError(
                        "the two runs were scored under different policy versions",
                        where=f"{records[0].run_id} → {records[1].run_id}",
                        field="policy",
                        expected=s.series.periods[0].policy_version,
                        actual=p.policy_version,
                        fix="compare runs under one policy version, or pass "
                        "--allow-policy-change to compare with the break marked",
                    )
                notes.append(
                    f"{s.suite}:{s.split} × {s.moderator}: policy version changed at "
                    f"{p.label} ({p.policy_version}); a new reference starts there and "
                    "nothing is compared across the break"
                )
    results: _Results = [
        (
            (s.suite, s.split or "", s.moderator),
            [p.report for p in s.series.periods if p.report is not None],
        )
        for s in series
    ]
    series_items = [(f"{s.suite}:{s.split} × {s.moderator}", s.series) for s in series]
    return results, notes, series_items


def drift_config(
    command: str,
    n_periods: int,
    persistence: str | None,
    *,
    n_bins: int,
    alpha: float,
    correction: str = "bh",
    thresholds: dict[str, float] | None = None,
) -> Any:
    """A :class:`~audit.monitoring.DriftConfig` from command options, or a UsageError.

    The default persistence is 1-of-1 for two periods (a two-run CI check must be able
    to alert) and 2-of-3 for longer series.
    """
    from pydantic import ValidationError

    from audit.errors import UsageError
    from audit.monitoring import DriftConfig, Thresholds

    persistence = persistence or ("1/1" if n_periods == 2 else "2/3")
    n_s, _, m_s = persistence.partition("/")
    try:
        return DriftConfig(
            n_bins=n_bins,
            alpha=alpha,
            correction=correction,  # type: ignore[arg-type]
            thresholds=Thresholds(**(thresholds or {})),
            persistence_n=int(n_s),
            persistence_m=int(m_s),
        )
    except (ValidationError, ValueError) as exc:
        raise UsageError(
            "invalid drift settings",
            where=command,
            field="--persistence/--alpha/thresholds",
            expected="N/M with 1 <= N <= M, 0 < alpha < 1, thresholds >= 0",
            actual=str(exc).splitlines()[0],
        ) from None


def emit_drift(
    results: list[tuple[tuple[str, str, str], list[Any]]],
    notes: list[str],
    series_items: list[Any],
    *,
    label: dict[str, Any],
    json_out: Path | None,
    mlflow: bool,
    experiment: str,
    fail_on: str | None,
) -> None:
    """Print one table per compared pair, write the JSON, log the series, exit 1 on an
    alert when asked (shared by ``audit drift`` and ``audit production drift``)."""
    from audit.cli._console import console as _console

    con = _console()
    alert = False
    payload: list[dict[str, Any]] = []
    for (su, sp, mo), reps in results:
        for rep in reps:
            alert |= rep.any_alert
            con.print(_drift_table(rep, su, sp, mo))
            for side, cats in (
                ("reference", rep.only_in_reference),
                ("current", rep.only_in_current),
            ):
                if cats:
                    con.print(f"only in the {side}: {', '.join(cats)} (not compared)")
            payload.append(
                {"suite": su, "split": sp, "moderator": mo, "report": json.loads(rep.to_json())}
            )
    for n in notes:
        con.print(f"[yellow]note[/]: {n}")
    if not results:
        con.print("[yellow]nothing compared[/]: no suite × moderator in common")
    if json_out is not None:
        json_out.write_text(
            json.dumps({**label, "results": payload, "notes": notes, "alert": alert}, indent=2),
            encoding="utf-8",
        )
        con.print(f"json: {json_out}")
    if mlflow and series_items:
        from audit._util.settings import runs_dir
        from audit.monitoring.tracking import log_series

        ids = log_series(series_items, runs_dir=runs_dir(), experiment=experiment)
        con.print(f"mlflow: {len(ids)} run(s) in experiment {experiment!r}")
    if alert and fail_on == "alert":
        raise SystemExit(1)


def _drift_table(rep: Any, su: str, sp: str, mo: str) -> Any:
    """One compared pair's per-category table (PSI, KS, JS, decision-rate change, state)."""
    from rich.table import Table

    brk = " (policy break: compared across versions)" if rep.policy_break else ""
    tab = Table(title=f"{su}:{sp} × {mo}: {rep.reference_label} → {rep.current_label}{brk}")
    for h in ("category", "n ref/cur", "PSI", "KS D", "JS", "decision Δ [CI]", "q", "state"):
        tab.add_column(h)
    for c in rep.categories:
        dr = c.decision_rate
        drs = (
            "–"
            if dr is None or dr.delta is None
            else (f"{dr.delta:+.3f} [{_fmt(dr.ci_low)}, {_fmt(dr.ci_high)}]")
        )
        style = {"ALERT": "bold red", "PENDING": "yellow", "OK": "green"}[c.state]
        tab.add_row(
            c.category,
            f"{c.n_reference}/{c.n_current}",
            _fmt(c.psi.value),
            _fmt(c.ks.value),
            _fmt(c.js.value),
            drs,
            "–" if c.q_value is None else f"{c.q_value:.2g}",
            f"[{style}]{c.state}[/]" + (f" ({','.join(c.triggered)})" if c.triggered else ""),
        )
    return tab


@click.command()
@click.argument("run")
@click.option("--method", type=click.Choice(["platt", "isotonic", "temperature"]), required=True)
@click.option("--suite", default=None)
@click.option("--moderator", default=None)
@click.option("--fit-split", default=None, help="Split to fit on (with --eval-split).")
@click.option("--eval-split", default=None, help="Split to evaluate on.")
@click.option("--seed", default=0, show_default=True, help="Seed of the hash half split.")
@click.option("--bootstrap", default=200, show_default=True, type=click.IntRange(0, 100_000))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Artifact path (.json; a .safetensors sibling is written).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def calibrate(
    run: str,
    method: str,
    suite: str | None,
    moderator: str | None,
    fit_split: str | None,
    eval_split: str | None,
    seed: int,
    bootstrap: int,
    out: Path,
    json_out: Path | None,
) -> None:
    """Fit per-category calibrators on one split, report ECE/Brier before → after on
    another, and write an artifact a moderator applies with `calibration: <path>`.
    Without --fit-split/--eval-split the run's items are split in two halves by a seeded
    hash of the item id. Re-derive thresholds afterwards with `audit thresholds`."""
    from audit.analysis import load_record as load_run
    from audit.calibration import calibrate_run, save_artifact
    from audit.cli._console import console as _console

    record = load_run(run)
    res = calibrate_run(
        record,
        method,  # type: ignore[arg-type]  # click.Choice guarantees a Method
        suite=suite,
        moderator=moderator,
        fit_split=fit_split,
        eval_split=eval_split,
        seed=seed,
        n_boot=bootstrap,
    )
    figures = _calibration_figures(res)
    con = _console()
    p = res.provenance
    con.print(_calibration_table(res, method))
    if not res.calibrators:
        from audit.errors import RunError

        raise RunError(
            "no category could be calibrated",
            where=str(record.path),
            field="categories",
            expected="fit items with both labels",
            actual="; ".join(f"{c.category}: {c.reason}" for c in res.categories) or "none",
        )
    jp, tp, digest = save_artifact(out, res.calibrators, provenance=p, figures=figures)
    con.print(f"artifact: {jp} (+ {tp.name}), sha256 {digest[:16]}…")
    con.print(
        f"apply with: --set moderators.{p['moderator']}.calibration={jp}; "
        "then re-derive thresholds with 'audit thresholds'"
    )
    if json_out is not None:
        payload = {
            "artifact": str(jp),
            "digest": digest,
            "method": method,
            "provenance": p,
            "categories": figures,
        }
        json_out.write_text(json.dumps(payload, indent=2), encoding="utf-8")


def _calibration_figures(res: Any) -> dict[str, dict[str, Any]]:
    """Per calibrated category: fit/eval sizes and ECE/Brier before and after (JSON)."""
    from dataclasses import asdict

    return {
        c.category: {
            "n_fit": c.n_fit,
            "n_fit_pos": c.n_fit_pos,
            "n_eval": c.n_eval,
            "n_eval_pos": c.n_eval_pos,
            "before": {k: asdict(v) for k, v in c.before.items()},
            "after": {k: asdict(v) for k, v in c.after.items()},
        }
        for c in res.categories
        if c.calibrator is not None
    }


def _calibration_table(res: Any, method: str) -> Any:
    """ECE and Brier before → after per category, with bootstrap intervals and notes."""
    from rich.table import Table

    p = res.provenance
    tab = Table(
        title=f"{p['suite']} × {p['moderator']}: {method}, fit {p['fit_split']}, "
        f"eval {p['eval_split']} (95% bootstrap CI)"
    )
    for h in (
        "category",
        "n fit (+)",
        "n eval (+)",
        "ECE before",
        "ECE after",
        "Brier before",
        "Brier after",
        "note",
    ):
        tab.add_column(h)

    def fig(d: dict[str, Any], k: str) -> str:
        f = d.get(k)
        return "–" if f is None else f"{_fmt(f.value)} ({_fmt(f.ci_low, 2)}–{_fmt(f.ci_high, 2)})"

    for c in res.categories:
        tab.add_row(
            c.category,
            f"{c.n_fit} ({c.n_fit_pos})",
            f"{c.n_eval} ({c.n_eval_pos})",
            fig(c.before, "ece"),
            fig(c.after, "ece"),
            fig(c.before, "brier"),
            fig(c.after, "brier"),
            c.reason or "",
        )
    return tab


COMMANDS = [drift, calibrate]
