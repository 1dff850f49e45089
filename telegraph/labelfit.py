"""Per-gene fits of the telegraph model to metabolic-labelling data: new and old RNA.

docs/maths.md, "Metabolic labelling: new and old RNA" and "Fitting labelled
data". A labelling pulse of known length (hours) is a clock: the counts of new
and old molecules identify k_on, k_off, k_syn and k_deg in absolute time
(per hour). Each gene's cells are compressed to a histogram of (new, old)
pairs by (pulse length, detection, capture) group
(:func:`telegraph.histogram.labelled_count_histograms`); the exact
log-likelihood, its exact score and observed information come from
:func:`telegraph.labelled.labelled_histogram_loglik` (no numerical
differentiation).

Per gene, with the machinery of :mod:`telegraph.likelihood_fit` (shared with
the two-species fit, :mod:`telegraph.jointfit`): Newton's method with the
observed information on the log-rates from the best of a few moment-based
starts inside :data:`telegraph.config.LABEL_FIT_BOUNDS`; profile-likelihood
intervals for burst frequency, burst size and k_deg (and k_off, k_syn with
``profile="all"``; Wald intervals otherwise); the regime (bursty limit,
constitutive/Poisson); ``k_deg_flag`` (whether the data bound k_deg on both
sides) and ``pulse`` (whether the pulses were short or long against the mRNA
lifetime); and a Pearson goodness of fit over (pulse group, new, old) classes
calibrated for the estimated parameters
(:func:`telegraph.goodness.chernoff_lehmann`).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, gammaln, logit, ndtri

from . import blocks, config
from .goodness import gof_columns
from .histogram import LabelledHistograms, labelled_count_histograms
from .inputs import Capture, FitSettings, KDeg, Labelling
from .jointfit import _target_basis
from .labelled import labelled_histogram_loglik, labelled_logpmf, labelled_score
from .likelihood_fit import (_maximise, _profile_side, _wald_se, genes_on_threads, layer_means,
                             n_threads)

__all__ = ["fit_layers", "fit_labelling", "refuse_k_deg", "fit_labelled_histograms", "fit_gene",
           "labelled_results_table",
           "gene_objective", "estimate_detection", "DetectionEstimate", "DetectionWarning",
           "LABEL_REGIMES", "K_DEG_FLAGS", "PULSE_FLAGS", "LABEL_TARGETS", "DETECTION_FLAGS"]

log = logging.getLogger("telegraph")

#: regimes of a labelled fit (the ``regime`` column)
LABEL_REGIMES = ("telegraph", "bursty", "poisson", "too_few_cells", "all_zero")
#: the estimates each regime fills
LABEL_IDENTIFIED = {
    "telegraph": "k_on,k_off,k_syn,k_deg,half_life,burst_frequency,burst_size,fraction_on,"
                 "mean_expression",
    "bursty": "k_on,k_deg,half_life,burst_frequency,burst_size,mean_expression",
    "poisson": "k_deg,half_life,mean_expression",
    "too_few_cells": "",
    "all_zero": "",
}
#: ``k_deg_flag``: whether the data bound k_deg. "fast_degradation": no upper bound
#: (pulses long against the lifetime: too few old molecules left); "slow_degradation":
#: no lower bound (pulses short: too few new molecules); "not_identified": neither
K_DEG_FLAGS = ("identified", "fast_degradation", "slow_degradation", "not_identified",
               "not_fitted")
#: ``pulse``: the pulses against the fitted lifetime 1/k_deg: "short" (all below
#: ``config.LABEL_SHORT_PULSE`` lifetimes), "long" (all beyond
#: ``config.LABEL_LONG_PULSE``), "informative" otherwise
PULSE_FLAGS = ("informative", "short", "long", "not_fitted")
#: quantities with intervals
LABEL_TARGETS = ("burst_frequency", "burst_size", "k_off", "k_syn", "k_deg")
_NAMES = ("k_on", "k_off", "k_syn", "k_deg")


def _bounds():
    B = config.LABEL_FIT_BOUNDS
    return (np.log([B[n][0] for n in _NAMES]), np.log([B[n][1] for n in _NAMES]))


class _Gene:
    """One gene's (new, old) bins and its log-likelihood in y = log(k_on,
    k_off, k_syn, k_deg) (rates per hour): ``f(y) -> (loglik, gradient,
    information)``, loglik -inf where the law cannot be evaluated."""

    def __init__(self, new, old, w, grp, t_label, capture, detection):
        self.new = np.ascontiguousarray(new, dtype=np.int64)
        self.old = np.ascontiguousarray(old, dtype=np.int64)
        self.w = np.ascontiguousarray(w, dtype=np.float64)
        # only the groups this gene's bins use
        used, inv = np.unique(np.asarray(grp, np.int64), return_inverse=True)
        self.grp = np.ascontiguousarray(inv.ravel(), dtype=np.int64)
        self.t = np.ascontiguousarray(np.asarray(t_label, float)[used])
        self.c = np.ascontiguousarray(np.asarray(capture, float)[used])
        self.pi = np.ascontiguousarray(np.asarray(detection, float)[used])
        self.n_eval = 0
        self.n_max = int(self.new.max()) if self.new.size else 0
        o_max = int(self.old.max()) if self.old.size else 0
        self.max_work = max(config.LABEL_FIT_MIN_WORK, config.LABEL_FIT_WORK_FACTOR
                            * (self.n_max + 2.0) * (o_max + 2.0))
        self.c_max = float(self.c.max()) if self.c.size else 1.0
        self.t_max = float(self.t.max()) if self.t.size else 1.0

    def work(self, theta) -> float:
        """Steps x table entries of the uniformization at ``theta`` (per hour)."""
        k_on, k_off, k_syn, k_deg = theta
        x = self.c_max * k_syn
        steps = (k_on + k_off + x) * self.t_max
        table = self.n_max + x * -math.expm1(-k_deg * self.t_max) / k_deg
        return steps * table

    def __call__(self, y, want=2):
        theta = np.exp(np.asarray(y, float))
        if self.work(theta) > self.max_work:
            return -np.inf, None, None
        self.n_eval += 1
        try:
            with np.errstate(all="ignore"):
                res = labelled_histogram_loglik(self.new, self.old, self.w, *theta,
                                                t_label=self.t, capture=self.c,
                                                detection=self.pi, groups=self.grp,
                                                info=want >= 2)
        except (ValueError, FloatingPointError, ZeroDivisionError):
            return -np.inf, None, None
        ll = float(res[0])
        if not np.isfinite(ll) or not np.all(np.isfinite(res[1])):
            return -np.inf, None, None
        g = res[1] * theta
        if want < 2:
            return ll, g, None
        info = np.outer(theta, theta) * res[2] - np.diag(g)
        if not np.all(np.isfinite(info)):
            return -np.inf, None, None
        return ll, g, info


def _poisson_fit(new, old, w, grp, t, c, pi):
    """Maximum of the constitutive law (new and old independent Poisson):
    returns (loglik, mean at capture 1, k_deg per hour)."""
    # here, not at the top: scipy.optimize costs ~0.1 s of the start-up of every command
    from scipy.optimize import minimize_scalar

    cc, tt, pp = c[grp], t[grp], pi[grp]
    m = float(np.sum(w * (new + old)) / np.sum(w * cc))
    const = float(np.sum(w * (gammaln(new + 1.0) + gammaln(old + 1.0))))

    def nll(lk):
        e = np.exp(-np.exp(lk) * tt)
        mu_n = cc * m * pp * (1.0 - e)
        mu_o = cc * m * (e + (1.0 - pp) * (1.0 - e))
        with np.errstate(divide="ignore", invalid="ignore"):
            val = (np.where(new > 0, new * np.log(np.maximum(mu_n, 1e-300)), 0.0)
                   + np.where(old > 0, old * np.log(np.maximum(mu_o, 1e-300)), 0.0)
                   - mu_n - mu_o)
        return -float(np.sum(w * val))

    lo, hi = _bounds()
    res = minimize_scalar(nll, bounds=(lo[3], hi[3]), method="bounded",
                          options={"xatol": 1e-6})
    return -float(res.fun) - const, m, float(math.exp(res.x))


def _starts(new, old, w, grp, t, c, pi, k_deg0, m0):
    """Moment-based starts: the Poisson fit gives k_deg and the mean; for a few
    fractions on, the Fano factor of new + old (the stationary one-species law)
    gives k_on + k_off in units of k_deg."""
    n = w.sum()
    tot = new + old
    mu = float(np.sum(w * tot) / n)
    fano = max(float(np.sum(w * (tot - mu) ** 2) / n) / max(mu, 1e-9) - 1.0, 1e-3)
    out = []
    for f in (0.05, 0.3, 0.8):
        S = max(mu * (1 - f) / (f * fano) - 1.0, 1e-2)
        out.append(np.log([f * S * k_deg0, (1 - f) * S * k_deg0, max(m0, 1e-3) / f * k_deg0,
                           k_deg0]))
    return out


def _gof(theta, info, new, old, w, grp, t, c, pi, min_expected):
    """Pearson statistic over (pulse, new, old) classes: every (pulse, detection)
    group's pairs up to beyond the largest observed counts; classes expecting
    fewer than ``min_expected`` cells pooled into one. Capture groups of a pulse
    are banded (a factor 1.15, each band at its cell-weighted mean). Returns
    (X2, K, class information in log-rates)."""
    k_on, k_off, k_syn, k_deg = theta
    n_tot = float(w.sum())
    Ek, Ok, dEk = [], [], []
    E_rest, O_rest, dE_rest = 0.0, 0.0, np.zeros(4)
    pulses = np.unique(np.stack([t, pi], axis=1), axis=0)
    for tp, pp in pulses:
        gsel = np.flatnonzero((t == tp) & (pi == pp))
        sel = np.isin(grp, gsel)
        if not sel.any():
            continue
        nb, ob, wb, cb = new[sel], old[sel], w[sel], c[grp[sel]]
        n_max = int(nb.max()) + 1 + int(3 * math.sqrt(nb.max() + 1))
        o_max = int(ob.max()) + 1 + int(3 * math.sqrt(ob.max() + 1))
        nn, oo = np.meshgrid(np.arange(n_max + 1), np.arange(o_max + 1), indexing="ij")
        nn, oo = nn.ravel(), oo.ravel()
        E = np.zeros(nn.size)
        dE = np.zeros((nn.size, 4))
        c_top = float(cb.max())
        band = np.floor(np.log(c_top / cb) / math.log(1.15)).astype(np.int64)
        for bnd in np.unique(band):
            bs = band == bnd
            cm = float(np.sum(wb[bs] * cb[bs]) / wb[bs].sum())
            with np.errstate(all="ignore"):
                lp = labelled_logpmf(nn, oo, k_on, k_off, k_syn, k_deg, t_label=tp,
                                     detection=pp, capture=cm)
                sc = labelled_score(nn, oo, k_on, k_off, k_syn, k_deg, t_label=tp,
                                    detection=pp, capture=cm) * theta
            P = np.exp(np.nan_to_num(lp, nan=-np.inf))
            E += float(wb[bs].sum()) * P
            dE += (float(wb[bs].sum()) * P)[:, None] * np.nan_to_num(sc)
        O = np.zeros(nn.size)
        np.add.at(O, nb * (o_max + 1) + ob, wb)
        big = E >= min_expected
        Ek += list(E[big])
        Ok += list(O[big])
        dEk += list(dE[big])
        n_grp = float(wb.sum())
        E_rest += n_grp - float(E[big].sum())
        O_rest += n_grp - float(O[big].sum())
        dE_rest -= np.sum(dE[big], axis=0)
    if not Ek:
        return np.nan, np.nan, np.full((4, 4), np.nan)
    if E_rest >= min_expected or len(Ek) == 1:
        if E_rest > 1e-9 * n_tot:
            Ek.append(E_rest)
            Ok.append(O_rest)
            dEk.append(dE_rest)
    else:
        j = int(np.argmin(Ek))
        Ek[j] += E_rest
        Ok[j] += O_rest
        dEk[j] = dEk[j] + dE_rest
    Ek, Ok, dEk = np.array(Ek), np.array(Ok), np.array(dEk)
    x2 = float(np.sum((Ok - Ek) ** 2 / Ek))
    Ig = np.einsum("ki,kj->ij", dEk / Ek[:, None], dEk)
    return x2, float(len(Ek)), Ig


def fit_gene(new, old, w, grp, t_label, capture, detection, settings: FitSettings) -> dict:
    """Fit one gene's (new, old) histogram.

    Parameters
    ----------
    new, old : int arrays (m,)
        Bins' new and old counts.
    w : float array (m,)
        Cells per bin.
    grp : int array (m,)
        Cell group of each bin, an index into the next three arrays.
    t_label, capture, detection : float arrays (n_groups,)
        Pulse length (hours), capture efficiency and detection probability of
        each group.
    settings : FitSettings

    Returns
    -------
    dict of estimates (log-rates per hour ``y``, ``ci`` on the log scale, ...)
    for :func:`labelled_results_table`.
    """
    new = np.asarray(new, np.int64)
    old = np.asarray(old, np.int64)
    w = np.asarray(w, float)
    grp = np.asarray(grp, np.int64)
    t_label = np.asarray(t_label, float)
    capture = np.asarray(capture, float)
    detection = np.asarray(detection, float)
    row = {"n_cells_fit": float(w.sum())}
    if w.sum() < settings.min_cells:
        row["regime"] = "too_few_cells"
        return row
    if not ((new > 0) | (old > 0)).any():
        row["regime"] = "all_zero"
        return row
    lo, hi = _bounds()
    gene = _Gene(new, old, w, grp, t_label, capture, detection)
    t, c, pi, g_loc = gene.t, gene.c, gene.pi, gene.grp
    ll_p, m_p, kdeg_p = _poisson_fit(new, old, w, g_loc, t, c, pi)
    row.update(loglik_poisson=ll_p, poisson_mean=m_p, poisson_k_deg=kdeg_p)
    starts = [np.clip(y, lo, hi) for y in _starts(new, old, w, g_loc, t, c, pi, kdeg_p, m_p)]
    lls = [gene(y, want=1)[0] for y in starts]
    y0 = starts[int(np.argmax(lls))]
    y, ll, g, info, it, conv = _maximise(gene, y0, lo, hi, max_iter=settings.max_iter)
    row.update(y=y, loglik=ll, n_iter=it, converged=bool(conv and np.isfinite(ll)))
    if not np.isfinite(ll):
        row["regime"] = "telegraph"
        row["converged"] = False
        return row
    z = float(ndtri(0.5 + settings.ci / 2.0))
    drop = z * z / 2.0
    # the bursty limit: the likelihood no lower (within the drop) at a k_off far
    # above every other rate of the problem, the others re-maximised
    k_on, _, _, k_deg = np.exp(y)
    lb = min(math.log(config.LABEL_BURSTY_TEST * (k_on + k_deg + 1.0 / float(t.min()))), hi[1])
    if y[1] >= lb:
        bursty = True
    else:
        yb = y.copy()
        yb[1] = lb
        yb[2] = min(y[2] + (lb - y[1]), hi[2])
        # the limit is costlier to evaluate (k_off t and k_syn t large): a larger budget
        budget, gene.max_work = gene.max_work, gene.max_work * config.LABEL_BURSTY_WORK
        try:
            _, llb, *_ = _maximise(gene, yb, lo, hi, free=np.array([True, False, True, True]),
                                   max_iter=25, tol=1e-4)
        finally:
            gene.max_work = budget
        bursty = ll - llb < drop
    ci = {}
    for name in LABEL_TARGETS:
        A, k = _target_basis("telegraph", name)
        zk = float((np.linalg.inv(A) @ y)[k])
        se = _wald_se(info, A, k)
        if settings.interval == "profile" and (name in settings.profile or name == "k_deg"):
            lo_k = _profile_side(gene, y, ll, lo, hi, A, k, -1, drop, se, info)
            hi_k = (np.inf if bursty and name in ("k_off", "k_syn") else
                    _profile_side(gene, y, ll, lo, hi, A, k, +1, drop, se, info))
        else:
            lo_k, hi_k = zk - z * se, zk + z * se
            if bursty and name in ("k_off", "k_syn"):
                hi_k = np.inf
        ci[name] = (lo_k, hi_k)
    row["ci"] = ci
    row["regime"] = "poisson" if ll - ll_p < drop else "bursty" if bursty else "telegraph"
    if settings.gof_min_expected > 0:
        try:
            x2, K, Ig = _gof(np.exp(y), info, new, old, w, g_loc, t, c, pi,
                             settings.gof_min_expected)
        except (ValueError, FloatingPointError, MemoryError):
            x2, K, Ig = np.nan, np.nan, np.full((4, 4), np.nan)
        row.update(gof_stat=x2, gof_cells=K, gof_Ig=Ig, gof_I=info)
    row["t_range"] = (float(t.min()), float(t.max()))
    row["n_eval"] = gene.n_eval
    row["info"] = info
    return row


# ---------------------------------------------------------------------------
# many genes
# ---------------------------------------------------------------------------

def _gene_args(lh: LabelledHistograms, g: int):
    new, old, grp, wt = lh.gene(g)
    return new, old, np.asarray(wt, float), grp, lh.t_label, lh.hist.capture, lh.detection


def gene_objective(lh: LabelledHistograms, g: int) -> _Gene:
    """The log-likelihood of gene ``g`` of ``lh`` in log-rates (k_on, k_off,
    k_syn, k_deg per hour), with its exact gradient and observed information
    (``f(y) -> (ll, g, I)``)."""
    new, old, w, grp, t, c, pi = _gene_args(lh, g)
    return _Gene(new, old, w, grp, t, c, pi)


def fit_block(lh: LabelledHistograms, settings: FitSettings, n_jobs: int | None = 1,
              bar=None) -> list:
    """Fit every gene of ``lh`` on ``n_jobs`` workers (:func:`telegraph.blocks.map_genes`:
    processes for many genes); a list of rows."""
    return blocks.map_genes(fit_gene, (_gene_args(lh, g) for g in range(lh.n_genes)), settings,
                            n_jobs=n_jobs, bar=bar)


def fit_labelled_histograms(lh: LabelledHistograms, *, settings: FitSettings | None = None,
                            n_jobs: int | None = None,
                            progress: bool | None = config.PROGRESS,
                            client=None) -> pd.DataFrame:
    """Fit every gene of a :class:`telegraph.histogram.LabelledHistograms`.

    The histograms are sufficient statistics; with ``client`` the genes are cut
    into blocks of about equal numbers of bins, fitted on the workers.
    Parameters and result as :func:`fit_layers`.
    """
    settings = FitSettings() if settings is None else settings
    t0 = time.perf_counter()
    if client is not None:
        blocks.check_client(client)
    if client is not None and lh.n_genes:
        bounds = blocks.balanced_bounds(
            lh.hist.indptr, config.BLOCKS_PER_THREAD * blocks.total_threads(client))
        parts = [lh.subset(slice(int(a), int(b))) for a, b in zip(bounds[:-1], bounds[1:])]
        res = blocks.map_blocks(fit_block, parts, settings, client=client,
                                sizes=np.diff(bounds), progress=progress,
                                desc="telegraph fit (labelled)")
        rows = [r for part in res for r in part]
    else:
        bar = blocks.progress_bar(lh.n_genes, "telegraph fit (labelled)", progress, unit="gene")
        try:
            rows = fit_block(lh, settings, n_jobs=n_threads(n_jobs), bar=bar)
        finally:
            if bar is not None:
                bar.close()
    log.info("fitted %d genes (labelled) in %.1f s", lh.n_genes, time.perf_counter() - t0)
    table = labelled_results_table(rows, lh)
    table.attrs["settings"] = {**settings.record(), "model": "telegraph", "species": "labelled",
                               "time_unit": "hour"}
    table.attrs["k_deg"] = KDeg(None).record(arrays=False)
    return table


def labelled_results_table(rows, lh: LabelledHistograms) -> pd.DataFrame:
    """The public table of a labelled fit from :func:`fit_gene` rows."""
    n = len(rows)
    genes = lh.hist.genes
    names = [f"gene{i}" for i in range(n)] if genes is None else [str(gn) for gn in genes]
    nan = np.full(n, np.nan)
    cols = {k: nan.copy() for k in ("k_on", "k_off", "k_syn", "k_deg", "burst_frequency",
                                    "burst_size", "half_life", "fraction_on",
                                    "mean_expression", "loglik")}
    ci = {f"{t}_ci_{side}": nan.copy() for t in LABEL_TARGETS for side in ("low", "high")}
    regime = np.array([r.get("regime", "too_few_cells") for r in rows], dtype=object)
    kflag = np.full(n, "not_fitted", dtype=object)
    pulse = np.full(n, "not_fitted", dtype=object)
    converged = np.zeros(n, bool)
    n_iter = np.zeros(n, np.int64)
    ll_tel, ll_p, x2, K = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    I_full = np.full((n, 4, 4), np.nan)
    I_g = np.full((n, 4, 4), np.nan)
    npar = np.zeros(n, int)
    kdeg_lo = config.LABEL_FIT_BOUNDS["k_deg"][0]
    for i, r in enumerate(rows):
        if "y" not in r:
            continue
        a, b, lam, gam = np.exp(r["y"])
        reg = regime[i]
        converged[i] = r.get("converged", False)
        n_iter[i] = r.get("n_iter", 0)
        ll_tel[i] = r.get("loglik", np.nan)
        ll_p[i] = r.get("loglik_poisson", np.nan)
        if not np.isfinite(r.get("loglik", np.nan)):
            continue
        if reg == "poisson":
            gam = r["poisson_k_deg"]
            cols["mean_expression"][i] = r["poisson_mean"]
            cols["loglik"][i] = r["loglik_poisson"]
        else:
            cols["k_on"][i] = cols["burst_frequency"][i] = a
            cols["burst_size"][i] = lam / b
            cols["mean_expression"][i] = lam * a / ((a + b) * gam)
            cols["loglik"][i] = r["loglik"]
            if reg == "telegraph":
                cols["k_off"][i] = b
                cols["k_syn"][i] = lam
                cols["fraction_on"][i] = a / (a + b)
        cols["k_deg"][i] = gam
        cols["half_life"][i] = math.log(2.0) / gam
        for tname, (lo_t, hi_t) in r["ci"].items():
            with np.errstate(over="ignore"):
                ci[f"{tname}_ci_low"][i] = np.exp(lo_t)
                ci[f"{tname}_ci_high"][i] = np.exp(hi_t)
        lo_k, hi_k = ci["k_deg_ci_low"][i], ci["k_deg_ci_high"][i]
        lower = lo_k > 1.0001 * kdeg_lo
        upper = np.isfinite(hi_k) and hi_k < 0.9999 * config.LABEL_FIT_BOUNDS["k_deg"][1]
        if not lower:
            ci["k_deg_ci_low"][i] = 0.0
        if not upper:
            ci["k_deg_ci_high"][i] = np.inf
        kflag[i] = ("identified" if lower and upper else "fast_degradation" if lower
                    else "slow_degradation" if upper else "not_identified")
        t_lo, t_hi = r["t_range"]
        pulse[i] = ("short" if t_hi * gam < config.LABEL_SHORT_PULSE else
                    "long" if t_lo * gam > config.LABEL_LONG_PULSE else "informative")
        if "gof_stat" in r:
            x2[i], K[i] = r["gof_stat"], r["gof_cells"]
            I_full[i], I_g[i] = r["gof_I"], r["gof_Ig"]
            npar[i] = 4
    out = pd.DataFrame(index=pd.Index(names))
    out["gene"] = names
    for k in ("k_on", "k_off", "k_syn", "k_deg", "burst_frequency", "burst_size",
              "half_life"):
        out[k] = cols[k]
    for tname in LABEL_TARGETS:
        out[f"{tname}_ci_low"] = ci[f"{tname}_ci_low"]
        out[f"{tname}_ci_high"] = ci[f"{tname}_ci_high"]
    out["k_on_ci_low"] = out["burst_frequency_ci_low"]
    out["k_on_ci_high"] = out["burst_frequency_ci_high"]
    with np.errstate(divide="ignore"):
        out["half_life_ci_low"] = math.log(2.0) / out["k_deg_ci_high"]
        out["half_life_ci_high"] = math.log(2.0) / out["k_deg_ci_low"]
    out["fraction_on"] = cols["fraction_on"]
    out["mean_expression"] = cols["mean_expression"]
    out["loglik"] = cols["loglik"]
    out["n_cells"] = np.asarray(lh.hist.n_cells, dtype=np.int64)
    out["n_missing"] = np.asarray(lh.hist.n_missing, dtype=np.int64)
    out["mean_new"], out["mean_old"] = layer_means(lh)
    out["regime"] = pd.Categorical(regime, categories=list(LABEL_REGIMES))
    out["identified"] = [LABEL_IDENTIFIED[r] for r in regime]
    out["k_deg_flag"] = pd.Categorical(kflag, categories=list(K_DEG_FLAGS))
    out["pulse"] = pd.Categorical(pulse, categories=list(PULSE_FLAGS))
    out["converged"] = converged
    gof_columns(out, x2, K, npar, I_full, I_g,
                not_fitted=np.isin(regime, ["too_few_cells", "all_zero"]))
    out["loglik_telegraph"] = ll_tel
    out["loglik_poisson"] = ll_p
    out["n_iter"] = n_iter
    return out


# ---------------------------------------------------------------------------
# the detection probability, estimated across genes
# ---------------------------------------------------------------------------

#: ``flag`` of a :class:`DetectionEstimate`: "identified", or "flat" when the
#: summed profile hardly falls over (0, 1] (interval wider than
#: ``config.DETECTION_FLAT_WIDTH`` or reaching the lower end of
#: ``config.DETECTION_ESTIMATE_RANGE``)
DETECTION_FLAGS = ("identified", "flat")


class DetectionWarning(UserWarning):
    """The data hardly identify the detection probability (``detection="estimate"``)."""


@dataclass(frozen=True)
class DetectionEstimate:
    """One detection probability estimated across genes (:func:`estimate_detection`).

    Attributes
    ----------
    detection : float
        The estimate, the maximum of the summed profile log-likelihood.
    ci_low, ci_high : float
        Its profile-likelihood interval at level ``ci`` (where the summed
        profile has fallen by chi2_1(ci)/2 = 1.92 at 95%); the ends of
        ``config.DETECTION_ESTIMATE_RANGE`` where it does not fall that far.
    se : float
        (ci_high - ci_low) / (2 z), z the normal quantile of the level.
    flag : str
        One of :data:`DETECTION_FLAGS`.
    ci : float
        The level.
    genes : tuple of str
        The genes whose profiles were summed.
    loglik : float
        The summed profile log-likelihood at the estimate.
    profile_detection, profile_loglik : ndarray
        Every value of pi evaluated and the summed profile there (ascending pi).
    seconds : float
        Wall time of the estimate.
    """

    detection: float
    ci_low: float
    ci_high: float
    se: float
    flag: str
    ci: float
    genes: tuple
    loglik: float
    profile_detection: np.ndarray
    profile_loglik: np.ndarray
    seconds: float

    def record(self) -> dict:
        """What to store with the results (h5ad-writable)."""
        return {"detection": float(self.detection), "ci_low": float(self.ci_low),
                "ci_high": float(self.ci_high), "se": float(self.se), "flag": self.flag,
                "ci": float(self.ci), "n_genes": len(self.genes), "genes": list(self.genes),
                "loglik": float(self.loglik),
                "profile_detection": np.asarray(self.profile_detection, float).tolist(),
                "profile_loglik": np.asarray(self.profile_loglik, float).tolist(),
                "seconds": float(self.seconds)}

    def describe(self) -> str:
        """One line for a log or a command's summary."""
        return (f"detection estimated across {len(self.genes)} genes: {self.detection:.3f} "
                f"({self.ci:.0%} CI {self.ci_low:.3f}-{self.ci_high:.3f}"
                f"{', flat: not identified' if self.flag == 'flat' else ''})")


