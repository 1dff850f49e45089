"""Calibrated inference at the limits of the model (issue 18): null p-values of
the differential tests uniform per regime class, with and without capture;
weighted Benjamini-Hochberg with information weights; interval coverage
conditional on the reported regime; the depth warning.

Simulations are exact (p ~ Beta(k_on, k_off), n ~ Poisson(capture k_syn p),
k_deg = 1, numpy generators with fixed seeds); tolerances come from the
binomial law of the counted events.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import optimize, stats

import telegraph as tg
from telegraph import config
from telegraph.calibration import (CLASSES, NullScales, _draw_genes, null_law, null_scales,
                                  pooled_fit,
                                  sample_histograms)
from telegraph.differential import DepthWarning, differential
from telegraph.fitting import fit_raw
from telegraph.histogram import count_histograms
from telegraph.inputs import FitSettings
from telegraph.kernels import fit as kfit
from telegraph.kernels.models import gene_bins
from telegraph.kernels.profile import negbinom_profile_bound
from telegraph.multitest import benjamini_hochberg, information_weights, weighted_bh

EXAMPLE_PRIOR = {"k_on": (0.05, 5.0), "k_off": (0.5, 20.0), "burst_size": (2.0, 50.0)}


def kinetics(rng, n, prior=EXAMPLE_PRIOR):
    lu = {k: 10 ** rng.uniform(*np.log10(v), n) for k, v in prior.items()}
    return lu["k_on"], lu["k_off"], lu["burst_size"] * lu["k_off"]


def capture(rng, n, median):
    return np.clip(rng.lognormal(np.log(median), 0.35, n), 0.02, 1.0)


def draw(rng, c, k_on, k_off, k_syn):
    p = rng.beta(k_on[None, :], np.broadcast_to(k_off, (c.size, k_on.size)))
    return rng.poisson(c[:, None] * k_syn[None, :] * p).astype(float)


def binomial_interval(k, n, level=0.99):
    """Clopper-Pearson interval of a proportion."""
    a = (1 - level) / 2
    lo = stats.beta.ppf(a, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(1 - a, k + 1, n - k) if k < n else 1.0
    return lo, hi


# ----------------------------------------------------------------------------- multiple testing

def test_weighted_bh_is_bh_with_unit_weights_and_matches_its_definition():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=300) ** 2
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p),
                               rtol=1e-12)
    w = rng.gamma(2.0, 0.5, 300)
    w[:5] = 0.0
    adj = weighted_bh(p, w)
    # definition: reject at q the k smallest p/w with (p/w)_(k) <= q k / m
    q = p / np.where(w > 0, w, np.nan)
    q = np.where(w > 0, q, np.inf)
    for level in (0.01, 0.05, 0.2):
        order = np.sort(q)
        ok = np.flatnonzero(order <= level * np.arange(1, 301) / 300)
        k = ok.max() + 1 if ok.size else 0
        assert np.sum(adj <= level) == k
    assert (adj[:5] == 1.0).all()
    p[7] = np.nan
    assert np.isnan(weighted_bh(p, w)[7])


def _two_group_pvalues(rng, m, pi0=0.7):
    """p-values whose power depends on a covariate (a standard error): z =
    effect / se + noise, effect 1.2 for the non-null genes."""
    se = np.exp(rng.uniform(np.log(0.1), np.log(3.0), m))
    alt = rng.uniform(size=m) > pi0
    z = np.where(alt, 1.2 / se, 0.0) + rng.standard_normal(m)
    return 2 * stats.norm.sf(np.abs(z)), se, alt


def test_information_weights_are_cross_fitted_and_normalised():
    rng = np.random.default_rng(1)
    p, se, alt = _two_group_pvalues(rng, 3000)
    w = information_weights(p, se, alpha=0.05, n_folds=5, seed=3)
    assert np.isfinite(w).all() and (w >= 0).all()
    # informative genes weigh more than hopeless ones
    assert np.median(w[se < 0.3]) > np.median(w[se > 2.0])
    # a gene's weight does not depend on the p-values of its own fold: change
    # every p-value of one fold and the weights of that fold stay the same
    fold = np.random.default_rng(3).permutation(3000) % 5
    q = p.copy()
    q[fold == 2] = rng.uniform(size=(fold == 2).sum())
    w2 = information_weights(q, se, alpha=0.05, n_folds=5, seed=3)
    np.testing.assert_array_equal(w[fold == 2], w2[fold == 2])
    # too few genes for strata: plain BH
    small = information_weights(p[:400], se[:400])
    np.testing.assert_array_equal(small, 1.0)


def test_information_weights_raise_power_and_keep_the_fdr():
    """Over 12 simulated families of 2,000 p-values, the weighted procedure at
    0.1 keeps the mean false discovery proportion at or below 0.1 (three
    standard errors of the mean) and rejects more non-null genes than BH."""
    rng = np.random.default_rng(2)
    fdp, gain = [], []
    for _ in range(12):
        p, se, alt = _two_group_pvalues(rng, 2000)
        w = information_weights(p, se, alpha=0.1, seed=int(rng.integers(1 << 30)))
        rej = weighted_bh(p, w) < 0.1
        fdp.append((rej & ~alt).sum() / max(rej.sum(), 1))
        gain.append((rej & alt).sum() - (benjamini_hochberg(p) < 0.1)[alt].sum())
    fdp = np.asarray(fdp)
    assert fdp.mean() <= 0.1 + 3 * fdp.std() / np.sqrt(fdp.size), fdp.mean()
    assert np.mean(gain) > 0, gain


# ----------------------------------------------------------------------------- bootstrap data

def test_join_gives_the_pooled_likelihood():
    rng = np.random.default_rng(5)
    k_on, k_off, k_syn = kinetics(rng, 6)
    c1, c2 = capture(rng, 150, 0.2), capture(rng, 120, 0.5)
    X1, X2 = draw(rng, c1, k_on, k_off, k_syn), draw(rng, c2, k_on, k_off, k_syn)
    h1, h2 = count_histograms(X1, capture=c1), count_histograms(X2, capture=c2)
    joined = h1.join(h2)
    np.testing.assert_array_equal(joined.n_cells, [270] * 6)
    assert joined.n_groups == h1.n_groups + h2.n_groups
    np.testing.assert_array_equal(joined.cells_per_group(2)[:h1.n_groups],
                                  h1.cells_per_group(2))
    st = FitSettings(interval="wald", profile=(), gof_min_expected=0.0)
    a = kfit.FitRows(fit_raw(joined, st))
    b = kfit.FitRows(fit_raw(count_histograms(np.vstack([X1, X2]), capture=np.r_[c1, c2],
                                              capture_rtol=0.0), st))
    np.testing.assert_allclose(a.loglik, b.loglik, rtol=1e-9)


def test_sample_histograms_keep_the_cells_and_draw_the_fitted_law():
    """Bootstrap data of a gene keep its cells per capture group; the mean of
    the draws matches the fitted law's mean (capture x mean expression)."""
    rng = np.random.default_rng(6)
    k_on, k_off, k_syn = np.array([0.4, 3.0]), np.array([8.0, 0.5]), np.array([80.0, 20.0])
    c = capture(rng, 4000, 0.3)
    X = draw(rng, c, k_on, k_off, k_syn)
    h = count_histograms(X, capture=c)
    pooled = fit_raw(h, FitSettings(interval="wald", profile=(), gof_min_expected=0.0))
    rows = kfit.FitRows(pooled)
    genes = np.array([0, 1, 0])
    b = sample_histograms(h, genes, pooled, [np.random.default_rng(i) for i in range(3)])
    for j, g in enumerate(genes):
        np.testing.assert_array_equal(b.cells_per_group(j), h.cells_per_group(g))
    mean_b = b.mean()
    for j, g in enumerate(genes):
        if rows.at_limit[g] == kfit.REGIME_BURSTY:
            mu = np.exp(rows.nb_log_a[g] + rows.nb_log_beta[g])
        else:
            a, bb, lam = np.exp(rows.theta[g])
            mu = lam * a / (a + bb)
        expect = mu * c.mean()
        sd = np.sqrt(h.var()[g] / 4000)
        assert abs(mean_b[j] - expect) < 5 * sd, (j, mean_b[j], expect)


