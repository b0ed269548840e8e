"""A scriptable stub of an OpenAI-compatible server on 127.0.0.1, for backend tests.

    with StubOpenAIServer() as stub:
        stub.enqueue(rate_limited(retry_after="1"), ok(text="safe"))
        backend = OpenAICompatBackend(stub.base_url, "stub-model")

Each POST takes the next scripted behaviour from the queue, or ``stub.default`` when
the queue is empty (by default an echo of the last user message / prompt tail with
token log-probabilities). ``GET /v1/models`` answers ``stub.models``. Every request is
recorded (path, headers by case-insensitive name, JSON body and the raw bytes, arrival
and end times; ``stub.posts()``, ``stub.requests``) and the largest number of
requests in flight at once is kept in ``max_in_flight``. Slow behaviours wait on an
event that :meth:`StubOpenAIServer.close` sets, so shutdown is immediate.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "Recorded",
    "Reply",
    "StubOpenAIServer",
    "echo",
    "garbage",
    "ok",
    "rate_limited",
    "server_error",
    "slow",
    "truncated",
]


class Headers(dict[str, str]):
    """Request headers by lower-cased name: HTTP header names are case-insensitive
    (RFC 9110 §5.1), and clients differ (``Authorization`` vs ``authorization``)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class Recorded:
    method: str
    path: str
    headers: Headers
    body: Any
    t_start: float
    t_end: float | None = None
    #: the request body exactly as received (``body`` is its JSON decoding)
    raw: bytes = b""


