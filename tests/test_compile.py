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

import numba
import numpy as np
from conftest import REPO
from telegraph.kernels import counting
from telegraph.kernels import fit as kfit
from telegraph.kernels._jit import Kernel, njit


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


def _cache_files_after_a_call(env):
    """Cache files written when a fresh process calls a kernel with ``env``."""
    code = "from telegraph.kernels.special import digamma; print(digamma(1.5))"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr


def _files(root):
    return sorted(p for p, _, fs in os.walk(root) for f in fs if f.endswith((".nbi", ".nbc")))


def test_cache_directory_honours_numba_cache_dir_else_the_user_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    _cache_files_after_a_call(dict(env, NUMBA_CACHE_DIR=str(tmp_path / "numba")))
    assert _files(tmp_path / "numba") and not _files(tmp_path / "xdg")
    _cache_files_after_a_call(env)
    assert _files(tmp_path / "xdg" / "telegraph" / "numba")


def _kernels_typed_when_compiling(dispatcher, *args):
    """Names of the kernels a fresh, uncached copy of ``dispatcher`` calls when
    compiled for ``args``: Numba types every kernel the compiled code still calls
    (compiling it unless it is compiled or cached already); a callee inlined at
    Numba IR level (``inline="always"``) is typed as part of the caller, so its
    own callees are the ones seen."""
    seen = set()
    original = Kernel.get_call_template

    def record(self, args, kws):
        seen.add(self.py_func.__module__ + "." + self.py_func.__name__)
        return original(self, args, kws)

    fresh = njit(cache=False, error_model="numpy", nogil=True)(dispatcher.py_func)
    Kernel.get_call_template = record
    try:
        fresh.compile(tuple(numba.typeof(a) for a in args))
    finally:
        Kernel.get_call_template = original
    return seen


def test_a_wald_fit_without_goodness_of_fit_compiles_no_profile_or_gof_kernel():
    # fit_genes(profile_mask=None, gof_min_expected=None) is the version a Wald fit
    # without goodness of fit runs (telegraph.fitting.fit_raw passes None for a stage
    # it does not need): its compilation must not reach the profile or GOF kernels
    ip = np.array([0, 2], np.int64)
    v = np.array([0, 3], np.int64)
    g = np.zeros(2, np.int64)
    w = np.array([5.0, 5.0])
    cap = np.ones(1)
    nc = np.array([10], np.int64)
    res = np.empty((1, kfit.N_RESULT))
    head = (ip, v, g, w, cap, nc, 1, 1.92)
    tail = (res, 0.0, 0.0, None, None, 2.0)   # one level (no coarse capture groups)
    # the kernels through which fit_genes reaches each stage (those of a stage inlined
    # into fit_genes, inline="always", are typed as part of it: their callees are seen)
    profile = {"telegraph.kernels.fit._profile_intervals", "telegraph.kernels.profile.profile_bound",
               "telegraph.kernels.profile.widen_near_limits"}
    gof = {"telegraph.kernels.fit._goodness_of_fit", "telegraph.kernels.gof.pearson_gof"}
    fitting = {"telegraph.kernels.fit._fit_models", "telegraph.kernels.optimize.fit_telegraph"}
    wald = _kernels_typed_when_compiling(kfit.fit_genes, *head, None, 50, None, *tail)
    assert wald & fitting
    assert not wald & (profile | gof)
    # and the same kernel with a mask and a GOF threshold reaches both stages
    full = _kernels_typed_when_compiling(kfit.fit_genes, *head, np.ones(8, np.bool_), 50, 5.0,
                                         *tail)
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


def test_a_warm_process_loads_the_caller_and_compiles_no_callee(tmp_path):
    (tmp_path / "nested.py").write_text(_NESTED)
    env = _child_env(tmp_path)
    runs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path)], cwd=REPO,
                           capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    (cold_value, cold), (warm_value, warm) = runs
    assert cold_value == warm_value == 10.0
    assert sorted(cold) == ["leaf", "top"]
    assert warm == []


def test_kernels_compile_at_their_optimisation_level_unless_numba_opt_is_set(monkeypatch):
    from numba.core import config as numba_config
    from numba.core import event

    from telegraph.kernels import _jit

    seen = []

    class Listener(event.Listener):
        def on_start(self, ev):
            seen.append(int(numba_config.OPT))

        def on_end(self, ev):
            pass

    before = numba_config.OPT
    listener = Listener()
    event.register("numba:compile", listener)
    try:
        monkeypatch.delenv("NUMBA_OPT", raising=False)

        @njit(cache=False)
        def leaf(x):
            return x + 1.0

        @njit(cache=False)
        def top(x):
            return leaf(x) * 2.0

        assert top(1.0) == 4.0
        assert seen == [_jit.OPT_LEVEL, _jit.OPT_LEVEL]   # top, and leaf for linking
        assert numba_config.OPT is before                 # restored
        seen.clear()
        monkeypatch.setenv("NUMBA_OPT", str(int(before)))   # the user's choice wins

        @njit(cache=False)
        def other(x):
            return x - 1.0

        assert other(1.0) == 0.0
        assert seen == [int(before)]
    finally:
        event.unregister("numba:compile", listener)
