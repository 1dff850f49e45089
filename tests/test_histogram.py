"""Per-gene count histograms (telegraph.histogram) against a slow reference."""

from __future__ import annotations

from collections import Counter

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

import telegraph.histogram as H
from telegraph import config
from telegraph.histogram import (CountHistograms, capture_groups, check_counts,
                                 count_histograms)

# --------------------------------------------------------------------------
# helpers


def naive_histograms(X, group_of_cell, n_groups):
    """Pure-Python reference: one Counter of (group, value) per gene."""
    X = np.asarray(X, dtype=np.float64)
    n_cells, n_genes = X.shape
    indptr, values, groups, weights, n_obs, n_miss = [0], [], [], [], [], []
    for g in range(n_genes):
        c = Counter()
        miss = 0
        for i in range(n_cells):
            x = X[i, g]
            if np.isnan(x):
                miss += 1
            else:
                c[(int(group_of_cell[i]), int(x))] += 1
        for (grp, v) in sorted(c):
            groups.append(grp)
            values.append(v)
            weights.append(float(c[(grp, v)]))
        indptr.append(len(values))
        n_obs.append(n_cells - miss)
        n_miss.append(miss)
    return dict(indptr=np.array(indptr), values=np.array(values, dtype=np.int64),
                groups=np.array(groups, dtype=np.int64), weights=np.array(weights),
                n_cells=np.array(n_obs), n_missing=np.array(n_miss))


def assert_same(h, ref):
    for name in ("indptr", "values", "groups", "weights", "n_cells", "n_missing"):
        a, b = getattr(h, name), (ref[name] if isinstance(ref, dict) else getattr(ref, name))
        assert a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert h.indptr.dtype == np.int64 and h.values.dtype == np.int64
    assert h.groups.dtype == np.int64 and h.weights.dtype == np.float64
    assert h.n_cells.dtype == np.int64 and h.n_missing.dtype == np.int64
    if not isinstance(ref, dict):
        np.testing.assert_array_equal(h.capture, ref.capture)


def random_counts(rng, n_cells, n_genes, *, nan_frac=0.1, zero_frac=0.6, heavy=False):
    mean = np.exp(rng.normal(0.5, 1.5, n_genes))
    X = rng.poisson(rng.gamma(0.5, mean / 0.5, (n_cells, n_genes))).astype(np.float64)
    X[rng.random(X.shape) < zero_frac] = 0.0
    if heavy:
        X[rng.random(X.shape) < 0.05] = rng.integers(100, 5000)
    X[rng.random(X.shape) < nan_frac] = np.nan
    X[:, 0] = 0.0              # all-zero gene
    X[:, 1] = np.nan           # all-missing gene
    return X


def to_sparse(X, fmt):
    """Sparse matrix storing every non-zero and every NaN of X."""
    A = sp.coo_matrix(np.where(X == 0, 0, 1.0))
    rows, cols = A.row, A.col
    M = sp.coo_matrix((X[rows, cols], (rows, cols)), shape=X.shape)
    return M.tocsr() if fmt == "csr" else M.tocsc()


LAYOUTS = ["dense_c", "dense_f", "csr", "csc"]


def in_layout(X, layout):
    if layout == "dense_c":
        return np.ascontiguousarray(X)
    if layout == "dense_f":
        return np.asfortranarray(X)
    return to_sparse(X, layout)


@pytest.fixture
def tiny_table(monkeypatch):
    """Force the small-value table to two columns so values >= 2 overflow."""
    monkeypatch.setattr(config, "COUNT_TABLE_BUDGET", 1)


