"""Per-gene maximum-likelihood fits of the stationary telegraph model.

The inference layer: it takes count matrices (cells x genes, dense or sparse)
or their per-gene histograms and returns one row per gene. Optimisation,
limit models, profile intervals and the goodness-of-fit statistic run in
compiled code over all genes at once (:mod:`telegraph.kernels.fit`, read
through its named view :class:`~telegraph.kernels.fit.FitRows`); this module resolves the user's arguments (:mod:`telegraph.inputs`), runs the
compiled fit over blocks of genes -- on local threads or on a Dask cluster
(:mod:`telegraph.blocks`) -- and turns the raw results into a table.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from scipy import special

from . import blocks, config, jointfit, labelfit
from .goodness import chernoff_lehmann
from .histogram import CountHistograms, coarse_capture_groups, count_histograms
from .inputs import (Capture, FitSettings, KDeg, Labelling, resolve_capture, resolve_k_deg,
                     resolve_labelling, row_totals, totals_of)
from .kernels import fit as kfit

__all__ = ["fit", "fit_histograms", "results_table", "union_distances", "REGIMES", "IDENTIFIED",
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


def fit(counts, *, capture=None, k_deg=None, genes=None, min_cells: int = config.MIN_CELLS,
        ci: float = config.CI, interval: str = config.INTERVAL, round_counts: bool | str = False,
        capture_rtol: float = config.CAPTURE_RTOL, n_jobs: int | None = None,
        progress: bool | None = config.PROGRESS, client=None, chunk_genes: int | None = None,
        profile=config.PROFILE, unspliced=None, unspliced_factor: float = 1.0,
        model: str = "telegraph", new=None, t_label=None,
        detection=config.DETECTION) -> pd.DataFrame:
    """Fit the telegraph model to every gene of a count matrix.

    With ``unspliced=`` (a second layer of the same cells and genes, e.g.
    velocyto's), ``counts`` are the spliced counts and the telegraph model with
    splicing is fitted to both (:mod:`telegraph.jointfit`): rates come out in
    units of the splicing rate and k_deg, the degradation rate of spliced
    molecules, is estimated with its interval.

    With ``new=`` (the labelled counts of a metabolic-labelling experiment,
    e.g. scSLAM-seq, NASC-seq, scNT-seq, sci-fate) and ``t_label=`` (the
    pulse length in hours), ``counts`` are the old (unlabelled) counts and the
    pulse identifies every rate in absolute time (:mod:`telegraph.labelfit`):
    k_on, k_off, k_syn and k_deg per hour, the half-life in hours.

    Parameters
    ----------
    counts : array_like or scipy.sparse matrix, shape (n_cells, n_genes)
        UMI counts (non-negative integers). NaN marks a missing value for that
        cell and gene (as in allele-resolved data); it is dropped for that gene.
        CSR and CSC matrices are read through their raw arrays; nothing is
        densified.
    capture : None, float, array_like of shape (n_cells,), or "total"
        Per-cell capture efficiency in (0, 1] (fraction of molecules counted):
        one number for every cell or one per cell. ``"total"`` uses each
        cell's total count divided by the mean total as a relative size
        factor; ``k_syn`` is then in molecules counted per unit time in a cell
        of average depth. Without capture, k_syn is in counted molecules.
    k_deg : None, float, or array_like of shape (n_genes,)
        mRNA degradation rate of each gene, per unit time (e.g. log(2) /
        half-life). Given, all rates are returned per that unit of time;
        otherwise they are in units of k_deg (k_deg = 1).
    genes : None or sequence of str
        Gene names (row labels of the result); default ``gene0, gene1, ...``.
    min_cells : int
        Genes with fewer non-missing cells get a row of NaN with regime
        ``"too_few_cells"``.
    ci : float
        Confidence level of the intervals (default 0.95).
    interval : {"profile", "wald"}
        Profile-likelihood intervals (default; exact likelihood-ratio
        inversion at chi2_1(ci)) or Wald intervals on the log scale from the
        observed (Louis) information, which are faster.
    round_counts : bool or "force"
        Round non-integer counts instead of refusing them: for raw counts
        made non-integer by a correction (e.g. of ambient RNA). Values that
        look normalised or log-transformed are refused even so (rounding does
        not make them counts: pass the raw counts); ``"force"`` rounds them
        anyway.
    capture_rtol : float
        The likelihood costs one evaluation per distinct (count, capture)
        pair, so cells are grouped by capture efficiency: with more than
        ``config.CAPTURE_BINS`` (256) distinct values, cells whose capture
        differs by less than a factor ``1 + capture_rtol`` share a group whose
        value is their mean capture (the expected total count is kept
        exactly). 0 keeps every distinct value (exact, slower).
    n_jobs : int or None
        Threads for the compiled fit (default: all cores).
    progress : bool or None
        Progress bar on stderr: None (default) when stderr is a terminal or
        in a Jupyter kernel (none in a log file), True always, False never.
        The first call in a fresh installation compiles the kernels (about a
        minute) before the bar moves.
    client : dask.distributed.Client, optional
        Fit blocks of genes on a Dask cluster: the histograms (far smaller
        than the matrix) are sent to the workers. Same results.
    chunk_genes : int, optional
        Genes per compiled call (progress granularity).
    profile : sequence of str or "all"
        With ``interval="profile"``, the quantities that get profile-likelihood
        intervals: by default burst frequency and burst size
        (``config.PROFILE``); ``"all"`` adds k_off and k_syn (k_on's interval is
        burst frequency's). The others get Wald intervals, infinite (or 0) on
        a side where the limit model's maximum shows that the data do not
        bound them, as a profile interval would be. Profiling all four was the
        default before version 0.2 and costs about twice as much.
    unspliced : array_like or scipy.sparse matrix, (n_cells, n_genes), optional
        Unspliced counts: fit two species per gene (``counts`` are then the
        spliced counts). The table is then that of
        :func:`telegraph.jointfit.fit_layers`: ``k_on, k_off, k_syn, k_deg``
        in units of ``k_splice`` (= 1), ``k_deg_ci_low``/``k_deg_ci_high``,
        ``k_deg_flag`` and the columns below. ``k_deg`` must not be given.
    unspliced_factor : float
        Two species: capture efficiency of unspliced molecules relative to
        spliced ones (default 1: the same capture).
    model : {"telegraph", "bursty"}
        Two species: the full model (default) or its bursty limit (k_off ->
        infinity, the boundary model of Monod), for comparison.
    new : array_like or scipy.sparse matrix, (n_cells, n_genes), optional
        New (labelled) counts of the same cells and genes: fit the labelled
        model (``counts`` are then the old counts). The table is then that of
        :func:`telegraph.labelfit.fit_layers`: ``k_on, k_off, k_syn, k_deg``
        per hour, ``half_life`` (hours) with intervals, ``k_deg_flag``,
        ``pulse``. ``k_deg`` must not be given.
    t_label : float or array_like (n_cells,)
        With ``new``: pulse length in hours, one number or one per cell (cells
        harvested after several pulse lengths: a time course).
    detection : float, array_like (n_cells,) or "estimate"
        With ``new``: probability in (0, 1] that a captured new molecule is
        seen as new (its label conversions detected; the rest are counted as
        old), from the protocol's spike-ins or conversion model. Default 1.
        ``"estimate"``: one probability for all cells, estimated across genes
        (the maximum of the summed profile log-likelihood over the
        ``config.DETECTION_ESTIMATE_GENES`` most expressed genes,
        :func:`telegraph.labelfit.estimate_detection`), then every gene fitted
        at it; the estimate, its interval and standard error are in
        ``result.attrs["labelling"]["detection_estimate"]``. The genes'
        intervals are conditional on the estimated value. It needs a design
        that identifies it: several pulse lengths, or genes whose mRNA lives
        shorter than the pulse (docs/maths.md, "Estimating the detection
        probability"); otherwise it is flagged "flat" with a warning. The
        estimate runs on this machine's threads even with ``client`` (which
        then fits the genes at it).

    Returns
    -------
    pandas.DataFrame
        One row per gene, indexed by gene name, with columns ``gene, k_on,
        k_off, k_syn, burst_frequency, burst_size`` (rates in units of k_deg
        unless ``k_deg`` is given; burst size in molecules per burst),
        ``<name>_ci_low``/``<name>_ci_high`` for burst_frequency, burst_size,
        k_on, k_off and k_syn (0 or ``inf`` on a side the data do not bound),
        ``fraction_on``, ``mean_expression`` (molecules per cell at capture
        1), ``loglik``, ``n_cells``, ``n_missing`` (integers), ``mean`` (mean
        observed count), ``regime`` (telegraph, bursty, bimodal, poisson,
        too_few_cells, all_zero), ``identified`` (the estimates the regime
        fills), ``converged``, ``gof_stat``, ``gof_df`` (integer),
        ``gof_pval``, ``gof_flag`` (Pearson goodness of fit against the law
        reported), the maxima of the four laws ``loglik_telegraph``,
        ``loglik_negbinom``, ``loglik_poisson``, ``loglik_zip``, and
        ``n_iter`` (integer). Each regime reports the maximum-likelihood
        estimate of its law -- the telegraph law, or the limit law the data
        cannot be told apart from -- and fills exactly the quantities that
        law identifies; the others are NaN (docs/results.md has the table).
        ``DataFrame.attrs`` records how the fit was made:
        ``"settings"``, ``"capture"`` and ``"k_deg"`` (see
        :mod:`telegraph.inputs`).
    """
    counts_shape = getattr(counts, "shape", None)
    if counts_shape is None:
        counts = np.asarray(counts)
        counts_shape = counts.shape
    if len(counts_shape) != 2:
        raise ValueError(f"counts must be a 2-D cells x genes matrix; got shape {counts_shape}")
    n_cells, n_genes = counts_shape
    labelling = None
    if new is not None:
        if unspliced is not None:
            raise ValueError("give either unspliced= (two species) or new= (labelling), "
                             "not both")
        if getattr(new, "shape", None) is None:
            new = np.asarray(new)
        if tuple(new.shape) != tuple(counts_shape):
            raise ValueError(f"new counts have shape {tuple(new.shape)} but the old counts "
                             f"{tuple(counts_shape)}; give both of the same cells and genes")
        if t_label is None:
            raise ValueError("t_label is required with new=: the labelling pulse length in "
                             "hours (one number, or one per cell)")
        labelling = t_label if isinstance(t_label, Labelling) else resolve_labelling(
            t_label, detection, n_cells=n_cells)
    elif t_label is not None:
        raise ValueError("t_label= needs new=, the labelled counts (counts are then the old "
                         "ones)")
    totals = (totals_of(counts) if labelling is None
              else (lambda: row_totals(counts) + row_totals(new)))
    cap = resolve_capture(capture, n_cells=n_cells, totals=totals)
    kd = resolve_k_deg(k_deg, n_genes=n_genes)
    settings = FitSettings(ci=ci, interval=interval, min_cells=min_cells, profile=profile)
    if labelling is not None:
        res = labelfit.fit_layers(counts, new, labelling=labelling, capture=cap,
                                  settings=settings, k_deg=kd, genes=genes,
                                  round_counts=round_counts, capture_rtol=capture_rtol,
                                  n_jobs=n_jobs, progress=progress, client=client)
        return with_capture(res, cap)
    if unspliced is not None:
        if getattr(unspliced, "shape", None) is None:
            unspliced = np.asarray(unspliced)
        res = jointfit.fit_layers(counts, unspliced, capture=cap, settings=settings, k_deg=kd,
                                  genes=genes, round_counts=round_counts,
                                  capture_rtol=capture_rtol, unspliced_factor=unspliced_factor,
                                  model=model, n_jobs=n_jobs, progress=progress, client=client)
        return with_capture(res, cap)
    hist = count_histograms(counts, capture=cap.efficiency, capture_rtol=capture_rtol,
                            round_counts=round_counts, genes=genes)
    res = fit_histograms(hist, k_deg=kd, settings=settings, n_jobs=n_jobs, progress=progress,
                         chunk_genes=chunk_genes, client=client)
    return with_capture(res, cap)


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


def fit_raw(hist, settings, gene_slice=slice(None)):
    """Run the compiled fit on a slice of genes; returns the raw result rows."""
    start, stop, _ = gene_slice.indices(hist.n_genes)
    drop = chi2_1_ppf(settings.ci) / 2.0
    prof = settings.interval == "profile"
    chosen = np.array([t in settings.profile for t in _TARGETS])
    # profiled targets; the others' unbounded sides (the limit check, no search)
    mask = np.concatenate([chosen & prof, ~chosen & prof])
    # None: the kernel's version without that stage (same results; compiles only what runs)
    mask = mask if mask.any() else None
    gof = float(settings.gof_min_expected) if settings.gof_min_expected > 0 else None
    capture = np.ascontiguousarray(hist.capture, dtype=float)
    coarse_of, capture_coarse = coarse_capture_groups(capture)
    if coarse_of is None:
        # one level: empty arrays (not None), so that one compiled version of the kernel
        # serves fits with and without many capture groups
        coarse_of, capture_coarse = np.empty(0, np.int64), np.empty(0)
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
                       gof, res[a:b], union_tg, union_bm, coarse_of, capture_coarse,
                       float(config.CAPTURE_COARSE_MIN_FACTOR))

    union_tg, union_bm = union_distances(settings.ci)
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

    The histograms are sufficient statistics: this is what :func:`fit` runs
    after one pass over the matrix, and what fits from disk and on Dask
    reduce to. ``k_deg`` is as in :func:`fit` (or a resolved
    :class:`telegraph.inputs.KDeg`); ``settings`` a
    :class:`telegraph.inputs.FitSettings`; the other parameters and the
    returned table are as in :func:`fit`. With ``client`` the histograms are
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


#: ``gof_flag`` values: "ok", a test with power; "one_class", the fitted law
#: expects every cell in one class and "degenerate", the classes carry all the
#: information the fit used -- in both the statistic is 0 under the fitted law,
#: the test has no power and its p-value is 1; "not_computed", no statistic
#: (NaN); "not_fitted", regime too_few_cells or all_zero (NaN)
GOF_FLAGS = ("ok", "one_class", "degenerate", "not_computed", "not_fitted")

#: parameters of the law each regime reports (the degrees of freedom it takes)
_N_PARAMS = {kfit.REGIME_TELEGRAPH: 3, kfit.REGIME_BURSTY: 2, kfit.REGIME_BIMODAL: 2,
             kfit.REGIME_POISSON: 1}


def gof_pvalues(raw):
    """Calibrated p-values of the Pearson goodness-of-fit statistic of kernel
    rows (the law each regime reports; :func:`chernoff_lehmann`).

    Returns (statistic, df, p, flag): df = max(K - 1 - p, 0), an integer
    (NaN without a test), and flag one of :data:`GOF_FLAGS`.
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
