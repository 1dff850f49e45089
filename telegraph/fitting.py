"""Per-gene maximum-likelihood fits of the stationary telegraph model.

The one-species engine: it takes per-gene count histograms (what
:func:`telegraph.fit` makes of a one-layer matrix, :mod:`telegraph.layerfit`)
and returns one row per gene. Optimisation, limit models, profile intervals
and the goodness-of-fit statistic run in compiled code over all genes at once
(:mod:`telegraph.kernels.fit`, read through its named view
:class:`~telegraph.kernels.fit.FitRows`); this module runs the compiled fit over
blocks of genes -- on local threads or on a Dask cluster
(:mod:`telegraph.blocks`) -- and turns the raw results into a table.
"""

from __future__ import annotations

import functools
import logging
import time

import numpy as np
import pandas as pd
from scipy import special

from . import blocks, config
from .goodness import GOF_FLAGS, chernoff_lehmann
from .histogram import CountHistograms
from .inputs import Capture, FitSettings, KDeg, resolve_k_deg
from .kernels import _ahead
from .kernels import fit as kfit

__all__ = ["fit_histograms", "results_table", "union_distances", "REGIMES", "IDENTIFIED",
           "GOF_FLAGS"]

log = logging.getLogger("telegraph")

REGIMES = {
    kfit.REGIME_TELEGRAPH: "telegraph",
    kfit.REGIME_BURSTY: "bursty",
    kfit.REGIME_BIMODAL: "bimodal",
    kfit.REGIME_POISSON: "poisson",
    kfit.REGIME_NO_DATA: "too_few_cells",
    kfit.REGIME_ALL_ZERO: "all_zero",
}

#: the estimates each regime fills (docs/results.md); every other estimate is NaN
IDENTIFIED = {
    "telegraph": "k_on,k_off,k_syn,burst_frequency,burst_size,fraction_on,mean_expression",
    "bursty": "k_on,burst_frequency,burst_size,mean_expression",
    "bimodal": "k_syn,fraction_on,mean_expression",
    "poisson": "mean_expression",
    "too_few_cells": "",
    "all_zero": "mean_expression",
}

_TARGETS = config.PROFILE_TARGETS


def with_capture(res: pd.DataFrame, capture: Capture) -> pd.DataFrame:
    """A table fitted against ``capture.efficiency`` on the user's scale, with
    the capture recorded in ``res.attrs["capture"]`` (in place)."""
    capture.to_user_scale(res)
    res.attrs["capture"] = capture.record(arrays=False)
    return res


def chi2_1_ppf(q):
    """The quantile of the chi-square law with one degree of freedom, computed as
    ``scipy.stats.chi2.ppf(q, 1)`` computes it (scipy.stats costs half a second of
    start-up; it is imported where a p-value needs it)."""
    return 2.0 * special.gammaincinv(0.5, q)


def _stages(settings: FitSettings):
    """The profile mask and goodness-of-fit threshold the fit kernel gets for
    ``settings``; None for a stage that does not run (the kernel's version
    without that stage: the same results, and it compiles only what runs)."""
    prof = settings.interval == "profile"
    chosen = np.array([t in settings.profile for t in _TARGETS])
    # profiled targets; the others' unbounded sides (the limit check, no search)
    mask = np.concatenate([chosen & prof, ~chosen & prof])
    gof = float(settings.gof_min_expected) if settings.gof_min_expected > 0 else None
    return (mask if mask.any() else None), gof


def compile_ahead(settings: FitSettings, *more) -> bool:
    """When the fit kernel is not compiled for ``settings`` yet (a fresh
    installation or Numba cache), start compiling parts of it in a second
    process (:mod:`telegraph.kernels._ahead`, ``config.COMPILE_AHEAD``): the
    first fit then compiles on two cores. ``more``: plans ``(kernel, argument
    types, jobs)`` of kernels the caller runs next. Call it as early as the
    settings are known; returns whether a helper process was started."""
    if not config.COMPILE_AHEAD:
        return False
    mask, gof = _stages(settings)
    args, jobs = kfit.compile_ahead_plan(mask is not None, gof is not None)
    return _ahead.start((kfit.fit_genes, args, jobs), *more)


