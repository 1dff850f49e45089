"""The named views of the kernels' result rows (FitRows, DiffRows).

Outside the kernels the rows are read by name only; these tests pin the
names to the documented positions: every column has exactly one name, each
name reads its column, the information blocks unpack to the symmetric
matrices the kernel packed, and the views neither copy nor allow writes.
"""

from __future__ import annotations


import numpy as np
import pytest

from telegraph.kernels import differential as kdiff
from telegraph.kernels import fit as kfit
from telegraph.kernels.gof import (LAW_NEGBINOM, LAW_POISSON, LAW_POISSON_BETA, LAW_ZIP,
                                   pearson_gof)
from telegraph.kernels.models import gene_bins, sort_bins, telegraph_eval

# the documented position of each scalar entry of a fit row
FIT_POSITIONS = {
    "log_a": 0, "log_b": 1, "log_lam": 2, "loglik": 3, "converged": 4, "regime": 5,
    "loglik_nb": 6, "loglik_zip": 7, "loglik_poisson": 8, "nb_log_a": 9, "nb_log_beta": 10,
    "zip_f": 11, "zip_log_lam": 12, "poisson_mu": 13, "n_iter": 14, "at_limit": 15,
    "gof_stat": 28, "gof_cells": 29, "gof_law": 48, "n_iter_nb": 49, "n_iter_zip": 50,
    "converged_nb": 51, "converged_zip": 52,
}


