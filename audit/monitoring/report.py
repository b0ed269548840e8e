"""Drift between a reference and a current period, per category, as a typed report.

:func:`drift_report` compares one current period with a reference;
:func:`drift_series` runs a series of periods through the persistence rule
(:mod:`audit.monitoring.state`) with policy-version breaks marked. Inputs are plain
arrays (:class:`DriftInput`), so the golden-run CLI and the production-logs reader feed
the same code. Methods: docs/methods.md §7 and ``docs/methods/drift.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from audit.errors import ConfigError, RunError
from audit.monitoring import metrics as dm
from audit.monitoring._ecdf import GRID, SampleIndex, compare_samples
from audit.monitoring.state import State, check_rule, nominal_alert_rate, persistence_states

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


# --------------------------------------------------------------------------- inputs


@dataclass
class _Prepared:
    index: SampleIndex
    n_missing: int
    decisions: tuple[int, int, int] | None  # (k actioned, n with a decision, n excluded)
    labels: tuple[int, int, int] | None


def _f(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _grid(n: int) -> int:
    """Cells for samples of up to ``n`` scores: a power of two near ``n`` in [2¹⁰, 2¹⁶].

    Any power of two gives exact answers (``_ecdf``); the cost is O(n + G), so small
    samples should not pay for 65,536 cells, and large ones want cells small enough
    that few elements need sorting.
    """
    return int(min(GRID, max(1 << 10, 1 << max(n - 1, 1).bit_length())))


def _prepare(
    inp: DriftInput, where: str, buffer: NDArray[np.int64] | None = None, grid: int = GRID
) -> _Prepared:
    """Validate one input; NaN scores are counted and left out, anything else is an error."""
    s = np.asarray(inp.scores)
    if s.ndim != 1:
        raise DriftInputError(
            "scores must be one-dimensional",
            where=where,
            field="scores",
            expected="a 1-D array of scores in [0, 1]",
            actual=f"shape {s.shape}",
        )
    if s.dtype.kind not in "fiub":
        raise DriftInputError(
            "scores must be numeric",
            where=where,
            field="scores",
            expected="floats in [0, 1] (NaN = not scored)",
            actual=f"dtype {s.dtype}",
        )
    if s.dtype.kind != "f":
        s = s.astype(np.float64)
    # min/max propagate NaN, and [0, 1] bounds exclude ±inf: two passes validate the
    # common all-scored case; the NaN mask is built only when there is a NaN
    x: NDArray[np.floating] = s
    n_missing = 0
    if s.size and math.isnan(float(np.min(s))):
        nan = np.isnan(s)
        n_missing = int(nan.sum())
        x = s[~nan]
    if x.size and (float(np.min(x)) < 0 or float(np.max(x)) > 1):
        bad = x[~(np.isfinite(x) & (x >= 0) & (x <= 1))]
        raise DriftInputError(
            "scores outside [0, 1]",
            where=where,
            field="scores",
            expected="scores in [0, 1] (NaN = not scored)",
            actual=f"{bad.size} values such as {float(bad[0])!r}",
            fix="pass probabilities, not logits or margins",
        )
    return _Prepared(
        SampleIndex(np.ascontiguousarray(x), grid=grid, buffer=buffer),
        n_missing,
        _decisions(inp.decisions, s.size, where),
        _labels(inp.labels, s.size, where),
    )


def _same_length(a: NDArray[Any], n: int, where: str, field: str) -> None:
    if a.ndim != 1 or a.size != n:
        raise DriftInputError(
            f"{field} must align with scores",
            where=where,
            field=field,
            expected=f"a 1-D array of {n} values",
            actual=f"shape {a.shape}",
        )


def _decisions(d: Any, n: int, where: str) -> tuple[int, int, int] | None:
    if d is None:
        return None
    a = np.asarray(d)
    _same_length(a, n, where, "decisions")
    if a.dtype.kind == "b":
        return int(a.sum()), int(a.size), 0
    if a.dtype.kind not in "fiu":
        raise DriftInputError(
            "decisions must be booleans or 1/0",
            where=where,
            field="decisions",
            expected="bool, or float 1/0 with NaN = no decision",
            actual=f"dtype {a.dtype}",
        )
    a = a.astype(np.float64)
    known = ~np.isnan(a)
    if not np.isin(a[known], (0.0, 1.0)).all():
        raise DriftInputError(
            "decisions must be 1 or 0",
            where=where,
            field="decisions",
            expected="1 (actioned), 0 (not actioned) or NaN (no decision)",
            actual=repr(sorted(set(np.unique(a[known]).tolist()) - {0.0, 1.0})[:3]),
        )
    return int(a[known].sum()), int(known.sum()), int((~known).sum())


def _labels(y: Any, n: int, where: str) -> tuple[int, int, int] | None:
    if y is None:
        return None
    a = np.asarray(y)
    _same_length(a, n, where, "labels")
    if a.dtype.kind == "f":
        if np.isnan(a).any() or not np.isin(a, (-1.0, 0.0, 1.0)).all():
            raise DriftInputError(
                "labels must be 1, 0 or -1",
                where=where,
                field="labels",
                expected="integers 1 (violating), 0, -1 (unknown)",
                actual="floats with other values or NaN",
                fix="encode unknown labels as -1",
            )
        a = a.astype(np.int64)
    if a.dtype.kind not in "iub" or not np.isin(a, (-1, 0, 1)).all():
        raise DriftInputError(
            "labels must be 1, 0 or -1",
            where=where,
            field="labels",
            expected="integers 1 (violating), 0, -1 (unknown)",
            actual=f"dtype {a.dtype}",
        )
    known = a != -1
    return int((a[known] == 1).sum()), int(known.sum()), int((~known).sum())


def _policy_version(inputs: Mapping[str, DriftInput], label: str) -> str | None:
    versions = {i.policy_version for i in inputs.values()}
    if len(versions) > 1:
        raise PolicyBoundaryError(
            "one period mixes policy versions",
            where=label,
            field="policy_version",
            expected="one policy version per period",
            actual=", ".join(sorted(str(v) for v in versions)),
            fix="split the period at the policy change and compare like with like",
        )
    return next(iter(versions)) if versions else None


# ------------------------------------------------------------------------ comparison


def _stat(value: float, p: float, threshold: float, reason: str | None) -> Stat:
    exceeded = not math.isnan(value) and value >= threshold
    return Stat(
        value=_f(value), p_value=_f(p), threshold=threshold, exceeded=exceeded, reason=reason
    )


def _rate(
    ref: tuple[int, int, int] | None,
    cur: tuple[int, int, int] | None,
    threshold: float,
    conf: float,
) -> RateStat | None:
    if ref is None or cur is None:
        return None
    r = dm.rate_change(ref[0], ref[1], cur[0], cur[1], conf)
    exceeded = not math.isnan(r.delta) and abs(r.delta) >= threshold
    return RateStat(
        reference=_f(r.ref),
        current=_f(r.cur),
        delta=_f(r.delta),
        ci_low=_f(r.ci_low),
        ci_high=_f(r.ci_high),
        n_reference=ref[1],
        n_current=cur[1],
        n_excluded_reference=ref[2],
        n_excluded_current=cur[2],
        p_value=_f(r.p_value),
        threshold=threshold,
        exceeded=exceeded,
        reason=r.reason,
    )


@dataclass
class _Cat:
    """A category's metrics before the across-category correction and the state."""

    fields: dict[str, Any]
    candidates: dict[Family, float]  # family → p-value (effect over threshold)
    n_families: int
    evaluable: bool


