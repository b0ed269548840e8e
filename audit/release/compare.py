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
under ``runs/`` or a baseline snapshot JSON (:mod:`audit.release.gate`).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from audit.errors import ConfigError, GateError

#: Per-class quantile bins per run for the joint cell bootstrap of ranking metrics.
JOINT_BINS = 40
#: McNemar uses the exact binomial test below this many discordant pairs.
MCNEMAR_EXACT_BELOW = 25


@dataclass
class ResultView:
    """One suite × moderator result of a run (or snapshot), predictions loaded lazily."""

    suite: str
    split: str
    moderator: str
    digest: str | None
    metrics: dict[str, Any]
    n: int
    n_errors: int
    error_types: dict[str, int]
    load: Callable[[], Any]

    @property
    def suite_key(self) -> str:
        return f"{self.suite}:{self.split}"


@dataclass
class Side:
    """A loaded run or baseline snapshot."""

    run_id: str
    source: str
    policy: dict[str, Any]
    results: list[ResultView]
    mlflow_parent: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _runs_dir() -> Path:
    from audit._util.settings import runs_dir

    return runs_dir()


def frame_from_b64(text: str) -> Any:
    """Decode a snapshot's base64 Parquet (zstd) item table."""
    import pandas as pd

    return pd.read_parquet(io.BytesIO(base64.b64decode(text)))


def load_side(ref: str | Path) -> Side:
    """Load a run directory, ``record.json``, run id under ``runs/``, or snapshot JSON."""
    p = Path(ref)
    if not p.exists() and (_runs_dir() / str(ref)).exists():
        p = _runs_dir() / str(ref)
    if not p.exists():
        raise ConfigError(
            "run not found",
            where=str(ref),
            expected="a run directory, record.json, run id under runs/ or snapshot JSON",
            actual="no such path",
        )
    rec = p / "record.json" if p.is_dir() else p
    try:
        data = json.loads(rec.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"cannot read run record: {exc}",
            where=str(rec),
            expected="a run record or baseline snapshot (JSON object)",
            actual="unreadable",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            "not a run record or baseline snapshot",
            where=str(rec),
            field="(top level)",
            expected="a JSON object",
            actual=f"a JSON {type(data).__name__}",
            fix="point at a record.json or a snapshot written by 'audit baseline update'",
        )
    snapshot = "snapshot_version" in data
    if snapshot:
        data = _checked_snapshot(data, rec)
    else:
        from audit.engine.record import parse_record

        # typed and migrated: a record of any supported version reads as the current one
        data = parse_record(data, str(rec)).model_dump(mode="json")
    results = []
    for r in data.get("results", []):
        skey = f"{r['suite']}:{r['split']}"
        digest = (data.get("suites", {}).get(skey) or {}).get("digest")

        def _load(r: dict[str, Any] = r) -> Any:
            if snapshot:
                return frame_from_b64(r["items"])
            import pandas as pd

            return pd.read_parquet(rec.parent / r["predictions"])

        results.append(
            ResultView(
                r["suite"],
                r["split"],
                r["moderator"],
                digest,
                r.get("metrics", {}),
                int(r.get("n", 0)),
                int(r.get("n_errors", 0)),
                dict(r.get("error_types") or {}),
                _load,
            )
        )
    ml = data.get("mlflow") or {}
    return Side(
        str(data.get("run_id")),
        str(rec),
        data.get("policy") or {},
        results,
        ml.get("parent_run_id"),
        data,
    )


class _SnapshotResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    suite: str
    split: str
    moderator: str
    items: str = Field(min_length=1)
    n: int = Field(default=0, ge=0)
    n_errors: int = Field(default=0, ge=0)
    error_types: dict[str, int] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)


class _Snapshot(BaseModel):
    model_config = ConfigDict(extra="allow")

    snapshot_version: int
    run_id: str
    policy: dict[str, Any]
    suites: dict[str, dict[str, Any]] = Field(default_factory=dict)
    results: list[_SnapshotResult] = Field(min_length=1)


