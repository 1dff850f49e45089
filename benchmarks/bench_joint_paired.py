"""Two-species fits, before and after: per-gene CPU times and intervals of this checkout
and of a baseline checkout, in one command.

Each checkout runs in its own subprocess (a process imports one ``telegraph``) on the same
genes: bench_joint_fit.py's generator (rates log-uniform in units of k_splice: k_on 0.1-2,
k_off 0.3-5, burst size 2-20, k_deg 0.2-2), simulated exactly with per-cell capture
(``tg.simulate_anndata(..., splicing=1.0)``), each gene fitted on its own with
``tg.fit(spliced, unspliced=U, capture=...)`` (default profile intervals, one thread; a
throw-away fit first, so compilation and cache loading stay out of the timings). Settings:
1,000 cells with per-cell capture, the same counts fitted with capture 1 (one capture level),
and 10,000 cells with per-cell capture. The runs alternate (baseline, this, baseline, ...)
``--repeats`` times and each gene's time is its best over the repeats (CPU time; the machine
is shared). Reported per setting: median, mean and maximum per gene, their ratios
(baseline / this); how far the interval ends moved (largest and median |d log| where both are
finite, and how many became unbounded or bounded); coverage of the true burst frequency,
burst size and k_deg by both.

``--wide``: instead, kinetics over the box of the accuracy requirement
(``bench_joint_fit.wide_genes``: k_on, k_off 0.01-100, k_deg 0.05-20, mean unspliced up to 50
and spliced up to 500), 16 genes at 2,000 cells with capture 1 and 16 with per-cell capture.

Usage: python benchmarks/bench_joint_paired.py --baseline PATH [--repeats 2] [--wide]
Writes benchmarks/_output/joint_paired.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import publish  # noqa: E402  (print and write the report)
from bench_tail_paired import alternate, run_worker  # noqa: E402  (paired runs, one way)
#: (cells, capture, genes, seed, generator)
SETTINGS = [(1000, "per-cell capture", 24, 11, "genes"), (1000, "capture 1", 16, 12, "genes"),
            (10000, "per-cell capture", 12, 13, "genes")]
#: --wide: the kinetics of the accuracy box (bench_joint_fit.wide_genes), 2,000 cells
WIDE = [(2000, "capture 1", 16, 1, "wide_genes"), (2000, "per-cell capture", 16, 2, "wide_genes")]
ENDS = [f"{q}_ci_{s}" for q in ("burst_frequency", "burst_size", "k_deg") for s in ("low", "high")]

WORKER = r"""
import json, sys, time
sys.path.insert(0, {tree!r}); sys.path.insert(0, {bench!r})
import numpy as np, numba
import telegraph as tg                 # the tree's, before bench_joint_fit puts this checkout first
assert tg.__file__.startswith({tree!r}), tg.__file__
import bench_joint_fit
numba.set_num_threads(1)
warm = tg.simulate_anndata(200, 1, splicing=1.0, seed=1, k_on=[0.5], k_off=[1.0], k_syn=[10.0],
                           k_deg=[0.5])
tg.fit(warm.layers["spliced"], unspliced=warm.layers["unspliced"], capture=warm.obs["capture"],
       n_jobs=1, progress=False)
out = {{}}
for n, label, G, seed, gen in {settings!r}:
    kin = getattr(bench_joint_fit, gen)(np.random.default_rng(seed), G)
    ad = tg.simulate_anndata(n, G, splicing=1.0, seed=n + seed,
                             # the default settings fit the same per-cell-capture counts with
                             # capture 1 (speed only); --wide simulates capture 1 for them
                             capture=1.0 if gen == "wide_genes" and label == "capture 1"
                             else None, **kin)
    S, U = ad.layers["spliced"], ad.layers["unspliced"]
    c = 1.0 if label == "capture 1" else ad.obs["capture"].to_numpy()
    times, rows = [], []
    for g in range(G):
        t = time.process_time()
        r = tg.fit(S[:, [g]], unspliced=U[:, [g]], capture=c, n_jobs=1, progress=False)
        times.append(time.process_time() - t)
        rows.append({{k: (float(r[k].iloc[0]) if k != "regime" else r[k].iloc[0])
                     for k in {ends!r} + ["regime"]}})
    truth = dict(burst_frequency=kin["k_on"].tolist(),
                 burst_size=(kin["k_syn"] / kin["k_off"]).tolist(),
                 k_deg=kin["k_deg"].tolist())
    out[f"{{n}}|{{label}}"] = dict(times=times, rows=rows, truth=truth)
