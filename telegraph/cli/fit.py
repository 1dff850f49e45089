"""``telegraph fit``: per-gene burst kinetics from a count matrix.

Reads counts (telegraph.io), fits every gene with :func:`telegraph.tl.fit`,
and writes a table and/or the input AnnData with the results added. All
output is written atomically; user errors become one-line messages.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import telegraph as tg

from .. import config, get
from .. import io as tio
from ..backed import fit_file
from ..fitting import compile_ahead
from ..inputs import ESTIMATE
from ..jointfit import TooLargeWarning, too_large_message
from ..labelfit import DetectionWarning
from ..ondisk import OnDiskMatrix, is_ondisk, read_obs_var
from ..tl import store_results
from ._common import (CLIError, add_progress_options, add_round_options, as_cli_advice,
                      capture_option, check_at_least_one, check_genes, check_outputs,
                      check_settings, close_client, compile_notice, connect, files_written,
                      k_deg_option, number_or_name, one_line, parse_genes, progress_option,
                      read_input, round_option, write_outputs, write_stdout_csv)

KEY = config.FIT_KEY  # key_added: results go to var["telegraph_<column>"], uns["telegraph"]

_DESCRIPTION = """\
Fit the two-state (telegraph) model of transcriptional bursting to every gene of a
count matrix: a promoter switches on with rate k_on and off with rate k_off, makes
mRNA at rate k_syn while on, and mRNA degrades at rate k_deg.

Units: all rates are per unit time. A snapshot of counts identifies them only
relative to k_deg, so without --k-deg every rate is reported in units of k_deg
(k_deg = 1; time measured in mean mRNA lifetimes). With --k-deg (in 1/time, e.g.
1/h) rates come out in the same 1/time. With --new-layer and --t-label (metabolic
labelling: new and old RNA after a pulse of known length in hours) every rate, k_deg
included, is identified per hour, with half_life in hours. Burst frequency = k_on (bursts per unit
time); burst size = k_syn / k_off (mRNA molecules per burst, unitless).

Output columns (one row per gene): gene, k_on, k_off, k_syn, burst_frequency,
burst_size, their <name>_ci_low / <name>_ci_high confidence bounds (0 or inf where a
side is unbounded), fraction_on, mean_expression, loglik, n_cells, mean, regime,
identified, converged, gof_pval, gof_flag and further quality flags. Each regime
fills the estimates it identifies and leaves the others empty (telegraph: all;
bursty: k_on = burst frequency, burst size, mean; bimodal: k_syn, fraction on,
mean; poisson: mean). Without --table and -o the table is written as CSV to stdout.
"""

_EPILOG = """\
examples:
  telegraph fit --example
  telegraph fit counts.h5ad --layer counts --capture capture -o fitted.h5ad
  telegraph fit SS3_c57_UMIs_concat_S.csv --table S_kinetics.csv
  telegraph fit filtered_feature_bc_matrix/ --capture total --genes @genes.txt --table out.tsv

