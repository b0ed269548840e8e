"""The engine's local Ray session: worker preload, a warm task pool, fast limit refresh."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

pytest.importorskip("ray")

from audit.engine import ray_runner, ray_session
from audit.schema import Item, ModeratorOutput, content_hash


def _items(n: int) -> list[Item]:
    return [
        Item(f"i{k}", content_hash({"caption": f"t{k}"}), {"caption": f"t{k}"}) for k in range(n)
    ]


def test_limit_refresh_is_fast_inside_a_job_and_restored_after() -> None:
    """The pinned Ray Data keeps its limit-refresh interval where the engine expects it
    (an upgrade that moves it fails here, not silently in every job's first second)."""
    from ray.data._internal.execution.resource_manager import ResourceManager

    def interval() -> Any:
        return ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S

    before = interval()
    assert before == 1
    with ray_session.fast_limit_refresh():
        assert interval() == ray_session.LIMIT_REFRESH_S
    assert interval() == before
    with pytest.raises(KeyError), ray_session.fast_limit_refresh():
        raise KeyError("a job that fails")
    assert interval() == before


class PidLogger:
    """Logs the pid of the process that scores each batch."""

    categories: ClassVar[tuple[str, ...]] = ("hate",)
    kind: ClassVar[str] = "classifier"

    def __init__(self, log: Path) -> None:
        self.log = log

    def fingerprint(self) -> dict[str, Any]:
        return {"type": "pid_logger"}

    def close(self) -> None:
        pass

    def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
        with self.log.open("a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
        return [ModeratorOutput(scores={"hate": 0.5}) for _ in items]


class PidFactory:
    def __init__(self, log: Path) -> None:
        self.log = log

    def __call__(self) -> PidLogger:
        return PidLogger(self.log)


@pytest.mark.slow
def test_local_session_warms_its_task_pool_and_the_first_job_uses_it(
    ray_local: None, tmp_path: Path
) -> None:
    """A fresh local session on tasks starts one task worker per CPU before its first
    job, and that job runs on exactly those processes (docs/methods/scale.md, "Cost")."""
    import ray

    ray.shutdown()
    ray_session.ensure_ray(None, "t", "tasks")
    warm = ray_session.session_info()["warm_pids"]
    assert len(warm) == ray_session.LOCAL_NUM_CPUS
    log = tmp_path / "pids.log"
    res = ray_runner.score_items(
        PidFactory(log),
        {"type": "pid_logger"},
        _items(40),
        batch_size=4,
        cache=None,
        error_budget=0.0,
        where="t",
        workers="tasks",
    )
    assert res.n_errors == 0 and res.engine == {"name": "ray", "workers": "tasks", "address": None}
    used = {int(p) for p in log.read_text(encoding="utf-8").split()}
    assert used and used <= set(warm)
    # a second call on the same session does not warm again
    ray_session.ensure_ray(None, "t", "tasks")
    assert ray_session.session_info()["warm_pids"] == warm


def _loaded(names: list[str]) -> list[str]:
    return [m for m in names if m in sys.modules]


@pytest.mark.slow
def test_local_workers_preload_and_driver_env_restored(ray_local: None) -> None:
    """Local workers import Ray Data and audit as they start (WORKER_PRELOAD), and
    starting Ray left the driver's PYTHONPATH as it was."""
    import ray

    names = list(ray_session.WORKER_PRELOAD)
    got = ray.get(ray.remote(num_cpus=0)(_loaded).remote(names))
    assert got == names
    root = str(Path(ray_session.__file__).resolve().parents[2])
    before = os.environ.get("PYTHONPATH")
    with ray_session.worker_pythonpath():
        assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == root
    assert os.environ.get("PYTHONPATH") == before
