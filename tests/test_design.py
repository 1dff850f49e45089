"""Experiment design (telegraph.design): the expected information against
independent references (the truncated master equation, Louis' identity),
its truncation bound, its design derivative against finite differences, the
score-function gradient against the exact one, and the predictions against
the real fitter and the real differential test on simulated experiments
(fixed seeds; tolerances from the number of replicates).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

import telegraph as tg  # noqa: E402
from reference import cme_logpmf, thin  # noqa: E402
from telegraph import design as td  # noqa: E402
from telegraph.differential import differential  # noqa: E402
from telegraph.labelled import labelled_fisher_information  # noqa: E402
from telegraph.stationary import histogram_loglik  # noqa: E402


def draws(seed, n_genes, n_cells, k_on, k_off, k_syn, capture):
    """Exact stationary counts, cells x genes, every gene with the same kinetics."""
    rng = np.random.default_rng(seed)
    p = rng.beta(k_on, k_off, size=(n_cells, n_genes))
    return rng.poisson(np.asarray(capture, float).reshape(-1, 1) * k_syn * p).astype(float)


# ----------------------------------------------------------------------------- information

def test_information_matches_the_master_equation():
    """Scores by finite differences of the truncated CME (thinned by capture),
    summed over counts: a route that shares nothing with the Poisson-Beta kernel."""
    a, b, lam, s = 0.7, 1.6, 30.0, 0.4
    M = 260
    h = 1e-5

    def logp(theta):
        lp, _ = cme_logpmf(*np.exp(theta), M=M)
        return thin(lp, s)

    theta = np.log([a, b, lam])
    P = np.exp(logp(theta))
    S = np.empty((M + 1, 3))
    for i in range(3):
        e = np.zeros(3)
        e[i] = h
        S[:, i] = (logp(theta + e) - logp(theta - e)) / (2 * h)
    keep = P > 1e-300
    ref = np.einsum("n,ni,nj->ij", P[keep], S[keep], S[keep])
    got = td.fisher_information(a, b, lam, capture=s)
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-9)


def test_expected_outer_product_equals_expected_louis_information():
    """E[S S^T] = E[-Hessian]: the second from Louis' identity over the same
    count distribution (telegraph.stationary.histogram_loglik with weights P(n))."""
    for a, b, lam, s in [(0.3, 4.0, 80.0, 0.25), (2.0, 0.8, 15.0, 1.0)]:
        x = s * lam
        n = np.arange(int(x + 40 * math.sqrt(x) + 100))
        P = tg.pmf(n, a, b, lam, capture=s)
        _, _, H = histogram_loglik(n, P, a, b, lam, s, info=True)
        D = np.diag([a, b, lam])
        _, g, _ = histogram_loglik(n, P, a, b, lam, s, info=True)
        H_log = D @ H @ D - np.diag(D @ g)        # information in log coordinates
        np.testing.assert_allclose(td.fisher_information(a, b, lam, capture=s), H_log,
                                   rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("a, b, lam, s", [
    (1e-3, 1e-3, 50.0, 1.0), (1e3, 1e3, 100.0, 0.5), (0.01, 100.0, 1e3, 0.3),
    (5.0, 0.05, 2000.0, 0.5), (0.5, 2.0, 1e-3, 1.0), (0.3, 3.0, 60.0, 0.05)])
def test_truncation_bound_holds_and_meets_the_tolerance(a, b, lam, s):
    loose, bound = td.fisher_information(a, b, lam, capture=s, tol=1e-4, return_bound=True)
    tight = td.fisher_information(a, b, lam, capture=s, tol=1e-15)
    assert bound <= 1e-4
    d = np.sqrt(np.diag(tight))
    # the stated bound: |I_ij - I_ij(truncated)| <= bound sqrt(I_ii I_jj)
    assert np.all(np.abs(tight - loose) <= bound * np.outer(d, d) * (1 + 1e-9) + 1e-15)
    assert np.all(np.linalg.eigvalsh(tight) > -1e-12 * d.max() ** 2)


def test_parametrisations_are_the_chain_rule():
    k_on, k_off, k_syn, k_deg, s = 0.4, 3.0, 45.0, 2.0, 0.3
    # rates: directly from tg.score (its own chain rule), summed over counts
    x = s * k_syn / k_deg
    n = np.arange(int(x + 40 * math.sqrt(x) + 100))
    P = tg.pmf(n, k_on, k_off, k_syn, k_deg, capture=s)
    S = tg.score(n, k_on, k_off, k_syn, k_deg, capture=s)[:, :3]
    ref = np.einsum("n,ni,nj->ij", P, S, S)
    rates = td.fisher_information(k_on, k_off, k_syn, k_deg, capture=s, parametrisation="rates")
    np.testing.assert_allclose(rates, ref, rtol=1e-8)
    # burst: (k_on, beta, k_off) -> (k_on, k_off, k_syn = beta k_off)
    beta = k_syn / k_off
    J = np.array([[1, 0, 0], [0, 0, 1], [0, k_off, beta]], float)
    burst = td.fisher_information(k_on, k_off, k_syn, k_deg, capture=s, parametrisation="burst")
    np.testing.assert_allclose(burst, J.T @ rates @ J, rtol=1e-10)
    lb = td.fisher_information(k_on, k_off, k_syn, k_deg, capture=s,
                               parametrisation="log_burst")
    Dv = np.diag([k_on, beta, k_off])
    np.testing.assert_allclose(lb, Dv @ burst @ Dv, rtol=1e-10)
    # k_deg only sets the unit: the log-rate information does not change with it
    np.testing.assert_allclose(td.fisher_information(k_on, k_off, k_syn, k_deg, capture=s),
                               td.fisher_information(k_on / k_deg, k_off / k_deg,
                                                     k_syn / k_deg, capture=s), rtol=1e-12)


def test_capture_distribution_forms_agree_and_average():
    kin = (0.8, 2.5, 40.0)
    vals, w = np.array([0.1, 0.3, 0.6]), np.array([0.2, 0.5, 0.3])
    parts = np.array([td.fisher_information(*kin, capture=v) for v in vals])
    avg = np.einsum("g,gij->ij", w, parts)
    np.testing.assert_allclose(td.fisher_information(*kin, capture=(vals, w)), avg, rtol=1e-12)
    np.testing.assert_allclose(td.fisher_information(*kin, capture={"values": vals,
                                                                   "weights": 10 * w}),
                               avg, rtol=1e-12)
    per_cell = np.repeat(vals, (w * 10).astype(int))
    np.testing.assert_allclose(td.fisher_information(*kin, capture=per_cell), avg, rtol=1e-12)


def test_broadcasting_and_invalid_parameters():
    I = td.fisher_information([[0.5], [1.0]], [2.0, 3.0, 4.0], 20.0)
    assert I.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(I[1, 2], td.fisher_information(1.0, 4.0, 20.0), rtol=1e-12)
    bad = td.fisher_information([0.5, -1.0, np.nan], 2.0, 20.0)
    assert np.isfinite(bad[0]).all() and np.isnan(bad[1:]).all()
    prec = td.expected_precision([0.5, -1.0], 2.0, 20.0, n_cells=[100, 200], limits=False,
                                 progress=False)
    assert prec["asymptotics"].tolist()[1] == "invalid"
    assert np.isnan(prec["burst_frequency_log_se"].iloc[1])
    n = td.cells_needed([0.5, -1.0], 2.0, 20.0, effect=1.5)
    assert np.isfinite(n[0]) and np.isnan(n[1])


@pytest.mark.parametrize("kwargs, message", [
    ({"effect": 1.0}, "no change"),
    ({"effect": -2.0}, "fold change"),
    ({"effect": 1.5, "quantity": "burst"}, "quantity must be"),
    ({"effect": 1.5, "alpha": 5}, "did you mean 0.05"),
    ({"effect": 1.5, "capture": 1.5}, r"\(0, 1\]"),
    ({"effect": 1.5, "model": "three_species"}, "model must be one of"),
        ({"effect": 1.5, "model": "labelled"}, "needs t_label"),
    ({"effect": 1.5, "via": "k_on"}, "via must be"),
])
def test_bad_arguments_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        td.cells_needed(0.5, 2.0, 20.0, **kwargs)


def test_bad_parametrisation_and_capture_forms():
    with pytest.raises(ValueError, match="parametrisation must be"):
        td.fisher_information(0.5, 2.0, 20.0, parametrisation="natural")
    with pytest.raises(ValueError, match="same length"):
        td.fisher_information(0.5, 2.0, 20.0, capture=([0.1, 0.2], [1.0]))
    with pytest.raises(ValueError, match="weights"):
        td.fisher_information(0.5, 2.0, 20.0, capture=([0.1, 0.2], [0.0, 0.0]))


# ----------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("criterion", td.CRITERIA)
def test_exact_design_gradient_matches_finite_differences(criterion):
    rng = np.random.default_rng(4)
    k = tg.study.draw_prior_kinetics(rng, 6)
    kin = (k["k_on"], k["k_off"], k["burst_size"] * k["k_off"])
    spread = (np.array([0.5, 1.0, 1.6]), np.array([0.3, 0.4, 0.3]))
    h = 1e-4

    def at(scale, n_cells=800.0):
        cap = (spread[0] * 0.25 * scale, spread[1])
        return td.eig_gradient(*kin, n_cells=n_cells, capture=cap, criterion=criterion,
                               method="exact")

    g = at(1.0)
    fd_cap = (at(math.exp(h)).value - at(math.exp(-h)).value) / (2 * h)
    fd_n = (at(1.0, 800.0 * math.exp(h)).value - at(1.0, 800.0 * math.exp(-h)).value) / (2 * h)
    np.testing.assert_allclose(g.d_log_capture, fd_cap, rtol=2e-5)
    np.testing.assert_allclose(g.d_log_cells, fd_n, rtol=2e-6)


@pytest.mark.parametrize("baseline", ["none", "loo", "optimal"])
def test_score_function_gradient_matches_the_exact_one(baseline):
    """The score-function (REINFORCE) estimate from simulated cells against the
    exact sum over counts, on the same parameter sets; its standard error is
    calibrated enough that 4 of them cover the difference."""
    rng = np.random.default_rng(5)
    k = tg.study.draw_prior_kinetics(rng, 16)
    kin = (k["k_on"], k["k_off"], k["burst_size"] * k["k_off"])
    ex = td.eig_gradient(*kin, n_cells=1000, capture=0.3, method="exact")
    sc = td.eig_gradient(*kin, n_cells=1000, capture=0.3, method="score", baseline=baseline,
                         n_sim_cells=4000, seed=11)
    assert sc.d_log_capture_se > 0
    assert abs(sc.d_log_capture - ex.d_log_capture) < 4 * sc.d_log_capture_se
    assert sc.d_log_capture_se < 0.15 * abs(ex.d_log_capture)
    assert sc.value == pytest.approx(ex.value, rel=1e-9) and sc.d_log_cells == ex.d_log_cells


def test_importance_sampling_cuts_the_spread_of_the_score_estimate():
    kin = (0.44, 4.8, 85.6)          # a gene whose information leans on rare high counts
    ex = td.eig_gradient(*kin, n_cells=1000, capture=0.3, method="exact").d_log_capture
    est = {imp: np.array([td.eig_gradient(*kin, n_cells=1000, capture=0.3, n_sim_cells=2000,
                                          seed=s, importance=imp).d_log_capture
                          for s in range(24)]) for imp in (True, False)}
    assert est[True].std() < 0.7 * est[False].std()
    assert abs(est[True].mean() - ex) < 4 * est[True].std() / math.sqrt(24)


# ----------------------------------------------------------------------------- against the fitter

@pytest.mark.parametrize("kin, n_cells, spread", [((0.3, 0.5, 10.0), 3000, False),
                                                  ((0.5, 2.0, 20.0), 3000, True)])
def test_expected_precision_matches_the_fitter(kin, n_cells, spread):
    R = 150
    rng = np.random.default_rng(21)
    cap = (np.clip(rng.lognormal(np.log(0.3), 0.35, n_cells), 0.02, 1) if spread
           else np.full(n_cells, 0.3))
    pred = td.expected_precision(*kin, n_cells=n_cells, capture=cap, progress=False).iloc[0]
    assert pred["asymptotics"] == "ok"
    X = draws(22, R, n_cells, *kin, cap)
    res = tg.fit(X, capture=cap, progress=False)
    chi_lo, chi_hi = stats.chi2.ppf([0.0005, 0.9995], R - 1) / (R - 1)
    for q, true in (("burst_frequency", kin[0]), ("burst_size", kin[2] / kin[1])):
        est = np.log(res[q].to_numpy(float))
        se = pred[f"{q}_log_se"]
        assert chi_lo < est.var(ddof=1) / se ** 2 < chi_hi, (q, est.std(ddof=1), se)
        width = np.log(res[f"{q}_ci_high"] / res[f"{q}_ci_low"]).to_numpy(float)
        pw = np.log(pred[f"{q}_ci_high"] / pred[f"{q}_ci_low"])
        assert 0.9 < np.median(width) / pw < 1.1
        assert pred[f"{q}_ci_low"] < true < pred[f"{q}_ci_high"]
        covered = np.sum((res[f"{q}_ci_low"] <= true) & (true <= res[f"{q}_ci_high"]))
        assert stats.binomtest(int(covered), R, 0.95).pvalue > 0.001


def test_precision_near_the_bursty_limit_includes_the_boundary():
    """At k_off = 100 k_deg most fits land on the bursty limit (k_off = inf): the
    fitter's intervals have the boundary-corrected width, well below the plain
    inverse information, and so does the spread of the reported estimates (the
    negative binomial's, in that regime)."""
    kin, n_cells, R, cap = (2.0, 100.0, 1000.0), 900, 200, 0.2
    pred = td.expected_precision(*kin, n_cells=n_cells, capture=cap, progress=False).iloc[0]
    assert "near_bursty" in pred["asymptotics"]
    plain = np.sqrt(np.diag(np.linalg.inv(td.fisher_information(
        *kin, capture=cap, parametrisation="log_burst"))) / n_cells)
    res = tg.fit(draws(24, R, n_cells, *kin, np.full(n_cells, cap)), capture=cap,
                 progress=False)
    z = stats.norm.ppf(0.975)
    for j, q in enumerate(("burst_frequency", "burst_size")):
        se = pred[f"{q}_log_se"]
        assert se < 0.85 * plain[j]
        width = np.log(res[f"{q}_ci_high"] / res[f"{q}_ci_low"]).to_numpy(float)
        assert 0.85 < np.median(width) / (2 * z * se) < 1.15, (q, np.median(width), se)
        sd = np.log(res[q].to_numpy(float)).std(ddof=1)
        assert sd < 0.85 * plain[j]


def test_probability_of_a_limit_regime_matches_the_fitter():
    kin, n_cells, R = (0.2, 10.0, 300.0), 1000, 200
    pred = td.expected_precision(*kin, n_cells=n_cells, capture=0.3, progress=False).iloc[0]
    assert pred["nearest_limit"] == "bursty" and "near_bursty" in pred["asymptotics"]
    res = tg.fit(draws(23, R, n_cells, *kin, np.full(n_cells, 0.3)), capture=0.3,
                 interval="wald", progress=False)
    realised = np.mean(res["regime"].astype(str) != "telegraph")
    assert abs(realised - pred["p_limit_regime"]) < 3 * math.sqrt(0.25 / R) + 0.05


# ----------------------------------------------------------------------------- against the test

@pytest.mark.parametrize("quantity, kin, cap", [
    ("burst_frequency", (1.0, 5.0, 100.0), 0.3),
    ("burst_size", (0.2, 10.0, 300.0), 0.3),
    ("burst_frequency", (2.0, 100.0, 1000.0), 0.2)])    # bursty: null scale ~0.83
def test_cells_needed_reaches_the_power_with_the_real_test(quantity, kin, cap):
    """Simulated experiments of cells_needed cells per group, run through the
    real differential test with its calibrated null law: the realised power is
    the power asked and the power predicted, within binomial error plus the
    Monte Carlo error of the test's own calibrated scale (about 0.02 in power)."""
    R, effect = 200, 1.5
    n = int(td.cells_needed(*kin, effect=effect, quantity=quantity, capture=cap,
                            null_genes=250, progress=False))
    assert 100 < n < 3000
    pred = td.power(*kin, effect=effect, n_cells=n, quantity=quantity, capture=cap,
                    null_genes=250, progress=False)
    assert abs(pred - 0.8) < 0.05
    k2 = list(kin)
    if quantity == "burst_frequency":
        k2[0] *= effect
    else:
        k2[2] *= effect
    X1 = draws(31, R, n, *kin, np.full(n, cap))
    X2 = draws(32, R, n, *k2, np.full(n, cap))
    res = differential(X1, X2, capture1=np.full(n, cap), capture2=np.full(n, cap),
                       interval="wald", progress=False)
    p = res[f"pval_{quantity}"].to_numpy(float)
    realised = np.mean(p < 0.05)
    tol = 3 * math.sqrt(0.8 * 0.2 / R + 0.02 ** 2)
    assert abs(realised - 0.8) < tol and abs(realised - pred) < tol, (realised, pred, n)


def test_panel_power_averages_experiments_and_matches_the_real_test():
    """calibration="panel": the critical values are those the real test applies in
    config.DESIGN_NULL_PANELS simulated experiments of the panel, and the predicted power
    averages over them (the scale of one experiment's test is one draw of its bootstrap:
    about 0.01 in every gene's power at once, docs/maths.md, "Experiment design"). The
    predicted number of detections is the mean over R replicate experiments of the real
    test, within the spread of both: per experiment sum p(1 - p) plus (m sc)^2, sc = 0.01
    the shared calibration error in power; the prediction's (m sc)^2 / DESIGN_NULL_PANELS."""
    rng = np.random.default_rng(16)
    m, n, R, cap, effect = 40, 300, 40, 0.2, 1.5
    k_on = np.exp(rng.uniform(np.log(0.5), np.log(3.0), m))
    k_off = np.where(np.arange(m) % 4 == 0, 5.0, 100.0)       # telegraph and near-bursty genes
    k_syn = k_off * np.exp(rng.uniform(np.log(20.0), np.log(100.0), m))
    K = tg.config.DESIGN_NULL_PANELS
    assert K >= 2
    g = td._group_covariances(k_on, k_off, k_syn, 1.0, effect, "burst_frequency", "k_syn", cap,
                              "one_species", tg.config.DESIGN_INFO_TOL, False)
    crit = td._test_criticals(g.s1, g.s2, np.full(m, float(n)), g.dist, "burst_frequency",
                              "panel", 0.05, 0, 3, False)
    assert crit.shape == (m, K) and np.all(np.isfinite(crit))
    assert np.ptp(crit.mean(axis=0)) > 0                       # independent experiments
    pred = td.power(k_on, k_off, k_syn, effect=effect, n_cells=n, capture=cap,
                    calibration="panel", seed=3, progress=False)
    nc = n * g.lr_per_cell
    each = np.mean([td._power_with_criticals(nc, crit[:, [e]]) for e in range(K)], axis=0)
    np.testing.assert_allclose(pred, each, rtol=1e-12)
    assert 0.3 < pred.mean() < 0.8
    c = np.full(n, cap)
    hits = []
    for r in range(R):
        X1 = draws([16, r, 1], m, n, k_on, k_off, k_syn, c)
        X2 = draws([16, r, 2], m, n, k_on * effect, k_off, k_syn, c)
        res = differential(X1, X2, capture1=c, capture2=c, interval="wald", progress=False)
        hits.append(np.sum(res["pval_burst_frequency"].to_numpy(float) < 0.05))
    shared = (m * 0.01) ** 2
    tol = 3 * math.sqrt((np.sum(pred * (1 - pred)) + shared) / R + shared / K)
    assert abs(np.mean(hits) - pred.sum()) < tol, (np.mean(hits), pred.sum(), tol)


def test_cells_needed_is_where_the_predicted_power_crosses():
    chi2 = dict(calibration="chi2", progress=False)
    kin = (np.array([0.3, 1.0, 3.0]), 4.0, 60.0)
    n = td.cells_needed(*kin, effect=0.7, power=0.9, alpha=0.01, capture=0.2, **chi2)
    assert n.shape == (3,)
    at = td.power(*kin, effect=0.7, n_cells=n, alpha=0.01, capture=0.2, **chi2)
    below = td.power(*kin, effect=0.7, n_cells=n - 1, alpha=0.01, capture=0.2, **chi2)
    assert np.all(at >= 0.9 - 1e-9) and np.all(below < 0.9)
    pw = td.power(1.0, 4.0, 60.0, effect=1.5, n_cells=[50, 200, 800, 3200], capture=0.2,
                  **chi2)
    assert np.all(np.diff(pw) > 0) and pw[0] > 0.05
    deeper = [td.cells_needed(1.0, 4.0, 60.0, effect=1.5, capture=s, **chi2)
              for s in (0.05, 0.2, 0.8)]
    assert deeper[0] > deeper[1] > deeper[2]


# ----------------------------------------------------------------------------- optimiser

def test_optimum_is_where_the_criterion_peaks():
    rng = np.random.default_rng(6)
    k = tg.study.draw_prior_kinetics(rng, 12)
    kin = (k["k_on"], k["k_off"], k["burst_size"] * k["k_off"])
    cost = td.CostModel(cell=1.0, read=2e-5, capture_max=0.25, reads_half=10_000)
    res = td.optimize(*kin, budget=10_000, cost=cost, criterion="D", progress=False)
    assert res.converged and res.method == "exact"
    curve = res.curve
    best = curve["reads"].iloc[int(np.argmax(curve["value"]))]
    step = np.diff(np.log(curve["reads"])).mean()
    assert abs(math.log(res.reads / best)) <= step
    assert res.value >= curve["value"].max() - 1e-9 * abs(curve["value"].max())
    assert res.n_cells == int(cost.cells(10_000, res.reads))
    assert abs(res.capture_mean - float(cost.capture(res.reads))) < 1e-12


def test_score_function_ascent_finds_the_exact_optimum():
    common = dict(prior={"k_on": (0.1, 3.0), "k_off": (0.5, 10.0), "burst_size": (2.0, 30.0)},
                  budget=20_000, n_prior=24, progress=False, curve=False, seed=3)
    ex = td.optimize(criterion="eig", method="exact", **common)
    sc = td.optimize(criterion="eig", method="score", n_sim_cells=1000, max_iter=30, **common)
    assert abs(math.log(sc.reads / ex.reads)) < 0.15
    assert sc.gradient_se > 0 and len(sc.history) == 30
    assert abs(sc.value - ex.value) < 0.01


def test_cost_model_and_budget_are_checked():
    with pytest.raises(ValueError, match="capture_max"):
        td.CostModel(capture_max=1.5)
    with pytest.raises(ValueError, match="read cost"):
        td.CostModel(read=0.0)
    with pytest.raises(ValueError, match="raise the budget"):
        td.optimize(0.5, 2.0, 20.0, budget=5.0, criterion="D", progress=False)
    with pytest.raises(ValueError, match="prior box"):
        td.optimize(budget=1e4, prior={"k_on": (1, 2)}, progress=False)
    c = td.CostModel(cell=2.0, read=1e-4, capture_max=0.4, reads_half=1000)
    assert c.cells(1000, 0) == 500 and abs(c.capture(1000) - 0.2) < 1e-15


# ----------------------------------------------------------------------------- tables, plot, CLI

@pytest.fixture(scope="module")
def fitted_table():
    ad = tg.datasets.example(seed=3, n_cells=1500, n_genes=30, n_differential=0)
    res = tg.fit(ad.X, capture=ad.obs["capture"].to_numpy(), genes=ad.var_names,
                 interval="wald", progress=False)
    return res


def test_kinetics_table_keeps_what_the_fit_identified(fitted_table):
    kin = td.kinetics_table(fitted_table)
    reg = fitted_table["regime"].astype(str).to_numpy()
    assert kin["usable"].to_numpy().tolist() == np.isin(reg, ["telegraph", "bursty"]).tolist()
    b = reg == "bursty"
    if b.any():
        np.testing.assert_allclose(kin["k_off"].to_numpy()[b], 100.0)
        np.testing.assert_allclose((kin["k_syn"] / kin["k_off"]).to_numpy()[b],
                                   fitted_table["burst_size"].to_numpy()[b])
    plan = td.plan(fitted_table, effect=1.5, quantity="both", capture=0.3, n_cells=500,
                   progress=False)
    assert {"cells_needed_burst_frequency", "cells_needed_burst_size",
            "power_burst_size"} <= set(plan.columns)
    assert plan.loc[~plan["usable"], "cells_needed_burst_frequency"].isna().all()
    assert (plan.loc[plan["usable"], "cells_needed_burst_frequency"] >= 10).all()


def test_pl_design_draws_the_curve_and_the_choice(tmp_path):
    res = td.optimize(prior="box", budget=20_000, criterion="eig", method="exact", n_prior=16,
                      progress=False)
    out = tmp_path / "design.png"
    ax = tg.pl.design(res, save=str(out))
    assert isinstance(ax, matplotlib.axes.Axes)
    assert out.stat().st_size > 5000
    xs = [line.get_xdata()[0] for line in ax.get_lines() if len(line.get_xdata()) == 1]
    assert any(abs(math.log(x / res.reads)) < 1e-9 for x in xs)
    with pytest.raises(ValueError, match="curve=True"):
        tg.pl.design(td.optimize(prior="box", budget=20_000, method="exact", n_prior=8,
                                 curve=False, progress=False))
    plt.close("all")


def test_cli_design_prints_cells_per_group_and_the_budget_split(fitted_table, tmp_path,
                                                                 capsys):
    from telegraph.cli import main
    path = tmp_path / "kinetics.csv"
    fitted_table.to_csv(path, index=False)
    assert main(["design", "--kinetics", str(path), "--effect", "1.5", "--power", "0.8",
                 "--capture", "0.3", "--budget", "20000", "--criterion", "D",
                 "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "cells_needed_burst_frequency" in out.splitlines()[0]
    assert len(out.splitlines()) == len(fitted_table) + 1
    assert "reads per cell" in err and "cells per group" in err
    table = tmp_path / "plan.csv"
    assert main(["design", "--kinetics", str(path), "--effect", "1.5", "--quantity", "both",
                 "--table", str(table), "--no-progress"]) == 0
    written = pd.read_csv(table)
    assert {"gene", "cells_needed_burst_size"} <= set(written.columns)
    # a table fitted with degradation rates (rates per unit time): the same plan
    scaled = fitted_table.copy()
    scaled[["k_on", "k_off", "k_syn"]] *= 2.0
    scaled.to_csv(tmp_path / "scaled.csv", index=False)
    table2 = tmp_path / "plan2.csv"
    assert main(["design", "--kinetics", str(tmp_path / "scaled.csv"), "--effect", "1.5",
                 "--quantity", "both", "--k-deg", "2", "--table", str(table2),
                 "--no-progress"]) == 0
    pd.testing.assert_series_equal(pd.read_csv(table2)["cells_needed_burst_size"],
                                   written["cells_needed_burst_size"])
    assert main(["design", "--kinetics", str(path), "--effect", "1"]) == 2
    assert "fold change" in capsys.readouterr().err
    assert main(["design", "--kinetics", str(tmp_path / "nope.csv"), "--effect", "2"]) == 2


# ----------------------------------------------------------------------------- models with k_deg

def test_labelled_information_is_the_labelled_law_in_log_rates():
    """model='labelled': telegraph.labelled's information (rates per hour) in log
    rates, averaged over the capture groups; k_deg identified."""
    from telegraph.labelled import labelled_fisher_information
    r = np.array([0.8, 2.0, 30.0, 0.4])
    ref = sum(w * labelled_fisher_information(*r, t_label=1.5, detection=0.9, capture=s)
              for s, w in ((0.2, 0.25), (0.4, 0.75))) * np.outer(r, r)
    got = td.fisher_information(*r, model="labelled", t_label=1.5, detection=0.9,
                                capture=([0.2, 0.4], [1, 3]))
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    pred = td.expected_precision(*r, n_cells=500, model="labelled", t_label=1.5,
                                 capture=0.3, progress=False).iloc[0]
    V = np.linalg.inv(td.fisher_information(*r, model="labelled", t_label=1.5,
                                            capture=0.3)) / 500
    assert pred["k_deg_log_se"] == pytest.approx(math.sqrt(V[3, 3]), rel=1e-9)
    assert pred["k_deg_ci_low"] < r[3] < pred["k_deg_ci_high"]
    # (up to the small boundary correction of the bursty limit, here 1e-4)
    assert pred["burst_frequency_log_se"] == pytest.approx(math.sqrt(V[0, 0]), rel=1e-3)
    # a longer pulse labels more of the mRNA: here it pins k_deg down better
    longer = td.expected_precision(*r, n_cells=500, model="labelled", t_label=4.0,
                                   capture=0.3, progress=False).iloc[0]
    assert longer["k_deg_log_se"] != pred["k_deg_log_se"]
    with pytest.raises(ValueError, match="t_label"):
        td.fisher_information(*r, model="labelled")
    with pytest.raises(ValueError, match="labelled"):
        td.fisher_information(*r, t_label=1.0)


def test_two_species_information_matches_the_joint_law():
    """model='two_species': sum over the lattice of P S S^T from telegraph.joint's
    scores equals the expected observed information (Louis), and the one-species
    snapshot is its spliced-marginal limit in information (never more)."""
    from telegraph.joint import joint_information, lattice_box, joint_logpmf
    r = (0.6, 1.5, 12.0, 0.7)
    got = td.fisher_information(*r, model="two_species", capture=0.6)
    a, b, lam, gam = r[0], r[1], r[2] * 0.6, r[3]
    u_lo, nu, s_lo, ns = lattice_box(a, b, lam, gam)
    uu, ss = np.meshgrid(np.arange(u_lo, u_lo + nu), np.arange(s_lo, s_lo + ns), indexing="ij")
    p = np.exp(joint_logpmf(uu, ss, *r, capture=0.6))
    J = joint_information(uu, ss, *r, capture=0.6)[..., :4, :4]
    ref = np.einsum("uv,uvij->ij", p, J) * np.outer(r, r)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)
    pred = td.expected_precision(*r, n_cells=1000, model="two_species", capture=0.6,
                                 progress=False).iloc[0]
    assert np.isfinite(pred["k_deg_log_se"]) and pred["asymptotics"] == "ok"
    n1 = td.cells_needed(*r, effect=1.5, model="two_species", capture=0.6, progress=False)
    assert td.power(*r, effect=1.5, n_cells=n1, model="two_species", capture=0.6,
                    progress=False) >= 0.8 > td.power(*r, effect=1.5, n_cells=n1 - 1,
                                                     model="two_species", capture=0.6,
                                                     progress=False)


@pytest.mark.slow
def test_two_species_precision_matches_the_joint_fitter():
    """Genes simulated exactly (Gillespie) and fitted by tg.fit(spliced,
    unspliced=...): the fitter's interval widths are the predicted ones and the
    spread of the estimates agrees within sampling error (chi-square bounds for
    R - 1 degrees of freedom). A 60-gene, 800-cell run (docs/maths.md) gives
    variance ratios 0.65, 0.71, 0.91 and width ratios 1.002, 1.000, 1.000."""
    R, n = 5, 300
    kin = dict(k_on=1.0, k_off=2.0, k_syn=20.0, k_deg=0.5)
    ad = tg.simulate_anndata(n, R, capture=1.0, seed=11, **{k: [v] * R for k, v in kin.items()},
                             splicing=[1.0] * R)
    res = tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"], progress=False)
    pred = td.expected_precision(*kin.values(), n_cells=n, model="two_species",
                                 progress=False).iloc[0]
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], R - 1) / (R - 1)
    for q in ("burst_frequency", "burst_size", "k_deg"):
        est = np.log(res[q].to_numpy(float))
        se = pred[f"{q}_log_se"]
        assert lo < est.var(ddof=1) / se ** 2 < hi, (q, est.std(ddof=1), se)
        width = np.median(np.log(res[f"{q}_ci_high"] / res[f"{q}_ci_low"]).to_numpy(float))
        assert abs(width / (2 * stats.norm.ppf(0.975) * se) - 1) < 0.1, (q, width, se)


