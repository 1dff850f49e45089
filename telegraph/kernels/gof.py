"""Goodness of fit of the law a gene's fit reports, in Numba.

:func:`pearson_gof` compares one gene's count histogram with the law its fit
reports -- the Poisson-Beta (telegraph) law, or the limit law of the regime:
negative binomial, zero-inflated Poisson or Poisson (docs/maths.md, "Limit
regimes") -- by Pearson's chi-square over classes of adjacent counts that each
expect at least ``min_expected`` cells, and returns the Fisher information of
the pooled (grouped) counts. The statistic is not chi2(K-1-p) when the p
parameters are estimated from the ungrouped counts: its null law involves both
informations (Chernoff and Lehmann 1954), and the caller calibrates the
p-value from them (docs/maths.md, "Goodness of fit";
:func:`telegraph.fitting.gof_pvalues`).

The classes are built on a grid of the count axis whose cells are single
counts up to about 10^4 and, beyond, runs of 8k counts (k odd, k <= sqrt(n)/32,
a length on which every mixed-Poisson law is smooth) whose expected mass is
the midpoint rule over 8 of their counts (relative error below 1e-4). The
grid covers each capture group's law to 12 standard deviations on both sides
of its mean (each group's law is evaluated to 40, and the Poisson-Beta law no
further than where the Poisson law at the group's rate, which bounds its upper
tail, has no mass left: :func:`_pb_count_cap`); counts outside it join the
last class. Work and memory thus
grow with the square root of the counts' scale, not with the largest count. The
Poisson-Beta law's single-count cells come, per capture group, from the
recurrence in the count (:func:`telegraph.kernels.poisson_beta.pb_pmf_run`,
O(1) per count) rather than the series per count (O(sqrt x) terms); at small
rates, where the recurrence does not serve, from one power series per count
over the mixture of the groups' Poisson weights, whatever the number of groups
(:func:`_pb_small_rate_singles`). The limit
laws are tabulated count by count across the groups
(:func:`_limit_law_singles`). No class forms once the cells not yet expected
are fewer than ``min_expected`` (the rest joins the last class, whose
expectation is the total minus the others'), so the tables stop there: the
limit laws at that count, the Poisson-Beta law first at a bound on every
group's tail (:func:`_pb_tail_count`), beyond it only where needed.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit
from .models import MODEL_NEGBINOM, MODEL_TELEGRAPH, MODEL_ZIP
from .poisson_beta import _REC_MIN_X, pb_eval, pb_pmf_run
from .special import digamma_shift

__all__ = ["LAW_POISSON_BETA", "LAW_NEGBINOM", "LAW_ZIP", "LAW_POISSON", "N_PARAMS",
           "pearson_gof", "law_moments", "law_pmf"]

# the laws tested, and their parameters ``par`` (natural scale) and log coordinates
LAW_POISSON_BETA = MODEL_TELEGRAPH   # par (a, b, lam); theta (log a, log b, log lam)
LAW_NEGBINOM = MODEL_NEGBINOM        # par (a, beta);   theta (log a, log beta)
LAW_ZIP = MODEL_ZIP                  # par (f, lam);    theta (logit f, log lam)
LAW_POISSON = 3                      # par (mu,);       theta (log mu,)
#: number of parameters of each law, indexed by LAW_*
N_PARAMS = (3, 2, 2, 1)

_Z = 12.0           # the grid covers mean +- _Z standard deviations of each group's law
_Z_EVAL = 40.0      # a group's law is evaluated to _Z_EVAL standard deviations
#: ... and a Poisson-Beta law no further than _Z_CAP standard deviations (plus 12) of the
#: Poisson law at its rate x, which bounds its upper tail (x p <= x): the Poisson law's mass
#: beyond x + 15 sqrt(x) + 12 is below 1e-31 at every x (its largest, 5e-32, near x = 0.8)
_Z_CAP = 15.0
_NODES = 8          # counts sampled per wide grid cell
_MAX_CELLS = 4_000_000


@njit(cache=True, error_model="numpy")
def law_moments(law, par, s):
    """Mean and variance of the law at capture s."""
    if law == LAW_POISSON_BETA:
        a, b, x = par[0], par[1], s * par[2]
        m = x * a / (a + b)
        return m, m + x * x * a * b / ((a + b) * (a + b) * (a + b + 1.0))
    elif law == LAW_NEGBINOM:
        m = par[0] * s * par[1]
        return m, m * (1.0 + s * par[1])
    elif law == LAW_ZIP:
        f, x = par[0], s * par[1]
        return f * x, f * x + f * (1.0 - f) * x * x
    m = s * par[0]
    return m, m


@njit(cache=True, error_model="numpy")
def law_pmf(law, n, par, s, d, buf):
    """P(n) of the law at capture s (n a whole number, as a float); its
    derivatives in the law's log coordinates go to ``d``."""
    if law == LAW_POISSON_BETA:
        a, b, x = par[0], par[1], s * par[2]
        pb_eval(n, a, b, x, False, buf)
        p = math.exp(buf[0])
        d[0] = p * a * buf[1]
        d[1] = p * b * buf[2]
        d[2] = p * x * buf[3]
        return p
    elif law == LAW_NEGBINOM:
        a, sb = par[0], s * par[1]
        l1 = math.log1p(sb)
        lp = (math.lgamma(n + a) - math.lgamma(a) - math.lgamma(n + 1.0)
              + (n * math.log(sb) if n > 0 else 0.0) - (n + a) * l1)
        p = math.exp(lp)
        d[0] = p * a * (digamma_shift(a, n) - l1)
        d[1] = p * (n - (n + a) * sb / (1.0 + sb))
        d[2] = 0.0
        return p
    elif law == LAW_ZIP:
        f, x = par[0], s * par[1]
        if n == 0:
            e = math.exp(-x)
            d[0] = f * (1.0 - f) * (e - 1.0)
            d[1] = -f * e * x
            d[2] = 0.0
            return 1.0 - f + f * e
        p = f * math.exp(n * math.log(x) - x - math.lgamma(n + 1.0))
        d[0] = p * (1.0 - f)
        d[1] = p * (n - x)
        d[2] = 0.0
        return p
    x = s * par[0]
    p = math.exp((n * math.log(x) if n > 0 else 0.0) - x - math.lgamma(n + 1.0))
    d[0] = p * (n - x)
    d[1] = 0.0
    d[2] = 0.0
    return p


