"""How the kernels are compiled and cached (telegraph.kernels._jit).

One compiled version per kernel whatever constants its callers pass, and the
on-disk cache in ``NUMBA_CACHE_DIR`` when set, else in telegraph's user cache
directory. Compile *times* are measured in benchmarks/bench_startup.py, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numba
import numpy as np
import pytest
from conftest import REPO
from telegraph.kernels import counting
from telegraph.kernels import fit as kfit
from telegraph.kernels._jit import Kernel, njit, units


def test_constants_passed_by_callers_compile_one_version():
    @njit(cache=False)
    def inner(x, flag, k):
        return x + k if flag else x - k

    @njit(cache=False)
    def outer(x):
        return inner(x, True, 1) + inner(x, False, 2) + inner(x, True, 3)

    assert outer(10.0) == 11.0 + 8.0 + 13.0
    # Numba's own dispatcher would compile inner for (Literal[bool](True), Literal[int](1)),
    # (Literal[bool](False), Literal[int](2)), ...: three versions
    assert len(inner.signatures) == 1
    assert "Literal" not in str(inner.signatures[0])


def test_numbas_overload_implementations_are_shared_by_callers_of_other_flags():
    """An implementation Numba provides by ``@overload`` (here ``np.empty``) is
    compiled once for callers whose flags differ only in what the implementation
    does not inherit (``nogil``, ``boundscheck``, Python wrappers, linking only);
    Numba keys it by every flag of the caller and compiled it once per caller."""
    compiled = []

    class Listener(numba.core.event.Listener):
        def on_start(self, event):
            pass

        def on_end(self, event):
            func = event.data["dispatcher"].py_func
            if "ol_np_empty" in func.__qualname__:
                compiled.append(func.__qualname__)

    # flags no other kernel compiles with: Numba's own keys are new for both callers
    @njit(cache=False, boundscheck=True)
    def first(n):
        return np.empty(n, np.int16)

    @njit(cache=False, boundscheck=True, nogil=True)
    def second(n):
        return np.empty(n, np.int16)

    listener = Listener()
    numba.core.event.register("numba:compile", listener)
    try:
        a = first(3)
        n_first = len(compiled)
        b = second(4)
    finally:
        numba.core.event.unregister("numba:compile", listener)
    assert a.dtype == b.dtype == np.int16 and a.shape == (3,) and b.shape == (4,)
    assert n_first <= 1          # compiled for the first caller (unless compiled before) ...
    assert len(compiled) == n_first   # ... and not again for the second


def _resolve(function, *args):
    """Numba's typing of ``function(*args)`` on the CPU: (context, function type, signature)."""
    from numba.core.registry import cpu_target
    context = cpu_target.typing_context
    fnty = context.resolve_value_type(function)
    return context, fnty, context.resolve_function_type(fnty, args, {})


def test_a_builtin_call_is_typed_once_per_argument_types_as_numba_types_it(monkeypatch):
    """Numba types every call of an operator afresh, rating all its templates;
    here the second call with the same argument types applies none, and every
    signature and implementation is Numba's own."""
    import operator

    from numba.core import types
    from numba.core.registry import cpu_target
    from numba.core.typing import templates
    cpu_target.typing_context.refresh()    # Numba's registries loaded before the count
    applied = []
    for cls in (templates.ConcreteTemplate, templates.AbstractTemplate):
        monkeypatch.setattr(cls, "apply", lambda self, a, k, _f=cls.apply:
                            applied.append(self) or _f(self, a, k))
    array = types.Array(types.float64, 1, "C")
    cases = [(types.float64, types.float64), (types.int64, types.IntegerLiteral(1)),
             (types.int64, types.BooleanLiteral(True)), (types.int16, types.float32),
             (array, types.float64), (types.uint8, types.int8)]
    for op in (operator.add, operator.lt, operator.truediv):
        _, fnty, _ = _resolve(op, types.float64, types.float64)
        fnty.__dict__.pop("_telegraph_typed", None)
        for args in cases:
            del applied[:]
            context, same, sig = _resolve(op, *args)
            assert same is fnty
            assert applied, (op, args)             # typed the first time ...
            del applied[:]
            assert _resolve(op, *args)[2] == sig
            assert not applied, (op, args)         # ... and not again
            impl = fnty.get_impl_key(sig)
            fnty._impl_keys.clear()
            assert type(fnty).get_call_type.numba(fnty, context, args, {}) == sig
            assert fnty.get_impl_key(sig) is impl
        # a literal argument is kept by its value: 1 and True are other arguments
        kept = [key[2] for key in fnty.__dict__["_telegraph_typed"]]
        assert (types.int64, types.IntegerLiteral(1)) in kept
        assert (types.int64, types.BooleanLiteral(True)) in kept


