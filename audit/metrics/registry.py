"""Metric specifications, the metric registry, and shared input handling.

Every metric in :mod:`audit.metrics` is a pure, vectorised numpy function over

* ``y``: int labels, ``1`` positive, ``0`` negative, ``-1`` **unknown**;
* ``score``: float in ``[0, 1]``, ``NaN`` = not scored (not applicable or an error);
* ``pred``: bool decisions at the configured threshold.

Items with an unknown label or a NaN score are **excluded** from every denominator (never
counted as negatives: :mod:`audit.schema`, "Unknown is never counted as negative"); each
function reports how many it excluded. A metric that is undefined on its input (no gold positives,
no predicted positives...) is ``NaN`` with a reason string and an
:class:`UndefinedMetricWarning`, never ``0``.

Each metric is described by a :class:`MetricSpec` registered in :data:`METRICS`, a
:class:`audit._util.registry.Registry` that raises :class:`audit.errors.ConfigError` (with a
did-you-mean hint) on unknown names. ``direction`` says which way is better: ``"higher"``,
``"lower"``, or ``"none"`` for the descriptive counts (``support``, ``n_pos``,
``prevalence``), which are reported next to every metric but are not quality measures and
must not be gated on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from audit._util.registry import Registry
from audit.errors import ConfigError

Direction = Literal["higher", "lower", "none"]
Needs = Literal["pred", "score"]
#: How :func:`audit.metrics.compute_metrics` bootstraps a metric: ``count`` (reported as
#: an exact count, no interval), ``confusion`` (from the 2×2 table), ``ranking`` (from a
#: per-class score histogram).
Family = Literal["count", "confusion", "ranking"]

DIRECTIONS: tuple[str, ...] = ("higher", "lower", "none")


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined on its input and was returned as ``NaN`` (with a reason)."""


class MetricResult(NamedTuple):
    """Point value of one metric on one array of items.

    Attributes:
        value: the metric, ``NaN`` when undefined.
        n: items used (known label and non-NaN score).
        n_excluded: items excluded (unknown label ``-1`` or NaN score).
        reason: why ``value`` is ``NaN``; ``None`` when defined.
    """

    value: float
    n: int
    n_excluded: int
    reason: str | None = None

    def __float__(self) -> float:
        return float(self.value)


@dataclass(frozen=True)
class MetricValue:
    """One metric for one category.

    Attributes:
        name: metric name.
        value: exact point estimate (NaN when undefined).
        ci_low: lower bound of the bootstrap interval (NaN when unavailable).
        ci_high: upper bound.
        n: items used (known label and non-NaN score).
        reason: why ``value`` is NaN, else ``None``.
        method: ``"row-bootstrap"``, ``"cell-bootstrap"``, ``"exact"`` (counts, no
            sampling interval) or ``"none"`` (``n_boot == 0``).
        n_excluded: rows excluded for this category (unknown label or NaN score).
    """

    name: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    reason: str | None = None
    method: str = "none"
    n_excluded: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (NaN → ``None``)."""
        d = asdict(self)
        for k in ("value", "ci_low", "ci_high"):
            d[k] = None if np.isnan(d[k]) else float(d[k])
        return d


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    Attributes:
        name: registry name (``"recall_at_precision"``).
        direction: ``"higher"`` / ``"lower"`` is better, ``"none"`` for descriptive counts.
        needs: ``"pred"`` (thresholded decisions) or ``"score"`` (continuous scores).
        description: one line for reports and ``audit list``.
        fn: the pure function. ``needs == "pred"``: ``fn(y, pred, score=None, **params)``;
            ``needs == "score"``: ``fn(y, score, **params)``. Returns :class:`MetricResult`.
        family: how it is bootstrapped (see :data:`Family`).
        batch: vectorised form, ``batch(stats, **params) -> values``: the metric for every
            row of the family's sufficient statistics (:class:`~audit.metrics.classification.
            Confusion` or :class:`~audit.metrics.ranking.ScoreBins`), ``NaN`` where undefined.
            The pure function and every bootstrap path go through it.
        requires: what must be present for the metric to be defined, checked in order to
            word the reason: ``"items"``, ``"pos"`` (gold positives), ``"neg"`` (gold
            negatives), ``"pred_pos"`` (predicted positives).
        params: default keyword parameters (``target=0.9``, ``n_bins=10``...).
    """

    name: str
    direction: Direction
    needs: Needs
    description: str
    fn: Callable[..., MetricResult]
    family: Family
    batch: Callable[..., np.ndarray]
    requires: tuple[str, ...] = ("items",)
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ConfigError(
                "invalid metric direction",
                where=f"metric {self.name!r}",
                field="direction",
                expected=" or ".join(DIRECTIONS),
                actual=repr(self.direction),
            )
        if self.needs not in ("pred", "score"):
            raise ConfigError(
                "invalid metric input",
                where=f"metric {self.name!r}",
                field="needs",
                expected="'pred' or 'score'",
                actual=repr(self.needs),
            )

    def __call__(
        self,
        y: np.ndarray,
        score: np.ndarray | None = None,
        pred: np.ndarray | None = None,
    ) -> MetricResult:
        """Evaluate on 1-D arrays, dispatching on :attr:`needs`."""
        if self.needs == "pred":
            if pred is None:
                raise ValueError(f"metric {self.name!r} needs `pred`")
            return self.fn(y, pred, score=score, **self.params)
        if score is None:
            raise ValueError(f"metric {self.name!r} needs `score`")
        return self.fn(y, score, **self.params)


