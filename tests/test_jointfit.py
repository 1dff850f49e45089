"""Two-species fits: tg.fit(spliced, unspliced=...), tg.tl.fit(..., unspliced_layer=...),
``telegraph fit --unspliced-layer`` (in memory, from disk, on Dask).

Statistical checks use data simulated exactly (Gillespie) with known kinetics
and fixed seeds; the recovery study across regimes, with interval coverage and
the bias of the bursty-limit model, is in tests/test_joint_recovery.py.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import telegraph as tg
from telegraph import cluster, jointfit
from telegraph.cli import main as cli_main
from telegraph.histogram import joint_count_histograms
from telegraph.inputs import FitSettings

# k_on, k_off, k_syn, k_deg, k_splice (per unit time): a bursty gene, a
# balanced one with beta = gamma, and one whose degradation is slower than splicing
KIN = dict(k_on=[0.3, 1.0, 1.0], k_off=[3.0, 1.0, 2.0], k_syn=[8.0, 6.0, 20.0],
           k_deg=[1.0, 1.0, 0.5], splicing=[3.0, 1.0, 2.0])


@pytest.fixture(scope="module")
def two_layer():
    return tg.simulate_anndata(800, 3, capture=1.0, seed=3, **KIN)


@pytest.fixture(scope="module")
def fitted(two_layer):
    ad = two_layer
    return tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"],
                  genes=list(ad.var_names), n_jobs=1)


def _truth(var):
    """True values in units of k_splice."""
    ks = var["true_k_splice"].to_numpy()
    return {"k_on": var["true_k_on"].to_numpy() / ks, "k_off": var["true_k_off"].to_numpy() / ks,
            "k_syn": var["true_k_syn"].to_numpy() / ks, "k_deg": var["true_k_deg"].to_numpy() / ks,
            "burst_size": var["true_burst_size"].to_numpy()}


def test_fit_recovers_kinetics_with_intervals(two_layer, fitted):
    res = fitted
    truth = _truth(two_layer.var)
    assert list(res.index) == list(two_layer.var_names)
    assert (res["regime"].astype(str) == "telegraph").all()
    assert res["converged"].all()
    assert (res["k_splice"] == 1.0).all()
    np.testing.assert_allclose(res["burst_frequency"], res["k_on"])
    np.testing.assert_allclose(res["burst_size"], res["k_syn"] / res["k_off"])
    # k_deg / k_splice is pinned by the means: tight, and covered
    lo, hi = res["k_deg_ci_low"].to_numpy(), res["k_deg_ci_high"].to_numpy()
    assert (lo < res["k_deg"]).all() and (res["k_deg"] < hi).all()
    assert ((lo <= truth["k_deg"]) & (truth["k_deg"] <= hi)).all()
    assert (hi / lo < 1.6).all()
    assert (res["k_deg_flag"].astype(str) == "identified").all()
    # each quantity within its interval widened by a factor 1.5 on the log scale
    # (9 checks at 95%: a miss is possible but not at this width)
    for name, col in (("k_on", "burst_frequency"), ("burst_size", "burst_size"),
                      ("k_deg", "k_deg")):
        l, h, t = (np.log(res[f"{col}_ci_low"].to_numpy()), np.log(res[f"{col}_ci_high"].to_numpy()),
                   np.log(truth[name]))
        c = 0.5 * (l + h)
        assert (np.abs(t - c) <= 1.5 * (h - l) / 2).all(), (name, np.exp(l), np.exp(h), truth[name])
    # the constitutive law is far worse; goodness of fit does not reject the true model
    assert (res["loglik_telegraph"] - res["loglik_poisson"] > 20).all()
    assert (res["gof_flag"].astype(str) == "ok").all()
    assert (res["gof_pval"] > 1e-3).all()


def test_unspliced_marginal_matches_one_species_fit(two_layer, fitted):
    """The unspliced layer alone is the one-species law in units of k_splice: its
    mean agrees with the joint fit's unspliced mean (at capture 1)."""
    u = two_layer.layers["unspliced"].toarray()
    np.testing.assert_allclose(fitted["mean_expression_unspliced"], u.mean(axis=0), rtol=0.08)


def _assert_same_maximum(fitted, ad):
    """A Wald fit of ``ad`` under the current (patched) settings reaches the maximum
    of ``fitted``."""
    other = tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"],
                   genes=list(ad.var_names), n_jobs=1, interval="wald")
    np.testing.assert_allclose(fitted["loglik"], other["loglik"], rtol=0, atol=1e-5)
    for name in ("k_on", "k_off", "k_syn", "k_deg"):
        np.testing.assert_allclose(fitted[name], other[name], rtol=1e-3)


def test_one_start_ranked_by_the_unspliced_marginal_reaches_the_multistart_maximum(
        two_layer, fitted, monkeypatch):
    """The fit evaluates with the joint law only the moment start that best explains the
    unspliced counts (config.JOINT_FIT_STARTS = 1); evaluating all six and starting from
    the best joint one must reach the same maximum."""
    from telegraph import config
    assert config.JOINT_FIT_STARTS == 1
    monkeypatch.setattr(config, "JOINT_FIT_STARTS", 6)
    _assert_same_maximum(fitted, two_layer)


