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
# # 7. Metabolic labelling: burst kinetics and half-lives in hours
#
# Metabolic-labelling protocols (scSLAM-seq, NASC-seq, scNT-seq, scEU-seq, sci-fate)
# feed cells 4sU for a known time `t_label` before harvest and then tell, per cell and
# gene, the molecules made during the pulse (*new*) from those made before it (*old*).
# A snapshot of total mRNA identifies rates only relative to `k_deg`; the pulse is a
# clock, so new and old counts identify every rate in absolute time -- `k_deg`, and
# with it the half-life, included.
#
# The model (docs/maths.md, "Metabolic labelling: new and old RNA"): the telegraph
# promoter (`k_on`, `k_off`, `k_syn`) and degradation `k_deg` at stationarity before
# the pulse; each molecule is captured with the cell's efficiency, and a captured new
# molecule is seen as new with probability `detection` (its T>C conversions detected;
# the rest are counted as old). `tg.tl.fit(adata, layer="old", new_layer="new",
# t_label=...)` maximises the exact likelihood of the (new, old) pairs with its exact
# gradient and reports rates per hour with profile-likelihood intervals.
#
# This tutorial
#
# 1. simulates an scSLAM-seq-style experiment with known kinetics (one pulse length),
# 2. fits it and compares half-lives and burst kinetics with the truth,
# 3. repeats with a time course (cells harvested after 1, 2 and 4 h: `t_label` an obs
#    column), and
# 4. draws a gene's (new, old) histogram against the fitted law.
#
# Run as a script (`python tutorials/07_metabolic_labelling.py`;
# `TELEGRAPH_TUTORIAL_SMALL=1` for a quick run) or as a notebook (`jupytext --to ipynb`).
# Figures go to `TELEGRAPH_TUTORIAL_OUTPUT` (default `tutorials/_output/`).

# %%
import os
import sys
import time
from pathlib import Path

import matplotlib
import matplotlib.ticker

if "IPython" not in sys.modules:  # a plain script: draw off-screen
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

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


N_CELLS = 300 if SMALL else 1000
N_GENES = 3 if SMALL else 12
print(f"telegraph {tg.__version__}; small run: {SMALL}; {N_CELLS} cells x {N_GENES} genes")

# %% [markdown]
# ## An scSLAM-seq-style experiment: one pulse of 2 hours
#
# `tg.simulate_labelled_anndata` runs the exact Gillespie simulation: each gene at
# stationarity, then a pulse during which every new molecule is marked; per-cell
# capture (`obs["capture"]`) and detection 0.8 of new molecules. The truth is in `var`
# (rates per hour, half-lives in hours).

# %%
rng = np.random.default_rng(7)
half_life = np.exp(rng.uniform(np.log(0.5), np.log(8.0), N_GENES))   # hours
kinetics = dict(k_on=np.exp(rng.uniform(np.log(0.2), np.log(2.0), N_GENES)),
                k_off=np.exp(rng.uniform(np.log(0.5), np.log(5.0), N_GENES)),
                k_deg=np.log(2.0) / half_life)
kinetics["k_syn"] = np.exp(rng.uniform(np.log(5.0), np.log(20.0), N_GENES)) * kinetics["k_off"]

adata = tg.simulate_labelled_anndata(N_CELLS, N_GENES, t_label=2.0, detection=0.8, seed=1,
                                     **kinetics)
print(adata)
print(f"new molecules: {adata.layers['new'].sum() / adata.layers['total'].sum():.0%} "
      f"of all counted")

# %% [markdown]
# ## Fit: rates per hour
#
# `layer=` holds the old counts, `new_layer=` the new ones; `t_label` is the pulse in
# hours, `detection` the protocol's probability of seeing a new molecule as new.

# %%
tg.tl.fit(adata, layer="old", new_layer="new", t_label=2.0, detection=0.8,
          capture="capture", n_jobs=1, progress=False)
res = tg.get.kinetics_df(adata)
print(res[["k_on", "k_off", "k_syn", "k_deg", "half_life", "half_life_ci_low",
           "half_life_ci_high", "regime", "k_deg_flag", "pulse", "gof_pval"]].round(3))

# %% [markdown]
# Half-lives against the truth, with their 95% profile-likelihood intervals, and burst
# frequency and size (per hour and molecules per burst).

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
for ax, (q, truth_col, unit) in zip(axes, [("half_life", "true_half_life", "hours"),
                                           ("burst_frequency", "true_burst_frequency",
                                            "per hour"),
                                           ("burst_size", "true_burst_size", "molecules")]):
    truth = adata.var[truth_col].to_numpy()
    est = res[q].to_numpy()
    err = np.abs(np.vstack([est - res[f"{q}_ci_low"], res[f"{q}_ci_high"] - est]))
    ax.errorbar(truth, est, yerr=np.where(np.isfinite(err), err, 0), fmt="o", ms=4,
                alpha=0.8)
    lims = [min(truth.min(), np.nanmin(est)) * 0.7, max(truth.max(), np.nanmax(est)) * 1.4]
    ax.plot(lims, lims, "k--", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel=f"true {q} ({unit})",
           ylabel=f"fitted {q}", title=q.replace("_", " "))
