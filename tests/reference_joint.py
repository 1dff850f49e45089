"""Independent reference for the joint (unspliced, spliced) law of the telegraph
model with splicing: the truncated chemical master equation of (promoter, U, S)
solved by exact linear algebra.

Nothing here imports ``telegraph``. Rates in units of k_splice = 1:
a = k_on, b = k_off, lam = k_syn (times capture), gam = k_deg. States (u, s, g)
with 0 <= u < nu, 0 <= s < ns, g in {0 (off), 1 (on)}, indexed here as
``(u * ns + s) * 2 + g`` (the package orders them otherwise). Transitions
leaving the box are dropped (a reflecting truncation); the box must be large
enough that this does not matter, which :func:`stationary` checks by the mass
on its upper edges.

Two solvers, cross-checked:

* :func:`stationary_levels`: block elimination level by level in s (compiled
  with Numba; the package's own solver orders the states by nested dissection)
  (censoring the chain on levels s' <= s, from the top down), every pivot
  taken as the sum of its row's off-diagonal rates (Grassmann, Taksar & Heyman
  1985), so that all operations add or multiply positive numbers and each
  probability keeps a small *relative* error however small it is;
* :func:`stationary_sparse`: SuperLU (scipy.sparse.linalg.splu) on the
  generator with one balance equation replaced by the normalisation. On its
  own this has absolute accuracy only (tail probabilities below ~1e-16 of the
  largest are noise), so it is applied to the generator after the similarity
  scaling D^-1 Q^T D, D = diag(w), w ~ pi (from the level elimination): the
  scaled system has entries of the size of the rates and its solution is
  pi / w ~ 1, so its absolute accuracy is relative accuracy for pi. The
  solution does not depend on w; only its accuracy does.

:func:`stationary` returns the sparse-scaled solution and the largest
deviation of the scaled solution from 1 (the two solvers' agreement).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.special import logsumexp
from numba import njit
from scipy.stats import binom


def index(u, s, g, ns):
    return (np.asarray(u) * ns + np.asarray(s)) * 2 + np.asarray(g)


def generator(a, b, lam, gam, nu, ns):
    """Sparse generator (rows: from) of the truncated chain."""
    rows, cols, vals = [], [], []
    u, s = np.meshgrid(np.arange(nu), np.arange(ns), indexing="ij")
    u = u.ravel()
    s = s.ravel()

    def add(src, dst, rate, mask):
        rows.append(src[mask])
        cols.append(dst[mask])
        vals.append(np.broadcast_to(rate, src.shape)[mask].astype(float))

    for g in (0, 1):
        x = index(u, s, g, ns)
        add(x, index(u, s, 1 - g, ns), a if g == 0 else b, np.ones(u.shape, bool))
        if g == 1:
            add(x, index(u + 1, s, 1, ns), lam, u + 1 < nu)
        add(x, index(u - 1, s + 1, g, ns), u.astype(float), (u >= 1) & (s + 1 < ns))
        add(x, index(u, s - 1, g, ns), gam * s, s >= 1)
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    v = np.concatenate(vals)
    n = 2 * nu * ns
    Q = sp.csr_matrix((v, (r, c)), shape=(n, n))
    return (Q - sp.diags(np.asarray(Q.sum(axis=1)).ravel())).tocsr()


@njit(cache=True)
def _levels(a, b, lam, gam, nu, ns):
    w = 2 * nu
    L = np.zeros((w, w))                 # within a level: phase u * 2 + g
    for p in range(w):
        u = p // 2
        if p % 2 == 0:
            L[p, p + 1] = a
        else:
            L[p, p - 1] = b
            if u + 1 < nu:
                L[p, p + 2] = lam
    blocks = np.zeros((ns, 2 * w, 2 * w))
    pivs = np.zeros((ns, w))
    C = L.copy()
    for s in range(ns - 1, 0, -1):
        F = blocks[s]
        F[:w, :w] = C
        for p in range(w):
            F[p, w + p] = gam * s                        # level s -> s - 1
            u = p // 2
            if u >= 1:
                F[w + p, p - 2] = u                      # level s - 1 -> s (splicing)
        F[w:, w:] = L
        for t in range(w):
            sp_ = 0.0
            for j in range(t + 1, 2 * w):
                sp_ += F[t, j]
            pivs[s, t] = sp_
            for r in range(t + 1, 2 * w):
                x = F[r, t] / sp_
                if x != 0.0:
                    for j in range(t + 1, 2 * w):
                        F[r, j] += x * F[t, j]
        C = F[w:, w:].copy()
    F0 = C
    piv0 = np.zeros(w)
    for t in range(w - 1):
        sp_ = 0.0
        for j in range(t + 1, w):
            sp_ += F0[t, j]
        piv0[t] = sp_
        for r in range(t + 1, w):
            x = F0[r, t] / sp_
            if x != 0.0:
                for j in range(t + 1, w):
                    F0[r, j] += x * F0[t, j]
    logpi = np.full((ns, w), -np.inf)
    v = np.zeros(w)
    v[w - 1] = 1.0
    for t in range(w - 2, -1, -1):
        acc = 0.0
        for j in range(t + 1, w):
            acc += v[j] * F0[j, t]
        v[t] = acc / piv0[t]
    for p in range(w):
        logpi[0, p] = math.log(v[p])
    vf = np.zeros(2 * w)
    for s in range(1, ns):
        F = blocks[s]
        m = logpi[s - 1].max()
        for p in range(w):
            vf[w + p] = math.exp(logpi[s - 1, p] - m)
        for t in range(w - 1, -1, -1):
            acc = 0.0
            for j in range(t + 1, 2 * w):
                acc += vf[j] * F[j, t]
            vf[t] = acc / pivs[s, t]
        for p in range(w):
            logpi[s, p] = m + math.log(vf[p]) if vf[p] > 0.0 else -np.inf
    return logpi


def stationary_levels(a, b, lam, gam, nu, ns):
    """log pi (nu, ns, 2) by GTH block elimination over the levels of s: the
    chain is censored on the levels below s, from the top level down; the
    pivot of each eliminated state is the sum of its off-diagonal rates."""
    logpi = _levels(float(a), float(b), float(lam), float(gam), int(nu), int(ns))
    logpi -= logsumexp(logpi)
    # (ns, u * 2 + g) -> (nu, ns, 2)
    return logpi.reshape(ns, nu, 2).transpose(1, 0, 2)


def stationary_sparse(Q, log_w=None):
    """pi from SuperLU, optionally on the generator scaled by w = exp(log_w)."""
    n = Q.shape[0]
    if log_w is None:
        log_w = np.zeros(n)
    w = np.exp(np.maximum(log_w - log_w.max(), -600.0))
    A = (sp.diags(1.0 / w) @ Q.T @ sp.diags(w)).tolil()
    k = int(np.argmax(w))
    A[k, :] = w          # normalisation sum w y = 1 replaces one balance equation
    rhs = np.zeros(n)
    rhs[k] = 1.0
    y = spla.splu(A.tocsc()).solve(rhs)
    return y, np.log(np.maximum(w * y, 1e-320))


def stationary(a, b, lam, gam, nu, ns, edge=-75.0):
    """log P(U=u, S=s) (nu, ns), marginal over the promoter, and the largest
    |y - 1| of the scaled sparse solve. Raises :class:`BoxTooSmall` if an upper
    edge of the box carries more than exp(edge)."""
    lp3 = stationary_levels(a, b, lam, gam, nu, ns)
    lw = lp3.reshape(-1)                 # (u, s, g) order
    Q = generator(a, b, lam, gam, nu, ns)
    y, lpi = stationary_sparse(Q, lw)
    live = lw > lw.max() - 150.0
    dev = float(np.max(np.abs(y[live] / y[np.argmax(lw)] - 1.0)))
    lpi = lpi.reshape(nu, ns, 2)
    lpi -= logsumexp(lpi)
    lp = logsumexp(lpi, axis=2)
    eu, es = lp[-1, :].max(), lp[:, -1].max()
    if eu > edge or es > edge:
        raise BoxTooSmall(eu > edge, es > edge)
    return lp, dev


class BoxTooSmall(ValueError):
    """An upper edge of the reference box carries too much probability."""

    def __init__(self, grow_u, grow_s):
        super().__init__(f"reference box too small (grow unspliced: {grow_u}, "
                         f"spliced: {grow_s})")
        self.grow_u = grow_u
        self.grow_s = grow_s


def moments(a, b, lam, gam):
    """Exact E[U], E[S], Var U, Var S, Cov(U, S) from the closed moment equations
    of the chain (first and second factorial moments joint with the promoter
    state), solved as a small linear system."""
    # unknowns: m1 = P(on); E[U;g], E[S;g] (g = 0, 1); second: E[U(U-1)], E[S(S-1)], E[US]
    f = a / (a + b)
    # first moments with the promoter: 0 = d/dt E[X 1_g]
    # E[U;1]: 0 = lam f - (1 + b) x1 + a x0 ; E[U;0]: 0 = b x1 - (1 + a) x0
    A = np.array([[-(1 + b), a], [b, -(1 + a)]])
    xu = np.linalg.solve(A, [-lam * f, 0.0])                   # (E[U;1], E[U;0])
    As = np.array([[-(gam + b), a], [b, -(gam + a)]])
    xs = np.linalg.solve(As, [-xu[0], -xu[1]])                 # (E[S;1], E[S;0])
    # second factorial moments with the promoter: Y = (E[U(U-1);g], E[US;g], E[S(S-1);g])
    # d E[U(U-1);g] = 2 lam [g] E[U;g] - 2 E[U(U-1);g] + switching
    # d E[US;g]    = lam [g] E[S;g] + E[U(U-1);g] - (1 + gam) E[US;g] + switching
    # d E[S(S-1);g] = 2 E[US;g] - 2 gam E[S(S-1);g] + switching
    n = 6
    M = np.zeros((n, n))
    r = np.zeros(n)
    # order: uu1, uu0, us1, us0, ss1, ss0
    sw = np.array([[-b, a], [b, -a]])
    for blk, dec in ((0, 2.0), (2, 1.0 + gam), (4, 2.0 * gam)):
        M[blk:blk + 2, blk:blk + 2] = sw - dec * np.eye(2)
    r[0] = -2 * lam * xu[0]
    r[2] = -lam * xs[0]
    M[2, 0] += 1.0
    M[3, 1] += 1.0
    M[4, 2] += 2.0
    M[5, 3] += 2.0
    y = np.linalg.solve(M, r)
    EU = xu.sum()
    ES = xs.sum()
    EUU = y[0] + y[1]
    EUS = y[2] + y[3]
    ESS = y[4] + y[5]
    return dict(mean_u=EU, mean_s=ES, var_u=EUU + EU - EU ** 2, var_s=ESS + ES - ES ** 2,
                cov=EUS - EU * ES)


def auto_box(a, b, lam, gam, k=12.0):
    """A box from the exact moments; :func:`stationary` checks that it holds
    the law (the caller grows it when it does not)."""
    m = moments(a, b, lam, gam)
    nu = int(m["mean_u"] + k * math.sqrt(m["var_u"]) + 15) + 1
    ns = int(m["mean_s"] + k * math.sqrt(m["var_s"]) + 15) + 1
    return nu, ns


def solve(a, b, lam, gam, edge=-75.0):
    """:func:`stationary` on a box grown until its upper edges are below exp(edge)
    (a truncation at exp(-75) moves log P at the exp(-50) contour by ~1e-12)."""
    nu, ns = auto_box(a, b, lam, gam)
    while True:
        try:
            return stationary(a, b, lam, gam, nu, ns, edge)
        except BoxTooSmall as e:
            nu = int(nu * 1.4) + 5 if e.grow_u else nu
            ns = int(ns * 1.4) + 5 if e.grow_s else ns


def thin_u(lp, rho):
    """Binomial thinning of the unspliced counts of a table log P (nu, ns)."""
    nu = lp.shape[0]
    out = np.full_like(lp, -np.inf)
    n = np.arange(nu)
    for k in range(nu):
        lb = binom.logpmf(k, n, rho)
        out[k] = logsumexp(lp + lb[:, None], axis=0)
    return out


def thin_s(lp, rho):
    """Binomial thinning of the spliced counts."""
    return thin_u(lp.T, rho).T
