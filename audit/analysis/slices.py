"""Root-cause analysis: metrics per slice value, error contribution, "worse than overall".

For one suite × moderator result and every slice column (``slice.<name>`` in the
prediction table: language, surface, source, HateCheck ``functionality``, XSTest
``type``...) and every value of it, :func:`slice_table` reports

* support ``n``, gold positives ``n_pos``, the confusion cells;
* precision, recall and FPR with Wilson intervals (Wilson 1927; docs/methods.md §2) and F1
  with a percentile-bootstrap interval from :func:`audit.metrics.compute_metrics`;
  undefined metrics are NaN with a reason (e.g. no gold positives in the slice);
* ``error_contribution``: the share of the result's errors (FP + FN, per category and
  for ``overall``) that fall in this slice value — the ranking key;
* ``p_value``: one-sided Fisher exact test that the error rate inside the slice value is
  higher than outside it, and ``q_value``: Benjamini–Hochberg adjusted across every slice
  value tested in the table (Benjamini & Hochberg 1995; docs/methods.md §3, screening).

Missing slice values are grouped as ``(missing)``; a slice column with a single value
(e.g. ``source`` on a one-source suite) has no "outside" and is skipped.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from audit.analysis._data import analysable_categories, category_arrays
from audit.metrics.stats import bh_qvalues, wilson, z_value

if TYPE_CHECKING:
    import pandas as pd

MISSING = "(missing)"


def _fisher_greater(a: int, b: int, c: int, d: int) -> float:
    """One-sided Fisher exact p-value for ``a/(a+b) > c/(c+d)``."""
    from scipy.stats import fisher_exact

    return float(fisher_exact([[a, b], [c, d]], alternative="greater")[1])


def _f1_interval(
    y: np.ndarray, s: np.ndarray, p: np.ndarray, n_boot: int, conf: float, seed: int
) -> tuple[float, float, float, str | None]:
    from audit.metrics import UndefinedMetricWarning, compute_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        mv = compute_metrics(
            y[:, None], s[:, None], p[:, None].astype(bool), ["c"],
            metrics=["f1"], n_boot=n_boot, ci=conf, seed=seed,
        )["c"]["f1"]  # fmt: skip
    return mv.value, mv.ci_low, mv.ci_high, mv.reason


def slice_table(
    df: pd.DataFrame,
    *,
    categories: list[str] | None = None,
    slices: list[str] | None = None,
    conf: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Per category × slice column × slice value metrics, ranked by error contribution.

    Args:
        df: a prediction table (see :mod:`audit.engine.record`).
        categories: categories to analyse (default: every category with scores and known
            gold, plus ``overall``).
        slices: slice names without the ``slice.`` prefix (default: all).
        conf: two-sided confidence level of the intervals.
        n_boot: bootstrap resamples for the F1 interval (0: no interval).
        seed: bootstrap seed.

    Returns:
        One row per (category, slice, value), sorted by category then by descending
        ``error_contribution``; ``q_value`` is BH-adjusted over all rows.
    """
    import pandas as pd

    cats = categories if categories is not None else analysable_categories(df)
    cols = [c for c in df.columns if c.startswith("slice.")]
    if slices is not None:
        cols = [f"slice.{s}" for s in slices if f"slice.{s}" in df.columns]
    st = _Settings(z=z_value(conf), conf=conf, n_boot=n_boot, seed=seed)
    rows: list[dict[str, Any]] = []
    for cat in cats:
        a = _errors_of(df, cat)
        for col in cols:
            vals = df[col].astype(object).where(df[col].notna(), MISSING).astype(str)
            values = vals.to_numpy()
            uniq = sorted(set(values))
            if len(uniq) < 2:  # a constant column (e.g. source) has no "outside"
                continue
            for v in uniq:
                rows.append(_slice_row(cat, col[len("slice.") :], v, values == v, a, st))
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["q_value"] = bh_qvalues(out["p_value"].to_numpy())
    order = {c: i for i, c in enumerate(cats)}
    out["_c"] = out["category"].map(order)
    out["_e"] = out["error_contribution"].fillna(-1.0)
    out = out.sort_values(["_c", "_e", "error_rate"], ascending=[True, False, False])
    return out.drop(columns=["_c", "_e"]).reset_index(drop=True)


@dataclass(frozen=True)
class _Settings:
    z: float
    conf: float
    n_boot: int
    seed: int


