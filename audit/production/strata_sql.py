"""The SQL ``CASE`` expression that maps a canonical log row onto its plan stratum.

Planning (counting ``N_h``), view-band splitting and sampling all assign rows to
strata inside DuckDB with the same expression, so it lives here, apart from the
allocation maths in :mod:`audit.production.plan`. A stratum is one score band of one
frame of one reporting cell, optionally split by views, with an optional take-all
*certainty* stratum on top (docs/methods/production.md §2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from audit.production.logs import sql_ident, sql_str


def stratum_case_sql(
    specs: Sequence[dict[str, Any]] | Sequence[BaseModel], slices: tuple[str, ...]
) -> str:
    """Portable SQL ``CASE`` mapping a canonical row onto its stratum id (NULL: none).

    ``specs`` are the plan's strata (:class:`audit.production.plan.Stratum`) or the
    planner's stratum dicts with the same fields; ``slices`` is kept for the callers'
    signature, each stratum names its own slice values.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for sp in specs:
        d = sp.model_dump() if isinstance(sp, BaseModel) else sp
        g = (d["pathway"], d["category"], d["frame"], tuple(sorted(d["slice"].items())))
        groups.setdefault(g, []).append(d)
    whens = []
    for (pw, cat, frame, sl), bands in groups.items():
        cert = [d for d in bands if d.get("views_min") is not None]
        by_band: dict[int, list[dict[str, Any]]] = {}
        for d in bands:
            if d.get("views_min") is None:
                by_band.setdefault(d["band"], []).append(d)
        conds = [
            f"pathway = {sql_str(pw)}",
            f"category = {sql_str(cat)}",
            "actioned" if frame == "actioned" else "NOT actioned",
            *(f"{sql_ident('slice.' + k)} = {sql_str(v)}" for k, v in sl),
        ]
        ordered = [by_band[b] for b in sorted(by_band)]
        inner = " ".join(
            f"WHEN score < {ds[0]['hi']!r} THEN {_views_case(ds)}" for ds in ordered[:-1]
        )
        last = _views_case(ordered[-1])
        body = f"CASE {inner} ELSE {last} END" if inner else last
        if cert:
            body = f"CASE WHEN views >= {int(cert[0]['views_min'])} THEN {cert[0]['id']} ELSE {body} END"
        whens.append(f"WHEN {' AND '.join(conds)} THEN {body}")
    return "CASE " + " ".join(whens) + " END" if whens else "NULL"


def _views_case(ds: list[dict[str, Any]]) -> str:
    """The stratum id of a score band, or a CASE over its view bands (views_hi exclusive)."""
    if len(ds) == 1:
        return str(ds[0]["id"])
    ds = sorted(ds, key=lambda d: -1 if d.get("views_lo") is None else int(d["views_lo"]))
    whens = " ".join(f"WHEN views < {int(d['views_hi'])} THEN {d['id']}" for d in ds[:-1])
    return f"CASE {whens} ELSE {ds[-1]['id']} END"