def test_a_call_typed_by_an_overload_or_failing_to_type_is_left_to_numba():
    import operator

    from numba.core import errors, types
    from numba.core.registry import cpu_target
    cpu_target.typing_context.refresh()
    _, fnty, sig = _resolve(np.empty, types.int64)      # typed by an @overload
    assert sig is not None and not fnty.__dict__.get("_telegraph_typed")
    for _ in range(2):                                  # an error each time, nothing kept
        with pytest.raises(errors.TypingError):
            _resolve(operator.add, types.float64, types.unicode_type)
    _, fnty, _ = _resolve(operator.add, types.float64, types.float64)
    assert not [key for key in fnty.__dict__.get("_telegraph_typed", {})
                if types.unicode_type in key[2]]


def _cache_files_after_a_call(env):
    """Cache files written when a fresh process calls a kernel with ``env``."""
    code = "from telegraph.kernels.special import digamma; print(digamma(1.5))"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr


def _files(root):
    return sorted(p for p, _, fs in os.walk(root) for f in fs if f.endswith((".nbi", ".nbc")))


def test_every_kernel_contracts_to_fused_multiply_adds_and_assumes_nothing_else():
    """The kernels' only fast-math flag is contraction (kernels/_jit.py, FASTMATH):
    reassociation would reorder the sums the series and recurrences are written
    to keep, and the finite-only or no-NaN flags would drop the kernels' own
    tests for infinities and NaN. Also: the flag reaches the machine code (the
    recurrence in the count has fused multiply-adds)."""
    import importlib
    import pkgutil

    import telegraph.kernels as K
    from telegraph.kernels._jit import FASTMATH
    from telegraph.kernels.poisson_beta import _rec_down
    assert FASTMATH == {"contract"}
    kernels = []
    for m in pkgutil.iter_modules(K.__path__):
        mod = importlib.import_module(f"telegraph.kernels.{m.name}")
        kernels += [k for k in vars(mod).values()
                    if isinstance(k, Kernel) and k.py_func.__module__ == mod.__name__]
    assert len(kernels) > 100
    wrong = [k.py_func.__qualname__ for k in kernels
             if set(k.targetoptions.get("fastmath", ())) != FASTMATH]
    assert not wrong

    @njit(cache=False)
    def step(n, a, c, x, P1, P2):
        return _rec_down(n, a, c, x, P1, 0.0, 0.0, 0.0, P2, 0.0, 0.0, 0.0)[0]

    step(5, 1.0, 2.0, 3.0, 1.0, 0.5)
    import llvmlite.binding as ll
    if ll.get_host_cpu_features().get("fma", False):   # (no such instruction otherwise)
        asm = next(iter(step.inspect_asm().values()))
        assert "vfmadd" in asm or "vfmsub" in asm or "vfnmadd" in asm


