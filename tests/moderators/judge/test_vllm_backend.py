"""vLLM judge backend against a small fake ``vllm`` module (vLLM needs CUDA; not here).

The fake implements the documented surface the backend uses — ``vllm.LLM(**engine
args)``, ``LLM.get_tokenizer()``, ``LLM.generate(prompts, sampling_params,
use_tqdm=False)`` on ``{"prompt_token_ids": ...}`` prompts, ``vllm.SamplingParams``
(``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``logprobs``, ``prompt_logprobs``,
``stop``), ``RequestOutput.outputs[0]`` / ``.prompt_logprobs`` with ``Logprob`` values
— over deterministic logits, so these tests check the backend's mapping logic
(candidate probabilities, top-k fallback, renormalisation, failures, generation
fields, seeds, fingerprint), not vLLM itself.
"""

from __future__ import annotations

import hashlib
import math
import sys

import pytest

from audit.errors import ModeratorError
from audit.moderators.judge.backends._common import KEEP_TAIL, GenOut, seed_for
from audit.moderators.judge.backends.vllm import TOP_LOGPROBS, ItemError, VLLMBackend
from tests.helpers.fake_vllm import (
    BOS,
    CANDIDATES,
    PREFIX,
    RECORD,
    TEMPLATE,
    VOCAB,
    fake_logits,
    log_softmax,
)


@pytest.fixture
def backend(fake_vllm):
    b = VLLMBackend("org/fake-judge", revision="abc123", max_length=256)
    yield b
    b.close()


def reference(b: VLLMBackend, suffix: str) -> dict[str, float]:
    """Full-vocabulary softmax of the fake's logits at the answer position."""
    logp = log_softmax(fake_logits(b.prompt_ids(PREFIX, suffix)))
    mass = {lab: sum(math.exp(logp[ord(s[0])]) for s in set(ss)) for lab, ss in CANDIDATES.items()}
    total = sum(mass.values())
    return {**{k: v / total for k, v in mass.items()}, "_raw_total": total}


SUFFIXES = ["you are stupid", "nice recipe, thanks", "", "buy pills now", "hi"]


# --------------------------------------------------------------------------- tests


def test_missing_vllm_is_a_clear_moderator_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    b = VLLMBackend("org/model")  # construction imports nothing
    with pytest.raises(ModeratorError) as info:
        b.next_token_probs(PREFIX, ["x"], CANDIDATES)
    err = info.value
    assert err.where == "judge.vllm" and err.field == "params.backend"
    assert err.actual == "not installed" and "pip install vllm" in (err.fix or "")
    assert "vllm" in str(err)


def test_bad_params_fail_at_construction():
    with pytest.raises(ModeratorError, match="dtype"):
        VLLMBackend("m", dtype="int3")
    with pytest.raises(ModeratorError, match="max_length"):
        VLLMBackend("m", max_length=8)
    with pytest.raises(ModeratorError, match="gpu_memory_utilization"):
        VLLMBackend("m", gpu_memory_utilization=1.5)


def test_engine_args(backend):
    backend.load()
    (kw,) = RECORD.inits
    assert kw["model"] == "org/fake-judge" and kw["revision"] == "abc123"
    assert kw["enable_prefix_caching"] is True
    assert kw["max_logprobs"] == TOP_LOGPROBS and kw["logprobs_mode"] == "raw_logprobs"
    assert kw["seed"] == 0 and kw["tensor_parallel_size"] == 1
    assert kw["gpu_memory_utilization"] == 0.9


def test_prompt_is_chat_template_user_turn_with_generation_prompt(backend):
    ids = backend.prompt_ids(PREFIX, "hello")
    assert backend._tok.decode(ids) == f"<user>{PREFIX}hello</><bot>"
    pre, rest = backend.encode(PREFIX, "hello")
    assert pre + rest == ids and pre == backend._tok.encode(f"<user>{PREFIX}", False)


