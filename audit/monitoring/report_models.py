"""The typed vocabulary of drift (docs/methods/drift.md): inputs, configuration, thresholds,
the per-category statistics and the report and series models, with the errors they raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from audit.errors import ConfigError, RunError
from audit.monitoring import metrics as dm
from audit.monitoring.state import State, check_rule, nominal_alert_rate

SCHEMA_VERSION = 1

Family = Literal["psi", "js", "ks", "decision_rate", "label_rate"]
FAMILIES: tuple[Family, ...] = ("psi", "js", "ks", "decision_rate", "label_rate")


class DriftInputError(RunError):
    """Scores, decisions or labels that cannot be compared (exit 3)."""


class PolicyBoundaryError(ConfigError):
    """Reference and current were scored under different policy versions (exit 2)."""


@dataclass(frozen=True)
class DriftInput:
    """One category's data in one period.

    Attributes:
        scores: per item score in [0, 1]; NaN = not scored (counted, then left out).
        decisions: optional per item decision: bool, or float 1/0 with NaN = none.
        labels: optional per item gold/reference label: 1, 0, or −1 = unknown.
        policy_version: the policy the scores and decisions were made under.
    """

    scores: Any
    decisions: Any = None
    labels: Any = None
    policy_version: str | None = None


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Frozen):
    """Effect sizes at or above which a metric counts as drift (docs/methods.md §7)."""

    psi: float = Field(default=0.25, ge=0)
    """PSI: < 0.1 stable, 0.1–0.25 moderate, > 0.25 significant."""
    js: float = Field(default=0.1, ge=0, le=1)
    ks: float = Field(default=0.1, ge=0, le=1)
    decision_rate: float = Field(default=0.02, ge=0, le=1)
    """absolute change in the share of items actioned"""
    label_rate: float = Field(default=0.02, ge=0, le=1)


class DriftConfig(_Frozen):
    """How drift is measured and when a category breaches.

    A category breaches in a period when some enabled metric's effect reaches its
    threshold **and** that metric's test is significant at ``alpha`` after a Bonferroni
    correction over the enabled test families (PSI and JS share one test: both are
    read from the same bin counts) and, with ``correction="bh"``, a Benjamini–Hochberg
    correction across categories.
    """

    n_bins: int = Field(default=10, ge=2, le=1000)
    epsilon: float = Field(default=dm.DEFAULT_EPSILON, gt=0, lt=0.01)
    thresholds: Thresholds = Thresholds()
    metrics: tuple[Family, ...] = FAMILIES
    alpha: float = Field(default=0.05, gt=0, lt=1)
    conf: float = Field(default=0.95, gt=0.5, lt=1)
    correction: Literal["none", "bh"] = "bh"
    persistence_n: int = Field(default=2, ge=1)
    persistence_m: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _rule(self) -> DriftConfig:
        try:
            check_rule(self.persistence_n, self.persistence_m)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        if not self.metrics:
            raise ValueError("metrics must name at least one of " + ", ".join(FAMILIES))
        return self

    def nominal_alert_rate(self) -> float:
        """ALERT rate under no drift for independent periods (upper bound)."""
        return nominal_alert_rate(self.alpha, self.persistence_n, self.persistence_m)


class Stat(_Frozen):
    """One distribution metric: value, test p-value, threshold, and whether it fired."""

    value: float | None
    p_value: float | None
    threshold: float
    exceeded: bool
    reason: str | None = None


class RateStat(_Frozen):
    """A proportion in reference and current with the change and its interval."""

    reference: float | None
    current: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    n_reference: int
    n_current: int
    n_excluded_reference: int
    n_excluded_current: int
    p_value: float | None
    threshold: float
    exceeded: bool
    method: str = "newcombe-hybrid-score"
    reason: str | None = None


class ReferenceBins(_Frozen):
    """Bin edges computed on the reference, stored with it, and its counts."""

    edges: tuple[float, ...]
    """interior edges of right-closed bins; outer edges are −∞ and +∞"""
    requested: int
    counts: tuple[int, ...]


class CategoryDrift(_Frozen):
    """Drift of one category between reference and current."""

    category: str
    n_reference: int
    n_current: int
    n_missing_reference: int
    """items with a NaN score (not scored) in the reference: counted, left out"""
    n_missing_current: int
    bins: ReferenceBins
    current_counts: tuple[int, ...]
    psi: Stat
    js: Stat
    ks: Stat
    decision_rate: RateStat | None
    label_rate: RateStat | None
    p_value: float | None
    """Bonferroni-combined p-value over the families whose effect reached its threshold
    (1.0 when none did; None when nothing could be evaluated)"""
    q_value: float | None
    """Benjamini–Hochberg q-value of ``p_value`` across categories (``correction="bh"``)"""
    triggered: tuple[Family, ...]
    """families whose effect reached its threshold with a significant test"""
    breach: bool | None
    """None: not evaluable (no scores on one side)"""
    state: State
    reason: str | None = None


class DriftReport(_Frozen):
    """Drift of every category between a reference and one current period."""

    schema_version: int = SCHEMA_VERSION
    reference_label: str
    current_label: str
    policy_version_reference: str | None
    policy_version_current: str | None
    policy_break: bool
    """True only when a comparison across policy versions was explicitly allowed"""
    config: DriftConfig
    categories: tuple[CategoryDrift, ...]
    only_in_reference: tuple[str, ...] = ()
    only_in_current: tuple[str, ...] = ()

    @property
    def any_alert(self) -> bool:
        return any(c.state == "ALERT" for c in self.categories)

    def category(self, name: str) -> CategoryDrift:
        for c in self.categories:
            if c.category == name:
                return c
        raise KeyError(name)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> DriftReport:
        return cls.model_validate_json(text)


class PeriodResult(_Frozen):
    """One period of a :class:`DriftSeries`."""

    index: int
    label: str
    policy_version: str | None
    role: Literal["reference", "compared"]
    """``reference`` for the first period and for the first period after a break"""
    policy_break: bool
    """True where the policy version changed: a new series starts here"""
    report: DriftReport | None


class DriftSeries(_Frozen):
    """A series of periods, each compared with the reference of its policy segment."""

    schema_version: int = SCHEMA_VERSION
    config: DriftConfig
    periods: tuple[PeriodResult, ...]

    @property
    def any_alert(self) -> bool:
        return any(p.report is not None and p.report.any_alert for p in self.periods)

    @property
    def last(self) -> DriftReport | None:
        """The report of the last compared period (``None`` if there is none)."""
        for p in reversed(self.periods):
            if p.report is not None:
                return p.report
        return None
