"""transformers backend for the LLM judge (the default backend).

:class:`HFBackend` wraps a causal LM (local ``save_pretrained`` directory, hub id, or
GGUF file) and offers the two primitives the judge modes need:

* :meth:`HFBackend.next_token_probs` — for each item, the probability of each
  candidate label at the answer position (one forward pass per item), with the
  shared prompt prefix (the policy) computed **once** as a KV cache and reused for
  every item and batch;
* :meth:`HFBackend.generate` — greedy or seeded sampling with stop strings,
  per-token log-probabilities and a finish reason.

Prompts are ``prefix + suffix``: the prefix (policy, instructions) is identical across
items, the suffix is the item's content. With a chat template the whole text is one
user turn followed by the generation prompt, so the template's preamble (BOS, system
block, user header) plus the prefix form the shared token prefix and the suffix ends
the turn. :meth:`HFBackend.encode` verifies that the prefix tokens are a true prefix of
the full token sequence; when a template or tokenizer breaks that (trimming, merges
across the boundary) the item is scored without reuse — scores never depend on reuse.

Prefix reuse: the prefix is run once (``use_cache``) and its per-layer keys/values
kept (memoised for the last prefix, so repeated calls with one policy reuse it too).
For each batch the cache is *expanded* (a broadcast view, no copy) to the batch size;
suffixes are left-padded, so the padding sits between prefix and suffix and is masked
out, position ids continue from the prefix length over real tokens only, and the
answer position is always the last column (``logits_to_keep=1``). The no-reuse path
left-pads full sequences the same way, so both paths agree to float noise.

Construction loads nothing: the tokenizer loads on the first :meth:`encode`, the
weights on the first scoring call (or :meth:`load`).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit.errors import ModeratorError
from audit.moderators._torch import (
    length_batches,
    looks_like_path,
    model_files_digest,
    package_version,
    quiet_hf,
    resolve_device,
    resolve_dtype,
    resolve_model_dir,
    sha256_file,
)
from audit.moderators.judge.backends._common import (
    _SENTINEL,
    BOUNDARY_BACKOFF,
    KEEP_TAIL,
    GenOut,
    _seed_for,
    candidate_token_ids,
    check_settings,
    fit_middle,
)

__all__ = ["BOUNDARY_BACKOFF", "KEEP_TAIL", "GenOut", "HFBackend"]

NAME = "judge.transformers"
#: ``auto``: bf16 on a bf16-capable GPU, else float32; ``fast``: also bf16 on CPUs
#: with native bf16 matmul (AMX / AVX512-BF16), ~2x faster there, scores within bf16
#: rounding of float32
DTYPES = ("auto", "fast", "float32", "bfloat16", "float16")


def _cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (AMX tiles or AVX512-BF16), where
    bf16 inference runs about twice as fast as float32 (measured on the packaged demo
    judge); elsewhere bf16 is emulated and slower, so ``dtype: fast`` keeps float32."""
    import torch

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    probe16 = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    try:
        return bool((probe is not None and probe()) or (probe16 is not None and probe16()))
    except Exception:  # pragma: no cover - exotic builds
        return False


