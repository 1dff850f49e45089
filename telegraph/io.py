"""Reading count matrices and writing results (adapter layer).

:func:`read` turns the file formats single-cell counts come in into an
:class:`anndata.AnnData` of cells x genes; :func:`write_h5ad_atomic` and
:func:`write_table_atomic` write results so that a crash, a full disk or
Ctrl-C never leaves a half-written file behind, and never overwrite the
input. This module holds no maths: counts are passed through unchanged
(missing values stay NaN; validation of counts is the fitting library's job).
"""

from __future__ import annotations

import contextlib
import gzip
import bz2
import lzma
import os
import socket
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

__all__ = [
    "read",
    "write_h5ad_atomic",
    "write_table_atomic",
    "check_layer",
    "check_output_path",
    "remove_stale_temps",
    "write_h5ad_annotations_atomic",
    "read_txburst_results",
    "find_txburst_results",
    "SUPPORTED_FORMATS",
]

#: Human-readable list of what :func:`read` understands (used in error messages and help).
SUPPORTED_FORMATS = (
    ".h5ad (AnnData), "
    ".csv/.tsv/.txt (optionally .gz; genes x cells, gene names in the first column), "
    "a 10x Genomics directory with matrix.mtx(.gz), features.tsv(.gz) or genes.tsv, "
    "barcodes.tsv(.gz), a 10x Genomics .h5, .loom, .zarr (AnnData zarr store)"
)

# Values of a text table that mean "missing" (blank is txburst's convention;
# the others are what R and pandas write for NA).
_MISSING = ["", "NA", "NaN", "nan", "N/A", "n/a", "NULL", "null", "<NA>"]
#: the name under which the row-name column of a text table is read
_NAMES = "\0row names"
_TEXT_SEP = {".csv": ",", ".tsv": "\t", ".txt": None}
_COMPRESSION = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


# --------------------------------------------------------------------------- reading

