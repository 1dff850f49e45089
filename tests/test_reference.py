"""Checks of the independent references in tests/reference.py against each other.

The references are the yardstick for the package (tests/test_stationary.py),
so each route is checked against a different one: the fast peak summation of
the Kummer series against mpmath.hyp1f1 itself, the Kummer form against the
untransformed 1F1 and against quadrature of the defining integral,
mpmath.diff against closed forms, and the truncated CME (two linear-algebra
routes) against mpmath. No telegraph imports.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

import reference as R

# (n, a, b, x): extremes of the range plus ordinary points
POINTS = [
    (0, 1e-3, 1e-3, 1e4), (1, 1e-3, 1e3, 1e4), (5000, 1.0, 1.0, 1e4), (326, 1.0, 1e3, 1e4),
    (10000, 1e3, 1e-3, 1e4), (9000, 1e3, 1e3, 1e4), (7, 0.3, 0.7, 150.0), (120, 2.5, 0.4, 150.0),
    (0, 1e3, 1e3, 300.0), (40, 1e-3, 0.2, 1e3), (2, 0.1, 10.0, 0.01), (10000, 1.0, 1.0, 1e-2),
    (50, 0.5, 0.5, 100.0), (3, 10.0, 1e-3, 1.0),
]


def _rel(u, v):
    return abs(u - v) / max(abs(v), 1)


@pytest.mark.parametrize("b,c,x", [
    (1000.0, 1327.0, 1e4), (1e-3, 1e-3 + 1e-3 + 0.0, 1e4), (1e-3, 2e-3 + 5000, 1e4),
    (1e3, 1e3 + 1e-3 + 1e4, 1e4), (0.7, 1.0 + 7.0, 150.0), (1e-3, 0.2 + 40, 1e3),
    (1e-3, 1e-3 + 2.0, 1e3),  # b << 1: terms peak at k = 0 and again near k ~ x
])
def test_kummer_peak_sum_matches_hyp1f1(b, c, x):
    # generic (non-integer) parameters, as mpmath.diff produces them
    with mp.workdps(25):
        bb = mp.mpf(b) + mp.mpf(2) ** -33
        cc = mp.mpf(c) + mp.mpf(2) ** -35 + bb - mp.mpf(b)
        xx = mp.mpf(x)
        ref = R.log_kummer(bb, cc, xx, "hyp1f1")
        got = R.log_kummer(bb, cc, xx, "peak")
        assert abs(got - ref) <= mp.mpf(10) ** -20 * max(1, abs(ref))


@pytest.mark.parametrize("n,a,b,x", [p for p in POINTS if p[3] <= 300])
def test_kummer_form_matches_untransformed_form(n, a, b, x):
    ref = R.mp_logpmf_direct(n, a, b, x, dps=25)
    got = R.mp_logpmf(n, a, b, x, dps=25)
    assert abs(got - ref) <= mp.mpf(10) ** -20 * max(1, abs(ref))


@pytest.mark.parametrize("n,a,b,x", POINTS)
def test_kummer_form_matches_quadrature(n, a, b, x):
    ref = R.mp_logpmf_quad(n, a, b, x, dps=20)
    got = R.mp_logpmf(n, a, b, x, dps=20)
    # quadrature is the weaker route; 1e-14 is still far below the 1e-7 under test
    assert abs(got - ref) <= 1e-14 * max(1, abs(float(ref)))


@pytest.mark.parametrize("n,a,b,x", POINTS)
def test_diff_score_matches_closed_forms(n, a, b, x):
    da, db, dx = R.mp_score_ab(n, a, b, x, dps=15)
    # d/dx = n/x - E[p|n] with E[p|n] from ratios of Poisson-Beta probabilities
    assert _rel(dx, R.mp_dlogpmf_dx_exact(n, a, b, x)) < 1e-13
    # d/da, d/db by Fisher's identity with posterior expectations of log p,
    # log(1-p) by quadrature (a different route: no hypergeometric function)
    elogp, elog1p = R.mp_posterior_expect_quad(n, a, b, x, [lambda p, q, lp, lq: lp,
                                                           lambda p, q, lp, lq: lq])
    with mp.workdps(25):
        aa, bb = R._m(a), R._m(b)
        fa = elogp - mp.digamma(aa) + mp.digamma(aa + bb)
        fb = elog1p - mp.digamma(bb) + mp.digamma(aa + bb)
    scale = max(abs(a * da), abs(b * db), abs(x * dx), 1e-300)
    assert abs(a * (da - fa)) <= 1e-10 * scale
    assert abs(b * (db - fb)) <= 1e-10 * scale


@pytest.mark.parametrize("n,a,b,x", POINTS)
def test_posterior_ratio_matches_quadrature(n, a, b, x):
    m1, v = R.mp_posterior_moments(n, a, b, x)
    q1, qv = R.mp_posterior_moments_quad(n, a, b, x)
    assert 0 <= m1 <= 1 and 0 <= v <= m1 * (1 - m1)
    assert abs(m1 - q1) <= 1e-13 * m1
    assert abs(v - qv) <= 1e-10 * v


@pytest.mark.parametrize("a,b,lam", [(0.5, 2.0, 20.0), (1e-3, 1e-3, 100.0), (1e3, 1e-3, 50.0),
                                     (0.1, 10.0, 300.0), (2.0, 3.0, 0.01), (1e3, 1e3, 40.0)])
def test_cme_levels_matches_mpmath_and_sparse_lu(a, b, lam):
    M = R.default_truncation(a, b, lam)
    lp, lon = R.cme_logpmf(a, b, lam, M)
    ns = sorted({0, 1, 2, int(lam * a / (a + b)), int(lam) + 5, int(lam + 10 * math.sqrt(lam)) + 20})
    for n in ns:
        ref = R.mp_logpmf(n, a, b, lam)
        ep, _ = R.mp_posterior_moments(n, a, b, lam)
        # full relative accuracy, including far tails
        assert abs(lp[n] - float(ref)) <= 1e-11 * max(1, abs(float(ref)))
        assert abs(lon[n] - float(ref + mp.log(ep))) <= 1e-11 * max(1, abs(float(ref)))
    # plain sparse LU of the same generator: only absolute accuracy
    slp, slon = R.cme_logpmf(a, b, lam, M, method="sparse")
    assert np.abs(np.exp(slp) - np.exp(lp)).max() < 1e-12
    assert np.abs(np.exp(slon) - np.exp(lon)).max() < 1e-12
    # truncation: doubling M changes nothing visible in the bulk and tails of interest
    lp2, _ = R.cme_logpmf(a, b, lam, 2 * M)
    n_cmp = min(M, int(lam + 10 * math.sqrt(lam)) + 20)
    assert np.abs(lp2[: n_cmp + 1] - lp[: n_cmp + 1]).max() < 1e-11 * max(1, abs(lp[n_cmp]))


def test_cme_generator_is_a_generator():
    Q = R.cme_generator(0.7, 1.3, 5.0, 30).toarray()
    assert np.allclose(Q.sum(axis=1), 0, atol=1e-12)
    assert (Q - np.diag(Q.diagonal()) >= 0).all()
    assert Q.shape == (62, 62) and (np.diag(Q) < 0).all()


@pytest.mark.parametrize("s", [0.05, 0.3, 1.0])
def test_thinning_matches_mpmath_with_scaled_x(s):
    a, b, lam = 0.8, 2.5, 60.0
    M = R.default_truncation(a, b, lam)
    lp, lon = R.cme_logpmf(a, b, lam, M)
    tp = R.thin(lp, s)
    ton = R.thin(lon, s)
    for n in (0, 3, int(s * lam * a / (a + b)), int(s * lam) + 10):
        ref = R.mp_logpmf(n, a, b, s * lam)
        ep, _ = R.mp_posterior_moments(n, a, b, s * lam)
        assert abs(tp[n] - float(ref)) <= 1e-11 * max(1, abs(float(ref)))
        # the promoter state is untouched by capture: P(on, k) thins like P(n)
        assert abs(ton[n] - float(ref + mp.log(ep))) <= 1e-11 * max(1, abs(float(ref)))
