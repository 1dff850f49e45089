"""Per-gene fits of the telegraph model with splicing: unspliced + spliced counts.

docs/maths.md, "Two species: unspliced and spliced" and "Fitting two species".
Each gene's cells are compressed to a histogram of (unspliced, spliced) count
pairs by capture group (:func:`telegraph.histogram.joint_count_histograms`);
the exact joint likelihood, its exact score and observed information come from
the master equation solved by :mod:`telegraph.joint` (no numerical
differentiation anywhere). Rates are identified relative to one time scale and
are reported in units of the splicing rate (k_splice = 1): k_on, k_off, k_syn
and k_deg, the degradation rate of spliced molecules, now estimated with an
interval.

Per gene: Newton's method with the observed information on the log-rates from
the maximum of the unspliced counts' own likelihood (their marginal is the
one-species law in units of k_splice) or, failing that, the best of a few
moment-based starts, inside the search box
:data:`telegraph.config.JOINT_FIT_BOUNDS`; profile-likelihood intervals (the
nuisance rates re-maximised by Newton at each point, the end found by Newton's
method on the signed root of the likelihood ratio) for burst frequency (k_on),
burst size (k_syn/k_off) and k_deg, and for k_off and k_syn too when
``settings.profile`` names them (``profile="all"``; Wald intervals otherwise); the regime (the bursty
limit k_off -> infinity, Monod's boundary model, when the likelihood is flat
towards it; the slow-switching (bimodal) limit k_on, k_off -> 0 at a fixed
fraction on, likewise; constitutive/Poisson when the two-Poisson law fits as
well) and whether k_deg is bounded (``k_deg_flag``); and a Pearson goodness of fit over (u, s) classes,
calibrated for estimated parameters (:func:`telegraph.goodness.chernoff_lehmann`).
Genes run in parallel on threads (the compiled kernels release the GIL) or, with
a Dask client, in blocks on the workers (:mod:`telegraph.blocks`).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.special import digamma, gammaln, ndtri, polygamma

from . import blocks, config
from .fitting import fit_raw, results_table
from .goodness import gof_columns
from .histogram import CountHistograms, JointHistograms, joint_count_histograms
from .inputs import Capture, FitSettings, KDeg
from .joint import (BoxTooLarge, evaluate_bins, lattice_box, law_tables, thinned_tables,
                    thinning_plan)
from .likelihood_fit import (_maximise, _profile_side, _wald_se, layer_means,
                             n_threads)
from .stationary import derivatives_ab, logpmf_ab

__all__ = ["fit_layers", "fit_joint_table", "joint_tables", "shared_fit", "gene_objective", "DIFF_TESTS", "fit_joint_histograms", "fit_gene", "JOINT_REGIMES", "TooLargeWarning", "K_DEG_FLAGS",
           "JOINT_TARGETS", "MODELS", "bursty_rates", "FIT_METHODS", "marginal_fits",
           "ratio_of_means"]

log = logging.getLogger("telegraph")

class TooLargeWarning(UserWarning):
    """Some genes' counts were too large for the exact two-species law: fitted on
    their unspliced counts alone (``fit_method`` "unspliced_marginal"), or not at all
    (regime ``too_large``)."""


#: regimes of a two-species fit (the ``regime`` column;
#: "too_large": no starting point's law fits in telegraph.config.JOINT_MAX_POINTS lattice
#: points -- counts of thousands -- and the unspliced marginal could not stand in
#: (:func:`marginal_fits`), so the gene is not fitted)
JOINT_REGIMES = ("telegraph", "bursty", "bimodal", "poisson", "too_few_cells", "all_zero",
                 "too_large")
#: the estimates each regime fills; k_deg also needs ``k_deg_flag == "identified"``
#: to be bounded on both sides
JOINT_IDENTIFIED = {
    "telegraph": "k_on,k_off,k_syn,k_deg,burst_frequency,burst_size,fraction_on,"
                 "mean_expression",
    "bursty": "k_on,k_deg,burst_frequency,burst_size,mean_expression",
    "bimodal": "k_syn,k_deg,fraction_on,mean_expression",
    "poisson": "k_deg,mean_expression",
    "too_few_cells": "",
    "all_zero": "",
    "too_large": "",
}
#: ``k_deg_flag``: whether the data bound k_deg / k_splice. "fast_degradation": no
#: upper bound (spliced counts too few to tell how fast they go); "slow_degradation":
#: no lower bound (unspliced too few); "not_identified": neither
K_DEG_FLAGS = ("identified", "fast_degradation", "slow_degradation", "not_identified",
               "not_fitted")
#: ``fit_method``: "joint", the exact two-species law; "unspliced_marginal", a gene
#: too large for its lattice, fitted on its unspliced counts alone with k_deg from the
#: ratio of the means (:func:`marginal_fits`); "not_fitted"
FIT_METHODS = ("joint", "unspliced_marginal", "not_fitted")
#: quantities with intervals, in the order of the fit's log coordinates' targets
JOINT_TARGETS = ("burst_frequency", "burst_size", "k_off", "k_syn", "k_deg")
#: the models :func:`fit_layers` fits: the full telegraph model, or its bursty limit
MODELS = ("telegraph", "bursty")


# ---------------------------------------------------------------------------
# parameterisations
# ---------------------------------------------------------------------------

def bursty_rates(y):
    """Rates (a, b, lam, gam) in units of k_splice of the bursty-limit model at
    y = (log k_on, log burst size, log k_deg): k_off = JOINT_BURSTY_OFF * (1 +
    k_on + k_deg) and k_syn = burst size * k_off; with the Jacobian d theta / d y
    (4 x 3) and the second derivatives (4 x 3 x 3)."""
    a, B, gam = np.exp(y)
    K = config.JOINT_BURSTY_OFF
    b = K * (1.0 + a + gam)
    theta = np.array([a, b, B * b, gam])
    J = np.zeros((4, 3))
    J[0, 0] = a
    J[1, 0], J[1, 2] = K * a, K * gam
    J[2, 0], J[2, 1], J[2, 2] = B * K * a, B * b, B * K * gam
    J[3, 2] = gam
    T = np.zeros((4, 3, 3))
    T[0, 0, 0] = a
    T[1, 0, 0], T[1, 2, 2] = K * a, K * gam
    T[2, 0, 0] = T[2, 0, 1] = T[2, 1, 0] = B * K * a
    T[2, 1, 1] = B * b
    T[2, 1, 2] = T[2, 2, 1] = T[2, 2, 2] = B * K * gam
    T[3, 2, 2] = gam
    return theta, J, T


def _full_rates(y):
    theta = np.exp(y)
    T = np.zeros((4, 4, 4))
    for i in range(4):
        T[i, i, i] = theta[i]
    return theta, np.diag(theta), T


class _Gene:
    """One gene's bins and its log-likelihood in a model's coordinates y.

    The bins are reduced once to distinct (u, s, capture); cells are split into
    capture levels (a level holds captures within a factor
    :data:`telegraph.config.JOINT_CAPTURE_LEVEL` of its largest; one of fewer than
    :data:`telegraph.config.JOINT_LEVEL_MIN_FRACTION` of the cells joins the level
    above) and the law
    is solved once per level at its largest capture, the other bins of the
    level being binomial thinnings of it (:func:`telegraph.joint.evaluate_bins`)
    -- so a bin of low capture never asks for the far tail of a law solved at
    a much higher capture. Each level's lattice box is reused as the start of
    the next evaluation while the parameters stay within
    :data:`telegraph.config.JOINT_FIT_BOX_REUSE` (log scale) of those it was
    made for (the box is still grown wherever needed, so accuracy is
    unchanged)."""

    def __init__(self, u, s, w, cs, cu, model="telegraph"):
        self.rates = _full_rates if model == "telegraph" else bursty_rates
        top = np.maximum(cs, cu)
        c_max = float(top.max())
        level = np.floor(np.log(c_max / top) / -math.log(config.JOINT_CAPTURE_LEVEL) + 1e-9)
        # a level of few cells joins the one above (from the lowest up, so that small
        # levels in a row pool before they join)
        ids = np.unique(level)
        for lv, above in zip(ids[::-1][:-1], ids[::-1][1:]):
            if np.sum(w[level == lv]) < config.JOINT_LEVEL_MIN_FRACTION * np.sum(w):
                level[level == lv] = above
        self.levels = []
        for lv in np.unique(level):
            sel = level == lv
            c_ref = float(top[sel].max())
            bins = np.stack([u[sel], s[sel], cu[sel] / c_ref, cs[sel] / c_ref], axis=1)
            ub, inv = np.unique(bins, axis=0, return_inverse=True)
            wb = np.bincount(inv.ravel(), weights=w[sel], minlength=ub.shape[0])
            lu, ls = ub[:, 0].astype(np.int64), ub[:, 1].astype(np.int64)
            ru, rs = ub[:, 2].copy(), ub[:, 3].copy()
            self.levels.append(dict(c_ref=c_ref, wb=wb, u=lu, s=ls, rho_u=ru, rho_s=rs,
                                    plan=thinning_plan(lu, ls, ru, rs), box=None,
                                    box_at=None, scale=np.array([1.0, 1.0, c_ref, 1.0])))
        # parameters whose law needs a lattice far larger than the data's range are
        # out of reach for the optimiser (such steps are shortened, such starts skipped)
        self.max_points = max(config.JOINT_FIT_MIN_POINTS,
                              config.JOINT_FIT_BOX_FACTOR * (int(u.max()) + 2) * (int(s.max()) + 2))
        if model == "bursty":     # its laws have geometric tails: larger lattices
            self.max_points *= 4
        self.n_eval = 0
        self.refused = -1     # the last evaluation refused for the lattice budget
        # (parameters, box, count tables, scale) of the top level's last law solved
        self.top_tables = None
        # the elimination's scratch (front matrices), reused by every evaluation of
        # this gene (a fresh one per evaluation cost ~a quarter of a large box's
        # time); so one instance is evaluated on one thread at a time
        self.work = {}

    def loglik(self, theta, want):
        """(ll, grad, info) in (a, b, lam, gam) at capture 1."""
        a, b, lam, gam = theta
        lt = np.log(theta)
        ll, grad, info = 0.0, np.zeros(4), np.zeros((4, 4))
        near = config.JOINT_FIT_BOX_REUSE
        for L in self.levels:
            start = None
            if L["box"] is not None and np.max(np.abs(lt - L["box_at"])) < near:
                start = L["box"]
            try:
                rows, box = self._evaluate(L, a, b, lam, gam, want, start)
            except ValueError:
                if start is not None or L["box"] is None:
                    raise
                # the a priori box (from bounds on the marginal tails, which overshoot:
                # the spliced lower tail by hundreds of counts where k_deg << k_splice) is
                # over the lattice budget: start from the last solved box instead, which
                # the edge check grows wherever this law needs it (the same accuracy; over
                # the budget only if the law itself is)
                start = L["box"]
                rows, box = self._evaluate(L, a, b, lam, gam, want, start)
                L["box_at"] = lt
            if start is None:
                L["box_at"] = lt
            L["box"] = box
            if L is self.levels[0]:
                self.top_tables = self.work.get("tables")
            wb, sc = L["wb"], L["scale"]
            ll += float(np.sum(wb * rows.logp))
            if want >= 1:
                grad += np.sum(wb[:, None] * rows.score, axis=0) * sc
            if want >= 2:
                info += np.einsum("m,mij->ij", wb, rows.info) * np.outer(sc, sc)
        return ll, grad, info

    def _evaluate(self, L, a, b, lam, gam, want, start):
        return evaluate_bins(a, b, L["c_ref"] * lam, gam, L["u"], L["s"], L["rho_u"],
                             L["rho_s"], want, start_box=start, max_points=self.max_points,
                             tail=config.JOINT_FIT_TAIL, plan=L["plan"],
                             trim=config.JOINT_FIT_TRIM, work=self.work,
                             edge_margin=config.JOINT_FIT_EDGE_MARGIN, bin_margin=True)

    def __call__(self, y, want=2):
        """(loglik, gradient, information) in y; loglik -inf where the law cannot
        be evaluated (a lattice beyond JOINT_MAX_POINTS). ``want`` 0: the
        log-likelihood only (gradient and information None); 1: and the
        gradient; 2: all three."""
        theta, J, T = self.rates(np.asarray(y, float))
        self.n_eval += 1
        try:
            ll, g4, I4 = self.loglik(theta, want)
        except BoxTooLarge:
            self.refused = self.n_eval
            return -np.inf, None, None
        except (ValueError, FloatingPointError, ZeroDivisionError):
            return -np.inf, None, None
        if not np.isfinite(ll):
            return -np.inf, None, None
        if want < 1:        # the log-likelihood only (no sensitivities solved)
            return ll, None, None
        g = J.T @ g4
        if want < 2:
            return ll, g, None
        info = J.T @ I4 @ J - np.einsum("i,ijk->jk", g4, T)
        return ll, g, info


# ---------------------------------------------------------------------------
# profile intervals
# ---------------------------------------------------------------------------

def _target_basis(model, name):
    """(A, k): y = A z with the target the k-th coordinate of z."""
    if model == "telegraph":
        if name == "burst_size":      # z = (log a, log b, log(lam/b), log gam)
            A = np.eye(4)
            A[2, 1] = 1.0
            return A, 2
        return np.eye(4), {"burst_frequency": 0, "k_off": 1, "k_syn": 2, "k_deg": 3}[name]
    return np.eye(3), {"burst_frequency": 0, "burst_size": 1, "k_deg": 2}[name]


# ---------------------------------------------------------------------------
# one gene
# ---------------------------------------------------------------------------

def _bounds(model):
    B = config.JOINT_FIT_BOUNDS
    if model == "telegraph":
        names = ("k_on", "k_off", "k_syn", "k_deg")
    else:
        names = ("k_on", "k_syn", "k_deg")
    lo = np.log([B[n][0] for n in names])
    hi = np.log([B[n][1] for n in names])
    if model == "bursty":       # burst size: k_syn over k_off's upper bound .. over its lower
        lo[1], hi[1] = math.log(1e-4), math.log(1e4)
    return lo, hi


def _starts(u, s, w, cs, cu, model):
    """Moment-based starting points in the model's coordinates: the means fix
    k_syn * fraction on and k_deg; for a few fractions on, the Fano factor of
    the unspliced (units of k_splice) or of the spliced counts (approximately
    units of k_deg) fixes k_on + k_off."""
    n = w.sum()
    mu_u = float(np.sum(w * u) / n)
    mu_s = float(np.sum(w * s) / n)
    cu_bar = float(np.sum(w * cu) / n)
    cs_bar = float(np.sum(w * cs) / n)
    m_u = max(mu_u / cu_bar, 1e-3)     # means at capture 1
    m_s = max(mu_s / cs_bar, 1e-3)
    gam = m_u / m_s
    fano_u = max(float(np.sum(w * (u - mu_u) ** 2) / n) / max(mu_u, 1e-9) - 1.0, 1e-3)
    fano_s = max(float(np.sum(w * (s - mu_s) ** 2) / n) / max(mu_s, 1e-9) - 1.0, 1e-3)
    out = []
    for f in (0.05, 0.3, 0.8):
        for which in ("u", "s"):
            if which == "u":
                S = mu_u * (1 - f) / (f * fano_u) - 1.0
            else:
                S = gam * (mu_s * (1 - f) / (f * fano_s) - 1.0)
            S = max(S, 1e-2)
            a, b, lam = f * S, (1 - f) * S, m_u / f
            if model == "telegraph":
                out.append(np.log([a, b, lam, gam]))
            else:
                out.append(np.log([a, lam / (b + 1.0), gam]))
    return out


def _in_log_rates(g, info, th):
    """Gradient and observed information in y = log(th) from those in th: d/dy =
    th d/dth, and -d2/dy2 = th th' * info - diag(th * g)."""
    return g * th, info * np.outer(th, th) - np.diag(g * th)