def read(path, *, layer: str | None = None, cells_in_rows: bool = False,
         genes_column: int | str = 0):
    """Read a count matrix into an AnnData of cells x genes.

    The format is chosen from the path:

    - ``.h5ad``: :func:`anndata.read_h5ad`.
    - ``.csv``, ``.tsv``, ``.txt`` (each optionally ``.gz``, ``.bz2``, ``.xz``):
      the layout of txburst (Larsson et al. 2019): one row per gene, gene
      names in the first column, a header row of cell names, UMI counts in
      the cells. Blank cells (and ``NA``, ``NaN``) are missing values, kept
      as NaN (for allele-resolved data: the cell had reads for the gene but
      none could be assigned to the allele). ``.txt`` separators are
      detected from the header line (tab, comma or whitespace).
    - a directory holding 10x Genomics Cell Ranger output (``matrix.mtx``
      with ``features.tsv``/``genes.tsv`` and ``barcodes.tsv``, gzipped or
      not, optionally with a common file-name prefix), or the path of its
      ``matrix.mtx(.gz)``: :func:`scanpy.read_10x_mtx` (gene symbols as
      names, made unique; only "Gene Expression" features).
    - ``.h5``: a 10x Genomics HDF5 matrix, :func:`scanpy.read_10x_h5`.
    - ``.loom``: :func:`anndata.io.read_loom` (needs ``loompy``); the main
      matrix becomes ``X`` and every named loom layer a layer.
    - ``.zarr``: an AnnData zarr store, :func:`anndata.read_zarr`.

    The input is opened read-only and never modified.

    Parameters
    ----------
    path
        File or directory to read.
    layer
        Name of the layer holding the counts (h5ad, loom, zarr). It is
        checked to exist; the AnnData is returned whole, so pass the same
        ``layer`` to :func:`telegraph.tl.fit`. ``None`` means ``X``.
    cells_in_rows
        Text tables only: rows are cells and the header row names genes (the
        transpose of txburst's layout).
    genes_column
        Text tables only: the column (0-based position or header name)
        holding the row names (gene names, or cell names with
        ``cells_in_rows=True``).

    Returns
    -------
    anndata.AnnData
        Cells x genes. Counts of text tables are int64 when every value is a
        whole number and none is missing, float64 (with NaN) otherwise.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Unknown format, a missing layer, options that do not apply to the
        format, or a table that is not numeric.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    kind = _kind(path)
    if cells_in_rows and kind != "text":
        raise ValueError(f"{path}: cells_in_rows (--cells-in-rows) applies only to "
                         f".csv/.tsv/.txt tables, not to {kind} input")
    if kind == "text":
        adata = _read_text(path, cells_in_rows=cells_in_rows, genes_column=genes_column)
    elif kind == "h5ad":
        import anndata as ad
        adata = ad.read_h5ad(path)
    elif kind == "10x-mtx":
        adata = _read_10x_dir(path)
    elif kind == "10x-h5":
        adata = _read_10x_h5(path)
    elif kind == "loom":
        adata = _read_loom(path)
    elif kind == "zarr":
        import anndata as ad
        adata = ad.read_zarr(str(path))
    else:  # pragma: no cover - _kind only returns the kinds above
        raise AssertionError(kind)
    check_layer(adata, layer, source=str(path))
    return adata


def check_layer(adata, layer: str | None, *, source: str = "the data") -> None:
    """Raise a ValueError naming the available layers unless ``layer`` exists.

    ``layer=None`` stands for ``adata.X``, which must then be present.
    """
    available = list(adata.layers.keys())
    if layer is None:
        if adata.X is None:
            raise ValueError(
                f"{source} has no X matrix; choose a layer "
                f"(available layers: {', '.join(map(repr, available)) or 'none'})")
        return
    if layer not in adata.layers:
        listed = ", ".join(map(repr, available)) if available else "none"
        raise ValueError(f"layer {layer!r} not found in {source}; available layers: "
                         f"{listed} (omit the layer to use X)")


def _kind(path: Path) -> str:
    name = path.name.lower()
    if path.is_dir():
        if name.endswith(".zarr"):
            return "zarr"
        if _find_mtx(path) is not None:
            return "10x-mtx"
        raise ValueError(
            f"{path} is a directory but neither a 10x Genomics matrix directory (no "
            f"matrix.mtx or matrix.mtx.gz inside) nor a .zarr store; supported formats: "
            f"{SUPPORTED_FORMATS}")
    stem = name
    for ext in _COMPRESSION:
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    if stem.endswith("matrix.mtx"):
        return "10x-mtx"
    suffix = Path(stem).suffix
    if suffix in _TEXT_SEP:
        return "text"
    if stem != name:
        raise ValueError(f"{path}: compressed input is supported for .csv/.tsv/.txt "
                         f"tables and 10x .mtx files only; supported formats: "
                         f"{SUPPORTED_FORMATS}")
    kinds = {".h5ad": "h5ad", ".h5": "10x-h5", ".loom": "loom", ".zarr": "zarr"}
    if suffix in kinds:
        return kinds[suffix]
    raise ValueError(f"{path}: unknown file format {suffix or '(no extension)'!r}; "
                     f"supported formats: {SUPPORTED_FORMATS}")


def _open_text(path: Path):
    opener = _COMPRESSION.get(path.suffix.lower())
    if opener is None:
        return open(path, "rt", newline="")
    return opener(path, "rt", newline="")


def _text_sep(path: Path) -> str:
    stem = path.name.lower()
    for ext in _COMPRESSION:
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    sep = _TEXT_SEP[Path(stem).suffix]
    if sep is not None:
        return sep
    with _open_text(path) as fh:
        first = fh.readline()
    if "\t" in first:
        return "\t"
    if "," in first:
        return ","
    return r"\s+"


def _read_text(path: Path, *, cells_in_rows: bool, genes_column):
    import anndata as ad
    import pandas as pd

    sep = _text_sep(path)
    try:
        header = pd.read_csv(path, sep=sep, nrows=0).columns
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty; expected a header row of "
                         f"{'gene' if cells_in_rows else 'cell'} names") from None
    if isinstance(genes_column, (int, np.integer)) and not isinstance(genes_column, bool):
        if not -len(header) <= genes_column < len(header):
            raise ValueError(f"{path}: genes_column={genes_column} is out of range; the "
                             f"header has {len(header)} columns")
        name_col = header[genes_column]
    elif isinstance(genes_column, str):
        if genes_column not in header:
            raise ValueError(f"{path}: no column named {genes_column!r} in the header "
                             f"(first columns: {list(header[:5])})")
        name_col = genes_column
    else:
        raise TypeError("genes_column must be a column position (int) or a header name (str)")
    value_cols = [c for c in header if c != name_col]
    if not value_cols:
        raise ValueError(f"{path} has no count columns besides the name column {name_col!r}")
    # The name column is read under a name of our own: its header cell is often blank
    # (DataFrame.to_csv, R's write.csv), which pandas reports as "Unnamed: 0" and then
    # cannot combine with per-column missing-value markers.
    pos = list(header).index(name_col)
    names = [_NAMES if i == pos else c for i, c in enumerate(header)]
    # Missing-value markers apply to the counts only: a gene may well be called "NA" or "Nan".
    df = pd.read_csv(path, sep=sep, header=0, names=names, index_col=pos,
                     keep_default_na=False, na_values={c: _MISSING for c in value_cols},
                     dtype={_NAMES: str})
    df.index.name = None if str(name_col).startswith("Unnamed: ") else name_col
    if df.shape[0] == 0:
        raise ValueError(f"{path} has a header but no data rows")
    bad = [c for c in df.columns if df[c].dtype.kind not in "iuf"]
    if bad:
        col = bad[0]
        numeric = pd.to_numeric(df[col], errors="coerce")
        culprit = df[col][numeric.isna() & df[col].notna()]
        row, value = (culprit.index[0], culprit.iloc[0]) if len(culprit) else ("?", "?")
        raise ValueError(
            f"{path}: non-numeric value {value!r} in column {col!r}, row {row!r} "
            f"({len(bad)} column(s) affected); counts must be numbers, blank = missing. "
            f"Is the separator right, or are the names in another column?")
    values = df.to_numpy(dtype=np.float64)
    values = _as_int_if_whole(values)
    row_names = pd.Index(df.index.astype(str))
    col_names = pd.Index([str(c) for c in df.columns])
    if cells_in_rows:
        X, cells, genes = values, row_names, col_names
    else:
        X, cells, genes = np.ascontiguousarray(values.T), col_names, row_names
    adata = ad.AnnData(X=X, obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=genes))
    for what, names in (("gene", genes), ("cell", cells)):
        n_dup = int(names.duplicated().sum())
        if n_dup:
            warnings.warn(f"{path}: {n_dup} duplicated {what} name(s), e.g. "
                          f"{names[names.duplicated()][0]!r}; results are per column "
                          f"position, names are kept as they are", UserWarning, stacklevel=3)
    return adata


def _as_int_if_whole(values: np.ndarray) -> np.ndarray:
    """int64 when every value is a finite whole number (no missing), else float64."""
    if values.size and np.isfinite(values).all() and (np.abs(values) < 2.0 ** 53).all() \
            and (values == np.round(values)).all():
        return values.astype(np.int64)
    return values


def _find_mtx(directory: Path):
    """(prefix, gzipped) of the single ``*matrix.mtx[.gz]`` in a directory, else None."""
    hits = sorted(p.name for p in directory.iterdir()
                  if p.is_file() and (p.name.endswith("matrix.mtx")
                                      or p.name.endswith("matrix.mtx.gz")))
    if not hits:
        return None
    if len(hits) > 1:
        prefixes = sorted({h[: h.index("matrix.mtx")] for h in hits})
        if len(prefixes) > 1:
            raise ValueError(f"{directory} holds several matrices ({', '.join(hits)}); "
                             f"give the path of the one to read")
    name = hits[0]
    return name[: name.index("matrix.mtx")], name.endswith(".gz")


def _read_10x_dir(path: Path):
    if path.is_file():  # the path of matrix.mtx(.gz) itself
        prefix = path.name[: path.name.lower().index("matrix.mtx")]
        directory = path.parent
    else:
        directory = path
        prefix, _ = _find_mtx(directory)

    def has(name):
        return (directory / f"{prefix}{name}").is_file()

    legacy = has("genes.tsv") and has("matrix.mtx") and has("barcodes.tsv")
    v3 = has("features.tsv.gz") and has("matrix.mtx.gz") and has("barcodes.tsv.gz")
    if legacy or v3:
        import scanpy as sc
        # cache=False: scanpy's cache would write files next to the working directory.
        return sc.read_10x_mtx(directory, prefix=prefix, cache=False)
    return _read_10x_dir_mixed(directory, prefix)


def _first_existing(directory: Path, prefix: str, names: Iterable[str]):
    for name in names:
        p = directory / f"{prefix}{name}"
        if p.is_file():
            return p
    return None


def _read_10x_dir_mixed(directory: Path, prefix: str):
    """10x directories whose files were partly (un)gzipped by hand, which scanpy rejects."""
    import anndata as ad
    import pandas as pd
    import scipy.io
    import scipy.sparse as sp

    mtx = _first_existing(directory, prefix, ["matrix.mtx.gz", "matrix.mtx"])
    feats = _first_existing(directory, prefix, ["features.tsv.gz", "features.tsv",
                                                "genes.tsv.gz", "genes.tsv"])
    barcodes = _first_existing(directory, prefix, ["barcodes.tsv.gz", "barcodes.tsv"])
    missing = [n for n, p in (("matrix.mtx", mtx), ("features.tsv or genes.tsv", feats),
                              ("barcodes.tsv", barcodes)) if p is None]
    if missing:
        raise ValueError(f"{directory}: incomplete 10x Genomics matrix directory, missing "
                         f"{' and '.join(prefix + m for m in missing)} (or .gz)")
    with (gzip.open(mtx, "rb") if mtx.suffix == ".gz" else open(mtx, "rb")) as fh:
        X = sp.csr_matrix(scipy.io.mmread(fh).T, dtype=np.float32)
    genes = pd.read_csv(feats, sep="\t", header=None, dtype=str)
    cells = pd.read_csv(barcodes, sep="\t", header=None, dtype=str)
    if genes.shape[0] != X.shape[1] or cells.shape[0] != X.shape[0]:
        raise ValueError(f"{directory}: matrix.mtx is {X.shape[1]} features x {X.shape[0]} "
                         f"barcodes but the feature and barcode files list {genes.shape[0]} "
                         f"and {cells.shape[0]}")
    import anndata.utils
    symbols = genes[1] if genes.shape[1] > 1 else genes[0]
    var = pd.DataFrame({"gene_ids": genes[0].to_numpy()},
                       index=anndata.utils.make_index_unique(pd.Index(symbols.to_numpy())))
    if genes.shape[1] > 2:
        var["feature_types"] = genes[2].to_numpy()
    adata = ad.AnnData(X=X, obs=pd.DataFrame(index=pd.Index(cells[0].to_numpy())), var=var)
    if "feature_types" in var and (var["feature_types"] == "Gene Expression").any():
        adata = adata[:, (var["feature_types"] == "Gene Expression").to_numpy()].copy()
    return adata


def _read_10x_h5(path: Path):
    import scanpy as sc
    try:
        with warnings.catch_warnings():
            # made unique below, as scanpy's mtx reader does
            warnings.filterwarnings("ignore", "Variable names are not unique")
            adata = sc.read_10x_h5(path)
    except Exception as exc:  # h5py/scanpy raise many types on a foreign layout
        raise ValueError(f"could not read {path} as a 10x Genomics .h5 matrix "
                         f"({type(exc).__name__}: {exc}); for an AnnData file use the "
                         f".h5ad extension") from exc
    adata.var_names_make_unique()
    return adata


def _read_loom(path: Path):
    try:
        import loompy  # (anndata imports it lazily; fail with advice instead)
    except ModuleNotFoundError:
        raise ValueError(f"reading {path} needs the 'loompy' package: pip install loompy") \
            from None
    import anndata as ad

    # Loom has no fixed name for the cell and gene name attributes: loompy/velocyto
    # write CellID/Gene, anndata writes obs_names/var_names.
    with loompy.connect(str(path), "r") as lc:
        col_keys, row_keys = list(lc.ca.keys()), list(lc.ra.keys())
    obs_key = next((k for k in _LOOM_CELL_KEYS if k in col_keys), "CellID")
    var_key = next((k for k in _LOOM_GENE_KEYS if k in row_keys), "Gene")
    # X_name="": X is always the loom's main matrix (anndata's default would silently
    # swap in a "spliced" layer); float64 keeps large counts exact.
    return ad.io.read_loom(path, sparse=True, X_name="", dtype="float64",
                           obs_names=obs_key, var_names=var_key)


_LOOM_CELL_KEYS = ("CellID", "obs_names", "cell_names", "CellName", "cell_id", "barcode")
_LOOM_GENE_KEYS = ("Gene", "var_names", "gene_names", "GeneName", "gene", "Accession")


# --------------------------------------------------------------------------- writing

def check_output_path(path, *, suffixes: Iterable[str], refuse: Iterable = ()) -> Path:
    """Validate an output path before any work is done; returns it as a Path.

    Raises ValueError when the extension is not one of ``suffixes``, the path
    is a directory, or it names one of the files in ``refuse`` (the input);
    FileNotFoundError when its directory does not exist; PermissionError when
    no file can be created there (read-only directory or file system).
    """
    path = Path(path).expanduser()
    suffixes = tuple(s.lower() for s in suffixes)
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{path}: output must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name ending in "
                         f"{' or '.join(suffixes)}")
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {str(parent)!r} does not exist")
    for other in refuse:
        if other is not None and _same_file(path, Path(other).expanduser()):
            raise ValueError(f"refusing to overwrite the input file {other}; choose another "
                             f"output path")
    # the one sure test of writability (permissions, read-only mounts, ACLs, quotas of
    # inodes) is to create the temporary file the write will use
    try:
        fd, probe = _make_temp(path)
    except OSError as exc:
        raise PermissionError(f"cannot write {path}: directory {str(parent)!r} is not "
                              f"writable ({exc.strerror or exc})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return path


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _new_file_mode(path: Path) -> int:
    if path.exists():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# Temporary files are named .NAME.tmp<pid>@<host>~<random>: a later write of NAME
# removes those whose process is gone (killed during a write: SIGKILL, power loss).
_TMP_MARK = ".tmp"


def _temp_prefix(path: Path) -> str:
    return f".{path.name}{_TMP_MARK}"


def _make_temp(path: Path):
    """A new temporary file beside ``path``: (fd, name)."""
    prefix = f"{_temp_prefix(path)}{os.getpid()}@{socket.gethostname()}~"
    return tempfile.mkstemp(dir=path.parent, prefix=prefix)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # exists, owned by someone else
        return True
    return True


def remove_stale_temps(path) -> list[Path]:
    """Remove the temporary files of earlier writes of ``path`` that can no longer
    complete: those of processes of this host that are gone, and unparseable ones
    (older versions) unmodified for an hour. Returns what was removed."""
    path = Path(path).expanduser()
    prefix = _temp_prefix(path)
    host = socket.gethostname()
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        owner, sep, _ = entry.name[len(prefix):].partition("~")
        pid, at, where = owner.partition("@")
        try:
            if sep and at and pid.isdigit():
                stale = where == host and not _pid_alive(int(pid))
            else:
                stale = time.time() - entry.stat(follow_symlinks=False).st_mtime > 3600
            if stale and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _atomic_write(path: Path, writer: Callable[[str], None]) -> None:
    """Run ``writer(tmp)`` on a temporary file beside ``path``, then rename it into place.

    os.replace within one directory is atomic, so readers see the old file or
    the complete new one; on any error (or KeyboardInterrupt) the temporary
    file is removed and the target is left as it was. Temporary files that
    earlier writes of ``path`` left behind (a killed process) are removed
    first (:func:`remove_stale_temps`).
    """
    mode = _new_file_mode(path)
    remove_stale_temps(path)
    fd, tmp = _make_temp(path)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, mode)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_h5ad_atomic(adata, path, *, refuse: Iterable = ()) -> Path:
    """Write ``adata`` to ``path`` (.h5ad) atomically.

    Parameters
    ----------
    adata
        The AnnData to write.
    path
        Destination, ending in ``.h5ad``; its directory must exist.
    refuse
        Paths that must not be overwritten (typically the input file);
        compared after resolving symbolic links.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = check_output_path(path, suffixes=(".h5ad",), refuse=refuse)
    _atomic_write(path, lambda tmp: adata.write_h5ad(tmp))
    return path