# --------------------------------------------------------------------------
# correctness against the reference


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("with_capture", [False, True])
def test_matches_naive_reference(layout, with_capture):
    rng = np.random.default_rng(11)
    X = random_counts(rng, 83, 9)
    if with_capture:
        capture = rng.choice([0.05, 0.2, 0.5, 1.0], X.shape[0])
        gidx, gcap = capture_groups(capture)
        h = count_histograms(in_layout(X, layout), capture=capture)
        np.testing.assert_array_equal(h.capture, [0.05, 0.2, 0.5, 1.0])
    else:
        gidx, gcap = np.zeros(X.shape[0], np.int64), np.ones(1)
        h = count_histograms(in_layout(X, layout))
        np.testing.assert_array_equal(h.capture, [1.0])
    assert_same(h, naive_histograms(X, gidx, gcap.size))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_overflow_path_matches_reference(layout, tiny_table):
    # values beyond the table width go through the sort-based path
    rng = np.random.default_rng(12)
    X = random_counts(rng, 64, 7, heavy=True)
    capture = rng.choice([0.1, 0.3, 0.9], X.shape[0])
    gidx, _ = capture_groups(capture)
    h = count_histograms(in_layout(X, layout), capture=capture)
    assert_same(h, naive_histograms(X, gidx, 3))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n_large, rescanned", [(5, False), (600, True)])
def test_overflow_buffer_guess_and_rescan(layout, n_large, rescanned, monkeypatch):
    # width 64: the single pass guesses the overflow buffers (>= 256 pairs per
    # block); with more large values than that it must size them and count again
    rng = np.random.default_rng(19)
    X = rng.poisson(2.0, (40, 20)).astype(np.float64)
    X[rng.random(X.shape) < 0.1] = np.nan
    flat = rng.choice(X.size, n_large, replace=False)
    X.flat[flat] = rng.integers(64, 3000, n_large)
    monkeypatch.setattr(config, "COUNT_TABLE_BUDGET", 64 * 20)
    calls = []
    scan = H._scan
    monkeypatch.setattr(H, "_scan", lambda *a: calls.append(1) or scan(*a))
    n = numba.get_num_threads()
    numba.set_num_threads(1)  # one block for cell-major layouts
    try:
        h = count_histograms(in_layout(X, layout))
    finally:
        numba.set_num_threads(n)
    assert_same(h, naive_histograms(X, np.zeros(40, np.int64), 1))
    if layout in ("dense_c", "csr"):
        assert bool(calls) == rescanned


@settings(max_examples=40, deadline=None)
@given(n_cells=st.integers(1, 30), n_genes=st.integers(1, 6), n_groups=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1), layout=st.sampled_from(LAYOUTS))
def test_property_random_shapes(n_cells, n_genes, n_groups, seed, layout):
    rng = np.random.default_rng(seed)
    X = rng.negative_binomial(0.5, 0.2, (n_cells, n_genes)).astype(np.float64)
    X[rng.random(X.shape) < 0.2] = np.nan
    capture = rng.choice(np.linspace(0.1, 1.0, n_groups), n_cells)
    gidx, gcap = capture_groups(capture)
    h = count_histograms(in_layout(X, layout), capture=capture)
    assert_same(h, naive_histograms(X, gidx, gcap.size))
    # weights of a gene add up to its non-missing cells
    sums = np.add.reduceat(np.append(h.weights, 0), h.indptr[:-1]) * (np.diff(h.indptr) > 0)
    np.testing.assert_array_equal(sums, h.n_cells)


def test_layouts_and_dtypes_identical():
    rng = np.random.default_rng(13)
    X = random_counts(rng, 200, 12, nan_frac=0.0)
    X[:, 1] = 3.0  # integer dtypes have no NaN
    X = np.minimum(X, 120)  # int8 holds it
    capture = rng.uniform(0.05, 1.0, X.shape[0])
    kw = dict(capture=capture, capture_bins=8, capture_rtol=0.2)
    ref = count_histograms(X, **kw)
    assert ref.n_groups < 20
    variants = [np.asfortranarray(X), sp.csr_matrix(X), sp.csc_matrix(X),
                sp.csr_array(X), sp.csc_array(X), sp.coo_matrix(X),
                X.astype(np.float32), sp.csr_matrix(X.astype(np.float32)),
                X.astype(np.int64), sp.csc_matrix(X.astype(np.int32)),
                X.astype(np.uint16), X.astype(np.int8)]
    for V in variants:
        assert_same(count_histograms(V, **kw), ref)


