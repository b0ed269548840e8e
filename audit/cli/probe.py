"""CLI: ``audit probe CONFIG --moderator NAME``, the ``llm_judge`` robustness probe.

Only click is imported at module level; the work lives in :mod:`audit.moderators.judge.probe`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--moderator", "moderator", required=True, help="An llm_judge moderator of CONFIG.")
@click.option("--suite", default=None, help="Suite name or path in CONFIG (default: the first).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--probes",
    default="shuffle,pad,move,inject",
    show_default=True,
    help="Comma-separated subset of shuffle,pad,move,inject.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value (repeatable).",
)
def probe(
    config: Path,
    moderator: str,
    suite: str | None,
    limit: int,
    probes: str,
    seed: int,
    json_out: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Re-score N items of a suite with shuffled policy sections, benign padding, a
    moved violating span and injected instructions; report decision flip rates."""
    from audit.cli._console import console as _console
    from audit.moderators.judge.probe import PROBES, load_target, print_report, run_probes

    names = [p.strip() for p in probes.split(",") if p.strip()]
    bad = [p for p in names if p not in PROBES]
    if bad or not names:
        raise click.BadParameter(
            f"expected a comma-separated subset of {','.join(PROBES)}, got {probes!r}",
            param_hint="--probes",
        )
    out = _console()
    err = _console(stderr=True)
    target = load_target(config, moderator, suite=suite, limit=limit, overrides=overrides)
    try:
        report = run_probes(
            target.judge,
            target.spec,
            target.items,
            gold_overall=target.suite.overall[: len(target.items)],
            probes=names,
            seed=seed,
            progress=lambda msg: err.print(f"[dim]{msg}…[/]"),
        )
    finally:
        target.judge.close()
    report = {
        "config": str(config),
        "moderator": moderator,
        "suite": f"{target.suite.name}:{target.suite.split}",
        **report,
    }
    title = f"robustness probe: {moderator} on {report['suite']} ({report['n_items']} items)"
    print_report(out, report, title)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        out.print(f"json: {json_out}")


COMMANDS = [probe]
