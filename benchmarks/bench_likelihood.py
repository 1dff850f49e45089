"""Benchmark: one gene's stationary log-likelihood plus gradient, telegraph vs the txburst method.

    python benchmarks/bench_likelihood.py [--quick]

For a few parameter sets (bursty, moderate, high expression) counts of 1,000
and 10,000 cells are drawn from the model (p ~ Beta(a, b), n ~ Poisson(lam p),
numpy, fixed seeds). Two ways to get log L = sum_cells log P(n_c) and its
gradient with respect to (a, b, lam) (rates in units of k_deg) are timed in
the same run:

* telegraph: ``telegraph.stationary.histogram_loglik(values, weights, a, b, lam)``
  (exact gradient from the same pass). The counts -> histogram step
  (np.unique) is setup done once per gene in a fit and is NOT included in
  the per-evaluation time; its one-off cost is reported separately.
* txburst method (Larsson et al. 2019, txburst/txburstML.py): P(n) =
  int_0^1 Pois(n; lam p) Beta(p; a, b) dp mapped to t in [-1, 1] and computed
  with 50-node Gauss-Jacobi quadrature (scipy.special.roots_jacobi, weight
  (1-t)^(b-1) (1+t)^(a-1), nodes recomputed per call, Poisson pmf from
  scipy.stats as txburst does), evaluated per cell; gradient by forward
  finite differences (3 extra evaluations, relative step sqrt(eps), as
  scipy's L-BFGS-B does when no gradient is given). txburst adds 1e-10 to P
  inside the log; we leave that out so that the error shown is the
  quadrature's own.

Times are CPU time (time.process_time) per evaluation of value + gradient,
best of several repeats of a loop lasting >= 0.2 s (>= 0.05 s with --quick).
Errors are against mpmath (tests/reference.py: positive Kummer series at 20
digits, gradient by mpmath.diff) per unique count; the gradient error is
max_j |theta_j (g_j - g_ref,j)| / max_k |theta_k g_ref,k| (log-parameter
units, relative to the gradient's size; see tests/test_stationary.py).

Writes the markdown table to benchmarks/_output/likelihood.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _one_thread  # noqa: E402,F401  (one-thread BLAS pools: before numpy)

import numpy as np  # noqa: E402
from scipy.special import betaln, roots_jacobi  # noqa: E402
from scipy.stats import poisson  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import reference as R  # noqa: E402  (slow independent references, no telegraph imports)
from telegraph.stationary import histogram_loglik, logpmf_ab  # noqa: E402

CASES = [  # name, a = k_on/k_deg, b = k_off/k_deg, lam = k_syn/k_deg
    ("bursty (a=0.1, b=5, lam=200)", 0.1, 5.0, 200.0),
    ("moderate (a=1, b=2, lam=30)", 1.0, 2.0, 30.0),
    ("high expression (a=5, b=1, lam=500)", 5.0, 1.0, 500.0),
    ("very high expression (a=2, b=0.5, lam=3000)", 2.0, 0.5, 3000.0),  # not with --quick
]
CELLS = [1_000, 10_000]
N_NODES = 50


# --------------------------------------------------------------------------
# the txburst method
# --------------------------------------------------------------------------

def txburst_logp_cells(vals, a, b, lam):
    """log P(n) per cell by 50-node Gauss-Jacobi quadrature (txburst's dBP, no 1e-10)."""
    at = np.asarray(vals, dtype=float).reshape(-1, 1)
    x, w = roots_jacobi(N_NODES, b - 1.0, a - 1.0)
    gs = np.sum(w * poisson.pmf(at, lam * (1.0 + x) / 2.0), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(gs) - betaln(a, b) - (a + b - 1.0) * math.log(2.0)


def txburst_loglik(vals, a, b, lam):
    return float(np.sum(txburst_logp_cells(vals, a, b, lam)))


def txburst_loglik_grad(vals, a, b, lam):
    """Value and forward-difference gradient: 4 evaluations."""
    theta = np.array([a, b, lam])
    f0 = txburst_loglik(vals, *theta)
    g = np.empty(3)
    for j in range(3):
        h = math.sqrt(np.finfo(float).eps) * max(1.0, abs(theta[j]))
        t = theta.copy()
        t[j] += h
        g[j] = (txburst_loglik(vals, *t) - f0) / (t[j] - theta[j])
    return f0, g


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------

def cpu_time_per_call(fn, min_time, repeats):
    fn()  # warm-up (JIT cache load, scipy caches)
    best = math.inf
    for _ in range(repeats):
        n = 0
        t0 = time.process_time()
        while True:
            fn()
            n += 1
            dt = time.process_time() - t0
            if dt >= min_time:
                break
        best = min(best, dt / n)
    return best


def grad_error(g, ref, theta):
    return float(np.max(np.abs((g - ref) * theta)) / np.max(np.abs(ref * theta)))


def fmt_time(s):
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="shorter timing loops and no very-high-expression case (smoke runs)")
    args = ap.parse_args(argv)
    min_time, repeats = (0.05, 3) if args.quick else (0.2, 5)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    rows = []
    cases = CASES[:3] if args.quick else CASES
    for ci, (name, a, b, lam) in enumerate(cases):
        for cells in CELLS:
            rng = np.random.default_rng(1000 * ci + cells)
            counts = rng.poisson(lam * rng.beta(a, b, cells))
            values, weights = np.unique(counts, return_counts=True)
            t_unique = cpu_time_per_call(lambda: np.unique(counts, return_counts=True),
                                         min_time, repeats)
            weights = weights.astype(float)
            theta = np.array([a, b, lam])

            t_ours = cpu_time_per_call(lambda: histogram_loglik(values, weights, a, b, lam),
                                       min_time, repeats)
            t_tx = cpu_time_per_call(lambda: txburst_loglik_grad(counts, a, b, lam),
                                     min_time, repeats)
            ll_o, g_o = histogram_loglik(values, weights, a, b, lam)
            ll_t, g_t = txburst_loglik_grad(counts, a, b, lam)

            # mpmath references per unique count
            ref_lp = np.array([float(R.mp_logpmf(int(v), a, b, lam)) for v in values])
            ref_sc = np.array([[float(s) for s in R.mp_score_ab(int(v), a, b, lam, dps=15)]
                               for v in values])
            ref_ll = float(np.sum(weights * ref_lp))
            ref_g = (weights[:, None] * ref_sc).sum(0)
            lp_o = logpmf_ab(values, a, b, lam)
            lp_t = txburst_logp_cells(values, a, b, lam)
            rows.append(dict(
                case=name, cells=cells, unique=len(values), t_unique=t_unique,
                t_ours=t_ours, t_tx=t_tx, ratio=t_tx / t_ours,
                lp_err_o=float(np.max(np.abs(lp_o - ref_lp))),
                lp_err_t=float(np.max(np.abs(lp_t - ref_lp))),
                ll_err_o=abs(ll_o - ref_ll), ll_err_t=abs(ll_t - ref_ll),
                g_err_o=grad_error(g_o, ref_g, theta), g_err_t=grad_error(g_t, ref_g, theta),
                ref_ll=ref_ll,
            ))
            r = rows[-1]
            print(f"{name:38s} {cells:6d} cells: ours {fmt_time(r['t_ours'])}, "
                  f"txburst {fmt_time(r['t_tx'])}, ratio {r['ratio']:.0f}x", flush=True)

    lines = [
        "# One gene: log-likelihood + gradient, telegraph vs txburst method",
        "",
        f"CPU time per evaluation (time.process_time, best of {repeats}); "
        f"{platform.machine()}, {os.cpu_count()} cores (load average {load:.1f} at start), "
        f"Python {platform.python_version()}, numpy {np.__version__}. "
        "Histogram (np.unique) built once per gene, not in 'ours'; its one-off cost is "
        "in the 'np.unique' column. txburst: 50-node Gauss-Jacobi per cell + 3 forward "
        "differences. Errors vs mpmath: max |Δ log P| over the observed unique counts, "
        "|Δ log L| of the total, and the gradient's relative error "
        "(max_j |θ_j Δg_j| / max_k |θ_k g_k|).",
        "",
        "| case | cells | unique n | ours / eval | np.unique (once) | txburst / eval | speed ratio "
        "| max abs err log P: ours | txburst | abs err log L: ours | txburst "
        "| grad rel err: ours | txburst |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['cells']} | {r['unique']} | {fmt_time(r['t_ours'])} "
            f"| {fmt_time(r['t_unique'])} | {fmt_time(r['t_tx'])} | {r['ratio']:.0f}× "
            f"| {r['lp_err_o']:.1e} | {r['lp_err_t']:.1e} | {r['ll_err_o']:.1e} "
            f"| {r['ll_err_t']:.1e} | {r['g_err_o']:.1e} | {r['g_err_t']:.1e} |")
    lines.append("")
    # fixed cost of one call (validation, np.unique of the capture vector, kernel launch):
    # a one-value histogram, where the likelihood work itself is a few microseconds
    one = cpu_time_per_call(lambda: histogram_loglik(np.array([3]), np.array([1.0]), 1.0, 2.0, 30.0),
                            min_time, repeats)
    lines.append(f"Fixed cost of one `histogram_loglik` call (one-value histogram, a=1, b=2, "
                 f"lam=30): {fmt_time(one)}.")
    lines.append("")
    ratios = [r["ratio"] for r in rows]
    lines.append(f"Speed ratio (txburst / ours): min {min(ratios):.0f}×, max {max(ratios):.0f}×.")
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    out = ROOT / "benchmarks" / "_output"
    out.mkdir(parents=True, exist_ok=True)
    (out / "likelihood.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
