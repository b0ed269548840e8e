"""Sample-size allocation for a production plan (docs/methods/production.md): priors per
stratum, Neyman allocation with floors and caps, the Bernoulli planning variance and the
scaling of a whole plan to a label budget. Pure arithmetic on stratum dicts; the SQL and
the plan models stay in :mod:`audit.production.plan`. Also the expected half-widths and
minimum detectable changes of a planned cell (:func:`expected_precision`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from audit.production.errors import PlanError

Z95 = 1.959963984540054
Z80 = 0.8416212335729143


def interior_edges(qs: list[float]) -> list[float]:
    """Strictly increasing interior edges in (0, 1) from quantiles (ties merged)."""
    out: list[float] = []
    for q in qs:
        if q is None or not math.isfinite(q):
            continue
        if 0.0 < q < 1.0 and (not out or q > out[-1] + 1e-12):
            out.append(float(q))
    return out


def neyman(N: np.ndarray, S: np.ndarray, n_total: float) -> np.ndarray:
    """Neyman allocation n_h = n N_h S_h / Σ N_h S_h (real-valued, uncapped)."""
    w = N * S
    tot = w.sum()
    if tot <= 0:
        return np.asarray(n_total * N / max(N.sum(), 1), dtype=np.float64)
    return np.asarray(n_total * w / tot, dtype=np.float64)


def _cap_floor(alloc: np.ndarray, N: np.ndarray, floor: int) -> np.ndarray:
    """Round up, floor at min(floor, N_h), cap at N_h."""
    n = np.ceil(alloc)
    n = np.maximum(n, np.minimum(floor, N))
    return np.asarray(np.minimum(n, N), dtype=np.int64)


def var_total(N: np.ndarray, p: np.ndarray, n: np.ndarray) -> float:
    """Σ N_h² (1 − f_h) p_h(1−p_h)/n_h for Bernoulli strata (planning variance)."""
    live = (N > 0) & (n > 0)
    S2 = p * (1 - p)
    return float(np.sum((N**2 * (1 - n / np.maximum(N, 1)) * S2 / np.maximum(n, 1))[live]))


def _n_for_variance(N: np.ndarray, S: np.ndarray, v_target: float) -> float:
    """Total n for Neyman allocation achieving Var(total) = v_target (Cochran 5.26)."""
    if v_target <= 0:
        return float(N.sum())
    return float((N * S).sum() ** 2 / (v_target + (N * S**2).sum()))


def _assign_priors(
    A: list[dict[str, Any]],
    B: list[dict[str, Any]],
    NA: int,
    P0: float,
    R0: float,
    prior_rec: dict[str, float],
) -> None:
    """p_h per stratum: a previous estimate where it exists, else the guesses.

    Guesses: in A, p_h ∝ mean score rescaled so the frame mean is P0; in B the
    expected misses N_A P0 (1 − R0)/R0 are spread over the bands ∝ N_h · mean score.
    Clipped away from 0 and 1 so no stratum gets S_h = 0 (and zero allocation).
    """
    if A:
        ms = np.array([max(s["mean_score"], 1e-3) for s in A])
        N = np.array([s["N_h"] for s in A], dtype=float)
        p = ms * P0 * N.sum() / float((N * ms).sum())
        for s, v in zip(A, p):
            s["p_prior"] = prior_rec.get(s["key"], float(np.clip(v, 0.02, 0.98)))
    if B:
        misses = NA * P0 * (1 - R0) / R0 if NA else 0.01 * sum(s["N_h"] for s in B)
        ms = np.array([max(s["mean_score"], 1e-4) for s in B])
        N = np.array([s["N_h"] for s in B], dtype=float)
        share = N * ms / float((N * ms).sum())
        for s, sh in zip(B, share):
            s["p_prior"] = prior_rec.get(
                s["key"], float(np.clip(misses * sh / max(s["N_h"], 1), 0.002, 0.98))
            )


def scale_to_budget(by_cell: dict[str, list[dict[str, Any]]], budget: int, floor: int) -> None:
    """Scale every stratum's allocation down to a total label budget (floors kept)."""
    items = [s for sps in by_cell.values() for s in sps if s["N_h"] > 0]
    floors = np.array(
        [s["N_h"] if s.get("views_min") is not None else min(floor, s["N_h"]) for s in items], float
    )
    n = np.array([s["n_h"] for s in items], float)
    if n.sum() <= budget:
        return
    if floors.sum() > budget:
        raise PlanError(
            "label budget below the per-stratum floors",
            field="--max-labels",
            expected=f">= {int(floors.sum())} (floor × strata)",
            actual=str(budget),
            fix="raise --max-labels, lower --floor or use fewer bands",
        )
    extra = n - floors
    k = (budget - floors.sum()) / extra.sum()
    new = floors + np.floor(extra * k)
    for s, v in zip(items, new):
        s["n_h"] = int(v)


