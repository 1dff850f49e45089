"""Per-gene count histograms: the sufficient statistics every fit runs on.

Under the stationary telegraph model the cells of one gene are independent
draws whose law depends on the cell only through its capture efficiency
``s_c``.  The likelihood of a gene therefore depends on its counts only
through how many cells show each (capture, count) pair, and that histogram is
all the fitter needs: its cost scales with the number of distinct values, not
with the number of cells.  Cells are put into *capture groups* (one per
distinct capture value, or per narrow bin of capture values, see
:func:`capture_groups`) and each gene's histogram is a list of bins
(group, value, weight).

This module is the model-level API over plain arrays and scipy.sparse
matrices; the counting itself is done by the Numba kernels in
:mod:`telegraph.kernels.counting`, reading the raw ``data``/``indices``/
``indptr`` arrays of sparse matrices (a sparse matrix is never densified).

Histograms of disjoint sets of cells add up (:meth:`CountHistograms.merge`),
which is what streaming over cell chunks and Dask reductions rely on.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from . import config
from .blocks import balanced_bounds, even_bounds
from .inputs import check_capture, gene_positions
from .kernels import counting as _k

__all__ = ["CountHistograms", "MergeStack", "capture_groups", "count_histograms", "check_counts",
           "JointHistograms", "joint_count_histograms", "LabelledHistograms",
           "labelled_count_histograms", "LabelledGroups", "labelled_groups"]



@dataclass
class CountHistograms:
    """Per-gene histograms of counts by capture group.

    Bins of gene ``g`` are ``indptr[g]:indptr[g+1]``; inside a gene they are
    sorted by (group, value), every bin has a positive weight, and zero counts
    are bins like any other value (so the weights of a gene sum to
    ``n_cells[g]``).

    Attributes
    ----------
    indptr : ndarray of int64, shape (n_genes + 1,)
    values : ndarray of int64, shape (n_bins,)
        Count value ``n`` of each bin (molecules detected in a cell).
    groups : ndarray of int64, shape (n_bins,)
        Capture group of each bin, an index into ``capture``.
    weights : ndarray of float64, shape (n_bins,)
        Number of cells of the gene with that (group, value).
    capture : ndarray of float64, shape (n_groups,)
        Capture efficiency of each group (``array([1.0])`` without capture).
    n_cells : ndarray of int64, shape (n_genes,)
        Non-missing cells per gene.
    n_missing : ndarray of int64, shape (n_genes,)
        Missing (NaN) cells per gene.
    genes : ndarray of object or None
        Gene names.
    """

    indptr: np.ndarray
    values: np.ndarray
    groups: np.ndarray
    weights: np.ndarray
    capture: np.ndarray
    n_cells: np.ndarray
    n_missing: np.ndarray
    genes: np.ndarray | None = None

    def __post_init__(self):
        self.indptr = np.asarray(self.indptr, dtype=np.int64)
        self.values = np.asarray(self.values, dtype=np.int64)
        self.groups = np.asarray(self.groups, dtype=np.int64)
        self.weights = np.asarray(self.weights, dtype=np.float64)
        self.capture = np.atleast_1d(np.asarray(self.capture, dtype=np.float64))
        self.n_cells = np.asarray(self.n_cells, dtype=np.int64)
        self.n_missing = np.asarray(self.n_missing, dtype=np.int64)
        if self.genes is not None:
            self.genes = np.asarray(self.genes, dtype=object)
        n_genes = self.indptr.shape[0] - 1
        n_bins = int(self.indptr[-1]) if n_genes >= 0 else 0
        if n_genes < 0 or self.indptr[0] != 0:
            raise ValueError("indptr must start at 0 and have n_genes + 1 entries")
        for name in ("values", "groups", "weights"):
            if getattr(self, name).shape != (n_bins,):
                raise ValueError(f"{name} must have indptr[-1] = {n_bins} entries, "
                                 f"got shape {getattr(self, name).shape}")
        for name in ("n_cells", "n_missing"):
            if getattr(self, name).shape != (n_genes,):
                raise ValueError(f"{name} must have n_genes = {n_genes} entries")
        if self.genes is not None and self.genes.shape != (n_genes,):
            raise ValueError(f"genes must have n_genes = {n_genes} entries")

    @property
    def n_genes(self) -> int:
        """Number of genes."""
        return self.indptr.shape[0] - 1

    @property
    def n_groups(self) -> int:
        """Number of capture groups."""
        return self.capture.shape[0]

    @property
    def n_bins(self) -> int:
        """Total number of bins over all genes."""
        return int(self.indptr[-1])

    def __repr__(self) -> str:
        return (f"CountHistograms(n_genes={self.n_genes}, n_groups={self.n_groups}, "
                f"n_bins={self.n_bins}, max cells per gene="
                f"{int(self.n_cells.max()) if self.n_genes else 0})")

    def _gene_of_bin(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_genes), np.diff(self.indptr))

    def merge(self, other: "CountHistograms") -> "CountHistograms":
        """Histograms of the union of two disjoint sets of cells.

        Both must describe the same genes (in the same order) with the same
        capture groups (identical ``capture`` arrays, as obtained by building
        both with the same ``groups=`` from :func:`capture_groups`).  Used to
        reduce histograms of cell chunks (streaming, Dask).
        """
        if not isinstance(other, CountHistograms):
            raise TypeError(f"can only merge CountHistograms, got {type(other).__name__}")
        if other.n_genes != self.n_genes:
            raise ValueError(f"cannot merge histograms of {self.n_genes} and "
                             f"{other.n_genes} genes: both must cover the same genes")
        if not np.array_equal(self.capture, other.capture):
            raise ValueError("cannot merge histograms with different capture groups; "
                             "build every chunk with the same groups= (from "
                             "capture_groups on the capture of all cells)")
        if (self.genes is not None and other.genes is not None
                and not np.array_equal(self.genes, other.genes)):
            raise ValueError("cannot merge histograms of different genes (names differ)")
        ptr, val, grp, w = _k.merge_histograms(
            self.indptr, self.values, self.groups, self.weights,
            other.indptr, other.values, other.groups, other.weights)
        return CountHistograms(ptr, val, grp, w, self.capture.copy(),
                               self.n_cells + other.n_cells,
                               self.n_missing + other.n_missing,
                               self.genes if self.genes is not None else other.genes)

    def join(self, other: "CountHistograms") -> "CountHistograms":
        """Histograms of the cells of both, each set keeping its own capture
        groups: ``other``'s groups follow ``self``'s (capture arrays side by
        side). Both describe the same genes in the same order. The pooled
        fit of a differential test runs on this."""
        if not isinstance(other, CountHistograms):
            raise TypeError(f"can only join CountHistograms, got {type(other).__name__}")
        if other.n_genes != self.n_genes:
            raise ValueError(f"cannot join histograms of {self.n_genes} and "
                             f"{other.n_genes} genes: both must cover the same genes")
        l1 = np.diff(self.indptr)
        l2 = np.diff(other.indptr)
        indptr = np.zeros(self.n_genes + 1, np.int64)
        np.cumsum(l1 + l2, out=indptr[1:])
        # each gene: its bins from self, then its bins from other
        pos1 = np.repeat(indptr[:-1] - self.indptr[:-1], l1) + np.arange(self.n_bins)
        pos2 = np.repeat(indptr[:-1] + l1 - other.indptr[:-1], l2) + np.arange(other.n_bins)
        n = int(indptr[-1])
        values = np.empty(n, np.int64)
        groups = np.empty(n, np.int64)
        weights = np.empty(n, np.float64)
        values[pos1], values[pos2] = self.values, other.values
        groups[pos1], groups[pos2] = self.groups, other.groups + self.n_groups
        weights[pos1], weights[pos2] = self.weights, other.weights
        return CountHistograms(indptr, values, groups, weights,
                               np.concatenate([self.capture, other.capture]),
                               self.n_cells + other.n_cells, self.n_missing + other.n_missing,
                               self.genes if self.genes is not None else other.genes)

    def cells_per_group(self, g) -> np.ndarray:
        """Number of cells of gene ``g`` (a position) in each capture group,
        shape (n_groups,)."""
        lo, hi = self.indptr[g], self.indptr[g + 1]
        return np.bincount(self.groups[lo:hi], self.weights[lo:hi], minlength=self.n_groups)

    @classmethod
    def concat(cls, hists) -> "CountHistograms":
        """Histograms of consecutive blocks of genes (the same cells, the same
        capture groups) side by side."""
        hists = list(hists)
        if len(hists) == 1:
            return hists[0]
        cap = hists[0].capture
        for h in hists[1:]:
            if not np.array_equal(h.capture, cap):
                raise ValueError("gene blocks were counted with different capture groups")
        offsets = np.cumsum([0] + [h.n_bins for h in hists[:-1]])
        indptr = np.concatenate([hists[0].indptr[:1]]
                                + [h.indptr[1:] + o for h, o in zip(hists, offsets)])
        genes = None
        if all(h.genes is not None for h in hists):
            genes = np.concatenate([h.genes for h in hists])
        return cls(indptr, np.concatenate([h.values for h in hists]),
                   np.concatenate([h.groups for h in hists]),
                   np.concatenate([h.weights for h in hists]), cap.copy(),
                   np.concatenate([h.n_cells for h in hists]),
                   np.concatenate([h.n_missing for h in hists]), genes)

    def subset(self, gene_index) -> "CountHistograms":
        """Histograms of a subset of genes, in the order given.

        ``gene_index``: integer indices, a boolean mask of length n_genes, a
        slice, or gene names (when ``genes`` is set).
        """
        idx = self._gene_indices(gene_index)
        lo = self.indptr[idx]
        hi = self.indptr[idx + 1]
        lengths = hi - lo
        indptr = np.zeros(idx.shape[0] + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        # position of every kept bin in the source arrays
        take = np.repeat(lo - indptr[:-1], lengths) + np.arange(indptr[-1])
        return CountHistograms(indptr, self.values[take], self.groups[take],
                               self.weights[take], self.capture.copy(),
                               self.n_cells[idx], self.n_missing[idx],
                               None if self.genes is None else self.genes[idx])

    def _gene_indices(self, gene_index) -> np.ndarray:
        arr = None if isinstance(gene_index, slice) else np.asarray(gene_index)
        if arr is not None and arr.dtype.kind in "OUS" and arr.size and self.genes is None:
            raise IndexError("selecting genes by name needs gene names "
                             "(pass genes= to count_histograms)")
        names = self.genes if self.genes is not None else np.arange(self.n_genes).astype(str)
        return gene_positions(gene_index, names, where="these histograms' genes",
                              allow_empty=True)

    def mean(self) -> np.ndarray:
        """Mean count per gene over its non-missing cells (NaN when none).

        Capture-naive: the mean of the observed counts, not of the mRNA.
        """
        gene = self._gene_of_bin()
        s = np.bincount(gene, self.weights * self.values, minlength=self.n_genes)
        with np.errstate(invalid="ignore", divide="ignore"):
            return s / np.where(self.n_cells > 0, self.n_cells, np.nan)

    def var(self, ddof: int = 0) -> np.ndarray:
        """Variance of the count per gene over its non-missing cells.

        Capture-naive, divisor ``n_cells - ddof`` (NaN when that is <= 0).
        """
        gene = self._gene_of_bin()
        m = self.mean()
        d = self.values - m[gene]
        ss = np.bincount(gene, self.weights * d * d, minlength=self.n_genes)
        denom = self.n_cells - ddof
        with np.errstate(invalid="ignore", divide="ignore"):
            return ss / np.where(denom > 0, denom, np.nan)

    def max_value(self) -> np.ndarray:
        """Largest count per gene (int64; -1 for a gene without cells)."""
        out = np.full(self.n_genes, -1, np.int64)
        if self.n_bins:
            gene = self._gene_of_bin()
            np.maximum.at(out, gene, self.values)
        return out

    def to_dense(self, g) -> np.ndarray:
        """Weights of gene ``g`` as a dense (n_groups, max_value + 1) array:
        entry ``[k, n]`` is the number of cells in group k with count n."""
        (i,) = self._gene_indices(g)
        lo, hi = self.indptr[i], self.indptr[i + 1]
        top = int(self.values[lo:hi].max()) + 1 if hi > lo else 0
        out = np.zeros((self.n_groups, top))
        out[self.groups[lo:hi], self.values[lo:hi]] = self.weights[lo:hi]
        return out


class MergeStack:
    """Merging a stream of histograms of disjoint sets of cells.

    Binary-counter order: each new histogram is merged with the pending one of
    equal level, so every bin is merged O(log n) times instead of once per
    histogram. ``push`` each, then take ``result()``.
    """

    def __init__(self):
        self._stack = []  # (level, hist), levels strictly decreasing

    def push(self, hist: CountHistograms) -> None:
        level = 0
        while self._stack and self._stack[-1][0] == level:
            _, other = self._stack.pop()
            hist = other.merge(hist)
            level += 1
        self._stack.append((level, hist))

    def result(self) -> CountHistograms:
        if not self._stack:
            raise ValueError("no histograms to merge")
        hist = self._stack.pop()[1]
        while self._stack:
            hist = self._stack.pop()[1].merge(hist)
        return hist


# --------------------------------------------------------------------------
# capture groups


def capture_groups(capture, *, max_groups=None, rtol=0.0, n_cells=None):
    """Group cells by capture efficiency.

    Parameters
    ----------
    capture : array_like of float, shape (n_cells,), or scalar
        Per-cell capture efficiency s_c in (0, 1] (probability that a molecule
        present in the cell is counted; dimensionless).
    max_groups : int or None
        Keep one group per distinct capture value when there are at most this
        many distinct values (always when None).
    rtol : float in [0, 1)
        Relative tolerance of the binned mode.  0 means exact.
    n_cells : int, optional
        Expected number of cells (checked; a scalar capture is broadcast).

    Returns
    -------
    group_of_cell : ndarray of int64, shape (n_cells,)
    group_capture : ndarray of float64, shape (n_groups,), ascending

    Notes
    -----
    Exact mode (``max_groups=None``, or ``rtol=0``, or at most ``max_groups``
    distinct values): one group per distinct value, no approximation.

    Binned mode (more than ``max_groups`` distinct values and ``rtol > 0``):
    the sorted values are cut greedily into the fewest groups whose largest
    and smallest member differ by a factor of at most ``1 + rtol`` (bins in
    log(capture) of width log(1 + rtol), placed where the cells are), and the
    group's value is the **cell-weighted arithmetic mean** of its members'
    capture.  Every cell's capture is then within relative ``rtol`` of its
    group's value, and the sum of capture over the cells of a group is kept
    exactly, so the expected total count sum_c s_c * mean mRNA (the first
    moment the fit matches) is unchanged.  This is the only approximation in
    the histograms; ``max_groups=None`` or ``rtol=0`` switches it off.  The
    number of binned groups is set by ``rtol`` and the spread of capture
    (about log(max/min) / log(1 + rtol)), not by ``max_groups``.
    """
    s = check_capture(np.atleast_1d(capture) if n_cells is None else capture, n_cells)
    if s.ndim != 1:
        raise ValueError(f"capture must be one efficiency per cell (1-D), got shape {s.shape}")
    rtol = float(rtol)
    if not (0.0 <= rtol < 1.0):
        raise ValueError(f"rtol must be in [0, 1), got {rtol}")
    if max_groups is not None:
        if not isinstance(max_groups, numbers.Integral) or max_groups < 1:
            raise ValueError(f"max_groups must be a positive integer or None, got "
                             f"{max_groups!r}")
    uniq, inv = np.unique(s, return_inverse=True)
    if max_groups is None or rtol == 0.0 or uniq.shape[0] <= max_groups:
        return inv.astype(np.int64).ravel(), uniq
    # Greedy covering of the sorted distinct values by intervals [lo, lo*(1+rtol)]:
    # optimal (fewest groups) for intervals of fixed width in log space.
    starts = []
    i = 0
    n_u = uniq.shape[0]
    while i < n_u:
        starts.append(i)
        i = int(np.searchsorted(uniq, uniq[i] * (1.0 + rtol), side="right"))
    starts = np.asarray(starts, np.int64)
    group_of_uniq = np.repeat(np.arange(starts.shape[0]),
                              np.diff(np.append(starts, n_u)))
    group_of_cell = group_of_uniq[inv.ravel()].astype(np.int64)
    total = np.bincount(group_of_cell, s)
    count = np.bincount(group_of_cell)
    # the mean of members lies in [min, max] up to rounding; keep it there
    gmin = uniq[starts]
    gmax = uniq[np.append(starts[1:], n_u) - 1]
    value = np.clip(total / count, gmin, gmax)
    return group_of_cell, value


# --------------------------------------------------------------------------
# input normalisation and validation


class _Layout:
    """A counts matrix as raw arrays for the kernels.

    kind "cell": segments are cells (CSR, C-ordered dense);
    kind "gene": segments are genes (CSC, F-ordered dense).
    Dense matrices have ``dense=True`` and an empty ``indices``; segment s
    then occupies ``data[s*m:(s+1)*m]`` with m the minor dimension.
    """

    __slots__ = ("kind", "data", "indices", "indptr", "dense", "n_cells", "n_genes")

    def __init__(self, kind, data, indices, indptr, dense, n_cells, n_genes):
        self.kind = kind
        self.data = data
        self.indices = indices
        self.indptr = indptr
        self.dense = dense
        self.n_cells = n_cells
        self.n_genes = n_genes

    @property
    def n_major(self):
        return self.n_cells if self.kind == "cell" else self.n_genes

    def locate(self, p):
        """(cell, gene) of the entry at data offset p."""
        p = int(p)
        if self.dense:
            m = self.n_genes if self.kind == "cell" else self.n_cells
            major, minor = divmod(p, m)
        else:
            major = int(np.searchsorted(self.indptr, p, side="right")) - 1
            minor = int(self.indices[p])
        return (major, minor) if self.kind == "cell" else (minor, major)


def _kernel_dtype(data: np.ndarray, what="counts") -> np.ndarray:
    """Cast to one of the two dtypes the kernels are compiled for.

    float32 and float64 are used as they are; integers (and float16) are
    copied to float64, exact for every accepted count, which keeps the number
    of compiled kernel variants (and the first-call compile time) small.
    """
    dt = data.dtype
    if dt == bool or dt.kind not in "iuf":
        raise ValueError(f"{what} must be a numeric (integer or float) matrix; got dtype "
                         f"{dt}. Convert it, e.g. X.astype(np.float64)")
    if dt in (np.float32, np.float64):
        return data
    return data.astype(np.float64)


def _layout(X) -> _Layout:
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(f"counts must be a 2-D (cells x genes) matrix; got {X.ndim} "
                             f"dimension(s)")
        fmt = X.format
        if fmt not in ("csr", "csc"):
            X = X.tocsr()
            fmt = "csr"
        n_cells, n_genes = X.shape
        _check_shape(n_cells, n_genes)
        if not X.has_canonical_format:
            # duplicates would be counted as two cells; scipy sums them
            X = X.copy()
            X.sum_duplicates()
        data = _kernel_dtype(X.data)
        indices = X.indices
        if indices.dtype not in (np.int32, np.int64):
            indices = indices.astype(np.int64)
        indptr = X.indptr.astype(np.int64, copy=False)
        return _Layout("cell" if fmt == "csr" else "gene", data, indices, indptr,
                       False, n_cells, n_genes)
    if not isinstance(X, np.ndarray) and hasattr(X, "toarray") and not hasattr(X, "__array__"):
        shape = getattr(X, "shape", None)
        size = math.prod(shape) if shape is not None else None
        if size is None or size > config.TOARRAY_MAX_ENTRIES:
            raise ValueError(f"counts of type {type(X).__name__} would have to be "
                             f"densified; convert them to a scipy.sparse CSR or CSC "
                             f"matrix first")
        X = X.toarray()
    A = np.asarray(X)
    if A.ndim != 2:
        hint = " For a single gene pass X[:, None]." if A.ndim == 1 else ""
        raise ValueError(f"counts must be a 2-D (cells x genes) matrix; got {A.ndim} "
                         f"dimension(s) with shape {A.shape}.{hint}")
    n_cells, n_genes = A.shape
    _check_shape(n_cells, n_genes)
    A = _kernel_dtype(A)
    dummy = np.empty(0, np.int32)
    if not A.flags.c_contiguous and A.flags.f_contiguous:
        data = A.T.reshape(-1)
        indptr = np.arange(n_genes + 1, dtype=np.int64) * n_cells
        return _Layout("gene", data, dummy, indptr, True, n_cells, n_genes)
    A = np.ascontiguousarray(A)
    data = A.reshape(-1)
    indptr = np.arange(n_cells + 1, dtype=np.int64) * n_genes
    return _Layout("cell", data, dummy, indptr, True, n_cells, n_genes)


def _check_shape(n_cells, n_genes):
    if n_cells == 0 or n_genes == 0:
        raise ValueError(f"counts matrix is empty ({n_cells} cells x {n_genes} genes); "
                         f"it needs at least one cell (row) and one gene (column)")


def _blocks(lay: _Layout, order, n_blocks: int) -> np.ndarray:
    """Boundaries, in ``order``, of blocks of about equal numbers of stored
    entries."""
    if lay.dense:
        return even_bounds(lay.n_major, n_blocks)
    lengths = np.diff(lay.indptr)
    if order is not None:
        lengths = lengths[order]
    cum = np.zeros(lay.n_major + 1, np.int64)
    np.cumsum(lengths, out=cum[1:])
    return balanced_bounds(cum, n_blocks, per_item=0)


def _gene_label(genes, g):
    if genes is not None:
        return f"gene {genes[g]!r}"
    return f"gene {g} (column index)"


#: stored values examined to tell normalised data from counts
_SAMPLE_ENTRIES = 200_000


def _sample_cells_values(lay: _Layout):
    """(cell, value) of up to _SAMPLE_ENTRIES stored non-zero, non-missing values."""
    m = int(min(lay.data.shape[0], _SAMPLE_ENTRIES))
    vals = np.asarray(lay.data[:m], dtype=float)
    p = np.arange(m, dtype=np.int64)
    if lay.kind == "cell":
        cells = (p // lay.n_genes if lay.dense else
                 np.searchsorted(lay.indptr, p, side="right") - 1)
    else:
        cells = p % lay.n_cells if lay.dense else np.asarray(lay.indices[:m], dtype=np.int64)
    keep = np.isfinite(vals) & (vals > 0)
    return cells[keep], vals[keep]


def _whole(v, tol=1e-5):
    return np.abs(v - np.round(v)) <= tol * np.maximum(1.0, np.abs(v))


def _scaled_per_cell(cells, u) -> bool:
    """Whether, in most cells with 3 or more values, every value is a whole
    multiple of one number (the cell's smallest value over k = 1..20): counts
    scaled per cell."""
    order = np.argsort(cells, kind="stable")
    c, u = cells[order], u[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    counts = np.diff(np.r_[starts, c.size])
    rich = counts >= 3
    if rich.sum() < 10:
        return False
    smallest = np.repeat(np.minimum.reduceat(u, starts), counts)
    passed = np.zeros(starts.size, dtype=bool)
    for k in range(1, 21):
        ok = _whole(u * k / smallest).astype(np.int8)
        passed |= np.minimum.reduceat(ok, starts).astype(bool)
    return passed[rich].mean() > 0.9


def looks_normalised(lay: _Layout) -> str:
    """What non-integer data look like, from a sample of their stored values:
    ``"log1p"`` when exp(x) - 1 is whole (log1p of counts), ``"scaled"`` when
    each cell's values are whole multiples of one number (counts scaled per
    cell, as normalize_total or CPM make them), ``"log1p_scaled"`` for log1p
    of such values; ``""`` when they look like neither (for example counts
    made non-integer by an ambient-RNA correction)."""
    cells, vals = _sample_cells_values(lay)
    if vals.size < 10 or (vals == np.round(vals)).mean() > 0.5:
        return ""
    if vals.max() < 30:   # log scale
        u = np.expm1(vals)
        if _whole(u).mean() > 0.95:
            return "log1p"
        if _scaled_per_cell(cells, u):
            return "log1p_scaled"
    return "scaled" if _scaled_per_cell(cells, vals) else ""


def _normalised_message(kind: str, where: str) -> str:
    what = {"log1p": "log-transformed counts (log1p)",
            "scaled": "normalised counts (scaled per cell, as normalize_total or CPM make "
                      "them)",
            "log1p_scaled": "normalised, log-transformed counts (normalize_total + log1p)"}[kind]
    return (f"these values look like {what}, not raw counts: found {where}. The telegraph "
            f"model needs raw UMI counts: pass layer= with the layer that holds them "
            f"(--layer on the command line), e.g. adata.layers['counts'] kept before "
            f"normalising (adata.layers['counts'] = adata.X.copy()), or use adata.raw. "
            f"round_counts=True does not make normalised values counts")


def refuse_normalised(lay: _Layout, round_counts) -> None:
    """With ``round_counts=True``, refuse data that look normalised or
    log-transformed (rounding does not turn them into counts); ``"force"``
    rounds them anyway."""
    if round_counts is True or (round_counts and round_counts != "force"):
        kind = looks_normalised(lay)
        if kind:
            raise ValueError(_normalised_message(kind, "non-integer values") + " (pass "
                             "round_counts='force' to round them anyway)")


def _raise_first_problem(lay: _Layout, first, genes):
    """Raise for the bad stored value with the smallest offset, if any."""
    for col, problem in ((0, "inf"), (1, "neg"), (2, "frac"), (3, "big")):
        hits = first[:, col][first[:, col] >= 0]
        if hits.size == 0:
            continue
        p = int(hits.min())
        x = lay.data[p]
        cell, gene = lay.locate(p)
        where = f"in {_gene_label(genes, gene)}, cell {cell}"
        if problem == "inf":
            raise ValueError(f"counts must be finite; found {x} {where}. Use NaN for "
                             f"missing values")
        if problem == "neg":
            raise ValueError(f"counts must be non-negative; found {x:g} {where}")
        if problem == "frac":
            kind = looks_normalised(lay)
            if kind:
                raise ValueError(_normalised_message(kind, f"{x:g} {where}"))
            raise ValueError(f"counts must be integers; found {x:g} {where}. If they are "
                             f"raw counts made non-integer by a correction (e.g. ambient "
                             f"RNA), pass round_counts=True to round them to the nearest "
                             f"integer")
        raise ValueError(f"counts must be at most {_k.MAX_COUNT}; found {x:g} {where}")


def _scan(lay: _Layout, seg, vcut, round_counts, genes):
    vmax, n_over, n_nan, first = _k.scan_values(lay.data, lay.indptr, seg,
                                                int(vcut), bool(round_counts))
    _raise_first_problem(lay, first, genes)
    return vmax, n_over, n_nan


def _genes_array(genes, X, n_genes):
    if genes is None:
        cols = getattr(X, "columns", None)  # a pandas DataFrame's names, duck-typed
        if cols is None:
            return None
        genes = cols
    genes = np.asarray(genes, dtype=object)
    if genes.ndim != 1 or genes.shape[0] != n_genes:
        raise ValueError(f"genes must name every column: got {genes.size} names for "
                         f"{n_genes} genes")
    return genes


def check_counts(X, *, round_counts=False, genes=None) -> None:
    """Validate a cells x genes count matrix without building histograms.

    Raises ``ValueError`` naming the problem, where it is and the fix: wrong
    dimensionality, empty matrix, non-numeric dtype, infinite, negative,
    non-integer (unless ``round_counts``) or absurdly large (> 2**31 - 1)
    values.  NaN is allowed and means missing.  Sparse matrices are checked
    through their stored values only (cheap).

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix/array, shape (n_cells, n_genes)
    round_counts : bool or "force"
        Accept non-integer values (they will be rounded half-to-even); the
        negativity check then applies to the rounded value. Values that look
        normalised or log-transformed (:func:`looks_normalised`) are still
        refused; ``"force"`` rounds them anyway.
    genes : sequence of str, optional
        Gene names, used in error messages.
    """
    lay = _layout(X)
    refuse_normalised(lay, round_counts)
    genes = _genes_array(genes, X, lay.n_genes)
    seg = _blocks(lay, None, numba.get_num_threads())
    _scan(lay, seg, _k.MAX_COUNT, round_counts, genes)


def count_histograms(X, *, capture=None, capture_bins: int | None = config.CAPTURE_BINS,
                     capture_rtol: float = config.CAPTURE_RTOL, groups=None,
                     round_counts: bool = False, genes=None) -> CountHistograms:
    """Per-gene histograms of counts by capture group.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix/array, shape (n_cells, n_genes)
        Counts, cells in rows.  Integer or float dtype; NaN marks a missing
        (cell, gene) value, dropped from that gene.  CSR and CSC are read
        through their raw arrays (never densified); other sparse formats are
        converted to CSR; objects offering only ``toarray`` are densified if
        small.
    capture : array_like, shape (n_cells,), or scalar, optional
        Per-cell capture efficiency in (0, 1].  None: every cell has capture 1.
    capture_bins : int or None
        ``max_groups`` of :func:`capture_groups`: capture stays exact (one
        group per distinct value) up to this many distinct values.  None:
        always exact.
    capture_rtol : float
        ``rtol`` of :func:`capture_groups` for the binned mode (0: exact).
        With the defaults (``config.CAPTURE_BINS``, ``config.CAPTURE_RTOL``),
        more than 256 distinct capture values are binned so that every cell's
        capture is within 5% of its group's value (the group value being the
        cell-weighted mean); this is the only approximation in the
        histograms.  ``capture_bins=None`` or
        ``capture_rtol=0`` makes them exact (then the number of bins grows
        with the number of distinct capture values).
    groups : tuple (group_of_cell, group_capture), optional
        Precomputed capture groups, e.g. :func:`capture_groups` applied to all
        cells of a dataset and sliced per chunk so that chunk histograms can be
        merged.  Excludes ``capture``.
    round_counts : bool or "force"
        Round non-integer counts half-to-even instead of refusing them (not
        values that look normalised, unless ``"force"``; see
        :func:`check_counts`).
    genes : sequence, optional
        Gene names (default: ``X.columns`` if present).

    Returns
    -------
    CountHistograms

    Raises
    ------
    ValueError
        For invalid counts (see :func:`check_counts`) or capture.

    Notes
    -----
    Cost: one pass over the stored values (validation included) plus work
    proportional to genes x groups x (largest small count) for the tables and
    to the number of bins for the output; a second pass only when more counts
    than expected exceed the in-table range.  Parallel over blocks of cells
    (CSR, C-ordered dense) or genes (CSC, F-ordered dense) with Numba.
    Histograms of disjoint cell chunks built with the same ``groups=`` can be
    combined with :meth:`CountHistograms.merge`.
    """
    lay = _layout(X)
    refuse_normalised(lay, round_counts)
    n_cells, n_genes = lay.n_cells, lay.n_genes
    if n_cells > _k.MAX_COUNT:
        raise ValueError(f"at most {_k.MAX_COUNT} cells per call; stream the cells in "
                         f"chunks and merge the histograms")
    genes = _genes_array(genes, X, n_genes)
    if groups is not None:
        if capture is not None:
            raise ValueError("pass either capture= or groups=, not both")
        group_of_cell, group_capture = groups
        group_of_cell = np.asarray(group_of_cell)
        group_capture = check_capture(np.atleast_1d(group_capture))
        if group_of_cell.shape != (n_cells,) or group_of_cell.dtype.kind not in "iu":
            raise ValueError(f"groups[0] must give an integer group for each of the "
                             f"{n_cells} cells, got shape {group_of_cell.shape}")
        group_of_cell = group_of_cell.astype(np.int64, copy=False)
        if group_of_cell.min() < 0 or group_of_cell.max() >= group_capture.shape[0]:
            raise ValueError(f"groups[0] must be indices into groups[1] "
                             f"(0..{group_capture.shape[0] - 1})")
    elif capture is None:
        group_of_cell = np.zeros(n_cells, np.int64)
        group_capture = np.ones(1)
    else:
        group_of_cell, group_capture = capture_groups(
            capture, max_groups=capture_bins, rtol=capture_rtol, n_cells=n_cells)
    n_groups = group_capture.shape[0]
    n_keys = n_genes * n_groups
    if n_keys > config.MAX_GENE_GROUPS:
        raise ValueError(f"{n_genes} genes x {n_groups} capture groups is too many "
                         f"(gene, group) pairs; bin capture (capture_rtol > 0 with "
                         f"capture_bins set) or process fewer genes at a time")

    n_threads = numba.get_num_threads()
    nnz = int(lay.indptr[-1])
    if lay.kind == "cell":
        # one table per block: more blocks than threads only cost memory
        n_blocks = max(1, min(n_threads, nnz // 50_000 + 1))
        # cells sorted by group: consecutive cells then update the same keys
        order = (np.argsort(group_of_cell, kind="stable") if n_groups > 1
                 else np.arange(n_cells, dtype=np.int64))
    else:
        n_blocks = 4 * n_threads
        order = np.arange(n_genes, dtype=np.int64)
    seg = _blocks(lay, order, n_blocks)
    n_blocks = seg.shape[0] - 1
    n_tables = n_blocks if lay.kind == "cell" else 1
    budget = min(config.COUNT_TABLE_BUDGET, max(1 << 16, 2 * nnz))
    width = max(2, budget // (n_tables * n_keys))
    rnd = bool(round_counts) and lay.data.dtype.kind == "f"

    def count(over_offsets):
        ov_key = np.empty(over_offsets[-1], np.int64)
        ov_val = np.empty(over_offsets[-1], np.int64)
        # int32 tables: an entry counts cells, fewer than 2**31; np.zeros maps
        # zero pages lazily, so rows above the largest count cost nothing
        if lay.kind == "cell":
            table = np.zeros((n_blocks, width, n_keys), np.int32)
            missing = np.zeros((n_blocks, n_keys), np.int64)
            kernel, arg = _k.count_cell_major, n_genes
        else:
            table = np.zeros((width, n_keys), np.int32)
            missing = np.zeros(n_keys, np.int64)
            kernel, arg = _k.count_gene_major, n_groups
        vmax, n_over, first = kernel(lay.data, lay.indices, lay.indptr, lay.dense, order,
                                     seg, group_of_cell, arg, rnd, over_offsets,
                                     table, missing, ov_key, ov_val)
        _raise_first_problem(lay, first, genes)
        return table, missing, ov_key, ov_val, vmax, n_over

    lengths = np.diff(lay.indptr)[order]
    cum = np.zeros(lay.n_major + 1, np.int64)
    np.cumsum(lengths, out=cum[1:])
    over_offsets = None
    if width >= 64:
        # one pass: counts >= 64 are rare, guess the overflow buffers
        capacity = np.diff(cum[seg]) // 16 + 256
        over_offsets = np.zeros(n_blocks + 1, np.int64)
        np.cumsum(capacity, out=over_offsets[1:])
        table, missing, ov_key, ov_val, vmax, n_over = count(over_offsets)
        if np.any(n_over > capacity):
            over_offsets = None
    if over_offsets is None:
        # size the overflow exactly with a validation scan, then count
        _, n_over_seg, _ = _scan(lay, _blocks(lay, None, n_threads), width,
                                 round_counts, genes)
        cum = np.zeros(lay.n_major + 1, np.int64)
        np.cumsum(n_over_seg[order], out=cum[1:])
        over_offsets = cum[seg]
        table, missing, ov_key, ov_val, vmax, n_over = count(over_offsets)
    if ov_key.shape[0] != int(n_over.sum()):
        keep = np.concatenate([np.arange(over_offsets[b], over_offsets[b] + n_over[b])
                               for b in range(n_blocks)])
        ov_key, ov_val = ov_key[keep], ov_val[keep]
    top = int(vmax.max())
    width = min(width, top + 1) if top >= 0 else 1
    if lay.kind == "cell":
        if n_blocks > 1:
            _k.reduce_blocks(table, missing, width)
        table, missing = table[0], missing[0]
    run_ptr, run_val, run_cnt = _k.overflow_runs(ov_key, ov_val, n_keys)
    cells_in_group = np.bincount(group_of_cell, minlength=n_groups).astype(np.int64)
    indptr, values, grp, weights, n_missing, low = _k.assemble(
        table, width, missing, n_genes, run_ptr, run_val, run_cnt, cells_in_group,
        lay.kind == "gene")
    if low < 0:  # pragma: no cover - duplicates are summed in _layout
        raise RuntimeError("internal error: a (cell, gene) entry was counted twice")
    return CountHistograms(indptr, values, grp, weights, group_capture,
                           n_cells - n_missing, n_missing, genes)


# --------------------------------------------------------------------------- two layers


@dataclass
class JointHistograms:
    """Per-gene histograms of (unspliced, spliced) count pairs by capture group.

    The bins of :attr:`hist` count pair-encoded values ``v = s * base + u``;
    :meth:`gene` decodes a gene's bins. Everything else (capture groups,
    missing cells, merging chunks of cells with :meth:`merge`) is that of
    :class:`CountHistograms`.

    Attributes
    ----------
    hist : CountHistograms
        Histograms of the encoded values.
    base : int
        One more than the largest unspliced count.
    """

    hist: CountHistograms
    base: int

    @property
    def n_genes(self) -> int:
        """Number of genes."""
        return self.hist.n_genes

    def gene(self, g: int):
        """``(u, s, group, weight)`` arrays of gene ``g``'s bins."""
        lo, hi = self.hist.indptr[g], self.hist.indptr[g + 1]
        v = self.hist.values[lo:hi]
        return v % self.base, v // self.base, self.hist.groups[lo:hi], self.hist.weights[lo:hi]

    def merge(self, other: "JointHistograms") -> "JointHistograms":
        """Histograms of the union of two disjoint sets of cells (same ``base``)."""
        if other.base != self.base:
            raise ValueError("cannot merge joint histograms encoded with different bases; "
                             "pass the same base= to every chunk")
        return JointHistograms(self.hist.merge(other.hist), self.base)


