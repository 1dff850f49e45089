"""End to end, as a user meets it: `telegraph fit` on a whole file against the txburst method.

Issue 13's held-out check times the command on simulated files, cold and warm, against the
txburst method in the same run; this script does that on files of the same kind. The files:
bench_tail.py's realistic mix (its generator and random stream: with the defaults, 300 genes
at 100 and 1,000 cells, the genes of its table there), ``--genes`` genes at each number of
cells in ``--cells``, written as ``.h5ad`` once with capture 1 and once with per-cell capture
(an obs column, ``--capture capture``), in a temporary directory removed at the end.
Each file is fitted by ``telegraph fit FILE --table OUT`` as a command (default: profile
intervals, every core): first with an empty Numba cache (cold: compilation included), then
warm (the median of ``--repeats`` runs), wall time and CPU time (user + system of the
command). The txburst method (tests/reference_txburst.py) is timed in this process, one
thread, on every gene of the capture-1 counts (it has no capture): its total CPU time over
the file's genes. Speed-up: that total over telegraph's time for the whole file, start-up
included -- by wall time (what a user waits for) and by CPU time (the fair comparison with a
single-threaded baseline).

Usage: python benchmarks/bench_cli.py [--quick] [--genes N] [--cells 100 1000] [--repeats 3]
Writes benchmarks/_output/cli.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _one_thread  # noqa: E402,F401  (one-thread BLAS pools: before numpy)

import numpy as np  # noqa: E402

from _report import publish  # noqa: E402
from bench_tail import draw_genes, mix_settings, run_cmd, sample  # noqa: E402

REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from reference_txburst import fit_gene as txburst_fit  # noqa: E402


def write_h5ad(path: Path, X, capture) -> None:
    """Cells x genes counts (CSR) with the capture as obs['capture'] (none for capture 1)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp
    n_cells, n_genes = X.shape
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)])
    if capture is not None:
        obs["capture"] = capture
    var = pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)])
    ad.AnnData(X=sp.csr_matrix(X.astype(np.float32)), obs=obs, var=var).write_h5ad(path)


def txburst_cpu(X) -> float:
    """The txburst method's CPU seconds over every gene (column) of X, one thread."""
    t0 = time.process_time()
    with np.errstate(all="ignore"):   # (the warnings of its quadrature at extreme rates)
        for j in range(X.shape[1]):
            txburst_fit(X[:, j])
    return time.process_time() - t0


def run_files(work: Path, env, rng, n_genes, cells, repeats):
    """Write each setting's files into ``work``, time the txburst method on the capture-1
    counts and `telegraph fit` on both files, cold and warm (a Numba cache per file, in
    ``work``). Returns (rows, txburst CPU seconds by number of cells)."""
    env = dict(env)
    env.pop("NUMBA_CACHE_DIR", None)
    rows = []
    tx_of = {}
    for nc, label, X, c in mix_settings(rng, n_genes, cells):
        if label == "capture 1":
            tx_of[nc] = txburst_cpu(X)
        path = work / f"{nc}_{'one' if c is None else 'capture'}.h5ad"
        write_h5ad(path, X, c)
        cmd = [sys.executable, "-m", "telegraph", "fit", str(path), "--no-progress",
               "--table", str(work / "out.csv")]
        if c is not None:
            cmd += ["--capture", "capture"]
        run_env = dict(env, NUMBA_CACHE_DIR=str(work / f"cache_{path.stem}"))
        cold = run_cmd(cmd, run_env)
        warm = [run_cmd(cmd, run_env) for _ in range(repeats)]
        rows.append((nc, label, cold, (statistics.median(w[0] for w in warm),
                                       statistics.median(w[1] for w in warm))))
        print(f"{nc} cells, {label}: cold {cold[0]:.1f} s, warm {rows[-1][3][0]:.2f} s wall; "
              f"txburst {tx_of[nc]:.1f} s", file=sys.stderr, flush=True)
    return rows, tx_of


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="40 genes at 100 cells, 2 warm runs")
    ap.add_argument("--genes", type=int, default=300, help="genes per file (default 300)")
    ap.add_argument("--cells", type=int, nargs="+", default=[100, 1000],
                    help="cells per file (default 100 1000)")
    ap.add_argument("--repeats", type=int, default=3, help="warm runs per file (default 3)")
    ap.add_argument("--out", default=str(HERE / "_output" / "cli.md"))
    args = ap.parse_args(argv)
    n_genes, cells, repeats = args.genes, args.cells, args.repeats
    if args.quick:
        n_genes, cells, repeats = 40, [100], 2

    # bench_tail.py's stream: its warm-up draw, then its settings in order
    rng = np.random.default_rng(2026)
    sample(rng, *draw_genes(rng, 3), 50, np.ones(50))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory(prefix="tg_cli_") as tmp:
        rows, tx_of = run_files(Path(tmp), env, rng, n_genes, sorted(cells), repeats)
    lines = ["# End to end: `telegraph fit` on a file against the txburst method", "",
             f"{n_genes} genes per file from bench_tail.py's realistic mix (with the defaults "
             "the genes of its table at these cells), as `.h5ad` "
             f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, load average "
             f"{os.getloadavg()[0]:.1f}, {os.cpu_count()} cores). `telegraph fit FILE --table "
             "OUT` as a command (profile intervals, every core); cold: an empty Numba cache, "
             f"compilation included; warm: the median of {repeats} runs. txburst: the txburst "
             "method's CPU time over all the file's genes (capture-1 counts; one thread), in "
             "the same run. Speed-up: txburst's time over telegraph's for the whole file, "
             "start-up included.", "",
             "| cells | capture | txburst | cold: wall | CPU | warm: wall | CPU | "
             "speed-up cold (wall) | warm (wall) | warm (CPU) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    head = []
    for nc, label, (cw, cc), (ww, wc) in rows:
        tx = tx_of[nc]
        lines.append(f"| {nc:,} | {label} | {tx:.1f} s | {cw:.1f} s | {cc:.1f} s | "
                     f"{ww:.2f} s | {wc:.2f} s | {tx / cw:.1f}x | {tx / ww:.0f}x | "
                     f"{tx / wc:.0f}x |")
        head.append(f"{nc:,} cells {label}: {tx / ww:.0f}x warm, {tx / cw:.1f}x cold (wall)")
    lines += ["", "Headline: " + "; ".join(head)]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
