"""Poisson-Beta (stationary telegraph) log-pmf, exact scores and Louis information.

Notation (docs/maths.md, "The stationary law"): a = k_on/k_deg, b = k_off/k_deg, x = capture *
k_syn/k_deg. Given n, the latent promoter activity p has posterior density
proportional to p^(a+n-1) (1-p)^(b-1) exp(-x p). Expanding
exp(-x p) = exp(-x) exp(x (1-p)) as a power series turns this posterior into a
mixture over k = 0, 1, 2, ... of Beta(a+n, b+k) laws with weights

    w_k  proportional to  x^k / k! * B(a+n, b+k),

and the marginal into P(n) = x^n/n! e^-x sum_k x^k/k! B(a+n, b+k)/B(a, b), a
series of positive terms (the Kummer-transformed 1F1). Every quantity the
fitter needs is then a mixture average of closed-form Beta moments:

- log P(n) from the log of the sum,
- the exact scores (Fisher's identity) from posterior means of log p,
  log(1-p) and p,
- the observed information (Louis' identity) from posterior covariances of
  (log p, log(1-p), p), which are mixtures of digamma/trigamma expressions.

The terms are unimodal in k, or have one extra peak at k = 0 when b < 1
(probability mass of p near 1). The term ratio r(k) = x (b+k)/((k+1)(a+b+n+k))
is a quadratic condition in k, so both peaks are located exactly and the
summation runs outward from them until the remaining terms are below 1e-18 of
the sum: the cost is O(sqrt(x)) terms per n instead of O(x), and every
quantity is accumulated relative to the peak, so nothing overflows for n or x
up to 1e4 and beyond.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit
from .sorting import stable_argsort
from .special import (digamma, digamma_shift, fold_log, lgamma_diff, log1pmx,
                      log_poisson_term, stirling_rest, trigamma, trigamma_shift)

__all__ = ["pb_eval", "pb_eval_rows", "histogram_eval", "telegraph_bins", "histogram_eval_bins",
           "exact_histogram_eval", "pb_pmf_run"]

_EPS = 1e-18
_MAX_TERMS = 50_000_000
# Beyond the fits' search box (b <= 1e3, x <= 1e6) the log of a term is formed
# without cancellation (_log_term_full): the plain sum of lgammas of ~b or ~x
# loses about (b or x) * log * 1e-16, 1e-5 nats at 1e10 (docs/maths.md, "The
# stationary law", "Large arguments"). Inside the box the plain form is kept.
_B_STABLE = 1.0e4
_X_STABLE = 1.0e6


@njit(cache=True, error_model="numpy")
def _log_term(k, n, a, b, x, lgab):
    # log[x^k/k! * B(a+n, b+k)/B(a, b)]  (lgab = log B(a, b))
    return (k * math.log(x) - math.lgamma(k + 1.0) + math.lgamma(a + n)
            + math.lgamma(b + k) - math.lgamma(a + b + n + k) - lgab)


@njit(cache=True, error_model="numpy")
def _log_term_full(k, n, a, b, x):
    """log of the k-th term of P(n) with its prefactor, log[x^n e^-x / n! * x^k/k!
    * B(a+n, b+k)/B(a, b)], arranged so that no two large quantities cancel:
    (k log x - lgamma(k+1) - x) + (lgamma(a+n) - lgamma(n+1)) - lgamma(a)
    + n log x - (lgamma(c+k) - lgamma(b+k)) + (lgamma(a+b) - lgamma(b)),
    c = a + b + n, the Poisson part by Loader's bd0 and the differences by
    Stirling's series (kernels/special.py)."""
    z = b + k
    h = a + n
    if z < 15.0:
        mid = n * math.log(x) - lgamma_diff(z, h)
    else:
        # n log x - lgamma_diff(z, h), its h log(z + h) taken against n log x
        y = h / z
        mid = (n * math.log(x / (z + h)) - a * math.log(z + h) - z * log1pmx(y)
               + 0.5 * math.log1p(y) - stirling_rest(z + h) + stirling_rest(z))
    return (log_poisson_term(k, x) + lgamma_diff(n + 1.0, a - 1.0) - math.lgamma(a) + mid
            + lgamma_diff(b, a))


@njit(cache=True, error_model="numpy")
def _ratio(k, b, c, x):
    # term_{k+1} / term_k
    return x * (b + k) / ((k + 1.0) * (c + k))


@njit(cache=True, error_model="numpy")
def _peak(b, c, x):
    """Integer k of the interior maximum of the terms (0 if they decrease), and
    the lower root k_lo of r(k) = 1 (terms decrease on [0, k_lo])."""
    # r(k) > 1  <=>  k^2 + (1 + c - x) k + (c - x b) < 0
    p = 1.0 + c - x
    q = c - x * b
    disc = p * p - 4.0 * q
    if disc < 0.0:
        return 0, -1.0
    sq = math.sqrt(disc)
    # numerically stable roots
    if p >= 0.0:
        t = -0.5 * (p + sq)
    else:
        t = -0.5 * (p - sq)
    r1 = t
    r2 = q / t if t != 0.0 else 0.0
    k_lo = min(r1, r2)
    k_hi = max(r1, r2)
    if k_hi <= 0.0:
        return 0, k_lo
    km = int(k_hi)
    # settle on the exact integer maximum (the roots are only used as a guide)
    while km > 0 and _ratio(km - 1.0, b, c, x) < 1.0:
        km -= 1
    while _ratio(float(km), b, c, x) > 1.0:
        km += 1
    return km, k_lo


@njit(cache=True, error_model="numpy")
def _no_value(want_info, out):
    """NaN results of pb_eval (out[0:4], and out[4:11] with want_info)."""
    top = 11 if want_info else 4
    for j in range(top):
        out[j] = np.nan
    return np.nan


@njit(cache=True, error_model="numpy", borrow=True,
      unit="float64(float64, float64, float64, float64, boolean, float64[::1])")
def pb_eval(n, a, b, x, want_info, out):
    """Evaluate one count n.

    Writes into ``out`` (length 11):
    0 log P(n); 1, 2, 3 d log P/d(a, b, x);
    if want_info, 4..9 the observed information (negative Hessian of log P)
    entries (aa, ab, ax, bb, bx, xx), by Louis' identity, and 10 the posterior
    variance Var[p | n]; else 4..10 are left untouched.
    Also returns E[p | n] (posterior probability that the promoter is on).
    """
    c = a + b + n
    alpha = a + n
    lgab = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    if not x < 1e18:
        return _no_value(want_info, out)
    km, k_lo = _peak(b, c, x)
    if 18.0 * math.sqrt(km + 1.0) > _MAX_TERMS:
        # the terms that matter span ~ +-9 sqrt(km) around the peak: more than
        # the series may take (x beyond ~7e12): no value rather than a wrong one
        return _no_value(want_info, out)
    stable = b > _B_STABLE or x > _X_STABLE
    if stable:
        L_m = _log_term_full(float(km), n, a, b, x)
    else:
        L_m = _log_term(float(km), n, a, b, x, lgab)
    logM = L_m
    boundary = km > 0 and k_lo > 0.0
    L_0 = 0.0
    if boundary:
        if stable:
            L_0 = _log_term_full(0.0, n, a, b, x)
        else:
            L_0 = _log_term(0.0, n, a, b, x, lgab)
        if L_0 > logM:
            logM = L_0
    # reference values at the peak, to centre the mixture covariances
    dc_m = digamma_shift(a + b, n + km)       # psi(c+km) - psi(a+b)
    db_m = digamma_shift(b, float(km))        # psi(b+km) - psi(b)
    u3_m = alpha / (c + km)

    # accumulators: S = sum t; first moments of u = (-dc, db-dc, alpha/sigma)
    # relative to the peak; second moments; mixture averages of within terms
    S = 0.0
    s_dc = 0.0
    s_db = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s11 = 0.0
    s12 = 0.0
    s13 = 0.0
    s22 = 0.0
    s23 = 0.0
    s33 = 0.0
    s_tc = 0.0    # psi'(c+k) - psi'(a+b)  (<= 0)
    s_tb = 0.0    # psi'(b) - psi'(b+k)    (>= 0)
    s_v13 = 0.0   # beta/sigma^2
    s_v23 = 0.0   # alpha/sigma^2
    s_v33 = 0.0   # alpha beta/(sigma^2 (sigma+1))

    n_terms = 0
    # three segments: upward from the peak, downward from the peak, and the
    # boundary peak at k = 0 upward (only when it is separate).
    k_stop_down = km
    for seg in range(3):
        if seg == 0:
            k = float(km)
            t = math.exp(L_m - logM)
            step = 1.0
        elif seg == 1:
            if km == 0:
                continue
            k = km - 1.0
            t = math.exp(L_m - logM) / _ratio(k, b, c, x)
            step = -1.0
        else:
            if not boundary or k_stop_down <= 0:
                continue
            k = 0.0
            t = math.exp(L_0 - logM)
            step = 1.0
        dc = digamma_shift(a + b, n + k)
        db = digamma_shift(b, k)
        if want_info:
            tc = -trigamma_shift(a + b, n + k)
            tb = trigamma_shift(b, k)
        else:
            tc = 0.0
            tb = 0.0
        moved_down = False
        while True:
            sigma = c + k
            beta = b + k
            inv_s = 1.0 / sigma
            inv_b = 1.0 / beta
            if moved_down:
                # psi(c+k) = psi(c+k+1) - 1/(c+k), and likewise for b
                dc -= inv_s
                db -= inv_b
                if want_info:
                    tc += inv_s * inv_s
                    tb -= inv_b * inv_b
            S += t
            s_dc += t * dc
            s_db += t * db
            if want_info:
                u1 = -(dc - dc_m)
                u2 = (db - dc) - (db_m - dc_m)
                u3 = alpha * inv_s - u3_m
                tu1 = t * u1
                tu2 = t * u2
                s1 += tu1
                s2 += tu2
                s3 += t * u3
                s11 += tu1 * u1
                s12 += tu1 * u2
                s13 += tu1 * u3
                s22 += tu2 * u2
                s23 += tu2 * u3
                s33 += t * u3 * u3
                s_tc += t * tc
                s_tb += t * tb
                tinv2 = t * inv_s * inv_s
                s_v13 += tinv2 * beta
                s_v23 += tinv2 * alpha
                s_v33 += tinv2 * alpha * beta / (sigma + 1.0)
            else:
                s3 += t * inv_s
            n_terms += 1
            if n_terms > _MAX_TERMS:
                break
            if step > 0.0:
                if seg == 2 and k + 1.0 >= k_stop_down:
                    break
                r = x * beta * inv_s / (k + 1.0)
                # remaining tail <= t r/(1-r) once r < 1 (r decreases beyond the peak)
                if seg == 0 and r < 1.0 and t * r < _EPS * S * (1.0 - r):
                    break
                if seg == 2 and r < 1.0 and t < _EPS * S:
                    break
                t *= r
                if want_info:
                    tc -= inv_s * inv_s
                    tb += inv_b * inv_b
                dc += inv_s
                db += inv_b
                k += 1.0
            else:
                if k <= 0.0:
                    k_stop_down = 0
                    break
                if t < _EPS * S:
                    k_stop_down = int(k)
                    break
                # term_{k-1} = term_k / r(k-1), r(k-1) = x (b+k-1) / (k (c+k-1))
                t *= k * (sigma - 1.0) / (x * (beta - 1.0))
                k -= 1.0
                moved_down = True

    if n_terms > _MAX_TERMS:
        return _no_value(want_info, out)
    inv_S = 1.0 / S
    E_dc = s_dc * inv_S
    E_db = s_db * inv_S
    if stable:
        out[0] = logM + math.log(S)      # logM holds the prefactor already
    else:
        out[0] = (n * math.log(x) - math.lgamma(n + 1.0) - x + logM + math.log(S))
    out[1] = digamma_shift(a, n) - E_dc
    out[2] = E_db - E_dc
    if want_info:
        m1 = s1 * inv_S
        m2 = s2 * inv_S
        m3 = s3 * inv_S
        c11 = s11 * inv_S - m1 * m1
        c12 = s12 * inv_S - m1 * m2
        c13 = s13 * inv_S - m1 * m3
        c22 = s22 * inv_S - m2 * m2
        c23 = s23 * inv_S - m2 * m3
        c33 = s33 * inv_S - m3 * m3
        E_p = u3_m + m3
        E_tc = s_tc * inv_S
        E_tb = s_tb * inv_S
        out[3] = n / x - E_p
        # Louis: I = -H_c - Cov[grad l_c | n]; see the module docstring
        out[4] = trigamma_shift(a, n) + E_tc - c11
        out[5] = E_tc - c12
        out[6] = s_v13 * inv_S + c13
        out[7] = E_tb + E_tc - c22
        out[8] = -s_v23 * inv_S + c23
        out[9] = n / (x * x) - (s_v33 * inv_S + c33)
        out[10] = s_v33 * inv_S + c33
    else:
        E_p = alpha * s3 * inv_S
        out[3] = n / x - E_p
    return E_p