On success a one-paragraph summary goes to stderr: genes fitted per regime, how many
have a goodness-of-fit p-value, the files written and the time taken. The first run
of a fresh installation compiles the kernels first (about half a minute; it says so).
Errors (missing file, layer or column, invalid counts) exit with status 2 and a
one-line message; output files are written atomically (complete or not at all).
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "fit", help="fit burst frequency and burst size per gene",
        description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "counts", metavar="COUNTS", nargs="?",
        help="count matrix: .h5ad (cells x genes); .csv/.tsv/.txt (optionally .gz) in "
             "txburst's layout: genes x cells, gene names in the first column, a header "
             "row of cell names, blank = missing value (see --cells-in-rows); a 10x "
             "Genomics matrix directory (matrix.mtx, features.tsv, barcodes.tsv) or .h5; "
             ".loom; .zarr. Raw UMI counts (whole numbers, not normalised). Not needed "
             "with --example.")
    out = p.add_argument_group("output")
    out.add_argument(
        "--table", metavar="OUT.csv|OUT.tsv",
        help="write the result table here (comma-separated for .csv, tab for .tsv; "
             "missing values as empty fields)")
    out.add_argument(
        "-o", "--output", metavar="OUT.h5ad",
        help="write the input with the results added as AnnData: columns "
             f"var['{KEY}_<column>'] and settings in uns['{KEY}'] (results of an earlier "
             "fit under that key are replaced). Refuses to overwrite the input file.")
    data = p.add_argument_group("data")
    data.add_argument(
        "--layer", metavar="L",
        help="AnnData layer holding the raw counts (default: X); .h5ad/.loom/.zarr only")
    data.add_argument(
        "--unspliced-layer", metavar="L",
        help="AnnData layer of unspliced counts (velocyto/STARsolo/kb-python: "
             "'unspliced', with --layer spliced): fit the telegraph model with splicing to "
             "both layers. Rates are then in units of the splicing rate (k_splice = 1) and "
             "k_deg, the degradation rate of spliced mRNA, is estimated with its interval "
             "(k_deg_ci_low, k_deg_ci_high, k_deg_flag); not with --k-deg")
    data.add_argument(
        "--unspliced-factor", metavar="F", type=float, default=1.0,
        help="with --unspliced-layer: capture efficiency of unspliced molecules relative "
             "to spliced ones (default: 1, the same)")
    data.add_argument(
        "--new-layer", metavar="L",
        help="AnnData layer of new (labelled) counts of a metabolic-labelling experiment "
             "(scSLAM-seq, NASC-seq, scNT-seq, sci-fate; with --layer holding the old, "
             "unlabelled counts and --t-label the pulse length): the pulse identifies every "
             "rate in absolute time, so k_on, k_off, k_syn, k_deg come out per hour with "
             "intervals, and half_life in hours; not with --k-deg")
    data.add_argument(
        "--t-label", metavar="HOURS|OBS_KEY",
        help="with --new-layer: labelling pulse length in hours, one number for every cell "
             "or an obs column of per-cell pulse lengths (a time course)")
    data.add_argument(
        "--detection", metavar="P|OBS_KEY|estimate",
        help="with --new-layer: probability in (0, 1] that a captured new molecule is seen "
             "as new (its label conversions detected; the others count as old): a number "
             "or an obs column (default: 1), or 'estimate': one value for all cells "
             "estimated across the most expressed genes (needs several pulse lengths or "
             "fast-degrading genes), every gene then fitted at it; the estimate and its "
             "interval are printed and stored in uns['" + KEY + "']['labelling']"
             "['detection_estimate'] (gene intervals are conditional on it)")
    data.add_argument(
        "--cells-in-rows", action="store_true",
        help="text tables only: rows are cells and the header names genes (the "
             "transpose of txburst's genes x cells layout)")
    data.add_argument(
        "--capture", metavar="OBS_KEY",
        help="per-cell capture efficiency = fraction of a cell's mRNA molecules that "
             "were captured and counted, in (0, 1]: an obs column name, a single number "
             "for all cells, or 'total' for relative size factors (each cell's total "
             "count / the mean total count; k_syn and burst size are then in molecules "
             "counted in a cell of average depth). Default: 1 (k_syn and burst size then "
             "count captured molecules)")
    data.add_argument(
        "--k-deg", metavar="VAR_KEY",
        help="mRNA degradation rate per gene in 1/time (e.g. ln 2 / half-life): a var "
             "column name or one number for all genes. Rates are then reported in the "
             "same 1/time; without it, in units of k_deg")
    data.add_argument(
        "--genes", metavar="G1,G2|@FILE",
        help="fit only these genes: comma-separated names, or @FILE with one name per "
             "line ('#' starts a comment)")
    add_round_options(data)
    fit = p.add_argument_group("fit")
    fit.add_argument(
        "--min-cells", metavar="N", type=int, default=10,
        help="fit a gene only if it has at least N cells with a non-missing count; "
             "others get a row with NaN rates and a flag (default: 10)")
    fit.add_argument(
        "--ci", metavar="LEVEL", type=float, default=0.95,
        help="confidence level of the intervals, in (0, 1) (default: 0.95)")
    fit.add_argument(
        "--interval", choices=("profile", "wald"), default="profile",
        help="profile: profile-likelihood intervals (accurate, asymmetric, may be "
             "unbounded on one side); wald: from the observed information on log-rates "
             "(faster) (default: profile)")
    fit.add_argument(
        "--profile", metavar="Q1,Q2|all", default=",".join(config.PROFILE),
        help="with --interval profile, the quantities that get profile-likelihood "
             "intervals (of burst_frequency, burst_size, k_off, k_syn; 'all' for every "
             "one); the others get Wald intervals (default: burst_frequency,burst_size; "
             "before version 0.2 all four were profiled, which costs about twice as much)")
    run_ = p.add_argument_group("running")
    run_.add_argument(
        "--jobs", metavar="N", type=int, default=None,
        help="number of parallel workers (default: all cores): threads, or worker "
             "processes for two-species and labelled fits of many genes")
    run_.add_argument(
        "--backed", action="store_true",
        help=".h5ad/.zarr input only: do not load the count matrix; read it from disk in "
             "slices of --chunk-size cells (one pass builds every gene's count histogram, "
             "then the genes are fitted), so memory is bounded by the slice, not the "
             "matrix. With --unspliced-layer or --new-layer both layers are read in the "
             "same slices (store them in the same format). Results are identical to a fit "
             "in memory")
    run_.add_argument(
        "--chunk-size", metavar="N", type=int, default=None,
        help="cells per slice when reading from disk (implies --backed; default: "
             "about 8 million stored entries per slice, some 200 MB of working memory). "
             "Lower it to use less memory. A CSC matrix is read in blocks of genes of the "
             "same share of the matrix")
    run_.add_argument(
        "--scheduler", metavar="ADDRESS|local",
        help="fit on a Dask cluster: the scheduler's address (tcp://HOST:PORT) or "
             "'local' for a cluster of one single-threaded worker process per core on "
             "this machine. With .h5ad/.zarr input the workers read the file themselves "
             "(it must be at the same path on a file system they share), except with "
             "--new-layer, where the file is read here (from disk, in slices) and only "
             "per-gene histograms are sent, as for other input (--detection estimate "
             "runs here, then the genes are fitted on the cluster). Needs dask[distributed] "
             "(pip install 'telegraph-sc[dask]')")
    add_progress_options(run_)
    run_.add_argument(
        "--example", action="store_true",
        help="fit the bundled simulated example (2,000 cells x 200 genes with known "
             "kinetics and per-cell capture in obs['capture']) instead of COUNTS, and "
             "print how well the true burst frequency and burst size were recovered "
             "(stdout gets that report instead of the table; --table/-o still write)")
    p.set_defaults(run=run)
    return p