def test_the_start_at_the_unspliced_maximum_reaches_the_moment_starts_maximum(
        two_layer, fitted, monkeypatch):
    """The fit starts from the one-species fit of the unspliced counts alone (their
    marginal is the Poisson-Beta law in units of k_splice): that start explains the
    unspliced counts at least as well as every moment start, and fits started from the
    moment starts only reach the same maximum."""
    from telegraph import jointfit as jf
    from telegraph.stationary import logpmf_ab
    U = two_layer.layers["unspliced"].toarray().astype(np.int64)
    S = two_layer.layers["spliced"].toarray().astype(np.int64)
    for g in range(3):
        pairs, w = np.unique(np.stack([U[:, g], S[:, g]], axis=1), axis=0, return_counts=True)
        u, s, w, one = pairs[:, 0], pairs[:, 1], w.astype(float), np.ones(len(w))
        mg = jf._marginal_fit(u, w, one, jf._starts(u, s, w, one, one, "telegraph"))
        y0 = jf._marginal_start(mg, float(np.sum(w * u) / np.sum(w * s)), "telegraph")
        assert y0 is not None

        def ll_u(y):
            a, b, lam, _ = np.exp(y)
            return float(np.sum(w * logpmf_ab(u, a, b, lam)))
        assert all(ll_u(y0) >= ll_u(y) - 1e-9 for y in jf._starts(u, s, w, one, one, "telegraph"))
        # its k_deg start is the ratio of the means (k_splice E[U] = k_deg E[S])
        np.testing.assert_allclose(np.exp(y0[3]), U[:, g].mean() / S[:, g].mean())
    monkeypatch.setattr(jf, "_marginal_start", lambda *a, **k: None)
    _assert_same_maximum(fitted, two_layer)


def test_the_unspliced_marginal_fits_match_the_one_species_engine():
    """The start's fits of the unspliced counts alone (Newton with the exact
    Poisson-Beta score and information, and the negative binomial) reach the maxima
    the one-species engine (the compiled fit of telegraph.fitting) finds on the same
    histogram, with per-cell capture."""
    from telegraph import jointfit as jf
    from telegraph.fitting import fit_raw
    from telegraph.histogram import CountHistograms
    from telegraph.inputs import FitSettings
    from telegraph.kernels.fit import FitRows
    ad = tg.simulate_anndata(1500, 3, seed=11, k_on=[0.2, 1.0, 0.5], k_off=[2.0, 1.5, 20.0],
                             k_syn=[40.0, 12.0, 200.0], k_deg=[0.5, 1.0, 1.0], splicing=1.0)
    c = np.round(ad.obs["capture"].to_numpy(), 2)
    for g in range(3):
        u = ad.layers["unspliced"][:, g].toarray().ravel().astype(np.int64)
        pairs, inv = np.unique(np.stack([u.astype(float), c]), axis=1, return_inverse=True)
        w = np.bincount(inv.ravel()).astype(float)
        uu, cc = pairs[0].astype(np.int64), pairs[1]
        mg = jf._marginal_fit(uu, w, cc, jf._starts(uu, uu, w, cc, cc, "telegraph"))
        caps, grp = np.unique(cc, return_inverse=True)
        hist = CountHistograms(np.array([0, uu.size]), uu, grp.ravel(), w, caps,
                               np.array([int(w.sum())]), np.zeros(1, np.int64), None)
        one = FitRows(fit_raw(hist, FitSettings(interval="wald", gof_min_expected=0.0)))
        # the one-species engine maximises the expansion in log capture of these ~50 groups
        # (docs/maths.md, "Fitting"): its maximum differs from the exact one by that
        # expansion's error, and the exact log-likelihood at its optimum is the exact
        # maximum (the optima differ by the expansion's error, which costs second order)
        from telegraph.stationary import histogram_loglik
        assert mg.ll == pytest.approx(float(one.loglik[0]), abs=0.05)
        if np.isfinite(one.theta[0]).all():
            a1, b1, l1 = np.exp(one.theta[0])
            assert mg.ll == pytest.approx(histogram_loglik(uu, w, a1, b1, l1, capture=cc)[0],
                                          abs=1e-3)
        assert mg.ll_nb == pytest.approx(float(one.loglik_nb[0]), abs=1e-6)
        if mg.ll - mg.ll_nb > 5.0:          # a telegraph maximum well inside the box
            np.testing.assert_allclose(mg.y, one.theta[0], atol=2e-2)


def test_bursty_test_skipped_only_where_the_unspliced_counts_reject_the_limit(
        two_layer, fitted, monkeypatch):
    """Where the unspliced counts alone reject the bursty limit by more than
    JOINT_BURSTY_SCREEN nats the joint test (a costly law at the limit's burst size)
    is not run; running it anyway gives the same regime and intervals. Where they do
    not, it runs."""
    from telegraph import config
    from telegraph import jointfit as jf
    U = two_layer.layers["unspliced"].toarray().astype(np.int64)
    screened = []
    for g in range(3):
        u, w = np.unique(U[:, g], return_counts=True)
        w, one = w.astype(float), np.ones(len(w))
        screened.append(jf._marginal_rejects_bursty(
            jf._marginal_fit(u, w, one, jf._starts(u, u, w, one, one, "telegraph")), 1.92))
    assert screened == [False, False, True]       # the gene with slow degradation only
    calls = []
    original = jf._bursty_start
    monkeypatch.setattr(jf, "_bursty_start", lambda *a: calls.append(1) or original(*a))
    ad = two_layer
    kw = dict(genes=list(ad.var_names), n_jobs=1)
    tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"], interval="wald", **kw)
    assert len(calls) == 2          # the test ran for the two genes not screened
    monkeypatch.setattr(config, "JOINT_BURSTY_SCREEN", np.inf)
    full = tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"], **kw)
    assert list(full["regime"].astype(str)) == list(fitted["regime"].astype(str))
    cols = [c for c in fitted.columns if c.endswith(("_ci_low", "_ci_high"))]
    np.testing.assert_allclose(full[cols].to_numpy(float), fitted[cols].to_numpy(float),
                               rtol=1e-6)


