"""Experiment design: how many cells, at what depth, from the expected information.

Before sequencing, the questions are how precisely an experiment will pin down
each gene's burst frequency and burst size, how many cells per group a
differential test needs to see a given fold change, and how to split a fixed
budget between more cells and deeper sequencing (higher capture). All answers
here come from the exact per-cell Fisher information of the model the fitter
uses (docs/maths.md, "Experiment design"):

- :func:`fisher_information`: the expected information of one cell, summed
  exactly over the count distribution (with a stated, tested truncation
  bound) and averaged over a capture distribution, in the parametrisation
  asked for;
- :func:`expected_precision`: predicted standard errors and 95% intervals of
  log burst frequency and log burst size for ``n_cells`` cells, with the
  predicted probability that the fit lands in a limit regime and a column
  saying where the asymptotics do not hold;
- :func:`power` and :func:`cells_needed`: the power of the likelihood-ratio
  test of :func:`telegraph.differential.differential` and the cells per group
  it needs, from the noncentrality that the information gives with the other
  rates as nuisance parameters;
- :func:`optimize`: the cells/depth split of a budget under a stated
  :class:`CostModel`, by gradient ascent on a Bayesian expected information
  gain (under a prior over kinetics) or a local D- or A-criterion; the
  gradient of the expected information gain is estimated by the
  score-function (REINFORCE) estimator from simulated cells, with a baseline
  and its standard error (:func:`eig_gradient`), or computed exactly;
- :func:`plan`: the per-gene table of the command line ``telegraph design``.

Observation models are classes with four methods (:class:`OneSpecies`: one
species with binomial capture, the stationary Poisson-Beta law); ``model=``
names one in :data:`MODELS`. Models for unspliced/spliced counts and for
metabolic labelling (where a pulse length becomes a design variable) come
when those models are on main: each is one more class.

Rates are per unit time; with the default ``k_deg=1`` they are in units of the
mRNA degradation rate. Parameters broadcast (one row per parameter set);
invalid parameters give NaN.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize as sopt
from scipy import stats

from . import blocks, config, joint, labelled
from .calibration import critical_statistic
from .differential import differential, differential_histograms
from .fitting import fit_raw
from .gradient import lr_terms
from .histogram import CountHistograms, capture_groups
from .inputs import Capture, CaptureDistribution, FitSettings, capture_distribution, check_detection
from .kernels import design as kdesign
from .kernels import fit as kfit
from .kernels.profile import illinois_step, secant_end
from .stationary import logpmf_ab
from .study import KINETICS_PRIOR

__all__ = [
    "fisher_information", "expected_precision", "power", "cells_needed", "plan",
    "kinetics_table", "eig_gradient", "optimize", "CostModel", "DesignResult",
    "DesignGradient", "OneSpecies", "MODELS", "PARAMETRISATIONS", "QUANTITIES",
    "CRITERIA", "CALIBRATIONS", "optimize_pulse", "PulseDesign", "PULSE_QUANTITIES",
]

log = logging.getLogger("telegraph")

#: parametrisations of :func:`fisher_information`: name -> its three coordinates
PARAMETRISATIONS = {
    "log_rates": ("log_k_on", "log_k_off", "log_k_syn"),
    "rates": ("k_on", "k_off", "k_syn"),
    "log_burst": ("log_burst_frequency", "log_burst_size", "log_k_off"),
    "burst": ("burst_frequency", "burst_size", "k_off"),
}

#: quantities a differential test compares, with their contrast in
#: theta = (log k_on, log k_off, log k_syn): log burst frequency = log k_on,
#: log burst size = log k_syn - log k_off
QUANTITIES = {
    "burst_frequency": np.array([1.0, 0.0, 0.0]),
    "burst_size": np.array([0.0, -1.0, 1.0]),
}

#: null laws of the differential test that :func:`power` and :func:`cells_needed` predict for
CALIBRATIONS = ("bootstrap", "panel", "chi2")

#: criteria of :func:`optimize` and :func:`eig_gradient`
CRITERIA = ("eig", "D", "A")

_LIMITS = ("poisson", "bursty", "bimodal")
#: degrees of freedom by which the telegraph model exceeds each limit model
_LIMIT_DF = {"poisson": 2, "bursty": 1, "bimodal": 1}
#: capture groups of the exemplary histograms behind ``p_limit_regime``
_EXEMPLARY_GROUPS = 8


# --------------------------------------------------------------------------- observation models


class OneSpecies:
    """One species with binomial capture: the stationary Poisson-Beta law.

    A cell's count n has p ~ Beta(a, b), n | p ~ Poisson(s lambda p) with
    a = k_on/k_deg, b = k_off/k_deg, lambda = k_syn/k_deg and capture s. The
    snapshot identifies theta = (log a, log b, log lambda) = the log rates in
    units of k_deg, not k_deg itself. Every method works on flat arrays of
    parameter sets; a new observation model provides the same four.
    """

    name = "one_species"
    #: the coordinates the information is computed in
    coordinates = ("log_k_on", "log_k_off", "log_k_syn")
    #: whether the model identifies k_deg (a snapshot does not)
    identifies_k_deg = False

    def information(self, a, b, lam, capture: CaptureDistribution, moving=None, *,
                    tol: float = config.DESIGN_INFO_TOL, deriv: bool = False,
                    progress: bool | None = config.PROGRESS):
        """Per-cell information in theta, averaged over ``capture``.

        Returns ``I`` (m, 3, 3), ``dI`` (m, 3, 3): its derivative in the log of
        a common factor of the capture of the groups where ``moving`` is 1
        (zeros unless ``deriv``), and the relative truncation bound (m,).
        """
        m = a.shape[0]
        I = np.full((m, 3, 3), np.nan)
        dI = np.full((m, 3, 3), np.nan)
        bound = np.full(m, np.nan)
        terms = np.zeros(m, np.int64)
        caps = np.ascontiguousarray(capture.values, dtype=np.float64)
        w = np.ascontiguousarray(capture.weights, dtype=np.float64)
        dw = w * (np.ones_like(w) if moving is None else np.asarray(moving, np.float64))
        with blocks.gene_blocks(m, progress=progress, desc="telegraph design") as chunks:
            for start, stop in chunks:
                sl = slice(start, stop)
                kdesign.information_many(
                    np.ascontiguousarray(a[sl], dtype=np.float64),
                    np.ascontiguousarray(b[sl], dtype=np.float64),
                    np.ascontiguousarray(lam[sl], dtype=np.float64), caps, w, dw,
                    float(tol), bool(deriv), I[sl], dI[sl], bound[sl], terms[sl])
        return I, dI, bound

    def sample(self, rng: np.random.Generator, a, b, lam, cell_capture, importance=True):
        """Simulated counts (m sets, c cells) for the score-function estimates,
        with their importance weights (m, c).

        The information's derivative draws much of its value from rare cells
        with high counts (high promoter activity p), which a plain sample
        sees too seldom: its mean is then usually too small and its standard
        error too optimistic. So p is drawn from the defensive mixture
        q = (Beta(a, b) + Beta(a, b_t)) / 2 with b_t = min(b, max(1/2, b/4)),
        which over-samples high activity, and each cell carries the weight
        Beta(a, b)(p) / q(p) (unbiased; at most 2); n | p ~ Poisson(capture
        lambda p) as in the model. ``importance=False``: plain draws from the
        model (weights 1).
        """
        m = np.size(a)
        c = len(cell_capture)
        a2 = np.asarray(a, float)[:, None]
        b2 = np.asarray(b, float)[:, None]
        bt = np.minimum(b2, np.maximum(0.5, b2 / 4.0))
        if importance:
            tilt = rng.random((m, c)) < 0.5
            p = np.where(tilt, rng.beta(a2, np.broadcast_to(bt, (m, c))),
                         rng.beta(a2, np.broadcast_to(b2, (m, c))))
            with np.errstate(over="ignore", invalid="ignore"):
                r = np.exp(stats.beta.logpdf(p, a2, bt) - stats.beta.logpdf(p, a2, b2))
            w = np.where(np.isnan(r), 1.0, 2.0 / (1.0 + r))
        else:
            p = rng.beta(a2, np.broadcast_to(b2, (m, c)))
            w = np.ones((m, c))
        x = np.asarray(lam, float)[:, None] * np.asarray(cell_capture, float)[None, :]
        counts = rng.poisson(x * p).astype(np.int64)
        return np.ascontiguousarray(counts), w

    def cell_scores(self, counts, groups, capture: CaptureDistribution, moving, a, b, lam):
        """Each simulated cell's score S (m, c, 3) in theta, its derivative dS
        (m, c, 3) in the log capture factor at the fixed count, and the design
        score d (m, c) = d log P(n) / d log capture (see
        :func:`telegraph.kernels.design.cell_scores`)."""
        m, c = counts.shape
        S = np.empty((m, c, 3))
        dS = np.empty((m, c, 3))
        d = np.empty((m, c))
        kdesign.cell_scores(np.ascontiguousarray(counts, dtype=np.int64),
                            np.ascontiguousarray(groups, dtype=np.int64),
                            np.ascontiguousarray(capture.values, dtype=np.float64),
                            np.ascontiguousarray(moving, dtype=np.float64),
                            np.ascontiguousarray(a, dtype=np.float64),
                            np.ascontiguousarray(b, dtype=np.float64),
                            np.ascontiguousarray(lam, dtype=np.float64), S, dS, d)
        return S, dS, d

    def exemplary_histograms(self, a, b, lam, capture: CaptureDistribution,
                             n_cells) -> CountHistograms:
        """The expected count histogram of each set ("exemplary data"):
        ``n_cells * weight_g * P(n | capture_g)``, counts up to 12 Poisson
        standard deviations above the largest mean."""
        m = a.shape[0]
        n_cells = np.broadcast_to(np.asarray(n_cells, float), (m,))
        vals, grps, wts, ptr = [], [], [], [0]
        for i in range(m):
            for g, (s, w) in enumerate(zip(capture.values, capture.weights)):
                x = s * lam[i]
                n = np.arange(int(x + 12.0 * math.sqrt(x) + 25.0))
                p = np.exp(logpmf_ab(n, a[i], b[i], x))
                keep = p > 1e-14
                vals.append(n[keep])
                grps.append(np.full(int(keep.sum()), g))
                wts.append(n_cells[i] * w * p[keep])
            ptr.append(ptr[-1] + sum(v.size for v in vals[len(vals) - capture.values.size:]))
        return CountHistograms(np.asarray(ptr), np.concatenate(vals), np.concatenate(grps),
                               np.concatenate(wts), capture.values,
                               np.round(n_cells).astype(np.int64), np.zeros(m, np.int64))


class _RateModel:
    """An observation model that identifies k_deg: its information is over
    theta = (log k_on, log k_off, log k_syn, log k_deg), computed from the
    rates themselves (:meth:`information_rates`). No design derivative, no
    exemplary data: :func:`power` uses the information's noncentrality and a
    chi-square(1) null law (as the two-species test does)."""

    coordinates = ("log_k_on", "log_k_off", "log_k_syn", "log_k_deg")
    identifies_k_deg = True
    options: dict = {}

    def information_rates(self, k_on, k_off, k_syn, k_deg, capture: CaptureDistribution, *,
                          tol, progress, **options):
        """Per-cell information (m, 4, 4) in theta averaged over ``capture``
        and the probability left out of the sums (m,)."""
        m = np.size(k_on)
        I = np.zeros((m, 4, 4))
        left = np.zeros(m)
        with blocks.gene_blocks(m, progress=progress, chunk_genes=1,
                                desc=f"telegraph design ({self.name})") as chunks:
            for start, stop in chunks:
                for i in range(start, stop):
                    r = np.array([k_on[i], k_off[i], k_syn[i], k_deg[i]])
                    for s, w in zip(capture.values, capture.weights):
                        J, miss = self._one(r, float(s), **options)
                        I[i] += w * J * r[:, None] * r[None, :]
                        left[i] += w * miss
        return I, left


class TwoSpecies(_RateModel):
    """Unspliced and spliced counts of each cell: the joint stationary law of
    :mod:`telegraph.joint` (both species captured with the same efficiency).
    Rates are in units of the splicing rate k_splice (as the two-species fit
    reports them); k_deg (of spliced mRNA) is identified."""

    name = "two_species"

    def _one(self, r, s, **_):
        a, b, lam, gam = r[0], r[1], r[2] * s, r[3]
        u_lo, nu, s_lo, ns = joint.lattice_box(a, b, lam, gam)
        uu, ss = np.meshgrid(np.arange(u_lo, u_lo + nu), np.arange(s_lo, s_lo + ns),
                             indexing="ij")
        rows, _ = joint.evaluate_bins(a, b, lam, gam, uu.ravel(), ss.ravel(),
                                      box=(u_lo, nu, s_lo, ns), want=1)
        p = np.exp(np.asarray(rows.logp))
        S = np.asarray(rows.score) * np.array([1.0, 1.0, s, 1.0])   # d/d(k_on, k_off, k_syn, k_deg)
        return np.einsum("n,ni,nj->ij", p, S, S), max(0.0, 1.0 - float(p.sum()))


class Labelled(_RateModel):
    """New and old (metabolically labelled / unlabelled) counts of each cell
    after a pulse of length ``t_label`` (hours), new molecules detected with
    probability ``detection``: the law of :mod:`telegraph.labelled`. Rates are
    per hour (absolute: the pulse sets the clock); k_deg is identified."""

    name = "labelled"

    def _one(self, r, s, *, t_label, detection):
        J = labelled.labelled_fisher_information(*r, t_label=t_label, detection=detection,
                                                 capture=s)
        return J, 0.0


#: observation models by name (``model=``)
MODELS = {"one_species": OneSpecies(), "two_species": TwoSpecies(), "labelled": Labelled()}


def _model(model):
    if isinstance(model, (OneSpecies, _RateModel)):
        return model
    try:
        return MODELS[model]
    except (KeyError, TypeError):
        raise ValueError(f"model must be one of {sorted(MODELS)}; got {model!r}") from None


# --------------------------------------------------------------------------- argument handling


def _capture(capture) -> CaptureDistribution:
    """A planned capture as a distribution: one value, (values, weights), a
    mapping, a :class:`telegraph.inputs.Capture`, or a per-cell array (grouped
    as the fitter groups cells, :func:`telegraph.histogram.capture_groups`)."""
    if isinstance(capture, Capture):
        capture = 1.0 if capture.efficiency is None else capture.efficiency
    if isinstance(capture, (CaptureDistribution, Mapping, tuple)):
        return capture_distribution(capture)
    arr = np.asarray(capture)
    if arr.ndim == 0:
        return capture_distribution(arr)
    if arr.ndim != 1:
        raise ValueError(f"capture must be one efficiency, a (values, weights) pair or a 1-D "
                         f"per-cell array; got shape {arr.shape}")
    group_of, values = capture_groups(arr, max_groups=config.CAPTURE_BINS,
                                      rtol=config.CAPTURE_RTOL)
    weights = np.bincount(group_of, minlength=values.size).astype(float)
    return capture_distribution((values, weights))


def _coarse(dist: CaptureDistribution, k: int) -> CaptureDistribution:
    """At most ``k`` groups of about equal weight, each at its weighted mean capture."""
    if dist.values.size <= k:
        return dist
    order = np.argsort(dist.values)
    v, w = dist.values[order], dist.weights[order]
    cut = np.minimum((np.cumsum(w) - 0.5 * w) * k, k - 1).astype(int)
    wt = np.bincount(cut, w, minlength=k)
    keep = wt > 0
    return CaptureDistribution(np.bincount(cut, w * v, minlength=k)[keep] / wt[keep], wt[keep])


class _Sets(NamedTuple):
    """Broadcast parameter sets, flattened: shape, rates, dimensionless a, b, lam, valid."""
    shape: tuple
    k_on: np.ndarray
    k_off: np.ndarray
    k_syn: np.ndarray
    k_deg: np.ndarray
    a: np.ndarray
    b: np.ndarray
    lam: np.ndarray
    valid: np.ndarray
    extra: tuple


def _sets(k_on, k_off, k_syn, k_deg, *extra) -> _Sets:
    arrs = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in
                                 (k_on, k_off, k_syn, k_deg) + extra))
    shape = arrs[0].shape
    flat = [np.ascontiguousarray(v.ravel()) for v in arrs]
    kon, koff, ksyn, kdeg = flat[:4]
    with np.errstate(invalid="ignore"):
        valid = np.ones(kon.shape, bool)
        for v in (kon, koff, ksyn, kdeg):
            valid &= np.isfinite(v) & (v > 0)
        a = np.where(valid, kon / np.where(valid, kdeg, 1.0), np.nan)
        b = np.where(valid, koff / np.where(valid, kdeg, 1.0), np.nan)
        lam = np.where(valid, ksyn / np.where(valid, kdeg, 1.0), np.nan)
    return _Sets(shape, kon, koff, ksyn, kdeg, a, b, lam, valid, tuple(flat[4:]))


def _information(sets: _Sets, dist, model, *, tol, progress, deriv=False, moving=None,
                 options=None):
    """The model's information at the valid sets, NaN elsewhere: (m, d, d) in
    the model's coordinates (d = 3 one species, 4 where k_deg is identified)."""
    m = sets.a.size
    d = len(model.coordinates)
    I = np.full((m, d, d), np.nan)
    dI = np.full((m, d, d), np.nan)
    bound = np.full(m, np.nan)
    ok = sets.valid
    opts = _model_options(model, options)
    if ok.any():
        if isinstance(model, _RateModel):
            I[ok], bound[ok] = model.information_rates(
                sets.k_on[ok], sets.k_off[ok], sets.k_syn[ok], sets.k_deg[ok], dist, tol=tol,
                progress=progress, **opts)
            return I, dI, bound
        I[ok], dI[ok], bound[ok] = model.information(sets.a[ok], sets.b[ok], sets.lam[ok], dist,
                                                     moving, tol=tol, deriv=deriv,
                                                     progress=progress)
        short = bound > tol
        if short.any():
            log.warning("the expected information of %d parameter set(s) stopped at the "
                        "longest count range before its truncation bound met tol=%g (largest "
                        "relative bound %.2g); see the truncation_bound column",
                        int(short.sum()), tol, float(np.nanmax(bound)))
    return I, dI, bound