def _estimation_genes(lh: LabelledHistograms, min_cells: int, n_genes: int) -> np.ndarray:
    """Positions of the (at most ``n_genes``) genes with the highest mean new + old
    count among those with at least ``min_cells`` cells (ascending)."""
    mean_new, mean_old = layer_means(lh)
    total = mean_new + mean_old
    ok = (np.asarray(lh.hist.n_cells) >= max(int(min_cells), 1)) & np.isfinite(total) & (total > 0)
    cand = np.flatnonzero(ok)
    order = cand[np.argsort(-total[cand], kind="stable")]
    return np.sort(order[:max(int(n_genes), 0)])


class _SummedProfile:
    """The summed profile log-likelihood of a set of genes as a function of one
    detection probability pi shared by all cells: each gene's four rates
    maximised at each pi (point fits, no intervals), warm-started from its
    solutions at the nearest pi already evaluated on either side (both when
    they differ, keeping the better). Values are cached by pi."""

    def __init__(self, lh: LabelledHistograms, genes, settings: FitSettings, n_jobs: int,
                 bar=None):
        self.args = [_gene_args(lh, int(g)) for g in genes]
        self.objs = [gene_objective(lh, int(g)) for g in genes]
        self.max_iter = settings.max_iter
        self.n_jobs = max(1, int(n_jobs))
        self.bar = bar
        self.lo, self.hi = _bounds()
        self.sol = {}            # pi -> (Y (G, 4), loglik (G,))

    def _gene(self, i, pi, warm):
        f = self.objs[i]
        f.pi = np.full(f.pi.shape, float(pi))
        lo, hi = self.lo, self.hi
        if not warm:
            new, old, w = self.args[i][:3]
            _, m_p, kdeg_p = _poisson_fit(new, old, w, f.grp, f.t, f.c, f.pi)
            cand = [np.clip(y, lo, hi) for y in _starts(new, old, w, f.grp, f.t, f.c, f.pi,
                                                         kdeg_p, m_p)]
            lls = [f(y, want=1)[0] for y in cand]
            warm = [cand[int(np.argmax(lls))]]
        best_y, best = warm[0], -np.inf
        for y0 in warm:
            y, ll, *_ = _maximise(f, y0, lo, hi, max_iter=self.max_iter)
            if ll > best:
                best_y, best = y, ll
        if not np.isfinite(best):
            # the telegraph fit failed here: the constitutive limit, which it contains
            new, old, w = self.args[i][:3]
            best = _poisson_fit(new, old, w, f.grp, f.t, f.c, f.pi)[0]
        return best_y, best

    def __call__(self, pi: float) -> float:
        pi = float(pi)
        if not 0.0 < pi <= 1.0:
            raise ValueError(f"detection {pi} outside (0, 1]")
        if pi not in self.sol:
            below = max((p for p in self.sol if p < pi), default=None)
            above = min((p for p in self.sol if p > pi), default=None)
            near = sorted((p for p in (below, above) if p is not None),
                          key=lambda p: abs(p - pi))
            Ys = [self.sol[p][0] for p in near]

            def one(i):
                warm = [Ys[0][i]] if Ys else []
                if len(Ys) > 1 and np.max(np.abs(Ys[1][i] - Ys[0][i])) > 0.05:
                    warm.append(Ys[1][i])
                return self._gene(i, pi, warm)

            n = len(self.objs)
            res = genes_on_threads(one, n, min(self.n_jobs, n))
            self.sol[pi] = (np.array([r[0] for r in res]), np.array([r[1] for r in res]))
            if self.bar is not None:
                self.bar.update(1)
        return float(np.sum(self.sol[pi][1]))

    def constitutive(self, pi: float) -> float:
        """The same sum for the constitutive law (new and old independent Poisson
        variables; each gene's mean and k_deg re-maximised): cheap, and with
        several pulse lengths it identifies pi from the mean new fractions
        alone (the telegraph law has the same means) -- the starting value."""
        total = 0.0
        for (new, old, w, *_), f in zip(self.args, self.objs):
            total += _poisson_fit(new, old, w, f.grp, f.t, f.c, np.full(f.pi.shape, pi))[0]
        return total

    def evaluated(self):
        """(pi ascending, summed profile) of every value evaluated."""
        ps = np.array(sorted(self.sol))
        return ps, np.array([float(np.sum(self.sol[p][1])) for p in ps])


