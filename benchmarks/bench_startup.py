"""Start-up and compilation: each command cold (empty Numba cache) and warm, and where compile time goes.

    python benchmarks/bench_startup.py                  # every command, cold and warm
    python benchmarks/bench_startup.py --quick          # fewer commands and warm repeats
    python benchmarks/bench_startup.py --against main   # also a git revision's code, same run

Every figure comes from a fresh child process, this checkout first on the path:

- per command (``telegraph --version``; ``telegraph fit --example`` with profile and with Wald
  intervals; ``telegraph test`` of the example's two groups; ``tg.simulate`` of 2,000 cells), the
  wall and CPU time (user + system of the child) with an empty cache directory
  (``NUMBA_CACHE_DIR``: compilation included) and then with that directory filled (the median of
  the warm runs), as ratios to ``python -c "import numpy"`` timed in the same run; with
  ``--against REV`` the same for that revision's code (exported with ``git archive``) and the
  ratios of this checkout to it;
- warm start-up before the first gene: the CPU and wall time of a warm ``telegraph fit
  --example`` from the interpreter's start to the first call of the fit kernel, with that
  kernel loaded from the cache (imports, the example's data, the count histograms, loading
  the compiled kernels);
- the per-kernel compile table of a cold ``telegraph fit --example`` (profile and Wald
  intervals) and ``telegraph test``:
  for each kernel (Numba dispatcher), how many versions were compiled and the CPU seconds spent
  compiling it, exclusive of and including the kernels it calls (Numba's compile events).

Each checkout's bytecode is written first (``python -m compileall``, as ``pip install``
does), and the children may use it (``PYTHONDONTWRITEBYTECODE`` is not passed on). Writes
``benchmarks/_output/startup.md``. The machine is shared: CPU times are the figures to
trust, wall times depend on the load (both are reported).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUTPUT = HERE / "_output"

SIMULATE = ("import numpy as np, telegraph as tg; "
            "c = tg.simulate(0.5, 2.0, 50.0, 1.0, t=10.0, n_cells=2000, seed=1); "
            "print(float(np.asarray(c).mean()))")

# run in a child: Numba's compile events, per dispatcher, printed as JSON on the last line
COMPILE_PROBE = r"""
import collections, json, sys, time
from numba.core import event
excl = collections.defaultdict(float); incl = collections.defaultdict(float)
count = collections.Counter(); stack = []
def name(d):
    return d.py_func.__module__ + "." + d.py_func.__qualname__
class Listener(event.Listener):
    def on_start(self, ev):
        stack.append((ev.data["dispatcher"], time.process_time(), [0.0]))
    def on_end(self, ev):
        d, t0, inner = stack.pop()
        dt = time.process_time() - t0
        incl[name(d)] += dt; excl[name(d)] += dt - inner[0]; count[name(d)] += 1
        if stack:
            stack[-1][2][0] += dt
event.register("numba:compile", Listener())
from telegraph.cli import main
try:
    main()   # as the console script does (arguments from sys.argv)
except SystemExit:
    pass
print(json.dumps({k: [excl[k], incl[k], count[k]] for k in incl}))
"""

# run in a child: CPU and wall time up to the first call of the fit kernel, that kernel
# loaded from the cache (as its first call would load it before fitting a gene)
FIRST_GENE_PROBE = r"""
import json, resource, sys, threading, time
import numba
import telegraph.kernels.fit as kfit
kernel = kfit.fit_genes
seen = []
lock = threading.Lock()
def first(*args):
    with lock:
        if not seen:
            kernel.compile(tuple(numba.typeof(a) for a in args))
            ru = resource.getrusage(resource.RUSAGE_SELF)
            seen.append((time.time(), ru.ru_utime + ru.ru_stime))
    return kernel(*args)
