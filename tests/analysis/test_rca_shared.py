"""RCA, thresholds and disagreements on real runs of the shared HateCheck / XSTest sets.

One run (profanity baseline + fake moderator on both suites) is built with the real
pipeline per module and reused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_shared
from tests.helpers.cli import run_cli
from tests.helpers.suites import write_config


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory):
    require_shared("hatecheck")
    require_shared("xstest")
    from audit.engine.pipeline import run_audit

    tmp = tmp_path_factory.mktemp("shared_run")
    cfg = {
        "name": "rca",
        "policy": "platform-v1",
        "suites": [{"name": "hatecheck"}, {"name": "xstest"}],
        "moderators": [
            {"name": "profanity", "type": "profanity_baseline"},
            {"name": "fake_a", "type": "fake", "params": {"seed": 1}},
        ],
        "metrics": {"bootstrap": 50},
        "runner": {"progress": False},
        "tracking": {"enabled": False},
        "output_dir": str(tmp / "runs"),
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(tmp / "hf_home"))
        mp.setenv("HF_DATASETS_CACHE", str(tmp / "hf_datasets"))
        record, _ = run_audit(write_config(tmp / "run.yaml", cfg), mlflow=False)
    assert record.record.status == "finished"
    return record


def _table(record, suite: str, moderator: str = "profanity"):
    from audit.analysis.slices import rca

    (res,) = rca(record, suite=suite, moderator=moderator, n_boot=50)
    return res["table"]


def test_hatecheck_per_functionality(shared_run) -> None:
    t = _table(shared_run, "hatecheck")
    f = t[(t["category"] == "hate") & (t["slice"] == "functionality")]
    assert len(f) == 29 and f["value"].is_unique
    assert f["n"].sum() == 3728
    assert f["error_contribution"].sum() == pytest.approx(1.0)
    # ranked by error contribution
    assert f["error_contribution"].is_monotonic_decreasing
    # all-hateful functionalities: recall with a Wilson interval, FPR NaN with a reason
    hateful = f[f["n_pos"] == f["n"]]
    assert len(hateful) > 10
    assert (
        (hateful["recall_lo"] <= hateful["recall"]) & (hateful["recall"] <= hateful["recall_hi"])
    ).all()
    assert hateful["fpr"].isna().all() and hateful["reason"].str.contains("no gold negatives").all()
    # non-hateful functionalities: FPR defined, recall NaN with a reason
    safe = f[f["n_pos"] == 0]
    assert len(safe) > 3 and safe["fpr"].notna().all()
    assert safe["reason"].str.contains("recall: no gold positives").all()
    # a lexical model is significantly worse than overall on some functionality
    assert (f["q_value"] < 0.05).any()
    assert (t["q_value"].dropna() >= t["p_value"].dropna()).all()


def test_xstest_separates_safe_lookalikes_from_unsafe(shared_run) -> None:
    t = _table(shared_run, "xstest")
    ty = t[(t["category"] == "overall") & (t["slice"] == "type")]
    assert len(ty) == 18 and ty["n"].sum() == 450
    unsafe = ty[ty["value"].str.startswith("contrast_")]
    safe = ty[~ty["value"].str.startswith("contrast_")]
    assert unsafe["n"].sum() == 200 and (unsafe["n_pos"] == unsafe["n"]).all()
    assert (safe["n_pos"] == 0).all() and safe["fpr"].notna().all() and safe["recall"].isna().all()
    assert unsafe["recall"].notna().all() and unsafe["fpr"].isna().all()
    # the profanity baseline misses the unsafe prompts: they carry most of its errors
    assert unsafe["error_contribution"].sum() > 0.5
    assert (unsafe["q_value"] < 0.05).sum() >= 5


def test_cli_rca_thresholds_disagreements(shared_run, tmp_path: Path, capsys) -> None:
    run = str(shared_run.dir)
    r = run_cli(capsys, "rca", run, "--suite", "hatecheck", "--json", str(tmp_path / "r.json"),
                "--bootstrap", "20")  # fmt: skip
    assert r.code == 0, r.err
    assert "functionality" in r.out or "target" in r.out
    payload = json.loads((tmp_path / "r.json").read_text())
    assert payload["run_id"] == shared_run.run_id and len(payload["results"]) == 2
    row = payload["results"][0]["rows"][0]
    assert {"slice", "value", "n", "precision_lo", "q_value", "error_contribution"} <= set(row)

    out = tmp_path / "th.yaml"
    r = run_cli(capsys, "thresholds", run, "--suite", "hatecheck", "--moderator", "profanity",
                "--target-precision", "0.3", "--prevalence", "hate=0.002", "--out", str(out))  # fmt: skip
    assert r.code == 0, r.err
    assert "another split" in r.err and "0.002" in r.out
    text = out.read_text()
    assert shared_run.run_id in text and "hatecheck:test" in text and "target precision 0.3" in text
    # the two top-scored HateCheck items are non-hateful profanity: the scan stops at once
    th = yaml.safe_load(text)["thresholds"]
    assert th == {"default": 0.5} and "# hate: none qualifies" in text

    r = run_cli(capsys, "thresholds", run, "--suite", "hatecheck")
    assert r.code == 2 and "one suite × moderator" in r.err
    r = run_cli(capsys, "thresholds", run, "--prevalence", "hate=2")
    assert r.code == 2

    r = run_cli(capsys, "disagreements", run, "--suite", "hatecheck", "--export-dir",
                str(tmp_path / "exp"))  # fmt: skip
    assert r.code == 0, r.err
    tasks = [
        json.loads(x) for x in (tmp_path / "exp" / "review_queue.jsonl").read_text().splitlines()
    ]
    assert tasks and all({"id", "data"} == set(t) for t in tasks)
    open_ = [t for t in tasks if not t["data"]["restricted"]]
    assert open_ and all(t["data"]["text"] for t in open_)
    assert all(not math.isnan(t["data"]["profanity.score.hate"]) for t in open_)
    r = run_cli(capsys, "rca", "no-such-run")
    assert r.code == 2 and "run not found" in r.err
