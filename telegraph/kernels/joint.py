"""The joint law of unspliced and spliced counts: the truncated chemical master
equation of (promoter, U, S), solved exactly with relative accuracy (Numba kernels).

docs/maths.md, "Two species: unspliced and spliced". Rates are in units of the
splicing rate (k_splice = 1): a = k_on/k_splice, b = k_off/k_splice,
lam = capture * k_syn/k_splice, gam = k_deg/k_splice. The chain lives on a
lattice box u in [u_lo, u_lo + nu), s in [s_lo, s_lo + ns), promoter g in
{0 (off), 1 (on)}; state index ``2 * (j * nu + i) + g`` with u = u_lo + i,
s = s_lo + j. Transitions (those leaving the box are blocked, so the box is a
closed, irreducible chain):

    (0, u, s) -> (1, u, s)          a          promoter on
    (1, u, s) -> (0, u, s)          b          promoter off
    (1, u, s) -> (1, u + 1, s)      lam        transcription (unspliced made)
    (g, u, s) -> (g, u - 1, s + 1)  u          splicing
    (g, u, s) -> (g, u, s - 1)      gam * s    degradation of spliced

**Elimination.** The stationary law is computed by state reduction (the
Grassmann-Taksar-Heyman variant of Gaussian elimination): eliminating a state e
censors the chain on the others, q'(i, j) = q(i, j) + q(i, e) q(e, j) / q_e,
where the pivot q_e is the SUM of e's current off-diagonal rates rather than
the diagonal entry. Every operation adds or multiplies positive numbers, so each
probability comes out with a small *relative* error however far in the tail it
lies (O'Cinneide 1993) -- which is what log-likelihoods need. States are
eliminated in nested-dissection order (George 1973): the box is split
recursively by separator lines of the lattice (every transition moves u and s
by at most one, so a line of constant u or constant s separates); each node of
the dissection tree holds a dense "front" (its separator plus the boundaries
its children leave), eliminates the states that have become interior and hands
the censored rates among the rest to its parent. The tree is built by
:func:`dissect` (cached per box shape and reference point by
:func:`telegraph.joint.dissection`) and passed in as arrays:

    fptr[node]:fptr[node+1]  the node's front (states), the ones to eliminate
                              first (nel[node] of them), then the kept ones
    kid[node, 0:2]           children (-1: none); nodes are in postorder
    own[fptr...]             1 for the node's own (separator or leaf) states

Each front matrix is kept after elimination (rows and columns of the
eliminated states are the factors), so that further right-hand sides cost one
sweep over the factors.

**Sensitivities.** With Q linear in (a, b, lam, gam) the derivatives of the
stationary vector solve x^T Q = b^T with the same factors. They are computed
as h = x / pi (the score of the state, d log pi) in that scaled form: the
elimination pushes b_e q(e, j) / q_e forward and back-substitutes
x_e = (sum_j x_j q(j, e) - b_e) / q_e; divided by pi these are convex averages
of h plus O(1) corrections, so the scores are as accurate in the tails as in
the bulk. Second derivatives (exact second-order sensitivities) follow from a
second set of right-hand sides built from the first.

**Capture.** Given the promoter path the counts are independent Poisson
variables, so binomial capture is the same chain with lam scaled (one factor
for both species). Smaller captures (of one species, or of some cells) are
binomial thinnings of the tables :func:`count_tables` returns: sums of
positive terms, done by :mod:`telegraph.joint` as matrix products.
"""

from __future__ import annotations

import math

import numpy as np
from ._jit import njit

__all__ = ["N_PAR", "N_PAIR", "N_ROW", "PAIRS", "dissect", "factorize", "stationary", "first_rhs",
           "second_rhs", "solve_scaled", "count_tables", "edge_max", "trap_depth",
           "argmax_point", "pool_size", "factor_stationary", "derive_tables", "JointRows"]

#: parameters differentiated: a, b, lam, gam (k_splice = 1)
N_PAR = 4
#: unique second derivatives (upper triangle, row-major)
N_PAIR = 10
#: entries of one bin's result row: log P, score (4), information (10)
N_ROW = 1 + N_PAR + N_PAIR
PAIRS = ((0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3))

# status codes of joint_eval
OK = 0
UNDERFLOW = 1        # a pivot (escape rate) underflowed: the box holds states of no mass


# ---------------------------------------------------------------------------
# the lattice
# ---------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _coords(st, nu):
    g = st & 1
    p = st >> 1
    return g, p % nu, p // nu


@njit(cache=True, nogil=True)
def _rate(src, dst, u_lo, nu, s_lo, ns, par):
    """Rate of the transition src -> dst of the box chain (0 if none)."""
    g1, i1, j1 = _coords(src, nu)
    g2, i2, j2 = _coords(dst, nu)
    if i1 == i2 and j1 == j2:
        if g1 == g2:
            return 0.0
        return par[0] if g1 == 0 else par[1]
    if g1 != g2:
        return 0.0
    if i2 == i1 + 1 and j2 == j1:
        return par[2] if g1 == 1 else 0.0
    if i2 == i1 - 1 and j2 == j1 + 1:
        return float(u_lo + i1)
    if i2 == i1 and j2 == j1 - 1:
        return par[3] * (s_lo + j1)
    return 0.0


