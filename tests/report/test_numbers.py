"""The one number format: point and interval to the same decimals, one interval style."""

from __future__ import annotations

import math
import re
import warnings

from audit.engine.pipeline import summarise_warnings
from audit.records import MetricValue
from audit.report.markdown import fmt_value
from audit.report.numbers import fmt_interval, fmt_num

_SHAPE = re.compile(r"^[+-]?\d+\.(\d+) \([+-]?\d+\.(\d+)–[+-]?\d+\.(\d+)\)$")


def test_point_and_bounds_share_decimals() -> None:
    s = fmt_interval(0.7081, 0.67, 0.75)
    assert s == "0.708 (0.670–0.750)"
    m = _SHAPE.match(s)
    assert m is not None and len({len(g) for g in m.groups()}) == 1


def test_signed_deltas_and_missing_parts() -> None:
    assert fmt_interval(0.0123, -0.004, 0.03, signed=True) == "+0.012 (-0.004–+0.030)"
    assert fmt_interval(0.5, None, 0.6) == "0.500"  # one bound missing: point only
    assert fmt_interval(0.5, math.nan, 0.6) == "0.500"
    assert fmt_interval(math.nan, 0.1, 0.2) == "—"  # never 0 for an undefined value
    assert fmt_num(None) == "—" and fmt_num(0.25, signed=True) == "+0.250"


def test_report_metric_cells_use_the_common_format() -> None:
    v = MetricValue(value=0.7081, ci_low=0.6704, ci_high=0.75, n=120)
    assert fmt_value(v) == "0.708 (0.670–0.750)"
    assert fmt_value(v, ci=False) == "0.708"


def test_the_analysis_and_compare_commands_share_it() -> None:
    from audit.cli.analysis import _fmt

    assert _fmt(0.7081, 0.6704, 0.75) == fmt_interval(0.7081, 0.6704, 0.75)


def test_warnings_are_counted_per_message() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            warnings.warn("precision is ill-defined", UserWarning, stacklevel=1)
        warnings.warn("old api", DeprecationWarning, stacklevel=1)
    out = summarise_warnings(caught)
    assert [(w["category"], w["count"]) for w in out] == [
        ("UserWarning", 3),
        ("DeprecationWarning", 1),
    ]
    assert out[0]["message"] == "precision is ill-defined"
    assert out[0]["source"].startswith(__file__)
