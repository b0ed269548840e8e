"""CLI: ``audit production demo-day | check | plan | sample | reference | estimate | demo-labels``.

Only click is imported at module level; the logic lives in :mod:`audit.production`
(docs/methods/production.md). The ``production`` group is exported so other
modules can attach more subcommands (``production.add_command``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click


def _console() -> Any:
    from audit.cli._console import console as c

    return c()


@click.group("production")
def production() -> None:
    """Audit what production enforcement did: plan, sample, label, estimate."""


@production.command("demo-day")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="output folder")
@click.option("--day", default="2026-11-30", show_default=True, help="the logs' date")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threshold", default=0.5, show_default=True, type=float, help="action threshold")
@click.option(
    "--source",
    "sources",
    multiple=True,
    help="suite names (default: public sets, else short_video_v1)",
)
@click.option("--limit-per-source", type=int, default=None)
def demo_day(
    out: Path,
    day: str,
    seed: int,
    threshold: float,
    sources: tuple[str, ...],
    limit_per_source: int | None,
) -> None:
    """Build a planted production day from real text (logs, card, hidden truth)."""
    from audit.production.demo import build_demo_day

    d = build_demo_day(
        out,
        day=day,
        seed=seed,
        threshold=threshold,
        sources=sources or None,
        limit_per_source=limit_per_source,
    )
    c = _console()
    c.print(
        f"demo day {day}: {d.n_rows:,} decisions from {', '.join(d.sources)} (threshold {d.threshold})"
    )
    c.print(f"logs card: {d.card}")
    c.print(f"hidden truth: {d.truth} (summary in {d.truth.with_suffix('.json')})")


@production.command("check")
@click.argument("card", type=click.Path(path_type=Path))
@click.option("--period", required=True, help="YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD")
@click.option("--pathway", default=None)
@click.option("--policy-version", default=None)
def check(card: Path, period: str, pathway: str | None, policy_version: str | None) -> None:
    """Validate one period of decision logs and print its counts and digest."""
    from audit.production.logs import DecisionLogs, Period

    logs = DecisionLogs.open(card)
    p = Period.parse(period)
    rep = logs.check(p, pathway, policy_version)
    c = _console()
    c.print(
        f"{rep.n_rows:,} decisions, {logs.count_items(p, pathway, policy_version):,} items, pathways {list(rep.pathways)}, "
        f"categories {list(rep.categories)}, policy {rep.policy_version}, "
        f"{rep.n_duplicates_dropped:,} duplicates dropped, {rep.n_views_zero:,} rows with 0 views"
    )
    c.print(f"digest: {logs.digest(p)}")


@production.command("drift")
@click.argument("card", type=click.Path(path_type=Path))
@click.option(
    "--periods",
    required=True,
    help="Comma-separated periods in time order; the first is the reference "
    "(e.g. 2026-11-29,2026-11-30).",
)
@click.option("--pathway", required=True, help="The enforcement pathway to monitor.")
@click.option("--bins", "n_bins", default=10, show_default=True, type=click.IntRange(2, 1000))
@click.option("--alpha", default=0.05, show_default=True, type=float)
@click.option(
    "--persistence",
    default=None,
    help="N/M: ALERT after N breaches in the last M periods (default 1/1 for two "
    "periods, 2/3 for longer series).",
)
@click.option("--fail-on", type=click.Choice(["alert"]), default=None, help="Exit 1 on ALERT.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--mlflow/--no-mlflow", default=False, show_default=True)
@click.option("--experiment", default="production-drift", show_default=True)
def drift_cmd(
    card: Path,
    periods: str,
    pathway: str,
    n_bins: int,
    alpha: float,
    persistence: str | None,
    fail_on: str | None,
    json_out: Path | None,
    mlflow: bool,
    experiment: str,
) -> None:
    """Score-distribution and decision-rate drift of one pathway across periods of
    its decision logs (PSI, KS, JS, decision-rate change; OK → PENDING → ALERT).
    Exit 0 ok, 1 alert (with --fail-on alert), 2 bad input, 3 bad logs."""

    from audit.cli.drift import drift_config, emit_drift
    from audit.errors import UsageError
    from audit.monitoring.logs import logs_drift
    from audit.production.logs import DecisionLogs, Period

    plist = [Period.parse(x) for x in periods.split(",") if x.strip()]
    if len(plist) < 2:
        raise UsageError(
            "drift needs a reference period and at least one more",
            where="audit production drift",
            field="--periods",
            expected="P1,P2[,...] in time order",
            actual=periods,
        )
    cfg = drift_config(
        "audit production drift", len(plist), persistence, n_bins=n_bins, alpha=alpha
    )
    logs = DecisionLogs.open(card)
    series = logs_drift(logs, plist, pathway, cfg)
    notes = [
        f"{pathway}: policy version changed at {p.label} ({p.policy_version}); a new "
        "reference starts there and nothing is compared across the break"
        for p in series.periods
        if p.policy_break
    ]
    results = [((str(card), pathway, "logs"), [p.report for p in series.periods if p.report])]
    emit_drift(
        results,
        notes,
        [(f"{pathway} ({card})", series)],
        label={"logs": str(card), "pathway": pathway, "periods": [p.label for p in plist]},
        json_out=json_out,
        mlflow=mlflow,
        experiment=experiment,
        fail_on=fail_on,
    )


@production.command("plan")
@click.argument("card", type=click.Path(path_type=Path))
@click.option(
    "--period", required=True, help="the period whose score distribution plans the sample"
)
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, help="plan file (JSON)"
)
@click.option("--pathway", "pathways", multiple=True, help="pathways to plan (default: all)")
@click.option("--policy-version", default=None)
@click.option("--slice", "slices", multiple=True, help="stratify by slice column(s) too")
@click.option(
    "--half-width", default=0.05, show_default=True, type=float, help="target 95% half-width"
)
@click.option("--floor", default=30, show_default=True, type=int, help="minimum n_h per stratum")
@click.option("--bands-actioned", default=4, show_default=True, type=int)
@click.option("--bands-not-actioned", default=4, show_default=True, type=int)
@click.option(
    "--bulk-quantile",
    default=0.8,
    show_default=True,
    type=float,
    help="not-actioned scores below this quantile form the thin bulk stratum",
)
@click.option("--precision-prior", default=0.8, show_default=True, type=float)
@click.option("--recall-prior", default=0.7, show_default=True, type=float)
@click.option(
    "--previous",
    type=click.Path(path_type=Path),
    default=None,
    help="a previous production record (priors and MDE)",
)
@click.option(
    "--reference-factor",
    default=1.0,
    show_default=True,
    type=float,
    help="reference sample m_h = factor × n_h",
)
@click.option("--max-labels", type=int, default=None, help="total human label budget")
@click.option(
    "--certainty-views",
    type=int,
    default=None,
    help="take the k most-viewed items of each frame in full (default 20 with views, 0 = off)",
)
@click.option(
    "--view-bands/--no-view-bands",
    default=None,
    help="split large strata by views (stratification by size). Default: on when the "
    "logs have views, since only then is the view-weighted prevalence interval valid; "
    "item-level intervals are ~11% wider. --no-view-bands: the flat score-band design",
)
def plan_cmd(
    card: Path,
    period: str,
    out: Path,
    pathways: tuple[str, ...],
    policy_version: str | None,
    slices: tuple[str, ...],
    half_width: float,
    floor: int,
    bands_actioned: int,
    bands_not_actioned: int,
    bulk_quantile: float,
    precision_prior: float,
    recall_prior: float,
    previous: Path | None,
    reference_factor: float,
    max_labels: int | None,
    certainty_views: int | None,
    view_bands: bool | None,
) -> None:
    """Strata, Neyman allocation and sample sizes from one period of logs."""
    from audit.production.logs import DecisionLogs, Period
    from audit.production.plan import build_plan

    logs = DecisionLogs.open(card)
    plan = build_plan(
        logs,
        Period.parse(period),
        pathways=pathways,
        policy_version=policy_version,
        slices=slices,
        half_width=half_width,
        floor=floor,
        bands_actioned=bands_actioned,
        bands_not_actioned=bands_not_actioned,
        bulk_quantile=bulk_quantile,
        precision_prior=precision_prior,
        recall_prior=recall_prior,
        previous=previous,
        reference_factor=reference_factor,
        max_labels=max_labels,
        certainty_views=certainty_views,
        view_bands=view_bands,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(plan.model_dump_json(indent=2), encoding="utf-8")
    c = _console()
    c.print(_strata_table(plan))
    c.print(_cells_table(plan))
    design = "view bands" if plan.view_bands else "flat score bands"
    c.print(f"plan: {out} ({sum(s.n_h for s in plan.strata):,} human labels, {design})")


def _strata_table(plan: Any) -> Any:
    """The plan's strata: score band, N_h, prior rate and the human/reference sizes."""
    from rich.table import Table

    t = Table(title=f"sampling plan from {plan.period}")
    for col in ("stratum", "score band", "N_h", "p prior", "n_h", "m_h"):
        t.add_column(col)
    for s in plan.strata:
        t.add_row(
            s.key + (" (bulk)" if s.bulk else ""),
            f"[{s.lo:.3f}, {s.hi:.3f})",
            f"{s.N_h:,}",
            f"{s.p_prior:.3f}",
            str(s.n_h),
            str(s.m_h),
        )
    return t


