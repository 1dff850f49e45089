"""Run every benchmark and assemble benchmarks/RESULTS.md.

    python benchmarks/run.py            # full workloads
    python benchmarks/run.py --quick    # smaller workloads (each script's --quick)

Every benchmark script in this folder (``bench_*.py`` and ``larsson_*.py``)
runs in its own subprocess, one after the other, with this checkout of
``telegraph`` first on the path. Each one times telegraph against baselines
measured in the same run and writes a markdown report to
``benchmarks/_output/``; this script collects those reports into
``benchmarks/RESULTS.md`` with the machine, the versions, the date, the
git commit, and a headline section of ratios at the top. A script that fails
or times out is reported as such (with the end of its error output); the
others still run.

Options: ``--only NAME [NAME ...]`` runs a subset (e.g. ``--only bench_ssa``),
``--timeout SECONDS`` per script, ``--out PATH`` for the assembled report.
Benchmarks are never run by the test suite or CI: speed depends on the
machine and its load, so the numbers live here, as ratios.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUTPUT = HERE / "_output"

# Scripts run in this order (the ones present); any other bench_*.py or
# larsson_*.py found in the folder runs after them, alphabetically.
ORDER = ["bench_startup", "bench_tail", "bench_tail_stages", "bench_cli",
         "bench_capture_binning", "bench_likelihood", "bench_joint", "bench_joint_fit",
         "joint_recovery", "bench_labelled", "labelled_recovery", "bench_ssa", "bench_fit",
         "bench_histogram", "bench_scale", "bench_calibration", "bench_design",
         "larsson_s_vs_g2m"]

TITLES = {
    "bench_startup": "Start-up and compilation: each command cold and warm",
    "bench_tail": "The realistic mix: per-gene cost distribution and start-up",
    "bench_tail_stages": "The realistic mix: where its time goes, by regime and stage",
    "bench_cli": "End to end: `telegraph fit` on a file against the txburst method",
    "bench_capture_binning": "Capture groups: error of the binned likelihood",
    "bench_likelihood": "Likelihood and gradient of one gene",
    "bench_joint": "Two species: likelihood and gradient of one gene",
    "bench_joint_fit": "Two species: fit time per gene",
    "joint_recovery": "Two species: recovery study and the bursty-limit bias",
    "bench_labelled": "Metabolic labelling: the (new, old) law, accuracy and speed per gene",
    "labelled_recovery": "Metabolic labelling: recovery, coverage, precision vs t_label x k_deg, "
                         "fit time",
    "bench_ssa": "Gillespie simulation (SSA)",
    "bench_fit": "Per-gene fits",
    "bench_histogram": "Count histograms (the pass over the matrix)",
    "bench_scale": "Atlas scale: streaming and Dask",
    "bench_calibration": "Calibrated inference: null p-values, power, interval coverage",
    "bench_design": "Experiment design",
    "larsson_s_vs_g2m": "Real data: Larsson et al. 2019, S vs G2/M",
}

# For scripts without a --quick flag: arguments that give a smaller workload.
QUICK_FALLBACK = {
    "bench_tail_stages": ["--genes", "60", "--repeats", "1", "--first", "20"],
    "bench_capture_binning": ["--genes", "10"],
    "bench_histogram": ["--cells", "20000", "--repeat", "2"],
    "larsson_s_vs_g2m": ["--genes", "1000"],
}


# --------------------------------------------------------------------------- discovery

def discover(only=None):
    """Benchmark scripts in run order, as (name, path)."""
    found = {p.stem: p for p in sorted(HERE.glob("*.py"))
             if p.stem.startswith(("bench_", "larsson_"))}
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    if only:
        unknown = [n for n in only if n not in found]
        if unknown:
            raise SystemExit(f"run.py: no benchmark script named {', '.join(unknown)} in "
                             f"{HERE} (available: {', '.join(names)})")
        names = [n for n in names if n in only]
    return [(n, found[n]) for n in names]


def command(path: Path, quick: bool):
    """The command line for one script; with --quick, the script's own quick mode."""
    cmd = [sys.executable, str(path)]
    if quick:
        source = path.read_text()
        if re.search(r"""["']--quick["']""", source):
            cmd.append("--quick")
        else:
            cmd += QUICK_FALLBACK.get(path.stem, [])
    return cmd


# --------------------------------------------------------------------------- machine / versions

def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 ** 2
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


def load_average():
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return (float("nan"),) * 3


