"""Compiling ahead: a cold first call compiles on two cores.

A kernel called from Python is compiled with everything it calls, one callee
after another, in the order its source reaches them (kernels/_jit.py); on a
fresh installation the fit kernel :func:`telegraph.kernels.fit.fit_genes`
spends about half a minute so, on one core. Most of that time is Numba's own
typing and lowering, and the largest pieces are *units* (kernels/_jit.py):
kernels compiled separately, with machine code and a cache entry of their own,
that callers call by symbol. A unit compiled in another process is loaded
from the on-disk cache, so units can be compiled anywhere.

:func:`start` therefore launches, when the top kernel is not compiled or
cached yet, one helper process (``python -m telegraph.kernels._ahead``) given
a list of *jobs* (a kernel and argument types: the units the top kernel
calls, each after the units it calls), which it compiles in order into the
same cache. The two processes share the jobs through a directory of claim
files (whoever creates a job's file first compiles it; ``i.done`` or
``i.fail`` when it has ended), so no job is compiled twice:

- either process, about to compile a job's kernel, claims it and compiles it
  whole if nobody has; if the other process has, it waits for it and loads it
  from the cache. While it waits outside any job of its own (this process,
  resolving the units of the top kernel it has typed and lowered meanwhile),
  it compiles the jobs nobody has started, from the end of the list (the
  helper works from the front), so that neither idles while the other has
  work; inside a job it only waits (for that job's callees: the calls between
  kernels have no cycles, so the two never wait for each other);
- when the helper fails or dies, this process compiles what is missing
  itself: the result is the same, only slower;
- the helper is stopped when this process exits (Ctrl-C reaches both) and
  stops by itself when this process has gone; an interrupted helper leaves
  nothing half-written (Numba writes a cache entry to a temporary file and
  renames it), and the claim files are removed.

Nothing here changes what is compiled, only where: a job that is not what the
top kernel calls (tested in tests/test_compile.py) is compiled for nothing,
and what the top kernel needs is compiled here as before. On one core (the
CPUs this process may run on) there is nothing to overlap and no helper is
started. The plans of the fit and the test kernels are declared next to them
(:func:`telegraph.kernels.fit.compile_ahead_plan`,
:func:`telegraph.kernels.differential.compile_ahead_plan`) and started by
:func:`telegraph.fitting.compile_ahead`.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import _jit

__all__ = ["start"]

#: seconds this process waits for one job of the helper before compiling it
#: itself (a helper that hangs costs at most this much)
_WAIT = 600.0
#: seconds between two looks at whether the other process has finished a job
_POLL = 0.005

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _is_cached(kernel, args) -> bool:
    """Whether ``kernel`` is compiled in this process or in the on-disk cache for
    ``args`` (True when that cannot be told: then nothing is started)."""
    if tuple(args) in kernel.overloads:
        return True
    try:
        key = kernel._cache._index_key(tuple(args), kernel.targetctx.codegen())
        return key in kernel._cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - Numba internals: any failure means "cannot tell"
        return True


class _Jobs:
    """The jobs two processes share: a job is compiled whole (machine code and a
    cache entry) by whichever process claims it first, and loaded from the cache
    by the other. A directory holds a claim file per job (``i``, created
    exclusively) and, once its compilation has ended, ``i.done`` or ``i.fail``."""

    def __init__(self, jobs, claims: str, other_alive):
        self.jobs = [(kernel, tuple(args)) for kernel, args in jobs]
        self.index = {(id(k), a): i for i, (k, a) in enumerate(self.jobs)}
        self.claims = claims
        self.other_alive = other_alive
        self.mine: set[int] = set()     # jobs this process claimed
        self.active: set[int] = set()   # ... and is compiling now
        # claim unstarted jobs (the helper always does; tests may make this process
        # only wait, for a deterministic split)
        self.steal = True

    def _claim(self, i: int) -> bool:
        if _claim_file(self.claims, str(i)):
            self.mine.add(i)
            return True
        return False

    def _ended(self, i: int):
        """True when job ``i`` is in the cache, False when its compilation failed,
        None while it runs (or has not started)."""
        if os.path.exists(os.path.join(self.claims, f"{i}.done")):
            return True
        if os.path.exists(os.path.join(self.claims, f"{i}.fail")):
            return False
        return None

    def _steal_one(self) -> bool:
        """Compile here the last job nobody has started; False if none. Only a
        process compiling no job of its own steals: a process waiting inside a job
        waits only for that job's callees, so two waiting processes never wait
        for each other (the calls between kernels have no cycles)."""
        if not self.steal or self.active:
            return False
        return any(self.run(j) for j in range(len(self.jobs) - 1, -1, -1))

    def run(self, i: int) -> bool:
        """Claim job ``i`` and compile it here; False if it was claimed already.
        A failure is reported to the other process (which then compiles it itself)."""
        if not self._claim(i):
            return False
        kernel, args = self.jobs[i]
        try:
            kernel.compile(args)
        except Exception:  # noqa: BLE001 - reported as failed by Kernel.compile
            pass
        return True

    def wait(self, kernel, args):
        """Before ``kernel`` is compiled for ``args``: True when the other process
        has put it in the cache (load it), False when it is this process's to
        compile (claimed now or before), None when it is no job (or the other
        process failed at it or died: compile it here)."""
        i = self.index.get((id(kernel), tuple(args)))
        if i is None:
            return None
        if i in self.mine or (self.steal and self._claim(i)):
            self.active.add(i)
            return False
        deadline = time.monotonic() + _WAIT
        while True:
            ended = self._ended(i)
            if ended is not None:
                return True if ended else None
            if not self.other_alive() or time.monotonic() > deadline:
                return None
            if not self._steal_one():
                time.sleep(_POLL)

    def done(self, kernel, args, ok: bool):
        """``kernel`` compiled for ``args`` (``ok``) or failed: tell the other process."""
        i = self.index.get((id(kernel), tuple(args)))
        if i is not None and i in self.active:
            self.active.discard(i)
            _claim_file(self.claims, f"{i}.{'done' if ok else 'fail'}")

    def install(self):
        _jit._ahead_wait, _jit._ahead_done = self.wait, self.done


class _Helper:
    """The helper process, compiling the jobs from the front of the list."""

    def __init__(self, jobs):
        claims = tempfile.mkdtemp(prefix="telegraph-ahead-")
        self.claims = claims
        spec = [(k.py_func.__module__, k.py_func.__qualname__, tuple(a)) for k, a in jobs]
        env = dict(os.environ)
        # the same telegraph as this process (same sources: same cache keys)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "telegraph.kernels._ahead", claims],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=env)
        except OSError:
            shutil.rmtree(claims, ignore_errors=True)
            raise
        try:
            self.proc.stdin.write(pickle.dumps(spec))
            self.proc.stdin.close()
        except BrokenPipeError:   # the helper died at once: this process compiles
            pass
        self.jobs = _Jobs(jobs, claims, lambda: self.proc.poll() is None)
        atexit.register(self.stop)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.claims, ignore_errors=True)


_helper: _Helper | None = None


def start(*plans) -> bool:
    """Compile jobs ahead in a helper process. Each plan is ``(top, top_args,
    jobs)``: ``top`` a kernel about to be called from Python with arguments of
    types ``top_args``, ``jobs`` pairs of a kernel and the argument types ``top``
    links it for (or ``top`` itself, to compile it whole). The jobs of each plan
    whose top is neither compiled in this process nor cached are compiled, in
    the order given, if there is a second core. Returns whether a helper was
    started (one per process)."""
    global _helper
    if _helper is not None or _cores() < 2:
        return False
    jobs, seen = [], set()
    for top, top_args, plan_jobs in plans:
        if not isinstance(top, _jit.Kernel) or _is_cached(top, top_args):
            continue
        for kernel, args in plan_jobs:
            key = (id(kernel), tuple(args))
            if key not in seen and not _is_cached(kernel, args):
                seen.add(key)
                jobs.append((kernel, tuple(args)))
    if not jobs:
        return False
    try:
        _helper = _Helper(jobs)
    except OSError:   # no interpreter to start (an embedded Python): compile here
        return False
    _helper.jobs.install()
    return True


def _claim_file(claims: str, name: str) -> bool:
    try:
        os.close(os.open(os.path.join(claims, name), os.O_CREAT | os.O_EXCL))
        return True
    except OSError:
        return False


def _main(claims: str) -> None:
    """The helper: compile each job nobody has claimed, from the front of the
    list, as the other process does (claims, waits, done files); stop when the
    process that started it has gone."""
    spec = pickle.loads(sys.stdin.buffer.read())
    parent = os.getppid()
    jobs = [(getattr(importlib.import_module(module), name), args)
            for module, name, args in spec]
    shared = _Jobs(jobs, claims, lambda: os.getppid() == parent)
    shared.install()
    for i in range(len(jobs)):
        if os.getppid() != parent:
            return
        shared.run(i)


if __name__ == "__main__":
    try:
        _main(sys.argv[1])
    except KeyboardInterrupt:   # the user's Ctrl-C reaches the whole process group
        sys.exit(130)
