"""``tg.tl.differential_bursting``: burst kinetics compared between groups of
cells or between the two alleles of the same cells (scanpy style)."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

from .. import __version__, config
from ..differential import differential
from ..get import counts
from ..inputs import capture_record, gene_positions, resolve_capture, row_totals

__all__ = ["differential_bursting", "differential_bursting_alleles"]


def _store(adata, key_added, res, params):
    params = dict(params)
    params["version"] = __version__
    params["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    settings = res.attrs.get("settings", {})
    for key in ("ci", "interval", "calibration", "weighting"):
        params[key] = settings.get(key)
    table = res.drop(columns=["gene"])
    # h5ad stores categorical and plain columns; keep names as strings
    table.index = table.index.astype(str)
    adata.uns[key_added] = {"params": params, "results": table}


def _columns(adata, genes):
    """(positions or None, names) of the genes to test."""
    names = np.asarray(adata.var_names.astype(str))
    if genes is None:
        return None, names
    idx = gene_positions(genes, names, where="adata.var_names")
    return idx, names[idx]


def differential_bursting(adata, groupby: str, *, groups=None, layer: str | None = None,
                          capture=None, genes=None,
                          key_added: str = config.DIFFERENTIAL_KEY,
                          min_cells: int = config.MIN_CELLS, ci: float = config.CI,
                          interval: str = config.INTERVAL,
                          calibration: str = config.CALIBRATION,
                          weighting: str = config.WEIGHTING, round_counts: bool = False,
                          capture_rtol: float = config.CAPTURE_RTOL,
                          n_jobs: int | None = None, progress: bool | None = config.PROGRESS) -> pd.DataFrame:
    """Test every gene for a change in burst frequency and in burst size
    between two groups of cells.

    For each gene the two groups are fitted separately, then refitted under
    "equal burst frequency" (k_on / k_deg shared, k_off and k_syn free in each
    group) and under "equal burst size" (k_syn / k_off shared, k_on and k_off
    free in each group); likelihood-ratio statistics are referred to their
    null law calibrated on the data (chi-square(1) scaled per regime class of
    the pooled fit, by a parametric bootstrap) and adjusted for multiple
    testing (Benjamini-Hochberg weighted by each gene's information). The
    mRNA degradation rate is assumed equal in the two groups. Without
    ``capture``, a warning (:class:`telegraph.differential.DepthWarning`)
    says when the groups' median total counts differ by more than
    ``config.DEPTH_RATIO_WARN``: a depth difference would then show up as
    differential bursting.

    Parameters
    ----------
    adata : anndata.AnnData
        Cells x genes with raw integer UMI counts in ``X`` or ``layer``.
    groupby : str
        ``adata.obs`` column holding the groups.
    groups : pair of labels, optional
        (group 1, group 2): fold changes are group 2 over group 1. Default:
        the two categories of ``groupby`` when it has exactly two.
    layer : str, optional
        Layer holding the counts (default ``X``).
    capture : str, float, array_like, or None
        Per-cell capture efficiency in (0, 1] (an obs column name, one
        number, or an array over all cells of ``adata``), or ``"total"``
        (size factors from total counts over all genes, relative to the mean
        of the cells of both groups).
    genes : sequence of str or boolean mask, optional
        Test only these genes (size factors still come from all genes).
    key_added : str
        The results are stored in ``adata.uns[key_added]`` as a dict with
        ``"results"`` (the returned table) and ``"params"``.
    min_cells, ci, interval, calibration, weighting, round_counts, capture_rtol, n_jobs, progress
        As in :func:`telegraph.differential.differential`.

    Returns
    -------
    pandas.DataFrame
        Indexed by gene; see :func:`telegraph.differential.differential_histograms`
        for the columns (``burst_frequency_log2fc``, ``burst_size_log2fc`` with
        ``_ci_low``/``_ci_high``, ``pval_*``, ``padj_*``, per-group estimates
        ``*_1``/``*_2`` in units of k_deg, ``regime_1``/``regime_2``,
        ``regime_pooled``, ``flag``).
    """
    if groupby not in adata.obs:
        raise KeyError(f"groupby column {groupby!r} not found in adata.obs "
                       f"(columns: {', '.join(map(str, adata.obs.columns)) or 'none'})")
    col = adata.obs[groupby]
    labels = col.astype(str).to_numpy()
    present = (list(col.cat.categories.astype(str)) if isinstance(col.dtype, pd.CategoricalDtype)
               else list(pd.unique(labels)))
    if groups is None:
        if len(present) != 2:
            raise ValueError(f"obs[{groupby!r}] has {len(present)} groups "
                             f"({', '.join(map(repr, present[:10]))}); choose two with "
                             "groups=(group1, group2)")
        groups = tuple(present)
    if isinstance(groups, str) or len(groups) != 2:
        raise ValueError(f"groups must be a pair (group1, group2); got {groups!r}")
    g1, g2 = (str(g) for g in groups)
    if g1 == g2:
        raise ValueError(f"groups must be two different groups; got {g1!r} twice")
    masks = []
    for g in (g1, g2):
        m = labels == g
        if not m.any():
            raise ValueError(f"group {g!r} has no cells in obs[{groupby!r}] (groups: "
                             f"{', '.join(map(repr, present[:20]))})")
        masks.append(m)
    X = counts(adata, layer)
    cells = [np.flatnonzero(m) for m in masks]
    both = np.concatenate(cells)
    # depth (and size factors) from all genes, not only the tested ones
    all_totals = []

    def totals(g):
        def get():
            if not all_totals:
                all_totals.append(row_totals(X))
            return all_totals[0][cells[g]]
        return get

    if isinstance(capture, str) and capture == "total":
        # size factors relative to the mean total of the compared cells
        cap = resolve_capture("total", n_cells=both.shape[0], totals=row_totals(X)[both])
    else:
        cap = resolve_capture(capture, n_cells=adata.n_obs, obs=adata.obs,
                              where="adata.obs").subset(both)
    n1 = cells[0].shape[0]
    c1, c2 = cap.subset(slice(0, n1)), cap.subset(slice(n1, None))
    idx, names = _columns(adata, genes)
    if idx is not None:
        X = X[:, idx]
    res = differential(X[cells[0]], X[cells[1]], capture1=c1, capture2=c2, genes=names,
                       group_names=(g1, g2), min_cells=min_cells, ci=ci, interval=interval,
                       calibration=calibration, weighting=weighting,
                       round_counts=round_counts, capture_rtol=capture_rtol, n_jobs=n_jobs,
                       progress=progress, totals=(totals(0), totals(1)))
    _store(adata, key_added, res, {
        "kind": "groups", "groupby": groupby, "groups": [g1, g2],
        "n_cells": [int(masks[0].sum()), int(masks[1].sum())],
        "layer": "X" if layer is None else layer, "capture": capture_record(capture, arrays=False),
        "min_cells": int(min_cells)})
    return res


def differential_bursting_alleles(adata, layers, *, capture=None, genes=None,
                                  key_added: str = config.ALLELES_KEY,
                                  min_cells: int = config.MIN_CELLS, ci: float = config.CI,
                                  interval: str = config.INTERVAL,
                                  calibration: str = config.CALIBRATION,
                                  weighting: str = config.WEIGHTING, round_counts: bool = False,
                                  capture_rtol: float = config.CAPTURE_RTOL,
                                  n_jobs: int | None = None,
                                  progress: bool | None = config.PROGRESS) -> pd.DataFrame:
    """Test every gene for different burst frequency and burst size on its
    two alleles (e.g. the two parental alleles of an F1 hybrid).

    ``layers`` = (allele 1, allele 2) name two layers of allele-resolved
    counts of the same cells (NaN = the allele could not be called in that
    cell; dropped per gene). The alleles are treated as independent given
    the cell's capture efficiency, as in the two-state model of each allele.
    With ``capture="total"`` each cell's size factor comes from the counts of
    both alleles. Fold changes are allele 2 over allele 1. Other parameters and the result
    as in :func:`differential_bursting`.
    """
    if isinstance(layers, str) or len(layers) != 2:
        raise ValueError(f"layers must be a pair of layer names (allele1, allele2); "
                         f"got {layers!r}")
    l1, l2 = layers
    if l1 == l2:
        raise ValueError(f"the two alleles must be different layers; got {l1!r} twice")
    X1 = counts(adata, l1)
    X2 = counts(adata, l2)
    # with "total", one size factor per cell from both alleles' counts over all genes
    cap = resolve_capture(capture, n_cells=adata.n_obs, obs=adata.obs,
                          totals=lambda: row_totals(X1) + row_totals(X2), where="adata.obs")
    idx, names = _columns(adata, genes)
    if idx is not None:
        X1, X2 = X1[:, idx], X2[:, idx]
    # the alleles of the same cells share their depth: no depth check
    res = differential(X1, X2, capture1=cap, capture2=cap, genes=names,
                       group_names=(str(l1), str(l2)), min_cells=min_cells, ci=ci,
                       interval=interval, calibration=calibration, weighting=weighting,
                       round_counts=round_counts, capture_rtol=capture_rtol, n_jobs=n_jobs,
                       progress=progress, depth_check=False)
    _store(adata, key_added, res, {
        "kind": "alleles", "layers": [str(l1), str(l2)], "groups": [str(l1), str(l2)],
        "n_cells": [int(adata.n_obs), int(adata.n_obs)],
        "capture": capture_record(capture, arrays=False), "min_cells": int(min_cells)})
    return res
