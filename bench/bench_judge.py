"""LLM-judge scoring benchmarks on the transformers backend (issue 3, acceptance).

Model: a randomly initialised but realistically shaped ``LlamaForCausalLM`` (hidden
512, 8 layers, 8 heads, SwiGLU 1408, vocab padded to 32,000) with a byte-level BPE
tokenizer trained here with ``tokenizers`` on the short_video_v1 texts and the
platform policy / judge prompt text (32k vocab cap), Llama-3 style turn markers and
chat template. Built in a temporary directory; nothing comes from the hub.

(1) ``logprob`` vs ``generate``: the same items (short_video_v1 test) and prompt (the
    ``llama_guard_3`` preset: ``llama_guard`` template, raw prompt, candidates
    ``unsafe``/``safe``). logprob = ``HFBackend.next_token_probs`` (one forward pass
    per item); generate = ``HFBackend.generate`` greedy with ``max_new_tokens`` 64 and
    EOS disabled (random weights rarely emit it; every item generates 64 tokens).
    Same batch size for both; both reuse the prefix KV cache as in production.
(2) prefix reuse vs none on the long ``platform_binary`` prompt (the full platform
    policy, one chat-template user turn): ``next_token_probs(reuse_prefix=True)`` vs
    ``False`` over the same items; ratio and max |score difference|.

Every timed call starts from a cold prefix cache (the backend memoises the last
prefix; it is cleared before each call), so the reuse path pays for the prefix once.
One torch thread by default (``--threads``): on a shared small CPU host, thread
oversubscription stalls many small decode-step ops and inflates the generate time.
Usage: ``.venv/bin/python bench/bench_judge.py [--device cuda --dtype bfloat16]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from _common import timed, write

#: model shape (recorded in the result file)
SHAPE: dict[str, Any] = {
    "arch": "LlamaForCausalLM",
    "hidden_size": 512,
    "intermediate_size": 1408,
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "vocab_size": 32000,
    "max_position_embeddings": 8192,
    "initializer_range": 0.1,
    "tie_word_embeddings": False,
}
VOCAB_CAP = 32000
SPECIALS = ["<s>", "</s>", "<pad>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def corpus() -> list[str]:
    """short_video_v1 texts (all splits) + the rendered judge prompts of every template."""
    from audit.moderators.judge import prompts
    from audit.policy import load_policy
    from audit.suites import load_suite, suite_items

    policy = load_policy("platform-v1")
    texts: list[str] = []
    items = []
    for split in ("train", "test"):
        items.extend(suite_items(load_suite("short_video_v1", policy, split=split)))
    texts.extend(it.text() for it in items)
    for c in policy.category_ids:
        cat = policy.category(c)
        texts.extend([cat.name, cat.definition, *cat.allowed, *cat.not_allowed])
    for t in ("llama_guard", "platform", "platform_binary", "wildguard"):
        texts.append(prompts.render(policy, items[0], template=t).prefix)
    # the verdict words, so that " safe" / " unsafe" are single tokens as in real vocabularies
    texts.extend(["safe unsafe SAFE UNSAFE yes no"] * 50)
    return texts


def build_tokenizer(model_max_length: int, texts: list[str] | None = None) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_CAP,
        min_frequency=2,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(corpus() if texts is None else texts, trainer=trainer)
    bos = tk.token_to_id("<s>")
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B:1", special_tokens=[("<s>", bos)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=SPECIALS[3:],
        model_max_length=model_max_length,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_model(out: Path, seed: int = 0) -> Path:
    """Write the benchmark model + tokenizer to ``out`` (save_pretrained)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(SHAPE["max_position_embeddings"])
    assert len(tok) <= SHAPE["vocab_size"]
    cfg = LlamaConfig(
        **{k: v for k, v in SHAPE.items() if k != "arch"},
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).eval().save_pretrained(out)
    tok.save_pretrained(out)
    return out


def items_and_policy(n: int) -> tuple[Any, list[Any]]:
    from audit.policy import load_policy
    from audit.suites import load_suite, suite_items

    policy = load_policy("platform-v1")
    return policy, suite_items(load_suite("short_video_v1", policy, split="test"))[:n]


def prompt_parts(policy: Any, items: list[Any], template: str) -> tuple[str, list[str]]:
    from audit.moderators.judge import prompts

    parts = [prompts.render(policy, it, template=template) for it in items]
    assert len({p.prefix for p in parts}) == 1
    return parts[0].prefix, [p.suffix for p in parts]


def backend(model_dir: Path, args: Any, *, chat_template: bool) -> Any:
    from audit.moderators.judge.backends.hf import HFBackend

    b = HFBackend(
        str(model_dir),
        dtype=args.dtype,
        device=args.device,
        max_length=SHAPE["max_position_embeddings"],
        chat_template=chat_template,
    )
    b.load()
    return b


