"""Simulation-study datasets: AnnData objects simulated from known kinetics.

:func:`simulate_anndata` draws (or takes) per-gene telegraph kinetics, per-cell
capture efficiencies and optional cell groups whose kinetics differ by known
fold changes, runs the Gillespie simulator (:func:`telegraph.simulate`) and
returns a cells x genes AnnData with the truth stored beside the counts, ready
for the fitting and testing tools.

It is built from steps that other generators (:func:`telegraph.datasets.example`)
reuse, each doing one thing:

- priors: :data:`KINETICS_PRIOR` and :func:`draw_prior_kinetics` (log-uniform
  kinetics), :data:`CAPTURE_PRIOR` and :func:`draw_capture` (log-normal capture);
- the truth: :func:`gene_kinetics` (given or drawn per-gene rates),
  :func:`group_rates` (one group's rates from fold changes), :func:`cell_groups`
  (the groups of :func:`simulate_anndata`: names, rates and sizes),
  :func:`cell_capture` (given or drawn capture);
- cells: :func:`assign_cells` (cell -> group and cell -> sampling time);
- counts: :func:`sample_ssa` (exact paths, any time and initial state) or
  :func:`sample_stationary` (exact draws from the stationary law);
- output: :func:`truth_var` and :func:`assemble_anndata`;
- metabolic labelling: :func:`simulate_labelled_anndata` (new and old layers
  after a labelling pulse of known length, rates per hour) from
  :func:`sample_ssa_labelled` (exact paths of
  :func:`telegraph.network.labelled_model` from the exact stationary state).

All rates are per unit time; with k_deg = 1 time is measured in mRNA lifetimes
and the rates are in units of k_deg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import config
from .inputs import check_capture, check_detection, check_t_label, gene_positions
from .network import labelled_model
from .ssa import RATE_NAMES, simulate, stationary_state

if TYPE_CHECKING:
    import anndata

__all__ = [
    "KINETICS_PRIOR", "CAPTURE_PRIOR", "PRIOR_DRAW_ORDER",
    "draw_prior_kinetics", "gene_kinetics", "draw_capture", "cell_capture",
    "group_rates", "cell_groups", "assign_cells", "sample_ssa", "sample_stationary",
    "gene_names", "cell_names", "truth_var", "assemble_anndata", "simulate_anndata",
    "HALF_LIFE_PRIOR", "sample_ssa_labelled", "simulate_labelled_anndata",
]

#: Log-uniform prior of the kinetics, ``name: (low, high)``, in units of k_deg:
#: burst frequency k_on/k_deg, promoter inactivation k_off/k_deg and burst size
#: k_syn/k_off (a count, not a rate). Spans the regimes seen in real data: rare
#: to frequent bursts, small to large bursts.
KINETICS_PRIOR: Mapping[str, tuple[float, float]] = {
    "k_on": (0.05, 5.0),
    "k_off": (0.5, 20.0),
    "burst_size": (2.0, 50.0),
}

#: Order in which :func:`simulate_anndata` draws the prior (it fixes which
#: random numbers each quantity gets for a given seed).
PRIOR_DRAW_ORDER: tuple[str, ...] = ("k_on", "k_off", "burst_size")

#: Log-normal prior of the per-cell capture efficiency:
#: ``clip(lognormal(log(median), log_sd), low, high)``.
CAPTURE_PRIOR: Mapping[str, float] = {"median": 0.3, "log_sd": 0.35, "low": 0.02, "high": 1.0}

_GROUP_KEYS = set(RATE_NAMES) | {"fraction", "genes"}


# -- argument checks ----------------------------------------------------------------------
def _per_gene(name, value, n_genes):
    v = np.asarray(value, dtype=float)
    if v.ndim == 0:
        v = np.full(n_genes, float(v))
    if v.shape != (n_genes,):
        raise ValueError(f"{name} must be a scalar or have one value per gene "
                         f"(length {n_genes}), got shape {v.shape}")
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"{name} must be finite and > 0")
    return v


def _check_n_cells(n_cells):
    if not isinstance(n_cells, (int, np.integer)) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}")


def _sampling_times(t, initial):
    """The sampling times as a 1-D float array (default 1.0 when stationary)."""
    if initial not in ("stationary", "off", "on"):
        raise ValueError(f"initial must be 'stationary', 'off' or 'on', got {initial!r}")
    if t is None:
        if initial != "stationary":
            raise ValueError(f"give the sampling time t for initial={initial!r} (e.g. "
                             "t=[0.5, 1, 2, 4] for an induction time course)")
        t = 1.0
    times = np.atleast_1d(np.asarray(t, float))
    if times.ndim != 1 or times.size == 0:
        raise ValueError("t must be a scalar or a non-empty 1-D array")
    return times


def _n_genes(n_genes, rates):
    """``n_genes``, or the length of the first per-gene rate array, else 100."""
    if n_genes is None:
        lens = [np.size(v) for v in rates if v is not None and np.ndim(v) == 1]
        n_genes = lens[0] if lens else 100
    if not isinstance(n_genes, (int, np.integer)) or n_genes < 1:
        raise ValueError(f"n_genes must be a positive integer, got {n_genes!r}")
    return n_genes


def _gene_mask(genes, n_genes, gene_names):
    """Mask of the genes a group's fold changes apply to (all when None)."""
    mask = np.zeros(n_genes, bool)
    if genes is None:
        mask[:] = True
    else:
        mask[gene_positions(genes, gene_names, where="the simulated genes",
                            allow_empty=True)] = True
    return mask