@njit(cache=True, nogil=True)
def _neighbours(st, nu, ns, out):
    """States that st can jump to or be reached from (same box); returns count."""
    g, i, j = _coords(st, nu)
    k = 0
    out[k] = st ^ 1
    k += 1
    for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1), (-1, 1), (1, -1)):
        ii = i + di
        jj = j + dj
        if 0 <= ii < nu and 0 <= jj < ns:
            out[k] = 2 * (jj * nu + ii) + g
            k += 1
    return k


# ---------------------------------------------------------------------------
# the nested-dissection tree of a box
# ---------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _boundary_into(u0, u1, s0, s1, nu, ns, out, k):
    """Write the sorted lattice points of the rectangle [u0, u1) x [s0, s1) that
    touch the box outside it (its sides that are not the box's edges) to
    out[k:]; returns the new end."""
    for j in range(s0, s1):
        if (j == s0 and s0 > 0) or (j == s1 - 1 and s1 < ns):
            for i in range(u0, u1):
                out[k] = j * nu + i
                k += 1
        else:
            if u0 > 0:
                out[k] = j * nu + u0
                k += 1
            if u1 < nu and u1 - 1 != u0:
                out[k] = j * nu + u1 - 1
                k += 1
            elif u1 < nu and u0 == 0:      # a one-wide rectangle at the box's lower edge
                out[k] = j * nu + u1 - 1
                k += 1
    return k