def write_table_atomic(df, path, *, refuse: Iterable = (), index: bool = False) -> Path:
    """Write a DataFrame as ``.csv`` (comma) or ``.tsv`` (tab) atomically.

    Missing values are written as empty fields, infinite ones as ``inf`` /
    ``-inf``; floats keep full (round-trip) precision. ``refuse`` and the
    atomicity are as in :func:`write_h5ad_atomic`.
    """
    path = check_output_path(path, suffixes=(".csv", ".tsv"), refuse=refuse)
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    _atomic_write(path, lambda tmp: df.to_csv(tmp, sep=sep, index=index, na_rep=""))
    return path


def write_h5ad_annotations_atomic(source, path, adata, *, uns_key: str,
                                  refuse: Iterable = ()) -> Path:
    """Write a copy of the ``.h5ad`` file ``source`` with ``adata.var`` and
    ``adata.uns[uns_key]`` in place of its own, without loading its matrix.

    ``adata`` holds the obs/var of ``source`` (e.g.
    :func:`telegraph.ondisk.read_obs_var`) with results added. The copy is
    written atomically; ``source`` itself (and ``refuse``) is never
    overwritten.
    """
    import shutil

    import h5py
    from anndata.io import write_elem

    source = Path(source).expanduser()
    path = check_output_path(path, suffixes=(".h5ad",), refuse=[source, *refuse])

    def writer(tmp):
        shutil.copyfile(source, tmp)
        with h5py.File(tmp, "r+") as f:
            del f["var"]
            write_elem(f, "var", adata.var)
            if "uns" not in f:
                write_elem(f, "uns", {})
            if uns_key in f["uns"]:
                del f["uns"][uns_key]
            write_elem(f["uns"], uns_key, adata.uns[uns_key])

    _atomic_write(path, writer)
    return path


