"""What the subcommands share: turning option text into library arguments,
reading inputs, checking outputs, and one-line errors.

The command line holds no maths and makes no decision the library makes:
option text becomes a Python value here (``"0.3"`` a number, anything else a
column name), and the library's one resolver (:mod:`telegraph.inputs`) checks
it against the data's obs/var before any heavy work, so that a mistake is a
one-line error naming the option.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .. import cluster, config, get
from .. import io as tio
from ..inputs import FitSettings, gene_positions, resolve_capture, resolve_k_deg
from ..kernels import differential as kdiff
from ..kernels import fit as kfit
from ..kernels import is_compiled
from ._errors import CLIError
from ._startup import work_starts



# the library's advice names its keywords; the user typed options
_KEYWORD_TO_OPTION = {"round_counts='force'": "--force-round", "round_counts=True": "--round",
                      "pass layer= with the layer that holds them (--layer on the command "
                      "line)": "pass --layer with the layer that holds them",
                      "min_cells": "--min-cells",
                      "n_jobs": "--jobs", "ci is a": "--ci is a",
                      "detection='estimate'": "--detection estimate",
                      "give detection= as a number": "give --detection as a number"}


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (KeyError without its quotes)."""
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return " ".join(str(msg).split()) or type(exc).__name__


def as_cli_advice(message: str) -> str:
    """The library's advice in terms of options rather than keywords."""
    for keyword, option in _KEYWORD_TO_OPTION.items():
        message = message.replace(keyword, option)
    return message


def number_or_name(text: str | None):
    """``None``, a float when the text is a number, else the text (a column name)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def capture_option(text: str | None, adata, *, source: str):
    """``--capture`` resolved against ``adata.obs`` by the library's resolver:
    a :class:`telegraph.inputs.Capture`, or ``"total"`` unchanged (the fit
    takes the totals from the counts it reads). ``fit`` (when obs has no such
    column) is the capture an earlier ``telegraph fit -o`` recorded in the file."""
    value = number_or_name(text)
    if value == "total":
        return value
    if value == "fit" and "fit" not in adata.obs.columns:
        try:
            return get.capture(adata, config.FIT_KEY)
        except (KeyError, ValueError) as exc:
            raise CLIError(f"--capture fit: {one_line(exc)} (in {source}; write one with "
                           f"`telegraph fit {source} -o OUT.h5ad`)") from None
    try:
        return resolve_capture(value, n_cells=adata.n_obs, obs=adata.obs,
                               where=f"the obs of {source}")
    except (ValueError, KeyError) as exc:
        raise CLIError(f"--capture {text!r}: {one_line(exc)}") from None


def k_deg_option(text: str | None, adata, *, source: str):
    """``--k-deg`` resolved against ``adata.var``: a :class:`telegraph.inputs.KDeg`."""
    try:
        return resolve_k_deg(number_or_name(text), n_genes=adata.n_vars, var=adata.var,
                             where=f"the var of {source}")
    except (ValueError, KeyError) as exc:
        raise CLIError(f"--k-deg {text!r}: {one_line(exc)}") from None


def parse_genes(spec: str) -> list[str]:
    """``--genes``: comma-separated names, or @FILE (one per line, '#' comments)."""
    if spec.startswith("@"):
        path = Path(spec[1:]).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise CLIError(f"--genes: cannot read gene list {str(path)!r}: "
                           f"{exc.strerror or exc}") from None
        items = []
        for line in text.splitlines():
            line = line.split("#", 1)[0]
            items.extend(x.strip() for x in line.replace(",", " ").split())
        source = str(path)
    else:
        items = [x.strip() for x in spec.split(",")]
        source = "--genes"
    genes = list(dict.fromkeys(x for x in items if x))
    if not genes:
        raise CLIError(f"--genes: no gene names in {source}")
    return genes


def check_genes(genes, adata, *, source: str) -> None:
    """Every name of ``--genes`` is a gene of ``adata``."""
    if genes is None:
        return
    try:
        gene_positions(genes, adata.var_names.astype(str), where=source)
    except KeyError as exc:
        raise CLIError(f"--genes: {one_line(exc)}") from None


def read_input(path, *, layer=None, cells_in_rows=False):
    """:func:`telegraph.io.read` with its errors as one-line CLI errors."""
    try:
        return tio.read(path, layer=layer, cells_in_rows=cells_in_rows)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(one_line(exc)) from None
    except (OSError, KeyError) as exc:
        raise CLIError(f"cannot read {path}: {one_line(exc)}") from None


def read_kinetics(path):
    """``--kinetics``: the per-gene table of an earlier fit, from a .csv/.tsv table
    (``telegraph fit --table``) or an .h5ad written by ``telegraph fit -o``."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.exists():
        raise CLIError(f"--kinetics: no such file: {path}")
    name = path.name.lower()
    try:
        if name.endswith(".h5ad"):
            return get.kinetics_df(tio.read(path)).reset_index()
        sep = "\t" if name.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")) else ","
        return pd.read_csv(path, sep=sep)
    except (KeyError, ValueError, OSError) as exc:
        raise CLIError(f"--kinetics: cannot read {path.name}: {one_line(exc)}") from None


