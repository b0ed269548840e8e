"""A tiny random-weight Qwen2 GGUF file (float32 tensors, byte-level BPE vocabulary),
for tests of the GGUF conversion path without the 491 MB packaged judge.

Written with gguf-py's ``GGUFWriter``: the metadata keys and tensor names transformers
reads for the ``qwen2`` architecture, 2 blocks, hidden 32, a vocabulary of the 256
byte-level symbols plus a few merges and ChatML specials, and a chat template.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _byte_symbols() -> list[str]:
    # the GPT-2 byte-to-unicode table: printable bytes map to themselves, the rest to
    # code points from 256 up, so every byte is one visible symbol
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    out: dict[int, str] = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def build_tiny_gguf(out_dir: Path | str, *, seed: int = 0, name: str = "tiny.gguf") -> Path:
    """Write the tiny Qwen2 GGUF into ``out_dir``; returns the file's path."""
    import gguf
    import numpy as np

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    symbols = _byte_symbols()
    sp = "\u0120"  # the byte-level symbol of a space
    merges = [f"{sp} s", "a f", f"{sp}s af", f"{sp} u", f"{sp}u n", "n s"]
    merged = ["".join(m.split(" ")) for m in merges]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = [*symbols, *dict.fromkeys(merged), *specials]
    types = [1] * (len(tokens) - len(specials)) + [3] * len(specials)
    vocab, hidden, inter, heads, kv, blocks = len(tokens), 32, 64, 4, 2, 2

    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_name("tiny-qwen2")
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_block_count(blocks)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(0)  # all float32
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_pad_token_id(tokens.index("<|endoftext|>"))
    w.add_chat_template(CHAT_TEMPLATE)

    rng = np.random.default_rng(seed)

    def t(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    w.add_tensor("token_embd.weight", t(vocab, hidden))
    w.add_tensor("output_norm.weight", np.ones(hidden, dtype=np.float32))
    w.add_tensor("output.weight", t(vocab, hidden))
    kvd = hidden // heads * kv
    for i in range(blocks):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", np.ones(hidden, dtype=np.float32))
        w.add_tensor(b + "attn_q.weight", t(hidden, hidden))
        w.add_tensor(b + "attn_q.bias", t(hidden))
        w.add_tensor(b + "attn_k.weight", t(kvd, hidden))
        w.add_tensor(b + "attn_k.bias", t(kvd))
        w.add_tensor(b + "attn_v.weight", t(kvd, hidden))
        w.add_tensor(b + "attn_v.bias", t(kvd))
        w.add_tensor(b + "attn_output.weight", t(hidden, hidden))
        w.add_tensor(b + "ffn_norm.weight", np.ones(hidden, dtype=np.float32))
        w.add_tensor(b + "ffn_gate.weight", t(inter, hidden))
        w.add_tensor(b + "ffn_up.weight", t(inter, hidden))
        w.add_tensor(b + "ffn_down.weight", t(hidden, inter))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
