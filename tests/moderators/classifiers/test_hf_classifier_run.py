"""A tiny random-weight transformers classifier built here (no hub) runs through
``hf_classifier`` end to end into MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.suites import base_config, write_config, write_suite
from tests.helpers.tiny_models import build_tiny_classifier


@pytest.mark.parametrize("problem_type", ["multi_label", "single_label"])
def test_tiny_hf_classifier_into_mlflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], problem_type: str
) -> None:
    model = build_tiny_classifier(
        tmp_path / "clf",
        ["safe", "hateful", "bullying", "csam"],
        problem_type=f"{problem_type}_classification",
    )
    runs = tmp_path / "runs"
    cfg = base_config(write_suite(tmp_path), runs)
    cfg["moderators"] = [
        {
            "name": "tiny_clf",
            "type": "hf_classifier",
            "params": {
                "model": str(model),
                "problem_type": problem_type,
                "label_map": {"hateful": "hate", "bullying": "harassment", "csam": "minor_sexual"},
                "max_length": 32,
                "device": "cpu",
            },
            "thresholds": {"default": 0.3, "minor_sexual": 0.2},
            "batch_size": 16,
        }
    ]
    r = run_cli(capsys, "run", str(write_config(tmp_path / "run.yaml", cfg)))
    assert r.code == 0, r.err
    rec = json.loads(next(runs.glob("*/record.json")).read_text())
    assert rec["status"] == "finished"
    fp = rec["moderators"]["tiny_clf"]["fingerprint"]
    assert fp["type"] == "hf_classifier" and len(json.dumps(fp)) > 50
    res = rec["results"][0]
    assert res["n"] == 40 and res["n_errors"] == 0
    assert set(res["categories_scored"]) == {"hate", "harassment", "minor_sexual"}

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    exp = client.get_experiment_by_name("test")
    child = next(
        x for x in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in x.data.tags
    )
    assert child.info.status == "FINISHED"
    assert child.data.params["moderator.type"] == "hf_classifier"
    assert (
        child.data.params["moderator.fingerprint"]
        == rec["moderators"]["tiny_clf"]["fingerprint_hash"][:16]
    )
    for k in (
        "mini/hate/auroc",
        "mini/harassment/recall",
        "mini/minor_sexual/auprc",
        "mini/overall/f1",
    ):
        assert k in child.data.metrics, sorted(child.data.metrics)[:20]
