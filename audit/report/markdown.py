"""Markdown report and terminal summary, both rendered from the run record.

Restricted-category item text never appears here: the report shows metrics only.

Besides the per-result metric tables, two views of failures:

* **Judge validation** (moderators whose ``kind`` is ``"llm"``): per suite and category,
  n, Cohen's κ, positive- and negative-specific agreement and ECE with their intervals,
  plus the parse-failure rate (Wilson interval) overall and the slices where it is
  highest. Absent when the run has no LLM judge.
* **Errors by slice** for every result with a failed item (:func:`audit.engine.results.
  error_breakdown`).

Undefined values read ``n/a (reason)``, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from audit.report.numbers import fmt_interval, fmt_num

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from audit.engine.record import RecordFile
    from audit.engine.results import SuiteResult
    from audit.records import MetricValue, ResultEntry, RunRecord

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


#: judge-validation columns: (metric, header)
JUDGE_METRICS = (
    ("cohen_kappa", "κ"),
    ("positive_agreement", "pos. agreement"),
    ("negative_agreement", "neg. agreement"),
    ("ece", "ECE"),
)
#: slices listed under the judge's overall parse-failure rate
TOP_PARSE_SLICES = 5
#: moderator ``kind`` that gets the judge-validation section
LLM_KIND = "llm"


def metric_fields(v: Any) -> dict[str, Any] | None:
    """A metric as a dict: a :class:`~audit.records.MetricValue` from the record, or the
    dict rows of an error breakdown (read from Parquet) as they are."""
    from audit.records import MetricValue

    return v.model_dump() if isinstance(v, MetricValue) else v


def fmt_value(v: Any, *, ci: bool = True) -> str:
    """A metric as ``point (low–high)`` (:func:`audit.report.numbers.fmt_interval`);
    ``NaN`` when undefined, ``—`` when absent."""
    v = metric_fields(v)
    if not v or v.get("value") is None:
        return "NaN" if v else "—"
    if not ci:
        return fmt_num(v["value"])
    return fmt_interval(v["value"], v.get("ci_low"), v.get("ci_high"))


def fmt_defined(v: Any, *, ci: bool = True) -> str:
    """Like :func:`fmt_value`, but an undefined value reads ``n/a (reason)``."""
    v = metric_fields(v)
    if v and v.get("value") is None and v.get("reason"):
        return f"n/a ({v['reason']})"
    return fmt_value(v, ci=ci)


def is_llm(rec: RunRecord, moderator: str) -> bool:
    """Whether the run header says ``moderator`` is an LLM judge (``kind == "llm"``)."""
    m = rec.moderators.get(moderator)
    return m is not None and m.kind == LLM_KIND


def result_error_slices(
    run_dir: Path | None,
    r: ResultEntry,
    results: list[SuiteResult] | None = None,
    *,
    ci: float = 0.95,
    df: Any = None,
) -> list[dict[str, Any]] | None:
    """Error rows (:func:`audit.engine.results.error_breakdown`) of one record entry: from the
    entry (``error_slices``), a matching in-memory result, or the predictions Parquet
    (``df`` when already read). ``None`` when none of them is available."""
    if r.error_slices:
        return [x.model_dump(mode="json") for x in r.error_slices]
    for res in results or ():
        if res.key == r.key and res.error_slices:
            return res.error_slices
    try:
        from audit.engine.results import error_breakdown_frame

        if df is None:
            if run_dir is None or not r.predictions:
                return None
            import pandas as pd

            pq = run_dir / r.predictions
            if not pq.is_file():
                return None
            df = pd.read_parquet(pq, columns=None)
        return error_breakdown_frame(df, ci=ci)
    except Exception:  # the report must still render without the breakdown
        return None


def top_parse_slices(rows: list[dict[str, Any]], k: int = TOP_PARSE_SLICES) -> list[dict[str, Any]]:
    """Slice values with the highest parse-failure rate (ties: more items first); only
    values with at least one parse failure, and not a value every item shares (a
    constant slice repeats the overall rate)."""
    n_all = next((x["n"] for x in rows if x["slice"] == "overall"), None)
    cand = [
        x
        for x in rows
        if x["slice"] != "overall" and x.get("n_parse_failures", 0) > 0 and x["n"] != n_all
    ]
    cand.sort(key=lambda x: (-x["parse_failure_rate"]["value"], -x["n"], x["slice"], x["value"]))
    return cand[:k]


def judge_validation(
    rec: RunRecord, r: ResultEntry, error_slices: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """Judge-validation view of one LLM-judge result: per category n, κ, specific
    agreements, ECE (JSON-ready metric dicts), overall parse-failure rate, top slices."""
    rows = []
    for cat in ordered_categories(r.metrics):
        per = r.metrics[cat]
        support = per.get("support")
        n = support.value if support is not None else None
        rows.append(
            {
                "category": cat,
                "n": None if n is None else int(n),
                "metrics": {m: per.get(m) for m, _ in JUDGE_METRICS},
            }
        )
    overall = next((x for x in error_slices or () if x["slice"] == "overall"), None)
    return {
        "suite": f"{r.suite}:{r.split}",
        "moderator": r.moderator,
        "key": r.key,
        "n": r.n,
        "rows": rows,
        "parse": overall["parse_failure_rate"] if overall else None,
        "n_parse_failures": overall["n_parse_failures"] if overall else None,
        "top_slices": top_parse_slices(error_slices or []),
    }


def error_table_rows(error_slices: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Compact per-slice error table: the overall row and every slice value with an
    error (formatted strings)."""
    out = []
    for x in error_slices or ():
        if x["slice"] != "overall" and not x["n_errors"]:
            continue
        out.append(
            {
                "slice": x["slice"],
                "value": x["value"],
                "n": x["n"],
                "n_errors": x["n_errors"],
                "error_rate": fmt_defined(x["error_rate"]),
                "parse_failure_rate": fmt_defined(x["parse_failure_rate"]),
                "by_type": ", ".join(f"{t} {c}" for t, c in x["errors_by_type"].items()) or "—",
            }
        )
    return out


