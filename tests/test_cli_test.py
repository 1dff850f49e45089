"""``telegraph test``: the three forms (groups, alleles, two files) against the
library on the same counts, outputs, and one-line errors."""

import hashlib

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import telegraph
from telegraph.cli import main
from telegraph.differential import differential


def _run(capsys, *argv):
    code = main(["test", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err, *fragments):
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("telegraph test: error:"), err
    for f in fragments:
        assert f in err, (f, err)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small():
    adata = telegraph.datasets.example(seed=3, n_cells=300, n_genes=6, n_differential=2)
    rng = np.random.default_rng(0)
    X = adata.X.toarray().astype(float)
    adata.layers["counts"] = adata.X.copy()
    allele2 = rng.permutation(X)
    allele2[rng.random(X.shape) < 0.05] = np.nan
    adata.layers["a1"] = X
    adata.layers["a2"] = allele2
    return adata


@pytest.fixture
def small_h5ad(small, tmp_path):
    path = tmp_path / "small.h5ad"
    small.write_h5ad(path)
    return path


def _same(table, ref):
    assert list(table["gene"]) == list(ref.index)
    for c in ("pval_burst_frequency", "padj_burst_size", "burst_frequency_log2fc",
              "burst_size_log2fc_ci_high", "burst_size_1", "k_on_2"):
        np.testing.assert_allclose(table[c].to_numpy(float), ref[c].to_numpy(float),
                                   rtol=1e-10, equal_nan=True, err_msg=c)
    assert list(table["flag"].astype(str)) == list(ref["flag"].astype(str))


def test_groupby_form_matches_library(small, small_h5ad, capsys, tmp_path):
    before = _digest(small_h5ad)
    code, out, err = _run(capsys, small_h5ad, "--layer", "counts", "--groupby", "group",
                          "--groups", "A", "B", "--capture", "capture", "--interval", "wald",
                          "--table", tmp_path / "t.tsv", "-o", tmp_path / "o.h5ad")
    assert code == 0, err
    assert "B vs A: tested" in err and out == ""
    m = (small.obs["group"] == "A").to_numpy()
    ref = differential(small.X[m], small.X[~m], capture1=small.obs.capture[m].to_numpy(),
                       capture2=small.obs.capture[~m].to_numpy(),
                       genes=list(small.var_names), interval="wald", progress=False)
    _same(pd.read_csv(tmp_path / "t.tsv", sep="\t"), ref)
    back = ad.read_h5ad(tmp_path / "o.h5ad")
    assert list(back.uns["telegraph_differential"]["params"]["groups"]) == ["A", "B"]
    assert _digest(small_h5ad) == before
    # to stdout, groups by default, a subset of genes
    code, out, err = _run(capsys, small_h5ad, "--groupby", "group", "--interval", "wald",
                          "--genes", "gene0001,gene0003")
    assert code == 0, err
    table = pd.read_csv(pd.io.common.StringIO(out))
    assert list(table["gene"]) == ["gene0001", "gene0003"]


def test_layers_form(small, small_h5ad, capsys, tmp_path):
    code, out, err = _run(capsys, small_h5ad, "--layers", "a1", "a2", "--interval", "wald",
                          "--table", tmp_path / "t.csv")
    assert code == 0, err
    ref = differential(small.layers["a1"], small.layers["a2"], genes=list(small.var_names),
                       interval="wald", progress=False)
    table = pd.read_csv(tmp_path / "t.csv")
    _same(table, ref)
    assert (table["n_cells_2"] < small.n_obs).all()      # missing allele calls dropped


def test_two_files_form(small, capsys, tmp_path):
    X = small.X.toarray().astype(float)
    X[np.random.default_rng(1).random(X.shape) < 0.05] = np.nan
    m = (small.obs["group"] == "A").to_numpy()
    paths = []
    for name, rows in (("S", m), ("G2M", ~m)):
        df = pd.DataFrame(X[rows].T, index=pd.Index(small.var_names, name="gene"),
                          columns=small.obs_names[rows])
        if name == "G2M":
            df = df.iloc[::-1]                          # genes matched by name
        path = tmp_path / f"{name}.csv"
        df.to_csv(path, na_rep="", float_format="%.0f")
        paths.append(path)
    code, out, err = _run(capsys, *paths, "--interval", "wald")
    assert code == 0, err
    ref = differential(X[m], X[~m], genes=list(small.var_names), interval="wald",
                       progress=False)
    _same(pd.read_csv(pd.io.common.StringIO(out)), ref)
    assert "G2M vs S" in err


@pytest.mark.parametrize("argv,fragment", [
    (["--groupby", "group", "--layers", "a1", "a2"], "say what to compare"),
    ([], "say what to compare"),
    (["--groups", "A", "B", "--layers", "a1", "a2"], "--groups needs --groupby"),
    (["--groupby", "nope"], "no such obs column"),
    (["--groupby", "group", "--groups", "A", "Z"], "group 'Z' has no cells"),
    (["--layers", "a1", "zz"], "layer 'zz' not found"),
    (["--layers", "a1", "a2", "--layer", "a1"], "exclude each other"),
    (["--groupby", "group", "--ci", "95"], "did you mean 0.95"),
    (["--groupby", "group", "--min-cells", "0"], "--min-cells"),
    (["--groupby", "group", "--capture", "nope"], "capture column 'nope' not found"),
    (["--groupby", "group", "--genes", "gene0001,xyz"], "not in"),
    (["--groupby", "group", "--table", "out.txt"], ".csv or .tsv"),
])
def test_bad_arguments_one_line(small_h5ad, capsys, argv, fragment):
    code, _, err = _run(capsys, small_h5ad, *argv)
    _one_line_error(code, err, fragment)


def test_file_errors(small_h5ad, capsys, tmp_path):
    code, _, err = _run(capsys, tmp_path / "missing.h5ad", "--groupby", "group")
    _one_line_error(code, err, "missing.h5ad")
    code, _, err = _run(capsys, small_h5ad, small_h5ad, small_h5ad)
    _one_line_error(code, err, "got 3")
    code, _, err = _run(capsys, small_h5ad, small_h5ad, "-o", tmp_path / "x.h5ad")
    _one_line_error(code, err, "single input file")
    code, _, err = _run(capsys, small_h5ad, "--groupby", "group", "-o", small_h5ad)
    _one_line_error(code, err, "refusing to overwrite the input file")
    # outputs are checked before any work, and nothing is left behind
    code, _, err = _run(capsys, small_h5ad, "--groupby", "group", "--table",
                        tmp_path / "nodir" / "t.csv")
    _one_line_error(code, err, "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.h5ad"]


def test_capture_recorded_by_a_fit_is_reused(small_h5ad, capsys, tmp_path):
    """`telegraph fit -o` stores the capture it used; `telegraph test --capture fit`
    tests with exactly that capture."""
    fitted = tmp_path / "fitted.h5ad"
    assert main(["fit", str(small_h5ad), "--capture", "0.4", "--interval", "wald",
                 "--no-progress", "-o", str(fitted)]) == 0
    capsys.readouterr()
    code, _, err = _run(capsys, fitted, "--groupby", "group", "--capture", "fit",
                        "--interval", "wald", "--table", tmp_path / "a.csv")
    assert code == 0, err
    code, _, err = _run(capsys, fitted, "--groupby", "group", "--capture", "0.4",
                        "--interval", "wald", "--table", tmp_path / "b.csv")
    assert code == 0, err
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)
    code, _, err = _run(capsys, small_h5ad, "--groupby", "group", "--capture", "fit")
    _one_line_error(code, err, "--capture fit", "telegraph fit")
