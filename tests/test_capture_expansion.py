"""The expansion in log capture (docs/maths.md, "Fitting", *The expansion in log capture*):
one bin's terms, gradient and information against mpmath."""

import math

import mpmath as mp
import numpy as np
import pytest

from telegraph.kernels.poisson_beta import _add_bin_spread

mp.mp.dps = 40


def _log_pb(n, a, b, x):
    return mp.log(x ** n / mp.factorial(n) * mp.beta(a + n, b) / mp.beta(a, b)
                  * mp.hyp1f1(a + n, a + b + n, -x))


def _bin_total(n, w, s1, s2, s3, s4, s, a, b, lam):
    """w log P(n) + s1 (n - m1) + s2/2 (sigma^2 - m1) + s3/6 (-m1 + 3 sigma^2 - kappa3)
    + s4/24 (-m1 + 7 sigma^2 - 6 kappa3 + kappa4) at x = s lam, in mpmath (m_j =
    E[Lambda^j | n]; sigma^2, kappa3, kappa4 its cumulants)."""
    x = s * lam
    l0, l1, l2, l3, l4 = (_log_pb(n + j, a, b, x) for j in range(5))
    m1 = (n + 1) * mp.exp(l1 - l0)
    m2 = (n + 1) * (n + 2) * mp.exp(l2 - l0)
    m3 = (n + 1) * (n + 2) * (n + 3) * mp.exp(l3 - l0)
    m4 = (n + 1) * (n + 2) * (n + 3) * (n + 4) * mp.exp(l4 - l0)
    var = m2 - m1 * m1
    k3 = m3 - 3 * m1 * m2 + 2 * m1 ** 3
    k4 = m4 - 4 * m1 * m3 - 3 * m2 ** 2 + 12 * m1 ** 2 * m2 - 6 * m1 ** 4
    return (w * l0 + s1 * (n - m1) + s2 / 2 * (var - m1) + s3 / 6 * (-m1 + 3 * var - k3)
            + s4 / 24 * (-m1 + 7 * var - 6 * k3 + k4))


def _scratch():
    return (np.empty(5), np.empty((5, 3)), np.zeros((5, 3, 3)), np.zeros(10),
            np.full(5, -1, np.int64))


CASES = [  # n, w, s1, s2, s3, s4, s, a, b, lam
    (0, 7.0, 0.4, 0.09, -0.02, 0.004, 0.3, 0.4, 3.0, 40.0),
    (5, 3.0, -0.2, 0.05, 0.01, 0.002, 0.25, 1.3, 8.0, 120.0),
    (37, 2.0, 0.15, 0.03, 0.004, 0.0008, 0.4, 2.5, 20.0, 400.0),
    (2, 1.0, -0.1, 0.02, -0.003, 0.0005, 0.2, 0.08, 0.6, 60.0),   # b < 1: mass near p = 1
    (150, 4.0, 0.3, 0.1, 0.01, 0.003, 0.5, 3.0, 4.0, 600.0),     # a count in the hundreds
]


@pytest.mark.parametrize("n,s,a,b,lam", [(0, 0.3, 0.4, 3.0, 40.0), (37, 0.4, 2.5, 20.0, 400.0),
                                         (2, 0.2, 0.08, 0.6, 60.0), (120, 0.5, 3.0, 4.0, 300.0)])
