"""Judge prompts rendered from a policy version through Jinja templates.

A prompt is split in two (:class:`PromptParts`):

* ``prefix``: the instructions and the policy text. It depends only on the policy,
  the template, the category selection and the section order, never on the item,
  so it is byte-identical for every item of a run and a backend can compute its KV
  cache once and reuse it.
* ``suffix``: the per-item part (context line, optional few-shot examples, the
  delimited content, the answer instruction).

``prefix + suffix`` is the whole prompt. Templates live in ``templates/<name>.j2``
(autoescape off, ``StrictUndefined``):

| template | format | answer |
|---|---|---|
| ``platform`` | the platform's own chain-of-thought format | reasoning, then ``VERDICT: {"violations": [...], "rationale": "..."}`` |
| ``llama_guard`` | Llama Guard 3 (Inan et al. 2023, "Llama Guard: LLM-based Input-Output Safeguard for Human-AI Conversations"; Llama Guard 3 model card) | ``safe`` or ``unsafe\\nS1,S10`` |
| ``llama_guard_4`` | Llama Guard 4 model card: the same format with Llama 4 turn markers | as ``llama_guard`` |
| ``shieldgemma`` | ShieldGemma (Zeng et al. 2024, arXiv 2407.21772), one policy per call | ``Yes`` / ``No`` first |
| ``shieldgemma_2`` | ShieldGemma 2 card (2025): one image, one policy per call, chat template | ``Yes`` / ``No`` first |
| ``wildguard`` | WildGuard (Han et al. 2024, "WildGuard: Open One-Stop Moderation Tools...") | ``Harmful request: yes/no`` |

The ``platform`` template is plain instruction text that a backend wraps as one user
message with the model's chat template. The guard templates render the *raw* prompt
the model cards describe, turn markers included (BOS excluded: the tokenizer adds
it), so a backend must not wrap them again (see ``Preset.chat_template``).

Content safety: the item text is neutralised before rendering (:func:`neutralise`):
every string the backend's tokenizer maps to a special or added token
(``specials=``, from ``JudgeBackend.special_strings``), line/paragraph separators
(CR, U+2028, U+2029, NEL) turned into ``\n``, any run of three or more angle
brackets (so ``<<<END CONTENT>>>`` cannot be forged), special-token look-alikes of
the common formats (``<|...|>``, ``<｜...｜>``, ``<start_of_turn>``, ``</think>``,
``[INST]``, ``[SYSTEM_PROMPT]``, ``<s>``),
Llama Guard section tags (``<BEGIN ...>``/``<END ...>``) and, per template, lines
that would impersonate a role of the format (``User:``/``Agent:`` for Llama Guard,
``Human user:``/``AI assistant:``/``Harmful request:``... for WildGuard,
and ``VERDICT:`` anywhere for the platform format). The delimiter tag is a short hash of the
content, never the item id (ids can encode gold labels); context shows only surface,
language and which text fields are present, never other slice values.

Few-shot examples (``render(..., examples=...)``, chosen per item by
:class:`audit.moderators.judge.fewshot.FewShotSelector`) go in the suffix, before the
item, in every template: each example's content is delimited and neutralised exactly
like the item's and followed by its gold answer in the template's own answer format
(the ``VERDICT`` line, ``SAFE``/``UNSAFE``, ``safe``/``unsafe`` + codes, ``Yes``/``No``,
``Harmful request: yes/no``), about the categories the prompt asks about only. The
few-shot blocks are part of the template source, hence of ``template_hash``; without
examples the prompt is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.errors import ModeratorError
from audit.moderators.judge.neutralise import IMAGE_MARKER
from audit.moderators.judge.neutralise import neutralise as neutralise
from audit.moderators.judge.prompt_shots import legacy_vars, shot_vars
from audit.moderators.judge.prompt_shots import tag as _tag
from audit.schema import TEXT_FIELDS, Item

if TYPE_CHECKING:
    import jinja2

    from audit.moderators.judge.fewshot import Example
    from audit.policy import Policy

TEMPLATES_DIR = Path(__file__).parent / "templates"

#: Templates shipped in ``templates/``.
TEMPLATES: tuple[str, ...] = (
    "platform",
    "platform_binary",
    "llama_guard",
    "llama_guard_4",
    "shieldgemma",
    "shieldgemma_2",
    "wildguard",
)

#: Templates that judge one policy category per call.
ONE_POLICY_TEMPLATES = frozenset({"shieldgemma", "shieldgemma_2"})

#: Templates that judge the item's image only: no item text, no few-shot examples.
IMAGE_ONLY_TEMPLATES = frozenset({"shieldgemma_2"})

#: Templates that can show the item's images (``render(images=...)``).
MEDIA_TEMPLATES = frozenset({"llama_guard_4", "shieldgemma_2"})

#: Templates that render the item's text (and take few-shot examples).
TEXT_TEMPLATES: tuple[str, ...] = tuple(t for t in TEMPLATES if t not in IMAGE_ONLY_TEMPLATES)

#: Templates whose sections are Llama Guard hazard codes of the policy's
#: ``llama_guard_3`` mapping rather than platform categories.
LLAMA_GUARD_TEMPLATES = frozenset({"llama_guard", "llama_guard_4"})

#: Templates that take the legacy ``few_shot=`` examples of :func:`render`.
#: (``examples=``, from ``fewshot.FewShotSelector``, works with every template.)
FEW_SHOT_TEMPLATES = frozenset({"platform"})

#: Taxonomy key of the policy mapping the Llama Guard templates list.
LLAMA_GUARD_TAXONOMY = "llama_guard_3"

#: Llama Guard 3/4 hazard category names (model cards; MLCommons AI Safety taxonomy).
LLAMA_GUARD_CATEGORY_NAMES: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex Crimes",
    "S4": "Child Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}


@dataclass(frozen=True)
class PromptParts:
    """A rendered prompt.

    Attributes:
        prefix: instructions + policy text; identical for every item of a run.
        suffix: the per-item part; the prompt is ``prefix + suffix``. With images it
            holds one :data:`IMAGE_MARKER` where each image goes.
        template_hash: sha256 over the template source (with any template it
            extends), the policy digest, the category selection and the section
            order, i.e. everything that shapes ``prefix``.
        images: the item's images as PNG data URLs, in marker order (empty: text).
    """

    prefix: str
    suffix: str
    template_hash: str
    images: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The whole prompt (image markers included)."""
        return self.prefix + self.suffix

    def content(self) -> str | list[dict[str, Any]]:
        """The per-item part as a backend receives it: the suffix text for a
        text-only item, else OpenAI-style content parts (``text`` / ``image_url``)
        with each image where the template placed it (docs/methods/media.md)."""
        if not self.images:
            return self.suffix
        pieces = self.suffix.split(IMAGE_MARKER)
        parts: list[dict[str, Any]] = []
        for i, piece in enumerate(pieces):
            if piece:
                parts.append({"type": "text", "text": piece})
            if i < len(self.images):
                parts.append({"type": "image_url", "image_url": {"url": self.images[i]}})
        return parts


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _check_template(template: str) -> None:
    if template not in TEMPLATES:
        import difflib

        close = difflib.get_close_matches(template, TEMPLATES, n=1)
        raise ModeratorError(
            f"unknown judge template {template!r}",
            expected=f"one of {', '.join(TEMPLATES)}",
            actual=repr(template),
            fix=f"did you mean {close[0]!r}?" if close else "use one of the shipped templates",
        )


