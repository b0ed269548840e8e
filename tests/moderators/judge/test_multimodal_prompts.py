"""Multimodal judge prompts: content parts, image placement, media errors, cache keys
(no model: a recording backend stands in)."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import pytest

from audit.errors import ModeratorError
from audit.media import from_data_url, to_data_url
from audit.moderators.judge import presets, prompts
from audit.moderators.judge.backends._common import ItemError, suffix_key, user_content
from audit.moderators.judge.llm_judge import LLMJudge
from audit.moderators.judge.neutralise import IMAGE_MARKER
from audit.schema import Frame, Item, ModeratorOutput, content_hash
from tests.helpers.tiny_vlm import solid_png

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _item(i: str, rgb: tuple[int, int, int] | None, text: str = "look at this") -> Item:
    img = solid_png(rgb) if rgb else None
    fields = {"caption": text}
    return Item(id=i, content_hash=content_hash(fields, img), fields=fields, image=img)


class Recorder:
    """A JudgeBackend that records what it is sent and answers a fixed probability."""

    backend = "recorder"
    supports_continuations = False

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Any]]] = []

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "recorder"}

    def next_token_probs(self, prefix, suffixes, candidates, **kw):  # type: ignore[no-untyped-def]
        self.calls.append((prefix, list(suffixes)))
        share = {lab: 1.0 / len(candidates) for lab in candidates}
        return [{**share, "_raw_total": 1.0} for _ in suffixes]

    def generate(self, prefix, suffixes, **kw):  # type: ignore[no-untyped-def]
        self.calls.append((prefix, list(suffixes)))
        return [[ItemError("engine_error", "not in this test")] for _ in suffixes]

    def close(self) -> None:
        pass


def _judge(policy: Any, preset: str, monkeypatch: pytest.MonkeyPatch) -> tuple[LLMJudge, Recorder]:
    rec = Recorder()
    monkeypatch.setattr(LLMJudge, "_backend", lambda self: rec)
    return LLMJudge(LLMJudge.Params(model="unused", preset=preset), policy), rec


# ------------------------------------------------------------------ data URLs


def test_data_url_is_bounded_png_of_the_same_pixels() -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (3000, 1500), (10, 200, 30)).save(buf, format="JPEG")
    url = to_data_url(buf.getvalue(), max_side=896)
    assert url.startswith("data:image/png;base64,")
    png = base64.b64decode(url.split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    im = from_data_url(url)
    assert im.size == (896, 448) and im.mode == "RGB"
    r, g, b = im.getpixel((400, 200))  # type: ignore[misc]
    assert abs(r - 10) < 6 and abs(g - 200) < 6 and abs(b - 30) < 6


def test_data_url_refuses_remote_and_broken_values() -> None:
    from audit.media import MediaItemError

    with pytest.raises(MediaItemError) as e:
        from_data_url("https://example.com/cat.png")
    assert e.value.error_type == "media_url"
    with pytest.raises(MediaItemError) as e:
        from_data_url("data:image/png;base64,@@@")
    assert e.value.error_type == "media_decode"
    with pytest.raises(MediaItemError) as e:
        to_data_url(b"not an image")
    assert e.value.error_type == "media_decode"


# ------------------------------------------------------------------ prompts


def test_text_items_keep_plain_string_content(policy: Any) -> None:
    it = _item("t", None)
    for template in ("llama_guard", "llama_guard_4", "platform"):
        parts = prompts.render(policy, it, template=template)
        assert parts.images == () and parts.content() == parts.suffix
        assert IMAGE_MARKER not in parts.text


def test_image_lands_in_the_user_turn_as_content_parts(policy: Any) -> None:
    it = _item("a", RED)
    url = to_data_url(it.image or b"")
    parts = prompts.render(policy, it, template="llama_guard_4", images=[url])
    text_only = prompts.render(policy, it, template="llama_guard_4")
    assert parts.prefix == text_only.prefix  # the shared policy prefix is unchanged
    content = parts.content()
    assert isinstance(content, list)
    assert [p["type"] for p in content] == ["text", "image_url", "text"]
    assert content[0]["text"].endswith("User: ")
    assert content[1] == {"type": "image_url", "image_url": {"url": url}}
    assert content[2]["text"].startswith("look at this")
    # joined back without the image, the text is exactly the text-only prompt
    assert content[0]["text"] + content[2]["text"] == text_only.suffix


def test_shieldgemma_2_puts_the_image_first_and_its_own_policy(policy: Any) -> None:
    it = _item("a", RED)
    native = dict(presets.get("shieldgemma_2").native_policies or ())
    parts = prompts.one_category(
        policy,
        it,
        "adult_sexual",
        "shieldgemma_2",
        images=["data:image/png;base64,AA=="],
        native=native,
    )
    assert parts.prefix == ""
    content = parts.content()
    assert isinstance(content, list) and content[0]["type"] == "image_url"
    assert "No Sexually Explicit content" in content[1]["text"]
    assert "look at this" not in content[1]["text"]  # image only: the caption is not judged


def test_templates_without_image_positions_are_refused(policy: Any) -> None:
    with pytest.raises(ModeratorError, match="does not place the item's images"):
        prompts.render(policy, _item("a", RED), template="platform", images=["data:x"])


def test_item_text_cannot_forge_an_image_position(policy: Any) -> None:
    it = _item("a", None, text=f"hi {IMAGE_MARKER} there")
    parts = prompts.render(policy, it, template="llama_guard_4")
    assert IMAGE_MARKER not in parts.text and parts.content() == parts.suffix


def test_user_content_merges_text_and_keys_images() -> None:
    parts = [{"type": "text", "text": "b"}, {"type": "image_url", "image_url": {"url": "u1"}}]
    assert user_content("a", parts) == [
        {"type": "text", "text": "ab"},
        {"type": "image_url", "image_url": {"url": "u1"}},
    ]
    assert user_content("a", "b") == "ab"
    other = [parts[0], {"type": "image_url", "image_url": {"url": "u2"}}]
    assert suffix_key(parts) != suffix_key(other) and suffix_key("x") == "x"


# ------------------------------------------------------------------ the judge


def test_judge_sends_parts_for_image_items_and_text_otherwise(
    policy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    judge, rec = _judge(policy, "llama_guard_4", monkeypatch)
    outs = judge.predict([_item("a", RED), _item("b", None)])
    assert all(o.error is None for o in outs)
    prefix, suffixes = rec.calls[0]
    assert isinstance(suffixes[0], list) and isinstance(suffixes[1], str)
    assert user_content(prefix, suffixes[0])[1]["type"] == "image_url"  # type: ignore[index]
    assert judge.fingerprint()["media"]["kind"] == "image"


def test_media_errors_are_per_item_data(policy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    judge, rec = _judge(policy, "shieldgemma_2", monkeypatch)
    broken = Item(
        id="c",
        content_hash="c",
        fields={"caption": "x"},
        media_error="c.png is truncated",
        media_error_type="media_decode",
    )
    garbage = Item(id="d", content_hash="d", fields={"caption": "x"}, image=b"\x89PNG garbage")
    outs = judge.predict([_item("a", RED), _item("b", None), broken, garbage])
    assert outs[0].error is None and set(outs[0].scores) == {
        "adult_sexual",
        "graphic_violence",
        "dangerous_acts",
        "_overall",
    }
    assert [o.error_type for o in outs[1:]] == ["no_media", "media_decode", "media_decode"]
    # only the good item reached the backend, once per ShieldGemma 2 policy
    assert len(rec.calls) == 3 and all(len(s) == 1 for _, s in rec.calls)


def test_video_frames_are_spread_over_the_clip(
    policy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    judge, rec = _judge(policy, "llama_guard_4", monkeypatch)
    colours = [(i * 25, 0, 0) for i in range(10)]
    frames = tuple(
        Frame(index=i, timestamp_s=i / 10, image=solid_png(c)) for i, c in enumerate(colours)
    )
    clip = Item(id="v", content_hash="v", fields={"caption": "clip"}, video_frames=frames)
    judge.predict([clip])
    urls = [p["image_url"]["url"] for p in rec.calls[0][1][0] if p["type"] == "image_url"]
    assert len(urls) == 4  # llama_guard_4 max_images
    reds = [from_data_url(u).getpixel((0, 0))[0] for u in urls]  # type: ignore[index]
    assert reds == [0, 75, 150, 225]  # frames 0, 3, 6, 9


def test_llama_cpp_refuses_media_presets(policy: Any) -> None:
    with pytest.raises(ModeratorError, match="reads text only"):
        LLMJudge(
            LLMJudge.Params(model="x.gguf", preset="shieldgemma_2", backend="llama_cpp"), policy
        )


def test_same_text_different_image_means_different_cache_keys(tmp_path: Path) -> None:
    from audit.engine.cache import PredictionCache

    a, b, a2 = _item("a", RED), _item("b", BLUE), _item("a2", RED)
    text_only = _item("t", None)
    assert a.content_hash != b.content_hash  # the image is in the content hash
    assert a.content_hash == a2.content_hash  # same text + same pixels: one entry
    assert text_only.content_hash not in (a.content_hash, b.content_hash)
    cache = PredictionCache(tmp_path / "cache.sqlite")
    cache.put_many(
        "judge",
        {
            a.content_hash: ModeratorOutput(scores={"_overall": 0.9}),
            b.content_hash: ModeratorOutput(scores={"_overall": 0.1}),
        },
    )
    got = cache.get_many("judge", [a.content_hash, b.content_hash])
    assert got[a.content_hash].scores["_overall"] == 0.9
    assert got[b.content_hash].scores["_overall"] == 0.1
    assert not math.isnan(got[b.content_hash].scores["_overall"])
    cache.close()