def test_a_borrowing_kernel_counts_no_references_and_the_hot_helpers_borrow():
    """``borrow=True`` compiles a kernel without Numba's reference counting
    (kernels/_jit.py): the same helper that increments and decrements the
    count of each array it is given compiles to no such call. The helpers
    called per bin, per count or per Newton step (and the climb, the
    recurrence's run and the law's evaluation) borrow: with per-cell capture
    those counts had been 23% of a fit's time."""
    from telegraph.kernels import linalg, models, optimize, poisson_beta as pb
    counted = njit(cache=False, error_model="numpy")(pb._rec_add.py_func)
    borrowed = njit(cache=False, error_model="numpy", borrow=True)(pb._rec_add.py_func)
    cst = np.linspace(0.1, 1.0, 10)
    sums = []
    for k in (counted, borrowed):
        out = np.zeros(10)
        k(2.0, 0.5, 3.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 0.25, cst, True, out, 1.5)
        sums.append(out)
    np.testing.assert_array_equal(sums[0], sums[1])
    assert sums[1][0] == 2.0 * (1.5 + 0.25 - 0.1)
    asm_counted = next(iter(counted.inspect_asm().values()))
    asm_borrowed = next(iter(borrowed.inspect_asm().values()))
    assert "NRT_incref" in asm_counted and "NRT_decref" in asm_counted
    assert "NRT_incref" not in asm_borrowed and "NRT_decref" not in asm_borrowed

    hot = [pb._rec_add, pb._rec_level, pb._spread_terms, pb._add_scaled, pb._info3,
           pb._add_bin, pb._add_bin_spread, pb._rec_run, pb._spread_runs, pb.pb_eval,
           models.telegraph_eval, optimize._climb, linalg.solve_damped]
    assert [k.py_func.__name__ for k in hot if k.targetoptions.get("_nrt", True)] == []


def test_the_fits_allocations_are_all_freed_and_borrowed_arrays_never_freed():
    """Borrowing kernels must not return or keep the arrays they are given
    (kernels/_jit.py): a count released twice would free an array its caller
    still holds. Numba's allocator statistics after fits of three regimes, with
    per-cell capture and profile intervals of all four targets: every array
    allocated was freed once, none more."""
    from numba.core.runtime import _nrt_python as nrt

    import telegraph as tg
    rng = np.random.default_rng(3)
    cap = np.clip(rng.lognormal(np.log(0.3), 0.35, 400), 0.02, 1.0)
    X = np.column_stack([rng.poisson(cap * 40.0 * rng.beta(0.5, 5.0, 400)),
                         rng.poisson(cap * 100.0 * rng.beta(1.0, 1.0, 400)),
                         rng.poisson(cap * 200.0 * rng.beta(2.0, 3.0, 400)),
                         rng.poisson(cap * 6.0),
                         rng.poisson(cap * 60.0 * rng.beta(0.05, 3.0, 400))])
    tg.fit(X, capture=cap, progress=False, profile="all")   # (compiled and loaded first)
    was_on = nrt.memsys_stats_enabled()
    nrt.memsys_enable_stats()
    try:
        before = (nrt.memsys_get_stats_mi_alloc(), nrt.memsys_get_stats_mi_free())
        fits = tg.fit(X, capture=cap, progress=False, profile="all")
        after = (nrt.memsys_get_stats_mi_alloc(), nrt.memsys_get_stats_mi_free())
    finally:
        if not was_on:
            nrt.memsys_disable_stats()
    assert {"telegraph", "bursty", "poisson"} <= set(fits["regime"])
    allocated = after[0] - before[0]
    freed = after[1] - before[1]
    assert allocated > 100
    assert freed == allocated


def test_cache_directory_honours_numba_cache_dir_else_the_user_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    _cache_files_after_a_call(dict(env, NUMBA_CACHE_DIR=str(tmp_path / "numba")))
    assert _files(tmp_path / "numba") and not _files(tmp_path / "xdg")
    _cache_files_after_a_call(env)
    assert _files(tmp_path / "xdg" / "telegraph" / "numba")


