"""Slow, independent references for the stationary telegraph (Poisson-Beta) law.

Nothing here imports ``telegraph``: these are the yardsticks the package is
measured against (tests/test_stationary.py, benchmarks/bench_likelihood.py)
and they are themselves cross-checked in tests/test_reference.py.

Notation (docs/maths.md, "The stationary law"): a = k_on/k_deg, b = k_off/k_deg,
lam = k_syn/k_deg, x = capture * lam. p ~ Beta(a, b), n | p ~ Poisson(x p).

Two independent routes:

1. mpmath at high precision (inputs are converted exactly from doubles):
   - :func:`mp_logpmf`: the Kummer-transformed form
     P(n) = x^n/n! B(a+n, b)/B(a, b) e^{-x} 1F1(b; a+b+n; x), a series of
     positive terms (no cancellation, so modest precision is exact);
   - :func:`mp_logpmf_direct`: the untransformed form with 1F1(a+n; a+b+n; -x),
     which cancels catastrophically (the sum is ~e^{-x} times its largest
     term), evaluated with x/ln(10) extra digits -- only usable for moderate x;
   - :func:`mp_logpmf_quad`: the defining integral by tanh-sinh quadrature;
   - :func:`mp_score_ab`: d log P / d(a, b, x) by ``mpmath.diff``;
   - :func:`mp_posterior_moments`: E[p | n], Var[p | n] from ratios of
     Poisson-Beta probabilities (E[p^k | n] P(n) = B(a+k, b)/B(a, b)
     PB(n; a+k, b, x)); :func:`mp_posterior_moments_quad` by quadrature.

2. The chemical master equation truncated at M molecules (states (g, m),
   g in {off, on}), solved exactly for its stationary law:
   - :func:`cme_stationary` ``method="levels"``: block Gaussian elimination
     level by level (linear level reduction of the quasi-birth-death
     generator), arranged so that every operation adds or multiplies positive
     numbers; this keeps full *relative* accuracy in far tails, and runs in
     log space so nothing underflows;
   - ``method="sparse"``: plain scipy sparse LU of the generator with one
     balance equation replaced by the normalisation (absolute accuracy only).
   - :func:`thin`: binomial thinning (capture) of a count distribution.
"""

from __future__ import annotations

import math

import mpmath as mp
from mpmath.libmp import to_fixed
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.special import gammaln, logsumexp

MAXTERMS = 10**6
MAXDEGREE = 8


def _m(v):
    """Exact conversion of a double (or int) to mpf at the current precision."""
    if isinstance(v, mp.mpf):
        return v
    if isinstance(v, (int, np.integer)):
        return mp.mpf(int(v))
    return mp.mpf(float(v))


def _log_prefactor(n, a, b, x):
    """log( x^n / n! * B(a+n, b) / B(a, b) )."""
    return (n * mp.log(x) - mp.loggamma(n + 1) + mp.loggamma(a + n) + mp.loggamma(a + b)
            - mp.loggamma(a) - mp.loggamma(a + b + n))


