"""``telegraph design``: cells per group for a differential test, and the best
cells/depth split of a budget, from the kinetics of an earlier fit.

Reads the table of an earlier ``telegraph fit`` (or an .h5ad it wrote), runs
:func:`telegraph.design.plan` (and, with ``--budget``,
:func:`telegraph.design.optimize`), and prints the results as tables. The
command holds no maths.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .. import config
from .. import design as tdesign
from .. import io as tio
from ._common import (CLIError, add_progress_options, as_cli_advice, check_level,
                      check_outputs, number_or_name, one_line, parse_genes, progress_option,
                      read_kinetics)
from ._startup import work_starts

_DESCRIPTION = """\
Plan an experiment from the kinetics of an earlier fit: how many cells per group a
differential bursting test (telegraph test) needs to detect a fold change EFFECT in burst
frequency (or burst size) with the power asked, gene by gene, from the exact expected
Fisher information of the telegraph model and the null law the test will calibrate
(predicted by running the real test on genes simulated at the design). With --budget, also the split
of the budget between cells and sequencing depth that maximises the expected information
about burst frequency and burst size, under a stated cost model.

Rates are as in the kinetics table (units of k_deg unless it says otherwise). Capture:
the planned cells' capture efficiency relative to the scale of the table's k_syn: a table
fitted with per-cell capture has k_syn in molecules per cell (give the planned capture,
e.g. 0.2); a table fitted without capture has k_syn in counted molecules at the earlier
experiment's depth (--capture 1 plans for the same depth).

Output (stdout): one row per gene: gene, burst_frequency, burst_size, regime (of the
earlier fit), usable, cells_needed_<quantity> (cells in EACH group; empty where the
earlier fit did not identify burst frequency and burst size) and, with --cells,
power_<quantity>. A summary (quantiles over the usable genes, and with --budget the best
design) goes to stderr. Genes in the bursty regime keep their burst frequency and size
(k_off set to %g k_deg); genes in the poisson or bimodal regime are not usable.
""" % config.DESIGN_BURSTY_K_OFF

_EPILOG = """\
examples:
  telegraph fit counts.h5ad --capture capture --table kinetics.csv
  telegraph design --kinetics kinetics.csv --effect 1.5 --power 0.8 --capture 0.2
  telegraph design --kinetics kinetics.csv --effect 1.5 --quantity both --table plan.csv
  telegraph design --kinetics kinetics.csv --effect 1.5 --budget 20000 --cell-cost 1 \\
      --read-cost 1e-5 --capture-max 0.3 --reads-half 20000

