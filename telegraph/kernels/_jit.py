"""How the kernels are compiled and cached: one machine-code version per kernel.

Every kernel module takes its decorator from here (``from ._jit import njit``)
instead of from Numba. It is Numba's ``njit`` with six differences, all about
start-up: the first call (a fresh installation compiles every kernel it uses
once; benchmarks/bench_startup.py measures it per kernel) and loading:

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
- a kernel that only other kernels call is compiled for linking only
  (:class:`Kernel`): Numba turns every kernel it compiles into machine code,
  and again inside each caller that links it, so a kernel ``d`` calls deep
  was optimised and code-generated ``d + 1`` times (about 40% of a cold
  ``telegraph fit --example``). Here only a kernel called from Python gets
  machine code (and a cache entry), once for everything it calls; a callee
  gets machine code of its own, compiled again, only if Python calls it too;
- a callee is loaded from the cache when it is there, and on a cold first
  fit a helper process may be compiling it into the cache meanwhile
  (:mod:`telegraph.kernels._ahead`): then it waits for the helper instead of
  compiling it again;
- loading a kernel from the cache does not import Numba's lowering modules
  (its NumPy, linear-algebra, random and container implementations, SciPy's
  linalg with them: about 0.2 s of a warm start, in every process and every
  Dask worker): machine code loaded from the cache needs only Numba's
  runtime, and a compile, should one follow, imports them itself;
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

import llvmlite.binding as ll
from numba.core import config as numba_config
from numba.core import event as ev
from numba.core import sigutils, types, typing
from numba.core.codegen import JITCodeLibrary
from numba.core.compiler_lock import global_compiler_lock
from numba.core.dispatcher import _FunctionCompiler
from numba.core.caching import CompileResultCacheImpl, FunctionCache, _CacheLocator
from numba.core.registry import CPUDispatcher
from numba.core.runtime import rtsys
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


#: set by kernels/_ahead.py while a helper process compiles kernels ahead:
#: ``wait(kernel, args)`` -> whether the helper has put it in the cache now
_ahead_wait = None


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

    def load_overload(self, sig, target_context):
        # Numba's own load refreshes the whole target context first (see the
        # module docstring); cached machine code needs only the runtime (NRT),
        # and a later compile refreshes the context itself (CompilerBase)
        rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)


class _LinkOnlyLibrary(JITCodeLibrary):
    """The code library of a kernel compiled only to be linked into callers.

    A finalised Numba library has been optimised as a whole module and turned
    into machine code; Numba finalises the library of every kernel, and when
    a caller links it in, the callee's code is optimised and code-generated
    again inside the caller, so a kernel ``d`` levels deep was compiled to
    machine code ``d + 1`` times. This library is never finalised: linking it
    hands over its IR (each function already optimised on its own when it was
    added) with the IR of everything it links, and the caller that is called
    from Python optimises and code-generates the whole tree once.
    """

    def _ensure_finalized(self):
        if self._shared_module is not None:
            return
        module = self._final_module
        seen = set()
        for library in self._linking_libraries:
            if library not in seen:
                seen.add(library)
                self._reload_init.update(library._reload_init)
                module.link_in(library._get_module_for_linking(), preserve=True)
        for fn in module.functions:  # as Numba's libraries for linking: linkonce_odr
            if not fn.is_declaration and fn.linkage == ll.Linkage.external:
                fn.linkage = "linkonce_odr"
        self._shared_module = module


class _Compiler(_FunctionCompiler):
    """Numba's function compiler; with ``link_only`` set, the kernel is
    lowered for linking only: no machine code, no Python wrappers."""

    link_only = False

    def _customize_flags(self, flags):
        if self.link_only:
            flags.no_compile = True
            flags.no_cpython_wrapper = True
            flags.no_cfunc_wrapper = True
        return flags


class _LinkKey:
    """Stands for the entry point of a link-only overload in the target
    context's function table (a callee's lowering looks its code up by it)."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<link-only {self.name}>"


class Kernel(CPUDispatcher):
    """A CPU dispatcher that compiles calls from other kernels for the plain
    (non-literal) types of their arguments, and compiles a kernel that only
    other kernels call for linking only (no machine code of its own)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c = self._compiler
        self._compiler = _Compiler(c.py_func, c.targetdescr, c.targetoptions, c.locals,
                                   c.pipeline_class)
        self._link_only = {}   # argument types -> (_LinkKey, compile result)
        self._linkable = not self.targetoptions.get("parallel")

    def get_call_template(self, args, kws):
        args = tuple(types.unliteral(a) for a in args)
        kws = {k: types.unliteral(v) for k, v in kws.items()}
        pysig, args = self._compiler.fold_argument_types(args, kws)
        args = tuple(args)
        if self._can_compile:
            if self._linkable:
                self._compile_for_linking(args)
            else:
                self.compile(args)
        name = self.py_func.__name__
        template = typing.make_concrete_template(f"CallTemplate({name})", key=name,
                                                 signatures=self.nopython_signatures)
        return template, pysig, args, {}

    def _compile_for_linking(self, args):
        """Make an overload for ``args`` available to callers: loaded from the
        cache when it is there, else compiled for linking only."""
        if args in self.overloads or args in self._link_only:
            return
        with global_compiler_lock:   # as in Dispatcher.compile
            self._link_or_load(args)

    def _link_or_load(self, args):
        cres = self._cache.load_overload(args, self.targetctx)
        if cres is None and _ahead_wait is not None and _ahead_wait(self, args):
            # compiled by the helper process meanwhile (kernels/_ahead.py)
            cres = self._cache.load_overload(args, self.targetctx)
        if cres is not None:
            self._cache_hits[args] += 1
            self.targetctx.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
            self.add_overload(cres)
            return
        self._cache_misses[args] += 1
        with ev.trigger_event("numba:compile",
                              data=dict(dispatcher=self, args=args, return_type=None)):
            self._compiler.link_only = True
            try:
                cres = self._compiler.compile(args, None)
            finally:
                self._compiler.link_only = False
        cres.library.__class__ = _LinkOnlyLibrary
        key = _LinkKey(self.py_func.__qualname__)
        self.targetctx.insert_user_function(key, cres.fndesc, [cres.library])
        self._link_only[args] = (key, cres)

    def compile(self, sig):
        # called from Python (or asked for explicitly): real machine code
        args, _ = sigutils.normalize_signature(sig)
        args = tuple(args)
        self._link_only.pop(args, None)
        if _ahead_wait is not None and args not in self.overloads:
            _ahead_wait(self, args)   # a helper compiling it ahead: then it is loaded
        return super().compile(sig)

    @property
    def signatures(self):
        return super().signatures + list(self._link_only)

    @property
    def nopython_signatures(self):
        return super().nopython_signatures + [
            cres.signature for _, cres in self._link_only.values()]

    def get_overload(self, sig):
        args, _ = sigutils.normalize_signature(sig)
        entry = self._link_only.get(tuple(args))
        return entry[0] if entry is not None else super().get_overload(sig)

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
