"""Two species per gene: the exact joint law of unspliced and spliced counts.

The telegraph model with splicing (docs/maths.md, "Two species: unspliced and
spliced"): the promoter switches off -> on at ``k_on`` and back at ``k_off``,
makes unspliced molecules U at ``k_syn`` while on, each U is spliced into a
spliced molecule S at ``k_splice`` and each S degrades at ``k_deg``. Each cell's
counts are binomial samples of its molecules, with one capture efficiency for
both species or one per species.

Given the promoter path, U and S are independent Poisson variables whose means
are linear filters of the path; so capture only rescales k_syn, the marginal of
U is the one-species Poisson-Beta law in units of k_splice
(:func:`telegraph.logpmf` with k_deg = k_splice), and the joint law is that of
the chemical master equation of (promoter, U, S). That equation is solved
exactly on a lattice box chosen adaptively from tail bounds, by state reduction
in nested-dissection order (:mod:`telegraph.kernels.joint`): every probability
has a small *relative* error however far in the tail, and the scores and the
observed information are exact sensitivities of the same linear system (no
numerical differentiation).

Public functions broadcast like ``scipy.stats`` distributions and like
:func:`telegraph.logpmf`: invalid parameters give NaN, impossible counts
(negative or non-integer) ``-inf`` for :func:`joint_logpmf`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln

from . import config
from .inputs import capture_in_range, check_capture
from .kernels import joint as _k
from .stationary import logpmf_ab

__all__ = ["joint_logpmf", "joint_pmf", "joint_score", "joint_information",
           "joint_table", "joint_histogram_loglik", "dissection", "lattice_box",
           "evaluate_bins", "thinning_plan", "RATES"]

#: the five rates, in the order of the last axis of :func:`joint_score`
RATES = ("k_on", "k_off", "k_syn", "k_deg", "k_splice")


# ---------------------------------------------------------------------------
# the dissection tree of a box (depends on its shape only)
# ---------------------------------------------------------------------------

#: (a gene's evaluations reuse a dozen or so; a heavy box's tree is ~2 MB, so a cache of
#: 1,024 grew by hundreds of MB over a long run)
@lru_cache(maxsize=128)
def dissection(nu: int, ns: int, ref: tuple[int, int] | None = None, leaf: int = 24):
    """Nested-dissection elimination tree of an ``nu`` x ``ns`` lattice box.

    Returns the arrays :func:`telegraph.kernels.joint.factorize` takes:
    ``(fptr, fr, nel, kid, own)`` (see that module). The box is cut
    recursively across its longer side by a line of lattice points (every
    transition moves u and s by at most one, so the line separates the two
    halves); a node's front is its own points plus what its children leave
    uneliminated, and it eliminates the points that no longer touch anything
    outside its rectangle.

    ``ref = (i, j)``: the first cut passes through this lattice point (offsets
    in the box) and its two states are the last of the root front -- the
    reference state of the sensitivity solves, which must be probable (the
    mode of the law), as must every separator next to the probable region.
    Default: the centre.
    """
    ri, rj = (nu // 2, ns // 2) if ref is None else (int(ref[0]), int(ref[1]))
    out = _k.dissect(int(nu), int(ns), ri, rj, int(leaf))
    for arr in out:
        arr.flags.writeable = False
    return out


# ---------------------------------------------------------------------------
# the box: marginal tail bounds
# ---------------------------------------------------------------------------

def _log_mgf_beta(t, A, B):
    """log E[exp(t p)], p ~ Beta(A, B), through the Poisson-Beta law at zero:
    E[exp(-x p)] = PB(0; A, B, x) and E[exp(t p)] = e^t E[exp(-t (1 - p))]."""
    t = np.asarray(t, dtype=float)
    out = np.zeros_like(t)
    pos = t > 0
    neg = t < 0
    if pos.any():
        out[pos] = t[pos] + logpmf_ab(0, B, A, t[pos])
    if neg.any():
        out[neg] = logpmf_ab(0, A, B, -t[neg])
    return out


class _SpliceTail:
    """Chernoff bounds on the tails of S (at capture 1 of the box's lam).

    Given the path, S is Poisson(X p_S) with X = lam/gam and p_S in [0, 1] the
    splicing-then-degradation filter of the promoter path. p_S is an average
    over the past both of p_U ~ Beta(a, b) (the splicing filter) and of
    p_gamma ~ Beta(a/gam, b/gam) (the degradation filter), so by Jensen's
    inequality E[exp(t p_S)] is at most either one's Beta moment generating
    function; then P(S >= n) <= min over theta > 0 of E[exp(theta S)] e^(-theta n)
    and likewise below.
    """

    def __init__(self, a, b, lam, gam):
        self.X = lam / gam
        self.ab = (a, b, a / gam, b / gam)
        self._grids = {}

    def _lmgf(self, theta):
        t = self.X * np.expm1(theta)
        a, b, a2, b2 = self.ab
        return np.minimum(_log_mgf_beta(t, a, b), _log_mgf_beta(t, a2, b2))

    def _grid(self, th_max):
        """theta grid up to th_max and the log MGF on it (kept: the bounds are
        asked for many n while a box is searched)."""
        if th_max not in self._grids:
            th = np.sign(th_max) * np.geomspace(1e-7, abs(th_max), 240)
            self._grids[th_max] = (th, self._lmgf(th))
        return self._grids[th_max]

    def upper(self, n):
        n = np.atleast_1d(np.asarray(n, dtype=float))
        th_max = max(1.0, math.log1p(50.0 * (n.max() + 10.0) / self.X))
        # rounded up to a power of two, so that one grid serves many n (any theta
        # gives a valid bound)
        th, lm = self._grid(2.0 ** math.ceil(math.log2(th_max)))
        return np.minimum(0.0, np.min(lm[:, None] - th[:, None] * n[None, :], axis=0))

    def lower(self, n):
        n = np.atleast_1d(np.asarray(n, dtype=float))
        th, lm = self._grid(-60.0)
        return np.minimum(0.0, np.min(lm[:, None] - th[:, None] * n[None, :], axis=0))


def _first_below_up(f, n0, level, step):
    """Smallest n >= n0 with f(n) < level, assuming f decreases beyond n0."""
    n0 = int(n0)
    if f(n0)[0] < level:
        return n0
    step = max(1, int(step))
    lo = n0
    while True:
        hi = lo + step
        if f(hi)[0] < level:
            break
        lo = hi
        step *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if f(mid)[0] < level:
            hi = mid
        else:
            lo = mid
    return hi


def _first_below_down(f, n0, level, step):
    """Largest n <= n0 with f(n) < level (0 if there is none), assuming f
    increases from 0 to n0."""
    n0 = int(n0)
    if n0 <= 0:
        return 0
    if f(n0)[0] < level:
        return n0
    step = max(1, int(step))
    hi = n0
    while True:
        lo = hi - step
        if lo <= 0:
            if f(0)[0] >= level:
                return 0
            lo = 0
            break
        if f(lo)[0] < level:
            break
        hi = lo
        step *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if f(mid)[0] < level:
            lo = mid
        else:
            hi = mid
    return lo


class _Marginals:
    """Tail functions of the two species' marginal laws (at the box's lam):
    the exact unspliced log pmf (Poisson-Beta in units of k_splice) and the
    Chernoff bounds of the spliced tails (:class:`_SpliceTail`)."""

    def __init__(self, a, b, lam, gam):
        self.a, self.b, self.lam = a, b, lam
        self.mean_u = lam * a / (a + b)
        self.sd_u = math.sqrt(self.mean_u + lam * lam * a * b / ((a + b) ** 2 * (a + b + 1.0)))
        self.st = _SpliceTail(a, b, lam, gam)
        self.mean_s = lam / gam * a / (a + b)
        self.sd_s = math.sqrt(self.mean_s + (lam / gam) ** 2 * a * b
                              / ((a + b) ** 2 * (a + b + 1.0)))

    def fu(self, n):
        return np.atleast_1d(logpmf_ab(np.asarray(n, float), self.a, self.b, self.lam))

    def fs(self, n):
        """A bound of log P(S = n): the Chernoff bound of the tail n lies in."""
        n = np.atleast_1d(np.asarray(n, float))
        return np.where(n >= self.mean_s, self.st.upper(n), self.st.lower(n))

    def edges(self, level):
        """(u_lo, u_hi, s_lo, s_hi) where the marginals fall below exp(level)."""
        u_hi = _first_below_up(self.fu, math.ceil(self.mean_u + 3 * self.sd_u), level,
                               self.sd_u)
        u_lo = _first_below_down(self.fu, math.floor(self.mean_u - 3 * self.sd_u), level,
                                 self.sd_u)
        s_hi = _first_below_up(self.st.upper, math.ceil(self.mean_s + 3 * self.sd_s), level,
                               self.sd_s)
        s_lo = _first_below_down(self.st.lower, math.floor(self.mean_s - 3 * self.sd_s), level,
                                 self.sd_s)
        return u_lo, u_hi, s_lo, s_hi


def lattice_box(a: float, b: float, lam: float, gam: float, u_req=None, s_req=None,
                tail: float | None = None, margin: float | None = None):
    """The lattice box ``(u_lo, nu, s_lo, ns)`` of the truncated master equation.

    Parameters
    ----------
    a, b, lam, gam : float
        k_on, k_off, capture * k_syn and k_deg in units of k_splice.
    u_req, s_req : int arrays, optional
        Requested (unspliced, spliced) counts, as pairs. The box holds them,
        with its edges ``margin`` nats below the least probable of them
        (estimated as the product of the marginals).
    tail, margin : float, optional
        Default :data:`telegraph.config.JOINT_TAIL`, ``JOINT_MARGIN``.

    Returns
    -------
    (u_lo, nu, s_lo, ns) : the box is u in [u_lo, u_lo + nu), s in [s_lo, s_lo + ns).

    Notes
    -----
    The unspliced edges are where the exact marginal (Poisson-Beta in units of
    k_splice) falls below the level, the spliced edges where a Chernoff bound
    of its tail does (see :class:`_SpliceTail`); every state left out is at
    most that probable.
    """
    tail = config.JOINT_TAIL if tail is None else tail
    margin = config.JOINT_MARGIN if margin is None else margin
    mg = _Marginals(a, b, lam, gam)
    level = -tail
    if u_req is not None and len(u_req):
        u_req = np.asarray(u_req)
        s_req = np.asarray(s_req)
        level = min(level, float(np.min(mg.fu(u_req) + mg.fs(s_req))) - margin)
    u_lo, u_hi, s_lo, s_hi = mg.edges(level)
    if u_req is not None and len(u_req):
        u_lo = min(u_lo, int(u_req.min()))
        u_hi = max(u_hi, int(u_req.max()) + 1)
        s_lo = min(s_lo, int(s_req.min()))
        s_hi = max(s_hi, int(s_req.max()) + 1)
    u_hi = max(u_hi, u_lo + 1)
    s_hi = max(s_hi, s_lo + 1)
    return u_lo, u_hi - u_lo + 1, s_lo, s_hi - s_lo + 1


def _extended(box, grow, deficit, mg):
    """The box with each edge flagged in ``grow`` moved out to where its
    marginal has fallen ``deficit + 3`` nats further."""
    u_lo, nu, s_lo, ns = box
    u_hi, s_hi = u_lo + nu - 1, s_lo + ns - 1
    d = deficit + 3.0
    if grow[0]:
        u_lo = _first_below_down(mg.fu, u_lo, mg.fu(u_lo)[0] - d, max(1, nu // 4))
    if grow[1]:
        u_hi = _first_below_up(mg.fu, u_hi, mg.fu(u_hi)[0] - d, max(1, nu // 4))
    if grow[2]:
        s_lo = _first_below_down(mg.st.lower, s_lo, mg.st.lower(s_lo)[0] - d, max(1, ns // 4))
    if grow[3]:
        s_hi = _first_below_up(mg.st.upper, s_hi, mg.st.upper(s_hi)[0] - d, max(1, ns // 4))
    return u_lo, u_hi - u_lo + 1, s_lo, s_hi - s_lo + 1


# ---------------------------------------------------------------------------
# one parameter set, many bins
# ---------------------------------------------------------------------------

class BoxTooLarge(ValueError):
    """The lattice box exceeds the allowed number of points."""


def _check_box_size(nu, ns, max_points=None):
    if max_points is not None and nu * ns > max_points:
        raise BoxTooLarge(f"lattice of {nu} x {ns} points exceeds the budget of {max_points}")
    if nu * ns > config.JOINT_MAX_POINTS:
        raise ValueError(
            f"the joint law needs a lattice of {nu} x {ns} (unspliced x spliced) counts, more "
            f"than telegraph.config.JOINT_MAX_POINTS = {config.JOINT_MAX_POINTS}; such "
            "counts (means of thousands of molecules) are outside what the exact "
            "two-species likelihood is built for. Raise JOINT_MAX_POINTS if you have the "
            "memory (the elimination needs roughly 10 kB per lattice point at this size)")


def _least_requested(logpi, box, req_u, req_s):
    """Smallest log P (promoter summed) over the requested table-level counts
    inside the box (0 when none is inside)."""
    u_lo, nu, s_lo, ns = box
    i = req_u - u_lo
    j = req_s - s_lo
    ok = (i >= 0) & (i < nu) & (j >= 0) & (j < ns)
    if not ok.any():
        return 0.0
    st = 2 * (j[ok] * nu + i[ok])
    return float(np.min(np.logaddexp(logpi[st], logpi[st + 1])))


def _mode_guess(a, b, lam, gam, box):
    """Lattice offsets of a probable point: the mode u* of the unspliced
    marginal and s* = u* k_splice/k_deg (the spliced count that u* unspliced
    molecules feed at steady state), clipped to the box."""
    u_lo, nu, s_lo, ns = box
    uu = np.arange(u_lo, u_lo + nu, dtype=float)
    u_star = float(uu[np.argmax(logpmf_ab(uu, a, b, lam))])
    s_star = u_star / gam
    return (int(np.clip(round(u_star) - u_lo, 0, nu - 1)),
            int(np.clip(round(s_star) - s_lo, 0, ns - 1)))


def evaluate_bins(a: float, b: float, lam: float, gam: float, u, s, rho_u=None, rho_s=None,
                  want: int = 0, box=None, start_box=None, max_points=None,
                  tail: float | None = None, plan=None, trim: float | None = None,
                  work: dict | None = None, edge_margin: float | None = None,
                  bin_margin: bool = False):
    """Per-bin log P, score and observed information for one parameter set.

    Parameters
    ----------
    a, b, lam, gam : float
        k_on, k_off, capture * k_syn, k_deg in units of k_splice (lam at the
        reference capture of the table).
    u, s : int arrays (m,)
        Unspliced and spliced counts of each bin.
    rho_u, rho_s : float arrays (m,), optional
        Binomial thinning of each bin's counts relative to the reference
        capture (capture of the bin / reference capture, in (0, 1]); default 1.
    want : {0, 1, 2}
        0: log P; 1: and the score; 2: and the observed information.
    box : (u_lo, nu, s_lo, ns), optional
        A fixed lattice box (no adaptation). Default: :func:`lattice_box` for
        the requested counts, then checked after solving: an edge that is not
        :data:`telegraph.config.JOINT_EDGE_MARGIN` nats below the least probable
        requested count (or not below exp(-JOINT_TAIL + 5)) is moved out and the
        law solved again.
    start_box : (u_lo, nu, s_lo, ns), optional
        Without ``box``: start the adaptation from this box (e.g. the one used
        at nearby parameters) instead of :func:`lattice_box`; it is extended to
        hold the requested counts and grown by the same check.
    max_points : int, optional
        Raise :class:`BoxTooLarge` instead of solving on a larger lattice
        (a fit's optimiser treats such parameters as out of reach).
    tail : float, optional
        The normalisation tail of the box (default
        :data:`telegraph.config.JOINT_TAIL`): every truncating edge lies below
        exp(-tail + 5) (and the margin below the requested counts).
    plan : optional
        :func:`thinning_plan` of these bins (computed here when not given).
    trim : float, optional
        Without ``box``: return, instead of the box used, that box trimmed on
        each side to where the solved law falls ``trim`` nats below the depth
        its edges must reach -- the ``start_box`` for the next evaluation at
        nearby parameters (a fit's boxes otherwise only grow).

    edge_margin : float, optional
        How many nats below the least probable requested count every truncating
        edge must lie (default :data:`telegraph.config.JOINT_EDGE_MARGIN`; a fit
        passes ``JOINT_FIT_EDGE_MARGIN``).
    bin_margin : bool
        Without ``box``: ask for the edge margin below the least probable bin
        itself -- its thinned probability where rho < 1, from the solved law --
        instead of below the table at the counts it draws on most (count / rho,
        which lies deeper in the tail than the thinned bin: a bin of 20
        molecules at rho = 0.4 asked the table for 50), and start from a box
        that holds the bins' own counts. Thinning sums the table over counts
        from the bin's upwards with binomial weights at most 1, so what the
        edges leave out moves a bin's probability by about as much as it moves
        an unthinned one's that probable: the same accuracy. A fit passes True.
    work : dict, optional
        Scratch space kept between calls (a fit passes the same dict at every
        evaluation of a gene, on one thread): the elimination's front matrices
        are written to the buffer it holds, grown when a larger box needs more;
        ``work["tables"]`` is then (parameters, box, count tables, their log
        scale) of the law solved (:func:`telegraph.kernels.joint.count_tables`).

    Returns
    -------
    rows : :class:`telegraph.kernels.joint.JointRows`
        Per bin: ``logp``, ``score`` and ``info`` in (a, b, lam, gam).
    box : the lattice box used (trimmed, with ``trim``).

    Notes
    -----
    The first cut of the dissection passes through a probable point, whose
    state is the reference of the sensitivity solves; if the solved law shows
    a node that eliminates states much more probable than everything it keeps
    (:func:`telegraph.kernels.joint.trap_depth` above
    :data:`telegraph.config.JOINT_TRAP`), the tree is rebuilt through the
    most probable state and the law solved again.
    """
    u = np.ascontiguousarray(u, dtype=np.int64).ravel()
    s = np.ascontiguousarray(s, dtype=np.int64).ravel()
    m = u.shape[0]
    rho_u = np.ones(m) if rho_u is None else np.ascontiguousarray(rho_u, dtype=float).ravel()
    rho_s = np.ones(m) if rho_s is None else np.ascontiguousarray(rho_s, dtype=float).ravel()
    par = np.array([a, b, lam, gam], dtype=float)
    out = np.zeros((m, _k.N_ROW))
    if m == 0:
        return _k.JointRows(out), box
    adapt = box is None
    edge_margin = config.JOINT_EDGE_MARGIN if edge_margin is None else edge_margin
    # the table-level counts a bin draws on most: its own counts, or about
    # count / rho under thinning
    req_u = np.rint(u / rho_u).astype(np.int64)
    req_s = np.rint(s / rho_s).astype(np.int64)
    mg = _Marginals(a, b, lam, gam)
    if adapt and start_box is not None:
        # a box from nearby parameters, holding the requested counts; the check
        # below grows it wherever its edges are not deep enough
        lo_u = min(start_box[0], int(u.min()))
        lo_s = min(start_box[2], int(s.min()))
        hold_u, hold_s = (u, s) if bin_margin else (req_u, req_s)
        hi_u = max(start_box[0] + start_box[1], int(max(u.max(), hold_u.max())) + 2)
        hi_s = max(start_box[2] + start_box[3], int(max(s.max(), hold_s.max())) + 2)
        box = (lo_u, hi_u - lo_u, lo_s, hi_s - lo_s)
    elif adapt:
        pairs = np.unique(np.stack([np.concatenate([req_u, u]), np.concatenate([req_s, s])]),
                          axis=1)
        # the a priori box asks for the margin the check below asks for (more only cost a
        # larger solve: the check grows the box wherever it falls short)
        box = lattice_box(a, b, lam, gam, pairs[0], pairs[1], tail=tail, margin=edge_margin)
    ref = None
    for _ in range(10):
        u_lo, nu, s_lo, ns = box
        _check_box_size(nu, ns, max_points)
        if ref is None:
            ref = _mode_guess(a, b, lam, gam, box)
        tree = dissection(nu, ns, ref)
        buf = _NO_WORK
        if work is not None:
            need = int(_k.pool_size(tree[0]))
            buf = work.get("pool", _NO_WORK)
            if buf.shape[0] < need:
                buf = work["pool"] = np.empty(need + need // 4)
        pool, fac_ptr, piv, status, logpi, depth, mi, mj, edges = _k.factor_stationary(
            *tree, u_lo, nu, s_lo, ns, par, buf)
        grow = [False] * 4
        rows_done = False
        if adapt:
            # edges below exp(-limit): the stricter of the normalisation's tail and
            # the margin under the least probable requested count (or bin)
            if bin_margin:
                # the bins' rows now (kept if the box passes: the usual case)
                Y, top = _k.derive_tables(tree[0], tree[1], tree[2], pool, fac_ptr, piv,
                                          logpi, u_lo, nu, s_lo, ns, int(want))
                _bins_from_tables(Y, top, box, u, s, rho_u, rho_s, int(want), out, plan)
                rows_done = True
                lp = out[:, 0]
                fin = np.isfinite(lp)
                least = min(float(np.min(lp[fin])), 0.0) if fin.any() else 0.0
            else:
                least = _least_requested(logpi, box, req_u, req_s)
            limit = max((config.JOINT_TAIL if tail is None else tail) - 5.0,
                        edge_margin - least)
            # truncating edges only (a lower edge at 0 is the natural boundary)
            grow = [u_lo > 0 and edges[0] > -limit, edges[1] > -limit,
                    s_lo > 0 and edges[2] > -limit, edges[3] > -limit]
        if any(grow):
            deficit = float(np.max(edges[np.array(grow)])) + limit
            box2 = _extended(box, grow, deficit, mg)
            ref = (mi + box[0] - box2[0], mj + box[2] - box2[2])
            box = box2
            continue
        if want >= 1 and depth > config.JOINT_TRAP and ref != (mi, mj):
            ref = (mi, mj)
            continue
        break
    if not rows_done:
        Y, top = _k.derive_tables(tree[0], tree[1], tree[2], pool, fac_ptr, piv, logpi, u_lo,
                                  nu, s_lo, ns, int(want))
        _bins_from_tables(Y, top, box, u, s, rho_u, rho_s, int(want), out, plan)
    if work is not None:
        # the law just solved, for a caller that wants its tables (a fit's goodness of
        # fit at the estimate): parameters, box, count tables and their scale
        work["tables"] = (par, tuple(int(x) for x in box), Y, top)
    if adapt and trim is not None:
        box = _trimmed(logpi, box, limit + trim)
    return _k.JointRows(out), box


#: an empty scratch buffer: factorize allocates its own pool
_NO_WORK = np.empty(0)


def law_tables(a: float, b: float, lam: float, gam: float, box, want: int = 1):
    """The law on a fixed lattice box as count tables (promoter summed out):
    ``(Y, top)`` of :func:`telegraph.kernels.joint.count_tables` -- ``Y[0]`` the
    probabilities, ``Y[1:5]`` their derivatives in (a, b, lam, gam) with ``want``
    >= 1, all times exp(-top) -- solved as :func:`evaluate_bins` solves a fixed
    box (the dissection re-rooted at the most probable state where the first
    root was a trap for the sensitivities)."""
    u_lo, nu, s_lo, ns = box
    par = np.array([a, b, lam, gam], dtype=float)
    ref = _mode_guess(a, b, lam, gam, box)
    for _ in range(2):
        tree = dissection(nu, ns, ref)
        pool, fac_ptr, piv, status, logpi, depth, mi, mj, edges = _k.factor_stationary(
            *tree, u_lo, nu, s_lo, ns, par, _NO_WORK)
        if want >= 1 and depth > config.JOINT_TRAP and ref != (mi, mj):
            ref = (mi, mj)
            continue
        break
    return _k.derive_tables(tree[0], tree[1], tree[2], pool, fac_ptr, piv, logpi, u_lo, nu,
                            s_lo, ns, int(want))


def thinned_tables(Y, box, rho_u: float, rho_s: float):
    """The count tables ``Y`` (``(q, nu, ns)`` over ``box``) binomially thinned by
    ``rho_u`` and ``rho_s``, at the same lattice points: B_u Y B_s^T for each
    table (positive sums; what thins out below the box's lower corner is left
    out, as it is of :func:`evaluate_bins`' bins there)."""
    u_lo, nu, s_lo, ns = box
    T = Y
    if rho_u < 1.0:
        T = np.matmul(_binom_matrix(np.arange(u_lo, u_lo + nu), u_lo, nu, rho_u)[None], T)
    if rho_s < 1.0:
        T = np.matmul(T, _binom_matrix(np.arange(s_lo, s_lo + ns), s_lo, ns, rho_s).T[None])
    return T


def _trimmed(logpi, box, depth):
    """The box cut down on each side to the first row or column (counted from the
    mode outwards) whose largest log P is below ``-depth``: the start of the next
    evaluation at nearby parameters (which grows it again wherever its edges are
    not deep enough). Boxes grow by a priori marginal bounds, which overshoot
    (the spliced one by tens of nats); without trimming a fit's boxes only grow."""
    u_lo, nu, s_lo, ns = box
    lp = logpi.reshape(ns, nu, 2).max(axis=2)
    ku = np.flatnonzero(lp.max(axis=0) > -depth)
    ks = np.flatnonzero(lp.max(axis=1) > -depth)
    if ku.size == 0 or ks.size == 0:
        return box
    i0, i1 = max(int(ku[0]) - 1, 0), min(int(ku[-1]) + 1, nu - 1)
    j0, j1 = max(int(ks[0]) - 1, 0), min(int(ks[-1]) + 1, ns - 1)
    return u_lo + i0, i1 - i0 + 1, s_lo + j0, j1 - j0 + 1


def _log_binom_matrix(counts, n_lo, n_count, rho):
    """B[k, n] = Binomial(counts[k]; n_lo + n, rho) (rho < 1); the matrices of
    the last few (counts, box, rho) are kept (a fit asks for the same ones at
    every step)."""
    counts = np.asarray(counts, dtype=np.int64)
    return _binom_cached(counts.tobytes(), int(n_lo), int(n_count), float(rho))


@lru_cache(maxsize=512)
def _binom_cached(key, n_lo, n_count, rho):
    counts = np.frombuffer(key, dtype=np.int64)
    out = _binom_matrix(counts, n_lo, n_count, rho)
    out.flags.writeable = False
    return out


def _binom_matrix(counts, n_lo, n_count, rho):
    n = np.arange(n_lo, n_lo + n_count, dtype=float)[None, :]
    k = np.asarray(counts, dtype=float)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        lb = (gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + k * math.log(rho)
              + (n - k) * math.log1p(-rho))
    return np.where(n >= k, np.exp(lb), 0.0)


def thinning_plan(u, s, rho_u, rho_s):
    """How :func:`_bins_from_tables` thins the count tables for these bins: the
    bins grouped by their pair of thinning ratios, with each group's distinct
    unspliced and spliced counts. It depends on the bins only, so a fit that
    evaluates the same bins at many parameter sets computes it once (the
    ``plan`` argument of :func:`evaluate_bins`)."""
    u = np.asarray(u, dtype=np.int64).ravel()
    s = np.asarray(s, dtype=np.int64).ravel()
    ratios, grp = np.unique(np.stack([np.asarray(rho_u, float).ravel(),
                                      np.asarray(rho_s, float).ravel()], axis=1),
                            axis=0, return_inverse=True)
    grp = grp.ravel()
    order = np.argsort(grp, kind="stable")
    bounds = np.searchsorted(grp[order], np.arange(ratios.shape[0] + 1))
    plan = []
    for r, (ru, rs) in enumerate(ratios):
        sel = order[bounds[r]:bounds[r + 1]]
        uk, ui = np.unique(u[sel], return_inverse=True)
        sk, si = np.unique(s[sel], return_inverse=True)
        plan.append((sel, float(ru), float(rs), uk, ui.ravel(), sk, si.ravel()))
    return plan


def _bins_from_tables(Y, top, box, u, s, rho_u, rho_s, want, out, plan=None):
    """Per-bin rows from the count tables: thinned by (rho_u, rho_s) per bin, as
    B_u Y B_s^T (positive binomial matrices) for each distinct pair of ratios."""
    u_lo, nu, s_lo, ns = box
    m = u.shape[0]
    out[:] = np.nan
    inside = (u >= u_lo) & (u < u_lo + nu) & (s >= s_lo) & (s < s_lo + ns)
    if plan is None:
        plan = thinning_plan(u, s, rho_u, rho_s)
    q = Y.shape[0]
    T = np.zeros((q, m))
    for sel, ru, rs, uk, ui, sk, si in plan:
        if not inside[sel].all():
            sel = sel[inside[sel]]
            if sel.size == 0:
                continue
            uk, ui = np.unique(u[sel], return_inverse=True)
            sk, si = np.unique(s[sel], return_inverse=True)
            ui, si = ui.ravel(), si.ravel()
        if ru >= 1.0 and rs >= 1.0:
            T[:, sel] = Y[:, u[sel] - u_lo, s[sel] - s_lo]
            continue
        if ru >= 1.0:
            right = Y[:, uk - u_lo, :]                                   # (q, n_u, ns)
        else:
            Bu = _log_binom_matrix(uk, u_lo, nu, ru)                     # (n_u, nu)
            right = np.matmul(Bu[None, :, :], Y)                         # (q, n_u, ns)
        if rs >= 1.0:
            thinned = right[:, :, sk - s_lo]                             # (q, n_u, n_s)
        else:
            Bs = _log_binom_matrix(sk, s_lo, ns, rs)                     # (n_s, ns)
            n_u = right.shape[1]
            thinned = (right.reshape(q * n_u, ns) @ Bs.T).reshape(q, n_u, Bs.shape[0])
        T[:, sel] = thinned[:, ui, si]
    ok = inside & (T[0] > 0)
    with np.errstate(divide="ignore"):
        out[inside, 0] = np.log(T[0, inside]) + top
    if want >= 1:
        sc = T[1:1 + _k.N_PAR, ok] / T[0, ok]
        out[ok, 1:1 + _k.N_PAR] = sc.T
    if want >= 2:
        d2 = T[1 + _k.N_PAR:, ok] / T[0, ok]
        for q, (i, j) in enumerate(_k.PAIRS):
            out[ok, 1 + _k.N_PAR + q] = sc[i] * sc[j] - d2[q]


def joint_table(k_on, k_off, k_syn, k_deg, *, k_splice=1.0, capture=1.0, box=None,
                tail: float = 66.0):
    """The joint law over a lattice box, as a table.

    Parameters
    ----------
    k_on, k_off, k_syn, k_deg, k_splice : float
        Rates per unit time (in units of ``k_splice`` by default).
    capture : float
        Capture efficiency of both species, in (0, 1].
    box : (u_lo, nu, s_lo, ns), optional
        Lattice box; default :func:`lattice_box` with marginal tails ``tail``.
    tail : float
        Without ``box``: the box ends where the marginal tails fall below
        exp(-tail). Entries more than ~16 nats above that are exact to 1e-6
        in log P (default 66: every entry with log P > -50).

    Returns
    -------
    logp : ndarray (nu, ns)
        log P(U = u_lo + i, S = s_lo + j).
    box : (u_lo, nu, s_lo, ns)
    """
    a, b, gam = k_on / k_splice, k_off / k_splice, k_deg / k_splice
    lam = check_capture(capture).item() * k_syn / k_splice
    if box is None:
        box = lattice_box(a, b, lam, gam, tail=tail)
    u_lo, nu, s_lo, ns = box
    uu, ss = np.meshgrid(np.arange(u_lo, u_lo + nu), np.arange(s_lo, s_lo + ns), indexing="ij")
    rows, box = evaluate_bins(a, b, lam, gam, uu.ravel(), ss.ravel(), box=box)
    return np.array(rows.logp).reshape(nu, ns), box


# ---------------------------------------------------------------------------
# the public, broadcasting functions
# ---------------------------------------------------------------------------

def _prepare(u, s, k_on, k_off, k_syn, k_deg, k_splice, capture, capture_unspliced):
    """Broadcast and validate; dimensionless parameters per element."""
    if capture_unspliced is None:
        capture_unspliced = capture
    arrs = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in
                                 (u, s, k_on, k_off, k_syn, k_deg, k_splice, capture,
                                  capture_unspliced)))
    shape = arrs[0].shape
    u, s, kon, koff, ksyn, kdeg, kspl, cs, cu = (x.ravel() for x in arrs)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok_par = np.ones(u.shape, bool)
        for r in (kon, koff, ksyn, kdeg, kspl):
            ok_par &= np.isfinite(r) & (r > 0)
        ok_par &= capture_in_range(cs) & capture_in_range(cu)
        ok_n = (np.isfinite(u) & (u >= 0) & (u == np.floor(u)) & np.isfinite(s) & (s >= 0)
                & (s == np.floor(s)))
        c_ref = np.maximum(cs, cu)
        pars = dict(a=kon / kspl, b=koff / kspl, lam=c_ref * ksyn / kspl, gam=kdeg / kspl,
                    rho_u=cu / c_ref, rho_s=cs / c_ref, c_ref=c_ref, k_splice=kspl)
    return shape, u, s, ok_par, ok_n, pars


def _evaluate(u, s, k_on, k_off, k_syn, k_deg, k_splice, capture, capture_unspliced, want):
    shape, u, s, ok_par, ok_n, p = _prepare(u, s, k_on, k_off, k_syn, k_deg, k_splice,
                                            capture, capture_unspliced)
    n = u.shape[0]
    res = np.full((n, _k.N_ROW), np.nan)
    good = ok_par & ok_n
    if good.any():
        idx = np.flatnonzero(good)
        key = np.stack([p["a"][idx], p["b"][idx], p["lam"][idx], p["gam"][idx]], axis=1)
        uniq, inv = np.unique(key, axis=0, return_inverse=True)
        inv = inv.ravel()
        for g in range(uniq.shape[0]):
            sel = idx[inv == g]
            bins = np.stack([u[sel], s[sel], p["rho_u"][sel], p["rho_s"][sel]], axis=1)
            ub, binv = np.unique(bins, axis=0, return_inverse=True)
            rows, _ = evaluate_bins(*uniq[g], ub[:, 0].astype(np.int64),
                                    ub[:, 1].astype(np.int64), ub[:, 2], ub[:, 3], want)
            res[sel] = rows._raw[binv.ravel()]
    return shape, res, ok_par, ok_n, p


def _to_rates(score, info, p):
    """Scores and informations in (a, b, lam, gam) -> in the five rates
    (k_on, k_off, k_syn, k_deg, k_splice)."""
    beta = p["k_splice"]
    theta = np.stack([p["a"], p["b"], p["lam"], p["gam"]], axis=1)
    n = score.shape[0]
    J = np.zeros((n, 4, 5))
    for i in range(4):
        J[:, i, i] = 1.0 / beta
        J[:, i, 4] = -theta[:, i] / beta
    J[:, 2, 2] = p["c_ref"] / beta
    s5 = np.einsum("nij,ni->nj", J, score)
    if info is None:
        return s5, None
    I5 = np.einsum("nij,nik,nkl->njl", J, info, J)
    # minus sum_i score_i * d2 theta_i: theta_i = r_i / beta (times c for lam)
    for i in range(4):
        r = 2 if i == 2 else i
        d_rb = -J[:, i, r] / beta            # d2 theta_i / d r_i d beta
        d_bb = 2.0 * theta[:, i] / beta ** 2
        I5[:, r, 4] -= score[:, i] * d_rb
        I5[:, 4, r] -= score[:, i] * d_rb
        I5[:, 4, 4] -= score[:, i] * d_bb
    return s5, I5


_PARAMS_DOC = """
    u, s : array_like
        Unspliced and spliced counts (non-negative integers).
    k_on : array_like
        Promoter activation rate (burst frequency), per unit time.
    k_off : array_like
        Promoter inactivation rate, per unit time.
    k_syn : array_like
        Transcription rate while the promoter is on (unspliced molecules per unit time).
    k_deg : array_like
        Degradation rate of spliced molecules, per unit time.
    k_splice : array_like, default 1
        Splicing rate (each unspliced molecule becomes spliced at this rate), per
        unit time. With the default, all rates are in units of k_splice.
    capture : array_like, default 1
        Capture efficiency in (0, 1] of spliced molecules, and of unspliced ones
        unless ``capture_unspliced`` is given: each molecule is counted
        independently with this probability.
    capture_unspliced : array_like, optional
        Capture efficiency of unspliced molecules when it differs."""


def joint_logpmf(u: ArrayLike, s: ArrayLike, k_on: ArrayLike, k_off: ArrayLike,
                 k_syn: ArrayLike, k_deg: ArrayLike, *, k_splice: ArrayLike = 1.0,
                 capture: ArrayLike = 1.0, capture_unspliced: ArrayLike | None = None
                 ) -> np.ndarray:
    """Log-probability of ``u`` unspliced and ``s`` spliced molecules in a cell.

    The stationary law of the telegraph model with splicing (see
    :mod:`telegraph.joint` and docs/maths.md, "Two species: unspliced and
    spliced"), with binomial capture; computed exactly with relative accuracy
    (absolute error of log P below 1e-6 wherever log P > -50).

    Parameters
    ----------%s

    Returns
    -------
    ndarray or float
        log P(u, s), broadcast over all arguments. NaN for invalid parameters,
        ``-inf`` for negative or non-integer counts.

    Examples
    --------
    >>> import telegraph as tg
    >>> round(float(tg.joint_pmf(0, 0, k_on=1.0, k_off=1.0, k_syn=1.0, k_deg=1.0)), 4) > 0
    True
    """
    shape, res, ok_par, ok_n, _ = _evaluate(u, s, k_on, k_off, k_syn, k_deg, k_splice, capture,
                                            capture_unspliced, 0)
    out = res[:, 0]
    nan_n = np.isnan(np.broadcast_to(np.asarray(u, float), shape).ravel()) | np.isnan(
        np.broadcast_to(np.asarray(s, float), shape).ravel())
    out = np.where(ok_par & ~ok_n & ~nan_n, -np.inf, out)
    return out.reshape(shape)[()]


joint_logpmf.__doc__ = joint_logpmf.__doc__ % _PARAMS_DOC


def joint_pmf(u: ArrayLike, s: ArrayLike, k_on: ArrayLike, k_off: ArrayLike,
              k_syn: ArrayLike, k_deg: ArrayLike, *, k_splice: ArrayLike = 1.0,
              capture: ArrayLike = 1.0, capture_unspliced: ArrayLike | None = None
              ) -> np.ndarray:
    """Probability of ``u`` unspliced and ``s`` spliced molecules: ``exp(joint_logpmf)``.

    Parameters as in :func:`joint_logpmf` (rates per unit time).
    """
    return np.exp(joint_logpmf(u, s, k_on, k_off, k_syn, k_deg, k_splice=k_splice,
                               capture=capture, capture_unspliced=capture_unspliced))


def joint_score(u: ArrayLike, s: ArrayLike, k_on: ArrayLike, k_off: ArrayLike,
                k_syn: ArrayLike, k_deg: ArrayLike, *, k_splice: ArrayLike = 1.0,
                capture: ArrayLike = 1.0, capture_unspliced: ArrayLike | None = None
                ) -> np.ndarray:
    """Exact gradient of log P(u, s) with respect to the five rates.

    Computed from exact sensitivities of the master equation (no numerical
    differentiation).

    Parameters
    ----------%s

    Returns
    -------
    ndarray
        Shape ``broadcast(...) + (5,)``: d log P / d(k_on, k_off, k_syn, k_deg,
        k_splice), in units of 1/rate (time). NaN for invalid input. Since only
        ratios of rates are identified, k_on s_on + k_off s_off + k_syn s_syn +
        k_deg s_deg + k_splice s_splice = 0.
    """
    shape, res, ok_par, ok_n, p = _evaluate(u, s, k_on, k_off, k_syn, k_deg, k_splice, capture,
                                            capture_unspliced, 1)
    s5, _ = _to_rates(res[:, 1:1 + _k.N_PAR], None, p)
    return s5.reshape(shape + (5,))


joint_score.__doc__ = joint_score.__doc__ % _PARAMS_DOC


def joint_information(u: ArrayLike, s: ArrayLike, k_on: ArrayLike, k_off: ArrayLike,
                      k_syn: ArrayLike, k_deg: ArrayLike, *, k_splice: ArrayLike = 1.0,
                      capture: ArrayLike = 1.0, capture_unspliced: ArrayLike | None = None
                      ) -> np.ndarray:
    """Observed information: minus the Hessian of log P(u, s) in the five rates.

    Exact second-order sensitivities of the master equation.

    Parameters
    ----------%s

    Returns
    -------
    ndarray
        Shape ``broadcast(...) + (5, 5)``, symmetric, in the order (k_on,
        k_off, k_syn, k_deg, k_splice); units 1/(rate * rate). Singular in
        the direction of a common scaling of the rates (they are identified
        only up to one time scale). NaN for invalid input.
    """
    shape, res, ok_par, ok_n, p = _evaluate(u, s, k_on, k_off, k_syn, k_deg, k_splice, capture,
                                            capture_unspliced, 2)
    rows = _k.JointRows(res)
    _, I5 = _to_rates(np.array(rows.score), rows.info, p)
    return I5.reshape(shape + (5, 5))


joint_information.__doc__ = joint_information.__doc__ % _PARAMS_DOC


def joint_histogram_loglik(u, s, weights, a: float, b: float, lam: float, gam: float,
                           capture=1.0, capture_unspliced=None, *, info: bool = False):
    """Log-likelihood of one gene's (unspliced, spliced) histogram, its exact
    gradient and (``info=True``) the observed information.

    The grouped evaluation a two-species fit runs on: the master equation is
    solved once, at the largest capture of the bins, and bins of smaller
    capture are binomial thinnings of that law (sums of positive terms).

    Parameters
    ----------
    u, s : array_like of int (m,)
        Counts of each bin (bins may repeat).
    weights : array_like (m,)
        Number of cells of each bin.
    a, b, lam, gam : float
        k_on, k_off, k_syn, k_deg in units of k_splice (lam at capture 1).
    capture, capture_unspliced : float or array_like (m,)
        Capture efficiency of each bin's spliced (and, unless
        ``capture_unspliced`` is given, unspliced) molecules, in (0, 1].
    info : bool
        Also return the observed information.

    Returns
    -------
    loglik : float
    grad : ndarray (4,)
        d loglik / d(a, b, lam, gam).
    info : ndarray (4, 4), only if ``info=True``
    """
    u = np.asarray(u, dtype=np.int64).ravel()
    s = np.asarray(s, dtype=np.int64).ravel()
    w = np.asarray(weights, dtype=float).ravel()
    if not (u.shape == s.shape == w.shape):
        raise ValueError("u, s and weights must have the same length")
    if (u < 0).any() or (s < 0).any():
        raise ValueError("u and s must be non-negative counts")
    if not (a > 0 and b > 0 and lam > 0 and gam > 0):
        raise ValueError("a, b, lam and gam must be positive")
    cs = np.broadcast_to(check_capture(np.atleast_1d(capture)), u.shape).astype(float)
    cu = cs if capture_unspliced is None else np.broadcast_to(
        check_capture(np.atleast_1d(capture_unspliced)), u.shape).astype(float)
    c_ref = float(max(cs.max(initial=0.0), cu.max(initial=0.0), 1e-300))
    bins = np.stack([u, s, cu / c_ref, cs / c_ref], axis=1)
    ub, inv = np.unique(bins, axis=0, return_inverse=True)
    wb = np.bincount(inv.ravel(), weights=w, minlength=ub.shape[0])
    rows, _ = evaluate_bins(a, b, c_ref * lam, gam, ub[:, 0].astype(np.int64),
                            ub[:, 1].astype(np.int64), ub[:, 2], ub[:, 3], 2 if info else 1)
    scale = np.array([1.0, 1.0, c_ref, 1.0])
    ll = float(np.sum(wb * rows.logp))
    grad = np.sum(wb[:, None] * rows.score, axis=0) * scale
    if not info:
        return ll, grad
    I = np.einsum("m,mij->ij", wb, rows.info) * np.outer(scale, scale)
    return ll, grad, I
