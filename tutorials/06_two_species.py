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
# # 6. Two species: unspliced and spliced counts, degradation identified
#
# Every velocyto, STARsolo or kb-python run gives two count layers per gene,
# `adata.layers["unspliced"]` and `adata.layers["spliced"]`. A single snapshot of one
# species identifies rates only in units of its degradation rate; two species carry
# more: unspliced molecules are spliced at rate `k_splice` and spliced ones degrade at
# `k_deg`, so the *ratio* `k_deg / k_splice` is identified, and the nascent RNA reacts
# to promoter switching on the splicing time scale.
#
# The model (docs/maths.md, "Two species: unspliced and spliced"): the promoter switches
# off -> on at `k_on` and back at `k_off`, makes unspliced molecules at `k_syn` while
# on, each is spliced at `k_splice`, each spliced molecule degrades at `k_deg`; each
# cell's counts are binomial samples of its molecules (capture). `tg.tl.fit` with
# `unspliced_layer=` maximises the exact joint likelihood of the (unspliced, spliced)
# pairs, with its exact gradient, and reports every rate in units of `k_splice`, with
# profile-likelihood intervals -- `k_deg` included.
#
# This tutorial
#
# 1. makes a velocyto-style AnnData with known kinetics and runs the usual scanpy
#    preprocessing on it (the raw layers stay untouched),
# 2. fits both layers with `tg.tl.fit(adata, layer="spliced", unspliced_layer="unspliced")`,
# 3. compares burst frequency, burst size and `k_deg / k_splice` with the truth, and
# 4. shows a gene's joint histogram against the fitted law.
#
# Run as a script (`python tutorials/06_two_species.py`; `TELEGRAPH_TUTORIAL_SMALL=1` for
# a quick run) or as a notebook (`jupytext --to ipynb`). Figures go to
# `TELEGRAPH_TUTORIAL_OUTPUT` (default `tutorials/_output/`).

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
import scanpy as sc

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


N_CELLS = 300 if SMALL else 1500
N_GENES = 4 if SMALL else 40
print(f"telegraph {tg.__version__}; small run: {SMALL}; {N_CELLS} cells x {N_GENES} genes")

# %% [markdown]
# ## A velocyto-style AnnData
#
# `tg.simulate_anndata(..., splicing=...)` simulates every gene's promoter, unspliced
# and spliced molecules exactly (Gillespie), thins the counts by a per-cell capture
# efficiency (`obs["capture"]`), and stores the layers the way velocyto does: `X` and
# `layers["spliced"]` hold the spliced counts, `layers["unspliced"]` the unspliced ones.
# The truth is in `var["true_*"]` (per unit time; here time is in spliced-mRNA
# lifetimes, `k_deg = 1`). We draw moderate kinetics per gene: burst frequency
# 0.2-2, `k_off` 0.5-5, burst size 2-15 and splicing 1-5 times faster than
# degradation (`splicing=True` would draw `k_splice / k_deg` from a wider prior).

# %%
rng = np.random.default_rng(5)


def log_uniform(lo, hi):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), N_GENES))


k_off = log_uniform(0.5, 5.0)
adata = tg.simulate_anndata(N_CELLS, N_GENES, k_on=log_uniform(0.2, 2.0), k_off=k_off,
                            k_syn=log_uniform(2.0, 15.0) * k_off, k_deg=1.0,
                            splicing=log_uniform(1.0, 5.0), seed=5)
print(adata)
adata.var.filter(like="true_").head()

# %% [markdown]
# ## scanpy preprocessing
#
# The usual steps work on `X` (normalised, log-transformed counts for clustering and
# embeddings); the fit reads the raw count layers, which preprocessing leaves alone.
# Filter genes with too few counts first (on the raw spliced layer).

# %%
sc.pp.filter_genes(adata, min_counts=20)
adata.layers["counts"] = adata.X.copy()
sc.pp.normalize_total(adata)
sc.pp.log1p(adata)
print(f"{adata.n_vars} genes kept; X is log-normalised, layers['spliced'] and "
      "layers['unspliced'] are raw counts")

