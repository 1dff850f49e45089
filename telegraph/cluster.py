"""Fitting an on-disk matrix on a Dask cluster whose workers read the file.

The sibling of :mod:`telegraph.ondisk` and :mod:`telegraph.fitting` for a
cluster: it imports both and neither imports it (:func:`telegraph.fit_file`
with ``client=`` comes here through :mod:`telegraph.backed`). The matrix
never moves through the client: each task opens the file itself and reads one
slice.

- For a CSR (or dense) matrix the tasks read blocks of cells and split their
  histograms into blocks of genes; each gene block's histograms are
  tree-reduced (:meth:`CountHistograms.merge`, fan-in ``config.FAN_IN``) on
  the workers and then fitted where they are.
- For a CSC matrix a task reads a block of genes for every cell, counts and
  fits it.
- Two layers (unspliced and spliced, :func:`fit_joint_read_plan`): the same,
  each task reading its slice of both layers and counting (unspliced,
  spliced) pairs (:func:`telegraph.ondisk.count_joint_cells`), the gene
  blocks fitted by :func:`telegraph.jointfit.fit_joint_table`.

Only the capture groups of the cells (small integers, one per cell), the gene
names and the result rows travel, always inside tasks (never scattered), so
that the scheduler can rerun whatever a lost worker held. The workers must be able to open the path
at the same place (a shared file system). Results are exactly the in-process
ones: the per-gene fit is deterministic and independent of which genes share
a call, and histogram weights are integer cell counts, summed exactly in any
order.

No Dask arrays are used: anndata's lazy reader chunks CSR by cells only, and
turning cell chunks into gene chunks needs a rechunk that fails under a
distributed client with the default (P2P) method. Counting histograms per
cell block and reducing them is what the rechunk would have been for.

Also here: :func:`connect` and :func:`local_client` (clients for the command
line's ``--scheduler``), :func:`warm_up`, and :func:`cell_totals` (size
factors of an on-disk matrix read by the workers). Sharing one compiled cache
between workers: see :mod:`telegraph.blocks` for threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time

import numpy as np
import pandas as pd

from . import blocks, config
from .fitting import fit_raw, results_table, with_record
from .histogram import JointHistograms, count_histograms
from .inputs import FitSettings, KDeg, row_totals
from .jointfit import fit_joint_table, joint_tables
from .ondisk import (OnDiskMatrix, ReadPlan, count_cells, count_genes, count_joint_cells,
                     count_joint_genes, joint_by_genes)

__all__ = ["connect", "close", "local_client", "warm_up", "cell_totals", "fit_read_plan",
           "fit_joint_read_plan"]


# --------------------------------------------------------------------------- clients


def connect(address: str, *, timeout: float | None = None, **local_kwargs):
    """A ``dask.distributed.Client`` for a scheduler address, or a local cluster.

    Parameters
    ----------
    address : str
        ``"tcp://host:port"`` (or ``"host:port"``) of a running scheduler, or
        ``"local"`` for a :class:`distributed.LocalCluster` sized to this
        machine (:func:`local_client`, which gets ``local_kwargs``).
    timeout : float, optional
        Seconds to wait for the scheduler (default ``config.CONNECT_TIMEOUT``).

    Raises
    ------
    ConnectionError
        The address is malformed, nothing listens there (refused, unknown
        host: said at once), or the scheduler does not answer in time: the
        message names the address and how to start a scheduler.
    ImportError
        dask[distributed] is not installed.
    """
    try:
        from distributed import Client
    except ModuleNotFoundError:
        raise ImportError("running on a Dask cluster needs dask[distributed]: "
                          "pip install 'telegraph-sc[dask]'") from None
    if address == "local":
        return local_client(**local_kwargs)
    timeout = config.CONNECT_TIMEOUT if timeout is None else float(timeout)
    advice = (f"check the address, start one with `dask scheduler` and `dask worker "
              f"{address}`, or use 'local' for a cluster on this machine")
    # checked before a Client exists: a Client that fails to start spends 20 s in
    # its destructor and prints a traceback; and Dask retries a refused
    # connection until the timeout, where one attempt tells
    start = time.monotonic()
    _probe(address, timeout, advice)
    try:
        return Client(address, timeout=max(1.0, timeout - (time.monotonic() - start)),
                      set_as_default=False)
    except (OSError, TimeoutError) as exc:
        _discard_client(exc, Client)
        raise ConnectionError(
            f"cannot reach a Dask scheduler at {address!r} within {timeout:g} s "
            f"({' '.join(str(exc).split())}); {advice}") from None
    except Exception as exc:  # something answered, but not as a Dask scheduler does
        _discard_client(exc, Client)
        raise ConnectionError(
            f"no Dask scheduler answered at {address!r} ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}); {advice}") from None


def _discard_client(exc, client_type) -> None:
    """Mark closed the Client whose constructor raised ``exc``: its destructor
    would otherwise spend 20 s closing a connection that never opened, and then
    print a traceback."""
    tb = exc.__traceback__
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if isinstance(obj, client_type):
            with contextlib.suppress(Exception):
                obj.status = "closed"
                obj._loop_runner.stop()
            return
        tb = tb.tb_next


def _probe(address: str, timeout: float, advice: str) -> None:
    """Raise ConnectionError unless ``address`` is well formed and, for a TCP-based
    scheme, something accepts a connection there."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    try:
        scheme, loc = parse_address(address)
        if scheme not in backends:
            raise ValueError(f"unknown scheme {scheme!r}; known: {', '.join(sorted(backends))}")
        if scheme not in ("tcp", "tls", "ws", "wss"):
            return
        host, port = parse_host_port(loc)
    except ValueError as exc:
        raise ConnectionError(f"{address!r} is not a Dask scheduler address ({exc}); give "
                              f"tcp://HOST:PORT or 'local'") from None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot reach a Dask scheduler at {address!r}: unknown host "
                              f"{host!r} ({exc.strerror or exc}); {advice}") from None
    except ConnectionRefusedError:
        raise ConnectionError(f"cannot reach a Dask scheduler at {address!r}: connection "
                              f"refused (nothing listens on port {port}); {advice}") from None
    except (TimeoutError, socket.timeout):
        raise ConnectionError(f"cannot reach a Dask scheduler at {address!r} within "
                              f"{timeout:g} s (no answer); {advice}") from None
    except OSError as exc:
        raise ConnectionError(f"cannot reach a Dask scheduler at {address!r} "
                              f"({exc.strerror or exc}); {advice}") from None