def git_commit():
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
        # benchmarks/RESULTS.md itself is about to change: not a reason to call the tree dirty
        dirty = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
                 if not line.endswith("benchmarks/RESULTS.md")]
        return f"{commit} ({branch}{', with uncommitted changes' if dirty else ''})"
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def versions():
    """Versions as imported by the benchmark subprocesses (same interpreter and path)."""
    code = (
        "import importlib, platform, json\n"
        "out = {'python': platform.python_version()}\n"
        "for m in ['numpy', 'numba', 'scipy', 'pandas', 'anndata', 'scanpy', 'dask', "
        "'distributed', 'telegraph']:\n"
        "    try:\n"
        "        out[m] = importlib.import_module(m).__version__\n"
        "    except Exception:\n"
        "        out[m] = 'not installed'\n"
        "try:\n"
        "    import numba\n"
        "    out['numba threads'] = str(numba.config.NUMBA_NUM_THREADS)\n"
        "except Exception:\n"
        "    pass\n"
        "print(json.dumps(out))\n"
    )
    import json
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_env(),
                         capture_output=True, text=True)
    try:
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"python": platform.python_version(), "error": res.stderr.strip()[-300:]}


def child_env():
    env = dict(os.environ)
    # this checkout's telegraph, not whatever is installed
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "")
                                                       .split(os.pathsep) if p])
    env.setdefault("MPLBACKEND", "Agg")
    return env


# --------------------------------------------------------------------------- running

class Result:
    def __init__(self, name, cmd):
        self.name = name
        self.cmd = cmd
        self.status = "not run"
        self.seconds = float("nan")
        self.reports = []        # [(path, text)]
        self.error = ""


def run_one(name, path, quick, timeout):
    cmd = command(path, quick)
    res = Result(name, cmd)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    log = OUTPUT / f"{name}.log"
    before = {p: p.stat().st_mtime_ns for p in OUTPUT.glob("*.md")}
    t0 = time.perf_counter()
    print(f"[run.py] {name}: {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))}",
          flush=True)
    try:
        with open(log, "w") as fh:
            proc = subprocess.run(cmd, cwd=ROOT, env=child_env(), stdout=fh,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        res.status = "ok" if proc.returncode == 0 else f"failed (exit status {proc.returncode})"
    except subprocess.TimeoutExpired:
        res.status = f"timed out after {timeout:.0f} s"
    res.seconds = time.perf_counter() - t0
    # the reports this script wrote: markdown files new or changed since it started
    for p in sorted(OUTPUT.glob("*.md")):
        if p.stat().st_mtime_ns != before.get(p):
            res.reports.append((p, p.read_text()))
    if res.status != "ok" or not res.reports:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        res.error = "\n".join(tail)
        if res.status == "ok":
            res.status = "ok, but wrote no report"
    print(f"[run.py] {name}: {res.status} in {res.seconds:.0f} s", flush=True)
    return res


# --------------------------------------------------------------------------- headlines

def md_tables(text):
    """Every markdown table of ``text`` as a list of rows (dicts header -> cell)."""
    tables, lines = [], text.splitlines()
    i = 0
    while i < len(lines) - 1:
        if lines[i].lstrip().startswith("|") and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1]):
            header = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            # repeated column names (e.g. "ours | txburst" pairs) get ".1", ".2", ... suffixes
            seen = {}
            for k, h in enumerate(header):
                if h in seen:
                    seen[h] += 1
                    header[k] = f"{h}.{seen[h]}"
                else:
                    seen[h] = 0
            rows = []
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                cells = [c.strip() for c in lines[j].strip().strip("|").split("|")]
                rows.append(dict(zip(header, cells)))
                j += 1
            tables.append(rows)
            i = j
        else:
            i += 1
    return tables


def _row(tables, column, startswith):
    for rows in tables:
        for r in rows:
            if r.get(column, "").startswith(startswith):
                return r
    raise KeyError(startswith)


def _line(text, pattern):
    m = re.search(pattern, text)
    if not m:
        raise KeyError(pattern)
    return m


def headline_likelihood(text):
    rows = md_tables(text)[0]
    ratios = [float(r["speed ratio"].rstrip("×x").replace(",", "")) for r in rows]
    ours = max(float(r["max abs err log P: ours"]) for r in rows)
    theirs = max(float(r["txburst"]) for r in rows)
    return (f"Likelihood + exact gradient of one gene: **{min(ratios):,.0f}x to "
            f"{max(ratios):,.0f}x** faster (median {np.median(ratios):,.0f}x, CPU per "
            f"evaluation) than txburst's 50-node quadrature + finite differences, over "
            f"{len(rows)} cases; largest error of log P against mpmath {ours:.0e} "
            f"(txburst's: {theirs:.1g}).")


