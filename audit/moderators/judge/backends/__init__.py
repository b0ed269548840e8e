"""Inference backends for the LLM judge.

Import-light: nothing here imports torch or transformers. Import a backend module
(``audit.moderators.judge.backends.hf``) to use it; heavy imports happen on first use.

* ``base`` — the :class:`~audit.moderators.judge.backends.base.JudgeBackend` protocol
  and :class:`~audit.moderators.judge.backends.base.BackendLoops`, the one
  label-probability loop and the one generation loop every backend runs; a backend
  writes only its engine primitives. Per-item failures are
  :class:`~audit.moderators.judge.backends._common.ItemError` for every backend.
* ``hf`` — :class:`~audit.moderators.judge.backends.hf.HFBackend`, transformers
  (local dir, hub id or GGUF file; loading in ``hf_loading``), label-token
  probabilities with a shared-prefix KV cache, and greedy / seeded-sampling generation.
* ``vllm``, ``llama_cpp`` — the vLLM offline engine and llama.cpp (GGUF on CPU).
* ``openai_compat`` — any OpenAI-compatible server (the ``openai`` SDK + ``tenacity``
  retries, in ``openai_transport``; both imported on the first request).
"""

from __future__ import annotations

__all__ = ["BACKENDS"]

#: backend name → ``module:class`` (resolved lazily by the adapter)
BACKENDS: dict[str, str] = {
    "transformers": "audit.moderators.judge.backends.hf:HFBackend",
}