@lru_cache(maxsize=32)
def template_source(template: str) -> str:
    """Source of ``template`` followed by the sources of the templates it extends or
    includes (recursively), as hashed into :attr:`PromptParts.template_hash`."""
    from jinja2 import meta

    _check_template(template)
    env = _env()
    seen: list[str] = []
    todo = [f"{template}.j2"]
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.append(name)
        src = (TEMPLATES_DIR / name).read_text(encoding="utf-8")
        todo.extend(sorted(t for t in meta.find_referenced_templates(env.parse(src)) if t))
    return "\n\x00\n".join(f"{n}\n{(TEMPLATES_DIR / n).read_text(encoding='utf-8')}" for n in seen)


def _llama_guard_codes(policy: Policy, categories: Sequence[str] | None) -> list[str]:
    mapping = policy.mapping(LLAMA_GUARD_TAXONOMY)
    codes: list[str] = []
    for e in mapping.edges:
        if e.source in codes:
            continue
        if categories is None or (e.target is not None and e.target in categories):
            codes.append(e.source)
    unknown = [c for c in codes if c not in LLAMA_GUARD_CATEGORY_NAMES]
    if unknown:
        raise ModeratorError(
            f"policy {policy.ref}: llama_guard_3 mapping has codes with no Llama Guard name",
            field=f"mappings.{LLAMA_GUARD_TAXONOMY}",
            expected=f"codes among {', '.join(LLAMA_GUARD_CATEGORY_NAMES)}",
            actual=", ".join(unknown),
        )
    return codes


def _selected(policy: Policy, categories: Sequence[str] | None) -> list[str]:
    if categories is None:
        return list(policy.category_ids)
    unknown = [c for c in categories if c not in policy.category_ids]
    if unknown or not categories:
        raise ModeratorError(
            "judge prompt: unknown or empty category selection",
            field="categories",
            expected=f"a non-empty subset of {', '.join(policy.category_ids)}",
            actual=repr(list(categories)),
        )
    # policy order, duplicates dropped
    return [c for c in policy.category_ids if c in set(categories)]


