"""The multi-start fit of the telegraph model: its second climb stops once it
is on its way to the optimum the first one found, near that optimum or on the
first climb's path there (maximize's ``known`` and ``trail``)."""

import numpy as np
import pytest

from telegraph.kernels.models import MODEL_TELEGRAPH, gene_bins
from telegraph.kernels.optimize import (TARGET_LOG_A, _SAME_OPTIMUM, fit_telegraph, maximize,
                                        search_box)


def _gene_and_climb():
    """2,000 cells of a Poisson-Beta gene (a = 1.5, b = 3, lam = 40) and a climb of its
    telegraph log-likelihood in the search box: (bins, climb(start, known, trail=None) ->
    (loglik, converged, iterations, theta))."""
    rng = np.random.default_rng(4)
    counts = rng.poisson(40.0 * rng.beta(1.5, 3.0, 2000))
    v, w = np.unique(counts, return_counts=True)
    bins = gene_bins(v.astype(np.int64), w.astype(float), np.zeros(v.size, np.int64), np.ones(1))
    lo = np.empty(3)
    hi = np.empty(3)
    search_box(TARGET_LOG_A, lo, hi)
    T = np.eye(3)
    free = np.ones(3, np.bool_)
    buf = np.zeros(11)

    def climb(start, known, trail=None):
        th = np.array(start, float)
        ll, conv, it = maximize(MODEL_TELEGRAPH, bins, th, T, T, free, lo, hi, 100, buf,
                                np.asarray(known, float),
                                np.empty((0, 3)) if trail is None else trail, True, 1e-9,
                                np.empty(0), np.empty((0, 3)))
        return ll, conv, it, th

    return bins, climb


def test_a_second_climb_stops_on_its_way_to_the_known_optimum():
    """maximize's ``known``: a climb that reaches the neighbourhood of an optimum
    already found (at no higher log-likelihood) stops and returns -inf; one
    told of a point it does not approach, or of a lower maximum, climbs as
    before; fit_telegraph's result is the optimum of the full climbs."""
    bins, climb = _gene_and_climb()
    ll1, conv1, it1, th1 = climb([0.0, 0.0, np.log(80.0)], [])
    assert conv1 and np.isfinite(ll1)
    # a second start, told of the first optimum: stops early, -inf
    ll2, conv2, it2, th2 = climb([1.5, 2.0, np.log(300.0)], np.r_[th1, ll1])
    full = climb([1.5, 2.0, np.log(300.0)], [])
    assert ll2 == -np.inf and not conv2 and it2 < full[2]
    assert np.abs(th2 - th1).max() < _SAME_OPTIMUM
    # the same optimum, reached by the full climb
    assert full[0] == pytest.approx(ll1, abs=1e-8)
    # told of a point far from where it goes, or of a lower maximum: unchanged
    for known in (np.r_[th1 + 1.0, ll1], np.r_[th1, ll1 - 10.0]):
        again = climb([1.5, 2.0, np.log(300.0)], known)
        assert again[0] == full[0] and again[2] == full[2]
        np.testing.assert_array_equal(again[3], full[3])
    out = np.zeros(3)
    ll_fit, conv_fit, _ = fit_telegraph(bins, out, 100, np.zeros(11), np.zeros(3),
                                        np.zeros((3, 3)))
    assert conv_fit and ll_fit == pytest.approx(ll1, abs=1e-8)
    np.testing.assert_allclose(out, th1, atol=1e-4)