def test_same_result_with_one_thread():
    rng = np.random.default_rng(14)
    X = random_counts(rng, 3000, 20)
    Xs = to_sparse(X, "csr")
    capture = rng.choice([0.2, 0.4, 0.8], X.shape[0])
    h2 = count_histograms(Xs, capture=capture)
    n = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        h1 = count_histograms(Xs, capture=capture)
    finally:
        numba.set_num_threads(n)
    assert_same(h1, h2)


@pytest.mark.parametrize("layout", ["csr", "csc", "dense_c"])
def test_chunks_merged_equal_whole(layout):
    rng = np.random.default_rng(15)
    X = random_counts(rng, 301, 8, heavy=True)
    capture = rng.uniform(0.02, 1.0, X.shape[0])
    gidx, gcap = capture_groups(capture, max_groups=4, rtol=0.3)
    whole = count_histograms(in_layout(X, layout), groups=(gidx, gcap),
                             genes=[f"g{i}" for i in range(8)])
    # uneven chunks, one chunk covering cells of a single group only
    one_group = np.flatnonzero(gidx == 0)[:5]
    rest = np.setdiff1d(np.arange(X.shape[0]), one_group)
    parts = [one_group] + np.array_split(rest, [10, 11, 150])
    merged = None
    for idx in parts:
        h = count_histograms(in_layout(X[idx], layout), groups=(gidx[idx], gcap),
                             genes=[f"g{i}" for i in range(8)])
        merged = h if merged is None else merged.merge(h)
    assert_same(merged, whole)
    np.testing.assert_array_equal(merged.genes, whole.genes)
    # merge is symmetric
    a = count_histograms(X[:100], groups=(gidx[:100], gcap))
    b = count_histograms(X[100:], groups=(gidx[100:], gcap))
    assert_same(a.merge(b), b.merge(a))


def test_merge_refuses_mismatch():
    X = np.arange(12.0).reshape(4, 3)
    a = count_histograms(X)
    with pytest.raises(ValueError, match="capture groups"):
        a.merge(count_histograms(X, capture=np.full(4, 0.5)))
    with pytest.raises(ValueError, match="same genes"):
        a.merge(count_histograms(X[:, :2]))
    with pytest.raises(ValueError, match="names differ"):
        count_histograms(X, genes=list("abc")).merge(count_histograms(X, genes=list("abd")))
    with pytest.raises(TypeError):
        a.merge(X)


# --------------------------------------------------------------------------
# special genes and the CountHistograms methods


def test_all_zero_gene_single_zero_bin():
    X = np.zeros((50, 2))
    X[3, 1] = 4
    for V in (X, sp.csr_matrix(X), sp.csc_matrix(X)):
        h = count_histograms(V)
        lo, hi = h.indptr[0], h.indptr[1]
        assert hi - lo == 1
        assert (h.values[lo], h.groups[lo], h.weights[lo]) == (0, 0, 50.0)
        assert h.n_cells[0] == 50 and h.n_missing[0] == 0
        assert h.max_value()[0] == 0
    # one zero bin per capture group present
    capture = np.where(np.arange(50) < 20, 0.3, 0.6)
    h = count_histograms(sp.csr_matrix(X), capture=capture)
    np.testing.assert_array_equal(h.values[:2], [0, 0])
    np.testing.assert_array_equal(h.groups[:2], [0, 1])
    np.testing.assert_array_equal(h.weights[:2], [20.0, 30.0])
    assert h.indptr[1] == 2


def test_all_missing_gene():
    X = np.ones((10, 3))
    X[:, 1] = np.nan
    X[2, 2] = np.nan
    for V in (X, np.asfortranarray(X), sp.csr_matrix(X), sp.csc_matrix(X)):
        h = count_histograms(V)
        assert h.indptr[2] - h.indptr[1] == 0
        np.testing.assert_array_equal(h.n_cells, [10, 0, 9])
        np.testing.assert_array_equal(h.n_missing, [0, 10, 1])
        assert np.isnan(h.mean()[1]) and np.isnan(h.var()[1])
        assert h.max_value()[1] == -1
        assert h.to_dense(1).shape == (1, 0)