def _law(draws):
    """A NullScales whose first subclass has the null law of ``draws``."""
    shape = (len(CLASSES), 2)
    mean, zeros = np.full(shape, np.nan), np.zeros(shape)
    zeros[0, 0], mean[0, 0], _ = null_law(draws)
    return NullScales(mean, np.zeros(shape), np.full(shape, draws.size),
                      np.zeros(len(CLASSES), int), zeros=zeros)


def _from_law(rng, n, atom, scale):
    return np.where(rng.random(n) < atom, rng.uniform(0, 1e-8, n), scale * rng.chisquare(1, n))


@pytest.mark.parametrize("atom,scale", [(0.0, 1.0), (0.25, 0.3), (0.6, 1.4)])
def test_null_law_with_an_atom_gives_uniform_pvalues(atom, scale):
    """Statistics drawn from the law the calibration measures -- an atom at 0
    of weight w, chi2_1 x c above it -- get uniform p-values, with no pile at 1
    (the atom's are randomised over [1 - w, 1]); the critical value inverts
    the p-values; the plain chi2 reference is chi2_1's survival function."""
    rng = np.random.default_rng(3)
    n = 20000
    law = _law(_from_law(rng, n, atom, scale))          # the bootstrap's draws
    w, c = law.atom[0, 0], law.scale[0, 0]
    below = stats.chi2.cdf(config.CALIBRATION_ATOM_LR / scale, 1)
    assert w == pytest.approx(atom + (1 - atom) * below, abs=4 * np.sqrt(0.25 / n))
    assert c == pytest.approx(scale, rel=4 * np.sqrt(2 / ((1 - atom) * n)))
    lr = _from_law(rng, n, atom, scale)                  # the data's statistics
    cls = np.zeros(n, np.int64)
    p = law.pvalues(lr, cls, 0)
    assert stats.kstest(p, "uniform").pvalue > 0.001
    for q in (0.05, 0.9):
        k = int((p > q).sum()) if q > 0.5 else int((p < q).sum())
        lo, hi = binomial_interval(k, n)
        assert lo <= (1 - q if q > 0.5 else q) <= hi, (q, k)
    crit = law.critical(cls[:1], 0.95)[0, 0]
    assert law.pvalues(np.array([crit]), cls[:1], 0)[0] == pytest.approx(0.05, rel=1e-9)
    # the same statistics give the same p-values; genes outside the classes get chi2_1
    np.testing.assert_array_equal(p, law.pvalues(lr, cls, 0))
    np.testing.assert_allclose(law.pvalues(lr[:50], np.full(50, -1), 0),
                               stats.chi2.sf(lr[:50], 1), rtol=1e-12)
    plain = NullScales.chi2()
    np.testing.assert_allclose(plain.pvalues(lr[:50], cls[:50], 1), stats.chi2.sf(lr[:50], 1),
                               rtol=1e-12)
    assert plain.critical(cls[:1], 0.95)[0, 1] == pytest.approx(stats.chi2.ppf(0.95, 1))


