"""Labelled fits: tg.fit(old, new=, t_label=, detection=), tg.tl.fit(layer="old",
new_layer="new", t_label=...), ``telegraph fit --new-layer --t-label [--detection]``.

Statistical checks use data simulated exactly (Gillespie, tg.simulate_labelled_anndata)
with known kinetics and fixed seeds: absolute rates per hour and half-lives
recovered within tolerances from each fit's own intervals, and 95% profile
intervals covering the truth at a rate consistent with 95% given the number of
(gene, quantity) pairs. The fuller recovery study, the precision table against
t_label x k_deg and the speed figures are in benchmarks/bench_labelled_fit.py.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import telegraph as tg
from telegraph import cluster, labelfit
from telegraph.cli import main as cli_main
from telegraph.histogram import labelled_count_histograms
from telegraph.inputs import FitSettings, resolve_labelling

# per hour: a bursty short-lived gene, a balanced one, a long-lived bursty one,
# and one that is on most of the time (k_off < k_on)
KIN = dict(k_on=[0.5, 1.0, 0.3, 2.0], k_off=[3.0, 1.0, 3.0, 0.7], k_syn=[60.0, 20.0, 60.0, 8.0],
           k_deg=[1.0, 0.5, 0.15, 0.3])
PULSES = [1.0, 4.0]
DETECTION = 0.8


@pytest.fixture(scope="module")
def labelled():
    """A two-pulse time course with per-cell capture and detection < 1."""
    return tg.simulate_labelled_anndata(1000, 4, t_label=PULSES, detection=DETECTION,
                                        seed=11, **KIN)


@pytest.fixture(scope="module")
def fitted(labelled):
    ad = labelled
    return tg.fit(ad.layers["old"], new=ad.layers["new"], t_label=ad.obs["t_label"].to_numpy(),
                  detection=DETECTION, capture=ad.obs["capture"].to_numpy(),
                  genes=list(ad.var_names), n_jobs=1, progress=False)


# --------------------------------------------------------------------------- objective

def test_objective_is_the_sum_of_the_pointwise_law(labelled):
    """The fit's objective (histogram kernel, log-rates) equals the sum over cells of
    labelled_logpmf, its gradient theta * sum labelled_score and its information
    the log-scale transform of sum labelled_information: two independent code paths."""
    ad = labelled
    g = 1
    new = ad.layers["new"][:, g].toarray().ravel()
    old = ad.layers["old"][:, g].toarray().ravel()
    t = ad.obs["t_label"].to_numpy()
    c = ad.obs["capture"].to_numpy()
    lh = labelled_count_histograms(ad.layers["new"][:, [g]], ad.layers["old"][:, [g]],
                                   t_label=t, detection=np.full(ad.n_obs, DETECTION),
                                   capture=c, capture_rtol=0.0)
    f = labelfit.gene_objective(lh, 0)
    theta = np.array([0.8, 1.3, 18.0, 0.6])
    ll, grad, info = f(np.log(theta))
    kw = dict(t_label=t, detection=DETECTION, capture=c)
    lp = tg.labelled_logpmf(new, old, *theta, **kw)
    sc = tg.labelled_score(new, old, *theta, **kw).sum(axis=0)
    inf = tg.labelled_information(new, old, *theta, **kw).sum(axis=0)
    assert ll == pytest.approx(float(lp.sum()), rel=1e-9, abs=1e-7)
    np.testing.assert_allclose(grad, theta * sc, rtol=1e-7, atol=1e-6)
    expected = np.outer(theta, theta) * inf - np.diag(theta * sc)
    np.testing.assert_allclose(info, expected, rtol=1e-6, atol=1e-5)


# --------------------------------------------------------------------------- recovery

def test_absolute_rates_recovered_with_covering_intervals(labelled, fitted):
    var, res = labelled.var, fitted
    assert (res["regime"].astype(str) != "too_few_cells").all()
    assert res["converged"].all()
    assert list(res.index) == list(var.index)
    # k_deg and the half-life: per hour and hours, identified by the pulse
    truth = var["true_k_deg"].to_numpy()
    est = res["k_deg"].to_numpy()
    lo, hi = res["k_deg_ci_low"].to_numpy(), res["k_deg_ci_high"].to_numpy()
    se = (np.log(hi) - np.log(lo)) / (2 * 1.96)
    # within 3.5 of its own standard errors (a two-sided 5e-4 event per gene)
    assert np.all(np.abs(np.log(est / truth)) < 3.5 * se), (est, truth, se)
    assert np.all(se < 0.15)    # 1,000 cells, two pulses: k_deg within ~15%
    np.testing.assert_allclose(res["half_life"], np.log(2) / est)
    np.testing.assert_allclose(res["half_life_ci_low"], np.log(2) / hi)
    assert (res["k_deg_flag"].astype(str) == "identified").all()
    assert (res["pulse"].astype(str) == "informative").all()
    # coverage of the 95% intervals over every (gene, quantity) pair
    covered, n = 0, 0
    for q in ("burst_frequency", "burst_size", "k_deg", "k_off", "k_syn"):
        tq = var[f"true_{q}"].to_numpy()
        ok = np.isfinite(res[f"{q}_ci_low"].to_numpy())
        lo_q, hi_q = res[f"{q}_ci_low"].to_numpy()[ok], res[f"{q}_ci_high"].to_numpy()[ok]
        covered += int(np.sum((lo_q <= tq[ok]) & (tq[ok] <= hi_q)))
        n += int(ok.sum())
    # P(Binomial(n, 0.95) <= covered) must not be tiny (pairs within a gene are
    # correlated, so a generous level)
    assert stats.binom.cdf(covered, n, 0.95) > 1e-3, (covered, n)
    # a calibrated goodness of fit: no gene rejected at 1e-3 under its own law
    assert (res["gof_flag"].astype(str) == "ok").all()
    assert (res["gof_pval"] > 1e-3).all()


def test_time_unit_equivariance(labelled):
    """Pulse lengths in minutes instead of hours: every rate divided by 60, the
    half-life multiplied by 60, the log-likelihood unchanged."""
    ad = labelled[:, [0]]
    kw = dict(new=ad.layers["new"], detection=DETECTION, capture=ad.obs["capture"].to_numpy(),
              n_jobs=1, progress=False, interval="wald")
    t = ad.obs["t_label"].to_numpy()
    h = tg.fit(ad.layers["old"], t_label=t, **kw)
    m = tg.fit(ad.layers["old"], t_label=60.0 * t, **kw)
    for q in ("k_on", "k_off", "k_syn", "k_deg"):
        assert m[q].iloc[0] == pytest.approx(h[q].iloc[0] / 60.0, rel=2e-3)
    assert m["half_life"].iloc[0] == pytest.approx(60.0 * h["half_life"].iloc[0], rel=2e-3)
    assert m["loglik"].iloc[0] == pytest.approx(h["loglik"].iloc[0], abs=1e-3)
    assert m["burst_size"].iloc[0] == pytest.approx(h["burst_size"].iloc[0], rel=2e-3)


def test_one_pulse_per_cell_array_equals_number(labelled):
    ad = labelled[labelled.obs["t_label"] == 4.0, [1]]
    kw = dict(new=ad.layers["new"], capture=0.5, n_jobs=1, progress=False, interval="wald")
    a = tg.fit(ad.layers["old"], t_label=4.0, **kw)
    b = tg.fit(ad.layers["old"], t_label=np.full(ad.n_obs, 4.0), **kw)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["labelling"]["pulses_hours"] == [4.0]


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("t_label, message", [
    (0.0, "t_label must be a finite pulse length > 0"),
    (-1.0, "t_label must be a finite pulse length > 0"),
    (np.nan, "t_label must be a finite pulse length > 0"),
    ("pulse", "not a column of adata.obs"),
    ("cell_type", "must hold numbers"),
    (np.ones(3), "t_label has shape"),
])
def test_t_label_validated_once(t_label, message):
    obs = pd.DataFrame({"t_label": [1.0] * 5, "cell_type": ["a"] * 5})
    with pytest.raises((ValueError, KeyError), match=message):
        resolve_labelling(t_label, 1.0, n_cells=5, obs=obs)


@pytest.mark.parametrize("detection", [0.0, 1.5, np.nan, -0.2])
def test_detection_validated(detection):
    with pytest.raises(ValueError, match=r"detection must be a probability in \(0, 1\]"):
        resolve_labelling(1.0, detection, n_cells=5)


def test_too_many_pulse_lengths_refused():
    with pytest.raises(ValueError, match="round the pulse lengths"):
        resolve_labelling(np.linspace(1.0, 2.0, 100), 1.0, n_cells=100)


def test_fit_argument_errors():
    old = np.ones((20, 2))
    with pytest.raises(ValueError, match="new counts have shape"):
        tg.fit(old, new=np.ones((20, 3)), t_label=1.0)
    with pytest.raises(ValueError, match="t_label is required"):
        tg.fit(old, new=old)
    with pytest.raises(ValueError, match="t_label= needs new="):
        tg.fit(old, t_label=1.0)
    with pytest.raises(ValueError, match="k_deg cannot be given"):
        tg.fit(old, new=old, t_label=1.0, k_deg=1.0)
    with pytest.raises(ValueError, match="not both"):
        tg.fit(old, new=old, unspliced=old, t_label=1.0)
    with pytest.raises(ValueError, match="t_label must be a finite"):
        tg.fit(old, new=old, t_label=-2.0)


def test_tl_argument_errors(labelled):
    ad = labelled[:30, :1].copy()
    with pytest.raises(ValueError, match="is also layer="):
        tg.tl.fit(ad, layer="new", new_layer="new", t_label=1.0)
    with pytest.raises(ValueError, match="needs t_label"):
        tg.tl.fit(ad, layer="old", new_layer="new")
    with pytest.raises(KeyError, match="not a column of adata.obs"):
        tg.tl.fit(ad, layer="old", new_layer="new", t_label="pulse_hours")
    with pytest.raises(KeyError):
        tg.tl.fit(ad, layer="old", new_layer="newer", t_label=1.0)


# --------------------------------------------------------------------------- adapters

def test_tl_fit_and_cli_agree(labelled, tmp_path, capsys):
    """tl.fit with an obs column of pulse lengths, and the command line on the
    written file, give the same table; results land in var/uns."""
    ad = labelled[:400, :2].copy()
    tg.tl.fit(ad, layer="old", new_layer="new", t_label="t_label", detection="detection",
              capture="capture", n_jobs=1, progress=False, interval="wald")
    assert ad.uns["telegraph"]["new_layer"] == "new"
    assert ad.uns["telegraph"]["labelling"]["t_label"] == "obs:t_label"
    assert np.isfinite(ad.var["telegraph_half_life"]).all()
    path = tmp_path / "lab.h5ad"
    labelled[:400, :2].copy().write_h5ad(path)
    table = tmp_path / "out.csv"
    code = cli_main(["fit", str(path), "--layer", "old", "--new-layer", "new", "--t-label",
                     "t_label", "--detection", "detection", "--capture", "capture",
                     "--interval", "wald", "--table", str(table), "--jobs", "1",
                     "--no-progress"])
    assert code == 0
    out = pd.read_csv(table, index_col="gene")
    for q in ("k_on", "k_deg", "half_life", "k_deg_ci_high"):
        np.testing.assert_allclose(out[q], ad.var[f"telegraph_{q}"], rtol=1e-9)


@pytest.mark.parametrize("argv, message", [
    (["--t-label", "2"], "--t-label and --detection need --new-layer"),
    (["--new-layer", "new"], "--new-layer needs --t-label"),
    (["--new-layer", "new", "--t-label", "2", "--k-deg", "1"], "--k-deg cannot be combined"),
    (["--new-layer", "new", "--t-label", "pulse"], "neither a number nor a column"),
    (["--new-layer", "nascent", "--t-label", "2"], "nascent"),
    (["--new-layer", "new", "--t-label", "0"], "t_label must be a finite pulse length"),
    (["--new-layer", "new", "--t-label", "2", "--detection", "1.2"], "detection must be"),
])
def test_cli_errors(labelled, tmp_path, capsys, argv, message):
    path = tmp_path / "lab.h5ad"
    labelled[:20, :1].copy().write_h5ad(path)
    code = cli_main(["fit", str(path), "--layer", "old", *argv, "--no-progress"])
    assert code == 2
    assert message in capsys.readouterr().err


def test_bursty_and_flags_columns(fitted):
    assert set(fitted["regime"].astype(str)) <= set(labelfit.LABEL_REGIMES)
    assert set(fitted["pulse"].astype(str)) <= set(labelfit.PULSE_FLAGS)
    for col in ("k_on", "k_off", "k_syn", "k_deg", "half_life", "burst_frequency",
                "burst_size", "loglik", "gof_pval"):
        assert col in fitted
    assert fitted.attrs["settings"]["time_unit"] == "hour"
    # the half-life interval is the k_deg interval mapped through log 2 / k
    assert (fitted["half_life_ci_low"] <= fitted["half_life"]).all()
    assert (fitted["half_life"] <= fitted["half_life_ci_high"]).all()
    assert math.isclose(fitted.attrs["labelling"]["pulses_hours"][1], 4.0)


def test_histograms_on_dask_give_the_same_fit(labelled):
    ad = labelled[:300, :2]
    lh = labelled_count_histograms(ad.layers["new"], ad.layers["old"],
                                   t_label=ad.obs["t_label"].to_numpy(),
                                   detection=np.full(ad.n_obs, DETECTION))
    st = FitSettings(interval="wald", gof_min_expected=0.0)
    local = labelfit.fit_labelled_histograms(lh, settings=st, n_jobs=1, progress=False)
    with cluster.local_client(2, processes=False) as client:
        remote = labelfit.fit_labelled_histograms(lh, settings=st, client=client,
                                                  progress=False)
    np.testing.assert_allclose(remote["k_deg"], local["k_deg"], rtol=1e-9)
    np.testing.assert_allclose(remote["k_on"], local["k_on"], rtol=1e-9)