def _model_options(model, options):
    """The options a model needs (labelled: t_label, detection), checked."""
    options = dict(options or {})
    if isinstance(model, Labelled):
        t = options.get("t_label")
        if t is None:
            raise ValueError("model='labelled' needs t_label= (the pulse length, hours)")
        t = float(t)
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"t_label is a pulse length in hours (> 0); got {t!r}")
        det = options.get("detection")
        det = config.DETECTION if det is None else float(det)
        if not 0 < det <= 1:
            raise ValueError(f"detection is a probability in (0, 1]; got {det!r}")
        return {"t_label": t, "detection": det}
    given = {k: v for k, v in options.items() if v is not None}
    if given:
        raise ValueError(f"{sorted(given)} apply to model='labelled' only")
    return {}


def _inverse(I):
    """Inverses of (m, 3, 3) information matrices, scaled to a unit diagonal
    first (NaN where not positive definite)."""
    d = np.sqrt(np.abs(np.einsum("mii->mi", I)))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(d > 0, 1.0 / d, np.nan)
    Is = I * scale[:, :, None] * scale[:, None, :]
    out = np.full_like(I, np.nan)
    good = np.isfinite(Is).all(axis=(1, 2))
    if good.any():
        w = np.linalg.eigvalsh(Is[good])
        pd_ = w[:, 0] > 1e-13 * w[:, -1]
        idx = np.flatnonzero(good)[pd_]
        out[idx] = np.linalg.inv(Is[idx]) * scale[idx, :, None] * scale[idx, None, :]
    return out


def _variance(V, quantity):
    c = QUANTITIES[quantity]
    return np.einsum("i,mij,j->m", c, V, c)


#: theta = (log k_on, log k_off, log k_syn) -> phi = (log burst frequency, log burst size,
#: log k_off): theta = _T_BURST phi
_T_BURST = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
_BURST_INDEX = {"burst_frequency": 0, "burst_size": 1}


def _burst_matrix(d):
    """theta -> phi: the first three coordinates as _T_BURST, the rest (log k_deg) kept."""
    T = np.eye(d)
    T[:3, :3] = _T_BURST
    return T


def _burst_covariance(I):
    """Per-cell covariance (m, 3, 3) of phi = (log burst frequency, log burst size, log k_off)
    (with log k_deg, where the model has it, as one more nuisance parameter)."""
    T = _burst_matrix(I.shape[-1])
    return _inverse(np.einsum("ki,mkl,lj->mij", T, I, T))[:, :3, :3]


def _var_positive_part(t):
    """Var(max(Z, 0)) for Z ~ N(t, 1)."""
    t = np.asarray(t, float)
    cdf, pdf = stats.norm.cdf(t), stats.norm.pdf(t)
    m1 = t * cdf + pdf
    m2 = (t * t + 1.0) * cdf + t * pdf
    return np.clip(m2 - m1 * m1, 0.0, 1.0)


def _estimator_variance(Vb, n, quantity):
    """Variance of the fitted log burst frequency or size from ``n`` cells.

    ``Vb`` is the per-cell covariance of (log burst frequency, log burst size,
    log k_off) (:func:`_burst_covariance`). Asymptotically the estimate is
    normal with variance V_qq / n; but the fitter reports the bursty limit
    (k_off = inf) whenever the likelihood is highest there, so it estimates
    eta = k_deg/k_off >= 0 on a boundary. With eta_hat normal about eta = 1/b
    with standard deviation sigma = se(log k_off)/b, the constrained estimate
    is max(eta_hat, 0), and the regression of the target on eta gives

        Var = (V_qq - V_qb^2/V_bb (1 - v(t))) / n,   t = eta/sigma = 1/se(log k_off),

    with v(t) = Var(max(Z, 0)), Z ~ N(t, 1) (Chernoff 1954; Self & Liang 1987;
    docs/maths.md, "Experiment design"). Far from the limit (t large) v = 1 and
    this is V_qq / n.
    """
    j = _BURST_INDEX[quantity]
    n = np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        vqq, vqb, vbb = Vb[:, j, j], Vb[:, j, 2], Vb[:, 2, 2]
        t = np.sqrt(n / vbb)
        shrink = np.where(vbb > 0, vqb * vqb / vbb, 0.0) * (1.0 - _var_positive_part(t))
        return (vqq - shrink) / n


def _check_quantity(quantity):
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {sorted(QUANTITIES)}; got {quantity!r}")


def _check_level(name, value):
    if not (isinstance(value, (int, float, np.floating)) and 0.0 < value < 1.0):
        hint = (f" (did you mean {value / 100:g}?)"
                if isinstance(value, (int, float)) and 1 < value < 100 else "")
        raise ValueError(f"{name} must be in (0, 1); got {value!r}{hint}")


# --------------------------------------------------------------------------- information


def _transform(I, sets: _Sets, parametrisation):
    """Information in theta = log rates -> the parametrisation asked for."""
    if parametrisation == "log_rates":
        return I
    d = I.shape[-1]
    extra = [1.0 / sets.k_deg] if d == 4 else []
    if parametrisation == "rates":
        J = np.stack([1.0 / sets.k_on, 1.0 / sets.k_off, 1.0 / sets.k_syn] + extra, axis=1)
        return I * J[:, :, None] * J[:, None, :]
    # phi = (log k_on, log burst size, log k_off[, log k_deg]): theta = T phi
    T = _burst_matrix(d)
    Ip = np.einsum("ki,mkl,lj->mij", T, I, T)
    if parametrisation == "log_burst":
        return Ip
    J = np.stack([1.0 / sets.k_on, sets.k_off / sets.k_syn, 1.0 / sets.k_off] + extra, axis=1)
    return Ip * J[:, :, None] * J[:, None, :]


def fisher_information(k_on: ArrayLike, k_off: ArrayLike, k_syn: ArrayLike,
                       k_deg: ArrayLike = 1.0, *, capture=1.0,
                       parametrisation: str = "log_rates", model: str = "one_species",
                       t_label: float | None = None, detection: float | None = None,
                       tol: float = config.DESIGN_INFO_TOL, return_bound: bool = False,
                       progress: bool | None = config.PROGRESS):
    """Expected Fisher information of one cell about the kinetics.

    The exact expectation over the count distribution, I = sum_n P(n) S(n)
    S(n)^T with S the exact score (Fisher's identity), summed from n = 0 until
    a rigorous bound on the rest of every diagonal entry is below ``tol``
    times the entry (docs/maths.md, "Experiment design"), and averaged over
    the cells' capture efficiencies. The information of N independent cells
    is N times this.

    Parameters
    ----------
    k_on, k_off, k_syn : array_like
        Promoter activation and inactivation rates and the transcription rate
        while on, per unit time (in units of k_deg with the default k_deg).
        Broadcast against each other and ``k_deg``: one matrix per set.
    k_deg : array_like, default 1
        mRNA degradation rate per unit time. A snapshot does not identify it:
        it is held fixed (it only sets the unit of the rates).
    capture : float, (values, weights), mapping, array_like or Capture
        Capture efficiency in (0, 1] of the planned cells: one value, a
        distribution (distinct values and the fraction of cells with each),
        or one value per cell (grouped as the fitter groups cells).
    parametrisation : {"log_rates", "rates", "log_burst", "burst"}
        Coordinates of the information (:data:`PARAMETRISATIONS`):
        (log k_on, log k_off, log k_syn) (dimensionless); (k_on, k_off, k_syn)
        (units time^2); (log burst frequency, log burst size, log k_off); or
        (burst frequency k_on, burst size k_syn/k_off, k_off).
    model : {"one_species", "two_species", "labelled"}
        Observation model (:data:`MODELS`): one species with capture (the
        snapshot, k_deg not identified: 3 coordinates); ``"two_species"``
        (unspliced and spliced counts, :mod:`telegraph.joint`; rates in units
        of the splicing rate; k_deg identified: a fourth coordinate, log k_deg
        or k_deg); ``"labelled"`` (new and old counts after a pulse of
        ``t_label`` hours, :mod:`telegraph.labelled`; rates per hour; k_deg
        identified).
    t_label, detection : float, optional
        ``"labelled"`` only: pulse length (hours) and the probability that a
        new molecule is detected as new (default ``config.DETECTION``).
    tol : float
        Relative truncation bound of the sum over counts (one species; the
        other models sum over a lattice box whose left-out probability is
        returned as the bound).
    return_bound : bool
        Also return the achieved relative bound r: every entry satisfies
        ``abs(I_ij - I_ij(truncated)) <= r sqrt(I_ii I_jj)``.
    progress : bool or None
        Progress bar over parameter sets on stderr: None (default) when
        stderr is a terminal or in a Jupyter kernel, True always, False never.

    Returns
    -------
    ndarray, shape ``broadcast + (d, d)``
        Per-cell information in the coordinates asked for (d = 3, or 4 with
        k_deg last for the models that identify it); NaN for invalid
        parameters. With ``return_bound``, also the bound, shape ``broadcast``.

    Examples
    --------
    >>> import telegraph as tg
    >>> I = tg.design.fisher_information(0.5, 2.0, 20.0, capture=0.3)
    >>> I.shape
    (3, 3)
    """
    if parametrisation not in PARAMETRISATIONS:
        raise ValueError(f"parametrisation must be one of {sorted(PARAMETRISATIONS)}; got "
                         f"{parametrisation!r}")
    mdl = _model(model)
    dist = _capture(capture)
    sets = _sets(k_on, k_off, k_syn, k_deg)
    I, _, bound = _information(sets, dist, mdl, tol=tol, progress=progress,
                               options={"t_label": t_label, "detection": detection})
    d = I.shape[-1]
    I = _transform(I, sets, parametrisation).reshape(sets.shape + (d, d))
    if return_bound:
        return I, bound.reshape(sets.shape)[()]
    return I


# --------------------------------------------------------------------------- precision