class _Marginal(NamedTuple):
    """The unspliced counts' own fits (:func:`_marginal_fit`): the telegraph
    law's maximum ``y`` = log(a, b, lam) and ``ll``, the bursty limit's
    (negative binomial) ``y_nb`` = log(a, burst size) and ``ll_nb``, and the
    Poisson law's maximum ``ll_p``; rates in units of k_splice at capture 1."""
    y: np.ndarray
    ll: float
    y_nb: np.ndarray
    ll_nb: float
    ll_p: float


def _negbinom_objective(u, w, cu):
    """(loglik, gradient, information) of the negative binomial -- the bursty
    limit of the unspliced marginal: shape a = k_on, burst size B thinned to B c
    by each bin's capture c -- in y = log(a, B)."""
    lg = gammaln(u + 1.0)

    def f(y):
        a, B = np.exp(y)
        q = B * cu
        L1 = np.log1p(q)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = float(np.sum(w * (gammaln(u + a) - gammaln(a) - lg
                                   + np.where(u > 0, u * np.log(q), 0.0) - (a + u) * L1)))
        ga = float(np.sum(w * (digamma(u + a) - digamma(a) - L1)))
        gB = float(np.sum(w * (u / B - (a + u) * cu / (1.0 + q))))
        haa = float(np.sum(w * (polygamma(1, u + a) - polygamma(1, a))))
        haB = -float(np.sum(w * cu / (1.0 + q)))
        hBB = float(np.sum(w * (-u / B ** 2 + (a + u) * cu ** 2 / (1.0 + q) ** 2)))
        return (ll, *_in_log_rates(np.array([ga, gB]), -np.array([[haa, haB], [haB, hBB]]),
                                   np.array([a, B])))
    return f


