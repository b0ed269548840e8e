"""``llm_judge`` wired to each backend and to per-item few-shot examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.moderators import MODERATORS
from audit.schema import OVERALL_KEY, Item, content_hash
from tests.helpers.tiny_lm import build_tiny_causal_lm

TEXTS = ["nice video of my dog", "I will hurt you tomorrow", "buy followers cheap"]


def _items() -> list[Item]:
    return [
        Item(f"i{k}", content_hash({"caption": t}), {"caption": t}, context={"language": "en"})
        for k, t in enumerate(TEXTS)
    ]


def _judge(policy, **params):
    cls = MODERATORS.get("llm_judge")
    return cls(cls.Params(**params), policy)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "tiny")


def test_vllm_backend_through_the_judge(policy, fake_vllm) -> None:
    # the fake tokenizer is character-level: ShieldGemma's Yes/No differ in the first token
    j = _judge(
        policy,
        model="org/fake-judge",
        backend="vllm",
        preset="shieldgemma",
        categories=("hate",),
        max_length=8192,
    )
    assert type(j.backend).__name__ == "VLLMBackend"
    outs = j.predict(_items())
    assert all(o.error is None and 0.0 <= o.scores["hate"] <= 1.0 for o in outs), outs
    assert j.fingerprint()["backend"]["backend"] == "vllm"


def test_llama_cpp_backend_through_the_judge(policy) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: llamacpp)")
    j = _judge(
        policy,
        model="packaged:qwen2.5-coder-0.5b-instruct-q4km",
        backend="llama_cpp",
        preset="platform_binary",
        policy_detail="definitions",
        max_length=4096,
    )
    try:
        outs = j.predict(_items()[:2])
        assert all(o.error is None and 0.0 <= o.scores[OVERALL_KEY] <= 1.0 for o in outs)
        assert j.fingerprint()["backend"]["backend"] == "llama_cpp"
    finally:
        j.close()


def test_few_shot_examples_reach_the_prompt_and_fingerprint(policy, tiny_lm: Path) -> None:
    spec = {"suite": "short_video_v1", "split": "train", "k": 2}
    j = _judge(
        policy,
        model=str(tiny_lm),
        preset="platform_binary",
        device="cpu",
        few_shot=spec,
        max_length=8192,
    )
    plain = _judge(policy, model=str(tiny_lm), preset="platform_binary", device="cpu")
    items = _items()
    shots = j._examples(items)
    assert all(len(s) == 2 for s in shots)
    with_ex = j._render(items[1], None, shots[1])
    without = plain._render(items[1])
    assert with_ex.prefix == without.prefix  # the shared (cached) part is unchanged
    assert "# Examples" in with_ex.suffix and "# Examples" not in without.suffix
    for ex in shots[1]:
        assert ex.text.split()[0] in with_ex.suffix
    fp = j.fingerprint()
    assert fp["few_shot"]["spec"]["k"] == 2 and plain.fingerprint()["few_shot"] is None
    outs = j.predict(items)
    assert all(o.error is None for o in outs)
