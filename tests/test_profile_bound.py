"""The profile-likelihood end points found by bracketing (kernels/profile.py):
the step rule, and the end points against a brute-force profile."""

import numpy as np
import pytest
from scipy import optimize, stats

from telegraph.fitting import fit_raw
from telegraph.histogram import count_histograms
from telegraph.inputs import FitSettings
from telegraph.kernels.fit import FitRows
from telegraph.kernels.models import gene_bins, sort_bins
from telegraph.kernels.optimize import (LOG_HI, LOG_LAM_HI, LOG_LAM_LO, LOG_LO, TARGET_LOG_A,
                                        TARGET_LOG_BETA)
from telegraph.kernels.poisson_beta import histogram_eval
from telegraph.kernels.linalg import grad_info_phi
from telegraph.kernels.models import telegraph_eval
from telegraph.kernels.optimize import target_transform
from telegraph.kernels import profile as profile_module
from telegraph.kernels.profile import (_VM_START_SLOPE, MAX_JUMP, SLOPE_MAX, _next_step,
                                      _nuisance_slope, _profile_bound_vm, _secant_slope,
                                      profile_bound, secant_end)

DROP = stats.chi2.ppf(0.95, 1) / 2


def test_next_step_extrapolates_the_signed_root_deviance():
    # a linear signed root deviance r = slope * dist: the next point lands 10%
    # beyond the root, never more than double the last step, at least 0.02
    slope = 0.4
    for dist in (0.1, 1.0, 3.0):
        d = _next_step(dist, dist, (slope * dist) ** 2, DROP)
        root = np.sqrt(DROP) / slope
        if 1.1 * root - dist <= 2 * dist:
            assert dist + d == pytest.approx(1.1 * root)
        else:
            assert d == pytest.approx(2 * dist)
    # the deviance hardly moved: doubling
    assert _next_step(0.5, 0.5, 1e-4, DROP) == 1.0
    # already almost at the root: the smallest step
    assert _next_step(0.1, 0.1, DROP * 0.9999, DROP) == 0.02


def test_secant_end_is_exact_for_a_linear_root():
    assert secant_end(1.0, -0.2, 2.0, 0.6) == pytest.approx(1.25)
    assert secant_end(2.0, -0.2, 1.0, 0.6) == pytest.approx(1.75)
    assert secant_end(1.0, 0.0, 2.0, 0.0) == 1.5


def _loglik(hist):
    """The telegraph log-likelihood of a one-gene histogram as a function of
    theta = (log a, log b, log lam), by the package's exact evaluation."""
    v, w, gr = sort_bins(hist.values, hist.weights, hist.groups)
    out = np.zeros(10)

    def ll(th):
        a, b, lam = np.exp(th)
        histogram_eval(v, w, gr, hist.capture, a, b, lam, False, out)
        return out[0]

    return ll


def _bursty_gene():
    rng = np.random.default_rng(56)
    n = 600
    cap = np.clip(rng.lognormal(np.log(0.3), 0.35, n), 0.02, 1.0)
    p = rng.beta(2.7, 0.5, n)
    x = rng.poisson(cap * 13.0 * p)
    hist = count_histograms(x[:, None], capture=cap)
    return hist


def test_bracketed_end_points_match_a_brute_force_profile():
    """Per-cell capture, a gene near the bursty limit (where the Wald error of
    burst size is large and the bracketing used to double far out): the end
    points of burst frequency and burst size found by bracketing (no
    Venzon-Moolgavkar) lie where the brute-force profile (Nelder-Mead over the
    two other coordinates, from several starts) has dropped by chi2_1(0.95)/2."""
    hist = _bursty_gene()
    rows = FitRows(fit_raw(hist, FitSettings()))
    theta = rows.theta[0].copy()
    v, w, gr = sort_bins(hist.values, hist.weights, hist.groups)
    gene = gene_bins(v, w, gr, hist.capture)
    ll = _loglik(hist)
    ll_hat = ll(theta)
    buf = np.zeros(11)
    checked = 0
    for target in (TARGET_LOG_A, TARGET_LOG_BETA):
        for side in (-1.0, 1.0):
            end, _ = profile_bound(gene, theta, ll_hat, target, side, 0.3, DROP,
                                   -np.inf, 100, buf, 0.0, np.zeros(3), np.zeros((3, 3)), False)
            if not np.isfinite(end):
                continue

            def neg(z, end=end, target=target):
                # target fixed at end; z = the two other coordinates of phi
                if target == TARGET_LOG_A:
                    th = np.array([end, z[0], z[1]])
                else:   # phi = (log a, log b, log beta), log lam = log b + log beta
                    th = np.array([z[0], z[1], z[1] + end])
                return -ll(th)

            # the kernel's search box (towards the bursty limit the profile
            # rises along a ridge without end)
            if target == TARGET_LOG_A:
                starts = [theta[1], theta[2]]
                box = [(LOG_LO, LOG_HI), (LOG_LAM_LO, LOG_LAM_HI)]
            else:
                starts = [theta[0], theta[1]]
                box = [(LOG_LO, LOG_HI), (LOG_LO, LOG_HI)]
            best = min(optimize.minimize(neg, np.clip(np.add(starts, s), *np.transpose(box)),
                                         method="Nelder-Mead", bounds=box,
                                         options={"xatol": 1e-9, "fatol": 1e-11,
                                                  "maxiter": 4000}).fun
                       for s in np.array(np.meshgrid([-2, -1, 0, 1], [-3, -1.5, 0, 1.5]))
                       .reshape(2, -1).T)
            assert ll_hat + best == pytest.approx(DROP, abs=2e-3), (target, side, end)
            checked += 1
    assert checked >= 3


