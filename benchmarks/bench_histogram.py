"""Speed of per-gene count histograms against one per-gene mean/variance pass.

Data: a cells x genes CSR matrix (default 100,000 x 2,000, ~6% non-zero,
float32 like scanpy's output) with negative-binomial-like counts.  Baselines,
measured in the same run on the same matrix:

- ``scipy mean/var``: ``X.mean(0)`` and ``X.multiply(X).mean(0)`` (single-threaded C);
- ``scanpy _get_mean_var``: the Numba kernel behind ``sc.pp.highly_variable_genes``
  (parallel, the fastest per-gene moment pass in the scverse stack).

Each task is timed twice: wall-clock with all Numba threads, and process CPU
time with Numba limited to one thread (robust to other load on a shared
machine); minima over repeats.  Ratios are against the baselines of the same
run.  Also measured: CSC input, capture groups (binned, rtol 1%), histograms
of 10 pre-sliced cell chunks merged, validation alone.

Run: ``python benchmarks/bench_histogram.py [--cells N] [--genes G] [--density D]``.
Writes ``benchmarks/_output/histogram.md``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp

from telegraph.histogram import CountHistograms, check_counts, count_histograms


def make_counts(n_cells, n_genes, density, seed=0):
    """CSR float32 counts: per-gene detection rates around ``density``,
    non-zero values 1 + NegBin (heavy tails for some genes)."""
    rng = np.random.default_rng(seed)
    d = np.exp(rng.normal(0.0, 1.0, n_genes))
    d = np.clip(d / d.mean() * density, 1e-4, 0.95)
    nnz = rng.binomial(n_cells, d)
    indptr = np.zeros(n_genes + 1, np.int64)
    np.cumsum(nnz, out=indptr[1:])
    indices = np.empty(indptr[-1], np.int32)
    for g in range(n_genes):
        # a sorted sample without replacement: cumulative sum of random gaps
        k = nnz[g]
        pos = np.sort(rng.choice(n_cells, size=k, replace=False))
        indices[indptr[g]:indptr[g + 1]] = pos
    mean_nz = np.exp(rng.normal(0.0, 1.2, n_genes))
    r = 0.7
    gene_of = np.repeat(np.arange(n_genes), nnz)
    m = mean_nz[gene_of]
    data = (1 + rng.negative_binomial(r, r / (r + m))).astype(np.float32)
    X = sp.csc_matrix((data, indices, indptr), shape=(n_cells, n_genes))
    return X.tocsr()


def timeit(fn, repeat, clock):
    best = np.inf
    for _ in range(repeat):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def scipy_mean_var(X):
    m = np.asarray(X.mean(axis=0)).ravel()
    m2 = np.asarray(X.multiply(X).mean(axis=0)).ravel()
    return m, m2 - m * m


def chunked(X, chunk):
    h = None
    for lo in range(0, X.shape[0], chunk):
        part = count_histograms(X[lo:lo + chunk])
        h = part if h is None else h.merge(part)
    return h


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--genes", type=int, default=2_000)
    ap.add_argument("--density", type=float, default=0.06)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "_output" / "histogram.md"))
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    X = make_counts(args.cells, args.genes, args.density)
    Xc = X.tocsc()
    print(f"data: {X.shape[0]} x {X.shape[1]} CSR float32, {X.nnz} non-zeros "
          f"({X.nnz / (X.shape[0] * X.shape[1]):.1%}), max {X.data.max():.0f}; "
          f"made in {time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(1)
    capture = np.clip(np.exp(rng.normal(np.log(0.1), 0.4, X.shape[0])), 1e-3, 1.0)

    from scanpy.preprocessing._utils import _get_mean_var

    # warm up (compilation is cached on disk but loading still costs)
    h = count_histograms(X[:1000])
    count_histograms(Xc[:1000])
    count_histograms(X[:1000], capture=capture[:1000])
    _get_mean_var(X[:1000])

    h = count_histograms(X)
    # correctness against float64 moments (scipy accumulates float32 in float32)
    m, v = scipy_mean_var(X.astype(np.float64))
    assert np.allclose(h.mean(), m, rtol=1e-10) and np.allclose(h.var(), v, rtol=1e-9)
    assert isinstance(chunked(X, 10_000), CountHistograms)
    hc = count_histograms(X, capture=capture)

    rep = args.repeat
    chunks = [X[lo:lo + X.shape[0] // 10] for lo in range(0, X.shape[0], X.shape[0] // 10)]

    def merged_chunks():
        h = count_histograms(chunks[0])
        for part in chunks[1:]:
            h = h.merge(count_histograms(part))
        return h

    tasks = [
        ("scipy mean/var (baseline A)", lambda: scipy_mean_var(X)),
        ("scanpy _get_mean_var (baseline B)", lambda: _get_mean_var(X)),
        ("check_counts (validation only)", lambda: check_counts(X)),
        ("count_histograms CSR", lambda: count_histograms(X)),
        ("count_histograms CSC", lambda: count_histograms(Xc)),
        (f"count_histograms CSR, capture ({hc.n_groups} groups, rtol 1%)",
         lambda: count_histograms(X, capture=capture)),
        ("count_histograms CSR, 10 pre-sliced chunks + merge", merged_chunks),
    ]
    nt = numba.get_num_threads()
    layer = numba.threading_layer()
    wall = {name: timeit(fn, rep, time.perf_counter) for name, fn in tasks}
    numba.set_num_threads(1)
    try:
        cpu = {name: timeit(fn, rep, time.process_time) for name, fn in tasks}
    finally:
        numba.set_num_threads(nt)

    a_w, b_w = wall[tasks[0][0]], wall[tasks[1][0]]
    a_c, b_c = cpu[tasks[0][0]], cpu[tasks[1][0]]
    lines = ["# Count histograms vs one mean/variance pass",
             "",
             f"{X.shape[0]:,} cells x {X.shape[1]:,} genes, CSR float32, {X.nnz:,} non-zeros "
             f"({X.nnz / (X.shape[0] * X.shape[1]):.1%}), largest count {X.data.max():.0f}; "
             f"{h.n_bins:,} bins without capture, {hc.n_bins:,} with capture. "
             f"Minimum of {rep} repeats. *wall*: wall-clock with {nt} Numba threads "
             f"(threading layer {layer}, OMP_WAIT_POLICY="
             f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}) "
             f"(sensitive to other load on a shared machine); *cpu*: process CPU time "
             f"with Numba limited to 1 thread (scipy is single-threaded anyway). "
             f"A = scipy `X.mean(0)` + `X.multiply(X).mean(0)`; B = scanpy's Numba "
             f"`_get_mean_var`.",
             "",
             "| task | wall (s) | wall / A | wall / B | cpu 1 thread (s) | cpu / A | cpu / B |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, _ in tasks:
        w, c = wall[name], cpu[name]
        lines.append(f"| {name} | {w:.3f} | {w / a_w:.2f} | {w / b_w:.2f} | "
                     f"{c:.3f} | {c / a_c:.2f} | {c / b_c:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written {out}")


if __name__ == "__main__":
    main()
