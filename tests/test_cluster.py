"""Fitting on a Dask cluster (telegraph.cluster, client= of tg.fit) against a LocalCluster.

Results must equal the in-process ones exactly (assert_frame_equal, no
tolerance).  The shared cluster has two single-threaded workers in this
process (processes=False: starts in well under a second); one slow test
runs worker processes, and one runs two threads per worker under Numba's
workqueue threading layer, which aborts on concurrent kernel launches unless
telegraph serialises them.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

import telegraph as tg  # noqa: E402
from telegraph import blocks, cluster, ondisk  # noqa: E402
from telegraph.cli import main  # noqa: E402
from telegraph.fitting import fit_histograms  # noqa: E402
from telegraph.inputs import FitSettings  # noqa: E402
from telegraph.histogram import count_histograms  # noqa: E402

from test_ondisk import simulate_counts, write_stores  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client():
    with cluster.local_client(2, processes=False) as c:
        yield c


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    X, s = simulate_counts(600, 20, seed=5)
    return write_stores(tmp_path_factory.mktemp("scale"), X, s)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_histograms_fitted_on_the_cluster(client, data):
    adata = data[0]
    hist = count_histograms(adata.X, capture=adata.obs["cap"].to_numpy(), capture_rtol=0.05,
                            genes=np.asarray(adata.var_names))
    settings = FitSettings()                    # profile intervals
    ref = fit_histograms(hist, settings=settings, progress=False)
    res = fit_histograms(hist, client=client, settings=FitSettings(), progress=False)
    pd.testing.assert_frame_equal(res, ref)


def test_fit_with_client_rescales_size_factors(client, data):
    adata = data[0]
    kd = adata.var["kd"].to_numpy()
    kw = dict(capture="total", k_deg=kd, genes=adata.var_names, interval="wald",
              progress=False)
    ref = tg.fit(adata.X, **kw)
    pd.testing.assert_frame_equal(tg.fit(adata.X, client=client, **kw), ref)


@pytest.mark.parametrize("store,layer", [("h5ad", None), ("h5ad", "csc"),
                                         ("h5ad", "dense"), ("zarr", None)])
def test_workers_read_the_file(client, data, store, layer):
    adata, h5ad, zarr_path = data
    ref = tg.fit(adata.X, capture=adata.obs["cap"].to_numpy(), genes=adata.var_names,
                 interval="wald", progress=False)
    path = h5ad if store == "h5ad" else zarr_path
    res = tg.fit_file(path, layer=layer, capture="cap", chunk_size=70, interval="wald",
                      progress=False, client=client)
    pd.testing.assert_frame_equal(res, ref)


@pytest.mark.parametrize("layer", [None, "csc"])
def test_file_on_cluster_with_options(client, data, layer):
    adata, h5ad, _ = data
    genes = ["g11", "g0", "g5"]
    kw = dict(layer=layer, capture="total", k_deg="kd", genes=genes, chunk_size=90,
              progress=False)
    ref = tg.fit_file(h5ad, **kw)                # profile intervals, in process
    pd.testing.assert_frame_equal(tg.fit_file(h5ad, client=client, **kw), ref)


def test_backed_anndata_on_cluster(client, data):
    adata, h5ad, _ = data
    mem = adata.copy()
    tg.tl.fit(mem, capture="cap", interval="wald", progress=False)
    backed = ad.read_h5ad(h5ad, backed="r")
    tg.tl.fit(backed, capture="cap", interval="wald", progress=False, client=client,
              chunk_size=100)
    cols = [c for c in mem.var.columns if c.startswith("telegraph_")]
    pd.testing.assert_frame_equal(backed.var[cols], mem.var[cols])
    backed.file.close()


def test_matrix_does_not_travel_through_the_client(client, data, monkeypatch):
    """The tasks the client submits carry a file reference, cell ranges and
    per-cell group indices of their slice -- never counts."""
    import scipy.sparse as sp
    adata, h5ad, _ = data
    calls = []
    submit = client.submit

    def recording(func, *args, **kwargs):
        calls.append((func.__name__, args))
        return submit(func, *args, **kwargs)

    monkeypatch.setattr(client, "submit", recording)
    chunk = 100
    tg.fit_file(h5ad, capture="cap", chunk_size=chunk, interval="wald", progress=False,
                client=client)
    reads = [args for name, args in calls if name == "_task_count_cells"]
    assert len(reads) == 6                      # 600 cells in slices of 100
    for name, args in calls:
        for a in args:
            assert not sp.issparse(a), name
            if isinstance(a, np.ndarray):
                assert a.size <= max(chunk, adata.n_vars + 1), (name, a.size)
    for args in reads:                          # group of each cell, as small integers
        assert args[3].dtype == np.uint8 and args[3].shape == (chunk,)
    assert len(pickle.dumps(ondisk.OnDiskMatrix(h5ad))) < 1000


def test_unreachable_scheduler_is_a_clear_error():
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=rf"cannot reach a Dask scheduler at "
                                              rf"'{address}': connection refused"):
        cluster.connect(address, timeout=1)
    assert time.perf_counter() - start < 15
    with pytest.raises(ConnectionError, match="not a Dask scheduler address"):
        cluster.connect("nonsense://x", timeout=1)
    with pytest.raises(TypeError, match="telegraph.cluster.connect"):
        tg.fit(np.ones((20, 2)), client=address)


def test_refused_connection_and_unknown_host_are_said_at_once():
    """Audit: a refused connection waited the whole timeout (10 s) before saying so."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="connection refused"):
        cluster.connect(address)                    # default timeout, 10 s
    assert time.perf_counter() - start < 5
    with pytest.raises(ConnectionError, match="unknown host 'no-such-host.invalid'"):
        cluster.connect("tcp://no-such-host.invalid:8786")


