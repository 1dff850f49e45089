"""Per-gene fits of the telegraph model and its limits: the driver and its result rows.

:func:`fit_genes` fits every gene of a batch and writes one row of
``N_RESULT`` floats per gene, laid out by the ``R_*`` constants below. Per
gene it fits the telegraph model and its limit models
(:mod:`telegraph.kernels.optimize`, :mod:`telegraph.kernels.models`),
classifies the regime by comparing their maxima (which directions of the
likelihood are flat, docs/maths.md, "Limit regimes"), computes Wald and
profile intervals (:mod:`telegraph.kernels.profile`), and packs the observed
information and the goodness-of-fit statistic (:mod:`telegraph.kernels.gof`).

Inside the kernels the rows are indexed by the ``R_*`` constants (compile-time
indices); everywhere else they are read by name through :class:`FitRows`.
"""

from __future__ import annotations

import math

import numpy as np
from numba.core import types as nbtypes

from ._jit import njit, unit_jobs
from .gof import LAW_NEGBINOM, LAW_POISSON, LAW_POISSON_BETA, LAW_ZIP, pearson_gof
from .models import (MODEL_NEGBINOM, MODEL_ZIP, evaluate, gene_bins, poisson_fit, sort_bins,
                     telegraph_eval)
from .optimize import (TARGET_LOG_A, TARGET_LOG_B, TARGET_LOG_BETA, fit_negbinom,
                       fit_telegraph, fit_zip)
from .linalg import sym3
from . import gof as gof_module
from . import models, optimize, poisson_beta
from . import profile as profile_module
from .profile import (bursty_limit_end, limit_union_ends, profile_bound, unbounded_by_union,
                      wald_se, widen_near_limits)

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
R_GOF_STAT, R_GOF_DF = 28, 29   # Pearson X2 and K, the number of pooled cells
R_INFO0 = 30        # observed information at the optimum, per cell (aa, ab, al, bb, bl, ll)
R_GINFO0 = 36       # grouped-data information of the GOF classes, per cell (law's coordinates)
R_GOF_INFO0 = 42    # full-data information of the law tested, per cell (same order)
R_GOF_LAW = 48      # the law tested (gof.LAW_*), NaN where none
R_IT_NB, R_IT_ZIP, R_CONV_NB, R_CONV_ZIP = 49, 50, 51, 52   # the limit fits' iterations, flags
N_RESULT = 53


@njit(cache=True, error_model="numpy")
def _unfittable(n_cells, min_cells, values, weights):
    """REGIME_NO_DATA for a gene with too few cells, REGIME_ALL_ZERO for one
    whose counts are all 0, else -1 (a gene to fit)."""
    if n_cells < min_cells:
        return REGIME_NO_DATA
    nz = 0.0
    for i in range(values.shape[0]):
        if values[i] > 0:
            nz += weights[i]
    if nz == 0.0:
        return REGIME_ALL_ZERO
    return -1


@njit(cache=True, error_model="numpy", inline="always")
def _fit_models(row, gene, theta, th_nb, th_zip, max_iter, buf, g, H):
    """Fit the telegraph model (optimum in the search box to ``theta``, the
    gradient and observed information there to ``g`` and ``H``) and its
    Poisson, negative-binomial (to ``th_nb``) and zero-inflated Poisson (to
    ``th_zip``) limits; write their estimates, maxima, iteration counts and
    the limit fits' convergence to ``row``. Returns whether the telegraph,
    negative-binomial and ZIP fits converged."""
    ll, conv, it = fit_telegraph(gene, theta, max_iter, buf, g, H)
    mu_p, ll_p = poisson_fit(gene[0], gene[1], gene[2], gene[3])
    ll_nb, c_nb, it_nb = fit_negbinom(gene, theta, th_nb, max_iter, buf)
    ll_zip, c_zip, it_zip = fit_zip(gene, th_zip, max_iter, buf)
    _write_models(row, theta, ll, it, th_nb, ll_nb, it_nb, c_nb, th_zip, ll_zip, it_zip, c_zip,
                  mu_p, ll_p)
    return conv, c_nb, c_zip


