"""Command line: the ``audit`` group, its commands, and the exit-code boundary.

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

import click

from audit.cli import (
    analysis,
    change,
    core,
    drift,
    labels,
    media,
    probe,
    production,
    project,
    release,
    report,
)
from audit.errors import EXIT_OK, EXIT_RUN, EXIT_USAGE


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="audit", prog_name="audit")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Benchmark and audit harness for Trust & Safety moderation models.

    Exit codes: 0 ok, 1 gate failed, 2 usage/config error, 3 run error.
    """
    ctx.obj = {"debug": debug}


# Commands are registered explicitly, one list per module (each module imports only
# click at top level, so ``audit --help`` stays instant).
for _module in (
    core,
    change,
    analysis,
    release,
    report,
    probe,
    production,
    drift,
    labels,
    media,
    project,
):
    for _cmd in _module.COMMANDS:
        cli.add_command(_cmd)


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
