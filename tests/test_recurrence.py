"""The downward recurrence in the count (docs/maths.md, "A recurrence in the
count") against mpmath, over the hard range: large counts, large x, small and
large a and b.

Every histogram here has one capture value and counts spread from 0 to past
the bulk, and is evaluated by the recurrence itself (``_rec_run`` from the
start ``_rec_start``), normalised both ways (by exact series values, and by
the sum of P over the counts), whether or not ``histogram_eval`` would choose it for
that histogram. The totals are compared with sums of mpmath's log P(n) and
d log P/d(a, b, x) (tests/reference.py); the observed information, for which
mpmath has no independent route at this size, with the per-count series
(pb_eval, itself checked against mpmath in tests/test_stationary.py), in the
coordinates theta = log(a, b, x) that the fitter uses.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from telegraph.kernels.poisson_beta import (_NORM_ANCHORS, _NORM_P0, _NORM_SUM, _REC_SUM_MIN_AB,
                                            _p0_large_x, _p0_terms, _rec_run, _rec_start,
                                            histogram_eval, pb_eval, pb_pmf_run)

sys.path.insert(0, str(Path(__file__).parent))
import reference as R  # noqa: E402

CASES = [
    # (a, b, x): Poisson-like bulk far from 0, heavy tails, bimodal, tiny rates
    (1e3, 0.5, 2e4),
    (5.0, 0.1, 5e3),
    (1.0, 1.0, 5e3),
    (0.05, 30.0, 3e3),
    (0.01, 0.02, 2e3),
    (1e-4, 1e-4, 500.0),
    (1e3, 1e3, 1e4),
    (0.3, 2.0, 1e5),
    (1.0, 1e3, 4e4),        # the bursty edge of the box (P(0) by its large-x series)
    (4.0, 1e3, 6.8e4),      # ... counts to ~1,200: one P(0) for the whole range
    (2.5, 22.0, 2e3),       # a bursty gene inside it (the same)
    (0.5, 5.0, 10.0),       # small x (a few counts), where the series per count is short
    (2.0, 0.3, 3.0),        # ... mass near p = 1
    (0.05, 0.08, 8.0),      # ... bimodal (spikes at 0 and x)
    (30.0, 40.0, 0.7),      # ... nearly Poisson, below one count on average
]


def _tol_logp(x):
    return 1e-11 + 1e-15 * x * math.log(x)


def _counts(a, b, x, n_pick=16):
    rng = np.random.default_rng(7)
    n = rng.poisson(x * rng.beta(a, b, 4000))
    qs = np.quantile(n, np.linspace(0.0, 1.0, n_pick - 2))
    v = np.unique(np.concatenate([qs.astype(np.int64), [0, int(n.max() * 1.1) + 3]]))
    w = rng.uniform(0.5, 3.0, v.size)
    # cells' counts are whole: weights 1 and 2 (whose w log P _rec_run sums as the log
    # of a product) among the others
    w[::3] = 1.0
    w[1::3] = 2.0
    return v.astype(np.int64), w


#: the three normalisations of the recurrence (_rec_plan's choice), by test id
MODES = {"by-series": _NORM_ANCHORS, "by-sum": _NORM_SUM, "by-p0": _NORM_P0}


def _rec(v, w, a, b, x, info, mode):
    if mode == _NORM_SUM and min(a, b) < _REC_SUM_MIN_AB:
        pytest.skip("normalisation by the sum is not used there")
    if mode == _NORM_P0 and _p0_terms(a, b, x) < 0:
        pytest.skip("the large-x series of P(0) is not used there")
    out = np.zeros(10)
    top = _rec_start(int(v.max()), a, b, x, mode == _NORM_SUM, 1 << 22, np.inf)[mode == _NORM_SUM]
    assert top >= 0
    _rec_run(v, w, np.arange(v.size), 0, v.size, top, mode, 1.0, a, b, x, info, np.zeros(11),
             out, np.empty((0, 2)), np.empty(0), np.empty((0, 3)), np.zeros((0, 3, 3)), np.zeros(0),
             np.zeros(20))
    return out


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
@pytest.mark.parametrize("a,b,x", CASES)
def test_recurrence_matches_mpmath(a, b, x, mode):
    v, w = _counts(a, b, x)
    out = _rec(v, w, a, b, x, False, mode)
    lp = np.array([float(R.mp_logpmf(int(n), a, b, x)) for n in v])
    # log P to 1e-11 per count, plus the rounding of the series that fixes
    # the normalisation (~1e-16 x log x in its log t_k*)
    assert abs(out[0] - (w * lp).sum()) <= w.sum() * _tol_logp(x)
    # the scores in theta = log(a, b, x), against mpmath.diff at 4 counts
    # (mpmath.diff is slow at large x): relative to the size of the terms
    _check_scores_at_4_counts(v, w, a, b, x, mode)


def _check_scores_at_4_counts(v, w, a, b, x, mode):
    """The recurrence's scores in theta = log(a, b, x) over 4 of the counts
    (the others weighted 1e-300) against mpmath.diff, to 1e-9 of the terms'
    size."""
    idx = np.unique(np.linspace(0, v.size - 1, 4).astype(int))
    keep = np.zeros(v.size, bool)
    keep[idx] = True
    out_k = _rec(v, np.where(keep, w, 0.0) + np.where(keep, 0.0, 1e-300), a, b, x, False,
                 mode)
    ref = np.zeros(3)
    scale = np.zeros(3)
    th = np.array([a, b, x])
    for i in idx:
        s = np.array([float(t) for t in R.mp_score_ab(int(v[i]), a, b, x, dps=30)])
        ref += w[i] * s
        scale += w[i] * np.abs(s * th)
    err = np.abs((out_k[1:4] - ref) * th)
    assert np.all(err <= 1e-9 * (scale.max() + w[idx].sum())), (err, scale)


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
@pytest.mark.parametrize("a,b,x", CASES)
def test_recurrence_information_matches_series(a, b, x, mode):
    v, w = _counts(a, b, x, n_pick=40)
    out = _rec(v, w, a, b, x, True, mode)
    ref = np.zeros(10)
    absum = np.zeros(10)
    buf = np.zeros(11)
    for n, wi in zip(v, w):
        pb_eval(float(n), a, b, x, True, buf)
        ref += wi * buf[:10]
        absum += np.abs(wi * buf[:10])
    th = np.array([a, b, x])
    # information in theta: I_ij th_i th_j; compared with the geometric mean
    # of the diagonal's size
    pairs = {4: (0, 0), 5: (0, 1), 6: (0, 2), 7: (1, 1), 8: (1, 2), 9: (2, 2)}
    diag = {0: 4, 1: 7, 2: 9}
    for k, (i, j) in pairs.items():
        size = math.sqrt(absum[diag[i]] * th[i] ** 2 * absum[diag[j]] * th[j] ** 2)
        size += th[i] * absum[1 + i] + th[j] * absum[1 + j]
        assert abs(out[k] - ref[k]) * th[i] * th[j] <= 1e-9 * size, (k, out[k], ref[k])
    assert abs(out[0] - ref[0]) <= w.sum() * _tol_logp(x)


def test_histogram_eval_takes_the_recurrence_and_agrees():
    """A high-expression gene (many distinct counts): histogram_eval's own
    choice (the recurrence) equals the per-count series."""
    a, b, lam = 2.0, 0.5, 3000.0
    rng = np.random.default_rng(3)
    v, w = np.unique(rng.poisson(lam * rng.beta(a, b, 3000)), return_counts=True)
    assert v.size > 500
    w = w.astype(float)
    g = np.zeros(v.size, np.int64)
    out = np.zeros(10)
    histogram_eval(v, w, g, np.array([1.0]), a, b, lam, True, out)
    ref = np.zeros(10)
    buf = np.zeros(11)
    for n, wi in zip(v, w):
        pb_eval(float(n), a, b, lam, True, buf)
        ref += wi * buf[:10]
    assert out[0] == pytest.approx(ref[0], rel=1e-12, abs=1e-11 * w.sum())
    th = np.array([a, b, lam])
    assert np.all(np.abs((out[1:4] - ref[1:4]) * th) <= 1e-9 * w.sum())


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_weights_of_one_and_two_summed_as_a_product(mode):
    """Bins of weight 1 and 2 add w log P as the log of a running product of P,
    renormalised before it leaves [1e-100, 1e100]: over every count 0..799 of a
    high-count gene (a product of 800 values down to ~1e-300 each) the total
    and its derivatives equal the sum of the per-count series (pb_eval, checked
    against mpmath in tests/test_stationary.py)."""
    a, b, x = 3.9, 11.0, 952.0
    v = np.arange(800, dtype=np.int64)
    w = np.where(v % 5 == 0, 2.0, 1.0)
    w[7::50] = 3.5
    out = _rec(v, w, a, b, x, True, mode)
    ref = np.zeros(10)
    buf = np.zeros(11)
    for n, wi in zip(v, w):
        pb_eval(float(n), a, b, x, True, buf)
        ref += wi * buf[:10]
    assert out[0] < -8000.0   # the product leaves [1e-100, 1e100] ~35 times
    assert out[0] == pytest.approx(ref[0], rel=1e-12, abs=w.sum() * _tol_logp(x))
    th = np.array([a, b, x])
    assert np.all(np.abs((out[1:4] - ref[1:4]) * th) <= 1e-9 * w.sum())


@pytest.mark.parametrize("a,b,lam", [(0.07, 1e3, 7.3e4),    # the bursty edge of the box
                                      (5.0, 2.0, 450.0)])      # a bulk far from 0
def test_one_anchor_normalises_a_short_range_of_many_counts(a, b, lam):
    """Many distinct counts over a range shorter than _REC_ANCHOR_SPAN, b >= 1:
    the recurrence is normalised by one series value (at large x, one series
    of O(sqrt x) terms instead of eight); histogram_eval's total against
    mpmath's log P summed over the counts, to the recurrence tests' tolerance,
    and the scores at 4 counts against mpmath's (the spiky laws with b < 1,
    whose recurrence crosses a deep valley between two modes, keep one anchor
    per 8 distinct counts: there one anchor per 1,024 counts let the score
    in x drift 3x past test_stationary's tolerance)."""
    from telegraph.kernels.poisson_beta import _REC_ANCHOR_SPAN, _rec_anchors, _rec_plan
    rng = np.random.default_rng(12)
    v, w = np.unique(rng.poisson(lam * rng.beta(a, b, 3000)), return_counts=True)
    v = v.astype(np.int64)
    w = w.astype(float)
    assert v.size >= 64 and v.max() < _REC_ANCHOR_SPAN
    assert _rec_anchors(v.size, int(v.max()), b, False) == 1
    assert _rec_anchors(v.size, int(v.max()), 0.5, False) == 8
    # with the expansion in log capture: the same over a short range, and at least one
    # anchor per _REC_ANCHOR_SPAN counts of a long one (at most one per distinct count)
    assert _rec_anchors(v.size, int(v.max()), b, True) == 1
    assert _rec_anchors(3, 14296, b, True) == 3
    assert _rec_anchors(200, 10 * _REC_ANCHOR_SPAN, b, True) == 11
    lp = np.array([float(R.mp_logpmf(int(n), a, b, lam)) for n in v])
    ref = (w * lp).sum()
    # the recurrence normalised by its one anchor
    assert abs(_rec(v, w, a, b, lam, False, _NORM_ANCHORS)[0] - ref) <= w.sum() * _tol_logp(lam)
    # and histogram_eval's own choice: at the bursty edge that anchor is P(0) from its
    # large-x series (a few terms, cheaper than both the series at a count and the
    # normalisation by the sum over P's long tail); in the bulk the series at a count
    top, mode = _rec_plan(v, w, np.arange(v.size), 0, v.size, a, b, lam, False)
    assert top >= 0 and (mode == _NORM_P0 if b > 100.0 else mode == _NORM_ANCHORS or b < 10.0)
    out = np.zeros(10)
    histogram_eval(v, w, np.zeros(v.size, np.int64), np.array([1.0]), a, b, lam, False, out)
    assert abs(out[0] - ref) <= w.sum() * _tol_logp(lam)
    # the scores in theta = log(a, b, x) at 4 of the counts against mpmath.diff
    _check_scores_at_4_counts(v, w, a, b, lam, mode)


