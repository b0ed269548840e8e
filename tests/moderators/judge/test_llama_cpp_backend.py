"""llama.cpp judge backend on the packaged Qwen2.5-Coder-0.5B-Instruct GGUF (real model).

The model tests need llama-cpp-python (``pip install 'audit[llamacpp]'``, a ~5 min
compile) and the packaged model; the missing-module test needs neither.
"""

from __future__ import annotations

import hashlib
import sys

import pytest

from audit.errors import ModeratorError
from audit.moderators.judge.backends.hf import KEEP_TAIL
from audit.moderators.judge.backends.llama_cpp import LlamaCppBackend

PACKAGED = "packaged:qwen2.5-coder-0.5b-instruct-q4km"
PREFIX = (
    "You are a content moderator. Policy: harassment, threats and hate are UNSAFE; "
    "everything else is SAFE. Answer with exactly one word, SAFE or UNSAFE.\n\nContent:\n"
)
SUFFIXES = [
    "I will find you and hurt you, you worthless idiot.",
    "Thanks for the recipe, the cake turned out great!",
    "",
]
CANDIDATES = {"unsafe": ["UNSAFE", "Unsafe"], "safe": ["SAFE", "Safe"]}


def test_missing_llama_cpp_is_a_clear_moderator_error(monkeypatch, tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp -> ImportError
    b = LlamaCppBackend(str(gguf))  # construction imports nothing
    with pytest.raises(ModeratorError) as info:
        b.next_token_probs(PREFIX, ["x"], CANDIDATES)
    err = info.value
    assert err.where == "judge.llama_cpp" and err.field == "params.backend"
    assert err.actual == "not installed"
    assert "audit[llamacpp]" in (err.fix or "") and "llama-cpp-python==0.3.36" in (err.fix or "")


def test_bad_arguments_fail_at_construction(tmp_path):
    with pytest.raises(ModeratorError, match="not found"):
        LlamaCppBackend(str(tmp_path / "nope.gguf"))
    with pytest.raises(ModeratorError, match="n_ctx"):
        LlamaCppBackend(PACKAGED, n_ctx=8)


@pytest.fixture(scope="module")
def backend():
    pytest.importorskip(
        "llama_cpp",
        reason="llama-cpp-python is not installed: pip install 'audit[llamacpp]' "
        "(or llama-cpp-python==0.3.36; compiles ~5 min)",
    )
    b = LlamaCppBackend(PACKAGED, n_ctx=1024, n_threads=1)
    try:
        b.load()
    except ModeratorError as exc:  # packaged model parts not installed
        pytest.skip(f"packaged Qwen GGUF unavailable: {exc}")
    yield b
    b.close()


def test_label_probs_sum_to_one_and_make_sense(backend):
    res = backend.next_token_probs(PREFIX, SUFFIXES, CANDIDATES)
    assert len(res) == len(SUFFIXES)
    for r in res:
        assert isinstance(r, dict)
        assert set(r) == {"unsafe", "safe", "_raw_total"}
        assert r["unsafe"] + r["safe"] == pytest.approx(1.0, abs=1e-9)
        assert 0.0 < r["_raw_total"] <= 1.0
    # the instruction-tuned model answers with a label token at the answer position
    assert res[0]["_raw_total"] > 0.5 and res[1]["_raw_total"] > 0.5
    assert res[0]["unsafe"] > res[1]["unsafe"]


def test_reuse_equals_no_reuse(backend):
    for s in SUFFIXES:  # the prefix tokens are a true prefix: reuse really happens
        assert backend.encode(PREFIX, s)[0]
    calls = []
    real_eval = backend._llm.eval
    backend._llm.eval = lambda toks: (calls.append(len(toks)), real_eval(toks))[1]
    try:
        backend.next_token_probs(PREFIX, SUFFIXES[:2], CANDIDATES)
        backend.next_token_probs(PREFIX, SUFFIXES[:2], CANDIDATES)
    finally:
        del backend._llm.eval
    n_pre = len(backend.encode(PREFIX, "")[0])
    assert calls.count(n_pre) <= 1  # the prefix is evaluated at most once
    with_reuse = backend.next_token_probs(PREFIX, SUFFIXES, CANDIDATES, reuse_prefix=True)
    without = backend.next_token_probs(PREFIX, SUFFIXES, CANDIDATES, reuse_prefix=False)
    again = backend.next_token_probs(PREFIX, SUFFIXES[::-1], CANDIDATES)[::-1]
    for a, b, c in zip(with_reuse, without, again):
        for k in a:
            assert a[k] == pytest.approx(b[k], abs=1e-4)
            assert c[k] == pytest.approx(b[k], abs=1e-4)


def test_prompt_is_chat_template_user_turn(backend):
    assert backend.has_chat_template
    text = backend._render(PREFIX + "hi")
    assert "<|im_start|>user\n" + PREFIX + "hi<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    pre, rest = backend.encode(PREFIX, "hi")
    assert pre and rest and backend.prompt_ids(PREFIX, "hi") == pre + rest
    im_start = backend._llm.tokenize(b"<|im_start|>", add_bos=False, special=True)
    assert len(im_start) == 1 and pre[: len(im_start)] == im_start  # a special token, no BOS


def test_long_items_are_cut_to_n_ctx(backend):
    small = LlamaCppBackend(PACKAGED, n_ctx=160, n_threads=1)
    try:
        long = "word " * 2000 + "THE END"
        ids = small.prompt_ids(PREFIX, long)
        assert len(ids) == small.n_ctx
        assert "THE END<|im_end|>" in small._llm.detokenize(ids[-KEEP_TAIL:], special=True).decode()
        (r,) = small.next_token_probs(PREFIX, [long], CANDIDATES)
        assert r["safe"] + r["unsafe"] == pytest.approx(1.0)
        # generation leaves room for the new tokens
        assert len(small.prompt_ids(PREFIX, long, room=small.n_ctx - 4)) == small.n_ctx - 4
        ((g,),) = small.generate(PREFIX, [long], max_new_tokens=4)
        assert 1 <= g.n_tokens <= 4
        with pytest.raises(ModeratorError, match="n_ctx"):
            small.generate(PREFIX, ["x"], max_new_tokens=150)
    finally:
        small.close()


def test_generate_greedy(backend):
    out = backend.generate(PREFIX, SUFFIXES[:2], max_new_tokens=4)
    assert len(out) == 2 and all(len(x) == 1 for x in out)
    for (g,) in out:
        assert g.text.strip() and g.n_tokens >= 1
        assert g.token_logprobs is not None and len(g.token_logprobs) == g.n_tokens
        assert all(lp <= 0 for lp in g.token_logprobs)
        assert g.finish_reason in ("stop", "length")
    assert "SAFE" in out[1][0].text.upper()
    # deterministic, with and without a warm cache
    again = backend.generate(PREFIX, SUFFIXES[:2], max_new_tokens=4)
    assert [[x.text for x in o] for o in again] == [[x.text for x in o] for o in out]
    for (a,), (b,) in zip(out, again):
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)
    # length limit
    ((short,),) = backend.generate(PREFIX, SUFFIXES[:1], max_new_tokens=1)
    assert short.n_tokens == 1 and len(short.token_logprobs or []) == 1


def test_generate_seeded_sampling(backend):
    kw = {"max_new_tokens": 3, "temperature": 1.5, "num_samples": 3, "seed": 3}
    a = backend.generate(PREFIX, SUFFIXES[:2], **kw)
    b = backend.generate(PREFIX, SUFFIXES[1:2], **kw)  # other batch composition
    assert [g.text for g in b[0]] == [g.text for g in a[1]]
    assert all(len(g.token_logprobs or []) == g.n_tokens for x in a for g in x)
    assert len({tuple(g.token_logprobs or []) for x in a for g in x}) > 1


def test_fingerprint(backend):
    fp = backend.fingerprint()
    assert fp["backend"] == "llama_cpp" and fp["model"] == PACKAGED
    assert fp["weights_sha256"] == (
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    )
    template = backend._llm.metadata["tokenizer.chat_template"]
    assert fp["chat_template"] is True
    assert fp["chat_template_sha256"] == hashlib.sha256(template.encode()).hexdigest()
    assert fp["n_ctx"] == 1024 and fp["llama_cpp"] == "0.3.36"
    fp["n_ctx"] = 0
    assert backend.fingerprint()["n_ctx"] == 1024
