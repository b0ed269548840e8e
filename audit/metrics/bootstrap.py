"""``compute_metrics``: every metric × category with percentile-bootstrap intervals.

Point estimates are always exact (computed on the items themselves). Intervals are
95% (``ci``) **percentile bootstrap** intervals over items (Efron, 1979, "Bootstrap methods:
another look at the jackknife"; Efron & Tibshirani 1993, ch. 13), as docs/methods.md §2 asks for
non-decomposable metrics, computed one of two ways:

``row-bootstrap`` (exact; used when ``n × K ≤ ROW_BOOTSTRAP_MAX_CELLS``)
    ``n_boot`` resamples of the ``n`` rows are drawn **once** as row indices from
    ``numpy.random.default_rng(seed)`` (in chunks of consecutive draws from that one stream)
    and reused for every metric and every category, including ``"overall"``: the
    intervals are *paired* across categories and metrics (the same resampled items
    everywhere), so per-category intervals can be compared or combined. A row that is
    excluded for a category (unknown label, NaN score) is drawn like any other row and then
    ignored by that category, so a category's size varies across resamples as it would in
    a fresh sample.

``cell-bootstrap`` (fast; used above that size)
    Each category's metrics are computed from sufficient statistics whose counts are
    resampled directly: the 2×2 confusion table (multinomial draw of the category's ``n``
    over its 4 cells, equivalent to resampling its items) for precision / recall / F1 /
    FPR / prevalence, and a per-class score histogram (``hist_bins`` quantile bins, half
    from the positives' and half from the negatives' scores; multinomial draw over the
    ``2 × J`` cells) for AUPRC / AUROC / R@P / TPR@FPR / ECE / Brier, computed from
    cumulative bin counts. Binning treats the scores inside one fine bin as tied, which
    shifts the ranking metrics slightly; the bootstrap replicates are therefore
    **re-centred** by ``exact point − binned point`` so they describe the spread around the
    exact estimate (the benchmark ``bench/bench_metrics.py`` reports the remaining
    difference to the exact row bootstrap). The draws are independent per category (its
    own child stream ``SeedSequence(seed, spawn_key=(k,))``) and the confusion table and
    histogram are drawn separately, so **the cross-category (and threshold-vs-ranking)
    pairing of the row bootstrap is lost** on this path; each marginal interval is still a
    valid item bootstrap (conditional on the category's size).

Cost and accuracy (``bench/bench_metrics.py``, ``bench/results/metrics.json``, 2 cores): the
row path does ``O(n_boot · Σ_k n_k)`` work, about 10 s at the switch point (20,000 items ×
10 categories, 1,000 resamples); the cell path is one sort per category plus
``O(n_boot · hist_bins)``, about 4 s at 1,000,000 items × 10 categories. Evaluated on the
*same* row resamples, the histogram moves interval bounds by ≤ 0.1% of the interval width
for AUROC / Brier, ≤ 3% for AUPRC / ECE and up to about 7% for R@P / TPR@FPR (step
functions of the threshold) at 200,000 items; the threshold metrics have no binning error.

Percentile intervals ignore resamples on which a metric is undefined (e.g. no positives
drawn). If the percentile interval does not contain the point estimate (possible for
skewed, discrete statistics), it is **widened to include it**: ``lo = min(lo, point)``,
``hi = max(hi, point)``. Counts (``support``, ``n_pos``) are reported exactly
(``method="exact"``, interval = value).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from audit.metrics.classification import Confusion, confusion
from audit.metrics.ranking import ScoreBins, exact_bins, quantile_bins, sort_desc, tie_starts
from audit.metrics.registry import (
    MetricResult,
    MetricSpec,
    MetricValue,
    UndefinedMetricWarning,
    as_labels,
    as_pred,
    as_scores,
    get_metric,
    metric_names,
    point_result,
)

#: Use the exact row bootstrap while ``n_items × n_categories`` is at most this.
ROW_BOOTSTRAP_MAX_CELLS = 50_000
#: Fine histogram bins per category for the cell bootstrap of score-based metrics.
HIST_BINS = 1024
#: Row-bootstrap chunk: at most this many resampled row indices in memory at once.
CHUNK_ELEMS = 1 << 21

Method = Literal["auto", "row", "cell"]
_T = TypeVar("_T")


@dataclass
class _RowPlan:
    """How to turn resampled row weights into one column's statistics (row path)."""

    rows: np.ndarray  # the column's valid rows, in descending-score order when ranked
    onehot: np.ndarray  # (n_k, 4) float: confusion cell (tn, fp, fn, tp) of each row
    y: np.ndarray  # (n_k,) float labels in the same order
    starts: np.ndarray | None  # tie-run starts (None: no ties / no ranking metrics)
    bins: ScoreBins | None  # exact bins (per-bin score means for ECE / Brier)


