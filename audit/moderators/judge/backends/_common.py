"""Pieces every judge backend shares: generation results, per-item failures, seeds,
candidate label tokens, label renormalisation, middle truncation and the
prefix/suffix token split (with the boundary back-off)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from audit.errors import ModeratorError

#: suffix tokens always kept at the end when an item is truncated (the end of the
#: user turn and the generation prompt live there)
KEEP_TAIL = 32
SUFFIX_SENTINEL = "\u2063AUDIT_SUFFIX_SENTINEL\u2063"
#: tokens the shared prefix may give up at its end when the tokenizer merges across
#: the prefix/suffix boundary
BOUNDARY_BACKOFF = 8


@dataclass
class GenOut:
    """One generated continuation.

    Attributes:
        text: decoded text (special tokens skipped), cut before a stop string.
        n_tokens: generated tokens, not counting a final EOS.
        finish_reason: ``"stop"`` (EOS or a stop string) or ``"length"``.
        token_logprobs: model log-probability (temperature 1) of each counted token.
    """

    text: str
    n_tokens: int
    finish_reason: Literal["stop", "length"]
    token_logprobs: list[float] | None = None


def seed_for(seed: int, suffix: str, sample: int) -> int:
    """Per (item content, sample) seed: reproducible and independent of batching."""
    h = hashlib.sha256(f"{seed}\0{sample}\0{suffix}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


#: why one item failed: the engine rejected or crashed on it (``engine_error``), the
#: answer lacked what was asked for (``bad_response``), or, for a server, the request
#: timed out, was rate-limited, met a 5xx or a refused connection, came back truncated
#: (all transient: retried on the next run, never cached; audit.schema.TRANSIENT_ERRORS)
#: or got a 4xx client error (``http_error``, deterministic)
ItemErrorKind = Literal[
    "engine_error",
    "bad_response",
    "prompt_too_long",
    "timeout",
    "rate_limited",
    "server_error",
    "connection_error",
    "truncated_response",
    "http_error",
]


@dataclass(frozen=True)
class ItemError:
    """A per-item failure of any backend: returned in place of a result, never raised.

    ``attempts`` counts the tries made for the item (a retry after a batch failure or
    an HTTP retry adds one).
    """

    kind: ItemErrorKind
    message: str
    attempts: int = 1


def candidate_token_ids(
    candidates: dict[str, Sequence[str]],
    encode: Callable[[str], list[int]],
    show: Callable[[int], str] = str,
) -> dict[str, list[int]]:
    """Label → distinct first tokens of its candidate strings (as ``HFBackend``)."""
    if not candidates:
        raise ValueError("candidates is empty")
    owner: dict[int, str] = {}
    out: dict[str, list[int]] = {}
    for label, strings in candidates.items():
        if label.startswith("_"):
            raise ValueError(f"candidate label {label!r} may not start with '_'")
        if isinstance(strings, str):
            strings = [strings]
        ids: list[int] = []
        for s in strings:
            toks = encode(s)
            if not toks:
                raise ValueError(f"candidate string {s!r} of {label!r} encodes to no tokens")
            if toks[0] in owner and owner[toks[0]] != label:
                raise ValueError(
                    f"candidates {label!r} and {owner[toks[0]]!r} share the first token "
                    f"{show(toks[0])!r}"
                )
            owner[toks[0]] = label
            if toks[0] not in ids:
                ids.append(toks[0])
        if not ids:
            raise ValueError(f"candidate {label!r} has no token strings")
        out[label] = ids
    return out


def _logsumexp(xs: Sequence[float]) -> float:
    m = max(xs)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(x - m) for x in xs))


def label_probs(cand: dict[str, list[int]], logprob: Callable[[int], float]) -> dict[str, float]:
    """Renormalised label probabilities plus ``_raw_total`` from exact token log-probs."""
    per = {lab: _logsumexp([logprob(t) for t in ids]) for lab, ids in cand.items()}
    total = _logsumexp(list(per.values()))
    if total == -math.inf:
        out = {lab: 1.0 / len(per) for lab in per}
        out["_raw_total"] = 0.0
        return out
    out = {lab: math.exp(v - total) for lab, v in per.items()}
    out["_raw_total"] = min(1.0, math.exp(total))
    return out


def fit_middle(
    pre: list[int],
    rest: list[int],
    max_length: int,
    where: str,
    field: str = "params.max_length",
) -> list[int]:
    """Cut the middle of ``rest`` so ``pre + rest`` fits ``max_length`` (as ``HFBackend``)."""
    room = max_length - len(pre)
    if room < KEEP_TAIL + 1:
        raise ModeratorError(
            f"the shared prompt prefix is longer than {field.split('.')[-1]} allows",
            where=where,
            field=field,
            expected=f"> {len(pre) + KEEP_TAIL} tokens",
            actual=f"{max_length} (prefix {len(pre)} tokens)",
            fix=f"raise {field.split('.')[-1]} or shorten the policy prompt",
        )
    if len(rest) <= room:
        return rest
    return rest[: room - KEEP_TAIL] + rest[-KEEP_TAIL:]


def split_encode(
    prefix: str,
    suffix: str,
    *,
    render: Callable[[str], str] | None,
    ids: Callable[..., list[int]],
    specials: set[int],
    heads: dict[str, str | None],
    tail: str = "",
) -> tuple[list[int], list[int]]:
    """Token ids of ``prefix + suffix`` split into (shared prefix, rest).

    ``render`` is the chat-template renderer (``None``: plain text with the tokenizer's
    special tokens); ``ids(text, special=...)`` tokenises; ``heads`` memoises the
    rendered text before the prefix's end; ``tail`` is text after the whole prompt (the
    start of the model's own answer). The first list is a true prefix of the full
    sequence, or empty when the template or tokenizer breaks that.
    """
    if render is not None:
        full_text = render(prefix + suffix) + tail
        if prefix not in heads:
            rendered = render(prefix + SUFFIX_SENTINEL)
            idx = rendered.find(SUFFIX_SENTINEL)
            heads[prefix] = rendered[:idx] if idx >= 0 else None
        head = heads[prefix]
        full = ids(full_text, special=False)
        if head is None or not full_text.startswith(head):
            return [], full
        pre = ids(head, special=False)
    else:
        full = ids(prefix + suffix + tail, special=True)
        pre = ids(prefix, special=True)
        while pre and pre[-1] in specials and len(pre) > 1:
            pre.pop()  # trailing EOS/SEP added by a post-processor
    # a BPE merge across the boundary changes the prefix's last tokens: back off to
    # the longest true common prefix
    for k in range(min(BOUNDARY_BACKOFF, max(len(pre) - 1, 0)) + 1):
        m = len(pre) - k
        if m > 0 and full[:m] == pre[:m]:
            return pre[:m], full[m:]
    return [], full


def template_sha256(template: str | None) -> str | None:
    return hashlib.sha256(template.encode()).hexdigest() if template else None


def check_settings(
    where: str, dtype: str, dtypes: Sequence[str], dtype_fix: str, max_length: int
) -> None:
    """The constructor checks every backend makes: a known dtype, room for the tail."""
    if dtype not in dtypes:
        raise ModeratorError(
            "unknown dtype",
            where=where,
            field="params.dtype",
            expected=" | ".join(dtypes),
            actual=repr(dtype),
            fix=dtype_fix,
        )
    if max_length < KEEP_TAIL + 2:
        raise ModeratorError(
            "max_length is too small",
            where=where,
            field="params.max_length",
            expected=f">= {KEEP_TAIL + 2}",
            actual=str(max_length),
            fix="use the model's context length",
        )


def import_optional(module: str, where: str, what: str, expected: str, fix: str) -> Any:
    """Import an optional backend package, or a ModeratorError naming the fix."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModeratorError(
            f"{what} ({exc})",
            where=where,
            field="params.backend",
            expected=expected,
            actual="not installed",
            fix=fix,
        ) from exc


