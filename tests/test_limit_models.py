"""The limit models' histogram log-likelihoods (negative binomial, zero-inflated
Poisson) against scipy.stats, their gradients and information against finite
differences, whatever the order of the bins: the count terms are shared along
ascending counts, so sorted, shuffled and descending bins must agree."""

import numpy as np
import pytest
from scipy import stats

from telegraph.kernels.models import MODEL_NEGBINOM, MODEL_ZIP, evaluate, gene_bins


def _histogram(rng, n_bins=300, n_groups=37, top=900):
    # counts with small steps (the direct sums) and gaps above 64 (the digamma
    # differences), each in several capture groups
    values = np.concatenate([np.arange(0, 80), rng.integers(80, top, n_bins - 80),
                             [top, top + 65, top + 200]]).astype(np.int64)
    groups = rng.integers(0, n_groups, values.size).astype(np.int64)
    weights = rng.uniform(0.5, 5.0, values.size)
    capture = rng.uniform(0.05, 1.0, n_groups)
    return values, weights, groups, capture


def _reference(model, values, weights, groups, capture, theta):
    s = capture[groups]
    if model == MODEL_NEGBINOM:
        a, beta = np.exp(theta[0]), np.exp(theta[1])
        lp = stats.nbinom.logpmf(values, a, 1.0 / (1.0 + s * beta))
    else:
        f, lam = 1.0 / (1.0 + np.exp(-theta[0])), np.exp(theta[1])
        lp = np.log(f) + stats.poisson.logpmf(values, s * lam)
        zero = values == 0
        lp[zero] = np.log(1.0 - f + f * np.exp(-s[zero] * lam))
    return float(np.sum(weights * lp))


def _eval(model, bins, theta, want_info=True):
    g = np.zeros(3)
    H = np.zeros((3, 3))
    ll = evaluate(model, gene_bins(*bins), np.asarray(theta, float), want_info, g, H,
                  np.zeros(11))
    return ll, g[:2].copy(), H[:2, :2].copy()


@pytest.mark.parametrize("model, theta", [(MODEL_NEGBINOM, (np.log(0.3), np.log(40.0), 0.0)),
                                          (MODEL_NEGBINOM, (np.log(7.0), np.log(3.0), 0.0)),
                                          (MODEL_ZIP, (0.4, np.log(300.0), 0.0))])
@pytest.mark.parametrize("order", ["sorted", "shuffled", "descending"])
@pytest.mark.parametrize("n_groups", [37, 1000])
def test_limit_model_matches_scipy_in_any_bin_order(model, theta, order, n_groups):
    # (37 groups: fewer than the bins, the terms of a group computed once per group; 1000:
    # more groups than bins, per bin)
    rng = np.random.default_rng(5)
    values, weights, groups, capture = _histogram(rng, n_groups=n_groups)
    o = {"sorted": np.lexsort((groups, values)), "shuffled": rng.permutation(values.size),
         "descending": np.lexsort((groups, values))[::-1]}[order]
    bins = (values[o].copy(), weights[o].copy(), groups[o].copy(), capture)
    ll, g, H = _eval(model, bins, theta)
    ref = _reference(model, *bins, np.asarray(theta))
    assert ll == pytest.approx(ref, rel=1e-11, abs=1e-8)
    # gradient and information by central differences of the reference
    h = 1e-5
    for j in range(2):
        tp = np.array(theta, float)
        tm = tp.copy()
        tp[j] += h
        tm[j] -= h
        fd = (_reference(model, *bins, tp) - _reference(model, *bins, tm)) / (2 * h)
        assert g[j] == pytest.approx(fd, rel=1e-6, abs=1e-6)
        gp = _eval(model, bins, tp)[1]
        gm = _eval(model, bins, tm)[1]
        fd_h = -(gp - gm) / (2 * h)
        np.testing.assert_allclose(H[j], fd_h, rtol=1e-5, atol=1e-5 * np.abs(H).max())
    # the information does not change the value or the gradient
    ll0, g0, _ = _eval(model, bins, theta, want_info=False)
    assert ll0 == ll
    np.testing.assert_array_equal(g0, g)


