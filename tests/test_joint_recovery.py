"""Recovery study of the two-species fit on a small setting, and the bias of the
bursty-limit model on the same data.

Genes simulated exactly (Gillespie) in three regimes, rates in units of
k_splice: bursty, balanced, and slow switching (k_on + k_off < k_deg, long
bursts: a bimodal joint law the bursty limit cannot represent). The full model
must recover burst frequency, burst size and k_deg / k_splice, with 95% profile
intervals that cover the truth about 95% of the time; the bursty-limit model
(``model="bursty"``, the boundary model Monod fits) must be visibly off under
slow switching. The full study with more genes, per-cell capture and figures
is benchmarks/joint_recovery.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import telegraph as tg

# (k_on, k_off, k_syn, k_deg) per unit time with k_splice = 1
REGIMES = {
    "bursty": (0.3, 3.0, 15.0, 0.5),
    "balanced": (1.0, 1.0, 6.0, 1.0),
    "slow switching": (0.1, 0.2, 6.0, 1.0),
}
PER_REGIME = 3
N_CELLS = 400
QUANTITIES = ("burst_frequency", "burst_size", "k_deg")


@pytest.fixture(scope="module")
def study():
    out = {}
    for i, (name, (k_on, k_off, k_syn, k_deg)) in enumerate(REGIMES.items()):
        ad = tg.simulate_anndata(N_CELLS, PER_REGIME, k_on=[k_on] * PER_REGIME,
                                 k_off=[k_off] * PER_REGIME, k_syn=[k_syn] * PER_REGIME,
                                 k_deg=[k_deg] * PER_REGIME, splicing=1.0, capture=1.0,
                                 seed=40 + i)
        res = tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"], n_jobs=1,
                     progress=False)
        truth = {"burst_frequency": k_on, "burst_size": k_syn / k_off, "k_deg": k_deg}
        out[name] = (ad, res, truth)
    return out


def _log10_error(res, truth, q):
    return np.log10(res[q].to_numpy(float) / truth[q])


@pytest.mark.slow
def test_recovery_and_coverage_across_regimes(study):
    covered = []
    for name, (_, res, truth) in study.items():
        assert res["converged"].all(), name
        for q in QUANTITIES:
            err = np.abs(_log10_error(res, truth, q))
            # 400 cells: burst frequency and size within a factor ~1.6, k_deg within 12%
            tol = 0.05 if q == "k_deg" else 0.2
            assert np.median(err) < tol, (name, q, err)
            lo = res[f"{q}_ci_low"].to_numpy(float)
            hi = res[f"{q}_ci_high"].to_numpy(float)
            covered.append((lo <= truth[q]) & (truth[q] <= hi))
    covered = np.concatenate(covered)
    # 27 intervals at 95%: fewer than 23 covering has probability ~0.01
    assert covered.sum() >= 23, covered


@pytest.mark.slow
def test_bursty_limit_is_biased_under_slow_switching(study):
    ad, full, truth = study["slow switching"]
    bur = tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"], model="bursty",
                 interval="wald", n_jobs=1, progress=False)
    assert (full["regime"].astype(str) == "telegraph").all()
    # the full model is far more likely on the same data
    assert (full["loglik_telegraph"] - bur["loglik_bursty"] > 10).all()
    e_full = np.median(np.abs(_log10_error(full, truth, "burst_size")))
    e_bur = np.median(np.abs(_log10_error(bur, truth, "burst_size")))
    assert e_bur > 0.25 and e_bur > 2 * e_full, (e_full, e_bur)
    # and it overstates burst frequency to make up the mean
    assert np.median(_log10_error(bur, truth, "burst_frequency")) > 0.2