# --------------------------------------------------------------------------- helpers

def _validate_args(args) -> None:
    if args.example and args.counts:
        raise CLIError("give either COUNTS or --example, not both")
    if not args.example and not args.counts:
        raise CLIError("no input: give a COUNTS file (or --example for the bundled data)")
    args.fit_settings = check_settings(args)
    check_at_least_one("--jobs", args.jobs)
    if args.unspliced_layer is not None and args.k_deg is not None:
        raise CLIError("--k-deg cannot be combined with --unspliced-layer: the two-species "
                       "fit estimates k_deg (in units of the splicing rate); drop --k-deg")
    if args.new_layer is not None:
        if args.unspliced_layer is not None:
            raise CLIError("give either --unspliced-layer (two species) or --new-layer "
                           "(metabolic labelling), not both")
        if args.k_deg is not None:
            raise CLIError("--k-deg cannot be combined with --new-layer: the labelling pulse "
                           "identifies k_deg (per hour); drop --k-deg")
        if args.t_label is None:
            raise CLIError("--new-layer needs --t-label: the pulse length in hours, or the "
                           "obs column holding each cell's")
    elif args.t_label is not None or args.detection is not None:
        raise CLIError("--t-label and --detection need --new-layer (the labelled counts; "
                       "--layer then holds the old ones)")
    if args.unspliced_factor != 1.0 and args.unspliced_layer is None:
        raise CLIError("--unspliced-factor needs --unspliced-layer")
    if not (math.isfinite(args.unspliced_factor) and args.unspliced_factor > 0):
        raise CLIError(f"--unspliced-factor must be a positive number, got "
                       f"{args.unspliced_factor}")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise CLIError(f"--chunk-size must be at least 1 cell, got {args.chunk_size}")
    if args.example and (args.backed or args.chunk_size is not None):
        raise CLIError("--backed/--chunk-size read a COUNTS file from disk; the example is "
                       "in memory (drop them, or give an .h5ad file)")


def _write_outputs(args, table, input_path, write_h5ad) -> None:
    writes = []
    if args.table:
        writes.append((args.table,
                       lambda: tio.write_table_atomic(table, args.table, refuse=[input_path])))
    if args.output:
        writes.append((args.output, write_h5ad))
    write_outputs(writes)


def _two_species(args) -> dict:
    """Keyword arguments of a two-species fit (none for one species)."""
    if args.unspliced_layer is None:
        return {}
    return {"unspliced_layer": args.unspliced_layer,
            "unspliced_factor": args.unspliced_factor}


