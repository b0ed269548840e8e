"""Train the embedded default heads of ``embedding_head``, reproducibly (docs/defaults.md).

Training data, and nothing else:

* ``short_video_v1`` train (the project's own set, Apache-2.0): every platform-v1 category;
* COLD train (``../shared/data/cold``, Apache-2.0) when present: a seeded, label-stratified
  sample of ``--cold-rows`` rows. COLD train has only the binary "offensive" label, and the
  set was collected on group topics (race, gender, region): 86% of its offensive test rows
  attack a group. Its rows therefore train the **hate** head only (offensive → positive,
  non-offensive → negative) and are unknown for every other category, harassment included.

Never a test split, and never a set without a training split (OpenAI moderation, HateCheck,
XSTest; ConvAbuse is evaluated whole). The head (``head.safetensors`` + ``head.json``) records
every source with its split, rows used, suite digest and licence, the label rule, the seed, the
encoder fingerprint and dev metrics (COLD dev; short_video_v1 has no dev split). Written into
the package (``--out`` under ``heads_data/``) only when every source licence allows
redistributing a derived model.

    python scripts/train_heads.py --encoder packaged:use-multilingual-v3 \\
        --out audit/moderators/classifiers/heads_data/use-multilingual-v3-platform-v1

Byte-reproducible: the script pins the BLAS kernel and thread count before numpy loads
(:func:`pin_numerics`) and records them with the package versions in ``head.json`` →
``trained_on.numerics``; the files hold no timestamp and no path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

#: OpenBLAS picks its kernels from the CPU: on the same data an AVX-512 CPU (kernel
#: "SkylakeX") and an AVX2 one ("Haswell") give USE embeddings that differ in the last
#: float32 bit, and so head weights that differ by up to 1.3e-6; one BLAS thread or two
#: differ the same way. Haswell runs on every x86-64 CPU with AVX2 (2013 on).
#: docs/defaults.md, "Reproduce".
BLAS_CORETYPE = "Haswell"
BLAS_THREADS = 1
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pin_numerics() -> None:
    """Force the BLAS kernel (x86-64 only) and one thread; must run before numpy loads."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ["OPENBLAS_CORETYPE"] = BLAS_CORETYPE
    for var in _THREAD_VARS:
        os.environ[var] = str(BLAS_THREADS)


if __name__ == "__main__":
    pin_numerics()

import numpy as np  # noqa: E402  (after pin_numerics: OpenBLAS reads its kernel at load)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: licences whose terms allow shipping a model trained on the data (with attribution)
REDISTRIBUTABLE = ("Apache-2.0", "MIT", "CC-BY-4.0")
HEADS_DATA = ROOT / "audit" / "moderators" / "classifiers" / "heads_data"
COLD_RULE = (
    "COLD train has only the binary offensive label: offensive -> hate positive, "
    "non-offensive -> hate negative; every other category unknown"
)