@njit(cache=True, nogil=True)
def dissect(nu, ns, ri, rj, leaf):
    """Nested-dissection elimination tree of an nu x ns lattice box (the arrays
    :func:`factorize` takes: fptr, fr, nel, kid, own; see
    :func:`telegraph.joint.dissection`, which documents the tree). The first
    cut passes through lattice point (ri, rj), whose two states end the root
    front. Nodes are numbered in postorder (children before parents, the
    first half's subtree before the second's)."""
    n_pts = nu * ns
    cap = 2 * n_pts + 2                      # a binary tree whose leaves hold >= 1 point
    # rectangles in preorder of a DFS that visits the second half first; reversed,
    # that is the postorder of the DFS that visits the first half first
    R = np.zeros((cap, 4), np.int64)
    leafy = np.zeros(cap, np.bool_)
    cut_u = np.full(cap, -1, np.int64)       # separator column (cut across u) ...
    cut_s = np.full(cap, -1, np.int64)       # ... or row (cut across s)
    parent = np.full(cap, -1, np.int64)
    slot = np.zeros(cap, np.int64)
    stack = np.zeros((256, 6), np.int64)     # u0, u1, s0, s1, parent, slot (depth < 128)
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = 0, nu, 0, ns
    stack[0, 4], stack[0, 5] = -1, 0
    sp = 1
    m = 0
    while sp > 0:
        sp -= 1
        u0, u1, s0, s1, par, sl = (stack[sp, 0], stack[sp, 1], stack[sp, 2], stack[sp, 3],
                                   stack[sp, 4], stack[sp, 5])
        k = m
        m += 1
        R[k, 0], R[k, 1], R[k, 2], R[k, 3] = u0, u1, s0, s1
        parent[k] = par
        slot[k] = sl
        du = u1 - u0
        ds = s1 - s0
        root = k == 0
        if not root and (du * ds <= leaf or max(du, ds) < 3):
            leafy[k] = True
            continue
        if ds >= du:
            sm = (s0 + s1) // 2 if not root else rj
            cut_s[k] = sm
            h = ((u0, u1, s0, sm), (u0, u1, sm + 1, s1))
        else:
            um = (u0 + u1) // 2 if not root else ri
            cut_u[k] = um
            h = ((u0, um, s0, s1), (um + 1, u1, s0, s1))
        # push the first half, then the second (popped first)
        for c in range(2):
            a0, a1, b0, b1 = h[c]
            if a1 > a0 and b1 > b0:
                stack[sp, 0], stack[sp, 1], stack[sp, 2], stack[sp, 3] = a0, a1, b0, b1
                stack[sp, 4], stack[sp, 5] = k, c
                sp += 1
    n = m
    post = np.empty(n, np.int64)              # preorder index -> postorder number
    for k in range(n):
        post[k] = n - 1 - k
    kid = np.full((n, 2), -1, np.int64)
    for k in range(1, n):
        kid[post[parent[k]], slot[k]] = post[k]
    # a parent whose first half was empty has its only child in slot 1: move it to 0
    for q in range(n):
        if kid[q, 0] < 0 and kid[q, 1] >= 0:
            kid[q, 0] = kid[q, 1]
            kid[q, 1] = -1
    # per node (postorder): own points, boundary points, front
    rect = np.empty((n, 4), np.int64)
    isleaf = np.empty(n, np.bool_)
    cu = np.empty(n, np.int64)
    cs = np.empty(n, np.int64)
    for k in range(n):
        q = post[k]
        rect[q] = R[k]
        isleaf[q] = leafy[k]
        cu[q] = cut_u[k]
        cs[q] = cut_s[k]
    bptr = np.zeros(n + 1, np.int64)
    tmp = np.empty(2 * (nu + ns) + 8, np.int64)
    for q in range(n):
        bptr[q + 1] = bptr[q] + _boundary_into(rect[q, 0], rect[q, 1], rect[q, 2], rect[q, 3],
                                               nu, ns, tmp, 0)
    bnd = np.empty(bptr[n], np.int64)
    optr = np.zeros(n + 1, np.int64)
    fptr_pts = np.zeros(n + 1, np.int64)
    for q in range(n):
        _boundary_into(rect[q, 0], rect[q, 1], rect[q, 2], rect[q, 3], nu, ns, bnd, bptr[q])
        u0, u1, s0, s1 = rect[q, 0], rect[q, 1], rect[q, 2], rect[q, 3]
        if isleaf[q]:
            no = (u1 - u0) * (s1 - s0)
        elif cs[q] >= 0:
            no = u1 - u0
        else:
            no = s1 - s0
        nk = 0
        for c in range(2):
            ch = kid[q, c]
            if ch >= 0:
                nk += bptr[ch + 1] - bptr[ch]
        optr[q + 1] = optr[q] + no
        fptr_pts[q + 1] = fptr_pts[q] + no + nk
    fpts = np.empty(fptr_pts[n], np.int64)
    fown = np.zeros(fptr_pts[n], np.int64)
    nel = np.empty(n, np.int64)
    inb = np.zeros(n_pts, np.int64)            # stamp: point is on the node's boundary
    raw = np.empty(fptr_pts[n] - fptr_pts[0] + 1, np.int64)
    rown = np.empty(raw.shape[0], np.int64)
    for q in range(n):
        u0, u1, s0, s1 = rect[q, 0], rect[q, 1], rect[q, 2], rect[q, 3]
        # the raw front: own points, then each child's boundary
        r = 0
        if isleaf[q]:
            for j in range(s0, s1):
                for i in range(u0, u1):
                    raw[r] = j * nu + i
                    rown[r] = 1
                    r += 1
        elif cs[q] >= 0:
            for i in range(u0, u1):
                raw[r] = cs[q] * nu + i
                rown[r] = 1
                r += 1
        else:
            for j in range(s0, s1):
                raw[r] = j * nu + cu[q]
                rown[r] = 1
                r += 1
        for c in range(2):
            ch = kid[q, c]
            if ch >= 0:
                for t in range(bptr[ch], bptr[ch + 1]):
                    raw[r] = bnd[t]
                    rown[r] = 0
                    r += 1
        for t in range(bptr[q], bptr[q + 1]):
            inb[bnd[t]] = q + 1
        # eliminated (not on the boundary), in raw order; then the boundary, sorted
        f0 = fptr_pts[q]
        w = f0
        for t in range(r):
            if inb[raw[t]] != q + 1:
                fpts[w] = raw[t]
                fown[w] = rown[t]
                w += 1
        nel[q] = w - f0
        # the boundary points, with their own flags (a boundary point is either own
        # or a child's boundary point; own points are marked in the stamp array)
        for t in range(r):
            if inb[raw[t]] == q + 1 and rown[t] == 1:
                inb[raw[t]] = -(q + 1)            # own and on the boundary
        for t in range(bptr[q], bptr[q + 1]):
            fpts[w] = bnd[t]
            fown[w] = 1 if inb[bnd[t]] == -(q + 1) else 0
            w += 1
    # the reference point last in the root front
    root = n - 1
    rp = rj * nu + ri
    f0 = fptr_pts[root]
    f1 = fptr_pts[root + 1]
    at = -1
    for t in range(f0, f1):
        if fpts[t] == rp:
            at = t
    if at >= 0:
        ow = fown[at]
        for t in range(at, f1 - 1):
            fpts[t] = fpts[t + 1]
            fown[t] = fown[t + 1]
        fpts[f1 - 1] = rp
        fown[f1 - 1] = ow
    # states: two per point (promoter off, on)
    fptr = 2 * fptr_pts
    fr = np.empty(fptr[n], np.int64)
    own = np.empty(fptr[n], np.int64)
    for t in range(fptr_pts[n]):
        fr[2 * t] = 2 * fpts[t]
        fr[2 * t + 1] = 2 * fpts[t] + 1
        own[2 * t] = fown[t]
        own[2 * t + 1] = fown[t]
    for q in range(n):
        nel[q] *= 2
    nel[root] = fptr[root + 1] - fptr[root] - 1
    return fptr, fr, nel, kid, own


# ---------------------------------------------------------------------------
# elimination (factorisation) and the stationary law
# ---------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def pool_size(fptr):
    """Length of the pool of front matrices :func:`factorize` fills."""
    tot = 0
    for k in range(fptr.shape[0] - 1):
        f = fptr[k + 1] - fptr[k]
        tot += f * f
    return tot


