"""What the results table says, regime by regime (docs/results.md), and its
goodness-of-fit p-values: one encoding in every output, every identified
quantity filled, a calibrated p-value for every fitted gene (or a flag saying
why not) in every regime and at every count scale."""

import anndata
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import telegraph as tg
from telegraph.fitting import GOF_FLAGS, IDENTIFIED, chernoff_lehmann
from telegraph.histogram import count_histograms
from telegraph.inputs import FitSettings
from telegraph.kernels.gof import LAW_NEGBINOM, LAW_POISSON, pearson_gof
from telegraph.kernels.models import MODEL_NEGBINOM, evaluate, gene_bins
from telegraph.kernels.optimize import fit_negbinom

ESTIMATES = ("k_on", "k_off", "k_syn", "burst_frequency", "burst_size", "fraction_on",
             "mean_expression")
FITTED = ("telegraph", "bursty", "bimodal", "poisson")


def check_encoding(df, max_iter=100):
    """Every estimate is filled exactly where the regime identifies it, with a
    finite positive value; the rest is NaN; every fitted gene has a
    goodness-of-fit p-value or a flag saying why not; integers are integers."""
    regime = df["regime"].astype(str)
    for r, sub in df.groupby(regime):
        filled = set(filter(None, IDENTIFIED[r].split(",")))
        assert (sub["identified"] == IDENTIFIED[r]).all(), r
        for col in ESTIMATES:
            v = sub[col].to_numpy(float)
            if col in filled:
                assert np.isfinite(v).all(), (r, col)
                if not (r == "all_zero" and col == "mean_expression"):
                    assert (v > 0).all(), (r, col)
            else:
                assert np.isnan(v).all(), (r, col)
        if r in FITTED:
            assert {"mean_expression"} <= filled
            # a p-value for every fitted gene; a test without power says so (p = 1, df 0)
            assert np.isfinite(sub["gof_pval"]).all(), r
            assert set(sub["gof_flag"].astype(str)) <= {"ok", "one_class", "degenerate"}, r
            powerless = sub["gof_flag"].astype(str) != "ok"
            assert (sub.loc[powerless, "gof_pval"] == 1).all(), r
            assert (sub.loc[powerless, "gof_df"] == 0).all(), r
        else:
            assert (sub["gof_flag"].astype(str) == "not_fitted").all(), r
    assert set(df["gof_flag"].astype(str)) <= set(GOF_FLAGS)
    f = df["fraction_on"].dropna()
    assert ((f > 0) & (f <= 1)).all()
    # a reported estimate lies inside its interval: always for profile intervals (a limit
    # regime's limit is within the cut-off); Wald intervals are about the telegraph fit's
    # optimum in the box, which is the estimate in the telegraph regime
    profile = df.attrs.get("settings", {}).get("interval") == "profile"
    for q in ("burst_frequency", "burst_size", "k_syn"):
        v = df[q].to_numpy(float)
        m = np.isfinite(v) & (profile | (regime == "telegraph").to_numpy())
        lo, hi = df[f"{q}_ci_low"].to_numpy(float)[m], df[f"{q}_ci_high"].to_numpy(float)[m]
        assert ((lo <= v[m] * (1 + 1e-6)) & (v[m] <= hi * (1 + 1e-6))).all(), q
    # the identities between the columns
    both = df[["k_on", "burst_frequency"]].dropna()
    np.testing.assert_array_equal(both["k_on"], both["burst_frequency"])
    for col in ("n_cells", "n_missing", "n_iter"):
        assert pd.api.types.is_integer_dtype(df[col]), col
    assert pd.api.types.is_integer_dtype(df["gof_df"])
    assert (df["n_iter"] <= max_iter).all() and (df["n_iter"] >= 0).all()


def _regime_genes(rng, n_cells, reps):
    """Counts (cells x genes) drawn from each regime's law, and the regime."""
    cols, want = [], []
    for _ in range(reps):
        cols.append(rng.poisson(30 * rng.beta(0.8, 2.0, n_cells)))
        want.append("telegraph")
        cols.append(rng.negative_binomial(0.6, 1 / (1 + 15.0), n_cells))
        want.append("bursty")
        cols.append(np.where(rng.random(n_cells) < 0.35, rng.poisson(25, n_cells), 0))
        want.append("bimodal")
        cols.append(rng.poisson(4.0, n_cells))
        want.append("poisson")
    return np.column_stack(cols), want