def test_plain_prompt_without_chat_template(fake_vllm):
    b = VLLMBackend("m", chat_template=False)
    ids = b.prompt_ids(PREFIX, "hello")
    assert ids[0] == BOS and b._tok.decode(ids) == PREFIX + "hello"


def test_label_probs_are_exact_and_renormalised(backend):
    res = backend.next_token_probs(PREFIX, SUFFIXES, CANDIDATES)
    assert len(res) == len(SUFFIXES)
    for s, r in zip(SUFFIXES, res):
        assert isinstance(r, dict)
        ref = reference(backend, s)
        assert set(r) == {"safe", "unsafe", "_raw_total"}
        for k in ref:
            assert r[k] == pytest.approx(ref[k], rel=1e-9, abs=1e-12)
        assert r["safe"] + r["unsafe"] == pytest.approx(1.0)
        assert 0 < r["_raw_total"] <= 1


def test_candidates_outside_top_k_use_the_prompt_logprob_fallback(backend):
    backend.next_token_probs(PREFIX, SUFFIXES, CANDIDATES)
    first, *rest = RECORD.calls
    assert all(sp.logprobs == TOP_LOGPROBS and sp.max_tokens == 1 for _, sp in first)
    assert all(sp.temperature == 0 for _, sp in first)
    # "U" is pushed out of the fake's top-20: every item needs the exact fallback
    (fallback,) = rest
    assert len(fallback) >= 1
    prompts = {tuple(backend.prompt_ids(PREFIX, s)) for s in SUFFIXES}
    for ids, sp in fallback:
        assert sp.prompt_logprobs is not None
        assert tuple(ids[:-1]) in prompts and ids[-1] in (ord("U"), ord("s"))
    assert any(ids[-1] == ord("U") for ids, _ in fallback)


def test_top_k_only_path_when_all_candidates_are_in_it(backend):
    res = backend.next_token_probs(PREFIX, SUFFIXES[:2], {"a": ["S"], "b": ["x"]})
    logp = log_softmax(fake_logits(backend.prompt_ids(PREFIX, SUFFIXES[0])))
    top = sorted(range(VOCAB), key=lambda t: -logp[t])[:TOP_LOGPROBS]
    if ord("x") in top:  # otherwise the fallback ran; exactness is checked above
        assert len(RECORD.calls) == 1
    pa, pb = math.exp(logp[ord("S")]), math.exp(logp[ord("x")])
    assert res[0]["a"] == pytest.approx(pa / (pa + pb))


def test_candidate_validation(backend):
    with pytest.raises(ValueError, match="share the first token"):
        backend.next_token_probs(PREFIX, ["x"], {"a": ["yes"], "b": ["yikes"]})
    with pytest.raises(ValueError, match="may not start"):
        backend.next_token_probs(PREFIX, ["x"], {"_a": ["yes"], "b": ["no"]})
    with pytest.raises(ValueError, match="empty"):
        backend.next_token_probs(PREFIX, ["x"], {})


def test_rejected_item_is_a_per_item_failure(backend):
    suffixes = ["fine text", "BOOM", "other text"]
    res = backend.next_token_probs(PREFIX, suffixes, CANDIDATES)
    assert isinstance(res[1], ItemError) and res[1].kind == "engine_error"
    assert "rejects" in res[1].message
    for i in (0, 2):
        assert res[i]["safe"] == pytest.approx(reference(backend, suffixes[i])["safe"])
    gen = backend.generate(PREFIX, suffixes, max_new_tokens=5)
    assert isinstance(gen[1][0], ItemError) and isinstance(gen[0][0], GenOut)


def test_long_items_are_cut_in_the_middle(backend):
    long = "a" * 300 + "THE END"
    ids = backend.prompt_ids(PREFIX, long)
    assert len(ids) == backend.max_length
    assert backend._tok.decode(ids[-KEEP_TAIL:]).endswith("THE END</><bot>")
    assert backend.next_token_probs(PREFIX, [long], CANDIDATES)[0]["_raw_total"] > 0


