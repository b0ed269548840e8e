"""Shared helpers: length batching, digests, device checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from audit.errors import ModeratorError
from audit.moderators._torch import (
    length_batches,
    looks_like_path,
    model_files_digest,
    resolve_device,
    sha256_file,
)
from audit.moderators.classifiers.hf_classifier import HFClassifier


@given(
    lengths=st.lists(st.integers(0, 300), max_size=80),
    max_batch=st.integers(1, 16),
    max_tokens=st.integers(64, 2048),
)
def test_length_batches_partition(lengths, max_batch, max_tokens):
    batches = length_batches(lengths, max_batch=max_batch, max_tokens=max_tokens)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # every index exactly once
    for b in batches:
        assert 1 <= len(b) <= max_batch
        longest = max(max(1, lengths[i]) for i in b)
        assert len(b) == 1 or len(b) * longest <= max_tokens
    # non-increasing lengths along the flattened order (sorted, longest first)
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


def test_sha256_cache_sees_rewrites(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"a" * 10)
    d1 = sha256_file(p)
    assert sha256_file(p) == d1
    p.write_bytes(b"b" * 10)
    assert sha256_file(p) != d1


def test_digest_requires_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModeratorError, match="no weight files"):
        model_files_digest(tmp_path)


def test_looks_like_path():
    assert looks_like_path("/abs/dir") and looks_like_path("./rel") and looks_like_path("a/b/c")
    assert not looks_like_path("org/name") and not looks_like_path("bert-base-uncased")


def test_device_validation(tmp_path):
    with pytest.raises(ValidationError):
        HFClassifier.Params(model="x", device="gpu")
    HFClassifier.Params(model="x", device="cuda:1")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda", "mps")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ModeratorError, match="not available"):
            resolve_device("cuda")