@pytest.mark.parametrize("a,b,x", [
    (1.0, 1e3, 4.1e4), (4.0, 1e3, 6.8e4), (0.05, 1e3, 8.45e4),   # the bursty edge of the box
    (2.5, 22.4, 2.0e3), (0.6, 30.0, 3.1e3), (3.5, 11.0, 920.0),   # bursty genes inside it
    (7.0, 1e3, 1.26e4), (0.08, 131.0, 1.05e4), (1.2, 16.0, 707.0),
])
def test_p0_large_x_matches_mpmath(a, b, x):
    """P(0) = M(a, a + b, -x) from its large-x series (the recurrence's cheap
    anchor, docs/maths.md, *P(0) at large x*): log P(0) to 1e-14, its gradient
    in (a, b, x) and observed information against mpmath's derivatives of
    log hyp1f1, in theta = log(a, b, x), to 1e-10 of the largest of their
    terms."""
    import mpmath as mp

    K = _p0_terms(a, b, x)
    assert K > 0
    out = np.zeros(11)
    _p0_large_x(a, b, x, K, True, out)
    with mp.workdps(40):
        def f(a_, b_, x_):
            return mp.log(mp.hyp1f1(a_, a_ + b_, -x_))
        A, B, X = mp.mpf(a), mp.mpf(b), mp.mpf(x)
        assert abs(out[0] - float(f(A, B, X))) <= 1e-14 * max(1.0, abs(out[0]))
        g = [mp.diff(lambda t: f(t, B, X), A), mp.diff(lambda t: f(A, t, X), B),
             mp.diff(lambda t: f(A, B, t), X)]
        H = {(0, 0): mp.diff(lambda t: f(t, B, X), A, 2),
             (0, 1): mp.diff(lambda s, t: f(s, t, X), (A, B), (1, 1)),
             (0, 2): mp.diff(lambda s, t: f(s, B, t), (A, X), (1, 1)),
             (1, 1): mp.diff(lambda t: f(A, t, X), B, 2),
             (1, 2): mp.diff(lambda s, t: f(A, s, t), (B, X), (1, 1)),
             (2, 2): mp.diff(lambda t: f(A, B, t), X, 2)}
    th = np.array([a, b, x])
    score = np.array([float(v) for v in g]) * th
    np.testing.assert_allclose(out[1:4] * th, score, rtol=0, atol=1e-10 * np.abs(score).max())
    slots = {(0, 0): 4, (0, 1): 5, (0, 2): 6, (1, 1): 7, (1, 2): 8, (2, 2): 9}
    for (i, j), k in slots.items():
        want = -float(H[(i, j)]) * th[i] * th[j]
        size = max(abs(float(H[(i, i)])) * th[i] ** 2, abs(float(H[(j, j)])) * th[j] ** 2,
                   abs(score[i]), abs(score[j]))
        assert abs(out[k] * th[i] * th[j] - want) <= 1e-10 * size, ((i, j), out[k], want)