def _switching_gene():
    """10,000 cells of a slowly switching gene (b < 1): flat, correlated
    profiles of burst frequency and size, whose ends the Venzon-Moolgavkar
    iteration does not reach (the nested search finds them)."""
    rng = np.random.default_rng(36)
    x = rng.poisson(2.34 * rng.beta(1.38, 0.113, 10_000))
    return count_histograms(x[:, None])


def _fitted(hist):
    """A one-gene histogram's fit rows, its optimum theta, its bins ordered as the
    fitter orders them, and the evaluation at theta: (rows, theta, (v, w, gr),
    (ll0, g0, H0))."""
    rows = FitRows(fit_raw(hist, FitSettings()))
    theta = rows.theta[0].copy()
    v, w, gr = sort_bins(hist.values, hist.weights, hist.groups)
    gene = gene_bins(v, w, gr, hist.capture)
    g0, H0 = np.zeros(3), np.zeros((3, 3))
    ll0 = telegraph_eval(gene, theta, True, g0, H0, np.zeros(11))
    return rows, theta, gene, (ll0, g0, H0)


def _brute_profile(ll, target, psi, starts):
    """max over the two other coordinates of phi with the target at psi, by
    Nelder-Mead from several starts in the search box; returns (value, argmax)."""
    def neg(z):
        th = (np.array([psi, z[0], z[1]]) if target == TARGET_LOG_A
              else np.array([z[0], z[1], z[1] + psi]))
        return -ll(th)
    box = [(LOG_LO, LOG_HI), (LOG_LAM_LO, LOG_LAM_HI)] if target == TARGET_LOG_A \
        else [(LOG_LO, LOG_HI), (LOG_LO, LOG_HI)]
    best = None
    for z0 in starts:
        r = optimize.minimize(neg, np.clip(z0, *np.transpose(box)), method="Nelder-Mead",
                              bounds=box, options={"xatol": 1e-10, "fatol": 1e-12,
                                                   "maxiter": 6000})
        if best is None or r.fun < best.fun:
            best = r
    return -best.fun, best.x


def test_nuisance_slope_is_the_tangent_of_the_maximiser_path():
    """The predicted warm start's slope at the optimum, -I_ff^-1 I_f,psi from the
    information there, against the derivative of the maximiser path by central
    differences of brute-force profiles (Nelder-Mead, no package climb); refused
    (all zeros) where the information is not positive definite or a component
    exceeds SLOPE_MAX."""
    hist = _switching_gene()
    rows, theta, _, (_, g0, H0) = _fitted(hist)
    ll = _loglik(hist)
    h = 0.02
    for target in (TARGET_LOG_A, TARGET_LOG_BETA):
        T, Tinv, fix = target_transform(target)
        gp, Hp = np.zeros(3), np.zeros((3, 3))
        grad_info_phi(Tinv, g0, H0, gp, Hp)
        slope = np.full(3, np.nan)
        _nuisance_slope(Hp, fix, slope)
        phi = T @ theta
        nuis = [i for i in range(3) if i != fix]
        path = []
        for d in (-h, h):
            _, z = _brute_profile(ll, target, phi[fix] + d, [phi[nuis]])
            path.append(z)
        fd = (path[1] - path[0]) / (2 * h)
        assert slope[fix] == 0.0
        assert np.abs(fd).max() > 0.3                 # the nuisance does move with the target
        np.testing.assert_allclose(slope[nuis], fd, rtol=0.02, atol=0.01)
    # refused: not positive definite, or steeper than SLOPE_MAX
    out = np.full(3, np.nan)
    _nuisance_slope(-np.eye(3), 0, out)
    assert (out == 0).all()
    steep = np.eye(3)
    steep[0, 1] = steep[1, 0] = -0.9
    steep[1, 1] = 0.19                           # slope of phi_1: 0.9 / 0.19 = 4.7
    assert 0.9 / 0.19 > SLOPE_MAX
    _nuisance_slope(steep, 0, out)
    assert (out == 0).all()
    steep[1, 1] = 0.3                            # 3.0: taken
    _nuisance_slope(steep, 0, out)
    np.testing.assert_allclose(out, [0.0, 3.0, 0.0])


def test_secant_slope_of_two_maximisers_and_its_refusals():
    # burst size: phi = (log a, log b, log lam - log b), psi = phi[2]
    T, _, fix = target_transform(TARGET_LOG_BETA)
    ta = np.array([0.5, -1.0, 1.0])                   # psi_a = 2.0
    tb = np.array([0.2, -1.6, 0.8])                   # psi_b = 2.4
    out = np.full(3, np.nan)
    _secant_slope(T, ta, 2.0, tb, 2.4, fix, out, True)
    np.testing.assert_allclose(out, [-0.75, -1.5, 0.0])
    # steeper than SLOPE_MAX: refused with the cap, taken without it
    tc = np.array([0.5, 1.0, 3.0])                   # phi_1 moves 2.0 over 0.4
    _secant_slope(T, ta, 2.0, tc, 2.4, fix, out, True)
    assert (out == 0).all()
    _secant_slope(T, ta, 2.0, tc, 2.4, fix, out, False)
    np.testing.assert_allclose(out, [0.0, 5.0, 0.0])
    # the same psi twice: no slope, whatever the cap
    _secant_slope(T, ta, 2.0, ta, 2.0, fix, out, False)
    assert (out == 0).all()


