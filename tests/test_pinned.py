"""Results stay where they were: the pinned workloads of tests/pinned.

``tests/pinned/make_pinned.py`` saved the results of each workload in
``tests/pinned/workloads.py`` on the code before a reorganisation; here the same
workloads run on today's code and every pinned column must agree (numbers to a
relative 1e-9, NaN/inf and labels exactly). A change that is meant to alter
results regenerates the pins with that script and says so in its commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

PINNED = Path(__file__).resolve().parent / "pinned"
sys.path.insert(0, str(PINNED))

import workloads  # noqa: E402


def _check(name):
    want = workloads.load(PINNED / f"{name}.csv.gz")
    got = workloads.run(name)
    problems = workloads.compare(got, want)
    assert not problems, f"{name}: " + "; ".join(problems[:8])


@pytest.mark.parametrize("name", sorted(workloads.EXAMPLE))
def test_example_results_unchanged(name):
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(workloads.LARSSON_WORKLOADS))
def test_larsson_results_unchanged(name, larsson_dir):
    _check(name)


def test_compare_sees_a_change():
    """The comparison itself can fail: a perturbed copy is reported."""
    want = workloads.load(PINNED / "example_fit_wald.csv.gz")
    got = want.copy()
    row = int(np.flatnonzero(np.isfinite(want["burst_size"].to_numpy(float)))[0])
    got.iloc[row, got.columns.get_loc("burst_size")] *= 1 + 1e-6
    got.iloc[5, got.columns.get_loc("regime")] = "poisson" if want["regime"].iloc[5] != "poisson" else "bursty"
    problems = workloads.compare(got, want)
    assert any(p.startswith("burst_size") for p in problems)
    assert any(p.startswith("regime") for p in problems)
    assert workloads.compare(want.copy(), want) == []