def _compare(cat: str, ref: _Prepared, cur: _Prepared, cfg: DriftConfig) -> _Cat:
    evaluable = ref.index.n > 0 and cur.index.n > 0
    reason = None
    psi_v = psi_p = js_v = ks_d = ks_p = math.nan
    if evaluable:
        edges, rc, cc, ks_d = compare_samples(ref.index, cur.index, cfg.n_bins)
        bins = dm.Bins(tuple(float(e) for e in edges), cfg.n_bins)
        psi_v, psi_p = dm.psi(rc, cc, cfg.epsilon)
        js_v = dm.js_distance(rc, cc)
        ks_p = dm.ks_pvalue(ks_d, ref.index.n, cur.index.n)
    else:
        reason = f"no scored items in the {'reference' if ref.index.n == 0 else 'current'}"
        bins = dm.reference_bins(ref.index, cfg.n_bins)
        rc, cc = dm.bin_counts(ref.index, bins), dm.bin_counts(cur.index, bins)
    one_bin = "the reference has one bin (all scores tied): no χ² test" if bins.n_bins < 2 else None
    t = cfg.thresholds
    stats = {
        "psi": _stat(psi_v, psi_p, t.psi, reason or one_bin),
        "js": _stat(js_v, psi_p, t.js, reason or one_bin),
        "ks": _stat(ks_d, ks_p, t.ks, reason),
    }
    rates = {
        "decision_rate": _rate(ref.decisions, cur.decisions, t.decision_rate, cfg.conf),
        "label_rate": _rate(ref.labels, cur.labels, t.label_rate, cfg.conf),
    }
    # test families: PSI and JS come from the same counts and share the χ² test
    enabled = set(cfg.metrics)
    fams: dict[str, list[Family]] = {}
    if enabled & {"psi", "js"}:
        fams["binned"] = [f for f in ("psi", "js") if f in enabled]
    if "ks" in enabled:
        fams["ks"] = ["ks"]
    for r in ("decision_rate", "label_rate"):
        if r in enabled and rates[r] is not None:
            fams[r] = [r]
    candidates: dict[Family, float] = {}
    for members in fams.values():
        for f in members:
            s = stats.get(f) or rates.get(f)
            if s is not None and s.exceeded and s.p_value is not None:
                candidates[f] = s.p_value
    return _Cat(
        fields={
            "category": cat,
            "n_reference": ref.index.n,
            "n_current": cur.index.n,
            "n_missing_reference": ref.n_missing,
            "n_missing_current": cur.n_missing,
            "bins": ReferenceBins(
                edges=bins.edges, requested=bins.requested, counts=tuple(int(c) for c in rc)
            ),
            "current_counts": tuple(int(c) for c in cc),
            **stats,
            **rates,
            "reason": reason,
        },
        candidates=candidates,
        n_families=len(fams),
        evaluable=evaluable,
    )


