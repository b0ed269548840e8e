"""Ray Data engine vs the single-process runner (issue 12, item 4).

Both engines score the same ``--n`` items (default 100k: the short_video_v1 test
split repeated with a suffix so every text is distinct) with the packaged
``profanity_baseline`` moderator, batch size 512, no cache, in one run. Ray runs in
local mode with 2 CPUs (two actors). Reported: wall times (Ray with and without the
``ray.init`` start-up), their ratio, and whether every prediction is identical.
Goal in the issue: Ray ≤ 1.3× the single-process wall time.

Usage: ``.venv/bin/python bench/bench_ray.py``; writes bench/results/ray.json.
"""

from __future__ import annotations

import argparse
import time

from _common import write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=512)
    args = ap.parse_args()

    import ray

    from audit.engine import ray_runner
    from audit.engine.runner import score_items
    from audit.moderators import MODERATORS
    from audit.policy import load_policy
    from audit.schema import Item, content_hash
    from audit.suites import load_suite, suite_items

    policy = load_policy("platform-v1")
    base = suite_items(load_suite("short_video_v1", policy, split="test"))
    items: list[Item] = []
    r = 0
    while len(items) < args.n:
        for it in base[: args.n - len(items)]:
            fields = {k: f"{v} #{r}" for k, v in it.fields.items()}
            items.append(Item(f"{it.id}-{r}", content_hash(fields), fields, None, it.context))
        r += 1
    params = {"categories": ["hate", "harassment"]}
    cls = MODERATORS.get("profanity_baseline")
    mod = cls(cls.Params.model_validate(params), policy)
    fp = mod.fingerprint()
    kw = {"batch_size": args.batch_size, "cache": None, "error_budget": 0.0}

    t0 = time.perf_counter()
    local = score_items(lambda: mod, fp, items, where="local", **kw)  # type: ignore[arg-type]
    local_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ray_runner.ensure_ray(None, "bench")
    init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    dist = ray_runner.score_items(
        ray_runner.ModeratorFactory("profanity_baseline", params, policy),
        fp,
        items,
        where="ray",
        **kw,  # type: ignore[arg-type]
    )
    ray_s = time.perf_counter() - t0
    ray.shutdown()

    same = [o.to_json() for o in local.outputs] == [o.to_json() for o in dist.outputs]
    write(
        "ray",
        {
            "items": len(items),
            "moderator": "profanity_baseline",
            "batch_size": args.batch_size,
            "ray_num_cpus": ray_runner.LOCAL_NUM_CPUS,
            "versions": ray_runner.ray_versions(),
            "single_process_s": round(local_s, 3),
            "ray_init_s": round(init_s, 3),
            "ray_scoring_s": round(ray_s, 3),
            "ratio_ray_over_single": round(ray_s / local_s, 3),
            "ratio_incl_init": round((ray_s + init_s) / local_s, 3),
            "goal_ratio_at_most": 1.3,
            "identical_predictions": same,
            "errors": {"local": local.n_errors, "ray": dist.n_errors},
        },
    )


if __name__ == "__main__":
    main()