def test_goodness_of_fit_on_the_fits_box_equals_the_a_priori_box(two_layer, fitted,
                                                                   monkeypatch):
    """The goodness of fit solves the fitted law on the box the fit's top capture level
    last solved (trimmed, at nearby parameters) instead of the a priori box of the
    marginal tail bounds: the classes and the statistic must be the same."""
    from telegraph import jointfit as jf
    original = jf._gof
    monkeypatch.setattr(jf, "_gof", lambda *a, box=None, **k: original(*a, **k))
    ad = two_layer
    apriori = tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"],
                     genes=list(ad.var_names), n_jobs=1)
    np.testing.assert_array_equal(fitted["gof_df"], apriori["gof_df"])
    np.testing.assert_allclose(fitted["gof_stat"], apriori["gof_stat"], rtol=1e-6)
    np.testing.assert_allclose(fitted["gof_pval"], apriori["gof_pval"], rtol=1e-5, atol=1e-9)


def test_a_layer_without_molecules_bounds_k_deg_on_one_side_only():
    """No spliced molecule in any cell: k_deg's maximum is at infinity (fast
    degradation) -- reported as inf with an interval open above, not as a huge
    number; no unspliced molecule: at 0 (slow degradation), open below."""
    rng = np.random.default_rng(0)
    S = rng.poisson(2.0, size=(300, 2)).astype(float)
    U = rng.poisson(1.0, size=(300, 2)).astype(float)
    S[:, 0] = 0.0
    U[:, 1] = 0.0
    res = tg.fit(S, unspliced=U, capture=1.0, n_jobs=1, progress=False)
    fast, slow = res.iloc[0], res.iloc[1]
    assert fast["k_deg"] == np.inf and fast["k_deg_ci_high"] == np.inf
    assert 0 < fast["k_deg_ci_low"] < np.inf
    assert fast["k_deg_flag"] == "fast_degradation" and fast["mean_expression"] == 0.0
    assert slow["k_deg"] == 0.0 and slow["k_deg_ci_low"] == 0.0
    assert 0 < slow["k_deg_ci_high"] < np.inf
    assert slow["k_deg_flag"] == "slow_degradation"
    assert "k_deg" not in fast["identified"].split(",") + slow["identified"].split(",")


def test_bursty_limit_is_flagged():
    """A gene with k_off >> every other rate: the data cannot bound k_off."""
    ad = tg.simulate_anndata(500, 1, k_on=[0.5], k_off=[400.0], k_syn=[2000.0], k_deg=[1.0],
                             splicing=[2.0], capture=1.0, seed=4)
    res = tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"], n_jobs=1,
                 interval="wald")
    assert res["regime"].iloc[0] == "bursty"
    assert np.isnan(res["k_off"].iloc[0]) and np.isnan(res["k_syn"].iloc[0])
    np.testing.assert_allclose(res["burst_size"].iloc[0], 5.0, rtol=0.35)
    np.testing.assert_allclose(res["k_deg"].iloc[0], 0.5, rtol=0.15)


def test_constitutive_gene_is_the_poisson_regime_with_open_intervals():
    """A promoter nearly always on (k_off << k_on): the counts are two Poisson
    laws, a limit of the model both ways, so burst frequency and burst size are
    bounded on neither side (as for one species), while k_deg, pinned by the
    ratio of the means, keeps a finite interval around the truth."""
    ad = tg.simulate_anndata(600, 1, k_on=[20.0], k_off=[0.05], k_syn=[3.0], k_deg=[1.0],
                             splicing=[2.0], capture=1.0, seed=5)
    res = tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"], n_jobs=1)
    row = res.iloc[0]
    assert row["regime"] == "poisson"
    for name in ("burst_frequency", "burst_size", "k_off", "k_syn"):
        assert row[f"{name}_ci_low"] == 0.0 and row[f"{name}_ci_high"] == np.inf, name
    # k_deg in units of k_splice: 1 / 2
    assert 0.0 < row["k_deg_ci_low"] < 0.5 < row["k_deg_ci_high"] < np.inf


