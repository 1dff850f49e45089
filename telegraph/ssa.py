"""Exact simulation of the telegraph model (Gillespie's direct method).

:func:`simulate` draws single-cell mRNA counts from the two-state model

    G_off -> G_on        k_on
    G_on  -> G_off       k_off
    G_on  -> G_on + M    k_syn
    M     -> 0           k_deg * M

with binomial capture, optionally together with the path scores
d log p(path) / d(k_on, k_off, k_syn, k_deg) that make likelihood-ratio
(REINFORCE) gradients of simulated summaries possible (docs/maths.md,
"Simulation and path scores";
:func:`telegraph.score_gradient`).

The compiled kernel runs in parallel over cells; each (gene, cell) path has its
own random stream derived from the seed, so results are identical for any
number of threads, and a run is simulated in blocks of cells (interruptible
by Ctrl-C between blocks) without changing them.
"""

from __future__ import annotations

import numbers
import time

import numpy as np
from numpy.typing import ArrayLike

from . import config
from .inputs import check_capture
from .kernels import ssa as _k
from .stationary import score_ab

__all__ = ["simulate"]

RATE_NAMES = ("k_on", "k_off", "k_syn", "k_deg")
_INITIAL = ("off", "on", "stationary")


def _kernel_array(a, dtype):
    """A C-contiguous, writable copy: Numba compiles a separate version for
    read-only arrays (e.g. pandas ``.values``), which would cost seconds."""
    return np.array(a, dtype=dtype, order="C", copy=True)


def _seed_parts(seed):
    """(uint64 kernel key, numpy Generator) from a user seed, both deterministic."""
    if isinstance(seed, np.random.Generator):
        ss = np.random.SeedSequence(seed.integers(0, 2**63, size=4).tolist())
    elif isinstance(seed, np.random.SeedSequence):
        ss = seed
    elif seed is None or isinstance(seed, (numbers.Integral, np.integer)):
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        ss = np.random.SeedSequence(None if seed is None else int(seed))
    else:
        raise TypeError("seed must be None, a non-negative int, a numpy SeedSequence "
                        f"or a numpy Generator, got {type(seed).__name__}")
    kernel_ss, numpy_ss = ss.spawn(2)
    key = np.uint64(kernel_ss.generate_state(1, np.uint64)[0])
    return key, np.random.default_rng(numpy_ss)


def _rates(k_on, k_off, k_syn, k_deg):
    """Validated per-gene rate vectors and whether the input was per gene."""
    arrs = []
    for name, v in zip(RATE_NAMES, (k_on, k_off, k_syn, k_deg)):
        a = np.asarray(v, dtype=float)
        if a.ndim > 1:
            raise ValueError(f"{name} must be a scalar or a 1-D per-gene array, "
                             f"got shape {a.shape}")
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError(f"{name} must be finite and > 0 (a rate per unit time), "
                             f"got {v!r}")
        arrs.append(a)
    per_gene = any(a.ndim == 1 for a in arrs)
    sizes = {a.shape[0] for a in arrs if a.ndim == 1}
    if len(sizes) > 1:
        raise ValueError("per-gene rate arrays must all have the same length, got lengths "
                         + ", ".join(f"{n}={a.shape[0]}" for n, a in zip(RATE_NAMES, arrs)
                                     if a.ndim == 1))
    n_genes = sizes.pop() if sizes else 1
    if n_genes == 0:
        raise ValueError("per-gene rate arrays are empty: give at least one gene")
    return [_kernel_array(np.broadcast_to(a, (n_genes,)), float) for a in arrs], per_gene


def _times(t):
    times = np.asarray(t, dtype=float)
    scalar = times.ndim == 0
    times = np.atleast_1d(times)
    if times.ndim != 1 or times.size == 0:
        raise ValueError("t must be a scalar or a non-empty 1-D array of sample times")
    if not np.all(np.isfinite(times)) or np.any(times < 0):
        raise ValueError("sample times t must be finite and >= 0 (the path starts at 0)")
    if np.any(np.diff(times) < 0):
        raise ValueError("sample times t must be sorted in increasing order")
    return _kernel_array(times, float), scalar


def _capture(capture, n_cells):
    return _kernel_array(check_capture(capture, n_cells), float)


def _n_cells(n_cells):
    if not isinstance(n_cells, (numbers.Integral, np.integer)) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}")
    return int(n_cells)


