"""Per-gene count histograms straight from count matrices (Numba kernels).

A gene's counts enter the stationary likelihood only through the multiset of
(capture group, count) pairs, so the fitter works on histograms: for each gene,
the bins (group, value) with the number of cells that have them.  These kernels
build them from raw arrays, normally in a single pass over the stored values:

- ``data``/``indices``/``indptr`` of a CSR or CSC matrix, or a dense 2-D array
  seen as "CSR/CSC with implicit indices" (``dense=True``: the entry at offset
  p of a segment starting at p0 has minor index p - p0).  A whole sparse matrix
  is never densified.
- *cell-major* layouts (CSR, C-ordered dense) are counted in parallel over
  blocks of cells, each block into its own table, the tables summed at the end;
  *gene-major* layouts (CSC, F-ordered dense) in parallel over blocks of genes
  into one shared table (a gene is touched by one thread only). In parallel
  means: plain serial ``nogil`` kernels over a range of blocks, run side by
  side on Python threads (:func:`_on_threads`), not Numba's ``parallel=True``,
  whose parallel-accelerator compilation cost several seconds per kernel on
  the first call of an installation for no speed gain over threads here.
- The counting pass also validates every stored value (NaN = missing; inf,
  negative, non-integer or huge values are located and reported by the
  caller).  Overflow pairs go to per-block buffers of an estimated capacity;
  when one is too small the caller sizes them exactly with
  :func:`scan_values` and counts again.
- Segments (cells or genes) are visited in a given ``order``: cells sorted by
  capture group, so that consecutive cells update the same part of the table.
- The table holds counts of small values ``0 <= n < width`` per
  (gene, group) key, value-major (``table[v, key]``: the rows of the small
  values that take nearly every increment stay in cache).  Larger values
  ("overflow") are appended as (key, value) pairs, packed into one int64,
  sorted (NumPy's vectorised sort) and run-length encoded.
  ``width`` is chosen by the caller from a memory budget, so heavy-tailed
  genes cost a sort of their tail only.
- Keys are group-major (``group * n_genes + gene``) for cell-major input,
  where a cell sweeps many genes of one group, and gene-major
  (``gene * n_groups + group``) for gene-major input, where a gene sweeps
  cells of many groups.  The assembly counts each key's bins reading the
  table row by row, then fills the (gene, group, value)-ordered output by
  chunks of genes so that reads and writes stay in cache.
- Implicit zeros of a sparse matrix are never visited: per (gene, group) they
  are ``cells_in_group - stored non-missing entries - missing``.  NaN is
  missing for that (cell, gene).

All integer results are exact, so they do not depend on the number of threads
or on the layout: CSR, CSC and dense inputs give identical histograms.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from ._jit import njit

__all__ = ["scan_values", "count_cell_major", "count_gene_major",
           "reduce_blocks", "overflow_runs", "assemble", "merge_histograms",
           "MAX_COUNT"]

_VAL_BITS = 31  # a count fits in 31 bits (MAX_COUNT), a key in the other 32

# Largest accepted count.  Far above any molecule count; it keeps int32 table
# entries, int64 keys and float64 conversions exact.
MAX_COUNT = 2 ** 31 - 1


def _on_threads(kernel, n_items, *args):
    """``kernel(lo, hi, *args)`` over ``range(n_items)`` cut into one contiguous
    range per thread (Numba's thread count, as ``prange``'s static schedule
    would), side by side: the kernels are ``nogil`` and each range writes its
    own part of the outputs."""
    n = max(1, min(numba.get_num_threads(), n_items))
    if n == 1:
        kernel(0, n_items, *args)
        return
    bounds = [n_items * i // n for i in range(n + 1)]
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="telegraph-count") as pool:
        for future in [pool.submit(kernel, bounds[i], bounds[i + 1], *args) for i in range(n)]:
            future.result()


def _chunk_bounds(n, size):
    # boundaries of ceil(n / size) ranges covering 0..n (as _chunks, in NumPy)
    m = max(1, (n + size - 1) // size)
    return np.minimum(n, np.arange(m + 1, dtype=np.int64) * size)


def scan_values(data, indptr, seg, vcut, round_counts):
    """Validate the stored values and size the counting pass.

    Block b covers segments ``seg[b]:seg[b+1]``, segment s being
    ``data[indptr[s]:indptr[s+1]]``.  With ``round_counts`` values are rounded
    half-to-even before every check.

    Returns ``vmax`` (int64 per block; -1 when the block has no valid value),
    ``n_over`` (per segment: values >= ``vcut``), ``n_nan`` (per block) and
    ``first`` (n_blocks, 4): the smallest offset of an infinite, negative,
    non-integer and too-large value (-1 when none).
    """
    nb = seg.shape[0] - 1
    vmax = np.full(nb, -1, np.int64)
    n_over = np.zeros(indptr.shape[0] - 1, np.int64)
    n_nan = np.zeros(nb, np.int64)
    first = np.full((nb, 4), -1, np.int64)
    _on_threads(_scan_blocks, nb, data, indptr, seg, np.int64(vcut), bool(round_counts), vmax,
                n_over, n_nan, first)
    return vmax, n_over, n_nan, first


@njit(cache=True, nogil=True)
def _scan_blocks(b0, b1, data, indptr, seg, vcut, round_counts, vmax, n_over, n_nan, first):
    # blocks b0 <= b < b1 of scan_values
    fmax = float(MAX_COUNT)
    for b in range(b0, b1):
        mx = np.int64(-1)
        nan = 0
        f_inf = -1
        f_neg = -1
        f_frac = -1
        f_big = -1
        for s in range(seg[b], seg[b + 1]):
            over = 0
            for p in range(indptr[s], indptr[s + 1]):
                y = float(data[p])
                if round_counts:
                    y = np.rint(y)
                # fast path: an integer in range (NaN and inf fail the tests)
                if y >= 0.0 and y <= fmax:
                    v = np.int64(y)
                    if float(v) == y:
                        mx = max(mx, v)
                        over += v >= vcut
                        continue
                if y != y:
                    nan += 1
                elif y - y != 0.0:
                    if f_inf < 0 or p < f_inf:
                        f_inf = p
                elif y < 0.0:
                    if f_neg < 0 or p < f_neg:
                        f_neg = p
                elif y > fmax:
                    if f_big < 0 or p < f_big:
                        f_big = p
                elif f_frac < 0 or p < f_frac:
                    f_frac = p
            n_over[s] = over
        vmax[b] = mx
        n_nan[b] = nan
        first[b, 0] = f_inf
        first[b, 1] = f_neg
        first[b, 2] = f_frac
        first[b, 3] = f_big


@njit(cache=True, inline="always")
def _classify(y, p, first, b):
    # slow path of the counting passes: y is not a valid count; return True
    # when it is NaN (missing), else record the offset of the problem
    if y != y:
        return True
    if y - y != 0.0:
        col = 0
    elif y < 0.0:
        col = 1
    elif y > MAX_COUNT:
        col = 3
    else:
        col = 2
    if first[b, col] < 0 or p < first[b, col]:
        first[b, col] = p
    return False


def count_cell_major(data, indices, indptr, dense, order, seg, group_of_cell,
                     n_genes, round_counts, over_offsets,
                     table, missing, ov_key, ov_val):
    """Counting pass over a cell-major matrix (CSR or C-ordered dense), with
    the validation of :func:`scan_values` folded in.

    Block b (cells ``order[seg[b]:seg[b+1]]``) writes ``table[b]``
    (width, n_keys) counts of values < width, ``missing[b]`` (n_keys,) NaN
    counts, and its overflow (key, value) pairs into ``ov_key``/``ov_val``
    from ``over_offsets[b]`` up to ``over_offsets[b+1]`` (pairs beyond that
    capacity are counted, not stored).  Keys are ``group * n_genes + gene``.
    ``table`` and ``missing`` must come zeroed.

    Returns ``vmax``, ``n_over`` (pairs met, stored or not) and ``first`` per
    block as :func:`scan_values`.
    """
    nb = seg.shape[0] - 1
    vmax = np.full(nb, -1, np.int64)
    n_over = np.zeros(nb, np.int64)
    first = np.full((nb, 4), -1, np.int64)
    _on_threads(_count_cell_blocks, nb, data, indices, indptr, bool(dense), order, seg,
                group_of_cell, np.int64(n_genes), bool(round_counts), over_offsets, table,
                missing, ov_key, ov_val, vmax, n_over, first)
    return vmax, n_over, first


@njit(cache=True, nogil=True)
def _count_cell_blocks(b0, b1, data, indices, indptr, dense, order, seg, group_of_cell, n_genes,
                       round_counts, over_offsets, table, missing, ov_key, ov_val, vmax, n_over,
                       first):
    # blocks b0 <= b < b1 of count_cell_major
    width = table.shape[1]
    fmax = float(MAX_COUNT)
    for b in range(b0, b1):
        pos = over_offsets[b]
        end = over_offsets[b + 1]
        tb = table[b]
        mb = missing[b]
        mx = np.int64(-1)
        for i in range(seg[b], seg[b + 1]):
            r = order[i]
            base = group_of_cell[r] * n_genes
            p0 = indptr[r]
            p1 = indptr[r + 1]
            for p in range(p0, p1):
                if dense:
                    g = p - p0
                else:
                    g = np.int64(indices[p])
                key = base + g
                y = float(data[p])
                if round_counts:
                    y = np.rint(y)
                if y >= 0.0 and y <= fmax:
                    v = np.int64(y)
                    if float(v) == y:
                        mx = max(mx, v)
                        if v < width:
                            tb[v, key] += 1
                        else:
                            if pos < end:
                                ov_key[pos] = key
                                ov_val[pos] = v
                            pos += 1
                        continue
                if _classify(y, p, first, b):
                    mb[key] += 1
        vmax[b] = mx
        n_over[b] = pos - over_offsets[b]


def count_gene_major(data, indices, indptr, dense, order, seg, group_of_cell,
                     n_groups, round_counts, over_offsets,
                     table, missing, ov_key, ov_val):
    """Counting pass over a gene-major matrix (CSC or F-ordered dense, seen as
    genes x cells).  Same as :func:`count_cell_major` without the block axis
    of the tables (a gene belongs to one block, so they are shared); keys are
    ``gene * n_groups + group``."""
    nb = seg.shape[0] - 1
    vmax = np.full(nb, -1, np.int64)
    n_over = np.zeros(nb, np.int64)
    first = np.full((nb, 4), -1, np.int64)
    _on_threads(_count_gene_blocks, nb, data, indices, indptr, bool(dense), order, seg,
                group_of_cell, np.int64(n_groups), bool(round_counts), over_offsets, table,
                missing, ov_key, ov_val, vmax, n_over, first)
    return vmax, n_over, first


@njit(cache=True, nogil=True)
def _count_gene_blocks(b0, b1, data, indices, indptr, dense, order, seg, group_of_cell, n_groups,
                       round_counts, over_offsets, table, missing, ov_key, ov_val, vmax, n_over,
                       first):
    # blocks b0 <= b < b1 of count_gene_major
    width = table.shape[0]
    fmax = float(MAX_COUNT)
    for b in range(b0, b1):
        pos = over_offsets[b]
        end = over_offsets[b + 1]
        mx = np.int64(-1)
        for i in range(seg[b], seg[b + 1]):
            g = order[i]
            p0 = indptr[g]
            p1 = indptr[g + 1]
            base = g * n_groups
            for p in range(p0, p1):
                if dense:
                    c = p - p0
                else:
                    c = np.int64(indices[p])
                key = base + group_of_cell[c]
                y = float(data[p])
                if round_counts:
                    y = np.rint(y)
                if y >= 0.0 and y <= fmax:
                    v = np.int64(y)
                    if float(v) == y:
                        mx = max(mx, v)
                        if v < width:
                            table[v, key] += 1
                        else:
                            if pos < end:
                                ov_key[pos] = key
                                ov_val[pos] = v
                            pos += 1
                        continue
                if _classify(y, p, first, b):
                    missing[key] += 1
        vmax[b] = mx
        n_over[b] = pos - over_offsets[b]


@njit(cache=True)
def _chunks(n, size):
    # boundaries of ceil(n / size) ranges covering 0..n
    m = max(1, (n + size - 1) // size)
    out = np.empty(m + 1, np.int64)
    for c in range(m + 1):
        out[c] = min(n, c * size)
    return out


@njit(cache=True)
def reduce_blocks(table, missing, width):
    """Sum the per-block outputs of :func:`count_cell_major` into block 0
    (table rows below ``width`` only: the others are zero)."""
    nb = table.shape[0]
    n_keys = table.shape[2]
    ch = _chunks(n_keys, 16384)
    for c in range(ch.shape[0] - 1):
        for v in range(width):
            for b in range(1, nb):
                for k in range(ch[c], ch[c + 1]):
                    table[0, v, k] += table[b, v, k]
        for b in range(1, nb):
            for k in range(ch[c], ch[c + 1]):
                missing[0, k] += missing[b, k]


def overflow_runs(ov_key, ov_val, n_keys):
    """Group overflow pairs by key and run-length encode their values.

    Plain NumPy: one sort of packed (key, value) words.  Returns ``ptr``
    (n_keys + 1,), ``run_val``, ``run_cnt``: the runs of key k are
    ``ptr[k]:ptr[k+1]``, values ascending.
    """
    ptr = np.zeros(n_keys + 1, np.int64)
    if ov_key.shape[0] == 0:
        return ptr, np.zeros(0, np.int64), np.zeros(0, np.int64)
    packed = np.sort((ov_key << _VAL_BITS) | ov_val)
    starts = np.flatnonzero(np.diff(packed)) + 1
    starts = np.concatenate(([0], starts))
    words = packed[starts]
    run_cnt = np.diff(np.append(starts, packed.shape[0]))
    keys = words >> _VAL_BITS
    run_val = words & ((1 << _VAL_BITS) - 1)
    np.cumsum(np.bincount(keys, minlength=n_keys), out=ptr[1:])
    return ptr, run_val, run_cnt


def assemble(table, width, missing, n_genes, run_ptr, run_val, run_cnt,
             cells_in_group, gene_major_keys):
    """Per-gene bins sorted by (group, value) from the reduced counts.

    ``table`` (>= width, n_keys) is modified: the implicit zeros of each
    (gene, group) are added to row 0; its rows from ``width`` on are zero.  Keys are ``g * n_groups + grp`` if
    ``gene_major_keys`` else ``grp * n_genes + g``.  Every pass reads the
    value-major table row by row over a range of keys.

    Returns ``indptr``, ``values``, ``groups``, ``weights`` (float64),
    ``n_missing`` per gene and the smallest implicit-zero count met (negative
    means the input stored some (cell, gene) twice).
    """
    n_keys = table.shape[1]
    width = np.int64(width)
    n_genes = np.int64(n_genes)
    gene_major_keys = bool(gene_major_keys)
    ch = _chunk_bounds(n_keys, 8192)
    stored = np.zeros(n_keys, np.int64)
    cnt = np.zeros(n_keys, np.int64)
    zlow = np.zeros(ch.shape[0] - 1, np.int64)
    # stored entries and bins of values >= 1 per key, then the zeros
    _on_threads(_assemble_counts, ch.shape[0] - 1, ch, table, width, missing, n_genes, run_ptr,
                run_cnt, cells_in_group, gene_major_keys, stored, cnt, zlow)
    indptr, n_missing, off = _assemble_offsets(cnt, missing, n_genes, cells_in_group.shape[0],
                                               gene_major_keys)
    n_bins = indptr[n_genes]
    values = np.empty(n_bins, np.int64)
    groups = np.empty(n_bins, np.int64)
    weights = np.empty(n_bins, np.float64)
    # fill, by chunks of genes so that both the table reads and the output
    # writes (one cursor per key of the chunk) stay in cache
    gch = _chunk_bounds(n_genes, 64)
    _on_threads(_assemble_fill, gch.shape[0] - 1, gch, table, width, n_genes, run_ptr, run_val,
                run_cnt, cells_in_group.shape[0], gene_major_keys, off, values, groups, weights)
    low = min(0, int(zlow.min())) if zlow.shape[0] else 0
    return indptr, values, groups, weights, n_missing, np.int64(low)


@njit(cache=True, nogil=True)
def _assemble_counts(c0, c1, ch, table, width, missing, n_genes, run_ptr, run_cnt,
                     cells_in_group, gene_major_keys, stored, cnt, zlow):
    # key chunks c0 <= c < c1 of assemble: stored entries, bins and zeros per key
    n_groups = cells_in_group.shape[0]
    for c in range(c0, c1):
        lo = ch[c]
        hi = ch[c + 1]
        for v in range(width):
            row = table[v]
            for k in range(lo, hi):
                w = row[k]
                stored[k] += w
                if v > 0 and w != 0:
                    cnt[k] += 1
        low = np.int64(0)
        for k in range(lo, hi):
            for j in range(run_ptr[k], run_ptr[k + 1]):
                stored[k] += run_cnt[j]
            grp = k % n_groups if gene_major_keys else k // n_genes
            z = cells_in_group[grp] - stored[k] - missing[k]
            low = min(low, z)
            table[0, k] += z
            if table[0, k] != 0:
                cnt[k] += 1
            cnt[k] += run_ptr[k + 1] - run_ptr[k]
        zlow[c] = low


@njit(cache=True, nogil=True)
def _assemble_offsets(cnt, missing, n_genes, n_groups, gene_major_keys):
    # output offset of every key: genes in order, groups in order inside a gene
    n_keys = cnt.shape[0]
    indptr = np.zeros(n_genes + 1, np.int64)
    n_missing = np.zeros(n_genes, np.int64)
    if gene_major_keys:
        for g in range(n_genes):
            t = np.int64(0)
            m = np.int64(0)
            for k in range(g * n_groups, (g + 1) * n_groups):
                t += cnt[k]
                m += missing[k]
            indptr[g + 1] = t
            n_missing[g] = m
    else:
        for grp in range(n_groups):
            for g in range(n_genes):
                k = grp * n_genes + g
                indptr[g + 1] += cnt[k]
                n_missing[g] += missing[k]
    for g in range(n_genes):
        indptr[g + 1] += indptr[g]
    off = np.empty(n_keys, np.int64)
    if gene_major_keys:
        for g in range(n_genes):
            o = indptr[g]
            for k in range(g * n_groups, (g + 1) * n_groups):
                off[k] = o
                o += cnt[k]
    else:
        for g in range(n_genes):
            off[g] = indptr[g]
        for k in range(n_genes, n_keys):
            off[k] = off[k - n_genes] + cnt[k - n_genes]
    return indptr, n_missing, off


@njit(cache=True, nogil=True)
def _assemble_fill(c0, c1, gch, table, width, n_genes, run_ptr, run_val, run_cnt, n_groups,
                   gene_major_keys, off, values, groups, weights):
    # gene chunks c0 <= c < c1 of assemble: the bins of their keys to the output
    for c in range(c0, c1):
        g0 = gch[c]
        g1 = gch[c + 1]
        if gene_major_keys:
            for g in range(g0, g1):
                for v in range(width):
                    row = table[v]
                    for k in range(g * n_groups, (g + 1) * n_groups):
                        w = row[k]
                        if w != 0:
                            o = off[k]
                            values[o] = v
                            groups[o] = k - g * n_groups
                            weights[o] = w
                            off[k] = o + 1
        else:
            for grp in range(n_groups):
                for v in range(width):
                    row = table[v]
                    for k in range(grp * n_genes + g0, grp * n_genes + g1):
                        w = row[k]
                        if w != 0:
                            o = off[k]
                            values[o] = v
                            groups[o] = grp
                            weights[o] = w
                            off[k] = o + 1
        for g in range(g0, g1):
            for grp in range(n_groups):
                k = g * n_groups + grp if gene_major_keys else grp * n_genes + g
                o = off[k]
                for i in range(run_ptr[k], run_ptr[k + 1]):
                    values[o] = run_val[i]
                    groups[o] = grp
                    weights[o] = run_cnt[i]
                    o += 1


@njit(cache=True)
def merge_histograms(ptr_a, val_a, grp_a, w_a, ptr_b, val_b, grp_b, w_b):
    """Sum two per-gene histograms whose bins are sorted by (group, value)."""
    n_genes = ptr_a.shape[0] - 1
    nbins = np.zeros(n_genes + 1, np.int64)
    for g in range(n_genes):
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
    for g in range(n_genes):
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