def _parabolic_max(F, x0: float, x_lo: float, x_hi: float, xtol: float,
                   h: float = 0.1) -> float:
    """The maximiser of a smooth unimodal F on [x_lo, x_hi] from x0: successive
    parabolic interpolation through the best point and its two neighbours
    (the vertex kept inside them), stepping uphill by doubling while the best
    point is an outer one; stops when the vertex is within ``xtol`` of the
    best point. F is cached by the caller."""
    pts = {}

    def val(x):
        x = float(min(max(x, x_lo), x_hi))
        if x not in pts:
            pts[x] = F(x)
        return pts[x]

    for x in (x0, x0 - h, x0 + h):
        val(x)
    for _ in range(40):
        xs = sorted(pts)
        b = max(xs, key=lambda x: pts[x])
        i = xs.index(b)
        if i == 0 or i == len(xs) - 1:
            if b in (x_lo, x_hi):
                return b
            j = 1 if i == 0 else -2
            val(b + 2.0 * (b - xs[j]))
            continue
        a, c = xs[i - 1], xs[i + 1]
        fa, fb, fc = pts[a], pts[b], pts[c]
        num = (b - a) ** 2 * (fb - fc) - (b - c) ** 2 * (fb - fa)
        den = (b - a) * (fb - fc) - (b - c) * (fb - fa)
        v = b - 0.5 * num / den if den != 0 else b
        if not math.isfinite(v):
            v = b       # a non-finite profile value: tighten around the best point below
        v = min(max(v, a + 0.05 * (b - a)), c - 0.05 * (c - b))
        if abs(v - b) < xtol:
            if max(b - a, c - b) <= 4 * xtol:
                return b
            # the vertex sits on the best point: tighten the wider side
            v = b - 2 * xtol if b - a > c - b else b + 2 * xtol
        if min(abs(v - x) for x in xs) < 0.5 * xtol:
            return b
        val(v)
    return max(pts, key=lambda x: pts[x])