@njit(cache=True, nogil=True)
def factorize(fptr, fr, nel, kid, own, u_lo, nu, s_lo, ns, par, work):
    """Eliminate every state but the last of the root front.

    ``work``: a float array of at least :func:`pool_size` entries to hold the
    front matrices (its contents are overwritten; a fit passes the same
    buffer at every evaluation: a fresh pool of hundreds of megabytes costs
    more in page faults than the elimination of its smaller fronts), or a
    shorter one (a new pool is allocated).

    Returns (pool, fac_ptr, piv, status): the front matrices after
    elimination (node k's f x f matrix at pool[fac_ptr[k]:fac_ptr[k+1]],
    row-major; entry [p, q] is the censored rate from front state p to q),
    the pivot (total censored exit rate) of every eliminated state, and OK or
    UNDERFLOW.
    """
    n = nel.shape[0]
    fac_ptr = np.zeros(n + 1, np.int64)
    for k in range(n):
        f = fptr[k + 1] - fptr[k]
        fac_ptr[k + 1] = fac_ptr[k] + f * f
    pool = work[:fac_ptr[n]] if work.shape[0] >= fac_ptr[n] else np.empty(fac_ptr[n])
    n_states = 2 * nu * ns
    piv = np.zeros(n_states)
    pos = np.full(n_states, -1, np.int64)
    nb = np.zeros(8, np.int64)
    status = OK
    for k in range(n):
        f0 = fptr[k]
        f = fptr[k + 1] - f0
        F = pool[fac_ptr[k]:fac_ptr[k + 1]].reshape((f, f))
        F[:, :] = 0.0
        for p in range(f):
            pos[fr[f0 + p]] = p
        # the children's censored rates among their kept states
        for c in range(2):
            ch = kid[k, c]
            if ch < 0:
                continue
            cf0 = fptr[ch]
            cf = fptr[ch + 1] - cf0
            ce = nel[ch]
            C = pool[fac_ptr[ch]:fac_ptr[ch + 1]].reshape((cf, cf))
            for k1 in range(ce, cf):
                p1 = pos[fr[cf0 + k1]]
                for k2 in range(ce, cf):
                    if k1 != k2:
                        F[p1, pos[fr[cf0 + k2]]] = C[k1, k2]
        # original rates of the transitions that touch the node's own states
        for p in range(f):
            if own[f0 + p] == 0:
                continue
            st = fr[f0 + p]
            m = _neighbours(st, nu, ns, nb)
            for t in range(m):
                q = pos[nb[t]]
                if q < 0:
                    continue
                F[p, q] = _rate(st, nb[t], u_lo, nu, s_lo, ns, par)
                if own[f0 + q] == 0:
                    F[q, p] = _rate(nb[t], st, u_lo, nu, s_lo, ns, par)
        # GTH elimination of the interior states (diagonals are never read)
        if f >= _BLOCKED_FROM:
            if _eliminate_blocked(F, nel[k], f, fr, f0, piv):
                status = UNDERFLOW
        elif _eliminate(F, nel[k], f, fr, f0, piv):
            status = UNDERFLOW
        for p in range(f):
            pos[fr[f0 + p]] = -1
    return pool, fac_ptr, piv, status


@njit(cache=True, nogil=True)
def _pivot(F, t, f, nz):
    """The GTH pivot q_t = sum_{j > t} F[t, j] of front row t, and the number m
    of its non-zero columns, written to nz[:m] in order. Returns (q_t, m)."""
    sp = 0.0
    m = 0
    for j in range(t + 1, f):
        v = F[t, j]
        if v != 0.0:
            sp += v
            nz[m] = j
            m += 1
    return sp, m


@njit(cache=True, nogil=True)
def _eliminate(F, ne, f, fr, f0, piv):
    """Eliminate front states 0..ne-1 of the dense front F in place: for each
    pivot t, q_t = sum_{j > t} F[t, j] (the GTH pivot) and
    F[r, j] += F[r, t] F[t, j] / q_t for r, j > t. Entries [r, t] and [t, j]
    are left as they are: they are the factors (inflow and outflow rates of t
    when it was eliminated). Returns True if a pivot underflowed.
    A pivot row that is mostly zero (early in a front, where the children's
    blocks do not touch) updates its non-zero columns only (~15% faster
    overall). (A blocked variant with the trailing update as a BLAS product
    was measured only ~20% faster at the front sizes that occur, 100-600, and
    brings BLAS threads onto a shared machine.)"""
    bad = False
    nz = np.empty(f, np.int64)
    for t in range(ne):
        sp, m = _pivot(F, t, f, nz)
        if not sp > 1e-300:
            bad = True
            sp = 1e-300
        piv[fr[f0 + t]] = sp
        inv = 1.0 / sp
        if 2 * m < f - t - 1:
            # a sparse pivot row (early in a front): touch its non-zeros only
            for r in range(t + 1, f):
                x = F[r, t]
                if x != 0.0:
                    x *= inv
                    for q in range(m):
                        j = nz[q]
                        F[r, j] += x * F[t, j]
        else:
            for r in range(t + 1, f):
                x = F[r, t]
                if x != 0.0:
                    x *= inv
                    for j in range(t + 1, f):
                        F[r, j] += x * F[t, j]
    return bad


#: pivots per panel of the blocked elimination (:func:`_eliminate_blocked`)
_PANEL = 24
#: fronts smaller than this are eliminated pivot by pivot (:func:`_eliminate`)
_BLOCKED_FROM = 48


