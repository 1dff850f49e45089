"""Bundled example data, generated (never downloaded) from known kinetics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["example"]


def example(seed: int = 0, *, n_cells: int = 2000, n_genes: int = 200,
            n_differential: int | None = None):
    """A simulated scRNA-seq count matrix with known bursting kinetics.

    Each gene follows the stationary telegraph model with k_deg = 1, so every
    rate is in units of the mRNA degradation rate (1/k_deg is the mean mRNA
    lifetime). Counts are sampled exactly from the stationary law:
    the promoter activity ``p ~ Beta(k_on, k_off)`` and
    ``n ~ Poisson(capture * k_syn * p)`` (binomial capture of a Poisson
    mixture is again a Poisson mixture).

    Cells are split into two groups, ``"A"`` and ``"B"``. For a known subset
    of genes, group ``"B"`` differs from ``"A"``: three-fold higher burst
    frequency (k_on) for half of them, three-fold larger burst size
    (k_syn / k_off, through k_syn) for the other half.

    Parameters
    ----------
    seed
        Seed of the random generator; the same seed gives the same data.
    n_cells, n_genes
        Size of the matrix (cells x genes).
    n_differential
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
    """
    import anndata as ad

    if n_cells < 2 or n_genes < 1:
        raise ValueError("example() needs n_cells >= 2 and n_genes >= 1")
    if n_differential is None:
        n_differential = n_genes // 5
    if not 0 <= n_differential <= n_genes:
        raise ValueError("n_differential must lie between 0 and n_genes")
    rng = np.random.default_rng(seed)
    # Log-uniform kinetics spanning the regimes seen in real data: rare to
    # frequent bursts, small to large bursts.
    k_on = 10.0 ** rng.uniform(np.log10(0.05), np.log10(5.0), n_genes)
    burst_size = 10.0 ** rng.uniform(np.log10(2.0), np.log10(50.0), n_genes)
    k_off = 10.0 ** rng.uniform(np.log10(0.5), np.log10(20.0), n_genes)
    k_syn = burst_size * k_off

    differential = np.full(n_genes, "none", dtype=object)
    picked = rng.choice(n_genes, size=n_differential, replace=False)
    half = n_differential // 2
    differential[picked[:half]] = "burst_frequency"
    differential[picked[half:]] = "burst_size"
    k_on_b = np.where(differential == "burst_frequency", 3.0 * k_on, k_on)
    k_syn_b = np.where(differential == "burst_size", 3.0 * k_syn, k_syn)

    group = np.where(np.arange(n_cells) < n_cells // 2, "A", "B")
    rng.shuffle(group)
    capture = np.clip(rng.lognormal(np.log(0.3), 0.35, n_cells), 0.02, 1.0)

    in_b = group == "B"
    kon = np.where(in_b[:, None], k_on_b[None, :], k_on[None, :])
    ksyn = np.where(in_b[:, None], k_syn_b[None, :], k_syn[None, :])
    p = rng.beta(kon, np.broadcast_to(k_off, kon.shape))
    counts = rng.poisson(capture[:, None] * ksyn * p).astype(np.int64)

    obs = pd.DataFrame(
        {"capture": capture, "group": pd.Categorical(group, categories=["A", "B"])},
        index=pd.Index([f"cell{i:05d}" for i in range(n_cells)]),
    )
    var = pd.DataFrame(
        {
            "true_k_on": k_on,
            "true_k_off": k_off,
            "true_k_syn": k_syn,
            "true_k_on_B": k_on_b,
            "true_k_off_B": k_off.copy(),
            "true_k_syn_B": k_syn_b,
            "true_burst_frequency": k_on,
            "true_burst_size": k_syn / k_off,
            "differential": pd.Categorical(
                differential, categories=["none", "burst_frequency", "burst_size"]),
        },
        index=pd.Index([f"gene{j:04d}" for j in range(n_genes)]),
    )
    adata = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var)
    adata.uns["telegraph_example"] = {
        "seed": int(seed),
        "k_deg": 1.0,
        "sampling": "exact stationary: p ~ Beta(k_on, k_off), n ~ Poisson(capture k_syn p)",
        "fold_change": 3.0,
    }
    return adata