@pytest.mark.parametrize("address", ["nonsense://x", "127.0.0.1:notaport"])
def test_cli_malformed_scheduler_address_is_one_line(address, data, tmp_path):
    """Audit: a malformed --scheduler printed the right line, then a Client.__del__
    traceback after 20 s."""
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "telegraph", "fit", str(data[1]),
                          "--scheduler", address, "--table", str(tmp_path / "t.csv")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"telegraph fit: error: --scheduler: {address!r} is not a Dask "
                           f"scheduler address (")
    assert time.monotonic() - start < 20
    assert not (tmp_path / "t.csv").exists()


_INTERRUPTED_ON_LOCAL = textwrap.dedent("""
    import os, signal, sys, threading, time
    from distributed import Client
    from telegraph import blocks
    from telegraph.cli import main

    gather, close = blocks.gather_with_progress, Client.close

    def interrupted_in_gather(*args, **kwargs):    # Ctrl-C 3 s into the gather
        threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT)).start()
        result = gather(*args, **kwargs)
        time.sleep(60)         # work done within 3 s: the Ctrl-C still lands in the fit
        return result

    def interrupted_in_close(self, *args, **kwargs):  # Ctrl-C while the cluster stops
        Client.close = close                          # once
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        return close(self, *args, **kwargs)

    if __name__ == "__main__":
        if sys.argv[2] == "gather":
            blocks.gather_with_progress = interrupted_in_gather
        else:
            Client.close = interrupted_in_close
        sys.exit(main(["fit", "--example", "--scheduler", "local", "--table", sys.argv[1]]))
""")


@pytest.mark.slow
@pytest.mark.parametrize("when", ["gather", "close"])
def test_ctrl_c_under_a_local_cluster_is_one_line(tmp_path, when):
    """Audit: Ctrl-C under --scheduler local printed ~39 lines of "Task exception was
    never retrieved ... AllExit" before the one-line message; a Ctrl-C while the local
    cluster was closing printed a cancelled close's traceback and, 60 s later, the
    client destructor's timeout (both would be lines here). No limit on the time: a loaded
    machine makes a local cluster slow to start and stop."""
    script = tmp_path / "interrupt.py"
    script.write_text(_INTERRUPTED_ON_LOCAL)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO),
                                                       os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "t.csv"), when],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 130, run.stderr[-3000:]
    lines = [line for line in run.stderr.strip().splitlines()
             if not line.startswith("telegraph fit: compiling kernels")]  # a cold cache's notice
    assert lines == ["telegraph fit: interrupted; nothing was written"]
    assert not (tmp_path / "t.csv").exists()