def _checked_snapshot(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """A baseline snapshot validated field by field, every item table decoded once,
    so a corrupt baseline is a one-line error (exit 2) before any comparison."""
    from audit._util.validation import parse_model

    snap = parse_model(_Snapshot, data, str(path))
    for i, r in enumerate(snap.results):
        try:
            frame = frame_from_b64(r.items)
        except Exception as exc:
            raise ConfigError(
                f"baseline item table cannot be decoded ({type(exc).__name__})",
                where=str(path),
                field=f"results[{i}].items",
                expected="base64 Parquet written by 'audit baseline update'",
                actual=f"{len(r.items)} characters that do not decode",
                fix="regenerate the snapshot with 'audit baseline update'",
            ) from None
        missing = [c for c in ("id", "content_hash") if c not in frame.columns]
        if missing:
            raise ConfigError(
                "baseline item table lacks columns",
                where=str(path),
                field=f"results[{i}].items",
                expected="columns id, content_hash, gold.*, score.*, pred.*",
                actual=f"missing {missing}",
                fix="regenerate the snapshot with 'audit baseline update'",
            )
    return data


def pair_results(
    a: Side, b: Side, moderator_a: str | None = None, moderator_b: str | None = None
) -> list[tuple[ResultView, ResultView]]:
    """Pair results by suite and moderator.

    Default: the same moderator name in both runs; when each run has exactly one
    moderator (per suite) under different names, they are paired. ``moderator_a`` /
    ``moderator_b`` pick one moderator from each run explicitly.
    """
    pairs = []
    for ra in a.results:
        if moderator_a and ra.moderator != moderator_a:
            continue
        cands = [rb for rb in b.results if rb.suite_key == ra.suite_key]
        want = moderator_b or (moderator_a if moderator_a and not moderator_b else ra.moderator)
        match = [rb for rb in cands if rb.moderator == want]
        if not match and not (moderator_a or moderator_b):
            mods_a = {r.moderator for r in a.results if r.suite_key == ra.suite_key}
            if len(mods_a) == 1 and len(cands) == 1:
                match = cands
        if match:
            pairs.append((ra, match[0]))
    if not pairs:
        raise GateError(
            "no suite × moderator pairs in common",
            where=f"{a.run_id} vs {b.run_id}",
            expected="the same suite and moderator name in both runs",
            actual=f"A: {sorted({r.moderator for r in a.results})}, B: {sorted({r.moderator for r in b.results})}",
            fix="pick moderators with --moderator-a / --moderator-b",
        )
    return pairs


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


def _cats(frame: Any) -> list[str]:
    return [c[5:] for c in frame.columns if c.startswith("gold.")]


def align(fa: Any, fb: Any) -> Aligned:
    """Inner-join two prediction frames by id; items whose content hash differs are dropped."""
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
        len(fa) - len(m) - n_mismatch,
        len(fb) - len(m) - n_mismatch,
        n_mismatch,
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

    from audit.metrics import get_metric, metric_names, percentile_interval
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
    declared_diffs: set[tuple[str, str, str]] | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Compare every paired suite × moderator; one entry per pair with the comparisons.

    ``declared_diffs``: ``(suite, digest A, digest B)`` changes declared by a suite diff
    (:func:`audit.change.suite_diff.declared_digest_pairs`); they pair like a match.
    """
    out = []
    for ra, rb in pair_results(a, b, moderator_a, moderator_b):
        match = ra.digest == rb.digest and ra.digest is not None
        declared = (ra.suite, str(ra.digest), str(rb.digest)) in (declared_diffs or set())
        if not match and not allow_digest_mismatch and not declared:
            raise GateError(
                "suite digests differ: the runs did not score the same items",
                where=f"{ra.suite_key}",
                expected=str(ra.digest)[:12],
                actual=str(rb.digest)[:12],
                fix="declare the change (audit suite diff --out) or pass --allow-digest-mismatch",
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
                "n": int(al.ids.size),
                "n_only_a": al.n_only_a,
                "n_only_b": al.n_only_b,
                "n_hash_mismatch": al.n_hash_mismatch,
                "error_rate_a": float(al.err_a.mean()) if al.ids.size else float("nan"),
                "error_rate_b": float(al.err_b.mean()) if al.ids.size else float("nan"),
                "a": ra,
                "b": rb,
                "categories": cmp,
            }
        )
    return out


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
