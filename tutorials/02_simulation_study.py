# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. A simulation study: identifiability and gradients
#
# Before trusting burst kinetics estimated from real cells, a methods person asks two
# questions that only simulation can answer:
#
# 1. **How many cells does it take** to recover burst frequency and burst size, and does the
#    answer depend on the regime the gene is in?
# 2. **How do simulated summaries change with the rates?** `telegraph` simulates the
#    telegraph model exactly (Gillespie's direct method, compiled with Numba) and returns the
#    *path score* of every simulated cell, d log p(path) / d(rate), so any expected summary
#    has an unbiased Monte Carlo gradient (the log-derivative or likelihood-ratio trick,
#    also called REINFORCE). We check it against exact gradients.
#
# All rates are in units of the mRNA degradation rate (`k_deg = 1`): time is measured in
# mean mRNA lifetimes.
#
# This script runs as it is (`python tutorials/02_simulation_study.py`) or as a notebook
# (`jupytext --to ipynb`). Set `TELEGRAPH_TUTORIAL_SMALL=1` for a quick run on fewer cells
# and replicates (what the test suite does); figures go to `TELEGRAPH_TUTORIAL_OUTPUT`
# (default `tutorials/_output/`).

# %%
import os
import sys
import time
from pathlib import Path

import matplotlib

if "IPython" not in sys.modules:  # a plain script: draw off-screen
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import telegraph as tg

SMALL = os.environ.get("TELEGRAPH_TUTORIAL_SMALL", "0").lower() not in ("", "0", "false", "no")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("TELEGRAPH_TUTORIAL_OUTPUT", HERE / "_output"))
OUT.mkdir(parents=True, exist_ok=True)
T0 = time.perf_counter()


def save(fig, name):
    path = OUT / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"saved {path}")
    return path


print(f"telegraph {tg.__version__}; small run: {SMALL}")

# %% [markdown]
# ## Three regimes
#
# Burst frequency is `k_on` (bursts per mRNA lifetime) and burst size is `k_syn / k_off`
# (mRNAs per burst). Three genes that span what real data show:
#
# | regime | k_on | k_off | k_syn | burst size | what it looks like |
# |---|---:|---:|---:|---:|---|
# | frequent small bursts | 5 | 10 | 40 | 4 | near-Poisson, high mean |
# | rare large bursts | 0.1 | 20 | 800 | 40 | mostly zeros, long tail (negative-binomial limit) |
# | slow switching | 0.5 | 0.5 | 30 | 60 | promoter stays on or off for a whole mRNA lifetime: bimodal |

# %%
REGIMES = {
    "frequent small bursts": dict(k_on=5.0, k_off=10.0, k_syn=40.0),
    "rare large bursts": dict(k_on=0.1, k_off=20.0, k_syn=800.0),
    "slow switching": dict(k_on=0.5, k_off=0.5, k_syn=30.0),
}
for name, r in REGIMES.items():
    mean = r["k_syn"] * r["k_on"] / (r["k_on"] + r["k_off"])
    print(f"{name:24s} burst frequency {r['k_on']:5.2f}, burst size {r['k_syn'] / r['k_off']:5.1f},"
          f" mean {mean:6.2f} mRNAs per cell")

# %% [markdown]
# ## Simulating with the SSA
#
# `tg.simulate` runs Gillespie's direct method for each cell. Started with the promoter off and
# no mRNA (`initial="off"`), a cell needs a few `1 / min(k_deg, k_on + k_off)` time units to
# forget its start; `initial="stationary"` instead draws the exact stationary state and is
# stationary at every time. The simulated histogram matches the exact stationary law
# `tg.pmf` (the Poisson-Beta distribution).

