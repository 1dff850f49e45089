"""The command line's start-up: Python's cyclic garbage collector paused until the work starts.

Start-up (the library's imports, the parser, reading the input) creates about a million
long-lived objects, and every full pass of the cyclic collector over them finds nothing to
free: measured, 0.2-0.4 s of CPU of the ~2 s a warm ``telegraph fit --example`` spent before
its first gene on a 2-core machine (benchmarks/RESULTS.md, "Start-up and compilation"). So
the command pauses the collector when it starts and, when the work starts
(:func:`work_starts`, called where the fit, the test or the design begins), moves every
object made so far to the collector's permanent generation (:func:`gc.freeze`: never scanned
again; reference counting still frees them) and resumes it. Only the program entry pauses
it (``telegraph.cli.main()`` without ``argv``): freezing in a process that calls ``main``
again and again would keep any cyclic garbage of the moment for good. Nothing is paused
when the collector was already off (an embedding program's choice is kept).
"""

from __future__ import annotations

import gc

__all__ = ["pause_collector", "work_starts"]

_paused = False


def pause_collector() -> None:
    """Pause the cyclic collector for the start-up (if it is running)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def work_starts() -> None:
    """End of the start-up: freeze what exists and resume the collector paused by
    :func:`pause_collector` (no-op otherwise; safe to call more than once)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
