"""Inter-annotator agreement with bootstrap intervals over items (docs/methods/labels.md §2).

Every statistic here is a ratio of sums over items of per-item sufficient statistics
(a coincidence matrix, a confusion table, rating counts). A bootstrap replicate that
draws item ``i`` ``w_i`` times therefore only reweights those sums, so all replicates
come from one ``(B, n) @ (n, ·)`` product instead of B recomputations, and the point
estimate is the replicate with every weight 1. Undefined values are NaN with a reason.

Statistics (references in the methods file):

* Krippendorff's alpha, nominal and ordinal metric, any number of raters, missing
  ratings allowed (Krippendorff 2011, "Computing Krippendorff's alpha-reliability");
* Cohen's kappa for every annotator pair with overlap (Cohen 1960), and their mean;
* Fleiss' kappa on the items with the modal number of raters (Fleiss 1971);
* positive / negative specific agreement generalised to several raters
  (Fleiss 1975; Uebersax 1982): ``sum p_i(p_i-1) / sum p_i(m_i-1)``;
* per-annotator agreement with the leave-one-out majority of the others and with gold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from audit.errors import SuiteError

Level = Literal["nominal", "ordinal"]

#: Krippendorff (2004, 2011): alpha >= 0.800 reliable, >= 0.667 tentative conclusions.
DEFAULT_THRESHOLD = 0.667
RELIABLE = 0.800


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a percentile bootstrap interval over items."""

    value: float
    low: float
    high: float
    n: int
    """Items that entered the statistic (pairable items, overlapping items...)."""
    n_boot: int
    """Replicates with a defined value (out of the requested number)."""
    reason: str | None = None
    """Why ``value`` is NaN (None when defined)."""

    def to_dict(self) -> dict[str, Any]:
        def f(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "value": f(self.value),
            "low": f(self.low),
            "high": f(self.high),
            "n": self.n,
            "n_boot": self.n_boot,
            "reason": self.reason,
        }


def bootstrap_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(1 + n_boot, n) item weights: row 0 all ones (the point estimate), then
    multinomial resampling counts (a nonparametric bootstrap over items)."""
    rng = np.random.default_rng(seed)
    w = np.ones((1 + n_boot, n))
    if n_boot and n:
        w[1:] = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)
    return w


def _summarise(vals: np.ndarray, n: int, conf: float, reason: str | None) -> Estimate:
    point = float(vals[0])
    reps = vals[1:]
    ok = reps[~np.isnan(reps)]
    if math.isnan(point):
        return Estimate(math.nan, math.nan, math.nan, n, int(ok.size), reason or "undefined")
    if ok.size < 2:
        return Estimate(point, math.nan, math.nan, n, int(ok.size), None)
    a = (1 - conf) / 2
    lo, hi = np.quantile(ok, [a, 1 - a])
    return Estimate(point, float(lo), float(hi), n, int(ok.size), None)


def _codes(ratings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observed values (sorted) and an int code matrix (-1 where missing)."""
    mask = ~np.isnan(ratings)
    values = np.unique(ratings[mask])
    codes = np.full(ratings.shape, -1, dtype=np.int64)
    codes[mask] = np.searchsorted(values, ratings[mask])
    return values, codes


def _counts(codes: np.ndarray, v: int) -> np.ndarray:
    """(n, V) number of ratings of each value per item."""
    out = np.zeros((codes.shape[0], v))
    for c in range(v):
        out[:, c] = (codes == c).sum(axis=1)
    return out


