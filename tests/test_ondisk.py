"""Fitting .h5ad/.zarr matrices from disk (telegraph.ondisk, telegraph.backed).

The streamed fit must be the in-memory fit, bit for bit: the per-gene
histograms are sufficient statistics and chunk histograms merge exactly, so
every comparison below is ``assert_frame_equal`` against ``tg.fit`` on the
same matrix in memory (no tolerance).  Slices are deliberately small and
not divisors of the matrix size.
"""

from __future__ import annotations

import tracemalloc
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import telegraph as tg
from telegraph import backed, ondisk
from telegraph.cli import main
from telegraph.histogram import count_histograms


def simulate_counts(n_cells, n_genes, seed=0, *, missing=True):
    """Counts from the stationary telegraph law (p ~ Beta(a, b), n ~ Poisson(s lam p))
    with per-cell capture; one all-zero gene, and a few missing (NaN) values."""
    rng = np.random.default_rng(seed)
    a = np.exp(rng.uniform(np.log(0.05), np.log(2.0), n_genes))
    b = np.exp(rng.uniform(np.log(0.5), np.log(10.0), n_genes))
    lam = b * np.exp(rng.uniform(np.log(1.0), np.log(20.0), n_genes))
    s = rng.uniform(0.1, 0.5, n_cells)          # > 256 distinct values: binned groups
    p = rng.beta(a, b, size=(n_cells, n_genes))
    X = rng.poisson(s[:, None] * lam * p).astype(np.float32)
    X[:, 3] = 0.0
    if missing:
        X[rng.random(n_cells) < 0.05, 5] = np.nan
    return X, s


def write_stores(tmp, X, s):
    """The same counts as CSR X, CSC / dense layers, in .h5ad and .zarr."""
    n_cells, n_genes = X.shape
    csr = sp.csr_matrix(np.nan_to_num(X, nan=-1.0))
    csr.data[csr.data == -1.0] = np.nan          # NaN stored explicitly, zeros implicit
    adata = ad.AnnData(
        X=csr,
        obs=pd.DataFrame({"cap": s}, index=[f"c{i}" for i in range(n_cells)]),
        var=pd.DataFrame({"kd": np.linspace(0.5, 2.0, n_genes)},
                         index=[f"g{i}" for i in range(n_genes)]))
    adata.layers["csc"] = csr.tocsc()
    adata.layers["dense"] = X
    h5ad = tmp / "counts.h5ad"
    adata.write_h5ad(h5ad)
    zarr_path = tmp / "counts.zarr"
    with warnings.catch_warnings():     # anndata: zarr v2 will stop being the default
        warnings.simplefilter("ignore")
        adata.write_zarr(zarr_path)
    return adata, h5ad, zarr_path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    X, s = simulate_counts(700, 24)
    adata, h5ad, zarr_path = write_stores(tmp_path_factory.mktemp("stream"), X, s)
    return adata, h5ad, zarr_path


def reference(adata, **kw):
    kw.setdefault("interval", "wald")
    return tg.fit(adata.X, genes=adata.var_names, progress=False, **kw)


@pytest.mark.parametrize("layer", [None, "csc", "dense"])
def test_streamed_equals_in_memory(data, layer):
    adata, h5ad, _ = data
    ref = reference(adata, capture=adata.obs["cap"].to_numpy())
    res = tg.fit_file(h5ad, layer=layer, capture="cap", chunk_size=97, interval="wald",
                      progress=False)
    pd.testing.assert_frame_equal(res, ref)
    assert res.loc["g3", "regime"] == "all_zero"
    assert res.loc["g5", "n_missing"] > 0


def test_zarr_store(data):
    adata, _, zarr_path = data
    ref = reference(adata, capture=adata.obs["cap"].to_numpy())
    res = tg.fit_file(zarr_path, capture="cap", chunk_size=150, interval="wald",
                      progress=False)
    pd.testing.assert_frame_equal(res, ref)


