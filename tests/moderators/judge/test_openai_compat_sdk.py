"""OpenAI-compatible backend on the SDK + tenacity: content parts, retry ownership,
the total deadline, the shared 429 pause, outcome classes and lazy SDK import."""

from __future__ import annotations

import base64
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[3]
if str(_ROOT) not in sys.path:  # `pytest` run without `python -m`
    sys.path.insert(0, str(_ROOT))

from audit.errors import ModeratorError  # noqa: E402
from audit.moderators.judge.backends.openai_compat import (  # noqa: E402
    CallError,
    GenOut,
    OpenAICompatBackend,
)
from audit.moderators.judge.backends.openai_transport import retry_after_s  # noqa: E402
from audit.schema import TRANSIENT_ERRORS, error_class  # noqa: E402
from tests.helpers.stub_openai_server import (  # noqa: E402
    StubOpenAIServer,
    echo,
    garbage,
    rate_limited,
    server_error,
    slow,
    truncated,
)

# a real 1x1 PNG (red pixel): the part must reach the server byte for byte
_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
        "0000000c49444154789c63f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
    )
).decode()
IMAGE = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_PNG}"}}
TEXT = {"type": "text", "text": "Is this image safe?"}


@pytest.fixture
def stub() -> Iterator[StubOpenAIServer]:
    with StubOpenAIServer() as server:
        yield server


def _backend(stub: StubOpenAIServer, **kw) -> OpenAICompatBackend:
    kw.setdefault("timeout_s", 5)
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("max_retries", 2)
    kw.setdefault("api_key_env", None)
    return OpenAICompatBackend(stub.base_url, "stub-model", **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- content parts


def test_image_part_reaches_the_server_intact(stub: StubOpenAIServer) -> None:
    be = _backend(stub)
    [[g]] = be.generate("POLICY|", [[TEXT, IMAGE]])  # type: ignore[list-item]
    assert isinstance(g, GenOut) and g.text == "echo:POLICY|Is this image safe?"
    [post] = stub.posts()
    # the prefix leads as its own text part; the item's parts follow unchanged
    assert post.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "POLICY|"}, TEXT, IMAGE]}
    ]
    assert json.loads(post.raw)["messages"][0]["content"][2] == IMAGE
    assert _PNG.encode() in post.raw


def test_image_part_with_system_prefix_and_logprobs(stub: StubOpenAIServer) -> None:
    stub.default = echo()
    be = _backend(stub)
    be.prefix_role = "system"
    be.next_token_probs("POLICY", [[IMAGE]], {"safe": ["echo:"]})  # type: ignore[list-item]
    body = stub.posts()[0].body
    assert body["messages"] == [
        {"role": "system", "content": "POLICY"},
        {"role": "user", "content": [IMAGE]},
    ]
    assert body["logprobs"] is True and body["max_tokens"] == 1


def test_text_items_keep_plain_string_content(stub: StubOpenAIServer) -> None:
    _backend(stub).generate("P|", ["x"])
    assert stub.posts()[0].body["messages"] == [{"role": "user", "content": "P|x"}]


@pytest.mark.parametrize(
    ("chat", "suffix", "match"),
    [
        (False, [IMAGE], "chat endpoint"),
        (True, [], "non-empty list"),
        (True, [{"image_url": {"url": "x"}}], "string 'type'"),
        (True, ["just text"], "string 'type'"),
    ],
)
def test_bad_content_parts_raise_before_any_request(
    stub: StubOpenAIServer, chat: bool, suffix: list, match: str
) -> None:
    with pytest.raises(ModeratorError, match=match):
        _backend(stub, chat=chat).generate("P", [suffix])  # type: ignore[list-item]
    assert stub.posts() == []


# ---------------------------------------------------------------- retries: one owner


def test_sdk_retries_are_off(stub: StubOpenAIServer) -> None:
    """With max_retries=0 a 503 costs exactly one request: the SDK adds none."""
    stub.default = server_error(503)
    [[g]] = _backend(stub, max_retries=0).generate("", ["x"])
    assert isinstance(g, CallError) and g.kind == "server_error" and g.attempts == 1
    [post] = stub.posts()
    assert post.headers["x-stainless-retry-count"] == "0"


def test_retry_after_longer_than_deadline_gives_up_without_waiting(
    stub: StubOpenAIServer,
) -> None:
    stub.default = rate_limited(retry_after="30")
    t0 = time.monotonic()
    [[g]] = _backend(stub, max_retries=5, deadline_s=2).generate("", ["x"])
    assert time.monotonic() - t0 < 1.5
    assert isinstance(g, CallError) and g.kind == "rate_limited" and g.attempts == 1


def test_deadline_bounds_total_time_across_retries(stub: StubOpenAIServer) -> None:
    stub.default = slow(0.4, server_error(500))
    t0 = time.monotonic()
    [[g]] = _backend(stub, max_retries=20, backoff_s=0.05, deadline_s=1.0).generate("", ["x"])
    elapsed = time.monotonic() - t0
    assert isinstance(g, CallError) and g.kind == "server_error"
    assert 2 <= g.attempts <= 4 and elapsed < 2.0  # 1 s deadline + at most one attempt


