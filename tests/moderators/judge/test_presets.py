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


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
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