# --------------------------------------------------------------------------- content parts

#: One OpenAI-style content part: ``{"type": "text", "text": ...}`` or
#: ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``.
ContentPart = dict[str, Any]
#: The per-item part of a judge prompt as a backend receives it: plain text for a
#: text-only item (unchanged), a list of content parts when the item has images.
Suffix = str | list[ContentPart]


def text_part(text: str) -> ContentPart:
    return {"type": "text", "text": text}


def image_part(url: str) -> ContentPart:
    return {"type": "image_url", "image_url": {"url": url}}


def user_content(prefix: str, suffix: Suffix) -> str | list[ContentPart]:
    """The whole user message: ``prefix + suffix`` for text; for content parts the
    prefix as a leading text part, adjacent text parts merged (so a server or chat
    template sees one text run between images, exactly as the text prompt reads)."""
    if isinstance(suffix, str):
        return prefix + suffix
    out: list[ContentPart] = []
    for part in [text_part(prefix), *suffix]:
        if part.get("type") == "text":
            if not part.get("text"):
                continue
            if out and out[-1].get("type") == "text":
                out[-1] = text_part(out[-1]["text"] + part["text"])
                continue
        out.append(dict(part))
    return out


def image_urls(suffix: Suffix) -> list[str]:
    """The image URLs of a suffix, in order (none for text)."""
    if isinstance(suffix, str):
        return []
    return [str(p["image_url"]["url"]) for p in suffix if p.get("type") == "image_url"]


def suffix_key(suffix: Suffix) -> str:
    """A string standing for ``suffix`` where a backend keys on the item text (the
    per-sample seed): the text itself, or the text parts joined with each image's
    sha256 in its place, so two items with the same text and different images get
    different seeds."""
    if isinstance(suffix, str):
        return suffix
    keys: list[str] = []
    for p in suffix:
        if p.get("type") == "text":
            keys.append(str(p.get("text", "")))
        else:
            url = str(p.get("image_url", {}).get("url", ""))
            keys.append("\x00image:" + hashlib.sha256(url.encode("utf-8")).hexdigest())
    return "".join(keys)
