"""The release-gate workflow's steps, run locally as the same commands: the unchanged
candidate passes, a planted regression fails."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _steps() -> dict[str, str]:
    wf = yaml.safe_load((REPO / ".github" / "workflows" / "release-gate.yml").read_text())
    steps = wf["jobs"]["gate"]["steps"]
    return {s["name"]: s["run"] for s in steps if "run" in s and "name" in s}


def _sh(cmd: str, cwd: Path, extra: str = "") -> subprocess.CompletedProcess[str]:
    audit = f"{shlex.quote(sys.executable)} -m audit"
    script = cmd.replace(".venv/bin/audit", audit)
    if extra:
        script = script.rstrip() + " " + extra
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AUDIT_HOME": str(REPO),
        "AUDIT_RUNS_DIR": str(cwd / "runs"),
    }
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_workflow_passes_unchanged_and_fails_on_planted_regression(tmp_path: Path) -> None:
    steps = _steps()
    score, gate = steps["Score the release candidate"], steps["Gate against the baseline"]
    work = tmp_path / "ws"
    work.mkdir()
    for name in ("configs", ".github"):
        os.symlink(REPO / name, work / name)
    # the head is fitted into the work dir's runs/heads on first use, as in CI
    r = _sh(score, work)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _sh(gate, work)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert (work / "gate-junit.xml").exists()
    r = _sh(score, work, extra="--set moderators.minilm_head.thresholds.default=0.8")
    assert r.returncode == 0, r.stderr[-2000:]
    r = _sh(gate, work)
    assert r.returncode == 1, r.stdout[-3000:]
    assert "FAIL" in r.stdout


def test_workflow_shape() -> None:
    """What the workflow promises besides the gate itself: one run per PR (concurrency),
    the CPU torch wheel, no extras, the summary as a PR comment, the HTML report kept."""
    wf = yaml.safe_load((REPO / ".github" / "workflows" / "release-gate.yml").read_text())
    assert wf["concurrency"]["cancel-in-progress"] is True
    assert "pull_request.number" in wf["concurrency"]["group"]
    assert wf["permissions"]["pull-requests"] == "write"
    job = wf["jobs"]["gate"]
    assert job["env"]["AUDIT_TORCH_INDEX_URL"].endswith("/whl/cpu")
    steps = {s.get("name"): s for s in job["steps"]}
    assert steps["Set up audit"]["run"].strip() == "bash scripts/bootstrap.sh --core"
    assert "--markdown gate-summary.md" in steps["Gate against the baseline"]["run"]
    comment = steps["Comment the gate summary on the pull request"]["run"]
    assert "gh pr comment" in comment and "gate-summary.md" in comment
    kept = steps["Keep the gate results"]["with"]["path"]
    assert "report.html" in kept and "gate-junit.xml" in kept


def test_gate_writes_markdown_summary(tmp_path: Path) -> None:
    """`audit gate --markdown PATH` writes the same summary the step summary gets."""
    snap = REPO / "configs" / "baselines" / "release.json"
    out = tmp_path / "summary.md"
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUDIT_HOME": str(REPO)}
    env.pop("GITHUB_STEP_SUMMARY", None)
    r = subprocess.run(
        [sys.executable, "-m", "audit", "gate", "--candidate", str(snap), "--baseline", str(snap),
         "--rules", str(REPO / "configs" / "gates" / "release.yaml"), "--markdown", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    text = out.read_text()
    assert "PASS" in text and "|" in text
