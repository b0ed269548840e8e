"""Ray Data engine vs the single-process runner (issue 12, item 4).

Both engines score the same items (the short_video_v1 test split repeated with a
suffix so every text is distinct) with the packaged ``profanity_baseline`` moderator,
batch size 512, no cache, in one run, at each size in ``--sizes`` (default 100k and
1M). Ray runs in local mode with 2 CPUs (two actors). Each engine pays its own model
load inside its timing (the local runner on its first batch, each actor in its
constructor / first batch), so the comparison is cold against cold.

Also measured in the same run: the *fixed* cost of one Ray Data actor-pool job (a
no-op UDF over 1,000 rows: actor start-up plus streaming-executor planning), which no
item count amortises within one job. Reported per size: wall times, the ratio Ray /
single-process, identical predictions; and the smallest size at which the ratio is
≤ the issue's 1.3× goal.

Usage: ``.venv/bin/python bench/bench_ray.py [--sizes 100000,1000000]``; writes
bench/results/ray.json.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from _common import write


class _NoOp:
    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"pos": batch["pos"]}


def fixed_overhead_s() -> float:
    """Wall time of a no-op actor-pool ``map_batches`` job over 1,000 rows."""
    import pyarrow as pa
    import ray

    t0 = time.perf_counter()
    ds = ray.data.from_arrow(pa.table({"pos": pa.array(range(1000))})).map_batches(
        _NoOp,
        batch_size=512,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1,
    )
    n = sum(len(b["pos"]) for b in ds.iter_batches(batch_size=None, batch_format="numpy"))
    assert n == 1000
    return time.perf_counter() - t0


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


def one_size(n: int, batch_size: int) -> dict[str, Any]:
    from audit.engine import ray_runner
    from audit.engine.runner import score_items
    from audit.moderators import MODERATORS
    from audit.policy import load_policy

    policy = load_policy("platform-v1")
    items = items_of(n)
    params = {"categories": ["hate", "harassment"]}
    cls = MODERATORS.get("profanity_baseline")
    kw: dict[str, Any] = {"batch_size": batch_size, "cache": None, "error_budget": 0.0}

    t0 = time.perf_counter()
    mod = cls(cls.Params.model_validate(params), policy)  # a fresh, cold moderator
    local = score_items(lambda: mod, mod.fingerprint(), items, where="local", **kw)
    local_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    dist = ray_runner.score_items(
        ray_runner.ModeratorFactory("profanity_baseline", params, policy),
        mod.fingerprint(),
        items,
        where="ray",
        **kw,
    )
    ray_s = time.perf_counter() - t0
    same = [o.to_json() for o in local.outputs] == [o.to_json() for o in dist.outputs]
    return {
        "items": n,
        "single_process_s": round(local_s, 3),
        "ray_scoring_s": round(ray_s, 3),
        "ratio_ray_over_single": round(ray_s / local_s, 3),
        "identical_predictions": same,
        "errors": {"local": local.n_errors, "ray": dist.n_errors},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--batch-size", type=int, default=512)
    args = ap.parse_args()

    import ray

    from audit.engine import ray_runner

    t0 = time.perf_counter()
    ray_runner.ensure_ray(None, "bench")
    init_s = time.perf_counter() - t0
    fixed = [fixed_overhead_s() for _ in range(3)]
    runs = [one_size(int(s), args.batch_size) for s in args.sizes.split(",")]
    ray.shutdown()
    goal = 1.3
    met = [r["items"] for r in runs if r["ratio_ray_over_single"] <= goal]
    write(
        "ray",
        {
            "moderator": "profanity_baseline",
            "batch_size": args.batch_size,
            "ray_num_cpus": ray_runner.LOCAL_NUM_CPUS,
            "versions": ray_runner.ray_versions(),
            "load_average_at_start": list(os.getloadavg()),
            "ray_init_s": round(init_s, 3),
            "fixed_job_overhead_s": [round(f, 3) for f in fixed],
            "sizes": runs,
            "goal_ratio_at_most": goal,
            "smallest_size_meeting_goal": min(met) if met else None,
            "identical_predictions": all(r["identical_predictions"] for r in runs),
        },
    )


if __name__ == "__main__":
    main()
