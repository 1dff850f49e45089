"""Fitting count matrices that stay on disk (adapter layer).

An atlas does not have to fit in memory to be fitted: the stationary
likelihood of a gene depends on its counts only through the gene's count
histogram per capture group (:mod:`telegraph.histogram`), and histograms of
disjoint sets of cells add up.  :func:`fit_file` therefore reads an ``.h5ad``
or ``.zarr`` matrix once, one slice at a time, builds the histograms of every
slice, merges them (:meth:`CountHistograms.merge`), and fits the genes from the
merged histograms (:func:`telegraph.fitting.fit_histograms`).  Peak memory is
set by the slice size (``chunk_size``, by default about 8 million stored
entries), not by the matrix.

How a matrix is sliced follows how it is stored:

- CSR (scanpy's usual output) and dense matrices are read in blocks of
  ``chunk_size`` cells (rows); each block holds every gene, so its histograms
  are merged into the running total.
- CSC matrices are read in blocks of genes (columns) covering the same share
  of the matrix as ``chunk_size`` cells would, ``chunk_size * n_genes /
  n_cells`` genes; each block holds every cell of its genes, so its
  histograms are final and are simply put side by side.

Capture groups are computed once from the capture of *all* cells (one obs
column, cheap to read) and each slice is counted with its cells' group
indices, so the histograms of all slices share the same groups and merge
exactly: streamed results equal those of :func:`telegraph.fit` on the same
matrix in memory, bit for bit.  With ``client=`` the same work runs on a Dask
cluster whose workers read their own slices from the file
(:mod:`telegraph.scale`).
"""

from __future__ import annotations

import contextlib
import numbers
import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .histogram import CountHistograms, capture_groups, count_histograms

__all__ = ["fit_file", "histograms_file", "OnDiskMatrix", "read_obs_var",
           "write_results_h5ad", "DEFAULT_CHUNK_ENTRIES"]

#: stored entries per slice when the user gives no chunk size: about 64 MB of
#: float32 data + int32 indices, some 200 MB while counted.  Slices cost a
#: fixed overhead each (a count table over every (gene, capture group) and a
#: few parallel-region launches), so they should not be much smaller.
DEFAULT_CHUNK_ENTRIES = 8_000_000

# count_histograms' capture_bins default, which telegraph.fit relies on: the
# groups computed here from all cells must be those fit() would compute
_CAPTURE_BINS = 256


# --------------------------------------------------------------------------- the matrix