def test_draw_genes_each_once_more_for_small_classes():
    rng = np.random.default_rng(0)
    many = _draw_genes(np.arange(5000), rng, 400, 1000, 4)
    assert many.size == 1000 and np.unique(many).size == 1000
    mid = _draw_genes(np.arange(700), rng, 400, 1000, 4)
    np.testing.assert_array_equal(np.sort(mid), np.arange(700))
    small = _draw_genes(np.arange(30), rng, 400, 1000, 4)
    assert small.size == 120 and (np.bincount(small) == 4).all()


def test_a_short_subclass_is_topped_up_with_its_own_genes():
    """A subclass whose genes seldom land in it in the first round (here 6
    genes of low expression among 60; a draw lands there when its mean count
    is low) gets a second round of draws of its own genes, and its law comes
    from those; without the second round it took the law of the whole pooled
    regime (240 draws of all genes). The statistics are a stand-in (the
    draws' mean count), so that no test is fitted."""
    rng = np.random.default_rng(11)
    n = 60
    k_on, k_off, k_syn = kinetics(rng, n)
    k_syn[:6] = 0.3 * k_off[:6] * (k_on[:6] + k_off[:6]) / k_on[:6]   # mean 0.3 molecules
    k_syn[6:] = np.maximum(k_syn[6:], 20.0 * k_off[6:] * (k_on[6:] + k_off[6:]) / k_on[6:])
    c = capture(rng, 80, 0.3)
    h1 = count_histograms(draw(rng, c, k_on, k_off, k_syn), capture=c)
    h2 = count_histograms(draw(rng, c, k_on, k_off, k_syn), capture=c)
    pooled = pooled_fit(h1, h2, FitSettings(interval="wald"), progress=False)
    classes = np.zeros(n, np.int64)
    classes[:6] = 1                                   # "telegraph / poisson"

    def statistics(b1, b2):
        m = (b1.mean() + b2.mean()) / 2
        return np.column_stack([m, m]), np.where(m < 0.5, 1, 0)

    law = null_scales(h1, h2, pooled, classes, statistics)
    # 6 genes x 4 draws in the first round, at most 24 landing: topped up past 40
    assert config.CALIBRATION_MIN_SUBCLASS <= law.draws[1, 0] <= 6 * (4 + 8)
    # its law is that of the low genes' draws (mean count ~0.1), not of the pooled regime
    assert law.scale[1, 0] < 0.5
    no_top_up = null_scales(h1, h2, pooled, classes, statistics, top_up=0)
    assert no_top_up.draws[1, 0] == 240
    assert no_top_up.scale[1, 0] > 2.0
    # the other subclass keeps its first-round law
    assert law.scale[0, 0] == no_top_up.scale[0, 0]


