"""``telegraph fit``: argument handling, file round trips, errors, the example report.

Most tests run the CLI in-process against a stand-in for ``telegraph.tl.fit``
that follows the library's contract (same keywords, var/uns outputs,
ValueError on bad counts), so they test the CLI's own logic quickly and
exactly. The end-to-end tests at the bottom run the real fit.
"""

import ctypes
import hashlib
import os
import subprocess
import sys
import types
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import telegraph
import telegraph.cli.fit as cli_fit
from telegraph.cli import build_parser, main

COLUMNS = ["k_on", "k_off", "k_syn", "burst_frequency", "burst_size",
           "burst_frequency_ci_low", "burst_frequency_ci_high",
           "burst_size_ci_low", "burst_size_ci_high",
           "k_on_ci_low", "k_on_ci_high", "k_off_ci_low", "k_off_ci_high",
           "k_syn_ci_low", "k_syn_ci_high",
           "loglik", "n_cells", "mean", "regime", "converged", "gof_pval"]


class FakeTL:
    """Contract-following stand-in for telegraph.tl.fit; records its calls.

    ``mode="moments"`` estimates burst size and frequency from the first two
    moments (negative-binomial limit); ``mode="truth"`` returns the example's
    true kinetics times ``scale`` with intervals truth*[0.5, 2] (so the
    example report's numbers are known exactly).
    """

    def __init__(self, mode="moments", scale=1.0):
        self.mode, self.scale, self.calls = mode, scale, []

    def fit(self, adata, *, layer=None, capture=None, k_deg=None, genes=None, min_cells=10,
            ci=0.95, interval="profile", round_counts=False, n_jobs=None, progress=True,
            key_added="telegraph", copy=False, profile=("burst_frequency", "burst_size")):
        self.calls.append(dict(layer=layer, capture=capture, k_deg=k_deg, genes=genes,
                               min_cells=min_cells, ci=ci, interval=interval, profile=profile,
                               round_counts=round_counts, n_jobs=n_jobs, progress=progress,
                               key_added=key_added, copy=copy))
        X = adata.X if layer is None else adata.layers[layer]
        X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=float)
        if isinstance(capture, str) and capture != "total":
            adata.obs[capture]                      # KeyError like the real one
        if isinstance(k_deg, str):
            adata.var[k_deg]
        if np.any(X < 0):
            raise ValueError("counts must be non-negative; found negative values in 1 gene")
        if not round_counts and np.any(np.nan_to_num(X) % 1 != 0):
            raise ValueError("counts must be whole numbers\nuse round_counts=True to round")
        sel = np.ones(adata.n_vars, bool) if genes is None else adata.var_names.isin(genes)
        n = adata.n_vars
        out = {c: np.full(n, np.nan) for c in COLUMNS}
        if self.mode == "truth":
            bf = adata.var["true_burst_frequency"].to_numpy() * self.scale
            bs = adata.var["true_burst_size"].to_numpy() * self.scale
        else:
            m = np.nanmean(X, axis=0)
            v = np.nanvar(X, axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                bs = np.maximum(v / m - 1.0, 1e-3)
                bf = m / bs
        out.update(k_on=bf, k_off=np.ones(n), k_syn=bs, burst_frequency=bf, burst_size=bs,
                   burst_frequency_ci_low=bf * 0.5, burst_frequency_ci_high=bf * 2,
                   burst_size_ci_low=bs * 0.5, burst_size_ci_high=bs * 2,
                   n_cells=np.sum(~np.isnan(X), axis=0).astype(float),
                   mean=np.nanmean(X, axis=0))
        for c in COLUMNS:
            if c == "regime":
                adata.var[f"{key_added}_{c}"] = np.where(sel, "bursty", "not_fitted")
            elif c == "converged":
                adata.var[f"{key_added}_{c}"] = sel
            else:
                adata.var[f"{key_added}_{c}"] = np.where(sel, out[c], np.nan)
        adata.uns[key_added] = {"ci": ci, "interval": interval, "version": "fake"}
        return adata if copy else None


@pytest.fixture
def fake(monkeypatch):
    """Install a FakeTL as telegraph.tl; the real module is put back afterwards."""
    import telegraph.tl  # noqa: F401  (imported first, so that it is what gets restored)
    stub = FakeTL()
    module = types.ModuleType("telegraph.tl")
    module.fit = stub.fit
    monkeypatch.setitem(sys.modules, "telegraph.tl", module)
    monkeypatch.setattr(telegraph, "tl", module, raising=False)
    return stub


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(capsys, *argv):
    code = main(["fit", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("telegraph fit: error: ")
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture
def counts_csv(tmp_path):
    """A txburst-style genes x cells table with one missing value."""
    rng = np.random.default_rng(3)
    X = rng.poisson(3.0, size=(5, 30)).astype(float)   # genes x cells
    X[1, 4] = np.nan
    genes = [f"g{i}" for i in range(5)]
    df = pd.DataFrame(X, index=pd.Index(genes, name="gene"),
                      columns=[f"c{j}" for j in range(30)])
    path = tmp_path / "counts.csv"
    df.to_csv(path, na_rep="", float_format="%.0f")
    return path


@pytest.fixture
def counts_h5ad(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.poisson(2.0, size=(40, 6)).astype(np.int64)
    adata = ad.AnnData(
        X=sp.csr_matrix(X),
        obs=pd.DataFrame({"eff": np.linspace(0.1, 0.9, 40),
                          "batch": ["a", "b"] * 20}, index=[f"c{i}" for i in range(40)]),
        var=pd.DataFrame({"kdeg": np.linspace(0.1, 1.0, 6), "symbol": list("ABCDEF")},
                         index=[f"g{j}" for j in range(6)]))
    adata.layers["raw"] = X + 1
    path = tmp_path / "data.h5ad"
    adata.write_h5ad(path)
    return path


# --------------------------------------------------------------------------- help

def _fit_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices["fit"].format_help()


def test_help_explains_every_option_with_units():
    text = _fit_help()
    flat = " ".join(text.split())
    for opt in ["--table", "-o", "--layer", "--capture", "--k-deg", "--genes", "--min-cells",
                "--ci", "--interval", "--profile", "--round", "--cells-in-rows", "--jobs",
                "--no-progress",
                "--example", "COUNTS"]:
        assert opt in text, opt
    for phrase in ["in units of k_deg", "1/time", "burst size = k_syn / k_off",
                   "mRNA molecules per burst", "Burst frequency = k_on", "(0, 1]", "'total'",
                   "CSV to stdout", "blank = missing", "Refuses to overwrite the input"]:
        assert phrase in flat, phrase


# --------------------------------------------------------------------------- outputs

def test_csv_to_stdout(fake, capsys, counts_csv):
    code, out, err = _run(capsys, counts_csv)
    assert code == 0, err
    table = pd.read_csv(pd.io.common.StringIO(out))
    assert list(table["gene"]) == [f"g{i}" for i in range(5)]
    assert list(table.columns) == ["gene", *COLUMNS]
    # the table comes from the fit, row for row (gene g1 has one missing cell)
    assert table.loc[1, "n_cells"] == 29 and table.loc[0, "n_cells"] == 30
    call = fake.calls[0]
    assert call["progress"] is None             # the library decides: stderr is no terminal
    assert call["key_added"] == "telegraph" and call["layer"] is None


@pytest.mark.parametrize("suffix,sep", [(".csv", ","), (".tsv", "\t")])
def test_table_and_h5ad_outputs(fake, capsys, counts_h5ad, tmp_path, suffix, sep):
    table_path, out_path = tmp_path / f"res{suffix}", tmp_path / "res.h5ad"
    code, out, err = _run(capsys, counts_h5ad, "--table", table_path, "-o", out_path)
    assert code == 0, err
    assert out == ""                                    # files requested: nothing on stdout
    table = pd.read_csv(table_path, sep=sep)
    assert list(table["gene"]) == [f"g{j}" for j in range(6)]
    res = ad.read_h5ad(out_path)
    src = ad.read_h5ad(counts_h5ad)
    np.testing.assert_array_equal(res.X.toarray(), src.X.toarray())
    np.testing.assert_array_equal(res.layers["raw"], src.layers["raw"])
    pd.testing.assert_frame_equal(res.obs, src.obs)
    assert list(res.var["symbol"]) == list("ABCDEF")
    np.testing.assert_allclose(res.var["telegraph_burst_size"], table["burst_size"])
    assert res.uns["telegraph"]["version"] == "fake"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["data.h5ad", table_path.name, "res.h5ad"])


def test_options_are_passed_to_the_library(fake, capsys, counts_h5ad, tmp_path):
    code, _, err = _run(capsys, counts_h5ad, "--layer", "raw", "--capture", "eff",
                        "--k-deg", "kdeg", "--min-cells", "3", "--ci", "0.9",
                        "--interval", "wald", "--round", "--jobs", "2", "--no-progress",
                        "--profile", "all", "--table", tmp_path / "t.csv")
    assert code == 0, err
    call = dict(fake.calls[0])
    capture, k_deg = call.pop("capture"), call.pop("k_deg")
    assert call == dict(layer="raw", genes=None, min_cells=3, ci=0.9, interval="wald",
                        profile="all", round_counts=True, n_jobs=2, progress=False,
                        key_added="telegraph", copy=False)
    # obs/var columns are resolved by the library's resolver and keep their source
    assert capture.source == {"kind": "obs", "key": "eff"}
    assert k_deg.source == {"kind": "var", "key": "kdeg"}


def test_numeric_capture_and_k_deg_keep_their_value(fake, capsys, counts_h5ad, tmp_path):
    code, _, err = _run(capsys, counts_h5ad, "--capture", "0.25", "--k-deg", "0.5",
                        "--table", tmp_path / "t.csv")
    assert code == 0, err
    call = fake.calls[0]
    assert call["capture"].source == {"kind": "value", "value": 0.25}
    assert call["k_deg"].source == {"kind": "value", "value": 0.5}
    code, _, _ = _run(capsys, counts_h5ad, "--capture", "total", "--table", tmp_path / "t.csv")
    assert code == 0 and fake.calls[1]["capture"] == "total"


def test_genes_list_and_file(fake, capsys, counts_h5ad, tmp_path):
    code, out, err = _run(capsys, counts_h5ad, "--genes", "g4, g1,g4")
    assert code == 0, err
    assert fake.calls[0]["genes"] == ["g4", "g1"]
    assert list(pd.read_csv(pd.io.common.StringIO(out))["gene"]) == ["g1", "g4"]
    gene_file = tmp_path / "genes.txt"
    gene_file.write_text("# my genes\ng2\n\ng5  # the last one\n")
    code, out, err = _run(capsys, counts_h5ad, "--genes", f"@{gene_file}")
    assert code == 0, err
    assert fake.calls[1]["genes"] == ["g2", "g5"]


def test_refit_of_an_output_replaces_old_results(capsys, counts_h5ad, tmp_path):
    first, second = tmp_path / "a.h5ad", tmp_path / "b.h5ad"
    assert _run(capsys, counts_h5ad, "-o", first, "--interval", "wald", "--min-cells", "3")[0] == 0
    adata = ad.read_h5ad(first)
    adata.var["telegraph_stale"] = 1.0
    adata.write_h5ad(first)
    assert _run(capsys, first, "-o", second, "--genes", "g0", "--interval", "wald",
                "--min-cells", "3")[0] == 0
    res = ad.read_h5ad(second)
    assert "telegraph_stale" not in res.var
    assert res.var["telegraph_regime"].tolist()[1:] == ["not_fitted"] * 5
    assert res.var["telegraph_regime"].iloc[0] != "not_fitted"
    assert res.uns["telegraph"]["n_genes_fitted"] == 1


def test_cells_in_rows(fake, capsys, tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("cell\tgA\tgB\nc1\t1\t0\nc2\t2\t5\nc3\t0\t1\n")
    code, out, err = _run(capsys, path, "--cells-in-rows")
    assert code == 0, err
    table = pd.read_csv(pd.io.common.StringIO(out))
    assert list(table["gene"]) == ["gA", "gB"] and list(table["n_cells"]) == [3, 3]


# --------------------------------------------------------------------------- errors

def test_missing_input_file(fake, capsys, tmp_path):
    code, out, err = _run(capsys, tmp_path / "absent.h5ad")
    _assert_one_line_error(code, err, "absent.h5ad", "no such file")
    assert not fake.calls and out == ""


def test_unknown_format(fake, capsys, tmp_path):
    path = tmp_path / "counts.xlsx"
    path.write_text("x")
    code, _, err = _run(capsys, path)
    _assert_one_line_error(code, err, "unknown file format", ".h5ad", ".csv")


def test_missing_layer_lists_layers(fake, capsys, counts_h5ad):
    code, _, err = _run(capsys, counts_h5ad, "--layer", "spliced")
    _assert_one_line_error(code, err, "layer 'spliced' not found", "'raw'")
    assert not fake.calls


def test_missing_obs_and_var_keys(fake, capsys, counts_h5ad):
    code, _, err = _run(capsys, counts_h5ad, "--capture", "size_factor")
    _assert_one_line_error(code, err, "--capture 'size_factor'", "'eff'", "'batch'", "total")
    code, _, err = _run(capsys, counts_h5ad, "--k-deg", "half_life")
    _assert_one_line_error(code, err, "--k-deg 'half_life'", "'kdeg'")
    assert not fake.calls


@pytest.mark.parametrize("argv,fragment", [
    (["--capture", "1.5"], "(0, 1]"),
    (["--capture", "0"], "(0, 1]"),
    (["--k-deg", "-1"], "positive"),
    (["--ci", "95"], "did you mean 0.95"),
    (["--ci", "1"], "(0, 1)"),
    (["--min-cells", "0"], "at least 1"),
    (["--jobs", "0"], "at least 1"),
    (["--genes", "g1,nope,zilch"], "2 gene(s) not in"),
    (["--genes", " , "], "no gene names"),
    (["--genes", "@/nonexistent/genes.txt"], "cannot read gene list"),
    (["--cells-in-rows"], "applies only to .csv/.tsv/.txt"),
])
def test_bad_options(fake, capsys, counts_h5ad, argv, fragment):
    code, _, err = _run(capsys, counts_h5ad, *argv)
    _assert_one_line_error(code, err, fragment)
    assert not fake.calls


def test_input_xor_example(fake, capsys, counts_h5ad):
    code, _, err = _run(capsys)
    _assert_one_line_error(code, err, "no input")
    code, _, err = _run(capsys, counts_h5ad, "--example")
    _assert_one_line_error(code, err, "not both")


def test_bad_counts_exit_2_and_write_nothing(fake, capsys, tmp_path):
    path = tmp_path / "neg.csv"
    path.write_text("gene,a,b\ng1,1,-2\n")
    code, out, err = _run(capsys, path, "--table", tmp_path / "t.csv", "-o", tmp_path / "o.h5ad")
    _assert_one_line_error(code, err, "non-negative")
    path.write_text("gene,a,b\ng1,1,2.5\n")
    code, out, err = _run(capsys, path, "--table", tmp_path / "t.csv")
    _assert_one_line_error(code, err, "whole numbers use --round")   # newline folded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["neg.csv"]
    code, out, err = _run(capsys, path, "--round")
    assert code == 0, err


@pytest.mark.parametrize("flag,name", [("-o", "data.h5ad"), ("--table", "counts.csv")])
def test_refuses_to_overwrite_input(fake, capsys, counts_h5ad, counts_csv, flag, name):
    src = counts_h5ad if name.endswith("h5ad") else counts_csv
    before = _digest(src)
    code, _, err = _run(capsys, src, flag, src)
    _assert_one_line_error(code, err, "refusing to overwrite the input file")
    assert _digest(src) == before and not fake.calls     # refused before any work


def test_output_checked_before_fitting(fake, capsys, counts_h5ad, tmp_path):
    code, _, err = _run(capsys, counts_h5ad, "-o", tmp_path / "missing_dir" / "o.h5ad")
    _assert_one_line_error(code, err, "does not exist")
    code, _, err = _run(capsys, counts_h5ad, "--table", tmp_path / "t.xlsx")
    _assert_one_line_error(code, err, ".csv or .tsv")
    code, _, err = _run(capsys, counts_h5ad, "-o", tmp_path / "o.loom")
    _assert_one_line_error(code, err, ".h5ad")
    assert not fake.calls


def test_interrupt_while_writing_leaves_nothing(fake, capsys, counts_h5ad, tmp_path,
                                                monkeypatch):
    def interrupted(self, filename, **kw):
        with open(filename, "wb") as fh:
            fh.write(b"\x89HDF partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ad.AnnData, "write_h5ad", interrupted)
    code, _, err = _run(capsys, counts_h5ad, "-o", tmp_path / "o.h5ad")
    assert code == 130 and "nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5ad"]


def test_interrupt_during_the_h5ad_write_says_the_table_was_written(fake, capsys, counts_h5ad,
                                                                     tmp_path, monkeypatch):
    """Audit: Ctrl-C while -o was written said "nothing was written" although the
    --table file was there (and complete)."""
    def interrupted(self, filename, **kw):
        with open(filename, "wb") as fh:
            fh.write(b"\x89HDF partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ad.AnnData, "write_h5ad", interrupted)
    table = tmp_path / "t.csv"
    code, _, err = _run(capsys, counts_h5ad, "--table", table, "-o", tmp_path / "o.h5ad")
    assert code == 130
    assert "nothing was written" not in err
    assert f"interrupted; {table} written (complete), nothing else" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5ad", "t.csv"]
    assert len(pd.read_csv(table)) == 6


_SIGTERM_DURING_WRITE = """
import os, signal, sys, time
import anndata as ad
from telegraph.cli import main

def killed(self, filename, **kw):
    with open(filename, "wb") as fh:
        fh.write(b"partial")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)

ad.AnnData.write_h5ad = killed
sys.exit(main(["fit", sys.argv[1], "--table", sys.argv[2], "-o", sys.argv[3],
               "--interval", "wald"]))
"""


def test_sigterm_is_handled_like_ctrl_c(counts_csv, tmp_path):
    """Audit: SIGTERM (a batch scheduler's stop) killed the command mid-write and left
    a hidden temporary file; now it is removed, and the message says what was written."""
    out = tmp_path / "out"
    out.mkdir()
    table, h5ad = out / "t.csv", out / "o.h5ad"
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", _SIGTERM_DURING_WRITE, str(counts_csv),
                          str(table), str(h5ad)], cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 143, run.stderr[-2000:]
    assert f"terminated; {table} written (complete), nothing else" in run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["t.csv"]


def _without_root_powers():
    """preexec_fn for a subprocess that obeys file permissions even as root: the
    capabilities that override them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) are
    dropped from the bounding set, so the exec'd program does not get them."""
    if os.geteuid() != 0:
        return None

    def drop():
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):                    # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, cap, 0, 0, 0) != 0:      # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
    return drop


def test_read_only_output_directory_is_refused_before_the_fit(tmp_path):
    """Audit: a read-only output directory was found only after the whole fit. The
    input here has a negative count: had the fit run first, that would be the error."""
    counts = tmp_path / "counts.csv"
    counts.write_text("gene,a,b,c\ng1,1,-2,3\n")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    root = Path(__file__).resolve().parents[1]
    try:
        run = subprocess.run([sys.executable, "-m", "telegraph", "fit", str(counts),
                              "--table", str(ro / "t.csv")], cwd=root, capture_output=True,
                             text=True, timeout=300, preexec_fn=_without_root_powers())
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot run a process that obeys file permissions here: {exc}")
    finally:
        ro.chmod(0o755)
    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.strip().splitlines() == [
        f"telegraph fit: error: cannot write {ro / 't.csv'}: directory {str(ro)!r} is "
        f"not writable (Permission denied)"]
    assert list(ro.iterdir()) == []


# --------------------------------------------------------------------------- --example

@pytest.fixture(scope="module")
def example():
    return telegraph.datasets.example()


def _example_with(monkeypatch, example, stub):
    module = types.ModuleType("telegraph.tl")
    module.fit = stub.fit
    monkeypatch.setitem(sys.modules, "telegraph.tl", module)
    monkeypatch.setattr(telegraph, "tl", module, raising=False)
    monkeypatch.setattr(telegraph.datasets, "example", lambda: example.copy())


def _report_row(out, name):
    line = next(line for line in out.splitlines() if line.startswith(name))
    return line.split()


def test_example_report_exact_when_fit_returns_truth(monkeypatch, capsys, example):
    stub = FakeTL(mode="truth")
    _example_with(monkeypatch, example, stub)
    code, out, err = _run(capsys, "--example")
    assert code == 0, err
    n_same = int((example.var["differential"] == "none").sum())
    assert f"compared on the {n_same} genes" in out
    for q in ("burst_frequency", "burst_size"):
        row = _report_row(out, q)
        assert row[1] == f"{n_same}/{n_same}"
        assert float(row[2]) == 0.0 and float(row[3]) == 1.0
        assert row[4] == "100.0%"
    # the example's obs["capture"]
    assert stub.calls[0]["capture"].source == {"kind": "obs", "key": "capture"}
    assert "gene,k_on" not in out                       # a report, not the table


@pytest.mark.parametrize("scale", [3.0, 1 / 3])
def test_example_report_measures_error_and_coverage(monkeypatch, capsys, example, scale):
    # estimates scale x the truth: relative error |scale - 1|, rank order intact, and
    # intervals [scale/2, 2 scale] x truth miss the truth from above (3) or below (1/3)
    stub = FakeTL(mode="truth", scale=scale)
    _example_with(monkeypatch, example, stub)
    code, out, err = _run(capsys, "--example", "--ci", "0.9")
    assert code == 0, err
    for q in ("burst_frequency", "burst_size"):
        row = _report_row(out, q)
        assert float(row[2]) == pytest.approx(abs(scale - 1), abs=1e-3)
        assert float(row[3]) == 1.0
        assert row[4] == "0.0%"
    assert "90% interval" in out


def test_example_writes_outputs_too(monkeypatch, capsys, example, tmp_path):
    _example_with(monkeypatch, example, FakeTL(mode="truth"))
    code, out, err = _run(capsys, "--example", "--table", tmp_path / "ex.csv")
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "ex.csv")) == example.n_vars


# --------------------------------------------------------------------------- end to end (real fit)
# The h5ad test runs the default (profile) intervals, the others Wald intervals.

@pytest.fixture(scope="module")
def real_tl():
    import telegraph.tl
    return telegraph.tl


@pytest.fixture(scope="module")
def small():
    return telegraph.datasets.example(n_cells=300, n_genes=8)


def _reference(X, interval="wald", **kw):
    """The library's own table for the same counts: what the CLI must reproduce."""
    return telegraph.fit(X, interval=interval, progress=False, **kw)


def _assert_same_table(table, ref):
    assert list(table["gene"]) == list(ref["gene"])
    assert list(table.columns) == list(ref.columns)
    for c in ref.columns:
        if c == "gene":
            continue
        if ref[c].dtype.kind in "fiub":
            np.testing.assert_allclose(table[c].to_numpy(float), ref[c].to_numpy(float),
                                       rtol=1e-12, equal_nan=True, err_msg=c)
        else:
            assert list(table[c].astype(str)) == list(ref[c].astype(str)), c


def test_end_to_end_h5ad(real_tl, small, capsys, tmp_path):
    src = tmp_path / "small.h5ad"
    small.write_h5ad(src)
    before = _digest(src)
    code, out, err = _run(capsys, src, "--capture", "capture",
                          "--table", tmp_path / "t.csv", "-o", tmp_path / "o.h5ad")
    assert code == 0, err
    ref = _reference(small.X, interval="profile", capture=small.obs["capture"].to_numpy(),
                     genes=list(small.var_names))
    _assert_same_table(pd.read_csv(tmp_path / "t.csv"), ref)
    res = ad.read_h5ad(tmp_path / "o.h5ad")
    _assert_same_table(telegraph.get.kinetics_df(res).reset_index(), ref)
    np.testing.assert_array_equal(res.X.toarray(), small.X.toarray())
    assert list(res.var["true_k_on"]) == list(small.var["true_k_on"])
    assert res.uns["telegraph"]["interval"] == "profile"
    assert _digest(src) == before
    # ignoring the capture efficiencies changes the answer: the option really is used
    code, out, _ = _run(capsys, src, "--interval", "wald", "--genes", "gene0000")
    no_capture = pd.read_csv(pd.io.common.StringIO(out))
    assert len(no_capture) == 1
    assert not np.isclose(no_capture["burst_size"][0], ref["burst_size"].iloc[0])
    # a subset of genes still writes a valid h5ad with every gene (unfitted ones empty)
    code, out, err = _run(capsys, src, "--capture", "capture",
                          "--genes", "gene0001,gene0005", "-o", tmp_path / "sub.h5ad")
    assert code == 0, err
    sub = ad.read_h5ad(tmp_path / "sub.h5ad")
    assert sub.n_vars == small.n_vars
    assert sub.var["telegraph_converged"].dtype == bool
    fitted = telegraph.get.kinetics_df(sub, genes=["gene0001", "gene0005"]).reset_index()
    _assert_same_table(fitted, ref.iloc[[1, 5]])


def test_end_to_end_csv_with_missing_values(real_tl, small, capsys, tmp_path):
    X = small.X.toarray().astype(float)
    rng = np.random.default_rng(7)
    X[rng.random(X.shape) < 0.05] = np.nan          # allele-resolved style missing values
    df = pd.DataFrame(X.T, index=pd.Index(small.var_names, name="gene"),
                      columns=small.obs_names)
    path = tmp_path / "counts.csv"
    df.to_csv(path, na_rep="", float_format="%.0f")
    code, out, err = _run(capsys, path, "--interval", "wald", "--min-cells", "5")
    assert code == 0, err
    ref = _reference(X, genes=list(small.var_names), min_cells=5)
    assert (ref["n_missing"] > 0).all()
    _assert_same_table(pd.read_csv(pd.io.common.StringIO(out)), ref)
    # the transposed layout gives the same fit
    df.T.rename_axis("cell").to_csv(tmp_path / "t.tsv", sep="\t", na_rep="",
                                    float_format="%.0f")
    code, out2, err = _run(capsys, tmp_path / "t.tsv", "--cells-in-rows", "--interval",
                           "wald", "--min-cells", "5")
    assert code == 0, err
    assert out2 == out


def test_end_to_end_bad_counts(real_tl, capsys, tmp_path):
    path = tmp_path / "frac.csv"
    path.write_text("gene," + ",".join(f"c{i}" for i in range(12)) + "\n"
                    "g1," + ",".join(["1.5"] + ["2"] * 11) + "\n")
    code, _, err = _run(capsys, path, "--table", tmp_path / "t.csv")
    _assert_one_line_error(code, err, "1.5", "--round")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frac.csv"]
    code, out, err = _run(capsys, path, "--round", "--interval", "wald")
    assert code == 0, err


def test_example_end_to_end(real_tl, monkeypatch, capsys):
    # the real fit and report on a smaller example (the full one takes tens of seconds)
    small_example = telegraph.datasets.example(n_cells=400, n_genes=20)
    monkeypatch.setattr(telegraph.datasets, "example", lambda: small_example.copy())
    code, out, err = _run(capsys, "--example", "--interval", "wald")
    assert code == 0, err
    n_same = int((small_example.var["differential"] == "none").sum())
    for q in ("burst_frequency", "burst_size"):
        row = _report_row(out, q)
        n_est, n_all = map(int, row[1].split("/"))
        assert n_all == n_same and n_est >= 1
        assert 0.0 <= float(row[2]) and -1.0 <= float(row[3]) <= 1.0
        assert row[4].endswith("%")


@pytest.mark.slow
def test_console_script_end_to_end(real_tl, small, tmp_path):
    """The installed entry point as a user runs it: success, refusal, missing file."""
    import subprocess

    src = tmp_path / "small.h5ad"
    small.write_h5ad(src)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "telegraph", "fit", *map(str, args)],
                              capture_output=True, text=True, timeout=600)

    r = run(src, "--capture", "capture", "--interval", "wald", "-o", tmp_path / "o.h5ad",
            "--table", tmp_path / "o.tsv")
    assert r.returncode == 0, r.stderr
    assert len(pd.read_csv(tmp_path / "o.tsv", sep="\t")) == small.n_vars
    r = run(tmp_path / "o.h5ad", "-o", tmp_path / "o.h5ad")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "refusing to overwrite the input file" in r.stderr
    r = run(tmp_path / "missing.csv")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "missing.csv" in r.stderr


