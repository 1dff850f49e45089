"""detection="estimate": one detection probability of new molecules estimated across
genes (telegraph.labelfit.estimate_detection), through tg.fit, tg.tl.fit and
``telegraph fit --detection estimate``.

Statistical checks on data simulated exactly (Gillespie, tg.simulate_labelled_anndata)
at a known detection probability with per-cell capture < 1 and two pulse lengths,
fixed seeds: the estimate's 95% profile interval covers the truth and its error is
within a few of its own standard errors; k_deg fitted at the estimate is close to
k_deg fitted at the truth, against each gene's own uncertainty. The measured
accuracy and cost on larger settings are in benchmarks/labelled_recovery.py.
"""

from __future__ import annotations

import warnings

import anndata
import numpy as np
import pandas as pd
import pytest

import telegraph as tg
from telegraph import config, labelfit
from telegraph.cli import main as cli_main
from telegraph.inputs import resolve_labelling

TRUE_DETECTION = 0.7
PULSES = [1.0, 3.0]


@pytest.fixture(scope="module")
def data():
    """Prior kinetics (half-lives 1-10 h), per-cell capture (median 0.3), two pulses."""
    return tg.simulate_labelled_anndata(600, 16, t_label=PULSES, detection=TRUE_DETECTION,
                                        seed=7)


def _fit(ad, detection):
    return tg.fit(ad.layers["old"], new=ad.layers["new"], t_label=ad.obs["t_label"].to_numpy(),
                  detection=detection, capture=ad.obs["capture"].to_numpy(),
                  genes=list(ad.var_names), n_jobs=1, progress=False, interval="wald")


@pytest.fixture(scope="module")
def estimated(data):
    return _fit(data, "estimate")


def test_estimate_covers_the_truth(estimated):
    rec = estimated.attrs["labelling"]
    assert rec["detection"] == "estimate"
    est = rec["detection_estimate"]
    pi, lo, hi, se = est["detection"], est["ci_low"], est["ci_high"], est["se"]
    assert est["flag"] == "identified"
    assert est["n_genes"] == 16 and len(est["genes"]) == 16
    assert lo <= TRUE_DETECTION <= hi, est
    # within 3.5 of its own standard errors (a two-sided 5e-4 event)
    assert abs(pi - TRUE_DETECTION) < 3.5 * se, est
    assert se < 0.03, est          # tight: 600 cells x 16 genes, two pulses
    # the estimate is the maximum of the evaluated profile, and the interval ends are
    # where it has fallen by chi2_1(0.95)/2
    ps, Ls = np.array(est["profile_detection"]), np.array(est["profile_loglik"])
    assert Ls.max() == pytest.approx(est["loglik"])
    assert ps[int(np.argmax(Ls))] == pytest.approx(pi)
    inside = (ps > lo + 1e-3) & (ps < hi - 1e-3)
    outside = (ps < lo - 1e-3) | (ps > hi + 1e-3)
    assert np.all(Ls[inside] > est["loglik"] - 1.92 - 0.05)
    assert np.all(Ls[outside] < est["loglik"] - 1.92 + 0.05)


def test_k_deg_at_the_estimate_close_to_k_deg_at_the_truth(data, estimated):
    """Fitting every gene at the estimated detection moves k_deg little against
    its own uncertainty, compared with fitting at the true detection."""
    n = 6
    at_truth = _fit(data[:, :n], TRUE_DETECTION)
    est = estimated.attrs["labelling"]["detection_estimate"]["detection"]
    k_est, k_true = estimated["k_deg"].to_numpy()[:n], at_truth["k_deg"].to_numpy()
    se = ((np.log(at_truth["k_deg_ci_high"]) - np.log(at_truth["k_deg_ci_low"]))
          / (2 * 1.96)).to_numpy()
    shift = np.abs(np.log(k_est / k_true))
    assert np.isfinite(se).all() and np.isfinite(shift).all()
    # the error of the estimate moves k_deg as the mean new fraction pi (1 - e^-k t)
    # says (docs/maths.md, "Estimating the detection probability"): by at most
    # |d pi| / pi (1 - e^-kt) / (kt e^-kt) at the longest pulse, to first order
    x = k_true * max(PULSES)
    predicted = abs(est - TRUE_DETECTION) / TRUE_DETECTION * -np.expm1(-x) / (x * np.exp(-x))
    assert np.all(shift <= 1.5 * predicted + 0.01), (shift, predicted)
    # which is well inside the genes' own uncertainty
    assert np.median(shift / se) < 0.5, (shift, se)
    # and the fit at the estimate is a fit at a constant detection of that value
    again = _fit(data[:, :1], est)
    np.testing.assert_allclose(again["k_deg"], estimated["k_deg"].iloc[:1], rtol=1e-6)


