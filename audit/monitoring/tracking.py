"""Drift series to MLflow as time series (metric step = period index).

Keys: ``drift/{category}/{psi|ks|js}``, plus ``drift/{category}/state`` (0 OK,
1 PENDING, 2 ALERT) and ``drift/{category}/decision_rate_delta`` where decisions exist,
one MLflow run per suite × moderator series. MLflow is imported only here, lazily.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from audit.monitoring.report import DriftSeries

_STATE_CODE = {"OK": 0, "PENDING": 1, "ALERT": 2}


def metric_key(category: str, metric: str) -> str:
    """``drift/{category}/{metric}`` slugified to ``[a-z0-9_/.-]`` (docs/architecture.md)."""
    return "drift/" + re.sub(r"[^a-z0-9_.-]", "_", category.lower()) + "/" + metric


def series_metrics(series: DriftSeries) -> list[tuple[str, float, int]]:
    """``(key, value, step)`` for every defined metric of every compared period."""
    out: list[tuple[str, float, int]] = []
    for p in series.periods:
        if p.report is None:
            continue
        for c in p.report.categories:
            for name, stat in (("psi", c.psi), ("ks", c.ks), ("js", c.js)):
                if stat.value is not None:
                    out.append((metric_key(c.category, name), stat.value, p.index))
            out.append((metric_key(c.category, "state"), float(_STATE_CODE[c.state]), p.index))
            if c.decision_rate is not None and c.decision_rate.delta is not None:
                out.append(
                    (metric_key(c.category, "decision_rate_delta"), c.decision_rate.delta, p.index)
                )
    return out


def log_series(
    items: Sequence[tuple[str, DriftSeries]],
    *,
    runs_dir: Path,
    uri: str | None = None,
    experiment: str = "audit-drift",
) -> list[str]:
    """One MLflow run per ``(name, series)``; returns the MLflow run ids."""
    from audit.tracking.artifacts import SeriesRun, log_series_runs

    runs = [
        SeriesRun(
            name=f"drift {name}",
            tags={
                "audit.kind": "drift",
                "audit.drift.periods": ",".join(p.label for p in series.periods)[:5000],
                "audit.drift.alert": str(series.any_alert).lower(),
                "audit.drift.policy_breaks": ",".join(
                    str(p.index) for p in series.periods if p.policy_break
                ),
            },
            metrics=series_metrics(series),
        )
        for name, series in items
    ]
    return log_series_runs(experiment, runs, runs_dir, uri=uri)
