"""Score recalibration maps: Platt, isotonic, temperature (docs/methods.md §4).

Each calibrator is a monotone map ``[0, 1] → [0, 1]`` fitted on (score, label) pairs
and stored as a handful of numbers, so it can be written to safetensors/JSON and
applied to any moderator's scores without pickles:

* **Platt** (Platt 1999): ``σ(a · logit(s) + b)`` fitted by maximum likelihood with
  Platt's smoothed targets ``(N₊ + 1)/(N₊ + 2)`` and ``1/(N₋ + 2)`` (guards against
  separable data), constrained to ``a ≥ 0`` so the map never reverses the ranking; two
  parameters, for little data.
* **Temperature** (Guo et al., ICML 2017, "On calibration of modern neural networks"):
  ``σ(logit(s) / T)``, one parameter: for logit-based judges whose ranking is right but
  whose confidence is not.
* **Isotonic** (Zadrozny & Elkan, KDD 2002): the pool-adjacent-violators fit of the
  labels on the score order, stored as knots and applied by linear interpolation between
  them (flat beyond the end knots); for ≥ ~1k items per category.

Scores are clipped to ``[1e-6, 1 − 1e-6]`` before ``logit`` so 0 and 1 stay finite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Method = Literal["platt", "isotonic", "temperature"]
METHODS: tuple[Method, ...] = ("platt", "isotonic", "temperature")
_CLIP = 1e-6

FloatArray = NDArray[np.float64]


def _logit(s: FloatArray) -> FloatArray:
    c = np.clip(s, _CLIP, 1 - _CLIP)
    out: FloatArray = np.log(c) - np.log1p(-c)
    return out


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for large |z|
    return out


@dataclass(frozen=True)
class Calibrator:
    """A fitted map. ``params`` by method: platt ``[a, b]``; temperature ``[T]``;
    isotonic: ``knots_x`` / ``knots_y`` (non-decreasing)."""

    method: Method
    params: tuple[float, ...] = ()
    knots_x: tuple[float, ...] = ()
    knots_y: tuple[float, ...] = ()

    def apply(self, scores: FloatArray) -> FloatArray:
        """Calibrated scores; NaN stays NaN (an unscored item stays unscored)."""
        s = np.asarray(scores, dtype=np.float64)
        nan = np.isnan(s)
        z = np.where(nan, 0.5, s)
        if self.method == "platt":
            a, b = self.params
            out = _sigmoid(a * _logit(z) + b)
        elif self.method == "temperature":
            (t,) = self.params
            out = _sigmoid(_logit(z) / t)
        else:
            out = np.interp(z, np.asarray(self.knots_x), np.asarray(self.knots_y))
        res: FloatArray = np.where(nan, np.nan, out)
        return res


def _newton_logistic(
    x: FloatArray, t: FloatArray, with_slope: bool, iters: int = 100
) -> FloatArray:
    """Maximum-likelihood ``w`` of ``σ(w₀·x + w₁)`` (or ``σ(w₀·x)``) for soft targets ``t``.

    Newton–Raphson with step halving on the log-loss; converges in a few steps here.
    """
    X = np.stack([x, np.ones_like(x)], axis=1) if with_slope else x[:, None]
    w = np.array([1.0, 0.0]) if with_slope else np.array([1.0])

    def loss(w: FloatArray) -> float:
        z = X @ w
        # log(1 + e^z) − t·z, computed stably
        return float(np.sum(np.logaddexp(0.0, z) - t * z))

    cur = loss(w)
    for _ in range(iters):
        p = _sigmoid(X @ w)
        g = X.T @ (p - t)
        h = (X * (p * (1 - p))[:, None]).T @ X + 1e-9 * np.eye(X.shape[1])
        step = np.linalg.solve(h, g)
        lr = 1.0
        while lr > 1e-8:
            nw = w - lr * step
            nl = loss(nw)
            if nl <= cur:
                break
            lr /= 2
        else:
            break
        done = abs(cur - nl) < 1e-12 * max(1.0, abs(cur))
        w, cur = nw, nl
        if done:
            break
    return w


def fit_platt(s: FloatArray, y: NDArray[np.int64]) -> Calibrator:
    """Platt scaling on ``logit(s)`` with Platt's smoothed targets."""
    npos, nneg = int((y == 1).sum()), int((y == 0).sum())
    t = np.where(y == 1, (npos + 1) / (npos + 2), 1 / (nneg + 2))
    a, b = _newton_logistic(_logit(s), t, with_slope=True)
    if a < 0:
        # Scores anti-correlated with the labels: a negative slope would reverse the
        # ranking. The maximum likelihood under a >= 0 is then at a = 0, the (smoothed)
        # base rate for every item: calibration never inverts a model.
        a, b = 0.0, float(np.log(t.mean()) - np.log1p(-t.mean()))
    return Calibrator("platt", (float(a), float(b)))


