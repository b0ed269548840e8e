"""profanity_baseline: the packaged alt-profanity-check model."""

from __future__ import annotations

import importlib.util
import os
import warnings

import pytest

from audit.errors import ModeratorError
from audit.moderators import MODERATORS
from audit.moderators.classifiers.profanity import ProfanityBaseline

_HAVE = importlib.util.find_spec("profanity_check") is not None
if not _HAVE and os.environ.get("AUDIT_REQUIRE_SHARED_DATA") == "1":
    pytest.fail("alt-profanity-check is not installed", pytrace=False)
pytestmark = pytest.mark.skipif(not _HAVE, reason="alt-profanity-check not installed")


def _mod(policy, **kw) -> ProfanityBaseline:
    return ProfanityBaseline(ProfanityBaseline.Params(**kw), policy)


def test_registered():
    assert MODERATORS.get("profanity_baseline") is ProfanityBaseline


def test_offensive_scores_higher(policy, make_item):
    mod = _mod(policy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading the pickles must not warn
        outs = mod.predict(
            [
                make_item("a", "you are a fucking worthless piece of shit"),
                make_item("b", "what a lovely day at the beach"),
                make_item("c", ""),
            ]
        )
    assert set(outs[0].scores) == {"hate", "harassment"}
    assert set(outs[1].scores) == {"hate", "harassment"}
    assert outs[0].scores["harassment"] > 0.8 > 0.2 > outs[1].scores["harassment"]
    assert outs[0].scores["hate"] == outs[0].scores["harassment"]
    assert outs[2].error_type == "no_text"


def test_categories_param(policy, make_item):
    mod = _mod(policy, categories=["harassment"])
    assert mod.categories == ("harassment",)
    assert set(mod.predict([make_item("a", "shut up idiot")])[0].scores) == {"harassment"}
    with pytest.raises(ModeratorError) as ei:
        _mod(policy, categories=["harrassment"])
    assert ei.value.field == "params.categories"
    assert "did you mean 'harassment'" in str(ei.value)


def test_fingerprint(policy):
    fp = _mod(policy).fingerprint()
    assert fp["package"] == "alt-profanity-check==1.9.1"
    assert set(fp["files"]) == {"data/model.joblib", "data/vectorizer.joblib"}
    assert all(len(v) == 64 for v in fp["files"].values())
    assert fp != _mod(policy, categories=["hate"]).fingerprint()
