"""The ``telegraph`` command line.

Each subcommand lives in its own module of this package and exposes
``add_parser(subparsers)`` and ``run(args) -> int``. The CLI holds no maths:
it parses, calls the library, and reports.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from .. import __version__
from ._errors import CLIError, Terminated
from ._startup import pause_collector, work_starts

__all__ = ["main", "build_parser", "CLIError"]

#: the subcommands, each a module of this package with ``add_parser(subparsers)`` and
#: ``run(args)``; imported when a command line names one (or for the full help), so that
#: ``telegraph --version`` does not pay for the library's imports (tests/test_architecture.py
#: checks that these are modules of this package)
COMMANDS = ("telegraph.cli.fit", "telegraph.cli.test", "telegraph.cli.design")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``command`` (a name of :data:`COMMANDS`)
    only that subcommand's, so that running one command imports only its module."""
    parser = argparse.ArgumentParser(
        prog="telegraph",
        description=(
            "Transcriptional bursting kinetics (two-state telegraph model) from "
            "single-cell RNA counts. Rates are per unit time; without a degradation "
            "rate they are reported in units of the mRNA degradation rate k_deg "
            "(k_deg = 1): burst frequency k_on in bursts per mRNA lifetime, burst "
            "size k_syn/k_off in mRNA molecules per burst."
        ),
    )
    parser.add_argument("--version", action="version",
                        version=f"telegraph {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if command is None or _command_name(name) == command:
            importlib.import_module(name).add_parser(sub)
    return parser


def _command_name(module: str) -> str:
    return module.rsplit(".", 1)[1]


def _named_command(argv) -> str | None:
    """The subcommand a command line runs, when it names one first (``telegraph
    fit ...``); None for anything else (help, errors: the full parser answers)."""
    args = sys.argv[1:] if argv is None else list(argv)
    names = {_command_name(m) for m in COMMANDS}
    return args[0] if args and args[0] in names else None


def _version_only(argv) -> bool:
    """Whether the command line is ``--version`` before any command (answered
    without importing the commands)."""
    args = sys.argv[1:] if argv is None else list(argv)
    return bool(args) and args[0] == "--version"


def main(argv=None) -> int:
    if _version_only(argv):
        print(f"telegraph {__version__}")
        return 0
    # run as the program (the console script, python -m telegraph: argv from sys.argv), the
    # cyclic collector rests during the start-up (imports, reading the input) and resumes
    # where the work starts, or here at the end (telegraph.cli._startup); a caller that
    # passes argv (a test, a script calling main many times) keeps its collector as it is
    if argv is None:
        pause_collector()
    try:
        return _run(argv)
    finally:
        work_starts()


def _run(argv) -> int:
    parser = build_parser(_named_command(argv))
    args = parser.parse_args(argv)
    if getattr(args, "command", None) is None:
        parser.print_help()
        return 2
    # SIGTERM (a batch scheduler's stop, `kill`) ends the command the way Ctrl-C does:
    # temporary files are removed and it says what was written
    previous = _on_sigterm(_terminate)
    try:
        return int(args.run(args) or 0)
    except CLIError as exc:
        print(f"telegraph {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        written = getattr(exc, "written", ())
        what = (f"{', '.join(map(str, written))} written (complete), nothing else"
                if written else "nothing was written")
        how, status = (("terminated", 128 + signal.SIGTERM) if isinstance(exc, Terminated)
                       else ("interrupted", 130))
        print(f"telegraph {args.command}: {how}; {what}", file=sys.stderr)
        return status
    finally:
        _on_sigterm(previous)


def _terminate(signum, frame):
    raise Terminated()


def _on_sigterm(handler):
    """Install ``handler`` for SIGTERM (main thread only); returns the previous one."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
