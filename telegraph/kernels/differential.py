"""Likelihood-ratio tests of equal burst frequency / burst size between two
groups of cells, in Numba.

Each gene has two count histograms (group 1 and group 2, each with its own
capture groups) and the unconstrained maximum-likelihood fit of each group
(from :func:`telegraph.kernels.fit.fit_genes`). For a target psi (log a = log
burst frequency, or log beta = log burst size) let p_g(psi) be group g's
profile log-likelihood. The null "equal psi" keeps every nuisance parameter of
each group free, so its maximum is

    l0 = max_psi [p1(psi) + p2(psi)],

a one-dimensional problem. The envelope theorem gives p_g'(psi) as the
gradient of the log-likelihood along psi at the constrained optimum, and
-p_g''(psi) as the Schur complement of the information over the free nuisance
coordinates, so Newton's method in psi (safeguarded by the bracket
[psi1_hat, psi2_hat], inside which the maximiser of a sum of two unimodal
functions lies) converges in a few profile evaluations. The nuisance
optimum moves with psi along -H_nn^-1 H_n psi (implicit function theorem),
which gives each profile evaluation a warm start one Newton step from its
solution. The likelihood-ratio statistic is 2 (l1 + l2 - l0).

A group whose fit attains its supremum in the bursty limit (k_off, k_syn ->
inf at fixed burst size; see :mod:`telegraph.kernels.models`) is profiled in
that limit model, the negative binomial with coordinates (log a, log beta):
both targets are then plain coordinates, and the telegraph likelihood at the
edge of the fit box (k_syn / k_deg ~ 1e4 and beyond) would cost hundreds of
series terms per count for the same value. Other groups are profiled in the
telegraph model inside the fit box, as they were fitted.

The profile interval of the log-ratio delta = psi2 - psi1 inverts the same
statistic: L(delta) = max_psi [p1(psi) + p2(psi + delta)] and the interval is
{delta : l1 + l2 - L(delta) <= drop}, drop = half the ci-quantile of the
statistic's (calibrated) null law, per gene and test. Whether a side is
unbounded is decided from the limit models (the suprema of the profiles
towards +-inf); otherwise its end is found by Newton's method on the root
deviance, which is nearly linear in delta, with dL/ddelta = p2'(psi* + delta).

The result rows (``D_*`` layout) are read outside the kernels through
:class:`DiffRows`.
"""

from __future__ import annotations

import math

import numpy as np
from numba.core import types as nbtypes

from ._jit import njit
from .linalg import grad_info_phi, to_phi, to_theta
from .models import MODEL_NEGBINOM, MODEL_TELEGRAPH, evaluate, gene_bins, sort_bins
from .optimize import (DECREMENT_TOL, LIMIT_HI, LIMIT_LO, TARGET_LOG_A, TARGET_LOG_BETA,
                       maximize, search_box, target_transform)

# result layout, per target t (0: log a, 1: log beta), offset t * N_PER_TARGET
D_PSI1, D_PSI2, D_L0, D_LR, D_CI_LO, D_CI_HI, D_SE, D_CONV = range(8)
N_PER_TARGET = 8
N_DIFF_RESULT = 2 * N_PER_TARGET

# k_off / k_deg beyond which a bursty group is represented by its NB limit
LOG_B_CAP = math.log(100.0)


@njit(cache=True, error_model="numpy")
def _coords(model, target):
    """(T, Tinv, index of the target in phi = T theta) of a group's model."""
    if model == MODEL_TELEGRAPH:
        return target_transform(target)
    # negative binomial: theta = (log a, log beta, unused)
    return np.eye(3), np.eye(3), (0 if target == TARGET_LOG_A else 1)


@njit(cache=True, error_model="numpy")
def _group_box(model, target, lo, hi):
    if model == MODEL_TELEGRAPH:
        search_box(target, lo, hi)
    else:
        for i in range(3):
            lo[i] = LIMIT_LO
            hi[i] = LIMIT_HI


@njit(cache=True, error_model="numpy")
def _psi_range(kind, target):
    """Range of psi over which a group's profile is defined."""
    lo = np.empty(3)
    hi = np.empty(3)
    model = MODEL_TELEGRAPH if kind == 0 else MODEL_NEGBINOM
    _group_box(model, target, lo, hi)
    T, Tinv, fix = _coords(model, target)
    return lo[fix], hi[fix]


