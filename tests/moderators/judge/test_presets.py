"""Judge presets: lookup, and every preset's template renders and its parser accepts a
well-formed answer."""

from __future__ import annotations

import pytest

from audit.errors import ModeratorError
from audit.moderators.judge import parsers, presets, prompts
from audit.schema import Item, content_hash

WELL_FORMED = {
    "platform": 'The post sells fake IDs.\nVERDICT: {"violations": ["illicit_fraud"], "rationale": "sale of forged documents"}',
    "llama_guard": "unsafe\nS2",
    "shieldgemma": "Yes\nIt offers forged documents for sale.",
    "wildguard": "Harmful request: yes\nResponse refusal: no\nHarmful response: no",
    "safe_unsafe": "UNSAFE",
}

ITEM = Item(
    id="p1",
    content_hash=content_hash({"caption": "fake IDs for sale, DM me"}),
    fields={"caption": "fake IDs for sale, DM me"},
    context={"surface": "photo", "language": "en"},
)


def test_expected_presets():
    assert set(presets.PRESETS) == {
        "llama_guard_3",
        "llama_guard_4",
        "shieldgemma",
        "shieldgemma_2",
        "wildguard",
        "platform_cot",
        "platform_binary",
    }
    for name, p in presets.PRESETS.items():
        assert p.name == name and presets.get(name) is p
        assert p.template in prompts.TEMPLATES and p.fmt in parsers.FORMATS
        assert p.parser == p.fmt and p.description


def test_unknown_preset_did_you_mean():
    with pytest.raises(ModeratorError, match="did you mean 'llama_guard_3'"):
        presets.get("llama_gaurd_3")
    with pytest.raises(ModeratorError, match="unknown judge preset"):
        presets.get("zzz")


@pytest.mark.parametrize(
    "name", sorted(n for n, p in presets.PRESETS.items() if p.media != "image_only")
)
def test_preset_renders_and_parses(policy, name):
    p = presets.get(name)
    if p.one_policy_per_call:
        parts = [
            prompts.one_category(policy, ITEM, c, template=p.template) for c in policy.category_ids
        ]
        assert len({x.prefix for x in parts}) == 1
        category = "illicit_fraud"
    else:
        parts = [prompts.render(policy, ITEM, template=p.template)]
        category = None
    for x in parts:
        assert "fake IDs for sale" in x.suffix and len(x.template_hash) == 64
    if p.taxonomy is not None:
        policy.mapping(p.taxonomy)  # the mapping exists
    v = parsers.parse(WELL_FORMED[p.fmt], p.fmt, policy, category=category)
    assert v.ok and v.unsafe is True
    if p.fmt in ("platform", "llama_guard", "shieldgemma"):
        assert "illicit_fraud" in v.violations
    bad = parsers.parse("", p.fmt, policy, category=category)
    assert bad.status == "parse_failure" and bad.unsafe is None


def test_label_tokens():
    lg = presets.get("llama_guard_3").label_tokens
    assert lg is not None and "unsafe" in lg.positive and "safe" in lg.negative
    sg = presets.get("shieldgemma").label_tokens
    assert sg is not None and sg.positive == ("Yes",) and sg.negative == ("No",)
    assert presets.get("platform_cot").label_tokens is None
    assert presets.get("platform_cot").chat_template is True
    assert presets.get("wildguard").answer_prefix == "Harmful request:"
    assert presets.get("shieldgemma").one_policy_per_call is True


# --------------------------------------------------------------------------- media presets


def _image_item():
    from audit.media import to_data_url
    from audit.schema import content_hash
    from tests.helpers.tiny_vlm import solid_png

    img = solid_png((200, 30, 30))
    fields = {"caption": "fake IDs for sale, DM me"}
    item = Item(id="m1", content_hash=content_hash(fields, img), fields=fields, image=img)
    return item, to_data_url(img)


def test_llama_guard_4_renders_image_and_text(policy):
    p = presets.get("llama_guard_4")
    assert p.media == "image" and p.max_images >= 1 and not p.chat_template
    item, url = _image_item()
    parts = prompts.render(policy, item, template=p.template, images=[url])
    content = parts.content()
    assert [c["type"] for c in content] == ["text", "image_url", "text"]
    assert parts.prefix.startswith("<|header_start|>user<|header_end|>")
    assert "S1: Violent Crimes." in parts.prefix and "S14: Code Interpreter Abuse." in parts.prefix
    assert content[0]["text"].rstrip().endswith("User:")
    assert "fake IDs for sale" in content[2]["text"]
    assert content[2]["text"].rstrip().endswith("<|eot|><|header_start|>assistant<|header_end|>")
    # S1-S14 map onto the policy through the llama_guard_3 mapping (same taxonomy)
    v = parsers.parse("unsafe\nS2", p.fmt, policy)
    assert v.ok and "illicit_fraud" in v.violations
    assert p.label_tokens is not None and "unsafe" in p.label_tokens.positive


def test_shieldgemma_2_renders_one_image_per_policy(policy):
    p = presets.get("shieldgemma_2")
    assert p.media == "image_only" and p.max_images == 1 and p.chat_template
    assert p.one_policy_per_call and p.label_tokens is not None
    assert p.label_tokens.positive == ("Yes",) and p.label_tokens.negative == ("No",)
    native = dict(p.native_policies or ())
    assert set(native) == {"dangerous_acts", "adult_sexual", "graphic_violence"}
    item, url = _image_item()
    for cat, sentence in native.items():
        parts = prompts.one_category(policy, item, cat, p.template, images=[url], native=native)
        content = parts.content()
        assert parts.prefix == "" and content[0] == {"type": "image_url", "image_url": {"url": url}}
        assert sentence in content[1]["text"] and "'Yes' or 'No'" in content[1]["text"]
        assert "fake IDs" not in content[1]["text"]
        v = parsers.parse("Yes", p.fmt, policy, category=cat)
        assert v.ok and cat in v.violations
