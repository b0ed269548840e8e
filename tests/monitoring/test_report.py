"""State machine, reports, policy boundaries, hostile inputs, false-alarm simulation."""

from __future__ import annotations

import numpy as np
import pytest

from audit.errors import ConfigError, RunError
from audit.monitoring import (
    DriftConfig,
    DriftInput,
    DriftInputError,
    DriftReport,
    DriftSeries,
    PolicyBoundaryError,
    Thresholds,
    drift_report,
    drift_series,
    nominal_alert_rate,
    persistence_states,
)

T, F, N = True, False, None


@pytest.mark.parametrize(
    ("series", "n", "m", "want"),
    [
        ([F, F, F], 2, 3, ["OK", "OK", "OK"]),
        ([T, F, F, F], 2, 3, ["PENDING", "PENDING", "PENDING", "OK"]),
        ([T, T, F, F, F], 2, 3, ["PENDING", "ALERT", "ALERT", "PENDING", "OK"]),
        ([T, F, T, F, F], 2, 3, ["PENDING", "PENDING", "ALERT", "PENDING", "PENDING"]),
        ([T, N, T], 2, 3, ["PENDING", "PENDING", "ALERT"]),
        ([N, N, N], 1, 1, ["OK", "OK", "OK"]),
        ([T, F, T], 1, 1, ["ALERT", "OK", "ALERT"]),
        ([T, T, T, T], 3, 3, ["PENDING", "PENDING", "ALERT", "ALERT"]),
    ],
)
def test_truth_table(series: list[bool | None], n: int, m: int, want: list[str]) -> None:
    assert persistence_states(series, n, m) == want


def test_break_restarts_window() -> None:
    got = persistence_states([T, T, T, F], 2, 3, breaks=[F, F, T, F])
    assert got == ["PENDING", "ALERT", "PENDING", "PENDING"]


def test_bad_rule() -> None:
    with pytest.raises(ValueError):
        persistence_states([T], 3, 2)
    with pytest.raises(ValueError):
        DriftConfig(persistence_n=4, persistence_m=3)


def test_nominal_rate() -> None:
    assert nominal_alert_rate(0.1, 1, 1) == pytest.approx(0.1)
    assert nominal_alert_rate(0.1, 2, 4) == pytest.approx(1 - 0.9**4 - 4 * 0.1 * 0.9**3)


def _inp(rng: np.random.Generator, n: int, a: float = 0.5, pv: str = "v1") -> DriftInput:
    s = rng.beta(a, 3, n)
    return DriftInput(
        s, decisions=s >= 0.5, labels=(rng.random(n) < s).astype(int), policy_version=pv
    )


def test_report_shift_detected_and_json_roundtrip() -> None:
    rng = np.random.default_rng(0)
    ref = {"hate": _inp(rng, 5000), "spam": _inp(rng, 5000)}
    cur = {"hate": _inp(rng, 5000), "spam": _inp(rng, 5000, a=1.5)}
    cfg = DriftConfig(persistence_n=1, persistence_m=1)
    rep = drift_report(ref, cur, cfg)
    assert rep.category("hate").state == "OK" and rep.category("hate").breach is False
    spam = rep.category("spam")
    assert spam.state == "ALERT" and {"psi", "ks"} <= set(spam.triggered)
    assert spam.decision_rate is not None and spam.decision_rate.ci_low is not None
    assert spam.decision_rate.ci_low > 0
    back = DriftReport.from_json(rep.to_json())
    assert back == rep and back.any_alert


def test_policy_boundary_error_and_marked_break() -> None:
    rng = np.random.default_rng(1)
    ref = {"hate": _inp(rng, 500, pv="v1")}
    cur = {"hate": _inp(rng, 500, pv="v2")}
    with pytest.raises(PolicyBoundaryError) as ei:
        drift_report(ref, cur)
    assert isinstance(ei.value, ConfigError) and "v2" in str(ei.value)
    rep = drift_report(ref, cur, allow_policy_change=True)
    assert rep.policy_break
    mixed = {"hate": _inp(rng, 50, pv="v1"), "spam": _inp(rng, 50, pv="v2")}
    with pytest.raises(PolicyBoundaryError, match="mixes"):
        drift_report(ref, mixed)


def test_series_break_never_compares_across() -> None:
    rng = np.random.default_rng(2)
    periods = [
        ("d0", {"hate": _inp(rng, 2000)}),
        ("d1", {"hate": _inp(rng, 2000, a=2.0)}),
        ("d2", {"hate": _inp(rng, 2000, a=2.0, pv="v2")}),
        ("d3", {"hate": _inp(rng, 2000, a=2.0, pv="v2")}),
    ]
    s = drift_series(periods, DriftConfig(persistence_n=1, persistence_m=2))
    roles = [(p.role, p.policy_break) for p in s.periods]
    assert roles == [
        ("reference", False),
        ("compared", False),
        ("reference", True),
        ("compared", False),
    ]
    assert s.periods[1].report is not None and s.periods[1].report.category("hate").state == "ALERT"
    last = s.periods[3].report
    assert last is not None and last.reference_label == "d2" and last.category("hate").state == "OK"
    assert DriftSeries.model_validate_json(s.model_dump_json()) == s


def test_one_period_only() -> None:
    rng = np.random.default_rng(3)
    s = drift_series([("only", {"hate": _inp(rng, 100)})])
    assert len(s.periods) == 1 and s.last is None and not s.any_alert
    with pytest.raises(DriftInputError):
        drift_series([])