@njit(cache=True, error_model="numpy", nogil=True)
def pb_eval_rows(lo, hi, n, a, b, x, want_info, out, ep):
    """pb_eval over entries lo..hi-1 of flat arrays of equal length (valid
    entries only): rows of ``out`` (m, 11) as in pb_eval, the posterior means
    E[p | n] to ``ep`` (m,). A serial ``nogil`` loop: the caller runs long arrays
    in pieces side by side on threads (a parallel loop costs ~80 us to start,
    more than the whole work of the short arrays most calls pass)."""
    for i in range(lo, hi):
        ep[i] = pb_eval(n[i], a[i], b[i], x[i], want_info, out[i])


# ---------------------------------------------------------------------------
# Histograms: bins that share a count n but come from different capture groups
# differ only in x, and x enters the mixture over k only through the weights
# t_k (t_{k+1}/t_k = x rho_k, rho_k = (b+k)/((k+1)(c+k))). Every per-k quantity
# (digamma/trigamma differences, Beta moments) is therefore tabulated once per
# n, and each bin only runs the cheap weight recursion t_k. Linear mixture
# averages enter the gene total as sum_k f_k W_k with W_k = sum_g w_g t_k^g/S_g;
# the posterior covariances need the per-bin means of u = (-dc, db - dc,
# alpha/sigma), accumulated per bin. For x <= _X_GROUPED the weights start at
# t_0 = 1 (the k = 0 term, whose log is log B(a+n, b) - log B(a, b)), which
# cannot overflow (t_k/t_0 <= x^k/k! <= e^x) and needs no lgamma per bin. For
# larger x they start at 1 at the bin's own peak k_m and run outward as in
# pb_eval (O(sqrt x) terms), at the price of log(t_km/t_0) by three lgamma.
# The tables run from k = 0 (digamma/trigamma recurrences, one pass per count),
# so a count costs O(x_max) once plus O(sqrt x) cheap terms per bin, against
# O(sqrt x) full terms per bin in pb_eval: a gain from two bins on, except for
# very large x (> _X_WINDOW), which stays with pb_eval. The covariances are
# formed about a common reference (the term peak at the mean x of the count),
# so E[u u'] - m m' cancels only by the spread of the bins' peaks.

_TAYLOR_RTOL = 0.4        # coarse capture groups of the expansion in log capture
_TAYLOR_RTOL_WIDE = 0.65  # ... of a gene whose counts are all at most _ORDER4_MAX_N; between
_TAYLOR_WIDE_CELLS = (300.0, 1e4)  # these numbers N of cells wider, w = log(1 + rtol) holding
_TAYLOR_RTOL_MAX = 1.2    # N w^5 at its value at the upper one, up to 1 + this
_ORDER = 4                # ... and its order (the law at n .. n + _ORDER per bin)
_RING = _ORDER + 1        # slots of the law at consecutive counts (count mod _RING)
_ORDER3_MAX_N = 1000      # above this count the third-order term is left out (its rounding)
_ORDER4_MAX_N = 300       # ... and above this the fourth-order term
_TAYLOR_MIN_GROUPS = 12   # fewer capture groups: each evaluated as it is
_TAYLOR_MIN_FACTOR = 2.0  # the merge must divide the bins or the groups by at least this

_X_GROUPED = 64.0
_X_WINDOW = 1.0e4     # beyond this, pb_eval per bin
_K_CAP = 16384        # longest shared table; a bin needing more uses pb_eval
_MIN_GROUPED = 2      # fewer bins of one count than this: pb_eval per bin

# rows of the per-call scratch table
_RHO = 0
_INV_S = 1
_U1 = 2
_U2 = 3
_U3 = 4
_TC = 5
_TB = 6
_W = 7
_WS = 8
_WSS = 9
_T = 10


@njit(cache=True, error_model="numpy", borrow=True)
def _add_bin(n, w, s, a, b, lam, want_info, buf, out):
    pb_eval(n, a, b, s * lam, want_info, buf)
    out[0] += w * buf[0]
    out[1] += w * buf[1]
    out[2] += w * buf[2]
    out[3] += w * s * buf[3]
    if want_info:
        out[4] += w * buf[4]
        out[5] += w * buf[5]
        out[6] += w * s * buf[6]
        out[7] += w * buf[7]
        out[8] += w * s * buf[8]
        out[9] += w * s * s * buf[9]


@njit(cache=True, error_model="numpy", inline="always")
def _slot(k0, j):
    """Slot (k0 + j) mod _RING of the law's ring, 0 <= k0 < _RING, 0 <= j <=
    _ORDER, without an integer division."""
    return k0 + j if k0 < _RING - j else k0 + j - _RING


@njit(cache=True, error_model="numpy", borrow=True)
def _spread_terms(n, k0, m1, m2, m3, m4, s1, s2, s3, s4, G, I, want_info, res):
    """The expansion in log capture of one bin to fourth order (docs/maths.md,
    "Fitting", *The expansion in log capture*): res (10) = s1 T1 + s2/2 T2 +
    s3/6 T3 + s4/24 T4, T_j = d^j/du^j log P(n; x e^u) = n [j = 1] + sum_i
    S(j, i) (-1)^i kappa_i (S: Stirling numbers of the second kind; kappa_i:
    the cumulants of the posterior rate Lambda given n, from its raw moments
    m_j = E[Lambda^j | n] = (n+1)...(n+j) P(n+j)/P(n), given), its gradient
    in (a, b, x) and its information (negative Hessian). ``G[k]``, ``I[k]``
    with k = (k0 + j) mod _RING: the gradient and information of log P(n+j)
    (j = 0 .. _ORDER) at the bin's x, or of log y(n+j) for any y = C P whose
    C does not depend on the count (the recurrence's normalisation): C cancels
    in the differences. Only the upper triangle of each I[k] is read.

    The j-th cumulant from the raw moments loses about (n+j)^j times the
    relative rounding of the ratios (~1e-11 where they come from the series):
    above a count of _ORDER3_MAX_N the third-order term is left out, above
    _ORDER4_MAX_N the fourth (a choice by the bin's count alone, so the
    objective stays smooth; the coarse groups of a gene with larger counts
    are the narrower ones, :func:`_merge_capture`)."""
    if n > _ORDER3_MAX_N:
        s3 = 0.0
    if n > _ORDER4_MAX_N:
        s4 = 0.0
    k1 = _slot(k0, 1)
    k2 = _slot(k0, 2)
    k3 = _slot(k0, 3)
    k4 = _slot(k0, 4)
    h2 = 0.5 * s2
    h3 = s3 / 6.0
    h4 = s4 / 24.0
    m11 = m1 * m1
    T3 = -m1 + 3.0 * m2 - 3.0 * m11 - m3 + 3.0 * m1 * m2 - 2.0 * m11 * m1
    # T4 = -kappa1 + 7 kappa2 - 6 kappa3 + kappa4
    T4 = (-m1 + 7.0 * (m2 - m11) - 6.0 * (m3 - 3.0 * m1 * m2 + 2.0 * m11 * m1)
          + (m4 - 4.0 * m1 * m3 - 3.0 * m2 * m2 + 12.0 * m11 * m2 - 6.0 * m11 * m11))
    res[0] = s1 * (n - m1) + h2 * (m2 - m11 - m1) + h3 * T3 + h4 * T4
    # the value as F(m1, m2, m3, m4): its partial derivatives (the second ones
    # not listed are 0); the gradient of m_j is m_j r_j, r_j = G_j - G_0 (the
    # gradient of log m_j)
    F1 = (-s1 - h2 * (2.0 * m1 + 1.0) + h3 * (-1.0 - 6.0 * m1 + 3.0 * m2 - 6.0 * m11)
          + h4 * (-1.0 - 14.0 * m1 + 18.0 * m2 - 36.0 * m11 - 4.0 * m3 + 24.0 * m1 * m2
                  - 24.0 * m11 * m1))
    F2 = h2 + h3 * (3.0 + 3.0 * m1) + h4 * (7.0 + 18.0 * m1 - 6.0 * m2 + 12.0 * m11)
    F3 = -h3 + h4 * (-6.0 - 4.0 * m1)
    F4 = h4
    F11 = -s2 - h3 * (6.0 + 12.0 * m1) + h4 * (-14.0 - 72.0 * m1 + 24.0 * m2 - 72.0 * m11)
    F12 = 0.5 * s3 + h4 * (18.0 + 24.0 * m1)
    F13 = -4.0 * h4
    F22 = -6.0 * h4
    w1 = F1 * m1
    w2 = F2 * m2
    w3 = F3 * m3
    w4 = F4 * m4
    # r_j = G_j - G_0 by coordinate (a, b, x)
    r1a = G[k1, 0] - G[k0, 0]
    r1b = G[k1, 1] - G[k0, 1]
    r1x = G[k1, 2] - G[k0, 2]
    r2a = G[k2, 0] - G[k0, 0]
    r2b = G[k2, 1] - G[k0, 1]
    r2x = G[k2, 2] - G[k0, 2]
    r3a = G[k3, 0] - G[k0, 0]
    r3b = G[k3, 1] - G[k0, 1]
    r3x = G[k3, 2] - G[k0, 2]
    r4a = G[k4, 0] - G[k0, 0]
    r4b = G[k4, 1] - G[k0, 1]
    r4x = G[k4, 2] - G[k0, 2]
    res[1] = w1 * r1a + w2 * r2a + w3 * r3a + w4 * r4a
    res[2] = w1 * r1b + w2 * r2b + w3 * r3b + w4 * r4b
    res[3] = w1 * r1x + w2 * r2x + w3 * r3x + w4 * r4x
    if want_info:
        # the Hessian of the value: the second derivatives of m_j are m_j (r_j
        # r_j' - (I_j - I_0)), so it is R' M R - sum_j w_j (I_j - I_0), R the
        # rows r_1 .. r_4 and M symmetric: M_jj = w_j (+ F11 m1^2, + F22 m2^2),
        # M_12 = F12 m1 m2, M_13 = F13 m1 m3; the rows of M R first
        M11 = w1 + F11 * m11
        M22 = w2 + F22 * m2 * m2
        M12 = F12 * m1 * m2
        M13 = F13 * m1 * m3
        q1a = M11 * r1a + M12 * r2a + M13 * r3a
        q1b = M11 * r1b + M12 * r2b + M13 * r3b
        q1x = M11 * r1x + M12 * r2x + M13 * r3x
        q2a = M12 * r1a + M22 * r2a
        q2b = M12 * r1b + M22 * r2b
        q2x = M12 * r1x + M22 * r2x
        q3a = M13 * r1a + w3 * r3a
        q3b = M13 * r1b + w3 * r3b
        q3x = M13 * r1x + w3 * r3x
        q4a = w4 * r4a
        q4b = w4 * r4b
        q4x = w4 * r4x
        ws = w1 + w2 + w3 + w4
        k = 4
        for p in range(3):
            for q in range(p, 3):
                dI = (w1 * I[k1, p, q] + w2 * I[k2, p, q] + w3 * I[k3, p, q]
                      + w4 * I[k4, p, q] - ws * I[k0, p, q])
                res[k] = dI
                k += 1
        res[4] -= r1a * q1a + r2a * q2a + r3a * q3a + r4a * q4a
        res[5] -= r1a * q1b + r2a * q2b + r3a * q3b + r4a * q4b
        res[6] -= r1a * q1x + r2a * q2x + r3a * q3x + r4a * q4x
        res[7] -= r1b * q1b + r2b * q2b + r3b * q3b + r4b * q4b
        res[8] -= r1b * q1x + r2b * q2x + r3b * q3x + r4b * q4x
        res[9] -= r1x * q1x + r2x * q2x + r3x * q3x + r4x * q4x


