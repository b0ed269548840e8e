"""HTML report: structure, redaction, CLI, MLflow logging and headless-Chromium rendering."""

from __future__ import annotations

import json
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audit.report import html as html_report
from audit.report.html import confusion, pr_curve, reliability, write_html_report
from tests.helpers.cli import run_cli
from tests.helpers.suites import base_config, write_config, write_suite

CHROMIUM = Path("/usr/bin/chromium")
SECTIONS = ("metrics", "pr-curves", "reliability", "confusion", "slices", "disagreements")


def _run(tmp_path: Path, *, tracking: bool = False) -> Path:
    """A real two-moderator run of the mini suite; returns the run directory."""
    from audit.engine.pipeline import run_audit

    runs = tmp_path / "runs"
    cfg = base_config(write_suite(tmp_path), runs)
    cfg["moderators"].append({"name": "fake_b", "type": "fake", "params": {"seed": 2}})
    cfg["runner"] = {"error_budget": 0.1, "progress": False}
    if not tracking:
        cfg["tracking"] = {"enabled": False}
    record, _ = run_audit(write_config(tmp_path / "run.yaml", cfg))
    return record.dir


class _Doc(HTMLParser):
    """Collects tags with attributes, and the ids/classes seen inside each result."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.results: list[dict[str, Any]] = []
        self.text: list[str] = []
        self._in_metrics_table = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        classes = a.get("class", "").split()
        if tag == "section" and "result" in classes:
            self.results.append({"attrs": a, "classes": set(), "rows": 0, "svgs": 0})
        elif self.results:
            cur = self.results[-1]
            cur["classes"].update(classes)
            cur["svgs"] += tag == "svg"
            cur["rows"] += tag == "tr" and "cat-row" in classes

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Doc:
    doc = _Doc()
    doc.feed(html)
    return doc


def test_curves_bins_and_confusion() -> None:
    y = np.array([1, 0, 1, 0, 0, 1])
    s = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    rec, prec = pr_curve(y, s)
    assert rec[0] == 0 and rec[-1] == 1 and prec[-1] == pytest.approx(0.5)
    assert prec[1] == 1.0 and rec[1] == pytest.approx(1 / 3)
    bins = reliability(y, s, bins=3)
    assert [b[2] for b in bins] == [2, 2, 2]  # equal mass
    assert bins[0][0] == pytest.approx(0.15) and bins[-1][1] == pytest.approx(0.5)
    p = np.array([1, 1, 0, 0, np.nan, 0])
    assert confusion(y.astype(float), p) == {"TP": 1, "FP": 1, "FN": 2, "TN": 1}
    assert pr_curve(np.zeros(3), np.ones(3))[0].size == 0


def test_report_structure_and_redaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = _run(tmp_path)
    rec = json.loads((run_dir / "record.json").read_text())
    monkeypatch.setattr(html_report, "TOP_K", 10_000)  # every error shown: restricted ones too
    out = write_html_report(run_dir)
    assert out == run_dir / "report.html"
    html = out.read_text(encoding="utf-8")
    doc = _parse(html)
    ids = {a.get("id") for _, a in doc.tags}
    assert {"summary", "results"} <= ids
    metas = [a for t, a in doc.tags if t == "meta" and a.get("http-equiv")]
    assert metas and metas[0]["content"] == html_report.CSP
    # one result section (one metrics table) per suite × moderator, a row per category
    assert len(doc.results) == len(rec["results"]) == 2
    for res, r in zip(doc.results, rec["results"]):
        assert res["attrs"]["data-moderator"] == r["moderator"]
        assert set(SECTIONS) <= res["classes"]
        assert res["rows"] == len(r["metrics"])
        assert res["svgs"] == 2 * len(r["metrics"])  # PR + reliability per category
    text = "".join(doc.text)
    for needle in ("Run summary", rec["suites"]["mini:test"]["digest"], "platform-v1"):
        assert needle in html
    assert rec["moderators"]["fake_a"]["fingerprint_hash"] in text
    # self-contained: no URLs, no src attributes, no scripts, no external stylesheets
    assert not re.search(r"https?://", html)
    assert "src=" not in html and "<script" not in html.lower()
    assert all(t != "link" or a.get("href", "").startswith("data:") for t, a in doc.tags)
    # restricted items: id and hash only; open items show suite text
    assert "RESTRICTED-SECRET" not in html
    assert "caption text" in html
    rows = [a for t, a in doc.tags if t == "tr" and "restricted" in a.get("class", "").split()]
    assert rows, "expected restricted items among the disagreements"
    assert html_report.REDACTED in text
    # no overflow at 1,400 px: every table sits in a horizontal scroll container
    assert html.count("<table") == html.count('<div class="scroll"><table') > 0
    assert re.search(r"\.scroll\{[^}]*overflow-x:auto", html)
    # the heatmap explains its colours and its minimum n
    assert 'class="legend"' in html
    assert f"fewer than {html_report.MIN_SLICE_N} items" in html


def test_nan_metrics_have_reasons(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    rec = json.loads((run_dir / "record.json").read_text())
    rec["results"][0]["metrics"]["hate"]["precision"].update(
        value=None, ci_low=None, ci_high=None, reason="no positive decisions"
    )
    (run_dir / "record.json").write_text(json.dumps(rec))
    html = write_html_report(run_dir / "record.json", tmp_path / "x" / "r.html").read_text()
    assert 'title="hate/precision: no positive decisions"' in html
    assert "<li>hate/precision: no positive decisions</li>" in html


def test_cli_and_mlflow_artifact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = _run(tmp_path, tracking=True)
    rec = json.loads((run_dir / "record.json").read_text())
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    r = run_cli(capsys, "report", run_dir.name, "--open")  # run id under AUDIT_RUNS_DIR
    assert r.code == 0, r.err
    assert f"report: {run_dir / 'report.html'}" in r.out and "no display" in r.err
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=rec["mlflow"]["tracking_uri"])
    arts = {a.path for a in client.list_artifacts(rec["mlflow"]["parent_run_id"])}
    assert "report.html" in arts
    assert run_cli(capsys, "report", str(tmp_path / "nope"), "--no-open").code == 2


def test_unreachable_mlflow_never_fails(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    rec = json.loads((run_dir / "record.json").read_text())
    for uri in (f"sqlite:///{tmp_path / 'missing.db'}", "http://127.0.0.1:9"):
        rec["mlflow"] = {"tracking_uri": uri, "parent_run_id": "0" * 32}
        (run_dir / "record.json").write_text(json.dumps(rec))
        assert write_html_report(run_dir).is_file()
    assert not (tmp_path / "missing.db").exists()


def _chromium(args: list[str], page: Path, profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        page.resolve().as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _page_problems(stderr: str) -> list[str]:
    """Console messages and load errors about the page (not Chromium's own dbus noise)."""
    bad = re.compile(r"CONSOLE|Refused to|Content Security Policy|net::ERR_|Uncaught")
    return [ln for ln in stderr.splitlines() if bad.search(ln)]


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        msg = (
            f"{CHROMIUM} not found: install the Debian package 'chromium' "
            "(apt-get install -y chromium) to run the browser test"
        )
        if os.environ.get("AUDIT_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + " [AUDIT_REQUIRE_BROWSER=1]")
        pytest.skip(msg)
    return CHROMIUM


def test_renders_in_headless_chromium(tmp_path: Path, chromium: Path) -> None:
    page = write_html_report(_run(tmp_path))
    dom = _chromium(["--dump-dom"], page, tmp_path / "profile1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _page_problems(dom.stderr) == []
    for needle in ('id="summary"', 'id="results"', *(f'class="{s}"' for s in SECTIONS)):
        assert needle in dom.stdout
    assert "<svg" in dom.stdout
    shot = tmp_path / "shot.png"
    res = _chromium(
        [f"--screenshot={shot}", "--window-size=1400,2000", "--hide-scrollbars"],
        page,
        tmp_path / "profile2",
    )
    assert res.returncode == 0 and _page_problems(res.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # negative control: a stray request is blocked by the CSP and shows up in the log
    bad = tmp_path / "bad.html"
    bad.write_text(
        page.read_text().replace("</main>", '<img src="https://x.invalid/a.png"></main>')
    )
    res = _chromium(["--dump-dom"], bad, tmp_path / "profile3")
    assert any("x.invalid" in ln for ln in _page_problems(res.stderr))


def _frame(gold: list[int], pred: list[int], slice_vals: list[str], cat: str = "hate") -> Any:
    import pandas as pd

    n = len(gold)
    return pd.DataFrame(
        {
            "id": [f"i{k}" for k in range(n)],
            "content_hash": [f"h{k}" for k in range(n)],
            "restricted": [False] * n,
            "rationale": [f"why {k}" for k in range(n)],
            f"gold.{cat}": gold,
            f"score.{cat}": [0.9 if p else 0.1 for p in pred],
            f"pred.{cat}": pred,
            "slice.lang": slice_vals,
        }
    )


def test_heatmap_masks_small_cells_and_shows_fpr_without_positives() -> None:
    n = html_report.MIN_SLICE_N
    # "neg": n negatives, 2 flagged -> FPR; "mix": positives -> F1; "tiny": below the minimum
    gold = [0] * n + [1, 0] * n + [1] * (n - 1)
    pred = [1, 1] + [0] * (n - 2) + [1, 0] * n + [1] * (n - 1)
    vals = ["neg"] * n + ["mix"] * (2 * n) + ["tiny"] * (n - 1)
    (col,) = html_report.slice_heatmap(_frame(gold, pred, vals), ["hate"])
    cells = {r["value"]: r["cells"][0] for r in col["rows"]}
    assert cells["neg"]["kind"] == "fpr" and cells["neg"]["text"] == f"FPR {2 / n:.2f}"
    assert cells["mix"]["kind"] == "f1" and cells["mix"]["text"] == "1.00"
    assert cells["tiny"]["kind"] == "masked" and cells["tiny"]["style"] == ""
    assert cells["tiny"]["text"] == f"n<{n}" and "below the minimum" in cells["tiny"]["tip"]


def test_overall_only_moderator_gets_its_false_positives_and_negatives() -> None:
    # an LLM judge that scores only `overall`: 2 FP and 1 FN must be listed, with rationales
    df = _frame([0, 0, 1, 1, 0], [1, 1, 0, 1, 0], ["en"] * 5, cat="overall")
    rows = html_report.disagreements(df, ["overall"], frozenset(), {})
    assert sorted(r["kind"] for r in rows) == ["FN", "FP", "FP"]
    assert {r["rationale"] for r in rows} == {"why 0", "why 1", "why 2"}
    # with categories present, overall errors are not listed twice
    both = _frame([0, 1], [1, 0], ["en"] * 2)
    both["gold.overall"], both["score.overall"], both["pred.overall"] = [0, 1], [0.9, 0.1], [1, 0]
    assert {
        r["category"] for r in html_report.disagreements(both, ["hate", "overall"], frozenset(), {})
    } == {"hate"}


def test_redaction_fails_closed_when_the_policy_is_unknown() -> None:
    # the run's policy could not be loaded (restricted_cats None): nobody can tell which
    # categories are restricted, so every listed item keeps only its id and hash
    df = _frame([0, 0, 1, 1, 0], [1, 1, 0, 1, 0], ["en"] * 5)
    texts = {f"i{k}": (f"h{k}", [("text", f"raw {k}")]) for k in range(5)}
    open_rows = html_report.disagreements(df, ["hate"], frozenset(), texts)
    assert {r["restricted"] for r in open_rows} == {False}
    assert any(r["text"] != html_report.REDACTED for r in open_rows)
    closed = html_report.disagreements(df, ["hate"], None, texts)
    assert len(closed) == len(open_rows) == 3
    for r in closed:
        assert r["restricted"] and r["text"] == html_report.REDACTED
        assert r["rationale"] == html_report.REDACTED
