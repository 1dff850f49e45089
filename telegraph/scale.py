"""Fitting on a Dask cluster (adapter layer).

Two entry points, both giving exactly the in-process results (the per-gene
fit is deterministic and independent of which genes share a call; histogram
weights are integer cell counts, summed exactly in any order):

- :func:`fit_histograms_dask` fits histograms already built on the client
  (``telegraph.fit(counts, client=...)``): the histograms -- the sufficient
  statistics, far smaller than the matrix -- are split into blocks of genes
  of about equal numbers of bins, scattered, and fitted on the workers.
- :func:`fit_file_dask` (``telegraph.fit_file(path, client=...)``) never
  moves the matrix through the client: each task opens the file itself and
  reads one slice.  For a CSR (or dense) matrix the tasks read blocks of
  cells and split their histograms into blocks of genes; each gene block's
  histograms are tree-reduced (:meth:`CountHistograms.merge`, fan-in
  ``_FAN_IN``) on the workers and then fitted where they are.  For a CSC
  matrix a task reads a block of genes for every cell, counts and fits it.
  Only the capture groups of the cells (small integers, one per cell), the
  gene names and the result rows travel.  The workers must be able to open
  the path (a shared file system).

No Dask arrays are used: anndata's lazy reader chunks CSR by cells only, and
turning cell chunks into gene chunks needs a rechunk that fails under a
distributed client with the default (P2P) method.  Counting histograms per
cell block and reducing them is what the rechunk would have been for.

Threads: the compiled kernels are Numba ``parallel=True`` functions, and the
``workqueue`` threading layer (Numba's fallback when neither TBB nor OpenMP is
available) aborts the process when two threads launch parallel kernels at
once.  Every task runs its kernels inside :func:`kernel_slot`: under a
thread-safe layer (tbb, omp) with one Numba thread per task, so that a worker
with T Dask threads uses T cores; under workqueue behind a per-process lock,
one call at a time on the worker's T threads (safe, and file reads of other
tasks still proceed meanwhile).  The recommended layout, used by
``connect("local")``, is one worker process per core with one thread each:
it is the same under every layer, and the GIL-holding parts (h5py reads,
Python bookkeeping) of different workers do not contend.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading

import numpy as np

__all__ = ["connect", "local_client", "warm_up", "kernel_slot", "fit_histograms_dask",
           "fit_file_dask", "cell_totals_dask", "CONNECT_TIMEOUT"]

#: seconds to wait for a scheduler before giving up (connect())
CONNECT_TIMEOUT = 10.0

# tree-reduction fan-in: histograms merged per task
_FAN_IN = 4
# gene blocks per worker thread (load balance: fits cost differ between genes)
_BLOCKS_PER_THREAD = 4

_KERNEL_LOCK = threading.Lock()


# --------------------------------------------------------------------------- clients


def connect(address, *, timeout=None):
    """A ``dask.distributed.Client`` for a scheduler address, or a local cluster.

    Parameters
    ----------
    address : str
        ``"tcp://host:port"`` (or ``"host:port"``) of a running scheduler, or
        ``"local"`` for a :class:`distributed.LocalCluster` sized to this
        machine (:func:`local_client`).
    timeout : float, optional
        Seconds to wait for the scheduler (default :data:`CONNECT_TIMEOUT`).

    Raises
    ------
    ConnectionError
        The scheduler cannot be reached in time: the message names the
        address and how to start a scheduler.
    ImportError
        dask[distributed] is not installed.
    """
    try:
        from distributed import Client
    except ModuleNotFoundError:
        raise ImportError("running on a Dask cluster needs dask[distributed]: "
                          "pip install 'telegraph-sc[dask]'") from None
    if address == "local":
        return local_client()
    timeout = CONNECT_TIMEOUT if timeout is None else float(timeout)
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(
            f"cannot reach a Dask scheduler at {address!r} within {timeout:g} s "
            f"({' '.join(str(exc).split())}); check the address, start one with "
            f"`dask scheduler` and `dask worker {address}`, or use 'local' for a "
            f"cluster on this machine") from None
    except ValueError as exc:  # a malformed address
        raise ConnectionError(f"{address!r} is not a Dask scheduler address "
                              f"({exc}); give tcp://HOST:PORT or 'local'") from None


def local_client(n_workers=None, *, threads_per_worker=1, processes=True, **kwargs):
    """A client of a new :class:`distributed.LocalCluster` on this machine.

    One worker process per available core with one thread each by default
    (see the module notes on threads).  The client owns the cluster: closing
    the client (``client.close()`` or leaving a ``with`` block) stops it.
    Starting worker processes takes a few seconds, and each loads the
    compiled kernels on its first task (:func:`warm_up` does it up front).
    """
    from distributed import Client
    if n_workers is None:
        n_workers = _available_cores()
    kwargs.setdefault("dashboard_address", ":0")  # any free port: never clash with 8787
    return Client(n_workers=n_workers, threads_per_worker=threads_per_worker,
                  processes=processes, set_as_default=False, **kwargs)


def warm_up(client):
    """Load telegraph's compiled kernels on every worker (a tiny fit each).

    Optional: otherwise each worker pays this once, on its first task.
    """
    _check_client(client)
    client.run(_warm)


def _warm():
    from .fitting import FitSettings, fit_raw
    from .histogram import count_histograms
    X = np.array([[0, 1], [2, 0], [1, 3], [0, 0]] * 4, dtype=np.float64)
    with kernel_slot():
        fit_raw(count_histograms(X, groups=(np.zeros(16, np.int64), np.ones(1))),
                FitSettings(interval="wald", min_cells=1))


def _available_cores():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _total_threads(client):
    info = client.scheduler_info()
    n = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
    if n == 0:
        raise RuntimeError("the Dask cluster has no workers; start some "
                           "(`dask worker SCHEDULER_ADDRESS`) and try again")
    return n


# --------------------------------------------------------------------------- threads


def _worker_threads():
    try:
        from distributed import get_worker
        w = get_worker()
    except (ImportError, ValueError):
        return None
    state = getattr(w, "state", w)
    return getattr(state, "nthreads", None)


_SAFE_LAYER = None  # whether Numba's threading layer allows concurrent launches


def _threadsafe_layer():
    """True when Numba's threading layer (tbb, omp) is safe to call from several
    threads at once; False for workqueue or when it cannot be told."""
    global _SAFE_LAYER
    if _SAFE_LAYER is None:
        import numba
        with _KERNEL_LOCK:
            if _SAFE_LAYER is None:
                try:
                    from numba.np.ufunc.parallel import _launch_threads
                    _launch_threads()  # selects the layer as the first parallel call would
                    _SAFE_LAYER = numba.threading_layer() in ("tbb", "omp")
                except Exception:  # pragma: no cover - private API moved: be safe
                    _SAFE_LAYER = False
    return _SAFE_LAYER


@contextlib.contextmanager
def kernel_slot():
    """Context for calling telegraph's compiled parallel kernels in a Dask task.

    Inside a Dask worker with a thread-safe layer (tbb, omp) each task's
    kernels run on one Numba thread, so a worker with T threads uses T cores.
    With the workqueue layer, whose concurrent use aborts the process, the
    kernels of a process run one call at a time, each on the worker's T
    threads.  Outside a worker it only guards against workqueue.
    """
    import numba
    n = _worker_threads()
    safe = _threadsafe_layer()
    with contextlib.nullcontext() if safe else _KERNEL_LOCK:
        old = numba.get_num_threads()
        if n is not None:
            n = 1 if safe else max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
            numba.set_num_threads(n)
        try:
            yield
        finally:
            numba.set_num_threads(old)


# --------------------------------------------------------------------------- tasks


def _task_fit_raw(hist, settings):
    from .fitting import fit_raw
    with kernel_slot():
        return fit_raw(hist, settings)


def _task_fit_table(hist, k_deg, settings):
    from .fitting import fit_raw, results_table
    with kernel_slot():
        raw = fit_raw(hist, settings)
    return results_table(raw, hist, settings, k_deg=k_deg)


@contextlib.contextmanager
def _reader(matrix):
    if not os.path.exists(matrix.path):
        raise FileNotFoundError(
            f"{matrix.path} cannot be opened on {socket.gethostname()}: Dask workers read "
            f"the file themselves, so it must be on a file system they share with the "
            f"client (same path)")
    with matrix.reader() as r:
        yield r


def _task_count_cells(matrix, start, stop, group_of_cell, group_capture, sel, names,
                      bounds, round_counts):
    """Histograms of cells start:stop, split into the gene blocks ``bounds``."""
    from .stream import count_cells
    with _reader(matrix) as r:
        h = count_cells(r, start, stop, group_of_cell, group_capture, sel=sel, genes=names,
                        round_counts=round_counts, slot=kernel_slot)
    return tuple(h.subset(slice(int(a), int(b))) for a, b in zip(bounds[:-1], bounds[1:]))


def _task_merge(*hists):
    out = hists[0]
    for h in hists[1:]:
        out = out.merge(h)
    return out


def _task_csc_block(matrix, first, stop, positions, group_of_cell, group_capture, names,
                    k_deg, settings, round_counts):
    from .stream import count_genes
    with _reader(matrix) as r:
        h = count_genes(r, first, stop, positions, group_of_cell, group_capture,
                        genes=names, round_counts=round_counts, slot=kernel_slot)
    return _task_fit_table(h, k_deg, settings)


def _task_totals_cells(matrix, start, stop):
    from .stream import _row_totals
    with _reader(matrix) as r:
        return _row_totals(r.cells(start, stop))


def _task_totals_genes(matrix, first, stop):
    with _reader(matrix) as r:
        X = r.genes(first, stop)
    return np.bincount(X.indices, np.nan_to_num(X.data.astype(np.float64)),
                       minlength=matrix.n_cells)


def _task_sum(*arrays):
    out = arrays[0].copy()
    for a in arrays[1:]:
        out += a
    return out


# --------------------------------------------------------------------------- helpers


def _check_client(client):
    try:
        from distributed import Client
    except ModuleNotFoundError:
        raise ImportError("client= needs dask[distributed]: "
                          "pip install 'telegraph-sc[dask]'") from None
    if not isinstance(client, Client):
        raise TypeError(f"client must be a dask.distributed.Client, got "
                        f"{type(client).__name__}; for an address use "
                        f"telegraph.scale.connect(address)")
    if client.status not in ("running", "connecting", "newly-created"):
        raise ConnectionError(f"the Dask client is {client.status}; connect again")


def _tree(client, futures, func):
    """Reduce futures with ``func`` (fan-in _FAN_IN) on the workers."""
    level = list(futures)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), _FAN_IN):
            group = level[i:i + _FAN_IN]
            nxt.append(group[0] if len(group) == 1 else
                       client.submit(func, *group, pure=False))
        level = nxt
    return level[0]


def _gather_progress(client, futures, sizes, progress, desc="telegraph fit"):
    """Gather futures in order, advancing a progress bar as each completes."""
    if progress:
        from distributed import as_completed
        from tqdm.auto import tqdm
        size_of = {f.key: n for f, n in zip(futures, sizes)}
        with tqdm(total=int(sum(sizes)), desc=desc, unit="gene", leave=False) as bar:
            for f in as_completed(futures, loop=client.loop):
                bar.update(size_of[f.key])
    return client.gather(futures)


def _even_bounds(n, n_blocks):
    n_blocks = max(1, min(n, n_blocks))
    return np.unique(np.linspace(0, n, n_blocks + 1).round().astype(np.int64))


def _small_ints(a):
    """Group indices in the smallest integer dtype (they travel with the tasks)."""
    a = np.asarray(a)
    return a.astype(np.min_scalar_type(max(1, int(a.max()) if a.size else 1)))


# --------------------------------------------------------------------------- public


def fit_histograms_dask(hist, *, client, k_deg=None, settings=None, progress=False,
                        n_blocks=None):
    """Fit per-gene histograms on a Dask cluster.

    Same result as :func:`telegraph.fitting.fit_histograms` (exactly): the
    histograms are cut into ``n_blocks`` blocks of consecutive genes with
    about equal numbers of bins (default four per worker thread), scattered
    to the workers and fitted there; the raw rows come back and are turned
    into the table on the client.

    Parameters
    ----------
    hist : telegraph.histogram.CountHistograms
    client : dask.distributed.Client
    k_deg : array_like of shape (n_genes,), optional
        Degradation rate per gene, per unit time (rates otherwise in units of
        k_deg).
    settings : telegraph.fitting.FitSettings, optional
    progress : bool
        Show a progress bar over genes.
    n_blocks : int, optional
    """
    from .fitting import FitSettings, _check_k_deg, _check_settings, results_table
    from .kernels import fit as kfit

    _check_client(client)
    settings = settings or FitSettings()
    _check_settings(settings)
    k_deg = _check_k_deg(k_deg, hist.n_genes, settings)
    if hist.n_genes == 0:
        return results_table(np.empty((0, kfit.N_RESULT)), hist, settings, k_deg=k_deg)
    if n_blocks is None:
        n_blocks = _BLOCKS_PER_THREAD * _total_threads(client)
    # blocks of about equal numbers of bins: the cost of a gene grows with its bins
    cum = hist.indptr + np.arange(hist.n_genes + 1)  # +1 per gene: empty genes cost too
    targets = np.linspace(0, cum[-1], max(1, min(n_blocks, hist.n_genes)) + 1)
    bounds = np.unique(np.searchsorted(cum, targets, side="left"))
    bounds[0], bounds[-1] = 0, hist.n_genes
    bounds = np.unique(bounds)
    blocks = [hist.subset(slice(int(a), int(b))) for a, b in zip(bounds[:-1], bounds[1:])]
    scattered = client.scatter(blocks)
    futures = [client.submit(_task_fit_raw, b, settings, pure=False) for b in scattered]
    raw = _gather_progress(client, futures, np.diff(bounds), progress)
    return results_table(np.vstack(raw), hist, settings, k_deg=k_deg)


def cell_totals_dask(matrix, chunk_size, *, client):
    """Total count per cell of an on-disk matrix, read by the workers."""
    from .stream import _even_spans, _genes_per_block
    _check_client(client)
    if matrix.format == "csc":
        parts = [client.submit(_task_totals_genes, matrix, a, b, pure=False)
                 for a, b in _even_spans(matrix.n_genes, _genes_per_block(matrix, chunk_size))]
        return client.gather(_tree(client, parts, _task_sum))
    parts = [client.submit(_task_totals_cells, matrix, a, b, pure=False)
             for a, b in _even_spans(matrix.n_cells, chunk_size)]
    return np.concatenate(client.gather(parts))


def fit_plan_dask(plan, settings, *, client, progress=False):
    """Run a :func:`telegraph.stream.fit_file` plan on a cluster (see module notes)."""
    import pandas as pd

    from .fitting import _check_k_deg, _check_settings
    from .stream import _even_spans, _genes_per_block, gene_spans

    _check_client(client)
    _check_settings(settings)
    m = plan.matrix
    n_sel = plan.names.shape[0]
    k_deg = _check_k_deg(plan.k_deg, n_sel, settings)
    names_f = client.scatter(plan.names, broadcast=True)
    gcap = plan.group_capture
    if m.format == "csc":
        sel = plan.sel if plan.sel is not None else np.arange(m.n_genes)
        goc_f = client.scatter(_small_ints(plan.group_of_cell), broadcast=True)
        futures, sizes = [], []
        done = 0
        for first, stop, pos in gene_spans(sel, _genes_per_block(m, plan.chunk_size)):
            k = pos.shape[0]
            names = plan.names[done:done + k]
            kd = None if k_deg is None else k_deg[done:done + k]
            futures.append(client.submit(_task_csc_block, m, first, stop, pos, goc_f, gcap,
                                         names, kd, settings, plan.round_counts, pure=False))
            sizes.append(k)
            done += k
    else:
        n_blocks = _BLOCKS_PER_THREAD * _total_threads(client)
        bounds = _even_bounds(n_sel, n_blocks)
        goc = _small_ints(plan.group_of_cell)
        chunks = [client.submit(_task_count_cells, m, a, b, goc[a:b], gcap, plan.sel,
                                names_f, bounds, plan.round_counts, pure=False)
                  for a, b in _even_spans(m.n_cells, plan.chunk_size)]
        futures, sizes = [], []
        for j, (g0, g1) in enumerate(zip(bounds[:-1], bounds[1:])):
            parts = [client.submit(_getitem, c, j, pure=False) for c in chunks]
            merged = _tree(client, parts, _task_merge)
            kd = None if k_deg is None else k_deg[g0:g1]
            futures.append(client.submit(_task_fit_table, merged, kd, settings, pure=False))
            sizes.append(int(g1 - g0))
        del chunks
    tables = _gather_progress(client, futures, sizes, progress)
    return pd.concat(tables) if len(tables) > 1 else tables[0]


def _getitem(seq, i):
    return seq[i]


def fit_file_dask(path, *, client, **kwargs):
    """``telegraph.fit_file(path, client=client, **kwargs)``: see there."""
    from .stream import fit_file
    return fit_file(path, client=client, **kwargs)
