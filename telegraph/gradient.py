"""Likelihood-ratio (score-function, REINFORCE) gradients of simulated summaries.

For a path X with density p_k(X), the gradient of an expected output is

    grad_k E[f(X)] = E[(f(X) - b) S(X)],     S = grad_k log p_k(X),

for any baseline b independent of the path used (E[S] = 0). :func:`score_gradient`
simulates cells with :func:`telegraph.simulate` (``score=True``), applies ``f``
to each cell's counts and returns the Monte Carlo gradient with its standard
error. The baseline only reduces variance; the estimate stays unbiased.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .ssa import simulate

__all__ = ["score_gradient", "ScoreGradient", "lr_gradient", "lr_terms"]

_BASELINES = ("loo", "optimal", "none")


class ScoreGradient(NamedTuple):
    """Result of :func:`score_gradient`.

    Attributes
    ----------
    gradient : ndarray, shape (..., 4)
        Estimate of d E[f] / d(k_on, k_off, k_syn, k_deg), in units of f per
        unit of each rate (rates per unit time).
    stderr : ndarray, shape (..., 4)
        Its Monte Carlo standard error.
    value : ndarray, shape (...)
        Estimate of E[f].
    value_stderr : ndarray, shape (...)
        Its standard error.
    n_cells : int
        Number of simulated cells (paths) used.
    """

    gradient: np.ndarray
    stderr: np.ndarray
    value: np.ndarray
    value_stderr: np.ndarray
    n_cells: int


def lr_terms(values, scores, baseline="loo"):
    """Per-path terms of the likelihood-ratio gradient: their mean is the estimate.

    Parameters as in :func:`lr_gradient`. Returns an array of shape
    ``(N,) + values.shape[1:] + (P,)`` (broadcast) whose mean over the first
    axis is the gradient of :func:`lr_gradient` with the same baseline; a
    caller can add other per-path terms (e.g. the derivative of f itself when
    f depends on the parameters) before averaging.
    """
    if baseline not in _BASELINES:
        raise ValueError(f"baseline must be one of {_BASELINES}, got {baseline!r}")
    v = np.asarray(values, dtype=float)
    s = np.asarray(scores, dtype=float)
    n = s.shape[0]
    if v.shape[0] != n:
        raise ValueError(f"values and scores need the same number of paths, got {v.shape[0]} "
                         f"and {n}")
    if n < 2:
        raise ValueError("a likelihood-ratio gradient needs at least 2 paths")
    v = v[..., None]
    if baseline == "loo":
        # sum_i (v_i - mean_{-i} v) s_i / n = n/(n-1) * sample covariance
        vc = v - v.mean(axis=0)
        sc = s - s.mean(axis=0)
        return vc * sc * (n / (n - 1.0))
    if baseline == "optimal":
        s2 = s * s
        num = (v * s2).sum(axis=0)
        den = s2.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            b = (num - v * s2) / (den - s2)
        b = np.where(np.isfinite(b), b, 0.0)
        return (v - b) * s
    return v * s


def lr_gradient(values, scores, baseline="loo"):
    """Likelihood-ratio gradient from per-path outputs and path scores.

    Parameters
    ----------
    values : array, shape (N, ...)
        f evaluated on each of N independent paths.
    scores : array, shape (N, ..., P)
        Path scores d log p / d theta (P parameters); ``values`` broadcasts
        against ``scores[..., 0]``.
    baseline : {"loo", "optimal", "none"}
        ``"loo"``: leave-one-out mean of f (the estimate is then the sample
        covariance of f and S, invariant to shifting f). ``"optimal"``:
        per-parameter variance-minimising baseline E[f S_j^2]/E[S_j^2], also
        estimated leave-one-out so each term stays unbiased. ``"none"``: plain
        mean of f S.

    Returns
    -------
    gradient, stderr : arrays of shape values.shape[1:] + (P,) (broadcast)
    """
    terms = lr_terms(values, scores, baseline)
    n = terms.shape[0]
    grad = terms.mean(axis=0)
    se = terms.std(axis=0, ddof=1) / np.sqrt(n)
    if baseline == "loo":
        # the standard error of the sample covariance, from its influence function
        se = se * ((n - 1.0) / n)
    return grad, se


def score_gradient(f: Callable[[np.ndarray], ArrayLike], k_on: float, k_off: float,
                   k_syn: float, k_deg: float = 1.0, *, n_cells: int, t: float,
                   capture: ArrayLike = 1.0, seed=None, initial: str = "off",
                   baseline: str = "loo") -> ScoreGradient:
    """Monte Carlo gradient of E[f(counts)] with respect to the four rates.

    Simulates ``n_cells`` independent cells with :func:`telegraph.simulate`
    (``score=True``) and returns the likelihood-ratio estimate
    ``mean_i (f_i - b_i) S_i`` of the gradient with its standard error.

    Parameters
    ----------
    f : callable
        Maps the simulated counts (as returned by :func:`telegraph.simulate`:
        shape ``(n_cells,)``, ``(n_cells, n_genes)`` for per-gene rates, with a
        leading time axis when ``t`` is an array) to one value per cell:
        an array of shape ``(n_cells,)`` or ``(n_cells, n_genes)``. It must be
        vectorised (e.g. ``lambda n: n``, ``lambda n: (n == 0) * 1.0``,
        ``lambda n: n[-1] - n[0]`` for a time course).
    k_on, k_off, k_syn, k_deg : float or 1-D array
        Rates per unit time (see :func:`telegraph.simulate`); with per-gene
        arrays the gradient has one row per gene.
    n_cells : int
        Number of simulated cells; the standard error falls as 1/sqrt(n_cells).
    t : float or 1-D array
        Sample time(s). With an array, the score of the whole path up to the
        last time is used.
    capture, seed, initial
        As in :func:`telegraph.simulate`. Use ``initial="stationary"`` (its
        score is included) and a short ``t`` for stationary quantities: the
        score's variance grows with the path length.
    baseline : {"loo", "optimal", "none"}
        Variance-reduction baseline (see :func:`lr_gradient`); all give
        unbiased estimates.

    Returns
    -------
    ScoreGradient
        ``gradient`` and ``stderr`` of shape ``(4,)`` (or ``(n_genes, 4)``),
        last axis (k_on, k_off, k_syn, k_deg); ``value`` and
        ``value_stderr`` (E[f] and its standard error); ``n_cells``.

    Examples
    --------
    >>> import telegraph as tg
    >>> g = tg.score_gradient(lambda n: n, 0.5, 2.0, 20.0, n_cells=2000, t=1.0, seed=0)
    >>> g.gradient.shape
    (4,)
    """
    if not callable(f):
        raise TypeError("f must be a callable mapping simulated counts to one value per cell")
    if baseline not in _BASELINES:
        raise ValueError(f"baseline must be one of {_BASELINES}, got {baseline!r}")
    counts, scores = simulate(k_on, k_off, k_syn, k_deg, n_cells=n_cells, t=t,
                              capture=capture, seed=seed, initial=initial, score=True)
    if np.ndim(t) == 1:
        scores = scores[-1]
    values = np.asarray(f(counts), dtype=float)
    expected = scores.shape[:-1]
    if values.shape != expected:
        raise ValueError(f"f must return one value per cell: expected shape {expected}, "
                         f"got {values.shape}")
    grad, se = lr_gradient(values, scores, baseline=baseline)
    value = values.mean(axis=0)
    value_se = values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])
    return ScoreGradient(grad, se, value, value_se, int(values.shape[0]))

