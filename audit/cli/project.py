"""``audit init [DIR]``: scaffold a project folder that works outside a clone.

A project is the repository's own layout (``audit._util.settings.LAYOUT``)::

    configs/quickstart.yaml   the packaged quickstart (optionally fewer moderators)
    configs/policies/         copies of the packaged policies
    configs/gates/            copies of the packaged gate rules
    suites/README.md          where suites come from (the packaged ones are not copied)
    runs/.gitignore           run records, caches and the MLflow store stay out of git

Why policies and gates are copied but suites are not: the policy and the gate rules are
the team's own decisions (new policy versions, thresholds), edited in the project and
reviewed with it; a copy also pins what the project audits against across package
upgrades. Suites are reference data with a digest in every run record, the public
ones hold only cards (their data lives in ``AUDIT_DATA_ROOT``), and short_video_v1
is ~300 kB that nobody edits in place: they resolve from the packaged defaults, and a
project suite of the same name (``suites/<name>/suite.yaml``) shadows a packaged one.

Only click is imported at module level so ``audit --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audit.cli._console import console as _console

RUNS_GITIGNORE = (
    "# run records, prediction caches, trained heads and the MLflow store\n*\n!.gitignore\n"
)

SUITES_README = """\
# Suites

The suites shipped with `audit` ({packaged}) resolve from the installed package;
`audit list suites` shows them. Add a project suite as `suites/<name>/suite.yaml`
(see the packaged cards for the format); a project suite with the same name as a
packaged one takes its place. The public sets' data is read from `AUDIT_DATA_ROOT`
(default `../shared/data` beside this folder).
"""


def _filtered_quickstart(text: str, keep: list[str], where: Path) -> str:
    """The quickstart restricted to the moderators named in ``keep``, as YAML."""
    import yaml

    from audit.errors import ConfigError

    cfg: dict[str, Any] = yaml.safe_load(text)
    names = [m["name"] for m in cfg["moderators"]]
    unknown = sorted(set(keep) - set(names))
    if unknown:
        raise ConfigError(
            "unknown moderator for the quickstart",
            where=str(where),
            field="--moderators",
            expected=f"names among {names}",
            actual=repr(unknown),
            fix="pass a comma-separated subset of the quickstart's moderators",
        )
    cfg["moderators"] = [m for m in cfg["moderators"] if m["name"] in keep]
    cfg["description"] = f"The packaged quickstart, scored by {', '.join(keep)} only."
    header = (
        f"# Written by `audit init` from the packaged quickstart ({where.name}),\n"
        f"# keeping the moderators {', '.join(keep)}. Run: audit run configs/quickstart.yaml\n"
    )
    return header + str(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True, width=100))


def plan(dest: Path, moderators: list[str] | None = None) -> dict[Path, str | Path]:
    """Every file ``audit init`` writes: destination → text, or → the packaged file to copy."""
    from audit._util.settings import LAYOUT, defaults_root
    from audit.errors import ConfigError

    src = defaults_root()
    if src is None:
        raise ConfigError(
            "the packaged defaults are missing",
            where=str(Path(__file__).resolve().parent.parent),
            expected="audit/_defaults in the installed package (or a source checkout)",
            actual="neither",
            fix="reinstall audit from a wheel built with its setup.py (pip install audit)",
        )
    out: dict[Path, str | Path] = {}
    quick = src / "configs" / "quickstart.yaml"
    text = quick.read_text(encoding="utf-8")
    out[dest / "configs" / "quickstart.yaml"] = (
        _filtered_quickstart(text, moderators, quick) if moderators else quick
    )
    for kind in ("policies", "gates"):
        for f in sorted((src / LAYOUT[kind]).glob("*.yaml")):
            out[dest / LAYOUT[kind] / f.name] = f
    packaged = ", ".join(sorted(p.parent.name for p in (src / "suites").glob("*/suite.yaml")))
    out[dest / "suites" / "README.md"] = SUITES_README.format(packaged=packaged)
    out[dest / "runs" / ".gitignore"] = RUNS_GITIGNORE
    return out


def scaffold(dest: Path, *, moderators: list[str] | None = None, force: bool = False) -> list[Path]:
    """Write the project files under ``dest``; refuse to overwrite any unless ``force``.

    The check covers every file before the first write, so a refused init leaves the
    folder as it was.
    """
    import shutil

    from audit.errors import ConfigError

    files = plan(dest, moderators)
    clash = [p for p in files if p.exists()]
    if clash and not force:
        raise ConfigError(
            f"{len(clash)} file(s) already exist",
            where=str(dest),
            expected="a folder without the files audit init writes",
            actual=", ".join(str(p.relative_to(dest)) for p in clash),
            fix="pass --force to overwrite them, or choose another folder",
        )
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, path)
        else:
            path.write_text(content, encoding="utf-8")
    return list(files)


@click.command(name="init")
@click.argument(
    "directory", default=".", type=click.Path(file_okay=False, path_type=Path), required=False
)
@click.option(
    "--moderators",
    default=None,
    metavar="NAME[,NAME...]",
    help="Keep only these quickstart moderators (e.g. profanity: no model loading).",
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init(directory: Path, moderators: str | None, force: bool) -> None:
    """Scaffold an audit project in DIRECTORY (default: the current folder)."""
    keep = [m.strip() for m in moderators.split(",") if m.strip()] if moderators else None
    dest = directory.expanduser().resolve()
    written = scaffold(dest, moderators=keep, force=force)
    out = _console()
    out.print(f"initialised audit project in {dest} ({len(written)} files)")
    for p in written:
        out.print(f"  {p.relative_to(dest)}")
    step_cd = "" if dest == Path.cwd().resolve() else f"  cd {directory}\n"
    out.print(
        "\nnext steps:\n"
        f"{step_cd}"
        "  audit validate                       # check policies, suites and configs\n"
        "  audit run configs/quickstart.yaml    # score, write runs/<run_id>/, mirror to MLflow\n"
        "  audit ui                             # browse runs in the MLflow UI\n"
        "policies, gate rules and suites resolve from this folder first, then from the "
        "packaged defaults (README: 'Installing from the wheel')."
    )


COMMANDS = [init]