def fit_temperature(s: FloatArray, y: NDArray[np.int64]) -> Calibrator:
    """Temperature ``T = 1 / w`` of ``σ(w · logit(s))`` by maximum likelihood (``T > 0``)."""
    (w,) = _newton_logistic(_logit(s), y.astype(np.float64), with_slope=False)
    if not w > 0:  # anti-correlated scores: no temperature helps; keep the identity
        w = 1.0
    return Calibrator("temperature", (float(1.0 / w),))


def fit_isotonic(s: FloatArray, y: NDArray[np.int64]) -> Calibrator:
    """Pool-adjacent-violators on the score order; tied scores pooled first."""
    order = np.argsort(s, kind="stable")
    xs, ys = s[order], y[order].astype(np.float64)
    ux, start = np.unique(xs, return_index=True)
    sums = np.add.reduceat(ys, start)
    cnt = np.diff(np.append(start, xs.size)).astype(np.float64)
    # PAVA with a stack of blocks (value, weight, first x, last x)
    vals: list[float] = []
    wts: list[float] = []
    lo: list[float] = []
    hi: list[float] = []
    for xv, sv, cv in zip(ux, sums, cnt):
        vals.append(sv / cv)
        wts.append(cv)
        lo.append(float(xv))
        hi.append(float(xv))
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v2, w2, h2 = vals.pop(), wts.pop(), hi.pop()
            lo.pop()
            w1 = wts[-1]
            vals[-1] = (vals[-1] * w1 + v2 * w2) / (w1 + w2)
            wts[-1] = w1 + w2
            hi[-1] = h2
    # each block is flat from its first to its last score: two knots per block
    kx: list[float] = []
    ky: list[float] = []
    for v, a, b in zip(vals, lo, hi):
        kx.append(a)
        ky.append(v)
        if b > a:
            kx.append(b)
            ky.append(v)
    return Calibrator("isotonic", knots_x=tuple(kx), knots_y=tuple(ky))


def fit(method: Method, s: FloatArray, y: NDArray[np.int64]) -> Calibrator:
    """Fit ``method`` on scores ``s`` and 0/1 labels ``y`` (both already filtered)."""
    if s.size == 0 or math.isnan(float(np.sum(s))):
        raise ValueError("fit needs non-empty, non-NaN scores")
    if method == "platt":
        return fit_platt(s, y)
    if method == "temperature":
        return fit_temperature(s, y)
    if method == "isotonic":
        return fit_isotonic(s, y)
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def apply_calibration(
    scores: np.ndarray, categories: Sequence[str], calibrators: dict[str, Calibrator]
) -> np.ndarray:
    """Columns of ``scores`` (one per category) mapped by their calibrator, others as is."""
    out = np.array(scores, dtype=np.float64, copy=True)
    for k, c in enumerate(categories):
        if c in calibrators:
            out[:, k] = calibrators[c].apply(out[:, k])
    return out