def test_explicit_zeros_and_duplicates_in_sparse():
    # stored zeros are zeros; duplicate (cell, gene) entries add up (scipy semantics)
    rows = np.array([0, 0, 1, 2, 2, 3])
    cols = np.array([0, 0, 1, 0, 1, 1])
    vals = np.array([1.0, 2.0, 0.0, 5.0, np.nan, 0.0])
    A = sp.csr_matrix((vals, np.array(cols), np.array([0, 2, 3, 5, 6])), shape=(4, 2))
    assert not A.has_canonical_format
    dense = A.toarray()
    h = count_histograms(A)
    assert_same(h, naive_histograms(dense, np.zeros(4, np.int64), 1))
    # gene 0: cells 0 (1 + 2 = 3), 1 (implicit 0), 2 (5), 3 (implicit 0)
    np.testing.assert_array_equal(h.to_dense(0), [[2, 0, 0, 1, 0, 1]])
    assert A.nnz == 6  # the input is left untouched


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:Degrees of freedom")
def test_moments_max_dense_subset():
    rng = np.random.default_rng(16)
    X = random_counts(rng, 120, 6)
    h = count_histograms(X, genes=list("abcdef"))
    np.testing.assert_allclose(h.mean(), np.nanmean(X, axis=0), rtol=1e-12)
    np.testing.assert_allclose(h.var(), np.nanvar(X, axis=0), rtol=1e-12)
    np.testing.assert_allclose(h.var(ddof=1), np.nanvar(X, axis=0, ddof=1), rtol=1e-12)
    mx = h.max_value()
    for g in (0, 2, 3, 4, 5):
        assert mx[g] == np.nanmax(X[:, g])
        d = h.to_dense(g)
        assert d.shape == (1, mx[g] + 1)
        col = X[:, g][~np.isnan(X[:, g])].astype(int)
        np.testing.assert_array_equal(d[0], np.bincount(col))
    sub = h.subset([4, 2])
    assert_same(sub, count_histograms(X[:, [4, 2]]))
    np.testing.assert_array_equal(sub.genes, ["e", "c"])
    assert_same(h.subset(np.array([False, True, False, True, False, False])),
                count_histograms(X[:, [1, 3]]))
    assert_same(h.subset(["f", "a"]), count_histograms(X[:, [5, 0]]))
    assert_same(h.subset(slice(1, 4)), count_histograms(X[:, 1:4]))
    assert h.subset([]).n_genes == 0
    assert h.n_genes == 6 and h.n_groups == 1 and "n_genes=6" in repr(h)
    with pytest.raises(KeyError, match="'zzz'"):
        h.subset(["zzz"])
    with pytest.raises(IndexError, match="out of range"):
        h.subset([6])


def test_round_counts():
    X = np.array([[0.4, 2.5], [1.6, 3.5], [np.nan, 7.0]])
    with pytest.raises(ValueError, match="round_counts=True"):
        count_histograms(X)
    h = count_histograms(X, round_counts=True)
    # half-to-even: 2.5 -> 2, 3.5 -> 4
    assert_same(h, naive_histograms(np.rint(X), np.zeros(3, np.int64), 1))
    check_counts(sp.csr_matrix(X), round_counts=True)
    # noise below zero rounds to zero, a real negative value does not
    count_histograms(np.array([[-0.2, 1.0]]), round_counts=True)
    with pytest.raises(ValueError, match="non-negative"):
        count_histograms(np.array([[-0.7, 1.0]]), round_counts=True)


def test_genes_names():
    X = np.ones((3, 2))
    assert count_histograms(X).genes is None
    np.testing.assert_array_equal(count_histograms(X, genes=["a", "b"]).genes, ["a", "b"])
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=["u", "v"])
    np.testing.assert_array_equal(count_histograms(df).genes, ["u", "v"])
    with pytest.raises(ValueError, match="genes must name every column"):
        count_histograms(X, genes=["a"])


