"""Where the realistic mix's time goes: per-gene CPU by regime and by what a fit computes.

The genes of one bench_tail.py setting (its generator, seed and stream of genes: the same
genes as its table; default 100 cells with per-cell capture), each fitted alone on one
Numba thread (bench_tail.per_gene_cpu: throw-away genes first, each gene's best over
``--repeats`` passes), under settings that leave out one stage at a time:

- the default (profile intervals of burst frequency and burst size, goodness of fit);
- without the goodness of fit (``gof_min_expected=0``);
- profile intervals of burst frequency only, of burst size only (the other Wald);
- Wald intervals, with and without the goodness of fit.

Reported: the mean CPU per gene over all genes, over the first ``--first`` (the genes
bench_tail.py times the txburst method on, so its speed-up is that method's mean over
this mean), and by the regime the default fit gives, with the number of genes in each.
Differences between rows are the stages' costs (e.g. default - Wald: the profile ends;
default - without the goodness of fit: that test).

Usage: python benchmarks/bench_tail_stages.py [--cells 100] [--capture per-cell|1]
       [--genes 300] [--repeats 3] [--first 100]
Writes benchmarks/_output/tail_stages.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _one_thread  # noqa: E402,F401  (one-thread BLAS pools: before numpy)

import numpy as np  # noqa: E402

from _report import publish  # noqa: E402  (print and write the report)
from bench_tail import draw_genes, mix_settings, per_gene_cpu, sample  # noqa: E402

import numba  # noqa: E402

import telegraph as tg  # noqa: E402
from telegraph.inputs import FitSettings  # noqa: E402

SETTINGS = (
    ("default (profile, goodness of fit)", {}),
    ("without the goodness of fit", {"gof_min_expected": 0.0}),
    ("profile: burst frequency only", {"profile": ("burst_frequency",)}),
    ("profile: burst size only", {"profile": ("burst_size",)}),
    ("Wald", {"interval": "wald"}),
    ("Wald, without the goodness of fit", {"interval": "wald", "gof_min_expected": 0.0}),
)


def genes_of_setting(n_cells: int, per_cell: bool, n_genes: int):
    """bench_tail.py's genes at one setting: (counts, capture or None), from its seed,
    warm-up draw and stream of settings (bench_tail.mix_settings), so they are its own."""
    rng = np.random.default_rng(2026)
    sample(rng, *draw_genes(rng, 3), 50, np.ones(50))
    for nc, label, X, cap in mix_settings(rng, n_genes, (100, 1000, 10000)):
        if nc == n_cells and per_cell == (cap is not None):
            return X, cap
    raise ValueError(f"bench_tail.py has no setting of {n_cells} cells")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=100, choices=(100, 1000, 10000))
    ap.add_argument("--capture", default="per-cell", choices=("per-cell", "1"))
    ap.add_argument("--genes", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--first", type=int, default=100,
                    help="the leading genes also averaged alone (bench_tail.py's txburst set)")
    ap.add_argument("--out", default=str(HERE / "_output" / "tail_stages.md"))
    args = ap.parse_args(argv)
    per_cell = args.capture == "per-cell"
    X, cap = genes_of_setting(args.cells, per_cell, args.genes)
    tg.fit(X[:, :3], capture=cap, progress=False)        # compile outside the timings
    numba.set_num_threads(1)
    regime = tg.fit(X, capture=cap, progress=False)["regime"].to_numpy()
    names = sorted(set(regime))
    first = min(args.first, args.genes)
    lines = ["# Where the realistic mix's time goes", "",
             f"{args.genes} genes of bench_tail.py's setting of {args.cells:,} cells with "
             f"{'per-cell capture' if per_cell else 'capture 1'}; CPU time per gene on one "
             f"thread, the best of {args.repeats} passes ({time.strftime('%Y-%m-%d %H:%M')}, "
             f"telegraph {tg.__version__}, numba {numba.__version__}). Regimes of the "
             "default fit: " + ", ".join(f"{r} {int((regime == r).sum())}" for r in names)
             + ".", "",
             f"| fit | mean, all genes | mean, first {first} | "
             + " | ".join(f"{r}" for r in names) + " |",
             "|---|---:|---:|" + "---:|" * len(names)]
    us = lambda t: f"{t * 1e6:.0f} us"  # noqa: E731
    mean = {}
    for label, kw in SETTINGS:
        t = per_gene_cpu(X, cap, FitSettings(**kw), args.repeats)
        mean[label] = t.mean()
        lines.append(f"| {label} | {us(t.mean())} | {us(t[:first].mean())} | "
                     + " | ".join(us(t[regime == r].mean()) for r in names) + " |")
    default, wald = mean[SETTINGS[0][0]], mean[SETTINGS[4][0]]
    lines += ["", f"Headline: {args.cells:,} cells, "
              f"{'per-cell capture' if per_cell else 'capture 1'}: {us(default)} per gene, of "
              f"which the profile ends {us(default - wald)}, the goodness of fit "
              f"{us(default - mean[SETTINGS[1][0]])}, the Wald fit without it "
              f"{us(mean[SETTINGS[5][0]])}"]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