def cold(b: Any, fn: Any) -> Any:
    """``fn`` wrapped so each call starts without the memoised prefix KV cache."""

    def run() -> Any:
        b._prefix_cache = None
        out = fn()
        if b._device and str(b._device).startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        return out

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--prefix-items", type=int, default=16, help="items for (2)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--cot-items", type=int, default=16, help="items for (3)")
    ap.add_argument("--cot-tokens", type=int, default=256, help="CoT budget for (3)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()

    import torch

    from audit.moderators.judge import presets

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    policy, items = items_and_policy(max(args.items, args.prefix_items))
    lg = presets.get("llama_guard_3")
    assert lg.label_tokens is not None
    cands = {"unsafe": list(lg.label_tokens.positive), "safe": list(lg.label_tokens.negative)}

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(Path(tmp) / "lm")

        # (1) logprob vs generate, llama_guard_3 preset prompt
        b = backend(model_dir, args, chat_template=lg.chat_template)
        b._eos = set()  # force no early stop (random weights; count every token)
        prefix, suffixes = prompt_parts(policy, items[: args.items], lg.template)
        pre_ids, _ = b.encode(prefix, suffixes[0])
        lens = [sum(map(len, b.encode(prefix, s))) for s in suffixes]
        b.next_token_probs(prefix, suffixes[:2], cands, batch_size=2)  # warm-up
        t_lp, _ = timed(
            cold(
                b, lambda: b.next_token_probs(prefix, suffixes, cands, batch_size=args.batch_size)
            ),
            args.repeat,
        )
        t_gen, gens = timed(
            cold(
                b,
                lambda: b.generate(
                    prefix,
                    suffixes,
                    max_new_tokens=args.max_new_tokens,
                    batch_size=args.batch_size,
                ),
            ),
            1,
        )
        n_gen = [g[0].n_tokens for g in gens]
        logprob_vs_generate = {
            "preset": lg.name,
            "template": lg.template,
            "items": len(suffixes),
            "batch_size": args.batch_size,
            "prefix_tokens": len(pre_ids),
            "mean_prompt_tokens": sum(lens) / len(lens),
            "logprob_s": round(t_lp, 4),
            "generate_s": round(t_gen, 4),
            "max_new_tokens": args.max_new_tokens,
            "mean_generated_tokens": sum(n_gen) / len(n_gen),
            "eos_disabled": True,
            "speedup": round(t_gen / t_lp, 2),
            "goal": ">= 10x",
        }

        # (2) prefix reuse vs none, full platform policy prompt in a chat turn
        pb = presets.get("platform_binary")
        assert pb.label_tokens is not None
        cands2 = {"unsafe": list(pb.label_tokens.positive), "safe": list(pb.label_tokens.negative)}
        b2 = backend(model_dir, args, chat_template=pb.chat_template)
        prefix2, suffixes2 = prompt_parts(policy, items[: args.prefix_items], pb.template)
        pre2, _ = b2.encode(prefix2, suffixes2[0])
        lens2 = [sum(map(len, b2.encode(prefix2, s))) for s in suffixes2]

        def score(reuse: bool) -> Any:
            return b2.next_token_probs(
                prefix2, suffixes2, cands2, batch_size=args.batch_size, reuse_prefix=reuse
            )

        t_reuse, s_reuse = timed(cold(b2, lambda: score(True)), args.repeat)
        t_none, s_none = timed(cold(b2, lambda: score(False)), 1)
        diff = max(abs(a[k] - c[k]) for a, c in zip(s_reuse, s_none) for k in ("unsafe", "safe"))
        diff_raw = max(abs(a["_raw_total"] - c["_raw_total"]) for a, c in zip(s_reuse, s_none))
        prefix_reuse = {
            "preset": pb.name,
            "template": pb.template,
            "chat_template": pb.chat_template,
            "items": len(suffixes2),
            "batch_size": args.batch_size,
            "prefix_tokens": len(pre2),
            "mean_prompt_tokens": sum(lens2) / len(lens2),
            "reuse_s": round(t_reuse, 4),
            "no_reuse_s": round(t_none, 4),
            "speedup": round(t_none / t_reuse, 2),
            "goal": ">= 2x",
            "max_abs_score_diff": diff,
            "max_abs_raw_total_diff": diff_raw,
            "score_diff_goal": "<= 1e-4",
        }
        tok_vocab = len(b._tokenizer())

        # (3) the platform pathway: platform_binary logprob vs platform_cot generate
        cot = presets.get("platform_cot")
        b3 = backend(model_dir, args, chat_template=cot.chat_template)
        b3._eos = set()
        cot_items = items[: args.cot_items]
        p_lp, s_lp = prompt_parts(policy, cot_items, pb.template)
        p_cot, s_cot = prompt_parts(policy, cot_items, cot.template)
        t_lp3, _ = timed(
            cold(b2, lambda: b2.next_token_probs(p_lp, s_lp, cands2, batch_size=args.batch_size)),
            args.repeat,
        )
        t_cot, gens3 = timed(
            cold(
                b3,
                lambda: b3.generate(
                    p_cot, s_cot, max_new_tokens=args.cot_tokens, batch_size=args.batch_size
                ),
            ),
            1,
        )
        platform_cot = {
            "logprob_preset": pb.name,
            "generate_preset": cot.name,
            "items": len(cot_items),
            "batch_size": args.batch_size,
            "logprob_s": round(t_lp3, 4),
            "generate_s": round(t_cot, 4),
            "max_new_tokens": args.cot_tokens,
            "mean_generated_tokens": sum(g[0].n_tokens for g in gens3) / len(gens3),
            "eos_disabled": True,
            "speedup": round(t_cot / t_lp3, 2),
            "goal": ">= 10x",
        }

    write(
        "judge",
        {
            "model": {
                **SHAPE,
                "tokenizer": "byte-level BPE trained on short_video_v1 + policy/prompt text",
                "tokenizer_vocab": tok_vocab,
                "vocab_cap": VOCAB_CAP,
                "weights": "random (seed 0)",
            },
            "device": args.device,
            "dtype": args.dtype,
            "repeat": args.repeat,
            "timing": "logprob and reuse: best of repeat; generate and no-reuse: 1 run; cold prefix cache",
            "logprob_vs_generate": logprob_vs_generate,
            "logprob_vs_generate_platform_cot": platform_cot,
            "prefix_reuse": prefix_reuse,
        },
    )


if __name__ == "__main__":
    main()
