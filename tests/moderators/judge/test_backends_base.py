"""The shared backend loops (:mod:`audit.moderators.judge.backends.base`) on a tiny
in-memory token engine: prefix split, truncation, batching, per-item error capture,
seeding and renormalisation are the loops' job, whatever the engine."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from audit.moderators.judge.backends._common import KEEP_TAIL, GenOut, ItemError
from audit.moderators.judge.backends.base import (
    BadArguments,
    GenSettings,
    JudgeBackend,
    Prompt,
    TokenBackend,
)

VOCAB = 128


def logits_after(ids: Sequence[int]) -> list[float]:
    """Deterministic next-token logits of a toy model (depends on the last 3 tokens)."""
    tail = list(ids[-3:])
    return [math.sin(1.3 * t + 0.7 * sum(tail) + 0.1 * len(tail)) * 3 for t in range(VOCAB)]


def log_softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    z = m + math.log(sum(math.exp(x - m) for x in xs))
    return [x - z for x in xs]


class CharBackend(TokenBackend):
    """Characters are tokens; ``!`` in a prompt makes the engine reject the batch."""

    backend: ClassVar[str] = "chars"
    where: ClassVar[str] = "judge.chars"
    engine_errors: ClassVar[tuple[type[Exception], ...]] = (RuntimeError,)

    def __init__(self, max_length: int = 200) -> None:
        super().__init__()
        self.max_length = max_length
        self.calls: list[int] = []  # batch sizes seen by the engine

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": self.backend}

    def _render(self, content: str) -> str:
        return f"<u>{content}</u><a>"

    def _ids(self, text: str, *, special: bool) -> list[int]:
        return [ord(c) % VOCAB for c in text]

    def _specials(self) -> set[int]:
        return set()

    def _uses_template(self) -> bool:
        return True

    def _check(self, prompts: Sequence[Prompt]) -> None:
        self.calls.append(len(prompts))
        if any(ord("!") in p.ids for p in prompts):
            raise RuntimeError("engine rejects '!'")

    def _label_logprobs(
        self, prompts: Sequence[Prompt], cand: dict[str, list[int]], reuse: bool
    ) -> list[dict[int, float] | ItemError]:
        self._check(prompts)
        out: list[dict[int, float] | ItemError] = []
        for p in prompts:
            logp = log_softmax(logits_after(p.ids))
            out.append({t: logp[t] for t in self._wanted(cand)})
        return out

    def _generate_batch(
        self, prompts: Sequence[Prompt], seeds: Sequence[int], settings: GenSettings
    ) -> list[GenOut | ItemError]:
        self._check(prompts)
        outs: list[GenOut | ItemError] = []
        for p, seed in zip(prompts, seeds):
            ids, toks = list(p.ids), []
            for k in range(settings.max_new_tokens):
                logits = logits_after(ids)
                t = (
                    max(range(VOCAB), key=logits.__getitem__)
                    if settings.greedy
                    else (seed + k) % 26 + 97
                )
                toks.append(t)
                ids.append(t)
            outs.append(GenOut("".join(map(chr, toks)), len(toks), "length", None))
        return outs


PREFIX = "policy: be kind. "
CANDS = {"yes": ["y"], "no": ["n", "N"]}


def expected(b: CharBackend, suffix: str) -> dict[str, float]:
    logp = log_softmax(logits_after(b.prompt_ids(PREFIX, suffix)))
    mass = {lab: sum(math.exp(logp[ord(s) % VOCAB]) for s in ss) for lab, ss in CANDS.items()}
    total = sum(mass.values())
    return {**{k: v / total for k, v in mass.items()}, "_raw_total": total}


def test_conforms_to_the_protocol() -> None:
    assert isinstance(CharBackend(), JudgeBackend)


def test_label_probs_are_renormalised_exactly() -> None:
    b = CharBackend()
    suffixes = ["hello", "", "a longer item text"]
    res = b.next_token_probs(PREFIX, suffixes, CANDS)
    for s, r in zip(suffixes, res):
        assert isinstance(r, dict)
        assert r == pytest.approx(expected(b, s), abs=1e-12)
        assert r["yes"] + r["no"] == pytest.approx(1.0)


def test_prefix_is_split_and_long_items_cut_in_the_middle() -> None:
    b = CharBackend(max_length=80)
    pre, rest = b.encode(PREFIX, "x")
    assert pre and "".join(map(chr, pre + rest)) == b._render(PREFIX + "x")
    assert "".join(map(chr, pre)).endswith(PREFIX)
    long = "a" * 200 + "THE END"
    ids = b.prompt_ids(PREFIX, long)
    assert len(ids) == 80 and "".join(map(chr, ids[-KEEP_TAIL:])).endswith("THE END</u><a>")


def test_one_bad_item_costs_only_itself() -> None:
    b = CharBackend()
    res = b.next_token_probs(PREFIX, ["fine", "bad!", "also fine"], CANDS)
    assert isinstance(res[1], ItemError) and res[1].kind == "engine_error"
    assert res[1].attempts == 2 and "rejects" in res[1].message
    assert res[0] == pytest.approx(expected(b, "fine"))
    assert b.calls == [3, 1, 1, 1]  # the batch, then each item alone
    gen = b.generate(PREFIX, ["ok", "no!"], max_new_tokens=3, num_samples=2, temperature=1.0)
    assert all(isinstance(g, GenOut) for g in gen[0])
    assert [type(g) for g in gen[1]] == [ItemError, ItemError]


def test_samples_are_seeded_per_item_not_per_batch() -> None:
    kw: dict[str, Any] = {"max_new_tokens": 4, "temperature": 0.8, "num_samples": 3, "seed": 7}
    alone = CharBackend().generate(PREFIX, ["b"], **kw)[0]
    together = CharBackend().generate(PREFIX, ["a", "b", "c"], batch_size=1, **kw)[1]
    assert [g.text for g in alone] == [g.text for g in together]
    assert len({g.text for g in alone}) > 1  # the samples differ from each other


def test_continuations_prefill_the_answer() -> None:
    b = CharBackend()
    plain = b.generate(PREFIX, ["x"], max_new_tokens=2)[0][0]
    pre = b.generate(PREFIX, ["x"], max_new_tokens=2, continuations=["UNSAFE"])[0][0]
    assert isinstance(plain, GenOut) and isinstance(pre, GenOut)
    ids = b._ids(b._render(PREFIX + "x") + "UNSAFE", special=False)
    greedy = max(range(VOCAB), key=logits_after(ids).__getitem__)
    assert pre.text[0] == chr(greedy)
    with pytest.raises(BadArguments, match="one entry per suffix"):
        b.generate(PREFIX, ["x", "y"], continuations=["A"])


def test_bad_generation_arguments_are_clear_errors() -> None:
    b = CharBackend()
    with pytest.raises(BadArguments, match="max_new_tokens"):
        b.generate(PREFIX, ["x"], max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):  # still a ValueError for old callers
        b.generate(PREFIX, ["x"], top_p=0.0)
