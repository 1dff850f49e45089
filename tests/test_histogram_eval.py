"""histogram_eval: the grouped evaluation (bins of one count from several
capture groups share their per-k tables) against the plain per-bin sum of
pb_eval, the mpmath-verified single-point kernel (tests/test_stationary.py).

Tolerance. Both sides round differently, and the per-bin quantities are
themselves differences of larger numbers (log P(n) = n log x - x + log S with
log S ~ x; the scores are digamma differences; the information is
trigamma terms minus posterior covariances). So the error is measured against
the size of what is summed: 1e-11 times sum_i |w_i term_i| (plus sum_i |w_i| x_i
for log P, the cancelling -x). A dropped or mis-weighted term, a wrong
capture factor or a wrong reference offset shows up as an error of the order
of the term itself, far above that.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from telegraph.kernels.models import sort_bins
# the exact evaluation, every capture group as it is, which these tests check path by
# path; histogram_eval expands many groups about coarse ones (tests/test_capture_expansion.py)
from telegraph.kernels.poisson_beta import _X_GROUPED, pb_eval
from telegraph.kernels.poisson_beta import exact_histogram_eval as histogram_eval

sys.path.insert(0, str(Path(__file__).parent))
import reference as R  # noqa: E402

RTOL = 1e-11

# capture factor of each output entry: d/dlam = s d/dx, info al, bl: s, ll: s^2
_POW = np.array([0, 0, 0, 1, 0, 0, 1, 0, 1, 2])


def per_bin(values, weights, groups, capture, a, b, lam, info=True):
    """Sum of pb_eval over the bins, and the scale sum |w term| (+ |w| x)."""
    out = np.zeros(10)
    scale = np.zeros(10)
    buf = np.zeros(11)
    for v, w, g in zip(values, weights, groups):
        if w == 0.0:
            continue
        s = capture[g]
        x = s * lam
        pb_eval(float(v), a, b, x, info, buf)
        term = w * s ** _POW * buf[:10]
        out += term
        scale += np.abs(term)
        scale[0] += abs(w) * x
    return out, scale


def random_histogram(rng, lam_max=1e3):
    n_groups = int(rng.integers(1, 81))
    capture = np.exp(rng.uniform(math.log(1e-3), 0.0, n_groups))
    lam = math.exp(rng.uniform(0.0, math.log(lam_max)))
    a = math.exp(rng.uniform(math.log(1e-2), math.log(1e2)))
    b = math.exp(rng.uniform(math.log(1e-2), math.log(1e2)))
    n_bins = int(rng.integers(1, 250))
    n_max = int(rng.integers(0, 41))
    values = rng.integers(0, n_max + 1, n_bins)
    groups = rng.integers(0, n_groups, n_bins)
    # zero weights must be skipped; bins may repeat a (value, group) pair
    weights = rng.exponential(5.0, n_bins) * (rng.random(n_bins) > 0.1)
    return values, weights, groups, capture, a, b, lam


def check(values, weights, groups, capture, a, b, lam):
    ref, scale = per_bin(values, weights, groups, capture, a, b, lam)
    tol = RTOL * scale + 1e-300
    for info in (True, False):
        out = np.zeros(10)
        histogram_eval(values, weights, groups, capture, a, b, lam, info, out)
        k = 10 if info else 4
        err = np.abs(out[:k] - ref[:k])
        assert (err <= tol[:k]).all(), (info, err / tol[:k], a, b, lam)


def test_random_histograms_match_per_bin_sum():
    rng = np.random.default_rng(20261127)
    n_grouped_path = 0
    n_fallback = 0
    for _ in range(400):
        values, weights, groups, capture, a, b, lam = random_histogram(rng)
        x = capture[groups] * lam
        # both paths are exercised: counts shared by several groups with
        # x below the threshold, and bins beyond it
        n_grouped_path += int((x <= _X_GROUPED).sum() > 1)
        n_fallback += int((x > _X_GROUPED).any())
        check(values, weights, groups, capture, a, b, lam)
        # any order: the kernel sorts unsorted bins itself
        o = rng.permutation(values.shape[0])
        check(values[o], weights[o], groups[o], capture, a, b, lam)
        # the fitter's order (value, group)
        v, w, g = sort_bins(values, weights, groups)
        check(v, w, g, capture, a, b, lam)
    assert n_grouped_path > 200 and n_fallback > 100


def test_random_histograms_large_x():
    """x up to 2e4: bins past _X_WINDOW go to pb_eval, the others run outward
    from their own peaks on tables of up to ~1e4 entries."""
    rng = np.random.default_rng(31)
    for _ in range(80):
        check(*random_histogram(rng, lam_max=2e4))


@pytest.mark.parametrize("a, b", [(0.01, 0.01), (0.05, 0.3), (3.0, 0.02), (100.0, 0.5),
                                  (0.02, 100.0), (100.0, 100.0), (1.0, 1.0)])
def test_dense_capture_grid(a, b):
    """Every count 0..30 in each of 60 groups whose x spans 1e-3..1e3 (b < 1:
    a second peak of the terms at k = 0)."""
    capture = np.geomspace(1e-6, 1.0, 60)
    lam = 1e3
    values = np.repeat(np.arange(31), 60)
    groups = np.tile(np.arange(60), 31)
    weights = np.linspace(0.5, 3.0, values.shape[0])
    check(values, weights, groups, capture, a, b, lam)


def test_low_counts_many_groups_like_size_factors():
    """The benchmark's case: ~55 groups, counts 0..5, x mostly below 30."""
    rng = np.random.default_rng(7)
    capture = np.sort(rng.uniform(0.06, 1.0, 55))
    values = np.repeat(np.arange(6), 55)
    groups = np.tile(np.arange(55), 6)
    weights = rng.integers(0, 40, values.shape[0]).astype(float)
    for a, b, lam in [(0.37, 1.65, 4.5), (0.5, 2.0, 20.0), (2.0, 0.3, 5.0), (0.05, 0.05, 30.0)]:
        check(values, weights, groups, capture, a, b, lam)


