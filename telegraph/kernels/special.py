"""Special functions for Numba kernels: digamma and trigamma of positive reals.

Numba has ``math.lgamma`` but no polygamma functions; these use the upward
recurrence to x >= 10 followed by the asymptotic (Bernoulli) series, which is
accurate to a few ulp there (the first omitted term is below 1e-16).
"""

from __future__ import annotations

import math

from numba import njit

__all__ = ["digamma", "trigamma", "digamma_shift", "trigamma_shift"]


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
    if m <= 64:
        s = 0.0
        for j in range(int(m)):
            s += 1.0 / (x + j)
        return s
    return digamma(x + m) - digamma(x)


@njit(cache=True, error_model="numpy")
def trigamma_shift(x, m):
    """psi'(x) - psi'(x + m) for x > 0 and integer m >= 0 (non-negative)."""
    if m <= 64:
        s = 0.0
        for j in range(int(m)):
            s += 1.0 / ((x + j) * (x + j))
        return s
    return trigamma(x) - trigamma(x + m)
