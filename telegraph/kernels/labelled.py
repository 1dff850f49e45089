"""Metabolic labelling: the joint law of new (labelled) and old molecules after a pulse.

docs/maths.md, "Metabolic labelling: new and old RNA". Time is in units of
1/k_deg inside these kernels: a = k_on/k_deg, b = k_off/k_deg,
lam = k_syn/k_deg, tau = k_deg * t_label; a cell group has capture c and
detection pi (the probability that a new molecule is seen as new; the rest
are counted as old).

Conditioning on the promoter state g at the start of the pulse splits the law
into two one-species laws that are independent given g:

- old molecules: the stationary pre-pulse molecules, each surviving the pulse
  with probability e^-tau and captured with probability c, so given g they are
  Poisson-Beta with (a + g, b + 1 - g, c lam e^-tau) (:func:`pb_eval`);
- captured new molecules: the transient telegraph law from zero molecules and
  promoter state g, with birth rate x = c lam, over a time tau
  (:func:`new_tables`, by uniformization of the (promoter, count) chain: a
  Poisson mixture of powers of a non-negative matrix, so every probability has
  a small relative error however far in the tail).

Misclassified new molecules join the old count: with j of them,

    P(n, m) = sum_g w_g sum_j PB_g(m - j) N_g(n + j) C(n + j, j) pi^n (1 - pi)^j,

w_1 = a/(a+b), w_0 = b/(a+b). The exact first and second derivatives in
(a, b, lam, tau) come from the sensitivities of the uniformization recursion
(no numerical differentiation) and from Louis' identity for the Poisson-Beta
factors.

A gene's histogram (:func:`histogram_eval`) needs one uniformization for all
its pulse lengths (the recursion is shared, only the Poisson weights differ)
at its largest capture; smaller captures thin those tables binomially
(:func:`thin_tables`).

Kernels take float64 arrays, int64 counts and an int ``want`` (0: log P;
1: + gradient; 2: + Hessian), always with these types.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit
from .poisson_beta import pb_eval

__all__ = ["new_tables", "thin_tables", "group_eval", "points_eval", "histogram_eval",
           "tail_count", "LabelledRows", "LabelledTotals", "N_ROW", "PAIRS"]

# per-bin rows of group_eval: log P, gradient (a, b, lam, tau), Hessian of log P
# (upper triangle in the order of PAIRS)
ROW_LOGP = 0
ROW_GRAD = 1
ROW_HESS = 5
N_ROW = 15
#: (i, j) of the 10 Hessian entries over (a, b, lam, tau)
PAIRS = ((0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3))

# the count table of the new molecules runs to the requested count plus the
# count where Poisson(c lam (1 - e^-tau)) (which dominates the new molecules
# in the usual stochastic order) falls below e^_TAIL_LOG; the uniformization
# series is summed until its remaining weight is below e^_SERIES_LOG; the
# probability that a path left the table (an upper bound on the absolute error
# of every table entry) must stay below e^_LOST_LOG, else the table is grown.
_TAIL_LOG = -90.0
_SERIES_LOG = -95.0
_LOST_LOG = -80.0
_MAX_GROW = 6
# beyond this many (steps x table entries) of the recursion a table is refused (NaN
# results): a compiled call cannot be interrupted (x k_deg t_label ~ 1e7 and beyond)
_MAX_WORK = 2.0e10

# second-derivative pairs among the three rate parameters of the chain (a, b, x)
_P2 = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


@njit(cache=True, error_model="numpy")
def tail_count(mu, level):
    """Smallest k >= mu with log Poisson(k; mu) < level (mu >= 0)."""
    k = int(math.floor(mu))
    if mu <= 0.0:
        return 1
    while True:
        lp = k * math.log(mu) - mu - math.lgamma(k + 1.0)
        if lp < level:
            return k
        k += 1 + k // 64


@njit(cache=True, error_model="numpy")
def _step(src, dst, a, b, x, K, L):
    """dst = (I + Q^T / L) src for one (2, K+1) distribution over (promoter, count):
    switching off->on at a, on->off at b, births at x while on (dropped at K),
    deaths at k. Every coefficient is non-negative (L >= every exit rate)."""
    for k in range(K + 1):
        up0 = src[0, k + 1] * (k + 1) / L if k < K else 0.0
        up1 = src[1, k + 1] * (k + 1) / L if k < K else 0.0
        dst[0, k] = src[0, k] * (1.0 - (a + k) / L) + up0 + src[1, k] * (b / L)
        born = src[1, k - 1] * (x / L) if k > 0 else 0.0
        dst[1, k] = src[1, k] * (1.0 - (b + x + k) / L) + up1 + src[0, k] * (a / L) + born


@njit(cache=True, error_model="numpy")
def _dq_add(p, src, dst, K, scale):
    """dst += scale * (dQ/dp)^T src for p = 0 (a), 1 (b), 2 (x)."""
    if p == 0:
        for k in range(K + 1):
            dst[0, k] -= scale * src[0, k]
            dst[1, k] += scale * src[0, k]
    elif p == 1:
        for k in range(K + 1):
            dst[0, k] += scale * src[1, k]
            dst[1, k] -= scale * src[1, k]
    else:
        for k in range(K + 1):
            dst[1, k] -= scale * src[1, k]
            if k > 0:
                dst[1, k] += scale * src[1, k - 1]


@njit(cache=True, error_model="numpy")
def _qt(src, dst, a, b, x, K):
    """dst = Q^T src (the generator of the truncated chain)."""
    for k in range(K + 1):
        up0 = src[0, k + 1] * (k + 1) if k < K else 0.0
        up1 = src[1, k + 1] * (k + 1) if k < K else 0.0
        dst[0, k] = -(a + k) * src[0, k] + up0 + b * src[1, k]
        born = x * src[1, k - 1] if k > 0 else 0.0
        dst[1, k] = -(b + x + k) * src[1, k] + up1 + a * src[0, k] + born


@njit(cache=True, error_model="numpy")
def _uniformize(a, b, x, taus, K, want, N, dN, d2N):
    """Transient law of the (promoter, count) chain from (g, 0), g = 0, 1, at
    each time taus[t], with its sensitivities: one pass of the recursion
    v_{i+1} = P v_i serves every time (only the Poisson weights differ). Fills
    N (T, 2, 2, K+1) [time, start, promoter, count], dN (T, 2, 3, 2, K+1) in
    (a, b, x), d2N (T, 2, 6, 2, K+1) in _P2 order. Returns, per time, the
    probability that a path left the table (max over the two starts)."""
    L = max(a, b + x) + K
    n_t = taus.shape[0]
    v = np.zeros((2, 2, K + 1))
    w = np.zeros((2, 2, K + 1))
    nd = 3 if want >= 1 else 0
    n2 = 6 if want >= 2 else 0
    dv = np.zeros((2, nd, 2, K + 1))
    dw = np.zeros((2, nd, 2, K + 1))
    d2v = np.zeros((2, n2, 2, K + 1))
    d2w = np.zeros((2, n2, 2, K + 1))
    N[:] = 0.0
    dN[:] = 0.0
    d2N[:] = 0.0
    v[0, 0, 0] = 1.0
    v[1, 1, 0] = 1.0
    lost = np.zeros(2)      # probability of having left the table, per start
    lost_acc = np.zeros((n_t, 2))
    lt = np.empty(n_t)
    logw = np.empty(n_t)
    log_lt = np.empty(n_t)
    done = np.zeros(n_t, dtype=np.bool_)
    for t in range(n_t):
        lt[t] = L * taus[t]
        logw[t] = -lt[t]
        log_lt[t] = math.log(lt[t]) if lt[t] > 0.0 else -np.inf
    i = 0
    while True:
        for t in range(n_t):
            if done[t]:
                continue
            wi = math.exp(logw[t])
            for s in range(2):
                for g in range(2):
                    for k in range(K + 1):
                        N[t, s, g, k] += wi * v[s, g, k]
                for p in range(nd):
                    for g in range(2):
                        for k in range(K + 1):
                            dN[t, s, p, g, k] += wi * dv[s, p, g, k]
                for q in range(n2):
                    for g in range(2):
                        for k in range(K + 1):
                            d2N[t, s, q, g, k] += wi * d2v[s, q, g, k]
                lost_acc[t, s] += wi * lost[s]
            # stop once the remaining Poisson weight is negligible
            if lt[t] == 0.0:
                done[t] = True
            elif i > lt[t]:
                r = lt[t] / (i + 1.0)
                if logw[t] - math.log1p(-r) < _SERIES_LOG:
                    done[t] = True
        if done.all():
            break
        for s in range(2):
            lost[s] += v[s, 1, K] * (x / L)
            _step(v[s], w[s], a, b, x, K, L)
            for p in range(nd):
                _step(dv[s, p], dw[s, p], a, b, x, K, L)
                _dq_add(p, v[s], dw[s, p], K, 1.0 / L)
            for q in range(n2):
                p1 = _P2[q][0]
                p2 = _P2[q][1]
                _step(d2v[s, q], d2w[s, q], a, b, x, K, L)
                _dq_add(p1, dv[s, p2], d2w[s, q], K, 1.0 / L)
                _dq_add(p2, dv[s, p1], d2w[s, q], K, 1.0 / L)
        v, w = w, v
        dv, dw = dw, dv
        d2v, d2w = d2w, d2v
        i += 1
        for t in range(n_t):
            logw[t] += log_lt[t] - math.log(i)
    out = np.empty(n_t)
    for t in range(n_t):
        out[t] = max(lost_acc[t, 0], lost_acc[t, 1])
    return out


@njit(cache=True, error_model="numpy")
def new_tables(a, b, x, taus, k_req, want):
    """Law of the captured new molecules after pulses of lengths taus (array),
    given the promoter state g at the start, for counts 0..K (K >= k_req: the
    table reaches into the tail, so that it can be thinned to smaller captures
    by :func:`thin_tables`).

    Returns (tab0, tab1, tab2, lost): tab0[t, g, k] = P(new = k | g) after
    taus[t]; tab1[t, g, p, k] its derivative in p = (a, b, x, tau); tab2[t, g,
    q, k] the second derivatives over the pairs of (a, b, x, tau) in the order
    of PAIRS; lost[t] bounds the absolute error of every entry (the
    probability that a path left the table). Derivative tables have zero
    length on their third axis past ``want``.
    """
    n_t = taus.shape[0]
    tau_max = 0.0
    for t in range(n_t):
        tau_max = max(tau_max, taus[t])
    K = k_req + tail_count(x * (-math.expm1(-tau_max)), _TAIL_LOG) + 8
    if (max(a, b + x) + K) * tau_max * (K + 1.0) > _MAX_WORK:
        lost = np.full(n_t, np.inf)
        return (np.full((n_t, 2, 1), np.nan), np.full((n_t, 2, 4 if want >= 1 else 0, 1), np.nan),
                np.full((n_t, 2, 10 if want >= 2 else 0, 1), np.nan), lost)
    for _ in range(_MAX_GROW):
        N = np.zeros((n_t, 2, 2, K + 1))
        dN = np.zeros((n_t, 2, 3 if want >= 1 else 0, 2, K + 1))
        d2N = np.zeros((n_t, 2, 6 if want >= 2 else 0, 2, K + 1))
        lost = _uniformize(a, b, x, taus, K, want, N, dN, d2N)
        if lost.max() < math.exp(_LOST_LOG):
            break
        K = 2 * K
    m = K + 1
    tab0 = np.zeros((n_t, 2, m))
    tab1 = np.zeros((n_t, 2, 4 if want >= 1 else 0, m))
    tab2 = np.zeros((n_t, 2, 10 if want >= 2 else 0, m))
    tq = np.zeros((2, K + 1))
    tqq = np.zeros((2, K + 1))
    tmp = np.zeros((2, K + 1))
    for t in range(n_t):
        for s in range(2):
            for k in range(m):
                tab0[t, s, k] = N[t, s, 0, k] + N[t, s, 1, k]
            if want < 1:
                continue
            # tau derivatives: d/dtau e^{Q tau} v = Q^T (e^{Q tau} v)
            for p in range(3):
                for k in range(m):
                    tab1[t, s, p, k] = dN[t, s, p, 0, k] + dN[t, s, p, 1, k]
            _qt(N[t, s], tq, a, b, x, K)
            for k in range(m):
                tab1[t, s, 3, k] = tq[0, k] + tq[1, k]
            if want < 2:
                continue
            for q in range(6):
                j = _pair_index(_P2[q][0], _P2[q][1])
                for k in range(m):
                    tab2[t, s, j, k] = d2N[t, s, q, 0, k] + d2N[t, s, q, 1, k]
            for p in range(3):
                # d2/dp dtau = (dQ/dp)^T N + Q^T dN/dp
                _qt(dN[t, s, p], tmp, a, b, x, K)
                _dq_add(p, N[t, s], tmp, K, 1.0)
                j = _pair_index(p, 3)
                for k in range(m):
                    tab2[t, s, j, k] = tmp[0, k] + tmp[1, k]
            _qt(tq, tqq, a, b, x, K)
            for k in range(m):
                tab2[t, s, 9, k] = tqq[0, k] + tqq[1, k]
    return tab0, tab1, tab2, lost


@njit(cache=True, error_model="numpy")
def thin_tables(tab0, tab1, tab2, rho, k_need):
    """Tables of one pulse (tab0[g, k], tab1[g, p, k], tab2[g, q, k]) thinned
    binomially with probability rho (capture relative to the tables' own), for
    counts 0..k_need: sum_K T(K) C(K, k) rho^k (1 - rho)^(K - k), a sum of
    non-negative weights (capture does not depend on the rates, so the
    derivative tables thin the same way)."""
    m = tab0.shape[1]
    n1 = tab1.shape[1]
    n2 = tab2.shape[1]
    o0 = np.zeros((2, k_need + 1))
    o1 = np.zeros((2, n1, k_need + 1))
    o2 = np.zeros((2, n2, k_need + 1))
    lr = math.log(rho)
    l1r = math.log1p(-rho)
    lf = np.empty(m + 1)
    lf[0] = 0.0
    for K in range(1, m + 1):
        lf[K] = lf[K - 1] + math.log(K)
    for K in range(m):
        for k in range(min(K, k_need) + 1):
            wgt = math.exp(lf[K] - lf[k] - lf[K - k] + k * lr + (K - k) * l1r)
            if wgt == 0.0:
                continue
            for g in range(2):
                o0[g, k] += wgt * tab0[g, K]
                for p in range(n1):
                    o1[g, p, k] += wgt * tab1[g, p, K]
                for q in range(n2):
                    o2[g, q, k] += wgt * tab2[g, q, K]
    return o0, o1, o2


@njit(cache=True, error_model="numpy")
def _pair_index(i, j):
    if i > j:
        i, j = j, i
    # rows of PAIRS: i = 0 -> 0..3, i = 1 -> 4..6, i = 2 -> 7..8, i = 3 -> 9
    start = (0, 4, 7, 9)[i]
    return start + (j - i)


@njit(cache=True, error_model="numpy")
def _old_tables(a, b, x_old, m_max, want):
    """Poisson-Beta law of the old molecules given the promoter state g at the
    pulse start, PB(k; a + g, b + 1 - g, x_old), k = 0..m_max: rows of pb_eval
    (log P, d/d(a, b, x), information aa, ab, ax, bb, bx, xx)."""
    out = np.full((2, m_max + 1, 11), np.nan)
    for g in range(2):
        for k in range(m_max + 1):
            if x_old > 1e-250:
                pb_eval(float(k), a + g, b + 1.0 - g, x_old, want >= 2, out[g, k])
            else:
                # no old molecule survives: a point mass at 0
                out[g, k, 0] = 0.0 if k == 0 else -np.inf
                for j in range(1, 11):
                    out[g, k, j] = 0.0
    return out


@njit(cache=True, error_model="numpy")
def _requests(new, old, mis):
    """Largest count of captured new molecules a bin can need (n + m when new
    molecules may be counted as old) and the largest old count."""
    k_req = 0
    m_max = 0
    for i in range(new.shape[0]):
        k_req = max(k_req, new[i] + (old[i] if mis else 0))
        m_max = max(m_max, old[i])
    return k_req, m_max


@njit(cache=True, error_model="numpy")
def group_eval(a, b, lam, tau, c, pi, new, old, want, rows):
    """log P of (new, old) pairs of one cell group and its derivatives.

    a, b, lam, tau: k_on/k_deg, k_off/k_deg, k_syn/k_deg, k_deg t_label;
    c capture, pi detection; ``new``, ``old`` int64 arrays of counts. Writes
    rows[i] (length N_ROW): log P, the gradient in (a, b, lam, tau) and (want
    2) the Hessian of log P in the order of PAIRS. Returns the table's bound
    on the absolute error of the new-molecule law.
    """
    if new.shape[0] == 0:
        return 0.0
    k_req, _ = _requests(new, old, pi < 1.0)
    taus = np.full(1, tau)
    tab0, tab1, tab2, lost = new_tables(a, b, c * lam, taus, k_req, want)
    if not lost[0] < 1.0:
        rows[:, :] = np.nan
        return np.inf
    _eval_bins(a, b, lam, tau, c, c, pi, new, old, want, tab0[0], tab1[0], tab2[0], rows)
    return lost[0]


@njit(cache=True, error_model="numpy")
def _eval_bins(a, b, lam, tau, c, x_scale, pi, new, old, want, tab0, tab1, tab2, rows):
    """Rows of group_eval from the new-molecule tables of this group (tab0[g,
    k], tab1[g, p, k], tab2[g, q, k] over (a, b, x, tau), x = x_scale * lam:
    the tables may be those of a larger capture thinned to c)."""
    m = new.shape[0]
    x_old = c * lam * math.exp(-tau)
    mis = pi < 1.0
    _, m_max = _requests(new, old, mis)
    otab = _old_tables(a, b, x_old, m_max, want)
    ab = a + b
    # log of the promoter-state weights and their derivatives in (a, b)
    lw = (math.log(b / ab), math.log(a / ab))
    sw = np.zeros((2, 4))
    hw = np.zeros((2, 4, 4))
    sw[1, 0] = 1.0 / a - 1.0 / ab
    sw[1, 1] = -1.0 / ab
    sw[0, 0] = -1.0 / ab
    sw[0, 1] = 1.0 / b - 1.0 / ab
    for g in range(2):
        hw[g, 0, 1] = hw[g, 1, 0] = 1.0 / (ab * ab)
        hw[g, 0, 0] = 1.0 / (ab * ab)
        hw[g, 1, 1] = 1.0 / (ab * ab)
    hw[1, 0, 0] -= 1.0 / (a * a)
    hw[0, 1, 1] -= 1.0 / (b * b)
    # d x_old / d(lam, tau) and second derivatives
    xl = c * math.exp(-tau)
    log_pi = math.log(pi)
    log_mis = math.log1p(-pi) if mis else -np.inf
    jmax_all = m_max if mis else 0
    lt = np.empty((2, jmax_all + 1))
    s = np.zeros(4)
    sN = np.zeros(4)
    sO = np.zeros(4)
    H = np.zeros((4, 4))
    S1 = np.zeros(4)
    S2 = np.zeros((4, 4))
    for i in range(m):
        n = new[i]
        mo = old[i]
        jmax = mo if mis else 0
        ref = -np.inf
        for g in range(2):
            for j in range(jmax + 1):
                nk = tab0[g, n + j]
                lo = otab[g, mo - j, 0]
                if nk > 0.0 and lo > -np.inf:
                    v = (lw[g] + lo + math.log(nk) + n * log_pi)
                    if j > 0:
                        v += (j * log_mis + math.lgamma(n + j + 1.0) - math.lgamma(n + 1.0)
                              - math.lgamma(j + 1.0))
                else:
                    v = -np.inf
                lt[g, j] = v
                ref = max(ref, v)
        if not ref > -np.inf:
            rows[i, ROW_LOGP] = -np.inf
            for j in range(1, N_ROW):
                rows[i, j] = np.nan
            continue
        S0 = 0.0
        S1[:] = 0.0
        S2[:] = 0.0
        for g in range(2):
            for j in range(jmax + 1):
                if not lt[g, j] > -np.inf:
                    continue
                e = math.exp(lt[g, j] - ref)
                S0 += e
                if want == 0:
                    continue
                k = n + j
                o = otab[g, mo - j]
                nk = tab0[g, k]
                sN[0] = tab1[g, 0, k] / nk
                sN[1] = tab1[g, 1, k] / nk
                sN[2] = x_scale * tab1[g, 2, k] / nk
                sN[3] = tab1[g, 3, k] / nk
                sO[0] = o[1]
                sO[1] = o[2]
                sO[2] = xl * o[3]
                sO[3] = -x_old * o[3]
                for p in range(4):
                    s[p] = sw[g, p] + sO[p] + sN[p]
                    S1[p] += e * s[p]
                if want < 2:
                    continue
                # Hessian of log T: weights + old (J^T H' J + g_x' d2x') + new
                for p in range(4):
                    for q in range(4):
                        H[p, q] = hw[g, p, q]
                # old: -info in (a', b', x') mapped by x' = c lam e^-tau
                Ho_ab = (-o[4], -o[5], -o[7])   # aa, ab, bb
                Hax = -o[6]
                Hbx = -o[8]
                Hxx = -o[9]
                H[0, 0] += Ho_ab[0]
                H[0, 1] += Ho_ab[1]
                H[1, 0] += Ho_ab[1]
                H[1, 1] += Ho_ab[2]
                dxl = (xl, -x_old)      # dx'/dlam, dx'/dtau
                for p in range(2):
                    for r in range(2):
                        hx = Hax if p == 0 else Hbx
                        H[p, 2 + r] += hx * dxl[r]
                        H[2 + r, p] += hx * dxl[r]
                for r1 in range(2):
                    for r2 in range(2):
                        H[2 + r1, 2 + r2] += Hxx * dxl[r1] * dxl[r2]
                # second derivatives of x': d2/dlam dtau = -xl, d2/dtau2 = x_old
                H[2, 3] += o[3] * (-xl)
                H[3, 2] += o[3] * (-xl)
                H[3, 3] += o[3] * x_old
                # new: d2N/N - sN sN^T, lam = x / c
                for jj in range(10):
                    p = PAIRS[jj][0]
                    q = PAIRS[jj][1]
                    f = tab2[g, jj, k] / nk
                    if p == 2:
                        f *= x_scale
                    if q == 2:
                        f *= x_scale
                    hn = f - sN[p] * sN[q]
                    H[p, q] += hn
                    if p != q:
                        H[q, p] += hn
                for p in range(4):
                    for q in range(4):
                        S2[p, q] += e * (H[p, q] + s[p] * s[q])
        rows[i, ROW_LOGP] = ref + math.log(S0)
        if want >= 1:
            for p in range(4):
                rows[i, ROW_GRAD + p] = S1[p] / S0
        if want >= 2:
            for jj in range(10):
                p = PAIRS[jj][0]
                q = PAIRS[jj][1]
                rows[i, ROW_HESS + jj] = (S2[p, q] / S0
                                          - rows[i, ROW_GRAD + p] * rows[i, ROW_GRAD + q])


@njit(cache=True, error_model="numpy")
def points_eval(ptr, a, b, lam, tau, c, pi, new, old, want):
    """group_eval over parameter sets: points ptr[u]:ptr[u+1] (of ``new``, ``old``)
    share the parameters a[u], b[u], lam[u], tau[u], c[u], pi[u]. Returns the
    rows (len(new), N_ROW) and the per-set error bound."""
    n_sets = ptr.shape[0] - 1
    rows = np.full((new.shape[0], N_ROW), np.nan)
    lost = np.zeros(n_sets)
    for u in range(n_sets):
        i0 = ptr[u]
        i1 = ptr[u + 1]
        lost[u] = group_eval(a[u], b[u], lam[u], tau[u], c[u], pi[u], new[i0:i1],
                             old[i0:i1], want, rows[i0:i1])
    return rows, lost


@njit(cache=True, error_model="numpy")
def histogram_eval(k_on, k_off, k_syn, k_deg, t_label, capture, detection, groups, new, old,
                   weights, want, out):
    """Total log-likelihood of one gene's histogram of (new, old) pairs, its
    gradient and observed information in the absolute rates.

    ``t_label``, ``capture``, ``detection``: per cell group (hours, efficiency,
    probability); bin i has group ``groups[i]``, counts ``new[i]``, ``old[i]``
    and weight (number of cells) ``weights[i]``. Writes ``out`` (length 15):
    loglik; d/d(k_on, k_off, k_syn, k_deg); observed information (negative
    Hessian) in the order of PAIRS over those rates. Returns the largest error
    bound of the groups' new-molecule tables.
    """
    for j in range(15):
        out[j] = 0.0
    a = k_on / k_deg
    b = k_off / k_deg
    lam = k_syn / k_deg
    rates = (k_on, k_off, k_syn)
    n_groups = t_label.shape[0]
    m = new.shape[0]
    # bins by group (counting sort)
    cnt = np.zeros(n_groups + 1, dtype=np.int64)
    for i in range(m):
        cnt[groups[i] + 1] += 1
    for g in range(n_groups):
        cnt[g + 1] += cnt[g]
    order = np.empty(m, dtype=np.int64)
    fill = cnt[:-1].copy()
    for i in range(m):
        order[fill[groups[i]]] = i
        fill[groups[i]] += 1
    # one uniformization for every pulse length, at the largest capture; each
    # group thins the tables to its own capture (docs/maths.md, "Metabolic
    # labelling: new and old RNA", "A gene's histogram")
    taus = np.unique(k_deg * t_label)
    c_max = 0.0
    k_all = 0
    for grp in range(n_groups):
        i0 = cnt[grp]
        i1 = cnt[grp + 1]
        if i1 > i0:
            c_max = max(c_max, capture[grp])
            kr, _ = _requests(new[order[i0:i1]], old[order[i0:i1]], detection[grp] < 1.0)
            k_all = max(k_all, kr)
    if c_max == 0.0:
        return 0.0
    tab0, tab1, tab2, lost = new_tables(a, b, c_max * lam, taus, k_all, want)
    worst = lost.max()
    if not worst < 1.0:
        for j in range(15):
            out[j] = np.nan
        return np.inf
    g_th = np.zeros(4)
    h_th = np.zeros((4, 4))
    J = np.zeros((4, 4))
    for grp in range(n_groups):
        i0 = cnt[grp]
        i1 = cnt[grp + 1]
        if i1 == i0:
            continue
        idx = order[i0:i1]
        nn = new[idx]
        oo = old[idx]
        rows = np.full((i1 - i0, N_ROW), np.nan)
        tau = k_deg * t_label[grp]
        ti = np.searchsorted(taus, tau)
        c = capture[grp]
        if c < c_max:
            kr, _ = _requests(nn, oo, detection[grp] < 1.0)
            t0, t1, t2 = thin_tables(tab0[ti], tab1[ti], tab2[ti], c / c_max, kr)
            _eval_bins(a, b, lam, tau, c, c_max, detection[grp], nn, oo, want, t0, t1, t2, rows)
        else:
            _eval_bins(a, b, lam, tau, c, c_max, detection[grp], nn, oo, want, tab0[ti],
                       tab1[ti], tab2[ti], rows)
        g_th[:] = 0.0
        h_th[:] = 0.0
        for r in range(i1 - i0):
            wgt = weights[idx[r]]
            if wgt == 0.0:
                continue
            out[0] += wgt * rows[r, ROW_LOGP]
            if want >= 1:
                for p in range(4):
                    g_th[p] += wgt * rows[r, ROW_GRAD + p]
            if want >= 2:
                for jj in range(10):
                    h_th[PAIRS[jj][0], PAIRS[jj][1]] += wgt * rows[r, ROW_HESS + jj]
        if want == 0:
            continue
        # (a, b, lam, tau) = (k_on, k_off, k_syn) / k_deg, k_deg t_label
        J[:] = 0.0
        for p in range(3):
            J[p, p] = 1.0 / k_deg
            J[p, 3] = -rates[p] / (k_deg * k_deg)
        J[3, 3] = t_label[grp]
        for q in range(4):
            acc = 0.0
            for p in range(4):
                acc += g_th[p] * J[p, q]
            out[1 + q] += acc
        if want >= 2:
            for jj in range(10):
                q1 = PAIRS[jj][0]
                q2 = PAIRS[jj][1]
                acc = 0.0
                for p1 in range(4):
                    for p2 in range(4):
                        hv = h_th[p1, p2] if p1 <= p2 else h_th[p2, p1]
                        acc += J[p1, q1] * hv * J[p2, q2]
                # curvature of the map: d2 theta_p / d k_p d k_deg = -1/k_deg^2,
                # d2 theta_p / d k_deg^2 = 2 k_p / k_deg^3 (p < 3)
                if q2 == 3:
                    if q1 < 3:
                        acc += g_th[q1] * (-1.0 / (k_deg * k_deg))
                    else:
                        for p in range(3):
                            acc += g_th[p] * 2.0 * rates[p] / (k_deg ** 3)
                out[5 + jj] -= acc
    return worst


# ---------------------------------------------------------------------------
# named views of the results (read outside the kernels by name only)
# ---------------------------------------------------------------------------

def _read_only(a):
    a = a.view()
    a.flags.writeable = False
    return a


class LabelledRows:
    """Per-point results of :func:`group_eval` / :func:`points_eval`, read by name.

    A row is ``N_ROW`` numbers: log P, the gradient in (a, b, lam, tau), the
    Hessian of log P's upper triangle in the order of ``PAIRS``.
    """

    PARAMETERS = ("a", "b", "lam", "tau")
    __slots__ = ("_raw",)

    def __init__(self, raw):
        raw = np.asarray(raw, dtype=float)
        if raw.ndim != 2 or raw.shape[1] != N_ROW:
            raise ValueError(f"labelled result rows must have shape (m, {N_ROW}); got "
                             f"{raw.shape}")
        self._raw = raw

    def __len__(self):
        return self._raw.shape[0]

    @property
    def logp(self):
        """log P of each point, shape (m,)."""
        return _read_only(self._raw[:, ROW_LOGP])

    @property
    def grad(self):
        """d log P / d(a, b, lam, tau), shape (m, 4)."""
        return _read_only(self._raw[:, ROW_GRAD:ROW_GRAD + 4])

    @property
    def hessian(self):
        """d2 log P over (a, b, lam, tau), shape (m, 4, 4), symmetric (a copy)."""
        m = self._raw.shape[0]
        out = np.empty((m, 4, 4))
        for q, (k, l) in enumerate(PAIRS):
            out[:, k, l] = self._raw[:, ROW_HESS + q]
            out[:, l, k] = self._raw[:, ROW_HESS + q]
        return out


class LabelledTotals:
    """The result vector of :func:`histogram_eval`, read by name: ``loglik``,
    ``gradient`` (4,) and ``information`` (4, 4, symmetric) in the rates
    (k_on, k_off, k_syn, k_deg)."""

    RATES = ("k_on", "k_off", "k_syn", "k_deg")
    SIZE = 15
    __slots__ = ("_raw",)

    def __init__(self, raw):
        raw = np.asarray(raw, dtype=float)
        if raw.shape != (self.SIZE,):
            raise ValueError(f"labelled totals must have shape ({self.SIZE},); got {raw.shape}")
        self._raw = raw

    @property
    def loglik(self):
        return float(self._raw[0])

    @property
    def gradient(self):
        return _read_only(self._raw[1:5])

    @property
    def information(self):
        out = np.empty((4, 4))
        for q, (k, l) in enumerate(PAIRS):
            out[k, l] = out[l, k] = self._raw[5 + q]
        return out
