"""Work over blocks of genes: compiled calls on local threads, or tasks on a Dask cluster.

Per-gene work is independent, so every long computation of telegraph is a map
over consecutive blocks of genes. This module runs such maps and knows
nothing of what is computed or where the data come from:

- :func:`gene_blocks` yields (start, stop) blocks for compiled calls on this
  machine, with the Numba thread count set for the duration, a progress bar
  advanced per block, and both restored also on Ctrl-C (a compiled call
  cannot be interrupted, so blocks are kept short: ``config.BLOCK_GENES_*``);
- :func:`map_genes` runs a per-gene function written in Python (the two-species and
  labelled fits) on worker processes or threads;
- :func:`on_threads` runs a serial compiled kernel (``nogil=True``) over
  pieces of one such block on that many Python threads: the per-gene fits and
  tests are plain loops over genes, not Numba ``parallel=True`` kernels, whose
  parallel-accelerator compilation cost as much as a fresh installation's
  first fit (benchmarks/bench_startup.py);
- :func:`map_blocks` runs a function over blocks on a ``dask.distributed``
  client, each task inside :func:`kernel_slot`, and gathers the results in
  order with a progress bar; :func:`tree_reduce` combines futures on the
  workers;
- :func:`spans`, :func:`even_bounds` and :func:`balanced_bounds` cut a range
  into blocks.

Threads on a cluster: the count kernels and the simulation are Numba
``parallel=True`` functions, and Numba's ``workqueue`` threading layer (its
fallback when neither TBB nor OpenMP is available) aborts the process when two threads launch
parallel kernels at once. :func:`kernel_slot` therefore runs each task's
kernels on one Numba thread under a thread-safe layer (tbb, omp), so that a
worker with T Dask threads uses T cores, and behind a per-process lock on the
worker's T threads under workqueue. One worker process per core with one
thread each (what :func:`telegraph.cluster.local_client` starts) is the same
under every layer.

Dask (``dask[distributed]``) is optional and imported only when a client is used.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import config

__all__ = ["gene_blocks", "on_threads", "map_genes", "show_progress", "progress_bar", "spans", "even_bounds", "balanced_bounds", "kernel_slot",
           "check_client", "total_threads", "map_blocks", "tree_reduce",
           "gather_with_progress", "small_ints"]

_KERNEL_LOCK = threading.Lock()
_SAFE_LAYER = None  # whether Numba's threading layer allows concurrent launches


# --------------------------------------------------------------------------- cutting ranges


def spans(n: int, size: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` of at most ``size`` covering ``range(n)``."""
    return [(a, min(n, a + size)) for a in range(0, n, size)]


def even_bounds(n: int, n_blocks: int) -> np.ndarray:
    """Boundaries of about ``n_blocks`` blocks of equal length over ``range(n)``."""
    n_blocks = max(1, min(n, n_blocks))
    return np.unique(np.linspace(0, n, n_blocks + 1).round().astype(np.int64))


def balanced_bounds(indptr, n_blocks: int, per_item: int = 1) -> np.ndarray:
    """Boundaries of about ``n_blocks`` blocks of consecutive items of equal cost.

    ``indptr`` (length n + 1) gives each item's work as ``indptr[i + 1] -
    indptr[i]`` (e.g. a gene's histogram bins, a cell's stored entries); every
    item also costs ``per_item``.
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    n = indptr.shape[0] - 1
    cum = indptr - indptr[0] + per_item * np.arange(n + 1)
    targets = np.linspace(0, cum[-1], max(1, min(n_blocks, n)) + 1)
    bounds = np.searchsorted(cum, targets, side="left")
    bounds[0], bounds[-1] = 0, n
    return np.unique(bounds)


def small_ints(a) -> np.ndarray:
    """Non-negative integers in the smallest dtype that holds them (they travel
    with tasks)."""
    a = np.asarray(a)
    return a.astype(np.min_scalar_type(max(1, int(a.max()) if a.size else 1)))


# --------------------------------------------------------------------------- local threads


def show_progress(progress) -> bool:
    """Whether to draw a progress bar: ``progress`` when it is True or False;
    for None (``config.PROGRESS``), when stderr is a terminal or in a Jupyter
    kernel, as tqdm's ``disable=None`` (so that a log file gets no bar)."""
    if progress is not None:
        return bool(progress)
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced stderr
        tty = False
    return tty or "ipykernel" in sys.modules


def progress_bar(total: int, desc: str, progress, **kwargs):
    """A tqdm bar on stderr, or None when :func:`show_progress` says no."""
    if not show_progress(progress):
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False, **kwargs)