def joint_count_histograms(unspliced, spliced, *, base: int | None = None,
                           **kwargs) -> JointHistograms:
    """Per-gene histograms of (unspliced, spliced) count pairs, in one pass.

    Each cell's pair of counts of a gene is encoded as one count,
    ``v = spliced * base + unspliced``, and the encoded matrix goes through
    :func:`count_histograms` (validation, capture groups, NaN as missing in
    either layer). The two layers may be sparse with different patterns.

    Parameters
    ----------
    unspliced, spliced : ndarray or scipy.sparse matrix, shape (n_cells, n_genes)
        The two count layers (same cells and genes).
    base : int, optional
        Encoding base, more than the largest unspliced count (default: that
        plus one). Give the same base to every chunk of cells to be merged.
    **kwargs
        ``capture``, ``capture_bins``, ``capture_rtol``, ``groups``,
        ``round_counts``, ``genes``: as in :func:`count_histograms`. One capture
        (group) per cell applies to both species; a different capture of
        unspliced molecules per cell would need groups of capture pairs.

    Returns
    -------
    JointHistograms
    """
    if unspliced.shape != spliced.shape:
        raise ValueError(f"unspliced and spliced layers differ in shape: {unspliced.shape} "
                         f"and {spliced.shape}; they must hold the same cells and genes")
    round_counts = kwargs.get("round_counts", False)
    genes = kwargs.get("genes")
    check_counts(unspliced, round_counts=round_counts, genes=genes)
    check_counts(spliced, round_counts=round_counts, genes=genes)

    def top(X):
        d = X.data if sp.issparse(X) else np.asarray(X)
        return int(np.nanmax(d)) if d.size and not np.all(np.isnan(d)) else 0

    if base is None:
        base = top(unspliced) + 1
    if top(unspliced) >= base:
        raise ValueError(f"base={base} must exceed the largest unspliced count "
                         f"({top(unspliced)})")
    if (top(spliced) + 1) * base > _k.MAX_COUNT:
        raise ValueError("the (unspliced, spliced) counts are too large to encode as one "
                         f"count (spliced up to {top(spliced)}, unspliced up to {base - 1})")
    if sp.issparse(unspliced) or sp.issparse(spliced):
        V = sp.csr_matrix(spliced, dtype=np.float64) * float(base) + sp.csr_matrix(
            unspliced, dtype=np.float64)
    else:
        V = np.asarray(spliced, dtype=np.float64) * base + np.asarray(unspliced,
                                                                      dtype=np.float64)
    if round_counts:
        # round each layer, not the encoded value
        if sp.issparse(V):
            V = sp.csr_matrix(spliced, dtype=np.float64).copy()
            V.data = np.rint(V.data)
            W = sp.csr_matrix(unspliced, dtype=np.float64).copy()
            W.data = np.rint(W.data)
            V = V * float(base) + W
        else:
            V = np.rint(np.asarray(spliced, float)) * base + np.rint(np.asarray(unspliced, float))
    return JointHistograms(count_histograms(V, **kwargs), int(base))


