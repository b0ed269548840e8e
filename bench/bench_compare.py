"""Benchmark of ``audit compare``'s core: paired comparison at 100,000 items × 10 categories.

Run: ``.venv/bin/python bench/bench_compare.py`` (seeded; writes
``bench/results/compare.json``). Times :func:`audit.release.compare.align` plus
:func:`audit.release.compare.paired_compare` (every registered metric, 1,000 paired resamples, 95%
intervals, McNemar and negative flips; ``n × K`` above ``ROW_BOOTSTRAP_MAX_CELLS`` so the
joint cell bootstrap runs, docs/methods.md §3) on two synthetic correlated models, with the
thread pool limited to 2 workers (goal: under 15 s on 2 cores). For reference it also
times the exact paired row bootstrap on 5,000 items × 10 categories.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, timed, write

N, K, N_BOOT, SEED, THREADS = 100_000, 10, 1000, 20240601, 2


def frames(n: int, k: int, seed: int) -> tuple[Any, Any]:
    """Two moderators' prediction frames on the same ``n`` items (B = A + noise + lift)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.gate.test_compare import make_frame

    rng = np.random.default_rng(seed)
    prev = np.linspace(0.01, 0.3, k)
    y = (rng.random((n, k)) < prev).astype(np.int8)
    y[rng.random((n, k)) < 0.05] = -1  # unknown labels
    sa = np.clip(0.3 * (y == 1) + 0.7 * rng.random((n, k)), 0, 1)
    sb = np.clip(sa + rng.normal(0, 0.05, (n, k)) + 0.02 * (y == 1), 0, 1)
    cats = [f"c{i}" for i in range(k)]
    return make_frame(y, sa, cats), make_frame(y, sb, cats)


def main() -> None:
    from audit.release.compare import align, paired_compare

    fa, fb = frames(N, K, SEED)

    def run() -> Any:
        return paired_compare(align(fa, fb), n_boot=N_BOOT, seed=SEED, threads=THREADS)

    secs, out = timed(run, repeat=3)
    sa, sb = frames(5_000, K, SEED)
    row_secs, _ = timed(
        lambda: paired_compare(align(sa, sb), n_boot=N_BOOT, method="row", threads=THREADS)
    )
    c0 = out["c0"].metrics
    payload = {
        "items": N,
        "categories": K,
        "n_boot": N_BOOT,
        "threads": THREADS,
        "method": "joint cell bootstrap (auto)",
        "seconds": secs,
        "goal_seconds": 15,
        "row_path_5000_items_seconds": row_secs,
        "example_delta_c0": {m: c0[m].to_dict() for m in ("recall", "f1", "auprc", "auroc")},
        "machine": {**machine(), "affinity_cpus": len(os.sched_getaffinity(0))},
    }
    path = write("compare", payload)
    print(f"paired compare {N:,} items × {K} categories, {N_BOOT} resamples: {secs:.2f} s")
    print(f"row path, 5,000 items: {row_secs:.2f} s; written {path}")


if __name__ == "__main__":
    main()