# %%
n_hist = 5_000 if SMALL else 50_000
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for ax, (name, r) in zip(axes, REGIMES.items()):
    # from "off", sampled late enough to be stationary (t = 10 lifetimes > 5 / min(1, k_on + k_off))
    counts = tg.simulate(**r, n_cells=n_hist, t=10.0, seed=1)
    top = int(np.quantile(counts, 0.995)) + 1
    n = np.arange(top + 1)
    observed = np.bincount(np.minimum(counts, top + 1), minlength=top + 2)[: top + 1] / counts.size
    ax.bar(n, observed, width=1.0, color="0.75", label=f"SSA, {n_hist:,} cells")
    ax.plot(n, tg.pmf(n, **r), "C3-", lw=1.5, label="exact tg.pmf")
    ax.set_title(name)
    ax.set_xlabel("mRNA count n")
axes[0].set_ylabel("P(n)")
axes[0].legend()
fig.tight_layout()
save(fig, "02_histograms.png")

# %% [markdown]
# How long until stationary? The mean of cells started "off" approaches the stationary mean
# `k_syn k_on / (k_deg (k_on + k_off))`; the slow-switching gene takes longest, because its
# promoter relaxes at rate `k_on + k_off = 1`, no faster than its mRNA.

# %%
times = np.array([0.25, 0.5, 1, 2, 4, 8])
fig, ax = plt.subplots(figsize=(5, 3.6))
for i, (name, r) in enumerate(REGIMES.items()):
    course = tg.simulate(**r, n_cells=2_000, t=times, seed=2)   # shape (n_times, n_cells)
    stat = r["k_syn"] * r["k_on"] / (r["k_on"] + r["k_off"])
    ax.plot(times, course.mean(axis=1) / stat, "o-", color=f"C{i}", label=name)
ax.axhline(1.0, color="k", lw=0.8)
ax.set_xscale("log")
# ticks at the sampled times only (log-scale minor labels collide)
ax.set_xticks(times, [f"{t:g}" for t in times])
ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
ax.set_xlabel("time since promoter off, no mRNA (mRNA lifetimes)")
ax.set_ylabel("mean count / stationary mean")
ax.legend(fontsize=8)
fig.tight_layout()
save(fig, "02_relaxation.png")

# %% [markdown]
# ## Identifiability: how many cells?
#
# For each regime and number of cells we simulate many replicate genes with the same kinetics
# (`tg.simulate_anndata` with the rates given per gene) and fit each one with `tg.fit`. A gene is
# *recovered* when the estimate lies within 20% of the truth. Point estimates are all we need
# here, so the fits use the fast Wald intervals.
#
# `tg.fit` also reports a `regime`: where the likelihood is flat towards a limit it says so
# instead of returning an arbitrary point. In the negative-binomial (`bursty`) limit, burst
# frequency and burst size are still identified and are reported; in the `bimodal` limit only
# the fraction of time on and `k_syn` are, so burst frequency and size come back as limits
# (0 and infinity) and count as not recovered.

# %%
cell_grid = [100, 300, 1000, 3000] if SMALL else [100, 300, 1000, 3000, 10000]
n_rep = 16 if SMALL else 100
rows = []
for name, r in REGIMES.items():
    for n_cells in cell_grid:
        study = tg.simulate_anndata(
            n_cells, n_rep, k_on=np.full(n_rep, r["k_on"]), k_off=np.full(n_rep, r["k_off"]),
            k_syn=np.full(n_rep, r["k_syn"]), capture=1.0, seed=n_cells)
        res = tg.fit(study.X, interval="wald", progress=False)
        bf_err = res["burst_frequency"] / r["k_on"] - 1
        bs_err = res["burst_size"] / (r["k_syn"] / r["k_off"]) - 1
        rows.append({
            "regime": name, "cells": n_cells,
            "burst frequency within 20%": np.mean(np.abs(bf_err) < 0.2),
            "burst size within 20%": np.mean(np.abs(bs_err) < 0.2),
            "both within 20%": np.mean((np.abs(bf_err) < 0.2) & (np.abs(bs_err) < 0.2)),
            "median |error| burst frequency": np.nanmedian(np.abs(bf_err)),
            "median |error| burst size": np.nanmedian(np.abs(bs_err)),
            "fitted regimes": ", ".join(f"{k} {v}" for k, v in
                                        res["regime"].value_counts().items() if v),
        })
