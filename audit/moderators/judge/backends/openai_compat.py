"""OpenAI-compatible HTTP backend for the LLM judge (vLLM, TGI, llama.cpp server).

Standard library only (``http.client`` + threads). One request per (item, sample):

* **chat mode** (``chat=True``, ``POST {base}/chat/completions``): ``prefix + suffix``
  is one user message, exactly as the ``hf`` backend renders its chat template (guard
  models such as Llama Guard expect the policy inside the user turn). Set
  ``backend.prefix_role = "system"`` to send the prefix as the system message and the
  suffix as the user message instead (an empty prefix then sends the user message
  alone). Either way the shared prefix comes first, so vLLM's automatic prefix
  caching reuses it across items.
* **completions mode** (``chat=False``, ``POST {base}/completions``): the prompt is
  ``prefix + suffix``.

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
never raised and never turned into a label:

==============  ===================================================  ========
kind            cause                                                retried
==============  ===================================================  ========
rate_limited    HTTP 429                                             yes
http_error      HTTP 5xx / 408, connection refused or reset          yes
http_error      other 4xx (e.g. 400: prompt too long for this item)  no
timeout         no complete response within ``timeout_s``            yes
bad_response    body cut short (Content-Length / chunking)           yes
bad_response    not JSON, or JSON without the expected fields        no
==============  ===================================================  ========

``timeout_s`` is a deadline for the whole attempt (connect + headers + body), not a
per-read socket timeout, so a server that trickles bytes cannot hold a worker.
``max_retries`` counts *re*-tries: an item makes at most ``max_retries + 1`` attempts;
``ItemError.attempts`` says how many it made. Retry delays grow exponentially
(``backoff_s * 2**k`` times a jitter factor in [0.5, 1.5), capped at 30 s); a
``Retry-After`` header (seconds or HTTP date, capped at 60 s) replaces the computed
delay and, on a 429, pauses *every* worker of this backend until it has passed.

HTTP 401, 403 and 404 are configuration problems (wrong key, wrong URL, unknown
model) that would fail every item alike: they raise
:class:`~audit.errors.ModeratorError` from :meth:`OpenAICompatBackend.generate` /
:meth:`OpenAICompatBackend.next_token_probs` instead.

Concurrency and rate
--------------------
At most ``max_concurrency`` requests are in flight per backend instance, across
concurrent calls (a semaphore held only while a request is on the wire, not during
back-off sleeps). ``requests_per_minute`` is a token bucket with capacity 1, i.e.
request *starts* (retries included) are spaced at least ``60 / rpm`` seconds apart.

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
per sample, per-item results); this module supplies the primitives: request bodies,
the concurrent HTTP calls with their retries, and the top-k renormalisation.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import math
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from audit.errors import ModeratorError
from audit.moderators.judge.backends._common import GenOut, ItemError, ItemErrorKind
from audit.moderators.judge.backends.base import BackendLoops, GenSettings

__all__ = ["CallError", "GenOut", "ItemError", "OpenAICompatBackend"]

_WHERE = "openai_compat"
_MAX_BACKOFF_S = 30.0
_MAX_RETRY_AFTER_S = 60.0
_WORD_MARKERS = "▁Ġ"
_FATAL_STATUS = {
    401: "API key rejected",
    403: "access forbidden",
    404: "endpoint or model not found",
}

#: the per-item error of this backend is the one every backend returns
CallError = ItemError
#: top-k (normalised token, log-prob) pairs at the answer position
TopK = list[tuple[str, float]]
Forms = dict[str, frozenset[str]]


class _Attempt(Exception):
    """One failed attempt (internal): kind, whether to retry, server's Retry-After."""

    def __init__(
        self, kind: ItemErrorKind, message: str, *, retry: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry = retry
        self.retry_after = retry_after


class _Pacer:
    """Token bucket of capacity 1 (``interval`` seconds per token) plus a global pause."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next = 0.0
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                slot = max(now, self._next, self._paused_until)
                if slot <= now:
                    self._next = now + self._interval
                    return
            if stop.wait(slot - now):
                return

    def pause_until(self, t: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, t)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        secs = when.timestamp() - time.time()
    if not math.isfinite(secs):
        return None
    return min(max(secs, 0.0), _MAX_RETRY_AFTER_S)


def _norm_token(tok: str) -> str:
    return tok.strip().strip(_WORD_MARKERS).strip()


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
        max_concurrency: int = 8,
        requests_per_minute: float | None = None,
        chat: bool = True,
    ) -> None:
        parts = urlsplit(base_url)
        try:
            port = parts.port
        except ValueError:
            port, parts = None, parts._replace(scheme="")  # reported just below
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModeratorError(
                "base_url must be an http(s) URL",
                where=_WHERE,
                field="base_url",
                expected="e.g. http://127.0.0.1:8000/v1",
                actual=repr(base_url),
            )
        if not model:
            raise ModeratorError("model must be a non-empty string", where=_WHERE, field="model")
        for name, value, ok in (
            ("timeout_s", timeout_s, timeout_s > 0),
            ("max_retries", max_retries, max_retries >= 0),
            ("backoff_s", backoff_s, backoff_s >= 0),
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
        self.max_concurrency = int(max_concurrency)
        self.requests_per_minute = requests_per_minute
        self.chat = chat

        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = port
        path = parts.path.rstrip("/")
        self._prefix = path if path else "/v1"
        self._api_key = os.environ.get(api_key_env) if api_key_env else None
        self._inflight = threading.BoundedSemaphore(self.max_concurrency)
        interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._pacer = _Pacer(interval)
        self._rng = random.Random()
        self._fingerprint: dict[str, Any] | None = None
        # concurrent calls are fine: the semaphore and the pacer bound the server load
        self._lock = contextlib.nullcontext()

    def __repr__(self) -> str:  # never shows the key
        return (
            f"OpenAICompatBackend(model={self.model!r}, chat={self.chat}, "
            f"max_concurrency={self.max_concurrency})"
        )

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

    # ------------------------------------------------------------------ loop primitives

    def _prepare(
        self,
        prefix: str,
        suffixes: Sequence[str],
        *,
        reuse: bool,
        max_new_tokens: int | None,
        tails: Sequence[str] | None,
    ) -> list[dict[str, Any]]:
        """One request body per suffix (the server does its own prefix caching)."""
        return [self._body(prefix, s) for s in suffixes]

    def _candidates(self, candidates: dict[str, Sequence[str]]) -> Forms:
        return self._candidate_forms(candidates)

    def _sample_seed(self, seed: int, suffix: str, sample: int) -> int:
        """Sample ``k`` asks the server for ``seed + k`` (servers take small seeds)."""
        return int(seed) + sample

    def _label_logprobs(
        self, prompts: Sequence[dict[str, Any]], cand: Forms, reuse: bool
    ) -> list[TopK | ItemError]:
        """One ``max_tokens=1`` request per item asking for the top-k log-probs."""
        jobs = []
        for base in prompts:
            body = dict(base, max_tokens=1, temperature=0.0)
            if self.chat:
                body.update(logprobs=True, top_logprobs=self.top_logprobs)
            else:
                body["logprobs"] = self.top_logprobs
            jobs.append(self._job(body, self._first_position_top))
        return self._run(jobs)

    def _generate_batch(
        self, prompts: Sequence[dict[str, Any]], seeds: Sequence[int], settings: GenSettings
    ) -> list[GenOut | ItemError]:
        """One request per (item, sample), with the sampled tokens' log-probs."""
        jobs = []
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
            jobs.append(self._job(body, self._parse_generation))
        return self._run(jobs)

    # ------------------------------------------------------------------ requests

    def _url_path(self, endpoint: str) -> str:
        return f"{self._prefix}/{endpoint}"

    def _body(self, prefix: str, suffix: str) -> dict[str, Any]:
        if not self.chat:
            return {"model": self.model, "prompt": prefix + suffix}
        if self.prefix_role == "user" or not prefix:
            messages = [{"role": "user", "content": prefix + suffix}]
        else:
            messages = [
                {"role": "system", "content": prefix},
                {"role": "user", "content": suffix},
            ]
        return {"model": self.model, "messages": messages}

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _job(
        self, body: dict[str, Any], parse: Callable[[Any], Any]
    ) -> Callable[[threading.Event], Any]:
        endpoint = "chat/completions" if self.chat else "completions"
        payload = json.dumps(body).encode("utf-8")

        def run(stop: threading.Event) -> Any:
            return self._call_with_retries("POST", self._url_path(endpoint), payload, parse, stop)

        return run

    def _run(self, jobs: Sequence[Callable[[threading.Event], Any]]) -> list[Any]:
        """Run the jobs on up to ``max_concurrency`` threads; results in job order."""
        if not jobs:
            return []
        stop = threading.Event()
        workers = min(self.max_concurrency, len(jobs))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-compat") as pool:
            futures = [pool.submit(job, stop) for job in jobs]
            try:
                return [f.result() for f in futures]
            except BaseException:
                stop.set()
                for f in futures:
                    f.cancel()
                raise

    def _call_with_retries(
        self,
        method: str,
        path: str,
        payload: bytes | None,
        parse: Callable[[Any], Any],
        stop: threading.Event,
    ) -> Any:
        attempts = 0
        while True:
            attempts += 1
            try:
                with self._inflight:  # rate slot taken inside, so starts stay spaced
                    self._pacer.acquire(stop)
                    status, headers, raw = self._request(method, path, payload)
                return self._interpret(status, headers, raw, parse)
            except _Attempt as failure:
                if not failure.retry or attempts > self.max_retries or stop.is_set():
                    return CallError(failure.kind, failure.message, attempts)
                if failure.retry_after is not None:
                    delay = failure.retry_after
                    if failure.kind == "rate_limited":
                        self._pacer.pause_until(time.monotonic() + delay)
                else:
                    jitter = 0.5 + self._rng.random()
                    delay = min(self.backoff_s * 2 ** (attempts - 1) * jitter, _MAX_BACKOFF_S)
                if stop.wait(delay):
                    return CallError(failure.kind, failure.message + " (cancelled)", attempts)

    def _interpret(
        self, status: int, headers: http.client.HTTPMessage, raw: bytes, parse: Callable[[Any], Any]
    ) -> Any:
        retry_after = _parse_retry_after(headers.get("Retry-After"))
        snippet = raw[:200].decode("utf-8", "replace")
        if status == 429:
            raise _Attempt(
                "rate_limited", f"HTTP 429: {snippet}", retry=True, retry_after=retry_after
            )
        if status in _FATAL_STATUS:
            raise ModeratorError(
                f"server answered HTTP {status} ({_FATAL_STATUS[status]}): {snippet}",
                where=_WHERE,
                fix=(
                    f"check base_url, model {self.model!r} and the API key in "
                    f"${self.api_key_env or '(none)'}"
                ),
            )
        if status >= 500 or status == 408:
            raise _Attempt(
                "server_error", f"HTTP {status}: {snippet}", retry=True, retry_after=retry_after
            )
        if status >= 400 or status < 200:
            raise _Attempt("http_error", f"HTTP {status}: {snippet}", retry=False)
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as e:
            raise _Attempt(
                "bad_response", f"body is not JSON ({e}): {snippet!r}", retry=False
            ) from e
        if isinstance(data, dict) and "error" in data and "choices" not in data:
            raise _Attempt("bad_response", f"server error payload: {snippet}", retry=False)
        try:
            return parse(data)
        except _Attempt:
            raise
        except Exception as e:  # any malformed shape is this item's bad response
            raise _Attempt(
                "bad_response", f"unexpected response shape ({type(e).__name__}: {e})", retry=False
            ) from e

    def _request(
        self, method: str, path: str, payload: bytes | None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One HTTP exchange under a whole-attempt deadline of ``timeout_s``."""
        deadline = time.monotonic() + self.timeout_s
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout_s, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)
        try:
            conn.connect()
            sock = conn.sock
            assert sock is not None

            def remaining() -> float:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                return left

            remaining()
            conn.request(method, path, body=payload, headers=self._headers())
            remaining()
            resp = conn.getresponse()
            expected = resp.getheader("Content-Length")
            chunks: list[bytes] = []
            while not resp.isclosed():  # the last read closes the socket
                remaining()
                chunk = resp.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            raw = b"".join(chunks)
            if expected is not None and expected.isdigit() and len(raw) < int(expected):
                raise _Attempt(
                    "truncated_response",
                    f"truncated body: {len(raw)} of {expected} bytes",
                    retry=True,
                )
            return resp.status, resp.headers, raw
        except TimeoutError as e:
            raise _Attempt(
                "timeout", f"no complete response within {self.timeout_s:g} s", retry=True
            ) from e
        except http.client.IncompleteRead as e:
            raise _Attempt("truncated_response", f"truncated body: {e!r}", retry=True) from e
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            raise _Attempt("connection_error", f"connection failed: {e!r}", retry=True) from e
        finally:
            conn.close()

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
            raise _Attempt("bad_response", "server returned no logprobs", retry=False)
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
            raise _Attempt(
                "bad_response", "server returned an empty top-logprobs list", retry=False
            )
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
        never = threading.Event()
        try:
            result = self._call_with_retries(
                "GET", self._url_path("models"), None, lambda data: data, never
            )
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
