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
installed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from audit.engine.cache import PredictionCache, fingerprint_hash
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

LOCAL_NUM_CPUS = 2
"""CPUs a local (addressless) Ray instance is started with: laptop-sized."""


WORKER_PRELOAD = (
    "ray.data",
    "ray.data._internal.execution.operators.actor_pool_map_operator",
    "audit.engine.ray_runner",
    "audit.moderators",
)
"""Modules a local Ray worker imports as it starts, before it takes work."""


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


class _ScoreActor:
    """Class-based ``map_batches`` UDF: one moderator per actor, loaded once."""

    def __init__(self, factory: Callable[[], Moderator]) -> None:
        self.mod = factory()

    def __call__(self, batch: Any) -> Any:
        # One row per batch of items, Arrow in and Arrow out: the items and their
        # outputs travel as one pickled blob per batch. Per-item cells (a numpy
        # ``object`` column, or JSON per output) cost more than a fast moderator
        # itself and competed with it for the laptop's two cores (docs/methods/scale.md,
        # bench/bench_ray.py).
        import pyarrow as pa

        pos, out, secs = [], [], []
        for p, blob in zip(batch.column("pos").to_pylist(), batch.column("items").to_pylist()):
            items = pickle.loads(blob)
            t0 = time.perf_counter()
            outs = predict_batch(self.mod, items)  # a failed batch: per-item errors, as locally
            secs.append(time.perf_counter() - t0)
            pos.append(p)
            out.append(pickle.dumps(outs, protocol=pickle.HIGHEST_PROTOCOL))
        return pa.table(
            {
                "pos": pa.array(pos, type=pa.list_(pa.int64())),
                "outputs": pa.array(out, type=pa.binary()),
                "seconds": pa.array(secs, type=pa.float64()),
            }
        )


def ray_versions() -> dict[str, str | None]:
    """Ray and vLLM versions (None when absent), for the run record."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for p in ("ray", "vllm"):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def ensure_ray(address: str | None, where: str) -> None:
    """Connect to ``address`` or start a local 2-CPU Ray, quietly; reuse a live one."""
    try:
        import ray
    except ImportError:
        raise RunError(
            "runner.engine is 'ray' but Ray is not installed",
            where=where,
            field="runner.engine",
            expected="ray[data]==2.60.0 importable",
            actual="import ray failed",
            fix="pip install 'audit[distributed]', or set runner.engine=local",
        ) from None
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "configure_logging": True,
    }
    with warnings.catch_warnings():
        # 2.60 warns about token authentication on every local start
        warnings.simplefilter("ignore")
        try:
            if address is None:
                with _worker_pythonpath():
                    ray.init(
                        num_cpus=LOCAL_NUM_CPUS,
                        _system_config={"preload_python_modules": list(WORKER_PRELOAD)},
                        **kwargs,
                    )
            else:
                ray.init(address=address, **kwargs)
        except Exception as exc:
            raise RunError(
                f"could not start or reach Ray: {type(exc).__name__}: {exc}",
                where=where,
                field="runner.ray_address",
                expected="unset (local Ray) or a reachable cluster address (ray://host:10001)",
                actual=repr(address),
                fix="check the address and that the cluster runs ray 2.60.0",
            ) from exc
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


@contextlib.contextmanager
def _worker_pythonpath() -> Iterator[None]:
    """``PYTHONPATH`` with this checkout's root first, while a local Ray starts.

    Local workers must import the same ``audit`` the driver runs (a worktree or a
    checkout may shadow an installed copy). The raylet copies the environment it is
    started with into every worker it spawns, so setting the path here reaches them
    all; a job-level ``runtime_env`` would too, but its workers no longer match the
    ones ``ray.init`` prestarts (those carry no runtime env), so every actor of
    every job then waited for a fresh Python process (docs/methods/scale.md, "Cost").
    """
    root = str(Path(__file__).resolve().parents[2])
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, old) if p)
    try:
        yield
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


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
) -> ScoreResult:
    """Score ``items`` on Ray Data; same contract as the local ``score_items``.

    Args:
        get_moderator: a picklable factory (e.g. :class:`ModeratorFactory`) called
            once inside each actor; never called when every item is cached.
        fingerprint: the moderator's fingerprint (hashed into the cache key).
        address: Ray cluster address; None starts a local 2-CPU instance.
        concurrency: actors in the pool; default one per CPU Ray reports.
        retry_dead_workers: let Ray restart a dead actor and retry its batch (its
            default); False fails the run instead, and a rerun resumes from the cache.

    Raises:
        RunError: Ray missing or unreachable, the moderator failing to build in an
            actor, or failures above ``error_budget`` × n.
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
        for out_pos, out, secs in _stream(
            get_moderator,
            items,
            unique_todo,
            batch_size,
            address,
            concurrency,
            retry_dead_workers,
            where,
        ):
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
    return finish_scoring(
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


def _stream(
    factory: Callable[[], Moderator],
    items: Sequence[Item],
    todo: list[int],
    batch_size: int,
    address: str | None,
    concurrency: int | None,
    retry: bool,
    where: str,
) -> Any:
    """Yield ``(positions, outputs, model_seconds)`` per batch as Ray finishes them."""
    ensure_ray(address, where)
    import pyarrow as pa
    import ray

    if concurrency is None:
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        concurrency = max(1, int(resources.get("CPU", 1)))
    # One row per batch (its positions and its items pickled together), and blocks
    # of a few rows per actor so the pool stays busy; a block is also the unit a dead
    # worker loses.
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    per_block = max(1, math.ceil(len(batches) / (concurrency * 4)))
    tables = []
    for start in range(0, len(batches), per_block):
        rows = batches[start : start + per_block]
        tables.append(
            pa.table(
                {
                    "pos": pa.array(rows, type=pa.list_(pa.int64())),
                    "items": pa.array(
                        [
                            pickle.dumps([items[i] for i in r], protocol=pickle.HIGHEST_PROTOCOL)
                            for r in rows
                        ],
                        type=pa.binary(),
                    ),
                }
            )
        )
    # A failed block (its actor killed with retries off, or out of retries) must not
    # abort the others: their results still stream back and are cached, and the
    # failed block's rows come back missing (see score_items).
    ray.data.DataContext.get_current().max_errored_blocks = -1
    no_retry: dict[str, Any] = {} if retry else {"max_restarts": 0, "max_task_retries": 0}
    # from_blocks takes the blocks as built, with their metadata computed here;
    # from_arrow runs one remote task per table for it, and those tasks need worker
    # processes of their own before the actors can start (docs/methods/scale.md).
    ds = ray.data.from_blocks(tables).map_batches(
        _ScoreActor,
        fn_constructor_args=(factory,),
        batch_size=1,  # one row = one batch of ``batch_size`` items
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=1,
        **no_retry,
    )
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            b: Any = batch  # a pyarrow.Table (Ray's return type is a union of formats)
            for pos, blob, secs in zip(
                b.column("pos").to_pylist(),
                b.column("outputs").to_pylist(),
                b.column("seconds").to_pylist(),
            ):
                outs: list[ModeratorOutput] = pickle.loads(blob)
                yield pos, outs, float(secs)
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