def _cells_table(plan: Any) -> Any:
    """Per reporting cell: frame sizes, labels, expected half-widths and MDEs."""
    from rich.table import Table

    t2 = Table(title="expected 95% half-widths and minimum detectable change (80% power)")
    for col in (
        "cell",
        "N actioned",
        "N not actioned",
        "labels",
        "± precision",
        "± recall",
        "± prevalence",
        "MDE precision",
        "MDE recall",
        "note",
    ):
        t2.add_column(col)

    def f(v: float) -> str:
        return "n/a" if not math.isfinite(v) else f"{v:.3f}"

    for cp in plan.cells:
        t2.add_row(
            cp.key,
            f"{cp.N_actioned:,}",
            f"{cp.N_not_actioned:,}",
            str(cp.n_labels),
            f(cp.half_width_precision),
            f(cp.half_width_recall),
            f(cp.half_width_prevalence),
            f(cp.mde_precision),
            f(cp.mde_recall),
            cp.note or "",
        )
    return t2


@production.command("sample")
@click.argument("card", type=click.Path(path_type=Path))
@click.option("--plan", "plan_path", type=click.Path(path_type=Path), required=True)
@click.option("--period", required=True, help="the audited period")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None, help="sample folder")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--policy-version", default=None)
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option("--emit-sql", is_flag=True, help="print the sampling SQL and exit (for a warehouse)")
def sample_cmd(
    card: Path,
    plan_path: Path,
    period: str,
    out: Path | None,
    seed: int,
    policy_version: str | None,
    fmt: str,
    emit_sql: bool,
) -> None:
    """Draw the two-frame stratified sample and export the labelling batches."""
    from audit.errors import UsageError
    from audit.policy import load_policy
    from audit.production.logs import DecisionLogs, Period
    from audit.production.plan import load_plan
    from audit.production.sample import draw_sample, sampling_sql

    logs = DecisionLogs.open(card)
    plan = load_plan(plan_path)
    p = Period.parse(period)
    if emit_sql:
        alloc = {s.id: s.m_h for s in plan.strata}
        click.echo(sampling_sql(logs, plan, p, seed, alloc, policy_version))
        return
    if out is None:
        raise UsageError(
            "--out is required unless --emit-sql", field="--out", expected="a folder", actual="none"
        )
    policy = load_policy(logs.card.policy)
    man = draw_sample(
        logs,
        plan,
        p,
        out,
        seed=seed,
        policy_version=policy_version,
        batch_format="csv" if fmt == "csv" else "jsonl",
        restricted=policy.restricted_ids,
    )
    c = _console()
    nh = sum(s.n_h for s in man.strata)
    nm = sum(s.m_h for s in man.strata)
    c.print(
        f"sampled {nh:,} items for humans, {nm:,} for the reference labeller, from {man.n_rows:,} decisions"
    )
    for note in man.notes:
        c.print(f"[yellow]note[/] {note}")
    c.print(f"manifest: {out / 'manifest.json'}")
    c.print(
        f"batches: {out / man.batches['human']} (human), {out / man.batches['reference']} (reference)"
    )


