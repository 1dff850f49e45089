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
        "obs": "384b7c4caffec9effbad5f763591b937434e51aa38b9901059a84e4f8e32cf25",
        "var": "7d1cfd6d25b88bfe1b13e6941ae61511dbc5b9329097fa76027416d2c3799f1a",
        "uns": "ade1b00fdd9f7bc22813416544b536a1d470041d4e1bd9f4f8275e221cca23c9"},
    "seed3": {"X_sum": 1178968,
        "X": "3cad5e8ce246448444c3b40f62eabd1513714f4e07b60a310a2b85fc42f55262",
        "obs": "a281ab69dd01dcd74456873f5d3266372709c4a2c0c6a9dbceb50a49607f698c",
        "var": "8b5b894ac758e339109a462c823b066ce045756093c7978566dfdedc4d028d42",
        "uns": "d9e1b44dae737d690ee74877dbd1fda5f126d63a2c6340fc8a2fd135f33443de"},
    "seed3_small": {"X_sum": 847,
        "X": "37bf5977191e9273e2f0e7cbac01a2729590526690ee52c279ed47ab9b652a99",
        "obs": "85beaa991262ff4a4f80b51f31aae5c53dd2c4a8b43c10a7f200e7a75c0c11c6",
        "var": "4bbba0d39b4d0f898343a173d234641acf60b7b9f9677b48b62b3a61ad8fd1de",
        "uns": "d9e1b44dae737d690ee74877dbd1fda5f126d63a2c6340fc8a2fd135f33443de"},
    "seed0_odd": {"X_sum": 1836,
        "X": "f103aa1eefa09a47287c23bf50cb2d7b3bc14b3a3fc2ea48f61c00465ea077cf",
        "obs": "698f0521dfce88726cb5186f16144731258dc79aab0f4af47dcf8a5ad942bbd4",
        "var": "ccf5062404ab7fea7ee93d5fa0e058947383b7d0304eaed7c093b717b17c0d69",
        "uns": "ade1b00fdd9f7bc22813416544b536a1d470041d4e1bd9f4f8275e221cca23c9"},
    "seed3_cli": {"X_sum": 4167,
        "X": "8bbf5de1f2f252e02b54827a24bba5efe6c589597ce782c63c31a3e7c5c86e49",
        "obs": "539e1545e1b1876d44767ce04b7bb6ea121844fd8a3f498982862a1ce724165e",
        "var": "a7573ade56f75a25abc28216c8310e51433a97790ab728f38455e79cdca61b6c",
        "uns": "d9e1b44dae737d690ee74877dbd1fda5f126d63a2c6340fc8a2fd135f33443de"},
    "seed1_tiny": {"X_sum": 12,
        "X": "deb80c0fc16730bab787feb1122cc211aa56d0fedde2fab12345dddcb86799cc",
        "obs": "b9dfc2e9e91bd696962f6e7cc24aaad46b2c6afd53de12549f1a6adf6316376c",
        "var": "8823044df4bcac06fed11c6bfece8989c0bf86c3cd8dc1b070f464599f584033",
        "uns": "72ea010b1ee11215409c3a10559cebbba5d20c0bbce4b5c302eb2b7f7833ccdb"},
    "seed0_all": {"X_sum": 2421,
        "X": "839e0aa87523b86a6e8a09d2b6a57228fcb3a67fe5e0ac978afac22477d6f491",
        "obs": "788f30821f6a809f4969d9c73c3bee8440a140f30e21dd7aa0bfbb4223e04997",
        "var": "505945532253823dcd8c11ec1cc9b43841a0c5e2eda58436f1a5f7011e8f4486",
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