fig.tight_layout()
save(fig, "labelling_recovery.png")
covered = ((res["half_life_ci_low"] <= adata.var["true_half_life"])
           & (adata.var["true_half_life"] <= res["half_life_ci_high"]))
print(f"half-life intervals covering the truth: {covered.sum()} of {len(covered)}")

# %% [markdown]
# ## A time course: several pulse lengths in one fit
#
# Cells harvested after 1, 2 and 4 hours: `obs["t_label"]` holds each cell's pulse
# length and `t_label="t_label"` names that column. Short pulses see fresh
# transcription, long ones decay: together they pin `k_deg` across half-lives.

# %%
course = tg.simulate_labelled_anndata(N_CELLS, N_GENES, t_label=[1.0, 2.0, 4.0],
                                      detection=0.8, seed=2, **kinetics)
print(course.obs["t_label"].value_counts().sort_index())
tg.tl.fit(course, layer="old", new_layer="new", t_label="t_label", detection=0.8,
          capture="capture", n_jobs=1, progress=False)
res2 = tg.get.kinetics_df(course)
width1 = np.log(res["half_life_ci_high"] / res["half_life_ci_low"])
width2 = np.log(res2["half_life_ci_high"] / res2["half_life_ci_low"])
print(res2[["half_life", "half_life_ci_low", "half_life_ci_high", "regime"]].round(3))
print(f"median log-width of the half-life interval: one pulse {np.median(width1):.3f}, "
      f"time course {np.median(width2):.3f}")

fig, ax = plt.subplots(figsize=(4.5, 4.0))
truth = course.var["true_half_life"].to_numpy()
for r, label, off in ((res, "one pulse (2 h)", 0.97), (res2, "1, 2 and 4 h", 1.03)):
    est = r["half_life"].to_numpy()
    err = np.abs(np.vstack([est - r["half_life_ci_low"], r["half_life_ci_high"] - est]))
    ax.errorbar(truth * off, est, yerr=err, fmt="o", ms=4, label=label, alpha=0.8)
ax.plot([truth.min() * 0.7, truth.max() * 1.4], [truth.min() * 0.7, truth.max() * 1.4], "k--",
        lw=0.8)
ax.set(xscale="log", yscale="log", xlabel="true half-life (h)", ylabel="fitted half-life (h)")
for axis in (ax.xaxis, ax.yaxis):  # hours as plain numbers, no crowded minor labels
    axis.set_major_locator(matplotlib.ticker.FixedLocator([0.25, 0.5, 1, 2, 4, 8, 16]))
    axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
ax.legend(frameon=False)
save(fig, "labelling_half_lives.png")

# %% [markdown]
# `tg.pl.kinetics` works on the labelled fit as on any other (rates per hour):

# %%
ax = tg.pl.kinetics(course, show=False)
save(ax.figure, "labelling_kinetics.png")

# %% [markdown]
# ## A gene's (new, old) histogram against the fitted law
#
# The fitted joint law from `tg.labelled_pmf` (averaged over the cells' captures) next
# to the observed pairs, for the cells of the 2-hour pulse.

# %%
gene = course.var_names[0]
sel = (course.obs["t_label"] == 2.0).to_numpy()
new = course[sel, gene].layers["new"].toarray().ravel()
old = course[sel, gene].layers["old"].toarray().ravel()
row = res2.loc[gene]
n_max, o_max = int(new.max()) + 3, int(old.max()) + 3
nn, oo = np.meshgrid(np.arange(n_max + 1), np.arange(o_max + 1), indexing="ij")
caps = course.obs["capture"].to_numpy()[sel]
P = np.zeros(nn.shape)
for c in np.quantile(caps, np.linspace(0.05, 0.95, 10)):
    P += tg.labelled_pmf(nn, oo, row["k_on"], row["k_off"], row["k_syn"], row["k_deg"],
                         t_label=2.0, detection=0.8, capture=c) / 10
obs_hist = np.zeros(nn.shape)
np.add.at(obs_hist, (new, old), 1.0 / new.size)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
for ax, M, title in ((axes[0], obs_hist, "observed"), (axes[1], P, "fitted law")):
    ax.imshow(M.T, origin="lower", aspect="auto", cmap="viridis")
    ax.set(xlabel="new molecules", title=f"{gene}: {title}")
axes[0].set_ylabel("old molecules")
save(fig, "labelling_distribution.png")

# %% [markdown]
# ## Planning the next experiment: which pulse length?
#
# With the fitted kinetics as the genes to design for, `tg.design.optimize_pulse` chooses the
# pulse that pins down burst frequency, burst size and k_deg best (D-optimality over the
# genes, exact information of the new/old law, gradient ascent in log t_label; the gradient
# is exact because the law depends on the pulse only through k_deg t_label). Kinetics twice as
# fast would want a pulse exactly half as long.

# %%
usable = res2[np.isfinite(res2[["k_on", "k_off", "k_syn", "k_deg"]]).all(axis=1)]
plan = tg.design.optimize_pulse(usable["k_on"], usable["k_off"], usable["k_syn"],
                                usable["k_deg"], n_cells=N_CELLS, capture=caps,
                                detection=0.8, t_range=(0.25, 24.0), progress=False)
print(plan.summary())
ax = tg.pl.design(plan, show=False)
save(ax.figure, "labelling_pulse_design.png")
print(f"done in {time.perf_counter() - T0:.0f} s")
