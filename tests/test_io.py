"""File formats in and atomic results out (telegraph.io)."""

import csv
import gzip
import hashlib
import os
import socket
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from telegraph import io as tio

# A small genes x cells table with a missing value, as txburst writes them.
GENES = ["Actb", "NA", "Gapdh"]          # "NA" is a gene name here, not a missing value
CELLS = ["c1", "c2", "c3", "c4"]
COUNTS = np.array([[3, 0, np.nan, 7],
                   [0, 1, 2, 0],
                   [10, 12, 0, np.nan]])   # genes x cells


def _fingerprint(path):
    """Content hash and mtime of a file, or of every file under a directory."""
    paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
        h.update(str(p.stat().st_mtime_ns).encode())
    return h.hexdigest()


def _write_table(path, sep=",", missing="", opener=open):
    with opener(path, "wt", newline="") as fh:
        w = csv.writer(fh, delimiter=sep)
        w.writerow(["gene", *CELLS])
        for g, row in zip(GENES, COUNTS):
            w.writerow([g, *(missing if np.isnan(v) else int(v) for v in row)])
    return path


def _assert_table_read(adata):
    assert adata.shape == (4, 3)                      # cells x genes
    assert list(adata.obs_names) == CELLS
    assert list(adata.var_names) == GENES
    assert adata.X.dtype == np.float64                # NaN present: stays float
    np.testing.assert_array_equal(adata.X, COUNTS.T)  # NaN positions compare equal here


# --------------------------------------------------------------------------- text tables

@pytest.mark.parametrize("name,sep,opener", [
    ("counts.csv", ",", open),
    ("counts.tsv", "\t", open),
    ("counts.txt", "\t", open),
    ("counts.txt", ",", open),
    ("counts.csv.gz", ",", gzip.open),
    ("counts.tsv.gz", "\t", gzip.open),
])
def test_text_table_layout_blanks_are_nan(tmp_path, name, sep, opener):
    path = _write_table(tmp_path / name, sep=sep, opener=opener)
    before = _fingerprint(path)
    _assert_table_read(tio.read(path))
    assert _fingerprint(path) == before


@pytest.mark.parametrize("writer", ["pandas", "R"])
def test_blank_first_header_cell(tmp_path, writer):
    """DataFrame.to_csv() and R's write.csv leave the row-name column unnamed
    (``,c1,...`` and ``"","c1",...``); both read like a named one."""
    path = tmp_path / "counts.csv"
    df = pd.DataFrame(COUNTS, index=GENES, columns=CELLS)
    if writer == "pandas":
        df.to_csv(path)
        assert path.read_text().startswith(",c1,")
    else:
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC)
            w.writerow(["", *CELLS])
            for g, row in zip(GENES, COUNTS):
                w.writerow([g, *("NA" if np.isnan(v) else int(v) for v in row)])
        assert path.read_text().startswith('"","c1",')
    before = _fingerprint(path)
    _assert_table_read(tio.read(path))
    assert _fingerprint(path) == before
    # the transposed layout too
    df.T.to_csv(path)
    _assert_table_read(tio.read(path, cells_in_rows=True))


def test_whitespace_separated_txt(tmp_path):
    path = tmp_path / "counts.txt"
    lines = ["gene " + " ".join(CELLS)]
    for g, row in zip(GENES, COUNTS):
        lines.append(g + "  " + "  ".join("NA" if np.isnan(v) else str(int(v)) for v in row))
    path.write_text("\n".join(lines) + "\n")
    _assert_table_read(tio.read(path))


@pytest.mark.parametrize("marker", ["NA", "NaN", "nan"])
def test_other_missing_markers_in_counts(tmp_path, marker):
    _assert_table_read(tio.read(_write_table(tmp_path / "c.csv", missing=marker)))