# %% [markdown]
# ## Fit both layers
#
# Capture is given per cell (an `obs` column), as for one species; here it applies to
# both species (`unspliced_factor=` sets a different relative capture of unspliced
# molecules). Every rate comes out in units of `k_splice`. The results land in
# `adata.var["telegraph_*"]` and `tg.get.kinetics_df` reads them back.

# %%
t = time.perf_counter()
tg.tl.fit(adata, layer="spliced", unspliced_layer="unspliced", capture="capture")
print(f"fitted {adata.n_vars} genes in {time.perf_counter() - t:.1f} s")
kin = tg.get.kinetics_df(adata)
kin[["k_on", "k_off", "k_syn", "k_deg", "k_deg_ci_low", "k_deg_ci_high", "burst_size",
     "regime", "k_deg_flag", "gof_pval"]].round(3)

# %% [markdown]
# ## Kinetics with degradation
#
# The truth in units of `k_splice`: burst frequency `k_on / k_splice`, burst size
# `k_syn / k_off` (molecules per burst, no unit) and `k_deg / k_splice`. The means of the
# two layers pin `k_deg / k_splice` tightly; burst frequency and burst size come from
# the shape of the joint law. Error bars are the 95% profile intervals.

# %%
var = adata.var
truth = {"burst_frequency": var["true_k_on"] / var["true_k_splice"],
         "burst_size": var["true_burst_size"],
         "k_deg": var["true_k_deg"] / var["true_k_splice"]}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
for ax, q in zip(axes, truth):
    t_ = truth[q].to_numpy()
    est = kin[q].to_numpy()
    lo = kin[f"{q}_ci_low"].to_numpy()
    hi = kin[f"{q}_ci_high"].to_numpy()
    ok = np.isfinite(est)
    ax.errorbar(t_[ok], est[ok], yerr=[est[ok] - lo[ok], np.minimum(hi[ok], 1e6) - est[ok]],
                fmt="o", ms=4, lw=0.8, capsize=2)
    lim = [min(t_.min(), np.nanmin(est)) / 1.5, max(t_.max(), np.nanmax(est)) * 1.5]
    ax.plot(lim, lim, "k:", lw=1)
    ax.set(xscale="log", yscale="log", xlim=lim, ylim=lim, xlabel=f"true {q}",
           ylabel="estimate (95% CI)")
    cov = np.mean((lo <= t_) & (t_ <= hi))
    ax.set_title(f"{q}: CI covers truth in {cov:.0%}", fontsize="medium")
fig.suptitle("two-species fit, rates in units of k_splice")
save(fig, "two_species_recovery.png")

# %% [markdown]
# `regime` says what the data identify: `telegraph` (every rate), `bursty` (the bursty
# limit `k_off -> infinity` is within the confidence set: burst frequency, burst size
# and `k_deg` only -- the boundary model that Monod fits), `poisson` (constitutive:
# means and `k_deg`). `k_deg_flag` says whether `k_deg / k_splice` is bounded on both
# sides. Burst frequency against burst size, coloured by regime:

# %%
ax = tg.pl.kinetics(adata, show=False)
save(ax.figure, "two_species_kinetics.png")

# %% [markdown]
# ## One gene: the joint histogram against the fitted law
#
# `tg.pl.distribution` after a two-species fit draws the observed (unspliced, spliced)
# histogram with the fitted joint law's contours (averaged over the cells' capture),
# and both marginals with the fitted marginal laws.

# %%
gene = kin["mean"].idxmax()
axes = tg.pl.distribution(adata, gene, show=False)
save(axes[0].figure, "two_species_distribution.png")

# %% [markdown]
# ## Half-lives
#
# With a measured splicing rate (or a measured spliced-mRNA half-life) for one gene the
# ratios become absolute: the spliced half-life is `ln 2 / k_deg` in units of
# `1 / k_splice`. Genes whose spliced mRNA is stable relative to splicing have small
# `k_deg / k_splice`:

# %%
half = (np.log(2) / kin["k_deg"]).rename("spliced half-life (1/k_splice)")
half.sort_values().round(2).to_frame()

# %%
print(f"done in {time.perf_counter() - T0:.0f} s")