def _interval_end(prof: _SummedProfile, pi_hat: float, L_hat: float, z: float, sign: int,
                  p_lo: float, p_hi: float, xtol: float) -> float:
    """Where the summed profile has fallen by z^2/2 on one side of ``pi_hat``
    (sign -1: below, +1: above); the end of the range where it stays above.
    On logit pi (pi = 1 apart), regula falsi on the signed root
    r = sqrt(2 (L_hat - L)), nearly linear near the maximum (as for the
    genes' profile intervals, :func:`telegraph.likelihood_fit._profile_side`),
    from the values evaluated so far."""
    edge = p_lo if sign < 0 else p_hi
    if pi_hat == edge:
        return edge
    # pi_hat = 1 (perfect detection) lies beyond the logit scale: step down from 0.999
    x_hat = float(logit(min(pi_hat, 1 - 1e-3)))
    x_edge = float(logit(p_lo)) if sign < 0 else (
        math.inf if p_hi == 1.0 else float(logit(p_hi)))
    x_cap = float(logit(1 - 1e-3))      # beyond it the next step is pi = 1 itself

    def root(x):       # signed root minus z: < 0 inside the interval, > 0 outside
        L = prof(1.0 if x == math.inf else float(expit(x)))
        return math.sqrt(2.0 * max(L_hat - L, 0.0)) - z

    ps, _ = prof.evaluated()
    with np.errstate(divide="ignore"):
        xs = logit(ps)
    known = {float(x): root(float(x)) for x, p in zip(xs, ps)
             if (p - pi_hat) * sign > 0}
    for _ in range(30):
        inside = [x for x, r in known.items() if r <= 0] + [x_hat]
        outside = [x for x, r in known.items() if r > 0]
        x_in = max(inside, key=lambda x: sign * x)
        r_in = known.get(x_in, -z)
        if outside:
            x_out = min(outside, key=lambda x: sign * x)
            r_out = known[x_out]
            if abs(r_in) < 0.03 or abs(r_out) < 0.03:
                return float(expit(x_in if abs(r_in) <= abs(r_out) else x_out))
            if x_out == math.inf:           # pi = 1 is outside
                if x_in >= x_cap:           # the end lies in (0.999, 1): close enough
                    return float(expit(x_in))
                x_new = min(x_in + 1.0, x_cap)
            else:
                if abs(x_out - x_in) < xtol:
                    return float(expit(0.5 * (x_in + x_out)))
                x_new = x_in + (x_out - x_in) * (-r_in) / (r_out - r_in)
                # keep away from the ends of the bracket (Illinois-like safeguard)
                w = abs(x_out - x_in)
                x_new = x_in + sign * min(max(sign * (x_new - x_in), 0.1 * w), 0.9 * w)
        else:
            if x_in == x_edge:
                return edge
            # extrapolate the signed root linearly from the maximum (slope from the
            # farthest point inside, or a first step), overshooting a little
            d = sign * (x_in - x_hat)
            step = 1.2 * d * z / (r_in + z) if d > 0 and r_in + z > 0.05 else 0.3
            x_new = x_hat + sign * min(max(step, d + 0.05), d + 2.0)
            if sign < 0:
                x_new = max(x_new, x_edge)
            else:
                lim = min(x_edge, x_cap)
                if x_new > lim:
                    x_new = lim if x_in < lim else x_edge
        if not math.isfinite(x_new) and x_new != x_edge:
            break           # cannot happen on a finite profile; the last point inside
        known[x_new] = root(x_new)
    x_in = max([x for x, r in known.items() if r <= 0] + [x_hat], key=lambda x: sign * x)
    return float(expit(x_in))