@njit(cache=True, nogil=True)
def _eliminate_blocked(F, ne, f, fr, f0, piv):
    """:func:`_eliminate` by panels of ``_PANEL`` pivots: each panel's rows and
    columns are eliminated pivot by pivot, then the rest of the front is
    updated once by the panel's product, F[r, j] += sum over the panel's
    pivots t of F[r, t] F[t, j] / q_t -- the same positive terms as pivot by
    pivot, summed in another order, so the relative accuracy of GTH is kept.
    Four pivot rows are applied per pass over a row (one load and store of
    F[r, j] per four products: the compiler vectorises that loop, ~2.5x the
    rank-one update's speed on dense fronts); pivot rows that are mostly zero
    beyond the panel update their non-zero columns only. Returns True if a
    pivot underflowed."""
    bad = False
    W = _PANEL
    nz = np.empty(f, np.int64)
    rnz = np.empty((W, f), np.int64)
    rm = np.zeros(W, np.int64)
    inv = np.zeros(W)
    dense = np.empty(W, np.int64)
    sparse = np.empty(W, np.int64)
    sel = np.empty(W, np.int64)
    for t0 in range(0, ne, W):
        t1 = min(t0 + W, ne)
        # the panel: pivots t0..t1-1 update the panel's rows (all columns) and the
        # panel's columns of the rows below it
        for t in range(t0, t1):
            sp, m = _pivot(F, t, f, nz)
            if not sp > 1e-300:
                bad = True
                sp = 1e-300
            piv[fr[f0 + t]] = sp
            iv = 1.0 / sp
            inv[t - t0] = iv
            for r in range(t + 1, t1):
                x = F[r, t]
                if x != 0.0:
                    x *= iv
                    for q in range(m):
                        j = nz[q]
                        F[r, j] += x * F[t, j]
            if t + 1 < t1:
                for r in range(t1, f):
                    x = F[r, t]
                    if x != 0.0:
                        x *= iv
                        for j in range(t + 1, t1):
                            F[r, j] += x * F[t, j]
        # the panel's rows beyond it: dense ones by fours, sparse ones by their non-zeros
        nd = 0
        nsp = 0
        for t in range(t0, t1):
            m = 0
            for j in range(t1, f):
                if F[t, j] != 0.0:
                    rnz[t - t0, m] = j
                    m += 1
            rm[t - t0] = m
            if 4 * m < f - t1:
                sparse[nsp] = t
                nsp += 1
            else:
                dense[nd] = t
                nd += 1
        for r in range(t1, f):
            row = F[r]
            k = 0
            for q in range(nd):
                t = dense[q]
                if row[t] != 0.0:
                    sel[k] = t
                    k += 1
            q = 0
            while q + 4 <= k:
                a0, a1, a2, a3 = sel[q], sel[q + 1], sel[q + 2], sel[q + 3]
                x0 = row[a0] * inv[a0 - t0]
                x1 = row[a1] * inv[a1 - t0]
                x2 = row[a2] * inv[a2 - t0]
                x3 = row[a3] * inv[a3 - t0]
                p0, p1, p2, p3 = F[a0], F[a1], F[a2], F[a3]
                for j in range(t1, f):
                    row[j] += (x0 * p0[j] + x1 * p1[j]) + (x2 * p2[j] + x3 * p3[j])
                q += 4
            while q < k:
                a0 = sel[q]
                x0 = row[a0] * inv[a0 - t0]
                p0 = F[a0]
                for j in range(t1, f):
                    row[j] += x0 * p0[j]
                q += 1
            for q in range(nsp):
                t = sparse[q]
                x = row[t]
                if x != 0.0:
                    x *= inv[t - t0]
                    pt = F[t]
                    for c in range(rm[t - t0]):
                        j = rnz[t - t0, c]
                        row[j] += x * pt[j]
    return bad


@njit(cache=True, nogil=True)
def _front_scale(logpi, fr, f0, f, v):
    """v[p] = pi / exp(m) for the front's states with known log pi (p >= 0 given),
    m the largest of them; returns m."""
    m = -np.inf
    for p in range(f):
        x = logpi[fr[f0 + p]]
        if x > m:
            m = x
    for p in range(f):
        v[p] = math.exp(logpi[fr[f0 + p]] - m)
    return m


