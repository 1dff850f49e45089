"""Two-level fits with many capture groups (docs/maths.md, "Many capture groups: climb
coarse, finish exact"): the coarse bins are the exact ones merged, and the finished fit
reports what a one-level fit of the exact histograms reports."""

import numpy as np
import pytest

from telegraph import config, fitting
from telegraph.histogram import coarse_capture_groups, count_histograms
from telegraph.inputs import FitSettings
from telegraph.kernels import fit as kfit
from telegraph.kernels.models import coarse_bins, sort_bins


def test_coarse_bins_merge_like_a_groupby():
    rng = np.random.default_rng(3)
    v = rng.integers(0, 6, 200)
    g = rng.integers(0, 9, 200)
    w = rng.uniform(0.5, 2.0, 200)
    coarse_of = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3], np.int64)
    cv, cw, cg = coarse_bins(v, w, g, coarse_of)
    ref = {}
    for vi, gi, wi in zip(v, coarse_of[g], w):
        ref[(vi, gi)] = ref.get((vi, gi), 0.0) + wi
    assert len(cv) == len(ref)
    assert sorted(zip(cv.tolist(), cg.tolist())) == list(zip(cv.tolist(), cg.tolist()))
    for vi, gi, wi in zip(cv, cg, cw):
        assert wi == pytest.approx(ref[(vi, gi)], rel=1e-12)
    # the order sort_bins gives (value, then group)
    sv, _, sg = sort_bins(cv, cw, cg)
    assert np.array_equal(sv, cv) and np.array_equal(sg, cg)


def test_coarse_capture_groups():
    # few groups, or merging that does not halve them: one level
    assert coarse_capture_groups(np.array([0.3])) == (None, None)
    assert coarse_capture_groups(np.array([0.1, 0.2, 0.4, 0.8])) == (None, None)
    cap = np.geomspace(0.05, 0.9, 60)
    coarse_of, value = coarse_capture_groups(cap, rtol=0.3)
    assert value.size * 2 <= cap.size
    assert np.all(np.diff(coarse_of) >= 0) and coarse_of.max() == value.size - 1
    # every group within a factor 1.3 of the others of its coarse group, and the coarse
    # value between them
    for k in range(value.size):
        members = cap[coarse_of == k]
        assert members.max() <= members.min() * 1.3 * (1 + 1e-12)
        assert members.min() <= value[k] <= members.max()


def _genes(seed, n_cells, n_genes):
    rng = np.random.default_rng(seed)
    cap = np.clip(rng.lognormal(np.log(0.3), 0.5, n_cells), 0.01, 1.0)
    kon = np.exp(rng.uniform(np.log(0.05), np.log(5), n_genes))
    koff = np.exp(rng.uniform(np.log(0.1), np.log(30), n_genes))
    ksyn = koff * np.exp(rng.uniform(np.log(2), np.log(100), n_genes))
    X = rng.poisson(cap[:, None] * ksyn * rng.beta(kon, koff, (n_cells, n_genes)))
    return count_histograms(X.astype(float), capture=cap), cap