def _labelling(args, adata, source, check_layer=None) -> dict:
    """Keyword arguments of a labelled fit (none without --new-layer).

    ``check_layer()`` raises a ValueError when the new layer is missing
    (default: look in ``adata.layers``; a file read from disk is checked on
    disk)."""
    if args.new_layer is None:
        return {}
    try:
        if check_layer is None:
            tio.check_layer(adata, args.new_layer, source=source)
        else:
            check_layer()
    except ValueError as exc:
        raise CLIError(one_line(exc)) from None
    out = {"new_layer": args.new_layer, "t_label": number_or_name(args.t_label)}
    if args.detection is not None:
        out["detection"] = number_or_name(args.detection)
    for opt, key in (("--t-label", "t_label"), ("--detection", "detection")):
        v = out.get(key)
        if key == "detection" and v == ESTIMATE:
            continue  # estimated by the fit (an obs column of that name: refused there)
        if isinstance(v, str) and v not in adata.obs.columns:
            raise CLIError(f"{opt} {v!r} is neither a number nor a column of obs in {source} "
                           f"(columns: {', '.join(map(str, list(adata.obs.columns)[:8]))}"
                           f"{', ...' if adata.obs.shape[1] > 8 else ''})")
    return out


def _result_table(adata, genes):
    return get.kinetics_df(adata, KEY, genes=genes).reset_index()


def detection_summary(estimate: dict) -> str:
    """One line on a detection probability estimated across genes (its record)."""
    flat = estimate.get("flag") == "flat"
    return (f"detection estimated across {estimate['n_genes']} genes: "
            f"{estimate['detection']:.3f} ({estimate['ci']:.0%} CI {estimate['ci_low']:.3f}-"
            f"{estimate['ci_high']:.3f}, se {estimate['se']:.3f}) in "
            f"{estimate['seconds']:.1f} s"
            + ("; flat: the data hardly identify it (one pulse length, slow genes?): give "
               "--detection P instead" if flat else "")
            + "; gene intervals are conditional on it")


def summary(table, *, elapsed: float, written: str) -> str:
    """One paragraph on a finished fit: genes per regime, goodness of fit,
    files written, time."""
    regimes = table["regime"].astype(str).value_counts()
    order = ["telegraph", "bursty", "bimodal", "poisson", "all_zero", "too_few_cells",
             "too_large", "not_fitted"]
    per = ", ".join(f"{r} {int(regimes[r])}" for r in order if r in regimes)
    fitted = table["regime"].astype(str).isin(["telegraph", "bursty", "bimodal", "poisson"])
    n_ok = (int((table.loc[fitted, "gof_flag"].astype(str) == "ok").sum())
            if "gof_flag" in table else 0)
    n_fit = int(fitted.sum())
    gof = (f"goodness of fit tested with power for {n_ok} of {n_fit} fitted genes"
           + (f" (for {n_fit - n_ok}, too few non-zero counts: gof_flag)" if n_fit > n_ok
              else ""))
    n_marginal = (int((table["fit_method"].astype(str) == "unspliced_marginal").sum())
                  if "fit_method" in table else 0)
    marginal = (f"{n_marginal} of them on their unspliced counts alone (too large for the "
                "exact two-species law); " if n_marginal else "")
    return (f"telegraph fit: fitted {n_fit} of {len(table)} genes in {elapsed:.1f} s ({per}); "
            f"{marginal}{gof}; {written}.")


# --------------------------------------------------------------------------- example report

