"""Expected Fisher information of the stationary telegraph law, its design
derivative, and the per-cell terms of their Monte Carlo (score-function)
estimates, in Numba.

Notation (docs/maths.md, "Experiment design"): a = k_on/k_deg, b = k_off/k_deg,
x = capture * k_syn/k_deg; theta = (log a, log b, log x), and the score of one
count n is S(n) = (a d_a, b d_b, x d_x) log P(n), from
:func:`telegraph.kernels.poisson_beta.pb_eval` (Fisher's identity).

- :func:`expected_information`: G(a, b, x) = sum_n P(n) S(n) S(n)^T, the
  information of one cell, summed from n = 0 until a rigorous bound on the
  rest (from the complete-data information: see the maths section) is below a
  relative tolerance; and, on request, its derivative in log x, from the
  Louis information H(n) (the score's derivative is -H).
- :func:`information_many`: the same averaged over a capture distribution,
  for many parameter sets in parallel.
- :func:`cell_scores`: for simulated counts of many parameter sets, each
  cell's score, its derivative in the design (the log capture) and the
  design score d log P(n)/d log capture, from which the score-function
  estimate of the information's derivative is formed.

Arrays in, arrays out; the 3 x 3 matrices are full (symmetric) arrays.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._jit import njit
from .poisson_beta import pb_eval
from .special import trigamma

__all__ = ["expected_information", "information_many", "cell_scores", "tail_bounds"]

#: longest count range summed: x + _SPAN_SD sqrt(x) + _SPAN_MIN (the bound is
#: reported, so a cut short here shows as a bound above the tolerance)
_SPAN_SD = 60.0
_SPAN_MIN = 2000.0


@njit(cache=True, error_model="numpy")
def _log_pois(n, x):
    return n * math.log(x) - x - math.lgamma(n + 1.0)


@njit(cache=True, error_model="numpy")
def tail_bounds(a, b, x, N, out):
    """Bounds on the diagonal of sum_{n > N} P(n) S(n) S(n)^T (theta coordinates).

    Writes (B_a, B_b, B_x) into ``out``; returns False when N + 2 <= x (the
    geometric tail bounds below need N + 2 > x). By Jensen, S S^T is below the
    posterior mean of the complete-data score's outer product, so the tail is
    below E[grad l_c grad l_c^T 1{n > N}]; P(n > N | p) <= P(Poisson(x) > N)
    gives B_a = a^2 q (psi'(a) - psi'(a+b)), B_b = b^2 q (psi'(b) - psi'(a+b)),
    q >= P(Poisson(x) > N); |n/x - p| <= n/x + 1 gives
    B_x = x^2 E[(n/x + 1)^2 1{n > N}], n ~ Poisson(x). Both Poisson tails are
    bounded by their first term over (1 - r), r the largest ratio of
    consecutive terms beyond N.
    """
    m = N + 1.0
    if m + 1.0 <= x:
        return False
    lp = _log_pois(m, x)
    r = x / (m + 1.0)
    q = math.exp(lp) / (1.0 - r)
    f = (m / x + 1.0)
    f1 = ((m + 1.0) / x + 1.0)
    r2 = (f1 / f) ** 2 * x / (m + 1.0)
    if r2 >= 1.0:
        return False
    t = math.exp(lp + 2.0 * math.log(f)) / (1.0 - r2)
    tab = trigamma(a + b)
    va = max(trigamma(a) - tab, 0.0) + 1e-15 * trigamma(a)
    vb = max(trigamma(b) - tab, 0.0) + 1e-15 * trigamma(b)
    out[0] = a * a * q * va
    out[1] = b * b * q * vb
    out[2] = x * x * t
    return True


@njit(cache=True, error_model="numpy")
def expected_information(a, b, x, tol, want_deriv, G, dG, bound):
    """Information of one cell about theta = (log a, log b, log x), summed exactly.

    Fills ``G`` (3, 3) with sum_n P(n) S S^T and, if ``want_deriv``, ``dG``
    (3, 3) with its derivative in log x,

        dG = sum_n P(n) [S_x S S^T + dS S^T + S dS^T],
        dS = (-a x H_ax, -b x H_bx, x d_x log P - x^2 H_xx),

    (S_x = x d_x log P is the score of log x, H the Louis information in
    (a, b, x)). ``bound`` (3,) receives the tail bounds (B_a, B_b, B_x) at the
    last count summed, N: for every entry |I_ij - G_ij| <= sqrt(B_i B_j).
    Summation stops at the first N > x - 2 with B_i <= tol G_ii for all i.
    Returns N + 1, the number of counts summed.
    """
    for i in range(3):
        bound[i] = np.inf
        for j in range(3):
            G[i, j] = 0.0
            dG[i, j] = 0.0
    buf = np.empty(11)
    S = np.empty(3)
    dS = np.empty(3)
    n_cap = int(x + _SPAN_SD * math.sqrt(x) + _SPAN_MIN)
    n_min = int(math.floor(x))
    n = 0
    while True:
        pb_eval(float(n), a, b, x, want_deriv, buf)
        lp = buf[0]
        if lp > -745.0:
            P = math.exp(lp)
            S[0] = a * buf[1]
            S[1] = b * buf[2]
            S[2] = x * buf[3]
            for i in range(3):
                for j in range(i, 3):
                    G[i, j] += P * S[i] * S[j]
            if want_deriv:
                dS[0] = -a * x * buf[6]
                dS[1] = -b * x * buf[8]
                dS[2] = S[2] - x * x * buf[9]
                for i in range(3):
                    for j in range(i, 3):
                        dG[i, j] += P * (S[2] * S[i] * S[j] + dS[i] * S[j] + S[i] * dS[j])
        if n >= n_min and (n % 4 == 3 or n >= n_cap):
            if tail_bounds(a, b, x, float(n), bound):
                if (bound[0] <= tol * G[0, 0] and bound[1] <= tol * G[1, 1]
                        and bound[2] <= tol * G[2, 2]):
                    break
            if n >= n_cap:
                break
        n += 1
    for i in range(3):
        for j in range(i):
            G[i, j] = G[j, i]
            dG[i, j] = dG[j, i]
    return n + 1


@njit(cache=True, error_model="numpy", parallel=True)
def information_many(a, b, lam, capture, weights, dweights, tol, want_deriv, I, dI, rel_bound,
                     n_terms):
    """Per-cell information of many parameter sets, averaged over capture groups.

    ``a``, ``b``, ``lam`` (m,): k_on/k_deg, k_off/k_deg, k_syn/k_deg;
    ``capture`` (g,) and ``weights`` (g,) (summing to 1): the capture
    distribution; ``dweights`` (g,): the weights of the derivative (the
    weight where the group's capture moves with the design, else 0).
    Writes ``I`` (m, 3, 3): sum_g w_g G(a, b, capture_g lam), in theta
    coordinates (log a, log b, log lam); ``dI`` (m, 3, 3): sum_g dw_g dG_g;
    ``rel_bound`` (m,): the largest B_i / G_ii over groups and i (so that
    |I_ij - exact| <= rel_bound sqrt(I_ii I_jj)); ``n_terms`` (m,): counts
    summed, over all groups.
    """
    m = a.shape[0]
    ng = capture.shape[0]
    for k in prange(m):
        G = np.empty((3, 3))
        dG = np.empty((3, 3))
        bd = np.empty(3)
        for i in range(3):
            for j in range(3):
                I[k, i, j] = 0.0
                dI[k, i, j] = 0.0
        worst = 0.0
        total = 0
        for g in range(ng):
            if weights[g] == 0.0 and dweights[g] == 0.0:
                continue
            total += expected_information(a[k], b[k], capture[g] * lam[k], tol, want_deriv,
                                          G, dG, bd)
            for i in range(3):
                if G[i, i] > 0.0:
                    worst = max(worst, bd[i] / G[i, i])
                else:
                    worst = np.inf
                for j in range(3):
                    I[k, i, j] += weights[g] * G[i, j]
                    dI[k, i, j] += dweights[g] * dG[i, j]
        rel_bound[k] = worst
        n_terms[k] = total


@njit(cache=True, error_model="numpy", parallel=True)
def cell_scores(counts, groups, capture, moving, a, b, lam, S, dS, d):
    """Per-cell scores of simulated cells and their derivatives in the design.

    ``counts`` (m, c): simulated counts of c cells for each of m parameter
    sets (``a``, ``b``, ``lam``, each (m,)); ``groups`` (c,): each cell's
    capture group, ``capture`` (g,) the groups' efficiencies, ``moving`` (g,)
    1.0 where the group's capture moves with the design's capture factor
    kappa (else 0). Writes, per set and cell, ``S`` (m, c, 3): the score in
    theta = (log a, log b, log x); ``dS`` (m, c, 3): its derivative in log
    kappa at the fixed count, moving * (-a x H_ax, -b x H_bx, S_x - x^2 H_xx)
    (see :func:`expected_information`); ``d`` (m, c): the design score
    d log P(n) / d log kappa = moving * S_x.
    """
    m, c = counts.shape
    for k in prange(m):
        buf = np.empty(11)
        for i in range(c):
            g = groups[i]
            x = capture[g] * lam[k]
            pb_eval(float(counts[k, i]), a[k], b[k], x, True, buf)
            S[k, i, 0] = a[k] * buf[1]
            S[k, i, 1] = b[k] * buf[2]
            S[k, i, 2] = x * buf[3]
            mv = moving[g]
            d[k, i] = mv * S[k, i, 2]
            dS[k, i, 0] = -mv * a[k] * x * buf[6]
            dS[k, i, 1] = -mv * b[k] * x * buf[8]
            dS[k, i, 2] = mv * (S[k, i, 2] - x * x * buf[9])
