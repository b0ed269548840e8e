"""Label-quality commands: ``audit agreement``, ``audit suspects RUN``,
``audit adjudicate export|import`` (logic in :mod:`audit.labels`).

Only click is imported at top level so ``audit --help`` stays instant.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click


def _console(stderr: bool = False) -> Any:
    from audit.cli._console import console as c

    return c(stderr)


def _fmt(d: dict[str, Any] | None) -> str:
    """``0.652 [0.626, 0.678]`` or ``NaN (reason)``."""
    if d is None:
        return "–"
    v = d.get("value")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return f"NaN ({d.get('reason') or 'undefined'})"
    lo, hi = d.get("low"), d.get("high")
    if lo is None or hi is None:
        return f"{v:.3f}"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


_ROWS = (
    ("krippendorff_alpha_nominal", "Krippendorff α nominal"),
    ("krippendorff_alpha_ordinal", "Krippendorff α ordinal"),
    ("fleiss_kappa", "Fleiss κ"),
    ("cohen_kappa_mean", "Cohen κ, mean of pairs"),
    ("positive_specific_agreement", "positive specific agreement"),
    ("negative_specific_agreement", "negative specific agreement"),
    ("percent_agreement", "pairwise % agreement"),
)


@click.command()
@click.argument("suite")
@click.option("--split", default=None, help="Split (default: the card's default split).")
@click.option("--policy", "policy_ref", default=None, help="Policy (default: the card's).")
@click.option(
    "--threshold",
    default=0.667,
    show_default=True,
    help="Krippendorff's α (nominal) below this marks the category 'unreliable gold'.",
)
@click.option("--bootstrap", default=1000, show_default=True, help="Bootstrap resamples.")
@click.option("--seed", default=0, show_default=True)
@click.option("--conf", default=0.95, show_default=True, help="Interval confidence level.")
@click.option(
    "--gold",
    "gold_card",
    default=None,
    help="Card of an adjudicated version of SUITE: annotators are also compared with it.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Agreement record JSON (default: agreement.json in the current folder).",
)
def agreement(
    suite: str,
    split: str | None,
    policy_ref: str | None,
    threshold: float,
    bootstrap: int,
    seed: int,
    conf: float,
    gold_card: str | None,
    out: Path | None,
) -> None:
    """Inter-annotator agreement of a multi-annotator SUITE (name or card path), per
    category and ordinal scale, with bootstrap intervals over items."""
    from rich.table import Table

    from audit.labels.agreement import suite_agreement
    from audit.labels.io import load_labelled_suite, write_json

    loaded = load_labelled_suite(suite, policy_ref, split)
    adjudicated = None
    if gold_card is not None:
        adjudicated = load_labelled_suite(gold_card, loaded.card.policy, loaded.split)
    rec = suite_agreement(
        loaded,
        threshold=threshold,
        n_boot=bootstrap,
        seed=seed,
        conf=conf,
        adjudicated=adjudicated,
    )
    con = _console()
    for title, block in [*rec["categories"].items(), *rec["scales"].items()]:
        head = f"{loaded.name}:{loaded.split} · {title}"
        if "reliability" in block:
            head += f" · {block['reliability']}"
        tab = Table(title=head + f" (n = {block['n_items']} items, conf {conf})")
        tab.add_column("statistic")
        tab.add_column("estimate [interval]")
        tab.add_column("n")
        for key, label in _ROWS:
            if key in block["stats"]:
                d = block["stats"][key]
                n = f"{d['n']} pairs" if key == "cohen_kappa_mean" else str(d["n"])
                if key == "fleiss_kappa":
                    n += f" (items with {block['fleiss_raters']} raters)"
                tab.add_row(label, _fmt(d), n)
        con.print(tab)
        if "reliability" in block:  # per annotator (categories only)
            per = Table(title=f"{title}: per annotator (κ vs leave-one-out majority / gold)")
            for h in ("annotator", "items", "% agree (majority)", "κ majority", "κ gold"):
                per.add_column(h)
            for a in block["annotators"]:
                vm, vg = a["vs_majority"], a.get("vs_gold", {})
                per.add_row(
                    a["annotator"],
                    str(a["n_items"]),
                    _fmt(vm["agreement"]),
                    _fmt(vm["kappa"]),
                    _fmt(vg.get("kappa")),
                )
            con.print(per)
        if block["n_single"] or block["n_unrated"]:
            con.print(
                f"  {block['n_single']} one-annotator and {block['n_unrated']} unrated items "
                "do not enter the agreement statistics"
            )
    path = out or Path("agreement.json")
    write_json(path, rec)
    flagged = rec["unreliable_gold"]
    con.print(f"unreliable gold (α < {threshold}): {', '.join(flagged) if flagged else 'none'}")
    con.print(f"agreement record: {path}")


@click.command()
@click.argument("run")
@click.option("--suite", default=None, help="Only this suite.")
@click.option("--moderator", default=None, help="Only this moderator.")
@click.option("--top", default=20, show_default=True, help="Rows shown.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for suspects.jsonl and suspects.csv (default: <run dir>/suspects).",
)
def suspects(
    run: str, suite: str | None, moderator: str | None, top: int, out_dir: Path | None
) -> None:
    """Rank likely gold-label errors in RUN's suites (cleanlab; CROWDLAB for
    multi-annotator suites) with judge-vs-gold disagreement, for re-adjudication.
    Labels are never changed; restricted items export id + content hash only."""
    from rich.table import Table

    from audit.analysis import load_record as load_run
    from audit.labels.io import write_rows
    from audit.labels.suspects import export_rows, load_run_suites, run_suspects, suite_texts

    record = load_run(run)
    loaded = load_run_suites(record, suite=suite, moderator=moderator)
    table, notes = run_suspects(record, suite=suite, moderator=moderator, loaded=loaded)
    err = _console(stderr=True)
    for n in notes:
        err.print(f"note: {n}")
    con = _console()
    tab = Table(title=f"label-error suspects (top {top} of {len(table)}; lower = more suspect)")
    for h in ("rank", "category", "item", "gold", "score", "judge≠gold", "cleanlab", "quality"):
        tab.add_column(h)
    for r in table.head(top).itertuples():
        dis = r.judge_disagrees
        tab.add_row(
            str(r.rank),
            r.category,
            str(r.item_id),
            str(r.gold),
            f"{r.score:.3f}",
            "–" if dis != dis else ("yes" if dis else "no"),
            "–" if r.cleanlab_issue != r.cleanlab_issue else ("issue" if r.cleanlab_issue else ""),
            f"{r.suspicion:.3f}",
        )
    con.print(tab)
    rows = export_rows(table, suite_texts(loaded))
    out = out_dir or record.dir / "suspects"
    jl, cv = write_rows(out / "suspects.jsonl", out / "suspects.csv", rows)
    flagged = int((table["cleanlab_issue"] == 1).sum())
    con.print(
        f"{len(table)} (item, category) rows, {flagged} flagged by cleanlab, "
        f"{int(table['restricted'].sum())} restricted (id + hash only)"
    )
    con.print(f"suspects: {jl}\n          {cv}")


@click.group()
def adjudicate() -> None:
    """Adjudication round trip: export a queue to Label Studio / Argilla, import the
    answers back as a new suite version."""


@adjudicate.command(name="export")
@click.argument("suite")
@click.option(
    "--queue",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="suspects.jsonl/.csv or review_queue.jsonl (default: every item).",
)
@click.option("--run", "run_ref", default=None, help="Run whose decisions pre-annotate tasks.")
@click.option("--moderator", default=None, help="Moderator of --run (default: the first).")
@click.option("--split", default=None)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Only the first N distinct items of the queue (it is ranked).",
)
@click.option(
    "--unknown-gold",
    is_flag=True,
    help="Also queue items whose gold is unknown in a covered category (majority ties).",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def adjudicate_export(
    suite: str,
    queue: Path | None,
    run_ref: str | None,
    moderator: str | None,
    split: str | None,
    limit: int | None,
    unknown_gold: bool,
    out_dir: Path,
) -> None:
    """Write Label Studio tasks + labelling config and Argilla records + settings for
    SUITE's queued items (restricted items: id + content hash only)."""
    from audit.labels.exchange import build_queue, export_all, read_queue
    from audit.labels.io import load_labelled_suite
    from audit.policy import load_policy

    loaded = load_labelled_suite(suite, None, split)
    policy = load_policy(loaded.card.policy)
    preds = None
    if run_ref is not None:
        from audit.analysis import load_predictions, select_results
        from audit.analysis import load_record as load_run

        record = load_run(run_ref)
        entry = select_results(record, suite=loaded.name, moderator=moderator)[0]
        moderator = entry.moderator
        preds = load_predictions(record, entry)
    ids = read_queue(queue) if queue is not None else None
    if limit is not None:
        ids = (ids if ids is not None else list(loaded.dataset["id"]))[:limit]
    if unknown_gold:
        from audit.labels.exchange import unknown_gold_ids

        ids = list(dict.fromkeys([*(ids or []), *unknown_gold_ids(loaded)]))
    if ids is not None and not ids:
        from audit.errors import UsageError

        raise UsageError(
            "nothing to export",
            where=str(queue or loaded.card_path),
            field="--unknown-gold" if unknown_gold else "--queue",
            expected="at least one queued item",
            actual="0 items",
            fix="drop --unknown-gold or pass a non-empty --queue",
        )
    items = build_queue(loaded, policy, ids, preds)
    paths = export_all(items, loaded, policy, out_dir, moderator)
    con = _console()
    n_r = sum(q.restricted for q in items)
    con.print(f"{len(items)} tasks ({n_r} restricted: id + hash only)")
    for k, p in paths.items():
        con.print(f"{k:20s} {p}")


