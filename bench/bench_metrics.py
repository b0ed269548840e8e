"""Benchmark of the metrics layer: ``compute_metrics`` at 1e6 items × 10 categories.

Run: ``.venv/bin/python bench/bench_metrics.py`` (seeded, writes
``bench/results/metrics.json``). Measures

1. wall time of :func:`audit.metrics.compute_metrics` (all registered metrics, 1,000
   bootstrap resamples, 95% intervals) on 1,000,000 items × 10 categories — above
   ``ROW_BOOTSTRAP_MAX_CELLS``, so the cell bootstrap runs (docs/methods.md §2);
2. a naive baseline: for each resample and category, scikit-learn's precision / recall /
   F1 / average precision / ROC AUC on the resampled rows, timed on 20 resamples of 10,000
   items × 10 categories and extrapolated **linearly** in items and in resamples to
   1e6 × 1,000 (linear is generous to the baseline: the two ranking metrics sort, so the
   true cost grows like n log n);
3. for reference, the exact row bootstrap at the automatic switch point
   (``ROW_BOOTSTRAP_MAX_CELLS`` / 10 items × 10 categories);
4. the binning error of the cell bootstrap against the exact row bootstrap at 200,000
   items (3 categories, prevalence 0.5% / 5% / 20%), two ways:
   ``same_resamples``: the same row resamples evaluated exactly and through the cell
   path's quantile histogram (re-centred as in ``compute_metrics``), so the difference is
   binning alone; ``end_to_end``: ``method="cell"`` vs ``method="row"`` intervals, which
   also contains Monte Carlo noise, reported next to the noise between two row bootstraps
   with different seeds.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from audit.metrics import (  # noqa: E402
    HIST_BINS,
    ROW_BOOTSTRAP_MAX_CELLS,
    UndefinedMetricWarning,
    compute_metrics,
    get_metric,
    metric_names,
    percentile_interval,
)
from audit.metrics.ranking import exact_bins, quantile_bins, sort_desc, tie_starts  # noqa: E402

OUT = REPO / "bench" / "results" / "metrics.json"
N_ITEMS = 1_000_000
N_CATS = 10
N_BOOT = 1000
CI = 0.95
SEED = 20240601


def synth(n: int, prevalences: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """Seeded moderation-like data: skewed scores, unknown labels (5%), NaN scores (2%)."""
    rng = np.random.default_rng(seed)
    k = prevalences.size
    y = (rng.random((n, k)) < prevalences).astype(np.int8)
    score = rng.beta(1.2, 8.0, (n, k)) + 0.55 * y * rng.beta(2.0, 2.0, (n, k))
    score = np.clip(score, 0.0, 1.0)
    pred = score >= 0.5
    y[rng.random((n, k)) < 0.05] = -1
    score[rng.random((n, k)) < 0.02] = np.nan
    return y, score, pred


def time_compute(y: np.ndarray, s: np.ndarray, p: np.ndarray, repeats: int = 3) -> list[float]:
    cats = [f"cat{k}" for k in range(y.shape[1])]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        compute_metrics(y, s, p, cats, n_boot=N_BOOT, ci=CI, seed=SEED)
        times.append(time.perf_counter() - t0)
    return times


def naive_baseline(n_items: int, n_resamples: int) -> float:
    """Seconds for the per-resample scikit-learn loop on ``n_items`` × 10 categories."""
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y, s, p = synth(n_items, np.linspace(0.005, 0.2, N_CATS), SEED + 1)
    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    for _ in range(n_resamples):
        idx = rng.integers(0, n_items, n_items)
        for k in range(N_CATS):
            yk, sk, pk = y[idx, k], s[idx, k], p[idx, k]
            ok = (yk >= 0) & ~np.isnan(sk)
            yk, sk, pk = yk[ok], sk[ok], pk[ok]
            precision_score(yk, pk, zero_division=np.nan)
            recall_score(yk, pk, zero_division=np.nan)
            f1_score(yk, pk, zero_division=np.nan)
            average_precision_score(yk, sk)
            roc_auc_score(yk, sk)
    return time.perf_counter() - t0


RANKING = [m for m in metric_names() if get_metric(m).family == "ranking"]


def binning_same_resamples(
    y: np.ndarray, s: np.ndarray, n_boot: int, seed: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Exact vs histogram intervals of the ranking metrics on the same row resamples.

    Returns:
        ``(max |Δ ci bound|, max |Δ ci bound| / exact ci width)`` per metric, each the max
        over categories.
    """
    n_rows = y.shape[0]
    per_metric: dict[str, float] = {m: 0.0 for m in RANKING}
    relative: dict[str, float] = {m: 0.0 for m in RANKING}
    for k in range(y.shape[1]):
        rng = np.random.default_rng(seed)  # the same stream compute_metrics' row path uses
        mask = (y[:, k] >= 0) & ~np.isnan(s[:, k])
        order, y_desc, s_desc = sort_desc(y[mask, k], s[mask, k])
        rows = np.flatnonzero(mask)[order]
        exact = exact_bins(y_desc, s_desc)
        coarse = quantile_bins(y_desc, s_desc, HIST_BINS)
        starts = tie_starts(s_desc)
        # fine-bin starts are tie-run starts, so map them into the exact-bin index space
        cut_items = np.r_[0, np.cumsum(coarse.pos[0] + coarse.neg[0])[:-1]].astype(np.intp)
        cut_bins = np.searchsorted(starts, cut_items)
        ex_vals: dict[str, list[np.ndarray]] = {m: [] for m in RANKING}
        bn_vals: dict[str, list[np.ndarray]] = {m: [] for m in RANKING}
        chunk = max(1, (1 << 21) // n_rows)
        done = 0
        while done < n_boot:
            b = min(chunk, n_boot - done)
            idx = rng.integers(0, n_rows, size=(b, n_rows))
            idx += (np.arange(b) * n_rows)[:, None]
            w = np.bincount(idx.ravel(), minlength=b * n_rows).reshape(b, n_rows)
            w = np.take(w.astype(np.float64), rows, axis=1)
            pos = np.add.reduceat(w * y_desc, starts, axis=1)
            tot = np.add.reduceat(w, starts, axis=1)
            eb = exact.with_counts(pos, tot - pos)
            cb = coarse.with_counts(
                np.add.reduceat(pos, cut_bins, axis=1),
                np.add.reduceat(tot - pos, cut_bins, axis=1),
            )
            for m in RANKING:
                spec = get_metric(m)
                ex_vals[m].append(spec.batch(eb, **spec.params))
                bn_vals[m].append(spec.batch(cb, **spec.params))
            done += b
        for m in RANKING:
            spec = get_metric(m)
            point = float(spec.batch(exact, **spec.params)[0])
            shift = point - float(spec.batch(coarse, **spec.params)[0])
            a = percentile_interval(np.concatenate(ex_vals[m]), point, CI)
            c = percentile_interval(np.concatenate(bn_vals[m]) + shift, point, CI)
            diff = max(abs(a[0] - c[0]), abs(a[1] - c[1]))
            per_metric[m] = max(per_metric[m], diff)
            relative[m] = max(relative[m], diff / (a[1] - a[0]))
    return per_metric, relative


def max_ci_diff(
    a: dict[str, Any], b: dict[str, Any], *, relative: bool = False
) -> dict[str, float]:
    """Max over categories of the larger bound difference (optionally / ``a``'s width)."""
    out: dict[str, float] = {}
    for cat in a:
        for m, va in a[cat].items():
            vb = b[cat][m]
            if np.isnan(va.ci_low) or np.isnan(vb.ci_low) or va.method == "exact":
                continue
            d = max(abs(va.ci_low - vb.ci_low), abs(va.ci_high - vb.ci_high))
            if relative:
                d /= va.ci_high - va.ci_low
            out[m] = max(out.get(m, 0.0), d)
    return dict(sorted(out.items()))


def main() -> None:
    warnings.simplefilter("ignore", UndefinedMetricWarning)
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    result: dict[str, Any] = {
        "items": N_ITEMS,
        "categories": N_CATS,
        "n_boot": N_BOOT,
        "ci": CI,
        "seed": SEED,
        "metrics": metric_names(),
        "row_bootstrap_max_cells": ROW_BOOTSTRAP_MAX_CELLS,
        "hist_bins": HIST_BINS,
    }

    y, s, p = synth(N_ITEMS, np.linspace(0.005, 0.2, N_CATS), SEED)
    cats = [f"cat{k}" for k in range(N_CATS)]
    times = time_compute(y, s, p)
    method = compute_metrics(y, s, p, cats, n_boot=2, metrics=["auroc"])["cat0"]["auroc"].method
    overall = (y.max(axis=1), np.nanmax(s, axis=1), p.any(axis=1))
    t0 = time.perf_counter()
    compute_metrics(y, s, p, cats, n_boot=N_BOOT, ci=CI, seed=SEED, overall=overall)
    t_overall = time.perf_counter() - t0
    del y, s, p
    result.update(
        seconds=statistics.median(times),
        seconds_repeats=times,
        seconds_with_overall=t_overall,
        method=method,
        target_seconds=10.0,
    )

    # the exact row bootstrap right at the auto switch (n × K = ROW_BOOTSTRAP_MAX_CELLS)
    n_sw = ROW_BOOTSTRAP_MAX_CELLS // N_CATS
    ys, ss_, ps = synth(n_sw, np.linspace(0.005, 0.2, N_CATS), SEED + 3)
    t0 = time.perf_counter()
    sw = compute_metrics(ys, ss_, ps, cats, n_boot=N_BOOT, ci=CI, seed=SEED)
    result["row_bootstrap_at_switch"] = {
        "items": n_sw,
        "categories": N_CATS,
        "method": sw["cat0"]["auroc"].method,
        "seconds": time.perf_counter() - t0,
    }

    sub_items, sub_boot = 10_000, 20
    t_sub = naive_baseline(sub_items, sub_boot)
    factor = (N_ITEMS / sub_items) * (N_BOOT / sub_boot)
    result["baseline"] = {
        "description": "per-resample loop of sklearn precision/recall/f1/"
        "average_precision/roc_auc per category",
        "measured_items": sub_items,
        "measured_resamples": sub_boot,
        "measured_seconds": t_sub,
        "extrapolation": f"linear in items and resamples: x{factor:g} "
        f"({N_ITEMS} items / {sub_items}) * ({N_BOOT} resamples / {sub_boot})",
        "extrapolated_seconds": t_sub * factor,
    }
    result["speedup"] = t_sub * factor / result["seconds"]

    n_bin, prev = 200_000, np.array([0.005, 0.05, 0.2])
    yb, sb, pb = synth(n_bin, prev, SEED + 2)
    bcats = [f"p{x:g}" for x in prev]
    t0 = time.perf_counter()
    row = compute_metrics(yb, sb, pb, bcats, n_boot=N_BOOT, seed=SEED, method="row")
    t_row = time.perf_counter() - t0
    row2 = compute_metrics(yb, sb, pb, bcats, n_boot=N_BOOT, seed=SEED + 1, method="row")
    t0 = time.perf_counter()
    cell = compute_metrics(yb, sb, pb, bcats, n_boot=N_BOOT, seed=SEED, method="cell")
    t_cell = time.perf_counter() - t0
    widths = {
        m: min(row[c][m].ci_high - row[c][m].ci_low for c in bcats)
        for m in metric_names()
        if get_metric(m).family != "count"
    }
    same_abs, same_rel = binning_same_resamples(yb, sb, N_BOOT, SEED)
    result["binning_error"] = {
        "items": n_bin,
        "categories": len(bcats),
        "prevalences": prev.tolist(),
        "n_boot": N_BOOT,
        "hist_bins": HIST_BINS,
        "note": "max over categories of max(|ci_low diff|, |ci_high diff|); *_abs in metric "
        "units, *_rel divided by the exact row-bootstrap interval width of that category",
        "same_resamples_abs": same_abs,
        "same_resamples_rel": same_rel,
        "end_to_end_cell_vs_row_abs": max_ci_diff(row, cell),
        "end_to_end_cell_vs_row_rel": max_ci_diff(row, cell, relative=True),
        "monte_carlo_row_vs_row_other_seed_abs": max_ci_diff(row, row2),
        "monte_carlo_row_vs_row_other_seed_rel": max_ci_diff(row, row2, relative=True),
        "narrowest_row_ci_width": widths,
        "seconds_row_bootstrap": t_row,
        "seconds_cell_bootstrap": t_cell,
    }
    result["machine"] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "threads_used": min(os.cpu_count() or 1, N_CATS),
        "loadavg_1_5_15_at_start": load_start,
        "loadavg_1_5_15_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "note": "wall-clock timings on a shared machine; other processes' load (loadavg) "
        "inflates them",
    }
    try:
        import sklearn

        result["machine"]["scikit_learn"] = sklearn.__version__
    except ImportError:  # pragma: no cover
        pass
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
