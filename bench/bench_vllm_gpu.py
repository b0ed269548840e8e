"""The vLLM judge backend against the real engine on a CUDA GPU (issue 12, item 5).

CI tests the vLLM backend against a fake ``vllm`` module (tests/helpers/fake_vllm.py);
this script runs the same scenarios against the real ``vllm.LLM`` and checks label
probabilities against the transformers backend on the *same* locally built
random-weight checkpoint (no hub):

* text model: ``LlamaForCausalLM`` hidden 256, 2 layers, 4 heads (head_dim 64, which
  every vLLM attention backend supports), the tiny chat tokenizer of
  tests/helpers/tiny_lm.py; safetensors;
* vision-language model (``--no-vlm`` skips it): the tiny LLaVA layout of
  tests/helpers/tiny_vlm.py widened to vLLM-friendly head sizes.

Scenarios (each a named check with its measured figure, written to
``bench/results/vllm_gpu.json`` and, when set, ``$OUT/vllm_gpu.json``):

1. ``logprob_vs_hf``: ``next_token_probs`` on short / empty / long items, candidates
   inside the top 20, max |P(label) vLLM - P(label) HF| <= ``--tol`` (1e-3);
2. ``fallback_vs_hf``: a candidate outside the top 20 (the ``prompt_logprobs``
   fallback), same tolerance;
3. ``greedy_matches_hf``: greedy generation, token-for-token agreement with HF on the
   first tokens (reported; random weights make near-ties possible);
4. ``seeded_sampling_reproducible``: the same seeds give the same samples twice, and
   results do not depend on batch composition;
5. ``bad_item_is_data``: an item longer than the engine's ``max_model_len`` comes back
   as ``ItemError`` while its batch neighbours are scored;
6. ``fingerprint``: names vLLM's version, dtype and max_model_len;
7. ``vlm_logprob_vs_hf``: with images (``multi_modal_data``), max |P diff| vs HF.

Run on a CUDA machine, in one go (installs vLLM into the running interpreter when it
is missing; ``--no-install`` refuses instead)::

    python bench/bench_vllm_gpu.py            # or: --dtype float16 --tol 1e-3

Exit status 0 when every check passes, 1 otherwise; 2 without CUDA.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import write

SUFFIXES = ["you are stupid", "", "nice recipe thanks for sharing " * 20, "buy pills now", "hi"]
PREFIX = "you are a content moderator classify the following content according to the policy "
CANDIDATES = {"unsafe": ["unsafe"], "safe": ["safe"]}


def ensure_vllm(install: bool) -> Any:
    """Import vllm, installing it with pip into this interpreter when allowed."""
    try:
        return importlib.import_module("vllm")
    except ImportError:
        if not install:
            raise SystemExit(
                "vllm is not installed (run without --no-install to install it)"
            ) from None
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "vllm"], check=True)
    importlib.invalidate_caches()
    return importlib.import_module("vllm")


def build_text_model(out: Path, dtype: str) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.helpers.tiny_lm import build_tiny_lm_tokenizer

    tok = build_tiny_lm_tokenizer(model_max_length=1024)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.08,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
        torch_dtype=dtype,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(getattr(torch, dtype)).eval()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def max_diff(a: list[Any], b: list[Any], labels: list[str]) -> float:
    worst = 0.0
    for x, y in zip(a, b):
        if not (isinstance(x, dict) and isinstance(y, dict)):
            return float("inf")
        worst = max(worst, *(abs(float(x[k]) - float(y[k])) for k in labels))
    return worst


def outside_top20(hf: Any) -> str:
    """A vocabulary word the model ranks below 20th after the first prompt."""
    import torch

    ids = hf.prompt_ids(PREFIX, SUFFIXES[0])
    with torch.inference_mode():
        logits = hf._model(input_ids=torch.tensor([ids], device=hf._device)).logits[0, -1]
    order = logits.argsort(descending=True).tolist()
    tok = hf._tokenizer()
    for t in order[40:]:
        word = tok.convert_ids_to_tokens(t)
        if word.isalpha() and word not in ("safe", "unsafe"):
            return str(word)
    raise RuntimeError("no plain word outside the top 40")


def text_checks(model_dir: Path, dtype: str, tol: float) -> dict[str, Any]:
    from audit.moderators.judge.backends._common import ItemError
    from audit.moderators.judge.backends.hf import HFBackend
    from audit.moderators.judge.backends.vllm import VLLMBackend

    hf = HFBackend(str(model_dir), dtype=dtype, device="cuda", max_length=1024)
    vl = VLLMBackend(
        str(model_dir), dtype=dtype, max_length=1024, max_model_len=1024, gpu_memory_utilization=0.3
    )
    out: dict[str, Any] = {}
    ref = hf.next_token_probs(PREFIX, SUFFIXES, CANDIDATES, reuse_prefix=False)
    got = vl.next_token_probs(PREFIX, SUFFIXES, CANDIDATES)
    d = max_diff(ref, got, list(CANDIDATES))
    out["logprob_vs_hf"] = {"max_abs_diff": d, "ok": d <= tol}
    rare = {"a": ["safe"], "b": [outside_top20(hf)]}
    d2 = max_diff(
        hf.next_token_probs(PREFIX, SUFFIXES, rare, reuse_prefix=False),
        vl.next_token_probs(PREFIX, SUFFIXES, rare),
        list(rare),
    )
    out["fallback_vs_hf"] = {"candidate": rare["b"][0], "max_abs_diff": d2, "ok": d2 <= tol}
    g_hf = hf.generate(PREFIX, SUFFIXES, max_new_tokens=8)
    g_vl = vl.generate(PREFIX, SUFFIXES, max_new_tokens=8)
    same = sum(
        1
        for a, b in zip(g_hf, g_vl)
        if not isinstance(a[0], ItemError)
        and not isinstance(b[0], ItemError)
        and a[0].text[:16] == b[0].text[:16]  # type: ignore[union-attr]
    )
    out["greedy_matches_hf"] = {"items_equal": same, "items": len(SUFFIXES), "ok": same >= 3}
    kw = {"max_new_tokens": 8, "temperature": 1.0, "num_samples": 3, "seed": 7}
    s1 = vl.generate(PREFIX, SUFFIXES, **kw)
    s2 = vl.generate(PREFIX, SUFFIXES[::-1], **kw)[::-1]
    texts = [[getattr(g, "text", None) for g in row] for row in s1]
    out["seeded_sampling_reproducible"] = {
        "ok": texts == [[getattr(g, "text", None) for g in row] for row in s2]
    }
    long = " ".join(["hello"] * 3000)
    vl_small = VLLMBackend(
        str(model_dir), dtype=dtype, max_length=4096, max_model_len=512, gpu_memory_utilization=0.3
    )
    mixed = vl_small.next_token_probs(PREFIX, ["hi", long, "ok"], CANDIDATES)
    out["bad_item_is_data"] = {
        "kinds": [r.kind if isinstance(r, ItemError) else "scored" for r in mixed],
        "ok": isinstance(mixed[1], ItemError) and all(isinstance(mixed[i], dict) for i in (0, 2)),
    }
    fp = vl.fingerprint()
    out["fingerprint"] = {"vllm": fp["vllm"], "dtype": fp["dtype"], "ok": bool(fp["vllm"])}
    for b in (vl_small, vl, hf):
        b.close()
    return out


def vlm_checks(root: Path, dtype: str, tol: float) -> dict[str, Any]:
    from audit.media import to_data_url
    from audit.moderators.judge.backends._common import image_part, text_part
    from audit.moderators.judge.backends.hf import HFBackend
    from audit.moderators.judge.backends.vllm import VLLMBackend
    from tests.helpers.tiny_vlm import build_tiny_vlm, solid_png

    d = build_tiny_vlm(root / "vlm", text_hidden=256, text_heads=4, vision_hidden=64)
    parts = [
        [image_part(to_data_url(solid_png(c))), text_part(" is this safe")]
        for c in ((255, 0, 0), (0, 0, 255), (0, 200, 0))
    ]
    cand = {"pos": ["yes"], "neg": ["no"]}
    hf = HFBackend(str(d), dtype=dtype, device="cuda", media=True, max_length=512)
    ref = hf.next_token_probs("classify the following content", parts, cand)
    vl = VLLMBackend(str(d), dtype=dtype, media=True, max_model_len=512, gpu_memory_utilization=0.3)
    got = vl.next_token_probs("classify the following content", parts, cand)
    diff = max_diff(ref, got, list(cand))
    hf.close()
    vl.close()
    return {"vlm_logprob_vs_hf": {"max_abs_diff": diff, "ok": diff <= tol}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--no-vlm", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="also write the result JSON here")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU: the real-engine checks need one (CPU runs use the fake vllm)")
        return 2
    vllm = ensure_vllm(not args.no_install)
    results: dict[str, Any] = {"vllm": str(vllm.__version__), "dtype": args.dtype, "tol": args.tol}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_text_model(Path(tmp) / "text", args.dtype)
        results["checks"] = text_checks(model, args.dtype, args.tol)
        if not args.no_vlm:
            try:
                results["checks"].update(vlm_checks(Path(tmp), args.dtype, args.tol))
            except Exception as exc:  # reported, and counted as a failed check
                results["checks"]["vlm_logprob_vs_hf"] = {"error": repr(exc)[:500], "ok": False}
    results["ok"] = all(c.get("ok") for c in results["checks"].values())
    write("vllm_gpu", results)
    for dest in [
        args.out,
        Path(os.environ["OUT"]) / "vllm_gpu.json" if os.environ.get("OUT") else None,
    ]:
        if dest is not None:
            dest.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