def test_scalar_capture_is_stored_and_reused_by_plots(capsys, tmp_path):
    """`telegraph fit --example --capture 0.3 -o ex.h5ad`, then plotting a gene's
    fitted law from the written file uses that capture (it once failed: the
    CLI turned 0.3 into an array and only the label "array" was stored)."""
    out = tmp_path / "ex.h5ad"
    code, _, err = _run(capsys, "--example", "--capture", "0.3", "--genes",
                        "gene0000,gene0001", "--interval", "wald", "-o", out)
    assert code == 0, err
    written = ad.read_h5ad(out)
    assert dict(written.uns["telegraph"]["capture"]) == {"kind": "value", "value": 0.3}
    cap = telegraph.get.capture(written)
    np.testing.assert_array_equal(cap.efficiency, np.full(written.n_obs, 0.3))
    ax = telegraph.pl.distribution(written, "gene0000")
    fitted = next(line for line in ax.get_lines() if "fitted" in line.get_label())
    row = telegraph.get.kinetics_df(written).loc["gene0000"]
    n = np.arange(len(fitted.get_ydata()))
    expected = telegraph.pl._distribution.fitted_pmf(n, row, np.full(written.n_obs, 0.3))
    np.testing.assert_allclose(fitted.get_ydata(), expected, rtol=1e-12)
    # a capture of 0.3 for every cell, not the example's per-cell obs["capture"]
    other = telegraph.pl._distribution.fitted_pmf(n, row, written.obs["capture"].to_numpy())
    assert not np.allclose(fitted.get_ydata(), other)


