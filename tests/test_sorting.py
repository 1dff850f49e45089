"""The kernels' stable sort (telegraph.kernels.sorting) against NumPy's."""

from __future__ import annotations

import numpy as np
from telegraph.kernels.sorting import stable_argsort


def test_stable_argsort_matches_numpy_on_ties_runs_and_edge_sizes():
    rng = np.random.default_rng(3)
    cases = [np.zeros(0, np.int64), np.array([7], np.int64), np.arange(10, dtype=np.int64),
             np.arange(10, dtype=np.int64)[::-1].copy(), np.full(9, 4, np.int64),
             np.array([2, 1, 2, 1, 0, 2], np.int64)]
    cases += [rng.integers(0, k, n).astype(np.int64) for n in (2, 3, 17, 100, 1001)
              for k in (2, 50, 1 << 40)]
    # negative keys, ranges at the counting sort's limit (2 n + 64) and beyond it, extremes
    cases += [rng.integers(-30, 30, 40).astype(np.int64),
              np.array([0, 2 * 5 + 64, 3, 3, 1], np.int64),
              np.array([0, 2 * 5 + 65, 3, 3, 1], np.int64),
              np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min, 0, -1, 5], np.int64),
              np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).max - 3, 7], np.int64),
              np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).max - 3], np.int64)]
    for keys in cases:
        np.testing.assert_array_equal(stable_argsort(keys), np.argsort(keys, kind="stable"))