def test_cli_detection_estimate(data, tmp_path, capsys):
    ad = data[:300, :4].copy()
    path = tmp_path / "lab.h5ad"
    ad.write_h5ad(path)
    out, table = tmp_path / "out.h5ad", tmp_path / "out.csv"
    code = cli_main(["fit", str(path), "--layer", "old", "--new-layer", "new", "--t-label",
                     "t_label", "--detection", "estimate", "--capture", "capture",
                     "--interval", "wald", "--table", str(table), "-o", str(out),
                     "--jobs", "1", "--no-progress"])
    assert code == 0
    err = capsys.readouterr().err
    assert "detection estimated across 4 genes" in err
    assert "conditional" in err
    back = anndata.read_h5ad(out)
    rec = back.uns["telegraph"]["labelling"]
    assert rec["detection"] == "estimate"
    est = rec["detection_estimate"]
    assert est["ci_low"] <= TRUE_DETECTION <= est["ci_high"]
    assert f"{est['detection']:.3f}" in err
    res = pd.read_csv(table, index_col="gene")
    assert np.isfinite(res["k_deg"]).all()


def test_flat_profile_flagged_and_warned():
    """One short pulse and slowly degrading genes: pi trades off against k_deg,
    the summed profile is flat; flagged, with a warning naming the fix."""
    ad = tg.simulate_labelled_anndata(200, 3, t_label=0.5, detection=TRUE_DETECTION,
                                      k_deg=np.full(3, 0.07), seed=2)
    with pytest.warns(labelfit.DetectionWarning, match="Give detection="):
        res = tg.fit(ad.layers["old"], new=ad.layers["new"], t_label=0.5, detection="estimate",
                     capture=ad.obs["capture"].to_numpy(), n_jobs=1, progress=False,
                     interval="wald")
    est = res.attrs["labelling"]["detection_estimate"]
    assert est["flag"] == "flat"
    assert est["ci_high"] - est["ci_low"] > config.DETECTION_FLAT_WIDTH or (
        est["ci_low"] <= config.DETECTION_ESTIMATE_RANGE[0])


# --------------------------------------------------------------------------- the maximiser

@pytest.mark.parametrize("f, x_max", [
    (lambda x: -3.0 * (x - 0.85) ** 2, 0.85),
    (lambda x: -np.cosh(2.0 * (x + 1.3)), -1.3),         # not a parabola
    (lambda x: -abs(x - 2.0) ** 1.5 - 0.1 * x, None),    # cusp-like, asymmetric
])
def test_parabolic_max(f, x_max):
    calls = []

    def F(x):
        calls.append(x)
        return f(x)

    got = labelfit._parabolic_max(F, 0.0, -4.0, 6.0, 0.01)
    if x_max is None:
        xs = np.linspace(-4, 6, 200001)
        x_max = xs[np.argmax([f(x) for x in xs])]
    assert abs(got - x_max) < 0.02
    assert len(calls) < 40


def test_parabolic_max_at_the_range_end():
    got = labelfit._parabolic_max(lambda x: x, 0.0, -4.0, 6.0, 0.01)
    assert got == 6.0


# --------------------------------------------------------------------------- validation

def test_estimate_is_the_only_string_besides_obs_keys():
    lab = resolve_labelling(1.0, "estimate", n_cells=5)
    assert lab.estimate_detection
    assert lab.record()["detection"] == "estimate"
    np.testing.assert_array_equal(lab.detection, np.ones(5))
    assert not resolve_labelling(1.0, 0.8, n_cells=5).estimate_detection
    obs = pd.DataFrame({"t_label": [1.0] * 5, "det": [0.8] * 5})
    lab = resolve_labelling("t_label", "det", n_cells=5, obs=obs)
    assert not lab.estimate_detection and lab.record()["detection"] == "obs:det"
    assert resolve_labelling("t_label", "estimate", n_cells=5, obs=obs).estimate_detection
    with pytest.raises(ValueError, match="names an obs column, but no AnnData"):
        resolve_labelling(1.0, "estimated", n_cells=5)
    with pytest.raises(KeyError, match="not a column of adata.obs"):
        resolve_labelling(1.0, "Estimate", n_cells=5, obs=obs)
    with pytest.raises(ValueError, match="pulse length cannot be estimated"):
        resolve_labelling("estimate", 0.8, n_cells=5)