@njit(cache=True, error_model="numpy")
def _half_width(u):
    """k of the grid cell that starts at count u: the cell holds 8k counts
    (k odd >= 3), or the single count u when k = 1."""
    k = int(math.sqrt(u) / 32.0)
    if k < 3:
        return 1
    return k if k % 2 == 1 else k - 1


@njit(cache=True, error_model="numpy")
def _cell_length(u):
    k = _half_width(u)
    return 1 if k == 1 else _NODES * k


@njit(cache=True, error_model="numpy", inline="always")
def _pb_count_cap(x):
    """The largest count at which the Poisson-Beta law at rate x is evaluated:
    the Poisson law at rate x, which bounds the mixture's upper tail, has no
    mass that matters beyond x + _Z_CAP sqrt(x) + 12."""
    return math.ceil(x + _Z_CAP * math.sqrt(x) + 12.0)


#: :func:`_limit_law_singles` carries each group's probability from one count to the next
#: by its ratio, and takes it afresh from its closed form at every _RUN-th count (and where
#: the carried value has underflowed): the carried rounding stays below _RUN ulps
_RUN = 32


@njit(cache=True, error_model="numpy")
def _limit_law_singles(law, par, capture, gw, glo, ghi, lo, n_single, expct, dexp, rest):
    """Add to ``expct[j]`` and ``dexp[j]`` (j < n_single: the single count lo +
    j) each group's expected cells of a limit law (negative binomial, ZIP or
    Poisson: what :func:`law_pmf` returns, times the group's weight ``gw``)
    where glo <= count <= ghi, and return the number of counts tabulated: all
    n_single, or fewer where the cells not yet expected fall below ``rest``
    (no class of :func:`pearson_gof` forms beyond). Count by count across the
    groups: the terms of a count alone (the negative binomial's digamma
    difference, carried along the counts by psi(a + u + 1) = psi(a + u) + 1 /
    (a + u)) once per count,
    those of a group alone once per group, and each group's probability
    carried from the count before by its ratio, (u - 1 + a) s beta / (u (1 + s
    beta)) or x / u (two multiplications per group and count), taken afresh
    from law_pmf's closed form at every _RUN-th count and where a group's law
    starts or has underflowed (within a few ulps of law_pmf's value)."""
    G = capture.shape[0]
    sb = np.zeros(G)     # NB: s beta;            ZIP / Poisson: the rate x = s * par
    l1 = np.zeros(G)     # NB: log(1 + s beta)
    lr = np.zeros(G)     # NB: log(s beta);       ZIP / Poisson: log x
    ex = np.zeros(G)     # ZIP: exp(-x)
    q = np.zeros(G)      # NB: s beta / (1 + s beta); ZIP / Poisson: x (the ratio's group part)
    carried = np.zeros(G)    # each group's probability at the count before (0: none)
    for g in range(G):
        if gw[g] == 0.0:
            continue
        if law == LAW_NEGBINOM:
            sb[g] = capture[g] * par[1]
            l1[g] = math.log1p(sb[g])
            lr[g] = math.log(sb[g])
            q[g] = sb[g] / (1.0 + sb[g])
        else:
            sb[g] = capture[g] * par[0 if law == LAW_POISSON else 1]
            lr[g] = math.log(sb[g])
            ex[g] = math.exp(-sb[g])
            q[g] = sb[g]
    a = par[0]
    f = par[0]
    left = 0.0      # the cells not yet expected
    for g in range(G):
        left += gw[g]
    lg_a = math.lgamma(a) if law == LAW_NEGBINOM else 0.0
    psi = 0.0
    for j in range(n_single):
        u = lo + j
        fresh = j % _RUN == 0
        # the count's own terms: the ratio's count part, and (only where a group's
        # probability is taken afresh) the log-gamma values
        r_u = ((u - 1.0 + a) / u if law == LAW_NEGBINOM else 1.0 / u) if u > 0 else 0.0
        have_lg = False
        lg_u = 0.0
        lgc = 0.0
        if law == LAW_NEGBINOM:
            psi = digamma_shift(a, u) if fresh else psi + 1.0 / (a + u - 1.0)
        for g in range(G):
            w = gw[g]
            if w == 0.0 or u < glo[g] or u > ghi[g]:
                continue
            c = carried[g]
            take = fresh or not (c > 1e-280)
            if take and not have_lg:
                lg_u = math.lgamma(u + 1.0)
                if law == LAW_NEGBINOM:
                    lgc = math.lgamma(u + a) - lg_a - lg_u
                have_lg = True
            if law == LAW_NEGBINOM:
                if take:
                    p = math.exp(lgc + (u * lr[g] if u > 0 else 0.0) - (u + a) * l1[g])
                else:
                    p = c * r_u * q[g]
                carried[g] = p
                d0 = p * a * (psi - l1[g])
                d1 = p * (u - (u + a) * q[g])
            elif law == LAW_ZIP:
                x = sb[g]
                if u == 0:
                    p = 1.0 - f + f * ex[g]
                    d0 = f * (1.0 - f) * (ex[g] - 1.0)
                    d1 = -f * ex[g] * x
                    carried[g] = 0.0
                else:
                    if take:
                        p = f * math.exp(u * lr[g] - x - lg_u)
                    else:
                        p = c * r_u * q[g]
                    carried[g] = p
                    d0 = p * (1.0 - f)
                    d1 = p * (u - x)
            else:
                x = sb[g]
                if take:
                    p = math.exp((u * lr[g] if u > 0 else 0.0) - x - lg_u)
                else:
                    p = c * r_u * q[g]
                carried[g] = p
                d0 = p * (u - x)
                d1 = 0.0
            expct[j] += w * p
            dexp[j, 0] += w * d0
            dexp[j, 1] += w * d1
        left -= expct[j]
        if left < rest:
            return j + 1
    return n_single