@njit(cache=True, error_model="numpy", borrow=True)
def _info3(buf, I, j):
    """The information entries (aa, ab, ax, bb, bx, xx) of a pb_eval result as
    the symmetric 3 x 3 block I[j]."""
    k = 4
    for p in range(3):
        for q in range(p, 3):
            I[j, p, q] = buf[k]
            I[j, q, p] = buf[k]
            k += 1


@njit(cache=True, error_model="numpy", borrow=True)
def _add_bin_spread(n, w, s1, s2, s3, s4, s, a, b, lam, want_info, buf, out, L, G, I, res,
                    held):
    """``_add_bin`` of a bin whose cells' log capture spreads about its group's:
    w log P(n) plus the expansion in log capture with s1 .. s4 = the sums of
    (u_c - u_g)^j, j = 1 .. 4, over the bin's cells (the law at
    n .. n + _ORDER by the series). L (_RING), G (_RING, 3), I (_RING, 3, 3), res
    (10): scratch; the law at count c sits in slot c mod _RING, and ``held[k]``
    (_RING; a count, exact in a float) is the count slot k
    holds at this capture s (-1: none), so that the bins of one capture value,
    visited by ascending count, evaluate each count once; the caller resets
    ``held`` when s changes."""
    n_int = int(n)
    x = s * lam
    for j in range(_RING):
        c = n_int + j
        k = c % _RING
        if held[k] != c:
            pb_eval(float(c), a, b, x, want_info, buf)
            L[k] = buf[0]
            for p in range(3):
                G[k, p] = buf[1 + p]
            if want_info:
                _info3(buf, I, k)
            held[k] = c
    k0 = n_int % _RING
    l0 = L[k0]
    m1 = (n + 1.0) * math.exp(L[_slot(k0, 1)] - l0)
    m2 = (n + 1.0) * (n + 2.0) * math.exp(L[_slot(k0, 2)] - l0)
    m3 = (n + 1.0) * (n + 2.0) * (n + 3.0) * math.exp(L[_slot(k0, 3)] - l0)
    m4 = (n + 1.0) * (n + 2.0) * (n + 3.0) * (n + 4.0) * math.exp(L[_slot(k0, 4)] - l0)
    _spread_terms(n, k0, m1, m2, m3, m4, s1, s2, s3, s4, G, I, want_info, res)
    # plus w log P(n) and its derivatives, then into the totals in (a, b, lam)
    res[0] = w * L[k0] + res[0]
    for p in range(3):
        res[1 + p] = w * G[k0, p] + res[1 + p]
    if want_info:
        k = 4
        for p in range(3):
            for q in range(p, 3):
                res[k] = w * I[k0, p, q] + res[k]
                k += 1
    _add_scaled(res, s, want_info, out)


@njit(cache=True, error_model="numpy")
def _add_bins_spread(values, weights, groups, capture, spread, j0, j1, a, b, lam, want_info, buf,
                     out, L, G, I, res):
    """Every bin i, j0 <= i < j1, of non-zero weight by :func:`_add_bin_spread`
    (the series at n .. n + _ORDER), each count of a capture group evaluated
    once when the group's bins come by ascending count (as ``_merge_capture``
    orders them): the law a slot holds is forgotten when the group changes."""
    held = np.full(_RING, -1.0)   # the count whose law slot k of L, G, I holds
    g_last = -1
    for i in range(j0, j1):
        if weights[i] != 0.0:
            if groups[i] != g_last:
                held[:] = -1.0
                g_last = groups[i]
            _add_bin_spread(float(values[i]), weights[i], spread[i, 0], spread[i, 1],
                            spread[i, 2], spread[i, 3], capture[groups[i]], a, b, lam,
                            want_info, buf, out, L, G, I, res, held)


@njit(cache=True, error_model="numpy")
def _fill(tab, k0, k1, b, c, alpha, u3_ref):
    """Extend the per-k tables of one count from k0 (>= 1) to k1 by the
    digamma/trigamma recurrences psi(z+1) = psi(z) + 1/z."""
    for k in range(k0, k1):
        kf = float(k)
        is_p = tab[_INV_S, k - 1]          # 1/(c+k-1)
        ib_p = 1.0 / (b + kf - 1.0)        # 1/(b+k-1)
        inv_s = 1.0 / (c + kf)
        tab[_INV_S, k] = inv_s
        tab[_RHO, k] = (b + kf) * inv_s / (kf + 1.0)
        tab[_U1, k] = tab[_U1, k - 1] - is_p
        tab[_U2, k] = tab[_U2, k - 1] + ib_p - is_p
        tab[_U3, k] = alpha * inv_s - u3_ref
        tab[_TC, k] = tab[_TC, k - 1] - is_p * is_p
        tab[_TB, k] = tab[_TB, k - 1] + ib_p * ib_p
        tab[_W, k] = 0.0
        tab[_WS, k] = 0.0
        tab[_WSS, k] = 0.0


@njit(cache=True, error_model="numpy")
def _extend(tab, L, k, b, c, alpha, u3_ref):
    """Make the tables of one count cover index k; returns the new length,
    or -1 if k is beyond the scratch table."""
    if k < L:
        return L
    cap = tab.shape[1]
    if k >= cap:
        return -1
    L2 = min(max(2 * L, k + 16), cap)
    _fill(tab, L, L2, b, c, alpha, u3_ref)
    return L2


@njit(cache=True, error_model="numpy")
def _weights(tab, L, x, b, c, alpha, u3_ref, kd, rho_max, lg_b, lg_c):
    """Mixture weights of one bin (count fixed by the tables, this x), stored
    in tab[_T] relative to a reference term t_ref = 1; returns (L, S, s1, s2,
    s3, lr, k_b, k_d, k_u): the weights live on [0, k_b) and [k_d, k_u], lr =
    log(t_ref/t_0), s1..s3 the weighted sums of u1..u3. S = 0: the tables
    were too short (the caller falls back to pb_eval)."""
    T = tab[_T]
    L_in = L
    r_max = x * rho_max
    S = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    k_b = 0
    if x <= _X_GROUPED:
        k0 = 0
        lr = 0.0
        boundary = False
    else:
        k0, k_lo = _peak(b, c, x)
        L = _extend(tab, L, k0 + 1, b, c, alpha, u3_ref)
        if L < 0:
            return L_in, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0
        kf = float(k0)
        lr = (kf * math.log(x) - math.lgamma(kf + 1.0) + math.lgamma(b + kf) - lg_b
              - math.lgamma(c + kf) + lg_c)
        boundary = k0 > 0 and k_lo > 0.0
        if boundary and lr < 0.0:
            # the k = 0 peak is the larger one: rare for x > _X_GROUPED
            return L, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0
    # upward from k0
    t = 1.0
    k = k0
    while True:
        if k >= L:
            L2 = _extend(tab, L, k, b, c, alpha, u3_ref)
            if L2 < 0:
                return L, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0
            L = L2
        T[k] = t
        S += t
        s1 += t * tab[_U1, k]
        s2 += t * tab[_U2, k]
        s3 += t * tab[_U3, k]
        r = x * tab[_RHO, k]
        rb = r if k >= kd else r_max
        if rb < 1.0 and t * rb < _EPS * S * (1.0 - rb):
            break
        t *= r
        k += 1
    k_u = k
    # downward from k0 - 1 (the terms decrease down to k_lo)
    k_d = k0
    k = k0 - 1
    t = 1.0
    while k >= 0:
        t /= x * tab[_RHO, k]
        if t < _EPS * S:
            break
        T[k] = t
        S += t
        s1 += t * tab[_U1, k]
        s2 += t * tab[_U2, k]
        s3 += t * tab[_U3, k]
        k_d = k
        k -= 1
    if boundary and k_d > 0:
        # the second peak at k = 0 (b < 1), upward until negligible or until
        # the downward sweep's range
        t = math.exp(-lr)
        k = 0
        while k < k_d:
            T[k] = t
            S += t
            s1 += t * tab[_U1, k]
            s2 += t * tab[_U2, k]
            s3 += t * tab[_U3, k]
            k += 1
            r = x * tab[_RHO, k - 1]
            if r < 1.0 and t < _EPS * S:
                break
            t *= r
        k_b = k
    return L, S, s1, s2, s3, lr, k_b, k_d, k_u


@njit(cache=True, error_model="numpy",
      unit=("void(float64, int64[::1], int64, int64, float64[::1], int64[::1], float64[::1], "
            "float64, float64, float64, float64, float64, float64, boolean, float64[:, ::1], "
            "float64[::1], float64[::1])"))
def _grouped_run(nf, idx, j0, j1, weights, groups, capture, a, b, lam, lg_a, lg_b, lg_ab,
                 want_info, tab, buf, out):
    """Add the bins idx[j0:j1], which all hold the count nf, to ``out``."""
    c = a + b + nf
    alpha = a + nf
    # reference point for the covariances: the term peak at the mean x, so
    # the second moments of u about it stay comparable to the variances
    sw = 0.0
    swx = 0.0
    for j in range(j0, j1):
        i = idx[j]
        w = abs(weights[i])
        x = capture[groups[i]] * lam
        if w != 0.0 and x <= _X_WINDOW:
            sw += w
            swx += w * x
    if sw == 0.0:
        for j in range(j0, j1):
            i = idx[j]
            if weights[i] != 0.0:
                _add_bin(nf, weights[i], capture[groups[i]], a, b, lam, want_info, buf, out)
        return
    k_ref, _ = _peak(b, c, swx / sw)
    kr = float(k_ref)
    dc0 = digamma_shift(a + b, nf)            # psi(c) - psi(a+b)
    u1_0 = digamma_shift(c, kr)               # psi(c+kr) - psi(c)
    u2_0 = u1_0 - digamma_shift(b, kr)
    u3_ref = alpha / (c + kr)
    # r(k) = x rho_k increases up to k_dec and decreases after it (the
    # derivative of log r has the sign of -k^2 - 2bk + (1-b)c - b), so the
    # tail beyond k is below t r*/(1-r*) with r* = r(k) past k_dec and
    # r* = r(k_dec) before it
    d = (1.0 - b) * c - b
    kd_c = -b + math.sqrt(b * b + d) if d > 0.0 else 0.0
    kd = math.ceil(kd_c)
    rho_max = (b + kd_c) / ((kd_c + 1.0) * (c + kd_c))
    # k = 0 entries of the tables
    inv_c = 1.0 / c
    tab[_INV_S, 0] = inv_c
    tab[_RHO, 0] = b * inv_c
    tab[_U1, 0] = u1_0
    tab[_U2, 0] = u2_0
    tab[_U3, 0] = alpha * inv_c - u3_ref
    tab[_TC, 0] = -trigamma_shift(a + b, nf)
    tab[_TB, 0] = 0.0
    tab[_W, 0] = 0.0
    tab[_WS, 0] = 0.0
    tab[_WSS, 0] = 0.0
    L = 1
    L_used = 0
    sum_w = 0.0
    q11 = 0.0
    q12 = 0.0
    q22 = 0.0
    q13 = 0.0
    q23 = 0.0
    q33 = 0.0
    lg_c = math.lgamma(c)
    T = tab[_T]
    for j in range(j0, j1):
        i = idx[j]
        w = weights[i]
        if w == 0.0:
            continue
        s = capture[groups[i]]
        x = s * lam
        if x > _X_WINDOW:
            _add_bin(nf, w, s, a, b, lam, want_info, buf, out)
            continue
        L, S, s1, s2, s3, lr, k_b, k_d, k_u = _weights(tab, L, x, b, c, alpha, u3_ref, kd,
                                                       rho_max, lg_b, lg_c)
        if S == 0.0:
            _add_bin(nf, w, s, a, b, lam, want_info, buf, out)
            continue
        if k_u + 1 > L_used:
            L_used = k_u + 1
        inv_S = 1.0 / S
        m1 = s1 * inv_S
        m2 = s2 * inv_S
        m3 = s3 * inv_S
        sum_w += w
        out[0] += w * (nf * math.log(x) - x + lr + math.log(S))
        out[1] += w * m1
        out[2] += w * m2
        out[3] += w * s * (nf / x - (u3_ref + m3))
        if want_info:
            ws = w * s
            q11 += w * m1 * m1
            q12 += w * m1 * m2
            q22 += w * m2 * m2
            q13 += ws * m1 * m3
            q23 += ws * m2 * m3
            q33 += ws * s * m3 * m3
            out[9] += ws * s * nf / (x * x)
            cw = w * inv_S
            cs = cw * s
            css = cs * s
            for kk in range(k_b):
                tk = T[kk]
                tab[_W, kk] += cw * tk
                tab[_WS, kk] += cs * tk
                tab[_WSS, kk] += css * tk
            for kk in range(k_d, k_u + 1):
                tk = T[kk]
                tab[_W, kk] += cw * tk
                tab[_WS, kk] += cs * tk
                tab[_WSS, kk] += css * tk
    if sum_w == 0.0:
        return
    # per-count constants: log t_0 = log B(a+n, b) - log B(a, b), and the
    # reference offsets of E[dc], E[db - dc], E[p]
    out[0] += sum_w * (math.lgamma(a + nf) - lg_a + lg_ab - math.lgamma(c)
                       - math.lgamma(nf + 1.0))
    out[1] += sum_w * (digamma_shift(a, nf) - dc0 - u1_0)
    out[2] -= sum_w * (dc0 + u2_0)
    if not want_info:
        return
    f_aa = 0.0
    f_ab = 0.0
    f_bb = 0.0
    f_al = 0.0
    f_bl = 0.0
    f_ll = 0.0
    for k in range(L_used):
        kf = float(k)
        Wk = tab[_W, k]
        Wsk = tab[_WS, k]
        Wssk = tab[_WSS, k]
        u1 = tab[_U1, k]
        u2 = tab[_U2, k]
        u3 = tab[_U3, k]
        tc = tab[_TC, k]
        inv_s = tab[_INV_S, k]
        beta = b + kf
        v = inv_s * inv_s
        f_aa += Wk * (tc - u1 * u1)
        f_ab += Wk * (tc - u1 * u2)
        f_bb += Wk * (tab[_TB, k] + tc - u2 * u2)
        f_al += Wsk * (beta * v + u1 * u3)
        f_bl += Wsk * (u2 * u3 - alpha * v)
        f_ll += Wssk * (alpha * beta * v / (c + kf + 1.0) + u3 * u3)
    out[4] += sum_w * trigamma_shift(a, nf) + f_aa + q11
    out[5] += f_ab + q12
    out[6] += f_al - q13
    out[7] += f_bb + q22
    out[8] += f_bl - q23
    out[9] += q33 - f_ll


