"""Drift for 10 categories over 2 × 5M scores: ``drift_report`` vs a pandas/scipy baseline.

The baseline is what monitoring code commonly does per category: ``pandas.qcut`` on the
reference (``retbins``) for the bin edges, ``pandas.cut`` + ``value_counts`` for both
samples, PSI and ``scipy.spatial.distance.jensenshannon`` on the proportions,
``scipy.stats.ks_2samp`` for KS, and the decision rates from pandas means. Both sides run
once on the same arrays in the same process (a shared 2-core machine), after a small
warm-up call each so imports are not timed. Agreement: KS D must match exactly; PSI differs
only through qcut's interpolated edges vs our inverted-CDF edges.

Run: ``python bench/bench_drift.py`` → ``bench/results/drift.json``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from _common import write

Data = dict[str, tuple[np.ndarray, np.ndarray]]

N = 5_000_000
K = 10
SEED = 0


def data() -> tuple[Data, Data]:
    rng = np.random.default_rng(SEED)
    ref: Data = {}
    cur: Data = {}
    for k in range(K):
        a = rng.beta(0.5, 3, N)
        # half the categories drift a little (mixture shift), half not at all
        b = rng.beta(0.5 + (0.05 * k if k % 2 else 0.0), 3, N)
        ref[f"c{k}"] = (a, a >= 0.5)
        cur[f"c{k}"] = (b, b >= 0.5)
    return ref, cur


def ours(ref: Data, cur: Data) -> Any:
    from audit.monitoring import DriftInput, drift_report

    return drift_report(
        {c: DriftInput(s, decisions=d, policy_version="v1") for c, (s, d) in ref.items()},
        {c: DriftInput(s, decisions=d, policy_version="v1") for c, (s, d) in cur.items()},
    )


def baseline(ref: Data, cur: Data) -> dict[str, dict[str, float]]:
    import pandas as pd
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import ks_2samp

    out = {}
    for c in ref:
        a, da = ref[c]
        b, db = cur[c]
        sa, sb = pd.Series(a), pd.Series(b)
        _, edges = pd.qcut(sa, 10, retbins=True, duplicates="drop")
        edges[0], edges[-1] = -np.inf, np.inf
        pa = pd.cut(sa, edges).value_counts(normalize=True, sort=False).to_numpy()
        pb = pd.cut(sb, edges).value_counts(normalize=True, sort=False).to_numpy()
        pa_, pb_ = np.clip(pa, 1e-4, None), np.clip(pb, 1e-4, None)
        psi = float(np.sum((pb_ - pa_) * np.log(pb_ / pa_)))
        js = float(jensenshannon(pa, pb, base=2))
        ks = ks_2samp(a, b)
        rate = float(pd.Series(db).mean() - pd.Series(da).mean())
        out[c] = {"psi": psi, "js": js, "ks": float(ks.statistic), "rate": rate}
    return out


def main() -> None:
    import os

    load = list(os.getloadavg())  # the figures depend on how busy the host is
    ref, cur = data()
    small_r = {c: (s[:1000], d[:1000]) for c, (s, d) in ref.items()}
    small_c = {c: (s[:1000], d[:1000]) for c, (s, d) in cur.items()}
    ours(small_r, small_c)
    baseline(small_r, small_c)
    t0 = time.perf_counter()
    rep = ours(ref, cur)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = baseline(ref, cur)
    t_base = time.perf_counter() - t0
    ks_diff = max(abs((rep.category(c).ks.value or 0) - base[c]["ks"]) for c in ref)
    psi_diff = max(abs((rep.category(c).psi.value or 0) - base[c]["psi"]) for c in ref)
    js_diff = max(abs((rep.category(c).js.value or 0) - base[c]["js"]) for c in ref)
    write(
        "drift",
        {
            "load_average_at_start": load,
            "n_per_side": N,
            "categories": K,
            "ours_s": round(t_ours, 3),
            "baseline_s": round(t_base, 3),
            "speedup": round(t_base / t_ours, 2),
            "goal": "ours <= 5 s and speedup >= 10",
            "max_abs_diff": {"ks_d": ks_diff, "psi": psi_diff, "js": js_diff},
            "states": {c.category: c.state for c in rep.categories},
            "psi": {c.category: c.psi.value for c in rep.categories},
        },
    )


if __name__ == "__main__":
    main()
