"""The judge-backend protocol and the two scoring loops every backend shares.

:class:`JudgeBackend` is what :class:`~audit.moderators.judge.llm_judge.LLMJudge` calls:
label probabilities at the answer position (:meth:`JudgeBackend.next_token_probs`),
continuations (:meth:`JudgeBackend.generate`), a fingerprint and ``close``. A per-item
failure is always an :class:`~audit.moderators.judge.backends._common.ItemError` in the
result list, whatever the engine.

:class:`BackendLoops` writes the two loops once — argument checks, prompt preparation
(prefix split and middle truncation for token engines, request bodies for a server),
batching, per-item error capture with a one-by-one retry, seeding per (item, sample)
and candidate renormalisation — and calls engine primitives that each backend
implements:

==============================  =======================================================
primitive                       does
==============================  =======================================================
``_prepare``                    prompts (one per suffix) in the engine's own form
``_candidates``                 candidate label strings → what the engine matches
``_batches``                    item indices scored together (default: all at once)
``_label_logprobs``             one observation per prompt at the answer position
``_renormalise``                observation → label probabilities (or an ItemError)
``_generate_batch``             one continuation per (prompt, seed)
==============================  =======================================================

:class:`TokenBackend` adds the token-level preparation the local engines (transformers,
vLLM, llama.cpp) share: the chat-template render, the prefix/suffix split with its
boundary back-off, the middle truncation, first-token candidates and exact
renormalisation from token log-probabilities.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from audit.errors import ModeratorError
from audit.moderators.judge.backends._common import (
    GenOut,
    ItemError,
    Suffix,
    candidate_token_ids,
    fit_middle,
    label_probs,
    seed_for,
    split_encode,
    suffix_key,
)

__all__ = [
    "BackendLoops",
    "BadArguments",
    "GenSettings",
    "HFTokenizerHooks",
    "JudgeBackend",
    "Prompt",
    "TokenBackend",
]

P = TypeVar("P")  # a prepared prompt in the engine's form
C = TypeVar("C")  # candidates in the engine's form
O = TypeVar("O")  # an observation at the answer position  # noqa: E741


@runtime_checkable
class JudgeBackend(Protocol):
    """What the LLM judge needs from an inference backend."""

    @property
    def backend(self) -> str:
        """Backend name as written in a run config (``transformers``, ``vllm``...)."""
        ...

    @property
    def supports_continuations(self) -> bool:
        """Whether :meth:`generate` takes ``continuations`` (an answer prefill)."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes outputs (model digest, template, settings)."""
        ...

    def next_token_probs(
        self,
        prefix: str,
        suffixes: Sequence[Suffix],
        candidates: dict[str, Sequence[str]],
        *,
        batch_size: int = 8,
        reuse_prefix: bool = True,
    ) -> list[dict[str, float] | ItemError]:
        """Per item, each candidate label's renormalised probability plus diagnostics
        under ``_``-prefixed keys (``_raw_total`` always)."""
        ...

    def generate(
        self,
        prefix: str,
        suffixes: Sequence[Suffix],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        num_samples: int = 1,
        seed: int = 0,
        batch_size: int = 4,
        stop: Sequence[str] = (),
        continuations: Sequence[str] | None = None,
    ) -> list[list[GenOut | ItemError]]:
        """``num_samples`` continuations per item, each seeded per (item, sample)."""
        ...

    def close(self) -> None:
        """Free the engine (idempotent)."""
        ...


@dataclass(frozen=True)
class GenSettings:
    """Decoding settings of one :meth:`BackendLoops.generate` call (checked once)."""

    max_new_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class Prompt:
    """One item's token ids: the shared prefix (empty when it is not a true prefix of
    the sequence, or when reuse is off) and the rest, already cut to fit.

    ``media`` is set for an item with images (``Suffix`` content parts): what the
    engine needs beside the ids (the processor's pixel tensors for transformers, the
    text prompt and images for vLLM). Such a prompt is always whole (no shared
    prefix: the image tokens depend on the item) and never cut."""

    prefix: list[int]
    rest: list[int]
    media: Any = None

    @property
    def ids(self) -> list[int]:
        return self.prefix + self.rest


