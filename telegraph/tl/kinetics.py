"""``tg.tl.fit``: burst kinetics of every gene of an AnnData object."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

from ..fitting import fit as _fit

__all__ = ["fit", "get_counts", "get_capture", "get_k_deg"]


def get_counts(adata, layer=None):
    """The cells x genes count matrix of ``adata`` (``X`` or a layer), unchanged."""
    if layer is None:
        X = adata.X
        if X is None:
            raise ValueError("adata.X is empty; pass layer= naming the layer that holds counts")
        return X
    if layer not in adata.layers:
        avail = ", ".join(map(repr, adata.layers.keys())) or "none"
        raise KeyError(f"layer {layer!r} not found in adata.layers (available: {avail})")
    return adata.layers[layer]


def get_capture(adata, capture):
    """Resolve ``capture`` given as an obs column name, "total", an array or None."""
    if capture is None or (isinstance(capture, str) and capture == "total"):
        return capture
    if isinstance(capture, str):
        if capture not in adata.obs:
            raise KeyError(f"capture column {capture!r} not found in adata.obs "
                           f"(columns: {', '.join(map(str, adata.obs.columns)) or 'none'}); "
                           "or pass capture='total' for size factors from total counts")
        return adata.obs[capture].to_numpy(dtype=float)
    return np.asarray(capture, dtype=float)


def get_k_deg(adata, k_deg):
    """Resolve ``k_deg`` given as a var column name, an array, a scalar or None."""
    if k_deg is None:
        return None
    if isinstance(k_deg, str):
        if k_deg not in adata.var:
            raise KeyError(f"k_deg column {k_deg!r} not found in adata.var "
                           f"(columns: {', '.join(map(str, adata.var.columns)) or 'none'})")
        return adata.var[k_deg].to_numpy(dtype=float)
    k = np.asarray(k_deg, dtype=float)
    return np.broadcast_to(k, (adata.n_vars,)).copy() if k.ndim == 0 else k


def fit(adata, *, layer=None, capture=None, k_deg=None, genes=None, min_cells=10, ci=0.95,
        interval="profile", round_counts=False, capture_rtol=0.05, n_jobs=None, progress=True,
        key_added="telegraph", copy=False):
    """Fit burst kinetics to every gene of ``adata`` (scanpy style).

    Parameters
    ----------
    adata : anndata.AnnData
        Cells x genes. Counts must be raw integer UMI counts: after
        ``sc.pp.normalize_total``/``log1p`` keep them in a layer and pass
        ``layer=``.
    layer : str, optional
        Layer holding the counts (default ``adata.X``).
    capture : str, array_like, or None
        Per-cell capture efficiency in (0, 1]: an ``adata.obs`` column name
        or an array; ``"total"`` uses total counts as relative size factors
        (k_syn then in molecules counted per unit time in a cell of average
        depth).
    k_deg : str, array_like, float, or None
        mRNA degradation rate per gene, per unit time (a ``var`` column name,
        an array, or one value for all genes). Without it all rates are in
        units of k_deg.
    genes : sequence of str or boolean mask, optional
        Fit only these genes; the others get NaN.
    min_cells, ci, interval, round_counts, capture_rtol, n_jobs, progress
        As in :func:`telegraph.fit`.
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
    ``telegraph_regime``); ``adata.uns[key_added]`` holds the settings and
    the telegraph version.
    """
    adata = adata.copy() if copy else adata
    X = get_counts(adata, layer)
    cap = get_capture(adata, capture)
    kd = get_k_deg(adata, k_deg)
    names = np.asarray(adata.var_names.astype(str))
    idx = _gene_index(adata, genes)
    if idx is not None:
        X = X[:, idx]
        kd = kd[idx] if kd is not None else None
        names = names[idx]
    res = _fit(X, capture=cap, k_deg=kd, genes=names, min_cells=min_cells, ci=ci,
               interval=interval, round_counts=round_counts, capture_rtol=capture_rtol,
               n_jobs=n_jobs, progress=progress)
    res = res.drop(columns=["gene"])
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
        else:
            values = series.to_numpy(dtype=float)
        adata.var[f"{key_added}_{col}"] = values
    from .. import __version__
    adata.uns[key_added] = {
        "version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "layer": "X" if layer is None else layer,
        "capture": capture if isinstance(capture, str) else (
            "none" if capture is None else "array"),
        "k_deg": k_deg if isinstance(k_deg, str) else ("none (units of k_deg)" if k_deg is None
                                                       else "array"),
        "ci": ci,
        "interval": interval,
        "min_cells": min_cells,
        "n_genes_fitted": int(len(names)),
        "columns": list(res.columns),
    }
    return adata if copy else None


def _gene_index(adata, genes):
    if genes is None:
        return None
    genes = np.asarray(genes)
    if genes.dtype == bool:
        if genes.shape[0] != adata.n_vars:
            raise ValueError(f"boolean genes mask has {genes.shape[0]} entries for "
                             f"{adata.n_vars} genes")
        return np.flatnonzero(genes)
    names = pd.Index(adata.var_names.astype(str))
    missing = [g for g in genes.astype(str) if g not in names]
    if missing:
        raise KeyError(f"{len(missing)} genes not in adata.var_names, e.g. {missing[:3]}")
    return names.get_indexer(genes.astype(str))
