"""How the kernels are compiled and cached (telegraph.kernels._jit).

One compiled version per kernel whatever constants its callers pass, and the
on-disk cache in ``NUMBA_CACHE_DIR`` when set, else in telegraph's user cache
directory. Compile *times* are measured in benchmarks/bench_startup.py, not here.
"""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO
from telegraph.kernels._jit import njit


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
