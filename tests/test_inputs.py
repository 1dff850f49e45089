"""telegraph.inputs: every user argument resolved once, and what is recorded of it."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import telegraph as tg
from telegraph import config
from telegraph.inputs import (Capture, FitSettings, KDeg, capture_in_range, capture_record,
                              check_capture, gene_positions, k_deg_record, resolve_capture,
                              resolve_captures, resolve_k_deg, row_totals, size_factors)


# --------------------------------------------------------------------------- capture range


def test_capture_in_range_is_the_half_open_unit_interval():
    v = np.array([-0.1, 0.0, 1e-300, 0.5, 1.0, 1.0 + 1e-12, np.nan, np.inf])
    np.testing.assert_array_equal(capture_in_range(v),
                                  [False, False, True, True, True, False, False, False])


@pytest.mark.parametrize("capture, n, match", [
    (1.5, 3, r"in \(0, 1\]; got 1.5"),
    (0.0, None, r"in \(0, 1\]"),
    ([0.5, 0.5], 3, "2 entries for 3 cells"),
    ([0.5, np.nan, 0.5], 3, "finite; found nan at cell 1"),
    ([0.5, 2.0, 0.5], 3, r"found 2 at cell 1.*capture='total'"),
    (np.full((3, 2), 0.5), 3, "1-D"),
    (["a", "b", "c"], 3, "numeric"),
])
def test_check_capture_names_the_problem(capture, n, match):
    with pytest.raises(ValueError, match=match):
        check_capture(capture, n)


def test_every_public_entry_point_uses_the_one_check():
    """The same range is refused by the fit, the histograms, the simulator and
    returned as NaN by the distribution functions (scipy.stats style)."""
    X = np.ones((4, 2))
    bad = np.array([0.5, 0.5, 1.2, 0.5])
    for call in (lambda: tg.fit(X, capture=bad, progress=False),
                 lambda: tg.histogram.count_histograms(X, capture=bad),
                 lambda: tg.simulate(1.0, 1.0, 1.0, n_cells=4, t=1.0, capture=bad)):
        with pytest.raises(ValueError, match=r"\(0, 1\]; found 1.2 at cell 2"):
            call()
    assert np.isnan(tg.logpmf(1, 1.0, 1.0, 1.0, capture=1.2))
    assert np.isfinite(tg.logpmf(1, 1.0, 1.0, 1.0, capture=1.0))


# --------------------------------------------------------------------------- capture sources


def test_sources_of_each_kind():
    obs = pd.DataFrame({"eff": [0.2, 0.4, 0.8]})
    none = resolve_capture(None, n_cells=3)
    assert none.efficiency is None and none.syn_scale == 1.0 and none.record() == {"kind": "none"}
    value = resolve_capture(0.3, n_cells=3)
    np.testing.assert_array_equal(value.efficiency, [0.3] * 3)
    assert value.record() == {"kind": "value", "value": 0.3}
    col = resolve_capture("eff", n_cells=3, obs=obs)
    np.testing.assert_array_equal(col.efficiency, [0.2, 0.4, 0.8])
    assert col.record() == {"kind": "obs", "key": "eff"}
    arr = resolve_capture(np.array([0.1, 0.2, 0.3]), n_cells=3)
    rec = arr.record()
    assert rec["kind"] == "array"
    np.testing.assert_array_equal(rec["values"], [0.1, 0.2, 0.3])
    assert "values" not in arr.record(arrays=False)
    with pytest.raises(KeyError, match="capture column 'nope' not found.*'eff'.*total"):
        resolve_capture("nope", n_cells=3, obs=obs)
    with pytest.raises(ValueError, match="not understood"):
        resolve_capture("nope", n_cells=3)


@pytest.mark.parametrize("column, match", [
    (["a", "b", "c"], r"capture='cap' \(column 'cap' of adata.obs\) holds non-numeric values "
                      r"\(dtype object, e.g. 'a'\)"),
    (pd.Categorical(["0.5", "0.5", "0.2"]), r"column 'cap' .* non-numeric .*dtype category"),
    ([True, False, True], r"column 'cap' .* holds boolean values"),
    ([0.5, 2.0, 0.5], r"capture='cap' \(column 'cap' of adata.obs\): .*found 2 at cell 1"),
])
def test_obs_column_problems_name_capture_and_the_column(column, match):
    """Audit: a string column failed with "could not convert string to float: 'a'", a
    boolean one was taken as capture 1; both are refused naming capture and the column."""
    obs = pd.DataFrame({"cap": column})
    with pytest.raises(ValueError, match=match):
        resolve_capture("cap", n_cells=3, obs=obs, where="adata.obs")
    X = np.random.default_rng(0).poisson(3.0, (3, 2)).astype(float)
    adata = ad.AnnData(X, obs=obs.set_axis([f"c{i}" for i in range(3)]))
    with pytest.raises(ValueError, match="column 'cap' of adata.obs"):
        tg.tl.fit(adata, capture="cap", progress=False)


def test_numeric_obs_columns_of_any_storage_are_accepted():
    for column in (pd.Categorical([0.2, 0.4, 0.2]), pd.array([0.2, 0.4, 0.2], dtype=object),
                   np.array([1, 1, 1])):
        cap = resolve_capture("cap", n_cells=3, obs=pd.DataFrame({"cap": column}))
        assert cap.efficiency.dtype == np.float64 and np.all(cap.efficiency > 0)


def test_boolean_capture_is_refused_like_boolean_counts():
    with pytest.raises(ValueError, match="numeric"):
        tg.fit(np.ones((4, 2)), capture=np.ones(4, bool), progress=False)
    with pytest.raises(ValueError, match="numeric"):
        resolve_capture([True, True, False], n_cells=3)


def test_records_resolve_to_the_same_capture():
    obs = pd.DataFrame({"eff": [0.2, 0.4, 0.8]})
    totals = np.array([10.0, 20.0, 60.0])
    for given in (None, 0.3, "eff", np.array([0.1, 0.2, 0.3]), "total"):
        first = resolve_capture(given, n_cells=3, obs=obs, totals=totals)
        again = resolve_capture(first.record(), n_cells=3, obs=obs, totals=totals)
        assert again.record(arrays=False) == first.record(arrays=False)
        assert again.syn_scale == first.syn_scale
        if first.efficiency is None:
            assert again.efficiency is None
        else:
            np.testing.assert_array_equal(again.efficiency, first.efficiency)
    resolved = resolve_capture(0.3, n_cells=3)
    assert resolve_capture(resolved, n_cells=3) is resolved


def test_size_factors_and_the_way_back():
    totals = np.array([10.0, 20.0, 60.0])           # mean 30: size factors 1/3, 2/3, 2
    cap = resolve_capture("total", n_cells=3, totals=lambda: totals)
    np.testing.assert_allclose(cap.factors, [1 / 3, 2 / 3, 2.0])
    np.testing.assert_allclose(cap.efficiency, [1 / 6, 1 / 3, 1.0])   # divided by the maximum
    assert cap.syn_scale == pytest.approx(0.5)
    table = pd.DataFrame({"k_syn": [4.0], "k_syn_ci_low": [2.0], "burst_size": [8.0],
                          "mean_expression": [1.0], "k_on": [3.0], "burst_frequency": [3.0]})
    cap.to_user_scale(table)
    assert table.iloc[0].to_dict() == {"k_syn": 2.0, "k_syn_ci_low": 1.0, "burst_size": 4.0,
                                       "mean_expression": 0.5, "k_on": 3.0,
                                       "burst_frequency": 3.0}
    with pytest.raises(ValueError, match="1 cells have a total count of 0"):
        size_factors([3.0, 0.0, 2.0])


def test_two_groups_share_one_scale():
    t1, t2 = np.array([10.0, 30.0]), np.array([20.0, 60.0, 80.0])   # mean 40
    c1, c2 = resolve_captures(["total", "total"], n_cells=[2, 3], totals=[t1, t2])
    np.testing.assert_allclose(np.concatenate([c1.factors, c2.factors]),
                               np.array([10, 30, 20, 60, 80]) / 40)
    assert c1.syn_scale == c2.syn_scale == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both groups"):
        resolve_captures(["total", None], n_cells=[2, 3], totals=[t1, t2])
    a, b = resolve_captures([np.full(2, 0.5), None], n_cells=[2, 3])
    assert a.syn_scale == b.syn_scale == 1.0 and b.efficiency is None


def test_row_totals_of_every_layout():
    X = np.array([[1.0, np.nan, 2.0], [0.0, 0.0, 0.0], [5.0, 1.0, np.nan]])
    want = [3.0, 0.0, 6.0]
    for layout in (X, np.asfortranarray(X), sp.csr_matrix(X), sp.csc_matrix(X),
                   sp.coo_matrix(X)):
        np.testing.assert_array_equal(row_totals(layout), want)


def test_size_factors_do_not_depend_on_a_gene_selection():
    """Fitting a subset of genes with capture='total' gives those genes the
    results they get in a fit of all genes (size factors from all genes)."""
    adata = tg.datasets.example(n_cells=300, n_genes=12, seed=2)
    full = adata.copy()
    tg.tl.fit(full, capture="total", interval="wald", progress=False)
    part = adata.copy()
    tg.tl.fit(part, capture="total", interval="wald", genes=["gene0003", "gene0007"],
              progress=False)
    a = tg.get.kinetics_df(full).loc[["gene0003", "gene0007"]]
    b = tg.get.kinetics_df(part).loc[["gene0003", "gene0007"]]
    pd.testing.assert_frame_equal(a, b)


# --------------------------------------------------------------------------- k_deg, genes, settings


def test_k_deg_kinds_and_records():
    var = pd.DataFrame({"kd": [0.5, 1.0, 2.0]})
    assert resolve_k_deg(None, n_genes=3).values is None
    np.testing.assert_array_equal(resolve_k_deg(0.7, n_genes=3).values, [0.7] * 3)
    col = resolve_k_deg("kd", n_genes=3, var=var)
    np.testing.assert_array_equal(col.values, [0.5, 1.0, 2.0])
    assert col.record() == {"kind": "var", "key": "kd"} == k_deg_record("kd")
    again = resolve_k_deg(col.record(), n_genes=3, var=var)
    np.testing.assert_array_equal(again.values, col.values)
    arr = resolve_k_deg([1.0, 2.0, 3.0], n_genes=3)
    np.testing.assert_array_equal(resolve_k_deg(arr.record(), n_genes=3).values, [1, 2, 3])
    np.testing.assert_array_equal(arr.subset([2, 0]).values, [3.0, 1.0])
    with pytest.raises(ValueError, match="2 values for 3 genes"):
        resolve_k_deg([1.0, 2.0], n_genes=3)
    with pytest.raises(ValueError, match="positive"):
        resolve_k_deg([1.0, -2.0, 1.0], n_genes=3)
    with pytest.raises(KeyError, match="'nope' not found.*'kd'"):
        resolve_k_deg("nope", n_genes=3, var=var)
    assert isinstance(resolve_k_deg(KDeg(None), n_genes=3), KDeg)


def test_gene_positions():
    names = np.array(["a", "b", "c", "b"], dtype=object)
    np.testing.assert_array_equal(gene_positions(["c", "a"], names), [2, 0])
    np.testing.assert_array_equal(gene_positions("b", names), [1])          # first occurrence
    np.testing.assert_array_equal(gene_positions([True, False, True, False], names), [0, 2])
    np.testing.assert_array_equal(gene_positions([-1, 0], names), [3, 0])
    np.testing.assert_array_equal(gene_positions(slice(1, 3), names), [1, 2])
    with pytest.raises(KeyError, match="2 gene.*'x', 'y'"):
        gene_positions(["a", "x", "y"], names)
    with pytest.raises(IndexError, match="out of range"):
        gene_positions([4], names)
    with pytest.raises(ValueError, match="4 genes"):
        gene_positions([True, False], names)
    with pytest.raises(ValueError, match="no gene"):
        gene_positions([], names)
    assert gene_positions([], names, allow_empty=True).shape == (0,)


def test_fit_settings_validate_once():
    s = FitSettings()
    assert (s.ci, s.interval, s.min_cells) == (config.CI, config.INTERVAL, config.MIN_CELLS)
    assert s.record()["profile"] == list(config.PROFILE)
    assert FitSettings(profile="all").profile == config.PROFILE_TARGETS
    assert FitSettings(profile="k_off, burst_size").profile == ("k_off", "burst_size")
    for kwargs, match in [({"ci": 95}, "did you mean 0.95"), ({"ci": 0.0}, r"\(0, 1\)"),
                          ({"interval": "bootstrap"}, "interval"),
                          ({"min_cells": 0}, "at least 1"), ({"min_cells": 2.5}, "whole"),
                          ({"profile": ("k_on_x",)}, "profile targets")]:
        with pytest.raises(ValueError, match=match):
            FitSettings(**kwargs)


# --------------------------------------------------------------------------- stored and reused


def test_what_a_fit_used_is_stored_and_read_back(tmp_path):
    adata = tg.datasets.example(n_cells=200, n_genes=6, seed=1)
    kd = np.linspace(0.5, 2.0, adata.n_vars)
    cap = adata.obs["capture"].to_numpy() * 0.9
    tg.tl.fit(adata, capture=cap, k_deg=kd, interval="wald", progress=False)
    path = tmp_path / "fitted.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    got = tg.get.capture(back)
    assert isinstance(got, Capture) and got.kind == "array"
    np.testing.assert_array_equal(got.efficiency, cap)
    np.testing.assert_array_equal(tg.get.k_deg(back).values, kd)
    rec = tg.get.fit_record(back)
    assert rec["interval"] == "wald" and rec["n_genes_fitted"] == 6
    assert capture_record("total") == {"kind": "total"}


def test_records_written_by_version_0_1_are_understood():
    adata = tg.datasets.example(n_cells=50, n_genes=3, seed=1)
    adata.uns["telegraph"] = {"capture": "capture", "k_deg": "none (units of k_deg)",
                              "layer": "X"}
    np.testing.assert_array_equal(tg.get.capture(adata).efficiency,
                                  adata.obs["capture"].to_numpy())
    assert tg.get.k_deg(adata).values is None
    adata.uns["telegraph"]["capture"] = "array"
    with pytest.raises(ValueError, match="pass the same capture="):
        tg.get.capture(adata)
