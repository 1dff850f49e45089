"""Figure saving and showing with scanpy's conventions."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .. import get

log = logging.getLogger("telegraph")

_EXTS = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff", ".eps")


def new_axes(ax, figsize=(4.5, 4.0)):
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def save_or_show(fig, writekey, *, show=None, save=None, dpi=None):
    """Save ``fig`` as scanpy would and show it if asked.

    ``save=True`` writes ``<scanpy figdir>/<writekey>.<file_format_figs>``;
    a string is appended to ``writekey`` (its extension, if any, sets the
    format) unless it contains a directory separator, in which case it is
    the output path. Returns the path written (or None).
    """
    import matplotlib.pyplot as plt
    path = None
    if save:
        import scanpy as sc
        if isinstance(save, (str, os.PathLike)):
            save = str(save)
            if os.sep in save or "/" in save:
                path = Path(save).expanduser()
                if path.suffix.lower() not in _EXTS:
                    path = path.with_name(path.name + "." + sc.settings.file_format_figs)
            else:
                name = writekey + save
                if Path(name).suffix.lower() not in _EXTS:
                    name += "." + sc.settings.file_format_figs
                path = Path(sc.settings.figdir) / name
        else:
            path = Path(sc.settings.figdir) / f"{writekey}.{sc.settings.file_format_figs}"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        log.info("saved figure to %s", path)
    if show:
        plt.show()
    return path


def finish(ax, writekey, show, save, dpi=None):
    save_or_show(ax.figure, writekey, show=show, save=save, dpi=dpi)
    return None if show else ax


def rate_unit(adata, key):
    """Axis label unit of rates from a tl.fit result."""
    try:
        record = get.fit_record(adata, key)
        if record.get("unspliced_layer") is not None:
            return "units of k_splice"      # a two-species fit
        if record.get("new_layer") is not None:
            return "per hour"               # a labelled fit: the pulse is a clock
        given = get.k_deg(adata, key).given
    except KeyError:  # results without a record of the fit
        given = False
    return "per unit time" if given else "units of k_deg"


def capture_kind(adata, key) -> str:
    """How the fit stored under ``key`` treated capture: "none", "value",
    "obs", "array" or "total" (:class:`telegraph.inputs.Capture`); "none" for
    results without a record of the fit."""
    try:
        rec = get.fit_record(adata, key)
    except KeyError:
        return "none"
    source = rec.get("capture", {"kind": "none"})
    return str(source.get("kind", "none")) if isinstance(source, dict) else "none"


def molecule_unit(kind: str) -> str:
    """What k_syn, burst size and mean expression count under a capture
    setting (docs/maths.md, "Units")."""
    if kind == "total":
        return "molecules counted in a cell of average depth"
    if kind == "none":
        return "molecules counted"
    return "molecules in the cell"