def test_the_expansion_is_the_taylor_series_in_log_capture(n, s, a, b, lam):
    """With w = 0 and one unit sum, a bin adds d^k/du^k log PB(n; e^u lam) / k! at u = log s,
    k = 1 .. 4: against mpmath's numerical derivatives of the law itself (not of the formula
    above)."""
    u0 = mp.log(mp.mpf(s) * lam)
    for k in range(4):
        sums = [0.0, 0.0, 0.0, 0.0]
        sums[k] = 1.0
        out = np.zeros(10)
        _add_bin_spread(float(n), 0.0, *sums, s, a, b, lam, False, np.zeros(11), out,
                        *_scratch())
        want = mp.diff(lambda u: _log_pb(n, mp.mpf(a), mp.mpf(b), mp.exp(u)), u0, k + 1)
        assert out[0] == pytest.approx(float(want / mp.factorial(k + 1)), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_one_bin_with_spread_matches_mpmath(case):
    n, w, s1, s2, s3, s4, s, a, b, lam = case
    out = np.zeros(10)
    buf = np.zeros(11)
    _add_bin_spread(float(n), w, s1, s2, s3, s4, s, a, b, lam, True, buf, out, *_scratch())
    f = lambda A, B, Lm: _bin_total(n, w, s1, s2, s3, s4, s, A, B, Lm)  # noqa: E731
    p = (mp.mpf(a), mp.mpf(b), mp.mpf(lam))
    # kappa4 from the raw moments loses ~(n+4)^4 times the ratios' relative rounding (~1e-12
    # from the series): 7e-8 nats at n = 150 with these sums, 3e-7 per cell at n = 300
    rounding = 2e-12 * (n + 4) ** 4 * abs(s4) / 24
    assert out[0] == pytest.approx(float(f(*p)), rel=1e-11, abs=1e-11 + rounding)
    for k in range(3):
        order = [0, 0, 0]
        order[k] = 1
        d = float(mp.diff(f, p, tuple(order)))
        assert out[1 + k] == pytest.approx(d, rel=1e-8, abs=1e-9)
    idx = 4
    for i in range(3):
        for j in range(i, 3):
            order = [0, 0, 0]
            order[i] += 1
            order[j] += 1
            d2 = float(mp.diff(f, p, tuple(order)))
            assert out[idx] == pytest.approx(-d2, rel=1e-7, abs=1e-8), (i, j)
            idx += 1


def _spread_histogram(seed, n_cells, groups, lam_scale):
    """Bins (value, group) of one gene with per-bin spread sums of fine captures."""
    rng = np.random.default_rng(seed)
    capture = np.array(sorted(rng.uniform(0.15, 0.6, groups)))
    g = rng.integers(0, groups, n_cells)
    u_cell = np.log(capture[g]) + rng.uniform(-0.12, 0.12, n_cells)
    p = rng.beta(0.8, 6.0, n_cells)
    n = rng.poisson(np.exp(u_cell) * lam_scale * p)
    keys = {}
    for c in range(n_cells):
        k = (int(g[c]), int(n[c]))
        d = u_cell[c] - np.log(capture[g[c]])
        w, s1, s2, s3, s4 = keys.get(k, (0.0, 0.0, 0.0, 0.0, 0.0))
        keys[k] = (w + 1.0, s1 + d, s2 + d * d, s3 + d ** 3, s4 + d ** 4)
    items = sorted(keys.items())
    groups_ = np.array([k[0] for k, _ in items], np.int64)
    values = np.array([k[1] for k, _ in items], np.int64)
    weights = np.array([v[0] for _, v in items])
    spread = np.array([[v[1], v[2], v[3], v[4]] for _, v in items])
    return values, weights, groups_, capture, spread


@pytest.mark.parametrize("groups,lam", [(1, 60.0), (1, 400.0), (4, 90.0), (6, 300.0)])
@pytest.mark.parametrize("info", [True, False])
@pytest.mark.parametrize("a", [0.8, 0.05])   # a < 0.1: the recurrence normalised by anchors
def test_histogram_with_spread_equals_the_sum_of_its_bins(groups, lam, info, a):
    # histogram_eval's paths (the recurrence in n with a third level, per-bin series)
    # against the sum of _add_bin_spread over the bins (checked against mpmath above)
    from telegraph.kernels.poisson_beta import histogram_eval_bins
    values, weights, gr, capture, spread = _spread_histogram(3, 1500, groups, lam)
    b = 6.0
    out = np.zeros(10)
    histogram_eval_bins(values, weights, gr, capture, spread, a, b, lam, info, out)
    ref = np.zeros(10)
    buf = np.zeros(11)
    for i in range(values.shape[0]):
        _add_bin_spread(float(values[i]), weights[i], *spread[i], capture[gr[i]], a, b, lam,
                        info, buf, ref, *_scratch())
    k = 10 if info else 4
    np.testing.assert_allclose(out[:k], ref[:k], rtol=1e-9, atol=1e-8 * np.abs(ref[:k]).max())
    # without the spread: the plain histogram, and the spread terms are not negligible
    plain = np.zeros(10)
    histogram_eval_bins(values, weights, gr, capture, np.empty((0, 4)), a, b, lam, info, plain)
    assert abs(plain[0] - out[0]) > 1e-3


def _many_groups(seed, n_cells, lam_scale, a=0.8, b=6.0):
    """One gene's histogram over ~40 fine capture groups (log-normal capture around 0.3)."""
    from telegraph.histogram import count_histograms
    rng = np.random.default_rng(seed)
    cap = np.clip(rng.lognormal(np.log(0.3), 0.35, n_cells), 0.02, 1.0)
    counts = rng.poisson(cap * lam_scale * rng.beta(a, b, n_cells))[:, None]
    h = count_histograms(counts, capture=cap)
    return h.values, h.weights, h.groups, h.capture


@pytest.mark.parametrize("lam,a,b", [(40.0, 0.8, 6.0), (400.0, 2.0, 15.0), (3000.0, 0.3, 30.0)])
def test_many_groups_are_evaluated_coarse_and_expanded(lam, a, b):
    from telegraph.kernels.poisson_beta import exact_histogram_eval, histogram_eval
    values, weights, gr, capture = _many_groups(11, 3000, lam, a, b)
    assert capture.shape[0] >= 30
    out = np.zeros(10)
    histogram_eval(values, weights, gr, capture, a, b, lam, True, out)
    exact = np.zeros(10)
    exact_histogram_eval(values, weights, gr, capture, a, b, lam, True, exact)
    # the expansion's error (third order about groups within a factor 1.4): not zero (the
    # merge did happen), and in a difference of log-likelihoods between points ~3 standard
    # errors apart (what estimates and intervals use) far below the 1.92 nats of an interval
    assert 1e-9 < abs(out[0] - exact[0]) < 0.5
    o1 = np.zeros(10)
    e1 = np.zeros(10)
    th1 = (a * 1.15, b * 1.1, lam * 1.05)
    histogram_eval(values, weights, gr, capture, *th1, False, o1)
    exact_histogram_eval(values, weights, gr, capture, *th1, False, e1)
    assert abs((o1[0] - out[0]) - (e1[0] - exact[0])) < 0.02
    np.testing.assert_allclose(out[1:4], exact[1:4], rtol=0.02, atol=0.05)
    # gradient and information are those of the expanded objective (central differences)
    th = np.array([a, b, lam])
    for k in range(3):
        h = 1e-5 * th[k]
        up, dn = th.copy(), th.copy()
        up[k] += h
        dn[k] -= h
        o1 = np.zeros(10)
        o2 = np.zeros(10)
        histogram_eval(values, weights, gr, capture, *up, True, o1)
        histogram_eval(values, weights, gr, capture, *dn, True, o2)
        assert out[1 + k] == pytest.approx((o1[0] - o2[0]) / (2 * h), rel=1e-5, abs=1e-4)
        # information row k: minus the derivative of the gradient
        dg = -(o1[1:4] - o2[1:4]) / (2 * h)
        info = np.array([[out[4], out[5], out[6]], [out[5], out[7], out[8]],
                         [out[6], out[8], out[9]]])
        np.testing.assert_allclose(info[k], dg, rtol=1e-4, atol=1e-3 * np.abs(info).max())


def _coarse_by_the_rule(capture, values, weights):
    """The documented coarse groups (docs/maths.md, "Fitting"), written out plainly: cells of
    width w in log capture from the smallest value, w = log 1.4 when a count of the gene is
    above 300; else w = log 1.65, except for a gene of N cells with 300 <= N < 10,000, where
    w = log 1.65 (10,000 / N)^(1/5), at most log 2.2; each occupied cell's value is the
    geometric middle of its members' range."""
    n_cells = np.sum(weights)
    if np.max(values) > 300:
        w = np.log(1.4)
    elif 300 <= n_cells < 10_000:
        w = min(np.log(1.65) * (10_000 / n_cells) ** 0.2, np.log(2.2))
    else:
        w = np.log(1.65)
    u = np.log(capture)
    cell = np.floor((u - u.min()) / w).astype(int)
    middle = {c: 0.5 * (u[cell == c].min() + u[cell == c].max()) for c in np.unique(cell)}
    return np.array([middle[c] for c in cell])


@pytest.mark.parametrize("n_cells,widened", [(200, False), (400, True), (2000, True),
                                             (3000, True), (12000, False)])
def test_coarse_groups_widen_with_fewer_cells(n_cells, widened):
    """The merge's coarse groups are the documented ones at every number of cells: as wide as
    for 10,000 cells below 300 cells and from 10,000 on, wider in between (N w^5 held), so
    fewer there than cells of width log 1.65 would make of the same capture values."""
    from telegraph.kernels.poisson_beta import _merge_capture
    values, weights, gr, capture = _many_groups(3, n_cells, 40.0)
    assert values.max() <= 300 and np.sum(weights) == n_cells
    cc = _merge_capture(values, weights, gr, capture)[4]
    uG = _coarse_by_the_rule(capture, values, weights)
    np.testing.assert_allclose(np.sort(np.log(cc)), np.unique(uG), rtol=0, atol=1e-12)
    u = np.log(capture)
    at_165 = np.unique(np.floor((u - u.min()) / np.log(1.65))).shape[0]
    assert (cc.shape[0] < at_165) == widened


@pytest.mark.parametrize("order", ["as counted", "by value", "shuffled"])
@pytest.mark.parametrize("lam,a,b", [(40.0, 0.8, 6.0), (900.0, 1.5, 12.0)])
def test_many_groups_equal_the_expansion_written_out_bin_by_bin(lam, a, b, order):
    """histogram_eval on ~40 fine groups against the fourth-order expansion of every fine bin
    about its coarse group, summed bin by bin from the exact law at n .. n + 4 (pb_eval,
    itself checked against mpmath): the merge, its order and the coarse values. Bins in
    any order: ordered by value (as the fit orders them: the merge's counting sort on the
    coarse group) or not (its sort of the (coarse group, value) keys)."""
    from telegraph.kernels.models import sort_bins
    from telegraph.kernels.poisson_beta import histogram_eval
    values, weights, gr, capture = _many_groups(5, 2000, lam, a, b)
    if order == "shuffled":
        p = np.random.default_rng(1).permutation(values.shape[0])
        values, weights, gr = values[p].copy(), weights[p].copy(), gr[p].copy()
        assert (np.diff(values) < 0).any()
    elif order == "by value":
        values, weights, gr = sort_bins(values.astype(np.int64), weights.astype(float),
                                        gr.astype(np.int64))
        assert (np.diff(values) >= 0).all() and (np.diff(gr) < 0).any()
    uG = _coarse_by_the_rule(capture, values, weights)
    assert np.unique(uG).shape[0] < capture.shape[0] / 3
    want = _expansion_written_out(values, weights, gr, capture, uG, a, b, lam)
    out = np.zeros(10)
    histogram_eval(values, weights, gr, capture, a, b, lam, False, out)
    # (the cumulants' rounding, from the series here and the recurrence there: ~1e-9 nats
    # per cell at counts in the hundreds)
    assert out[0] == pytest.approx(want, rel=1e-9)


def _expansion_written_out(values, weights, gr, capture, uG, a, b, lam):
    """Sum over the fine bins of w [log P(n) + d (n - m1) + d^2/2 (sigma^2 - m1)
    + d^3/6 (-m1 + 3 sigma^2 - kappa3) + d^4/24 (-m1 + 7 sigma^2 - 6 kappa3 + kappa4)] at the
    coarse capture exp(uG), d = u - uG, from pb_eval at n .. n + 4; the third-order term only
    for counts up to 1,000, the fourth only up to 300 (their rounding)."""
    from telegraph.kernels.poisson_beta import pb_eval
    buf = np.zeros(11)
    want = 0.0
    for n, w, g in zip(values, weights, gr):
        x = np.exp(uG[g]) * lam
        logp = []
        for j in range(5):
            pb_eval(float(n + j), a, b, x, False, buf)
            logp.append(buf[0])
        m1 = (n + 1) * np.exp(logp[1] - logp[0])
        m2 = (n + 1) * (n + 2) * np.exp(logp[2] - logp[0])
        m3 = (n + 1) * (n + 2) * (n + 3) * np.exp(logp[3] - logp[0])
        m4 = (n + 1) * (n + 2) * (n + 3) * (n + 4) * np.exp(logp[4] - logp[0])
        var = m2 - m1 * m1
        k3 = m3 - 3 * m1 * m2 + 2 * m1 ** 3
        k4 = m4 - 4 * m1 * m3 - 3 * m2 ** 2 + 12 * m1 ** 2 * m2 - 6 * m1 ** 4
        d = np.log(capture[g]) - uG[g]
        t3 = d ** 3 / 6 * (-m1 + 3 * var - k3) if n <= 1000 else 0.0
        t4 = d ** 4 / 24 * (-m1 + 7 * var - 6 * k3 + k4) if n <= 300 else 0.0
        want += w * (logp[0] + d * (n - m1) + 0.5 * d * d * (var - m1) + t3 + t4)
    return want


@pytest.mark.parametrize("n_cells,lam,merged", [(3000, 40.0, True), (600, 3000.0, True),
                                                (500, 40.0, False)])
def test_a_gene_merged_once_evaluates_as_merging_at_every_evaluation(n_cells, lam, merged):
    """The fitters merge a gene's capture groups once (models.gene_bins) and evaluate the
    telegraph law on the merged bins at every parameter point; that must be what
    histogram_eval (merging at each call) gives, at every point, with and without the
    information, whether the merge happens (many groups) or not (one capture group)."""
    from telegraph.kernels.models import gene_bins, telegraph_eval
    from telegraph.kernels.poisson_beta import exact_histogram_eval, histogram_eval
    values, weights, gr, capture = _many_groups(5, n_cells, lam)
    if not merged:
        gr, capture = np.zeros_like(gr), np.array([0.3])
    gene = gene_bins(values, weights, gr, capture)
    for k in range(4):
        assert gene[k] is (values, weights, gr, capture)[k]   # the fine bins, as given
    assert (gene[8].shape[0] > 0) == merged
    assert (gene[4].shape[0] < values.shape[0]) == merged
    rng = np.random.default_rng(1)
    for _ in range(6):
        theta = rng.normal([0.0, 1.5, np.log(lam)], 1.0)
        a, b, lam_ = (math.exp(t) for t in theta)   # (as telegraph_eval takes them)
        for info in (True, False):
            want = np.zeros(10)
            histogram_eval(values, weights, gr, capture, a, b, lam_, info, want)
            g, H = np.zeros(3), np.zeros((3, 3))
            ll = telegraph_eval(gene, theta, info, g, H, np.zeros(11))
            assert ll == want[0]
            np.testing.assert_array_equal(g, want[1:4] * [a, b, lam_])
    if merged:   # (and the merge is not the exact evaluation)
        exact = np.zeros(10)
        exact_histogram_eval(values, weights, gr, capture, a, b, lam_, False, exact)
        assert exact[0] != want[0]


def test_a_high_count_gene_is_expanded_when_only_its_groups_halve():
    """Counts spread over hundreds (some above 300: the narrower coarse groups), ~15 cells per
    fine group: merging hardly reduces the bins, but it divides the groups, each of which the
    recurrence in n would run from above the largest count; histogram_eval expands it all the
    same (docs/maths.md, "Fitting")."""
    from telegraph.kernels.poisson_beta import _merge_capture, histogram_eval
    a, b, lam = 2.0, 13.0, 3000.0
    values, weights, gr, capture = _many_groups(9, 600, lam, a, b)
    k = _merge_capture(values, weights, gr, capture)[0]
    assert values.max() > 300
    assert 2 * k > values.shape[0] and capture.shape[0] >= 30   # bins do not halve
    uG = _coarse_by_the_rule(capture, values, weights)
    assert 2 * np.unique(uG).shape[0] <= capture.shape[0]        # groups do
    out = np.zeros(10)
    histogram_eval(values, weights, gr, capture, a, b, lam, False, out)
    want = _expansion_written_out(values, weights, gr, capture, uG, a, b, lam)
    # (the cumulants' rounding at counts in the hundreds: ~1e-8 nats per cell)
    assert out[0] == pytest.approx(want, rel=3e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_recurrence_with_spread_matches_the_series_on_random_histograms(seed):
    """histogram_eval_bins with a spread (the recurrence in n wherever it is cheaper, also for
    groups of one or two counts, counts far apart, spiky laws) against the sum of
    _add_bin_spread (the series at n .. n + 3) over random histograms: a stretch of thousands
    of unanchored steps, or the third cumulant of counts in the thousands, once put this off by
    up to 2 nats."""
    from telegraph.kernels.poisson_beta import histogram_eval_bins
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(120):
        n_groups = int(rng.integers(1, 6))
        capture = np.sort(rng.uniform(0.05, 1.0, n_groups))
        a, b, lam = 10 ** rng.uniform(-3, 2), 10 ** rng.uniform(-3, 3), 10 ** rng.uniform(-1, 4.5)
        rows = []
        for g in range(n_groups):
            nb = rng.integers(1, 4) if rng.random() < 0.5 else rng.integers(3, 20)
            mu = capture[g] * lam * a / (a + b)
            for v in np.unique(rng.poisson(mu * rng.gamma(1.0, 1.0, nb))):
                d = rng.uniform(-0.17, 0.17, int(rng.integers(1, 30)))
                rows.append((g, v, float(d.size), d.sum(), (d ** 2).sum(), (d ** 3).sum(),
                             (d ** 4).sum()))
        rows.sort()
        gr = np.array([r[0] for r in rows], np.int64)
        values = np.array([r[1] for r in rows], np.int64)
        weights = np.array([r[2] for r in rows])
        spread = np.array([r[3:] for r in rows])
        info = bool(rng.random() < 0.7)
        out = np.zeros(10)
        histogram_eval_bins(values, weights, gr, capture, spread, a, b, lam, info, out)
        ref = np.zeros(10)
        buf = np.zeros(11)
        for i in range(values.shape[0]):
            _add_bin_spread(float(values[i]), weights[i], *spread[i], capture[gr[i]], a, b, lam,
                            info, buf, ref, *_scratch())
        k = 10 if info else 4
        scale = np.abs(ref[:k]) + 1e-8 * np.abs(ref[:k]).max()
        worst = max(worst, float(np.max(np.abs(out[:k] - ref[:k]) / scale)))
    assert worst < 1e-4