@njit(cache=True, error_model="numpy")
def _psi_of(model, target, theta):
    T, Tinv, fix = _coords(model, target)
    s = 0.0
    for j in range(3):
        s += T[fix, j] * theta[j]
    return s


@njit(cache=True, error_model="numpy")
def _profile_slope(model, gene, theta, target, lo, hi, buf, out):
    """Slope and curvature of the profile log-likelihood of ``target`` at a
    point ``theta`` that maximises over the nuisance coordinates.

    out[0] = d profile / d psi (the gradient along psi, envelope theorem);
    out[1] = - d2 profile / d psi2 = Schur complement of the information in
    phi = T theta over the nuisance coordinates not held at the edge of the
    box lo <= phi <= hi;
    out[2:5] = d phi* / d psi (the direction in which the nuisance optimum
    moves). Returns the log-likelihood at theta.
    """
    g = np.zeros(3)
    H = np.zeros((3, 3))
    ll = evaluate(model, gene, theta, True, g, H, buf)
    _slope_from(model, theta, target, lo, hi, g, H, out)
    return ll


@njit(cache=True, error_model="numpy")
def _slope_from(model, theta, target, lo, hi, g, H, out):
    """:func:`_profile_slope`'s ``out`` from the gradient ``g`` and observed
    information ``H`` in theta at ``theta`` (already evaluated)."""
    T, Tinv, fix = _coords(model, target)
    gp = np.zeros(3)
    Hp = np.zeros((3, 3))
    grad_info_phi(Tinv, g, H, gp, Hp)
    phi = np.zeros(3)
    to_phi(T, theta, phi)
    n_coords = 3 if model == MODEL_TELEGRAPH else 2
    nuis = np.empty(2, np.int64)
    m = 0
    for i in range(n_coords):
        if i == fix:
            continue
        held = ((phi[i] <= lo[i] + 1e-9 and gp[i] <= 0.0)
                or (phi[i] >= hi[i] - 1e-9 and gp[i] >= 0.0))
        if not held:
            nuis[m] = i
            m += 1
    c = Hp[fix, fix]
    for i in range(3):
        out[2 + i] = 0.0
    out[2 + fix] = 1.0
    if m == 1:
        i = nuis[0]
        if Hp[i, i] > 0.0:
            c -= Hp[fix, i] * Hp[fix, i] / Hp[i, i]
            out[2 + i] = -Hp[i, fix] / Hp[i, i]
    elif m == 2:
        i = nuis[0]
        j = nuis[1]
        det = Hp[i, i] * Hp[j, j] - Hp[i, j] * Hp[j, i]
        if det > 0.0:
            ui = Hp[fix, i]
            uj = Hp[fix, j]
            c -= (ui * ui * Hp[j, j] - 2.0 * ui * uj * Hp[i, j] + uj * uj * Hp[i, i]) / det
            # d phi_n / d psi = -A^-1 u
            out[2 + i] = -(Hp[j, j] * ui - Hp[i, j] * uj) / det
            out[2 + j] = -(-Hp[j, i] * ui + Hp[i, i] * uj) / det
    out[0] = gp[fix]
    out[1] = c