@pytest.mark.parametrize("model, theta", [(MODEL_NEGBINOM, (12.0, -8.0, 0.0)),     # a = 1.6e5
                                          (MODEL_NEGBINOM, (-25.0, 6.5, 0.0)),    # a = 1e-11
                                          (MODEL_NEGBINOM, (np.log(2.0), np.log(300.0), 0.0)),
                                          (MODEL_ZIP, (1.0, np.log(2500.0), 0.0))])
def test_running_count_terms_agree_with_direct_ones_over_long_runs(model, theta):
    """Ascending bins continue the count terms from the last count's (at most
    RUN_GAP counts up: a running product of ratios, folded into its logarithm
    before it leaves [1e-200, 1e200], and running digamma and trigamma sums);
    descending bins compute each count's directly. Over every count 0..3,999
    and gaps of up to 2 x RUN_GAP, at shapes a = e^12 and e^-25: value,
    gradient and information agree to 1e-10, the value with scipy.stats to
    1e-11."""
    from telegraph.kernels.models import RUN_GAP
    rng = np.random.default_rng(8)
    values = np.unique(np.concatenate([np.arange(4000), 4000 + np.cumsum(
        rng.integers(1, 2 * RUN_GAP + 1, 200))])).astype(np.int64)
    weights = rng.uniform(0.5, 3.0, values.size)
    groups = np.zeros(values.size, np.int64)
    capture = np.ones(1)
    up = _eval(model, (values, weights, groups, capture), theta)
    o = values.size - 1 - np.arange(values.size)
    down = _eval(model, (values[o].copy(), weights[o].copy(), groups, capture), theta)
    assert up[0] == pytest.approx(down[0], rel=1e-10)
    np.testing.assert_allclose(up[1], down[1], rtol=1e-10, atol=1e-10 * np.abs(down[1]).max())
    np.testing.assert_allclose(up[2], down[2], rtol=1e-10, atol=1e-10 * np.abs(down[2]).max())
    assert up[0] == pytest.approx(_reference(model, values, weights, groups, capture,
                                             np.asarray(theta)), rel=1e-11)


@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_negative_binomial_near_the_poisson_limit_matches_mpmath(order):
    """At a = e^25 (the NB fit runs towards the box edge e^30 on Poisson-like
    genes) the log-gamma difference lgamma(n + a) - lgamma(a) is formed
    without cancelling two values of ~1.7e12 (whose rounding alone is ~1e-4
    nats per count): the value over counts 0..399 (ascending: the running
    terms; descending: each count's own) against mpmath to 1e-12 relative."""
    import mpmath as mp
    mp.mp.dps = 40
    theta = (25.0, -20.0, 0.0)
    values = np.concatenate([np.arange(100, 300), np.arange(300, 700, 2)]).astype(np.int64)
    if order == "descending":
        values = values[::-1].copy()
    weights = np.linspace(0.5, 2.0, values.size)
    ll = _eval(MODEL_NEGBINOM, (values, weights, np.zeros(values.size, np.int64), np.ones(1)),
               theta)[0]
    a, beta = mp.e ** mp.mpf(25), mp.e ** mp.mpf(-20)
    ref = mp.mpf(0)
    for n, w in zip(values, weights):
        n = int(n)
        ref += mp.mpf(float(w)) * (mp.loggamma(n + a) - mp.loggamma(a) - mp.loggamma(n + 1)
                                   + n * mp.log(beta) - (n + a) * mp.log1p(beta))
    assert ll == pytest.approx(float(ref), rel=1e-12)


def _cells_by_law_pmf(law, par, capture, gw, glo, ghi, lo, n_single, groups):
    """The expected single-count cells (and their derivatives) of ``groups``,
    summed from law_pmf per (group, count): the reference of the tabulations."""
    from telegraph.kernels import gof
    d = np.zeros(3)
    buf = np.zeros(11)
    ref = np.zeros(n_single)
    dref = np.zeros((n_single, 3))
    for g in groups:
        for j in range(n_single):
            u = lo + j
            if glo[g] <= u <= ghi[g]:
                ref[j] += gw[g] * gof.law_pmf(law, u, par, capture[g], d, buf)
                dref[j] += gw[g] * d
    return ref, dref