def _kernels_typed_when_compiling(dispatcher, arg_types):
    """What a fresh, uncached copy of ``dispatcher`` reaches when compiled for
    ``arg_types``: the names of the kernels it calls (Numba types every kernel the
    compiled code still calls, compiling it unless it is compiled or cached
    already; a callee inlined at Numba IR level, ``inline="always"``, is typed as
    part of the caller, so its own callees are the ones seen), and the set of
    (kernel name, argument types) it links, and the symbols of the units it calls."""
    seen, links = set(), set()
    template, linking = Kernel.get_call_template, Kernel._compile_for_linking

    def record(self, args, kws):
        seen.add(self.py_func.__module__ + "." + self.py_func.__name__)
        return template(self, args, kws)

    def record_link(self, args):   # the argument types a caller links a kernel for
        links.add((self.py_func.__qualname__, tuple(args)))
        return linking(self, args)

    fresh = njit(cache=False, error_model="numpy", nogil=True)(dispatcher.py_func)
    Kernel.get_call_template, Kernel._compile_for_linking = record, record_link
    try:
        fresh.compile(tuple(arg_types))
    finally:
        Kernel.get_call_template, Kernel._compile_for_linking = template, linking
    return seen, links, set(fresh.overloads[tuple(arg_types)].library.units)


@pytest.fixture(scope="module")
def fit_genes_typed():
    """fit_genes typed afresh for the argument types the fit calls it with
    (``kfit.compile_ahead_plan``, checked against a real fit below), in the
    version with profile intervals and goodness of fit and in the one without."""
    return {stages: _kernels_typed_when_compiling(kfit.fit_genes,
                                                  kfit.compile_ahead_plan(*stages)[0])
            for stages in ((True, True), (False, False))}


def test_a_wald_fit_without_goodness_of_fit_compiles_no_profile_or_gof_kernel(fit_genes_typed):
    # fit_genes(profile_mask=None, gof_min_expected=None) is the version a Wald fit
    # without goodness of fit runs (telegraph.fitting.fit_raw passes None for a stage
    # it does not need): its compilation must not reach the profile or GOF kernels
    # the kernels through which fit_genes reaches each stage (those of a stage inlined
    # into fit_genes, inline="always", are typed as part of it: their callees are seen)
    profile = {"telegraph.kernels.fit._profile_intervals",
               "telegraph.kernels.profile.profile_bound",
               "telegraph.kernels.profile.limit_union_ends"}
    gof = {"telegraph.kernels.fit._goodness_of_fit", "telegraph.kernels.gof.pearson_gof"}
    fitting = {"telegraph.kernels.fit._fit_models", "telegraph.kernels.optimize.fit_telegraph"}
    wald, _, _ = fit_genes_typed[False, False]
    assert wald & fitting
    assert not wald & (profile | gof)
    # and the version with a mask and a GOF threshold reaches both stages
    full, _, _ = fit_genes_typed[True, True]
    assert full & fitting and full & profile and full & gof


def test_the_histogram_pass_compiles_no_parallel_kernel():
    # the counting kernels run on Python threads (counting._on_threads), not through
    # Numba's parallel accelerator, whose compilation cost seconds per kernel
    kernels = [v for v in vars(counting).values() if isinstance(v, Kernel)]
    assert len(kernels) >= 6
    assert not [k.py_func.__name__ for k in kernels if k.targetoptions.get("parallel")]
    assert all(k.targetoptions.get("nogil") for k in kernels
               if k.py_func.__name__.startswith(("_scan", "_count", "_assemble")))


def test_the_threaded_counting_splits_blocks_without_gaps_or_overlaps():
    def kernel(lo, hi, out):
        out[lo:hi] += 1

    for n_items in (0, 1, 5, 64):
        out = np.zeros(n_items, np.int64)
        counting._on_threads(kernel, n_items, out)
        assert np.all(out == 1)


def test_a_kernel_only_other_kernels_call_is_compiled_for_linking_only():
    @njit(cache=False)
    def leaf(x):
        return 2.0 * x

    @njit(cache=False)
    def mid(x):
        return leaf(x) + 1.0

    @njit(cache=False)
    def top(x):
        return mid(x) * 3.0

    assert top(1.5) == (2.0 * 1.5 + 1.0) * 3.0
    # leaf and mid were typed and lowered for top, but have no entry point of their
    # own: their code was optimised and code-generated once, inside top
    assert leaf.signatures and mid.signatures
    assert not leaf.overloads and not mid.overloads and top.overloads
    # called from Python afterwards, mid gets machine code of its own, same result,
    # and a new caller links the compiled mid with the link-only leaf
    assert mid(1.5) == 4.0 and mid.overloads

    @njit(cache=False)
    def other(x):
        return mid(x) - leaf(x)

    assert other(1.5) == 1.0


