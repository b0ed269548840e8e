"""Fit per-category calibrators on one split of a run and evaluate them on another.

The fit and evaluation items come either from two result entries of the same suite ×
moderator in one run (``fit_split`` / ``eval_split``, e.g. ``validation`` and ``test``),
or, when the run scored one split only, from a seeded half split of its items by a hash
of the item id (stable across runs and row order). ECE (equal-mass bins) and Brier are
reported before and after on the evaluation items only, with bootstrap intervals.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from audit.calibration.calibrators import Calibrator, Method, fit
from audit.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from audit.engine.record import RecordFile as RunRecord
    from audit.records import ResultEntry


@dataclass(frozen=True)
class Figure:
    """One metric on the evaluation items: value, bootstrap interval, n."""

    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass
class CategoryFit:
    category: str
    calibrator: Calibrator | None
    n_fit: int
    n_fit_pos: int
    n_eval: int
    n_eval_pos: int
    before: dict[str, Figure] = field(default_factory=dict)
    after: dict[str, Figure] = field(default_factory=dict)
    reason: str | None = None


@dataclass
class CalibrationFit:
    method: Method
    provenance: dict[str, Any]
    categories: list[CategoryFit]

    @property
    def calibrators(self) -> dict[str, Calibrator]:
        return {c.category: c.calibrator for c in self.categories if c.calibrator is not None}


def half_split(ids: list[str], seed: int) -> np.ndarray:
    """``True`` for the fit half: the parity of ``sha256(f"{seed}:{id}")``."""
    return np.array(
        [hashlib.sha256(f"{seed}:{i}".encode()).digest()[0] % 2 == 0 for i in ids], dtype=bool
    )


def _figures(
    y: np.ndarray, s: np.ndarray, n_boot: int, seed: int, conf: float
) -> dict[str, Figure]:
    from audit.metrics import brier, ece

    out = {}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, y.size, size=(n_boot, y.size)) if n_boot and y.size else None
    for name, f in (("ece", ece), ("brier", brier)):
        v = float(f(y, s).value)
        lo = hi = math.nan
        if idx is not None:
            boots = np.array([float(f(y[b], s[b]).value) for b in idx])
            boots = boots[~np.isnan(boots)]
            if boots.size:
                a = (1 - conf) / 2
                lo, hi = (float(q) for q in np.quantile(boots, [a, 1 - a]))
        out[name] = Figure(v, lo, hi, int(y.size))
    return out


def _cat_arrays(df: pd.DataFrame, cat: str) -> tuple[np.ndarray, np.ndarray]:
    y = df[f"gold.{cat}"].to_numpy(dtype=np.int64)
    s = df[f"score.{cat}"].to_numpy(dtype=np.float64)
    keep = (y != -1) & ~np.isnan(s)
    return y[keep], s[keep]


def calibrate_run(
    record: RunRecord,
    method: Method,
    *,
    suite: str | None = None,
    moderator: str | None = None,
    fit_split: str | None = None,
    eval_split: str | None = None,
    seed: int = 0,
    n_boot: int = 200,
    conf: float = 0.95,
) -> CalibrationFit:
    """Fit ``method`` per category; see the module docstring for the splits.

    Raises:
        ConfigError: the filters do not pick one suite × moderator, or the named
            splits are not in the run.
    """
    from audit.analysis import analysable_categories, select_results

    entries = select_results(record, suite=suite, moderator=moderator)
    pairs = {(e.suite, e.moderator) for e in entries}
    if len(pairs) != 1:
        raise ConfigError(
            "calibration is fit on one suite × moderator",
            where=str(record.path),
            field="--suite/--moderator",
            expected="filters that pick one of: "
            + ", ".join(f"{s} × {m}" for s, m in sorted(pairs)),
            actual=f"{len(pairs)} pairs",
        )
    if (fit_split is None) != (eval_split is None) or (fit_split and fit_split == eval_split):
        raise ConfigError(
            "give both --fit-split and --eval-split (different), or neither",
            where="audit calibrate",
            field="--fit-split/--eval-split",
            expected="two different split names, or none for a seeded half split",
            actual=f"fit={fit_split!r} eval={eval_split!r}",
        )
    fit_df, eval_df, entry, scheme = _fit_eval_frames(record, entries, fit_split, eval_split, seed)
    sdesc = record.data.get("suites", {}).get(f"{entry.suite}:{entry.split}", {})
    provenance = {
        "run_id": record.run_id,
        "suite": entry.suite,
        "suite_digest": sdesc.get("digest"),
        "moderator": entry.moderator,
        "moderator_fingerprint": (record.data.get("moderators", {}).get(entry.moderator) or {}).get(
            "fingerprint_hash"
        ),
        "seed": seed,
        "n_fit": len(fit_df),
        "n_eval": len(eval_df),
        **scheme,
    }
    out = [
        _fit_category(cat, fit_df, eval_df, method, n_boot, seed, conf)
        for cat in analysable_categories(eval_df, overall=False)
    ]
    return CalibrationFit(method, provenance, out)


def _fit_eval_frames(
    record: RunRecord,
    entries: list[ResultEntry],
    fit_split: str | None,
    eval_split: str | None,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, ResultEntry, dict[str, str]]:
    """The fit and evaluation predictions, the result entry evaluated on, and how the
    two were chosen (two named splits, or a seeded hash half split of one)."""
    from audit.analysis import load_predictions

    by_split = {e.split: e for e in entries}
    if fit_split is not None:
        missing = [s for s in (fit_split, eval_split) if s not in by_split]
        if missing:
            raise ConfigError(
                "split not scored in this run",
                where=str(record.path),
                field="--fit-split/--eval-split",
                expected=f"one of {sorted(str(s) for s in by_split)}",
                actual=", ".join(str(m) for m in missing),
                fix="score both splits in one run (two suite entries), or omit both flags",
            )
        assert fit_split is not None and eval_split is not None  # checked just above
        fit_df = load_predictions(record, by_split[fit_split])
        eval_df = load_predictions(record, by_split[eval_split])
        entry = by_split[eval_split]
        scheme = {"fit_split": fit_split, "eval_split": eval_split}
    else:
        if len(entries) != 1:
            raise ConfigError(
                "several splits scored: name the fit and eval splits",
                where=str(record.path),
                field="--fit-split/--eval-split",
                expected=f"two of {sorted(str(s) for s in by_split)}",
                actual="none given",
            )
        entry = entries[0]
        df = load_predictions(record, entry)
        mask = half_split([str(i) for i in df["id"]], seed)
        fit_df, eval_df = df[mask], df[~mask]
        scheme = {
            "fit_split": f"{entry.split}[hash half 0, seed {seed}]",
            "eval_split": f"{entry.split}[hash half 1, seed {seed}]",
        }
    return fit_df, eval_df, entry, scheme


def _fit_category(
    cat: str,
    fit_df: pd.DataFrame,
    eval_df: pd.DataFrame,
    method: Method,
    n_boot: int,
    seed: int,
    conf: float,
) -> CategoryFit:
    """Fit one category's calibrator and its before/after figures (or say why not)."""
    yf, sf = _cat_arrays(fit_df, cat)
    ye, se = _cat_arrays(eval_df, cat)
    cf = CategoryFit(cat, None, int(yf.size), int(yf.sum()), int(ye.size), int(ye.sum()))
    if yf.size == 0 or yf.min() == yf.max():
        cf.reason = "the fit items need both labels (positives and negatives)"
    elif ye.size == 0:
        cf.reason = "no evaluation items with a known label"
    else:
        cf.calibrator = fit(method, sf, yf)
        cf.before = _figures(ye, se, n_boot, seed, conf)
        cf.after = _figures(ye, cf.calibrator.apply(se), n_boot, seed, conf)
    return cf
