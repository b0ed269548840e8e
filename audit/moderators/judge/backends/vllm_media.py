"""Images on the vLLM judge backend (vLLM's offline multimodal input).

An item with images (content parts, ``_common.Suffix``) is submitted the way vLLM
documents for vision-language models: ``{"prompt": text, "multi_modal_data":
{"image": PIL image (or a list)}}``, where ``text`` holds the model's image placeholder
once per image and vLLM's own processor expands it. The text is rendered with the
checkpoint's transformers processor, as on the transformers backend: its chat template
over ``{"type": "image"}`` parts, or for a raw guard template the processor's
``image_token`` in place of each image (see :mod:`.hf_media`).

Label probabilities stay exact: one request with the top-20 log-probs; each candidate
token outside them is measured by one more request restricted to that token
(``allowed_token_ids=[t]``, one step): the engine's log-probs are the raw model
output (``logprobs_mode="raw_logprobs"``), taken before the allowed-token mask, so the
sampled token's value is ``log p(t | prompt, image)``. (The text path's
``prompt_logprobs`` fallback needs token ids, which a text-plus-image prompt does not
have before vLLM expands it.) A media prompt is never cut: vLLM refuses an over-long
one, which becomes that item's ``engine_error``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from audit.moderators.judge.backends._common import ContentPart, ItemError, user_content
from audit.moderators.judge.backends.base import Prompt

__all__ = ["VLLMMediaMixin"]

#: top log-probs asked for at the answer position (as the text path)
_TOP = 20


class VLLMMediaMixin:
    """The image half of :class:`~audit.moderators.judge.backends.vllm.VLLMBackend`."""

    model: str
    revision: str | None
    use_chat_template: bool
    where: ClassVar[str]
    _proc: Any
    _vllm: Any
    _lock: AbstractContextManager[Any]

    if TYPE_CHECKING:  # provided by VLLMBackend / TokenBackend

        def _tokenizer(self) -> Any: ...

        def _ids(self, text: str, *, special: bool) -> list[int]: ...

        def _submit(
            self, prompts: Sequence[list[int] | Prompt], params: list[Any]
        ) -> list[Any]: ...

        @staticmethod
        def _wanted(cand: dict[str, list[int]]) -> list[int]: ...

    def _processor(self) -> Any:
        """The checkpoint's transformers processor (renders the placeholders)."""
        with self._lock:
            if self._proc is None:
                from transformers import AutoProcessor

                from audit.errors import ModeratorError
                from audit.moderators._torch import quiet_hf

                with quiet_hf():
                    try:
                        auto: Any = AutoProcessor  # untyped in transformers
                        self._proc = auto.from_pretrained(
                            self.model, revision=self.revision, trust_remote_code=False
                        )
                    except (OSError, ValueError, TypeError) as exc:
                        raise ModeratorError(
                            f"cannot load the processor of a vision-language judge: {exc}",
                            where=self.where,
                            field="params.model",
                            expected="a vision-language checkpoint saved with its processor",
                            actual=repr(self.model),
                        ) from exc
            return self._proc

    def _media_prompt(self, prefix: str, parts: list[ContentPart], tail: str, room: int) -> Prompt:
        from audit.media import MediaItemError, from_data_url

        content = user_content(prefix, parts)
        assert isinstance(content, list)
        try:
            images = tuple(
                from_data_url(str(p["image_url"]["url"]), name=f"image part {k}")
                for k, p in enumerate(q for q in content if q.get("type") == "image_url")
            )
        except MediaItemError as exc:
            return Prompt([], [], ItemError("bad_response", f"{exc.error_type}: {exc.message}"))
        proc = self._processor()
        template = getattr(proc, "chat_template", None) if self.use_chat_template else None
        if template:
            chat = [
                {"type": "text", "text": str(p["text"])}
                if p["type"] == "text"
                else {"type": "image"}
                for p in content
            ]
            text = str(
                proc.apply_chat_template(
                    [{"role": "user", "content": chat}], add_generation_prompt=True, tokenize=False
                )
            )
        else:
            token = str(getattr(proc, "image_token", "") or "")
            text = "".join(str(p["text"]) if p["type"] == "text" else token for p in content)
            bos = getattr(self._tokenizer(), "bos_token", None)
            if bos and not text.startswith(bos):
                text = bos + text  # a raw guard prompt excludes BOS (the tokenizer adds it)
        text += tail
        return Prompt([], self._ids(text, special=False), (text, images))

    def _batches(self, prompts: Sequence[Prompt], batch_size: int) -> list[list[int]]:
        """Token prompts together, media prompts together (each is one vLLM call)."""
        text = [i for i, p in enumerate(prompts) if p.media is None]
        media = [i for i, p in enumerate(prompts) if p.media is not None]
        return [b for b in (text, media) if b]

    def _media_logprobs(
        self, prompts: Sequence[Prompt], cand: dict[str, list[int]]
    ) -> list[dict[int, float] | ItemError]:
        """Exact candidate log-probs after each media prompt (see the module doc)."""
        vllm = self._vllm
        got: list[dict[int, float] | ItemError] = [
            p.media if isinstance(p.media, ItemError) else {} for p in prompts
        ]
        live = [j for j, g in enumerate(got) if isinstance(g, dict)]
        first = vllm.SamplingParams(max_tokens=1, temperature=0.0, logprobs=_TOP, detokenize=False)
        for j, res in zip(live, self._submit([prompts[j] for j in live], [first] * len(live))):
            try:
                step = res.outputs[0].logprobs[0]
                got[j] = {int(t): float(lp.logprob) for t, lp in step.items()}
            except (AttributeError, IndexError, KeyError, TypeError) as exc:
                got[j] = ItemError("bad_response", f"no logprobs in the output: {exc!r}")
        wanted = self._wanted(cand)
        todo = [
            (j, t) for j in live for t in wanted if isinstance(g := got[j], dict) and t not in g
        ]
        if todo:
            params = [
                vllm.SamplingParams(
                    max_tokens=1,
                    temperature=0.0,
                    logprobs=0,
                    allowed_token_ids=[t],
                    detokenize=False,
                )
                for _, t in todo
            ]
            for (j, t), res in zip(todo, self._submit([prompts[j] for j, _ in todo], params)):
                g = got[j]
                if not isinstance(g, dict):
                    continue
                try:
                    g[t] = float(res.outputs[0].logprobs[0][t].logprob)
                except (AttributeError, IndexError, KeyError, TypeError) as exc:
                    got[j] = ItemError("bad_response", f"no logprob for token {t}: {exc!r}")
        return got
