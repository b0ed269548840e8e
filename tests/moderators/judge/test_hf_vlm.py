"""The transformers backend with images: a tiny random-weight LLaVA built locally
(tests/helpers/tiny_vlm.py), scored through ``llm_judge`` in both modes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from audit.media import to_data_url
from audit.moderators.judge.backends._common import ItemError, image_part, text_part
from audit.moderators.judge.backends.hf import HFBackend
from audit.moderators.judge.llm_judge import LLMJudge
from audit.schema import Item, content_hash
from tests.helpers.tiny_vlm import build_tiny_vlm, solid_png

COLOURS = [(255, 0, 0), (0, 0, 255), (0, 200, 0), (250, 220, 180)]


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm"))


def _item(i: int, rgb: tuple[int, int, int] | None, text: str = "hello there") -> Item:
    img = solid_png(rgb) if rgb else None
    fields = {"caption": text}
    return Item(id=f"i{i}", content_hash=content_hash(fields, img), fields=fields, image=img)


def _judge(policy: Any, model: Path, **params: Any) -> LLMJudge:
    return LLMJudge(LLMJudge.Params(model=str(model), **params), policy)


def test_logprob_label_probabilities_sum_to_one_and_see_the_image(tiny_vlm: Path) -> None:
    b = HFBackend(str(tiny_vlm), chat_template=True, media=True, max_length=256)
    cand = {"pos": ["yes"], "neg": ["no"]}

    def parts(rgb: tuple[int, int, int]) -> list[dict[str, Any]]:
        return [image_part(to_data_url(solid_png(rgb))), text_part(" is this safe")]

    res = b.next_token_probs("classify the following content", [parts(c) for c in COLOURS], cand)
    assert all(isinstance(r, dict) for r in res)
    for r in res:
        assert isinstance(r, dict)
        assert r["pos"] + r["neg"] == pytest.approx(1.0, abs=1e-9)
        assert 0 < r["_raw_total"] <= 1
    pos = [r["pos"] for r in res if isinstance(r, dict)]
    assert len({round(p, 6) for p in pos}) == len(pos)  # only the image differs
    # the text path of the same checkpoint still works (an item without an image)
    text = b.next_token_probs("classify the following content", [" is this safe"], cand)
    assert isinstance(text[0], dict) and text[0]["pos"] + text[0]["neg"] == pytest.approx(1.0)
    assert b.fingerprint()["media"].startswith("AutoProcessor")
    b.close()


def test_llm_judge_on_images_in_both_modes(policy: Any, tiny_vlm: Path) -> None:
    items = [_item(i, c) for i, c in enumerate(COLOURS[:3])] + [_item(3, None)]
    sg2 = _judge(policy, tiny_vlm, preset="shieldgemma_2", mode="logprob", max_length=256)
    outs = sg2.predict(items)
    for o in outs[:3]:
        assert o.error is None
        assert set(o.scores) == {"adult_sexual", "graphic_violence", "dangerous_acts", "_overall"}
        assert all(0.0 <= v <= 1.0 for v in o.scores.values())
    assert outs[3].error_type == "no_media"  # image-only preset, item without an image
    # changing only the image changes the score
    assert outs[0].scores["adult_sexual"] != pytest.approx(outs[1].scores["adult_sexual"])
    same = sg2.predict([_item(9, COLOURS[0])])[0]
    assert same.scores == pytest.approx(outs[0].scores)  # deterministic for the same pixels

    lg4 = _judge(
        policy, tiny_vlm, preset="llama_guard_4", mode="generate", max_new_tokens=4, max_length=512
    )
    gens = lg4.predict(items)
    for o in gens:  # a random model writes no verdict: a parse failure, kept as data
        assert o.error is None or o.error_type == "parse_failure"
        assert o.error is not None or o.scores
        assert o.raw_output is not None
    lg4_lp = _judge(policy, tiny_vlm, preset="llama_guard_4", mode="logprob", max_length=512)
    scored = lg4_lp.predict(items)
    assert all(o.error is None and 0 <= o.scores["_overall"] <= 1 for o in scored)
    assert not math.isclose(scored[0].scores["_overall"], scored[1].scores["_overall"])
    sg2.close()
    lg4.close()
    lg4_lp.close()


def test_an_overlong_image_prompt_is_an_item_error(tiny_vlm: Path) -> None:
    b = HFBackend(str(tiny_vlm), chat_template=True, media=True, max_length=40)
    words = " ".join(["hello"] * 60)
    res = b.next_token_probs(
        "classify",
        [[image_part(to_data_url(solid_png((1, 2, 3)))), text_part(words)], " short"],
        {"pos": ["yes"], "neg": ["no"]},
    )
    assert isinstance(res[0], ItemError) and res[0].kind == "prompt_too_long"
    assert isinstance(res[1], dict)
    b.close()