@njit(cache=True, error_model="numpy", inline="always")
def _write_models(row, theta, ll, it, th_nb, ll_nb, it_nb, c_nb, th_zip, ll_zip, it_zip, c_zip,
                  mu_p, ll_p):
    """The fits of the telegraph model and its limits to ``row``."""
    row[R_A] = theta[0]
    row[R_B] = theta[1]
    row[R_LAM] = theta[2]
    row[R_LL] = ll
    row[R_NITER] = it
    row[R_LL_NB] = ll_nb
    row[R_LL_ZIP] = ll_zip
    row[R_LL_P] = ll_p
    row[R_NB_A] = th_nb[0]
    row[R_NB_BETA] = th_nb[1]
    row[R_ZIP_F] = 1.0 / (1.0 + math.exp(-th_zip[0]))
    row[R_ZIP_LAM] = th_zip[1]
    row[R_P_MU] = mu_p
    row[R_IT_NB] = it_nb
    row[R_IT_ZIP] = it_zip
    row[R_CONV_NB] = 1.0 if c_nb else 0.0
    row[R_CONV_ZIP] = 1.0 if c_zip else 0.0


@njit(cache=True, error_model="numpy")
def _regime(ll_sup, ll_nb, ll_zip, ll_p, drop):
    """The regime: the limits whose maximum is within ``drop`` of the
    supremum ``ll_sup`` (the likelihood is flat towards them); Poisson first,
    then the nearer of the bursty and bimodal limits, else telegraph."""
    d_p = ll_sup - ll_p
    d_nb = ll_sup - ll_nb
    d_zip = ll_sup - ll_zip
    if d_p < drop:
        return REGIME_POISSON
    elif d_nb < drop or d_zip < drop:
        return REGIME_BURSTY if d_nb <= d_zip else REGIME_BIMODAL
    return REGIME_TELEGRAPH


@njit(cache=True, error_model="numpy")
def _limit_attained(ll, ll_nb, ll_zip, ll_p):
    """Which limit attains the supremum (within a tiny tolerance) if any:
    REGIME_POISSON, REGIME_BURSTY or REGIME_BIMODAL, else REGIME_TELEGRAPH
    (the maximum lies inside the search box)."""
    tol = 1e-6 * (1.0 + abs(ll))
    if ll_p >= ll - tol and ll_p >= ll_nb - tol and ll_p >= ll_zip - tol:
        return REGIME_POISSON
    elif ll_nb >= ll - tol and ll_nb >= ll_zip:
        return REGIME_BURSTY
    elif ll_zip >= ll - tol:
        return REGIME_BIMODAL
    return REGIME_TELEGRAPH


@njit(cache=True, error_model="numpy")
def _converged(at_limit, c_tg, c_nb, c_zip):
    """1.0 if the fit whose estimate is reported converged, else 0.0: the
    reported estimate is the limit model's when the supremum is attained
    there, and the Poisson limit has a closed form."""
    if at_limit == REGIME_POISSON:
        return 1.0
    elif at_limit == REGIME_BURSTY:
        return 1.0 if c_nb else 0.0
    elif at_limit == REGIME_BIMODAL:
        return 1.0 if c_zip else 0.0
    return 1.0 if c_tg else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _wald(row, gene, theta, buf, g, H):
    """Wald standard errors of the targets at the box optimum ``theta`` to the
    row, from the gradient and observed information there in ``g`` and ``H``
    (the fit's, :func:`telegraph.kernels.optimize.fit_telegraph`; evaluated
    here where the fit left NaN). Returns the errors and the log-likelihood
    there."""
    if np.isfinite(g[0]):
        ll = row[R_LL]
    else:
        ll = telegraph_eval(gene, theta, True, g, H, buf)
    se = wald_se(H)
    for t in range(4):
        row[R_SE0 + t] = se[t]
    return se, ll


@njit(cache=True, error_model="numpy")
def _profile_limit(target, side, ll_nb, ll_zip, ll_p):
    """The supremum of a target's profile as psi -> side * inf: the maximum of
    the limit model(s) reached that way (docs/maths.md, "Limit regimes")."""
    if target == TARGET_LOG_A:
        return ll_p if side > 0 else ll_zip
    elif target == TARGET_LOG_B:
        return ll_nb if side > 0 else max(ll_p, ll_zip)
    elif target == TARGET_LOG_BETA:
        return max(ll_p, ll_zip) if side > 0 else ll_p
    return ll_nb if side > 0 else ll_p


