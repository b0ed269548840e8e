"""Stratification by size: view bands inside each score-band stratum.

View-weighted prevalence is a ratio of totals of ``v·y`` and ``v``. Views are
heavy-tailed, so within a score band a few hundred labelled items hold a handful
of high-view violators whose chance presence or absence moves the estimate by
more than its standard error, and the estimate and its standard error rise and
fall together. The normal interval then under-covers however the variance is
estimated (Cochran's rule n > 25 G₁² fails). The textbook remedy is in the design,
not the interval: stratify by size (Cochran 1977 §5A.7–5A.8 and §2.15; Särndal,
Swensson & Wretman 1992 §3.7). Each large enough score-band stratum is split at
view quantiles (five bands, the top one the 0.5% most viewed), and its n_h is
shared between the view bands by a compromise allocation for two objectives, the
item-level metrics and the view-weighted total (Kish 1976): n_b minimises the sum
of the two variances, each relative to its own optimum. Figures:
docs/methods/production.md §2, §7.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from audit.production.logs import DecisionLogs

CaseSql = Callable[[list[dict[str, Any]], tuple[str, ...]], str]

# the view quantiles at which a stratum is split (5 view bands). The 0.995 edge keeps
# the take-all top band small: with 0.98 as the top edge it alone took ~600 of a
# bulk stratum's 2,169 labels (item-level widths +16% against +11%, methods §2)
VIEW_QUANTILES = (0.5, 0.9, 0.98, 0.995)
# smallest human sample per view band; a stratum is split only when it can give
# every band this many labels twice over
BAND_FLOOR = 10


def splittable(sp: dict[str, Any], n_bands: int) -> bool:
    """A sampled (not take-all) stratum with room for ``n_bands`` view bands."""
    return (
        sp.get("views_min") is None
        and 0 < sp["n_h"] < sp["N_h"]
        and sp["n_h"] >= 2 * BAND_FLOOR * n_bands
    )


def split_by_views(
    logs: DecisionLogs,
    rel: str,
    specs: list[dict[str, Any]],
    slices: tuple[str, ...],
    case_sql: CaseSql,
    quantiles: tuple[float, ...] = VIEW_QUANTILES,
) -> list[dict[str, Any]]:
    """Return the specs with every splittable stratum replaced by its view bands
    (renumbered; sizes N_h counted and n_h allocated within the parent stratum).
    ``case_sql`` maps specs to the SQL CASE giving a row's stratum id (the plan's)."""
    todo = {sp["id"] for sp in specs if splittable(sp, len(quantiles) + 1)}
    if not todo:
        return specs
    case = case_sql(specs, slices)
    edges: dict[int, list[int]] = {}
    for sid, qs in logs.con.execute(
        f"SELECT s, quantile_cont(views, {list(quantiles)}) FROM "
        f"(SELECT {case} AS s, views FROM ({rel})) WHERE s IN ({', '.join(map(str, todo))}) "
        "GROUP BY s"
    ).fetchall():
        # views are counts: an edge e means "views < ceil(e)"; ties collapse
        cuts = sorted({math.ceil(float(q)) for q in qs})
        edges[int(sid)] = [x for x in cuts if x > 0]
    out: list[dict[str, Any]] = []
    for sp in specs:
        e = edges.get(sp["id"], [])
        if not e:
            out.append(sp)
            continue
        bounds: list[int | None] = [None, *e, None]
        for k in range(len(bounds) - 1):
            out.append(
                sp
                | {
                    "views_lo": bounds[k],
                    "views_hi": bounds[k + 1],
                    "vband": k,
                    "key": f"{sp['key']}|v{k}",
                }
            )
    for i, sp in enumerate(out):
        sp["parent"] = sp.get("parent", sp["id"]) if "vband" in sp else sp["id"]
        sp["id"] = i
    stats = _band_stats(logs, rel, case_sql(out, slices))
    for parent in {sp["parent"] for sp in out if "vband" in sp}:
        _allocate_within([sp for sp in out if sp.get("parent") == parent and "vband" in sp], stats)
    out = [sp for sp in out if sp["N_h"] > 0 or "vband" not in sp]
    for i, sp in enumerate(out):
        sp["id"] = i
        sp.pop("parent", None)
    return out


def _band_stats(logs: DecisionLogs, rel: str, case: str) -> dict[int, tuple[int, float, float]]:
    """Per stratum id: (N_h, mean score, standard deviation of views)."""
    rows = logs.con.execute(
        f"SELECT {case} AS s, count(*), avg(score), coalesce(stddev_samp(views), 0) "
        f"FROM ({rel}) GROUP BY 1"
    ).fetchall()
    return {int(r[0]): (int(r[1]), float(r[2]), float(r[3])) for r in rows if r[0] is not None}


def _allocate_within(
    bands: list[dict[str, Any]], stats: dict[int, tuple[int, float, float]]
) -> None:
    """Share the parent's n_h over its view bands by Kish's (1976) compromise.

    Two objectives share the labels: item-level metrics (the violation rate, flat
    inside the score band, so S_b is the same in every band: proportional
    allocation is their optimum) and the view-weighted total (S_b ∝ the standard
    deviation of views, Neyman). Minimising V_items/V*_items + V_views/V*_views
    gives n_b ∝ N_b √((1/N)² + (S_b / Σ N S)²).
    """
    n_parent = bands[0]["n_h"]
    for b in bands:
        N_b, mean_score, sd = stats.get(b["id"], (0, 0.0, 0.0))
        b["N_h"], b["mean_score"], b["sd_views"] = N_b, mean_score, sd
    N_tot = sum(b["N_h"] for b in bands)
    NS_tot = sum(b["N_h"] * b["sd_views"] for b in bands)
    wt = [
        b["N_h"] * math.hypot(1 / max(N_tot, 1), b["sd_views"] / NS_tot if NS_tot > 0 else 0.0)
        for b in bands
    ]
    W = sum(wt)
    want = [max(round(n_parent * x / W), BAND_FLOOR) if W > 0 else BAND_FLOOR for x in wt]
    for b in bands:
        b.pop("sd_views")
    # a band asked for more than it holds is taken in full; its surplus goes to the
    # others in proportion to their asks, so the parent keeps its n_h
    n = [min(w, b["N_h"]) for w, b in zip(want, bands)]
    for _ in range(len(bands)):
        left = n_parent - sum(n)
        open_ = [i for i, b in enumerate(bands) if n[i] < b["N_h"]]
        if left <= 0 or not open_:
            break
        ask = sum(want[i] for i in open_)
        for i in open_:
            n[i] = min(bands[i]["N_h"], n[i] + math.ceil(left * want[i] / ask))
    while sum(n) > n_parent:  # rounding up may overshoot by a few: trim the largest band
        i = max(range(len(n)), key=lambda j: n[j])
        n[i] -= 1
    for b, n_b in zip(bands, n):
        b["n_h"] = n_b
