"""hf_classifier over a tiny random-weight BERT written to tmp_path."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from audit.errors import ModeratorError
from audit.moderators import MODERATORS
from audit.moderators.classifiers.hf_classifier import HFClassifier

LABEL_MAP = {"hate": "hate", "violence": "violence", "insult": "harassment"}


def build(model: Path | str, policy, **kw) -> HFClassifier:
    kw.setdefault("label_map", LABEL_MAP)
    return HFClassifier(HFClassifier.Params(model=str(model), device="cpu", **kw), policy)


def test_registered():
    assert MODERATORS.get("hf_classifier") is HFClassifier


def test_multi_label_scores(tiny_classifier, policy, items):
    mod = build(tiny_classifier, policy, problem_type="multi_label")
    assert mod.categories == ("hate", "harassment", "violence")  # policy order
    assert mod.kind == "classifier"
    outs = mod.predict(items)
    assert len(outs) == len(items)
    for o in outs:
        assert o.error is None
        assert set(o.scores) == {"hate", "harassment", "violence"}
        assert all(0.0 <= v <= 1.0 for v in o.scores.values())
    # random weights with a wide init: not all items score the same
    assert len({round(o.scores["hate"], 6) for o in outs}) > 1


def test_single_label_softmax_over_mapped_labels(tiny_classifier, policy, items):
    mod = build(tiny_classifier, policy, problem_type="single_label")
    for o in mod.predict(items):
        assert all(0.0 <= v <= 1.0 for v in o.scores.values())
        # "safe" is ignored, so the mapped mass is below 1
        assert sum(o.scores.values()) <= 1.0 + 1e-6


def test_auto_problem_type_from_config(tiny_classifier_factory, policy):
    multi = tiny_classifier_factory(problem_type="multi_label_classification")
    single = tiny_classifier_factory(problem_type=None)
    assert build(multi, policy).problem_type == "multi_label"
    assert build(single, policy).problem_type == "single_label"
    assert build(single, policy, problem_type="multi_label").problem_type == "multi_label"


def test_order_preserved_and_batch_invariant(tiny_classifier, policy, items):
    mod = build(tiny_classifier, policy, micro_batch_size=2)
    batch = mod.predict(items)
    singles = [mod.predict([it])[0] for it in items]
    rev = mod.predict(items[::-1])[::-1]
    for a, b, c in zip(batch, singles, rev):
        for cat in mod.categories:
            assert a.scores[cat] == pytest.approx(b.scores[cat], abs=1e-5)
            assert a.scores[cat] == pytest.approx(c.scores[cat], abs=1e-5)


def test_deterministic_across_instances(tiny_classifier, policy, items):
    a = build(tiny_classifier, policy).predict(items)
    b = build(tiny_classifier, policy).predict(items)
    assert [o.scores for o in a] == [o.scores for o in b]


def test_identity_label_map(tiny_classifier, policy, items):
    mod = build(tiny_classifier, policy, label_map="identity")
    assert mod.categories == ("hate", "violence")  # "safe", "insult" are not policy ids
    assert set(mod.predict(items[:1])[0].scores) == {"hate", "violence"}


def test_no_text_is_a_per_item_error(tiny_classifier, policy, items, make_item):
    mod = build(tiny_classifier, policy)
    outs = mod.predict([items[0], make_item("empty", ""), items[1]])
    assert outs[1].error_type == "no_text" and outs[1].scores == {}
    assert outs[0].error is None and outs[2].error is None


def test_fingerprint_stable_and_weight_sensitive(tiny_classifier_factory, policy, tmp_path):
    base = tiny_classifier_factory(problem_type="multi_label_classification")
    fp1 = build(base, policy).fingerprint()
    assert fp1 == build(base, policy).fingerprint()
    assert fp1["type"] == "hf_classifier"
    assert set(fp1["files"]) >= {"model.safetensors", "config.json", "tokenizer.json"}
    assert "device" not in fp1 and "micro_batch_size" not in fp1
    # same files, other settings that change scores
    assert build(base, policy, max_length=16).fingerprint() != fp1
    assert build(base, policy, label_map={"hate": "hate"}).fingerprint() != fp1
    # different weights (other seed) → other weights digest
    other = tiny_classifier_factory(problem_type="multi_label_classification", seed=1)
    fp2 = build(other, policy).fingerprint()
    assert fp2["weights_sha256"] != fp1["weights_sha256"]
    # weights overwritten in place are noticed (digest cache keyed by size + mtime)
    copy = tmp_path / "copy"
    shutil.copytree(base, copy)
    fp_copy = build(copy, policy).fingerprint()
    assert fp_copy["weights_sha256"] == fp1["weights_sha256"]
    shutil.copy(other / "model.safetensors", copy / "model.safetensors")
    assert build(copy, policy).fingerprint()["weights_sha256"] == fp2["weights_sha256"]


def test_unknown_label_did_you_mean(tiny_classifier, policy):
    with pytest.raises(ModeratorError) as ei:
        build(tiny_classifier, policy, label_map={"hte": "hate"})
    err = ei.value
    assert err.field == "params.label_map.hte"
    assert "did you mean 'hate'" in str(err)
    assert "insult" in err.expected
    assert "\n" not in str(err)


def test_target_not_in_policy(tiny_classifier, policy):
    with pytest.raises(ModeratorError) as ei:
        build(tiny_classifier, policy, label_map={"insult": "harasment"})
    assert ei.value.field == "params.label_map.insult"
    assert "did you mean 'harassment'" in str(ei.value)


def test_identity_with_no_overlap(tiny_classifier_factory, policy):
    model = tiny_classifier_factory(labels=("LABEL_0", "LABEL_1"))
    with pytest.raises(ModeratorError, match="maps no model label"):
        build(model, policy, label_map="identity")


@pytest.mark.parametrize(
    "spec",
    ["/nonexistent/model/dir", "./relative/missing", "some-org/definitely-not-a-model-xyz"],
)
def test_missing_model_fails_fast(spec, policy):
    t0 = time.perf_counter()
    with pytest.raises(ModeratorError) as ei:
        build(spec, policy)
    assert time.perf_counter() - t0 < 5
    msg = str(ei.value)
    assert "pass a local model directory; hub downloads need network" in msg
    assert ei.value.field == "params.model"
    assert "\n" not in msg


def test_params_strict(tiny_classifier):
    with pytest.raises(ValidationError):
        HFClassifier.Params(model=str(tiny_classifier), bogus=1)
    with pytest.raises(ValidationError):
        HFClassifier.Params(model=str(tiny_classifier), dtype="int8")
    p = HFClassifier.Params(model=str(tiny_classifier))
    with pytest.raises(ValidationError):
        p.max_length = 3  # frozen


def test_bfloat16_runs(tiny_classifier, policy, items):
    mod = build(tiny_classifier, policy, dtype="bfloat16")
    outs = mod.predict(items[:2])
    assert all(not math.isnan(v) and 0 <= v <= 1 for o in outs for v in o.scores.values())
    assert mod.fingerprint()["dtype"] == "bfloat16"
    mod.close()