@dataclass
class LabelledHistograms:
    """Per-gene histograms of (new, old) count pairs of a labelling experiment.

    Cells are grouped by (pulse length, detection probability, capture group);
    each group is one capture group of :attr:`joint` (new molecules encoded
    as its "unspliced", old ones as its "spliced" counts), with its pulse
    length and detection in :attr:`t_label` and :attr:`detection`.

    Attributes
    ----------
    joint : JointHistograms
    t_label : ndarray of float64, shape (n_groups,)
        Pulse length of each group, hours.
    detection : ndarray of float64, shape (n_groups,)
        Detection probability of new molecules of each group.
    """

    joint: JointHistograms
    t_label: np.ndarray
    detection: np.ndarray

    @property
    def n_genes(self) -> int:
        """Number of genes."""
        return self.joint.n_genes

    @property
    def hist(self) -> CountHistograms:
        """The underlying histograms (genes, capture of each group, cells)."""
        return self.joint.hist

    def gene(self, g: int):
        """``(new, old, group, weight)`` arrays of gene ``g``'s bins."""
        return self.joint.gene(g)

    def subset(self, genes) -> "LabelledHistograms":
        """The histograms of a slice of the genes."""
        return LabelledHistograms(JointHistograms(self.hist.subset(genes), self.joint.base),
                                  self.t_label, self.detection)


