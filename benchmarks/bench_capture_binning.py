"""Capture groups: how far the binned likelihood is from the exact one, and what a Taylor
correction in log capture would buy.

With per-cell capture every cell has its own x = s_c * lam; the fit groups cells whose
capture differs by less than a factor 1 + capture_rtol and evaluates each group at its mean
capture (``telegraph.histogram.capture_groups``; default rtol 0.05). This script measures the
error that grouping makes in what the fit uses -- differences of the log-likelihood between
parameter points a few standard errors apart (a constant offset changes no estimate and no
interval) -- against the exact per-cell log-likelihood (``pb_eval`` per cell, itself checked
against mpmath to ~1e-12), for:

- zeroth order (today's binning) at capture_rtol 0.05, 0.1 and 0.3;
- rtol 0.3 to 0.9 with a Taylor expansion of each cell's log P(n; e^u) in u = log capture
  about its group's value u_g, to order 1, 2, 3, 4 (docs/maths.md, "Fitting", *The
  expansion in log capture*): with Lambda = x p the latent Poisson rate and
  E[Lambda^j | n] = (n+1)...(n+j) P(n+j)/P(n) (at u_g),
  d/du log P = n - E[L|n], d2/du2 = Var[L|n] - E[L|n],
  d3/du3 = -E[L|n] + 3 Var[L|n] - kappa3[L|n],
  d4/du4 = -E[L|n] + 7 Var[L|n] - 6 kappa3[L|n] + kappa4[L|n];
  so the correction needs P(n+1..n+4) at the group's x, which the downward recurrence in n
  already produces, and per bin the sums of (u_c - u_g)^j over its cells. (The kernels cut
  log capture into cells of fixed width from the smallest value; here the groups are
  ``capture_groups``' greedy ones, valued at their mean capture: the same widths, not the
  same groups.)

Genes from the realistic mix (bench_tail.py's box and per-cell capture, log-normal around 0.3),
at 1,000 and 10,000 cells; the parameter points are the truth and five points at relative
distance ~ 10/sqrt(cells) in (k_on, k_off, k_syn) (a few standard errors). Reported per
variant: the number of groups and, over genes, the median, 90th percentile and maximum of the
largest error of a log-likelihood difference (nats; the profile intervals cut at 1.92).

Usage: python benchmarks/bench_capture_binning.py [--genes 40] [--cells 1000 10000]
Writes benchmarks/_output/capture_binning.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _one_thread  # noqa: E402,F401  (one-thread BLAS pools: before numpy, as bench_tail)

import numpy as np  # noqa: E402

from _report import publish  # noqa: E402  (print and write the report)
sys.path.insert(0, str(HERE.parent))

from bench_tail import cell_capture, draw_genes, sample  # noqa: E402
from telegraph.histogram import capture_groups  # noqa: E402
from telegraph.kernels.poisson_beta import pb_eval_rows  # noqa: E402

#: (label, capture_rtol, order of the Taylor correction; 0 = today's binning)
VARIANTS = [("rtol 0.05 (default)", 0.05, 0), ("rtol 0.1", 0.1, 0), ("rtol 0.3", 0.3, 0),
            ("rtol 0.3, order 1", 0.3, 1), ("rtol 0.3, order 2", 0.3, 2),
            ("rtol 0.3, order 3", 0.3, 3), ("rtol 0.4, order 3 (the kernels' before the fourth order)", 0.4, 3),
            ("rtol 0.4, order 4 (the kernels': a gene with counts > 300)", 0.4, 4),
            ("rtol 0.5, order 3", 0.5, 3),
            ("rtol 0.65, order 4 (the kernels': counts <= 300)", 0.65, 4),
            ("rtol 0.7, order 3", 0.7, 3), ("rtol 0.9, order 2", 0.9, 2),
            ("rtol 0.9, order 3", 0.9, 3), ("rtol 0.9, order 4", 0.9, 4)]

#: directions of the five parameter points (relative steps in k_on, k_off, k_syn)
DIRECTIONS = [(1, 0, 0), (0, 1, 1), (0, 0, 0.7), (-0.7, -0.7, -0.7), (0.7, 1.5, 0.3)]


def log_pmf(n, a, b, x):
    """Exact log P(n) of the Poisson-Beta law per entry (a, b scalars; n, x arrays)."""
    m = n.shape[0]
    out = np.zeros((m, 11))
    ep = np.zeros(m)
    pb_eval_rows(0, m, n.astype(float), np.full(m, float(a)), np.full(m, float(b)),
                 np.ascontiguousarray(x, dtype=float), False, out, ep)
    return out[:, 0]


def loglik_exact(n, s, a, b, lam):
    return float(log_pmf(n, a, b, s * lam).sum())


def loglik_binned(n, s, a, b, lam, rtol, order):
    """Binned log-likelihood (each cell at its group's mean capture), plus the Taylor
    correction in u = log capture to ``order``; returns (value, number of groups)."""
    group, value = capture_groups(s, max_groups=1, rtol=rtol)
    sg = value[group]
    d = np.log(s / sg)
    x = sg * lam
    l0 = log_pmf(n, a, b, x)
    total = l0.copy()
    if order >= 1:
        ratio = [np.exp(log_pmf(n + j, a, b, x) - l0) for j in (1, 2, 3, 4)]
        m1 = (n + 1) * ratio[0]
        m2 = (n + 1) * (n + 2) * ratio[1]
        m3 = (n + 1) * (n + 2) * (n + 3) * ratio[2]
        m4 = (n + 1) * (n + 2) * (n + 3) * (n + 4) * ratio[3]
        var = m2 - m1 * m1
        k3 = m3 - 3.0 * m2 * m1 + 2.0 * m1 ** 3
        k4 = m4 - 4.0 * m1 * m3 - 3.0 * m2 * m2 + 12.0 * m1 * m1 * m2 - 6.0 * m1 ** 4
        total += d * (n - m1)
        if order >= 2:
            total += 0.5 * d * d * (var - m1)
        if order >= 3:
            total += d ** 3 / 6.0 * (-m1 + 3.0 * var - k3)
        if order >= 4:
            total += d ** 4 / 24.0 * (-m1 + 7.0 * var - 6.0 * k3 + k4)
    return float(total.sum()), value.shape[0]


def run_setting(n_cells, n_genes, seed):
    rng = np.random.default_rng(seed)
    k_on, k_off, k_syn = draw_genes(rng, n_genes)
    capture = cell_capture(rng, n_cells)
    X = sample(rng, k_on, k_off, k_syn, n_cells, capture)
    step = 10.0 / np.sqrt(n_cells)
    worst = {label: [] for label, _, _ in VARIANTS}
    groups = {}
    for j in range(n_genes):
        n = X[:, j].astype(np.int64)
        truth = np.array([k_on[j], k_off[j], k_syn[j]])
        points = [truth] + [truth * (1.0 + step * np.array(dv)) for dv in DIRECTIONS]
        exact = np.array([loglik_exact(n, capture, *p) for p in points])
        for label, rtol, order in VARIANTS:
            vals = []
            for p in points:
                v, groups[label] = loglik_binned(n, capture, *p, rtol, order)
                vals.append(v)
            vals = np.array(vals)
            err = (vals - vals[0]) - (exact - exact[0])
            worst[label].append(float(np.abs(err).max()))
    return worst, groups


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genes", type=int, default=40)
    ap.add_argument("--cells", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    t0 = time.time()
    lines = ["### Capture groups: error of the binned likelihood (`bench_capture_binning.py`)", "",
             f"{args.genes} genes of the realistic mix per setting (seed {args.seed}), per-cell "
             "capture log-normal around 0.3; error = the largest |error of a log-likelihood "
             "difference| over five points ~10/sqrt(cells) relative from the truth, in nats "
             "(the exact reference: pb_eval per cell).", "",
             "| cells | variant | groups | median | p90 | max |",
             "|---:|---|---:|---:|---:|---:|"]
    for n_cells in args.cells:
        worst, groups = run_setting(n_cells, args.genes, args.seed)
        for label, _, _ in VARIANTS:
            w = np.array(worst[label])
            lines.append(f"| {n_cells:,} | {label} | {groups[label]} | {np.median(w):.1e} | "
                         f"{np.quantile(w, 0.9):.1e} | {w.max():.1e} |")
    lines += ["", f"({time.time() - t0:.0f} s)"]
    publish(lines, HERE / "_output" / "capture_binning.md")


if __name__ == "__main__":
    main()
