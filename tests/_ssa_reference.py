"""Independent references for the simulator tests.

Exact linear algebra only: the moment equations of the telegraph model
(closed, linear) solved by a matrix exponential; the chemical master equation
on a truncated state space (finite state projection) for stationary and
transient laws; plus the statistics used to compare samples with them.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.stats as st
from scipy.sparse.linalg import expm_multiply


# -- telegraph moments -----------------------------------------------------------------
def telegraph_moments(t, k_on, k_off, k_syn, k_deg, g0=0, m0=0):
    """Exact E[M(t)] and Var[M(t)] from the state (g0, m0) at time 0.

    y = (E g, E m, E gm, E m^2) obeys the closed linear system
      dEg   = k_on - (k_on + k_off) Eg
      dEm   = k_syn Eg - k_deg Em
      dEgm  = k_on Em - (k_on + k_off + k_deg) Egm + k_syn Eg
      dEm2  = 2 k_syn Egm + k_syn Eg - 2 k_deg Em2 + k_deg Em
    solved with the exponential of the affine system augmented by a constant.
    """
    A = np.zeros((5, 5))
    A[0, 0] = -(k_on + k_off)
    A[0, 4] = k_on
    A[1, 0] = k_syn
    A[1, 1] = -k_deg
    A[2, 0] = k_syn
    A[2, 1] = k_on
    A[2, 2] = -(k_on + k_off + k_deg)
    A[3, 0] = k_syn
    A[3, 1] = k_deg
    A[3, 2] = 2 * k_syn
    A[3, 3] = -2 * k_deg
    y0 = np.array([g0, m0, g0 * m0, m0 * m0, 1.0], dtype=float)
    y = sla.expm(A * t) @ y0
    mean = y[1]
    return mean, y[3] - mean * mean


def stationary_mean_fano(k_on, k_off, k_syn, k_deg):
    mean = k_syn * k_on / (k_deg * (k_on + k_off))
    fano = 1 + k_syn * k_off / ((k_on + k_off) * (k_on + k_off + k_deg))
    return mean, fano


# -- master equation ------------------------------------------------------------------
def telegraph_generator(k_on, k_off, k_syn, k_deg, n_max):
    """Generator (column convention dP/dt = Q P) on states (g, n), index g*(n_max+1)+n.
    Synthesis out of n_max is dropped (reflecting), which is harmless when the
    mass near n_max is negligible."""
    N = n_max + 1
    Q = np.zeros((2 * N, 2 * N))

    def add(frm, to, rate):
        Q[to, frm] += rate
        Q[frm, frm] -= rate

    for n in range(N):
        add(n, N + n, k_on)                 # off -> on
        add(N + n, n, k_off)                # on -> off
        if n < n_max:
            add(N + n, N + n + 1, k_syn)    # synthesis while on
        if n > 0:
            add(n, n - 1, k_deg * n)
            add(N + n, N + n - 1, k_deg * n)
    return Q


def telegraph_stationary_joint(k_on, k_off, k_syn, k_deg, n_max):
    """Stationary P(g, n) as an array (2, n_max+1) from the truncated CME."""
    Q = telegraph_generator(k_on, k_off, k_syn, k_deg, n_max)
    M = Q.copy()
    M[-1, :] = 1.0
    rhs = np.zeros(Q.shape[0])
    rhs[-1] = 1.0
    p = np.linalg.solve(M, rhs)
    p = np.clip(p, 0, None)
    return (p / p.sum()).reshape(2, n_max + 1)


def telegraph_stationary_logjoint_quad(g, n, k_on, k_off, k_syn, k_deg):
    """log P(G = g, M = n) at stationarity by quadrature of the latent-activity
    integral: P(on, n) = E[p Pois(n; lam p)], P(off, n) = E[(1-p) Pois(n; lam p)],
    p ~ Beta(a, b). QUADPACK's algebraic weight absorbs the endpoint
    singularities p^(a-1) (1-p)^(b-1), so small probabilities keep their
    relative accuracy."""
    from scipy.integrate import quad
    from scipy.special import betaln

    a, b, lam = k_on / k_deg, k_off / k_deg, k_syn / k_deg
    out = []
    for gi, ni in zip(np.ravel(g), np.ravel(n)):
        def f(p, gi=gi, ni=ni):
            w = p if gi else 1.0 - p
            return w * st.poisson.pmf(ni, lam * p)
        val, _ = quad(f, 0.0, 1.0, weight="alg", wvar=(a - 1.0, b - 1.0),
                      epsabs=0.0, epsrel=1e-13, limit=200)
        out.append(np.log(val) - betaln(a, b))
    return np.array(out).reshape(np.shape(g))


def telegraph_transient(t, k_on, k_off, k_syn, k_deg, n_max, g0=0, m0=0):
    """P(g, n) at time t from (g0, m0), as (2, n_max+1)."""
    Q = telegraph_generator(k_on, k_off, k_syn, k_deg, n_max)
    p0 = np.zeros(Q.shape[0])
    p0[g0 * (n_max + 1) + m0] = 1.0
    return (sla.expm(Q * t) @ p0).reshape(2, n_max + 1)


def thin(pmf, s):
    """Law of Binomial(n, s) when n has law ``pmf`` (index = n)."""
    if s == 1.0:
        return np.asarray(pmf, float)
    n = np.arange(len(pmf))
    B = st.binom.pmf(n[None, :], n[:, None], s)   # B[n, k]
    return np.asarray(pmf, float) @ B


def network_fsp(net, initial, t, caps):
    """Finite state projection of a MassActionNetwork: P(state) at times t.

    States are explored from ``initial`` (dict) with copy numbers capped at
    ``caps`` (dict species -> max); transitions leaving the box leak, so the
    returned ``lost`` mass bounds the truncation error.
    Returns (states array (n_states, S), P array (len(t), n_states), lost).
    """
    species = net.species
    nu, delta = net.stoichiometry()
    rates = np.array([net.rates[r.rate] for r in net.reactions])
    cap = np.array([caps.get(s, 10**9) for s in species])
    x0 = tuple(int(initial.get(s, 0)) for s in species)
    index = {x0: 0}
    states = [x0]
    rows, cols, vals = [], [], []
    diag = []
    i = 0
    while i < len(states):
        x = np.array(states[i])
        out = 0.0
        for j in range(len(rates)):
            h = 1.0
            for s_ in range(len(species)):
                for q in range(nu[j, s_]):
                    h *= (x[s_] - q) / (q + 1.0)
            a = rates[j] * max(h, 0.0)
            if a == 0.0:
                continue
            out += a
            y = x + delta[j]
            if np.any(y > cap):
                continue                     # leaks out of the projection
            ty = tuple(int(v) for v in y)
            if ty not in index:
                index[ty] = len(states)
                states.append(ty)
            rows.append(index[ty])
            cols.append(i)
            vals.append(a)
        diag.append(out)
        i += 1
    n = len(states)
    Q = sp.csc_matrix((vals, (rows, cols)), shape=(n, n)) - sp.diags(diag)
    p0 = np.zeros(n)
    p0[0] = 1.0
    ts = np.atleast_1d(np.asarray(t, float))
    P = np.array([expm_multiply(Q * tk, p0) if tk > 0 else p0 for tk in ts])
    return np.array(states), P, 1.0 - P.sum(axis=1)


def marginal(states, P, col, n_max=None):
    """Marginal pmf of one species (column) from FSP output, shape (len(t), n_max+1)."""
    v = states[:, col]
    n_max = int(v.max()) if n_max is None else n_max
    out = np.zeros((P.shape[0], n_max + 1))
    for k in range(P.shape[0]):
        out[k] = np.bincount(v, weights=P[k], minlength=n_max + 1)[:n_max + 1]
    return out


# -- statistics -----------------------------------------------------------------------
def chisq_gof(sample, pmf, min_expected=5.0):
    """Chi-square goodness of fit of integer ``sample`` to ``pmf`` (index = value;
    mass beyond the array goes to the last pooled bin). Adjacent values are
    pooled until every bin expects >= ``min_expected``. Returns the p-value."""
    sample = np.asarray(sample).ravel()
    N = sample.size
    pmf = np.asarray(pmf, float)
    obs_full = np.bincount(np.minimum(sample, len(pmf)), minlength=len(pmf) + 1)
    exp_full = np.append(pmf, max(0.0, 1.0 - pmf.sum())) * N
    obs, exp = [], []
    o = e = 0.0
    for oi, ei in zip(obs_full, exp_full):
        o += oi
        e += ei
        if e >= min_expected:
            obs.append(o)
            exp.append(e)
            o = e = 0.0
    if e > 0 or o > 0:
        if exp:
            obs[-1] += o
            exp[-1] += e
        else:
            obs.append(o)
            exp.append(e)
    obs, exp = np.array(obs), np.array(exp)
    stat = ((obs - exp) ** 2 / exp).sum()
    return st.chi2.sf(stat, len(obs) - 1)


def chisq_two_sample(x, y, min_count=10):
    """Chi-square test that two integer samples share one law (pooled bins)."""
    x = np.asarray(x).ravel()
    y = np.asarray(y).ravel()
    top = int(max(x.max(), y.max())) + 1
    cx = np.bincount(x, minlength=top)
    cy = np.bincount(y, minlength=top)
    table = []
    ox = oy = 0
    for a, b in zip(cx, cy):
        ox += a
        oy += b
        if ox + oy >= min_count:
            table.append((ox, oy))
            ox = oy = 0
    if ox + oy:
        table[-1] = (table[-1][0] + ox, table[-1][1] + oy)
    table = np.array(table, float)
    return st.chi2_contingency(table.T, correction=False)[1]


def fano_and_se(x):
    """Sample Fano factor and its delta-method standard error."""
    x = np.asarray(x, float).ravel()
    n = x.size
    m = x.mean()
    d = x - m
    v = (d ** 2).mean()
    mu3 = (d ** 3).mean()
    mu4 = (d ** 4).mean()
    var_f = ((mu4 - v * v) / m ** 2 - 2 * v * mu3 / m ** 3 + v ** 3 / m ** 4) / n
    return v * n / (n - 1) / m, np.sqrt(var_f)


def mean_and_se(x, axis=0):
    x = np.asarray(x, float)
    return x.mean(axis=axis), x.std(axis=axis, ddof=1) / np.sqrt(x.shape[axis])