def test_nested_ends_with_predicted_starts_match_a_brute_force_profile():
    """The ends found by nested maximisation (no Venzon-Moolgavkar) with the warm
    starts predicted from the information at the optimum and the secants of the
    maximiser path lie where the brute-force profile has dropped by
    chi2_1(0.95)/2, on a gene whose nuisance moves with the target."""
    hist = _switching_gene()
    rows, theta, gene, (ll0, g0, H0) = _fitted(hist)
    ll = _loglik(hist)
    ll_hat = ll(theta)
    checked = 0
    for target in (TARGET_LOG_A, TARGET_LOG_BETA):
        T, _, fix = target_transform(target)
        for side in (-1.0, 1.0):
            se = rows.se(target)[0]
            end, _ = profile_bound(gene, theta, ll_hat, target, side, se,
                                   DROP, -np.inf, 100, np.zeros(11), ll0, g0, H0, False)
            if not np.isfinite(end):
                continue
            nuis = [i for i in range(3) if i != fix]
            starts = [(T @ theta)[nuis] + np.array(s) for s in
                      ((0, 0), (-1, -1), (1, 1), (-1, 1), (1, -1), (0, 2), (2, 0), (-2, 0))]
            value, _ = _brute_profile(ll, target, end, starts)
            assert ll_hat - value == pytest.approx(DROP, abs=2e-3), (target, side, end)
            checked += 1
    assert checked >= 3


def test_nested_search_steps_out_at_most_max_jump_at_a_time(monkeypatch):
    """Where the Wald step is longer than MAX_JUMP (burst size of the slowly switching gene:
    se * sqrt(2 drop) = 2.7), the bracketing steps out at most MAX_JUMP at a time, so every
    profile point is reached straight from the previous one (a longer step went through
    intermediate points at the same cost, and the root search then started from the
    farther inner end, each of its points again through an intermediate one)."""
    hist = _switching_gene()
    rows, theta, gene, (ll0, g0, H0) = _fitted(hist)
    ll_sup = max(rows.loglik[0], rows.loglik_nb[0], rows.loglik_zip[0],
                 rows.loglik_poisson[0])
    se = rows.se(TARGET_LOG_BETA)[0]
    assert se * np.sqrt(2 * DROP) > 2 * MAX_JUMP
    walk = profile_module._profile_walk
    for side in (-1.0, 1.0):
        spans = []

        def recording(*args):
            spans.append(abs(args[4] - args[3]))         # psi - psi_from
            return walk(*args)

        monkeypatch.setattr(profile_module, "_profile_walk", recording)
        end, _ = profile_bound.py_func(gene, theta, ll_sup, TARGET_LOG_BETA,
                                       side, se, DROP, -np.inf, 100, np.zeros(11), ll0, g0, H0,
                                       False)
        assert np.isfinite(end) and side * (end - (theta[2] - theta[1])) > 2 * MAX_JUMP
        assert len(spans) >= 4 and max(spans) <= MAX_JUMP * (1 + 1e-12)


def _ridge_gene():
    """100 cells of a bursty gene with large bursts (k_on 2.4, k_off 18, burst size 93 in
    units of k_deg; per-cell capture): (log b, log lam) at fixed burst size run along a nearly
    flat ridge towards the negative binomial limit, one eigenvalue of the information at the
    optimum 10^5 times smaller than the others."""
    rng = np.random.default_rng(2)
    n = 100
    cap = np.clip(rng.lognormal(np.log(0.3), 0.35, n), 0.02, 1.0)
    x = rng.poisson(cap * 1670.0 * rng.beta(2.4, 18.0, n))
    return count_histograms(x[:, None], capture=cap)


def _recording(evaluated):
    """telegraph_eval, recording each theta it is called at."""
    def ev(gene, th, want_info, g, H, buf):
        evaluated.append(th.copy())
        return telegraph_eval(gene, th, want_info, g, H, buf)
    return ev