def test_greedy_generation_fields(backend):
    (g,), (h,) = backend.generate(PREFIX, ["abc", "xyz"], max_new_tokens=10)
    for out in (g, h):
        assert isinstance(out, GenOut)
        # the fake emits EOS after 3 tokens: EOS is not counted
        assert out.finish_reason == "stop" and out.n_tokens == 3
        assert out.token_logprobs is not None and len(out.token_logprobs) == 3
        assert all(lp <= 0 for lp in out.token_logprobs)
    # token logprobs are the model's (temperature 1) log-probs of the chosen tokens
    ctx = backend.prompt_ids(PREFIX, "abc")
    (call,) = RECORD.calls
    first_tok = max(range(VOCAB), key=lambda t: fake_logits(ctx)[t])
    assert g.token_logprobs[0] == pytest.approx(log_softmax(fake_logits(ctx))[first_tok])
    assert g.text[0] == chr(first_tok) and len(g.text) == 3
    assert all(sp.temperature == 0 and sp.seed is None for _, sp in call)
    # length-limited
    ((short,),) = backend.generate(PREFIX, ["abc"], max_new_tokens=2)
    assert short.finish_reason == "length" and short.n_tokens == 2
    assert len(short.token_logprobs or []) == 2
    # greedy is deterministic
    assert backend.generate(PREFIX, ["abc", "xyz"], max_new_tokens=10) == [[g], [h]]


def test_stop_string_cuts_text_and_counts_tokens(backend):
    ((free,),) = backend.generate(PREFIX, ["abc"], max_new_tokens=10)
    stop = free.text[1:2]
    ((cut,),) = backend.generate(PREFIX, ["abc"], max_new_tokens=10, stop=[stop])
    assert cut.finish_reason == "stop" and cut.text == free.text[: free.text.find(stop)]
    assert cut.n_tokens == len(cut.token_logprobs or []) >= 1


def test_seeded_sampling_per_item_and_sample(backend):
    kw = {"max_new_tokens": 3, "temperature": 1.0, "num_samples": 4, "seed": 7}
    a = backend.generate(PREFIX, ["one", "two"], **kw)
    b = backend.generate(PREFIX, ["two"], **kw)  # other batch composition
    assert b[0] == a[1]
    assert len(a) == 2 and all(len(x) == 4 for x in a)
    assert len({tuple(g.token_logprobs or []) for g in a[0]}) > 1  # samples differ
    seeds = [sp.seed for _, sp in RECORD.calls[0]]
    expect = [seed_for(7, s, k) & 0x7FFFFFFF for s in ("one", "two") for k in range(4)]
    assert seeds == expect
    assert backend.generate(PREFIX, ["one", "two"], **kw) == a
    assert backend.generate(PREFIX, ["one"], **{**kw, "seed": 8})[0] != a[0]


def test_generate_argument_checks(backend):
    with pytest.raises(ValueError):
        backend.generate(PREFIX, ["x"], max_new_tokens=0)
    with pytest.raises(ValueError):
        backend.generate(PREFIX, ["x"], temperature=-1)


def test_fingerprint(backend):
    fp = backend.fingerprint()
    assert fp["backend"] == "vllm" and fp["model"] == "org/fake-judge"
    assert fp["revision"] == "abc123" and fp["dtype"] == "bfloat16"
    assert fp["vllm"] == "0.99.0+fake" and fp["max_length"] == 256
    assert fp["chat_template"] is True
    assert fp["chat_template_sha256"] == hashlib.sha256(TEMPLATE.encode()).hexdigest()
    fp["model"] = "mutated"
    assert backend.fingerprint()["model"] == "org/fake-judge"  # a copy
    other = VLLMBackend("org/fake-judge", revision="abc123", max_length=256, chat_template=False)
    assert other.fingerprint()["chat_template_sha256"] is None


def test_close_shuts_the_engine_down(backend):
    backend.load()
    engine = backend._llm.llm_engine
    backend.close()
    assert engine.shut and backend._llm is None
    backend.close()  # idempotent