def test_both_limits_in_the_confidence_set_open_both_sets_of_sides():
    """A weakly expressed gene whose likelihood is within the drop of both the bursty
    limit (the nearer: the regime) and the slow-switching limit: the intervals are
    open on the sides of both (k_off and k_syn above; burst frequency below and burst
    size above), not only on the nearer limit's."""
    from telegraph import jointfit
    from telegraph.histogram import joint_count_histograms
    from telegraph.inputs import FitSettings

    ad = tg.simulate_anndata(800, 1, k_on=[0.46], k_off=[0.46], k_syn=[1.35], k_deg=[0.44],
                             splicing=[1.0], capture=0.5, seed=1)
    jh = joint_count_histograms(ad.layers["unspliced"], ad.layers["spliced"], capture=0.5)
    row = jointfit.fit_gene(*jointfit._gene_bins(jh, 0, 1.0), FitSettings(), "telegraph")
    drop = 1.920729410347062
    assert row["regime"] == "bursty"
    assert row["loglik"] - row["loglik_bimodal"] < drop      # the other limit is in it too
    ci = row["ci"]
    assert ci["k_off"][1] == np.inf and ci["k_syn"][1] == np.inf       # bursty
    assert ci["burst_frequency"][0] == -np.inf and ci["burst_size"][1] == np.inf   # bimodal
    assert ci["k_off"][0] == -np.inf
    assert np.isfinite(ci["burst_frequency"][1]) and np.isfinite(ci["burst_size"][0])


def test_an_estimate_on_the_lattice_budget_wall_is_refitted_with_more_room(monkeypatch):
    """A profile end at the estimate itself means no point beyond it could be
    evaluated (its law needed a lattice over the gene's budget): the maximum sat
    on that wall. The gene is fitted again, once, with JOINT_WALL_BUDGET times
    the budget (seen on a simulate_anndata gene with k_off 19.5: burst frequency
    0.0975 with upper end 0.0975 and k_deg with upper end at its estimate became,
    refitted, 0.099 in [0.086, 0.114] and k_deg in [0.81, 1.05] around the truth 1)."""
    from telegraph import config, jointfit
    from telegraph.histogram import joint_count_histograms
    from telegraph.inputs import FitSettings

    ad = tg.simulate_anndata(400, 1, k_on=[0.5], k_off=[2.0], k_syn=[20.0], k_deg=[1.0],
                             splicing=[1.0], capture=1.0, seed=6)
    jh = joint_count_histograms(ad.layers["unspliced"], ad.layers["spliced"], capture=1.0)
    bins = jointfit._gene_bins(jh, 0, 1.0)
    budgets = []
    real_gene = jointfit._Gene

    def spy(*args, **kwargs):
        g = real_gene(*args, **kwargs)
        budgets.append(g)         # its max_points is read after fit_gene has set it
        return g

    monkeypatch.setattr(jointfit, "_Gene", spy)
    real_side = jointfit._profile_side

    def side_at_estimate(gene, yhat, llhat, lo, hi, A, k, sign, *rest):
        if len(budgets) == 1 and sign > 0 and k == 0:     # first fit: an end on the wall
            return float((np.linalg.inv(A) @ yhat)[k])
        return real_side(gene, yhat, llhat, lo, hi, A, k, sign, *rest)

    monkeypatch.setattr(jointfit, "_profile_side", side_at_estimate)
    row = jointfit.fit_gene(*bins, FitSettings(), "telegraph")
    assert len(budgets) == 2
    assert budgets[1].max_points == int(budgets[0].max_points * config.JOINT_WALL_BUDGET)
    lo_bf, hi_bf = row["ci"]["burst_frequency"]
    zk = row["y"][0]
    assert lo_bf < zk - 0.01 and hi_bf > zk + 0.01       # the refit's own, real ends
    # without the degenerate end there is no refit
    budgets.clear()
    monkeypatch.setattr(jointfit, "_profile_side", real_side)
    jointfit.fit_gene(*bins, FitSettings(), "telegraph")
    assert len(budgets) == 1


def test_a_maximum_beyond_the_lattice_budget_is_reached_by_raising_it(monkeypatch):
    """A point fit whose Newton steps keep being cut short by the lattice budget
    stops creeping along it (gains below JOINT_WALL_TOL), raises the budget by
    JOINT_WALL_BUDGET and goes on from there: the maximum found with a generous
    budget, in a few dozen evaluations. (Before, with this budget, it crept for
    300 evaluations and stopped 8 nats short of the maximum.) The budget is made
    small here so that a quick gene hits it; the fit starts from the moment starts and
    asks for the edge margin of 8 nats this gene was found with (from the unspliced
    marginal's maximum, or with the margin of 6, it reaches the maximum within this
    budget, 7-8 evaluations, 2-3 of them refused, which leaves the raise untested)."""
    from telegraph import config
    from telegraph.histogram import joint_count_histograms

    ad = tg.simulate_anndata(400, 1, k_on=[0.1], k_off=[20.0], k_syn=[300.0], k_deg=[3.0],
                             splicing=[1.0], capture=1.0, seed=5)
    jh = joint_count_histograms(ad.layers["unspliced"], ad.layers["spliced"], capture=1.0)
    bins = jointfit._gene_bins(jh, 0, 1.0)
    settings = FitSettings(interval="wald")
    free = jointfit.fit_gene(*bins, settings, "telegraph")      # the default budget: room
    calls = []
    real_call = jointfit._Gene.__call__

    def counted(self, y, want=2):
        calls.append(self.max_points)
        return real_call(self, y, want)

    monkeypatch.setattr(jointfit._Gene, "__call__", counted)
    monkeypatch.setattr(jointfit, "_marginal_start", lambda *a, **k: None)
    monkeypatch.setattr(config, "JOINT_FIT_EDGE_MARGIN", 8.0)
    monkeypatch.setattr(config, "JOINT_FIT_MIN_POINTS", 2000)
    monkeypatch.setattr(config, "JOINT_FIT_BOX_FACTOR", 1)
    tight = jointfit.fit_gene(*bins, settings, "telegraph")
    assert calls[0] == 2000 and max(calls) == 2000 * config.JOINT_WALL_BUDGET
    assert len(calls) < 50
    assert tight["loglik"] == pytest.approx(free["loglik"], abs=1e-3)
    np.testing.assert_allclose(tight["y"], free["y"], atol=2e-3)


