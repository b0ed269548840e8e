"""fake: scripted scores, failures, determinism."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.errors import ModeratorError
from audit.moderators import MODERATORS
from audit.moderators.fake import FakeModerator, ScriptedBatchFailure, random_score


def _mod(policy, **kw) -> FakeModerator:
    return FakeModerator(FakeModerator.Params(**kw), policy)


def test_registered_and_defaults(policy, items):
    assert MODERATORS.get("fake") is FakeModerator
    mod = _mod(policy)
    assert mod.categories == policy.category_ids
    outs = mod.predict(items)
    assert len(outs) == len(items)
    for o in outs:
        assert set(o.scores) == set(policy.category_ids)
        assert all(0.0 <= v < 1.0 for v in o.scores.values())


def test_scripted_scores_and_constant_default(policy, items):
    mod = _mod(policy, categories=["hate", "spam"], scores={"it-1": {"hate": 0.9}}, default=0.25)
    outs = mod.predict(items[:3])
    assert outs[1].scores == {"hate": 0.9, "spam": 0.25}
    assert outs[0].scores == {"hate": 0.25, "spam": 0.25}


def test_random_default_deterministic_by_content(policy, make_item):
    a = _mod(policy, seed=3)
    b = _mod(policy, seed=3)
    c = _mod(policy, seed=4)
    x1, x2 = make_item("x1", "same text"), make_item("x2", "same text")
    y = make_item("y", "other text")
    s1, s2, sy = (o.scores for o in a.predict([x1, x2, y]))
    assert s1 == s2  # same content → same scores, whatever the id
    assert s1 != sy
    assert b.predict([x1])[0].scores == s1
    assert c.predict([x1])[0].scores != s1


def test_beta_distribution(policy, items):
    mod = _mod(policy, distribution="beta", beta=(0.3, 3.0))
    vals = [v for o in mod.predict(items) for v in o.scores.values()]
    assert all(0.0 <= v <= 1.0 for v in vals)
    assert sum(vals) / len(vals) < 0.4  # mean of Beta(0.3, 3) ≈ 0.09


def test_failures(policy, items):
    mod = _mod(policy, fail={"it-2": "model exploded"}, fail_batches_containing=["it-5"])
    outs = mod.predict(items[:3])
    assert outs[2].error == "model exploded" and outs[2].error_type == "scripted"
    assert outs[2].scores == {}
    assert outs[0].error is None
    with pytest.raises(ScriptedBatchFailure, match="it-5"):
        mod.predict(items)


def test_sleep(policy, items):
    mod = _mod(policy, sleep_per_batch_s=0.05)
    t0 = time.perf_counter()
    mod.predict(items[:1])
    assert time.perf_counter() - t0 >= 0.05


def test_scores_file(policy, items, tmp_path):
    path = tmp_path / "scores.jsonl"
    rows = [
        {"id": "it-0", "scores": {"hate": 0.1, "violence": 0.7}},
        {"id": "it-1", "scores": {}, "error": "timeout upstream"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    mod = _mod(policy, scores_file=path, scores={"it-0": {"hate": 0.5}}, default=0.0)
    outs = mod.predict(items[:2])
    assert outs[0].scores["hate"] == 0.5 and outs[0].scores["violence"] == 0.7
    assert outs[1].error == "timeout upstream"
    fp = mod.fingerprint()
    path.write_text(json.dumps({"id": "it-0", "scores": {"hate": 0.2}}) + "\n")
    assert _mod(policy, scores_file=path, scores={"it-0": {"hate": 0.5}}).fingerprint() != fp


def test_validation(policy, tmp_path):
    with pytest.raises(ModeratorError) as ei:
        _mod(policy, categories=["hate"], scores={"a": {"spam": 0.5}})
    assert ei.value.field == "params.scores.a.spam"
    with pytest.raises(ModeratorError, match="out of range"):
        _mod(policy, scores={"a": {"hate": 1.5}})
    with pytest.raises(ModeratorError) as ei:
        _mod(policy, categories=["hat"])
    assert "did you mean 'hate'" in str(ei.value)
    with pytest.raises(ModeratorError, match="not found"):
        _mod(policy, scores_file=tmp_path / "missing.jsonl")
    with pytest.raises(ModeratorError, match="default"):
        _mod(policy, default=2.0)


def test_fingerprint_hashes_params(policy):
    fp = _mod(policy).fingerprint()
    assert fp == _mod(policy).fingerprint()
    assert fp != _mod(policy, seed=1).fingerprint()
    assert fp != _mod(policy, fail={"x": "boom"}).fingerprint()


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31), h=st.text(min_size=1), cat=st.sampled_from(["a", "b"]))
def test_random_score_in_unit_interval(seed, h, cat):
    for dist in ("uniform", "beta"):
        v = random_score(seed, h, cat, distribution=dist)
        assert 0.0 <= v <= 1.0
        assert v == random_score(seed, h, cat, distribution=dist)