@contextlib.contextmanager
def gene_blocks(n_genes: int, *, chunk_genes: int | None = None, n_jobs: int | None = None,
                progress: bool | None = config.PROGRESS, desc: str = "telegraph fit"):
    """Consecutive ``(start, stop)`` blocks of genes for compiled calls.

    Inside the context Numba uses ``n_jobs`` threads (default: all) and a
    progress bar advances per block; both are restored/closed on exit, also
    on KeyboardInterrupt.
    """
    import numba

    old_threads = numba.get_num_threads()
    if n_jobs is not None:
        numba.set_num_threads(max(1, min(int(n_jobs), numba.config.NUMBA_NUM_THREADS)))
    if chunk_genes is None:
        chunk_genes = max(config.BLOCK_GENES_MIN, min(config.BLOCK_GENES_MAX,
                                                      n_genes // 20 + 1))
    bar = progress_bar(n_genes, desc, progress, unit="gene")

    def blocks():
        for start, stop in spans(n_genes, chunk_genes):
            yield start, stop
            if bar is not None:
                bar.update(stop - start)

    try:
        yield blocks()
    finally:
        if bar is not None:
            bar.close()
        numba.set_num_threads(old_threads)


def map_genes(func, per_gene, *static, n_jobs: int = 1, bar=None, cost=None) -> list:
    """``[func(*args, *static) for args in per_gene]`` on this machine, in order,
    advancing ``bar`` by one per item.

    For per-gene fits written in Python around compiled kernels (two species,
    labelled): ``func`` is a module-level function (sent to workers by name),
    ``per_gene`` a sequence of argument tuples (one gene's histogram each: small),
    ``static`` what every call shares. With ``n_jobs`` > 1 and at least
    ``config.PROCESSES_FROM_GENES`` items the calls run on ``n_jobs`` worker
    processes when ``config.GENE_WORKERS`` is "processes" (joblib's loky executor,
    reused between calls; the workers see this process's :mod:`telegraph.config`,
    changes included), otherwise on ``n_jobs`` threads: the kernels release the GIL
    but the Python between them does not, so threads scale poorly. ``cost``: an
    estimate of each item's work; on several workers the items start in decreasing
    order of it (the longest first, so that no long item is left to run alone at the
    end) and are returned in their own order. On Ctrl-C the workers are stopped and
    KeyboardInterrupt raised here.
    """
    per_gene = list(per_gene)
    n = len(per_gene)
    n_jobs = max(1, min(int(n_jobs), n)) if n else 1
    if n_jobs > 1 and cost is not None:
        order = np.argsort(-np.asarray(cost, dtype=float), kind="stable")
        rows = map_genes(func, [per_gene[i] for i in order], *static, n_jobs=n_jobs, bar=bar)
        out = [None] * n
        for i, row in zip(order, rows):
            out[i] = row
        return out

    def done(row):
        if bar is not None:
            bar.update(1)
        return row

    if n_jobs == 1:
        return [done(func(*args, *static)) for args in per_gene]
    if config.GENE_WORKERS == "processes" and n >= config.PROCESSES_FROM_GENES:
        from joblib import Parallel, delayed

        cfg = {k: v for k, v in vars(config).items() if k.isupper()}
        run = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")
        with warnings.catch_warnings():
            # loky replaces a worker whose memory grew by 300 MB (a heavy gene's lattice)
            # (after it has sent its last result) and says so: nothing is lost
            warnings.filterwarnings("ignore", message="A worker stopped while some jobs",
                                    category=UserWarning)
            return [done(row) for row in run(delayed(_with_config)(cfg, func, args, static)
                                             for args in per_gene)]
    pool = ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="telegraph")
    try:
        return [done(f.result()) for f in [pool.submit(func, *args, *static)
                                           for args in per_gene]]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _with_config(cfg, func, args, static):
    """``func(*args, *static)`` in a worker process, under the caller's settings."""
    for key, value in cfg.items():
        setattr(config, key, value)
    return func(*args, *static)


def on_threads(func, indptr, n_threads: int | None = None) -> None:
    """``func(start, stop)`` over pieces of ``range(n)`` on local threads.

    ``indptr`` (length n + 1) gives each item's work (a gene's histogram
    bins), so the pieces (``config.BLOCKS_PER_THREAD`` per thread) cost about
    the same; ``n_threads`` defaults to Numba's thread count, which
    :func:`gene_blocks` sets from ``n_jobs`` and :func:`kernel_slot` to one
    inside a Dask task. ``func`` calls a ``nogil`` kernel on the piece and
    writes its rows in place, so the pieces run side by side; with one thread
    it is a single call over everything. On Ctrl-C the pieces not yet started
    are dropped and the running ones finish.
    """
    n = len(indptr) - 1
    if n_threads is None:
        import numba
        n_threads = numba.get_num_threads()
    n_threads = max(1, min(int(n_threads), n))
    if n_threads <= 1:
        if n > 0:
            func(0, n)
        return
    bounds = balanced_bounds(indptr, config.BLOCKS_PER_THREAD * n_threads)
    pool = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="telegraph")
    try:
        for future in [pool.submit(func, int(a), int(b))
                       for a, b in zip(bounds[:-1], bounds[1:])]:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _worker_threads():
    try:
        from distributed import get_worker
        w = get_worker()
    except (ImportError, ValueError):
        return None
    state = getattr(w, "state", w)
    return getattr(state, "nthreads", None)


