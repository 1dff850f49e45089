"""Experiment design: its cost over 2,000 genes, and the score-function gradient's variance.

1. Cost of a design over 2,000 genes (kinetics drawn like ``tg.datasets.example``: k_on in
   [0.05, 5], k_off in [0.5, 20], burst size in [2, 50] per mRNA lifetime; per-cell capture
   log-normal around 0.3, grouped as the fitter groups cells), CPU seconds on one thread:
   ``tg.design.fisher_information``, ``cells_needed`` (1.5-fold burst frequency, power 0.8),
   ``expected_precision`` with and without the limit-regime probabilities, against two
   baselines timed in the same run: fitting one simulated experiment of those genes
   (``tg.fit``, 2,000 cells, Wald intervals), and the brute-force answer to the same
   question -- the power of each gene's test by simulation (100 simulated experiments of
   ``cells_needed`` cells per group through the real differential test), timed on a subset
   of genes and scaled to 2,000.
2. The score-function (REINFORCE) estimate of the gradient of the expected information
   gain (``tg.design.eig_gradient``), over 32 prior draws at 1,000 cells and capture 0.3:
   its spread over independent seeds, its mean reported standard error and its bias
   against the exact gradient, against the number of simulated cells per draw, for the
   baselines none / leave-one-out mean / variance-minimising and with and without the
   importance sampling of the promoter activity.

Usage: python benchmarks/bench_design.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np

import telegraph as tg
from telegraph import design as td
from telegraph.differential import differential

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import publish  # noqa: E402  (print and write the report)


def kinetics(rng, n_genes):
    k = tg.study.draw_prior_kinetics(rng, n_genes)
    return k["k_on"], k["k_off"], k["burst_size"] * k["k_off"]


def cpu(fn):
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def cost_section(rng, n_genes, n_brute, reps):
    kon, koff, ksyn = kinetics(rng, n_genes)
    capture = np.clip(rng.lognormal(np.log(0.3), 0.35, 2000), 0.02, 1.0)
    # compile outside the timings
    td.expected_precision(kon[:3], koff[:3], ksyn[:3], n_cells=500, capture=capture,
                          progress=False)
    td.cells_needed(kon[:3], koff[:3], ksyn[:3], effect=1.5, capture=capture,
                    calibration="chi2", progress=False)
    _, t_info = cpu(lambda: td.fisher_information(kon, koff, ksyn, capture=capture))
    _, t_need_chi2 = cpu(lambda: td.cells_needed(kon, koff, ksyn, effect=1.5, capture=capture,
                                                 calibration="chi2", progress=False))
    # the panel calibration (plan, telegraph design): the real test on the simulated panel
    need, t_need = cpu(lambda: td.cells_needed(kon, koff, ksyn, effect=1.5, capture=capture,
                                               calibration="panel", progress=False))
    _, t_prec = cpu(lambda: td.expected_precision(kon, koff, ksyn, n_cells=1000,
                                                  capture=capture, limits=False,
                                                  progress=False))
    _, t_lim = cpu(lambda: td.expected_precision(kon, koff, ksyn, n_cells=1000, capture=capture,
                                                 progress=False))
    # baseline 1: fitting one experiment of these genes
    p = rng.beta(kon, koff, size=(2000, n_genes))
    X = rng.poisson(capture[:, None] * ksyn * p)
    _, t_fit = cpu(lambda: tg.fit(X, capture=capture, interval="wald", progress=False))
    # baseline 2: power by brute-force simulation of the real test, on a subset of genes
    sub = np.flatnonzero(np.isfinite(need) & (need <= 3000))[:n_brute]
    t_brute = 0.0
    for g in sub:
        n = int(need[g])
        cap = np.resize(capture, n)
        X1 = rng.poisson(cap[:, None] * ksyn[g] * rng.beta(kon[g], koff[g], size=(n, reps)))
        X2 = rng.poisson(cap[:, None] * ksyn[g]
                         * rng.beta(1.5 * kon[g], koff[g], size=(n, reps)))
        _, t = cpu(lambda: differential(X1.astype(float), X2.astype(float), capture1=cap,
                                        capture2=cap, interval="wald", progress=False))
        t_brute += t
    t_brute_all = t_brute / max(len(sub), 1) * n_genes
    rows = [
        ("fisher_information (exact, per cell)", t_info),
        ("cells_needed, chi-square null (1.5-fold burst frequency, power 0.8)", t_need_chi2),
        ("cells_needed, calibrated null of the panel (plan / telegraph design)", t_need),
        ("expected_precision, no limit probabilities", t_prec),
        ("expected_precision, with limit probabilities", t_lim),
        ("baseline: tg.fit of one 2,000-cell experiment (Wald)", t_fit),
        (f"baseline: power by simulation, {reps} experiments per gene through the real test "
         f"(measured on {len(sub)} genes, scaled)", t_brute_all),
    ]
    return rows, t_need, t_fit, t_brute_all, float(np.median(need[np.isfinite(need)]))


def variance_section(rng, n_sets, sims, seeds):
    kon, koff, ksyn = kinetics(rng, n_sets)
    args = dict(n_cells=1000, capture=0.3)
    exact = td.eig_gradient(kon, koff, ksyn, method="exact", **args).d_log_capture
    rows = []
    for importance in (True, False):
        for baseline in ("none", "loo", "optimal"):
            for c in sims:
                est, se, t = [], [], 0.0
                for s in range(seeds):
                    g, dt = cpu(lambda: td.eig_gradient(kon, koff, ksyn, n_sim_cells=c, seed=s,
                                                        baseline=baseline,
                                                        importance=importance, **args))
                    est.append(g.d_log_capture)
                    se.append(g.d_log_capture_se)
                    t += dt
                est = np.array(est)
                rows.append((importance, baseline, c, est.std(ddof=1), float(np.mean(se)),
                             est.mean() - exact, t / seeds))
    return rows, exact


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller workloads")
    ap.add_argument("--out", default=str(HERE / "_output" / "design.md"))
    args = ap.parse_args(argv)
    numba.set_num_threads(1)
    rng = np.random.default_rng(2025)
    n_genes = 2000
    cost_rows, t_need, t_fit, t_brute, med = cost_section(
        rng, n_genes, n_brute=4 if args.quick else 12, reps=50 if args.quick else 100)
    sims = [250, 1000, 4000] if args.quick else [250, 500, 1000, 2000, 4000, 8000]
    var_rows, exact = variance_section(rng, 32, sims, seeds=8 if args.quick else 20)

    lines = ["# Experiment design", "",
             f"CPU seconds on one thread ({time.strftime('%Y-%m-%d')}, telegraph "
             f"{tg.__version__}, numba {numba.__version__}).", "",
             f"## Cost of a design over {n_genes:,} genes", "",
             "| what | CPU s |", "|---|---:|"]
    lines += [f"| {name} | {t:.2f} |" for name, t in cost_rows]
    lines += ["", f"Median cells per group needed: {med:,.0f}. Cells needed for all "
              f"{n_genes:,} genes cost {t_need / t_fit:.2f}x one fit of a 2,000-cell "
              f"experiment of them, and {t_brute / t_need:,.0f}x less than answering the same "
              "question by simulating the real test.", "",
              "## Score-function estimate of the EIG gradient", "",
              f"d EIG / d log capture over 32 prior draws at 1,000 cells and capture 0.3; exact "
              f"value {exact:.4f}. Spread over seeds (sd), mean reported standard error, bias "
              "(mean minus exact) and CPU seconds per estimate.", "",
              "| importance sampling | baseline | cells per draw | sd | mean s.e. | bias | CPU s |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for imp, base, c, sd, se, bias, t in var_rows:
        lines.append(f"| {'yes' if imp else 'no'} | {base} | {c:,} | {sd:.4f} | {se:.4f} | "
                     f"{bias:+.4f} | {t:.2f} |")
    best = {(imp, base): sd for imp, base, c, sd, se, bias, t in var_rows if c == sims[-1]}
    ratio_is = best[(False, "optimal")] / best[(True, "optimal")]
    ratio_base = best[(True, "none")] / best[(True, "optimal")]
    sel = [(c, sd) for imp, base, c, sd, se, bias, t in var_rows if imp and base == "optimal"]
    slope = np.polyfit(np.log([c for c, _ in sel]), np.log([sd for _, sd in sel]), 1)[0]
    lines += ["", f"At {sims[-1]:,} cells per draw, importance sampling cuts the spread "
              f"{ratio_is:.1f}x; the variance-minimising baseline changes it by a factor "
              f"{1 / ratio_base:.2f} relative to no baseline (the per-cell values S^T W S are "
              "nearly centred already: the spread comes from rare high counts, which the "
              f"importance sampling targets); with both, the spread falls as "
              f"cells^{slope:.2f} (-0.5 for a square-root law).", "",
              f"Headline: a design over {n_genes:,} genes (cells needed for a 1.5-fold change) "
              f"costs {t_need:.1f} CPU s, {t_need / t_fit:.2f}x one fit of a 2,000-cell "
              f"experiment and {t_brute / t_need:,.0f}x less than simulating the real test; "
              f"the spread of the score-function EIG gradient falls {ratio_is:.1f}x with "
              f"importance sampling (baseline: factor {1 / ratio_base:.2f})."]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
