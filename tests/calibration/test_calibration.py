"""Calibrators, the artifact (no pickle, verified on load), the CLI and the run hook."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audit.calibration import (
    Calibrator,
    apply_calibration,
    fit,
    half_split,
    load_artifact,
    save_artifact,
)
from audit.errors import ConfigError
from tests.helpers.cli import run_cli
from tests.helpers.drift_runs import MakeRun


def _miscalibrated(n: int, seed: int, kind: str = "power") -> tuple[np.ndarray, np.ndarray]:
    """True probability p; the model reports p**0.3 (scores too high, like the MiniLM
    head), or with ``kind="scale"`` σ(0.4·logit p) (underconfident: a temperature issue)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(1, 6, n)
    y = (rng.random(n) < p).astype(np.int64)
    if kind == "scale":
        z = np.log(p) - np.log1p(-p)
        return 1 / (1 + np.exp(-0.4 * z)), y
    return p**0.3, y


@pytest.mark.parametrize("method", ["platt", "isotonic", "temperature"])
def test_recalibration_reduces_ece_out_of_sample(method: str) -> None:
    from audit.metrics import brier, ece

    kind = "scale" if method == "temperature" else "power"
    s, y = _miscalibrated(4000, 0, kind)
    se, ye = _miscalibrated(4000, 1, kind)
    c = fit(method, s, y)  # type: ignore[arg-type]
    before, after = ece(ye, se).value, ece(ye, c.apply(se)).value
    assert before > 0.1 and after < before / 3
    assert brier(ye, c.apply(se)).value < brier(ye, se).value


def test_isotonic_is_pava() -> None:
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(3)
    s = np.round(rng.random(500), 2)
    y = (rng.random(500) < s).astype(np.int64)
    c = fit("isotonic", s, y)
    ir = IsotonicRegression(out_of_bounds="clip").fit(s, y)
    assert np.allclose(c.apply(s), ir.predict(s), atol=1e-12)
    assert np.all(np.diff(c.knots_y) >= 0)


def test_platt_identity_on_calibrated_logits() -> None:
    rng = np.random.default_rng(4)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(np.int64)
    c = fit("platt", p, y)
    a, b = c.params
    assert a == pytest.approx(1, abs=0.1) and b == pytest.approx(0, abs=0.1)
    t = fit("temperature", p, y)
    assert t.params[0] == pytest.approx(1, abs=0.1)


def test_apply_keeps_nan_and_range() -> None:
    c = Calibrator("platt", (2.0, -1.0))
    out = c.apply(np.array([0.0, 1.0, np.nan, 0.5]))
    assert np.isnan(out[2]) and np.all((out[[0, 1, 3]] >= 0) & (out[[0, 1, 3]] <= 1))
    m = apply_calibration(np.array([[0.5, 0.5]]), ["a", "b"], {"a": c})
    assert m[0, 1] == 0.5 and m[0, 0] != 0.5


def test_artifact_roundtrip_and_tamper(tmp_path: Path) -> None:
    s, y = _miscalibrated(500, 5)
    cals = {"hate": fit("platt", s, y), "spam": fit("isotonic", s, y)}
    jp, tp, digest = save_artifact(
        tmp_path / "cal.json", cals, provenance={"run_id": "r"}, figures={}
    )
    assert tp.read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    back, doc, d2 = load_artifact(jp)
    assert back == cals and d2 == digest and doc["provenance"]["run_id"] == "r"
    doc["categories"]["hate"]["params"][0] += 1
    jp.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="equal in JSON and tensors"):
        load_artifact(jp)
    save_artifact(tmp_path / "cal.json", cals, provenance={}, figures={})
    tp.write_bytes(tp.read_bytes()[:-1] + b" ")
    with pytest.raises(ConfigError, match="sha256"):
        load_artifact(jp)
    with pytest.raises(ConfigError, match="no such file"):
        load_artifact(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ConfigError, match="format"):
        load_artifact(tmp_path / "x.json")


def test_half_split_stable() -> None:
    ids = [f"i{k}" for k in range(1000)]
    m = half_split(ids, 0)
    assert 400 < m.sum() < 600
    assert np.array_equal(m, half_split(list(reversed(ids)), 0)[::-1])
    assert not np.array_equal(m, half_split(ids, 1))


