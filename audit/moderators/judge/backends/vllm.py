"""vLLM offline-engine backend for the LLM judge (``vllm.LLM``, one process, GPU).

:class:`VLLMBackend` has the interface of
:class:`~audit.moderators.judge.backends.hf.HFBackend`: :meth:`next_token_probs`,
:meth:`generate`, :meth:`fingerprint`, :meth:`close`. ``vllm`` is imported lazily (on
the first scoring call, or :meth:`load`); without it a :class:`~audit.errors.ModeratorError`
names the fix.

Prompts are rendered exactly as the transformers backend renders them: ``prefix +
suffix`` as one user turn through the tokenizer's chat template plus the generation
prompt (or plain ``prefix + suffix`` with the tokenizer's special tokens when
``chat_template=False`` or the model has none), tokenised here and submitted as token
ids (``{"prompt_token_ids": ...}``, a ``TokensPrompt``) so vLLM adds nothing. Items
longer than ``max_length`` tokens are cut in the middle of the item part, keeping the
last :data:`~audit.moderators.judge.backends.hf.KEEP_TAIL` tokens, as in ``HFBackend``.

Prefix reuse is vLLM's automatic prefix caching (``enable_prefix_caching=True``): every
prompt starts with the same policy tokens, so their KV blocks are computed once and
shared. ``reuse_prefix`` is accepted for interface compatibility and ignored.

Label probabilities — exact, never a top-k guess
------------------------------------------------
Per item one request with ``max_tokens=1, temperature=0, logprobs=20``: vLLM returns
the raw (temperature 1, unprocessed) log-probs of the 20 most likely next tokens plus
the sampled one (``logprobs_mode="raw_logprobs"`` is set explicitly on the engine;
needs vLLM >= 0.10.2). Every value in that list is an
exact log-probability. A candidate token *not* in the list is then measured exactly by
a second request on ``prompt + [candidate]`` with ``prompt_logprobs=1``: the prompt
log-prob of that last token is ``log p(candidate | prompt)``. (vLLM skips the prefix
cache *read* for prompt-logprob requests, so such a fallback recomputes its prompt;
it is needed only when a label token is outside the top 20.) Candidate strings map to
their first token, labels to the sum of their tokens' probabilities, renormalised over
the labels, with the raw sum under ``"_raw_total"`` — exactly as in ``HFBackend``.

Generation
----------
One request per (item, sample), each with its own seed derived from ``seed``, the item
text and the sample index (as ``HFBackend``), so results do not depend on batching.
``GenOut.token_logprobs`` are the sampled tokens' raw log-probs (``logprobs=0``);
a final EOS / stop token is not counted (``n_tokens``, ``token_logprobs``).

Failures
--------
A batch is submitted as one ``LLM.generate`` call. If vLLM rejects it (it validates
every prompt before running any), the shared loop of
:class:`~audit.moderators.judge.backends.base.BackendLoops` retries the items one by
one and the ones that still fail come back as :class:`ItemError` values
(``kind="engine_error"``) in the result lists, never raised and never turned into a
label. A response without the expected log-probs is an ``ItemError`` with
``kind="bad_response"``.

The loops themselves (batching, truncation, prefix split, seeding, renormalisation)
live in :mod:`audit.moderators.judge.backends.base`; this module holds only the
engine primitives.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

from audit.errors import ModeratorError
from audit.moderators.judge.backends._common import (
    KEEP_TAIL,
    GenOut,
    ItemError,
    check_settings,
    import_optional,
    template_sha256,
)
from audit.moderators.judge.backends.base import (
    GenSettings,
    HFTokenizerHooks,
    Prompt,
    TokenBackend,
)
from audit.moderators.judge.backends.vllm_media import VLLMMediaMixin

__all__ = ["GenOut", "ItemError", "VLLMBackend"]

NAME = "judge.vllm"
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: top log-probs asked for at the answer position (vLLM's default ``max_logprobs``)
TOP_LOGPROBS = 20
INSTALL_FIX = (
    "install vLLM on a CUDA machine into the same environment (pip install vllm; it "
    "brings its own torch build), or use backend: transformers / llama_cpp / openai_compat"
)


# --------------------------------------------------------------------------- backend


class VLLMBackend(VLLMMediaMixin, HFTokenizerHooks, TokenBackend):
    """vLLM offline engine: exact label-token probabilities and seeded generation."""

    backend: ClassVar[str] = "vllm"
    where: ClassVar[str] = NAME
    engine_errors: ClassVar[tuple[type[Exception], ...]] = (ValueError, RuntimeError, TypeError)

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        dtype: str = "auto",
        max_length: int = 4096,
        chat_template: bool = True,
        seed: int = 0,
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        allow_pickle: bool = False,
        media: bool = False,
    ) -> None:
        check_settings(
            NAME,
            dtype,
            DTYPES,
            "use dtype: auto (the checkpoint's dtype, float16 for float32 weights)",
            max_length,
        )
        if not 0 < gpu_memory_utilization <= 1:
            raise ModeratorError(
                "gpu_memory_utilization must be in (0, 1]",
                where=NAME,
                field="params.gpu_memory_utilization",
                expected="e.g. 0.9",
                actual=repr(gpu_memory_utilization),
            )
        if tensor_parallel_size < 1:
            raise ModeratorError(
                "tensor_parallel_size must be >= 1",
                where=NAME,
                field="params.tensor_parallel_size",
                expected=">= 1",
                actual=repr(tensor_parallel_size),
            )
        super().__init__()
        self.model = model
        self.revision = revision
        self.dtype = dtype
        self.max_length = max_length
        self.use_chat_template = chat_template
        self.seed = seed
        self.gpu_memory_utilization = gpu_memory_utilization
        self.tensor_parallel_size = tensor_parallel_size
        self.max_model_len = max_model_len
        # pickle-only checkpoints are refused unless the user opts in
        self.allow_pickle = allow_pickle
        self.media = media
        self._proc: Any = None
        self._vllm: Any = None
        self._llm: Any = None
        self._tok: Any = None
        self._fingerprint: dict[str, Any] | None = None

    # ------------------------------------------------------------------ loading

    def _import(self) -> Any:
        if self._vllm is None:
            self._vllm = import_optional(
                "vllm",
                NAME,
                "the vllm backend needs the vllm package",
                "vllm installed (CUDA machine)",
                INSTALL_FIX,
            )
        return self._vllm

    def load(self) -> None:
        """Start the engine (idempotent; scoring calls it)."""
        with self._lock:
            if self._llm is not None:
                return
            vllm = self._import()
            kw: dict[str, Any] = {
                "model": self.model,
                "revision": self.revision,
                "tokenizer_revision": self.revision,
                "dtype": self.dtype,
                "seed": self.seed,
                "gpu_memory_utilization": self.gpu_memory_utilization,
                "tensor_parallel_size": self.tensor_parallel_size,
                "enable_prefix_caching": True,
                "max_logprobs": TOP_LOGPROBS,
                # log-probs of the raw model output (before temperature, penalties,
                # allowed-token masks): the label probabilities and GenOut.token_logprobs
                "logprobs_mode": "raw_logprobs",
            }
            if self.max_model_len is not None:
                kw["max_model_len"] = self.max_model_len
            kw.update(self._load_format())
            try:
                llm = vllm.LLM(**kw)
            except (OSError, ValueError, RuntimeError) as exc:
                raise ModeratorError(
                    f"vLLM cannot load the model: {type(exc).__name__}: {exc}",
                    where=NAME,
                    field="params.model",
                    expected="a causal LM vLLM supports (local dir or cached hub id)",
                    actual=repr(self.model),
                    fix="check params.model / dtype / gpu_memory_utilization / max_model_len",
                ) from exc
            self._llm = llm
            self._tok = llm.get_tokenizer()

    def _load_format(self) -> dict[str, Any]:
        """vLLM loading options: no remote code, and safetensors only (vLLM's
        ``auto`` falls back to ``.bin``/``.pt`` pickles) unless ``allow_pickle``; a
        local pickle-only folder is refused up front with the shared message."""
        from pathlib import Path

        from audit.moderators._torch import safe_load_kwargs

        kw: dict[str, Any] = {"trust_remote_code": False}
        local = Path(self.model).expanduser()
        if self.model.endswith(".gguf"):
            return kw  # GGUF: vLLM picks its GGUF loader from the file
        if local.is_dir():
            safe_load_kwargs(local, allow_pickle=self.allow_pickle, where=NAME)
        if not self.allow_pickle:
            kw["load_format"] = "safetensors"
        return kw

    def _tokenizer(self) -> Any:
        self.load()
        return self._tok

    def close(self) -> None:
        """Shut the engine down and free GPU memory (best effort)."""
        with self._lock:
            llm, self._llm, self._tok = self._llm, None, None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None) or getattr(
            getattr(engine, "engine_core", None), "shutdown", None
        )
        if callable(shutdown):
            with contextlib.suppress(Exception):  # best effort on teardown
                shutdown()
        del llm
        gc.collect()
        torch = sys.modules.get("torch")  # vLLM imported it; never import it here
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ fingerprint

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes outputs (not the GPU, batch size or memory share)."""
        with self._lock:
            if self._fingerprint is None:
                vllm = self._import()
                used = self._used_template()
                config = getattr(getattr(self._llm, "llm_engine", None), "model_config", None)
                self._fingerprint = {
                    "backend": self.backend,
                    "model": self.model,
                    "revision": self.revision,
                    "dtype": str(getattr(config, "dtype", self.dtype)).removeprefix("torch."),
                    "chat_template": used is not None,
                    "chat_template_sha256": template_sha256(used),
                    "max_length": self.max_length,
                    "max_model_len": getattr(config, "max_model_len", self.max_model_len),
                    "truncation": f"suffix-middle, keep last {KEEP_TAIL}",
                    "label_probs": f"exact: top-{TOP_LOGPROBS} logprobs + prompt_logprobs",
                    "seed": self.seed,
                    "tensor_parallel_size": self.tensor_parallel_size,
                    "vllm": str(getattr(vllm, "__version__", None)),
                }
                if self.media:  # text checkpoints keep their fingerprint
                    self._fingerprint["media"] = "prompt + multi_modal_data (PIL images)"
            return copy.deepcopy(self._fingerprint)

    # ------------------------------------------------------------------ token hooks

    def _ids(self, text: str, *, special: bool) -> list[int]:
        return list(self._tokenizer().encode(text, add_special_tokens=special))

    def _specials(self) -> set[int]:
        return set(getattr(self._tokenizer(), "all_special_ids", ()) or ())

    # ------------------------------------------------------------------ engine primitives

    def _submit(self, prompts: Sequence[list[int] | Prompt], params: list[Any]) -> list[Any]:
        """One ``LLM.generate`` call (raises when vLLM rejects it): token prompts, or
        for an item with images vLLM's documented multimodal input, the text prompt
        with ``multi_modal_data={"image": ...}`` (vLLM expands the image tokens)."""
        if not prompts:
            return []
        reqs = [self._request(p) for p in prompts]
        return list(self._llm.generate(reqs, params, use_tqdm=False))

    @staticmethod
    def _request(p: list[int] | Prompt) -> dict[str, Any]:
        if isinstance(p, Prompt) and p.media is not None:
            text, images = p.media
            return {
                "prompt": text,
                "multi_modal_data": {"image": images[0] if len(images) == 1 else list(images)},
            }
        return {"prompt_token_ids": p.ids if isinstance(p, Prompt) else p}

    def _label_logprobs(
        self, prompts: Sequence[Prompt], cand: dict[str, list[int]], reuse: bool
    ) -> list[dict[int, float] | ItemError]:
        """Exact log-probs of every candidate token: the top-k list, then a
        ``prompt_logprobs`` request for each candidate outside it. ``reuse`` is vLLM's
        own automatic prefix caching."""
        del reuse
        if any(p.media is not None for p in prompts):
            return self._media_logprobs(prompts, cand)
        vllm = self._vllm
        ids = [p.ids for p in prompts]
        first = vllm.SamplingParams(
            max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS, detokenize=False
        )
        got: list[dict[int, float] | ItemError] = []
        for res in self._submit(ids, [first] * len(ids)):
            try:
                step = res.outputs[0].logprobs[0]
                got.append({int(t): float(lp.logprob) for t, lp in step.items()})
            except (AttributeError, IndexError, KeyError, TypeError) as exc:
                got.append(ItemError("bad_response", f"no logprobs in the output: {exc!r}"))
        wanted = self._wanted(cand)
        todo = [
            (j, t) for j, g in enumerate(got) if isinstance(g, dict) for t in wanted if t not in g
        ]
        if todo:
            extra = vllm.SamplingParams(
                max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False
            )
            fallback = self._submit([ids[j] + [t] for j, t in todo], [extra] * len(todo))
            for (j, t), res in zip(todo, fallback):
                g = got[j]
                if not isinstance(g, dict):
                    continue  # an earlier token of this item had no prompt logprob
                try:
                    g[t] = float(res.prompt_logprobs[-1][t].logprob)
                except (AttributeError, IndexError, KeyError, TypeError) as exc:
                    got[j] = ItemError("bad_response", f"no prompt logprob for token {t}: {exc!r}")
        return got

    def _generate_batch(
        self, prompts: Sequence[Prompt], seeds: Sequence[int], settings: GenSettings
    ) -> list[GenOut | ItemError]:
        """One request per (item, sample); vLLM takes 31-bit seeds."""
        params: list[Any] = []
        for seed in seeds:
            kw: dict[str, Any] = {
                "n": 1,
                "max_tokens": settings.max_new_tokens,
                "temperature": settings.temperature,
                "top_p": 1.0 if settings.greedy else settings.top_p,
                "logprobs": 0,
                "skip_special_tokens": True,
            }
            if not settings.greedy:
                kw["seed"] = seed & 0x7FFFFFFF
            if settings.stop:
                kw["stop"] = list(settings.stop)
            params.append(self._vllm.SamplingParams(**kw))
        out: list[GenOut | ItemError] = [
            p.media if isinstance(p.media, ItemError) else ItemError("bad_response", "no output")
            for p in prompts
        ]
        live = [j for j, p in enumerate(prompts) if not isinstance(p.media, ItemError)]
        got = self._submit([prompts[j] for j in live], [params[j] for j in live])
        for j, r in zip(live, got):
            out[j] = self._gen_out(r)
        return out

    @staticmethod
    def _gen_out(res: Any) -> GenOut | ItemError:
        try:
            c = res.outputs[0]
            ids = list(c.token_ids)
            lps: list[float] = []
            for pos, t in zip(c.logprobs or [], ids):
                lp = float(pos[t].logprob)
                lps.append(lp if math.isfinite(lp) else -1e30)
            reason = str(c.finish_reason or "length")
            stop_reason = getattr(c, "stop_reason", None)
            # EOS (stop_reason None) or a stop token id (int) is the last token: not counted
            if ids and reason == "stop" and (stop_reason is None or isinstance(stop_reason, int)):
                ids = ids[:-1]
                lps = lps[: len(ids)]
            return GenOut(
                text=str(c.text),
                n_tokens=len(ids),
                finish_reason=reason,  # type: ignore[arg-type]  # "stop" / "length" (or "abort")
                token_logprobs=lps if c.logprobs is not None else None,
            )
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            return ItemError("bad_response", f"unexpected generation output: {exc!r}")