@njit(cache=True, error_model="numpy", inline="always")
def _profile_intervals(row, gene, theta, th_nb, ll_sup, se, drop, profile_mask,
                       max_iter, buf, ll0, g0, H0, union):
    """Profile-likelihood intervals (log scale) of the targets in
    ``profile_mask`` to the row, from the box optimum ``theta``, the
    negative binomial's ``th_nb`` (ends on the bursty limit,
    :func:`telegraph.kernels.profile.bursty_limit_end`), the supremum
    ``ll_sup`` and the limit models' maxima already in the row (``ll0``,
    ``g0``, ``H0``: the evaluation at ``theta``). A side that the limit
    models' ends ``union`` (:func:`telegraph.kernels.profile.limit_union_ends`)
    make unbounded is not searched. Returns False when a profile rose above
    ``ll_sup`` (the fit had missed the global maximum), else True."""
    ll_nb = row[R_LL_NB]
    ll_zip = row[R_LL_ZIP]
    ll_p = row[R_LL_P]
    found_max = True
    for t in range(4):
        if not profile_mask[t]:
            if profile_mask.shape[0] > 4 and profile_mask[4 + t]:
                # not profiled, but the data may not bound it on a side: the
                # limit model's maximum says so at no cost (+-inf there, NaN
                # where a Wald bound is to be used)
                for side_i in range(2):
                    side = -1.0 if side_i == 0 else 1.0
                    lim = _profile_limit(t, side, ll_nb, ll_zip, ll_p)
                    if ll_sup - lim < drop:
                        row[R_CI0 + 2 * t + side_i] = side * np.inf
            continue
        for side_i in range(2):
            side = -1.0 if side_i == 0 else 1.0
            if unbounded_by_union(union, 2 * t + side_i):
                # unbounded after the regime decision whatever the search would find
                row[R_CI0 + 2 * t + side_i] = union[2 * t + side_i]
                continue
            lim = _profile_limit(t, side, ll_nb, ll_zip, ll_p)
            bound = np.nan
            best = ll_sup
            if ll_sup - lim >= drop:
                # an end on the bursty limit, from the negative binomial's profile
                bound, best = bursty_limit_end(gene, theta, ll_sup, t, side, drop,
                                               th_nb, ll_nb, max_iter, buf)
            if not np.isfinite(bound):
                bound, best_pb = profile_bound(gene, theta, ll_sup, t, side, se[t],
                                               drop, lim, max_iter, buf, ll0, g0, H0)
                best = max(best, best_pb)
            row[R_CI0 + 2 * t + side_i] = bound
            if best > ll_sup + 1e-6 * (1.0 + abs(ll_sup)):
                found_max = False
    return found_max


@njit(cache=True, error_model="numpy")
def _pack_sym3(row, start, M, div):
    """The upper triangle of the symmetric 3x3 ``M``, divided by ``div``, to
    row[start:start + 6] in the order (00, 01, 02, 11, 12, 22)."""
    k = start
    for i in range(3):
        for j in range(i, 3):
            row[k] = M[i, j] / div
            k += 1


@njit(cache=True, error_model="numpy", inline="always")
def _goodness_of_fit(row, regime, gene, n_groups, theta, th_nb, th_zip, H, ncell,
                     min_expected, buf):
    """Pearson statistic of the law the regime reports (docs/maths.md,
    "Goodness of fit"), its number of pooled classes, the law, and its
    full-data and grouped-data informations per cell to the row. ``H`` is the
    telegraph law's observed information at ``theta``."""
    par = np.zeros(3)
    info = np.zeros((3, 3))
    g = np.zeros(3)
    if regime == REGIME_TELEGRAPH:
        law = LAW_POISSON_BETA
        for i in range(3):
            par[i] = math.exp(theta[i])
            for j in range(3):
                info[i, j] = H[i, j]
    elif regime == REGIME_BURSTY:
        law = LAW_NEGBINOM
        par[0] = math.exp(th_nb[0])
        par[1] = math.exp(th_nb[1])
        evaluate(MODEL_NEGBINOM, gene, th_nb, True, g, info, buf)
    elif regime == REGIME_BIMODAL:
        law = LAW_ZIP
        par[0] = 1.0 / (1.0 + math.exp(-th_zip[0]))
        par[1] = math.exp(th_zip[1])
        evaluate(MODEL_ZIP, gene, th_zip, True, g, info, buf)
    else:
        law = LAW_POISSON
        par[0] = row[R_P_MU]
        w, gr, capture = gene[1], gene[2], gene[3]
        for i in range(w.shape[0]):
            info[0, 0] += w[i] * capture[gr[i]] * par[0]
    Ig = np.zeros((3, 3))
    x2, k, ok = pearson_gof(law, gene[0], gene[1], gene[2], gene[3], n_groups, par,
                            min_expected, Ig)
    row[R_GOF_LAW] = law
    _pack_sym3(row, R_GOF_INFO0, info, ncell)
    if ok:
        row[R_GOF_STAT] = x2
        row[R_GOF_DF] = k
        _pack_sym3(row, R_GINFO0, Ig, 1.0)