def _judge_markdown(
    record: RecordFile, results: list[SuiteResult] | None, slices: dict[str, Any]
) -> list[str]:
    rec = record.record
    llm = [r for r in rec.results if is_llm(rec, r.moderator)]
    if not llm:
        return []
    ci = rec.config["metrics"]["ci"]
    lines = [
        "## Judge validation",
        "",
        "Agreement of each LLM judge's decisions with gold, per suite and category "
        f"({ci:.0%} bootstrap intervals; positive agreement = 2TP/(2TP+FP+FN) = F1, "
        "negative agreement = 2TN/(2TN+FN+FP); Cicchetti & Feinstein 1990). "
        "Parse failures are errors, never labels; rates with Wilson intervals.",
        "",
    ]
    for r in llm:
        jv = judge_validation(rec, r, slices.get(r.key))
        lines += [
            f"### {jv['suite']} × {jv['moderator']}",
            "",
            "| category | n | " + " | ".join(h for _, h in JUDGE_METRICS) + " |",
            "|---|---:|" + "---|" * len(JUDGE_METRICS),
        ]
        for row in jv["rows"]:
            cells = [fmt_defined(row["metrics"][m]) for m, _ in JUDGE_METRICS]
            n = "—" if row["n"] is None else str(row["n"])
            lines.append("| " + " | ".join([row["category"], n, *cells]) + " |")
        lines.append("")
        if jv["parse"] is None:
            lines.append("- parse-failure rate: — (no per-item error data)")
        else:
            lines.append(
                f"- parse-failure rate: {fmt_defined(jv['parse'])} "
                f"({jv['n_parse_failures']} of {jv['n']} items)"
            )
            if jv["top_slices"]:
                lines.append(f"- highest parse-failure rate by slice (top {TOP_PARSE_SLICES}):")
                lines += [
                    f"  - {x['slice']}={x['value']}: {fmt_defined(x['parse_failure_rate'])} "
                    f"({x['n_parse_failures']} of n={x['n']})"
                    for x in jv["top_slices"]
                ]
            else:
                lines.append("- no parse failures in any slice")
        lines.append("")
    return lines


