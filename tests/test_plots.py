"""tg.pl: a scanpy pipeline through tl.fit and tl.differential_bursting to
rendered figures, the capture-aware fitted law, and the scanpy conventions
(adata first, ax=, show=, save=, Axes returned)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

import telegraph as tg  # noqa: E402
from telegraph.pl._distribution import fitted_pmf  # noqa: E402


@pytest.fixture(scope="module")
def pipeline():
    import scanpy as sc
    adata = tg.datasets.example(seed=2, n_cells=600, n_genes=24, n_differential=8)
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    tg.tl.fit(adata, layer="counts", capture="capture", interval="wald", progress=False)
    tg.tl.differential_bursting(adata, "group", groups=("A", "B"), layer="counts",
                                capture="capture", interval="wald", progress=False)
    return adata


@pytest.fixture
def figdir(tmp_path):
    # scanpy's settings are class properties (monkeypatch cannot undo them)
    import scanpy as sc
    old = sc.settings.figdir, sc.settings.file_format_figs
    sc.settings.figdir, sc.settings.file_format_figs = tmp_path, "png"
    yield tmp_path
    sc.settings.figdir, sc.settings.file_format_figs = old
    plt.close("all")


def _png_ok(path):
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scanpy_pipeline_to_png_files(pipeline, figdir):
    adata = pipeline
    # X is log-normalised now; the tools read the counts layer
    assert not np.allclose(adata.X.toarray() % 1, 0)
    ax = tg.pl.kinetics(adata, save="_regime.png")
    assert isinstance(ax, matplotlib.axes.Axes)
    _png_ok(figdir / "kinetics_regime.png")
    ax = tg.pl.kinetics(adata, color="significance", save="_sig.png")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lab.startswith("not significant") for lab in labels)
    _png_ok(figdir / "kinetics_sig.png")
    gene = adata.var_names[0]
    ax = tg.pl.distribution(adata, gene, save=".png")
    _png_ok(figdir / f"distribution_{gene}.png")
    ax = tg.pl.differential(adata, test="burst_size", save="_bs.png")
    _png_ok(figdir / "differential_burst_size_bs.png")
    axes = tg.pl.differential(adata, test="both", save=True)
    assert len(axes) == 2
    _png_ok(figdir / "differential.png")


def test_ax_show_and_path_save(pipeline, tmp_path):
    fig, (a1, a2) = plt.subplots(1, 2)
    assert tg.pl.kinetics(pipeline, ax=a1) is a1
    assert tg.pl.differential(pipeline, ax=a2) is a2
    # show=True shows (a no-op with Agg) and returns None, as in scanpy
    assert tg.pl.distribution(pipeline, pipeline.var_names[1], show=True) is None
    out = tmp_path / "sub" / "kin.png"
    tg.pl.kinetics(pipeline, color="differential", save=str(out))
    _png_ok(out)
    plt.close("all")


def test_distribution_overlay_is_the_capture_mixture(pipeline):
    """The fitted law drawn over the histogram is the average over the
    gene's cells of P(n | capture_c) (checked against tg.pmf per cell) and
    sums to ~1."""
    adata = pipeline
    var = adata.var
    row_name = next(g for g in adata.var_names if var.loc[g, "telegraph_regime"] == "telegraph")
    row = {c[len("telegraph_"):]: var.loc[row_name, c] for c in var.columns
           if c.startswith("telegraph_")}
    cap = adata.obs["capture"].to_numpy()
    n = np.arange(400)
    mix = fitted_pmf(n, row, cap)
    exact = tg.pmf(n[None, :], row["k_on"], row["k_off"], row["k_syn"],
                   capture=cap[:, None]).mean(axis=0)
    # capture binned to 2% (the law is smooth in capture)
    np.testing.assert_allclose(mix, exact, rtol=0.03, atol=1e-6)
    assert mix.sum() == pytest.approx(1.0, abs=1e-3)
    ax = tg.pl.distribution(adata, row_name)
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), fitted_pmf(line.get_xdata(), row, cap))
    plt.close("all")


def test_limit_laws_agree_with_the_telegraph_law_near_the_limit():
    n = np.arange(60)
    bursty = {"regime": "bursty", "burst_frequency": 0.7, "burst_size": 6.0}
    # the telegraph law at k_off = 1e5 differs from its limit by O(n / k_off)
    near = tg.pmf(n, 0.7, 1e5, 6.0e5)
    np.testing.assert_allclose(fitted_pmf(n, bursty, None), near, rtol=1e-3, atol=1e-9)
    poisson = {"regime": "poisson", "mean_expression": 4.0}
    np.testing.assert_allclose(fitted_pmf(n, poisson, np.array([0.5])),
                               stats.poisson.pmf(n, 2.0))
    bimodal = {"regime": "bimodal", "fraction_on": 0.3, "k_syn": 10.0}
    # slow switching: the Beta law puts O(k_on + k_off) mass between 0 and 1
    near = tg.pmf(n, 3e-7, 7e-7, 10.0)
    np.testing.assert_allclose(fitted_pmf(n, bimodal, None), near, rtol=1e-3, atol=1e-6)


def test_clear_errors(pipeline):
    import anndata as ad
    bare = ad.AnnData(np.ones((5, 2)))
    with pytest.raises(KeyError, match="run tg.tl.fit"):
        tg.pl.kinetics(bare)
    with pytest.raises(KeyError, match="run tg.tl.fit"):
        tg.pl.distribution(bare, "0")
    with pytest.raises(KeyError, match="differential_bursting"):
        tg.pl.differential(bare)
    with pytest.raises(KeyError, match="differential_bursting"):
        tg.pl.kinetics(pipeline, color="significance", differential_key="nope")
    with pytest.raises(KeyError, match="not in adata.var_names"):
        tg.pl.distribution(pipeline, "no_such_gene")
    with pytest.raises(ValueError, match="test must be"):
        tg.pl.differential(pipeline, test="k_on")
    with pytest.raises(KeyError, match="color="):
        tg.pl.kinetics(pipeline, color="no_column")
    plt.close("all")


def test_distribution_draws_the_law_reported_and_titles_what_is_identified():
    """Each regime's gene: the line is the law the fit reports (the one its
    goodness of fit tests), and the title names only identified quantities,
    with units that follow the capture setting."""
    import anndata as ad
    rng = np.random.default_rng(51)
    n = 600
    X = np.column_stack([rng.poisson(30 * rng.beta(0.8, 2.0, n)),
                         rng.negative_binomial(0.6, 1 / (1 + 15.0), n),
                         np.where(rng.random(n) < 0.35, rng.poisson(25, n), 0),
                         rng.poisson(4.0, n), rng.poisson(400.0, (n, 20))]).astype(float)
    adata = ad.AnnData(X)
    tg.tl.fit(adata, capture="total", interval="wald", progress=False)
    res = tg.get.kinetics_df(adata).iloc[:4]
    assert list(res["regime"]) == ["telegraph", "bursty", "bimodal", "poisson"]
    sf = X.sum(1) / X.sum(1).mean()
    for gene, row in res.iterrows():
        ax = tg.pl.distribution(adata, gene)
        line = ax.get_lines()[0]
        regime = row["regime"]
        law = {"telegraph": "Poisson-Beta", "bursty": "negative binomial",
               "bimodal": "zero-inflated Poisson", "poisson": "Poisson"}[regime]
        assert law in line.get_label()
        k = line.get_xdata()
        np.testing.assert_allclose(line.get_ydata(), fitted_pmf(k, row.to_dict(), sf))
        if regime == "telegraph":
            # size factors scale k_syn (they may exceed 1)
            exact = tg.pmf(k[None, :], row["k_on"], row["k_off"],
                           row["k_syn"] * sf[:, None]).mean(axis=0)
            np.testing.assert_allclose(line.get_ydata(), exact, rtol=0.03, atol=1e-6)
        title = ax.get_title()
        assert ("burst size" in title) == (regime in ("telegraph", "bursty"))
        assert ("fraction on" in title) == (regime == "bimodal")
        assert "nan" not in title and "inf" not in title
        assert "molecules counted in a cell of average depth" in title
        plt.close("all")
    ax = tg.pl.kinetics(adata)
    assert "average depth" in ax.get_ylabel()
    assert "gene(s) not shown" in ax.get_legend().get_title().get_text()
    plt.close("all")