@dataclass
class _Column:
    """One category (or "overall"): exact point results plus what its bootstrap needs.

    Only the compact statistics are kept (the sorted copies are dropped once the exact
    points and the bins are built), so memory stays a few arrays per column.
    """

    name: str
    n: int
    points: dict[str, MetricResult]
    conf: Confusion
    plan: _RowPlan | None = None  # row path
    binned: ScoreBins | None = None  # cell path: quantile histogram


#: binomial-proportion metrics: name → (successes, trials) from the confusion cells
_PROPORTIONS: dict[str, Callable[[Confusion], tuple[float, float]]] = {
    "precision": lambda c: (float(c.tp.sum()), float((c.tp + c.fp).sum())),
    "recall": lambda c: (float(c.tp.sum()), float((c.tp + c.fn).sum())),
    "fpr": lambda c: (float(c.fp.sum()), float((c.fp + c.tn).sum())),
    "prevalence": lambda c: (float(c.n_pos.sum()), float(c.n.sum())),
}


def boundary_wilson(
    name: str, conf: Confusion, point: float, ci: float
) -> tuple[float, float] | None:
    """Wilson interval for a proportion metric whose estimate sits at 0 or 1, else None.

    At the boundary every bootstrap replicate repeats the estimate (3 of 3 predicted
    positives correct resample to precision 1.0 every time), so the percentile interval
    collapses to a point — a false certainty. The Wilson score interval on the metric's
    own count is the honest one there (docs/methods.md §Intervals).
    """
    from audit.metrics.stats import wilson, z_value

    if name not in _PROPORTIONS or not np.isfinite(point) or 0.0 < point < 1.0:
        return None
    k, n = _PROPORTIONS[name](conf)
    if n <= 0:
        return None
    lo, hi = wilson(np.asarray(k), np.asarray(n), z_value(ci))
    # exact ends at the boundary (the closed form leaves ~1e-17 of rounding)
    return (0.0 if k == 0 else float(lo)), (1.0 if k == n else float(hi))


def percentile_interval(boot: np.ndarray, point: float, ci: float) -> tuple[float, float]:
    """Percentile interval of the finite replicates, widened to contain ``point``."""
    if np.isnan(point):
        return float("nan"), float("nan")
    finite = boot[np.isfinite(boot)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(min(lo, point)), float(max(hi, point))


def prepare_column(
    name: str,
    y: np.ndarray,
    score: np.ndarray,
    pred: np.ndarray,
    specs: list[MetricSpec],
    method: str,
    hist_bins: int,
) -> _Column:
    """Exclude rows, compute exact points, and build the row plan or the histogram."""
    mask = (y >= 0) & ~np.isnan(score)
    yk, sk, pk = y[mask], score[mask], pred[mask]
    n = int(yk.size)
    conf = confusion(yk, pk)
    bins = order = y_desc = s_desc = None
    if any(s.family == "ranking" for s in specs):
        order, y_desc, s_desc = sort_desc(yk, sk)
        bins = exact_bins(y_desc, s_desc)
    points = {
        spec.name: point_result(
            spec,
            bins if spec.family == "ranking" else conf,
            n=n,
            n_pos=int(conf.n_pos[0]),
            n_pred_pos=int(conf.n_pred_pos[0]),
            n_excluded=int(mask.size - n),
            warn=False,
        )
        for spec in specs
    }
    col = _Column(name, n, points, conf)
    if method == "row":
        rows = np.flatnonzero(mask)
        starts = None
        if bins is not None and order is not None and s_desc is not None:
            rows, yk, pk = rows[order], y_desc, pk[order]
            runs = tie_starts(s_desc)
            starts = None if runs.size == n else runs
            bins = bins.with_counts(bins.pos, bins.neg)  # drop the cached curves
        onehot = np.zeros((n, 4))
        onehot[np.arange(n), 2 * yk.astype(np.intp) + pk.astype(np.intp)] = 1.0
        col.plan = _RowPlan(rows, onehot, yk.astype(np.float64), starts, bins)
    elif y_desc is not None and s_desc is not None:
        col.binned = quantile_bins(y_desc, s_desc, hist_bins)
    return col


def parallel_map(fn: Callable[..., _T], args: Sequence[tuple[Any, ...]], threads: int) -> list[_T]:
    """``[fn(*a) for a in args]``, on a thread pool when ``threads > 1``.

    numpy releases the GIL in sorting, ufunc loops and each Generator's multinomial draws,
    so columns run concurrently; every column owns its random stream (cell path) or only
    reads the shared weights (row path), so results do not depend on ``threads``.
    """
    if threads <= 1 or len(args) <= 1:
        return [fn(*a) for a in args]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda a: fn(*a), args))


