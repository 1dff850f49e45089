"""Per-gene maximum likelihood for the telegraph model and its limits, in Numba.

One gene's data is its count histogram: bins (value, capture group, weight).
Three models share one damped-Newton optimiser (``_maximize``):

- model 0, telegraph: theta = (log a, log b, log lam), a = k_on/k_deg,
  b = k_off/k_deg, lam = k_syn/k_deg; gradient from Fisher's identity and
  Hessian from Louis' identity (:mod:`telegraph.kernels.poisson_beta`);
- model 1, negative binomial (the bursty limit b, lam -> inf at fixed burst
  size beta = lam/b): theta = (log a, log beta);
- model 2, zero-inflated Poisson (the slow-switching limit a, b -> 0 at fixed
  fraction on f): theta = (logit f, log lam).

The Poisson limit (a, b -> inf) has a closed form. Comparing the telegraph
optimum with these limits tells which directions of the likelihood are flat
(the regime) and where profile intervals are unbounded.

Profiling works on linear reparameterisations phi = T theta with one
coordinate of phi held fixed, so burst size (log lam - log b) is profiled
exactly like the rates themselves.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .poisson_beta import histogram_eval, pb_eval
from .special import digamma_shift, trigamma_shift

# search box for (log a, log b): k_on, k_off in [1e-4, 1e3] x k_deg (beyond it the
# limits take over); lam up to 1e6
LOG_LO = math.log(1e-4)
LOG_HI = math.log(1e3)
LOG_LAM_LO = math.log(1e-4)
LOG_LAM_HI = math.log(1e6)

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

# profile targets: phi = T theta, the fixed coordinate is index 2 of phi for
# log beta and index k of theta otherwise
TARGET_LOG_A, TARGET_LOG_BETA, TARGET_LOG_B, TARGET_LOG_LAM = 0, 1, 2, 3


@njit(cache=True, error_model="numpy")
def _nb_eval(values, weights, groups, capture, theta, want_info, g, H):
    a = math.exp(theta[0])
    beta = math.exp(theta[1])
    ll = 0.0
    g[0] = 0.0
    g[1] = 0.0
    haa = 0.0
    hab = 0.0
    hbb = 0.0
    for i in range(values.shape[0]):
        w = weights[i]
        n = float(values[i])
        s = capture[groups[i]]
        sb = s * beta
        l1 = math.log1p(sb)
        ll += w * (math.lgamma(n + a) - math.lgamma(a) - math.lgamma(n + 1.0)
                   + (n * math.log(sb) if n > 0 else 0.0) - (n + a) * l1)
        dpa = digamma_shift(a, n) - l1
        dbeta = n / beta - (n + a) * s / (1.0 + sb)
        g[0] += w * a * dpa
        g[1] += w * beta * dbeta
        if want_info:
            # d2/da2, d2/da dbeta, d2/dbeta2 in natural parameters (negated later)
            haa += w * (-trigamma_shift(a, n))
            hab += w * (-s / (1.0 + sb))
            hbb += w * (-n / (beta * beta) + (n + a) * s * s / ((1.0 + sb) * (1.0 + sb)))
    if want_info:
        # observed information in log parameters
        H[0, 0] = -(a * a * haa) - g[0]
        H[0, 1] = -(a * beta * hab)
        H[1, 0] = H[0, 1]
        H[1, 1] = -(beta * beta * hbb) - g[1]
    return ll


@njit(cache=True, error_model="numpy")
def _zip_eval(values, weights, groups, capture, theta, want_info, g, H):
    # theta = (logit f, log lam)
    f = 1.0 / (1.0 + math.exp(-theta[0]))
    lam = math.exp(theta[1])
    ll = 0.0
    g0 = 0.0
    g1 = 0.0
    h00 = 0.0
    h01 = 0.0
    h11 = 0.0
    for i in range(values.shape[0]):
        w = weights[i]
        n = float(values[i])
        s = capture[groups[i]]
        mu = s * lam
        if n > 0:
            ll += w * (math.log(f) + n * math.log(mu) - mu - math.lgamma(n + 1.0))
            # d/dlogit f of log f = 1 - f ; d/dlog lam = n - mu
            g0 += w * (1.0 - f)
            g1 += w * (n - mu)
            h00 += w * (-(f * (1.0 - f)))
            h11 += w * (-mu)
        else:
            e = math.exp(-mu)
            p0 = 1.0 - f + f * e
            ll += w * math.log(p0)
            # derivatives of log p0 wrt u = logit f and v = log lam
            dp_du = f * (1.0 - f) * (e - 1.0)
            dp_dv = -f * e * mu
            d2p_du2 = f * (1.0 - f) * (1.0 - 2.0 * f) * (e - 1.0)
            d2p_dudv = -f * (1.0 - f) * e * mu
            d2p_dv2 = -f * e * mu + f * e * mu * mu
            g0 += w * dp_du / p0
            g1 += w * dp_dv / p0
            h00 += w * (d2p_du2 / p0 - (dp_du / p0) ** 2)
            h01 += w * (d2p_dudv / p0 - dp_du * dp_dv / (p0 * p0))
            h11 += w * (d2p_dv2 / p0 - (dp_dv / p0) ** 2)
    g[0] = g0
    g[1] = g1
    if want_info:
        H[0, 0] = -h00
        H[0, 1] = -h01
        H[1, 0] = -h01
        H[1, 1] = -h11
    return ll


@njit(cache=True, error_model="numpy")
def _tg_eval(values, weights, groups, capture, theta, want_info, g, H, buf):
    a = math.exp(theta[0])
    b = math.exp(theta[1])
    lam = math.exp(theta[2])
    histogram_eval(values, weights, groups, capture, a, b, lam, want_info, buf)
    p0 = a
    p1 = b
    p2 = lam
    g[0] = buf[1] * p0
    g[1] = buf[2] * p1
    g[2] = buf[3] * p2
    if want_info:
        H[0, 0] = p0 * p0 * buf[4] - g[0]
        H[0, 1] = p0 * p1 * buf[5]
        H[0, 2] = p0 * p2 * buf[6]
        H[1, 1] = p1 * p1 * buf[7] - g[1]
        H[1, 2] = p1 * p2 * buf[8]
        H[2, 2] = p2 * p2 * buf[9] - g[2]
        H[1, 0] = H[0, 1]
        H[2, 0] = H[0, 2]
        H[2, 1] = H[1, 2]
    return buf[0]


@njit(cache=True, error_model="numpy")
def _eval(model, values, weights, groups, capture, theta, want_info, g, H, buf):
    if model == 0:
        return _tg_eval(values, weights, groups, capture, theta, want_info, g, H, buf)
    elif model == 1:
        return _nb_eval(values, weights, groups, capture, theta, want_info, g, H)
    return _zip_eval(values, weights, groups, capture, theta, want_info, g, H)


@njit(cache=True, error_model="numpy")
def _solve_damped(H, g, free, nfree, mu, step):
    """Solve (H_ff + mu I) d = g_f by Cholesky; returns False if not PD."""
    idx = np.empty(3, np.int64)
    m = 0
    for i in range(3):
        if free[i]:
            idx[m] = i
            m += 1
    A = np.zeros((3, 3))
    rhs = np.zeros(3)
    for i in range(m):
        rhs[i] = g[idx[i]]
        for j in range(m):
            A[i, j] = H[idx[i], idx[j]]
        A[i, i] += mu
    L = np.zeros((3, 3))
    for i in range(m):
        for j in range(i + 1):
            s = A[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            if i == j:
                if s <= 0.0 or not np.isfinite(s):
                    return False
                L[i, i] = math.sqrt(s)
            else:
                L[i, j] = s / L[j, j]
    y = np.zeros(3)
    for i in range(m):
        s = rhs[i]
        for k in range(i):
            s -= L[i, k] * y[k]
        y[i] = s / L[i, i]
    z = np.zeros(3)
    for i in range(m - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, m):
            s -= L[k, i] * z[k]
        z[i] = s / L[i, i]
    for i in range(3):
        step[i] = 0.0
    for i in range(m):
        step[idx[i]] = z[i]
    return True


@njit(cache=True, error_model="numpy")
def _to_phi(T, theta, phi):
    for i in range(3):
        s = 0.0
        for j in range(3):
            s += T[i, j] * theta[j]
        phi[i] = s


@njit(cache=True, error_model="numpy")
def _to_theta(Tinv, phi, theta):
    for i in range(3):
        acc = 0.0
        for j in range(3):
            acc += Tinv[i, j] * phi[j]
        theta[i] = acc


@njit(cache=True, error_model="numpy")
def _grad_info_phi(Tinv, g, H, gp, Hp):
    """Gradient and information in phi = T theta: Tinv^T g and Tinv^T H Tinv."""
    for i in range(3):
        s = 0.0
        for k in range(3):
            s += Tinv[k, i] * g[k]
        gp[i] = s
    for i in range(3):
        for j in range(3):
            s = 0.0
            for k in range(3):
                for l in range(3):
                    s += Tinv[k, i] * H[k, l] * Tinv[l, j]
            Hp[i, j] = s


@njit(cache=True, error_model="numpy")
def _maximize(model, values, weights, groups, capture, theta, T, Tinv, free, lo, hi,
              max_iter, buf):
    """Damped Newton ascent of the log-likelihood over the free coordinates of
    phi = T theta, within the box lo <= phi <= hi. ``theta`` is updated in place.
    Returns (loglik, converged, iterations)."""
    nfree = 0
    for i in range(3):
        if free[i]:
            nfree += 1
    g = np.zeros(3)
    H = np.zeros((3, 3))
    gp = np.zeros(3)
    Hp = np.zeros((3, 3))
    step = np.zeros(3)
    phi = np.zeros(3)
    phi_new = np.zeros(3)
    theta_new = np.zeros(3)
    g_new = np.zeros(3)
    H_new = np.zeros((3, 3))
    _to_phi(T, theta, phi)
    for i in range(3):
        if free[i]:
            phi[i] = min(max(phi[i], lo[i]), hi[i])
    _to_theta(Tinv, phi, theta)
    ll = _eval(model, values, weights, groups, capture, theta, True, g, H, buf)
    if not np.isfinite(ll):
        return ll, False, 0
    mu = 0.0
    converged = False
    flat = 0
    it = 0
    while it < max_iter:
        it += 1
        _grad_info_phi(Tinv, g, H, gp, Hp)
        # coordinates pinned at the box edge with the gradient pointing out are
        # held (active set), so the Newton step works in the remaining ones
        act = np.zeros(3, np.bool_)
        for i in range(3):
            act[i] = free[i]
            if free[i]:
                if phi[i] <= lo[i] + 1e-12 and gp[i] < 0.0:
                    act[i] = False
                if phi[i] >= hi[i] - 1e-12 and gp[i] > 0.0:
                    act[i] = False
        nact = 0
        gmax = 0.0
        for i in range(3):
            if act[i]:
                nact += 1
                gmax = max(gmax, abs(gp[i]))
        if nact == 0:
            converged = True
            break
        scale = 0.0
        for i in range(3):
            if act[i]:
                scale = max(scale, abs(Hp[i, i]))
        if scale == 0.0:
            scale = 1.0
        # projected Newton: a coordinate at the box edge whose step points out
        # of the box is held too, and the step is then shortened (not clipped
        # per coordinate, which would leave the ridge of a flat likelihood)
        ok = False
        for _rep in range(3):
            ok = _solve_damped(Hp, gp, act, nact, mu, step)
            tries = 0
            while not ok and tries < 60:
                mu = max(mu * 4.0, 1e-6 * scale)
                ok = _solve_damped(Hp, gp, act, nact, mu, step)
                tries += 1
            if not ok:
                break
            changed = False
            for i in range(3):
                if act[i] and ((phi[i] <= lo[i] + 1e-12 and step[i] < 0.0)
                               or (phi[i] >= hi[i] - 1e-12 and step[i] > 0.0)):
                    act[i] = False
                    nact -= 1
                    changed = True
            if not changed or nact == 0:
                break
        if not ok or nact == 0:
            converged = nact == 0
            break
        # Newton decrement: converged when the predicted gain is negligible
        dec = 0.0
        for i in range(3):
            dec += gp[i] * step[i]
        if mu == 0.0 and dec < 1e-9:
            converged = True
            break
        smax = 0.0
        for i in range(3):
            smax = max(smax, abs(step[i]))
        shrink = 1.0
        if smax > 2.0:
            shrink = 2.0 / smax
        for i in range(3):
            if free[i] and step[i] != 0.0:
                if step[i] > 0.0:
                    room = hi[i] - phi[i]
                    if step[i] * shrink > room:
                        shrink = room / step[i]
                else:
                    room = lo[i] - phi[i]
                    if step[i] * shrink < room:
                        shrink = room / step[i]
        for i in range(3):
            step[i] *= shrink
        smax *= shrink
        for i in range(3):
            phi_new[i] = phi[i] + step[i]
            if free[i]:
                phi_new[i] = min(max(phi_new[i], lo[i]), hi[i])
        _to_theta(Tinv, phi_new, theta_new)
        ll_new = _eval(model, values, weights, groups, capture, theta_new, True, g_new, H_new,
                       buf)
        if np.isfinite(ll_new) and ll_new >= ll - 1e-12 * (1.0 + abs(ll)):
            gain = ll_new - ll
            for i in range(3):
                phi[i] = phi_new[i]
                theta[i] = theta_new[i]
                g[i] = g_new[i]
                for j in range(3):
                    H[i, j] = H_new[i, j]
            ll = ll_new
            mu = mu * 0.25 if mu > 1e-9 * scale else 0.0
            if gain < 1e-11 * (1.0 + abs(ll)) and smax < 1e-7:
                converged = True
                break
            # on a ridge that rises towards a limit outside the box the steps
            # stay long while the gains vanish: stop when the likelihood is
            # flat to 1e-9 over several steps (the limit models take over)
            if gain < 1e-9 * (1.0 + abs(ll)):
                flat += 1
                if flat >= 6:
                    converged = True
                    break
            else:
                flat = 0
        else:
            mu = max(mu * 4.0, 1e-3 * scale)
            if mu > 1e12 * scale:
                # no ascent direction left at machine precision
                converged = gmax < 1e-3 * (1.0 + abs(ll))
                break
    return ll, converged, it


@njit(cache=True, error_model="numpy")
def _moments(values, weights, groups, capture):
    """Capture-corrected factorial moments E[(n)_k / s^k], k = 1, 2, 3, and the
    fraction of zeros."""
    m0 = 0.0
    m1 = 0.0
    m2 = 0.0
    m3 = 0.0
    z = 0.0
    for i in range(values.shape[0]):
        w = weights[i]
        n = float(values[i])
        s = capture[groups[i]]
        m0 += w
        m1 += w * n / s
        m2 += w * n * (n - 1.0) / (s * s)
        m3 += w * n * (n - 1.0) * (n - 2.0) / (s * s * s)
        if values[i] == 0:
            z += w
    return m1 / m0, m2 / m0, m3 / m0, z / m0


@njit(cache=True, error_model="numpy")
def _poisson_fit(values, weights, groups, capture):
    sn = 0.0
    ss = 0.0
    for i in range(values.shape[0]):
        sn += weights[i] * values[i]
        ss += weights[i] * capture[groups[i]]
    mu = sn / ss
    ll = 0.0
    for i in range(values.shape[0]):
        n = float(values[i])
        m = capture[groups[i]] * mu
        ll += weights[i] * ((n * math.log(m) if n > 0 else 0.0) - m - math.lgamma(n + 1.0))
    return mu, ll


@njit(cache=True, error_model="numpy")
def _target_transform(target):
    """(T, Tinv, fixed index in phi) for a profile target."""
    T = np.eye(3)
    if target == TARGET_LOG_A:
        return T, np.eye(3), 0
    if target == TARGET_LOG_B:
        return T, np.eye(3), 1
    if target == TARGET_LOG_LAM:
        return T, np.eye(3), 2
    # log beta = log lam - log b
    T[2, 1] = -1.0
    Tinv = np.eye(3)
    Tinv[2, 1] = 1.0
    return T, Tinv, 2


@njit(cache=True, error_model="numpy")
def _box(target, lo, hi):
    lo[0] = LOG_LO
    hi[0] = LOG_HI
    lo[1] = LOG_LO
    hi[1] = LOG_HI
    if target == TARGET_LOG_BETA:
        lo[2] = LOG_LAM_LO - LOG_HI
        hi[2] = LOG_LAM_HI - LOG_LO
    else:
        lo[2] = LOG_LAM_LO
        hi[2] = LOG_LAM_HI


@njit(cache=True, error_model="numpy")
def _fit_telegraph(values, weights, groups, capture, theta_out, max_iter, buf):
    """Multi-start fit of the telegraph model. Returns (ll, converged, iters)."""
    m1, m2, m3, zf = _moments(values, weights, groups, capture)
    starts = np.empty((5, 3))
    ns = 0
    # method of moments (as txburst): from the first three factorial moments
    if m1 > 0 and m2 > 0 and m3 > 0:
        r1 = m1
        r2 = m2 / m1
        r3 = m3 / m2
        den = r1 * r2 - 2.0 * r1 * r3 + r2 * r3
        den2 = r1 - 2.0 * r2 + r3
        if den != 0.0 and den2 != 0.0:
            kon = 2.0 * r1 * (r3 - r2) / den
            koff = 2.0 * (r3 - r2) * (r1 - r3) * (r2 - r1) / (den * den2)
            ksyn = (-r1 * r2 + 2.0 * r1 * r3 - r2 * r3) / den2
            if kon > 0 and koff > 0 and ksyn > 0:
                starts[ns, 0] = math.log(kon)
                starts[ns, 1] = math.log(koff)
                starts[ns, 2] = math.log(ksyn)
                ns += 1
    mean = max(m1, 1e-3)
    var_lp = m2 - m1 * m1  # variance of lam p
    # bursty (negative-binomial-like) start: p ~ Gamma(a, beta/lam)
    if var_lp > 1e-3 * mean:
        beta = var_lp / mean
        a = mean / beta
    else:
        beta = 0.5
        a = mean / beta
    starts[ns, 0] = math.log(max(a, 2e-4))
    starts[ns, 1] = math.log(50.0)
    starts[ns, 2] = math.log(beta * 50.0)
    ns += 1
    # slow switching (bimodal) start
    fon = max(1.0 - zf, 1e-3)
    starts[ns, 0] = math.log(0.3 * fon + 1e-4)
    starts[ns, 1] = math.log(0.3 * (1.0 - fon) + 1e-4)
    starts[ns, 2] = math.log(mean / fon)
    ns += 1
    # near-Poisson start
    starts[ns, 0] = math.log(20.0)
    starts[ns, 1] = math.log(20.0)
    starts[ns, 2] = math.log(2.0 * mean)
    ns += 1
    # moderate start
    starts[ns, 0] = math.log(1.0)
    starts[ns, 1] = math.log(1.0)
    starts[ns, 2] = math.log(2.0 * mean + 0.5)
    ns += 1

    T = np.eye(3)
    free = np.ones(3, np.bool_)
    lo = np.empty(3)
    hi = np.empty(3)
    _box(TARGET_LOG_A, lo, hi)
    # screen the starts by their log-likelihood (cheap, no information
    # matrix), then climb fully from the two best: one start alone gets
    # trapped in the wrong mode of bimodal data, all five cost 2.5x more
    g = np.zeros(3)
    H = np.zeros((3, 3))
    score_s = np.empty(ns)
    for s in range(ns):
        for i in range(3):
            starts[s, i] = min(max(starts[s, i], lo[i]), hi[i])
        ll0 = _eval(0, values, weights, groups, capture, starts[s], False, g, H, buf)
        score_s[s] = ll0 if np.isfinite(ll0) else -np.inf
    order = np.argsort(-score_s)
    best_ll = -np.inf
    best_conv = False
    total_it = 0
    th = np.empty(3)
    for r in range(min(2, ns)):
        s = order[r]
        for i in range(3):
            th[i] = starts[s, i]
        ll, conv, it = _maximize(0, values, weights, groups, capture, th, T, T, free, lo, hi,
                                 max_iter, buf)
        total_it += it
        if ll > best_ll + 1e-9 or (abs(ll - best_ll) <= 1e-9 and conv and not best_conv):
            best_ll = ll
            best_conv = conv
            for i in range(3):
                theta_out[i] = th[i]
    return best_ll, best_conv, total_it


@njit(cache=True, error_model="numpy")
def _profile_point(values, weights, groups, capture, theta, target, psi, max_iter, buf):
    """Maximise over the other coordinates with the target fixed at psi;
    theta (warm start) is updated. Returns the profile log-likelihood."""
    T, Tinv, fix = _target_transform(target)
    phi = np.zeros(3)
    _to_phi(T, theta, phi)
    phi[fix] = psi
    _to_theta(Tinv, phi, theta)
    free = np.ones(3, np.bool_)
    free[fix] = False
    lo = np.empty(3)
    hi = np.empty(3)
    _box(target, lo, hi)
    ll, conv, it = _maximize(0, values, weights, groups, capture, theta, T, Tinv, free, lo, hi,
                             max_iter, buf)
    return ll


@njit(cache=True, error_model="numpy")
def _profile_bound(values, weights, groups, capture, theta_hat, ll_hat, target, side, se,
                   drop, ll_limit, max_iter, buf, use_vm=True):
    """One end of the profile-likelihood interval of a target (log scale).

    Finds psi where ll_hat - profile(psi) = drop on the given side (+1 or -1).
    When the box edge is reached first, the limit model's log-likelihood
    ll_limit (the supremum of the profile as psi -> +-inf) decides: the bound
    is infinite if ll_hat - ll_limit < drop, otherwise it is interpolated
    between the edge and the limit in exp(-side psi).
    Returns (bound, best profile log-likelihood seen)."""
    # the profile tends to the limit model's maximum as psi -> side * inf: if
    # that stays above the cut-off, the interval is unbounded on this side
    # (no search needed, and none towards the costly edge of the box)
    if ll_hat - ll_limit < drop:
        return side * np.inf, ll_hat
    if use_vm:
        vm = _profile_bound_vm(values, weights, groups, capture, theta_hat, ll_hat, target,
                               side, drop, buf)
        if np.isfinite(vm):
            return vm, ll_hat
    T, Tinv, fix = _target_transform(target)
    lo = np.empty(3)
    hi = np.empty(3)
    _box(target, lo, hi)
    phi_hat = np.zeros(3)
    _to_phi(T, theta_hat, phi_hat)
    psi_hat = phi_hat[fix]
    edge = hi[fix] if side > 0 else lo[fix]
    theta = theta_hat.copy()
    best = ll_hat
    # bracket, starting from the Wald guess
    d = se * math.sqrt(2.0 * drop) if (se > 0 and np.isfinite(se)) else 0.5
    d = min(max(d, 0.02), 3.0)
    psi_in = psi_hat
    def_in = 0.0
    psi_out = np.nan
    def_out = np.nan
    theta_in = theta_hat.copy()
    for _ in range(40):
        psi = psi_in + side * d
        at_edge = False
        if (side > 0 and psi >= edge) or (side < 0 and psi <= edge):
            psi = edge
            at_edge = True
        for i in range(3):
            theta[i] = theta_in[i]
        llp = _profile_point(values, weights, groups, capture, theta, target, psi, max_iter, buf)
        if llp > best:
            best = llp
        dev = ll_hat - llp
        if dev >= drop:
            psi_out = psi
            def_out = dev
            break
        psi_in = psi
        def_in = max(dev, 0.0)
        for i in range(3):
            theta_in[i] = theta[i]
        if at_edge:
            # the profile stays above the cut-off up to the box edge
            dlim = ll_hat - ll_limit
            # interpolate linearly in eps = exp(-side * psi) between the edge
            # (eps_e, def_in) and the limit (0, dlim)
            eps_e = math.exp(-side * psi)
            eps_star = eps_e * (dlim - drop) / max(dlim - def_in, 1e-300)
            return -side * math.log(eps_star), best
        d *= 2.0
    if not np.isfinite(psi_out):
        return np.nan, best
    # root of sqrt(dev) = sqrt(drop): the signed root deviance is nearly linear
    # in psi, so regula falsi on it converges in a few steps (Illinois variant)
    r_in = math.sqrt(def_in) - math.sqrt(drop)
    r_out = math.sqrt(def_out) - math.sqrt(drop)
    a_psi = psi_in
    b_psi = psi_out
    fa = r_in
    fb = r_out
    side_kept = 0
    for _ in range(30):
        if abs(b_psi - a_psi) < 1e-3:
            break
        c_psi = b_psi - fb * (b_psi - a_psi) / (fb - fa)
        for i in range(3):
            theta[i] = theta_in[i]
        llp = _profile_point(values, weights, groups, capture, theta, target, c_psi, max_iter, buf)
        if llp > best:
            best = llp
        fc = math.sqrt(max(ll_hat - llp, 0.0)) - math.sqrt(drop)
        if abs(fc) < 1e-6:
            a_psi = c_psi
            b_psi = c_psi
            break
        if fc < 0:
            # c is inside the interval: becomes the new inner end
            a_psi = c_psi
            fa = fc
            for i in range(3):
                theta_in[i] = theta[i]
            if side_kept == -1:
                fb *= 0.5
            side_kept = -1
        else:
            b_psi = c_psi
            fb = fc
            if side_kept == 1:
                fa *= 0.5
            side_kept = 1
    return 0.5 * (a_psi + b_psi), best


@njit(cache=True, error_model="numpy")
def _solve3(A, rhs, out):
    """Gaussian elimination with partial pivoting for a 3x3 system."""
    M = np.empty((3, 4))
    for i in range(3):
        for j in range(3):
            M[i, j] = A[i, j]
        M[i, 3] = rhs[i]
    for c in range(3):
        p = c
        for r in range(c + 1, 3):
            if abs(M[r, c]) > abs(M[p, c]):
                p = r
        if M[p, c] == 0.0 or not np.isfinite(M[p, c]):
            return False
        if p != c:
            for j in range(4):
                tmp = M[c, j]
                M[c, j] = M[p, j]
                M[p, j] = tmp
        for r in range(c + 1, 3):
            f = M[r, c] / M[c, c]
            for j in range(c, 4):
                M[r, j] -= f * M[c, j]
    for i in range(2, -1, -1):
        s = M[i, 3]
        for j in range(i + 1, 3):
            s -= M[i, j] * out[j]
        out[i] = s / M[i, i]
    return True


@njit(cache=True, error_model="numpy")
def _profile_bound_vm(values, weights, groups, capture, theta_hat, ll_hat, target, side, drop,
                      buf):
    """Venzon-Moolgavkar: solve l(phi) = ll_hat - drop together with
    dl/dphi_j = 0 for the nuisance coordinates by Newton's method, one
    likelihood evaluation (with Louis information) per step. A nuisance
    coordinate that sits on the edge of the search box with the likelihood
    rising outwards (a ridge towards a limit) is held on the edge instead.
    Returns the bound (log scale) or NaN when it does not converge cleanly
    (the caller then profiles by nested maximisation)."""
    T, Tinv, fix = _target_transform(target)
    lo = np.empty(3)
    hi = np.empty(3)
    _box(target, lo, hi)
    g = np.zeros(3)
    H = np.zeros((3, 3))
    gp = np.zeros(3)
    Hp = np.zeros((3, 3))
    phi = np.zeros(3)
    theta = theta_hat.copy()
    _to_phi(T, theta, phi)
    psi_hat = phi[fix]
    ll = _tg_eval(values, weights, groups, capture, theta, True, g, H, buf)
    target_ll = ll_hat - drop
    J = np.zeros((3, 3))
    F = np.zeros(3)
    d = np.zeros(3)
    pinned = np.zeros(3, np.bool_)
    _grad_info_phi(Tinv, g, H, gp, Hp)
    for i in range(3):
        if i != fix and ((phi[i] <= lo[i] + 1e-9 and gp[i] <= 0.0)
                         or (phi[i] >= hi[i] - 1e-9 and gp[i] >= 0.0)):
            pinned[i] = True
    for it in range(30):
        if it > 0:
            _grad_info_phi(Tinv, g, H, gp, Hp)
        # the reduced system: pinned coordinates get an identity row/column
        A = Hp.copy()
        for i in range(3):
            if pinned[i]:
                for j in range(3):
                    A[i, j] = 0.0
                    A[j, i] = 0.0
                A[i, i] = 1.0
        if it == 0:
            # start from the quadratic approximation at the optimum
            Vinv = np.zeros(3)
            e_fix = np.zeros(3)
            e_fix[fix] = 1.0
            ok = _solve3(A, e_fix, Vinv)
            if not ok or not (Vinv[fix] > 0.0):
                return np.nan
            r = math.sqrt(2.0 * drop / Vinv[fix])
            # the quadratic guess overshoots where the likelihood is skewed:
            # walk back along the same line until the drop is at most 2x
            phi0 = phi.copy()
            found = False
            for _h in range(12):
                for i in range(3):
                    phi[i] = phi0[i] + side * r * Vinv[i]
                    if i != fix:
                        phi[i] = min(max(phi[i], lo[i]), hi[i])
                if lo[fix] <= phi[fix] <= hi[fix]:
                    _to_theta(Tinv, phi, theta)
                    ll = _tg_eval(values, weights, groups, capture, theta, True, g, H, buf)
                    if np.isfinite(ll) and ll_hat - ll <= 2.0 * drop:
                        found = True
                        break
                r *= 0.5
            if not found:
                return np.nan
            continue
        # residuals: F0 = l - target, Fj = dl/dphi_j for free nuisance j
        F[0] = ll - target_ll
        for j in range(3):
            J[0, j] = 0.0 if pinned[j] else gp[j]
        row = 1
        gmax = 0.0
        for i in range(3):
            if i == fix:
                continue
            if pinned[i]:
                F[row] = 0.0
                for j in range(3):
                    J[row, j] = 1.0 if j == i else 0.0
            else:
                F[row] = gp[i]
                gmax = max(gmax, abs(gp[i]))
                for j in range(3):
                    J[row, j] = 0.0 if pinned[j] else -Hp[i, j]
            row += 1
        if abs(F[0]) < 1e-6 and gmax < 1e-5 * (1.0 + abs(ll_hat)) ** 0.5:
            # a maximum over the free nuisance directions, on the right side,
            # with the pinned ones still pushing outwards
            ok = (phi[fix] - psi_hat) * side > 0.0
            for i in range(3):
                if pinned[i] and not ((phi[i] <= lo[i] + 1e-9 and gp[i] <= 1e-6)
                                      or (phi[i] >= hi[i] - 1e-9 and gp[i] >= -1e-6)):
                    ok = False
            free_n = 0
            idx0 = -1
            idx1 = -1
            for i in range(3):
                if i != fix and not pinned[i]:
                    if idx0 < 0:
                        idx0 = i
                    else:
                        idx1 = i
                    free_n += 1
            if free_n >= 1 and not (Hp[idx0, idx0] > 0.0):
                ok = False
            if free_n == 2 and not (Hp[idx0, idx0] * Hp[idx1, idx1] - Hp[idx0, idx1] ** 2 > 0.0):
                ok = False
            return phi[fix] if ok else np.nan
        for i in range(3):
            F[i] = -F[i]
        if not _solve3(J, F, d):
            return np.nan
        smax = 0.0
        for i in range(3):
            smax = max(smax, abs(d[i]))
        if smax > 1.0:
            for i in range(3):
                d[i] *= 1.0 / smax
        # a nuisance coordinate running out of the box is held on its edge;
        # otherwise halve the step until the likelihood is finite
        phi0 = phi.copy()
        stepped = False
        for _h in range(8):
            for i in range(3):
                phi[i] = phi0[i] + d[i]
            if not (lo[fix] <= phi[fix] <= hi[fix]):
                for i in range(3):
                    d[i] *= 0.5
                continue
            for i in range(3):
                if i != fix and (phi[i] < lo[i] or phi[i] > hi[i]):
                    phi[i] = min(max(phi[i], lo[i]), hi[i])
                    pinned[i] = True
            _to_theta(Tinv, phi, theta)
            ll = _tg_eval(values, weights, groups, capture, theta, True, g, H, buf)
            if np.isfinite(ll):
                stepped = True
                break
            for i in range(3):
                d[i] *= 0.5
        if not stepped:
            return np.nan
    return np.nan


@njit(cache=True, error_model="numpy")
def _wald_se(H):
    """Standard errors of (log a, log b, log lam, log beta) from the observed
    information H in theta = (log a, log b, log lam); NaN if not invertible."""
    out = np.full(4, np.nan)
    det = (H[0, 0] * (H[1, 1] * H[2, 2] - H[1, 2] * H[2, 1])
           - H[0, 1] * (H[1, 0] * H[2, 2] - H[1, 2] * H[2, 0])
           + H[0, 2] * (H[1, 0] * H[2, 1] - H[1, 1] * H[2, 0]))
    if not (det > 0.0) or not np.isfinite(det):
        return out
    C = np.empty((3, 3))
    C[0, 0] = (H[1, 1] * H[2, 2] - H[1, 2] * H[2, 1]) / det
    C[0, 1] = -(H[0, 1] * H[2, 2] - H[0, 2] * H[2, 1]) / det
    C[0, 2] = (H[0, 1] * H[1, 2] - H[0, 2] * H[1, 1]) / det
    C[1, 1] = (H[0, 0] * H[2, 2] - H[0, 2] * H[2, 0]) / det
    C[1, 2] = -(H[0, 0] * H[1, 2] - H[0, 2] * H[1, 0]) / det
    C[2, 2] = (H[0, 0] * H[1, 1] - H[0, 1] * H[1, 0]) / det
    if C[0, 0] > 0:
        out[0] = math.sqrt(C[0, 0])
    if C[1, 1] > 0:
        out[2] = math.sqrt(C[1, 1])
    if C[2, 2] > 0:
        out[3] = math.sqrt(C[2, 2])
    vb = C[2, 2] + C[1, 1] - 2.0 * C[1, 2]
    if vb > 0:
        out[1] = math.sqrt(vb)
    return out


@njit(cache=True, error_model="numpy")
def _gof(values, weights, groups, capture, n_groups, a, b, lam, min_expected, Ig):
    """Pearson chi-square of the observed histogram against the fitted law,
    with adjacent counts pooled until every cell expects >= min_expected
    cells and the last cell holding the whole upper tail.

    Also returns, in ``Ig``, the Fisher information per cell of the pooled
    (grouped) data about theta = (log a, log b, log lam): the statistic's
    null law with the full-data MLE is chi2(K-1-3) + sum_j l_j chi2(1) with
    l_j the eigenvalues of I^-1 (I - Ig) (Chernoff and Lehmann 1954), which
    the caller uses to calibrate the p-value. Returns (X2, K)."""
    nmax = 0
    total = 0.0
    for i in range(values.shape[0]):
        nmax = max(nmax, values[i])
        total += weights[i]
    obs = np.zeros(nmax + 1)
    for i in range(values.shape[0]):
        obs[values[i]] += weights[i]
    gw = np.zeros(n_groups)
    for i in range(values.shape[0]):
        gw[groups[i]] += weights[i]
    # expected cells at each n and their derivatives wrt theta
    expct = np.zeros(nmax + 1)
    dexp = np.zeros((nmax + 1, 3))
    buf = np.zeros(11)
    for gi in range(n_groups):
        if gw[gi] == 0.0:
            continue
        x = capture[gi] * lam
        for n in range(nmax + 1):
            pb_eval(float(n), a, b, x, False, buf)
            e = gw[gi] * math.exp(buf[0])
            expct[n] += e
            dexp[n, 0] += e * a * buf[1]
            dexp[n, 1] += e * b * buf[2]
            dexp[n, 2] += e * x * buf[3]
    x2 = 0.0
    k = 0
    o_acc = 0.0
    e_acc = 0.0
    d_acc = np.zeros(3)
    e_used = 0.0
    o_used = 0.0
    d_used = np.zeros(3)
    for i in range(3):
        for j in range(3):
            Ig[i, j] = 0.0
    for n in range(nmax + 1):
        o_acc += obs[n]
        e_acc += expct[n]
        for i in range(3):
            d_acc[i] += dexp[n, i]
        if e_acc >= min_expected and (total - e_used - e_acc) >= min_expected:
            x2 += (o_acc - e_acc) ** 2 / e_acc
            k += 1
            for i in range(3):
                for j in range(3):
                    Ig[i, j] += d_acc[i] * d_acc[j] / (e_acc * total)
                d_used[i] += d_acc[i]
                d_acc[i] = 0.0
            e_used += e_acc
            o_used += o_acc
            o_acc = 0.0
            e_acc = 0.0
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


@njit(cache=True, error_model="numpy")
def _sort_bins(values, weights, groups):
    """Copies of one gene's bins ordered by (value, group): histogram_eval
    shares the per-count work across capture groups when equal counts are
    adjacent, and the fitter evaluates the same bins hundreds of times."""
    key = values * (groups.max() + 1) + groups if values.shape[0] > 0 else values.copy()
    o = np.argsort(key, kind="mergesort")
    return values[o], weights[o], groups[o]


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
        v, w, gr = _sort_bins(values[lo_:hi_], weights[lo_:hi_], groups[lo_:hi_])
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
        ll, conv, it = _fit_telegraph(v, w, gr, capture, theta, max_iter, buf)
        # limits
        mu_p, ll_p = _poisson_fit(v, w, gr, capture)
        m1, m2, m3, zf = _moments(v, w, gr, capture)
        T = np.eye(3)
        free2 = np.zeros(3, np.bool_)
        free2[0] = True
        free2[1] = True
        lo = np.full(3, -30.0)
        hi = np.full(3, 30.0)
        th_nb = np.zeros(3)
        th_nb[0] = theta[0]
        th_nb[1] = theta[2] - theta[1]
        ll_nb, c_nb, _ = _maximize(1, v, w, gr, capture, th_nb, T, T, free2, lo, hi, max_iter,
                                   buf)
        th_zip = np.zeros(3)
        f0 = min(max(1.0 - zf, 1e-3), 1.0 - 1e-3)
        th_zip[0] = math.log(f0 / (1.0 - f0))
        th_zip[1] = math.log(max(m1 / f0, 1e-3))
        ll_zip, c_zip, _ = _maximize(2, v, w, gr, capture, th_zip, T, T, free2, lo, hi,
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
        _tg_eval(v, w, gr, capture, theta, True, g, H, buf)
        se = _wald_se(H)
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
                bound, best = _profile_bound(v, w, gr, capture, theta, ll_sup, t, side, se[t],
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
            x2, k = _gof(v, w, gr, capture, n_groups, math.exp(theta[0]), math.exp(theta[1]),
                         math.exp(theta[2]), gof_min_expected, Ig)
            row[R_GOF_STAT] = x2
            row[R_GOF_DF] = k
            row[R_GINFO0 + 0] = Ig[0, 0]
            row[R_GINFO0 + 1] = Ig[0, 1]
            row[R_GINFO0 + 2] = Ig[0, 2]
            row[R_GINFO0 + 3] = Ig[1, 1]
            row[R_GINFO0 + 4] = Ig[1, 2]
            row[R_GINFO0 + 5] = Ig[2, 2]