# -- priors -------------------------------------------------------------------------------
def draw_prior_kinetics(rng: np.random.Generator, n_genes: int,
                        order: Sequence[str] = PRIOR_DRAW_ORDER) -> dict[str, np.ndarray]:
    """Draw per-gene kinetics from the log-uniform prior :data:`KINETICS_PRIOR`.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draws; ``n_genes`` uniforms are taken per quantity.
    n_genes : int
        Number of genes.
    order : sequence of str
        The quantities of :data:`KINETICS_PRIOR` to draw, in the order their
        random numbers are taken (default :data:`PRIOR_DRAW_ORDER`).

    Returns
    -------
    dict of str to numpy.ndarray
        ``{name: (n_genes,) array}`` for each name in ``order``: ``"k_on"`` and
        ``"k_off"`` in units of k_deg (per mRNA lifetime), ``"burst_size"``
        (k_syn/k_off, mRNAs per burst).
    """
    return {name: 10.0 ** rng.uniform(np.log10(KINETICS_PRIOR[name][0]),
                                      np.log10(KINETICS_PRIOR[name][1]), n_genes)
            for name in order}


def gene_kinetics(drawn: Mapping[str, np.ndarray], *, k_on=None, k_off=None, k_syn=None,
                  k_deg=1.0) -> dict[str, np.ndarray]:
    """Per-gene telegraph rates: the given ones, the rest from prior draws.

    Parameters
    ----------
    drawn : mapping
        Draws of :func:`draw_prior_kinetics` (``"k_on"``, ``"k_off"`` in units
        of k_deg and ``"burst_size"``), one value per gene.
    k_on, k_off, k_syn : float or array (n_genes,), optional
        Given promoter activation, inactivation and transcription rates per
        unit time (> 0). None takes ``drawn["k_on"] * k_deg``,
        ``drawn["k_off"] * k_deg`` and ``drawn["burst_size"] * k_off``.
    k_deg : float or array (n_genes,)
        mRNA degradation rate per unit time (default 1: time in mRNA
        lifetimes, all rates in units of k_deg).

    Returns
    -------
    dict of str to numpy.ndarray
        ``{"k_on", "k_off", "k_syn", "k_deg"}``, each a float array
        ``(n_genes,)`` of rates per unit time.

    Raises
    ------
    ValueError
        If a given rate is not finite and > 0 or has the wrong length.
    """
    n_genes = len(next(iter(drawn.values())))
    kdeg = _per_gene("k_deg", k_deg, n_genes)
    kon = _per_gene("k_on", k_on, n_genes) if k_on is not None else drawn["k_on"] * kdeg
    koff = _per_gene("k_off", k_off, n_genes) if k_off is not None else drawn["k_off"] * kdeg
    ksyn = (_per_gene("k_syn", k_syn, n_genes) if k_syn is not None
            else drawn["burst_size"] * koff)
    return dict(zip(RATE_NAMES, (kon, koff, ksyn, kdeg)))


