"""Drift between periods of a pathway's decision logs (``audit production drift``).

Each period is read through the logs card (checked exactly as the sampler checks it:
bad rows are errors, several policy versions in one period are refused), turned into
per-category score and decision arrays, and compared with :func:`drift_series`: the
first period of each policy-version segment is the reference, a version change is a
marked break, never a silent comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from audit.monitoring.report import DriftConfig, DriftInput, DriftSeries, drift_series

if TYPE_CHECKING:
    from audit.production.logs import DecisionLogs, Period


def logs_drift(
    logs: DecisionLogs,
    periods: Sequence[Period],
    pathway: str,
    config: DriftConfig | None = None,
) -> DriftSeries:
    """The drift series of ``pathway`` over ``periods`` (in the order given)."""
    series: list[tuple[str, dict[str, DriftInput]]] = []
    for period in periods:
        report = logs.check(period, pathway)
        arrays = logs.category_arrays(period, pathway, report.policy_version)
        series.append(
            (
                period.label,
                {
                    cat: DriftInput(
                        scores=a.scores,
                        decisions=a.actioned,
                        policy_version=report.policy_version,
                    )
                    for cat, a in arrays.items()
                },
            )
        )
    return drift_series(series, config)
