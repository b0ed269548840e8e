"""Paired comparison of two runs: metric deltas, McNemar, negative flip rate.

Method (docs/methods.md §3):

* **Pairing.** Items are aligned by id within one suite; an item enters a category's
  comparison only when its gold label is known and *both* runs scored it (an error on
  either side removes the item from both, so the two estimates are on the same items;
  errors are budgeted separately by the gate).
* **Paired bootstrap** (Efron 1979; Efron & Tibshirani 1993, ch. 13): every resample is
  drawn **once** and both runs are evaluated on it, so ``delta = B − A`` per resample keeps
  the item-level correlation. Small inputs use the exact row bootstrap of
  :mod:`audit.metrics.bootstrap` (same index draws, its batch kernels for both runs).
  Large inputs (``n × K > ROW_BOOTSTRAP_MAX_CELLS``) use a *joint cell* bootstrap: the
  8-cell table ``(gold, decision A, decision B)`` is drawn multinomially (exactly an item
  resample for the threshold metrics), and the ranking/calibration metrics from a joint
  ``(gold, bin A, bin B)`` histogram of :data:`JOINT_BINS` per-class quantile bins per
  run, re-centred on the exact point estimates as the unpaired cell path does.
* **McNemar** (McNemar 1947) on the discordant pairs within the class of interest: gold
  positives for recall, gold negatives for FPR (``b`` = A right & B wrong, ``c`` = A wrong
  & B right). Exact binomial ``Binom(b + c, 1/2)`` two-sided when ``b + c < 25``, else
  chi-square with continuity correction ``(|b − c| − 1)² / (b + c)``, 1 d.f.
* **Negative flip rate:** among items A decides correctly, the share B decides wrongly.

Loading (:func:`load_side`) accepts a run directory, a ``record.json`` path, a run id
under ``runs/`` or a baseline snapshot JSON (:mod:`audit.release.gate`); it lives in
:mod:`audit.release.sides`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from audit.errors import GateError
from audit.release.sides import (
    DIGEST_FIX,
    ResultView,
    Side,
    frame_from_b64,
    load_side,
    match_declared,
    pair_results,
)

if TYPE_CHECKING:
    from audit.change.suite_diff import DeclaredDiff

# Loading and pairing live in audit.release.sides; their names stay importable from
# here, where the gate, the API, the CLI and audit.release import them.
__all__ = [
    "JOINT_BINS",
    "MCNEMAR_EXACT_BELOW",
    "Aligned",
    "CategoryComparison",
    "Delta",
    "McNemar",
    "ResultView",
    "Side",
    "align",
    "compare_sides",
    "comparison_json",
    "declared_note",
    "frame_from_b64",
    "load_side",
    "mcnemar",
    "pair_results",
    "paired_compare",
]


#: Per-class quantile bins per run for the joint cell bootstrap of ranking metrics.
JOINT_BINS = 40
#: McNemar uses the exact binomial test below this many discordant pairs.
MCNEMAR_EXACT_BELOW = 25


@dataclass
class Aligned:
    """Two runs' predictions on the same items (rows aligned by id)."""

    ids: np.ndarray
    categories: list[str]
    y: np.ndarray  # (n, K) int8 gold (from A)
    score_a: np.ndarray
    pred_a: np.ndarray
    score_b: np.ndarray
    pred_b: np.ndarray
    err_a: np.ndarray
    err_b: np.ndarray
    n_only_a: int = 0
    n_only_b: int = 0
    n_hash_mismatch: int = 0
    n_gold_changed: int = 0
    """Items with the same id and content whose gold differs (a relabel between suite
    versions): excluded, since the two runs were scored against different answers."""


def _cats(frame: Any) -> list[str]:
    return [c[5:] for c in frame.columns if c.startswith("gold.")]