# --------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("layout", LAYOUTS)
def test_error_locations(layout):
    X = np.zeros((20, 4))
    X[17, 2] = -3
    genes = ["A", "B", "X", "D"]
    with pytest.raises(ValueError, match=r"non-negative; found -3 in gene 'X', cell 17"):
        count_histograms(in_layout(X, layout), genes=genes)
    X[17, 2] = 0
    X[5, 1] = 2.5
    with pytest.raises(ValueError, match=r"integers; found 2.5 in gene 1 \(column index\), "
                                         r"cell 5\..*pass round_counts=True"):
        check_counts(in_layout(X, layout))
    X[5, 1] = np.inf
    with pytest.raises(ValueError, match=r"finite; found inf in gene 'B', cell 5"):
        check_counts(in_layout(X, layout), genes=genes)
    X[5, 1] = -np.inf
    with pytest.raises(ValueError, match=r"finite; found -inf"):
        count_histograms(in_layout(X, layout))
    X[5, 1] = 3e12
    with pytest.raises(ValueError, match=r"at most 2147483647"):
        count_histograms(in_layout(X, layout))


def test_first_bad_value_reported_whatever_the_threads():
    X = np.zeros((5000, 3))
    X[[4000, 70, 2500], [0, 2, 1]] = -1
    Xs = sp.csr_matrix(X)
    with pytest.raises(ValueError, match=r"gene 2 \(column index\), cell 70"):
        check_counts(Xs)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 3)), r"empty \(0 cells x 3 genes\)"),
    (np.zeros((4, 0)), r"empty \(4 cells x 0 genes\)"),
    (sp.csr_matrix((0, 5)), "empty"),
    (np.zeros(5), r"2-D .* 1 dimension\(s\).*X\[:, None\]"),
    (np.zeros((2, 2, 2)), "2-D .* 3 dimension"),
    (np.array([["a", "b"]]), "numeric .* dtype <U1"),
    (np.array([[1, None]], dtype=object), "numeric .* dtype object"),
    (np.ones((2, 2), dtype=bool), "numeric .* dtype bool"),
    (np.ones((2, 2), dtype=complex), "numeric .* dtype complex128"),
    (sp.csr_matrix(np.array([[1.0, -2.0]])), "non-negative; found -2"),
    (sp.csc_matrix(np.array([[1.0, 0.5]])), "integers; found 0.5"),
    (np.array([[1, -1]], dtype=np.int64), "non-negative; found -1"),
])
def test_bad_counts(bad, match):
    with pytest.raises(ValueError, match=match):
        check_counts(bad)
    with pytest.raises(ValueError, match=match):
        count_histograms(bad)


def test_nan_is_allowed():
    check_counts(np.array([[np.nan, 1.0]]))
    check_counts(sp.csr_matrix(np.array([[np.nan, 1.0]])))


def test_toarray_last_resort():
    class Wrapped:
        def __init__(self, a):
            self.a = a
            self.shape = a.shape

        def toarray(self):
            return self.a

    X = np.arange(6.0).reshape(3, 2)
    assert_same(count_histograms(Wrapped(X)), count_histograms(X))

    huge = Wrapped(X)
    huge.shape = (10**6, 10**5)
    with pytest.raises(ValueError, match="scipy.sparse CSR or CSC"):
        count_histograms(huge)


@pytest.mark.parametrize("capture, match", [
    (np.full(4, 0.5), "capture has 4 entries for 5 cells"),
    (np.array([0.5, 0.5, 1.2, 0.5, 0.5]), r"in \(0, 1\]; found 1.2 at cell 2"),
    (np.array([0.5, 0.0, 1.0, 0.5, 0.5]), r"in \(0, 1\]; found 0 at cell 1"),
    (np.array([0.5, -0.1, 1.0, 0.5, 0.5]), r"in \(0, 1\]"),
    (np.array([0.5, 0.5, np.nan, 0.5, 0.5]), "finite; found nan at cell 2"),
    (np.array([0.5, 0.5, np.inf, 0.5, 0.5]), "finite"),
    (np.full((5, 2), 0.5), "1-D"),
    (np.array(["a"] * 5), "numeric"),
])
def test_bad_capture(capture, match):
    with pytest.raises(ValueError, match=match):
        count_histograms(np.ones((5, 2)), capture=capture)