def _marginal_fit(u, w, cu, starts):
    """The unspliced counts' own maximum likelihood fits (:class:`_Marginal`), or
    None without unspliced molecules. Their marginal is the one-species
    Poisson-Beta law in units of k_splice (docs/maths.md, "Two species"): Newton
    on log(a, b, lam) with its exact score and information
    (:func:`telegraph.stationary.derivatives_ab`; microseconds per distinct
    (count, capture) pair), from the best of ``starts`` (log-rates, the first
    three of each used) in the fit's search box; its bursty limit, the negative
    binomial, likewise from its moments."""
    if u.max() <= 0:
        return None
    pairs, inv = np.unique(np.stack([u.astype(float), cu]), axis=1, return_inverse=True)
    uu, cc = pairs[0], pairs[1]
    ww = np.bincount(inv.ravel(), weights=w, minlength=uu.size)
    n, mu_u = float(ww.sum()), float(ww @ uu)
    lo, hi = _bounds("telegraph")
    lo, hi = lo[:3], hi[:3]

    def f(y):
        th = np.exp(y)
        with np.errstate(all="ignore"):
            lp, sc, I = derivatives_ab(uu, th[0], th[1], th[2] * cc)
        ll = float(ww @ lp)
        if not np.isfinite(ll):
            return -np.inf, None, None
        # d/d(a, b, lam) = (d/da, d/db, c d/dx) for each bin
        J = np.stack([np.ones_like(cc), np.ones_like(cc), cc], axis=1)
        g = np.einsum("m,mi->i", ww, sc * J)
        info = np.einsum("m,mij->ij", ww, I * J[:, :, None] * J[:, None, :])
        return (ll, *_in_log_rates(g, info, th))

    with np.errstate(all="ignore"):
        y0 = max((np.clip(np.asarray(y[:3], float), lo, hi) for y in starts),
                 key=lambda y: f(y)[0])
    y, ll, *_ = _maximise(f, y0, lo, hi, max_iter=25, tol=1e-4, stall=1e-3)
    # the negative binomial from its moments (Fano factor - 1 = burst size at the capture)
    c_bar = float(ww @ cc) / n
    m = mu_u / n
    v = float(ww @ (uu - m) ** 2) / n
    B0 = max(v / max(m, 1e-12) - 1.0, 1e-2) / c_bar
    yb0 = np.log([max(m / (B0 * c_bar), 1e-3), B0])
    lo_nb, hi_nb = np.array([lo[0], math.log(1e-4)]), np.array([hi[0], math.log(1e4)])
    y_nb, ll_nb, *_ = _maximise(_negbinom_objective(uu, ww, cc), np.clip(yb0, lo_nb, hi_nb),
                                lo_nb, hi_nb, max_iter=60, tol=1e-9)
    return _Marginal(y, float(ll), y_nb, float(ll_nb), _poisson_max(uu, ww, cc)[0])


def _marginal_start(mg, gam, model):
    """A start at the maximum of the unspliced counts' own likelihood
    (:func:`_marginal_fit`), with k_deg at ``gam`` (the ratio of the means).
    The joint maximum lies near it (the marginal is a factor of the joint law),
    where the moment starts can be far off (a bursty gene's moment start had 4x
    its k_syn and cost 4x a typical evaluation). None where the marginal's
    maximum is not a telegraph law to speak of (the Poisson law within 2 nats of
    it: its limits explain the counts as well)."""
    if mg is None or not np.isfinite(mg.ll) or mg.ll - mg.ll_p < 2.0:
        return None
    la, lb, ll = (float(v) for v in mg.y)
    if not all(np.isfinite(v) for v in (la, lb, ll, gam)) or gam <= 0:
        return None
    if model == "bursty":       # the marginal's own bursty-limit (negative-binomial) fit
        if np.all(np.isfinite(mg.y_nb)):
            return np.array([mg.y_nb[0], mg.y_nb[1], math.log(gam)])
        return np.array([la, ll - lb, math.log(gam)])
    # a marginal at (or towards) the bursty limit: k_off where the joint model is
    # that limit's to O(1 / JOINT_BURSTY_TEST), at the same burst size
    cap = math.log(config.JOINT_BURSTY_TEST * (1.0 + math.exp(la) + gam))
    if lb > cap:
        ll, lb = ll - (lb - cap), cap
    return np.array([la, lb, ll, math.log(gam)])


def _marginal_rejects_bursty(mg, drop):
    """Whether the unspliced counts alone reject the bursty limit by more than
    max(JOINT_BURSTY_SCREEN, 10 x the confidence drop) nats (the likelihood
    ratio of their telegraph law against its negative-binomial limit,
    :func:`_marginal_fit`). The joint test is then not run: its likelihood,
    which adds the spliced counts, was measured to reject the limit too (joint
    ratio at least 0.37 times the marginal one, and larger for every gene whose
    marginal ratio passed 10 nats, on the benchmark mixes at 1,000-10,000
    cells), while its test point, a law with the burst size of the limit,
    can need a lattice ten times the fit's (9 of a heavy gene's 20 CPU s)."""
    if mg is None:
        return False
    lr = mg.ll - mg.ll_nb
    return bool(np.isfinite(lr) and lr > max(config.JOINT_BURSTY_SCREEN, 10.0 * drop))


def _bursty_start(mg, y, lb):
    """A start of the bursty-limit test (k_off fixed at exp(lb), k_on, k_syn,
    k_deg free) from the unspliced marginal's bursty-limit (negative-binomial)
    fit: its k_on and burst size, k_deg of ``y``. None without that fit."""
    if mg is None or not np.all(np.isfinite(mg.y_nb)):
        return None
    return np.array([mg.y_nb[0], lb, mg.y_nb[1] + lb, y[3]])


def _ranked(gene, starts, u, w, cu):
    """``starts`` in decreasing order of the exact log-likelihood of the unspliced
    counts alone (the one-species Poisson-Beta law in units of k_splice:
    microseconds per bin, where one joint evaluation solves a lattice)."""
    def unspliced(y):
        a, b, lam, _ = gene.rates(y)[0]
        with np.errstate(all="ignore"):
            v = float(np.sum(w * logpmf_ab(u, a, b, lam * cu)))
        return v if np.isfinite(v) else -np.inf
    order = np.argsort([-unspliced(y) for y in starts], kind="stable")
    return [starts[i] for i in order]


def _first_point(gene, starts, u, w, cu):
    """The start of a fit's Newton iterations among ``starts`` (the unspliced
    marginal's maximum, :func:`_marginal_start`, and the moment starts), and its
    (log-likelihood, gradient, information) or None.

    The starts are ranked by the exact log-likelihood of the unspliced counts alone
    (their marginal is the one-species Poisson-Beta law in units of k_splice,
    docs/maths.md "Two species": microseconds per bin, where one joint evaluation
    solves a lattice); the best :data:`telegraph.config.JOINT_FIT_STARTS` of them
    are evaluated with the joint law and the best of those is taken. With one,
    it is evaluated once with its information, which the first Newton step
    needs anyway; a start whose joint law cannot be evaluated (over the lattice
    budget) gives way to the next in the ranking."""
    ranked = _ranked(gene, starts, u, w, cu)
    n = config.JOINT_FIT_STARTS
    if n == 1:
        for y in ranked:
            res = gene(y, want=2)
            if np.isfinite(res[0]):
                return y, res
        return ranked[0], None
    lls = [gene(y, want=0)[0] for y in ranked[:n]]
    if not np.isfinite(max(lls)):
        lls += [gene(y, want=0)[0] for y in ranked[n:]]
    return ranked[int(np.argmax(lls))], None


def _poisson_max(x, w, c):
    """Maximum of one species' Poisson law thinned by capture ``c``: (loglik,
    mean at capture 1)."""
    m = float(np.sum(w * x) / np.sum(w * c))
    lam = c * m
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(x > 0, x * np.log(np.where(lam > 0, lam, 1.0)), 0.0) - lam \
            - gammaln(x + 1.0)
    return float(np.sum(w * term)), m


