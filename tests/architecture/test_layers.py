"""The layer contract (docs/architecture.md) holds, and it would catch an upward import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(exe), str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


def test_layers_kept() -> None:
    r = _lint(REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "1 kept, 0 broken" in r.stdout


def test_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "audit", root / "audit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    policy = root / "audit" / "policy.py"
    policy.write_text(
        policy.read_text() + "\n\ndef _upward() -> None:\n    import audit.release.gate\n"
    )
    r = _lint(root)
    assert r.returncode != 0
    assert "audit.policy is not allowed to import audit.release" in r.stdout