@functools.lru_cache(maxsize=64)
def _kernel_arguments(settings: FitSettings, limit_union: tuple):
    """The fit kernel's arguments that follow from ``settings`` alone (and the
    limit-union settings of :mod:`telegraph.config`, ``limit_union``): the
    drop, the profile mask, the goodness-of-fit threshold and the union
    distances, computed once per settings, not once per call of
    :func:`fit_raw` (a fit of one gene costs 0.1-0.4 ms)."""
    mask, gof = _stages(settings)   # (the kernel reads the mask only; shared by the calls)
    return (chi2_1_ppf(settings.ci) / 2.0, mask, gof) + union_distances(settings.ci)


def fit_raw(hist, settings, gene_slice=slice(None)):
    """Run the compiled fit on a slice of genes; returns the raw result rows."""
    start, stop, _ = gene_slice.indices(hist.n_genes)
    drop, mask, gof, union_tg, union_bm = _kernel_arguments(
        settings, (config.LIMIT_UNION, config.LIMIT_UNION_TELEGRAPH, config.LIMIT_UNION_BIMODAL))
    capture = np.ascontiguousarray(hist.capture, dtype=float)
    res = np.empty((stop - start, kfit.N_RESULT))

    def piece(a, b):
        # genes start + a .. start + b, to rows a .. b (a serial nogil kernel: pieces run
        # side by side on threads, blocks.on_threads)
        ip = hist.indptr[start + a:start + b + 1]
        lo, hi = ip[0], ip[-1]
        kfit.fit_genes(np.ascontiguousarray(ip - lo, dtype=np.int64),
                       np.ascontiguousarray(hist.values[lo:hi], dtype=np.int64),
                       np.ascontiguousarray(hist.groups[lo:hi], dtype=np.int64),
                       np.ascontiguousarray(hist.weights[lo:hi], dtype=float), capture,
                       np.ascontiguousarray(hist.n_cells[start + a:start + b], dtype=np.int64),
                       int(settings.min_cells), float(drop), mask, int(settings.max_iter),
                       gof, res[a:b], union_tg, union_bm)

    blocks.on_threads(piece, hist.indptr[start:stop + 1])
    return res


def union_distances(ci: float) -> tuple[float, float]:
    """Distances of a limit model below the supremum within which it still
    adds its own values to the profile intervals of a gene in the telegraph
    and in the bimodal regime (docs/maths.md, "Profile likelihood").

    The regime decision rejects a limit when its one-sided test at level
    (1 - ci)/2 does; given that it did, a gene whose truth is the limit has its
    signed root distance above z only with probability P(Z > z) / ((1 - ci)/2).
    Telegraph regime: P(Z > z) = ``config.LIMIT_UNION_TELEGRAPH`` * (1 - ci)/2
    (a truth on the limit would need only ((1 - ci)/2)^2; truths near the
    limit, also selected, need more: measured); bimodal regime, the bursty
    limit only: P(Z > z) = ``config.LIMIT_UNION_BIMODAL`` * (1 - ci)/2. The
    distances are z^2/2; both 0 when ``config.LIMIT_UNION`` is off.
    """
    if not config.LIMIT_UNION:
        return 0.0, 0.0
    one_sided = (1.0 - ci) / 2.0
    z_tg = -special.ndtri(one_sided * config.LIMIT_UNION_TELEGRAPH)
    z_bm = -special.ndtri(one_sided * config.LIMIT_UNION_BIMODAL)
    return float(z_tg * z_tg / 2.0), float(z_bm * z_bm / 2.0)


