"""The public fit: every gene of a count matrix, one layer or two.

:func:`fit` resolves the user's arguments once (:mod:`telegraph.inputs`) and hands
the counts to the engine of their model: one layer to the stationary telegraph
fit (:mod:`telegraph.fitting`), unspliced + spliced layers to the two-species fit
(:mod:`telegraph.jointfit`), new + old layers of a labelling experiment to the
labelled fit (:mod:`telegraph.labelfit`). The engines do not import this module,
so one engine may use another (the two-species fit falls back on the one-species
engine for the unspliced counts of genes too large for its lattice).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import config, jointfit, labelfit
from .fitting import compile_ahead, fit_histograms, with_capture
from .histogram import count_histograms
from .inputs import (FitSettings, Labelling, resolve_capture, resolve_k_deg, resolve_labelling,
                     row_totals, totals_of)

__all__ = ["fit"]


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
        Cells are grouped by capture efficiency: with more than
        ``config.CAPTURE_BINS`` (256) distinct values, cells whose capture
        differs by less than a factor ``1 + capture_rtol`` share a group whose
        value is their mean capture (the expected total count is kept
        exactly). 0 keeps every distinct value (exact; the histogram then
        has a bin per cell). The telegraph law is evaluated on coarser groups
        and expanded in log capture to the fine ones (docs/maths.md,
        "Fitting"), so finer groups cost little more per evaluation: 0.01
        makes the likelihood about 3 times more accurate than the default
        for about 1.5 times the time.
    n_jobs : int or None
        Workers (default: all cores): threads for the one-species fit's
        compiled kernels; for two-species and labelled fits of
        ``config.PROCESSES_FROM_GENES`` genes or more, worker processes
        (``config.GENE_WORKERS``; their Python between kernel calls holds the
        GIL, so threads scale poorly), started once per session.
    progress : bool or None
        Progress bar on stderr: None (default) when stderr is a terminal or
        in a Jupyter kernel (none in a log file), True always, False never.
        The first call in a fresh installation compiles the kernels (15-20 s
        with two cores, about half a minute with one) before the bar moves.
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
    if labelling is None and unspliced is None and client is None:
        compile_ahead(settings)   # a cold first fit: compiling starts on a second core now
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
