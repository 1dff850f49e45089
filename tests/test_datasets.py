import numpy as np
import pytest
import scipy.sparse as sp

import telegraph as tg

from _fingerprint import fingerprint

# Pins computed on example() before it was rebuilt on telegraph.study (commit
# 6e45427): the same seed and sizes must give the same data bit for bit.
EXAMPLE_CASES = {
    "seed0": dict(seed=0),
    "seed3": dict(seed=3),
    "seed3_small": dict(seed=3, n_cells=50, n_genes=10),
    "seed0_odd": dict(seed=0, n_cells=51, n_genes=7, n_differential=5),
    "seed3_cli": dict(seed=3, n_cells=300, n_genes=6, n_differential=2),
    "seed1_tiny": dict(seed=1, n_cells=2, n_genes=1, n_differential=0),
    "seed0_all": dict(seed=0, n_cells=40, n_genes=9, n_differential=9),
}

EXAMPLE_PINS = {
    "seed0": {"X_sum": 1677236,
        "X": "0491484ef350a173d1506c6b868ab193935a899755a5a0c6bdf0216e8d5ee9ed",
        "obs": "c97ad072c8464dbf21902cf6f322f8cf4c111f3c19eb908f6df7e88402eaaa6c",
        "var": "5466969ee8392b38e5bdeb12b23141c5206294d02b1cbcb6b8bc052f6f4418e4",
        "uns": "ade1b00fdd9f7bc22813416544b536a1d470041d4e1bd9f4f8275e221cca23c9"},
    "seed3": {"X_sum": 1178968,
        "X": "3cad5e8ce246448444c3b40f62eabd1513714f4e07b60a310a2b85fc42f55262",
        "obs": "50e77b1e0125464a8297b9afda255b5b2060805aa80e74854b3372bffd37df32",
        "var": "132ee192bf782823d2693e219c1fe1c058698f9b0564ce6c7156dee40c32183e",
        "uns": "d9e1b44dae737d690ee74877dbd1fda5f126d63a2c6340fc8a2fd135f33443de"},
    "seed3_small": {"X_sum": 847,
        "X": "37bf5977191e9273e2f0e7cbac01a2729590526690ee52c279ed47ab9b652a99",
        "obs": "455a9c974f8e699f679f011f9d0da0b829d1be6841f7eaf4e8bd54292103491f",
        "var": "952dd3e7ddfc7ec5461638cef217b0924e7e94828f348abb21bafbf8dc440f1b",
        "uns": "d9e1b44dae737d690ee74877dbd1fda5f126d63a2c6340fc8a2fd135f33443de"},
    "seed0_odd": {"X_sum": 1836,
        "X": "f103aa1eefa09a47287c23bf50cb2d7b3bc14b3a3fc2ea48f61c00465ea077cf",
        "obs": "f1756f975bdf786f6c73d754de1cd8be7190e7aa4172fe5b621e2f8c11248ec2",
        "var": "0d3fd5e43f320dd36a2be21b44406ea2a7f79f8cb3d23eb36cdfc1712d12c529",
        "uns": "ade1b00fdd9f7bc22813416544b536a1d470041d4e1bd9f4f8275e221cca23c9"},
    "seed3_cli": {"X_sum": 4167,
        "X": "8bbf5de1f2f252e02b54827a24bba5efe6c589597ce782c63c31a3e7c5c86e49",
        "obs": "b6f44d849b8f26924e9b1a436ccdeb1cf5c9bda21ed54ec288ec8b11887f4390",
        "var": "eb38312fad475b591a8d912fc18b57a21166565e319523ae524141095789bbd4",
        "uns": "d9e1b44dae737d690ee74877dbd1fda5f126d63a2c6340fc8a2fd135f33443de"},
    "seed1_tiny": {"X_sum": 12,
        "X": "deb80c0fc16730bab787feb1122cc211aa56d0fedde2fab12345dddcb86799cc",
        "obs": "88226569214ffb9b5de1cd31905de194fa49101cbd08ec47f00b4fe324bff3bf",
        "var": "7e2721f468e732e4a99a4007594e5ff1c2cc85335be0ed6c04cfcbc23f1f66e4",
        "uns": "72ea010b1ee11215409c3a10559cebbba5d20c0bbce4b5c302eb2b7f7833ccdb"},
    "seed0_all": {"X_sum": 2421,
        "X": "839e0aa87523b86a6e8a09d2b6a57228fcb3a67fe5e0ac978afac22477d6f491",
        "obs": "74ab8448dc118d12a10683dc44d5dcd9d244e936d041099b46898df1fcc990c9",
        "var": "f62adf12c7a4852c63d2e545176c1d59d1d04eae49bb635af5165e60f405d042",
        "uns": "ade1b00fdd9f7bc22813416544b536a1d470041d4e1bd9f4f8275e221cca23c9"},
}


@pytest.mark.parametrize("case", sorted(EXAMPLE_CASES))
def test_example_output_pinned(case):
    adata = tg.datasets.example(**EXAMPLE_CASES[case])
    want = EXAMPLE_PINS[case]
    assert int(adata.X.sum()) == want["X_sum"]
    got = fingerprint(adata)
    for part in ("X", "obs", "var", "uns"):
        assert got[part] == want[part], f"{case}: {part} changed"


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
