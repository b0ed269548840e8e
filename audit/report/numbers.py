"""The one number format of every command and report.

A point estimate and its interval always carry the same number of decimals, and the
interval is always written the same way: ``0.708 (0.670–0.750)``. The terminal
summary, ``report.md``, the HTML report and the ``audit compare`` / ``rca`` /
``thresholds`` tables all format through :func:`fmt_num` and :func:`fmt_interval`, so
two places never disagree on how a figure reads (a mismatch such as ``0.708 [0.67,
0.75]`` next to ``0.708 (0.670–0.750)`` made readers ask whether they were different
intervals).
"""

from __future__ import annotations

import math

#: decimals of every point estimate and interval bound
DECIMALS = 3
#: what a missing or undefined number reads as (never 0)
MISSING = "—"


def _bad(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_num(x: float | None, *, signed: bool = False, decimals: int = DECIMALS) -> str:
    """One number at the common precision; ``signed`` for deltas (``+0.012``)."""
    if _bad(x):
        return MISSING
    assert x is not None  # narrowed by _bad, for mypy
    return f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"


def fmt_interval(
    x: float | None,
    lo: float | None = None,
    hi: float | None = None,
    *,
    signed: bool = False,
    decimals: int = DECIMALS,
) -> str:
    """``point (low–high)`` with the same decimals on all three; the point alone when
    either bound is missing, :data:`MISSING` when the point is."""
    s = fmt_num(x, signed=signed, decimals=decimals)
    if s == MISSING or _bad(lo) or _bad(hi):
        return s
    low = fmt_num(lo, signed=signed, decimals=decimals)
    high = fmt_num(hi, signed=signed, decimals=decimals)
    return f"{s} ({low}–{high})"
