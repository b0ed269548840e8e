"""The classifier fast path shared by ``hf_classifier`` and ``embedding_head``'s transformers
encoder: tokenize once, bucket by length, pad each micro-batch only to its own longest
text, and (``dtype: fast``) run bf16 where the CPU multiplies bf16 natively.

Why (docs/defaults.md, "Classifier throughput"): on mixed-length real items a batch in
input order is padded to its longest member, so a few long texts make every batch long;
sorting by length first makes padding nearly free (bench/bench_classifier.py measures it).
Results are written back by index, so the output order is the input order. Padding does
not change a row's logits beyond float rounding (attention masks exclude pad tokens).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from audit.moderators._torch import cpu_has_native_bf16, length_batches

__all__ = ["cpu_has_native_bf16", "fast_dtype", "padded_batches"]


def fast_dtype(device: str) -> Any:
    """The dtype ``dtype: fast`` resolves to on ``device``: bf16 on CUDA with bf16 support
    and on CPUs with native bf16, float32 everywhere else."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def padded_batches(
    tok: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    max_batch: int,
    max_tokens: int,
    device: str,
) -> Iterator[tuple[list[int], Any]]:
    """``(indices into texts, padded batch on device)`` in length-bucketed order.

    Each text is tokenized once (truncated to ``max_length``); a micro-batch holds at most
    ``max_batch`` texts and ``max_tokens`` padded tokens and is padded to its own longest
    member (``tok.pad``), so no batch carries another batch's length.
    """
    enc = tok(list(texts), truncation=True, max_length=max_length)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    extra = {k: enc[k] for k in ("token_type_ids",) if k in enc}
    for mb in length_batches([len(x) for x in ids], max_batch=max_batch, max_tokens=max_tokens):
        feats = {"input_ids": [ids[i] for i in mb], "attention_mask": [mask[i] for i in mb]}
        feats.update({k: [v[i] for i in mb] for k, v in extra.items()})
        yield mb, tok.pad(feats, padding=True, return_tensors="pt").to(device)