def test_whole_counts_without_missing_are_int64(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("gene,a,b\ng1,1,2\ng2,0.0,5\n")
    adata = tio.read(path)
    assert adata.X.dtype == np.int64
    np.testing.assert_array_equal(adata.X, [[1, 0], [2, 5]])


def test_fractional_counts_are_passed_through(tmp_path):
    # refusing non-integer counts is the fitting library's job, with its own message
    path = tmp_path / "c.csv"
    path.write_text("gene,a,b\ng1,1.5,2\n")
    adata = tio.read(path)
    assert adata.X.dtype == np.float64 and adata.X[0, 0] == 1.5


def test_cells_in_rows_is_the_transpose(tmp_path):
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["cell", *GENES])
        for c, col in zip(CELLS, COUNTS.T):
            w.writerow([c, *("" if np.isnan(v) else int(v) for v in col)])
    _assert_table_read(tio.read(path, cells_in_rows=True))
    # read the other way, the same file is 3 "cells" x 4 "genes"
    assert tio.read(path).shape == (3, 4)


def test_genes_column_by_position_and_name(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,symbol,a,b\nENSG1,Actb,1,2\nENSG2,Gapdh,3,4\n")
    # an extra id column is not counts: reported, not silently dropped or fitted
    with pytest.raises(ValueError, match="non-numeric value 'ENSG1' in column 'id'"):
        tio.read(path, genes_column=1)
    path.write_text("a,b,symbol\n1,2,Actb\n3,4,Gapdh\n")
    adata = tio.read(path, genes_column="symbol")
    assert list(adata.var_names) == ["Actb", "Gapdh"] and list(adata.obs_names) == ["a", "b"]
    np.testing.assert_array_equal(adata.X, [[1, 3], [2, 4]])
    assert list(tio.read(path, genes_column=-1).var_names) == ["Actb", "Gapdh"]
    with pytest.raises(ValueError, match="no column named 'gene'"):
        tio.read(path, genes_column="gene")
    with pytest.raises(ValueError, match="out of range"):
        tio.read(path, genes_column=7)


def test_non_numeric_value_is_named(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("gene,a,b\ng1,1,2\ng2,3,oops\n")
    with pytest.raises(ValueError, match=r"non-numeric value 'oops' in column 'b', row 'g2'"):
        tio.read(path)


def test_wrong_separator_gives_a_hint(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("gene;a;b\ng1;1;2\n")
    with pytest.raises(ValueError, match="no count columns"):
        tio.read(path)


def test_empty_and_header_only_tables(tmp_path):
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        tio.read(empty)
    header = tmp_path / "h.csv"
    header.write_text("gene,a,b\n")
    with pytest.raises(ValueError, match="no data rows"):
        tio.read(header)


def test_duplicated_gene_names_warn(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("gene,a,b\ng1,1,2\ng1,3,4\n")
    with pytest.warns(UserWarning, match="1 duplicated gene name"):
        adata = tio.read(path)
    assert adata.shape == (2, 2)


def test_larsson_txburst_file(larsson_dir):
    """The real txburst layout: values and missing cells match an independent csv parse."""
    path = larsson_dir / "SS3_c57_UMIs_concat_S.csv"
    before = _fingerprint(path)
    adata = tio.read(path)
    assert _fingerprint(path) == before
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert adata.shape == (len(header) - 1, len(body)) == (28, 10727)
    assert list(adata.obs_names) == header[1:]
    assert list(adata.var_names) == [r[0] for r in body]
    ref = np.array([[np.nan if v == "" else float(v) for v in r[1:]] for r in body]).T
    assert np.isnan(ref).sum() > 0
    np.testing.assert_array_equal(adata.X, ref)


# --------------------------------------------------------------------------- h5ad / zarr / loom

def _anndata_with_layers():
    rng = np.random.default_rng(1)
    X = rng.poisson(2.0, size=(6, 4)).astype(np.int64)
    adata = ad.AnnData(X=sp.csr_matrix(X),
                       obs=pd.DataFrame({"capture": np.linspace(0.2, 0.7, 6)},
                                        index=[f"c{i}" for i in range(6)]),
                       var=pd.DataFrame(index=[f"g{j}" for j in range(4)]))
    adata.layers["counts"] = X + 1
    adata.layers["spliced"] = X * 2
    return adata


def test_h5ad_with_layers(tmp_path):
    src = _anndata_with_layers()
    path = tmp_path / "d.h5ad"
    src.write_h5ad(path)
    before = _fingerprint(path)
    adata = tio.read(path, layer="counts")
    np.testing.assert_array_equal(adata.layers["counts"], src.layers["counts"])
    np.testing.assert_array_equal(adata.X.toarray(), src.X.toarray())
    assert list(adata.obs["capture"]) == list(src.obs["capture"])
    with pytest.raises(ValueError) as err:
        tio.read(path, layer="raw")
    msg = str(err.value)
    assert "layer 'raw' not found" in msg and "'counts'" in msg and "'spliced'" in msg
    assert _fingerprint(path) == before


def test_h5ad_without_x_needs_a_layer(tmp_path):
    src = _anndata_with_layers()
    src.X = None
    path = tmp_path / "nox.h5ad"
    src.write_h5ad(path)
    with pytest.raises(ValueError, match="no X matrix; choose a layer"):
        tio.read(path)
    assert tio.read(path, layer="counts").n_vars == 4


def test_zarr(tmp_path):
    src = _anndata_with_layers()
    path = tmp_path / "d.zarr"
    src.write_zarr(path)
    before = _fingerprint(path)
    adata = tio.read(path, layer="spliced")
    np.testing.assert_array_equal(adata.X.toarray(), src.X.toarray())
    np.testing.assert_array_equal(adata.layers["spliced"], src.layers["spliced"])
    assert _fingerprint(path) == before


def test_loom(tmp_path):
    pytest.importorskip("loompy")
    src = _anndata_with_layers()
    path = tmp_path / "d.loom"
    src.write_loom(path)
    before = _fingerprint(path)
    adata = tio.read(path, layer="spliced")
    assert adata.shape == src.shape
    # X is the loom main matrix even though a "spliced" layer exists
    np.testing.assert_array_equal(adata.X.toarray(), src.X.toarray())
    np.testing.assert_array_equal(adata.layers["spliced"].toarray(), src.layers["spliced"])
    assert list(adata.obs_names) == list(src.obs_names)
    assert list(adata.var_names) == list(src.var_names)
    assert _fingerprint(path) == before


def test_loom_without_loompy_says_what_to_install(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "loompy", None)  # makes `import loompy` fail
    path = tmp_path / "d.loom"
    path.write_bytes(b"not really a loom file")
    with pytest.raises(ValueError, match="pip install loompy"):
        tio.read(path)


# --------------------------------------------------------------------------- 10x

# counts as features x barcodes, the orientation of matrix.mtx
MTX = np.array([[1, 0, 3], [0, 0, 2], [4, 5, 0], [7, 0, 0]])
FEATURES = [("ENSG01", "Actb", "Gene Expression"), ("ENSG02", "Dup", "Gene Expression"),
            ("ENSG03", "Dup", "Gene Expression"), ("AB1", "CD3", "Antibody Capture")]
BARCODES = ["AAAC-1", "AAAG-1", "AAAT-1"]


def _write_10x_dir(directory, *, legacy=False, gz=True, prefix=""):
    directory.mkdir()
    op = gzip.open if gz else open
    z = ".gz" if gz else ""
    with op(directory / f"{prefix}matrix.mtx{z}", "wb") as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(MTX))
    name = "genes.tsv" if legacy else "features.tsv"
    with op(directory / f"{prefix}{name}{z}", "wt") as fh:
        for f in FEATURES:
            fh.write("\t".join(f[:2] if legacy else f) + "\n")
    with op(directory / f"{prefix}barcodes.tsv{z}", "wt") as fh:
        fh.write("\n".join(BARCODES) + "\n")
    return directory


@pytest.mark.parametrize("legacy,gz,prefix", [
    (False, True, ""),            # Cell Ranger >= 3 (scanpy)
    (True, False, ""),            # Cell Ranger 2 (scanpy)
    (False, False, ""),           # v3 files gunzipped by hand (own reader)
    (False, True, "sampleA_"),    # GEO-style prefix
])
def test_10x_mtx_directory(tmp_path, legacy, gz, prefix):
    d = _write_10x_dir(tmp_path / "filtered", legacy=legacy, gz=gz, prefix=prefix)
    before = _fingerprint(d)
    adata = tio.read(d)
    n_keep = 4 if legacy else 3          # v3: only "Gene Expression" features
    assert list(adata.obs_names) == BARCODES
    assert adata.n_vars == n_keep
    assert list(adata.var_names[:3]) == ["Actb", "Dup", "Dup-1"]   # symbols, made unique
    assert list(adata.var["gene_ids"][:3]) == ["ENSG01", "ENSG02", "ENSG03"]
    X = adata.X.toarray() if sp.issparse(adata.X) else adata.X
    np.testing.assert_array_equal(X, MTX[:n_keep].T)
    assert _fingerprint(d) == before
    assert sorted(p.name for p in d.iterdir()) == sorted(p.name for p in d.iterdir()
                                                         if not p.name.endswith(".h5ad"))


def test_10x_mtx_file_path_and_incomplete_dir(tmp_path):
    d = _write_10x_dir(tmp_path / "m")
    assert tio.read(d / "matrix.mtx.gz").shape == (3, 3)
    (d / "barcodes.tsv.gz").unlink()
    with pytest.raises(ValueError, match="missing barcodes.tsv"):
        tio.read(d)


def _write_10x_h5(path):
    X = sp.csc_matrix(MTX)            # features x barcodes, stored column by column
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["data"] = X.data.astype(np.int32)
        m["indices"] = X.indices.astype(np.int64)
        m["indptr"] = X.indptr.astype(np.int64)
        m["shape"] = np.array(X.shape, dtype=np.int32)
        m["barcodes"] = np.array(BARCODES, dtype="S")
        feats = m.create_group("features")
        feats["id"] = np.array([f[0] for f in FEATURES], dtype="S")
        feats["name"] = np.array([f[1] for f in FEATURES], dtype="S")
        feats["feature_type"] = np.array([f[2] for f in FEATURES], dtype="S")
        feats["genome"] = np.array(["GRCh38"] * len(FEATURES), dtype="S")
    return path


def test_10x_h5(tmp_path):
    path = _write_10x_h5(tmp_path / "filtered_feature_bc_matrix.h5")
    before = _fingerprint(path)
    adata = tio.read(path)
    assert list(adata.obs_names) == BARCODES
    assert list(adata.var_names) == ["Actb", "Dup", "Dup-1"]
    np.testing.assert_array_equal(adata.X.toarray(), MTX[:3].T)
    assert _fingerprint(path) == before


def test_h5_that_is_not_10x(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ValueError, match="as a 10x Genomics .h5 matrix"):
        tio.read(path)


# --------------------------------------------------------------------------- read errors

def test_missing_path_names_it(tmp_path):
    missing = tmp_path / "nope.h5ad"
    with pytest.raises(FileNotFoundError, match="nope.h5ad"):
        tio.read(missing)


@pytest.mark.parametrize("name", ["counts.xlsx", "counts", "counts.h5ad.gz"])
def test_unknown_format_lists_supported(tmp_path, name):
    path = tmp_path / name
    path.write_text("x")
    with pytest.raises(ValueError) as err:
        tio.read(path)
    assert ".h5ad" in str(err.value) and ".csv" in str(err.value) and ".loom" in str(err.value)


def test_plain_directory_is_rejected(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="neither a 10x Genomics matrix directory"):
        tio.read(tmp_path / "d")


def test_options_that_do_not_apply(tmp_path):
    src = _anndata_with_layers()
    src.write_h5ad(tmp_path / "d.h5ad")
    with pytest.raises(ValueError, match="applies only to .csv/.tsv/.txt"):
        tio.read(tmp_path / "d.h5ad", cells_in_rows=True)
    table = _write_table(tmp_path / "c.csv")
    with pytest.raises(ValueError, match="layer 'counts' not found .* available layers: none"):
        tio.read(table, layer="counts")


# --------------------------------------------------------------------------- atomic writes

def _listing(directory):
    return sorted(p.name for p in directory.iterdir())


def test_write_h5ad_round_trip_and_mode(tmp_path):
    src = _anndata_with_layers()
    out = tio.write_h5ad_atomic(src, tmp_path / "out.h5ad")
    assert _listing(tmp_path) == ["out.h5ad"]
    back = ad.read_h5ad(out)
    np.testing.assert_array_equal(back.layers["counts"], src.layers["counts"])
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_write_h5ad_refuses_the_input(tmp_path, monkeypatch):
    src = _anndata_with_layers()
    path = tmp_path / "in.h5ad"
    src.write_h5ad(path)
    before = _fingerprint(path)
    (tmp_path / "link.h5ad").symlink_to(path)
    monkeypatch.chdir(tmp_path)
    for target in (path, tmp_path / "link.h5ad", "in.h5ad", tmp_path / "." / "in.h5ad"):
        with pytest.raises(ValueError, match="refusing to overwrite the input file"):
            tio.write_h5ad_atomic(src, target, refuse=[path])
    assert _fingerprint(path) == before
    assert _listing(tmp_path) == ["in.h5ad", "link.h5ad"]


def test_write_path_checks(tmp_path):
    src = _anndata_with_layers()
    with pytest.raises(ValueError, match=r"must end in \.h5ad"):
        tio.write_h5ad_atomic(src, tmp_path / "out.csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tio.write_h5ad_atomic(src, tmp_path / "no" / "out.h5ad")
    (tmp_path / "dir.h5ad").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        tio.write_h5ad_atomic(src, tmp_path / "dir.h5ad")
    with pytest.raises(ValueError, match=r"\.csv or \.tsv"):
        tio.write_table_atomic(pd.DataFrame({"a": [1]}), tmp_path / "t.txt")


class _Boom(Exception):
    pass


@pytest.mark.parametrize("exc", [_Boom, KeyboardInterrupt])
def test_failed_h5ad_write_leaves_nothing(tmp_path, monkeypatch, exc):
    src = _anndata_with_layers()
    real_write = ad.AnnData.write_h5ad

    def half_write(self, filename, **kw):
        real_write(self, filename, **kw)          # the temp file is complete here ...
        with open(filename, "r+b") as fh:         # ... then gets damaged and the writer dies
            fh.truncate(100)
        raise exc("disk full")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", half_write)
    with pytest.raises(exc):
        tio.write_h5ad_atomic(src, tmp_path / "out.h5ad")
    assert _listing(tmp_path) == []
    # an existing file at the destination survives a failed rewrite untouched
    monkeypatch.setattr(ad.AnnData, "write_h5ad", real_write)
    tio.write_h5ad_atomic(src, tmp_path / "out.h5ad")
    before = _fingerprint(tmp_path / "out.h5ad")
    monkeypatch.setattr(ad.AnnData, "write_h5ad", half_write)
    with pytest.raises(exc):
        tio.write_h5ad_atomic(src, tmp_path / "out.h5ad")
    assert _listing(tmp_path) == ["out.h5ad"]
    assert _fingerprint(tmp_path / "out.h5ad") == before


def test_failed_table_write_leaves_nothing(tmp_path, monkeypatch):
    df = pd.DataFrame({"gene": ["a"], "k_on": [1.0]})

    def broken(self, path, **kw):
        with open(path, "w") as fh:
            fh.write("gene,k_o")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(KeyboardInterrupt):
        tio.write_table_atomic(df, tmp_path / "t.csv")
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("suffix,sep", [(".csv", ","), (".tsv", "\t")])
def test_table_round_trip(tmp_path, suffix, sep):
    df = pd.DataFrame({"gene": ["a", "b", "c"],
                       "k_on": [0.1234567890123456789, np.nan, 3.0],
                       "ci_high": [np.inf, 2.0, -np.inf],
                       "converged": [True, False, True]})
    path = tio.write_table_atomic(df, tmp_path / f"t{suffix}")
    assert _listing(tmp_path) == [f"t{suffix}"]
    text = path.read_text().splitlines()
    assert text[0] == sep.join(df.columns)
    assert text[2].split(sep)[1] == ""                # NaN -> empty field
    back = pd.read_csv(path, sep=sep)
    pd.testing.assert_frame_equal(back, df)           # full float precision, +-inf kept


def test_table_refuses_the_input(tmp_path):
    path = _write_table(tmp_path / "counts.csv")
    before = _fingerprint(path)
    with pytest.raises(ValueError, match="refusing to overwrite"):
        tio.write_table_atomic(pd.DataFrame({"a": [1]}), path, refuse=[path])
    assert _fingerprint(path) == before


def test_refuse_ignores_none(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tio.write_table_atomic(pd.DataFrame({"a": [1]}), tmp_path / "t.csv", refuse=[None])


def test_txburst_results_as_published_or_as_csv(tmp_path, larsson_dir):
    """txburst publishes its results as pickles (txburstML.py: per gene an array
    (k_on, k_off, k_syn) and a keep flag; txburstTEST.py: both groups' arrays
    and the two p-values); they read the same as the tidy CSV copies."""
    import pandas as pd
    from telegraph.io import find_txburst_results, read_txburst_results
    ml_csv = find_txburst_results(larsson_dir, "SS3_c57_UMIs_concat_G2M")
    assert ml_csv.name == "SS3_c57_UMIs_concat_G2M_txburst_ML.csv"
    ml = read_txburst_results(ml_csv)
    # the pickle as txburstML.py writes it
    params = [np.array(r) for r in ml[["k_on", "k_off", "k_syn"]].to_numpy()]
    pd.to_pickle(pd.DataFrame([params, list(ml["keep"])], columns=ml.index).T,
                 tmp_path / "SS3_c57_UMIs_concat_G2M_ML.pkl")
    found = find_txburst_results(tmp_path, "SS3_c57_UMIs_concat_G2M")
    assert found.suffix == ".pkl"
    pd.testing.assert_frame_equal(read_txburst_results(found), ml, check_names=False)
    # the test pickle as txburstTEST.py writes it (rows: estimates 1, 2, p_bf, p_bs, name)
    test_csv = find_txburst_results(larsson_dir, "SS3_c57_UMIs_concat_S",
                                    "SS3_c57_UMIs_concat_G2M")
    test = read_txburst_results(test_csv)
    rows = [(np.array(r[:3]), np.array(r[3:6]), r[6], r[7], g) for g, r in
            zip(test.index, test[["k_on_1", "k_off_1", "k_syn_1", "k_on_2", "k_off_2",
                                  "k_syn_2", "p_bf", "p_bs"]].to_numpy())]
    pd.to_pickle(pd.DataFrame(rows, index=test.index),
                 tmp_path / "SS3_c57_UMIs_concat_S_vs_SS3_c57_UMIs_concat_G2M_TEST.pkl")
    found = find_txburst_results(tmp_path, "SS3_c57_UMIs_concat_S", "SS3_c57_UMIs_concat_G2M")
    got = read_txburst_results(found)
    pd.testing.assert_frame_equal(got, test[got.columns], check_names=False)
    with pytest.raises(FileNotFoundError, match="_ML.pkl and .*_txburst_ML.csv"):
        find_txburst_results(tmp_path, "nothing")


_KILLED_WRITER = """
import sys, time
import pandas as pd
from telegraph import io as tio

def slow(self, path, **kw):
    with open(path, "w") as fh:
        fh.write("partial")
        fh.flush()
    time.sleep(120)

pd.DataFrame.to_csv = slow
tio.write_table_atomic(pd.DataFrame({"a": [1]}), sys.argv[1])
"""


def test_next_write_removes_what_a_killed_write_left(tmp_path):
    """Audit: SIGKILL during a write leaves a hidden temporary file, and later runs
    never removed it. The next write of the same output removes temporary files of
    processes that are gone; a live writer's, another output's and foreign files stay."""
    target = tmp_path / "t.csv"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], cwd=root)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".t.csv.tmp*")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    (left,) = tmp_path.glob(".t.csv.tmp*")
    assert left.read_text() == "partial"
    old = tmp_path / ".t.csv.tmpab12cd34"              # an older version's name
    old.write_text("x")
    os.utime(old, (time.time() - 7200,) * 2)
    live = tmp_path / f".t.csv.tmp{os.getpid()}@{socket.gethostname()}~live"
    other = tmp_path / ".u.csv.tmp1@nowhere~x"
    mine = tmp_path / ".t.csv.notes"
    for p in (live, other, mine):
        p.write_text("x")
    tio.write_table_atomic(pd.DataFrame({"a": [2]}), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["t.csv", live.name, other.name, mine.name])
    assert pd.read_csv(target)["a"].tolist() == [2]