# ---------------------------------------------------------------------------
# One capture value, many counts: the three-term recurrence in n
# (docs/maths.md, "The stationary law", "A recurrence in the count"). The
# generating function of P(n) is 1F1(a; a+b; x(z-1)); Kummer's equation for
# it gives, for every n >= 0,
#
#     x (n+a) P(n) = (n+1)(n+a+b+x) P(n+1) - (n+1)(n+2) P(n+2).
#
# P is the minimal solution as n -> inf (its ratio P(n+1)/P(n) = x E[p|n] /
# (n+1) -> 0, the other solution's -> 1), so the recurrence is run DOWNWARD
# (Miller's algorithm): from y(N'+1) = 0, y(N') = 1 at a start N' above the
# largest count, where the local growth rates of the two solutions (the roots
# of the characteristic equation) have separated them by e^-40 before the
# largest count is reached, y(n) = C P(n) to rounding for every n below. One
# exact value of the series (pb_eval, with its scores and information) at the
# largest count fixes C(a, b, x) and its first and second derivatives. The
# derivatives of y in (a, b, x) obey the same recurrence with sources from the
# derivatives of its coefficients, so the scores and the observed information
# come along: O(1) per count instead of the O(sqrt x) terms of the series.

_REC_MIN_BINS = 3       # fewer distinct counts than this: the series per count
_REC_MIN_X = 16.0       # below this x the series has a few terms per count (the pmf runs)
_REC_PLAN_MIN_X = 1.0   # ... and below this one or two: the evaluation keeps the series
_REC_SERIES_COST = 9.0  # pb_eval at x ~ this many times sqrt(x) recurrence steps
_REC_SHARED_COST = 1.5  # a bin of the shared tables (mixed histograms, x <= _X_WINDOW) ~ this
_REC_ANCHORS = 8        # exact values (series) that fix the normalisation, at most
_REC_ANCHOR_SPAN = 512  # ... one per this many counts where b >= 1 (and per 8 distinct counts)
_REC_SUM_MIN_AB = 0.1   # normalisation by the sum only for a, b >= this (spikes at 0 or x lose digits)
_REC_TAIL = 46.0        # log of P(n_max) over the mass above the start, normalising by the sum
_REC_DAMP = 40.0        # log of the separation of the two solutions at the largest count
_REC_MAX_WARM = 1 << 20   # longest warm-up above the largest count
_WALK_BLOCK = 8          # counts whose factors the walk to the start multiplies before dividing
_REC_SCALE = 1e100      # rescale the recursion when y leaves [1/_REC_SCALE, _REC_SCALE]

# how the recurrence is normalised (_rec_plan's choice, _rec_run's ``mode``)
_NORM_SUM = 0       # by the sum of P over 0 .. top (P's tail above top negligible)
_NORM_ANCHORS = 1   # by exact values (the series, pb_eval) at counts of the histogram
_NORM_P0 = 2        # by P(0) from its large-x series (_p0_large_x; up to _P0_MAX_SPAN counts)

_P0_MIN_X = 30.0      # the large-x series of P(0) from this x on
_P0_MAX_TERMS = 48    # ... with at most this many terms
_P0_MAX_RATIO = 0.75  # ... each term at most this fraction of the one before
_P0_TOL = 1e-17       # ... and each part of its error bound below this (relative)
_P0_MAX_SPAN = 4096   # P(0) alone normalises a recurrence over at most this many counts


