"""Special functions for Numba kernels: digamma and trigamma of positive reals.

Numba has ``math.lgamma`` but no polygamma functions; these use the upward
recurrence to x >= 10 followed by the asymptotic (Bernoulli) series, which is
accurate to a few ulp there (the first omitted term is below 1e-16).
"""

from __future__ import annotations

import math

from ._jit import njit

__all__ = ["digamma", "trigamma", "digamma_shift", "trigamma_shift", "stirling_rest",
           "log1pmx", "lgamma_diff", "log_poisson_term", "fold_log"]

#: digamma_shift and trigamma_shift add up the differences over at most this many unit steps
#: term by term (no cancellation); beyond, they subtract the functions' values
SHIFT_SUM_MAX = 64

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@njit(cache=True, error_model="numpy")
def digamma(x):
    """psi(x) for x > 0."""
    r = 0.0
    while x < 10.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (
        -1.0 / 132 + f * (691.0 / 32760 + f * (-1.0 / 12)))))))
    return r + math.log(x) - 0.5 / x + t


@njit(cache=True, error_model="numpy")
def trigamma(x):
    """psi'(x) for x > 0."""
    r = 0.0
    while x < 10.0:
        r += 1.0 / (x * x)
        x += 1.0
    f = 1.0 / (x * x)
    t = (1.0 + 0.5 / x + f * (1.0 / 6 + f * (-1.0 / 30 + f * (1.0 / 42 + f * (
        -1.0 / 30 + f * (5.0 / 66 + f * (-691.0 / 2730 + f * (7.0 / 6)))))))) / x
    return r + t


@njit(cache=True, error_model="numpy")
def digamma_shift(x, m):
    """psi(x + m) - psi(x) for x > 0 and integer m >= 0, without cancellation
    when m is small (direct sum) and by subtraction when m is large (then the
    difference is itself large, so the subtraction loses nothing relative)."""
    if m <= SHIFT_SUM_MAX:
        s = 0.0
        for j in range(int(m)):
            s += 1.0 / (x + j)
        return s
    return digamma(x + m) - digamma(x)


@njit(cache=True, error_model="numpy")
def trigamma_shift(x, m):
    """psi'(x) - psi'(x + m) for x > 0 and integer m >= 0 (non-negative)."""
    if m <= SHIFT_SUM_MAX:
        s = 0.0
        for j in range(int(m)):
            s += 1.0 / ((x + j) * (x + j))
        return s
    return trigamma(x) - trigamma(x + m)


# Large arguments: log-gamma differences without cancellation (docs/maths.md, "The
# stationary law", "Large arguments"). lgamma(z) is ~z log z: a difference of two such
# values loses about z log z * 1e-16 in absolute terms, 1e-5 at z = 1e10.

@njit(cache=True, error_model="numpy")
def stirling_rest(z):
    """R(z) = lgamma(z) - [(z - 1/2) log z - z + log(2 pi)/2] for z > 0: the
    Stirling series from z = 15 on (first omitted term below 1e-16 of it), the
    definition below."""
    if z < 15.0:
        return math.lgamma(z) - ((z - 0.5) * math.log(z) - z + _HALF_LOG_2PI)
    f = 1.0 / (z * z)
    return (1.0 / 12 + f * (-1.0 / 360 + f * (1.0 / 1260 + f * (-1.0 / 1680
                                                                 + f * (1.0 / 1188))))) / z


@njit(cache=True, error_model="numpy")
def log1pmx(y):
    """log(1 + y) - y for y > -1, accurate for small y."""
    if abs(y) < 0.01:
        # -y^2/2 + y^3/3 - ..., 8 terms: the first omitted below 1e-20 of y^2
        s = 0.0
        p = y * y
        for j in range(2, 10):
            s += (-p if j % 2 == 0 else p) / j
            p *= y
        return s
    return math.log1p(y) - y


@njit(cache=True, error_model="numpy")
def lgamma_diff(z, h):
    """lgamma(z + h) - lgamma(z) for z > 0, z + h > 0, accurate to a few ulp of
    the result's own size even where both terms are huge: from Stirling's form,
    (z - 1/2) log(1 + h/z) + h log(z + h) - h + R(z + h) - R(z), arranged as
    z (log1p(h/z) - h/z) - log1p(h/z)/2 + h log(z + h) + R(z + h) - R(z)."""
    if z < 15.0 or z + h < 15.0:
        return math.lgamma(z + h) - math.lgamma(z)
    y = h / z
    return (z * log1pmx(y) - 0.5 * math.log1p(y) + h * math.log(z + h)
            + stirling_rest(z + h) - stirling_rest(z))


@njit(cache=True, error_model="numpy")
def log_poisson_term(k, x):
    """k log x - lgamma(k + 1) - x (the log Poisson probability of k at mean x)
    for integer k >= 0 and x > 0, without the cancellation of its three large
    terms (Loader 2000): -bd0(k, x) - log(2 pi k)/2 - R(k), where
    bd0(k, x) = k log(k/x) + x - k = x [(1 + d) log1pmx(d) + d^2], d = k/x - 1."""
    if k == 0.0:
        return -x
    if k < 15.0:
        return k * math.log(x) - math.lgamma(k + 1.0) - x
    d = (k - x) / x
    bd0 = x * ((1.0 + d) * log1pmx(d) + d * d)
    # lgamma(k + 1) = (k + 1/2) log k - k + log(2 pi)/2 + R(k)
    return -bd0 - 0.5 * math.log(k) - _HALF_LOG_2PI - stirling_rest(k)


@njit(cache=True, error_model="numpy", inline="always")
def fold_log(r, log_acc, scale):
    """A running product r kept in range: once it leaves [1/scale, scale] (or is
    NaN), its logarithm is added to ``log_acc`` and it restarts at 1. Returns
    (r, log_acc); the product's logarithm is always log_acc + log r. A sum of
    logarithms taken this way costs one logarithm per many factors."""
    if r < scale and r > 1.0 / scale:
        return r, log_acc
    return 1.0, log_acc + math.log(r)
