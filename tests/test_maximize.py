"""The damped-Newton maximiser's step control (telegraph.kernels.optimize.maximize),
on log-likelihoods of known shape whose maximum is known exactly: a failed long step is
retried halfway along the same direction (a backtracking line search), and a climb that
needed damping on its way ends at the optimum as soon as the undamped Newton step
predicts a negligible gain, without further evaluations there while the damping decays."""

import numpy as np
import pytest

from telegraph.kernels import optimize
from telegraph.kernels.optimize import _BACKTRACK_MIN, _STEP_MAX, maximize

GENE = (np.zeros(1, np.int64), np.ones(1), np.zeros(1, np.int64), np.ones(1))


def _climb(monkeypatch, objective, start, max_iter=200):
    """maximize's climb (:func:`optimize._climb`, its Python version) on
    ``objective(theta) -> (ll, gradient, information)``,
    unconstrained in practice (box +-50); returns (ll, converged, iterations, theta, the
    evaluations as (theta, ll) in order)."""
    evaluated = []

    def evaluate(model, gene, theta, want_info, g, H, buf):
        ll, grad, info = objective(theta)
        g[:] = grad
        H[:, :] = info
        evaluated.append((theta.copy(), ll))
        return ll

    monkeypatch.setattr(optimize, "evaluate", evaluate)
    theta = np.array(start, float)
    eye = np.eye(3)
    ll, conv, it = optimize._climb.py_func(0, GENE, theta, eye, eye, np.ones(3, np.bool_),
                                           np.full(3, -50.0), np.full(3, 50.0), max_iter,
                                           np.zeros(11), np.empty(0), np.empty((0, 3)), False,
                                           1e-9, np.empty(0), np.empty((0, 3)),
                                           np.empty(optimize._CLIMB_WORK),
                                           np.empty(3, np.bool_))
    return ll, conv, it, theta, evaluated


def _banana(theta):
    """A curved ridge, u = theta1 - theta0^2 / 4 held near 0, rising slowly towards
    theta0 = 3: maximum 0 at (3, 9/4, 0)."""
    x, y, z = theta
    u = y - x * x / 4.0
    ll = -50.0 * u * u - (x - 3.0) ** 2 / 8.0 - z * z / 2.0
    du = np.array([-x / 2.0, 1.0, 0.0])
    grad = -100.0 * u * du - np.array([(x - 3.0) / 4.0, 0.0, z])
    hess = -100.0 * np.outer(du, du)
    hess[0, 0] += 100.0 * u / 2.0 - 0.25
    hess[2, 2] -= 1.0
    return ll, grad, -hess


def test_a_failed_long_step_is_retried_halfway_along_the_same_direction(monkeypatch):
    """On a curved ridge a long Newton step leaves the ridge and fails. The next trial lies
    halfway along the same step (not a short damped step in a turned direction, which
    crawled along such ridges at a tenth of the length), and the climb still ends at the
    maximum."""
    ll, conv, it, theta, evaluated = _climb(monkeypatch, _banana, [-2.0, 1.0, 0.5])
    assert conv
    np.testing.assert_allclose(theta, [3.0, 2.25, 0.0], atol=1e-5)
    assert ll == pytest.approx(0.0, abs=1e-9)
    current_theta, current_ll = evaluated[0]
    backtracked = 0
    for k in range(1, len(evaluated) - 1):
        trial, trial_ll = evaluated[k]
        if trial_ll >= current_ll:
            current_theta, current_ll = trial, trial_ll
            continue
        step = trial - current_theta
        assert np.abs(step).max() <= _STEP_MAX * (1 + 1e-12)
        if np.abs(step).max() > _BACKTRACK_MIN:
            np.testing.assert_allclose(evaluated[k + 1][0], current_theta + 0.5 * step,
                                       rtol=0, atol=1e-12)
            backtracked += 1
    assert backtracked >= 1


def _flat_tails(theta):
    """-sum log(1 + (theta - c)^2): information negative beyond |theta_i - c_i| = 1, so a
    climb from there needs damping; maximum 0 at c."""
    c = np.array([0.5, -1.0, 2.0])
    x = theta - c
    q = 1.0 + x * x
    return -np.log(q).sum(), -2.0 * x / q, np.diag((2.0 - 2.0 * x * x) / (q * q))


