"""LLM-judge scoring at production scale on a GPU (issue 3, acceptance, GPU part).

Model: a randomly initialised Llama-3-8B-shaped ``LlamaForCausalLM`` (hidden 4096,
32 layers, 32 query / 8 KV heads, SwiGLU 14336, vocab 128,256, RoPE θ 500k), bf16,
SDPA attention, built directly on the GPU (no checkpoint, no hub). Tokenizer: the
byte-level BPE of ``bench_judge.py`` trained here on the short_video_v1 texts and the
platform policy (ids < 32k of the 128k vocabulary; compute per token is unaffected).
Items: short_video_v1 ``test`` read straight from the suite's JSONL (no ``datasets``
needed on the GPU host).

(1) ``logprob`` throughput, ``llama_guard_3`` prompts, no prefix reuse: the judge's
    path (``HFBackend.next_token_probs``: tokenization, length bucketing, padding,
    host→device copies, label-probability extraction) against a bare transformers
    forward loop over the *same* token batches, pre-padded and already on the GPU
    (``model(input_ids, attention_mask, position_ids, logits_to_keep=1,
    use_cache=False)``). Tokens/s counts real prompt tokens (no padding) over
    wall time with ``cuda.synchronize``; best of ``--repeat`` interleaved runs.
    Goal: ≥ 0.9× the bare loop. The same call with prefix reuse is reported as
    effective tokens/s.
(2) prefix reuse on a ``--prefix-tokens`` (768) policy prefix with ``--item-tokens``
    (128) items, raw prompt: ``reuse_prefix=True`` vs ``False`` (goal ≥ 4×), plus a
    bare reuse loop (prefix KV computed once, broadcast to each batch) and its bare
    no-reuse loop for reference; max |P(unsafe) difference| between the two judge paths.
(3) ``logprob`` vs ``generate`` on the same items: llama_guard_3 logprob vs its
    verdict generation (``max_new_tokens`` 20), and platform_binary logprob vs the
    platform chain-of-thought prompt generating ``--cot-tokens`` (256) tokens; EOS
    disabled (random weights), greedy, prefix reuse on in both modes as in production.

Usage (GPU): ``python bench/bench_judge_gpu.py --shape 8b --device cuda``;
CPU smoke run of the same code: ``--shape tiny --device cpu --items 24 --repeat 1``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from _common import ROOT, write

SHAPES: dict[str, dict[str, Any]] = {
    "8b": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 8192,
        "rope_theta": 500000.0,
    },
    "tiny": {
        "hidden_size": 256,
        "intermediate_size": 704,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 32000,
        "max_position_embeddings": 8192,
        "rope_theta": 500000.0,
    },
}


def read_items(n: int) -> list[Any]:
    """short_video_v1 test items from the suite JSONL (same ids/fields as the loader)."""
    from audit.schema import TEXT_FIELDS, Item, content_hash

    rows = [
        json.loads(line)
        for line in (ROOT / "suites/short_video_v1/data/test.jsonl").read_text().splitlines()
        if line.strip()
    ]
    items = []
    for r in rows[:n]:
        fields = {k: r[k] for k in TEXT_FIELDS if r.get(k)}
        items.append(
            Item(
                id=r["id"],
                content_hash=content_hash(fields),
                fields=fields,
                context={"surface": r["surface"], "language": r["language"]},
            )
        )
    return items


def tokenizer(policy: Any, items: list[Any], max_len: int) -> Any:
    from bench_judge import build_tokenizer

    from audit.moderators.judge import prompts

    texts = [it.text() for it in read_items(10_000)]
    for c in policy.category_ids:
        cat = policy.category(c)
        texts.extend([cat.name, cat.definition, *cat.allowed, *cat.not_allowed])
    for t in ("llama_guard", "platform", "platform_binary"):
        texts.append(prompts.render(policy, items[0], template=t).prefix)
    texts.extend(["safe unsafe SAFE UNSAFE yes no"] * 50)
    return build_tokenizer(max_len, texts)


def build_model(shape: dict[str, Any], tok: Any, device: str, dtype: Any) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        **shape,
        initializer_range=0.02,
        tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa", dtype=dtype)
    finally:
        torch.set_default_dtype(prev)
    return model.eval()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def clock(fn: Any, device: str) -> tuple[float, Any]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def padded_batches(b: Any, rows: list[list[int]], batch_size: int) -> list[tuple[Any, ...]]:
    """The judge's own length buckets, left-padded, moved to the device up front."""
    import torch

    from audit.moderators._torch import length_batches

    pad = int(b._tokenizer().pad_token_id or 0)
    out = []
    for mb in length_batches(
        [len(r) for r in rows], max_batch=batch_size, max_tokens=batch_size * b.max_length
    ):
        sel = [rows[i] for i in mb]
        width = max(len(r) for r in sel)
        ids = torch.full((len(sel), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sel), width), dtype=torch.long)
        for i, r in enumerate(sel):
            ids[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        dev = b._device
        out.append((ids.to(dev), mask.to(dev), pos.to(dev)))
    return out


def bare_loop(model: Any, batches: list[tuple[Any, ...]]) -> Any:
    import torch

    last = None
    with torch.inference_mode():
        for ids, mask, pos in batches:
            last = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=pos,
                logits_to_keep=1,
                use_cache=False,
            ).logits[:, -1]
    return last