def _limit_probabilities(sets: _Sets, dist, model, n_cells, ci, progress):
    """Predicted probability that the fit reports each limit regime, from the
    exemplary data (the expected histogram of ``n_cells`` cells): 2 (l_sup -
    l_limit) there is the noncentrality of the statistic that decides the
    regime (docs/maths.md, "Experiment design")."""
    m = sets.a.size
    out = {lim: np.full(m, np.nan) for lim in _LIMITS}
    ok = sets.valid & (n_cells >= 1)
    if not ok.any():
        return out
    hist = model.exemplary_histograms(sets.a[ok], sets.b[ok], sets.lam[ok],
                                      _coarse(dist, _EXEMPLARY_GROUPS), n_cells[ok])
    settings = FitSettings(ci=ci, interval="wald", min_cells=1, profile=(),
                           gof_min_expected=0.0)
    raw = []
    with blocks.gene_blocks(hist.n_genes, progress=progress,
                            desc="telegraph design (limits)") as chunks:
        for start, stop in chunks:
            raw.append(fit_raw(hist, settings, slice(start, stop)))
    rows = kfit.FitRows(np.vstack(raw))
    lls = {"telegraph": rows.loglik, "poisson": rows.loglik_poisson,
           "bursty": rows.loglik_nb, "bimodal": rows.loglik_zip}
    sup = np.nanmax(np.column_stack(list(lls.values())), axis=1)
    crit = stats.chi2.ppf(ci, 1)
    for lim in _LIMITS:
        nc = np.clip(2.0 * (sup - lls[lim]), 0.0, None)
        with np.errstate(invalid="ignore"):
            p = np.where(nc > 1e-12, stats.ncx2.cdf(crit, _LIMIT_DF[lim], np.maximum(nc, 1e-12)),
                         stats.chi2.cdf(crit, _LIMIT_DF[lim]))
        p = np.where(np.isfinite(lls[lim]), p, 0.0)
        out[lim][ok] = p
    return out


def expected_precision(k_on: ArrayLike, k_off: ArrayLike, k_syn: ArrayLike,
                       k_deg: ArrayLike = 1.0, *, n_cells: ArrayLike, capture=1.0,
                       ci: float = config.CI, limits: bool = True,
                       model: str = "one_species", t_label: float | None = None,
                       detection: float | None = None, tol: float = config.DESIGN_INFO_TOL,
                       progress: bool | None = config.PROGRESS) -> pd.DataFrame:
    """Predicted precision of the fitted burst frequency and burst size.

    From the inverse of ``n_cells`` times the per-cell information
    (:func:`fisher_information`): the asymptotic standard errors of the
    log estimates, with the other rates as nuisance parameters, and the
    predicted ``ci`` intervals around the true values,
    exp(log value -/+ z se). Near the bursty limit the fitter often reports
    that limit (k_off = inf), which truncates the uncertainty of k_off and
    with it part of that of burst frequency and size; the standard errors of
    those two include this boundary effect (docs/maths.md, "Experiment
    design"). These are what :func:`telegraph.fit` delivers on average where
    the asymptotics hold; the ``asymptotics`` column says where they do not.

    Parameters
    ----------
    k_on, k_off, k_syn, k_deg : array_like
        Rates per unit time (in units of k_deg with the default ``k_deg=1``),
        broadcast with ``n_cells``: one row per set.
    n_cells : array_like of int
        Number of cells.
    capture : float, (values, weights), mapping, array_like or Capture
        Capture efficiency of the cells (see :func:`fisher_information`).
    ci : float
        Level of the predicted intervals (and of the fitter's regime
        decision, for ``p_limit_regime``).
    limits : bool
        Compute ``p_limit_regime`` (fits the limit models to the expected
        histogram of each set: about the cost of fitting that many genes).
    model, t_label, detection, tol, progress
        As in :func:`fisher_information` (progress bars on stderr; None: on a
        terminal). With ``"two_species"`` or ``"labelled"``, k_deg is
        identified: ``k_deg_log_se`` and ``k_deg_ci_low``/``_ci_high`` are
        finite, k_deg is a nuisance parameter of the other standard errors,
        and ``p_limit_regime`` is not computed (NaN).

    Returns
    -------
    pandas.DataFrame
        One row per parameter set: ``k_on``, ``k_off``, ``k_syn``, ``k_deg``,
        ``n_cells``, ``capture_mean``, ``burst_frequency`` (= k_on, per unit
        time), ``burst_size`` (k_syn/k_off, molecules), ``burst_frequency_log_se``,
        ``burst_size_log_se``, ``k_off_log_se``, ``k_syn_log_se`` (natural-log
        scale), ``k_deg_log_se`` (inf: a snapshot does not identify k_deg),
        ``burst_frequency_ci_low``/``_ci_high`` and
        ``burst_size_ci_low``/``_ci_high`` (predicted interval bounds, same
        units as the values), ``p_limit_regime`` (predicted probability that
        the fit reports the ``poisson``, ``bursty`` or ``bimodal`` regime,
        whichever is likeliest, ``nearest_limit``), ``nonzero_cells`` (the
        expected number of cells with a non-zero count), ``truncation_bound``
        (see :func:`fisher_information`) and ``asymptotics``: ``"ok"``, or
        ``"few_cells"`` (a predicted log standard error above
        ``config.DESIGN_MAX_LOG_SE``, fewer than ``config.DESIGN_MIN_NONZERO``
        non-zero cells expected, or fewer cells than the fitter fits) and/or
        ``"near_<limit>"`` (``p_limit_regime`` above
        ``config.DESIGN_MAX_P_LIMIT``), comma separated.

    Notes
    -----
    Checked against the fitter on simulated data (tests/test_design.py,
    docs/maths.md, "Experiment design"): where ``asymptotics`` is ``"ok"``
    the spread of the fitted log burst frequency and log burst size and the
    widths of the fitter's intervals agree with the prediction within
    sampling error. Near the bursty limit (``"near_bursty"``) the boundary
    correction brings the prediction within about 10% of the widths of the
    fitter's intervals; the point estimate reported in the ``bursty`` regime
    is the negative binomial's, whose spread is up to about 20% smaller at
    the limit and can be larger (and biased) where the regime is uncertain.
    Near the bimodal or Poisson limits burst frequency (and, for Poisson,
    burst size) is not identified and the prediction does not apply. ``k_off_log_se`` and ``k_syn_log_se`` are the plain asymptotic
    values (the fitter reports k_off = k_syn = inf in the bursty limit).
    """
    _check_level("ci", ci)
    mdl = _model(model)
    dist = _capture(capture)
    sets = _sets(k_on, k_off, k_syn, k_deg, n_cells)
    n = sets.extra[0]
    if not np.all(np.isfinite(n) & (n >= 1)):
        raise ValueError("n_cells must be finite and at least 1")
    I, _, bound = _information(sets, dist, mdl, tol=tol, progress=progress,
                               options={"t_label": t_label, "detection": detection})
    V = _inverse(I) / n[:, None, None]
    Vb = _burst_covariance(I)
    z = stats.norm.ppf(0.5 + ci / 2.0)
    out = pd.DataFrame({"k_on": sets.k_on, "k_off": sets.k_off, "k_syn": sets.k_syn,
                        "k_deg": sets.k_deg, "n_cells": n, "capture_mean": dist.mean})
    out["burst_frequency"] = np.where(sets.valid, sets.k_on, np.nan)
    out["burst_size"] = np.where(sets.valid, sets.k_syn / sets.k_off, np.nan)
    with np.errstate(invalid="ignore"):
        se = {q: np.sqrt(_estimator_variance(Vb, n, q)) for q in QUANTITIES}
        se["k_off"] = np.sqrt(V[:, 1, 1])
        se["k_syn"] = np.sqrt(V[:, 2, 2])
    for q in ("burst_frequency", "burst_size", "k_off", "k_syn"):
        out[f"{q}_log_se"] = se[q]
    if mdl.identifies_k_deg:
        with np.errstate(invalid="ignore"):
            out["k_deg_log_se"] = np.sqrt(V[:, 3, 3])
    else:
        out["k_deg_log_se"] = np.where(sets.valid, np.inf, np.nan)
    for q in QUANTITIES:
        with np.errstate(over="ignore", invalid="ignore"):
            out[f"{q}_ci_low"] = out[q] * np.exp(-z * se[q])
            out[f"{q}_ci_high"] = out[q] * np.exp(z * se[q])
    with np.errstate(over="ignore", invalid="ignore"):
        kd_se = out["k_deg_log_se"].to_numpy(float)
        out["k_deg_ci_low"] = np.where(sets.valid, sets.k_deg * np.exp(-z * kd_se), np.nan)
        out["k_deg_ci_high"] = np.where(sets.valid, sets.k_deg * np.exp(z * kd_se), np.nan)
    if limits and not mdl.identifies_k_deg:
        pl = _limit_probabilities(sets, dist, mdl, n, ci, progress)
        P = np.column_stack([pl[lim] for lim in _LIMITS])
        has = np.isfinite(P).any(axis=1)
        out["p_limit_regime"] = np.where(has, np.nanmax(np.where(np.isfinite(P), P, -1), axis=1),
                                         np.nan)
        out["nearest_limit"] = np.where(has, np.array(_LIMITS)[np.argmax(np.nan_to_num(P, nan=-1),
                                                                         axis=1)], "")
    else:
        out["p_limit_regime"] = np.nan
        out["nearest_limit"] = ""
    out["nonzero_cells"] = (np.full(n.size, np.nan) if mdl.identifies_k_deg
                            else _nonzero_cells(sets, dist, n))
    out["truncation_bound"] = bound
    out["asymptotics"] = _asymptotics(out, sets.valid)
    return out


def _nonzero_cells(sets: _Sets, dist: CaptureDistribution, n):
    """Expected number of cells with a non-zero count."""
    p0 = np.zeros(sets.a.size)
    for s, w in zip(dist.values, dist.weights):
        with np.errstate(invalid="ignore"):
            p0 += w * np.exp(logpmf_ab(0, sets.a, sets.b, s * sets.lam))
    return n * (1.0 - p0)


def _asymptotics(table, valid):
    n = table["n_cells"].to_numpy(float)
    se = np.fmax(table["burst_frequency_log_se"].to_numpy(float),
                 table["burst_size_log_se"].to_numpy(float))
    nz = table["nonzero_cells"].to_numpy(float)
    few = ((n < config.MIN_CELLS) | ~(se <= config.DESIGN_MAX_LOG_SE)
           | (np.isfinite(nz) & ~(nz >= config.DESIGN_MIN_NONZERO)))
    pl = table["p_limit_regime"].to_numpy(float)
    near = pl > config.DESIGN_MAX_P_LIMIT
    lim = table["nearest_limit"].to_numpy(object)
    out = []
    for i in range(len(table)):
        if not valid[i]:
            out.append("invalid")
            continue
        why = (["few_cells"] if few[i] else []) + ([f"near_{lim[i]}"] if near[i] else [])
        out.append(",".join(why) or "ok")
    return np.array(out, dtype=object)


# --------------------------------------------------------------------------- power


def _second_group(sets: _Sets, effect, quantity, via):
    """The rates of the second group: the first group's, with burst frequency
    (k_on) or burst size (through k_syn, or through k_off) times ``effect``."""
    kon, koff, ksyn = sets.k_on.copy(), sets.k_off.copy(), sets.k_syn.copy()
    if quantity == "burst_frequency":
        kon = kon * effect
    elif via == "k_syn":
        ksyn = ksyn * effect
    else:
        koff = koff / effect
    return _sets(kon, koff, ksyn, sets.k_deg)


def _check_effect(effect):
    e = np.asarray(effect, dtype=float)
    if not np.all(np.isfinite(e) & (e > 0)):
        raise ValueError(f"effect is a fold change (> 0, e.g. 1.5); got {effect!r}")
    if np.any(e == 1.0):
        raise ValueError("effect = 1 is no change: no number of cells detects it")
    return e


class _Groups(NamedTuple):
    """The two groups of a differential design: per-cell covariances of (log
    burst frequency, log burst size, log k_off) (flat), log(effect), the
    broadcast shape, both groups' sets and the capture distribution."""
    Vb1: np.ndarray
    Vb2: np.ndarray
    delta: np.ndarray
    shape: tuple
    s1: _Sets
    s2: _Sets
    dist: CaptureDistribution
    lr_per_cell: np.ndarray


#: cells per group of the exemplary data behind the noncentrality (any large number: the
#: statistic on exemplary data is proportional to it)
_EXEMPLARY_CELLS = 10_000.0


def _exemplary_statistics(s1: _Sets, s2: _Sets, dist, quantity, model, progress):
    """The likelihood-ratio statistic of the real test on the two groups'
    exemplary data (expected histograms, :meth:`OneSpecies.exemplary_histograms`),
    per cell of each group: n times this is the noncentrality at n cells per
    group (docs/maths.md, "Experiment design"). NaN where the test leaves the
    exemplary data untested or the model has no exemplary data."""
    m = s1.a.size
    out = np.full(m, np.nan)
    ok = np.flatnonzero(s1.valid & s2.valid)
    if ok.size == 0 or not hasattr(model, "exemplary_histograms"):
        return out
    coarse = _coarse(dist, _EXEMPLARY_GROUPS)
    n = np.full(ok.size, _EXEMPLARY_CELLS)
    h1 = model.exemplary_histograms(s1.a[ok], s1.b[ok], s1.lam[ok], coarse, n)
    h2 = model.exemplary_histograms(s2.a[ok], s2.b[ok], s2.lam[ok], coarse, n)
    res = differential_histograms(h1, h2, interval="wald", calibration="chi2", weighting="none",
                                  progress=progress)
    out[ok] = res[f"lr_{quantity}"].to_numpy(float) / _EXEMPLARY_CELLS
    return out


