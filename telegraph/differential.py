"""Differential bursting: likelihood-ratio tests between two groups of cells.

The inference layer over plain count matrices and per-gene histograms; the
AnnData adapters are in :mod:`telegraph.tl.differential`.

For every gene, each group is fitted on its own (the unconstrained model, log
likelihood l1 + l2). The null hypothesis "equal burst frequency" shares
k_on / k_deg between the groups while each group keeps its own k_off and k_syn;
"equal burst size" shares k_syn / k_off while each group keeps its own k_on and
k_off. The constrained maximum l0 is a one-dimensional maximisation over the
shared value of the sum of the two groups' profile log-likelihoods, solved by
Newton's method with exact profile derivatives (envelope theorem) in compiled
code, all genes in parallel (:mod:`telegraph.kernels.differential`).

The statistic 2 (l1 + l2 - l0) is not chi-square(1) near the limits of the
model, where most genes lie; its null law is calibrated on the data
(:mod:`telegraph.calibration`): each gene's regime in the fit of both groups
pooled puts it in a class (genes whose pooled fit is bimodal or Poisson, where
neither burst frequency nor burst size is identified, are not tested), and the
statistic is referred to chi-square(1) scaled by the mean statistic of
parametric-bootstrap draws of its class. Log2 fold changes come with
profile-likelihood intervals inverting the same calibrated statistic (so an
interval excludes 0 exactly when p < 1 - ci) or Wald intervals. p-values are
adjusted by Benjamini-Hochberg weighted by each gene's information in the
pooled fit (:mod:`telegraph.multitest`). docs/maths.md, "Differential
bursting", has the account.

The test assumes k_deg is the same in both groups (a snapshot identifies rates
only in units of k_deg): a change in mRNA stability would show up as a change
in burst frequency. For the two alleles of the same cells
(:func:`telegraph.tl.differential_bursting_alleles`) the alleles are treated as
independent given the cell's capture efficiency.
"""

from __future__ import annotations

import logging
import math
import time
import warnings

import numpy as np
import pandas as pd
from scipy import special

from . import blocks, config, jointfit
from .calibration import (NullScales, groups_in_limit, null_scales, pooled_fit,
                          regime_classes)
from .fitting import chi2_1_ppf, compile_ahead, fit_raw, results_table
from .histogram import count_histograms, joint_count_histograms
from .inputs import (DifferentialSettings, FitSettings, depth_warning, rescale_syn,
                     resolve_captures, totals_of)
from .kernels import differential as kdiff
from .kernels import fit as kfit
from .likelihood_fit import n_threads
from .multitest import benjamini_hochberg, information_weights, weighted_bh

__all__ = ["differential", "differential_histograms", "differential_two_species",
           "benjamini_hochberg", "TESTS", "DepthWarning"]

log = logging.getLogger("telegraph")

#: the two tests, in the order of the kernel's result blocks
TESTS = ("burst_frequency", "burst_size")

#: flag values of the result table
FLAGS = ("ok", "limit_regime", "not_converged", "not_identified", "too_few_cells", "all_zero",
         "too_large")


class DepthWarning(UserWarning):
    """The two groups' sequencing depths differ and no capture was given."""


