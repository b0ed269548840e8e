"""Coverage by simulation on a planted population (docs/methods/production.md §7).

One population is planted (:func:`audit.production.synthetic.plant`: beta-mixture
scores, a miscalibrated truth, violators hidden at low scores, an imperfect
reference labeller), stratified once with :func:`audit.production.plan.build_plan`,
then sampled ``reps`` times (SRS without replacement within each stratum, the
human sample nested in the reference sample). Each replicate's 95% intervals are
checked against the population truth.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audit.production.estimators import Ratio, StratifiedSample, bootstrap, classical, ppi
from audit.production.synthetic import Population, plant, write_logs


@dataclass
class Coverage:
    """Coverage counts and mean widths per method and metric."""

    reps: int
    hits: dict[str, int] = field(default_factory=dict)
    width: dict[str, float] = field(default_factory=dict)
    defined: dict[str, int] = field(default_factory=dict)
    truth: dict[str, float] = field(default_factory=dict)

    def rate(self, key: str) -> float:
        """Share of replicates (with a defined interval) whose interval held the truth."""
        d = self.defined.get(key, 0)
        return self.hits.get(key, 0) / d if d else math.nan

    def mean_width(self, key: str) -> float:
        d = self.defined.get(key, 0)
        return self.width.get(key, 0.0) / d if d else math.nan

    def add(self, key: str, lo: float, hi: float, truth: float) -> None:
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return
        self.defined[key] = self.defined.get(key, 0) + 1
        self.hits[key] = self.hits.get(key, 0) + int(lo <= truth <= hi)
        self.width[key] = self.width.get(key, 0.0) + (hi - lo)


@dataclass(frozen=True)
class Design:
    """Stratum index of every population row plus n_h, m_h, N_h and frames."""

    stratum: np.ndarray
    N: np.ndarray
    n: np.ndarray
    m: np.ndarray
    actioned: np.ndarray


def design_from_plan(
    pop: Population,
    category: str,
    *,
    seed: int = 0,
    reference_factor: float = 4.0,
    half_width: float = 0.05,
    floor: int = 30,
    allocation: str = "neyman",
    view_bands: bool = False,
) -> Design:
    """Plan the population's logs once and map every row of ``category`` to its stratum."""
    from audit.production.logs import DecisionLogs, Period
    from audit.production.plan import build_plan

    with tempfile.TemporaryDirectory() as tmp:
        card = write_logs(pop, Path(tmp))
        logs = DecisionLogs.open(card)
        plan = build_plan(
            logs,
            Period.parse("2026-11-30"),
            half_width=half_width,
            floor=floor,
            reference_factor=reference_factor,
            view_bands=view_bands,
        )
    st = [s for s in plan.strata if s.category == category]
    sel = pop.category == category
    score, act, views = pop.score[sel], pop.actioned[sel], pop.views[sel]
    stratum = np.full(int(sel.sum()), -1)
    for j, s in enumerate(st):  # certainty (views) strata come first in each frame, as in SQL
        inb = (score >= s.lo) & ((score < s.hi) | (s.hi >= 1.0))
        if s.views_min is not None:
            inb = views >= s.views_min
        if s.views_lo is not None:
            inb &= views >= s.views_lo
        if s.views_hi is not None:
            inb &= views < s.views_hi
        frame = act if s.frame == "actioned" else ~act
        stratum[inb & frame & (stratum < 0)] = j
    N = np.bincount(stratum, minlength=len(st)).astype(float)
    n = np.array([s.n_h for s in st], float)
    cert = np.array([s.views_min is not None for s in st])
    n[cert] = N[cert]
    if allocation == "proportional":
        free = ~cert
        n[free] = np.maximum(np.round(n[free].sum() * N[free] / N[free].sum()), 2)
    n = np.minimum(n, N)
    m = np.minimum(np.ceil(n * reference_factor), N)
    return Design(stratum, N, n, m, np.array([s.frame == "actioned" for s in st]))


def run_coverage(
    reps: int,
    *,
    n_items: int = 40_000,
    seed: int = 0,
    reference_accuracy: float = 0.9,
    allocation: str = "neyman",
    bootstrap_every: int = 0,
    boot_reps: int = 200,
    view_bands: bool = False,
) -> Coverage:
    """Coverage of classical and PPI++ 95% intervals for precision, recall, prevalence."""
    pop = plant(n_items, ("hate",), seed=seed, reference_accuracy=reference_accuracy)
    des = design_from_plan(pop, "hate", allocation=allocation, view_bands=view_bands)
    y_pop = pop.truth.astype(float)
    f_pop = pop.reference.astype(float)
    A_pop = pop.actioned
    truth = {
        "precision": float(y_pop[A_pop].mean()),
        "recall": float(y_pop[A_pop].sum() / y_pop.sum()),
        "prevalence": float(y_pop.mean()),
        "prevalence_views": float((pop.views * y_pop).sum() / pop.views.sum()),
    }
    v_pop = pop.views.astype(float)
    cov = Coverage(reps=reps, truth=truth)
    rng = np.random.default_rng(seed + 1)
    members = [np.flatnonzero(des.stratum == j) for j in range(len(des.N))]
    frame_grp = (~des.actioned).astype(int)
    for r in range(reps):
        idx, hh, yy = [], [], []
        for j, mem in enumerate(members):
            mh, nh = int(des.m[j]), int(des.n[j])
            pick = rng.choice(mem, size=mh, replace=False)
            y = y_pop[pick].copy()
            y[nh:] = np.nan
            idx.append(pick)
            hh.append(np.full(mh, j))
            yy.append(y)
        ids = np.concatenate(idx)
        h = np.concatenate(hh)
        s = StratifiedSample(N=des.N, m=des.m, h=h, y=np.concatenate(yy), f=f_pop[ids])
        a = A_pop[ids].astype(float)
        one = np.ones(len(ids))
        ratios = {
            "precision": Ratio(a, True, a, False),
            "recall": Ratio(a, True, one, True),
            "prevalence": Ratio(one, True, one, False),
            "prevalence_views": Ratio(v_pop[ids], True, v_pop[ids], False),
        }
        boot = (
            bootstrap(s, list(ratios.values()), boot_reps, seed + r)
            if bootstrap_every and r % bootstrap_every == 0
            else None
        )
        for i, (k, ra) in enumerate(ratios.items()):
            c = classical(s, ra, frame_grp)
            cov.add(f"classical/{k}", c.ci_low, c.ci_high, truth[k])
            p = ppi(s, ra, frame_grp, c)
            cov.add(f"ppi/{k}", p.interval.ci_low, p.interval.ci_high, truth[k])
            if boot is not None:
                cov.add(f"bootstrap/{k}", boot[i][0], boot[i][1], truth[k])
    return cov


def census_check(n_items: int = 5_000, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """Sample every item of every stratum: estimates equal the truth, variance 0."""
    pop = plant(n_items, ("hate",), seed=seed)
    des = design_from_plan(pop, "hate")
    y = pop.truth.astype(float)
    s = StratifiedSample(N=des.N, m=des.N.copy(), h=des.stratum, y=y, f=pop.reference.astype(float))
    a = pop.actioned.astype(float)
    one = np.ones(len(y))
    frame_grp = (~des.actioned).astype(int)
    out = {}
    for k, ra in {
        "precision": Ratio(a, True, a, False),
        "recall": Ratio(a, True, one, True),
        "prevalence": Ratio(one, True, one, False),
    }.items():
        c = classical(s, ra, frame_grp)
        out[k] = (c.value, c.se, float(ra.a(y).sum() / ra.b(y).sum()))
    return out
