"""Scoring loop: batching, cache lookups, per-item error capture, error budget, progress.

The runner never turns a failure into a label: an item that errors keeps NaN
scores and its error message, and the error rate is checked against the budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.engine.cache import PredictionCache, fingerprint_hash
from audit.errors import RunError
from audit.moderators.base import Moderator
from audit.schema import Item, ModeratorOutput


@dataclass
class ScoreResult:
    """Per-item outputs of one moderator on one suite split, in suite order."""

    outputs: list[ModeratorOutput]
    cached: np.ndarray
    n_errors: int
    seconds: float
    model_seconds: float
    batches: int
    error_types: dict[str, int] = field(default_factory=dict)
    engine: dict[str, str | None] = field(default_factory=lambda: {"name": "local"})
    """Which engine scored (``name``; for Ray also ``workers`` and ``address``)."""

    @property
    def error_rate(self) -> float:
        return self.n_errors / len(self.outputs) if self.outputs else math.nan


ProgressFn = Callable[[int], None]


def score_items(
    get_moderator: Callable[[], Moderator],
    fingerprint: dict[str, Any],
    items: Sequence[Item],
    *,
    batch_size: int,
    cache: PredictionCache | None,
    error_budget: float,
    where: str,
    progress: ProgressFn | None = None,
) -> ScoreResult:
    """Score ``items``, reading and writing the cache, enforcing the error budget.

    Args:
        get_moderator: returns the moderator; called only when some item is not
            cached, so an unchanged rerun never loads a model.
        fingerprint: the moderator's fingerprint (hashed into the cache key).
        where: ``suite × moderator`` label used in error messages.
        progress: called with the number of items just completed.

    Raises:
        RunError: when failures exceed ``error_budget`` × n (checked as soon as the
            outcome is certain, so a broken model stops early).
    """
    t0 = time.perf_counter()
    n = len(items)
    model_key = fingerprint_hash(fingerprint)
    outputs, cached = cached_outputs(items, model_key, cache, progress)
    groups = pending_groups(items, outputs)  # identical content scored once per run
    unique_todo = list(groups)
    max_errors = math.floor(error_budget * n)
    n_errors = sum(1 for o in outputs if o is not None and o.error is not None)
    model_seconds = 0.0
    batches = 0
    mod: Moderator | None = None
    for start in range(0, len(unique_todo), batch_size):
        idx = unique_todo[start : start + batch_size]
        if mod is None:
            mod = get_moderator()
        tb = time.perf_counter()
        outs = predict_batch(mod, [items[i] for i in idx])
        model_seconds += time.perf_counter() - tb
        batches += 1
        n_errors += commit_batch(
            outputs,
            groups,
            idx,
            outs,
            items=items,
            model_key=model_key,
            cache=cache,
            progress=progress,
        )
        if n_errors > max_errors:
            raise over_budget(outputs, n_errors, n, max_errors, error_budget, where)
    return finish_scoring(
        outputs,
        "not scored",
        cached=cached,
        max_errors=max_errors,
        error_budget=error_budget,
        where=where,
        t0=t0,
        model_seconds=model_seconds,
        batches=batches,
    )


def pending_groups(
    items: Sequence[Item], outputs: Sequence[ModeratorOutput | None]
) -> dict[int, list[int]]:
    """Items still without an output, grouped by content: the first position of each
    distinct content hash → every position sharing it (itself first). Keys come in
    ascending order, so they are the positions to score, in suite order; shared by the
    local and the Ray engine."""
    first_of: dict[str, int] = {}
    groups: dict[int, list[int]] = {}
    for i, o in enumerate(outputs):
        if o is None:
            j = first_of.setdefault(items[i].content_hash, i)
            if j == i:
                groups[i] = [i]
            else:
                groups[j].append(i)
    return groups


def commit_batch(
    outputs: list[ModeratorOutput | None],
    groups: dict[int, list[int]],
    positions: Sequence[int],
    outs: Sequence[ModeratorOutput],
    *,
    items: Sequence[Item],
    model_key: str,
    cache: PredictionCache | None,
    progress: ProgressFn | None,
) -> int:
    """One scored batch, as both engines commit it: each output written to every
    position of its content group, cached by content hash (the cache keeps no
    transient outcome, see :class:`PredictionCache`), progress reported. Returns how
    many of the completed items are errors, for the caller's budget check."""
    done = errors = 0
    for p, o in zip(positions, outs):
        for i in groups[p]:
            outputs[i] = o
            done += 1
            if o.error is not None:
                errors += 1
    if cache is not None:
        cache.put_many(model_key, {items[p].content_hash: o for p, o in zip(positions, outs)})
    if progress:
        progress(done)
    return errors


