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
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from audit.errors import ModeratorError
from audit.moderators._torch import (
    length_batches,
    looks_like_path,
    model_files_digest,
    package_version,
    sha256_file,
)
from audit.moderators.judge.backends._common import (
    BOUNDARY_BACKOFF,
    KEEP_TAIL,
    SUFFIX_SENTINEL,
    GenOut,
    ItemError,
    Suffix,
    check_settings,
    template_sha256,
)
from audit.moderators.judge.backends.base import (
    GenSettings,
    HFTokenizerHooks,
    Prompt,
    TokenBackend,
)
from audit.moderators.judge.backends.hf_loading import NAME, HFLoader
from audit.moderators.judge.backends.hf_media import HFMediaMixin

__all__ = ["BOUNDARY_BACKOFF", "KEEP_TAIL", "GenOut", "HFBackend"]

#: ``auto``: bf16 on a bf16-capable GPU, else float32; ``fast``: also bf16 on CPUs
#: with native bf16 matmul (AMX / AVX512-BF16), ~2x faster there, scores within bf16
#: rounding of float32
DTYPES = ("auto", "fast", "float32", "bfloat16", "float16")


def _cache_of(out: Any) -> Any:
    """The KV cache of a model output (``cache`` in transformers 5, else the old name)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


class HFBackend(HFMediaMixin, HFLoader, HFTokenizerHooks, TokenBackend):
    """transformers causal LM: label-token probabilities and generation.

    Loading lives in :class:`~audit.moderators.judge.backends.hf_loading.HFLoader`,
    the scoring loops in :class:`~audit.moderators.judge.backends.base.TokenBackend`;
    this class holds encoding, the forward passes and decoding.
    """

    backend: ClassVar[str] = "transformers"
    where: ClassVar[str] = NAME

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
        allow_pickle: bool = False,
        media: bool = False,
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
        TokenBackend.__init__(self)
        self.model = model
        self.revision = revision
        self.gguf_file = gguf_file
        self.dtype = dtype
        self.device = device
        self.attn_implementation = attn_implementation
        self.max_length = max_length
        self.use_chat_template = chat_template
        # pickle-only checkpoints (.bin/.pt) are refused unless the user opts in
        self.allow_pickle = allow_pickle
        self.media = media
        self._proc: Any = None
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
        self._prefix_cache: tuple[tuple[int, ...], Any, Any] | None = None

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
                used = self._used_template()
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
                    "chat_template_sha256": template_sha256(used),
                    "max_length": self.max_length,
                    "truncation": f"suffix-middle, keep last {KEEP_TAIL}",
                    "transformers": package_version("transformers"),
                }
                if self.media:  # text checkpoints keep their fingerprint
                    self._fingerprint["media"] = "AutoProcessor + AutoModelForImageTextToText"
            return copy.deepcopy(self._fingerprint)

    # ------------------------------------------------------------------ encoding

    def _prefix_part(self, prefix: str) -> str | None:
        """Rendered text before the prefix's end, or ``None`` if the template hides it."""
        if prefix not in self._heads:
            rendered = self._render(prefix + SUFFIX_SENTINEL)
            idx = rendered.find(SUFFIX_SENTINEL)
            self._heads[prefix] = rendered[:idx] if idx >= 0 else None
        return self._heads[prefix]

    def _ids(self, text: str, *, special: bool) -> list[int]:
        return list(self._tokenizer()(text, add_special_tokens=special)["input_ids"])

    def _load_tokenizer(self) -> None:
        self._tokenizer()  # encoding needs the tokenizer only, not the weights

    def _specials(self) -> set[int]:
        return set(self._tokenizer().all_special_ids)

    def _encode_many(
        self, prefix: str, suffixes: Sequence[str], tails: Sequence[str] | None
    ) -> list[tuple[list[int], list[int]]]:
        return self.encode_many(prefix, suffixes, tails)

    def encode_many(
        self, prefix: str, suffixes: Sequence[str], tails: Sequence[str] | None = None
    ) -> list[tuple[list[int], list[int]]]:
        """:meth:`encode` for many suffixes, tokenized in one batched tokenizer call
        (the tokenizer-specific override of the shared per-item split).

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

    # ------------------------------------------------------------------ engine primitives

    def _prepare(
        self,
        prefix: str,
        suffixes: Sequence[Suffix],
        *,
        reuse: bool,
        max_new_tokens: int | None,
        tails: Sequence[str] | None,
    ) -> list[Prompt]:
        """The shared preparation; without reuse every item is one whole sequence."""
        prompts = super()._prepare(
            prefix, suffixes, reuse=reuse, max_new_tokens=max_new_tokens, tails=tails
        )
        return prompts if reuse else [Prompt([], p.ids, p.media) for p in prompts]

    def _batches(self, prompts: Sequence[Prompt], batch_size: int) -> list[list[int]]:
        """Items after the shared prefix first, then whole sequences; each group in
        length-sorted batches under a token budget (padding stays small)."""
        out: list[list[int]] = [[i] for i, p in enumerate(prompts) if p.media is not None]
        for use in (True, False):
            todo = [i for i, p in enumerate(prompts) if bool(p.prefix) is use and p.media is None]
            lengths = [len(prompts[i].rest) for i in todo]
            for mb in length_batches(
                lengths, max_batch=batch_size, max_tokens=batch_size * self.max_length
            ):
                out.append([todo[j] for j in mb])
        return out

    def _label_logprobs(
        self, prompts: Sequence[Prompt], cand: dict[str, list[int]], reuse: bool
    ) -> list[dict[int, float] | ItemError]:
        """One forward pass per item (after the prefix's KV cache when the batch shares
        it); log-probs of the candidate tokens at the last position."""
        import torch

        if prompts[0].media is not None:  # a media prompt is a batch of its own
            return [self._media_label_logprobs(prompts[0], self._wanted(cand))]
        shared = prompts[0].prefix  # a batch is all-prefix or all-whole (_batches)
        wanted = self._wanted(cand)
        out: list[dict[int, float] | ItemError] = [{} for _ in prompts]

        def take(js: list[int], logits: Any) -> None:
            logp = torch.log_softmax(logits.float(), dim=-1)[:, wanted].cpu().tolist()
            for j, row in zip(js, logp):
                out[j] = dict(zip(wanted, (float(x) for x in row)))

        with torch.inference_mode():
            empty = [j for j, p in enumerate(prompts) if shared and not p.rest]
            if empty:  # the suffix added no tokens: answer right after the prefix
                _, last = self._get_prefix_cache(shared)
                take(empty, last.expand(len(empty), -1))
            full = [j for j, p in enumerate(prompts) if not (shared and not p.rest)]
            if full:
                res, _, _ = self._prefill([prompts[j].rest for j in full], shared, use_cache=False)
                take(full, res.logits[:, -1])
        return out

    def _generate_batch(
        self, prompts: Sequence[Prompt], seeds: Sequence[int], settings: GenSettings
    ) -> list[GenOut | ItemError]:
        """Batched decoding after the shared prefix's KV cache; one torch generator per
        sequence for sampling."""
        import torch

        if prompts[0].media is not None:  # one media prompt, num_samples rows
            return [self._media_generate(p, s, settings) for p, s in zip(prompts, seeds)]
        with torch.inference_mode():
            gens = self._decode([p.rest for p in prompts], prompts[0].prefix, list(seeds), settings)
        return list(gens)

    def _decode(
        self, rows: list[list[int]], prefix: list[int], seeds: list[int], settings: GenSettings
    ) -> list[GenOut]:
        import torch

        max_new_tokens, temperature = settings.max_new_tokens, settings.temperature
        top_p, stop = settings.top_p, settings.stop

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