def estimate_detection(lh: LabelledHistograms, *, settings: FitSettings | None = None,
                       n_genes: int = config.DETECTION_ESTIMATE_GENES,
                       n_jobs: int | None = None,
                       progress: bool | None = config.PROGRESS) -> DetectionEstimate:
    """Estimate one detection probability shared by every cell and gene.

    docs/maths.md, "Estimating the detection probability". The estimate
    maximises the sum over genes of each gene's profile log-likelihood in pi
    (its four rates, per hour, re-maximised at each pi; point fits only),
    over the ``n_genes`` genes with the highest mean new + old count and at
    least ``settings.min_cells`` cells. It starts from the maximum of the
    same sum for the constitutive law (means only, cheap), then refines by
    successive parabolic interpolation on logit pi inside
    ``config.DETECTION_ESTIMATE_RANGE`` (pi = 1 checked apart), every gene
    warm-started from its fits at the nearest values already evaluated. The
    interval is where the summed profile is within chi2_1(ci)/2 of its
    maximum. A flat profile (no pulse design that identifies pi: one pulse
    length and slowly degrading genes) is flagged and warned about
    (:class:`DetectionWarning`).

    Parameters
    ----------
    lh : telegraph.histogram.LabelledHistograms
        The histograms (their detection values are ignored).
    settings : telegraph.inputs.FitSettings, optional
        ``min_cells``, ``ci`` and ``max_iter`` are used.
    n_genes : int
        Most genes to sum over (``config.DETECTION_ESTIMATE_GENES``).
    n_jobs : int, optional
        Threads over genes (default: all cores). The estimate always runs on
        this machine's threads: there is no Dask version (it is a sequence of
        some 10-20 evaluations of the summed profile over at most ``n_genes``
        genes, each warm-started from the last); a fit given ``client=``
        estimates here, then fits the genes on the cluster (:func:`fit_labelling`).
    progress : bool, optional
        A progress bar over the evaluations of the summed profile.

    Returns
    -------
    DetectionEstimate
    """
    settings = FitSettings() if settings is None else settings
    t0 = time.perf_counter()
    genes = _estimation_genes(lh, settings.min_cells, n_genes)
    if genes.size == 0:
        raise ValueError(f"detection='estimate' needs genes with at least {settings.min_cells} "
                         f"cells and some counts, and there are none; give detection= as a "
                         f"number (e.g. from the protocol's spike-ins)")
    p_lo, p_hi = (float(v) for v in config.DETECTION_ESTIMATE_RANGE)
    if not 0.0 < p_lo < p_hi <= 1.0:
        raise ValueError(f"config.DETECTION_ESTIMATE_RANGE must be (low, high) with 0 < low < "
                         f"high <= 1, got {config.DETECTION_ESTIMATE_RANGE}")
    xtol = float(config.DETECTION_ESTIMATE_XTOL)
    bar = blocks.progress_bar(None, "telegraph detection estimate", progress, unit="pass")
    try:
        prof = _SummedProfile(lh, genes, settings, n_threads(n_jobs), bar=bar)
        x_lo, x_hi = float(logit(p_lo)), float(logit(min(p_hi, 1 - 1e-3)))
        # start: the maximum of the constitutive sum (means only; cheap); scipy.optimize
        # imported here, not at the top (~0.1 s of the start-up of every command)
        from scipy.optimize import minimize_scalar

        x0 = float(minimize_scalar(lambda x: -prof.constitutive(float(expit(x))),
                                   bounds=(x_lo, x_hi), method="bounded",
                                   options={"xatol": xtol}).x)
        _parabolic_max(lambda x: prof(float(expit(x))), x0, x_lo, x_hi, xtol)
        ps, Ls = prof.evaluated()
        if p_hi == 1.0 and ps[int(np.argmax(Ls))] > expit(x_hi - 4 * xtol):
            prof(1.0)     # the maximum at the upper end: pi = 1 itself
            ps, Ls = prof.evaluated()
        k = int(np.argmax(Ls))
        pi_hat, L_hat = float(ps[k]), float(Ls[k])
        z = float(ndtri(0.5 + settings.ci / 2.0))
        low = _interval_end(prof, pi_hat, L_hat, z, -1, p_lo, p_hi, xtol)
        high = _interval_end(prof, pi_hat, L_hat, z, +1, p_lo, p_hi, xtol)
        ps, Ls = prof.evaluated()
    finally:
        if bar is not None:
            bar.close()
    k = int(np.argmax(Ls))
    if Ls[k] > L_hat + 1e-6:
        # a value evaluated for the interval beat the optimiser's (a rugged profile)
        pi_hat, L_hat = float(ps[k]), float(Ls[k])
        low, high = min(low, pi_hat), max(high, pi_hat)
    flat = low <= p_lo or high - low > config.DETECTION_FLAT_WIDTH
    names = lh.hist.genes
    est = DetectionEstimate(
        detection=pi_hat, ci_low=low, ci_high=high, se=(high - low) / (2.0 * z),
        flag="flat" if flat else "identified", ci=float(settings.ci),
        genes=tuple(f"gene{g}" if names is None else str(names[g]) for g in genes),
        loglik=L_hat, profile_detection=ps, profile_loglik=Ls,
        seconds=time.perf_counter() - t0)
    log.info("%s in %.1f s (%d evaluations)", est.describe(), est.seconds, ps.size)
    if flat:
        warnings.warn(f"{est.describe()}: the summed profile log-likelihood is nearly flat, so "
                      f"the data hardly identify the detection probability (with one pulse "
                      f"length it trades off against k_deg; fast-degrading genes or several "
                      f"pulse lengths identify it). Give detection= (e.g. from spike-ins) "
                      f"instead", DetectionWarning, stacklevel=3)
    return est