def allocate_cell(
    sps: list[dict[str, Any]],
    half_width: float,
    floor: int,
    precision_prior: float,
    recall_prior: float,
    prior_rec: dict[str, float],
) -> str | None:
    """Set ``p_prior`` and ``n_h`` on every stratum of one cell; return the cell's note.

    Precision and recall of the cell both reach ``half_width`` at 95 % under the priors:
    the actioned frame is sized for precision, then the not-actioned frame for what recall
    still needs given the actioned variance. Take-all (certainty) strata get n_h = N_h,
    outside the Neyman allocation since they add no variance.
    """
    A0 = [s for s in sps if s["frame"] == "actioned" and s["N_h"] > 0]
    B0 = [s for s in sps if s["frame"] == "not_actioned" and s["N_h"] > 0]
    NA = sum(s["N_h"] for s in A0)
    _assign_priors(A0, B0, NA, precision_prior, recall_prior, prior_rec)
    for s in A0 + B0:
        if s.get("views_min") is not None:
            s["n_h"] = s["N_h"]
    A = [s for s in A0 if s.get("views_min") is None]
    B = [s for s in B0 if s.get("views_min") is None]
    NA_arr = np.array([s["N_h"] for s in A], dtype=float)
    NB_arr = np.array([s["N_h"] for s in B], dtype=float)
    pA = np.array([s["p_prior"] for s in A])
    pB = np.array([s["p_prior"] for s in B])
    SA, SB = np.sqrt(pA * (1 - pA)), np.sqrt(pB * (1 - pB))
    e2 = (half_width / Z95) ** 2
    note = None
    # precision: Var(P) = Var(T_A)/N_A² <= e²/z²
    nA_tot = _n_for_variance(NA_arr, SA, e2 * NA**2) if A else 0.0
    nA = _cap_floor(neyman(NA_arr, SA, nA_tot), NA_arr, floor) if A else np.zeros(0, np.int64)
    TA = float(sum(s["N_h"] * s["p_prior"] for s in A0))
    TB = float(sum(s["N_h"] * s["p_prior"] for s in B0))
    T = TA + TB
    R = TA / T if T > 0 else math.nan
    VA = var_total(NA_arr, pA, nA)
    # recall: Var(R) = [(1−R)² V_A + R² V_B]/T² <= e²/z²  →  target for V_B
    if B and T > 0 and R > 0:
        vb = (e2 * T**2 - (1 - R) ** 2 * VA) / R**2
        if vb <= 0:
            note = (
                "precision sample alone exceeds the recall target; recall half-width above target"
            )
            vb = e2 * T**2 / (2 * R**2)
        nB_tot = _n_for_variance(NB_arr, SB, vb)
    else:
        nB_tot = 0.0
    nB = _cap_floor(neyman(NB_arr, SB, nB_tot), NB_arr, floor) if B else np.zeros(0, np.int64)
    for s, n in zip(A, nA):
        s["n_h"] = int(n)
    for s, n in zip(B, nB):
        s["n_h"] = int(n)
    for s in sps:
        s.setdefault("n_h", 0)
        s.setdefault("p_prior", math.nan)
    return note


def expected_precision(
    sps: list[dict[str, Any]], NA: int, NB: int, prev_se: dict[str, float]
) -> dict[str, Any]:
    """Planned labels, expected 95% half-widths and MDEs of one cell's estimates.

    From the allocated strata (``N_h``, ``p_prior``, ``n_h``) of the actioned frame
    (size ``NA``) and the not-actioned frame (``NB``): precision is a mean over A,
    recall the share of violations in A (delta method on T_A / (T_A + T_B)),
    prevalence the mean over both frames. The MDE compares with the previous period's
    standard error when ``prev_se`` has it, else assumes an equal one (methods §2).
    """
    A = [s for s in sps if s["frame"] == "actioned" and s["N_h"] > 0]
    B = [s for s in sps if s["frame"] == "not_actioned" and s["N_h"] > 0]
    NA_arr = np.array([s["N_h"] for s in A], float)
    NB_arr = np.array([s["N_h"] for s in B], float)
    pA = np.array([s["p_prior"] for s in A])
    pB = np.array([s["p_prior"] for s in B])
    nA = np.array([s["n_h"] for s in A], float)
    nB = np.array([s["n_h"] for s in B], float)
    VA, VB = var_total(NA_arr, pA, nA), var_total(NB_arr, pB, nB)
    TA, TB = float((NA_arr * pA).sum()), float((NB_arr * pB).sum())
    T = TA + TB
    vP = VA / NA**2 if NA else math.nan
    R = TA / T if T > 0 else math.nan
    vR = ((1 - R) ** 2 * VA + R**2 * VB) / T**2 if T > 0 else math.nan
    Nt = NA + NB
    vp = (VA + VB) / Nt**2 if Nt else math.nan
    zz = Z95 + Z80

    def mde(v: float, m: str) -> float:
        v_prev = prev_se[m] ** 2 if m in prev_se else v
        return zz * math.sqrt(v + v_prev) if math.isfinite(v) else math.nan

    def half(v: float) -> float:
        return Z95 * math.sqrt(v) if math.isfinite(v) else math.nan

    return {
        "n_labels": int(nA.sum() + nB.sum()),
        "half_width_precision": half(vP),
        "half_width_recall": half(vR),
        "half_width_prevalence": half(vp),
        "mde_precision": mde(vP, "precision"),
        "mde_recall": mde(vR, "recall"),
    }
