"""``audit validate``: really validate every policy, suite (card and data) and run config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.errors import AuditError


def _kind(path: Path) -> str:
    if path.name == "suite.yaml" or (path.is_dir() and (path / "suite.yaml").exists()):
        return "suite"
    if "policies" in path.parts:
        return "policy"
    return "config"


def discover() -> list[Path]:
    from audit._util.settings import repo_root

    root = repo_root()
    out = sorted((root / "configs" / "policies").glob("*.yaml"))
    out += sorted((root / "suites").glob("*/suite.yaml"))
    out += sorted((root / "configs").glob("*.yaml"))
    return out


def validate_one(path: Path) -> str:
    """Validate one file; returns a short description; raises AuditError."""
    from audit.policy import load_policy

    kind = _kind(path)
    if kind == "policy":
        p = load_policy(path)
        return f"policy {p.ref}: {len(p.categories)} categories, mappings {sorted(p.mappings)}"
    if kind == "suite":
        from audit.suites.loader import load_card, load_suite

        card, cpath = load_card(str(path))
        policy = load_policy(card.policy)
        parts = []
        for split in card.splits():
            s = load_suite(str(cpath), policy, split=split)
            parts.append(f"{split}={len(s)}")
        return f"suite {card.name} v{card.version}: " + ", ".join(parts)
    from audit.engine.pipeline import prepare

    prep = prepare(path, fit_heads=False)
    pending = len(prep.config.moderators) - len(prep.moderators)
    return (
        f"config {prep.config.name}: {len(prep.suites)} suite(s), "
        f"{len(prep.config.moderators)} moderator(s)"
        + (f" ({pending} head(s) to be fitted on first run)" if pending else "")
        + (f", {len(prep.skipped)} optional suite(s) without data" if prep.skipped else "")
    )


def validate_paths(paths: list[Path], console: Any) -> int:
    """Validate ``paths`` (default: everything in the repo); print one line each."""
    from audit.suites.loader import SuiteDataMissing

    targets = paths or discover()
    problems = 0
    for p in targets:
        try:
            desc = validate_one(p)
            console.print(f"[green]ok[/]      {p}: {desc}")
        except SuiteDataMissing as exc:
            console.print(f"[yellow]no data[/] {p}: {exc.render()}")
        except AuditError as exc:
            problems += 1
            console.print(f"[red]invalid[/] {exc.render()}")
    console.print(f"{len(targets)} file(s) checked, {problems} invalid")
    return problems
