"""Per-slice error accounting (``audit.engine.results.error_breakdown``): counts by error type,
error and parse-failure rates with Wilson intervals, overall and per slice value."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from audit.engine.results import error_breakdown, error_breakdown_frame, error_breakdown_table
from tests.helpers.suites import base_config, write_config, write_suite

Z95 = 1.959963984540054


def wilson95(k: int, n: int) -> tuple[float, float]:
    p = k / n
    den = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / den
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def _row(rows: list[dict[str, Any]], sl: str, value: str) -> dict[str, Any]:
    return next(r for r in rows if r["slice"] == sl and r["value"] == value)


def test_breakdown_by_hand() -> None:
    # 10 items; the judge fails to parse mostly on zh
    lang = ["en"] * 6 + ["zh"] * 3 + [None]
    surface = ["video", "photo"] * 5
    errors = [None, None, "timeout", None, None, None, "bad json", "bad json", None, "x"]
    types = [None, None, "timeout", None, None, None, "parse_failure", "parse_failure", None, None]
    rows = error_breakdown_table(errors, types, {"language": lang, "surface": surface})
    json.dumps(rows)  # JSON-serialisable as is
    overall = rows[0]
    assert (overall["slice"], overall["value"], overall["n"]) == ("overall", "all", 10)
    assert overall["n_errors"] == 4 and overall["n_parse_failures"] == 2
    assert overall["errors_by_type"] == {"parse_failure": 2, "timeout": 1, "unspecified": 1}
    assert overall["error_rate"]["value"] == pytest.approx(0.4)
    assert overall["parse_failure_rate"]["value"] == pytest.approx(0.2)
    lo, hi = wilson95(2, 10)
    pf = overall["parse_failure_rate"]
    assert pf["ci_low"] == pytest.approx(lo, abs=1e-12)
    assert pf["ci_high"] == pytest.approx(hi, abs=1e-12)
    assert pf["method"] == "wilson" and pf["n"] == 10
    zh = _row(rows, "language", "zh")
    assert (zh["n"], zh["n_errors"], zh["n_parse_failures"]) == (3, 2, 2)
    assert zh["errors_by_type"] == {"parse_failure": 2}
    assert zh["parse_failure_rate"]["value"] == pytest.approx(2 / 3)
    lo, hi = wilson95(2, 3)
    assert zh["parse_failure_rate"]["ci_low"] == pytest.approx(lo, abs=1e-12)
    assert zh["parse_failure_rate"]["ci_high"] == pytest.approx(hi, abs=1e-12)
    en = _row(rows, "language", "en")
    assert en["parse_failure_rate"]["value"] == 0.0 and en["errors_by_type"] == {"timeout": 1}
    assert en["parse_failure_rate"]["ci_low"] == pytest.approx(0.0, abs=1e-12)
    assert en["parse_failure_rate"]["ci_high"] > 0.05
    missing = _row(rows, "language", "(missing)")
    assert missing["n"] == 1 and missing["errors_by_type"] == {"unspecified": 1}
    # values most items first, every item counted once per slice
    assert [r["value"] for r in rows if r["slice"] == "language"] == ["en", "zh", "(missing)"]
    for sl in ("language", "surface"):
        assert sum(r["n"] for r in rows if r["slice"] == sl) == 10
        assert sum(r["n_errors"] for r in rows if r["slice"] == sl) == 4


def test_empty_result_is_undefined_not_zero() -> None:
    rows = error_breakdown_table([], [], {"language": []})
    assert len(rows) == 1 and rows[0]["n"] == 0
    for k in ("error_rate", "parse_failure_rate"):
        assert rows[0][k]["value"] is None and rows[0][k]["reason"]


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="slice 'language'"):
        error_breakdown_table([None, None], [None, None], {"language": ["en"]})


def test_filled_by_pipeline_and_equal_from_parquet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit.engine.pipeline import run_audit
    from audit.moderators.fake import FakeModerator
    from audit.schema import ModeratorOutput

    orig = FakeModerator.predict

    def predict(self: FakeModerator, items: Any) -> list[ModeratorOutput]:
        out = orig(self, items)
        return [
            ModeratorOutput(error=o.error, error_type="parse_failure")
            if o.error and o.error.startswith("parse:")
            else o
            for o in out
        ]

    monkeypatch.setattr(FakeModerator, "predict", predict)
    runs = tmp_path / "runs"
    cfg = base_config(write_suite(tmp_path), runs)
    fail = {"m000": "parse: no verdict", "m003": "parse: no verdict", "m001": "boom"}
    cfg["moderators"][0]["params"]["fail"] = fail
    cfg["runner"] = {"error_budget": 0.5, "progress": False}
    cfg["tracking"] = {"enabled": False}
    record, results = run_audit(write_config(tmp_path / "run.yaml", cfg))
    (res,) = results
    assert res.error_slices == error_breakdown(res, ci=0.95)
    overall = res.error_slices[0]
    assert overall["n"] == 40 and overall["n_errors"] == 3
    assert overall["errors_by_type"] == {"parse_failure": 2, "scripted": 1}
    es = _row(res.error_slices, "language", "es")  # m000, m003 are es (i % 3 == 0)
    assert es["n"] == 14 and es["n_parse_failures"] == 2
    assert _row(res.error_slices, "language", "en")["n_parse_failures"] == 0
    json.dumps(res.error_slices)
    import pandas as pd

    df = pd.read_parquet(record.dir / record.record.results[0].predictions)
    assert error_breakdown_frame(df) == res.error_slices