def align(fa: Any, fb: Any) -> Aligned:
    """Inner-join two prediction frames by id; items whose content hash or gold differs
    are dropped and counted (equal suite digests imply neither happens)."""
    ca = _cats(fa)
    cats = [c for c in ca if c in set(_cats(fb)) and f"score.{c}" in fa and f"score.{c}" in fb]

    def pick(f: Any, side: str) -> Any:
        cols = ["content_hash", "error"] + [f"{p}.{c}" for c in cats for p in ("score", "pred")]
        g = f[["id", *cols]].rename(columns={c: c + side for c in cols})
        return g.assign(**{f"gold.{c}{side}": f[f"gold.{c}"] for c in cats})

    m = pick(fa, "_a").merge(pick(fb, "_b"), on="id", how="inner")
    same = (m["content_hash_a"] == m["content_hash_b"]).to_numpy()
    n_mismatch = int((~same).sum())
    m = m[same]
    relabelled = np.zeros(len(m), dtype=bool)
    for c in cats:
        relabelled |= (m[f"gold.{c}_a"] != m[f"gold.{c}_b"]).to_numpy()
    n_relabelled = int(relabelled.sum())
    m = m[~relabelled]

    def arr(prefix: str, side: str, dtype: Any, fill: Any) -> np.ndarray:
        cols = [f"{prefix}.{c}{side}" for c in cats]
        out: np.ndarray = m[cols].astype(dtype).fillna(fill).to_numpy(dtype=float)
        return out.reshape(len(m), len(cols))

    ya = np.column_stack([m[f"gold.{c}_a"].to_numpy(np.int8) for c in cats]) if cats else None
    if ya is None:
        ya = np.zeros((len(m), 0), np.int8)
    return Aligned(
        m["id"].to_numpy(),
        cats,
        ya,
        arr("score", "_a", "float64", np.nan),
        arr("pred", "_a", "boolean", False).astype(bool),
        arr("score", "_b", "float64", np.nan),
        arr("pred", "_b", "boolean", False).astype(bool),
        m["error_a"].notna().to_numpy(),
        m["error_b"].notna().to_numpy(),
        len(fa) - len(m) - n_mismatch - n_relabelled,
        len(fb) - len(m) - n_mismatch - n_relabelled,
        n_mismatch,
        n_relabelled,
    )


@dataclass
class McNemar:
    """McNemar test on the discordant pairs ``b`` (A right, B wrong) and ``c``."""

    b: int
    c: int
    statistic: float
    p_value: float
    method: str


def mcnemar(b: int, c: int) -> McNemar:
    """Two-sided McNemar test (McNemar 1947), exact binomial when ``b + c < 25``."""
    from scipy import stats

    n = b + c
    if n == 0:
        return McNemar(b, c, 0.0, 1.0, "exact")
    if n < MCNEMAR_EXACT_BELOW:
        p = min(1.0, 2.0 * float(stats.binom.cdf(min(b, c), n, 0.5)))
        return McNemar(b, c, float(min(b, c)), p, "exact")
    stat = (abs(b - c) - 1.0) ** 2 / n
    return McNemar(b, c, stat, float(stats.chi2.sf(stat, 1)), "chi2-cc")


@dataclass
class Delta:
    """Metric of both runs on the paired items and the paired-bootstrap delta interval."""

    a: float
    b: float
    delta: float
    lo: float
    hi: float
    boot: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict[str, float | None]:
        def f(v: float) -> float | None:
            return None if not np.isfinite(v) else float(v)

        return {k: f(getattr(self, k)) for k in ("a", "b", "delta", "lo", "hi")}


@dataclass
class CategoryComparison:
    """Everything compared for one category (or ``overall``) of one suite."""

    n: int
    metrics: dict[str, Delta]
    mcnemar: dict[str, McNemar]
    negative_flip_rate: float
    n_flips: int

    def to_dict(self) -> dict[str, Any]:
        nfr = self.negative_flip_rate
        return {
            "n": self.n,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "mcnemar": {k: vars(v) for k, v in self.mcnemar.items()},
            "negative_flip_rate": None if not np.isfinite(nfr) else nfr,
            "n_flips": self.n_flips,
        }


def _flip_stats(
    y: np.ndarray, pa: np.ndarray, pb: np.ndarray
) -> tuple[dict[str, McNemar], float, int]:
    right_a, right_b = pa == (y == 1), pb == (y == 1)
    tests = {}
    for name, cls in (("recall", 1), ("fpr", 0)):
        m = y == cls
        tests[name] = mcnemar(
            int((right_a & ~right_b & m).sum()), int((~right_a & right_b & m).sum())
        )
    tests["accuracy"] = mcnemar(int((right_a & ~right_b).sum()), int((~right_a & right_b).sum()))
    n_right = int(right_a.sum())
    flips = int((right_a & ~right_b).sum())
    return tests, (flips / n_right if n_right else float("nan")), flips