def fit_histograms(hist: CountHistograms, *, k_deg=None, settings: FitSettings | None = None,
                   n_jobs: int | None = None, progress: bool | None = config.PROGRESS,
                   chunk_genes: int | None = None, client=None) -> pd.DataFrame:
    """Fit every gene of a :class:`telegraph.histogram.CountHistograms`.

    The histograms are sufficient statistics: this is what :func:`telegraph.fit` runs
    after one pass over the matrix, and what fits from disk and on Dask
    reduce to. ``k_deg`` is as in :func:`telegraph.fit` (or a resolved
    :class:`telegraph.inputs.KDeg`); ``settings`` a
    :class:`telegraph.inputs.FitSettings`; the other parameters and the
    returned table are as in :func:`telegraph.fit`. With ``client`` the histograms are
    cut into blocks of about equal numbers of bins (``config.BLOCKS_PER_THREAD``
    per worker thread) and fitted on the workers; the result is the same.
    """
    settings = FitSettings() if settings is None else settings
    kd = resolve_k_deg(k_deg, n_genes=hist.n_genes)
    t0 = time.perf_counter()
    if client is not None:
        blocks.check_client(client)
    if client is not None and hist.n_genes:
        bounds = blocks.balanced_bounds(
            hist.indptr, config.BLOCKS_PER_THREAD * blocks.total_threads(client))
        parts = [hist.subset(slice(int(a), int(b))) for a, b in zip(bounds[:-1], bounds[1:])]
        rows = blocks.map_blocks(fit_raw, parts, settings, client=client,
                                 sizes=np.diff(bounds), progress=progress)
    else:
        compile_ahead(settings)
        rows = []
        with blocks.gene_blocks(hist.n_genes, chunk_genes=chunk_genes, n_jobs=n_jobs,
                                progress=progress, desc="telegraph fit") as chunks:
            for start, stop in chunks:
                rows.append(fit_raw(hist, settings, slice(start, stop)))
    raw = np.vstack(rows) if rows else np.empty((0, kfit.N_RESULT))
    log.info("fitted %d genes in %.1f s", hist.n_genes, time.perf_counter() - t0)
    return table_of(raw, hist, settings, kd)


def table_of(raw, hist, settings: FitSettings, k_deg: KDeg) -> pd.DataFrame:
    """:func:`results_table` with the settings and ``k_deg`` recorded (:func:`with_record`)."""
    return with_record(results_table(raw, hist, settings, k_deg=k_deg.values), settings, k_deg)


def with_record(table: pd.DataFrame, settings: FitSettings, k_deg: KDeg) -> pd.DataFrame:
    """Record in ``table.attrs`` the settings and the k_deg a table was fitted with."""
    table.attrs["settings"] = settings.record()
    table.attrs["k_deg"] = k_deg.record(arrays=False)
    return table


