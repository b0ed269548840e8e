"""OpenAI-compatible backend against a stub server on 127.0.0.1 (no other network)."""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from collections.abc import Iterator
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
from tests.helpers.stub_openai_server import (  # noqa: E402
    StubOpenAIServer,
    echo,
    garbage,
    ok,
    rate_limited,
    server_error,
    slow,
    truncated,
)

LABELS = {"safe": ["safe", "Safe"], "unsafe": ["unsafe"]}


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


# ---------------------------------------------------------------- normal answers


def test_generate_chat_order_samples_and_request_shape(stub: StubOpenAIServer) -> None:
    be = _backend(stub, max_concurrency=4)
    out = be.generate(
        "POLICY|", ["a", "b", "c"], max_new_tokens=17, num_samples=2, seed=5, stop=["\n\n"]
    )
    assert [len(row) for row in out] == [2, 2, 2]
    for suffix, row in zip("abc", out):
        for g in row:
            assert isinstance(g, GenOut)
            assert g.text == f"echo:POLICY|{suffix}"
            assert g.finish_reason == "stop"
            assert g.n_tokens == 1
            assert g.token_logprobs == [pytest.approx(-0.1)]
    posts = stub.posts()
    assert len(posts) == 6
    assert all(p.path == "/v1/chat/completions" for p in posts)
    body = posts[0].body
    assert body["model"] == "stub-model"
    assert body["messages"] == [{"role": "user", "content": body["messages"][0]["content"]}]
    assert body["max_tokens"] == 17 and body["temperature"] == 0.0 and body["stop"] == ["\n\n"]
    assert sorted(p.body["seed"] for p in posts) == [5, 5, 5, 6, 6, 6]


def test_generate_system_prefix_role(stub: StubOpenAIServer) -> None:
    be = _backend(stub)
    be.prefix_role = "system"
    [[g]] = be.generate("POLICY", ["item"])
    assert isinstance(g, GenOut) and g.text == "echo:item"
    assert stub.posts()[0].body["messages"] == [
        {"role": "system", "content": "POLICY"},
        {"role": "user", "content": "item"},
    ]


def test_generate_completions_mode(stub: StubOpenAIServer) -> None:
    stub.default = ok("unsafe S1 S10", finish_reason="length")
    be = _backend(stub, chat=False)
    [[g]] = be.generate("P:", ["x"], max_new_tokens=3)
    assert g == GenOut("unsafe S1 S10", 3, "length", pytest.approx([-0.1, -0.2, -0.3]))
    post = stub.posts()[0]
    assert post.path == "/v1/completions"
    assert post.body["prompt"] == "P:x"
    assert "messages" not in post.body


def test_next_token_probs_chat(stub: StubOpenAIServer) -> None:
    stub.default = ok(
        top_logprobs={
            "safe": math.log(0.6),
            " Safe": math.log(0.1),
            " unsafe": math.log(0.2),
            "maybe": math.log(0.05),
        }
    )
    be = _backend(stub)
    res = be.next_token_probs("P", ["a", "b"], LABELS)
    assert len(res) == 2
    for r in res:
        assert isinstance(r, dict)
        assert r["safe"] == pytest.approx(0.7 / 0.9)
        assert r["unsafe"] == pytest.approx(0.2 / 0.9)
        assert r["_raw_total"] == pytest.approx(0.9)
        assert r["_residual"] == pytest.approx(0.05)
        assert r["_imputed"] == 0.0
    body = stub.posts()[0].body
    assert body["max_tokens"] == 1
    assert body["logprobs"] is True and body["top_logprobs"] == be.top_logprobs


def test_next_token_probs_completions_absent_label_gets_upper_bound(
    stub: StubOpenAIServer,
) -> None:
    stub.default = ok(top_logprobs={"safe": math.log(0.9), "x": math.log(0.08)})
    be = _backend(stub, chat=False)
    [r] = be.next_token_probs("P", ["a"], LABELS)
    assert isinstance(r, dict)
    # residual 0.02 < p_min 0.08: unsafe's raw mass is bounded by the residual
    assert r["unsafe"] == pytest.approx(0.02 / 0.92)
    assert r["safe"] == pytest.approx(0.9 / 0.92)
    assert r["_raw_total"] == pytest.approx(0.9)
    assert r["_imputed"] == 1.0
    assert stub.posts()[0].body["logprobs"] == be.top_logprobs