def test_obs_column_named_estimate_refused(data, tmp_path, capsys):
    obs = pd.DataFrame({"t_label": [1.0] * 5, "estimate": [0.8] * 5})
    with pytest.raises(ValueError, match="also has a column named 'estimate'; rename"):
        resolve_labelling("t_label", "estimate", n_cells=5, obs=obs)
    ad = data[:20, :1].copy()
    ad.obs["estimate"] = 0.8
    with pytest.raises(ValueError, match="column named 'estimate'"):
        tg.tl.fit(ad, layer="old", new_layer="new", t_label="t_label", detection="estimate")
    path = tmp_path / "amb.h5ad"
    ad.write_h5ad(path)
    code = cli_main(["fit", str(path), "--layer", "old", "--new-layer", "new", "--t-label",
                     "t_label", "--detection", "estimate", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--detection estimate asks for one detection probability" in err


def test_no_gene_to_estimate_from():
    old = np.zeros((20, 2), int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="give detection= as a number"):
            tg.fit(old, new=old, t_label=1.0, detection="estimate", progress=False)


class _FakeProfile:
    """A summed profile known in closed form: quadratic in logit pi."""

    def __init__(self, centre, width):
        self.c, self.w, self.sol = centre, width, {}

    def __call__(self, pi):
        p = min(float(pi), 1 - 1e-6)
        x = float(np.log(p / (1 - p)))
        val = -0.5 * ((x - self.c) / self.w) ** 2
        self.sol.setdefault(float(pi), val)
        return val

    def evaluated(self):
        ps = np.array(sorted(self.sol))
        return ps, np.array([self.sol[p] for p in ps])


@pytest.mark.parametrize("centre, width", [(0.8, 0.1), (-1.0, 0.4), (5.0, 0.5), (2.0, 3.0)])
def test_interval_ends_of_a_known_profile(centre, width):
    z = 1.959963984540054
    prof = _FakeProfile(centre, width)
    pi_hat = float(1 / (1 + np.exp(-centre)))
    prof(pi_hat)
    lo_range, hi_range = 0.02, 1.0
    lo = labelfit._interval_end(prof, pi_hat, 0.0, z, -1, lo_range, hi_range, 0.01)
    hi = labelfit._interval_end(prof, pi_hat, 0.0, z, +1, lo_range, hi_range, 0.01)
    x_lo, x_hi = centre - z * width, centre + z * width
    exp_lo = max(1 / (1 + np.exp(-x_lo)), lo_range)
    exp_hi = 1 / (1 + np.exp(-x_hi))
    assert lo == pytest.approx(exp_lo, abs=0.01 * width * exp_lo + 1e-9)
    if exp_hi < 0.999:
        assert hi == pytest.approx(exp_hi, abs=0.01 * width + 1e-9)
    else:   # the end lies in (0.999, 1]: reported there
        assert hi >= 0.998
    assert len(prof.sol) < 16


def test_interval_end_below_an_estimate_of_one():
    """pi_hat = 1 (perfect detection) lies beyond the logit scale: the lower end is
    searched from 0.999 down (a bug once stepped from logit(1) = inf)."""
    z = 1.959963984540054
    prof = _FakeProfile(10.0, 2.0)
    L1 = prof(1.0)
    lo = labelfit._interval_end(prof, 1.0, L1, z, -1, 0.02, 1.0, 0.01)
    x = np.log((1 - 1e-6) / 1e-6)
    expected = 1 / (1 + np.exp(-(10.0 - 2.0 * np.sqrt(((x - 10.0) / 2.0) ** 2 + z * z))))
    assert lo == pytest.approx(expected, abs=2e-3)
    assert labelfit._interval_end(prof, 1.0, L1, z, +1, 0.02, 1.0, 0.01) == 1.0