def test_vm_on_a_ridge_starts_near_the_path_and_ends_where_the_brute_force_profile_drops(
        monkeypatch):
    """Bench_tail audit (100 cells, per-cell capture, the slowest gene): on the off-ridge
    sides of a bursty gene (burst frequency down, burst size up), the quadratic guess at the
    optimum moved the nuisance far along the ridge (thousands of nats down), the iteration
    then ran a nuisance coordinate to the box edge and failed (on this gene after 18 and 12
    evaluations), and the nested search took 16-19 more. With the first point's nuisance
    moved by at most _VM_START_SLOPE per unit of the target, the iteration ends in a few
    evaluations where the brute-force profile (Nelder-Mead from several starts) has dropped
    by chi2_1(0.95)/2."""
    hist = _ridge_gene()
    rows, theta, gene, (ll0, g0, H0) = _fitted(hist)
    ev = np.linalg.eigvalsh(H0)
    assert ev[0] < 1e-4 * ev[-1]                       # the ridge
    ll_sup = max(rows.loglik[0], rows.loglik_nb[0], rows.loglik_zip[0],
                 rows.loglik_poisson[0])
    ll = _loglik(hist)
    evaluated = []
    monkeypatch.setattr(profile_module, "telegraph_eval", _recording(evaluated))
    for target, side in ((TARGET_LOG_A, -1.0), (TARGET_LOG_BETA, 1.0)):
        evaluated.clear()
        end = _profile_bound_vm.py_func(gene, theta, ll_sup, target, side,
                                        DROP, np.zeros(11), ll0, g0, H0)
        T, _, fix = target_transform(target)
        nuis = [i for i in range(3) if i != fix]
        first = T @ evaluated[0] - T @ theta
        assert side * first[fix] > 0
        assert np.all(np.abs(first[nuis]) <= _VM_START_SLOPE * abs(first[fix]) * (1 + 1e-12))
        assert np.isfinite(end), (target, side)
        assert len(evaluated) <= 10, (target, side, len(evaluated))
        starts = [(T @ theta)[nuis] + np.array(s) for s in
                  ((0, 0), (-1, -1), (-2, -2), (-3, -3), (-1, 0), (0, -1), (1, 1))]
        value, _ = _brute_profile(ll, target, end, starts)
        assert ll_sup - value == pytest.approx(DROP, abs=2e-3), (target, side, end)


def test_vm_for_burst_frequency_starts_in_the_mean_coordinates(monkeypatch):
    """10,000 cells of a telegraph gene near the bursty ridge (k_on 3, k_off 29,
    k_syn 1,700 in units of k_deg; capture 1; counts to ~800), the slowest gene of
    bench_tail's 10,000-cell mix: in theta the quadratic guess at the optimum for
    the burst-frequency ends landed up to 85 nats down, three halvings back and
    eight Newton steps followed (11 and 12 evaluations). From the quadratic guess
    in (log a, log b, log m), where that ridge runs along log b, each end takes at
    most 5, and the brute-force profile has dropped by chi2_1(0.95)/2 there."""
    rng = np.random.default_rng(141)
    x = rng.poisson(1700.0 * rng.beta(3.0, 29.0, 10_000))
    hist = count_histograms(x[:, None])
    rows, theta, gene, (ll0, g0, H0) = _fitted(hist)
    ll_sup = max(rows.loglik[0], rows.loglik_nb[0], rows.loglik_zip[0],
                 rows.loglik_poisson[0])
    assert ll_sup == rows.loglik[0]
    ll = _loglik(hist)
    evaluated = []
    monkeypatch.setattr(profile_module, "telegraph_eval", _recording(evaluated))
    for side in (-1.0, 1.0):
        evaluated.clear()
        end = _profile_bound_vm.py_func(gene, theta, ll_sup, TARGET_LOG_A, side,
                                        DROP, np.zeros(11), ll0, g0, H0)
        assert np.isfinite(end) and side * (end - theta[0]) > 0
        assert len(evaluated) <= 5, (side, len(evaluated))
        starts = [theta[1:] + np.array(s) for s in ((0, 0), (-0.3, -0.3), (0.3, 0.3))]
        value, _ = _brute_profile(ll, TARGET_LOG_A, end, starts)
        assert ll_sup - value == pytest.approx(DROP, abs=2e-3), (side, end)


def test_vm_ends_when_a_nuisance_coordinate_would_leave_the_box(monkeypatch):
    """A quadratic log-likelihood whose maximiser path runs out of the box in log b before
    the end of the burst-frequency interval: the Venzon-Moolgavkar iteration gives up (NaN,
    the nested search takes over) at the first step that would leave the box, instead of
    holding the coordinate on the edge and iterating on (the nested search follows such a
    ridge in fewer evaluations)."""
    theta_hat = np.array([0.0, LOG_HI - 0.4, 3.0])
    info = np.array([[2.0, 1.8, 0.0], [1.8, 2.0, 0.0], [0.0, 0.0, 1.0]])

    evaluated = []

    def quadratic(gene, th, want_info, g, H, buf):
        evaluated.append(th.copy())
        d = th - theta_hat
        g[:] = -info @ d
        H[:, :] = info
        return -0.5 * d @ info @ d

    monkeypatch.setattr(profile_module, "telegraph_eval", quadratic)
    g0, H0 = np.zeros(3), info.copy()
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
    gene = gene_bins(empty_i, empty_f, empty_i, np.ones(1))
    # the path: d log b / d log a = -0.9; the profile's curvature 2 - 1.8^2/2 = 0.38, so the
    # lower end lies 3.18 below, with log b 2.9 above the estimate: 2.5 beyond the edge
    end = _profile_bound_vm.py_func(gene, theta_hat, 0.0,
                                    TARGET_LOG_A, -1.0, DROP, np.zeros(11), 0.0, g0, H0)
    assert np.isnan(end)
    # the quadratic guess, log b brought back to the edge, dropped by more than twice the
    # cut-off there; halfway back it did not: no Newton step taken from that point
    assert len(evaluated) == 2
    assert evaluated[0][0] == pytest.approx(-np.sqrt(2 * DROP / 0.38))
    assert evaluated[1][0] == pytest.approx(-0.5 * np.sqrt(2 * DROP / 0.38))
    assert evaluated[0][1] == evaluated[1][1] == LOG_HI
    # the upper end moves log b down, inside the box: found exactly (a quadratic profile)
    evaluated.clear()
    end = _profile_bound_vm.py_func(gene, theta_hat, 0.0,
                                    TARGET_LOG_A, 1.0, DROP, np.zeros(11), 0.0, g0, H0)
    assert end == pytest.approx(np.sqrt(2 * DROP / 0.38), rel=1e-9)