def test_profile_intervals_and_default_chunk(data):
    adata, h5ad, _ = data
    ref = reference(adata, interval="profile")
    res = tg.fit_file(h5ad, progress=False)
    pd.testing.assert_frame_equal(res, ref)


@pytest.mark.parametrize("layer", [None, "csc"])
def test_size_factors_and_k_deg_column(data, layer):
    adata, h5ad, _ = data
    ref = reference(adata, capture="total", k_deg=adata.var["kd"].to_numpy())
    res = tg.fit_file(h5ad, layer=layer, capture="total", k_deg="kd", chunk_size=200,
                      interval="wald", progress=False)
    pd.testing.assert_frame_equal(res, ref)


@pytest.mark.parametrize("layer", [None, "csc"])
def test_gene_subset_in_the_order_given(data, layer):
    adata, h5ad, _ = data
    genes = ["g20", "g2", "g7", "g2"]
    idx = [20, 2, 7, 2]
    ref = tg.fit(adata.X[:, idx], capture=np.full(adata.n_obs, 0.3), genes=genes,
                 interval="wald", progress=False)
    res = tg.fit_file(h5ad, layer=layer, genes=genes, capture=0.3, chunk_size=60,
                      interval="wald", progress=False)
    pd.testing.assert_frame_equal(res, ref)