# --------------------------------------------------------------------------- pulse length

_PULSE_GENES = dict(k_on=[0.5, 0.1], k_off=[2.0, 1.0], k_syn=[30.0, 50.0], k_deg=[0.2, 0.5])


def _log_rate_information(k_on, k_off, k_syn, k_deg, t, capture, detection):
    """Per-cell information in the log rates from tg.labelled_fisher_information (the rate
    coordinates, its own lattice sum): an independent path to the criterion."""
    J = labelled_fisher_information(k_on, k_off, k_syn, k_deg, t_label=t,
                                       detection=detection, capture=capture)
    r = np.array([k_on, k_off, k_syn, k_deg])
    return J * r[:, None] * r[None, :]


@pytest.mark.parametrize("criterion", ["D", "A", "eig"])
def test_exact_pulse_gradient_matches_finite_differences(criterion):
    sets = td._sets(*_PULSE_GENES.values())
    dist = td._capture(([0.2, 0.5], [0.4, 0.6]))
    C = np.stack([td.PULSE_QUANTITIES[q] for q in td.PULSE_QUANTITIES], axis=1)

    def at(t, method="exact"):
        return td._pulse_gradient(sets, dist, t, 0.9, 400.0, C, criterion, method, "optimal",
                                  0, None, 1e-12)

    value, grad, se = at(2.0)
    h = 1e-4
    fd = (at(2.0 * math.exp(h))[0] - at(2.0 * math.exp(-h))[0]) / (2 * h)
    assert se == 0.0
    assert grad == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_score_estimate_of_the_pulse_gradient_agrees_with_the_exact_one():
    sets = td._sets(0.5, 2.0, 30.0, 0.2)
    dist = td._capture(0.3)
    C = td.PULSE_QUANTITIES["k_deg"][:, None]
    _, exact, _ = td._pulse_gradient(sets, dist, 3.0, 0.9, 500.0, C, "D", "exact", "optimal",
                                     0, None, 1e-12)
    estimates = [td._pulse_gradient(sets, dist, 3.0, 0.9, 500.0, C, "D", "score", "optimal",
                                    3000, np.random.default_rng(seed), 1e-12)[1:]
                 for seed in range(4)]
    est = np.array([e[0] for e in estimates])
    se = np.array([e[1] for e in estimates])
    assert (se > 0).all()
    # the mean of four independent estimates within 4 of its standard errors
    assert abs(est.mean() - exact) < 4.0 * math.sqrt((se ** 2).sum()) / 4
    assert exact > 0          # a pulse of 3 h is shorter than the best one for k_deg 0.2/h


