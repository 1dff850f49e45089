"""Profile-interval ends of the multi-rate fits (telegraph.likelihood_fit).

The ends of :func:`_profile_side` (the Venzon-Moolgavkar iteration, with the
bracketing search as its fallback) are checked against profiles known in
closed form: a Gaussian log-likelihood (the end is the Wald end exactly) and
the gamma distribution, whose rate maximises at shape / mean for every shape,
so its profile in the shape is an explicit function whose cut-off crossing
scipy's brentq finds independently.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import gammaln, polygamma, psi

from telegraph import likelihood_fit as lf

DROP = 1.920729410347062   # chi2_1(0.95) / 2


class Counting:
    """An objective y -> (ll, gradient, information) that counts its calls."""

    def __init__(self, f):
        self.f = f
        self.n = 0

    def __call__(self, y):
        self.n += 1
        return self.f(np.asarray(y, float))


def gaussian(mu, P):
    def f(y):
        d = y - mu
        return -0.5 * float(d @ P @ d), -P @ d, P.copy()
    return f


def gamma_loglik(x):
    """Log-likelihood of gamma(shape a, rate b) data in y = (log a, log b), with
    its exact score and observed information."""
    n, s1, s2 = x.size, float(np.log(x).sum()), float(x.sum())

    def f(y):
        a, b = np.exp(y)
        ll = n * a * math.log(b) - n * gammaln(a) + (a - 1.0) * s1 - b * s2
        da = n * math.log(b) - n * psi(a) + s1
        db = n * a / b - s2
        H = np.array([[-n * polygamma(1, a), n / b], [n / b, -n * a / b ** 2]])
        th, gr = np.array([a, b]), np.array([da, db])
        Hy = np.outer(th, th) * H + np.diag(th * gr)
        return ll, th * gr, -Hy
    return f


def gamma_profile(x, log_a):
    """The profile log-likelihood in log shape (rate maximised: b = a / mean)."""
    a = math.exp(log_a)
    b = a / x.mean()
    n = x.size
    return n * a * math.log(b) - n * gammaln(a) + (a - 1.0) * np.log(x).sum() - b * x.sum()


def fit(f, y0, lo, hi):
    y, ll, g, info, _, conv = lf._maximise(f, y0, lo, hi, tol=1e-12)
    assert conv
    return y, ll, info


def test_gaussian_end_is_the_wald_end_after_one_step():
    rng = np.random.default_rng(3)
    M = rng.normal(size=(4, 4))
    P = M @ M.T + 4 * np.eye(4)
    mu = np.array([0.3, -1.0, 2.0, 0.5])
    f = Counting(gaussian(mu, P))
    lo, hi = np.full(4, -20.0), np.full(4, 20.0)
    cov = np.linalg.inv(P)
    for k in range(4):
        for sign in (-1, 1):
            f.n = 0
            end = lf._profile_side(f, mu, 0.0, lo, hi, np.eye(4), k, sign, DROP,
                                   math.sqrt(cov[k, k]), P)
            assert end == pytest.approx(mu[k] + sign * math.sqrt(2 * DROP * cov[k, k]),
                                        abs=1e-9)
            assert f.n == 1     # the quadratic model is exact: one step, one check


def test_gamma_shape_ends_match_the_explicit_profile():
    rng = np.random.default_rng(11)
    for shape, n in ((0.7, 60), (3.0, 200), (25.0, 40)):
        x = rng.gamma(shape, 1.0 / 2.0, size=n)
        f = Counting(gamma_loglik(x))
        lo, hi = np.full(2, -12.0), np.full(2, 12.0)
        y, ll, info = fit(f, np.array([0.0, 0.0]), lo, hi)
        # independent: the explicit profile's crossings of the cut-off
        cut = gamma_profile(x, y[0]) - DROP
        assert gamma_profile(x, y[0]) == pytest.approx(ll, abs=1e-8)
        expect = [brentq(lambda t: gamma_profile(x, t) - cut, y[0] + s * 1e-9, y[0] + s * 6.0,
                         xtol=1e-13) for s in (-1, 1)]
        se = lf._wald_se(info, np.eye(2), 0)
        for sign, want in zip((-1, 1), expect):
            f.n = 0
            end = lf._profile_side(f, y, ll, lo, hi, np.eye(2), 0, sign, DROP, se, info)
            # the iteration ends at the root of a profile model within PROFILE_VM_ACCEPT
            # (0.05) nats of the cut-off, exact to second order at its point: well within
            # 0.012 nats, 0.012 / |profile slope| in log shape
            slope = abs(gamma_profile(x, want + 1e-6) - gamma_profile(x, want - 1e-6)) / 2e-6
            assert abs(end - want) < 0.012 / slope + 1e-9, (shape, sign, end, want)
            assert f.n <= 6     # converged by the iteration, not the bracketing search


def test_gamma_rate_end_through_a_linear_change_of_coordinates():
    # the target is log mean = log a - log b (z = A^-1 y with y = A z); its profile:
    # for each mean m (b = a / m) the best shape solves
    # log a - psi(a) = log m - mean(log x) + mean(x) / m - 1
    rng = np.random.default_rng(5)
    x = rng.gamma(2.0, 1.5, size=150)
    f = Counting(gamma_loglik(x))
    lo, hi = np.full(2, -12.0), np.full(2, 12.0)
    y, ll, info = fit(f, np.array([0.0, 0.0]), lo, hi)
    A = np.array([[0.0, 1.0], [-1.0, 1.0]])   # y = A z, z = (log mean, log a)

    def profile_mean(log_m):
        m = math.exp(log_m)
        c = math.log(m) - np.log(x).mean() + x.mean() / m - 1.0
        a = brentq(lambda t: math.log(t) - psi(t) - c, 1e-8, 1e8, xtol=1e-14)
        b = a / m
        return x.size * a * math.log(b) - x.size * gammaln(a) + (a - 1) * np.log(x).sum() \
            - b * x.sum()

    zhat = np.linalg.solve(A, y)
    cut = ll - DROP
    se = lf._wald_se(info, A, 0)
    for sign in (-1, 1):
        want = brentq(lambda t: profile_mean(t) - cut, zhat[0] + sign * 1e-9,
                      zhat[0] + sign * 1.0, xtol=1e-13)
        end = lf._profile_side(f, y, ll, lo, hi, A, 0, sign, DROP, se, info)
        assert profile_mean(zhat[0]) == pytest.approx(ll, abs=1e-8)
        assert end == pytest.approx(want, abs=2e-3)


def test_an_end_beyond_the_search_box_is_unbounded():
    # a wide Gaussian in a narrow box: the iteration's step leaves the box, and the
    # bracketing search reports the side as unbounded
    mu = np.zeros(2)
    P = np.array([[0.01, 0.0], [0.0, 1.0]])
    f = Counting(gaussian(mu, P))
    lo, hi = np.full(2, -5.0), np.full(2, 5.0)
    assert lf._profile_side(f, mu, 0.0, lo, hi, np.eye(2), 0, 1, DROP, 10.0, P) == np.inf
    assert lf._profile_side(f, mu, 0.0, lo, hi, np.eye(2), 0, -1, DROP, 10.0, P) == -np.inf


def test_a_nuisance_held_on_the_box_edge():
    # the nuisance optimum for z_0 above ~1.3 lies beyond the box edge z_1 <= 1: the end
    # is the profile over the box, z_1 held on its edge
    P = np.array([[1.0, -0.9], [-0.9, 1.0]])
    f = Counting(gaussian(np.zeros(2), P))
    lo, hi = np.array([-10.0, -10.0]), np.array([10.0, 1.0])
    end = lf._profile_side(f, np.zeros(2), 0.0, lo, hi, np.eye(2), 0, 1, DROP, 2.0, P)
    # on the edge z_1 = 1: -0.5 (z0^2 - 1.8 z0 + 1) = -DROP
    want = (1.8 + math.sqrt(1.8 ** 2 - 4 * (1 - 2 * DROP))) / 2
    # unconstrained the nuisance would sit at 0.9 z0 > 1 there: the edge binds
    assert 0.9 * want > 1.0
    assert end == pytest.approx(want, abs=5e-3)


def test_a_nuisance_held_on_the_edge_carries_the_ridge_with_it():
    # a narrow ridge z_2 = z_1 (curvature 1e4 across it, as log k_syn follows log k_off
    # at a fixed burst size near the bursty limit) whose nuisance optimum runs through
    # the box edge z_1 <= 1: holding z_1 on the edge must move z_2 along the ridge in the
    # same step (moved alone, the point falls ~1e4 nats off the ridge)
    A, K, eps = 1.0, 1e4, 0.01
    P = np.array([[A, -A, 0.0], [-A, A + K + eps, -K], [0.0, -K, K]])
    f = Counting(gaussian(np.zeros(3), P))
    lo, hi = np.full(3, -10.0), np.array([10.0, 1.0, 10.0])
    end = lf._profile_side(f, np.zeros(3), 0.0, lo, hi, np.eye(3), 0, 1, DROP, 2.0, P)
    # on the edge z_1 = z_2 = 1: -(A (z0 - 1)^2 + eps) / 2 = -DROP
    want = 1.0 + math.sqrt((2 * DROP - eps) / A)
    assert A * want / (A + eps) > 1.0        # unconstrained, the nuisance would leave the box
    assert end == pytest.approx(want, abs=5e-3)
    assert f.n <= 5                          # the iteration, not the bracketing search


def test_the_maximiser_follows_a_ridge_to_the_box_edge():
    # the maximum of a narrow ridge z_1 = z_0 lies beyond the box edge z_0 <= 1: a
    # Newton step clipped in z_0 alone leaves the ridge (~1e4 nats); moved along it, the
    # constrained maximum (1, 1) is reached at once
    K, eps = 1e4, 0.01
    P = np.array([[K + eps, -K], [-K, K]])
    mu = np.array([3.0, 3.0])
    f = Counting(gaussian(mu, P))
    lo, hi = np.full(2, -10.0), np.array([1.0, 10.0])
    y, ll, g, info, it, conv = lf._maximise(f, np.zeros(2), lo, hi)
    assert conv
    np.testing.assert_allclose(y, [1.0, 1.0], atol=1e-6)
    assert f.n <= 6


def test_a_flat_ridge_stops_once_the_steps_gain_nothing():
    # l = -y0^2 / 2 - 1 / y1 rises towards y1 -> infinity ever more slowly (as the
    # two-species likelihood does towards its bursty limit): the Newton decrement
    # 1 / (2 y1) stays above any small tolerance, so the plain iteration walks until
    # max_iter; with ``stall`` it stops, as converged, once three steps gain < 1e-3
    def ridge(y):
        return (-0.5 * y[0] ** 2 - 1.0 / y[1], np.array([-y[0], 1.0 / y[1] ** 2]),
                np.diag([1.0, 2.0 / y[1] ** 3]))
    lo, hi = np.array([-10.0, 0.5]), np.array([10.0, 1e4])
    f = Counting(ridge)
    *_, it, conv = lf._maximise(f, np.array([1.0, 1.0]), lo, hi, max_iter=60)
    assert not conv and it == 60
    f = Counting(ridge)
    y, ll, g, info, it, conv = lf._maximise(f, np.array([1.0, 1.0]), lo, hi, max_iter=60,
                                            stall=1e-3)
    assert conv and it < 60
    # stopped where a step of at most 2 gains about 2 / y1^2: three of them < 1e-3
    assert 6.0 / y[1] ** 2 < 2e-3 and ll > -0.05
    assert abs(y[0]) < 1e-6


def test_a_floor_out_of_reach_stops_the_maximiser_and_one_in_reach_does_not():
    # a log-likelihood with its maximum 0 at mu (a log-cosh valley: not quadratic, its
    # quadratic model far from the top promises gains of hundreds of nats). A test asks
    # only whether the maximum reaches the floor: near the top, a floor 3 nats above
    # the maximum is given up at once (not converged; one evaluation, the start's); far
    # from it, where the model promises much, the climb goes on until it no longer does;
    # a floor below the maximum is climbed to
    mu = np.array([1.0, -2.0])

    def f(y):
        d = y - mu
        return (-float(np.sum(np.log(np.cosh(d)))), -np.tanh(d), np.diag(1.0 / np.cosh(d) ** 2))
    lo, hi = np.full(2, -50.0), np.full(2, 50.0)
    near = mu + np.array([0.3, -0.2])
    c = Counting(f)
    y, ll, g, info, it, conv = lf._maximise(c, near, lo, hi, floor=3.0)
    assert not conv and c.n == 1 and ll == f(near)[0]
    far = mu + np.array([4.0, -2.0])
    assert -6.0 < f(far)[0] < -4.0
    c = Counting(f)
    y, ll, g, info, it, conv = lf._maximise(c, far, lo, hi, floor=3.0)
    assert not conv and c.n > 1 and ll > -1.0 and ll + 1.0 < 3.0
    c = Counting(f)
    y, ll, g, info, it, conv = lf._maximise(c, far, lo, hi, floor=-0.5)
    assert conv and ll > -1e-6
    np.testing.assert_allclose(y, mu, atol=1e-3)


def test_the_bracketing_search_goes_on_from_the_farthest_point_the_iteration_reached(
        monkeypatch):
    # the iteration is cut off after two steps (as when it leaves safe ground): the
    # bracketing search then starts from the farthest point above the cut-off it
    # reached, not from the estimate, and still finds the explicit profile's end
    from telegraph import config
    rng = np.random.default_rng(5)
    x = rng.gamma(0.7, 0.5, size=60)
    lo, hi = np.full(2, -12.0), np.full(2, 12.0)
    y, ll, info = fit(gamma_loglik(x), np.array([0.0, 0.0]), lo, hi)
    cut = gamma_profile(x, y[0]) - DROP
    se = lf._wald_se(info, np.eye(2), 0)
    monkeypatch.setattr(config, "PROFILE_VM_MAX_EVAL", 2)
    seen = {}
    real = lf._bracketing_end

    def spy(*args):
        seen["far"] = args[-1]
        return real(*args)
    monkeypatch.setattr(lf, "_bracketing_end", spy)
    for sign in (-1, 1):
        want = brentq(lambda t: gamma_profile(x, t) - cut, y[0] + sign * 1e-9,
                      y[0] + sign * 6.0, xtol=1e-13)
        end = lf._profile_side(Counting(gamma_loglik(x)), y, ll, lo, hi, np.eye(2), 0, sign,
                               DROP, se, info)
        far = seen["far"]
        assert far is not None and sign * (far[0][0] - y[0]) > 0    # a start beyond the estimate
        # the search stops within 0.03 of the cut-off in the signed root
        slope = abs(gamma_profile(x, want + 1e-6) - gamma_profile(x, want - 1e-6)) / 2e-6
        assert abs(end - want) < 0.1 / slope + 1e-3, (sign, end, want)
