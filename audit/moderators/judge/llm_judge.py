"""``llm_judge``: a prompted causal LM as a moderator (at-scale LLM moderation or a
SOTA reference judge), scored the way its owners run it.

Modes (docs/methods.md §1, §5):

* ``logprob`` — one forward pass per item (per item × category for one-policy-per-call
  presets such as ShieldGemma); the score is the renormalised probability of the
  positive label tokens at the answer position. Llama Guard gives the any-violation
  probability (P(first token = unsafe)) as the item's ``overall`` score and, from a
  second pass with ``unsafe`` prefilled, per-category scores from the first hazard
  code's probability (``category_scores``); WildGuard gives ``overall`` only.
* ``generate`` — reasoning then a structured verdict, parsed strictly; a parse failure
  is an error of type ``parse_failure`` (never a label) and the rationale is kept.
* ``self_consistency`` — ``samples`` sampled generations; the score is the vote share
  among parsable samples, and the agreement is kept in the raw output.

The policy part of every prompt is identical across items, so on the transformers
backend its KV cache is computed once and reused (``reuse_prefix``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from audit.errors import ModeratorError
from audit.media.image import DEFAULT_JUDGE_MAX_SIDE, DEFAULT_MAX_PIXELS
from audit.moderators.base import ModeratorBase, ModeratorParams, register
from audit.moderators.judge.backends._common import GenOut, Suffix
from audit.moderators.judge.fewshot import FewShotSelector, FewShotSpec
from audit.moderators.judge.media import append_text
from audit.moderators.judge.tally import item_failure
from audit.schema import OVERALL_KEY, Item, ModeratorOutput

if TYPE_CHECKING:
    from audit.moderators.judge.backends._common import ItemError
    from audit.moderators.judge.backends.base import JudgeBackend
    from audit.policy import Policy

NAME = "llm_judge"


def _presets() -> dict[str, Any]:
    from audit.moderators.judge.presets import PRESETS

    return dict(PRESETS)


@register(NAME)
class LLMJudge(ModeratorBase):
    """Prompted LLM judge over the transformers backend or an OpenAI-compatible server."""

    description: ClassVar[str] = (
        "prompted causal LM judge (transformers or OpenAI-compatible server): logprob, "
        "generate or self-consistency scoring from policy-rendered prompts"
    )
    kind: ClassVar[str] = "llm"

    class Params(ModeratorParams):
        """Parameters of ``llm_judge``.

        Attributes:
            model: local model dir, hub id or ``.gguf`` path (transformers), or the
                served model name (``openai_compat``).
            backend: ``transformers`` (default), ``openai_compat`` (a served model),
                ``vllm`` (vLLM's offline engine, GPU; ``pip install vllm``) or
                ``llama_cpp`` (GGUF on CPU; ``pip install 'audit[llamacpp]'``).
            base_url: server URL for ``openai_compat`` (e.g. a vLLM or TGI endpoint).
            gguf_file: GGUF file name inside ``model`` (transformers).
            preset: judge format (``llama_guard_3``, ``llama_guard_4``, ``shieldgemma``,
                ``wildguard``, ``platform_cot``).
            mode: ``logprob``, ``generate`` or ``self_consistency``.
            categories: platform categories to judge (default: all the preset reaches).
            samples / temperature: self-consistency sampling.
            reuse_prefix: compute the policy prefix's KV cache once (transformers).
            few_shot: per-item examples chosen by embedding similarity from a labelled
                suite split (see :mod:`audit.moderators.judge.fewshot`).
            policy_detail: ``full`` or ``definitions`` (platform templates: category
                definitions only, a much shorter prompt for small CPU judges).
            category_scores: Llama Guard presets in ``logprob`` mode also score each
                platform category from the hazard code that follows ``unsafe``
                (a second forward pass per item; see ``_llama_guard_codes_scores``).
            image_max_side / max_image_pixels: presets with media (``llama_guard_4``,
                ``shieldgemma_2``): each image is decoded under the pixel limit and
                re-encoded as a PNG data URL with at most this longest side.
        """

        model: str = Field(min_length=1)
        backend: Literal["transformers", "openai_compat", "vllm", "llama_cpp"] = "transformers"
        base_url: str | None = None
        gguf_file: str | None = None
        revision: str | None = None
        #: load a pickle-only checkpoint (.bin/.pt; transformers backend): off by default
        allow_pickle: bool = False
        dtype: str = "auto"
        device: str = "auto"
        preset: str = "platform_cot"
        mode: Literal["logprob", "generate", "self_consistency"] = "logprob"
        categories: tuple[str, ...] | None = None
        max_new_tokens: int | None = Field(None, ge=1, le=8192)
        samples: int = Field(5, ge=2, le=64)
        temperature: float = Field(0.7, gt=0.0, le=2.0)
        seed: int = 0
        reuse_prefix: bool = True
        micro_batch_size: int = Field(4, ge=1)
        max_length: int = Field(4096, ge=64)
        timeout_s: float = Field(60.0, gt=0)
        max_concurrency: int = Field(8, ge=1)
        max_retries: int = Field(4, ge=0, le=20)
        """``openai_compat``: retries of a transient failure (5xx, refused, timeout, 429)
        within the run; what still fails is a transient error retried by the next run"""
        few_shot: FewShotSpec | None = None
        policy_detail: Literal["full", "definitions"] = "full"
        category_scores: bool = True
        #: presets with media: images are re-encoded as PNG with this longest side
        image_max_side: int = Field(DEFAULT_JUDGE_MAX_SIDE, ge=32, le=4096)
        #: presets with media: decompression-bomb limit per image (audit.media)
        max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)

    def __init__(self, params: Params, policy: Policy) -> None:
        from audit.moderators.judge import presets

        self.params = params
        self.policy = policy
        self.preset = presets.get(params.preset)
        if self.preset.media is not None and params.backend == "llama_cpp":
            raise ModeratorError(
                f"preset {self.preset.name!r} sees images; the llama_cpp backend reads text only",
                where=NAME,
                field="params.backend",
                expected="transformers, vllm or openai_compat for a vision-language judge",
                actual="llama_cpp",
                fix="use backend: transformers (CPU/GPU) or vllm (GPU)",
            )
        if params.few_shot is not None and self.preset.media == "image_only":
            raise ModeratorError(
                f"preset {self.preset.name!r} judges images only and takes no text examples",
                where=NAME,
                field="params.few_shot",
                expected="no few_shot with an image-only preset",
                actual=f"{params.few_shot.suite}:{params.few_shot.split}",
                fix="remove params.few_shot",
            )
        if params.mode == "logprob" and self.preset.label_tokens is None:
            raise ModeratorError(
                f"preset {self.preset.name!r} has no label tokens for logprob scoring",
                where=NAME,
                field="params.mode",
                expected="generate or self_consistency for this preset",
                actual="logprob",
                fix="set mode: generate, or pick a preset with label tokens",
            )
        reach = self._reachable()
        if params.categories is not None:
            bad = [c for c in params.categories if c not in reach]
            if bad:
                raise ModeratorError(
                    "categories the preset cannot judge",
                    where=NAME,
                    field="params.categories",
                    expected=f"a subset of {list(reach)}",
                    actual=repr(bad),
                )
            reach = tuple(c for c in reach if c in params.categories)
        self.code_scores = (
            params.mode == "logprob" and self.preset.fmt == "llama_guard" and params.category_scores
        )
        overall_only = self.preset.name == "wildguard" or (
            params.mode == "logprob"
            and not self.preset.one_policy_per_call
            and not self.code_scores
        )
        self.judged = reach
        self.categories: tuple[str, ...] = () if overall_only else reach
        #: a permutation of ``prompts.sections`` (robustness probe); None = policy order
        self.section_order: tuple[str, ...] | None = None
        self.fewshot: FewShotSelector | None = (
            FewShotSelector(params.few_shot, policy) if params.few_shot is not None else None
        )
        self.backend = self._backend()

    def with_section_order(self, order: Sequence[str] | None) -> LLMJudge:
        """A copy sharing this judge's backend whose prompts list the policy sections
        in ``order`` (a permutation of ``prompts.sections``; checked when rendering)."""
        import copy

        other = copy.copy(self)
        other.section_order = None if order is None else tuple(order)
        return other

    # ------------------------------------------------------------------ setup
    def _reachable(self) -> tuple[str, ...]:
        cats = self.policy.category_ids
        native = dict(self.preset.native_policies or ())
        if native:
            return tuple(c for c in cats if c in native)
        tax = self.preset.taxonomy
        if tax is None:
            return cats
        targets = {e.target for e in self.policy.mapping(tax).edges if e.target is not None}
        return tuple(c for c in cats if c in targets)

    def _backend(self) -> JudgeBackend:
        p = self.params
        if p.backend == "openai_compat":
            if not p.base_url:
                raise ModeratorError(
                    "the openai_compat backend needs a server URL",
                    where=NAME,
                    field="params.base_url",
                    expected="e.g. http://127.0.0.1:8000/v1",
                    actual="missing",
                )
            from audit.moderators.judge.backends.openai_compat import OpenAICompatBackend

            return OpenAICompatBackend(
                p.base_url,
                p.model,
                timeout_s=p.timeout_s,
                max_concurrency=p.max_concurrency,
                max_retries=p.max_retries,
                chat=True,
            )
        if p.backend == "vllm":
            from audit.moderators.judge.backends.vllm import VLLMBackend

            return VLLMBackend(
                p.model,
                revision=p.revision,
                dtype=p.dtype,
                max_length=p.max_length,
                chat_template=self.preset.chat_template,
                seed=p.seed,
                allow_pickle=p.allow_pickle,
                media=self.preset.media is not None,
            )
        if p.backend == "llama_cpp":
            from pathlib import Path

            from audit.moderators.judge.backends.llama_cpp import LlamaCppBackend

            model = str(Path(p.model) / p.gguf_file) if p.gguf_file else p.model
            return LlamaCppBackend(
                model, n_ctx=p.max_length, seed=p.seed, chat_template=self.preset.chat_template
            )
        from audit.moderators.judge import packaged
        from audit.moderators.judge.backends.hf import HFBackend

        try:
            model, gguf = packaged.resolve(p.model)
        except ModeratorError as exc:
            raise exc.relocated(NAME, "params") from None
        return HFBackend(
            model,
            revision=p.revision,
            gguf_file=p.gguf_file or gguf,
            dtype=p.dtype,
            device=p.device,
            max_length=p.max_length,
            chat_template=self.preset.chat_template,
            allow_pickle=p.allow_pickle,
            media=self.preset.media is not None,
        )

    def fingerprint(self) -> dict[str, Any]:
        from audit.moderators.judge import prompts

        p = self.params
        from audit.moderators.judge.media import media_fingerprint

        return {
            **media_fingerprint(self.preset, p.image_max_side, p.max_image_pixels),
            "backend": self.backend.fingerprint(),
            "preset": self.preset.name,
            "mode": p.mode,
            "template": self.preset.template,
            "template_hash": prompts.template_hash(
                self.policy,
                self.preset.template,
                categories=None if self.preset.one_policy_per_call else list(self.judged),
                section_order=self.section_order,
                detail=p.policy_detail,
            ),
            "policy": self.policy.ref,
            "policy_digest": self.policy.digest(),
            "categories": list(self.judged),
            "few_shot": self.fewshot.fingerprint() if self.fewshot is not None else None,
            "code_scores": self.code_scores,
            "decoding": {
                "max_new_tokens": self._max_new_tokens(),
                "samples": p.samples if p.mode == "self_consistency" else 1,
                "temperature": p.temperature if p.mode == "self_consistency" else 0.0,
                "seed": p.seed,
            },
        }

    def _max_new_tokens(self) -> int:
        return self.params.max_new_tokens or self.preset.max_new_tokens

    # ------------------------------------------------------------------ scoring
    def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
        if not items:
            return []
        live, images, outs = self._media_split(items)
        if live:
            sub = [items[i] for i in live]
            scored = (
                self._logprob(sub, images)
                if self.params.mode == "logprob"
                else self._generate(sub, images)
            )
            for i, o in zip(live, scored):
                outs[i] = o
        return [o if o is not None else ModeratorOutput(error="no output") for o in outs]

    def _media_split(self, items: Sequence[Item]) -> Any:
        """``judge.media.split_items`` with this judge's preset and image limits."""
        from audit.moderators.judge.media import split_items

        p = self.params
        return split_items(
            items, self.preset, max_side=p.image_max_side, max_pixels=p.max_image_pixels
        )

    def _examples(self, items: Sequence[Item]) -> list[Any]:
        """Per-item few-shot examples (``params.few_shot``), or ``None`` each."""
        if self.fewshot is None:
            return [None] * len(items)
        return list(self.fewshot.select(items))

    def _render(
        self,
        item: Item,
        category: str | None = None,
        examples: Any = None,
        images: Sequence[str] = (),
    ) -> Any:
        from audit.moderators.judge import prompts

        # the backend tokenizer's special/added token strings, defused in item text
        # (a backend without a visible tokenizer, or a test fake, has none)
        specials_of = getattr(self.backend, "special_strings", None)
        specials = frozenset(specials_of()) if callable(specials_of) else frozenset()
        if self.preset.one_policy_per_call:
            assert category is not None
            return prompts.one_category(
                self.policy,
                item,
                category,
                self.preset.template,
                examples=examples,
                specials=specials,
                images=images,
                native=dict(self.preset.native_policies or ()) or None,
            )
        return prompts.render(
            self.policy,
            item,
            template=self.preset.template,
            categories=list(self.judged),
            section_order=self.section_order,
            examples=examples,
            detail=self.params.policy_detail,
            specials=specials,
            images=images,
        )

    def _label_candidates(self) -> dict[str, Sequence[str]]:
        lt = self.preset.label_tokens
        assert lt is not None
        return {"pos": lt.positive, "neg": lt.negative}

    def _next_token(
        self,
        prefix: str,
        suffixes: list[Suffix],
        candidates: dict[str, Sequence[str]] | None = None,
        tail: str = "",
    ) -> list[Any]:
        """Label probabilities after each prompt + the preset's answer prefix + ``tail``
        (default candidates: the preset's positive / negative label tokens)."""
        answer = self.preset.answer_prefix + tail
        return self.backend.next_token_probs(
            prefix,
            [append_text(s, answer) for s in suffixes],
            candidates or self._label_candidates(),
            batch_size=self.params.micro_batch_size,
            reuse_prefix=self.params.reuse_prefix,
        )

    def _logprob(
        self, items: Sequence[Item], images: Sequence[tuple[str, ...]]
    ) -> list[ModeratorOutput]:
        outs = [ModeratorOutput() for _ in items]
        shots = self._examples(items)
        if self.preset.one_policy_per_call:
            for cat in self.judged:
                parts = [self._render(it, cat, ex, im) for it, ex, im in zip(items, shots, images)]
                for i, res in enumerate(
                    self._next_token(parts[0].prefix, [p.content() for p in parts])
                ):
                    fail = item_failure(res)
                    if fail is not None:
                        outs[i] = fail
                    elif outs[i].error is None:
                        outs[i].scores[cat] = float(res["pos"])
            for o in outs:
                if o.error is None:
                    o.scores[OVERALL_KEY] = max(o.scores.values()) if o.scores else float("nan")
            return outs
        parts = [self._render(it, None, ex, im) for it, ex, im in zip(items, shots, images)]
        for i, res in enumerate(self._next_token(parts[0].prefix, [p.content() for p in parts])):
            fail = item_failure(res)
            outs[i] = (
                fail
                if fail is not None
                else ModeratorOutput(scores={OVERALL_KEY: float(res["pos"])})
            )
        if self.code_scores:
            self._llama_guard_codes_scores(parts, outs)
        return outs

    def _llama_guard_codes_scores(self, parts: list[Any], outs: list[ModeratorOutput]) -> None:
        """Per-category scores for Llama Guard formats in ``logprob`` mode.

        After ``unsafe`` the format lists hazard codes (``unsafe\nS1,S10``). With the
        answer prefilled up to the code's first character, one more forward pass per
        item gives the distribution of the first listed code over the codes in the
        prompt (renormalised); a platform category's score is
        ``P(unsafe) × Σ P(first code = c)`` over the codes the policy maps onto it.
        Only the first listed code is read, so a second violation listed after it is
        not scored (a lower bound on "the category is listed"). Needs a tokenizer that
        gives each code's suffix after its shared first character a distinct first
        token (true of Llama 3/4 tokenizers, which keep up to three digits together)."""
        from audit.moderators.judge import prompts

        codes = prompts._llama_guard_codes(self.policy, list(self.judged))
        head = {c[0] for c in codes}
        shared = head.pop() if len(head) == 1 and all(len(c) > 1 for c in codes) else ""
        cands: dict[str, Sequence[str]] = {c: [c[len(shared) :]] for c in codes}
        tail = "unsafe\n" + shared
        edges = [
            (e.source, e.target)
            for e in self.policy.mapping(self.preset.taxonomy or "llama_guard_3").edges
            if e.target in self.categories and e.source in cands
        ]
        live = [i for i, o in enumerate(outs) if o.error is None]
        if not live:
            return
        try:
            res = self._next_token(parts[0].prefix, [parts[i].content() for i in live], cands, tail)
        except ValueError as exc:
            raise ModeratorError(
                f"cannot read Llama Guard hazard codes with this tokenizer: {exc}",
                where=NAME,
                field="params.category_scores",
                expected="codes whose distinguishing part starts with distinct tokens",
                actual=self.params.model,
                fix="set category_scores: false (overall P(unsafe) only), or use mode: generate",
            ) from None
        for i, r in zip(live, res):
            fail = item_failure(r)
            if fail is not None:
                outs[i] = fail
                continue
            p_unsafe = outs[i].scores[OVERALL_KEY]
            for cat in self.categories:
                mass = sum(float(r[c]) for c, t in edges if t == cat)
                outs[i].scores[cat] = p_unsafe * min(1.0, mass)

    def _generate(
        self, items: Sequence[Item], images: Sequence[tuple[str, ...]]
    ) -> list[ModeratorOutput]:
        p = self.params
        sc = p.mode == "self_consistency"
        kwargs: dict[str, Any] = {
            "max_new_tokens": self._max_new_tokens(),
            "temperature": p.temperature if sc else 0.0,
            "num_samples": p.samples if sc else 1,
            "seed": p.seed,
            "batch_size": p.micro_batch_size,
        }
        calls: list[tuple[str | None, list[list[GenOut | ItemError]]]] = []
        shots = self._examples(items)
        if self.preset.one_policy_per_call:
            for cat in self.judged:
                parts = [self._render(it, cat, ex, im) for it, ex, im in zip(items, shots, images)]
                calls.append(
                    (
                        cat,
                        self.backend.generate(
                            parts[0].prefix, [x.content() for x in parts], **kwargs
                        ),
                    )
                )
        else:
            parts = [self._render(it, None, ex, im) for it, ex, im in zip(items, shots, images)]
            calls.append(
                (
                    None,
                    self.backend.generate(parts[0].prefix, [x.content() for x in parts], **kwargs),
                )
            )
        from audit.moderators.judge.tally import tally

        return [
            tally(i, calls, sc, self.preset.fmt, self.policy, self.judged, self.categories)
            for i in range(len(items))
        ]

    # ------------------------------------------------------------------ rationales
    def explain_unsupported(self) -> str | None:
        """Why :meth:`explain` cannot run with this preset/backend, or ``None``."""
        if self.preset.explain is None:
            able = sorted(n for n, pr in _presets().items() if pr.explain is not None)
            return (
                f"preset {self.preset.name!r} has no rationale slot in its answer format "
                f"(presets that have one: {able}; or use mode: generate)"
            )
        if not self.backend.supports_continuations:
            return f"the {self.params.backend} backend cannot prefill the judge's answer"
        return None

    def explain(
        self, items: Sequence[Item], decisions: Sequence[bool], *, max_new_tokens: int = 48
    ) -> list[ModeratorOutput]:
        """One-sentence rationales for decisions already taken (``explain:`` in a run
        config). The judge's own prompt is followed by its decision as the start of
        its answer (e.g. ``UNSAFE\nReason:``), and it writes the reason up to the end
        of the line: a post-hoc rationale conditioned on the decision, kept apart from
        chain-of-thought rationales by the caller. Greedy; empty text is an error."""
        reason = self.explain_unsupported()
        if reason is not None:
            raise ModeratorError(
                "this judge cannot write rationales",
                where=NAME,
                field="explain",
                expected="a preset with a rationale slot and the transformers backend",
                actual=reason,
            )
        if not items:
            return []
        live, images, outs = self._media_split(items)
        if live:
            wrote = self._explain_live(
                [items[i] for i in live], [decisions[i] for i in live], images, max_new_tokens
            )
            for i, o in zip(live, wrote):
                outs[i] = o
        return [o if o is not None else ModeratorOutput(error="no output") for o in outs]

    def _explain_live(
        self,
        items: Sequence[Item],
        decisions: Sequence[bool],
        images: Sequence[tuple[str, ...]],
        max_new_tokens: int,
    ) -> list[ModeratorOutput]:
        assert self.preset.explain is not None
        flag, ok = self.preset.explain
        parts = [
            self._render(it, None, ex, im)
            for it, ex, im in zip(items, self._examples(items), images)
        ]
        gens = self.backend.generate(
            parts[0].prefix,
            [p.content() for p in parts],
            max_new_tokens=max_new_tokens,
            batch_size=self.params.micro_batch_size,
            stop=("\n",),
            continuations=[flag if d else ok for d in decisions],
        )
        outs = []
        for d, res in zip(decisions, gens):
            g = res[0] if res else None
            fail = item_failure(g)
            if fail is not None:
                outs.append(fail)
                continue
            text = (g.text if isinstance(g, GenOut) else "").strip()
            opening = flag if d else ok
            if not text:
                outs.append(
                    ModeratorOutput(
                        error="the judge wrote no rationale",
                        error_type="empty_rationale",
                        raw_output=opening,
                    )
                )
            else:
                outs.append(ModeratorOutput(rationale=text, raw_output=opening + " " + text))
        return outs

    def close(self) -> None:
        self.backend.close()
        if self.fewshot is not None:
            self.fewshot.close()
