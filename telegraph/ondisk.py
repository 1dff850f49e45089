"""A count matrix inside an ``.h5ad`` file or ``.zarr`` store, read in slices.

An atlas does not have to fit in memory to be fitted: the likelihood of a gene
depends on its counts only through its count histogram per capture group
(:mod:`telegraph.histogram`), and histograms of disjoint sets of cells add up.
This module holds the matrix on disk and what reading it in slices needs:

- :class:`OnDiskMatrix` knows the file, the layer, the storage format and the
  shape; every read opens the file, so the object is cheap to pickle and can
  be sent to Dask workers, which then read their own slices;
- :class:`ReadPlan` is one pass over it: which columns (genes) to keep, the
  capture group of every cell, the slice size; :meth:`ReadPlan.histograms`
  runs the pass here, slice by slice, in bounded memory;
- :func:`count_cells` / :func:`count_genes` turn one slice into histograms
  (also what a Dask task runs, :mod:`telegraph.cluster`).

How a matrix is sliced follows how it is stored:

- CSR (scanpy's usual output) and dense matrices are read in blocks of
  ``chunk_size`` cells (rows); each block holds every gene, so its histograms
  are merged into the running total;
- CSC matrices are read in blocks of genes (columns) covering the same share
  of the matrix as ``chunk_size`` cells would, ``chunk_size * n_genes /
  n_cells`` genes; each block holds every cell of its genes, so its
  histograms are final and are put side by side.

Capture groups are computed once from the capture of *all* cells and each
slice is counted with its cells' group indices, so the histograms of all
slices share the same groups and merge exactly: a pass gives the histograms
:func:`telegraph.histogram.count_histograms` gives for the matrix in memory.
"""

from __future__ import annotations

import contextlib
import numbers
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from . import config
from .blocks import progress_bar, spans
from .histogram import (CountHistograms, JointHistograms, MergeStack, count_histograms,
                        joint_count_histograms)
from .inputs import listing, row_totals

__all__ = ["OnDiskMatrix", "ReadPlan", "read_obs_var", "is_ondisk", "count_cells",
           "count_genes", "gene_spans", "check_chunk_size", "joint_histograms",
           "joint_by_genes", "count_joint_cells", "count_joint_genes"]


# --------------------------------------------------------------------------- the matrix


