"""Relabel impact, part (b): judge flips between prompts rendered from ``A`` and ``B``
(docs/methods/change.md §2): per lineage group flip matrix and McNemar."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.change.impact_migration import Migration
from audit.change.lineage import Lineage
from audit.config import ModeratorSpec
from audit.schema import ModeratorOutput


@dataclass
class GroupFlips:
    """Judge decisions under A vs B for one lineage group.

    Attributes:
        label: ``old ids → new ids`` (or the id when one-to-one and unchanged).
        matrix: ``[[neg→neg, neg→pos], [pos→neg, pos→pos]]`` over items both sides scored.
        mcnemar: ``{"b": pos→neg, "c": neg→pos, "statistic", "p_value", "method"}``.
        flip_rows: rows that flip.
        reason: why the group was not compared (judge cannot speak to a category), or None.
    """

    old: tuple[str, ...]
    new: tuple[str, ...]
    label: str
    n: int
    matrix: list[list[int]]
    mcnemar: dict[str, Any]
    flip_rows: list[int] = field(default_factory=list)
    reason: str | None = None

    @property
    def flip_rate(self) -> float:
        if self.n == 0:
            return math.nan
        return (self.matrix[0][1] + self.matrix[1][0]) / self.n


def decisions(
    outputs: Sequence[ModeratorOutput], categories: Sequence[str], spec: ModeratorSpec
) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) 0/1 decisions at the spec's thresholds and an (n, K) "scored" mask."""
    n, k = len(outputs), len(categories)
    dec = np.zeros((n, k), dtype=np.int8)
    ok = np.zeros((n, k), dtype=bool)
    for i, o in enumerate(outputs):
        if o.error is not None:
            continue
        for j, c in enumerate(categories):
            v = o.scores.get(c)
            if v is None or math.isnan(v):
                continue
            ok[i, j] = True
            dec[i, j] = 1 if v >= spec.threshold(c) else 0
    return dec, ok


def judge_flips(
    lin: Lineage,
    dec_a: np.ndarray,
    ok_a: np.ndarray,
    cats_a: Sequence[str],
    dec_b: np.ndarray,
    ok_b: np.ndarray,
    cats_b: Sequence[str],
) -> list[GroupFlips]:
    """Flip matrix and McNemar per lineage group (part (b) of the module doc)."""
    from audit.release.compare import mcnemar

    out: list[GroupFlips] = []
    for olds, news in lin.groups():
        label = (
            olds[0]
            if olds == news and len(olds) == 1
            else f"{'+'.join(olds) or '∅'} → {'+'.join(news) or '∅'}"
        )
        missing = list(
            dict.fromkeys(
                [c for c in olds if c not in cats_a] + [c for c in news if c not in cats_b]
            )
        )
        if not olds or not news or missing:
            why = (
                "added in the new version (no old decision to compare)"
                if not olds
                else "removed in the new version (no new decision to compare)"
                if not news
                else f"the judge does not score {missing}"
            )
            nan = math.nan
            out.append(
                GroupFlips(
                    olds,
                    news,
                    label,
                    0,
                    [[0, 0], [0, 0]],
                    {"b": 0, "c": 0, "statistic": nan, "p_value": nan, "method": "n/a"},
                    reason=why,
                )
            )
            continue
        ia = [list(cats_a).index(c) for c in olds]
        ib = [list(cats_b).index(c) for c in news]
        valid = ok_a[:, ia].all(axis=1) & ok_b[:, ib].all(axis=1)
        da = dec_a[:, ia].max(axis=1)
        db = dec_b[:, ib].max(axis=1)
        m = [[0, 0], [0, 0]]
        for x in (0, 1):
            for y in (0, 1):
                m[x][y] = int((valid & (da == x) & (db == y)).sum())
        t = mcnemar(m[1][0], m[0][1])
        rows = np.flatnonzero(valid & (da != db)).tolist()
        out.append(
            GroupFlips(
                olds,
                news,
                label,
                int(valid.sum()),
                m,
                {
                    "b": t.b,
                    "c": t.c,
                    "statistic": t.statistic,
                    "p_value": t.p_value,
                    "method": t.method,
                },
                rows,
            )
        )
    return out


def judge_moved_gold(
    mig: Migration,
    flips: list[GroupFlips],
    dec_b: np.ndarray,
    ok_b: np.ndarray,
    cats_b: Sequence[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Gold after moving it as the judge suggests, and a mask of the cells that moved.

    Flip items take the judge's B decision for every new category of the flipping group;
    split positives the rule left unassigned take it for the split's children.
    """
    gold = mig.labels.copy()
    moved = np.zeros_like(gold, dtype=bool)
    col = {c: k for k, c in enumerate(mig.categories)}
    jb = {c: k for k, c in enumerate(cats_b)}

    def put(row: int, c: str) -> None:
        if c in jb and c in col and ok_b[row, jb[c]]:
            v = int(dec_b[row, jb[c]])
            if gold[row, col[c]] != v:
                moved[row, col[c]] = True
            gold[row, col[c]] = v

    for g in flips:
        for row in g.flip_rows:
            for c in g.new:
                put(row, c)
    for row, parent, _ in mig.review:
        for g in flips:
            if parent in g.old:
                for c in g.new:
                    put(row, c)
    return gold, moved