def _threadsafe_layer() -> bool:
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
    """Context for calling compiled parallel kernels from a Dask task.

    Inside a Dask worker with a thread-safe layer (tbb, omp) the task's
    kernels run on one Numba thread, so a worker with T threads uses T
    cores. With the workqueue layer, whose concurrent use aborts the process,
    the kernels of a process run one call at a time, each on the worker's T
    threads. Outside a worker it only guards against workqueue.
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


# --------------------------------------------------------------------------- Dask


def check_client(client) -> None:
    """Raise unless ``client`` is a running ``dask.distributed.Client``."""
    try:
        from distributed import Client
    except ModuleNotFoundError:
        raise ImportError("client= needs dask[distributed]: "
                          "pip install 'telegraph-sc[dask]'") from None
    if not isinstance(client, Client):
        raise TypeError(f"client must be a dask.distributed.Client, got "
                        f"{type(client).__name__}; for an address use "
                        f"telegraph.cluster.connect(address)")
    if client.status not in ("running", "connecting", "newly-created"):
        raise ConnectionError(f"the Dask client is {client.status}; connect again")


def total_threads(client) -> int:
    """Worker threads of the cluster (raises when it has no workers)."""
    info = client.scheduler_info()
    n = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
    if n == 0:
        raise RuntimeError("the Dask cluster has no workers; start some "
                           "(`dask worker SCHEDULER_ADDRESS`) and try again")
    return n


def in_slot(func, *args):
    """``func(*args)`` inside :func:`kernel_slot` (what a task runs)."""
    with kernel_slot():
        return func(*args)


def map_blocks(func, blocks, *args, client, sizes=None, progress=False,
               desc="telegraph fit") -> list:
    """``[func(block, *args) for block in blocks]`` as tasks on a Dask cluster.

    Each block travels inside its own task (not scattered: the scheduler holds
    the task, so a lost worker's share is recomputed elsewhere), each call
    runs inside :func:`kernel_slot`, and the results come back in order;
    ``sizes`` (genes per block) drive the progress bar.
    """
    check_client(client)
    blocks = list(blocks)
    if not blocks:
        return []
    futures = [submit(client, in_slot, func, b, *args) for b in blocks]
    if sizes is None:
        sizes = [1] * len(futures)
    return gather_with_progress(client, futures, sizes, progress, desc)


def submit(client, func, *args):
    """``client.submit(func, *args, pure=False)`` with the arguments inside the task.

    Data handed to a task this way is kept by the scheduler with the task, so
    when a worker is lost the task (and what depends on it) is simply run
    again; ``client.scatter`` would keep the only copy on a worker. Dask's
    warning about a large task is silenced: that is the point here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ll]arge (graph|object)")
        return client.submit(func, *args, pure=False)


def hold(client, value):
    """A future of ``value`` that the cluster can recompute (a task returning it):
    for data many tasks share, in place of ``client.scatter``."""
    return submit(client, _identity, value)


def _identity(value):
    return value


def tree_reduce(client, futures, func, fan_in: int | None = None):
    """Reduce futures with ``func(*group)`` on the workers, ``fan_in`` at a time."""
    fan_in = config.FAN_IN if fan_in is None else int(fan_in)
    level = list(futures)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), fan_in):
            group = level[i:i + fan_in]
            nxt.append(group[0] if len(group) == 1 else
                       client.submit(func, *group, pure=False))
        level = nxt
    return level[0]


def gather_with_progress(client, futures, sizes, progress, desc="telegraph fit") -> list:
    """Gather futures in order, advancing a progress bar (by ``sizes``) as each completes."""
    bar = progress_bar(int(sum(sizes)), desc, progress, unit="gene")
    if bar is not None:
        from distributed import as_completed
        size_of = {f.key: n for f, n in zip(futures, sizes)}
        with bar:
            for f in as_completed(futures, loop=client.loop):
                bar.update(size_of[f.key])
    return client.gather(futures)
