"""Gillespie direct-method kernels with path scores, parallel over cells.

Two kernels:

- :func:`telegraph_paths`: the four-reaction telegraph model (promoter off/on,
  transcription, degradation), hand-specialised so that one event costs two
  random numbers, one logarithm and a handful of comparisons;
- :func:`network_paths`: any mass-action network given as index arrays.

Both record the state at a list of sample times, thin the measured species
binomially with a per-cell capture efficiency, and (optionally) accumulate the
path score of every reaction, d log p(path)/d k_j = N_j/k_j - int h_j(x_t) dt
(docs/maths.md, "Simulation and path scores"), in the event loop itself.

Randomness: every path (cell, or (gene, cell) pair) owns a xoshiro256+ stream
whose 256-bit state is derived by SplitMix64 hashing of (key, gene, cell).
A path's result therefore depends only on the key and its own indices, never
on which thread ran it or on how many paths were simulated alongside.
The generator state lives in four local uint64 variables so the event loop
allocates nothing and the state stays in registers.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._jit import njit

__all__ = ["telegraph_paths", "network_paths", "stream_uniforms"]

# uint64 constants as typed globals: Numba would otherwise promote mixed
# int64/uint64 arithmetic to float64.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GENE_SALT = np.uint64(0xD1B54A32D192ED03)
_CELL_SALT = np.uint64(0x8CB92BA72F3D8DD7)
_S11 = np.uint64(11)
_S17 = np.uint64(17)
_S19 = np.uint64(19)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_S45 = np.uint64(45)
_ONE = np.uint64(1)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


@njit(cache=True)
def _mix64(z):
    # SplitMix64 finaliser: a bijection on 64-bit words with full avalanche.
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(cache=True)
def _seed_stream(key, gene, cell):
    """xoshiro256 state for path (gene, cell) of the run with this key."""
    h = _mix64(key ^ _mix64(np.uint64(gene) * _GOLDEN + _GENE_SALT))
    h = _mix64(h ^ _mix64(np.uint64(cell) * _GOLDEN + _CELL_SALT))
    # SplitMix64 sequence from h fills the four state words.
    h += _GOLDEN
    s0 = _mix64(h)
    h += _GOLDEN
    s1 = _mix64(h)
    h += _GOLDEN
    s2 = _mix64(h)
    h += _GOLDEN
    s3 = _mix64(h)
    if (s0 | s1 | s2 | s3) == np.uint64(0):  # the one forbidden state
        s0 = _ONE
    return s0, s1, s2, s3


@njit(cache=True)
def _next(s0, s1, s2, s3):
    """One xoshiro256+ step: (output, new state)."""
    r = s0 + s3
    t = s1 << _S17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << _S45) | (s3 >> _S19)
    return r, s0, s1, s2, s3


@njit(cache=True)
def _unit(r):
    # Top 53 bits (the low bits of xoshiro256+ are weak), centred so the
    # result lies strictly inside (0, 1): -log(u) is finite and positive.
    return (float(r >> _S11) + 0.5) * _INV53


@njit(cache=True)
def stream_uniforms(key, gene, cell, n):
    """First ``n`` uniforms of the stream of path (gene, cell); for tests."""
    s0, s1, s2, s3 = _seed_stream(key, gene, cell)
    out = np.empty(n)
    for i in range(n):
        r, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
        out[i] = _unit(r)
    return out


@njit(parallel=True, cache=True, error_model="numpy")
def telegraph_paths(k_on, k_off, k_syn, k_deg, times, g0, m0, capture, key, cell0,
                    want_score, counts, scores, events):
    """Telegraph-model paths for every (cell, gene) of a block of cells.

    Parameters
    ----------
    k_on, k_off, k_syn, k_deg : float64[n_genes]
        Rates per unit time, all > 0.
    times : float64[K]
        Non-decreasing sample times >= 0 (the path starts at time 0).
    g0, m0 : int64[n_cells, n_genes]
        Initial promoter state (0 off, 1 on) and mRNA count.
    capture : float64[n_cells]
        Capture efficiency in (0, 1]; recorded counts are Binomial(m, capture).
    key : uint64
        Run key; stream of path (cell, gene) is derived from (key, gene, cell).
    cell0 : int64
        Index of the block's first cell in the run: row c of the arrays is cell
        cell0 + c, whose stream is used, so a run simulated block by block (to
        stay interruptible) gives the same result as in one call.
    want_score : bool
        Accumulate the path scores.
    counts : int64[K, n_cells, n_genes]  (output)
    scores : float64[K, n_cells, n_genes, 4]  (output; ignored unless
        want_score) path score of [0, times[k]] with respect to
        (k_on, k_off, k_syn, k_deg).
    events : int64[n_cells, n_genes]  (output)
        Reactions fired up to the last sample time.
    """
    n_cells, n_genes = g0.shape
    n_times = times.shape[0]
    for idx in prange(n_cells * n_genes):
        c = idx // n_genes
        j = idx - c * n_genes
        kon = k_on[j]
        koff = k_off[j]
        ksyn = k_syn[j]
        kdeg = k_deg[j]
        a_on_state = koff + ksyn
        cap = capture[c]
        s0, s1, s2, s3 = _seed_stream(key, j, cell0 + c)
        g = g0[c, j]
        m = m0[c, j]
        t = 0.0
        n_on = 0
        n_off = 0
        n_syn = 0
        n_deg = 0
        t_on = 0.0      # time spent on
        int_m = 0.0     # integral of m dt
        k = 0
        t_next = times[0] if n_times > 0 else np.inf
        while k < n_times:
            a_deg = kdeg * m
            a0 = (a_on_state if g else kon) + a_deg
            r, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
            t_new = t - math.log(_unit(r)) / a0
            if t_new > t_next:
                # The state is constant on [t, t_new): record every sample
                # time that falls in it, then fire the event (if any remain).
                while k < n_times and times[k] < t_new:
                    tk = times[k]
                    if cap < 1.0:
                        x = 0
                        for _ in range(m):
                            r, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
                            if _unit(r) < cap:
                                x += 1
                        counts[k, c, j] = x
                    else:
                        counts[k, c, j] = m
                    if want_score:
                        dt = tk - t
                        ton = t_on + g * dt
                        scores[k, c, j, 0] = n_on / kon - (tk - ton)
                        scores[k, c, j, 1] = n_off / koff - ton
                        scores[k, c, j, 2] = n_syn / ksyn - ton
                        scores[k, c, j, 3] = n_deg / kdeg - (int_m + m * dt)
                    k += 1
                if k == n_times:
                    break
                t_next = times[k]
            if want_score:
                tau = t_new - t
                t_on += g * tau
                int_m += m * tau
            t = t_new
            r, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
            u = _unit(r) * a0
            if u < a_deg:
                m -= 1
                n_deg += 1
            elif g:
                if u - a_deg < ksyn:
                    m += 1
                    n_syn += 1
                else:
                    g = 0
                    n_off += 1
            else:
                g = 1
                n_on += 1
        events[c, j] = n_on + n_off + n_syn + n_deg


@njit(cache=True, inline="always")
def _mass_action(x, r_species, r_order, n_reactants, j):
    # Combinatorial mass action, h_j = prod_s C(x_s, order_s). Inlined at the
    # Numba IR level: an ordinary call passing arrays would cost
    # reference-count traffic on every event.
    hj = 1.0
    for i in range(n_reactants[j]):
        xs = x[r_species[j, i]]
        o = r_order[j, i]
        if o == 1:
            hj *= xs
        else:
            for q in range(o):
                hj *= (xs - q) / (q + 1.0)
    return hj if hj > 0.0 else 0.0


@njit(parallel=True, cache=True, error_model="numpy")
def network_paths(rates, r_species, r_order, n_reactants, c_species, c_delta,
                  n_changes, dep_ptr, dep_idx, x0, times, capture, measured, key,
                  want_score, counts, scores, events):
    """Paths of a general mass-action network, one per cell.

    Parameters
    ----------
    rates : float64[R]
        Rate constant of each reaction (per unit time, > 0).
    r_species, r_order : int64[R, L]
        Reactant species indices and their stoichiometric orders; only the
        first ``n_reactants[j]`` entries of row j are used.
    c_species, c_delta : int64[R, L2]
        Species changed by each reaction and the net change; first
        ``n_changes[j]`` entries used.
    dep_ptr, dep_idx : int64[R + 1], int64[*]
        Dependency graph (CSR): after reaction j fires, the propensities of
        reactions ``dep_idx[dep_ptr[j]:dep_ptr[j+1]]`` are recomputed.
    x0 : int64[n_cells, S]
        Initial state.
    times : float64[K]
        Non-decreasing sample times >= 0.
    capture : float64[n_cells]
        Capture efficiency in (0, 1] applied to species with ``measured[s]``.
    measured : int64[S]
        1 for species thinned by capture, 0 for species recorded exactly.
    key : uint64
        Run key; the stream of cell c comes from (key, 0, c).
    want_score : bool
        Accumulate the per-reaction path scores.
    counts : int64[K, n_cells, S]  (output)
    scores : float64[K, n_cells, R]  (output) N_j/k_j - int_0^t h_j dt.
    events : int64[n_cells]  (output)
    """
    n_cells, n_species = x0.shape
    n_reac = rates.shape[0]
    n_times = times.shape[0]
    for c in prange(n_cells):
        s0, s1, s2, s3 = _seed_stream(key, 0, c)
        x = x0[c].copy()
        h = np.empty(n_reac)
        integ = np.zeros(n_reac)
        fired = np.zeros(n_reac, dtype=np.int64)
        for j in range(n_reac):
            h[j] = _mass_action(x, r_species, r_order, n_reactants, j)
        cap = capture[c]
        t = 0.0
        k = 0
        n_ev = 0
        t_next = times[0] if n_times > 0 else np.inf
        while k < n_times:
            a0 = 0.0
            for j in range(n_reac):
                a0 += rates[j] * h[j]
            r, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
            # a0 == 0 (absorbing state) gives t_new = inf: record and stop.
            t_new = t - math.log(_unit(r)) / a0
            if t_new > t_next:
                while k < n_times and times[k] < t_new:
                    tk = times[k]
                    for s in range(n_species):
                        if measured[s] and cap < 1.0:
                            xk = 0
                            for _ in range(x[s]):
                                r, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
                                if _unit(r) < cap:
                                    xk += 1
                            counts[k, c, s] = xk
                        else:
                            counts[k, c, s] = x[s]
                    if want_score:
                        dt = tk - t
                        for j in range(n_reac):
                            scores[k, c, j] = fired[j] / rates[j] - (integ[j] + h[j] * dt)
                    k += 1
                if k == n_times:
                    break
                t_next = times[k]
            if want_score:
                tau = t_new - t
                for j in range(n_reac):
                    integ[j] += h[j] * tau
            t = t_new
            r, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
            u = _unit(r) * a0
            chosen = -1
            acc = 0.0
            for j in range(n_reac):
                acc += rates[j] * h[j]
                if u < acc:
                    chosen = j
                    break
            if chosen < 0:
                # Round-off left u at or above the last partial sum: take the
                # last reaction that can fire.
                chosen = n_reac - 1
                while h[chosen] <= 0.0:
                    chosen -= 1
            for i in range(n_changes[chosen]):
                x[c_species[chosen, i]] += c_delta[chosen, i]
            for i in range(dep_ptr[chosen], dep_ptr[chosen + 1]):
                d = dep_idx[i]
                h[d] = _mass_action(x, r_species, r_order, n_reactants, d)
            fired[chosen] += 1
            n_ev += 1
        events[c] = n_ev
