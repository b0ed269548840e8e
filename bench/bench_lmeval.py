"""Label log-likelihoods: ``HFBackend.next_token_probs`` vs lm-evaluation-harness (issue 3).

The same saved model (``bench_judge.build_model``: random-weight Llama, hidden 512,
8 layers, 8 heads, vocab 32,000, BPE tokenizer trained on short_video_v1 + policy text)
and the same prompts (the ``llama_guard_3`` preset over short_video_v1 test items) are
scored by

* ours: ``HFBackend.next_token_probs`` with candidates ``" unsafe"`` / ``" safe"`` (one
  forward pass per item, the policy prefix's KV cache computed once), in this venv;
  the raw log-probability of a candidate is ``log(p_label * _raw_total)``;
* lm-eval: ``HFLM.loglikelihood`` on ``(context, continuation)`` pairs with
  ``context`` = the whole prompt and ``continuation`` = ``" unsafe"`` / ``" safe"``, in a
  separate venv (``--lmeval-python``, default ``/tmp/lmeval-venv/bin/python``) run as a
  subprocess over the saved model directory and a JSON file of prompts.

Same semantics: both continuations are single tokens (checked), both sides prepend BOS
(``add_bos_token=True`` for lm-eval) and the context token ids are compared. The
rendered Llama Guard prompt ends in ``"\\n\\n"``; lm-eval moves trailing whitespace of a
context into the continuation (which would make it two tokens), so the prompts used by
both sides here have their trailing whitespace stripped. Times exclude model loading;
both sides use float32 on the CPU, the same batch size and the same torch thread count.
Usage: ``.venv/bin/python bench/bench_lmeval.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import timed, write

LMEVAL_SIDE = r"""
import json, sys, time
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
import lm_eval

cfg = json.load(open(sys.argv[1]))
torch.set_num_threads(cfg["threads"])
lm = HFLM(pretrained=cfg["model"], backend="causal", device=cfg["device"], dtype=cfg["dtype"],
          batch_size=cfg["batch_size"], add_bos_token=True, max_length=cfg["max_length"])
reqs = [Instance(request_type="loglikelihood", doc={}, arguments=(c, k), idx=i)
        for i, (c, k) in enumerate((c, k) for c in cfg["prompts"] for k in cfg["continuations"])]
checks = []
for c in cfg["prompts"]:
    for k in cfg["continuations"]:
        ctx, cont = lm._encode_pair(c, k)
        checks.append({"ctx_len": len(ctx), "cont": cont, "ctx_tail": ctx[-8:], "ctx_head": ctx[:4]})
lm.loglikelihood(reqs[:2], disable_tqdm=True)  # warm-up
best, out = float("inf"), None
for _ in range(cfg["repeat"]):
    t0 = time.perf_counter()
    out = lm.loglikelihood(reqs, disable_tqdm=True)
    best = min(best, time.perf_counter() - t0)
json.dump({"seconds": best, "loglik": [float(x[0]) for x in out], "checks": checks,
           "version": getattr(lm_eval, "__version__", None), "torch": torch.__version__,
           "threads": torch.get_num_threads()}, open(sys.argv[2], "w"))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads, both sides (0: torch default)"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--lmeval-python", default="/tmp/lmeval-venv/bin/python")
    args = ap.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from bench_judge import SHAPE, backend, build_model, cold, items_and_policy, prompt_parts

    from audit.moderators.judge import presets

    lg = presets.get("llama_guard_3")
    conts = [" unsafe", " safe"]
    cands = {"unsafe": [conts[0]], "safe": [conts[1]]}
    policy, items = items_and_policy(args.items)
    prefix, suffixes = prompt_parts(policy, items, lg.template)
    suffixes = [s.rstrip() for s in suffixes]
    prompts = [prefix + s for s in suffixes]

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model_dir = build_model(tmp_path / "lm")
        b = backend(model_dir, args, chat_template=lg.chat_template)
        ours_ctx = [sum(map(len, b.encode(prefix, s))) for s in suffixes]
        ours_ids = [b.encode(prefix, s) for s in suffixes]
        cont_ids = [b._ids(k, special=False) for k in conts]
        assert all(len(c) == 1 for c in cont_ids), cont_ids
        b.next_token_probs(prefix, suffixes[:2], cands, batch_size=2)  # warm-up
        t_ours, res = timed(
            cold(
                b, lambda: b.next_token_probs(prefix, suffixes, cands, batch_size=args.batch_size)
            ),
            args.repeat,
        )
        ours = [[math.log(r[lab] * r["_raw_total"]) for lab in ("unsafe", "safe")] for r in res]

        cfg = {
            "model": str(model_dir),
            "device": args.device,
            "dtype": args.dtype,
            "batch_size": args.batch_size,
            "max_length": SHAPE["max_position_embeddings"],
            "threads": torch.get_num_threads(),
            "repeat": args.repeat,
            "prompts": prompts,
            "continuations": conts,
        }
        (tmp_path / "cfg.json").write_text(json.dumps(cfg), encoding="utf-8")
        (tmp_path / "side.py").write_text(LMEVAL_SIDE, encoding="utf-8")
        side = [str(tmp_path / n) for n in ("side.py", "cfg.json", "out.json")]
        proc = subprocess.run(
            [args.lmeval_python, *side],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            sys.exit(f"lm-eval side failed:\n{proc.stderr[-4000:]}")
        theirs = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))

    ll = theirs["loglik"]
    checks = theirs["checks"]
    same_tokens = all(
        ch["ctx_len"] == ours_ctx[i // 2]
        and ch["cont"] == cont_ids[i % 2]
        and ch["ctx_tail"] == (ours_ids[i // 2][0] + ours_ids[i // 2][1])[-8:]
        and ch["ctx_head"] == (ours_ids[i // 2][0] + ours_ids[i // 2][1])[:4]
        for i, ch in enumerate(checks)
    )
    diff = max(abs(ours[i][k] - ll[2 * i + k]) for i in range(len(ours)) for k in (0, 1))
    write(
        "lmeval",
        {
            "model": {
                **SHAPE,
                "tokenizer_vocab": len(b._tokenizer()),
                "weights": "random (seed 0)",
            },
            "preset": lg.name,
            "prompts": len(prompts),
            "continuations": conts,
            "mean_prompt_tokens": sum(ours_ctx) / len(ours_ctx),
            "prefix_tokens": len(ours_ids[0][0]),
            "device": args.device,
            "dtype": args.dtype,
            "batch_size": args.batch_size,
            "repeat": args.repeat,
            "ours_s": round(t_ours, 4),
            "lmeval_s": round(theirs["seconds"], 4),
            "speedup": round(theirs["seconds"] / t_ours, 2),
            "goal": ">= 1.5x",
            "max_abs_logprob_diff": diff,
            "logprob_diff_goal": "<= 1e-4",
            "same_tokens": same_tokens,
            "single_token_continuations": all(len(ch["cont"]) == 1 for ch in checks),
            "lm_eval": {
                "version": theirs["version"],
                "torch": theirs["torch"],
                "threads": theirs["threads"],
                "api": "HFLM.loglikelihood, backend=causal, add_bos_token=True, logits_cache",
            },
            "notes": (
                "trailing whitespace of the rendered prompt stripped on both sides; "
                "best of repeat per side; one torch thread per side by default (the CPU "
                "host is shared, so thread oversubscription made 2-thread timings noisy)"
            ),
        },
    )


if __name__ == "__main__":
    main()