def _batch_all(
    specs: list[MetricSpec], conf: Confusion, bins: ScoreBins | None
) -> dict[str, np.ndarray]:
    return {
        spec.name: np.asarray(spec.batch(bins if spec.family == "ranking" else conf, **spec.params))
        for spec in specs
    }


def row_chunk(col: _Column, weights: np.ndarray, specs: list[MetricSpec]) -> dict[str, np.ndarray]:
    """All metrics of one column on ``b`` row resamples given as ``(b, n)`` weights."""
    if col.n == 0 or col.plan is None:
        return {spec.name: np.full(weights.shape[0], np.nan) for spec in specs}
    plan = col.plan
    w = np.take(weights, plan.rows, axis=1)
    conf = Confusion.from_cells(w @ plan.onehot)
    bins = None
    if plan.bins is not None:
        pos = w * plan.y
        if plan.starts is not None:
            pos = np.add.reduceat(pos, plan.starts, axis=1)
            w = np.add.reduceat(w, plan.starts, axis=1)
        bins = plan.bins.with_counts(pos, w - pos)
    return _batch_all(specs, conf, bins)


def _row_bootstrap(
    cols: list[_Column], specs: list[MetricSpec], n_rows: int, n_boot: int, seed: int, threads: int
) -> list[dict[str, np.ndarray]]:
    """Exact row bootstrap: one index draw per chunk, shared by all columns and metrics."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, list[np.ndarray]]] = [{s.name: [] for s in specs} for _ in cols]
    chunk = max(1, CHUNK_ELEMS // max(n_rows, 1))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n_rows, size=(b, n_rows))
        idx += (np.arange(b, dtype=idx.dtype) * n_rows)[:, None]
        weights = np.bincount(idx.ravel(), minlength=b * n_rows).reshape(b, n_rows)
        weights = weights.astype(np.float64)
        del idx
        args = [(c, weights, specs) for c in cols]
        for acc, res in zip(out, parallel_map(row_chunk, args, threads), strict=True):
            for name, vals in res.items():
                acc[name].append(vals)
        done += b
    return [{k: np.concatenate(v) for k, v in acc.items()} for acc in out]


def _cell_column(
    k: int, col: _Column, specs: list[MetricSpec], n_boot: int, seed: int
) -> dict[str, np.ndarray]:
    """Cell bootstrap of one column: multinomial draws on its 2×2 table and histogram."""
    if col.n == 0:
        return {s.name: np.full(n_boot, np.nan) for s in specs}
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
    c = col.conf
    cells = np.array([c.tn[0], c.fp[0], c.fn[0], c.tp[0]])
    conf = Confusion.from_cells(rng.multinomial(col.n, cells / col.n, size=n_boot))
    bins = None
    if col.binned is not None:
        j = col.binned.pos.shape[1]
        p = np.concatenate([col.binned.pos[0], col.binned.neg[0]]) / col.n
        draws = rng.multinomial(col.n, p, size=n_boot).astype(np.float64)
        bins = col.binned.with_counts(draws[:, :j], draws[:, j:])
    boot = _batch_all(specs, conf, bins)
    for spec in specs:
        if spec.family == "ranking" and col.binned is not None:
            # re-centre on the exact estimate (module docstring)
            binned_point = float(spec.batch(col.binned, **spec.params)[0])
            shift = col.points[spec.name].value - binned_point
            if np.isfinite(shift):
                boot[spec.name] = boot[spec.name] + shift
    return boot


def _as_2d(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, 1) if a.ndim == 1 else a


def compute_metrics(
    y: np.ndarray,
    score: np.ndarray,
    pred: np.ndarray,
    categories: list[str],
    *,
    metrics: list[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    overall: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    method: Method = "auto",
    hist_bins: int = HIST_BINS,
    threads: int | None = None,
) -> dict[str, dict[str, MetricValue]]:
    """All requested metrics for every category (and ``"overall"``), with intervals.

    Args:
        y: ``(n, K)`` int8 labels, 1 positive, 0 negative, -1 unknown (excluded).
        score: ``(n, K)`` float scores in [0, 1]; NaN = not scored (excluded).
        pred: ``(n, K)`` bool decisions at the configured thresholds.
        categories: the ``K`` category names, in column order.
        metrics: metric names (default: every registered metric). Unknown names raise
            :class:`~audit.errors.ConfigError`.
        n_boot: bootstrap resamples (0: no intervals).
        ci: interval coverage (0.95).
        seed: seed of the bootstrap stream; the same seed gives the same intervals.
        overall: optional ``(y, score, pred)`` 1-D arrays over the same ``n`` rows for the
            any-violation label, reported under ``"overall"`` and resampled with the rows.
        method: ``"auto"`` (row bootstrap when ``n·K ≤ ROW_BOOTSTRAP_MAX_CELLS``, else
            cell), ``"row"`` or ``"cell"`` to force one (see the module docstring).
        hist_bins: fine bins of the cell bootstrap's score histogram.
        threads: worker threads over categories (default: CPU count). Results do not
            depend on it.

    Returns:
        ``{category: {metric: MetricValue}}``; undefined metrics are NaN with a reason and
        raise an :class:`UndefinedMetricWarning` naming the category.
    """
    yy, ss, pp = _as_2d(as_labels(y)), _as_2d(as_scores(score)), _as_2d(as_pred(pred))
    _check_arguments(yy, ss, pp, categories, ci, n_boot, method)
    specs = [get_metric(m) for m in (metric_names() if metrics is None else metrics)]
    names = list(categories)
    if overall is not None:
        yy, ss, pp = _with_overall(yy, ss, pp, names, overall)
        names.append("overall")
    n_rows = yy.shape[0]
    if method == "auto":  # the size rule counts the categories, not the overall column
        method = "row" if n_rows * len(categories) <= ROW_BOOTSTRAP_MAX_CELLS else "cell"
    n_threads = max(1, min(threads or os.cpu_count() or 1, len(names)))
    prep = [
        (nm, yy[:, k], ss[:, k], pp[:, k], specs, method, hist_bins) for k, nm in enumerate(names)
    ]
    cols = parallel_map(prepare_column, prep, n_threads)
    boot_specs = [s for s in specs if s.family != "count"]
    boots: list[dict[str, np.ndarray]] | None = None
    if n_boot > 0 and boot_specs and n_rows > 0:
        if method == "row":
            boots = _row_bootstrap(cols, boot_specs, n_rows, n_boot, seed, n_threads)
        else:
            args = [(k, col, boot_specs, n_boot, seed) for k, col in enumerate(cols)]
            boots = parallel_map(_cell_column, args, n_threads)
    label = "row-bootstrap" if method == "row" else "cell-bootstrap"
    out: dict[str, dict[str, MetricValue]] = {}
    for k, col in enumerate(cols):  # a loop, not a comprehension: see the stacklevel below
        out[col.name] = _metric_values(col, specs, None if boots is None else boots[k], ci, label)
    return out


def _check_arguments(
    yy: np.ndarray,
    ss: np.ndarray,
    pp: np.ndarray,
    categories: list[str],
    ci: float,
    n_boot: int,
    method: str,
) -> None:
    if not (yy.shape == ss.shape == pp.shape):
        raise ValueError(f"shapes differ: y {yy.shape}, score {ss.shape}, pred {pp.shape}")
    names = list(categories)
    if len(names) != yy.shape[1] or len(set(names)) != len(names):
        raise ValueError(f"need {yy.shape[1]} distinct category names, got {names!r}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    if method not in ("auto", "row", "cell"):
        raise ValueError(f"method must be 'auto', 'row' or 'cell', got {method!r}")


def _with_overall(
    yy: np.ndarray,
    ss: np.ndarray,
    pp: np.ndarray,
    names: list[str],
    overall: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arrays with the any-violation column appended (resampled with the rows)."""
    if "overall" in names:
        raise ValueError("a category is named 'overall' and `overall` was given")
    oy, os_, op = as_labels(overall[0]), as_scores(overall[1]), as_pred(overall[2])
    if not (oy.shape == os_.shape == op.shape == (yy.shape[0],)):
        raise ValueError(f"overall arrays must have shape ({yy.shape[0]},)")
    return np.column_stack([yy, oy]), np.column_stack([ss, os_]), np.column_stack([pp, op])


def _metric_values(
    col: _Column,
    specs: list[MetricSpec],
    boot: dict[str, np.ndarray] | None,
    ci: float,
    label: str,
) -> dict[str, MetricValue]:
    """One column's metrics: point estimates with their bootstrap interval (counts are
    exact, no interval without a bootstrap); undefined ones warn, naming the category."""
    per: dict[str, MetricValue] = {}
    for spec in specs:
        res = col.points[spec.name]
        if res.reason is not None:
            warnings.warn(
                f"category {col.name!r}: {spec.name} is undefined: {res.reason}",
                UndefinedMetricWarning,
                stacklevel=3,  # attributed to compute_metrics' caller
            )
        if spec.family == "count":
            lo, hi, how = res.value, res.value, "exact"
        elif boot is None:
            lo, hi, how = float("nan"), float("nan"), "none"
        else:
            lo, hi = percentile_interval(boot[spec.name], res.value, ci)
            how = label
            wil = boundary_wilson(spec.name, col.conf, res.value, ci)
            if wil is not None:
                lo, hi, how = wil[0], wil[1], "wilson (boundary)"
        per[spec.name] = MetricValue(
            spec.name, res.value, lo, hi, col.n, res.reason, how, res.n_excluded
        )
    return per
