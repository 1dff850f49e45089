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
# # 1. Quickstart: burst kinetics in a scanpy pipeline
#
# `telegraph` estimates, for every gene, **how often it bursts** (burst frequency, `k_on`) and
# **how many mRNAs a burst makes** (burst size, `k_syn / k_off`), from the UMI counts of a
# single-cell experiment. This tutorial runs the whole job on the bundled example:
#
# 1. a scanpy pipeline that keeps the raw counts in a layer,
# 2. `tg.tl.fit`: kinetics, intervals, regime and goodness-of-fit for every gene,
# 3. a look at the results and plots,
# 4. `tg.tl.differential_bursting`: which genes burst differently in two groups of cells.
#
# The example (`tg.datasets.example()`) is simulated from known kinetics, so we can check the
# answers. All rates are in units of the mRNA degradation rate (`k_deg = 1`): burst frequency
# is in bursts per mean mRNA lifetime.
#
# Run as a script (`python tutorials/01_quickstart.py`; `TELEGRAPH_TUTORIAL_SMALL=1` for a
# quick run on fewer cells and genes) or as a notebook (`jupytext --to ipynb
# tutorials/01_quickstart.py`). Figures go to `TELEGRAPH_TUTORIAL_OUTPUT` (default
# `tutorials/_output/`).

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
pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 12)


def save(fig, name):
    path = OUT / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"saved {path}")
    return path


print(f"telegraph {tg.__version__}, scanpy {sc.__version__}; small run: {SMALL}")

# %% [markdown]
# ## The data
#
# 2,000 cells x 200 genes of UMI counts (a smaller matrix in the quick run). Each cell has a
# capture efficiency (`obs["capture"]`, the fraction of its molecules that were counted, here
# about 0.3) and belongs to group A or B (`obs["group"]`); one gene in five bursts
# differently in group B, three-fold more often or three-fold larger. The truth is in `var`.

# %%
if SMALL:
    adata = tg.datasets.example(seed=0, n_cells=600, n_genes=40)
else:
    adata = tg.datasets.example(seed=0)
print(adata)
print(adata.var[["true_burst_frequency", "true_burst_size", "differential"]].head())

# %% [markdown]
# ## A scanpy pipeline
#
# Kinetics are estimated from raw integer counts, so keep them in a layer before
# normalising; everything else in a scanpy workflow goes on as usual.

# %%
adata.layers["counts"] = adata.X.copy()
sc.pp.normalize_total(adata)
sc.pp.log1p(adata)
sc.pp.pca(adata, n_comps=min(20, adata.n_vars - 1))

# %% [markdown]
# ## Fit
#
# `tg.tl.fit` fits the two-state model to every gene, from the `counts` layer, with each
# cell's capture efficiency taken from the `capture` column of `obs` (see tutorial 4 for what
# capture does and for `capture="total"`). With capture given, `k_syn` and burst size are in
# molecules in the cell, not counted molecules.

# %%
t = time.perf_counter()
tg.tl.fit(adata, layer="counts", capture="capture")
print(f"fitted {adata.n_vars} genes x {adata.n_obs} cells in {time.perf_counter() - t:.1f} s")
print(adata.uns["telegraph"])

# %% [markdown]
# ## What `adata.var` now holds
#
# One column per result, prefixed `telegraph_`: the rates and the two bursting quantities,
# their 95% profile-likelihood intervals (`_ci_low`, `_ci_high`; infinite where the data leave
# a side open), the log-likelihood, a `regime`, the quantities the regime `identified`, a
# convergence flag and a goodness-of-fit p-value.

# %%
cols = ["telegraph_burst_frequency", "telegraph_burst_frequency_ci_low",
        "telegraph_burst_frequency_ci_high", "telegraph_burst_size",
        "telegraph_burst_size_ci_low", "telegraph_burst_size_ci_high", "telegraph_regime",
        "telegraph_gof_pval"]
print(adata.var[cols].head(8).round(3))
print([c for c in adata.var.columns if c.startswith("telegraph_")])

# %% [markdown]
# **Regimes.** The full model has three parameters; some genes' counts pin down fewer. Where
# the likelihood keeps rising towards a limit, `telegraph` reports the limit instead of an
# arbitrary point on the edge of a search box:
#
# | regime | meaning | identified |
# |---|---|---|
# | `telegraph` | all three rates | k_on, k_off, k_syn, burst frequency, burst size |
# | `bursty` | negative-binomial limit: short bursts (k_off, k_syn large at a fixed ratio) | burst frequency, burst size |
# | `bimodal` | slow switching: each cell off or fully on | fraction of time on, k_syn |
# | `poisson` | no detectable burstiness | mean expression |
# | `too_few_cells`, `all_zero` | not enough data | nothing |

# %%
print(adata.var["telegraph_regime"].value_counts())
print(adata.var.groupby("telegraph_regime", observed=True)["telegraph_identified"].first())

# %% [markdown]
# **Goodness of fit.** `gof_pval` tests the fitted distribution against the observed counts
# (a Pearson chi-square with a null distribution calibrated for the fitted parameters, so the
# p-values are uniform when the model is right: about 5% fall below 0.05). Genes whose
# kinetics differ between groups A and B are a mixture of two telegraph laws when all cells
# are fitted together, but a three-fold change in one parameter makes a mixture that is
# itself close to a telegraph law: the goodness-of-fit test flags few of them. Finding them
# takes the explicit two-group test below.

