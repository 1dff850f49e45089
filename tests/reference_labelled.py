"""Independent reference for the labelled (new, old) law: the chemical master
equation of (promoter, new, old) over the pulse, on a truncated state space.

Nothing here shares code or decomposition with telegraph.labelled:

1. the pre-pulse stationary law of (promoter, molecules) is the null vector of
   the truncated two-species generator, computed by the GTH variant of
   Gaussian elimination (Grassmann, Taksar & Heyman 1985: pivots are sums of
   off-diagonal rates, so there is no subtraction and every probability has a
   small relative error);
2. the pulse is the transient master equation of (G, new, old) in absolute
   time, started from (G, 0, M) ~ that stationary law, solved by the matrix
   exponential as its uniformization series e^{Qt} = sum_k Pois(k; Lt) P^k,
   P = I + Q/L >= 0 (scipy.sparse mat-vecs; all terms non-negative, so small
   probabilities keep their relative accuracy, unlike expm_multiply, which
   test_labelled uses only to confirm this on the bulk);
3. capture and misclassification are applied to the molecule counts at
   harvest by explicit binomial / multinomial sums.

Every step works in complex arithmetic, so derivatives come from complex steps
(``rate + 1e-30j``), the reference's own exact differentiation.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln
from scipy.stats import poisson


def box_size(k_syn, k_deg, capture=1.0, level=-80.0):
    """A count above which every law here is below e^level: the molecules of a
    cell are dominated by Poisson(k_syn / k_deg)."""
    lam = float(np.real(k_syn) / np.real(k_deg))
    k = int(lam) + 1
    while poisson.logpmf(k, lam) > level:
        k += 1 + k // 50
    return k


def gth_null(Q):
    """Stationary law of a dense generator by GTH elimination (complex allowed)."""
    A = np.array(Q, dtype=complex if np.iscomplexobj(Q) else float)
    n = A.shape[0]
    np.fill_diagonal(A, 0.0)
    for k in range(n - 1, 0, -1):
        s = A[k, :k].sum()
        A[:k, k] /= s
        A[:k, :k] += np.outer(A[:k, k], A[k, :k])
    pi = np.zeros(n, dtype=A.dtype)
    pi[0] = 1.0
    for k in range(1, n):
        pi[k] = pi[:k] @ A[:k, k]
    return pi / pi.sum()


def stationary(k_on, k_off, k_syn, k_deg, M):
    """pi[g, n], n = 0..M, of the one-species chain (transitions beyond M dropped)."""
    dt = complex if any(np.iscomplexobj(v) for v in (k_on, k_off, k_syn, k_deg)) else float
    S = 2 * (M + 1)
    Q = np.zeros((S, S), dtype=dt)

    def ix(g, n):
        return g * (M + 1) + n

    for n in range(M + 1):
        Q[ix(0, n), ix(1, n)] = k_on
        Q[ix(1, n), ix(0, n)] = k_off
        if n < M:
            Q[ix(1, n), ix(1, n + 1)] = k_syn
        if n > 0:
            Q[ix(0, n), ix(0, n - 1)] = k_deg * n
            Q[ix(1, n), ix(1, n - 1)] = k_deg * n
    return gth_null(Q).reshape(2, M + 1)


def pulse_generator(k_on, k_off, k_syn, k_deg, Nn, No):
    """Forward generator (columns = source states) of (G, new, old) on
    {0,1} x 0..Nn x 0..No; births at new = Nn leave the space."""
    dt = complex if any(np.iscomplexobj(v) for v in (k_on, k_off, k_syn, k_deg)) else float
    g, i, j = np.meshgrid(np.arange(2), np.arange(Nn + 1), np.arange(No + 1), indexing="ij")
    g, i, j = g.ravel(), i.ravel(), j.ravel()

    def ix(g, i, j):
        return (g * (Nn + 1) + i) * (No + 1) + j

    src, dst, rate = [], [], []
    S = g.size
    out = np.zeros(S, dtype=dt)

    def add(mask, d, r):
        r = np.broadcast_to(np.asarray(r, dtype=dt), mask.shape)[mask]
        src.append(np.flatnonzero(mask))
        dst.append(d)
        rate.append(r)

    m = g == 0
    add(m, ix(1, i[m], j[m]), k_on)
    out[m] += k_on
    m = g == 1
    add(m, ix(0, i[m], j[m]), k_off)
    out[m] += k_off
    m = (g == 1) & (i < Nn)
    add(m, ix(1, i[m] + 1, j[m]), k_syn)
    out[g == 1] += k_syn           # births at the edge are lost
    m = i > 0
    add(m, ix(g[m], i[m] - 1, j[m]), k_deg * i)
    m = j > 0
    add(m, ix(g[m], i[m], j[m] - 1), k_deg * j)
    out += k_deg * (i + j)
    src = np.concatenate(src)
    dst = np.concatenate(dst)
    rate = np.concatenate(rate)
    Q = sp.csr_matrix((rate, (dst, src)), shape=(S, S), dtype=dt)
    return Q - sp.diags(out), np.real(out).max()


def pulse_law(k_on, k_off, k_syn, k_deg, t_label, Nn, No, level=-95.0):
    """P[new, old] of the molecules present at the end of the pulse (all
    molecules, before capture), by uniformization. Returns (P, lost): lost
    bounds the probability of the paths that left the box."""
    pi0 = stationary(k_on, k_off, k_syn, k_deg, No)
    Q, L = pulse_generator(k_on, k_off, k_syn, k_deg, Nn, No)
    P = sp.identity(Q.shape[0], dtype=Q.dtype, format="csr") + Q / L
    v = np.zeros((2, Nn + 1, No + 1), dtype=Q.dtype)
    v[:, 0, :] = pi0
    v = v.ravel()
    Lt = L * t_label
    acc = np.zeros_like(v)
    logw = -Lt
    k = 0
    while True:
        acc += np.exp(logw) * v
        if k > Lt and logw - np.log1p(-Lt / (k + 1.0)) < level:
            break
        v = P @ v
        k += 1
        logw += np.log(Lt) - np.log(k)
    acc = acc.reshape(2, Nn + 1, No + 1).sum(axis=0)
    lost = 1.0 - float(np.real(acc.sum()))
    return acc, lost


def observe(P, capture=1.0, detection=1.0):
    """Observed (new, old) law: each molecule captured with ``capture``; a
    captured new molecule is seen as new with ``detection``, else as old."""
    Nn, No = P.shape[0] - 1, P.shape[1] - 1
    n = np.arange(Nn + 1)[:, None, None]
    k = np.arange(Nn + 1)[None, :, None]
    j = np.arange(Nn + 1)[None, None, :]
    r = n - k - j
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = (gammaln(n + 1) - gammaln(k + 1) - gammaln(j + 1) - gammaln(np.maximum(r, 0) + 1)
              + _xlog(k, capture * detection) + _xlog(j, capture * (1 - detection))
              + _xlog(r, 1 - capture))
    A = np.where(r >= 0, np.exp(lp), 0.0)                    # A[n, k, j]
    o = np.arange(No + 1)[:, None]
    mo = np.arange(No + 1)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        lb = (gammaln(o + 1) - gammaln(mo + 1) - gammaln(np.maximum(o - mo, 0) + 1)
              + _xlog(mo, capture) + _xlog(o - mo, 1 - capture))
    B = np.where(o >= mo, np.exp(lb), 0.0)                   # B[o, mo]
    R = np.tensordot(A.astype(P.dtype), P, axes=([0], [0]))   # R[k, j, o]
    S = (R.reshape(-1, No + 1) @ B.astype(P.dtype)).reshape(R.shape)   # S[k, j, mo]
    out = np.zeros((Nn + 1, No + Nn + 1), dtype=S.dtype)
    for jj in range(Nn + 1):
        out[:, jj:jj + No + 1] += S[:, jj, :]
    return out[:, :No + 1]


def _xlog(count, p):
    """count * log(p), 0 where count == 0 (also for p == 0)."""
    count = np.asarray(count, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = count * np.log(p) if p > 0 else np.where(count == 0, 0.0, -np.inf)
    return np.where(count == 0, 0.0, v)


def log_table(k_on, k_off, k_syn, k_deg, t_label, capture=1.0, detection=1.0, box=None):
    """log P(new, old) for new, old = 0..box (the observed counts)."""
    if box is None:
        box = box_size(k_syn, k_deg)
    P, lost = pulse_law(k_on, k_off, k_syn, k_deg, t_label, box, box)
    Pobs = observe(P, capture, detection) if (capture != 1.0 or detection != 1.0) else P
    with np.errstate(divide="ignore"):
        return np.log(np.real(Pobs)), lost


def score_table(k_on, k_off, k_syn, k_deg, t_label, capture=1.0, detection=1.0, box=None,
                h=1e-30):
    """d log P / d (k_on, k_off, k_syn, k_deg) on the same table, by complex steps
    through the whole reference (stationary GTH, uniformization, readout)."""
    if box is None:
        box = box_size(k_syn, k_deg)
    rates = [k_on, k_off, k_syn, k_deg]
    out = []
    for p in range(4):
        r = [complex(v) for v in rates]
        r[p] += 1j * h
        P, _ = pulse_law(*r, t_label, box, box)
        Pobs = observe(P, capture, detection) if (capture != 1.0 or detection != 1.0) else P
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.imag(Pobs) / h / np.real(Pobs))
    return np.stack(out, axis=-1)