print(json.dumps(out))
"""


def run(tree, settings=None):
    code = WORKER.format(tree=str(Path(tree).resolve()), bench=str(HERE),
                         settings=SETTINGS if settings is None else settings, ends=ENDS)
    return run_worker(code, tree)


def covered(rows, truth, q):
    lo = np.array([r[f"{q}_ci_low"] for r in rows])
    hi = np.array([r[f"{q}_ci_high"] for r in rows])
    t = np.array(truth[q])
    # NaN: the gene was not fitted (too_large, or regime 'telegraph' with NaN before
    # 8e3f712); not covered
    return int(np.sum((lo <= t) & (t <= hi)))


def moved(before, after):
    """(largest |d log|, median |d log|, became unbounded, became bounded) over interval ends."""
    d, opened, closed = [], 0, 0
    for rb, ra in zip(before, after):
        for e in ENDS:
            b, a = rb[e], ra[e]
            fb = np.isfinite(b) and b > 0
            fa = np.isfinite(a) and a > 0
            if fb and fa:
                d.append(abs(np.log(a) - np.log(b)))
            elif fb and not fa:
                opened += 1
            elif fa and not fb:
                closed += 1
    d = np.array(d) if d else np.zeros(1)
    return float(d.max()), float(np.median(d)), opened, closed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", required=True, help="a checkout of the code to compare with")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "_output" / "joint_paired.md"))
    ap.add_argument("--wide", action="store_true",
                    help="the accuracy box's kinetics (bench_joint_fit.wide_genes), 2,000 cells")
    args = ap.parse_args(argv)
    settings = WIDE if args.wide else SETTINGS
    runs, t_start, load0, load1 = alternate(lambda tree: run(tree, settings), args.baseline,
                                            HERE.parent, args.repeats)
    lines = ["# Two species, before and after (bench_joint_paired.py)", "",
             f"bench_joint_fit.py's {'wide_genes' if args.wide else 'genes'} generator; "
             f"default profile intervals, one thread, each gene "
             f"fitted on its own; each gene's CPU time the best of {args.repeats} runs alternating "
             f"baseline / this ({t_start}, load average {load0:.1f} at start, {load1:.1f} at "
             "end). Ratios: baseline / this. Interval ends: burst frequency, burst size and "
             "k_deg, low and high.", "",
             "| cells | capture | genes | median: before | after | ratio | mean: before | after "
             "| ratio | max: before | after | ratio | ends moved: max / median abs(d log) | "
             "ends opened / closed | coverage bf / bs / k_deg: before | after |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|"]
    for n, label, G, _, _ in settings:
        key = f"{n}|{label}"
        tb = np.min([r[key]["times"] for r in runs["baseline"]], axis=0)
        ta = np.min([r[key]["times"] for r in runs["this"]], axis=0)
        rb, ra = runs["baseline"][0][key]["rows"], runs["this"][0][key]["rows"]
        truth = runs["this"][0][key]["truth"]
        cells = [f"{n:,}", label, str(G)]
        for f in (np.median, np.mean, np.max):
            b, a = float(f(tb)), float(f(ta))
            cells += [f"{b:.2f} s", f"{a:.2f} s", f"{b / a:.2f}x"]
        mx, md, opened, closed = moved(rb, ra)
        cells += [f"{mx:.3g} / {md:.2g}", f"{opened} / {closed}"]
        for rows in (rb, ra):
            cells.append(" / ".join(f"{covered(rows, truth, q)}"
                                    for q in ("burst_frequency", "burst_size", "k_deg")))
        lines.append("| " + " | ".join(cells) + " |")
    publish(lines, args.out)


if __name__ == "__main__":
    main()