def test_end_point_far_from_the_optimum_follows_the_profile_path():
    """Audit (bench_tail, 100 cells, capture 1): the upper end of burst size lies about 5 log
    units from the optimum. A single jump there started the inner maximisation from the last
    point inside, which slid into another basin (a ridge to the edge of the box) with a spurious
    deviance far above the cut-off: the end came out at 4.37 where the profile had dropped by
    only about half the cut-off, and such points cost tens of ms. Continuation in steps of at most
    MAX_JUMP finds the end where the brute-force profile drops by chi2_1(0.95)/2."""
    counts = {0: 18, 1: 17, 2: 18, 3: 17, 4: 15, 5: 7, 6: 2, 7: 4, 8: 1, 12: 1}
    x = np.repeat(list(counts), list(counts.values())).astype(float)
    hist = count_histograms(x[:, None])
    rows = FitRows(fit_raw(hist, FitSettings()))
    ll = _loglik(hist)
    ll_sup = max(rows.loglik[0], rows.loglik_nb[0], rows.loglik_zip[0], rows.loglik_poisson[0])
    end = rows.ci(TARGET_LOG_BETA)[1][0]              # log scale
    assert end > 6.0                                 # before: 4.37

    def deviance(psi):   # brute force over (log a, log b), log beta fixed at psi
        box = [(LOG_LO, LOG_HI), (LOG_LO, LOG_HI)]
        return ll_sup + min(
            optimize.minimize(lambda z: -ll(np.array([z[0], z[1], z[1] + psi])),
                              [s0, s1], method="Nelder-Mead", bounds=box,
                              options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 4000}).fun
            for s0 in np.linspace(-4, 4, 5) for s1 in np.linspace(-6, 6, 5))

    assert deviance(end) == pytest.approx(DROP, abs=2e-3)
    assert deviance(4.37) < DROP - 0.5               # the old end was well inside


def test_ends_on_the_bursty_limit_are_the_negative_binomial_profile_ends():
    """Bursty regime, per-cell capture, optimum inside the box: the upper end of burst frequency
    and the lower end of burst size lie where the profile runs up the ridge to the bursty limit
    (b -> inf at fixed a and burst size). There the profile over the model and its limit is the
    negative binomial's: the reported end is where the negative binomial's profile (scipy's
    nbinom, maximised over the other coordinate) has dropped by chi2_1(0.95)/2 below the
    supremum, and the telegraph profile inside the box (brute force) is no higher there, so the
    end is not short of the limit (walking the ridge stopped at the box edge, up to 4e-3 short)."""
    rng = np.random.default_rng(1)
    n = 500
    cap = np.clip(rng.lognormal(np.log(0.3), 0.35, n), 0.02, 1.0)
    x = rng.poisson(cap * 13 * 72 * rng.beta(1.4, 13.0, n))
    hist = count_histograms(x[:, None], capture=cap)
    rows = FitRows(fit_raw(hist, FitSettings()))
    assert rows.regime[0] == 1 and rows.at_limit[0] == 0      # bursty, optimum inside the box
    ll_sup = max(rows.loglik[0], rows.loglik_nb[0], rows.loglik_zip[0], rows.loglik_poisson[0])
    s = hist.capture[hist.groups]
    v, wt = hist.values, hist.weights

    def nb_ll(la, lbeta):
        a, beta = np.exp(la), np.exp(lbeta)
        return float(np.sum(wt * stats.nbinom.logpmf(v, a, 1.0 / (1.0 + s * beta))))

    tg_ll = _loglik(hist)
    theta = rows.theta[0]
    for target, side in ((TARGET_LOG_A, 1), (TARGET_LOG_BETA, 0)):
        end = rows.ci(target)[side][0]
        other = (lambda u: (end, u)) if target == TARGET_LOG_A else (lambda u: (u, end))
        nb = -optimize.minimize_scalar(lambda u: -nb_ll(*other(u)), bounds=(-10, 15),
                                       method="bounded", options={"xatol": 1e-9}).fun
        assert ll_sup - nb == pytest.approx(DROP, abs=2e-3), (target, end)

        def neg(z, end=end, target=target):
            if target == TARGET_LOG_A:
                return -tg_ll(np.array([end, z[0], z[1]]))
            return -tg_ll(np.array([z[0], z[1], z[1] + end]))   # z = (log a, log b)

        box = ([(LOG_LO, LOG_HI), (LOG_LAM_LO, LOG_LAM_HI)] if target == TARGET_LOG_A
               else [(LOG_LO, LOG_HI), (LOG_LO, LOG_HI)])
        starts = ([theta[1], theta[2]], [LOG_HI, end + LOG_HI - 1]) if target == TARGET_LOG_A \
            else ([theta[0], theta[1]], [end, LOG_HI])
        box_best = -min(optimize.minimize(neg, np.clip(st, *np.transpose(box)),
                                          method="Nelder-Mead", bounds=box,
                                          options={"xatol": 1e-8, "fatol": 1e-10,
                                                   "maxiter": 3000}).fun for st in starts)
        assert ll_sup - box_best >= DROP - 2e-3, (target, end, ll_sup - box_best)