def krippendorff_alpha(
    ratings: np.ndarray,
    level: Level = "nominal",
    *,
    weights: np.ndarray | None = None,
    conf: float = 0.95,
) -> Estimate:
    """Krippendorff's alpha for an (items, raters) matrix with NaN for missing.

    Items with fewer than two ratings are not pairable and do not enter (as in
    Krippendorff 2011). ``weights``: (R, n) bootstrap weights (row 0 = point).
    """
    ratings = np.asarray(ratings, dtype=float)
    values, codes = _codes(ratings)
    v = values.size
    counts = _counts(codes, v)
    m = counts.sum(axis=1)
    pairable = m >= 2
    w = weights if weights is not None else np.ones((1, ratings.shape[0]))
    if not pairable.any():
        return _summarise(np.full(w.shape[0], np.nan), 0, conf, "no item has two ratings")
    if v < 2:
        return _summarise(
            np.full(w.shape[0], np.nan),
            int(pairable.sum()),
            conf,
            "every rating has the same value (no variation: expected disagreement 0)",
        )
    c = counts[pairable]
    mm = m[pairable]
    # per-item coincidences o_ck = n_c (n_k - [c = k]) / (m - 1)
    coinc = (c[:, :, None] * c[:, None, :] - c[:, :, None] * np.eye(v)[None]) / (mm - 1)[
        :, None, None
    ]
    o = w[:, pairable] @ coinc.reshape(len(mm), v * v)
    o = o.reshape(-1, v, v)
    nc = o.sum(axis=2)  # (R, V) value marginals
    ntot = nc.sum(axis=1)
    if level == "nominal":
        d2 = np.broadcast_to(1.0 - np.eye(v), o.shape)
    else:  # ordinal metric: ranks between c and k weighted by the sample's marginals
        cum = np.cumsum(nc, axis=1)
        lo_idx = np.minimum.outer(np.arange(v), np.arange(v))
        hi_idx = np.maximum.outer(np.arange(v), np.arange(v))
        between = cum[:, hi_idx] - cum[:, lo_idx] + nc[:, lo_idx]  # sum_{g=lo}^{hi} n_g
        d2 = (between - (nc[:, :, None] + nc[:, None, :]) / 2) ** 2
    num = (o * d2).sum(axis=(1, 2))
    den = (nc[:, :, None] * nc[:, None, :] * d2).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = np.where(den > 0, 1.0 - (ntot - 1) * num / den, np.nan)
    return _summarise(alpha, int(pairable.sum()), conf, "no variation in this sample")


def _kappa_vec(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, int]:
    """Cohen's kappa per weight row on the items both raters rated, and their count."""
    both = ~np.isnan(a) & ~np.isnan(b)
    n = int(both.sum())
    if n == 0:
        return np.full(w.shape[0], np.nan), 0
    values = np.unique(np.concatenate([a[both], b[both]]))
    v = values.size
    ia = np.searchsorted(values, a[both])
    ib = np.searchsorted(values, b[both])
    onehot = np.zeros((n, v * v))
    onehot[np.arange(n), ia * v + ib] = 1.0
    t = (w[:, both] @ onehot).reshape(-1, v, v)
    tot = t.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        po = np.trace(t, axis1=1, axis2=2) / tot
        pe = (t.sum(axis=2) * t.sum(axis=1)).sum(axis=1) / tot**2
        # chance agreement 1 (both raters constant on the same value): undefined
        kappa = np.where(np.isclose(pe, 1.0, rtol=0, atol=1e-15), np.nan, (po - pe) / (1 - pe))
    return kappa, n


