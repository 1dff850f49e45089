"""Tests of the likelihood-ratio gradient estimator (telegraph.score_gradient)."""

import numpy as np
import pytest
import scipy.stats as st

import telegraph as tg
from telegraph.gradient import lr_gradient

from _ssa_reference import telegraph_moments

Z = 4.0


def _fd_moment_gradient(fun, k, rel=1e-6):
    k = np.asarray(k, float)
    out = np.empty(4)
    for i in range(4):
        h = rel * k[i]
        up, dn = k.copy(), k.copy()
        up[i] += h
        dn[i] -= h
        out[i] = (fun(up) - fun(dn)) / (2 * h)
    return out


def test_gradient_of_transient_mean():
    k = (0.5, 2.0, 20.0, 1.0)
    res = tg.score_gradient(lambda n: n, *k, n_cells=40000, t=1.5, seed=81)
    ref = _fd_moment_gradient(lambda kk: telegraph_moments(1.5, *kk)[0], k)
    assert res.gradient.shape == (4,) and res.stderr.shape == (4,)
    assert np.all(np.abs(res.gradient - ref) < Z * res.stderr), (res.gradient, ref, res.stderr)
    assert abs(res.value - telegraph_moments(1.5, *k)[0]) < Z * res.value_stderr
    assert res.n_cells == 40000


def test_gradient_of_a_time_course_summary():
    # f uses both sample times; the score of the path up to the last one applies.
    k = (0.5, 2.0, 20.0, 1.0)
    res = tg.score_gradient(lambda n: n[1] - n[0], *k, n_cells=40000, t=[0.5, 2.0], seed=82)

    def diff(kk):
        return telegraph_moments(2.0, *kk)[0] - telegraph_moments(0.5, *kk)[0]

    ref = _fd_moment_gradient(diff, k)
    assert np.all(np.abs(res.gradient - ref) < Z * res.stderr), (res.gradient, ref, res.stderr)


def test_gradient_of_stationary_expectations_per_gene():
    # Two genes at once; f = indicator of a zero count (dropout probability).
    k_on = np.array([0.3, 2.0])
    k_off = np.array([1.0, 4.0])
    k_syn = np.array([10.0, 30.0])
    cap = 0.5
    res = tg.score_gradient(lambda n: (n == 0) * 1.0, k_on, k_off, k_syn, n_cells=40000,
                            t=0.3, capture=cap, initial="stationary", seed=83)
    assert res.gradient.shape == (2, 4)
    for j in range(2):
        kj = (k_on[j], k_off[j], k_syn[j], 1.0)
        ref = tg.pmf(0, *kj, capture=cap) * tg.score(0, *kj, capture=cap)
        assert np.all(np.abs(res.gradient[j] - ref) < Z * res.stderr[j]), (j, res, ref)
        assert abs(res.value[j] - tg.pmf(0, *kj, capture=cap)) < Z * res.value_stderr[j]


@pytest.mark.parametrize("baseline", ["loo", "optimal", "none"])
def test_every_baseline_is_unbiased(baseline):
    k = (0.8, 1.6, 10.0, 1.0)
    res = tg.score_gradient(lambda n: n, *k, n_cells=40000, t=0.5, initial="stationary",
                            seed=84, baseline=baseline)
    n = np.arange(150)
    ref = (n[:, None] * tg.pmf(n, *k)[:, None] * tg.score(n, *k)).sum(axis=0)
    assert np.all(np.abs(res.gradient - ref) < Z * res.stderr), (res.gradient, ref, res.stderr)


def test_baselines_cut_variance_and_loo_is_shift_invariant():
    k = (0.5, 2.0, 20.0, 1.0)
    counts, s = tg.simulate(*k, n_cells=5000, t=1.0, seed=85, score=True)
    g0, _ = lr_gradient(counts, s, "loo")
    g1, se1 = lr_gradient(counts + 1000.0, s, "loo")
    np.testing.assert_allclose(g1, g0, rtol=1e-8, atol=1e-8)
    _, se_none = lr_gradient(counts + 1000.0, s, "none")
    _, se_opt = lr_gradient(counts + 1000.0, s, "optimal")
    assert np.all(se1 < se_none / 10)
    assert np.all(se_opt < se_none / 10)


def test_standard_error_is_calibrated():
    # Spread of independent replicate estimates vs the reported standard error:
    # s^2 / sigma^2 is chi-square with R-1 degrees of freedom.
    R = 40
    k = (0.5, 2.0, 20.0, 1.0)
    reps = [tg.score_gradient(lambda n: n, *k, n_cells=500, t=1.0, seed=1000 + r)
            for r in range(R)]
    g = np.array([r.gradient for r in reps])
    se2 = np.mean([r.stderr ** 2 for r in reps], axis=0)
    ratio = g.var(axis=0, ddof=1) / se2
    lo, hi = st.chi2.ppf([0.0005, 0.9995], R - 1) / (R - 1)
    assert np.all((ratio > lo) & (ratio < hi)), (ratio, lo, hi)


def test_bad_arguments_are_explained():
    with pytest.raises(TypeError, match="callable"):
        tg.score_gradient(3.0, 0.5, 2.0, 20.0, n_cells=10, t=1.0)
    with pytest.raises(ValueError, match="one value per cell"):
        tg.score_gradient(lambda n: n.sum(), 0.5, 2.0, 20.0, n_cells=10, t=1.0)
    with pytest.raises(ValueError, match="baseline must be one of"):
        tg.score_gradient(lambda n: n, 0.5, 2.0, 20.0, n_cells=10, t=1.0, baseline="mean")
    with pytest.raises(ValueError, match="at least 2 paths"):
        lr_gradient(np.ones(1), np.ones((1, 4)))
