"""Calibrated p-values of Pearson goodness-of-fit statistics (Chernoff-Lehmann).

docs/maths.md, "Goodness of fit". Shared by the one-species fit
(:mod:`telegraph.fitting`) and the two-species fit (:mod:`telegraph.jointfit`):
both compare a gene's histogram with its fitted law over classes expecting at
least a few cells each, with parameters estimated from the ungrouped counts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

__all__ = ["chernoff_lehmann", "gof_columns"]


def chernoff_lehmann(x2, K, npar, I_full, I_g):
    """p-values of Pearson statistics ``x2`` over ``K`` classes against laws of
    ``npar`` parameters estimated from the ungrouped counts.

    The statistic is then asymptotically chi2(K-1-p) + sum_j l_j chi2(1),
    where l_j in [0, 1] are the eigenvalues of I^-1 (I - I_g), I the
    information of the ungrouped counts and I_g that of the classes (leading
    p x p blocks of ``I_full``, ``I_g``: arrays (n, P, P), P the largest number
    of parameters) (Chernoff & Lehmann 1954); with fewer classes than
    parameters (K - 1 < p) it is the sum of the K - 1 smallest l_j chi2(1).
    Using chi2(K-1-p) alone, as is common, rejects too often. The weighted sum
    is approximated by a scaled chi-square with the same mean and variance
    (Satterthwaite).

    With a single class (K = 1: observed = expected = all cells) or
    vanishing weights the null law is the point mass at 0: the test has no
    power and its exact p-value is 1 (flag "one_class", "degenerate").

    Returns (statistic, df, p, flag): df = max(K - 1 - p, 0) (NaN without a
    test), flag "ok", "one_class", "degenerate", or "not_computed" where no
    statistic was given.
    """
    x2 = np.asarray(x2, dtype=float)
    K = np.asarray(K, dtype=float)
    npar = np.asarray(npar, dtype=int)
    I_full = np.asarray(I_full, dtype=float)
    I_g = np.asarray(I_g, dtype=float)
    n = x2.shape[0]
    P = I_full.shape[1] if I_full.ndim == 3 else 0
    has = (npar > 0) & np.isfinite(x2) & np.isfinite(K) & (K >= 2)
    weights = np.zeros((n, max(P, 1)))   # the weights l_j, ascending (at most p of them count)
    n_w = np.zeros(n, dtype=int)         # how many of them count
    for p in range(1, P + 1):
        sel = has & (npar == p)
        if not sel.any():
            continue
        A = I_full[sel][:, :p, :p]
        G = I_g[sel][:, :p, :p]
        l = np.ones((int(sel.sum()), p))
        good = np.isfinite(A).all(axis=(1, 2)) & np.isfinite(G).all(axis=(1, 2))
        if good.any():
            w, V = np.linalg.eigh(A[good])
            pd_ = (w > 1e-10 * np.abs(w).max(axis=1, keepdims=True)).all(axis=1)
            w = np.where(w > 0, w, np.inf)
            root = (V / np.sqrt(w)[:, None, :]) @ np.swapaxes(V, 1, 2)   # I^-1/2
            M = root @ (A[good] - G[good]) @ root
            lg = np.clip(np.linalg.eigvalsh(M), 0.0, 1.0)
            # where the information is singular (a flat direction), count that
            # parameter as free: conservative
            lg[~pd_] = 1.0
            l[good] = lg
        l.sort(axis=1)
        weights[sel, :p] = l
        n_w[sel] = np.minimum(K[sel] - 1, p)
    nu0 = np.where(has, np.maximum(K - 1 - npar, 0), 0.0)
    mask = np.arange(weights.shape[1])[None, :] < n_w[:, None]
    mean = nu0 + (weights * mask).sum(axis=1)
    var = 2 * nu0 + 2 * (weights ** 2 * mask).sum(axis=1)
    degenerate = has & ~(mean > 1e-8)
    test = has & ~degenerate
    with np.errstate(invalid="ignore", divide="ignore"):
        c = var / (2 * mean)
        nu = 2 * mean ** 2 / var
        # P(chi2_nu > x2 / c), as scipy.stats.chi2.sf computes it (special.chdtrc; NaN for
        # nu <= 0, 1 below 0) without importing scipy.stats (half a second of start-up)
        p = np.where(nu > 0, special.chdtrc(nu, np.maximum(x2 / c, 0.0)), np.nan)
    # a single class (O = E = N) or vanishing weights: the statistic's null law is
    # the point mass at 0, and the exact p-value of that powerless test is 1
    one = (npar > 0) & np.isfinite(x2) & (K == 1)
    flag = np.full(n, "ok", dtype=object)
    flag[~has] = "not_computed"
    flag[one] = "one_class"
    flag[degenerate] = "degenerate"
    trivial = one | degenerate
    stat = np.where(has, x2, np.where(one, 0.0, np.nan))
    df = np.where(has | one, nu0, np.nan)
    pval = np.where(test, p, np.where(trivial, 1.0, np.nan))
    return stat, df, pval, flag


#: values of the ``gof_flag`` column: "ok", a test with power; "one_class", the fitted
#: law expects every cell in one class and "degenerate", the classes carry all the
#: information the fit used -- in both the statistic is 0 under the fitted law, the test
#: has no power and its p-value is 1; "not_computed", no statistic (NaN); "not_fitted",
#: no fit (NaN)
GOF_FLAGS = ("ok", "one_class", "degenerate", "not_computed", "not_fitted")


def gof_columns(out: pd.DataFrame, x2, K, npar, I_full, I_g, *, not_fitted) -> None:
    """Write the goodness-of-fit columns ``gof_stat``, ``gof_df``, ``gof_pval``
    and ``gof_flag`` of a results table: :func:`chernoff_lehmann` of each
    gene's Pearson statistic, flag ``not_fitted`` where ``not_fitted``."""
    stat, df, pval, flag = chernoff_lehmann(x2, K, npar, I_full, I_g)
    flag[np.asarray(not_fitted, bool)] = "not_fitted"
    out["gof_stat"] = stat
    out["gof_df"] = pd.arrays.IntegerArray(np.nan_to_num(df).astype(np.int64), np.isnan(df))
    out["gof_pval"] = pval
    out["gof_flag"] = pd.Categorical(flag, categories=list(GOF_FLAGS))
