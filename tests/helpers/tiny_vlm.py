"""A tiny random-weight vision-language model (LLaVA layout), built locally for tests.

``build_tiny_vlm(out_dir)`` writes a ``LlavaForConditionalGeneration`` (a 1-layer CLIP
vision tower on 28 x 28 images with 14-pixel patches, so 4 image tokens; the tiny
Llama text model of :mod:`tests.helpers.tiny_lm`) and a ``LlavaProcessor`` (CLIP image
processor + the tiny chat tokenizer with an ``<image>`` token and a chat template that
reads content-part lists), saved with safetensors. It reloads with ``AutoProcessor`` /
``AutoModelForImageTextToText`` and needs no network. Outputs are meaningless but
deterministic for a given ``seed``; different images give different logits.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.tiny_lm import build_tiny_lm_tokenizer

IMAGE_TOKEN = "<image>"
IMAGE_SIDE = 28
PATCH = 14

#: the tiny chat template, reading a string or a list of text / image parts
VLM_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}<|{{ m['role'] }}|> "
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image>{% elif p['type'] == 'text' %}{{ p['text'] }}{% endif %}"
    "{% endfor %}{% endif %} <|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tiny_vlm(
    out_dir: Path | str,
    *,
    seed: int = 0,
    text_hidden: int = 32,
    text_heads: int = 4,
    vision_hidden: int = 16,
) -> Path:
    """Write the tiny LLaVA model + processor to ``out_dir`` and return it as a Path.

    The widths default to the CPU-test size; the GPU script (bench/bench_vllm_gpu.py)
    widens them so every head is 64 wide, which vLLM's attention kernels need."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.utils import logging as hf_logging

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tiny_lm_tokenizer(model_max_length=512)
    tok.add_tokens([IMAGE_TOKEN], special_tokens=True)
    tok.chat_template = VLM_CHAT_TEMPLATE
    vision = CLIPVisionConfig(
        hidden_size=vision_hidden,
        intermediate_size=2 * vision_hidden,
        num_hidden_layers=1,
        num_attention_heads=max(1, vision_hidden // 64) if vision_hidden >= 64 else 2,
        image_size=IMAGE_SIDE,
        patch_size=PATCH,
        projection_dim=vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=text_hidden,
        intermediate_size=2 * text_hidden,
        num_hidden_layers=2,
        num_attention_heads=text_heads,
        num_key_value_heads=max(1, text_heads // 2),
        max_position_embeddings=512,
        initializer_range=0.5,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=(IMAGE_SIDE // PATCH) ** 2,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlavaForConditionalGeneration(config).eval()
    finally:
        torch.random.set_rng_state(state)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": IMAGE_SIDE},
            crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE},
        ),
        tokenizer=tok,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        chat_template=VLM_CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,
    )
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out)
        processor.save_pretrained(out)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return out


def solid_png(rgb: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    """PNG bytes of a solid-colour image (test media are generated, never committed)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format="PNG")
    return buf.getvalue()
