"""Ray Data scoring engine (``runner.engine: ray``, extra ``[distributed]``).

Same contract as :func:`audit.engine.runner.score_items`: the driver looks up the
content-addressed prediction cache first (same keys), ships only the misses (one
row per distinct content hash) to a Ray Data ``map_batches`` actor pool whose
actors each build the project's own moderator from the same spec/params, and
writes every batch back to the cache as it streams in. A worker killed mid-run
therefore loses at most its in-flight batch: a rerun reads everything already
committed from the cache and scores only the rest.

Per-item errors stay data exactly as in the local runner (a failed batch becomes
``batch_exception`` outputs, never a crash) and the error budget is enforced on
the driver as results arrive. Outputs come back in suite order, keyed by position,
so predictions and Parquet files are identical to the local engine's.

Local mode (no address) starts ``ray.init(num_cpus=2)`` on the laptop; a cluster
is one setting (``runner.ray_address``), and the cluster must have ``audit``
installed. ``workers="tasks"`` runs the same UDF as Ray Data tasks whose worker
processes keep their moderator across jobs (for fast CPU moderators, where an actor
pool's per-job process start and model load dominate; docs/methods/scale.md);
``runner.ray_workers: auto`` (the default) picks tasks for classifiers and actors for
LLM judges (:func:`resolve_workers`). Starting or reaching Ray, and what a local
session does for its jobs, is :mod:`audit.engine.ray_session`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from audit.engine.cache import PredictionCache, fingerprint_hash
from audit.engine.ray_session import Workers, ensure_ray, fast_limit_refresh, own_local_session
from audit.engine.runner import (
    ProgressFn,
    ScoreResult,
    cached_outputs,
    commit_batch,
    finish_scoring,
    over_budget,
    pending_groups,
    predict_batch,
)
from audit.errors import RunError
from audit.moderators.base import Moderator
from audit.schema import Item, ModeratorOutput


class ModeratorFactory:
    """Picklable recipe that builds a moderator inside a Ray actor.

    Built from the same ``type`` and ``params`` as the config's moderator entry via
    :data:`audit.moderators.MODERATORS`, so every parameter (logprob mode, presets,
    thresholds of the adapter) is kept — unlike Ray's own LLM processors.
    """

    def __init__(self, type_name: str, params: dict[str, Any], policy: Any) -> None:
        self.type_name = type_name
        self.params = params
        self.policy = policy

    def __call__(self) -> Moderator:
        from audit.moderators import MODERATORS

        cls = MODERATORS.get(self.type_name)
        return cls(cls.Params.model_validate(self.params), self.policy)


def _score_rows(mod: Moderator | None, batch: Any, build_error: str | None = None) -> Any:
    """Score one block: one row per batch of items, Arrow in and Arrow out.

    The items and their outputs travel as one pickled blob per batch. Per-item cells
    (a numpy ``object`` column, or JSON per output) cost more than a fast moderator
    itself and competed with it for the laptop's two cores (docs/methods/scale.md,
    bench/bench_ray.py). ``build_error``: the moderator could not be built (task
    workers); every row then carries the message for the driver to raise.
    """
    import pyarrow as pa

    pos, out, secs = [], [], []
    for p, blob in zip(batch.column("pos").to_pylist(), batch.column("items").to_pylist()):
        pos.append(p)
        if mod is None or build_error is not None:
            out.append(b"")
            secs.append(0.0)
            continue
        items = pickle.loads(blob)
        t0 = time.perf_counter()
        outs = predict_batch(mod, items)  # a failed batch: per-item errors, as locally
        secs.append(time.perf_counter() - t0)
        out.append(pickle.dumps(outs, protocol=pickle.HIGHEST_PROTOCOL))
    return pa.table(
        {
            "pos": pa.array(pos, type=pa.list_(pa.int64())),
            "outputs": pa.array(out, type=pa.binary()),
            "seconds": pa.array(secs, type=pa.float64()),
            "build_error": pa.array([build_error] * len(pos), type=pa.string()),
        }
    )


class _ScoreActor:
    """Class-based ``map_batches`` UDF (``workers="actors"``): one moderator per actor,
    loaded once; it goes away with the actor when the job ends."""

    def __init__(self, factory: Callable[[], Moderator]) -> None:
        self.mod = factory()

    def __call__(self, batch: Any) -> Any:
        return _score_rows(self.mod, batch)


_WORKER_MODERATOR: dict[str, Moderator] = {}
"""``workers="tasks"``: the moderator this worker process built last, by recipe key."""


def _score_task(batch: Any, factory: Callable[[], Moderator], key: str) -> Any:
    """Function ``map_batches`` UDF (``workers="tasks"``).

    Ray reuses a task's worker process for later tasks and later jobs (never an
    actor's), so the moderator is built once per process and kept for every block,
    and every later job, with the same recipe ``key`` (the pickled factory and the
    fingerprint); another recipe closes it first, so a process holds one moderator.
    """
    mod = _WORKER_MODERATOR.get(key)
    if mod is None:
        for old in _WORKER_MODERATOR.values():
            with contextlib.suppress(Exception):  # a failing close must not lose the block
                old.close()
        _WORKER_MODERATOR.clear()
        try:
            mod = factory()
        except Exception as exc:
            return _score_rows(None, batch, build_error=f"{type(exc).__name__}: {exc}")
        _WORKER_MODERATOR[key] = mod
    return _score_rows(mod, batch)


def resolve_workers(setting: str, kind: str) -> Workers:
    """The mode a ``runner.ray_workers`` setting means for a moderator of ``kind``.

    ``auto`` runs LLM judges (``kind == "llm"``) on an actor pool, whose actors free the
    model (and any GPU memory) when the job ends, and every other moderator on tasks,
    whose reused processes keep a fast CPU model loaded for the session's later jobs
    (docs/methods/scale.md, "Workers").
    """
    if setting == "auto":
        return "actors" if kind == "llm" else "tasks"
    if setting == "actors":
        return "actors"
    if setting == "tasks":
        return "tasks"
    raise ValueError(f"ray workers must be 'auto', 'actors' or 'tasks', not {setting!r}")


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
    address: str | None = None,
    concurrency: int | None = None,
    retry_dead_workers: bool = True,
    workers: Workers = "actors",
) -> ScoreResult:
    """Score ``items`` on Ray Data; same contract as the local ``score_items``.

    Args:
        get_moderator: a picklable factory (e.g. :class:`ModeratorFactory`) called
            once inside each actor (or worker process, ``workers="tasks"``); never
            called when every item is cached.
        fingerprint: the moderator's fingerprint (hashed into the cache key).
        address: Ray cluster address; None starts a local 2-CPU instance.
        concurrency: actors in the pool (tasks at once); default one per CPU Ray reports.
        retry_dead_workers: let Ray restart a dead actor (or rerun a dead task) and
            retry its batch (its default); False fails the run instead, and a rerun
            resumes from the cache.
        workers: ``"actors"``, an actor pool per job (each actor starts a process
            and loads the moderator, freed at the job's end), or ``"tasks"``, reused
            worker processes that keep their moderator across jobs (CPU moderators
            only; :func:`_score_task`, docs/methods/scale.md). A config's ``auto``
            is resolved before this call (:func:`resolve_workers`).

    Raises:
        RunError: Ray missing or unreachable, the moderator failing to build in a
            worker, or failures above ``error_budget`` × n.
    """
    t0 = time.perf_counter()
    n = len(items)
    model_key = fingerprint_hash(fingerprint)
    outputs, cached = cached_outputs(items, model_key, cache, progress)
    # identical content scored once per run: only first occurrences travel to Ray
    groups = pending_groups(items, outputs)
    unique_todo = list(groups)
    max_errors = math.floor(error_budget * n)
    n_errors = sum(1 for o in outputs if o is not None and o.error is not None)
    model_seconds = 0.0
    batches = 0
    if unique_todo:
        job = _Job(model_key, batch_size, address, concurrency, workers, retry_dead_workers, where)
        for out_pos, out, secs in _stream(get_moderator, items, unique_todo, job):
            batches += 1
            model_seconds += secs
            n_errors += commit_batch(
                outputs,
                groups,
                out_pos,
                out,
                items=items,
                model_key=model_key,
                cache=cache,
                progress=progress,
            )
            if n_errors > max_errors:
                raise over_budget(outputs, n_errors, n, max_errors, error_budget, where)
    # rows of a block whose worker died (Ray skips errored blocks, see _stream) come
    # back missing: a transient error, never cached, so a rerun scores exactly them
    result = finish_scoring(
        outputs,
        "not scored: its Ray worker died or its block failed (rerun to score it)",
        cached=cached,
        max_errors=max_errors,
        error_budget=error_budget,
        where=where,
        t0=t0,
        model_seconds=model_seconds,
        batches=batches,
    )
    result.engine = {"name": "ray", "workers": workers if unique_todo else None, "address": address}
    return result


def _blocks(items: Sequence[Item], todo: list[int], batch_size: int, concurrency: int) -> list[Any]:
    """The Arrow blocks shipped to the workers: one row per batch (its positions and its
    items pickled together), a few blocks per worker so the pool stays busy; a block is
    also the unit a dead worker loses."""
    import pyarrow as pa

    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    per_block = max(1, math.ceil(len(batches) / (concurrency * 4)))
    tables = []
    for start in range(0, len(batches), per_block):
        rows = batches[start : start + per_block]
        blobs = [
            pickle.dumps([items[i] for i in r], protocol=pickle.HIGHEST_PROTOCOL) for r in rows
        ]
        tables.append(
            pa.table(
                {
                    "pos": pa.array(rows, type=pa.list_(pa.int64())),
                    "items": pa.array(blobs, type=pa.binary()),
                }
            )
        )
    return tables


def _dataset(
    tables: list[Any],
    factory: Callable[[], Moderator],
    key: str,
    workers: Workers,
    concurrency: int,
    retry: bool,
) -> Any:
    """The Ray Data plan: the blocks mapped by an actor pool or by tasks."""
    import ray

    # A failed block (its worker killed with retries off, or out of retries) must not
    # abort the others: their results still stream back and are cached, and the
    # failed block's rows come back missing (see score_items).
    ray.data.DataContext.get_current().max_errored_blocks = -1
    # from_blocks takes the blocks as built, with their metadata computed here;
    # from_arrow runs one remote task per table for it, and those tasks need worker
    # processes of their own before the actors can start (docs/methods/scale.md).
    ds = ray.data.from_blocks(tables)
    common: dict[str, Any] = {
        "batch_size": 1,  # one row = one batch of ``batch_size`` items
        "batch_format": "pyarrow",
        "num_cpus": 1,
    }
    if workers == "tasks":
        return ds.map_batches(
            _score_task,
            fn_args=(factory, key),
            compute=ray.data.TaskPoolStrategy(size=concurrency),
            **common,
            **({} if retry else {"max_retries": 0}),
        )
    return ds.map_batches(
        _ScoreActor,
        fn_constructor_args=(factory,),
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        **common,
        **({} if retry else {"max_restarts": 0, "max_task_retries": 0}),
    )


@dataclass(frozen=True)
class _Job:
    """How one :func:`score_items` call runs on Ray (its arguments, as given)."""

    model_key: str
    batch_size: int
    address: str | None
    concurrency: int | None
    workers: Workers
    retry: bool
    where: str


def _stream(
    factory: Callable[[], Moderator], items: Sequence[Item], todo: list[int], job: _Job
) -> Any:
    """Yield ``(positions, outputs, model_seconds)`` per batch as Ray finishes them."""
    where = job.where
    ensure_ray(job.address, where, job.workers)
    import ray
    from ray import cloudpickle

    concurrency = job.concurrency
    if concurrency is None:
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        concurrency = max(1, int(resources.get("CPU", 1)))
    recipe = cloudpickle.dumps(factory)  # type: ignore[no-untyped-call]
    key = f"{job.model_key}:{hashlib.sha256(recipe).hexdigest()}"
    blocks = _blocks(items, todo, job.batch_size, concurrency)
    ds = _dataset(blocks, factory, key, job.workers, concurrency, job.retry)
    refresh = fast_limit_refresh() if own_local_session() else contextlib.nullcontext()
    try:
        with refresh:
            yield from _results(ds, where)
    except RunError:
        raise
    except Exception as exc:
        first_line = (str(exc).splitlines() or [""])[0][:300]
        raise RunError(
            f"the Ray job failed: {type(exc).__name__}: {first_line}",
            where=where,
            field="runner.engine",
            expected="every actor builds its moderator and scores its batches",
            actual="a Ray task or actor failed (batches already finished are cached)",
            fix="rerun to resume from the cache; see the Ray worker logs for the cause",
        ) from exc


def _results(ds: Any, where: str) -> Iterator[tuple[list[int], list[ModeratorOutput], float]]:
    """``(positions, outputs, model_seconds)`` per batch of the job's result blocks."""
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        b: Any = batch  # a pyarrow.Table (Ray's return type is a union of formats)
        for pos, blob, secs, err in zip(
            b.column("pos").to_pylist(),
            b.column("outputs").to_pylist(),
            b.column("seconds").to_pylist(),
            b.column("build_error").to_pylist(),
        ):
            if err is not None:
                raise _build_failed(err, where)
            outs: list[ModeratorOutput] = pickle.loads(blob)
            yield pos, outs, float(secs)


def _build_failed(err: str, where: str) -> RunError:
    return RunError(
        f"the moderator could not be built in a Ray worker: {err[:300]}",
        where=where,
        field="moderators[].params",
        expected="the moderator builds from its type and params, as in the local engine",
        actual=err[:300],
        fix="run the same config with runner.engine=local to see the full error",
    )