def _poisson_loglik(u, s, w, cs, cu):
    """Maximum of the constitutive (two independent Poisson) law; returns
    (loglik, mean unspliced, mean spliced) at capture 1."""
    ll_u, mu = _poisson_max(u, w, cu)
    ll_s, ms = _poisson_max(s, w, cs)
    return ll_u + ll_s, mu, ms


def _bimodal_loglik(u, s, w, cs, cu, tol=1e-10, max_iter=2000):
    """Maximum of the slow-switching limit (k_on, k_off -> 0 at a fixed fraction
    on f, relative to k_splice and k_deg): cells are off (no molecules) with
    probability 1 - f, else on, with independent Poisson unspliced (mean k_syn,
    units of k_splice) and spliced (mean k_syn / k_deg) counts, thinned by the
    capture. By EM (the off/on state of the cells with no molecule is the
    missing datum). Returns (loglik, f, k_syn, k_deg) at capture 1."""
    zero = (u == 0) & (s == 0)
    n = float(w.sum())
    const = float(np.sum(w * (gammaln(u + 1.0) + gammaln(s + 1.0))))
    mu = max(float(np.sum(w * u) / np.sum(w * cu)), 1e-12)
    ms = max(float(np.sum(w * s) / np.sum(w * cs)), 1e-12)
    f = max(float(np.sum(w[~zero])) / n, 1e-9)
    mu, ms = mu / f, ms / f
    ll_old = -np.inf
    for _ in range(max_iter):
        lam_u, lam_s = cu * mu, cs * ms
        log_on = (np.log(f) + np.where(u > 0, u * np.log(np.maximum(lam_u, 1e-300)), 0.0)
                  - lam_u + np.where(s > 0, s * np.log(np.maximum(lam_s, 1e-300)), 0.0) - lam_s)
        log_p = np.where(zero, np.logaddexp(math.log1p(-min(f, 1.0 - 1e-15)), log_on), log_on)
        ll = float(np.sum(w * log_p)) - const
        r = np.where(zero, np.exp(log_on - log_p), 1.0)        # P(on | counts)
        wr = w * r
        f = min(max(float(wr.sum()) / n, 1e-12), 1.0)
        mu = max(float(np.sum(wr * u) / np.sum(wr * cu)), 1e-12)
        ms = max(float(np.sum(wr * s) / np.sum(wr * cs)), 1e-12)
        if ll - ll_old < tol * (1.0 + abs(ll)):
            break
        ll_old = ll
    return ll, f, mu, mu / ms


def _gof(theta, y_info, u, s, w, cs, cu, min_expected, box=None, tables=None):
    """Pearson statistic over (u, s) classes against the fitted law: every
    lattice point expecting at least ``min_expected`` cells is a class, the
    others are pooled in order of decreasing expectation into classes
    expecting at least ``min_expected``. Returns (X2, K, information of the classes in log
    coordinates) (NaN where not computed). ``box``: the lattice box of the law at
    the largest capture (a fit passes the box its top capture level solved last in
    the point fit, at or a Newton step from the estimate, trimmed to where that law
    fell JOINT_FIT_TRIM nats below the depth its edges had to reach); default the a
    priori box of the fit's normalisation tail. The mass outside the box joins the
    last pool. ``tables``: (parameters, box, count tables, scale) of a law already
    solved with sensitivities (the fit's last evaluation of its top level,
    ``work["tables"]`` of :func:`telegraph.joint.evaluate_bins`), used instead of a
    new solve when its parameters are those of ``theta`` at the largest capture."""
    a, b, lam, gam = theta
    c_ref = float(max(cs.max(), cu.max()))
    if box is None:
        box = lattice_box(a, b, c_ref * lam, gam, tail=config.JOINT_FIT_TAIL)
    u_lo, nu, s_lo, ns = box
    if nu * ns > config.JOINT_MAX_POINTS // 2:
        return np.nan, np.nan, np.full((4, 4), np.nan)
    # the cells' captures in bands of a factor 1.15 (each at its cell-weighted mean):
    # the expected counts of a class hardly move within a band
    band = np.floor(np.log(c_ref / np.maximum(cs, cu)) / math.log(1.15)).astype(np.int64)
    pairs, grp_cells = [], []
    for bnd in np.unique(band):
        sel = band == bnd
        ws = w[sel]
        pairs.append((float(np.sum(ws * cu[sel]) / ws.sum()) / c_ref,
                      float(np.sum(ws * cs[sel]) / ws.sum()) / c_ref))
        grp_cells.append(float(ws.sum()))
    # the law solved once on the box; each band's expectations are binomial thinnings
    # of its tables (matrix products over the lattice)
    if (tables is not None and tables[2].shape[0] >= 5
            and np.array_equal(tables[0], [a, b, c_ref * lam, gam])):
        _, box, Y, top = tables
        u_lo, nu, s_lo, ns = box
        if nu * ns > config.JOINT_MAX_POINTS // 2:
            return np.nan, np.nan, np.full((4, 4), np.nan)
        Y = Y[:5]
    else:
        Y, top = law_tables(a, b, c_ref * lam, gam, box, want=1)
    E = np.zeros((nu, ns))
    dE = np.zeros((4, nu, ns))
    for (ru, rs), ncell in zip(pairs, grp_cells):
        T = thinned_tables(Y, box, ru, rs)
        E += ncell * T[0]
        dE += ncell * T[1:]
    # per lattice point (u-major, as u * ns + s), derivatives in log coordinates
    E = E.ravel() * math.exp(top)
    dE = dE.reshape(4, -1).T * (math.exp(top) * np.array([a, b, c_ref * lam, gam]))
    n = w.sum()
    O = np.zeros(E.size)
    inside = (u >= u_lo) & (u < u_lo + nu) & (s >= s_lo) & (s < s_lo + ns)
    idx = (s[inside] - s_lo) + ns * (u[inside] - u_lo)
    np.add.at(O, idx, w[inside])
    # classes: every lattice point expecting at least min_expected cells; the others,
    # in order of decreasing expectation, pooled into classes of at least min_expected
    # (a two-dimensional law spreads its mass over many points); the mass outside the
    # box joins the last pool. The classes depend on the fitted law only.
    order = np.argsort(-E, kind="stable")
    cls = np.empty(E.size, np.int64)
    k, acc = 0, 0.0
    for j in order:
        cls[j] = k
        acc += E[j]
        if acc >= min_expected:
            k, acc = k + 1, 0.0
    n_cls = k + (1 if acc > 0 else 0)
    Ek = np.bincount(cls, weights=E, minlength=n_cls)
    Ok = np.bincount(cls, weights=O, minlength=n_cls)
    dEk = np.stack([np.bincount(cls, weights=dE[:, i], minlength=n_cls) for i in range(4)],
                   axis=1)
    # the last pool and the mass outside the box (what the lattice leaves out)
    Ek[-1] += n - float(np.sum(E))
    Ok[-1] += n - float(np.sum(O))
    dEk[-1] -= np.sum(dE, axis=0)
    if Ek[-1] < min_expected and n_cls > 1:
        Ek[-2] += Ek[-1]
        Ok[-2] += Ok[-1]
        dEk[-2] += dEk[-1]
        Ek, Ok, dEk = Ek[:-1], Ok[:-1], dEk[:-1]
    if not np.all(Ek > 0):
        return np.nan, np.nan, np.full((4, 4), np.nan)
    x2 = float(np.sum((Ok - Ek) ** 2 / Ek))
    Ig = np.einsum("ki,kj->ij", dEk / Ek[:, None], dEk)
    return x2, float(len(Ek)), Ig