@njit(error_model="numpy", nogil=True)
def fit_genes(indptr, values, groups, weights, capture, n_cells, min_cells, drop, profile_mask,
              max_iter, gof_min_expected, result, union_telegraph=0.0, union_bimodal=0.0):
    """Fit every gene; one row of ``result`` (n_genes, N_RESULT) per gene.

    ``profile_mask[t]`` says whether target t (log a, log beta, log b, log lam)
    gets a profile interval; an optional second half ``profile_mask[4 + t]``
    asks, for a target not profiled, for +-inf on each side where the limit
    model's maximum shows that the data do not bound it (else NaN); ``drop`` =
    chi2_1(ci)/2 is the log-likelihood drop that defines the interval.
    ``profile_mask=None`` (Wald intervals only) and ``gof_min_expected=None``
    (no goodness of fit) give the results of an all-False mask and of 0, and
    compile a version of this kernel without the profile or the
    goodness-of-fit kernels (a first Wald fit compiles only what it runs).
    ``union_telegraph`` / ``union_bimodal``: in those regimes, a limit model (in
    the bimodal regime, the bursty limit) within this distance of the supremum
    adds its own values to the profile intervals
    (:func:`telegraph.kernels.profile.limit_union_ends`; 0 = never).
    """
    n_genes = indptr.shape[0] - 1
    n_groups = capture.shape[0]
    for gidx in range(n_genes):
        row = result[gidx]
        for j in range(N_RESULT):
            row[j] = np.nan
        lo_ = indptr[gidx]
        hi_ = indptr[gidx + 1]
        v, w, gr = sort_bins(values[lo_:hi_], weights[lo_:hi_], groups[lo_:hi_])
        empty = _unfittable(n_cells[gidx], min_cells, v, w)
        if empty >= 0:
            row[R_REGIME] = empty
            row[R_CONV] = 0.0
            continue
        gene = gene_bins(v, w, gr, capture)
        buf = np.zeros(11)
        theta = np.zeros(3)
        th_nb = np.zeros(3)
        th_zip = np.zeros(3)
        g0 = np.zeros(3)
        H = np.zeros((3, 3))
        c_tg, c_nb, c_zip = _fit_models(row, gene, theta, th_nb, th_zip, max_iter, buf, g0, H)
        ll = row[R_LL]
        ll_nb = row[R_LL_NB]
        ll_zip = row[R_LL_ZIP]
        ll_p = row[R_LL_P]
        # the supremum may lie at a limit outside the box
        ll_sup = max(ll, max(ll_nb, max(ll_zip, ll_p)))
        regime = _regime(ll_sup, ll_nb, ll_zip, ll_p, drop)
        row[R_REGIME] = regime
        at_limit = _limit_attained(ll, ll_nb, ll_zip, ll_p)
        row[R_AT_LIMIT] = at_limit
        row[R_CONV] = _converged(at_limit, c_tg, c_nb, c_zip)
        se, ll0 = _wald(row, gene, theta, buf, g0, H)
        # (for profile_mask None, the profile kernels are not compiled at all)
        if profile_mask is not None:
            # the ends the limit models add after the regime decision, first: a side they
            # make unbounded is not searched
            telegraph = row[R_REGIME] == REGIME_TELEGRAPH
            d_union = (union_telegraph if telegraph
                       else union_bimodal if row[R_REGIME] == REGIME_BIMODAL else 0.0)
            union = np.full(8, np.nan)
            limit_union_ends(union, d_union, telegraph, ll_sup, ll_nb, ll_zip, ll_p, row[R_NB_A],
                             row[R_NB_BETA], gene, drop, profile_mask, max_iter,
                             buf)
            if not _profile_intervals(row, gene, theta, th_nb, ll_sup, se, drop,
                                      profile_mask, max_iter, buf, ll0, g0, H, union):
                # a better optimum turned up while profiling
                row[R_CONV] = 0.0
            widen_near_limits(row[R_CI0:R_CI0 + 8], union)
        ncell = 0.0
        for i in range(w.shape[0]):
            ncell += w[i]
        _pack_sym3(row, R_INFO0, H, ncell)
        if gof_min_expected is not None:
            if gof_min_expected > 0:
                _goodness_of_fit(row, regime, gene, n_groups, theta, th_nb,
                                 th_zip, H, ncell, gof_min_expected, buf)


