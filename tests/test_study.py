"""Tests of the simulation-study module (telegraph.study).

The pins below were computed on ``simulate_anndata`` before it was split into
small functions (commit 6e45427); the same arguments and seed must still give
the same counts, obs, var and uns bit for bit.
"""

import numpy as np
import pytest

import telegraph as tg
from telegraph import study

from _fingerprint import fingerprint

SIM_CASES = {
    "drawn": dict(n_cells=150, n_genes=12, seed=0),
    "defaults": dict(seed=2),
    "groups": dict(n_cells=300, n_genes=12, seed=5,
                   groups={"A": {}, "B": {"k_on": 3.0, "genes": [0, 1]},
                           "C": {"k_syn": 2.0, "genes": ["gene0005"], "fraction": 0.2}}),
    "time_course": dict(n_cells=200, k_on=[0.5, 1.0, 2.0], k_off=2.0, capture=0.5,
                        t=[0.5, 2.0], initial="off", seed=8),
    "mixed": dict(n_cells=101, n_genes=6, k_syn=[5.0, 10.0, 20.0, 40.0, 80.0, 160.0], k_deg=2.0,
                  groups={"x": {"fraction": 0.25, "k_deg": 0.5,
                                "genes": np.array([True, False, True, False, False, True])},
                          "y": {"fraction": 0.75, "k_off": [1.0, 2.0, 1.0, 0.5, 1.0, 3.0]}},
                  t=[1.0, 3.0, 5.0], initial="on", capture=np.linspace(0.1, 1.0, 101), seed=11),
    "stationary_times": dict(n_cells=90, n_genes=5, t=[1.0, 2.0], seed=4,
                             groups={"a": None, "b": {"k_on": 2.0, "genes": np.array([4])}}),
}

SIM_PINS = {
    "drawn": {"X_sum": 3590,
        "X": "fdd1953f906c4cfabaa248ba8aef97b054845ceaeb7958e2f3e8a7ec71077085",
        "obs": "d53b78b50682e1fc27386339cd11cf70ad392c0d9fb46e23095b6a932db38b63",
        "var": "225a12dde191566d9cd1132bd41b1f37aa92e10b7ae4454b21fd1476cf91add0",
        "uns": "3a60a7a159670e40ed442bc9216454ab7d0e635d91e26abcd7b470ed52de893e"},
    "defaults": {"X_sum": 230898,
        "X": "98fcf2ae98f9fab2424937ccce3a500679296e7d9acf81ce6b7579078ab8c8c1",
        "obs": "597453a4d4c1d47864d3a11bec4649e2a1f4afaab13c49e31b60ded615569662",
        "var": "218444e911e7fb86fd56eca37eb0bd8d9b8e31694b841d384be1fe389a22ad83",
        "uns": "cc01c1ad11f8cc10a0ed072f13dfe77eae03758e26a4f737d7cbafd972ae5df8"},
    "groups": {"X_sum": 5978,
        "X": "337a77641c0af912616c9abc6df16aaff954725ba73c0c58de673bd0cbfb4a7d",
        "obs": "50e38703a764c3390b51f3ae053590648e3010ab450af14ca0179afded484223",
        "var": "49fba76b7c09f61f7c2871905ea5fb9ec520a8e8260da54932fbf523614f2c94",
        "uns": "a4626751e094001aba379f26f4ee3e09795b6aa69e066057fa2ecda6fd27e6cf"},
    "time_course": {"X_sum": 2221,
        "X": "b6f8c740842fd4b31a75458a33435027aa073e0b333d3a87ee79d0fac5d7d4b2",
        "obs": "de045c90b4cc4433f558cef4ab35876e13adfc680c0635b73fc5f27443d8c42d",
        "var": "c1cb407be3076de9e18b3052a821c4fe9692a35dccacaf4a42dca8a316b423f3",
        "uns": "f12594d796c3eaa7c4ea23d9ab0e80c013dc0a591a632a0aa2f66476733ff05b"},
    "mixed": {"X_sum": 822,
        "X": "c925c7c118d5289c503d73574b3367de51b807c027679b995c34ed9ae2d4a401",
        "obs": "dbd268c39840776ecbd1dfd7b2ca3d20a4ae9126c861f170d48fbce36ce00cd5",
        "var": "ce707b54edcb43ee317b1f962a4966923bd77ba415efe5827ed136ebce3c15ab",
        "uns": "497774c2c3276924c7bd34c12e626fe76f8413f72f4eaedcb6f8700decee14b0"},
    "stationary_times": {"X_sum": 4182,
        "X": "d94f35ede9d0745f08a0799f2d5106a3154eaf312aecdd240c97d7178fde678b",
        "obs": "a85ee54089185f136be9e4197ffaab81b09e0925444044a50a51ab0e875dc07a",
        "var": "ec7b6b1227a481c8fe238c7395ef0268f6063632869ae5b5905893d43a188aa0",
        "uns": "64bd09615b437849f7eac13984a86fa6ac1d2a5c7d672f130aa550ea9f3823c8"},
}