def fit_gene(u, s, w, cs, cu, settings: FitSettings, model: str = "telegraph",
             budget: float = 1.0) -> dict:
    """Fit one gene's (unspliced, spliced) histogram.

    Parameters
    ----------
    u, s : int arrays (m,)
        Bins' unspliced and spliced counts.
    w : float array (m,)
        Cells per bin.
    cs, cu : float arrays (m,)
        Capture efficiency of spliced and unspliced molecules of each bin.
    settings : FitSettings
    model : {"telegraph", "bursty"}
        The full model, or its bursty limit (:func:`bursty_rates`).
    budget : float
        Multiplies the gene's lattice budget (the largest lattice the optimiser
        may use). A fit whose estimate sits on the edge of what that budget can
        evaluate -- a profile end at the estimate itself, no step beyond it
        evaluable -- is refitted once with
        :data:`telegraph.config.JOINT_WALL_BUDGET` times the budget.

    Returns
    -------
    dict of estimates in units of k_splice (see :func:`fit_layers`), at the
    capture scale of ``cs``/``cu``.
    """
    u = np.asarray(u, np.int64)
    s = np.asarray(s, np.int64)
    w = np.asarray(w, float)
    cs = np.asarray(cs, float)
    cu = np.asarray(cu, float)
    n_cells = float(w.sum())
    row = {"n_cells_fit": n_cells}
    if n_cells < settings.min_cells:
        row["regime"] = "too_few_cells"
        return row
    if not ((u > 0) | (s > 0)).any():
        row["regime"] = "all_zero"
        return row
    lo, hi = _bounds(model)
    gene = _Gene(u, s, w, cs, cu, model)
    gene.max_points = int(gene.max_points * budget)
    moment = _starts(u, s, w, cs, cu, "telegraph")
    starts = list(moment) if model == "telegraph" else _starts(u, s, w, cs, cu, model)
    marginal = _marginal_fit(u, w, cu, moment)
    m0 = _marginal_start(marginal, float(np.sum(w * u) / np.sum(w * cu))
                         / max(float(np.sum(w * s) / np.sum(w * cs)), 1e-3), model)
    if m0 is not None:
        starts.insert(0, m0)
    y0, state = _first_point(gene, [np.clip(y, lo, hi) for y in starts], u, w, cu)
    y, ll, g, info, it, conv = _maximise(gene, y0, lo, hi, wall=config.JOINT_WALL_STEP,
                                         wall_tol=config.JOINT_WALL_TOL, state=state,
                                         stall=config.JOINT_FIT_STALL)
    if budget == 1.0 and np.isfinite(ll) and gene.refused >= gene.n_eval - 3:
        # its last steps were cut short by the lattice budget: the maximum lies beyond
        # it; go on from here with room (the refit below is then not needed)
        budget = config.JOINT_WALL_BUDGET
        gene.max_points = int(gene.max_points * budget)
        y, ll, g, info, it2, conv = _maximise(gene, y, lo, hi, wall=config.JOINT_WALL_STEP,
                                              wall_tol=config.JOINT_WALL_TOL,
                                              state=(ll, g, info), stall=config.JOINT_FIT_STALL)
        it += it2
    row.update(y=y, loglik=ll, n_iter=it, converged=bool(conv and np.isfinite(ll)))
    # the top capture level's box as the point fit left it (solved at, or a step from,
    # the estimate): the goodness of fit's box (the profile's last boxes suit other laws)
    gof_box = gene.levels[0]["box"]
    gof_tables = gene.top_tables
    if not np.isfinite(ll):
        # no start could be evaluated: the law at every one needs a lattice over
        # JOINT_MAX_POINTS (or the gene's budget); nothing is estimated
        row.pop("y")
        row["regime"] = "too_large"
        row["converged"] = False
        return row
    # chi2_1 quantile and normal quantile without scipy.stats (half a second of start-up)
    z = float(ndtri(0.5 + settings.ci / 2.0))
    drop = z * z / 2.0
    ll_p, mu_p, ms_p = _poisson_loglik(u, s, w, cs, cu)
    row.update(loglik_poisson=ll_p, poisson_mu=mu_p, poisson_ms=ms_p)
    # the slow-switching limit (both modes, no switching in a lifetime): k_on and k_off
    # are then bounded above only, burst size below only
    bimodal = False
    if model == "telegraph":
        ll_bm, f_bm, lam_bm, gam_bm = _bimodal_loglik(u, s, w, cs, cu)
        row.update(loglik_bimodal=ll_bm, bimodal_f=f_bm, bimodal_k_syn=lam_bm,
                   bimodal_k_deg=gam_bm)
        bimodal = ll - ll_bm < drop
    if model == "telegraph":
        # the bursty limit: the likelihood no lower (within the drop) at k_off =
        # JOINT_BURSTY_TEST * (1 + k_on + k_deg) in units of k_splice, the other rates
        # re-maximised (beyond that the law is the bursty limit's to O(1/that))
        a, _, _, gam = np.exp(y)
        lb = min(math.log(config.JOINT_BURSTY_TEST * (1.0 + a + gam)), hi[1])
        if y[1] >= lb:
            bursty = True
        elif _marginal_rejects_bursty(marginal, drop):
            bursty, llb = False, -np.inf
        else:
            free = np.array([True, False, True, True])
            yb = y.copy()
            yb[1] = lb
            yb[2] = y[2] + (lb - y[1])
            # or the unspliced marginal's own bursty-limit fit, whichever its likelihood
            # prefers: the shifted estimate keeps a burst size fitted away from the limit,
            # whose law there can need a lattice ten times the fit's (half a typical
            # gene's time went into that one evaluation)
            yn = _bursty_start(marginal, y, lb)
            if yn is not None:
                yb = _ranked(gene, [np.clip(yb, lo, hi), np.clip(yn, lo, hi)], u, w, cu)[0]
            first = gene(np.clip(yb, lo, hi))
            if ll - first[0] < drop and not bimodal:
                # already within the drop at the start: re-maximising only raises
                # llb, and its value is needed only to choose between two limits
                llb = first[0]
            else:
                # (given up once its quadratic model, four times over, cannot reach the
                # drop: only whether it does decides, and each step solves a wide law)
                _, llb, *_ = _maximise(gene, yb, lo, hi, free=free, max_iter=25, tol=1e-4,
                                       wall=config.JOINT_WALL_STEP, state=first,
                                       stall=config.JOINT_FIT_STALL,
                                       floor=ll - drop)
            bursty = ll - llb < drop
    else:
        bursty = True
    # the sides a limit within the confidence set leaves unbounded (log scale); with both
    # limits in it, both sets (the regime below names the nearer one)
    open_side = {}
    if bursty:
        open_side = {"k_off": (None, np.inf), "k_syn": (None, np.inf)}
    if bimodal:
        open_side.update({"burst_frequency": (-np.inf, None), "burst_size": (None, np.inf),
                          "k_off": (-np.inf, open_side.get("k_off", (None, None))[1])})
    if model == "telegraph":
        if bimodal and bursty:      # the nearer limit
            bimodal = ll_bm > llb if y[1] < lb else False
            bursty = not bimodal
    targets = JOINT_TARGETS if model == "telegraph" else ("burst_frequency", "burst_size",
                                                          "k_deg")
    if ll - ll_p < drop:
        # the two-Poisson law, within the drop, is a limit of the model both ways (a
        # promoter always on: k_off -> 0, any k_on, burst size -> inf; or bursts of
        # vanishing size: k_on -> inf, burst size -> 0): nothing but the means and
        # k_deg is bounded, as for one species
        open_side = {name: (-np.inf, np.inf)
                     for name in ("burst_frequency", "burst_size", "k_off", "k_syn")}
    ci = {}
    for name in targets:
        A, k = _target_basis(model, name)
        zk = float((np.linalg.inv(A) @ y)[k])
        se = _wald_se(info, A, k)
        lo_open, hi_open = open_side.get(name, (None, None))
        if settings.interval == "profile" and (name in settings.profile or name == "k_deg"
                                               or model == "bursty"):
            lo_k = (lo_open if lo_open is not None else
                    _profile_side(gene, y, ll, lo, hi, A, k, -1, drop, se, info,
                                  config.JOINT_WALL_STEP, config.JOINT_FIT_STALL))
            hi_k = (hi_open if hi_open is not None else
                    _profile_side(gene, y, ll, lo, hi, A, k, +1, drop, se, info,
                                  config.JOINT_WALL_STEP, config.JOINT_FIT_STALL))
            if budget == 1.0 and min(abs(lo_k - zk), abs(hi_k - zk)) < 2e-3:
                # an end at the estimate itself (within 0.2% in the rate): no point
                # beyond it could be evaluated (its law needs a lattice over the
                # budget), so the maximum was found on that wall, not at the
                # likelihood's top; fit again with room
                return fit_gene(u, s, w, cs, cu, settings, model,
                                budget=config.JOINT_WALL_BUDGET)
        else:
            lo_k = zk - z * se if lo_open is None else lo_open
            hi_k = zk + z * se if hi_open is None else hi_open
        ci[name] = (lo_k, hi_k)
    row["ci"] = ci
    if ll - ll_p < drop:
        row["regime"] = "poisson"
    elif bursty:
        row["regime"] = "bursty"
    elif bimodal:
        row["regime"] = "bimodal"
    else:
        row["regime"] = "telegraph"
    if settings.gof_min_expected > 0 and model == "telegraph":
        theta = np.exp(y)
        try:
            x2, K, Ig = _gof(theta, info, u, s, w, cs, cu, settings.gof_min_expected,
                             box=gof_box, tables=gof_tables)
        except (ValueError, FloatingPointError):
            x2, K, Ig = np.nan, np.nan, np.full((4, 4), np.nan)
        row.update(gof_stat=x2, gof_cells=K, gof_Ig=Ig, gof_I=info)
    row["n_eval"] = gene.n_eval
    row["info"] = info
    return row


