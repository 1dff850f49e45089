"""Simulation-study datasets: AnnData objects simulated exactly with the SSA.

:func:`simulate_anndata` draws (or takes) per-gene telegraph kinetics, per-cell
capture efficiencies and optional cell groups whose kinetics differ by known
fold changes, runs the Gillespie simulator (:func:`telegraph.simulate`) and
returns a cells x genes AnnData with the truth stored beside the counts, ready
for the fitting and testing tools.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .ssa import RATE_NAMES, simulate

__all__ = ["simulate_anndata"]

_GROUP_KEYS = set(RATE_NAMES) | {"fraction", "genes"}


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


def _gene_mask(genes, n_genes, gene_names):
    if genes is None:
        return np.ones(n_genes, bool)
    g = np.asarray(genes)
    if g.dtype == bool:
        if g.shape != (n_genes,):
            raise ValueError(f"a boolean 'genes' mask needs length {n_genes}")
        return g
    mask = np.zeros(n_genes, bool)
    if g.dtype.kind in "US":
        lookup = {n: i for i, n in enumerate(gene_names)}
        missing = [x for x in g.ravel() if x not in lookup]
        if missing:
            raise ValueError(f"unknown gene names in 'genes': {missing[:5]}")
        mask[[lookup[x] for x in g.ravel()]] = True
        return mask
    idx = g.astype(int).ravel()
    if np.any((idx < 0) | (idx >= n_genes)):
        raise ValueError(f"gene indices in 'genes' must lie in [0, {n_genes})")
    mask[idx] = True
    return mask


def _group_sizes(fracs, n_cells):
    fracs = np.asarray(fracs, float)
    exact = fracs * n_cells
    sizes = np.floor(exact).astype(int)
    # largest remainders get the leftover cells
    order = np.argsort(-(exact - sizes), kind="stable")
    sizes[order[: n_cells - sizes.sum()]] += 1
    return sizes


def simulate_anndata(n_cells=1000, n_genes=None, *, k_on=None, k_off=None, k_syn=None,
                     k_deg=1.0, groups=None, capture=None, t=None, initial="stationary",
                     seed=0):
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
        burst size k_syn/k_off in [2, 50] (times k_deg).
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
        ``clip(lognormal(log 0.3, 0.35), 0.02, 1)`` per cell.
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
    import anndata as ad

    if not isinstance(n_cells, (int, np.integer)) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}")
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
    if n_genes is None:
        lens = [np.size(v) for v in (k_on, k_off, k_syn, k_deg)
                if v is not None and np.ndim(v) == 1]
        n_genes = lens[0] if lens else 100
    if not isinstance(n_genes, (int, np.integer)) or n_genes < 1:
        raise ValueError(f"n_genes must be a positive integer, got {n_genes!r}")

    ss = np.random.SeedSequence(seed)
    setup_ss, sim_ss = ss.spawn(2)
    rng = np.random.default_rng(setup_ss)

    # Draw missing kinetics in a fixed order so a given seed is reproducible.
    drawn_kon = 10.0 ** rng.uniform(np.log10(0.05), np.log10(5.0), n_genes)
    drawn_koff = 10.0 ** rng.uniform(np.log10(0.5), np.log10(20.0), n_genes)
    drawn_bs = 10.0 ** rng.uniform(np.log10(2.0), np.log10(50.0), n_genes)
    kdeg = _per_gene("k_deg", k_deg, n_genes)
    kon = _per_gene("k_on", k_on, n_genes) if k_on is not None else drawn_kon * kdeg
    koff = _per_gene("k_off", k_off, n_genes) if k_off is not None else drawn_koff * kdeg
    ksyn = _per_gene("k_syn", k_syn, n_genes) if k_syn is not None else drawn_bs * koff
    base = dict(zip(RATE_NAMES, (kon, koff, ksyn, kdeg)))
    gene_names = [f"gene{j:04d}" for j in range(n_genes)]

    # Groups: rates and cell counts.
    if groups is None:
        names = [None]
        group_rates = [base]
        sizes = np.array([n_cells])
    else:
        if not isinstance(groups, Mapping) or len(groups) == 0:
            raise ValueError("groups must be a non-empty mapping {name: spec}")
        names, group_rates, fracs = [], [], []
        for name, spec in groups.items():
            spec = dict(spec or {})
            bad = set(spec) - _GROUP_KEYS
            if bad:
                raise ValueError(f"group {name!r}: unknown keys {sorted(bad)}; allowed are "
                                 f"{sorted(_GROUP_KEYS)}")
            mask = _gene_mask(spec.get("genes"), n_genes, gene_names)
            rates_g = {}
            for r in RATE_NAMES:
                fold = _per_gene(f"group {name!r} fold change {r}", spec.get(r, 1.0), n_genes)
                rates_g[r] = np.where(mask, base[r] * fold, base[r])
            names.append(str(name))
            group_rates.append(rates_g)
            fracs.append(spec.get("fraction", np.nan))
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
        sizes = _group_sizes(fracs, n_cells)

    if capture is None:
        cap = np.clip(rng.lognormal(np.log(0.3), 0.35, n_cells), 0.02, 1.0)
    else:
        cap = np.asarray(capture, float)
        cap = np.full(n_cells, float(cap)) if cap.ndim == 0 else cap
        if cap.shape != (n_cells,) or not np.all((cap > 0) & (cap <= 1)):
            raise ValueError(f"capture must be a scalar or {n_cells} values in (0, 1]")

    # Cell -> group and cell -> time, shuffled so groups interleave.
    group_of = np.repeat(np.arange(len(names)), sizes)
    rng.shuffle(group_of)
    time_of = np.zeros(n_cells, int)
    for gi in range(len(names)):
        cells = np.flatnonzero(group_of == gi)
        time_of[cells] = np.arange(cells.size) % times.size

    counts = np.zeros((n_cells, n_genes), np.int64)
    blocks = [(gi, ti) for gi in range(len(names)) for ti in range(times.size)]
    for (gi, ti), child in zip(blocks, sim_ss.spawn(len(blocks))):
        cells = np.flatnonzero((group_of == gi) & (time_of == ti))
        if cells.size == 0:
            continue
        r = group_rates[gi]
        counts[cells] = simulate(r["k_on"], r["k_off"], r["k_syn"], r["k_deg"],
                                 n_cells=int(cells.size), t=float(times[ti]),
                                 capture=cap[cells], seed=child, initial=initial)

    obs = pd.DataFrame({"capture": cap},
                       index=pd.Index([f"cell{i:05d}" for i in range(n_cells)]))
    if groups is not None:
        obs["group"] = pd.Categorical(np.array(names, dtype=object)[group_of],
                                      categories=names)
    if times.size > 1:
        obs["time"] = times[time_of]
    var = pd.DataFrame({f"true_{r}": base[r] for r in RATE_NAMES},
                       index=pd.Index(gene_names))
    var["true_burst_frequency"] = kon
    var["true_burst_size"] = ksyn / koff
    var["true_mean"] = ksyn * kon / (kdeg * (kon + koff))
    changed = np.zeros((n_genes, len(RATE_NAMES)), bool)
    if groups is not None:
        for name, rates_g in zip(names, group_rates):
            for i, r in enumerate(RATE_NAMES):
                var[f"true_{r}_{name}"] = rates_g[r]
                changed[:, i] |= rates_g[r] != base[r]
    var["differential"] = [",".join(r for r, c in zip(RATE_NAMES, row) if c) or "none"
                           for row in changed]
    adata = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var)
    adata.uns["telegraph_simulation"] = {
        "seed": -1 if seed is None else int(seed),
        "initial": initial,
        "t": times.tolist(),
        "groups": [] if groups is None else names,
        "group_fractions": (sizes / n_cells).tolist(),
        "simulator": "Gillespie direct method (telegraph.simulate)",
    }
    return adata
