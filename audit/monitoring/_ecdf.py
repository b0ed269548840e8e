"""Exact empirical-CDF queries on scores in [0, 1] without sorting the whole sample.

Drift metrics need three things from a sample: order statistics (the reference-quantile
bin edges), counts ``#{x ≤ q}`` at a few query values (bin counts), and the two-sample
Kolmogorov–Smirnov statistic. All three are usually computed from a full sort, which at
production sizes (millions of scores per category) dominates the run time.

:class:`SampleIndex` buckets the sample once into ``G = 2**16`` equal-width cells
(``cell(x) = min(⌊x·G⌋, G − 1)``; ``G`` is a power of two, so ``x·G`` is exact in binary
floating point and ``cell`` is monotone in ``x``) and keeps the cumulative cell counts.
Any exact answer then needs only the elements of the few cells that contain a query: those
elements are gathered and sorted, and everything else comes from the cumulative counts.
The answers are exact (identical to a full sort), only faster; see
``docs/methods/drift.md`` ("Computation").
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

GRID = 1 << 16
"""Number of equal-width cells; a power of two so that ``x * GRID`` is exact."""

FloatArray = NDArray[np.floating]


class SampleIndex:
    """Cell counts of one sample of finite scores in [0, 1] (validated by the caller).

    Attributes:
        x: the sample (not copied, not sorted).
        n: its size.
        cum: ``cum[k]`` = number of elements in cells ``0..k``.
    """

    def __init__(
        self, x: FloatArray, grid: int = GRID, buffer: NDArray[np.int64] | None = None
    ) -> None:
        """Index ``x``; ``buffer`` (int64, at least ``x.size`` long) is used for the cell
        numbers when given, so a caller indexing many samples in turn pays the page
        faults of one large allocation once instead of once per sample."""
        self.x = x
        self.n = int(x.size)
        self.grid = grid
        # One multiply straight into an int64 buffer (truncation = floor for x >= 0): no
        # float temporary, and bincount takes int64 without a conversion pass. A score of
        # exactly 1.0 lands in the extra cell G, folded into cell G - 1 below (and in
        # :meth:`subset`), which saves a clipping pass over the sample.
        if buffer is not None and buffer.size >= self.n:
            self.cell = buffer[: self.n]
        else:
            self.cell = np.empty(x.shape, dtype=np.int64)
        np.multiply(x, grid, out=self.cell, casting="unsafe")
        counts = np.bincount(self.cell, minlength=grid + 1)
        counts[grid - 1] += counts[grid]
        self.counts = counts[:grid]
        self.cum = np.cumsum(self.counts)

    def cell_of(self, q: FloatArray) -> NDArray[np.int64]:
        """Cell of each query value (queries below 0 map to 0, above 1 to ``G − 1``)."""
        c = np.floor(np.asarray(q, dtype=np.float64) * self.grid)
        return np.clip(c, 0, self.grid - 1).astype(np.int64)

    def subset(self, cells: NDArray[np.int64]) -> tuple[FloatArray, NDArray[np.int64]]:
        """Sorted elements of ``cells`` and the cumulative counts of all *other* cells.

        Returns:
            ``(sub, other_cum)``: ``sub`` the sorted elements lying in ``cells``;
            ``other_cum[k]`` the number of elements in cells ``0..k`` not in ``cells``.
        """
        sel = np.zeros(self.grid + 1, dtype=bool)
        sel[cells] = True
        sel[self.grid] = sel[self.grid - 1]  # the x == 1.0 overflow cell
        sub = np.sort(self.x[sel[self.cell]])
        other_cum = np.cumsum(np.where(sel[: self.grid], 0, self.counts))
        return sub, other_cum

    def count_le(
        self, q: FloatArray, sub: FloatArray, other_cum: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """``#{x ≤ q}`` for queries whose cells were all passed to :meth:`subset`.

        Elements of selected cells are counted in ``sub`` (the selected cells above
        ``cell(q)`` hold only values ``> q``); elements of unselected cells lie wholly
        below or above ``cell(q)``, so the cumulative count below it is exact.
        """
        qa = np.asarray(q, dtype=np.float64)
        c = self.cell_of(qa)
        below = np.where(c > 0, other_cum[np.maximum(c - 1, 0)], 0)
        out: NDArray[np.int64] = np.searchsorted(sub, qa, side="right") + below
        # queries beyond [0, 1] are outside every cell: all or nothing
        out = np.where(qa < 0, 0, np.where(qa >= 1.0, self.n, out))
        return out

    def quantiles(self, probs: FloatArray) -> FloatArray:
        """Order statistics by the inverted-CDF rule (``numpy`` ``method="inverted_cdf"``).

        For ``p`` the result is ``x_(r)`` with ``r = ⌈n·p⌉`` (at least 1), computed the
        way numpy does (``j = ⌊n·p⌋``, ``r = j`` when ``n·p`` is whole, else ``j + 1``) so
        the two agree bit for bit.
        """
        if self.n == 0:
            return np.full(np.shape(probs), np.nan)
        p = np.asarray(probs, dtype=np.float64)
        np_ = self.n * p
        j = np.floor(np_)
        r = np.where(np_ - j == 0, j, j + 1).astype(np.int64)
        r = np.clip(r, 1, self.n)
        cells = np.searchsorted(self.cum, r, side="left").astype(np.int64)
        sub, other = self.subset(np.unique(cells))
        below_other = np.where(cells > 0, other[np.maximum(cells - 1, 0)], 0)
        out: FloatArray = sub[r - 1 - below_other]
        return out


def ks_statistic(a: SampleIndex, b: SampleIndex) -> float:
    """Exact two-sample KS statistic ``D = sup_x |F_a(x) − F_b(x)|``.

    The ECDFs are known exactly at every cell's right end; inside cell ``k`` both rise
    monotonically from their values at the previous boundary, so the difference there is
    bounded by ``U_k = max(|F_a(k−1) − F_b(k)|, |F_a(k) − F_b(k−1)|)``. Only cells whose
    bound exceeds the best boundary value need their points evaluated exactly.
    NaN when either sample is empty.
    """
    if a.n == 0 or b.n == 0:
        return float("nan")
    fa = a.cum / a.n
    fb = b.cum / b.n
    lower = float(np.max(np.abs(fa - fb)))
    pa = np.concatenate(([0.0], fa[:-1]))
    pb = np.concatenate(([0.0], fb[:-1]))
    upper = np.maximum(np.abs(pa - fb), np.abs(fa - pb))
    need = np.flatnonzero(upper > lower).astype(np.int64)
    if need.size == 0:
        return lower
    sub_a, oa = a.subset(need)
    sub_b, ob = b.subset(need)
    pts = np.concatenate((sub_a, sub_b))
    if pts.size == 0:
        return lower
    da = a.count_le(pts, sub_a, oa) / a.n
    db = b.count_le(pts, sub_b, ob) / b.n
    return max(lower, float(np.max(np.abs(da - db))))


def _need_cells(a: SampleIndex, b: SampleIndex) -> tuple[float, NDArray[np.int64]]:
    """Best boundary value of ``|F_a − F_b|`` and the cells that could exceed it."""
    fa = a.cum / a.n
    fb = b.cum / b.n
    lower = float(np.max(np.abs(fa - fb)))
    pa = np.concatenate(([0.0], fa[:-1]))
    pb = np.concatenate(([0.0], fb[:-1]))
    upper = np.maximum(np.abs(pa - fb), np.abs(fa - pb))
    return lower, np.flatnonzero(upper > lower).astype(np.int64)


def _quantile_cells(
    a: SampleIndex, probs: FloatArray
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Ranks (1-based, numpy's inverted-CDF rule) and their cells."""
    p = np.asarray(probs, dtype=np.float64)
    np_ = a.n * p
    j = np.floor(np_)
    r = np.clip(np.where(np_ - j == 0, j, j + 1).astype(np.int64), 1, a.n)
    return r, np.searchsorted(a.cum, r, side="left").astype(np.int64)