def _group_covariances(k_on, k_off, k_syn, k_deg, effect, quantity, via, capture, model, tol,
                       progress, exemplary=True) -> _Groups:
    """The two groups' covariances (:class:`_Groups`), and with ``exemplary``
    the statistic of the test on their exemplary data."""
    _check_quantity(quantity)
    if via not in ("k_syn", "k_off"):
        raise ValueError(f"via must be 'k_syn' or 'k_off' (how burst size changes); got {via!r}")
    mdl = _model(model)
    dist = _capture(capture)
    effect = _check_effect(effect)
    s1 = _sets(k_on, k_off, k_syn, k_deg, effect)
    eff = s1.extra[0]
    s2 = _second_group(s1, eff, quantity, via)
    both = _sets(np.concatenate([s1.k_on, s2.k_on]), np.concatenate([s1.k_off, s2.k_off]),
                 np.concatenate([s1.k_syn, s2.k_syn]), np.concatenate([s1.k_deg, s2.k_deg]))
    I, _, _ = _information(both, dist, mdl, tol=tol, progress=progress)
    Vb = _burst_covariance(I)
    m = s1.a.size
    lr = (_exemplary_statistics(s1, s2, dist, quantity, mdl, progress) if exemplary
          else np.full(m, np.nan))
    return _Groups(Vb[:m], Vb[m:], np.log(eff), s1.shape, s1, s2, dist, lr)


def _noncentrality(Vb1, Vb2, delta, n, quantity, lr_per_cell=None):
    """Noncentrality of the test's statistic with n cells per group: n times
    the statistic on exemplary data where there is one, else from the
    information, delta^2 / (v1 + v2)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        info = delta ** 2 / (_estimator_variance(Vb1, n, quantity)
                             + _estimator_variance(Vb2, n, quantity))
        if lr_per_cell is None:
            return info
        return np.where(np.isfinite(lr_per_cell), np.asarray(n, float) * lr_per_cell, info)


def _critical_value(alpha):
    """chi-square(1) at level alpha: the reference law of the likelihood-ratio
    statistic of :func:`telegraph.differential.differential` before its
    calibrated scale."""
    return stats.chi2.isf(alpha, 1)


def _check_calibration(calibration):
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS}; got {calibration!r} "
                         "('bootstrap': the test's calibrated null law, as "
                         "telegraph.differential.differential applies it by default; 'chi2': "
                         "its calibration='chi2')")


def _simulated_groups(rng, s1: _Sets, s2: _Sets, idx, n, dist: CaptureDistribution, copies):
    """Counts of two groups (cells x genes, NaN beyond a gene's cells) and the
    cells' capture: ``copies`` genes for each set of ``idx``, each with its set's
    number of cells ``n`` (at most ``config.DESIGN_NULL_MAX_CELLS``: the null
    scale has settled by then), drawn exactly from the stationary law."""
    genes = np.repeat(np.asarray(idx, np.int64), copies)
    cells = np.repeat(np.minimum(np.asarray(n, float)[idx], config.DESIGN_NULL_MAX_CELLS),
                      copies).astype(np.int64)
    top = int(cells.max())
    # the cells' capture groups in proportion to the weights, in random order (a gene
    # with fewer cells takes the first ones)
    groups, _ = _allocate(max(top, dist.values.size), dist.weights)
    cap = dist.values[rng.permutation(groups)][:top]
    out = []
    for s in (s1, s2):
        p = rng.beta(s.a[genes][None, :], s.b[genes][None, :], size=(top, genes.size))
        x = rng.poisson(cap[:, None] * s.lam[genes][None, :] * p).astype(float)
        x[np.arange(top)[:, None] >= cells[None, :]] = np.nan
        out.append(x)
    return out[0], out[1], cap


def _test_criticals(s1: _Sets, s2: _Sets, n, dist, quantity, calibration, alpha, null_genes,
                    seed, progress, panels=config.DESIGN_NULL_PANELS):
    """The critical statistic at level ``alpha`` of the null law the real
    test applies to each set's genes (its scale and atom, through
    :func:`telegraph.calibration.critical_statistic`): (m, K) critical values
    of K genes simulated at the design and run through
    :func:`telegraph.differential.differential` (its bootstrap calibration,
    :func:`telegraph.calibration.null_scales`, per regime class); NaN where
    the test leaves a gene untested. ``"bootstrap"``: for each set a class of
    ``null_genes`` genes like it; ``"panel"``: the sets are the genes of one
    experiment (one gene each, classes shared as in the real test), simulated
    ``panels`` times;
    ``"chi2"``: chi-square(1)'s (the uncalibrated test)."""
    m = s1.a.size
    ok = s1.valid & s2.valid & np.isfinite(n) & (n >= 1)
    if calibration == "chi2":
        return np.where(ok[:, None], _critical_value(alpha), np.nan)
    run = dict(interval="wald", weighting="none", calibration="bootstrap", progress=False,
               depth_check=False)
    if calibration == "panel":
        # several simulated experiments of the panel: the scale one experiment's test applies
        # carries the Monte Carlo error of its bootstrap, which one simulated experiment
        # would pass into the predicted power of every gene of its class at once
        # (docs/maths.md, "Experiment design")
        K = int(panels)
        out = np.full((m, K), np.nan)
        idx = np.flatnonzero(ok)
        for e in range(K if idx.size else 0):
            X1, X2, cap = _simulated_groups(np.random.default_rng([seed, e]), s1, s2, idx, n,
                                            dist, 1)
            res = differential(X1, X2, capture1=cap, capture2=cap, **run)
            out[idx, e] = _critical_of(res, quantity, alpha)
        return out
    # experiments of at most DESIGN_NULL_PANEL genes each: the bootstrap draws at most
    # CALIBRATION_MAX_DRAWS statistics per class and experiment, so independent
    # experiments average the scale's own Monte Carlo error down
    k = int(null_genes)
    if k < 1:
        raise ValueError(f"null_genes must be at least 1; got {null_genes!r}")
    sizes = [min(config.DESIGN_NULL_PANEL, k - j) for j in range(0, k, config.DESIGN_NULL_PANEL)]
    out = np.full((m, k), np.nan)
    idx = np.flatnonzero(ok)
    with blocks.gene_blocks(idx.size, progress=progress, chunk_genes=1,
                            desc="telegraph design (null law)") as chunks:
        for start, stop in chunks:
            for i in idx[start:stop]:
                at = 0
                for e, size in enumerate(sizes):
                    X1, X2, cap = _simulated_groups(np.random.default_rng([seed, e]), s1, s2,
                                                    [i], n, dist, size)
                    res = differential(X1, X2, capture1=cap, capture2=cap, **run)
                    out[i, at:at + size] = _critical_of(res, quantity, alpha)
                    at += size
    return out


def _critical_of(res, quantity, alpha):
    """Each tested gene's critical statistic at level ``alpha`` under its
    calibrated null law (scale and atom at zero); NaN: not tested."""
    return critical_statistic(res[f"null_scale_{quantity}"].to_numpy(float),
                              res[f"null_atom_{quantity}"].to_numpy(float), alpha)


def _power_with_criticals(nc, crit):
    """Power averaged over the simulated genes of each set: a gene rejects
    when its statistic, noncentral chi-square(1) with noncentrality nc,
    exceeds its critical value ``crit``; an untested gene (NaN) never
    rejects."""
    nc = np.asarray(nc, float)[:, None]
    crit = np.asarray(crit, float)
    with np.errstate(invalid="ignore"):
        pw = np.where(np.isfinite(crit), stats.ncx2.sf(np.nan_to_num(crit, nan=1.0), 1,
                                                       np.maximum(nc, 1e-300)), 0.0)
    return np.where(np.isfinite(nc[:, 0]), pw.mean(axis=1), np.nan)


def _noncentrality_for(power_, alpha, crit=None):
    """Noncentrality at which the test (critical statistics ``crit`` of a
    set's genes, default chi-square(1)'s at ``alpha``) has the power asked:
    inf where too few of the genes are tested for it."""
    crit = np.full(1, _critical_value(alpha)) if crit is None else np.asarray(crit, float)
    tested = np.isfinite(crit).mean() if crit.size else 0.0
    if not tested > power_:
        return math.inf
    f = lambda nc: _power_with_criticals(np.array([nc]), crit[None, :])[0] - power_  # noqa: E731
    if f(1e-9) >= 0:
        return 0.0
    hi = 1.0
    while f(hi) < 0:
        hi *= 2.0
    return sopt.brentq(f, 1e-9, hi, xtol=1e-10)


def power(k_on: ArrayLike, k_off: ArrayLike, k_syn: ArrayLike, k_deg: ArrayLike = 1.0, *,
          effect: ArrayLike, n_cells: ArrayLike, quantity: str = "burst_frequency",
          alpha: float = 0.05, capture=1.0, via: str = "k_syn", model: str = "one_species",
          calibration: str = "bootstrap", null_genes: int = config.DESIGN_NULL_GENES,
          seed: int = config.CALIBRATION_SEED, tol: float = config.DESIGN_INFO_TOL,
          progress: bool | None = config.PROGRESS) -> np.ndarray:
    """Predicted power of the differential test for a fold change in one quantity.

    Group 1 has the given kinetics, group 2 the same with ``quantity``
    multiplied by ``effect``; each group has ``n_cells`` cells with the
    capture distribution ``capture``. The likelihood-ratio statistic of
    :func:`telegraph.differential.differential` (equal ``quantity``, all other
    rates free in each group) is asymptotically noncentral chi-square(1) with
    noncentrality delta^2 / (v1 + v2), delta = log(effect) and v_g the
    variance of the fitted log quantity in group g with the other rates as
    nuisance parameters: the inverse of n times the information, with the
    correction for the bursty limit of :func:`expected_precision`. The test
    rejects when the statistic exceeds c times the chi-square(1) critical
    value, c the calibrated scale of its null law (the mean bootstrap
    statistic of the gene's regime class, :mod:`telegraph.calibration`): c is
    predicted by running the real test on genes simulated at the design,
    which also gives the chance that a gene is not tested (docs/maths.md,
    "Experiment design").

    Parameters
    ----------
    k_on, k_off, k_syn, k_deg : array_like
        Kinetics of group 1, per unit time (units of k_deg by default);
        broadcast with ``effect`` and ``n_cells``.
    effect : array_like
        Fold change (group 2 over group 1), > 0 and not 1.
    n_cells : array_like
        Cells per group.
    quantity : {"burst_frequency", "burst_size"}
        What changes and is tested.
    alpha : float
        Level of the test (two-sided, as the likelihood-ratio test is),
        applied to the unadjusted p-values.
    capture
        Capture efficiency of the cells of both groups (see
        :func:`fisher_information`).
    via : {"k_syn", "k_off"}
        How a burst-size change is made: k_syn times ``effect`` (default), or
        k_off divided by it (which also changes the fraction of time on).
    model : str
        Observation model (:data:`MODELS`). The calibrated null law is the one
        species test's; ``"two_species"`` uses chi-square(1), as
        :func:`telegraph.differential.differential_two_species` does.
    calibration : {"bootstrap", "panel", "chi2"}
        The null law the test will apply: ``"bootstrap"`` (default, as
        :func:`telegraph.differential.differential`): each parameter set is
        a gene among ``null_genes`` genes like it; ``"panel"``: the parameter
        sets are the genes of one experiment, tested together (their regime
        classes share the calibration, as in the real test; the panel is
        simulated ``config.DESIGN_NULL_PANELS`` times, one gene per set, so
        each set's power averages a few draws of its class's null law and the
        sum over sets is what to compare); ``"chi2"``: plain chi-square(1) (the test's
        ``calibration="chi2"``).
    null_genes : int
        Genes simulated per set for ``"bootstrap"``.
    seed : int
        Seed of those simulations.
    tol, progress
        As in :func:`fisher_information` (progress bars on stderr; None: on a
        terminal).

    Returns
    -------
    ndarray or float
        Power in [0, 1], broadcast shape; NaN for invalid kinetics.
    """
    _check_level("alpha", alpha)
    _check_calibration(calibration)
    n = np.asarray(n_cells, dtype=float)
    if not np.all(np.isfinite(n) & (n >= 1)):
        raise ValueError("n_cells must be finite and at least 1")
    g = _group_covariances(*np.broadcast_arrays(k_on, k_off, k_syn, k_deg, n)[:4], effect,
                           quantity, via, capture, model, tol, progress)
    n = np.broadcast_to(n, np.broadcast_shapes(g.shape, n.shape)).ravel()
    delta = np.broadcast_to(g.delta, n.shape)
    nc = _noncentrality(g.Vb1, g.Vb2, delta, n, quantity, g.lr_per_cell)
    crit = _test_criticals(g.s1, g.s2, n, g.dist, quantity, _calibration_of(model, calibration),
                           alpha, null_genes, seed, progress)
    p = _power_with_criticals(nc, crit)
    return p.reshape(np.broadcast_shapes(g.shape, np.shape(n_cells)))[()]


_predicted_power = power  # plan() has an argument of that name


def _calibration_of(model, calibration):
    """The calibrated null law is the one-species test's."""
    return calibration if _model(model).name == "one_species" else "chi2"


def _cells_for(Vb1, Vb2, delta, quantity, target, lr_per_cell):
    """Smallest n at which the noncentrality reaches ``target`` (per set)."""
    j = _BURST_INDEX[quantity]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # the per-cell variance lies between its value at the boundary (v = Var(max(Z, 0))
        # at t = 0) and V_qq, so n lies between these two, and the noncentrality grows with n
        full = Vb1[:, j, j] + Vb2[:, j, j]
        least = full - (1.0 - _var_positive_part(0.0)) * sum(
            np.where(V[:, 2, 2] > 0, V[:, j, 2] ** 2 / V[:, 2, 2], 0.0) for V in (Vb1, Vb2))
        hi = target * full / delta ** 2
        lo = target * least / delta ** 2
        ok = np.isfinite(hi) & np.isfinite(lo) & (hi > 0)
        lo, hi = np.where(ok, np.maximum(lo, 1e-9), 1.0), np.where(ok, hi, 1.0)
        for _ in range(60):                       # bisection in log n
            mid = np.sqrt(lo * hi)
            reached = _noncentrality(Vb1, Vb2, delta, mid, quantity) >= target
            hi = np.where(reached, mid, hi)
            lo = np.where(reached, lo, mid)
        n = np.ceil(hi * (1.0 - 1e-12))
        n = np.where(ok, n, np.where(np.isnan(full) | np.isnan(target), np.nan, np.inf))
        ex = np.isfinite(lr_per_cell)
        n_ex = np.where(lr_per_cell > 0, np.ceil(target / np.where(ex, lr_per_cell, 1.0)
                                                 * (1.0 - 1e-12)), np.inf)
        n = np.where(ex & ~np.isnan(target), n_ex, n)
    return np.where(np.isfinite(n), np.maximum(n, config.MIN_CELLS), n)


