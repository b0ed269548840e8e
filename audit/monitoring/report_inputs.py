"""Checking and preparing drift inputs (docs/methods/drift.md): array lengths, decision and
label counts, ECDF grid size, the policy version of a period."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from audit.monitoring._ecdf import GRID, SampleIndex
from audit.monitoring.report_models import DriftInput, DriftInputError, PolicyBoundaryError


@dataclass
class PreparedInput:
    index: SampleIndex
    n_missing: int
    decisions: tuple[int, int, int] | None  # (k actioned, n with a decision, n excluded)
    labels: tuple[int, int, int] | None


def finite_or_none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


MAX_GRID = 1 << 18
"""Most cells :func:`grid_cells` gives a large sample (docs/methods/drift.md, "Computation")."""


def grid_cells(n: int) -> int:
    """Cells for samples of up to ``n`` scores: a power of two near ``n`` in [2¹⁰, 2¹⁸].

    Any power of two gives exact answers (``_ecdf``); the cost is O(n + G) plus the
    sort of the elements in the cells a query needs, so small samples should not pay
    for many cells, and large ones want cells small enough that few elements need
    sorting. At 5M scores per side 2¹⁸ cells ran 2.3x faster than 2¹⁶ (2¹⁷: 1.8x,
    2¹⁹: no further gain; the bench_drift data on a quiet host).
    """
    return int(min(MAX_GRID, max(1 << 10, 1 << max(n - 1, 1).bit_length())))


def prepare_input(
    inp: DriftInput, where: str, buffer: NDArray[np.int64] | None = None, grid: int = GRID
) -> PreparedInput:
    """Validate one input; NaN scores are counted and left out, anything else is an error."""
    s = np.asarray(inp.scores)
    if s.ndim != 1:
        raise DriftInputError(
            "scores must be one-dimensional",
            where=where,
            field="scores",
            expected="a 1-D array of scores in [0, 1]",
            actual=f"shape {s.shape}",
        )
    if s.dtype.kind not in "fiub":
        raise DriftInputError(
            "scores must be numeric",
            where=where,
            field="scores",
            expected="floats in [0, 1] (NaN = not scored)",
            actual=f"dtype {s.dtype}",
        )
    if s.dtype.kind != "f":
        s = s.astype(np.float64)
    # min/max propagate NaN, and [0, 1] bounds exclude ±inf: two passes validate the
    # common all-scored case; the NaN mask is built only when there is a NaN
    x: NDArray[np.floating] = s
    n_missing = 0
    if s.size and math.isnan(float(np.min(s))):
        nan = np.isnan(s)
        n_missing = int(nan.sum())
        x = s[~nan]
    if x.size and (float(np.min(x)) < 0 or float(np.max(x)) > 1):
        bad = x[~(np.isfinite(x) & (x >= 0) & (x <= 1))]
        raise DriftInputError(
            "scores outside [0, 1]",
            where=where,
            field="scores",
            expected="scores in [0, 1] (NaN = not scored)",
            actual=f"{bad.size} values such as {float(bad[0])!r}",
            fix="pass probabilities, not logits or margins",
        )
    return PreparedInput(
        SampleIndex(np.ascontiguousarray(x), grid=grid, buffer=buffer),
        n_missing,
        _decisions(inp.decisions, s.size, where),
        _labels(inp.labels, s.size, where),
    )


def _same_length(a: NDArray[Any], n: int, where: str, field: str) -> None:
    if a.ndim != 1 or a.size != n:
        raise DriftInputError(
            f"{field} must align with scores",
            where=where,
            field=field,
            expected=f"a 1-D array of {n} values",
            actual=f"shape {a.shape}",
        )


def _decisions(d: Any, n: int, where: str) -> tuple[int, int, int] | None:
    if d is None:
        return None
    a = np.asarray(d)
    _same_length(a, n, where, "decisions")
    if a.dtype.kind == "b":
        return int(a.sum()), int(a.size), 0
    if a.dtype.kind not in "fiu":
        raise DriftInputError(
            "decisions must be booleans or 1/0",
            where=where,
            field="decisions",
            expected="bool, or float 1/0 with NaN = no decision",
            actual=f"dtype {a.dtype}",
        )
    a = a.astype(np.float64)
    known = ~np.isnan(a)
    if not np.isin(a[known], (0.0, 1.0)).all():
        raise DriftInputError(
            "decisions must be 1 or 0",
            where=where,
            field="decisions",
            expected="1 (actioned), 0 (not actioned) or NaN (no decision)",
            actual=repr(sorted(set(np.unique(a[known]).tolist()) - {0.0, 1.0})[:3]),
        )
    return int(a[known].sum()), int(known.sum()), int((~known).sum())


def _labels(y: Any, n: int, where: str) -> tuple[int, int, int] | None:
    if y is None:
        return None
    a = np.asarray(y)
    _same_length(a, n, where, "labels")
    if a.dtype.kind == "f":
        if np.isnan(a).any() or not np.isin(a, (-1.0, 0.0, 1.0)).all():
            raise DriftInputError(
                "labels must be 1, 0 or -1",
                where=where,
                field="labels",
                expected="integers 1 (violating), 0, -1 (unknown)",
                actual="floats with other values or NaN",
                fix="encode unknown labels as -1",
            )
        a = a.astype(np.int64)
    if a.dtype.kind not in "iub" or not np.isin(a, (-1, 0, 1)).all():
        raise DriftInputError(
            "labels must be 1, 0 or -1",
            where=where,
            field="labels",
            expected="integers 1 (violating), 0, -1 (unknown)",
            actual=f"dtype {a.dtype}",
        )
    known = a != -1
    return int((a[known] == 1).sum()), int(known.sum()), int((~known).sum())


def policy_version_of(inputs: Mapping[str, DriftInput], label: str) -> str | None:
    versions = {i.policy_version for i in inputs.values()}
    if len(versions) > 1:
        raise PolicyBoundaryError(
            "one period mixes policy versions",
            where=label,
            field="policy_version",
            expected="one policy version per period",
            actual=", ".join(sorted(str(v) for v in versions)),
            fix="split the period at the policy change and compare like with like",
        )
    return next(iter(versions)) if versions else None
