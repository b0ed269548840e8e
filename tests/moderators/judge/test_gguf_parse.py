"""One GGUF parse per conversion: the shared reader, and the judge's first use of a
real (tiny, locally written) GGUF file end to end."""

from __future__ import annotations

import os

import pytest

from audit.moderators.judge.backends.gguf_parse import kept_readers, shared_reader
from tests.helpers.tiny_gguf import build_tiny_gguf

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

PREFIX = "classify the content as safe or unsafe. content: "
SUFFIXES = ["is this safe? unsafe", "a safe one", ""]
CANDIDATES = {"safe": ["safe"], "unsafe": ["unsafe", "un"]}


@pytest.fixture
def parses(monkeypatch):
    """Counts metadata parses (``GGUFReader._build_fields``) per file name."""
    counts: dict[str, int] = {}
    original = gguf.GGUFReader._build_fields

    def counting(self, offs, count):
        name = os.path.basename(str(self.data.filename))
        counts[name] = counts.get(name, 0) + 1
        return original(self, offs, count)

    monkeypatch.setattr(gguf.GGUFReader, "_build_fields", counting)
    return counts


@pytest.fixture(scope="module")
def two_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("gguf")
    return build_tiny_gguf(d, seed=0, name="a.gguf"), build_tiny_gguf(d, seed=1, name="b.gguf")


def test_one_parse_inside_a_block_and_only_for_the_watched_file(two_files, parses):
    a, b = two_files
    original = gguf.GGUFReader
    with shared_reader(a, keep=False):
        assert gguf.GGUFReader is not original
        r1, r2 = gguf.GGUFReader(a), gguf.GGUFReader(str(a))
        other1, other2 = gguf.GGUFReader(b), gguf.GGUFReader(b)
        assert r1 is r2 and isinstance(r1, original)
        assert other1 is not other2  # not watched: read as usual
    assert gguf.GGUFReader is original
    assert parses == {"a.gguf": 1, "b.gguf": 2}
    assert kept_readers() == 0
    assert gguf.GGUFReader(a) is not r1  # outside a block nothing is shared


def test_keep_holds_the_parse_until_a_releasing_block(two_files, parses):
    a, _ = two_files
    with shared_reader(a, keep=True):
        first = gguf.GGUFReader(a)
    assert kept_readers() == 1
    with shared_reader(a, keep=False):
        assert gguf.GGUFReader(a) is first
    assert kept_readers() == 0 and parses == {"a.gguf": 1}


def test_a_changed_file_is_parsed_again_and_its_stale_parse_dropped(tmp_path, parses):
    p = build_tiny_gguf(tmp_path, seed=0, name="c.gguf")
    with shared_reader(p, keep=True):
        first = gguf.GGUFReader(p)
    assert kept_readers() == 1
    build_tiny_gguf(tmp_path, seed=2, name="c.gguf")  # rewritten between the two steps
    st = os.stat(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # coarse clocks
    with shared_reader(p, keep=False):
        again = gguf.GGUFReader(p)
        assert again is not first
    assert parses == {"c.gguf": 2} and kept_readers() == 0


def test_nested_blocks_restore_the_class_once(two_files):
    a, b = two_files
    original = gguf.GGUFReader
    with shared_reader(a, keep=False):
        with shared_reader(b, keep=False):
            pass
        assert gguf.GGUFReader is not original
    assert gguf.GGUFReader is original


def test_an_error_inside_the_block_restores_the_class(two_files):
    a, _ = two_files
    original = gguf.GGUFReader
    with pytest.raises(RuntimeError), shared_reader(a, keep=False):
        raise RuntimeError("boom")
    assert gguf.GGUFReader is original and kept_readers() == 0


def test_judge_first_use_of_a_gguf_parses_it_once_and_scores_like_transformers(
    tmp_path, monkeypatch, parses
):
    from transformers import AutoModelForCausalLM

    from audit.moderators.judge.backends.hf import HFBackend

    path = build_tiny_gguf(tmp_path / "model", seed=3)
    monkeypatch.setenv("AUDIT_MODEL_CACHE", str(tmp_path / "cache"))
    b = HFBackend(str(path), device="cpu", dtype="float32")
    b.fingerprint()  # the tokenizer is converted here (chat template hash) ...
    assert kept_readers() == 1  # ... and the parse kept for the weights
    got = b.next_token_probs(PREFIX, SUFFIXES, CANDIDATES)
    assert parses == {"tiny.gguf": 1}  # config, tokenizer and weights from one parse
    assert kept_readers() == 0

    # the model transformers builds on its own (config and weights: two parses) has the
    # same weights
    plain = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    assert parses == {"tiny.gguf": 1 + 2}
    mine = b._model.state_dict()
    for k, v in plain.state_dict().items():
        assert torch.equal(v.float(), mine[k].float()), k

    # a second backend loads the converted tokenizer and weights: no parse at all
    again = HFBackend(str(path), device="cpu", dtype="float32")
    assert again.next_token_probs(PREFIX, SUFFIXES, CANDIDATES) == got
    assert parses == {"tiny.gguf": 1 + 2}
