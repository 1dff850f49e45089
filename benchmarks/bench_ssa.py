"""SSA throughput: events per second of telegraph.simulate against baselines.

Workload: k_on = 0.5, k_off = 2, k_syn = 50, k_deg = 1 (per unit
time), promoter off and no mRNA at t = 0, sampled at T = 10, 100,000 cells.

Rows, all measured in this run on this machine:
- telegraph (Numba), one thread and all threads, with and without path scores;
- a per-event NumPy/Python loop (the obvious pure-Python direct method),
  timed on a subset of cells and reported per event;
- a hand-written C direct method (xoshiro256+, gcc -O3), if a C compiler is found;
- GillesPy2's C++ SSA solver, if gillespy2 is importable (GillesPy2 does not
  report event counts: its events are taken as cells x the mean events per
  cell measured by telegraph on the same model, an unbiased estimate).

Usage: python benchmarks/bench_ssa.py [--quick]
Writes a markdown table to benchmarks/_output/ssa.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numba  # noqa: E402

from telegraph.ssa import _run  # noqa: E402

K_ON, K_OFF, K_SYN, K_DEG, T = 0.5, 2.0, 50.0, 1.0, 10.0

C_SOURCE = r"""
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <time.h>
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
static inline double next_unit(uint64_t *s) {
  uint64_t r = s[0] + s[3], t = s[1] << 17;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
  return ((double)(r >> 11) + 0.5) * 0x1.0p-53;
}
int main(int argc, char **argv) {
  long nc = atol(argv[1]);
  double kon = atof(argv[2]), koff = atof(argv[3]), ksyn = atof(argv[4]), kdeg = atof(argv[5]);
  double T = atof(argv[6]);
  long long evs = 0; double msum = 0;
  struct timespec a, b;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
  for (long c = 0; c < nc; c++) {
    uint64_t h = mix(12345ULL ^ mix((uint64_t)c)), s[4];
    for (int i = 0; i < 4; i++) { h += 0x9E3779B97F4A7C15ULL; s[i] = mix(h); }
    int g = 0; long m = 0; double t = 0;
    for (;;) {
      double adeg = kdeg * m, a0 = (g ? koff + ksyn : kon) + adeg;
      t -= log(next_unit(s)) / a0;
      if (t > T) break;
      double u = next_unit(s) * a0;
      if (u < adeg) m--; else if (g) { if (u - adeg < ksyn) m++; else g = 0; } else g = 1;
      evs++;
    }
    msum += m;
  }
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
  double dt = (b.tv_sec - a.tv_sec) + 1e-9 * (b.tv_nsec - a.tv_nsec);
  printf("%lld %.9f %.6f\n", evs, dt, msum / nc);
  return 0;
}
"""


def time_telegraph(n_cells, threads, score, repeat):
    """Best of ``repeat`` runs: (process seconds, wall seconds, events).
    The table uses process time for one thread (less sensitive to other
    processes) and wall time for several."""
    numba.set_num_threads(threads)
    best_cpu = best_wall = np.inf
    events = 0
    for r in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        _, _, ev, _, _ = _run(K_ON, K_OFF, K_SYN, K_DEG, n_cells=n_cells, t=T, seed=r,
                              score=score)
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
        events = int(ev.sum())
    return best_cpu, best_wall, events


def numpy_loop(n_cells, seed=0):
    """Direct method with one NumPy propensity vector and two NumPy draws per event."""
    rng = np.random.default_rng(seed)
    change_m = np.array([0, 0, 1, -1])
    change_g = np.array([1, -1, 0, 0])
    events = 0
    for _ in range(n_cells):
        g, m, t = 0, 0, 0.0
        while True:
            a = np.array([K_ON * (1 - g), K_OFF * g, K_SYN * g, K_DEG * m])
            cum = np.cumsum(a)
            t += rng.exponential(1.0 / cum[-1])
            if t > T:
                break
            j = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
            g += change_g[j]
            m += change_m[j]
            events += 1
    return events


def time_numpy(n_cells, repeat):
    best = np.inf
    events = 0
    for r in range(repeat):
        t0 = time.process_time()
        events = numpy_loop(n_cells, seed=r)
        best = min(best, time.process_time() - t0)
    return best, events


def build_c(workdir):
    """Compile the C reference; None without a working C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    src = Path(workdir) / "tel.c"
    exe = Path(workdir) / "tel"
    src.write_text(C_SOURCE)
    res = subprocess.run([cc, "-O3", "-march=native", "-o", str(exe), str(src), "-lm"],
                         capture_output=True, text=True)
    return exe if res.returncode == 0 else None