def cells_needed(k_on: ArrayLike, k_off: ArrayLike, k_syn: ArrayLike, k_deg: ArrayLike = 1.0, *,
                 effect: ArrayLike, quantity: str = "burst_frequency", power: float = 0.8,
                 alpha: float = 0.05, capture=1.0, via: str = "k_syn",
                 model: str = "one_species", calibration: str = "bootstrap",
                 null_genes: int = config.DESIGN_NULL_GENES,
                 seed: int = config.CALIBRATION_SEED, tol: float = config.DESIGN_INFO_TOL,
                 progress: bool | None = config.PROGRESS) -> np.ndarray:
    """Cells per group for the differential test to detect a fold change.

    The smallest n (cells in each of two groups) at which the predicted power
    of :func:`power` reaches ``power``: the noncentrality delta^2 / (v1(n) +
    v2(n)) reaches the one at which the test at level ``alpha``, with the
    calibrated null scale it applies at that design, has that power (far
    from the bursty limit, v_g = V_g / n and n = nc (V1 + V2) / log(effect)^2);
    at least ``config.MIN_CELLS`` (the test's ``min_cells``). The null scale
    depends on n: it is predicted at the chi-square answer and the answer
    refined twice (with ``"panel"``, the first time from one simulated
    experiment of the panel, the second from ``config.DESIGN_NULL_PANELS``).
    Parameters as in :func:`power`.

    Returns
    -------
    ndarray or float
        Cells per group, whole numbers (float dtype: NaN for invalid
        kinetics, inf where the information cannot separate the groups or the
        test leaves too many such genes untested), one per parameter set.

    Examples
    --------
    >>> import telegraph as tg
    >>> n = tg.design.cells_needed(0.5, 2.0, 20.0, effect=1.5, capture=0.3,
    ...                            calibration="chi2")
    >>> bool(n > 100)
    True
    """
    _check_level("alpha", alpha)
    _check_level("power", power)
    _check_calibration(calibration)
    g = _group_covariances(k_on, k_off, k_syn, k_deg, effect, quantity, via, capture, model, tol,
                           progress)
    m = g.s1.a.size
    target = np.full(m, _noncentrality_for(power, alpha))
    n = _cells_for(g.Vb1, g.Vb2, g.delta, quantity, target, g.lr_per_cell)
    calibration = _calibration_of(model, calibration)
    if calibration != "chi2":
        for it in range(2):
            # "panel": the first refinement only moves n near the answer, from one simulated
            # experiment; the answer's critical values average config.DESIGN_NULL_PANELS
            panels = 1 if it == 0 else config.DESIGN_NULL_PANELS
            crit = _test_criticals(g.s1, g.s2, np.where(np.isfinite(n), n, np.nan), g.dist,
                                   quantity, calibration, alpha, null_genes, seed, progress,
                                   panels)
            if calibration == "panel":
                # one gene per set: an untested draw takes the others' typical critical value
                fin = np.isfinite(crit)
                fill = np.median(crit[fin]) if fin.any() else _critical_value(alpha)
                crit = np.where(np.isfinite(n)[:, None] & ~fin, fill, crit)
            target = np.array([_noncentrality_for(power, alpha, crit[i])
                               if np.isfinite(n[i]) else np.nan for i in range(m)])
            new = _cells_for(g.Vb1, g.Vb2, g.delta, quantity, target, g.lr_per_cell)
            done = np.all(~np.isfinite(n) | (np.abs(new - n) <= 0.02 * n))
            n = np.where(np.isfinite(n), new, n)
            if done and (calibration != "panel" or it > 0):
                break
    return n.reshape(g.shape)[()]


# --------------------------------------------------------------------------- tables


def kinetics_table(table: pd.DataFrame, *, k_deg=None) -> pd.DataFrame:
    """Kinetics to plan with, from the results of an earlier fit.

    Parameters
    ----------
    table : pandas.DataFrame
        A table of :func:`telegraph.fit` (or ``telegraph fit --table``, or
        :func:`telegraph.get.kinetics_df`), or any table with columns
        ``k_on``, ``k_off``, ``k_syn`` (e.g. txburst's estimates), one row per
        gene; a ``gene`` column or the index names the genes.
    k_deg : None, float, or str
        Degradation rate per unit time of each gene: a number, a column of
        ``table``, or None (the table's ``k_deg`` column if any, else 1).

    Returns
    -------
    pandas.DataFrame
        Indexed by gene: ``k_on``, ``k_off``, ``k_syn``, ``k_deg`` (per unit
        time), ``regime`` (of the earlier fit, ``"telegraph"`` when the table
        has none) and ``usable``. Genes the earlier fit placed in the bursty
        limit keep their burst frequency and size with k_off =
        ``config.DESIGN_BURSTY_K_OFF`` k_deg; genes in the ``poisson`` or
        ``bimodal`` regime, not fitted or with non-finite rates are not
        usable (burst frequency or size was not identified) and have NaN rates.
    """
    missing = [c for c in ("k_on", "k_off", "k_syn") if c not in table.columns]
    if missing:
        raise ValueError(f"the kinetics table has no column(s) {missing}; give a table of "
                         f"telegraph fit (--table) or one with k_on, k_off, k_syn per gene")
    genes = (table["gene"].astype(str).to_numpy() if "gene" in table.columns
             else table.index.astype(str).to_numpy())
    if k_deg is None:
        kd = table["k_deg"].to_numpy(float) if "k_deg" in table.columns else np.ones(len(table))
    elif isinstance(k_deg, str):
        if k_deg not in table.columns:
            raise ValueError(f"k_deg={k_deg!r} is not a column of the kinetics table")
        kd = table[k_deg].to_numpy(float)
    else:
        kd = np.broadcast_to(np.asarray(k_deg, float), (len(table),)).copy()
    kon = table["k_on"].to_numpy(float).copy()
    koff = table["k_off"].to_numpy(float).copy()
    ksyn = table["k_syn"].to_numpy(float).copy()
    regime = (table["regime"].astype(str).to_numpy() if "regime" in table.columns
              else np.full(len(table), "telegraph", dtype=object))
    bursty = regime == "bursty"
    if bursty.any():
        size = (table["burst_size"].to_numpy(float) if "burst_size" in table.columns
                else ksyn / koff)
        koff = np.where(bursty, config.DESIGN_BURSTY_K_OFF * kd, koff)
        with np.errstate(invalid="ignore", over="ignore"):
            ksyn = np.where(bursty, size * koff, ksyn)
    with np.errstate(invalid="ignore"):
        usable = (np.isin(regime, ["telegraph", "bursty"]) & np.isfinite(kon) & (kon > 0)
                  & np.isfinite(koff) & (koff > 0) & np.isfinite(ksyn) & (ksyn > 0)
                  & np.isfinite(kd) & (kd > 0))
    out = pd.DataFrame({"k_on": np.where(usable, kon, np.nan),
                        "k_off": np.where(usable, koff, np.nan),
                        "k_syn": np.where(usable, ksyn, np.nan), "k_deg": kd,
                        "regime": regime, "usable": usable}, index=pd.Index(genes, name="gene"))
    return out


def plan(kinetics: pd.DataFrame, *, effect: float, quantity: str = "burst_frequency",
         power: float = 0.8, alpha: float = 0.05, capture=1.0, n_cells=None,
         via: str = "k_syn", model: str = "one_species", calibration: str = "panel",
         seed: int = config.CALIBRATION_SEED,
         progress: bool | None = config.PROGRESS) -> pd.DataFrame:
    """Cells per group, gene by gene, from an earlier fit (``telegraph design``).

    Parameters
    ----------
    kinetics : pandas.DataFrame
        Results of an earlier fit (see :func:`kinetics_table`).
    effect, quantity, power, alpha, capture, via, model, seed
        As in :func:`cells_needed`; ``quantity="both"`` plans for burst
        frequency and burst size.
    calibration : {"panel", "bootstrap", "chi2"}
        The test's null law (see :func:`power`): by default the genes are a
        panel tested together, their regime classes sharing the calibration.
    n_cells : int, optional
        Also predict the power of each gene's test with this many cells per
        group (column ``power_at_<n_cells>``, one per quantity).
    progress : bool or None
        Progress bar (None: on a terminal; see :func:`fisher_information`).

    Returns
    -------
    pandas.DataFrame
        Indexed by gene: ``burst_frequency``, ``burst_size`` (as in the earlier
        fit), ``regime`` (earlier fit), ``usable``, and per quantity
        ``cells_needed_<quantity>`` (per group; NaN for genes not usable) and,
        with ``n_cells``, ``power_<quantity>``. ``attrs`` records the settings.
    """
    quantities = list(QUANTITIES) if quantity == "both" else [quantity]
    for q in quantities:
        _check_quantity(q)
    kin = kinetics_table(kinetics) if "usable" not in kinetics.columns else kinetics
    out = pd.DataFrame(index=kin.index.copy())
    out["burst_frequency"] = kin["k_on"]
    out["burst_size"] = kin["k_syn"] / kin["k_off"]
    out["regime"] = kin["regime"]
    out["usable"] = kin["usable"]
    args = (kin["k_on"].to_numpy(float), kin["k_off"].to_numpy(float),
            kin["k_syn"].to_numpy(float), kin["k_deg"].to_numpy(float))
    for q in quantities:
        out[f"cells_needed_{q}"] = cells_needed(*args, effect=effect, quantity=q, power=power,
                                                alpha=alpha, capture=capture, via=via,
                                                model=model, calibration=calibration,
                                                seed=seed, progress=progress)
        if n_cells is not None:
            out[f"power_{q}"] = _predicted_power(*args, effect=effect, n_cells=n_cells,
                                                 quantity=q, alpha=alpha, capture=capture,
                                                 via=via, model=model, calibration=calibration,
                                                 seed=seed, progress=progress)
    out.attrs["settings"] = {"effect": float(effect), "power": float(power),
                             "alpha": float(alpha), "quantity": quantity,
                             "capture_mean": _capture(capture).mean, "via": via,
                             "n_cells": n_cells, "model": _model(model).name,
                             "calibration": calibration}
    return out


# --------------------------------------------------------------------------- design criteria


@dataclass(frozen=True)
class CostModel:
    """What an experiment costs and what sequencing depth buys.

    An experiment of N cells sequenced at r reads per cell costs
    ``N * (cell + read * r)`` (in any currency), and a cell sequenced at r
    reads per cell has its molecules counted with probability

        capture(r) = capture_max * r / (r + reads_half)

    (saturation of a library: deeper sequencing finds ever fewer new
    molecules). State your own: e.g. the library cost per cell, the cost per
    read, and the capture efficiency and half-saturation depth measured on a
    pilot run (capture at depth r is the mean count of a gene at that depth
    over its mean count at saturation, times ``capture_max``).

    Attributes
    ----------
    cell : float
        Cost of one cell's library (>= 0).
    read : float
        Cost of one read (> 0).
    capture_max : float
        Capture efficiency approached at saturating depth, in (0, 1].
    reads_half : float
        Reads per cell at which half of ``capture_max`` is reached (> 0).
    """

    cell: float = config.DESIGN_CELL_COST
    read: float = config.DESIGN_READ_COST
    capture_max: float = config.DESIGN_CAPTURE_MAX
    reads_half: float = config.DESIGN_READS_HALF

    def __post_init__(self):
        for name in ("cell", "read", "capture_max", "reads_half"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v)):
                raise ValueError(f"CostModel.{name} must be a finite number; got {v!r}")
        if self.cell < 0 or self.read <= 0:
            raise ValueError(f"CostModel: cell cost must be >= 0 and read cost > 0; got "
                             f"cell={self.cell}, read={self.read}")
        if not 0 < self.capture_max <= 1:
            raise ValueError(f"CostModel.capture_max is an efficiency in (0, 1]; got "
                             f"{self.capture_max}")
        if self.reads_half <= 0:
            raise ValueError(f"CostModel.reads_half must be > 0; got {self.reads_half}")

    def capture(self, reads):
        """Mean capture efficiency at ``reads`` reads per cell."""
        reads = np.asarray(reads, float)
        return self.capture_max * reads / (reads + self.reads_half)

    def cells(self, budget, reads):
        """Cells the ``budget`` pays for at ``reads`` reads per cell (not rounded)."""
        return np.asarray(budget, float) / (self.cell + self.read * np.asarray(reads, float))

    def d_log_capture(self, reads):
        """d log capture / d log reads."""
        return self.reads_half / (np.asarray(reads, float) + self.reads_half)

    def d_log_cells(self, reads):
        """d log cells / d log reads (at a fixed budget)."""
        r = self.read * np.asarray(reads, float)
        return -r / (self.cell + r)

    def record(self) -> dict:
        return {"cell": self.cell, "read": self.read, "capture_max": self.capture_max,
                "reads_half": self.reads_half}


@dataclass(frozen=True)
class DesignGradient:
    """Result of :func:`eig_gradient`.

    Attributes
    ----------
    criterion : str
        ``"eig"``, ``"D"`` or ``"A"``.
    method : str
        ``"score"`` (score-function estimate from simulated cells) or ``"exact"``.
    value : float
        The criterion at the design (for ``"eig"``: nats per parameter set, up
        to the prior's entropy); the same for both methods (the information
        itself is summed exactly).
    d_log_capture : float
        Derivative of the criterion in the log of a common factor of every
        cell's capture (cells at capture 1 stay there).
    d_log_capture_se : float
        Its Monte Carlo standard error (0 for ``"exact"``).
    d_log_cells : float
        Derivative in the log number of cells (exact for every method).
    per_set : numpy.ndarray
        Each parameter set's contribution to ``d_log_capture``.
    n_sim_cells : int
        Simulated cells per parameter set (0 for ``"exact"``).
    """

    criterion: str
    method: str
    value: float
    d_log_capture: float
    d_log_capture_se: float
    d_log_cells: float
    per_set: np.ndarray
    n_sim_cells: int