def test_single_group_is_the_per_bin_sum():
    """One capture group (no size factors): equal to the per-bin sum, whether
    by the series per count (x below 1: equal up to the order of the products
    w * s * term) or by the recurrence in the count (12 distinct counts at
    x = 3.6, to the rounding of its normalisation)."""
    values = np.arange(12)
    weights = np.linspace(1.0, 5.0, 12)
    groups = np.zeros(12, np.int64)
    for capture, rtol in ((np.array([0.05]), 1e-14), (np.array([0.3]), RTOL)):
        ref, _ = per_bin(values, weights, groups, capture, 0.4, 2.5, 12.0)
        out = np.zeros(10)
        histogram_eval(values, weights, groups, capture, 0.4, 2.5, 12.0, True, out)
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=0)


def test_grouped_loglik_against_mpmath():
    """Where log P(0) is tiny (a << b), -x + log S cancels: the grouped sum
    stays within 1e-12 of the exact value."""
    capture = np.linspace(0.05, 1.0, 20)
    lam = 40.0
    a, b = 0.03, 70.0
    values = np.zeros(20, np.int64)
    groups = np.arange(20)
    weights = np.full(20, 3.0)
    out = np.zeros(10)
    histogram_eval(values, weights, groups, capture, a, b, lam, False, out)
    exact = sum(3.0 * float(R.mp_logpmf(0, a, b, s * lam, dps=30)) for s in capture)
    assert abs(out[0] - exact) <= 1e-12 * abs(exact)


def test_empty_and_all_zero_weights():
    out = np.full(10, np.nan)
    e = np.zeros(0, np.int64)
    histogram_eval(e, np.zeros(0), e, np.array([1.0]), 1.0, 1.0, 1.0, True, out)
    assert (out == 0.0).all()
    out[:] = np.nan
    histogram_eval(np.array([0, 0, 1]), np.zeros(3), np.array([0, 1, 1]), np.array([0.5, 1.0]),
                   1.0, 1.0, 1.0, True, out)
    assert (out == 0.0).all()