@njit(cache=True, error_model="numpy")
def _profile_at(model, gene, theta, target, psi, lo, hi, max_iter, buf, out):
    """Profile log-likelihood at psi inside the box lo <= phi <= hi, with
    slope, curvature and direction in ``out`` as in :func:`_profile_slope`
    (-inf if psi is outside the box).

    ``theta`` is the warm start (the nuisance optimum at some other psi,
    with ``out[2:5]`` its direction from the previous call, or zeros); it is
    moved along that direction to psi first, then replaced by the optimum."""
    T, Tinv, fix = _coords(model, target)
    if psi < lo[fix] or psi > hi[fix] or not np.isfinite(psi):
        out[0] = np.nan
        out[1] = np.nan
        return -np.inf
    phi = np.zeros(3)
    to_phi(T, theta, phi)
    step = psi - phi[fix]
    for i in range(3):
        if i != fix:
            phi[i] = min(max(phi[i] + step * out[2 + i], lo[i]), hi[i])
    phi[fix] = psi
    to_theta(Tinv, phi, theta)
    free = np.ones(3, np.bool_)
    free[fix] = False
    if model != MODEL_TELEGRAPH:
        free[2] = False
    # (the telegraph model with burst frequency fixed climbs in the mean coordinates, as
    # the groups' own fits did)
    g = np.zeros(3)
    H = np.zeros((3, 3))
    ll, conv, it = maximize(model, gene, theta, T, Tinv, free, lo,
                            hi, max_iter, buf, np.empty(0), np.empty((0, 3)),
                            model == MODEL_TELEGRAPH and target == TARGET_LOG_A,
                            DECREMENT_TOL, g, H)
    if not np.isfinite(ll):
        for i in range(5):
            out[i] = np.nan if i < 2 else 0.0
        return -np.inf
    # (the climb's gradient and information at theta: no second evaluation there)
    _slope_from(model, theta, target, lo, hi, g, H, out)
    return ll


@njit(cache=True, error_model="numpy")
def _group_profile(kind, gene, th, o, target, psi, max_iter, buf, out):
    """Profile log-likelihood of one group at psi (warm starts ``th``, ``o``:
    row 0 telegraph, row 1 negative binomial), slope etc. in ``out``.

    kind 0: the telegraph model in the fit box. kind 1 (groups whose fit
    attains its supremum in the bursty limit): the larger of the negative
    binomial profile and the telegraph profile with k_off <= B_CAP k_deg.
    The negative binomial alone is the supremum near the group's own
    estimate but can be far below it elsewhere (near-Poisson data are
    fitted as well by a NB with large a as by a telegraph law with small
    k_off, and only the latter stays good when the shared psi pulls a or
    beta away); beyond k_off = B_CAP the bursty ridge is flat and the NB is
    its limit, while the telegraph likelihood there costs O(sqrt(k_syn))
    series terms per count."""
    lo = np.empty(3)
    hi = np.empty(3)
    _group_box(MODEL_TELEGRAPH, target, lo, hi)
    if kind == 0:
        ll = _profile_at(MODEL_TELEGRAPH, gene, th[0], target, psi, lo, hi, max_iter, buf, o[0])
        for i in range(5):
            out[i] = o[0, i]
        return ll
    hi[1] = LOG_B_CAP
    o_tg = o[0]
    l_tg = _profile_at(MODEL_TELEGRAPH, gene, th[0], target, psi, lo, hi, max_iter, buf, o_tg)
    _group_box(MODEL_NEGBINOM, target, lo, hi)
    o_nb = o[1]
    l_nb = _profile_at(MODEL_NEGBINOM, gene, th[1], target, psi, lo, hi, max_iter, buf, o_nb)
    if l_tg > l_nb:
        for i in range(5):
            out[i] = o[0, i]
        return l_tg
    for i in range(5):
        out[i] = o[1, i]
    return l_nb


@njit(cache=True, error_model="numpy")
def _init_state(kind, gene, theta_tg, theta_nb, target, buf, th, o):
    """Warm-start state of a group at its unconstrained optimum: th[0], o[0]
    telegraph, th[1], o[1] negative binomial. Returns (psi_hat, curvature)."""
    lo = np.empty(3)
    hi = np.empty(3)
    for i in range(3):
        th[0, i] = theta_tg[i]
        th[1, i] = theta_nb[i]
    for r in range(2):
        for i in range(5):
            o[r, i] = 0.0
    _group_box(MODEL_TELEGRAPH, target, lo, hi)
    _profile_slope(MODEL_TELEGRAPH, gene, th[0], target, lo, hi, buf, o[0])
    if kind == 0:
        return _psi_of(MODEL_TELEGRAPH, target, th[0]), o[0, 1]
    _group_box(MODEL_NEGBINOM, target, lo, hi)
    _profile_slope(MODEL_NEGBINOM, gene, th[1], target, lo, hi, buf, o[1])
    return _psi_of(MODEL_NEGBINOM, target, th[1]), o[1, 1]


