"""The labelled (new, old) law after a metabolic-labelling pulse.

telegraph.labelled is checked against the independent master equation of
(promoter, new, old) in tests/reference_labelled.py (GTH stationary start,
uniformization over the pulse, explicit capture and misclassification sums;
its derivatives by complex steps), against exact identities (normalisation,
zero-mean score, the information identity), the one-species Poisson-Beta law
of new + old, the short- and long-pulse limits, the histogram evaluation the
fitter calls, and the Gillespie simulation of the labelled experiment.

Accuracy required (issue 15): |log P - log P_ref| <= 1e-6 wherever
log P_ref > -50. The cases here keep the reference small (counts below ~110);
benchmarks/bench_labelled.py covers the box (k_on, k_off in [1e-2, 1e2] k_deg,
k_deg t_label in [0.05, 20], mean total up to a few hundred).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import expm_multiply
from scipy.stats import chi2

sys.path.insert(0, str(Path(__file__).parent))
import reference_labelled as RL  # noqa: E402

import telegraph as tg  # noqa: E402
from telegraph import study  # noqa: E402
from telegraph.inputs import check_detection, check_t_label  # noqa: E402
from telegraph.labelled import (labelled_fisher_information,  # noqa: E402
                                labelled_histogram_loglik)

LOGP_TOL = 1e-6

# (k_on, k_off, k_syn, k_deg [per hour], t_label [hours], capture, detection):
# the corners of the box in k_on/k_deg, k_off/k_deg in {0.01, 1, 100} and
# k_deg t_label in {0.05, 1, 20}, with and without capture and misclassification
CASES = [
    (0.002, 0.002, 6.0, 0.2, 5.0, 1.0, 1.0),     # slow switching (bimodal), tau = 1
    (0.005, 50.0, 30.0, 0.5, 0.1, 0.5, 0.8),     # rare short bursts, tau = 0.05
    (20.0, 0.2, 4.0, 0.2, 100.0, 1.0, 0.9),      # mostly on, tau = 20
    (100.0, 100.0, 30.0, 1.0, 1.0, 0.3, 0.7),    # fast switching (Poisson-like)
    (0.3, 3.0, 20.0, 0.25, 4.0, 0.4, 0.85),      # a typical bursty gene, tau = 1
]


def _grid(box):
    return np.meshgrid(np.arange(box + 1), np.arange(box + 1), indexing="ij")


@pytest.mark.parametrize("case", CASES)
def test_logpmf_matches_reference(case):
    kon, koff, ksyn, kdeg, t, c, pi = case
    box = RL.box_size(ksyn, kdeg)
    ref, lost = RL.log_table(kon, koff, ksyn, kdeg, t, c, pi, box=box)
    assert abs(lost) < 1e-9       # 1 - sum P: rounding over the series
    nn, mm = _grid(box)
    lp = tg.labelled_logpmf(nn, mm, kon, koff, ksyn, kdeg, t_label=t, detection=pi, capture=c)
    keep = ref > -50
    assert keep.sum() > 50
    assert np.abs(lp[keep] - ref[keep]).max() < LOGP_TOL
    # and where the reference is tiny, ours is tiny too
    assert np.all(lp[ref < -60] < -55)


def test_reference_agrees_with_expm_multiply():
    """The reference's uniformization is the matrix exponential (checked on
    the bulk, where expm_multiply's absolute accuracy is enough)."""
    kon, koff, ksyn, kdeg, t = 0.4, 1.5, 12.0, 1.0, 0.7
    box = 40
    Q, _ = RL.pulse_generator(kon, koff, ksyn, kdeg, box, box)
    v0 = np.zeros((2, box + 1, box + 1))
    v0[:, 0, :] = RL.stationary(kon, koff, ksyn, kdeg, box)
    v = expm_multiply(sp.csc_matrix(Q) * t, v0.ravel()).reshape(v0.shape).sum(axis=0)
    P, _ = RL.pulse_law(kon, koff, ksyn, kdeg, t, box, box)
    assert np.abs(P - v).max() < 1e-12


