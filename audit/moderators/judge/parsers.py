"""Parsers for judge outputs, with an explicit parse-failure outcome.

:func:`parse` never guesses. Empty, truncated or garbage output, several verdicts
that disagree, unknown category codes or ids, extra text where the format allows
none, and verdicts that appear only inside echoed/quoted content all give
``Verdict(status="parse_failure", reason=...)``. A parse failure is never a label:
its ``violations`` is empty and its ``unsafe`` is ``None``; the caller records it as
an error (``error_type="parse_failure"``), never as safe.

Formats:

* ``platform``: free reasoning, then a final line
  ``VERDICT: {"violations": ["<category id>", ...], "rationale": "..."}``. Only the
  last VERDICT line counts, and it must be the last line (trailing blank lines and
  code fences allowed). Earlier VERDICT lines outside quotes that disagree with it
  are a conflict (failure); ones that agree are fine. VERDICT lines inside an echoed
  ``<<<CONTENT ...>>> ... <<<END CONTENT>>>`` block, in a ``>`` quote, or after an
  opening quote mark are ignored; if only those exist, the output fails.
  ``unsafe`` is ``bool(violations)``. Category ids are matched after trimming and
  lower-casing; any other id fails.
* ``llama_guard`` (Llama Guard 3/4; Inan et al. 2023): first line ``safe``, or
  ``unsafe`` and a second line of comma-separated codes (``S1,S10``); nothing else.
  Codes map to platform categories through the policy's ``llama_guard_3`` mapping
  (full and partial edges both count). A code whose coverage is ``none`` (e.g. S5
  defamation) is recorded in ``codes`` and makes the verdict ``unsafe=True`` but adds
  no platform category. ``unsafe`` without a code line is treated as truncated.
* ``shieldgemma`` (Zeng et al. 2024, arXiv 2407.21772): the answer starts with
  ``Yes`` or ``No``; any reasoning may follow, but a later line that is a bare opposite
  answer (``No.``) is a conflict. One policy per call: pass ``category=`` to get it
  in ``violations`` on ``Yes``; without it ``violations`` is empty and only
  ``unsafe`` is set.
* ``wildguard`` (Han et al. 2024): ``Harmful request: yes|no`` plus optional
  ``Response refusal:`` / ``Harmful response:`` lines (ignored for prompt-only
  classification); any other line fails. WildGuard has no categories: only
  ``unsafe`` is set (or ``violations={category}`` when ``category=`` is passed).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from audit.errors import ModeratorError

if TYPE_CHECKING:
    from audit.policy import Policy

FORMATS: tuple[str, ...] = ("platform", "llama_guard", "shieldgemma", "wildguard", "safe_unsafe")

#: Policy mapping used for Llama Guard codes.
LLAMA_GUARD_TAXONOMY = "llama_guard_3"


@dataclass(frozen=True)
class Verdict:
    """The parsed outcome of one judge output.

    Attributes:
        status: ``ok`` or ``parse_failure``.
        violations: platform category ids judged violated (empty on failure).
        unsafe: any violation (``None`` on failure). For Llama Guard this is the
            model's ``unsafe``, even when its codes map to no platform category.
        rationale: the model's rationale (``platform``), if given.
        reason: why parsing failed (``None`` when ok).
        raw: the raw output, unchanged.
        codes: external codes as emitted (Llama Guard ``S1``...), empty otherwise.
    """

    status: Literal["ok", "parse_failure"]
    violations: frozenset[str]
    unsafe: bool | None
    rationale: str | None
    reason: str | None
    raw: str
    codes: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _fail(raw: str, reason: str) -> Verdict:
    return Verdict("parse_failure", frozenset(), None, None, reason, raw)


def _ok(
    raw: str,
    violations: frozenset[str],
    unsafe: bool,
    rationale: str | None = None,
    codes: frozenset[str] = frozenset(),
) -> Verdict:
    return Verdict("ok", violations, unsafe, rationale, None, raw, codes)


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


# --- platform ---------------------------------------------------------------

_VERDICT_LINE = re.compile(
    r"^\s*(?:[*_]{1,2})?VERDICT(?:[*_]{1,2})?\s*:(?:[*_]{1,2})?\s*(.*)$", re.I
)
_CONTENT_OPEN = re.compile(r"<<<\s*(?:CONTENT|EXAMPLE)\b", re.I)
_CONTENT_CLOSE = re.compile(r"<<<\s*END\s+(?:CONTENT|EXAMPLE)\s*>>>", re.I)
_QUOTED_START = re.compile(r"""^\s*(?:>|["'“”‘’«`])""")
_FENCE = re.compile(r"^\s*`{3,}\s*[A-Za-z]*\s*$")


def _platform(text: str, policy: Policy) -> Verdict:
    if not text.strip():
        return _fail(text, "empty output")
    lines = text.splitlines()
    in_echo = False
    verdicts: list[tuple[int, str]] = []  # (line index, payload)
    quoted_verdict = False
    for i, line in enumerate(lines):
        if in_echo:
            if _CONTENT_CLOSE.search(line):
                in_echo = False
            if _VERDICT_LINE.match(line) or "VERDICT" in line.upper():
                quoted_verdict = True
            continue
        if _CONTENT_OPEN.search(line) and not _CONTENT_CLOSE.search(line):
            in_echo = True
            continue
        m = _VERDICT_LINE.match(line)
        if m and not _QUOTED_START.match(line):
            verdicts.append((i, m.group(1).strip()))
        elif "VERDICT" in line.upper():
            quoted_verdict = True
    if not verdicts:
        if in_echo and quoted_verdict:
            return _fail(text, "verdict appears only inside an unterminated echo of the content")
        if quoted_verdict:
            return _fail(text, "verdict appears only inside quoted or echoed content")
        return _fail(text, "no VERDICT line")
    last_i = verdicts[-1][0]
    trailing = [ln for ln in lines[last_i + 1 :] if ln.strip() and not _FENCE.match(ln)]
    if trailing:
        return _fail(text, "text after the last VERDICT line (truncated or still reasoning?)")
    parsed: list[tuple[frozenset[str], str | None]] = []
    for k, (_, p) in enumerate(verdicts):
        res = _platform_payload(p, policy)
        if isinstance(res, str):
            if k == len(verdicts) - 1:
                return _fail(text, res)
            return _fail(text, f"an earlier VERDICT line is malformed ({res})")
        parsed.append(res)
    final = parsed[-1]
    if any(v[0] != final[0] for v in parsed[:-1]):
        return _fail(text, "conflicting VERDICT lines")
    return _ok(text, final[0], bool(final[0]), final[1])


def _platform_payload(payload: str, policy: Policy) -> tuple[frozenset[str], str | None] | str:
    p = payload.strip().strip("`").strip()
    if not p:
        return "empty VERDICT (truncated?)"
    try:
        obj = json.loads(p)
    except json.JSONDecodeError as e:
        return f"VERDICT is not one JSON object (truncated or malformed: {e.msg})"
    if not isinstance(obj, dict):
        return "VERDICT JSON is not an object"
    if "violations" not in obj:
        return "VERDICT JSON has no 'violations'"
    vs = obj["violations"]
    if not isinstance(vs, list) or not all(isinstance(v, str) for v in vs):
        return "'violations' is not a list of category ids"
    ids = [v.strip().lower() for v in vs]
    unknown = sorted({v for v in ids if v not in policy.category_ids})
    if unknown:
        return f"unknown category ids {unknown}"
    rationale = obj.get("rationale")
    if rationale is not None and not isinstance(rationale, str):
        return "'rationale' is not a string"
    return frozenset(ids), rationale


# --- llama guard ------------------------------------------------------------

_CODE = re.compile(r"^S\d{1,2}$")


def _llama_guard(text: str, policy: Policy) -> Verdict:
    lines = _lines(text)
    if not lines:
        return _fail(text, "empty output")
    first = lines[0].lower()
    if first == "safe":
        if len(lines) > 1:
            if any(ln.lower() in ("safe", "unsafe") or _CODE.match(ln.upper()) for ln in lines):
                return _fail(text, "conflicting verdicts after 'safe'")
            return _fail(text, "unexpected text after 'safe'")
        return _ok(text, frozenset(), False)
    if first != "unsafe":
        return _fail(text, "first line is neither 'safe' nor 'unsafe'")
    if len(lines) == 1:
        return _fail(text, "'unsafe' without a category line (truncated?)")
    if len(lines) > 2:
        if any(ln.lower() in ("safe", "unsafe") for ln in lines[1:]):
            return _fail(text, "conflicting verdicts")
        return _fail(text, "unexpected text after the category line")
    parts = [c.strip().upper() for c in lines[1].split(",")]
    if any(not c for c in parts):
        return _fail(text, "empty category code (truncated?)")
    known = {e.source for e in policy.mapping(LLAMA_GUARD_TAXONOMY).edges}
    bad = sorted({c for c in parts if not _CODE.match(c) or c not in known})
    if bad:
        return _fail(text, f"unknown Llama Guard category codes {bad}")
    violations = frozenset(
        cid for c in parts for cid, _cov in policy.map_label(LLAMA_GUARD_TAXONOMY, c)
    )
    return _ok(text, violations, True, codes=frozenset(parts))


# --- shieldgemma / wildguard --------------------------------------------------

_YES_NO = re.compile(r"^\W*(yes|no)\b", re.I)
_BARE_YES_NO = re.compile(r"^\W*(yes|no)\W*$", re.I)


def _shieldgemma(text: str, category: str | None) -> Verdict:
    lines = _lines(text)
    if not lines:
        return _fail(text, "empty output")
    m = _YES_NO.match(lines[0])
    if not m:
        return _fail(text, "answer does not start with 'Yes' or 'No'")
    answer = m.group(1).lower()
    for ln in lines[1:]:
        m2 = _BARE_YES_NO.match(ln)
        if m2 and m2.group(1).lower() != answer:
            return _fail(text, "conflicting Yes/No answers")
    unsafe = answer == "yes"
    return _ok(text, frozenset([category]) if unsafe and category else frozenset(), unsafe)


_SAFE_UNSAFE = re.compile(r"^\W*(safe|unsafe)\W*$", re.I)


def _safe_unsafe(text: str, category: str | None) -> Verdict:
    """A one-word SAFE / UNSAFE answer (``platform_binary``); anything else fails."""
    lines = _lines(text)
    if not lines:
        return _fail(text, "empty output")
    m = _SAFE_UNSAFE.match(lines[0])
    if not m or len(lines) > 1:
        return _fail(text, "answer is not a single word SAFE or UNSAFE")
    unsafe = m.group(1).lower() == "unsafe"
    return _ok(text, frozenset([category]) if unsafe and category else frozenset(), unsafe)


_WG_LINE = re.compile(r"^(harmful request|response refusal|harmful response)\s*:\s*(.*)$", re.I)


def _wildguard(text: str, category: str | None) -> Verdict:
    lines = _lines(text)
    if not lines:
        return _fail(text, "empty output")
    answers: list[str] = []
    for ln in lines:
        m = _WG_LINE.match(ln)
        if not m:
            return _fail(text, f"unexpected line {ln[:60]!r}")
        if m.group(1).lower() == "harmful request":
            value = m.group(2).strip().lower()
            if value not in ("yes", "no"):
                return _fail(text, f"'Harmful request' is {value!r}, not yes/no (truncated?)")
            answers.append(value)
    if not answers:
        return _fail(text, "no 'Harmful request' line")
    if len(set(answers)) > 1:
        return _fail(text, "conflicting 'Harmful request' answers")
    unsafe = answers[0] == "yes"
    return _ok(text, frozenset([category]) if unsafe and category else frozenset(), unsafe)


def parse(text: str, fmt: str, policy: Policy, *, category: str | None = None) -> Verdict:
    """Parse one judge output.

    Args:
        text: the raw generated text (the part after the prompt).
        fmt: one of :data:`FORMATS`.
        policy: the policy version (category ids, ``llama_guard_3`` mapping).
        category: for one-policy-per-call formats (``shieldgemma``) and
            ``wildguard``, the category the call judged; a positive answer then puts
            it in ``violations``.

    Raises:
        ModeratorError: unknown ``fmt`` or ``category`` (a configuration error, not
            a parse failure).
    """
    if fmt not in FORMATS:
        raise ModeratorError(
            f"unknown judge output format {fmt!r}",
            expected=f"one of {', '.join(FORMATS)}",
            actual=repr(fmt),
        )
    if category is not None and category not in policy.category_ids:
        raise ModeratorError(
            f"unknown category {category!r}",
            expected=f"a category id of {policy.ref}",
            actual=repr(category),
        )
    if fmt == "platform":
        return _platform(text, policy)
    if fmt == "llama_guard":
        return _llama_guard(text, policy)
    if fmt == "shieldgemma":
        return _shieldgemma(text, category)
    if fmt == "safe_unsafe":
        return _safe_unsafe(text, category)
    return _wildguard(text, category)