def differential(counts1, counts2, *, capture1=None, capture2=None, genes=None,
                 group_names=("1", "2"), min_cells: int = config.MIN_CELLS,
                 ci: float = config.CI, interval: str = config.INTERVAL,
                 calibration: str = config.CALIBRATION, weighting: str = config.WEIGHTING,
                 round_counts: bool = False, capture_rtol: float = config.CAPTURE_RTOL,
                 n_jobs: int | None = None, progress: bool | None = config.PROGRESS,
                 chunk_genes: int | None = None, totals=None,
                 depth_check: bool = True) -> pd.DataFrame:
    """Test every gene for a change in burst frequency and in burst size.

    Parameters
    ----------
    counts1, counts2 : array_like or scipy.sparse matrix, shapes (n_cells_g, n_genes)
        UMI counts of the two groups of cells, the same genes in the same
        order (cells x genes; NaN = missing for that cell and gene).
    capture1, capture2 : None, array_like, or "total"
        Per-cell capture efficiency in (0, 1] of each group's cells, or
        ``"total"`` for both (size factors relative to the mean total count of
        all cells of both groups). See :func:`telegraph.fit`.
    genes : sequence of str, optional
        Gene names (index of the result).
    group_names : pair of str
        Names of the groups, recorded in ``DataFrame.attrs["groups"]``.
    min_cells : int
        A gene is tested only when each group has at least this many
        non-missing cells (and a non-zero count).
    ci : float
        Level of the intervals of the log2 fold changes.
    interval : {"profile", "wald"}
        Profile-likelihood intervals of the log-ratio (default) or Wald
        intervals from the two groups' profile curvatures (faster).
    calibration : {"bootstrap", "chi2"}
        Null law of the likelihood-ratio statistics: chi-square(1) scaled per
        regime class by a parametric bootstrap of the pooled fits (default,
        :mod:`telegraph.calibration`), or plain chi-square(1) (faster; too
        few false positives near the limits of the model, and so less power).
    weighting : {"information", "none"}
        Multiple-testing adjustment: Benjamini-Hochberg weighted by each
        gene's information in the pooled fit (default,
        :func:`telegraph.multitest.information_weights`), or plain.
    round_counts, capture_rtol, n_jobs, progress, chunk_genes
        As in :func:`telegraph.fit`.
    totals : pair of array_like, optional
        The per-cell totals of the two groups: size factors with
        ``capture="total"``, and the depth check (default: each matrix's own
        cell totals). The allele test passes the totals of both alleles of
        each cell here, so that the two alleles of a cell share its size
        factor.
    depth_check : bool
        Without capture, warn (:class:`DepthWarning`) when the groups'
        median total counts differ by more than ``config.DEPTH_RATIO_WARN``.

    Returns
    -------
    pandas.DataFrame
        See :func:`differential_histograms`.
    """
    shapes = []
    for c in (counts1, counts2):
        shp = getattr(c, "shape", None)
        if shp is None:
            shp = np.asarray(c).shape
        if len(shp) != 2:
            raise ValueError(f"counts must be 2-D cells x genes matrices; got shape {shp}")
        shapes.append(shp)
    if shapes[0][1] != shapes[1][1]:
        raise ValueError(f"the two groups have different numbers of genes ({shapes[0][1]} and "
                         f"{shapes[1][1]}); give the same genes in the same order")
    counts1 = counts1 if hasattr(counts1, "shape") else np.asarray(counts1)
    counts2 = counts2 if hasattr(counts2, "shape") else np.asarray(counts2)
    DifferentialSettings(calibration=calibration, weighting=weighting)
    if totals is None:
        totals = (totals_of(counts1), totals_of(counts2))
    if depth_check:
        note = depth_warning(totals[0], totals[1], [capture1, capture2])
        if note is not None:
            warnings.warn(note, DepthWarning, stacklevel=2)
    c1, c2 = resolve_captures([capture1, capture2], n_cells=[shapes[0][0], shapes[1][0]],
                              totals=totals)
    h1 = count_histograms(counts1, capture=c1.efficiency, capture_rtol=capture_rtol,
                          round_counts=round_counts, genes=genes)
    h2 = count_histograms(counts2, capture=c2.efficiency, capture_rtol=capture_rtol,
                          round_counts=round_counts, genes=genes)
    res = differential_histograms(h1, h2, group_names=group_names, min_cells=min_cells, ci=ci,
                                  interval=interval, calibration=calibration,
                                  weighting=weighting, n_jobs=n_jobs, progress=progress,
                                  chunk_genes=chunk_genes, syn_scale=c1.syn_scale)
    res.attrs["capture"] = {"group1": c1.record(arrays=False),
                            "group2": c2.record(arrays=False)}
    return res