# --------------------------------------------------------------------------- txburst's results

#: the file names of txburst's results for counts ``<stem>.csv``: as txburst writes them
#: (pickles, the form of its public ``data/`` folder) and as tidy CSV copies
_TXBURST_NAMES = {
    "ML": ("{stem}_ML.pkl", "{stem}_txburst_ML.csv"),
    "TEST": ("{stem}_vs_{stem2}_TEST.pkl", "{stem}_vs_{short2}_txburst_TEST.csv"),
}


def find_txburst_results(directory, stem: str, stem2: str | None = None) -> Path:
    """The file of txburst's results for the counts ``<stem>.csv`` in ``directory``:
    maximum-likelihood estimates (``txburstML.py``), or with ``stem2`` the
    tests of ``<stem>.csv`` against ``<stem2>.csv`` (``txburstTEST.py``). Either
    the pickle txburst writes (``<stem>_ML.pkl``,
    ``<stem>_vs_<stem2>_TEST.pkl``, as published in its repository's ``data/``
    folder) or a tidy CSV copy (``<stem>_txburst_ML.csv``,
    ``<stem>_vs_<suffix of stem2>_txburst_TEST.csv``). Raises
    FileNotFoundError naming both."""
    directory = Path(directory)
    kind = "ML" if stem2 is None else "TEST"
    short2 = None
    if stem2 is not None:
        common = os.path.commonprefix([stem, stem2])
        short2 = stem2[len(common[:common.rfind("_") + 1]):]
    names = [n.format(stem=stem, stem2=stem2, short2=short2) for n in _TXBURST_NAMES[kind]]
    for name in names:
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"txburst's {kind} results for {stem}"
                            + (f" vs {stem2}" if stem2 else "") + f" not found in {directory}: "
                            f"looked for {' and '.join(names)} (the pickle is what txburst "
                            f"writes and publishes in its data/ folder)")


