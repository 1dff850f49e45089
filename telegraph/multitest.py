"""Multiple testing over genes: Benjamini-Hochberg, weighted BH and
information weights.

- :func:`benjamini_hochberg`: the step-up procedure of Benjamini & Hochberg
  (1995), FDR control over the tested genes;
- :func:`weighted_bh`: its weighted form (Genovese, Roeder & Wasserman 2006):
  gene i is judged on p_i / w_i; with weights that average 1 over the family
  (or, null-proportion adaptive, whose average weighted by the estimated null
  proportions is 1) and that do not depend on the null p-values, the FDR
  stays controlled;
- :func:`information_weights`: such weights from a covariate that carries no
  information about a null gene's p-value but predicts power -- for the
  differential tests, the standard error of the target in the fit of both
  groups pooled (docs/maths.md, "Differential bursting"). Genes are put into
  strata by the covariate; the p-values of the other folds (cross-weighting,
  as in Ignatiadis & Huber 2021) give each stratum a beta-uniform model of its
  p-values (Pounds & Morris 2003) and a Storey estimate of its null
  proportion; the weights are the thresholds that maximise the expected
  number of discoveries at the target FDR (equal density of the p-values at
  every stratum's threshold), normalised so that the null-proportion-weighted
  mean weight is 1 within each fold.

Plain NumPy/SciPy on arrays of p-values; NaN marks a gene outside the family.
"""

from __future__ import annotations

import numpy as np

from . import config

__all__ = ["benjamini_hochberg", "weighted_bh", "information_weights"]


def benjamini_hochberg(pvals):
    """Benjamini-Hochberg adjusted p-values (step-up, FDR control).

    NaN entries are left out of the family and stay NaN.
    """
    p = np.asarray(pvals, dtype=float)
    return weighted_bh(p, np.ones(p.shape))