def _quadratic_point(phi, phi_hat, info, ll_hat):
    """Value, gradient and information of ll_hat - (phi - phi_hat)' info (phi - phi_hat) / 2."""
    d = phi - phi_hat
    return ll_hat - 0.5 * d @ info @ d, -info @ d, info


def test_vm_model_end_is_exact_for_a_quadratic_loglik_and_refuses_unsafe_points():
    from telegraph.kernels.profile import _VM_ACCEPT, _vm_model_end

    info = np.array([[4.0, 1.5, -0.7], [1.5, 3.0, 0.4], [-0.7, 0.4, 2.0]])
    phi_hat = np.array([0.3, -1.2, 2.0])
    ll_hat, fix, side = -100.0, 1, -1.0
    var_k = np.linalg.inv(info)[fix, fix]
    exact = phi_hat[fix] + side * np.sqrt(2.0 * DROP * var_k)
    target = ll_hat - DROP
    pinned = np.zeros(3, np.bool_)
    # a point near the end, its nuisance slightly off the profile's maximiser
    psi = exact - side * 0.002
    phi = phi_hat + np.linalg.inv(info)[:, fix] / var_k * (psi - phi_hat[fix])
    phi[[0, 2]] += [0.01, -0.008]
    ll, g, H = _quadratic_point(phi, phi_hat, info, ll_hat)
    assert abs(ll - target) < _VM_ACCEPT
    end = _vm_model_end(phi, ll, g, H, pinned, fix, target, phi_hat[fix], side)
    assert end == pytest.approx(exact, abs=1e-12)
    # the same point, asked for the other side: not on it
    assert np.isnan(_vm_model_end(phi, ll, g, H, pinned, fix, target, phi_hat[fix], -side))
    # a point whose model is further than the acceptance from the cut-off
    far = phi_hat + (phi - phi_hat) * 0.8
    ll, g, H = _quadratic_point(far, phi_hat, info, ll_hat)
    assert abs(ll - target) > _VM_ACCEPT
    assert np.isnan(_vm_model_end(far, ll, g, H, pinned, fix, target, phi_hat[fix], side))
    # a nuisance coordinate held on the box edge: no model end
    ll, g, H = _quadratic_point(phi, phi_hat, info, ll_hat)
    held = np.array([True, False, False])
    assert np.isnan(_vm_model_end(phi, ll, g, H, held, fix, target, phi_hat[fix], side))


def test_a_level_stops_the_climb_once_reached_and_a_level_out_of_reach_does_not():
    """maximize's level (``known`` of one float): a caller that only needs to know that the
    maximum lies above a level (bursty_limit_end's check (i)) gets a point at or above it as
    soon as the climb reaches it, in fewer steps and not marked converged; a level above the
    maximum changes nothing."""
    from telegraph.kernels.models import MODEL_TELEGRAPH
    from telegraph.kernels.optimize import maximize, search_box

    rng = np.random.default_rng(3)
    x = rng.poisson(40.0 * rng.beta(0.8, 2.5, 800))
    hist = count_histograms(x[:, None])
    gene = gene_bins(*sort_bins(hist.values, hist.weights, hist.groups), hist.capture)
    ll = _loglik(hist)
    eye = np.eye(3)
    free = np.ones(3, np.bool_)
    lo, hi = np.empty(3), np.empty(3)
    search_box(TARGET_LOG_A, lo, hi)
    start = np.array([2.0, 2.0, 2.0])

    def climb(known):
        theta = start.copy()
        out = maximize(MODEL_TELEGRAPH, gene, theta, eye, eye, free, lo, hi,
                       200, np.zeros(11), known, np.empty((0, 3)), False, 1e-9,
                       np.empty(0), np.empty((0, 3)))
        return out, theta

    (ll_max, conv, it_full), th_max = climb(np.empty(0))
    assert conv and ll_max == pytest.approx(ll(th_max), abs=1e-9)
    assert ll_max - ll(start) > 50.0                    # a long climb from the start
    level = ll_max - 10.0
    (ll_l, conv_l, it_l), th_l = climb(np.full(1, level))
    assert ll_l >= level and ll_l == pytest.approx(ll(th_l), abs=1e-9)
    assert not conv_l and it_l < it_full
    (ll_h, conv_h, it_h), th_h = climb(np.full(1, ll_max + 1.0))
    assert conv_h and it_h == it_full and ll_h == ll_max
    np.testing.assert_array_equal(th_h, th_max)
    # a start already above the level: no step at all
    (ll_s, conv_s, it_s), th_s = climb(np.full(1, ll(start) - 1.0))
    assert it_s == 0 and ll_s == pytest.approx(ll(start), abs=1e-9)