def headline_ssa(text):
    tables = md_tables(text)
    one = _row(tables, "implementation", "telegraph (Numba), 1 thread")
    parts = [f"Gillespie SSA: **{one['events/s']} events/s** on one core "
             f"({one['ns/event']} ns/event), **{one['vs NumPy loop']}** faster than a per-event "
             "NumPy loop"]
    if "vs C" in one:
        parts.append(f"**{one['vs C']}x** the time per event of a hand-written C direct method "
                     "(1.00 = as fast as C)")
    m = (re.search(r"1 -> (\d+) threads: ([\d.]+)x without scores", text)
         or re.search(r"1 -> (\d+) threads.*?wall-clock speed-up: ([\d.]+)x without scores",
                      text, flags=re.S))
    if m:
        free = re.search(r"(\d+) concurrent copies of the C program ran ([\d.]+)x faster", text)
        parts.append(f"{m.group(2)}x wall-clock speed-up on {m.group(1)} threads"
                     + (f" when the machine had room for {free.group(2)}x (measured with "
                        f"{free.group(1)} concurrent copies of the C program)" if free else
                        " (bounded by the free cores of a shared machine)"))
    try:
        gp = _row(tables, "implementation", "GillesPy2")
        parts.append(f"GillesPy2's C++ solver: {gp['ns/event']} ns/event")
    except KeyError:
        pass
    return "; ".join(parts) + "."


def headline_fit(text):
    tables = md_tables(text)
    r = _row(tables, "cells", "1,000")
    s = (f"Per-gene fit at 1,000 cells: **{r['speed-up (Wald)']}** faster than the txburst "
         f"method with Wald intervals, **{r['speed-up (profile)']}** with profile-likelihood "
         f"intervals (CPU per gene {r['telegraph (Wald)']} / {r['telegraph (profile CIs)']} "
         f"vs {r['txburst method']}); log-likelihood at least txburst's in "
         f"{r[next(k for k in r if k.startswith('loglik'))]} genes")
    m = re.search(r"20,000 genes x 10,000 cells on (\d+) cores.*?: ([\d,.]+) s with Wald "
                  r"intervals, ([\d,.]+) s with profile", text)
    if m:
        s += (f"; estimated 20,000 genes x 10,000 cells on {m.group(1)} cores: {m.group(2)} s "
              f"(Wald) / {m.group(3)} s (profile), fitting only")
    return s + "."


def headline_histogram(text):
    tables = md_tables(text)
    r = _row(tables, "task", "count_histograms CSR")
    c = _row(tables, "task", "count_histograms CSR, capture")
    return (f"Per-gene count histograms (the one pass over the matrix a fit needs): "
            f"**{r['cpu / A']}x** the CPU time of one scipy mean/variance pass "
            f"({r['cpu / B']}x scanpy's Numba mean/variance kernel), {c['cpu / A']}x with "
            f"per-cell capture groups.")


def headline_larsson(text):
    rows = {r[""]: r for r in md_tables(text)[0]}
    agree = rows["agreement p<0.05"]
    ours, theirs = rows["ours BH<0.1"], rows["txburst BH<0.1"]
    s = (f"Real data, Larsson et al. 2019 S vs G2/M: agreement with txburst's published tests "
         f"at p < 0.05 for **{float(agree['burst frequency']):.1%}** (burst frequency) and "
         f"**{float(agree['burst size']):.1%}** (burst size) of the genes both tested; "
         f"BH < 0.1: {ours['burst frequency']} / {ours['burst size']} genes (telegraph) vs "
         f"{theirs['burst frequency']} / {theirs['burst size']} (txburst)")
    short = re.findall(r"- (burst \w+): (\d+) genes; txburst's null fit stopped short of its "
                       r"own box's maximum for (\d+)", text)
    if short:
        s += ("; genes significant only for txburst whose null fit stopped short of the "
              "maximum: " + ", ".join(f"{k} of {n} ({what})" for what, n, k in short))
    m = re.search(r"on ([\d,]+) genes .*?: ([\d.]+) s wall", text)
    if m:
        s += f"; {m.group(1)} genes tested in {m.group(2)} s"
    return s + "."