def test_a_damped_climb_ends_at_the_optimum_without_idle_evaluations(monkeypatch):
    """The climb starts where the information is not positive definite, so the Newton
    system is damped; the damping decays by 4x per accepted step. The climb ends as soon
    as the undamped Newton step at its iterate predicts a gain below 1e-9 nats: one
    evaluation within 1e-9 nats of the maximum, rather than one per step of the damping's
    decay."""
    start = np.array([2.0, -2.4, 3.3])
    assert np.any(np.diag(_flat_tails(start)[2]) < 0)
    ll, conv, it, theta, evaluated = _climb(monkeypatch, _flat_tails, start)
    assert conv
    np.testing.assert_allclose(theta, [0.5, -1.0, 2.0], atol=1e-4)
    assert ll == evaluated[-1][1] and ll > -1e-9
    assert sum(value > -1e-9 for _, value in evaluated) == 1


# ----------------------------------------------------------- mean coordinates

def _gene(counts):
    from telegraph.kernels.models import gene_bins
    v, w = np.unique(np.asarray(counts, np.int64), return_counts=True)
    return gene_bins(v.astype(np.int64), w.astype(float), np.zeros(v.size, np.int64),
                     np.ones(1))


def _telegraph_ll(gene, theta):
    from telegraph.kernels.models import MODEL_TELEGRAPH, evaluate
    g = np.zeros(3)
    H = np.zeros((3, 3))
    ll = evaluate(MODEL_TELEGRAPH, gene, np.array(theta, float), True, g, H, np.zeros(11))
    return ll, g, H


@pytest.mark.parametrize("theta", [[0.3, 1.2, 2.5], [2.0, -1.0, 1.5], [-1.5, 3.0, 4.0],
                                   [6.5, 2.0, 1.0]])
def test_mean_coordinates_carry_the_gradient_and_information_of_the_likelihood(theta):
    """The gradient and information in psi = (log a, log b, log(lam a / (a + b))) equal
    central differences of the log-likelihood as a function of psi (the map back to theta
    written out here, independently of optimize._from_mean)."""
    from telegraph.kernels.optimize import _mean_coords
    rng = np.random.default_rng(11)
    gene = _gene(rng.negative_binomial(1.5, 0.2, size=400))

    def ll_psi(psi):
        u, v, m = psi
        return _telegraph_ll(gene, [u, v, m + np.log(np.exp(u) + np.exp(v)) - u])[0]

    ll, g, H = _telegraph_ll(gene, theta)
    psi, gp, Hp = np.zeros(3), np.zeros(3), np.zeros((3, 3))
    _mean_coords(np.array(theta, float), g, H, psi, gp, Hp)
    a, b, lam = np.exp(theta)
    np.testing.assert_allclose(psi, [theta[0], theta[1], np.log(lam * a / (a + b))],
                               rtol=0, atol=1e-12)
    assert ll_psi(psi) == pytest.approx(ll, abs=1e-9)
    h = 1e-4
    num_g = np.zeros(3)
    num_H = np.zeros((3, 3))
    for i in range(3):
        e = np.zeros(3)
        e[i] = h
        num_g[i] = (ll_psi(psi + e) - ll_psi(psi - e)) / (2 * h)
        for j in range(i, 3):
            f = np.zeros(3)
            f[j] = h
            num_H[i, j] = num_H[j, i] = -(ll_psi(psi + e + f) - ll_psi(psi + e - f)
                                          - ll_psi(psi - e + f)
                                          + ll_psi(psi - e - f)) / (4 * h * h)
    scale = 1.0 + np.abs(num_H).max()
    np.testing.assert_allclose(gp, num_g, rtol=0, atol=1e-5 * (1.0 + np.abs(num_g).max()))
    np.testing.assert_allclose(Hp, num_H, rtol=0, atol=1e-4 * scale)


def _climb_real(gene, start, mean, max_iter=100):
    from telegraph.kernels.models import MODEL_TELEGRAPH
    from telegraph.kernels.optimize import TARGET_LOG_A, search_box
    lo, hi = np.empty(3), np.empty(3)
    search_box(TARGET_LOG_A, lo, hi)
    theta = np.array(start, float)
    eye = np.eye(3)
    ll, conv, it = maximize(MODEL_TELEGRAPH, gene, theta, eye, eye, np.ones(3, np.bool_), lo,
                            hi, max_iter, np.zeros(11), np.empty(0), np.empty((0, 3)), mean, 1e-9,
                            np.empty(0), np.empty((0, 3)))
    return ll, conv, it, theta


