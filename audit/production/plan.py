"""``audit production plan``: strata, Neyman allocation and sample sizes.

From one period of logs (normally yesterday's) the plan fixes, per reporting cell
(pathway × category, optionally × slice values):

* strata: score bands of the actioned frame A (quantile edges) and of the
  not-actioned frame B above its bulk quantile, plus one thin uniform *bulk*
  stratum over B's low scores (never zero allocation: violators hide there);
* prior violation rates p_h (from a previous production record, else from prior
  precision/recall guesses spread over the bands by mean score);
* Neyman allocation n_h ∝ N_h √(p_h(1−p_h)) with a floor, capped at N_h, sized so
  the expected 95% half-width of precision and recall meets the target;
* expected half-widths and the minimum detectable change (MDE) vs the previous period.

Methods: docs/methods/production.md §2 (Neyman 1934; Cochran 1977 ch. 5).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from audit.production.allocation import (
    allocate_cell,
    expected_precision,
    interior_edges,
    scale_to_budget,
)
from audit.production.errors import PlanError
from audit.production.logs import DecisionLogs, Period, sql_ident, sql_str
from audit.production.strata_sql import stratum_case_sql
from audit.production.viewbands import split_by_views

# stratum_case_sql moved to strata_sql; sample.py and the tests import it from here
__all__ = [
    "PLAN_VERSION",
    "CellPlan",
    "Plan",
    "Stratum",
    "build_plan",
    "cell_key",
    "load_plan",
    "stratum_case_sql",
]

PLAN_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")


class Stratum(_Frozen):
    """One stratum: a score band of one frame within one reporting cell.

    ``lo`` is inclusive and ``hi`` exclusive except for the top band (hi = 1 inclusive).
    A *certainty* stratum (``views_min`` set, ``band = -1``) holds the frame's most
    viewed items (views >= views_min) and is taken in full: a handful of viral
    items dominate view-weighted prevalence, and sampling them would make its
    variance estimate unreliable (a take-all stratum, Hidiroglou 1986).
    """

    id: int
    key: str
    pathway: str
    category: str
    frame: Literal["actioned", "not_actioned"]
    band: int
    bulk: bool
    lo: float
    hi: float
    slice: dict[str, str] = Field(default_factory=dict)
    views_min: int | None = None
    views_lo: int | None = None
    views_hi: int | None = None
    N_h: int
    p_prior: float
    n_h: int
    m_h: int


class CellPlan(_Frozen):
    """Expected precision of the planned estimates in one reporting cell."""

    key: str
    pathway: str
    category: str
    slice: dict[str, str] = Field(default_factory=dict)
    N_actioned: int
    N_not_actioned: int
    n_labels: int
    precision_prior: float
    recall_prior: float
    half_width_precision: float
    half_width_recall: float
    half_width_prevalence: float
    mde_precision: float
    mde_recall: float
    note: str | None = None


class Plan(_Frozen):
    """A sampling plan (written by ``audit production plan``)."""

    plan_version: Literal[1] = 1
    logs_card: str
    logs_digest: str
    period: str
    policy_version: str
    pathways: tuple[str, ...]
    slices: tuple[str, ...] = ()
    half_width: float
    floor: int
    bands_actioned: int
    bands_not_actioned: int
    bulk_quantile: float
    reference_factor: float
    certainty_views: int = 0
    view_bands: bool = False
    max_labels: int | None = None
    strata: tuple[Stratum, ...]
    cells: tuple[CellPlan, ...]

    def digest(self) -> str:
        """sha256 of the plan's canonical JSON."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def cell_key(pathway: str, category: str, sl: dict[str, str]) -> str:
    """``pathway/category`` (+ ``|slice=value`` pairs)."""
    tail = "".join(f"|{k}={v}" for k, v in sorted(sl.items()))
    return f"{pathway}/{category}{tail}"