def test_next_token_probs_no_candidate_is_bad_response(stub: StubOpenAIServer) -> None:
    stub.default = ok(top_logprobs={"The": -0.1, "I": -3.0})
    [r] = _backend(stub).next_token_probs("P", ["a"], LABELS)
    assert isinstance(r, CallError)
    assert r.kind == "bad_response" and r.attempts == 1
    assert len(stub.posts()) == 1


def test_candidate_config_errors(stub: StubOpenAIServer) -> None:
    be = _backend(stub)
    with pytest.raises(ModeratorError):
        be.next_token_probs("P", ["a"], {"safe": ["safe"], "unsafe": [" safe"]})
    with pytest.raises(ModeratorError):
        be.next_token_probs("P", ["a"], {"safe": [" "]})
    with pytest.raises(ModeratorError):
        be.next_token_probs("P", ["a"], {})
    assert stub.posts() == []


# ---------------------------------------------------------------- failures


def test_429_then_success_honours_retry_after(stub: StubOpenAIServer) -> None:
    stub.enqueue(rate_limited(retry_after="1"))
    be = _backend(stub, max_concurrency=1)
    t0 = time.monotonic()
    [[g]] = be.generate("", ["x"])
    assert isinstance(g, GenOut) and g.text == "echo:x"
    posts = stub.posts()
    assert len(posts) == 2
    assert posts[1].t_start - posts[0].t_start >= 0.95
    assert time.monotonic() - t0 < 5


def test_persistent_429_counts_attempts(stub: StubOpenAIServer) -> None:
    stub.default = rate_limited(retry_after="0")
    [[g]] = _backend(stub, max_retries=2).generate("", ["x"])
    assert isinstance(g, CallError)
    assert g.kind == "rate_limited" and g.attempts == 3
    assert len(stub.posts()) == 3


def test_persistent_500_gives_call_error_after_max_retries(stub: StubOpenAIServer) -> None:
    stub.default = server_error(500)
    [r] = _backend(stub, max_retries=3).next_token_probs("P", ["a"], LABELS)
    assert isinstance(r, CallError)
    assert r.kind == "server_error" and r.attempts == 4 and "500" in r.message
    assert len(stub.posts()) == 4


def test_client_error_is_not_retried_and_stays_per_item(stub: StubOpenAIServer) -> None:
    stub.enqueue(echo(), server_error(400), echo())
    out = _backend(stub, max_concurrency=1).generate("", ["a", "b", "c"])
    assert isinstance(out[0][0], GenOut) and isinstance(out[2][0], GenOut)
    err = out[1][0]
    assert isinstance(err, CallError) and err.kind == "http_error" and err.attempts == 1
    assert len(stub.posts()) == 3


def test_auth_failure_raises_moderator_error(stub: StubOpenAIServer) -> None:
    stub.default = server_error(401)
    with pytest.raises(ModeratorError, match="401"):
        _backend(stub).generate("", ["a", "b"])


def test_timeout_is_bounded(stub: StubOpenAIServer) -> None:
    stub.default = slow(10)
    be = _backend(stub, timeout_s=0.3, max_retries=1)
    t0 = time.monotonic()
    [[g]] = be.generate("", ["x"])
    elapsed = time.monotonic() - t0
    assert isinstance(g, CallError)
    assert g.kind == "timeout" and g.attempts == 2
    assert elapsed < 2.0
    assert len(stub.posts()) == 2


def test_garbage_json_is_bad_response_without_retry(stub: StubOpenAIServer) -> None:
    stub.default = garbage()
    [[g]] = _backend(stub).generate("", ["x"])
    assert isinstance(g, CallError) and g.kind == "bad_response" and g.attempts == 1
    assert len(stub.posts()) == 1