# %%
gof = adata.var.groupby(adata.var["differential"].astype(str))["telegraph_gof_pval"]
print(pd.DataFrame({"genes": gof.size(), "gof p < 0.05": gof.apply(lambda p: (p < 0.05).sum())}))

# %% [markdown]
# **Against the truth.** For the genes with the same kinetics in both groups, the estimates
# and their intervals against the values the data were simulated from:

# %%
same = (adata.var["differential"] == "none") & adata.var["telegraph_regime"].isin(
    ["telegraph", "bursty"])
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
for ax, q in zip(axes, ["burst_frequency", "burst_size"]):
    v = adata.var[same]
    est = v[f"telegraph_{q}"]
    lo = np.minimum(v[f"telegraph_{q}_ci_low"], est)
    hi = np.where(np.isfinite(v[f"telegraph_{q}_ci_high"]), v[f"telegraph_{q}_ci_high"],
                  est * 100)
    ax.errorbar(v[f"true_{q}"], est, yerr=[est - lo, hi - est], fmt="o", ms=3, lw=0.6,
                alpha=0.7)
    lim = [v[f"true_{q}"].min() / 3, v[f"true_{q}"].max() * 3]
    ax.plot(lim, lim, "k-", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(lim)
    covered = ((v[f"telegraph_{q}_ci_low"] <= v[f"true_{q}"])
               & (v[f"true_{q}"] <= v[f"telegraph_{q}_ci_high"])).mean()
    ax.set_title(f"{q.replace('_', ' ')}: {same.sum()} genes, 95% CI covers truth for "
                 f"{covered:.0%}", fontsize=9)
    ax.set_xlabel("true")
    ax.set_ylabel("estimated, 95% profile interval")
fig.tight_layout()
save(fig, "01_estimates_vs_truth.png")

# %% [markdown]
# ## Plots
#
# `tg.pl` follows scanpy's conventions: `adata` first, `ax=`, `show=`, `save=`, and it returns
# the matplotlib Axes. `tg.pl.kinetics` places every gene by burst frequency and burst size;
# `tg.pl.distribution` overlays the fitted distribution on a gene's observed counts (taking
# each cell's capture into account).

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
tg.pl.kinetics(adata, ax=axes[0], show=False)
genes = adata.var.sort_values("telegraph_burst_size")
examples = [genes.index[genes["telegraph_regime"] == r][0] for r in ("telegraph", "bursty")
            if (genes["telegraph_regime"] == r).any()]
for ax, gene in zip(axes[1:], examples):
    tg.pl.distribution(adata, gene, layer="counts", ax=ax, show=False)
fig.tight_layout()
save(fig, "01_kinetics_and_distributions.png")

# %% [markdown]
# ## Differential bursting between groups
#
# `tg.tl.differential_bursting` tests each gene for a change in burst frequency (with the other
# parameters free) and, separately, in burst size, by likelihood ratio. The statistic's null
# law is calibrated on the data (near the limits of the model it is not chi-square(1)): genes
# whose pooled fit identifies neither quantity are not tested, and p-values are adjusted for
# the number of genes (Benjamini-Hochberg weighted by each gene's information). Log2 fold
# changes (group B over group A) come with intervals.

# %%
t = time.perf_counter()
diff = tg.tl.differential_bursting(adata, "group", groups=("A", "B"), layer="counts",
                                   capture="capture")
print(f"tested {len(diff)} genes in {time.perf_counter() - t:.1f} s")
print(diff[["burst_frequency_log2fc", "padj_burst_frequency", "burst_size_log2fc",
            "padj_burst_size"]].sort_values("padj_burst_frequency").head(8).round(4))

# %% [markdown]
# The truth is known: which genes were simulated with a change, and in what?

# %%
truth = adata.var.loc[diff.index, "differential"].astype(str)
found = pd.DataFrame({
    "burst frequency called (padj < 0.1)": (diff["padj_burst_frequency"] < 0.1),
    "burst size called (padj < 0.1)": (diff["padj_burst_size"] < 0.1),
}).groupby(truth.to_numpy()).sum()
found.insert(0, "genes", truth.value_counts())
print(found)

# %%
fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
tg.pl.differential(adata, test="burst_frequency", ax=axes[0], show=False)
tg.pl.differential(adata, test="burst_size", ax=axes[1], show=False)
tg.pl.kinetics(adata, color="significance", ax=axes[2], show=False)
fig.tight_layout()
save(fig, "01_differential.png")

# %% [markdown]
# Where to go next: tutorial 2 simulates the model exactly to ask how many cells a study needs,
# tutorial 3 applies all this to real allele-resolved data (Larsson et al. 2019), and tutorial 4
# shows what capture efficiency does. On the command line, `telegraph fit counts.h5ad --layer
# counts --capture capture --table kinetics.csv` does the fit of this tutorial.

# %%
print(f"done in {time.perf_counter() - T0:.0f} s")