def stationary_state(k_on, k_off, k_syn, k_deg, shape, rng):
    """Exact draws of the stationary (promoter, mRNA) state.

    ``p ~ Beta(k_on/k_deg, k_off/k_deg)``, promoter on with probability p,
    ``n ~ Poisson(p k_syn/k_deg)``. Rates broadcast against ``shape``.
    Returns int64 arrays ``(g, n)`` of that shape.
    """
    a = k_on / k_deg
    b = k_off / k_deg
    lam = k_syn / k_deg
    p = rng.beta(np.broadcast_to(a, shape), np.broadcast_to(b, shape))
    g = (rng.random(shape) < p).astype(np.int64)
    n = rng.poisson(lam * p).astype(np.int64)
    return g, n


def stationary_state_score(g, n, k_on, k_off, k_syn, k_deg):
    """d log P(G0 = g, M0 = n) / d(k_on, k_off, k_syn, k_deg) at stationarity.

    Uses P(on, n) = a/(a+b) PB(n; a+1, b, lam) and
    P(off, n) = b/(a+b) PB(n; a, b+1, lam) (a = k_on/k_deg, b = k_off/k_deg,
    lam = k_syn/k_deg, PB the Poisson-Beta pmf). Derivatives are taken in
    (a, b, lam) -- the shifted arguments a+1, b+1 move one-for-one with a, b --
    and mapped to rates by the chain rule, so the k_deg component is
    -(a d_a + b d_b + lam d_lam)/k_deg. Arrays broadcast; output has a trailing
    axis of length 4.
    """
    # Parameters usually vary per gene only: number the distinct parameter
    # sets, then evaluate the Poisson-Beta score once per distinct
    # (parameter set, promoter state, n) -- many cells share one.
    prm = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                for v in (k_on, k_off, k_syn, k_deg)))
    p_shape = prm[0].shape
    table, pid = np.unique(np.stack(prm, axis=-1).reshape(-1, 4), axis=0,
                           return_inverse=True)
    pid = np.reshape(pid, p_shape)
    g = np.asarray(g)
    n = np.asarray(n)
    shape = np.broadcast_shapes(g.shape, n.shape, p_shape)
    if np.any(n < 0):
        raise ValueError("mRNA counts must be >= 0")
    top = int(np.max(n, initial=0)) + 1
    code = ((np.broadcast_to(pid, shape).astype(np.int64) * 2
             + np.broadcast_to(g, shape).astype(bool)) * top
            + np.broadcast_to(n, shape).astype(np.int64))
    uniq, inv = np.unique(code.ravel(), return_inverse=True)
    n_u = (uniq % top).astype(float)
    on = ((uniq // top) % 2).astype(bool)
    kon, koff, ksyn, kdeg = table[uniq // top // 2].T
    a = kon / kdeg
    b = koff / kdeg
    lam = ksyn / kdeg
    sc = np.asarray(score_ab(n_u, np.where(on, a + 1.0, a), np.where(on, b, b + 1.0), lam),
                    dtype=float)
    d_a = sc[:, 0] - 1.0 / (a + b) + np.where(on, 1.0 / a, 0.0)
    d_b = sc[:, 1] - 1.0 / (a + b) + np.where(on, 0.0, 1.0 / b)
    d_lam = sc[:, 2]
    out = np.stack([d_a / kdeg, d_b / kdeg, d_lam / kdeg,
                    -(a * d_a + b * d_b + lam * d_lam) / kdeg], axis=-1)
    return out[np.ravel(inv)].reshape(shape + (4,))


def _initial(initial, rates, n_cells, n_genes, per_gene, rng, score):
    shape = (n_cells, n_genes)
    init_score = None
    if isinstance(initial, str):
        if initial == "off":
            g0 = np.zeros(shape, np.int64)
            m0 = np.zeros(shape, np.int64)
        elif initial == "on":
            g0 = np.ones(shape, np.int64)
            m0 = np.zeros(shape, np.int64)
        elif initial == "stationary":
            g0, m0 = stationary_state(*rates, shape, rng)
            if score:
                init_score = stationary_state_score(g0, m0, *rates)
        else:
            raise ValueError(f"initial must be one of {_INITIAL} or a (promoter, mRNA) "
                             f"pair of arrays, got {initial!r}")
    else:
        try:
            g_in, m_in = initial
        except (TypeError, ValueError):
            raise ValueError(f"initial must be one of {_INITIAL} or a (promoter, mRNA) "
                             "pair of arrays") from None
        g_in = np.asarray(g_in)
        m_in = np.asarray(m_in)
        for name, v in (("promoter state", g_in), ("mRNA count", m_in)):
            if not np.issubdtype(v.dtype, np.integer) and not np.issubdtype(v.dtype, np.bool_):
                if not np.all(np.mod(v, 1) == 0):
                    raise ValueError(f"initial {name} must be integers")
        # Same layout as the output: (n_cells,) or (n_cells, n_genes).
        out_shape = shape if per_gene else (n_cells,)
        try:
            g0 = np.broadcast_to(g_in, out_shape).reshape(shape).astype(np.int64)
            m0 = np.broadcast_to(m_in, out_shape).reshape(shape).astype(np.int64)
        except ValueError:
            raise ValueError(f"initial arrays must broadcast to the output shape {out_shape}, "
                             f"got shapes {g_in.shape} and {m_in.shape}") from None
        if not np.all((g0 == 0) | (g0 == 1)):
            raise ValueError("initial promoter state must be 0 (off) or 1 (on)")
        if np.any(m0 < 0):
            raise ValueError("initial mRNA counts must be >= 0")
    return _kernel_array(g0, np.int64), _kernel_array(m0, np.int64), init_score


def in_cell_blocks(n_cells: int, n_genes: int, run, *, progress: bool | None = None) -> None:
    """``run(c0, c1)`` over consecutive blocks of cells covering ``0..n_cells``.

    A compiled call cannot be interrupted, so paths are simulated in blocks of
    cells sized to last about ``config.SIMULATE_BLOCK_SECONDS`` each (measured
    as the run goes): Ctrl-C stops the run between two blocks. Every path has
    its own random stream, so the blocks change nothing in the result.
    ``progress``: True shows a bar, False never; None shows one (on a
    terminal) once the rest of the run is expected to take more than
    ``config.SIMULATE_PROGRESS_SECONDS``.
    """
    size = max(1, min(n_cells, config.SIMULATE_FIRST_BLOCK_PATHS // max(1, n_genes)))
    c0 = 0
    bar = None
    try:
        while c0 < n_cells:
            c1 = min(n_cells, c0 + size)
            t0 = time.perf_counter()
            run(c0, c1)
            per_cell = (time.perf_counter() - t0) / (c1 - c0)
            if bar is not None:
                bar.update(c1 - c0)
            c0 = c1
            if c0 >= n_cells:
                break
            size = int(min(4 * size, max(1.0, config.SIMULATE_BLOCK_SECONDS
                                         / max(per_cell, 1e-12))))
            if bar is None and progress is not False and (
                    progress or (n_cells - c0) * per_cell > config.SIMULATE_PROGRESS_SECONDS):
                from tqdm.auto import tqdm
                bar = tqdm(total=n_cells, initial=c0, desc="telegraph simulate", unit="cell",
                           leave=False, disable=None if progress is None else False)
    finally:
        if bar is not None:
            bar.close()


def _run(k_on, k_off, k_syn, k_deg, *, n_cells, t, capture=1.0, seed=None,
         initial="off", score=False, progress=None):
    """Shared engine of :func:`simulate`; also returns the event counts.

    Returns ``counts (K, n_cells, n_genes)``, ``scores (K, n_cells, n_genes, 4)``
    or None, ``events (n_cells, n_genes)``, ``per_gene``, ``scalar_t``.
    """
    n_cells = _n_cells(n_cells)
    rates, per_gene = _rates(k_on, k_off, k_syn, k_deg)
    times, scalar_t = _times(t)
    cap = _capture(capture, n_cells)
    key, rng = _seed_parts(seed)
    n_genes = rates[0].shape[0]
    g0, m0, init_score = _initial(initial, rates, n_cells, n_genes, per_gene, rng, score)
    n_times = times.shape[0]
    counts = np.empty((n_times, n_cells, n_genes), np.int64)
    scores = (np.empty((n_times, n_cells, n_genes, 4)) if score
              else np.empty((0, 0, 0, 4)))
    events = np.empty((n_cells, n_genes), np.int64)

    def block(c0, c1):
        # contiguous block outputs: one compiled kernel for every call
        cb = np.empty((n_times, c1 - c0, n_genes), np.int64)
        sb = np.empty((n_times, c1 - c0, n_genes, 4)) if score else scores
        eb = np.empty((c1 - c0, n_genes), np.int64)
        _k.telegraph_paths(*rates, times, g0[c0:c1], m0[c0:c1], cap[c0:c1], key, c0,
                           bool(score), cb, sb, eb)
        counts[:, c0:c1] = cb
        if score:
            scores[:, c0:c1] = sb
        events[c0:c1] = eb

    in_cell_blocks(n_cells, n_genes, block, progress=progress)
    if score:
        if init_score is not None:
            scores += init_score[None]
    else:
        scores = None
    return counts, scores, events, per_gene, scalar_t


def simulate(k_on: ArrayLike, k_off: ArrayLike, k_syn: ArrayLike, k_deg: ArrayLike = 1.0, *,
             n_cells: int, t: ArrayLike, capture: ArrayLike = 1.0, seed=None,
             initial: str = "off", score: bool = False, progress: bool | None = None):
    """Simulate single-cell mRNA counts of the telegraph model exactly.

    Gillespie's direct method, compiled with Numba and run in parallel over
    cells. Every (gene, cell) path has its own random stream derived from
    ``seed``, so the result is the same for any number of threads.

    Parameters
    ----------
    k_on, k_off, k_syn, k_deg : float or 1-D array
        Promoter activation, inactivation, transcription (while on) and
        per-molecule mRNA degradation rates, per unit time (all > 0). With
        ``k_deg = 1`` time is measured in mRNA lifetimes and the other rates
        are in units of k_deg. Any of them may be a per-gene array (all arrays
        the same length); scalars are shared by all genes.
    n_cells : int
        Number of independent cells (paths) per gene.
    t : float or 1-D array
        Sample time(s), in the same time unit as the rates; the path starts
        at time 0. An array must be sorted; counts are then recorded along
        each path at every time (a live-cell time course; with capture < 1
        each record is thinned independently).
    capture : float or array of shape (n_cells,)
        Capture efficiency in (0, 1]: the recorded count is
        Binomial(mRNA, capture). Does not affect the path scores.
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Seed of all random draws; the same seed gives identical output.
    initial : {"off", "on", "stationary"} or (promoter, mRNA) pair of arrays
        Start state at time 0. ``"off"``/``"on"``: promoter off/on and no
        mRNA. ``"stationary"``: an exact draw from the stationary law
        (p ~ Beta(k_on/k_deg, k_off/k_deg), promoter on with probability p,
        mRNA ~ Poisson(p k_syn/k_deg)); the counts are then stationary at
        every t. A pair of integer arrays broadcastable to the output shape
        ``(n_cells,)`` or ``(n_cells, n_genes)`` gives the promoter state (0/1)
        and mRNA count of each path (a fixed start: no initial-state score).
        From ``"off"`` the law approaches stationarity only after a few
        1/min(k_deg, k_on + k_off) time units.
    score : bool
        Also return the path scores d log p(path on [0, t]) / d(k_on, k_off,
        k_syn, k_deg) (per unit of each rate's inverse). With
        ``initial="stationary"`` the score of the initial state's stationary
        probability is included, so E[score] = 0 and
        E[f(counts) score] = grad E[f(counts)].
    progress : bool or None
        Show a progress bar: None (default) for runs that turn out to take
        more than a few seconds, when stderr is a terminal; True always;
        False never. Long runs are simulated in blocks of cells, so Ctrl-C
        stops them within a fraction of a second; the result does not depend
        on the blocks.

    Returns
    -------
    counts : numpy.ndarray of int64
        Shape ``(n_cells,)`` for scalar rates and scalar ``t``;
        ``(n_cells, n_genes)`` when any rate is an array; with an array ``t``
        a leading time axis is added: ``(n_times, n_cells[, n_genes])``.
    scores : numpy.ndarray of float64, only if ``score=True``
        Shape ``counts.shape + (4,)``, last axis (k_on, k_off, k_syn, k_deg);
        entry ``[k, ...]`` is the score of the path on ``[0, t[k]]``.

    Examples
    --------
    >>> import telegraph as tg
    >>> n = tg.simulate(0.5, 2.0, 50.0, n_cells=1000, t=10.0, seed=0)
    >>> n.shape
    (1000,)
    >>> n, s = tg.simulate([0.5, 1.0], 2.0, 50.0, n_cells=100, t=[1.0, 5.0],
    ...                    seed=0, score=True)
    >>> n.shape, s.shape
    ((2, 100, 2), (2, 100, 2, 4))
    """
    counts, scores, _, per_gene, scalar_t = _run(
        k_on, k_off, k_syn, k_deg, n_cells=n_cells, t=t, capture=capture, seed=seed,
        initial=initial, score=score, progress=progress)
    if not per_gene:
        counts = counts[:, :, 0]
        if scores is not None:
            scores = scores[:, :, 0]
    if scalar_t:
        counts = counts[0]
        if scores is not None:
            scores = scores[0]
    return (counts, scores) if score else counts