def test_negative_binomial_end_by_newton_is_the_brute_force_profile_end():
    """The bursty limit's profile ends (bursty_limit_end, limit_union_ends) come from
    Venzon and Moolgavkar's iteration on the negative binomial (_negbinom_end_vm): with
    per-cell capture, both coordinates and both sides, the end is where scipy's nbinom
    profile (maximised over the other coordinate by minimize_scalar) has dropped by exactly
    chi2_1(0.95)/2, to 1e-7 nats, and negbinom_profile_bound returns that end. The
    iteration also gives the profile there and its maximiser (bursty_limit_end uses both
    instead of maximising again): scipy's, to 1e-7 nats and 1e-3 in the free coordinate."""
    from telegraph.kernels.profile import _negbinom_end_vm, negbinom_profile_bound

    rng = np.random.default_rng(12)
    n = 700
    cap = np.clip(rng.lognormal(np.log(0.3), 0.35, n), 0.02, 1.0)
    x = rng.poisson(cap * rng.gamma(0.9, 40.0, n))
    hist = count_histograms(x[:, None], capture=cap)
    v, w, gr = sort_bins(hist.values, hist.weights, hist.groups)
    gene = gene_bins(v, w, gr, hist.capture)
    s = hist.capture[gr]

    def nb_ll(la, lbeta):
        return float(np.sum(w * stats.nbinom.logpmf(v, np.exp(la), 1.0 / (1.0 + s * np.exp(lbeta)))))

    best = optimize.minimize(lambda z: -nb_ll(*z), [0.0, 3.0], method="Nelder-Mead",
                             options={"xatol": 1e-11, "fatol": 1e-12, "maxiter": 5000})
    theta = np.array([best.x[0], best.x[1], 0.0])
    ll_max = -best.fun
    buf = np.zeros(11)
    for fix in (0, 1):
        def profile(psi, fix=fix):
            f = (lambda u: -nb_ll(psi, u)) if fix == 0 else (lambda u: -nb_ll(u, psi))
            res = optimize.minimize_scalar(f, bounds=(theta[1 - fix] - 6, theta[1 - fix] + 6),
                                           method="bounded", options={"xatol": 1e-11})
            return -res.fun, res.x
        for side in (-1.0, 1.0):
            th = np.empty(3)
            end, ll_end = _negbinom_end_vm(gene, theta, ll_max - DROP, fix, side, buf, th)
            assert np.isfinite(end) and side * (end - theta[fix]) > 0.1
            ll_brute, free_brute = profile(end)
            assert ll_max - ll_brute == pytest.approx(DROP, abs=1e-7), (fix, side)
            assert ll_end == pytest.approx(ll_brute, abs=1e-7), (fix, side)
            assert th[fix] == end and th[1 - fix] == pytest.approx(free_brute, abs=1e-3)
            assert negbinom_profile_bound(gene, theta, ll_max, fix, side, DROP,
                                          100, buf) == end
    # a cut-off above the maximum has no end: NaN (the caller's bracketing decides)
    assert np.all(np.isnan(_negbinom_end_vm(gene, theta, ll_max + 1.0, 0, 1.0, buf,
                                            np.empty(3))))


@pytest.mark.parametrize("nb_max, nb_at_estimate, searched, near_end", [
    (-0.5, None, False, False),    # the estimate between the maximum and the end: inside
    (0.5, -0.5, True, False),      # on the other side, the profile there above the cut-off
    (0.5, -3.0, True, True),       # ... below it: the near end must be shown crossed
])
def test_bursty_end_check_i_asks_the_negative_binomial_only_where_unimodality_does_not_answer(
        monkeypatch, nb_max, nb_at_estimate, searched, near_end):
    """bursty_limit_end's check (i): is the estimate inside the negative binomial's
    interval? Where it lies between that profile's maximum and the end just found, it is
    (the profile is unimodal and at the cut-off at the end): no search. Elsewhere the
    profile is maximised at the estimate, and where it is below the cut-off there the
    telegraph profile must be shown above it at the negative binomial's near end. The
    end's own point gives the profile at the end (no second maximisation). The laws are
    stubbed: burst frequency, side +1, estimate at log a = 0, the end at 2."""
    pm = profile_module
    end, near = 2.0, 0.2
    calls = {"nb_point": [], "nb_bound": [], "tg_point_stops": []}

    def end_vm(gene, theta_nb, cut, fix, side, buf, th):
        th[:] = theta_nb
        th[fix] = end
        return end, cut

    def nb_point(gene, th, fix, psi, max_iter, buf):
        calls["nb_point"].append(psi)
        return nb_at_estimate

    def nb_bound(gene, theta_nb, ll_hat, fix, side, drop, max_iter, buf):
        calls["nb_bound"].append(side)
        return near if side < 0 else end

    def tg_eval(gene, th, want_info, g, H, buf):
        g[:] = [0.0, 1.0, 1.0]                     # still rising along the ridge at the edge
        return -1.0

    def tg_point(gene, th, target, psi, max_iter, buf, stop, slope):
        calls["tg_point_stops"].append(stop)
        return stop + 1.0 if np.isfinite(stop) else -DROP - 1.0

    def tg_walk(gene, th, target, psi_from, psi, max_iter, buf, n0, stop, n1, slope):
        return -DROP - 1.0

    for name, fake in (("_negbinom_end_vm", end_vm), ("_negbinom_profile_point", nb_point),
                       ("negbinom_profile_bound", nb_bound), ("telegraph_eval", tg_eval),
                       ("_profile_point", tg_point), ("_profile_walk", tg_walk)):
        monkeypatch.setattr(pm, name, fake)
    theta_hat = np.array([0.0, LOG_HI, 3.0])
    theta_nb = np.array([nb_max, 1.0, 0.0])
    psi, best = pm.bursty_limit_end.py_func(None, theta_hat, 0.0, TARGET_LOG_A, 1.0, DROP,
                                            theta_nb, -0.5, 100, np.zeros(11))
    assert psi == end and best == -DROP - 1.0
    assert calls["nb_point"] == ([0.0] if searched else [])       # only ever at the estimate
    assert calls["nb_bound"] == ([-1.0] if near_end else [])
    assert len([s for s in calls["tg_point_stops"] if np.isfinite(s)]) == int(near_end)