def cohen_kappa(
    a: np.ndarray,
    b: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    conf: float = 0.95,
) -> Estimate:
    """Cohen's kappa of two raters on the items both rated (NaN elsewhere)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    w = weights if weights is not None else np.ones((1, a.size))
    kappa, n = _kappa_vec(a, b, w)
    if n == 0:
        return _summarise(kappa, 0, conf, "the two raters share no item")
    reason = "both raters gave one and the same value on every shared item (chance agreement 1)"
    return _summarise(kappa, n, conf, reason)


def fleiss_kappa(
    ratings: np.ndarray,
    raters: int | None = None,
    *,
    weights: np.ndarray | None = None,
    conf: float = 0.95,
) -> tuple[Estimate, int]:
    """Fleiss' kappa on the items rated by exactly ``raters`` annotators (default: the
    most common number of ratings among pairable items). Returns (estimate, raters)."""
    ratings = np.asarray(ratings, dtype=float)
    values, codes = _codes(ratings)
    counts = _counts(codes, values.size)
    m = counts.sum(axis=1).astype(int)
    w = weights if weights is not None else np.ones((1, ratings.shape[0]))
    if raters is None:
        pairable = m[m >= 2]
        if pairable.size == 0:
            return _summarise(np.full(w.shape[0], np.nan), 0, conf, "no item has two ratings"), 0
        vals, freq = np.unique(pairable, return_counts=True)
        raters = int(vals[np.argmax(freq)])
    sel = m == raters
    n = int(sel.sum())
    if n == 0 or raters < 2:
        why = f"no item has exactly {raters} ratings"
        return _summarise(np.full(w.shape[0], np.nan), n, conf, why), raters
    c = counts[sel]
    ws = w[:, sel]
    p_i = ((c**2).sum(axis=1) - raters) / (raters * (raters - 1))
    tot = ws.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pbar = ws @ p_i / tot
        pj = (ws @ c) / (tot * raters)[:, None]
        pe = (pj**2).sum(axis=1)
        kappa = np.where(np.isclose(pe, 1.0, rtol=0, atol=1e-15), np.nan, (pbar - pe) / (1 - pe))
    return _summarise(kappa, n, conf, "every rating has the same value (chance agreement 1)"), (
        raters
    )


def specific_agreement(
    ratings: np.ndarray,
    *,
    positive: bool = True,
    weights: np.ndarray | None = None,
    conf: float = 0.95,
) -> Estimate:
    """Positive (or negative) specific agreement of binary 0/1 ratings over all rater
    pairs within items: ``sum p_i (p_i - 1) / sum p_i (m_i - 1)`` with ``p_i`` the
    positive (negative) ratings of item i; for two raters ``2a / (2a + b + c)``."""
    ratings = np.asarray(ratings, dtype=float)
    target = 1.0 if positive else 0.0
    p = (ratings == target).sum(axis=1).astype(float)
    m = (~np.isnan(ratings)).sum(axis=1).astype(float)
    sel = m >= 2
    w = weights if weights is not None else np.ones((1, ratings.shape[0]))
    num = w[:, sel] @ (p[sel] * (p[sel] - 1))
    den = w[:, sel] @ (p[sel] * (m[sel] - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        val = np.where(den > 0, num / den, np.nan)
    side = "positive" if positive else "negative"
    return _summarise(val, int(sel.sum()), conf, f"no {side} rating on a pairable item")


def percent_agreement(
    ratings: np.ndarray, *, weights: np.ndarray | None = None, conf: float = 0.95
) -> Estimate:
    """Share of agreeing rater pairs, averaged over pairable items."""
    ratings = np.asarray(ratings, dtype=float)
    values, codes = _codes(ratings)
    c = _counts(codes, values.size)
    m = c.sum(axis=1)
    sel = m >= 2
    per_item = ((c[sel] * (c[sel] - 1)).sum(axis=1)) / (m[sel] * (m[sel] - 1))
    w = weights if weights is not None else np.ones((1, ratings.shape[0]))
    with np.errstate(invalid="ignore", divide="ignore"):
        val = (w[:, sel] @ per_item) / w[:, sel].sum(axis=1)
    return _summarise(val, int(sel.sum()), conf, "no item has two ratings")


def loo_majority(ratings: np.ndarray, j: int) -> np.ndarray:
    """Strict majority of the other raters on each item (NaN on ties or < 1 other)."""
    others = np.delete(ratings, j, axis=1)
    out = np.full(ratings.shape[0], np.nan)
    values = np.unique(others[~np.isnan(others)])
    if values.size == 0:
        return out
    counts = np.stack([(others == v).sum(axis=1) for v in values], axis=1)
    top = counts.max(axis=1)
    unique_top = (counts == top[:, None]).sum(axis=1) == 1
    ok = (top > 0) & unique_top
    out[ok] = values[np.argmax(counts[ok], axis=1)]
    return out


def _agree_rate(a: np.ndarray, b: np.ndarray, w: np.ndarray, conf: float) -> Estimate:
    both = ~np.isnan(a) & ~np.isnan(b)
    n = int(both.sum())
    eq = (a[both] == b[both]).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        val = (w[:, both] @ eq) / w[:, both].sum(axis=1)
    return _summarise(val, n, conf, "no shared item")


def category_agreement(
    ratings: np.ndarray,
    annotators: tuple[str, ...],
    *,
    gold: np.ndarray | None = None,
    binary: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
    conf: float = 0.95,
    weights: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every agreement statistic of one (items, annotators) rating matrix.

    ``gold``: (n,) float gold (NaN unknown) for per-annotator agreement with gold.
    ``binary``: also positive / negative specific agreement (0/1 ratings).
    """
    n = ratings.shape[0]
    w = weights if weights is not None else bootstrap_weights(n, n_boot, seed)
    m = (~np.isnan(ratings)).sum(axis=1)
    stats: dict[str, Any] = {
        "krippendorff_alpha_nominal": krippendorff_alpha(ratings, "nominal", weights=w, conf=conf),
        "krippendorff_alpha_ordinal": krippendorff_alpha(ratings, "ordinal", weights=w, conf=conf),
        "percent_agreement": percent_agreement(ratings, weights=w, conf=conf),
    }
    fk, raters = fleiss_kappa(ratings, weights=w, conf=conf)
    stats["fleiss_kappa"] = fk
    if binary:
        stats["positive_specific_agreement"] = specific_agreement(
            ratings, positive=True, weights=w, conf=conf
        )
        stats["negative_specific_agreement"] = specific_agreement(
            ratings, positive=False, weights=w, conf=conf
        )
    pairs = []
    for i in range(len(annotators)):
        for j in range(i + 1, len(annotators)):
            both = ~np.isnan(ratings[:, i]) & ~np.isnan(ratings[:, j])
            if not both.any():
                continue  # pairs with no overlap are not pairs of this design
            est = cohen_kappa(ratings[:, i], ratings[:, j], weights=w, conf=conf)
            pairs.append({"a": annotators[i], "b": annotators[j], **est.to_dict()})
    stats["cohen_kappa_mean"] = _mean_kappa(ratings, w, conf)
    per_annotator = []
    for j, name in enumerate(annotators):
        rated = ~np.isnan(ratings[:, j])
        entry: dict[str, Any] = {"annotator": name, "n_items": int(rated.sum())}
        maj = loo_majority(ratings, j)
        entry["vs_majority"] = {
            "agreement": _agree_rate(ratings[:, j], maj, w, conf).to_dict(),
            "kappa": cohen_kappa(ratings[:, j], maj, weights=w, conf=conf).to_dict(),
        }
        if gold is not None:
            entry["vs_gold"] = {
                "agreement": _agree_rate(ratings[:, j], gold, w, conf).to_dict(),
                "kappa": cohen_kappa(ratings[:, j], gold, weights=w, conf=conf).to_dict(),
            }
        per_annotator.append(entry)
    return {
        "n_items": int(n),
        "n_pairable": int((m >= 2).sum()),
        "n_single": int((m == 1).sum()),
        "n_unrated": int((m == 0).sum()),
        "n_judgements": int(m.sum()),
        "raters_per_item": {str(int(k)): int(v) for k, v in zip(*np.unique(m, return_counts=True))},
        "fleiss_raters": raters,
        "stats": {k: v.to_dict() for k, v in stats.items()},
        "cohen_kappa_pairs": pairs,
        "annotators": per_annotator,
    }