def fit_layers(old, new, *, labelling: Labelling, capture: Capture, settings: FitSettings,
               k_deg: KDeg | None = None, genes=None, round_counts: bool | str = False,
               capture_rtol: float = config.CAPTURE_RTOL, n_jobs: int | None = None,
               progress: bool | None = config.PROGRESS, client=None) -> pd.DataFrame:
    """Fit the telegraph model to the new and old counts of a labelling experiment.

    What :func:`telegraph.fit` runs when given ``new=`` (with the capture,
    pulse lengths and settings it resolved, :mod:`telegraph.inputs`); the
    table is at the scale of ``capture.efficiency`` (the caller puts it on the
    user's scale). The two layers are compressed in one pass to per-gene
    histograms of (new, old) pairs by (pulse, detection, capture) group.

    Parameters
    ----------
    old, new : array_like or scipy.sparse matrix, (n_cells, n_genes)
        Counts of old (unlabelled) and new (labelled) molecules of the same
        cells and genes.
    labelling : telegraph.inputs.Labelling
        Per-cell pulse length (hours) and detection probability; with
        ``labelling.estimate_detection`` one detection probability is first
        estimated across genes (:func:`estimate_detection`) and every gene
        fitted at it: ``table.attrs["labelling"]["detection_estimate"]``
        holds the estimate, its interval and standard error
        (:meth:`DetectionEstimate.record`). The genes' intervals are then
        conditional on the estimated value (they do not include its
        uncertainty).
    capture : telegraph.inputs.Capture
    settings : telegraph.inputs.FitSettings
    k_deg : telegraph.inputs.KDeg, optional
        Must not be given: the labelled fit estimates k_deg.
    genes, round_counts, capture_rtol, n_jobs, progress, client
        As in :func:`telegraph.fit`.

    Returns
    -------
    pandas.DataFrame
        One row per gene: ``k_on, k_off, k_syn, k_deg`` (per hour; k_syn in
        molecules per hour at capture 1), ``burst_frequency`` (= k_on, bursts
        per hour), ``burst_size`` (k_syn / k_off, molecules per burst),
        ``half_life`` (log 2 / k_deg, hours), ``<name>_ci_low/_ci_high`` for
        burst_frequency, burst_size, k_off, k_syn, k_deg, k_on and half_life
        (profile or Wald; 0 or inf on a side the data do not bound),
        ``fraction_on``, ``mean_expression`` (molecules per cell at capture
        1), ``loglik``, ``n_cells``, ``n_missing``, ``mean_new``/``mean_old``
        (observed), ``regime`` (telegraph; bursty: the bursty limit is within
        the confidence set, k_off and k_syn are not identified; poisson:
        constitutive, only k_deg and the mean; too_few_cells; all_zero),
        ``identified``, ``k_deg_flag`` (identified, fast_degradation: pulses
        too long to bound k_deg above, slow_degradation: too short to bound it
        below, not_identified), ``pulse`` (short, long or informative: the
        pulses against the fitted lifetime 1/k_deg), ``converged``,
        ``gof_stat``, ``gof_df``, ``gof_pval``, ``gof_flag`` (Pearson over
        (pulse, new, old) classes, calibrated for 4 estimated parameters),
        ``loglik_telegraph``, ``loglik_poisson``, ``n_iter``.
    """
    if tuple(new.shape) != tuple(old.shape):
        raise ValueError(f"new counts have shape {tuple(new.shape)} but old counts "
                         f"{tuple(old.shape)}; give both layers of the same cells and genes")
    refuse_k_deg(k_deg)
    if labelling.t_label.shape[0] != old.shape[0]:
        raise ValueError(f"t_label has {labelling.t_label.shape[0]} values for "
                         f"{old.shape[0]} cells")
    lh = labelled_count_histograms(new, old, t_label=labelling.t_label,
                                   detection=labelling.detection, capture=capture.efficiency,
                                   capture_rtol=capture_rtol, round_counts=round_counts,
                                   genes=genes)
    return fit_labelling(lh, labelling=labelling, settings=settings, n_jobs=n_jobs,
                         progress=progress, client=client)


