"""Content neutralisation for judge prompts: item text can never forge a delimiter,
a special token, a turn marker or a role line of the prompt format.

See :func:`neutralise` and the module doc of :mod:`audit.moderators.judge.prompts`
(content safety) for what is defused and why.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: Stands for one image in a rendered prompt (templates print it through
#: ``item.images``); :func:`neutralise` removes it from item text, so only a template
#: can place an image.
IMAGE_MARKER = "\x1dAUDIT_IMAGE\x1d"

_ANGLE_RUN = re.compile(r"[<>＜＞﹤﹥]{3,}")
#: Special-token look-alikes of the common chat formats, whatever the tokenizer:
#: ``<|...|>`` and its full-width ``<｜...｜>`` form (DeepSeek), tag-like tokens
#: (``<start_of_turn>``, ``<start_of_image>``, ``</think>``, ``<tool_call>``, ``<s>``)
#: and upper-case bracket tokens (``[INST]``, ``[SYSTEM_PROMPT]``, ``[TOOL_CALLS]``).
#: The tokenizer's own special vocabulary is defused on top (``specials=``).
_SPECIAL = re.compile(
    r"<\||\|>|<｜|｜>"
    r"|</?[A-Za-z_][\w.:▁-]{0,48}/?>"
    r"|(?i:<\s*/?\s*(?:start_of_turn|end_of_turn|bos|eos|s|pad|unk)\s*>)"
    r"|\[\s*/?\s*[A-Z][A-Z0-9_]*\s*\]|(?i:\[\s*/?\s*inst\s*\])"
)
#: Line and paragraph separators a renderer or a model may treat as a line break
#: (so a role line after them would start a line): all become ``\n`` first.
_LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029\u0085\x0b\x0c]")
_WORD_JOINER = "\u2060"
_LG_TAG = re.compile(r"<(\s*(?:BEGIN|END)\s)", re.IGNORECASE)
#: Role labels neutralised at the start of a line, per template.
_ROLE_LINES: dict[str, tuple[str, ...]] = {
    "llama_guard": ("User", "Agent"),
    "llama_guard_4": ("User", "Agent"),
    "shieldgemma": ("Human Question",),
    "wildguard": ("Human user", "AI assistant", "Answers"),
}
#: Answer labels neutralised anywhere in the content, per template.
_ROLE_WORDS: dict[str, tuple[str, ...]] = {
    "platform": ("VERDICT",),
    "platform_binary": ("VERDICT",),
    "wildguard": ("Harmful request", "Response refusal", "Harmful response"),
}


def _swap(s: str) -> str:
    return (
        s.replace("<", "‹")
        .replace("＜", "‹")
        .replace("﹤", "‹")
        .replace(">", "›")
        .replace("＞", "›")
        .replace("﹥", "›")
        .replace("[", "⟦")
        .replace("]", "⟧")
        .replace("｜", "¦")
    )


def _defuse(token: str) -> str:
    """``token`` changed so that no tokenizer matches it as the special token any
    more: its brackets swapped (:func:`_swap`) or, for a token without brackets, a
    word joiner (U+2060, invisible) after its first character."""
    out = _swap(token)
    return out if out != token else token[:1] + _WORD_JOINER + token[1:]


#: an index of special-token strings: a regex of their first characters (where a
#: match can start) and, per first character, ``(length, lower-cased strings)``
#: groups, longest first
_SpecialsIndex = tuple[re.Pattern[str], dict[str, tuple[tuple[int, frozenset[str]], ...]]]


@lru_cache(maxsize=16)
def _specials_index(specials: frozenset[str]) -> _SpecialsIndex | None:
    # whitespace-only or one-character added tokens are no control markers. A regex
    # alternation of thousands of strings (Gemma has ~6000 added tokens) costs
    # ~0.1 s per item, so candidates are found by first character and checked by
    # length with set look-ups. Case is ignored because a ``normalized`` added token
    # matches after the tokenizer's normaliser, which may lower-case the text.
    groups: dict[str, dict[int, set[str]]] = {}
    for t in specials:
        if len(t) > 1 and t.strip():
            low = t.lower()
            groups.setdefault(low[0], {}).setdefault(len(low), set()).add(low)
    if not groups:
        return None
    firsts = re.compile("[" + "".join(re.escape(c) for c in sorted(groups)) + "]", re.IGNORECASE)
    index = {
        c: tuple((n, frozenset(g[n])) for n in sorted(g, reverse=True)) for c, g in groups.items()
    }
    return firsts, index


def _defuse_specials(text: str, index: _SpecialsIndex) -> str:
    """``text`` with every (case-insensitive) occurrence of an indexed special-token
    string defused, scanning left to right and preferring the longest match."""
    firsts, by_first = index
    out: list[str] = []
    done = pos = 0
    while (m := firsts.search(text, pos)) is not None:
        j = m.start()
        hit = 0
        for n, strings in by_first.get(text[j].lower(), ()):
            if text[j : j + n].lower() in strings:
                hit = n
                break
        if hit:
            out.append(text[done:j])
            out.append(_defuse(text[j : j + hit]))
            done = pos = j + hit
        else:
            pos = j + 1
    out.append(text[done:])
    return "".join(out)


def neutralise(
    text: str, template: str = "platform", specials: frozenset[str] = frozenset()
) -> str:
    """``text`` with every delimiter, special-token look-alike and role line of
    ``template`` defused (angle brackets become ``‹ ›``, a role line's colon becomes
    ``꞉``). Ordinary text, including single ``<``/``>``, is left unchanged.

    Args:
        text: item (or example) text.
        template: the judge template (its role lines and answer words).
        specials: the strings the backend's tokenizer maps to a special token (its
            special and added-special vocabulary, ``JudgeBackend.special_strings``):
            each occurrence is defused (:func:`_defuse`), so item text can never
            encode to a special token id, whatever the chat format.

    Line and paragraph separators (bare CR, CRLF, U+2028, U+2029, NEL U+0085, VT,
    FF) become ``\n`` first, so a fake role line after one is caught like one after
    a newline.
    """
    out = _LINE_BREAKS.sub("\n", text).replace(IMAGE_MARKER, "")
    index = _specials_index(frozenset(specials))
    if index is not None:
        out = _defuse_specials(out, index)
    out = _ANGLE_RUN.sub(lambda m: _swap(m.group()), out)
    out = _SPECIAL.sub(lambda m: _swap(m.group()), out)
    out = _LG_TAG.sub(r"‹\1", out)
    words = _ROLE_WORDS.get(template, ())
    if words:
        alt = "|".join(re.escape(r) for r in words)
        out = re.sub(rf"\b((?:{alt})\W*?)\s*:", lambda m: m.group(1) + "꞉", out, flags=re.I)
    roles = _ROLE_LINES.get(template, ())
    if roles:
        alt = "|".join(re.escape(r) for r in roles)
        out = re.sub(
            rf"^(\W*(?:{alt})\s*):",
            lambda m: m.group(1) + "꞉",
            out,
            flags=re.IGNORECASE | re.MULTILINE,
        )
    return out