def _mean_kappa(ratings: np.ndarray, w: np.ndarray, conf: float) -> Estimate:
    """Mean Cohen's kappa over annotator pairs with overlap, replicate by replicate
    (pairs undefined in a replicate are left out of that replicate's mean)."""
    a_n = ratings.shape[1]
    per_pair = []
    for i in range(a_n):
        for j in range(i + 1, a_n):
            both = ~np.isnan(ratings[:, i]) & ~np.isnan(ratings[:, j])
            if not both.any():
                continue
            per_pair.append(_kappa_vec(ratings[:, i], ratings[:, j], w)[0])
    if not per_pair:
        return _summarise(np.full(w.shape[0], np.nan), 0, conf, "no annotator pair shares an item")
    k = np.stack(per_pair, axis=1)
    defined = ~np.isnan(k)
    cnt = defined.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, np.where(defined, k, 0.0).sum(axis=1) / cnt, np.nan)
    return _summarise(mean, len(per_pair), conf, "every pair's kappa is undefined")


def reliability_band(alpha: float | None, threshold: float) -> str:
    """'reliable' (>= 0.8), 'tentative' (>= threshold), 'unreliable', or 'undefined'."""
    if alpha is None or math.isnan(alpha):
        return "undefined"
    if alpha >= RELIABLE:
        return "reliable"
    return "tentative" if alpha >= threshold else "unreliable"