def test_cli_unreachable_scheduler(data, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(tg.config, "CONNECT_TIMEOUT", 1.0)
    address = f"tcp://127.0.0.1:{_free_port()}"
    out = tmp_path / "t.csv"
    code = main(["fit", str(data[1]), "--scheduler", address, "--table", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--scheduler: cannot reach a Dask scheduler at '{address}'" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("fmt", ["h5ad", "csv"])
def test_cli_scheduler_address(client, data, capsys, tmp_path, fmt):
    """.h5ad: the workers read the file; .csv: read here, histograms sent."""
    adata, h5ad, _ = data
    path = h5ad
    if fmt == "csv":
        path = tmp_path / "counts.csv"
        pd.DataFrame(adata.X.toarray().T, index=adata.var_names,
                     columns=adata.obs_names).to_csv(path, index_label="gene")
    mem, dist = tmp_path / "mem.csv", tmp_path / "dist.csv"
    common = ["fit", str(path), "--capture", "total", "--interval", "wald", "--no-progress"]
    assert main(common + ["--table", str(mem)]) == 0
    assert main(common + ["--scheduler", client.scheduler.address, "--table", str(dist)]) == 0
    assert dist.read_text() == mem.read_text()
    assert client.status == "running"           # the CLI closed its own client only


def test_progress_bar_on_cluster(client, data, capsys):
    adata = data[0]
    ref = tg.fit(adata.X, interval="wald", progress=False)
    res = tg.fit(adata.X, interval="wald", progress=True, client=client)
    pd.testing.assert_frame_equal(res, ref)
    assert "telegraph fit" in capsys.readouterr().err


_WORKQUEUE = textwrap.dedent("""
    import numba, numpy as np, pandas as pd
    from telegraph import cluster, config
    from telegraph.fitting import fit_histograms
    from telegraph.inputs import FitSettings
    from telegraph.histogram import count_histograms
    if __name__ == "__main__":
        rng = np.random.default_rng(1)
        X = rng.poisson(rng.gamma(0.5, 2, 60) * rng.beta(0.5, 1, (800, 60)))
        h = count_histograms(X)
        ref = fit_histograms(h, settings=FitSettings(), progress=False)
        assert numba.threading_layer() == "workqueue"
        config.BLOCKS_PER_THREAD = 15          # many blocks: concurrent launches
        with cluster.local_client(1, threads_per_worker=2, processes=False) as c:
            res = fit_histograms(h, client=c, settings=FitSettings(), progress=False)
        pd.testing.assert_frame_equal(res, ref)
        print("identical")
""")


@pytest.mark.slow
def test_two_threads_per_worker_under_workqueue(tmp_path):
    script = tmp_path / "wq.py"
    script.write_text(_WORKQUEUE)
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "identical" in proc.stdout


@pytest.mark.slow
def test_worker_processes_read_the_file(data):
    adata, h5ad, _ = data
    ref = tg.fit(adata.X, capture="total", genes=adata.var_names, interval="wald",
                 progress=False)
    with cluster.local_client(2, processes=True) as c:
        pids = set(c.run(os.getpid).values())
        assert os.getpid() not in pids
        res = tg.fit_file(h5ad, capture="total", chunk_size=150, interval="wald",
                          progress=False, client=c)
    pd.testing.assert_frame_equal(res, ref)


@pytest.mark.slow
def test_a_worker_killed_mid_fit_changes_nothing(data, monkeypatch):
    """Audit: killing one worker of a LocalCluster failed most fits ("lose scattered
    data, which can't be recovered"): the histograms and the gene names were
    scattered. Now every piece lives in a task the scheduler can rerun. The worker
    holding most results is killed (SIGKILL) as soon as the tasks are submitted."""
    adata, h5ad, _ = data
    kw = dict(capture="total", interval="wald", progress=False)
    ref = tg.fit(adata.X, genes=adata.var_names, **kw)
    gather = blocks.gather_with_progress
    killed = []

    def kill_then_gather(client, futures, sizes, progress, desc="telegraph fit"):
        pids = client.run(os.getpid)
        deadline = time.monotonic() + 30
        while True:
            held = client.has_what()
            victim = max(held, key=lambda w: len(held[w]))
            if held[victim] or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        os.kill(pids[victim], signal.SIGKILL)
        killed.append(len(held[victim]))
        return gather(client, futures, sizes, progress, desc)

    monkeypatch.setattr(blocks, "gather_with_progress", kill_then_gather)
    with cluster.local_client(2, processes=True) as c:
        cluster.warm_up(c)
        res = tg.fit(adata.X, genes=adata.var_names, client=c, **kw)    # histograms sent
        pd.testing.assert_frame_equal(res, ref)
        c.wait_for_workers(2, timeout=60)
        res = tg.fit_file(h5ad, chunk_size=150, client=c, **kw)        # workers read
        pd.testing.assert_frame_equal(res, ref)
    assert len(killed) == 2 and min(killed) > 0

