"""transformers judge backend on a tiny random-weight Llama (offline, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.errors import ModeratorError
from audit.moderators.judge.backends.hf import GenOut, HFBackend
from tests.helpers.tiny_lm import build_tiny_causal_lm

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

PREFIX = (
    "you are a content moderator . classify the following content according to the policy . "
    "policy category definition : harassment hate violence spam self harm . "
    "allowed examples : great recipe thanks for sharing . not allowed examples : "
    "you are so stupid and ugly . answer safe or unsafe . content : "
)
SUFFIXES = [
    "you are so stupid",
    "the cat sat on the mat and great recipe thanks for sharing happy birthday to my best friend",
    "buy cheap pills now",
    "",
    "I will hurt you tomorrow if you come back , nobody would miss you if you were gone",
    "click",
]
CANDIDATES = {"safe": ["safe", "yes"], "unsafe": ["unsafe", "no"]}


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"), seed=0)


@pytest.fixture(scope="module")
def backend(lm_dir):
    b = HFBackend(str(lm_dir), device="cpu")
    yield b
    b.close()


def _reference(backend: HFBackend, suffix: str) -> dict[str, float]:
    """Unpadded, uncached single forward over the full sequence."""
    pre, rest = backend.encode(PREFIX, suffix)
    ids = torch.tensor([pre + rest])
    with torch.inference_mode():
        logits = backend._model(input_ids=ids).logits[0, -1].float()
    probs = torch.softmax(logits, dim=-1)
    tok = backend._tokenizer()
    mass = {
        lab: sum(
            float(probs[i])
            for i in {tok(s, add_special_tokens=False)["input_ids"][0] for s in strings}
        )
        for lab, strings in CANDIDATES.items()
    }
    total = sum(mass.values())
    return {**{k: v / total for k, v in mass.items()}, "_raw_total": total}


def test_construction_is_lazy(lm_dir):
    b = HFBackend(str(lm_dir), device="cpu")
    assert b._model is None and b._tok is None
    b.fingerprint()
    assert b._model is None  # digests and the template hash need no weights
    b.encode(PREFIX, "hello")
    assert b._model is None  # the tokenizer alone
    b.next_token_probs(PREFIX, ["hi"], CANDIDATES)
    assert b._model is not None


def test_missing_path_and_bad_dtype_fail_at_construction(tmp_path):
    with pytest.raises(ModeratorError, match="not found"):
        HFBackend(str(tmp_path / "nope"))
    with pytest.raises(ModeratorError, match="dtype"):
        HFBackend(str(tmp_path), dtype="int3")


def test_encode_applies_template_and_prefix_is_a_true_prefix(backend):
    tok = backend._tokenizer()
    pre, rest = backend.encode(PREFIX, "you are so stupid")
    assert pre and rest
    tokens = tok.convert_ids_to_tokens(pre + rest)
    assert tokens[:2] == ["<s>", "<|user|>"]
    assert tokens[-2:] == ["<|end|>", "<|assistant|>"]
    full = tok.apply_chat_template(
        [{"role": "user", "content": PREFIX + "you are so stupid"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert pre + rest == tok(full, add_special_tokens=False)["input_ids"]
    pre2, _ = backend.encode(PREFIX, "something else entirely")
    assert pre2 == pre  # the same shared prefix for every item


def test_encode_backs_off_when_the_boundary_merges(backend):
    # "... the ca" + "t sat" → "the cat sat": the prefix's last token is not in the full
    # text, so the shared prefix gives it up and the rest starts at "cat"
    pre, rest = backend.encode("content : the ca", "t sat on the mat")
    own = backend.encode("content : the ca", "")[0]
    full = backend._ids(backend._render("content : the cat sat on the mat"), special=False)
    assert pre + rest == full
    assert 0 < len(pre) < len(own) + 1 and own[: len(pre)] == pre
    assert backend._tokenizer().convert_ids_to_tokens(rest)[0] == "cat"


def test_boundary_backoff_is_shared_and_scores_match(backend):
    suffixes = ["t sat on the mat", "t is stupid", "nvas painting"]
    enc = backend.encode_many("content : the ca", suffixes)
    assert len({tuple(p) for p, _ in enc}) == 1 and enc[0][0]  # one shared prefix
    reuse = backend.next_token_probs("content : the ca", suffixes, CANDIDATES, batch_size=2)
    none = backend.next_token_probs(
        "content : the ca", suffixes, CANDIDATES, batch_size=2, reuse_prefix=False
    )
    for a, b in zip(reuse, none):
        assert a == pytest.approx(b, abs=1e-5)


def test_encode_without_chat_template(lm_dir):
    b = HFBackend(str(lm_dir), device="cpu", chat_template=False)
    pre, rest = b.encode("the cat sat", " on the mat")
    tok = b._tokenizer()
    assert tok.convert_ids_to_tokens(pre) == ["<s>", "the", "cat", "sat"]
    assert tok.convert_ids_to_tokens(rest) == ["on", "the", "mat"]
    assert b.fingerprint()["chat_template_sha256"] is None


def test_reuse_equals_no_reuse_across_batch_sizes(backend):
    results = {
        (bs, reuse): backend.next_token_probs(
            PREFIX, SUFFIXES, CANDIDATES, batch_size=bs, reuse_prefix=reuse
        )
        for bs in (1, 3)
        for reuse in (True, False)
    }
    base = results[(1, False)]
    for got in results.values():
        assert len(got) == len(SUFFIXES)
        for a, b in zip(base, got):
            assert set(a) == {"safe", "unsafe", "_raw_total"}
            for k in a:
                assert a[k] == pytest.approx(b[k], abs=1e-4)
    for s, got in zip(SUFFIXES, base):
        ref = _reference(backend, s)
        for k in ref:
            assert got[k] == pytest.approx(ref[k], abs=1e-4)


def test_reuse_with_an_item_that_cannot_share_the_prefix(backend):
    prefix = PREFIX + "the ca"
    sufs = ["t sat on the mat", " you are so stupid", " buy cheap pills now"]
    a = backend.next_token_probs(prefix, sufs, CANDIDATES, batch_size=3, reuse_prefix=True)
    b = backend.next_token_probs(prefix, sufs, CANDIDATES, batch_size=1, reuse_prefix=False)
    for x, y in zip(a, b):
        for k in x:
            assert x[k] == pytest.approx(y[k], abs=1e-4)


def test_probabilities_are_renormalised(backend):
    for row in backend.next_token_probs(PREFIX, SUFFIXES, CANDIDATES, batch_size=2):
        assert all(0.0 <= v <= 1.0 for v in row.values())
        assert row["safe"] + row["unsafe"] == pytest.approx(1.0, abs=1e-6)
        assert 0.0 < row["_raw_total"] < 1.0


def test_candidates_sharing_a_first_token_are_rejected(backend):
    with pytest.raises(ValueError, match="share the first token"):
        backend.next_token_probs(PREFIX, ["x"], {"a": ["safe"], "b": ["safe unsafe"]})
    with pytest.raises(ValueError):
        backend.next_token_probs(PREFIX, ["x"], {})


def test_prefix_cache_is_kept_across_calls(backend):
    backend.next_token_probs(PREFIX, SUFFIXES[:2], CANDIDATES)
    first = backend._prefix_cache
    backend.next_token_probs(PREFIX, SUFFIXES[2:], CANDIDATES)
    assert backend._prefix_cache is first
    key = first[0]
    assert len(first[1].layers[0].keys[0, 0]) == len(key)  # untouched by the batches


def test_greedy_generation_is_deterministic_and_matches_argmax(backend):
    a = backend.generate(PREFIX, SUFFIXES, max_new_tokens=6, batch_size=4)
    b = backend.generate(PREFIX, SUFFIXES, max_new_tokens=6, batch_size=1)
    assert [[g.text for g in x] for x in a] == [[g.text for g in x] for x in b]
    for outs, s in zip(a, SUFFIXES):
        assert len(outs) == 1 and isinstance(outs[0], GenOut)
        g = outs[0]
        pre, rest = backend.encode(PREFIX, s)
        with torch.inference_mode():
            logits = backend._model(input_ids=torch.tensor([pre + rest])).logits[0, -1]
        first = int(logits.argmax())
        assert g.token_logprobs is not None and len(g.token_logprobs) == g.n_tokens
        if first not in backend._eos:
            expected = float(torch.log_softmax(logits.float(), -1)[first])
            assert g.token_logprobs[0] == pytest.approx(expected, abs=1e-4)


def test_max_new_tokens_is_respected(backend):
    for outs in backend.generate(PREFIX, SUFFIXES[:3], max_new_tokens=3):
        g = outs[0]
        assert g.n_tokens <= 3
        if g.finish_reason == "length":
            assert g.n_tokens == 3
    # a model that never emits EOS in 3 tokens must report "length"
    assert any(
        o[0].finish_reason == "length" for o in backend.generate(PREFIX, SUFFIXES, max_new_tokens=3)
    )


def test_stop_strings_cut_the_text(backend):
    g = backend.generate(PREFIX, [SUFFIXES[0]], max_new_tokens=8)[0][0]
    words = g.text.split()
    assert len(words) >= 3
    cut = backend.generate(PREFIX, [SUFFIXES[0]], max_new_tokens=8, stop=[words[2]])[0][0]
    assert cut.finish_reason == "stop"
    assert words[2] not in cut.text and g.text.startswith(cut.text)


def test_seeded_sampling_is_reproducible(backend):
    kw = {"max_new_tokens": 6, "temperature": 1.0, "top_p": 0.95, "num_samples": 3}
    a = backend.generate(PREFIX, SUFFIXES[:3], seed=7, batch_size=3, **kw)
    b = backend.generate(PREFIX, SUFFIXES[:3], seed=7, batch_size=1, **kw)
    c = backend.generate(PREFIX, SUFFIXES[:3], seed=8, batch_size=3, **kw)
    assert all(len(x) == 3 for x in a)
    texts = [[g.text for g in x] for x in a]
    assert texts == [[g.text for g in x] for x in b]
    assert texts != [[g.text for g in x] for x in c]
    assert any(len(set(t)) > 1 for t in texts)  # samples of one item differ


def test_fingerprint_stable_and_tracks_weights(lm_dir, tmp_path):
    a = HFBackend(str(lm_dir), device="cpu").fingerprint()
    b = HFBackend(str(lm_dir), device="cpu", max_length=4096).fingerprint()
    assert a == b
    assert a["backend"] == "transformers"
    assert a["dtype"] == "float32"
    assert a["chat_template_sha256"]
    assert "device" not in a and "batch_size" not in a
    other = build_tiny_causal_lm(tmp_path / "other", seed=1)
    c = HFBackend(str(other), device="cpu").fingerprint()
    assert c["weights_sha256"] != a["weights_sha256"]
    d = HFBackend(str(lm_dir), device="cpu", chat_template=False).fingerprint()
    assert d["chat_template_sha256"] is None and d["weights_sha256"] == a["weights_sha256"]


@pytest.mark.parametrize("chat", [True, False])
def test_encode_many_matches_encode(lm_dir, chat):
    b = HFBackend(str(lm_dir), device="cpu", chat_template=chat)
    many = b.encode_many(PREFIX, SUFFIXES)
    assert many == [b.encode(PREFIX, s) for s in SUFFIXES]
    assert b.encode_many(PREFIX, []) == []


def test_from_loaded_scores_like_the_loaded_backend(backend, lm_dir):
    backend.load()
    mem = HFBackend.from_loaded(backend._model, backend._tokenizer(), name="tiny")
    got = mem.next_token_probs(PREFIX, SUFFIXES, CANDIDATES, batch_size=3)
    want = backend.next_token_probs(PREFIX, SUFFIXES, CANDIDATES, batch_size=3)
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=1e-6)
    fp = mem.fingerprint()
    assert fp["model"] == "tiny" and fp["weights_sha256"] is None
    assert fp["dtype"] == "float32"


def test_converted_checkpoint_cache_round_trip(lm_dir, tmp_path, monkeypatch):
    # GGUF loads are dequantized once and kept as a plain checkpoint; exercised here on a
    # plain checkpoint by pointing the cache location at a temp folder
    target = tmp_path / "converted" / "tag"
    monkeypatch.setattr(HFBackend, "_converted_weights_dir", lambda self: target)
    first = HFBackend(str(lm_dir), device="cpu")
    a = first.next_token_probs(PREFIX, SUFFIXES, CANDIDATES)
    assert (target / "config.json").is_file() and list(target.glob("*.safetensors"))
    second = HFBackend(str(lm_dir), device="cpu")
    second.load()
    assert Path(second._model.name_or_path) == target
    assert second.next_token_probs(PREFIX, SUFFIXES, CANDIDATES) == a
    assert first.fingerprint()["weights_sha256"] == second.fingerprint()["weights_sha256"]


def test_no_converted_cache_without_gguf_or_when_disabled(lm_dir, monkeypatch):
    assert HFBackend(str(lm_dir), device="cpu")._converted_weights_dir() is None
    b = HFBackend(str(lm_dir), device="cpu")
    b.gguf_file = "x.gguf"
    monkeypatch.setenv("AUDIT_NO_CONVERTED_CACHE", "1")
    assert b._converted_weights_dir() is None


def test_fast_dtype_is_bf16_only_with_native_cpu_support(lm_dir, monkeypatch):
    import audit.moderators.judge.backends.hf_loading as hf

    monkeypatch.setattr(hf, "cpu_has_native_bf16", lambda: True)
    assert HFBackend(str(lm_dir), device="cpu", dtype="fast")._resolved_dtype() == torch.bfloat16
    assert HFBackend(str(lm_dir), device="cpu", dtype="auto")._resolved_dtype() == torch.float32
    monkeypatch.setattr(hf, "cpu_has_native_bf16", lambda: False)
    assert HFBackend(str(lm_dir), device="cpu", dtype="fast")._resolved_dtype() == torch.float32