def close(client) -> None:
    """Close a client (and the local cluster it started). Called while an
    interruption (Ctrl-C, SIGTERM) is under way, or interrupted itself (closing
    a local cluster can take seconds), it silences what Dask would log about the
    work it abandons (one "Task exception was never retrieved" traceback per
    pending result, a cancelled close) and gives up on the close, so that the
    interruption is reported in one line."""
    if not isinstance(sys.exc_info()[1], KeyboardInterrupt):
        # quiet while it closes: a Ctrl-C during the close makes Dask log the
        # cancelled close at once, before the handler below could silence it
        levels = _silence_logging()
        if getattr(client, "cluster", None) is not None:
            # a local cluster this process started: its workers, if still alive when the
            # scheduler stops, log "Failed to communicate with scheduler during heartbeat"
            # to the same terminal -- also when a Ctrl-C lands in the close, too late to
            # reach them then; silence them first (the work is done)
            with contextlib.suppress(Exception):
                client.run(_silence_logging)
                client.run(_silence_logging, nanny=True)
        try:
            client.close()
        except KeyboardInterrupt:
            _abandon(client, close=False)
            raise
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        return
    _abandon(client, close=True)


def _abandon(client, *, close: bool) -> None:
    """Silence Dask's logging here (and, for a local cluster, in its worker and
    nanny processes), optionally try to close, and mark the client closed so that
    its destructor does not wait (60 s) to close it again."""
    _silence_logging()
    try:
        if close and getattr(client, "cluster", None) is not None:
            # A local cluster this process started: its worker and nanny processes
            # write to the same terminal, and a worker still alive when the scheduler
            # stops logs "Failed to communicate with scheduler during heartbeat"
            # (a loaded machine makes workers slow to stop). Silence them first.
            with contextlib.suppress(Exception):
                client.run(_silence_logging)
                client.run(_silence_logging, nanny=True)
        if close:
            client.close()
    except BaseException:  # noqa: BLE001 - workers busy in a kernel can outlast close's timeout
        pass
    finally:
        client.status = "closed"


def _silence_logging() -> dict:
    """Silence the loggers through which Dask reports abandoned work (Dask's
    configuration sets some child loggers' levels itself, so each is set).
    Returns their levels before, by name."""
    roots = ("asyncio", "distributed", "tornado")
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in roots]
    levels = {}
    for name in (*roots, *names):
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.CRITICAL + 1)
    return levels


def local_client(n_workers: int | None = None, *, threads_per_worker: int = 1,
                 processes: bool = True, **kwargs):
    """A client of a new :class:`distributed.LocalCluster` on this machine.

    One worker process per available core with one thread each by default
    (see :mod:`telegraph.blocks` on threads).  The client owns the cluster:
    closing the client (``client.close()`` or leaving a ``with`` block) stops
    it.  Starting worker processes takes a few seconds, and each loads the
    compiled kernels on its first task (:func:`warm_up` does it up front).
    """
    from distributed import Client
    if n_workers is None:
        n_workers = _available_cores()
    kwargs.setdefault("dashboard_address", ":0")  # any free port: never clash with 8787
    return Client(n_workers=n_workers, threads_per_worker=threads_per_worker,
                  processes=processes, set_as_default=False, **kwargs)


