"""The classifier fast path: length buckets padded to their own longest text give the
same scores, in input order, as scoring every text alone; ``dtype: fast`` resolves per
machine and is fingerprinted as the dtype it resolved to."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audit.moderators.classifiers.batching import cpu_has_native_bf16, fast_dtype, padded_batches
from audit.moderators.classifiers.hf_classifier import HFClassifier

TEXTS = [
    "hi",
    "I will hurt you tomorrow if you come back here again and again and again",
    "great recipe",
    "those people are vermin and should leave the country because I hate them so much",
    "ok",
    "the cat sat on the mat",
    "",  # an empty string still tokenizes to the special tokens
]


def _tok(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def test_every_index_once_batches_bounded_and_tight(tiny_classifier):
    tok = _tok(tiny_classifier)
    seen: list[int] = []
    lengths = [len(x) for x in tok(TEXTS, truncation=True, max_length=16)["input_ids"]]
    for mb, batch in padded_batches(
        tok, TEXTS, max_length=16, max_batch=3, max_tokens=10_000, device="cpu"
    ):
        seen += mb
        assert len(mb) <= 3
        # padded to this batch's own longest text, not the longest overall
        assert batch["input_ids"].shape == (len(mb), max(lengths[i] for i in mb))
        for row, i in enumerate(mb):
            assert int(batch["attention_mask"][row].sum()) == lengths[i]
    assert sorted(seen) == list(range(len(TEXTS)))
    assert max(lengths) <= 16


def test_token_cap_splits_batches(tiny_classifier):
    tok = _tok(tiny_classifier)
    for mb, batch in padded_batches(
        tok, TEXTS * 4, max_length=16, max_batch=64, max_tokens=40, device="cpu"
    ):
        assert len(mb) == 1 or batch["input_ids"].numel() <= 40


def test_bucketed_scores_match_one_at_a_time(tiny_classifier, policy, make_item):
    items = [make_item(f"i{k}", t) for k, t in enumerate(TEXTS * 3) if t]
    mod = HFClassifier(
        HFClassifier.Params(model=str(tiny_classifier), micro_batch_size=4, device="cpu"), policy
    )
    together = mod.predict(items)
    alone = [mod.predict([it])[0] for it in items]
    for a, b in zip(together, alone):
        assert a.scores.keys() == b.scores.keys()
        np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), atol=1e-5)


def test_fast_dtype_resolution_and_fingerprint(tiny_classifier, policy, make_item):
    want = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert fast_dtype("cpu") is want
    mod = HFClassifier(
        HFClassifier.Params(model=str(tiny_classifier), dtype="fast", device="cpu"), policy
    )
    assert mod.fingerprint()["dtype"] == str(want).removeprefix("torch.")
    ref = HFClassifier(HFClassifier.Params(model=str(tiny_classifier), device="cpu"), policy)
    assert ref.fingerprint()["dtype"] == "float32"
    items = [make_item(f"i{k}", t) for k, t in enumerate(TEXTS) if t]
    fast = [o.scores for o in mod.predict(items)]
    exact = [o.scores for o in ref.predict(items)]
    # bf16 keeps 8 mantissa bits: on this random-weight tiny model scores move by up to
    # ~0.03; on real MiniLM weights bench/bench_classifier.py measures ~3e-4 (docs/defaults.md)
    tol = 0.1 if want is torch.bfloat16 else 1e-5
    for f, e in zip(fast, exact):
        assert max(abs(f[c] - e[c]) for c in e) < tol


def test_fast_is_a_valid_dtype_and_typos_are_not(tiny_classifier):
    with pytest.raises(ValueError):
        HFClassifier.Params(model=str(tiny_classifier), dtype="fastest")