@njit(cache=True, nogil=True)
def stationary(fptr, fr, nel, pool, fac_ptr, piv):
    """log pi of every state (normalised), by back-substitution through the
    fronts: pi_e = sum_j pi_j q(j, e) / q_e over the states j still present
    when e was eliminated. Each front is scaled by its largest kept
    probability; a state whose value underflows that scale (a front that
    spans hundreds of nats) is recomputed in log space."""
    n = nel.shape[0]
    n_states = piv.shape[0]
    logpi = np.full(n_states, -np.inf)
    fmax = 0
    for k in range(n):
        fmax = max(fmax, fptr[k + 1] - fptr[k])
    v = np.zeros(fmax)
    root = n - 1
    logpi[fr[fptr[root + 1] - 1]] = 0.0
    for k in range(n - 1, -1, -1):
        f0 = fptr[k]
        f = fptr[k + 1] - f0
        ne = nel[k]
        F = pool[fac_ptr[k]:fac_ptr[k + 1]].reshape((f, f))
        m = -np.inf
        for p in range(ne, f):
            x = logpi[fr[f0 + p]]
            if x > m:
                m = x
        for p in range(ne, f):
            v[p] = math.exp(logpi[fr[f0 + p]] - m)
        for t in range(ne - 1, -1, -1):
            e = fr[f0 + t]
            acc = 0.0
            for j in range(t + 1, f):
                acc += v[j] * F[j, t]
            acc /= piv[e]
            if acc > 1e-280 and acc < 1e280:
                v[t] = acc
                logpi[e] = m + math.log(acc)
                continue
            # log space: log sum_j exp(log pi_j + log q(j, e)) - log q_e
            top = -np.inf
            for j in range(t + 1, f):
                if F[j, t] > 0.0:
                    x = logpi[fr[f0 + j]] + math.log(F[j, t])
                    if x > top:
                        top = x
            tot = 0.0
            for j in range(t + 1, f):
                if F[j, t] > 0.0:
                    tot += math.exp(logpi[fr[f0 + j]] + math.log(F[j, t]) - top)
            logpi[e] = top + math.log(tot) - math.log(piv[e]) if tot > 0.0 else -np.inf
            v[t] = math.exp(logpi[e] - m)
    # normalise
    top = -np.inf
    for s in range(n_states):
        if logpi[s] > top:
            top = logpi[s]
    tot = 0.0
    for s in range(n_states):
        tot += math.exp(logpi[s] - top)
    lz = top + math.log(tot)
    for s in range(n_states):
        logpi[s] -= lz
    return logpi


@njit(cache=True, nogil=True)
def trap_depth(fptr, fr, nel, logpi):
    """Largest excess, over the nodes of the tree, of the log probability of
    what a node eliminates over what it keeps (the root keeps its last state,
    the reference of the sensitivities). The sensitivity solves lose about
    exp(depth) machine epsilons: excursions from the kept states into a more
    probable eliminated region last about that long."""
    n = nel.shape[0]
    worst = 0.0
    for k in range(n):
        f0 = fptr[k]
        f = fptr[k + 1] - f0
        me = -np.inf
        mk = -np.inf
        for p in range(f):
            x = logpi[fr[f0 + p]]
            if p < nel[k]:
                me = max(me, x)
            else:
                mk = max(mk, x)
        if me - mk > worst:
            worst = me - mk
    return worst


@njit(cache=True, nogil=True)
def argmax_point(logpi, nu):
    """(i, j) lattice offsets of the most probable state."""
    s = np.argmax(logpi)
    _, i, j = _coords(s, nu)
    return i, j


@njit(cache=True, nogil=True)
def edge_max(logpi, nu, ns):
    """Largest log pi on each edge of the box: (u low, u high, s low, s high)."""
    out = np.full(4, -np.inf)
    for j in range(ns):
        for g in range(2):
            out[0] = max(out[0], logpi[2 * (j * nu) + g])
            out[1] = max(out[1], logpi[2 * (j * nu + nu - 1) + g])
    for i in range(nu):
        for g in range(2):
            out[2] = max(out[2], logpi[2 * i + g])
            out[3] = max(out[3], logpi[2 * ((ns - 1) * nu + i) + g])
    return out


# ---------------------------------------------------------------------------
# sensitivities
# ---------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _inflow(kind, st, logpi, u_lo, nu, s_lo, ns):
    """For the reaction type ``kind`` (0 on, 1 off, 2 transcription,
    3 degradation; the parameter is its rate constant theta): the state x that
    reaches st by that reaction (-1: none), c = pi(x) q(x, st) / (theta pi(st))
    and d = (rate of that reaction out of st) / theta."""
    g, i, j = _coords(st, nu)
    x = -1
    c = 0.0
    d = 0.0
    if kind == 0:
        if g == 1:
            x = st ^ 1
        else:
            d = 1.0
    elif kind == 1:
        if g == 0:
            x = st ^ 1
        else:
            d = 1.0
    elif kind == 2:
        if g == 1:
            if i > 0:
                x = st - 2
            if i < nu - 1:
                d = 1.0
    else:
        if j < ns - 1:
            x = st + 2 * nu
            c = float(s_lo + j + 1)
        if j > 0:
            d = float(s_lo + j)
    if x >= 0 and logpi[st] > -np.inf:
        if kind != 3:
            c = 1.0
        c *= math.exp(logpi[x] - logpi[st])
    return x, c, d


@njit(cache=True, nogil=True)
def first_rhs(logpi, u_lo, nu, s_lo, ns):
    """Right-hand sides (divided by pi) of the first sensitivities: for theta
    in (a, b, lam, gam), beta(y) = -(c(y) - d(y)) (see :func:`_inflow`)."""
    n = logpi.shape[0]
    out = np.zeros((n, N_PAR))
    for st in range(n):
        for k in range(N_PAR):
            x, c, d = _inflow(k, st, logpi, u_lo, nu, s_lo, ns)
            out[st, k] = d - c
    return out


