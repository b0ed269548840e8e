"""CLI: ``audit media example OUT`` writes the generated media example.

Only click is imported at module level; the logic is in :mod:`audit.media.example`.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group("media")
def media() -> None:
    """Photos and short videos."""


@media.command("example")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def example(out: Path) -> None:
    """Generate photos, short clips, a suite card and a run config under OUT."""
    from audit.media.example import write_media_example

    paths = write_media_example(out)
    click.echo(f"suite card: {paths['card']}")
    click.echo(f"run config: {paths['config']}")
    click.echo(f"next: audit run {paths['config']}")


COMMANDS = [media]