# ---------------------------------------------------------------------------
# many genes
# ---------------------------------------------------------------------------

def _gene_bins(jh: JointHistograms, g: int, unspliced_factor: float):
    u, s, grp, wt = jh.gene(g)
    cs = jh.hist.capture[grp]
    cu = cs * unspliced_factor
    return u, s, np.asarray(wt, float), cs, cu


def fit_block(jh: JointHistograms, settings: FitSettings, model: str = "telegraph",
              unspliced_factor: float = 1.0, n_jobs: int | None = 1, bar=None) -> list:
    """Fit every gene of ``jh`` on ``n_jobs`` workers (:func:`telegraph.blocks.map_genes`:
    processes for many genes); a list of rows."""
    bins = [_gene_bins(jh, g, unspliced_factor) for g in range(jh.n_genes)]
    # work ~ the lattice (the counts' range in both species) and the bins
    cost = [(int(b[0].max(initial=0)) + 2) * (int(b[1].max(initial=0)) + 2) + len(b[0])
            for b in bins]
    return blocks.map_genes(fit_gene, bins, settings, model, n_jobs=n_jobs, bar=bar,
                            cost=cost)


def fit_joint_histograms(jh: JointHistograms, *, settings: FitSettings | None = None,
                         model: str = "telegraph", unspliced_factor: float = 1.0,
                         n_jobs: int | None = None, progress: bool | None = config.PROGRESS,
                         client=None) -> pd.DataFrame:
    """Fit every gene of a :class:`telegraph.histogram.JointHistograms`.

    The histograms are sufficient statistics: :func:`fit_layers` runs this
    after one pass over the two layers, and fits from disk and on Dask reduce
    to it. With ``client`` the genes are cut into blocks of about equal
    numbers of bins, fitted on the workers. Parameters and result as
    :func:`fit_layers`.
    """
    settings = FitSettings() if settings is None else settings
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}; got {model!r}")
    t0 = time.perf_counter()
    if client is not None:
        blocks.check_client(client)
    if client is not None and jh.n_genes:
        bounds = blocks.balanced_bounds(
            jh.hist.indptr, config.BLOCKS_PER_THREAD * blocks.total_threads(client))
        parts = [JointHistograms(jh.hist.subset(slice(int(a), int(b))), jh.base)
                 for a, b in zip(bounds[:-1], bounds[1:])]
        tables = blocks.map_blocks(fit_joint_table, parts, settings, model, unspliced_factor,
                                   client=client, sizes=np.diff(bounds), progress=progress,
                                   desc="telegraph fit (two species)")
        table = joint_tables(tables, settings, model, unspliced_factor)
    else:
        bar = blocks.progress_bar(jh.n_genes, "telegraph fit (two species)", progress,
                                  unit="gene")
        try:
            rows = fit_block(jh, settings, model, unspliced_factor,
                             n_jobs=n_threads(n_jobs), bar=bar)
        finally:
            if bar is not None:
                bar.close()
        table = joint_tables([joint_results_table(rows, jh, settings, model, unspliced_factor)],
                             settings, model, unspliced_factor)
    message = too_large_message(table)
    if message is not None:
        warnings.warn(message, TooLargeWarning, stacklevel=3)
    log.info("fitted %d genes (two species) in %.1f s", jh.n_genes, time.perf_counter() - t0)
    return table


def too_large_message(table: pd.DataFrame) -> str | None:
    """What to tell the user about the genes of a two-species result table that were
    too large for the exact law (names and what was done, or the fix), or None when
    there are none (the warning of :func:`fit_joint_histograms` and the CLI's line)."""
    def names(mask):
        big = [str(g) for g in table.loc[mask, "gene"]]
        return len(big), ", ".join(big[:5]) + (", ..." if len(big) > 5 else "")

    room = (f"telegraph.config.JOINT_MAX_POINTS = {config.JOINT_MAX_POINTS} lattice points "
            "(raise it if you have the memory, ~10 kB per point)")
    parts = []
    if "fit_method" in table:
        n, which = names(table["fit_method"].astype(str) == "unspliced_marginal")
        if n:
            parts.append(f"{n} gene(s) too large for the exact two-species law ({which}) were "
                         "fitted on their unspliced counts alone, k_deg from the ratio of the "
                         f"means (fit_method unspliced_marginal); their law needs more than "
                         f"{room}")
    n, which = names(table["regime"].astype(str) == "too_large")
    if n:
        parts.append(f"{n} gene(s) not fitted, regime too_large ({which}): counts of "
                     f"thousands of molecules need more than {room}; fit them with one species "
                     "(tg.fit without unspliced=, telegraph fit without --unspliced-layer)")
    return "; ".join(parts) if parts else None


def fit_joint_table(jh: JointHistograms, settings: FitSettings, model: str = "telegraph",
                    unspliced_factor: float = 1.0) -> pd.DataFrame:
    """Fit every gene of ``jh`` on this thread: the table of
    :func:`joint_results_table` (what a Dask task runs on a block of genes;
    :func:`joint_tables` joins the blocks' tables)."""
    return joint_results_table(fit_block(jh, settings, model, unspliced_factor), jh, settings,
                               model, unspliced_factor)


def joint_tables(tables, settings: FitSettings, model: str = "telegraph",
                 unspliced_factor: float = 1.0) -> pd.DataFrame:
    """The tables of blocks of genes (in order) as one table with the fit's record
    in ``attrs``."""
    tables = list(tables)
    table = pd.concat(tables) if len(tables) > 1 else tables[0]
    table.attrs["settings"] = {**settings.record(), "model": model, "species": "two",
                               "unspliced_factor": float(unspliced_factor)}
    table.attrs["k_deg"] = KDeg(None).record(arrays=False)
    return table


