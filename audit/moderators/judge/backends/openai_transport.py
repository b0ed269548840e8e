"""Transport of the OpenAI-compatible judge backend: the ``openai`` SDK client, the
classification of its exceptions into per-item outcomes, and ``tenacity`` retries.

:class:`Transport` owns one SDK client (built on first use: ``import openai`` costs
~1-2 s, so importing this module stays cheap), a semaphore bounding the requests in
flight, a request-start pacer and the retry loop; every request goes through
:meth:`Transport.call`, which returns the parsed answer or an
:class:`~audit.moderators.judge.backends._common.ItemError`. The outcome taxonomy,
back-off and deadline are documented in the ``openai_compat`` module docstring and in
docs/design.md ("OpenAI-compatible backend").
"""

from __future__ import annotations

import email.utils
import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from audit.errors import ModeratorError
from audit.moderators.judge.backends._common import ItemError, ItemErrorKind, import_optional

if TYPE_CHECKING:
    import openai
    import tenacity

__all__ = ["Attempt", "Send", "Transport", "classify", "decode", "retry_after_s"]

MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 60.0
FATAL_STATUS = {
    401: "API key rejected",
    403: "access forbidden",
    404: "endpoint or model not found",
}
#: the SDK insists on a non-empty key; without one this placeholder satisfies it and
#: the Authorization header is then removed from every request (see ``headers``)
_NO_KEY = "no-key"
T = TypeVar("T")
#: one attempt: (SDK client, per-request headers) -> raw response body
Send = Callable[["openai.OpenAI", dict[str, Any]], bytes]


def _sdk(module: str, where: str) -> Any:
    """``openai`` / ``tenacity``, or a ModeratorError naming the extra that brings them."""
    return import_optional(
        module,
        where,
        f"the openai_compat backend needs the {module} package",
        "openai==3.57.0 and tenacity==9.2.1",
        "pip install 'audit[judge]'",
    )


