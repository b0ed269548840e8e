"""Inference backends for the LLM judge.

Import-light: nothing here imports torch or transformers. Import a backend module
(``audit.moderators.judge.backends.hf``) to use it; heavy imports happen on first use.

* ``hf`` — :class:`~audit.moderators.judge.backends.hf.HFBackend`, transformers
  (local dir, hub id or GGUF file), label-token probabilities with a shared-prefix
  KV cache, and greedy / seeded-sampling generation.
"""

from __future__ import annotations

__all__ = ["BACKENDS"]

#: backend name → ``module:class`` (resolved lazily by the adapter)
BACKENDS: dict[str, str] = {
    "transformers": "audit.moderators.judge.backends.hf:HFBackend",
}