def recovery_report(adata, *, key: str = KEY, ci: float = 0.95, genes=None) -> str:
    """How well a fit of ``tg.datasets.example()`` recovered the true kinetics.

    Compared on the genes whose kinetics are the same in groups A and B
    (``var["differential"] == "none"``): for them every cell follows one law,
    the one in ``var["true_*"]``. The differential genes are mixtures of two
    laws and have no single true value, so they are left out.
    """
    import numpy as np
    import pandas as pd

    var = adata.var
    mask = (var["differential"].astype(str) == "none").to_numpy()
    if genes is not None:
        mask &= var.index.isin(genes)
    n = int(mask.sum())
    lines = [f"compared on the {n} genes whose kinetics are the same in groups A and B",
             f"(var['differential'] == 'none'), using all {adata.n_obs} cells; rates in "
             f"units of k_deg"]
    if n == 0:
        return "\n".join(lines + ["no genes to compare"])
    cov_name = f"{ci:.0%} CI covers truth"
    lines += ["", f"{'quantity':<16}  {'estimated':>9}  {'median |rel. error|':>19}  "
                  f"{'Spearman r':>10}  {cov_name:>22}"]
    for q in ("burst_frequency", "burst_size"):
        truth = var[f"true_{q}"].to_numpy(float)[mask]
        est = var[f"{key}_{q}"].to_numpy(float)[mask]
        ok = np.isfinite(est) & (est > 0)
        rel = np.abs(est[ok] / truth[ok] - 1.0)
        med = float(np.median(rel)) if ok.any() else float("nan")
        # Spearman's r: Pearson's of the average ranks (scipy.stats.spearmanr's definition;
        # importing scipy.stats would cost most of a second of a warm command)
        rho = (float(np.corrcoef(pd.Series(est[ok]).rank(), pd.Series(truth[ok]).rank())[0, 1])
               if ok.sum() > 2 else float("nan"))
        lo_key, hi_key = f"{key}_{q}_ci_low", f"{key}_{q}_ci_high"
        if lo_key in var and hi_key in var:
            lo = var[lo_key].to_numpy(float)[mask]
            hi = var[hi_key].to_numpy(float)[mask]
            covered = int(((lo <= truth) & (truth <= hi)).sum())  # NaN bounds count as misses
            cov = f"{covered / n:.1%} ({covered}/{n})"
        else:
            cov = "n/a"
        lines.append(f"{q:<16}  {f'{ok.sum()}/{n}':>9}  {med:>19.3f}  {rho:>10.3f}  "
                     f"{cov:>22}")
    se = math.sqrt(ci * (1 - ci) / n)
    lines += ["", f"a calibrated {ci:.0%} interval covers the truth in {ci:.0%} of genes "
                  f"(+- {2 * se:.1%}, two binomial standard errors at {n} genes); "
                  f"missing intervals count as misses"]
    extras = []
    if f"{key}_converged" in var:
        conv = var[f"{key}_converged"].to_numpy()[mask]
        extras.append(f"converged: {int(np.sum(conv.astype(bool)))}/{n}")
    if f"{key}_regime" in var:
        counts = var[f"{key}_regime"].astype(str)[mask].value_counts()
        extras.append("regimes: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if extras:
        lines.append("; ".join(extras))
    return "\n".join(lines)


# --------------------------------------------------------------------------- run

def run(args) -> int:
    t0 = time.perf_counter()
    _validate_args(args)
    args.progress_setting = progress_option(args)
    input_path = None if args.example else Path(args.counts).expanduser()
    check_outputs(args.table, args.output, [input_path])
    streamed = not args.example and (args.backed or args.chunk_size is not None or (
        args.scheduler is not None and is_ondisk(input_path)))
    if streamed:
        if not input_path.exists():
            raise CLIError(f"no such file or directory: {str(input_path)!r}")
        if not is_ondisk(input_path):
            raise CLIError(f"--backed/--chunk-size read .h5ad files and .zarr stores from "
                           f"disk; {input_path.name} is read into memory (drop these options)")
        if args.output and not input_path.name.lower().endswith(".h5ad"):
            raise CLIError("-o with a .zarr read from disk is not supported: write --table, "
                           "or drop --backed/--chunk-size to load the store")
        return _run_streamed(args, input_path, t0)

    if args.unspliced_layer is None and args.new_layer is None and args.scheduler is None:
        compile_ahead(args.fit_settings)   # a cold first fit: compiling starts on a second core now
    if args.example:
        adata = tg.datasets.example()
        source = "the example"
        try:
            tio.check_layer(adata, args.layer, source=source)
        except ValueError as exc:
            raise CLIError(one_line(exc)) from None
        if args.capture is None:
            args.capture = "capture"
    else:
        source = str(input_path)
        adata = read_input(input_path, layer=args.layer, cells_in_rows=args.cells_in_rows)
        if args.unspliced_layer is not None:
            try:
                tio.check_layer(adata, args.unspliced_layer, source=source)
            except ValueError as exc:
                raise CLIError(one_line(exc)) from None

    genes = parse_genes(args.genes) if args.genes else None
    check_genes(genes, adata, source=source)
    capture = capture_option(args.capture, adata, source=source)
    k_deg = k_deg_option(args.k_deg, adata, source=source)
    labelled = _labelling(args, adata, source)
    progress = args.progress_setting
    client = connect(args.scheduler) if args.scheduler is not None else None
    compile_notice("fit")
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # a flat detection estimate is reported in the summary below
            warnings.simplefilter("ignore", DetectionWarning)
            warnings.simplefilter("ignore", TooLargeWarning)   # said below
            tg.tl.fit(adata, layer=args.layer, capture=capture, k_deg=k_deg, genes=genes,
                      min_cells=args.min_cells, ci=args.ci, interval=args.interval,
                      profile=args.profile, round_counts=round_option(args), n_jobs=args.jobs,
                      progress=progress, key_added=KEY,
                      **({} if client is None else {"client": client}), **_two_species(args),
                      **labelled)
    except (ValueError, KeyError) as exc:
        raise CLIError(as_cli_advice(one_line(exc))) from None
    finally:
        close_client(client)
    elapsed = time.perf_counter() - start

    table = _result_table(adata, genes)
    _print_detection_estimate(adata)
    _print_too_large(table)
    _write_outputs(args, table, input_path,
                   lambda: tio.write_h5ad_atomic(adata, args.output, refuse=[input_path]))
    if args.example:
        n_fit = len(table)
        print(f"telegraph fit --example: {adata.n_obs} cells x {adata.n_vars} genes, "
              f"capture {getattr(capture, 'description', capture)}")
        print(f"fitted {n_fit} genes in {elapsed:.1f} s ({n_fit / max(elapsed, 1e-9):.0f} "
              f"genes/s), {args.interval} intervals at {args.ci:.0%}")
        print(recovery_report(adata, ci=args.ci, genes=genes))
    elif not args.table and not args.output:
        write_stdout_csv(table)
    print(summary(table, elapsed=time.perf_counter() - t0,
                  written=files_written(args.table, args.output)), file=sys.stderr)
    return 0


def _print_too_large(table) -> None:
    message = too_large_message(table) if "regime" in table else None
    if message is not None:
        print(f"telegraph fit: {message}", file=sys.stderr)


def _print_detection_estimate(adata) -> None:
    estimate = adata.uns.get(KEY, {}).get("labelling", {}).get("detection_estimate")
    if estimate is not None:
        print(f"telegraph fit: {detection_summary(estimate)}", file=sys.stderr)


def _run_streamed(args, input_path: Path, t0: float) -> int:
    """Fit an .h5ad/.zarr from disk (telegraph.fit_file); the matrix is never loaded."""

    source = str(input_path)
    try:
        adata = read_obs_var(input_path)  # obs and var only
        OnDiskMatrix(input_path, args.layer)  # the matrix exists and is readable
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(one_line(exc)) from None
    except (OSError, KeyError) as exc:
        raise CLIError(f"cannot read {source}: {one_line(exc)}") from None
    genes = parse_genes(args.genes) if args.genes else None
    check_genes(genes, adata, source=source)
    capture = capture_option(args.capture, adata, source=source)
    k_deg = k_deg_option(args.k_deg, adata, source=source)
    labelled = _labelling(args, adata, source,
                          check_layer=lambda: OnDiskMatrix(input_path, args.new_layer))
    progress = args.progress_setting
    client = connect(args.scheduler) if args.scheduler is not None else None
    compile_notice("fit")
    try:
        with warnings.catch_warnings():
            # a flat detection estimate is reported in the summary below
            warnings.simplefilter("ignore", DetectionWarning)
            warnings.simplefilter("ignore", TooLargeWarning)   # said below
            res = fit_file(input_path, layer=args.layer, capture=capture, k_deg=k_deg,
                           genes=genes, min_cells=args.min_cells, ci=args.ci,
                           interval=args.interval, profile=args.profile,
                           round_counts=round_option(args),
                           chunk_size=args.chunk_size, n_jobs=args.jobs, progress=progress,
                           client=client, **_two_species(args), **labelled)
    except (ValueError, KeyError) as exc:
        raise CLIError(as_cli_advice(one_line(exc))) from None
    except FileNotFoundError as exc:  # a Dask worker could not open the file
        raise CLIError(one_line(exc)) from None
    finally:
        close_client(client)
    store_results(adata, res, key_added=KEY, layer=args.layer, capture=capture, k_deg=k_deg,
                  unspliced_layer=args.unspliced_layer, new_layer=args.new_layer)
    table = _result_table(adata, genes)
    _print_detection_estimate(adata)
    _print_too_large(table)
    _write_outputs(args, table, input_path,
                   lambda: tio.write_h5ad_annotations_atomic(input_path, args.output, adata,
                                                             uns_key=KEY))
    if not args.table and not args.output:
        write_stdout_csv(table)
    print(summary(table, elapsed=time.perf_counter() - t0,
                  written=files_written(args.table, args.output)), file=sys.stderr)
    return 0