@dataclass
class Reply:
    """What the stub sends: status, headers, body bytes, after ``delay_s``.

    ``content_length`` overrides the Content-Length header (a larger value than the
    body makes a truncated response: the connection closes early).
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    content_length: int | None = None


Behaviour = Callable[[Recorded], Reply]


def _user_text(req: Recorded) -> str:
    body = req.body if isinstance(req.body, dict) else {}
    if "messages" in body:
        content = body["messages"][-1]["content"]
        if isinstance(content, list):  # content parts: the text parts, in order
            return "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
        return str(content)
    return str(body.get("prompt", ""))


def _completion(
    req: Recorded,
    text: str,
    top: dict[str, float] | None,
    finish_reason: str,
) -> dict[str, Any]:
    """An OpenAI-shaped chat or completions response for ``req``."""
    pieces = text.split(" ") if text else []
    tokens = [p if i == 0 else " " + p for i, p in enumerate(pieces)]
    lps = [-0.1 * (i + 1) for i in range(len(tokens))]
    if top:  # the first token is the most likely top-k entry
        first = max(top, key=lambda k: top[k])
        tokens = [first, *tokens[1:]] if tokens else [first]
        lps = [top[first], *lps[1:]] if lps else [top[first]]
        text = "".join(tokens)
    usage = {"prompt_tokens": 7, "completion_tokens": len(tokens), "total_tokens": 7 + len(tokens)}
    body = req.body if isinstance(req.body, dict) else {}
    if req.path.endswith("/chat/completions"):
        logprobs = None
        if body.get("logprobs"):
            content = []
            for i, (tok, lp) in enumerate(zip(tokens, lps)):
                entry: dict[str, Any] = {"token": tok, "logprob": lp, "bytes": list(tok.encode())}
                entry["top_logprobs"] = (
                    [{"token": k, "logprob": v} for k, v in top.items()]
                    if top and i == 0
                    else [{"token": tok, "logprob": lp}]
                )
                content.append(entry)
            logprobs = {"content": content}
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": logprobs,
            "finish_reason": finish_reason,
        }
        obj = "chat.completion"
    else:
        logprobs = None
        if body.get("logprobs") is not None:
            logprobs = {
                "tokens": tokens,
                "token_logprobs": lps,
                "top_logprobs": [
                    dict(top) if top and i == 0 else {t: lp}
                    for i, (t, lp) in enumerate(zip(tokens, lps))
                ],
                "text_offset": [0] * len(tokens),
            }
        choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}
        obj = "text_completion"
    return {
        "id": "cmpl-stub",
        "object": obj,
        "created": int(time.time()),
        "model": body.get("model", "stub-model"),
        "choices": [choice],
        "usage": usage,
    }


def _json_reply(payload: Any, status: int = 200, delay_s: float = 0.0) -> Reply:
    return Reply(
        status=status,
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        delay_s=delay_s,
    )


def ok(
    text: str | Callable[[str], str] = "safe",
    *,
    top_logprobs: dict[str, float] | None = None,
    finish_reason: str = "stop",
    delay_s: float = 0.0,
) -> Behaviour:
    """A normal answer; ``text`` may be a function of the user text / prompt.

    ``top_logprobs`` (token → logprob) is the first position's top-k list; its most
    likely token becomes the first generated token.
    """

    def behave(req: Recorded) -> Reply:
        t = text(_user_text(req)) if callable(text) else text
        return _json_reply(_completion(req, t, top_logprobs, finish_reason), delay_s=delay_s)

    return behave


def echo(delay_s: float = 0.0) -> Behaviour:
    """Answers ``echo:<user text>`` (lets tests check result order under concurrency)."""
    return ok(lambda user: f"echo:{user}", delay_s=delay_s)


def rate_limited(retry_after: str | None = "1") -> Behaviour:
    def behave(req: Recorded) -> Reply:
        reply = _json_reply({"error": {"message": "rate limited", "code": 429}}, status=429)
        if retry_after is not None:
            reply.headers["Retry-After"] = retry_after
        return reply

    return behave


def server_error(status: int = 500) -> Behaviour:
    return lambda req: _json_reply({"error": {"message": "boom"}}, status=status)


def slow(delay_s: float, then: Behaviour | None = None) -> Behaviour:
    """Waits ``delay_s`` before answering (with ``then``, default a normal answer)."""
    inner = then or ok()

    def behave(req: Recorded) -> Reply:
        reply = inner(req)
        reply.delay_s = delay_s
        return reply

    return behave


def garbage(body: bytes = b"<html>502 Bad Gateway</html> {not json") -> Behaviour:
    return lambda req: Reply(status=200, body=body, headers={"Content-Type": "application/json"})


def truncated() -> Behaviour:
    """A valid response cut in half: Content-Length promises more than is sent."""

    def behave(req: Recorded) -> Reply:
        full = json.dumps(_completion(req, "safe", None, "stop")).encode()
        return Reply(
            status=200,
            body=full[: len(full) // 2],
            # the connection closes after the short body, kept alive or not
            headers={"Content-Type": "application/json", "Connection": "close"},
            content_length=len(full),
        )

    return behave


class _Server(ThreadingHTTPServer):
    # the standard library listens with a backlog of 5: a client opening more
    # connections at once than the accept loop takes (a loaded host, 8+ workers) has
    # its SYN dropped and retransmitted after 1 s, a stall that is the kernel's, not
    # the client's
    request_queue_size = 128


class StubOpenAIServer:
    """Threaded HTTP server on 127.0.0.1 (ephemeral port); use as a context manager."""

    def __init__(self, model_id: str = "stub-model", *, keep_alive: bool = False) -> None:
        """``keep_alive``: answer HTTP/1.1 and keep connections open between requests
        (as vLLM does); by default HTTP/1.0, one request per connection."""
        self.keep_alive = keep_alive
        self.models: dict[str, Any] = {
            "object": "list",
            "data": [
                {
                    "id": model_id,
                    "object": "model",
                    "created": int(time.time()),
                    "owned_by": "vllm",
                    "root": "org/stub-model@abc123",
                    "max_model_len": 4096,
                }
            ],
        }
        self.default: Behaviour = echo()
        self.requests: list[Recorded] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --------------------------------------------------------------- control

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def enqueue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._script.extend(behaviours)

    def posts(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def start(self) -> StubOpenAIServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StubOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- serving

    def _next(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if stub.keep_alive else "HTTP/1.0"
            # headers and body go out in separate writes: without TCP_NODELAY, Nagle
            # holds the body until the client's delayed ACK (~40 ms per request), and
            # timings would measure the kernel rather than the client
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                rec = Recorded(
                    method,
                    self.path,
                    Headers(self.headers.items()),
                    body,
                    time.monotonic(),
                    raw=raw,
                )
                counted = [True]

                def done() -> None:
                    with stub._lock:
                        if counted[0]:
                            counted[0] = False
                            stub._in_flight -= 1
                            rec.t_end = time.monotonic()

                with stub._lock:
                    stub.requests.append(rec)
                    stub._in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub._in_flight)
                try:
                    if method == "GET" and self.path.rstrip("/").endswith("/models"):
                        reply = _json_reply(stub.models)
                    elif method == "GET":
                        reply = _json_reply({"error": "not found"}, status=404)
                    else:
                        reply = stub._next()(rec)
                    if reply.delay_s and stub._closing.wait(reply.delay_s):
                        return
                    # leave the in-flight count before the client can see the reply end,
                    # so a client that starts its next request at once is not double-counted
                    done()
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    n = (
                        reply.content_length
                        if reply.content_length is not None
                        else len(reply.body)
                    )
                    self.send_header("Content-Length", str(n))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    done()

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        return Handler
