"""Metrics layer of ``audit``: pure numpy metrics, a registry, and bootstrap intervals.

Inputs everywhere (docs/methods.md §1–§2, §4):

* ``y``: int8 labels, ``1`` positive, ``0`` negative, ``-1`` unknown;
* ``score``: float in ``[0, 1]``, ``NaN`` = not scored (not applicable / error);
* ``pred``: bool decisions at the configured threshold.

Unknown labels and NaN scores are excluded from every denominator (never counted as
negatives) and counted in ``n_excluded``. Undefined metrics are NaN with a reason and an
:class:`UndefinedMetricWarning`, never 0.

Pure functions (1-D arrays → :class:`MetricResult` ``(value, n, n_excluded, reason)``)::

    support(y, score=None)            n_pos(y, score=None)        prevalence(y, score=None)
    precision(y, pred, score=None)    recall(y, pred, score=None)
    f1(y, pred, score=None)           fpr(y, pred, score=None)
    cohen_kappa(y, pred, score=None)  positive_agreement(y, pred, score=None)
    negative_agreement(y, pred, score=None)
    auprc(y, score)                   auroc(y, score)
    recall_at_precision(y, score, target=0.9)
    tpr_at_fpr(y, score, target=0.01)
    ece(y, score, n_bins=10, score_range=None)     brier(y, score)

Registry: :data:`METRICS` (``MetricSpec``: name, direction, needs, description, fn,
family, batch, requires, params), :func:`get_metric`, :func:`metric_names`,
:func:`metric_directions`, :func:`register_metric`. A variant operating point is one more
registration, e.g.::

    spec = get_metric("recall_at_precision")
    register_metric(dataclasses.replace(spec, name="recall_at_precision_95",
                                         params={"target": 0.95}))

Runner API: :func:`compute_metrics` → ``{category: {metric: MetricValue}}`` with exact
point estimates and percentile-bootstrap intervals (see :mod:`audit.metrics.bootstrap`
for the row / cell bootstrap switch).

Hugging Face ``evaluate`` wrappers: ``evaluate.load(evaluate_module_path("auprc"))``
(offline; the module imports ``audit.metrics``, so ``audit`` must be importable).
"""

from __future__ import annotations

from pathlib import Path

from audit.errors import ConfigError
from audit.metrics.bootstrap import (
    CHUNK_ELEMS,
    HIST_BINS,
    ROW_BOOTSTRAP_MAX_CELLS,
    compute_metrics,
    percentile_interval,
)
from audit.metrics.calibration import brier, ece, reliability_table
from audit.metrics.classification import (
    Confusion,
    cohen_kappa,
    f1,
    fpr,
    n_pos,
    negative_agreement,
    positive_agreement,
    precision,
    prevalence,
    recall,
    support,
)
from audit.metrics.ranking import (
    ScoreBins,
    auprc,
    auroc,
    recall_at_precision,
    tpr_at_fpr,
)
from audit.metrics.registry import (
    METRICS,
    MetricResult,
    MetricSpec,
    MetricValue,
    UndefinedMetricWarning,
    get_metric,
    metric_directions,
    metric_names,
    register_metric,
)

#: Folder holding one local ``evaluate`` module (``<name>/<name>.py``) per headline metric.
EVALUATE_MODULES_DIR = Path(__file__).resolve().parent / "evaluate_modules"


def evaluate_module_names() -> list[str]:
    """Metrics that ship a local Hugging Face ``evaluate`` module."""
    return sorted(
        p.name
        for p in EVALUATE_MODULES_DIR.iterdir()
        if p.is_dir() and (p / f"{p.name}.py").is_file()
    )


def evaluate_module_path(name: str) -> str:
    """Absolute path of the local ``evaluate`` module for metric ``name``.

    Load it offline with ``evaluate.load(evaluate_module_path(name))``; ``evaluate``
    copies the script into its modules cache (``HF_MODULES_CACHE``) and imports it, and
    the script imports :mod:`audit.metrics`, so the number is the pure function's.

    Raises:
        ConfigError: no module for ``name`` (the message lists the available ones).
    """
    path = EVALUATE_MODULES_DIR / name
    if not (path / f"{name}.py").is_file():
        known = evaluate_module_names()
        raise ConfigError(
            f"no evaluate module for metric {name!r}",
            where="audit.metrics",
            field="name",
            expected=f"one of: {', '.join(known)}",
            actual=repr(name),
        )
    return str(path)


__all__ = [
    "CHUNK_ELEMS",
    "EVALUATE_MODULES_DIR",
    "HIST_BINS",
    "METRICS",
    "ROW_BOOTSTRAP_MAX_CELLS",
    "Confusion",
    "MetricResult",
    "MetricSpec",
    "MetricValue",
    "ScoreBins",
    "UndefinedMetricWarning",
    "auprc",
    "auroc",
    "brier",
    "cohen_kappa",
    "compute_metrics",
    "ece",
    "evaluate_module_names",
    "evaluate_module_path",
    "f1",
    "fpr",
    "get_metric",
    "metric_directions",
    "metric_names",
    "n_pos",
    "negative_agreement",
    "percentile_interval",
    "positive_agreement",
    "precision",
    "prevalence",
    "recall",
    "recall_at_precision",
    "register_metric",
    "reliability_table",
    "support",
    "tpr_at_fpr",
]
