"""Build hook: copy the project's default files into the wheel as ``audit/_defaults``.

The repository keeps its fixed layout (top-level ``configs/`` and ``suites/`` are the
single source; nothing is duplicated in the tree). At build time this ``build_py``
copies the files listed in ``DEFAULTS`` into ``<build>/audit/_defaults/`` with the
same relative paths, so an installed wheel finds them where
``audit._util.settings.defaults_root`` looks. Everything else (metadata, dependencies,
entry points) stays in pyproject.toml.

Editable installs (``pip install -e .``) skip this step by design (setuptools does not
run ``build_py`` in editable mode): the package then imports from the checkout, and
``defaults_root`` uses the checkout's own ``configs/`` and ``suites/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent

# Glob patterns, relative to the repository root. The public suites ship their cards and
# datasheets only (their data lives in ../shared/data and is never shipped); the
# team-written short_video_v1 ships its data too. quickstart.yaml is the template
# `audit init` copies into a new project.
PUBLIC_SUITES = ("openai_moderation", "hatecheck", "xstest", "cold")
DEFAULTS = (
    "configs/policies/*.yaml",
    "configs/policies/README.md",
    "configs/gates/*.yaml",
    "configs/gates/README.md",
    "configs/quickstart.yaml",
    *(f"suites/{s}/{f}" for s in PUBLIC_SUITES for f in ("suite.yaml", "README.md")),
    "suites/short_video_v1/suite.yaml",
    "suites/short_video_v1/README.md",
    "suites/short_video_v1/data/*.jsonl",
)


def default_files(root: Path = HERE) -> list[Path]:
    """Every file to ship, relative to ``root``; a pattern matching nothing is an error
    (a renamed card must not silently drop out of the wheel)."""
    out: list[Path] = []
    for pattern in DEFAULTS:
        hits = sorted(p for p in root.glob(pattern) if p.is_file())
        if not hits:
            raise FileNotFoundError(f"setup.py: no file matches {pattern!r} under {root}")
        out += [p.relative_to(root) for p in hits]
    return out


class BuildPyWithDefaults(build_py):
    """``build_py`` that also copies :data:`DEFAULTS` to ``audit/_defaults``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "audit" / "_defaults"
        for rel in default_files():
            dst = target / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HERE / rel, dst)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        extra = []
        if not self.editable_mode:
            base = Path(self.build_lib) / "audit" / "_defaults"
            extra = [str(base / rel) for rel in default_files()]
        return [*super().get_outputs(include_bytecode), *extra]


setup(cmdclass={"build_py": BuildPyWithDefaults})