# ----------------------------------------------------------------------------- null calibration

def _null_uniform(res, min_class=50):
    """KS uniformity per regime class of the pooled fit and FPR at 0.05 within
    its 99% binomial interval, for both tests."""
    for name in ("burst_frequency", "burst_size"):
        p = res[f"pval_{name}"].to_numpy()
        ok = np.isfinite(p)
        classes = res["regime_pooled"].astype(str).to_numpy()
        for cls in ("telegraph", "bursty"):
            pc = p[ok & (classes == cls)]
            if pc.size >= min_class:
                assert stats.kstest(pc, "uniform").pvalue > 0.001, (name, cls, pc.size)
        k, n = int((p[ok] < 0.05).sum()), int(ok.sum())
        lo, hi = binomial_interval(k, n)
        assert lo <= 0.05 <= hi, (name, k, n)
        # no excess of large p-values (the old chi2(1) reference piled them at 1)
        k9 = int((p[ok] > 0.9).sum())
        lo9, hi9 = binomial_interval(k9, n)
        assert lo9 <= 0.1 <= hi9, (name, k9, n)


@pytest.fixture(scope="module")
def null_with_capture():
    """Identical kinetics in both groups (the example's ranges), 200 genes,
    250 cells per group, capture around 0.15 in group 1 and 0.45 in group 2,
    capture given: the setting where chi2(1) gave 2.6% false positives."""
    rng = np.random.default_rng(18)
    k_on, k_off, k_syn = kinetics(rng, 200)
    c1, c2 = capture(rng, 250, 0.15), capture(rng, 250, 0.45)
    X1, X2 = draw(rng, c1, k_on, k_off, k_syn), draw(rng, c2, k_on, k_off, k_syn)
    return differential(X1, X2, capture1=c1, capture2=c2, progress=False, interval="wald")