def test_score_matches_reference_complex_step():
    kon, koff, ksyn, kdeg, t, c, pi = 0.3, 1.2, 10.0, 0.5, 1.5, 0.6, 0.8
    box = RL.box_size(ksyn, kdeg)
    ref = RL.score_table(kon, koff, ksyn, kdeg, t, c, pi, box=box)
    lref, _ = RL.log_table(kon, koff, ksyn, kdeg, t, c, pi, box=box)
    nn, mm = _grid(box)
    s = tg.labelled_score(nn, mm, kon, koff, ksyn, kdeg, t_label=t, detection=pi, capture=c)
    keep = lref > -30
    rates = np.array([kon, koff, ksyn, kdeg])
    err = np.abs((s[keep] - ref[keep]) * rates).max(axis=0)
    size = np.abs(ref[keep] * rates).max(axis=0)
    assert np.all(err <= 1e-8 * size)


@pytest.mark.parametrize("c,pi", [(1.0, 1.0), (0.4, 0.7)])
def test_total_is_the_poisson_beta_law(c, pi):
    """new + old is the stationary one-species law (misclassification only
    moves molecules between the two)."""
    kon, koff, ksyn, kdeg, t = 0.5, 2.0, 60.0, 0.3, 2.0
    box = 80
    nn, mm = _grid(box)
    P = tg.labelled_pmf(nn, mm, kon, koff, ksyn, kdeg, t_label=t, detection=pi, capture=c)
    tot = np.bincount((nn + mm).ravel(), weights=P.ravel())[:box + 1]
    lpb = tg.logpmf(np.arange(box + 1), kon, koff, ksyn, kdeg, capture=c)
    keep = lpb > -40
    assert np.abs(np.log(tot[keep]) - lpb[keep]).max() < 1e-9


def test_short_and_long_pulse_limits():
    kon, koff, ksyn, kdeg = 0.5, 2.0, 30.0, 0.5
    n = np.arange(40)
    pb = tg.logpmf(n, kon, koff, ksyn, kdeg)
    # t -> 0: nothing is new, old is the stationary law
    lp = tg.labelled_logpmf(0, n, kon, koff, ksyn, kdeg, t_label=1e-9)
    assert np.abs(lp - pb).max() < 1e-6
    assert tg.labelled_logpmf(1, 3, kon, koff, ksyn, kdeg, t_label=1e-9) < -15
    # t -> inf (80 lifetimes): everything is new
    lp = tg.labelled_logpmf(n, 0, kon, koff, ksyn, kdeg, t_label=160.0)
    assert np.abs(lp - pb).max() < 1e-9
    assert tg.labelled_logpmf(3, 1, kon, koff, ksyn, kdeg, t_label=160.0) < -30


def _table(kon, koff, ksyn, kdeg, t, c, pi, box, fn):
    nn, mm = _grid(box)
    return fn(nn, mm, kon, koff, ksyn, kdeg, t_label=t, detection=pi, capture=c)


@pytest.mark.parametrize("case", [CASES[0], CASES[3], (0.3, 1.2, 20.0, 0.5, 1.5, 0.6, 0.8)])
def test_normalisation_score_mean_zero_information_identity(case):
    kon, koff, ksyn, kdeg, t, c, pi = case
    box = RL.box_size(ksyn * c, kdeg)
    nn, mm = _grid(box)
    keep = nn + mm <= box
    args = (nn[keep], mm[keep], kon, koff, ksyn, kdeg)
    kw = dict(t_label=t, detection=pi, capture=c)
    P = tg.labelled_pmf(*args, **kw)
    S = tg.labelled_score(*args, **kw)
    I = tg.labelled_information(*args, **kw)
    assert abs(P.sum() - 1) < 1e-12
    r = np.array([kon, koff, ksyn, kdeg])
    Sl = S * r                                     # log-rate units
    assert np.abs(P @ Sl).max() < 1e-10 * max(1.0, np.sqrt(P @ (Sl ** 2)).max())
    outer = np.einsum("i,ip,iq->pq", P, S, S)
    expected = np.einsum("i,ipq->pq", P, I)
    scale = np.sqrt(np.outer(np.diag(outer), np.diag(outer)))
    assert np.abs((outer - expected) / scale).max() < 1e-9
    fisher = labelled_fisher_information(kon, koff, ksyn, kdeg, t_label=t, detection=pi,
                                         capture=c)
    assert np.abs((fisher - outer) / scale).max() < 1e-8


