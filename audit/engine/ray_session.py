"""The local Ray session of the Ray Data engine (``runner.engine: ray``).

One owner for starting or reaching Ray: :func:`ensure_ray` connects to a cluster, or
starts a local 2-CPU instance whose workers import the same ``audit`` as the driver
and preload Ray Data. A local session is the engine's own: its task pool is warmed
the first time a job runs on tasks (Ray Data's session actors and one worker process
per CPU, :func:`_warm_task_pool`), and Ray Data re-reads its resource limits every
0.1 s instead of every 1 s during its jobs (:func:`fast_limit_refresh`). A cluster
session is left as Ray configures it. Why each piece: docs/methods/scale.md, "Cost".
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from audit.errors import RunError

Workers = Literal["actors", "tasks"]
"""Who runs the moderator: a Ray Data actor pool or Ray Data tasks."""

LOCAL_NUM_CPUS = 2
"""CPUs a local (addressless) Ray instance is started with: laptop-sized."""


WORKER_PRELOAD = (
    "ray.data",
    "ray.data._internal.execution.operators.actor_pool_map_operator",
    "audit.engine.ray_runner",
    "audit.engine.ray_session",
    "audit.moderators",
)
"""Modules a local Ray worker imports as it starts, before it takes work."""


_SESSION: dict[str, Any] = {}
"""The local Ray session this module started: its job id and, once its task pool is
warm, the pool's pids. Empty when none is, or when Ray was started by someone else."""

LIMIT_REFRESH_S = 0.1
"""How often Ray Data re-reads its resource limits during a local job (Ray's 1 s default
let a job run one task for its first second: docs/methods/scale.md, "Cost")."""


def own_local_session() -> bool:
    """Whether the live Ray session is the local one :func:`ensure_ray` started."""
    import ray

    return bool(_SESSION) and _SESSION.get("job") == ray.get_runtime_context().get_job_id()


@contextlib.contextmanager
def fast_limit_refresh() -> Iterator[None]:
    """Ray Data refreshes its resource limits every ``LIMIT_REFRESH_S`` while inside.

    Ray Data 2.60 reads the cluster's size from its autoscaling coordinator with an
    asynchronous call and refreshes the answer at most once a second, so the first
    refresh of every job sees no resources and admits a single task: on two CPUs the
    second worker idled for a second of every job. The refresh interval is a class
    attribute of Ray Data's resource manager (a private module of the pinned Ray;
    ``tests/engine/test_ray_session.py`` fails if it moves); when it is absent nothing
    changes. The old value comes back when the job ends.
    """
    try:
        from ray.data._internal.execution.resource_manager import ResourceManager
    except ImportError:  # a Ray without that module: keep its behaviour
        yield
        return
    name = "GLOBAL_LIMITS_UPDATE_INTERVAL_S"
    old = getattr(ResourceManager, name, None)
    if not isinstance(old, int | float):
        yield
        return
    setattr(ResourceManager, name, min(float(old), LIMIT_REFRESH_S))
    try:
        yield
    finally:
        setattr(ResourceManager, name, old)


WARM_WAIT_S = 30.0
"""Longest a warm-up task waits for the pool's other workers to check in: a fresh worker
took up to 8 s on a loaded 2-core host; past this the warm-up ends with fewer workers
(a CPU held by something else in the session), which only costs the first job speed."""


def _warm_task(batch: Any, rendezvous: str, cpus: int) -> Any:
    """Warm-up UDF: checks in (a file named by its pid in ``rendezvous``, a local
    folder) and holds its CPU until ``cpus`` distinct workers have, so the pool's tasks
    run side by side in one process per CPU; returns the worker's pid."""
    import pyarrow as pa

    folder = Path(rendezvous)
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + WARM_WAIT_S
    while len(os.listdir(folder)) < cpus and time.monotonic() < deadline:
        time.sleep(0.02)
    return pa.table({"pid": [os.getpid()] * batch.num_rows})


def _warm_task_pool(cpus: int) -> list[int]:
    """Start what every task job of a local session needs, once: Ray Data's session
    actors (stats, autoscaling coordinator), which take the workers ``ray.init``
    prestarted, and one task worker process per CPU, which later jobs reuse.

    Without it a session's first job paid for all of them (about 7 s on two cores,
    docs/methods/scale.md); with it that cost is part of the session start, like
    ``ray.init``'s own prestarted workers. A failure here only costs speed.
    """
    import tempfile

    import pyarrow as pa
    import ray

    try:
        with fast_limit_refresh(), tempfile.TemporaryDirectory(prefix="audit-ray-warm-") as tmp:
            ds = ray.data.from_blocks([pa.table({"k": [i]}) for i in range(cpus)])
            ds = ds.map_batches(
                _warm_task,
                fn_args=(tmp, cpus),
                batch_size=None,
                batch_format="pyarrow",
                num_cpus=1,
                compute=ray.data.TaskPoolStrategy(size=cpus),
            )
            batches = ds.iter_batches(batch_size=None, batch_format="pyarrow")
            return sorted({p for b in batches for p in b.column("pid").to_pylist()})
    except Exception as exc:  # speed only: the job starts its own workers
        logging.getLogger(__name__).warning(
            "warming the local Ray task pool failed (%s: %s); jobs start their own workers",
            type(exc).__name__,
            exc,
        )
        return []


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


def ensure_ray(address: str | None, where: str, workers: Workers | None = None) -> None:
    """Connect to ``address`` or start a local 2-CPU Ray, quietly; reuse a live one.

    ``workers="tasks"`` on the local session this function started also warms its task
    pool, once per session (:func:`_warm_task_pool`).
    """
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
    if not ray.is_initialized():
        _start_ray(address, where)
    if workers == "tasks" and own_local_session() and "warm_pids" not in _SESSION:
        _SESSION["warm_pids"] = _warm_task_pool(LOCAL_NUM_CPUS)


def _start_ray(address: str | None, where: str) -> None:
    import ray

    _SESSION.clear()
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
                with worker_pythonpath():
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
    if address is None:
        _SESSION["job"] = ray.get_runtime_context().get_job_id()


@contextlib.contextmanager
def worker_pythonpath() -> Iterator[None]:
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


def session_info() -> dict[str, Any]:
    """A copy of what this module knows of the local session it started (``job``, and
    ``warm_pids`` once its task pool is warm); empty when it started none."""
    return dict(_SESSION)