def test_null_pvalues_uniform_with_capture(null_with_capture):
    res = null_with_capture
    _null_uniform(res)
    cal = res.attrs["calibration"]
    assert cal["method"] == "bootstrap"
    bursty = cal["classes"].index("bursty / none")
    assert min(cal["draws"][bursty]) >= 100
    # the bursty class's statistic is smaller than chi2(1) on average
    assert max(cal["scale"][bursty]) < 0.95
    # genes whose pooled fit identifies neither target are not tested
    ni = res["flag"] == "not_identified"
    assert set(res.loc[ni, "regime_pooled"].astype(str)) <= {"bimodal", "poisson"}
    assert res.loc[ni, "pval_burst_size"].isna().all() and not res.loc[ni, "tested"].any()


@pytest.mark.parametrize("mode", ["none", "total"])
def test_null_pvalues_uniform_without_capture(mode):
    """Capture not given: the same capture distribution (median 0.3) in both
    groups, counts read as molecules (no depth warning); or capture 0.15 vs
    0.45 and size factors (``capture="total"``), where chi2(1) gave 2.6-2.7%
    false positives."""
    rng = np.random.default_rng(19 if mode == "none" else 21)
    k_on, k_off, k_syn = kinetics(rng, 200)
    median = (0.3, 0.3) if mode == "none" else (0.15, 0.45)
    c1, c2 = capture(rng, 250, median[0]), capture(rng, 250, median[1])
    X1, X2 = draw(rng, c1, k_on, k_off, k_syn), draw(rng, c2, k_on, k_off, k_syn)
    kw = {} if mode == "none" else dict(capture1="total", capture2="total")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DepthWarning)     # same depth or capture: no warning
        res = differential(X1, X2, progress=False, interval="wald", **kw)
    _null_uniform(res)


def test_calibrated_intervals_agree_with_calibrated_pvalues(null_with_capture):
    """Profile intervals of the log2 fold changes invert the calibrated
    statistic: 0 is outside exactly when p < 0.05 (one class scale each)."""
    rng = np.random.default_rng(20)
    k_on, k_off, k_syn = kinetics(rng, 24)
    c1, c2 = capture(rng, 250, 0.15), capture(rng, 250, 0.45)
    fc = np.where(np.arange(24) < 8, 3.0, 1.0)
    X1, X2 = draw(rng, c1, k_on, k_off, k_syn), draw(rng, c2, k_on * fc, k_off, k_syn)
    res = differential(X1, X2, capture1=c1, capture2=c2, progress=False)
    t = res["tested"].to_numpy()
    for name in ("burst_frequency", "burst_size"):
        lo = res[f"{name}_log2fc_ci_low"].to_numpy()[t]
        hi = res[f"{name}_log2fc_ci_high"].to_numpy()[t]
        p = res[f"pval_{name}"].to_numpy()[t]
        np.testing.assert_array_equal((lo > 0) | (hi < 0), p < 0.05)
    assert (res.loc[t, "null_scale_burst_size"] > 0).all()


# ----------------------------------------------------------------------------- intervals

def _coverage(seed, n_genes, n_cells, prior):
    rng = np.random.default_rng(seed)
    k_on, k_off, k_syn = kinetics(rng, n_genes, prior)
    c = capture(rng, n_cells, 0.3)
    X = draw(rng, c, k_on, k_off, k_syn)
    raw = fit_raw(count_histograms(X, capture=c),
                  FitSettings(profile=("burst_frequency", "burst_size"), gof_min_expected=0.0))
    rows = kfit.FitRows(raw)
    hits = []
    for t, truth in ((0, np.log(k_on)), (1, np.log(k_syn / k_off))):
        lo, hi = rows.ci(t)
        hits.append((lo <= truth) & (truth <= hi))
    return rows.regime, np.stack(hits)


