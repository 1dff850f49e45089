"""Labelled fits from disk: tg.fit_file(..., new_layer=, t_label=, detection=),
tg.tl.fit on a backed AnnData and ``telegraph fit --new-layer --backed``.

The new and old layers are read in the same slices into the joint histograms
of the two-species path (new counts as its "unspliced" layer), with the cells'
(pulse, detection, capture) groups decided from the file's obs before any
slice is read. The histograms are sufficient statistics and slices merge
exactly, so the table must be that of ``tg.fit(old, new=...)`` on the same
matrices in memory: compared with ``assert_frame_equal`` (no tolerance) and
the largest absolute difference asserted below 1e-10. Slices are smaller than
the cell count and do not divide it. The user's file is never written to.
"""

from __future__ import annotations

import contextlib
import hashlib
import tracemalloc

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import telegraph as tg
from telegraph import backed, cluster
from telegraph.cli import main
from telegraph.ondisk import joint_histograms

# per hour: a short-lived bursty gene and a balanced longer-lived one
KIN = dict(k_on=[0.5, 1.0], k_off=[3.0, 1.0], k_syn=[60.0, 20.0], k_deg=[1.0, 0.5])
PULSES = [0.5, 2.0, 6.0]
DETECTION = 0.8
N_CELLS = 360
CHUNK = 77                      # < N_CELLS, not a divisor
FIT = dict(interval="wald", n_jobs=1, progress=False)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """Three pulse lengths (obs['t_label']), per-cell capture (obs['capture']),
    detection < 1; the new/old layers as CSR, dense and CSC."""
    adata = tg.simulate_labelled_anndata(N_CELLS, 2, t_label=PULSES, detection=DETECTION,
                                         seed=5, **KIN)
    for name in ("new", "old"):
        adata.layers[f"{name}_dense"] = adata.layers[name].toarray()
        adata.layers[f"{name}_csc"] = sp.csc_matrix(adata.layers[name])
    path = tmp_path_factory.mktemp("labelled") / "labelled.h5ad"
    adata.write_h5ad(path)
    return adata, path, digest(path)


def in_memory(adata, detection=DETECTION):
    return tg.fit(adata.layers["old"], new=adata.layers["new"],
                  t_label=adata.obs["t_label"].to_numpy(), detection=detection,
                  capture=adata.obs["capture"].to_numpy(), genes=list(adata.var_names), **FIT)


@pytest.fixture(scope="module")
def reference(experiment):
    return in_memory(experiment[0])


def assert_same_table(disk, mem):
    pd.testing.assert_frame_equal(disk, mem)
    num = mem.select_dtypes("number").columns
    a, b = disk[num].to_numpy(float), mem[num].to_numpy(float)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.nanmax(np.abs(a - b)) <= 1e-10


@pytest.mark.parametrize("suffix", ["", "_dense", "_csc"])
def test_from_disk_equals_in_memory(experiment, reference, suffix):
    adata, path, before = experiment
    res = tg.fit_file(path, layer=f"old{suffix}", new_layer=f"new{suffix}",
                      t_label="t_label", detection=DETECTION, capture="capture",
                      chunk_size=CHUNK, **FIT)
    assert_same_table(res, reference)
    assert res.attrs["labelling"] == {"t_label": "obs:t_label", "detection": DETECTION,
                                      "pulses_hours": PULSES}
    assert res.attrs["settings"]["time_unit"] == "hour"
    assert digest(path) == before


