"""Human and reference labels: read, validated against the sample manifest.

Formats: CSV or Parquet with ``item_id, category, label[, labeler]`` (human) and
``item_id, category, label`` or ``item_id, category, score`` (reference).
Documented handling (never silent):

* identical duplicate rows for one (item, category) collapse, counted;
* conflicting duplicates are an error, or resolved by strict majority with
  ``resolve="majority"`` (a tie stays an error);
* labels for (item, category) pairs that were not sampled are an error, or
  ignored and counted with ``allow_unsampled=True``;
* a category absent from the sample is an error (a typo or another policy);
* sampled items without a label are *not* an error here: the estimator reports
  them per stratum and reweights within the stratum (docs §4.6).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from audit.production.errors import LabelsError


@dataclass(frozen=True)
class LabelSet:
    """Validated labels keyed by (item_id, category)."""

    path: str
    sha256: str
    values: dict[tuple[str, str], float]
    n_rows: int
    n_duplicates_collapsed: int
    n_conflicts_resolved: int
    n_unsampled_ignored: int
    kind: Literal["label", "score"]


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise LabelsError(
            "labels file not found",
            where=str(path),
            expected="a CSV or Parquet file",
            actual="no such file",
        )
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"item_id": str, "category": str})
    except Exception as exc:  # pandas / pyarrow parse errors
        raise LabelsError(
            f"cannot read labels: {str(exc).splitlines()[0][:120]}",
            where=str(path),
            expected="CSV with a header, or Parquet",
            actual=type(exc).__name__,
        ) from None


def read_labels(
    path: str | Path,
    sampled: set[tuple[str, str]],
    categories: set[str],
    *,
    reference: bool = False,
    resolve: Literal["error", "majority"] = "error",
    allow_unsampled: bool = False,
) -> LabelSet:
    """Read and validate one labels file against the sampled (item, category) pairs."""
    p = Path(path)
    df = _read(p)
    where = str(p)
    kind, col = _label_column(df, where, reference)
    if df.empty:
        raise LabelsError(
            "labels file has no rows",
            where=where,
            field=col,
            expected="at least one row",
            actual="0 rows",
        )
    ids = df["item_id"]
    vals = _label_values(df, kind, col, where)
    cats = _categories(df, categories, where)
    values, n_dup, n_res = _collapse(
        list(zip(ids.astype(str), cats)), vals, kind, col, resolve, where
    )
    unsampled = [k for k in values if k not in sampled]
    if unsampled and not allow_unsampled:
        raise LabelsError(
            f"{len(unsampled)} labels for items that were not sampled (e.g. {unsampled[0][0]!r}/{unsampled[0][1]!r})",
            where=where,
            field="item_id",
            expected="ids from this sample's batch",
            actual=f"{len(unsampled)} unknown (item, category) pairs",
            fix="label the batch of this manifest, or pass --allow-unsampled to ignore them (counted)",
        )
    for k in unsampled:
        del values[k]
    return LabelSet(
        path=where,
        sha256=hashlib.sha256(p.read_bytes()).hexdigest(),
        values=values,
        n_rows=len(df),
        n_duplicates_collapsed=n_dup,
        n_conflicts_resolved=n_res,
        n_unsampled_ignored=len(unsampled),
        kind=kind,
    )


def _label_values(
    df: pd.DataFrame, kind: Literal["label", "score"], col: str, where: str
) -> pd.Series:
    """The label column as numbers; LabelsError on an empty id or an out-of-range or
    unparsable value (nothing is coerced)."""
    ids = df["item_id"]
    if ids.isna().any():
        raise LabelsError(
            "empty item_id",
            where=where,
            field="item_id",
            expected="an id on every row",
            actual=f"{int(ids.isna().sum())} empty",
        )
    vals = pd.to_numeric(
        df[col].map(lambda v: float(v) if isinstance(v, bool) else v), errors="coerce"
    )
    bad = vals.isna() & df[col].notna() | df[col].isna()
    if kind == "label":
        bad = bad | ~vals.isin([0, 1])
        exp = "0 or 1"
    else:
        bad = bad | (vals < 0) | (vals > 1)
        exp = "a score in [0, 1]"
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise LabelsError(
            f"bad {col} on row {i + 2} (item {df['item_id'].iloc[i]!r}); {int(bad.sum())} such rows",
            where=where,
            field=col,
            expected=exp,
            actual=repr(df[col].iloc[i]),
            fix="relabel or drop these rows; nothing is coerced",
        )
    return vals


def _categories(df: pd.DataFrame, categories: set[str], where: str) -> pd.Series:
    """The category column as strings; LabelsError on a category not in the sample."""
    cats = df["category"].astype(str)
    unknown = sorted(set(cats) - categories)
    if unknown:
        raise LabelsError(
            f"category {unknown[0]!r} is not in the sample ({len(unknown)} unknown)",
            where=where,
            field="category",
            expected=f"one of {sorted(categories)}",
            actual=repr(unknown[0]),
            fix="check the category ids against the policy and the logs",
        )
    return cats


def _label_column(
    df: pd.DataFrame, where: str, reference: bool
) -> tuple[Literal["label", "score"], str]:
    """Which column carries the labels (``label``, or a reference labeller's ``score``);
    LabelsError when the key columns or both are missing."""
    for col in ("item_id", "category"):
        if col not in df.columns:
            raise LabelsError(
                f"column {col!r} missing",
                where=where,
                field=col,
                expected="columns item_id, category, label",
                actual=str(list(df.columns)[:8]),
            )
    if "label" in df.columns:
        kind: Literal["label", "score"] = "label"
        col = "label"
    elif reference and "score" in df.columns:
        kind, col = "score", "score"
    else:
        raise LabelsError(
            "column 'label' missing",
            where=where,
            field="label",
            expected="a label column (0/1)" + (" or a score column in [0, 1]" if reference else ""),
            actual=str(list(df.columns)[:8]),
        )
    return kind, col


def _collapse(
    keys: list[tuple[str, str]],
    vals: pd.Series,
    kind: str,
    col: str,
    resolve: Literal["error", "majority"],
    where: str,
) -> tuple[dict[tuple[str, str], float], int, int]:
    """One value per (item, category): identical repeats collapse (counted), conflicts are
    an error or, with ``resolve="majority"``, a strict majority of 0/1 labels."""
    groups: dict[tuple[str, str], list[float]] = {}
    for k, v in zip(keys, vals.to_numpy(dtype=float)):
        groups.setdefault(k, []).append(float(v))
    values: dict[tuple[str, str], float] = {}
    n_dup = n_res = 0
    for k, vs in groups.items():
        if len(vs) == 1:
            values[k] = vs[0]
            continue
        if len(set(vs)) == 1:
            n_dup += len(vs) - 1
            values[k] = vs[0]
            continue
        if resolve == "majority" and kind == "label":
            ones = sum(vs)
            if ones * 2 != len(vs):
                values[k] = float(ones * 2 > len(vs))
                n_res += 1
                continue
        raise LabelsError(
            f"conflicting labels for item {k[0]!r} category {k[1]!r}: {vs}",
            where=where,
            field=col,
            expected="one label per (item_id, category)"
            + (" or a strict majority" if resolve == "majority" else ""),
            actual=f"{len(vs)} rows that disagree",
            fix="adjudicate, or pass --resolve majority",
        )
    return values, n_dup, n_res