@pytest.mark.parametrize("law, par", [("negbinom", (0.4, 30.0, 0.0)), ("negbinom", (6.0, 2.0, 0.0)),
                                      ("zip", (0.7, 45.0, 0.0)), ("poisson", (12.0, 0.0, 0.0)),
                                      ("negbinom", (900.0, 1.0, 0.0)), ("poisson", (900.0, 0.0, 0.0))])
def test_goodness_of_fit_cells_of_a_limit_law_match_the_law_count_by_count(law, par):
    """The expected cells of the goodness of fit, computed across the groups
    count by count (each group's probability carried from count to count by its
    ratio), against law_pmf per (group, count) (itself checked against
    scipy.stats here), over counts from 0 and from 37 (the digamma difference
    of the negative binomial starts off the grid's first count); at rates of
    hundreds, where a group's probability underflows below its mean and is taken
    afresh until it is representable."""
    from telegraph.kernels import gof
    code = {"negbinom": gof.LAW_NEGBINOM, "zip": gof.LAW_ZIP, "poisson": gof.LAW_POISSON}[law]
    par = np.asarray(par, float)
    rng = np.random.default_rng(3)
    G = 23
    capture = rng.uniform(0.05, 1.0, G)
    gw = rng.uniform(1.0, 50.0, G)
    gw[4] = 0.0
    glo = rng.integers(0, 60, G).astype(float)
    glo[:3] = 0.0   # zero counts in some groups
    ghi = glo + rng.integers(0, 400, G)
    d = np.zeros(3)
    buf = np.zeros(11)
    for lo in (0.0, 37.0):
        n_single = 420
        expct = np.zeros(n_single)
        dexp = np.zeros((n_single, 3))
        n_done = gof._limit_law_singles(code, par, capture, gw, glo, ghi, lo, n_single, expct,
                                        dexp, -np.inf)
        assert n_done == n_single
        ref, dref = _cells_by_law_pmf(code, par, capture, gw, glo, ghi, lo, n_single,
                                      np.nonzero(gw)[0])
        # (at a = 900 law_pmf's lgamma(n + a) - lgamma(a), about 10^4 in size, carries
        # some 1e-12 of rounding itself)
        rtol = 1e-11 if par[0] > 100 else 1e-12
        np.testing.assert_allclose(expct, ref, rtol=rtol, atol=1e-300)
        np.testing.assert_allclose(dexp, dref, rtol=1e-10, atol=1e-13 * np.abs(dref).max())
    # law_pmf itself against scipy.stats at one capture
    s = 0.3
    n = np.arange(0, 200)
    p = np.array([gof.law_pmf(code, float(k), par, s, d, buf) for k in n])
    if law == "negbinom":
        q = stats.nbinom.pmf(n, par[0], 1.0 / (1.0 + s * par[1]))
    elif law == "zip":
        q = par[0] * stats.poisson.pmf(n, s * par[1]) + (1.0 - par[0]) * (n == 0)
    else:
        q = stats.poisson.pmf(n, s * par[0])
    np.testing.assert_allclose(p, q, rtol=1e-11, atol=1e-300)


