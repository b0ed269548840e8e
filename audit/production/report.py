"""Outputs of a production record: MLflow series, a standalone HTML section, a table.

MLflow: one run per pathway × period in experiment ``production`` (overridable),
metric keys ``{pathway}/{category}/{metric}`` with ``_ci_low``/``_ci_high`` and
``/n_labelled`` (slice domains add ``/{slice}.{value}`` after the category), PPI
estimates under ``.../{metric}_ppi``; step = ``YYYYMMDD`` of the period start and the
timestamp its UTC midnight, so the UI plots one point per period. NaN estimates
are logged as NaN (MLflow stores them as NaN), never as 0.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from audit.production.estimate import ProductionRecord
from audit.production.logs import Period


def metric_rows(rec: ProductionRecord, pathway: str) -> dict[str, float]:
    """Flat ``{key: value}`` of one pathway's estimates (MLflow metric names)."""
    from audit.tracking import slug

    out: dict[str, float] = {}
    for c in rec.cells:
        if c.pathway != pathway:
            continue
        dom = "".join(f"/{k}.{v}" for k, v in sorted(c.domain.items()))
        base = f"{c.pathway}/{c.category}{dom}"
        for m, e in c.classical.items():
            k = slug(f"{base}/{m}")
            out[k] = e.value
            out[k + "_ci_low"] = e.ci_low
            out[k + "_ci_high"] = e.ci_high
            out[k + "/n_labelled"] = float(e.n_labelled)
        for m, p in c.ppi.items():
            k = slug(f"{base}/{m}_ppi")
            out[k] = p.value
            out[k + "_ci_low"] = p.ci_low
            out[k + "_ci_high"] = p.ci_high
            out[k + "/ess_gain"] = p.ess_gain
    return out


def log_mlflow(
    rec: ProductionRecord,
    record_path: Path,
    runs_dir: Path,
    *,
    experiment: str = "production",
    html_path: Path | None = None,
) -> list[str]:
    """One MLflow run per pathway of the record; returns the run ids."""
    from audit.tracking.artifacts import SeriesRun, log_series_runs

    period = Period.parse(rec.period)
    runs = [
        SeriesRun(
            name=f"{pw} {rec.period}",
            tags={
                "audit.kind": "production",
                "audit.pathway": pw,
                "audit.period": rec.period,
                "audit.policy_version": rec.policy_version,
                "audit.logs_digest": rec.logs_digest,
                "audit.manifest_digest": rec.manifest_digest,
            },
            metrics=[(k, float(v), period.step) for k, v in sorted(metric_rows(rec, pw).items())],
            timestamp_ms=period.timestamp_ms,
            artifacts=(record_path,) + ((html_path,) if html_path is not None else ()),
        )
        for pw in sorted({c.pathway for c in rec.cells})
    ]
    return log_series_runs(experiment, runs, runs_dir)


def _fmt(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.3f}"


def write_html(rec: ProductionRecord, path: Path) -> Path:
    """A standalone HTML section: estimates with intervals, strata, disagreement."""
    esc = html.escape
    parts: list[str] = [
        "<!doctype html><meta charset='utf-8'><title>production audit "
        f"{esc(rec.period)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;"
        "text-align:right}th{background:#eee}.l{text-align:left}.flag{color:#a40}</style>",
        f"<h2>Production enforcement audit — {esc(rec.period)} ({esc(rec.policy_version)})</h2>",
        f"<p>logs {esc(rec.logs_digest[:12])} · manifest {esc(rec.manifest_digest[:12])} · "
        f"{rec.n_missing_labels} sampled items without a human label ({esc(rec.missing_labels)}) · "
        f"bootstrap {rec.bootstrap_reps} reps · 95% intervals</p>",
        "<h3>Estimates</h3><table><tr><th class=l>cell</th><th class=l>metric</th><th>estimate</th>"
        "<th>95% CI (linearised, logit)</th><th>95% CI (bootstrap)</th><th>n labelled</th>"
        "<th>PPI++</th><th>PPI 95% CI</th><th>ESS gain</th><th>naive</th></tr>",
    ]
    for c in rec.cells:
        for m, e in c.classical.items():
            p = c.ppi.get(m)
            parts.append(
                f"<tr><td class=l>{esc(c.key)}</td><td class=l>{m}</td><td>{_fmt(e.value)}</td>"
                f"<td>[{_fmt(e.ci_low)}, {_fmt(e.ci_high)}]</td>"
                f"<td>[{_fmt(e.boot_ci_low)}, {_fmt(e.boot_ci_high)}]</td><td>{e.n_labelled}</td>"
                + (
                    f"<td>{_fmt(p.value)}</td><td>[{_fmt(p.ci_low)}, {_fmt(p.ci_high)}]</td>"
                    f"<td>{_fmt(p.ess_gain)}</td>"
                    if p
                    else "<td>–</td><td>–</td><td>–</td>"
                )
                + f"<td>{_fmt(c.naive.get(m, math.nan))}</td></tr>"
            )
        for f in c.flags:
            parts.append(f"<tr><td class='l flag' colspan=10>{esc(c.key)}: {esc(f)}</td></tr>")
    parts.append(
        "</table><h3>Strata</h3><table><tr><th class=l>stratum</th><th>score band</th><th>N_h</th>"
        "<th>n_h</th><th>labelled</th><th>missing</th><th>p̂_h</th><th>m_h (reference)</th>"
        "<th>reference rate</th><th>human vs reference disagreement</th></tr>"
    )
    for s in rec.strata:
        parts.append(
            f"<tr><td class=l>{esc(s.key)}</td><td>[{s.lo:.3f}, {s.hi:.3f})</td><td>{s.N_h}</td>"
            f"<td>{s.n_h}</td><td>{s.n_labelled}</td><td>{s.n_missing}</td><td>{_fmt(s.p_hat)}</td>"
            f"<td>{s.n_reference}</td><td>{_fmt(s.reference_rate)}</td>"
            f"<td>{_fmt(s.disagreement)} (n={s.n_both})</td></tr>"
        )
    parts.append("</table>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def summary_table(rec: ProductionRecord, console: Any, *, slices: bool = False) -> None:
    """Print the headline estimates as a rich table."""
    from rich.table import Table

    t = Table(title=f"production estimate {rec.period}")
    for col in ("cell", "metric", "estimate [95% CI]", "n", "PPI++ [95% CI]", "ESS gain", "naive"):
        t.add_column(col)
    for c in rec.cells:
        if c.domain and not slices:
            continue
        for m, e in c.classical.items():
            p = c.ppi.get(m)
            t.add_row(
                c.key,
                m,
                f"{_fmt(e.value)} [{_fmt(e.ci_low)}, {_fmt(e.ci_high)}]"
                + (f" ({e.reason})" if e.reason else ""),
                str(e.n_labelled),
                f"{_fmt(p.value)} [{_fmt(p.ci_low)}, {_fmt(p.ci_high)}]" if p else "–",
                _fmt(p.ess_gain) if p else "–",
                _fmt(c.naive.get(m, math.nan)),
            )
    console.print(t)
    for c in rec.cells:
        for f in c.flags:
            console.print(f"[yellow]flag[/] {c.key}: {f}")