@pytest.mark.parametrize("case", sorted(SIM_CASES))
def test_simulate_anndata_output_pinned(case):
    adata = tg.simulate_anndata(**SIM_CASES[case])
    want = SIM_PINS[case]
    assert int(adata.X.sum()) == want["X_sum"]
    got = fingerprint(adata)
    for part in ("X", "obs", "var", "uns"):
        assert got[part] == want[part], f"{case}: {part} changed"


# -- the building blocks ------------------------------------------------------------------

def test_prior_draws_lie_in_their_ranges():
    rng = np.random.default_rng(0)
    drawn = study.draw_prior_kinetics(rng, 2000)
    assert list(drawn) == list(study.PRIOR_DRAW_ORDER)
    for name, (low, high) in study.KINETICS_PRIOR.items():
        assert low <= drawn[name].min() and drawn[name].max() <= high
        # log-uniform: the median sits at the geometric midpoint
        assert abs(np.log(np.median(drawn[name])) - np.log(np.sqrt(low * high))) < 0.15
    cap = study.draw_capture(rng, 2000)
    assert ((cap >= study.CAPTURE_PRIOR["low"]) & (cap <= study.CAPTURE_PRIOR["high"])).all()


def test_gene_kinetics_scales_draws_by_k_deg():
    drawn = study.draw_prior_kinetics(np.random.default_rng(1), 5)
    r = study.gene_kinetics(drawn, k_off=2.0, k_deg=4.0)
    np.testing.assert_array_equal(r["k_on"], 4.0 * drawn["k_on"])
    np.testing.assert_array_equal(r["k_off"], np.full(5, 2.0))
    np.testing.assert_array_equal(r["k_syn"], 2.0 * drawn["burst_size"])
    with pytest.raises(ValueError, match="k_syn must be finite and > 0"):
        study.gene_kinetics(drawn, k_syn=-1.0)


def test_assign_cells_balances_groups_and_times():
    group_of, time_of = study.assign_cells(np.random.default_rng(2), [7, 5], n_times=3)
    assert np.bincount(group_of).tolist() == [7, 5]
    assert np.bincount(time_of[group_of == 0]).tolist() == [3, 2, 2]
    assert np.bincount(time_of[group_of == 1]).tolist() == [2, 2, 1]


def test_sample_stationary_depends_on_rates_in_units_of_k_deg_only():
    base = {"k_on": np.array([0.5, 2.0]), "k_off": np.array([2.0, 1.0]),
            "k_syn": np.array([20.0, 5.0]), "k_deg": np.ones(2)}
    doubled = {r: 2.0 * v for r, v in base.items()}
    group_of = np.array([0, 1, 1, 0, 1])
    cap = np.full(5, 0.5)
    a = study.sample_stationary(np.random.default_rng(3), [base, base], group_of, cap)
    b = study.sample_stationary(np.random.default_rng(3), [base, doubled], group_of, cap)
    assert a.dtype == np.int64 and a.shape == (5, 2)
    np.testing.assert_array_equal(a, b)


def test_sample_stationary_mean_matches_ssa_law():
    from _ssa_reference import mean_and_se

    rates = {"k_on": np.array([0.5, 2.0]), "k_off": np.array([2.0, 1.0]),
             "k_syn": np.array([40.0, 10.0]), "k_deg": np.array([2.0, 1.0])}
    rng = np.random.default_rng(4)
    cap = study.draw_capture(rng, 20000)
    n = study.sample_stationary(rng, [rates], np.zeros(20000, int), cap)
    mu = rates["k_syn"] / rates["k_deg"] * rates["k_on"] / (rates["k_on"] + rates["k_off"])
    for j in range(2):
        m, se = mean_and_se(n[:, j] - cap * mu[j])
        assert abs(m) < 4.0 * se, (j, m, se)