def _group_settings(ci: float, min_cells: int, max_iter: int) -> FitSettings:
    """The settings of the per-group fits: they need no intervals or goodness of fit."""
    return FitSettings(ci=ci, interval="wald", min_cells=min_cells, profile=(),
                       max_iter=max_iter, gof_min_expected=0.0)


def _compile_ahead(settings: FitSettings) -> bool:
    # a cold first test: the group fits' kernel and the test kernel compile on two cores
    return compile_ahead(settings, (kdiff.differential_genes, *kdiff.compile_ahead_plan()))


def compile_ahead_test() -> bool:
    """When the kernels of :func:`differential` are not compiled yet (a fresh
    installation or Numba cache), start compiling them in a second process
    (:func:`telegraph.fitting.compile_ahead`); the command line calls it before
    it reads its input. Returns whether a helper process was started."""
    defaults = FitSettings()
    return _compile_ahead(_group_settings(defaults.ci, defaults.min_cells, defaults.max_iter))


def _slice_hist(hist, start, stop):
    ip = hist.indptr[start:stop + 1]
    lo, hi = ip[0], ip[-1]
    return (np.ascontiguousarray(ip - lo, dtype=np.int64),
            np.ascontiguousarray(hist.values[lo:hi], dtype=np.int64),
            np.ascontiguousarray(hist.groups[lo:hi], dtype=np.int64),
            np.ascontiguousarray(hist.weights[lo:hi], dtype=float),
            np.ascontiguousarray(hist.capture, dtype=float))


def _group_fits(hist1, hist2, settings, *, n_jobs, progress, chunk_genes, desc):
    """Raw fit rows of each group's genes."""
    raw1, raw2 = [], []
    with blocks.gene_blocks(hist1.n_genes, chunk_genes=chunk_genes, n_jobs=n_jobs,
                            progress=progress, desc=desc) as chunks:
        for start, stop in chunks:
            raw1.append(fit_raw(hist1, settings, slice(start, stop)))
            raw2.append(fit_raw(hist2, settings, slice(start, stop)))
    cat = (lambda rows: np.vstack(rows) if rows else np.empty((0, kfit.N_RESULT)))
    return cat(raw1), cat(raw2)


def _test_rows(hist1, hist2, raw1, raw2, tested, drops, want_ci, max_iter, *, n_jobs,
               progress, chunk_genes, desc):
    """Rows of :func:`telegraph.kernels.differential.differential_genes` for
    every gene (NaN where not ``tested``)."""
    out = []
    with blocks.gene_blocks(hist1.n_genes, chunk_genes=chunk_genes, n_jobs=n_jobs,
                            progress=progress, desc=desc) as chunks:
        for start, stop in chunks:
            r1, r2 = raw1[start:stop], raw2[start:stop]
            rd = np.empty((stop - start, kdiff.N_DIFF_RESULT))
            per_gene = (*_group_model(r1), _limits(r1), *_group_model(r2), _limits(r2),
                        tested[start:stop], drops[start:stop])

            def piece(a, b, start=start, per_gene=per_gene, rd=rd):
                # genes start + a .. start + b (a serial nogil kernel, blocks.on_threads)
                kdiff.differential_genes(
                    *_slice_hist(hist1, start + a, start + b),
                    *_slice_hist(hist2, start + a, start + b),
                    *(np.ascontiguousarray(x[a:b]) for x in per_gene[:-1]),
                    np.ascontiguousarray(per_gene[-1][a:b], dtype=float), bool(want_ci),
                    int(max_iter), rd[a:b])

            blocks.on_threads(piece, hist1.indptr[start:stop + 1]
                              + hist2.indptr[start:stop + 1])
            out.append(rd)
    return np.vstack(out) if out else np.empty((0, kdiff.N_DIFF_RESULT))