@adjudicate.command(name="import")
@click.argument("suite")
@click.argument("annotations", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "json", "csv"]),
    default="auto",
    show_default=True,
    help="json = Label Studio export or Argilla records.",
)
@click.option("--split", default=None)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="New suite folder (its name becomes the suite name).",
)
@click.option(
    "--version", "version", default=None, help="New version string (default: <old version>+adj)."
)
@click.option(
    "--conflicts",
    type=click.Choice(["error", "unsure"]),
    default="error",
    show_default=True,
    help="Reviewers disagreeing: fail, or set gold unknown.",
)
def adjudicate_import(
    suite: str,
    annotations: Path,
    fmt: str,
    split: str | None,
    out_dir: Path,
    version: str | None,
    conflicts: str,
) -> None:
    """Check ANNOTATIONS against SUITE and write a new suite version (card, data,
    datasheet entry, changes.csv); the old version is never modified."""
    from audit.labels.exchange import check_answers, read_annotations, write_new_version
    from audit.labels.io import load_labelled_suite
    from audit.policy import load_policy

    loaded = load_labelled_suite(suite, None, split)
    policy = load_policy(loaded.card.policy)
    answers = check_answers(
        read_annotations(annotations, fmt), loaded, annotations, conflicts=conflicts
    )
    summary = write_new_version(
        loaded, policy, answers, annotations, out_dir, version or f"{loaded.card.version}+adj"
    )
    con = _console()
    for c, cnt in summary["per_category"].items():
        moves = ", ".join(f"{k} {v}" for k, v in sorted(cnt.items()) if k != "reviewed")
        con.print(f"{c}: {cnt.get('reviewed', 0)} reviewed; {moves or 'no change'}")
    con.print(f"new suite version: {summary['to']['card']} ({summary['changes']} changes)")


COMMANDS = [agreement, suspects, adjudicate]