def test_encoding_of_every_regime_on_simulated_limits():
    rng = np.random.default_rng(31)
    X, want = _regime_genes(rng, 600, 3)
    X = np.column_stack([X, np.zeros(600, int), np.r_[rng.poisson(3, 5), np.full(595, np.nan)]])
    want += ["all_zero", "too_few_cells"]
    df = tg.fit(X, interval="wald", progress=False)
    assert (df["regime"].astype(str).to_numpy() == np.array(want)).mean() >= 0.85
    assert set(df["regime"].astype(str)) == set(want)
    check_encoding(df)
    # the law reported: its mean, its maximum log-likelihood
    bursty = df[df["regime"] == "bursty"]
    np.testing.assert_allclose(bursty["mean_expression"],
                               bursty["burst_frequency"] * bursty["burst_size"], rtol=1e-12)
    np.testing.assert_array_equal(bursty["loglik"], bursty["loglik_negbinom"])
    bimodal = df[df["regime"] == "bimodal"]
    np.testing.assert_allclose(bimodal["mean_expression"],
                               bimodal["fraction_on"] * bimodal["k_syn"], rtol=1e-12)
    np.testing.assert_array_equal(bimodal["loglik"], bimodal["loglik_zip"])
    poisson = df[df["regime"] == "poisson"]
    np.testing.assert_allclose(poisson["mean_expression"], poisson["mean"], rtol=1e-12)
    assert df.loc[df["regime"] == "all_zero", "mean_expression"].eq(0).all()
    # the supremum is the largest of the four maxima, and the law reported is within the cut-off
    fitted = df[df["regime"].astype(str).isin(FITTED)]
    sup = fitted[["loglik_telegraph", "loglik_negbinom", "loglik_zip", "loglik_poisson"]].max(1)
    assert ((sup - fitted["loglik"]) < stats.chi2.ppf(0.95, 1) / 2).all()


def test_same_encoding_in_adata_the_cli_table_and_the_differential_output(tmp_path):
    import anndata as ad
    from telegraph.cli import main
    rng = np.random.default_rng(32)
    X, _ = _regime_genes(rng, 400, 2)
    adata = ad.AnnData(X.astype(np.float32))
    adata.obs["group"] = np.where(np.arange(400) < 200, "a", "b")
    ref = tg.fit(X, genes=adata.var_names, interval="wald", progress=False)
    tg.tl.fit(adata, interval="wald", progress=False)
    got = tg.get.kinetics_df(adata)
    for col in ("n_cells", "n_missing", "n_iter", "gof_df"):
        assert pd.api.types.is_integer_dtype(adata.var[f"telegraph_{col}"]), col
    pd.testing.assert_frame_equal(got.drop(columns=["regime", "gof_flag"]),
                                  ref.drop(columns=["gene", "regime", "gof_flag"]),
                                  check_names=False, check_index_type=False,
                                  check_dtype=False)
    path = tmp_path / "counts.h5ad"
    adata.write_h5ad(path)
    out = tmp_path / "fit.csv"
    assert main(["fit", str(path), "--interval", "wald", "--table", str(out),
                 "--no-progress"]) == 0
    table = pd.read_csv(out, index_col="gene")
    text = pd.read_csv(out, index_col="gene", dtype=str)
    for col in ("n_cells", "n_missing", "n_iter", "gof_df"):
        assert not text[col].str.contains(".", regex=False).any(), col   # written as integers
    for col in ESTIMATES:
        np.testing.assert_array_equal(np.isnan(table[col]), np.isnan(ref[col]), err_msg=col)
    diff = tg.tl.differential_bursting(adata, "group", interval="wald", progress=False)
    for g in ("1", "2"):
        reg = diff[f"regime_{g}"].astype(str)
        assert diff.loc[reg == "bursty", f"k_off_{g}"].isna().all()
        assert diff.loc[reg == "poisson", f"burst_frequency_{g}"].isna().all()
        assert np.isfinite(diff.loc[reg == "bursty", f"burst_size_{g}"]).all()


