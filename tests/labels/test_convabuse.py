"""ConvAbuse (../shared/data/convabuse): both card forms load the documented counts, and
the agreement record equals independent computations on the same matrix to 1e-9."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from tests.conftest import REPO, require_shared
from tests.helpers.cli import run_cli

LONG = str(REPO / "suites" / "convabuse" / "suite.yaml")
WIDE = str(REPO / "suites" / "convabuse" / "wide.yaml")


@pytest.fixture(scope="module")
def suites() -> dict[str, Any]:
    import os

    from audit.policy import load_policy
    from audit.suites import load_suite

    root = require_shared("convabuse").parent
    old = os.environ.get("AUDIT_DATA_ROOT")
    os.environ["AUDIT_DATA_ROOT"] = str(root)
    try:
        p = load_policy("platform-v1")
        return {"long": load_suite(LONG, p), "wide": load_suite(WIDE, p), "policy": p}
    finally:
        if old is None:
            os.environ.pop("AUDIT_DATA_ROOT", None)
        else:
            os.environ["AUDIT_DATA_ROOT"] = old


@pytest.mark.parametrize("form", ["long", "wide"])
def test_counts_match_source_md(suites: dict[str, Any], form: str) -> None:
    s = suites[form]
    ann = s.annotations
    assert len(s) == 4185 and ann.stats["judgements"] == 12411
    k = suites["policy"].category_ids.index("harassment")
    assert Counter(s.labels[:, k].tolist()) == {0: 3468, 1: 578, -1: 139}
    raters = Counter((ann.labels[:, :, k] != -1).sum(axis=1).tolist())
    assert raters == {2: 1094, 3: 2445, 4: 377, 5: 235, 6: 33, 7: 1}
    sev = ann.scales["severity"]
    assert Counter(sev[~np.isnan(sev)].tolist()) == {1: 9797, 0: 651, -1: 788, -2: 899, -3: 276}
    if form == "long":
        assert ann.stats["repeats_dropped"] == 357


def test_long_and_wide_have_the_same_judgements(suites: dict[str, Any]) -> None:
    # the item keys differ (see wide.yaml), so compare the multiset of per-item
    # (text, per-annotator severity) signatures
    def sig(s: Any) -> Counter[tuple[Any, ...]]:
        sev = s.annotations.scales["severity"]
        return Counter(
            (u, *("-" if np.isnan(v) else v for v in row))
            for u, row in zip(s.dataset["prompt"], sev)
        )

    a, b = sig(suites["long"]), sig(suites["wide"])
    differ = sum((a - b).values())
    # the files group a handful of repeated turns ("yes", "y") differently (the wide
    # files split some conversations the long file merges); everything else matches
    assert differ <= 10, differ


def test_agreement_equals_independent_computations(suites: dict[str, Any]) -> None:
    from audit.labels import suite_agreement

    s = suites["long"]
    rec = suite_agreement(s, n_boot=50, seed=1)
    for cat in ("harassment", "hate"):
        r = s.annotations.category(cat)
        st = rec["categories"][cat]["stats"]
        ref = krippendorff.alpha(reliability_data=r.T, level_of_measurement="nominal")
        assert abs(st["krippendorff_alpha_nominal"]["value"] - ref) < 1e-9
        m = (~np.isnan(r)).sum(axis=1)
        sub = r[m == 3]
        table = np.stack([(sub == 0).sum(axis=1), (sub == 1).sum(axis=1)], axis=1)
        assert abs(st["fleiss_kappa"]["value"] - sm_fleiss(table, method="fleiss")) < 1e-9
        names = list(s.annotations.annotators)
        for pair in rec["categories"][cat]["cohen_kappa_pairs"]:
            i, j = names.index(pair["a"]), names.index(pair["b"])
            both = ~np.isnan(r[:, i]) & ~np.isnan(r[:, j])
            if pair["value"] is None:
                assert len(set(r[both, i]) | set(r[both, j])) == 1
                continue
            assert abs(pair["value"] - cohen_kappa_score(r[both, i], r[both, j])) < 1e-9
    sev = s.annotations.scales["severity"]
    got = rec["scales"]["severity"]["stats"]["krippendorff_alpha_ordinal"]["value"]
    ref = krippendorff.alpha(reliability_data=sev.T, level_of_measurement="ordinal")
    assert abs(got - ref) < 1e-9
    # SOURCE.md's own figures
    h = rec["categories"]["harassment"]["stats"]
    assert round(h["krippendorff_alpha_nominal"]["value"], 3) == 0.652
    assert round(got, 3) == 0.660
    assert rec["unreliable_gold"] == ["harassment", "hate"]


def test_agreement_cli_writes_record(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    require_shared("convabuse")
    out = tmp_path / "agr.json"
    res = run_cli(capsys, "agreement", LONG, "--bootstrap", "30", "--out", str(out))
    assert res.code == 0, res.err
    assert "Krippendorff α nominal" in res.out and "unreliable gold" in res.out
    rec = json.loads(out.read_text())
    assert rec["kind"] == "agreement" and rec["settings"]["threshold"] == 0.667
    assert rec["categories"]["harassment"]["unreliable_gold"] is True


@pytest.mark.slow
def test_suspects_and_round_trip_on_convabuse(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit.engine.pipeline import run_audit
    from tests.helpers.suites import base_config, write_config

    root = require_shared("convabuse").parent
    monkeypatch.setenv("AUDIT_DATA_ROOT", str(root))
    cfg = base_config(Path(LONG), tmp_path / "runs", name="ca-run")
    cfg["suites"] = [{"name": LONG, "limit": 300}]
    cfg["tracking"] = {"enabled": False}
    record, _ = run_audit(write_config(tmp_path / "run.yaml", cfg), mlflow=False)
    sus = tmp_path / "sus"
    res = run_cli(capsys, "suspects", str(record.dir), "--out", str(sus))
    assert res.code == 0, res.err
    rows = [json.loads(x) for x in (sus / "suspects.jsonl").read_text().splitlines()]
    har = [r for r in rows if r["category"] == "harassment" and not r["restricted"]]
    assert har and all(r["crowdlab_quality"] is not None for r in har)
    assert all(r["n_annotations"] >= 2 for r in har)
    exp = tmp_path / "exp"
    res = run_cli(
        capsys,
        "adjudicate",
        "export",
        LONG,
        "--queue",
        str(sus / "suspects.jsonl"),
        "--run",
        str(record.dir),
        "--out",
        str(exp),
    )
    assert res.code == 0, res.err
    tasks = json.loads((exp / "tasks.json").read_text())
    assert len(tasks) == len({r["item_id"] for r in rows})
    iid = tasks[0]["data"]["item_id"]
    ans = tmp_path / "answers.csv"
    ans.write_text(
        f"item_id,category,label\n{iid},harassment,unsure\n{iid},hate,does_not_violate\n"
    )
    out = tmp_path / "new" / "convabuse_adj"
    res = run_cli(capsys, "adjudicate", "import", LONG, str(ans), "--out", str(out))
    assert res.code == 0, res.err
    from audit.policy import load_policy
    from audit.suites import load_suite

    new = load_suite(str(out / "suite.yaml"), load_policy("platform-v1"))
    assert len(new) == 4185
    k = new.categories.index("harassment")
    assert new.labels[new.dataset["id"].index(iid), k] == -1


def test_export_majority_ties(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    suites: dict[str, Any],
) -> None:
    monkeypatch.setenv("AUDIT_DATA_ROOT", str(require_shared("convabuse").parent))
    out = tmp_path / "ties"
    res = run_cli(capsys, "adjudicate", "export", LONG, "--unknown-gold", "--out", str(out))
    assert res.code == 0, res.err
    s = suites["long"]
    ks = [s.categories.index(c) for c in ("harassment", "hate")]
    want = {iid for iid, lab in zip(s.dataset["id"], s.labels) if (lab[ks] == -1).any()}
    tasks = json.loads((out / "tasks.json").read_text())
    assert {t["data"]["item_id"] for t in tasks} == want and len(want) == 152