CUT = -DROP    # the cut-off of the stubbed laws below: ll_hat 0, the drop DROP


@pytest.mark.parametrize("edge, walk, walk_at_edge, full, accepted, best", [
    (CUT + 0.5, None, False, None, False, CUT + 0.5),        # the edge's climb above the limit
    (CUT - 0.3, CUT - 1.0, False, None, True, CUT - 0.3),    # the continuation below the edge's
    (CUT - 0.3, CUT - 0.1, False, CUT + 0.2, False, CUT + 0.2),  # above it, inside the box:
    (CUT - 0.3, CUT - 0.1, False, CUT - 0.05, True, CUT - 0.05),  # ... climbed to its end
    (CUT - 0.3, CUT - 0.3 + 1e-12, True, None, True, CUT - 0.3 + 1e-12),  # the edge's point
])
def test_bursty_end_check_ii_compares_the_telegraph_profile_there_with_the_limit(
        monkeypatch, edge, walk, walk_at_edge, full, accepted, best):
    """bursty_limit_end's check (ii): the end on the bursty ridge stands only where the
    telegraph profile at it is no higher than the negative binomial's (the cut-off there):
    climbed from the box edge next to the limit's point, and by a continuation from the
    optimum (three Newton steps per point); a continuation above the edge's climb and away
    from its point heads for a maximum inside the box and is climbed to its end; one above
    it by rounding at the edge's point is not climbed again. Otherwise (NaN, the highest
    telegraph value seen) and the caller searches. Laws stubbed as in the test of check
    (i): burst frequency, side +1, the estimate inside the negative binomial's interval;
    the telegraph climbs return the values of the parameters."""
    pm = profile_module
    end = 2.0
    calls = {"edge": 0, "walk": 0, "full": 0}

    def end_vm(gene, theta_nb, cut, fix, side, buf, th):
        th[:] = theta_nb
        th[fix] = end
        return end, cut

    def tg_eval(gene, th, want_info, g, H, buf):
        g[:] = [0.0, 1.0, 1.0]                     # still rising along the ridge at the edge
        return -1.0

    def tg_point(gene, th, target, psi, max_iter, buf, stop, slope):
        assert psi == end and not np.isfinite(stop)
        if th[1] == LOG_HI:                        # from the box edge next to the limit
            calls["edge"] += 1
            return edge
        calls["full"] += 1
        return full

    def tg_walk(gene, th, target, psi_from, psi, max_iter, buf, n0, stop, n1, slope):
        assert psi_from == 0.0 and psi == end and n0 == n1 == pm._EDGE_GUARD_ITER
        calls["walk"] += 1
        # where the continuation stops: the edge's point, or a point inside the box
        th[:] = [end, LOG_HI - 0.01, 1.0 + LOG_HI] if walk_at_edge else [end, 0.5, 2.0]
        return walk

    for name, fake in (("_negbinom_end_vm", end_vm), ("telegraph_eval", tg_eval),
                       ("_profile_point", tg_point), ("_profile_walk", tg_walk)):
        monkeypatch.setattr(pm, name, fake)
    theta_hat = np.array([0.0, 1.0, 3.0])
    theta_nb = np.array([-0.5, 1.0, 0.0])
    psi, got = pm.bursty_limit_end.py_func(None, theta_hat, 0.0, TARGET_LOG_A, 1.0, DROP,
                                           theta_nb, -0.5, 100, np.zeros(11))
    assert (psi == end) if accepted else np.isnan(psi)
    assert got == best
    assert calls["edge"] == 1
    assert calls["walk"] == (0 if walk is None else 1)
    assert calls["full"] == (0 if full is None else 1)


def test_limit_union_ends_make_a_side_unbounded_before_any_search():
    """widen_near_limits applies the limit models' ends computed first
    (limit_union_ends): a side they make unbounded becomes +-inf even where no
    search ran (NaN there), a finite union end only moves a searched end
    outwards, and a failed (NaN) end with a finite union end stays NaN."""
    from telegraph.kernels.profile import unbounded_by_union, widen_near_limits

    union = np.array([-np.inf, np.nan, 0.5, 2.0, np.nan, np.inf, np.nan, np.nan])
    ci = np.array([np.nan, 1.0, 1.0, np.nan, -1.0, np.nan, -2.0, 3.0])
    assert unbounded_by_union(union, 0) and unbounded_by_union(union, 5)
    assert not unbounded_by_union(union, 2) and not unbounded_by_union(union, 3)
    widen_near_limits(ci, union)
    np.testing.assert_array_equal(ci, [-np.inf, 1.0, 0.5, np.nan, -1.0, np.inf, -2.0, 3.0])
