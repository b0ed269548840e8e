"""OpenAI-compatible judge backend against the local stub server (issue 9, "Also").

Times ``OpenAICompatBackend`` end to end on 127.0.0.1 (no other network), three
scenarios of ``--n`` requests each at ``max_concurrency`` 8, best of ``--repeat``:

(a) ``generate``: one chat request per item, echo answers;
(b) ``next_token_probs``: one ``max_tokens=1`` request per item with top-20 logprobs;
(c) retries: every 4th request first answers HTTP 503 and succeeds on the retry
    (back-off base 0.01 s), so the retry path's own overhead shows;
(d) as (a) on a stub that keeps HTTP/1.1 connections alive (vLLM does): the old
    client opens a connection per request, the SDK's pool reuses them.

This checkout's stub (HTTP/1.0 for a-c: one connection per request; TCP_NODELAY and
a listen backlog of 128 so no kernel stall is timed) serves both clients alike.
``--audit-root`` puts another checkout first on ``sys.path`` (e.g. ``/work/main``) so
the old hand-written client and the new SDK one are timed by the same script, stub and
machine in one session; the result file records which ``audit`` was imported and the
one-time cost of a fresh process's first request (module import, SDK import).

Usage: ``python bench/bench_openai.py [--audit-root /work/main] [--name openai_main]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import subprocess
import sys
from typing import Any

import _common
from _common import timed, write


def _first_call_seconds(root: str) -> float:
    """Fresh process: import the backend module, build a backend and make its first
    request (to a closed port, no retries), which is when the new client loads the SDK."""
    code = (
        f"import sys, time; sys.path.insert(0, {root!r}); t = time.perf_counter();"
        "from audit.moderators.judge.backends.openai_compat import OpenAICompatBackend;"
        "be = OpenAICompatBackend('http://127.0.0.1:9/v1', 'm', api_key_env=None,"
        " max_retries=0);"
        "be.generate('', ['x']); print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--audit-root", default=str(_common.ROOT))
    ap.add_argument("--name", default="openai")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, args.audit_root)

    import audit
    from audit.moderators.judge.backends.openai_compat import OpenAICompatBackend

    # this checkout's stub serves both clients (by path: --audit-root may shadow `tests`)
    spec = importlib.util.spec_from_file_location(
        "stub_openai_server", _common.ROOT / "tests" / "helpers" / "stub_openai_server.py"
    )
    assert spec is not None and spec.loader is not None
    stubs = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = stubs  # dataclasses resolve their module while building
    spec.loader.exec_module(stubs)
    StubOpenAIServer, echo, ok, server_error = (
        stubs.StubOpenAIServer,
        stubs.echo,
        stubs.ok,
        stubs.server_error,
    )

    items = [f"item {i}" for i in range(args.n)]
    top = {"safe": math.log(0.7), "unsafe": math.log(0.2), "x": math.log(0.05)}
    labels = {"safe": ["safe"], "unsafe": ["unsafe"]}
    results: dict[str, Any] = {}
    with StubOpenAIServer() as stub:
        be = OpenAICompatBackend(
            stub.base_url, "stub-model", api_key_env=None, backoff_s=0.01, max_concurrency=8
        )
        be.fingerprint()  # the GET /models probe, outside the timings
        stub.default = echo()
        results["generate_s"], out = timed(lambda: be.generate("P|", items), args.repeat)
        assert all(type(row[0]).__name__ == "GenOut" for row in out)
        stub.default = ok(top_logprobs=top)
        results["logprobs_s"], out = timed(
            lambda: be.next_token_probs("P|", items, labels), args.repeat
        )
        assert all(isinstance(r, dict) for r in out)

        def with_retries() -> Any:
            seen: set[str] = set()
            answer, fail = echo(), server_error(503)

            def flaky(req: Any) -> Any:  # items 0, 4, 8... fail once, then succeed
                text = str(req.body["messages"][-1]["content"])
                first = text not in seen
                seen.add(text)
                return fail(req) if first and int(text.rsplit(" ", 1)[1]) % 4 == 0 else answer(req)

            stub.default = flaky
            return be.generate("P|", items)

        before = len(stub.posts())
        results["retry_s"], out = timed(with_retries, args.repeat)
        assert all(type(row[0]).__name__ == "GenOut" for row in out)
        # n first attempts plus one retry per failing item, per repeat
        results["retry_posts_per_run"] = (len(stub.posts()) - before) / args.repeat
        be.close()

    with StubOpenAIServer(keep_alive=True) as stub:  # (d) HTTP/1.1 keep-alive, as vLLM
        be = OpenAICompatBackend(stub.base_url, "stub-model", api_key_env=None, max_concurrency=8)
        be.fingerprint()
        results["keepalive_generate_s"], out = timed(lambda: be.generate("P|", items), args.repeat)
        assert all(type(row[0]).__name__ == "GenOut" for row in out)
        be.close()

    results["first_call_s"] = min(_first_call_seconds(args.audit_root) for _ in range(3))
    write(
        args.name,
        {
            "audit_module": audit.__file__,
            "requests_per_scenario": args.n,
            "max_concurrency": 8,
            "repeat": args.repeat,
            **{k: round(v, 4) for k, v in results.items()},
        },
    )


if __name__ == "__main__":
    main()
