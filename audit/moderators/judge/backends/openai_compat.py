"""OpenAI-compatible backend for the LLM judge (vLLM, TGI, llama.cpp server, OpenAI).

Transport (:mod:`~audit.moderators.judge.backends.openai_transport`) is the ``openai``
SDK (its client: base URL, auth, timeouts, connection pool, the status → exception
classes) with ``tenacity`` retries; both load on first use, so importing this module stays cheap.
Design and measurements: docs/design.md ("OpenAI-compatible backend").

One request per (item, sample):

* **chat mode** (``chat=True``, ``POST {base}/chat/completions``): ``prefix + suffix``
  is one user message, exactly as the ``hf`` backend renders its chat template (guard
  models such as Llama Guard expect the policy inside the user turn). Set
  ``backend.prefix_role = "system"`` to send the prefix as the system message and the
  suffix as the user message instead (an empty prefix then sends the user message
  alone). Either way the shared prefix comes first, so vLLM's automatic prefix
  caching reuses it across items. A suffix may also be a list of OpenAI content parts
  (``{"type": "text", ...}``, ``{"type": "image_url", ...}``): the parts go to the
  server unchanged, after the prefix as a leading text part (or the system message).
* **completions mode** (``chat=False``, ``POST {base}/completions``): the prompt is
  ``prefix + suffix`` (text only).

``base_url`` is the OpenAI-style base *including* the API prefix
(``http://host:8000/v1``); a bare ``http://host:8000`` gets ``/v1`` appended.

``generate`` asks for the sampled tokens' log-probabilities (``GenOut.token_logprobs``,
``None`` when the server sends none); ``GenOut.n_tokens`` is the server's
``usage.completion_tokens`` (else the number of token log-probabilities, else -1) and
``finish_reason`` is the server's own (``"stop"`` / ``"length"``; others pass through).
Sample ``i`` of ``num_samples`` is a separate request with ``seed + i`` (llama.cpp and
TGI do not support ``n > 1``).

Failure handling
----------------
Per-item failures come back as :class:`~audit.moderators.judge.backends._common.ItemError`
values (``CallError`` is the same class, under its older name) in the result lists,
never raised and never turned into a label. The kinds marked transient are in
:data:`audit.schema.TRANSIENT_ERRORS`: never cached, retried by the next run.

==================  ===============================================  =======  =========
kind                cause (SDK exception)                            retried  transient
==================  ===============================================  =======  =========
rate_limited        HTTP 429 (``RateLimitError``)                    yes      yes
server_error        HTTP 5xx (``InternalServerError``) or 408        yes      yes
connection_error    refused / reset (``APIConnectionError``)         yes      yes
timeout             ``APITimeoutError`` (connect, read, write, pool) yes      yes
truncated_response  body shorter than its Content-Length             yes      yes
http_error          other 4xx (e.g. 400: prompt too long)            no       no
bad_response        not JSON, or JSON without the expected fields    no       no
==================  ===============================================  =======  =========

``max_retries`` counts *re*-tries: an item makes at most ``max_retries + 1`` attempts
and never starts a wait that would end past ``deadline_s`` after its first attempt;
``ItemError.attempts`` says how many it made. Waits are "full jitter" exponential
back-off (uniform in ``[0, backoff_s * 2**k]``, capped at 30 s); a ``Retry-After`` /
``retry-after-ms`` header (capped at 60 s) replaces the computed wait and, on a 429,
pauses *every* worker of this backend until it has passed. ``timeout_s`` bounds each
phase of an attempt (connect, each read, write) as the SDK's ``Timeout`` does.

HTTP 401, 403 and 404 are configuration problems (wrong key, wrong URL, unknown
model) that would fail every item alike: they raise
:class:`~audit.errors.ModeratorError` from :meth:`OpenAICompatBackend.generate` /
:meth:`OpenAICompatBackend.next_token_probs` instead.

Concurrency and rate
--------------------
At most ``max_concurrency`` requests are in flight per backend instance, across
concurrent calls (a semaphore held only while a request is on the wire, not during
back-off sleeps), on threads sharing one SDK client (one connection pool).
``requests_per_minute`` is a token bucket with capacity 1, i.e. request *starts*
(retries included) are spaced at least ``60 / rpm`` seconds apart.

Label probabilities
-------------------
:meth:`OpenAICompatBackend.next_token_probs` sends one ``max_tokens=1`` request with
``logprobs`` / ``top_logprobs=top_logprobs`` (chat) or ``logprobs=top_logprobs``
(completions) and reads the first position's top-k list. A top-k token counts for a
label when it equals one of the label's candidate strings after stripping surrounding
whitespace and the ``▁`` / ``Ġ`` word markers (so ``" unsafe"`` matches ``"unsafe"``;
matching is case-sensitive — list ``"Yes"`` and ``"yes"`` if both should count). The
returned dict holds:

* ``<label>``: the label's share of the candidate mass, renormalised to sum to 1;
* ``"_raw_total"``: the un-normalised candidate mass actually observed in the top-k;
* ``"_residual"``: ``1 - sum(top-k probabilities)``, the mass outside the top-k;
* ``"_imputed"``: how many labels had no candidate in the top-k.

A label with no candidate string in the top-k cannot be measured; its raw mass is
set to its **upper bound** ``min(residual, n_forms * p_min)`` (``p_min`` the smallest
top-k probability: a token outside the top-k is no likelier than any token in it)
before renormalising, so scores stay conservative (never under-state that label) and
continuous. If *no* label is found in the top-k the item is a ``bad_response``
``ItemError`` rather than a uniform guess.

The request loops are the shared ones of
:class:`~audit.moderators.judge.backends.base.BackendLoops` (argument checks, seeding
per sample, per-item results); this module supplies the primitives (request bodies,
response parsing, the top-k renormalisation) and ``openai_transport`` the concurrent
SDK calls with their retries.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from audit.errors import ModeratorError
from audit.moderators.judge.backends._common import GenOut, ItemError
from audit.moderators.judge.backends.base import BackendLoops, GenSettings
from audit.moderators.judge.backends.openai_transport import Attempt, Send, Transport

__all__ = ["CallError", "Content", "ContentPart", "GenOut", "ItemError", "OpenAICompatBackend"]

_WHERE = "openai_compat"
_WORD_MARKERS = "▁Ġ"

#: the per-item error of this backend is the one every backend returns
CallError = ItemError
#: one OpenAI chat content part: {"type": "text", "text": ...} or
#: {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}} (others pass)
ContentPart = Mapping[str, Any]
#: a user turn's content: plain text or a list of content parts
Content = str | Sequence[ContentPart]
#: top-k (normalised token, log-prob) pairs at the answer position
TopK = list[tuple[str, float]]
Forms = dict[str, frozenset[str]]


def _norm_token(tok: str) -> str:
    return tok.strip().strip(_WORD_MARKERS).strip()


def _checked_parts(parts: Sequence[ContentPart], where: str) -> list[dict[str, Any]]:
    """Shallow copies of content parts, each a mapping with a string ``type``."""
    if isinstance(parts, (bytes, bytearray)) or not parts:
        raise ModeratorError(
            "a message content must be text or a non-empty list of content parts",
            where=where,
            field="suffixes",
            expected='[{"type": "text", "text": ...}, {"type": "image_url", ...}]',
            actual=repr(parts)[:80],
        )
    out = []
    for i, part in enumerate(parts):
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise ModeratorError(
                "each content part must be a mapping with a string 'type'",
                where=where,
                field=f"suffixes[...][{i}]",
                expected='{"type": "text" | "image_url" | ..., ...}',
                actual=repr(part)[:80],
            )
        out.append(dict(part))
    return out


class OpenAICompatBackend(BackendLoops[dict[str, Any], Forms, TopK]):
    """Judge backend over an OpenAI-compatible server; see the module docstring."""

    backend: ClassVar[str] = "openai_compat"
    where: ClassVar[str] = _WHERE

    #: how many top log-probabilities :meth:`next_token_probs` asks for (vLLM's default cap)
    top_logprobs: int = 20
    #: chat mode: where the prefix goes ("system" message, or prepended to the "user" one)
    prefix_role: Literal["system", "user"] = "user"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 60,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        deadline_s: float = 300,
        max_concurrency: int = 8,
        requests_per_minute: float | None = None,
        chat: bool = True,
    ) -> None:
        self._api_base = self._checked_base(base_url)
        if not model:
            raise ModeratorError("model must be a non-empty string", where=_WHERE, field="model")
        for name, value, ok in (
            ("timeout_s", timeout_s, timeout_s > 0),
            ("max_retries", max_retries, max_retries >= 0),
            ("backoff_s", backoff_s, backoff_s >= 0),
            ("deadline_s", deadline_s, deadline_s > 0),
            ("max_concurrency", max_concurrency, max_concurrency >= 1),
            (
                "requests_per_minute",
                requests_per_minute,
                requests_per_minute is None or requests_per_minute > 0,
            ),
        ):
            if not ok:
                raise ModeratorError(
                    "invalid value", where=_WHERE, field=name, expected="> 0", actual=repr(value)
                )
        self.base_url = base_url
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.deadline_s = float(deadline_s)
        self.max_concurrency = int(max_concurrency)
        self.requests_per_minute = requests_per_minute
        self.chat = chat

        api_key = os.environ.get(api_key_env) if api_key_env else None
        self._transport = Transport(
            self._api_base,
            api_key,
            where=_WHERE,
            fix=f"check base_url, model {model!r} and the API key in ${api_key_env or '(none)'}",
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            backoff_s=self.backoff_s,
            deadline_s=self.deadline_s,
            max_concurrency=self.max_concurrency,
            requests_per_minute=requests_per_minute,
        )
        self._fingerprint: dict[str, Any] | None = None
        # concurrent calls are fine: the semaphore and the pacer bound the server load
        self._lock = contextlib.nullcontext()

    def __repr__(self) -> str:  # never shows the key
        return (
            f"OpenAICompatBackend(model={self.model!r}, chat={self.chat}, "
            f"max_concurrency={self.max_concurrency})"
        )

    @staticmethod
    def _checked_base(base_url: str) -> str:
        """``scheme://host[:port]/prefix`` (``/v1`` when the URL has no path)."""
        parts = urlsplit(base_url)
        try:
            parts.port  # noqa: B018  (raises on a port outside 0-65535)
        except ValueError:
            parts = parts._replace(scheme="")  # reported just below
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModeratorError(
                "base_url must be an http(s) URL",
                where=_WHERE,
                field="base_url",
                expected="e.g. http://127.0.0.1:8000/v1",
                actual=repr(base_url),
            )
        path = parts.path.rstrip("/")
        return f"{parts.scheme}://{parts.netloc}{path or '/v1'}"

    # ------------------------------------------------------------------ public API

    def fingerprint(self) -> dict[str, Any]:
        """Backend, model name, mode and what ``GET {base}/models`` reports for it.

        The host is left out (a server moved to another machine scores the same); the
        API key never appears. ``server_model`` is the matching ``/models`` entry's
        stable fields (``id``, ``root``, ``parent``, ``owned_by``, ``max_model_len``,
        ``meta``; ``created`` is dropped because vLLM stamps it per request), or
        ``None`` if the server does not answer.
        """
        if self._fingerprint is None:
            self._fingerprint = {
                "backend": "openai_compat",
                "model": self.model,
                "chat": self.chat,
                "prefix_role": self.prefix_role if self.chat else None,
                "top_logprobs": self.top_logprobs,
                "server_model": self._server_model(),
            }
        return dict(self._fingerprint)

    def close(self) -> None:
        """Close the SDK client's connection pool (idempotent)."""
        self._transport.close()

    # ------------------------------------------------------------------ loop primitives

    def _prepare(
        self,
        prefix: str,
        suffixes: Sequence[Content],
        *,
        reuse: bool,
        max_new_tokens: int | None,
        tails: Sequence[str] | None,
    ) -> list[dict[str, Any]]:
        """One request body per suffix (the server does its own prefix caching)."""
        return [self._body(prefix, s) for s in suffixes]

    def _candidates(self, candidates: dict[str, Sequence[str]]) -> Forms:
        return self._candidate_forms(candidates)

    def _sample_seed(self, seed: int, suffix: Any, sample: int) -> int:
        """Sample ``k`` asks the server for ``seed + k`` (servers take small seeds)."""
        return int(seed) + sample

    def _label_logprobs(
        self, prompts: Sequence[dict[str, Any]], cand: Forms, reuse: bool
    ) -> list[TopK | ItemError]:
        """One ``max_tokens=1`` request per item asking for the top-k log-probs."""
        bodies = []
        for base in prompts:
            body = dict(base, max_tokens=1, temperature=0.0)
            if self.chat:
                body.update(logprobs=True, top_logprobs=self.top_logprobs)
            else:
                body["logprobs"] = self.top_logprobs
            bodies.append(body)
        return self._transport.run([self._send(b) for b in bodies], self._first_position_top)

    def _generate_batch(
        self, prompts: Sequence[dict[str, Any]], seeds: Sequence[int], settings: GenSettings
    ) -> list[GenOut | ItemError]:
        """One request per (item, sample), with the sampled tokens' log-probs."""
        bodies = []
        for base, seed in zip(prompts, seeds):
            body = dict(
                base,
                max_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                top_p=settings.top_p,
                seed=seed,
            )
            if settings.stop:
                body["stop"] = list(settings.stop)
            body["logprobs"] = True if self.chat else 1
            bodies.append(body)
        return self._transport.run([self._send(b) for b in bodies], self._parse_generation)

    # ------------------------------------------------------------------ requests

    def _body(self, prefix: str, suffix: Content) -> dict[str, Any]:
        if not self.chat:
            if not isinstance(suffix, str):
                raise ModeratorError(
                    "content parts (e.g. images) need the chat endpoint",
                    where=_WHERE,
                    field="chat",
                    expected="True",
                    actual="False",
                    fix="use chat mode for multimodal judges",
                )
            return {"model": self.model, "prompt": prefix + suffix}
        system = self.prefix_role == "system" and bool(prefix)
        lead = "" if system else prefix
        user: Content
        if isinstance(suffix, str):
            user = lead + suffix
        else:  # the parts pass unchanged; the prefix leads as a text part of its own
            parts = _checked_parts(suffix, _WHERE)
            user = [{"type": "text", "text": lead}, *parts] if lead else parts
        messages: list[dict[str, Any]] = [{"role": "system", "content": prefix}] if system else []
        messages.append({"role": "user", "content": user})
        return {"model": self.model, "messages": messages}

    def _send(self, body: dict[str, Any]) -> Send:
        """One attempt: the SDK's generic POST, the raw body back. Not the typed
        ``chat.completions.create``: that re-walks the body against its TypedDicts
        (~1 ms a request, measured in docs/design.md) and refuses server extensions
        (vLLM's ``top_k``, guided decoding); this sends the body byte for byte."""
        path = "/chat/completions" if self.chat else "/completions"
        return lambda client, headers: client.post(
            path, cast_to=bytes, body=body, options={"headers": headers}
        )

    # ------------------------------------------------------------------ parsing

    def _parse_generation(self, data: Any) -> GenOut:
        choice = data["choices"][0]
        if self.chat:
            text = choice["message"].get("content") or ""
            lp = choice.get("logprobs") or {}
            content = lp.get("content") if isinstance(lp, dict) else None
            token_logprobs = [float(t["logprob"]) for t in content] if content else None
        else:
            text = choice["text"]
            lp = choice.get("logprobs") or {}
            tl = lp.get("token_logprobs") if isinstance(lp, dict) else None
            token_logprobs = [float(x) for x in tl if x is not None] if tl else None
        if not isinstance(text, str):
            raise TypeError(f"completion text is {type(text).__name__}, not str")
        usage = data.get("usage") or {}
        n_tokens = usage.get("completion_tokens")
        if not isinstance(n_tokens, int):
            n_tokens = len(token_logprobs) if token_logprobs is not None else -1
        return GenOut(
            text=text,
            n_tokens=n_tokens,
            # the server's own reason: "stop" / "length" (others such as "abort" pass through)
            finish_reason=str(choice.get("finish_reason") or "unknown"),  # type: ignore[arg-type]
            token_logprobs=token_logprobs,
        )

    def _first_position_top(self, data: Any) -> TopK:
        choice = data["choices"][0]
        lp = choice.get("logprobs")
        if not lp:
            raise Attempt("bad_response", "server returned no logprobs", retry=False)
        top: list[tuple[str, float]] = []
        if self.chat:
            first = lp["content"][0]
            top = [(str(t["token"]), float(t["logprob"])) for t in first.get("top_logprobs") or []]
            if first.get("token") is not None and all(tok != first["token"] for tok, _ in top):
                top.append((str(first["token"]), float(first["logprob"])))
        else:
            tops = lp.get("top_logprobs") or []
            if tops and tops[0]:
                top = [(str(k), float(v)) for k, v in tops[0].items()]
            tokens, tlps = lp.get("tokens") or [], lp.get("token_logprobs") or []
            if tokens and tlps and tlps[0] is not None and all(tok != tokens[0] for tok, _ in top):
                top.append((str(tokens[0]), float(tlps[0])))
        if not top:
            raise Attempt("bad_response", "server returned an empty top-logprobs list", retry=False)
        return top

    def _renormalise(self, cand: Forms, observed: TopK) -> dict[str, float] | ItemError:
        """Label shares of the observed top-k mass; unseen labels at their upper bound."""
        forms, top = cand, observed
        probs = [(_norm_token(tok), math.exp(lp)) for tok, lp in top if math.isfinite(lp)]
        top_total = sum(p for _, p in probs)
        residual = max(0.0, 1.0 - top_total)
        p_min = min((p for _, p in probs), default=0.0)
        raw: dict[str, float] = {}
        missing: list[str] = []
        for label, label_forms in forms.items():
            mass = sum(p for tok, p in probs if tok in label_forms)
            matched = any(tok in label_forms for tok, _ in probs)
            raw[label] = mass
            if not matched:
                missing.append(label)
        raw_total = sum(raw.values())
        if len(missing) == len(forms):
            shown = ", ".join(repr(tok) for tok, _ in top[:5])
            return ItemError(
                "bad_response", f"no candidate label token in the top-{len(top)} (top: {shown})"
            )
        for label in missing:
            raw[label] = min(residual, len(forms[label]) * p_min)
        total = sum(raw.values())
        out = {label: (m / total if total > 0 else 0.0) for label, m in raw.items()}
        out["_raw_total"] = raw_total
        out["_residual"] = residual
        out["_imputed"] = float(len(missing))
        return out

    @staticmethod
    def _candidate_forms(candidates: dict[str, Sequence[str]]) -> dict[str, frozenset[str]]:
        if not candidates:
            raise ModeratorError("candidates must name at least one label", where=_WHERE)
        forms: dict[str, frozenset[str]] = {}
        owner: dict[str, str] = {}
        for label, strings in candidates.items():
            if label.startswith("_"):
                raise ModeratorError(
                    "candidate label names must not start with '_' (reserved for diagnostics)",
                    where=_WHERE,
                    actual=repr(label),
                )
            if isinstance(strings, str):
                strings = [strings]
            normed = {_norm_token(s) for s in strings}
            if not strings or "" in normed:
                raise ModeratorError(
                    "each label needs non-blank candidate token strings",
                    where=_WHERE,
                    field=f"candidates.{label}",
                    actual=repr(list(strings)),
                )
            for s in normed:
                if s in owner and owner[s] != label:
                    raise ModeratorError(
                        f"token {s!r} is a candidate for both {owner[s]!r} and {label!r}",
                        where=_WHERE,
                        field="candidates",
                    )
                owner[s] = label
            forms[label] = frozenset(normed)
        return forms

    # ------------------------------------------------------------------ fingerprint

    def _server_model(self) -> dict[str, Any] | None:
        def send(client: Any, headers: dict[str, Any]) -> bytes:
            return bytes(client.get("/models", cast_to=bytes, options={"headers": headers}))

        try:
            result = self._transport.call(send, lambda data: data, threading.Event())
        except ModeratorError:  # no /models endpoint (404) or not allowed to list it
            return None
        if isinstance(result, CallError) or not isinstance(result, dict):
            return None
        entries = [e for e in result.get("data") or [] if isinstance(e, dict)]
        match = [e for e in entries if e.get("id") == self.model]
        entry = match[0] if match else (entries[0] if len(entries) == 1 else None)
        if entry is None:
            return None
        keep = ("id", "root", "parent", "owned_by", "max_model_len", "meta")
        return {k: entry[k] for k in keep if k in entry}