first.overloads, first._cache = kernel.overloads, kernel._cache   # read by is_compiled
kfit.fit_genes = first
from telegraph.cli import main
main()   # as the console script does (arguments from sys.argv)
print(json.dumps(seen[0]))
"""


def commands(example: Path, quick: bool):
    """(label, argv after the interpreter) of the commands timed."""
    fit = ["-m", "telegraph", "fit", "--example", "--no-progress", "--table", "out.csv"]
    cmds = [("telegraph --version", ["-m", "telegraph", "--version"]),
            ("telegraph fit --example", fit),
            ("telegraph fit --example --interval wald", fit + ["--interval", "wald"])]
    if not quick:
        cmds += [("telegraph test (example, groups A vs B)",
                  ["-m", "telegraph", "test", str(example), "--groupby", "group", "--groups",
                   "A", "B", "--no-progress", "--table", "out.csv"]),
                 ("tg.simulate (2,000 cells)", ["-c", SIMULATE])]
    return cmds


def run(argv, env, cwd):
    """(wall s, CPU s, stdout) of one child process."""
    before = os.times()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], env=env, cwd=cwd, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user
           + after.children_system - before.children_system)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, cpu, proc.stdout


def env_for(code: Path, cache: Path):
    env = dict(os.environ, PYTHONPATH=str(code), NUMBA_CACHE_DIR=str(cache), MPLBACKEND="Agg")
    env.pop("PYTHONSTARTUP", None)
    # an installed package has its bytecode (pip compiles it at install): with
    # PYTHONDONTWRITEBYTECODE inherited, every child would compile every module of the
    # checkout from source again (~0.1-0.2 s of each start-up a user does not pay)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_bytecode(code: Path) -> None:
    """Write the checkout's bytecode once, as ``pip install`` does."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(code / "telegraph")],
                   check=True, capture_output=True)


