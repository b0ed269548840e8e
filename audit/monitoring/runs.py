"""Golden-set run records as drift periods: one period per run, per suite × moderator.

Each run's prediction Parquet gives, per category, the scores (``score.<cat>``), the
decisions at the run's thresholds (``pred.<cat>``) and the gold labels (``gold.<cat>``,
−1 unknown). The policy version of a run is its policy ref and content digest, so an
edited policy file under an unchanged name is still a boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from audit.monitoring.report import DriftConfig, DriftInput, DriftSeries, drift_series

if TYPE_CHECKING:
    from audit.engine.record import RecordFile as RunRecord
    from audit.records import ResultEntry


def policy_version(record: RunRecord) -> str:
    """``<policy ref>@<digest prefix>`` of a run record."""
    pol = record.record.policy
    return f"{pol.ref}@{pol.digest[:12]}"


def run_inputs(record: RunRecord, entry: ResultEntry) -> dict[str, DriftInput]:
    """Category → :class:`DriftInput` for one result entry of a run (``overall`` included)."""
    from audit.analysis import load_predictions

    df = load_predictions(record, entry)
    version = policy_version(record)
    out: dict[str, DriftInput] = {}
    cats = [c[len("score.") :] for c in df.columns if c.startswith("score.")]
    for c in cats:
        s = df[f"score.{c}"].to_numpy(dtype=np.float64)
        d = None
        if f"pred.{c}" in df.columns:
            d = df[f"pred.{c}"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        y = df[f"gold.{c}"].to_numpy(dtype=np.int64) if f"gold.{c}" in df.columns else None
        out[c] = DriftInput(scores=s, decisions=d, labels=y, policy_version=version)
    return out


@dataclass(frozen=True)
class RunSeries:
    """The drift series of one suite × moderator over runs (first run = reference)."""

    suite: str
    split: str | None
    moderator: str
    series: DriftSeries


def runs_drift(
    records: Sequence[RunRecord],
    config: DriftConfig | None = None,
    *,
    suite: str | None = None,
    moderator: str | None = None,
) -> tuple[list[RunSeries], list[str]]:
    """Drift series per (suite, split, moderator) present in the first run.

    Returns:
        ``(series, notes)``: one :class:`RunSeries` per result key of the reference run
        that matches the filters, and a note for every key missing from a later run or
        present only in later runs (never silently dropped). A key missing from a later
        run gets an empty period there (no evidence, see :mod:`audit.monitoring.state`).
    """
    from audit.analysis import select_results

    ref = records[0]
    notes: list[str] = []
    out: list[RunSeries] = []
    ref_entries = select_results(ref, suite=suite, moderator=moderator)
    keys = [(e.suite, e.split, e.moderator) for e in ref_entries]
    for rec in records[1:]:
        for e in rec.record.results:
            k = (e.suite, e.split, e.moderator)
            wanted = (suite is None or k[0] == suite) and (moderator is None or k[2] == moderator)
            if wanted and k not in keys:
                notes.append(f"{k[0]}:{k[1]} × {k[2]} only in {rec.run_id}: not compared")
    for entry, key in zip(ref_entries, keys):
        periods: list[tuple[str, dict[str, DriftInput]]] = [(ref.run_id, run_inputs(ref, entry))]
        for rec in records[1:]:
            match = [e for e in rec.record.results if (e.suite, e.split, e.moderator) == key]
            if not match:
                notes.append(f"{key[0]}:{key[1]} × {key[2]} missing from {rec.run_id}")
                periods.append((rec.run_id, {}))
                continue
            periods.append((rec.run_id, run_inputs(rec, match[0])))
        out.append(RunSeries(key[0], key[1], key[2], drift_series(periods, config)))
    return out, notes