class BadArguments(ModeratorError, ValueError):
    """Bad call arguments to a backend: an :class:`~audit.errors.ModeratorError` with
    the usual where/field/expected/got, and a ``ValueError`` as the local backends
    raised before they shared one loop (callers catch either)."""


def check_generation(
    where: str, max_new_tokens: int, temperature: float, top_p: float, num_samples: int
) -> None:
    """The argument checks of every ``generate``: a clear error before any engine work."""
    if max_new_tokens < 1 or num_samples < 1:
        raise BadArguments(
            "max_new_tokens and num_samples must be >= 1",
            where=where,
            field="max_new_tokens / num_samples",
            expected=">= 1",
            actual=f"max_new_tokens={max_new_tokens}, num_samples={num_samples}",
        )
    if temperature < 0 or not 0 < top_p <= 1:
        raise BadArguments(
            "temperature must be >= 0 and 0 < top_p <= 1",
            where=where,
            field="temperature / top_p",
            expected="temperature >= 0, 0 < top_p <= 1",
            actual=f"temperature={temperature}, top_p={top_p}",
        )


class BackendLoops(Generic[P, C, O]):
    """The label-probability and generation loops, written once (see the module doc).

    Subclasses set :attr:`backend`, :attr:`where`, a ``_lock`` (a context manager held
    for a whole call: engines are not re-entrant) and implement the primitives.
    """

    backend: ClassVar[str]
    where: ClassVar[str]
    supports_continuations: ClassVar[bool] = False
    #: exceptions from an engine call that mean "this batch failed", retried item by
    #: item; the items that still fail become ``ItemError(kind="engine_error")``
    engine_errors: ClassVar[tuple[type[Exception], ...]] = ()
    _lock: AbstractContextManager[Any]

    # ------------------------------------------------------------------ primitives

    def load(self) -> None:
        """Load the engine (idempotent); nothing to load by default."""

    def special_strings(self) -> frozenset[str]:
        """Strings the engine's tokenizer turns into a special or added token (a chat
        turn marker, BOS/EOS, ``</think>``...). The judge defuses each of them in item
        text before rendering (``prompts.neutralise(specials=...)``), so item text never
        encodes to such a token id. Empty where the tokenizer is not visible (a
        server): the pattern-based neutraliser is all there is then."""
        return frozenset()

    def close(self) -> None:
        """Free the engine; nothing to free by default."""

    def _prepare(
        self,
        prefix: str,
        # ``Sequence[Suffix]``; Any so that an engine reading text only may narrow it
        suffixes: Sequence[Any],
        *,
        reuse: bool,
        max_new_tokens: int | None,
        tails: Sequence[str] | None,
    ) -> list[P]:
        raise NotImplementedError

    def _candidates(self, candidates: dict[str, Sequence[str]]) -> C:
        raise NotImplementedError

    def _batches(self, prompts: Sequence[P], batch_size: int) -> Iterable[list[int]]:
        """Indices of the prompts run together; all at once unless the engine batches."""
        return [list(range(len(prompts)))] if prompts else []

    def _label_logprobs(self, prompts: Sequence[P], cand: C, reuse: bool) -> list[O | ItemError]:
        raise NotImplementedError

    def _renormalise(self, cand: C, observed: O) -> dict[str, float] | ItemError:
        raise NotImplementedError

    def _generate_batch(
        self, prompts: Sequence[P], seeds: Sequence[int], settings: GenSettings
    ) -> list[GenOut | ItemError]:
        raise NotImplementedError

    def _sample_seed(self, seed: int, suffix: Any, sample: int) -> int:
        """Per (item content, sample) seed: reproducible and independent of batching
        (an item's images enter through their digests, ``suffix_key``)."""
        return seed_for(seed, suffix_key(suffix), sample)

    def _engine_message(self, exc: Exception) -> str:
        return f"{type(exc).__name__}: {exc}"

    # ------------------------------------------------------------------ the loops

    def _guarded(self, run: Callable[[list[int]], Sequence[Any]], idx: list[int]) -> list[Any]:
        """``run(idx)``; when the engine rejects the batch, each index alone, so one bad
        item costs only itself (vLLM validates every prompt before running any)."""
        try:
            return list(run(idx))
        except self.engine_errors as exc:
            if len(idx) == 1:
                return [ItemError("engine_error", self._engine_message(exc))]
        outs: list[Any] = []
        for i in idx:
            try:
                outs.extend(run([i]))
            except self.engine_errors as exc:
                outs.append(ItemError("engine_error", self._engine_message(exc), attempts=2))
        return outs

    def next_token_probs(
        self,
        prefix: str,
        suffixes: Sequence[Suffix],
        candidates: dict[str, Sequence[str]],
        *,
        batch_size: int = 8,
        reuse_prefix: bool = True,
    ) -> list[dict[str, float] | ItemError]:
        """Per item, each candidate label's probability at the answer position.

        A label's mass is the sum of the probabilities of its candidate tokens; masses
        are renormalised over the labels and their raw sum comes back under
        ``"_raw_total"``. ``batch_size`` and ``reuse_prefix`` matter to engines that
        batch and cache themselves (transformers, llama.cpp); others ignore them.
        """
        with self._lock:
            self.load()
            cand = self._candidates(candidates)
            prompts = self._prepare(
                prefix, suffixes, reuse=reuse_prefix, max_new_tokens=None, tails=None
            )
            out: list[dict[str, float] | ItemError] = [{} for _ in prompts]
            for idx in self._batches(prompts, batch_size):
                got = self._guarded(
                    lambda sub: self._label_logprobs([prompts[i] for i in sub], cand, reuse_prefix),
                    idx,
                )
                for i, g in zip(idx, got):
                    out[i] = g if isinstance(g, ItemError) else self._renormalise(cand, g)
            return out

    def generate(
        self,
        prefix: str,
        suffixes: Sequence[Suffix],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        num_samples: int = 1,
        seed: int = 0,
        batch_size: int = 4,
        stop: Sequence[str] = (),
        continuations: Sequence[str] | None = None,
    ) -> list[list[GenOut | ItemError]]:
        """Continuations per item: greedy when ``temperature == 0``, else seeded sampling.

        Sample ``k`` of an item draws from its own seed (``seed``, the item's suffix,
        ``k``), so results do not depend on batch composition. ``batch_size`` counts
        items (a batch holds ``batch_size * num_samples`` sequences). ``continuations``
        (one per suffix; backends with :attr:`supports_continuations`) prefill the start
        of the answer; the returned text is what the model wrote after it.
        """
        check_generation(self.where, max_new_tokens, temperature, top_p, num_samples)
        if continuations is not None and not self.supports_continuations:
            raise ModeratorError(
                "this backend cannot prefill the judge's answer",
                where=self.where,
                field="continuations",
                expected="a backend with supports_continuations (transformers)",
                actual=self.backend,
            )
        settings = GenSettings(int(max_new_tokens), float(temperature), float(top_p), tuple(stop))
        with self._lock:
            self.load()
            prompts = self._prepare(
                prefix, suffixes, reuse=True, max_new_tokens=max_new_tokens, tails=continuations
            )
            results: list[list[GenOut | ItemError]] = [[] for _ in prompts]
            for idx in self._batches(prompts, batch_size):
                jobs = [(i, k) for i in idx for k in range(num_samples)]

                def run(sub: list[int], jobs: list[tuple[int, int]] = jobs) -> list[Any]:
                    chosen = [jobs[j] for j in sub]
                    return self._generate_batch(
                        [prompts[i] for i, _ in chosen],
                        [self._sample_seed(seed, suffixes[i], k) for i, k in chosen],
                        settings,
                    )

                for (i, _), g in zip(jobs, self._guarded(run, list(range(len(jobs))))):
                    results[i].append(g)
            return results


