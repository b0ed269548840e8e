"""Judge-validation section (LLM-kind moderators only) and per-slice error tables in the
markdown, terminal and HTML reports."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from audit.engine.record import RecordFile
from audit.records import ErrorSlice, MetricValue
from audit.report.html import render_html
from audit.report.markdown import fmt_defined, fmt_value, markdown, print_summary, top_parse_slices
from tests.helpers.suites import base_config, write_config, write_suite

Z95 = 1.959963984540054
#: mini suite: language "es" for i % 3 == 0 (14 items), else "en" (26 items)
FAIL = {
    "m000": "parse: no verdict",
    "m003": "parse: no verdict",
    "m006": "parse: trailing prose",
    "m009": "parse: no verdict",
    "m001": "connection reset",
}


def _wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    den = 1 + Z95**2 / n
    c = (p + Z95**2 / (2 * n)) / den
    h = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / den
    return max(0.0, c - h), min(1.0, c + h)


def _run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, llm: bool, fail: dict[str, str]
) -> tuple[RecordFile, list[Any]]:
    """A real run of the mini suite with the fake moderator; ``llm`` makes it report
    ``kind="llm"`` and turns ``parse:`` failures into ``error_type="parse_failure"``."""
    from audit.engine.pipeline import run_audit
    from audit.moderators.fake import FakeModerator
    from audit.schema import ModeratorOutput

    if llm:
        orig = FakeModerator.predict

        def predict(self: FakeModerator, items: Any) -> list[ModeratorOutput]:
            return [
                ModeratorOutput(error=o.error, error_type="parse_failure")
                if o.error and o.error.startswith("parse:")
                else o
                for o in orig(self, items)
            ]

        monkeypatch.setattr(FakeModerator, "predict", predict)
        monkeypatch.setattr(FakeModerator, "kind", "llm")
    runs = tmp_path / "runs"
    cfg = base_config(write_suite(tmp_path), runs)
    cfg["moderators"][0]["params"]["fail"] = fail
    cfg["runner"] = {"error_budget": 0.5, "progress": False}
    cfg["tracking"] = {"enabled": False}
    return run_audit(write_config(tmp_path / "run.yaml", cfg))


def _judge_part(md: str) -> str:
    return md[md.index("## Judge validation") :]


def test_llm_judge_section_in_markdown_terminal_and_html(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, results = _run(tmp_path, monkeypatch, llm=True, fail=FAIL)
    assert record.record.moderators["fake_a"].kind == "llm"
    (res,) = results
    r = record.record.results[0]
    md = (record.dir / "report.md").read_text(encoding="utf-8")
    assert "## Judge validation" in md and "### mini:test × fake_a" in md
    part = _judge_part(md)
    # every category row: n, kappa, specific agreements and ECE with their intervals
    for cat in ("overall", "hate", "harassment", "minor_sexual"):
        per = r.metrics[cat]
        for m in ("cohen_kappa", "positive_agreement", "negative_agreement", "ece"):
            assert per[m].ci_low is not None, (cat, m)
        row = next(ln for ln in part.splitlines() if ln.startswith(f"| {cat} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == str(int(per["support"].estimate))
        assert cells[2:] == [
            fmt_value(per[m])
            for m in ("cohen_kappa", "positive_agreement", "negative_agreement", "ece")
        ]
    # parse failures: 4 of 40 overall (Wilson interval), all on es (4 of 14)
    lo, hi = _wilson(4, 40)
    assert f"parse-failure rate: 0.100 ({lo:.3f}–{hi:.3f}) (4 of 40 items)" in part
    lo, hi = _wilson(4, 14)
    assert f"language=es: {4 / 14:.3f} ({lo:.3f}–{hi:.3f}) (4 of n=14)" in part
    assert "language=en" not in part  # no parse failure there: not listed
    # the per-slice error table: both types, counted per language
    assert "Errors by slice" in md
    assert re.search(r"\| overall \| all \| 40 \| 5 \| .*parse_failure 4, scripted 1 \|", md)
    assert re.search(r"\| language \| en \| 26 \| 1 \| .*\| scripted 1 \|", md)
    # the field the pipeline filled agrees with what the report shows
    es = next(x for x in res.error_slices if x["value"] == "es")
    assert es["n_parse_failures"] == 4 and es["parse_failure_rate"]["value"] == pytest.approx(
        4 / 14
    )

    # terminal summary
    from rich.console import Console

    buf = io.StringIO()
    print_summary(Console(file=buf, width=300, color_system=None), record)
    term = buf.getvalue()
    assert "judge validation · mini:test × fake_a" in term
    assert "parse-failure rate 0.100" in term and "language=es" in term
    assert "errors by slice" in term

    # HTML
    html = render_html(record)
    assert 'id="judge-validation"' in html and 'href="#judge-validation"' in html
    sec = html[html.index('id="judge-validation"') : html.index('<section id="results"')]
    assert sec.count('class="judge-row"') == len(r.metrics)
    kappa = fmt_value(r.metrics["hate"]["cohen_kappa"])
    assert kappa in sec
    assert fmt_value(r.metrics["overall"]["negative_agreement"]) in sec
    lo, hi = _wilson(4, 40)
    assert f"0.100 ({lo:.3f}–{hi:.3f})" in sec and "(4 of 40 items)" in sec
    assert re.search(r"<td>language</td><td>es</td><td class=\"num\">14</td>", sec)
    assert 'class="error-table"' in html and "parse_failure 4, scripted 1" in html


def test_undefined_values_read_na_with_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, _ = _run(tmp_path, monkeypatch, llm=True, fail={})
    # a category where agreement is undefined: never shown as 0
    entry = record.record.results[0]
    reason = "no gold positives among 4 scored items"
    undefined = MetricValue(value=None, n=4, reason=reason, method="row-bootstrap")
    per = {**entry.metrics["minor_sexual"], "positive_agreement": undefined}
    entry = entry.model_copy(update={"metrics": {**entry.metrics, "minor_sexual": per}})
    record.record = record.record.model_copy(update={"results": (entry,)})
    part = _judge_part(markdown(record))
    row = next(ln for ln in part.splitlines() if ln.startswith("| minor_sexual |"))
    assert f"n/a ({reason})" in row
    assert "parse-failure rate: 0.000" in part and "no parse failures in any slice" in part
    assert "Errors by slice" not in markdown(record)  # no errors: no error table
    html = render_html(record)
    assert f'<td class="nan">n/a ({reason})</td>' in html
    assert "No parse failures in any slice." in html
    assert 'class="error-table"' not in html
    # rows stored on the record entry (as the pipeline may log them) win
    rows = tuple(ErrorSlice.model_validate(x) for x in _stored_rows())
    entry = entry.model_copy(update={"error_slices": rows})
    record.record = record.record.model_copy(update={"results": (entry,)})
    part = _judge_part(markdown(record))
    assert "parse-failure rate: 0.300 (0.100–0.600) (3 of 40 items)" in part
    assert "surface=b: 0.500 (0.000–1.000) (2 of n=4)" in part


def test_absent_without_llm_moderator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record, _ = _run(tmp_path, monkeypatch, llm=False, fail={"m001": "boom", "m002": "boom"})
    assert record.record.moderators["fake_a"].kind != "llm"
    md = (record.dir / "report.md").read_text(encoding="utf-8")
    assert "Judge validation" not in md
    # ... but the per-slice error table is there for a moderator with errors
    assert "Errors by slice" in md
    assert re.search(r"\| language \| en \| 26 \| 2 \| .*\| scripted 2 \|", md)
    html = render_html(record)
    assert "judge-validation" not in html and "Judge validation" not in html
    assert 'class="error-table"' in html


def _stored_rows() -> list[dict[str, Any]]:
    return [
        {
            "slice": "overall",
            "value": "all",
            "n": 10,
            "n_errors": 3,
            "n_parse_failures": 3,
            "errors_by_type": {"parse_failure": 3},
            "error_rate": {"value": 0.3, "ci_low": 0.1, "ci_high": 0.6, "n": 10},
            "parse_failure_rate": {"value": 0.3, "ci_low": 0.1, "ci_high": 0.6, "n": 10},
        },
        *[
            {
                "slice": "surface",
                "value": v,
                "n": n,
                "n_errors": k,
                "n_parse_failures": k,
                "errors_by_type": {"parse_failure": k} if k else {},
                "error_rate": {"value": k / n, "ci_low": 0.0, "ci_high": 1.0, "n": n},
                "parse_failure_rate": {"value": k / n, "ci_low": 0.0, "ci_high": 1.0, "n": n},
            }
            for v, n, k in [("a", 2, 1), ("b", 4, 2), ("c", 1, 0), ("d", 3, 0)]
        ],
    ]


def test_top_slices_and_formatting() -> None:
    rows = _stored_rows()
    json.dumps(rows)
    top = top_parse_slices(rows)
    assert [x["value"] for x in top] == ["b", "a"]  # equal rates: more items first
    assert len(top_parse_slices(rows, k=1)) == 1
    assert fmt_defined(None) == "—" and fmt_defined({"value": None, "reason": "r"}) == "n/a (r)"
    assert fmt_defined({"value": None, "reason": None}) == "NaN"
