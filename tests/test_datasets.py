import numpy as np
import scipy.sparse as sp

import telegraph as tg


def test_example_shape_and_types():
    adata = tg.datasets.example(seed=0)
    assert adata.shape == (2000, 200)
    assert sp.isspmatrix_csr(adata.X) or isinstance(adata.X, sp.csr_array)
    assert np.issubdtype(adata.X.dtype, np.integer)
    assert (adata.X.data >= 0).all()
    for col in ["true_k_on", "true_k_off", "true_k_syn", "differential"]:
        assert col in adata.var
    assert ((adata.obs["capture"] > 0) & (adata.obs["capture"] <= 1)).all()
    assert set(adata.obs["group"].unique()) == {"A", "B"}
    diff = adata.var["differential"]
    assert (diff == "burst_frequency").sum() == 20
    assert (diff == "burst_size").sum() == 20


def test_example_deterministic_for_seed():
    a = tg.datasets.example(seed=3, n_cells=50, n_genes=10)
    b = tg.datasets.example(seed=3, n_cells=50, n_genes=10)
    c = tg.datasets.example(seed=4, n_cells=50, n_genes=10)
    assert (a.X != b.X).nnz == 0
    assert np.array_equal(a.var["true_k_on"], b.var["true_k_on"])
    assert (a.X != c.X).nnz > 0


def test_example_group_kinetics_differ_only_where_listed():
    adata = tg.datasets.example(seed=1)
    v = adata.var
    same = v["differential"] == "none"
    assert np.allclose(v.loc[same, "true_k_on"], v.loc[same, "true_k_on_B"])
    assert np.allclose(v.loc[same, "true_k_syn"], v.loc[same, "true_k_syn_B"])
    bf = v["differential"] == "burst_frequency"
    assert np.allclose(v.loc[bf, "true_k_on_B"], 3 * v.loc[bf, "true_k_on"])
    bs = v["differential"] == "burst_size"
    assert np.allclose(v.loc[bs, "true_k_syn_B"], 3 * v.loc[bs, "true_k_syn"])


def test_example_mean_matches_analytic_mean():
    """Per gene and group, the empirical mean is within a few standard errors of
    E[n] = capture * k_syn * k_on / (k_on + k_off), averaged over cells."""
    adata = tg.datasets.example(seed=0)
    X = adata.X.toarray().astype(float)
    s = adata.obs["capture"].to_numpy()
    v = adata.var
    z_all = []
    for grp, suffix in [("A", ""), ("B", "_B")]:
        m = (adata.obs["group"] == grp).to_numpy()
        kon = v[f"true_k_on{suffix}"].to_numpy()
        koff = v[f"true_k_off{suffix}"].to_numpy()
        ksyn = v[f"true_k_syn{suffix}"].to_numpy()
        mu_cell = s[m, None] * (ksyn * kon / (kon + koff))[None, :]
        # Var n = E[Var n|s] + ... use the per-cell telegraph variance
        # Var = mu + (s k_syn)^2 k_on k_off / ((k_on+k_off)^2 (k_on+k_off+1))
        var_cell = mu_cell + (s[m, None] * ksyn) ** 2 * (kon * koff / ((kon + koff) ** 2 * (kon + koff + 1)))
        n = m.sum()
        z = (X[m].mean(0) - mu_cell.mean(0)) / np.sqrt(var_cell.sum(0) / n**2)
        z_all.append(z)
    z_all = np.concatenate(z_all)
    # 400 z-scores: none beyond 4.5 sd, and their spread is that of N(0, 1)
    assert np.abs(z_all).max() < 4.5
    assert 0.8 < z_all.std() < 1.2