def _error_markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "Errors by slice (items that failed; rates with Wilson intervals):",
        "",
        "| slice | value | n | errors | error rate | parse-failure rate | by type |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for x in rows:
        lines.append(
            f"| {x['slice']} | {x['value']} | {x['n']} | {x['n_errors']} | {x['error_rate']} "
            f"| {x['parse_failure_rate']} | {x['by_type']} |"
        )
    return lines


def ordered_categories(metrics: Mapping[str, Any]) -> list[str]:
    cats = [c for c in metrics if c != "overall"]
    return (["overall"] if "overall" in metrics else []) + cats


def _reasons(metrics: Mapping[str, Mapping[str, MetricValue]]) -> list[str]:
    out = []
    for cat in ordered_categories(metrics):
        for m, v in metrics[cat].items():
            if v.value is None and v.reason:
                out.append(f"{cat}/{m}: {v.reason}")
    return out


def markdown(record: RecordFile, results: list[SuiteResult] | None = None) -> str:
    """The run's markdown report; ``results`` (optional) supply the per-slice error
    rows when the record entries do not carry them."""
    rec = record.record
    mcfg = rec.config["metrics"]
    ci = mcfg["ci"]
    git = rec.provenance.git
    slices: dict[str, Any] = {}
    for r in rec.results:
        if r.n_errors or is_llm(rec, r.moderator):
            slices[r.key] = result_error_slices(record.dir, r, results, ci=ci)
    lines = [
        f"# Audit run `{record.run_id}`",
        "",
        f"- status: **{rec.status}**; config `{rec.config_path}` (hash `{rec.config_hash[:12]}`)",
        f"- policy: `{rec.policy.ref}`; git `{(git.commit or '?')[:12]}`"
        f"{' (dirty)' if git.dirty else ''}",
        f"- intervals: {mcfg['ci']:.0%} bootstrap, "
        f"{mcfg['bootstrap']} resamples, seed {mcfg['seed']}",
        "",
    ]
    for s in rec.skipped:
        lines.append(f"> skipped optional suite `{s.suite}`: {s.reason}")
    for r in rec.results:
        suite = rec.suite_entry(r.suite, r.split)
        lines += [
            f"## {r.suite}:{r.split} × {r.moderator}",
            "",
            f"n = {r.n} (errors {r.n_errors}, cached {r.n_cached}); suite digest "
            f"`{(suite.digest if suite else '?')[:16]}`; categories scored: {', '.join(r.categories_scored)}",
            "",
            "| category | n | " + " | ".join(h for _, h in SUMMARY_METRICS) + " |",
            "|---|---:|" + "---|" * len(SUMMARY_METRICS),
        ]
        for cat in ordered_categories(r.metrics):
            per = r.metrics[cat]
            support = per.get("support")
            n = support.value if support is not None else None
            row = [cat, "—" if n is None else str(int(n))]
            row += [fmt_value(per.get(m)) for m, _ in SUMMARY_METRICS]
            lines.append("| " + " | ".join(row) + " |")
        reasons = _reasons(r.metrics)
        if reasons:
            lines += ["", "Undefined metrics:", *[f"- {x}" for x in reasons[:30]]]
        if r.n_errors:
            rows = error_table_rows(slices.get(r.key))
            if rows:
                lines += _error_markdown(rows)
        lines.append("")
    lines += _judge_markdown(record, results, slices)
    return "\n".join(lines) + "\n"


def write_report(record: RecordFile, results: list[SuiteResult] | None = None) -> None:
    (record.dir / "report.md").write_text(markdown(record, results), encoding="utf-8")


