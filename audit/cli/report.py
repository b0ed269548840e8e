"""``audit report RUN``: write (and open) the self-contained HTML report of a run.

RUN is a run directory, a ``record.json`` path or a run id under ``runs/``. The
report is rendered from the record and its predictions Parquet files, so it can be
regenerated at any time; it is also logged to the run's MLflow parent run when the
record has one and the tracking store is reachable (best effort).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


def open_in_browser(path: Path) -> bool:
    """Open ``path`` with :mod:`webbrowser` when a display is available.

    Returns:
        True when a browser was asked to open the file.
    """
    gui = sys.platform in ("darwin", "win32")
    if not (gui or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import webbrowser

    return bool(webbrowser.open(path.resolve().as_uri()))


@click.command("report")
@click.argument("run")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output HTML file (default: runs/<run_id>/report.html).",
)
@click.option(
    "--open/--no-open",
    "open_",
    default=True,
    show_default=True,
    help="Open the report in a browser when a display is available.",
)
@click.option("--no-mlflow", is_flag=True, help="Do not log the report to MLflow.")
def report(run: str, out: Path | None, open_: bool, no_mlflow: bool) -> None:
    """Write the self-contained HTML report of RUN (run dir, record.json or run id)."""
    from audit.report.html import write_html_report

    path = write_html_report(run, out, mlflow=not no_mlflow)
    click.echo(f"report: {path}")
    if open_ and not open_in_browser(path):
        click.echo("no display available: open the file in a browser", err=True)


COMMANDS = [report]