#: The metric registry. Unknown names raise :class:`ConfigError` with close matches.
METRICS: Registry[MetricSpec] = Registry("metric", error=ConfigError)


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Register ``spec`` under ``spec.name`` and return it."""
    METRICS.register(spec.name, spec)
    return spec


def get_metric(name: str) -> MetricSpec:
    """Look a metric up by name; raises :class:`ConfigError` on unknown names."""
    return METRICS.get(name, where="metrics", field="name")


def metric_names() -> list[str]:
    """All registered metric names, sorted."""
    return METRICS.names()


def metric_directions() -> dict[str, str]:
    """Metric name → ``"higher"`` / ``"lower"`` / ``"none"``."""
    return {name: spec.direction for name, spec in METRICS}


# --------------------------------------------------------------------------- inputs


def as_labels(y: Any) -> np.ndarray:
    """Validate labels: a 1-D or 2-D integer/bool array with values in {-1, 0, 1}."""
    arr = np.asarray(y)
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if (
        arr.size
        and not np.issubdtype(arr.dtype, np.integer)
        and not np.all(np.isin(arr, (-1, 0, 1)))
    ):
        raise ValueError("labels must be integers in {-1, 0, 1} (-1 = unknown)")
    if arr.size and (arr.min() < -1 or arr.max() > 1):
        raise ValueError("labels must be in {-1, 0, 1} (-1 = unknown)")
    return arr.astype(np.int8, copy=False)


def as_scores(score: Any) -> np.ndarray:
    """Validate scores: floats in ``[0, 1]``; ``NaN`` marks an unscored item."""
    arr = np.asarray(score, dtype=np.float64)
    if arr.size:
        flat = arr.ravel()
        # fmin / fmax skip NaN (NaN only if everything is NaN) and keep ±inf
        lo, hi = np.fmin.reduce(flat), np.fmax.reduce(flat)
        if (not np.isnan(lo)) and (lo < 0 or hi > 1):
            raise ValueError("scores must lie in [0, 1] (NaN = not scored)")
    return arr


def as_pred(pred: Any) -> np.ndarray:
    """Validate decisions: bool (or 0/1) array."""
    arr = np.asarray(pred)
    if arr.dtype != bool:
        if arr.size and not np.all(np.isin(arr, (0, 1))):
            raise ValueError("pred must be boolean (or 0/1)")
        arr = arr.astype(bool)
    return arr


def valid_mask(y: np.ndarray, score: np.ndarray | None) -> np.ndarray:
    """Rows that count: known label and (when scores are given) a non-NaN score."""
    mask = y >= 0
    if score is not None:
        mask &= ~np.isnan(score)
    return mask


def prepare(
    y: Any, score: Any | None = None, pred: Any | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, int]:
    """Validate 1-D inputs and drop excluded rows.

    Returns:
        ``(y, score, pred, n_excluded)`` restricted to rows with a known label and a
        non-NaN score (``score``/``pred`` are ``None`` when not given).
    """
    yy = as_labels(y)
    ss = as_scores(score) if score is not None else None
    pp = as_pred(pred) if pred is not None else None
    if yy.ndim != 1:
        raise ValueError(f"expected 1-D labels, got shape {yy.shape}")
    for other, what in ((ss, "score"), (pp, "pred")):
        if other is not None and other.shape != yy.shape:
            raise ValueError(f"{what} has shape {other.shape}, labels have {yy.shape}")
    mask = valid_mask(yy, ss)
    n_excluded = int(yy.size - mask.sum())
    return (
        yy[mask],
        ss[mask] if ss is not None else None,
        pp[mask] if pp is not None else None,
        n_excluded,
    )


def point_result(
    spec: MetricSpec,
    stats: Any,
    *,
    n: int,
    n_pos: int,
    n_pred_pos: int | None,
    n_excluded: int,
    warn: bool = True,
    params: dict[str, Any] | None = None,
) -> MetricResult:
    """Evaluate ``spec.batch`` on one row of statistics and word a reason if undefined.

    Warns :class:`UndefinedMetricWarning` (unless ``warn`` is false) when the value is NaN.
    """
    kwargs = {**spec.params, **(params or {})}
    value = float(np.asarray(spec.batch(stats, **kwargs)).reshape(-1)[0])
    if not np.isnan(value):
        return MetricResult(value, n, n_excluded, None)
    reason = undefined_reason(
        spec.requires, n=n, n_pos=n_pos, n_pred_pos=n_pred_pos, n_excluded=n_excluded
    )
    if warn:
        warnings.warn(f"{spec.name} is undefined: {reason}", UndefinedMetricWarning, stacklevel=4)
    return MetricResult(float("nan"), n, n_excluded, reason)


def scored_phrase(n: int, n_excluded: int = 0) -> str:
    """``"37 scored items"`` (+ exclusions), the tail of every undefined-metric reason."""
    tail = f" ({n_excluded} excluded: unknown label or not scored)" if n_excluded else ""
    return f"{n} scored item{'s' if n != 1 else ''}{tail}"


_REQUIREMENT_WORDS = {
    "pos": "gold positives",
    "neg": "gold negatives",
    "pred_pos": "predicted positives",
}


def undefined_reason(
    requires: tuple[str, ...],
    *,
    n: int,
    n_pos: int,
    n_pred_pos: int | None,
    n_excluded: int,
) -> str:
    """Word why a metric is undefined: the first unmet item of ``requires``.

    Example: ``"no gold positives among 37 scored items"``.
    """
    if n == 0:
        return f"no scored items with a known label ({n_excluded} excluded)"
    have = {"items": n, "pos": n_pos, "neg": n - n_pos, "pred_pos": n_pred_pos}
    for req in requires:
        if req in _REQUIREMENT_WORDS and have[req] == 0:
            return f"no {_REQUIREMENT_WORDS[req]} among {scored_phrase(n, n_excluded)}"
    return f"undefined on {scored_phrase(n, n_excluded)}"
