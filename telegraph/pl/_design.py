"""``tg.pl.design``: predicted precision against sequencing depth and cells, or
against the labelling pulse length, the chosen design marked."""

from __future__ import annotations

import numpy as np

from ..design import DesignResult, PulseDesign
from ._utils import finish, new_axes

__all__ = ["design"]

_COLORS = {"burst_frequency": "#d62728", "burst_size": "#1f77b4", "k_deg": "#2ca02c"}


def design(result: DesignResult | PulseDesign, *, criterion: bool = True, ax=None,
           show: bool | None = None, save=None):
    """Precision of burst frequency and burst size across the budget's designs.

    For each depth on the grid of :attr:`telegraph.design.DesignResult.curve`
    (the budget then pays for a given number of cells at a given capture),
    the median over the parameter sets (prior draws or genes) of the
    predicted standard error of log burst frequency and of log burst size,
    against reads per cell (bottom axis) and the cells the budget pays for at
    that depth (top axis), both logarithmic; the design
    :func:`telegraph.design.optimize` chose is marked. For a
    :class:`~telegraph.design.PulseDesign` (:func:`telegraph.design.optimize_pulse`):
    the predicted standard errors of the log of each quantity (burst
    frequency, burst size, k_deg) against the pulse length, the chosen pulse
    marked.

    Parameters
    ----------
    result : telegraph.design.DesignResult or telegraph.design.PulseDesign
        Result of :func:`telegraph.design.optimize` or
        :func:`telegraph.design.optimize_pulse` (with ``curve=True``).
    criterion : bool
        Also draw the criterion (right axis, grey).
    ax, show, save
        scanpy conventions (see :mod:`telegraph.pl`).

    Returns
    -------
    matplotlib.axes.Axes (None with ``show=True``).
    """
    if not isinstance(result, (DesignResult, PulseDesign)):
        raise TypeError("tg.pl.design draws the result of tg.design.optimize (a DesignResult) "
                        "or of tg.design.optimize_pulse (a PulseDesign)")
    curve = result.curve
    if curve is None or curve.empty:
        what = "optimize" if isinstance(result, DesignResult) else "optimize_pulse"
        raise ValueError(f"this {type(result).__name__} has no curve: run "
                         f"tg.design.{what}(..., curve=True)")
    if isinstance(result, PulseDesign):
        return _pulse(result, curve, criterion, ax, show, save)
    ax = new_axes(ax, figsize=(5.2, 4.0))
    h = curve["reads"].to_numpy(float)
    chosen = result.reads
    _se_curves(ax, h, curve, ("burst_frequency", "burst_size"), chosen)
    ax.set_xlabel("reads per cell")
    # the other design variable on the top axis: cells and reads are tied by the budget
    cost, budget = result.cost, result.budget
    tiny = 1e-300

    def cells_of(r):
        return cost.cells(budget, np.maximum(r, tiny))

    def reads_of(c):
        with np.errstate(over="ignore", divide="ignore"):
            return np.maximum((budget / np.maximum(c, 1e-12) - cost.cell) / cost.read, tiny)

    sec = ax.secondary_xaxis("top", functions=(cells_of, reads_of))
    sec.set_xlabel("cells the budget pays for")
    if criterion:
        _criterion_axis(ax, h, curve, result.criterion)
    ax.annotate(f"chosen: {result.n_cells:,} cells\nx {result.reads:,.0f} reads\n"
                f"capture {result.capture_mean:.2f}", xy=(chosen, 0.97),
                xycoords=("data", "axes fraction"), xytext=(4, 0), textcoords="offset points",
                va="top", ha="left", fontsize="small")
    ax.legend(title="predicted s.e.", fontsize="small", title_fontsize="small", frameon=False,
              loc="lower left")
    return finish(ax, "design", show, save)


def _pulse(result: PulseDesign, curve, criterion, ax, show, save):
    ax = new_axes(ax, figsize=(5.2, 4.0))
    t = curve["t_label"].to_numpy(float)
    chosen = result.t_label
    _se_curves(ax, t, curve, result.quantities, chosen)
    ax.set_xlabel("labelling pulse t_label (hours)")
    if criterion:
        _criterion_axis(ax, t, curve, result.criterion)
    ax.annotate(f"chosen: {chosen:.3g} h\n{result.n_cells:,.0f} cells", xy=(chosen, 0.97),
                xycoords=("data", "axes fraction"), xytext=(4, 0), textcoords="offset points",
                va="top", ha="left", fontsize="small")
    ax.legend(title="predicted s.e.", fontsize="small", title_fontsize="small", frameon=False,
              loc="lower left")
    return finish(ax, "design", show, save)


def _se_curves(ax, x, curve, quantities, chosen) -> None:
    """The predicted standard error of each quantity against the design variable
    ``x`` (log-log), the chosen design marked on each curve and by a dashed line."""
    for q in quantities:
        se = curve[f"{q}_log_se"].to_numpy(float)
        ok = np.isfinite(se) & (se > 0)
        ax.plot(x[ok], se[ok], "-", color=_COLORS[q], label=q.replace("_", " "))
        if ok.sum() >= 2:
            ax.plot([chosen], [np.exp(np.interp(np.log(chosen), np.log(x[ok]),
                                                np.log(se[ok])))], "o",
                    color=_COLORS[q], ms=7, zorder=5)
    ax.axvline(chosen, color="k", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("predicted s.e. of log estimate (median over genes)")


def _criterion_axis(ax, x, curve, criterion: str) -> None:
    """The design criterion along ``x`` on a grey right-hand axis."""
    tw = ax.twinx()
    tw.plot(x, curve["value"].to_numpy(float), color="0.6", lw=1.0,
            label=f"criterion ({criterion})")
    tw.set_ylabel(f"criterion ({criterion})", color="0.4")
    tw.tick_params(axis="y", colors="0.4")