def test_a_climb_towards_the_poisson_limit_follows_the_ridge_in_the_mean_coordinates():
    """Poisson counts (sample variance below the mean): the telegraph likelihood rises
    along a ridge of constant mean towards the Poisson limit, curved in theta. In the mean
    coordinates the climb reaches the Poisson maximum (scipy, known in closed form) within
    1e-5 nats, converged, in under half the iterations of the same climb in theta, with the
    mean at the sample mean."""
    from scipy import stats
    rng = np.random.default_rng(4)
    counts = rng.poisson(2.5, size=1000)
    assert counts.var() < counts.mean()
    ll_p = stats.poisson.logpmf(counts, counts.mean()).sum()
    gene = _gene(counts)
    start = [3.0, 3.0, 1.6]     # the fit's near-Poisson start
    ll, conv, it, theta = _climb_real(gene, start, True)
    assert conv and it <= 40
    assert ll_p - 1e-5 < ll <= ll_p + 1e-9
    a, b, lam = np.exp(theta)
    assert lam * a / (a + b) == pytest.approx(counts.mean(), rel=1e-3)
    # in theta the same climb zig-zags along the ridge (here it runs out of iterations)
    ll_t, _, it_t, _ = _climb_real(gene, start, False)
    assert ll >= ll_t - 1e-9
    assert it < it_t / 2


def test_a_climb_towards_the_bursty_limit_reaches_the_box_edge_in_the_mean_coordinates():
    """Negative-binomial counts of many small bursts: the likelihood rises towards
    k_off -> infinity at fixed burst frequency and mean, along a ridge curved in theta.
    In the mean coordinates the climb reaches the box edge k_off = 1e3 within 5e-3 nats
    of the negative binomial's maximum (scipy), converged, in under half the iterations
    of the same climb in theta, at no lower a log-likelihood."""
    from scipy import optimize as sopt, stats
    rng = np.random.default_rng(6)
    a0, beta0 = 25.0, 0.15
    counts = rng.negative_binomial(a0, 1.0 / (1.0 + beta0), size=1000)

    def nll(x):
        return -stats.nbinom.logpmf(counts, np.exp(x[0]), 1.0 / (1.0 + np.exp(x[1]))).sum()

    res = sopt.minimize(nll, [np.log(a0), np.log(beta0)], method="Nelder-Mead",
                        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000})
    ll_nb = -res.fun
    gene = _gene(counts)
    start = [2.6, 2.7, 1.9]
    ll, conv, it, theta = _climb_real(gene, start, True)
    assert conv
    assert ll_nb - 5e-3 < ll <= ll_nb + 1e-6
    assert theta[1] == pytest.approx(np.log(1e3), abs=1e-9)
    ll_t, _, it_t, _ = _climb_real(gene, start, False)
    assert ll >= ll_t - 1e-9
    assert it < it_t / 2


def test_the_profiles_looser_decrement_leaves_their_values_within_the_documented_gap():
    """Inner maximisations of the profile stop at a Newton decrement of
    PROFILE_DECREMENT_TOL: at points across a bursty gene's profile of burst frequency the
    value is below the tightly converged one (decrement 1e-12) by at most half of it (the
    quadratic model's remaining gain), never above, and the climb takes no more steps."""
    from telegraph.kernels.models import MODEL_TELEGRAPH
    from telegraph.kernels.optimize import PROFILE_DECREMENT_TOL, TARGET_LOG_A, search_box
    rng = np.random.default_rng(3)
    gene = _gene(rng.negative_binomial(1.2, 1.0 / (1.0 + 15.0), size=800))
    lo, hi = np.empty(3), np.empty(3)
    search_box(TARGET_LOG_A, lo, hi)
    eye = np.eye(3)
    free = np.array([False, True, True])
    steps_loose = steps_tight = 0
    for log_a in (-1.5, -0.5, 0.0, 0.6, 1.5):
        out = []
        for tol in (PROFILE_DECREMENT_TOL, 1e-12):
            theta = np.array([log_a, 2.0, 4.0])
            ll, conv, it = maximize(MODEL_TELEGRAPH, gene, theta, eye, eye, free, lo, hi, 200,
                                    np.zeros(11), np.empty(0), np.empty((0, 3)), True, tol,
                                    np.empty(0), np.empty((0, 3)))
            assert conv
            out.append((ll, it))
        (ll_loose, it_loose), (ll_tight, it_tight) = out
        assert ll_tight - 0.5 * PROFILE_DECREMENT_TOL - 1e-9 <= ll_loose <= ll_tight + 1e-9
        steps_loose += it_loose
        steps_tight += it_tight
    assert steps_loose < steps_tight