def _criterion(criterion, I, n, C=None):
    """Value, weight matrices W (dU/dlog kappa = sum_j tr(W_j dI_j)) and dU/dlog n
    of a criterion over the parameter sets with per-cell information ``I``.

    Every criterion is about psi = (log burst frequency, log burst size), the
    reported quantities (or the columns of the contrasts ``C``, e.g. with log
    k_deg for a pulse), the other coordinates nuisances: per cell, psi has the
    variance V_psi = C^T I^-1 C (C the contrasts of :data:`QUANTITIES`) and the
    efficient information M = V_psi^-1; d log det M = tr(V C M C^T V dI) and
    d tr V_psi = -tr(V C C^T V dI), V = I^-1 (docs/maths.md, "Experiment design").
    """
    V = _inverse(I)
    good = np.isfinite(V).all(axis=(1, 2))
    m = int(good.sum())
    if m == 0:
        raise ValueError("the information is singular for every parameter set: no design "
                         "criterion can be computed (are the counts all zero?)")
    if C is None:
        C = np.stack(list(QUANTITIES.values()), axis=1)          # (3, 2)
    k = C.shape[1]
    VC = np.einsum("mij,jq->miq", V[good], C)                     # (m, 3, 2)
    Vpsi = np.einsum("iq,miu->mqu", C, VC)                        # (m, 2, 2)
    W = np.zeros_like(I)
    if criterion in ("eig", "D"):
        M = np.linalg.inv(Vpsi)
        _, logdet = np.linalg.slogdet(M)
        logdet = logdet + k * math.log(n)
        Wg = np.einsum("miq,mqu,mju->mij", VC, M, VC)
        if criterion == "eig":
            value = 0.5 * float(np.mean(logdet)) - 0.5 * k * math.log(2 * math.pi * math.e)
            W[good] = 0.5 * Wg / m
            d_log_n = 0.5 * k
        else:
            value = float(np.sum(logdet))
            W[good] = Wg
            d_log_n = float(k * m)
    else:
        A = float(np.einsum("mqq->", Vpsi)) / n
        value = -A
        W[good] = np.einsum("miq,mjq->mij", VC, VC) / n
        d_log_n = A
    return value, W, d_log_n, good


def _allocate(n_sim, weights):
    """Cells per capture group for the simulation: proportional (largest
    remainders), at least one per group of positive weight."""
    k = weights.size
    if n_sim < k:
        raise ValueError(f"n_sim_cells={n_sim} is fewer than the {k} capture groups; simulate "
                         f"more cells")
    base = np.where(weights > 0, 1, 0)
    rest = n_sim - base.sum()
    exact = weights * rest
    add = np.floor(exact).astype(int)
    order = np.argsort(-(exact - add), kind="stable")
    add[order[: rest - add.sum()]] += 1
    counts = base + add
    groups = np.repeat(np.arange(k), counts)
    cw = np.where(counts > 0, weights * n_sim / np.maximum(counts, 1), 0.0)[groups]
    return groups, cw


def _design_gradient(model, sets: _Sets, dist: CaptureDistribution, moving, n, criterion,
                     method, baseline, n_sim, rng, tol, progress=False,
                     importance=True) -> DesignGradient:
    a, b, lam = sets.a, sets.b, sets.lam
    I, dI, _ = model.information(a, b, lam, dist, moving, tol=tol, deriv=method == "exact",
                                 progress=progress)
    value, W, d_log_n, good = _criterion(criterion, I, n)
    if method == "exact":
        per = np.einsum("mij,mij->m", W, np.nan_to_num(dI))
        return DesignGradient(criterion, method, value, float(per.sum()), 0.0, d_log_n, per, 0)
    # the score-function estimate of sum_j tr(W_j dI_j), dI = d E[S S^T] / dlog kappa:
    # per cell, w [(S^T W S - baseline) d + 2 dS^T W S], w the cell's importance
    # weight (the model's sampler) times its capture group's share over its cells
    groups, cw = _allocate(int(n_sim), dist.weights)
    counts, iw = model.sample(rng, a, b, lam, dist.values[groups], importance)
    S, dS, d = model.cell_scores(counts, groups, dist, moving, a, b, lam)
    w = (iw * cw[None, :]).T                                        # (c, m) cell weights
    f = np.einsum("mci,mij,mcj->cm", S, W, S)
    path = 2.0 * np.einsum("mci,mij,mcj->cm", dS, W, S) * w
    terms = lr_terms(f, (w * d.T)[:, :, None], baseline)[..., 0] + path
    per = terms.mean(axis=0)
    var = terms.var(axis=0, ddof=1) / terms.shape[0]
    return DesignGradient(criterion, method, value, float(per.sum()),
                          float(math.sqrt(var[good].sum())), d_log_n, per, int(n_sim))


def _check_method(criterion, method, baseline):
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}; got {criterion!r}")
    if method not in ("score", "exact"):
        raise ValueError(f"method must be 'score' (simulated outcomes) or 'exact'; got "
                         f"{method!r}")
    if baseline not in ("loo", "optimal", "none"):
        raise ValueError(f"baseline must be 'loo', 'optimal' or 'none'; got {baseline!r}")


def eig_gradient(k_on: ArrayLike, k_off: ArrayLike, k_syn: ArrayLike, k_deg: ArrayLike = 1.0, *,
                 n_cells: float, capture=1.0, criterion: str = "eig", method: str = "score",
                 baseline: str = "optimal", n_sim_cells: int = config.DESIGN_N_SIM_CELLS,
                 seed=None, importance: bool = True, model: str = "one_species",
                 tol: float = config.DESIGN_INFO_TOL) -> DesignGradient:
    """Gradient of a design criterion in capture and cell number.

    The criteria are about psi = (log burst frequency, log burst size), with
    k_off a nuisance: per cell, M = (C^T I^-1 C)^-1 is the efficient
    information on psi (C the contrasts of :data:`QUANTITIES`). The Bayesian
    expected information gain of ``n_cells`` cells in its large-sample form
    (Lindley 1956; Chaloner & Verdinelli 1995),

        EIG = H(prior of psi) + E_prior[ 1/2 log det(n_cells M) ] - log(2 pi e),

    with the parameter sets as the draws from the prior (``"eig"``, nats per
    gene), or the local criteria over the sets as genes, D = sum log
    det(n_cells M) and A = -sum of the variances of log burst frequency and
    log burst size (docs/maths.md, "Experiment design"). The value omits
    H(prior), which does not depend on the design.

    Its derivative in the log capture goes through the derivative of the
    per-cell information I = E[S S^T], an expectation over the outcome (a
    cell's count) whose law depends on the capture: with W the criterion's
    weights (dU = sum tr(W dI); 1/2 I^-1 for the EIG), ``method="score"``
    estimates

        tr(W dI/dlog s) = E[(S^T W S - b) d log P(n)/dlog s] + E[2 (dS)^T W S]

    from ``n_sim_cells`` simulated cells per set by the score-function
    (REINFORCE) estimator, with a baseline b (:func:`telegraph.gradient.lr_terms`),
    and reports its standard error; the design score d log P/dlog s =
    n - x E[p | n] involves the posterior probability that the promoter is
    on, and dS (the score's own dependence on the capture) comes from Louis'
    information. The information in W is the model's exact sum.
    ``method="exact"`` sums the same expectation over all counts (one
    species: exact up to the truncation bound), which the score estimate
    must match within its error. Near a limit regime the information is
    close to singular, the per-cell terms are heavy-tailed and the standard
    error of the score estimate understates its error: simulate more cells.

    Parameters
    ----------
    k_on, k_off, k_syn, k_deg : array_like
        Parameter sets (draws from the prior, or genes), rates per unit time.
    n_cells : float
        Number of cells of the experiment.
    capture
        Capture efficiencies of the cells (see :func:`fisher_information`).
        The design derivative scales every cell's capture by a common factor;
        cells at capture 1 do not move.
    criterion : {"eig", "D", "A"}
    method : {"score", "exact"}
    baseline : {"loo", "optimal", "none"}
        Baseline of the score-function estimator (all unbiased; see
        :func:`telegraph.gradient.lr_gradient`): the mean of S^T W S over the
        set's other simulated cells, the variance-minimising
        E[f d^2]/E[d^2] (also leave-one-out), or none.
    n_sim_cells : int
        Simulated cells per parameter set (``"score"``).
    seed : int, optional
        Seed of the simulation.
    importance : bool
        Simulate with the model's importance sampler (one species: the
        promoter activity from a mixture that over-samples high activity,
        weighted back; see :meth:`OneSpecies.sample`), which cuts the
        estimator's variance several-fold; False draws plainly.
    model, tol
        As in :func:`fisher_information`.

    Returns
    -------
    DesignGradient
    """
    _check_method(criterion, method, baseline)
    if not (np.isfinite(n_cells) and n_cells >= 1):
        raise ValueError(f"n_cells must be at least 1; got {n_cells!r}")
    mdl = _model(model)
    dist = _capture(capture)
    moving = (dist.values < 1.0).astype(float)
    sets = _sets(k_on, k_off, k_syn, k_deg)
    if not sets.valid.all():
        raise ValueError("every parameter set must have finite rates > 0")
    return _design_gradient(mdl, sets, dist, moving, float(n_cells), criterion, method,
                            baseline, n_sim_cells, np.random.default_rng(seed), tol,
                            importance=bool(importance))


def _edge_note(x, bounds, what) -> str:
    """" (at the edge of the <what> searched)" when the chosen x is an end of ``bounds``."""
    lo, hi = bounds if bounds is not None else (math.nan, math.nan)
    at_edge = min(abs(math.log(x / lo)), abs(math.log(x / hi))) < 1e-6
    return f" (at the edge of the {what} searched)" if at_edge else ""


def _gradient_note(gradient, se, converged) -> str:
    """The gradient at the chosen design, its standard error and convergence, as text."""
    return f"{gradient:.2g}{f' +- {se:.2g}' if se else ''}; converged: {converged}"


@dataclass
class DesignResult:
    """Result of :func:`optimize`: the chosen design and how it was found.

    Attributes
    ----------
    reads : float
        Chosen reads per cell.
    n_cells : int
        Cells the budget pays for at that depth (rounded down).
    capture_mean : float
        Mean capture efficiency of the cells at that depth.
    criterion, method : str
        The criterion maximised and how its gradient was obtained.
    value : float
        The criterion at the chosen design (for ``"eig"``: nats per gene; the
        prior's entropy is included for a box prior, not for a table).
    gradient, gradient_se : float
        d criterion / d log reads at the chosen design and its standard error
        (0 with exact gradients).
    converged : bool
        Whether the ascent met its stopping rule (exact gradients: the step
        fell below 1e-3 in log reads; score estimates: the gradient at the
        averaged design is within two standard errors of 0).
    budget : float
    cost : CostModel
    history : pandas.DataFrame
        One row per iteration: ``reads``, ``n_cells``, ``capture_mean``,
        ``value``, ``gradient``, ``gradient_se``.
    curve : pandas.DataFrame or None
        The criterion and the median predicted standard errors of log burst
        frequency and log burst size over the parameter sets on a grid of
        depths (exact information): ``reads``, ``n_cells``, ``capture_mean``,
        ``value``, ``burst_frequency_log_se``, ``burst_size_log_se``
        (what :func:`telegraph.pl.design` draws).
    n_sets : int
        Parameter sets (prior draws or genes) the criterion averages or sums.
    prior : str
        Where the parameter sets came from.
    """

    reads: float
    n_cells: int
    capture_mean: float
    criterion: str
    method: str
    value: float
    gradient: float
    gradient_se: float
    converged: bool
    budget: float
    cost: CostModel
    history: pd.DataFrame
    curve: pd.DataFrame | None = None
    n_sets: int = 0
    prior: str = ""
    settings: dict = field(default_factory=dict)

    def summary(self) -> str:
        """The chosen design in one paragraph."""
        edge = _edge_note(self.reads, self.settings.get("reads_range"), "depths")
        return (f"best design for budget {self.budget:g} ({self.criterion}, {self.method} "
                f"gradient, {self.n_sets} parameter sets from {self.prior}): "
                f"{self.reads:,.0f} reads per cell{edge} -> {self.n_cells:,} cells at mean "
                f"capture {self.capture_mean:.3f}; criterion {self.value:.4g}, d/dlog reads "
                f"{_gradient_note(self.gradient, self.gradient_se, self.converged)}")

    def __repr__(self) -> str:
        return f"DesignResult({self.summary()})"


def _draw_box(rng, box, n):
    """Kinetics drawn log-uniformly from a box over k_on, k_off (units of k_deg)
    and burst size, as :data:`telegraph.study.KINETICS_PRIOR`."""
    need = {"k_on", "k_off", "burst_size"}
    if set(box) != need:
        raise ValueError(f"a prior box needs exactly the keys {sorted(need)} (ranges (low, "
                         f"high) of k_on, k_off in units of k_deg and burst size); got "
                         f"{sorted(box)}")
    draw = {}
    for name in ("k_on", "k_off", "burst_size"):
        lo, hi = (float(v) for v in box[name])
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ValueError(f"prior box {name}: need 0 < low <= high; got ({lo}, {hi})")
        draw[name] = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
    # the EIG is about (log burst frequency, log burst size): uniform on the box's ranges
    entropy = sum(math.log(max(math.log(float(box[k][1]) / float(box[k][0])), 1e-300))
                  for k in ("k_on", "burst_size"))
    return draw["k_on"], draw["k_off"], draw["burst_size"] * draw["k_off"], entropy