def draw_capture(rng: np.random.Generator, n_cells: int) -> np.ndarray:
    """Draw per-cell capture efficiencies from the prior :data:`CAPTURE_PRIOR`.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draws (``n_cells`` normals).
    n_cells : int
        Number of cells.

    Returns
    -------
    numpy.ndarray
        ``clip(lognormal(log 0.3, 0.35), 0.02, 1)``, shape ``(n_cells,)``.
    """
    p = CAPTURE_PRIOR
    return np.clip(rng.lognormal(np.log(p["median"]), p["log_sd"], n_cells),
                   p["low"], p["high"])


def cell_capture(rng: np.random.Generator, capture, n_cells: int) -> np.ndarray:
    """Per-cell capture efficiencies: the given ones, or drawn from the prior.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draws (used only when ``capture`` is None).
    capture : float, array (n_cells,) or None
        Capture efficiency in (0, 1] per cell; None draws :func:`draw_capture`.
    n_cells : int
        Number of cells.

    Returns
    -------
    numpy.ndarray
        Float array ``(n_cells,)`` with values in (0, 1].

    Raises
    ------
    ValueError
        If a given capture is outside (0, 1] or has the wrong length.
    """
    if capture is None:
        return draw_capture(rng, n_cells)
    return check_capture(capture, n_cells)


