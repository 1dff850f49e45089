"""``telegraph test``: differential bursting between two groups of cells, two
alleles, or two files.

Reads counts (telegraph.io), runs :func:`telegraph.tl.differential_bursting`
(or the allele form, or :func:`telegraph.differential.differential` on two
files), and writes the per-gene table. Output is written atomically; user
errors become one-line messages.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import telegraph as tg

from .. import config
from .. import io as tio
from ..differential import DepthWarning, compile_ahead_test, differential
from ..inputs import listing, row_totals
from ._common import (CLIError, add_progress_options, add_round_options, as_cli_advice,
                      capture_option, check_at_least_one, check_genes, check_level,
                      check_outputs, check_settings, compile_notice, files_written, one_line,
                      parse_genes, progress_option, read_input, round_option, write_outputs,
                      write_stdout_csv)

KEY = config.DIFFERENTIAL_KEY

_DESCRIPTION = """\
Test every gene for a change in transcriptional bursting between two groups of cells
(--groupby KEY --groups A B), between the two alleles of the same cells (--layers L1 L2,
e.g. allele-resolved counts of an F1 hybrid), or between two count files (COUNTS1
COUNTS2, e.g. txburst's per-phase tables).

Two likelihood-ratio tests per gene under the two-state (telegraph) model: equal burst
frequency k_on (k_off and k_syn free in each group) and equal burst size k_syn/k_off
(k_on and k_off free in each group); p-values from the statistics' null law calibrated on
the data (chi-square(1) scaled per regime class of the pooled fit by a parametric
bootstrap; genes whose pooled fit identifies neither quantity are not tested) and
Benjamini-Hochberg adjusted values weighted by each gene's information. Rates are in
units of the mRNA degradation rate k_deg, assumed equal in both groups (a change in mRNA
stability would appear as a change in burst frequency). Without --capture, a note says
when the groups' sequencing depths differ (a depth difference looks like differential
bursting).

Output columns (one row per gene): gene, burst_frequency_log2fc, burst_size_log2fc
(group 2 over group 1) with _ci_low/_ci_high, pval_burst_frequency,
padj_burst_frequency, pval_burst_size, padj_burst_size, lr_* statistics, null_scale_*
and null_atom_* (the calibrated null law), weight_*, per-group estimates
burst_frequency_1/_2, burst_size_1/_2, k_on/k_off/k_syn_1/_2, regime_1/_2, regime_pooled, n_cells_1/_2, tested and flag (ok, limit_regime,
not_converged, not_identified, too_few_cells, all_zero). Without --table the table is
written as CSV to stdout.
"""

_EPILOG = """\
examples:
  telegraph test cells.h5ad --layer counts --groupby condition --groups ctrl treated --table out.csv
  telegraph test f1.h5ad --layers c57 cast --table alleles.tsv
  telegraph test SS3_c57_UMIs_concat_S.csv SS3_c57_UMIs_concat_G2M.csv --table S_vs_G2M.csv

