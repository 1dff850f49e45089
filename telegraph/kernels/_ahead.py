"""Compiling ahead: a cold first call compiles part of a kernel's tree in a second process.

A kernel called from Python is compiled with everything it calls, one callee
after another, in the order its source reaches them (kernels/_jit.py); on a
fresh installation the fit kernel :func:`telegraph.kernels.fit.fit_genes`
spends about half a minute so, on one core. Most of that time is Numba's own
typing and lowering, kernel by kernel, and independent subtrees (the
Poisson-Beta evaluation, the profile-interval search, the goodness of fit) can
be compiled anywhere: a kernel compiled as a top-level kernel in another process
is written to the on-disk cache (its machine code and, for linking into
callers, its LLVM IR), and :meth:`telegraph.kernels._jit.Kernel._link_or_load`
loads a callee from the cache before it would compile it.

:func:`start` therefore launches, when the top kernel is not compiled or
cached yet, one helper process (``python -m telegraph.kernels._ahead``) given
a list of *jobs* (a kernel and the argument types its caller links it for),
which it compiles in order as top-level kernels into the same cache. The two
processes share the jobs through claim files (whoever creates a job's file
first compiles it), so no job is compiled twice:

- when this process reaches a job's kernel and finds no cache entry, it claims
  the job and compiles it itself if the helper has not started it; if the
  helper has, it waits for it, and meanwhile compiles for linking the jobs
  nobody has started yet, from the end of the list (the helper works from the
  front), so that neither process idles while the other has work; a job that
  is itself a kernel called from Python (the test kernel) is only ever
  compiled whole, never for linking;
- when the helper fails or ends early, this process compiles what is missing
  itself: the result is the same, only slower;
- the helper is stopped when this process exits (Ctrl-C reaches both); an
  interrupted helper leaves nothing half-written (Numba writes a cache entry
  to a temporary file and renames it), and its claim files are removed.

Nothing here changes what is compiled, only where: the jobs' declared
argument types must be the ones the top kernel links them for (tested in
tests/test_compile.py); a job declared wrongly is never loaded and is compiled
here as before. On one core (the CPUs this process may run on) there is
nothing to overlap and no helper is started. The plans of the fit and the test
kernels are declared next to them (:func:`telegraph.kernels.fit.compile_ahead_plan`,
:func:`telegraph.kernels.differential.compile_ahead_plan`) and started by
:func:`telegraph.fitting.compile_ahead`.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from . import _jit

__all__ = ["start"]

#: seconds this process waits for one job of the helper before compiling it
#: itself (a helper that hangs costs at most this much)
_WAIT = 600.0

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


class _Helper:
    """The helper process and the jobs it shares with this process."""

    def __init__(self, jobs, whole=()):
        self.jobs = [(kernel, tuple(args)) for kernel, args in jobs]
        self.index = {(id(k), a): i for i, (k, a) in enumerate(self.jobs)}
        # jobs that are kernels called from Python (compiled whole, never for linking)
        whole = set(whole)
        self.whole = {i for i, (k, a) in enumerate(self.jobs) if (id(k), a) in whole}
        self.claims = tempfile.mkdtemp(prefix="telegraph-ahead-")
        self.done: set[int] = set()
        self.failed: set[int] = set()
        self.mine: set[int] = set()   # jobs this process claimed (compiles itself)
        self.ended = False
        self.steal = True   # compile unstarted jobs here while waiting (tests turn it off)
        spec = [(k.py_func.__module__, k.py_func.__qualname__, a) for k, a in self.jobs]
        env = dict(os.environ)
        # the same telegraph as this process (same sources: same cache keys)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "telegraph.kernels._ahead", self.claims],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                env=env)
        except OSError:
            shutil.rmtree(self.claims, ignore_errors=True)
            raise
        self.lines: queue.Queue = queue.Queue()
        try:
            self.proc.stdin.write(pickle.dumps(spec))
            self.proc.stdin.close()
        except BrokenPipeError:   # the helper died at once: it reports nothing, this compiles
            pass
        threading.Thread(target=self._read, daemon=True).start()
        atexit.register(self.stop)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.decode().split())
        self.lines.put(None)

    def _claim(self, i: int) -> bool:
        if _claim_file(self.claims, i):
            self.mine.add(i)
            return True
        return False

    def _take(self, timeout) -> bool:
        """Record the helper's next report; False when it has ended (or timed out)."""
        try:
            words = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            return False
        if words is None:
            self.ended = True
            return False
        if len(words) == 2 and words[1].isdigit():
            (self.done if words[0] == "done" else self.failed).add(int(words[1]))
        return True

    def _steal_one(self) -> bool:
        """Compile here, for linking, the last job nobody has started; False if none."""
        if not self.steal:
            return False
        for j in range(len(self.jobs) - 1, -1, -1):
            if j not in self.whole and self._claim(j):
                kernel, args = self.jobs[j]
                kernel._compile_for_linking(args)
                return True
        return False

    def wait_for(self, kernel, args) -> bool:
        """Called on a cache miss of ``kernel`` for ``args``: True when the helper
        has compiled it into the cache (load it now), False to compile it here."""
        i = self.index.get((id(kernel), tuple(args)))
        if i is None or i in self.mine or self.ended:
            return False
        if self.steal and self._claim(i):
            return False   # the helper has not started it: compile it here
        while i not in self.done and i not in self.failed and not self.ended:
            if not self._steal_one() and not self._take(_WAIT):
                break
        return i in self.done

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.ended = True
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
    whole = {(id(top), tuple(top_args)) for top, top_args, _ in plans}
    try:
        _helper = _Helper(jobs, whole)
    except OSError:   # no interpreter to start (an embedded Python): compile here
        return False
    _jit._ahead_wait = _helper.wait_for
    return True


def _claim_file(claims: str, i: int) -> bool:
    try:
        os.close(os.open(os.path.join(claims, str(i)), os.O_CREAT | os.O_EXCL))
        return True
    except OSError:
        return False


def _main(claims: str) -> None:
    """The helper: compile each job nobody has claimed as a top-level kernel
    (machine code and a cache entry), reporting ``done i`` / ``fail i``."""
    spec = pickle.loads(sys.stdin.buffer.read())
    for i, (module, name, args) in enumerate(spec):
        if not _claim_file(claims, i):
            continue
        try:
            kernel = getattr(importlib.import_module(module), name)
            kernel.compile(args)
            word = "done"
        except Exception:  # noqa: BLE001 - the caller compiles it itself
            word = "fail"
        print(word, i, flush=True)


if __name__ == "__main__":
    try:
        _main(sys.argv[1])
    except KeyboardInterrupt:   # the user's Ctrl-C reaches the whole process group
        sys.exit(130)
