"""The vLLM backend against the real engine (marked ``gpu``): runs
bench/bench_vllm_gpu.py, which checks the fake-module scenarios on ``vllm.LLM`` and
label probabilities against the transformers backend to 1e-3. Skipped, with the
reason, where there is no CUDA GPU or no vLLM (CI and CPU hosts use the fake)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "bench" / "bench_vllm_gpu.py"


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not _cuda(), reason="needs a CUDA GPU (the vLLM engine does not run on CPU)"
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vllm not installed: run `python bench/bench_vllm_gpu.py` (installs it) on a GPU",
    ),
]


def test_real_engine_matches_the_fake_scenarios_and_hf(tmp_path: Path) -> None:
    out = tmp_path / "vllm_gpu.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--no-install", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    failed = {k: v for k, v in result["checks"].items() if not v.get("ok")}
    assert not failed, failed
    assert result["checks"]["logprob_vs_hf"]["max_abs_diff"] <= 1e-3
    assert proc.returncode == 0