def joint_results_table(rows, jh: JointHistograms, settings: FitSettings,
                        model: str = "telegraph", unspliced_factor: float = 1.0) -> pd.DataFrame:
    """The public table of a two-species fit from :func:`fit_gene` rows.

    Genes too large for the exact two-species law (regime ``too_large`` in
    their rows) are fitted here on their unspliced counts alone, with k_deg
    from the ratio of the means (:func:`marginal_fits`; model "telegraph" only)."""
    n = len(rows)
    genes = jh.hist.genes
    names = [f"gene{i}" for i in range(n)] if genes is None else [str(g) for g in genes]
    nan = np.full(n, np.nan)
    cols = {k: nan.copy() for k in ("k_on", "k_off", "k_syn", "k_deg", "burst_frequency",
                                    "burst_size", "fraction_on", "mean_expression",
                                    "mean_expression_unspliced", "loglik")}
    ci = {f"{t}_ci_{side}": nan.copy() for t in JOINT_TARGETS for side in ("low", "high")}
    regime = np.array([r.get("regime", "too_few_cells") for r in rows], dtype=object)
    kflag = np.full(n, "not_fitted", dtype=object)
    converged = np.zeros(n, bool)
    n_iter = np.zeros(n, np.int64)
    ll_tel = nan.copy()
    ll_p = nan.copy()
    x2 = nan.copy()
    K = nan.copy()
    I_full = np.full((n, 4, 4), np.nan)
    I_g = np.full((n, 4, 4), np.nan)
    npar = np.zeros(n, int)
    for i, r in enumerate(rows):
        if "y" not in r:
            continue
        y = r["y"]
        if model == "telegraph":
            a, b, lam, gam = np.exp(y)
        else:
            a, b, lam, gam = bursty_rates(y)[0]
        reg = regime[i]
        fitted = np.isfinite(r.get("loglik", np.nan))
        converged[i] = r.get("converged", False)
        n_iter[i] = r.get("n_iter", 0)
        ll_tel[i] = r.get("loglik", np.nan)
        ll_p[i] = r.get("loglik_poisson", np.nan)
        if not fitted:
            continue
        if reg == "poisson":
            # no spliced molecules at all: the maximum is at infinitely fast degradation
            # (inf, not the 1e300 a floored ratio gave; no unspliced ones: 0)
            cols["k_deg"][i] = (r["poisson_mu"] / r["poisson_ms"] if r["poisson_ms"] > 0
                                else np.inf)
            cols["mean_expression"][i] = r["poisson_ms"]
            cols["mean_expression_unspliced"][i] = r["poisson_mu"]
            cols["loglik"][i] = r["loglik_poisson"]
        elif reg == "bimodal":     # only the on-state law, the fraction on and k_deg
            cols["k_syn"][i] = lam
            cols["k_deg"][i] = gam
            cols["fraction_on"][i] = a / (a + b)
            cols["mean_expression_unspliced"][i] = lam * a / (a + b)
            cols["mean_expression"][i] = lam * a / ((a + b) * gam)
            cols["loglik"][i] = r["loglik"]
        else:
            cols["k_on"][i] = cols["burst_frequency"][i] = a
            cols["burst_size"][i] = lam / b
            cols["k_deg"][i] = gam
            cols["mean_expression_unspliced"][i] = lam * a / (a + b)
            cols["mean_expression"][i] = lam * a / ((a + b) * gam)
            cols["loglik"][i] = r["loglik"]
            if reg == "telegraph":
                cols["k_off"][i] = b
                cols["k_syn"][i] = lam
                cols["fraction_on"][i] = a / (a + b)
        for t, (lo_t, hi_t) in r["ci"].items():
            with np.errstate(over="ignore"):
                ci[f"{t}_ci_low"][i] = np.exp(lo_t)
                ci[f"{t}_ci_high"][i] = np.exp(hi_t)
        lo_k, hi_k = ci["k_deg_ci_low"][i], ci["k_deg_ci_high"][i]
        lower = lo_k > 1.0001 * config.JOINT_FIT_BOUNDS["k_deg"][0] and lo_k > 0
        upper = np.isfinite(hi_k)
        kflag[i] = ("identified" if lower and upper else "fast_degradation" if lower
                    else "slow_degradation" if upper else "not_identified")
        if "gof_stat" in r:
            x2[i], K[i] = r["gof_stat"], r["gof_cells"]
            I_full[i], I_g[i] = r["gof_I"], r["gof_Ig"]
            npar[i] = 4
    out = pd.DataFrame(index=pd.Index(names))
    out["gene"] = names
    for k in ("k_on", "k_off", "k_syn", "k_deg", "burst_frequency", "burst_size"):
        out[k] = cols[k]
    out["k_splice"] = np.where(np.isin(regime, ["telegraph", "bursty", "bimodal", "poisson"]),
                               1.0, np.nan)
    for t in JOINT_TARGETS:
        out[f"{t}_ci_low"] = ci[f"{t}_ci_low"]
        out[f"{t}_ci_high"] = ci[f"{t}_ci_high"]
    out["k_on_ci_low"] = out["burst_frequency_ci_low"]
    out["k_on_ci_high"] = out["burst_frequency_ci_high"]
    out["fraction_on"] = cols["fraction_on"]
    out["mean_expression"] = cols["mean_expression"]
    out["mean_expression_unspliced"] = cols["mean_expression_unspliced"]
    out["loglik"] = cols["loglik"]
    out["n_cells"] = np.asarray(jh.hist.n_cells, dtype=np.int64)
    out["n_missing"] = np.asarray(jh.hist.n_missing, dtype=np.int64)
    out["mean_unspliced"], out["mean"] = layer_means(jh)
    out["regime"] = pd.Categorical(regime, categories=list(JOINT_REGIMES))
    # k_deg / k_splice is identified only when the data bound it on both sides
    out["identified"] = [",".join(q for q in JOINT_IDENTIFIED[r].split(",")
                                  if q != "k_deg" or kf == "identified")
                         for r, kf in zip(regime, kflag)]
    out["k_deg_flag"] = pd.Categorical(kflag, categories=list(K_DEG_FLAGS))
    out["converged"] = converged
    gof_columns(out, x2, K, npar, I_full, I_g,
                not_fitted=np.isin(regime, ["too_few_cells", "all_zero", "too_large"]))
    out[f"loglik_{model}"] = ll_tel
    out["loglik_poisson"] = ll_p
    out["n_iter"] = n_iter
    fitted = np.isin(regime, ["telegraph", "bursty", "bimodal", "poisson"])
    out["fit_method"] = pd.Categorical(np.where(fitted, "joint", "not_fitted"),
                                       categories=list(FIT_METHODS))
    big = np.flatnonzero(regime == "too_large")
    if model == "telegraph" and big.size:
        marginal_fits(out, jh, big, settings, unspliced_factor)
    return out