def _cache_of(out: Any) -> Any:
    """The KV cache of a model output (``cache`` in transformers 5, else the old name)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


class HFBackend:
    """transformers causal LM: label-token probabilities and generation."""

    backend = "transformers"

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        gguf_file: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        attn_implementation: str = "sdpa",
        max_length: int = 4096,
        chat_template: bool = True,
    ) -> None:
        check_settings(
            NAME,
            dtype,
            DTYPES,
            "use dtype: auto (bfloat16 on a GPU that supports it, else float32) or fast",
            max_length,
        )
        if gguf_file is None and model.endswith(".gguf"):
            model_path = Path(model).expanduser()
            if model_path.is_file():
                model, gguf_file = str(model_path.parent), model_path.name
        if looks_like_path(model) and not Path(model).expanduser().exists():
            raise ModeratorError(
                "model path not found",
                where=NAME,
                field="params.model",
                expected="a local model directory, a .gguf file or a hub id 'org/name'",
                actual=repr(model),
                fix="check the path",
            )
        self.model = model
        self.revision = revision
        self.gguf_file = gguf_file
        self.dtype = dtype
        self.device = device
        self.attn_implementation = attn_implementation
        self.max_length = max_length
        self.use_chat_template = chat_template
        self._lock = threading.RLock()
        self._dir: Path | None = None
        self._commit: str | None = None
        self._tok: Any = None
        self._model: Any = None
        self._device: str | None = None
        self._torch_dtype: Any = None
        self._cache_kw = "cache"
        self._keep_kw = True
        self._eos: set[int] = set()
        self._fingerprint: dict[str, Any] | None = None
        self._prefix_text: dict[str, str | None] = {}
        self._prefix_cache: tuple[tuple[int, ...], Any, Any] | None = None

    # ------------------------------------------------------------------ loading

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
        from audit.moderators._torch import _offline

        try:
            from huggingface_hub import hf_hub_download

            path = Path(
                hf_hub_download(
                    self.model,
                    str(self.gguf_file),
                    revision=self.revision,
                    local_files_only=_offline(),
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
            elif self.dtype == "fast" and device == "cpu" and _cpu_has_native_bf16():
                self._torch_dtype = torch.bfloat16  # AMX / AVX512-BF16: ~2x float32
            else:
                self._torch_dtype = torch.float32
        return self._torch_dtype

    def _tokenizer(self) -> Any:
        with self._lock:
            if self._tok is None:
                from transformers import AutoTokenizer

                kw: dict[str, Any] = {}
                src: Path | str = self._resolve()
                converted = self._converted_tokenizer_dir()
                if converted is not None and (converted / "tokenizer_config.json").is_file():
                    src = converted
                elif self.gguf_file:
                    kw["gguf_file"] = self.gguf_file
                with quiet_hf():
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

    @property
    def has_chat_template(self) -> bool:
        """True when prompts go through the tokenizer's chat template."""
        return self.use_chat_template and bool(getattr(self._tokenizer(), "chat_template", None))

    def load(self) -> None:
        """Load tokenizer and weights (idempotent; scoring calls it)."""
        with self._lock:
            if self._model is not None:
                return
            from transformers import AutoModelForCausalLM

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
            with quiet_hf():
                try:
                    model = AutoModelForCausalLM.from_pretrained(src, **kw)
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
        and dequantizing a GGUF file takes ~40 s on a small CPU, loading the converted
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

    @classmethod
    def from_loaded(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        name: str = "in-memory",
        max_length: int = 4096,
        chat_template: bool = True,
    ) -> HFBackend:
        """A backend over a model and tokenizer already in memory (a notebook, a
        benchmark). The model stays on its device and dtype; the fingerprint names the
        object (``weights_sha256`` is ``None``: in-memory weights have no file digest,
        so such results should not be cached across processes)."""
        b = cls.__new__(cls)
        cls.__init__(b, ".", max_length=max_length, chat_template=chat_template)
        b.model = name
        b._dir, b._commit = Path("."), None
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        b._tok = tokenizer
        b._torch_dtype = next(model.parameters()).dtype
        b._adopt(model.eval(), tokenizer, str(next(model.parameters()).device))
        b._fingerprint = {
            "backend": cls.backend,
            "model": name,
            "weights_sha256": None,
            "dtype": str(b._torch_dtype).removeprefix("torch."),
            "chat_template": b.has_chat_template,
            "max_length": max_length,
            "transformers": package_version("transformers"),
        }
        return b

    def close(self) -> None:
        """Drop the model and caches and free accelerator memory."""
        with self._lock:
            dev, self._model, self._prefix_cache = self._device, None, None
        if dev and dev.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ fingerprint

    def fingerprint(self) -> dict[str, Any]:
        """Weights digest + everything that changes outputs (not device, batch size)."""
        with self._lock:
            if self._fingerprint is None:
                d = self._resolve()
                if self.gguf_file:
                    gguf_digest = sha256_file(d / self.gguf_file)
                    weights, files = gguf_digest, {self.gguf_file: gguf_digest}
                else:
                    digest = model_files_digest(d)
                    weights, files = digest["weights_sha256"], digest["files"]
                template = getattr(self._tokenizer(), "chat_template", None)
                used = template if (self.use_chat_template and template) else None
                self._fingerprint = {
                    "backend": self.backend,
                    "model": self.model,
                    "revision": self.revision,
                    "commit": self._commit,
                    "gguf_file": self.gguf_file,
                    "weights_sha256": weights,
                    "files": files,
                    "dtype": str(self._resolved_dtype()).removeprefix("torch."),
                    "chat_template": used is not None,
                    "chat_template_sha256": (
                        hashlib.sha256(str(used).encode()).hexdigest() if used else None
                    ),
                    "max_length": self.max_length,
                    "truncation": f"suffix-middle, keep last {KEEP_TAIL}",
                    "transformers": package_version("transformers"),
                }
            return copy.deepcopy(self._fingerprint)

    # ------------------------------------------------------------------ encoding

    def _render(self, content: str) -> str:
        return str(
            self._tokenizer().apply_chat_template(
                [{"role": "user", "content": content}],
                tokenize=False,
                add_generation_prompt=True,
            )
        )

    def _prefix_part(self, prefix: str) -> str | None:
        """Rendered text before the prefix's end, or ``None`` if the template hides it."""
        if prefix not in self._prefix_text:
            rendered = self._render(prefix + _SENTINEL)
            idx = rendered.find(_SENTINEL)
            self._prefix_text[prefix] = rendered[:idx] if idx >= 0 else None
        return self._prefix_text[prefix]

    def _ids(self, text: str, *, special: bool) -> list[int]:
        return list(self._tokenizer()(text, add_special_tokens=special)["input_ids"])

    def encode(self, prefix: str, suffix: str) -> tuple[list[int], list[int]]:
        """Token ids of ``prefix + suffix`` split into (shared prefix, rest).

        With a chat template the text is one user turn plus the generation prompt. The
        first list is guaranteed to be a true prefix of the full sequence; when the
        template or tokenizer breaks that, it is empty and the second list holds the
        whole sequence (the item is then scored without prefix reuse). See
        :meth:`encode_many` for how a token merge across the boundary is handled.
        """
        return self.encode_many(prefix, [suffix])[0]

    def encode_many(
        self, prefix: str, suffixes: Sequence[str], tails: Sequence[str] | None = None
    ) -> list[tuple[list[int], list[int]]]:
        """:meth:`encode` for many suffixes, tokenized in one batched tokenizer call.

        ``tails`` (optional, one per suffix) is text placed after the whole prompt —
        after the chat template's generation prompt, i.e. the start of the model's own
        answer (an assistant-turn prefill)."""
        if not suffixes:
            return []
        tails = list(tails) if tails is not None else [""] * len(suffixes)
        if len(tails) != len(suffixes):
            raise ValueError("tails must have one entry per suffix")
        tok = self._tokenizer()
        if self.has_chat_template:
            texts = [self._render(prefix + s) + t for s, t in zip(suffixes, tails)]
            head = self._prefix_part(prefix)
            fulls = tok(texts, add_special_tokens=False)["input_ids"]
            if head is None:
                return [([], list(f)) for f in fulls]
            pre = self._ids(head, special=False)
            ok = [t.startswith(head) for t in texts]
        else:
            fulls = tok([prefix + s + t for s, t in zip(suffixes, tails)], add_special_tokens=True)[
                "input_ids"
            ]
            pre = self._ids(prefix, special=True)
            specials = set(tok.all_special_ids)
            while pre and pre[-1] in specials and len(pre) > 1:
                pre.pop()
            ok = [True] * len(suffixes)
        # BPE merges across the prefix/suffix boundary ("\n" + "\n#" -> "\n\n", "#")
        # make the prefix's own last tokens differ from the full sequence's: back off
        # up to BOUNDARY_BACKOFF tokens to the longest true common prefix. All items
        # share the shortest such prefix, so one KV cache serves them all and every
        # token sequence is exactly the one scored without reuse.
        rows = [list(f) for f in fulls]
        keep: list[int | None] = []
        for full, good in zip(rows, ok):
            n = None
            if good and pre:
                for k in range(min(BOUNDARY_BACKOFF, len(pre) - 1) + 1):
                    m = len(pre) - k
                    if full[:m] == pre[:m]:
                        n = m
                        break
            keep.append(n)
        cut = min((n for n in keep if n is not None), default=0)
        out: list[tuple[list[int], list[int]]] = []
        for full, n in zip(rows, keep):
            if n is not None and cut > 0:
                out.append((pre[:cut], full[cut:]))
            else:
                out.append(([], full))
        return out

    def _fit(self, pre: list[int], rest: list[int]) -> list[int]:
        """Truncate the middle of ``rest`` so prefix + rest fits ``max_length``."""
        return fit_middle(pre, rest, self.max_length, NAME)

    def _split(
        self,
        prefix: str,
        suffixes: Sequence[str],
        reuse: bool,
        tails: Sequence[str] | None = None,
    ) -> tuple[list[int], list[list[int]], list[bool]]:
        """(shared prefix ids, per-item ids after it or full ids, per-item reuse flag)."""
        shared: list[int] = []
        rows: list[list[int]] = []
        flags: list[bool] = []
        for pre, rest in self.encode_many(prefix, suffixes, tails):
            if reuse and pre and (not shared or pre == shared):
                shared = shared or pre
                rows.append(self._fit(pre, rest))
                flags.append(True)
            else:
                rows.append(pre + self._fit(pre, rest) if pre else self._fit([], rest))
                flags.append(False)
        return shared, rows, flags

    # ------------------------------------------------------------------ forward passes

    def _get_prefix_cache(self, ids: list[int]) -> tuple[Any, Any]:
        """(cache, last-position logits) of the shared prefix; memoised for one prefix."""
        import torch

        key = tuple(ids)
        if self._prefix_cache is not None and self._prefix_cache[0] == key:
            return self._prefix_cache[1], self._prefix_cache[2]
        x = torch.tensor([ids], device=self._device)
        with torch.inference_mode():
            out = self._forward(
                x, torch.ones_like(x), torch.arange(len(ids), device=x.device)[None]
            )
        cache = _cache_of(out)
        logits = out.logits[:, -1].float()
        self._prefix_cache = (key, cache, logits)
        return cache, logits

    @staticmethod
    def _expand(cache: Any, n: int) -> Any:
        """A per-batch cache: the prefix's keys/values broadcast to ``n`` rows (no copy)."""
        from transformers.cache_utils import DynamicLayer

        layers = getattr(cache, "layers", None)
        if layers is None or not all(isinstance(layer, DynamicLayer) for layer in layers):
            fresh = copy.deepcopy(cache)
            fresh.batch_repeat_interleave(n)
            return fresh
        fresh = copy.copy(cache)
        fresh.layers = []
        for layer in layers:
            new = copy.copy(layer)
            if getattr(layer, "is_initialized", False) and layer.keys is not None:
                new.keys = layer.keys.expand(n, *layer.keys.shape[1:])
                new.values = layer.values.expand(n, *layer.values.shape[1:])
            fresh.layers.append(new)
        return fresh

    def _forward(
        self, ids: Any, mask: Any, pos: Any, cache: Any = None, *, use_cache: bool = True
    ) -> Any:
        kw: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": pos,
            "use_cache": use_cache,
        }
        if cache is not None:
            kw[self._cache_kw] = cache
        if self._keep_kw:
            kw["logits_to_keep"] = 1
        return self._model(**kw)

    def _prefill(
        self, rows: Sequence[list[int]], prefix: list[int], *, use_cache: bool = True
    ) -> Any:
        """Left-padded batch forward, after the shared prefix's cache when ``prefix``
        (``use_cache=False``: scoring only, no KV cache kept for the batch's own tokens)."""
        import torch

        n, width = len(rows), max(len(r) for r in rows)
        pad = int(self._tokenizer().pad_token_id or 0)
        ids = torch.full((n, width), pad, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                ids[i, width - len(r) :] = torch.tensor(r)
                mask[i, width - len(r) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = None
        if prefix:
            base, _ = self._get_prefix_cache(prefix)
            cache = self._expand(base, n)
            pos = pos + len(prefix)
            mask = torch.cat([torch.ones((n, len(prefix)), dtype=torch.long), mask], dim=1)
        dev = self._device
        out = self._forward(
            ids.to(dev), mask.to(dev), pos.to(dev), cache, use_cache=use_cache or bool(prefix)
        )
        return out, mask.to(dev), pos[:, -1].to(dev)

    # ------------------------------------------------------------------ label probabilities

    def _candidate_ids(self, candidates: dict[str, Sequence[str]]) -> dict[str, list[int]]:
        tok = self._tokenizer()
        return candidate_token_ids(
            candidates, lambda t: self._ids(t, special=False), tok.convert_ids_to_tokens
        )

    def next_token_probs(
        self,
        prefix: str,
        suffixes: Sequence[str],
        candidates: dict[str, Sequence[str]],
        *,
        batch_size: int = 8,
        reuse_prefix: bool = True,
    ) -> list[dict[str, float]]:
        """Per item, each candidate label's probability at the answer position.

        A label's mass is the sum of the next-token probabilities of the first tokens of
        its strings; masses are renormalised over the labels, and their raw sum comes
        back under ``"_raw_total"`` (how much of the distribution the labels cover).
        One forward pass per item; with ``reuse_prefix`` the prefix's KV cache is
        computed once and shared by every item and batch.
        """
        import torch

        self.load()
        cand = self._candidate_ids(candidates)
        labels = list(cand)
        shared, rows, flags = self._split(prefix, suffixes, reuse_prefix)
        out: list[dict[str, float] | None] = [None] * len(rows)

        def score(idx: list[int], logits: Any) -> None:
            logp = torch.log_softmax(logits.float(), dim=-1)
            per = torch.stack(
                [torch.logsumexp(logp[:, cand[lab]], dim=-1) for lab in labels], dim=-1
            )
            total = torch.logsumexp(per, dim=-1, keepdim=True)
            norm = torch.exp(per - total).cpu().tolist()
            raw = torch.exp(total[:, 0]).cpu().tolist()
            for j, i in enumerate(idx):
                d = {lab: float(norm[j][k]) for k, lab in enumerate(labels)}
                d["_raw_total"] = float(min(1.0, raw[j]))
                out[i] = d

        with self._lock, torch.inference_mode():
            for use in (True, False):
                todo = [i for i, f in enumerate(flags) if f is use]
                if use and todo:
                    empty = [i for i in todo if not rows[i]]
                    if empty:  # the suffix added no tokens: answer right after the prefix
                        _, last = self._get_prefix_cache(shared)
                        score(empty, last.expand(len(empty), -1))
                    todo = [i for i in todo if rows[i]]
                if not todo:
                    continue
                lengths = [len(rows[i]) for i in todo]
                for mb in length_batches(
                    lengths, max_batch=batch_size, max_tokens=batch_size * self.max_length
                ):
                    idx = [todo[j] for j in mb]
                    res, _, _ = self._prefill(
                        [rows[i] for i in idx], shared if use else [], use_cache=False
                    )
                    score(idx, res.logits[:, -1])
        return [o if o is not None else {} for o in out]

    # ------------------------------------------------------------------ generation

    def generate(
        self,
        prefix: str,
        suffixes: Sequence[str],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        num_samples: int = 1,
        seed: int = 0,
        batch_size: int = 4,
        stop: Sequence[str] = (),
        continuations: Sequence[str] | None = None,
    ) -> list[list[GenOut]]:
        """Continuations per item: greedy when ``temperature == 0``, else seeded sampling.

        ``num_samples`` continuations per item (self-consistency); each (item, sample)
        draws from its own generator seeded from ``seed``, the item's suffix and the
        sample index, so results do not depend on batch composition. ``batch_size``
        counts items (a batch holds ``batch_size * num_samples`` sequences). The shared
        prefix's KV cache is reused as in :meth:`next_token_probs`. ``continuations``
        (one per suffix) prefill the start of the answer; the returned text is what
        the model wrote after it.
        """
        import torch

        if max_new_tokens < 1 or num_samples < 1:
            raise ValueError("max_new_tokens and num_samples must be >= 1")
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError("temperature must be >= 0 and 0 < top_p <= 1")
        self.load()
        shared, rows, flags = self._split(prefix, suffixes, True, continuations)
        results: list[list[GenOut]] = [[] for _ in rows]
        with self._lock, torch.inference_mode():
            for use in (True, False):
                todo = [i for i, f in enumerate(flags) if f is use]
                lengths = [len(rows[i]) for i in todo]
                for mb in length_batches(
                    lengths, max_batch=batch_size, max_tokens=batch_size * self.max_length
                ):
                    idx = [todo[j] for j in mb]
                    seqs = [(i, k) for i in idx for k in range(num_samples)]
                    gens = self._decode(
                        [rows[i] or [] for i, _ in seqs],
                        shared if use else [],
                        [_seed_for(seed, suffixes[i], k) for i, k in seqs],
                        max_new_tokens=max_new_tokens,
                        temperature=temperature,
                        top_p=top_p,
                        stop=tuple(stop),
                    )
                    for (i, _), g in zip(seqs, gens):
                        results[i].append(g)
        return results

    def _decode(
        self,
        rows: list[list[int]],
        prefix: list[int],
        seeds: list[int],
        *,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        stop: tuple[str, ...],
    ) -> list[GenOut]:
        import torch

        tok = self._tokenizer()
        if any(not r for r in rows):  # empty suffix after the prefix: feed no gap
            prefix, rows = [], [prefix + r for r in rows]
        out, mask, last_pos = self._prefill(rows, prefix)
        cache = _cache_of(out)
        n = len(rows)
        gens = None
        if temperature > 0:
            gens = []
            for s in seeds:
                g = torch.Generator(device=self._device)
                g.manual_seed(s)
                gens.append(g)
        toks: list[list[int]] = [[] for _ in range(n)]
        lps: list[list[float]] = [[] for _ in range(n)]
        texts: list[str | None] = [None] * n
        done = [False] * n
        logits = out.logits[:, -1].float()
        for step in range(max_new_tokens):
            logp = torch.log_softmax(logits, dim=-1)
            if gens is None:
                nxt = logp.argmax(dim=-1)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                if top_p < 1.0:
                    sp, si = probs.sort(dim=-1, descending=True)
                    drop = (sp.cumsum(-1) - sp) >= top_p
                    sp = sp.masked_fill(drop, 0.0)
                    probs = torch.zeros_like(probs).scatter(-1, si, sp)
                nxt = torch.stack(
                    [torch.multinomial(probs[r], 1, generator=gens[r])[0] for r in range(n)]
                )
            chosen = logp.gather(-1, nxt[:, None])[:, 0].cpu().tolist()
            ids = nxt.cpu().tolist()
            for r in range(n):
                if done[r]:
                    continue
                if ids[r] in self._eos:
                    done[r] = True
                    continue
                toks[r].append(ids[r])
                lps[r].append(float(chosen[r]))
                if stop:
                    text = tok.decode(toks[r], skip_special_tokens=True)
                    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
                    if cut >= 0:
                        texts[r], done[r] = text[:cut], True
            if all(done) or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=mask.device)], 1)
            last_pos = last_pos + 1
            res = self._forward(nxt[:, None], mask, last_pos[:, None], cache)
            cache = _cache_of(res)
            logits = res.logits[:, -1].float()
        outs = []
        for r in range(n):
            text = texts[r]
            if text is None:
                text = tok.decode(toks[r], skip_special_tokens=True)
            lp = [x if math.isfinite(x) else -1e30 for x in lps[r]]
            outs.append(
                GenOut(
                    text=text,
                    n_tokens=len(toks[r]),
                    finish_reason="stop" if done[r] else "length",
                    token_logprobs=lp,
                )
            )
        return outs
