"""Per-gene count histograms straight from count matrices (Numba kernels).

A gene's counts enter the stationary likelihood only through the multiset of
(capture group, count) pairs, so the fitter works on histograms: for each gene,
the bins (group, value) with the number of cells that have them.  These kernels
build them from raw arrays in one validation scan plus one counting pass:

- ``data``/``indices``/``indptr`` of a CSR or CSC matrix, or a dense 2-D array
  seen as "CSR/CSC with implicit indices" (``dense=True``: the entry at offset
  p of a segment starting at p0 has minor index p - p0).  A whole sparse matrix
  is never densified.
- *cell-major* layouts (CSR, C-ordered dense) are counted in parallel over
  blocks of cells, each block into its own table, the tables summed at the end;
  *gene-major* layouts (CSC, F-ordered dense) in parallel over blocks of genes
  into one shared table (a gene is touched by one thread only).
- The table holds counts of small values ``0 <= n < width`` per
  (gene, group); larger values ("overflow") are appended as (gene*n_groups +
  group, value) pairs and reduced by a counting sort on the (gene, group) key
  followed by a sort of the few values inside each key.  ``width`` is chosen
  by the caller from a memory budget, so heavy-tailed genes cost a sort of
  their tail only.
- Implicit zeros of a sparse matrix are never visited: per (gene, group) they
  are ``cells_in_group - stored non-missing entries - missing``.  NaN is
  missing for that (cell, gene).

All integer results are exact, so they do not depend on the number of threads
or on the layout: CSR, CSC and dense inputs give identical histograms.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["scan_values", "count_cell_major", "count_gene_major",
           "reduce_blocks", "overflow_runs", "assemble", "merge_histograms",
           "MAX_COUNT"]

# Largest accepted count.  Far above any molecule count, and it keeps
# (group, value) keys and float64 conversions exact.
MAX_COUNT = 2 ** 31 - 1


@njit(cache=True, parallel=True)
def scan_values(data, bounds, vcut, round_counts):
    """Validate the stored values and size the counting pass, per block.

    ``bounds`` (n_blocks + 1,) are offsets into ``data``.  With
    ``round_counts`` values are rounded half-to-even before every check.

    Returns ``vmax`` (float64 per block; -1 when the block has no valid value),
    ``n_over`` (values >= ``vcut``), ``n_nan`` and ``first`` (n_blocks, 4): the
    offset of the first infinite, negative, non-integer and too-large value
    (-1 when none).
    """
    nb = bounds.shape[0] - 1
    vmax = np.full(nb, -1.0)
    n_over = np.zeros(nb, np.int64)
    n_nan = np.zeros(nb, np.int64)
    first = np.full((nb, 4), -1, np.int64)
    fcut = float(vcut)
    for b in prange(nb):
        mx = -1.0
        over = 0
        nan = 0
        f_inf = -1
        f_neg = -1
        f_frac = -1
        f_big = -1
        for p in range(bounds[b], bounds[b + 1]):
            y = float(data[p])
            if y != y:
                nan += 1
                continue
            if round_counts:
                y = np.rint(y)
            if y - y != 0.0:
                if f_inf < 0:
                    f_inf = p
            elif y < 0.0:
                if f_neg < 0:
                    f_neg = p
            elif y != math.floor(y):
                if f_frac < 0:
                    f_frac = p
            elif y > MAX_COUNT:
                if f_big < 0:
                    f_big = p
            else:
                if y > mx:
                    mx = y
                if y >= fcut:
                    over += 1
        vmax[b] = mx
        n_over[b] = over
        n_nan[b] = nan
        first[b, 0] = f_inf
        first[b, 1] = f_neg
        first[b, 2] = f_frac
        first[b, 3] = f_big
    return vmax, n_over, n_nan, first


@njit(cache=True, inline="always")
def _as_count(x, round_counts):
    if round_counts:
        return np.int64(np.rint(float(x)))
    return np.int64(x)


@njit(cache=True, parallel=True)
def count_cell_major(data, indices, indptr, dense, row_bounds, group_of_cell,
                     n_genes, n_groups, round_counts, over_offsets,
                     table, missing, gmax, ov_key, ov_val):
    """Counting pass over a cell-major matrix (CSR or C-ordered dense).

    Block b (rows ``row_bounds[b]:row_bounds[b+1]``) writes ``table[b]``
    (n_genes*n_groups, width) counts of values < width, ``missing[b]``
    (n_genes*n_groups,) NaN counts, ``gmax[b]`` (n_genes,) the largest value
    seen per gene, and its overflow pairs into ``ov_key``/``ov_val`` from
    ``over_offsets[b]`` on.  Outputs must come zeroed (``gmax`` at -1).
    """
    nb = row_bounds.shape[0] - 1
    width = table.shape[2]
    for b in prange(nb):
        pos = over_offsets[b]
        tb = table[b]
        mb = missing[b]
        xb = gmax[b]
        for r in range(row_bounds[b], row_bounds[b + 1]):
            grp = group_of_cell[r]
            p0 = indptr[r]
            p1 = indptr[r + 1]
            for p in range(p0, p1):
                if dense:
                    g = p - p0
                else:
                    g = np.int64(indices[p])
                x = data[p]
                key = g * n_groups + grp
                if x != x:
                    mb[key] += 1
                    continue
                v = _as_count(x, round_counts)
                if v > xb[g]:
                    xb[g] = v
                if v < width:
                    tb[key, v] += 1
                else:
                    ov_key[pos] = key
                    ov_val[pos] = v
                    pos += 1


@njit(cache=True, parallel=True)
def count_gene_major(data, indices, indptr, dense, gene_bounds, group_of_cell,
                     n_groups, round_counts, over_offsets,
                     table, missing, gmax, ov_key, ov_val):
    """Counting pass over a gene-major matrix (CSC or F-ordered dense, seen as
    genes x cells).  Same outputs as :func:`count_cell_major` without the block
    axis: a gene belongs to one block, so the tables are shared."""
    nb = gene_bounds.shape[0] - 1
    width = table.shape[1]
    for b in prange(nb):
        pos = over_offsets[b]
        for g in range(gene_bounds[b], gene_bounds[b + 1]):
            p0 = indptr[g]
            p1 = indptr[g + 1]
            base = g * n_groups
            mx = np.int64(-1)
            for p in range(p0, p1):
                if dense:
                    c = p - p0
                else:
                    c = np.int64(indices[p])
                x = data[p]
                key = base + group_of_cell[c]
                if x != x:
                    missing[key] += 1
                    continue
                v = _as_count(x, round_counts)
                if v > mx:
                    mx = v
                if v < width:
                    table[key, v] += 1
                else:
                    ov_key[pos] = key
                    ov_val[pos] = v
                    pos += 1
            gmax[g] = mx


@njit(cache=True, parallel=True)
def reduce_blocks(table, missing, gmax, n_groups):
    """Sum the per-block tables of :func:`count_cell_major` into block 0,
    visiting only the columns below each gene's largest value."""
    nb = table.shape[0]
    width = table.shape[2]
    n_genes = gmax.shape[1]
    for g in prange(n_genes):
        mx = gmax[0, g]
        for b in range(1, nb):
            if gmax[b, g] > mx:
                mx = gmax[b, g]
        gmax[0, g] = mx
        top = min(width, mx + 1)
        for k in range(g * n_groups, (g + 1) * n_groups):
            for b in range(1, nb):
                missing[0, k] += missing[b, k]
                for v in range(top):
                    table[0, k, v] += table[b, k, v]