class HFTokenizerHooks:
    """Token hooks over a transformers tokenizer (the transformers and vLLM backends,
    whose engines both hand one out): the chat template in use and its rendering."""

    use_chat_template: bool

    def _tokenizer(self) -> Any:
        raise NotImplementedError

    def _used_template(self) -> str | None:
        """The chat template prompts go through, or ``None`` (off, or the model has none)."""
        template = getattr(self._tokenizer(), "chat_template", None)
        return str(template) if (self.use_chat_template and template) else None

    @property
    def has_chat_template(self) -> bool:
        """True when prompts go through the tokenizer's chat template."""
        return self._used_template() is not None

    def _uses_template(self) -> bool:
        return self.has_chat_template

    def _render(self, content: str) -> str:
        return str(
            self._tokenizer().apply_chat_template(
                [{"role": "user", "content": content}],
                tokenize=False,
                add_generation_prompt=True,
            )
        )

    def _show(self, token: int) -> str:
        return str(self._tokenizer().convert_ids_to_tokens(token))

    def special_strings(self) -> frozenset[str]:
        """The tokenizer's special tokens plus every added token (special or not:
        an added token such as Qwen's ``</think>`` or ``<tool_call>`` is matched
        before the model's normal vocabulary, so it too becomes one id from text)."""
        tok = self._tokenizer()
        key = id(tok)
        memo: tuple[int, frozenset[str]] | None = getattr(self, "_special_memo", None)
        if memo is not None and memo[0] == key:
            return memo[1]
        out = {str(t) for t in (getattr(tok, "all_special_tokens", None) or ())}
        added = getattr(tok, "added_tokens_decoder", None) or {}
        out.update(str(getattr(t, "content", t)) for t in added.values())
        found = frozenset(out)
        self._special_memo = (key, found)
        return found


