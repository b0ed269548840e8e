"""Production enforcement audit: decision logs in; weighted precision, recall and
prevalence with valid intervals out (docs/methods/production.md).

Flow: :class:`DecisionLogs` (a logs card over Parquet, read by DuckDB) →
:func:`build_plan` (strata, Neyman allocation) → :func:`draw_sample` (two frames,
hash-ranked in SQL, frozen manifest) → labels → :func:`estimate` (HT / Hájek /
two-frame recall, PPI++) → :class:`ProductionRecord` (JSON, MLflow, HTML).
"""

from audit.production.card import LogsCard, load_logs_card
from audit.production.demo import DemoDay, build_demo_day, demo_labels
from audit.production.errors import LabelsError, LogsError, PlanError, ProductionError
from audit.production.estimate import (
    CellRecord,
    Estimate,
    PPIEstimate,
    ProductionRecord,
    StratumRecord,
    estimate,
)
from audit.production.estimators import Interval, Ratio, StratifiedSample, bootstrap, classical, ppi
from audit.production.labels import LabelSet, read_labels
from audit.production.logs import CategoryArrays, DecisionLogs, LogsReport, Period
from audit.production.plan import Plan, Stratum, build_plan, load_plan
from audit.production.report import log_mlflow, metric_rows, write_html
from audit.production.sample import SampleManifest, draw_sample, load_manifest, sampling_sql

__all__ = [
    "CategoryArrays",
    "CellRecord",
    "DecisionLogs",
    "DemoDay",
    "Estimate",
    "Interval",
    "LabelSet",
    "LabelsError",
    "LogsCard",
    "LogsError",
    "LogsReport",
    "PPIEstimate",
    "Period",
    "Plan",
    "PlanError",
    "ProductionError",
    "ProductionRecord",
    "Ratio",
    "SampleManifest",
    "StratifiedSample",
    "Stratum",
    "StratumRecord",
    "bootstrap",
    "build_demo_day",
    "build_plan",
    "classical",
    "demo_labels",
    "draw_sample",
    "estimate",
    "load_logs_card",
    "load_manifest",
    "load_plan",
    "log_mlflow",
    "metric_rows",
    "ppi",
    "read_labels",
    "sampling_sql",
    "write_html",
]