def test_cli_calibrate_half_split(
    make_run: MakeRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    s, y = _miscalibrated(1200, 6)
    run = make_run("A", {"hate": s}, gold={"hate": y.astype(np.int8)})
    out = tmp_path / "cal.json"
    r = run_cli(
        capsys, "calibrate", str(run), "--method", "platt", "--out", str(out), "--bootstrap", "20"
    )
    assert r.code == 0, r.err
    doc = json.loads(out.read_text())
    fig = doc["categories"]["hate"]
    assert fig["after"]["ece"]["value"] < fig["before"]["ece"]["value"]
    assert fig["n_eval"] + fig["n_fit"] == 1200
    assert (
        doc["provenance"]["suite_digest"] == "s" * 64
        and "hash half" in doc["provenance"]["fit_split"]
    )


def test_cli_calibrate_named_splits(
    make_run: MakeRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    s, y = _miscalibrated(600, 7)
    s2, y2 = _miscalibrated(600, 8)
    run = make_run(
        "A",
        {"hate": s},
        gold={"hate": y.astype(np.int8)},
        split="test",
        extra_splits={"validation": ({"hate": s2}, {"hate": y2.astype(np.int8)})},
    )
    out = tmp_path / "cal.json"
    r = run_cli(
        capsys,
        "calibrate",
        str(run),
        "--method",
        "isotonic",
        "--fit-split",
        "validation",
        "--eval-split",
        "test",
        "--out",
        str(out),
        "--bootstrap",
        "0",
    )
    assert r.code == 0, r.err
    assert json.loads(out.read_text())["provenance"]["n_fit"] == 600
    r = run_cli(capsys, "calibrate", str(run), "--method", "platt", "--out", str(out))
    assert r.code == 2 and "several splits" in r.err
    r = run_cli(
        capsys,
        "calibrate",
        str(run),
        "--method",
        "platt",
        "--fit-split",
        "train",
        "--eval-split",
        "test",
        "--out",
        str(out),
    )
    assert r.code == 2 and "not scored" in r.err


def test_cli_calibrate_no_positives(
    make_run: MakeRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = make_run(
        "A", {"hate": np.linspace(0, 1, 100)}, gold={"hate": np.zeros(100, dtype=np.int8)}
    )
    r = run_cli(
        capsys, "calibrate", str(run), "--method", "platt", "--out", str(tmp_path / "c.json")
    )
    assert r.code == 3 and "both labels" in r.err


def test_moderator_spec_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from audit.config import ModeratorSpec

    s, y = _miscalibrated(300, 9)
    jp, _, digest = save_artifact(
        tmp_path / "c.json", {"hate": fit("platt", s, y)}, provenance={}, figures={}
    )
    spec = ModeratorSpec(name="m", type="fake", calibration=str(jp))
    assert spec.calibration_digest == digest
    assert "calibration_digest" in spec.model_dump()
    with pytest.raises(ValidationError, match="not found"):
        ModeratorSpec(name="m", type="fake", calibration=str(tmp_path / "nope.json"))
    pinned = ModeratorSpec(name="m", type="fake", calibration=str(jp), calibration_digest="0" * 64)
    from audit.engine.results import _calibrate

    with pytest.raises(ConfigError, match="changed"):
        _calibrate(np.array([[0.5]]), ("hate",), pinned, {"type": "fake"})
    scores, fp, _fph = _calibrate(np.array([[0.5], [np.nan]]), ("hate",), spec, {"type": "fake"})
    assert fp["calibration"]["digest"] == digest and np.isnan(scores[1, 0]) and scores[0, 0] != 0.5


def test_platt_never_inverts() -> None:
    rng = np.random.default_rng(10)
    s = rng.random(2000)
    y = (rng.random(2000) < 1 - s).astype(np.int64)  # anti-correlated
    c = fit("platt", s, y)
    assert c.params[0] == 0.0
    out = c.apply(s)
    assert np.allclose(out, out[0]) and abs(out[0] - y.mean()) < 0.01