def test_two_level_fit_reports_the_one_level_fit(monkeypatch):
    hist, _ = _genes(11, 600, 40)
    assert coarse_capture_groups(hist.capture)[0] is not None     # two levels are used
    settings = FitSettings()
    # every gene on two levels, whatever its counts
    monkeypatch.setattr(config, "CAPTURE_COARSE_MAX_COUNT", 10**9)
    two = fitting.fit_raw(hist, settings)
    monkeypatch.setattr(config, "CAPTURE_COARSE_RTOL", 0.0)       # one level
    assert coarse_capture_groups(hist.capture)[0] is None
    one = fitting.fit_raw(hist, settings)
    assert np.array_equal(one[:, kfit.R_REGIME], two[:, kfit.R_REGIME])
    # the same optimum to the ascent's tolerance (flat directions aside: compared by
    # log-likelihood), and the same limit maxima
    for col in (kfit.R_LL, kfit.R_LL_NB, kfit.R_LL_ZIP, kfit.R_LL_P):
        np.testing.assert_allclose(two[:, col], one[:, col], rtol=0, atol=1e-3)
    # profile interval ends: the same roots of the exact profile
    a, b = one[:, kfit.R_CI0:kfit.R_CI0 + 8], two[:, kfit.R_CI0:kfit.R_CI0 + 8]
    both = np.isfinite(a) & np.isfinite(b)
    assert both.sum() > 100
    assert np.max(np.abs(a[both] - b[both])) < 1e-3
    assert np.mean(np.isfinite(a) == np.isfinite(b)) > 0.99
    # the goodness of fit of the reported law
    ok = np.isfinite(one[:, kfit.R_GOF_STAT])
    np.testing.assert_allclose(two[ok, kfit.R_GOF_STAT], one[ok, kfit.R_GOF_STAT], rtol=1e-3,
                               atol=1e-3)


def test_one_compiled_version_serves_one_and_two_levels():
    """Histograms without many capture groups run the same compiled version of the fit
    kernel as those with (a first fit of each kind would otherwise compile it twice)."""
    many, _ = _genes(5, 300, 3)
    one = count_histograms(np.asarray([[0.0, 3.0], [2.0, 1.0], [5.0, 0.0]] * 10))
    assert coarse_capture_groups(many.capture)[0] is not None
    assert coarse_capture_groups(one.capture)[0] is None
    settings = FitSettings(interval="wald")
    fitting.fit_raw(many, settings)
    before = len(kfit.fit_genes.signatures)
    fitting.fit_raw(one, settings)
    assert len(kfit.fit_genes.signatures) == before


def test_two_levels_only_for_genes_of_low_counts(monkeypatch):
    """A gene whose largest count exceeds config.CAPTURE_COARSE_MAX_COUNT is fitted on one
    level (the same numbers, bit for bit, as with two levels switched off); one of lower
    counts on two (the coarse climb leaves its mark in the last digits)."""
    rng = np.random.default_rng(4)
    cap = np.clip(rng.lognormal(np.log(0.3), 0.5, 3000), 0.01, 1.0)
    low = rng.poisson(cap * 6.0 * rng.beta(0.3, 2.0, 3000))          # counts up to ~8
    high = rng.poisson(cap * 300.0 * rng.beta(1.5, 4.0, 3000))       # counts in the tens
    X = np.column_stack([low, high]).astype(float)
    hist = count_histograms(X, capture=cap)
    assert coarse_capture_groups(hist.capture)[0] is not None
    limit = config.CAPTURE_COARSE_MAX_COUNT
    assert 0 < low.max() <= limit < high.max()
    settings = FitSettings(interval="wald")
    default = fitting.fit_raw(hist, settings)
    monkeypatch.setattr(config, "CAPTURE_COARSE_RTOL", 0.0)       # one level
    one = fitting.fit_raw(hist, settings)
    assert np.array_equal(default[1], one[1], equal_nan=True)
    assert not np.array_equal(default[0], one[0], equal_nan=True)
    np.testing.assert_allclose(default[0, kfit.R_LL], one[0, kfit.R_LL], rtol=0, atol=1e-3)


def test_coarse_capture_groups_are_remembered_but_handed_out_as_copies():
    """A second call with the same capture values gives the same groups, and
    changing the arrays one call returned does not change what the next gets."""
    cap = np.geomspace(0.1, 0.9, 40)
    coarse_of, value = coarse_capture_groups(cap, rtol=0.3)
    want_of, want_value = coarse_of.copy(), value.copy()
    coarse_of[:] = -1
    value[:] = 0.0
    again_of, again_value = coarse_capture_groups(cap, rtol=0.3)
    np.testing.assert_array_equal(again_of, want_of)
    np.testing.assert_array_equal(again_value, want_value)
