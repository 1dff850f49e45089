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
code, all genes in parallel (:mod:`telegraph.kernels.differential`). The
statistic 2 (l1 + l2 - l0) is referred to chi-square(1); log2 fold changes come
with profile-likelihood intervals (inverting the same statistic, so an interval
excludes 0 exactly when p < 1 - ci) or Wald intervals.

The test assumes k_deg is the same in both groups (a snapshot identifies rates
only in units of k_deg): a change in mRNA stability would show up as a change
in burst frequency. For the two alleles of the same cells
(:func:`telegraph.tl.differential_bursting_alleles`) the alleles are treated as
independent given the cell's capture efficiency.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from scipy import special

from . import blocks, config
from .fitting import chi2_1_ppf, fit_raw, results_table
from .histogram import count_histograms
from .inputs import FitSettings, rescale_syn, resolve_captures, totals_of
from .kernels import differential as kdiff
from .kernels import fit as kfit

__all__ = ["differential", "differential_histograms", "benjamini_hochberg", "TESTS"]

log = logging.getLogger("telegraph")

#: the two tests, in the order of the kernel's result blocks
TESTS = ("burst_frequency", "burst_size")

#: flag values of the result table
FLAGS = ("ok", "limit_regime", "not_converged", "too_few_cells", "all_zero")