class OnDiskMatrix:
    """A cells x genes count matrix inside an ``.h5ad`` file or ``.zarr`` store.

    Holds only the location and the shape; every read opens the file, so the
    object is cheap to pickle and can be sent to Dask workers, which then read
    their slices themselves.

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

    def __init__(self, path, layer=None):
        path = Path(path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
        self.kind = _kind(path)
        self.path = str(path)
        self.layer = layer
        with self._root() as root:
            elem = self._element(root)
            self.format, self.shape, self.nnz = _describe(elem, self.where)
        self.max_entries_read = 0  # largest slice read through this object (for tests)

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
                                 f"layers: {_listing(_keys(root, 'layers'))})")
            return root["X"]
        layers = _keys(root, "layers")
        if self.layer not in layers:
            raise ValueError(f"layer {self.layer!r} not found in {self.path}; available "
                             f"layers: {_listing(layers)} (omit the layer to use X)")
        return root["layers"][self.layer]

    @contextlib.contextmanager
    def reader(self):
        """Open the file for a series of reads: ``with m.reader() as r: r.cells(0, 100)``."""
        with self._root() as root:
            yield _Reader(self, self._element(root))

    # annotations (small; read whole)
    def obs(self):
        """The obs table (pandas DataFrame), without the matrix."""
        return _read_table(self.path, self.kind, "obs")

    def var(self):
        """The var table (pandas DataFrame), without the matrix."""
        return _read_table(self.path, self.kind, "var")

    def default_chunk_size(self) -> int:
        """Cells per slice holding about :data:`DEFAULT_CHUNK_ENTRIES` stored entries."""
        per_cell = max(1.0, self.nnz / max(1, self.n_cells))
        return int(min(self.n_cells, max(1, DEFAULT_CHUNK_ENTRIES // per_cell)))

    def cell_totals(self, chunk_size=None) -> np.ndarray:
        """Total count of every cell (NaN counted as 0), read slice by slice."""
        chunk_size = chunk_size or self.default_chunk_size()
        out = np.zeros(self.n_cells)
        with self.reader() as r:
            if self.format == "csc":
                for g0, g1 in _even_spans(self.n_genes, _genes_per_block(self, chunk_size)):
                    X = r.genes(g0, g1)
                    out += np.bincount(X.indices, np.nan_to_num(X.data.astype(np.float64)),
                                       minlength=self.n_cells)
            else:
                for a, b in _even_spans(self.n_cells, chunk_size):
                    out[a:b] = _row_totals(r.cells(a, b))
        return out


class _Reader:
    """Slices of an open matrix element."""

    def __init__(self, matrix: OnDiskMatrix, elem):
        self.m = matrix
        self.elem = elem

    def _note(self, entries):
        self.m.max_entries_read = max(self.m.max_entries_read, int(entries))

    def _major(self, start, stop):
        """(data, indices, indptr) of rows (CSR) or columns (CSC) start:stop,
        read from the file without touching the rest."""
        ip = np.asarray(self.elem["indptr"][start:stop + 1], dtype=np.int64)
        lo, hi = int(ip[0]), int(ip[-1])
        self._note(hi - lo)
        data = np.asarray(self.elem["data"][lo:hi])
        indices = np.asarray(self.elem["indices"][lo:hi])
        return data, indices, ip - lo

    def cells(self, start, stop):
        """Rows ``start:stop``: a CSR matrix (CSR on disk) or an ndarray (dense)."""
        m = self.m
        if m.format == "dense":
            self._note((stop - start) * m.n_genes)
            return np.asarray(self.elem[start:stop])
        if m.format == "csc":
            raise ValueError("a CSC matrix is read by genes, not by cells")
        return sp.csr_matrix(self._major(start, stop), shape=(stop - start, m.n_genes))

    def genes(self, start, stop):
        """Columns ``start:stop`` of a CSC (or dense) matrix, every cell."""
        m = self.m
        if m.format == "dense":
            self._note((stop - start) * m.n_cells)
            return np.asarray(self.elem[:, start:stop])
        if m.format == "csr":
            raise ValueError("a CSR matrix is read by cells, not by genes")
        return sp.csc_matrix(self._major(start, stop), shape=(m.n_cells, stop - start))


def _keys(root, name):
    return list(root[name].keys()) if name in root else []


def _listing(names, n=8):
    names = [str(x) for x in names]
    if not names:
        return "none"
    shown = ", ".join(repr(x) for x in names[:n])
    return shown + (f", ... ({len(names)} in all)" if len(names) > n else "")


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
    raise ValueError(f"{where} is not a count matrix telegraph can stream (encoding "
                     f"{enc!r}); it must be a CSR or CSC sparse matrix or a 2-D array")


def _row_totals(X):
    if sp.issparse(X):
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        return np.bincount(rows, np.nan_to_num(X.data.astype(np.float64)),
                           minlength=X.shape[0])
    return np.nansum(np.asarray(X, dtype=np.float64), axis=1)


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".h5ad") and path.is_file():
        return "h5ad"
    if name.endswith(".zarr") and path.is_dir():
        return "zarr"
    raise ValueError(f"{path}: streaming reads .h5ad files and .zarr stores (AnnData "
                     f"on disk); read other formats into memory (telegraph.io.read) "
                     f"and use telegraph.fit")


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


# --------------------------------------------------------------------------- slicing


def _check_chunk_size(chunk_size, matrix):
    if chunk_size is None:
        return matrix.default_chunk_size()
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) \
            or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive whole number of cells, got "
                         f"{chunk_size!r}")
    return int(chunk_size)


def _even_spans(n, size):
    return [(a, min(n, a + size)) for a in range(0, n, size)]


def _genes_per_block(m: OnDiskMatrix, chunk_size):
    """Genes per block of a gene-major read: the share of the matrix that
    ``chunk_size`` cells would be."""
    return max(1, int(chunk_size * m.n_genes // max(1, m.n_cells)))


def gene_spans(sel, per_block):
    """Blocks of selected genes whose column span is at most ``per_block`` wide.

    ``sel`` is sorted (file column indices).  Returns a list of
    ``(first_col, stop_col, positions)``: read columns ``first_col:stop_col``,
    then keep ``positions`` (relative to first_col); the blocks cover ``sel``
    in order.
    """
    spans = []
    i = 0
    n = sel.shape[0]
    while i < n:
        j = int(np.searchsorted(sel, sel[i] + per_block, side="left"))
        j = max(j, i + 1)
        a, b = int(sel[i]), int(sel[j - 1]) + 1
        spans.append((a, b, (sel[i:j] - a).astype(np.int64)))
        i = j
    return spans


_CELL_IN_MESSAGE = re.compile(r", cell (\d+)")


def count_cells(reader, start, stop, group_of_cell, group_capture, sel=None, genes=None,
                round_counts=False, slot=contextlib.nullcontext):
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


def count_genes(reader, first, stop, positions, group_of_cell, group_capture, genes=None,
                round_counts=False, slot=contextlib.nullcontext):
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


def concat_genes(hists):
    """Histograms of consecutive gene blocks (same cells) side by side."""
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
    return CountHistograms(indptr, np.concatenate([h.values for h in hists]),
                           np.concatenate([h.groups for h in hists]),
                           np.concatenate([h.weights for h in hists]), cap.copy(),
                           np.concatenate([h.n_cells for h in hists]),
                           np.concatenate([h.n_missing for h in hists]), genes)


class MergeStack:
    """Binary-counter merging of a stream of histograms.

    Each new histogram is merged with the pending one of equal level, so
    every bin is merged O(log n_chunks) times instead of once per chunk.
    """

    def __init__(self):
        self._stack = []  # (level, hist), levels strictly decreasing

    def push(self, hist):
        level = 0
        while self._stack and self._stack[-1][0] == level:
            _, other = self._stack.pop()
            hist = other.merge(hist)
            level += 1
        self._stack.append((level, hist))

    def result(self):
        if not self._stack:
            raise ValueError("no histograms to merge")
        hist = self._stack.pop()[1]
        while self._stack:
            hist = self._stack.pop()[1].merge(hist)
        return hist


# --------------------------------------------------------------------------- the plan


class _Plan:
    """Everything decided on the client before any slice is read."""

    __slots__ = ("matrix", "sel", "order", "names", "group_of_cell", "group_capture",
                 "capture_desc", "syn_scale", "k_deg", "chunk_size", "round_counts")


def _resolve_genes(genes, names):
    """(sorted unique file columns or None, row order of the result)."""
    if genes is None:
        return None, None
    arr = np.asarray(genes)
    n = names.shape[0]
    if arr.ndim == 0:
        arr = arr[None]
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(f"boolean genes mask has {arr.shape[0]} entries for {n} genes")
        idx = np.flatnonzero(arr)
    elif arr.dtype.kind in "OUS":
        pos = {}
        for i, name in enumerate(names):
            pos.setdefault(str(name), i)
        missing = [str(g) for g in arr if str(g) not in pos]
        if missing:
            raise KeyError(f"{len(missing)} genes not in the file's var_names, e.g. "
                           f"{missing[:3]}")
        idx = np.array([pos[str(g)] for g in arr], np.int64)
    elif arr.dtype.kind in "iu":
        idx = arr.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"gene index out of range for {n} genes")
    else:
        raise ValueError(f"genes must be names, a boolean mask or column indices, got "
                         f"dtype {arr.dtype}")
    if idx.size == 0:
        raise ValueError("genes selects no gene")
    sel, order = np.unique(idx, return_inverse=True)
    return sel, order.ravel()


def _resolve_capture(matrix, capture, chunk_size, client):
    from .fitting import resolve_capture
    n = matrix.n_cells
    if capture is None:
        return None, "none"
    if isinstance(capture, str):
        if capture == "total":
            if client is None:
                totals = matrix.cell_totals(chunk_size)
            else:
                from .scale import cell_totals_dask
                totals = cell_totals_dask(matrix, chunk_size, client=client)
            # resolve_capture computes totals from a matrix: one column of totals
            # gives it exactly the numbers it would have summed
            return resolve_capture("total", totals[:, None], n)
        obs = matrix.obs()
        if capture not in obs.columns:
            raise KeyError(f"capture column {capture!r} not found in the obs of "
                           f"{matrix.path} (columns: {_listing(obs.columns)}); or pass "
                           f"capture='total' for size factors from total counts")
        capture = obs[capture].to_numpy(dtype=float)
    elif isinstance(capture, numbers.Real) and not isinstance(capture, bool):
        capture = np.full(n, float(capture))
    return resolve_capture(capture, None, n)


def _resolve_k_deg(matrix, k_deg):
    if k_deg is None:
        return None
    if isinstance(k_deg, str):
        var = matrix.var()
        if k_deg not in var.columns:
            raise KeyError(f"k_deg column {k_deg!r} not found in the var of {matrix.path} "
                           f"(columns: {_listing(var.columns)})")
        return var[k_deg].to_numpy(dtype=float)
    k = np.asarray(k_deg, dtype=float)
    if k.ndim == 0:
        return np.full(matrix.n_genes, float(k))
    if k.shape != (matrix.n_genes,):
        raise ValueError(f"k_deg has {k.size} values for the {matrix.n_genes} genes of "
                         f"the file; give one per gene (or a var column name)")
    return k


def _plan(path, *, layer, capture, k_deg, genes, capture_rtol, chunk_size, round_counts,
          client):
    if hasattr(path, "isbacked") and hasattr(path, "filename"):  # a backed AnnData
        if not path.isbacked:
            raise ValueError("this AnnData is in memory; use telegraph.fit / tg.tl.fit")
        path = path.filename
    p = _Plan()
    p.matrix = m = OnDiskMatrix(path, layer)
    p.chunk_size = _check_chunk_size(chunk_size, m)
    var = m.var()
    all_names = np.asarray(var.index.astype(str), dtype=object)
    if all_names.shape[0] != m.n_genes:
        raise ValueError(f"{m.where}: {m.n_genes} genes in the matrix but "
                         f"{all_names.shape[0]} in var")
    p.sel, p.order = _resolve_genes(genes, all_names)
    p.names = all_names if p.sel is None else all_names[p.sel]
    s, p.capture_desc = _resolve_capture(m, capture, p.chunk_size, client)
    # size factors may exceed 1 (as in telegraph.fit): fit efficiencies s / max(s)
    p.syn_scale = 1.0
    if s is not None and s.max() > 1.0:
        p.syn_scale = 1.0 / s.max()
        s = s / s.max()
    if s is None:
        p.group_of_cell = np.zeros(m.n_cells, np.int64)
        p.group_capture = np.ones(1)
    else:
        p.group_of_cell, p.group_capture = capture_groups(
            s, max_groups=_CAPTURE_BINS, rtol=capture_rtol, n_cells=m.n_cells)
    kd = _resolve_k_deg(m, k_deg)
    p.k_deg = kd if (kd is None or p.sel is None) else kd[p.sel]
    p.round_counts = bool(round_counts)
    return p


# --------------------------------------------------------------------------- public


def histograms_file(path, *, layer=None, capture=None, genes=None, round_counts=False,
                    capture_rtol=0.05, chunk_size=None, progress=False):
    """Per-gene count histograms of an on-disk matrix, in one pass of bounded memory.

    Parameters are those of :func:`fit_file`.  Returns the
    :class:`~telegraph.histogram.CountHistograms` of the selected genes (in
    file order) -- what :func:`telegraph.fit` would build from the same
    matrix in memory -- with capture already divided by its maximum when it
    came from size factors.
    """
    p = _plan(path, layer=layer, capture=capture, k_deg=None, genes=genes,
              capture_rtol=capture_rtol, chunk_size=chunk_size, round_counts=round_counts,
              client=None)
    return _histograms_local(p, progress)


def _histograms_local(p: _Plan, progress):
    m = p.matrix
    bar = None
    if progress:
        from tqdm.auto import tqdm
        csc = m.format == "csc"
        n = (m.n_genes if p.sel is None else p.sel.shape[0]) if csc else m.n_cells
        bar = tqdm(total=n, desc="telegraph read", unit="gene" if csc else "cell",
                   unit_scale=True, leave=False)
    try:
        with m.reader() as r:
            if m.format == "csc":
                sel = p.sel if p.sel is not None else np.arange(m.n_genes)
                parts = []
                done = 0
                for first, stop, pos in gene_spans(sel, _genes_per_block(m, p.chunk_size)):
                    names = p.names[done:done + pos.shape[0]]
                    parts.append(count_genes(r, first, stop, pos, p.group_of_cell,
                                             p.group_capture, genes=names,
                                             round_counts=p.round_counts))
                    done += pos.shape[0]
                    if bar is not None:
                        bar.update(pos.shape[0])
                return concat_genes(parts)
            stack = MergeStack()
            for a, b in _even_spans(m.n_cells, p.chunk_size):
                h = count_cells(r, a, b, p.group_of_cell[a:b], p.group_capture, sel=p.sel,
                                genes=p.names, round_counts=p.round_counts)
                stack.push(h)
                if bar is not None:
                    bar.update(b - a)
            return stack.result()
    finally:
        if bar is not None:
            bar.close()


def fit_file(path, *, layer=None, capture=None, k_deg=None, genes=None, min_cells=10,
             ci=0.95, interval="profile", round_counts=False, capture_rtol=0.05,
             chunk_size=None, n_jobs=None, progress=True, client=None,
             chunk_genes=None):
    """Fit every gene of an ``.h5ad``/``.zarr`` count matrix without loading it.

    One pass over slices of the matrix builds each gene's count histogram per
    capture group; the genes are then fitted from the histograms.  The result
    equals ``telegraph.fit`` on the same matrix loaded into memory.

    Parameters
    ----------
    path : str, Path, or backed AnnData
        An ``.h5ad`` file or AnnData ``.zarr`` store (or an AnnData opened with
        ``backed="r"``, whose file is then read).
    layer : str, optional
        Layer holding the raw counts (default ``X``).
    capture : None, str, float, or array_like of shape (n_cells,)
        Per-cell capture efficiency in (0, 1] (fraction of a cell's molecules
        counted): an obs column name, one number for all cells, an array, or
        ``"total"`` (each cell's total count divided by the mean total, a
        relative size factor; costs one more pass over the file).  k_syn and
        burst size are then in molecules counted in a cell of average depth.
    k_deg : None, str, float, or array_like of shape (n_genes,)
        mRNA degradation rate per gene, per unit time (a var column name, one
        value, or an array over all genes of the file).  Without it all
        rates are in units of k_deg.
    genes : sequence of str, boolean mask, or integer indices, optional
        Fit only these genes (rows of the result in the order given); the
        other columns of the file are never counted.
    min_cells, ci, interval, round_counts, capture_rtol, n_jobs, progress, chunk_genes
        As in :func:`telegraph.fit`.
    chunk_size : int, optional
        Cells per slice.  Peak memory grows with it: a CSR slice holds
        ``chunk_size`` rows of the matrix (data and indices), a dense one
        ``chunk_size * n_genes`` values; counting needs about three times
        that.  A CSC matrix is read in blocks of ``chunk_size * n_genes /
        n_cells`` genes.  Default: slices of about 8 million stored entries
        (:data:`DEFAULT_CHUNK_ENTRIES`; 7,000 cells of a 20,000-gene atlas at
        6% non-zero), some 200 MB of working memory.
    client : dask.distributed.Client, optional
        Run on a Dask cluster: workers read their own slices from ``path``
        (which they must be able to open: a shared file system), histograms
        are tree-reduced on the workers, and blocks of genes are fitted there
        (:func:`telegraph.scale.fit_file_dask`).  Same results.

    Returns
    -------
    pandas.DataFrame
        As :func:`telegraph.fit`, one row per (selected) gene, indexed by the
        file's var names.
    """
    from .fitting import FitSettings, _rescale_syn, fit_histograms

    settings_kw = dict(ci=ci, interval=interval, min_cells=min_cells)
    p = _plan(path, layer=layer, capture=capture, k_deg=k_deg, genes=genes,
              capture_rtol=capture_rtol, chunk_size=chunk_size, round_counts=round_counts,
              client=client)
    settings = FitSettings(capture=p.capture_desc, **settings_kw)
    if client is not None:
        from .scale import fit_plan_dask
        res = fit_plan_dask(p, settings, client=client, progress=progress)
    else:
        hist = _histograms_local(p, progress)
        res = fit_histograms(hist, k_deg=p.k_deg, settings=settings, n_jobs=n_jobs,
                             progress=progress, chunk_genes=chunk_genes)
    _rescale_syn(res, p.syn_scale)
    if p.order is not None and not np.array_equal(p.order, np.arange(p.sel.shape[0])):
        res = res.iloc[p.order]
    return res


def write_results_h5ad(source, path, adata, *, key="telegraph", refuse=()):
    """Write a copy of the ``.h5ad`` file ``source`` with ``adata``'s var and
    ``adata.uns[key]`` in place of its own, without loading the matrix.

    ``adata`` holds the obs/var of ``source`` (:func:`read_obs_var`) with the
    results added (:func:`telegraph.tl.kinetics.store_results`).  The copy is
    written atomically next to ``path``; ``source`` itself is refused.
    """
    import shutil

    import h5py
    from anndata.io import write_elem

    from .io import _atomic_write, check_output_path
    source = Path(source).expanduser()
    path = check_output_path(path, suffixes=(".h5ad",), refuse=[source, *refuse])

    def writer(tmp):
        shutil.copyfile(source, tmp)
        with h5py.File(tmp, "r+") as f:
            del f["var"]
            write_elem(f, "var", adata.var)
            if "uns" not in f:
                write_elem(f, "uns", {})
            if key in f["uns"]:
                del f["uns"][key]
            write_elem(f["uns"], key, adata.uns[key])

    _atomic_write(path, writer)
    return path
