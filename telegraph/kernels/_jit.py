"""How the kernels are compiled and cached: one machine-code version per kernel.

Every kernel module takes its decorator from here (``from ._jit import njit``)
instead of from Numba. It is Numba's ``njit`` with ten differences about
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
- a kernel declared a *unit* (``@njit(unit="float64(int64[::1], ...)")``,
  with its return type) is compiled separately, once, with machine code and a
  cache entry of its own, and its callers call it by a symbol that is the
  same in every process (:func:`_unit_symbol`) instead of linking it in: a
  caller is typed from the declared signature without compiling the unit,
  and the unit is compiled (or loaded) only when machine code that calls it is
  finalised (:class:`_UnitLibrary`; a cache entry lists the units its code
  calls, loaded first). The largest subtrees of the fit (the sort of a gene's
  bins, the Poisson-Beta evaluation, its runs and the start of its
  recurrence, the limit models' evaluations, the maximiser and its mean
  coordinates, the profile points and bound searches, the negative binomial's
  own and the widening near the limits, the goodness of fit) are units, so a
  cold first fit optimises and code-generates each once, and two processes
  can compile them side by side (kernels/_ahead.py). A call with other argument types than declared
  links the kernel as any other; a unit whose compiled return type differs
  from the declared one is an error. Units are chosen where a call does
  enough work that an out-of-line call costs nothing measurable;
- a callee is loaded from the cache when it is there, and on a cold first
  fit a helper process may be compiling it into the cache meanwhile
  (:mod:`telegraph.kernels._ahead`): then it waits for the helper instead of
  compiling it again;
- loading a kernel from the cache does not import Numba's lowering modules
  (its NumPy, linear-algebra, random and container implementations, SciPy's
  linalg with them: about 0.2 s of a warm start, in every process and every
  Dask worker): machine code loaded from the cache needs only Numba's
  runtime, and a compile, should one follow, imports them itself;
- nor does it parse the kernel's IR: Numba keeps the IR of every library it
  loads, for callers compiled later to link, and parses it and walks it at
  once to list the symbols the machine code defines (about 0.1 s of a warm
  ``telegraph fit --example``, over the 24 libraries it loads). A cache entry
  here carries that list, and the IR is parsed only if a later compile links
  the kernel (:meth:`_UnitLibrary._unserialize`);
- an implementation Numba provides by ``@overload`` (``np.empty``, ``np.zeros``,
  ``min``, ``max``, ...) is compiled once per argument types and the options
  it inherits from its caller (``fastmath``, ``error_model``, ``nrt``,
  ``forceinline``): Numba keys its implementations by *all* of the caller's
  compile flags, so a kernel called from Python, one compiled for linking
  only, a unit and a ``nogil`` kernel each compiled their own copy of the same
  ``np.empty(n, np.int64)`` (72 such compilations in a cold ``telegraph fit
  --example``, 41 with this; :func:`_share_overload_implementations`);
- a call of a function Numba types by its own templates (the arithmetic and
  comparison operators, ``range``, ``abs``, ``math`` and NumPy's scalar
  functions, indexing) is typed once per argument types: Numba types every
  such call afresh, rating each of the function's templates against the
  arguments and formatting a message for each that does not match (all of
  ``operator.add``'s integer and float cases for a sum of two floats): about
  a seventh of the compile CPU of a cold ``telegraph fit --example`` (~25,000
  typings of ~1,400 distinct calls); the signature is kept on Numba's function type, so a
  function given new templates later (a new type) is typed afresh, and a call
  that an ``@overload`` or ``@intrinsic`` types is left to Numba
  (:func:`_type_builtin_calls_once`);
- a cache entry is valid for the exact source of *every* kernel module, not
  only of the module that defines the kernel: Numba checks only the latter,
  so an edit of a kernel in another file would leave callers compiled
  against the old one. The kernels import nothing but each other (and
  NumPy/Numba), so this stamp covers everything compiled into them.

And one difference is about speed: every kernel compiles with floating-point
contraction (:data:`FASTMATH`, Numba's ``fastmath={"contract"}``), so that
``a * b + c`` may be one fused multiply-add, rounded once instead of twice
(as accurate or more). No other fast-math assumption is made: no
reassociation (the series and recurrences are summed in the order written),
no finite-only or no-NaN arithmetic (the kernels test for both). On the
recurrence in the count and the expansion in log capture it saves 5-9% of an
evaluation. A kernel may still pass its own ``fastmath``.

And one more is about speed: a kernel declared ``borrow=True`` is compiled
without Numba's reference counting (``_nrt=False``). Numba counts references
to every array a kernel receives: an atomic increment when the kernel starts
and a decrement when it returns, for each array argument, pruned only where
both fall in one block. A helper called once per bin or per count with a few
scratch arrays spent more on that than on its arithmetic: with per-cell
capture at 100 cells, 23% of a fit's CPU time was in those increments and
decrements (the expansion in log capture's terms and a recurrence's
accumulation, two arrays each per bin, the recurrence's run twelve per
capture group). A borrowing kernel may only read and write the arrays it is
given, which its caller holds for the length of the call: it may not
allocate, nor return an array or keep one (Numba refuses to compile an
allocation without reference counting; returning or keeping a borrowed array
is on the kernel's author). Every kernel states its choice, so the kernels a
borrowing kernel calls count references as usual unless they borrow too
(Numba would otherwise compile them as their first caller is compiled).

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
from numba.core import cgutils
from numba.core import config as numba_config
from numba.core import event as ev
from numba.core import sigutils, targetconfig, types, typing
from numba.core.codegen import JITCodeLibrary
from numba.core.compiler_lock import global_compiler_lock
from numba.core.dispatcher import _FunctionCompiler
from numba.core.caching import CompileResultCacheImpl, FunctionCache, _CacheLocator
from numba.core.imputils import impl_ret_new_ref
from numba.core.registry import CPUDispatcher
from numba.core.runtime import rtsys
from numba.core.target_extension import get_local_target
from numba.core.typing import templates as _templates
from numba.misc.appdirs import AppDirs

__all__ = ["njit", "Kernel", "cache_dir", "units", "unit_jobs", "FASTMATH"]

#: the fast-math flags of every kernel: contraction into fused multiply-adds only
FASTMATH = frozenset({"contract"})

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


#: set by kernels/_ahead.py while two processes compile kernels together:
#: ``wait(kernel, args)`` before a kernel is compiled: True when the other
#: process has put it in the cache now (load it), False when this process has
#: claimed it (compile it, then report ``done(kernel, args, ok)``), None when
#: it is nobody's job
_ahead_wait = None
_ahead_done = None


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


#: the symbols the machine code of the cache entry being loaded defines (set by
#: :meth:`_CacheImpl.rebuild` for :meth:`_UnitLibrary._unserialize`, which takes it)
_loading_symbols = None


def _defined_symbols(module) -> tuple:
    """The symbols an LLVM module defines (functions and global variables)."""
    return tuple(sorted(gv.name for gvs in (module.functions, module.global_variables)
                        for gv in gvs if not gv.is_declaration))


class _CacheImpl(CompileResultCacheImpl):
    _locator_classes = [_Locator, *CompileResultCacheImpl._locator_classes]

    # a cache entry carries the units its machine code calls (their symbols are
    # resolved when it is loaded): load those first; and the symbols its machine
    # code defines, so that loading it need not parse its IR to list them
    def reduce(self, cres):
        library = cres.library
        return (super().reduce(cres), getattr(library, "units", ()),
                _defined_symbols(library._get_module_for_linking()))

    def rebuild(self, target_context, payload):
        global _loading_symbols
        payload, names, symbols = payload
        _resolve_units(names)
        _loading_symbols = frozenset(symbols)
        try:
            cres = super().rebuild(target_context, payload)
        finally:
            _loading_symbols = None
        cres.library.units = names
        return cres


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


# ------------------------------------------------- implementations by @overload

#: the compile flags an ``@overload`` implementation inherits from its caller
#: (Numba's CPU target: ``CPUTargetOptions.finalize``); the others (Python
#: wrappers, ``nogil``, linking only) change the caller's code, not the callee's
_INHERITED_FLAGS = ("fastmath", "error_model", "nrt", "forceinline")


def _share_overload_implementations() -> None:
    """Key Numba's ``@overload`` implementations by argument types and the flags
    they inherit only (see the module docstring), instead of by every flag of
    the caller being compiled; the implementation compiled for one caller is
    then linked into every other with the same inherited flags, as Numba does
    for callers whose flags are all equal."""
    template = _templates._OverloadFunctionTemplate
    if getattr(template._get_impl, "_telegraph", False):
        return
    numba_get_impl = template._get_impl

    def _get_impl(self, args, kws):
        flags = targetconfig.ConfigStack.top_or_none()
        if flags is None:
            return numba_get_impl(self, args, kws)
        inherited = tuple((name, repr(getattr(flags, name))) for name in _INHERITED_FLAGS)
        key = self.context, tuple(args), tuple(kws.items()), inherited
        try:
            return self._impl_cache[key]
        except KeyError:
            return self._build_impl(key, args, kws)

    _get_impl._telegraph = True
    template._get_impl = _get_impl


_share_overload_implementations()


def _type_builtin_calls_once() -> None:
    """Keep the signature Numba's templates give a call of a built-in function
    (see the module docstring) on the function's type, by the typing context,
    target and argument types (literals by their value), and answer the same
    call from it afterwards. Only a signature whose implementation is the
    template's own key is kept (Numba's built-in implementations, chosen by the
    signature alone); one an ``@overload`` or ``@intrinsic`` gave is typed by
    Numba each time, since its implementation depends on the caller's flags.
    A call that fails to type is not kept (Numba raises its error each time)."""
    function = types.Function
    if getattr(function.get_call_type, "_telegraph", False):
        return
    numba_get_call_type = function.get_call_type

    def get_call_type(self, context, args, kws):
        key = (context, get_local_target(context), tuple(args), tuple(kws.items()))
        try:
            hash(key)
        except TypeError:          # an argument type that cannot be a key
            return numba_get_call_type(self, context, args, kws)
        typed = self.__dict__.setdefault("_telegraph_typed", {})
        known = typed.get(key)
        if known is not None:
            sig, impl = known
            self._impl_keys[sig.args] = impl
            return sig
        sig = numba_get_call_type(self, context, args, kws)
        if sig is not None:
            impl = self._impl_keys[sig.args]
            if any(impl is template.key for template in self.templates):
                typed[key] = sig, impl
        return sig

    get_call_type._telegraph = True
    get_call_type.numba = numba_get_call_type
    function.get_call_type = get_call_type


_type_builtin_calls_once()


# ------------------------------------------------------------------ units

#: symbol names of the units of this process -> (kernel, argument types)
_UNITS: dict[str, tuple] = {}
#: the unit symbols resolved in this process (name -> address)
_RESOLVED: dict[str, int] = {}
_UNIT_PREFIX = "telegraph.unit."


def _unit_symbol(py_func, args) -> str:
    """The symbol by which callers call a unit for ``args``: the same in every
    process (Numba's own names carry a per-process counter)."""
    sig = hashlib.sha256(repr(tuple(args)).encode()).hexdigest()[:16]
    return f"{_UNIT_PREFIX}{py_func.__module__}.{py_func.__qualname__}.{sig}"


def _unit_refs(module) -> set:
    """The unit symbols an LLVM module calls (declares without defining)."""
    return {fn.name for fn in module.functions
            if fn.is_declaration and fn.name.startswith(_UNIT_PREFIX)}


def _resolve_units(names) -> None:
    """Make the units named callable from machine code about to be finalised:
    each compiled (or loaded from the cache) and its address given to LLVM's
    symbol table under its unit symbol."""
    for name in names:
        if name in _RESOLVED:
            continue
        kernel, args = _UNITS[name]
        kernel.compile(args)
        cres = kernel.overloads[args]
        declared = kernel._units[args][2].return_type
        if cres.signature.return_type != declared:   # callers were typed with it
            raise TypeError(f"{kernel.py_func.__qualname__} returns "
                            f"{cres.signature.return_type}, its unit signature declares "
                            f"{declared}")
        address = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
        if not address:
            raise RuntimeError(f"unit {name}: no machine code for {cres.fndesc.llvm_func_name}")
        ll.add_symbol(name, address)
        _RESOLVED[name] = address


def units() -> dict:
    """Every unit of the imported kernel modules: its symbol -> ``(kernel,
    argument types)``."""
    return dict(_UNITS)


def unit_jobs(*modules) -> list:
    """The units declared in the kernel modules ``modules``, as ``(kernel,
    argument types)``: module by module, each in the order of its source."""
    return [(kernel, args) for module in modules for kernel, args in _UNITS.values()
            if kernel.py_func.__module__ == module.__name__]


class _UnitLibrary(JITCodeLibrary):
    """Numba's code library, resolving the units its code calls before it is
    turned into machine code (an unresolved symbol would abort the process):
    after its module is optimised, so that a process waiting for a unit that
    the other compiles (kernels/_ahead.py) has done that much of its own work."""

    units = ()
    #: a library loaded from the cache: the IR it was compiled from (LLVM bitcode),
    #: parsed only when a kernel compiled later links it (:meth:`_unserialize`)
    _bitcode = None

    @classmethod
    def _unserialize(cls, codegen, state):
        # Numba's, without parsing the IR (see the module docstring): the symbols
        # come with the cache entry (_CacheImpl.rebuild), the IR is parsed if a
        # later compile links the library (_get_module_for_linking)
        global _loading_symbols
        symbols, _loading_symbols = _loading_symbols, None
        name, kind, data = state
        if kind != "object" or symbols is None:
            return super()._unserialize(codegen, state)
        object_code, bitcode = data
        self = codegen.create_library(name)
        self.enable_object_caching()
        self._set_compiled_object(object_code)
        self._bitcode = bitcode
        self._finalize_final_module()
        codegen._engine._defined_symbols.update(symbols)
        return self

    def _get_module_for_linking(self):
        if self._bitcode is not None:
            self._shared_module = ll.parse_bitcode(self._bitcode)
            self._bitcode = None
        return super()._get_module_for_linking()

    def finalize(self):
        names = _unit_refs(self._final_module)
        for library in self._linking_libraries:
            names |= _unit_refs(library._get_module_for_linking())
        self.units = tuple(sorted(names))
        super().finalize()

    def _finalize_final_module(self):
        _resolve_units(self.units)
        super()._finalize_final_module()


def _unit_call(name, restype, argtypes):
    """The lowering of a call to a unit: a call of its symbol by Numba's calling
    convention (as Numba calls a kernel it linked, without linking it)."""

    def imp(context, builder, sig, args):
        fnty = context.call_conv.get_function_type(restype, argtypes)
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        status, retval = context.call_conv.call_function(builder, fn, restype, argtypes, args)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return impl_ret_new_ref(context, builder, restype, retval)

    imp.signature = argtypes
    imp.libs = ()
    return imp


class _UnitKey:
    """Stands for a unit's entry point in the target context's function table."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<unit {self.name}>"


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
        self._units = {}       # argument types -> (symbol, _UnitKey, declared signature)
        codegen = self.targetctx.codegen()
        if not issubclass(codegen._library_class, _UnitLibrary):
            codegen._library_class = _UnitLibrary

    def _declare_units(self, signatures):
        for sig in signatures:
            args, restype = sigutils.normalize_signature(sig)
            if restype is None:
                raise TypeError(f"{self.py_func.__qualname__}: a unit's signature needs its "
                                "return type, e.g. float64(int64[::1], ...)")
            args = tuple(args)
            name = base = _unit_symbol(self.py_func, args)
            n = 1
            while name in _UNITS:   # another kernel of the same name (defined in a loop)
                name, n = f"{base}.{n}", n + 1
            key = _UnitKey(name)
            self.targetctx._defns[key].append(_unit_call(name, restype, args), args)
            self._units[args] = (name, key, typing.signature(restype, *args))
            _UNITS[name] = (self, args)

    def get_call_template(self, args, kws):
        args = tuple(types.unliteral(a) for a in args)
        kws = {k: types.unliteral(v) for k, v in kws.items()}
        pysig, args = self._compiler.fold_argument_types(args, kws)
        args = tuple(args)
        unit = self._units.get(args)
        if unit is not None:   # called by its symbol: nothing to compile to type the call
            template = typing.make_concrete_template(f"CallTemplate({unit[0]})",
                                                     key=unit[0], signatures=[unit[2]])
            return template, pysig, args, {}
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
        if cres is None and _ahead_wait is not None and _ahead_wait(self, args) is not None:
            # a job of the helper process (kernels/_ahead.py): compiled whole, by
            # whichever process claimed it, and loaded from the cache by the other
            self.compile(args)
            return
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
        if args in self.overloads:
            return self.overloads[args].entry_point
        ahead = _ahead_wait is not None and _ahead_wait(self, args) is False
        try:
            entry = super().compile(sig)
        except BaseException:
            if ahead:
                _ahead_done(self, args, False)
            raise
        if ahead:   # compiled (or loaded) here while the other process waits for it
            _ahead_done(self, args, True)
        return entry

    @property
    def signatures(self):
        return super().signatures + list(self._link_only)

    @property
    def nopython_signatures(self):
        return super().nopython_signatures + [
            cres.signature for _, cres in self._link_only.values()]

    def get_overload(self, sig):
        args, _ = sigutils.normalize_signature(sig)
        unit = self._units.get(tuple(args))
        if unit is not None:
            return unit[1]
        entry = self._link_only.get(tuple(args))
        return entry[0] if entry is not None else super().get_overload(sig)

    def enable_caching(self):
        self._cache = _Cache(self.py_func)


def njit(func=None, *, cache: bool = True, unit=None, borrow: bool = False, **options):
    """``numba.njit`` compiling one version per argument types (see the module
    docstring); use as ``@njit`` or ``@njit(error_model="numpy", ...)``.
    ``unit``: a signature (or a list of them) with which the kernel is a
    separately compiled unit (see the module docstring). ``borrow``: the
    kernel only reads and writes the arrays it is given (it allocates none,
    and returns and keeps none), so it is compiled without reference counting
    (see the module docstring)."""

    def wrap(f):
        options.setdefault("fastmath", set(FASTMATH))
        # (set, not inherited: Numba would compile a callee of a borrowing kernel
        # without reference counting too, and one that allocates would fail)
        options["_nrt"] = not borrow
        disp = Kernel(py_func=f, locals={}, targetoptions={"nopython": True, **options})
        if cache:
            disp.enable_caching()
        if unit is not None:
            disp._declare_units(unit if isinstance(unit, (list, tuple)) else [unit])
        return disp

    return wrap if func is None else wrap(func)
