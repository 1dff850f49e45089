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
# # 5. Experiment design: how many cells, at what depth
#
# Before sequencing, the questions are: how many cells per group does a differential test
# need to see a 1.5-fold change in burst frequency? How precisely will each gene's kinetics
# be pinned down? Is the budget better spent on more cells or on deeper sequencing?
#
# `tg.design` answers these from the exact expected Fisher information of the telegraph model,
# summed over the count distribution (docs/maths.md, "Experiment design"): no simulation is
# needed to plan, and the predictions are checked against simulated experiments run through
# the real fitter and the real test. Here we plan from a pilot: the C57 allele of Larsson et
# al. (2019)'s fibroblasts (S and G2/M cells together, 59 cells), read as in tutorial 3,
# then simulate the planned experiment and run the real differential test on it.
#
# **Where the data are read from**: as tutorial 3 (`TELEGRAPH_LARSSON_DIR`, else
# `../shared/data/larsson2019` beside the repository). Run as a script
# (`python tutorials/05_experiment_design.py`; `TELEGRAPH_TUTORIAL_SMALL=1` plans for a random
# subset of 300 genes and simulates fewer) or as a notebook. Figures go to
# `TELEGRAPH_TUTORIAL_OUTPUT` (default `tutorials/_output/`).

# %%
import os
import sys
import time
from pathlib import Path

import matplotlib

if "IPython" not in sys.modules:  # a plain script: draw off-screen
    matplotlib.use("Agg")
import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

import telegraph as tg

SMALL = os.environ.get("TELEGRAPH_TUTORIAL_SMALL", "0").lower() not in ("", "0", "false", "no")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("TELEGRAPH_TUTORIAL_OUTPUT", HERE / "_output"))
OUT.mkdir(parents=True, exist_ok=True)
DATA = Path(os.environ.get("TELEGRAPH_LARSSON_DIR",
                           HERE.parent.parent / "shared" / "data" / "larsson2019"))
N_SMALL = 300
T0 = time.perf_counter()


def save(fig, name):
    path = OUT / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"saved {path}")
    return path


if not (DATA / "SS3_c57_UMIs_concat_S.csv").exists():
    raise SystemExit(
        f"The Larsson et al. 2019 data were not found in {DATA}. Download the folder data/ of "
        "https://github.com/sandberg-lab/txburst (count matrices SS3_c57_UMIs_concat_S.csv and "
        "SS3_c57_UMIs_concat_G2M.csv) and set TELEGRAPH_LARSSON_DIR to it.")
print(f"telegraph {tg.__version__}; data from {DATA}; small run: {SMALL}")

# %% [markdown]
# ## The pilot: kinetics of every gene
#
# The fit has no capture model (allele-specific UMI counts, as txburst): k_syn and burst size
# are in molecules *counted* at the pilot's depth. To plan other depths we need them in
# molecules per cell, which takes the pilot's capture efficiency. We assume 0.2 (an
# assumption to replace with a measured one, e.g. from spike-ins); planning at capture 0.2
# is then planning at the pilot's depth, and nothing below depends on the assumption except
# the translation of depth into capture.

# %%
PILOT_CAPTURE = 0.2
pilot = ad.concat([tg.io.read(DATA / f"SS3_c57_UMIs_concat_{ph}.csv") for ph in ("S", "G2M")])
if SMALL:
    keep = np.sort(np.random.default_rng(0).choice(pilot.n_vars, N_SMALL, replace=False))
    pilot = pilot[:, keep].copy()
fit = tg.fit(pilot.X, genes=pilot.var_names, progress=False)
fit["k_syn"] /= PILOT_CAPTURE                  # molecules per cell, given the assumed capture
fit["burst_size"] /= PILOT_CAPTURE
print(f"{pilot.n_obs} cells x {pilot.n_vars:,} genes")
print(fit["regime"].value_counts().to_string())

# %% [markdown]
# With 59 cells most genes sit in a limit regime. Planning needs burst frequency and burst
# size, which the `telegraph` and `bursty` regimes identify (`tg.design.kinetics_table` keeps
# a bursty gene's burst frequency and size and gives it a large k_off; genes in the `poisson`
# or `bimodal` regime are left out). We plan for the *expressed* genes among them: a mean of
# at least one counted molecule per cell.

# %%
kin = tg.design.kinetics_table(fit)
expressed = kin["usable"] & (fit["mean"] >= 1.0)
kin = kin[expressed]
print(f"{len(kin):,} expressed genes with identified burst frequency and size")

# %% [markdown]
# ## How many cells per group?
#
# `tg.design.cells_needed` gives, per gene, the cells per group at which the likelihood-ratio
# test of `tg.tl.differential_bursting` (equal burst frequency, all other rates free in each
# group) detects a 1.5-fold change with power 0.8 at level 0.05, at the pilot's depth. The
# number of cells at which *half* of the genes reach that power is the median.
#
# The test refers its statistic to chi-square(1) scaled by a calibrated null scale (the
# mean bootstrap statistic of the gene's regime class; below 1 near the bursty limit), and
# the prediction does the same: the noncentrality is the real test's statistic on the
# expected data, the scale is predicted by running the real test on genes simulated at the
# design. `calibration="panel"` treats the genes as one experiment tested together, as they
# will be (the default, `"bootstrap"`, calibrates each parameter set among genes like it).