def test_information_is_minus_the_score_derivative():
    kon, koff, ksyn, kdeg, t, c, pi = 0.3, 1.2, 20.0, 0.5, 1.5, 0.6, 0.8
    n = np.array([0, 3, 10, 1, 25])
    m = np.array([0, 7, 2, 15, 4])
    r = np.array([kon, koff, ksyn, kdeg])
    I = tg.labelled_information(n, m, *r, t_label=t, detection=pi, capture=c)
    for p in range(4):
        h = 1e-5 * r[p]
        up, dn = r.copy(), r.copy()
        up[p] += h
        dn[p] -= h
        d = (tg.labelled_score(n, m, *up, t_label=t, detection=pi, capture=c)
             - tg.labelled_score(n, m, *dn, t_label=t, detection=pi, capture=c)) / (2 * h)
        assert np.allclose(-I[:, :, p], d, rtol=1e-6, atol=1e-7 * np.abs(d).max())


def test_histogram_evaluation_is_the_sum_over_cells():
    """Per-group pulse lengths, capture and detection; the gene's totals equal
    the sums of the pointwise functions."""
    rng = np.random.default_rng(3)
    kon, koff, ksyn, kdeg = 0.4, 1.5, 25.0, 0.3
    t_g = np.array([1.0, 4.0, 4.0])
    c_g = np.array([0.5, 0.5, 0.2])
    pi_g = np.array([0.9, 0.9, 0.7])
    m = 60
    groups = rng.integers(0, 3, m)
    new = rng.integers(0, 12, m)
    old = rng.integers(0, 20, m)
    w = rng.integers(1, 5, m).astype(float)
    ll, g, I = labelled_histogram_loglik(new, old, w, kon, koff, ksyn, kdeg, t_label=t_g,
                                         capture=c_g, detection=pi_g, groups=groups,
                                         info=True)
    kw = dict(t_label=t_g[groups], detection=pi_g[groups], capture=c_g[groups])
    args = (new, old, kon, koff, ksyn, kdeg)
    assert ll == pytest.approx(w @ tg.labelled_logpmf(*args, **kw), rel=1e-12)
    assert np.allclose(g, w @ tg.labelled_score(*args, **kw), rtol=1e-10)
    assert np.allclose(I, np.einsum("i,ipq->pq", w, tg.labelled_information(*args, **kw)),
                       rtol=1e-10)
    ll1, g1 = labelled_histogram_loglik(new, old, w, kon, koff, ksyn, kdeg, t_label=2.0)
    assert ll1 == pytest.approx(w @ tg.labelled_logpmf(*args, t_label=2.0), rel=1e-12)
    with pytest.raises(ValueError, match="groups"):
        labelled_histogram_loglik(new, old, w, kon, koff, ksyn, kdeg, t_label=t_g,
                                  groups=groups + 1)


def test_broadcasting_and_invalid_input():
    lp = tg.labelled_logpmf(np.arange(3)[:, None], np.arange(4), 0.5, 2.0, 30.0, 0.2,
                            t_label=[[1.0], [2.0], [3.0]])
    assert lp.shape == (3, 4) and np.all(np.isfinite(lp))
    assert isinstance(tg.labelled_logpmf(1, 2, 0.5, 2.0, 30.0, 0.2, t_label=1.0), float)
    assert tg.labelled_score(1, 2, 0.5, 2.0, 30.0, 0.2, t_label=1.0).shape == (4,)
    assert tg.labelled_information([1, 2], 2, 0.5, 2.0, 30.0, 0.2,
                                   t_label=1.0).shape == (2, 4, 4)
    bad = dict(k_on=[0.5, -1, 0.5, 0.5, 0.5, 0.5], k_deg=[0.2, 0.2, 0.0, 0.2, 0.2, 0.2],
               t_label=[1, 1, 1, 0, 1, 1], detection=[1, 1, 1, 1, 1.5, 1],
               capture=[1, 1, 1, 1, 1, 0])
    lp = tg.labelled_logpmf(1, 2, bad["k_on"], 2.0, 30.0, bad["k_deg"], t_label=bad["t_label"],
                            detection=bad["detection"], capture=bad["capture"])
    assert np.isfinite(lp[0]) and np.all(np.isnan(lp[1:]))
    assert tg.labelled_logpmf(-1, 2, 0.5, 2.0, 30.0, 0.2, t_label=1.0) == -np.inf
    assert tg.labelled_logpmf(1.5, 2, 0.5, 2.0, 30.0, 0.2, t_label=1.0) == -np.inf
    assert np.isnan(tg.labelled_logpmf(np.nan, 2, 0.5, 2.0, 30.0, 0.2, t_label=1.0))
    assert np.all(np.isnan(tg.labelled_score(-1, 2, 0.5, 2.0, 30.0, 0.2, t_label=1.0)))
    # a transient law beyond the work limit is refused (NaN), not computed for hours
    assert np.isnan(tg.labelled_logpmf(1, 2, 0.5, 2.0, 1e7, 1.0, t_label=20.0))
    ll, g = labelled_histogram_loglik([1], [2], [1.0], 0.5, 2.0, 1e7, 1.0, t_label=20.0)
    assert np.isnan(ll) and np.all(np.isnan(g))
    with pytest.raises(ValueError, match="t_label"):
        check_t_label([1.0, -2.0])
    with pytest.raises(ValueError, match="detection"):
        check_detection(0.0)
    with pytest.raises(ValueError, match="k_deg"):
        labelled_fisher_information(0.5, 2.0, 30.0, 0.0, t_label=1.0)


