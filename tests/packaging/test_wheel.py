"""The wheel works outside a clone: build it, install it into a fresh venv, and run
``audit init`` + ``audit run`` in an empty folder with nothing written anywhere else.

The build runs on a copy of the tracked tree (as a fresh clone would), so a stale
``build/`` in the checkout cannot leak files into the wheel under test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _source_copy(dest: Path) -> Path:
    """The files a fresh clone has (tracked + untracked-not-ignored), copied to ``dest``."""
    try:
        names = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(
            REPO, dest, ignore=shutil.ignore_patterns(".*", "runs", "build", "*.egg-info")
        )
        return dest
    for raw in filter(None, names):
        rel = Path(os.fsdecode(raw))
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    return dest


def _listing(root: Path) -> set[tuple[str, int]]:
    """Every file under ``root`` with its size (a write or a new file changes the set)."""
    return {(str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file()}


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _source_copy(tmp / "src")
    dist = tmp / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    _run([*cmd, "-q", str(src), "-w", str(dist)], cwd=tmp, env=dict(os.environ))
    (whl,) = dist.glob("audit-*.whl")
    return whl


def test_wheel_ships_the_defaults(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    d = "audit/_defaults/"
    for must in (
        "configs/policies/platform-v1.yaml",
        "configs/gates/release.yaml",
        "configs/gates/default.yaml",
        "configs/quickstart.yaml",
        "suites/short_video_v1/suite.yaml",
        "suites/short_video_v1/README.md",
        "suites/short_video_v1/data/test.jsonl",
        "suites/short_video_v1/data/train.jsonl",
        *(
            f"suites/{s}/{f}"
            for s in ("openai_moderation", "hatecheck", "xstest", "cold")
            for f in ("suite.yaml", "README.md")
        ),
    ):
        assert d + must in names, must
    # public suites ship cards only; nothing but the listed defaults under _defaults
    shipped = {n for n in names if n.startswith(d + "suites/") and "/data/" in n}
    assert all(n.startswith(d + "suites/short_video_v1/data/") for n in shipped)
    assert not any(n.startswith(d + "configs/baselines") for n in names)
    # both shipped heads (weights + provenance) are inside the package; -sv1 is the quickstart's
    for head in ("use-multilingual-v3-platform-v1", "use-multilingual-v3-platform-v1-sv1"):
        heads = f"audit/moderators/classifiers/heads_data/{head}/"
        assert {heads + "head.safetensors", heads + "head.json"} <= names


@pytest.mark.slow  # ~40 s alone, ~100 s on a loaded machine: venv, install, a real run
def test_wheel_runs_outside_a_clone(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        cwd=tmp_path,
        env=dict(os.environ),
    )
    vpy = venv / "bin" / "python"
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "tmp"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    (tmp_path / "home").mkdir()
    (tmp_path / "tmp").mkdir()
    # pip of this interpreter installs into the new venv (pip >= 22.3 --python)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(vpy),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        cwd=tmp_path,
        env={**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    site = Path(
        _run(
            [str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=tmp_path,
            env=env,
        ).stdout.strip()
    )
    # Dependencies come from this interpreter's site-packages (the shared venv). A venv
    # made from a venv inherits the *base* interpreter's site with --system-site-packages,
    # so a plain path line is added instead; it is appended after the new venv's own
    # site-packages (the wheel wins) and, unlike addsitedir, runs none of that folder's
    # .pth files, so the checkout's editable finder stays out.
    (site / "_shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    empty = tmp_path / "work"
    empty.mkdir()
    where = _run([str(vpy), "-c", "import audit; print(audit.__file__)"], cwd=empty, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    before_site, before_home = _listing(venv), _listing(tmp_path / "home")
    _run(["audit", "init", "proj", "--moderators", "profanity"], cwd=empty, env=env)
    proj = empty / "proj"
    assert (proj / "configs" / "policies" / "platform-v1.yaml").is_file()
    assert (proj / "runs" / ".gitignore").is_file()
    proc = _run(["audit", "run", "configs/quickstart.yaml"], cwd=proj, env=env)
    assert "short_video_v1:test × profanity" in proc.stdout, proc.stdout

    (record,) = (proj / "runs").glob("*/record.json")
    assert (proj / "runs" / "mlflow.db").is_file()
    assert (record.parent / "report.html").is_file()
    # nothing written outside the project: the venv (site-packages, scripts) and HOME
    # are unchanged, and the project's parent holds only the project
    assert _listing(venv) == before_site
    assert _listing(tmp_path / "home") == before_home
    assert sorted(p.name for p in empty.iterdir()) == ["proj"]