@njit(cache=True, error_model="numpy", inline="always")
def _rec_anchors(nd, n_max, b, spread):
    """The exact values (series) that normalise a recurrence over ``nd``
    distinct counts up to ``n_max``: one per 8 distinct counts, at least 1,
    at most _REC_ANCHORS; for b >= 1 (no spike of the law at x, so the
    recurrence crosses no deep valley between two modes, where its rounding
    grows fastest) also at most one per _REC_ANCHOR_SPAN counts of the range.
    Over a short range one anchor then serves however many counts it holds:
    at large x, where each anchor is a series of O(sqrt x) terms, the
    normalisation costs one series, not eight. With the expansion in log
    capture (``spread``), whose alternative is the series at 1 + _ORDER
    counts per count, the recurrence also runs over a few counts far apart:
    there at least one anchor per _REC_ANCHOR_SPAN counts of the range (at
    most one per distinct count), so that no stretch of thousands of steps
    goes unanchored (its rounding reached nats over 14,000 steps)."""
    n = min(_REC_ANCHORS, max(1, nd // 8))
    if b >= 1.0:
        n = min(n, n_max // _REC_ANCHOR_SPAN + 1)
    if spread:
        n = min(nd, max(n, n_max // _REC_ANCHOR_SPAN + 1))
    return n


@njit(cache=True, error_model="numpy")
def _p0_terms(a, b, x):
    """The number of terms K of the large-x series of P(0) (:func:`_p0_large_x`)
    whose error bound is met, or -1 where the series is not to be used.

    P(0) = E[exp(-x p)], p ~ Beta(a, b), is with t = x p
    x^-a / B(a, b) int_0^x e^-t t^(a-1) (1 - t/x)^(b-1) dt. Expanding
    (1 - t/x)^(b-1) to K terms and integrating each to infinity gives
    Gamma(a + b) / Gamma(b) x^-a sum_{k<K} t_k, t_k = (a)_k (1-b)_k / (k! x^k)
    (docs/maths.md, "A recurrence in the count", *P(0) at large x*). Two parts
    are left out: the Taylor remainder, at most |t_K| of the sum's leading term
    when K <= b - 1 (Lagrange's form: (1 - xi)^(b-1-K) <= 1); and each term's
    integral beyond x, a share Q(a + k, x) <= Q(a + K, x) of it, bounded by
    2 x^(a+K-1) e^-x / Gamma(a + K) for x > 2 (a + K - 1). With every ratio
    |t_(k+1) / t_k| <= _P0_MAX_RATIO, the sum is at least 1 - _P0_MAX_RATIO and
    the sum of |t_k| at most 1 / (1 - _P0_MAX_RATIO), so the relative error of
    P(0) is below 20 _P0_TOL when both parts are below _P0_TOL."""
    if not (x >= _P0_MIN_X and b >= 2.0):
        return -1
    t = 1.0
    for k in range(_P0_MAX_TERMS):
        if k + 1.0 > b - 1.0:
            return -1
        r = (a + k) * (b - 1.0 - k) / ((k + 1.0) * x)
        if not r <= _P0_MAX_RATIO:
            return -1
        t *= r
        if t <= _P0_TOL:
            K = k + 1
            sk = a + K
            if not x > 2.0 * (sk - 1.0):
                return -1
            log_q = (sk - 1.0) * math.log(x) - x - math.lgamma(sk) + math.log(2.0)
            return K if log_q <= math.log(_P0_TOL) else -1
    return -1


@njit(cache=True, error_model="numpy")
def _p0_large_x(a, b, x, K, want_info, out):
    """log P(0) by the first K terms of its large-x series (:func:`_p0_terms`),
    with its gradient in (a, b, x) and, if want_info, the observed information
    (negative Hessian of log P(0)), laid out in ``out`` as :func:`pb_eval` lays
    them out. With A_k = psi(a + k) - psi(a) and B_k = sum_{j<k} 1/(b - 1 - j),
    d t_k = t_k (A_k da + B_k db - k dx / x); the second derivatives follow
    from A_k' = -sum 1/(a + j)^2 and B_k' = -sum 1/(b - 1 - j)^2."""
    inv_x = 1.0 / x
    t = 1.0
    A = 0.0
    B = 0.0
    dA = 0.0
    dB = 0.0
    S = 0.0
    Sa = 0.0
    Sb = 0.0
    Sx = 0.0
    Saa = 0.0
    Sab = 0.0
    Sax = 0.0
    Sbb = 0.0
    Sbx = 0.0
    Sxx = 0.0
    for k in range(K):
        kx = k * inv_x
        S += t
        Sa += t * A
        Sb += t * B
        Sx -= t * kx
        if want_info:
            Saa += t * (A * A + dA)
            Sab += t * A * B
            Sax -= t * A * kx
            Sbb += t * (B * B + dB)
            Sbx -= t * B * kx
            Sxx += t * kx * (k + 1.0) * inv_x
        t *= (a + k) * (1.0 - b + k) / ((k + 1.0) * x)
        ia = 1.0 / (a + k)
        ib = 1.0 / (b - 1.0 - k)
        A += ia
        dA -= ia * ia
        B += ib
        dB -= ib * ib
    inv_s = 1.0 / S
    la = Sa * inv_s
    lb = Sb * inv_s
    lx = Sx * inv_s
    psi_ab = digamma(a + b)
    out[0] = lgamma_diff(b, a) - a * math.log(x) + math.log(S)
    out[1] = psi_ab - math.log(x) + la
    out[2] = psi_ab - digamma(b) + lb
    out[3] = -a * inv_x + lx
    if want_info:
        tri_ab = trigamma(a + b)
        out[4] = -(tri_ab + Saa * inv_s - la * la)
        out[5] = -(tri_ab + Sab * inv_s - la * lb)
        out[6] = -(-inv_x + Sax * inv_s - la * lx)
        out[7] = -(tri_ab - trigamma(b) + Sbb * inv_s - lb * lb)
        out[8] = -(Sbx * inv_s - lb * lx)
        out[9] = -(a * inv_x * inv_x + Sxx * inv_s - lx * lx)


@njit(cache=True, error_model="numpy", inline="always")
def _fold_decay(decay, log_decay):
    """:func:`_rec_start`'s product of P's decay ratios folded into its logarithm
    (before it leaves the normal range): returns (1, the new logarithm, the
    threshold on the product that the tail's start compares with)."""
    log_decay += math.log(decay)
    thr = math.exp(-_REC_TAIL - log_decay) if -_REC_TAIL - log_decay < 700.0 else np.inf
    return 1.0, log_decay, thr


@njit(cache=True, error_model="numpy",
      unit="UniTuple(int64, 2)(int64, float64, float64, float64, boolean, float64, float64)")
def _rec_start(n_max, a, b, x, tail, limit, span):
    """Starts N' >= n_max of the downward recurrence, as (damped, tailed): the
    first N' where the sum over n_max <= n <= N' of log(r_big / r_small), the
    roots of (n+2) r^2 - (n+c+x) r + x(n+a)/(n+1) = 0 (the two solutions'
    local ratios y(n+1)/y(n); P follows the smaller), reaches _REC_DAMP; and,
    with ``tail`` (else -1), the first N' where P's own decay has also come
    down far enough: the sum of log r_small (log sqrt(r_big r_small) where the
    roots are complex) less log(1 - r_small) below -_REC_TAIL (the mass above
    N' is then below e^-_REC_TAIL P(n_max), for the normalisation by the sum;
    walked in strides of 4 counts with a bound on each, so never below that
    first N' and a few counts above it at most points).
    One walk up from n_max finds both (the second is never below the first);
    -1 for a start that takes more than ``limit`` steps, and for a tailed start
    ``span`` or more above the damped one (the caller's other normalisations
    cost no more than that: the walk stops there)."""
    # products instead of sums of logs (no log per step): damp = prod of
    # r_big/r_small (only compared with e^_REC_DAMP, and the walk ends once it gets
    # there, so it stays in range), decay = prod of r_small times e^log_decay
    # (renormalised before underflow)
    c = a + b
    e_damp = math.exp(_REC_DAMP)
    damp = 1.0
    decay = 1.0
    log_decay = 0.0
    thr = math.exp(-_REC_TAIL)
    top_damp = -1
    n = n_max
    # r_big / r_small = (S + R)^2 (n + 1) / (4 X (n + 2)) and r_small = 2 X / ((n + 1)
    # (S + R)) with S = n + c + x, X = x (n + a), R = sqrt(S^2 - 4 X (n + 2) / (n + 1))
    # (the roots of _rec_roots times 2 (n + 2)): each product is kept as a numerator and
    # a denominator over up to _WALK_BLOCK counts and divided out once per block, one
    # division and one square root per count (_rec_roots takes four divisions)
    d_num = 1.0
    d_den = 1.0
    s_num = 1.0
    s_den = 1.0
    k_blk = 0
    while n - n_max < limit:
        nf = float(n)
        S = nf + c + x
        X = x * (nf + a)
        disc = S * S - 4.0 * X * (nf + 2.0) / (nf + 1.0)
        if disc > 0.0:
            SR = S + math.sqrt(disc)
            d_num *= SR * SR * (nf + 1.0)
            d_den *= 4.0 * X * (nf + 2.0)
            s_num *= 2.0 * X
            s_den *= (nf + 1.0) * SR
        else:
            # complex roots (the Poisson-like bulk): no separation; P's decay is the
            # modulus sqrt(r_big r_small)
            s_num *= math.sqrt(X / ((nf + 1.0) * (nf + 2.0)))
        k_blk += 1
        if damp * d_num >= e_damp * d_den:
            top_damp = n + 1
            if not tail:
                return top_damp, -1
            decay *= s_num / s_den
            break
        if k_blk == _WALK_BLOCK:
            damp *= d_num / d_den
            decay *= s_num / s_den
            d_num = 1.0
            d_den = 1.0
            s_num = 1.0
            s_den = 1.0
            k_blk = 0
            if decay < 1e-250 or decay > 1e250:
                decay, log_decay, thr = _fold_decay(decay, log_decay)
        n += 1
    if top_damp < 0:
        return -1, -1
    if decay < 1e-250 or decay > 1e250:
        decay, log_decay, thr = _fold_decay(decay, log_decay)
    # on to the tail's start in strides of 4 counts: a stride's factor is the larger
    # of r_small at its two ends, to the 4th power, a bound where r_small falls across
    # it (docs/maths.md, *Normalisation by the sum*); the far end is the next stride's
    # near end
    small0 = _rec_roots(float(n + 1), a, c, x)[1]
    n += 1
    while n - n_max < limit and n < top_damp + span:
        small1 = _rec_roots(float(n + 4), a, c, x)[1]
        small = max(small0, small1)
        s2 = small * small
        decay *= s2 * s2
        small0 = small1
        n += 4
        if decay < 1e-250 or decay > 1e250:
            decay, log_decay, thr = _fold_decay(decay, log_decay)
        # P's mass above n <= P(n_max) e^log_decay decay / (1 - r_small)
        if small < 1.0 and decay <= thr * (1.0 - small):
            return top_damp, n
    return top_damp, -1


@njit(cache=True, error_model="numpy", inline="always")
def _rec_roots(nf, a, c, x):
    """The roots of (n+2) r^2 - (n+c+x) r + x(n+a)/(n+1) = 0 at count nf, the
    two solutions' local ratios y(n+1)/y(n): (r_big / r_small, r_small) where
    they are real (P follows r_small), (0, the modulus sqrt of their product)
    where they are complex."""
    s = (nf + c + x) / (nf + 2.0)
    p = x * (nf + a) / ((nf + 1.0) * (nf + 2.0))
    disc = s * s - 4.0 * p
    if disc > 0.0:
        big = 0.5 * (s + math.sqrt(disc))
        small = p / big
        return big / small, small
    return 0.0, math.sqrt(p)


@njit(cache=True, error_model="numpy")
def _rec_plan(values, weights, order, j0, j1, a, b, x, shared, extra=0):
    """How to evaluate bins order[j0:j1] (one capture value x, values
    ascending along ``order``): returns (start N', normalisation: _NORM_*) for
    the recurrence, or (-1, _NORM_SUM) when the series per count is as cheap:
    for x < _REC_PLAN_MIN_X (one or two terms per count) or fewer than _REC_MIN_BINS
    distinct counts (both without the expansion), or when
    the recurrence costs more than the alternative per distinct count: pb_eval (about
    _REC_SERIES_COST sqrt(x) recurrence steps' worth), or with ``shared`` the
    shared-table sums of a mixed histogram (about _REC_SHARED_COST sqrt(x)).
    The recurrence is normalised by up to _REC_ANCHORS series values (N' steps
    + the anchors), by the sum of P over 0..N' (no series; a longer start that
    takes in P's tail) or, where one anchor serves and the large-x series of
    P(0) meets its error bound (:func:`_p0_terms`), by that P(0) (N' steps + a
    few terms), whichever is cheapest. ``extra``:
    counts above the largest whose P must be right too (_ORDER for the
    expansion in log capture, which needs P(n+1) .. P(n+_ORDER); then even one
    count may take the recurrence, the series costing 1 + extra values per
    count)."""
    if x < _REC_PLAN_MIN_X and extra == 0:
        return -1, _NORM_SUM
    nd = 0
    last = -1
    n_max = 0
    for j in range(j0, j1):
        i = order[j]
        if weights[i] != 0.0 and values[i] != last:
            nd += 1
            last = values[i]
            n_max = values[i]
    if nd < _REC_MIN_BINS and extra == 0:
        # (with the expansion, the series costs 1 + extra values per count: the
        # costs below decide)
        return -1, _NORM_SUM
    n_max += extra   # the expansion in log capture also needs P(n+1) .. P(n+_ORDER)
    rx = math.sqrt(x + 1.0)
    per = 4.0 + _REC_SERIES_COST * rx
    budget = nd * (4.0 + _REC_SHARED_COST * rx if shared and extra == 0 else per)
    if extra > 0:
        budget *= 1.0 + extra   # the alternative: the series at n .. n + extra
    if float(n_max) >= budget:
        return -1, _NORM_SUM
    n_anch = _rec_anchors(nd, n_max, b, extra > 0)
    lim = min(float(_REC_MAX_WARM), budget - n_max)
    # P(0) from its large-x series can normalise the whole range, as the sum does over
    # a longer one (b >= 2 here, no spike at x): the recurrence then runs on down to 0,
    # and the anchor costs K terms, not a series of O(sqrt x) terms at a count of the
    # histogram. (With the expansion, only where one anchor serves the range.)
    K = 0
    if n_anch == 1 or (extra == 0 and n_max < _P0_MAX_SPAN):
        K = _p0_terms(a, b, x)
    # the sum's start wins only below the damped start + the cheaper other normalisation:
    # the walk up P's tail stops there
    span = n_anch * per
    if K > 0:
        span = min(span, float(K))
    top_a, top_s = _rec_start(n_max, a, b, x, min(a, b) >= _REC_SUM_MIN_AB, lim, span)
    cost_a = float(top_a) + n_anch * per if top_a >= 0 else np.inf
    cost_p = float(top_a) + K if top_a >= 0 and K > 0 else np.inf
    cost_s = float(top_s) if top_s >= 0 else np.inf
    if min(cost_p, min(cost_a, cost_s)) >= budget:
        return -1, _NORM_SUM
    if cost_p <= min(cost_a, cost_s):
        return top_a, _NORM_P0
    if cost_a <= cost_s:
        return top_a, _NORM_ANCHORS
    return top_s, _NORM_SUM


@njit(cache=True, error_model="numpy", borrow=True)
def _rec_add(w, s, P, Pa, Pb, Px, Paa, Pab, Pax, Pbb, Pbx, Pxx, log_scale, cst, want_info,
             out, log_p):
    """Add weight w times log P and its derivatives to the histogram totals,
    x = s lam: from the unnormalised y (times e^log_scale) less the
    normalisation ``cst`` (log C, its gradient, the information of C).
    ``log_p``: log y, or 0 where the caller accumulates w log y itself."""
    inv = 1.0 / P
    ga = Pa * inv
    gb = Pb * inv
    gx = Px * inv
    out[0] += w * (log_p + log_scale - cst[0])
    out[1] += w * (ga - cst[1])
    out[2] += w * (gb - cst[2])
    out[3] += w * s * (gx - cst[3])
    if want_info:
        out[4] += w * (ga * ga - Paa * inv - cst[4])
        out[5] += w * (ga * gb - Pab * inv - cst[5])
        out[6] += w * s * (ga * gx - Pax * inv - cst[6])
        out[7] += w * (gb * gb - Pbb * inv - cst[7])
        out[8] += w * s * (gb * gx - Pbx * inv - cst[8])
        out[9] += w * s * s * (gx * gx - Pxx * inv - cst[9])


@njit(cache=True, error_model="numpy", inline="always")
def _rec_down(n, a, c, x, P1, Pa1, Pb1, Px1, P2, Pa2, Pb2, Px2):
    """One step of the downward recurrence in the count (docs/maths.md, "The
    stationary law", "A recurrence in the count"): y(n - 1)
    and its first derivatives in a, b, x from y(n) (``*1``) and y(n + 1)
    (``*2``), with c = a + b. Returns (P, Pa, Pb, Px) and the step's
    coefficients (na, e1, E, F, invD), which the second derivatives reuse."""
    m = float(n - 1)
    na = m + a
    e1 = m + 1.0
    E = e1 * (m + c + x)
    F = e1 * (m + 2.0)
    invD = 1.0 / (x * na)
    P = (E * P1 - F * P2) * invD
    Pa = (E * Pa1 + e1 * P1 - F * Pa2 - x * P) * invD
    Pb = (E * Pb1 + e1 * P1 - F * Pb2) * invD
    Px = (E * Px1 + e1 * P1 - F * Px2 - na * P) * invD
    return P, Pa, Pb, Px, na, e1, E, F, invD


@njit(cache=True, error_model="numpy", borrow=True)
def _rec_level(Q, G, I, j, P, P_up, Pa, Pb, Px, Paa, Pab, Pax, Pbb, Pbx, Pxx, want_info):
    """Level j of the recurrence's ring for :func:`_spread_terms`: the ratio
    Q[j] = y(n + 1) / y(n) (``P_up`` / ``P``, both at the recurrence's current
    scale) and the gradient and information (negative Hessian; upper triangle)
    of log y(n) in (a, b, x), from y = ``P`` and its derivatives (the
    recurrence's normalisation cancels in :func:`_spread_terms`)."""
    inv = 1.0 / P
    Q[j] = P_up * inv
    ga = Pa * inv
    gb = Pb * inv
    gx = Px * inv
    G[j, 0] = ga
    G[j, 1] = gb
    G[j, 2] = gx
    if want_info:
        I[j, 0, 0] = ga * ga - Paa * inv
        I[j, 0, 1] = ga * gb - Pab * inv
        I[j, 0, 2] = ga * gx - Pax * inv
        I[j, 1, 1] = gb * gb - Pbb * inv
        I[j, 1, 2] = gb * gx - Pbx * inv
        I[j, 2, 2] = gx * gx - Pxx * inv


@njit(cache=True, error_model="numpy", borrow=True)
def _add_scaled(res, s, want_info, out):
    """Add terms in (a, b, x) to totals in (a, b, lam), x = s lam."""
    out[0] += res[0]
    out[1] += res[1]
    out[2] += res[2]
    out[3] += s * res[3]
    if want_info:
        out[4] += res[4]
        out[5] += res[5]
        out[6] += s * res[6]
        out[7] += res[7]
        out[8] += s * res[8]
        out[9] += s * s * res[9]


@njit(cache=True, error_model="numpy", borrow=True,
      unit=("void(int64[::1], float64[::1], int64[::1], int64, int64, int64, int64, "
            "float64, float64, float64, float64, boolean, float64[::1], float64[::1], "
            "float64[:, ::1], float64[::1], float64[:, ::1], float64[:, :, ::1], "
            "float64[::1], float64[::1])"))
def _rec_run(values, weights, order, j0, j1, top, mode, s, a, b, lam, want_info, buf, out,
             spread, L3, G3, I3, res, work):
    """Add the bins order[j0:j1] (one capture value s, values ascending along
    ``order``) to ``out`` by the downward recurrence in n from ``top``
    (:func:`_rec_plan`), normalised as ``mode`` says (_NORM_*): by exact
    series values at counts of the histogram, by the sum of P over 0..top, or
    by P(0) from its large-x series. ``spread`` (m, _ORDER) or empty: each bin's sums of
    (u_c - u_g)^j, j = 1 .. _ORDER, its expansion in log capture from P(n) ..
    P(n+_ORDER) of the recurrence (``top`` planned with ``extra=_ORDER``);
    L3, G3, I3, res: its scratch (:func:`_add_bin_spread`; here L3 holds the
    ratios y(n + 1) / y(n) of :func:`_rec_level`); ``work`` (20): scratch for
    the normalisation and the run's totals."""
    x = s * lam
    c = a + b
    anchored = mode == _NORM_ANCHORS
    by_sum = mode == _NORM_SUM
    jt = j1 - 1
    while jt >= j0 and weights[order[jt]] == 0.0:
        jt -= 1
    if jt < j0:
        return
    n_max = values[order[jt]]
    has_spread = spread.shape[0] > 0
    # y(top + 1) = 0 (index 2), y(top) = 1 (index 1); derivatives 0
    P2 = 0.0
    Pa2 = 0.0
    Pb2 = 0.0
    Px2 = 0.0
    Paa2 = 0.0
    Pab2 = 0.0
    Pax2 = 0.0
    Pbb2 = 0.0
    Pbx2 = 0.0
    Pxx2 = 0.0
    P1 = 1.0
    Pa1 = 0.0
    Pb1 = 0.0
    Px1 = 0.0
    Paa1 = 0.0
    Pab1 = 0.0
    Pax1 = 0.0
    Pbb1 = 0.0
    Pbx1 = 0.0
    Pxx1 = 0.0
    log_scale = 0.0
    # anchors: the largest count and every stride-th distinct count below
    # (:func:`_rec_anchors`); each fixes C for the counts down to the next one,
    # so the rounding of the recurrence (~1e-14 of log P per step where it
    # cancels most, in the bulk) does not add up over a long range
    nd = 0
    last = -1
    for jj in range(j0, j1):
        i = order[jj]
        if weights[i] != 0.0 and values[i] != last:
            nd += 1
            last = values[i]
    n_anch = _rec_anchors(nd, n_max, b, has_spread) if anchored else 0
    stride = max(1, nd // max(n_anch, 1))
    # sums of y and its derivatives over n (normalisation by the sum)
    S0 = 0.0
    Sa = 0.0
    Sb = 0.0
    Sx = 0.0
    Saa = 0.0
    Sab = 0.0
    Sax = 0.0
    Sbb = 0.0
    Sbx = 0.0
    Sxx = 0.0
    ls_S = 0.0
    fS = 1.0
    W = 0.0
    k_anch = 0
    k_dist = 0
    prod_y = 1.0
    log_prod = 0.0
    cst = work[:10]
    acc = work[10:20]
    for k in range(20):
        work[k] = 0.0
    j = jt
    n = top
    while True:
        if (n <= n_max and k_anch < n_anch and j >= j0 and values[order[j]] == n
                and k_dist % stride == 0):
            # an exact value (the series) fixes the normalisation C
            k_anch += 1
            pb_eval(float(n), a, b, x, want_info, buf)
            inv = 1.0 / P1
            ga = Pa1 * inv
            gb = Pb1 * inv
            gx = Px1 * inv
            cst[0] = math.log(P1) + log_scale - buf[0]
            cst[1] = ga - buf[1]
            cst[2] = gb - buf[2]
            cst[3] = gx - buf[3]
            if want_info:
                # info of y minus the exact info
                cst[4] = ga * ga - Paa1 * inv - buf[4]
                cst[5] = ga * gb - Pab1 * inv - buf[5]
                cst[6] = ga * gx - Pax1 * inv - buf[6]
                cst[7] = gb * gb - Pbb1 * inv - buf[7]
                cst[8] = gb * gx - Pbx1 * inv - buf[8]
                cst[9] = gx * gx - Pxx1 * inv - buf[9]
        if by_sum:
            S0 += fS * P1
            Sa += fS * Pa1
            Sb += fS * Pb1
            Sx += fS * Px1
            if want_info:
                Saa += fS * Paa1
                Sab += fS * Pab1
                Sax += fS * Pax1
                Sbb += fS * Pbb1
                Sbx += fS * Pbx1
                Sxx += fS * Pxx1
            if S0 > _REC_SCALE:
                # the sums keep their own scale e^ls_S
                g = 1.0 / S0
                ls_S -= math.log(g)
                fS = math.exp(log_scale - ls_S)
                S0 *= g
                Sa *= g
                Sb *= g
                Sx *= g
                Saa *= g
                Sab *= g
                Sax *= g
                Sbb *= g
                Sbx *= g
                Sxx *= g
        if has_spread and j >= j0 and values[order[j]] >= n - _ORDER:
            # the expansion in log capture of a bin at n - _ORDER .. n needs
            # this level: kept in slot n mod _RING (L3 holds the ratios y(n + 1)
            # / y(n) here, which a rescaling leaves as they are)
            _rec_level(L3, G3, I3, n % _RING, P1, P2, Pa1, Pb1, Px1, Paa1, Pab1, Pax1, Pbb1,
                       Pbx1, Pxx1, want_info)
        if n <= n_max:
            if j >= j0 and values[order[j]] == n:
                k_dist += 1
            while j >= j0 and values[order[j]] == n:
                i = order[j]
                w = weights[i]
                if w != 0.0:
                    W += w
                    # sum of w log y over bins of weight 1 or 2 as the log of a
                    # product (one logarithm per many bins; y in [1/_REC_SCALE,
                    # _REC_SCALE], the product kept in [1/_REC_SCALE, _REC_SCALE])
                    if w == 1.0 or w == 2.0:
                        prod_y, log_prod = fold_log(prod_y * (P1 if w == 1.0 else P1 * P1),
                                                    log_prod, _REC_SCALE)
                        log_p = 0.0
                    else:
                        log_p = math.log(P1)
                    _rec_add(w, s, P1, Pa1, Pb1, Px1, Paa1, Pab1, Pax1, Pbb1, Pbx1, Pxx1,
                             log_scale, cst, want_info, acc, log_p)
                    if has_spread and (spread[i, 0] != 0.0 or spread[i, 1] != 0.0
                                       or spread[i, 2] != 0.0 or spread[i, 3] != 0.0):
                        # levels n .. n + _ORDER sit in slots n .. n + _ORDER mod _RING;
                        # m_j = (n + 1) .. (n + j) y(n + j) / y(n) from the ratios
                        k0 = n % _RING
                        m1 = (n + 1.0) * L3[k0]
                        m2 = m1 * (n + 2.0) * L3[_slot(k0, 1)]
                        m3 = m2 * (n + 3.0) * L3[_slot(k0, 2)]
                        m4 = m3 * (n + 4.0) * L3[_slot(k0, 3)]
                        _spread_terms(float(n), k0, m1, m2, m3, m4, spread[i, 0],
                                      spread[i, 1], spread[i, 2], spread[i, 3], G3, I3,
                                      want_info, res)
                        _add_scaled(res, s, want_info, acc)
                j -= 1
            if anchored and j < j0:
                break
            if n == 0:
                break
        # y(n - 1) from y(n) (1) and y(n + 1) (2)
        P, Pa, Pb, Px, na, e1, E, F, invD = _rec_down(n, a, c, x, P1, Pa1, Pb1, Px1, P2, Pa2,
                                                      Pb2, Px2)
        if want_info:
            Paa = (E * Paa1 + 2.0 * e1 * Pa1 - F * Paa2 - 2.0 * x * Pa) * invD
            Pab = (E * Pab1 + e1 * (Pa1 + Pb1) - F * Pab2 - x * Pb) * invD
            Pax = (E * Pax1 + e1 * (Pa1 + Px1) - F * Pax2 - P - x * Px - na * Pa) * invD
            Pbb = (E * Pbb1 + 2.0 * e1 * Pb1 - F * Pbb2) * invD
            Pbx = (E * Pbx1 + e1 * (Pb1 + Px1) - F * Pbx2 - na * Pb) * invD
            Pxx = (E * Pxx1 + 2.0 * e1 * Px1 - F * Pxx2 - 2.0 * na * Px) * invD
        else:
            Paa = 0.0
            Pab = 0.0
            Pax = 0.0
            Pbb = 0.0
            Pbx = 0.0
            Pxx = 0.0
        P2 = P1
        Pa2 = Pa1
        Pb2 = Pb1
        Px2 = Px1
        Paa2 = Paa1
        Pab2 = Pab1
        Pax2 = Pax1
        Pbb2 = Pbb1
        Pbx2 = Pbx1
        Pxx2 = Pxx1
        P1 = P
        Pa1 = Pa
        Pb1 = Pb
        Px1 = Px
        Paa1 = Paa
        Pab1 = Pab
        Pax1 = Pax
        Pbb1 = Pbb
        Pbx1 = Pbx
        Pxx1 = Pxx
        n -= 1
        if not (P > 1.0 / _REC_SCALE and P < _REC_SCALE):
            if not (P > 0.0) or not np.isfinite(P) or n < 0:
                # (never met in the tests; a safeguard) the series instead
                held = work[:_RING]
                held[:] = -1.0
                for jj in range(j0, j1):
                    i = order[jj]
                    if weights[i] != 0.0:
                        if has_spread:
                            _add_bin_spread(float(values[i]), weights[i], spread[i, 0],
                                            spread[i, 1], spread[i, 2], spread[i, 3], s, a,
                                            b, lam, want_info, buf, out, L3, G3, I3, res,
                                            held)
                        else:
                            _add_bin(float(values[i]), weights[i], s, a, b, lam, want_info,
                                     buf, out)
                return
            f = 1.0 / P
            log_scale -= math.log(f)
            P1 *= f
            Pa1 *= f
            Pb1 *= f
            Px1 *= f
            Paa1 *= f
            Pab1 *= f
            Pax1 *= f
            Pbb1 *= f
            Pbx1 *= f
            Pxx1 *= f
            P2 *= f
            Pa2 *= f
            Pb2 *= f
            Px2 *= f
            Paa2 *= f
            Pab2 *= f
            Pax2 *= f
            Pbb2 *= f
            Pbx2 *= f
            Pxx2 *= f
            fS = math.exp(log_scale - ls_S)
    acc[0] += log_prod + math.log(prod_y)
    if mode == _NORM_P0:
        # C = y(0) / P(0), P(0) from its large-x series (P1... hold y(0) here)
        _p0_large_x(a, b, x, _p0_terms(a, b, x), want_info, buf)
        inv = 1.0 / P1
        ga = Pa1 * inv
        gb = Pb1 * inv
        gx = Px1 * inv
        acc[0] -= W * (math.log(P1) + log_scale - buf[0])
        acc[1] -= W * (ga - buf[1])
        acc[2] -= W * (gb - buf[2])
        acc[3] -= W * s * (gx - buf[3])
        if want_info:
            acc[4] -= W * (ga * ga - Paa1 * inv - buf[4])
            acc[5] -= W * (ga * gb - Pab1 * inv - buf[5])
            acc[6] -= W * s * (ga * gx - Pax1 * inv - buf[6])
            acc[7] -= W * (gb * gb - Pbb1 * inv - buf[7])
            acc[8] -= W * s * (gb * gx - Pbx1 * inv - buf[8])
            acc[9] -= W * s * s * (gx * gx - Pxx1 * inv - buf[9])
    elif by_sum:
        # C = sum of y over 0..top (the mass above is below e^-46 of P(n_max))
        inv = 1.0 / S0
        ga = Sa * inv
        gb = Sb * inv
        gx = Sx * inv
        acc[0] -= W * (math.log(S0) + ls_S)
        acc[1] -= W * ga
        acc[2] -= W * gb
        acc[3] -= W * s * gx
        if want_info:
            acc[4] -= W * (ga * ga - Saa * inv)
            acc[5] -= W * (ga * gb - Sab * inv)
            acc[6] -= W * s * (ga * gx - Sax * inv)
            acc[7] -= W * (gb * gb - Sbb * inv)
            acc[8] -= W * s * (gb * gx - Sbx * inv)
            acc[9] -= W * s * s * (gx * gx - Sxx * inv)
    for k in range(10):
        out[k] += acc[k]


@njit(cache=True, error_model="numpy")
def _rec_groups(values, weights, groups, capture, idx, a, b, lam, want_info, buf, out, spread,
                L3, G3, I3, res, work):
    """Add the bins of every capture group for which the recurrence in n is
    cheaper than the series (:func:`_rec_plan`) to ``out``; returns the
    weights with those bins zeroed (the input itself when there are none)."""
    m = values.shape[0]
    G = capture.shape[0]
    has_spread = spread.shape[0] > 0
    start = np.zeros(G + 1, np.int64)
    for i in range(m):
        start[groups[i] + 1] += 1
    for g in range(G):
        start[g + 1] += start[g]
    pos = start[:G].copy()
    byg = np.empty(m, np.int64)
    for j in range(m):
        i = idx[j]
        byg[pos[groups[i]]] = i
        pos[groups[i]] += 1
    w2 = weights
    copied = False
    for g in range(G):
        j0 = start[g]
        j1 = start[g + 1]
        if j1 - j0 < (1 if has_spread else _REC_MIN_BINS):
            continue
        x = capture[g] * lam
        if not x <= _X_STABLE:
            continue
        top, mode = _rec_plan(values, weights, byg, j0, j1, a, b, x, x <= _X_WINDOW,
                              _ORDER if has_spread else 0)
        if top < 0:
            continue
        _rec_run(values, weights, byg, j0, j1, top, mode, capture[g], a, b, lam, want_info,
                 buf, out, spread, L3, G3, I3, res, work)
        if not copied:
            w2 = weights.copy()
            copied = True
        for j in range(j0, j1):
            w2[byg[j]] = 0.0
    return w2


@njit(cache=True, error_model="numpy", borrow=True)
def _spread_runs(values, weights, groups, capture, spread, a, b, lam, want_info, buf, out, L3,
                 G3, I3, res, work, ident):
    """The bins of a histogram with the expansion in log capture (``spread``)
    that come in (capture group, value) order: each group's run of bins by the
    recurrence in n where :func:`_rec_plan` finds it cheaper, else by the
    series at n .. n + _ORDER (:func:`_add_bin_spread`), as
    :func:`_rec_groups` and :func:`_add_bins_spread` would take them, without
    regrouping the bins by value first. ``ident``: 0, 1, ..., m - 1."""
    m = values.shape[0]
    j0 = 0
    while j0 < m:
        g = groups[j0]
        j1 = j0 + 1
        while j1 < m and groups[j1] == g:
            j1 += 1
        s = capture[g]
        x = s * lam
        top = -1
        mode = _NORM_SUM
        if x <= _X_STABLE:
            top, mode = _rec_plan(values, weights, ident, j0, j1, a, b, x, x <= _X_WINDOW,
                                  _ORDER)
        if top >= 0:
            _rec_run(values, weights, ident, j0, j1, top, mode, s, a, b, lam, want_info, buf,
                     out, spread, L3, G3, I3, res, work)
        else:
            _add_bins_spread(values, weights, groups, capture, spread, j0, j1, a, b, lam,
                             want_info, buf, out, L3, G3, I3, res)
        j0 = j1


@njit(cache=True, error_model="numpy")
def histogram_eval(values, weights, groups, capture, a, b, lam, want_info, out):
    """Total log-likelihood of one gene's count histogram, its gradient with
    respect to (a, b, lam) and, if want_info, the observed information.

    ``values``, ``weights``, ``groups``: the gene's bins, in any order;
    ``capture[groups[i]]`` is the capture efficiency of bin i, so
    x = capture * lam. Writes into ``out`` (length 10): loglik, grad (3),
    info (aa, ab, al, bb, bl, ll).

    The bins are first put into the form :func:`telegraph_bins` chooses (with
    many capture groups, merged into coarse ones and expanded in log capture):
    a caller that evaluates the same histogram many times calls
    :func:`telegraph_bins` once and :func:`histogram_eval_bins` on its result.
    """
    tv, tw, tg, tc, ts = telegraph_bins(values, weights, groups, capture)
    histogram_eval_bins(tv, tw, tg, tc, ts, a, b, lam, want_info, out)


@njit(cache=True, error_model="numpy",
      unit=("Tuple((int64[::1], float64[::1], int64[::1], float64[::1], float64[:, ::1]))"
            "(int64[::1], float64[::1], int64[::1], float64[::1])"))
def telegraph_bins(values, weights, groups, capture):
    """The bins :func:`histogram_eval_bins` evaluates a gene's histogram on:
    returns (values, weights, groups, capture, spread).

    With many capture groups (at least ``_TAYLOR_MIN_GROUPS``), when merging
    the groups into coarse ones (capture within the factor :func:`_coarse_rtol`
    chooses from the gene's largest count and number of cells)
    divides the bins or the groups by ``_TAYLOR_MIN_FACTOR`` or more, the
    merged bins with each one's sums of (u - u_G)^j (``spread``, (m, _ORDER)):
    the law is then evaluated at the coarse groups only and each bin's
    log-likelihood expanded to fourth order in log capture about its coarse
    group's value (docs/maths.md, "Fitting", *The expansion in log capture*),
    so the cost follows the coarse bins. Otherwise the bins as given, with an
    empty ``spread`` (every group evaluated at its own capture). The choice
    depends on the data alone, never on the parameters, so a fit makes it once
    per gene.
    """
    m = values.shape[0]
    if capture.shape[0] >= _TAYLOR_MIN_GROUPS and m > 0:
        k, vc, wc, gc, cc, sc = _merge_capture(values, weights, groups, capture)
        # worth it when the bins halve (the series' cost follows the bins) or the
        # groups do (the recurrence's follows the groups: each runs from above
        # its largest count)
        if k > 0 and (k * _TAYLOR_MIN_FACTOR <= m
                      or cc.shape[0] * _TAYLOR_MIN_FACTOR <= capture.shape[0]):
            return vc[:k], wc[:k], gc[:k], cc, sc[:k]
    return values, weights, groups, capture, np.empty((0, _ORDER))


@njit(cache=True, error_model="numpy")
def exact_histogram_eval(values, weights, groups, capture, a, b, lam, want_info, out):
    """:func:`histogram_eval` with every capture group evaluated at its own
    capture (no expansion in log capture): the exact log-likelihood of the
    histogram."""
    histogram_eval_bins(values, weights, groups, capture, np.empty((0, _ORDER)), a, b, lam,
                        want_info, out)


@njit(cache=True, error_model="numpy")
def _coarse_capture(capture, rtol):
    """Coarse groups of the capture values: cells of width log(1 + rtol)
    in u = log capture from the smallest value (no sort), the empty ones
    dropped; each coarse group's value is the geometric middle of its
    members' range (every |u - u_G| <= log(1 + rtol) / 2). Returns (coarse
    group of each value, the coarse values, u - u_G of each value)."""
    G = capture.shape[0]
    width = math.log(1.0 + rtol)
    u = np.empty(G)
    u0 = math.inf
    for g in range(G):
        u[g] = math.log(capture[g])
        u0 = min(u0, u[g])
    cell = np.empty(G, np.int64)
    n_cells = 0
    for g in range(G):
        cell[g] = int((u[g] - u0) / width)
        n_cells = max(n_cells, cell[g] + 1)
    lo = np.full(n_cells, math.inf)
    hi = np.full(n_cells, -math.inf)
    for g in range(G):
        lo[cell[g]] = min(lo[cell[g]], u[g])
        hi[cell[g]] = max(hi[cell[g]], u[g])
    renum = np.empty(n_cells, np.int64)
    mid = np.empty(n_cells)   # u_G of each occupied cell
    k = 0
    for q in range(n_cells):
        if lo[q] <= hi[q]:
            renum[q] = k
            mid[q] = 0.5 * (lo[q] + hi[q])
            k += 1
    cc = np.empty(k)
    for q in range(n_cells):
        if lo[q] <= hi[q]:
            cc[renum[q]] = math.exp(mid[q])
    coarse_of = np.empty(G, np.int64)
    du = np.empty(G)
    for g in range(G):
        coarse_of[g] = renum[cell[g]]
        du[g] = u[g] - mid[cell[g]]
    return coarse_of, cc, du


@njit(cache=True, error_model="numpy")
def _coarse_rtol(v_max, n_cells):
    """The relative width 1 + rtol of the coarse capture groups of a gene with
    largest count ``v_max`` and ``n_cells`` cells (docs/maths.md, "Fitting",
    *The expansion in log capture*): _TAYLOR_RTOL above a count of
    _ORDER4_MAX_N; else w = log(1 + _TAYLOR_RTOL_WIDE), and between the numbers
    of cells N of _TAYLOR_WIDE_CELLS the w that holds N w^5 at its value at the
    upper one (the expansion's error is a sum over cells of terms of order w^5),
    at most log(1 + _TAYLOR_RTOL_MAX). Below the lower one the fine capture
    groups' own error is small (a few cells each), and the expansion's would
    dominate it."""
    if v_max > _ORDER4_MAX_N:
        return _TAYLOR_RTOL
    w = math.log1p(_TAYLOR_RTOL_WIDE)
    lo, hi = _TAYLOR_WIDE_CELLS
    if lo <= n_cells < hi:
        w = min(w * (hi / n_cells) ** 0.2, math.log1p(_TAYLOR_RTOL_MAX))
    return math.expm1(w)


@njit(cache=True, error_model="numpy")
def _merge_capture(values, weights, groups, capture):
    """One gene's bins merged into the coarse capture groups of
    :func:`_coarse_capture`, with each coarse bin's sums of (u_f - u_G)^j,
    j = 1 .. _ORDER, over its cells (u = log capture): returns (number of coarse
    bins, values, weights, groups, the coarse capture values, the sums), the
    bins ordered by (coarse group, value): :func:`histogram_eval_bins` then
    evaluates each count of a coarse group once (the expansion needs the law
    at n .. n + _ORDER). The coarse groups are within a factor 1 + rtol of
    :func:`_coarse_rtol` (by the gene's largest count: whether the
    fourth-order term applies to all its bins; and by its number of cells): a
    choice by the data alone. Bins that come ordered by value
    (as :func:`telegraph.kernels.models.sort_bins` leaves them) are put in
    that order by a counting sort on the coarse group, O(bins); others by a
    stable sort of the (coarse group, value) keys. Either way a coarse bin sums
    its cells in the order they come in."""
    m = values.shape[0]
    by_value = True
    v_max = 0
    n_cells = 0.0
    for i in range(m):
        v_max = max(v_max, values[i])
        n_cells += weights[i]
        if i > 0 and values[i] < values[i - 1]:
            by_value = False
    coarse_of, cc, du = _coarse_capture(capture, _coarse_rtol(v_max, n_cells))
    n_coarse = cc.shape[0]
    if by_value:
        # stable counting sort on the coarse group: (coarse group, value) order
        start = np.zeros(n_coarse + 1, np.int64)
        for i in range(m):
            start[coarse_of[groups[i]] + 1] += 1
        for q in range(n_coarse):
            start[q + 1] += start[q]
        order = np.empty(m, np.int64)
        for i in range(m):
            q = coarse_of[groups[i]]
            order[start[q]] = i
            start[q] += 1
    else:
        key = np.empty(m, np.int64)
        for i in range(m):
            key[i] = coarse_of[groups[i]] * (v_max + 1) + values[i]
        order = stable_argsort(key)
    vc = np.empty(m, np.int64)
    wc = np.empty(m)
    gc = np.empty(m, np.int64)
    sc = np.zeros((m, _ORDER))
    k = 0
    v_last = -1
    g_last = -1
    for j in range(m):
        i = order[j]
        w = weights[i]
        if w == 0.0:
            continue
        q = coarse_of[groups[i]]
        if k == 0 or values[i] != v_last or q != g_last:
            vc[k] = values[i]
            gc[k] = q
            wc[k] = 0.0
            k += 1
            v_last = values[i]
            g_last = q
        d = du[groups[i]]
        d2 = d * d
        wc[k - 1] += w
        sc[k - 1, 0] += w * d
        sc[k - 1, 1] += w * d2
        sc[k - 1, 2] += w * d2 * d
        sc[k - 1, 3] += w * d2 * d2
    return k, vc, wc, gc, cc, sc


@njit(cache=True, error_model="numpy",
      unit=("void(int64[::1], float64[::1], int64[::1], float64[::1], float64[:, ::1], "
            "float64, float64, float64, boolean, float64[::1])"))
def histogram_eval_bins(values, weights, groups, capture, spread, a, b, lam, want_info, out):
    """:func:`histogram_eval` of bins in the form :func:`telegraph_bins` returns;
    ``spread``: empty (every group at its own capture), or (m, _ORDER), each
    bin's sums of (u_c - u_g)^j, j = 1 .. _ORDER, over its cells, for the
    expansion in log capture about the group's value.

    Bins of one count from several capture groups share their per-k tables
    (see the comment above ``_X_GROUPED``); this is fastest when the bins
    come sorted by value (else they are sorted here). A histogram of a single
    group is summed bin by bin with ``pb_eval`` or by the recurrence in n; with
    a spread, every bin outside the recurrence takes the series at n .. n +
    _ORDER (:func:`_add_bin_spread`), not the shared tables.
    """
    for j in range(10):
        out[j] = 0.0
    m = values.shape[0]
    # pb_eval's buffer, the expansion's scratch, the recurrence's (one allocation)
    scratch = np.zeros(41 + 13 * _RING)
    buf = scratch[:11]
    has_spread = spread.shape[0] > 0
    L3 = scratch[11:11 + _RING]
    G3 = scratch[11 + _RING:11 + 4 * _RING].reshape((_RING, 3))
    I3 = scratch[11 + 4 * _RING:11 + 13 * _RING].reshape((_RING, 3, 3))
    res = scratch[11 + 13 * _RING:21 + 13 * _RING]
    work = scratch[21 + 13 * _RING:41 + 13 * _RING]
    mixed = False
    ordered = True
    by_group = True   # (group, value) order, as telegraph_bins leaves merged bins
    for i in range(1, m):
        if groups[i] != groups[0]:
            mixed = True
        if values[i] < values[i - 1]:
            ordered = False
            if groups[i] == groups[i - 1]:
                by_group = False
        if groups[i] < groups[i - 1]:
            by_group = False
    if not mixed and m > 0 and b <= _B_STABLE:
        s0 = capture[groups[0]]
        x0 = s0 * lam
        if x0 <= _X_STABLE:
            order = np.arange(m) if ordered else stable_argsort(values)
            top, mode = _rec_plan(values, weights, order, 0, m, a, b, x0, False,
                                  _ORDER if has_spread else 0)
            if top >= 0:
                _rec_run(values, weights, order, 0, m, top, mode, s0, a, b, lam, want_info,
                         buf, out, spread, L3, G3, I3, res, work)
                return
    if not mixed or b > _B_STABLE:
        # (the shared tables take lgamma differences plainly: beyond the fits'
        # box in b, every bin goes through pb_eval, which does not)
        if has_spread:
            _add_bins_spread(values, weights, groups, capture, spread, 0, m, a, b, lam,
                             want_info, buf, out, L3, G3, I3, res)
            return
        for i in range(m):
            if weights[i] != 0.0:
                _add_bin(float(values[i]), weights[i], capture[groups[i]], a, b, lam,
                         want_info, buf, out)
        return
    if has_spread and by_group:
        # each capture group's run of bins by the recurrence or the series
        _spread_runs(values, weights, groups, capture, spread, a, b, lam, want_info, buf, out,
                     L3, G3, I3, res, work, np.arange(m))
        return
    if ordered:
        idx = np.arange(m)
    else:
        idx = stable_argsort(values)
    # capture groups with many counts: the recurrence in n per group; their
    # bins are then left out of the shared-table sums below
    weights = _rec_groups(values, weights, groups, capture, idx, a, b, lam, want_info, buf, out,
                          spread, L3, G3, I3, res, work)
    if has_spread:
        # the other bins (those of the recurrence now weigh 0): the series at n
        # .. n + _ORDER
        _add_bins_spread(values, weights, groups, capture, spread, 0, m, a, b, lam, want_info,
                         buf, out, L3, G3, I3, res)
        return
    # table length: the longest k-range any bin with x <= _X_WINDOW can need
    x_max = 0.0
    for i in range(m):
        x_max = max(x_max, capture[groups[i]] * lam)
    x_max = min(x_max, _X_WINDOW)
    tab = np.empty((11, min(_K_CAP, int(x_max + 20.0 * math.sqrt(x_max) + 64.0))))
    lg_a = math.lgamma(a)
    lg_b = math.lgamma(b)
    lg_ab = math.lgamma(a + b)
    j0 = 0
    while j0 < m:
        v0 = values[idx[j0]]
        j1 = j0 + 1
        while j1 < m and values[idx[j1]] == v0:
            j1 += 1
        if j1 - j0 >= _MIN_GROUPED:
            _grouped_run(float(v0), idx, j0, j1, weights, groups, capture, a, b, lam, lg_a,
                         lg_b, lg_ab, want_info, tab, buf, out)
        else:
            for j in range(j0, j1):
                i = idx[j]
                if weights[i] != 0.0:
                    _add_bin(float(v0), weights[i], capture[groups[i]], a, b, lam,
                             want_info, buf, out)
        j0 = j1


# ---------------------------------------------------------------------------
# A run of consecutive counts at one capture value: the pmf and its gradient at
# every count n0 <= n < n1 (the expected histogram of a goodness-of-fit test), by
# the same downward recurrence in n, normalised by exact series values (pb_eval)
# at the top of every stretch of _PMF_STRIDE counts: O(1) per count instead of
# the O(sqrt x) terms of the series.

_PMF_STRIDE = 64        # counts per anchor (the rounding of the recurrence over a stretch: < 1e-10)
_PMF_MIN_COUNTS = 8     # shorter runs: the series per count


@njit(cache=True, error_model="numpy")
def pb_pmf_run(n0, n1, a, b, x, p, d):
    """P(n) and x-scaled log-derivatives for the counts n0 <= n < n1 at one
    (a, b, x): ``p[j]`` = P(n0 + j) and ``d[j]`` = P (a d/da, b d/db,
    x d/dx) log P at n0 + j, the quantities ``telegraph.kernels.gof.law_pmf``
    returns for the Poisson-Beta law. Returns False, leaving ``p`` and ``d``
    unspecified, where the series per count is as cheap (small x, short
    runs, a long warm-up) or the recurrence loses its footing; the caller
    then evaluates count by count."""
    m = n1 - n0
    if m < _PMF_MIN_COUNTS or not (x >= _REC_MIN_X) or not (x <= _X_STABLE) or b > _B_STABLE:
        return False
    per = 4.0 + _REC_SERIES_COST * math.sqrt(x + 1.0)
    n_anch = (m + _PMF_STRIDE - 1) // _PMF_STRIDE
    budget = m * per - n_anch * per - m
    if budget <= 0.0:
        return False
    top = _rec_start(n1 - 1, a, b, x, False, min(float(_REC_MAX_WARM), budget), np.inf)[0]
    if top < 0:
        return False
    c = a + b
    buf = np.zeros(11)
    # y(top + 1) = 0, y(top) = 1 (scaled by e^log_scale); first derivatives in a, b, x
    P2 = 0.0
    Pa2 = 0.0
    Pb2 = 0.0
    Px2 = 0.0
    P1 = 1.0
    Pa1 = 0.0
    Pb1 = 0.0
    Px1 = 0.0
    log_scale = 0.0
    cst0 = 0.0
    csta = 0.0
    cstb = 0.0
    cstx = 0.0
    fac = 1.0
    n = top
    while True:
        if n < n1:
            j = n - n0
            if (n1 - 1 - n) % _PMF_STRIDE == 0:
                # an exact value fixes the normalisation C for this stretch
                pb_eval(float(n), a, b, x, False, buf)
                if not np.isfinite(buf[0]):
                    return False
                cst0 = math.log(P1) + log_scale - buf[0]
                csta = Pa1 / P1 - buf[1]
                cstb = Pb1 / P1 - buf[2]
                cstx = Px1 / P1 - buf[3]
                fac = math.exp(log_scale - cst0)
            # P(n) = y(n) e^(log_scale - cst0): one multiplication per count (the factor
            # changes only at an anchor or a rescaling), unless the factor is below the
            # normal range (P far in a tail), where the product would lose digits
            if fac > 1e-290:
                pn = P1 * fac
            else:
                pn = math.exp(math.log(P1) + log_scale - cst0)
            p[j] = pn
            inv = 1.0 / P1
            d[j, 0] = pn * a * (Pa1 * inv - csta)
            d[j, 1] = pn * b * (Pb1 * inv - cstb)
            d[j, 2] = pn * x * (Px1 * inv - cstx)
            if n == n0:
                return True
        # y(n - 1) from y(n) (1) and y(n + 1) (2)
        P, Pa, Pb, Px, _na, _e1, _E, _F, _invD = _rec_down(n, a, c, x, P1, Pa1, Pb1, Px1, P2,
                                                           Pa2, Pb2, Px2)
        P2 = P1
        Pa2 = Pa1
        Pb2 = Pb1
        Px2 = Px1
        P1 = P
        Pa1 = Pa
        Pb1 = Pb
        Px1 = Px
        n -= 1
        if not (P > 1.0 / _REC_SCALE and P < _REC_SCALE):
            if not (P > 0.0) or not np.isfinite(P):
                return False
            f = 1.0 / P
            log_scale -= math.log(f)
            P1 *= f
            Pa1 *= f
            Pb1 *= f
            Px1 *= f
            P2 *= f
            Pa2 *= f
            Pb2 *= f
            Px2 *= f
            fac = math.exp(log_scale - cst0)
