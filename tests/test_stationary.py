"""Verification of the stationary telegraph likelihood, scores and posteriors.

Everything is compared with the independent references of tests/reference.py
(mpmath at high precision; the truncated chemical master equation solved by
exact linear algebra), with finite differences, and with exact identities.

Accuracy required, for a = k_on/k_deg, b = k_off/k_deg in
[1e-3, 1e3], x = capture k_syn/k_deg in [1e-2, 1e4], n in [0, 1e4]:

* |log P - log P_ref| <= 1e-7 wherever log P_ref > -300;
* relative error of the score <= 1e-6, measured as follows. The score is a
  vector; a single component can vanish by cancellation (e.g. d/dx = n/x -
  E[p|n] near the mode) while the others do not, so a component-wise relative
  error is meaningless there. We measure each component in log-parameter
  units, g_j = theta_j d log P/d theta_j (dimensionless, independent of the
  time unit and identical for rates and for (a, b, x)), and require

      |g_j - g_j,ref| <= 1e-6 * max_k |g_k,ref|   for every j,

  i.e. the error is a relative 1e-6 of the gradient's size (max norm in
  log-parameter coordinates, the coordinates a fitter works in). Where every
  component is large this is a component-wise relative error.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference as R
import telegraph as tg
from telegraph.stationary import histogram_loglik, logpmf_ab, score_ab

LOGP_TOL = 1e-7
SCORE_RTOL = 1e-6

AB = [1e-3, 1e-1, 1.0, 10.0, 1e3]
XS = [1e-2, 1.0, 1e2, 1e4]


def _counts_for(a, b, x):
    """0, 1, the mean, the 'on' mode x, a near tail, a deep tail, and 1e4."""
    mean, var = R.mean_var(a, b, x)
    sd = math.sqrt(var)
    c = {0, 1, 2, int(round(mean)), int(round(x)), int(mean + 6 * sd) + 1,
         int(mean + 30 * sd) + 2, 10_000}
    return sorted(v for v in c if 0 <= v <= 10_000)


GRID = [(n, a, b, x) for a in AB for b in AB for x in XS for n in _counts_for(a, b, x)]
SCORE_GRID = [p for p in GRID if p[1] in (1e-3, 1.0, 1e3) and p[2] in (1e-3, 1.0, 1e3)]


# --------------------------------------------------------------------------
# reference values (a few seconds of mpmath; cached across runs in pytest's cache)
# --------------------------------------------------------------------------

_REF_HASH = hashlib.sha1(Path(R.__file__).read_bytes()).hexdigest()[:12]


def _cached(request, name, points, compute):
    cache = getattr(request.config, "cache", None)
    key = f"telegraph_liktest/{name}_{_REF_HASH}_" + hashlib.sha1(
        repr(points).encode()).hexdigest()[:12]
    if cache is not None:
        hit = cache.get(key, None)
        if hit is not None:
            return np.array(hit, dtype=float)
    val = np.array([compute(*p) for p in points], dtype=float)
    if cache is not None:
        cache.set(key, val.tolist())
    return val


@pytest.fixture(scope="session")
def ref_logp(request):
    return _cached(request, "logp", GRID, lambda n, a, b, x: float(R.mp_logpmf(n, a, b, x)))


@pytest.fixture(scope="session")
def ref_score(request):
    return _cached(request, "score", SCORE_GRID,
                   lambda n, a, b, x: [float(v) for v in R.mp_score_ab(n, a, b, x, dps=15)])


@pytest.fixture(scope="session")
def ref_post(request):
    return _cached(request, "post", SCORE_GRID,
                   lambda n, a, b, x: [float(v) for v in R.mp_posterior_moments(n, a, b, x)])


def _arr(points):
    return tuple(np.array(c, dtype=float) for c in zip(*points))


def _report(mask, points, got, ref, extra=None, limit=12):
    idx = np.nonzero(mask)[0]
    lines = [f"{len(idx)} of {len(points)} points fail"]
    for i in idx[:limit]:
        n, a, b, x = points[i]
        lines.append(f"  n={n} a={a:g} b={b:g} x={x:g}: got {got[i]!r} ref {ref[i]!r}"
                     + (f" ({extra[i]})" if extra is not None else ""))
    return "\n".join(lines)


def _score_errors(got, ref, theta):
    """Per-component error in log-parameter units over the gradient's max norm."""
    g, r = got * theta, ref * theta
    scale = np.max(np.abs(r), axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(g - r) / scale


# --------------------------------------------------------------------------
# against mpmath
# --------------------------------------------------------------------------

def test_logpmf_matches_mpmath_on_extreme_grid(ref_logp):
    n, a, b, x = _arr(GRID)
    got = logpmf_ab(n, a, b, x)
    care = ref_logp > -300
    assert care.sum() > 300
    err = np.abs(got - ref_logp)
    bad = care & ~(err <= LOGP_TOL)
    assert not bad.any(), _report(bad, GRID, got, ref_logp, err)


def test_logpmf_far_tail_relative_accuracy(ref_logp):
    """Below log P = -300 the issue sets no absolute bound, but nothing may under-
    or overflow for counts up to 1e4: ask for a relative 1e-9 there."""
    n, a, b, x = _arr(GRID)
    got = logpmf_ab(n, a, b, x)
    tail = ref_logp <= -300
    assert tail.sum() > 20
    err = np.abs(got - ref_logp) / np.abs(ref_logp)
    bad = tail & ~(err <= 1e-9)
    assert not bad.any(), _report(bad, GRID, got, ref_logp, err)


def test_logpmf_in_rates_with_capture_and_kdeg(ref_logp):
    """Same grid through the public rate parametrisation: k_deg = 2.5, capture = 0.37."""
    n, a, b, x = _arr(GRID)
    kd, cap = 2.5, 0.37
    got = tg.logpmf(n, a * kd, b * kd, x * kd / cap, k_deg=kd, capture=cap)
    care = ref_logp > -300
    # a, b, x are re-derived in floating point (one rounding each): allow for it
    s = score_ab(n, a, b, x)
    slack = 4e-16 * np.abs(s * np.stack([a, b, x], -1)).sum(-1)
    err = np.abs(got - ref_logp)
    bad = care & ~(err <= LOGP_TOL + slack)
    assert not bad.any(), _report(bad, GRID, got, ref_logp, err)
    np.testing.assert_allclose(tg.pmf(n[:50], a[:50] * kd, b[:50] * kd, x[:50] * kd / cap,
                                      k_deg=kd, capture=cap), np.exp(got[:50]), rtol=1e-14)


def test_score_matches_mpmath_diff(ref_score):
    n, a, b, x = _arr(SCORE_GRID)
    got = score_ab(n, a, b, x)
    assert got.shape == (len(SCORE_GRID), 3)
    err = _score_errors(got, ref_score, np.stack([a, b, x], -1)).max(-1)
    bad = ~(err <= SCORE_RTOL)
    assert not bad.any(), _report(bad, SCORE_GRID, list(map(tuple, got)),
                                  list(map(tuple, ref_score)), err)


def test_score_in_rates_matches_mpmath(ref_score):
    """Four-rate score with k_deg = 0.2 and capture = 0.5, from the (a, b, x) reference
    by the chain rule (done here, in mpmath-derived floats)."""
    n, a, b, x = _arr(SCORE_GRID)
    kd, cap = 0.2, 0.5
    k_on, k_off, k_syn = a * kd, b * kd, x * kd / cap
    got = tg.score(n, k_on, k_off, k_syn, k_deg=kd, capture=cap)
    assert got.shape == (len(SCORE_GRID), 4)
    da, db, dx = ref_score.T
    ref = np.stack([da / kd, db / kd, dx * cap / kd, -(a * da + b * db + x * dx) / kd], -1)
    theta = np.stack([k_on, k_off, k_syn, np.full_like(a, kd)], -1)
    err = _score_errors(got, ref, theta)
    # k_deg carries the sum a da + b db + x dx, whose terms may cancel: measure it
    # against the size of those terms (the scale of the other components)
    err[:, 3] = np.abs((got[:, 3] - ref[:, 3]) * kd) / np.max(np.abs(ref[:, :3] * theta[:, :3]),
                                                             axis=-1)
    err = err.max(-1)
    bad = ~(err <= SCORE_RTOL + 1e-15)
    assert not bad.any(), _report(bad, SCORE_GRID, list(map(tuple, got)),
                                  list(map(tuple, ref)), err)


def test_posterior_mean_and_variance_match_mpmath(ref_post):
    """E[p|n] = P(on|n): P(on, n) = P(n) E[p|n] is a probability like P(n), so the
    log-accuracy 1e-7 of the issue gives a relative 1e-7 on E[p|n]; Var[p|n] feeds
    the observed information: relative 1e-6."""
    n, a, b, x = _arr(SCORE_GRID)
    k_on, k_off, k_syn = a, b, x
    ep = tg.posterior_on(n, k_on, k_off, k_syn)
    np.testing.assert_array_equal(ep, tg.posterior_mean(n, k_on, k_off, k_syn))
    vp = tg.posterior_var(n, k_on, k_off, k_syn)
    rep, rvp = ref_post.T
    e1 = np.abs(ep - rep) / rep
    bad = ~(e1 <= 1e-7)
    assert not bad.any(), _report(bad, SCORE_GRID, ep, rep, e1)
    e2 = np.abs(vp - rvp) / rvp
    bad = ~(e2 <= 1e-6)
    assert not bad.any(), _report(bad, SCORE_GRID, vp, rvp, e2)


# --------------------------------------------------------------------------
# against the truncated chemical master equation (every n, not a grid)
# --------------------------------------------------------------------------

CME_CASES = [(0.5, 2.0, 20.0), (1e-3, 1e-3, 100.0), (1e3, 1e-3, 50.0), (0.1, 10.0, 300.0),
             (2.0, 3.0, 1e-2), (1e3, 1e3, 1e4), (1e-3, 1e3, 1e4), (1.0, 1.0, 1e4),
             (10.0, 0.1, 1e3), (1e-2, 1e-2, 3e3), (0.3, 1e-3, 2e3)]


@pytest.mark.parametrize("a,b,lam", CME_CASES)
def test_pmf_and_p_on_match_cme(a, b, lam):
    M = R.default_truncation(a, b, lam, n_max=10_000 if lam >= 1e3 else 0)
    ref_p, ref_on = R.cme_logpmf(a, b, lam, M)
    n = np.arange(min(M, 10_000) + 1)
    ref_p, ref_on = ref_p[n], ref_on[n]
    got = tg.logpmf(n, a, b, lam)
    care = ref_p > -300
    err = np.abs(got - ref_p)
    bad = care & ~(err <= LOGP_TOL)
    pts = [(int(v), a, b, lam) for v in n]
    assert not bad.any(), _report(bad, pts, got, ref_p, err)
    with np.errstate(divide="ignore"):
        got_on = got + np.log(tg.posterior_on(n, a, b, lam))
    care = ref_on > -300
    err = np.abs(got_on - ref_on)
    bad = care & ~(err <= LOGP_TOL)
    assert not bad.any(), _report(bad, pts, got_on, ref_on, err)


@pytest.mark.parametrize("s", [0.01, 0.2, 0.9])
def test_capture_matches_binomial_thinning_of_cme(s):
    a, b, lam = 0.8, 2.5, 300.0
    ref_p, ref_on = R.cme_logpmf(a, b, lam)
    tp, ton = R.thin(ref_p, s), R.thin(ref_on, s)
    n = np.arange(len(tp))
    got = tg.logpmf(n, a, b, lam, capture=s)
    care = tp > -300
    assert np.abs(got - tp)[care].max() <= LOGP_TOL
    got_on = got + np.log(tg.posterior_on(n, a, b, lam, capture=s))
    care = ton > -300
    assert np.abs(got_on - ton)[care].max() <= LOGP_TOL


# --------------------------------------------------------------------------
# identities and finite differences
# --------------------------------------------------------------------------

SUM_CASES = [(0.5, 2.0, 20.0), (1e-3, 1e-3, 1e4), (1e3, 1e3, 1e4), (1e-3, 1e3, 50.0),
             (1e3, 1e-3, 3e3), (0.2, 0.3, 1e-2), (5.0, 0.05, 700.0)]


@pytest.mark.parametrize("a,b,x", SUM_CASES)
def test_normalisation_and_zero_mean_score(a, b, x):
    """sum_n P(n) = 1 and sum_n P(n) score(n) = 0, summed to where the tail is < 1e-30
    (x + 40 sqrt(x) + 100: beyond x the law is thinner than Poisson(x))."""
    n = np.arange(int(x + 40 * math.sqrt(x) + 100))
    lp = logpmf_ab(n, a, b, x)
    p = np.exp(lp)
    assert lp[-1] < -70
    # each P(n) carries at most a relative 1e-7 (the log tolerance)
    assert abs(p.sum() - 1) <= LOGP_TOL
    g = score_ab(n, a, b, x) * np.array([a, b, x])
    mean_g = (p[:, None] * g).sum(0)
    scale = (p[:, None] * np.abs(g)).sum(0)
    assert np.all(np.abs(mean_g) <= (SCORE_RTOL + LOGP_TOL) * scale.max()), (mean_g, scale)


def _scale_identity_residual(n, k_on, k_off, k_syn, k_deg, capture):
    s = tg.score(n, k_on, k_off, k_syn, k_deg, capture)
    terms = np.stack(np.broadcast_arrays(k_on, k_off, k_syn, k_deg), -1) * s
    return terms.sum(-1), np.abs(terms).max(-1)


def test_scale_identity_on_grid():
    n, a, b, x = _arr(GRID)
    rng = np.random.default_rng(3)
    kd = 10 ** rng.uniform(-2, 2, len(n))
    cap = rng.uniform(0.01, 1, len(n))
    res, size = _scale_identity_residual(n, a * kd, b * kd, x * kd / cap, kd, cap)
    assert np.all(np.abs(res) <= 1e-12 * size)


# rates (k_on, k_off, k_syn, k_deg, capture) and counts for finite differences
FD_CASES = [
    (0, 0.5, 2.0, 40.0, 2.0, 0.5), (7, 0.5, 2.0, 40.0, 2.0, 0.5), (30, 0.5, 2.0, 40.0, 2.0, 0.5),
    (0, 2e-3, 2e-3, 2e4, 2.0, 1.0), (9000, 2e-3, 2e-3, 2e4, 2.0, 1.0),
    (3, 2e3, 2e3, 2e2, 2.0, 0.5), (120, 20.0, 0.2, 300.0, 3.0, 0.8),
    (10000, 1.0, 1.0, 1e4, 1.0, 1.0), (1, 0.01, 5.0, 0.05, 1.0, 0.9),
]


@pytest.mark.parametrize("case", FD_CASES)
def test_score_matches_central_finite_differences(case):
    """Richardson-extrapolated central differences in log-rate, step 1e-3 and 5e-4:
    truncation O(h^4) ~ 1e-12 relative; rounding ~ eps |log P| / h."""
    n, *rates = case
    rates = np.array(rates, dtype=float)
    f0 = float(tg.logpmf(n, *rates))
    got = tg.score(n, *rates)
    g = got * rates[:4]
    fd = np.empty(4)
    for j in range(4):
        def d(h):
            up, dn = rates.copy(), rates.copy()
            up[j] *= math.exp(h)
            dn[j] *= math.exp(-h)
            return (float(tg.logpmf(n, *up)) - float(tg.logpmf(n, *dn))) / (2 * h)
        h = 1e-3
        fd[j] = (4 * d(h / 2) - d(h)) / 3
    noise = 1e-14 * (1 + abs(f0)) / 5e-4
    assert np.all(np.abs(g - fd) <= SCORE_RTOL * np.abs(g).max() + noise), (g, fd)


# --------------------------------------------------------------------------
# scipy.stats conventions
# --------------------------------------------------------------------------

def test_broadcasting_shapes_and_values():
    n = np.arange(5)[:, None]
    k_on = np.array([0.5, 1.0, 3.0])
    out = tg.logpmf(n, k_on, 2.0, 30.0)
    assert out.shape == (5, 3)
    s = tg.score(n, k_on, 2.0, 30.0)
    assert s.shape == (5, 3, 4)
    kd = np.array([1.0, 2.0]).reshape(2, 1, 1)
    cap = np.array([1.0, 0.5, 0.25])
    assert tg.logpmf(n, k_on, 2.0, 30.0, k_deg=kd, capture=cap).shape == (2, 5, 3)
    assert tg.score(n, k_on, 2.0, 30.0, k_deg=kd, capture=cap).shape == (2, 5, 3, 4)
    assert tg.posterior_on(n, k_on, 2.0, 30.0, k_deg=kd).shape == (2, 5, 3)
    assert tg.posterior_var(n, k_on, 2.0, 30.0, capture=cap).shape == (5, 3)
    assert tg.pmf(n, k_on, 2.0, 30.0).shape == (5, 3)
    # element values equal scalar calls
    full = tg.logpmf(n, k_on, 2.0, 30.0, k_deg=kd, capture=cap)
    fulls = tg.score(n, k_on, 2.0, 30.0, k_deg=kd, capture=cap)
    for i, j, k in [(0, 0, 0), (1, 4, 2), (1, 2, 1)]:
        assert full[i, j, k] == pytest.approx(
            float(tg.logpmf(j, k_on[k], 2.0, 30.0, k_deg=kd[i, 0, 0], capture=cap[k])), abs=1e-13)
        np.testing.assert_allclose(fulls[i, j, k],
                                   tg.score(j, k_on[k], 2.0, 30.0, kd[i, 0, 0], cap[k]),
                                   rtol=1e-13, atol=1e-15)
    # scalars in -> 0-d out (like scipy.stats), lists accepted
    assert np.ndim(tg.logpmf(3, 1.0, 1.0, 10.0)) == 0
    assert np.ndim(tg.posterior_on(3, 1.0, 1.0, 10.0)) == 0
    assert tg.score(3, 1.0, 1.0, 10.0).shape == (4,)
    assert tg.logpmf([0, 1, 2], 1.0, 1.0, 10.0).shape == (3,)


def test_long_arrays_on_threads_equal_one_serial_call(monkeypatch):
    """Arrays of at least config.LAW_THREADS_FROM valid entries run in pieces on
    threads: every entry, invalid ones among them, equals the one-call result and
    the scalar call."""
    from telegraph import config
    rng = np.random.default_rng(3)
    m = 3001
    n = rng.integers(0, 60, m).astype(float)
    n[::97] = -1.0                       # impossible counts
    n[::101] = 2.5
    k_on = np.exp(rng.uniform(-3, 3, m))
    k_on[::89] = -1.0                    # invalid parameters
    serial = (tg.logpmf(n, k_on, 2.0, 30.0), tg.score(n, k_on, 2.0, 30.0),
              tg.posterior_var(n, k_on, 2.0, 30.0))
    monkeypatch.setattr(config, "LAW_THREADS_FROM", 7)
    monkeypatch.setattr("numba.get_num_threads", lambda: 3)
    threaded = (tg.logpmf(n, k_on, 2.0, 30.0), tg.score(n, k_on, 2.0, 30.0),
                tg.posterior_var(n, k_on, 2.0, 30.0))
    for x, y in zip(serial, threaded):
        np.testing.assert_array_equal(x, y)
    assert np.isneginf(threaded[0][97]) and np.isnan(threaded[0][89])
    for i in (0, 1, 500, 1777, m - 1):
        assert threaded[0][i] == float(tg.logpmf(n[i], k_on[i], 2.0, 30.0)) or (
            np.isnan(threaded[0][i]) and k_on[i] < 0)


BAD_PARAMS = [dict(k_on=0.0), dict(k_on=-1.0), dict(k_on=np.inf), dict(k_on=np.nan),
              dict(k_off=0.0), dict(k_off=-2.0), dict(k_off=np.inf), dict(k_syn=0.0),
              dict(k_syn=-3.0), dict(k_syn=np.nan), dict(k_syn=np.inf), dict(k_deg=0.0),
              dict(k_deg=-1.0), dict(k_deg=np.inf), dict(k_deg=np.nan), dict(capture=0.0),
              dict(capture=-0.1), dict(capture=1.5), dict(capture=np.nan),
              dict(capture=np.inf)]
GOOD = dict(k_on=0.7, k_off=1.3, k_syn=25.0, k_deg=1.0, capture=1.0)


@pytest.mark.parametrize("bad", BAD_PARAMS, ids=lambda d: f"{list(d)[0]}={list(d.values())[0]}")
def test_invalid_parameters_give_nan(bad):
    kw = {**GOOD, **bad}
    for n in (0, 5, -1, 2.5):  # nan wins over -inf, as in scipy.stats
        assert np.isnan(tg.logpmf(n, **kw)), n
        assert np.isnan(tg.pmf(n, **kw))
        assert np.isnan(tg.score(n, **kw)).all()
        assert np.isnan(tg.posterior_on(n, **kw))
        assert np.isnan(tg.posterior_var(n, **kw))


def test_impossible_counts():
    for n in (-1, -7, 2.5, 0.1, -0.5):
        assert tg.logpmf(n, **GOOD) == -np.inf
        assert tg.pmf(n, **GOOD) == 0.0
        assert np.isnan(tg.score(n, **GOOD)).all()
        assert np.isnan(tg.posterior_on(n, **GOOD))
    # mixed arrays: the valid entries are untouched
    n = np.array([3, -1, 2.5, 4])
    out = tg.logpmf(n, **GOOD)
    assert out[1] == out[2] == -np.inf
    assert out[0] == tg.logpmf(3, **GOOD) and out[3] == tg.logpmf(4, **GOOD)
    k_on = np.array([0.7, -1.0, 0.7, np.nan])
    out = tg.logpmf(3, k_on, 1.3, 25.0)
    assert np.isfinite(out[[0, 2]]).all() and np.isnan(out[[1, 3]]).all()


def test_nan_count_gives_nan():
    """scipy.stats: poisson.logpmf(nan, 1) is nan (a missing value, not an impossible count)."""
    assert np.isnan(tg.logpmf(np.nan, **GOOD))
    assert np.isnan(tg.pmf(np.nan, **GOOD))


def test_invalid_input_emits_no_warnings():
    """scipy.stats returns nan / -inf silently; so should we (fits over many genes
    would otherwise flood the user with RuntimeWarnings)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for bad in BAD_PARAMS:
            kw = {**GOOD, **bad}
            tg.logpmf([0, 3, -1], **kw)
            tg.score([0, 3, -1], **kw)
            tg.posterior_on([0, 3, -1], **kw)
            tg.posterior_var([0, 3, -1], **kw)


def test_float_counts_that_are_integers_are_fine():
    assert tg.logpmf(4.0, **GOOD) == tg.logpmf(4, **GOOD)
    assert tg.logpmf(np.int32(4), **GOOD) == tg.logpmf(4, **GOOD)


# --------------------------------------------------------------------------
# property tests over the whole range of the issue
# --------------------------------------------------------------------------

log_ab = st.floats(-3, 3)
log_x = st.floats(-2, 4)
captures = st.floats(-3, 0).map(lambda v: 10**v)  # capture in [1e-3, 1]
counts = st.one_of(st.integers(0, 10_000), st.integers(0, 50))


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(la=log_ab, lb=log_ab, lx=log_x, cap=captures, n=counts, lkd=st.floats(-2, 2),
       frac=st.floats(0, 1))
def test_no_nan_or_inf_anywhere_in_range(la, lb, lx, cap, n, lkd, frac):
    kd = 10**lkd
    a, b, x = 10**la, 10**lb, 10**lx
    # half of the draws put n in the bulk of the law, where fitting happens
    if frac < 0.5:
        mean, var = R.mean_var(a, b, x)
        n = int(min(10_000, max(0, mean + (frac * 8 - 2) * math.sqrt(var))))
    k_on, k_off, k_syn = a * kd, b * kd, x * kd / cap
    lp = tg.logpmf(n, k_on, k_off, k_syn, kd, cap)
    assert np.isfinite(lp) and lp <= 0
    s = tg.score(n, k_on, k_off, k_syn, kd, cap)
    assert np.isfinite(s).all()
    ep = tg.posterior_on(n, k_on, k_off, k_syn, kd, cap)
    vp = tg.posterior_var(n, k_on, k_off, k_syn, kd, cap)
    assert 0 < ep <= 1
    assert 0 <= vp <= ep * (1 - ep) * (1 + 1e-12) + 1e-300
    terms = np.array([k_on, k_off, k_syn, kd]) * s
    assert abs(terms.sum()) <= 1e-12 * np.abs(terms).max()
    # d/dk_syn = n/k_syn - (capture/k_deg) E[p|n]  (docs/maths.md, "Fisher's and Louis' identities")
    assert s[2] == pytest.approx(n / k_syn - cap / kd * ep,
                                 rel=1e-9, abs=1e-12 * (n / k_syn + cap / kd * ep))


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(la=log_ab, lb=log_ab, lx=log_x, n=counts, frac=st.floats(0, 1))
def test_random_points_match_mpmath(la, lb, lx, n, frac):
    """Random points of the whole range (the grid above has only 5 values per axis)."""
    a, b, x = 10**la, 10**lb, 10**lx
    if frac < 0.6:
        mean, var = R.mean_var(a, b, x)
        n = int(min(10_000, max(0, mean + (frac * 10 - 3) * math.sqrt(var))))
    ref = float(R.mp_logpmf(n, a, b, x))
    got = float(logpmf_ab(n, a, b, x))
    if ref > -300:
        assert abs(got - ref) <= LOGP_TOL, (n, a, b, x, got, ref)
    else:
        assert abs(got - ref) <= 1e-9 * abs(ref), (n, a, b, x, got, ref)
    if frac < 0.3:  # the score on a subset (mpmath.diff is slower)
        r = np.array([float(v) for v in R.mp_score_ab(n, a, b, x, dps=15)])
        g = score_ab(n, a, b, x)
        err = _score_errors(g, r, np.array([a, b, x])).max()
        assert err <= SCORE_RTOL, (n, a, b, x, g, r)


# --------------------------------------------------------------------------
# per-gene histogram kernel
# --------------------------------------------------------------------------

def _histogram(seed, a, b, lam, cells, capture=None):
    rng = np.random.default_rng(seed)
    p = rng.beta(a, b, cells)
    s = 1.0 if capture is None else capture
    counts = rng.poisson(s * lam * p)
    return np.unique(counts, return_counts=True)


HIST_CASES = [(0.3, 3.0, 80.0), (2.0, 1.0, 15.0), (1e-2, 2e-2, 2e3), (50.0, 5.0, 300.0)]


@pytest.mark.parametrize("a,b,lam", HIST_CASES)
def test_histogram_loglik_equals_sum_of_logpmf(a, b, lam):
    values, weights = _histogram(1, a, b, lam, 2000)
    ll, grad = histogram_loglik(values, weights, a, b, lam)
    lp = logpmf_ab(values, a, b, lam)
    assert ll == pytest.approx((weights * lp).sum(), rel=1e-12)
    sc = score_ab(values, a, b, lam)
    ref = (weights[:, None] * sc).sum(0)
    scale = (weights[:, None] * np.abs(sc * [a, b, lam])).sum(0).max()
    assert np.all(np.abs((grad - ref) * [a, b, lam]) <= 1e-12 * scale)


@pytest.mark.parametrize("a,b,lam", HIST_CASES)
def test_histogram_loglik_per_bin_capture(a, b, lam):
    values, weights = _histogram(2, a, b, lam, 1500, capture=0.3)
    rng = np.random.default_rng(5)
    caps = rng.choice([0.1, 0.3, 0.55, 1.0], len(values))
    ll, grad = histogram_loglik(values, weights, a, b, lam, capture=caps)
    lp = logpmf_ab(values, a, b, caps * lam)
    assert ll == pytest.approx((weights * lp).sum(), rel=1e-12)
    sc = score_ab(values, a, b, caps * lam)
    ref = np.stack([(weights * sc[:, 0]).sum(), (weights * sc[:, 1]).sum(),
                    (weights * caps * sc[:, 2]).sum()])
    terms = np.abs(weights[:, None] * sc * np.stack([np.full_like(caps, a), np.full_like(caps, b),
                                                     caps * lam], -1))
    assert np.all(np.abs((grad - ref) * [a, b, lam]) <= 1e-12 * terms.sum(0).max())
    # scalar capture equals a constant per-bin capture
    ll1, g1 = histogram_loglik(values, weights, a, b, lam, capture=0.3)
    ll2, g2 = histogram_loglik(values, weights, a, b, lam, capture=np.full(len(values), 0.3))
    assert ll1 == pytest.approx(ll2, rel=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-13)


@pytest.mark.parametrize("a,b,lam", HIST_CASES + [(1e-3, 1e3, 1e4), (1e3, 1e3, 50.0)])
@pytest.mark.parametrize("percap", [False, True])
def test_observed_information_matches_fd_jacobian_of_gradient(a, b, lam, percap):
    """Louis' identity vs the negated central-difference Jacobian of the exact gradient,
    in log-parameter coordinates (D I D, D = diag(a, b, lam)), Richardson-extrapolated."""
    values, weights = _histogram(3, a, b, lam, 1000)
    caps = np.random.default_rng(7).choice([0.2, 1.0], len(values)) if percap else 1.0
    theta = np.array([a, b, lam])
    ll, grad, info = histogram_loglik(values, weights, a, b, lam, capture=caps, info=True)
    _, grad0 = histogram_loglik(values, weights, a, b, lam, capture=caps)
    np.testing.assert_allclose(grad, grad0, rtol=1e-12, atol=1e-12 * np.abs(grad).max())
    assert info.shape == (3, 3)
    np.testing.assert_allclose(info, info.T, rtol=1e-14, atol=0)

    def glog(t):  # gradient wrt log-parameters at theta * exp(t)
        th = theta * np.exp(t)
        return histogram_loglik(values, weights, *th, capture=caps)[1] * th

    def jac(h):
        J = np.empty((3, 3))
        for j in range(3):
            e = np.zeros(3)
            e[j] = h
            J[:, j] = (glog(e) - glog(-e)) / (2 * h)
        return J
    # Richardson estimates R(h) from steps h and h/2, each with the error bar
    # |R(h) - R(h/2)|; the step with the smallest bar wins (truncation shrinks
    # with h, the gradient's rounding noise / h grows: b d/db cancels ~b psi(b))
    hs = [2e-2, 1e-2, 5e-3, 2.5e-3, 1.25e-3]
    Js = [jac(h) for h in hs]
    Rs = [(4 * J2 - J1) / 3 for J1, J2 in zip(Js[:-1], Js[1:])]
    errs = [np.abs(R1 - R2).max() for R1, R2 in zip(Rs[:-1], Rs[1:])]
    best = int(np.argmin(errs))
    # d/dt_j (theta_i g_i) = theta_i theta_j H_ij + delta_ij theta_i g_i
    ref = -(Rs[best] - np.diag(grad * theta))
    got = info * np.outer(theta, theta)
    scale = np.abs(ref).max()
    assert np.all(np.abs(got - ref) <= 1e-6 * scale + 2 * errs[best]), (got, ref, errs)


def test_histogram_loglik_rejects_bad_input():
    with pytest.raises(ValueError):
        histogram_loglik([1, 2], [1.0], 1.0, 1.0, 5.0)
    with pytest.raises(ValueError):
        histogram_loglik([-1, 2], [1.0, 1.0], 1.0, 1.0, 5.0)
    with pytest.raises(ValueError):
        histogram_loglik([1, 2], [1.0, 1.0], 1.0, 1.0, 5.0, capture=1.5)
    with pytest.raises(ValueError):
        histogram_loglik([1, 2], [1.0, 1.0], 1.0, 1.0, 5.0, capture=[0.5, 0.0])
    with pytest.raises(ValueError):
        histogram_loglik([1, 2], [1.0, 1.0], -1.0, 1.0, 5.0)


# -- beyond the documented range of the fits: huge k_off and k_syn ------------------------

# (n, a, b, x): burst sizes x/b of 1e-9 to 2e3 at b = k_off/k_deg up to 1e12 and x up to
# 5e12; the last point is the audit's example of a silently wrong value (0.15 nats)
_EXTREME = [(0, 0.5, 1e10, 10.0), (5, 0.5, 1e10, 10.0), (50, 0.5, 1e8, 2e9),
            (0, 0.5, 1e8, 2e9), (50, 0.5, 1e10, 2e11), (1000, 0.5, 1e7, 2e10),
            (7, 0.083, 1e9, 3e4), (20, 3.0, 1e5, 4e6), (3, 2.0, 1e12, 5e12)]


@pytest.mark.parametrize("n, a, b, x", _EXTREME)
def test_logpmf_stays_exact_at_extreme_k_off(n, a, b, x):
    """Audit: log P was off by 3e-6 nats at k_off = 1e8, 0.15 at 1e12, and above 0 at
    some points. Beyond the fits' box the log of the anchor term is formed without
    cancellation (docs/maths.md, "Large arguments"): within 1e-9 nats of mpmath."""
    ref = float(R.mp_logpmf_quad(n, a, b, x, dps=30))
    got = float(logpmf_ab(n, a, b, x))
    assert abs(got - ref) <= 1e-9, (got, ref)


def test_logpmf_is_nan_beyond_its_range_never_wrong():
    """Where the series would need more than 5e7 terms (x = capture k_syn/k_deg beyond
    about 7e12), log P is NaN rather than a truncated sum; the audit's point returned
    log P = +1233.7 (P > 1)."""
    assert np.isnan(tg.logpmf(1e7, 0.083, 1e12, 4e17))
    assert np.isnan(logpmf_ab(3, 2.0, 1e12, 2e13))
    assert np.isnan(logpmf_ab(3, 2.0, 1.0, 1e19))
    rng = np.random.default_rng(3)
    b = 10.0 ** rng.uniform(4, 12, 300)
    x = b * 10.0 ** rng.uniform(-3, 3, 300)
    n = rng.integers(0, 200, 300)
    lp = logpmf_ab(n, 10.0 ** rng.uniform(-2, 1, 300), b, x)
    ok = x < 7e12
    assert np.isfinite(lp[ok]).all() and (lp[ok] <= 1e-12).all()
    assert np.isnan(lp[x > 1e13]).all()



@pytest.mark.parametrize("a,b,x", [(0.3, 2.0, 15.0), (2.0, 0.5, 40.0), (0.05, 30.0, 300.0)])
def test_derivatives_ab_satisfy_the_information_identities(a, b, x):
    """derivatives_ab's log P equals logpmf_ab's and its score score_ab's; over the
    whole support the scores average to zero and the observed information averages
    to the score's covariance (E[-d2 log P] = E[s s'], Bartlett): checks of the
    information that do not use the code's own formula."""
    from telegraph.stationary import derivatives_ab, logpmf_ab, score_ab
    n = np.arange(0, 4000)
    lp, sc, info = derivatives_ab(n, a, b, x)
    np.testing.assert_allclose(lp, logpmf_ab(n, a, b, x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(sc, score_ab(n, a, b, x), rtol=1e-12, atol=1e-12)
    assert info.shape == (n.size, 3, 3)
    np.testing.assert_array_equal(info, np.swapaxes(info, 1, 2))
    p = np.exp(lp)
    assert abs(p.sum() - 1.0) < 1e-9
    np.testing.assert_allclose(p @ sc, 0.0, atol=1e-7)
    fisher = np.einsum("n,ni,nj->ij", p, sc, sc)
    np.testing.assert_allclose(np.einsum("n,nij->ij", p, info), fisher,
                               rtol=1e-6, atol=1e-9 * np.abs(fisher).max())
    # broadcasting as logpmf_ab: a (2, 1) x (3,) grid
    lp2, sc2, info2 = derivatives_ab(np.array([[0], [5]]), a, b, np.array([1.0, 2.0, x]))
    assert lp2.shape == (2, 3) and sc2.shape == (2, 3, 3) and info2.shape == (2, 3, 3, 3)
