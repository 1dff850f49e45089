"""``tg.pl.kinetics``: burst frequency against burst size, one point per gene."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import config, get
from ._utils import capture_kind, finish, molecule_unit, new_axes, rate_unit

__all__ = ["kinetics"]

_REGIME_COLORS = {"telegraph": "#1f77b4", "bursty": "#ff7f0e", "bimodal": "#2ca02c",
                  "poisson": "#9467bd"}
_SIG_COLORS = {"burst frequency": "#d62728", "burst size": "#1f77b4", "both": "#9467bd",
               "not significant": "#bbbbbb", "not tested": "#eeeeee"}


def significance_classes(table, alpha):
    """'burst frequency', 'burst size', 'both', 'not significant' or 'not
    tested' per gene of a differential results table."""
    f = table["padj_burst_frequency"].to_numpy(float) < alpha
    s = table["padj_burst_size"].to_numpy(float) < alpha
    tested = table["tested"].to_numpy(bool) if "tested" in table else np.isfinite(
        table["pval_burst_frequency"].to_numpy(float))
    out = np.full(len(table), "not significant", dtype=object)
    out[f & ~s] = "burst frequency"
    out[s & ~f] = "burst size"
    out[f & s] = "both"
    out[~tested] = "not tested"
    return pd.Series(out, index=table.index)


def kinetics(adata, *, key: str = config.FIT_KEY, color: str = "regime",
             differential_key: str = config.DIFFERENTIAL_KEY, alpha: float = 0.1,
             size: float = 12.0, ax=None, show: bool | None = None, save=None, **kwargs):
    """Burst frequency against burst size (log-log), one point per gene.

    Parameters
    ----------
    adata : anndata.AnnData
        After :func:`telegraph.tl.fit` (reads ``var[f"{key}_burst_frequency"]``,
        ``var[f"{key}_burst_size"]``, ``var[f"{key}_regime"]``).
    key : str
        ``key_added`` of the fit.
    color : {"regime", "significance"} or str
        Colour by the fitted regime, by the result of
        :func:`telegraph.tl.differential_bursting` stored under
        ``differential_key`` (adjusted p-value below ``alpha`` in burst
        frequency, burst size, both, neither), or by any ``adata.var`` column.
    alpha : float
        Significance level of the adjusted p-values for ``color="significance"``.
    size : float
        Marker size.
    ax, show, save
        scanpy conventions (see :mod:`telegraph.pl`).
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.scatter`.

    Returns
    -------
    matplotlib.axes.Axes (None with ``show=True``). Genes whose regime does
    not identify both burst frequency and burst size (``bimodal``,
    ``poisson``; docs/results.md) have no point; their number is given in the
    legend title. The legend is placed beside the axes, not over the data.
    """
    cols = (f"{key}_burst_frequency", f"{key}_burst_size")
    missing = [c for c in cols if c not in adata.var]
    if missing:
        raise KeyError(f"adata.var has no {missing[0]!r}: run tg.tl.fit(adata, "
                       f"key_added={key!r}) first")
    bf = adata.var[cols[0]].to_numpy(float)
    bs = adata.var[cols[1]].to_numpy(float)
    if color == "regime":
        rc = f"{key}_regime"
        if rc not in adata.var:
            raise KeyError(f"adata.var has no {rc!r}: run tg.tl.fit first")
        classes = adata.var[rc].astype(str).to_numpy()
        palette = _REGIME_COLORS
        title = "regime"
    elif color == "significance":
        table = get.differential_df(adata, differential_key)
        cls = significance_classes(table, alpha)
        classes = cls.reindex(adata.var_names.astype(str)).fillna("not tested").to_numpy()
        palette = _SIG_COLORS
        title = f"adj. p < {alpha:g}"
    elif color in adata.var:
        classes = None
        title = color
    else:
        raise KeyError(f"color={color!r}: use 'regime', 'significance' or a column of "
                       "adata.var")
    ok = np.isfinite(bf) & np.isfinite(bs) & (bf > 0) & (bs > 0)
    ax = new_axes(ax)
    if classes is None:
        vals = adata.var[color]
        if isinstance(vals.dtype, pd.CategoricalDtype) or vals.dtype == object:
            classes = vals.astype(str).to_numpy()
            cats = list(pd.unique(classes[ok]))
            palette = {c: f"C{i % 10}" for i, c in enumerate(cats)}
        else:
            sc = ax.scatter(bf[ok], bs[ok], c=vals.to_numpy(float)[ok], s=size, **kwargs)
            ax.figure.colorbar(sc, ax=ax, label=color)
    if classes is not None:
        order = [c for c in palette if c in set(classes[ok])]
        order += [c for c in pd.unique(classes[ok]) if c not in palette]
        for c in order:
            m = ok & (classes == c)
            ax.scatter(bf[m], bs[m], s=size, color=palette.get(c), label=f"{c} ({m.sum()})",
                       **kwargs)
        hidden = int((~ok).sum())
        lt = title + (f"\n{hidden} gene(s) not shown\n(burst frequency or size\nnot identified)"
                      if hidden else "")
        ax.legend(title=lt, fontsize="small", title_fontsize="small", frameon=False,
                  loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"burst frequency k_on ({rate_unit(adata, key)})")
    ax.set_ylabel(f"burst size k_syn / k_off\n({molecule_unit(capture_kind(adata, key))} "
                  f"per burst)")
    return finish(ax, "kinetics", show, save)