def check_pairable(ratings: np.ndarray, where: str, field: str) -> None:
    """Fail when no item has two ratings: no agreement statistic is defined."""
    m = (~np.isnan(ratings)).sum(axis=1)
    if not (m >= 2).any():
        raise SuiteError(
            "no item has two or more annotators: agreement is undefined",
            where=where,
            field=field,
            expected="items judged by at least two annotators",
            actual=f"{int((m == 1).sum())} one-annotator items, {int((m == 0).sum())} unrated",
            fix="check the card's annotations block or the data",
        )


def _adjudicated_gold(suite: Any, adjudicated: Any) -> np.ndarray:
    """(n, K) float gold of ``adjudicated`` aligned to ``suite``'s rows (NaN unknown).

    Raises:
        SuiteError: another policy, or an item missing / changed in the adjudicated suite.
    """
    where = str(adjudicated.card_path)
    if tuple(adjudicated.categories) != tuple(suite.categories):
        raise SuiteError(
            "adjudicated suite uses another policy's categories",
            where=where,
            field="policy",
            expected=repr(suite.card.policy),
            actual=repr(adjudicated.card.policy),
        )
    pos = {iid: i for i, iid in enumerate(adjudicated.dataset["id"])}
    hashes = adjudicated.dataset["content_hash"]
    rows = []
    for iid, h in zip(suite.dataset["id"], suite.dataset["content_hash"]):
        j = pos.get(iid)
        if j is None or hashes[j] != h:
            raise SuiteError(
                f"item {iid!r} {'missing from' if j is None else 'changed in'} the "
                "adjudicated suite",
                where=where,
                field="id",
                expected="the same items (ids and content hashes)",
                actual=repr(iid),
                fix="pass the version adjudicated from this suite",
            )
        rows.append(j)
    lab = adjudicated.labels[rows]
    out = lab.astype(float)
    out[lab == -1] = np.nan
    return np.asarray(out)


def _checked_inputs(suite: Any, threshold: float) -> tuple[Any, str]:
    """The suite's per-annotator labels and card path, or a one-line error."""
    from audit.suites.loader import LoadedSuite

    assert isinstance(suite, LoadedSuite)
    where = str(suite.card_path)
    if suite.annotations is None:
        raise SuiteError(
            "suite has no per-annotator labels",
            where=where,
            field="annotations",
            expected="a card with an 'annotations:' block (long or wide format)",
            actual="none",
            fix="use a multi-annotator card, e.g. suites/convabuse",
        )
    if not 0.0 < threshold <= 1.0:
        raise SuiteError(
            "alpha threshold out of range",
            where="--threshold",
            field="threshold",
            expected="a number in (0, 1]",
            actual=str(threshold),
        )
    return suite.annotations, where