#: the Poisson-Beta law's single counts come from the series shared by the capture
#: groups (:func:`_pb_small_rate_singles`) for groups whose rate x = s lam is at most
#: this: where the recurrence in n of each group (pb_pmf_run) does not serve
_X_SHARED_SERIES = _REC_MIN_X
_SERIES_TAIL = 1e-18    # the series stops where x^k / k! (a bound on its terms) is below this


@njit(cache=True, error_model="numpy")
def _pb_small_rate_singles(par, capture, gw, lo, n_single, expct, dexp, done, j0):
    """The Poisson-Beta law's expected single-count cells (``expct[j0 + j]``,
    ``dexp[j0 + j]``: count lo + j, as :func:`law_pmf` gives them times the group
    weight ``gw``) of every group whose rate x = s lam is at most
    _X_SHARED_SERIES, at every count where such a law has mass (up to
    :func:`_pb_count_cap` of the largest such rate); sets ``done`` for those
    groups.

    By Kummer's transformation (docs/maths.md, "Goodness of fit", *Many capture
    groups, small rates*),
    P(n | x) = e^-x x^n / n! mu_n S_n(x), mu_n = prod_{i<n} (a + i)/(a + b + i)
    (the Beta law's n-th moment) and S_n(x) = sum_k c_k x^k, c_k = (b)_k /
    ((a + b + n)_k k!): a series of positive terms whose coefficients do not
    depend on x. Summed over the groups, sum_g w_g P(n | x_g) = mu_n sum_k c_k
    (n+1)_k Pi_{n+k} with Pi_j = sum_g w_g Pois(j; x_g): the groups enter only
    through Pi, tabulated once (groups x counts), and each count then sums its
    series once, whatever the number of groups (and x d/dx of the groups'
    Poisson weights is j Pi_j - (j+1) Pi_{j+1}). Each term is at most x^k / k!
    times the first (as (b)_k <= (a + b + n)_k) for every group, so the series
    stops past k = 2 x_max where x_max^k / k! < _SERIES_TAIL: positive terms,
    no cancellation, no special function per group."""
    a = par[0]
    b = par[1]
    lam = par[2]
    c = a + b
    G = capture.shape[0]
    x_max = 0.0
    for g in range(G):
        x = capture[g] * lam
        if gw[g] == 0.0 or not (x <= _X_SHARED_SERIES) or not (x > 0.0):
            continue
        done[g] = True
        x_max = max(x_max, x)
    if x_max == 0.0:
        return
    # terms: past 2 x_max (so that they at least halve) and below the tail
    t = 1.0
    K = 0
    while K < 2.0 * x_max + 1.0 or t > _SERIES_TAIL:
        t *= x_max / (K + 1.0)
        K += 1
    K += 1
    # the counts where the groups' laws have mass (each below the Poisson law at its rate)
    top = min(lo + n_single - 1.0, _pb_count_cap(x_max))
    if top < lo:
        return
    n_top = int(top - lo) + 1     # counts lo .. top
    n_pi = n_top + K + 1          # Pi_j at j = lo .. top + K + 1 (0 beyond)
    pi = np.zeros(n_pi)
    for g in range(G):
        if not done[g]:
            continue
        x = capture[g] * lam
        # w Pois(lo; x), then up the counts
        q = gw[g] * math.exp((lo * math.log(x) if lo > 0 else 0.0) - x - math.lgamma(lo + 1.0))
        for i in range(n_pi):
            if q == 0.0:
                break
            pi[i] += q
            q *= x / (lo + i + 1.0)
    # log mu_n and its derivatives in a and b, at n = lo, then carried along n
    lmu = 0.0
    dmu_a = 0.0
    dmu_b = 0.0
    for i in range(int(lo)):
        lmu += math.log((a + i) / (c + i))
        dmu_a += 1.0 / (a + i) - 1.0 / (c + i)
        dmu_b -= 1.0 / (c + i)
    for j in range(n_top):
        n = lo + j
        if j > 0:
            i = n - 1.0
            lmu += math.log((a + i) / (c + i))
            dmu_a += 1.0 / (a + i) - 1.0 / (c + i)
            dmu_b -= 1.0 / (c + i)
        S = 0.0
        Sa = 0.0
        Sb = 0.0
        Sx = 0.0
        t = 1.0      # c_k (n + 1)_k
        da = 0.0     # d log c_k / da
        db = 0.0     # d log c_k / db
        for k in range(K):
            m = j + k            # Pi index of the count n + k (m + 1 < n_pi)
            p = t * pi[m]
            S += p
            Sa += p * da
            Sb += p * db
            Sx += t * ((n + k) * pi[m] - (n + k + 1.0) * pi[m + 1])
            inv = 1.0 / (c + n + k)
            t *= (b + k) * inv * (n + k + 1.0) / (k + 1.0)
            da -= inv
            db += 1.0 / (b + k) - inv
        mu = math.exp(lmu)
        expct[j0 + j] += mu * S
        dexp[j0 + j, 0] += mu * a * (dmu_a * S + Sa)
        dexp[j0 + j, 1] += mu * b * (dmu_b * S + Sb)
        dexp[j0 + j, 2] += mu * Sx