def test_scalar_capture_and_groups_argument_checks():
    X = np.ones((5, 2))
    h = count_histograms(X, capture=0.25)
    np.testing.assert_array_equal(h.capture, [0.25])
    with pytest.raises(ValueError, match="either capture= or groups="):
        count_histograms(X, capture=0.5, groups=(np.zeros(5, int), np.ones(1)))
    with pytest.raises(ValueError, match="integer group for each of the 5 cells"):
        count_histograms(X, groups=(np.zeros(4, int), np.ones(1)))
    with pytest.raises(ValueError, match="indices into groups"):
        count_histograms(X, groups=(np.full(5, 2), np.ones(2)))
    with pytest.raises(ValueError, match="rtol"):
        capture_groups(np.full(3, 0.5), max_groups=1, rtol=1.5)
    with pytest.raises(ValueError, match="max_groups"):
        capture_groups(np.full(3, 0.5), max_groups=0)


# --------------------------------------------------------------------------
# capture groups


def test_capture_groups_exact():
    cap = np.array([0.5, 0.1, 0.5, 1.0, 0.1, 0.3])
    for kw in ({}, dict(max_groups=None, rtol=0.5), dict(max_groups=2, rtol=0.0),
               dict(max_groups=4, rtol=0.5)):
        gidx, gcap = capture_groups(cap, **kw)
        np.testing.assert_array_equal(gcap, [0.1, 0.3, 0.5, 1.0])
        np.testing.assert_array_equal(gcap[gidx], cap)
        assert gidx.dtype == np.int64 and gcap.dtype == np.float64


@pytest.mark.parametrize("rtol", [0.001, 0.01, 0.1])
def test_capture_groups_binned_tolerance(rtol):
    rng = np.random.default_rng(17)
    cap = np.clip(np.exp(rng.normal(np.log(0.1), 0.8, 20_000)), 1e-4, 1.0)
    gidx, gcap = capture_groups(cap, max_groups=16, rtol=rtol)
    k = gcap.size
    assert 16 < k < np.unique(cap).size
    assert np.all(np.diff(gcap) > 0)
    # every cell within relative rtol of its group's value
    rel = np.abs(cap / gcap[gidx] - 1)
    assert rel.max() <= rtol * (1 + 1e-12)
    # the group value is the cell-weighted mean: total capture kept per group
    np.testing.assert_allclose(np.bincount(gidx, cap), np.bincount(gidx) * gcap, rtol=1e-12)
    # groups are as few as the tolerance allows: no two neighbours can be joined
    lo = np.full(k, np.inf)
    hi = np.zeros(k)
    np.minimum.at(lo, gidx, cap)
    np.maximum.at(hi, gidx, cap)
    assert np.all(hi[1:] > lo[:-1] * (1 + rtol))
    assert np.all(hi <= lo * (1 + rtol) * (1 + 1e-15))
    # and about log(range) / log(1 + rtol) of them
    assert k <= np.log(cap.max() / cap.min()) / np.log1p(rtol) + 1


def test_count_histograms_binned_capture():
    rng = np.random.default_rng(18)
    cap = rng.uniform(0.1, 0.2, 500)
    X = rng.poisson(3.0, (500, 3)).astype(float)
    h = count_histograms(X, capture=cap, capture_bins=10, capture_rtol=0.05)
    gidx, gcap = capture_groups(cap, max_groups=10, rtol=0.05)
    np.testing.assert_array_equal(h.capture, gcap)
    assert_same(h, naive_histograms(X, gidx, gcap.size))
    # capture_bins=None keeps every distinct value
    assert count_histograms(X, capture=cap, capture_bins=None).n_groups == np.unique(cap).size


def test_too_many_gene_groups(monkeypatch):
    monkeypatch.setattr(config, "MAX_GENE_GROUPS", 10)
    with pytest.raises(ValueError, match="too many .* bin capture"):
        count_histograms(np.ones((6, 2)), capture=np.linspace(0.1, 1, 6), capture_bins=None)


def test_constructor_checks():
    with pytest.raises(ValueError, match="values must have"):
        CountHistograms([0, 2], [0], [0], [1.0], [1.0], [1], [0])
    with pytest.raises(ValueError, match="n_cells must have"):
        CountHistograms([0, 1], [0], [0], [1.0], [1.0], [1, 2], [0])