@production.command("demo-labels")
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--truth", type=click.Path(path_type=Path), required=True)
@click.option("--out", "out", type=click.Path(path_type=Path), required=True)
@click.option("--reference-noise", default=0.1, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
def demo_labels_cmd(
    manifest: Path, truth: Path, out: Path, reference_noise: float, seed: int
) -> None:
    """Demo only: answer the batches from the hidden truth (human) and a noisy labeller (reference)."""
    from audit.production.demo import demo_labels

    h, r = demo_labels(manifest.parent, truth, out, reference_noise=reference_noise, seed=seed)
    _console().print(f"human labels: {h}\nreference labels: {r}")


@production.command("reference")
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="a run config naming the reference moderator (its cache and error budget apply)",
)
@click.option("--moderator", required=True, help="the reference moderator of CONFIG (an llm_judge)")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="labels file (default: reference_labels.csv beside the manifest)",
)
@click.option(
    "--overall",
    is_flag=True,
    help="use the moderator's overall score for every category (a judge with no per-category scores)",
)
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a config value"
)
def reference_cmd(
    manifest: Path,
    config: Path,
    moderator: str,
    out: Path | None,
    overall: bool,
    overrides: tuple[str, ...],
) -> None:
    """Score the reference batch with a moderator through the runner (cached), writing the
    labels `estimate --reference` reads."""
    from audit._util.settings import offline_env
    from audit.production.reference import score_reference

    offline_env()
    r = score_reference(manifest, config, moderator, out=out, overrides=overrides, overall=overall)
    c = _console()
    c.print(
        f"reference {r.moderator}: {r.n_items:,} items, {r.n_scored:,} scored, "
        f"{r.n_cached:,} from the cache; {r.n_pairs:,} labels"
    )
    if r.error_types:
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(r.error_types.items()))
        c.print(f"[yellow]{r.n_errors:,} per-item errors[/] ({kinds}): {r.errors}")
    c.print(f"reference labels: {r.labels}")


