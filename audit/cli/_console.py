"""The rich consoles every command prints through."""

from __future__ import annotations

from typing import Any


def console(stderr: bool = False) -> Any:
    """A rich console; piped / CI output gets a wide fixed width so tables never wrap."""
    from rich.console import Console

    c = Console(stderr=stderr, highlight=False)
    if not c.is_terminal:  # piped / CI logs: do not wrap the summary tables at 80 columns
        c = Console(stderr=stderr, highlight=False, width=170)
    return c