def test_an_a_priori_box_over_the_budget_starts_from_the_last_solved_box():
    """The a priori lattice box comes from bounds on the marginal tails, which
    overshoot (the spliced lower tail by far where k_deg << k_splice): over the
    gene's budget, the evaluation starts from the last solved box instead and is
    grown where the law needs it -- the same log-likelihood as with room. (A gene
    with mean unspliced 50 and spliced 500 crawled for over 16 minutes against a
    priori boxes over JOINT_MAX_POINTS; it now fits in ~70 s.)"""
    from telegraph import config
    from telegraph.joint import lattice_box

    ad = tg.simulate_anndata(300, 1, k_on=[1.0], k_off=[1.0], k_syn=[20.0], k_deg=[0.1],
                             splicing=[1.0], capture=1.0, seed=2)
    u = ad.layers["unspliced"].toarray()[:, 0].astype(int)
    s = ad.layers["spliced"].toarray()[:, 0].astype(int)
    w, c = np.ones(u.size), np.ones(u.size)
    y1 = np.log([1.0, 1.0, 20.0, 0.1])
    y2 = y1 + np.array([0.4, 0.4, 0.0, 0.0])     # beyond the distance a box is reused at
    budget = 13000
    prior = lattice_box(*np.exp(y2), u, s, tail=config.JOINT_FIT_TAIL)
    assert prior[1] * prior[3] > budget
    gene = jointfit._Gene(u, s, w, c, c)
    gene.max_points = 10 ** 7
    gene(y1)
    gene.max_points = budget
    ll, grad, info = gene(y2)
    roomy = jointfit._Gene(u, s, w, c, c)
    roomy.max_points = 10 ** 7
    ll_r, grad_r, info_r = roomy(y2)
    # the same law to the accuracy the fit's edge margin asks for (an edge d nats below
    # the least probable count moves its log P by ~exp(-1.8 d); a few counts are that close)
    tol = 10 * math.exp(-1.8 * config.JOINT_FIT_EDGE_MARGIN)
    assert ll == pytest.approx(ll_r, abs=tol)
    np.testing.assert_allclose(grad, grad_r, rtol=1e-5, atol=tol)
    box = gene.levels[0]["box"]
    assert box[1] * box[3] <= budget


@pytest.fixture(scope="module")
def too_large():
    """Gene 0: thousands of unspliced molecules (burst size ~1,800): its law needs a
    lattice over JOINT_MAX_POINTS at every start; gene 1 an ordinary gene."""
    ad = tg.simulate_anndata(300, 2, k_on=[0.0129, 0.5], k_off=[7.93, 2.0],
                             k_syn=[1.43e4, 20.0], k_deg=[8.27, 1.0], splicing=[1.0, 1.0],
                             capture=1.0, seed=3)
    assert ad.layers["unspliced"][:, 0].max() > 1000
    return ad