def _category_record(
    ann: Any,
    cat: str,
    gold_all: np.ndarray,
    threshold: float,
    conf: float,
    weights: np.ndarray,
    where: str,
) -> dict[str, Any]:
    """One covered category: every statistic, its reliability band and whether its gold
    is unreliable (nominal alpha below ``threshold`` or undefined)."""
    ratings = ann.category(cat)
    check_pairable(ratings, where, f"labels ({cat})")
    k = ann.categories.index(cat)
    res = category_agreement(
        ratings, ann.annotators, gold=gold_all[:, k], binary=True, conf=conf, weights=weights
    )
    band = reliability_band(res["stats"]["krippendorff_alpha_nominal"]["value"], threshold)
    res["reliability"] = band
    res["unreliable_gold"] = band in ("unreliable", "undefined")
    res["gold_positives"] = int((ann.gold[:, k] == 1).sum())
    res["gold_unknown"] = int((ann.gold[:, k] == -1).sum())
    return res


#: Version of the agreement record layout (``agreement.json``).
RECORD_SCHEMA = 1


def suite_agreement(
    suite: Any,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    n_boot: int = 1000,
    seed: int = 0,
    conf: float = 0.95,
    adjudicated: Any = None,
) -> dict[str, Any]:
    """The agreement record of a loaded multi-annotator suite (docs/methods/labels.md §2).

    ``adjudicated``: a loaded suite with adjudicated gold for the same items (matched by
    id and content hash, e.g. a version written by ``audit adjudicate import``); each
    annotator is then also compared with it (``vs_gold``, ``gold_source``).

    Per covered category (binary ratings) and per ordinal scale: every statistic of
    :func:`category_agreement`. A category whose nominal alpha is below ``threshold``
    (or undefined) is listed in ``unreliable_gold``; the gate may only warn on it.

    Raises:
        SuiteError: the suite has no per-annotator labels, or no item of a category
            has two ratings.
    """
    ann, where = _checked_inputs(suite, threshold)
    weights = bootstrap_weights(len(ann), n_boot, seed)
    gold_all = ann.gold.astype(float)
    gold_all[ann.gold == -1] = np.nan
    gold_source = "suite (majority of annotators, includes the annotator)"
    if adjudicated is not None:
        gold_all = _adjudicated_gold(suite, adjudicated)
        gold_source = f"adjudicated: {adjudicated.card_path}"
    cats = {
        cat: _category_record(ann, cat, gold_all, threshold, conf, weights, where)
        for cat in ann.covers
    }
    unreliable = [c for c, res in cats.items() if res["unreliable_gold"]]
    scales: dict[str, Any] = {}
    for name, ratings in ann.scales.items():
        check_pairable(ratings, where, f"annotations.scales ({name})")
        scales[name] = category_agreement(
            ratings, ann.annotators, binary=False, conf=conf, weights=weights
        )
    return {
        "kind": "agreement",
        "schema": RECORD_SCHEMA,
        "suite": {
            "name": suite.name,
            "version": suite.card.version,
            "split": suite.split,
            "digest": suite.digest,
            "card": where,
            "n_items": len(suite),
            "annotators": list(ann.annotators),
            "gold_method": ann.gold_method,
            "collapse": dict(ann.stats),
            "gold_source": gold_source,
        },
        "settings": {
            "threshold": threshold,
            "reliability_statistic": "krippendorff_alpha_nominal",
            "conf": conf,
            "bootstrap": n_boot,
            "seed": seed,
            "interval": "percentile bootstrap over items",
        },
        "categories": cats,
        "scales": scales,
        "unreliable_gold": unreliable,
    }