def labelled_count_histograms(new, old, *, t_label, detection, capture=None,
                              capture_bins: int | None = config.CAPTURE_BINS,
                              capture_rtol: float = config.CAPTURE_RTOL,
                              round_counts: bool | str = False,
                              genes=None) -> LabelledHistograms:
    """Per-gene histograms of (new, old) count pairs by (pulse, detection, capture) group.

    Parameters
    ----------
    new, old : ndarray or scipy.sparse matrix, shape (n_cells, n_genes)
        Counts of new (labelled) and old molecules of the same cells and genes.
    t_label, detection : ndarray of float64, shape (n_cells,)
        Validated per-cell pulse lengths (hours) and detection probabilities
        (:func:`telegraph.inputs.resolve_labelling`).
    capture : ndarray (n_cells,) or None
        Per-cell capture efficiency, binned over all cells as in
        :func:`count_histograms`; the groups are the (pulse, detection,
        capture bin) combinations that occur (:func:`labelled_groups`).
    capture_bins, capture_rtol, round_counts, genes
        As in :func:`count_histograms`.

    Returns
    -------
    LabelledHistograms
    """
    if tuple(new.shape) != tuple(old.shape):
        raise ValueError(f"the new counts have shape {tuple(new.shape)} but the old counts "
                         f"{tuple(old.shape)}; give both layers of the same cells and genes")
    g = labelled_groups(t_label, detection, capture, n_cells=old.shape[0],
                        capture_bins=capture_bins, capture_rtol=capture_rtol)
    jh = joint_count_histograms(new, old, groups=(g.group_of_cell, g.group_capture),
                                round_counts=round_counts, genes=genes)
    return g.histograms(jh)