def predict_batch(mod: Moderator, batch: list[Item]) -> list[ModeratorOutput]:
    """``mod.predict(batch)``; a batch that raises (or returns the wrong number of
    outputs) becomes one ``batch_exception`` output per item, never a crash."""
    try:
        outs = mod.predict(batch)
        if len(outs) != len(batch):
            raise RuntimeError(
                f"moderator returned {len(outs)} outputs for a batch of {len(batch)}"
            )
    except Exception as exc:  # the whole batch failed: record it per item
        msg = f"{type(exc).__name__}: {exc}"
        return [ModeratorOutput(error=msg, error_type="batch_exception") for _ in batch]
    return outs


def cached_outputs(
    items: Sequence[Item],
    model_key: str,
    cache: PredictionCache | None,
    progress: ProgressFn | None,
) -> tuple[list[ModeratorOutput | None], np.ndarray]:
    """Outputs already in the cache (``None`` where missing) and the cached mask, shared by
    the local and the Ray engine so both look items up by the same content-addressed key."""
    n = len(items)
    outputs: list[ModeratorOutput | None] = [None] * n
    cached = np.zeros(n, dtype=bool)
    if cache is not None:
        hit = cache.get_many(model_key, (it.content_hash for it in items))
        for i, it in enumerate(items):
            o = hit.get(it.content_hash)
            if o is not None:
                outputs[i] = o
                cached[i] = True
        if progress and cached.any():
            progress(int(cached.sum()))
    return outputs, cached


def finish_scoring(
    outputs: Sequence[ModeratorOutput | None],
    missing: str,
    *,
    cached: np.ndarray,
    max_errors: int,
    error_budget: float,
    where: str,
    t0: float,
    model_seconds: float,
    batches: int,
) -> ScoreResult:
    """Close a scoring pass (shared by the local and the Ray engine): items left without
    an output become transient ``exception`` errors (never cached, so a rerun scores
    them), errors are counted by type, and the error budget is checked once more.

    Raises:
        RunError: more than ``max_errors`` items failed.
    """
    n = len(outputs)
    final = [
        o if o is not None else ModeratorOutput(error=missing, error_type="exception")
        for o in outputs
    ]
    types: dict[str, int] = {}
    for o in final:
        if o.error is not None:
            types[o.error_type or "error"] = types.get(o.error_type or "error", 0) + 1
    n_err_final = sum(types.values())
    if n_err_final > max_errors:
        raise over_budget(final, n_err_final, n, max_errors, error_budget, where)
    return ScoreResult(
        outputs=final,
        cached=cached,
        n_errors=n_err_final,
        seconds=time.perf_counter() - t0,
        model_seconds=model_seconds,
        batches=batches,
        error_types=types,
    )


def over_budget(
    outputs: Sequence[ModeratorOutput | None],
    n_errors: int,
    n: int,
    max_errors: int,
    budget: float,
    where: str,
) -> RunError:
    first = next(o for o in outputs if o is not None and o.error is not None)
    return RunError(
        f"error budget exceeded: {n_errors} of {n} items failed (first error: {first.error})",
        where=where,
        field="runner.error_budget",
        expected=f"at most {budget:.1%} of {n} items failing ({max_errors})",
        actual=f"{n_errors} failed",
        fix="inspect the model/items, or raise runner.error_budget",
    )
