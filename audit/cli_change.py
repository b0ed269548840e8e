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
    from audit.cli import _console as c

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

    from audit.change.lineage import resolve_policy_path
    from audit.change.policy_diff import _short, diff_markdown, diff_policies
    from audit.policy import load_policy

    a, b = load_policy(old), load_policy(new)
    d = diff_policies(a, b, str(resolve_policy_path(new)))
    t = Table(title=f"{d.old_ref} → {d.new_ref}: {len(d.changes)} change(s)")
    for col in ("category", "kind", "field", "before", "after"):
        t.add_column(col, overflow="fold")
    for c in d.changes:
        t.add_row(c.category, c.kind, c.field, _short(c.before, 60), _short(c.after, 60))
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
    help="Folder for impact.json, impact.md, review_queue.jsonl, migrated_gold.jsonl.",
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
    from audit.change.impact import impact_markdown, load_impact_config, run_impact
    from audit.change.lineage import lineage, resolve_policy_path
    from audit.policy import load_policy
    from audit.settings import offline_env
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
    _write(out, "review_queue.jsonl", "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in res.queue))
    _write(out, "migrated_gold.jsonl", "".join(json.dumps(r) + "\n" for r in res.migrated))
    con = _console()
    con.print(md)
    con.print(f"written: {out}/impact.json, impact.md, review_queue.jsonl ({len(res.queue)} tasks)")


COMMANDS = [policy]