# --------------------------------------------------------- compiling ahead

_I, _F, _NONE = nbtypes.int64, nbtypes.float64, nbtypes.none
_VI, _VF, _VB, _MF = nbtypes.int64[::1], nbtypes.float64[::1], nbtypes.boolean[::1], \
    nbtypes.float64[:, ::1]


def compile_ahead_plan(profile: bool, gof: bool):
    """The argument types of :func:`fit_genes` as :func:`telegraph.fitting.fit_raw`
    calls it (``profile``: a profile mask, else None; ``gof``: a goodness-of-fit
    threshold, else None), and the jobs a helper process compiles ahead when
    that version is compiled cold (kernels/_ahead.py): the units that version
    calls (kernels/_jit.py), each before the units that call it, the ones only
    profile intervals or the goodness of fit need last. Returns ``(args, jobs)``."""
    args = (_VI, _VI, _VI, _VF, _VF, _VI, _I, _F, _VB if profile else _NONE, _I,
            _F if gof else _NONE, _MF, _F, _F)
    stages = ([models, poisson_beta, optimize] + [profile_module] * profile
              + [gof_module] * gof)
    return args, unit_jobs(*stages)


def _read_only(a):
    a.flags.writeable = False
    return a


class FitRows:
    """The rows :func:`fit_genes` writes, read by name.

    Wraps the (n_genes, N_RESULT) float array without copying it. Columns
    come back as read-only views (codes and flags converted as noted);
    everything in log space is natural log. Outside the kernels, read the
    rows through this view rather than by ``R_*`` index.
    """

    #: the scalar entries of a row: property name -> column
    COLUMNS = {
        "log_a": R_A, "log_b": R_B, "log_lam": R_LAM, "loglik": R_LL,
        "converged": R_CONV, "regime": R_REGIME, "loglik_nb": R_LL_NB,
        "loglik_zip": R_LL_ZIP, "loglik_poisson": R_LL_P, "nb_log_a": R_NB_A,
        "nb_log_beta": R_NB_BETA, "zip_f": R_ZIP_F, "zip_log_lam": R_ZIP_LAM,
        "poisson_mu": R_P_MU, "n_iter": R_NITER, "at_limit": R_AT_LIMIT,
        "gof_stat": R_GOF_STAT, "gof_cells": R_GOF_DF, "gof_law": R_GOF_LAW,
        "n_iter_nb": R_IT_NB, "n_iter_zip": R_IT_ZIP, "converged_nb": R_CONV_NB,
        "converged_zip": R_CONV_ZIP,
    }
    #: the blocks of a row: accessor -> (first column, number of columns)
    BLOCKS = {"ci": (R_CI0, 8), "se": (R_SE0, 4), "info": (R_INFO0, 6),
              "grouped_info": (R_GINFO0, 6), "gof_info": (R_GOF_INFO0, 6)}
    #: the targets t of :meth:`ci` and :meth:`se`, in the kernel's order
    TARGETS = ("log_a", "log_beta", "log_b", "log_lam")

    __slots__ = ("_raw",)

    def __init__(self, raw):
        if isinstance(raw, FitRows):
            raw = raw._raw
        raw = np.asarray(raw, dtype=float)
        if raw.ndim != 2 or raw.shape[1] != N_RESULT:
            raise ValueError(f"fit result rows must have shape (n_genes, {N_RESULT}); "
                             f"got {raw.shape}")
        self._raw = raw

    def __len__(self):
        return self._raw.shape[0]

    def _col(self, j):
        return _read_only(self._raw[:, j])

    @property
    def array(self):
        """The wrapped (n_genes, N_RESULT) array, read-only."""
        return _read_only(self._raw[:, :])

    # the telegraph fit, at its optimum in the search box
    @property
    def log_a(self):
        """log(k_on / k_deg), the burst frequency."""
        return self._col(R_A)

    @property
    def log_b(self):
        """log(k_off / k_deg)."""
        return self._col(R_B)

    @property
    def log_lam(self):
        """log(k_syn / k_deg)."""
        return self._col(R_LAM)

    @property
    def log_beta(self):
        """log burst size, log_lam - log_b (derived, a new array)."""
        return self._raw[:, R_LAM] - self._raw[:, R_B]

    @property
    def theta(self):
        """(n, 3) copy of (log a, log b, log lam)."""
        return self._raw[:, [R_A, R_B, R_LAM]]

    @property
    def loglik(self):
        """Maximum log-likelihood of the telegraph model in the search box."""
        return self._col(R_LL)

    @property
    def n_iter(self):
        """Newton iterations of the telegraph fit (of the climb that reached
        the optimum; at most max_iter)."""
        return self._col(R_NITER)

    @property
    def n_iter_nb(self):
        """Newton iterations of the negative-binomial fit."""
        return self._col(R_IT_NB)

    @property
    def n_iter_zip(self):
        """Newton iterations of the zero-inflated Poisson fit."""
        return self._col(R_IT_ZIP)

    @property
    def converged_nb(self):
        """Whether the negative-binomial fit converged (bool)."""
        return self._raw[:, R_CONV_NB] == 1.0

    @property
    def converged_zip(self):
        """Whether the zero-inflated Poisson fit converged (bool)."""
        return self._raw[:, R_CONV_ZIP] == 1.0

    # what the fit says about itself
    @property
    def converged(self):
        """Whether the fit whose estimate is reported converged (bool)."""
        return self._raw[:, R_CONV] == 1.0

    @property
    def regime(self):
        """Regime codes REGIME_* (int; a row the kernel did not write counts
        as REGIME_NO_DATA)."""
        return np.nan_to_num(self._raw[:, R_REGIME], nan=REGIME_NO_DATA).astype(int)

    @property
    def at_limit(self):
        """Which limit attains the supremum: REGIME_POISSON, REGIME_BURSTY,
        REGIME_BIMODAL, or REGIME_TELEGRAPH for none (int; -1 where the gene
        was not fitted)."""
        return np.nan_to_num(self._raw[:, R_AT_LIMIT], nan=-1).astype(int)

    # the limit models
    @property
    def loglik_nb(self):
        """Maximum log-likelihood of the negative binomial (bursty limit)."""
        return self._col(R_LL_NB)

    @property
    def loglik_zip(self):
        """Maximum log-likelihood of the zero-inflated Poisson (bimodal limit)."""
        return self._col(R_LL_ZIP)

    @property
    def loglik_poisson(self):
        """Maximum log-likelihood of the Poisson law."""
        return self._col(R_LL_P)

    @property
    def nb_log_a(self):
        """log a of the negative-binomial fit."""
        return self._col(R_NB_A)

    @property
    def nb_log_beta(self):
        """log burst size of the negative-binomial fit."""
        return self._col(R_NB_BETA)

    @property
    def zip_f(self):
        """Fraction of time on of the zero-inflated Poisson fit."""
        return self._col(R_ZIP_F)

    @property
    def zip_log_lam(self):
        """log(k_syn / k_deg) of the zero-inflated Poisson fit."""
        return self._col(R_ZIP_LAM)

    @property
    def poisson_mu(self):
        """Mean of the Poisson fit, molecules per cell at capture 1."""
        return self._col(R_P_MU)

    # intervals, information, goodness of fit
    def ci(self, target):
        """(low, high) of the profile interval of target t (index into
        TARGETS), log scale; NaN where not profiled."""
        return self._col(R_CI0 + 2 * target), self._col(R_CI0 + 2 * target + 1)

    def se(self, target):
        """Wald standard error of target t (index into TARGETS), log scale."""
        return self._col(R_SE0 + target)

    def info(self):
        """(n, 3, 3) observed information per cell in theta = (log a, log b,
        log lam) at the optimum (a new array)."""
        return sym3(self._raw[:, R_INFO0:R_INFO0 + 6])

    def grouped_info(self):
        """(n, 3, 3) information per cell of the goodness-of-fit classes (the
        pooled counts) in the coordinates of the law tested (its leading
        p x p block; :attr:`gof_law`) (a new array)."""
        return sym3(self._raw[:, R_GINFO0:R_GINFO0 + 6])

    def gof_info(self):
        """(n, 3, 3) observed information per cell of the ungrouped counts
        about the law tested, in its coordinates (leading p x p block; for
        the telegraph law the same as :meth:`info`) (a new array)."""
        return sym3(self._raw[:, R_GOF_INFO0:R_GOF_INFO0 + 6])

    @property
    def gof_stat(self):
        """Pearson's chi-square statistic (NaN without goodness of fit)."""
        return self._col(R_GOF_STAT)

    @property
    def gof_cells(self):
        """K, the number of pooled classes of the statistic."""
        return self._col(R_GOF_DF)

    @property
    def gof_law(self):
        """The law tested, :data:`telegraph.kernels.gof.LAW_*` (the regime's:
        Poisson-Beta, negative binomial, ZIP or Poisson); NaN where none."""
        return self._col(R_GOF_LAW)