@pytest.mark.parametrize("path, tested", [("SS3_c57_UMIs_mESC.csv", 0.7),      # 94 cells
                                          ("SS3_c57_UMIs_concat_G2M.csv", 0.5)])  # 31 cells
def test_encoding_on_larsson_data(larsson_dir, path, tested):
    """Every 4th gene of the published count files, as txburst reads them."""
    counts = pd.read_csv(larsson_dir / path, index_col=0).iloc[::4]
    df = tg.fit(counts.to_numpy(float).T, genes=counts.index,
                interval="profile" if "mESC" in path else "wald", progress=False)
    check_encoding(df)
    regimes = set(df["regime"].astype(str))
    assert {"telegraph", "bursty", "bimodal", "poisson"} <= regimes
    fitted = df["regime"].astype(str).isin(FITTED)
    # a test with power for most fitted genes; the rest flagged (mostly few non-zero counts)
    assert (df.loc[fitted, "gof_flag"].astype(str) == "ok").mean() > tested
    flagged = fitted & (df["gof_flag"].astype(str) != "ok")
    assert (df.loc[flagged, "mean"] < df.loc[fitted & ~flagged, "mean"].median()).mean() > 0.9


def test_n_iter_counts_one_climb_and_stays_within_max_iter():
    rng = np.random.default_rng(33)
    X, _ = _regime_genes(rng, 500, 2)
    hist = count_histograms(X)
    for max_iter in (2, 100):
        df = tg.fitting.fit_histograms(hist, settings=FitSettings(max_iter=max_iter,
                                                                  interval="wald"),
                                       progress=False)
        check_encoding(df, max_iter=max_iter)
        if max_iter == 2:
            assert not df["converged"].all()
        else:
            assert df["converged"].all()


# ------------------------------------------------------------- goodness of fit

def _calibrated(p, alpha=0.05):
    """Uniform p-values: KS, and the rejection rate at alpha within 3.5
    binomial standard errors."""
    assert stats.kstest(p, "uniform").pvalue > 1e-3
    assert abs((p < alpha).mean() - alpha) < 3.5 * np.sqrt(alpha * (1 - alpha) / p.size)


@pytest.mark.parametrize("regime", FITTED)
def test_gof_calibrated_in_every_regime(regime):
    """Data drawn from each regime's law: among the genes given that regime,
    the p-value against the law reported is uniform."""
    rng = np.random.default_rng({"telegraph": 41, "bursty": 42, "bimodal": 43, "poisson": 44}[
        regime])
    n_cells, n_genes = 500, 300
    draw = {
        "telegraph": lambda: rng.poisson(30 * rng.beta(0.8, 2.0, (n_cells, n_genes))),
        "bursty": lambda: rng.negative_binomial(0.6, 1 / (1 + 15.0), (n_cells, n_genes)),
        "bimodal": lambda: np.where(rng.random((n_cells, n_genes)) < 0.35,
                                    rng.poisson(25, (n_cells, n_genes)), 0),
        "poisson": lambda: rng.poisson(4.0, (n_cells, n_genes)),
    }[regime]
    df = tg.fit(draw(), interval="wald", progress=False)
    sub = df[df["regime"].astype(str) == regime]
    assert len(sub) > 250
    assert (sub["gof_flag"].astype(str) == "ok").all()
    _calibrated(sub["gof_pval"].to_numpy())