def _log_kummer_peak(b, c, x):
    """log( e^{-x} 1F1(b; c; x) ) for c > b > 0, x > 0, summed over its significant terms only.

    The terms t_k = (b)_k/(c)_k x^k/k! are located in double precision (a
    cumulative sum of log term ratios over k = 0..K with K >= 2x + c, beyond
    which the ratio is below 1/2); only the runs of k whose terms exceed
    exp(-margin) times the largest are summed, each starting from a term
    computed exactly with loggamma and continued by the exact term ratio in
    fixed-point integer arithmetic (2 prec + 100 bits, so every term of a run
    keeps > prec bits). ``margin`` covers the working precision plus log K, so
    the omitted terms are below the rounding error. This is the series
    mpmath.hyp1f1 sums (checked against it in tests/test_reference.py),
    without the ~x leading terms that do not matter and ~30x faster.
    """
    bf, cf, xf = float(b), float(c), float(x)
    K = int(2 * xf + cf + 200)
    k = np.arange(K, dtype=float)
    logr = math.log(xf) + np.log(bf + k) - np.log1p(k) - np.log(cf + k)
    logt = np.concatenate([[0.0], np.cumsum(logr)])
    top = logt.max()
    margin = mp.mp.prec * math.log(2) + math.log(K) + 10
    if logt[-1] >= top - margin:  # pragma: no cover - K is chosen so this cannot happen
        raise RuntimeError("Kummer series truncated too early")
    sig = np.nonzero(logt >= top - margin)[0]
    breaks = np.nonzero(np.diff(sig) > 1)[0]
    starts = np.concatenate([[sig[0]], sig[breaks + 1]])
    stops = np.concatenate([sig[breaks], [sig[-1]]])
    P = 2 * mp.mp.prec + 100
    ONE = 1 << P
    B, C, X = (to_fixed(v._mpf_, P) for v in (b, c, x))
    logs = []
    for k0, k1 in zip(starts.tolist(), stops.tolist()):
        lt0 = (mp.loggamma(b + k0) - mp.loggamma(b) + mp.loggamma(c) - mp.loggamma(c + k0)
               + k0 * mp.log(x) - mp.loggamma(k0 + 1))
        t = ONE
        s = ONE
        for kk in range(k0, k1):
            t = ((t * (B + kk * ONE) * X) // ((C + kk * ONE) * (kk + 1))) >> P
            s += t
        logs.append(lt0 + mp.log(mp.ldexp(mp.mpf(s), -P)))
    tot = logs[0]
    for v in logs[1:]:
        hi, lo = (tot, v) if tot >= v else (v, tot)
        tot = hi + mp.log1p(mp.exp(lo - hi))
    return tot - x


def log_kummer(b, c, x, method="auto"):
    """log( e^{-x} 1F1(b; c; x) ) at the current precision (mpf arguments).

    ``method="hyp1f1"``: mpmath.hyp1f1 (the definition; slow for x ~ 1e4 with
    generic real parameters, ~1 s per call); ``"peak"``: the same series
    summed over its significant terms only (:func:`_log_kummer_peak`);
    ``"auto"``: hyp1f1 for x < 100, peak otherwise.
    """
    if method == "auto":
        method = "hyp1f1" if x < 100 else "peak"
    if method == "hyp1f1":
        return mp.log(mp.hyp1f1(b, c, x, maxterms=MAXTERMS)) - x
    if method == "peak":
        return _log_kummer_peak(b, c, x)
    raise ValueError(f"unknown method {method!r}")


def _logpmf_mp(n, a, b, x, method="auto"):
    """Kummer form at the current mpmath precision (arguments already mpf)."""
    return _log_prefactor(n, a, b, x) + log_kummer(b, a + b + n, x, method)


def mp_logpmf(n, a, b, x, dps=20, method="auto"):
    """log P(n) of Poisson-Beta(a, b, x) by the positive Kummer series (mpf).

    All terms of e^{-x} 1F1(b; a+b+n; x) are positive, so ``dps`` digits give
    log P(n) to about ``dps`` significant digits. ``method`` as in
    :func:`log_kummer`.
    """
    with mp.workdps(dps):
        return _logpmf_mp(_m(n), _m(a), _m(b), _m(x), method)


def mp_logpmf_direct(n, a, b, x, dps=20):
    """log P(n) from the untransformed 1F1(a+n; a+b+n; -x) (mpf).

    The alternating series loses ~x/ln(10) digits to cancellation, so the
    working precision is raised by that much. Cost grows fast with x: keep
    x <~ 1e3 in tests.
    """
    extra = int(float(x) / math.log(10)) + 20
    with mp.workdps(dps + extra):
        n, a, b, x = _m(n), _m(a), _m(b), _m(x)
        val = _log_prefactor(n, a, b, x) + mp.log(mp.hyp1f1(a + n, a + b + n, -x,
                                                            maxterms=MAXTERMS))
    with mp.workdps(dps):
        return +val


def _posterior_modes(A, b, x):
    """Interior stationary points of (A-1) log p + (b-1) log(1-p) - x p on (0, 1)."""
    # derivative zero <=> x p^2 - (x + A - 1 + b - 1) p + (A - 1) = 0
    qa, qb, qc = x, -(x + A + b - 2), A - 1
    disc = qb * qb - 4 * qa * qc
    out = []
    if disc >= 0:
        for sgn in (-1, 1):
            r = (-qb + sgn * mp.sqrt(disc)) / (2 * qa)
            if 0 < r < 1:
                out.append(r)
    return out


def _quad_posterior(n, a, b, x, funcs, k=0):
    """Tanh-sinh quadrature of the (unnormalised) posterior p^(A-1) (1-p)^(b-1) e^{-x p}, A = a+k+n.

    Returns (log Z, [E[f(p)] for f in funcs]) at the current precision; each
    f is called as f(p, 1 - p, log p, log(1 - p)).
    The interval is cut at the interior mode(s) and a few posterior widths
    around them, at 1/2 and at c/x (where e^{-x p} bends). Near p = 0 the
    substitution u = p^A (and near 1, v = (1-p)^b) absorbs the endpoint
    factor exactly: for A or b << 1 half of the mass can sit below 1e-300,
    out of reach of plain quadrature nodes.
    """
    A = a + k + n
    pts = {mp.mpf(0), mp.mpf(1), mp.mpf(1) / 2}
    for c in (1, 10, 100):
        if c / x < 1:
            pts.add(c / x)
    for m0 in _posterior_modes(A, b, x):
        curv = (A - 1) / m0**2 + (b - 1) / (1 - m0) ** 2
        w = 1 / mp.sqrt(curv) if curv > 0 else mp.mpf("0.1")
        for c in (-8, -2, 0, 2, 8):
            q = m0 + c * w
            if 0 < q < 1:
                pts.add(q)
    pts = sorted(pts)

    def logf(p):
        return (A - 1) * mp.log(p) + (b - 1) * mp.log1p(-p) - x * p

    ref = max(logf(q) for q in pts[1:-1])
    # each f takes (p, 1 - p, log p, log(1 - p)), all computed without cancellation
    funcs = [lambda p, q, lp, lq: mp.mpf(1)] + list(funcs)
    vals = [mp.mpf(0)] * len(funcs)
    for lo, hi in zip(pts[:-1], pts[1:]):
        if lo == 0:
            # u = p^A: p^(A-1) dp = du / A
            def integrand(u, g):
                lp = mp.log(u) / A
                p = mp.exp(lp)
                lq = mp.log1p(-p)
                return g(p, 1 - p, lp, lq) * mp.exp((b - 1) * lq - x * p - ref) / A
            rng = [0, hi ** A]
        elif hi == 1:
            # v = (1-p)^b: (1-p)^(b-1) dp = -dv / b
            def integrand(v, g):
                lq = mp.log(v) / b
                q = mp.exp(lq)
                p = 1 - q
                lp = mp.log1p(-q)
                return g(p, q, lp, lq) * mp.exp((A - 1) * lp - x * p - ref) / b
            rng = [0, (1 - lo) ** b]
        else:
            def integrand(p, g):
                lp, lq = mp.log(p), mp.log1p(-p)
                return g(p, 1 - p, lp, lq) * mp.exp((A - 1) * lp + (b - 1) * lq - x * p - ref)
            rng = [lo, hi]
        for i, g in enumerate(funcs):
            vals[i] += mp.quad(lambda t: integrand(t, g), rng, maxdegree=MAXDEGREE)
    return ref + mp.log(vals[0]), [v / vals[0] for v in vals[1:]]


def mp_log_integral(n, a, b, x, k=0, dps=20):
    """log of int_0^1 p^(a+k+n-1) (1-p)^(b-1) e^{-x p} dp by tanh-sinh quadrature."""
    with mp.workdps(dps + 15):
        logz, _ = _quad_posterior(_m(n), _m(a), _m(b), _m(x), [], k)
    with mp.workdps(dps):
        return +logz


def mp_posterior_expect_quad(n, a, b, x, funcs, dps=20):
    """Posterior expectations E[f(p) | n] by quadrature (list of mpf)."""
    with mp.workdps(dps + 15):
        _, vals = _quad_posterior(_m(n), _m(a), _m(b), _m(x), funcs)
    with mp.workdps(dps):
        return [+v for v in vals]


def mp_logpmf_quad(n, a, b, x, dps=20):
    """log P(n) from the defining integral int Pois(n; x p) Beta(p; a, b) dp."""
    with mp.workdps(dps + 10):
        nn, aa, bb, xx = _m(n), _m(a), _m(b), _m(x)
        val = (nn * mp.log(xx) - mp.loggamma(nn + 1)
               - (mp.loggamma(aa) + mp.loggamma(bb) - mp.loggamma(aa + bb))
               + mp_log_integral(n, a, b, x, 0, dps))
    with mp.workdps(dps):
        return +val


def mp_score_ab(n, a, b, x, dps=20):
    """(d/da, d/db, d/dx) log P(n) by ``mpmath.diff`` of :func:`mp_logpmf`.

    ``mpmath.diff`` raises the working precision itself and evaluates the
    function at that precision, so the result carries ~``dps`` digits.
    """
    with mp.workdps(dps):
        n, a, b, x = _m(n), _m(a), _m(b), _m(x)
        da = mp.diff(lambda t: _logpmf_mp(n, t, b, x), a)
        db = mp.diff(lambda t: _logpmf_mp(n, a, t, x), b)
        dx = mp.diff(lambda t: _logpmf_mp(n, a, b, t), x)
        return da, db, dx


def mp_dlogpmf_dx_exact(n, a, b, x, dps=20):
    """d log P / dx = n/x - E[p | n] in closed form (for checking mpmath.diff)."""
    ep, _ = mp_posterior_moments(n, a, b, x, dps)
    with mp.workdps(dps):
        return _m(n) / _m(x) - ep


def mp_posterior_moments(n, a, b, x, dps=20):
    """(E[p | n], Var[p | n]) of the latent promoter activity, as mpf.

    E[p^k | n] = B(a+k, b)/B(a, b) * PB(n; a+k, b, x) / PB(n; a, b, x).
    """
    with mp.workdps(dps + 10):
        n, a, b, x = _m(n), _m(a), _m(b), _m(x)
        l0 = _logpmf_mp(n, a, b, x)
        l1 = _logpmf_mp(n, a + 1, b, x)
        l2 = _logpmf_mp(n, a + 2, b, x)
        m1 = a / (a + b) * mp.exp(l1 - l0)
        m2 = a * (a + 1) / ((a + b) * (a + b + 1)) * mp.exp(l2 - l0)
        var = m2 - m1 * m1
    with mp.workdps(dps):
        return +m1, +var


def mp_posterior_moments_quad(n, a, b, x, dps=20):
    """(E[p | n], Var[p | n]) by direct quadrature of the posterior density.

    The variance is integrated as E[(p - m)^2] in a second pass (no
    cancellation when the posterior is narrow).
    """
    with mp.workdps(dps + 15):
        args = (_m(n), _m(a), _m(b), _m(x))
        _, (m1,) = _quad_posterior(*args, [lambda p, q, lp, lq: p])
        _, (var,) = _quad_posterior(*args, [lambda p, q, lp, lq: (p - m1) ** 2])
    with mp.workdps(dps):
        return +m1, +var


def rates_to_ab(k_on, k_off, k_syn, k_deg=1.0, capture=1.0, dps=20):
    """Exact (mpf) a, b, x from double rates."""
    with mp.workdps(dps + 10):
        kd = _m(k_deg)
        return _m(k_on) / kd, _m(k_off) / kd, _m(capture) * _m(k_syn) / kd


def mp_score_rates(n, k_on, k_off, k_syn, k_deg=1.0, capture=1.0, dps=20):
    """d log P / d(k_on, k_off, k_syn, k_deg) (chain rule from :func:`mp_score_ab`)."""
    a, b, x = rates_to_ab(k_on, k_off, k_syn, k_deg, capture, dps)
    da, db, dx = mp_score_ab(n, a, b, x, dps)
    with mp.workdps(dps):
        kd = _m(k_deg)
        return (da / kd, db / kd, dx * _m(capture) / kd, -(a * da + b * db + x * dx) / kd)


def mean_var(a, b, x):
    """Analytic mean and variance of n (floats), for choosing grids and truncations."""
    mean = x * a / (a + b)
    var = mean + x * x * a * b / ((a + b) ** 2 * (a + b + 1))
    return mean, var


# --------------------------------------------------------------------------
# truncated chemical master equation
# --------------------------------------------------------------------------

def default_truncation(a, b, lam, n_max=0):
    """A truncation level M far beyond every count of interest and the bulk of the law."""
    return int(max(n_max, lam) + 30 * math.sqrt(lam + 1) + 100)


def cme_generator(a, b, lam, M):
    """Sparse generator Q (rows = from-state) of the telegraph CME truncated at M.

    State index 2 m + g (g = 0 off, 1 on); rates in units of k_deg. Births at
    m = M are dropped (reflecting truncation).
    """
    m = np.arange(M + 1)
    off, on = 2 * m, 2 * m + 1
    rows, cols, vals = [off, on], [on, off], [np.full(M + 1, float(a)), np.full(M + 1, float(b))]
    rows.append(on[:-1]); cols.append(on[1:]); vals.append(np.full(M, float(lam)))
    rows += [off[1:], on[1:]]; cols += [off[:-1], on[:-1]]; vals += [m[1:] * 1.0, m[1:] * 1.0]
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    n = 2 * (M + 1)
    Q = sp.coo_matrix((v, (r, c)), shape=(n, n)).tocsr()
    Q = Q - sp.diags(np.asarray(Q.sum(axis=1)).ravel())
    return Q.tocsr()


def _cme_sparse(a, b, lam, M):
    Q = cme_generator(a, b, lam, M)
    A = Q.T.tolil()
    A[0, :] = 1.0
    rhs = np.zeros(A.shape[0])
    rhs[0] = 1.0
    pi = spla.spsolve(A.tocsc(), rhs)
    with np.errstate(divide="ignore"):
        return np.log(np.maximum(pi[0::2], 0)), np.log(np.maximum(pi[1::2], 0))


def _cme_levels(a, b, lam, M):
    """Stable level-by-level elimination, in log space.

    Let c_m be the rate at which probability leaving (on, m) upwards returns
    to level m in the off state (censoring the chain to levels <= m). Then
    c_M = 0 and c_m = lam (b + c_{m+1}) / (a + b + c_{m+1} + m + 1); the
    censored level-m block and its inverse have only positive entries, and

        pi(., m+1) = lam pi(on, m) / ((m+1)(a+b+c_{m+1}+m+1)) [b + c_{m+1}, a+m+1],
        pi(., 0) proportional to [b + c_0, a].
    """
    a, b, lam = float(a), float(b), float(lam)
    c = np.zeros(M + 1)
    for m in range(M - 1, -1, -1):
        cn = c[m + 1]
        c[m] = lam * (b + cn) / (a + b + cn + m + 1)
    m1 = np.arange(1, M + 1, dtype=float)          # level m+1 = 1..M
    cn = c[1:]
    denom = np.log(m1) + np.log(a + b + cn + m1)
    step_on = math.log(lam) + np.log(a + m1) - denom   # log pi(on,m+1) - log pi(on,m)
    log_on = np.empty(M + 1)
    log_on[0] = math.log(a)
    log_on[1:] = log_on[0] + np.cumsum(step_on)
    log_off = np.empty(M + 1)
    log_off[0] = math.log(b + c[0])
    log_off[1:] = log_on[:-1] + math.log(lam) + np.log(b + cn) - denom
    z = logsumexp(np.concatenate([log_on, log_off]))
    return log_off - z, log_on - z


def cme_stationary(a, b, lam, M=None, method="levels"):
    """Stationary law of the truncated telegraph CME (no capture).

    Returns ``(log_p_off, log_p_on)``, arrays of length M+1 with
    log P(off, m) and log P(on, m) for m = 0..M (rates in units of k_deg).
    """
    if M is None:
        M = default_truncation(a, b, lam)
    if method == "levels":
        return _cme_levels(a, b, lam, M)
    if method == "sparse":
        return _cme_sparse(a, b, lam, M)
    raise ValueError(f"unknown method {method!r}")


def cme_logpmf(a, b, lam, M=None, method="levels"):
    """(log P(n), log P(on, n)) for n = 0..M from the truncated CME."""
    lo, ln_ = cme_stationary(a, b, lam, M, method)
    return np.logaddexp(lo, ln_), ln_


def thin(logp, s):
    """Binomial thinning with capture s of a law given as log P(m), m = 0..M.

    Returns log P(k) for k = 0..M, P_s(k) = sum_m P(m) C(m, k) s^k (1-s)^(m-k).
    """
    if s == 1:
        return np.asarray(logp, dtype=float).copy()
    M = len(logp) - 1
    m = np.arange(M + 1)[None, :]
    k = np.arange(M + 1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        lb = (gammaln(m + 1) - gammaln(k + 1) - gammaln(np.maximum(m - k, 0) + 1)
              + k * math.log(s) + (m - k) * math.log1p(-s))
    lb = np.where(m >= k, lb, -np.inf)
    return logsumexp(lb + logp[None, :], axis=1)


# --------------------------------------------------------------------------
# convenience: float arrays of references over a list of points
# --------------------------------------------------------------------------

def ref_table(points, dps=20, score=True, posterior=False):
    """Evaluate references at points (n, a, b, x) -> dict of float arrays."""
    out = {"logp": [], "score": [], "ep": [], "vp": []}
    for n, a, b, x in points:
        out["logp"].append(float(mp_logpmf(n, a, b, x, dps)))
        if score:
            out["score"].append([float(v) for v in mp_score_ab(n, a, b, x, dps)])
        if posterior:
            e, v = mp_posterior_moments(n, a, b, x, dps)
            out["ep"].append(float(e))
            out["vp"].append(float(v))
    return {k: np.array(v, dtype=float) for k, v in out.items()}