def sections(
    policy: Policy, template: str = "platform", categories: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The policy sections of ``template`` in default order: platform category ids,
    or Llama Guard codes (``S1``...) for the Llama Guard templates. ``section_order``
    must be a permutation of this tuple."""
    _check_template(template)
    if template in LLAMA_GUARD_TEMPLATES:
        return tuple(_llama_guard_codes(policy, categories))
    return tuple(_selected(policy, categories))


def _ordered(default: tuple[str, ...], section_order: Sequence[str] | None) -> list[str]:
    if section_order is None:
        return list(default)
    if sorted(section_order) != sorted(default):
        raise ModeratorError(
            "judge prompt: section_order must be a permutation of the policy sections",
            field="section_order",
            expected=repr(list(default)),
            actual=repr(list(section_order)),
        )
    return list(section_order)


#: policy detail levels a prompt can render (see :func:`render`)
DETAILS = ("full", "definitions")


def _item_vars(
    item: Item, template: str, specials: frozenset[str], n_images: int = 0
) -> dict[str, Any]:
    present = [k for k, v in item.fields.items() if v]
    marks = IMAGE_MARKER * n_images  # one marker per image
    content = neutralise(item.text(), template, specials)
    return {
        # image-only templates print ``item.images`` where their model expects the
        # image; the others carry it at the start of the judged content, so their
        # template source (and every text prompt's hash) is unchanged
        "images": marks if template in IMAGE_ONLY_TEMPLATES else "",
        "tag": _tag(item),
        "content": content if template in IMAGE_ONLY_TEMPLATES else marks + content,
        "surface": neutralise(item.context.get("surface") or "unknown", template, specials),
        "language": neutralise(item.context.get("language") or "unknown", template, specials),
        "fields": [TEXT_FIELDS.get(k, k) for k in present] or ["none"],
    }


def template_hash(
    policy: Policy,
    template: str = "platform",
    *,
    categories: Sequence[str] | None = None,
    section_order: Sequence[str] | None = None,
    detail: str = "full",
) -> str:
    """sha256 of the template source + policy digest (+ category selection, section
    order and a non-default policy detail when given)."""
    payload = {
        "template": template,
        "source": template_source(template),
        "policy_digest": policy.digest(),
        "categories": None if categories is None else _selected(policy, categories),
        "section_order": None if section_order is None else list(section_order),
    }
    if detail != "full":
        payload["detail"] = detail
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    ).hexdigest()


def _check_render(
    template: str,
    detail: str,
    selected: Sequence[str],
    few_shot: Sequence[tuple[Item, dict[str, bool]]],
    examples: Sequence[Example] | None,
) -> None:
    """The argument checks of :func:`render` (one clear error before rendering)."""
    if detail not in DETAILS:
        raise ModeratorError(
            "unknown policy detail level",
            field="policy_detail",
            expected=" | ".join(DETAILS),
            actual=repr(detail),
        )
    if template in ONE_POLICY_TEMPLATES and len(selected) != 1:
        raise ModeratorError(
            f"template {template!r} judges one policy category per call",
            field="categories",
            expected="exactly one category id (use prompts.one_category)",
            actual=repr(list(selected)),
        )
    if few_shot and template not in FEW_SHOT_TEMPLATES:
        raise ModeratorError(
            f"template {template!r} takes no few-shot examples",
            field="few_shot",
            expected=f"few-shot examples only with {', '.join(sorted(FEW_SHOT_TEMPLATES))}",
            actual=f"{len(few_shot)} examples",
        )
    if examples and template in IMAGE_ONLY_TEMPLATES:
        raise ModeratorError(
            f"template {template!r} judges images only and takes no text examples",
            field="few_shot",
            expected="no few_shot with an image-only preset",
            actual=f"{len(examples)} examples",
            fix="remove params.few_shot",
        )
    if few_shot and examples:
        raise ModeratorError(
            "judge prompt: give few_shot or examples, not both",
            field="examples",
            expected="one source of few-shot examples",
            actual=f"{len(few_shot)} few_shot and {len(examples)} examples",
        )


def _section_vars(
    policy: Policy, template: str, order: Sequence[str], native: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Template variables of the policy sections, in prompt order (``native``: the
    model's own policy sentence per category, where its template prints one)."""
    if template in LLAMA_GUARD_TEMPLATES:
        return [{"id": code, "name": LLAMA_GUARD_CATEGORY_NAMES[code]} for code in order]
    out: list[dict[str, Any]] = []
    for cid in order:
        c = policy.category(cid)
        out.append(
            {
                "id": c.id,
                "name": c.name,
                "definition": c.definition,
                "not_allowed": list(c.not_allowed),
                "allowed": list(c.allowed),
                "native": (native or {}).get(cid),
            }
        )
    return out


def _split_rendered(text: str, split: str, template: str, n_images: int) -> tuple[str, str]:
    """(prefix, suffix) of a rendered prompt; every image marker must sit in the
    per-item suffix (the prefix is shared by all items) and appear once per image."""
    prefix, sep, suffix = text.partition(split)
    if not sep or split in suffix:  # pragma: no cover - template bug
        raise ModeratorError(f"template {template!r} must contain {{{{ SPLIT }}}} exactly once")
    placed = suffix.count(IMAGE_MARKER)
    if n_images and template not in MEDIA_TEMPLATES:
        placed = -1  # a text template: refuse rather than slip images into its content
    if IMAGE_MARKER in prefix or placed != n_images:
        raise ModeratorError(
            f"template {template!r} does not place the item's images in its per-item part",
            field="template",
            expected=f"{n_images} image position(s) after {{{{ SPLIT }}}} in a media template",
            actual=f"{max(placed, 0)} in the suffix, {prefix.count(IMAGE_MARKER)} in the prefix",
            fix="use a preset whose template declares media (e.g. llama_guard_4, shieldgemma_2)",
        )
    return prefix, suffix


def render(
    policy: Policy,
    item: Item,
    *,
    template: str = "platform",
    categories: Sequence[str] | None = None,
    few_shot: Sequence[tuple[Item, dict[str, bool]]] = (),
    section_order: Sequence[str] | None = None,
    examples: Sequence[Example] | None = None,
    detail: str = "full",
    specials: frozenset[str] = frozenset(),
    images: Sequence[str] = (),
    native: Mapping[str, str] | None = None,
) -> PromptParts:
    """Render the judge prompt for ``item``.

    Args:
        policy: the policy version; categories, definitions and examples come from it.
        item: the item to judge.
        template: one of :data:`TEMPLATES`.
        categories: platform category ids to include (default all); Llama Guard
            templates list the hazard codes mapped onto them; one-policy templates
            need exactly one (:func:`one_category`).
        few_shot: legacy labelled examples ``(item, {category: violates})``
            (``platform`` template only).
        section_order: a permutation of :func:`sections` (robustness probe).
        examples: few-shot examples (``fewshot.FewShotSelector.select``), rendered in
            the suffix, delimited and neutralised like the item, each followed by its
            answer in the template's format about the selected categories only.
        detail: ``full`` or ``definitions`` (definitions only, about a quarter as long).
        specials: the backend tokenizer's special-token strings, defused in every
            item-derived string by :func:`neutralise`.
        images: the item's images as data URLs (``audit.media.to_data_url``), placed
            where the template prints ``item.images``; :meth:`PromptParts.content`
            then returns content parts.
        native: category → the model's own policy sentence
            (``Preset.native_policies``), for templates that print it.

    Raises:
        ModeratorError: unknown template, categories, section order or example
            labels, or a template that does not place the images.
    """
    _check_template(template)
    selected = _selected(policy, categories)
    _check_render(template, detail, selected, few_shot, examples)
    order = _ordered(sections(policy, template, categories), section_order)
    split = f"\x1e{uuid.uuid4().hex}\x1e"
    text = (
        _env()
        .get_template(f"{template}.j2")
        .render(
            policy={"ref": policy.ref, "name": policy.name, "description": policy.description},
            sections=_section_vars(policy, template, order, native),
            ids=selected,
            item=_item_vars(item, template, specials, len(images)),
            examples=legacy_vars(policy, few_shot, template, selected, specials),
            shots=shot_vars(
                policy,
                examples or (),
                template,
                selected,
                sections(policy, template, categories),
                specials,
            ),
            detail=detail,
            SPLIT=split,
        )
    )
    prefix, suffix = _split_rendered(text, split, template, len(images))
    return PromptParts(
        prefix=prefix,
        suffix=suffix,
        template_hash=template_hash(
            policy, template, categories=categories, section_order=section_order, detail=detail
        ),
        images=tuple(images),
    )


def one_category(
    policy: Policy,
    item: Item,
    category: str,
    template: str = "shieldgemma",
    *,
    examples: Sequence[Example] | None = None,
    specials: frozenset[str] = frozenset(),
    images: Sequence[str] = (),
    native: Mapping[str, str] | None = None,
) -> PromptParts:
    """The prompt for one (item, category) pair, for one-policy-per-call formats
    (ShieldGemma, Zeng et al. 2024, arXiv 2407.21772). ``examples``, ``specials`` and
    ``images`` as in :func:`render`; the examples' answer is about ``category`` only."""
    return render(
        policy,
        item,
        template=template,
        categories=[category],
        examples=examples,
        specials=specials,
        images=images,
        native=native,
    )