@pytest.mark.parametrize("a, b", [(0.05, 0.3), (0.9, 10.0), (4.0, 2.5), (30.0, 300.0)])
def test_goodness_of_fit_cells_of_the_telegraph_law_at_small_rates_match_the_series(a, b):
    """The Poisson-Beta law's expected cells at small rates (the series shared
    by the capture groups through their Poisson weights) against law_pmf per
    (group, count) (pb_eval's series, checked against mpmath in
    test_stationary), at every count; groups above the rate limit are left to
    the caller (not marked done, nothing added)."""
    from telegraph.kernels import gof
    rng = np.random.default_rng(8)
    G = 31
    lam = 40.0
    capture = np.exp(rng.uniform(np.log(1e-3), np.log(0.6), G))   # x from 0.04 to 24
    gw = rng.uniform(1.0, 50.0, G)
    gw[2] = 0.0
    par = np.array([a, b, lam])
    everywhere = np.zeros(G), np.full(G, np.inf)
    for lo in (0.0, 2.0, 9.0):
        n_single = 130
        expct = np.zeros(n_single)
        dexp = np.zeros((n_single, 3))
        done = np.zeros(G, np.bool_)
        gof._pb_small_rate_singles(par, capture, gw, lo, n_single, expct, dexp, done, 0)
        small = (capture * lam <= gof._X_SHARED_SERIES) & (gw > 0)
        np.testing.assert_array_equal(done, small)
        assert 0 < small.sum() < G - 1
        ref, dref = _cells_by_law_pmf(gof.LAW_POISSON_BETA, par, capture, gw, *everywhere, lo,
                                      n_single, np.nonzero(small)[0])
        assert ref[-1] < 1e-30 * ref.max()    # the counts cover the laws' mass
        # (cells past the largest rate's _pb_count_cap, below 1e-31 of its mass, are left out)
        np.testing.assert_allclose(expct, ref, rtol=1e-11, atol=1e-31 * ref.max())
        assert np.all(expct[ref > 1e-31 * ref.max()] > 0)
        for i in range(3):
            np.testing.assert_allclose(dexp[:, i], dref[:, i], rtol=1e-9,
                                       atol=1e-12 * np.abs(dref[:, i]).max())


def test_the_poisson_beta_goodness_of_fit_evaluates_each_group_past_all_of_its_mass():
    """The largest count at which the goodness of fit evaluates a capture group's
    Poisson-Beta law (_pb_count_cap, x + 15 sqrt(x) + 12 at the group's rate x) leaves out
    less than 1e-30 of the law's mass at every rate: the Poisson law at rate x, whose upper
    tail bounds the mixture's (x p <= x), against scipy.stats; and the law itself (mpmath's
    Poisson-Beta pmf summed past the cap) for a law with its mass pressed against x."""
    from telegraph.kernels import gof
    for x in np.geomspace(1e-4, 1e8, 481):
        cap = gof._pb_count_cap(x)
        assert stats.poisson.logsf(cap, x) < np.log(1e-30), (x, cap)
    # a law whose p sits near 1 (b small): its mass beyond the cap, summed term by term
    import mpmath as mp
    a, b, x = 30.0, 0.2, 60.0
    cap = gof._pb_count_cap(x)

    def pmf(n):
        return (mp.power(x, n) / mp.factorial(n) * mp.beta(a + n, b) / mp.beta(a, b)
                * mp.hyp1f1(a + n, a + b + n, -x))
    beyond = mp.nsum(pmf, [cap + 1, mp.inf])
    assert beyond < 1e-30


@pytest.mark.parametrize("law, par", [("poisson", (740.0, 0.0, 0.0)),
                                      ("negbinom", (740.0, 1.718, 0.0))])
def test_a_limit_laws_cells_from_an_underflowing_start_keep_their_precision(law, par):
    """A group whose probability at the grid's first count is subnormal (a Poisson rate of
    740, or a negative binomial with a log(1 + beta) = 740: P(0) ~ 1e-321, a few
    significant digits): carried from there by its ratio, the next counts would keep that
    relative error (about 1e-3) up to the next fresh value, 32 counts on; taken afresh
    until it is a normal number, they match law_pmf."""
    from telegraph.kernels import gof
    code = {"negbinom": gof.LAW_NEGBINOM, "poisson": gof.LAW_POISSON}[law]
    par = np.asarray(par, float)
    capture, gw = np.ones(1), np.ones(1)
    glo, ghi = np.zeros(1), np.full(1, 1500.0)
    n_single = 1500
    expct = np.zeros(n_single)
    dexp = np.zeros((n_single, 3))
    gof._limit_law_singles(code, par, capture, gw, glo, ghi, 0.0, n_single, expct, dexp,
                           -np.inf)
    ref, dref = _cells_by_law_pmf(code, par, capture, gw, glo, ghi, 0.0, n_single, [0])
    assert 0 < ref[0] < 1e-300 and ref[1] / ref[0] > 100    # subnormal at 0, rising fast
    normal = ref > 1e-300
    np.testing.assert_allclose(expct[normal], ref[normal], rtol=1e-11)
    np.testing.assert_allclose(dexp[normal], dref[normal], rtol=1e-9,
                               atol=1e-13 * np.abs(dref).max())


