"""Post-run analysis of a run record: root causes by slice, operating points, disagreements.

Every function here reads ``runs/<run_id>/record.json`` and the per-item prediction
Parquet files it points to (ids, hashes, scores, decisions, gold, slices; no text), so
analyses can be rerun at any time without rescoring.

Shared helpers (METHODS.md §2, §3):

* :func:`load_run` / :func:`select_results` / :func:`load_predictions` — resolve a run id
  or path and read one suite × moderator result;
* :func:`wilson` — Wilson score interval for a binomial proportion (Wilson 1927,
  "Probable inference, the law of succession, and statistical inference", JASA 22);
* :func:`bh_qvalues` — Benjamini–Hochberg step-up adjusted p-values (Benjamini &
  Hochberg 1995, "Controlling the false discovery rate", JRSS B 57).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audit.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from audit.record import RunRecord


def load_run(run: str | Path) -> RunRecord:
    """Load a run record from a run directory, a ``record.json`` path or a run id.

    A bare run id is looked up under :func:`audit.settings.runs_dir`.

    Raises:
        ConfigError: nothing matches ``run``.
    """
    from audit.record import RunRecord
    from audit.settings import runs_dir

    p = Path(run)
    for cand in (p, runs_dir() / str(run)):
        if (cand.is_dir() and (cand / "record.json").is_file()) or (
            cand.is_file() and cand.name.endswith(".json")
        ):
            return RunRecord.load(cand)
    raise ConfigError(
        "run not found",
        where="RUN",
        field="run",
        expected=f"a run directory, a record.json path or a run id under {runs_dir()}",
        actual=repr(str(run)),
        fix="pass the path printed after 'record:' by 'audit run'",
    )


def select_results(
    record: RunRecord, *, suite: str | None = None, moderator: str | None = None
) -> list[dict[str, Any]]:
    """Result entries of ``record`` filtered by suite and moderator name.

    Raises:
        ConfigError: the filters match nothing (the message lists what exists).
    """
    res = [
        r
        for r in record.data.get("results", [])
        if (suite is None or r["suite"] == suite)
        and (moderator is None or r["moderator"] == moderator)
    ]
    if not res:
        have = ", ".join(f"{r['suite']} × {r['moderator']}" for r in record.data["results"])
        raise ConfigError(
            "no result matches the suite / moderator filter",
            where=str(record.path),
            field="--suite/--moderator",
            expected=f"one of: {have or '(no results)'}",
            actual=f"suite={suite!r} moderator={moderator!r}",
        )
    return res


def load_predictions(record: RunRecord, entry: dict[str, Any]) -> pd.DataFrame:
    """The prediction table (one row per item) of one result entry."""
    import pandas as pd

    return pd.read_parquet(record.dir / entry["predictions"])


def analysable_categories(df: pd.DataFrame, *, overall: bool = True) -> list[str]:
    """Categories with scores and at least one known gold label (plus ``overall``)."""
    cats = [
        c[len("score.") :]
        for c in df.columns
        if c.startswith("score.") and c != "score.overall" and f"gold.{c[6:]}" in df.columns
    ]
    out = [c for c in cats if (df[f"gold.{c}"] != -1).any()]
    if overall and (df["gold.overall"] != -1).any() and df["score.overall"].notna().any():
        out.append("overall")
    return out


def category_arrays(df: pd.DataFrame, cat: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y, score, pred)`` for one category: int8 gold, float score, float 1/0/NaN pred."""
    y = df[f"gold.{cat}"].to_numpy(dtype=np.int8)
    s = df[f"score.{cat}"].to_numpy(dtype=float)
    p = df[f"pred.{cat}"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    return y, s, p


def z_value(conf: float, *, one_sided: bool = False) -> float:
    """Standard-normal quantile for a two-sided (or one-sided) confidence level."""
    from scipy.stats import norm

    return float(norm.ppf(conf if one_sided else 0.5 + conf / 2))


def wilson(k: Any, n: Any, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval ``(low, high)`` for ``k`` successes in ``n`` trials.

    Vectorised over ``k`` and ``n``; NaN where ``n == 0`` (METHODS.md §2; Wilson 1927).
    With ``z = z_value(1 - alpha, one_sided=True)`` the low end is a one-sided lower
    confidence bound at level ``1 - alpha``.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        den = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
        lo = np.where(n > 0, np.clip(centre - half, 0, 1), np.nan)
        hi = np.where(n > 0, np.clip(centre + half, 0, 1), np.nan)
    return lo, hi


def bh_qvalues(p: Any) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values); NaN p-values are left out.

    ``q_(i) = min_{j ≥ i} m · p_(j) / j`` over the ``m`` defined p-values sorted
    ascending, capped at 1 (Benjamini & Hochberg 1995; METHODS.md §3, screening).
    """
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.where(~np.isnan(p))[0]
    m = ok.size
    if m == 0:
        return q
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    return q


def jsonable(x: Any) -> Any:
    """Floats → JSON (NaN → ``None``), numpy scalars → Python, recursively."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    if x is not None and not isinstance(x, (str, int, float, bool)):
        try:
            import pandas as pd

            if pd.isna(x):
                return None
        except (TypeError, ValueError):
            pass
        return str(x)
    return x


__all__ = [
    "analysable_categories",
    "bh_qvalues",
    "category_arrays",
    "jsonable",
    "load_predictions",
    "load_run",
    "select_results",
    "wilson",
    "z_value",
]