def _statistics(hist1, hist2, settings, *, n_jobs, progress, chunk_genes, desc):
    """(n_genes, 2) likelihood-ratio statistics of the two tests (NaN where
    a gene cannot be tested), the test's own code path without intervals,
    and how many groups' fits are in a limit regime."""
    raw1, raw2 = _group_fits(hist1, hist2, settings, n_jobs=n_jobs, progress=progress,
                             chunk_genes=chunk_genes, desc=desc)
    testable = _testable(raw1) & _testable(raw2)
    drops = np.ones((hist1.n_genes, 2))
    rawd = _test_rows(hist1, hist2, raw1, raw2, testable, drops, False, settings.max_iter,
                      n_jobs=n_jobs, progress=progress, chunk_genes=chunk_genes, desc=desc)
    d = kdiff.DiffRows(rawd)
    return np.column_stack([d.lr(0), d.lr(1)]), groups_in_limit(raw1, raw2)


def differential_histograms(hist1, hist2, *, group_names=("1", "2"),
                            min_cells: int = config.MIN_CELLS, ci: float = config.CI,
                            interval: str = config.INTERVAL,
                            calibration: str = config.CALIBRATION,
                            weighting: str = config.WEIGHTING, n_jobs: int | None = None,
                            progress: bool | None = config.PROGRESS,
                            chunk_genes: int | None = None, syn_scale: float = 1.0,
                            max_iter: int = config.MAX_ITER) -> pd.DataFrame:
    """Differential bursting tests on per-gene histograms of two groups.

    ``hist1`` and ``hist2`` (:class:`telegraph.histogram.CountHistograms`)
    describe the same genes in the same order; each has its own capture
    groups. Other parameters as in :func:`differential`; ``syn_scale``
    multiplies k_syn and burst sizes (capture normalisation).

    Returns
    -------
    pandas.DataFrame
        Indexed by gene, columns:

        - ``burst_frequency_log2fc``, ``burst_size_log2fc``: log2 of group 2
          over group 1 of the burst frequency k_on (per unit k_deg, which
          cancels) and of the burst size k_syn / k_off (molecules per burst);
          NaN where a group's estimate is 0 or infinite (a limit regime),
          with ``<name>_ci_low`` / ``<name>_ci_high`` (level ``ci``; +-inf
          where the data do not bound the ratio on that side);
        - ``pval_burst_frequency``, ``pval_burst_size``: p-values of the
          likelihood-ratio tests of equal burst frequency (resp. size) with
          all other rates free in each group, the statistic referred to its
          calibrated null law: an atom at zero of weight ``null_atom_*`` and
          chi2(1) x ``null_scale_*`` above it (a statistic in the atom gets a
          randomised p-value, uniform over the top ``null_atom_*`` of [0, 1]);
          ``padj_*``: weighted (``weight_*``) Benjamini-Hochberg adjusted over
          the tested genes; ``lr_*``: the statistics 2 (l1 + l2 - l0);
          ``null_scale_*``, ``null_atom_*``: the null law (1 and 0 with
          ``calibration="chi2"``); ``loglik_null_*``: l0, the maximum
          log-likelihood of the two groups under the null;
        - per group g in (1, 2): ``burst_frequency_g``, ``burst_size_g``,
          ``k_on_g``, ``k_off_g``, ``k_syn_g`` (units of k_deg), ``regime_g``,
          ``n_cells_g``, ``mean_g`` (mean observed count), ``loglik_g``,
          ``converged_g``; ``regime_pooled``: the regime of both groups'
          cells fitted together (the calibration class);
        - ``tested`` (bool) and ``flag``: ``ok``; ``limit_regime`` (a group
          is in the Poisson or bimodal regime, where burst frequency or size
          is not identified); ``not_converged``; ``not_identified`` (the
          pooled fit is bimodal or Poisson: neither target is identified,
          not tested); ``too_few_cells`` / ``all_zero`` / ``too_large`` (two species:
          counts too large for the exact law; not tested).

        ``attrs["groups"]`` holds the group names, ``attrs["settings"]`` the
        settings, ``attrs["calibration"]`` the null scales per class
        (:meth:`telegraph.calibration.NullScales.record`).
    """
    if hist1.n_genes != hist2.n_genes:
        raise ValueError(f"the groups have histograms of {hist1.n_genes} and {hist2.n_genes} "
                         "genes; they must describe the same genes")
    if (hist1.genes is not None and hist2.genes is not None
            and not np.array_equal(hist1.genes, hist2.genes)):
        raise ValueError("the two groups' histograms name different genes")
    FitSettings(ci=ci, interval=interval, min_cells=min_cells)  # the user's settings are valid
    tset = DifferentialSettings(calibration=calibration, weighting=weighting)
    n_genes = hist1.n_genes
    settings = _group_settings(ci, min_cells, max_iter)
    run = dict(n_jobs=n_jobs, progress=progress, chunk_genes=chunk_genes)
    t0 = time.perf_counter()
    _compile_ahead(settings)
    raw1, raw2 = _group_fits(hist1, hist2, settings, desc="telegraph test", **run)
    testable = _testable(raw1) & _testable(raw2)
    pooled = None
    if tset.calibration == "bootstrap" or tset.weighting == "information":
        pooled = pooled_fit(hist1, hist2, settings, **run)
    if tset.calibration == "bootstrap":
        classes = np.where(testable, regime_classes(pooled, raw1, raw2), -1)
        tested = classes >= 0

        def statistics(b1, b2):
            return _statistics(b1, b2, settings, desc="telegraph test: calibration", **run)

        scales = null_scales(hist1, hist2, pooled, classes, statistics)
    else:
        classes = np.full(n_genes, -1)
        tested = testable
        scales = NullScales.chi2()
    # the statistic at which a test is significant at 1 - ci: what the intervals invert
    critical = scales.critical(classes, ci)
    drops = critical / 2.0
    rawd = _test_rows(hist1, hist2, raw1, raw2, tested, drops, interval == "profile", max_iter,
                      desc="telegraph test: statistics", **run)
    log.info("tested %d genes in %.1f s", n_genes, time.perf_counter() - t0)
    return _table(raw1, raw2, rawd, hist1, hist2, settings, ci=ci, interval=interval,
                  syn_scale=syn_scale, group_names=group_names, pooled=pooled,
                  classes=classes, critical=critical, scales=scales, tset=tset,
                  identified=tested | ~testable)