def test_p0_large_x_refuses_where_its_error_bound_fails():
    """The series of P(0) is used only where its error bound holds: large x
    against a b (every term at most 3/4 of the one before), b >= 2 and past the
    terms summed (the Taylor remainder's bound), x well past a + K (the
    integrals' tails)."""
    assert _p0_terms(1.0, 1e3, 4.1e4) > 0
    assert _p0_terms(1.0, 1e3, 1.2e3) == -1       # a b / x ~ 0.8: terms shrink too slowly
    assert _p0_terms(0.3, 1.5, 500.0) == -1       # b < 2
    assert _p0_terms(2.0, 3.0, 20.0) == -1        # x below _P0_MIN_X
    assert _p0_terms(40.0, 3.0, 100.0) == -1      # x not past 2 (a + K - 1)


@pytest.mark.parametrize("a,b,x,n0,n1", [
    (2.2, 13.0, 350.0, 0, 1200),        # a goodness-of-fit grid: 0 to far past the bulk
    (0.05, 1e3, 8.45e4, 0, 400),        # the bursty edge of the box
    (0.3, 0.5, 50.0, 0, 300),           # spikes at 0 and at x
    (5.0, 1.0, 3e3, 1500, 4000),        # a run away from 0
])
def test_pmf_run_matches_the_series_and_mpmath(a, b, x, n0, n1):
    """pb_pmf_run (the expected histogram of the goodness-of-fit test): P(n) and
    P (a, b, x) d/d(a, b, x) log P at every count of the run, against the series per
    count (pb_eval) everywhere and mpmath at five counts."""
    m = n1 - n0
    p = np.empty(m)
    d = np.empty((m, 3))
    assert pb_pmf_run(n0, n1, a, b, x, p, d)
    buf = np.zeros(11)
    lp = np.empty(m)
    dref = np.empty((m, 3))
    for j in range(m):
        pb_eval(float(n0 + j), a, b, x, False, buf)
        lp[j] = buf[0]
        dref[j] = np.exp(buf[0]) * np.array([a * buf[1], b * buf[2], x * buf[3]])
    # log P to the series' own accuracy (~1e-16 x log x in its terms; 2e-10 at x = 8e4)
    tol = 1e-11 + 4e-15 * x * math.log(x)
    assert np.max(np.abs(np.log(p) - lp)) <= tol
    assert np.max(np.abs(d - dref) / np.abs(dref).max(axis=0)) <= 10 * tol
    for j in np.linspace(0, m - 1, 5).astype(int):
        assert abs(math.log(p[j]) - float(R.mp_logpmf(n0 + int(j), a, b, x))) <= tol
    # short runs and small x are left to the series
    assert not pb_pmf_run(0, 5, a, b, x, p, d)
    assert not pb_pmf_run(0, 100, a, b, 3.0, p, d)


