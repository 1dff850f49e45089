"""``tg.tl.fit``: burst kinetics of every gene of an AnnData object."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

from .. import __version__, config
from ..backed import fit_file
from ..layerfit import fit as _fit
from ..get import counts, fit_columns
from ..inputs import (capture_record, check_labelled_layers, gene_positions, k_deg_record,
                      resolve_capture, resolve_k_deg, resolve_labelling, row_totals,
                      totals_of)

__all__ = ["fit", "store_results"]


def fit(adata, *, layer: str | None = None, capture=None, k_deg=None, genes=None,
        min_cells: int = config.MIN_CELLS, ci: float = config.CI,
        interval: str = config.INTERVAL, round_counts: bool = False,
        capture_rtol: float = config.CAPTURE_RTOL, n_jobs: int | None = None,
        progress: bool | None = config.PROGRESS, key_added: str = config.FIT_KEY, copy: bool = False,
        client=None, chunk_size: int | None = None, profile=config.PROFILE,
        unspliced_layer: str | None = None, unspliced_factor: float = 1.0,
        model: str = "telegraph", new_layer: str | None = None, t_label=None,
        detection=config.DETECTION):
    """Fit burst kinetics to every gene of ``adata`` (scanpy style).

    Parameters
    ----------
    adata : anndata.AnnData
        Cells x genes. Counts must be raw integer UMI counts: after
        ``sc.pp.normalize_total``/``log1p`` keep them in a layer and pass
        ``layer=``.
    layer : str, optional
        Layer holding the counts (default ``adata.X``).
    capture : str, float, array_like, or None
        Per-cell capture efficiency in (0, 1]: an ``adata.obs`` column name,
        one number for every cell, or an array; ``"total"`` uses total counts
        (over all genes) as relative size factors (k_syn then in molecules
        counted per unit time in a cell of average depth).
    k_deg : str, array_like, float, or None
        mRNA degradation rate per gene, per unit time (a ``var`` column name,
        an array over all genes, or one value for all genes). Without it all
        rates are in units of k_deg.
    genes : sequence of str or boolean mask, optional
        Fit only these genes; the others get NaN.
    min_cells, ci, interval, profile, round_counts, capture_rtol, n_jobs, progress, client
        As in :func:`telegraph.fit` (``client``: a ``dask.distributed.Client``).
    chunk_size : int, optional
        For an AnnData opened with ``backed="r"``: cells read per slice
        (default: about 8 million stored entries per slice). A backed AnnData
        is fitted from its file without loading the matrix
        (:func:`telegraph.fit_file`; with ``client``, the Dask workers read
        the file themselves, except for a labelled fit, whose file is read
        here and whose genes are fitted on the workers). Obs columns named
        by ``capture``, ``t_label`` or ``detection`` are then read from the
        file.
    unspliced_layer : str, optional
        Layer of unspliced counts (velocyto, STARsolo, kb-python: ``"unspliced"``;
        then ``layer="spliced"``): fit the telegraph model with splicing to
        both layers (:mod:`telegraph.jointfit`). Rates are then in units of the
        splicing rate and ``k_deg`` (of spliced molecules) is estimated, with
        ``k_deg_ci_low``/``k_deg_ci_high`` and ``k_deg_flag``; ``k_deg`` must
        not be given.
    unspliced_factor, model
        Two species: as in :func:`telegraph.fit`.
    new_layer : str, optional
        Layer of new (labelled) counts of a metabolic-labelling experiment
        (then ``layer=`` holds the old, unlabelled counts, e.g. ``layer="old",
        new_layer="new"``): fit the labelled model (:mod:`telegraph.labelfit`).
        Rates are then per hour, with ``k_deg``, ``half_life`` and their
        intervals; ``k_deg`` must not be given. A backed AnnData is fitted
        from its file, both layers read in the same slices (same results).
    t_label : float, str or array_like
        With ``new_layer``: pulse length in hours, one number for every cell,
        an ``adata.obs`` column of per-cell pulse lengths (several pulse
        lengths: a time course), or an array.
    detection : float, str or array_like
        With ``new_layer``: probability in (0, 1] that a captured new molecule
        is seen as new (default 1); a number, an obs column or an array, or
        ``"estimate"``: one probability estimated across genes and every gene
        fitted at it (as in :func:`telegraph.fit`); the estimate, its
        interval and standard error go to
        ``adata.uns[key_added]["labelling"]["detection_estimate"]``, and the
        genes' intervals are conditional on it. An obs column named
        "estimate" is refused as ambiguous (rename it).
    key_added : str
        Results go to ``adata.var[f"{key_added}_{column}"]`` and the settings
        to ``adata.uns[key_added]``.
    copy : bool
        Work on (and return) a copy instead of modifying ``adata``.

    Returns
    -------
    None, or the modified copy of ``adata`` when ``copy=True``. Per-gene
    results are the columns of :func:`telegraph.fit` in ``adata.var`` (for
    example ``telegraph_burst_frequency``, ``telegraph_burst_size_ci_low``,
    ``telegraph_regime``); read them back with
    :func:`telegraph.get.kinetics_df`. ``adata.uns[key_added]`` holds the
    settings, where the capture and k_deg came from (so that
    :func:`telegraph.pl.distribution` and :func:`telegraph.get.capture`
    reuse them) and the telegraph version.
    """
    adata = adata.copy() if copy else adata
    names = np.asarray(adata.var_names.astype(str))
    idx = None if genes is None else gene_positions(genes, names, where="adata.var_names")
    common = dict(min_cells=min_cells, ci=ci, interval=interval, profile=profile,
                  round_counts=round_counts,
                  capture_rtol=capture_rtol, n_jobs=n_jobs, progress=progress, client=client)
    joint = {} if unspliced_layer is None else dict(unspliced_factor=unspliced_factor,
                                                    model=model)
    if new_layer is not None:
        check_labelled_layers(layer, new_layer, t_label, unspliced_layer)
        if getattr(adata, "isbacked", False):
            res = fit_file(adata.filename, layer=layer, capture=capture, k_deg=k_deg,
                           genes=idx, chunk_size=chunk_size, new_layer=new_layer,
                           t_label=t_label, detection=detection, **common)
        else:
            X = counts(adata, layer)
            N = counts(adata, new_layer)
            lab = resolve_labelling(t_label, detection, n_cells=adata.n_obs, obs=adata.obs)
            cap = resolve_capture(capture, n_cells=adata.n_obs, obs=adata.obs,
                                  totals=lambda: row_totals(X) + row_totals(N),
                                  where="adata.obs")
            kd = resolve_k_deg(k_deg, n_genes=adata.n_vars, var=adata.var, where="adata.var")
            if idx is not None:
                X, N, kd, names = X[:, idx], N[:, idx], kd.subset(idx), names[idx]
            res = _fit(X, capture=cap, k_deg=kd, genes=names, new=N, t_label=lab, **common)
        store_results(adata, res, key_added=key_added, layer=layer, capture=capture,
                      k_deg=k_deg, new_layer=new_layer)
        return adata if copy else None
    if getattr(adata, "isbacked", False):
        res = fit_file(adata.filename, layer=layer, capture=capture, k_deg=k_deg, genes=idx,
                       chunk_size=chunk_size, unspliced_layer=unspliced_layer, **joint,
                       **common)
    else:
        X = counts(adata, layer)
        if unspliced_layer is not None:
            joint["unspliced"] = counts(adata, unspliced_layer)
        cap = resolve_capture(capture, n_cells=adata.n_obs, obs=adata.obs,
                              totals=totals_of(X), where="adata.obs")
        kd = resolve_k_deg(k_deg, n_genes=adata.n_vars, var=adata.var, where="adata.var")
        if idx is not None:
            X, kd, names = X[:, idx], kd.subset(idx), names[idx]
            if "unspliced" in joint:
                joint["unspliced"] = joint["unspliced"][:, idx]
        res = _fit(X, capture=cap, k_deg=kd, genes=names, **joint, **common)
    store_results(adata, res, key_added=key_added, layer=layer, capture=capture, k_deg=k_deg,
                  unspliced_layer=unspliced_layer)
    return adata if copy else None


def store_results(adata, res: pd.DataFrame, *, key_added: str = config.FIT_KEY,
                  layer: str | None = None, capture=None, k_deg=None,
                  unspliced_layer: str | None = None, new_layer: str | None = None) -> None:
    """Write a result table of :func:`telegraph.fit` into ``adata.var``/``adata.uns``.

    Results of an earlier fit under ``key_added`` are replaced. Genes missing
    from ``res`` get NaN (and "not_fitted", converged False). ``capture`` and
    ``k_deg`` are the arguments the fit was given (as the user gave them or
    resolved, :mod:`telegraph.inputs`): their records go to
    ``adata.uns[key_added]`` with the settings in ``res.attrs``.
    """
    stale = fit_columns(adata, key_added, stale=True)   # not another key's it prefixes
    if stale:
        adata.var.drop(columns=stale, inplace=True)
    settings = dict(res.attrs.get("settings", {}))
    res_attrs = dict(res.attrs)
    res = res.drop(columns=["gene"])
    integer = {c for c in res.columns
               if pd.api.types.is_integer_dtype(res[c]) and not pd.api.types.is_bool_dtype(res[c])}
    fitted = pd.Index(res.index)
    res = res.reindex(adata.var_names.astype(str))
    missing = ~res.index.isin(fitted)
    for col in res.columns:
        series = res[col]
        # keep h5ad-writable dtypes for genes that were not fitted
        # (converged first: reindexing made it object dtype, and it must stay bool)
        if col == "converged":
            values = series.astype(object).where(~missing, False).astype(bool).to_numpy()
        elif isinstance(series.dtype, pd.CategoricalDtype) or series.dtype == object:
            values = series.astype(object).where(~missing, "not_fitted").astype(str).to_numpy()
        elif col in integer:
            # integers stay integers (nullable: a gene that was not fitted has none), the
            # same dtype whether or not every gene was fitted
            values = pd.array(series, dtype="Int64")
        else:
            values = series.to_numpy(dtype=float)
        adata.var[f"{key_added}_{col}"] = values
    adata.uns[key_added] = {
        "version": __version__,
        "columns": [str(c) for c in res.columns],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "layer": "X" if layer is None else layer,
        **({} if unspliced_layer is None else {"unspliced_layer": unspliced_layer}),
        **({} if new_layer is None else {"new_layer": new_layer,
                                         "labelling": res_attrs.get("labelling", {})}),
        "capture": capture_record(capture),
        "k_deg": k_deg_record(k_deg),
        **settings,
        "n_genes_fitted": int(len(fitted)),
    }
