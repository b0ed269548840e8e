"""Analysis commands: ``audit rca | thresholds | disagreements`` (see :mod:`audit.analysis`).

Only click is imported at top level so ``audit --help`` stays instant.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from audit.cli._console import console as _console


def _fmt(v: Any, lo: Any = None, hi: Any = None) -> str:
    """The common ``point (low–high)`` format (:mod:`audit.report.numbers`)."""
    from audit.report.numbers import fmt_interval

    return fmt_interval(v, lo, hi)


@click.command()
@click.argument("run")
@click.option("--suite", default=None, help="Only this suite.")
@click.option("--moderator", default=None, help="Only this moderator.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--top", default=10, show_default=True, help="Rows shown per category.")
@click.option("--conf", default=0.95, show_default=True, help="Interval confidence level.")
@click.option("--bootstrap", default=200, show_default=True, help="Resamples for F1 intervals.")
def rca(
    run: str,
    suite: str | None,
    moderator: str | None,
    json_out: Path | None,
    top: int,
    conf: float,
    bootstrap: int,
) -> None:
    """Root-cause analysis: metrics per slice value, ranked by error contribution,
    with Benjamini–Hochberg q-values for "error rate worse than outside the slice"."""
    from rich.table import Table

    from audit._util.jsonutil import jsonable
    from audit.analysis import load_record
    from audit.analysis.slices import rca as run_rca

    record = load_record(run)
    results = run_rca(record, suite=suite, moderator=moderator, conf=conf, n_boot=bootstrap)
    out = _console()
    for r in results:
        t = r["table"]
        if t.empty:
            out.print(f"{r['suite']} × {r['moderator']}: no slice with two or more values")
            continue
        for cat, g in t.groupby("category", sort=False):
            tab = Table(title=f"{r['suite']} × {r['moderator']} · {cat} (top {top} by errors)")
            for h in ("slice", "value", "n", "n_pos", "precision", "recall", "FPR", "F1"):
                tab.add_column(h)
            for h in ("err share", "q", "note"):
                tab.add_column(h)
            for x in g.head(top).itertuples():
                tab.add_row(
                    x.slice,
                    str(x.value)[:40],
                    str(x.n),
                    str(x.n_pos),
                    _fmt(x.precision, x.precision_lo, x.precision_hi),
                    _fmt(x.recall, x.recall_lo, x.recall_hi),
                    _fmt(x.fpr, x.fpr_lo, x.fpr_hi),
                    _fmt(x.f1, x.f1_lo, x.f1_hi),
                    _fmt(x.error_contribution),
                    "—" if math.isnan(x.q_value) else f"{x.q_value:.2g}",
                    "worse" if x.q_value < 0.05 else "",
                )
            out.print(tab)
    if json_out is not None:
        payload = {
            "run_id": record.run_id,
            "conf": conf,
            "results": [
                {
                    "suite": r["suite"],
                    "moderator": r["moderator"],
                    "rows": r["table"].to_dict(orient="records"),
                }
                for r in results
            ],
        }
        json_out.write_text(json.dumps(jsonable(payload), indent=2), encoding="utf-8")
        out.print(f"json: {json_out}")


def _prevalences(values: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for v in values:
        k, sep, x = v.partition("=")
        try:
            p = float(x)
        except ValueError:
            p = -1.0
        if not sep or not k or not 0 < p < 1:
            raise click.BadParameter(f"{v!r}: expected CATEGORY=P with 0 < P < 1")
        out[k] = p
    return out


@click.command()
@click.argument("run")
@click.option("--target-precision", default=0.9, show_default=True, type=float)
@click.option(
    "--prevalence",
    multiple=True,
    metavar="CAT=P",
    help="Production prevalence for the re-projection, e.g. hate=0.002 (or default=P).",
)
@click.option("--alpha", default=0.05, show_default=True, type=float)
@click.option("--suite", default=None)
@click.option("--moderator", default=None)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="YAML fragment.")
def thresholds(
    run: str,
    target_precision: float,
    prevalence: tuple[str, ...],
    alpha: float,
    suite: str | None,
    moderator: str | None,
    out: Path | None,
) -> None:
    """Operating points: per category the lowest threshold whose Wilson lower bound
    on precision meets the target (fixed-sequence scan), recall there, and precision
    re-projected to production prevalence; --out writes a moderator `thresholds:` map."""
    from rich.table import Table

    from audit.analysis import load_predictions, load_record, select_results
    from audit.analysis.thresholds import fit_thresholds, thresholds_yaml
    from audit.errors import ConfigError

    prev = _prevalences(prevalence)
    record = load_record(run)
    res = select_results(record, suite=suite, moderator=moderator)
    if len(res) != 1:
        raise ConfigError(
            "thresholds are fit on one suite × moderator result",
            where=str(record.path),
            field="--suite/--moderator",
            expected="filters that pick one of: "
            + ", ".join(f"{r.suite} × {r.moderator}" for r in res),
            actual=f"{len(res)} results",
        )
    entry = res[0]
    points = fit_thresholds(
        load_predictions(record, entry), target=target_precision, alpha=alpha, prevalence=prev
    )
    con = _console()
    tab = Table(
        title=f"{entry.suite} × {entry.moderator}: precision ≥ {target_precision} "
        f"at the {1 - alpha:.0%} lower bound"
    )
    for h in ("category", "threshold", "precision (lower)", "recall", "n", "prec@π", "note"):
        tab.add_column(h)
    for p in points:
        pp = "—"
        if p.prevalence is not None:
            pp = f"{_fmt(p.precision_at_prevalence)} (≥{_fmt(p.precision_at_prevalence_conservative)}) @ {p.prevalence:g}"
        tab.add_row(
            p.category,
            _fmt(p.threshold),
            "—" if p.precision is None else f"{_fmt(p.precision)} (≥{_fmt(p.precision_lower)})",
            _fmt(p.recall, p.recall_lo, p.recall_hi),
            str(p.n),
            pp,
            p.reason or "",
        )
    con.print(tab)
    click.echo(
        "warning: thresholds fit on a test split are optimistic; validate them on another split",
        err=True,
    )
    if out is not None:
        spec = record.record.moderators.get(entry.moderator)
        default = spec.thresholds.get("default", 0.5) if spec else 0.5
        out.write_text(
            thresholds_yaml(
                points,
                default=default,
                run_id=record.run_id,
                suite=entry.suite,
                split=entry.split,
                moderator=entry.moderator,
            ),
            encoding="utf-8",
        )
        con.print(f"thresholds: {out}")


@click.command()
@click.argument("run")
@click.option("--with", "with_run", default=None, help="Take moderator B from this run.")
@click.option("--suite", default=None)
@click.option("--moderator", default=None, help="Moderator A.")
@click.option("--other", default=None, help="Moderator B.")
@click.option("--export-dir", type=click.Path(file_okay=False, path_type=Path))
def disagreements(
    run: str,
    with_run: str | None,
    suite: str | None,
    moderator: str | None,
    other: str | None,
    export_dir: Path | None,
) -> None:
    """Decision A × decision B × gold matrix per category and FP/FN tables; with
    --export-dir a review queue (Label Studio JSONL + CSV), restricted items as ids only."""
    from rich.table import Table

    from audit.analysis import disagreements as d
    from audit.analysis import load_record
    from audit.policy import load_policy

    record = load_record(run)
    rb = load_record(with_run) if with_run else None
    a, b, m = d.pair(record, other=rb, suite=suite, moderators=(moderator, other))
    names = (a.moderator, b.moderator)
    if names[0] == names[1]:
        names = (f"A:{names[0]}", f"B:{names[1]}")
    cats = d.common_categories(m)
    matrix = d.decision_matrix(m, cats)
    con = _console()
    tab = Table(title=f"{a.suite}: {names[0]} (a) × {names[1]} (b) × gold")
    for h in ("category", "a", "b", "gold", "count"):
        tab.add_column(h)
    for x in matrix.itertuples():
        tab.add_row(x.category, x.a, x.b, x.gold, str(x.count))
    con.print(tab)
    restricted = d.restricted_mask(m, load_policy(record.record.policy.ref).restricted_ids)
    if export_dir is None:
        errs = d.error_table(m, names, {}, restricted, cats)
        if not errs.empty:
            con.print(errs.groupby(["moderator", "category", "error"]).size().to_string())
        return
    hashes = dict(zip(m["id"], m["content_hash"]))
    fields = d.suite_fields(record, a.suite, a.split, hashes)
    texts = {k: "\n".join(v.values()) for k, v in fields.items()}
    errs = d.error_table(m, names, texts, restricted, cats)
    tasks = d.review_queue(m, names, fields, restricted, suite=a.suite, categories=cats)
    jl, cv = d.export_review_queue(tasks, export_dir)
    matrix.to_csv(export_dir / "matrix.csv", index=False)
    errs.to_csv(export_dir / "fp_fn.csv", index=False)
    con.print(f"review queue: {jl} ({len(tasks)} tasks, {int(restricted.sum())} restricted)")
    con.print(f"              {cv}")
    con.print(f"fp/fn table:  {export_dir / 'fp_fn.csv'} ({len(errs)} rows)")


COMMANDS = [rca, thresholds, disagreements]