def _finish(
    cats: list[_Cat],
    cfg: DriftConfig,
    history: Mapping[str, Sequence[bool | None]],
) -> tuple[CategoryDrift, ...]:
    """Combined p-values, the across-category correction, breaches and states."""
    from audit.metrics.stats import bh_qvalues

    pvals = []
    for c in cats:
        if not c.evaluable:
            pvals.append(math.nan)
        elif c.candidates:
            pvals.append(min(1.0, c.n_families * min(c.candidates.values())))
        else:
            pvals.append(1.0)
    p = np.array(pvals, dtype=float)
    q = bh_qvalues(p) if cfg.correction == "bh" else p
    out = []
    for c, pv, qv in zip(cats, p, q):
        if not c.evaluable:
            breach: bool | None = None
            triggered: tuple[Family, ...] = ()
        else:
            breach = bool(qv < cfg.alpha)
            # the families significant at the category level (Bonferroni); BH only
            # raises p-values, so a breach always has at least one
            triggered = tuple(
                f
                for f, fp in c.candidates.items()
                if breach and min(1.0, c.n_families * fp) < cfg.alpha
            )
        series = [*history.get(c.fields["category"], ()), breach]
        state = persistence_states(series, cfg.persistence_n, cfg.persistence_m)[-1]
        out.append(
            CategoryDrift(
                **c.fields,
                p_value=_f(float(pv)),
                q_value=_f(float(qv)) if cfg.correction == "bh" else None,
                triggered=triggered,
                breach=breach,
                state=state,
            )
        )
    return tuple(out)


