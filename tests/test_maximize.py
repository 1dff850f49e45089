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
    """maximize (its Python version) on ``objective(theta) -> (ll, gradient, information)``,
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
    ll, conv, it = maximize.py_func(0, GENE, theta, eye, eye, np.ones(3, np.bool_),
                                    np.full(3, -50.0), np.full(3, 50.0), max_iter,
                                    np.zeros(11), np.empty(0), np.empty((0, 3)))
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