@njit(cache=True, nogil=True)
def second_rhs(logpi, h, u_lo, nu, s_lo, ns):
    """Right-hand sides (divided by pi) of the second sensitivities, from the
    first ones h (d log pi): for each pair (k, l),
    beta = -(T_l[h_k] + T_k[h_l]) with T_l[f](y) = c_l(y) f(x_l(y)) - d_l(y) f(y)."""
    n = logpi.shape[0]
    out = np.zeros((n, N_PAIR))
    xs = np.zeros(N_PAR, np.int64)
    cs = np.zeros(N_PAR)
    ds = np.zeros(N_PAR)
    for st in range(n):
        for k in range(N_PAR):
            x, c, d = _inflow(k, st, logpi, u_lo, nu, s_lo, ns)
            xs[k] = x
            cs[k] = c
            ds[k] = d
        for q in range(N_PAIR):
            k = PAIRS[q][0]
            l = PAIRS[q][1]
            t = -ds[l] * h[st, k] - ds[k] * h[st, l]
            if xs[l] >= 0:
                t += cs[l] * h[xs[l], k]
            if xs[k] >= 0:
                t += cs[k] * h[xs[k], l]
            out[st, q] = -t
    return out


@njit(cache=True, nogil=True)
def _ratio(v, lp, a, b):
    """pi_a / pi_b from the front-scaled values, or from log pi when one of
    them underflowed the front's scale."""
    if v[a] > 1e-250 and v[b] > 1e-250:
        return v[a] / v[b]
    return math.exp(lp[a] - lp[b])


@njit(cache=True, nogil=True)
def _push_row(F, j, end, vj, h, src, acc, r):
    """acc[t] += v_j q(j, t) h_src for the front states t < end (row j of F)."""
    if vj == 0.0:
        return
    for t in range(end):
        fj = F[j, t]
        if fj != 0.0:
            x = vj * fj
            for c in range(r):
                acc[t, c] += x * h[src, c]


@njit(cache=True, nogil=True)
def solve_scaled(fptr, fr, nel, pool, fac_ptr, piv, logpi, beta):
    """Solve x^T Q = (pi * beta)^T for x = pi * h, returned as h (one column per
    right-hand side), normalised so that sum_x pi h = 0.

    Forward, every eliminated e pushes b_e q(e, j) / q_e to the states j
    still present; in pi-scaled form the weight pi_e q(e, j) / (q_e pi_j) is
    at most (exit rate of j) / q_e by flux balance in the censored chain, so
    nothing grows. Back-substitution is a convex average:
    h_e = sum_j [pi_j q(j, e) / (pi_e q_e)] h_j - beta_e / q_e.
    """
    n = nel.shape[0]
    n_states, r = beta.shape
    b = beta.copy()
    h = np.zeros((n_states, r))
    fmax = 0
    for k in range(n):
        fmax = max(fmax, fptr[k + 1] - fptr[k])
    v = np.zeros(fmax)
    lp = np.zeros(fmax)
    for k in range(n):
        f0 = fptr[k]
        f = fptr[k + 1] - f0
        F = pool[fac_ptr[k]:fac_ptr[k + 1]].reshape((f, f))
        _front_scale(logpi, fr, f0, f, v)
        for p in range(f):
            lp[p] = logpi[fr[f0 + p]]
        for t in range(nel[k]):
            e = fr[f0 + t]
            if lp[t] == -np.inf:
                continue
            inv = 1.0 / piv[e]
            for j in range(t + 1, f):
                fe = F[t, j]
                if fe != 0.0 and lp[j] > -np.inf:
                    w = _ratio(v, lp, t, j) * fe * inv
                    dst = fr[f0 + j]
                    for c in range(r):
                        b[dst, c] += w * b[e, c]
    # the root's last state: free (h = 0 there), then back-substitute. The sums
    # sum_j pi_j q(j, e) h_j run over row j of the front (the inflow rates of the
    # states j eliminated before it), pushed forward as soon as h_j is known: the
    # factors are read along rows, not down columns (3x faster at fronts of
    # hundreds of states). acc[t] holds the sum in the front's scale v; a state
    # far below that scale (v < 1e-200) gathers its sum in ratios instead.
    acc = np.zeros((fmax, r))
    for k in range(n - 1, -1, -1):
        f0 = fptr[k]
        f = fptr[k + 1] - f0
        ne = nel[k]
        F = pool[fac_ptr[k]:fac_ptr[k + 1]].reshape((f, f))
        _front_scale(logpi, fr, f0, f, v)
        for p in range(f):
            lp[p] = logpi[fr[f0 + p]]
        acc[:ne, :] = 0.0
        for j in range(ne, f):
            _push_row(F, j, ne, v[j], h, fr[f0 + j], acc, r)
        for t in range(ne - 1, -1, -1):
            e = fr[f0 + t]
            if lp[t] == -np.inf:
                continue
            inv = 1.0 / piv[e]
            if v[t] > 1e-200:
                sc = inv / v[t]
                for c in range(r):
                    h[e, c] = acc[t, c] * sc - b[e, c] * inv
            else:
                for c in range(r):
                    h[e, c] = -b[e, c] * inv
                for j in range(t + 1, f):
                    fj = F[j, t]
                    if fj != 0.0 and lp[j] > -np.inf:
                        w = _ratio(v, lp, j, t) * fj * inv
                        src = fr[f0 + j]
                        for c in range(r):
                            h[e, c] += w * h[src, c]
            _push_row(F, t, t, v[t], h, e, acc, r)
    for c in range(r):
        mean = 0.0
        for s in range(n_states):
            mean += math.exp(logpi[s]) * h[s, c]
        for s in range(n_states):
            h[s, c] -= mean
    return h