@pytest.mark.parametrize("n_cells,n_genes", [(30, 300), (100, 160), (300, 100)])
def test_interval_coverage_given_the_regime(n_cells, n_genes):
    """Genes near the bursty limit (k_on 0.2-2, k_off 2-20, burst size 10-50,
    capture around 0.3): those whose data reject the limit are reported
    `telegraph`, and before the repair their 95% intervals covered 71-92%
    (30-300 cells). Coverage given `telegraph` (and given `bimodal`, `bursty`)
    must reach 94% within three binomial standard errors; over all genes it
    must stay below 98.5% (same allowance)."""
    prior = {"k_on": (0.2, 2.0), "k_off": (2.0, 20.0), "burst_size": (10.0, 50.0)}
    regime, hits = _coverage(60 + n_cells, n_genes, n_cells, prior)
    for code in (kfit.REGIME_TELEGRAPH, kfit.REGIME_BURSTY, kfit.REGIME_BIMODAL):
        h = hits[:, regime == code].ravel()
        if h.size >= 20:
            assert h.mean() >= 0.94 - 3 * np.sqrt(0.94 * 0.06 / h.size), (code, h.mean(),
                                                                           h.size)
    h = hits[:, regime <= kfit.REGIME_POISSON].ravel()
    assert h.mean() <= 0.985 + 3 * np.sqrt(0.985 * 0.015 / h.size), h.mean()


def test_negbinom_profile_bound_matches_brute_force():
    rng = np.random.default_rng(7)
    x = rng.poisson(rng.gamma(0.6, 12.0, 400)).astype(np.int64)
    v, w = np.unique(x, return_counts=True)
    g = np.zeros(v.size, np.int64)
    cap = np.ones(1)

    def ll(la, lb):
        a, b = np.exp(la), np.exp(lb)
        return float(np.sum(w * stats.nbinom.logpmf(v, a, 1 / (1 + b))))

    fit = optimize.minimize(lambda z: -ll(*z), [0.0, 2.0], method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
    theta = np.array([fit.x[0], fit.x[1], 0.0])
    drop = stats.chi2.ppf(0.95, 1) / 2
    buf = np.zeros(11)
    for fix in (0, 1):
        for side in (-1.0, 1.0):
            end = negbinom_profile_bound(gene_bins(v, w.astype(float), g, cap), theta, -fit.fun,
                                         fix, side, drop, 100, buf)
            other = 1 - fix

            def prof(z):
                return -optimize.minimize_scalar(
                    lambda u: -ll(*((z, u) if fix == 0 else (u, z))),
                    bracket=(theta[other] - 1, theta[other] + 1)).fun
            assert -fit.fun - prof(end) == pytest.approx(drop, abs=2e-3)
            assert side * (end - theta[fix]) > 0


# ----------------------------------------------------------------------------- depth

def test_depth_difference_without_capture_warns():
    rng = np.random.default_rng(8)
    k_on, k_off, k_syn = kinetics(rng, 6)
    X1 = draw(rng, capture(rng, 80, 0.15), k_on, k_off, k_syn)
    X2 = draw(rng, capture(rng, 80, 0.45), k_on, k_off, k_syn)
    X1[:, 0] += 1     # no cell without counts
    with pytest.warns(DepthWarning, match=r"differ .*-fold.*capture="):
        differential(X1, X2, progress=False, interval="wald", calibration="chi2")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DepthWarning)
        differential(X1, X2, capture1="total", capture2="total", progress=False,
                     interval="wald", calibration="chi2")
    assert config.DEPTH_RATIO_WARN == 1.5


def test_cli_notes_a_depth_difference(tmp_path):
    adata = tg.datasets.example(seed=2, n_cells=300, n_genes=8, n_differential=0)
    b = (adata.obs["group"] == "B").to_numpy()
    X = adata.X.toarray()
    X[b] *= 3
    adata.X = X
    path = tmp_path / "deep.h5ad"
    adata.write_h5ad(path)
    run = subprocess.run([sys.executable, "-m", "telegraph", "test", str(path), "--groupby",
                          "group", "--table", str(tmp_path / "out.csv"), "--no-progress",
                          "--interval", "wald", "--calibration", "chi2"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    notes = [line for line in run.stderr.splitlines() if "note:" in line]
    assert len(notes) == 1 and "--capture" in notes[0] and "capture=" not in notes[0]
