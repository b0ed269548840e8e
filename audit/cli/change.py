"""CLI: ``audit policy diff|impact``, ``audit pathways check``, ``audit suite diff``.

Thin wrappers over :mod:`audit.change` (docs/methods/change.md); only click is imported
at module level so ``audit --help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _console() -> Any:
    from audit.cli._console import console as c

    return c()


def _write(out: Path, name: str, text: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    p = out / name
    p.write_text(text, encoding="utf-8")
    return p


@click.group()
def policy() -> None:
    """Policy versions: diff two versions, measure a change's relabel impact."""


@policy.command(name="diff")
@click.argument("old")
@click.argument("new")
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for policy_diff.json and policy_diff.md (default: print only).",
)
def policy_diff(old: str, new: str, out: Path | None) -> None:
    """Every change from policy OLD to NEW (references like platform-v1, or paths)."""
    from rich.table import Table

    from audit.change.lineage import load_chain, resolve_policy_path
    from audit.change.policy_diff import diff_markdown, diff_policies, short_value
    from audit.policy import load_policy

    # walking NEW's supersedes chain catches cycles and missing predecessors
    load_chain(new)
    a, b = load_policy(old), load_policy(new)
    d = diff_policies(a, b, str(resolve_policy_path(new)))
    t = Table(title=f"{d.old_ref} → {d.new_ref}: {len(d.changes)} change(s)")
    for col in ("category", "kind", "field", "before", "after"):
        t.add_column(col, overflow="fold")
    for c in d.changes:
        t.add_row(c.category, c.kind, c.field, short_value(c.before, 60), short_value(c.after, 60))
    con = _console()
    con.print(t)
    if not d.declared:
        con.print(
            f"[yellow]{d.new_ref} does not declare supersedes: {d.old_ref}; categories are "
            "matched by id only (renames, splits and merges show as removed + added)[/]"
        )
    if out is not None:
        j = _write(out, "policy_diff.json", json.dumps(d.to_json(), indent=2, ensure_ascii=False))
        m = _write(out, "policy_diff.md", diff_markdown(d))
        con.print(f"json: {j}\nmarkdown: {m}")


@policy.command(name="impact")
@click.option("--from", "old", required=True, help="Old policy (the suite's labels).")
@click.option("--to", "new", required=True, help="New policy.")
@click.option("--suite", "suite_ref", required=True, help="Suite name or card path.")
@click.option("--split", default=None, help="Suite split (default: the card's default).")
@click.option("--limit", default=None, type=click.IntRange(1), help="First N rows only.")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Impact config: judge (a moderator spec), pathways, bootstrap.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for impact.json/.md, review_queue.jsonl/.csv, migrated_gold.jsonl.",
)
def policy_impact(
    old: str,
    new: str,
    suite_ref: str,
    split: str | None,
    limit: int | None,
    config_path: Path,
    out: Path,
) -> None:
    """Relabel impact of OLD → NEW on a suite: gold migration, judge flips, metric change."""
    from audit._util.settings import offline_env
    from audit.analysis.disagreements import export_review_queue
    from audit.change.impact import impact_markdown, load_impact_config, run_impact
    from audit.change.lineage import lineage, resolve_policy_path
    from audit.policy import load_policy
    from audit.suites.loader import load_suite

    offline_env()
    cfg = load_impact_config(config_path)
    a, b = load_policy(old), load_policy(new)
    lin = lineage(a, b, str(resolve_policy_path(new)))
    suite = load_suite(suite_ref, a, split=split, limit=limit)
    res = run_impact(
        cfg,
        lin,
        suite,
        config_where=str(config_path),
        policy_where=str(resolve_policy_path(new)),
    )
    md = impact_markdown(res.summary)
    _write(out, "impact.json", json.dumps(res.summary, indent=2, ensure_ascii=False))
    _write(out, "impact.md", md)
    export_review_queue(res.queue, out)  # review_queue.jsonl + review_queue.csv
    _write(out, "migrated_gold.jsonl", "".join(json.dumps(r) + "\n" for r in res.migrated))
    con = _console()
    con.print(md)
    con.print(f"written: {out}/impact.json, impact.md, review_queue.jsonl ({len(res.queue)} tasks)")


