"""Reading a past run for analysis: resolve a record, select results, load predictions.

Every analysis reads ``runs/<run_id>/record.json`` and the per-item prediction Parquet
files it points to (ids, hashes, scores, decisions, gold, slices; no text), so analyses
can be rerun at any time without rescoring.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from audit.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from audit.engine.record import RecordFile
    from audit.records import ResultEntry


def load_record(run: str | Path) -> RecordFile:
    """Load a run record from a run directory, a ``record.json`` path or a run id.

    A bare run id is looked up under :func:`audit._util.settings.runs_dir`.

    Raises:
        ConfigError: nothing matches ``run``.
    """
    from audit._util.settings import runs_dir
    from audit.engine.record import RecordFile

    p = Path(run)
    for cand in (p, runs_dir() / str(run)):
        if (cand.is_dir() and (cand / "record.json").is_file()) or (
            cand.is_file() and cand.name.endswith(".json")
        ):
            return RecordFile.load(cand)
    raise ConfigError(
        "run not found",
        where="RUN",
        field="run",
        expected=f"a run directory, a record.json path or a run id under {runs_dir()}",
        actual=repr(str(run)),
        fix="pass the path printed after 'record:' by 'audit run'",
    )


def select_results(
    record: RecordFile, *, suite: str | None = None, moderator: str | None = None
) -> list[ResultEntry]:
    """Result entries of ``record`` filtered by suite and moderator name.

    Raises:
        ConfigError: the filters match nothing (the message lists what exists).
    """
    res = [
        r
        for r in record.record.results
        if (suite is None or r.suite == suite) and (moderator is None or r.moderator == moderator)
    ]
    if not res:
        have = ", ".join(f"{r.suite} × {r.moderator}" for r in record.record.results)
        raise ConfigError(
            "no result matches the suite / moderator filter",
            where=str(record.path),
            field="--suite/--moderator",
            expected=f"one of: {have or '(no results)'}",
            actual=f"suite={suite!r} moderator={moderator!r}",
        )
    return res


def load_predictions(record: RecordFile, entry: ResultEntry) -> pd.DataFrame:
    """The prediction table (one row per item) of one result entry."""
    import pandas as pd

    return pd.read_parquet(record.dir / entry.predictions)


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
