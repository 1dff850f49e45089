"""Metabolic labelling: the exact joint law of new and old RNA after a pulse.

A cell is exposed to a label (4sU, 5EU, ...) for ``t_label`` hours before it
is harvested; molecules made during the pulse are *new*, those made before it
*old*. Under the telegraph model at stationarity before the pulse, the counts
of new and old molecules of a gene identify all four rates in absolute time
(per hour), k_deg included (docs/maths.md, "Metabolic labelling: new and old
RNA").

Each molecule present is captured with the cell's efficiency ``capture``; a
captured new molecule is seen as new with probability ``detection`` (its
label conversions were detected) and is otherwise counted as old.

Public functions broadcast like ``scipy.stats`` distributions and like
:func:`telegraph.logpmf`: invalid parameters (non-positive or non-finite rates
or ``t_label``, ``capture`` or ``detection`` outside (0, 1]) give NaN;
impossible counts (negative or non-integer) give ``-inf`` for
:func:`labelled_logpmf` and NaN for the scores. The kernels live in
:mod:`telegraph.kernels.labelled`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import config
from .inputs import capture_in_range, check_capture, check_detection, check_t_label
from .inputs import detection_in_range, t_label_in_range
from .kernels import labelled as _k

__all__ = ["labelled_logpmf", "labelled_pmf", "labelled_score", "labelled_information",
           "labelled_fisher_information", "labelled_histogram_loglik", "RATES"]

#: the four rates, in the order of the last axis of :func:`labelled_score`
RATES = ("k_on", "k_off", "k_syn", "k_deg")


def _evaluate(new, old, k_on, k_off, k_syn, k_deg, t_label, detection, capture, want):
    """Broadcast, validate, evaluate. Returns (shape, rows: a LabelledRows view
    over (a, b, lam, tau), rates (5, size): k_on, k_off, k_syn, k_deg, t_label,
    valid-parameter mask, valid-count mask, NaN-count mask)."""
    arrs = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in
                                 (new, old, k_on, k_off, k_syn, k_deg, t_label, detection,
                                  capture)))
    shape = arrs[0].shape
    new, old, k_on, k_off, k_syn, k_deg, t_label, detection, capture = (
        np.ascontiguousarray(v).ravel() for v in arrs)
    with np.errstate(invalid="ignore"):
        ok_par = (t_label_in_range(t_label) & detection_in_range(detection)
                  & capture_in_range(capture))
        for r in (k_on, k_off, k_syn, k_deg):
            ok_par &= np.isfinite(r) & (r > 0)
        ok_n = np.ones(new.shape, dtype=bool)
        for v in (new, old):
            ok_n &= np.isfinite(v) & (v >= 0) & (v == np.floor(v))
    nan_n = np.isnan(new) | np.isnan(old)
    good = ok_par & ok_n
    rows = np.full((new.size, _k.N_ROW), np.nan)
    if good.any():
        idx = np.flatnonzero(good)
        kd = k_deg[idx]
        par = np.column_stack((k_on[idx] / kd, k_off[idx] / kd, k_syn[idx] / kd,
                               kd * t_label[idx], capture[idx], detection[idx]))
        uniq, inv = np.unique(par, axis=0, return_inverse=True)
        inv = inv.ravel()
        order = np.argsort(inv, kind="stable")
        ptr = np.zeros(uniq.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(inv, minlength=uniq.shape[0]), out=ptr[1:])
        pts = idx[order]
        res, _ = _k.points_eval(ptr, *(np.ascontiguousarray(uniq[:, j]) for j in range(6)),
                                new[pts].astype(np.int64), old[pts].astype(np.int64),
                                int(want))
        rows[pts] = res
    rates = np.vstack((k_on, k_off, k_syn, k_deg, t_label))
    return shape, _k.LabelledRows(rows), rates, ok_par, ok_n, nan_n


def _jacobian(rates):
    """d(a, b, lam, tau)/d(k_on, k_off, k_syn, k_deg): (size, 4, 4)."""
    k_on, k_off, k_syn, k_deg, t = rates
    J = np.zeros((k_on.size, 4, 4))
    for p, r in enumerate((k_on, k_off, k_syn)):
        J[:, p, p] = 1.0 / k_deg
        J[:, p, 3] = -r / k_deg ** 2
    J[:, 3, 3] = t
    return J


def _gradient(rows, rates):
    g = rows.grad
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("ip,ipq->iq", g, _jacobian(rates))


def _hessian(rows, rates):
    """Hessian of log P in the rates (docs/maths.md, "Metabolic labelling: new
    and old RNA", "Scores and information"): J^T H J plus the curvature of
    (a, b, lam) = (k_on, k_off, k_syn) / k_deg."""
    H = rows.hessian
    g = rows.grad
    k_on, k_off, k_syn, k_deg, _ = rates
    with np.errstate(invalid="ignore", divide="ignore"):
        J = _jacobian(rates)
        out = np.einsum("ipa,ipq,iqb->iab", J, H, J)
        for p in range(3):
            out[:, p, 3] -= g[:, p] / k_deg ** 2
            out[:, 3, p] -= g[:, p] / k_deg ** 2
        for p, r in enumerate((k_on, k_off, k_syn)):
            out[:, 3, 3] += g[:, p] * 2.0 * r / k_deg ** 3
    return out


def labelled_logpmf(new: ArrayLike, old: ArrayLike, k_on: ArrayLike, k_off: ArrayLike,
                    k_syn: ArrayLike, k_deg: ArrayLike, *, t_label: ArrayLike,
                    detection: ArrayLike = config.DETECTION,
                    capture: ArrayLike = 1.0) -> np.ndarray:
    """Log-probability of ``new`` labelled and ``old`` unlabelled molecules after a pulse.

    The telegraph model (promoter off -> on at ``k_on``, on -> off at
    ``k_off``, transcription at ``k_syn`` while on, degradation at ``k_deg``)
    is stationary before a labelling pulse of ``t_label`` hours; molecules made
    during the pulse are new, the others old (docs/maths.md, "Metabolic
    labelling: new and old RNA").

    Parameters
    ----------
    new, old : array_like
        Observed counts of new (labelled) and old molecules (non-negative
        integers).
    k_on, k_off : array_like
        Promoter activation and inactivation rates, per hour.
    k_syn : array_like
        Transcription rate while on, molecules per hour.
    k_deg : array_like
        mRNA degradation rate, per hour (half-life log 2 / k_deg hours).
    t_label : array_like
        Length of the labelling pulse, hours (> 0).
    detection : array_like, default ``config.DETECTION`` (1)
        Probability in (0, 1] that a captured new molecule is seen as new; the
        others are counted as old.
    capture : array_like, default 1
        Capture efficiency in (0, 1]: each molecule is counted independently
        with this probability.

    Returns
    -------
    ndarray or float
        log P(new, old), broadcast over all arguments; NaN for invalid
        parameters, ``-inf`` for negative or non-integer counts. NaN also
        where the transient law would take more than about 2e10 operations
        (k_syn t_label x (k_syn / k_deg) beyond about 1e10, far outside
        realistic kinetics; docs/maths.md, "Metabolic labelling: new and old
        RNA").

    Examples
    --------
    >>> import telegraph as tg
    >>> lp = tg.labelled_logpmf([0, 3], [2, 5], k_on=0.5, k_off=2.0, k_syn=30.0,
    ...                         k_deg=0.2, t_label=2.0)
    >>> bool((lp < 0).all())
    True
    """
    shape, rows, _, ok_par, ok_n, nan_n = _evaluate(new, old, k_on, k_off, k_syn, k_deg,
                                                    t_label, detection, capture, 0)
    res = rows.logp
    res = np.where(ok_par & ~ok_n & ~nan_n, -np.inf, res)
    return res.reshape(shape)[()]


def labelled_pmf(new: ArrayLike, old: ArrayLike, k_on: ArrayLike, k_off: ArrayLike,
                 k_syn: ArrayLike, k_deg: ArrayLike, *, t_label: ArrayLike,
                 detection: ArrayLike = config.DETECTION,
                 capture: ArrayLike = 1.0) -> np.ndarray:
    """Probability of (new, old); ``exp(labelled_logpmf(...))``, same parameters."""
    return np.exp(labelled_logpmf(new, old, k_on, k_off, k_syn, k_deg, t_label=t_label,
                                  detection=detection, capture=capture))


def labelled_score(new: ArrayLike, old: ArrayLike, k_on: ArrayLike, k_off: ArrayLike,
                   k_syn: ArrayLike, k_deg: ArrayLike, *, t_label: ArrayLike,
                   detection: ArrayLike = config.DETECTION,
                   capture: ArrayLike = 1.0) -> np.ndarray:
    """Exact gradient of log P(new, old) with respect to the four rates.

    Exact sensitivities of the transient law of the new molecules and Fisher's
    identity for the old ones (docs/maths.md, "Metabolic labelling: new and
    old RNA", "Scores and information"); no numerical differentiation.

    Parameters
    ----------
    new, old, k_on, k_off, k_syn, k_deg, t_label, detection, capture
        As in :func:`labelled_logpmf`; rates per hour, ``t_label`` in hours.

    Returns
    -------
    ndarray
        Shape ``broadcast(...) + (4,)``: d log P / d k_on, d k_off, d k_syn,
        d k_deg, in hours (1/rate). NaN for invalid input. Unlike a snapshot,
        the k_deg component carries information of its own: the pulse is a
        clock.
    """
    shape, rows, rates, _, _, _ = _evaluate(new, old, k_on, k_off, k_syn, k_deg, t_label,
                                            detection, capture, 1)
    return _gradient(rows, rates).reshape(shape + (4,))


def labelled_information(new: ArrayLike, old: ArrayLike, k_on: ArrayLike, k_off: ArrayLike,
                         k_syn: ArrayLike, k_deg: ArrayLike, *, t_label: ArrayLike,
                         detection: ArrayLike = config.DETECTION,
                         capture: ArrayLike = 1.0) -> np.ndarray:
    """Observed information of one observation: minus the Hessian of log P.

    Exact second-order sensitivities (docs/maths.md, "Metabolic labelling: new
    and old RNA", "Scores and information"). Parameters as in
    :func:`labelled_logpmf`.

    Returns
    -------
    ndarray
        Shape ``broadcast(...) + (4, 4)`` over (k_on, k_off, k_syn, k_deg), in
        hours squared. NaN for invalid input.
    """
    shape, rows, rates, _, _, _ = _evaluate(new, old, k_on, k_off, k_syn, k_deg, t_label,
                                            detection, capture, 2)
    return (-_hessian(rows, rates)).reshape(shape + (4, 4))


def labelled_fisher_information(k_on: float, k_off: float, k_syn: float, k_deg: float, *,
                                t_label: float, detection: float = config.DETECTION,
                                capture: float = 1.0, tail: float = 1e-12) -> np.ndarray:
    """Expected (Fisher) information of one cell about the four rates.

    ``sum P(n, m) score score^T`` over the counts (n, m) that carry all but
    about ``tail`` of the probability. Parameters as in
    :func:`labelled_logpmf` (scalars); the result (4, 4) over (k_on, k_off,
    k_syn, k_deg) is in hours squared. Its inverse, divided by the number of
    cells, is the asymptotic covariance of the rates' estimates.
    """
    for name, v in (("k_on", k_on), ("k_off", k_off), ("k_syn", k_syn), ("k_deg", k_deg)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a rate > 0 (per hour); got {v!r}")
    t = float(check_t_label(t_label).reshape(-1)[0])
    pi = float(check_detection(detection).reshape(-1)[0])
    c = float(check_capture(capture).reshape(-1)[0])
    n, m = count_lattice(k_syn, k_deg, c, tail)
    shape, rows, rates, _, _, _ = _evaluate(n, m, k_on, k_off, k_syn, k_deg, t, pi, c, 1)
    p = np.exp(rows.logp)
    g = _gradient(rows, rates)
    seen = p > 0            # counts of probability 0 (log P = -inf) have no score
    return np.einsum("i,ip,iq->pq", p[seen], g[seen], g[seen])


def count_lattice(k_syn: float, k_deg: float, capture: float,
                  tail: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """The (new, old) counts that carry all but about ``tail`` of the
    probability of one cell: new + old <= the Poisson-Beta tail count of the
    total (which bounds both axes, whatever the pulse, detection or switching
    rates). Returns two flat int arrays."""
    lam = capture * k_syn / k_deg
    top = int(_k.tail_count(lam, float(np.log(tail)) - 5.0))
    nn, mm = np.meshgrid(np.arange(top + 1), np.arange(top + 1), indexing="ij")
    keep = (nn + mm) <= top
    return nn[keep], mm[keep]


def log_derivatives(new, old, k_on: float, k_off: float, k_syn: float, k_deg: float, *,
                    t_label: float, detection: float, capture: float, hessian: bool = True):
    """log P, its gradient S (size, 4) and (``hessian``; else None) its Hessian
    H (size, 4, 4) in the log rates (log k_on, log k_off, log k_syn, log k_deg)
    at counts (new, old), in one evaluation (the design of a pulse needs all
    three; docs/maths.md, "Experiment design")."""
    _, rows, rates, _, _, _ = _evaluate(new, old, k_on, k_off, k_syn, k_deg, t_label,
                                        detection, capture, 2 if hessian else 1)
    r = rates[:4].T                                           # (size, 4)
    S = _gradient(rows, rates) * r
    if not hessian:
        return np.asarray(rows.logp), S, None
    H = _hessian(rows, rates) * r[:, :, None] * r[:, None, :]
    idx = np.arange(4)
    H[:, idx, idx] += S
    return np.asarray(rows.logp), S, H


def labelled_histogram_loglik(new, old, weights, k_on: float, k_off: float, k_syn: float,
                              k_deg: float, *, t_label, capture=None, detection=None,
                              groups=None, info: bool = False):
    """Log-likelihood of one gene's histogram of (new, old) pairs, with its
    gradient (and observed information) in the rates -- the call a fitter makes.

    Parameters
    ----------
    new, old : array_like of int
        The bins' counts.
    weights : array_like
        Number of cells in each bin.
    k_on, k_off, k_syn, k_deg : float
        Rates, per hour.
    t_label : float or array_like
        Pulse length in hours, one per cell group (or a single number).
    capture, detection : float or array_like, optional
        Per cell group (default 1 and ``config.DETECTION``).
    groups : array_like of int, optional
        Cell group of each bin (default: all in group 0).
    info : bool
        Also return the observed information (4, 4).

    Returns
    -------
    (loglik, gradient (4,)) or (loglik, gradient, information (4, 4)), rates
    in the order of :data:`RATES`.
    """
    new = np.ascontiguousarray(new, dtype=np.int64).ravel()
    old = np.ascontiguousarray(old, dtype=np.int64).ravel()
    weights = np.ascontiguousarray(weights, dtype=np.float64).ravel()
    if not new.shape == old.shape == weights.shape:
        raise ValueError("new, old and weights must have one entry per bin")
    if (new < 0).any() or (old < 0).any():
        raise ValueError("counts must be non-negative integers")
    t = np.atleast_1d(check_t_label(t_label)).ravel()
    n_groups = t.size
    c = np.atleast_1d(check_capture(1.0 if capture is None else capture)).ravel()
    pi = np.atleast_1d(check_detection(config.DETECTION if detection is None
                                       else detection)).ravel()
    if c.size == 1:
        c = np.full(n_groups, c[0])
    if pi.size == 1:
        pi = np.full(n_groups, pi[0])
    if n_groups == 1 and max(c.size, pi.size) > 1:
        n_groups = max(c.size, pi.size)
        t = np.full(n_groups, t[0])
        c = np.broadcast_to(c, (n_groups,)).copy() if c.size == 1 else c
        pi = np.broadcast_to(pi, (n_groups,)).copy() if pi.size == 1 else pi
    if not t.size == c.size == pi.size:
        raise ValueError("t_label, capture and detection must have one value per cell group")
    grp = (np.zeros(new.size, dtype=np.int64) if groups is None
           else np.ascontiguousarray(groups, dtype=np.int64).ravel())
    if grp.shape != new.shape or (grp < 0).any() or (grp >= n_groups).any():
        raise ValueError(f"groups must give each bin a cell group in 0..{n_groups - 1}")
    for name, v in (("k_on", k_on), ("k_off", k_off), ("k_syn", k_syn), ("k_deg", k_deg)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a rate > 0 (per hour); got {v!r}")
    out = np.zeros(_k.LabelledTotals.SIZE)
    _k.histogram_eval(float(k_on), float(k_off), float(k_syn), float(k_deg), t, c, pi, grp,
                      new, old, weights, 2 if info else 1, out)
    res = _k.LabelledTotals(out)
    if not info:
        return res.loglik, res.gradient.copy()
    return res.loglik, res.gradient.copy(), res.information