class OnDiskMatrix:
    """A cells x genes count matrix inside an ``.h5ad`` file or ``.zarr`` store.

    Parameters
    ----------
    path : str or Path
        An ``.h5ad`` file or an AnnData ``.zarr`` store.
    layer : str, optional
        Layer holding the counts (default ``X``).

    Attributes
    ----------
    format : {"csr", "csc", "dense"}
    shape : (n_cells, n_genes)
    nnz : int
        Stored entries (n_cells * n_genes when dense).
    """

    def __init__(self, path, layer: str | None = None):
        path = Path(path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
        self.kind = _kind(path)
        self.path = str(path)
        self.layer = layer
        with self._root() as root:
            elem = self._element(root)
            self.format, self.shape, self.nnz = _describe(elem, self.where)

    @property
    def where(self) -> str:
        return f"{self.path} ({'X' if self.layer is None else 'layer ' + repr(self.layer)})"

    @property
    def n_cells(self) -> int:
        return self.shape[0]

    @property
    def n_genes(self) -> int:
        return self.shape[1]

    def __repr__(self):
        return (f"OnDiskMatrix({self.where}, {self.format}, {self.shape[0]} cells x "
                f"{self.shape[1]} genes, {self.nnz} stored entries)")

    def _root(self):
        return _open_root(self.path, self.kind)

    def _element(self, root):
        if self.layer is None:
            if "X" not in root:
                raise ValueError(f"{self.path} has no X matrix; choose a layer (available "
                                 f"layers: {listing(_keys(root, 'layers'))})")
            return root["X"]
        layers = _keys(root, "layers")
        if self.layer not in layers:
            raise ValueError(f"layer {self.layer!r} not found in {self.path}; available "
                             f"layers: {listing(layers)} (omit the layer to use X)")
        return root["layers"][self.layer]

    @contextlib.contextmanager
    def reader(self):
        """Open the file for a series of reads: ``with m.reader() as r: r.cells(0, 100)``."""
        with self._root() as root:
            yield Reader(self, self._element(root))

    def obs(self):
        """The obs table (pandas DataFrame), without the matrix."""
        return _read_table(self.path, self.kind, "obs")

    def var(self):
        """The var table (pandas DataFrame), without the matrix."""
        return _read_table(self.path, self.kind, "var")

    def default_chunk_size(self) -> int:
        """Cells per slice holding about ``config.CHUNK_ENTRIES`` stored entries."""
        per_cell = max(1.0, self.nnz / max(1, self.n_cells))
        return int(min(self.n_cells, max(1, config.CHUNK_ENTRIES // per_cell)))

    def genes_per_block(self, chunk_size: int) -> int:
        """Genes per block of a gene-major read: the share of the matrix that
        ``chunk_size`` cells would be."""
        return max(1, int(chunk_size * self.n_genes // max(1, self.n_cells)))

    def cell_spans(self, chunk_size: int) -> list[tuple[int, int]]:
        """(start, stop) of the cell slices of a cell-major read."""
        return spans(self.n_cells, chunk_size)

    def gene_spans(self, chunk_size: int) -> list[tuple[int, int]]:
        """(start, stop) of the gene blocks of a gene-major read."""
        return spans(self.n_genes, self.genes_per_block(chunk_size))

    def cell_totals(self, chunk_size: int | None = None) -> np.ndarray:
        """Total count of every cell (NaN counted as 0), read slice by slice."""
        chunk_size = chunk_size or self.default_chunk_size()
        out = np.zeros(self.n_cells)
        with self.reader() as r:
            if self.format == "csc":
                for g0, g1 in self.gene_spans(chunk_size):
                    out += row_totals(r.genes(g0, g1))
            else:
                for a, b in self.cell_spans(chunk_size):
                    out[a:b] = row_totals(r.cells(a, b))
        return out


class Reader:
    """Slices of an open matrix element (from :meth:`OnDiskMatrix.reader`)."""

    def __init__(self, matrix: OnDiskMatrix, elem):
        self.m = matrix
        self.elem = elem

    def _major(self, start, stop):
        """(data, indices, indptr) of rows (CSR) or columns (CSC) start:stop,
        read from the file without touching the rest."""
        ip = np.asarray(self.elem["indptr"][start:stop + 1], dtype=np.int64)
        lo, hi = int(ip[0]), int(ip[-1])
        data = np.asarray(self.elem["data"][lo:hi])
        indices = np.asarray(self.elem["indices"][lo:hi])
        return data, indices, ip - lo

    def cells(self, start: int, stop: int):
        """Rows ``start:stop``: a CSR matrix (CSR on disk) or an ndarray (dense)."""
        m = self.m
        if m.format == "dense":
            return np.asarray(self.elem[start:stop])
        if m.format == "csc":
            raise ValueError("a CSC matrix is read by genes, not by cells")
        return sp.csr_matrix(self._major(start, stop), shape=(stop - start, m.n_genes))

    def genes(self, start: int, stop: int):
        """Columns ``start:stop`` of a CSC (or dense) matrix, every cell."""
        m = self.m
        if m.format == "dense":
            return np.asarray(self.elem[:, start:stop])
        if m.format == "csr":
            raise ValueError("a CSR matrix is read by cells, not by genes")
        return sp.csc_matrix(self._major(start, stop), shape=(m.n_cells, stop - start))


def _keys(root, name):
    return list(root[name].keys()) if name in root else []


def _attr(elem, key):
    value = elem.attrs.get(key)
    if isinstance(value, bytes):
        value = value.decode()
    return value


def _describe(elem, where):
    """(format, shape, nnz) of a matrix element, from its AnnData encoding."""
    enc = _attr(elem, "encoding-type") or _attr(elem, "h5sparse_format")
    if enc in ("csr_matrix", "csc_matrix", "csr", "csc"):
        fmt = enc[:3]
        shape = _attr(elem, "shape")
        if shape is None:
            shape = _attr(elem, "h5sparse_shape")
        shape = tuple(int(x) for x in shape)
        nnz = int(elem["indptr"][-1])
        return fmt, shape, nnz
    if hasattr(elem, "shape") and hasattr(elem, "dtype") and len(elem.shape) == 2:
        if elem.dtype.kind not in "iuf":
            raise ValueError(f"{where} holds {elem.dtype} values, not counts")
        return "dense", tuple(int(x) for x in elem.shape), int(np.prod(elem.shape))
    raise ValueError(f"{where} is not a count matrix telegraph can read in slices (encoding "
                     f"{enc!r}); it must be a CSR or CSC sparse matrix or a 2-D array")


def is_ondisk(path) -> bool:
    """Whether ``path`` is something :class:`OnDiskMatrix` reads (.h5ad file, .zarr store)."""
    path = Path(path).expanduser()
    name = path.name.lower()
    return (name.endswith(".h5ad") and path.is_file()) or (name.endswith(".zarr")
                                                           and path.is_dir())


def _kind(path: Path) -> str:
    if not is_ondisk(path):
        raise ValueError(f"{path}: reading from disk works on .h5ad files and .zarr stores "
                         f"(AnnData on disk); read other formats into memory "
                         f"(telegraph.io.read) and use telegraph.fit")
    return "h5ad" if path.name.lower().endswith(".h5ad") else "zarr"


@contextlib.contextmanager
def _open_root(path, kind):
    if kind == "h5ad":
        import h5py
        with h5py.File(path, "r") as f:
            yield f
    else:
        import zarr
        yield zarr.open_group(path, mode="r")


def _read_table(path, kind, name):
    from anndata.io import read_elem
    with _open_root(path, kind) as root:
        if name not in root:
            raise ValueError(f"{path} has no {name} table; is it an AnnData file?")
        return read_elem(root[name])


def read_obs_var(path):
    """The obs and var tables of an ``.h5ad``/``.zarr`` as an AnnData without a matrix.

    Cheap for atlases: neither the count matrix nor the layers are read.
    """
    import anndata as ad
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    kind = _kind(path)
    return ad.AnnData(obs=_read_table(str(path), kind, "obs"),
                      var=_read_table(str(path), kind, "var"))


# --------------------------------------------------------------------------- slices


def check_chunk_size(chunk_size, matrix: OnDiskMatrix) -> int:
    """The user's ``chunk_size`` (cells per slice) checked, or the default."""
    if chunk_size is None:
        return matrix.default_chunk_size()
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) \
            or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive whole number of cells, got "
                         f"{chunk_size!r}")
    return int(chunk_size)


def gene_spans(sel, per_block: int):
    """Blocks of selected genes whose column span is at most ``per_block`` wide.

    ``sel`` is sorted (file column indices).  Returns a list of
    ``(first_col, stop_col, positions)``: read columns ``first_col:stop_col``,
    then keep ``positions`` (relative to first_col); the blocks cover ``sel``
    in order.
    """
    out = []
    i = 0
    n = sel.shape[0]
    while i < n:
        j = int(np.searchsorted(sel, sel[i] + per_block, side="left"))
        j = max(j, i + 1)
        a, b = int(sel[i]), int(sel[j - 1]) + 1
        out.append((a, b, (sel[i:j] - a).astype(np.int64)))
        i = j
    return out


_CELL_IN_MESSAGE = re.compile(r", cell (\d+)")


def count_cells(reader: Reader, start, stop, group_of_cell, group_capture, sel=None,
                genes=None, round_counts=False, slot=contextlib.nullcontext) -> CountHistograms:
    """Histograms of the cells ``start:stop`` (CSR or dense on disk).

    ``group_of_cell`` holds the groups of these cells only; ``sel`` the file
    columns to keep (None: all).  A bad count is reported at its cell index in
    the file, not in the slice.  The counting (not the reading) runs inside
    the context ``slot()`` (Dask workers serialise their compiled kernels).
    """
    X = reader.cells(start, stop)
    if sel is not None:
        X = X[:, sel]
    try:
        with slot():
            return count_histograms(X, groups=(group_of_cell, group_capture),
                                    round_counts=round_counts, genes=genes)
    except ValueError as exc:
        msg = _CELL_IN_MESSAGE.sub(lambda m_: f", cell {start + int(m_.group(1))}", str(exc))
        raise ValueError(f"{msg} (in {reader.m.where})") from None


def count_genes(reader: Reader, first, stop, positions, group_of_cell, group_capture,
                genes=None, round_counts=False, slot=contextlib.nullcontext) -> CountHistograms:
    """Histograms of the genes ``first:stop`` (CSC or dense on disk), every cell;
    ``positions`` picks the selected columns of the block."""
    X = reader.genes(first, stop)
    if positions is not None and not (positions.shape[0] == stop - first
                                      and np.array_equal(positions, np.arange(stop - first))):
        X = X[:, positions]
    try:
        with slot():
            return count_histograms(X, groups=(group_of_cell, group_capture),
                                    round_counts=round_counts, genes=genes)
    except ValueError as exc:
        raise ValueError(f"{exc} (in {reader.m.where})") from None


# --------------------------------------------------------------------------- one pass


@dataclass
class ReadPlan:
    """One pass over an on-disk matrix, decided before any slice is read.

    Attributes
    ----------
    matrix : OnDiskMatrix
    columns : ndarray of int64 or None
        Sorted file columns to keep (None: every gene).
    names : ndarray of object
        Names of the kept genes, in file order.
    group_of_cell : ndarray of int64, shape (n_cells,)
        Capture group of every cell of the file.
    group_capture : ndarray of float64
        Capture efficiency of each group, in (0, 1].
    chunk_size : int
        Cells per slice.
    round_counts : bool
    """

    matrix: OnDiskMatrix
    columns: np.ndarray | None
    names: np.ndarray
    group_of_cell: np.ndarray
    group_capture: np.ndarray
    chunk_size: int
    round_counts: bool = False

    @property
    def n_genes(self) -> int:
        """Genes kept."""
        return int(self.names.shape[0])

    def gene_blocks(self):
        """``(first_col, stop_col, positions)`` of a gene-major read (:func:`gene_spans`)."""
        m = self.matrix
        sel = self.columns if self.columns is not None else np.arange(m.n_genes)
        return gene_spans(sel, m.genes_per_block(self.chunk_size))

    def histograms(self, progress: bool = False) -> CountHistograms:
        """The histograms of the kept genes (file order), read here slice by slice."""
        m = self.matrix
        csc = m.format == "csc"
        bar = progress_bar(self.n_genes if csc else m.n_cells, "telegraph read", progress,
                           unit="gene" if csc else "cell", unit_scale=True)
        try:
            with m.reader() as r:
                if m.format == "csc":
                    parts = []
                    done = 0
                    for first, stop, pos in self.gene_blocks():
                        names = self.names[done:done + pos.shape[0]]
                        parts.append(count_genes(r, first, stop, pos, self.group_of_cell,
                                                 self.group_capture, genes=names,
                                                 round_counts=self.round_counts))
                        done += pos.shape[0]
                        if bar is not None:
                            bar.update(pos.shape[0])
                    return CountHistograms.concat(parts)
                stack = MergeStack()
                for a, b in m.cell_spans(self.chunk_size):
                    stack.push(count_cells(r, a, b, self.group_of_cell[a:b],
                                           self.group_capture, sel=self.columns,
                                           genes=self.names, round_counts=self.round_counts))
                    if bar is not None:
                        bar.update(b - a)
                return stack.result()
        finally:
            if bar is not None:
                bar.close()


def joint_by_genes(m: OnDiskMatrix, unspliced: OnDiskMatrix) -> bool:
    """Check that two layers can be read in the same slices; True when they
    are read by genes (CSC), False by cells (CSR or dense)."""
    if tuple(unspliced.shape) != tuple(m.shape):
        raise ValueError(f"{unspliced.where} has shape {unspliced.shape} but {m.where} "
                         f"{m.shape}; the two layers must hold the same cells and genes")
    by_genes = "csc" in (m.format, unspliced.format)
    if by_genes and {m.format, unspliced.format} == {"csc", "csr"}:
        raise ValueError(f"{m.where} is {m.format} and {unspliced.where} "
                         f"{unspliced.format}; store both layers in the same sparse format "
                         "to read them from disk")
    return by_genes


def _count_joint(U, S, groups, genes, round_counts, where, slot):
    try:
        with slot():
            return joint_count_histograms(U, S, base=config.JOINT_STREAM_BASE, groups=groups,
                                          round_counts=round_counts, genes=genes)
    except ValueError as exc:
        raise ValueError(f"{exc} (in {where})") from None


def count_joint_cells(rs: Reader, ru: Reader, start, stop, group_of_cell, group_capture,
                      sel=None, genes=None, round_counts=False,
                      slot=contextlib.nullcontext) -> JointHistograms:
    """Joint (unspliced, spliced) histograms of the cells ``start:stop`` of two
    layers (readers ``rs`` of the spliced, ``ru`` of the unspliced counts; CSR
    or dense), pairs encoded with :data:`telegraph.config.JOINT_STREAM_BASE`
    so that the slices merge. Arguments as :func:`count_cells`."""
    S, U = rs.cells(start, stop), ru.cells(start, stop)
    if sel is not None:
        S, U = S[:, sel], U[:, sel]
    return _count_joint(U, S, (group_of_cell, group_capture), genes, round_counts,
                        rs.m.where, slot)


def count_joint_genes(rs: Reader, ru: Reader, first, stop, positions, group_of_cell,
                      group_capture, genes=None, round_counts=False,
                      slot=contextlib.nullcontext) -> JointHistograms:
    """Joint histograms of the genes ``first:stop`` of two layers (CSC or
    dense), every cell. Arguments as :func:`count_genes`."""
    S, U = rs.genes(first, stop), ru.genes(first, stop)
    if positions is not None:
        S, U = S[:, positions], U[:, positions]
    return _count_joint(U, S, (group_of_cell, group_capture), genes, round_counts,
                        rs.m.where, slot)


def joint_histograms(plan: ReadPlan, unspliced: OnDiskMatrix,
                     progress: bool = False) -> JointHistograms:
    """Per-gene histograms of (unspliced, spliced) pairs of two layers of one
    file, read slice by slice (``plan.matrix`` holds the spliced counts).

    Both layers are read in the same slices (by cells for CSR or dense, by
    genes for CSC: store both in the same format) and each slice's pairs are
    counted with the fixed base :data:`telegraph.config.JOINT_STREAM_BASE`, so
    that the slices' histograms merge (:mod:`telegraph.cluster` runs the same
    slices on Dask workers).
    """
    m = plan.matrix
    by_genes = joint_by_genes(m, unspliced)
    base = config.JOINT_STREAM_BASE
    bar = progress_bar(plan.n_genes if by_genes else m.n_cells, "telegraph read", progress,
                       unit="gene" if by_genes else "cell", unit_scale=True)
    try:
        with m.reader() as rs, unspliced.reader() as ru:
            if by_genes:
                parts = []
                done = 0
                for first, stop, pos in plan.gene_blocks():
                    names = plan.names[done:done + pos.shape[0]]
                    parts.append(count_joint_genes(rs, ru, first, stop, pos,
                                                   plan.group_of_cell, plan.group_capture,
                                                   names, plan.round_counts).hist)
                    done += pos.shape[0]
                    if bar is not None:
                        bar.update(pos.shape[0])
                return JointHistograms(CountHistograms.concat(parts), base)
            stack = MergeStack()
            for a, b in m.cell_spans(plan.chunk_size):
                stack.push(count_joint_cells(rs, ru, a, b, plan.group_of_cell[a:b],
                                             plan.group_capture, plan.columns, plan.names,
                                             plan.round_counts).hist)
                if bar is not None:
                    bar.update(b - a)
            return JointHistograms(stack.result(), base)
    finally:
        if bar is not None:
            bar.close()