def weighted_bh(pvals, weights):
    """Adjusted p-values of the weighted Benjamini-Hochberg procedure.

    Gene i is rejected at level q when ``p_i / w_i`` is among the k smallest
    such ratios with ``p_(k) / w_(k) <= q k / m`` (m = the genes with a
    finite p-value); the adjusted value is the smallest such q (capped at
    1). A weight of 0 gives adjusted p-value 1; NaN p-values stay NaN.

    Parameters
    ----------
    pvals, weights : array_like, same shape
        p-values in [0, 1] and non-negative weights.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values.
    """
    p = np.asarray(pvals, dtype=float)
    w = np.asarray(weights, dtype=float)
    if p.shape != w.shape:
        raise ValueError(f"pvals and weights must have the same shape; got {p.shape} and "
                         f"{w.shape}")
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    wk = w[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(wk > 0, p[ok] / np.where(wk > 0, wk, 1.0), np.inf)
    order = np.argsort(q, kind="stable")
    ranked = q[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def _bum_fit(p):
    """Maximum-likelihood beta-uniform mixture f(p) = lam + (1 - lam) a p^(a-1)
    (0 < a <= 1, 0 <= lam <= 1) of p-values; returns (lam, a)."""
    from scipy import optimize  # here, not at the top: half a second of start-up of every command

    p = np.clip(p, 1e-300, 1.0)
    lp = np.log(p)

    def nll(z):
        lam = 1.0 / (1.0 + np.exp(-z[0]))
        a = 1.0 / (1.0 + np.exp(-z[1]))
        return -np.sum(np.log(lam + (1.0 - lam) * a * np.exp((a - 1.0) * lp)))

    best = None
    for z0 in ((0.0, 0.0), (2.0, -2.5)):
        r = optimize.minimize(nll, np.asarray(z0), method="Nelder-Mead",
                              options={"xatol": 1e-4, "fatol": 1e-7, "maxiter": 1000})
        if best is None or r.fun < best.fun:
            best = r
    return 1.0 / (1.0 + np.exp(-best.x[0])), 1.0 / (1.0 + np.exp(-best.x[1]))


def _storey_pi0(p, tau=0.5):
    """Storey's estimate of the null proportion with the finite-sample
    correction (1 + #{p > tau}) / (n (1 - tau)), capped at 1."""
    return min(1.0, (1.0 + np.sum(p > tau)) / (p.size * (1.0 - tau)))


def _thresholds(models, n, pi0, alpha):
    """Per-stratum thresholds t_s maximising sum n_s F_s(t_s) subject to the
    estimated FDR sum n_s pi0_s t_s / sum n_s F_s(t_s) <= alpha, F_s the
    beta-uniform CDF: the densities at the thresholds are equal (a common
    level eta, found by bisection). None when no threshold reaches alpha."""
    lam = np.array([m[0] for m in models])
    a = np.array([m[1] for m in models])

    def t_of(eta):
        t = np.empty(len(models))
        for s, (ls, as_) in enumerate(models):
            if as_ >= 1.0 - 1e-9:                 # no signal: density 1 everywhere
                t[s] = 1.0 if eta <= 1.0 else 0.0
            elif eta <= ls + (1.0 - ls) * as_:     # the density at 1 is above eta
                t[s] = 1.0
            else:
                t[s] = ((eta - ls) / ((1.0 - ls) * as_)) ** (1.0 / (as_ - 1.0))
        return t

    def fdr(eta):
        t = t_of(eta)
        disc = np.sum(n * (lam * t + (1.0 - lam) * t ** a))
        return np.sum(n * pi0 * t) / disc if disc > 0 else 1.0

    lo, hi = 1.0, 1e12
    if fdr(hi) > alpha:
        return None
    for _ in range(100):
        mid = np.sqrt(lo * hi)
        if fdr(mid) > alpha:
            lo = mid
        else:
            hi = mid
    return t_of(hi)


def information_weights(pvals, covariate, *, alpha: float = config.WEIGHT_ALPHA,
                        n_folds: int = config.WEIGHT_FOLDS, seed: int = config.WEIGHT_SEED):
    """Weights for :func:`weighted_bh` from a covariate that predicts power.

    Parameters
    ----------
    pvals : array_like
        p-values (NaN: not in the family; weight NaN).
    covariate : array_like
        One value per gene, larger = less information (e.g. a standard
        error); it must not depend on a null gene's p-value. NaN counts as
        the least information.
    alpha : float
        FDR level the weights are tuned for (they keep the FDR controlled at
        any level; they are most powerful near this one).
    n_folds : int
        Cross-weighting folds: a gene's weight comes from the other folds'
        p-values only.
    seed : int
        Seed of the random fold assignment.

    Returns
    -------
    numpy.ndarray
        Non-negative weights (NaN where the p-value is NaN). With fewer than
        ``2 * config.WEIGHT_GENES_PER_STRATUM`` tested genes, all 1 (plain
        Benjamini-Hochberg).
    """
    p = np.asarray(pvals, dtype=float)
    x = np.asarray(covariate, dtype=float)
    w = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    n_strata = int(np.clip(m // config.WEIGHT_GENES_PER_STRATUM, 1, config.WEIGHT_MAX_STRATA))
    if n_strata < 2:
        w[idx] = 1.0
        return w
    xs = np.where(np.isfinite(x[idx]), x[idx], np.inf)
    rank = np.empty(m, np.int64)
    rank[np.argsort(xs, kind="stable")] = np.arange(m)
    stratum = rank * n_strata // m
    fold = np.random.default_rng(seed).permutation(m) % n_folds
    pk = p[idx]
    for k in range(n_folds):
        train = fold != k
        test = ~train
        models, n, pi0 = [], np.zeros(n_strata), np.ones(n_strata)
        for s in range(n_strata):
            ps = pk[train & (stratum == s)]
            n[s] = ps.size
            if ps.size < 10:
                models.append((1.0, 1.0))
                continue
            models.append(_bum_fit(ps))
            pi0[s] = _storey_pi0(ps)
        t = _thresholds(models, n, pi0, alpha)
        ws = np.ones(n_strata) if t is None or not np.any(t > 0) else t.copy()
        # normalise over the fold: sum of pi0 * w over its genes = its size;
        # cap, then normalise again
        cnt = np.bincount(stratum[test], minlength=n_strata).astype(float)
        for _ in range(3):
            ws = ws * cnt.sum() / max(np.sum(cnt * pi0 * ws), 1e-300)
            ws = np.minimum(ws, config.WEIGHT_MAX)
        ws = ws * cnt.sum() / max(np.sum(cnt * pi0 * ws), 1e-300)
        w[idx[test]] = ws[stratum[test]]
    return w
