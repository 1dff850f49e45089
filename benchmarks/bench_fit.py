"""Per-gene fit speed and quality: telegraph against the txburst method.

Both run in this one process on the same simulated genes (exact stationary
telegraph counts; parameters drawn like ``tg.datasets.example``: k_on in
[0.05, 5], k_off in [0.5, 20], burst size in [2, 50], times a capture of 0.3,
k_deg = 1). The baseline is the re-implementation of txburst's ML method in
tests/reference_txburst.py (50-node Gauss-Jacobi quadrature, L-BFGS-B with
finite differences, txburst's bounds and moment start).

Reported per cell count: CPU seconds per gene on one thread for
- telegraph point estimates + Wald intervals (``interval="wald"``),
- telegraph with profile-likelihood intervals (the default),
- the txburst method (point estimates only, on a subset of genes),
the speed ratio, and the fraction of genes where our exact log-likelihood is
at least the exact log-likelihood at txburst's estimate. Then an estimate of
20,000 genes x 10,000 cells on all cores from the measured per-gene costs.

Usage: python benchmarks/bench_fit.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _one_thread  # noqa: E402,F401  (one-thread BLAS pools: before numpy)

import numpy as np  # noqa: E402

from _report import publish  # noqa: E402  (print and write the report)
sys.path.insert(0, str(HERE.parent / "tests"))

import numba  # noqa: E402

import telegraph as tg  # noqa: E402
from reference_txburst import fit_gene as txburst_fit  # noqa: E402


def simulate(rng, n_genes, n_cells):
    k_on = 10 ** rng.uniform(np.log10(0.05), np.log10(5.0), n_genes)
    k_off = 10 ** rng.uniform(np.log10(0.5), np.log10(20.0), n_genes)
    bs = 10 ** rng.uniform(np.log10(2.0), np.log10(50.0), n_genes)
    k_syn = 0.3 * bs * k_off
    p = rng.beta(k_on, k_off, size=(n_cells, n_genes))
    return rng.poisson(k_syn * p), (k_on, k_off, k_syn)


def cpu(fn):
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer genes (for CI smoke runs)")
    ap.add_argument("--out", default=str(HERE / "_output" / "fit.md"))
    args = ap.parse_args(argv)
    rng = np.random.default_rng(2024)
    cells = [100, 1000, 10000]
    n_ours = 40 if args.quick else 200
    n_tx = {100: 6, 1000: 4, 10000: 2} if args.quick else {100: 30, 1000: 15, 10000: 6}

    # compile outside the timings
    X0, _ = simulate(rng, 3, 50)
    tg.fit(X0, progress=False)
    numba.set_num_threads(1)

    rows = []
    per_gene_wald_10k = per_gene_prof_10k = None
    for nc in cells:
        X, truth = simulate(rng, n_ours, nc)
        wald, t_wald = cpu(lambda: tg.fit(X, interval="wald", progress=False))
        prof, t_prof = cpu(lambda: tg.fit(X, progress=False))
        t_wald /= n_ours
        t_prof /= n_ours
        m = n_tx[nc]
        t0 = time.process_time()
        tx_est = [txburst_fit(X[:, j]) for j in range(m)]
        t_tx = (time.process_time() - t0) / m
        better = 0
        for j, (a, b, lam) in enumerate(tx_est):
            ll_tx = float(np.sum(tg.logpmf(X[:, j], a, b, lam)))
            # the telegraph supremum (limits included): "loglik" is that of the law reported
            better += wald["loglik_telegraph"].iloc[j] >= ll_tx - 1e-6 * (1 + abs(ll_tx))
        rows.append((nc, t_wald, t_prof, t_tx, better, m))
        if nc == 10000:
            per_gene_wald_10k, per_gene_prof_10k = t_wald, t_prof

    ncores = os.cpu_count() or 1
    lines = [
        "# Per-gene fit: telegraph vs the txburst method",
        "",
        f"CPU seconds per gene on one thread ({time.strftime('%Y-%m-%d')}, "
        f"telegraph {tg.__version__}, numba {numba.__version__}, {ncores} cores).",
        "",
        "| cells | telegraph (Wald) | telegraph (profile CIs) | txburst method | speed-up (Wald) "
        "| speed-up (profile) | loglik >= txburst's |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for nc, tw, tp, tt, better, m in rows:
        lines.append(f"| {nc:,} | {tw * 1e3:.2f} ms | {tp * 1e3:.2f} ms | {tt * 1e3:.0f} ms | "
                     f"{tt / tw:.0f}x | {tt / tp:.0f}x | {better}/{m} |")
    est_w = 20000 * per_gene_wald_10k / ncores
    est_p = 20000 * per_gene_prof_10k / ncores
    lines += ["", f"Estimate for 20,000 genes x 10,000 cells on {ncores} cores from the per-gene "
              f"costs above: {est_w:.0f} s with Wald intervals, {est_p:.0f} s with profile "
              "intervals (the histogram pass over the matrix comes on top; see "
              "bench_histogram.py)."]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