def _group_model(raw):
    """How each group is profiled (kind 1 where the fit's supremum is the
    bursty limit, see :func:`telegraph.kernels.differential._group_profile`),
    its telegraph and negative-binomial coordinates and its unconstrained
    maximum."""
    rows = kfit.FitRows(raw)
    nb = rows.at_limit == kfit.REGIME_BURSTY
    kind = nb.astype(np.int64)
    theta_tg = np.ascontiguousarray(rows.theta)
    theta_nb = np.zeros_like(theta_tg)
    theta_nb[:, 0] = rows.nb_log_a
    theta_nb[:, 1] = rows.nb_log_beta
    ll = np.where(nb, rows.loglik_nb, rows.loglik)
    return kind, theta_tg, np.nan_to_num(theta_nb), np.ascontiguousarray(ll)


def _limits(raw):
    # a failed limit fit gives no evidence that a profile flattens out
    rows = kfit.FitRows(raw)
    lim = np.column_stack([rows.loglik_poisson, rows.loglik_zip])
    return np.ascontiguousarray(np.where(np.isfinite(lim), lim, -np.inf))


def _testable(raw):
    rows = kfit.FitRows(raw)
    regime = rows.regime
    finite = np.isfinite(rows.theta).all(axis=1) & np.isfinite(rows.loglik)
    return (finite & (regime != kfit.REGIME_NO_DATA) & (regime != kfit.REGIME_ALL_ZERO))