def _joint_bins(y: np.ndarray, s: np.ndarray, n_bins: int) -> tuple[Any, np.ndarray]:
    """Per-class quantile bins (as :func:`audit.metrics.ranking.quantile_bins`) and each
    item's bin index in the original order."""
    from audit.metrics.ranking import bins_from_sorted, quantile_starts

    order = np.argsort(-s, kind="stable")
    y_desc, s_desc = y[order], s[order]
    n = s.size
    starts = quantile_starts(y_desc, s_desc, n_bins)
    ids = np.empty(n, dtype=np.intp)
    ids[order] = np.searchsorted(starts, np.arange(n), side="right") - 1
    return bins_from_sorted(y_desc, s_desc, starts), ids


def _cell_pair(
    k: int,
    col_a: Any,
    col_b: Any,
    rows: tuple[np.ndarray, ...],
    specs: list[Any],
    n_boot: int,
    seed: int,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Joint cell bootstrap of one category for both runs (module docstring)."""
    from audit.metrics.classification import Confusion

    yk, sa, pa, sb, pb = rows
    n = yk.size
    if n == 0:
        nan = {s.name: np.full(n_boot, np.nan) for s in specs}
        return nan, dict(nan)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
    code = 4 * yk.astype(np.intp) + 2 * pa.astype(np.intp) + pb.astype(np.intp)
    draws = rng.multinomial(n, np.bincount(code, minlength=8) / n, size=n_boot)
    d = draws.reshape(n_boot, 2, 2, 2)
    conf_a = Confusion.from_cells(d.sum(axis=3).reshape(n_boot, 4))
    conf_b = Confusion.from_cells(d.sum(axis=2).reshape(n_boot, 4))
    bins: list[Any] = [None, None]
    shifts: list[dict[str, float]] = [{}, {}]
    if any(s.family == "ranking" for s in specs):
        ba, ia = _joint_bins(yk, sa, JOINT_BINS)
        bb, ib = _joint_bins(yk, sb, JOINT_BINS)
        ja, jb = ba.pos.shape[1], bb.pos.shape[1]
        code = yk.astype(np.intp) * ja * jb + ia * jb + ib
        p = np.bincount(code, minlength=2 * ja * jb) / n
        dr = rng.multinomial(n, p, size=n_boot).reshape(n_boot, 2, ja, jb).astype(np.float64)
        bins = [
            ba.with_counts(dr[:, 1].sum(2), dr[:, 0].sum(2)),
            bb.with_counts(dr[:, 1].sum(1), dr[:, 0].sum(1)),
        ]
        for i, (point, col) in enumerate(((ba, col_a), (bb, col_b))):
            for s in specs:
                if s.family == "ranking":
                    shifts[i][s.name] = col.points[s.name].value - float(
                        s.batch(point, **s.params)[0]
                    )
    out = []
    for i, conf in enumerate((conf_a, conf_b)):
        res = {}
        for s in specs:
            v = np.asarray(s.batch(bins[i] if s.family == "ranking" else conf, **s.params), float)
            sh = shifts[i].get(s.name, 0.0)
            res[s.name] = v + sh if np.isfinite(sh) else v
        out.append(res)
    return out[0], out[1]


def _row_pairs(
    cols_a: list[Any],
    cols_b: list[Any],
    specs: list[Any],
    n_rows: int,
    n_boot: int,
    seed: int,
    threads: int,
) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Exact paired row bootstrap: one index draw per chunk, both runs evaluated on it."""
    from audit.metrics.bootstrap import CHUNK_ELEMS, parallel_map, row_chunk

    rng = np.random.default_rng(seed)
    acc: list[list[dict[str, list[np.ndarray]]]] = [
        [{s.name: [] for s in specs} for _ in range(2)] for _ in cols_a
    ]
    chunk, done = max(1, CHUNK_ELEMS // max(n_rows, 1)), 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n_rows, size=(b, n_rows))
        idx += (np.arange(b, dtype=idx.dtype) * n_rows)[:, None]
        w = np.bincount(idx.ravel(), minlength=b * n_rows).reshape(b, n_rows).astype(float)
        args = [(c, w, specs) for c in [*cols_a, *cols_b]]
        res = parallel_map(row_chunk, args, threads)
        for k in range(len(cols_a)):
            for side, r in enumerate((res[k], res[k + len(cols_a)])):
                for name, v in r.items():
                    acc[k][side][name].append(v)
        done += b
    return [
        (
            {n: np.concatenate(v) for n, v in a.items()},
            {n: np.concatenate(v) for n, v in b_.items()},
        )
        for a, b_ in acc
    ]


def paired_compare(
    al: Aligned,
    *,
    metrics: list[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    method: str = "auto",
    threads: int | None = None,
) -> dict[str, CategoryComparison]:
    """Per-category deltas (B − A) with paired-bootstrap intervals, McNemar and flips.

    Args:
        al: aligned predictions (:func:`align`).
        metrics: metric names (default: every registered non-count metric).
        n_boot: paired resamples (0: no intervals).
        ci: two-sided interval coverage; the gate passes ``1 − 2α`` to read a one-sided
            level-α bound off the interval.
        seed: bootstrap seed.
        method: ``"auto"``, ``"row"`` (exact) or ``"cell"`` (joint cells).
        threads: worker threads over categories.
    """
    import os

    from audit.metrics import get_metric, metric_names
    from audit.metrics.bootstrap import ROW_BOOTSTRAP_MAX_CELLS, parallel_map, prepare_column

    specs = [get_metric(m) for m in (metrics or metric_names())]
    specs = [s for s in specs if s.family != "count"]
    n_rows, n_cat = al.y.shape
    if method == "auto":
        method = "row" if n_rows * n_cat <= ROW_BOOTSTRAP_MAX_CELLS else "cell"
    nt = max(1, min(threads or os.cpu_count() or 1, max(n_cat, 1)))
    both = ~np.isnan(al.score_a) & ~np.isnan(al.score_b)
    sa = np.where(both, al.score_a, np.nan)
    sb = np.where(both, al.score_b, np.nan)
    prep = "row" if method == "row" else "exact"
    cols_a = parallel_map(
        prepare_column,
        [
            (c, al.y[:, k], sa[:, k], al.pred_a[:, k], specs, prep, 0)
            for k, c in enumerate(al.categories)
        ],
        nt,
    )
    cols_b = parallel_map(
        prepare_column,
        [
            (c, al.y[:, k], sb[:, k], al.pred_b[:, k], specs, prep, 0)
            for k, c in enumerate(al.categories)
        ],
        nt,
    )
    masks = [(al.y[:, k] >= 0) & both[:, k] for k in range(n_cat)]
    boots: list[Any] = [None] * n_cat
    if n_boot > 0 and n_rows > 0 and specs:
        if method == "row":
            boots = _row_pairs(cols_a, cols_b, specs, n_rows, n_boot, seed, nt)
        else:
            args = [
                (
                    k,
                    cols_a[k],
                    cols_b[k],
                    (al.y[m, k], sa[m, k], al.pred_a[m, k], sb[m, k], al.pred_b[m, k]),
                    specs,
                    n_boot,
                    seed,
                )
                for k, m in enumerate(masks)
            ]
            boots = parallel_map(_cell_pair, args, nt)
    return _comparisons(al, specs, cols_a, cols_b, boots, masks, ci)


def _comparisons(
    al: Aligned,
    specs: list[Any],
    cols_a: list[Any],
    cols_b: list[Any],
    boots: list[Any],
    masks: list[np.ndarray],
    ci: float,
) -> dict[str, CategoryComparison]:
    """Per category: each metric's delta with its percentile interval, then McNemar and
    the flips on the paired items."""
    from audit.metrics import percentile_interval

    out: dict[str, CategoryComparison] = {}
    for k, cat in enumerate(al.categories):
        m = masks[k]
        deltas = {}
        for s in specs:
            pa_, pb_ = cols_a[k].points[s.name].value, cols_b[k].points[s.name].value
            point = pb_ - pa_
            lo = hi = float("nan")
            bt = np.zeros(0)
            if boots[k] is not None:
                bt = boots[k][1][s.name] - boots[k][0][s.name]
                lo, hi = percentile_interval(bt, point, ci)
            deltas[s.name] = Delta(float(pa_), float(pb_), float(point), lo, hi, bt)
        tests, nfr, flips = _flip_stats(al.y[m, k], al.pred_a[m, k], al.pred_b[m, k])
        out[cat] = CategoryComparison(int(m.sum()), deltas, tests, nfr, flips)
    return out


def compare_sides(
    a: Side,
    b: Side,
    *,
    moderator_a: str | None = None,
    moderator_b: str | None = None,
    allow_digest_mismatch: bool = False,
    declared_diffs: Sequence[DeclaredDiff] = (),
    roles: tuple[str, str] = ("A", "B"),
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Compare every paired suite × moderator; one entry per pair with the comparisons.

    ``declared_diffs``: suite diffs (``audit suite diff --out``) whose from / to digests
    must be exactly A's and B's (:func:`audit.release.sides.match_declared`, exit 2
    otherwise); a declared pair is compared on the items both versions share unchanged
    (same id, content hash and gold), the others are counted in the entry.

    Raises:
        GateError: a suite's digests differ and the change is neither declared nor
            allowed (``allow_digest_mismatch``).
    """
    pairs = pair_results(a, b, moderator_a, moderator_b)
    declared = match_declared(declared_diffs, pairs, roles)
    out = []
    for ra, rb in pairs:
        match = ra.digest == rb.digest and ra.digest is not None
        decl = declared.get(ra.suite_key)
        if not match and not allow_digest_mismatch and decl is None:
            raise GateError(
                f"suite {ra.suite_key} was scored on two versions ({roles[0]} digest "
                f"{str(ra.digest)[:12]}, {roles[1]} digest {str(rb.digest)[:12]}): the runs "
                "did not score the same items",
                where=f"{a.source} vs {b.source}",
                field=f"suites.{ra.suite_key}.digest",
                expected="equal digests, or a declared suite diff",
                actual="different digests",
                fix=f"{DIGEST_FIX} (or --allow-digest-mismatch to pair the items both share)",
            )
        al = align(ra.load(), rb.load())
        cmp = paired_compare(al, **kwargs)
        out.append(
            {
                "suite": ra.suite,
                "split": ra.split,
                "moderator_a": ra.moderator,
                "moderator_b": rb.moderator,
                "digest_match": match,
                "declared_diff": None if decl is None else decl.to_json(),
                "n": int(al.ids.size),
                "n_only_a": al.n_only_a,
                "n_only_b": al.n_only_b,
                "n_hash_mismatch": al.n_hash_mismatch,
                "n_gold_changed": al.n_gold_changed,
                "error_rate_a": float(al.err_a.mean()) if al.ids.size else float("nan"),
                "error_rate_b": float(al.err_b.mean()) if al.ids.size else float("nan"),
                "a": ra,
                "b": rb,
                "categories": cmp,
            }
        )
    return out


def declared_note(e: dict[str, Any], roles: tuple[str, str] = ("A", "B")) -> str | None:
    """One line on what a declared suite diff did to an entry of :func:`compare_sides`."""
    d = e.get("declared_diff")
    if d is None:
        return None
    return (
        f"{e['suite']}:{e['split']}: declared suite diff {d['file']} "
        f"({d['from_digest'][:12]} → {d['to_digest'][:12]}): compared on the {e['n']} items "
        f"both versions share unchanged; excluded {e['n_hash_mismatch']} with changed text, "
        f"{e['n_gold_changed']} with changed gold, {e['n_only_a']} only in {roles[0]}, "
        f"{e['n_only_b']} only in {roles[1]}"
    )


def comparison_json(a: Side, b: Side, entries: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    """JSON-ready form of :func:`compare_sides` output."""
    suites = []
    for e in entries:
        d = {k: v for k, v in e.items() if k not in ("a", "b", "categories")}
        for k in ("error_rate_a", "error_rate_b"):
            d[k] = d[k] if np.isfinite(d[k]) else None
        d["categories"] = {c: v.to_dict() for c, v in e["categories"].items()}
        suites.append(d)
    return {"a": a.run_id, "b": b.run_id, **meta, "suites": suites}
