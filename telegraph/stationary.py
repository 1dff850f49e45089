"""The stationary telegraph law: Poisson-Beta pmf, exact scores, posteriors.

All functions broadcast over their arguments like ``scipy.stats``
distributions. Rates are per unit time (any unit, the same for all four);
``capture`` is the fraction of a cell's mRNA molecules that are counted.
Invalid parameters (non-positive or non-finite rates, capture outside (0, 1])
give NaN; impossible counts (negative or non-integer) give ``-inf`` for
:func:`logpmf` (0 for :func:`pmf`) and NaN for scores and posteriors.

The mathematics (docs/maths.md, "The stationary law"): with a = k_on/k_deg, b = k_off/k_deg
and x = capture * k_syn/k_deg, the latent promoter activity
p ~ Beta(a, b) and n | p ~ Poisson(x p). The scores are posterior expectations
of the complete-data score (Fisher's identity) and the observed information
follows from posterior covariances (Louis' identity); the kernels live in
:mod:`telegraph.kernels.poisson_beta`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import blocks, config
from .inputs import capture_in_range, check_capture
from .kernels.linalg import sym3
from .kernels.poisson_beta import exact_histogram_eval, pb_eval_rows

__all__ = [
    "logpmf", "pmf", "score", "posterior_on", "posterior_mean", "posterior_var",
    "logpmf_ab", "score_ab", "derivatives_ab", "histogram_loglik",
]


def _evaluate(n, a, b, x, *, want_info=False):
    """Broadcast, validate and evaluate. Returns (shape, out (m, 11), E[p|n],
    valid-parameter mask, valid-count mask)."""
    n, a, b, x = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(a, dtype=float),
                                     np.asarray(b, dtype=float), np.asarray(x, dtype=float))
    shape = n.shape
    n = n.ravel()
    a = a.ravel()
    b = b.ravel()
    x = x.ravel()
    ok_par = (np.isfinite(a) & np.isfinite(b) & np.isfinite(x)
              & (a > 0) & (b > 0) & (x > 0))
    ok_n = np.isfinite(n) & (n >= 0) & (n == np.floor(n))
    good = ok_par & ok_n
    out = np.full((n.size, 11), np.nan)
    ep = np.full(n.size, np.nan)
    m = int(np.count_nonzero(good))
    if m:
        args = tuple(np.ascontiguousarray(v[good]) for v in (n, a, b, x))
        o = np.full((m, 11), np.nan)
        e = np.empty(m)

        def piece(lo, hi):
            pb_eval_rows(lo, hi, *args, want_info, o, e)

        if m >= config.LAW_THREADS_FROM:
            blocks.on_threads(piece, np.arange(m + 1))
        else:
            piece(0, m)
        out[good] = o
        ep[good] = e
    return shape, out, ep, ok_par, ok_n


def _rates(k_on, k_off, k_syn, k_deg, capture):
    k_on, k_off, k_syn, k_deg, capture = (np.asarray(v, dtype=float)
                                          for v in (k_on, k_off, k_syn, k_deg, capture))
    with np.errstate(invalid="ignore"):
        bad = ~(capture_in_range(capture) & np.isfinite(k_deg) & (k_deg > 0))
    # NaN propagates through the kernel's validity check
    capture = np.where(bad, np.nan, capture)
    kd = np.where(bad, np.nan, k_deg)
    with np.errstate(divide="ignore", invalid="ignore"):
        return k_on / kd, k_off / kd, capture * k_syn / kd, k_deg, capture


def logpmf_ab(n, a, b, x):
    """log P(n) of the Poisson-Beta law in scaled parameters.

    Parameters
    ----------
    n : array_like
        Counts (non-negative integers).
    a, b : array_like
        k_on / k_deg and k_off / k_deg (dimensionless).
    x : array_like
        Poisson scale capture * k_syn / k_deg (expected count of an always-on
        promoter).
    """
    shape, out, _, ok_par, ok_n = _evaluate(n, a, b, x)
    res = out[:, 0]
    # like scipy.stats: a count that cannot occur has probability 0, a NaN count stays NaN
    impossible = ok_par & ~ok_n & ~np.isnan(np.broadcast_to(np.asarray(n, dtype=float), shape).ravel())
    res = np.where(impossible, -np.inf, res)
    return res.reshape(shape)[()]


def score_ab(n, a, b, x):
    """Gradient of log P(n) with respect to (a, b, x), last axis of length 3.

    Same parameters as :func:`logpmf_ab`; NaN where the count or a parameter is
    invalid.
    """
    shape, out, _, _, _ = _evaluate(n, a, b, x)
    return out[:, 1:4].reshape(shape + (3,))


def derivatives_ab(n, a, b, x):
    """log P(n), its gradient and its observed information in (a, b, x), in one pass.

    Same parameters as :func:`logpmf_ab`. Returns ``(logp, score, info)`` with
    shapes ``s``, ``s + (3,)`` and ``s + (3, 3)`` (``s`` the broadcast shape;
    ``info`` the negative Hessian of log P, by Louis' identity); NaN where the
    count or a parameter is invalid.
    """
    shape, out, _, _, _ = _evaluate(n, a, b, x, want_info=True)
    info = sym3(out[:, 4:10])
    return (out[:, 0].reshape(shape), out[:, 1:4].reshape(shape + (3,)),
            info.reshape(shape + (3, 3)))


def logpmf(n: ArrayLike, k_on: ArrayLike, k_off: ArrayLike, k_syn: ArrayLike,
           k_deg: ArrayLike = 1.0, capture: ArrayLike = 1.0) -> np.ndarray:
    """Log-probability of observing ``n`` molecules under the stationary telegraph model.

    Parameters
    ----------
    n : array_like
        Observed counts (non-negative integers).
    k_on : array_like
        Promoter activation rate (burst frequency), per unit time.
    k_off : array_like
        Promoter inactivation rate, per unit time.
    k_syn : array_like
        Transcription rate while the promoter is on, molecules per unit time.
    k_deg : array_like, default 1
        mRNA degradation rate, per unit time. With the default, the other
        rates are in units of k_deg.
    capture : array_like, default 1
        Capture efficiency in (0, 1]: each molecule is counted independently
        with this probability.

    Returns
    -------
    ndarray or float
        log P(n), broadcast over all arguments. NaN for invalid parameters,
        ``-inf`` for negative or non-integer ``n``. Exact (to about 1e-10
        nats) for any k_off; NaN where ``capture * k_syn / k_deg`` exceeds
        about 7e12, beyond which the series is not summed (docs/maths.md,
        "The stationary law", "Large arguments").

    Examples
    --------
    >>> import telegraph as tg
    >>> float(tg.pmf([0, 1, 2, 3], k_on=0.5, k_off=2.0, k_syn=20.0).sum()) < 1
    True
    """
    a, b, x, _, _ = _rates(k_on, k_off, k_syn, k_deg, capture)
    return logpmf_ab(n, a, b, x)


def pmf(n: ArrayLike, k_on: ArrayLike, k_off: ArrayLike, k_syn: ArrayLike,
        k_deg: ArrayLike = 1.0, capture: ArrayLike = 1.0) -> np.ndarray:
    """Probability of ``n`` molecules; ``exp(logpmf(...))``, same parameters."""
    return np.exp(logpmf(n, k_on, k_off, k_syn, k_deg, capture))


def score(n: ArrayLike, k_on: ArrayLike, k_off: ArrayLike, k_syn: ArrayLike,
          k_deg: ArrayLike = 1.0, capture: ArrayLike = 1.0) -> np.ndarray:
    """Exact gradient of log P(n) with respect to the four rates.

    Computed by Fisher's identity as the posterior expectation of the
    complete-data score of the latent promoter activity (docs/maths.md,
    "Fisher's and Louis' identities"),
    with no numerical differentiation.

    Parameters
    ----------
    n, k_on, k_off, k_syn, k_deg, capture
        As in :func:`logpmf`; rates per unit time.

    Returns
    -------
    ndarray
        Shape ``broadcast(...) + (4,)``: d log P/d k_on, d k_off, d k_syn,
        d k_deg, in units of 1/rate (time). NaN for invalid input. The
        components satisfy k_on s_on + k_off s_off + k_syn s_syn + k_deg s_deg = 0.
    """
    a, b, x, k_deg, capture = _rates(k_on, k_off, k_syn, k_deg, capture)
    shape, out, _, _, _ = _evaluate(n, a, b, x)
    bshape = np.broadcast_shapes(shape, np.shape(k_deg), np.shape(capture))
    da, db, dx = (out[:, j].reshape(shape) for j in (1, 2, 3))
    kd = np.broadcast_to(k_deg, bshape)
    res = np.empty(bshape + (4,))
    res[..., 0] = da / kd
    res[..., 1] = db / kd
    res[..., 2] = dx * capture / kd
    res[..., 3] = -(a * da + b * db + x * dx) / kd
    return res


def posterior_on(n: ArrayLike, k_on: ArrayLike, k_off: ArrayLike, k_syn: ArrayLike,
                 k_deg: ArrayLike = 1.0, capture: ArrayLike = 1.0) -> np.ndarray:
    """Posterior probability that the promoter was on when the cell was captured.

    Equals E[p | n], the posterior mean of the latent promoter activity,
    because P(on, n) = k_on/(k_on + k_off) * PoissonBeta(n; a + 1, b, x).
    Parameters as in :func:`logpmf` (rates per unit time).
    """
    a, b, x, _, _ = _rates(k_on, k_off, k_syn, k_deg, capture)
    shape, _, ep, _, _ = _evaluate(n, a, b, x)
    return ep.reshape(shape)[()]


def posterior_mean(n: ArrayLike, k_on: ArrayLike, k_off: ArrayLike, k_syn: ArrayLike,
                   k_deg: ArrayLike = 1.0, capture: ArrayLike = 1.0) -> np.ndarray:
    """Posterior mean E[p | n] of the latent promoter activity p in [0, 1].

    Same as :func:`posterior_on`; parameters as in :func:`logpmf`.
    """
    return posterior_on(n, k_on, k_off, k_syn, k_deg, capture)


def posterior_var(n: ArrayLike, k_on: ArrayLike, k_off: ArrayLike, k_syn: ArrayLike,
                  k_deg: ArrayLike = 1.0, capture: ArrayLike = 1.0) -> np.ndarray:
    """Posterior variance Var[p | n] of the latent promoter activity.

    Parameters as in :func:`logpmf` (rates per unit time).
    """
    a, b, x, _, _ = _rates(k_on, k_off, k_syn, k_deg, capture)
    shape, out, _, _, _ = _evaluate(n, a, b, x, want_info=True)
    return out[:, 10].reshape(shape)[()]


def histogram_loglik(values, weights, a, b, lam, capture=1.0, *, info=False):
    """Log-likelihood of one gene's count histogram and its exact gradient.

    Parameters
    ----------
    values : array_like of int
        Distinct counts (or any counts; repeated values are fine).
    weights : array_like
        Multiplicity of each value (number of cells).
    a, b : float
        k_on / k_deg and k_off / k_deg.
    lam : float
        k_syn / k_deg (expected count of an always-on promoter at capture 1).
    capture : float or array_like
        Capture efficiency, scalar or one per histogram bin.
    info : bool
        Also return the observed information (negative Hessian) with respect
        to (a, b, lam), computed by Louis' identity.

    Returns
    -------
    loglik : float
    grad : ndarray (3,)
        d loglik / d (a, b, lam).
    info : ndarray (3, 3), only if ``info=True``
    """
    values = np.asarray(values, dtype=np.int64).ravel()
    weights = np.asarray(weights, dtype=float).ravel()
    if values.shape != weights.shape:
        raise ValueError("values and weights must have the same length")
    if (values < 0).any():
        raise ValueError("values must be non-negative counts")
    capture = np.asarray(capture, dtype=float)
    if capture.ndim == 0:
        # one capture for all bins: no grouping pass needed
        uniq = capture.reshape(1)
        groups = np.zeros(values.shape, dtype=np.int64)
    else:
        uniq, groups = np.unique(np.broadcast_to(capture, values.shape), return_inverse=True)
    check_capture(uniq)
    if not (a > 0 and b > 0 and lam > 0):
        raise ValueError("a, b and lam must be positive")
    out = np.zeros(10)
    # exact for every capture value (the fits expand many capture groups about coarse ones)
    exact_histogram_eval(values, weights, groups.astype(np.int64, copy=False).ravel(), uniq,
                         float(a), float(b), float(lam), bool(info), out)
    grad = out[1:4].copy()
    if not info:
        return float(out[0]), grad
    return float(out[0]), grad, sym3(out[None, 4:10])[0]