def warm_up(client) -> None:
    """Load telegraph's compiled kernels on every worker (a tiny fit each).

    Optional: otherwise each worker pays this once, on its first task.
    """
    blocks.check_client(client)
    client.run(_warm)


def _warm():
    X = np.array([[0, 1], [2, 0], [1, 3], [0, 0]] * 4, dtype=np.float64)
    with blocks.kernel_slot():
        fit_raw(count_histograms(X, groups=(np.zeros(16, np.int64), np.ones(1))),
                FitSettings(interval="wald", min_cells=1))


def _available_cores():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- tasks


@contextlib.contextmanager
def _reader(matrix: OnDiskMatrix):
    if not os.path.exists(matrix.path):
        raise FileNotFoundError(
            f"{matrix.path} cannot be opened on {socket.gethostname()}: Dask workers read "
            f"the file themselves, so it must be on a file system they share with the "
            f"client (same path)")
    with matrix.reader() as r:
        yield r


def _task_fit_table(hist, k_deg, settings):
    with blocks.kernel_slot():
        raw = fit_raw(hist, settings)
    return results_table(raw, hist, settings, k_deg=k_deg)


def _task_count_cells(matrix, start, stop, group_of_cell, group_capture, sel, names,
                      bounds, round_counts):
    """Histograms of cells start:stop, split into the gene blocks ``bounds``."""
    with _reader(matrix) as r:
        h = count_cells(r, start, stop, group_of_cell, group_capture, sel=sel, genes=names,
                        round_counts=round_counts, slot=blocks.kernel_slot)
    return tuple(h.subset(slice(int(a), int(b))) for a, b in zip(bounds[:-1], bounds[1:]))


def _task_merge(*hists):
    out = hists[0]
    for h in hists[1:]:
        out = out.merge(h)
    return out


def _task_csc_block(matrix, first, stop, positions, group_of_cell, group_capture, names,
                    k_deg, settings, round_counts):
    with _reader(matrix) as r:
        h = count_genes(r, first, stop, positions, group_of_cell, group_capture,
                        genes=names, round_counts=round_counts, slot=blocks.kernel_slot)
    return _task_fit_table(h, k_deg, settings)


def _task_joint_cells(spliced, unspliced, start, stop, group_of_cell, group_capture, sel,
                      names, bounds, round_counts):
    """Joint histograms of cells start:stop of two layers, split into the gene
    blocks ``bounds``."""
    with _reader(spliced) as rs, _reader(unspliced) as ru:
        h = count_joint_cells(rs, ru, start, stop, group_of_cell, group_capture, sel=sel,
                              genes=names, round_counts=round_counts, slot=blocks.kernel_slot)
    return tuple(JointHistograms(h.hist.subset(slice(int(a), int(b))), h.base)
                 for a, b in zip(bounds[:-1], bounds[1:]))


def _task_joint_fit(jh, settings, model, unspliced_factor):
    with blocks.kernel_slot():
        return fit_joint_table(jh, settings, model, unspliced_factor)


def _task_joint_genes(spliced, unspliced, first, stop, positions, group_of_cell,
                      group_capture, names, settings, model, unspliced_factor, round_counts):
    with _reader(spliced) as rs, _reader(unspliced) as ru:
        jh = count_joint_genes(rs, ru, first, stop, positions, group_of_cell, group_capture,
                               genes=names, round_counts=round_counts, slot=blocks.kernel_slot)
    return _task_joint_fit(jh, settings, model, unspliced_factor)


def _task_totals_cells(matrix, start, stop):
    with _reader(matrix) as r:
        return row_totals(r.cells(start, stop))


def _task_totals_genes(matrix, first, stop):
    with _reader(matrix) as r:
        return row_totals(r.genes(first, stop))


def _task_sum(*arrays):
    out = arrays[0].copy()
    for a in arrays[1:]:
        out += a
    return out


def _getitem(seq, i):
    return seq[i]


# --------------------------------------------------------------------------- public


def cell_totals(matrix: OnDiskMatrix, chunk_size: int, *, client) -> np.ndarray:
    """Total count per cell of an on-disk matrix, read by the workers."""
    blocks.check_client(client)
    if matrix.format == "csc":
        parts = [client.submit(_task_totals_genes, matrix, a, b, pure=False)
                 for a, b in matrix.gene_spans(chunk_size)]
        return client.gather(blocks.tree_reduce(client, parts, _task_sum))
    parts = [client.submit(_task_totals_cells, matrix, a, b, pure=False)
             for a, b in matrix.cell_spans(chunk_size)]
    return np.concatenate(client.gather(parts))


