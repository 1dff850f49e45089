"""Recovery study of the two-species fit, and the bias of the bursty-limit model.

    python benchmarks/joint_recovery.py [--quick] [--cells N] [--genes-per-regime G]

Genes are simulated exactly (Gillespie, ``tg.simulate_anndata(..., splicing=)``)
in three regimes, rates in units of k_splice (k_splice = 1):

* bursty:          k_on 0.1-0.5, k_off 2-8, burst size 2-8, k_deg 0.2-1
* balanced:        k_on, k_off 0.5-2, burst size 3-10, k_deg 0.3-2
* slow switching:  k_on 0.05-0.15, k_off 0.1-0.3 (k_on + k_off < k_deg), burst
                   size 15-40, k_deg 0.8-1.5 -- where the bursty limit cannot hold

each with per-cell capture (``obs["capture"]``), fitted with
``tg.fit(spliced, unspliced=U, capture=...)`` (profile intervals) and with the
bursty-limit model (``model="bursty"``: k_off -> infinity at fixed burst size,
the boundary model Monod fits). Reports per regime: median |log10 error| of
burst frequency, burst size and k_deg/k_splice, the coverage of the 95%
intervals, fit time per gene, and the bursty-limit fit's median log10 bias in
burst size and burst frequency; writes benchmarks/_output/joint_recovery.md and
a figure joint_recovery.png (estimate vs truth, both models).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import telegraph as tg  # noqa: E402

OUT = HERE / "_output"

REGIMES = {
    "bursty": dict(k_on=(0.1, 0.5), k_off=(2.0, 8.0), burst=(2.0, 8.0), k_deg=(0.2, 1.0)),
    "balanced": dict(k_on=(0.5, 2.0), k_off=(0.5, 2.0), burst=(3.0, 10.0), k_deg=(0.3, 2.0)),
    "slow switching": dict(k_on=(0.05, 0.15), k_off=(0.1, 0.3), burst=(15.0, 40.0),
                           k_deg=(0.8, 1.5)),
}


def draw(rng, spec, n):
    lu = {k: np.exp(rng.uniform(np.log(lo), np.log(hi), n)) for k, (lo, hi) in spec.items()}
    return dict(k_on=lu["k_on"], k_off=lu["k_off"], k_syn=lu["burst"] * lu["k_off"],
                k_deg=lu["k_deg"])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cells", type=int, default=None)
    ap.add_argument("--genes-per-regime", type=int, default=None)
    ap.add_argument("--no-bursty", action="store_true")
    args = ap.parse_args(argv)
    n_cells = args.cells or (500 if args.quick else 1000)
    G = args.genes_per_regime or (4 if args.quick else 20)
    rng = np.random.default_rng(14)
    OUT.mkdir(exist_ok=True)
    rows = []
    for r_i, (name, spec) in enumerate(REGIMES.items()):
        kin = draw(rng, spec, G)
        ad = tg.simulate_anndata(n_cells, G, splicing=1.0, seed=100 + r_i, **kin)
        cap = ad.obs["capture"].to_numpy()
        t0 = time.process_time()
        full = tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"], capture=cap,
                      n_jobs=1, progress=False)
        t_full = (time.process_time() - t0) / G
        if not args.no_bursty:
            t0 = time.process_time()
            bur = tg.fit(ad.layers["spliced"], unspliced=ad.layers["unspliced"], capture=cap,
                         model="bursty", interval="wald", n_jobs=1, progress=False)
            t_b = (time.process_time() - t0) / G
        else:
            bur, t_b = None, np.nan
        rows.append((name, ad.var, full, bur, t_full, t_b))
        print(f"{name}: {t_full:.1f} s/gene full, {t_b:.1f} s/gene bursty", flush=True)

    lines = ["# Two species: recovery study and the bursty-limit bias", "",
             f"{G} genes per regime, {n_cells} cells each, per-cell capture (lognormal around "
             "0.3), simulated exactly; rates in units of k_splice. Full model: "
             "`tg.fit(spliced, unspliced=U, capture=...)` with 95% profile intervals. Bursty "
             "limit: `model=\"bursty\"` (k_off -> infinity at fixed burst size). CPU time per "
             "gene on one thread.", "",
             "| regime | quantity | median abs log10 error (full) | 95% coverage (full) | "
             "median log10 bias (bursty limit) | median abs log10 error (bursty limit) |",
             "|---|---|---:|---:|---:|---:|"]
    cover_all = []
    for name, var, full, bur, t_full, t_b in rows:
        truth = {"burst_frequency": var["true_k_on"].to_numpy(),
                 "burst_size": var["true_burst_size"].to_numpy(),
                 "k_deg": var["true_k_deg"].to_numpy()}
        for q in ("burst_frequency", "burst_size", "k_deg"):
            est = full[q].to_numpy()
            lo, hi = full[f"{q}_ci_low"].to_numpy(), full[f"{q}_ci_high"].to_numpy()
            err = np.abs(np.log10(est / truth[q]))
            cov = (lo <= truth[q]) & (truth[q] <= hi)
            cover_all.append(cov)
            if bur is not None:
                eb = bur[q].to_numpy()
                bias = np.nanmedian(np.log10(eb / truth[q]))
                eb_err = np.nanmedian(np.abs(np.log10(eb / truth[q])))
            else:
                bias = eb_err = np.nan
            lines.append(f"| {name} | {q} | {np.nanmedian(err):.3f} | {cov.mean():.2f} "
                         f"({cov.sum()}/{cov.size}) | {bias:+.2f} | {eb_err:.2f} |")
    cov = np.concatenate(cover_all)
    lines += ["", f"Overall 95% coverage: {cov.mean():.3f} ({cov.sum()}/{cov.size}).", "",
              "| regime | full fit s/gene | bursty-limit fit s/gene | regimes called (full) |",
              "|---|---:|---:|---|"]
    for name, var, full, bur, t_full, t_b in rows:
        called = ", ".join(f"{k} {v}" for k, v in full["regime"].astype(str)
                           .value_counts().items())
        lines.append(f"| {name} | {t_full:.1f} | {t_b:.1f} | {called} |")
    (OUT / "joint_recovery.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 3, figsize=(12, 4))
        colours = dict(zip(REGIMES, ["C0", "C1", "C3"]))
        for ax, q in zip(axes, ("burst_frequency", "burst_size", "k_deg")):
            for name, var, full, bur, *_ in rows:
                t = {"burst_frequency": var["true_k_on"], "burst_size": var["true_burst_size"],
                     "k_deg": var["true_k_deg"]}[q].to_numpy()
                ax.scatter(t, full[q], c=colours[name], s=14, label=f"{name} (telegraph)")
                if bur is not None:
                    ax.scatter(t, bur[q], facecolors="none", edgecolors=colours[name], s=14,
                               marker="s", label=f"{name} (bursty limit)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            lim = [min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1],
                                                                ax.get_ylim()[1])]
            ax.plot(lim, lim, "k:", lw=1)
            ax.set_xlabel(f"true {q} (units of k_splice)")
            ax.set_ylabel("estimate")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(OUT / "joint_recovery.png", dpi=120)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