def drift_report(
    reference: Mapping[str, DriftInput],
    current: Mapping[str, DriftInput],
    config: DriftConfig | None = None,
    *,
    reference_label: str = "reference",
    current_label: str = "current",
    history: Mapping[str, Sequence[bool | None]] | None = None,
    allow_policy_change: bool = False,
) -> DriftReport:
    """Per-category drift of ``current`` against ``reference``.

    Args:
        reference: category → reference data (edges are computed on it).
        current: category → current data.
        config: thresholds, bins, test level and the persistence rule.
        reference_label / current_label: names shown in the report (run ids, dates).
        history: category → breaches of the earlier periods of the same series (oldest
            first), so the state follows the persistence rule; none → this period alone.
        allow_policy_change: compare across policy versions anyway; the report is then
            marked ``policy_break=True``. Without it a version change is an error.

    Raises:
        PolicyBoundaryError: the policy versions differ (or one period mixes versions).
        DriftInputError: bad scores, decisions or labels.
    """
    cfg = config or DriftConfig()
    pv_ref = _policy_version(reference, reference_label)
    pv_cur = _policy_version(current, current_label)
    brk = bool(reference) and bool(current) and pv_ref != pv_cur
    if brk and not allow_policy_change:
        raise PolicyBoundaryError(
            "reference and current were scored under different policy versions",
            where=f"{reference_label} → {current_label}",
            field="policy_version",
            expected=f"policy version {pv_ref!r} on both sides",
            actual=repr(pv_cur),
            fix="compare periods within one policy version, or pass allow_policy_change "
            "(--allow-policy-change) to compare anyway with the break marked",
        )
    common = [c for c in reference if c in current]
    # categories are compared one at a time: two cell buffers, reused, keep the memory
    # (and the page faults of fresh 8-byte-per-score allocations) to one pair
    size = max(
        (np.size(side[c].scores) for c in common for side in (reference, current)), default=0
    )
    bufs = (np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64))
    cats = []
    for c in common:
        # both sides of a category share one grid (the KS bound compares their cells)
        g = _grid(max(np.size(reference[c].scores), np.size(current[c].scores)))
        ref_c = _prepare(reference[c], f"{reference_label}:{c}", bufs[0], g)
        cur_c = _prepare(current[c], f"{current_label}:{c}", bufs[1], g)
        cats.append(_compare(c, ref_c, cur_c, cfg))
    return DriftReport(
        reference_label=reference_label,
        current_label=current_label,
        policy_version_reference=pv_ref,
        policy_version_current=pv_cur,
        policy_break=brk,
        config=cfg,
        categories=_finish(cats, cfg, history or {}),
        only_in_reference=tuple(c for c in reference if c not in current),
        only_in_current=tuple(c for c in current if c not in reference),
    )


def drift_series(
    periods: Sequence[tuple[str, Mapping[str, DriftInput]]],
    config: DriftConfig | None = None,
) -> DriftSeries:
    """Each period against the first period of its policy segment, with persistent states.

    The first period is the reference. When the policy version changes, that period
    is marked ``policy_break`` and becomes the reference of a new segment: periods are
    never compared across a version boundary, and the persistence window restarts.

    Args:
        periods: ``(label, category → data)`` in time order; at least one.
    """
    cfg = config or DriftConfig()
    if not periods:
        raise DriftInputError(
            "no periods",
            where="drift_series",
            field="periods",
            expected="at least one period (the first is the reference)",
            actual="0",
        )
    out: list[PeriodResult] = []
    ref_label, ref_inputs = periods[0]
    ref_version = _policy_version(ref_inputs, ref_label)
    history: dict[str, list[bool | None]] = {}
    out.append(
        PeriodResult(
            index=0,
            label=ref_label,
            policy_version=ref_version,
            role="reference",
            policy_break=False,
            report=None,
        )
    )
    for i, (label, inputs) in enumerate(periods[1:], start=1):
        version = _policy_version(inputs, label)
        # an empty period (no data at all) has no version: it is a gap, not a boundary
        if inputs and version != ref_version:
            ref_label, ref_inputs, ref_version = label, inputs, version
            history = {}
            out.append(
                PeriodResult(
                    index=i,
                    label=label,
                    policy_version=version,
                    role="reference",
                    policy_break=True,
                    report=None,
                )
            )
            continue
        rep = drift_report(
            ref_inputs,
            inputs,
            cfg,
            reference_label=ref_label,
            current_label=label,
            history=history,
        )
        seen = {c.category for c in rep.categories}
        for c in rep.categories:
            history.setdefault(c.category, []).append(c.breach)
        for name, h in history.items():
            if name not in seen:  # absent this period: no evidence, keeps its window slot
                h.append(None)
        out.append(
            PeriodResult(
                index=i,
                label=label,
                policy_version=version,
                role="compared",
                policy_break=False,
                report=rep,
            )
        )
    return DriftSeries(config=cfg, periods=tuple(out))
