"""LLM-judge prompt and parsing layer (pure Python, no model code).

* :mod:`.prompts`: judge prompts rendered from a policy version (Jinja templates in
  ``templates/``), split into a run-wide ``prefix`` and a per-item ``suffix``.
* :mod:`.parsers`: output parsers with an explicit parse-failure outcome.
* :mod:`.presets`: public guard formats (Llama Guard 3/4, ShieldGemma, WildGuard)
  and the platform's chain-of-thought judge.

Importing this package imports nothing else; import the submodules directly.
"""