@njit(cache=True, error_model="numpy")
def _copy2(dst, src):
    """``dst[:, :] = src`` element by element (a slice copy compiles Numba's
    shape-error message, seconds of a cold start)."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, j]


@njit(cache=True, error_model="numpy")
def _joint_max(k1, gene1, k2, gene2, th1, o1, th2, o2, target, delta,
               psi1_hat, psi2_hat, psi_start, max_iter, buf, res, gain_tol):
    """max_psi p1(psi) + p2(psi + delta).

    ``th1, o1``, ``th2, o2``: the groups' warm-start states (see
    :func:`_group_profile`), replaced by those at the maximiser. The
    maximiser lies between psi1_hat and psi2_hat - delta (each profile is
    unimodal); the search stays there and where both profiles are defined.
    Writes res = (psi*, slope of p2 at psi* + delta, slope of p1 at psi*,
    curvature of p1, curvature of p2) and returns the maximum (-inf if delta
    is infeasible). Stops when Newton's predicted gain is below ``gain_tol``.
    """
    lo1, hi1 = _psi_range(k1, target)
    lo2, hi2 = _psi_range(k2, target)
    flo = max(lo1, lo2 - delta)
    fhi = min(hi1, hi2 - delta)
    if flo > fhi:
        res[0] = np.nan
        return -np.inf
    p_lo = min(psi1_hat, psi2_hat - delta)
    p_hi = max(psi1_hat, psi2_hat - delta)
    a = max(p_lo, flo)
    b = min(p_hi, fhi)
    if a > b:
        # both unconstrained maximisers lie beyond one end of the feasible range
        a = flo if p_hi < flo else fhi
        b = a
    psi = min(max(psi_start, a), b)
    best = -np.inf
    bt1 = th1.copy()
    bt2 = th2.copy()
    bo1 = o1.copy()
    bo2 = o2.copy()
    q1 = np.zeros(5)
    q2 = np.zeros(5)
    for _it in range(40):
        l1 = _group_profile(k1, gene1, th1, o1, target, psi, max_iter, buf, q1)
        l2 = _group_profile(k2, gene2, th2, o2, target, psi + delta, max_iter, buf, q2)
        F = l1 + l2
        D = q1[0] + q2[0]
        C = q1[1] + q2[1]
        if F > best:
            best = F
            res[0] = psi
            res[1] = q2[0]
            res[2] = q1[0]
            res[3] = q1[1]
            res[4] = q2[1]
            _copy2(bt1, th1)
            _copy2(bt2, th2)
            _copy2(bo1, o1)
            _copy2(bo2, o2)
        if not np.isfinite(F):
            break
        if D > 0.0:
            a = psi
        else:
            b = psi
        if b - a < 1e-9:
            break
        if C > 0.0 and 0.5 * D * D / C < gain_tol:
            break
        new = psi + D / C if C > 0.0 else np.nan
        if not (new > a and new < b):
            new = 0.5 * (a + b)
        if abs(new - psi) < 1e-10:
            break
        psi = new
    _copy2(th1, bt1)
    _copy2(th2, bt2)
    _copy2(o1, bo1)
    _copy2(o2, bo2)
    return best


@njit(cache=True, error_model="numpy")
def _ci_end(k1, gene1, k2, gene2, th1_hat, o1_hat, th2_hat, o2_hat, target,
            psi1_hat, psi2_hat, ll_alt, dev0, dev_lim, se, side, drop, max_iter, buf):
    """One end of the profile-likelihood interval of delta = psi2 - psi1.

    ``dev0`` = ll_alt - L(0), the half test statistic: delta = 0 is inside
    the interval iff dev0 < drop, which brackets the search on that side and
    keeps interval and test consistent. ``dev_lim`` = ll_alt - lim L(delta)
    as delta -> side inf, from the limit models of the two groups: the
    interval is unbounded on this side exactly when it is below ``drop``.
    This is decided from the limits rather than by searching because the
    box, which both psi and psi + delta must respect, raises the deviance
    artificially for large |delta|. Returns NaN when the search fails."""
    if not (dev_lim >= drop):
        return side * np.inf
    lo1, hi1 = _psi_range(k1, target)
    lo2, hi2 = _psi_range(k2, target)
    # feasible delta = psi2 - psi1; stop just inside
    if side > 0:
        d_edge = (hi2 - lo1) * (1.0 - 1e-9)
    else:
        d_edge = (lo2 - hi1) * (1.0 - 1e-9)
    d_hat = psi2_hat - psi1_hat
    r_star = math.sqrt(drop)
    th1 = th1_hat.copy()
    th2 = th2_hat.copy()
    o1 = o1_hat.copy()
    o2 = o2_hat.copy()
    res = np.zeros(5)
    step0 = se * r_star * math.sqrt(2.0) if (se > 0.0 and np.isfinite(se)) else 0.5
    step0 = min(max(step0, 0.02), 3.0)
    d_in = d_hat
    d_out = np.nan
    if side * (0.0 - d_hat) > 0.0 and np.isfinite(dev0):
        if dev0 >= drop:
            d_out = 0.0
        else:
            d_in = 0.0
    delta = d_hat + side * step0
    if np.isfinite(d_out) and side * (delta - d_out) >= 0.0:
        delta = 0.5 * (d_in + d_out)
    elif side * (delta - d_in) <= 0.0:
        delta = d_in + side * step0
    psi_prev = psi1_hat
    d_prev = d_hat
    share2 = 0.5
    for _it in range(40):
        at_edge = False
        if side * (delta - d_edge) >= 0.0:
            delta = d_edge
            at_edge = True
        # the joint optimum psi* moves by -c2 / (c1 + c2) per unit of delta
        psi_start = psi_prev - share2 * (delta - d_prev)
        # the interval end needs the deviance to ~1e-4 (r to 1e-4 below)
        L = _joint_max(k1, gene1, k2, gene2, th1, o1, th2, o2, target, delta,
                       psi1_hat, psi2_hat, psi_start, max_iter, buf, res, 1e-7)
        if not np.isfinite(L):
            return np.nan
        psi_prev = res[0]
        d_prev = delta
        if res[3] > 0.0 and res[4] > 0.0:
            share2 = res[4] / (res[3] + res[4])
        dev = max(ll_alt - L, 0.0)
        r = math.sqrt(dev)
        if abs(r - r_star) < 1e-4:
            return delta
        if r < r_star:
            if at_edge:
                # the crossing lies beyond the box: interpolate the deviance
                # linearly in exp(-side delta) between the edge and the limit
                eps_e = math.exp(-side * delta)
                eps_star = eps_e * (dev_lim - drop) / max(dev_lim - dev, 1e-300)
                return -side * math.log(eps_star)
            d_in = delta
        else:
            d_out = delta
        # Newton on the root deviance: dr/ddelta = -L'(delta) / (2 r), with
        # L'(delta) = p2'(psi* + delta) = -p1'(psi*) at the optimum
        slope = 0.5 * (res[1] - res[2])
        new = np.nan
        if r > 1e-6:
            dr = -slope / (2.0 * r)
            if side * dr > 0.0:
                new = delta + (r_star - r) / dr
        if np.isfinite(d_out):
            lo_d = min(d_in, d_out)
            hi_d = max(d_in, d_out)
            if hi_d - lo_d < 1e-7:
                return 0.5 * (d_in + d_out)
            if not (new > lo_d and new < hi_d):
                new = 0.5 * (d_in + d_out)
        else:
            # not yet bracketed: step outwards, at most doubling the distance
            far = d_hat + side * 2.0 * max(abs(delta - d_hat), 0.05)
            if not np.isfinite(new) or side * (new - far) > 0.0 or side * (new - delta) <= 0.0:
                new = far
        delta = new
    return np.nan


@njit(error_model="numpy", nogil=True)
def differential_genes(indptr1, values1, groups1, weights1, capture1,
                       indptr2, values2, groups2, weights2, capture2,
                       kind1, theta_tg1, theta_nb1, ll1, lim1,
                       kind2, theta_tg2, theta_nb2, ll2, lim2,
                       testable, drops, want_ci, max_iter, result):
    """Likelihood-ratio tests of equal log burst frequency and equal log burst
    size for every gene; one row of ``result`` (n_genes, N_DIFF_RESULT).

    For group g and gene i: ``kind_g[i]`` (0: profile in the telegraph model;
    1: the fit's supremum is the bursty limit, see :func:`_group_profile`),
    ``theta_tg_g[i]`` = the telegraph fit (log a, log b, log lam) in the fit
    box, ``theta_nb_g[i]`` = the negative-binomial fit (log a, log beta, 0),
    ``ll_g[i]`` = the unconstrained maximum (telegraph for kind 0, NB for
    kind 1), ``lim_g[i]`` = the log-likelihoods of the Poisson and
    zero-inflated Poisson limits (the suprema of the profiles towards
    +-inf). ``testable[i]`` false skips the gene (NaN row). ``drops[i, t]``
    defines the profile interval of the log-ratio of test t (the calibrated
    null law's ci-quantile of the statistic, halved: chi2_1(ci) / 2 times
    the gene's null scale), computed when ``want_ci``.
    Per target t the row holds (psi1_hat, psi2_hat, l0, LR statistic,
    interval low, interval high, Wald s.e. of the log-ratio, converged).
    """
    n_genes = indptr1.shape[0] - 1
    for gi in range(n_genes):
        row = result[gi]
        for j in range(N_DIFF_RESULT):
            row[j] = np.nan
        if not testable[gi]:
            continue
        s1_ = indptr1[gi]
        e1_ = indptr1[gi + 1]
        s2_ = indptr2[gi]
        e2_ = indptr2[gi + 1]
        v1, w1, g1 = sort_bins(values1[s1_:e1_], weights1[s1_:e1_], groups1[s1_:e1_])
        v2, w2, g2 = sort_bins(values2[s2_:e2_], weights2[s2_:e2_], groups2[s2_:e2_])
        gene1 = gene_bins(v1, w1, g1, capture1)
        gene2 = gene_bins(v2, w2, g2, capture2)
        k1 = kind1[gi]
        k2 = kind2[gi]
        buf = np.zeros(11)
        th1 = np.zeros((2, 3))
        th2 = np.zeros((2, 3))
        o1 = np.zeros((2, 5))
        o2 = np.zeros((2, 5))
        res = np.zeros(5)
        ll_alt = ll1[gi] + ll2[gi]
        for t in range(2):
            target = TARGET_LOG_A if t == 0 else TARGET_LOG_BETA
            base = t * N_PER_TARGET
            psi1, cc1 = _init_state(k1, gene1, theta_tg1[gi], theta_nb1[gi], target, buf, th1, o1)
            psi2, cc2 = _init_state(k2, gene2, theta_tg2[gi], theta_nb2[gi], target, buf, th2, o2)
            th1_hat = th1.copy()
            th2_hat = th2.copy()
            o1_hat = o1.copy()
            o2_hat = o2.copy()
            if cc1 > 0.0 and cc2 > 0.0:
                start = (cc1 * psi1 + cc2 * psi2) / (cc1 + cc2)
                se = math.sqrt(1.0 / cc1 + 1.0 / cc2)
            else:
                start = 0.5 * (psi1 + psi2)
                se = np.nan
            l0 = _joint_max(k1, gene1, k2, gene2, th1, o1, th2,
                            o2, target, 0.0, psi1, psi2, start, max_iter, buf, res, 1e-10)
            lr = 2.0 * (ll_alt - l0)
            row[base + D_PSI1] = psi1
            row[base + D_PSI2] = psi2
            row[base + D_L0] = l0
            # a constrained maximum above the unconstrained one means a
            # separate fit missed its global optimum: the statistic is 0
            row[base + D_LR] = max(lr, 0.0)
            row[base + D_SE] = se
            ok = np.isfinite(l0) and lr > -1e-6 * (1.0 + abs(ll_alt))
            row[base + D_CONV] = 1.0 if ok else 0.0
            if want_ci:
                # suprema of the profiles towards -inf and +inf (limit models:
                # lim[0] Poisson, lim[1] zero-inflated Poisson)
                if t == 0:
                    lo1, hi1 = lim1[gi, 1], lim1[gi, 0]
                    lo2, hi2 = lim2[gi, 1], lim2[gi, 0]
                else:
                    lo1, hi1 = lim1[gi, 0], max(lim1[gi, 0], lim1[gi, 1])
                    lo2, hi2 = lim2[gi, 0], max(lim2[gi, 0], lim2[gi, 1])
                for side_i in range(2):
                    side = -1.0 if side_i == 0 else 1.0
                    # delta -> side inf: psi2 -> side inf or psi1 -> -side inf
                    if side > 0:
                        l_lim = max(ll1[gi] + hi2, lo1 + ll2[gi])
                    else:
                        l_lim = max(ll1[gi] + lo2, hi1 + ll2[gi])
                    row[base + D_CI_LO + side_i] = _ci_end(
                        k1, gene1, k2, gene2, th1_hat, o1_hat,
                        th2_hat, o2_hat, target, psi1, psi2, ll_alt, ll_alt - l0,
                        ll_alt - l_lim, se, side, drops[gi, t], max_iter, buf)


class DiffRows:
    """The rows :func:`differential_genes` writes, read by name.

    Wraps the (n_genes, N_DIFF_RESULT) float array without copying it. Each
    accessor takes the test t: 0 for log burst frequency (log a), 1 for log
    burst size (log beta), the order of TARGETS; psi is natural log, group 2
    over group 1. Columns come back as read-only views. Outside the kernels,
    read the rows through this view rather than by ``D_*`` index.
    """

    #: the tests t, in the order of the row's blocks
    TARGETS = ("log_a", "log_beta")
    #: the entries of a test's block: accessor -> its offsets in the block
    FIELDS = {"psi1": (D_PSI1,), "psi2": (D_PSI2,), "loglik_null": (D_L0,), "lr": (D_LR,),
              "ci": (D_CI_LO, D_CI_HI), "se": (D_SE,), "converged": (D_CONV,)}

    __slots__ = ("_raw",)

    def __init__(self, raw):
        if isinstance(raw, DiffRows):
            raw = raw._raw
        raw = np.asarray(raw, dtype=float)
        if raw.ndim != 2 or raw.shape[1] != N_DIFF_RESULT:
            raise ValueError(f"differential result rows must have shape (n_genes, "
                             f"{N_DIFF_RESULT}); got {raw.shape}")
        self._raw = raw

    def __len__(self):
        return self._raw.shape[0]

    def _col(self, target, offset):
        a = self._raw[:, target * N_PER_TARGET + offset]
        a.flags.writeable = False
        return a

    @property
    def array(self):
        """The wrapped (n_genes, N_DIFF_RESULT) array, read-only."""
        a = self._raw[:, :]
        a.flags.writeable = False
        return a

    def psi1(self, target):
        """Group 1's estimate of the target (its unconstrained fit)."""
        return self._col(target, D_PSI1)

    def psi2(self, target):
        """Group 2's estimate of the target."""
        return self._col(target, D_PSI2)

    def log_ratio(self, target):
        """psi2 - psi1, the estimated log-ratio (a new array)."""
        return self.psi2(target) - self.psi1(target)

    def loglik_null(self, target):
        """l0, the maximum log-likelihood of both groups with the target shared."""
        return self._col(target, D_L0)

    def lr(self, target):
        """The likelihood-ratio statistic 2 (l1 + l2 - l0); NaN where the
        gene was not tested."""
        return self._col(target, D_LR)

    def ci(self, target):
        """(low, high) of the profile interval of the log-ratio (NaN unless
        profile intervals were asked for)."""
        return self._col(target, D_CI_LO), self._col(target, D_CI_HI)

    def se(self, target):
        """Wald standard error of the log-ratio."""
        return self._col(target, D_SE)

    def converged(self, target):
        """Whether the constrained maximisation converged (bool)."""
        return self._raw[:, target * N_PER_TARGET + D_CONV] == 1.0


def compile_ahead_plan():
    """The argument types of :func:`differential_genes` as
    :mod:`telegraph.differential` calls it, and the job a helper process
    compiles ahead when it is compiled cold (kernels/_ahead.py): the kernel
    itself, while the per-group fits compile. Returns ``(args, jobs)``."""
    vi, vf, mf = nbtypes.int64[::1], nbtypes.float64[::1], nbtypes.float64[:, ::1]
    hist = (vi, vi, vi, vf, vf)       # indptr, values, groups, weights, capture
    group = (vi, mf, mf, vf, mf)      # kind, theta_tg, theta_nb, ll, lim
    args = hist + hist + group + group + (nbtypes.boolean[::1], mf, nbtypes.boolean,
                                          nbtypes.int64, mf)
    return args, [(differential_genes, args)]