def _roots(n, a, b, x):
    """The roots of (n+2) r^2 - (n+a+b+x) r + x(n+a)/(n+1) = 0 (numpy's polynomial
    solver): (r_big, r_small) where real, else (modulus, modulus)."""
    r = np.roots([n + 2.0, -(n + a + b + x), x * (n + a) / (n + 1.0)])
    if np.all(np.isreal(r)):
        r = np.sort(np.real(r))
        return r[1], r[0]
    m = abs(r[0])
    return m, m


@pytest.mark.parametrize("seed", range(4))
def test_rec_start_is_the_first_count_the_definition_gives(seed):
    """_rec_start's damped start is the first N' where the sum of log(r_big /
    r_small) over n_max .. N' reaches _REC_DAMP, the roots from numpy's
    polynomial solver (the walk keeps its products as numerators and
    denominators); its tailed start is never below the first N' where the sum
    of log r_small (log of the modulus where the roots are complex) less
    log(1 - r_small) falls below -_REC_TAIL, and at most 4 strides above it."""
    from telegraph.kernels.poisson_beta import _REC_DAMP, _REC_TAIL, _rec_start
    rng = np.random.default_rng(seed)
    for _ in range(60):
        a, b = 10 ** rng.uniform(-1, 2.5, 2)
        x = 10 ** rng.uniform(0, 3.5)
        n_max = int(rng.integers(0, int(2 * x * a / (a + b)) + 5))
        top_d, top_s = _rec_start(n_max, a, b, x, True, float(1 << 22), np.inf)
        damp = 0.0
        n = n_max
        while damp < _REC_DAMP:
            big, small = _roots(n, a, b, x)
            damp += math.log(big / small)
            n += 1
        assert top_d == n, (a, b, x, n_max)
        decay = 0.0
        n = n_max
        while True:
            big, small = _roots(n, a, b, x)
            decay += math.log(small)
            if n + 1 >= top_d and small < 1.0 and decay - math.log(1.0 - small) <= -_REC_TAIL:
                break
            n += 1
        assert n + 1 <= top_s <= n + 1 + 16, (a, b, x, n_max, n + 1, top_s)
