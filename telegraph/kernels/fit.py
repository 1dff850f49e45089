"""Per-gene fits of the telegraph model and its limits: the driver and its result rows.

:func:`fit_genes` fits every gene of a batch in parallel and writes one row of
``N_RESULT`` floats per gene, laid out by the ``R_*`` constants below. Per
gene it fits the telegraph model and its limit models
(:mod:`telegraph.kernels.optimize`, :mod:`telegraph.kernels.models`),
classifies the regime by comparing their maxima (which directions of the
likelihood are flat, docs/maths.md, "Limit regimes"), computes Wald and
profile intervals (:mod:`telegraph.kernels.profile`), and packs the observed
information and the goodness-of-fit statistic (:mod:`telegraph.kernels.gof`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .gof import pearson_gof
from .models import MODEL_NEGBINOM, MODEL_ZIP, moments, poisson_fit, sort_bins, telegraph_eval
from .optimize import TARGET_LOG_A, TARGET_LOG_B, TARGET_LOG_BETA, fit_telegraph, maximize
from .profile import profile_bound, wald_se

# regime codes
REGIME_TELEGRAPH = 0
REGIME_BURSTY = 1
REGIME_BIMODAL = 2
REGIME_POISSON = 3
REGIME_NO_DATA = 4
REGIME_ALL_ZERO = 5

# result layout (one row of floats per gene)
R_A, R_B, R_LAM, R_LL, R_CONV, R_REGIME, R_LL_NB, R_LL_ZIP, R_LL_P = range(9)
R_NB_A, R_NB_BETA, R_ZIP_F, R_ZIP_LAM, R_P_MU, R_NITER, R_AT_LIMIT = range(9, 16)
R_CI0 = 16          # 4 targets x (low, high) in log space: log a, log beta, log b, log lam
R_SE0 = 24          # Wald standard errors of the 4 targets (log space)
R_GOF_STAT, R_GOF_DF = 28, 29
R_INFO0 = 30        # observed information at the optimum, per cell (aa, ab, al, bb, bl, ll)
R_GINFO0 = 36       # grouped-data information of the GOF cells, per cell (same order)
N_RESULT = 42


@njit(cache=True, error_model="numpy", parallel=True)
def fit_genes(indptr, values, groups, weights, capture, n_cells, min_cells, drop, profile_mask,
              max_iter, gof_min_expected, result):
    """Fit every gene; one row of ``result`` (n_genes, N_RESULT) per gene.

    ``profile_mask[t]`` says whether target t (log a, log beta, log b, log lam)
    gets a profile interval; ``drop`` = chi2_1(ci)/2 is the log-likelihood
    drop that defines the interval.
    """
    n_genes = indptr.shape[0] - 1
    n_groups = capture.shape[0]
    for gidx in prange(n_genes):
        row = result[gidx]
        for j in range(N_RESULT):
            row[j] = np.nan
        lo_ = indptr[gidx]
        hi_ = indptr[gidx + 1]
        v, w, gr = sort_bins(values[lo_:hi_], weights[lo_:hi_], groups[lo_:hi_])
        if n_cells[gidx] < min_cells:
            row[R_REGIME] = REGIME_NO_DATA
            row[R_CONV] = 0.0
            continue
        nz = 0.0
        for i in range(v.shape[0]):
            if v[i] > 0:
                nz += w[i]
        if nz == 0.0:
            row[R_REGIME] = REGIME_ALL_ZERO
            row[R_CONV] = 0.0
            continue
        buf = np.zeros(11)
        theta = np.zeros(3)
        ll, conv, it = fit_telegraph(v, w, gr, capture, theta, max_iter, buf)
        # limits
        mu_p, ll_p = poisson_fit(v, w, gr, capture)
        m1, m2, m3, zf = moments(v, w, gr, capture)
        T = np.eye(3)
        free2 = np.zeros(3, np.bool_)
        free2[0] = True
        free2[1] = True
        lo = np.full(3, -30.0)
        hi = np.full(3, 30.0)
        th_nb = np.zeros(3)
        th_nb[0] = theta[0]
        th_nb[1] = theta[2] - theta[1]
        ll_nb, c_nb, _ = maximize(MODEL_NEGBINOM, v, w, gr, capture, th_nb, T, T, free2, lo, hi,
                                  max_iter, buf)
        th_zip = np.zeros(3)
        f0 = min(max(1.0 - zf, 1e-3), 1.0 - 1e-3)
        th_zip[0] = math.log(f0 / (1.0 - f0))
        th_zip[1] = math.log(max(m1 / f0, 1e-3))
        ll_zip, c_zip, _ = maximize(MODEL_ZIP, v, w, gr, capture, th_zip, T, T, free2, lo, hi,
                                    max_iter, buf)
        row[R_A] = theta[0]
        row[R_B] = theta[1]
        row[R_LAM] = theta[2]
        row[R_LL] = ll
        row[R_CONV] = 1.0 if conv else 0.0
        row[R_NITER] = it
        row[R_LL_NB] = ll_nb
        row[R_LL_ZIP] = ll_zip
        row[R_LL_P] = ll_p
        row[R_NB_A] = th_nb[0]
        row[R_NB_BETA] = th_nb[1]
        row[R_ZIP_F] = 1.0 / (1.0 + math.exp(-th_zip[0]))
        row[R_ZIP_LAM] = th_zip[1]
        row[R_P_MU] = mu_p
        # the supremum may lie at a limit outside the box
        ll_sup = max(ll, max(ll_nb, max(ll_zip, ll_p)))
        d_p = ll_sup - ll_p
        d_nb = ll_sup - ll_nb
        d_zip = ll_sup - ll_zip
        if d_p < drop:
            row[R_REGIME] = REGIME_POISSON
        elif d_nb < drop or d_zip < drop:
            row[R_REGIME] = REGIME_BURSTY if d_nb <= d_zip else REGIME_BIMODAL
        else:
            row[R_REGIME] = REGIME_TELEGRAPH
        # which limit attains the supremum (within a tiny tolerance) if any
        tol = 1e-6 * (1.0 + abs(ll))
        if ll_p >= ll - tol and ll_p >= ll_nb - tol and ll_p >= ll_zip - tol:
            row[R_AT_LIMIT] = REGIME_POISSON
        elif ll_nb >= ll - tol and ll_nb >= ll_zip:
            row[R_AT_LIMIT] = REGIME_BURSTY
        elif ll_zip >= ll - tol:
            row[R_AT_LIMIT] = REGIME_BIMODAL
        else:
            row[R_AT_LIMIT] = REGIME_TELEGRAPH
        # the reported estimate is the limit model's when the supremum is
        # attained there: its convergence is what counts
        if row[R_AT_LIMIT] == REGIME_POISSON:
            row[R_CONV] = 1.0
        elif row[R_AT_LIMIT] == REGIME_BURSTY:
            row[R_CONV] = 1.0 if c_nb else 0.0
        elif row[R_AT_LIMIT] == REGIME_BIMODAL:
            row[R_CONV] = 1.0 if c_zip else 0.0
        # Wald standard errors at the box optimum
        g = np.zeros(3)
        H = np.zeros((3, 3))
        telegraph_eval(v, w, gr, capture, theta, True, g, H, buf)
        se = wald_se(H)
        for t in range(4):
            row[R_SE0 + t] = se[t]
        # profile intervals (log scale); limits per direction as in the docs
        for t in range(4):
            if not profile_mask[t]:
                continue
            for side_i in range(2):
                side = -1.0 if side_i == 0 else 1.0
                if t == TARGET_LOG_A:
                    lim = ll_p if side > 0 else ll_zip
                elif t == TARGET_LOG_B:
                    lim = ll_nb if side > 0 else max(ll_p, ll_zip)
                elif t == TARGET_LOG_BETA:
                    lim = max(ll_p, ll_zip) if side > 0 else ll_p
                else:
                    lim = ll_nb if side > 0 else ll_p
                bound, best = profile_bound(v, w, gr, capture, theta, ll_sup, t, side, se[t],
                                             drop, lim, max_iter, buf)
                row[R_CI0 + 2 * t + side_i] = bound
                if best > ll_sup + 1e-6 * (1.0 + abs(ll_sup)):
                    # a better optimum turned up while profiling: the fit had
                    # not found the global maximum
                    row[R_CONV] = 0.0
        ncell = 0.0
        for i in range(w.shape[0]):
            ncell += w[i]
        row[R_INFO0 + 0] = H[0, 0] / ncell
        row[R_INFO0 + 1] = H[0, 1] / ncell
        row[R_INFO0 + 2] = H[0, 2] / ncell
        row[R_INFO0 + 3] = H[1, 1] / ncell
        row[R_INFO0 + 4] = H[1, 2] / ncell
        row[R_INFO0 + 5] = H[2, 2] / ncell
        if gof_min_expected > 0:
            Ig = np.zeros((3, 3))
            x2, k = pearson_gof(v, w, gr, capture, n_groups, math.exp(theta[0]), math.exp(theta[1]),
                         math.exp(theta[2]), gof_min_expected, Ig)
            row[R_GOF_STAT] = x2
            row[R_GOF_DF] = k
            row[R_GINFO0 + 0] = Ig[0, 0]
            row[R_GINFO0 + 1] = Ig[0, 1]
            row[R_GINFO0 + 2] = Ig[0, 2]
            row[R_GINFO0 + 3] = Ig[1, 1]
            row[R_GINFO0 + 4] = Ig[1, 2]
            row[R_GINFO0 + 5] = Ig[2, 2]