def test_summary_on_success_and_no_bar_into_a_log(real_tl, small, capsys, tmp_path):
    """stderr that is not a terminal (a log file) gets the summary and no
    progress bar; --progress forces the bar; a cold cache is announced first."""
    src = tmp_path / "small.h5ad"
    small.write_h5ad(src)
    out_csv = tmp_path / "t.csv"
    code, out, err = _run(capsys, src, "--interval", "wald", "--table", out_csv)
    assert code == 0, err
    table = pd.read_csv(out_csv)
    n_fit = int(table["regime"].isin(["telegraph", "bursty", "bimodal", "poisson"]).sum())
    assert f"telegraph fit: fitted {n_fit} of {len(table)} genes in " in err
    for regime, n in table["regime"].value_counts().items():
        assert f"{regime} {n}" in err
    assert f"wrote {out_csv}" in err
    assert "%|" not in err and "it/s" not in err and "gene/s" not in err
    assert "compiling" not in err           # the kernels are compiled by now
    code, out, err = _run(capsys, src, "--interval", "wald", "--table", out_csv, "--progress")
    assert code == 0 and "telegraph fit:" in err and "%|" in err
    code, out, err = _run(capsys, src, "--progress", "--no-progress")
    assert code == 2 and "exclude each other" in err


def test_compile_notice_before_the_first_call(monkeypatch, capsys):
    import telegraph.cli._common as common
    from telegraph.kernels import fit as kfit
    from telegraph.kernels import is_compiled
    telegraph.fit(np.ones((20, 1)), progress=False)
    assert is_compiled(kfit.fit_genes)
    common.compile_notice("fit")
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(common, "is_compiled", lambda k: False)
    common.compile_notice("fit")
    assert "compiling kernels, once per installation" in capsys.readouterr().err


