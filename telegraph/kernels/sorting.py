"""A stable sort of int64 keys, in Numba.

The kernels sort a gene's bins by (value, group) (:func:`telegraph.kernels.models.sort_bins`),
a histogram's values (:func:`telegraph.kernels.poisson_beta.histogram_eval`) and the
overflow words of the counting pass (:mod:`telegraph.kernels.counting`). Numba's
``np.argsort(kind="mergesort")`` and ``np.sort`` do the same, but their generic
implementations (merge sort, introsort, insertion sort, each typed and compiled
separately) cost a fresh installation about 2-3 CPU seconds of compilation; this
one kernel serves all three and compiles in a fraction of that
(benchmarks/bench_startup.py). A stable sort's order is unique, so the results are
the ones NumPy gives.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit

__all__ = ["stable_argsort"]


@njit(cache=True, error_model="numpy", nogil=True)
def stable_argsort(keys):
    """The permutation that sorts the int64 array ``keys`` ascending, equal keys
    in their original order (as ``np.argsort(keys, kind="stable")``): a
    counting sort, O(n + range), when the keys span a range of at most
    2 n + 64 (a histogram's counts, mostly), else a bottom-up merge sort,
    O(n log n) time, one scratch array."""
    n = keys.shape[0]
    if n < 2:
        return np.arange(n)
    lo = keys[0]
    hi = keys[0]
    for i in range(1, n):
        lo = min(lo, keys[i])
        hi = max(hi, keys[i])
    if hi <= lo + (2 * n + 64):   # (written so that it cannot overflow to a false True)
        start = np.zeros(hi - lo + 2, np.int64)
        for i in range(n):
            start[keys[i] - lo + 1] += 1
        for r in range(hi - lo + 1):
            start[r + 1] += start[r]
        out = np.empty(n, np.int64)
        for i in range(n):
            r = keys[i] - lo
            out[start[r]] = i
            start[r] += 1
        return out
    order = np.arange(n)
    scratch = np.empty(n, np.int64)
    width = 1
    while width < n:
        start = 0
        while start < n:
            mid = min(start + width, n)
            end = min(start + 2 * width, n)
            i, j, k = start, mid, start
            if mid < end and keys[order[mid - 1]] <= keys[order[mid]]:
                # already in order: copy the run
                for t in range(start, end):
                    scratch[t] = order[t]
                start = end
                continue
            while i < mid and j < end:
                if keys[order[j]] < keys[order[i]]:
                    scratch[k] = order[j]
                    j += 1
                else:
                    scratch[k] = order[i]
                    i += 1
                k += 1
            while i < mid:
                scratch[k] = order[i]
                i += 1
                k += 1
            while j < end:
                scratch[k] = order[j]
                j += 1
                k += 1
            start = end
        order, scratch = scratch, order
        width *= 2
    return order
