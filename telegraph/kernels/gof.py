"""Goodness of fit of a telegraph fit to one gene's histogram, in Numba.

:func:`pearson_gof` pools adjacent counts into cells that each expect at
least ``min_expected`` cells (the last one holding the upper tail), and
returns Pearson's chi-square against the fitted law together with the Fisher
information of the pooled (grouped) counts. The statistic is not chi2(K-4)
when the parameters are estimated from the ungrouped counts: its null law
involves both informations (Chernoff and Lehmann 1954), and the caller
calibrates the p-value from them (docs/maths.md, "Goodness of fit";
:func:`telegraph.fitting.gof_pvalues`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .poisson_beta import pb_eval

__all__ = ["pearson_gof"]


@njit(cache=True, error_model="numpy")
def pearson_gof(values, weights, groups, capture, n_groups, a, b, lam, min_expected, Ig):
    """Pearson chi-square of the observed histogram against the fitted law,
    with adjacent counts pooled until every cell expects >= min_expected
    cells and the last cell holding the whole upper tail.

    Also returns, in ``Ig``, the Fisher information per cell of the pooled
    (grouped) data about theta = (log a, log b, log lam): the statistic's
    null law with the full-data MLE is chi2(K-1-3) + sum_j l_j chi2(1) with
    l_j the eigenvalues of I^-1 (I - Ig) (Chernoff and Lehmann 1954), which
    the caller uses to calibrate the p-value. Returns (X2, K)."""
    # memory follows the gene's bins, not its largest count: observed cells
    # are read from the bins in value order, expected ones computed count by
    # count; the sweep stops once the rest can only be the tail cell, so its
    # length is set by the fitted law (its 1 - min_expected/total quantile)
    m = values.shape[0]
    ordered = True
    total = 0.0
    nmax = 0
    for i in range(m):
        nmax = max(nmax, values[i])
        total += weights[i]
        if i > 0 and values[i] < values[i - 1]:
            ordered = False
    order = np.arange(m) if ordered else np.argsort(values, kind="mergesort")
    gw = np.zeros(n_groups)
    for i in range(m):
        gw[groups[i]] += weights[i]
    buf = np.zeros(11)
    x2 = 0.0
    k = 0
    o_acc = 0.0
    e_acc = 0.0
    d_acc = np.zeros(3)
    e_used = 0.0
    o_used = 0.0
    d_used = np.zeros(3)
    d_n = np.zeros(3)
    for i in range(3):
        for j in range(3):
            Ig[i, j] = 0.0
    j_bin = 0
    for n in range(nmax + 1):
        # expected cells at n and their derivatives wrt theta
        e_n = 0.0
        d_n[0] = 0.0
        d_n[1] = 0.0
        d_n[2] = 0.0
        for gi in range(n_groups):
            if gw[gi] == 0.0:
                continue
            x = capture[gi] * lam
            pb_eval(float(n), a, b, x, False, buf)
            e = gw[gi] * math.exp(buf[0])
            e_n += e
            d_n[0] += e * a * buf[1]
            d_n[1] += e * b * buf[2]
            d_n[2] += e * x * buf[3]
        o_n = 0.0
        while j_bin < m and values[order[j_bin]] == n:
            o_n += weights[order[j_bin]]
            j_bin += 1
        o_acc += o_n
        e_acc += e_n
        for i in range(3):
            d_acc[i] += d_n[i]
        if e_acc >= min_expected and (total - e_used - e_acc) >= min_expected:
            x2 += (o_acc - e_acc) ** 2 / e_acc
            k += 1
            for i in range(3):
                for j in range(3):
                    Ig[i, j] += d_acc[i] * d_acc[j] / (e_acc * total)
            for i in range(3):
                d_used[i] += d_acc[i]
                d_acc[i] = 0.0
            e_used += e_acc
            o_used += o_acc
            o_acc = 0.0
            e_acc = 0.0
        elif not (total - e_used - e_acc >= min_expected):
            # e_acc only grows: no further cell can close, the rest of the
            # counts belong to the tail cell below
            break
    e_last = total - e_used
    o_last = total - o_used
    if e_last > 0:
        x2 += (o_last - e_last) ** 2 / e_last
        k += 1
        # the tail cell's probability is 1 minus the others'
        for i in range(3):
            for j in range(3):
                Ig[i, j] += d_used[i] * d_used[j] / (e_last * total)
    return x2, k