Errors (missing file, layer, column or group, invalid counts) exit with status 2 and a
one-line message; output files are written atomically (complete or not at all).
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "test", help="test burst frequency and burst size between two groups or alleles",
        description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "counts", metavar="COUNTS", nargs="+",
        help="one count matrix (.h5ad, .csv/.tsv in txburst's genes x cells layout, 10x, "
             ".loom; as for 'telegraph fit') with --groupby/--groups or --layers, or two "
             "files whose cells are the two groups (genes matched by name). Raw UMI counts "
             "(whole numbers); blank/NaN = missing")
    how = p.add_argument_group("what to compare")
    how.add_argument("--groupby", metavar="KEY",
                     help="obs column holding the groups of cells")
    how.add_argument("--groups", metavar=("A", "B"), nargs=2,
                     help="the two groups of --groupby to compare (fold changes are B / A); "
                          "default: its two values when it has exactly two")
    how.add_argument("--layers", metavar=("L1", "L2"), nargs=2,
                     help="compare two layers of the same cells (the two alleles); fold "
                          "changes are L2 / L1")
    out = p.add_argument_group("output")
    out.add_argument("--table", metavar="OUT.csv|OUT.tsv",
                     help="write the result table here (comma-separated for .csv, tab for "
                          ".tsv; missing values as empty fields, unbounded interval ends as "
                          "inf/-inf)")
    out.add_argument("-o", "--output", metavar="OUT.h5ad",
                     help="one input file only: write it with the results in "
                          f"uns['{KEY}'] (refuses to overwrite the input)")
    data = p.add_argument_group("data")
    data.add_argument("--layer", metavar="L",
                      help="layer holding the raw counts with --groupby (default: X)")
    data.add_argument("--cells-in-rows", action="store_true",
                      help="text tables only: rows are cells (the transpose of txburst's "
                           "layout)")
    data.add_argument("--capture", metavar="OBS_KEY",
                      help="per-cell capture efficiency in (0, 1]: an obs column, a number, "
                           "'total' (size factors from total counts relative to the mean "
                           "of the compared cells; burst sizes then in molecules counted in a "
                           "cell of average depth), or 'fit': the capture recorded in the "
                           "file by an earlier `telegraph fit -o`. Default 1")
    data.add_argument("--genes", metavar="G1,G2|@FILE",
                      help="test only these genes (comma-separated, or @FILE one per line)")
    add_round_options(data)
    t = p.add_argument_group("test")
    t.add_argument("--min-cells", metavar="N", type=int, default=10,
                   help="test a gene only if each group has at least N non-missing cells "
                        "(default: 10)")
    t.add_argument("--ci", metavar="LEVEL", type=float, default=0.95,
                   help="confidence level of the log2 fold-change intervals (default: 0.95)")
    t.add_argument("--interval", choices=("profile", "wald"), default="profile",
                   help="profile: profile-likelihood intervals of the log-ratio (consistent "
                        "with the test: they exclude 0 exactly when p < 1 - LEVEL); wald: "
                        "faster, symmetric on the log scale (default: profile)")
    t.add_argument("--calibration", choices=("bootstrap", "chi2"), default=config.CALIBRATION,
                   help="null law of the statistics: bootstrap (chi-square(1) scaled per "
                        "regime class by a parametric bootstrap of the pooled fits) or chi2 "
                        "(plain chi-square(1): faster, conservative near the limits of the "
                        f"model) (default: {config.CALIBRATION})")
    t.add_argument("--weighting", choices=("information", "none"), default=config.WEIGHTING,
                   help="Benjamini-Hochberg weighted by each gene's information in the "
                        "pooled fit, or plain (default: %(default)s)")
    t.add_argument("--alpha", metavar="Q", type=float, default=0.1,
                   help="adjusted p-value threshold for the summary line (default: 0.1)")
    r = p.add_argument_group("running")
    r.add_argument("--jobs", metavar="N", type=int, default=None,
                   help="number of parallel worker threads (default: all cores)")
    add_progress_options(r)
    p.set_defaults(run=run)
    return p


def _validate(args):
    n_files = len(args.counts)
    if n_files > 2:
        raise CLIError(f"give one COUNTS file (with --groupby or --layers) or two; got {n_files}")
    if n_files == 2:
        if args.groupby or args.groups or args.layers:
            raise CLIError("with two COUNTS files the files are the groups; drop --groupby, "
                           "--groups and --layers")
        if args.output:
            raise CLIError("-o/--output needs a single input file; use --table")
        if args.layer:
            raise CLIError("--layer applies to --groupby with one file")
    else:
        if bool(args.groupby) == bool(args.layers):
            raise CLIError("say what to compare: --groupby KEY [--groups A B], or --layers L1 L2 "
                           "(or give two COUNTS files)")
        if args.groups and not args.groupby:
            raise CLIError("--groups needs --groupby")
        if args.layers and args.layer:
            raise CLIError("--layer and --layers exclude each other (--layers names both)")
    check_settings(args)
    check_level("--alpha", args.alpha)
    check_at_least_one("--jobs", args.jobs)


def _check_layers(adata, layers, source):
    for layer in layers:
        try:
            tio.check_layer(adata, layer, source=source)
        except ValueError as exc:
            raise CLIError(one_line(exc)) from None


def _depth_note(message: str) -> str:
    """The library's depth warning, naming the command line's option."""
    return message.replace("with capture= (e.g. capture='total')", "with --capture (e.g. "
                           "--capture total)")


