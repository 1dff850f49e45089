"""``tg.pl.distribution``: a gene's count histogram with the fitted law over it."""

from __future__ import annotations

import numpy as np

from .. import config, get
from ..histogram import capture_groups
from ..inputs import resolve_capture, resolve_k_deg, totals_of
from ..joint import joint_pmf
from ..jointfit import bursty_rates
from ..stationary import pmf
from ._utils import capture_kind, finish, molecule_unit, new_axes, rate_unit, save_or_show

__all__ = ["distribution", "fitted_pmf", "fitted_joint_pmf"]


def _gene_counts(adata, gene, layer):
    names = adata.var_names.astype(str)
    if str(gene) not in set(names):
        raise KeyError(f"gene {gene!r} not in adata.var_names")
    j = int(np.flatnonzero(names == str(gene))[0])
    col = get.counts(adata, layer)[:, j]
    col = col.toarray() if hasattr(col, "toarray") else np.asarray(col)
    return j, np.asarray(col, dtype=float).ravel()


def _k_deg(adata, key, j, k_deg):
    if k_deg is not None:
        return float(resolve_k_deg(k_deg, n_genes=adata.n_vars, var=adata.var,
                                   where="adata.var").values[j])
    kd = get.k_deg(adata, key)
    return 1.0 if kd.values is None else float(kd.values[j])


def _capture_factors(adata, key, capture, layer):
    """Per-cell factors of k_syn (efficiencies, or size factors for "total")."""
    if capture is None:
        return get.capture(adata, key, layer=layer).factors
    return resolve_capture(capture, n_cells=adata.n_obs, obs=adata.obs,
                           totals=totals_of(get.counts(adata, layer)),
                           where="adata.obs").factors


def fitted_pmf(n, row, capture, k_deg=1.0):
    """Mixture over cells of the fitted law at counts ``n``.

    ``row``: one gene's ``tg.fit`` results (a mapping with k_on, k_off,
    k_syn, burst_frequency, burst_size, fraction_on, mean_expression,
    regime; rates in the units of ``k_deg``); ``capture``: the per-cell
    capture (or relative size factors) of the cells to average over, None for
    capture 1. The law is the one the fit reports for the gene's regime
    (docs/results.md): the Poisson-Beta law at the fitted rates (telegraph),
    the negative binomial (bursty), the zero-inflated Poisson (bimodal) or
    the Poisson law; NaN for genes that were not fitted.
    """
    from scipy import stats

    n = np.asarray(n)
    if capture is None:
        weights, values = np.ones(1), np.ones(1)
    else:
        s = np.asarray(capture, dtype=float)
        top = s.max()
        grp, val = capture_groups(s / top, max_groups=64, rtol=0.02)
        weights = np.bincount(grp).astype(float)
        weights /= weights.sum()
        values = val * top
    regime = str(row["regime"])
    kd = float(k_deg)
    out = np.zeros(n.shape, dtype=float)
    for w, s in zip(weights, values):
        if regime == "telegraph":
            p = pmf(n, row["k_on"], row["k_off"], s * row["k_syn"], kd)
        elif regime == "bursty":
            a = row["burst_frequency"] / kd
            beta = s * row["burst_size"]
            p = stats.nbinom.pmf(n, a, 1.0 / (1.0 + beta))
        elif regime == "bimodal":
            f = row["fraction_on"]
            lam = s * row["k_syn"] / kd
            p = f * stats.poisson.pmf(n, lam) + (1.0 - f) * (n == 0)
        elif regime == "poisson":
            p = stats.poisson.pmf(n, s * row["mean_expression"])
        else:
            return np.full(n.shape, np.nan)
        out += w * p
    return out


#: the law each regime reports (docs/results.md)
_LAW_NAMES = {"telegraph": "Poisson-Beta (telegraph)", "bursty": "negative binomial (bursty)",
              "bimodal": "zero-inflated Poisson (bimodal)", "poisson": "Poisson"}


def _kind_of(capture) -> str:
    """The capture kind of an explicit ``capture=`` argument."""
    if capture is None:
        return "none"
    if isinstance(capture, str):
        return "total" if capture == "total" else "obs"
    return "value" if np.ndim(capture) == 0 else "array"