def test_a_parallel_kernel_called_from_a_kernel_is_compiled_as_usual():
    @njit(cache=False, parallel=True)
    def total(a):
        s = 0.0
        for i in numba.prange(a.size):
            s += a[i]
        return s

    @njit(cache=False)
    def caller(a):
        return total(a) + 1.0

    assert caller(np.arange(10.0)) == 46.0
    assert total.overloads


_NESTED = """
from telegraph.kernels._jit import njit

@njit
def leaf(x):
    return x * x

@njit
def top(x):
    return leaf(x) + 1.0

@njit(unit="float64(float64)")
def square(x):
    return x * x

@njit
def via_unit(x):
    return square(x) + square(2.0 * x) + 1.0
"""

def _child_env(tmp_path):
    """The environment of a child process: a fresh cache, and this checkout's
    telegraph first on the path (not another checkout's through an editable install,
    whose kernel sources would stamp the cache differently)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=path)


#: start of a child's script: records the kernels it compiles, imports nested.py
_COMPILED = """
import json, sys
from numba.core import event
compiled = []
class L(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__name__)
    def on_end(self, ev):
        pass
event.register("numba:compile", L())
sys.path.insert(0, sys.argv[1])
import nested
"""

_PROBE = _COMPILED + """
print(json.dumps([nested.top(3.0), compiled]))
"""


def _cold_then_warm(tmp_path, script):
    """The JSON last lines of ``script`` run twice in child processes on nested.py:
    with an empty cache, then with the cache the first run filled."""
    (tmp_path / "nested.py").write_text(_NESTED)
    env = _child_env(tmp_path)
    runs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO,
                           capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return runs


def test_a_warm_process_loads_the_caller_and_compiles_no_callee(tmp_path):
    (cold_value, cold), (warm_value, warm) = _cold_then_warm(tmp_path, _PROBE)
    assert cold_value == warm_value == 10.0
    assert sorted(cold) == ["leaf", "top"]
    assert warm == []


_UNIT_PROBE = _COMPILED + """
print(json.dumps([nested.via_unit(3.0), compiled]))
"""


def test_a_unit_is_compiled_once_called_by_its_symbol_and_loaded_warm(tmp_path):
    # via_unit calls square (a unit) by its symbol: square gets machine code and a
    # cache entry of its own; a warm process loads both and compiles nothing
    (cold_value, cold), (warm_value, warm) = _cold_then_warm(tmp_path, _UNIT_PROBE)
    assert cold_value == warm_value == 9.0 + 36.0 + 1.0
    assert sorted(cold) == ["square", "via_unit"]
    assert warm == []


def test_a_unit_called_with_other_types_is_linked_and_a_wrong_declaration_is_an_error():
    @njit(cache=False, unit="float64(float64)")
    def plus_one(x):
        return x + 1.0

    @njit(cache=False)
    def caller(x, k):
        return plus_one(x) + plus_one(k)   # k: int64, not the declared float64

    assert caller(1.5, 2) == 2.5 + 3.0
    assert (numba.float64,) in plus_one.overloads            # the unit: machine code
    assert (numba.int64,) in plus_one.signatures and (numba.int64,) not in plus_one.overloads

    @njit(cache=False, unit="int64(float64)")
    def twice(x):
        return 2.0 * x                     # float64, declared int64

    @njit(cache=False)
    def calls_twice(x):
        return twice(x)

    for _ in range(2):   # and again, with twice compiled by then
        with pytest.raises(TypeError, match="declares int64"):
            calls_twice(1.0)


_WARM_LOAD = _COMPILED + """
import numba
import numpy as np
value = nested.top(3.0)
loaded = list(compiled)
loaded_without_registries = "numba.np.linalg" not in sys.modules
@numba.njit
def later(a, x):       # compiled after the loads: NumPy's linear algebra, a sort, a cached kernel
    return np.linalg.solve(a, np.sort(x))[0] + nested.top(1.0)
