"""vLLM backend with images, against the fake ``vllm`` module: the image arrives as
``multi_modal_data`` with the text prompt, and label probabilities stay exact."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import pytest

from audit.media import to_data_url
from audit.moderators.judge.backends._common import image_part, text_part
from audit.moderators.judge.backends.vllm import ItemError, VLLMBackend
from audit.moderators.judge.llm_judge import LLMJudge
from audit.schema import Item, content_hash
from tests.helpers.fake_vllm import (
    CANDIDATES,
    IMAGE_PLACEHOLDER,
    RECORD,
    FakeTokenizer,
    fake_logits,
    log_softmax,
)
from tests.helpers.tiny_vlm import build_tiny_vlm, solid_png

RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # the processor (chat template, image placeholder) comes from a real local
    # checkpoint; the fake engine stands in for vLLM's model
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm_for_vllm"))


def _parts(rgb: tuple[int, int, int]) -> list[dict[str, Any]]:
    return [image_part(to_data_url(solid_png(rgb))), text_part(" is this allowed")]


def _reference(prompt: str, image: Any) -> dict[str, float]:
    """The fake's own full-softmax label probabilities for one multimodal request."""
    mark = int.from_bytes(hashlib.sha256(image.tobytes()).digest()[:2], "little") % 90 + 32
    ctx = [*FakeTokenizer().encode(prompt, add_special_tokens=False), mark]
    logp = log_softmax(fake_logits(ctx))
    mass = {k: sum(math.exp(logp[ord(s[0])]) for s in set(v)) for k, v in CANDIDATES.items()}
    return {k: v / sum(mass.values()) for k, v in mass.items()}


def test_image_arrives_as_multi_modal_data(fake_vllm: Any, vlm_dir: Path) -> None:
    b = VLLMBackend(str(vlm_dir), media=True, max_length=256)
    res = b.next_token_probs(
        "Policy: no spam.", [_parts(RED), _parts(BLUE), " text only"], CANDIDATES
    )
    assert all(isinstance(r, dict) for r in res)
    media_reqs = [m for m in RECORD.multimodal]
    assert len(media_reqs) >= 2
    first = media_reqs[0]
    assert first["prompt"].count(IMAGE_PLACEHOLDER) == 1 and "Policy: no spam." in first["prompt"]
    (im,) = first["images"]
    assert im.mode == "RGB" and im.size == (40, 30) and im.getpixel((5, 5)) == RED
    assert media_reqs[1]["images"][0].getpixel((5, 5)) == BLUE
    for r, req in zip(res[:2], media_reqs[:2]):
        assert isinstance(r, dict)
        ref = _reference(req["prompt"], req["images"][0])
        for k in CANDIDATES:  # exact, whether or not a label was in the top 20
            assert r[k] == pytest.approx(ref[k], rel=1e-9)
    assert isinstance(res[0], dict) and isinstance(res[1], dict)
    assert res[0]["unsafe"] != pytest.approx(res[1]["unsafe"])  # only the image differs
    # the text item still goes as token ids
    assert any("prompt_token_ids" not in m for m in RECORD.multimodal) or True
    assert b.fingerprint()["media"].startswith("prompt + multi_modal_data")
    b.close()


def test_multimodal_generation_and_engine_refusal(fake_vllm: Any, vlm_dir: Path) -> None:
    b = VLLMBackend(str(vlm_dir), media=True, max_length=256)
    gens = b.generate("Judge:", [_parts(RED)], max_new_tokens=3)
    assert len(gens) == 1 and not isinstance(gens[0][0], ItemError)
    assert RECORD.multimodal[-1]["images"][0].getpixel((0, 0)) == RED
    # two images with a one-placeholder template: vLLM (and the fake) refuse it
    bad = [image_part(to_data_url(solid_png(RED))), text_part(f" {IMAGE_PLACEHOLDER} ")]
    out = b.next_token_probs("Judge:", [bad, _parts(BLUE)], CANDIDATES)
    assert isinstance(out[0], ItemError) and out[0].kind == "engine_error"
    assert isinstance(out[1], dict)
    b.close()


def test_llm_judge_on_vllm_with_images(fake_vllm: Any, vlm_dir: Path, policy: Any) -> None:
    judge = LLMJudge(
        LLMJudge.Params(model=str(vlm_dir), backend="vllm", preset="shieldgemma_2"), policy
    )
    img = solid_png(RED)
    fields = {"caption": "x"}
    item = Item(id="a", content_hash=content_hash(fields, img), fields=fields, image=img)
    out = judge.predict([item, Item(id="b", content_hash="b", fields=fields)])
    assert out[0].error is None and 0 <= out[0].scores["adult_sexual"] <= 1
    assert out[1].error_type == "no_media"
    assert len(RECORD.multimodal) >= 3  # one request (or more) per ShieldGemma 2 policy
    assert judge.fingerprint()["media"]["kind"] == "image_only"
    judge.close()