def _unspliced_histograms(jh: JointHistograms, genes, unspliced_factor: float) -> CountHistograms:
    """The histograms of the unspliced counts alone (by capture group, the groups'
    capture times ``unspliced_factor``) of the genes ``genes`` of ``jh``: the
    marginal over the spliced counts."""
    indptr, values, groups, weights = [0], [], [], []
    for g in genes:
        u, _, grp, wt = jh.gene(int(g))
        key = grp.astype(np.int64) * (int(u.max()) + 1) + u
        uniq, inv = np.unique(key, return_inverse=True)
        values.append(uniq % (int(u.max()) + 1))
        groups.append(uniq // (int(u.max()) + 1))
        weights.append(np.bincount(inv, weights=wt, minlength=uniq.size))
        indptr.append(indptr[-1] + uniq.size)
    genes = np.asarray(genes, np.int64)
    names = None if jh.hist.genes is None else jh.hist.genes[genes]
    cat = (lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts
           else np.empty(0, dtype))
    return CountHistograms(np.asarray(indptr, np.int64), cat(values, np.int64),
                           cat(groups, np.int64), cat(weights, float),
                           jh.hist.capture * unspliced_factor,
                           jh.hist.n_cells[genes], jh.hist.n_missing[genes], names)


def ratio_of_means(u, s, w, cs, cu, ci: float = config.CI):
    """k_deg / k_splice from the ratio of the mean unspliced to the mean spliced
    count (at stationarity k_splice E[U] = k_deg E[S] whatever the promoter does),
    each mean per unit capture, with a delta-method (sandwich) interval on the log
    scale (docs/maths.md, "Genes too large for the lattice").

    Parameters
    ----------
    u, s : int arrays (m,)
        Bins' unspliced and spliced counts.
    w : float array (m,)
        Cells per bin.
    cs, cu : float arrays (m,)
        Capture efficiency of spliced and unspliced molecules of each bin.
    ci : float
        Confidence level.

    Returns
    -------
    (k_deg, ci_low, ci_high, se of log k_deg), k_deg in units of k_splice; NaN
    when either layer has no molecules.
    """
    u, s, w, cs, cu = (np.asarray(v, float) for v in (u, s, w, cs, cu))
    A, B = float(w @ u), float(w @ s)
    n = float(w.sum())
    if not (A > 0 and B > 0 and n > 1):
        return np.nan, np.nan, np.nan, np.nan
    mu_u, mu_s = A / float(w @ cu), B / float(w @ cs)
    # the influence of each cell on log(A) - log(B), the means' own estimation included
    d = (u - cu * mu_u) / A - (s - cs * mu_s) / B
    se = math.sqrt(float(w @ (d * d)) * n / (n - 1.0))
    z = float(ndtri(0.5 + ci / 2.0))
    k = mu_u / mu_s
    return k, k * math.exp(-z * se), k * math.exp(z * se), se


def marginal_fits(out: pd.DataFrame, jh: JointHistograms, genes, settings: FitSettings,
                  unspliced_factor: float = 1.0) -> None:
    """Fill the rows ``genes`` (positions) of a two-species table, genes too large
    for the exact two-species law, from their unspliced counts alone (in place).

    The unspliced marginal of the model is the one-species stationary law with
    rates in units of k_splice (docs/maths.md, "Genes too large for the lattice"),
    so the one-species engine (:mod:`telegraph.fitting`) fits k_on, k_off, k_syn,
    burst frequency and size, their intervals, the regime and a goodness of fit
    of that marginal; k_deg comes from :func:`ratio_of_means`. ``fit_method``
    reads "unspliced_marginal"; ``loglik`` and ``loglik_telegraph`` stay NaN (the
    joint law was not evaluated). A gene without unspliced molecules stays
    ``too_large``.
    """
    genes = np.asarray(genes, np.int64)
    hm = _unspliced_histograms(jh, genes, unspliced_factor)
    one = results_table(fit_raw(hm, settings), hm, settings)
    same = ["k_on", "k_off", "k_syn", "burst_frequency", "burst_size", "fraction_on"]
    same += [f"{t}_ci_{side}" for t in ("burst_frequency", "burst_size", "k_off", "k_syn",
                                         "k_on") for side in ("low", "high")]
    same += ["converged", "n_iter", "gof_stat", "gof_df", "gof_pval", "gof_flag"]
    for j, g in enumerate(genes):
        r = one.iloc[j]
        reg = str(r["regime"])
        if reg not in ("telegraph", "bursty", "bimodal", "poisson"):
            continue
        k, lo_k, hi_k, _ = ratio_of_means(*_gene_bins(jh, int(g), unspliced_factor),
                                          ci=settings.ci)
        if not np.isfinite(k):
            continue
        values = {c: r[c] for c in same}
        values.update(regime=reg, k_deg=k, k_deg_ci_low=lo_k, k_deg_ci_high=hi_k,
                      k_deg_flag="identified", k_splice=1.0,
                      mean_expression_unspliced=r["mean_expression"],
                      mean_expression=r["mean_expression"] / k,
                      identified=JOINT_IDENTIFIED[reg], fit_method="unspliced_marginal")
        for c, v in values.items():
            out.iloc[g, out.columns.get_loc(c)] = v


def fit_layers(spliced, unspliced, *, capture: Capture, settings: FitSettings,
               k_deg: KDeg | None = None, genes=None, round_counts: bool | str = False,
               capture_rtol: float = config.CAPTURE_RTOL, unspliced_factor: float = 1.0,
               model: str = "telegraph", n_jobs: int | None = None,
               progress: bool | None = config.PROGRESS, client=None) -> pd.DataFrame:
    """Fit the telegraph model with splicing to every gene of two count layers.

    What :func:`telegraph.fit` runs when given ``unspliced=`` (with the
    capture and settings it resolved, :mod:`telegraph.inputs`); the table is
    at the scale of ``capture.efficiency`` (the caller puts it on the user's
    scale). The two layers are compressed in one pass to per-gene histograms of
    (unspliced, spliced) pairs by capture group.

    Parameters
    ----------
    spliced, unspliced : array_like or scipy.sparse matrix, (n_cells, n_genes)
        Spliced and unspliced UMI counts of the same cells and genes.
    capture : telegraph.inputs.Capture
    settings : telegraph.inputs.FitSettings
    k_deg : telegraph.inputs.KDeg, optional
        Must not be given: the two-species fit estimates k_deg.
    unspliced_factor : float
        Capture efficiency of unspliced molecules relative to spliced ones (each
        cell's unspliced capture is ``capture * unspliced_factor``, at most 1).
    model : {"telegraph", "bursty"}
        The full telegraph model (default) or its bursty limit (k_off ->
        infinity at fixed burst size: the boundary model Monod fits), for
        comparison.
    genes, round_counts, capture_rtol, n_jobs, progress, client
        As in :func:`telegraph.fit`.

    Returns
    -------
    pandas.DataFrame
        One row per gene: ``k_on, k_off, k_syn, k_deg`` (in units of
        ``k_splice``, which is 1), ``burst_frequency`` (= k_on),
        ``burst_size`` (k_syn / k_off, unspliced molecules per burst),
        ``<name>_ci_low/_ci_high`` for burst_frequency, burst_size, k_off,
        k_syn, k_deg and k_on (profile or Wald; 0 or inf on a side the data
        do not bound), ``fraction_on``, ``mean_expression`` (spliced molecules
        per cell at capture 1), ``mean_expression_unspliced``, ``loglik``,
        ``n_cells``, ``n_missing``, ``mean``/``mean_unspliced`` (observed),
        ``regime`` (telegraph; bursty: the bursty limit is within the
        confidence set, k_off and k_syn are not identified; bimodal: the
        slow-switching limit (k_on, k_off -> 0 at a fixed fraction on: cells
        either off or on for many lifetimes, both modes visible) is within the
        confidence set, only k_syn, fraction_on, k_deg and the means are
        identified; poisson: constitutive, only the means and k_deg;
        too_few_cells; all_zero; too_large: with model "bursty" only, counts of
        thousands, whose law needs more than ``telegraph.config.JOINT_MAX_POINTS``
        lattice points, not fitted), ``fit_method`` (joint; unspliced_marginal: such a
        gene of the full model, fitted on its unspliced counts alone with k_deg from
        the ratio of the means, :func:`marginal_fits`, named by a TooLargeWarning;
        not_fitted), ``identified`` (the estimates the regime
        fills, k_deg among them only when ``k_deg_flag`` is "identified"),
        ``k_deg_flag`` (whether the data bound k_deg / k_splice: identified;
        fast_degradation: no upper bound, too few spliced molecules;
        slow_degradation: no lower bound, too few unspliced molecules;
        not_identified), ``converged``, ``gof_stat``,
        ``gof_df``, ``gof_pval``, ``gof_flag`` (Pearson over (u, s) classes
        against the telegraph law, calibrated for 4 estimated parameters),
        ``loglik_telegraph`` (or ``loglik_bursty``), ``loglik_poisson``,
        ``n_iter``.
    """
    shape = tuple(spliced.shape)
    if tuple(unspliced.shape) != shape:
        raise ValueError(f"unspliced counts have shape {tuple(unspliced.shape)} but spliced "
                         f"counts {shape}; give both layers of the same cells and genes")
    if k_deg is not None and k_deg.given:
        raise ValueError("k_deg cannot be given to a two-species fit: it estimates k_deg "
                         "(in units of the splicing rate); leave k_deg=None")
    if not (np.isfinite(unspliced_factor) and unspliced_factor > 0):
        raise ValueError(f"unspliced_factor must be a positive number; got {unspliced_factor}")
    top = 1.0 if capture.efficiency is None else float(np.max(capture.efficiency))
    if unspliced_factor * top > 1:
        raise ValueError("capture * unspliced_factor exceeds 1 for some cells; give a "
                         "smaller unspliced_factor")
    jh = joint_count_histograms(unspliced, spliced, capture=capture.efficiency,
                                capture_rtol=capture_rtol, round_counts=round_counts,
                                genes=genes)
    return fit_joint_histograms(jh, settings=settings, model=model,
                                unspliced_factor=unspliced_factor, n_jobs=n_jobs,
                                progress=progress, client=client)


# ---------------------------------------------------------------------------
# two groups with one quantity shared (differential bursting)
# ---------------------------------------------------------------------------

#: quantities tested between two groups of a two-species fit
DIFF_TESTS = ("burst_frequency", "burst_size", "k_deg")


def gene_objective(jh: JointHistograms, g: int, unspliced_factor: float = 1.0) -> _Gene:
    """The log-likelihood of gene ``g`` of ``jh`` in log-rates (a, b, lam, gam),
    with its exact gradient and observed information (``f(y) -> (ll, g, I)``)."""
    return _Gene(*_gene_bins(jh, g, unspliced_factor))


def shared_fit(f1, f2, y1, y2, name: str):
    """Maximum of the two groups' summed log-likelihood with ``name`` (one of
    :data:`DIFF_TESTS`) equal in both, from their separate maxima ``y1``,
    ``y2`` (log-rates in units of k_splice). Returns (loglik, converged)."""
    A, k = _target_basis("telegraph", name)
    Ainv = np.linalg.inv(A)
    lo, hi = _bounds("telegraph")
    others = [i for i in range(4) if i != k]
    Ja = np.zeros((4, 7))
    Ja[:, :4] = np.eye(4)
    Jb = np.zeros((4, 7))
    Jb[k, k] = 1.0
    for j, i in enumerate(others):
        Jb[i, 4 + j] = 1.0

    def f(w):
        ya, yb = A @ (Ja @ w), A @ (Jb @ w)
        if (np.any(ya < lo - 1e-9) or np.any(ya > hi + 1e-9) or np.any(yb < lo - 1e-9)
                or np.any(yb > hi + 1e-9)):
            return -np.inf, None, None
        la, ga, Ia = f1(ya)
        if not np.isfinite(la):
            return -np.inf, None, None
        lb, gb, Ib = f2(yb)
        if not np.isfinite(lb):
            return -np.inf, None, None
        G = Ja.T @ (A.T @ ga) + Jb.T @ (A.T @ gb)
        H = Ja.T @ (A.T @ Ia @ A) @ Ja + Jb.T @ (A.T @ Ib @ A) @ Jb
        return la + lb, G, H

    z1, z2 = Ainv @ y1, Ainv @ y2
    w0 = np.concatenate([z1, z2[others]])
    best = (-np.inf, False)
    # from the first group's value, the second's and their mean of the shared quantity
    for zk in (0.5 * (z1[k] + z2[k]), z1[k], z2[k]):
        w = w0.copy()
        w[k] = zk
        _, ll, _, _, _, conv = _maximise(f, w, np.full(7, -1e3), np.full(7, 1e3))
        if ll > best[0]:
            best = (ll, conv)
    return best