def _c_cmd(exe, n_cells):
    return [str(exe), str(n_cells), str(K_ON), str(K_OFF), str(K_SYN), str(K_DEG), str(T)]


def time_c(exe, n_cells, repeat):
    """Best process time of the C reference: (seconds, events)."""
    best = np.inf
    events = 0
    for _ in range(repeat):
        out = subprocess.run(_c_cmd(exe, n_cells), capture_output=True, text=True,
                             check=True).stdout.split()
        events, dt = int(out[0]), float(out[1])
        best = min(best, dt)
    return best, events


def parallel_capacity(exe, n_cells, n):
    """How many cores are really free: n x (wall time of one C run) / (wall time
    of n concurrent C runs). On an idle n-core machine this is about n."""
    t0 = time.perf_counter()
    subprocess.run(_c_cmd(exe, n_cells), capture_output=True, check=True)
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    procs = [subprocess.Popen(_c_cmd(exe, n_cells), stdout=subprocess.DEVNULL)
             for _ in range(n)]
    for p in procs:
        p.wait()
    return n * one / (time.perf_counter() - t0)


def time_gillespy2(n_cells, events_per_cell):
    try:
        import gillespy2
    except ImportError:
        return None
    model = gillespy2.Model(name="telegraph")
    rates = [gillespy2.Parameter(name=n, expression=v) for n, v in
             (("k_on", K_ON), ("k_off", K_OFF), ("k_syn", K_SYN), ("k_deg", K_DEG))]
    model.add_parameter(rates)
    g_off = gillespy2.Species(name="G_off", initial_value=1)
    g_on = gillespy2.Species(name="G_on", initial_value=0)
    m = gillespy2.Species(name="M", initial_value=0)
    model.add_species([g_off, g_on, m])
    model.add_reaction([
        gillespy2.Reaction(name="on", reactants={g_off: 1}, products={g_on: 1}, rate="k_on"),
        gillespy2.Reaction(name="off", reactants={g_on: 1}, products={g_off: 1}, rate="k_off"),
        gillespy2.Reaction(name="syn", reactants={g_on: 1}, products={g_on: 1, m: 1},
                           rate="k_syn"),
        gillespy2.Reaction(name="deg", reactants={m: 1}, products={}, rate="k_deg"),
    ])
    model.timespan(np.array([0.0, T]))
    solver = gillespy2.SSACSolver(model=model)          # compiles the C++ solver once
    model.run(solver=solver, number_of_trajectories=2, seed=1)
    t0 = time.perf_counter()
    res = model.run(solver=solver, number_of_trajectories=n_cells, seed=2)
    dt = time.perf_counter() - t0
    mean_m = float(np.mean([traj["M"][-1] for traj in res]))
    return dt, n_cells * events_per_cell, mean_m


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller workload, fewer repeats")
    args = ap.parse_args(argv)
    n_cells = 20_000 if args.quick else 100_000
    n_numpy = 50 if args.quick else 300
    n_gpy = 2_000 if args.quick else 20_000
    repeat = 2 if args.quick else 3
    n_threads = numba.config.NUMBA_NUM_THREADS

    # compile (or load the cache) outside the timings
    _run(K_ON, K_OFF, K_SYN, K_DEG, n_cells=10, t=T, seed=0)
    _run(K_ON, K_OFF, K_SYN, K_DEG, n_cells=10, t=T, seed=0, score=True)

    workdir = tempfile.mkdtemp(prefix="bench_ssa_")
    exe = build_c(workdir)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []   # (name, cells, events, seconds)
    wall = {}
    cpu_ns = {}
    for threads in sorted({1, n_threads}):
        for score in (False, True):
            cpu, w, ev = time_telegraph(n_cells, threads, score, repeat)
            wall[threads, score] = w
            cpu_ns[threads, score] = cpu / ev * 1e9
            label = (f"telegraph (Numba), {threads} thread{'s' if threads > 1 else ''}"
                     + (", with path scores" if score else ""))
            rows.append((label, n_cells, ev, cpu if threads == 1 else w))
    capacity = (parallel_capacity(exe, n_cells, n_threads)
                if exe is not None and n_threads > 1 else None)
    events_per_cell = rows[0][2] / n_cells
    dt, ev = time_numpy(n_numpy, 1 if args.quick else 2)
    rows.append(("per-event NumPy/Python loop, 1 thread", n_numpy, ev, dt))
    c = time_c(exe, n_cells, repeat) if exe is not None else None
    shutil.rmtree(workdir, ignore_errors=True)
    if c is not None:
        rows.append(("C direct method (xoshiro256+, -O3), 1 thread", n_cells, c[1], c[0]))
    gp = time_gillespy2(n_gpy, events_per_cell)
    if gp is not None:
        rows.append(("GillesPy2 SSACSolver (C++), events estimated", n_gpy, int(gp[1]), gp[0]))

    numpy_rate = next(r[2] / r[3] for r in rows if r[0].startswith("per-event NumPy"))
    c_ns = (c[0] / c[1] * 1e9) if c is not None else None
    lines = [
        "# SSA throughput (benchmarks/bench_ssa.py)",
        "",
        f"Workload: k_on={K_ON}, k_off={K_OFF}, k_syn={K_SYN}, k_deg={K_DEG}, T={T}, from "
        f"promoter off and no mRNA; {events_per_cell:.1f} events per cell. "
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Numba {numba.__version__} ({n_threads} threads available). "
        f"{'Quick run. ' if args.quick else ''}Best of {repeat} repeats "
        "(process time for one thread, wall time otherwise); NumPy loop timed on a subset "
        "of cells and compared per event.",
        "",
        "| implementation | cells | events | seconds | events/s | ns/event | vs NumPy loop "
        + ("| vs C |" if c_ns else "|"),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if c_ns else ""),
    ]
    for name, cells, ev, dt in rows:
        rate = ev / dt
        ns = dt / ev * 1e9
        line = (f"| {name} | {cells:,} | {ev:,} | {dt:.3f} | {rate:,.3g} | {ns:.1f} | "
                f"{rate / numpy_rate:,.0f}x |")
        if c_ns:
            line += f" {ns / c_ns:.2f} |"
        lines.append(line)
    if c_ns:
        lines += ["", "`vs C` is the time per event relative to the C direct method "
                  "(1.00 = as fast as C; lower is faster)."]
    if n_threads > 1:
        par = [
            "",
            f"Parallel scaling, 1 -> {n_threads} threads (load average {load_before:.2f} "
            "before the run; on a shared machine other processes take cores):",
            "",
            f"- wall-clock speed-up: {wall[1, False] / wall[n_threads, False]:.2f}x without "
            f"scores, {wall[1, True] / wall[n_threads, True]:.2f}x with scores;",
        ]
        if capacity is not None:
            par.append(f"- cores actually free: {n_threads} concurrent copies of the C program "
                       f"ran {capacity:.2f}x faster than one after another;")
        par.append(f"- CPU time per event summed over threads: {cpu_ns[n_threads, False]:.1f} ns "
                   f"with {n_threads} threads vs {cpu_ns[1, False]:.1f} ns with one (equal "
                   "values: the parallel loop adds no work, so the speed-up is bounded only by "
                   "free cores).")
        lines += par
    if gp is None:
        lines += ["", "GillesPy2 is not installed: its row is omitted."]
    text = "\n".join(lines) + "\n"
    out = HERE / "_output"
    out.mkdir(exist_ok=True)
    (out / "ssa.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