def results_table(raw, hist, settings, *, k_deg=None):
    """Turn raw kernel rows (an array of fit_genes rows or their
    :class:`~telegraph.kernels.fit.FitRows` view) into the public results table.

    One encoding per regime (docs/results.md): each regime reports the
    maximum-likelihood estimate of its law -- the telegraph law, or the limit
    law the data cannot be told apart from (negative binomial, zero-inflated
    Poisson, Poisson) -- and fills exactly the quantities that law
    identifies; every other estimate is NaN. Intervals are the confidence
    sets of the telegraph likelihood whatever the regime (an unbounded side
    is 0 or inf).
    """
    rows = kfit.FitRows(raw)
    n = len(rows)
    kd = np.ones(n) if k_deg is None else np.asarray(k_deg, dtype=float)
    code = rows.regime
    regime = np.array([REGIMES[c] for c in code], dtype=object)
    tg = code == kfit.REGIME_TELEGRAPH
    nb = code == kfit.REGIME_BURSTY
    zp = code == kfit.REGIME_BIMODAL
    po = code == kfit.REGIME_POISSON
    zero = code == kfit.REGIME_ALL_ZERO
    fitted = tg | nb | zp | po

    nan = np.full(n, np.nan)
    with np.errstate(over="ignore", invalid="ignore"):
        a_tg, b_tg, lam_tg = np.exp(rows.log_a), np.exp(rows.log_b), np.exp(rows.log_lam)
        a_nb, beta_nb = np.exp(rows.nb_log_a), np.exp(rows.nb_log_beta)
        f_zip, lam_zip = np.asarray(rows.zip_f), np.exp(rows.zip_log_lam)
        # estimates in units of k_deg, by regime; NaN where not identified
        a = np.select([tg, nb], [a_tg, a_nb], nan)
        b = np.where(tg, b_tg, nan)
        lam = np.select([tg, zp], [lam_tg, lam_zip], nan)
        beta = np.select([tg, nb], [lam_tg / b_tg, beta_nb], nan)
        f_on = np.select([tg, zp], [a_tg / (a_tg + b_tg), f_zip], nan)
        mean_expr = np.select([tg, nb, zp, po, zero],
                              [lam_tg * a_tg / (a_tg + b_tg), a_nb * beta_nb, f_zip * lam_zip,
                               rows.poisson_mu, np.zeros(n)], nan)
    ll = np.select([tg, nb, zp, po, zero],
                   [rows.loglik, rows.loglik_nb, rows.loglik_zip, rows.loglik_poisson,
                    np.zeros(n)], nan)
    n_iter = np.select([tg, nb, zp], [rows.n_iter, rows.n_iter_nb, rows.n_iter_zip], 0.0)
    converged = rows.converged & np.select([nb, zp], [rows.converged_nb, rows.converged_zip],
                                           True)

    out = pd.DataFrame(index=pd.Index(_gene_names(hist, n), name=None))
    out["gene"] = out.index.to_numpy()
    out["k_on"] = a * kd
    out["k_off"] = b * kd
    out["k_syn"] = lam * kd
    out["burst_frequency"] = a * kd
    out["burst_size"] = beta

    # intervals (log scale in the kernel): the telegraph likelihood's
    z = special.ndtri(0.5 + settings.ci / 2.0)  # the normal quantile, scipy's norm.ppf
    names = {"burst_frequency": 0, "burst_size": 1, "k_off": 2, "k_syn": 3}
    center = {"burst_frequency": rows.log_a, "burst_size": rows.log_beta,
              "k_off": rows.log_b, "k_syn": rows.log_lam}
    for name, t in names.items():
        if settings.interval == "profile" and name in settings.profile:
            lo, hi = rows.ci(t)
        else:
            se = rows.se(t)
            lo = center[name] - z * se
            hi = center[name] + z * se
            if settings.interval == "profile":
                # Wald, except on a side the data do not bound (the limit
                # model's maximum is within the cut-off)
                clo, chi = rows.ci(t)
                lo = np.where(np.isinf(clo), clo, lo)
                hi = np.where(np.isinf(chi), chi, hi)
        scale = 1.0 if name == "burst_size" else kd
        with np.errstate(over="ignore"):
            out[f"{name}_ci_low"] = np.where(fitted, np.exp(lo) * scale, np.nan)
            out[f"{name}_ci_high"] = np.where(fitted, np.exp(hi) * scale, np.nan)
    out["k_on_ci_low"] = out["burst_frequency_ci_low"]
    out["k_on_ci_high"] = out["burst_frequency_ci_high"]
    out["fraction_on"] = f_on
    out["mean_expression"] = mean_expr
    out["loglik"] = ll
    out["n_cells"] = np.asarray(hist.n_cells, dtype=np.int64)
    out["n_missing"] = np.asarray(hist.n_missing, dtype=np.int64)
    out["mean"] = hist.mean()
    out["regime"] = pd.Categorical(regime, categories=list(REGIMES.values()))
    out["identified"] = [IDENTIFIED[r] for r in regime]
    out["converged"] = np.where(fitted, converged, False)
    stat, df, pval, flag = gof_pvalues(rows)
    out["gof_stat"] = stat
    out["gof_df"] = pd.arrays.IntegerArray(np.nan_to_num(df).astype(np.int64), np.isnan(df))
    out["gof_pval"] = pval
    out["gof_flag"] = pd.Categorical(flag, categories=list(GOF_FLAGS))
    out["loglik_telegraph"] = np.where(fitted, rows.loglik, np.nan)
    out["loglik_negbinom"] = rows.loglik_nb
    out["loglik_poisson"] = rows.loglik_poisson
    out["loglik_zip"] = rows.loglik_zip
    out["n_iter"] = np.where(fitted, n_iter, 0).astype(np.int64)
    return out


#: parameters of the law each regime reports (the degrees of freedom it takes)
_N_PARAMS = {kfit.REGIME_TELEGRAPH: 3, kfit.REGIME_BURSTY: 2, kfit.REGIME_BIMODAL: 2,
             kfit.REGIME_POISSON: 1}


def gof_pvalues(raw):
    """Calibrated p-values of the Pearson goodness-of-fit statistic of kernel
    rows (the law each regime reports; :func:`chernoff_lehmann`).

    Returns (statistic, df, p, flag): df = max(K - 1 - p, 0), an integer
    (NaN without a test), and flag one of :data:`telegraph.goodness.GOF_FLAGS`.
    """
    rows = kfit.FitRows(raw)
    npar = np.array([_N_PARAMS.get(c, 0) for c in rows.regime], dtype=int)
    x2, df, p, flag = chernoff_lehmann(rows.gof_stat, rows.gof_cells, npar, rows.gof_info(),
                                       rows.grouped_info())
    flag[npar == 0] = "not_fitted"
    return x2, df, p, flag


def _gene_names(hist, n):
    genes = getattr(hist, "genes", None)
    if genes is None:
        return [f"gene{i}" for i in range(n)]
    return [str(g) for g in genes]