# -- groups and cells ---------------------------------------------------------------------
def group_rates(name, spec: Mapping | None, base: Mapping[str, np.ndarray],
                gene_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The rates of one cell group: base rates times the group's fold changes.

    Parameters
    ----------
    name : hashable
        Group name (used in error messages).
    spec : mapping or None
        Optional keys ``"k_on"``, ``"k_off"``, ``"k_syn"``, ``"k_deg"`` (fold
        changes > 0, scalar or per-gene array, default 1), ``"genes"``
        (indices, names or a boolean mask restricting the fold changes to
        those genes) and ``"fraction"`` (ignored here; see :func:`cell_groups`).
    base : mapping
        Base rates per unit time, ``{rate: (n_genes,) array}`` for every rate
        in ``RATE_NAMES``.
    gene_names : sequence of str
        Gene names, to resolve names in ``"genes"``.

    Returns
    -------
    dict of str to numpy.ndarray
        ``{rate: (n_genes,) array}``, rates per unit time of this group.

    Raises
    ------
    ValueError
        On unknown keys, bad gene selections or fold changes not > 0.
    """
    spec = dict(spec or {})
    bad = set(spec) - _GROUP_KEYS
    if bad:
        raise ValueError(f"group {name!r}: unknown keys {sorted(bad)}; allowed are "
                         f"{sorted(_GROUP_KEYS)}")
    n_genes = len(gene_names)
    mask = _gene_mask(spec.get("genes"), n_genes, gene_names)
    rates = {}
    for r in RATE_NAMES:
        fold = _per_gene(f"group {name!r} fold change {r}", spec.get(r, 1.0), n_genes)
        rates[r] = np.where(mask, base[r] * fold, base[r])
    return rates


def _group_fractions(fracs):
    """Fractions with the unspecified ones (NaN) splitting the rest equally."""
    fracs = np.array(fracs, float)
    given = np.nansum(fracs)
    if np.any(fracs[~np.isnan(fracs)] < 0) or given > 1 + 1e-12:
        raise ValueError("group fractions must be >= 0 and sum to at most 1")
    n_free = np.isnan(fracs).sum()
    if n_free:
        fracs[np.isnan(fracs)] = (1.0 - given) / n_free
    elif abs(given - 1) > 1e-9:
        raise ValueError(f"group fractions sum to {given:g}; they must sum to 1 "
                         "(or leave some unspecified)")
    return fracs


def _group_sizes(fracs, n_cells):
    fracs = np.asarray(fracs, float)
    exact = fracs * n_cells
    sizes = np.floor(exact).astype(int)
    # largest remainders get the leftover cells
    order = np.argsort(-(exact - sizes), kind="stable")
    sizes[order[: n_cells - sizes.sum()]] += 1
    return sizes


def cell_groups(groups: Mapping | None, base: Mapping[str, np.ndarray], n_cells: int,
                gene_names: Sequence[str]
                ) -> tuple[list[str] | None, list[dict[str, np.ndarray]], np.ndarray]:
    """Group specifications -> group names, per-group rates and cell counts.

    Parameters
    ----------
    groups : mapping or None
        ``{name: spec}`` in order, specs as in :func:`group_rates`; a spec's
        ``"fraction"`` is its share of the cells, groups without one split
        the rest equally. None: one group with the base rates.
    base : mapping
        Base rates per unit time, ``{rate: (n_genes,) array}``.
    n_cells : int
        Number of cells to split (largest remainders get the leftover cells).
    gene_names : sequence of str
        Gene names, to resolve names in a spec's ``"genes"``.

    Returns
    -------
    names : list of str or None
        Group names as strings (None when ``groups`` is None).
    rates : list of dict
        Rates per unit time of each group (``[base]`` when ``groups`` is None).
    sizes : numpy.ndarray of int
        Number of cells per group, summing to ``n_cells``.

    Raises
    ------
    ValueError
        On an empty or non-mapping ``groups``, a bad spec, or fractions that
        are negative or do not sum to 1.
    """
    if groups is None:
        return None, [base], np.array([n_cells])
    if not isinstance(groups, Mapping) or len(groups) == 0:
        raise ValueError("groups must be a non-empty mapping {name: spec}")
    rates = [group_rates(name, spec, base, gene_names) for name, spec in groups.items()]
    fracs = _group_fractions([dict(spec or {}).get("fraction", np.nan)
                              for spec in groups.values()])
    return [str(name) for name in groups], rates, _group_sizes(fracs, n_cells)


def assign_cells(rng: np.random.Generator, sizes, n_times: int = 1
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Assign cells to groups (shuffled) and, within each group, to sampling times.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the one shuffle.
    sizes : array of int
        Number of cells per group; the cells are ``sum(sizes)``.
    n_times : int
        Number of sampling times; each group's cells cycle through them, so
        every group is split as evenly as possible over the times.

    Returns
    -------
    group_of : numpy.ndarray of int
        Group index of each cell, groups interleaved at random.
    time_of : numpy.ndarray of int
        Time index of each cell.
    """
    group_of = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(group_of)
    time_of = np.zeros(group_of.size, int)
    for gi in range(len(sizes)):
        cells = np.flatnonzero(group_of == gi)
        time_of[cells] = np.arange(cells.size) % n_times
    return group_of, time_of


# -- counts -------------------------------------------------------------------------------
def sample_ssa(rates: Sequence[Mapping[str, np.ndarray]], group_of: np.ndarray,
               time_of: np.ndarray, times: np.ndarray, capture: np.ndarray, *,
               initial: str = "stationary", seed=None) -> np.ndarray:
    """Counts from exact telegraph paths (Gillespie SSA), one run per (group, time).

    Parameters
    ----------
    rates : sequence of mapping
        Per group, ``{rate: (n_genes,) array}`` of rates per unit time.
    group_of, time_of : numpy.ndarray of int
        Group and time index of each cell (:func:`assign_cells`).
    times : numpy.ndarray
        Sampling times, in the time unit of the rates.
    capture : numpy.ndarray
        Capture efficiency in (0, 1] per cell (binomial thinning).
    initial : {"stationary", "off", "on"}
        State at time 0 (see :func:`telegraph.simulate`).
    seed : int, numpy.random.SeedSequence or None
        Seed; block ``(group, time)`` in row-major order gets the matching
        child of its :meth:`~numpy.random.SeedSequence.spawn`.

    Returns
    -------
    numpy.ndarray of int64
        Counts, cells x genes.
    """
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    counts = np.zeros((group_of.size, rates[0]["k_on"].size), np.int64)
    blocks = [(gi, ti) for gi in range(len(rates)) for ti in range(len(times))]
    for (gi, ti), child in zip(blocks, ss.spawn(len(blocks))):
        cells = np.flatnonzero((group_of == gi) & (time_of == ti))
        if cells.size == 0:
            continue
        r = rates[gi]
        counts[cells] = simulate(r["k_on"], r["k_off"], r["k_syn"], r["k_deg"],
                                 n_cells=int(cells.size), t=float(times[ti]),
                                 capture=capture[cells], seed=child, initial=initial)
    return counts


def sample_stationary(rng: np.random.Generator, rates: Sequence[Mapping[str, np.ndarray]],
                      group_of: np.ndarray, capture: np.ndarray) -> np.ndarray:
    """Counts drawn exactly from the stationary telegraph law with binomial capture.

    Per cell c and gene, ``p ~ Beta(k_on/k_deg, k_off/k_deg)`` and
    ``n ~ Poisson(capture_c * k_syn/k_deg * p)`` (binomial capture of a
    Poisson mixture is again a Poisson mixture), with the rates of the cell's
    group. All the Beta draws come first, then all the Poisson draws, each
    in cell-major order.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draws.
    rates : sequence of mapping
        Per group, ``{rate: (n_genes,) array}`` of rates per unit time (only
        their ratios to k_deg matter).
    group_of : numpy.ndarray of int
        Group index of each cell.
    capture : numpy.ndarray
        Capture efficiency in (0, 1] per cell.

    Returns
    -------
    numpy.ndarray of int64
        Counts, cells x genes.
    """
    def per_cell(r):  # (n_cells, n_genes) rate r / k_deg
        return np.stack([g[r] / g["k_deg"] for g in rates])[group_of]

    p = rng.beta(per_cell("k_on"), per_cell("k_off"))
    return rng.poisson(capture[:, None] * per_cell("k_syn") * p).astype(np.int64)


# -- output -------------------------------------------------------------------------------
def gene_names(n_genes: int) -> list[str]:
    """Gene names ``gene0000``, ``gene0001``, ...

    Parameters
    ----------
    n_genes : int
        Number of genes.

    Returns
    -------
    list of str
    """
    return [f"gene{j:04d}" for j in range(n_genes)]


def cell_names(n_cells: int) -> list[str]:
    """Cell names ``cell00000``, ``cell00001``, ...

    Parameters
    ----------
    n_cells : int
        Number of cells.

    Returns
    -------
    list of str
    """
    return [f"cell{i:05d}" for i in range(n_cells)]


def truth_var(genes: Sequence[str], base: Mapping[str, np.ndarray],
              group_names: Sequence[str] | None = None,
              rates: Sequence[Mapping[str, np.ndarray]] | None = None) -> pd.DataFrame:
    """The true kinetics per gene, as the ``var`` of :func:`simulate_anndata`.

    Parameters
    ----------
    genes : sequence of str
        Gene names (the index).
    base : mapping
        Base rates per unit time, ``{rate: (n_genes,) array}``.
    group_names, rates : sequences, optional
        Names and rates per unit time of the cell groups (None: no groups).

    Returns
    -------
    pandas.DataFrame
        ``true_k_on``, ``true_k_off``, ``true_k_syn``, ``true_k_deg`` (base
        rates per unit time), ``true_burst_frequency`` (= k_on),
        ``true_burst_size`` (= k_syn/k_off), ``true_mean`` (stationary mean
        without capture); per group ``true_<rate>_<group>``; ``differential``:
        the rates changed in some group, comma separated (``"none"`` if none).
    """
    kon, koff, ksyn, kdeg = (base[r] for r in RATE_NAMES)
    var = pd.DataFrame({f"true_{r}": base[r] for r in RATE_NAMES}, index=pd.Index(genes))
    var["true_burst_frequency"] = kon
    var["true_burst_size"] = ksyn / koff
    var["true_mean"] = ksyn * kon / (kdeg * (kon + koff))
    changed = np.zeros((len(genes), len(RATE_NAMES)), bool)
    for name, rates_g in zip(group_names or [], rates or []):
        for i, r in enumerate(RATE_NAMES):
            var[f"true_{r}_{name}"] = rates_g[r]
            changed[:, i] |= rates_g[r] != base[r]
    var["differential"] = [",".join(r for r, c in zip(RATE_NAMES, row) if c) or "none"
                           for row in changed]
    return var


def assemble_anndata(counts: np.ndarray, capture: np.ndarray, var: pd.DataFrame,
                     uns: Mapping, *, group_names: Sequence[str] | None = None,
                     group_of: np.ndarray | None = None, times: np.ndarray | None = None,
                     time_of: np.ndarray | None = None) -> anndata.AnnData:
    """A cells x genes AnnData of simulated counts with the truth beside them.

    Parameters
    ----------
    counts : numpy.ndarray of int
        Counts, cells x genes; stored as CSR.
    capture : numpy.ndarray
        Capture efficiency per cell, stored as ``obs["capture"]``.
    var : pandas.DataFrame
        Per-gene truth (index: gene names).
    uns : mapping
        Entries of ``adata.uns``.
    group_names, group_of : optional
        Group names and each cell's group index; stored as the categorical
        ``obs["group"]`` (categories in the order of ``group_names``).
    times, time_of : optional
        Sampling times and each cell's time index; stored as ``obs["time"]``
        when there is more than one time.

    Returns
    -------
    anndata.AnnData
        ``obs`` indexed ``cell00000``, ``cell00001``, ...
    """
    import anndata as ad

    obs = pd.DataFrame({"capture": capture}, index=pd.Index(cell_names(len(capture))))
    if group_names is not None:
        obs["group"] = pd.Categorical(np.array(group_names, dtype=object)[group_of],
                                      categories=group_names)
    if times is not None and times.size > 1:
        obs["time"] = times[time_of]
    adata = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var)
    adata.uns.update(uns)
    return adata


