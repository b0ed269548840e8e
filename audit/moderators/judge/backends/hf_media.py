"""Images on the transformers judge backend (vision-language checkpoints).

An item with images reaches a backend as OpenAI-style content parts
(``{"type": "text"}`` / ``{"type": "image_url"}`` with a PNG data URL; see
``_common.Suffix``). :class:`HFMediaMixin` turns them into the processor's inputs:

* with the model's chat template (``Preset.chat_template``), the parts become one
  user message in the processor's chat format (``{"type": "image"}`` entries, PIL
  images passed alongside) rendered by ``processor.apply_chat_template``;
* with a raw guard template (the prompt already has the model's turn markers, e.g.
  ``llama_guard_4``), each image part becomes the processor's own image token
  (``processor.image_token``, ``<|image|>`` for Llama 4) in the text;

then ``processor(text=..., images=...)`` expands the image tokens and computes the
pixel tensors. The ids and the tensors form a whole :class:`~.base.Prompt` (no shared
prefix: image tokens depend on the item) that is never cut (an over-long one is an
``ItemError("prompt_too_long")``).

Scoring runs through the shared loops of :mod:`.base` like text: ``logprob`` mode is
one forward pass with the pixel tensors and the log-softmax of the last position over
the label tokens; ``generate`` mode is ``model.generate`` (which knows each
architecture's image/position bookkeeping), greedy or seeded per (item, sample), with
the chosen tokens' temperature-1 log-probabilities from the raw logits and the text
cut at the first stop string. docs/methods/media.md, "Multimodal judges".
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from audit.moderators.judge.backends._common import (
    ContentPart,
    GenOut,
    ItemError,
    user_content,
)
from audit.moderators.judge.backends.base import GenSettings, Prompt

__all__ = ["HFMediaMixin"]


class HFMediaMixin:
    """The image half of :class:`~audit.moderators.judge.backends.hf.HFBackend`."""

    use_chat_template: bool
    where: ClassVar[str]
    _lock: AbstractContextManager[Any]
    _model: Any
    _device: str | None
    _keep_kw: bool
    _eos: set[int]

    if TYPE_CHECKING:  # provided by HFLoader / TokenBackend in HFBackend's MRO

        def _processor(self) -> Any: ...

        def _tokenizer(self) -> Any: ...

        def _too_long(self, n: int, room: int) -> ItemError: ...

    # ------------------------------------------------------------------ preparation

    def _media_prompt(self, prefix: str, parts: list[ContentPart], tail: str, room: int) -> Prompt:
        """Processor inputs for ``prefix`` + ``parts`` + ``tail`` (see the module doc)."""
        from audit.media import MediaItemError, from_data_url

        content = user_content(prefix, parts)
        assert isinstance(content, list)
        try:
            images = [
                from_data_url(str(p["image_url"]["url"]), name=f"image part {k}")
                for k, p in enumerate(q for q in content if q.get("type") == "image_url")
            ]
        except MediaItemError as exc:
            return Prompt([], [], ItemError("bad_response", f"{exc.error_type}: {exc.message}"))
        proc = self._processor()
        template = self._media_template(proc)
        if template is not None:
            chat = [
                {"type": "text", "text": str(p["text"])}
                if p["type"] == "text"
                else {"type": "image"}
                for p in content
            ]
            text = (
                str(
                    proc.apply_chat_template(
                        [{"role": "user", "content": chat}],
                        chat_template=template,
                        add_generation_prompt=True,
                        tokenize=False,
                    )
                )
                + tail
            )
        else:
            token = self._image_token(proc)
            text = "".join(str(p["text"]) if p["type"] == "text" else token for p in content)
            text += tail
        enc = proc(
            text=[text],
            images=images,
            return_tensors="pt",
            add_special_tokens=template is None,  # a chat template writes BOS itself
        )
        ids = [int(t) for t in enc["input_ids"][0].tolist()]
        if len(ids) > room:
            return Prompt([], ids, self._too_long(len(ids), room))
        extra = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
        return Prompt([], ids, extra)

    def _media_template(self, proc: Any) -> str | None:
        """The chat template media prompts go through, or ``None`` (raw template)."""
        if not self.use_chat_template:
            return None
        for src in (proc, self._tokenizer()):
            template = getattr(src, "chat_template", None)
            if isinstance(template, str) and template:
                return template
        return None

    def _image_token(self, proc: Any) -> str:
        from audit.errors import ModeratorError

        token = getattr(proc, "image_token", None)
        if not isinstance(token, str) or not token:
            raise ModeratorError(
                "this processor names no image token for a raw-prompt template",
                where=self.where,
                field="params.preset",
                expected="a processor with image_token (LLaVA, Llama 4, Idefics3...)",
                actual=type(proc).__name__,
                fix="use a preset with chat_template (shieldgemma_2) or another checkpoint",
            )
        return token

    def _media_inputs(self, prompt: Prompt) -> dict[str, Any]:
        """Model inputs of one media prompt on the model's device (float tensors in
        the model's dtype, as the processor makes float32 pixels)."""
        import torch

        dtype = next(self._model.parameters()).dtype
        kw: dict[str, Any] = {
            "input_ids": torch.tensor([prompt.ids], device=self._device),
            "attention_mask": torch.ones(
                (1, len(prompt.ids)), dtype=torch.long, device=self._device
            ),
        }
        for k, v in dict(prompt.media).items():
            if isinstance(v, torch.Tensor):
                v = v.to(self._device, dtype=dtype) if v.is_floating_point() else v.to(self._device)
            kw[k] = v
        return kw

    # ------------------------------------------------------------------ scoring

    def _media_label_logprobs(
        self, prompt: Prompt, wanted: list[int]
    ) -> dict[int, float] | ItemError:
        """Log-probs of the candidate tokens after one media prompt (one forward pass)."""
        import torch

        if isinstance(prompt.media, ItemError):
            return prompt.media
        kw = self._media_inputs(prompt)
        if self._keep_kw:
            kw["logits_to_keep"] = 1
        with torch.inference_mode():
            out = self._model(**kw, use_cache=False)
        logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)[0, wanted].cpu().tolist()
        return dict(zip(wanted, (float(x) for x in logp)))

    def _media_generate(
        self, prompt: Prompt, seed: int, settings: GenSettings
    ) -> GenOut | ItemError:
        """One continuation of a media prompt with ``model.generate`` (greedy, or
        sampled from the global torch RNG seeded per (item, sample) under the lock)."""
        import torch

        if isinstance(prompt.media, ItemError):
            return prompt.media
        kw = self._media_inputs(prompt)
        gen: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens,
            "do_sample": not settings.greedy,
            "return_dict_in_generate": True,
            "output_logits": True,
            "pad_token_id": self._tokenizer().pad_token_id,
        }
        if not settings.greedy:
            gen.update(temperature=settings.temperature, top_p=settings.top_p, top_k=0)
        if self._eos:
            gen["eos_token_id"] = sorted(self._eos)
        with torch.inference_mode():
            if not settings.greedy:
                torch.manual_seed(seed & 0x7FFFFFFFFFFFFFFF)
            out = self._model.generate(**kw, **gen)
        new = [int(t) for t in out.sequences[0, len(prompt.ids) :].tolist()]
        lps: list[float] = []
        for step, t in zip(out.logits, new):
            lp = float(torch.log_softmax(step[0].float(), dim=-1)[t])
            lps.append(lp if math.isfinite(lp) else -1e30)
        return self._media_gen_out(new, lps, settings)

    def _media_gen_out(self, new: list[int], lps: list[float], settings: GenSettings) -> GenOut:
        """The :class:`GenOut` of generated ids: cut at EOS (not counted) and at the
        first stop string, like the text decoder."""
        tok = self._tokenizer()
        done = False
        for j, t in enumerate(new):
            if t in self._eos:
                new, lps, done = new[:j], lps[:j], True
                break
        text = str(tok.decode(new, skip_special_tokens=True))
        cut = min((text.find(s) for s in settings.stop if s and s in text), default=-1)
        if cut >= 0:
            text, done = text[:cut], True
        return GenOut(
            text=text,
            n_tokens=len(new),
            finish_reason="stop" if done else "length",
            token_logprobs=lps,
        )