def bare_reuse_loop(model: Any, prefix: list[int], rows: list[list[int]], bs: int) -> Any:
    """Prefix KV once, broadcast per batch (equal-length items: no padding)."""
    import copy

    import torch

    dev = next(model.parameters()).device
    with torch.inference_mode():
        x = torch.tensor([prefix], device=dev)
        base = model(input_ids=x, use_cache=True).past_key_values
        last = None
        for s in range(0, len(rows), bs):
            chunk = torch.tensor(rows[s : s + bs], device=dev)
            n, w = chunk.shape
            cache = copy.copy(base)
            cache.layers = []
            for layer in base.layers:
                new = copy.copy(layer)
                new.keys = layer.keys.expand(n, *layer.keys.shape[1:])
                new.values = layer.values.expand(n, *layer.values.shape[1:])
                cache.layers.append(new)
            pos = torch.arange(len(prefix), len(prefix) + w, device=dev).expand(n, w)
            mask = torch.ones((n, len(prefix) + w), dtype=torch.long, device=dev)
            last = model(
                input_ids=chunk,
                attention_mask=mask,
                position_ids=pos,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1]
    return last


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), default="8b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--items", type=int, default=523)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--prefix-tokens", type=int, default=768)
    ap.add_argument("--item-tokens", type=int, default=128)
    ap.add_argument("--reuse-items", type=int, default=512)
    ap.add_argument("--gen-items", type=int, default=64)
    ap.add_argument("--cot-tokens", type=int, default=256)
    ap.add_argument("--name", default="judge_gpu")
    args = ap.parse_args()

    import torch

    from audit.moderators.judge import presets, prompts
    from audit.moderators.judge.backends.hf import HFBackend
    from audit.policy import load_policy

    dtype = getattr(torch, args.dtype)
    policy = load_policy("platform-v1")
    items = read_items(args.items)
    shape = SHAPES[args.shape]
    tok = tokenizer(policy, items, shape["max_position_embeddings"])
    t0 = time.perf_counter()
    model = build_model(shape, tok, args.device, dtype)
    sync(args.device)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())

    def backend(chat: bool) -> Any:
        return HFBackend.from_loaded(
            model,
            tok,
            name=f"random-llama-{args.shape}",
            max_length=shape["max_position_embeddings"],
            chat_template=chat,
        )

    def parts(template: str, its: list[Any]) -> tuple[str, list[str]]:
        ps = [prompts.render(policy, it, template=template) for it in its]
        return ps[0].prefix, [p.suffix for p in ps]

    def cands(preset: Any) -> dict[str, list[str]]:
        return {
            "unsafe": list(preset.label_tokens.positive),
            "safe": list(preset.label_tokens.negative),
        }

    def cold(b: Any, fn: Any) -> Any:
        def run() -> Any:
            b._prefix_cache = None
            return fn()

        return run

    results: dict[str, Any] = {}
    bs = args.batch_size

    # (1) throughput vs bare loop ---------------------------------------------------------
    lg = presets.get("llama_guard_3")
    b = backend(lg.chat_template)
    prefix, suffixes = parts(lg.template, items)
    _, rows, flags = b._split(prefix, suffixes, False)
    assert not any(flags)
    real_tokens = sum(len(r) for r in rows)
    batches = padded_batches(b, rows, bs)
    padded_tokens = sum(int(ids.numel()) for ids, _, _ in batches)

    def ours() -> Any:
        return b.next_token_probs(prefix, suffixes, cands(lg), batch_size=bs, reuse_prefix=False)

    bare = lambda: bare_loop(model, batches)  # noqa: E731
    ours_r = cold(b, lambda: b.next_token_probs(prefix, suffixes, cands(lg), batch_size=bs))
    ours(), bare()  # warm-up (kernels, allocator)
    t_ours, t_bare, t_reuse = [], [], []
    for _ in range(args.repeat):
        t_ours.append(clock(ours, args.device)[0])
        t_bare.append(clock(bare, args.device)[0])
        t_reuse.append(clock(ours_r, args.device)[0])
    results["throughput"] = {
        "preset": lg.name,
        "items": len(items),
        "batch_size": bs,
        "batches": len(batches),
        "real_prompt_tokens": real_tokens,
        "padded_tokens": padded_tokens,
        "mean_prompt_tokens": real_tokens / len(items),
        "judge_no_reuse_s": min(t_ours),
        "bare_loop_s": min(t_bare),
        "judge_tokens_per_s": real_tokens / min(t_ours),
        "bare_tokens_per_s": real_tokens / min(t_bare),
        "ratio_vs_bare": min(t_bare) / min(t_ours),
        "goal": ">= 0.9x the bare loop's tokens/s",
        "judge_with_reuse_s": min(t_reuse),
        "judge_with_reuse_effective_tokens_per_s": real_tokens / min(t_reuse),
        "runs_s": {"judge": t_ours, "bare": t_bare, "judge_reuse": t_reuse},
    }
    print(json.dumps(results["throughput"], indent=1), flush=True)

    # (2) prefix reuse: 768-token prefix, 128-token items ---------------------------------
    braw = backend(False)
    pol_ids = braw._ids(prefix * 4, special=False)
    pre_text = tok.decode(pol_ids[: args.prefix_tokens])
    pool = braw._ids(" ".join(it.text() for it in read_items(10_000)) * 4, special=False)
    step = max(1, (len(pool) - args.item_tokens) // max(1, args.reuse_items))
    sufs = [
        tok.decode(pool[i * step : i * step + args.item_tokens]) + "\nAnswer:"
        for i in range(args.reuse_items)
    ]
    pre_ids, _ = braw.encode(pre_text, sufs[0])
    enc = braw.encode_many(pre_text, sufs)
    item_lens = [len(r) for _, r in enc]
    c2 = cands(lg)
    reuse = cold(braw, lambda: braw.next_token_probs(pre_text, sufs, c2, batch_size=bs))
    none = lambda: braw.next_token_probs(pre_text, sufs, c2, batch_size=bs, reuse_prefix=False)  # noqa: E731
    # bare loops over equal-length items (trim to the shortest item)
    w = min(item_lens)
    eq_rows = [r[:w] for _, r in enc]
    bare_r = lambda: bare_reuse_loop(model, pre_ids, eq_rows, bs)  # noqa: E731
    bare_n_batches = [
        (ids, torch.ones_like(ids), torch.arange(ids.shape[1], device=ids.device).expand_as(ids))
        for ids in (
            torch.tensor([pre_ids + r for r in eq_rows[s : s + bs]], device=braw._device)
            for s in range(0, len(eq_rows), bs)
        )
    ]
    bare_n = lambda: bare_loop(model, bare_n_batches)  # noqa: E731
    reuse(), none(), bare_r(), bare_n()
    tr, tn, tbr, tbn = [], [], [], []
    s_r = s_n = None
    for _ in range(args.repeat):
        dt, s_r = clock(reuse, args.device)
        tr.append(dt)
        dt, s_n = clock(none, args.device)
        tn.append(dt)
        tbr.append(clock(bare_r, args.device)[0])
        tbn.append(clock(bare_n, args.device)[0])
    diff = max(abs(a["unsafe"] - c["unsafe"]) for a, c in zip(s_r, s_n))
    results["prefix_reuse"] = {
        "prefix_tokens": len(pre_ids),
        "mean_item_tokens": sum(item_lens) / len(item_lens),
        "items": len(sufs),
        "batch_size": bs,
        "reuse_s": min(tr),
        "no_reuse_s": min(tn),
        "speedup": min(tn) / min(tr),
        "goal": ">= 4x",
        "bare_reuse_s": min(tbr),
        "bare_no_reuse_s": min(tbn),
        "bare_speedup": min(tbn) / min(tbr),
        "bare_item_tokens": w,
        "max_abs_p_unsafe_diff": diff,
        "dtype_note": f"{args.dtype}: reuse and no-reuse run different kernel shapes",
        "runs_s": {"reuse": tr, "no_reuse": tn, "bare_reuse": tbr, "bare_no_reuse": tbn},
    }
    print(json.dumps(results["prefix_reuse"], indent=1), flush=True)

    # (3) logprob vs generate ---------------------------------------------------------------
    gen_items = items[: args.gen_items]

    def versus(lp_preset: str, gen_preset: str, budget: int) -> dict[str, Any]:
        lp_p, gen_p = presets.get(lp_preset), presets.get(gen_preset)
        blp, bgen = backend(lp_p.chat_template), backend(gen_p.chat_template)
        bgen._eos = set()
        p1, s1 = parts(lp_p.template, gen_items)
        p2, s2 = parts(gen_p.template, gen_items)
        score = cold(blp, lambda: blp.next_token_probs(p1, s1, cands(lp_p), batch_size=bs))
        t_lp = min(clock(score, args.device)[0], clock(score, args.device)[0])
        gen = cold(bgen, lambda: bgen.generate(p2, s2, max_new_tokens=budget, batch_size=bs))
        t_gen, gens = clock(gen, args.device)
        return {
            "logprob_preset": lp_preset,
            "generate_preset": gen_preset,
            "items": len(gen_items),
            "batch_size": bs,
            "max_new_tokens": budget,
            "mean_generated_tokens": sum(g[0].n_tokens for g in gens) / len(gens),
            "logprob_s": t_lp,
            "generate_s": t_gen,
            "speedup": t_gen / t_lp,
            "goal": ">= 10x",
        }

    lvg = {}
    for label, lp_preset, gen_preset, budget in (
        ("llama_guard_3_verdict", "llama_guard_3", "llama_guard_3", 20),
        ("platform_cot", "platform_binary", "platform_cot", args.cot_tokens),
    ):
        lvg[label] = versus(lp_preset, gen_preset, budget)
        print(label, json.dumps(lvg[label]), flush=True)
    results["logprob_vs_generate"] = lvg

    info: dict[str, Any] = {"shape": args.shape, **shape, "params": n_params, "build_s": build_s}
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
        a = torch.randn(8192, 8192, device=args.device, dtype=dtype)
        torch.matmul(a, a)
        sync(args.device)
        t0 = time.perf_counter()
        for _ in range(10):
            torch.matmul(a, a)
        sync(args.device)
        info["bf16_matmul_tflops"] = 10 * 2 * 8192**3 / (time.perf_counter() - t0) / 1e12
        info["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
    import transformers

    write(
        args.name,
        {
            "model": info,
            "device": args.device,
            "dtype": args.dtype,
            "transformers": transformers.__version__,
            "repeat": args.repeat,
            "timing": "best of repeat, interleaved, cuda.synchronize around each call",
            **results,
        },
    )


if __name__ == "__main__":
    main()
