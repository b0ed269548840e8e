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
every prompt before running any), the items are retried one by one and the ones that
still fail come back as :class:`ItemError` values (``kind="engine_error"``) in the
result lists, never raised and never turned into a label. A response without the
expected log-probs is an ``ItemError`` with ``kind="bad_response"``.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import sys
import threading
from collections.abc import Sequence
from typing import Any

from audit.errors import ModeratorError
from audit.moderators.judge.backends._common import (
    KEEP_TAIL,
    GenOut,
    ItemError,
    _seed_for,
    candidate_token_ids,
    check_settings,
    fit_middle,
    import_optional,
    label_probs,
    split_encode,
    template_sha256,
)

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


class VLLMBackend:
    """vLLM offline engine: exact label-token probabilities and seeded generation."""

    backend = "vllm"

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
        self.model = model
        self.revision = revision
        self.dtype = dtype
        self.max_length = max_length
        self.use_chat_template = chat_template
        self.seed = seed
        self.gpu_memory_utilization = gpu_memory_utilization
        self.tensor_parallel_size = tensor_parallel_size
        self.max_model_len = max_model_len
        self._lock = threading.RLock()
        self._vllm: Any = None
        self._llm: Any = None
        self._tok: Any = None
        self._fingerprint: dict[str, Any] | None = None
        self._prefix_text: dict[str, str | None] = {}

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

    @property
    def has_chat_template(self) -> bool:
        return self.use_chat_template and bool(getattr(self._tokenizer(), "chat_template", None))

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes outputs (not the GPU, batch size or memory share)."""
        with self._lock:
            if self._fingerprint is None:
                vllm = self._import()
                tok = self._tokenizer()
                template = getattr(tok, "chat_template", None)
                used = template if (self.use_chat_template and template) else None
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

    def _ids(self, text: str, *, special: bool) -> list[int]:
        return list(self._tokenizer().encode(text, add_special_tokens=special))

    def encode(self, prefix: str, suffix: str) -> tuple[list[int], list[int]]:
        """(shared prefix ids, rest) as in ``HFBackend.encode``; prefix empty if not a true one."""
        return split_encode(
            prefix,
            suffix,
            render=self._render if self.has_chat_template else None,
            ids=self._ids,
            specials=set(getattr(self._tokenizer(), "all_special_ids", ()) or ()),
            heads=self._prefix_text,
        )

    def prompt_ids(self, prefix: str, suffix: str) -> list[int]:
        """The token ids submitted for one item (truncated to ``max_length``)."""
        pre, rest = self.encode(prefix, suffix)
        return pre + fit_middle(pre, rest, self.max_length, NAME)

    # ------------------------------------------------------------------ engine calls

    def _run(self, prompts: list[list[int]], params: list[Any]) -> list[Any]:
        """``LLM.generate`` on token prompts; per-request fallback → ItemError on failure."""
        if not prompts:
            return []
        llm = self._llm
        reqs = [{"prompt_token_ids": p} for p in prompts]
        try:
            return list(llm.generate(reqs, params, use_tqdm=False))
        except (ValueError, RuntimeError, TypeError) as batch_exc:
            if len(reqs) == 1:
                return [ItemError("engine_error", f"{type(batch_exc).__name__}: {batch_exc}")]
        outs: list[Any] = []
        for r, p in zip(reqs, params):
            try:
                outs.append(llm.generate([r], [p], use_tqdm=False)[0])
            except (ValueError, RuntimeError, TypeError) as exc:
                outs.append(ItemError("engine_error", f"{type(exc).__name__}: {exc}", attempts=2))
        return outs

    # ------------------------------------------------------------------ label probabilities

    def next_token_probs(
        self,
        prefix: str,
        suffixes: Sequence[str],
        candidates: dict[str, Sequence[str]],
        *,
        batch_size: int = 8,
        reuse_prefix: bool = True,
    ) -> list[dict[str, float] | ItemError]:
        """Per item, each candidate label's probability at the answer position (exact).

        ``batch_size`` and ``reuse_prefix`` are accepted for interface compatibility:
        vLLM schedules the whole list itself and reuses the prefix through automatic
        prefix caching.
        """
        del batch_size, reuse_prefix
        with self._lock:
            self.load()
            vllm = self._vllm
            tok = self._tok
            cand = candidate_token_ids(
                candidates,
                lambda s: self._ids(s, special=False),
                lambda t: str(tok.convert_ids_to_tokens(t)),
            )
            wanted = [t for ids in cand.values() for t in ids]
            prompts = [self.prompt_ids(prefix, s) for s in suffixes]
            first = vllm.SamplingParams(
                max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS, detokenize=False
            )
            got: list[dict[int, float] | ItemError] = []
            for res in self._run(prompts, [first] * len(prompts)):
                if isinstance(res, ItemError):
                    got.append(res)
                    continue
                try:
                    step = res.outputs[0].logprobs[0]
                    got.append({int(t): float(lp.logprob) for t, lp in step.items()})
                except (AttributeError, IndexError, KeyError, TypeError) as exc:
                    got.append(ItemError("bad_response", f"no logprobs in the output: {exc!r}"))
            # exact fallback for candidate tokens outside the top-k
            todo = [
                (i, t)
                for i, g in enumerate(got)
                if isinstance(g, dict)
                for t in wanted
                if t not in g
            ]
            if todo:
                extra = vllm.SamplingParams(
                    max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False
                )
                fallback = self._run([prompts[i] + [t] for i, t in todo], [extra] * len(todo))
                for (i, t), res in zip(todo, fallback):
                    g = got[i]
                    if not isinstance(g, dict):
                        continue  # an earlier fallback of this item failed
                    if isinstance(res, ItemError):
                        got[i] = res
                        continue
                    try:
                        g[t] = float(res.prompt_logprobs[-1][t].logprob)
                    except (AttributeError, IndexError, KeyError, TypeError) as exc:
                        got[i] = ItemError(
                            "bad_response", f"no prompt logprob for token {t}: {exc!r}"
                        )
            out: list[dict[str, float] | ItemError] = []
            for g in got:
                if isinstance(g, ItemError):
                    out.append(g)
                else:
                    out.append(label_probs(cand, g.__getitem__))
            return out

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
    ) -> list[list[GenOut | ItemError]]:
        """Continuations per item: greedy when ``temperature == 0``, else seeded sampling.

        Sample ``k`` of item ``i`` is its own request seeded from ``seed``, the item's
        suffix and ``k`` (31 bits of ``HFBackend``'s seed), so it is reproducible and
        independent of batching. ``batch_size`` is accepted and ignored (vLLM batches).
        """
        del batch_size
        if max_new_tokens < 1 or num_samples < 1:
            raise ValueError("max_new_tokens and num_samples must be >= 1")
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError("temperature must be >= 0 and 0 < top_p <= 1")
        with self._lock:
            self.load()
            vllm = self._vllm
            prompts: list[list[int]] = []
            params: list[Any] = []
            for s in suffixes:
                ids = self.prompt_ids(prefix, s)
                for k in range(num_samples):
                    prompts.append(ids)
                    kw: dict[str, Any] = {
                        "n": 1,
                        "max_tokens": int(max_new_tokens),
                        "temperature": float(temperature),
                        "top_p": float(top_p) if temperature > 0 else 1.0,
                        "logprobs": 0,
                        "skip_special_tokens": True,
                    }
                    if temperature > 0:
                        kw["seed"] = _seed_for(seed, s, k) & 0x7FFFFFFF
                    if stop:
                        kw["stop"] = list(stop)
                    params.append(vllm.SamplingParams(**kw))
            flat = [self._gen_out(r) for r in self._run(prompts, params)]
        return [flat[i * num_samples : (i + 1) * num_samples] for i in range(len(suffixes))]

    @staticmethod
    def _gen_out(res: Any) -> GenOut | ItemError:
        if isinstance(res, ItemError):
            return res
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