# -- the simulation study -----------------------------------------------------------------
def simulate_anndata(n_cells: int = 1000, n_genes: int | None = None, *, k_on=None, k_off=None,
                     k_syn=None, k_deg=1.0, groups: Mapping | None = None, capture=None,
                     t=None, initial: str = "stationary", seed: int | None = 0
                     ) -> anndata.AnnData:
    """Simulate a single-cell count matrix with known bursting kinetics.

    Every gene follows the telegraph model, simulated exactly with Gillespie's
    direct method (:func:`telegraph.simulate`); the recorded counts are
    binomially thinned by each cell's capture efficiency.

    Parameters
    ----------
    n_cells : int
        Number of cells.
    n_genes : int, optional
        Number of genes; default: the length of any per-gene rate array, else 100.
    k_on, k_off, k_syn : float or array (n_genes,), optional
        Promoter activation, inactivation and transcription rates per unit time
        (in units of k_deg when k_deg = 1). Any left as None is drawn
        log-uniformly per gene: k_on in [0.05, 5], k_off in [0.5, 20] and
        burst size k_syn/k_off in [2, 50] (times k_deg; :data:`KINETICS_PRIOR`).
    k_deg : float or array (n_genes,)
        mRNA degradation rate per unit time (default 1: time in mRNA lifetimes).
    groups : mapping, optional
        Cell groups with changed kinetics, ``{name: spec}``, in order. A spec is
        a mapping with optional keys ``"fraction"`` (share of the cells; groups
        without one split the rest equally), fold changes ``"k_on"``,
        ``"k_off"``, ``"k_syn"``, ``"k_deg"`` (scalar or per-gene array,
        multiplying the base rates) and ``"genes"`` (indices, names or a
        boolean mask restricting the fold changes to those genes). E.g.
        ``{"ctrl": {}, "stim": {"k_on": 3.0, "genes": range(10)}}``.
    capture : float, array (n_cells,) or None
        Capture efficiency in (0, 1] per cell. None draws
        ``clip(lognormal(log 0.3, 0.35), 0.02, 1)`` per cell (:data:`CAPTURE_PRIOR`).
    t : float or 1-D array, optional
        Sampling time(s), same time unit as the rates. With an array, cells are
        split evenly over the times (each cell is measured once) and
        ``obs["time"]`` records which. Default 1.0 when ``initial="stationary"``
        (the counts are then stationary at any t); required otherwise.
    initial : {"stationary", "off", "on"}
        State at time 0 (see :func:`telegraph.simulate`); ``"off"`` with
        increasing times gives an induction time course.
    seed : int or None
        Seed of every random draw (rates, capture, groups, paths).

    Returns
    -------
    anndata.AnnData
        ``X``: CSR int64 counts, cells x genes. ``obs["capture"]``; with groups
        ``obs["group"]`` (categorical); with an array ``t`` ``obs["time"]``.
        ``var``: base rates ``true_k_on``, ``true_k_off``, ``true_k_syn``,
        ``true_k_deg``, ``true_burst_frequency`` (= k_on),
        ``true_burst_size`` (= k_syn/k_off), ``true_mean`` (stationary mean
        without capture); per group ``true_<rate>_<group>``; and
        ``differential``: the rates changed in some group, comma separated
        (``"none"`` if none). ``uns["telegraph_simulation"]``: the settings.

    Examples
    --------
    >>> import telegraph as tg
    >>> ad = tg.simulate_anndata(200, 20, groups={"A": {}, "B": {"k_on": 2.0}}, seed=1)
    >>> ad.shape
    (200, 20)
    """
    _check_n_cells(n_cells)
    times = _sampling_times(t, initial)
    n_genes = _n_genes(n_genes, (k_on, k_off, k_syn, k_deg))

    setup_ss, sim_ss = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(setup_ss)
    # The prior is drawn even for given rates, so a seed gives the same
    # random numbers to everything else whatever is given.
    drawn = draw_prior_kinetics(rng, n_genes)
    base = gene_kinetics(drawn, k_on=k_on, k_off=k_off, k_syn=k_syn, k_deg=k_deg)
    genes = gene_names(n_genes)
    names, rates, sizes = cell_groups(groups, base, n_cells, genes)
    cap = cell_capture(rng, capture, n_cells)
    group_of, time_of = assign_cells(rng, sizes, times.size)

    counts = sample_ssa(rates, group_of, time_of, times, cap, initial=initial, seed=sim_ss)

    settings = {
        "seed": -1 if seed is None else int(seed),
        "initial": initial,
        "t": times.tolist(),
        "groups": [] if names is None else names,
        "group_fractions": (sizes / n_cells).tolist(),
        "simulator": "Gillespie direct method (telegraph.simulate)",
    }
    return assemble_anndata(counts, cap, truth_var(genes, base, names, rates),
                            {"telegraph_simulation": settings}, group_names=names,
                            group_of=group_of, times=times, time_of=time_of)