def _title(gene, row, regime, rate_unit_, molecules) -> str:
    """The gene, its regime and the quantities the regime identifies, with units."""
    def num(key):
        return f"{float(row.get(key, np.nan)):.3g}"
    parts = []
    if regime in ("telegraph", "bursty"):
        parts.append(f"burst frequency {num('burst_frequency')} ({rate_unit_})")
        parts.append(f"burst size {num('burst_size')} ({molecules})")
    if regime == "bimodal":
        parts.append(f"fraction on {num('fraction_on')}")
        parts.append(f"k_syn {num('k_syn')} ({molecules}, {rate_unit_})")
    if regime in ("poisson", "all_zero"):
        parts.append(f"mean {num('mean_expression')} ({molecules} per cell)")
    head = f"{gene} ({regime})"
    return head + ("\n" + "\n".join(parts) if parts else "")


def distribution(adata, gene: str, *, layer: str | None = None, capture=None,
                 key: str = config.FIT_KEY, k_deg=None, max_count: int | None = None,
                 ax=None, show: bool | None = None, save=None):
    """Observed count histogram of one gene with the fitted stationary law.

    After a two-species fit (``tg.tl.fit(..., unspliced_layer=...)``) three
    panels: the observed joint (unspliced, spliced) histogram with the fitted
    joint law's contours over it, and both marginals with the fitted
    marginal laws (``ax``: a sequence of three Axes, or None; the three Axes
    are returned).

    The law drawn is the one the fit reports for the gene's regime
    (docs/results.md): the Poisson-Beta law at the fitted rates for
    ``telegraph``, else the regime's limit law (negative binomial,
    zero-inflated Poisson, Poisson) -- the law its goodness-of-fit p-value
    tests. It is capture-aware: the average over the cells of the law at each
    cell's capture efficiency (P(n) = mean_c P(n | s_c)), so it is directly
    comparable with the histogram of the cells' counts. The title gives the
    regime and only the quantities it identifies, with their units (molecules
    counted in a cell of average depth under ``capture="total"``).

    Parameters
    ----------
    adata : anndata.AnnData
        After :func:`telegraph.tl.fit`.
    gene : str
        A name in ``adata.var_names``.
    layer : str, optional
        Layer with the counts; default: the one the fit used (``uns[key]``).
    capture : str, float, array_like, or None
        Capture as given to the fit; default: what the fit recorded in
        ``uns[key]`` (:func:`telegraph.get.capture`).
    key : str
        ``key_added`` of the fit.
    k_deg : float, str or array_like, optional
        Degradation rates per unit time; default: what the fit recorded
        (:func:`telegraph.get.k_deg`).
    max_count : int, optional
        Largest count shown (default: the largest observed, at most 200).
    ax, show, save
        scanpy conventions (see :mod:`telegraph.pl`).

    Returns
    -------
    matplotlib.axes.Axes (None with ``show=True``).
    """
    if f"{key}_regime" not in adata.var:
        raise KeyError(f"adata.var has no {key + '_regime'!r}: run tg.tl.fit(adata, "
                       f"key_added={key!r}) first")
    if layer is None:
        layer = get.layer_of_fit(adata, key)
    unspliced_layer = get.fit_record(adata, key).get("unspliced_layer")
    if unspliced_layer is not None:
        return _distribution_two(adata, gene, layer, str(unspliced_layer), capture, key,
                                 max_count, ax, show, save)
    j, x = _gene_counts(adata, gene, layer)
    s = _capture_factors(adata, key, capture, layer)
    keep = ~np.isnan(x)
    x = x[keep]
    if s is not None:
        s = s[keep]
    if x.size == 0:
        raise ValueError(f"gene {gene!r} has no non-missing counts")
    top = int(x.max()) if max_count is None else int(max_count)
    if max_count is None:
        top = min(top, 200)
    n = np.arange(top + 1)
    obs = np.bincount(np.clip(x.astype(np.int64), 0, top + 1), minlength=top + 2)[:top + 1]
    obs = obs / x.size
    row = get.kinetics_df(adata, key).iloc[j].to_dict()
    kd = _k_deg(adata, key, j, k_deg)
    fit = fitted_pmf(n, row, s, kd)
    ax = new_axes(ax)
    ax.bar(n, obs, width=1.0, color="#cccccc", edgecolor="#999999", linewidth=0.3,
           label=f"observed ({x.size} cells)")
    regime = str(row.get("regime"))
    if np.isfinite(fit).any():
        label = f"fitted: {_LAW_NAMES.get(regime, regime)}"
        if s is not None:
            label += "\n(averaged over the cells' capture)"
        ax.plot(n, fit, "o-", color="#d62728", ms=3, lw=1.2, label=label)
    ax.set_xlabel("count per cell")
    ax.set_ylabel("fraction of cells")
    ax.set_title(_title(gene, row, regime, rate_unit(adata, key),
                        molecule_unit(capture_kind(adata, key) if capture is None else
                                      _kind_of(capture))),
                 fontsize="medium")
    ax.legend(fontsize="small", frameon=False)
    return finish(ax, f"distribution_{gene}", show, save)