def _chi_square(counts, logp):
    """Pearson statistic over classes expecting >= 5 cells (the rest pooled)."""
    n = counts.sum()
    e = n * np.exp(logp)
    order = np.argsort(-e)
    keep = order[e[order] >= 5]
    rest = np.setdiff1d(np.arange(e.size), keep)
    obs = np.append(counts[keep], counts[rest].sum() + (n - counts.sum()))
    exp = np.append(e[keep], n - e[keep].sum())
    return ((obs - exp) ** 2 / exp).sum(), obs.size - 1


def test_ssa_matches_the_law_in_distribution():
    """Gillespie paths of the labelled experiment against labelled_pmf, with two
    pulse lengths, per-cell capture and misclassification."""
    kon, koff, ksyn, kdeg = 0.3, 1.0, 12.0, 0.35
    n_cells = 6000
    rng = np.random.default_rng(0)
    t = np.where(np.arange(n_cells) % 2 == 0, 1.0, 5.0)
    cap = np.where(rng.random(n_cells) < 0.5, 0.5, 0.8)
    det = np.full(n_cells, 0.85)
    rates = {"k_on": np.array([kon]), "k_off": np.array([koff]), "k_syn": np.array([ksyn]),
             "k_deg": np.array([kdeg])}
    new, old = study.sample_ssa_labelled(rates, t, cap, det, seed=7)
    box = 60
    nn, mm = _grid(box)
    pvals = []
    for tt in (1.0, 5.0):
        for cc in (0.5, 0.8):
            sel = (t == tt) & (cap == cc)
            hist = np.zeros((box + 1, box + 1))
            np.add.at(hist, (np.minimum(new[sel, 0], box), np.minimum(old[sel, 0], box)), 1)
            lp = tg.labelled_logpmf(nn, mm, kon, koff, ksyn, kdeg, t_label=tt, detection=0.85,
                                    capture=cc)
            x2, df = _chi_square(hist.ravel(), lp.ravel())
            pvals.append(chi2.sf(x2, df))
    # four independent tests at a Bonferroni level of 1e-3
    assert min(pvals) > 1e-3 / 4, pvals


def test_simulate_labelled_anndata():
    ad = tg.simulate_labelled_anndata(400, 4, t_label=[1.0, 3.0], k_deg=[0.1, 0.2, 0.4, 0.8],
                                      capture=0.5, detection=0.9, seed=2)
    assert ad.shape == (400, 4)
    assert set(ad.layers) == {"new", "old", "total"}
    assert (ad.layers["total"] != ad.layers["new"] + ad.layers["old"]).nnz == 0
    assert sorted(np.unique(ad.obs["t_label"])) == [1.0, 3.0]
    assert (ad.obs["t_label"] == 1.0).sum() == 200
    assert np.allclose(ad.obs["detection"], 0.9) and np.allclose(ad.obs["capture"], 0.5)
    assert np.allclose(ad.var["true_half_life"], math.log(2) / np.array([0.1, 0.2, 0.4, 0.8]))
    # longer pulses label more of a gene's molecules
    new = ad.layers["new"].toarray().sum(axis=1)
    tot = ad.layers["total"].toarray().sum(axis=1)
    frac = [new[ad.obs["t_label"] == t].sum() / tot[ad.obs["t_label"] == t].sum()
            for t in (1.0, 3.0)]
    assert frac[0] < frac[1]
    again = tg.simulate_labelled_anndata(400, 4, t_label=[1.0, 3.0],
                                         k_deg=[0.1, 0.2, 0.4, 0.8], capture=0.5,
                                         detection=0.9, seed=2)
    assert (again.layers["new"] != ad.layers["new"]).nnz == 0
    with pytest.raises(ValueError, match="t_label"):
        tg.simulate_labelled_anndata(10, 2, t_label=0.0)