COMMANDS = [policy]


@click.group()
def pathways() -> None:
    """Enforcement pathways: are they in sync with the current policy version?"""


@pathways.command(name="check")
@click.option(
    "--manifest",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Pathway manifest (default: configs/pathways.yaml of the repository).",
)
@click.option("--policy", "current", default=None, help="Check against this version instead.")
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False, path_type=Path))
def pathways_check(manifest: Path | None, current: str | None, json_out: Path | None) -> None:
    """Coverage matrix (category × pathway) and sync problems; exit 3 on any problem."""
    from rich.table import Table

    from audit._util.settings import repo_root
    from audit.change.pathways import check_manifest

    if manifest is None:
        manifest = repo_root() / "configs" / "pathways.yaml"
    res = check_manifest(manifest, current=current)
    ids = list(next(iter(res.matrix.values())).keys()) if res.matrix else []
    t = Table(title=f"coverage of {res.policy.ref} ({res.policy.digest()[:12]}) by {manifest}")
    t.add_column("category")
    for p in ids:
        t.add_column(p, overflow="fold")
    style = {"full": "green", "partial": "yellow", "none": "red"}
    for c, row in res.matrix.items():
        cells = []
        for p in ids:
            x = row[p]
            edge = f" ({x.edge})" if x.edge else ""
            cells.append(f"[{style[x.coverage]}]{x.coverage}[/]{edge}")
        t.add_row(c, *cells)
    con = _console()
    con.print(t)
    if json_out is not None:
        json_out.write_text(
            json.dumps(res.to_json(), indent=2, ensure_ascii=False), encoding="utf-8"
        )
    if res.problems:
        for line in res.problems:
            click.echo(line, err=True)
        click.echo(f"{len(res.problems)} problem(s): pathways are out of sync", err=True)
        raise SystemExit(3)
    con.print(f"all {len(ids)} pathway(s) in sync with {res.policy.ref}")


COMMANDS.append(pathways)


@click.group()
def suite() -> None:
    """Golden-suite versions."""


@suite.command(name="diff")
@click.argument("old")
@click.argument("new")
@click.option("--split", default=None, help="Split to compare (default: each card's default).")
@click.option(
    "--key",
    type=click.Choice(["id", "hash"]),
    default="id",
    show_default=True,
    help="Pair rows by id, or by content hash when the id scheme changed.",
)
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for suite_diff.json (declarable to the gate) and suite_diff.csv.",
)
def suite_diff(old: str, new: str, split: str | None, key: str, out: Path | None) -> None:
    """Rows added, removed, text or labels changed from suite OLD to NEW.

    OLD and NEW are suite names or card paths, optionally with @REV for the suite as
    committed at a git revision (e.g. short_video_v1@HEAD~3 short_video_v1).
    """
    from rich.table import Table

    from audit.change.suite_diff import diff_suites

    d = diff_suites(old, new, split=split, key="hash" if key == "hash" else "id")
    con = _console()
    t = Table(
        title=f"{d.a['name']} {d.a['version']} ({d.a['digest'][:12]}) → "
        f"{d.b['name']} {d.b['version']} ({d.b['digest'][:12]}), split {d.b['split']}, by {key}"
    )
    t.add_column("rows")
    t.add_column("count", justify="right")
    for k, v in d.counts.items():
        t.add_row(k, str(v))
    con.print(t)
    if d.label_changes:
        lt = Table(title="label changes per category")
        lt.add_column("category")
        for k in ("neg→pos", "pos→neg", "unknown→known", "known→unknown"):
            lt.add_column(k, justify="right")
        for cat, changes in d.label_changes.items():
            lt.add_row(cat, *(str(x) for x in changes.values()))
        con.print(lt)
    for label, cats in (("only in OLD", d.only_a_categories), ("only in NEW", d.only_b_categories)):
        if cats:
            con.print(f"categories {label}: {', '.join(cats)} (not compared)")
    if out is not None:
        j = _write(out, "suite_diff.json", json.dumps(d.to_json(), indent=2, ensure_ascii=False))
        cv = _write(out, "suite_diff.csv", d.csv())
        con.print(f"json: {j}\ncsv: {cv}")


COMMANDS.append(suite)
