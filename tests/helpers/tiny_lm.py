"""A tiny random-weight causal LM with a chat template, for offline judge tests.

``build_tiny_causal_lm(out_dir)`` writes a ``LlamaForCausalLM`` (hidden 32, 2 layers,
4 heads / 2 KV heads) and a WordLevel ``PreTrainedTokenizerFast`` (from
:func:`tests.helpers.tiny_models.build_tiny_tokenizer`) with ``<s>`` / ``</s>`` and role
markers as special tokens and a simple chat template::

    <s><|system|> ... <|end|><|user|> ... <|end|><|assistant|>

Plain encoding prepends ``<s>`` only (no trailing separator), like decoder tokenizers.
Outputs are meaningless but deterministic for a given ``seed``.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.tiny_models import SENTENCES, build_tiny_tokenizer

#: extra vocabulary: verdict words and policy-ish words the judge tests use
LM_SENTENCES: tuple[str, ...] = (
    *SENTENCES,
    "safe unsafe yes no violation harassment hate violence spam self harm",
    "policy category definition allowed not allowed examples content verdict answer",
    "you are a content moderator classify the following content according to the policy",
    "S1 S2 S3 S4 json rationale label score reason because",
    "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14",
)

ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "<|{{ m['role'] }}|> {{ m['content'] }} <|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tiny_lm_tokenizer(*, model_max_length: int = 512):
    """The tiny WordLevel tokenizer with BOS/EOS, role tokens and a chat template."""
    from tokenizers import processors

    tok = build_tiny_tokenizer(LM_SENTENCES, model_max_length=model_max_length)
    tok.add_special_tokens({"bos_token": "<s>", "eos_token": "</s>"})
    tok.add_tokens(list(ROLE_TOKENS), special_tokens=True)
    bos_id = tok.convert_tokens_to_ids("<s>")
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B:1", special_tokens=[("<s>", bos_id)]
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_causal_lm(
    out_dir: Path | str, *, seed: int = 0, max_position_embeddings: int = 512
) -> Path:
    """Write a tiny random-weight ``LlamaForCausalLM`` + chat tokenizer to ``out_dir``.

    Args:
        out_dir: target directory (created).
        seed: torch seed for the random weights (different seed → different weights).
        max_position_embeddings: also the tokenizer's ``model_max_length``.

    Returns:
        ``out_dir`` as a ``Path``.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_lm_tokenizer(model_max_length=max_position_embeddings)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        initializer_range=0.5,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config).eval()
    finally:
        torch.random.set_rng_state(gen_state)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return out
