"""The typed run record on disk: migration of version-1 records (a committed sample),
atomic saves, strict loading, the interrupted-run reaper."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from audit.engine.record import RECORD_VERSION, RecordFile, migrate, parse_record
from audit.errors import ConfigError
from audit.records import SCHEMA_VERSION, RunRecord

#: A record written by the pre-typed code (record_version 1): ``audit run`` of two fake
#: moderators on 30 items of short_video_v1 (team-written), stripped to four categories
#: and three error slices; hosts and paths anonymised. Item ids and hashes only, no text.
SAMPLE_V1 = Path(__file__).resolve().parent.parent / "data" / "record_v1"


def _v1() -> dict:
    return json.loads((SAMPLE_V1 / "record.json").read_text(encoding="utf-8"))


def test_sample_is_a_version_1_record() -> None:
    data = _v1()
    assert data["record_version"] == RECORD_VERSION == 1 and "schema_version" not in data


def test_v1_sample_migrates_and_keeps_every_number() -> None:
    data = _v1()
    rec = parse_record(data, "sample")
    assert rec.schema_version == SCHEMA_VERSION == 2
    assert rec.run_id == data["run_id"] and rec.status == "finished"
    assert rec.policy.ref == "platform-v1" and rec.provenance.git.commit
    assert [r.moderator for r in rec.results] == ["fake_a", "fake_b"]
    for old, new in zip(data["results"], rec.results):
        assert new.n == old["n"] and new.n_errors == old["n_errors"]
        assert new.predictions == old["predictions"]
        for cat, per in old["metrics"].items():
            for name, mv in per.items():
                got = new.metrics[cat][name]
                assert (got.value, got.ci_low, got.ci_high, got.n, got.reason) == (
                    mv["value"],
                    mv["ci_low"],
                    mv["ci_high"],
                    mv["n"],
                    mv["reason"],
                ), (cat, name)
        assert len(new.error_slices) == len(old["error_slices"])
    fb = rec.result("short_video_v1", "fake_b")
    assert fb.n_errors == 1 and fb.error_types == {"scripted": 1}
    # directions come from the metric registry (and the engine's rates)
    assert fb.metrics["overall"]["f1"].direction == "higher"
    assert fb.metrics["overall"]["fpr"].direction == "lower"
    assert fb.metrics["overall"]["error_rate"].direction == "lower"
    assert fb.error_slices[0].error_rate.direction == "lower"


def test_migrated_record_round_trips_through_json() -> None:
    rec = parse_record(_v1(), "sample")
    again = RunRecord.model_validate_json(rec.model_dump_json())
    assert again == rec
    assert migrate(rec.model_dump(mode="json")) == rec.model_dump(mode="json")


def test_load_migrates_on_disk_record_without_rewriting_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(SAMPLE_V1, run)
    before = (run / "record.json").read_bytes()
    f = RecordFile.load(run)
    assert f.record.schema_version == 2 and f.dir == run and f.run_id == _v1()["run_id"]
    assert (run / "record.json").read_bytes() == before  # reading never rewrites


def test_unknown_version_and_bad_fields_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unsupported record version"):
        parse_record({**_v1(), "record_version": 99}, "r.json")
    bad = _v1()
    bad["results"][0]["n"] = -1
    with pytest.raises(ConfigError) as exc:
        parse_record(bad, "r.json")
    assert "results[0].n" in exc.value.render()
    extra = _v1()
    extra["surprise"] = 1
    with pytest.raises(ConfigError, match="unknown key"):
        parse_record(extra, "r.json")


def test_undefined_value_needs_a_reason() -> None:
    from audit.records import MetricValue

    assert MetricValue(value=float("nan"), n=3, reason="no positives").value is None
    with pytest.raises(ValueError, match="needs a reason"):
        MetricValue(value=None, n=3)


def test_create_update_finish_are_atomic_and_typed(tmp_path: Path) -> None:
    header = parse_record(_v1(), "sample").model_dump(
        mode="json",
        include={
            "config",
            "config_path",
            "config_hash",
            "overrides",
            "provenance",
            "policy",
            "suites",
            "moderators",
            "skipped",
        },
    )
    f = RecordFile.create(tmp_path, "run-1", header)
    on_disk = json.loads(f.path.read_text(encoding="utf-8"))
    assert on_disk["status"] == "running" and on_disk["schema_version"] == 2
    assert not list(tmp_path.glob("run-1/*.tmp"))
    entry = parse_record(_v1(), "sample").results[0]
    f.add_result(entry)
    assert RecordFile.load(f.dir).record.results == (entry,)
    f.finish("failed", "boom")
    again = RecordFile.load(f.dir).record
    assert (again.status, again.error) == ("failed", "boom") and again.finished_at
    # a second run of the same id in the same second gets a suffix
    assert RecordFile.create(tmp_path, "run-1", header).run_id == "run-1-2"