@njit(cache=True)
def _sort_segment(a, lo, hi):
    seg = np.sort(a[lo:hi])
    a[lo:hi] = seg


@njit(cache=True, parallel=True)
def overflow_runs(ov_key, ov_val, n_keys):
    """Group overflow pairs by key and run-length encode their values.

    Returns ``ptr`` (n_keys + 1,), ``run_val``, ``run_cnt``: the runs of key k
    are ``ptr[k]:ptr[k+1]``, values ascending.
    """
    m = ov_key.shape[0]
    start = np.zeros(n_keys + 1, np.int64)
    for i in range(m):
        start[ov_key[i] + 1] += 1
    for k in range(n_keys):
        start[k + 1] += start[k]
    fill = start[:-1].copy()
    vals = np.empty(m, np.int64)
    for i in range(m):
        k = ov_key[i]
        vals[fill[k]] = ov_val[i]
        fill[k] += 1
    nrun = np.zeros(n_keys + 1, np.int64)
    for k in prange(n_keys):
        lo = start[k]
        hi = start[k + 1]
        if hi - lo > 1:
            _sort_segment(vals, lo, hi)
        r = 0
        for i in range(lo, hi):
            if i == lo or vals[i] != vals[i - 1]:
                r += 1
        nrun[k + 1] = r
    for k in range(n_keys):
        nrun[k + 1] += nrun[k]
    run_val = np.empty(nrun[n_keys], np.int64)
    run_cnt = np.empty(nrun[n_keys], np.int64)
    for k in prange(n_keys):
        j = nrun[k] - 1
        for i in range(start[k], start[k + 1]):
            if i == start[k] or vals[i] != vals[i - 1]:
                j += 1
                run_val[j] = vals[i]
                run_cnt[j] = 0
            run_cnt[j] += 1
    return nrun, run_val, run_cnt


