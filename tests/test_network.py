"""Tests of the general mass-action network simulator (telegraph.network)."""

import numba
import numpy as np
import pytest
import scipy.stats as st

import telegraph as tg
from telegraph.gradient import lr_gradient
from telegraph.network import (MassActionNetwork, Reaction, constitutive_model,
                               multistate_model, telegraph_model)

from _ssa_reference import chisq_gof, chisq_two_sample, marginal, mean_and_se, network_fsp

Z = 4.0
P_MIN = 1e-3


# -- construction -------------------------------------------------------------------------
def test_reaction_parsing():
    r = Reaction.parse("A + 2 B -> C", "k")
    assert dict(r.reactants) == {"A": 1, "B": 2} and dict(r.products) == {"C": 1}
    assert dict(Reaction.parse("M -> 0", "k").products) == {}
    assert dict(Reaction.parse("∅ -> M", "k").reactants) == {}
    assert dict(Reaction.parse("2*A -> A + A", "k").products) == {"A": 2}
    with pytest.raises(ValueError, match="no '->'"):
        Reaction.parse("A = B", "k")
    with pytest.raises(ValueError, match="cannot parse reaction term"):
        Reaction.parse("A + -> B", "k")


def test_stoichiometry_of_the_telegraph_model():
    net = telegraph_model(0.5, 2.0, 20.0)
    nu, delta = net.stoichiometry()
    np.testing.assert_array_equal(nu, [[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(delta, [[-1, 1, 0], [1, -1, 0], [0, 0, 1], [0, 0, -1]])
    assert net.parameters == ["k_on", "k_off", "k_syn", "k_deg"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(reactions=[("A -> X", "k")]), "not in species"),
    (dict(rates={}), "no value for rate constant 'k'"),
    (dict(rates={"k": 0.0}), "must be finite and > 0"),
    (dict(initial={"Q": 1}), "unknown species"),
    (dict(measured=["Q"]), "unknown species"),
    (dict(species=["A", "A"]), "unique"),
])
def test_bad_network_is_explained(kwargs, match):
    args = dict(species=["A"], reactions=[("A -> 0", "k")], rates={"k": 1.0})
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        MassActionNetwork(**args)


def test_bad_simulate_arguments_are_explained():
    net = telegraph_model(0.5, 2.0, 20.0)
    with pytest.raises(ValueError, match="unknown rate constant"):
        net.simulate(5, 1.0, rates={"k_foo": 1.0})
    with pytest.raises(ValueError, match="last axis 3"):
        net.simulate(5, 1.0, initial=np.zeros(2, int))
    with pytest.raises(ValueError, match="species must be among"):
        net.simulate(5, 1.0, species=["X"])


def test_shapes_species_selection_and_initial_arrays():
    net = telegraph_model(0.5, 2.0, 20.0)
    x = net.simulate(10, 1.0, seed=0)
    assert x.shape == (10, 3) and x.dtype == np.int64
    assert (x[:, 0] + x[:, 1] == 1).all()          # one promoter copy
    x, s = net.simulate(10, [0.5, 1.0], seed=0, score=True, species=["M"])
    assert x.shape == (2, 10, 1) and s.shape == (2, 10, 4)
    x0 = np.zeros((10, 3), int)
    x0[:, 1] = 1
    x0[:, 2] = np.arange(10)
    x = net.simulate(10, 0.0, initial=x0)
    np.testing.assert_array_equal(x, x0)


def test_absorbing_state_terminates():
    net = MassActionNetwork(["A"], [("A -> 0", "k")], {"k": 2.0})
    x, ev = net.simulate(100, [1.0, 50.0], initial={"A": 3}, seed=1, return_events=True)
    assert (x[1] == 0).all() and (ev == 3).all()


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs >= 2 Numba threads")
def test_thread_count_invariance():
    net = multistate_model(1.0, 2.0, 20.0, n_off=2)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = net.simulate(2000, [0.5, 2.0], seed=9, score=True, capture=0.5)
        numba.set_num_threads(2)
        b = net.simulate(2000, [0.5, 2.0], seed=9, score=True, capture=0.5)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# -- agreement with the dedicated kernel and exact laws ---------------------------------------------
def test_network_telegraph_agrees_with_dedicated_kernel():
    k = (0.5, 2.0, 20.0, 1.0)
    times = [0.5, 3.0]
    N = 20000
    x, sx = telegraph_model(*k).simulate(N, times, seed=61, score=True, species=["M"])
    y, sy = tg.simulate(*k, n_cells=N, t=times, seed=62, score=True)
    for i in range(2):
        assert chisq_two_sample(x[i, :, 0], y[i]) > P_MIN
        for j in range(4):
            assert st.ks_2samp(sx[i, :, j], sy[i, :, j]).pvalue > P_MIN, (i, j)


def test_single_off_state_chain_is_the_telegraph_model():
    a = multistate_model(0.5, 2.0, 20.0, n_off=1).simulate(500, [1.0, 2.0], seed=3, score=True)
    b = telegraph_model(0.5, 2.0, 20.0).simulate(500, [1.0, 2.0], seed=3, score=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_shared_rate_score_is_the_sum_of_step_scores():
    shared = multistate_model(1.5, 2.0, 20.0, n_off=3)
    steps = multistate_model([1.5, 1.5, 1.5], 2.0, 20.0, n_off=3)
    assert steps.parameters[:3] == ["k_on1", "k_on2", "k_on3"]
    xa, sa = shared.simulate(300, 2.0, seed=4, score=True)
    xb, sb = steps.simulate(300, 2.0, seed=4, score=True)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_allclose(sa[:, 0], sb[:, :3].sum(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(sa[:, 1:], sb[:, 3:])


def test_multistate_transient_matches_master_equation():
    net = multistate_model(1.2, 2.0, 15.0, 1.0, n_off=2)
    times = [0.6, 2.5]
    states, P, lost = network_fsp(net, {"G_off1": 1}, times, caps={"M": 90})
    assert lost.max() < 1e-10
    x = net.simulate(20000, times, seed=71)
    col_m = net.species.index("M")
    pm = marginal(states, P, col_m)
    for i in range(2):
        assert chisq_gof(x[i, :, col_m], pm[i]) > P_MIN
        # promoter occupancy: which of the 3 promoter states each cell is in
        prom = np.argmax(x[i, :, :3], axis=1)
        pp = np.array([P[i][states[:, c] == 1].sum() for c in range(3)])
        assert chisq_gof(prom, pp) > P_MIN


def test_second_order_propensity_matches_master_equation():
    # Dimerisation 2A <-> B: the combinatorial factor A(A-1)/2 matters.
    net = MassActionNetwork(["A", "B"], [("2 A -> B", "k_f"), ("B -> 2 A", "k_b")],
                            {"k_f": 0.05, "k_b": 0.8}, initial={"A": 20})
    times = [0.3, 3.0]
    states, P, lost = network_fsp(net, {"A": 20}, times, caps={})
    assert lost.max() < 1e-12
    x, s = net.simulate(20000, times, seed=72, score=True)
    pa = marginal(states, P, 0)
    for i in range(2):
        assert chisq_gof(x[i, :, 0], pa[i]) > P_MIN
    m, se = mean_and_se(s[1], axis=0)
    assert np.all(np.abs(m) < Z * se)


def test_constitutive_transient_is_poisson_and_its_gradient_is_exact():
    k_syn, k_deg, t, cap = 8.0, 1.5, 0.8, 0.5
    net = constitutive_model(k_syn, k_deg)
    x, s = net.simulate(40000, t, capture=cap, seed=73, score=True)
    mean = cap * k_syn / k_deg * (1 - np.exp(-k_deg * t))
    n = np.arange(80)
    assert chisq_gof(x[:, 0], st.poisson.pmf(n, mean)) > P_MIN
    grad, se = lr_gradient(x[:, 0], s)
    e = np.exp(-k_deg * t)
    ref = cap * np.array([(1 - e) / k_deg, -k_syn / k_deg**2 * (1 - e) + k_syn / k_deg * t * e])
    assert np.all(np.abs(grad - ref) < Z * se), (grad, ref, se)


def test_rate_override_and_capture_only_thin_measured_species():
    net = telegraph_model(0.5, 2.0, 20.0)
    x = net.simulate(4000, 15.0, rates={"k_syn": 40.0}, capture=0.5, seed=5)
    assert (x[:, 0] + x[:, 1] == 1).all()           # promoter never thinned
    m, se = mean_and_se(x[:, 2])
    assert abs(m - 0.5 * 40.0 * 0.2) < Z * se