def fit_read_plan(plan: ReadPlan, *, k_deg: KDeg, settings: FitSettings, client,
                  progress: bool = False) -> pd.DataFrame:
    """Read, count and fit the genes of ``plan`` on a cluster (see the module notes).

    ``k_deg`` is over the kept genes (file order). Returns the table of
    :func:`telegraph.fitting.fit_histograms`, in file order.
    """
    blocks.check_client(client)
    m = plan.matrix
    kd = k_deg.values
    # shared data as tasks the cluster can rerun (a scattered copy dies with its worker)
    names_f = blocks.hold(client, plan.names)
    gcap = plan.group_capture
    if m.format == "csc":
        goc_f = blocks.hold(client, blocks.small_ints(plan.group_of_cell))
        futures, sizes = [], []
        done = 0
        for first, stop, pos in plan.gene_blocks():
            k = pos.shape[0]
            names = plan.names[done:done + k]
            kd_block = None if kd is None else kd[done:done + k]
            futures.append(client.submit(_task_csc_block, m, first, stop, pos, goc_f, gcap,
                                         names, kd_block, settings, plan.round_counts,
                                         pure=False))
            sizes.append(k)
            done += k
    else:
        n_blocks = config.BLOCKS_PER_THREAD * blocks.total_threads(client)
        bounds = blocks.even_bounds(plan.n_genes, n_blocks)
        goc = blocks.small_ints(plan.group_of_cell)
        chunks = [client.submit(_task_count_cells, m, a, b, goc[a:b], gcap, plan.columns,
                                names_f, bounds, plan.round_counts, pure=False)
                  for a, b in m.cell_spans(plan.chunk_size)]
        futures, sizes = [], []
        for j, (g0, g1) in enumerate(zip(bounds[:-1], bounds[1:])):
            parts = [client.submit(_getitem, c, j, pure=False) for c in chunks]
            merged = blocks.tree_reduce(client, parts, _task_merge)
            kd_block = None if kd is None else kd[g0:g1]
            futures.append(client.submit(_task_fit_table, merged, kd_block, settings,
                                         pure=False))
            sizes.append(int(g1 - g0))
        del chunks
    tables = blocks.gather_with_progress(client, futures, sizes, progress)
    return with_record(pd.concat(tables) if len(tables) > 1 else tables[0], settings, k_deg)


def fit_joint_read_plan(plan: ReadPlan, unspliced: OnDiskMatrix, *, settings: FitSettings,
                        client, model: str = "telegraph", unspliced_factor: float = 1.0,
                        progress: bool = False) -> pd.DataFrame:
    """Read, count and fit two layers on a cluster: ``plan.matrix`` holds the
    spliced counts, ``unspliced`` the unspliced ones (same file, same format).
    The workers read both layers themselves (see the module notes). Returns the
    table of :func:`telegraph.jointfit.fit_joint_histograms`, in file order."""
    blocks.check_client(client)
    m = plan.matrix
    by_genes = joint_by_genes(m, unspliced)
    names_f = blocks.hold(client, plan.names)
    gcap = plan.group_capture
    futures, sizes = [], []
    if by_genes:
        goc_f = blocks.hold(client, blocks.small_ints(plan.group_of_cell))
        done = 0
        for first, stop, pos in plan.gene_blocks():
            k = pos.shape[0]
            names = plan.names[done:done + k]
            futures.append(client.submit(_task_joint_genes, m, unspliced, first, stop, pos,
                                         goc_f, gcap, names, settings, model,
                                         unspliced_factor, plan.round_counts, pure=False))
            sizes.append(k)
            done += k
    else:
        n_blocks = config.BLOCKS_PER_THREAD * blocks.total_threads(client)
        bounds = blocks.even_bounds(plan.n_genes, n_blocks)
        goc = blocks.small_ints(plan.group_of_cell)
        chunks = [client.submit(_task_joint_cells, m, unspliced, a, b, goc[a:b], gcap,
                                plan.columns, names_f, bounds, plan.round_counts, pure=False)
                  for a, b in m.cell_spans(plan.chunk_size)]
        for j, (g0, g1) in enumerate(zip(bounds[:-1], bounds[1:])):
            parts = [client.submit(_getitem, c, j, pure=False) for c in chunks]
            merged = blocks.tree_reduce(client, parts, _task_merge)
            futures.append(client.submit(_task_joint_fit, merged, settings, model,
                                         unspliced_factor, pure=False))
            sizes.append(int(g1 - g0))
        del chunks
    tables = blocks.gather_with_progress(client, futures, sizes, progress,
                                         desc="telegraph fit (two species)")
    return joint_tables(tables, settings, model, unspliced_factor)