def test_default_slices_hold_a_budget_of_entries(data, monkeypatch):
    adata, h5ad, _ = data
    m = ondisk.OnDiskMatrix(h5ad)
    assert m.default_chunk_size() == adata.n_obs        # 8 million entries: one slice
    monkeypatch.setattr(tg.config, "CHUNK_ENTRIES", m.nnz // 5)
    per_cell = m.nnz / m.n_cells
    assert m.default_chunk_size() == int(m.nnz // 5 // per_cell)
    res = tg.fit_file(h5ad, interval="wald", progress=False)
    pd.testing.assert_frame_equal(res, reference(adata))


def test_histograms_are_those_of_the_whole_matrix(data):
    adata, h5ad, _ = data
    s = adata.obs["cap"].to_numpy()
    whole = count_histograms(adata.X, capture=s, capture_rtol=0.05,
                             genes=np.asarray(adata.var_names))
    for layer in (None, "csc", "dense"):
        part = backed.histograms_file(h5ad, layer=layer, capture="cap", chunk_size=130)
        for name in ("indptr", "values", "groups", "weights", "capture", "n_cells",
                     "n_missing", "genes"):
            np.testing.assert_array_equal(getattr(part, name), getattr(whole, name),
                                          err_msg=f"{name} ({layer})")


def test_tl_fit_on_backed_anndata(data):
    adata, h5ad, _ = data
    mem = adata.copy()
    tg.tl.fit(mem, capture="cap", interval="wald", progress=False)
    backed = ad.read_h5ad(h5ad, backed="r")
    tg.tl.fit(backed, capture="cap", interval="wald", progress=False, chunk_size=128)
    cols = [c for c in mem.var.columns if c.startswith("telegraph_")]
    pd.testing.assert_frame_equal(backed.var[cols], mem.var[cols])
    backed.file.close()


def test_memory_bounded_by_chunk_size(data, tmp_path):
    """A small chunk keeps both the slices read and the Python-side peak small
    against the matrix (whose CSR arrays alone are data + indices bytes; a fit
    in memory also needs them as float64)."""
    rng = np.random.default_rng(3)
    n_cells, n_genes = 20_000, 1000
    X = sp.random(n_cells, n_genes, density=0.05, format="csr", random_state=rng,
                  data_rvs=lambda k: rng.integers(1, 6, k)).astype(np.float32)
    path = tmp_path / "big.h5ad"
    ad.AnnData(X=X).write_h5ad(path)
    matrix_bytes = X.data.nbytes + X.indices.nbytes          # 8 MB
    slices = []
    original = ondisk.Reader.cells

    def recording(self, start, stop):
        out = original(self, start, stop)
        slices.append((out.shape[0], out.nnz))
        return out

    backed.histograms_file(data[1], chunk_size=500)          # kernels loaded outside tracing
    ondisk.Reader.cells = recording
    try:
        tracemalloc.start()
        hist = backed.histograms_file(path, chunk_size=500)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        ondisk.Reader.cells = original
    assert len(slices) == 40
    assert max(r for r, _ in slices) == 500
    assert max(n for _, n in slices) < 1.2 * X.nnz / 40
    assert peak < matrix_bytes / 4, (peak, matrix_bytes)
    assert int(hist.n_cells.sum()) == n_cells * n_genes


def test_bad_input_is_named(data, tmp_path):
    adata, h5ad, _ = data
    with pytest.raises(ValueError, match="layer 'nope' not found.*'csc'"):
        tg.fit_file(h5ad, layer="nope")
    with pytest.raises(KeyError, match="capture column 'nope'.*'cap'"):
        tg.fit_file(h5ad, capture="nope")
    with pytest.raises(KeyError, match="k_deg column 'nope'.*'kd'"):
        tg.fit_file(h5ad, k_deg="nope")
    with pytest.raises(ValueError, match="chunk_size must be a positive"):
        tg.fit_file(h5ad, chunk_size=0)
    with pytest.raises(FileNotFoundError):
        tg.fit_file(tmp_path / "absent.h5ad")
    csv = tmp_path / "x.csv"
    csv.write_text("gene,c1\ng1,1\n")
    with pytest.raises(ValueError, match="telegraph.fit"):
        tg.fit_file(csv)
    with pytest.raises(KeyError, match="not in the var_names of"):
        tg.fit_file(h5ad, genes=["g1", "nope"])


def test_bad_count_reported_at_its_cell_in_the_file(tmp_path):
    X, s = simulate_counts(300, 6, seed=1, missing=False)
    X[250, 4] = 0.5
    path = tmp_path / "frac.h5ad"
    ad.AnnData(X=sp.csr_matrix(X), var=pd.DataFrame(index=list("abcdef"))).write_h5ad(path)
    with pytest.raises(ValueError, match=r"gene 'e', cell 250\b.*round_counts"):
        tg.fit_file(path, chunk_size=64)
    res = tg.fit_file(path, chunk_size=64, round_counts=True, interval="wald",
                      progress=False)
    X[250, 4] = 0.0                                   # half to even
    pd.testing.assert_frame_equal(
        res, tg.fit(X, genes=list("abcdef"), interval="wald", progress=False))


def test_cli_backed_equals_in_memory(data, tmp_path, capsys):
    adata, h5ad, _ = data
    mem, disk, out = tmp_path / "mem.csv", tmp_path / "disk.csv", tmp_path / "out.h5ad"
    common = ["fit", str(h5ad), "--capture", "cap", "--interval", "wald", "--no-progress"]
    assert main(common + ["--table", str(mem)]) == 0
    assert main(common + ["--chunk-size", "111", "--table", str(disk), "-o", str(out)]) == 0
    assert disk.read_text() == mem.read_text()
    written = ad.read_h5ad(out)
    assert written.uns["telegraph"]["interval"] == "wald"
    np.testing.assert_array_equal(written.layers["csc"].toarray(),
                                  adata.layers["csc"].toarray())
    table = pd.read_csv(mem, float_precision="round_trip")
    np.testing.assert_array_equal(written.var["telegraph_burst_size"].to_numpy(),
                                  table["burst_size"].to_numpy())
    capsys.readouterr()
    csv = tmp_path / "x.csv"
    csv.write_text("gene,c1\ng1,1\n")
    assert main(["fit", str(csv), "--backed"]) == 2
    err = capsys.readouterr().err
    assert "--backed" in err and len(err.strip().splitlines()) == 1
