"""Drift between a reference and a current period, per category, as a typed report.

:func:`drift_report` compares one current period with a reference;
:func:`drift_series` runs a series of periods through the persistence rule
(:mod:`audit.monitoring.state`) with policy-version breaks marked. Inputs are plain
arrays (:class:`DriftInput`), so the golden-run CLI and the production-logs reader feed
the same code. Methods: docs/methods.md §7 and ``docs/methods/drift.md``.

The models are in :mod:`audit.monitoring.report_models`, the input checks in
:mod:`audit.monitoring.report_inputs`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from audit.monitoring import metrics as dm
from audit.monitoring._ecdf import compare_samples
from audit.monitoring.report_inputs import (
    PreparedInput,
    finite_or_none,
    grid_cells,
    policy_version_of,
    prepare_input,
)
from audit.monitoring.report_models import (
    FAMILIES,
    SCHEMA_VERSION,
    CategoryDrift,
    DriftConfig,
    DriftInput,
    DriftInputError,
    DriftReport,
    DriftSeries,
    Family,
    PeriodResult,
    PolicyBoundaryError,
    RateStat,
    ReferenceBins,
    Stat,
    Thresholds,
)
from audit.monitoring.state import persistence_states

# The models live in report_models and the input checks in report_inputs; the public
# names stay importable from here, where audit.monitoring and its readers import them.
__all__ = [
    "FAMILIES",
    "SCHEMA_VERSION",
    "CategoryDrift",
    "DriftConfig",
    "DriftInput",
    "DriftInputError",
    "DriftReport",
    "DriftSeries",
    "Family",
    "PeriodResult",
    "PolicyBoundaryError",
    "RateStat",
    "ReferenceBins",
    "Stat",
    "Thresholds",
    "drift_report",
    "drift_series",
]


# ------------------------------------------------------------------------ comparison


def _stat(value: float, p: float, threshold: float, reason: str | None) -> Stat:
    exceeded = not math.isnan(value) and value >= threshold
    return Stat(
        value=finite_or_none(value),
        p_value=finite_or_none(p),
        threshold=threshold,
        exceeded=exceeded,
        reason=reason,
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
        reference=finite_or_none(r.ref),
        current=finite_or_none(r.cur),
        delta=finite_or_none(r.delta),
        ci_low=finite_or_none(r.ci_low),
        ci_high=finite_or_none(r.ci_high),
        n_reference=ref[1],
        n_current=cur[1],
        n_excluded_reference=ref[2],
        n_excluded_current=cur[2],
        p_value=finite_or_none(r.p_value),
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


def _compare(cat: str, ref: PreparedInput, cur: PreparedInput, cfg: DriftConfig) -> _Cat:
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
                p_value=finite_or_none(float(pv)),
                q_value=finite_or_none(float(qv)) if cfg.correction == "bh" else None,
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
    pv_ref = policy_version_of(reference, reference_label)
    pv_cur = policy_version_of(current, current_label)
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
        g = grid_cells(max(np.size(reference[c].scores), np.size(current[c].scores)))
        ref_c = prepare_input(reference[c], f"{reference_label}:{c}", bufs[0], g)
        cur_c = prepare_input(current[c], f"{current_label}:{c}", bufs[1], g)
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
    ref_version = policy_version_of(ref_inputs, ref_label)
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
        version = policy_version_of(inputs, label)
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