print(json.dumps([value, loaded, loaded_without_registries,
                  later(np.array([[2.0, 0.0], [0.0, 4.0]]), np.array([8.0, 6.0]))]))
"""


def test_a_warm_load_skips_numbas_lowering_registries_and_a_later_compile_still_works(tmp_path):
    # Numba refreshes its whole target context before a cache load (imports every
    # lowering module, ~0.2 s of a warm start); cached machine code needs only the
    # runtime, and a compile refreshes the context itself
    runs = _cold_then_warm(tmp_path, _WARM_LOAD)
    (_, cold, _, cold_later), (value, warm, skipped, warm_later) = runs
    assert sorted(cold) == ["leaf", "top"]
    assert value == 10.0 and warm == [] and skipped
    # solve([[2, 0], [0, 4]], sort([8, 6]))[0] = 6 / 2 = 3, plus top(1.0) = 1 * 1 + 1 = 2
    assert cold_later == warm_later == 5.0


_LAZY_IR = _COMPILED + """
import numba
value = nested.top(3.0)
loaded = list(compiled)
library = next(iter(nested.top.overloads.values())).library
parsed_at_load = library._bitcode is None
@numba.njit
def later(x):          # compiled after the load, linking the cached kernel's IR
    return nested.top(x) * 2.0
later_value = later(1.0)
print(json.dumps([value, loaded, parsed_at_load, library._bitcode is None,
                  later_value]))
"""


def test_a_warm_load_parses_no_ir_until_a_later_compile_links_the_kernel(tmp_path):
    # Numba parses the IR of every library it loads (~0.1 s of a warm fit's start);
    # the symbols come with the cache entry, and the IR is parsed when linked
    (cold_value, cold, _, _, cold_later), (value, warm, parsed, parsed_later, later) = \
        _cold_then_warm(tmp_path, _LAZY_IR)
    assert cold_value == value == 10.0 and sorted(cold) == ["leaf", "top"] and warm == []
    assert not parsed and parsed_later
    # top(1.0) = leaf(1.0) + 1 = 2, twice
    assert cold_later == later == 4.0


# ------------------------------------------------------------------ compiling ahead

_AHEAD = _COMPILED + """
import os
from numba.core import types
from telegraph.kernels import _ahead
os.environ["PYTHONPATH"] = sys.argv[1]     # the helper imports nested too
declared = {"right": types.float64, "wrong": types.int64}[sys.argv[2]]
if sys.argv[3] == "no-interpreter":
    sys.executable = os.path.join(sys.argv[1], "no-such-python")
top, leaf = (nested.via_unit, nested.square) if sys.argv[4] == "unit" else (nested.top, nested.leaf)
started = _ahead.start((top, (types.float64,), [(leaf, (declared,))]))
if started:
    _ahead._helper.jobs.steal = False      # wait for the helper: a deterministic split
    if sys.argv[3] == "kill":
        _ahead._helper.proc.kill()
