"""telegraph.blocks: cutting ranges into blocks, and the local gene-block loop."""

from __future__ import annotations

import os
import time

import numba
import numpy as np
import pytest

from telegraph import config
from telegraph.blocks import (balanced_bounds, even_bounds, gene_blocks, map_genes, on_threads,
                              small_ints, spans)


def _covers(bounds, n):
    return bounds[0] == 0 and bounds[-1] == n and np.all(np.diff(bounds) > 0)


def test_spans_and_even_bounds():
    assert spans(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert spans(0, 4) == []
    b = even_bounds(10, 3)
    assert _covers(b, 10) and len(b) == 4
    assert list(even_bounds(2, 5)) == [0, 1, 2]          # never more blocks than items


def test_balanced_bounds_equalise_cost():
    rng = np.random.default_rng(0)
    cost = rng.integers(0, 50, 1000)
    indptr = np.concatenate([[0], np.cumsum(cost)])
    b = balanced_bounds(indptr, 8)
    assert _covers(b, 1000) and len(b) == 9
    per_block = [cost[a:z].sum() + (z - a) for a, z in zip(b[:-1], b[1:])]
    assert max(per_block) - min(per_block) <= 2 * (cost.max() + 1)
    # without a per-item cost, empty items are free and all-empty input is one block
    assert list(balanced_bounds(np.zeros(6, np.int64), 3, per_item=0)) == [0, 5]
    # an offset indptr (a slice of a larger one) gives the same blocks
    np.testing.assert_array_equal(balanced_bounds(indptr + 77, 8), b)


def test_gene_blocks_cover_the_genes_and_restore_threads():
    before = numba.get_num_threads()
    seen = []
    with gene_blocks(100, chunk_genes=30, n_jobs=1, progress=False) as blocks:
        assert numba.get_num_threads() == 1
        for start, stop in blocks:
            seen.append((start, stop))
    assert seen == [(0, 30), (30, 60), (60, 90), (90, 100)]
    assert numba.get_num_threads() == before
    with pytest.raises(KeyboardInterrupt):
        with gene_blocks(100, chunk_genes=30, n_jobs=1, progress=False) as blocks:
            for _ in blocks:
                raise KeyboardInterrupt
    assert numba.get_num_threads() == before


def test_small_ints():
    assert small_ints(np.array([0, 3, 200])).dtype == np.uint8
    assert small_ints(np.array([0, 70_000])).dtype == np.uint32
    np.testing.assert_array_equal(small_ints(np.array([0, 70_000])), [0, 70_000])


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_on_threads_covers_every_item_once(n_threads):
    rng = np.random.default_rng(1)
    indptr = np.concatenate([[0], np.cumsum(rng.integers(0, 30, 97))]) + 5
    hits = np.zeros(97, np.int64)
    pieces = []

    def piece(a, b):
        hits[a:b] += 1
        pieces.append((a, b))

    on_threads(piece, indptr, n_threads)
    assert np.all(hits == 1)
    assert len(pieces) == (1 if n_threads == 1 else len(balanced_bounds(indptr, 4 * n_threads)) - 1)
    on_threads(piece, np.zeros(1, np.int64), n_threads)   # no items: no call
    assert np.all(hits == 1)


def test_on_threads_raises_what_a_piece_raises():
    def piece(a, b):
        if a > 0:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        on_threads(piece, np.arange(20), 2)


def _square_plus(x, c):
    return x * x + c


@pytest.mark.parametrize("workers", ["processes", "threads"])
def test_map_genes_in_order_on_workers(monkeypatch, workers):
    """The per-gene map returns what the serial loop does, in order, on worker
    processes (the many-gene path) and threads, and advances the bar once per item."""
    monkeypatch.setattr(config, "GENE_WORKERS", workers)
    monkeypatch.setattr(config, "PROCESSES_FROM_GENES", 4)

    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    bar = Bar()
    args = [(x,) for x in range(30)]
    out = map_genes(_square_plus, args, 0.5, n_jobs=2, bar=bar)
    assert out == [x * x + 0.5 for x in range(30)]
    assert bar.n == 30


def test_map_genes_workers_see_changed_config(monkeypatch):
    """A tunable changed in this process (as the too-large warning advises for
    JOINT_MAX_POINTS) reaches the worker processes: they run under it, not under
    the module's default."""
    monkeypatch.setattr(config, "PROCESSES_FROM_GENES", 2)
    monkeypatch.setattr(config, "GENE_WORKERS", "processes")
    monkeypatch.setattr(config, "JOINT_MAX_POINTS", 123_457)
    out = map_genes(lambda k: (getattr(__import__("telegraph").config, k), os.getpid()),
                    [("JOINT_MAX_POINTS",)] * 8, n_jobs=2)
    assert {v for v, _ in out} == {123_457}
    assert os.getpid() not in {pid for _, pid in out}    # it did run elsewhere


def test_map_genes_raises_what_a_gene_raises(monkeypatch):
    monkeypatch.setattr(config, "PROCESSES_FROM_GENES", 2)

    def bad(x):
        if x == 3:
            raise ValueError("gene 3 failed")
        return x

    with pytest.raises(ValueError, match="gene 3 failed"):
        map_genes(bad, [(x,) for x in range(6)], n_jobs=2)


def test_map_genes_starts_the_costliest_first_and_returns_in_order(monkeypatch):
    """With a cost per item and several workers, the items start in decreasing cost
    (longest-first scheduling: no long gene left alone at the end) and come back in
    their own order; on one worker the order is the items' own."""
    monkeypatch.setattr(config, "GENE_WORKERS", "threads")
    started = []

    def record(x):
        started.append(x)
        time.sleep(0.05)        # both workers busy before either takes a third item
        return 10 * x

    cost = [1.0, 5.0, 3.0, 4.0]
    out = map_genes(record, [(x,) for x in range(4)], n_jobs=2, cost=cost)
    assert out == [0, 10, 20, 30]
    assert sorted(started[:2]) == [1, 3]      # the two costliest were started first
    started.clear()
    assert map_genes(record, [(x,) for x in range(4)], n_jobs=1, cost=cost) == [0, 10, 20, 30]
    assert started == [0, 1, 2, 3]