def _capture_weights(capture):
    """(weights, values) of the cells' capture (or size factors) in at most 16
    groups (the fitted law is averaged over them)."""
    if capture is None:
        return np.ones(1), np.ones(1)
    s = np.asarray(capture, dtype=float)
    top = s.max()
    grp, val = capture_groups(s / top, max_groups=16, rtol=0.1)
    weights = np.bincount(grp).astype(float)
    return weights / weights.sum(), val * top


def fitted_joint_pmf(u, s, row, capture, unspliced_factor: float = 1.0):
    """Mixture over cells of a two-species fit's law at counts (u, s).

    ``row``: one gene's two-species ``tg.fit`` results (rates in units of
    k_splice); ``capture``: per-cell capture (or size factors) of the cells
    to average over, None for capture 1. The law of the gene's regime: the
    telegraph law with splicing, its bursty limit (k_off -> infinity at the
    fitted burst size; :func:`telegraph.jointfit.bursty_rates`), its
    slow-switching limit (off with no molecules, or on with two Poisson laws),
    or two independent Poisson laws; NaN for genes that were not fitted and for
    genes fitted on their unspliced counts alone (``fit_method``
    "unspliced_marginal": their joint law is too large to compute).
    """
    from scipy import stats

    u, s = np.broadcast_arrays(np.asarray(u), np.asarray(s))
    weights, values = _capture_weights(capture)
    regime = str(row["regime"])
    if str(row.get("fit_method", "joint")) == "unspliced_marginal":
        return np.full(u.shape, np.nan)
    out = np.zeros(u.shape, dtype=float)
    f = float(unspliced_factor)
    for w, c in zip(weights, values):
        if regime == "telegraph":
            p = joint_pmf(u, s, row["k_on"], row["k_off"], c * row["k_syn"], row["k_deg"],
                          capture_unspliced=min(f, 1.0))
        elif regime == "bursty":
            a, b, lam, gam = bursty_rates(np.log([row["burst_frequency"], row["burst_size"],
                                                 row["k_deg"]]))[0]
            p = joint_pmf(u, s, a, b, c * lam, gam, capture_unspliced=min(f, 1.0))
        elif regime == "bimodal":     # off (no molecules) or on (two Poisson laws)
            on = row["fraction_on"]
            p = on * (stats.poisson.pmf(u, c * f * row["k_syn"])
                      * stats.poisson.pmf(s, c * row["k_syn"] / row["k_deg"]))
            p = p + (1.0 - on) * ((u == 0) & (s == 0))
        elif regime == "poisson":
            p = (stats.poisson.pmf(u, c * f * row["mean_expression_unspliced"])
                 * stats.poisson.pmf(s, c * row["mean_expression"]))
        else:
            return np.full(u.shape, np.nan)
        out += w * p
    return out