def check_outputs(table, output, refuse) -> None:
    """Output paths are valid (extension, directory, not an input) before any work."""
    refuse = [p for p in refuse if p is not None]
    try:
        if table:
            tio.check_output_path(table, suffixes=(".csv", ".tsv"), refuse=refuse)
        if output:
            tio.check_output_path(output, suffixes=(".h5ad",), refuse=refuse)
    except (ValueError, OSError) as exc:
        raise CLIError(one_line(exc)) from None


def write_outputs(writes) -> None:
    """Run the ``(path, write)`` pairs in order, each write atomic. A failure is a
    one-line error; an interruption (Ctrl-C, SIGTERM) carries the paths already
    written (``exc.written``) so that the message says what is there."""
    done = []
    try:
        for path, write in writes:
            write()
            done.append(path)
    except (ValueError, OSError) as exc:
        also = f" ({', '.join(map(str, done))} was written)" if done else ""
        raise CLIError(f"cannot write output: {one_line(exc)}{also}") from None
    except KeyboardInterrupt as exc:
        exc.written = done
        raise


def connect(address):
    """A Dask client for ``--scheduler`` (one-line error when unreachable). A local
    cluster logs errors only: its workers' warnings are Dask's business."""
    try:
        return cluster.connect(address, silence_logs=logging.ERROR)
    except (ConnectionError, ImportError) as exc:
        raise CLIError(f"--scheduler: {one_line(exc)}") from None


def close_client(client) -> None:
    """Close the ``--scheduler`` client; quietly when interrupted (one line, not
    Dask's tracebacks of abandoned work)."""
    if client is not None:
        cluster.close(client)


def write_stdout_csv(table) -> None:
    """The table as CSV on stdout (a closed pipe, as in ``| head``, is not an error)."""
    try:
        table.to_csv(sys.stdout, index=False, na_rep="")
        sys.stdout.flush()
    except BrokenPipeError:
        import os
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def check_settings(args) -> FitSettings:
    """--ci, --interval, --min-cells checked by the library's settings (one check);
    returns the settings of a fit with them."""
    try:
        return FitSettings(ci=args.ci, interval=args.interval, min_cells=args.min_cells,
                           profile=getattr(args, "profile", config.PROFILE))
    except ValueError as exc:
        raise CLIError(as_cli_advice(one_line(exc))) from None


def check_level(option: str, value: float) -> None:
    """A confidence level or threshold in (0, 1), with a hint for percentages."""
    if not 0.0 < value < 1.0:
        hint = f" (did you mean {value / 100:g}?)" if 1.0 < value < 100.0 else ""
        raise CLIError(f"{option} is a level in (0, 1), got {value:g}{hint}")


def check_at_least_one(option: str, value) -> None:
    if value is not None and value < 1:
        raise CLIError(f"{option} must be at least 1, got {value}")


def add_progress_options(group) -> None:
    """``--progress`` / ``--no-progress`` (default: a bar only on a terminal)."""
    group.add_argument(
        "--progress", action="store_true",
        help="show the progress bar on stderr even when it is not a terminal")
    group.add_argument(
        "--no-progress", action="store_true",
        help="never show the progress bar (by default it is shown only when stderr is a "
             "terminal, so that a log file gets none)")


def progress_option(args):
    """True (--progress), False (--no-progress) or None (when stderr is a terminal)."""
    if getattr(args, "progress", False) and getattr(args, "no_progress", False):
        raise CLIError("--progress and --no-progress exclude each other")
    if getattr(args, "progress", False):
        return True
    return False if getattr(args, "no_progress", False) else None


#: the compiled kernels each subcommand runs first
_KERNELS = {"fit": (kfit.fit_genes,), "test": (kfit.fit_genes, kdiff.differential_genes)}


def compile_notice(command: str) -> None:
    """Say so on stderr, before it happens, when the kernels are about to be
    compiled (the first run of a fresh installation: about half a minute
    with nothing else to show). The start-up ends here: the paused garbage
    collector resumes (:func:`telegraph.cli._startup.work_starts`)."""
    work_starts()
    if all(is_compiled(k) for k in _KERNELS.get(command, ())):
        return
    print(f"telegraph {command}: compiling kernels, once per installation (about half a minute; "
          f"later runs start at once) ...", file=sys.stderr, flush=True)


def files_written(*paths) -> str:
    """'wrote A, B' for the outputs given, or '' when there are none."""
    done = [str(p) for p in paths if p]
    return ("wrote " + " and ".join(done)) if done else "wrote the table to stdout"


def add_round_options(group) -> None:
    """``--round`` and ``--force-round``."""
    group.add_argument(
        "--round", action="store_true",
        help="round non-integer counts to the nearest whole number instead of refusing "
             "them (raw counts made non-integer by a correction, e.g. of ambient RNA). "
             "Data that look normalised or log-transformed are refused even so: give the "
             "raw counts (--layer)")
    group.add_argument(
        "--force-round", action="store_true",
        help="round even values that look normalised or log-transformed (not "
             "recommended: rounded normalised values are not counts)")


def round_option(args):
    """``round_counts`` of the library: False, True (--round) or "force"."""
    return "force" if getattr(args, "force_round", False) else bool(args.round)