@dataclass(frozen=True)
class _CategoryErrors:
    """One category's arrays over the whole result, and which items are errors."""

    y: np.ndarray
    s: np.ndarray
    pred: np.ndarray
    valid: np.ndarray
    """scored, with known gold"""
    err: np.ndarray
    """valid and wrong (FP or FN)"""
    total_err: int


def _errors_of(df: pd.DataFrame, cat: str) -> _CategoryErrors:
    y, s, pr = category_arrays(df, cat)
    valid = (y != -1) & ~np.isnan(s) & ~np.isnan(pr)
    pred = np.nan_to_num(pr, nan=0.0) == 1
    err = valid & (((y == 0) & pred) | ((y == 1) & ~pred))
    return _CategoryErrors(y, s, pred, valid, err, int(err.sum()))


def _slice_row(
    cat: str, slice_name: str, value: str, m: np.ndarray, a: _CategoryErrors, st: _Settings
) -> dict[str, Any]:
    """One (category, slice, value) row: confusion cells, metrics with intervals, the
    error share and the inside-vs-outside test, with the reasons for any NaN."""
    from audit.metrics import UndefinedMetricWarning, fpr, precision, recall

    mi, mo = m & a.valid, ~m & a.valid
    ok = a.valid[m]
    yk, pk = a.y[m][ok], a.pred[m][ok]
    tp = int(((yk == 1) & pk).sum())
    fp = int(((yk == 0) & pk).sum())
    fn = int(((yk == 1) & ~pk).sum())
    tn = int(((yk == 0) & ~pk).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        pm = precision(yk, pk)
        rm = recall(yk, pk)
        fm = fpr(yk, pk)
    p_lo, p_hi = wilson(tp, tp + fp, st.z)
    r_lo, r_hi = wilson(tp, tp + fn, st.z)
    f_lo, f_hi = wilson(fp, fp + tn, st.z)
    f1v, f1lo, f1hi, f1reason = _f1_interval(yk, a.s[m][ok], pk, st.n_boot, st.conf, st.seed)
    e_in, n_in = int(a.err[mi].sum()), int(mi.sum())
    e_out, n_out = int(a.err[mo].sum()), int(mo.sum())
    pval, reasons = _error_test(e_in, n_in, e_out, n_out)
    for name, r in (("precision", pm), ("recall", rm), ("fpr", fm)):
        if r.reason:
            reasons.append(f"{name}: {r.reason}")
    if f1reason and rm.reason is None:
        reasons.append(f"f1: {f1reason}")
    return {
        "category": cat,
        "slice": slice_name,
        "value": value,
        "n": n_in,
        "n_pos": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": pm.value,
        "precision_lo": float(p_lo),
        "precision_hi": float(p_hi),
        "recall": rm.value,
        "recall_lo": float(r_lo),
        "recall_hi": float(r_hi),
        "f1": f1v,
        "f1_lo": f1lo,
        "f1_hi": f1hi,
        "fpr": fm.value,
        "fpr_lo": float(f_lo),
        "fpr_hi": float(f_hi),
        "errors": e_in,
        "error_rate": e_in / n_in if n_in else np.nan,
        "error_rate_outside": e_out / n_out if n_out else np.nan,
        "error_contribution": e_in / a.total_err if a.total_err else np.nan,
        "p_value": pval,
        "reason": "; ".join(reasons) or None,
    }


def _error_test(e_in: int, n_in: int, e_out: int, n_out: int) -> tuple[float, list[str]]:
    """Fisher p-value that the error rate inside exceeds the rate outside (NaN, with
    the reason, when either side is empty)."""
    if n_in == 0:
        return np.nan, ["no scored items with known gold in the slice"]
    if n_out == 0:
        return np.nan, ["slice covers every item: nothing to compare to"]
    return _fisher_greater(e_in, n_in - e_in, e_out, n_out - e_out), []


def rca(
    record: Any,
    *,
    suite: str | None = None,
    moderator: str | None = None,
    conf: float = 0.95,
    n_boot: int = 200,
) -> list[dict[str, Any]]:
    """Root-cause tables for every selected suite × moderator result of a run.

    Returns:
        ``[{"suite", "moderator", "table": DataFrame}]``; q-values are adjusted within
        each result's table.
    """
    from audit.analysis._data import load_predictions, select_results

    seed = int(record.record.config.get("metrics", {}).get("seed", 0) or 0)
    out = []
    for entry in select_results(record, suite=suite, moderator=moderator):
        df = load_predictions(record, entry)
        table = slice_table(df, conf=conf, n_boot=n_boot, seed=seed)
        out.append({"suite": entry.suite, "moderator": entry.moderator, "table": table})
    return out