# %%
EFFECT, POWER, ALPHA = 1.5, 0.8, 0.05
t = time.perf_counter()
need = tg.design.cells_needed(kin["k_on"], kin["k_off"], kin["k_syn"], effect=EFFECT,
                              power=POWER, alpha=ALPHA, capture=PILOT_CAPTURE,
                              calibration="panel")
kin["cells_needed"] = need
N_PLAN = int(np.ceil(np.median(need)))
print(f"cells_needed for {len(kin):,} genes in {time.perf_counter() - t:.1f} s")
print("quantiles over genes:", {f"{q:.0%}": int(np.quantile(need, q))
                                for q in (0.1, 0.25, 0.5, 0.75, 0.9)})
print(f"-> {N_PLAN:,} cells per group let half of the expressed genes reach power {POWER} "
      f"for a {EFFECT}-fold change in burst frequency")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
ax = axes[0]
srt = np.sort(need)
ax.plot(srt, np.arange(1, srt.size + 1) / srt.size, "C0-")
ax.axvline(N_PLAN, color="k", ls="--", lw=0.8)
ax.axhline(0.5, color="0.6", lw=0.6)
ax.set_xscale("log")
ax.set_xlabel("cells per group")
ax.set_ylabel(f"fraction of genes with power >= {POWER}")
ax.set_title(f"{EFFECT}-fold burst frequency change, alpha {ALPHA}", fontsize=10)
ax = axes[1]
sc = ax.scatter(kin["k_on"], kin["k_syn"] / kin["k_off"], c=np.log10(need), s=6, cmap="viridis")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("burst frequency (per mRNA lifetime)")
ax.set_ylabel("burst size (molecules per cell)")
fig.colorbar(sc, ax=ax, label="log10 cells per group needed")
fig.tight_layout()
save(fig, "05_cells_needed.png")

# %% [markdown]
# Genes with rare, large bursts are the cheapest to test; frequent bursts (the near-Poisson
# corner) need many more cells: at high burst frequency the counts carry little information
# about how often bursts happen.
#
# ## Expected precision at that size
#
# `tg.design.expected_precision` predicts the standard errors of the fitted log burst
# frequency and log burst size and the 95% intervals the fitter will report, the probability
# that a fit lands in a limit regime, and flags where the asymptotic predictions do not hold.

# %%
prec = tg.design.expected_precision(kin["k_on"], kin["k_off"], kin["k_syn"], n_cells=N_PLAN,
                                    capture=PILOT_CAPTURE, progress=False)
prec.index = kin.index
print(prec[["burst_frequency_log_se", "burst_size_log_se", "p_limit_regime"]].describe()
      .round(3).to_string())
print(prec["asymptotics"].value_counts().to_string())

# %% [markdown]
# ## Check: simulate the planned experiment and run the real test
#
# For a random subset of the genes: two groups of `N_PLAN` cells at the pilot's depth, the
# second with 1.5-fold burst frequency, counts drawn exactly from the stationary law, then
# the real `differential` test. The predicted number of detections is the sum of the genes'
# predicted powers (its spread from the independent coin flips of the genes is
# sqrt(sum p (1 - p)); the test's calibrated null scale, one bootstrap draw per experiment
# shared by the genes of a regime class, adds to it: over replicates of the full run the
# count varied with sd 10.8 against 9.3 from the coin flips, docs/maths.md, "Experiment
# design").

# %%
rng = np.random.default_rng(5)
n_check = min(len(kin), 100 if SMALL else 600)
check = kin.iloc[np.sort(rng.choice(len(kin), n_check, replace=False))]
pred_power = tg.design.power(check["k_on"], check["k_off"], check["k_syn"], effect=EFFECT,
                             n_cells=N_PLAN, alpha=ALPHA, capture=PILOT_CAPTURE,
                             calibration="panel", seed=11)
rates1 = {k: check[k].to_numpy(float) for k in ("k_on", "k_off", "k_syn", "k_deg")}
rates2 = dict(rates1, k_on=rates1["k_on"] * EFFECT)
cap = np.full(N_PLAN, PILOT_CAPTURE)
X1 = tg.study.sample_stationary(rng, [rates1], np.zeros(N_PLAN, int), cap)
X2 = tg.study.sample_stationary(rng, [rates2], np.zeros(N_PLAN, int), cap)
t = time.perf_counter()
test = tg.differential.differential(X1, X2, capture1=cap, capture2=cap, genes=check.index,
                                    interval="wald", progress=False)
hit = test["pval_burst_frequency"].to_numpy(float) < ALPHA
print(f"tested {n_check} genes x 2 x {N_PLAN:,} cells in {time.perf_counter() - t:.0f} s")
expected, spread = pred_power.sum(), np.sqrt(np.sum(pred_power * (1 - pred_power)))
print(f"detected (p < {ALPHA}): {hit.sum()} of {n_check}; predicted {expected:.1f} +- "
      f"{spread:.1f}")
