"""The slow tail, before and after: per-gene CPU times of the realistic mix on this
checkout and on a baseline checkout, in one command.

Each checkout runs in its own subprocess (a process imports one ``telegraph``), on the same
genes as bench_tail.py (its generator, seed and order; the 100-cell settings are drawn but not
timed), one Numba thread, the default profile intervals;
the runs alternate (baseline, this, baseline, this, ...) ``--repeats`` times, and each gene's
time is its best over the repeats (CPU time; the machine is shared). Every setting fits
throw-away genes first (compilation and cache loading stay out of the timings). Reported per
setting: median, mean, 99th percentile and maximum per gene for both, their ratios
(baseline / this), and max / median.

Usage: python benchmarks/bench_tail_paired.py --baseline PATH [--repeats 3] [--genes 300]
       [--cells 100 1000 10000]
Writes benchmarks/_output/tail_paired.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import publish  # noqa: E402  (print and write the report)
CELLS = (1000, 10000)      # the settings timed unless --cells says otherwise
LABELS = ("capture 1", "per-cell capture")

WORKER = r"""
import json, sys
sys.path.insert(0, {tree!r}); sys.path.insert(0, {bench!r})
import _one_thread                    # one-thread BLAS pools, before numpy
import numpy as np, numba
import telegraph                      # the tree's, before bench_tail puts this checkout first
from telegraph.inputs import FitSettings
from bench_tail import draw_genes, mix_settings, per_gene_cpu, sample
assert telegraph.__file__.startswith({tree!r}), telegraph.__file__
import telegraph.fitting
assert telegraph.fitting.__file__.startswith({tree!r})
numba.set_num_threads(1)
settings = FitSettings()
rng = np.random.default_rng(2026)
sample(rng, *draw_genes(rng, 3), 50, np.ones(50))     # bench_tail.py's warm-up draw
out = {{}}
# bench_tail.py's stream of genes, setting by setting
for nc, label, X, cap in mix_settings(rng, {genes}, (100, 1000, 10000)):
    if [nc, label] not in [list(s) for s in {settings!r}]:
        continue
    # bench_tail's timing loop (throw-away genes first, then one gene per call)
    t = per_gene_cpu(X, cap, settings)
    out[f"{{nc}}|{{label}}"] = t.tolist()
print(json.dumps(out))
"""


def run_worker(code: str, tree) -> dict:
    """Run a worker script in a fresh interpreter in ``tree`` (no PYTHONPATH: the script
    puts its checkout first) and return the JSON its last line prints."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=str(tree))
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def alternate(run_tree, baseline, this, repeats: int):
    """``run_tree(baseline)`` and ``run_tree(this)`` alternately ``repeats`` times.
    Returns ({"baseline": [...], "this": [...]}, start time, load average at start, at end)."""
    runs = {"baseline": [], "this": []}
    t_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load0 = os.getloadavg()[0]
    for _ in range(repeats):
        runs["baseline"].append(run_tree(baseline))
        runs["this"].append(run_tree(this))
    return runs, t_start, load0, os.getloadavg()[0]


def run(tree, genes, settings):
    code = WORKER.format(tree=str(Path(tree).resolve()), bench=str(HERE), settings=settings,
                         genes=genes)
    return {k: np.array(v) for k, v in run_worker(code, tree).items()}


def stats(t):
    med = float(np.median(t))
    return dict(median=med, mean=float(t.mean()), p99=float(np.quantile(t, 0.99)),
                max=float(t.max()), max_over_median=float(t.max() / med))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", required=True, help="a checkout of the code to compare with")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--genes", type=int, default=300)
    ap.add_argument("--cells", type=int, nargs="+", default=list(CELLS),
                    choices=(100, 1000, 10000), help="the numbers of cells timed (default: "
                    "1000 10000)")
    ap.add_argument("--out", default=str(HERE / "_output" / "tail_paired.md"))
    args = ap.parse_args(argv)
    settings = [(nc, label) for nc in sorted(set(args.cells)) for label in LABELS]
    runs, t_start, load0, load1 = alternate(lambda tree: run(tree, args.genes, settings),
                                            args.baseline, HERE.parent, args.repeats)
    lines = ["# The slow tail, before and after (bench_tail_paired.py)", "",
             f"{args.genes} genes per setting (bench_tail.py's realistic mix), default profile "
             f"intervals, one thread; each gene's CPU time the best of {args.repeats} runs "
             f"alternating baseline / this ({t_start}, load average {load0:.1f} at start, "
             f"{load1:.1f} at end). Ratios: baseline / this.", "",
             "| cells | capture | median: before | after | ratio | mean: before | after | ratio | "
             "p99: before | after | ratio | max: before | after | ratio | max/median: before | "
             "after |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ms = lambda x: f"{x * 1e3:.2f} ms"  # noqa: E731
    for nc, label in settings:
        key = f"{nc}|{label}"
        b = stats(np.min([r[key] for r in runs["baseline"]], axis=0))
        a = stats(np.min([r[key] for r in runs["this"]], axis=0))
        cells = [f"{nc:,}", label]
        for s in ("median", "mean", "p99", "max"):
            cells += [ms(b[s]), ms(a[s]), f"{b[s] / a[s]:.2f}x"]
        cells += [f"{b['max_over_median']:.1f}", f"{a['max_over_median']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    # the spread of the paired ratio of means over the repeats
    lines += ["", "Ratio of mean per-gene CPU (baseline / this) in each repeat: " + "; ".join(
        f"{nc:,} {label}: " + ", ".join(
            f"{rb[f'{nc}|{label}'].mean() / rt[f'{nc}|{label}'].mean():.2f}"
            for rb, rt in zip(runs["baseline"], runs["this"]))
        for nc, label in settings) + "."]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