@njit(cache=True, parallel=True)
def assemble(table, missing, gmax, run_ptr, run_val, run_cnt, cells_in_group):
    """Per-gene bins sorted by (group, value) from the reduced counts.

    ``table`` (n_genes*n_groups, width) is modified: the implicit zeros of
    each (gene, group) are added to column 0.  Returns ``indptr``, ``values``,
    ``groups``, ``weights`` (float64), ``n_missing`` per gene and the smallest
    implicit-zero count met (negative means the input stored some (cell, gene)
    twice).
    """
    width = table.shape[1]
    n_groups = cells_in_group.shape[0]
    n_genes = gmax.shape[0]
    nbins = np.zeros(n_genes + 1, np.int64)
    n_missing = np.zeros(n_genes, np.int64)
    zmin = np.zeros(n_genes, np.int64)
    for g in prange(n_genes):
        top = max(1, min(width, gmax[g] + 1))
        cnt = 0
        miss = 0
        zlow = np.int64(0)
        for grp in range(n_groups):
            k = g * n_groups + grp
            stored = np.int64(0)
            for v in range(top):
                stored += table[k, v]
            for j in range(run_ptr[k], run_ptr[k + 1]):
                stored += run_cnt[j]
            z = cells_in_group[grp] - stored - missing[k]
            if z < zlow:
                zlow = z
            table[k, 0] += z
            miss += missing[k]
            for v in range(top):
                if table[k, v] > 0:
                    cnt += 1
            cnt += run_ptr[k + 1] - run_ptr[k]
        nbins[g + 1] = cnt
        n_missing[g] = miss
        zmin[g] = zlow
    for g in range(n_genes):
        nbins[g + 1] += nbins[g]
    n_bins = nbins[n_genes]
    values = np.empty(n_bins, np.int64)
    groups = np.empty(n_bins, np.int64)
    weights = np.empty(n_bins, np.float64)
    for g in prange(n_genes):
        top = max(1, min(width, gmax[g] + 1))
        j = nbins[g]
        for grp in range(n_groups):
            k = g * n_groups + grp
            for v in range(top):
                w = table[k, v]
                if w > 0:
                    values[j] = v
                    groups[j] = grp
                    weights[j] = w
                    j += 1
            for i in range(run_ptr[k], run_ptr[k + 1]):
                values[j] = run_val[i]
                groups[j] = grp
                weights[j] = run_cnt[i]
                j += 1
    low = np.int64(0)
    for g in range(n_genes):
        if zmin[g] < low:
            low = zmin[g]
    return nbins, values, groups, weights, n_missing, low


@njit(cache=True, parallel=True)
def merge_histograms(ptr_a, val_a, grp_a, w_a, ptr_b, val_b, grp_b, w_b):
    """Sum two per-gene histograms whose bins are sorted by (group, value)."""
    n_genes = ptr_a.shape[0] - 1
    nbins = np.zeros(n_genes + 1, np.int64)
    for g in prange(n_genes):
        i = ptr_a[g]
        j = ptr_b[g]
        ie = ptr_a[g + 1]
        je = ptr_b[g + 1]
        cnt = 0
        while i < ie or j < je:
            if j >= je:
                i += 1
            elif i >= ie:
                j += 1
            elif grp_a[i] < grp_b[j] or (grp_a[i] == grp_b[j] and val_a[i] < val_b[j]):
                i += 1
            elif grp_a[i] == grp_b[j] and val_a[i] == val_b[j]:
                i += 1
                j += 1
            else:
                j += 1
            cnt += 1
        nbins[g + 1] = cnt
    for g in range(n_genes):
        nbins[g + 1] += nbins[g]
    m = nbins[n_genes]
    values = np.empty(m, np.int64)
    groups = np.empty(m, np.int64)
    weights = np.empty(m, np.float64)
    for g in prange(n_genes):
        i = ptr_a[g]
        j = ptr_b[g]
        ie = ptr_a[g + 1]
        je = ptr_b[g + 1]
        o = nbins[g]
        while i < ie or j < je:
            if j >= je:
                take_a = True
                take_b = False
            elif i >= ie:
                take_a = False
                take_b = True
            elif grp_a[i] < grp_b[j] or (grp_a[i] == grp_b[j] and val_a[i] < val_b[j]):
                take_a = True
                take_b = False
            elif grp_a[i] == grp_b[j] and val_a[i] == val_b[j]:
                take_a = True
                take_b = True
            else:
                take_a = False
                take_b = True
            if take_a and take_b:
                values[o] = val_a[i]
                groups[o] = grp_a[i]
                weights[o] = w_a[i] + w_b[j]
                i += 1
                j += 1
            elif take_a:
                values[o] = val_a[i]
                groups[o] = grp_a[i]
                weights[o] = w_a[i]
                i += 1
            else:
                values[o] = val_b[j]
                groups[o] = grp_b[j]
                weights[o] = w_b[j]
                j += 1
            o += 1
    return nbins, values, groups, weights
