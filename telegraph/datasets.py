"""Bundled example data, generated (never downloaded) from known kinetics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import study

if TYPE_CHECKING:
    import anndata

__all__ = ["example"]

#: Fold change of k_on (burst frequency) or k_syn (burst size) in group "B".
FOLD_CHANGE = 3.0

# The example draws the prior of telegraph.study in its own historical order
# (burst size before k_off); changing it would change the example's data.
_DRAW_ORDER = ("k_on", "burst_size", "k_off")
_RATES = ("k_on", "k_off", "k_syn")   # k_deg = 1 is not stored in var


def example(seed: int = 0, *, n_cells: int = 2000, n_genes: int = 200,
            n_differential: int | None = None) -> anndata.AnnData:
    """A simulated scRNA-seq count matrix with known bursting kinetics.

    Each gene follows the stationary telegraph model with k_deg = 1, so every
    rate is in units of the mRNA degradation rate (per mRNA lifetime; 1/k_deg
    is the mean mRNA lifetime). The kinetics are drawn from the log-uniform
    prior of the simulation studies (:data:`telegraph.study.KINETICS_PRIOR`,
    the k_on, k_off and burst-size ranges of :func:`telegraph.simulate_anndata`)
    and so is each cell's capture efficiency
    (:data:`telegraph.study.CAPTURE_PRIOR`). Counts are sampled exactly from the
    stationary law (:func:`telegraph.study.sample_stationary`): the promoter
    activity ``p ~ Beta(k_on, k_off)`` and ``n ~ Poisson(capture * k_syn * p)``
    (binomial capture of a Poisson mixture is again a Poisson mixture).

    Cells are split into two groups, ``"A"`` (``n_cells // 2`` cells) and
    ``"B"`` (the rest), interleaved at random. For a known subset of genes,
    group ``"B"`` differs from ``"A"``: three-fold (:data:`FOLD_CHANGE`) higher
    burst frequency (k_on) for half of them, three-fold larger burst size
    (k_syn / k_off, through k_syn) for the other half.

    Parameters
    ----------
    seed : int
        Seed of the random generator; the same seed gives the same data.
    n_cells, n_genes : int
        Size of the matrix (cells x genes); at least 2 cells and 1 gene.
    n_differential : int, optional
        How many genes differ between the groups (half in burst frequency,
        half in burst size); default one in five (40 of 200).

    Returns
    -------
    anndata.AnnData
        ``X``: CSR matrix of int64 UMI counts, cells x genes.
        ``obs["capture"]``: per-cell capture efficiency in (0, 1].
        ``obs["group"]``: categorical, ``"A"`` or ``"B"``.
        ``var["true_k_on"]``, ``var["true_k_off"]``, ``var["true_k_syn"]``:
        the rates of group A, in units of k_deg.
        ``var["true_k_on_B"]``, ``var["true_k_off_B"]``, ``var["true_k_syn_B"]``:
        the rates of group B.
        ``var["true_burst_frequency"]``, ``var["true_burst_size"]`` (group A),
        ``var["differential"]``: ``"none"``, ``"burst_frequency"`` or
        ``"burst_size"``.
        ``uns["telegraph_example"]``: the generating settings.

    Raises
    ------
    ValueError
        If ``n_cells < 2``, ``n_genes < 1`` or ``n_differential`` is not in
        ``[0, n_genes]``.
    """
    if n_cells < 2 or n_genes < 1:
        raise ValueError("example() needs n_cells >= 2 and n_genes >= 1")
    if n_differential is None:
        n_differential = n_genes // 5
    if not 0 <= n_differential <= n_genes:
        raise ValueError("n_differential must lie between 0 and n_genes")
    rng = np.random.default_rng(seed)
    base = study.gene_kinetics(study.draw_prior_kinetics(rng, n_genes, order=_DRAW_ORDER))
    genes = study.gene_names(n_genes)

    differential = np.full(n_genes, "none", dtype=object)
    picked = rng.choice(n_genes, size=n_differential, replace=False)
    half = n_differential // 2
    differential[picked[:half]] = "burst_frequency"
    differential[picked[half:]] = "burst_size"
    fold_b = {"k_on": np.where(differential == "burst_frequency", FOLD_CHANGE, 1.0),
              "k_syn": np.where(differential == "burst_size", FOLD_CHANGE, 1.0)}
    rates = [base, study.group_rates("B", fold_b, base, genes)]

    group_of, _ = study.assign_cells(rng, [n_cells // 2, n_cells - n_cells // 2])
    capture = study.draw_capture(rng, n_cells)
    counts = study.sample_stationary(rng, rates, group_of, capture)

    var = pd.DataFrame(
        {
            **{f"true_{r}": base[r] for r in _RATES},
            **{f"true_{r}_B": rates[1][r] for r in _RATES},
            "true_burst_frequency": base["k_on"],
            "true_burst_size": base["k_syn"] / base["k_off"],
            "differential": pd.Categorical(
                differential, categories=["none", "burst_frequency", "burst_size"]),
        },
        index=pd.Index(genes),
    )
    settings = {
        "seed": int(seed),
        "k_deg": 1.0,
        "sampling": "exact stationary: p ~ Beta(k_on, k_off), n ~ Poisson(capture k_syn p)",
        "fold_change": FOLD_CHANGE,
    }
    return study.assemble_anndata(counts, capture, var, {"telegraph_example": settings},
                                  group_names=["A", "B"], group_of=group_of)