def refuse_k_deg(k_deg: KDeg | None) -> None:
    """Raise a ValueError when a degradation rate was given to a labelled fit
    (the pulse identifies it)."""
    if k_deg is not None and k_deg.given:
        raise ValueError("k_deg cannot be given to a labelled fit: the pulse identifies it "
                         "(per hour); leave k_deg=None")


def fit_labelling(lh: LabelledHistograms, *, labelling: Labelling, settings: FitSettings,
                  n_jobs: int | None = None, progress: bool | None = config.PROGRESS,
                  client=None) -> pd.DataFrame:
    """Fit the histograms of a labelling experiment as its ``labelling`` asks.

    What :func:`fit_layers` runs once the counts are histograms (and what
    :func:`telegraph.fit_file` runs on histograms read from disk in slices):
    with ``labelling.estimate_detection``, one detection probability is first
    estimated across genes (:func:`estimate_detection`, on this machine's
    threads even with a ``client``) and replaces the histograms' detection;
    then every gene is fitted (:func:`fit_labelled_histograms`, on the Dask
    ``client`` when given) and ``table.attrs["labelling"]`` records the
    pulses, the detection and the estimate.

    Parameters
    ----------
    lh : telegraph.histogram.LabelledHistograms
        Counted with the groups of ``labelling`` (:func:`telegraph.histogram.labelled_groups`).
    labelling : telegraph.inputs.Labelling
    settings : telegraph.inputs.FitSettings
    n_jobs, progress, client
        As in :func:`telegraph.fit`.

    Returns
    -------
    pandas.DataFrame
        As :func:`fit_layers` (rates per hour; at the scale of the capture the
        histograms were counted with).
    """
    estimate = None
    if labelling.estimate_detection:
        if client is not None:
            log.info("detection='estimate': the estimate runs on this machine's threads; "
                     "the genes are then fitted on the Dask client")
        estimate = estimate_detection(lh, settings=settings, n_jobs=n_jobs, progress=progress)
        lh = LabelledHistograms(lh.joint, lh.t_label,
                                np.full(lh.detection.shape, estimate.detection))
    table = fit_labelled_histograms(lh, settings=settings, n_jobs=n_jobs, progress=progress,
                                    client=client)
    table.attrs["labelling"] = labelling.record()
    if estimate is not None:
        table.attrs["labelling"]["detection_estimate"] = estimate.record()
    return table
