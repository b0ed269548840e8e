"""The OK → PENDING → ALERT state of one category over a series of periods.

Alerting on one window trips on noise; alerting on persistence does not (docs/methods.md §7).
At period ``t`` look at the last ``M`` periods ``t−M+1..t`` (fewer at the start):

* ``ALERT``   — at least ``N`` of them breached;
* ``PENDING`` — at least one, but fewer than ``N``, breached;
* ``OK``      — none breached.

A period that could not be evaluated (no scores on one side: breach ``None``) counts as
no evidence, i.e. not a breach, but still occupies its place in the window: a gap in the
data can delay an alert, never cause one. A policy-version break restarts the window
(the series is a new series after it). Under no drift with independent periods that each
breach with probability at most ``α``, the chance of ``ALERT`` at a given period is at most
``P(Binomial(M, α) ≥ N)`` (:func:`nominal_alert_rate`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

State = Literal["OK", "PENDING", "ALERT"]
STATES: tuple[State, ...] = ("OK", "PENDING", "ALERT")


def check_rule(n: int, m: int) -> None:
    """``1 ≤ N ≤ M`` or ``ValueError``."""
    if not (1 <= n <= m):
        raise ValueError(f"persistence rule needs 1 <= N <= M, got N={n}, M={m}")


def persistence_states(
    breaches: Sequence[bool | None], n: int, m: int, breaks: Sequence[bool] = ()
) -> list[State]:
    """State after each period of a breach series under the ``N``-of-``M`` rule.

    Args:
        breaches: per period ``True`` (breach), ``False`` or ``None`` (not evaluable).
        n: breaches needed for ``ALERT``.
        m: window length in periods.
        breaks: per period, ``True`` where a new series starts (a policy-version
            boundary): the window holds only periods from that one on.
    """
    check_rule(n, m)
    out: list[State] = []
    start = 0
    for t, _ in enumerate(breaches):
        if t < len(breaks) and breaks[t]:
            start = t
        window = breaches[max(start, t - m + 1) : t + 1]
        k = sum(1 for b in window if b is True)
        out.append("ALERT" if k >= n else "PENDING" if k >= 1 else "OK")
    return out


def nominal_alert_rate(alpha: float, n: int, m: int) -> float:
    """``P(Binomial(M, α) ≥ N)``: the ALERT rate under no drift for independent periods."""
    check_rule(n, m)
    return float(sum(math.comb(m, k) * alpha**k * (1 - alpha) ** (m - k) for k in range(n, m + 1)))
