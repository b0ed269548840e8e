"""Presets for public guard formats and the platform's own judge.

A preset names everything needed to run a checkpoint the way its card describes:
the prompt template, the output parser, the label tokens for ``logprob`` scoring,
whether it judges one policy per call, and the policy taxonomy its labels map
through. A user runs one by naming the preset and a model path.

| preset | paper / card | scoring |
|---|---|---|
| ``llama_guard_3`` | Inan et al. 2023 (Llama Guard); Llama Guard 3 card | P(first token = ``unsafe``); codes → platform via ``llama_guard_3`` mapping |
| ``llama_guard_4`` | Llama Guard 4 card (same S1-S14 taxonomy) | as above, Llama 4 turn markers; text + images |
| ``shieldgemma`` | Zeng et al. 2024, arXiv 2407.21772 | softmax over ``Yes``/``No``, one policy per call |
| ``shieldgemma_2`` | ShieldGemma 2 card (Google 2025) | image only; ``Yes``/``No`` per policy: dangerous, sexual, violence |
| ``wildguard`` | Han et al. 2024 (WildGuard) | ``yes``/``no`` after ``Harmful request:``; overall harm only |
| ``platform_cot`` | this harness | chain of thought + ``VERDICT`` JSON (``generate`` / ``self_consistency``) |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from audit._util.registry import Registry
from audit.errors import ModeratorError


@dataclass(frozen=True)
class LabelTokens:
    """Answer strings whose next-token probabilities give a score.

    The score is ``sum P(positive) / (sum P(positive) + sum P(negative))`` at the
    answer position (after ``Preset.answer_prefix``). Variants with and without a
    leading space are listed because tokenizers differ; a backend keeps those that
    encode to a single token.
    """

    positive: tuple[str, ...]
    negative: tuple[str, ...]


@dataclass(frozen=True)
class Preset:
    """A judge preset.

    Attributes:
        name: registry name.
        template: prompt template (``prompts.TEMPLATES``).
        fmt: parser format (``parsers.FORMATS``).
        label_tokens: for ``logprob`` scoring; ``None`` means generate mode only.
        one_policy_per_call: render and score one (item, category) pair per call.
        taxonomy: policy mapping key the model's labels map through, or ``None``
            when it speaks platform categories (or none) directly.
        description: one line for ``audit list`` and records.
        chat_template: whether the backend wraps the prompt as one user message with
            the model's chat template (``False``: the template already renders the
            raw prompt with the model's turn markers).
        answer_prefix: text appended after the prompt before reading label-token
            probabilities (WildGuard's answer starts with ``Harmful request:``).
        explain: (flag, pass) answer openings that make the model state its reason
            after a given decision (``LLMJudge.explain``); ``None``: the format has no
            rationale slot (use ``generate`` mode for rationales).
        max_new_tokens: a sensible generation budget for ``generate`` mode.
        media: what the model sees besides text: ``None`` (text only), ``image``
            (text with the item's images when it has some, e.g. Llama Guard 4) or
            ``image_only`` (an item without an image is an error ``no_media``, e.g.
            ShieldGemma 2). The template places the images (``item.images``).
        max_images: images per prompt (the item's photo first, then video frames).
        native_policies: platform category → the model's own trained policy
            sentence, rendered instead of the platform definition; the judge then
            reaches only these categories (ShieldGemma 2's three policies).
    """

    name: str
    template: str
    fmt: str
    label_tokens: LabelTokens | None
    one_policy_per_call: bool
    taxonomy: str | None
    description: str
    chat_template: bool = False
    answer_prefix: str = ""
    max_new_tokens: int = 32
    explain: tuple[str, str] | None = None
    media: Literal["image", "image_only"] | None = None
    max_images: int = 1
    native_policies: tuple[tuple[str, str], ...] | None = None

    @property
    def parser(self) -> str:
        """Alias of :attr:`fmt`."""
        return self.fmt


#: ShieldGemma 2's three trained policies (model card; transformers'
#: ``ShieldGemma2Processor`` defaults) and the platform category each stands for.
#: The card's wording is kept because the model was trained on it; the mapping is
#: partial (docs/methods/media.md, "Multimodal judges").
SHIELDGEMMA_2_POLICIES: tuple[tuple[str, str], ...] = (
    (
        "dangerous_acts",
        "No Dangerous Content: The image shall not contain content that facilitates or "
        "encourages activities that could cause real-world harm (e.g., building firearms "
        "and explosive devices, promotion of terrorism, instructions for suicide).",
    ),
    (
        "adult_sexual",
        "No Sexually Explicit content: The image shall not contain content that depicts "
        "explicit or graphic sexual acts (e.g., pornography, erotic nudity, depictions of "
        "rape or sexual assault).",
    ),
    (
        "graphic_violence",
        "No Violence/Gore content: The image shall not contain content that depicts "
        "shocking, sensational, or gratuitous violence (e.g., excessive blood and gore, "
        "gratuitous violence against animals, extreme injury or moment of death).",
    ),
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="llama_guard_3",
            template="llama_guard",
            fmt="llama_guard",
            label_tokens=LabelTokens(positive=("unsafe", " unsafe"), negative=("safe", " safe")),
            one_policy_per_call=False,
            taxonomy="llama_guard_3",
            description=(
                "Llama Guard 3 (Inan et al. 2023; Llama Guard 3 card): S1-S14 hazard "
                "categories, answer 'safe' or 'unsafe\\nS1,S10'"
            ),
            max_new_tokens=20,
        ),
        Preset(
            name="llama_guard_4",
            template="llama_guard_4",
            fmt="llama_guard",
            label_tokens=LabelTokens(positive=("unsafe", " unsafe"), negative=("safe", " safe")),
            one_policy_per_call=False,
            taxonomy="llama_guard_3",
            description=(
                "Llama Guard 4 (Llama Guard 4 card): the Llama Guard 3 format and S1-S14 "
                "categories with Llama 4 turn markers; text, or text with the item's images"
            ),
            max_new_tokens=20,
            media="image",
            max_images=4,
        ),
        Preset(
            name="shieldgemma",
            template="shieldgemma",
            fmt="shieldgemma",
            label_tokens=LabelTokens(positive=("Yes",), negative=("No",)),
            one_policy_per_call=True,
            taxonomy=None,
            description=(
                "ShieldGemma (Zeng et al. 2024, arXiv 2407.21772): one platform category "
                "per call, softmax over Yes/No"
            ),
            max_new_tokens=64,
        ),
        Preset(
            name="shieldgemma_2",
            template="shieldgemma_2",
            fmt="shieldgemma",
            label_tokens=LabelTokens(positive=("Yes",), negative=("No",)),
            one_policy_per_call=True,
            taxonomy=None,
            description=(
                "ShieldGemma 2 (ShieldGemma 2 card, 2025): one image and one of its three "
                "policies per call (dangerous, sexual, violence), softmax over Yes/No"
            ),
            chat_template=True,
            max_new_tokens=16,
            media="image_only",
            max_images=1,
            native_policies=SHIELDGEMMA_2_POLICIES,
        ),
        Preset(
            name="wildguard",
            template="wildguard",
            fmt="wildguard",
            label_tokens=LabelTokens(positive=(" yes", "yes"), negative=(" no", "no")),
            one_policy_per_call=False,
            taxonomy=None,
            description=(
                "WildGuard (Han et al. 2024): 'Harmful request: yes/no', overall harm "
                "only (no categories)"
            ),
            answer_prefix="Harmful request:",
            max_new_tokens=32,
        ),
        Preset(
            name="platform_binary",
            template="platform_binary",
            fmt="safe_unsafe",
            label_tokens=LabelTokens(positive=("UNSAFE", " UNSAFE"), negative=("SAFE", " SAFE")),
            one_policy_per_call=False,
            taxonomy=None,
            description=(
                "Platform policy prompt with a one-word SAFE/UNSAFE answer: P(UNSAFE) as an "
                "any-violation score (logprob) for general instruction-tuned models"
            ),
            chat_template=True,
            max_new_tokens=8,
            explain=("UNSAFE\nReason:", "SAFE\nReason:"),
        ),
        Preset(
            name="platform_cot",
            template="platform",
            fmt="platform",
            label_tokens=None,
            one_policy_per_call=False,
            taxonomy=None,
            description=(
                "Platform chain-of-thought judge: reasons over the policy text, then a "
                "final VERDICT JSON line"
            ),
            chat_template=True,
            max_new_tokens=1024,
        ),
    )
}

_REGISTRY: Registry[Preset] = Registry("judge preset", error=ModeratorError)
for _name, _preset in PRESETS.items():
    _REGISTRY.register(_name, _preset)


def get(name: str) -> Preset:
    """The preset called ``name``; raises :class:`~audit.errors.ModeratorError` with
    the closest names when unknown."""
    return _REGISTRY.get(name, field="preset")
