"""Drift monitoring: distribution and rate drift per category, with persistent alerts.

Public face (docs/methods.md §7, ``docs/methods/drift.md``):

* :func:`drift_report` / :func:`drift_series` over :class:`DriftInput` arrays →
  :class:`DriftReport` / :class:`DriftSeries` (frozen, JSON round-trip);
* :class:`DriftConfig` (bins, ε, thresholds, test level, N-of-M rule);
* :mod:`audit.monitoring.runs` feeds golden-set run records in, and
  :mod:`audit.monitoring.tracking` writes the series to MLflow.
"""

from audit.monitoring.report import (
    CategoryDrift,
    DriftConfig,
    DriftInput,
    DriftInputError,
    DriftReport,
    DriftSeries,
    PeriodResult,
    PolicyBoundaryError,
    RateStat,
    ReferenceBins,
    Stat,
    Thresholds,
    drift_report,
    drift_series,
)
from audit.monitoring.state import STATES, State, nominal_alert_rate, persistence_states

__all__ = [
    "STATES",
    "CategoryDrift",
    "DriftConfig",
    "DriftInput",
    "DriftInputError",
    "DriftReport",
    "DriftSeries",
    "PeriodResult",
    "PolicyBoundaryError",
    "RateStat",
    "ReferenceBins",
    "Stat",
    "State",
    "Thresholds",
    "drift_report",
    "drift_series",
    "nominal_alert_rate",
    "persistence_states",
]
