"""Ray Data engine: same predictions and cache as the local runner, resumable after a kill."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

pytest.importorskip("ray")

from audit.engine import ray_runner
from audit.engine.cache import PredictionCache, fingerprint_hash
from audit.engine.runner import score_items
from audit.errors import RunError
from audit.moderators import MODERATORS
from audit.policy import load_policy
from audit.schema import Item, ModeratorOutput, content_hash
from audit.suites import load_suite, suite_items


class KillOnce:
    """Fake moderator: logs every item it scores; dies (os._exit) on ``boom`` once."""

    categories: ClassVar[tuple[str, ...]] = ("hate",)
    kind: ClassVar[str] = "classifier"

    def __init__(self, log: Path, marker: Path) -> None:
        self.log = log
        self.marker = marker

    def fingerprint(self) -> dict[str, Any]:
        return {"type": "kill_once"}

    def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
        if any(it.id == "boom" for it in items) and not self.marker.exists():
            self.marker.write_text("killed once", encoding="utf-8")
            os._exit(1)  # a worker dying mid-batch, with no Python cleanup
        with self.log.open("a", encoding="utf-8") as f:
            f.write("".join(f"{it.id}\n" for it in items))
        return [ModeratorOutput(scores={"hate": (len(it.text()) % 10) / 10}) for it in items]

    def close(self) -> None:
        pass


class KillOnceFactory:
    def __init__(self, log: Path, marker: Path) -> None:
        self.log, self.marker = log, marker

    def __call__(self) -> KillOnce:
        return KillOnce(self.log, self.marker)


def _profanity() -> tuple[Any, Any, Any]:
    policy = load_policy("platform-v1")
    params = {"categories": ["hate", "harassment"]}
    cls = MODERATORS.get("profanity_baseline")
    mod = cls(cls.Params.model_validate(params), policy)
    return policy, params, mod


def test_fully_cached_run_never_starts_ray(tmp_path: Path) -> None:
    """Fast: when the cache holds every item, no Ray and no moderator are needed."""
    import ray

    items = [
        Item(f"i{k}", content_hash({"caption": f"t{k}"}), {"caption": f"t{k}"}) for k in range(5)
    ]
    cache = PredictionCache(tmp_path / "c.sqlite")
    fp = {"type": "x"}
    local = score_items(
        lambda: KillOnce(tmp_path / "log", tmp_path / "m"),
        fp,
        items,
        batch_size=2,
        cache=cache,
        error_budget=0.0,
        where="t",
    )

    def never() -> Any:
        raise AssertionError("moderator built although every item was cached")

    was_up = ray.is_initialized()
    out = ray_runner.score_items(
        never, fp, items, batch_size=2, cache=cache, error_budget=0.0, where="t"
    )
    assert out.cached.all() and out.batches == 0
    assert out.engine == {"name": "ray", "workers": None, "address": None}
    assert [o.scores for o in out.outputs] == [o.scores for o in local.outputs]
    assert ray.is_initialized() == was_up
    cache.close()


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["actors", "tasks"])
def test_same_predictions_as_local_engine(ray_local: None, tmp_path: Path, workers: Any) -> None:
    policy, params, mod = _profanity()
    items = suite_items(load_suite("short_video_v1", policy, split="test"))
    fp = mod.fingerprint()
    local = score_items(
        lambda: mod, fp, items, batch_size=64, cache=None, error_budget=0.0, where="local"
    )
    cache = PredictionCache(tmp_path / "ray.sqlite")
    seen: list[int] = []
    dist = ray_runner.score_items(
        ray_runner.ModeratorFactory("profanity_baseline", params, policy),
        fp,
        items,
        batch_size=64,
        cache=cache,
        error_budget=0.0,
        where="ray",
        progress=seen.append,
        workers=workers,
    )
    assert len(dist.outputs) == len(items) and sum(seen) == len(items)
    assert [o.to_json() for o in dist.outputs] == [o.to_json() for o in local.outputs]
    assert not dist.cached.any() and dist.n_errors == 0
    # results were written back under the local engine's keys
    again = score_items(
        lambda: pytest.fail("rescored"),  # type: ignore[arg-type,return-value]
        fp,
        items,
        batch_size=64,
        cache=cache,
        error_budget=0.0,
        where="local",
    )
    assert again.cached.all()
    assert [o.to_json() for o in again.outputs] == [o.to_json() for o in local.outputs]
    cache.close()


def _kill_items() -> list[Item]:
    ids = [f"a{k:03d}" for k in range(60)] + ["boom"] + [f"b{k:03d}" for k in range(60)]
    return [Item(i, content_hash({"caption": f"text {i}"}), {"caption": f"text {i}"}) for i in ids]


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["actors", "tasks"])
@pytest.mark.parametrize("retry", [False, True], ids=["run-fails", "ray-retries"])
def test_killed_worker_loses_nothing_on_rerun(
    ray_local: None, tmp_path: Path, retry: bool, workers: Any
) -> None:
    """A worker os._exit()s mid-batch once; nothing is lost and nothing cached is rescored.

    Without retries the first run fails (what a lost node looks like); with Ray's
    retries it finishes. Either way the rerun completes from the cache.
    """
    items = _kill_items()
    log, marker = tmp_path / "scored.log", tmp_path / "marker"
    cache = PredictionCache(tmp_path / "c.sqlite")
    fp = {"type": "kill_once"}
    kw: dict[str, Any] = {
        "batch_size": 8,
        "cache": cache,
        "error_budget": 0.0,
        "where": "t",
        "workers": workers,
    }
    factory = KillOnceFactory(log, marker)
    if retry:
        first_res = ray_runner.score_items(factory, fp, items, **kw)
        assert first_res.n_errors == 0
    else:
        with pytest.raises(RunError, match="error budget exceeded"):
            ray_runner.score_items(factory, fp, items, retry_dead_workers=False, **kw)
    assert marker.exists(), "the scripted worker kill did not happen"
    first = log.read_text(encoding="utf-8").split() if log.exists() else []
    hit = cache.get_many(fingerprint_hash(fp), (it.content_hash for it in items))
    cached_ids = {it.id for it in items if it.content_hash in hit}
    assert cached_ids and cached_ids <= set(first)
    assert ("boom" in cached_ids) == retry

    res = ray_runner.score_items(factory, fp, items, **kw)
    second = log.read_text(encoding="utf-8").split()[len(first) :]
    assert res.n_errors == 0
    assert set(second).isdisjoint(cached_ids), "items cached by the first run were rescored"
    assert cached_ids | set(second) == {it.id for it in items}
    assert int(res.cached.sum()) == len(cached_ids)
    expected = [{"hate": (len(it.text()) % 10) / 10} for it in items]
    assert [o.scores for o in res.outputs] == expected
    cache.close()


class CountingFactory:
    """Builds a KillOnce that never dies, logging one line per build."""

    def __init__(self, builds: Path, tag: str) -> None:
        self.builds, self.tag = builds, tag

    def __call__(self) -> KillOnce:
        with self.builds.open("a", encoding="utf-8") as f:
            f.write(f"{self.tag}:{os.getpid()}\n")
        return KillOnce(self.builds.with_suffix(".scored"), self.builds)  # marker exists


class BrokenFactory:
    def __call__(self) -> KillOnce:
        raise ValueError("no such checkpoint: /nowhere")


def _builds(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split() if path.exists() else []


@pytest.mark.slow
def test_task_workers_keep_their_moderator_across_jobs(ray_local: None, tmp_path: Path) -> None:
    """workers="tasks": a later job with the same recipe builds no moderator; another
    recipe (another factory state) builds its own."""
    builds = tmp_path / "builds.log"
    builds.write_text("", encoding="utf-8")  # also the KillOnce marker: nobody dies
    kw: dict[str, Any] = {"batch_size": 4, "cache": None, "error_budget": 0.0, "where": "t"}
    items = _kill_items()[:60]
    fp = {"type": "kill_once"}
    first = ray_runner.score_items(CountingFactory(builds, "a"), fp, items, workers="tasks", **kw)
    after_first = _builds(builds)
    assert 1 <= len(after_first) <= 2  # at most one per worker process (2 CPUs), not per block
    second = ray_runner.score_items(CountingFactory(builds, "a"), fp, items, workers="tasks", **kw)
    # a process that built the recipe never builds it again (a job's blocks may land on
    # a worker the first job did not use: that one builds once)
    after_second = _builds(builds)
    assert len(after_second) == len(set(after_second)), "a worker rebuilt the moderator"
    assert len(after_second) <= 2
    ray_runner.score_items(CountingFactory(builds, "b"), fp, items, workers="tasks", **kw)
    assert any(b.startswith("b:") for b in _builds(builds))
    assert [o.scores for o in second.outputs] == [o.scores for o in first.outputs]


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["actors", "tasks"])
def test_moderator_that_cannot_be_built_fails_the_run(
    ray_local: None, tmp_path: Path, workers: Any
) -> None:
    with pytest.raises(RunError) as err:
        ray_runner.score_items(
            BrokenFactory(),
            {"type": "broken"},
            _kill_items()[:10],
            batch_size=4,
            cache=None,
            error_budget=0.0,
            where="t",
            workers=workers,
        )
    msg = err.value.render()
    if workers == "tasks":  # the worker's own message reaches the driver
        assert "could not be built" in msg and "no such checkpoint: /nowhere" in msg
    else:  # Ray Data fails the job on the dead constructor (the cause is in the worker log)
        assert "the Ray job failed" in msg and "creation task" in msg


def test_auto_workers_are_actors_for_judges_and_tasks_for_the_rest() -> None:
    assert ray_runner.resolve_workers("auto", "llm") == "actors"
    assert ray_runner.resolve_workers("auto", "classifier") == "tasks"
    assert ray_runner.resolve_workers("actors", "classifier") == "actors"
    assert ray_runner.resolve_workers("tasks", "llm") == "tasks"
    with pytest.raises(ValueError, match="'auto', 'actors' or 'tasks'"):
        ray_runner.resolve_workers("threads", "classifier")


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "ran"), [("auto", "tasks"), ("actors", "actors")])
def test_audit_run_on_the_ray_engine_matches_the_local_engine(
    ray_local: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str, ran: str
) -> None:
    """`audit run --set runner.engine=ray --set runner.ray_workers=...` end to end: the
    config setting reaches the engine (``auto`` runs a classifier on tasks, and the
    record says so), and the predictions files equal the local run's."""
    import pandas as pd

    from tests.helpers.cli import run_cli
    from tests.helpers.suites import base_config, write_config

    cfg = base_config(
        Path("short_video_v1"),
        tmp_path / "runs",
        suites=[{"name": "short_video_v1", "split": "test"}],
        moderators=[
            {
                "name": "profanity",
                "type": "profanity_baseline",
                "params": {"categories": ["hate", "harassment"]},
                "batch_size": 64,
            }
        ],
    )
    cfg["runner"]["cache"] = False
    path = write_config(tmp_path / "run.yaml", cfg)
    frames = {}
    for engine in ("local", "ray"):
        extra = ["--set", f"runner.engine={engine}", "--set", f"runner.ray_workers={workers}"]
        r = run_cli(capsys, "run", str(path), "--no-mlflow", "--quiet", *extra)
        assert r.code == 0, r.err
        (rdir,) = [
            d
            for d in (tmp_path / "runs").iterdir()
            if d.is_dir() and d.name not in frames and d.name != "cache"
        ]
        frames[rdir.name] = pd.read_parquet(next((rdir / "predictions").glob("*.parquet")))
        import json

        rec = json.loads((rdir / "record.json").read_text(encoding="utf-8"))
        assert rec["config"]["runner"]["engine"] == engine
        assert rec["config"]["runner"]["ray_workers"] == workers
        (entry,) = rec["results"]
        want = {"name": "local"} if engine == "local" else {"name": "ray", "workers": ran}
        assert {k: entry["engine"][k] for k in want} == want
    local, ray_df = frames.values()
    pd.testing.assert_frame_equal(local.reset_index(drop=True), ray_df.reset_index(drop=True))