def test_wrong_shape_is_bad_response(stub: StubOpenAIServer) -> None:
    stub.default = garbage(json.dumps({"choices": []}).encode())
    [r] = _backend(stub).next_token_probs("P", ["a"], LABELS)
    assert isinstance(r, CallError) and r.kind == "bad_response"


def test_truncated_body_is_retried_then_bad_response(stub: StubOpenAIServer) -> None:
    stub.default = truncated()
    [[g]] = _backend(stub, max_retries=1).generate("", ["x"])
    assert isinstance(g, CallError)
    assert g.kind == "truncated_response" and g.attempts == 2 and "truncated" in g.message
    stub.default = echo()
    stub.enqueue(truncated())
    [[g]] = _backend(stub, max_retries=1).generate("", ["y"])
    assert isinstance(g, GenOut) and g.text == "echo:y"


# ---------------------------------------------------------------- concurrency, rate, key


def test_concurrency_bound_respected(stub: StubOpenAIServer) -> None:
    stub.default = echo(delay_s=0.15)
    suffixes = [str(i) for i in range(12)]
    out = _backend(stub, max_concurrency=3).generate("", suffixes)
    assert [row[0].text for row in out] == [f"echo:{s}" for s in suffixes]  # type: ignore[union-attr]
    assert stub.max_in_flight == 3


def test_rate_limit_spacing(stub: StubOpenAIServer) -> None:
    be = _backend(stub, max_concurrency=6, requests_per_minute=600)  # one per 0.1 s
    out = be.generate("", [str(i) for i in range(6)])
    assert all(isinstance(row[0], GenOut) for row in out)
    starts = sorted(p.t_start for p in stub.posts())
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.08, gaps
    assert starts[-1] - starts[0] >= 0.45


def test_api_key_sent_as_bearer_never_in_fingerprint(
    stub: StubOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUB_KEY", "sk-secret-123")
    be = _backend(stub, api_key_env="STUB_KEY")
    be.generate("", ["x"])
    fp = be.fingerprint()
    assert all(r.headers.get("Authorization") == "Bearer sk-secret-123" for r in stub.requests)
    assert {r.method for r in stub.requests} == {"GET", "POST"}
    assert "sk-secret" not in json.dumps(fp) and "sk-secret" not in repr(be)
    monkeypatch.delenv("STUB_KEY")
    be2 = _backend(stub, api_key_env="STUB_KEY")
    be2.generate("", ["y"])
    assert "Authorization" not in stub.posts()[-1].headers


def test_fingerprint_reports_server_model_not_host(stub: StubOpenAIServer) -> None:
    fp = _backend(stub).fingerprint()
    assert fp["backend"] == "openai_compat" and fp["model"] == "stub-model"
    assert fp["server_model"] == {
        "id": "stub-model",
        "root": "org/stub-model@abc123",
        "owned_by": "vllm",
        "max_model_len": 4096,
    }
    port = stub.base_url.rsplit(":", 1)[1].split("/")[0]
    assert "127.0.0.1" not in json.dumps(fp) and port not in json.dumps(fp)
    assert _backend(stub).fingerprint() == fp  # stable (no "created" stamp)


def test_fingerprint_without_server_is_none() -> None:
    with StubOpenAIServer() as server:
        url = server.base_url
    be = OpenAICompatBackend(url, "m", api_key_env=None, max_retries=0, timeout_s=1)
    assert be.fingerprint()["server_model"] is None


@pytest.mark.parametrize(
    "kw",
    [
        {"base_url": "ftp://x"},
        {"base_url": "http://127.0.0.1:99999999/v1"},
        {"model": ""},
        {"timeout_s": 0},
        {"max_retries": -1},
        {"max_concurrency": 0},
        {"requests_per_minute": 0},
    ],
)
def test_bad_config_raises(kw: dict) -> None:
    args = {"base_url": "http://127.0.0.1:9/v1", "model": "m", **kw}
    with pytest.raises(ModeratorError):
        OpenAICompatBackend(args.pop("base_url"), args.pop("model"), **args)