#: the cells not yet expected are compared with min_expected less this fraction of all
#: cells (the rounding of the sums that the classes then take in another order)
_SUM_SLACK = 1e-9


@njit(cache=True, error_model="numpy")
def _pb_tail_count(par, capture, gw, total, min_expected):
    """A count above which each capture group's Poisson-Beta law holds less than
    a fraction q = min_expected / (2 total) of its mass: the larger of the
    groups' least bounds, Cantelli's P(X >= m + k sd) <= 1 / (1 + k^2) and,
    the law being below the Poisson law at its rate x (x p <= x), Bernstein's
    P(Pois(x) >= x + t) <= exp(-t^2 / (2 (x + t / 3))) <= q at t =
    sqrt(2 x L) + 2 L / 3, L = log(1 / q). Plus one, for the discreteness."""
    q = 0.5 * min_expected / total
    if not (q < 1.0):
        return -1.0
    k = math.sqrt(1.0 / q - 1.0)
    L = -math.log(q)
    top = 0.0
    for g in range(capture.shape[0]):
        if gw[g] == 0.0:
            continue
        m, v = law_moments(LAW_POISSON_BETA, par, capture[g])
        x = capture[g] * par[2]
        top = max(top, min(m + k * math.sqrt(max(v, 0.0)),
                           x + math.sqrt(2.0 * x * L) + 2.0 * L / 3.0))
    return math.ceil(top) + 1.0