@production.command("estimate")
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option(
    "--human", type=click.Path(path_type=Path), required=True, help="human labels (CSV/Parquet)"
)
@click.option(
    "--reference", type=click.Path(path_type=Path), default=None, help="reference labels or scores"
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=None,
    help="folder (default: the manifest's)",
)
@click.option("--bootstrap", "reps", default=1000, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--resolve",
    type=click.Choice(["error", "majority"]),
    default="error",
    show_default=True,
    help="conflicting duplicate labels",
)
@click.option("--allow-unsampled", is_flag=True, help="ignore (and count) labels for unsampled ids")
@click.option("--slices", "show_slices", is_flag=True, help="print slice domains too")
@click.option("--no-mlflow", is_flag=True)
@click.option("--experiment", default="production", show_default=True)
def estimate_cmd(
    manifest: Path,
    human: Path,
    reference: Path | None,
    out: Path | None,
    reps: int,
    seed: int,
    resolve: str,
    allow_unsampled: bool,
    show_slices: bool,
    no_mlflow: bool,
    experiment: str,
) -> None:
    """Weighted precision, recall and prevalence (classical and PPI++) with intervals."""
    from audit._util.settings import runs_dir
    from audit.production.estimate import estimate
    from audit.production.report import log_mlflow, summary_table, write_html
    from audit.production.sample import load_manifest

    man = load_manifest(manifest)
    rec = estimate(
        man,
        manifest.parent,
        human,
        reference,
        bootstrap_reps=reps,
        seed=seed,
        resolve="majority" if resolve == "majority" else "error",
        allow_unsampled=allow_unsampled,
    )
    folder = out or manifest.parent
    folder.mkdir(parents=True, exist_ok=True)
    rpath = folder / "production_record.json"
    rpath.write_text(rec.model_dump_json(indent=2), encoding="utf-8")
    hpath = write_html(rec, folder / "production_report.html")
    c = _console()
    summary_table(rec, c, slices=show_slices)
    c.print(f"record: {rpath}\nreport: {hpath}")
    if not no_mlflow:
        ids = log_mlflow(rec, rpath, runs_dir(), experiment=experiment, html_path=hpath)
        c.print(f"mlflow: {len(ids)} run(s) in experiment {experiment!r}")
    _ = json


COMMANDS = [production]
