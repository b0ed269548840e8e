"""The gate refuses what it cannot trust: unfinished or partial candidates (exit 3, one
line naming the problem) and corrupt baselines (exit 2 naming the file and field)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from audit.release.compare import frame_from_b64
from tests.helpers.cli import run_cli
from tests.helpers.records import write_v1_record

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = REPO / "configs" / "baselines" / "release.json"
RULES = REPO / "configs" / "gates" / "release.yaml"


def _candidate(tmp: Path, *, status: str = "finished", keep_results: bool = True) -> Path:
    """A run record holding exactly the baseline's items (so a finished one passes)."""
    snap = json.loads(SNAPSHOT.read_text())
    run = tmp / "cand"
    (run / "predictions").mkdir(parents=True)
    results: list[dict[str, Any]] = []
    for r in snap["results"] if keep_results else []:
        rel = f"predictions/{r['key']}.parquet"
        frame_from_b64(r["items"]).to_parquet(run / rel, index=False)
        results.append({k: v for k, v in r.items() if k != "items"} | {"predictions": rel})
    write_v1_record(
        run,
        run_id="cand",
        results=results,
        suites=snap["suites"],
        policy=(snap["policy"]["ref"], snap["policy"]["digest"]),
    )
    rec = json.loads((run / "record.json").read_text())
    rec["status"] = status
    (run / "record.json").write_text(json.dumps(rec))
    return run


def _gate(capsys: pytest.CaptureFixture[str], cand: Path, base: Path) -> Any:
    return run_cli(
        capsys, "gate", "--candidate", str(cand), "--baseline", str(base), "--rules", str(RULES)
    )


def _one_line(r: Any) -> str:
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    return lines[0]


def test_finished_identical_candidate_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = _gate(capsys, _candidate(tmp_path), SNAPSHOT)
    assert r.code == 0, r.out[-2000:] + r.err


@pytest.mark.parametrize("status", ["failed", "running", "interrupted"])
def test_unfinished_candidate_is_refused(
    status: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = _gate(capsys, _candidate(tmp_path, status=status), SNAPSHOT)
    assert r.code == 3
    line = _one_line(r)
    assert f"is {status!r}" in line and "gate refused" in line


def test_candidate_missing_baseline_pairs_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = _gate(capsys, _candidate(tmp_path, keep_results=False), SNAPSHOT)
    assert r.code == 3
    assert "lacks baseline pair(s): short_video_v1:test × minilm_head" in _one_line(r)


def _bad_baseline(tmp: Path, mutate: Any) -> Path:
    data = json.loads(SNAPSHOT.read_text())
    data = mutate(data)
    p = tmp / "baseline.json"
    p.write_text(json.dumps(data))
    return p


def _drop_results(d: dict[str, Any]) -> dict[str, Any]:
    d.pop("results")
    return d


def _corrupt_items(d: dict[str, Any]) -> dict[str, Any]:
    d["results"][0]["items"] = base64.b64encode(b"not parquet at all").decode()
    return d


def _empty_results(d: dict[str, Any]) -> dict[str, Any]:
    d["results"] = []
    return d


def _no_suite_key(d: dict[str, Any]) -> dict[str, Any]:
    del d["results"][0]["suite"]
    return d


@pytest.mark.parametrize(
    "mutate,field",
    [
        (lambda d: [], "(top level)"),
        (_drop_results, "results"),
        (_empty_results, "results"),
        (_corrupt_items, "results[0].items"),
        (_no_suite_key, "results[0].suite"),
    ],
    ids=["list", "no_results", "empty_results", "corrupt_items", "missing_key"],
)
def test_corrupt_baseline_is_a_clear_error(
    mutate: Any, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _bad_baseline(tmp_path, mutate)
    r = _gate(capsys, _candidate(tmp_path), base)
    assert r.code == 2, r.err
    line = _one_line(r)
    assert str(base) in line and field in line and "internal error" not in line
