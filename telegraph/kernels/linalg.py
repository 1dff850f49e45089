"""Small dense linear algebra for the per-gene fits, in Numba.

Everything here is 3x3: the telegraph model has three log parameters theta.
Solvers: :func:`solve_damped` (Levenberg-damped Cholesky on a subset of the
coordinates, the Newton step of the optimiser) and :func:`solve3` (Gaussian
elimination with partial pivoting, for systems that need not be positive
definite). Coordinate changes: profiling works in linear reparameterisations
phi = T theta (:func:`to_phi`, :func:`to_theta`), in which gradient and
information transform by :func:`grad_info_phi` (docs/maths.md, "Profile
likelihood"). And one plain NumPy helper for the Python side: :func:`sym3`, the
symmetric matrices of the upper triangles the kernels write (information blocks).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit

__all__ = ["solve_damped", "solve3", "to_phi", "to_theta", "grad_info_phi", "sym3"]


#: floats of scratch :func:`solve_damped` takes
SOLVE_WORK = 27


@njit(cache=True, error_model="numpy", borrow=True)
def solve_damped(H, g, free, nfree, mu, step, work):
    """Solve (H_ff + mu I) d = g_f by Cholesky; returns False if not PD.
    ``work``: SOLVE_WORK floats of scratch."""
    f0 = 0
    f1 = 0
    f2 = 0
    m = 0
    for i in range(3):
        if free[i]:
            if m == 0:
                f0 = i
            elif m == 1:
                f1 = i
            else:
                f2 = i
            m += 1
    idx = (f0, f1, f2)   # the free coordinates, first m of them
    A = work[0:9].reshape((3, 3))
    rhs = work[9:12]
    L = work[12:21].reshape((3, 3))
    y = work[21:24]
    z = work[24:27]
    for i in range(SOLVE_WORK):
        work[i] = 0.0
    for i in range(m):
        rhs[i] = g[idx[i]]
        for j in range(m):
            A[i, j] = H[idx[i], idx[j]]
        A[i, i] += mu
    for i in range(m):
        for j in range(i + 1):
            s = A[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            if i == j:
                if s <= 0.0 or not np.isfinite(s):
                    return False
                L[i, i] = math.sqrt(s)
            else:
                L[i, j] = s / L[j, j]
    for i in range(m):
        s = rhs[i]
        for k in range(i):
            s -= L[i, k] * y[k]
        y[i] = s / L[i, i]
    for i in range(m - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, m):
            s -= L[k, i] * z[k]
        z[i] = s / L[i, i]
    for i in range(3):
        step[i] = 0.0
    for i in range(m):
        step[idx[i]] = z[i]
    return True


@njit(cache=True, error_model="numpy")
def solve3(A, rhs, out):
    """Gaussian elimination with partial pivoting for a 3x3 system."""
    M = np.empty((3, 4))
    for i in range(3):
        for j in range(3):
            M[i, j] = A[i, j]
        M[i, 3] = rhs[i]
    for c in range(3):
        p = c
        for r in range(c + 1, 3):
            if abs(M[r, c]) > abs(M[p, c]):
                p = r
        if M[p, c] == 0.0 or not np.isfinite(M[p, c]):
            return False
        if p != c:
            for j in range(4):
                tmp = M[c, j]
                M[c, j] = M[p, j]
                M[p, j] = tmp
        for r in range(c + 1, 3):
            f = M[r, c] / M[c, c]
            for j in range(c, 4):
                M[r, j] -= f * M[c, j]
    for i in range(2, -1, -1):
        s = M[i, 3]
        for j in range(i + 1, 3):
            s -= M[i, j] * out[j]
        out[i] = s / M[i, i]
    return True


@njit(cache=True, error_model="numpy")
def to_phi(T, theta, phi):
    """phi = T theta."""
    for i in range(3):
        s = 0.0
        for j in range(3):
            s += T[i, j] * theta[j]
        phi[i] = s


@njit(cache=True, error_model="numpy")
def to_theta(Tinv, phi, theta):
    """theta = Tinv phi."""
    for i in range(3):
        acc = 0.0
        for j in range(3):
            acc += Tinv[i, j] * phi[j]
        theta[i] = acc


@njit(cache=True, error_model="numpy")
def grad_info_phi(Tinv, g, H, gp, Hp):
    """Gradient and information in phi = T theta: Tinv^T g and Tinv^T H Tinv."""
    for i in range(3):
        s = 0.0
        for k in range(3):
            s += Tinv[k, i] * g[k]
        gp[i] = s
    for i in range(3):
        for j in range(3):
            s = 0.0
            for k in range(3):
                for l in range(3):
                    s += Tinv[k, i] * H[k, l] * Tinv[l, j]
            Hp[i, j] = s


def sym3(block):
    """(n, 3, 3) symmetric matrices from (n, 6) upper triangles in the order
    (00, 01, 02, 11, 12, 22) -- the order the kernels write information blocks
    in (:func:`telegraph.kernels.fit._pack_sym3`, :func:`telegraph.kernels.poisson_beta.pb_eval`,
    :func:`telegraph.kernels.poisson_beta.histogram_eval`). Plain NumPy (not compiled)."""
    block = np.asarray(block, dtype=float)
    m = np.empty((block.shape[0], 3, 3))
    k = 0
    for i in range(3):
        for j in range(i, 3):
            m[:, i, j] = block[:, k]
            m[:, j, i] = block[:, k]
            k += 1
    return m