class TokenBackend(BackendLoops[Prompt, dict[str, list[int]], dict[int, float]]):
    """A local engine that sees token ids: the shared token-level preparation.

    Subclasses implement ``_tokenizer`` use through :meth:`_render`, :meth:`_ids`,
    :meth:`_specials` and :meth:`_uses_template`, and set ``max_length`` (or override
    :meth:`_room`), ``_heads`` (the memo of rendered prefix heads) and ``_lock``.
    """

    supports_continuations: ClassVar[bool] = True
    #: the config field that bounds a prompt's length (named in truncation errors)
    room_field: ClassVar[str] = "params.max_length"
    #: with reuse, items whose prefix differs from the first item's are scored whole
    #: (one KV cache serves a batch); False keeps every item's own split
    share_one_prefix: ClassVar[bool] = True
    max_length: int
    _heads: dict[str, str | None]

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._heads = {}

    # ------------------------------------------------------------------ engine hooks

    def _render(self, content: str) -> str:
        """``content`` as one user turn plus the generation prompt."""
        raise NotImplementedError

    def _ids(self, text: str, *, special: bool) -> list[int]:
        raise NotImplementedError

    def _specials(self) -> set[int]:
        """Special token ids a post-processor may append to a plain prompt."""
        raise NotImplementedError

    def _uses_template(self) -> bool:
        raise NotImplementedError

    def _load_tokenizer(self) -> None:
        """Make :meth:`_ids` usable; engines whose tokenizer comes with the model load it."""
        self.load()

    def _candidate_ids(self, text: str) -> list[int]:
        return self._ids(text, special=False)

    def _show(self, token: int) -> str:
        return str(token)

    def _room(self, max_new_tokens: int | None) -> int:
        """Tokens a prompt may have (generation may reserve room for new tokens)."""
        return self.max_length

    # ------------------------------------------------------------------ preparation

    def _encode_many(
        self, prefix: str, suffixes: Sequence[str], tails: Sequence[str] | None
    ) -> list[tuple[list[int], list[int]]]:
        """(shared prefix ids, rest) per suffix; the prefix is empty when not a true one."""
        tails = list(tails) if tails is not None else [""] * len(suffixes)
        if len(tails) != len(suffixes):
            raise BadArguments(
                "tails must have one entry per suffix",
                where=self.where,
                field="continuations",
                expected=f"{len(suffixes)} entries",
                actual=f"{len(tails)} entries",
            )
        render = self._render if self._uses_template() else None
        specials = self._specials()
        return [
            split_encode(
                prefix,
                s,
                render=render,
                ids=self._ids,
                specials=specials,
                heads=self._heads,
                tail=t,
            )
            for s, t in zip(suffixes, tails)
        ]

    def encode(self, prefix: str, suffix: str) -> tuple[list[int], list[int]]:
        """Token ids of ``prefix + suffix`` split into (shared prefix, rest).

        With a chat template the text is one user turn plus the generation prompt. The
        first list is a true prefix of the full sequence, or empty when the template or
        tokenizer breaks that (the item is then scored without prefix reuse).
        """
        self._load_tokenizer()
        return self._encode_many(prefix, [suffix], None)[0]

    def prompt_ids(self, prefix: str, suffix: str, *, room: int | None = None) -> list[int]:
        """The token ids scored for one item (middle-truncated to ``room``)."""
        pre, rest = self.encode(prefix, suffix)
        limit = self._room(None) if room is None else room
        return pre + fit_middle(pre, rest, limit, self.where, field=self.room_field)

    def _prepare(
        self,
        prefix: str,
        suffixes: Sequence[Suffix],
        *,
        reuse: bool,
        max_new_tokens: int | None,
        tails: Sequence[str] | None,
    ) -> list[Prompt]:
        """Split, cut in the middle of the item part to fit, and keep the prefix apart
        only where it is shared: with reuse, the first item's prefix is the shared one
        and an item with another prefix (or none) is scored whole. An item with
        images (content parts) becomes a whole media prompt (:meth:`_media_prompt`)."""
        room = self._room(max_new_tokens)
        tails = list(tails) if tails is not None else [""] * len(suffixes)
        if len(tails) != len(suffixes):
            raise BadArguments(
                "tails must have one entry per suffix",
                where=self.where,
                field="continuations",
                expected=f"{len(suffixes)} entries",
                actual=f"{len(tails)} entries",
            )
        text = [i for i, s in enumerate(suffixes) if isinstance(s, str)]
        out: list[Prompt | None] = [None] * len(suffixes)
        shared: list[int] = []
        encoded = self._encode_many(
            prefix, [str(suffixes[i]) for i in text], [tails[i] for i in text]
        )
        for i, (pre, rest) in zip(text, encoded):
            cut = fit_middle(pre, rest, room, self.where, field=self.room_field)
            if pre and (not self.share_one_prefix or not shared or pre == shared):
                shared = shared or pre
                out[i] = Prompt(pre, cut)
            else:
                out[i] = Prompt([], pre + cut)
        for i, s in enumerate(suffixes):
            if not isinstance(s, str):
                out[i] = self._media_prompt(prefix, s, tails[i], room)
        return [p for p in out if p is not None]

    def _media_prompt(
        self, prefix: str, parts: list[dict[str, Any]], tail: str, room: int
    ) -> Prompt:
        """The whole prompt of an item with images (``prefix`` + content ``parts`` +
        ``tail``), with :attr:`Prompt.media` set; an engine without image support
        refuses with the fix. Longer than ``room`` tokens: ``media`` is an
        :class:`ItemError` (``prompt_too_long``: image tokens cannot be cut)."""
        raise ModeratorError(
            f"the {self.backend} backend cannot score images",
            where=self.where,
            field="params.backend",
            expected="transformers, vllm or openai_compat for a vision-language judge",
            actual=self.backend,
            fix="pick one of those backends, or a text-only preset",
        )

    @staticmethod
    def _too_long(n: int, room: int) -> ItemError:
        return ItemError(
            "prompt_too_long",
            f"the prompt with its image tokens is {n} tokens, over the {room} allowed "
            "(image tokens cannot be cut; raise params.max_length or lower "
            "params.image_max_side)",
        )

    def _candidates(self, candidates: dict[str, Sequence[str]]) -> dict[str, list[int]]:
        return candidate_token_ids(candidates, self._candidate_ids, self._show)

    def _renormalise(
        self, cand: dict[str, list[int]], observed: dict[int, float]
    ) -> dict[str, float] | ItemError:
        return label_probs(cand, observed.__getitem__)

    @staticmethod
    def _wanted(cand: dict[str, list[int]]) -> list[int]:
        """Every candidate token id, once, in label order."""
        return list(dict.fromkeys(t for ids in cand.values() for t in ids))