def _parameter_sets(k_on, k_off, k_syn, k_deg, prior, criterion, n_prior, rng):
    """The parameter sets a criterion runs over, where they came from, and the
    prior entropy to add (0 when unknown)."""
    if prior is not None:
        if isinstance(prior, str):
            if prior != "box":
                raise ValueError(f"prior must be 'box', a mapping of ranges, or a table of "
                                 f"kinetics; got {prior!r}")
            prior = KINETICS_PRIOR
        if isinstance(prior, Mapping):
            kon, koff, ksyn, h = _draw_box(rng, prior, n_prior)
            return _sets(kon, koff, ksyn, 1.0), "log-uniform box", h
        if isinstance(prior, pd.DataFrame):
            kin = kinetics_table(prior)
            kin = kin[kin["usable"]]
            if kin.empty:
                raise ValueError("the prior table has no usable kinetics (genes in the "
                                 "telegraph or bursty regime with finite rates)")
            take = (rng.choice(len(kin), n_prior, replace=False) if len(kin) > n_prior
                    else np.arange(len(kin)))
            kin = kin.iloc[np.sort(take)]
            return (_sets(kin["k_on"], kin["k_off"], kin["k_syn"], kin["k_deg"]),
                    f"a table of {len(kin)} genes", 0.0)
        raise ValueError("prior must be 'box', a mapping of (low, high) ranges, or a "
                         "DataFrame of kinetics (an earlier fit)")
    if k_on is None or k_off is None or k_syn is None:
        raise ValueError("give the kinetics (k_on, k_off, k_syn) or a prior")
    sets = _sets(k_on, k_off, k_syn, k_deg)
    keep = np.flatnonzero(sets.valid)
    if keep.size == 0:
        raise ValueError("no parameter set has finite rates > 0")
    if criterion == "eig" and keep.size > n_prior:
        keep = np.sort(rng.choice(keep, n_prior, replace=False))
    sub = _sets(sets.k_on[keep], sets.k_off[keep], sets.k_syn[keep], sets.k_deg[keep])
    return sub, f"{keep.size} given kinetics", 0.0


def _depth_bounds(budget, cost: CostModel, reads_range):
    if reads_range is None:
        lo = cost.reads_half / 100.0
        hi = cost.reads_half * 100.0
    else:
        lo, hi = (float(v) for v in reads_range)
        if not (0 < lo < hi):
            raise ValueError(f"reads_range must be (low, high) with 0 < low < high; got "
                             f"{reads_range!r}")
    most = (budget / config.MIN_CELLS - cost.cell) / cost.read
    hi = min(hi, most)
    if hi <= lo:
        raise ValueError(f"budget {budget:g} pays for fewer than {config.MIN_CELLS} cells at "
                         f"{lo:g} reads per cell under this cost model; raise the budget")
    return math.log(lo), math.log(hi)