def test_counts_too_large_for_the_lattice_are_fitted_on_the_unspliced_marginal(
        too_large, tmp_path, capsys):
    """Such a gene is fitted on its unspliced counts alone (the one-species law in
    units of k_splice: the same estimates and intervals as a one-species fit of
    that layer), k_deg from the ratio of the means, fit_method saying so and a
    warning naming the gene (it was regime 'telegraph' with every estimate NaN, then
    regime too_large with nothing estimated)."""
    ad = too_large
    U, S = ad.layers["unspliced"].toarray(), ad.layers["spliced"].toarray()
    with pytest.warns(jointfit.TooLargeWarning, match="gene0.*unspliced counts alone"):
        t = tg.fit(S, unspliced=U, capture=1.0, progress=False)
    big, ok = t.iloc[0], t.iloc[1]
    assert big["fit_method"] == "unspliced_marginal" and ok["fit_method"] == "joint"
    one = tg.fit(U[:, :1], capture=1.0, progress=False).iloc[0]
    assert big["regime"] == one["regime"]
    for c in ("burst_frequency", "burst_size", "burst_frequency_ci_low",
              "burst_frequency_ci_high", "burst_size_ci_low", "burst_size_ci_high",
              "gof_pval"):
        assert big[c] == pytest.approx(one[c], rel=1e-9, nan_ok=True), c
    assert big["mean_expression_unspliced"] == pytest.approx(one["mean_expression"], rel=1e-9)
    # k_deg / k_splice = E[U] / E[S] at stationarity (truth 8.27)
    assert big["k_deg"] == pytest.approx(U[:, 0].sum() / S[:, 0].sum(), rel=1e-12)
    assert big["k_deg_ci_low"] < 8.27 < big["k_deg_ci_high"]
    assert big["k_deg_flag"] == "identified" and "k_deg" in big["identified"]
    assert np.isnan(big["loglik"]) and np.isnan(big["loglik_telegraph"])
    assert big["burst_frequency_ci_low"] < 0.0129 < big["burst_frequency_ci_high"]
    assert big["burst_size_ci_low"] < 1.43e4 / 7.93 < big["burst_size_ci_high"]
    # the CLI says so in one line and fits the rest
    ad.write_h5ad(tmp_path / "big.h5ad")
    assert cli_main(["fit", str(tmp_path / "big.h5ad"), "--layer", "spliced",
                     "--unspliced-layer", "unspliced", "--table", str(tmp_path / "t.csv"),
                     "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "1 gene(s) too large for the exact two-species law (gene0000)" in err
    assert "1 of them on their unspliced counts alone" in err
    table = pd.read_csv(tmp_path / "t.csv")
    assert table["fit_method"].tolist() == ["unspliced_marginal", "joint"]


def test_too_large_genes_are_not_tested_for_differential_bursting(monkeypatch):
    """A gene fitted on its unspliced counts alone has no joint likelihood to test
    with: flag too_large, not tested; the ordinary gene is tested. (A small
    JOINT_MAX_POINTS makes gene 0, ~100 molecules per cell, too large.)"""
    from telegraph import config
    monkeypatch.setattr(config, "JOINT_MAX_POINTS", 3000)
    ad = tg.simulate_anndata(400, 2, k_on=[0.5, 0.5], k_off=[2.0, 2.0], k_syn=[400.0, 20.0],
                             k_deg=[1.0, 1.0], splicing=2.0, capture=1.0,
                             groups={"A": {}, "B": {}}, seed=5)
    res = tg.tl.differential_bursting(ad, "group", layer="spliced",
                                      unspliced_layer="unspliced", n_jobs=1)
    assert res["flag"].astype(str).tolist()[0] == "too_large"
    assert res["tested"].tolist() == [False, True]
    assert np.isnan(res["pval_burst_frequency"].iloc[0])
    assert np.isfinite(res["pval_burst_frequency"].iloc[1])


def test_too_large_genes_of_the_bursty_limit_model_are_not_fitted(too_large):
    """The comparison model (model="bursty") has no marginal fallback: regime
    too_large, nothing estimated, a warning naming the gene and the fix."""
    ad = too_large
    with pytest.warns(jointfit.TooLargeWarning, match="not fitted.*gene0.*JOINT_MAX_POINTS"):
        t = tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"], capture=1.0,
                   model="bursty", progress=False)
    big = t.iloc[0]
    assert big["regime"] == "too_large" and big["identified"] == ""
    assert big["fit_method"] == "not_fitted"
    assert np.isnan(big["burst_frequency"]) and not big["converged"]
    assert big["gof_flag"] == "not_fitted" and big["k_deg_flag"] == "not_fitted"


def test_ratio_of_means_interval_covers_at_its_level():
    """The delta-method interval of k_deg = E[U] / E[S] (per unit capture) covers
    the truth at its level whatever the law, here overdispersed, correlated counts
    under per-cell capture (a burst process shared by both species): 600 data sets of
    400 cells; and its standard error matches the spread of the estimate."""
    rng = np.random.default_rng(11)
    gamma, n, reps = 0.4, 400, 600
    hits, logs, ses = 0, [], []
    for _ in range(reps):
        c = rng.uniform(0.2, 1.0, n)
        lam = rng.gamma(0.3, 30.0, n)                    # shared latent activity
        u = rng.poisson(c * lam)
        s = rng.poisson(c * lam / gamma * rng.gamma(4.0, 0.25, n))   # E[S] = E[U] / gamma
        k, lo, hi, se = jointfit.ratio_of_means(u, s, np.ones(n), c, c, ci=0.95)
        hits += lo < gamma < hi
        logs.append(np.log(k))
        ses.append(se)
    cover = hits / reps
    assert 0.95 - 3 * 0.0089 < cover < 0.95 + 3 * 0.0089, cover
    assert np.median(ses) == pytest.approx(np.std(logs), rel=0.12)
    # bins with weights give the cells' answer
    u, s, c = np.array([3, 3, 0, 7]), np.array([10, 10, 2, 5]), np.array([0.5, 0.5, 1.0, 0.8])
    whole = jointfit.ratio_of_means(u, s, np.ones(4), c, c)
    binned = jointfit.ratio_of_means(u[1:], s[1:], np.array([2.0, 1.0, 1.0]), c[1:], c[1:])
    np.testing.assert_allclose(whole, binned, rtol=1e-12)
    assert np.isnan(jointfit.ratio_of_means(np.zeros(3, int), s[:3], np.ones(3), c[:3],
                                            c[:3])[0])


def test_bad_input_is_refused(two_layer):
    ad = two_layer
    with pytest.raises(ValueError, match="k_deg cannot be given"):
        tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"], k_deg=1.0)
    with pytest.raises(ValueError, match="same cells and genes"):
        tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"][:, :2])
    with pytest.raises(ValueError, match="model must be one of"):
        tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"], model="constitutive")


def test_capture_and_cli_contract(tmp_path):
    """`telegraph fit FILE.h5ad --layer spliced --unspliced-layer unspliced` with
    per-cell capture: the columns the checks read, in memory and from disk."""
    ad = tg.simulate_anndata(400, 1, k_on=[0.5], k_off=[2.0], k_syn=[40.0], k_deg=[1.0],
                             splicing=[2.0], seed=5)
    path = tmp_path / "two.h5ad"
    ad.write_h5ad(path)
    out = tmp_path / "out.csv"
    rc = cli_main(["fit", str(path), "--layer", "spliced", "--unspliced-layer", "unspliced",
                   "--capture", "capture", "--table", str(out), "--interval", "wald",
                   "--no-progress"])
    assert rc == 0
    t = pd.read_csv(out).set_index("gene")
    for col in ("k_on", "k_off", "k_syn", "k_deg", "burst_frequency", "burst_size",
                "k_deg_ci_low", "k_deg_ci_high", "burst_size_ci_low", "burst_frequency_ci_high",
                "regime", "loglik", "gof_pval", "k_deg_flag"):
        assert col in t.columns, col
    truth = _truth(ad.var)
    ok = (t["k_deg_ci_low"] <= truth["k_deg"]) & (truth["k_deg"] <= t["k_deg_ci_high"])
    assert ok.all()
    # from disk, in slices: the same histograms, the same fit
    out2 = tmp_path / "out2.csv"
    rc = cli_main(["fit", str(path), "--layer", "spliced", "--unspliced-layer", "unspliced",
                   "--capture", "capture", "--table", str(out2), "--interval", "wald",
                   "--chunk-size", "170", "--no-progress"])
    assert rc == 0
    t2 = pd.read_csv(out2).set_index("gene")
    np.testing.assert_allclose(t2["k_deg"], t["k_deg"], rtol=1e-6)
    np.testing.assert_allclose(t2["burst_size"], t["burst_size"], rtol=1e-6)
    # --k-deg is refused with two species
    assert cli_main(["fit", str(path), "--layer", "spliced", "--unspliced-layer", "unspliced",
                     "--k-deg", "1", "--table", str(tmp_path / "x.csv")]) == 2


def test_tl_fit_writes_var_and_get_reads_it(two_layer, fitted):
    ad = two_layer.copy()
    genes = list(ad.var_names[:1])
    tg.tl.fit(ad, layer="spliced", unspliced_layer="unspliced", n_jobs=1, interval="wald",
              genes=genes)
    assert ad.uns["telegraph"]["unspliced_layer"] == "unspliced"
    assert ad.uns["telegraph"]["species"] == "two"
    kin = tg.get.kinetics_df(ad, genes=genes)
    # the same maximum as the profile fit (only the intervals differ)
    np.testing.assert_allclose(kin["k_deg"], fitted["k_deg"].iloc[:1], rtol=1e-5)
    np.testing.assert_allclose(kin["k_on"], fitted["k_on"].iloc[:1], rtol=1e-5)
    assert (tg.get.kinetics_df(ad)["regime"].iloc[1:] == "not_fitted").all()
    assert "k_deg_ci_high" in kin.columns


def test_histograms_on_dask_give_the_same_fit(two_layer):
    ad = two_layer
    jh = joint_count_histograms(ad.layers["unspliced"][:300, :2], ad.layers["spliced"][:300, :2])
    st = FitSettings(interval="wald", gof_min_expected=0.0)
    local = jointfit.fit_joint_histograms(jh, settings=st, n_jobs=1)
    with cluster.local_client(2, processes=False) as client:
        remote = jointfit.fit_joint_histograms(jh, settings=st, client=client)
    np.testing.assert_allclose(remote["k_deg"], local["k_deg"], rtol=1e-9)
    np.testing.assert_allclose(remote["k_on"], local["k_on"], rtol=1e-9)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_workers_read_both_layers_from_the_file(two_layer, tmp_path, fmt):
    """fit_file(..., unspliced_layer=, client=): the tasks carry a file
    reference and cell ranges (CSR) or gene ranges (CSC), never counts; the
    result equals the fit in this process."""
    import scipy.sparse as sp
    ad = two_layer[:200].copy()
    ad.obs["cap"] = np.tile([0.4, 0.6, 0.8, 1.0], ad.n_obs // 4)
    if fmt == "csc":
        for key in ("spliced", "unspliced"):
            ad.layers[key] = sp.csc_matrix(ad.layers[key])
    path = tmp_path / f"two_{fmt}.h5ad"
    ad.write_h5ad(path)
    kw = dict(layer="spliced", unspliced_layer="unspliced", capture="cap", chunk_size=100,
              interval="wald", progress=False, genes=list(ad.var_names[:2]))
    local = tg.fit_file(path, **kw)
    calls = []
    with cluster.local_client(2, processes=False) as client:
        submit = client.submit

        def recording(func, *args, **kwargs):
            calls.append((func.__name__, args))
            return submit(func, *args, **kwargs)

        client.submit = recording
        remote = tg.fit_file(path, client=client, **kw)
    reads = [n for n, _ in calls if n in ("_task_joint_cells", "_task_joint_genes")]
    # 200 cells in slices of 100 (CSR); blocks of genes (CSC)
    assert reads == (["_task_joint_cells"] * 2 if fmt == "csr" else
                     ["_task_joint_genes"] * len(reads)) and reads
    for name, args in calls:
        for a in args:
            assert not sp.issparse(a), name
            if isinstance(a, np.ndarray):
                assert a.size <= max(100, ad.n_vars + 1) or fmt == "csc", (name, a.size)
    pd.testing.assert_frame_equal(remote, local)


def test_differential_bursting_two_species():
    """k_on tripled in group B for gene 1 only: its burst frequency test rejects,
    with the fold change in its interval; the unchanged gene is not rejected."""
    ad = tg.simulate_anndata(700, 2, k_on=[0.5, 0.5], k_off=[2.0, 2.0], k_syn=[20.0, 20.0],
                             k_deg=[1.0, 1.0], splicing=2.0, capture=1.0,
                             groups={"A": {}, "B": {"k_on": 3.0, "genes": [1]}}, seed=11)
    res = tg.tl.differential_bursting(ad, "group", layer="spliced",
                                      unspliced_layer="unspliced", n_jobs=1)
    assert res["tested"].all()
    assert res["pval_burst_frequency"].iloc[1] < 1e-6
    lo, hi = res["burst_frequency_log2fc_ci_low"].iloc[1], res["burst_frequency_log2fc_ci_high"].iloc[1]
    assert lo < np.log2(3.0) < hi
    assert res["pval_burst_frequency"].iloc[0] > 1e-3
    assert (res["pval_k_deg"] > 1e-3).all()
    assert "k_deg_1" in res.columns and "padj_k_deg" in res.columns
    assert ad.uns["telegraph_differential"]["params"]["unspliced_layer"] == "unspliced"


def test_distribution_plot_two_species(two_layer):
    import matplotlib
    matplotlib.use("Agg")
    ad = two_layer[:, :1].copy()
    tg.tl.fit(ad, layer="spliced", unspliced_layer="unspliced", n_jobs=1, interval="wald")
    axes = tg.pl.distribution(ad, ad.var_names[0], show=False)
    assert len(axes) == 3
    assert axes[0].get_xlabel() == "unspliced count"
    # the fitted marginals are probability laws over the counts shown
    drawn = axes[2].lines[0].get_ydata()
    assert 0.9 < drawn.sum() <= 1.0 + 1e-9
    u, s = np.meshgrid(np.arange(30), np.arange(60), indexing="ij")
    from telegraph.pl._distribution import fitted_joint_pmf
    row = tg.get.kinetics_df(ad).iloc[0].to_dict()
    p = fitted_joint_pmf(u, s, row, None)
    assert abs(p.sum() - 1.0) < 1e-3


def test_slow_switching_limit_is_the_bimodal_regime():
    """k_on + k_off = 5e-4 k_splice: cells stay off or on for thousands of
    lifetimes, so only the on-state law, the fraction on and k_deg are
    identified: regime "bimodal", burst frequency unbounded below, burst size
    above; k_syn, fraction on and k_deg / k_splice recovered. A gene switching
    fast stays "telegraph"; the pooled Pearson classes give both a test."""
    ad = tg.simulate_anndata(300, 2, k_on=[2e-4, 1.0], k_off=[3e-4, 2.0], k_syn=[20.0, 20.0],
                             k_deg=[1.0, 1.0], splicing=1.0, capture=1.0, seed=4)
    res = tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"], n_jobs=1,
                 interval="wald", progress=False)
    assert list(res["regime"].astype(str)) == ["bimodal", "telegraph"]
    bm = res.iloc[0]
    assert bm["identified"] == "k_syn,k_deg,fraction_on,mean_expression"
    assert np.isnan(bm["k_on"]) and np.isnan(bm["burst_size"])
    assert bm["burst_frequency_ci_low"] == 0 and bm["k_off_ci_low"] == 0
    assert bm["burst_size_ci_high"] == np.inf
    assert bm["burst_frequency_ci_high"] >= 2e-4
    np.testing.assert_allclose(bm["k_syn"], 20.0, rtol=0.1)
    np.testing.assert_allclose(bm["k_deg"], 1.0, rtol=0.1)
    assert bm["k_deg_ci_low"] <= 1.0 <= bm["k_deg_ci_high"]
    assert 0.25 < bm["fraction_on"] < 0.55          # 0.4, binomial SE 0.03 at 300 cells
    assert (res["gof_flag"].astype(str) == "ok").all() and (res["gof_pval"] > 1e-3).all()


def test_bimodal_limit_maximum():
    """The slow-switching limit's EM maximum: no perturbation of (f, k_syn,
    k_deg) raises its log-likelihood, computed here directly."""
    from scipy import stats
    rng = np.random.default_rng(0)
    n = 400
    on = rng.random(n) < 0.3
    c = rng.uniform(0.3, 1.0, n)
    u = np.where(on, rng.poisson(c * 6.0), 0)
    s = np.where(on, rng.poisson(c * 6.0 / 0.5), 0)
    w = np.ones(n)
    ll, f, lam, gam = jointfit._bimodal_loglik(u, s, w, c, c)

    def direct(f, lam, gam):
        p = f * stats.poisson.pmf(u, c * lam) * stats.poisson.pmf(s, c * lam / gam)
        return float(np.sum(np.log(p + (1 - f) * ((u == 0) & (s == 0)))))

    np.testing.assert_allclose(direct(f, lam, gam), ll, rtol=1e-10)
    for d in ([1.01, 1, 1], [0.99, 1, 1], [1, 1.01, 1], [1, 0.99, 1], [1, 1, 1.01], [1, 1, 0.99]):
        assert direct(f * d[0], lam * d[1], gam * d[2]) < ll
    assert abs(gam - 0.5) < 0.1 and abs(f - 0.3) < 0.07
