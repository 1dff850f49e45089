"""What a user gives, resolved once into validated objects.

Every public entry point (``tg.fit``, ``tg.fit_file``, ``tg.tl.*``, the command
line, the differential tests, the plots) hands its user-facing arguments to
the functions here, at the place where the cells' ``obs`` and the genes'
``var`` are known, and passes the resolved objects on; the inference code and
the kernels below accept only resolved objects. Each decision is made here
and nowhere else:

- what a valid capture efficiency is (:func:`capture_in_range`,
  :func:`check_capture`: finite, in (0, 1]);
- how size factors are made from total counts and turned into efficiencies,
  and how ``k_syn`` and burst sizes are put back on the user's scale
  (:class:`Capture`, :func:`resolve_captures`);
- per-gene degradation rates (:class:`KDeg`);
- what a valid pulse length and detection probability of a metabolic-labelling
  experiment are (:func:`t_label_in_range`, :func:`check_t_label`,
  :func:`detection_in_range`, :func:`check_detection`);
- gene selections by name, mask or index (:func:`gene_positions`);
- the settings of a fit (:class:`FitSettings`);
- a planned experiment's capture efficiencies, as a distribution over cells
  (:class:`CaptureDistribution`, :func:`capture_distribution`).

What was resolved is recorded (:meth:`Capture.record`, :meth:`KDeg.record`,
:meth:`FitSettings.record`) with the results -- the value or where it came
from, never just a label -- so that plots and later commands reuse exactly
what the fit used (:mod:`telegraph.get`).

This module imports nothing else of telegraph but :mod:`telegraph.config`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from . import config

__all__ = ["capture_in_range", "check_capture", "Capture", "resolve_capture",
           "resolve_captures", "capture_record", "rescale_syn", "size_factors", "row_totals",
           "totals_of", "depth_ratio", "depth_warning",
           "KDeg", "resolve_k_deg", "k_deg_record", "gene_positions", "FitSettings",
           "resolve_profile", "DifferentialSettings", "CaptureDistribution",
           "capture_distribution", "listing", "t_label_in_range", "check_t_label",
           "detection_in_range", "check_detection", "Labelling", "resolve_labelling", "ESTIMATE",
           "check_labelled_layers"]


# --------------------------------------------------------------------------- small helpers


def listing(names, n: int = 8) -> str:
    """Names for an error message: the first ``n`` quoted, then how many in all."""
    names = [str(x) for x in names]
    if not names:
        return "none"
    shown = ", ".join(repr(x) for x in names[:n])
    return shown + (f", ... ({len(names)} in all)" if len(names) > n else "")


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def row_totals(X) -> np.ndarray:
    """Total count of every cell (row) of a cells x genes matrix, NaN counted as 0.

    Dense arrays and scipy.sparse matrices of any format (a CSC matrix, or a
    block of genes, gives each cell's total over its columns).
    """
    if sp.issparse(X):
        if X.format not in ("csr", "csc"):
            X = X.tocsr()
        data = np.nan_to_num(np.asarray(X.data, dtype=np.float64))
        if X.format == "csc":
            rows = X.indices
        else:
            rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        return np.bincount(rows, data, minlength=X.shape[0]).astype(np.float64)
    return np.nansum(np.asarray(X, dtype=np.float64), axis=1)


# --------------------------------------------------------------------------- capture


def capture_in_range(values) -> np.ndarray:
    """True where a capture efficiency is valid: finite and in (0, 1].

    The one definition of a valid capture efficiency (the probability that a
    molecule present in a cell is counted). Distribution functions return NaN
    where it is False (as scipy.stats does for invalid parameters); everything
    else refuses such values through :func:`check_capture`.
    """
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(v) & (v > 0) & (v <= 1)


def check_capture(capture, n_cells: int | None = None) -> np.ndarray:
    """Validated capture efficiencies as float64.

    Parameters
    ----------
    capture : float or array_like
        Per-cell capture efficiency in (0, 1] (dimensionless).
    n_cells : int, optional
        With it, the result has one value per cell: a scalar is broadcast and
        an array must be 1-D of that length. Without it any shape passes.

    Raises
    ------
    ValueError
        Naming the problem, the first offending cell and the fix.
    """
    arr = np.asarray(capture)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise ValueError(f"capture must be numeric efficiencies in (0, 1], got dtype "
                         f"{arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim == 0 and not capture_in_range(arr):
        raise ValueError(f"capture must be an efficiency in (0, 1]; got {float(arr):g}. It "
                         f"is a detection probability; for relative size factors use "
                         f"capture='total'")
    if n_cells is not None:
        if arr.ndim == 0:
            arr = np.full(n_cells, float(arr))
        if arr.ndim != 1:
            raise ValueError(f"capture must be one efficiency per cell (1-D), got shape "
                             f"{arr.shape}")
        if arr.shape[0] != n_cells:
            raise ValueError(f"capture has {arr.shape[0]} entries for {n_cells} cells "
                             f"(rows); give one value per cell")
    if arr.size == 0:
        raise ValueError("capture is empty; give one efficiency per cell")
    flat = arr.reshape(-1)
    bad = ~np.isfinite(flat)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"capture must be finite; found {flat[i]} at cell {i}")
    bad = ~capture_in_range(flat)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"capture efficiencies must be in (0, 1]; found {flat[i]:g} at "
                         f"cell {i}. They are detection probabilities; for relative size "
                         f"factors use capture='total'")
    return arr


def t_label_in_range(values) -> np.ndarray:
    """True where a labelling pulse length is valid: finite and > 0 (hours).

    The one definition of a valid ``t_label``; distribution functions return
    NaN where it is False, everything else refuses such values through
    :func:`check_t_label`.
    """
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(v) & (v > 0)


def check_t_label(t_label, n_cells: int | None = None) -> np.ndarray:
    """Validated labelling pulse lengths (hours) as float64, one per cell with
    ``n_cells`` (a scalar is broadcast). Raises a ValueError naming the first
    offending cell and the fix."""
    arr = np.asarray(t_label)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise ValueError(f"t_label must be pulse lengths in hours (numbers > 0), got dtype "
                         f"{arr.dtype}")
    arr = arr.astype(np.float64)
    if n_cells is not None:
        if arr.ndim == 0:
            arr = np.full(n_cells, float(arr))
        if arr.ndim != 1 or arr.shape[0] != n_cells:
            raise ValueError(f"t_label has shape {arr.shape} for {n_cells} cells; give one "
                             f"pulse length (hours) per cell or a single number")
    if arr.size == 0:
        raise ValueError("t_label is empty; give the pulse length in hours")
    flat = arr.reshape(-1)
    bad = ~t_label_in_range(flat)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"t_label must be a finite pulse length > 0 (hours); found "
                         f"{flat[i]:g} at cell {i}")
    return arr


def detection_in_range(values) -> np.ndarray:
    """True where a detection probability of new molecules is valid: finite and
    in (0, 1] (the probability that a molecule made during the pulse is seen as
    new; the rest are counted as old)."""
    return capture_in_range(values)


def check_detection(detection, n_cells: int | None = None) -> np.ndarray:
    """Validated detection probabilities of new molecules as float64 (one per
    cell with ``n_cells``). Raises a ValueError naming the problem and the fix."""
    arr = np.asarray(detection)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise ValueError(f"detection must be probabilities in (0, 1], got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if n_cells is not None:
        if arr.ndim == 0:
            arr = np.full(n_cells, float(arr))
        if arr.ndim != 1 or arr.shape[0] != n_cells:
            raise ValueError(f"detection has shape {arr.shape} for {n_cells} cells; give "
                             f"one probability per cell or a single number")
    flat = arr.reshape(-1)
    bad = ~detection_in_range(flat)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"detection must be a probability in (0, 1] (the chance that a "
                         f"new molecule is seen as new); found {flat[i]:g} at cell {i}")
    return arr


@dataclass(frozen=True, eq=False)
class Labelling:
    """The labelling pulse of every cell, resolved (:func:`resolve_labelling`).

    Attributes
    ----------
    t_label : ndarray of float64, shape (n_cells,)
        Pulse length of each cell, hours (> 0).
    detection : ndarray of float64, shape (n_cells,)
        Probability in (0, 1] that a captured new molecule is seen as new
        (with :attr:`estimate_detection`, a placeholder of ones: the fit
        estimates one value for all cells).
    source : dict
        Where they came from (``{"t_label": ..., "detection": ...}``, each a
        number, ``"obs:<key>"``, ``"array"`` or, for detection,
        ``"estimate"``).
    """

    t_label: np.ndarray
    detection: np.ndarray
    source: dict = field(default_factory=dict)

    @property
    def estimate_detection(self) -> bool:
        """True when the detection probability is to be estimated across genes
        (``detection="estimate"``)."""
        return self.source.get("detection") == ESTIMATE

    @property
    def pulses(self) -> np.ndarray:
        """The distinct pulse lengths, hours (ascending)."""
        return np.unique(self.t_label)

    def record(self) -> dict:
        """What to store with the results (h5ad-writable)."""
        return {"t_label": self.source.get("t_label"), "detection": self.source.get("detection"),
                "pulses_hours": self.pulses.tolist()}


#: the value of ``detection=`` that asks for one detection probability estimated across genes
ESTIMATE = "estimate"


def _per_cell(value, name, n_cells, obs, check, where="adata.obs"):
    """(per-cell array, source) of t_label or detection: a number, an array of
    one value per cell, or the name of an obs column."""
    if isinstance(value, str):
        if obs is None:
            raise ValueError(f"{name}={value!r} names an obs column, but no AnnData was given; "
                             f"pass the values (a number or one per cell) instead")
        if value not in obs.columns:
            raise KeyError(f"{name}={value!r} is not a column of {where} (columns: "
                           f"{listing(list(obs.columns))}); give a number or the obs column "
                           f"holding each cell's value")
        col = np.asarray(obs[value])
        if col.dtype == bool or col.dtype.kind not in "iuf":
            raise ValueError(f"obs[{value!r}] must hold numbers ({name}); it has dtype "
                             f"{col.dtype}")
        try:
            return check(col, n_cells), f"obs:{value}"
        except ValueError as err:
            raise ValueError(f"obs[{value!r}]: {err}") from None
    if value is None:
        raise ValueError(f"{name} is required for a labelled fit (new= given)")
    arr = check(value, n_cells)
    src = float(np.asarray(value)) if np.ndim(value) == 0 else "array"
    return arr, src


def check_labelled_layers(layer: str | None, new_layer: str | None, t_label,
                          unspliced_layer: str | None = None) -> None:
    """Check the layer arguments of a labelled fit once, wherever its counts are read
    (in memory, :func:`telegraph.tl.fit`; from disk, :func:`telegraph.fit_file`).

    Raises
    ------
    ValueError
        ``new_layer`` with ``unspliced_layer``, ``new_layer`` naming ``layer``
        (which holds the old counts), ``new_layer`` without ``t_label``, or
        ``t_label`` without ``new_layer``.
    """
    if new_layer is None:
        if t_label is not None:
            raise ValueError("t_label= needs new_layer=, the layer of new (labelled) counts "
                             "(layer= then holds the old ones)")
        return
    if unspliced_layer is not None:
        raise ValueError("give either unspliced_layer= (two species) or new_layer= "
                         "(labelling), not both")
    if new_layer == (layer or "X"):
        raise ValueError(f"new_layer={new_layer!r} is also layer=: layer= must hold the "
                         f"old (unlabelled) counts, new_layer= the new ones")
    if t_label is None:
        raise ValueError("new_layer= needs t_label=: the pulse length in hours (a number "
                         "or an obs column of per-cell values)")


def resolve_labelling(t_label, detection=config.DETECTION, *, n_cells: int,
                      obs=None, where: str = "adata.obs") -> Labelling:
    """Resolve the pulse lengths and detection probabilities of a labelled fit, once.

    Parameters
    ----------
    t_label : float, array_like (n_cells,) or str
        Pulse length in hours: one number, one per cell, or (with ``obs``) the
        name of an obs column of per-cell values (a time course).
    detection : float, array_like (n_cells,) or str
        Probability in (0, 1] that a captured new molecule is seen as new; the
        rest are counted as old. Same forms as ``t_label``, or ``"estimate"``:
        one probability shared by all cells and genes, estimated by the fit
        (:func:`telegraph.labelfit.estimate_detection`; the per-cell values
        are then a placeholder of ones). ``"estimate"`` is the only string
        that is not an obs column name; an obs column literally named
        "estimate" is refused as ambiguous.
    n_cells : int
    obs : pandas.DataFrame, optional
        ``adata.obs``, where column names are looked up.
    where : str
        What ``obs`` is, for messages (e.g. "the obs of counts.h5ad").

    Raises
    ------
    ValueError, KeyError
        Naming the problem and the fix: non-positive, non-finite or
        non-numeric pulse lengths, detection outside (0, 1], a missing obs
        column, a wrong number of values, or more than
        ``config.LABEL_MAX_PULSES`` distinct (pulse, detection) pairs.
    """
    if isinstance(t_label, str) and t_label == ESTIMATE and (
            obs is None or ESTIMATE not in obs.columns):
        raise ValueError("t_label='estimate': the pulse length cannot be estimated; give it "
                         "in hours (a number, one per cell, or an obs column); only "
                         "detection= takes 'estimate'")
    t, t_src = _per_cell(t_label, "t_label", n_cells, obs, check_t_label, where)
    if isinstance(detection, str) and detection == ESTIMATE:
        if obs is not None and ESTIMATE in obs.columns:
            raise ValueError("detection='estimate' asks for one detection probability "
                             "estimated across genes, but adata.obs also has a column named "
                             "'estimate'; rename that column (e.g. adata.obs.rename(columns="
                             "{'estimate': 'detection'})) and pass its new name to use its "
                             "values, or rename it to estimate")
        d, d_src = np.ones(n_cells), ESTIMATE
    else:
        d, d_src = _per_cell(config.DETECTION if detection is None else detection,
                             "detection", n_cells, obs, check_detection, where)
    n_pairs = np.unique(np.stack([t, d], axis=1), axis=0).shape[0] if n_cells else 0
    if n_pairs > config.LABEL_MAX_PULSES:
        raise ValueError(f"{n_pairs} distinct (t_label, detection) pairs; a labelled fit "
                         f"takes at most {config.LABEL_MAX_PULSES} (each is a cell group): "
                         f"round the pulse lengths (hours) to the times actually used")
    return Labelling(t, d, {"t_label": t_src, "detection": d_src})


def size_factors(totals) -> np.ndarray:
    """Relative size factors: each cell's total count over the mean total.

    Raises a ValueError when a cell has a total of 0 (it would have capture 0).
    """
    t = np.asarray(totals, dtype=np.float64).ravel()
    if t.size == 0 or not (t > 0).any():
        raise ValueError("capture='total' needs cells with non-zero totals")
    if (t <= 0).any():
        raise ValueError(f"capture='total': {int((t <= 0).sum())} cells have a total count "
                         "of 0; remove empty cells first (e.g. scanpy.pp.filter_cells)")
    return t / t.mean()


@dataclass(frozen=True, eq=False)
class Capture:
    """Per-cell capture, resolved: what the model sees and how to report.

    Attributes
    ----------
    efficiency : ndarray of float64 in (0, 1], shape (n_cells,), or None
        The detection probability of each cell handed to the likelihood (None:
        every molecule is counted, capture 1).
    syn_scale : float
        Size factors may exceed 1; the likelihood depends on capture only
        through ``capture * k_syn``, so they are divided by their largest
        value and ``k_syn`` and burst sizes fitted against ``efficiency`` are
        multiplied by ``syn_scale`` to be in molecules counted in a cell of
        average depth. 1 for true efficiencies.
    source : dict
        Where the capture came from: ``{"kind": "none"}``, ``{"kind":
        "value", "value": v}``, ``{"kind": "obs", "key": column}``,
        ``{"kind": "array", "values": ...}`` or ``{"kind": "total"}``.
    """

    efficiency: np.ndarray | None
    syn_scale: float = 1.0
    source: dict = field(default_factory=lambda: {"kind": "none"})

    @property
    def kind(self) -> str:
        return self.source["kind"]

    @property
    def description(self) -> str:
        """One line for humans."""
        kind = self.kind
        if kind == "none":
            return "none (capture 1)"
        if kind == "value":
            return f"{self.source['value']:g} for every cell"
        if kind == "obs":
            return f"per-cell efficiencies from obs[{self.source['key']!r}]"
        if kind == "array":
            return "per-cell efficiencies (array)"
        return "total (size factors: total count / mean total count)"

    @property
    def factors(self) -> np.ndarray | None:
        """Per-cell factors of ``k_syn`` on the user's scale: the efficiencies,
        or the size factors (total / mean total) for ``"total"``; the mean
        count of a cell is ``factors * k_syn * fraction_on / k_deg``. None
        for capture 1."""
        return None if self.efficiency is None else self.efficiency / self.syn_scale

    def record(self, arrays: bool = True) -> dict:
        """Where the capture came from, to store with results (h5ad-writable):
        the source, with the per-cell values where they came as an array
        (``arrays=False`` leaves them out, e.g. for ``DataFrame.attrs``)."""
        return _record(self.source, arrays)

    def subset(self, cells) -> "Capture":
        """The capture of some of the cells (an index or mask), same scale."""
        eff = None if self.efficiency is None else self.efficiency[cells]
        return Capture(eff, self.syn_scale, self.source)

    def to_user_scale(self, table):
        """Put ``k_syn``, burst sizes and mean expression of a result table
        (fitted against :attr:`efficiency`) on the user's scale, in place."""
        return rescale_syn(table, self.syn_scale)


def rescale_syn(table, syn_scale: float):
    """Multiply every ``k_syn*``, ``burst_size*`` and ``mean_expression*`` column of
    a result table by ``syn_scale`` (in place): the one way back from capture
    divided by its maximum (:attr:`Capture.syn_scale`) to the user's scale."""
    if syn_scale != 1.0:
        cols = [c for c in table.columns
                if str(c).startswith(("k_syn", "burst_size", "mean_expression"))]
        table[cols] *= syn_scale
    return table


def _record(source: dict, arrays: bool) -> dict:
    out = {k: v for k, v in source.items() if k != "values"}
    if arrays and "values" in source:
        out["values"] = np.asarray(source["values"], dtype=np.float64)
    return out


def capture_record(capture, arrays: bool = True) -> dict:
    """The record (:meth:`Capture.record`) of a capture argument, resolved or not."""
    if isinstance(capture, Capture):
        return capture.record(arrays)
    return _record(_source_of(capture), arrays)


def k_deg_record(k_deg, arrays: bool = True) -> dict:
    """The record (:meth:`KDeg.record`) of a k_deg argument, resolved or not."""
    if isinstance(k_deg, KDeg):
        return k_deg.record(arrays)
    if k_deg is None:
        return {"kind": "none"}
    if isinstance(k_deg, Mapping):
        return _record(dict(k_deg), arrays)
    if isinstance(k_deg, str):
        return {"kind": "var", "key": k_deg}
    if _is_number(k_deg) or np.ndim(k_deg) == 0:
        return {"kind": "value", "value": float(k_deg)}
    return _record({"kind": "array", "values": k_deg}, arrays)


def _source_of(capture) -> dict:
    """The source dict of a user's capture argument (validated later)."""
    if capture is None:
        return {"kind": "none"}
    if isinstance(capture, Mapping):  # a recorded source (Capture.record)
        kind = capture.get("kind")
        if kind not in ("none", "value", "obs", "array", "total"):
            raise ValueError(f"not a recorded capture: {dict(capture)!r}")
        return dict(capture)
    if isinstance(capture, str):
        return {"kind": "total"} if capture == "total" else {"kind": "obs", "key": capture}
    if _is_number(capture):
        return {"kind": "value", "value": float(capture)}
    return {"kind": "array", "values": capture}


def resolve_captures(captures, *, n_cells, obs=None, totals=None,
                     where: str = "obs") -> list[Capture]:
    """Resolve the capture of one or more groups of cells onto one scale.

    Parameters
    ----------
    captures : sequence
        One user argument per group: None (capture 1), a number in (0, 1]
        for every cell, an array of per-cell efficiencies, the name of an obs
        column, ``"total"`` (size factors from total counts), or a source
        recorded by an earlier fit (:meth:`Capture.record`), or a
        :class:`Capture` (returned as it is).
    n_cells : sequence of int
        Cells of each group.
    obs : sequence of pandas.DataFrame, optional
        Cell annotations of each group, for column names.
    totals : sequence of (array or callable), optional
        Total count of each cell of each group, or functions computing it
        (called only for ``"total"``: it costs a pass over the counts).
    where : str
        How to name ``obs`` in messages (e.g. ``"adata.obs"``).

    Returns
    -------
    list of Capture

    Notes
    -----
    ``"total"`` must be used for all groups or none: size factors are the
    cells' totals over the mean total of *all* cells of the groups, so that
    burst sizes of the groups are in the same units; they are then divided
    by their common maximum (:attr:`Capture.syn_scale`).
    """
    captures = list(captures)
    n_groups = len(captures)
    obs = [None] * n_groups if obs is None else list(obs)
    totals = [None] * n_groups if totals is None else list(totals)
    if all(isinstance(c, Capture) for c in captures):
        return captures
    sources = [_source_of(c) for c in captures]
    kinds = [s["kind"] for s in sources]
    if "total" in kinds:
        if any(k != "total" for k in kinds):
            raise ValueError("capture='total' must be used for both groups (size factors are "
                             "relative to the mean total of all cells), or for neither")
        parts = []
        for t, n in zip(totals, n_cells):
            if t is None:
                raise ValueError("capture='total' needs the cells' total counts")
            t = np.asarray(t() if callable(t) else t, dtype=np.float64).ravel()
            if t.shape[0] != n:
                raise ValueError(f"totals has {t.shape[0]} values for {n} cells")
            parts.append(t)
        s = size_factors(np.concatenate(parts))
        bounds = np.cumsum([0] + [p.shape[0] for p in parts])
        effs = [s[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    else:
        effs = [_efficiency(src, n, o, where) for src, n, o in zip(sources, n_cells, obs)]
    top = max((float(e.max()) for e in effs if e is not None and e.size), default=1.0)
    syn_scale = 1.0
    if top > 1.0:
        # the likelihood depends on capture * k_syn only: fit with s / max(s)
        syn_scale = 1.0 / top
        effs = [None if e is None else e / top for e in effs]
    return [Capture(e, syn_scale, src) for e, src in zip(effs, sources)]


def _efficiency(source, n_cells, obs, where):
    kind = source["kind"]
    if kind == "none":
        return None
    if kind == "value":
        return check_capture(source["value"], n_cells)
    if kind == "array":
        return check_capture(source["values"], n_cells)
    key = source["key"]
    if obs is None:
        raise ValueError(f"capture={key!r} is not understood: give per-cell efficiencies (an "
                         "array), one number, 'total' (size factors from total counts), or "
                         "an obs column name with tg.tl.fit")
    if key not in obs.columns:
        raise KeyError(f"capture column {key!r} not found in {where} (columns: "
                       f"{listing(obs.columns)}); or pass capture='total' for size factors "
                       f"from total counts")
    what = f"capture={key!r} (column {key!r} of {where})"
    values = np.asarray(obs[key])   # a categorical column gives its values' own type
    if values.dtype == object and all(_is_number(v) for v in values.ravel()):
        values = values.astype(np.float64)
    if values.dtype == bool or values.dtype.kind not in "iuf":
        kind = "boolean" if values.dtype == bool else "non-numeric"
        first = values.ravel()[0] if values.size else None
        first = first.item() if isinstance(first, np.generic) else first
        raise ValueError(f"{what} holds {kind} values (dtype {obs[key].dtype}, e.g. "
                         f"{first!r}), not capture efficiencies: give a numeric column of "
                         f"detection probabilities in (0, 1], or capture='total' for size "
                         f"factors from total counts")
    try:
        return check_capture(values, n_cells)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def resolve_capture(capture, *, n_cells: int, obs=None, totals=None,
                    where: str = "obs") -> Capture:
    """Resolve one capture argument (see :func:`resolve_captures`)."""
    return resolve_captures([capture], n_cells=[n_cells], obs=[obs], totals=[totals],
                            where=where)[0]


# --------------------------------------------------------------------------- planned capture


@dataclass(frozen=True, eq=False)
class CaptureDistribution:
    """The capture efficiencies of a planned experiment's cells, as a distribution.

    Attributes
    ----------
    values : ndarray of float64 in (0, 1], shape (n_groups,)
        Distinct capture efficiencies (detection probability per molecule).
    weights : ndarray of float64, shape (n_groups,)
        Fraction of the cells with each value (summing to 1).
    """

    values: np.ndarray
    weights: np.ndarray

    @property
    def mean(self) -> float:
        """Mean capture efficiency over cells."""
        return float(np.dot(self.values, self.weights))

    def scaled(self, factor: float) -> tuple["CaptureDistribution", np.ndarray]:
        """Every efficiency times ``factor`` (> 0), those above 1 set to 1.

        Returns the new distribution and, per group, 1.0 where the efficiency
        moves with ``factor`` (not clipped at 1), else 0.0.
        """
        raw = self.values * float(factor)
        moving = (raw < 1.0).astype(np.float64)
        return CaptureDistribution(np.minimum(raw, 1.0), self.weights), moving


def capture_distribution(capture) -> CaptureDistribution:
    """A planned experiment's capture, validated: one value, or values with weights.

    Parameters
    ----------
    capture : float, (values, weights) pair, mapping, or CaptureDistribution
        One efficiency in (0, 1] for every cell; or a pair (or a mapping with
        keys ``"values"`` and ``"weights"``) of equal-length 1-D arrays: the
        distinct efficiencies and the fraction (or number) of cells with each.
        A per-cell array is grouped by :func:`telegraph.design` first.

    Raises
    ------
    ValueError
        Naming the problem and the form expected.
    """
    if isinstance(capture, CaptureDistribution):
        return capture
    if isinstance(capture, Mapping):
        missing = {"values", "weights"} - set(capture)
        if missing:
            raise ValueError(f"a capture distribution needs keys 'values' and 'weights'; "
                             f"missing {sorted(missing)}")
        capture = (capture["values"], capture["weights"])
    if isinstance(capture, tuple) and len(capture) == 2:
        values = check_capture(np.atleast_1d(np.asarray(capture[0], dtype=np.float64)))
        weights = np.atleast_1d(np.asarray(capture[1], dtype=np.float64))
        if values.ndim != 1 or weights.shape != values.shape:
            raise ValueError(f"capture (values, weights) must be two 1-D arrays of the same "
                             f"length; got shapes {values.shape} and {weights.shape}")
        if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
            raise ValueError("capture weights must be finite, >= 0 and not all 0 (the "
                             "fraction or number of cells with each efficiency)")
        return CaptureDistribution(values, weights / weights.sum())
    arr = np.asarray(capture)
    if arr.ndim != 0:
        raise ValueError(f"capture must be one efficiency, a (values, weights) pair or a "
                         f"per-cell array; got an array of shape {arr.shape} here")
    value = check_capture(arr)
    return CaptureDistribution(np.atleast_1d(value), np.ones(1))


# --------------------------------------------------------------------------- k_deg


@dataclass(frozen=True, eq=False)
class KDeg:
    """Per-gene mRNA degradation rates, resolved.

    Attributes
    ----------
    values : ndarray of float64, shape (n_genes,), or None
        Degradation rate of each gene, per unit time; None when not given
        (all rates are then reported in units of k_deg).
    source : dict
        ``{"kind": "none"}``, ``{"kind": "value", "value": v}``, ``{"kind":
        "var", "key": column}`` or ``{"kind": "array", "values": ...}``.
    """

    values: np.ndarray | None
    source: dict = field(default_factory=lambda: {"kind": "none"})

    @property
    def given(self) -> bool:
        return self.values is not None

    @property
    def description(self) -> str:
        kind = self.source["kind"]
        if kind == "none":
            return "none (rates in units of k_deg)"
        if kind == "value":
            return f"{self.source['value']:g} per unit time for every gene"
        if kind == "var":
            return f"per gene from var[{self.source['key']!r}], per unit time"
        return "per gene (array), per unit time"

    def record(self, arrays: bool = True) -> dict:
        """Where the rates came from (as :meth:`Capture.record`)."""
        return _record(self.source, arrays)

    def subset(self, genes) -> "KDeg":
        """The rates of some of the genes (positions or mask)."""
        return self if self.values is None else KDeg(self.values[genes], self.source)


def resolve_k_deg(k_deg, *, n_genes: int, var=None, where: str = "var") -> KDeg:
    """Resolve a degradation-rate argument.

    Parameters
    ----------
    k_deg : None, float, array_like of shape (n_genes,), str, dict or KDeg
        Per-gene rate per unit time (e.g. ln 2 / half-life): one value for
        every gene, an array, the name of a ``var`` column, a recorded source
        (:meth:`KDeg.record`), or an already resolved :class:`KDeg`.
    n_genes : int
    var : pandas.DataFrame, optional
        Gene annotations, for column names.
    where : str
        How to name ``var`` in messages.
    """
    if isinstance(k_deg, KDeg):
        return k_deg
    if k_deg is None:
        return KDeg(None)
    if isinstance(k_deg, Mapping):
        source = dict(k_deg)
        kind = source.get("kind")
        if kind == "none":
            return KDeg(None)
        if kind not in ("value", "var", "array"):
            raise ValueError(f"not a recorded k_deg: {source!r}")
        inner = {"value": source.get("value"), "var": source.get("key"),
                 "array": source.get("values")}[kind]
        return resolve_k_deg(inner, n_genes=n_genes, var=var, where=where)
    if isinstance(k_deg, str):
        if var is None or k_deg not in var.columns:
            cols = "none" if var is None else listing(var.columns)
            raise KeyError(f"k_deg column {k_deg!r} not found in {where} (columns: {cols})")
        values = var[k_deg].to_numpy(dtype=float)
        source = {"kind": "var", "key": k_deg}
    elif _is_number(k_deg) or np.ndim(k_deg) == 0:
        values = np.full(n_genes, float(k_deg))
        source = {"kind": "value", "value": float(k_deg)}
    else:
        values = np.asarray(k_deg, dtype=float).ravel()
        source = {"kind": "array", "values": values}
    if values.shape[0] != n_genes:
        raise ValueError(f"k_deg has {values.shape[0]} values for {n_genes} genes; give one "
                         f"per gene (or a var column name)")
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError("k_deg must be positive and finite (per unit time) for every gene")
    return KDeg(values, source)


# --------------------------------------------------------------------------- genes


def gene_positions(genes, names, *, where: str = "var_names",
                   allow_empty: bool = False) -> np.ndarray:
    """Positions (int64, in the order given) of a gene selection.

    Parameters
    ----------
    genes : str, sequence of str, boolean mask, integer indices, or slice
        Gene names (a name appearing twice in ``names`` means its first
        occurrence), a mask over all genes, positions (negative ones count
        from the end), or a slice.
    names : sequence of str
        All gene names, in order.
    where : str
        How to name ``names`` in messages.
    allow_empty : bool
        Whether selecting no gene is fine.
    """
    names = np.asarray(names, dtype=object)
    n = names.shape[0]
    if isinstance(genes, slice):
        idx = np.arange(n)[genes]
    else:
        arr = np.asarray(genes)
        if arr.ndim == 0:
            arr = arr[None]
        if arr.size == 0:
            idx = np.zeros(0, np.int64)
        elif arr.dtype == bool:
            if arr.shape != (n,):
                raise ValueError(f"boolean genes mask has {arr.shape[0]} entries for {n} genes")
            idx = np.flatnonzero(arr)
        elif arr.dtype.kind in "OUS":
            pos = {}
            for i, name in enumerate(names):
                pos.setdefault(str(name), i)
            missing = [str(g) for g in arr if str(g) not in pos]
            if missing:
                raise KeyError(f"{len(missing)} gene(s) not in {where}, e.g. "
                               f"{listing(missing, 3)}")
            idx = np.array([pos[str(g)] for g in arr], np.int64)
        elif arr.dtype.kind in "iu":
            idx = arr.astype(np.int64).ravel()
            if idx.size and (idx.min() < -n or idx.max() >= n):
                raise IndexError(f"gene index out of range for {n} genes")
            idx = np.where(idx < 0, idx + n, idx)
        else:
            raise ValueError(f"genes must be names, a boolean mask or column indices, got "
                             f"dtype {arr.dtype}")
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size == 0 and not allow_empty:
        raise ValueError("genes selects no gene")
    return idx


# --------------------------------------------------------------------------- settings


def resolve_profile(profile) -> tuple:
    """The quantities to profile: ``"all"`` (every one of
    ``config.PROFILE_TARGETS``), a comma-separated string, or a sequence of
    names (``()``: none)."""
    if isinstance(profile, str):
        if profile.strip().lower() == "all":
            return tuple(config.PROFILE_TARGETS)
        profile = [p.strip() for p in profile.split(",") if p.strip()]
    return tuple(profile)


@dataclass(frozen=True)
class FitSettings:
    """Settings of a fit, validated on creation and stored with the results.

    Attributes
    ----------
    ci : float
        Confidence level of the intervals, in (0, 1).
    interval : {"profile", "wald"}
    min_cells : int
        Genes with fewer non-missing cells are not fitted.
    profile : tuple of str or "all"
        Quantities that get profile intervals when ``interval="profile"`` (of
        ``config.PROFILE_TARGETS``; default ``config.PROFILE``, burst frequency
        and burst size; ``"all"``: all four); the others get Wald intervals.
    max_iter : int
        Newton iterations per optimisation.
    gof_min_expected : float
        Smallest expected count of a pooled goodness-of-fit cell (0: no
        goodness of fit).
    """

    ci: float = config.CI
    interval: str = config.INTERVAL
    min_cells: int = config.MIN_CELLS
    profile: tuple = config.PROFILE
    max_iter: int = config.MAX_ITER
    gof_min_expected: float = config.GOF_MIN_EXPECTED

    def __post_init__(self):
        if not (_is_number(self.ci) and 0 < self.ci < 1):
            hint = (f" (did you mean {self.ci / 100:g}?)"
                    if _is_number(self.ci) and 50 <= self.ci < 100 else "")
            raise ValueError(f"ci is a confidence level in (0, 1), got {self.ci}{hint}")
        if self.interval not in ("profile", "wald"):
            raise ValueError(f"interval must be 'profile' or 'wald'; got {self.interval!r}")
        if not isinstance(self.min_cells, (numbers.Integral, np.integer)) \
                or isinstance(self.min_cells, bool) or self.min_cells < 1:
            raise ValueError(f"min_cells must be a whole number of at least 1; got "
                             f"{self.min_cells!r}")
        profile = resolve_profile(self.profile)
        object.__setattr__(self, "profile", profile)
        unknown = set(self.profile) - set(config.PROFILE_TARGETS)
        if unknown:
            raise ValueError(f"profile targets must be among {config.PROFILE_TARGETS}; got "
                             f"{sorted(unknown)}")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be at least 1; got {self.max_iter}")
        object.__setattr__(self, "profile", tuple(self.profile))

    def record(self) -> dict:
        """The settings as stored with the results (h5ad-writable)."""
        return {"ci": float(self.ci), "interval": self.interval,
                "min_cells": int(self.min_cells), "profile": list(self.profile),
                "max_iter": int(self.max_iter),
                "gof_min_expected": float(self.gof_min_expected)}


@dataclass(frozen=True)
class DifferentialSettings:
    """Settings of a differential test beyond those of its fits, validated on
    creation and stored with the results.

    Attributes
    ----------
    calibration : {"bootstrap", "chi2"}
        Null law of the likelihood-ratio statistics: chi2(1) scaled per regime
        class by a parametric bootstrap, or chi2(1) itself.
    weighting : {"information", "none"}
        Weighted Benjamini-Hochberg with information weights, or plain.
    """

    calibration: str = config.CALIBRATION
    weighting: str = config.WEIGHTING

    def __post_init__(self):
        if self.calibration not in ("bootstrap", "chi2"):
            raise ValueError(f"calibration must be 'bootstrap' (null law from the data) or "
                             f"'chi2' (plain chi-square(1)); got {self.calibration!r}")
        weighting = "none" if self.weighting is None else self.weighting
        if weighting not in ("information", "none"):
            raise ValueError(f"weighting must be 'information' (weighted Benjamini-Hochberg) "
                             f"or 'none' (plain Benjamini-Hochberg); got {self.weighting!r}")
        object.__setattr__(self, "weighting", weighting)

    def record(self) -> dict:
        """The settings as stored with the results (h5ad-writable)."""
        return {"calibration": self.calibration, "weighting": self.weighting}


def depth_ratio(totals1, totals2) -> float:
    """Ratio of the larger to the smaller median total count per cell of two
    groups (arrays or functions returning them); NaN when a median is 0."""
    m = [float(np.median(np.asarray(t() if callable(t) else t, dtype=float)))
         for t in (totals1, totals2)]
    lo, hi = min(m), max(m)
    return hi / lo if lo > 0 else float("nan")


def depth_warning(totals1, totals2, captures, *, option: str = "capture=") -> str | None:
    """The note to give when two groups' sequencing depths differ and no
    capture was given, else None.

    Without capture the model reads every count as molecules, so a group
    sequenced deeper looks like one with larger or more frequent bursts. The
    note names ``option``, the argument that supplies capture."""
    kinds = [c.kind if isinstance(c, Capture) else _source_of(c)["kind"] for c in captures]
    if any(k != "none" for k in kinds):
        return None
    ratio = depth_ratio(totals1, totals2)
    if not (ratio > config.DEPTH_RATIO_WARN):
        return None
    return (f"the two groups' median total counts per cell differ {ratio:.2f}-fold and no "
            f"capture was given: a difference in sequencing depth shows up as differential "
            f"bursting; give per-cell capture efficiencies or size factors with {option} "
            f"(e.g. {option}'total')")


def totals_of(X) -> Callable[[], np.ndarray]:
    """A deferred :func:`row_totals` of ``X`` (for ``totals=`` above)."""
    return lambda: row_totals(X)
