"""Model loading is safetensors (or GGUF) only by default: a pickle-only checkpoint is
refused with a clear error unless ``allow_pickle: true``, and remote code stays off."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from audit.errors import EXIT_USAGE, ModeratorError
from audit.moderators._torch import safe_load_kwargs
from audit.moderators.classifiers.hf_classifier import HFClassifier

pytest.importorskip("transformers")


def _pickled_copy(src: Path, out: Path) -> Path:
    """``src`` with its weights as a ``pytorch_model.bin`` pickle only: what
    ``save_pretrained(safe_serialization=False)`` wrote before transformers 5 (which
    ignores the flag), written here with ``torch.save`` of the same state dict."""
    import torch
    from safetensors.torch import load_file

    shutil.copytree(src, out, dirs_exist_ok=True)
    for st in out.glob("*.safetensors"):
        torch.save(load_file(st), out / "pytorch_model.bin")
        st.unlink()
    assert (out / "pytorch_model.bin").is_file()
    assert not list(out.glob("*.safetensors"))
    return out


@pytest.fixture(scope="module")
def pickled(tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pickled_copy(tiny_classifier, tmp_path_factory.mktemp("pickled"))


def _build(model: Path, policy: Any, **kw: Any) -> HFClassifier:
    return HFClassifier(HFClassifier.Params(model=str(model), device="cpu", **kw), policy)


def test_pickle_only_checkpoint_is_refused(pickled, policy, items):
    clf = _build(pickled, policy)
    with pytest.raises(ModeratorError) as ei:
        clf.predict(items[:2])
    msg = ei.value.render()
    assert ei.value.exit_code == EXIT_USAGE == 2
    assert str(pickled) in msg and "pytorch_model.bin" in msg
    assert "safetensors" in msg and "allow_pickle: true" in msg


def test_allow_pickle_opts_in_and_matches_safetensors(pickled, tiny_classifier, policy, items):
    got = _build(pickled, policy, allow_pickle=True).predict(items)
    want = _build(tiny_classifier, policy).predict(items)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.scores == pytest.approx(w.scores, abs=1e-6)


def test_safetensors_win_over_a_pickle_next_to_them(tiny_classifier, tmp_path, policy, items):
    d = tmp_path / "both"
    shutil.copytree(tiny_classifier, d)
    # a .bin that is no valid pickle: loading it would fail, so success proves it is unread
    (d / "pytorch_model.bin").write_bytes(b"not a pickle")
    out = _build(d, policy).predict(items[:2])
    assert len(out) == 2
    assert safe_load_kwargs(d, allow_pickle=False, where="t") == {
        "trust_remote_code": False,
        "use_safetensors": True,
    }


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".ckpt"])
def test_every_pickle_suffix_is_refused(tmp_path, suffix):
    (tmp_path / f"weights{suffix}").write_bytes(b"x")
    with pytest.raises(ModeratorError, match=f"weights\\{suffix}"):
        safe_load_kwargs(tmp_path, allow_pickle=False, where="t")
    assert safe_load_kwargs(tmp_path, allow_pickle=True, where="t") == {"trust_remote_code": False}
    # a GGUF being loaded is no pickle
    assert safe_load_kwargs(tmp_path, allow_pickle=False, where="t", gguf_file="m.gguf") == {
        "trust_remote_code": False
    }


def test_remote_code_stays_off(tiny_classifier, policy, items, monkeypatch):
    import transformers

    seen: list[dict[str, Any]] = []
    for cls in (transformers.AutoTokenizer, transformers.AutoModelForSequenceClassification):
        orig = cls.from_pretrained

        def spy(*a: Any, _orig: Any = orig, **kw: Any) -> Any:
            seen.append(kw)
            return _orig(*a, **kw)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    _build(tiny_classifier, policy).predict(items[:1])
    assert len(seen) == 2
    assert all(kw.get("trust_remote_code") is False for kw in seen)


def test_llm_judge_backend_refuses_pickle_causal_lm(tmp_path):
    from audit.moderators.judge.backends.hf import HFBackend
    from tests.helpers.tiny_lm import build_tiny_causal_lm

    pk = _pickled_copy(build_tiny_causal_lm(tmp_path / "safe"), tmp_path / "pickled")
    with pytest.raises(ModeratorError, match=r"pytorch_model\.bin") as ei:
        HFBackend(str(pk), device="cpu", dtype="float32").load()
    assert str(pk) in ei.value.render()
    b = HFBackend(str(pk), device="cpu", dtype="float32", allow_pickle=True)
    b.load()
    assert b._model is not None
    b.close()


def test_vllm_loads_safetensors_only_and_refuses_pickle_dirs(pickled, monkeypatch):
    import sys
    import types

    from audit.moderators.judge.backends.vllm import VLLMBackend

    seen: list[dict[str, Any]] = []

    class _Stop(Exception):
        pass

    def fake_llm(**kw: Any) -> Any:
        seen.append(kw)
        raise _Stop  # the load options are all this test needs

    mod = types.ModuleType("vllm")
    mod.__version__ = "0.99.0+fake"  # type: ignore[attr-defined]
    mod.LLM = fake_llm  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", mod)
    with pytest.raises(ModeratorError, match=r"pytorch_model\.bin"):
        VLLMBackend(str(pickled)).load()
    assert seen == []  # refused before the engine starts
    with pytest.raises(_Stop):
        VLLMBackend("org/hub-model").load()
    assert seen[-1]["load_format"] == "safetensors"
    assert seen[-1]["trust_remote_code"] is False
    with pytest.raises(_Stop):
        VLLMBackend(str(pickled), allow_pickle=True).load()
    assert "load_format" not in seen[-1] and seen[-1]["trust_remote_code"] is False