def run(args) -> int:
    _validate(args)
    compile_ahead_test()   # a cold first run: compiling starts on a second core now

    paths = [Path(c).expanduser() for c in args.counts]
    check_outputs(args.table, args.output, paths)
    genes = parse_genes(args.genes) if args.genes else None
    t0 = time.perf_counter()
    progress = progress_option(args)
    compile_notice("test")
    common = dict(min_cells=args.min_cells, ci=args.ci, interval=args.interval,
                  calibration=args.calibration, weighting=args.weighting,
                  round_counts=round_option(args), n_jobs=args.jobs, progress=progress)
    adata = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DepthWarning)
            if len(paths) == 2:
                a1 = read_input(paths[0], cells_in_rows=args.cells_in_rows)
                a2 = read_input(paths[1], cells_in_rows=args.cells_in_rows)
                shared = [g for g in a1.var_names if g in set(a2.var_names)]
                if not shared:
                    raise CLIError(f"{paths[0].name} and {paths[1].name} have no gene names in "
                                   "common")
                dropped = a1.n_vars + a2.n_vars - 2 * len(shared)
                if dropped:
                    print(f"telegraph test: {dropped} gene(s) not in both files are left out",
                          file=sys.stderr)
                check_genes(genes, a1[:, shared], source=str(paths[0]))
                keep = shared if genes is None else genes
                c1 = capture_option(args.capture, a1, source=str(paths[0]))
                c2 = capture_option(args.capture, a2, source=str(paths[1]))
                # size factors from each file's totals over all its genes
                totals = (row_totals(a1.X), row_totals(a2.X)) if c1 == "total" else None
                res = differential(a1[:, keep].X, a2[:, keep].X, capture1=c1, capture2=c2,
                                   genes=np.asarray(keep, dtype=str), totals=totals,
                                   group_names=(paths[0].stem, paths[1].stem), **common)
                groups = (paths[0].stem, paths[1].stem)
            else:
                source = str(paths[0])
                layers = args.layers if args.layers else [args.layer]
                adata = read_input(paths[0], cells_in_rows=args.cells_in_rows)
                _check_layers(adata, layers, source)
                check_genes(genes, adata, source=source)
                capture = capture_option(args.capture, adata, source=source)
                if args.layers:
                    res = tg.tl.differential_bursting_alleles(adata, tuple(args.layers),
                                                           capture=capture, genes=genes,
                                                           key_added=KEY, **common)
                    groups = tuple(args.layers)
                else:
                    if args.groupby not in adata.obs:
                        raise CLIError(f"--groupby {args.groupby!r}: no such obs column in "
                                       f"{source} (obs columns: "
                                       f"{listing(adata.obs.columns)})")
                    res = tg.tl.differential_bursting(adata, args.groupby, groups=args.groups,
                                                   layer=args.layer, capture=capture, genes=genes,
                                                   key_added=KEY, **common)
                    groups = tuple(adata.uns[KEY]["params"]["groups"])
    except (ValueError, KeyError) as exc:
        raise CLIError(as_cli_advice(one_line(exc))) from None
    for w in caught:
        if issubclass(w.category, DepthWarning):
            print(f"telegraph test: note: {_depth_note(str(w.message))}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    table = res.reset_index(drop=True)
    writes = []
    if args.table:
        writes.append((args.table,
                       lambda: tio.write_table_atomic(table, args.table, refuse=paths)))
    if args.output:
        writes.append((args.output,
                       lambda: tio.write_h5ad_atomic(adata, args.output, refuse=paths)))
    write_outputs(writes)
    tested = int(res["tested"].sum())
    n_f = int((res["padj_burst_frequency"] < args.alpha).sum())
    n_s = int((res["padj_burst_size"] < args.alpha).sum())
    print(f"telegraph test: {groups[1]} vs {groups[0]}: tested {tested} of {len(res)} genes in "
          f"{time.perf_counter() - t0:.1f} s; adjusted p < {args.alpha:g}: burst frequency "
          f"{n_f}, burst size {n_s}; {files_written(args.table, args.output)}.",
          file=sys.stderr)
    if not args.table and not args.output:
        write_stdout_csv(table)
    return 0
