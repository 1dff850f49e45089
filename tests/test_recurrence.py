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

from telegraph.kernels.poisson_beta import (_REC_SUM_MIN_AB, _rec_run, _rec_start, histogram_eval,
                                            pb_eval)

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
]


def _tol_logp(x):
    return 1e-11 + 1e-15 * x * math.log(x)


def _counts(a, b, x, n_pick=16):
    rng = np.random.default_rng(7)
    n = rng.poisson(x * rng.beta(a, b, 4000))
    qs = np.quantile(n, np.linspace(0.0, 1.0, n_pick - 2))
    v = np.unique(np.concatenate([qs.astype(np.int64), [0, int(n.max() * 1.1) + 3]]))
    w = rng.uniform(0.5, 3.0, v.size)
    return v.astype(np.int64), w


def _rec(v, w, a, b, x, info, anchored):
    if not anchored and min(a, b) < _REC_SUM_MIN_AB:
        pytest.skip("normalisation by the sum is not used there")
    out = np.zeros(10)
    top = _rec_start(int(v.max()), a, b, x, not anchored, 1 << 22)
    assert top >= 0
    _rec_run(v, w, np.arange(v.size), 0, v.size, top, anchored, 1.0, a, b, x, info, np.zeros(11),
             out)
    return out


@pytest.mark.parametrize("anchored", [True, False], ids=["by-series", "by-sum"])
@pytest.mark.parametrize("a,b,x", CASES)
def test_recurrence_matches_mpmath(a, b, x, anchored):
    v, w = _counts(a, b, x)
    out = _rec(v, w, a, b, x, False, anchored)
    lp = np.array([float(R.mp_logpmf(int(n), a, b, x)) for n in v])
    # log P to 1e-11 per count, plus the rounding of the series that fixes
    # the normalisation (~1e-16 x log x in its log t_k*)
    assert abs(out[0] - (w * lp).sum()) <= w.sum() * _tol_logp(x)
    # the scores in theta = log(a, b, x), against mpmath.diff at 4 counts
    # (mpmath.diff is slow at large x): relative to the size of the terms
    idx = np.unique(np.linspace(0, v.size - 1, 4).astype(int))
    keep = np.zeros(v.size, bool)
    keep[idx] = True
    out_k = _rec(v, np.where(keep, w, 0.0) + np.where(keep, 0.0, 1e-300), a, b, x, False,
                 anchored)
    ref = np.zeros(3)
    scale = np.zeros(3)
    th = np.array([a, b, x])
    for i in idx:
        s = np.array([float(t) for t in R.mp_score_ab(int(v[i]), a, b, x, dps=30)])
        ref += w[i] * s
        scale += w[i] * np.abs(s * th)
    err = np.abs((out_k[1:4] - ref) * th)
    assert np.all(err <= 1e-9 * (scale.max() + w[idx].sum())), (err, scale)


@pytest.mark.parametrize("anchored", [True, False], ids=["by-series", "by-sum"])
@pytest.mark.parametrize("a,b,x", CASES)
def test_recurrence_information_matches_series(a, b, x, anchored):
    v, w = _counts(a, b, x, n_pick=40)
    out = _rec(v, w, a, b, x, True, anchored)
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