def test_size_factors_and_genes_in_the_order_given(experiment, tmp_path):
    """capture="total" sums both layers per cell (an extra pass over each), as
    in memory; a gene subset comes back in the order given."""
    adata, _, _ = experiment
    total = np.asarray((adata.layers["old"] + adata.layers["new"]).sum(axis=1)).ravel()
    adata = adata[total > 0].copy()             # capture="total" refuses empty cells
    path = tmp_path / "nonempty.h5ad"
    adata.write_h5ad(path)
    genes = list(adata.var_names[::-1])
    sub = adata[:, genes]       # both genes: the totals are those of the whole file
    mem = tg.fit(sub.layers["old"], new=sub.layers["new"], t_label=sub.obs["t_label"].to_numpy(),
                 detection=DETECTION, capture="total", genes=genes, **FIT)
    disk = tg.fit_file(path, layer="old", new_layer="new", t_label="t_label",
                       detection=DETECTION, capture="total", genes=genes, chunk_size=CHUNK,
                       **FIT)
    assert list(disk.index) == genes
    assert_same_table(disk, mem)


def test_slices_are_bounded_by_the_chunk(experiment):
    """Every slice read holds at most chunk_size cells of both layers."""
    _, path, _ = experiment
    p = backed.plan(path, layer="old", new_layer="new", t_label="t_label",
                    detection="detection", capture="capture", chunk_size=CHUNK)
    assert p.read.matrix.layer == "old" and p.new.layer == "new"
    assert p.groups.t_label.size == p.read.group_capture.size
    np.testing.assert_array_equal(np.unique(p.groups.t_label), PULSES)
    rows = []
    original = p.read.matrix.reader

    class Counting:
        def __init__(self, r):
            self.r = r

        def cells(self, a, b):
            rows.append(b - a)
            return self.r.cells(a, b)

        def __getattr__(self, name):
            return getattr(self.r, name)

    @contextlib.contextmanager
    def reader():
        with original() as r:
            yield Counting(r)

    p.read.matrix.reader = reader
    jh = joint_histograms(p.read, p.new)
    assert max(rows) == CHUNK and sum(rows) == N_CELLS
    assert int(jh.hist.n_cells.sum()) == N_CELLS * 2


