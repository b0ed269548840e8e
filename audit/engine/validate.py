"""``audit validate``: really validate every policy, suite (card and data) and run config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audit.errors import AuditError

_HUB_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


@contextmanager
def _hub_access(allowed: bool) -> Iterator[None]:
    """Offline unless hub access is asked for, restoring the environment afterwards.

    Without this a card with a ``source.hub`` entry and no local data makes the hub
    client retry for most of a minute before failing; ``audit run`` is offline by default
    too, so validate behaves the same way.
    """
    saved = {k: os.environ.get(k) for k in _HUB_OFFLINE_VARS}
    if not allowed:
        for k in _HUB_OFFLINE_VARS:
            os.environ[k] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _kind(path: Path) -> str:
    if path.name == "suite.yaml" or (path.is_dir() and (path / "suite.yaml").exists()):
        return "suite"
    if "policies" in path.parts:
        return "policy"
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        import yaml

        try:  # a pathway manifest is recognised by its top-level key
            head = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            head = None  # the config branch reports the parse error properly
        if isinstance(head, dict) and "pathways" in head and "moderators" not in head:
            return "pathways"
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
    desc, _ = validate_one_with_warnings(path)
    return desc


def validate_one_with_warnings(path: Path) -> tuple[str, list[str]]:
    """Validate one file; returns a short description and the card-rule warnings."""
    from audit.policy import load_policy

    kind = _kind(path)
    if kind == "policy":
        p = load_policy(path)
        return f"policy {p.ref}: {len(p.categories)} categories, mappings {sorted(p.mappings)}", []
    if kind == "suite":
        from audit.suites.loader import load_card, load_suite

        card, cpath = load_card(str(path))
        policy = load_policy(card.policy)
        parts = []
        warnings: list[str] = []
        for split in card.splits():
            s = load_suite(str(cpath), policy, split=split)
            parts.append(f"{split}={len(s)}")
            warnings += [f"split {split}: {w}" for w in s.warnings]
        return f"suite {card.name} v{card.version}: " + ", ".join(parts), warnings
    if kind == "pathways":
        from audit.change.pathways import check_manifest

        res = check_manifest(path)
        if res.problems:
            # a lagging pathway is a release problem (``audit pathways check``, exit 3),
            # not an invalid file: validate reports it and stays green
            return (
                f"pathway manifest: {len(res.matrix)} coverage cell(s), "
                f"{len(res.problems)} sync problem(s) (see 'audit pathways check')",
                list(res.problems),
            )
        return f"pathway manifest: {len(res.matrix)} coverage cell(s), in sync", []
    from audit.engine.prepare import prepare

    prep = prepare(path, fit_heads=False)
    pending = len(prep.config.moderators) - len(prep.moderators)
    suite_warnings = [f"suite {s.name}:{s.split}: {w}" for s in prep.suites for w in s.warnings]
    return (
        f"config {prep.config.name}: {len(prep.suites)} suite(s), "
        f"{len(prep.config.moderators)} moderator(s)"
        + (f" ({pending} head(s) to be fitted on first run)" if pending else "")
        + (f", {len(prep.skipped)} optional suite(s) without data" if prep.skipped else "")
    ), suite_warnings


def validate_paths(paths: list[Path], console: Any, *, allow_hub: bool = False) -> int:
    """Validate ``paths`` (default: everything in the repo); print one line each.

    Offline unless ``allow_hub``: a suite whose data is neither local nor allowed to come
    from the hub is reported as "no data", not as invalid.
    """
    from rich.markup import escape

    from audit.suites import SuiteDataMissing

    targets = paths or discover()
    problems = 0
    for p in targets:
        try:
            with _hub_access(allow_hub):
                desc, warnings = validate_one_with_warnings(p)
            console.print(f"[green]ok[/]      {p}: {desc}")
            for w in warnings:
                console.print(f"[yellow]warning[/] {p}: {w}")
        except SuiteDataMissing as exc:
            console.print(f"[yellow]no data[/] {p}: {escape(exc.render())}", soft_wrap=True)
        except AuditError as exc:
            problems += 1
            # soft_wrap: one problem stays one line however narrow the terminal; the
            # message is escaped so a value like "[bold]" is printed, not interpreted
            console.print(f"[red]invalid[/] {escape(exc.render())}", soft_wrap=True)
    console.print(f"{len(targets)} file(s) checked, {problems} invalid")
    return problems