ident = pd.DataFrame(rows)
pd.set_option("display.width", 200)
print(ident.round(2).to_string(index=False))

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for ax, col in zip(axes, ["burst frequency within 20%", "burst size within 20%"]):
    for i, name in enumerate(REGIMES):
        d = ident[ident["regime"] == name]
        ax.plot(d["cells"], d[col], "o-", color=f"C{i}", label=name)
    ax.axhline(0.8, color="k", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("cells")
    ax.set_title(col)
axes[0].set_ylabel(f"fraction of {n_rep} replicate genes")
axes[0].legend(fontsize=8)
fig.tight_layout()
save(fig, "02_identifiability.png")

# %% [markdown]
# The smallest number of cells (on this grid) at which at least 80% of replicate fits recover
# both burst frequency and burst size within 20%:

# %%
for name in REGIMES:
    d = ident[(ident["regime"] == name) & (ident["both within 20%"] >= 0.8)]
    need = f"{int(d['cells'].min()):,} cells" if len(d) else f"more than {cell_grid[-1]:,} cells"
    print(f"{name:24s} {need}")

# %% [markdown]
# What the table shows (the exact numbers move a little from run to run of the full setting):
#
# - **Frequent small bursts are the hardest.** With `k_on` and `k_off` both large the counts
#   are close to negative binomial (and not far from Poisson): burst frequency and burst size
#   trade off along a ridge of the likelihood, and with few cells `tg.fit` says so by flagging
#   most of these genes `bursty`, the limit where only frequency and size (not `k_off` and
#   `k_syn` separately) are identified. Thousands of cells are needed for 20% precision on
#   both.
# - **Rare large bursts** are recovered with about a thousand cells, even though most cells
#   show no mRNA at all: the sizes of the few bursts seen carry the information.
# - **Slow switching is the easiest**: the promoter stays on or off for a whole mRNA
#   lifetime, the histogram is bimodal, and both modes pin the rates down with a few hundred
#   cells.
#
# Capture efficiency (tutorial 4) divides the information further: at a capture of 0.3 every
# count above is thinned to 30% of its molecules.
#
# ## The log-derivative trick at work
#
# For a simulated path with `N_j` firings of reaction `j`, the derivative of its log-density
# with respect to a mass-action rate constant is
# `N_j / k_j - integral of h_j(x_t) dt`, e.g. `N_on / k_on - (time spent off)`. These *path
# scores* accumulate inside the simulation loop at no extra cost per event, and for any
# summary `f` of the counts
#
# `d E[f(n)] / dk = E[(f(n) - baseline) * score]`.
#
# `tg.score_gradient(f, ...)` runs the simulation with scores and returns that estimate with
# its Monte Carlo standard error. With `initial="stationary"` the score of the initial
# stationary draw is included, so stationary quantities can use a short path (the score's
# variance grows with the path's length).
#
# For stationary summaries there is an independent, exact answer from the stationary law:
#
# `d E[f(n)] / dk = sum_n f(n) P(n) d log P(n) / dk`,
#
# with `P(n) = tg.pmf(n, ...)` and the exact score `tg.score(n, ...)` (from the latent
# promoter activity, by Fisher's identity). We compare the two for three summaries: the mean,
# the fraction of zeros (the "dropout" rate), and the mean of `log(1 + n)` (what
# `scanpy.pp.log1p` averages).

# %%
SUMMARIES = {
    "E[n]": lambda n: n.astype(float),
    "P(n = 0)": lambda n: (n == 0).astype(float),
    "E[log(1 + n)]": lambda n: np.log1p(n),
}
RATES = ["k_on", "k_off", "k_syn", "k_deg"]


def exact_gradient(f, k_on, k_off, k_syn, k_deg=1.0):
    """sum_n f(n) P(n) score(n), summed until the remaining probability is < 1e-12."""
    n = np.arange(0, 200)
    while tg.pmf(n, k_on, k_off, k_syn, k_deg).sum() < 1 - 1e-12:
        n = np.arange(0, 2 * n.size)
    p = tg.pmf(n, k_on, k_off, k_syn, k_deg)
    s = tg.score(n, k_on, k_off, k_syn, k_deg)          # shape (len(n), 4)
    return (f(n)[:, None] * p[:, None] * s).sum(axis=0)


n_grad = 20_000 if SMALL else 200_000
grad_rows = []
for name, r in REGIMES.items():
    for fname, f in SUMMARIES.items():
        mc = tg.score_gradient(f, r["k_on"], r["k_off"], r["k_syn"], n_cells=n_grad, t=0.05,
                               initial="stationary", seed=3)
        ex = exact_gradient(f, r["k_on"], r["k_off"], r["k_syn"])
        for j, rate in enumerate(RATES):
            grad_rows.append({"regime": name, "summary": fname, "rate": rate,
                              "exact": ex[j], "simulated": mc.gradient[j],
                              "stderr": mc.stderr[j]})
grads = pd.DataFrame(grad_rows)
grads["z"] = (grads["simulated"] - grads["exact"]) / grads["stderr"]
print(grads.round(4).to_string(index=False))

# %% [markdown]
# The mean also has an analytic gradient, a check of the check: for
# `E[n] = k_syn k_on / (k_deg (k_on + k_off))`, `d E[n] / dk_syn = k_on / (k_deg (k_on + k_off))`
# and `d E[n] / dk_deg = -E[n] / k_deg`.

# %%
for name, r in REGIMES.items():
    ex = exact_gradient(SUMMARIES["E[n]"], r["k_on"], r["k_off"], r["k_syn"])
    mean = r["k_syn"] * r["k_on"] / (r["k_on"] + r["k_off"])
    analytic = np.array([r["k_syn"] * r["k_off"] / (r["k_on"] + r["k_off"]) ** 2,
                         -r["k_syn"] * r["k_on"] / (r["k_on"] + r["k_off"]) ** 2,
                         r["k_on"] / (r["k_on"] + r["k_off"]), -mean])
    print(f"{name:24s} max |sum f P score - analytic| = {np.max(np.abs(ex - analytic)):.1e}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.3, 1]})
ax = axes[0]
markers = dict(zip(SUMMARIES, "osD"))
for i, name in enumerate(REGIMES):
    for fname in SUMMARIES:
        d = grads[(grads["regime"] == name) & (grads["summary"] == fname)]
        ax.errorbar(d["exact"], d["simulated"], yerr=2 * d["stderr"], fmt=markers[fname],
                    color=f"C{i}", ms=5, capsize=2, lw=1,
                    label=f"{name}, {fname}")
lim = np.abs(grads[["exact", "simulated"]].to_numpy()).max() * 1.5
ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.6)
ax.set_xscale("symlog", linthresh=1e-3)
ax.set_yscale("symlog", linthresh=1e-3)
ax.set_xlabel("exact gradient  sum_n f(n) P(n) score(n)")
ax.set_ylabel("simulated (score_gradient) +- 2 s.e.")
ax.set_title(f"d E[f(n)] / d rate, {n_grad:,} cells per point")
ax.legend(fontsize=6, ncol=1, loc="upper left")
ax = axes[1]
for j, rate in enumerate(RATES):
    z = grads.loc[grads["rate"] == rate, "z"]
    ax.plot(np.full(z.size, j) + np.linspace(-0.25, 0.25, z.size), z, "o", color="C0", ms=4)
ax.axhspan(-2, 2, color="0.9")
ax.axhline(0, color="k", lw=0.6)
ax.set_xticks(range(4), RATES)
ax.set_ylabel("(simulated - exact) / standard error")
ax.set_title("errors in standard errors")
fig.tight_layout()
save(fig, "02_gradients.png")
print(f"{np.mean(np.abs(grads['z']) < 2):.0%} of {len(grads)} gradients within 2 standard "
      "errors of the exact value (about 95% expected)")

# %% [markdown]
# ## Beyond the stationary law: a time course
#
# The stationary score of `tg.score` covers snapshots only. The path score needs no closed
# form: here is `d E[n(t)] / dk_on` after switching a gene on from the off state (promoter
# off, no mRNA at t = 0), against the derivative of the analytic transient mean
#
# `E[n(t)] = k_syn f [(1 - e^{-k_deg t}) / k_deg - (e^{-c t} - e^{-k_deg t}) / (k_deg - c)]`,
# with `c = k_on + k_off` and `f = k_on / c`,
#
# differentiated exactly by the complex-step method.

# %%
def transient_mean(k_on, k_off, k_syn, k_deg, t):
    c = k_on + k_off
    f = k_on / c
    return k_syn * f * ((1 - np.exp(-k_deg * t)) / k_deg
                        - (np.exp(-c * t) - np.exp(-k_deg * t)) / (k_deg - c))


def transient_gradient(k_on, k_off, k_syn, k_deg, t, h=1e-20):
    """Exact derivatives by complex step: Im f(x + ih) / h, no cancellation error."""
    base = np.array([k_on, k_off, k_syn, k_deg], dtype=complex)
    out = []
    for j in range(4):
        x = base.copy()
        x[j] += 1j * h
        out.append(np.imag(transient_mean(*x, t)) / h)
    return np.array(out).T


r = REGIMES["rare large bursts"]
t_course = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
n_tc = 20_000 if SMALL else 200_000
sim = [tg.score_gradient(lambda n: n.astype(float), r["k_on"], r["k_off"], r["k_syn"],
                         n_cells=n_tc, t=float(t), initial="off", seed=4) for t in t_course]
fine = np.geomspace(0.1, 10, 200)
exact_tc = transient_gradient(r["k_on"], r["k_off"], r["k_syn"], 1.0, fine)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for ax, j in zip(axes, [0, 2]):
    ax.plot(fine, exact_tc[:, j], "k-", lw=1, label="analytic (complex step)")
    ax.errorbar(t_course, [g.gradient[j] for g in sim], yerr=[2 * g.stderr[j] for g in sim],
                fmt="o", color="C3", capsize=3, label=f"score_gradient, {n_tc:,} cells, +- 2 s.e.")
    ax.set_xscale("log")
    ax.set_xlabel("time (mRNA lifetimes)")
    ax.set_ylabel(f"d E[n(t)] / d{RATES[j]}  (molecules x time)")
    ax.set_title(f"d E[n(t)] / d{RATES[j]}   ({', '.join(f'{k}={v:g}' for k, v in r.items())})",
                 fontsize=9)
axes[0].legend(fontsize=8)
fig.tight_layout()
save(fig, "02_transient_gradient.png")
z_tc = np.array([(g.gradient - transient_gradient(r["k_on"], r["k_off"], r["k_syn"], 1.0, t))
                 / g.stderr for g, t in zip(sim, t_course)])
print(f"time course: {np.mean(np.abs(z_tc) < 2):.0%} of {z_tc.size} gradients within 2 s.e.")

# %% [markdown]
# Two remarks for simulation studies:
#
# - the standard error falls as `1 / sqrt(cells)` but grows with the length of the path, so
#   keep paths short: for stationary quantities start from `initial="stationary"` and sample
#   soon after;
# - the baseline (`baseline="loo"` by default, the leave-one-out mean of `f`) changes only the
#   variance, never the expectation.

# %%
print(f"done in {time.perf_counter() - T0:.0f} s")