def test_429_pauses_every_worker(stub: StubOpenAIServer) -> None:
    stub.default = echo(delay_s=0.2)
    stub.enqueue(rate_limited(retry_after="1"))
    out = _backend(stub, max_concurrency=2).generate("", ["a", "b", "c", "d"])
    assert [row[0].text for row in out] == ["echo:a", "echo:b", "echo:c", "echo:d"]  # type: ignore[union-attr]
    starts = sorted(p.t_start for p in stub.posts())
    assert len(starts) == 5  # 4 items + the retry of the rate-limited one
    # the two first requests started together; every later start waited for the pause
    assert all(t - starts[0] >= 0.95 for t in starts[2:]), starts


def test_retry_after_forms() -> None:
    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_s({"retry-after": "999"}) == 60.0  # capped
    assert retry_after_s({"retry-after": "-3"}) == 0.0
    when = retry_after_s({"retry-after": formatdate(time.time() + 5, usegmt=True)})
    assert when is not None and 3.5 < when <= 5.0
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None


# ---------------------------------------------------------------- outcome classes


def test_transport_failures_are_transient_and_model_failures_are_not(
    stub: StubOpenAIServer,
) -> None:
    """Every transport failure maps onto a transient class (never cached as a verdict);
    4xx and unreadable answers are model errors (deterministic, cached)."""
    cases = [
        (server_error(502), "server_error"),
        (server_error(408), "server_error"),
        (rate_limited(retry_after="0"), "rate_limited"),
        (truncated(), "truncated_response"),
        (slow(5), "timeout"),
        (server_error(400), "http_error"),
        (garbage(), "bad_response"),
    ]
    for behaviour, kind in cases:
        stub.default = behaviour
        [[g]] = _backend(stub, max_retries=0, timeout_s=0.3).generate("", ["x"])
        assert isinstance(g, CallError) and g.kind == kind, (kind, g)
        transient = kind not in ("http_error", "bad_response")
        assert (g.kind in TRANSIENT_ERRORS) is transient
        assert error_class(g.kind) == ("transient" if transient else "model_error")


def test_connection_refused_is_retried_then_transient() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    be = OpenAICompatBackend(url, "m", api_key_env=None, max_retries=2, backoff_s=0.01)
    [[g]] = be.generate("", ["x"])
    assert isinstance(g, CallError) and g.kind == "connection_error" and g.attempts == 3
    assert g.kind in TRANSIENT_ERRORS


@pytest.mark.parametrize("status", [401, 403, 404])
def test_configuration_statuses_raise_with_the_fix(stub: StubOpenAIServer, status: int) -> None:
    stub.default = server_error(status)
    with pytest.raises(ModeratorError, match=str(status)) as info:
        _backend(stub, api_key_env="MY_KEY").next_token_probs("P", ["a"], {"safe": ["safe"]})
    assert "$MY_KEY" in str(info.value)
    assert len(stub.posts()) == 1  # not retried


# ---------------------------------------------------------------- key, env, import


def test_key_only_from_the_named_env_var_and_never_logged(
    stub: StubOpenAIServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-sdk-default-999")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-leak")
    monkeypatch.setenv("STUB_KEY", "sk-secret-123")
    with caplog.at_level(logging.DEBUG):
        be = _backend(stub, api_key_env="STUB_KEY")
        be.generate("", ["x"])
        be.fingerprint()
    assert all(r.headers["authorization"] == "Bearer sk-secret-123" for r in stub.requests)
    assert not any("openai-organization" in r.headers for r in stub.requests)
    assert "sk-secret" not in caplog.text and "sk-sdk-default" not in caplog.text
    nokey = _backend(stub, api_key_env="UNSET_KEY_VAR")
    nokey.generate("", ["y"])
    assert "authorization" not in stub.posts()[-1].headers  # not the SDK's OPENAI_API_KEY


def test_close_is_idempotent_and_the_backend_reopens(stub: StubOpenAIServer) -> None:
    be = _backend(stub)
    be.generate("", ["x"])
    be.close()
    be.close()
    [[g]] = be.generate("", ["y"])
    assert isinstance(g, GenOut) and g.text == "echo:y"


def test_module_import_does_not_load_the_sdks() -> None:
    code = (
        "import sys; import audit.moderators.judge.backends.openai_compat as m;"
        "m.OpenAICompatBackend('http://127.0.0.1:9/v1', 'm', api_key_env=None);"
        "print(sorted(k for k in ('openai', 'tenacity', 'httpx2') if k in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=_ROOT
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["openai", "tenacity"])
def test_missing_sdk_is_a_clear_error(
    stub: StubOpenAIServer, monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import <module>` fail
    with pytest.raises(ModeratorError, match=r"audit\[judge\]") as info:
        _backend(stub).generate("", ["x"])
    assert module in str(info.value)
    assert stub.posts() == []