def test_cold_cache_is_detected(tmp_path, monkeypatch):
    """A cached kernel that was never compiled is reported as such, then as
    compiled once it ran and once its cache is on disk (a new process)."""
    import subprocess
    mod = tmp_path / "coldmod.py"
    mod.write_text("from numba import njit\n\n@njit(cache=True)\ndef f(x):\n    return x + 1\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import coldmod; "
            "from telegraph.kernels import is_compiled; a = is_compiled(coldmod.f); "
            "coldmod.f(1); print(a, is_compiled(coldmod.f))")
    run = lambda: subprocess.run([sys.executable, "-c", code, str(tmp_path)],  # noqa: E731
                                 capture_output=True, text=True, check=True).stdout.split()
    assert run() == ["False", "True"]
    assert run() == ["True", "True"]


def test_api_progress_follows_the_terminal(capsys):
    X = np.random.default_rng(0).poisson(3.0, size=(50, 40))
    telegraph.fit(X, interval="wald")                 # default: stderr is no terminal here
    assert "%|" not in capsys.readouterr().err
    telegraph.fit(X, interval="wald", progress=True)
    assert "%|" in capsys.readouterr().err


def test_recovery_report_spearman_matches_scipy():
    """The example report's Spearman r is scipy.stats.spearmanr's (average ranks, ties
    included), computed without importing scipy.stats."""
    from scipy import stats

    rng = np.random.default_rng(7)
    n = 40
    truth = np.round(rng.lognormal(0, 1, n), 1)           # rounded: ties in both columns
    est = np.round(truth * rng.lognormal(0, 0.5, n), 1)
    var = pd.DataFrame({"differential": ["none"] * n,
                        "true_burst_frequency": truth, "true_burst_size": truth[::-1].copy(),
                        "telegraph_burst_frequency": est,
                        "telegraph_burst_size": est[::-1].copy()},
                       index=[f"g{i}" for i in range(n)])
    adata = ad.AnnData(np.zeros((3, n)), var=var)
    report = cli_fit.recovery_report(adata, key="telegraph")
    line = next(l for l in report.splitlines() if l.startswith("burst_frequency"))
    rho = float(line.split()[3])
    assert len(np.unique(truth)) < n and len(np.unique(est)) < n
    assert rho == pytest.approx(stats.spearmanr(est, truth)[0], abs=5e-4)