# ---------------------------------------------------------------------------
# tables of the counts' law (the promoter summed out)
# ---------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def count_tables(logpi, h, K, nu, ns, want):
    """Tables over the box of the law of the counts (promoter summed out),
    scaled by exp(-top), top = max log pi:

    Y[0, i, j] = sum_g pi(g, u, s) e^-top, the probability of (u, s);
    Y[1 + k] = sum_g pi h_k e^-top (d P / d theta_k, times e^-top), if want >= 1;
    Y[5 + q] = sum_g pi K_q e^-top (d2 P / d theta_k d theta_l), if want >= 2,
    with u = u_lo + i, s = s_lo + j. Sums of these over counts (binomial
    thinning) give P, its gradient and second derivatives of thinned counts."""
    nq = 1 if want == 0 else (1 + N_PAR if want == 1 else N_ROW)
    Y = np.zeros((nq, nu, ns))
    top = -np.inf
    for st in range(logpi.shape[0]):
        if logpi[st] > top:
            top = logpi[st]
    for j in range(ns):
        for i in range(nu):
            st = 2 * (j * nu + i)
            for g in range(2):
                w = math.exp(logpi[st + g] - top)
                if w == 0.0:
                    continue
                Y[0, i, j] += w
                if want >= 1:
                    for k in range(N_PAR):
                        Y[1 + k, i, j] += w * h[st + g, k]
                if want >= 2:
                    for q in range(N_PAIR):
                        Y[1 + N_PAR + q, i, j] += w * K[st + g, q]
    return Y, top


@njit(cache=True, nogil=True)
def factor_stationary(fptr, fr, nel, kid, own, u_lo, nu, s_lo, ns, par, work):
    """Eliminate (in ``work``, see :func:`factorize`) and back-substitute:
    (pool, fac_ptr, piv, status, logpi, trap depth, (i, j) of the most
    probable state, edge maxima)."""
    pool, fac_ptr, piv, status = factorize(fptr, fr, nel, kid, own, u_lo, nu, s_lo, ns, par,
                                           work)
    logpi = stationary(fptr, fr, nel, pool, fac_ptr, piv)
    depth = trap_depth(fptr, fr, nel, logpi)
    i, j = argmax_point(logpi, nu)
    return pool, fac_ptr, piv, status, logpi, depth, i, j, edge_max(logpi, nu, ns)


@njit(cache=True, nogil=True)
def derive_tables(fptr, fr, nel, pool, fac_ptr, piv, logpi, u_lo, nu, s_lo, ns, want):
    """Sensitivities as needed by ``want`` (0: none; 1: first; 2: and second)
    from a factorisation and its stationary law, summed into
    :func:`count_tables`."""
    n = logpi.shape[0]
    h = np.zeros((n, N_PAR))
    K = np.zeros((n, N_PAIR))
    if want >= 1:
        b1 = first_rhs(logpi, u_lo, nu, s_lo, ns)
        h = solve_scaled(fptr, fr, nel, pool, fac_ptr, piv, logpi, b1)
    if want >= 2:
        # K = (d2 pi) / pi = k + h h^T, fixed up to a constant by sum pi K = 0
        b2 = second_rhs(logpi, h, u_lo, nu, s_lo, ns)
        K = solve_scaled(fptr, fr, nel, pool, fac_ptr, piv, logpi, b2)
    return count_tables(logpi, h, K, nu, ns, want)


# ---------------------------------------------------------------------------
# named view of the per-bin rows
# ---------------------------------------------------------------------------

def _read_only(a):
    a = a.view()
    a.flags.writeable = False
    return a


class JointRows:
    """Per-bin results (log P, score, information) read by name (no copy).

    A row is ``N_ROW`` numbers: log P, the score in (a, b, lam, gam), the
    observed information's upper triangle in the order of ``PAIRS``.

    ``logp`` (m,), ``score`` (m, 4) in (a, b, lam, gam), ``info`` (m, 4, 4)
    the observed information (minus the Hessian of log P) in the same order.
    """

    PARAMETERS = ("a", "b", "lam", "gam")
    __slots__ = ("_raw",)

    def __init__(self, raw):
        raw = np.asarray(raw, dtype=float)
        if raw.ndim != 2 or raw.shape[1] != N_ROW:
            raise ValueError(f"joint result rows must have shape (m, {N_ROW}); got {raw.shape}")
        self._raw = raw

    def __len__(self):
        return self._raw.shape[0]

    @property
    def logp(self):
        """log P of each bin."""
        return _read_only(self._raw[:, 0])

    @property
    def score(self):
        """d log P / d(a, b, lam, gam), shape (m, 4)."""
        return _read_only(self._raw[:, 1:1 + N_PAR])

    @property
    def info(self):
        """Observed information -d2 log P, shape (m, 4, 4), symmetric."""
        m = self._raw.shape[0]
        out = np.empty((m, N_PAR, N_PAR))
        for q, (k, l) in enumerate(PAIRS):
            out[:, k, l] = self._raw[:, 1 + N_PAR + q]
            out[:, l, k] = self._raw[:, 1 + N_PAR + q]
        return out
