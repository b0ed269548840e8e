"""Loading for the transformers judge backend: model resolution (local dir, hub id,
GGUF file), tokenizer and weights, the converted-GGUF caches and dtype choice.

:class:`HFLoader` is the loading half of
:class:`~audit.moderators.judge.backends.hf.HFBackend`, kept apart from the scoring half
(encoding, forward passes, decoding) so each reads on its own.
"""

from __future__ import annotations

import inspect
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from audit.errors import ModeratorError
from audit.moderators._torch import (
    cpu_has_native_bf16,
    package_version,
    quiet_hf,
    resolve_device,
    resolve_dtype,
    resolve_model_dir,
    safe_load_kwargs,
    sha256_file,
)

__all__ = ["NAME", "HFLoader"]

NAME = "judge.transformers"


class HFLoader:
    """Resolves and loads the tokenizer and the causal LM (both lazily, once)."""

    model: str
    revision: str | None
    gguf_file: str | None
    dtype: str
    device: str
    attn_implementation: str
    use_chat_template: bool
    allow_pickle: bool
    #: a vision-language checkpoint: AutoProcessor + AutoModelForImageTextToText
    media: bool
    _proc: Any
    _lock: AbstractContextManager[Any]
    _dir: Path | None
    _commit: str | None
    _tok: Any
    _model: Any
    _device: str | None
    _torch_dtype: Any
    _cache_kw: str
    _keep_kw: bool
    _eos: set[int]

    def _resolve(self) -> Path:
        with self._lock:
            if self._dir is None:
                if self.gguf_file and not Path(self.model).expanduser().is_dir():
                    self._dir, self._commit = self._fetch_gguf()
                else:
                    self._dir, self._commit = resolve_model_dir(
                        self.model, revision=self.revision, where=NAME
                    )
                if self.gguf_file and not (self._dir / self.gguf_file).is_file():
                    raise ModeratorError(
                        "GGUF file not found",
                        where=NAME,
                        field="params.gguf_file",
                        expected=f"a file inside {self._dir}",
                        actual=repr(self.gguf_file),
                        fix="name the .gguf file in the model directory",
                    )
            return self._dir

    def _fetch_gguf(self) -> tuple[Path, str | None]:
        from audit.moderators._torch import hub_offline

        try:
            from huggingface_hub import hf_hub_download

            path = Path(
                hf_hub_download(
                    self.model,
                    str(self.gguf_file),
                    revision=self.revision,
                    local_files_only=hub_offline(),
                )
            )
        except Exception as exc:
            raise ModeratorError(
                f"cannot resolve GGUF {self.model}/{self.gguf_file}: {type(exc).__name__}",
                where=NAME,
                field="params.model",
                expected="a local directory holding the GGUF file, or a cached hub id",
                actual=repr(self.model),
                fix="pass a local model directory; hub downloads need network",
            ) from exc
        return path.parent, path.parent.name

    def _resolved_dtype(self) -> Any:
        import torch

        if self._torch_dtype is None:
            device = resolve_device(self.device, where=NAME)
            if self.dtype not in ("auto", "fast"):
                self._torch_dtype = resolve_dtype(self.dtype)
            elif device.startswith("cuda") and torch.cuda.is_bf16_supported():
                self._torch_dtype = torch.bfloat16
            elif self.dtype == "fast" and device == "cpu" and cpu_has_native_bf16():
                self._torch_dtype = torch.bfloat16  # AMX / AVX512-BF16: ~2x float32
            else:
                self._torch_dtype = torch.float32
        return self._torch_dtype

    def _processor(self) -> Any:
        """The checkpoint's processor (image preprocessing + tokenizer + chat template),
        loaded once; vision-language checkpoints only (``media``)."""
        with self._lock:
            if self._proc is None:
                from transformers import AutoProcessor

                with quiet_hf():
                    try:
                        auto: Any = AutoProcessor  # untyped in transformers
                        self._proc = auto.from_pretrained(self._resolve(), trust_remote_code=False)
                    except (OSError, ValueError, TypeError) as exc:
                        raise ModeratorError(
                            f"cannot load the processor of a vision-language judge: {exc}",
                            where=NAME,
                            field="params.model",
                            expected="a vision-language checkpoint saved with its processor",
                            actual=str(self._dir),
                            fix="save model and processor with save_pretrained() into one folder",
                        ) from exc
                if getattr(self._proc, "tokenizer", None) is None:
                    raise ModeratorError(
                        "the processor of this vision-language checkpoint has no tokenizer",
                        where=NAME,
                        field="params.model",
                        expected="an AutoProcessor with a tokenizer (LLaVA, Idefics3, Gemma 3...)",
                        actual=type(self._proc).__name__,
                    )
            return self._proc

    def _tokenizer(self) -> Any:
        with self._lock:
            if self._tok is None and getattr(self, "media", False):
                proc = self._processor()
                tok = proc.tokenizer
                # text-only items go through the tokenizer's template; VLM checkpoints
                # often keep theirs on the processor only
                if not getattr(tok, "chat_template", None) and getattr(proc, "chat_template", None):
                    tok.chat_template = proc.chat_template
                if tok.pad_token_id is None:
                    tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
                self._tok = tok
            if self._tok is None:
                from transformers import AutoTokenizer

                kw: dict[str, Any] = {"trust_remote_code": False}
                src: Path | str = self._resolve()
                converted = self._converted_tokenizer_dir()
                if converted is not None and (converted / "tokenizer_config.json").is_file():
                    src = converted
                elif self.gguf_file:
                    kw["gguf_file"] = self.gguf_file
                with quiet_hf(), self._one_parse("gguf_file" in kw, keep=True):
                    try:
                        tok = AutoTokenizer.from_pretrained(src, **kw)
                    except (OSError, ValueError) as exc:
                        raise ModeratorError(
                            f"cannot load tokenizer: {exc}",
                            where=NAME,
                            field="params.model",
                            expected="a causal-LM checkpoint with its tokenizer",
                            actual=str(self._dir),
                            fix="save model and tokenizer with save_pretrained() into one folder",
                        ) from exc
                if converted is not None and src is not converted:
                    self._save_converted(tok, converted)
                if tok.pad_token_id is None:
                    tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
                self._tok = tok
            return self._tok

    def _one_parse(self, reads_gguf: bool, *, keep: bool) -> AbstractContextManager[Any]:
        """Converting from GGUF (``reads_gguf``: this step loads from the GGUF file, not
        from a converted cache): one parse of the file serves the config, tokenizer and
        weights steps (:mod:`~audit.moderators.judge.backends.gguf_parse`). The tokenizer
        step keeps the parsed file only when the weights will be converted from it
        later; the weights step releases it."""
        from contextlib import nullcontext

        from audit.moderators.judge.backends.gguf_parse import shared_reader

        if not (reads_gguf and self.gguf_file):
            return nullcontext()
        if keep:
            converted = self._converted_weights_dir()
            keep = converted is None or not (converted / "config.json").is_file()
        return shared_reader(self._resolve() / self.gguf_file, keep=keep)

    def _converted_tokenizer_dir(self) -> Path | None:
        """Where the tokenizer converted from this GGUF file is kept (keyed by the
        file's sha256): converting a GGUF vocabulary takes ~15 s on a small CPU,
        loading the converted one well under a second. ``None`` without GGUF."""
        if not self.gguf_file:
            return None
        from audit.moderators.judge.packaged import cache_root

        digest = sha256_file(self._resolve() / self.gguf_file)
        return cache_root() / "tokenizers" / digest

    @staticmethod
    def _save_converted(tok: Any, target: Path) -> None:
        import shutil
        import tempfile

        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
            tok.save_pretrained(tmp)
            try:
                tmp.rename(target)
            except OSError:  # another process won the race; keep its copy
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:  # a read-only cache only costs time
            pass

    def load(self) -> None:
        """Load tokenizer and weights (idempotent; scoring calls it)."""
        with self._lock:
            if self._model is not None:
                return
            from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

            auto = AutoModelForImageTextToText if getattr(self, "media", False) else None
            tok = self._tokenizer()
            device = resolve_device(self.device, where=NAME)
            kw: dict[str, Any] = {"dtype": self._resolved_dtype()}
            src: Path = self._resolve()
            converted = self._converted_weights_dir()
            if converted is not None and (converted / "config.json").is_file():
                src = converted
            elif self.gguf_file:
                kw["gguf_file"] = self.gguf_file
            if self.attn_implementation:
                kw["attn_implementation"] = self.attn_implementation
            kw.update(
                safe_load_kwargs(
                    src,
                    allow_pickle=getattr(self, "allow_pickle", False),
                    where=NAME,
                    gguf_file=kw.get("gguf_file"),
                )
            )
            with quiet_hf(), self._one_parse("gguf_file" in kw, keep=False):
                try:
                    model: Any = (auto or AutoModelForCausalLM).from_pretrained(src, **kw)
                except (OSError, ValueError) as exc:
                    raise ModeratorError(
                        f"cannot load causal LM: {exc}",
                        where=NAME,
                        field="params.model",
                        expected="a causal-LM checkpoint (save_pretrained dir or GGUF)",
                        actual=str(self._dir),
                        fix=(
                            "pip install 'audit[judge]' (GGUF loading needs accelerate and gguf)"
                            if "pip install" in str(exc)
                            and ("accelerate" in str(exc) or "gguf" in str(exc).lower())
                            else "check params.model / params.gguf_file / attn_implementation"
                        ),
                    ) from exc
            if converted is not None and src != converted:
                self._save_dequantized(model, converted)
            model.eval().to(device)
            self._adopt(model, tok, device)

    def _save_dequantized(self, model: Any, target: Path) -> None:
        """Save a model loaded from GGUF (already dequantized to plain tensors) as a
        regular checkpoint: without its GGUF quantizer, which cannot serialise."""
        quantizer = getattr(model, "hf_quantizer", None)
        qcfg = model.config.__dict__.pop("quantization_config", None)
        model.hf_quantizer = None
        try:
            with quiet_hf():
                self._save_converted(model, target)
        finally:
            model.hf_quantizer = quantizer
            if qcfg is not None:
                model.config.quantization_config = qcfg

    def _converted_weights_dir(self) -> Path | None:
        """Where the weights dequantized from this GGUF file are kept as safetensors
        (keyed by the file's sha256, the dtype and the transformers version). Parsing
        and dequantizing a GGUF file takes ~20 s on a small CPU (one parse shared by
        the tokenizer and weights steps, :meth:`_one_parse`), loading the converted
        checkpoint a few seconds; scores are identical (the same tensors). ``None``
        without GGUF or with ``AUDIT_NO_CONVERTED_CACHE=1``."""
        import os

        if not self.gguf_file or os.environ.get("AUDIT_NO_CONVERTED_CACHE") == "1":
            return None
        from audit.moderators.judge.packaged import cache_root

        digest = sha256_file(self._resolve() / self.gguf_file)
        dtype = str(self._resolved_dtype()).removeprefix("torch.")
        tag = f"{digest}-{dtype}-transformers{package_version('transformers')}"
        return cache_root() / "converted" / tag

    def _adopt(self, model: Any, tok: Any, device: str) -> None:
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = "logits_to_keep" in params
        eos: set[int] = set()
        for src in (getattr(model, "generation_config", None), model.config, tok):
            e = getattr(src, "eos_token_id", None)
            if isinstance(e, int):
                eos.add(e)
            elif isinstance(e, (list, tuple)):
                eos.update(int(x) for x in e)
        self._eos = eos
        self._device = device
        self._model = model