def _distribution_two(adata, gene, layer, unspliced_layer, capture, key, max_count, ax,
                      show, save):
    """:func:`distribution` after a two-species fit: joint and marginals."""
    import matplotlib.pyplot as plt

    j, xs = _gene_counts(adata, gene, layer)
    _, xu = _gene_counts(adata, gene, unspliced_layer)
    c = _capture_factors(adata, key, capture, layer)
    keep = ~(np.isnan(xs) | np.isnan(xu))
    xs, xu = xs[keep].astype(np.int64), xu[keep].astype(np.int64)
    if c is not None:
        c = c[keep]
    if xs.size == 0:
        raise ValueError(f"gene {gene!r} has no non-missing counts")
    cap = 200 if max_count is None else int(max_count)
    tu, ts = min(int(xu.max()), cap), min(int(xs.max()), cap)
    if ax is None:
        _, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
    else:
        axes = list(ax)
        if len(axes) != 3:
            raise ValueError("after a two-species fit, ax= takes three Axes (joint, "
                             "unspliced, spliced)")
    row = get.kinetics_df(adata, key).iloc[j].to_dict()
    factor = float(get.fit_record(adata, key).get("unspliced_factor", 1.0))
    # the law over a grid reaching a bit beyond the data (for the marginals' tails)
    gu, gs = tu + 2, ts + 2
    uu, ss = np.meshgrid(np.arange(gu + 1), np.arange(gs + 1), indexing="ij")
    law = fitted_joint_pmf(uu, ss, row, c, factor)
    obs = np.zeros((gu + 1, gs + 1))
    np.add.at(obs, (np.clip(xu, 0, gu), np.clip(xs, 0, gs)), 1.0)
    obs /= xs.size
    regime = str(row.get("regime"))
    a0 = axes[0]
    from matplotlib.colors import LogNorm
    shown = np.ma.masked_equal(obs.T, 0.0)
    im = a0.imshow(shown, origin="lower", aspect="auto", cmap="Greys",
                   norm=LogNorm(vmin=1.0 / xs.size, vmax=max(obs.max(), 2.0 / xs.size)),
                   extent=(-0.5, gu + 0.5, -0.5, gs + 0.5))
    a0.figure.colorbar(im, ax=a0, label="fraction of cells")
    if np.isfinite(law).all() and law.max() > 0:
        # the fitted law's levels, half a decade apart, down to one cell in the sample
        top_p = law.max()
        levels = top_p * 10.0 ** np.arange(-np.log10(top_p * xs.size), 0, 0.5)
        levels = levels[levels < top_p] if levels.size else np.array([0.5 * top_p])
        a0.contour(np.arange(gu + 1), np.arange(gs + 1), law.T, levels=levels,
                   colors="#d62728", linewidths=0.8)
    a0.set_xlabel("unspliced count")
    a0.set_ylabel("spliced count")
    marginal = str(row.get("fit_method", "joint")) == "unspliced_marginal"
    a0.set_title(f"{gene} ({regime}): observed (grey), fitted (red)" if not marginal else
                 f"{gene} ({regime}): observed; fitted on unspliced counts alone, joint law "
                 "too large to draw", fontsize="medium")
    for axm, x, m, name in ((axes[1], xu, law.sum(axis=1), "unspliced"),
                            (axes[2], xs, law.sum(axis=0), "spliced")):
        top = tu if name == "unspliced" else ts
        n = np.arange(top + 1)
        h = np.bincount(np.clip(x, 0, top + 1), minlength=top + 2)[:top + 1] / x.size
        axm.bar(n, h, width=1.0, color="#cccccc", edgecolor="#999999", linewidth=0.3,
                label=f"observed ({x.size} cells)")
        if np.isfinite(m).any():
            axm.plot(n, m[:top + 1], "o-", color="#d62728", ms=3, lw=1.2,
                     label="fitted" + ("\n(averaged over the cells' capture)"
                                       if c is not None else ""))
        axm.set_xlabel(f"{name} count per cell")
        axm.set_ylabel("fraction of cells")
        axm.legend(fontsize="small", frameon=False)
    def num(k):
        return f"{float(row.get(k, np.nan)):.3g}"
    axes[2].set_title(f"burst frequency {num('burst_frequency')}, burst size "
                      f"{num('burst_size')}, k_deg {num('k_deg')} (units of k_splice)",
                      fontsize="small")
    save_or_show(axes[0].figure, f"distribution_{gene}", show=show, save=save)
    return None if show else axes
