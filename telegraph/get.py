"""Reading back what :mod:`telegraph.tl` stored, and the counts it read (scanpy's ``sc.get``).

The plots (:mod:`telegraph.pl`) and the command line read results through
these functions only, so the layout of results in an AnnData is known in one
place (together with :func:`telegraph.tl.fit`'s writer):

- :func:`counts`: the count matrix of ``X`` or a layer;
- :func:`kinetics_df`: the per-gene table of :func:`telegraph.tl.fit`
  (``var["<key>_<column>"]``);
- :func:`differential_df`: the table of
  :func:`telegraph.tl.differential_bursting` (``uns[key]["results"]``);
- :func:`fit_record`, :func:`capture`, :func:`k_deg`: how a fit was made
  (``uns[key]``), resolved again so that a plot of a fitted law uses exactly
  the capture and degradation rates the fit used.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from . import config
from .inputs import (Capture, KDeg, capture_record, k_deg_record, resolve_capture,
                     resolve_k_deg, totals_of)

__all__ = ["counts", "kinetics_df", "fit_columns", "differential_df", "fit_record", "capture", "k_deg",
           "layer_of_fit"]


def counts(adata, layer: str | None = None):
    """The cells x genes count matrix of ``adata`` (``X`` or a layer), unchanged.

    Raises
    ------
    KeyError
        The layer does not exist (the message lists those that do).
    ValueError
        ``layer=None`` and ``adata.X`` is empty.
    """
    if layer is None:
        X = adata.X
        if X is None:
            raise ValueError("adata.X is empty; pass layer= naming the layer that holds counts")
        return X
    if layer not in adata.layers:
        avail = ", ".join(map(repr, adata.layers.keys())) or "none"
        raise KeyError(f"layer {layer!r} not found in adata.layers (available: {avail})")
    return adata.layers[layer]


def fit_record(adata, key: str = config.FIT_KEY) -> dict:
    """``adata.uns[key]``: how :func:`telegraph.tl.fit` ran (settings, capture,
    k_deg, layer, version)."""
    rec = adata.uns.get(key)
    if not isinstance(rec, dict) and not hasattr(rec, "keys"):
        raise KeyError(f"adata.uns has no {key!r}: run tg.tl.fit(adata, key_added={key!r}) "
                       f"first")
    return rec


def fit_columns(adata, key: str = config.FIT_KEY, *, stale: bool = False) -> list:
    """The ``adata.var`` columns that the fit stored under ``key`` wrote.

    A fit records its result columns in ``adata.uns[key]["columns"]``; so
    another fit whose key starts with the same words (``key`` and
    ``f"{key}_estimated"``) keeps its own columns. A fit stored before that
    record existed is read by the ``f"{key}_"`` prefix, less the columns that
    other recorded fits claim. ``stale=True``: also the other
    ``f"{key}_"`` columns no recorded fit claims (left by an older version,
    or by hand): what a new fit under ``key`` replaces.
    """
    rec = adata.uns.get(key)
    recorded = ([f"{key}_{c}" for c in rec["columns"]]
                if isinstance(rec, Mapping) and "columns" in rec else None)
    if recorded is not None and not stale:
        return [c for c in recorded if c in adata.var.columns]
    claimed = {f"{k}_{c}" for k, r in adata.uns.items()
               if k != key and isinstance(r, Mapping) and "columns" in r for c in r["columns"]}
    prefix = f"{key}_"
    return [c for c in adata.var.columns
            if (str(c).startswith(prefix) and c not in claimed) or c in (recorded or ())]


def kinetics_df(adata, key: str = config.FIT_KEY, *, genes=None) -> pd.DataFrame:
    """The per-gene results of :func:`telegraph.tl.fit` as a DataFrame.

    Parameters
    ----------
    adata : anndata.AnnData
    key : str
        ``key_added`` of the fit.
    genes : sequence of str, optional
        Only these genes (in ``adata.var`` order).

    Returns
    -------
    pandas.DataFrame
        Indexed by gene name (``str``), one column per result (``k_on``,
        ``burst_frequency``, ``regime``, ...; see :func:`telegraph.fit`);
        genes that were not fitted have regime ``"not_fitted"``.
    """
    prefix = f"{key}_"
    cols = fit_columns(adata, key)
    if not cols:
        raise KeyError(f"adata.var has no '{prefix}*' columns: run tg.tl.fit(adata, "
                       f"key_added={key!r}) first")
    var = adata.var
    if genes is not None:
        var = var.loc[var.index.isin(list(genes))]
    table = var[cols].copy()
    table.columns = [str(c)[len(prefix):] for c in cols]
    table.index = pd.Index(var.index.astype(str), name="gene")
    return table


def differential_df(adata, key: str = config.DIFFERENTIAL_KEY) -> pd.DataFrame:
    """The results of :func:`telegraph.tl.differential_bursting` (or the allele
    test, ``key="telegraph_alleles"``) as a DataFrame indexed by gene, with
    the test's parameters (groups, capture, ...) in ``attrs["params"]``."""
    entry = adata.uns.get(key)
    if entry is None or "results" not in entry:
        raise KeyError(f"adata.uns has no {key!r} results: run "
                       f"tg.tl.differential_bursting(adata, ..., key_added={key!r}) first")
    table = pd.DataFrame(entry["results"]).copy()
    table.index = pd.Index(table.index.astype(str), name="gene")
    table.attrs["params"] = dict(entry.get("params", {}))
    return table


def capture(adata, key: str = config.FIT_KEY, *, layer: str | None = None) -> Capture:
    """The per-cell capture a fit used, resolved again on ``adata``.

    ``layer`` (default: the fit's) supplies the cells' totals when the fit
    used size factors (``capture="total"``).
    """
    rec = fit_record(adata, key)
    source = _recorded(rec.get("capture", {"kind": "none"}), "capture", key)
    if layer is None:
        layer = _fit_layer(rec)
    return resolve_capture(source, n_cells=adata.n_obs, obs=adata.obs,
                           totals=totals_of(counts(adata, layer)), where="adata.obs")


def k_deg(adata, key: str = config.FIT_KEY) -> KDeg:
    """The per-gene degradation rates a fit used (over ``adata.var_names``)."""
    rec = fit_record(adata, key)
    source = _recorded(rec.get("k_deg", {"kind": "none"}), "k_deg", key)
    return resolve_k_deg(source, n_genes=adata.n_vars,
                         var=adata.var, where="adata.var")


def _fit_layer(rec) -> str | None:
    used = rec.get("layer", "X")
    return None if used in (None, "X") else str(used)


def layer_of_fit(adata, key: str = config.FIT_KEY) -> str | None:
    """The layer a fit read its counts from (None for ``X``)."""
    return _fit_layer(fit_record(adata, key))


def _recorded(value, what: str, key: str) -> dict:
    """A stored record as a dict; files written by telegraph 0.1 stored a label."""
    if isinstance(value, str):
        if value.startswith("none"):
            return {"kind": "none"}
        if value == "array":
            raise ValueError(f"the fit under {key!r} was made by telegraph 0.1 with {what} "
                             f"given as an array, which it did not store; pass the same "
                             f"{what}= again")
        return capture_record(value) if what == "capture" else k_deg_record(value)
    return dict(value)
