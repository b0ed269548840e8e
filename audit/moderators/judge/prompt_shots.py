"""Few-shot examples in judge prompts: template variables of the examples (content
neutralised like item content, the answer in the template's own format, restricted
to what the prompt asks about). Used by :func:`audit.moderators.judge.prompts.render`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from audit.errors import ModeratorError
from audit.moderators.judge.neutralise import neutralise
from audit.schema import Item

if TYPE_CHECKING:
    from audit.moderators.judge.fewshot import Example
    from audit.policy import Policy

__all__ = ["example_codes", "legacy_vars", "shot_vars", "tag"]

#: Few-shot example rationales are cut to this many characters.
_RATIONALE_CHARS = 200
_SAFE_TAG = re.compile(r"[^A-Za-z0-9._:-]")
#: taxonomy key of the policy mapping the Llama Guard templates list
_LG_TAXONOMY = "llama_guard_3"
_LG_TEMPLATES = frozenset({"llama_guard", "llama_guard_4"})


def tag(item: Item) -> str:
    """The delimiter tag of an item: a short content hash, never its id (ids can
    encode gold labels)."""
    h = item.content_hash or hashlib.sha256(item.text().encode("utf-8")).hexdigest()
    return _SAFE_TAG.sub("_", h)[:12] or "item"


def legacy_vars(
    policy: Policy,
    few_shot: Sequence[tuple[Item, dict[str, bool]]],
    template: str,
    selected: Sequence[str],
    specials: frozenset[str],
) -> list[dict[str, Any]]:
    """Template variables of the legacy ``few_shot=`` examples (platform template)."""
    legacy = []
    for ex_item, labels in few_shot:
        bad = [k for k in labels if k not in policy.category_ids]
        if bad:
            raise ModeratorError(
                "few-shot example labels name unknown categories",
                field="few_shot",
                expected=f"category ids of {policy.ref}",
                actual=", ".join(bad),
            )
        legacy.append(
            {
                "tag": tag(ex_item),
                "content": neutralise(ex_item.text(), template, specials),
                "violations": json.dumps([c for c in selected if labels.get(c)]),
            }
        )
    return legacy


def example_codes(policy: Policy, violations: set[str], order: Sequence[str]) -> list[str]:
    """Llama Guard codes for an example violating ``violations``, among the prompt's
    sections ``order`` (in that order).

    A code is chosen when every platform category it maps to is violated, so that the
    answer parses back (``parsers.parse``) to exactly the example's labels; a violated
    category that no such code covers falls back to every listed code mapping to it
    (e.g. ``illicit_fraud`` only has ``S2``, which also maps to other categories).
    A violation with no listed code at all is outside the prompt's categories.
    """
    targets: dict[str, set[str]] = {}
    for e in policy.mapping(_LG_TAXONOMY).edges:
        if e.target is not None:
            targets.setdefault(e.source, set()).add(e.target)
    chosen = {c for c in order if targets.get(c) and targets[c] <= violations}
    covered = set().union(*(targets[c] for c in chosen))
    for v in violations - covered:
        chosen.update(c for c in order if v in targets.get(c, ()))
    return [c for c in order if c in chosen]


def shot_vars(
    policy: Policy,
    examples: Sequence[Example],
    template: str,
    selected: Sequence[str],
    order: Sequence[str],
    specials: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Template variables of the few-shot examples: content neutralised like item
    content, and the answer data, restricted to what the prompt asks about (the
    selected categories; for Llama Guard the listed codes)."""
    shots: list[dict[str, Any]] = []
    for ex in examples:
        bad = [c for c in ex.violations if c not in policy.category_ids]
        if bad:
            raise ModeratorError(
                f"few-shot example {ex.id!r} names unknown categories",
                field="examples",
                expected=f"category ids of {policy.ref}",
                actual=", ".join(bad),
            )
        violations = [c for c in selected if c in set(ex.violations)]
        codes = example_codes(policy, set(violations), order) if template in _LG_TEMPLATES else []
        rationale = None
        if ex.rationale:
            rationale = neutralise(" ".join(ex.rationale.split()), template, specials)
            if len(rationale) > _RATIONALE_CHARS:
                rationale = rationale[: _RATIONALE_CHARS - 1].rstrip() + "…"
        shots.append(
            {
                "tag": hashlib.sha256(ex.text.encode("utf-8")).hexdigest()[:12],
                "content": neutralise(ex.text, template, specials),
                "violations": json.dumps(violations),
                "rationale": None
                if rationale is None
                else json.dumps(rationale, ensure_ascii=False),
                "codes": codes,
                "unsafe": bool(codes) if template in _LG_TEMPLATES else bool(violations),
            }
        )
    return shots
