"""An independent re-implementation of the txburst maximum-likelihood method
(Larsson et al. 2019, ``txburstML.py``), used as the baseline that telegraph
must match or beat. Written from the paper's description, not copied:

- P(n) = int_0^1 Poisson(n; k_syn p) Beta(p; k_on, k_off) dp by 50-node
  Gauss-Jacobi quadrature on [-1, 1] (p = (1 + x) / 2),
- negative log-likelihood -sum log(P(n) + 1e-10),
- L-BFGS-B with finite-difference gradients, bounds k_on, k_off in
  [1e-3, 1e3] and k_syn in [1, 1e4], started from the moment estimates
  (falling back to (10, 10, 10) when they are not all positive).

Rates are in units of k_deg; no capture efficiency (txburst has none).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special, stats

NODES = 50
BOUNDS = [(1e-3, 1e3), (1e-3, 1e3), (1.0, 1e4)]


def pmf_quadrature(n, k_on, k_off, k_syn, nodes=NODES):
    """Poisson-Beta pmf by Gauss-Jacobi quadrature (the txburst way)."""
    n = np.asarray(n, dtype=float).reshape(-1, 1)
    # weight (1-x)^(k_off-1) (1+x)^(k_on-1) on [-1, 1]
    x, w = special.roots_jacobi(nodes, k_off - 1.0, k_on - 1.0)
    mu = k_syn * (1.0 + x) / 2.0
    g = (w * stats.poisson.pmf(n, mu)).sum(axis=1)
    return g * 2.0 ** (-(k_on + k_off - 1.0)) / special.beta(k_on, k_off)


def nll(params, counts):
    k_on, k_off, k_syn = params
    return -np.sum(np.log(pmf_quadrature(counts, k_on, k_off, k_syn) + 1e-10))


def moment_start(counts):
    x = np.asarray(counts, dtype=float)
    m1 = x.mean()
    m2 = (x * (x - 1)).mean()
    m3 = (x * (x - 1) * (x - 2)).mean()
    with np.errstate(all="ignore"):
        r1, r2, r3 = m1, m2 / m1, m3 / m2
        den = r1 * r2 - 2 * r1 * r3 + r2 * r3
        den2 = r1 - 2 * r2 + r3
        k_on = 2 * r1 * (r3 - r2) / den
        k_off = 2 * (r3 - r2) * (r1 - r3) * (r2 - r1) / (den * den2)
        k_syn = (-r1 * r2 + 2 * r1 * r3 - r2 * r3) / den2
    est = np.array([k_on, k_off, k_syn])
    if not (np.isfinite(est).all() and (est > 0).all()):
        return np.array([10.0, 10.0, 10.0])
    return est


def fit_gene(counts):
    """txburst ML estimate (k_on, k_off, k_syn) of one gene's counts (NaN dropped)."""
    x = np.asarray(counts, dtype=float)
    x = np.round(x[np.isfinite(x)])
    x0 = np.clip(moment_start(x), [b[0] for b in BOUNDS], [b[1] for b in BOUNDS])
    res = optimize.minimize(nll, x0, args=(x,), method="L-BFGS-B", bounds=BOUNDS)
    return res.x