def print_summary(console: Console, record: RecordFile) -> None:
    """The terminal summary: one metrics table per result, then judge validation and
    errors by slice where they apply, and one line each for skipped suites and warnings."""
    rec = record.record
    for r in rec.results:
        console.print(_metrics_table(r, rec.config["metrics"]["ci"]))
    ci = rec.config["metrics"]["ci"]
    for r in rec.results:
        llm = is_llm(rec, r.moderator)
        if not (llm or r.n_errors):
            continue
        rows = result_error_slices(record.dir, r, ci=ci)
        if llm:
            _print_judge_validation(console, judge_validation(rec, r, rows))
        if r.n_errors:
            _print_error_slices(console, r, rows)
    if rec.skipped:
        # the reasons were printed when the suites were skipped; one reminder line here
        names = ", ".join(s.suite for s in rec.skipped)
        console.print(f"[yellow]skipped optional suites[/] (no data): {names}")
    if rec.warnings:
        n = sum(w.count for w in rec.warnings)
        kinds = len(rec.warnings)
        console.print(
            f"[yellow]{n} warning{'s' if n != 1 else ''}[/] ({kinds} distinct): "
            f"see {record.path.name} (warnings)"
        )


def _metrics_table(r: ResultEntry, ci: float) -> Table:
    from rich.table import Table

    t = Table(
        title=f"{r.suite}:{r.split} × {r.moderator}  (n={r.n}, errors={r.n_errors}, "
        f"cached={r.n_cached}; {ci:.0%} CI in parentheses)",
        title_justify="left",
        show_lines=False,
        box=None,
        pad_edge=False,
    )
    t.add_column("category", no_wrap=True)
    t.add_column("n", justify="right")
    for _, h in SUMMARY_METRICS:
        t.add_column(h, justify="right", no_wrap=True)
    for cat in ordered_categories(r.metrics):
        per = r.metrics[cat]
        support = per.get("support")
        n = support.value if support is not None else None
        t.add_row(
            cat,
            "—" if n is None or (isinstance(n, float) and math.isnan(n)) else str(int(n)),
            *[fmt_value(per.get(m), ci=m not in ("prevalence",)) for m, _ in SUMMARY_METRICS],
        )
    return t


def _print_judge_validation(console: Console, jv: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(
        title=f"judge validation · {jv['suite']} × {jv['moderator']}",
        title_justify="left",
        box=None,
        pad_edge=False,
    )
    t.add_column("category", no_wrap=True)
    t.add_column("n", justify="right")
    for _, h in JUDGE_METRICS:
        t.add_column(h, justify="right")
    for row in jv["rows"]:
        t.add_row(
            row["category"],
            "—" if row["n"] is None else str(row["n"]),
            *[fmt_defined(row["metrics"][m]) for m, _ in JUDGE_METRICS],
        )
    console.print(t)
    if jv["parse"] is not None:
        top = "; ".join(
            f"{x['slice']}={x['value']} {fmt_value(x['parse_failure_rate'], ci=False)} (n={x['n']})"
            for x in jv["top_slices"]
        )
        console.print(
            f"parse-failure rate {fmt_defined(jv['parse'])}" + (f"; highest: {top}" if top else ""),
            markup=False,
        )


def _print_error_slices(
    console: Console, r: ResultEntry, rows: list[dict[str, Any]] | None
) -> None:
    """One line: the five slices with the highest error rate (ties: the larger slice)."""
    failed = [x for x in rows or () if x["slice"] != "overall" and x["n_errors"]]
    failed.sort(key=lambda x: (-x["n_errors"] / x["n"], -x["n"]))
    worst = error_table_rows(failed[:5])
    if worst:
        console.print(
            f"errors by slice · {r.suite}:{r.split} × {r.moderator}: "
            + "; ".join(
                f"{x['slice']}={x['value']} {x['n_errors']}/{x['n']} ({x['by_type']})"
                for x in worst
            ),
            markup=False,
        )