class Attempt(Exception):
    """One failed attempt: its outcome kind, whether to retry, the server's Retry-After."""

    def __init__(
        self, kind: ItemErrorKind, message: str, *, retry: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry = retry
        self.retry_after = retry_after


class _Pacer:
    """Token bucket of capacity 1 (``interval`` seconds per token) plus a global pause.

    Client-side throttling: neither the SDK nor tenacity spaces request starts."""

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


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds a server asks us to wait (``retry-after-ms``, ``Retry-After`` in seconds
    or as an HTTP date), capped at 60 s; ``None`` when absent or unreadable."""
    secs: float | None = None
    try:
        ms = headers.get("retry-after-ms")
        secs = float(ms) / 1000 if ms else None
    except ValueError:
        pass
    value = (headers.get("retry-after") or "").strip()
    if secs is None and value:
        try:
            secs = float(value)
        except ValueError:
            try:
                secs = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                return None
    if secs is None or not math.isfinite(secs):
        return None
    return min(max(secs, 0.0), MAX_RETRY_AFTER_S)


def classify(exc: Exception, timeout_s: float, where: str, fix: str) -> Attempt:
    """The SDK's exception for one attempt → its outcome (401/403/404 raise instead)."""
    import openai

    if isinstance(exc, openai.APITimeoutError):  # before its base, APIConnectionError
        return Attempt("timeout", f"no response within {timeout_s:g} s", retry=True)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        # httpx2 reports a body cut short as a RemoteProtocolError ("peer closed
        # connection without sending complete message body"); both kinds are transient,
        # the distinction only tells a flaky proxy from a refused connection
        if cause is not None and "message body" in str(cause):
            return Attempt("truncated_response", f"truncated body: {cause}", retry=True)
        return Attempt("connection_error", f"connection failed: {cause or exc!r}", retry=True)
    if not isinstance(exc, openai.APIStatusError):
        return Attempt("bad_response", f"{type(exc).__name__}: {exc}", retry=False)
    status, snippet = exc.status_code, exc.response.text[:200]
    wait = retry_after_s(exc.response.headers)
    if isinstance(exc, openai.RateLimitError):
        return Attempt("rate_limited", f"HTTP 429: {snippet}", retry=True, retry_after=wait)
    if status in FATAL_STATUS:
        raise ModeratorError(
            f"server answered HTTP {status} ({FATAL_STATUS[status]}): {snippet}",
            where=where,
            fix=fix,
        ) from None
    if isinstance(exc, openai.InternalServerError) or status == 408:
        return Attempt("server_error", f"HTTP {status}: {snippet}", retry=True, retry_after=wait)
    return Attempt("http_error", f"HTTP {status}: {snippet}", retry=False)


def decode(raw: bytes, parse: Callable[[Any], T]) -> T:
    """``parse`` of the JSON body; a non-JSON body or a wrong shape is a bad response."""
    snippet = raw[:200].decode("utf-8", "replace")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise Attempt("bad_response", f"body is not JSON ({e}): {snippet!r}", retry=False) from e
    if isinstance(data, dict) and "error" in data and "choices" not in data:
        raise Attempt("bad_response", f"server error payload: {snippet}", retry=False)
    try:
        return parse(data)
    except Attempt:
        raise
    except Exception as e:  # any malformed shape is this item's bad response
        raise Attempt(
            "bad_response", f"unexpected response shape ({type(e).__name__}: {e})", retry=False
        ) from e


class Transport:
    """SDK client, concurrency bound, pacer and retry loop of one backend instance."""

    def __init__(
        self,
        api_base: str,
        api_key: str | None,
        *,
        where: str,
        fix: str,
        timeout_s: float,
        max_retries: int,
        backoff_s: float,
        deadline_s: float,
        max_concurrency: int,
        requests_per_minute: float | None,
    ) -> None:
        self.api_base, self.where, self.fix = api_base, where, fix
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.deadline_s = backoff_s, deadline_s
        self.max_concurrency = max_concurrency
        self._api_key = api_key
        self._inflight = threading.BoundedSemaphore(max_concurrency)
        self._pacer = _Pacer(60.0 / requests_per_minute if requests_per_minute else 0.0)
        self._sdk: openai.OpenAI | None = None
        self._sdk_lock = threading.Lock()

    def client(self) -> openai.OpenAI:
        """The SDK client, built once (thread-safe); its own retries are off."""
        with self._sdk_lock:
            if self._sdk is None:
                openai = _sdk("openai", self.where)
                # max_retries=0: tenacity is the single retry owner. With the SDK's
                # retries on too, every tenacity attempt would hide up to N SDK retries
                # (attempts multiply, ItemError.attempts and the deadline lie, and the
                # SDK's back-off ignores the shared 429 pause and the rate pacer).
                self._sdk = openai.OpenAI(
                    base_url=self.api_base,
                    api_key=self._api_key or _NO_KEY,
                    max_retries=0,
                    timeout=openai.Timeout(self.timeout_s),
                )
            return self._sdk

    def headers(self) -> dict[str, Any]:
        """Per-request header overrides: only the configured key is sent, and the SDK's
        environment defaults (organisation, project) never reach a third-party server."""
        from openai import Omit

        headers: dict[str, Any] = {"OpenAI-Organization": Omit(), "OpenAI-Project": Omit()}
        if not self._api_key:
            headers["Authorization"] = Omit()
        return headers

    def close(self) -> None:
        """Close the SDK client's connection pool (idempotent)."""
        with self._sdk_lock:
            if self._sdk is not None:
                self._sdk.close()
                self._sdk = None

    def run(self, sends: Sequence[Send], parse: Callable[[Any], T]) -> list[T | ItemError]:
        """Each send on up to ``max_concurrency`` threads; results in input order. A
        fatal error (HTTP 401/403/404) cancels the rest and is raised."""
        if not sends:
            return []
        self.client()  # built (SDK imported) before any rate slot is taken
        stop = threading.Event()
        workers = min(self.max_concurrency, len(sends))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-compat") as pool:
            futures = [pool.submit(self.call, send, parse, stop) for send in sends]
            try:
                return [f.result() for f in futures]
            except BaseException:
                stop.set()
                for f in futures:
                    f.cancel()
                raise

    def call(self, send: Send, parse: Callable[[Any], T], stop: threading.Event) -> T | ItemError:
        """``parse(json(send()))`` under tenacity's retries; a final failure as data."""
        tenacity = _sdk("tenacity", self.where)

        attempts = 0

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            client, headers = self.client(), self.headers()
            with self._inflight:  # rate slot taken inside, so starts stay spaced
                self._pacer.acquire(stop)
                if stop.is_set():
                    raise Attempt("connection_error", "cancelled", retry=False)
                try:
                    raw = send(client, headers)
                except ModeratorError:
                    raise
                except Exception as exc:  # the SDK's own error types, classified
                    raise classify(exc, self.timeout_s, self.where, self.fix) from exc
            return decode(raw, parse)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, Attempt) and e.retry),
            stop=tenacity.stop_any(
                tenacity.stop_after_attempt(self.max_retries + 1),
                # never start a wait that ends past the item's total deadline
                tenacity.stop_before_delay(self.deadline_s),
                tenacity.stop_when_event_set(stop),
            ),
            wait=self._wait(),
            sleep=tenacity.sleep_using_event(stop),
            reraise=True,
        )
        try:
            answer: T = retrying(attempt)  # tenacity comes in as Any (import_optional)
            return answer
        except Attempt as failure:
            return ItemError(failure.kind, failure.message, attempts)

    def _wait(self) -> Callable[[tenacity.RetryCallState], float]:
        """Full-jitter exponential back-off (docs/design.md), or the server's
        Retry-After; a 429's wait also pauses every worker of this transport."""
        import tenacity

        backoff = tenacity.wait_random_exponential(multiplier=self.backoff_s, max=MAX_BACKOFF_S)

        def wait(state: tenacity.RetryCallState) -> float:
            failure = state.outcome.exception() if state.outcome else None
            if not isinstance(failure, Attempt) or failure.retry_after is None:
                return float(backoff(state))
            if failure.kind == "rate_limited":
                self._pacer.pause_until(time.monotonic() + failure.retry_after)
            return failure.retry_after

        return wait