def _fake_fit_rows(n=7, seed=0):
    """Rows with a distinct value in every entry (valid codes and flags)."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(n, kfit.N_RESULT))
    raw[:, kfit.R_CONV] = rng.integers(0, 2, n)
    raw[:, kfit.R_CONV_NB] = rng.integers(0, 2, n)
    raw[:, kfit.R_CONV_ZIP] = rng.integers(0, 2, n)
    raw[:, kfit.R_REGIME] = np.arange(n) % 6
    raw[:, kfit.R_AT_LIMIT] = np.arange(n) % 4
    return raw


def test_fit_names_cover_every_column_once():
    cols = list(kfit.FitRows.COLUMNS.values())
    for start, length in kfit.FitRows.BLOCKS.values():
        cols += range(start, start + length)
    assert sorted(cols) == list(range(kfit.N_RESULT))
    assert kfit.FitRows.COLUMNS == FIT_POSITIONS
    assert kfit.FitRows.BLOCKS == {"ci": (16, 8), "se": (24, 4), "info": (30, 6),
                                   "grouped_info": (36, 6), "gof_info": (42, 6)}


def test_fit_properties_read_their_columns():
    raw = _fake_fit_rows()
    rows = kfit.FitRows(raw)
    assert len(rows) == raw.shape[0]
    for name, j in kfit.FitRows.COLUMNS.items():
        got = np.asarray(getattr(rows, name), dtype=float)
        np.testing.assert_array_equal(got, raw[:, j], err_msg=name)
    assert rows.converged.dtype == bool
    assert rows.regime.dtype.kind == "i" and rows.at_limit.dtype.kind == "i"
    np.testing.assert_array_equal(rows.log_beta, raw[:, 2] - raw[:, 1])
    np.testing.assert_array_equal(rows.theta, raw[:, :3])
    for t, _name in enumerate(kfit.FitRows.TARGETS):
        lo, hi = rows.ci(t)
        np.testing.assert_array_equal(lo, raw[:, 16 + 2 * t])
        np.testing.assert_array_equal(hi, raw[:, 17 + 2 * t])
        np.testing.assert_array_equal(rows.se(t), raw[:, 24 + t])


def test_fit_targets_follow_the_kernel():
    from telegraph.kernels import optimize
    assert kfit.FitRows.TARGETS == ("log_a", "log_beta", "log_b", "log_lam")
    assert (optimize.TARGET_LOG_A, optimize.TARGET_LOG_BETA, optimize.TARGET_LOG_B,
            optimize.TARGET_LOG_LAM) == (0, 1, 2, 3)


def test_fit_codes_of_unwritten_rows():
    raw = np.full((2, kfit.N_RESULT), np.nan)
    rows = kfit.FitRows(raw)
    assert list(rows.regime) == [kfit.REGIME_NO_DATA] * 2
    assert list(rows.at_limit) == [-1, -1]
    assert not rows.converged.any()


def test_info_blocks_unpack_symmetric():
    raw = _fake_fit_rows()
    rows = kfit.FitRows(raw)
    order = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    for m, start in ((rows.info(), 30), (rows.grouped_info(), 36), (rows.gof_info(), 42)):
        assert m.shape == (raw.shape[0], 3, 3)
        np.testing.assert_array_equal(m, np.swapaxes(m, 1, 2))
        for k, (i, j) in enumerate(order):
            np.testing.assert_array_equal(m[:, i, j], raw[:, start + k])


def _genes(seed=3):
    """Three genes of telegraph counts in two capture groups, as histograms."""
    rng = np.random.default_rng(seed)
    capture = np.array([0.5, 1.0])
    params = [(0.8, 2.0, 30.0), (3.0, 1.0, 10.0), (0.3, 0.5, 8.0)]
    indptr, values, groups, weights = [0], [], [], []
    for a, b, lam in params:
        g = rng.integers(0, 2, 600)
        n = rng.poisson(capture[g] * lam * rng.beta(a, b, 600))
        pairs, counts = np.unique(np.stack([n, g]), axis=1, return_counts=True)
        values += list(pairs[0])
        groups += list(pairs[1])
        weights += list(counts.astype(float))
        indptr.append(len(values))
    return (np.array(indptr, dtype=np.int64), np.array(values, dtype=np.int64),
            np.array(groups, dtype=np.int64), np.array(weights), capture)


def test_info_is_what_the_kernel_wrote():
    """info() is the observed information at the reported theta per cell, and
    grouped_info() the information of the pooled goodness-of-fit cells."""
    indptr, values, groups, weights, capture = _genes()
    n_genes = indptr.shape[0] - 1
    res = np.empty((n_genes, kfit.N_RESULT))
    n_cells = np.array([weights[indptr[i]:indptr[i + 1]].sum() for i in range(n_genes)],
                       dtype=np.int64)
    kfit.fit_genes(indptr, values, groups, weights, capture, n_cells, 10, 1.92,
                   np.zeros(4, np.bool_), 100, 5.0, res)
    rows = kfit.FitRows(res)
    info = rows.info()
    ginfo = rows.grouped_info()
    assert np.isfinite(info).all() and np.isfinite(ginfo).all()
    n_telegraph = 0
    for i in range(n_genes):
        s, e = indptr[i], indptr[i + 1]
        v, w, gr = sort_bins(values[s:e], weights[s:e], groups[s:e])
        theta = rows.theta[i].copy()
        g = np.zeros(3)
        H = np.zeros((3, 3))
        telegraph_eval(gene_bins(v, w, gr, capture), theta, True, g, H, np.zeros(11))
        np.testing.assert_allclose(info[i], H / w.sum(), rtol=1e-12, atol=0)
        # the law tested is the regime's
        assert rows.gof_law[i] == {kfit.REGIME_TELEGRAPH: LAW_POISSON_BETA,
                                   kfit.REGIME_BURSTY: LAW_NEGBINOM, kfit.REGIME_BIMODAL: LAW_ZIP,
                                   kfit.REGIME_POISSON: LAW_POISSON}[rows.regime[i]]
        if rows.regime[i] != kfit.REGIME_TELEGRAPH:
            continue
        n_telegraph += 1
        np.testing.assert_allclose(rows.gof_info()[i], H / w.sum(), rtol=1e-12, atol=0)
        Ig = np.zeros((3, 3))
        x2, k, ok = pearson_gof(LAW_POISSON_BETA, v, w, gr, capture, capture.shape[0],
                                np.exp(theta), 5.0, Ig)
        assert ok
        np.testing.assert_array_equal(Ig, Ig.T)
        np.testing.assert_allclose(ginfo[i], Ig, rtol=1e-12, atol=0)
        assert rows.gof_stat[i] == pytest.approx(x2, rel=1e-12)
        assert rows.gof_cells[i] == k
    assert n_telegraph >= 2


def test_fit_view_is_read_only_and_does_not_copy():
    raw = _fake_fit_rows()
    rows = kfit.FitRows(raw)
    assert np.shares_memory(rows.log_a, raw)
    assert np.shares_memory(kfit.FitRows(rows).array, raw)
    with pytest.raises(ValueError):
        rows.log_a[0] = 1.0
    with pytest.raises(ValueError):
        rows.ci(0)[0][0] = 1.0
    with pytest.raises(AttributeError):
        rows.log_a = raw[:, 1]
    assert raw.flags.writeable


def test_fit_view_checks_the_width():
    with pytest.raises(ValueError, match="shape"):
        kfit.FitRows(np.zeros((3, kfit.N_RESULT - 1)))
    with pytest.raises(ValueError, match="shape"):
        kfit.FitRows(np.zeros(kfit.N_RESULT))
    assert len(kfit.FitRows(np.empty((0, kfit.N_RESULT)))) == 0


def test_diff_names_cover_every_column_once():
    cols = []
    for t in range(len(kdiff.DiffRows.TARGETS)):
        for offsets in kdiff.DiffRows.FIELDS.values():
            cols += [t * kdiff.N_PER_TARGET + o for o in offsets]
    assert sorted(cols) == list(range(kdiff.N_DIFF_RESULT))
    assert kdiff.DiffRows.FIELDS == {"psi1": (0,), "psi2": (1,), "loglik_null": (2,),
                                     "lr": (3,), "ci": (4, 5), "se": (6,), "converged": (7,)}


def test_diff_accessors_read_their_columns():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(5, kdiff.N_DIFF_RESULT))
    for t in range(2):
        raw[:, t * 8 + 7] = rng.integers(0, 2, 5)
    d = kdiff.DiffRows(raw)
    assert len(d) == 5
    for t in range(2):
        base = t * kdiff.N_PER_TARGET
        for name, offsets in kdiff.DiffRows.FIELDS.items():
            got = getattr(d, name)(t)
            got = got if isinstance(got, tuple) else (got,)
            for col, o in zip(got, offsets):
                np.testing.assert_array_equal(np.asarray(col, dtype=float), raw[:, base + o],
                                              err_msg=f"{name}({t})")
        np.testing.assert_array_equal(d.log_ratio(t), raw[:, base + 1] - raw[:, base])
        assert d.converged(t).dtype == bool
    with pytest.raises(ValueError):
        d.lr(0)[0] = 0.0
    with pytest.raises(ValueError, match="shape"):
        kdiff.DiffRows(np.zeros((2, kdiff.N_DIFF_RESULT + 1)))