def stratified_sample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` row indices, half from each class of binary ``y`` (fewer if a class is short),
    sorted; the same seed gives the same rows."""
    rng = np.random.default_rng(seed)
    picked = []
    for cls in (0, 1):
        rows = np.flatnonzero(y == cls)
        picked.append(rng.choice(rows, size=min(len(rows), n // 2), replace=False))
    return np.sort(np.concatenate(picked))


def _source(suite: Any, split: str, rows: int, rule: str) -> dict[str, Any]:
    return {
        "suite": suite.name,
        "split": split,
        "version": suite.card.version,
        "digest": suite.digest,
        "rows_used": rows,
        "rows_in_split": len(suite.overall),
        "license": suite.card.license,
        "citation": suite.card.citation,
        "label_rule": rule,
    }


def training_data(
    policy: Any, cold_rows: int, seed: int
) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """Texts, (n, K) labels (-1 unknown) and the provenance of every source used."""
    from audit.suites import load_suite, suite_items
    from audit.suites.loader import load_card
    from audit.suites.reading import resolve_root

    cats = list(policy.category_ids)
    sv1 = load_suite("short_video_v1", policy, split="train")
    texts = [it.text() for it in suite_items(sv1)]
    labels = [np.asarray(sv1.labels, dtype=np.int8)]
    sources = [_source(sv1, "train", len(texts), "the card's per-category labels")]
    card, cpath = load_card("cold")
    cold_dir = resolve_root(card, cpath)
    if cold_rows > 0 and cold_dir.is_dir():
        cold = load_suite("cold", policy, split="train")
        pick = stratified_sample(np.asarray(cold.overall), cold_rows, seed)
        items = suite_items(cold)
        texts += [items[i].text() for i in pick]
        y = np.full((len(pick), len(cats)), -1, dtype=np.int8)
        y[:, cats.index("hate")] = np.asarray(cold.overall)[pick]
        labels.append(y)
        sources.append(_source(cold, "train", len(pick), COLD_RULE))
    elif cold_rows > 0:
        print(
            f"COLD not found at {cold_dir} (set AUDIT_DATA_ROOT): training on short_video_v1 only",
            file=sys.stderr,
        )
    return texts, np.concatenate(labels), sources


def dev_metrics(
    head_dir: Path, encoder: str, policy: Any, seed: int, rows: int = 2000
) -> dict[str, Any]:
    """AUROC / AUPRC (95% bootstrap intervals) of the hate score on a seeded ``rows``-row
    sample of COLD dev (offensive label); empty when COLD is absent or ``rows`` is 0."""
    from audit.metrics import compute_metrics
    from audit.moderators.classifiers.embedding_head import EmbeddingHead
    from audit.suites import load_suite, suite_items
    from audit.suites.loader import load_card
    from audit.suites.reading import resolve_root

    card, cpath = load_card("cold")
    if rows <= 0 or not resolve_root(card, cpath).is_dir():
        return {}
    dev = load_suite("cold", policy, split="dev")
    pick = stratified_sample(np.asarray(dev.overall), rows, seed)
    items = suite_items(dev)
    mod = EmbeddingHead(EmbeddingHead.Params(head=head_dir, encoder=encoder), policy)
    if hasattr(mod.encoder, "threads"):  # the USE encoder: pinned like the fit
        mod.encoder.threads = BLAS_THREADS
    outs = mod.predict([items[i] for i in pick])
    mod.close()
    score = np.array([o.scores.get("hate", np.nan) if o.scores else np.nan for o in outs])
    y = np.asarray(dev.overall)[pick]
    res = compute_metrics(
        y[:, None],
        score[:, None],
        (score >= 0.5)[:, None],
        ["hate"],
        metrics=["auroc", "auprc"],
        n_boot=1000,
        seed=seed,
    )["hate"]
    return {
        "set": f"cold:dev (seeded {len(pick)}-row stratified sample, digest {dev.digest[:12]})",
        "label": "offensive (binary) vs the hate score",
        **{m: {"value": v.value, "ci": [v.ci_low, v.ci_high], "n": v.n} for m, v in res.items()},
    }


def numerics() -> dict[str, Any]:
    """What decides the weights' last bits besides data, seed and encoder: the BLAS
    libraries (kernel, threads) and the numeric package versions; no file paths."""
    import scipy
    import sklearn
    from threadpoolctl import threadpool_info

    blas = sorted(
        (
            {
                "library": str(i.get("prefix")),
                "version": str(i.get("version")),
                "kernel": str(i.get("architecture")),
            }
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ),
        key=lambda b: (b["library"], b["version"]),
    )
    return {
        "blas": blas,
        "blas_threads": BLAS_THREADS,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
    }


def check_pinned(num: dict[str, Any]) -> None:
    """Warn (stderr) when the BLAS kernel is not the pinned one: the head is then equal to
    the shipped one only to float rounding, not byte for byte."""
    other = [b for b in num["blas"] if b["kernel"] != BLAS_CORETYPE]
    if other or not num["blas"]:
        print(
            f"warning: BLAS kernel {[b['kernel'] for b in other] or 'unknown'}, not "
            f"{BLAS_CORETYPE}: weights will match a head trained elsewhere only to float "
            "rounding (docs/defaults.md, Reproduce)",
            file=sys.stderr,
        )


def redistribution(sources: list[dict[str, Any]]) -> dict[str, Any]:
    bad = [s for s in sources if s["license"] not in REDISTRIBUTABLE]
    return {
        "allowed": not bad,
        "licenses": sorted({s["license"] for s in sources}),
        "why": "every source licence allows redistributing a derived model with attribution"
        if not bad
        else f"not allowed by {[s['suite'] + ': ' + str(s['license']) for s in bad]}",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoder", default="packaged:use-multilingual-v3")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cold-rows", type=int, default=2000, help="0: short_video_v1 only")
    ap.add_argument(
        "--dev-rows", type=int, default=2000, help="COLD dev sample for dev_metrics (0: none)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--min-positives", type=int, default=8)
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from audit._util.settings import OFFLINE_DEFAULTS, scoped_env
    from audit.moderators.classifiers.head_fit import atomic_write
    from audit.policy import load_policy

    # AUDIT_HOME (where unset): the data root is this checkout's ../shared/data whatever
    # the current directory, so a rerun from elsewhere reads the same data
    env = {**OFFLINE_DEFAULTS, "AUDIT_HOME": str(ROOT)}
    with scoped_env(env), threadpool_limits(BLAS_THREADS):
        t0 = time.perf_counter()
        if not args.encoder.startswith("packaged:use-"):
            import torch  # a transformers encoder: its matmuls' rounding follows the threads

            torch.set_num_threads(BLAS_THREADS)
        num = numerics()
        check_pinned(num)
        policy = load_policy("platform-v1")
        texts, labels, sources = training_data(policy, args.cold_rows, args.seed)
        redis = redistribution(sources)
        out = args.out.resolve()
        if out.is_relative_to(HEADS_DATA) and not redis["allowed"]:
            print(f"refusing to write into the package: {redis['why']}", file=sys.stderr)
            return 2
        if out.is_relative_to(HEADS_DATA) and args.cold_rows > 0 and len(sources) == 1:
            # a shipped head is the documented one: never silently a short_video_v1-only head
            print("refusing to write into the package: COLD train is missing", file=sys.stderr)
            return 2
        print(f"fitting on {len(texts)} texts from {[s['suite'] for s in sources]}", flush=True)
        trained_on = {
            "policy": policy.ref,
            "sources": sources,
            "seed": args.seed,
            "script": "scripts/train_heads.py",
            "redistribution": redis,
            "numerics": num,
        }
        summary = fit(args, texts, labels, list(policy.category_ids), out, trained_on)
        dev = dev_metrics(out, args.encoder, policy, args.seed, args.dev_rows)
        meta = json.loads((out / "head.json").read_text(encoding="utf-8"))
        meta["dev_metrics"] = dev
        meta.pop("created_at", None)  # the head files are a pure function of data + seed
        atomic_write(
            out / "head.json",
            lambda p: p.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", "utf-8"),
        )
        print(
            json.dumps(
                {
                    "out": str(out),
                    "categories": summary.categories,
                    "head_sha256": summary.head_sha256,
                    "dev": dev,
                    "seconds": round(time.perf_counter() - t0, 1),
                },
                indent=2,
            )
        )
    return 0


def fit(
    args: argparse.Namespace,
    texts: list[str],
    labels: np.ndarray,
    categories: list[str],
    out: Path,
    trained_on: dict[str, Any],
) -> Any:
    """``fit_head`` with the pinned encoder threads; its :class:`HeadSummary`."""
    from audit.moderators.classifiers.embedding_head import fit_head

    return fit_head(
        texts,
        labels,
        categories,
        out,
        encoder=args.encoder,
        C=args.C,
        min_positives=args.min_positives,
        seed=args.seed,
        trained_on=trained_on,
        threads=BLAS_THREADS,
    )


if __name__ == "__main__":
    raise SystemExit(main())