def test_a_second_climb_stops_on_the_first_ones_path():
    """maximize's ``trail``: the first climb writes the point after each accepted
    step (its optimum last); a second climb told of those points stops once it
    lands near one of them at no higher a log-likelihood -- before it comes near
    the optimum itself -- and returns -inf; told of the optimum alone it climbs on,
    and told of points shifted away from its path it climbs as before."""
    bins, climb = _gene_and_climb()
    trail = np.full((100, 3), np.nan)
    ll1, conv1, it1, th1 = climb([5.0, 5.0, np.log(20.0)], [], trail)
    n = int(np.isfinite(trail[:, 0]).sum())
    assert conv1 and 5 <= n <= it1
    assert np.isnan(trail[n:]).all() and np.isfinite(trail[:n]).all()
    np.testing.assert_array_equal(trail[n - 1], th1)          # the optimum last
    # a start just off the first climb's early path, more than _SAME_OPTIMUM from its optimum
    start = trail[1] + 0.03
    assert np.abs(start - th1).max() > 5 * _SAME_OPTIMUM
    full = climb(start, [])
    assert full[0] == pytest.approx(ll1, abs=1e-8)          # it goes to the same optimum
    only_opt = climb(start, np.r_[th1, ll1])
    with_path = climb(start, np.r_[th1, ll1, trail[:n].ravel()])
    assert with_path[0] == -np.inf and not with_path[1]
    assert with_path[2] < only_opt[2] <= full[2]
    # where it stopped lies near a point of the path, not near the optimum
    near = np.abs(trail[:n] - with_path[3]).max(axis=1) < _SAME_OPTIMUM
    assert near.any() and np.abs(with_path[3] - th1).max() >= _SAME_OPTIMUM
    # points away from its path change nothing
    away = climb(start, np.r_[th1, ll1, (trail[:n - 1] + 1.0).ravel()])
    assert away[2] == only_opt[2] and away[0] == only_opt[0]


@pytest.mark.parametrize("seed, mu", [(0, 0.5), (9, 1.0), (14, 2.0), (20, 0.5)])
def test_a_climb_along_a_flat_ridge_ends_as_converged_near_the_supremum(seed, mu):
    """Poisson counts: the telegraph likelihood rises towards the Poisson limit
    (a, b -> inf) along a ridge where a damped Newton climb crawls, gaining
    1e-5 nats or less per step. The climb ends there as converged, within
    max_iter (it used to run out of iterations and report no convergence),
    at a log-likelihood within 1e-3 nats of the box's supremum as an
    independent optimiser (scipy's L-BFGS-B from many starts) finds it."""
    from scipy import optimize

    from telegraph.kernels.models import telegraph_eval

    rng = np.random.default_rng(seed)
    counts = rng.poisson(mu, 100)
    v, w = np.unique(counts, return_counts=True)
    bins = gene_bins(v.astype(np.int64), w.astype(float), np.zeros(v.size, np.int64), np.ones(1))
    buf = np.zeros(11)
    out = np.zeros(3)
    ll, conv, it = fit_telegraph(bins, out, 100, buf, np.zeros(3), np.zeros((3, 3)))
    assert conv and it < 100
    lo = np.empty(3)
    hi = np.empty(3)
    search_box(TARGET_LOG_A, lo, hi)
    g = np.zeros(3)
    H = np.zeros((3, 3))

    def neg(th):
        val = telegraph_eval(bins, np.asarray(th, float), False, g, H, buf)
        return -val if np.isfinite(val) else 1e30

    best = -np.inf
    for a0 in (0.0, 3.0, 6.0):
        for b0 in (0.0, 3.0, 6.0):
            x0 = np.array([a0, b0, np.log(mu) + np.log1p(np.exp(b0 - a0))])
            res = optimize.minimize(neg, np.clip(x0, lo, hi), method="L-BFGS-B",
                                    bounds=list(zip(lo, hi)))
            best = max(best, -res.fun)
    assert ll >= best - 1e-3


@pytest.mark.parametrize("seed,a,b,lam", [(1, 0.4, 2.0, 60.0), (2, 0.08, 0.1, 30.0),
                                          (3, 5.0, 40.0, 400.0)])
def test_the_fit_hands_back_the_information_at_its_optimum(seed, a, b, lam):
    """fit_telegraph returns the gradient and observed information at the
    optimum it returns, bit for bit what a fresh evaluation there gives (the
    Wald step takes them instead of evaluating again)."""
    from telegraph.kernels.models import telegraph_eval
    rng = np.random.default_rng(seed)
    counts = rng.poisson(lam * rng.beta(a, b, 800))
    v, w = np.unique(counts, return_counts=True)
    bins = gene_bins(v.astype(np.int64), w.astype(float), np.zeros(v.size, np.int64), np.ones(1))
    theta = np.zeros(3)
    g = np.zeros(3)
    H = np.zeros((3, 3))
    ll, conv, _ = fit_telegraph(bins, theta, 100, np.zeros(11), g, H)
    assert np.isfinite(ll)
    g_ref = np.zeros(3)
    H_ref = np.zeros((3, 3))
    ll_ref = telegraph_eval(bins, theta, True, g_ref, H_ref, np.zeros(11))
    assert ll == ll_ref
    np.testing.assert_array_equal(g, g_ref)
    np.testing.assert_array_equal(H, H_ref)