def test_memory_bounded_by_chunk_size(tmp_path):
    """Reading two layers in small slices (the labelled pass is the joint one)
    peaks at a small fraction of a pass in one slice of every cell (what a fit
    in memory holds) and of the matrices' size. The rest of the peak is the
    histograms and fixed counting buffers, which grow with the genes and the
    distinct (new, old) pairs, not the cells."""
    rng = np.random.default_rng(4)
    n_cells, n_genes = 40_000, 100

    def layer():
        return sp.random(n_cells, n_genes, density=0.05, format="csr", random_state=rng,
                         data_rvs=lambda k: rng.integers(1, 6, k)).astype(np.float32)

    new, old = layer(), layer()
    path = tmp_path / "big.h5ad"
    ad.AnnData(X=old, layers={"new": new, "old": old},
               obs=pd.DataFrame({"t": np.repeat([1.0, 3.0], n_cells // 2)},
                                index=[f"c{i}" for i in range(n_cells)])).write_h5ad(path)
    matrix_bytes = 2 * (old.data.nbytes + old.indices.nbytes)

    def peak(chunk_size):
        p = backed.plan(path, layer="old", new_layer="new", t_label="t",
                        chunk_size=chunk_size)
        tracemalloc.start()
        jh = joint_histograms(p.read, p.new)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert int(jh.hist.n_cells.sum()) == n_cells * n_genes
        assert p.groups.t_label.tolist() == [1.0, 3.0]
        return top

    peak(400)                                       # kernels loaded outside tracing
    small, whole = peak(400), peak(n_cells)
    assert small < whole / 10, (small, whole)
    assert small < matrix_bytes / 2, (small, matrix_bytes)


def test_estimated_detection_from_disk_equals_in_memory(experiment):
    adata, path, _ = experiment
    small = adata[:240, :1].copy()
    mem = in_memory(small, detection="estimate")
    spath = path.with_name("small.h5ad")
    small.write_h5ad(spath)
    disk = tg.fit_file(spath, layer="old", new_layer="new", t_label="t_label",
                       detection="estimate", capture="capture", chunk_size=50, **FIT)
    assert_same_table(disk, mem)
    est_d = disk.attrs["labelling"]["detection_estimate"]
    est_m = mem.attrs["labelling"]["detection_estimate"]
    assert est_d["detection"] == est_m["detection"]
    assert est_d["ci_low"] < DETECTION < est_d["ci_high"]


def test_backed_anndata_and_dask_client(experiment, reference):
    """tg.tl.fit on a backed AnnData stores what the in-memory fit gives; with a
    Dask client (genes fitted on the workers, the file read here) the same."""
    adata, path, before = experiment
    b = ad.read_h5ad(path, backed="r")
    try:
        tg.tl.fit(b, layer="old", new_layer="new", t_label="t_label", detection="detection",
                  capture="capture", chunk_size=CHUNK, **FIT)
        for col in ("k_on", "k_deg", "half_life", "k_deg_ci_high", "burst_size_ci_low"):
            np.testing.assert_array_equal(b.var[f"telegraph_{col}"], reference[col])
        assert b.uns["telegraph"]["new_layer"] == "new"
        assert b.uns["telegraph"]["labelling"]["t_label"] == "obs:t_label"
    finally:
        b.file.close()
    with cluster.local_client(2, processes=False) as client:
        res = tg.fit_file(path, layer="old", new_layer="new", t_label="t_label",
                          detection=DETECTION, capture="capture", chunk_size=CHUNK,
                          client=client, interval="wald", progress=False)
    assert_same_table(res, reference)
    assert digest(path) == before


def test_cli_backed(experiment, reference, tmp_path, capsys):
    adata, path, before = experiment
    table, out = tmp_path / "disk.csv", tmp_path / "out.h5ad"
    code = main(["fit", str(path), "--layer", "old", "--new-layer", "new", "--t-label",
                 "t_label", "--detection", str(DETECTION), "--capture", "capture",
                 "--backed", "--chunk-size", str(CHUNK), "--interval", "wald", "--jobs", "1",
                 "--no-progress", "--table", str(table), "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    res = pd.read_csv(table, index_col="gene", float_precision="round_trip")
    for col in ("k_on", "k_off", "k_syn", "k_deg", "half_life", "k_deg_ci_low", "loglik"):
        np.testing.assert_array_equal(res[col].to_numpy(), reference[col].to_numpy())
    written = ad.read_h5ad(out)
    assert written.uns["telegraph"]["new_layer"] == "new"
    np.testing.assert_array_equal(written.var["telegraph_k_deg"], reference["k_deg"])
    np.testing.assert_array_equal(written.layers["new"].toarray(),
                                  adata.layers["new"].toarray())
    assert digest(path) == before


def test_errors_are_named(experiment, tmp_path, capsys):
    adata, path, before = experiment
    kw = dict(layer="old", new_layer="new", t_label="t_label", chunk_size=CHUNK)
    with pytest.raises(ValueError, match="layer 'nascent' not found.*'new'"):
        tg.fit_file(path, **{**kw, "new_layer": "nascent"})
    with pytest.raises(KeyError, match=r"t_label='pulse' is not a column of the obs of .*"
                                       r"labelled.h5ad.*'t_label'"):
        tg.fit_file(path, **{**kw, "t_label": "pulse"})
    with pytest.raises(ValueError, match="needs t_label"):
        tg.fit_file(path, **{**kw, "t_label": None})
    with pytest.raises(ValueError, match="t_label= needs new_layer="):
        tg.fit_file(path, layer="old", t_label=2.0)
    with pytest.raises(ValueError, match="k_deg cannot be given to a labelled fit"):
        tg.fit_file(path, **kw, k_deg=1.0)
    with pytest.raises(ValueError, match="same sparse format"):
        tg.fit_file(path, **{**kw, "new_layer": "new_csc"})
    common = ["fit", str(path), "--layer", "old", "--backed", "--no-progress"]
    for argv, message in [(["--new-layer", "nascent", "--t-label", "2"], "'nascent' not found"),
                          (["--new-layer", "new", "--t-label", "pulse"],
                           "neither a number nor a column")]:
        assert main(common + argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert digest(path) == before