def headline_scale(text):
    tables = md_tables(text)
    data = re.search(r"Data: ([\d,]+ cells x [\d,]+ genes)", text)
    wald = _row(tables, "step", "streamed fit, Wald")
    prof = _row(tables, "step", "streamed fit, profile")
    s = (f"Atlas scale ({data.group(1) if data else 'see below'}, streamed from .h5ad): fit "
         f"**{wald['x one data pass']}x** the time of one read + mean/variance pass with Wald "
         f"intervals, **{prof['x one data pass']}x** with profile intervals, peak memory "
         f"{prof['peak RSS']}")
    try:
        dask = _row(tables, "step", "Dask")
        s += f"; Dask LocalCluster: {dask['x one data pass']}x (Wald)"
    except KeyError:
        pass
    same = re.search(r"identical[^:]*: Wald (\w+), profile (\w+)", text)
    if same:
        s += f", results identical to in-process: {same.group(1)} / {same.group(2)}"
    try:
        est = _row(tables, "workers (1 core each)", "32")
        s += (f"; estimated 1,000,000 cells x 20,000 genes on 32 workers: {est['total, Wald']} "
              f"(Wald), {est['total, profile']} (profile)")
    except KeyError:
        pass
    return s + "."


HEADLINES = {
    "bench_scale": headline_scale,
    "larsson_s_vs_g2m": headline_larsson,
    "bench_likelihood": headline_likelihood,
    "bench_ssa": headline_ssa,
    "bench_fit": headline_fit,
    "bench_histogram": headline_histogram,
}


def headline(res):
    if res.status != "ok" and not res.reports:
        return f"{TITLES.get(res.name, res.name)}: {res.status}, no figures."
    text = "\n".join(t for _, t in res.reports)
    # a script may state its own headline in a line starting "Headline:"
    m = re.search(r"^\**Headline:?\**:?\s*(.+)$", text, flags=re.MULTILINE)
    if m:
        return m.group(1).strip()
    fn = HEADLINES.get(res.name)
    if fn is not None:
        try:
            return fn(text)
        except (KeyError, IndexError, ValueError, StopIteration):
            pass
    return f"{TITLES.get(res.name, res.name)}: see the section below."


# --------------------------------------------------------------------------- report

def demote(text):
    """Shift markdown headings down two levels so each report nests under its section."""
    out = []
    fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        if not fence and re.match(r"^#{1,4} ", line):
            line = "##" + line
        out.append(line)
    return "\n".join(out).strip()


def assemble(results, *, quick, started, finished, load_start, load_end, vers):
    cores = os.cpu_count() or 1
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `python benchmarks/run.py{' --quick' if quick else ''}` on "
        f"{started:%Y-%m-%d} ({started:%H:%M}–{finished:%H:%M} UTC, "
        f"{(finished - started).total_seconds() / 60:.0f} min). Every figure is a ratio "
        "against a baseline timed in the same command on the same machine; the absolute "
        "times depend on the machine and its load.",
    ]
    if quick:
        lines += ["", "**Quick mode**: every benchmark ran its smaller workload (`--quick`); "
                  "the full workloads (`python benchmarks/run.py`) give steadier figures."]
    lines += ["", "## Headlines", ""]
    lines += [f"- {headline(r)}" for r in results]
    lines += [
        "",
        "## Machine and versions",
        "",
        f"- CPU: {cpu_model()}, {cores} cores; memory {memory_gb():.1f} GB",
        f"- load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in load_start)} at the "
        f"start, {', '.join(f'{x:.2f}' for x in load_end)} at the end "
        "(a shared machine: other processes compete for the cores)",
        f"- OS: {platform.system()} {platform.release()}",
        "- " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        f"- git commit: {git_commit()}",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        "",
        "| benchmark | command | status | wall time |",
        "|---|---|---|---:|",
    ]
    for r in results:
        shown = " ".join(["python", f"benchmarks/{Path(r.cmd[1]).name}", *r.cmd[2:]])
        lines.append(f"| {r.name} | `{shown}` | {r.status} | {r.seconds:.0f} s |")
    for r in results:
        lines += ["", f"## {TITLES.get(r.name, r.name)} (`{r.name}.py`)", ""]
        for _, text in r.reports:
            lines += [demote(text), ""]
        if r.error:
            lines += [f"Status: {r.status}. End of its output:", "", "```", r.error, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="run each benchmark's smaller workload")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="run only these scripts (names without .py)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="seconds allowed per script (default 3600)")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"),
                    help="where to write the assembled report (default benchmarks/RESULTS.md)")
    args = ap.parse_args(argv)

    scripts = discover(args.only)
    if not scripts:
        raise SystemExit(f"run.py: no benchmark scripts found in {HERE}")
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = load_average()
    vers = versions()
    results = [run_one(name, path, args.quick, args.timeout) for name, path in scripts]
    finished = datetime.datetime.now(datetime.timezone.utc)
    text = assemble(results, quick=args.quick, started=started, finished=finished,
                    load_start=load_start, load_end=load_average(), vers=vers)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"[run.py] wrote {out}")
    print("\n".join(line for line in text.splitlines() if line.startswith("- ")))
    return 0 if all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