reach = check["cells_needed"].to_numpy() <= N_PLAN
for name, m in (("predicted power >= 0.8", reach), ("predicted power < 0.8", ~reach)):
    lo, hi = stats.binomtest(int(hit[m].sum()), int(m.sum())).proportion_ci()
    print(f"  genes with {name}: {m.sum()}, detected {hit[m].mean():.2f} "
          f"[{lo:.2f}, {hi:.2f}], mean predicted power {pred_power[m].mean():.2f}")

# %%
bins = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0])
which = np.clip(np.digitize(pred_power, bins) - 1, 0, len(bins) - 2)
rows = []
for k in range(len(bins) - 1):
    m = which == k
    if m.sum() >= 3:
        lo, hi = stats.binomtest(int(hit[m].sum()), int(m.sum())).proportion_ci()
        rows.append((pred_power[m].mean(), hit[m].mean(), lo, hi, m.sum()))
cal = pd.DataFrame(rows, columns=["predicted", "realised", "low", "high", "genes"])
print(cal.round(3).to_string(index=False))
fig, ax = plt.subplots(figsize=(4.5, 4.2))
ax.errorbar(cal["predicted"], cal["realised"],
            yerr=[cal["realised"] - cal["low"], cal["high"] - cal["realised"]], fmt="o",
            capsize=3)
for _, r in cal.iterrows():
    ax.annotate(f"{int(r['genes'])}", (r["predicted"], r["realised"]), textcoords="offset points",
                xytext=(5, -10), fontsize=7)
ax.plot([0, 1], [0, 1], "k-", lw=0.6)
ax.set_xlabel("predicted power (tg.design.power)")
ax.set_ylabel("fraction detected by the real test")
ax.set_title(f"{n_check} simulated genes, {N_PLAN:,} cells per group", fontsize=10)
save(fig, "05_power_check.png")

# %% [markdown]
# ## Cells or depth? Splitting a budget
#
# At a fixed budget, deeper sequencing buys capture at the price of cells. With a cost model
# (here illustrative: a cell's library costs 1, a read 1e-5; capture approaches 0.3 at
# saturating depth and reaches half of that at 20,000 reads per cell; state your own from a
# pilot), `tg.design.optimize` finds the depth that maximises the expected information gain
# about burst frequency and burst size, with the pilot's genes as the prior over kinetics. The
# gradient of the expected information gain is estimated from simulated cells by the
# score-function (REINFORCE) estimator, with its standard error; the exact gradient (a sum over
# counts) checks it.

# %%
cost = tg.design.CostModel(cell=1.0, read=1e-5, capture_max=0.3, reads_half=20_000)
BUDGET = 2 * N_PLAN * (cost.cell + cost.read * 20_000)   # the planned experiment at 20k reads
opts = dict(budget=BUDGET, cost=cost, prior=fit, n_prior=24 if SMALL else 256, seed=1,
            progress=False)
t = time.perf_counter()
exact = tg.design.optimize(criterion="eig", method="exact", curve=True, **opts)
t_exact = time.perf_counter() - t
t = time.perf_counter()
score = tg.design.optimize(criterion="eig", method="score", curve=False,
                           n_sim_cells=500 if SMALL else 2000, max_iter=20 if SMALL else 60,
                           **opts)
t_score = time.perf_counter() - t
print(f"budget {BUDGET:,.0f}")
print(f"exact gradients ({t_exact:.0f} s): {exact.summary()}")
print(f"score-function gradients ({t_score:.0f} s): {score.summary()}")
print(f"cells per group at the optimum: {exact.n_cells // 2:,} (vs {N_PLAN:,} at 20,000 reads)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
tg.pl.design(exact, ax=axes[0])
h = score.history
axes[1].plot(h["iteration"], h["reads"], "C1.-", label="score-function gradient")
axes[1].plot(exact.history["iteration"], exact.history["reads"], "C0.-", label="exact gradient")
axes[1].set_yscale("log")
axes[1].set_xlabel("iteration")
axes[1].set_ylabel("reads per cell")
axes[1].set_title("gradient ascent in log depth", fontsize=10)
axes[1].legend(fontsize=8)
fig.tight_layout()
save(fig, "05_budget.png")

# %% [markdown]
# The curve is flat near its top: within a factor of two of the chosen depth the expected
# precision changes little, so a cost model known only roughly still gives a useful answer.
# The two ascents agree; the score-function estimate needs only simulated cells and the
# model's score, which is what carries over to models whose counts cannot be summed exactly.
#
# The same from the command line, from a table written by `telegraph fit --table`:
#
# ```bash
# telegraph design --kinetics pilot_fit.csv --effect 1.5 --power 0.8 --capture 0.2 \
#     --budget 5000 --cell-cost 1 --read-cost 1e-5 --capture-max 0.3 --reads-half 20000
# ```

# %%
print(f"done in {time.perf_counter() - T0:.0f} s")