def _gof_reference(law, values, weights, groups, capture, par, min_expected):
    """Pearson's statistic, its classes and the pooled data's information per
    cell, from law_pmf at every count 0 .. 4000 of every group (no grid, no
    bound, no stop): adjacent counts pooled until a class expects at least
    min_expected cells and the rest does too, the last class taking the rest
    (docs/maths.md, "Goodness of fit")."""
    from telegraph.kernels import gof
    npar = gof.N_PARAMS[law]
    gw = np.bincount(groups, weights=weights, minlength=capture.shape[0])
    total = weights.sum()
    n = np.arange(4001)
    E = np.zeros(n.size)
    dE = np.zeros((n.size, 3))
    d, buf = np.zeros(3), np.zeros(11)
    for g in np.nonzero(gw)[0]:
        for k in n:
            E[k] += gw[g] * gof.law_pmf(law, float(k), par, capture[g], d, buf)
            dE[k] += gw[g] * d
    assert total - E.sum() < 1e-9 * total      # the counts hold the laws' mass
    O = np.bincount(values, weights=weights, minlength=n.size)
    x2, K, Ig = 0.0, 0, np.zeros((3, 3))
    e_acc = o_acc = e_used = o_used = 0.0
    d_acc, d_used = np.zeros(3), np.zeros(3)
    for k in n:
        e_acc += E[k]
        o_acc += O[k]
        d_acc += dE[k]
        if e_acc >= min_expected and total - e_used - e_acc >= min_expected:
            x2 += (o_acc - e_acc) ** 2 / e_acc
            K += 1
            Ig += np.outer(d_acc, d_acc) / (e_acc * total)
            d_used += d_acc
            e_used += e_acc
            o_used += o_acc
            e_acc = o_acc = 0.0
            d_acc = np.zeros(3)
    e_last, o_last = total - e_used, total - o_used
    x2 += (o_last - e_last) ** 2 / e_last
    Ig += np.outer(d_used, d_used) / (e_last * total)
    Ig[npar:] = 0.0
    Ig[:, npar:] = 0.0
    return x2, K + 1, Ig


@pytest.mark.parametrize("law, par, n_cells", [
    ("negbinom", (0.35, 40.0, 0.0), 100), ("negbinom", (0.35, 40.0, 0.0), 3000),
    ("negbinom", (2.0, 6.0, 0.0), 60), ("zip", (0.4, 30.0, 0.0), 100),
    ("poisson", (25.0, 0.0, 0.0), 100),
    ("telegraph", (0.3, 2.0, 150.0), 100), ("telegraph", (0.3, 2.0, 150.0), 3000),
    ("telegraph", (3.0, 1.5, 40.0), 100), ("telegraph", (0.6, 9.0, 20.0), 200)])
