"""vLLM judge backend against a small fake ``vllm`` module (vLLM needs CUDA; not here).

The fake implements the documented surface the backend uses — ``vllm.LLM(**engine
args)``, ``LLM.get_tokenizer()``, ``LLM.generate(prompts, sampling_params,
use_tqdm=False)`` on ``{"prompt_token_ids": ...}`` prompts, ``vllm.SamplingParams``
(``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``logprobs``, ``prompt_logprobs``,
``stop``), ``RequestOutput.outputs[0]`` / ``.prompt_logprobs`` with ``Logprob`` values
— over deterministic logits, so these tests check the backend's mapping logic
(candidate probabilities, top-k fallback, renormalisation, failures, generation
fields, seeds, fingerprint), not vLLM itself.

Multimodal inputs (vLLM's documented offline form, ``{"prompt": text,
"multi_modal_data": {"image": PIL image or list}}``) are recorded in
``RECORD.multimodal``; like vLLM the fake refuses a prompt whose placeholder count
(:data:`IMAGE_PLACEHOLDER`) differs from the number of images, and each image enters
the fake's context as one token derived from its pixels, so the image changes the
logits. ``allowed_token_ids`` restricts sampling while log-probs stay the raw ones.
"""

from __future__ import annotations

import math
import random
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

VOCAB = 130
BOS, EOS = 128, 129
TEMPLATE = "{fake chat template}"
PREFIX = "Policy: no harassment. Answer SAFE or UNSAFE. Content: "
CANDIDATES = {"safe": ["SAFE", "safe"], "unsafe": ["UNSAFE"]}
#: the image placeholder the tiny VLM processor writes (tests/helpers/tiny_vlm.py)
IMAGE_PLACEHOLDER = "<image>"


# --------------------------------------------------------------------------- the fake


class FakeTokenizer:
    """Character-level: id = ord(c) & 127, BOS 128, EOS 129."""

    chat_template = TEMPLATE
    all_special_ids = (BOS, EOS)
    eos_token_id = EOS

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        assert tokenize is False
        text = "".join(f"<{m['role']}>{m['content']}</>" for m in messages)
        return text + ("<bot>" if add_generation_prompt else "")

    def encode(self, text, add_special_tokens=True):
        return ([BOS] if add_special_tokens else []) + [ord(c) & 127 for c in text]

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids if i < 128)

    def convert_ids_to_tokens(self, i):
        return chr(i) if i < 128 else f"<special{i}>"


def fake_logits(ctx: list[int], n_generated: int = 0) -> list[float]:
    """Deterministic logits of the next token after ``ctx``."""
    h = sum((i + 1) * t for i, t in enumerate(ctx)) % 1009
    out = [((h * 31 + t * 17) % 97) / 12.0 for t in range(VOCAB)]
    out[ord("S")] += 6.0  # "S" is always in the top-k; "U" mostly is not
    out[ord("U")] -= 3.0
    out[EOS] = 40.0 if n_generated >= 3 else -40.0
    return out


def log_softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    z = m + math.log(sum(math.exp(x - m) for x in xs))
    return [x - z for x in xs]


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt_token_ids: list[int]
    prompt_logprobs: list[dict[int, Logprob] | None] | None
    outputs: list[CompletionOutput]
    finished: bool = True


class SamplingParams:
    def __init__(self, **kw: Any) -> None:
        self.n = kw.pop("n", 1)
        self.max_tokens = kw.pop("max_tokens", 16)
        self.temperature = kw.pop("temperature", 1.0)
        self.top_p = kw.pop("top_p", 1.0)
        self.seed = kw.pop("seed", None)
        self.logprobs = kw.pop("logprobs", None)
        self.prompt_logprobs = kw.pop("prompt_logprobs", None)
        self.stop = kw.pop("stop", None) or []
        self.allowed_token_ids = kw.pop("allowed_token_ids", None)
        self.detokenize = kw.pop("detokenize", True)
        self.skip_special_tokens = kw.pop("skip_special_tokens", True)
        assert not kw, f"unknown SamplingParams fields {sorted(kw)}"


def _top(logp: list[float], k: int, also: int | None) -> dict[int, Logprob]:
    order = sorted(range(VOCAB), key=lambda t: -logp[t])
    keep = order[:k]
    if also is not None and also not in keep:
        keep.append(also)
    return {t: Logprob(logp[t], order.index(t) + 1, chr(t) if t < 128 else None) for t in keep}


