"""CLI: ``audit compare A B``, ``audit gate``, ``audit baseline update``.

Only click is imported at module level (``audit --help`` stays instant); statistics live
in :mod:`audit.release.compare` and :mod:`audit.release.gate` (docs/methods.md §3).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from audit.cli._console import console as _console

DEFAULT_SHOW = "f1,recall,fpr,auprc"


def _cell(d: Any, direction: str) -> str:
    import math

    if d is None or math.isnan(d.delta):
        return "[dim]n/a[/]"
    sign = -1.0 if direction == "lower" else 1.0
    lo, hi = sorted((sign * d.lo, sign * d.hi))
    style = "green" if lo > 0 else "red" if hi < 0 else ""
    from audit.report.numbers import fmt_interval

    txt = fmt_interval(d.delta, d.lo, d.hi, signed=True)
    return f"[{style}]{txt}[/]" if style else txt


def _print_compare(entries: list[dict[str, Any]], show: list[str], title: str) -> None:
    from rich.table import Table

    from audit.metrics import get_metric

    t = Table(title=title, show_lines=False)
    for col in ("suite", "moderator", "category", "n"):
        t.add_column(col)
    for m in show:
        arrow = {"higher": "↑", "lower": "↓"}.get(get_metric(m).direction, "")
        t.add_column(f"Δ {m}{arrow}", justify="right")
    t.add_column("McNemar p (rec/fpr)", justify="right")
    t.add_column("neg. flips", justify="right")
    for e in entries:
        mods = (
            e["moderator_a"]
            if e["moderator_a"] == e["moderator_b"]
            else f"{e['moderator_a']}→{e['moderator_b']}"
        )
        for cat, c in e["categories"].items():
            if c.n == 0:
                continue
            p = f"{c.mcnemar['recall'].p_value:.3g}/{c.mcnemar['fpr'].p_value:.3g}"
            nfr = (
                "n/a"
                if c.negative_flip_rate != c.negative_flip_rate
                else f"{c.negative_flip_rate:.2%}"
            )
            t.add_row(
                e["suite"],
                mods,
                cat,
                str(c.n),
                *[_cell(c.metrics.get(m), get_metric(m).direction) for m in show],
                p,
                nfr,
            )
    _console().print(t)
    _console().print(
        "Δ = B − A with paired-bootstrap interval; green/red: B better/worse (interval excludes 0)."
    )


def _log_compare(a: Any, b: Any, payload: dict[str, Any]) -> str | None:
    from audit._util.settings import runs_dir
    from audit.tracking.artifacts import log_comparison

    return log_comparison(
        payload,
        runs_dir(),
        run_a=a.run_id,
        run_b=b.run_id,
        parent_a=a.mlflow_parent,
        parent_b=b.mlflow_parent,
    )


@click.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--moderator-a", default=None, help="Moderator of A to pair (default: same names).")
@click.option("--moderator-b", default=None, help="Moderator of B to pair with it.")
@click.option("--allow-digest-mismatch", is_flag=True, help="Pair the items both suites share.")
@click.option(
    "--declared-diff",
    "declared_diffs",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="suite_diff.json of `audit suite diff A_VERSION B_VERSION --out DIR` (repeatable): "
    "compare a suite scored on two versions on the items both share unchanged.",
)
@click.option("--n-boot", default=1000, show_default=True, type=click.IntRange(0))
@click.option("--ci", default=0.95, show_default=True, type=click.FloatRange(0.5, 0.999))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--metrics", default=None, help="Comma-separated metrics (default: all).")
@click.option("--show", default=DEFAULT_SHOW, show_default=True, help="Metrics in the table.")
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-mlflow", is_flag=True, help="Do not log the comparison to MLflow.")
def compare(
    run_a: str,
    run_b: str,
    moderator_a: str | None,
    moderator_b: str | None,
    allow_digest_mismatch: bool,
    declared_diffs: tuple[Path, ...],
    n_boot: int,
    ci: float,
    seed: int,
    metrics: str | None,
    show: str,
    json_out: Path | None,
    no_mlflow: bool,
) -> None:
    """Paired comparison of RUN_B against RUN_A (run dirs, record.json paths or run ids)."""
    from audit.change.suite_diff import load_declared_diff
    from audit.metrics import METRICS
    from audit.release.compare import compare_sides, comparison_json, declared_note, load_side

    mlist = [m.strip() for m in metrics.split(",")] if metrics else None
    for i, m in enumerate(mlist or []):  # before loading anything: a typo is a usage error
        METRICS.get(m, where="--metrics", field=f"[{i}]")
    for i, m in enumerate(show.split(",")):
        if m:
            METRICS.get(m, where="--show", field=f"[{i}]")
    declared = [load_declared_diff(p) for p in declared_diffs]
    a, b = load_side(run_a), load_side(run_b)
    entries = compare_sides(
        a,
        b,
        moderator_a=moderator_a,
        moderator_b=moderator_b,
        allow_digest_mismatch=allow_digest_mismatch,
        declared_diffs=declared,
        metrics=mlist,
        n_boot=n_boot,
        ci=ci,
        seed=seed,
    )
    shown = [m for m in show.split(",") if m and (mlist is None or m in mlist)]
    _print_compare(entries, shown, f"B {b.run_id} vs A {a.run_id}")
    for e in entries:
        note = declared_note(e)
        if note:
            _console().print(note)
    payload = comparison_json(a, b, entries, n_boot=n_boot, ci=ci, seed=seed)
    if json_out:
        json_out.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        _console().print(f"json: {json_out}")
    if not no_mlflow:
        rid = _log_compare(a, b, payload)
        if rid:
            _console().print(f"mlflow run: {rid} (experiment audit-compare)")


def _checks_table(checks: list[Any], title: str) -> Any:
    from rich.table import Table

    t = Table(title=title)
    for col in ("rule", "suite", "category", "sev", "status", "value", "bound", "threshold",
                "n", "detail"):  # fmt: skip
        t.add_column(col)
    colour = {"pass": "green", "fail": "red", "uninformative": "yellow", "unverifiable": "magenta"}
    for c in checks:
        t.add_row(
            c.rule, c.suite, c.category, c.severity, f"[{colour[c.status]}]{c.status}[/]",
            *(f"{v:+.4f}" if v == v else "nan" for v in (c.value, c.bound, c.threshold)),
            str(c.n), c.detail,
        )  # fmt: skip
    return t


def _verdict_json(report: Any, word: str, code: int) -> dict[str, Any]:
    """``audit gate --json``: the verdict, what shaped it, and every check (NaN → null)."""
    rows = []
    for c in report.checks:
        r = c.model_dump()
        for k in ("value", "bound", "threshold"):
            r[k] = r[k] if r[k] == r[k] else None
        rows.append(r)
    return {
        "verdict": word,
        "exit_code": code,
        "declared_diffs": report.declared_diffs,
        "unreliable_gold": report.unreliable_gold,
        "notes": report.notes,
        "checks": rows,
    }


@click.command()
@click.option("--candidate", required=True, help="Run dir, record.json, run id or mlflow ref.")
@click.option(
    "--baseline", required=True, help="Run, snapshot JSON, mlflow:<id> or mlflow-tag:k=v."
)
@click.option(
    "--rules", "rules_path", required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--declared-diff",
    "declared_diffs",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="suite_diff.json of `audit suite diff BASELINE_VERSION CANDIDATE_VERSION --out DIR` "
    "(repeatable; added to the rules' suite_diffs).",
)
@click.option(
    "--agreement",
    "agreements",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="agreement.json of `audit agreement SUITE --out` (repeatable; added to the rules' "
    "gold_agreement): blocking checks on its unreliable-gold categories only warn.",
)
@click.option("--junit", default=None, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--markdown",
    "md_out",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the markdown summary here (e.g. for a pull-request comment).",
)
def gate(
    candidate: str,
    baseline: str,
    rules_path: Path,
    declared_diffs: tuple[Path, ...],
    agreements: tuple[Path, ...],
    junit: Path | None,
    json_out: Path | None,
    md_out: Path | None,
) -> None:
    """Release gate: exit 0 pass, 1 failed, 2 config error, 3 unverifiable."""
    import tempfile

    from audit.release.gate import (
        evaluate_gate,
        junit_xml,
        load_rules,
        markdown_summary,
        resolve_side,
        verdict,
    )

    rules = load_rules(rules_path)
    rules = rules.model_copy(
        update={
            "suite_diffs": [*rules.suite_diffs, *map(str, declared_diffs)],
            "gold_agreement": [*rules.gold_agreement, *map(str, agreements)],
        }
    )
    with tempfile.TemporaryDirectory() as td:
        base = resolve_side(baseline, Path(td) / "baseline")
        cand = resolve_side(candidate, Path(td) / "candidate")
        report = evaluate_gate(rules, cand, base)
    checks = report.checks
    code, word = verdict(checks)
    out = _console()
    out.print(_checks_table(checks, f"gate {rules_path.name}: candidate {cand.run_id} vs "
                            f"baseline {base.run_id}"))  # fmt: skip
    for note in report.notes:
        out.print(note, markup=False)
    out.print(f"[bold]{word}[/] (exit {code}): intersection–union over blocking checks")
    md = markdown_summary(checks, word, cand.run_id, base.run_id, notes=report.notes)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(md)
    if md_out:
        md_out.write_text(md, encoding="utf-8")
    if junit:
        junit.write_text(junit_xml(checks), encoding="utf-8")
    if json_out:
        json_out.write_text(json.dumps(_verdict_json(report, word, code), indent=2), "utf-8")
    raise SystemExit(code)


@click.group()
def baseline() -> None:
    """Committed baseline snapshots (configs/baselines/<name>.json)."""


@baseline.command(name="update")
@click.argument("run")
@click.option("--name", required=True, help="Snapshot name: configs/baselines/<name>.json.")
@click.option("--out-dir", default=None, type=click.Path(file_okay=False, path_type=Path))
def baseline_update(run: str, name: str, out_dir: Path | None) -> None:
    """Write a baseline snapshot of RUN (metrics, digests, per-item decisions)."""
    from audit._util.settings import baselines_dir
    from audit.release.gate import write_snapshot

    path = write_snapshot(run, name, out_dir or baselines_dir())
    _console().print(f"snapshot: {path} ({path.stat().st_size / 1e6:.2f} MB)")


COMMANDS = [compare, gate, baseline]