@njit(cache=True, error_model="numpy",
      unit=("Tuple((float64, int64, boolean))(int64, int64[::1], float64[::1], int64[::1], "
            "float64[::1], int64, float64[::1], float64, float64[:, ::1])"))
def pearson_gof(law, values, weights, groups, capture, n_groups, par, min_expected, Ig):
    """Pearson chi-square of the observed histogram against ``law`` at
    ``par``, with adjacent counts pooled until every class expects >=
    min_expected cells and the last class holding the rest (both tails).

    Also returns, in the leading p x p block of ``Ig``, the Fisher information
    per cell of the pooled (grouped) data in the law's log coordinates: the
    statistic's null law with the full-data MLE is a weighted sum of chi2(1)
    variables whose weights come from it and the full-data information
    (Chernoff and Lehmann 1954), which the caller uses to calibrate the
    p-value. Returns (X2, K, ok); ok is False when the law's range is too wide
    to tabulate (no statistic)."""
    npar = N_PARAMS[law]
    for i in range(3):
        for j in range(3):
            Ig[i, j] = 0.0
    total = 0.0
    gw = np.zeros(n_groups)
    for i in range(values.shape[0]):
        total += weights[i]
        gw[groups[i]] += weights[i]
    # the grid spans each group's law to _Z standard deviations around its
    # mean; each group is evaluated wherever its mass is not negligible
    # (_Z_EVAL standard deviations, and 30 e-folds of a negative binomial's tail)
    glo = np.zeros(n_groups)
    ghi = np.zeros(n_groups)
    lo = np.inf
    hi = -np.inf
    for g in range(n_groups):
        if gw[g] == 0.0:
            continue
        m, v = law_moments(law, par, capture[g])
        sd = math.sqrt(max(v, 0.0))
        lo = min(lo, max(0.0, math.floor(m - _Z * sd)))
        hi = max(hi, math.ceil(m + _Z * sd + 3.0))
        glo[g] = max(0.0, math.floor(m - _Z_EVAL * sd - 10.0))
        ghi[g] = math.ceil(m + _Z_EVAL * sd + 10.0)
        if law == LAW_NEGBINOM:
            ghi[g] += math.ceil(30.0 / math.log1p(1.0 / (capture[g] * par[1])))
        elif law == LAW_POISSON_BETA:
            # never above the Poisson law at the largest rate
            x = capture[g] * par[2]
            ghi[g] = min(ghi[g], _pb_count_cap(x))
    if not (hi >= lo) or hi > 1e15:
        return np.nan, 0, False
    # the grid: cell c holds the counts [start[c], start[c] + length)
    n_cells = 0
    u = lo
    while u <= hi:
        n_cells += 1
        if n_cells > _MAX_CELLS:
            return np.nan, 0, False
        u += _cell_length(u)
    start = np.empty(n_cells)
    u = lo
    for c in range(n_cells):
        start[c] = u
        u += _cell_length(u)
    end = u  # first count after the grid
    # expected cells of each grid cell and their derivatives
    expct = np.zeros(n_cells)
    dexp = np.zeros((n_cells, 3))
    # the leading cells of single counts
    n_single = 0
    while n_single < n_cells and _half_width(start[n_single]) == 1:
        n_single += 1
    # no class forms once the cells not yet expected are fewer than min_expected (the
    # rest joins the last class, whose expectation is total minus the others'): the
    # cells beyond need no expectation (docs/maths.md, "Goodness of fit")
    rest = min_expected - _SUM_SLACK * total
    first = np.zeros(n_groups, np.int64)
    pb = law == LAW_POISSON_BETA
    if not pb:
        # the limit laws' single counts count by count across the groups, up to there
        c_to = n_cells
        if n_single > 0:
            n_done = _limit_law_singles(law, par, capture, gw, glo, ghi, lo, n_single, expct,
                                        dexp, rest)
            if n_done < n_single:
                c_to = n_done
        for g in range(n_groups):
            first[g] = n_single
    else:
        # first the cells up to a count above which each group's law holds less than
        # min_expected / 2 of its cells (a bound), the rest only where they are needed
        top = _pb_tail_count(par, capture, gw, total, min_expected)
        c_to = 0
        while c_to < n_cells and start[c_to] <= top:
            c_to += 1
    d = np.zeros(3)
    buf = np.zeros(11)
    p_run = np.empty(n_single if pb else 0)
    d_run = np.empty((n_single if pb else 0, 3))
    done = np.zeros(n_groups, np.bool_)
    c_from = 0
    while True:
        if pb:
            # the single counts c_from .. s_to: the series shared by the groups at small
            # rates, each other group's run by the recurrence in n (O(1) per count, not
            # O(sqrt x)) where its law reaches (glo <= count <= ghi); first[g]: the
            # group's first cell left to law_pmf
            s_to = max(c_from, min(c_to, n_single))
            for g in range(n_groups):
                first[g] = c_from
                done[g] = False
            if s_to > c_from:
                _pb_small_rate_singles(par, capture, gw, lo + c_from, s_to - c_from, expct,
                                       dexp, done, c_from)
                for g in range(n_groups):
                    if gw[g] == 0.0:
                        continue
                    if done[g]:
                        first[g] = s_to
                        continue
                    u0 = max(lo + c_from, glo[g])
                    u1 = min(ghi[g], lo + s_to - 1.0)
                    if u1 >= u0 and pb_pmf_run(int(u0), int(u1) + 1, par[0], par[1],
                                               capture[g] * par[2], p_run, d_run):
                        c0 = int(u0 - lo)
                        for j in range(int(u1 - u0) + 1):
                            expct[c0 + j] += gw[g] * p_run[j]
                            for i in range(npar):
                                dexp[c0 + j, i] += gw[g] * d_run[j, i]
                        first[g] = s_to
        # the rest by law_pmf: a single count's, or the midpoint rule over a wide cell
        for g in range(n_groups):
            if gw[g] == 0.0:
                continue
            s = capture[g]
            for c in range(first[g], c_to):
                u = start[c]
                k = _half_width(u)
                if u > ghi[g]:
                    break
                if u + _cell_length(u) <= glo[g]:
                    continue
                if k == 1:
                    p = law_pmf(law, u, par, s, d, buf)
                    expct[c] += gw[g] * p
                    for i in range(npar):
                        dexp[c, i] += gw[g] * d[i]
                else:
                    for j in range(_NODES):
                        n = u + j * k + (k - 1) // 2
                        p = law_pmf(law, n, par, s, d, buf)
                        expct[c] += gw[g] * k * p
                        for i in range(npar):
                            dexp[c, i] += gw[g] * k * d[i]
        if not pb or c_to == n_cells:
            break
        left = total
        for c in range(c_to):
            left -= expct[c]
        if left < rest:
            break
        c_from = c_to
        c_to = n_cells
    # observed cells of each grid cell (bins are sorted by value)
    obs = np.zeros(n_cells)
    c = 0
    for i in range(values.shape[0]):
        x = float(values[i])
        if x < lo or x >= end:
            continue
        while c + 1 < n_cells and start[c + 1] <= x:
            c += 1
        obs[c] += weights[i]
    # pool adjacent grid cells into classes; the last class holds the rest
    x2 = 0.0
    k_cls = 0
    o_acc = 0.0
    e_acc = 0.0
    d_acc = np.zeros(3)
    e_used = 0.0
    o_used = 0.0
    d_used = np.zeros(3)
    for c in range(n_cells):
        o_acc += obs[c]
        e_acc += expct[c]
        for i in range(npar):
            d_acc[i] += dexp[c, i]
        if e_acc >= min_expected and (total - e_used - e_acc) >= min_expected:
            x2 += (o_acc - e_acc) ** 2 / e_acc
            k_cls += 1
            for i in range(npar):
                for j in range(npar):
                    Ig[i, j] += d_acc[i] * d_acc[j] / (e_acc * total)
            for i in range(npar):
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
        k_cls += 1
        # the last class's probability is 1 minus the others'
        for i in range(npar):
            for j in range(npar):
                Ig[i, j] += d_used[i] * d_used[j] / (e_last * total)
    return x2, k_cls, True