def test_goodness_of_fit_needs_no_cells_where_no_class_forms(law, par, n_cells):
    """The statistic, its classes and the pooled information of a gene with a
    capture group per cell (heavy tails among them), against the pooling of
    law_pmf's values at every count with no stop (:func:`_gof_reference`):
    the tabulation stops where the cells not yet expected fall below
    min_expected (for the Poisson-Beta law, first up to a bound on every
    group's tail), beyond which no class forms."""
    from telegraph.kernels import gof
    code = {"negbinom": gof.LAW_NEGBINOM, "zip": gof.LAW_ZIP, "poisson": gof.LAW_POISSON,
            "telegraph": gof.LAW_POISSON_BETA}[law]
    par = np.asarray(par, float)
    rng = np.random.default_rng(n_cells)
    G = min(n_cells, 90)
    capture = np.sort(np.clip(rng.lognormal(np.log(0.3), 0.35, G), 0.02, 1.0))
    groups = rng.integers(0, G, n_cells)
    s = capture[groups]
    if law == "negbinom":
        counts = rng.negative_binomial(par[0], 1.0 / (1.0 + s * par[1]))
    elif law == "zip":
        counts = np.where(rng.random(n_cells) < par[0], rng.poisson(s * par[1]), 0)
    elif law == "poisson":
        counts = rng.poisson(s * par[0])
    else:
        counts = rng.poisson(s * par[2] * rng.beta(par[0], par[1], n_cells))
    key = np.stack([counts, groups], axis=1)
    uniq, w = np.unique(key, axis=0, return_counts=True)
    order = np.argsort(uniq[:, 0], kind="stable")
    v, gr, w = uniq[order, 0].astype(np.int64), uniq[order, 1].astype(np.int64), \
        w[order].astype(float)
    Ig = np.zeros((3, 3))
    x2, k, ok = gof.pearson_gof(code, v, w, gr, capture, G, par, 5.0, Ig)
    assert ok
    rx2, rk, rIg = _gof_reference(code, v, w, gr, capture, par, 5.0)
    assert k == rk and k >= 3
    assert x2 == pytest.approx(rx2, rel=1e-9)
    np.testing.assert_allclose(Ig, rIg, rtol=1e-8, atol=1e-12 * np.abs(rIg).max())


def test_a_limit_laws_cells_stop_where_the_rest_expects_too_few():
    """_limit_law_singles returns the first count after which the cells not yet
    expected are fewer than ``rest``, its cells up to there those of law_pmf;
    with rest = -inf it tabulates every count."""
    from telegraph.kernels import gof
    par = np.array([0.4, 30.0, 0.0])
    capture = np.array([0.2, 0.3, 0.5])
    gw = np.array([30.0, 50.0, 20.0])
    glo, ghi = np.zeros(3), np.full(3, 3000.0)
    n_single = 3000
    ref, _ = _cells_by_law_pmf(gof.LAW_NEGBINOM, par, capture, gw, glo, ghi, 0.0, n_single,
                               [0, 1, 2])
    left = gw.sum() - np.cumsum(ref)
    for rest in (5.0, 0.5, 0.01):
        expct = np.zeros(n_single)
        dexp = np.zeros((n_single, 3))
        n_done = gof._limit_law_singles(gof.LAW_NEGBINOM, par, capture, gw, glo, ghi, 0.0,
                                        n_single, expct, dexp, rest)
        assert n_done == np.argmax(left < rest) + 1 < n_single
        np.testing.assert_allclose(expct[:n_done], ref[:n_done], rtol=1e-12)
        assert not expct[n_done:].any()


def test_the_poisson_beta_tail_count_bounds_every_groups_tail():
    """_pb_tail_count: above it each group's law holds less than min_expected /
    (2 total) of its mass (law_pmf summed below it, 1 minus that), over laws
    from bursty to near-Poisson and rates from 0.5 to 2000."""
    from telegraph.kernels import gof
    d, buf = np.zeros(3), np.zeros(11)
    rng = np.random.default_rng(5)
    for _ in range(40):
        a, b = np.exp(rng.uniform(np.log(0.05), np.log(20.0), 2))
        lam = np.exp(rng.uniform(np.log(0.5), np.log(2000.0)))
        par = np.array([a, b, lam])
        capture = np.array([0.3, 1.0])
        gw = np.array([40.0, 60.0])
        for total in (100.0, 10000.0):
            top = gof._pb_tail_count(par, capture, gw * total / 100.0, total, 5.0)
            q = 0.5 * 5.0 / total
            for s in capture:
                below = sum(gof.law_pmf(gof.LAW_POISSON_BETA, float(k), par, s, d, buf)
                            for k in range(int(top)))
                assert 1.0 - below < q, (a, b, lam, s, total)
