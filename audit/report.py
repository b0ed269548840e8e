"""Markdown report and terminal summary, both rendered from the run record.

Restricted-category item text never appears here: the report shows metrics only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from audit.record import RunRecord
    from audit.results import SuiteResult

#: columns of the summary table: (metric, header)
SUMMARY_METRICS = (
    ("prevalence", "prev"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
    ("fpr", "FPR"),
    ("auprc", "AUPRC"),
    ("ece", "ECE"),
)


def fmt_value(v: dict[str, Any] | None, *, ci: bool = True) -> str:
    if not v or v.get("value") is None:
        return "NaN" if v else "—"
    s = f"{v['value']:.3f}"
    if ci and v.get("ci_low") is not None and v.get("ci_high") is not None:
        s += f" ({v['ci_low']:.2f}–{v['ci_high']:.2f})"
    return s


def _ordered(metrics: dict[str, Any]) -> list[str]:
    cats = [c for c in metrics if c != "overall"]
    return (["overall"] if "overall" in metrics else []) + cats


def _reasons(metrics: dict[str, Any]) -> list[str]:
    out = []
    for cat in _ordered(metrics):
        for m, v in metrics[cat].items():
            if v.get("value") is None and v.get("reason"):
                out.append(f"{cat}/{m}: {v['reason']}")
    return out


def markdown(record: RunRecord) -> str:
    d = record.data
    lines = [
        f"# Audit run `{record.run_id}`",
        "",
        f"- status: **{d['status']}**; config `{d['config_path']}` (hash `{d['config_hash'][:12]}`)",
        f"- policy: `{d['policy']['ref']}`; git `{(d['provenance']['git'].get('commit') or '?')[:12]}`"
        f"{' (dirty)' if d['provenance']['git'].get('dirty') else ''}",
        f"- intervals: {d['config']['metrics']['ci']:.0%} bootstrap, "
        f"{d['config']['metrics']['bootstrap']} resamples, seed {d['config']['metrics']['seed']}",
        "",
    ]
    for s in d.get("skipped", []):
        lines.append(f"> skipped optional suite `{s['suite']}`: {s['reason']}")
    for r in d["results"]:
        suite = d["suites"].get(f"{r['suite']}:{r['split']}", {})
        lines += [
            f"## {r['suite']}:{r['split']} × {r['moderator']}",
            "",
            f"n = {r['n']} (errors {r['n_errors']}, cached {r['n_cached']}); suite digest "
            f"`{suite.get('digest', '?')[:16]}`; categories scored: {', '.join(r['categories_scored'])}",
            "",
            "| category | n | " + " | ".join(h for _, h in SUMMARY_METRICS) + " |",
            "|---|---:|" + "---|" * len(SUMMARY_METRICS),
        ]
        for cat in _ordered(r["metrics"]):
            per = r["metrics"][cat]
            n = per.get("support", {}).get("value")
            row = [cat, "—" if n is None else str(int(n))]
            row += [fmt_value(per.get(m)) for m, _ in SUMMARY_METRICS]
            lines.append("| " + " | ".join(row) + " |")
        reasons = _reasons(r["metrics"])
        if reasons:
            lines += ["", "Undefined metrics:", *[f"- {x}" for x in reasons[:30]]]
        lines.append("")
    return "\n".join(lines) + "\n"


def write_report(record: RunRecord, results: list[SuiteResult] | None = None) -> None:
    (record.dir / "report.md").write_text(markdown(record), encoding="utf-8")


def print_summary(console: Console, record: RunRecord) -> None:
    from rich.table import Table

    d = record.data
    for r in d["results"]:
        t = Table(
            title=f"{r['suite']}:{r['split']} × {r['moderator']}  (n={r['n']}, errors={r['n_errors']}, "
            f"cached={r['n_cached']}; 95% CI in parentheses)",
            title_justify="left",
            show_lines=False,
            box=None,
            pad_edge=False,
        )
        t.add_column("category", no_wrap=True)
        t.add_column("n", justify="right")
        for _, h in SUMMARY_METRICS:
            t.add_column(h, justify="right", no_wrap=True)
        for cat in _ordered(r["metrics"]):
            per = r["metrics"][cat]
            n = per.get("support", {}).get("value")
            t.add_row(
                cat,
                "—" if n is None or (isinstance(n, float) and math.isnan(n)) else str(int(n)),
                *[fmt_value(per.get(m), ci=m not in ("prevalence",)) for m, _ in SUMMARY_METRICS],
            )
        console.print(t)
    for s in d.get("skipped", []):
        console.print(f"[yellow]skipped[/] {s['suite']}: {s['reason']}")
