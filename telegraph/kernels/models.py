"""The likelihoods of one gene's count histogram, in Numba.

One gene's data is its count histogram: bins (value, capture group, weight),
a bin of value n in capture group g holding the cells whose count is n and
whose capture efficiency is ``capture[g]``; the evaluators take it as a
*gene* (:func:`gene_bins`: the bins, and the bins the telegraph law is
evaluated on). This module evaluates the log-likelihood of three laws on a
gene, with its gradient and observed information in log coordinates theta
(docs/maths.md, "The stationary law" and "Fisher's and Louis' identities"):

- MODEL_TELEGRAPH, the stationary telegraph (Poisson-Beta) law: theta =
  (log a, log b, log lam), a = k_on/k_deg, b = k_off/k_deg, lam =
  k_syn/k_deg; the sums over bins are
  :func:`telegraph.kernels.poisson_beta.histogram_eval_bins`;
- MODEL_NEGBINOM, the negative binomial, its bursty limit (b, lam -> inf at
  fixed burst size beta = lam/b): theta = (log a, log beta);
- MODEL_ZIP, the zero-inflated Poisson, its slow-switching limit (a, b -> 0
  at fixed fraction on f): theta = (logit f, log lam).

The fourth limit, the Poisson law (a, b -> inf), has a closed-form maximum
(:func:`poisson_fit`); the capture-corrected moments (:func:`moments`) give
starting values. :func:`sort_bins` orders a gene's bins the way the
evaluators share work best.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit
from .poisson_beta import histogram_eval_bins, telegraph_bins
from .sorting import stable_argsort
from .special import digamma_shift, fold_log, lgamma_diff, trigamma_shift

__all__ = ["MODEL_TELEGRAPH", "MODEL_NEGBINOM", "MODEL_ZIP", "GENE_TYPE", "gene_bins",
           "telegraph_eval", "evaluate", "moments", "poisson_fit", "sort_bins"]

# the laws evaluate() dispatches on
MODEL_TELEGRAPH = 0
MODEL_NEGBINOM = 1
MODEL_ZIP = 2

#: the limit models' count terms (lgamma, digamma and trigamma differences) at a count
#: at most this many above the last bin's are continued from that bin's, one
#: logarithm and ~2 divisions per count between (a direct evaluation costs about as
#: much as 30-40 such steps)
RUN_GAP = 32
#: ... with the running product of the ratios folded into its logarithm before it
#: leaves [1/RUN_SCALE, RUN_SCALE] (each ratio is at most e^30 + 1, the box's largest a)
RUN_SCALE = 1e200

#: the Numba type of a gene as :func:`gene_bins` returns it (for the declared
#: signatures of the units that take one)
GENE_TYPE = ("Tuple((int64[::1], float64[::1], int64[::1], float64[::1], int64[::1], "
             "float64[::1], int64[::1], float64[::1], float64[:, ::1]))")


#: the signature of a limit model's evaluation (a unit, kernels/_jit.py)
_LIMIT_EVAL_TYPE = ("float64(int64[::1], float64[::1], int64[::1], float64[::1], float64[::1], "
                    "boolean, float64[::1], float64[:, ::1])")


@njit(cache=True, error_model="numpy")
def gene_bins(values, weights, groups, capture):
    """One gene as the evaluators take it: the tuple (values, weights, groups,
    capture, tv, tw, tg, tc, spread) of its bins followed by the bins the
    telegraph law is evaluated on
    (:func:`telegraph.kernels.poisson_beta.telegraph_bins`: with many capture
    groups, merged into coarse ones and expanded in log capture). The choice
    depends on the data alone, so a fit makes it once per gene rather than at
    every evaluation; the limit models, the moments and the goodness of fit
    use the bins as given."""
    tv, tw, tg, tc, spread = telegraph_bins(values, weights, groups, capture)
    return values, weights, groups, capture, tv, tw, tg, tc, spread


@njit(cache=True, error_model="numpy")
def _group_log_rates(capture, rate, n_bins):
    """log(s rate) for each capture group s when the groups are fewer than the
    ``n_bins`` bins (the evaluators then look it up per bin), else an empty
    array (they compute it per bin)."""
    n_groups = capture.shape[0]
    out = np.empty(n_groups if n_groups < n_bins else 0)
    for q in range(out.shape[0]):
        out[q] = math.log(capture[q] * rate)
    return out


@njit(cache=True, error_model="numpy", unit=_LIMIT_EVAL_TYPE)
def _negbinom_eval(values, weights, groups, capture, theta, want_info, g, H):
    """Negative binomial at theta = (log a, log beta): mean s a beta, shape a.

    The terms of a count alone (log-gamma, digamma and trigamma differences
    of a + n and a) are computed once per run of equal counts, and for a count
    at most RUN_GAP above the last one (bins taken in ascending order)
    continued from the last count's: the digamma and trigamma differences by
    the same sums that :func:`telegraph.kernels.special.digamma_shift` adds
    up, the log-gamma difference by the log of the product of the ratios
    (a + j) / (j + 1) between (one logarithm per count, not two log-gamma,
    two digamma and two trigamma values);
    the terms of a capture group alone (log and log1p of s beta) once per
    group when the groups are fewer than the bins: with bins ordered by value
    (:func:`sort_bins`) a histogram of many capture groups costs a few
    multiplications and divisions per bin."""
    a = math.exp(theta[0])
    beta = math.exp(theta[1])
    ll = 0.0
    g[0] = 0.0
    g[1] = 0.0
    haa = 0.0
    hab = 0.0
    hbb = 0.0
    last = 0          # the count whose terms are in lgc, psi_n, tri_n (0: all zero)
    lgc = 0.0         # lgamma(n + a) - lgamma(a) - lgamma(n + 1)
    psi_n = 0.0       # psi(a + n) - psi(a)
    tri_n = 0.0       # psi'(a) - psi'(a + n)
    # fewer capture groups than bins: log(s beta) and log1p(s beta) once per group
    log_sb = _group_log_rates(capture, beta, values.shape[0])
    per_group = log_sb.shape[0] > 0
    log1p_sb = np.empty(log_sb.shape[0])
    for q in range(log1p_sb.shape[0]):
        log1p_sb[q] = math.log1p(capture[q] * beta)
    for i in range(values.shape[0]):
        w = weights[i]
        k = values[i]
        n = float(k)
        if k != last:
            if last < k <= last + RUN_GAP:
                # the next counts up: continue the sums from the last count's
                r = 1.0
                for j in range(last, k):
                    aj = a + j
                    r, lgc = fold_log(r * (aj / (j + 1.0)), lgc, RUN_SCALE)
                    inv = 1.0 / aj
                    psi_n += inv
                    if want_info:
                        tri_n += inv * inv
                lgc += math.log(r)
            else:
                # (lgamma(n + a) - lgamma(a) without the cancellation of two huge
                # terms where a is large, towards the Poisson limit)
                lgc = lgamma_diff(a, n) - math.lgamma(n + 1.0)
                psi_n = digamma_shift(a, n)
                if want_info:
                    tri_n = trigamma_shift(a, n)
            last = k
        q = groups[i]
        s = capture[q]
        sb = s * beta
        l1 = log1p_sb[q] if per_group else math.log1p(sb)
        t = 0.0
        if n > 0:
            t = n * (log_sb[q] if per_group else math.log(sb))
        ll += w * (lgc + t - (n + a) * l1)
        dpa = psi_n - l1
        dbeta = n / beta - (n + a) * s / (1.0 + sb)
        g[0] += w * a * dpa
        g[1] += w * beta * dbeta
        if want_info:
            # d2/da2, d2/da dbeta, d2/dbeta2 in natural parameters (negated later)
            haa += w * (-tri_n)
            hab += w * (-s / (1.0 + sb))
            hbb += w * (-n / (beta * beta) + (n + a) * s * s / ((1.0 + sb) * (1.0 + sb)))
    if want_info:
        # observed information in log parameters
        H[0, 0] = -(a * a * haa) - g[0]
        H[0, 1] = -(a * beta * hab)
        H[1, 0] = H[0, 1]
        H[1, 1] = -(beta * beta * hbb) - g[1]
    return ll


@njit(cache=True, error_model="numpy", unit=_LIMIT_EVAL_TYPE)
def _zip_eval(values, weights, groups, capture, theta, want_info, g, H):
    """Zero-inflated Poisson at theta = (logit f, log lam): 0 with probability
    1 - f, else Poisson(s lam). lgamma(n + 1) is computed once per distinct
    count (bins ordered by value share it), at a count at most RUN_GAP above
    the last one continued from it by the log of the product of the counts
    between; log(s lam) once per capture group when the groups are fewer
    than the bins."""
    f = 1.0 / (1.0 + math.exp(-theta[0]))
    lam = math.exp(theta[1])
    log_f = math.log(f)
    ll = 0.0
    g0 = 0.0
    g1 = 0.0
    h00 = 0.0
    h01 = 0.0
    h11 = 0.0
    last = 0
    lg_n = 0.0        # lgamma(last + 1)
    log_mu = _group_log_rates(capture, lam, values.shape[0])
    per_group = log_mu.shape[0] > 0
    for i in range(values.shape[0]):
        w = weights[i]
        k = values[i]
        q = groups[i]
        s = capture[q]
        mu = s * lam
        if k > 0:
            if k != last:
                if last < k <= last + RUN_GAP:
                    r = 1.0
                    for j in range(last + 1, k + 1):
                        r, lg_n = fold_log(r * j, lg_n, RUN_SCALE)
                    lg_n += math.log(r)
                else:
                    lg_n = math.lgamma(k + 1.0)
                last = k
            n = float(k)
            ll += w * (log_f + n * (log_mu[q] if per_group else math.log(mu)) - mu - lg_n)
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


@njit(cache=True, error_model="numpy", borrow=True)
def telegraph_eval(gene, theta, want_info, g, H, buf):
    """Telegraph law at theta = (log a, log b, log lam) on a gene
    (:func:`gene_bins`); ``buf`` (11 floats) is scratch for
    :func:`telegraph.kernels.poisson_beta.histogram_eval_bins`."""
    a = math.exp(theta[0])
    b = math.exp(theta[1])
    lam = math.exp(theta[2])
    histogram_eval_bins(gene[4], gene[5], gene[6], gene[7], gene[8], a, b, lam, want_info, buf)
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


@njit(cache=True, error_model="numpy", inline="always")
def evaluate(model, gene, theta, want_info, g, H, buf):
    """Log-likelihood of ``model`` at theta on a gene (:func:`gene_bins`); the
    gradient in theta goes to ``g`` and, when ``want_info``, the observed
    information to ``H`` (the limit models use the leading 2 coordinates of
    theta, g and H)."""
    if model == MODEL_TELEGRAPH:
        return telegraph_eval(gene, theta, want_info, g, H, buf)
    elif model == MODEL_NEGBINOM:
        return _negbinom_eval(gene[0], gene[1], gene[2], gene[3], theta, want_info, g, H)
    return _zip_eval(gene[0], gene[1], gene[2], gene[3], theta, want_info, g, H)


@njit(cache=True, error_model="numpy")
def moments(values, weights, groups, capture):
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
def poisson_fit(values, weights, groups, capture):
    """Maximum of the Poisson law (mean s mu per cell): returns (mu, loglik)."""
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


@njit(cache=True, error_model="numpy",
      unit=("Tuple((int64[::1], float64[::1], int64[::1]))"
            "(int64[::1], float64[::1], int64[::1])"))
def sort_bins(values, weights, groups):
    """Copies of one gene's bins ordered by (value, group): histogram_eval
    shares the per-count work across capture groups when equal counts are
    adjacent, and the fitter evaluates the same bins hundreds of times."""
    n = values.shape[0]
    top = 0
    for i in range(n):   # (loops, not groups.max() and values[o]: less to compile)
        top = max(top, groups[i])
    key = np.empty(n, np.int64)
    for i in range(n):
        key[i] = values[i] * (top + 1) + groups[i]
    o = stable_argsort(key)
    v, w, g = np.empty(n, np.int64), np.empty(n, np.float64), np.empty(n, np.int64)
    for i in range(n):
        v[i], w[i], g[i] = values[o[i]], weights[o[i]], groups[o[i]]
    return v, w, g
