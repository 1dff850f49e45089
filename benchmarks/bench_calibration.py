"""Calibrated inference at the limits of the model: null p-values, power, coverage.

Simulated data only (exact stationary telegraph counts: p ~ Beta(k_on, k_off),
n ~ Poisson(capture k_syn p), k_deg = 1; kinetics drawn like
``tg.datasets.example``: k_on in [0.05, 5], k_off in [0.5, 20], burst size in
[2, 50], log-uniform; capture lognormal, sd 0.35 on the log scale, around the
stated median; numpy generators with fixed seeds). Three studies:

1. Null calibration of the differential tests: both groups with the same
   kinetics for every gene; false positive rate at p < 0.05 with its 95%
   Clopper-Pearson interval, the KS test of uniformity, the share of
   p-values above 0.9, per regime class of the pooled fit -- for the
   calibrated test (the default) and the plain likelihood-ratio test against
   chi2(1) (``calibration="chi2"``), with capture given, without capture and
   with size factors, at several numbers of cells per group. QQ plot.
2. Power: one third of the genes change burst frequency (k_on), one third
   burst size (k_syn), by a fold change; power and false discovery proportion
   at adjusted p < 0.05 of the default test (calibrated, information-weighted
   Benjamini-Hochberg) against the plain capture-aware likelihood-ratio test
   (chi2(1), Benjamini-Hochberg), by effect size and by cells per group
   (capture around 0.5). Power curves.
3. Coverage of the 95% profile intervals of burst frequency and burst size,
   by the regime the fit reports and by cells, with the repair of intervals
   after the regime decision (the default) and without it
   (``config.LIMIT_UNION = False``); capture around 0.3.

Costs are CPU seconds per gene in this process: the calibrated test against
the plain one, the fit with and without the interval repair.

Writes benchmarks/_output/calibration.md and the figures
docs/figures/calibration_qq.png, calibration_power.png, calibration_coverage.png.

Usage: python benchmarks/bench_calibration.py [--quick] [--parts coverage,null,power]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from scipy import stats  # noqa: E402

from telegraph import calibration, config  # noqa: E402
from telegraph import differential as differential_module  # noqa: E402
from telegraph.differential import differential  # noqa: E402
from telegraph.fitting import fit_raw  # noqa: E402
from telegraph.histogram import count_histograms  # noqa: E402
from telegraph.inputs import FitSettings  # noqa: E402
from telegraph.kernels import fit as kfit  # noqa: E402

PRIOR = {"k_on": (0.05, 5.0), "k_off": (0.5, 20.0), "burst_size": (2.0, 50.0)}
FIGURES = ROOT / "docs" / "figures"
TESTS = ("burst_frequency", "burst_size")


# --------------------------------------------------------------------------- data

def kinetics(rng, n):
    lu = {k: 10 ** rng.uniform(*np.log10(v), n) for k, v in PRIOR.items()}
    return lu["k_on"], lu["k_off"], lu["burst_size"] * lu["k_off"]


def capture(rng, n, median):
    return np.clip(rng.lognormal(np.log(median), 0.35, n), 0.02, 1.0)


def draw(rng, c, k_on, k_off, k_syn):
    p = rng.beta(k_on[None, :], np.broadcast_to(k_off, (c.size, k_on.size)))
    return rng.poisson(c[:, None] * k_syn[None, :] * p).astype(float)


def two_groups(seed, n_genes, n_cells, cap, fold=1.0):
    """Two groups; with fold != 1 the first third of the genes has k_on x fold
    in group 2, the second third k_syn x fold."""
    rng = np.random.default_rng(seed)
    k_on, k_off, k_syn = kinetics(rng, n_genes)
    third = n_genes // 3
    f_on = np.where(np.arange(n_genes) < third, fold, 1.0)
    f_syn = np.where((np.arange(n_genes) >= third) & (np.arange(n_genes) < 2 * third), fold, 1.0)
    c1, c2 = capture(rng, n_cells, cap[0]), capture(rng, n_cells, cap[1])
    X1 = draw(rng, c1, k_on, k_off, k_syn)
    X2 = draw(rng, c2, k_on * f_on, k_off, k_syn * f_syn)
    return X1, X2, c1, c2, {"burst_frequency": f_on != 1, "burst_size": f_syn != 1}


def run_test(X1, X2, c1, c2, mode, **kw):
    """(table, CPU seconds) of the differential test; mode: 'given', 'none', 'total'."""
    cap = {"given": dict(capture1=c1, capture2=c2), "none": {},
           "total": dict(capture1="total", capture2="total")}[mode]
    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = differential(X1, X2, progress=False, interval="wald", **cap, **kw)
    return res, time.process_time() - t0


PLAIN = dict(calibration="chi2", weighting="none")


def binci(k, n):
    lo = stats.beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return lo, hi


# --------------------------------------------------------------------------- 1. null

@contextlib.contextmanager
def no_second_round():
    """The calibration without its second round of draws for subclasses short of
    draws (``null_scales(top_up=0)``: such a subclass takes its pooled regime's law),
    the code before 1 Dec, for comparison on the same data."""
    saved = differential_module.null_scales
    differential_module.null_scales = functools.partial(calibration.null_scales, top_up=0)
    try:
        yield
    finally:
        differential_module.null_scales = saved


def null_study(settings):
    rows, qq = [], {}
    for label, seed, n_genes, n_cells, cap, mode in settings:
        X1, X2, c1, c2, _ = two_groups(seed, n_genes, n_cells, cap)
        new, t_new = run_test(X1, X2, c1, c2, mode)
        with no_second_round():
            first, t_first = run_test(X1, X2, c1, c2, mode)
        old, t_old = run_test(X1, X2, c1, c2, mode, **PLAIN)
        cls = new["regime_pooled"].astype(str).to_numpy()
        for method, res, t in (("calibrated", new, t_new),
                               ("calibrated, no second round", first, t_first),
                               ("chi2(1)", old, t_old)):
            for name in TESTS:
                p = res[f"pval_{name}"].to_numpy()
                ok = np.isfinite(p)
                k, n = int((p[ok] < 0.05).sum()), int(ok.sum())
                lo, hi = binci(k, n)
                by = {}
                for c in ("telegraph", "bursty", "bimodal", "poisson"):
                    m = ok & (cls == c)
                    by[c] = (f"{np.mean(p[m] < 0.05):.3f} ({m.sum()})" if m.sum() else "-")
                rows.append({"setting": label, "method": method, "test": name, "genes": n,
                             "FPR": k / n, "lo": lo, "hi": hi,
                             "KS p": stats.kstest(p[ok], "uniform").pvalue,
                             "p>0.9": float(np.mean(p[ok] > 0.9)), "by": by,
                             "cpu/gene": t / n_genes})
                qq[(label, method, name)] = np.sort(p[ok])
    return rows, qq


def qq_figure(qq, settings, path):
    labels = [s[0] for s in settings]
    fig, axes = plt.subplots(2, len(labels), figsize=(3.2 * len(labels), 6.4), squeeze=False)
    for j, label in enumerate(labels):
        for i, name in enumerate(TESTS):
            ax = axes[i, j]
            for method, color in (("chi2(1)", "tab:red"), ("calibrated", "tab:blue")):
                p = qq[(label, method, name)]
                e = (np.arange(1, p.size + 1) - 0.5) / p.size
                ax.plot(-np.log10(e), -np.log10(np.clip(p, 1e-300, 1)), ".", ms=2.5,
                        color=color, label=method)
            top = -np.log10(0.5 / max(p.size, 1))
            ax.plot([0, top], [0, top], "k-", lw=0.8)
            n = p.size
            k = np.arange(1, n + 1)
            ax.fill_between(-np.log10((k - 0.5) / n), -np.log10(stats.beta.ppf(0.975, k, n - k + 1)),
                            -np.log10(stats.beta.ppf(0.025, k, n - k + 1)), color="0.85", lw=0)
            ax.set_title(f"{label}\n{name.replace('_', ' ')}", fontsize=8)
            ax.set_xlabel("expected -log10 p", fontsize=8)
            if j == 0:
                ax.set_ylabel("observed -log10 p", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Null p-values (same kinetics in both groups): plain chi2(1) vs calibrated; "
                 "grey: 95% band", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- 2. power

def power_study(grid):
    rows = []
    for label, seed, n_genes, n_cells, fold in grid:
        X1, X2, c1, c2, changed = two_groups(seed, n_genes, n_cells, (0.5, 0.5), fold)
        new, t_new = run_test(X1, X2, c1, c2, "given")
        old, t_old = run_test(X1, X2, c1, c2, "given", **PLAIN)
        for name in TESTS:
            ch = changed[name]
            for method, res in (("calibrated + weights", new), ("plain LRT", old)):
                disc = (res[f"padj_{name}"] < 0.05).to_numpy()
                rows.append({"setting": label, "cells": n_cells, "fold": fold, "test": name,
                             "method": method, "power": float(disc[ch].mean()),
                             "fdp": float((disc & ~ch).sum() / max(disc.sum(), 1)),
                             "discoveries": int(disc.sum()), "changed": int(ch.sum()),
                             "cpu/gene": (t_new if method.startswith("cal") else t_old)
                             / n_genes})
    return rows


def power_figure(rows, path):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, xlabel in ((axes[0], "fold", "fold change (800 cells per group)"),
                            (axes[1], "cells", "cells per group (3-fold change)")):
        for name, marker in zip(TESTS, ("o", "s")):
            for method, color in (("calibrated + weights", "tab:blue"), ("plain LRT", "tab:red")):
                sel = [r for r in rows if r["test"] == name and r["method"] == method
                       and ((key == "fold" and r["cells"] == 800)
                            or (key == "cells" and r["fold"] == 3.0))]
                sel.sort(key=lambda r: r[key])
                ax.plot([r[key] for r in sel], [r["power"] for r in sel], marker=marker,
                        color=color, ls="-" if name == "burst_frequency" else "--",
                        label=f"{method}, {name.replace('_', ' ')}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("power at adjusted p < 0.05")
        if key == "cells":
            ax.set_xscale("log")
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- 3. coverage

def coverage_study(sizes, n_draws):
    rows = []
    cost = {}
    for n_cells, n_genes in sizes:
        for union in (False, True):
            config.LIMIT_UNION = union
            hits, regimes, t = [], [], 0.0
            for d in range(n_draws):
                rng = np.random.default_rng(1000 + 17 * d + n_cells)
                k_on, k_off, k_syn = kinetics(rng, n_genes)
                c = capture(rng, n_cells, 0.3)
                X = draw(rng, c, k_on, k_off, k_syn)
                h = count_histograms(X, capture=c)
                t0 = time.process_time()
                raw = fit_raw(h, FitSettings(profile=("burst_frequency", "burst_size"),
                                             gof_min_expected=0.0))
                t += time.process_time() - t0
                rows_ = kfit.FitRows(raw)
                both = []
                for target, truth in ((0, np.log(k_on)), (1, np.log(k_syn / k_off))):
                    lo, hi = rows_.ci(target)
                    both.append((lo <= truth) & (truth <= hi))
                hits.append(np.stack(both))
                regimes.append(rows_.regime)
            hits = np.concatenate(hits, axis=1)
            regimes = np.concatenate(regimes)
            cost[(n_cells, union)] = t / (n_genes * n_draws)
            for code, name in ((kfit.REGIME_TELEGRAPH, "telegraph"), (kfit.REGIME_BURSTY, "bursty"),
                               (kfit.REGIME_BIMODAL, "bimodal"), (kfit.REGIME_POISSON, "poisson"),
                               (-1, "all genes")):
                m = regimes <= kfit.REGIME_POISSON if code == -1 else regimes == code
                rows.append({"cells": n_cells, "repair": union, "regime": name,
                             "n": int(m.sum()),
                             "burst frequency": float(hits[0, m].mean()) if m.any() else np.nan,
                             "burst size": float(hits[1, m].mean()) if m.any() else np.nan})
    config.LIMIT_UNION = True
    return rows, cost


def coverage_figure(rows, path):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, q in zip(axes, ("burst frequency", "burst size")):
        for regime, color in (("telegraph", "tab:purple"), ("bimodal", "tab:green"),
                              ("bursty", "tab:orange"), ("all genes", "k")):
            for union, ls in ((False, ":"), (True, "-")):
                sel = sorted((r for r in rows if r["regime"] == regime and r["repair"] == union),
                             key=lambda r: r["cells"])
                ax.plot([r["cells"] for r in sel], [r[q] for r in sel], ls=ls, marker="o",
                        ms=3, color=color,
                        label=f"{regime}{'' if union else ' (before)'}")
        ax.axhline(0.95, color="0.5", lw=0.8)
        ax.axhline(0.94, color="0.5", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("cells")
        ax.set_title(f"95% profile intervals of {q}, by reported regime", fontsize=9)
    axes[0].set_ylabel("coverage")
    axes[0].set_ylim(0.6, 1.0)
    axes[1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- report

def pct(x):
    return f"{100 * x:.1f}%"


def report(null_rows, power_rows, cov_rows, cov_cost, quick, seconds):
    head = "(headline: run all three parts)"
    if null_rows and power_rows and cov_rows:
        acc = [r for r in power_rows if r["cells"] == 800 and r["fold"] == 3.0]
        get = {(r["test"], r["method"]): r for r in acc}
        main_null = [r for r in null_rows
                     if r["setting"].startswith("600 cells, capture given")]
        fpr = {(r["test"], r["method"]): r for r in main_null}
        tel100 = {(r["repair"]): r for r in cov_rows
                  if r["cells"] == 100 and r["regime"] == "telegraph"}
        head = (
            "Headline: Null false-positive rate at p < 0.05 (600 + 600 cells, capture 0.15 vs "
            f"0.45, given): {pct(fpr[('burst_frequency', 'calibrated')]['FPR'])} / "
            f"{pct(fpr[('burst_size', 'calibrated')]['FPR'])} calibrated vs "
            f"{pct(fpr[('burst_frequency', 'chi2(1)')]['FPR'])} / "
            f"{pct(fpr[('burst_size', 'chi2(1)')]['FPR'])} against chi2(1) "
            "(burst frequency / size); "
            "power at adjusted p < 0.05 (800 + 800 cells, capture 0.5, 3-fold): "
            f"{get[('burst_frequency', 'calibrated + weights')]['power']:.3f} / "
            f"{get[('burst_size', 'calibrated + weights')]['power']:.3f} vs plain LRT "
            f"{get[('burst_frequency', 'plain LRT')]['power']:.3f} / "
            f"{get[('burst_size', 'plain LRT')]['power']:.3f} (FDP "
            f"{get[('burst_frequency', 'calibrated + weights')]['fdp']:.3f} / "
            f"{get[('burst_size', 'calibrated + weights')]['fdp']:.3f}); 95% intervals among "
            f"`telegraph` genes at 100 cells cover {pct(tel100[True]['burst frequency'])} / "
            f"{pct(tel100[True]['burst size'])} (before: {pct(tel100[False]['burst frequency'])} / "
            f"{pct(tel100[False]['burst size'])}).")
    lines = ["# Calibrated inference at the limits of the model", "",
             f"{'Quick mode (smaller workloads). ' if quick else ''}Simulated data, kinetics as "
             "`tg.datasets.example` (k_on 0.05-5, k_off 0.5-20, burst size 2-50, units of "
             "k_deg), capture lognormal (sd 0.35 on the log scale) around the stated median; "
             f"fixed seeds. {seconds / 60:.0f} min in all.", "", head, "",
             "## 1. Null p-values of the differential tests", "",
             "Same kinetics in both groups for every gene. FPR = share of tested genes with "
             "p < 0.05, with its 95% Clopper-Pearson interval; KS = p-value of the "
             "Kolmogorov-Smirnov test of uniformity; p>0.9 = share of p-values above 0.9 "
             "(0.1 if uniform); by class = FPR (genes) per regime of the pooled fit. The "
             "calibrated test does not test genes whose pooled fit is `bimodal` or `poisson` "
             "(neither quantity identified): they are counted for chi2(1) only. "
             "![QQ plot](../docs/figures/calibration_qq.png)", "",
             "| setting | method | test | genes | FPR | 95% CI | KS p | p>0.9 | telegraph | "
             "bursty | bimodal | poisson | CPU ms/gene |",
             "|---|---|---|---:|---:|---|---:|---:|---|---|---|---|---:|"]
    for r in null_rows:
        lines.append(f"| {r['setting']} | {r['method']} | {r['test'].replace('_', ' ')} | "
                     f"{r['genes']} | {pct(r['FPR'])} | [{pct(r['lo'])}, {pct(r['hi'])}] | "
                     f"{r['KS p']:.3g} | {r['p>0.9']:.3f} | {r['by']['telegraph']} | "
                     f"{r['by']['bursty']} | {r['by']['bimodal']} | {r['by']['poisson']} | "
                     f"{1e3 * r['cpu/gene']:.1f} |")
    lines += ["", "## 2. Power and false discoveries at adjusted p < 0.05", "",
              "One third of the genes change burst frequency (k_on x fold in group 2), one "
              "third burst size (k_syn x fold); capture around 0.5 in both groups, given. "
              "Calibrated + weights = the default (`calibration='bootstrap'`, "
              "`weighting='information'`); plain LRT = chi2(1) and Benjamini-Hochberg "
              "(`calibration='chi2', weighting='none'`), on the same data. Power = share of the "
              "changed genes discovered; FDP = share of discoveries that did not change. "
              "![power](../docs/figures/calibration_power.png)", "",
              "| cells per group | fold | test | method | power | FDP | discoveries | "
              "CPU ms/gene |",
              "|---:|---:|---|---|---:|---:|---:|---:|"]
    for r in power_rows:
        lines.append(f"| {r['cells']} | {r['fold']:g} | {r['test'].replace('_', ' ')} | "
                     f"{r['method']} | {r['power']:.3f} | {r['fdp']:.3f} | {r['discoveries']} | "
                     f"{1e3 * r['cpu/gene']:.1f} |")
    lines += ["", "## 3. Coverage of 95% profile intervals by reported regime", "",
              "Capture around 0.3, given. Before = plain profile intervals "
              "(`config.LIMIT_UNION = False`); after = with the limits the regime decision "
              "rejected by only a little (the default; docs/maths.md, \"Profile likelihood\"). "
              "`all genes` includes the `poisson` regime, whose intervals are [0, inf]. "
              "![coverage](../docs/figures/calibration_coverage.png)", "",
              "| cells | regime | genes | before: burst frequency | burst size | "
              "after: burst frequency | burst size |",
              "|---:|---|---:|---:|---:|---:|---:|"]
    for cells in sorted({r["cells"] for r in cov_rows}):
        for regime in ("telegraph", "bimodal", "bursty", "poisson", "all genes"):
            b = next(r for r in cov_rows if r["cells"] == cells and r["regime"] == regime
                     and not r["repair"])
            a = next(r for r in cov_rows if r["cells"] == cells and r["regime"] == regime
                     and r["repair"])
            if not a["n"]:
                continue
            lines.append(f"| {cells} | {regime} | {a['n']} | {pct(b['burst frequency'])} | "
                         f"{pct(b['burst size'])} | {pct(a['burst frequency'])} | "
                         f"{pct(a['burst size'])} |")
    lines += ["", "## Cost", "",
              "CPU seconds per gene in this process (the machine is shared: compare within a "
              "row).", "", "| work | before | after | ratio |", "|---|---:|---:|---:|"]
    for cells in sorted({c for c, _ in cov_cost}):
        b, a = cov_cost[(cells, False)], cov_cost[(cells, True)]
        lines.append(f"| fit with profile intervals (2 targets), {cells} cells | "
                     f"{1e3 * b:.2f} ms | {1e3 * a:.2f} ms | {a / b:.2f} |")
    seen = set()
    for r in null_rows + power_rows:
        key = (r["setting"], r["test"])
        if r["test"] != "burst_frequency" or key in seen:
            continue
        seen.add(key)
        pair = [x for x in (null_rows + power_rows)
                if x["setting"] == r["setting"] and x["test"] == "burst_frequency"]
        new = next(x for x in pair if x["method"] in ("calibrated", "calibrated + weights"))
        old = next(x for x in pair if x["method"] in ("chi2(1)", "plain LRT"))
        lines.append(f"| differential test, {r['setting']} | {1e3 * old['cpu/gene']:.1f} ms | "
                     f"{1e3 * new['cpu/gene']:.1f} ms | "
                     f"{new['cpu/gene'] / old['cpu/gene']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller workloads")
    ap.add_argument("--out", default=str(HERE / "_output" / "calibration.md"))
    ap.add_argument("--parts", default="coverage,null,power",
                    help="comma-separated parts to run: coverage, null, power (default all; "
                         "the figures of the parts not run are left as they are)")
    args = ap.parse_args(argv)
    parts = {x.strip() for x in args.parts.split(",") if x.strip()}
    if not parts or parts - {"coverage", "null", "power"}:
        ap.error(f"--parts: choose among coverage, null, power, got {args.parts!r}")
    t_start = time.perf_counter()
    q = args.quick
    g = (lambda full, quick: quick if q else full)
    null_settings = [
        ("600 cells, capture given (0.15 vs 0.45)", 11, g(1500, 400), 600, (0.15, 0.45), "given"),
        ("600 cells, no capture (same depth)", 12, g(1500, 400), 600, (0.3, 0.3), "none"),
        ("600 cells, capture='total' (0.15 vs 0.45)", 13, g(1000, 300), 600, (0.15, 0.45),
         "total"),
        ("100 cells, capture given (0.15 vs 0.45)", 14, g(1500, 400), 100, (0.15, 0.45),
         "given"),
        ("3000 cells, capture given (0.15 vs 0.45)", 15, g(600, 200), 3000, (0.15, 0.45),
         "given"),
        ("10000 cells, capture given (0.15 vs 0.45)", 16, g(300, 100), 10000, (0.15, 0.45),
         "given"),
    ]
    power_grid = [
        ("800 cells, 1.5-fold", 21, g(900, 450), 800, 1.5),
        ("800 cells, 2-fold", 22, g(900, 450), 800, 2.0),
        ("800 cells, 3-fold", 23, g(1500, 600), 800, 3.0),
        ("200 cells, 3-fold", 24, g(900, 450), 200, 3.0),
        ("2000 cells, 3-fold", 25, g(600, 300), 2000, 3.0),
    ]
    cov_sizes = [(30, g(3000, 1000)), (100, g(1500, 500)), (300, g(1000, 400)),
                 (1000, g(500, 200))]
    FIGURES.mkdir(parents=True, exist_ok=True)
    cov_rows, cov_cost, null_rows, qq, power_rows = [], {}, [], {}, []
    if "coverage" in parts:
        cov_rows, cov_cost = coverage_study(cov_sizes, 1)
        print("coverage done", time.perf_counter() - t_start, flush=True)
        coverage_figure(cov_rows, FIGURES / "calibration_coverage.png")
    if "null" in parts:
        null_rows, qq = null_study(null_settings)
        print("null done", time.perf_counter() - t_start, flush=True)
        qq_figure(qq, null_settings, FIGURES / "calibration_qq.png")
    if "power" in parts:
        power_rows = power_study(power_grid)
        print("power done", time.perf_counter() - t_start, flush=True)
        power_figure(power_rows, FIGURES / "calibration_power.png")
    text = report(null_rows, power_rows, cov_rows, cov_cost, q,
                  time.perf_counter() - t_start)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    (out.parent / "calibration.json").write_text(json.dumps(
        {"null": null_rows, "power": power_rows, "coverage": cov_rows,
         "coverage_cost": {f"{k[0]}_{k[1]}": v for k, v in cov_cost.items()}}, indent=1,
        default=float))
    print(text)


if __name__ == "__main__":
    main()