@dataclass
class FakeEngine:
    model_config: Any
    shut: bool = False

    def shutdown(self) -> None:
        self.shut = True


@dataclass
class Record:
    inits: list[dict[str, Any]] = field(default_factory=list)
    calls: list[list[tuple[list[int], SamplingParams]]] = field(default_factory=list)
    #: per multimodal request: its text prompt and images (PIL)
    multimodal: list[dict[str, Any]] = field(default_factory=list)


RECORD = Record()


class LLM:
    def __init__(self, **kw: Any) -> None:
        RECORD.inits.append(kw)
        self.kw = kw
        dtype = "bfloat16" if kw.get("dtype", "auto") == "auto" else kw["dtype"]
        self.llm_engine = FakeEngine(
            types.SimpleNamespace(dtype=dtype, max_model_len=kw.get("max_model_len") or 32768)
        )
        self._tok = FakeTokenizer()

    def get_tokenizer(self) -> FakeTokenizer:
        return self._tok

    def generate(self, prompts, sampling_params=None, use_tqdm=True):
        if not isinstance(sampling_params, list):
            sampling_params = [sampling_params] * len(prompts)
        assert len(sampling_params) == len(prompts) and use_tqdm is False
        reqs = [(self._context(p), sp) for p, sp in zip(prompts, sampling_params)]
        boom = self._tok.encode("BOOM", add_special_tokens=False)
        for ids, _ in reqs:  # like vLLM: validate every prompt before running any
            if any(ids[j : j + 4] == boom for j in range(len(ids))):
                raise ValueError("fake engine rejects this prompt")
        RECORD.calls.append(reqs)
        return [self._one(i, ids, sp) for i, (ids, sp) in enumerate(reqs)]

    def _context(self, p: dict[str, Any]) -> list[int]:
        """Token context of one request: its ids, or for a multimodal request its text
        with one pixel-derived token per image (placeholders must match the images)."""
        if "prompt_token_ids" in p:
            return list(p["prompt_token_ids"])
        import hashlib

        text = str(p["prompt"])
        image = (p.get("multi_modal_data") or {}).get("image")
        images = [] if image is None else image if isinstance(image, list) else [image]
        if text.count(IMAGE_PLACEHOLDER) != len(images):
            raise ValueError(
                f"{text.count(IMAGE_PLACEHOLDER)} image placeholders for {len(images)} images"
            )
        RECORD.multimodal.append({"prompt": text, "images": list(images)})
        marks = [
            int.from_bytes(hashlib.sha256(im.tobytes()).digest()[:2], "little") % 90 + 32
            for im in images
        ]
        return self._tok.encode(text, add_special_tokens=False) + marks

    def _one(self, i: int, ids: list[int], sp: SamplingParams) -> RequestOutput:
        plp = None
        if sp.prompt_logprobs is not None:
            plp = [None] + [
                _top(log_softmax(fake_logits(ids[:j])), sp.prompt_logprobs, ids[j])
                for j in range(1, len(ids))
            ]
        rng = random.Random(sp.seed)
        toks: list[int] = []
        lps: list[dict[int, Logprob]] = []
        finish, stop_reason, text = "length", None, ""
        for _ in range(sp.max_tokens):
            logits = fake_logits(ids + toks, len(toks))
            logp = log_softmax(logits)
            allowed = sp.allowed_token_ids or range(VOCAB)
            if sp.temperature == 0:
                t = max(allowed, key=lambda x: logits[x])
            else:
                w = [math.exp(v) for v in log_softmax([x / sp.temperature for x in logits])]
                t = rng.choices(range(VOCAB), weights=w)[0]
            toks.append(t)
            if sp.logprobs is not None:
                lps.append(_top(logp, sp.logprobs, t))
            text = self._tok.decode(toks)
            if t == EOS:
                finish = "stop"
                break
            hit = next((s for s in sp.stop if s in text), None)
            if hit is not None:
                text, finish, stop_reason = text[: text.find(hit)], "stop", hit
                break
        out = CompletionOutput(
            0, text, toks, None, lps if sp.logprobs is not None else None, finish, stop_reason
        )
        return RequestOutput(str(i), ids, plp, [out])


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.__version__ = "0.99.0+fake"
    mod.LLM = LLM
    mod.SamplingParams = SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", mod)
    RECORD.inits.clear()
    RECORD.calls.clear()
    RECORD.multimodal.clear()
    return mod