def read_txburst_results(path) -> "pd.DataFrame":
    """txburst's results as a tidy table indexed by gene.

    Reads the pickles txburst writes -- ``*_ML.pkl`` (txburstML.py: per gene
    the array (k_on, k_off, k_syn) and the ``keep`` flag) and ``*_TEST.pkl``
    (txburstTEST.py: per gene both groups' arrays and the p-values of burst
    frequency and burst size) -- and tidy CSV copies of them. Returns columns
    ``k_on, k_off, k_syn, keep`` (ML) or ``k_on_1, k_off_1, k_syn_1, k_on_2,
    k_off_2, k_syn_2, p_bf, p_bs`` (TEST); rates in units of k_deg. Only
    open pickles you trust: reading one can run code.
    """
    import pandas as pd
    path = Path(path)
    if path.suffix.lower() not in (".pkl", ".pickle"):
        return pd.read_csv(path, index_col=0)
    raw = pd.read_pickle(path)
    if not isinstance(raw, pd.DataFrame) or raw.shape[1] < 2:
        raise ValueError(f"{path} is not a txburst result pickle (a DataFrame of per-gene "
                         f"parameter arrays)")

    def rates(col):
        return np.array([np.asarray(v, dtype=float).reshape(3) if np.size(v) == 3
                         else np.full(3, np.nan) for v in raw[col]])

    out = pd.DataFrame(index=pd.Index(raw.index.astype(str), name="gene"))
    first = raw.columns[0]
    if raw.shape[1] == 2:                     # ML: (params, keep)
        r = rates(first)
        out["k_on"], out["k_off"], out["k_syn"] = r.T
        out["keep"] = raw[raw.columns[1]].astype(bool).to_numpy()
        return out
    r1, r2 = rates(first), rates(raw.columns[1])  # TEST: (params 1, params 2, p_bf, p_bs, name)
    for g, r in (("1", r1), ("2", r2)):
        out[f"k_on_{g}"], out[f"k_off_{g}"], out[f"k_syn_{g}"] = r.T
    out["p_bf"] = pd.to_numeric(raw[raw.columns[2]], errors="coerce").to_numpy()
    out["p_bs"] = pd.to_numeric(raw[raw.columns[3]], errors="coerce").to_numpy()
    return out
