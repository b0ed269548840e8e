"""Ray Data engine vs the single-process runner (issue 12, item 4).

Both engines score the same items (the short_video_v1 test split repeated with a
suffix so every text is distinct) with the packaged ``profanity_baseline`` moderator,
batch size 512, no cache, in one run, at each size in ``--sizes`` (default 100k and
1M). Ray runs in local mode with 2 CPUs, with each ``workers`` mode of the engine: an
actor pool of two (the default) and Ray Data tasks on reused worker processes. Each engine pays its own model
load inside its timing (the local runner on its first batch, each actor in its first
batch), so the comparison is cold against cold.

What is timed and what is not. The session start (``ray.init`` with the worker
processes it prestarts and, for tasks, the engine's warm task pool: Ray Data's
session actors and one task worker per CPU) is paid once per CLI run however many
suites x moderators it scores, and a cluster is already up. It is timed
(``ray_session_start_s``) and kept out of the main ratio; ``ratio_with_session_start``
adds it back for a session's first job. A Ray *job* (one suite x moderator) is timed
in full: planning, actor or task start, model loads, transfers, result collection.
Each size is scored twice per mode:

- ``first_job``: the first job of a fresh session. Actors take the worker processes
  ``ray.init`` prestarted where Ray Data's session actors left any; tasks run on the
  warm pool's processes and load the moderator there.
- ``later_job``: the next job of the same session (the second pair of a CLI run):
  Ray never hands an actor a worker that ran something before, so both actors
  wait for fresh Python processes and load the moderator again; task workers are
  the same processes as in the first job, with the moderator still loaded. Its
  ``ratio_over_single_warm_rerun`` compares it with the single process's warm rerun,
  which is what the local engine's own second pair would cost.

Also measured in the same run, to decompose the fixed cost (``floor``): a no-op
actor-pool job (later job), a bare actor start in a fresh process, the moderator's
cold load in a fresh process, and the driver-side serialisation of the items and
outputs at each size.

Usage: ``.venv/bin/python bench/bench_ray.py [--sizes 100000,1000000]``; writes
bench/results/ray.json. Trust the figures only when ``load_average_at_start`` is
well under the core count (other jobs on the same 2 cores inflate the Ray side,
which runs three processes, more than the single process).
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import time
from typing import Any

from _common import ROOT, write

MODERATOR = "profanity_baseline"
PARAMS: dict[str, Any] = {"categories": ["hate", "harassment"]}


class _NoOp:
    def __call__(self, batch: Any) -> Any:
        return batch


def noop_job_s(rows: int = 1000) -> float:
    """Wall time of a no-op actor-pool ``map_batches`` job, built as the engine builds its
    own (``from_blocks``, two actors of one CPU each)."""
    import pyarrow as pa
    import ray

    t0 = time.perf_counter()
    blocks = [pa.table({"pos": pa.array(range(k, rows, 4))}) for k in range(4)]
    ds = ray.data.from_blocks(blocks).map_batches(
        _NoOp,
        batch_size=None,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1,
    )
    n = sum(b.num_rows for b in ds.iter_batches(batch_size=None, batch_format="pyarrow"))
    assert n == rows
    return time.perf_counter() - t0


def bare_actor_start_s() -> float:
    """Two plain actors (one CPU each) started in parallel until both answer: the
    fresh-process part of a later job (Python, ray, the preloaded modules)."""
    import ray

    @ray.remote(num_cpus=1)
    class Ping:
        def ping(self) -> int:
            return os.getpid()

    t0 = time.perf_counter()
    actors = [Ping.remote() for _ in range(2)]  # type: ignore[attr-defined]
    ray.get([a.ping.remote() for a in actors])
    s = time.perf_counter() - t0
    for a in actors:
        ray.kill(a)
    return s


def moderator_cold_load_s() -> float:
    """Build the moderator and score one item in a fresh Python process (what each
    actor pays once, on top of its process start)."""
    code = (
        "import time; t=time.perf_counter()\n"
        "from audit.moderators import MODERATORS\n"
        "from audit.policy import load_policy\n"
        "from audit.schema import Item\n"
        f"c=MODERATORS.get({MODERATOR!r})\n"
        f"m=c(c.Params.model_validate({PARAMS!r}), load_policy('platform-v1'))\n"
        "m.predict([Item('a', 'h', {'caption': 'hello there'})])\n"
        "print(time.perf_counter()-t)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def items_of(n: int) -> list[Any]:
    from audit.policy import load_policy
    from audit.schema import Item, content_hash
    from audit.suites import load_suite, suite_items

    base = suite_items(load_suite("short_video_v1", load_policy("platform-v1"), split="test"))
    out: list[Item] = []
    r = 0
    while len(out) < n:
        for it in base[: n - len(out)]:
            fields = {k: f"{v} #{r}" for k, v in it.fields.items()}
            out.append(Item(f"{it.id}-{r}", content_hash(fields), fields, None, it.context))
        r += 1
    return out


def driver_serialisation_s(items: list[Any], outputs: list[Any], batch_size: int) -> float:
    """What the Ray driver adds per item: pickling the items, unpickling the outputs."""
    t0 = time.perf_counter()
    for i in range(0, len(items), batch_size):
        pickle.loads(pickle.dumps(items[i : i + batch_size], protocol=pickle.HIGHEST_PROTOCOL))
        pickle.loads(pickle.dumps(outputs[i : i + batch_size], protocol=pickle.HIGHEST_PROTOCOL))
    return time.perf_counter() - t0


def ray_job(
    items: list[Any], fp: dict[str, Any], kw: dict[str, Any], workers: str
) -> tuple[float, Any]:
    from audit.engine import ray_runner
    from audit.policy import load_policy

    factory = ray_runner.ModeratorFactory(MODERATOR, PARAMS, load_policy("platform-v1"))
    t0 = time.perf_counter()
    res = ray_runner.score_items(factory, fp, items, where="ray", workers=workers, **kw)  # type: ignore[arg-type]
    return time.perf_counter() - t0, res


def fresh_session(workers: str) -> float:
    """Shut any Ray down and start the engine's local session as a job on ``workers``
    would (for tasks, with its warmed task pool); its wall time."""
    import ray

    from audit.engine import ray_session

    ray.shutdown()
    t0 = time.perf_counter()
    ray_session.ensure_ray(None, "bench", workers)  # type: ignore[arg-type]
    return time.perf_counter() - t0


def one_size(n: int, batch_size: int) -> dict[str, Any]:
    from audit.engine.runner import score_items
    from audit.moderators import MODERATORS
    from audit.policy import load_policy

    policy = load_policy("platform-v1")
    items = items_of(n)
    cls = MODERATORS.get(MODERATOR)
    kw: dict[str, Any] = {"batch_size": batch_size, "cache": None, "error_budget": 0.0}

    def single() -> tuple[float, Any]:
        t0 = time.perf_counter()
        mod = cls(cls.Params.model_validate(PARAMS), policy)  # a fresh, cold moderator
        res = score_items(lambda: mod, mod.fingerprint(), items, where="local", **kw)
        return time.perf_counter() - t0, res

    # Only the first single-process run is cold: afterwards this process has the
    # moderator's libraries imported, so the warm rerun after the Ray jobs is the
    # per-item part alone (the floor decomposition in docs/methods/scale.md).
    local_s, local = single()
    fp = {"type": MODERATOR, **PARAMS}
    want = [o.to_json() for o in local.outputs]
    row: dict[str, Any] = {
        "items": n,
        "single_process_s": round(local_s, 3),
        "single_process_model_s": round(local.model_seconds, 3),
    }
    for workers in ("actors", "tasks"):
        session_s = fresh_session(workers)
        per: dict[str, Any] = {"ray_session_start_s": round(session_s, 3)}
        for job in ("first_job", "later_job"):
            ray_s, dist = ray_job(items, fp, kw, workers)
            per[job] = {
                "ray_scoring_s": round(ray_s, 3),
                "ratio_ray_over_single": round(ray_s / local_s, 3),
                **(
                    {"ratio_with_session_start": round((session_s + ray_s) / local_s, 3)}
                    if job == "first_job"
                    else {}
                ),
                "worker_model_s_summed": round(dist.model_seconds, 3),
                "identical_predictions": [o.to_json() for o in dist.outputs] == want,
                "errors": {"local": local.n_errors, "ray": dist.n_errors},
            }
        row[workers] = per
    warm_s = single()[0]
    row["single_process_warm_rerun_s"] = round(warm_s, 3)
    for workers in ("actors", "tasks"):
        # a later job against a single process whose libraries are loaded too: the
        # local engine's own second pair of a run would be this warm
        later = row[workers]["later_job"]
        later["ratio_over_single_warm_rerun"] = round(later["ray_scoring_s"] / warm_s, 3)
    row["driver_serialisation_s"] = round(
        driver_serialisation_s(items, local.outputs, batch_size), 3
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--batch-size", type=int, default=512)
    args = ap.parse_args()

    import ray

    from audit.engine import ray_session

    load = list(os.getloadavg())
    runs = [one_size(int(s), args.batch_size) for s in args.sizes.split(",")]
    floor = {
        "noop_later_job_s": [round(noop_job_s(), 3) for _ in range(3)],
        "bare_two_actor_start_s": [round(bare_actor_start_s(), 3) for _ in range(2)],
        "moderator_cold_load_s": [round(moderator_cold_load_s(), 3) for _ in range(2)],
    }
    ray.shutdown()
    goal = 1.3
    write(
        "ray",
        {
            "moderator": MODERATOR,
            "batch_size": args.batch_size,
            "ray_num_cpus": ray_session.LOCAL_NUM_CPUS,
            "versions": ray_session.ray_versions(),
            "load_average_at_start": load,
            "load_average_at_end": list(os.getloadavg()),
            "sizes": runs,
            "floor": floor,
            "goal_ratio_at_most": goal,
            "goal_met": {
                f"{w}.{job}": [
                    r["items"] for r in runs if r[w][job]["ratio_ray_over_single"] <= goal
                ]
                for w in ("actors", "tasks")
                for job in ("first_job", "later_job")
            },
            "identical_predictions": all(
                r[w][j]["identical_predictions"]
                for r in runs
                for w in ("actors", "tasks")
                for j in ("first_job", "later_job")
            ),
        },
    )


if __name__ == "__main__":
    main()