# -- metabolic labelling ------------------------------------------------------------------
#: Log-uniform prior of mRNA half-lives in hours for :func:`simulate_labelled_anndata`
#: when ``k_deg`` is not given (k_deg = log 2 / half-life, per hour).
HALF_LIFE_PRIOR: tuple[float, float] = (1.0, 10.0)


def sample_ssa_labelled(rates: Mapping[str, np.ndarray], t_label: np.ndarray,
                        capture: np.ndarray, detection: np.ndarray, *, seed=None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """New and old counts of a labelling experiment from exact paths.

    Per gene and cell, the state at the start of the pulse (promoter, molecules)
    is drawn exactly from the stationary law (:func:`telegraph.ssa.stationary_state`);
    the pulse is simulated with Gillespie's direct method on the network of
    :func:`telegraph.network.labelled_model` (molecules made during it are
    new, the others old); at harvest every molecule is captured with the
    cell's efficiency and a captured new molecule is seen as new with the
    cell's detection probability, else counted as old (docs/maths.md,
    "Metabolic labelling: new and old RNA").

    Parameters
    ----------
    rates : mapping
        ``{rate: (n_genes,) array}`` of k_on, k_off, k_syn, k_deg, per hour.
    t_label : numpy.ndarray
        Pulse length per cell, hours.
    capture, detection : numpy.ndarray
        Per cell, in (0, 1].
    seed : int, numpy.random.SeedSequence or None
        Each distinct pulse length (in increasing order) gets a child of the
        seed's :meth:`~numpy.random.SeedSequence.spawn`, and each gene one
        child of that.

    Returns
    -------
    (new, old) : numpy.ndarray of int64, cells x genes each.
    """
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    n_genes = rates["k_on"].size
    new = np.zeros((t_label.size, n_genes), np.int64)
    old = np.zeros((t_label.size, n_genes), np.int64)
    pulses = np.unique(t_label)
    for t, child in zip(pulses, ss.spawn(pulses.size)):
        cells = np.flatnonzero(t_label == t)
        for j, gss in enumerate(child.spawn(n_genes)):
            path_ss, draw_ss = gss.spawn(2)
            rng = np.random.default_rng(draw_ss)
            kon, koff, ksyn, kdeg = (float(rates[k][j]) for k in RATE_NAMES)
            g0, m0 = stationary_state(kon, koff, ksyn, kdeg, (cells.size,), rng)
            x0 = np.stack([1 - g0, g0, np.zeros_like(m0), m0], axis=1)
            x = labelled_model(kon, koff, ksyn, kdeg).simulate(
                int(cells.size), float(t), initial=x0, seed=path_ss, species=["new", "old"])
            cap = capture[cells]
            new_cap = rng.binomial(x[:, 0], cap)
            seen = rng.binomial(new_cap, detection[cells])
            new[cells, j] = seen
            old[cells, j] = rng.binomial(x[:, 1], cap) + (new_cap - seen)
    return new, old


def simulate_labelled_anndata(n_cells: int = 1000, n_genes: int | None = None, *,
                              t_label, k_on=None, k_off=None, k_syn=None, k_deg=None,
                              capture=None, detection=config.DETECTION,
                              seed: int | None = 0) -> anndata.AnnData:
    """Simulate a metabolic-labelling experiment (new and old RNA) with known kinetics.

    Each gene follows the telegraph model at stationarity until a labelling
    pulse of ``t_label`` hours; molecules made during the pulse are new (see
    :func:`sample_ssa_labelled`: exact Gillespie paths, binomial capture,
    misclassification of new molecules as old with probability
    ``1 - detection``).

    Parameters
    ----------
    n_cells : int
        Number of cells.
    n_genes : int, optional
        Number of genes; default: the length of any per-gene rate array, else 100.
    t_label : float or 1-D array
        Pulse length(s) in hours. With several, cells are split evenly over them
        (a time course); ``obs["t_label"]`` records each cell's.
    k_on, k_off, k_syn : float or array (n_genes,), optional
        Rates per hour; any left as None is drawn from :data:`KINETICS_PRIOR`
        (in units of k_deg, then multiplied by k_deg).
    k_deg : float or array (n_genes,), optional
        Degradation rate per hour; None draws half-lives log-uniformly from
        :data:`HALF_LIFE_PRIOR` (hours).
    capture : float, array (n_cells,) or None
        Capture efficiency per cell; None draws it from :data:`CAPTURE_PRIOR`.
    detection : float or array (n_cells,)
        Probability that a captured new molecule is seen as new (default
        ``config.DETECTION``).
    seed : int or None
        Seed of every random draw.

    Returns
    -------
    anndata.AnnData
        ``X`` and ``layers["total"]``: new + old; ``layers["new"]``,
        ``layers["old"]`` (CSR int64). ``obs``: ``capture``, ``t_label``
        (hours), ``detection``. ``var``: the truth of :func:`truth_var` (rates
        per hour) and ``true_half_life`` (hours).
        ``uns["telegraph_simulation"]``: the settings.

    Examples
    --------
    >>> import telegraph as tg
    >>> ad = tg.simulate_labelled_anndata(200, 5, t_label=[1.0, 4.0], seed=1)
    >>> sorted(ad.layers)
    ['new', 'old', 'total']
    """
    _check_n_cells(n_cells)
    pulses = np.atleast_1d(check_t_label(t_label)).ravel()
    n_genes = _n_genes(n_genes, (k_on, k_off, k_syn, k_deg))
    setup_ss, sim_ss = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(setup_ss)
    drawn = draw_prior_kinetics(rng, n_genes)
    half = 10.0 ** rng.uniform(np.log10(HALF_LIFE_PRIOR[0]), np.log10(HALF_LIFE_PRIOR[1]),
                               n_genes)
    kdeg = np.log(2.0) / half if k_deg is None else _per_gene("k_deg", k_deg, n_genes)
    base = gene_kinetics(drawn, k_on=k_on, k_off=k_off, k_syn=k_syn, k_deg=kdeg)
    genes = gene_names(n_genes)
    cap = cell_capture(rng, capture, n_cells)
    det = check_detection(detection, n_cells)
    _, pulse_of = assign_cells(rng, np.array([n_cells]), pulses.size)
    t_cell = pulses[pulse_of]
    new, old = sample_ssa_labelled(base, t_cell, cap, det, seed=sim_ss)
    var = truth_var(genes, base)
    var["true_half_life"] = np.log(2.0) / base["k_deg"]
    settings = {
        "seed": -1 if seed is None else int(seed),
        "t_label": pulses.tolist(),
        "time_unit": "hour",
        "simulator": "exact stationary state, then Gillespie direct method over the pulse "
                     "(telegraph.network.labelled_model)",
    }
    adata = assemble_anndata(new + old, cap, var, {"telegraph_simulation": settings})
    adata.obs["t_label"] = t_cell
    adata.obs["detection"] = det
    for key, mat in (("total", new + old), ("new", new), ("old", old)):
        adata.layers[key] = sp.csr_matrix(mat)
    return adata