def optimize(k_on: ArrayLike | None = None, k_off: ArrayLike | None = None,
             k_syn: ArrayLike | None = None, k_deg: ArrayLike = 1.0, *, budget: float,
             cost: CostModel | None = None, criterion: str = "eig", prior=None,
             capture_spread=1.0, method: str | None = None, baseline: str = "optimal",
             n_prior: int = config.DESIGN_N_PRIOR,
             n_sim_cells: int = config.DESIGN_N_SIM_CELLS, reads: float | None = None,
             reads_range=None, max_iter: int = 60, learning_rate: float = 0.3, seed=0,
             curve: bool = True, model: str = "one_species",
             tol: float = config.DESIGN_INFO_TOL,
             progress: bool | None = config.PROGRESS) -> DesignResult:
    """The split of a fixed budget between cells and sequencing depth.

    Chooses the reads per cell r (and so the cells N(r) the budget pays for
    and their capture efficiency, by the :class:`CostModel`) that maximise a
    design criterion, by gradient ascent in log r (Adam steps):

    - ``"eig"``: the Bayesian expected information gain per gene under a
      prior over kinetics (a log-uniform box, or the genes of an earlier fit
      as an empirical prior), in its large-sample form (see
      :func:`eig_gradient`); its gradient is by default estimated from
      simulated cells by the score-function estimator with a baseline, with
      its standard error;
    - ``"D"`` / ``"A"``: local D-optimality (sum over the given genes of log
      det of the information) or A-optimality (minus the summed variances of
      log burst frequency and log burst size), with exact gradients by
      default.

    Parameters
    ----------
    k_on, k_off, k_syn, k_deg : array_like, optional
        Kinetics of the genes to design for, per unit time (units of k_deg by
        default): the genes of the local criteria, and the empirical prior of
        ``"eig"`` when ``prior`` is None (at most ``n_prior`` of them, drawn
        at random).
    budget : float
        What the experiment may cost, in the units of ``cost``.
    cost : CostModel, optional
        Cost per cell and per read, capture against depth (default
        :class:`CostModel`'s).
    criterion : {"eig", "D", "A"}
    prior : None, "box", mapping or DataFrame
        For ``"eig"``: ``"box"`` (:data:`telegraph.study.KINETICS_PRIOR`), a
        box ``{"k_on": (lo, hi), "k_off": (lo, hi), "burst_size": (lo, hi)}``
        (``n_prior`` log-uniform draws; rates in units of k_deg), or a table
        of an earlier fit (see :func:`kinetics_table`).
    capture_spread : float, (values, weights) or array_like
        Relative capture of the cells around the mean the depth sets (scaled
        to mean 1; a cell's capture is min(1, capture(r) * factor)).
    method : {"score", "exact"}, optional
        Gradient by the score-function estimate or exactly (default: score
        for ``"eig"``, exact for ``"D"`` and ``"A"``).
    baseline : {"loo", "optimal", "none"}
        Baseline of the score-function estimator (see :func:`eig_gradient`).
    n_prior, n_sim_cells : int
        Prior draws, and simulated cells per draw for each score estimate.
    reads : float, optional
        Starting depth (default: ``cost.reads_half``).
    reads_range : (float, float), optional
        Depths searched (default reads_half / 100 to reads_half * 100, and no
        deeper than leaves ``config.MIN_CELLS`` cells).
    max_iter : int
        Gradient steps.
    learning_rate : float
        Initial Adam step in log reads (decays as 1/sqrt(iteration)).
    seed : int
        Seed of the prior draws and the simulations.
    curve : bool
        Also tabulate the criterion and precision over a grid of depths.
    model, tol
        As in :func:`fisher_information`.
    progress : bool or None
        Progress bar over the iterations (None: on a terminal).

    Returns
    -------
    DesignResult

    Examples
    --------
    >>> import telegraph as tg
    >>> res = tg.design.optimize(0.5, 2.0, 20.0, budget=5000, criterion="D", curve=False,
    ...                          progress=False)
    >>> bool(res.n_cells > 0)
    True
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}; got {criterion!r}")
    method = method or ("score" if criterion == "eig" else "exact")
    _check_method(criterion, method, baseline)
    if not (isinstance(budget, (int, float, np.floating)) and budget > 0):
        raise ValueError(f"budget must be a positive number; got {budget!r}")
    cost = CostModel() if cost is None else cost
    if not isinstance(cost, CostModel):
        raise TypeError("cost must be a telegraph.design.CostModel")
    mdl = _model(model)
    spread = _capture_spread(capture_spread)
    rng = np.random.default_rng(seed)
    sets, source, entropy = _parameter_sets(k_on, k_off, k_syn, k_deg, prior, criterion,
                                            int(n_prior), rng)
    lo, hi = _depth_bounds(float(budget), cost, reads_range)
    t = math.log(cost.reads_half if reads is None else float(reads))
    t = min(max(t, lo), hi)

    def evaluate(t_, rng_):
        r = math.exp(t_)
        dist, moving = spread.scaled(float(cost.capture(r)))
        n = float(cost.cells(budget, r))
        g = _design_gradient(mdl, sets, dist, moving, n, criterion, method, baseline,
                             n_sim_cells, rng_, tol)
        grad = g.d_log_cells * cost.d_log_cells(r) + g.d_log_capture * cost.d_log_capture(r)
        se = g.d_log_capture_se * cost.d_log_capture(r)
        return r, n, dist.mean, g.value + entropy, float(grad), float(se)

    t, rows, converged = _ascend(lambda x: evaluate(x, rng), t, lo, hi, method, max_iter,
                                 learning_rate, progress)
    history = pd.DataFrame(rows, columns=["iteration", "reads", "n_cells", "capture_mean",
                                          "value", "gradient", "gradient_se"])
    r, n, cm, val, grad, se = evaluate(t, rng)
    if method == "score":
        converged = abs(grad) <= 2.0 * se
    table = _curve(mdl, sets, spread, cost, budget, criterion, lo, hi, entropy, tol) \
        if curve else None
    return DesignResult(reads=r, n_cells=int(math.floor(n)), capture_mean=cm,
                        criterion=criterion, method=method, value=val, gradient=grad,
                        gradient_se=se, converged=converged, budget=float(budget), cost=cost,
                        history=history, curve=table, n_sets=int(sets.a.size), prior=source,
                        settings={"baseline": baseline, "n_sim_cells": int(n_sim_cells),
                                  "max_iter": int(max_iter), "seed": seed,
                                  "model": mdl.name,
                                  "reads_range": (math.exp(lo), math.exp(hi))})


def _ascend(evaluate, x, lo, hi, method, max_iter, learning_rate, progress):
    """Gradient ascent of one design variable x (a log) in [lo, hi] by Adam steps
    decaying as 1/sqrt(iteration). ``evaluate(x)`` returns a row whose last two
    entries are the gradient and its standard error. Exact gradients stop after
    three steps below 1e-3; score estimates run ``max_iter`` steps and return
    the Polyak average of the second half of the iterates. Returns (x, rows
    (iteration, *row), converged by the exact rule)."""
    rows = []
    m1 = v1 = 0.0
    beta1, beta2 = 0.8, 0.95
    converged = False
    small = 0
    xs = []
    bar = None
    if progress is not False:
        from tqdm.auto import tqdm
        bar = tqdm(total=max_iter, desc="telegraph design", unit="step", leave=False,
                   disable=None if progress is None else False)
    try:
        for it in range(1, max_iter + 1):
            row = evaluate(x)
            xs.append(x)
            rows.append((it, *row))
            grad = row[-2]
            m1 = beta1 * m1 + (1 - beta1) * grad
            v1 = beta2 * v1 + (1 - beta2) * grad * grad
            step = (learning_rate / math.sqrt(it)) * (m1 / (1 - beta1 ** it)) / (
                math.sqrt(v1 / (1 - beta2 ** it)) + 1e-12)
            x_new = min(max(x + step, lo), hi)
            if method == "exact":
                small = small + 1 if abs(x_new - x) < 1e-3 else 0
                if small >= 3:
                    x = x_new
                    converged = True
                    break
            x = x_new
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if method == "score":
        x = float(np.mean(xs[len(xs) // 2:]))
    return x, rows, converged


def _capture_spread(spread) -> CaptureDistribution:
    """Relative capture factors of the cells, scaled to mean 1."""
    if isinstance(spread, (int, float, np.floating)) and spread == 1.0:
        return CaptureDistribution(np.ones(1), np.ones(1))
    arr = np.asarray(spread) if not isinstance(spread, (tuple, Mapping)) else None
    if arr is not None and arr.ndim == 1:
        arr = np.asarray(arr, float)
        if not (np.isfinite(arr).all() and (arr > 0).all()):
            raise ValueError("capture_spread factors must be finite and > 0")
        spread = arr / arr.max()
    dist = _capture(spread)
    return CaptureDistribution(dist.values / dist.mean, dist.weights)


def _curve(model, sets, spread, cost, budget, criterion, lo, hi, entropy, tol, n_grid=25):
    rows = []
    for t in np.linspace(lo, hi, n_grid):
        r = math.exp(t)
        dist, _ = spread.scaled(float(cost.capture(r)))
        n = float(cost.cells(budget, r))
        I, _, _ = model.information(sets.a, sets.b, sets.lam, dist, tol=tol, progress=False)
        value, _, _, _ = _criterion(criterion, I, n)
        V = _inverse(I) / n
        with np.errstate(invalid="ignore"):
            se = {q: np.sqrt(_variance(V, q)) for q in QUANTITIES}
        rows.append((r, n, dist.mean, value + entropy,
                     float(np.nanmedian(se["burst_frequency"])),
                     float(np.nanmedian(se["burst_size"]))))
    return pd.DataFrame(rows, columns=["reads", "n_cells", "capture_mean", "value",
                                       "burst_frequency_log_se", "burst_size_log_se"])


# --------------------------------------------------------------------------- pulse length

#: what the pulse length of a labelling experiment is chosen for: contrasts in
#: theta = (log k_on, log k_off, log k_syn, log k_deg) (rates per hour)
PULSE_QUANTITIES = {
    "burst_frequency": np.array([1.0, 0.0, 0.0, 0.0]),
    "burst_size": np.array([0.0, -1.0, 1.0, 0.0]),
    "k_deg": np.array([0.0, 0.0, 0.0, 1.0]),
}


@dataclass
class PulseDesign:
    """Result of :func:`optimize_pulse`: the chosen pulse length and how it was found.

    Attributes
    ----------
    t_label : float
        Chosen pulse length, hours.
    n_cells : float
        Cells of the experiment (fixed).
    quantities : tuple of str
        What the criterion is about (from :data:`PULSE_QUANTITIES`).
    criterion, method : str
        The criterion maximised and how its gradient was obtained.
    value : float
        The criterion at the chosen pulse.
    gradient, gradient_se : float
        d criterion / d log t_label there, and its standard error (0 exact).
    converged : bool
        Exact gradients: the bracket of the gradient's root is narrower than
        1e-3 in log t_label (or the criterion still rises at an end of
        ``t_range``, reported as such); score estimates: the gradient at the
        averaged pulse is within two standard errors of 0.
    history : pandas.DataFrame
        One row per iteration: ``t_label``, ``value``, ``gradient``, ``gradient_se``.
    curve : pandas.DataFrame or None
        On a grid of pulse lengths (exact information): ``t_label``,
        ``value`` and the median predicted standard error of the log of each
        quantity (``<quantity>_log_se``) over the parameter sets.
    n_sets : int
    settings : dict
    """

    t_label: float
    n_cells: float
    quantities: tuple
    criterion: str
    method: str
    value: float
    gradient: float
    gradient_se: float
    converged: bool
    history: pd.DataFrame
    curve: pd.DataFrame | None = None
    n_sets: int = 0
    settings: dict = field(default_factory=dict)

    def summary(self) -> str:
        """The chosen pulse in one sentence."""
        edge = _edge_note(self.t_label, self.settings.get("t_range"), "pulse lengths")
        return (f"best pulse for {', '.join(self.quantities)} ({self.criterion}, {self.method} "
                f"gradient, {self.n_sets} genes, {self.n_cells:g} cells): "
                f"{self.t_label:.3g} h{edge}; criterion {self.value:.4g}, d/dlog t_label "
                f"{_gradient_note(self.gradient, self.gradient_se, self.converged)}")

    def __repr__(self) -> str:
        return f"PulseDesign({self.summary()})"


def _pulse_cell_terms(rates, capture, t_label, detection, tol, deriv=True):
    """One parameter set in one capture group: the (new, old) lattice's
    probabilities p, scores S (log rates), the design score d = d log P / d log
    t_label and dS = dS / d log t_label at fixed counts.

    The law depends on the rates and the pulse only through (k_on, k_off,
    k_syn) / k_deg and k_deg t_label, so scaling every rate by e^u is the same
    as scaling the pulse by e^u: d/dlog t_label = sum_i d/dlog k_i, d = 1^T S
    and dS = H 1, H the Hessian in the log rates (docs/maths.md, "Experiment
    design", "The pulse length")."""
    n, m = labelled.count_lattice(rates[2], rates[3], capture, tol)
    logp, S, H = labelled.log_derivatives(n, m, *rates, t_label=t_label, detection=detection,
                                          capture=capture, hessian=deriv)
    seen = np.isfinite(logp)     # counts of probability 0 have no score
    dS = H[seen].sum(axis=2) if deriv else None
    return np.exp(logp[seen]), S[seen], S[seen].sum(axis=1), dS


def _pulse_information(sets: _Sets, dist: CaptureDistribution, t_label, detection, tol,
                       deriv=False):
    """Per-cell information I (m, 4, 4) in the log rates at pulse ``t_label``,
    averaged over the capture groups, and (``deriv``) its exact derivative in
    log t_label: sum_n P (d S S^T + dS S^T + S dS^T)."""
    m = sets.k_on.size
    I = np.zeros((m, 4, 4))
    dI = np.zeros((m, 4, 4))
    for j in range(m):
        r = (sets.k_on[j], sets.k_off[j], sets.k_syn[j], sets.k_deg[j])
        for c, w in zip(dist.values, dist.weights):
            p, S, d, dS = _pulse_cell_terms(r, float(c), t_label, detection, tol, deriv)
            I[j] += w * np.einsum("n,ni,nk->ik", p, S, S)
            if deriv:
                G = np.einsum("n,ni,nk->ik", p * d, S, S) + np.einsum("n,ni,nk->ik", p, dS, S)
                dI[j] += w * (G + np.einsum("n,ni,nk->ki", p, dS, S))
    return I, dI


def _pulse_gradient(sets: _Sets, dist, t_label, detection, n, C, criterion, method, baseline,
                    n_sim, rng, tol):
    """(value, d value / d log t_label, its standard error) of a criterion."""
    I, dI = _pulse_information(sets, dist, t_label, detection, tol, deriv=method == "exact")
    value, W, _, good = _criterion(criterion, I, n, C)
    if method == "exact":
        return value, float(np.einsum("mij,mij->", W[good], dI[good])), 0.0
    # score-function estimate from cells drawn from the exact (truncated) law:
    # tr(W dI) = E[(S^T W S - b) d] + 2 E[dS^T W S]
    groups, cw = _allocate(int(n_sim), dist.weights)
    per, var = np.zeros(sets.k_on.size), np.zeros(sets.k_on.size)
    for j in np.flatnonzero(good):
        r = (sets.k_on[j], sets.k_off[j], sets.k_syn[j], sets.k_deg[j])
        f, d, path = [], [], []
        for g, c in enumerate(dist.values):
            k = int((groups == g).sum())
            if k == 0:
                continue
            p, S, dd, dS = _pulse_cell_terms(r, float(c), t_label, detection, tol)
            pick = rng.choice(p.size, size=k, p=p / p.sum())
            Sg, wg = S[pick], cw[groups == g]
            f.append(np.einsum("ci,ij,cj->c", Sg, W[j], Sg))
            d.append(wg * dd[pick])
            path.append(2.0 * wg * np.einsum("ci,ij,cj->c", dS[pick], W[j], Sg))
        terms = lr_terms(np.concatenate(f), np.concatenate(d)[:, None], baseline)[:, 0]
        terms = terms + np.concatenate(path)
        per[j] = terms.mean()
        var[j] = terms.var(ddof=1) / terms.size
    return value, float(per.sum()), float(math.sqrt(var.sum()))


def _pulse_curve(sets, dist, detection, n, C, names, criterion, lo, hi, tol, n_grid=25):
    rows = []
    for x in np.linspace(lo, hi, n_grid):
        t = math.exp(x)
        I, _ = _pulse_information(sets, dist, t, detection, tol)
        try:
            value = _criterion(criterion, I, n, C)[0]
        except ValueError:              # singular for every gene: nothing identified there
            value = math.nan
        V = _inverse(I) / n
        with np.errstate(invalid="ignore"):
            se = [float(np.nanmedian(np.sqrt(np.einsum("i,mij,j->m", C[:, q], V, C[:, q]))))
                  for q in range(C.shape[1])]
        rows.append((t, value, *se))
    return pd.DataFrame(rows, columns=["t_label", "value", *(f"{q}_log_se" for q in names)])


def _gradient_root(evaluate, x, lo, hi, max_iter, step=0.5, xtol=1e-3):
    """Maximise a smooth one-dimensional criterion in [lo, hi] from its exact
    gradient: steps of ``step`` uphill until the gradient changes sign (or an
    end is reached), then regula falsi on the gradient to ``xtol``, with the
    Illinois step and secant end of the profile bounds
    (:func:`telegraph.kernels.profile.illinois_step`). ``evaluate(x)`` returns a
    row ending in (gradient, standard error). Returns (x, rows (iteration,
    *row), converged)."""
    rows = []

    def at(x_):
        row = evaluate(x_)
        rows.append((len(rows) + 1, *row))
        return row[-2]

    ga = at(x)
    if ga == 0.0:
        return x, rows, True
    a, direction = x, (1.0 if ga > 0 else -1.0)
    b = None
    while len(rows) < max_iter:
        nxt = min(max(a + direction * step, lo), hi)
        if nxt == a:                          # the optimum is at the end of the range
            return a, rows, True
        g = at(nxt)
        if g * direction <= 0.0:
            b, gb = nxt, g
            break
        a, ga = nxt, g
    if b is None:
        return a, rows, False
    # f = -direction * gradient: < 0 on the inner (uphill) end a, >= 0 on b
    fa = ra = -direction * ga
    fb = rb = -direction * gb
    kept = 0
    while len(rows) < max_iter and abs(b - a) > xtol:
        c = b - fb * (b - a) / (fb - fa)
        fc = -direction * at(c)
        if fc == 0.0:
            return c, rows, True
        a, fa, ra, b, fb, rb, kept = illinois_step(a, fa, ra, b, fb, rb, kept, c, fc)
    return float(secant_end(a, ra, b, rb)), rows, abs(b - a) <= xtol


def optimize_pulse(k_on: ArrayLike, k_off: ArrayLike, k_syn: ArrayLike, k_deg: ArrayLike, *,
                   n_cells: float, capture=1.0, detection: float = config.DETECTION,
                   quantities=("burst_frequency", "burst_size", "k_deg"),
                   criterion: str = "D", method: str = "exact", baseline: str = "optimal",
                   t_range=(0.05, 48.0), t_label: float | None = None,
                   n_sim_cells: int = config.DESIGN_N_SIM_CELLS, max_iter: int = 60,
                   learning_rate: float = 0.3, seed=0, curve: bool = True,
                   tol: float = 1e-12, progress: bool | None = config.PROGRESS) -> PulseDesign:
    """The labelling pulse length that pins down burst kinetics and degradation best.

    For a metabolic-labelling experiment (new and old counts after a pulse of
    ``t_label`` hours, :mod:`telegraph.labelled`) with ``n_cells`` cells,
    chooses the pulse that maximises a design criterion about the log of the
    ``quantities`` (burst frequency = k_on, burst size = k_syn / k_off, k_deg;
    the other rates nuisances), from the exact per-cell Fisher information of
    the new/old law, by gradient ascent in log t_label (exact gradient: uphill
    steps of 0.5 until the gradient changes sign, then regula falsi on it;
    score-function estimates: Adam steps, as :func:`optimize`):

    - ``"D"``: sum over the genes of log det of the efficient information
      (local D-optimality; the genes are the given kinetics, e.g. an earlier
      fit); ``"A"``: minus the summed variances; ``"eig"``: the large-sample
      expected information gain averaged over the genes as prior draws.

    The gradient in log t_label is exact: the new/old law depends on the rates
    and the pulse only through the rates' ratios to k_deg and k_deg t_label,
    so d/dlog t_label is the sum of the derivatives in the log rates, and the
    derivative of the information follows from the scores and Hessians of
    :func:`telegraph.labelled_score` / :func:`telegraph.labelled_information`
    summed over the counts (``method="exact"``). ``method="score"`` estimates
    the same derivative from ``n_sim_cells`` cells per gene drawn from the law
    by the score-function estimator with a baseline, and reports its
    standard error (docs/maths.md, "Experiment design", "The pulse length").

    Parameters
    ----------
    k_on, k_off : array_like
        Promoter activation and inactivation rates of the genes, per hour.
    k_syn : array_like
        Transcription rate while on, molecules per hour.
    k_deg : array_like
        mRNA degradation rate, per hour (the pulse is chosen relative to it).
    n_cells : float
        Cells of the experiment.
    capture
        Capture efficiencies of the cells (see :func:`fisher_information`);
        a spread of values is averaged over
        ``config.DESIGN_PULSE_CAPTURE_GROUPS`` groups of about equal weight.
    detection : float
        Probability that a new molecule is seen as new.
    quantities : sequence of str
        Keys of :data:`PULSE_QUANTITIES` the criterion is about.
    criterion : {"D", "A", "eig"}
    method : {"exact", "score"}
    baseline : {"loo", "optimal", "none"}
        Baseline of the score-function estimator (see :func:`eig_gradient`).
    t_range : (float, float)
        Pulse lengths searched, hours.
    t_label : float, optional
        Starting pulse (default: the geometric mean over the genes of
        1 / k_deg, within ``t_range``).
    n_sim_cells, max_iter, learning_rate, seed, progress
        As in :func:`optimize`.
    curve : bool
        Also tabulate the criterion and the predicted standard errors over a
        grid of pulse lengths (what :func:`telegraph.pl.design` draws).
    tol : float
        Probability left out of each cell's sum over counts.

    Returns
    -------
    PulseDesign

    Examples
    --------
    >>> import telegraph as tg
    >>> res = tg.design.optimize_pulse(0.5, 2.0, 30.0, 0.3, n_cells=500, curve=False,
    ...                                quantities=["k_deg"], progress=False)
    >>> bool(0.05 < res.t_label < 48.0)
    True
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}; got {criterion!r}")
    _check_method(criterion, method, baseline)
    names = (quantities,) if isinstance(quantities, str) else tuple(quantities)
    unknown = [q for q in names if q not in PULSE_QUANTITIES]
    if not names or unknown:
        raise ValueError(f"quantities must be among {sorted(PULSE_QUANTITIES)}; got "
                         f"{list(names)!r}")
    C = np.stack([PULSE_QUANTITIES[q] for q in names], axis=1)
    if not (np.isfinite(n_cells) and n_cells >= 1):
        raise ValueError(f"n_cells must be at least 1; got {n_cells!r}")
    lo, hi = (float(v) for v in t_range)
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ValueError(f"t_range must be (low, high) pulse lengths in hours with 0 < low < "
                         f"high; got {t_range!r}")
    det = float(check_detection(detection).reshape(-1)[0])
    sets = _sets(k_on, k_off, k_syn, k_deg)
    if not sets.valid.all():
        raise ValueError("every gene needs finite rates > 0 (per hour), k_deg included: the "
                         "pulse is chosen relative to the degradation rate")
    dist = _coarse(_capture(capture), config.DESIGN_PULSE_CAPTURE_GROUPS)
    n = float(n_cells)
    rng = np.random.default_rng(seed)
    x_lo, x_hi = math.log(lo), math.log(hi)
    x = (float(np.mean(-np.log(sets.k_deg))) if t_label is None else math.log(float(t_label)))
    x = min(max(x, x_lo), x_hi)

    def evaluate(x_):
        try:
            value, grad, se = _pulse_gradient(sets, dist, math.exp(x_), det, n, C, criterion,
                                              method, baseline, n_sim_cells, rng, tol)
        except ValueError:
            raise ValueError(f"at a pulse of {math.exp(x_):.3g} h the labelled data identify "
                             f"none of the genes' rates (singular information); narrow "
                             f"t_range around 1 / k_deg or start at t_label=") from None
        return math.exp(x_), value, grad, se

    if method == "exact":
        x, rows, converged = _gradient_root(evaluate, x, x_lo, x_hi, max_iter)
    else:
        x, rows, converged = _ascend(evaluate, x, x_lo, x_hi, method, max_iter, learning_rate,
                                     progress)
    history = pd.DataFrame(rows, columns=["iteration", "t_label", "value", "gradient",
                                          "gradient_se"])
    t, value, grad, se = evaluate(x)
    if method == "score":
        converged = abs(grad) <= 2.0 * se
    table = _pulse_curve(sets, dist, det, n, C, names, criterion, x_lo, x_hi, tol) \
        if curve else None
    return PulseDesign(t_label=t, n_cells=n, quantities=names, criterion=criterion,
                       method=method, value=value, gradient=grad, gradient_se=se,
                       converged=converged, history=history, curve=table,
                       n_sets=int(sets.k_on.size),
                       settings={"baseline": baseline, "n_sim_cells": int(n_sim_cells),
                                 "max_iter": int(max_iter), "seed": seed, "detection": det,
                                 "t_range": (lo, hi)})
