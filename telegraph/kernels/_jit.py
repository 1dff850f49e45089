"""How the kernels are compiled and cached: one machine-code version per kernel.

Every kernel module takes its decorator from here (``from ._jit import njit``)
instead of from Numba. It is Numba's ``njit`` with three differences, all about
the cost of the first call (a fresh installation compiles every kernel it
uses once; benchmarks/bench_startup.py measures it per kernel):

- a kernel called from another kernel is compiled for the *types* of its
  arguments, never for their values. Numba's own dispatcher types a constant
  argument as a literal (``evaluate(MODEL_TELEGRAPH, ..., True, ...)`` as
  ``Literal[int](0)``, ``Literal[bool](True)``) and compiles a separate version
  of the callee, and of everything below it, for each constant it is called
  with (the maximiser three times, the histogram evaluation and its helpers
  two to four times). Here the arguments are widened to their plain types
  first, so each kernel is compiled once for the dtypes the Python layer
  passes (it normalises them: int64 counts, groups and offsets, float64
  weights and capture);
- the compiled code is cached on disk by default (``cache=True``), in
  ``NUMBA_CACHE_DIR`` when it is set, else in a user cache directory
  (``~/.cache/telegraph/numba`` on Linux, :func:`cache_dir`), so that an
  installation into a read-only site-packages reuses it too; if neither can
  be written, next to the sources or wherever Numba would put it;
- a cache entry is valid for the exact source of *every* kernel module, not
  only of the module that defines the kernel: Numba checks only the latter,
  so an edit of a kernel in another file would leave callers compiled
  against the old one. The kernels import nothing but each other (and
  NumPy/Numba), so this stamp covers everything compiled into them.

Everything else (``error_model``, ``nogil``, ``parallel``, ``inline``, ...)
is passed to Numba unchanged, and the result is an ordinary Numba dispatcher
(``.py_func``, ``.signatures``, callable from other kernels and from Python).
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from numba.core import config as numba_config
from numba.core import types
from numba.core.caching import CompileResultCacheImpl, FunctionCache, _CacheLocator
from numba.core.registry import CPUDispatcher
from numba.misc.appdirs import AppDirs

__all__ = ["njit", "Kernel", "cache_dir"]

_KERNELS = Path(__file__).resolve().parent


def cache_dir() -> str:
    """The directory of the compiled kernels: ``NUMBA_CACHE_DIR`` when it is
    set (always honoured), else the user cache directory of telegraph
    (``$XDG_CACHE_HOME/telegraph/numba``, by default ``~/.cache/telegraph/numba``
    on Linux; ``~/Library/Caches/telegraph/numba`` on macOS)."""
    return (os.environ.get("NUMBA_CACHE_DIR") or numba_config.CACHE_DIR
            or os.path.join(AppDirs("telegraph", appauthor=False).user_cache_dir, "numba"))


@functools.lru_cache(maxsize=None)
def _source_stamp() -> str:
    """A hash of the source of every kernel module (read once per process)."""
    h = hashlib.sha256()
    for path in sorted(_KERNELS.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


class _Locator(_CacheLocator):
    """Cache files of one kernel under ``root``, stamped with every kernel's source."""

    def __init__(self, py_func, py_file, root):
        self._lineno = py_func.__code__.co_firstlineno
        self._py_file = py_file   # Numba's "cannot cache" warning reads it
        self._cache_path = os.path.join(root, self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        return _source_stamp()

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        for root in (cache_dir(), os.path.join(os.path.dirname(py_file), "__pycache__")):
            self = cls(py_func, py_file, root)
            try:
                self.ensure_cache_path()
            except OSError:  # not writable: try the next place
                continue
            return self
        return None


class _CacheImpl(CompileResultCacheImpl):
    _locator_classes = [_Locator, *CompileResultCacheImpl._locator_classes]


class _Cache(FunctionCache):
    _impl_class = _CacheImpl


class Kernel(CPUDispatcher):
    """A CPU dispatcher that compiles calls from other kernels for the plain
    (non-literal) types of their arguments."""

    def get_call_template(self, args, kws):
        args = tuple(types.unliteral(a) for a in args)
        kws = {k: types.unliteral(v) for k, v in kws.items()}
        return super().get_call_template(args, kws)

    def enable_caching(self):
        self._cache = _Cache(self.py_func)


def njit(func=None, *, cache: bool = True, **options):
    """``numba.njit`` compiling one version per argument types (see the module
    docstring); use as ``@njit`` or ``@njit(error_model="numpy", ...)``."""

    def wrap(f):
        disp = Kernel(py_func=f, locals={}, targetoptions={"nopython": True, **options})
        if cache:
            disp.enable_caching()
        return disp

    return wrap if func is None else wrap(func)