def benjamini_hochberg(pvals):
    """Benjamini-Hochberg adjusted p-values (step-up, FDR control).

    NaN entries are left out of the family and stay NaN.
    """
    p = np.asarray(pvals, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    q = p[ok]
    order = np.argsort(q)
    ranked = q[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def differential(counts1, counts2, *, capture1=None, capture2=None, genes=None,
                 group_names=("1", "2"), min_cells: int = config.MIN_CELLS,
                 ci: float = config.CI, interval: str = config.INTERVAL,
                 round_counts: bool = False, capture_rtol: float = config.CAPTURE_RTOL,
                 n_jobs: int | None = None, progress: bool | None = config.PROGRESS,
                 chunk_genes: int | None = None, totals=None) -> pd.DataFrame:
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
    round_counts, capture_rtol, n_jobs, progress, chunk_genes
        As in :func:`telegraph.fit`.
    totals : pair of array_like, optional
        With ``capture="total"``: the per-cell totals to take size factors
        from (default: each matrix's own cell totals). The allele test passes
        the totals of both alleles of each cell here, so that the two alleles
        of a cell share its size factor.

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
    if totals is None:
        totals = (totals_of(counts1), totals_of(counts2))
    c1, c2 = resolve_captures([capture1, capture2], n_cells=[shapes[0][0], shapes[1][0]],
                              totals=totals)
    h1 = count_histograms(counts1, capture=c1.efficiency, capture_rtol=capture_rtol,
                          round_counts=round_counts, genes=genes)
    h2 = count_histograms(counts2, capture=c2.efficiency, capture_rtol=capture_rtol,
                          round_counts=round_counts, genes=genes)
    res = differential_histograms(h1, h2, group_names=group_names, min_cells=min_cells, ci=ci,
                                  interval=interval, n_jobs=n_jobs, progress=progress,
                                  chunk_genes=chunk_genes, syn_scale=c1.syn_scale)
    res.attrs["capture"] = {"group1": c1.record(arrays=False),
                            "group2": c2.record(arrays=False)}
    return res


def _slice_hist(hist, start, stop):
    ip = hist.indptr[start:stop + 1]
    lo, hi = ip[0], ip[-1]
    return (np.ascontiguousarray(ip - lo, dtype=np.int64),
            np.ascontiguousarray(hist.values[lo:hi], dtype=np.int64),
            np.ascontiguousarray(hist.groups[lo:hi], dtype=np.int64),
            np.ascontiguousarray(hist.weights[lo:hi], dtype=float),
            np.ascontiguousarray(hist.capture, dtype=float))


def differential_histograms(hist1, hist2, *, group_names=("1", "2"),
                            min_cells: int = config.MIN_CELLS, ci: float = config.CI,
                            interval: str = config.INTERVAL, n_jobs: int | None = None,
                            progress: bool | None = config.PROGRESS, chunk_genes: int | None = None,
                            syn_scale: float = 1.0, max_iter: int = config.MAX_ITER) -> pd.DataFrame:
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
        - ``pval_burst_frequency``, ``pval_burst_size``: likelihood-ratio
          test p-values (chi-square, 1 df) of equal burst frequency (resp.
          size) with all other rates free in each group;
          ``padj_*``: Benjamini-Hochberg adjusted over the tested genes;
          ``lr_*``: the statistics 2 (l1 + l2 - l0); ``loglik_null_*``: l0,
          the maximum log-likelihood of the two groups under the null;
        - per group g in (1, 2): ``burst_frequency_g``, ``burst_size_g``,
          ``k_on_g``, ``k_off_g``, ``k_syn_g`` (units of k_deg), ``regime_g``,
          ``n_cells_g``, ``mean_g`` (mean observed count), ``loglik_g``,
          ``converged_g``;
        - ``tested`` (bool) and ``flag``: ``ok``; ``limit_regime`` (a group
          is in the Poisson or bimodal regime, where burst frequency or size
          is not identified: the test is then conservative);
          ``not_converged``; ``too_few_cells`` / ``all_zero`` (not tested).

        ``attrs["groups"]`` holds the group names, ``attrs["settings"]`` the
        settings.
    """
    if hist1.n_genes != hist2.n_genes:
        raise ValueError(f"the groups have histograms of {hist1.n_genes} and {hist2.n_genes} "
                         "genes; they must describe the same genes")
    if (hist1.genes is not None and hist2.genes is not None
            and not np.array_equal(hist1.genes, hist2.genes)):
        raise ValueError("the two groups' histograms name different genes")
    FitSettings(ci=ci, interval=interval, min_cells=min_cells)  # the user's settings are valid
    n_genes = hist1.n_genes
    # the per-group fits need no intervals or goodness of fit here
    settings = FitSettings(ci=ci, interval="wald", min_cells=min_cells, profile=(),
                           max_iter=max_iter, gof_min_expected=0.0)
    drop = chi2_1_ppf(ci) / 2.0
    want_ci = interval == "profile"
    raw1, raw2, rawd = [], [], []
    t0 = time.perf_counter()
    with blocks.gene_blocks(n_genes, chunk_genes=chunk_genes, n_jobs=n_jobs,
                            progress=progress, desc="telegraph test") as chunks:
        for start, stop in chunks:
            r1 = fit_raw(hist1, settings, slice(start, stop))
            r2 = fit_raw(hist2, settings, slice(start, stop))
            testable = _testable(r1) & _testable(r2)
            per_gene = (*_group_model(r1), _limits(r1), *_group_model(r2), _limits(r2),
                        testable)
            rd = np.empty((stop - start, kdiff.N_DIFF_RESULT))

            def piece(a, b, start=start, per_gene=per_gene, rd=rd):
                # genes start + a .. start + b (a serial nogil kernel, blocks.on_threads)
                kdiff.differential_genes(
                    *_slice_hist(hist1, start + a, start + b),
                    *_slice_hist(hist2, start + a, start + b),
                    *(np.ascontiguousarray(x[a:b]) for x in per_gene),
                    float(drop), bool(want_ci), int(max_iter), rd[a:b])

            blocks.on_threads(piece, hist1.indptr[start:stop + 1]
                              + hist2.indptr[start:stop + 1])
            raw1.append(r1)
            raw2.append(r2)
            rawd.append(rd)
    cat = (lambda rows, width: np.vstack(rows) if rows else np.empty((0, width)))
    raw1 = cat(raw1, kfit.N_RESULT)
    raw2 = cat(raw2, kfit.N_RESULT)
    rawd = cat(rawd, kdiff.N_DIFF_RESULT)
    log.info("tested %d genes in %.1f s", n_genes, time.perf_counter() - t0)
    return _table(raw1, raw2, rawd, hist1, hist2, settings, ci=ci, interval=interval,
                  syn_scale=syn_scale, group_names=group_names)


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


def _table(raw1, raw2, rawd, hist1, hist2, settings, *, ci, interval, syn_scale, group_names):
    from scipy import stats  # here, not at the top: half a second of start-up
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
            se = d.se(k)
            lo = d_hat - z * se
            hi = d_hat + z * se
        out[f"{name}_log2fc"] = lfc
        out[f"{name}_log2fc_ci_low"] = lo / np.log(2.0)
        out[f"{name}_log2fc_ci_high"] = hi / np.log(2.0)
    for k, name in enumerate(TESTS):
        lr = d.lr(k)
        p = np.where(np.isfinite(lr), stats.chi2.sf(lr, 1), np.nan)
        out[f"pval_{name}"] = p
        out[f"padj_{name}"] = benjamini_hochberg(p)
        out[f"lr_{name}"] = lr
        out[f"loglik_null_{name}"] = d.loglik_null(k)
    for g, t in (("1", t1), ("2", t2)):
        for c in ("burst_frequency", "burst_size", "k_on", "k_off", "k_syn"):
            out[f"{c}_{g}"] = t[c].to_numpy(float)
        out[f"regime_{g}"] = t["regime"].to_numpy()
        out[f"n_cells_{g}"] = t["n_cells"].to_numpy()
        out[f"mean_{g}"] = t["mean"].to_numpy(float)
        out[f"loglik_{g}"] = t["loglik"].to_numpy(float)
        out[f"converged_{g}"] = t["converged"].to_numpy(bool)
    out["tested"] = tested
    reg = np.stack([t1["regime"].astype(str).to_numpy(), t2["regime"].astype(str).to_numpy()])
    conv = (t1["converged"].to_numpy(bool) & t2["converged"].to_numpy(bool)
            & d.converged(0) & d.converged(1))
    flag = np.full(len(out), "ok", dtype=object)
    flag[~conv] = "not_converged"
    flag[np.isin(reg, ["poisson", "bimodal"]).any(axis=0)] = "limit_regime"
    flag[(reg == "all_zero").any(axis=0)] = "all_zero"
    flag[(reg == "too_few_cells").any(axis=0)] = "too_few_cells"
    out["flag"] = pd.Categorical(flag, categories=list(FLAGS))
    for c in ("regime_1", "regime_2"):
        out[c] = pd.Categorical(out[c].astype(str), categories=list(t1["regime"].cat.categories))
    names = tuple(str(x) for x in group_names)
    out.attrs["groups"] = list(names)
    out.attrs["settings"] = {"ci": ci, "interval": interval, "min_cells": settings.min_cells,
                             "test": "likelihood ratio, chi-square 1 df",
                             "padj": "Benjamini-Hochberg over tested genes"}
    return out
