"""Relabel impact, part (a): structural migration of gold from policy ``A`` to ``B``
(docs/methods/change.md §2): copies, merge ORs, split rules, unknowns for review."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from audit.change.lineage import Lineage
from audit.errors import ConfigError
from audit.policy import SplitCondition
from audit.schema import NEGATIVE, POSITIVE, UNKNOWN, Item


@dataclass
class Migration:
    """Gold in the new version's categories.

    Attributes:
        labels: (n, K_new) int8, -1 unknown.
        review: ``(row, new category or old parent, reason)`` for items a human must label.
        counts: per new category ``{"positive", "negative", "unknown", "how"}``.
        dropped: old categories whose gold is dropped (removed categories).
    """

    categories: tuple[str, ...]
    labels: np.ndarray
    review: list[tuple[int, str, str]]
    counts: dict[str, dict[str, Any]]
    dropped: list[str]


def _or(cols: list[np.ndarray]) -> np.ndarray:
    """Three-valued OR: positive if any positive, negative if all negative, else unknown."""
    st = np.stack(cols, axis=1)
    out = np.full(st.shape[0], UNKNOWN, dtype=np.int8)
    out[(st == NEGATIVE).all(axis=1)] = NEGATIVE
    out[(st == POSITIVE).any(axis=1)] = POSITIVE
    return out


def _matches(
    cond: SplitCondition,
    row: int,
    old_labels: np.ndarray,
    old_ids: tuple[str, ...],
    slices: dict[str, list[Any]],
    texts: list[str],
    where: str,
    fld: str,
) -> bool:
    if cond.label is not None:
        return bool(old_labels[row, old_ids.index(cond.label)] == POSITIVE)
    if cond.slice is not None:
        ((col, values),) = cond.slice.items()
        if col not in slices:
            raise ConfigError(
                "split condition reads a slice column the suite does not have",
                where=where,
                field=fld + ".when.slice",
                expected=f"one of {sorted(slices)}",
                actual=repr(col),
                fix="use a slice the suite card declares, or a text_matches / label condition",
            )
        return str(slices[col][row]) in values
    assert cond.text_matches is not None
    return re.search(cond.text_matches, texts[row]) is not None


def migrate_gold(
    lin: Lineage,
    old_labels: np.ndarray,
    items: Sequence[Item],
    slices: dict[str, list[Any]],
    where: str,
) -> Migration:
    """Move gold from ``lin.old`` to ``lin.new`` categories (part (a) of the module doc).

    Args:
        old_labels: (n, K_old) gold of the suite under the old version.
        items: the suite's items, in the same order (texts for ``text_matches``).
        slices: slice column → values, in the same order (for ``slice`` conditions).
        where: the new policy's file, for errors.
    """
    old_ids, new_ids = lin.old.category_ids, lin.new.category_ids
    n = old_labels.shape[0]
    texts = [it.text() for it in items]
    contrib: dict[str, list[np.ndarray]] = {c: [] for c in new_ids}
    how: dict[str, list[str]] = {c: [] for c in new_ids}
    review: list[tuple[int, str, str]] = []
    retired = {r.id: (i, r) for i, r in enumerate(lin.new.retired)}
    for o, fate in lin.fates.items():
        col = old_labels[:, old_ids.index(o)]
        if fate.kind in ("kept", "renamed", "merged"):
            contrib[fate.targets[0]].append(col.astype(np.int8))
            how[fate.targets[0]].append(f"{fate.kind} from {o}" if fate.kind != "kept" else "kept")
        elif fate.kind == "split":
            ri, r = retired[o]
            assert r.split_into is not None
            child = {
                t: np.where(col == NEGATIVE, NEGATIVE, UNKNOWN).astype(np.int8)
                for t in fate.targets
            }
            for row in np.flatnonzero(col == POSITIVE):
                chosen: str | None = None
                for bi, b in enumerate(r.split_into):
                    if b.when is None or _matches(
                        b.when,
                        int(row),
                        old_labels,
                        old_ids,
                        slices,
                        texts,
                        where,
                        f"retired[{ri}].split_into[{bi}]",
                    ):
                        chosen = b.into
                        break
                if chosen is None:
                    review.append((int(row), o, f"split of {o}: no branch of the rule matched"))
                    continue
                for t in fate.targets:
                    child[t][row] = POSITIVE if t == chosen else NEGATIVE
            for t in fate.targets:
                contrib[t].append(child[t])
                how[t].append(f"split from {o}")
    labels = np.full((n, len(new_ids)), UNKNOWN, dtype=np.int8)
    counts: dict[str, dict[str, Any]] = {}
    for k, c in enumerate(new_ids):
        if contrib[c]:
            labels[:, k] = _or(contrib[c])
        col = labels[:, k]
        counts[c] = {
            "positive": int((col == POSITIVE).sum()),
            "negative": int((col == NEGATIVE).sum()),
            "unknown": int((col == UNKNOWN).sum()),
            "how": ", ".join(how[c]) or "added: no origin, gold unknown",
        }
    dropped = [o for o, f in lin.fates.items() if f.kind == "removed"]
    return Migration(new_ids, labels, review, counts, dropped)
