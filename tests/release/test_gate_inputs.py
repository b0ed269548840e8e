"""What the gate is told besides its rules: declared suite diffs (``--declared-diff``)
and agreement records marking unreliable gold (``--agreement``), end to end via the CLI;
``audit compare --declared-diff`` too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from audit.change import diff_suites
from tests.change._util import harassment_rows, write_suite
from tests.helpers.cli import run_cli
from tests.helpers.runs import make_frame, make_run
from tests.labels.synth import write_suite as write_synth

N = 400


def _pair(cats: list[str], drop: int = 0) -> tuple:
    """Baseline (recall 0.9 in every category) and a candidate missing ``drop`` more
    true positives per category."""
    y = np.zeros((N, len(cats)), int)
    y[: N // 2] = 1
    pa = y.astype(bool).copy()
    pa[: N // 20] = False  # recall 0.9
    pb = pa.copy()
    pb[N // 20 : N // 20 + drop] = False
    return make_frame(y, np.where(pa, 0.9, 0.1), cats), make_frame(y, np.where(pb, 0.9, 0.1), cats)


def _rules(tmp: Path, cats: list[str], **extra: object) -> Path:
    rules = {
        "n_boot": 200,
        "rules": [{"metric": "recall", "margin": 0.02, "categories": cats}],
        **extra,
    }
    p = tmp / "rules.yaml"
    p.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return p


def _gate(capsys, cand: Path, base: Path, rules: Path, *extra: str):
    return run_cli(
        capsys,
        "gate",
        "--candidate",
        str(cand),
        "--baseline",
        str(base),
        "--rules",
        str(rules),
        *extra,
    )


# ------------------------------------------------------------------ declared suite diffs
@pytest.fixture
def versions(tmp_path: Path) -> tuple[Path, dict]:
    """A real suite diff (v1 → v2 of the change tests' suite) and runs on both digests.

    The candidate's frame mirrors the diff: one item's text changed, one item's gold
    changed, one item only in the baseline."""
    v1 = write_suite(tmp_path / "v1")
    rows = [dict(r) for r in harassment_rows()]
    rows[9]["caption"] += " (edited)"
    v2 = write_suite(tmp_path / "v2", rows)
    d = diff_suites(str(v1), str(v2)).to_json()
    path = tmp_path / "diff" / "suite_diff.json"
    path.parent.mkdir()
    path.write_text(json.dumps(d), encoding="utf-8")
    fa, fb = _pair(["hate"])
    fb.loc[3, "content_hash"] = "changed"
    fb.loc[5, "gold.hate"] = 1 - fb.loc[5, "gold.hate"]
    fb = fb.drop(index=7).reset_index(drop=True)
    dig = (d["from"]["digest"], d["to"]["digest"])
    base = make_run(tmp_path, "base", {("hx", "m"): fa}, digest=dig[0])
    cand = make_run(tmp_path, "cand", {("hx", "m"): fb}, digest=dig[1])
    return path, {"base": base, "cand": cand, "digests": dig, "tmp": tmp_path}


def test_gate_refuses_an_undeclared_suite_change(capsys, versions) -> None:
    _, v = versions
    r = _gate(capsys, v["cand"], v["base"], _rules(v["tmp"], ["hate"]))
    assert r.code == 3, r.err
    line = r.err.strip()
    assert "\n" not in line and "hx:test" in line
    assert v["digests"][0][:12] in line and v["digests"][1][:12] in line
    assert "audit suite diff" in line and "--declared-diff" in line


def test_gate_compares_a_declared_change_on_the_common_items(capsys, versions) -> None:
    diff, v = versions
    out = v["tmp"] / "verdict.json"
    r = _gate(
        capsys,
        v["cand"],
        v["base"],
        _rules(v["tmp"], ["hate"]),
        "--declared-diff",
        str(diff),
        "--json",
        str(out),
    )
    assert r.code == 0, r.err
    assert f"compared on the {N - 3} items" in r.out
    assert "excluded 1 with changed text, 1 with changed gold, 1 only in baseline" in r.out
    js = json.loads(out.read_text(encoding="utf-8"))
    assert js["verdict"] == "PASS"
    (dd,) = js["declared_diffs"]
    assert (dd["file"], dd["from_digest"], dd["to_digest"]) == (str(diff), *v["digests"])
    assert dd["counts"]["text_changed"] == 1
    assert js["checks"][0]["n"] == N - 3 and "declared suite diff" in js["notes"][0]


def test_gate_rejects_a_diff_of_other_versions(capsys, versions) -> None:
    diff, v = versions
    d = json.loads(diff.read_text(encoding="utf-8"))
    d["from"], d["to"] = d["to"], d["from"]  # the reverse change
    rev = v["tmp"] / "reverse.json"
    rev.write_text(json.dumps(d), encoding="utf-8")
    r = _gate(capsys, v["cand"], v["base"], _rules(v["tmp"], ["hate"]), "--declared-diff", str(rev))
    assert r.code == 2, r.err
    assert str(rev) in r.err and "from.digest / to.digest" in r.err
    assert v["digests"][0][:12] in r.err and v["digests"][1][:12] in r.err
    # the same through the rules file
    rules = _rules(v["tmp"], ["hate"], suite_diffs=[str(rev)])
    assert _gate(capsys, v["cand"], v["base"], rules).code == 2


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("{not json", "json"),
        ('{"kind": "audit.policy_diff", "from": {}, "to": {}}', "kind"),
        ('{"kind": "audit.suite_diff", "from": {"name": "hx"}, "to": {"digest": "x"}}', "from"),
    ],
)
def test_gate_and_compare_reject_a_corrupt_diff(capsys, versions, text, field) -> None:
    _, v = versions
    bad = v["tmp"] / "bad.json"
    bad.write_text(text, encoding="utf-8")
    r = _gate(capsys, v["cand"], v["base"], _rules(v["tmp"], ["hate"]), "--declared-diff", str(bad))
    assert r.code == 2 and str(bad) in r.err and field in r.err.lower(), r.err
    r = run_cli(
        capsys,
        "compare",
        str(v["base"]),
        str(v["cand"]),
        "--declared-diff",
        str(bad),
        "--no-mlflow",
    )
    assert r.code == 2 and str(bad) in r.err, r.err


def test_compare_needs_the_declared_diff(capsys, versions) -> None:
    diff, v = versions
    a, b = str(v["base"]), str(v["cand"])
    r = run_cli(capsys, "compare", a, b, "--no-mlflow", "--n-boot", "50")
    assert r.code == 2
    assert "hx:test" in r.err and v["digests"][0][:12] in r.err and "--declared-diff" in r.err
    out = v["tmp"] / "cmp.json"
    r = run_cli(
        capsys,
        "compare",
        a,
        b,
        "--declared-diff",
        str(diff),
        "--no-mlflow",
        "--n-boot",
        "50",
        "--json",
        str(out),
    )
    assert r.code == 0, r.err
    assert "declared suite diff" in r.out and f"compared on the {N - 3} items" in r.out
    (s,) = json.loads(out.read_text(encoding="utf-8"))["suites"]
    assert (s["n"], s["n_hash_mismatch"], s["n_gold_changed"], s["n_only_a"]) == (N - 3, 1, 1, 1)
    assert s["declared_diff"]["to_digest"] == v["digests"][1]
    # A and B swapped: the diff describes B → A, not A → B
    r = run_cli(capsys, "compare", b, a, "--declared-diff", str(diff), "--no-mlflow")
    assert r.code == 2 and "from.digest / to.digest" in r.err


# ------------------------------------------------------------------ unreliable gold
CATS = ["harassment", "minor_sexual"]


@pytest.fixture
def agreement(capsys, tmp_path: Path) -> tuple[Path, dict]:
    """``audit agreement`` on the synthetic 4-annotator suite at threshold 0.9: the
    noisy harassment labels are unreliable, the unanimous minor_sexual ones are not."""
    card = write_synth(tmp_path)
    path = tmp_path / "agreement.json"
    r = run_cli(
        capsys,
        "agreement",
        str(card),
        "--threshold",
        "0.9",
        "--bootstrap",
        "20",
        "--out",
        str(path),
    )
    assert r.code == 0, r.err
    rec = json.loads(path.read_text(encoding="utf-8"))
    assert rec["unreliable_gold"] == ["harassment"]
    return path, rec


def _runs(tmp: Path, digest: str) -> tuple[Path, Path]:
    fa, fb = _pair(CATS, drop=60)  # recall 0.9 → 0.6 in both categories: a clear regression
    return (
        make_run(tmp, "base", {("synth", "m"): fa}, digest=digest),
        make_run(tmp, "cand", {("synth", "m"): fb}, digest=digest),
    )


def test_unreliable_gold_downgrades_a_blocking_failure_to_warn(
    capsys, tmp_path: Path, agreement
) -> None:
    path, rec = agreement
    base, cand = _runs(tmp_path, rec["suite"]["digest"])
    out = tmp_path / "verdict.json"
    rules = _rules(tmp_path, ["harassment"])
    assert _gate(capsys, cand, base, rules).code == 1  # without the record: FAIL
    r = _gate(capsys, cand, base, rules, "--agreement", str(path), "--json", str(out))
    assert r.code == 0, r.out + r.err
    js = json.loads(out.read_text(encoding="utf-8"))
    (c,) = js["checks"]
    assert (c["category"], c["status"], c["severity"]) == ("harassment", "fail", "warn")
    alpha = rec["categories"]["harassment"]["stats"]["krippendorff_alpha_nominal"]["value"]
    assert f"unreliable gold for harassment (Krippendorff α = {alpha:.3f} < 0.9" in c["detail"]
    assert js["unreliable_gold"][0]["unreliable_gold"] == {"harassment": alpha}
    assert "1 blocking check(s) downgraded to warn" in js["notes"][0]
    # the same record named in the rules file
    rules2 = _rules(tmp_path, ["harassment"], gold_agreement=[str(path)])
    assert _gate(capsys, cand, base, rules2).code == 0


def test_reliable_gold_still_fails(capsys, tmp_path: Path, agreement) -> None:
    path, rec = agreement
    base, cand = _runs(tmp_path, rec["suite"]["digest"])
    out = tmp_path / "verdict.json"
    r = _gate(
        capsys,
        cand,
        base,
        _rules(tmp_path, CATS),
        "--agreement",
        str(path),
        "--json",
        str(out),
    )
    assert r.code == 1, r.out + r.err
    sev = {
        c["category"]: (c["status"], c["severity"]) for c in json.loads(out.read_text())["checks"]
    }
    assert sev == {"harassment": ("fail", "warn"), "minor_sexual": ("fail", "block")}


def test_agreement_of_another_suite_version_is_rejected(capsys, tmp_path: Path, agreement) -> None:
    path, _ = agreement
    base, cand = _runs(tmp_path, "another-digest")
    r = _gate(capsys, cand, base, _rules(tmp_path, ["harassment"]), "--agreement", str(path))
    assert r.code == 2
    assert str(path) in r.err and "suite.digest" in r.err and "another-dige" in r.err


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: "{" + json.dumps(d)[:40], "json"),
        (lambda d: json.dumps({**d, "kind": "suite_diff"}), "kind"),
        (lambda d: json.dumps({**d, "unreliable_gold": []}), "unreliable_gold"),
        (lambda d: json.dumps({**d, "suite": {"name": "synth"}}), "suite.split"),
        (
            lambda d: json.dumps({**d, "settings": {**d["settings"], "threshold": 0.1}}),
            "categories.harassment.unreliable_gold",
        ),
    ],
)
def test_corrupt_agreement_record_is_rejected(
    capsys, tmp_path: Path, agreement, edit, field
) -> None:
    _, rec = agreement
    bad = tmp_path / "bad_agreement.json"
    bad.write_text(edit(rec), encoding="utf-8")
    base, cand = _runs(tmp_path, rec["suite"]["digest"])
    r = _gate(capsys, cand, base, _rules(tmp_path, ["harassment"]), "--agreement", str(bad))
    assert r.code == 2 and str(bad) in r.err and field in r.err.lower(), r.err
    assert "\n" not in r.err.strip()


def test_api_gate_verdict_carries_the_downgrade_note(capsys, tmp_path: Path, agreement) -> None:
    """``audit.gate`` (the notebook path) returns the same downgrade as the CLI, with
    the note in the typed verdict, not only in the JSON the CLI writes."""
    import audit

    path, rec = agreement
    base, cand = _runs(tmp_path, rec["suite"]["digest"])
    v = audit.gate(cand, base, _rules(tmp_path, ["harassment"], gold_agreement=[str(path)]))
    assert v.exit_code == 0 and v.word == "PASS"
    (c,) = v.checks
    assert (c.status, c.severity) == ("fail", "warn")
    assert len(v.notes) == 1 and "downgraded to warn" in v.notes[0]
    plain = audit.gate(cand, base, _rules(tmp_path, ["harassment"]))
    assert plain.exit_code == 1 and plain.notes == ()