value = top(3.0)
claims = _ahead._helper.claims if started else None
print(json.dumps([started, value, compiled, claims]))
"""


def _run_ahead(tmp_path, declared="right", helper="live", callee="linked"):
    r = subprocess.run([sys.executable, "-c", _AHEAD, str(tmp_path), declared, helper, callee],
                       cwd=REPO, capture_output=True, text=True, timeout=300,
                       env=_child_env(tmp_path))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_cold_call_loads_the_kernel_a_helper_compiled_ahead(tmp_path):
    (tmp_path / "nested.py").write_text(_NESTED)
    started, value, compiled, claims = _run_ahead(tmp_path)
    assert started and value == 10.0
    # the helper compiled leaf into the cache; this process compiled top and loaded leaf
    assert compiled == ["top"]
    assert not os.path.exists(claims)              # the helper's claim files are gone
    started, value, compiled, _ = _run_ahead(tmp_path)
    assert not started and value == 10.0 and compiled == []   # warm: no helper
    # a unit: the helper compiles it, this process loads it and calls it by its symbol
    started, value, compiled, _ = _run_ahead(tmp_path, callee="unit")
    assert started and value == 46.0 and compiled == ["via_unit"]


def test_a_wrongly_declared_job_or_a_dead_helper_only_costs_time(tmp_path):
    (tmp_path / "nested.py").write_text(_NESTED)
    # leaf declared for int64, linked for float64: never loaded, compiled here
    started, value, compiled, _ = _run_ahead(tmp_path, declared="wrong")
    assert started and value == 10.0 and sorted(compiled) == ["leaf", "top"]
    # a helper killed before it compiled anything: this process compiles it all itself
    (tmp_path / "cache").rename(tmp_path / "old")
    started, value, compiled, _ = _run_ahead(tmp_path, helper="kill")
    assert started and value == 10.0 and sorted(compiled) == ["leaf", "top"]
    # no interpreter to start a helper with: no helper, everything compiled here
    (tmp_path / "cache").rename(tmp_path / "older")
    before = set(os.listdir(tempfile.gettempdir()))
    started, value, compiled, _ = _run_ahead(tmp_path, helper="no-interpreter")
    assert not started and value == 10.0 and sorted(compiled) == ["leaf", "top"]
    left = {d for d in set(os.listdir(tempfile.gettempdir())) - before
            if d.startswith("telegraph-ahead-")}
    assert not left   # no claim directory left behind


def _with_callees(names):
    """The unit symbols ``names`` and those of the units they call, and so on."""
    by_symbol = units()
    todo, out = list(names), set()
    while todo:
        name = todo.pop()
        if name not in out:
            out.add(name)
            kernel, args = by_symbol[name]
            kernel.compile(args)
            todo.extend(kernel.overloads[args].library.units)
    return out


def test_the_fit_kernel_calls_its_units_by_symbol_and_the_helper_compiles_them(fit_genes_typed):
    # a call whose argument types differ from a unit's declared signature would link
    # the kernel instead (compiled again, inside the caller): none may
    unit_kernels = {kernel.py_func.__qualname__ for kernel, _ in units().values()}
    symbol = {(id(kernel), args): name for name, (kernel, args) in units().items()}
    assert {"histogram_eval_bins", "maximize", "pearson_gof"} <= unit_kernels
    for stages, (_, links, called) in fit_genes_typed.items():
        assert not {name for name, _ in links} & unit_kernels, stages
        # what a helper compiles ahead for the fit kernel is every unit it calls
        jobs = kfit.compile_ahead_plan(*stages)[1]
        assert {symbol[id(k), a] for k, a in jobs} == _with_callees(called), stages
        # each unit after the units it calls (the helper works from the front)
        order = [k.py_func.__qualname__ for k, _ in jobs]
        assert order.index("pb_eval") < order.index("histogram_eval_bins") < order.index("maximize")
    full = set(map(str, kfit.compile_ahead_plan(True, True)[1]))
    assert set(map(str, kfit.compile_ahead_plan(True, False)[1])) <= full
    assert set(map(str, kfit.compile_ahead_plan(False, True)[1])) <= full


def test_the_fit_and_the_test_call_their_kernels_with_the_declared_argument_types():
    import telegraph as tg
    from telegraph.differential import differential
    from telegraph.kernels import differential as kdiff
    rng = np.random.default_rng(0)
    X = rng.poisson(3.0, size=(60, 2))
    for interval in ("profile", "wald"):
        tg.fit(X, interval=interval, progress=False)
        args, _ = kfit.compile_ahead_plan(profile=interval == "profile", gof=True)
        assert tuple(args) in kfit.fit_genes.overloads
    differential(X, rng.poisson(4.0, size=(50, 2)), progress=False)
    args, jobs = kdiff.compile_ahead_plan()
    assert tuple(args) in kdiff.differential_genes.overloads
    assert jobs == [(kdiff.differential_genes, args)]
    # its per-group fits: Wald intervals, no goodness of fit
    assert tuple(kfit.compile_ahead_plan(profile=False, gof=False)[0]) in kfit.fit_genes.overloads