Errors exit with status 2 and a one-line message.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "design", help="cells per group and the cells/depth split of a budget, from an "
                       "earlier fit",
        description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kinetics", metavar="FIT.csv", required=True,
                   help="results of an earlier fit: a table of `telegraph fit --table` "
                        "(.csv/.tsv, or any table with gene, k_on, k_off, k_syn columns) or "
                        "an .h5ad written by `telegraph fit -o`")
    t = p.add_argument_group("the test to plan for")
    t.add_argument("--effect", metavar="FOLD", type=float, required=True,
                   help="fold change to detect (group 2 over group 1, e.g. 1.5 or 0.67)")
    t.add_argument("--quantity", choices=("burst_frequency", "burst_size", "both"),
                   default="burst_frequency",
                   help="what changes and is tested (default: burst_frequency); burst size "
                        "changes through k_syn")
    t.add_argument("--power", metavar="P", type=float, default=0.8,
                   help="power asked for (default: 0.8)")
    t.add_argument("--alpha", metavar="A", type=float, default=0.05,
                   help="level of each gene's test (default: 0.05)")
    t.add_argument("--capture", metavar="S", type=float, default=1.0,
                   help="capture efficiency of the planned cells, in (0, 1] (default: 1, "
                        "see above)")
    t.add_argument("--cells", metavar="N", type=int, default=None,
                   help="also predict each gene's power with N cells per group")
    t.add_argument("--calibration", choices=tdesign.CALIBRATIONS, default="panel",
                   help="null law of the test planned for: panel (default: the genes are "
                        "tested together, as telegraph test calibrates them), bootstrap (each "
                        "gene among genes like it; slower), chi2 (telegraph test "
                        "--calibration chi2)")
    t.add_argument("--model", choices=("one_species", "two_species"), default="one_species",
                   help="observation model of the planned experiment: one_species (default) "
                        "or two_species (unspliced and spliced counts; the table's rates in "
                        "units of k_splice, as a two-species fit reports them)")
    t.add_argument("--genes", metavar="G1,G2|@FILE",
                   help="plan only for these genes (comma-separated, or @FILE one per line)")
    t.add_argument("--k-deg", metavar="RATE|COLUMN",
                   help="degradation rates of the genes when the earlier fit was made with "
                        "--k-deg (its rates are then per unit time): a number, or a column "
                        "of the table (default: the table's k_deg column if any, else 1)")
    b = p.add_argument_group(
        "budget (optional): the best split between cells and depth",
        "Capture here is on the scale of the table's k_syn, as --capture.")
    b.add_argument("--budget", metavar="B", type=float, default=None,
                   help="what the experiment may cost, in the units of the costs below")
    b.add_argument("--cell-cost", metavar="C", type=float, default=config.DESIGN_CELL_COST,
                   help=f"cost of one cell's library (default: {config.DESIGN_CELL_COST:g})")
    b.add_argument("--read-cost", metavar="C", type=float, default=config.DESIGN_READ_COST,
                   help=f"cost of one read (default: {config.DESIGN_READ_COST:g})")
    b.add_argument("--capture-max", metavar="S", type=float,
                   default=config.DESIGN_CAPTURE_MAX,
                   help="capture efficiency approached at saturating depth (default: "
                        f"{config.DESIGN_CAPTURE_MAX:g}); capture at r reads per cell is "
                        "capture_max * r / (r + reads_half)")
    b.add_argument("--reads-half", metavar="R", type=float, default=config.DESIGN_READS_HALF,
                   help="reads per cell at which half of --capture-max is reached (default: "
                        f"{config.DESIGN_READS_HALF:g})")
    b.add_argument("--criterion", choices=tdesign.CRITERIA, default="eig",
                   help="eig: expected information gain about burst frequency and size "
                        "over the genes (default); D, A: local D-/A-optimality")
    b.add_argument("--gradient", choices=("exact", "score"), default="exact",
                   help="exact gradients (default, deterministic) or the score-function "
                        "estimate from simulated cells (seeded)")
    out = p.add_argument_group("output")
    out.add_argument("--table", metavar="OUT.csv|OUT.tsv",
                     help="write the per-gene table here instead of printing it")
    add_progress_options(out)
    p.set_defaults(run=run)
    return p


def _validate(args):
    if not (np.isfinite(args.effect) and args.effect > 0 and args.effect != 1):
        raise CLIError(f"--effect is a fold change > 0 and not 1 (e.g. 1.5), got {args.effect:g}")
    check_level("--power", args.power)
    check_level("--alpha", args.alpha)
    if not 0 < args.capture <= 1:
        raise CLIError(f"--capture is an efficiency in (0, 1], got {args.capture:g}")
    if args.cells is not None and args.cells < 1:
        raise CLIError(f"--cells must be at least 1, got {args.cells}")
    if args.budget is not None and not args.budget > 0:
        raise CLIError(f"--budget must be positive, got {args.budget:g}")


def _summary(plan: pd.DataFrame, quantities, args) -> list[str]:
    usable = plan["usable"].to_numpy(bool)
    lines = [f"telegraph design: {int(usable.sum()):,} of {len(plan):,} genes usable "
             "(telegraph or bursty regime in the earlier fit)"]
    if not usable.any():
        return lines
    qs = [0.1, 0.25, 0.5, 0.75, 0.9]
    table = pd.DataFrame(
        {f"{int(q * 100)}%": [np.nanquantile(plan.loc[usable, f"cells_needed_{k}"], q)
                              for k in quantities] for q in qs},
        index=[f"cells per group, {k}" for k in quantities])
    lines.append(f"cells per group to detect a {args.effect:g}-fold change with power "
                 f"{args.power:g} at alpha {args.alpha:g} (capture {args.capture:g}), "
                 "quantiles over the usable genes:")
    lines += ["  " + row for row in table.round(0).astype("Int64").to_string().splitlines()]
    return lines


