"""Fusion rules (pure) and the ``fusion`` moderator over fake and real members."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.errors import ModeratorError
from audit.media.fusion import fuse, fuse_category
from audit.moderators.fusion import FusionModerator
from audit.schema import Item

NAN = math.nan


def test_rules_by_hand() -> None:
    v = {"text": 0.4, "image": 0.4}
    assert fuse_category(v, "max") == (0.4, "text")  # a tie goes to the name sorting last
    assert fuse_category(v, "noisy_or")[0] == pytest.approx(0.64)
    assert fuse_category(v, "mean")[0] == pytest.approx(0.4)
    assert fuse_category({"a": NAN, "b": 0.7}, "max") == (0.7, "b")
    s, m = fuse_category({"a": NAN}, "max")
    assert math.isnan(s) and m is None


@given(st.lists(st.floats(0, 1), min_size=1, max_size=5))
def test_rule_invariants(xs: list[float]) -> None:
    v = {f"m{i}": x for i, x in enumerate(xs)}
    mx, _ = fuse_category(v, "max")
    no, _ = fuse_category(v, "noisy_or")
    me, _ = fuse_category(v, "mean")
    eps = 1e-12
    assert min(xs) - eps <= me <= mx + eps and mx <= no + eps and no <= 1 + eps
    assert mx == max(xs)


def test_fuse_skips_categories_no_member_scores() -> None:
    scores, decided = fuse(
        {"text": {"harassment": 0.8}, "image": {"adult_sexual": 0.3, "harassment": NAN}},
        ("harassment", "adult_sexual", "spam"),
        "max",
    )
    assert scores == {"harassment": 0.8, "adult_sexual": 0.3}
    assert decided == {"harassment": "text", "adult_sexual": "image"}


def _fusion(policy, rule="max", on_member_error="error", image_fail=None):  # type: ignore[no-untyped-def]
    return FusionModerator(
        FusionModerator.Params(
            rule=rule,
            on_member_error=on_member_error,
            members={
                "text": {
                    "type": "fake",
                    "params": {
                        "categories": ["harassment"],
                        "default": 0.2,
                        "scores": {"a": {"harassment": 0.9}},
                    },
                },
                "image": {
                    "type": "fake",
                    "params": {
                        "categories": ["harassment", "adult_sexual"],
                        "default": 0.3,
                        "fail": image_fail or {},
                    },
                },
            },
        ),
        policy,
    )


def _items(*ids: str) -> list[Item]:
    return [Item(id=i, content_hash=i, fields={"caption": i}) for i in ids]


def test_fusion_moderator_max_and_evidence(policy) -> None:  # type: ignore[no-untyped-def]
    m = _fusion(policy)
    assert m.categories == ("harassment", "adult_sexual")
    a, b = m.predict(_items("a", "b"))
    assert a.scores == {"harassment": 0.9, "adult_sexual": 0.3}
    assert a.evidence["decided_by"]["harassment"] == {"member": "text"}  # type: ignore[index]
    assert b.scores["harassment"] == 0.3 and b.evidence["rule"] == "max"  # type: ignore[index]
    n = _fusion(policy, rule="noisy_or").predict(_items("b"))[0]
    assert n.scores["harassment"] == pytest.approx(1 - 0.8 * 0.7)


def test_member_errors(policy) -> None:  # type: ignore[no-untyped-def]
    strict = _fusion(policy, image_fail={"a": "decode failed"}).predict(_items("a"))[0]
    assert strict.error == "member 'image' failed: decode failed"
    assert strict.error_type == "scripted" and not strict.scores
    lax = _fusion(policy, on_member_error="use_available", image_fail={"a": "x"})
    out = lax.predict(_items("a"))[0]
    assert out.error is None and out.scores == {"harassment": 0.9}
    assert out.evidence["failed_members"] == ["image"]  # type: ignore[index]


def test_fingerprint_records_rule_and_members(policy) -> None:  # type: ignore[no-untyped-def]
    fa, fb = _fusion(policy).fingerprint(), _fusion(policy, rule="mean").fingerprint()
    assert fa["rule"] == "max" and fb["rule"] == "mean"
    assert set(fa["members"]) == {"text", "image"} and fa["members"]["text"]["type"] == "fake"
    assert fa["members_sha256"] == fb["members_sha256"]


def test_bad_fusion_params(policy) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModeratorError, match="unknown moderator type"):
        FusionModerator(
            FusionModerator.Params(members={"a": {"type": "nope"}, "b": {"type": "fake"}}), policy
        )
    with pytest.raises(ModeratorError, match="cannot itself be a fusion"):
        FusionModerator(
            FusionModerator.Params(members={"a": {"type": "fusion"}, "b": {"type": "fake"}}),
            policy,
        )
    with pytest.raises(ModeratorError, match="invalid params for member 'b'"):
        FusionModerator(
            FusionModerator.Params(
                members={"a": {"type": "fake"}, "b": {"type": "fake", "params": {"bogus": 1}}}
            ),
            policy,
        )
    with pytest.raises(ValueError):
        FusionModerator.Params(members={"a": {"type": "fake"}})  # one member is no fusion


def test_evidence_survives_the_cache_round_trip() -> None:
    from audit.schema import ModeratorOutput

    ev = {"decided_by": {"adult_sexual": {"frame_index": 5, "timestamp_s": 0.5}}}
    o = ModeratorOutput(scores={"adult_sexual": 0.2}, evidence=ev)
    assert ModeratorOutput.from_json(o.to_json()).evidence == ev
    plain = ModeratorOutput(scores={"adult_sexual": 0.2}).to_json()
    assert "evidence" not in plain  # outputs without evidence serialise as before
    assert ModeratorOutput.from_json(plain).evidence is None