def export(rev: str, dest: Path) -> Path:
    """The code of git revision ``rev`` in ``dest`` (git archive)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "telegraph"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def time_commands(code: Path, work: Path, cmds, n_warm: int):
    """{label: {cold_wall, cold_cpu, warm_wall, warm_cpu}} for one checkout."""
    out = {}
    for i, (label, argv) in enumerate(cmds):
        cache = work / f"cache-{code.name}-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        env = env_for(code, cache)
        cold = run(argv, env, work)
        warm = [run(argv, env, work) for _ in range(n_warm)]
        out[label] = dict(cold_wall=cold[0], cold_cpu=cold[1],
                          warm_wall=statistics.median(w[0] for w in warm),
                          warm_cpu=statistics.median(w[1] for w in warm))
        print(f"  {code.name}: {label}: cold {cold[1]:.1f} s CPU ({cold[0]:.1f} s wall), "
              f"warm {out[label]['warm_cpu']:.2f} s CPU", file=sys.stderr, flush=True)
    return out


def first_gene(code: Path, work: Path, n: int):
    """Median (CPU s, wall s) of a warm ``telegraph fit --example`` before the first gene."""
    cache = work / f"cache-{code.name}-first"
    env = env_for(code, cache)
    argv = ["--example", "--no-progress", "--table", "out.csv"]
    run(["-c", FIRST_GENE_PROBE, "fit", *argv], env, work)  # fills the cache
    cpu, wall = [], []
    for _ in range(n):
        t0 = time.time()
        _, _, stdout = run(["-c", FIRST_GENE_PROBE, "fit", *argv], env, work)
        at, c = json.loads(stdout.strip().splitlines()[-1])
        cpu.append(c)
        wall.append(at - t0)
    return statistics.median(cpu), statistics.median(wall)


def compile_table(code: Path, work: Path, args):
    cache = work / f"cache-{code.name}-compile-{'-'.join(args[:1] + args[-1:])}"
    shutil.rmtree(cache, ignore_errors=True)
    _, cpu, stdout = run(["-c", COMPILE_PROBE, *args], env_for(code, cache), work)
    return json.loads(stdout.strip().splitlines()[-1]), cpu


def fmt_ratio(a, b):
    return f"{a / b:.2f}" if b > 0 else "-"


def report(results, base, first, tables, against, quick):
    lines = ["# Start-up and compilation", ""]
    this = results["this checkout"]
    fit = this["telegraph fit --example"]
    version = this["telegraph --version"]
    head = (f"Headline: first `telegraph fit --example` with an empty cache {fit['cold_cpu']:.0f} s "
            f"CPU ({fit['cold_wall']:.0f} s wall), compilation included; warm "
            f"{fit['warm_cpu']:.1f} s CPU, of which {first['this checkout'][0]:.2f} s before the "
            f"first gene; `telegraph --version` {version['warm_cpu']:.2f} s CPU "
            f"({version['warm_wall']:.2f} s wall)")
    if against:
        old = results[against]["telegraph fit --example"]
        head += (f"; against {against} in the same run: cold fit {old['cold_cpu']:.0f} s CPU "
                 f"({fit['cold_cpu'] / old['cold_cpu']:.2f}x)")
    lines += [head + ".", ""]
    lines.append(f"Baseline in the same run: `python -c \"import numpy\"`, {base[1]:.2f} s CPU, "
                 f"{base[0]:.2f} s wall (median of 5). Cold: an empty `NUMBA_CACHE_DIR` "
                 "(everything the command needs is compiled); warm: the same directory again "
                 "(median of the warm runs). CPU = user + system time of the command's process.")
    lines.append("")
    names = list(results)
    head = ["command"] + [f"{n}: {k}" for n in names for k in
                          ("cold CPU s", "cold wall s", "warm CPU s", "warm wall s",
                           "warm CPU / numpy")]
    if against:
        head += ["cold CPU: this / " + against, "warm CPU: this / " + against]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in results[names[0]]:
        row = [label]
        for n in names:
            r = results[n][label]
            row += [f"{r['cold_cpu']:.1f}", f"{r['cold_wall']:.1f}", f"{r['warm_cpu']:.2f}",
                    f"{r['warm_wall']:.2f}", fmt_ratio(r["warm_cpu"], base[1])]
        if against:
            a, b = results["this checkout"][label], results[against][label]
            row += [fmt_ratio(a["cold_cpu"], b["cold_cpu"]), fmt_ratio(a["warm_cpu"], b["warm_cpu"])]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for n, (cpu, wall) in first.items():
        lines.append(f"Warm `telegraph fit --example` before the first gene ({n}): {cpu:.2f} s CPU, "
                     f"{wall:.2f} s wall ({cpu / base[1]:.1f}x the CPU of importing NumPy): "
                     "imports, the example's data, the count histograms, the compiled kernels "
                     "loaded from the cache.")
    lines.append("")
    for (n, what), (table, cpu) in tables.items():
        total = sum(v[0] for v in table.values())
        versions = sum(v[2] for k, v in table.items() if k.startswith("telegraph."))
        kernels = sum(1 for k in table if k.startswith("telegraph."))
        lines += [f"## Compilation of a cold `telegraph {what}` ({n})", "",
                  f"{total:.1f} s CPU compiling ({cpu:.1f} s CPU for the whole command); "
                  f"{kernels} telegraph kernels compiled in {versions} versions. Exclusive = "
                  "compiling that kernel alone (its own typing, lowering, and the optimisation "
                  "and machine code of everything linked into it); inclusive adds the kernels "
                  "it calls (compiled first, on demand). Kernels under 0.2 s inclusive are "
                  "summed in the last row.", "",
                  "| kernel | versions | CPU s exclusive | CPU s inclusive |", "|---|---|---|---|"]
        rest = [0, 0.0]
        for k, (ex, inc, c) in sorted(table.items(), key=lambda kv: -kv[1][0]):
            if inc < 0.2 and c == 1:
                rest[0] += 1
                rest[1] += ex
                continue
            lines.append(f"| {k.replace('telegraph.', '')} | {c} | {ex:.2f} | {inc:.2f} |")
        lines += [f"| {rest[0]} others | | {rest[1]:.2f} | |", ""]
    if quick:
        lines.append("(--quick: the test and simulate commands and the `telegraph test` compile "
                     "table left out)")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer commands and repeats")
    ap.add_argument("--against", metavar="REV",
                    help="also time this git revision's code (e.g. main), in the same run")
    args = ap.parse_args()
    OUTPUT.mkdir(exist_ok=True)
    n_warm = 2 if args.quick else 3
    with tempfile.TemporaryDirectory(prefix="tg-startup-") as tmp:
        work = Path(tmp)
        checkouts = {"this checkout": ROOT}
        if args.against:
            checkouts[args.against] = export(args.against, work / "against")
        example = work / "example.h5ad"
        run(["-c", f"import telegraph as tg; tg.datasets.example().write_h5ad({str(example)!r})"],
            env_for(ROOT, work / "cache-example"), work)
        cmds = commands(example, args.quick)
        base = [run(["-c", "import numpy"], dict(os.environ), work)[:2] for _ in range(5)]
        base = (statistics.median(b[0] for b in base), statistics.median(b[1] for b in base))
        results, first, tables = {}, {}, {}
        for name, code in checkouts.items():
            compile_bytecode(code)
            print(f"{name}: commands", file=sys.stderr, flush=True)
            results[name] = time_commands(code, work, cmds, n_warm)
            first[name] = first_gene(code, work, n_warm)
            probes = [["fit", "--example", "--no-progress", "--table", "out.csv"],
                      ["fit", "--example", "--no-progress", "--table", "out.csv", "--interval",
                       "wald"]]
            if not args.quick:
                probes.append(["test", str(example), "--groupby", "group", "--groups", "A", "B",
                               "--no-progress", "--table", "out.csv"])
            for p in probes:
                print(f"{name}: compile table of {p[0]}", file=sys.stderr, flush=True)
                label = ("test" if p[0] != "fit" else
                         "fit --example" + (" --interval wald" if "wald" in p else ""))
                tables[(name, label)] = compile_table(code, work, p)
    text = report(results, base, first, tables, args.against, args.quick)
    (OUTPUT / "startup.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