def test_optimal_pulse_is_the_peak_of_the_independent_criterion():
    """D-optimal pulse for log k_deg of one gene: N / var(log k_deg), maximised over a fine grid
    of pulses with the information of tg.labelled_fisher_information."""
    kin = (0.5, 2.0, 30.0, 0.2)
    res = tg.design.optimize_pulse(*kin, n_cells=500, capture=0.3, detection=0.9,
                                   quantities=["k_deg"], curve=False, progress=False)
    assert res.converged

    def crit(t):
        V = np.linalg.inv(_log_rate_information(*kin, t, 0.3, 0.9))
        return math.log(500.0 / V[3, 3])

    grid = np.exp(np.linspace(math.log(2.0), math.log(40.0), 61))
    values = np.array([crit(t) for t in grid])
    best = grid[values.argmax()]
    assert abs(math.log(res.t_label / best)) <= math.log(grid[1] / grid[0])
    assert crit(res.t_label) >= values.max() - 1e-6
    assert res.value == pytest.approx(crit(res.t_label), abs=1e-6)
    assert 1.2 < res.t_label * kin[3] < 2.5        # about two mean lifetimes (docs/maths.md)


def test_optimal_pulse_scales_inversely_with_the_rates():
    """The law depends on the pulse only through k_deg t_label and the rates' ratios: kinetics
    twice as fast want a pulse exactly half as long."""
    kin = np.array([0.5, 2.0, 30.0, 0.2])
    one = tg.design.optimize_pulse(*kin, n_cells=500, capture=0.3, curve=False, progress=False)
    two = tg.design.optimize_pulse(*(2 * kin), n_cells=500, capture=0.3, curve=False,
                                   progress=False)
    assert one.converged and two.converged
    assert one.t_label / two.t_label == pytest.approx(2.0, rel=2e-3)
    assert one.value == pytest.approx(two.value, abs=1e-5)