def test_mismatched_categories_reported() -> None:
    rng = np.random.default_rng(4)
    rep = drift_report(
        {"a": _inp(rng, 100), "b": _inp(rng, 100)}, {"b": _inp(rng, 100), "c": _inp(rng, 100)}
    )
    assert [c.category for c in rep.categories] == ["b"]
    assert rep.only_in_reference == ("a",) and rep.only_in_current == ("c",)


def test_hostile_scores() -> None:
    rng = np.random.default_rng(5)
    ok = {"a": _inp(rng, 100)}
    for bad in (
        np.array([0.1, 1.5]),
        np.array([0.1, -0.1]),
        np.array([0.2, np.inf]),
        np.ones((2, 2)),
        np.array(["x", "y"]),
    ):
        with pytest.raises(DriftInputError) as ei:
            drift_report(ok, {"a": DriftInput(bad, policy_version="v1")})
        assert isinstance(ei.value, RunError) and ei.value.field == "scores"
    with pytest.raises(DriftInputError, match="align"):
        drift_report(
            ok,
            {"a": DriftInput(np.array([0.1, 0.2]), decisions=np.array([1.0]), policy_version="v1")},
        )
    with pytest.raises(DriftInputError, match="1 or 0"):
        drift_report(
            ok, {"a": DriftInput(np.array([0.1]), decisions=np.array([2.0]), policy_version="v1")}
        )
    with pytest.raises(DriftInputError, match="labels"):
        drift_report(
            ok, {"a": DriftInput(np.array([0.1]), labels=np.array([3]), policy_version="v1")}
        )


def test_nan_scores_counted_and_empty_not_evaluable() -> None:
    rng = np.random.default_rng(6)
    s = rng.random(200)
    s[:50] = np.nan
    ref = {"a": DriftInput(rng.random(200), policy_version="v1")}
    rep = drift_report(ref, {"a": DriftInput(s, policy_version="v1")})
    c = rep.category("a")
    assert c.n_missing_current == 50 and c.n_current == 150
    rep = drift_report(ref, {"a": DriftInput(np.full(10, np.nan), policy_version="v1")})
    c = rep.category("a")
    assert c.breach is None and c.state == "OK" and c.psi.value is None and c.reason
    rep = drift_report(ref, {"a": DriftInput(np.array([], dtype=float), policy_version="v1")})
    assert rep.category("a").breach is None


def test_all_tied_scores() -> None:
    ref = {"a": DriftInput(np.zeros(500), policy_version="v1")}
    rep = drift_report(ref, {"a": DriftInput(np.zeros(400), policy_version="v1")})
    assert rep.category("a").ks.value == 0 and rep.category("a").breach is False
    rep = drift_report(
        ref,
        {"a": DriftInput(np.ones(400), policy_version="v1")},
        DriftConfig(persistence_n=1, persistence_m=1),
    )
    c = rep.category("a")
    assert c.ks.value == 1 and c.state == "ALERT"


def _alert_rate(
    reps: int, n_ref: int, n_cur: int, cfg: DriftConfig, seed: int, shift: float = 0.0
) -> tuple[float, float]:
    """Share of replicates ending in ALERT and share of single periods that breached."""
    rng = np.random.default_rng(seed)
    m = cfg.persistence_m
    alerts = breaches = 0
    for _ in range(reps):
        ref = {"a": DriftInput(rng.beta(0.5, 3, n_ref), policy_version="v")}
        periods = [("ref", ref)] + [
            (
                f"p{i}",
                {
                    "a": DriftInput(
                        np.clip(rng.beta(0.5, 3, n_cur) + shift, 0, 1), policy_version="v"
                    )
                },
            )
            for i in range(m)
        ]
        s = drift_series(periods, cfg)
        last = s.last
        assert last is not None
        alerts += last.category("a").state == "ALERT"
        breaches += sum(bool(p.report.category("a").breach) for p in s.periods if p.report)
    return alerts / reps, breaches / (reps * m)


def _null_cfg() -> DriftConfig:
    # effect thresholds at 0: the rule rests on the tests alone, the strictest case
    return DriftConfig(
        thresholds=Thresholds(psi=0, js=0, ks=0),
        metrics=("psi", "ks"),
        alpha=0.1,
        persistence_n=2,
        persistence_m=4,
        correction="none",
    )


def test_false_alarm_fast() -> None:
    cfg = _null_cfg()
    rate, per = _alert_rate(200, 2000, 500, cfg, seed=11)
    nominal = cfg.nominal_alert_rate()
    se = (nominal * (1 - nominal) / 200) ** 0.5
    assert per <= cfg.alpha + 3 * (cfg.alpha / 800) ** 0.5
    assert rate <= nominal + 3 * se


def test_planted_shift_detected_fast() -> None:
    cfg = DriftConfig(persistence_n=2, persistence_m=3)
    rate, _ = _alert_rate(20, 4000, 2000, cfg, seed=12, shift=0.1)
    assert rate == 1.0


@pytest.mark.slow
def test_false_alarm_slow() -> None:
    cfg = _null_cfg()
    reps = 2000
    rate, per = _alert_rate(reps, 10000, 2000, cfg, seed=21)
    nominal = cfg.nominal_alert_rate()
    se = (nominal * (1 - nominal) / reps) ** 0.5
    assert per <= cfg.alpha + 3 * (cfg.alpha * (1 - cfg.alpha) / (reps * 4)) ** 0.5
    assert rate <= nominal + 3 * se
    power, _ = _alert_rate(200, 10000, 2000, DriftConfig(), seed=22, shift=0.05)
    assert power >= 0.95