def _prior_from_record(path: Path | None) -> dict[str, float]:
    """Stratum key → p̂_h from a previous production record (if given)."""
    if path is None:
        return {}
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
        return {
            str(s["key"]): float(s["p_hat"])
            for s in rec["strata"]
            if s.get("p_hat") is not None and math.isfinite(float(s["p_hat"]))
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PlanError(
            f"cannot read the previous estimate: {exc}",
            where=str(path),
            field="strata[].p_hat",
            expected="a production record written by `audit production estimate`",
            actual=type(exc).__name__,
        ) from None


def _prior_half_widths(path: Path | None) -> dict[str, dict[str, float]]:
    if path is None:
        return {}
    rec = json.loads(Path(path).read_text(encoding="utf-8"))
    out: dict[str, dict[str, float]] = {}
    for c in rec.get("cells", []):
        se = {}
        for m in ("precision", "recall"):
            est = c.get("classical", {}).get(m) or {}
            v = est.get("se")
            if v is not None:
                se[m] = float(v)
        out[str(c["key"])] = se
    return out


def build_plan(
    logs: DecisionLogs,
    period: Period,
    *,
    pathways: tuple[str, ...] = (),
    policy_version: str | None = None,
    slices: tuple[str, ...] = (),
    half_width: float = 0.05,
    floor: int = 30,
    bands_actioned: int = 4,
    bands_not_actioned: int = 4,
    bulk_quantile: float = 0.8,
    precision_prior: float = 0.8,
    recall_prior: float = 0.7,
    previous: Path | None = None,
    reference_factor: float = 1.0,
    max_labels: int | None = None,
    certainty_views: int | None = None,
    view_bands: bool | None = None,
) -> Plan:
    """Build a plan from one period of logs (see the module docstring).

    ``view_bands`` (stratification by size, methods §2) defaults to on when the logs
    have views: without it the view-weighted prevalence interval under-covers
    (about 0.89-0.92 for a nominal 0.95, methods §7). ``False`` gives the flat
    score-band design; ``True`` without views is an error."""
    _check_args(
        logs, slices, half_width, bulk_quantile, precision_prior, recall_prior, floor,
        reference_factor,
    )  # fmt: skip
    version, all_pw, rel = _period_relation(logs, period, pathways, policy_version)
    group = ", ".join(
        ["pathway", "category", "actioned", *(sql_ident("slice." + s) for s in slices)]
    )
    has_views = logs.card.columns.views is not None
    view_bands = has_views if view_bands is None else view_bands
    k_cert = _certainty_k(certainty_views, has_views)
    thresholds = _certainty_thresholds(logs, group, rel, k_cert)
    rows = _group_quantiles(logs, rel, group, bands_actioned, bands_not_actioned, bulk_quantile)
    specs = _band_specs(rows, slices, bands_actioned, thresholds)
    by_cell = _by_cell(specs, _stratum_counts(logs, rel, specs, slices))
    prev_se = _prior_half_widths(previous)
    cells = _cell_plans(
        by_cell, half_width, floor, precision_prior, recall_prior,
        _prior_from_record(previous), prev_se, max_labels,
    )  # fmt: skip
    if view_bands:
        specs, cells = _with_view_bands(
            logs, rel, specs, slices, cells, has_views, precision_prior, recall_prior, prev_se
        )
    return Plan(
        logs_card=str(logs.card_path),
        logs_digest=logs.digest(period),
        period=period.label,
        policy_version=version,
        pathways=all_pw,
        slices=slices,
        half_width=half_width,
        floor=floor,
        bands_actioned=bands_actioned,
        bands_not_actioned=bands_not_actioned,
        bulk_quantile=bulk_quantile,
        reference_factor=reference_factor,
        certainty_views=k_cert,
        view_bands=view_bands,
        max_labels=max_labels,
        strata=tuple(_strata(specs, reference_factor)),
        cells=tuple(cells),
    )


def _period_relation(
    logs: DecisionLogs,
    period: Period,
    pathways: tuple[str, ...],
    policy_version: str | None,
) -> tuple[str, tuple[str, ...], str]:
    """Check the period (per requested pathway) and return its policy version, the
    pathways seen and the SQL relation of the rows to plan over."""
    reports = [logs.check(period, pw, policy_version) for pw in pathways or (None,)]
    all_pw = tuple(sorted({p for r in reports for p in r.pathways}))
    pw_filter = ""
    if pathways:
        pw_filter = " WHERE pathway IN (" + ", ".join(sql_str(p) for p in pathways) + ")"
    rel = f"SELECT * FROM ({logs.relation_sql(period, None, policy_version)}){pw_filter}"
    return reports[0].policy_version, all_pw, rel


def _certainty_k(certainty_views: int | None, has_views: bool) -> int:
    """Items per group taken with certainty: 20 by default when the log has views."""
    k_cert = (20 if has_views else 0) if certainty_views is None else certainty_views
    if k_cert and not has_views:
        raise PlanError(
            "certainty strata need views",
            field="--certainty-views",
            expected="0 without a views column",
            actual=str(k_cert),
        )
    return k_cert


def _group_quantiles(
    logs: DecisionLogs,
    rel: str,
    group: str,
    bands_actioned: int,
    bands_not_actioned: int,
    bulk_quantile: float,
) -> list[Any]:
    """Per group (cell × frame): size and the score quantiles at the band edges of the
    actioned frame and of the not-actioned frame above its bulk quantile."""
    qa = [i / bands_actioned for i in range(1, bands_actioned)]
    qb = [
        bulk_quantile + (1 - bulk_quantile) * i / bands_not_actioned
        for i in range(bands_not_actioned)
    ]
    rows: list[Any] = logs.con.execute(
        f"SELECT {group}, count(*), quantile_cont(score, {qa or [0.5]}), "
        f"quantile_cont(score, {qb}) FROM ({rel}) GROUP BY {group} ORDER BY {group}"
    ).fetchall()
    return rows


def _by_cell(
    specs: list[dict[str, Any]], counts: dict[int, tuple[int, float]]
) -> dict[str, list[dict[str, Any]]]:
    """Set each spec's N_h, mean score and key; group the specs by reporting cell."""
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for sp in specs:
        N_h, mean_score = counts.get(sp["id"], (0, 0.0))
        sp["N_h"], sp["mean_score"] = N_h, mean_score
        tag = "viral" if sp.get("views_min") is not None else sp["band"]
        sp["key"] = f"{cell_key(sp['pathway'], sp['category'], sp['slice'])}|{sp['frame']}|{tag}"
        by_cell.setdefault(cell_key(sp["pathway"], sp["category"], sp["slice"]), []).append(sp)
    return by_cell


def _with_view_bands(
    logs: DecisionLogs,
    rel: str,
    specs: list[dict[str, Any]],
    slices: tuple[str, ...],
    cells: list[CellPlan],
    has_views: bool,
    precision_prior: float,
    recall_prior: float,
    prev_se: dict[str, dict[str, float]],
) -> tuple[list[dict[str, Any]], list[CellPlan]]:
    """Split the allocated strata by views (stratification by size, viewbands.py and
    methods §2) and summarise every cell again over its new strata."""
    if not has_views:
        raise PlanError(
            "view bands need views",
            field="--view-bands",
            expected="--no-view-bands (the default) without a views column",
            actual="--view-bands",
        )
    specs = split_by_views(logs, rel, specs, slices, stratum_case_sql)
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for sp in specs:
        by_cell.setdefault(cell_key(sp["pathway"], sp["category"], sp["slice"]), []).append(sp)
    cells = [
        _cell_summary(
            c.key,
            by_cell[c.key],
            c.N_actioned,
            c.N_not_actioned,
            precision_prior,
            recall_prior,
            c.note,
            prev_se.get(c.key, {}),
        )
        for c in cells
    ]
    return specs, cells


def _check_args(
    logs: DecisionLogs,
    slices: tuple[str, ...],
    half_width: float,
    bulk_quantile: float,
    precision_prior: float,
    recall_prior: float,
    floor: int,
    reference_factor: float,
) -> None:
    """Refuse planning options that cannot give a valid plan, naming the flag."""
    if not 0 < half_width < 0.5:
        raise PlanError(
            "bad target half-width",
            field="--half-width",
            expected="0 < e < 0.5",
            actual=str(half_width),
        )
    if not 0 < bulk_quantile < 1:
        raise PlanError(
            "bad bulk quantile",
            field="--bulk-quantile",
            expected="0 < q < 1",
            actual=str(bulk_quantile),
        )
    if not (0 < precision_prior < 1 and 0 < recall_prior < 1):
        raise PlanError(
            "prior guesses must be strictly between 0 and 1",
            field="--precision-prior/--recall-prior",
            expected="0 < p < 1",
            actual=f"{precision_prior}, {recall_prior}",
        )
    if floor < 2:
        raise PlanError(
            "floor below 2 gives singleton strata",
            field="--floor",
            expected=">= 2",
            actual=str(floor),
        )
    if reference_factor < 1:
        raise PlanError(
            "reference factor below 1",
            field="--reference-factor",
            expected=">= 1",
            actual=str(reference_factor),
        )
    for sname in slices:
        if sname not in logs.card.slices:
            raise PlanError(
                f"unknown slice {sname!r}",
                where=str(logs.card_path),
                field="slices",
                expected=f"one of {list(logs.card.slices)}",
                actual=repr(sname),
                fix="add it to the logs card's slices",
            )


def _certainty_thresholds(
    logs: DecisionLogs, group: str, rel: str, k_cert: int
) -> dict[tuple[Any, ...], int]:
    """Per group, the view count at or above which an item is taken with certainty."""
    thresholds: dict[tuple[Any, ...], int] = {}
    if k_cert:
        # the k-th largest view count per group; only for groups large enough that
        # taking k items in full leaves a sampled remainder
        for r in logs.con.execute(
            f"SELECT {group}, min(views), max(n) FROM (SELECT {group}, views, count(*) OVER (PARTITION BY {group}) AS n, "
            f"row_number() OVER (PARTITION BY {group} ORDER BY views DESC, item_id) AS rn FROM ({rel})) "
            f"WHERE rn <= {int(k_cert)} GROUP BY {group}"
        ).fetchall():
            if int(r[-1]) >= 10 * k_cert and int(r[-2]) > 0:
                thresholds[tuple(r[:-2])] = int(r[-2])
    return thresholds


def _band_specs(
    rows: list[Any],
    slices: tuple[str, ...],
    bands_actioned: int,
    thresholds: dict[tuple[Any, ...], int],
) -> list[dict[str, Any]]:
    """Stratum specs (numbered) from the per-group score quantiles: the score bands of
    each frame, plus a take-all stratum where a group has a certainty threshold."""
    specs: list[dict[str, Any]] = []
    for r in rows:
        pw, cat, act = str(r[0]), str(r[1]), bool(r[2])
        sl = {s: str(v) for s, v in zip(slices, r[3 : 3 + len(slices)])}
        qa_v, qb_v = r[-2], r[-1]
        if act:
            edges = interior_edges(list(qa_v)) if bands_actioned > 1 else []
            bulk_edge = None
        else:
            e = interior_edges(list(qb_v))
            bulk_edge = e[0] if e else None
            edges = e
        bounds = [0.0, *edges, 1.0]
        t = thresholds.get(tuple(r[: 3 + len(slices)]))
        if t is not None:
            specs.append(
                {
                    "pathway": pw,
                    "category": cat,
                    "frame": "actioned" if act else "not_actioned",
                    "band": -1,
                    "bulk": False,
                    "lo": 0.0,
                    "hi": 1.0,
                    "slice": sl,
                    "views_min": t,
                }
            )
        for b in range(len(bounds) - 1):
            specs.append(
                {
                    "pathway": pw,
                    "category": cat,
                    "frame": "actioned" if act else "not_actioned",
                    "band": b,
                    "bulk": (not act) and bulk_edge is not None and b == 0,
                    "lo": bounds[b],
                    "hi": bounds[b + 1],
                    "slice": sl,
                }
            )
    for i, sp in enumerate(specs):
        sp["id"] = i
    return specs


def _strata(specs: list[dict[str, Any]], reference_factor: float) -> list[Stratum]:
    """The plan's strata from the allocated specs; m_h adds the reference-labeller margin."""
    strata: list[Stratum] = []
    for sp in specs:
        m_h = min(sp["N_h"], math.ceil(sp["n_h"] * reference_factor))
        strata.append(
            Stratum(
                id=sp["id"],
                key=sp["key"],
                pathway=sp["pathway"],
                category=sp["category"],
                frame=sp["frame"],
                band=sp["band"],
                bulk=sp["bulk"],
                lo=sp["lo"],
                hi=sp["hi"],
                slice=sp["slice"],
                views_min=sp.get("views_min"),
                views_lo=sp.get("views_lo"),
                views_hi=sp.get("views_hi"),
                N_h=sp["N_h"],
                p_prior=sp["p_prior"],
                n_h=sp["n_h"],
                m_h=m_h,
            )
        )
    return strata


def _cell_plans(
    by_cell: dict[str, list[dict[str, Any]]],
    half_width: float,
    floor: int,
    precision_prior: float,
    recall_prior: float,
    prior_rec: dict[str, float],
    prev_se: dict[str, dict[str, float]],
    max_labels: int | None,
) -> list[CellPlan]:
    """Allocate every cell (setting n_h on its strata) and summarise it; with a label
    budget, scale all allocations down and summarise again."""
    cells: list[CellPlan] = []
    for ckey, sps in by_cell.items():
        note = allocate_cell(sps, half_width, floor, precision_prior, recall_prior, prior_rec)
        NA = sum(s["N_h"] for s in sps if s["frame"] == "actioned" and s["N_h"] > 0)
        NB = sum(s["N_h"] for s in sps if s["frame"] == "not_actioned" and s["N_h"] > 0)
        cells.append(
            _cell_summary(
                ckey, sps, NA, NB, precision_prior, recall_prior, note, prev_se.get(ckey, {})
            )
        )
    if max_labels is not None:
        scale_to_budget(by_cell, max_labels, floor)
        cells = [
            _cell_summary(
                c.key,
                by_cell[c.key],
                c.N_actioned,
                c.N_not_actioned,
                precision_prior,
                recall_prior,
                "scaled to --max-labels",
                prev_se.get(c.key, {}),
            )
            for c in cells
        ]
    return cells


def _cell_summary(
    ckey: str,
    sps: list[dict[str, Any]],
    NA: int,
    NB: int,
    P0: float,
    R0: float,
    note: str | None,
    prev_se: dict[str, float],
) -> CellPlan:
    s0 = sps[0]
    return CellPlan(
        key=ckey,
        pathway=s0["pathway"],
        category=s0["category"],
        slice=s0["slice"],
        N_actioned=NA,
        N_not_actioned=NB,
        precision_prior=P0,
        recall_prior=R0,
        note=note,
        **expected_precision(sps, NA, NB, prev_se),
    )


def _stratum_counts(
    logs: DecisionLogs, rel: str, specs: list[dict[str, Any]], slices: tuple[str, ...]
) -> dict[int, tuple[int, float]]:
    case = stratum_case_sql(specs, slices)
    rows = logs.con.execute(
        f"SELECT {case} AS stratum, count(*), avg(score) FROM ({rel}) GROUP BY 1"
    ).fetchall()
    return {int(r[0]): (int(r[1]), float(r[2])) for r in rows if r[0] is not None}


def load_plan(path: str | Path) -> Plan:
    """Read a plan file (one-line errors naming the file and the first bad field)."""
    from audit._util.validation import load_json_model

    return load_json_model(Plan, Path(path), error=PlanError, what="plan")