def compare_samples(
    ref: SampleIndex, cur: SampleIndex, n_bins: int
) -> tuple[FloatArray, NDArray[np.int64], NDArray[np.int64], float]:
    """Everything drift needs from two samples, with one gather per sample.

    Returns:
        ``(edges, ref_counts, cur_counts, ks_d)``: the distinct reference quantiles at
        ``j / n_bins`` (the interior edges of right-closed bins), the counts of both
        samples in those bins, and the exact KS statistic. Both samples non-empty.
    """
    # cells the KS statistic must look into, and the cells of the quantile ranks: both
    # known from the cumulative counts alone, so each sample is gathered only once
    lower, need = _need_cells(ref, cur)
    ranks, qcells = _quantile_cells(ref, np.arange(1, n_bins) / n_bins)
    cells = np.union1d(need, qcells)
    sub_r, oth_r = ref.subset(cells)
    below = np.where(qcells > 0, oth_r[np.maximum(qcells - 1, 0)], 0)
    edges: FloatArray = np.unique(sub_r[ranks - 1 - below])
    # the edges are reference values, so their cells are among ``qcells``; a current
    # sample needs the same cells to count below an edge exactly
    sub_c, oth_c = cur.subset(cells)
    le_r = ref.count_le(edges, sub_r, oth_r)
    le_c = cur.count_le(edges, sub_c, oth_c)
    rc = np.diff(np.concatenate(([0], le_r, [ref.n]))).astype(np.int64)
    cc = np.diff(np.concatenate(([0], le_c, [cur.n]))).astype(np.int64)
    d = lower
    if need.size:
        pts = np.concatenate(
            (sub_r[np.isin(ref.cell_of(sub_r), need)], sub_c[np.isin(cur.cell_of(sub_c), need)])
        )
        if pts.size:
            da = ref.count_le(pts, sub_r, oth_r) / ref.n
            db = cur.count_le(pts, sub_c, oth_c) / cur.n
            d = max(d, float(np.max(np.abs(da - db))))
    return edges, rc, cc, d
