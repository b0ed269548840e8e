"""Suite version diffs and declared digest changes in the gate."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from audit.change import declared_digest_pairs, diff_suites, load_declared_diff
from audit.errors import ConfigError, GateError, GateRefusedError
from audit.release.compare import compare_sides, load_side
from audit.release.gate import GateRules, Rule, run_gate
from tests.change._util import harassment_rows, write_suite
from tests.helpers.cli import run_cli
from tests.helpers.runs import make_frame, make_run


def _v2_rows() -> list[dict]:
    rows = [dict(r) for r in harassment_rows() if r["id"] != "r12"]  # removed
    for r in rows:
        if r["id"] == "r08":
            r["labels"] = []  # spam tightened: one engagement-bait post is not spam
        if r["id"] == "r10":
            r["caption"] = "a history of slurs, explained in order to condemn them"  # text edit
    rows.append(
        {
            "id": "r13",
            "caption": "new hard negative: a gym selfie",
            "labels": [],
            "surface": "photo",
        }
    )
    return rows


def test_diff_counts_rows_and_labels(tmp_path: Path) -> None:
    a = write_suite(tmp_path / "a")
    b = write_suite(tmp_path / "b", _v2_rows(), version="1.1")
    d = diff_suites(str(a), str(b))
    assert d.counts == {
        "from": 12,
        "to": 12,
        "added": 1,
        "removed": 1,
        "text_changed": 1,
        "labels_changed": 1,
        "unchanged": 9,
    }
    assert d.label_changes == {
        "spam": {"neg→pos": 0, "pos→neg": 1, "unknown→known": 0, "known→unknown": 0}
    }
    kinds = {(r["change"], r.get("id_from") or r.get("id_to")) for r in d.rows}
    assert {
        ("added", "r13"),
        ("removed", "r12"),
        ("text_changed", "r10"),
        ("label_changed", "r08"),
    } <= kinds
    rows = list(csv.DictReader(io.StringIO(d.csv())))
    assert len(rows) == len(d.rows) and rows[0].keys() >= {"change", "id_from", "content_hash_to"}
    js = d.to_json()
    assert js["from"]["digest"] != js["to"]["digest"] and js["kind"] == "audit.suite_diff"


def test_same_suite_has_an_empty_diff(tmp_path: Path) -> None:
    a = write_suite(tmp_path / "a")
    d = diff_suites(str(a), str(a))
    assert d.counts["unchanged"] == 12 and d.rows == []


def test_pairing_by_content_hash_when_ids_change(tmp_path: Path) -> None:
    a = write_suite(tmp_path / "a")
    rows = [dict(r, id="new-" + r["id"]) for r in harassment_rows()]
    b = write_suite(tmp_path / "b", rows)
    d = diff_suites(str(a), str(b), key="hash")
    assert d.counts["unchanged"] == 12 and d.counts["added"] == d.counts["removed"] == 0


def test_suite_at_a_git_revision(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    card = write_suite(repo / "suites")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    write_suite(repo / "suites", _v2_rows())
    out = tmp_path / "out"
    r = run_cli(capsys, "suite", "diff", f"{card}@HEAD", str(card), "--out", str(out))
    assert r.code == 0, r.err
    js = json.loads((out / "suite_diff.json").read_text(encoding="utf-8"))
    assert js["counts"]["added"] == 1 and js["counts"]["removed"] == 1
    assert (out / "suite_diff.csv").read_text(encoding="utf-8").startswith("change,")


def _declare(path: Path, frm: str, to: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "kind": "audit.suite_diff",
                "from": {"name": "s", "digest": frm},
                "to": {"name": "s", "digest": to},
            }
        )
    )
    return path


def test_gate_accepts_only_a_declared_digest_change(tmp_path: Path) -> None:
    y = np.array([[1], [0], [1], [0]] * 10)
    f = make_frame(y, np.where(y == 1, 0.9, 0.1), ["hate"])
    a = load_side(make_run(tmp_path, "base", {("s", "m"): f}, digest="d1"))
    b = load_side(make_run(tmp_path, "cand", {("s", "m"): f}, digest="d2"))
    rules = {"rules": [Rule(metric="recall", margin=0.05)], "n_boot": 50}
    with pytest.raises(GateRefusedError, match="suite s:test was scored on two versions"):
        run_gate(GateRules(**rules), b, a)
    decl = _declare(tmp_path / "suite_diff.json", "d1", "d2")
    ok = run_gate(GateRules(**rules, suite_diffs=[str(decl)]), b, a)
    assert ok and all(c.status == "pass" for c in ok)
    # a diff declared for other digests is an error, never silently ignored
    other = _declare(tmp_path / "other.json", "d1", "d9")
    with pytest.raises(ConfigError, match="does not describe the runs' versions of s:test"):
        run_gate(GateRules(**rules, suite_diffs=[str(other)]), b, a)
    # compare_sides refuses the pair unless the change is declared
    with pytest.raises(GateError, match="scored on two versions"):
        compare_sides(a, b, n_boot=20)
    (e,) = compare_sides(a, b, n_boot=20, declared_diffs=[load_declared_diff(decl)])
    assert e["declared_diff"]["file"] == str(decl) and e["n"] == 40
    assert declared_digest_pairs([str(decl)]) == {("s", "d1", "d2")}