def _nb_gof(counts):
    """Pearson statistic, classes and informations of one gene's counts against
    the negative binomial at its maximum-likelihood estimate."""
    v, w = np.unique(counts, return_counts=True)
    v, w, gr, cap = v.astype(np.int64), w.astype(float), np.zeros(v.size, np.int64), np.ones(1)
    m, var = counts.mean(), counts.var()
    start = np.array([np.log(m * m / (var - m)), 0.0, np.log(var / m - 1)])
    th = np.zeros(3)
    buf = np.zeros(11)
    _, conv, _ = fit_negbinom(gene_bins(v, w, gr, cap), start, th, 100, buf)
    assert conv
    info = np.zeros((3, 3))
    evaluate(MODEL_NEGBINOM, gene_bins(v, w, gr, cap), th, True, np.zeros(3), info, buf)
    Ig = np.zeros((3, 3))
    x2, k, ok = pearson_gof(LAW_NEGBINOM, v, w, gr, cap, 1, np.exp(th), 5.0, Ig)
    assert ok
    return x2, k, info / w.sum(), Ig


def _poisson_gof(counts):
    v, w = np.unique(counts, return_counts=True)
    v, w, gr, cap = v.astype(np.int64), w.astype(float), np.zeros(v.size, np.int64), np.ones(1)
    mu = counts.mean()
    Ig = np.zeros((3, 3))
    x2, k, ok = pearson_gof(LAW_POISSON, v, w, gr, cap, 1, np.array([mu, 0.0, 0.0]), 5.0, Ig)
    assert ok
    info = np.zeros((3, 3))
    info[0, 0] = mu
    return x2, k, info, Ig


@pytest.mark.parametrize("law, mean", [("negbinom", 1e2), ("negbinom", 1e6), ("poisson", 1e6),
                                       ("poisson", 1e9)])
def test_gof_calibrated_at_every_count_scale(law, mean):
    """The statistic of the limit laws, at their maximum-likelihood estimate,
    on data drawn from them: calibrated at means from 1e2 to 1e9, at a cost
    that does not grow with the largest count."""
    rng = np.random.default_rng(int(np.log10(mean)) + (0 if law == "poisson" else 20))
    n_genes, n_cells = 300, 400
    res = []
    for _ in range(n_genes):
        if law == "negbinom":
            res.append(_nb_gof(rng.negative_binomial(2.0, 1 / (1 + mean / 2.0), n_cells)))
        else:
            res.append(_poisson_gof(rng.poisson(mean, n_cells)))
    x2, K, info, Ig = (np.array(z) for z in zip(*res))
    npar = np.full(n_genes, 2 if law == "negbinom" else 1)
    _, df, p, flag = chernoff_lehmann(x2, K, npar, info, Ig)
    assert (flag == "ok").all() and (df >= 5).all()
    _calibrated(p)


def test_gof_of_bursty_data_at_a_mean_of_a_million():
    """The audit's case: counts drawn from the bursty limit with mean 1e6 (its
    p-values were 0 and 6e-280)."""
    rng = np.random.default_rng(45)
    X = rng.negative_binomial(2.0, 1 / (1 + 5e5), (300, 3))
    df = tg.fit(X, interval="wald", progress=False)
    assert (df["regime"] == "bursty").all()
    assert (df["gof_pval"] > 1e-3).all()
    np.testing.assert_allclose(df["mean_expression"], 1e6, rtol=0.2)


def test_fits_whose_keys_share_a_prefix_keep_their_own_columns(tmp_path):
    """Audit: tg.get.kinetics_df(adata, "telegraph") picked up the columns of a fit stored
    under "telegraph_estimated", and refitting under "telegraph" deleted them."""
    adata = tg.datasets.example(n_cells=200, n_genes=4, seed=3)
    tg.tl.fit(adata, key_added="telegraph_estimated", interval="wald", progress=False)
    tg.tl.fit(adata, interval="wald", progress=False)                    # key "telegraph"
    tg.tl.fit(adata, interval="wald", min_cells=10_000, progress=False)  # refit: nothing fitted
    assert (adata.var["telegraph_estimated_regime"] != "not_fitted").all()
    ours = tg.get.kinetics_df(adata, "telegraph")
    other = tg.get.kinetics_df(adata, "telegraph_estimated")
    assert not any(c.startswith("estimated_") for c in ours.columns)
    assert list(ours.columns) == list(other.columns)
    assert (ours["regime"] == "too_few_cells").all()
    # the record survives an .h5ad round trip
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    back = tg.get.kinetics_df(anndata.read_h5ad(path), "telegraph")
    assert list(back.columns) == list(ours.columns)
