"""``tg.pl.differential``: effect size against significance (volcano plot)."""

from __future__ import annotations

import numpy as np

from .. import config, get
from ._utils import finish, new_axes, save_or_show

__all__ = ["differential"]

_TESTS = ("burst_frequency", "burst_size")


def differential(adata, *, key: str = config.DIFFERENTIAL_KEY, test: str = "burst_frequency",
                 alpha: float = 0.1, n_labels: int = 8, ax=None, show: bool | None = None,
                 save=None):
    """Log2 fold change against -log10 p-value of a differential bursting test.

    Parameters
    ----------
    adata : anndata.AnnData
        After :func:`telegraph.tl.differential_bursting` (or the allele form)
        stored its results under ``key``.
    test : {"burst_frequency", "burst_size", "both"}
        Which test; "both" draws two panels side by side (``ax`` must then be
        None) and returns both Axes.
    alpha : float
        Genes with Benjamini-Hochberg adjusted p-value below ``alpha`` are
        highlighted.
    n_labels : int
        Label this many of the most significant highlighted genes.
    ax, show, save
        scanpy conventions (see :mod:`telegraph.pl`).

    Returns
    -------
    matplotlib.axes.Axes, or a list of two with ``test="both"`` (None with
    ``show=True``). Genes whose log2 fold change is not finite (a group at a
    limit regime) are not drawn; their number is in the legend.
    """
    import matplotlib.pyplot as plt

    table = get.differential_df(adata, key)
    params = table.attrs["params"]
    groups = list(params.get("groups", ["1", "2"]))
    if test == "both":
        if ax is not None:
            raise ValueError("test='both' draws two panels; leave ax=None or draw one test")
        fig, axes = plt.subplots(1, 2, figsize=(9.0, 4.0))
        for a, t in zip(axes, _TESTS):
            _volcano(a, table, t, alpha, n_labels, groups)
        fig.tight_layout()
        save_or_show(fig, "differential", show=show, save=save)
        return None if show else list(axes)
    if test not in _TESTS:
        raise ValueError(f"test must be 'burst_frequency', 'burst_size' or 'both'; got {test!r}")
    ax = new_axes(ax)
    _volcano(ax, table, test, alpha, n_labels, groups)
    return finish(ax, f"differential_{test}", show, save)


def _volcano(ax, table, test, alpha, n_labels, groups):
    lfc = table[f"{test}_log2fc"].to_numpy(float)
    p = table[f"pval_{test}"].to_numpy(float)
    padj = table[f"padj_{test}"].to_numpy(float)
    ok = np.isfinite(lfc) & np.isfinite(p)
    with np.errstate(divide="ignore"):
        y = -np.log10(np.clip(p, 1e-300, 1.0))
    sig = ok & (padj < alpha)
    ax.scatter(lfc[ok & ~sig], y[ok & ~sig], s=8, color="#bbbbbb",
               label=f"not significant ({int((ok & ~sig).sum())})")
    ax.scatter(lfc[sig], y[sig], s=10, color="#d62728",
               label=f"adj. p < {alpha:g} ({int(sig.sum())})")
    if n_labels and sig.any():
        idx = np.flatnonzero(sig)
        idx = idx[np.argsort(p[idx])][:n_labels]
        names = table.index.astype(str)
        _label_points(ax, lfc[idx], y[idx], [names[i] for i in idx])
    ax.axvline(0.0, color="#888888", lw=0.6)
    label = test.replace("_", " ")
    g1, g2 = (groups + ["1", "2"])[:2]
    ax.set_xlabel(f"log2 fold change of {label} ({g2} / {g1})")
    ax.set_ylabel("-log10 p-value")
    hidden = int((np.isfinite(p) & ~np.isfinite(lfc)).sum())
    title = (f"{hidden} tested gene(s) not shown\n(estimate not identified)" if hidden
             else None)
    ax.legend(fontsize="small", frameon=False, title=title, title_fontsize="x-small",
              loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _label_points(ax, x, y, names, height=9.0, width_per_char=4.5):
    """Label points in the given order without overlapping labels: a label
    that would cover an earlier one is moved down in steps of a line height
    (with a leader line), or left out after a few tries."""
    ax.autoscale_view()
    placed = []          # (x0, x1, y0, y1) of the labels, in display points
    to_points = 72.0 / ax.figure.dpi
    for xi, yi, name in zip(x, y, names):
        px, py = ax.transData.transform((xi, yi)) * to_points
        w = width_per_char * len(name)
        for step in range(6):
            dy = 2.0 - step * height
            box = (px + 3, px + 3 + w, py + dy, py + dy + height)
            if not any(box[0] < b[1] and b[0] < box[1] and box[2] < b[3] and b[2] < box[3]
                       for b in placed):
                placed.append(box)
                ax.annotate(name, (xi, yi), fontsize="x-small", xytext=(3, dy),
                            textcoords="offset points",
                            arrowprops=(dict(arrowstyle="-", lw=0.4, color="#888888")
                                        if step else None))
                break