@dataclass(frozen=True)
class LabelledGroups:
    """The cell groups of a labelling experiment: every distinct (pulse length,
    detection, capture group) combination (:func:`labelled_groups`).

    Attributes
    ----------
    group_of_cell : ndarray of int64, shape (n_cells,)
        Group of every cell.
    group_capture, t_label, detection : ndarray of float64, shape (n_groups,)
        Capture efficiency, pulse length (hours) and detection probability of
        each group.
    """

    group_of_cell: np.ndarray
    group_capture: np.ndarray
    t_label: np.ndarray
    detection: np.ndarray

    def histograms(self, joint: JointHistograms) -> LabelledHistograms:
        """``joint`` (new counts as its "unspliced", old ones as its "spliced"
        layer, counted with these groups) as labelled histograms."""
        return LabelledHistograms(joint, self.t_label, self.detection)


def labelled_groups(t_label, detection, capture=None, *, n_cells: int,
                    capture_bins: int | None = config.CAPTURE_BINS,
                    capture_rtol: float = config.CAPTURE_RTOL) -> LabelledGroups:
    """The (pulse, detection, capture) group of every cell of a labelling experiment.

    Decided once from the cells' per-cell values, without the counts, so that
    histograms counted in slices of cells (:mod:`telegraph.ondisk`) share the
    groups of :func:`labelled_count_histograms` on the whole matrix.

    Parameters
    ----------
    t_label, detection : ndarray of float64, shape (n_cells,)
        Validated per-cell pulse lengths (hours) and detection probabilities.
    capture : ndarray (n_cells,) or None
        Per-cell capture efficiency, binned over all cells as in
        :func:`count_histograms`.
    n_cells : int
    capture_bins, capture_rtol
        As in :func:`count_histograms`.

    Returns
    -------
    LabelledGroups
    """
    t_label = np.asarray(t_label, dtype=np.float64)
    detection = np.asarray(detection, dtype=np.float64)
    if t_label.shape != (n_cells,) or detection.shape != (n_cells,):
        raise ValueError("t_label and detection must have one value per cell")
    pairs, pulse_of = np.unique(np.stack([t_label, detection], axis=1), axis=0,
                                return_inverse=True)
    pulse_of = pulse_of.ravel()
    if capture is None:
        cap_of, cap_val = np.zeros(n_cells, np.int64), np.ones(1)
    else:
        cap_of, cap_val = capture_groups(capture, max_groups=capture_bins, rtol=capture_rtol,
                                         n_cells=n_cells)
    keys, group_of = np.unique(np.stack([pulse_of, cap_of], axis=1), axis=0,
                               return_inverse=True)
    return LabelledGroups(group_of.ravel().astype(np.int64), cap_val[keys[:, 1]],
                          pairs[keys[:, 0], 0].copy(), pairs[keys[:, 0], 1].copy())
