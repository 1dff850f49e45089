"""The command line's exceptions (light: ``telegraph --version`` imports only these)."""

from __future__ import annotations

__all__ = ["CLIError", "Terminated"]


class CLIError(Exception):
    """An error in the user's input: printed as one line, exit status 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (exit status 143)."""
