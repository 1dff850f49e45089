"""Fitting an ``.h5ad``/``.zarr`` count matrix without loading it (backed mode).

:func:`fit_file` reads the matrix once, one slice at a time
(:mod:`telegraph.ondisk`), builds every gene's count histogram per capture
group, and fits the genes from the histograms
(:func:`telegraph.fitting.fit_histograms`). Peak memory is set by the slice
size (``chunk_size``, by default about ``config.CHUNK_ENTRIES`` stored
entries), not by the matrix. With ``client=`` the same work runs on a Dask
cluster whose workers read their own slices (:mod:`telegraph.cluster`).
Results equal those of :func:`telegraph.fit` on the same matrix in memory,
bit for bit.

Before any slice is read, the user's arguments are resolved against the
file's ``obs`` and ``var`` (:func:`plan`, through :mod:`telegraph.inputs`):
genes, capture (an obs column, a number, an array, or size factors, which
cost one extra pass over the file for the cells' totals) and k_deg.

Two layers are read in the same slices: unspliced and spliced counts (a
two-species fit, :mod:`telegraph.jointfit`), or new and old counts of a
metabolic-labelling experiment (:mod:`telegraph.labelfit`). A labelled
experiment is compressed as the two-species one is
(:func:`telegraph.ondisk.joint_histograms`, new counts in place of the
unspliced ones), its cells grouped by (pulse length, detection, capture
group), groups decided from the file's obs before any slice is read
(:func:`telegraph.histogram.labelled_groups`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import cluster, config, jointfit, labelfit
from .fitting import fit_histograms, with_capture
from .histogram import CountHistograms, LabelledGroups, capture_groups, labelled_groups
from .inputs import (Capture, FitSettings, KDeg, Labelling, check_labelled_layers,
                     gene_positions, resolve_capture, resolve_k_deg, resolve_labelling)
from .ondisk import OnDiskMatrix, ReadPlan, check_chunk_size, joint_by_genes, joint_histograms

__all__ = ["fit_file", "histograms_file", "plan", "FilePlan"]


@dataclass
class FilePlan:
    """Everything decided before any slice of the file is read.

    Attributes
    ----------
    read : telegraph.ondisk.ReadPlan
        What to read: the kept columns, the capture group of every cell.
    capture : telegraph.inputs.Capture
    k_deg : telegraph.inputs.KDeg
        Over the kept genes, in file order.
    order : ndarray of int64 or None
        Rows of the result in the order the user gave the genes (None: file
        order).
    new : telegraph.ondisk.OnDiskMatrix or None
        A labelled fit: the layer of new counts (``read.matrix`` then holds
        the old ones).
    labelling : telegraph.inputs.Labelling or None
        A labelled fit: every cell's pulse length and detection.
    groups : telegraph.histogram.LabelledGroups or None
        A labelled fit: the (pulse, detection, capture) groups, also in
        ``read.group_of_cell`` and ``read.group_capture``.
    """

    read: ReadPlan
    capture: Capture
    k_deg: KDeg
    order: np.ndarray | None
    new: OnDiskMatrix | None = None
    labelling: Labelling | None = None
    groups: LabelledGroups | None = None


def _path_of(path):
    if hasattr(path, "isbacked") and hasattr(path, "filename"):  # an AnnData
        if not path.isbacked:
            raise ValueError("this AnnData is in memory; use telegraph.fit / tg.tl.fit")
        return path.filename
    return path


def plan(path, *, layer=None, capture=None, k_deg=None, genes=None,
         capture_rtol: float = config.CAPTURE_RTOL, chunk_size=None,
         round_counts: bool = False, client=None, new_layer: str | None = None,
         t_label=None, detection=config.DETECTION) -> FilePlan:
    """Resolve the arguments of :func:`fit_file` against the file's obs and var.

    Nothing of the count matrix is read here, except each cell's total count
    with ``capture="total"`` (one pass; over both layers of a labelled fit).
    """
    m = OnDiskMatrix(_path_of(path), layer)
    chunk_size = check_chunk_size(chunk_size, m)
    check_labelled_layers(layer, new_layer, t_label)
    new = None
    if new_layer is not None:
        new = OnDiskMatrix(_path_of(path), new_layer)
        joint_by_genes(m, new)      # same cells and genes, formats read in the same slices
    var = m.var()
    all_names = np.asarray(var.index.astype(str), dtype=object)
    if all_names.shape[0] != m.n_genes:
        raise ValueError(f"{m.where}: {m.n_genes} genes in the matrix but "
                         f"{all_names.shape[0]} in var")
    if genes is None:
        columns = order = None
        names = all_names
    else:
        idx = gene_positions(genes, all_names, where=f"the var_names of {m.path}")
        columns, order = np.unique(idx, return_inverse=True)
        order = order.ravel()
        if np.array_equal(order, np.arange(columns.shape[0])):
            order = None
        names = all_names[columns]

    def totals():
        # a labelled fit: a cell's total is its new plus its old molecules (as in memory)
        layers = [m] if new is None else [m, new]
        if client is None:
            return sum(x.cell_totals(chunk_size) for x in layers)
        return sum(cluster.cell_totals(x, chunk_size, client=client) for x in layers)

    capture_column = isinstance(capture, str) and capture != "total"
    obs_needed = capture_column or (
        new is not None and (isinstance(t_label, str) or isinstance(detection, str)))
    obs = m.obs() if obs_needed else None
    where = f"the obs of {m.path}"
    labelling = None if new is None else (
        t_label if isinstance(t_label, Labelling) else
        resolve_labelling(t_label, detection, n_cells=m.n_cells, obs=obs, where=where))
    kd = resolve_k_deg(k_deg, n_genes=m.n_genes,
                       var=var if isinstance(k_deg, str) else None,
                       where=f"the var of {m.path}")
    if new is not None:
        labelfit.refuse_k_deg(kd)
    cap = resolve_capture(capture, n_cells=m.n_cells,
                          obs=obs if capture_column else None,
                          totals=totals, where=where)
    groups = None
    if labelling is not None:
        groups = labelled_groups(labelling.t_label, labelling.detection, cap.efficiency,
                                 n_cells=m.n_cells, capture_rtol=capture_rtol)
        group_of_cell, group_capture = groups.group_of_cell, groups.group_capture
    elif cap.efficiency is None:
        group_of_cell = np.zeros(m.n_cells, np.int64)
        group_capture = np.ones(1)
    else:
        group_of_cell, group_capture = capture_groups(
            cap.efficiency, max_groups=config.CAPTURE_BINS, rtol=capture_rtol,
            n_cells=m.n_cells)
    if columns is not None:
        kd = kd.subset(columns)
    read = ReadPlan(m, columns, names, group_of_cell, group_capture, chunk_size,
                    bool(round_counts))
    return FilePlan(read, cap, kd, order, new, labelling, groups)


def histograms_file(path, *, layer=None, capture=None, genes=None, round_counts: bool = False,
                    capture_rtol: float = config.CAPTURE_RTOL, chunk_size=None,
                    progress: bool = False) -> CountHistograms:
    """Per-gene count histograms of an on-disk matrix, in one pass of bounded memory.

    Parameters are those of :func:`fit_file`.  Returns the
    :class:`~telegraph.histogram.CountHistograms` of the selected genes (in
    file order) -- what :func:`telegraph.fit` would build from the same
    matrix in memory -- with capture already divided by its maximum when it
    came from size factors.
    """
    p = plan(path, layer=layer, capture=capture, genes=genes, capture_rtol=capture_rtol,
             chunk_size=chunk_size, round_counts=round_counts)
    return p.read.histograms(progress)


def fit_file(path, *, layer: str | None = None, capture=None, k_deg=None, genes=None,
             min_cells: int = config.MIN_CELLS, ci: float = config.CI,
             interval: str = config.INTERVAL, round_counts: bool = False,
             capture_rtol: float = config.CAPTURE_RTOL, chunk_size: int | None = None,
             n_jobs: int | None = None, progress: bool | None = config.PROGRESS, client=None,
             chunk_genes: int | None = None, profile=config.PROFILE,
             unspliced_layer: str | None = None, unspliced_factor: float = 1.0,
             model: str = "telegraph", new_layer: str | None = None, t_label=None,
             detection=config.DETECTION) -> pd.DataFrame:
    """Fit every gene of an ``.h5ad``/``.zarr`` count matrix without loading it.

    One pass over slices of the matrix builds each gene's count histogram per
    capture group; the genes are then fitted from the histograms.  The result
    equals ``telegraph.fit`` on the same matrix loaded into memory.

    Parameters
    ----------
    path : str, Path, or backed AnnData
        An ``.h5ad`` file or AnnData ``.zarr`` store (or an AnnData opened with
        ``backed="r"``, whose file is then read).
    layer : str, optional
        Layer holding the raw counts (default ``X``).
    capture : None, str, float, or array_like of shape (n_cells,)
        Per-cell capture efficiency in (0, 1] (fraction of a cell's molecules
        counted): an obs column name, one number for all cells, an array, or
        ``"total"`` (each cell's total count divided by the mean total, a
        relative size factor; costs one more pass over the file).  k_syn and
        burst size are then in molecules counted in a cell of average depth.
    k_deg : None, str, float, or array_like of shape (n_genes,)
        mRNA degradation rate per gene, per unit time (a var column name, one
        value, or an array over all genes of the file).  Without it all
        rates are in units of k_deg.
    genes : sequence of str, boolean mask, or integer indices, optional
        Fit only these genes (rows of the result in the order given); the
        other columns of the file are never counted.
    min_cells, ci, interval, profile, round_counts, capture_rtol, n_jobs, progress, chunk_genes
        As in :func:`telegraph.fit`.
    chunk_size : int, optional
        Cells per slice.  Peak memory grows with it: a CSR slice holds
        ``chunk_size`` rows of the matrix (data and indices), a dense one
        ``chunk_size * n_genes`` values; counting needs about three times
        that.  A CSC matrix is read in blocks of ``chunk_size * n_genes /
        n_cells`` genes.  Default: slices of about 8 million stored entries
        (``config.CHUNK_ENTRIES``; 7,000 cells of a 20,000-gene atlas at 6%
        non-zero), some 200 MB of working memory.
    client : dask.distributed.Client, optional
        Run on a Dask cluster: workers read their own slices from ``path``
        (which they must be able to open: a shared file system), histograms
        are tree-reduced on the workers, and blocks of genes are fitted there
        (:mod:`telegraph.cluster`).  Same results.  A labelled fit
        (``new_layer``) reads the file here and fits the genes there.
    unspliced_layer : str, optional
        Layer of unspliced counts: fit two species per gene (``layer`` then
        holds the spliced counts; :mod:`telegraph.jointfit`). Both layers are
        read in the same slices (with ``client`` by the workers, which then
        fit the genes where their histograms are). ``k_deg`` must not be given.
    unspliced_factor, model
        Two species: as in :func:`telegraph.fit`.
    new_layer : str, optional
        Layer of new (labelled) counts of a metabolic-labelling experiment
        (``layer`` then holds the old, unlabelled counts): fit the labelled
        model (:mod:`telegraph.labelfit`; rates per hour, k_deg and half_life
        estimated, ``k_deg`` must not be given). Both layers are read in the
        same slices (store them in the same format) into histograms of
        (new, old) pairs by (pulse length, detection, capture) group. With
        ``client`` the file is read here and the genes are fitted on the
        workers (only the histograms travel); with ``detection="estimate"``
        the estimate runs here, on threads. ``capture="total"`` sums both
        layers per cell.
    t_label : float, str, array_like or telegraph.inputs.Labelling
        With ``new_layer`` (required): pulse length in hours, one number, an
        obs column of the file holding each cell's, or an array over the
        cells.
    detection : float, str, array_like or "estimate"
        With ``new_layer``: probability in (0, 1] that a captured new molecule
        is seen as new (a number, an obs column, an array), or ``"estimate"``
        (one value estimated across genes, :func:`telegraph.fit`).

    Returns
    -------
    pandas.DataFrame
        As :func:`telegraph.fit`, one row per (selected) gene, indexed by the
        file's var names.
    """
    settings = FitSettings(ci=ci, interval=interval, min_cells=min_cells, profile=profile)
    check_labelled_layers(layer, new_layer, t_label, unspliced_layer)
    p = plan(path, layer=layer, capture=capture, k_deg=k_deg, genes=genes,
             capture_rtol=capture_rtol, chunk_size=chunk_size, round_counts=round_counts,
             client=client, new_layer=new_layer, t_label=t_label, detection=detection)
    if p.new is not None:
        # new counts as the "unspliced", old as the "spliced" layer of the joint pass
        lh = p.groups.histograms(joint_histograms(p.read, p.new, progress))
        res = labelfit.fit_labelling(lh, labelling=p.labelling, settings=settings,
                                     n_jobs=n_jobs, progress=progress, client=client)
    elif unspliced_layer is not None:
        if p.k_deg.given:
            raise ValueError("k_deg cannot be given to a two-species fit: it estimates k_deg "
                             "(in units of the splicing rate); leave k_deg=None")
        um = OnDiskMatrix(_path_of(path), unspliced_layer)
        if client is not None:      # the workers read both layers themselves
            res = cluster.fit_joint_read_plan(p.read, um, settings=settings, client=client,
                                              model=model, unspliced_factor=unspliced_factor,
                                              progress=progress)
        else:
            jh = joint_histograms(p.read, um, progress)
            res = jointfit.fit_joint_histograms(jh, settings=settings, model=model,
                                                unspliced_factor=unspliced_factor,
                                                n_jobs=n_jobs, progress=progress)
    elif client is not None:
        res = cluster.fit_read_plan(p.read, k_deg=p.k_deg, settings=settings, client=client,
                                    progress=progress)
    else:
        hist = p.read.histograms(progress)
        res = fit_histograms(hist, k_deg=p.k_deg, settings=settings, n_jobs=n_jobs,
                             progress=progress, chunk_genes=chunk_genes)
    res = with_capture(res, p.capture)
    if p.order is not None:
        attrs = dict(res.attrs)
        res = res.iloc[p.order]
        res.attrs.update(attrs)
    return res