def test_pulse_design_curve_plot_and_errors(tmp_path):
    res = tg.design.optimize_pulse(**_PULSE_GENES, n_cells=300, capture=0.3, max_iter=8,
                                   t_range=(0.5, 20.0), progress=False)
    assert list(res.curve.columns) == ["t_label", "value", "burst_frequency_log_se",
                                       "burst_size_log_se", "k_deg_log_se"]
    assert res.curve["t_label"].iloc[0] == pytest.approx(0.5)
    assert res.curve["t_label"].iloc[-1] == pytest.approx(20.0)
    assert "best pulse" in res.summary()
    ax = tg.pl.design(res, show=False)
    assert ax.get_xlabel().startswith("labelling pulse")
    plt.close("all")
    with pytest.raises(ValueError, match="quantities must be among"):
        tg.design.optimize_pulse(0.5, 2.0, 30.0, 0.2, n_cells=100, quantities=["k_syn"])
    with pytest.raises(ValueError, match="t_range"):
        tg.design.optimize_pulse(0.5, 2.0, 30.0, 0.2, n_cells=100, t_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="k_deg included"):
        tg.design.optimize_pulse(0.5, 2.0, 30.0, np.nan, n_cells=100)


def test_labelled_information_of_a_short_pulse_is_finite():
    """Audit: counts of probability 0 in double precision (many new molecules after a short
    pulse) have no score; they made the whole information NaN."""
    J = labelled_fisher_information(0.5, 2.0, 30.0, 0.2, t_label=0.3, detection=0.9,
                                       capture=0.3)
    assert np.isfinite(J).all()
    assert np.linalg.eigvalsh(J).min() > 0
