"""Tiny random-weight transformers checkpoints for offline tests.

``build_tiny_classifier(out_dir, labels)`` writes a ~60 kB
``BertForSequenceClassification`` (hidden 32, 2 layers, 2 heads) with a WordLevel
tokenizer trained on a few sentences, via ``save_pretrained``, so it reloads with
``AutoModelForSequenceClassification`` / ``AutoTokenizer`` and needs no network.
Scores are meaningless but deterministic for a given ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

SENTENCES: tuple[str, ...] = (
    "I will hurt you tomorrow if you come back",
    "you are a wonderful person and I love your videos",
    "those people are vermin and should leave the country",
    "buy cheap pills now at this link",
    "what a lovely day at the beach with my family",
    "I hate all of them so much",
    "nobody would miss you if you were gone",
    "the cat sat on the mat",
    "great recipe thanks for sharing",
    "click here to win a free phone",
    "this tutorial on knitting is very helpful",
    "go back to where you came from",
    "I am going to find where you live",
    "happy birthday to my best friend",
    "the match last night was amazing",
    "you are so stupid and ugly",
    "follow me for more dance videos",
    "they are animals not humans",
    "limited offer send your bank details",
    "my grandmother taught me this song",
)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def build_tiny_tokenizer(sentences: Sequence[str] = SENTENCES, *, model_max_length: int = 64):
    """A lowercase WordLevel tokenizer wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        list(sentences), trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS))
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


def build_tiny_classifier(
    out_dir: Path | str,
    labels: Sequence[str],
    *,
    problem_type: str | None = None,
    seed: int = 0,
    max_position_embeddings: int = 64,
) -> Path:
    """Write a tiny random-weight sequence classifier + tokenizer to ``out_dir``.

    Args:
        out_dir: target directory (created).
        labels: ``id2label`` in logit order, e.g. ``["safe", "hate", "violence"]``.
        problem_type: ``"multi_label_classification"``, ``"single_label_classification"``
            or ``None`` (left unset in config.json).
        seed: torch seed for the random weights (different seed → different weights).
        max_position_embeddings: also used as the tokenizer's ``model_max_length``.

    Returns:
        ``out_dir`` as a ``Path``.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(model_max_length=max_position_embeddings)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_position_embeddings,
        initializer_range=0.5,
        id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)},
        problem_type=problem_type,
        pad_token_id=tokenizer.pad_token_id,
    )
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = BertForSequenceClassification(config).eval()
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
