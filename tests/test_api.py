"""``audit.run`` / ``audit.load_run`` / ``audit.compare`` / ``audit.gate`` end to end on
the fake moderator and the team-written short_video_v1 set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pandas.testing as pdt
import pytest

import audit
from audit.api import METRIC_COLUMNS


def _config(**extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "api-test",
        "policy": "platform-v1",
        "suites": [{"name": "short_video_v1", "split": "test", "limit": 24}],
        "moderators": [
            {"name": "fake_a", "type": "fake", "params": {"seed": 1}},
            {"name": "fake_b", "type": "fake", "params": {"seed": 2}},
        ],
        "metrics": {"bootstrap": 30, "names": ["precision", "recall", "f1", "fpr", "auprc"]},
        "runner": {"progress": False},
        "tracking": {"enabled": False},
    }
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> audit.RunResult:
    runs = tmp_path_factory.mktemp("api") / "runs"
    return audit.run(_config(), runs_dir=runs)


def test_run_from_a_dict_returns_typed_record_and_long_metrics(result: audit.RunResult) -> None:
    rec = result.record
    assert isinstance(rec, audit.RunRecord) and rec.status == "finished"
    assert rec.config_path == "<dict>" and rec.schema_version == 2
    assert [r.moderator for r in rec.results] == ["fake_a", "fake_b"]
    m = result.metrics
    assert tuple(m.columns) == METRIC_COLUMNS
    assert set(m["moderator"]) == {"fake_a", "fake_b"} and set(m["suite"]) == {"short_video_v1"}
    f1 = m[(m.moderator == "fake_a") & (m.category == "overall") & (m.metric == "f1")].iloc[0]
    mv = rec.result("short_video_v1", "fake_a").metrics["overall"]["f1"]
    assert f1.value == mv.value and f1.ci_low == mv.ci_low and f1.n == mv.n == 24
    assert mv.direction == "higher"
    # undefined values are NaN in the frame, with the reason kept on the record
    undefined = [
        v for per in rec.results[0].metrics.values() for v in per.values() if v.value is None
    ]
    assert all(v.reason for v in undefined)
    assert m["value"].isna().sum() == sum(
        v.value is None for r in rec.results for per in r.metrics.values() for v in per.values()
    )


def test_load_run_by_id_gives_the_same_metrics(result: audit.RunResult) -> None:
    again = audit.load_run(result.record.run_id, runs_dir=result.run_dir.parent)
    pdt.assert_frame_equal(again.metrics, result.metrics)
    assert again.record == result.record
    pdt.assert_frame_equal(audit.load_run(result.run_dir).metrics, result.metrics)


def test_predictions_come_from_the_runs_parquet(result: audit.RunResult) -> None:
    df = result.predictions("short_video_v1", "fake_b")
    assert isinstance(df, pd.DataFrame) and len(df) == 24 and df["id"].is_unique
    assert "score.overall" in df.columns and "gold.overall" in df.columns
    with pytest.raises(KeyError, match="has: short_video_v1 × fake_a"):
        result.predictions("short_video_v1", "nope")


def test_compare_and_gate_are_typed(result: audit.RunResult, tmp_path: Path) -> None:
    cmp = audit.compare(result, result, moderator_a="fake_a", moderator_b="fake_b", n_boot=50)
    assert cmp["a"] == cmp["b"] == result.record.run_id and cmp["suites"]
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "n_boot: 50\nmoderator_baseline: fake_a\nmoderator_candidate: fake_a\n"
        "rules:\n  - metric: recall\n    margin: 0.05\n    categories: [overall]\n",
        encoding="utf-8",
    )
    v = audit.gate(result, result, rules)
    assert isinstance(v, audit.Verdict) and v.checks
    assert all(isinstance(c, audit.Check) for c in v.checks)
    assert v.exit_code in (0, 3) and v.word in ("PASS", "UNVERIFIABLE")


def test_run_leaves_the_environment_as_it_found_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM"):
        monkeypatch.delenv(k, raising=False)
    before = dict(os.environ)
    cfg = _config(moderators=[{"name": "fake_a", "type": "fake", "params": {"seed": 1}}])
    r = audit.run(audit.RunConfig.model_validate(cfg), runs_dir=tmp_path / "runs")
    assert r.record.config_path == "<RunConfig>"
    assert dict(os.environ) == before


def test_bad_config_is_a_clear_error_and_leaves_no_run(tmp_path: Path) -> None:
    bad = _config()
    bad["moderators"][0]["type"] = "fak"
    with pytest.raises(audit.ModeratorError) as exc:
        audit.run(bad, runs_dir=tmp_path / "runs")
    assert "moderators[0].type" in exc.value.render() and "did you mean 'fake'" in str(exc.value)
    with pytest.raises(audit.ConfigError, match="must be a path, a dict or a RunConfig"):
        audit.run(42, runs_dir=tmp_path / "runs")  # type: ignore[arg-type]
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*/record.json"))


def test_load_run_of_a_version_1_record_migrates() -> None:
    old = audit.load_run(Path(__file__).parent / "data" / "record_v1")
    assert old.record.schema_version == 2
    assert set(old.metrics["moderator"]) == {"fake_a", "fake_b"}
    assert len(old.predictions("short_video_v1", "fake_a")) == 30


def test_load_run_not_found_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(audit.ConfigError, match="run not found"):
        audit.load_run("no-such-run", runs_dir=tmp_path)