def _table(raw1, raw2, rawd, hist1, hist2, settings, *, ci, interval, syn_scale, group_names,
           pooled, classes, critical, scales, tset, identified):
    t1 = rescale_syn(results_table(raw1, hist1, settings), syn_scale)
    t2 = rescale_syn(results_table(raw2, hist2, settings), syn_scale)
    out = pd.DataFrame(index=t1.index.copy())
    out["gene"] = out.index.to_numpy()
    z = special.ndtri(0.5 + ci / 2.0)  # the normal quantile, scipy's norm.ppf
    d = kdiff.DiffRows(rawd)
    tested = np.isfinite(d.lr(0))
    for k, name in enumerate(TESTS):
        e1 = t1[name].to_numpy(float)
        e2 = t2[name].to_numpy(float)
        good = np.isfinite(e1) & np.isfinite(e2) & (e1 > 0) & (e2 > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            lfc = np.where(good, np.log2(e2 / e1), np.nan)
        d_hat = d.log_ratio(k)
        if interval == "profile":
            lo, hi = d.ci(k)
        else:
            # the Wald interval inverts the calibrated test: its half-width is
            # the one at which the Wald statistic reaches the critical value
            se = d.se(k) * np.sqrt(critical[:, k] / chi2_1_ppf(ci))
            lo = d_hat - z * se
            hi = d_hat + z * se
        out[f"{name}_log2fc"] = lfc
        out[f"{name}_log2fc_ci_low"] = lo / np.log(2.0)
        out[f"{name}_log2fc_ci_high"] = hi / np.log(2.0)
    covariate = None if pooled is None else kfit.FitRows(pooled)
    for k, name in enumerate(TESTS):
        lr = d.lr(k)
        p = scales.pvalues(lr, classes, k)
        if tset.weighting == "information":
            # the target's standard error in the pooled fit: what the null
            # genes' p-values do not depend on, and what power does
            w = information_weights(p, covariate.se(k))
        else:
            w = np.where(np.isfinite(p), 1.0, np.nan)
        out[f"pval_{name}"] = p
        out[f"padj_{name}"] = weighted_bh(p, np.nan_to_num(w))
        out[f"lr_{name}"] = lr
        out[f"null_scale_{name}"] = np.where(np.isfinite(lr), scales.of_genes(classes)[:, k],
                                             np.nan)
        out[f"null_atom_{name}"] = np.where(np.isfinite(lr),
                                            scales.atom_of_genes(classes)[:, k], np.nan)
        out[f"weight_{name}"] = w
        out[f"loglik_null_{name}"] = d.loglik_null(k)
    for g, t in (("1", t1), ("2", t2)):
        for c in ("burst_frequency", "burst_size", "k_on", "k_off", "k_syn"):
            out[f"{c}_{g}"] = t[c].to_numpy(float)
        out[f"regime_{g}"] = t["regime"].to_numpy()
        out[f"n_cells_{g}"] = t["n_cells"].to_numpy()
        out[f"mean_{g}"] = t["mean"].to_numpy(float)
        out[f"loglik_{g}"] = t["loglik"].to_numpy(float)
        out[f"converged_{g}"] = t["converged"].to_numpy(bool)
    if pooled is not None:
        out["regime_pooled"] = results_table(pooled, hist1.join(hist2), settings)[
            "regime"].to_numpy()
    else:
        out["regime_pooled"] = None
    out["tested"] = tested
    reg = np.stack([t1["regime"].astype(str).to_numpy(), t2["regime"].astype(str).to_numpy()])
    conv = (t1["converged"].to_numpy(bool) & t2["converged"].to_numpy(bool)
            & d.converged(0) & d.converged(1))
    flag = np.full(len(out), "ok", dtype=object)
    flag[~conv] = "not_converged"
    flag[np.isin(reg, ["poisson", "bimodal"]).any(axis=0)] = "limit_regime"
    flag[~identified] = "not_identified"
    flag[(reg == "all_zero").any(axis=0)] = "all_zero"
    flag[(reg == "too_few_cells").any(axis=0)] = "too_few_cells"
    flag[(reg == "too_large").any(axis=0)] = "too_large"
    out["flag"] = pd.Categorical(flag, categories=list(FLAGS))
    categories = list(t1["regime"].cat.categories)
    for c in ("regime_1", "regime_2", "regime_pooled"):
        out[c] = pd.Categorical(out[c].astype(object).where(out[c].notna(), None),
                                categories=categories)
    names = tuple(str(x) for x in group_names)
    out.attrs["groups"] = list(names)
    test = ("likelihood ratio; null law chi-square(1) x the mean of parametric-bootstrap "
            "statistics of the gene's class (pooled regime, groups in a limit regime)"
            if tset.calibration == "bootstrap" else "likelihood ratio, chi-square 1 df")
    padj = ("Benjamini-Hochberg over tested genes, weighted by information in the pooled fit"
            if tset.weighting == "information" else "Benjamini-Hochberg over tested genes")
    out.attrs["settings"] = {"ci": ci, "interval": interval, "min_cells": settings.min_cells,
                             **tset.record(), "test": test, "padj": padj}
    out.attrs["calibration"] = scales.record()
    return out


def differential_two_species(spliced1, unspliced1, spliced2, unspliced2, *, capture1, capture2,
                             genes=None, group_names=("1", "2"),
                             min_cells: int = config.MIN_CELLS, ci: float = config.CI,
                             round_counts: bool = False,
                             capture_rtol: float = config.CAPTURE_RTOL,
                             unspliced_factor: float = 1.0, n_jobs: int | None = None,
                             progress: bool | None = config.PROGRESS) -> pd.DataFrame:
    """Differential bursting between two groups of cells from two count layers.

    Each gene is fitted in each group with the telegraph model with splicing
    (:mod:`telegraph.jointfit`; rates in units of k_splice, assumed the same in
    both groups), then refitted with burst frequency, burst size or k_deg /
    k_splice shared by the groups (all other rates free in each); the
    likelihood-ratio statistics are referred to chi-square(1) and adjusted
    (Benjamini-Hochberg).

    Parameters
    ----------
    spliced1, unspliced1, spliced2, unspliced2 : matrices (cells x genes)
        The two layers of each group's cells.
    capture1, capture2 : telegraph.inputs.Capture
        Each group's capture (resolved on one scale).
    genes, group_names, min_cells, ci, round_counts, capture_rtol, n_jobs, progress
        As in :func:`differential`.
    unspliced_factor : float
        As in :func:`telegraph.fit`.

    Returns
    -------
    pandas.DataFrame
        Indexed by gene: ``<q>_log2fc`` (group 2 over group 1) with Wald
        ``_ci_low``/``_ci_high`` (from the two fits' observed information),
        ``pval_<q>``, ``padj_<q>``, ``lr_<q>`` for q in burst_frequency,
        burst_size, k_deg; per group ``burst_frequency_1``, ...,
        ``k_deg_2``, ``regime_1``/``_2``, ``n_cells_*``, ``mean_*``,
        ``loglik_*``, ``converged_*``; ``tested`` and ``flag``.
    """
    from scipy import stats  # here, not at the top: half a second of start-up
    settings = FitSettings(ci=ci, interval="wald", min_cells=min_cells, gof_min_expected=0.0)
    jhs, tables, rows = [], [], []
    for S, U, cap in ((spliced1, unspliced1, capture1), (spliced2, unspliced2, capture2)):
        jh = joint_count_histograms(U, S, capture=cap.efficiency, capture_rtol=capture_rtol,
                                    round_counts=round_counts, genes=genes)
        r = jointfit.fit_block(jh, settings, "telegraph", unspliced_factor,
                               n_jobs=n_threads(n_jobs))
        tab = rescale_syn(jointfit.joint_results_table(r, jh, settings,
                                                       unspliced_factor=unspliced_factor),
                          cap.syn_scale)
        jhs.append(jh)
        rows.append(r)
        tables.append(tab)
    t1, t2 = tables
    n = len(t1)
    z = stats.norm.ppf(0.5 + ci / 2.0)
    out = pd.DataFrame(index=t1.index.copy())
    out["gene"] = out.index.to_numpy()
    reg = np.stack([t1["regime"].astype(str).to_numpy(), t2["regime"].astype(str).to_numpy()])
    # genes too large for the exact law (fitted on their unspliced counts, or not at all)
    # have no joint likelihood to test with
    large = np.stack([t["fit_method"].astype(str).to_numpy() == "unspliced_marginal"
                      for t in (t1, t2)]).any(axis=0) | (reg == "too_large").any(axis=0)
    fitted = np.isin(reg, ["telegraph", "bursty"]).all(axis=0) & ~large
    lr = {q: np.full(n, np.nan) for q in jointfit.DIFF_TESTS}
    conv_null = np.ones(n, bool)
    for g in np.flatnonzero(fitted):
        r1, r2 = rows[0][g], rows[1][g]
        f1 = jointfit.gene_objective(jhs[0], g, unspliced_factor)
        f2 = jointfit.gene_objective(jhs[1], g, unspliced_factor)
        for q in jointfit.DIFF_TESTS:
            ll0, c0 = jointfit.shared_fit(f1, f2, r1["y"], r2["y"], q)
            lr[q][g] = max(0.0, 2.0 * (r1["loglik"] + r2["loglik"] - ll0))
            conv_null[g] &= bool(c0)
    for q in jointfit.DIFF_TESTS:
        e1, e2 = t1[q].to_numpy(float), t2[q].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            lfc = np.log2(e2 / e1)
        se = np.full(n, np.nan)
        A, k = jointfit._target_basis("telegraph", q)
        for g in np.flatnonzero(fitted):
            se[g] = math.hypot(jointfit._wald_se(rows[0][g]["info"], A, k),
                               jointfit._wald_se(rows[1][g]["info"], A, k)) / math.log(2.0)
        out[f"{q}_log2fc"] = lfc
        out[f"{q}_log2fc_ci_low"] = lfc - z * se
        out[f"{q}_log2fc_ci_high"] = lfc + z * se
    for q in jointfit.DIFF_TESTS:
        p = np.where(np.isfinite(lr[q]), stats.chi2.sf(lr[q], 1), np.nan)
        out[f"pval_{q}"] = p
        out[f"padj_{q}"] = benjamini_hochberg(p)
        out[f"lr_{q}"] = lr[q]
    for g, t in (("1", t1), ("2", t2)):
        for c in ("burst_frequency", "burst_size", "k_on", "k_off", "k_syn", "k_deg"):
            out[f"{c}_{g}"] = t[c].to_numpy(float)
        out[f"regime_{g}"] = t["regime"].to_numpy()
        out[f"n_cells_{g}"] = t["n_cells"].to_numpy()
        out[f"mean_{g}"] = t["mean"].to_numpy(float)
        out[f"loglik_{g}"] = t["loglik"].to_numpy(float)
        out[f"converged_{g}"] = t["converged"].to_numpy(bool)
    out["tested"] = fitted
    conv = t1["converged"].to_numpy(bool) & t2["converged"].to_numpy(bool) & conv_null
    flag = np.full(n, "ok", dtype=object)
    flag[~conv] = "not_converged"
    flag[(reg == "poisson").any(axis=0)] = "limit_regime"
    flag[(reg == "all_zero").any(axis=0)] = "all_zero"
    flag[(reg == "too_few_cells").any(axis=0)] = "too_few_cells"
    flag[large] = "too_large"
    out["flag"] = pd.Categorical(flag, categories=list(FLAGS))
    for c in ("regime_1", "regime_2"):
        out[c] = pd.Categorical(out[c].astype(str), categories=list(jointfit.JOINT_REGIMES))
    out.attrs["groups"] = [str(x) for x in group_names]
    out.attrs["settings"] = {"ci": ci, "interval": "wald", "min_cells": min_cells,
                             "species": "two", "test": "likelihood ratio, chi-square 1 df",
                             "padj": "Benjamini-Hochberg over tested genes"}
    return out