def _budget_lines(args, kin, quantities, progress) -> list[str]:
    cost = tdesign.CostModel(cell=args.cell_cost, read=args.read_cost,
                             capture_max=args.capture_max, reads_half=args.reads_half)
    use = kin[kin["usable"]]
    res = tdesign.optimize(use["k_on"].to_numpy(float), use["k_off"].to_numpy(float),
                           use["k_syn"].to_numpy(float), use["k_deg"].to_numpy(float),
                           budget=args.budget, cost=cost, criterion=args.criterion,
                           method=args.gradient, curve=False, progress=progress)
    per_group = max(res.n_cells // 2, 1)
    lines = ["telegraph design: " + res.summary()]
    rows = {"reads per cell": f"{res.reads:,.0f}", "cells in all": f"{res.n_cells:,}",
            "cells per group (two groups)": f"{per_group:,}",
            "mean capture": f"{res.capture_mean:.3f}"}
    for k in quantities:
        pw = tdesign.power(use["k_on"].to_numpy(float), use["k_off"].to_numpy(float),
                           use["k_syn"].to_numpy(float), use["k_deg"].to_numpy(float),
                           effect=args.effect, n_cells=per_group, quantity=k, alpha=args.alpha,
                           capture=res.capture_mean, calibration=args.calibration,
                           progress=progress)
        rows[f"genes reaching power {args.power:g}, {k}"] = \
            f"{np.mean(pw >= args.power):.0%} of {len(use):,}"
    width = max(len(k) for k in rows)
    lines += [f"  {k:<{width}}  {v}" for k, v in rows.items()]
    return lines


def run(args) -> int:
    _validate(args)
    source = Path(args.kinetics).expanduser()
    check_outputs(args.table, None, [source])
    progress = progress_option(args)
    table = read_kinetics(source)
    if args.genes:
        genes = parse_genes(args.genes)
        names = (table["gene"].astype(str) if "gene" in table.columns
                 else table.index.astype(str).to_series(index=table.index))
        missing = [g for g in genes if g not in set(names)]
        if missing:
            raise CLIError(f"--genes: {len(missing)} gene(s) not in {source.name}, e.g. "
                           f"{missing[0]!r}")
        table = table[names.isin(genes).to_numpy()]
    quantities = list(tdesign.QUANTITIES) if args.quantity == "both" else [args.quantity]
    work_starts()       # the start-up is over: the garbage collector resumes
    try:
        kin = tdesign.kinetics_table(table, k_deg=number_or_name(args.k_deg))
        plan = tdesign.plan(kin, effect=args.effect, quantity=args.quantity, power=args.power,
                            alpha=args.alpha, capture=args.capture, n_cells=args.cells,
                            calibration=args.calibration, model=args.model,
                            progress=progress)
        extra = _budget_lines(args, kin, quantities, progress) if args.budget else []
    except ValueError as exc:
        raise CLIError(as_cli_advice(one_line(exc))) from None
    for line in _summary(plan, quantities, args) + extra:
        print(line, file=sys.stderr)
    out = plan.reset_index()
    if args.table:
        try:
            tio.write_table_atomic(out, args.table, refuse=[source])
        except (ValueError, OSError) as exc:
            raise CLIError(f"cannot write output: {one_line(exc)}") from None
    else:
        for c in out.columns:
            if str(c).startswith("cells_needed"):
                out[c] = [("" if np.isnan(v) else f"{v:.0f}") for v in out[c].to_numpy(float)]
        try:
            print(out.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.4g}"))
            sys.stdout.flush()
        except BrokenPipeError:
            pass
    return 0
