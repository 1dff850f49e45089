"""Profile likelihood of the four targets of a telegraph fit, in Numba.

A target psi (log a, log beta, log b or log lam; see
:func:`telegraph.kernels.optimize.target_transform`) is a coordinate of phi =
T theta; its profile log-likelihood maximises over the other two
(docs/maths.md, "Profile likelihood"). This module gives

- :func:`wald_se`, the quadratic approximation of each profile at the
  optimum: the Wald standard errors from the observed information;
- :func:`profile_bound`, one end of the profile-likelihood interval
  {psi : ll_hat - profile(psi) <= drop}: first by Venzon and Moolgavkar's
  Newton iteration on the end point itself, else by bracketing and regula
  falsi on the signed root deviance with nested maximisation. Where the
  profile stays above the cut-off up to the edge of the search box, the
  limit model that the profile tends to as psi -> +-inf decides whether the
  interval is unbounded on that side (docs/maths.md, "Limit regimes");
- :func:`limit_union_ends` and :func:`widen_near_limits`, the intervals of a
  gene whose regime decision rejected a limit model by only a little: the
  limit's own parameter values join the interval (docs/maths.md, "Profile
  likelihood", *Intervals after the regime decision*), through
  :func:`negbinom_profile_bound` for the bursty limit, where burst frequency
  and size stay finite; computed before the searches, so that a side the
  union makes unbounded is not searched.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit
from .linalg import grad_info_phi, solve3, to_phi, to_theta
from .models import GENE_TYPE, MODEL_NEGBINOM, MODEL_TELEGRAPH, evaluate, telegraph_eval
from .optimize import (LIMIT_HI, LIMIT_LO, PROFILE_DECREMENT_TOL, TARGET_LOG_A, TARGET_LOG_B,
                       TARGET_LOG_BETA, TARGET_LOG_LAM, _from_mean, _mean_coords, maximize,
                       same_optimum, search_box, target_transform)

__all__ = ["wald_se", "profile_bound", "bursty_limit_end", "negbinom_profile_bound",
           "limit_union_ends", "unbounded_by_union", "widen_near_limits"]


@njit(cache=True, error_model="numpy")
def wald_se(H):
    """Standard errors of the targets (log a, log beta, log b, log lam), in
    that order, from the observed information H in theta = (log a, log b,
    log lam); NaN if not invertible."""
    out = np.full(4, np.nan)
    det = (H[0, 0] * (H[1, 1] * H[2, 2] - H[1, 2] * H[2, 1])
           - H[0, 1] * (H[1, 0] * H[2, 2] - H[1, 2] * H[2, 0])
           + H[0, 2] * (H[1, 0] * H[2, 1] - H[1, 1] * H[2, 0]))
    if not (det > 0.0) or not np.isfinite(det):
        return out
    C = np.empty((3, 3))
    C[0, 0] = (H[1, 1] * H[2, 2] - H[1, 2] * H[2, 1]) / det
    C[0, 1] = -(H[0, 1] * H[2, 2] - H[0, 2] * H[2, 1]) / det
    C[0, 2] = (H[0, 1] * H[1, 2] - H[0, 2] * H[1, 1]) / det
    C[1, 1] = (H[0, 0] * H[2, 2] - H[0, 2] * H[2, 0]) / det
    C[1, 2] = -(H[0, 0] * H[1, 2] - H[0, 2] * H[1, 0]) / det
    C[2, 2] = (H[0, 0] * H[1, 1] - H[0, 1] * H[1, 0]) / det
    if C[0, 0] > 0:
        out[0] = math.sqrt(C[0, 0])
    if C[1, 1] > 0:
        out[2] = math.sqrt(C[1, 1])
    if C[2, 2] > 0:
        out[3] = math.sqrt(C[2, 2])
    vb = C[2, 2] + C[1, 1] - 2.0 * C[1, 2]
    if vb > 0:
        out[1] = math.sqrt(vb)
    return out


@njit(cache=True, error_model="numpy",
      unit=("float64(" + GENE_TYPE + ", float64[::1], int64, float64, int64, float64[::1], "
            "float64, float64[::1])"))
def _profile_point(gene, theta, target, psi, max_iter, buf, stop_above, slope):
    """Maximise over the other coordinates with the target fixed at psi;
    theta (warm start) is updated. Returns the profile log-likelihood, or a
    lower bound of it at or above ``stop_above`` (the climb stops there; inf:
    never). ``slope`` (3 floats, or empty: none): the predicted change of the
    nuisance coordinates of phi per unit of psi (:func:`_nuisance_slope`); the
    climb starts at theta's nuisance moved by it over psi - psi(theta). (Every
    argument is given at every call, of one type each, so that the kernel is
    compiled once, not once per combination of omitted defaults.)"""
    T, Tinv, fix = target_transform(target)
    phi = np.zeros(3)
    to_phi(T, theta, phi)
    if slope.shape[0] > 0:
        dpsi = psi - phi[fix]
        for i in range(3):
            if i != fix:
                phi[i] += slope[i] * dpsi
    phi[fix] = psi
    to_theta(Tinv, phi, theta)
    free = np.ones(3, np.bool_)
    free[fix] = False
    lo = np.empty(3)
    hi = np.empty(3)
    search_box(target, lo, hi)
    known = np.empty(0) if stop_above == np.inf else np.full(1, stop_above)
    # (burst frequency and k_off fixed: the others climb in the mean coordinates)
    ll, conv, it = maximize(MODEL_TELEGRAPH, gene, theta, T, Tinv,
                            free, lo, hi, max_iter, buf, known, np.empty((0, 3)),
                            target == TARGET_LOG_A or target == TARGET_LOG_B,
                            PROFILE_DECREMENT_TOL, np.empty(0), np.empty((0, 3)))
    return ll


#: largest step (log scale) of the target between two warm-started inner maximisations: a
#: point further from the last maximiser is reached through intermediate points, because a
#: long jump can land the inner maximisation in another basin (a ridge to the edge of the
#: box), whose spurious deviance derails the root search and whose points cost tens of ms
MAX_JUMP = 1.0


@njit(cache=True, error_model="numpy")
def _profile_walk(gene, theta, target, psi_from, psi, max_iter,
                  buf, final_iter, stop_above, step_iter, slope):
    """The profile at psi reached by continuation from theta, the maximiser at
    psi_from: intermediate points at most MAX_JUMP apart, each warm-started
    from the one before (after at most ``step_iter`` Newton steps each; 0: no
    limit), moved along ``slope`` (empty: none; :func:`_profile_point`); theta
    is updated. Returns the profile log-likelihood.
    The last maximisation stops early, at a lower bound of the profile there
    (calling again resumes it), after ``final_iter`` > 0 Newton steps (0: no
    limit) or once it reaches ``stop_above`` (inf: never)."""
    n = int(math.ceil(abs(psi - psi_from) / MAX_JUMP))
    for k in range(1, n):
        _profile_point(gene, theta, target,
                       psi_from + (psi - psi_from) * k / n,
                       step_iter if step_iter > 0 else max_iter, buf, np.inf, slope)
    return _profile_point(gene, theta, target, psi,
                          final_iter if final_iter > 0 else max_iter, buf, stop_above, slope)


#: the largest change of a nuisance coordinate per unit of the target that a predicted
#: warm start (:func:`_nuisance_slope`) may take; a steeper one comes from a nearly flat
#: direction (a ridge to a limit, where the nuisance is barely determined), along which a
#: linear prediction lands far from the maximiser: the search then starts from the last
#: maximiser unmoved
SLOPE_MAX = 4.0


@njit(cache=True, error_model="numpy")
def _nuisance_solve(Hp, fix, r0, r1):
    """x = H_nn^-1 r for the two nuisance coordinates of phi (all but ``fix``,
    in ascending order; r = (r0, r1) in that order) of the information ``Hp``.
    Returns (x0, x1, whether H_nn is positive definite; x is NaN if not)."""
    i0 = 1 if fix == 0 else 0
    i1 = 1 if fix == 2 else 2
    h00 = Hp[i0, i0]
    h01 = Hp[i0, i1]
    h11 = Hp[i1, i1]
    det = h00 * h11 - h01 * h01
    if not (h00 > 0.0 and det > 0.0):
        return np.nan, np.nan, False
    return (h11 * r0 - h01 * r1) / det, (h00 * r1 - h01 * r0) / det, True


@njit(cache=True, error_model="numpy")
def _cap_slope(slope, cap):
    """Set ``slope`` to all zeros (no prediction) where a component is not
    finite or, with ``cap``, exceeds SLOPE_MAX."""
    drop = False
    for i in range(3):
        if not np.isfinite(slope[i]) or (cap and abs(slope[i]) > SLOPE_MAX):
            drop = True
    if drop:
        for i in range(3):
            slope[i] = 0.0


@njit(cache=True, error_model="numpy")
def _nuisance_slope(Hp, fix, slope):
    """The tangent of the profile's maximiser path at a maximum (information
    ``Hp`` in phi): d nuisance / d psi = -H_nn^-1 H_n,psi (docs/maths.md,
    "Profile likelihood", *Predicted warm starts*), to ``slope`` (0 at
    ``fix``); all zeros where H_nn is not positive definite or a component
    exceeds SLOPE_MAX."""
    i0 = 1 if fix == 0 else 0
    i1 = 1 if fix == 2 else 2
    b0, b1, _ = _nuisance_solve(Hp, fix, Hp[i0, fix], Hp[i1, fix])
    slope[fix] = 0.0
    slope[i0] = -b0
    slope[i1] = -b1
    _cap_slope(slope, True)


@njit(cache=True, error_model="numpy")
def _secant_slope(T, theta_a, psi_a, theta_b, psi_b, fix, slope, cap):
    """The change of the nuisance coordinates of phi per unit of psi between
    two maximisers (theta_a at psi_a, theta_b at psi_b), to ``slope`` (0 at
    ``fix``); all zeros where a component is not finite or, with ``cap``,
    exceeds SLOPE_MAX."""
    pa = np.zeros(3)
    pb = np.zeros(3)
    to_phi(T, theta_a, pa)
    to_phi(T, theta_b, pb)
    for i in range(3):
        slope[i] = 0.0 if i == fix else (pb[i] - pa[i]) / (psi_b - psi_a)
    _cap_slope(slope, cap)


@njit(cache=True, error_model="numpy")
def secant_end(a_psi, ra, b_psi, rb):
    """The end point from the last bracket [a_psi, b_psi] of the root of the
    signed root deviance r (ra <= 0 <= rb its values there, not the Illinois-
    scaled ones): the secant root, which is exact for the linear r of a
    quadratic profile and within O((b - a)^2) otherwise, rather than the
    midpoint, which is only within (b - a)/2."""
    if ra < 0.0 and rb > 0.0:
        c = a_psi - ra * (b_psi - a_psi) / (rb - ra)
        return min(max(c, min(a_psi, b_psi)), max(a_psi, b_psi))
    return 0.5 * (a_psi + b_psi)


@njit(cache=True, error_model="numpy")
def illinois_step(a_psi, fa, ra, b_psi, fb, rb, side_kept, c_psi, fc):
    """One Illinois step of regula falsi on the signed root deviance: the new
    point c (value fc) replaces the inner end a (fc < 0, inside the interval)
    or the outer end b; the end kept twice in a row has its value halved.
    ra, rb are the unscaled values at the ends (for :func:`secant_end`).
    Returns the updated (a_psi, fa, ra, b_psi, fb, rb, side_kept)."""
    if fc < 0:
        if side_kept == -1:
            fb *= 0.5
        return c_psi, fc, fc, b_psi, fb, rb, -1
    if side_kept == 1:
        fa *= 0.5
    return a_psi, fa, ra, c_psi, fc, fc, 1


@njit(cache=True, error_model="numpy")
def _next_step(d, dist, def_in, drop):
    """The next bracketing step outwards, after a point at distance ``dist``
    from the estimate whose deviance ``def_in`` is still below ``drop``: the
    signed root deviance is nearly linear in psi, so its extrapolation puts
    the end point near dist * sqrt(drop / def_in); the step goes 10% beyond
    that (to bracket the root in one step), at most doubling as before and at
    least 0.02. Doubling alone overshoots far when the Wald error is large
    (the bursty regime), where one profile point far outside can cost more
    than all the others (large x, long series)."""
    if def_in > 0.01 * drop:
        dstar = 1.1 * dist * math.sqrt(drop / def_in) - dist
        return min(max(dstar, 0.02), 2.0 * d)
    return 2.0 * d


@njit(cache=True, error_model="numpy")
def profile_bound(gene, theta_hat, ll_hat, target, side, se,
                  drop, ll_limit, max_iter, buf, ll0, g0, H0, use_vm=True):
    """One end of the profile-likelihood interval of a target (log scale).

    Finds psi where ll_hat - profile(psi) = drop on the given side (+1 or -1).
    When the box edge is reached first, the limit model's log-likelihood
    ll_limit (the supremum of the profile as psi -> +-inf) decides: the bound
    is infinite if ll_hat - ll_limit < drop, otherwise it is interpolated
    between the edge and the limit in exp(-side psi).
    ``ll0``, ``g0``, ``H0``: the log-likelihood, gradient and observed
    information at ``theta_hat`` (the Venzon-Moolgavkar iteration starts
    there; the fit has them from its Wald step).
    Returns (bound, best profile log-likelihood seen)."""
    # the profile tends to the limit model's maximum as psi -> side * inf: if
    # that stays above the cut-off, the interval is unbounded on this side
    # (no search needed, and none towards the costly edge of the box)
    if ll_hat - ll_limit < drop:
        return side * np.inf, ll_hat
    if use_vm:
        vm = _profile_bound_vm(gene, theta_hat, ll_hat, target, side, drop, buf, ll0, g0, H0)
        if np.isfinite(vm):
            return vm, ll_hat
    T, Tinv, fix = target_transform(target)
    lo = np.empty(3)
    hi = np.empty(3)
    search_box(target, lo, hi)
    phi_hat = np.zeros(3)
    to_phi(T, theta_hat, phi_hat)
    psi_hat = phi_hat[fix]
    edge = hi[fix] if side > 0 else lo[fix]
    theta = theta_hat.copy()
    best = ll_hat
    # warm starts predicted along the maximiser's path: its tangent at the optimum, then
    # the secant through the last two maximisers (docs/maths.md, "Profile likelihood",
    # *Predicted warm starts*)
    slope = np.zeros(3)
    gp = np.zeros(3)
    Hp = np.zeros((3, 3))
    grad_info_phi(Tinv, g0, H0, gp, Hp)
    _nuisance_slope(Hp, fix, slope)
    # bracket, starting from the Wald guess
    d = se * math.sqrt(2.0 * drop) if (se > 0 and np.isfinite(se)) else 0.5
    d = min(max(d, 0.02), 3.0)
    psi_in = psi_hat
    def_in = 0.0
    psi_out = np.nan
    def_out = np.nan
    theta_in = theta_hat.copy()
    for _ in range(40):
        # at most MAX_JUMP at a time: the points a longer step would pass through on the
        # way (:func:`_profile_walk`) cost as much, and each one still inside the interval
        # is a nearer inner end for the root search
        psi = psi_in + side * min(d, MAX_JUMP)
        at_edge = False
        if (side > 0 and psi >= edge) or (side < 0 and psi <= edge):
            psi = edge
            at_edge = True
        for i in range(3):
            theta[i] = theta_in[i]
        llp = _profile_walk(gene, theta, target, psi_in, psi, max_iter, buf, 0, np.inf, 0, slope)
        if llp > best:
            best = llp
        dev = ll_hat - llp
        if dev >= drop:
            psi_out = psi
            def_out = dev
            break
        _secant_slope(T, theta_in, psi_in, theta, psi, fix, slope, True)
        psi_in = psi
        def_in = max(dev, 0.0)
        for i in range(3):
            theta_in[i] = theta[i]
        if at_edge:
            # the profile stays above the cut-off up to the box edge
            dlim = ll_hat - ll_limit
            # interpolate linearly in eps = exp(-side * psi) between the edge
            # (eps_e, def_in) and the limit (0, dlim)
            eps_e = math.exp(-side * psi)
            eps_star = eps_e * (dlim - drop) / max(dlim - def_in, 1e-300)
            return -side * math.log(eps_star), best
        d = _next_step(d, abs(psi_in - psi_hat), def_in, drop)
    if not np.isfinite(psi_out):
        return np.nan, best
    # root of sqrt(dev) = sqrt(drop): the signed root deviance is nearly linear
    # in psi, so regula falsi on it converges in a few steps (Illinois variant)
    r_in = math.sqrt(def_in) - math.sqrt(drop)
    r_out = math.sqrt(def_out) - math.sqrt(drop)
    a_psi = psi_in
    b_psi = psi_out
    fa = r_in
    fb = r_out
    ra = r_in
    rb = r_out
    side_kept = 0
    # the maximiser at the outer end: each point starts on the line between the two
    # ends' maximisers (within both, so never a long extrapolation)
    theta_out = theta.copy()
    for _ in range(30):
        if abs(b_psi - a_psi) < 1e-3:
            break
        c_psi = b_psi - fb * (b_psi - a_psi) / (fb - fa)
        for i in range(3):
            theta[i] = theta_in[i]
        _secant_slope(T, theta_in, a_psi, theta_out, b_psi, fix, slope, False)
        llp = _profile_walk(gene, theta, target, a_psi, c_psi, max_iter, buf, 0, np.inf, 0, slope)
        if llp > best:
            best = llp
        fc = math.sqrt(max(ll_hat - llp, 0.0)) - math.sqrt(drop)
        if abs(fc) < 1e-6:
            a_psi = c_psi
            b_psi = c_psi
            break
        a_psi, fa, ra, b_psi, fb, rb, side_kept = illinois_step(a_psi, fa, ra, b_psi, fb, rb,
                                                                side_kept, c_psi, fc)
        # c's maximiser becomes that of the end it replaced
        if fc < 0:
            for i in range(3):
                theta_in[i] = theta[i]
        else:
            for i in range(3):
                theta_out[i] = theta[i]
    return secant_end(a_psi, ra, b_psi, rb), best


#: the Venzon-Moolgavkar iteration ends at the root of the profile model of a point it
#: evaluated once that model is within this many nats of the cut-off and the nuisance's
#: Newton decrement is below it (the model is exact to second order there; the same rule
#: as the two-species fits' :data:`telegraph.config.PROFILE_VM_ACCEPT`)
_VM_ACCEPT = 0.01
#: ... and only at a point on the requested side of the estimate whose model puts the end
#: within this fraction of the point's distance from the estimate (where the profile is
#: roughly quadratic the step is ~1% of it; a longer one means a flat or skewed profile)
_VM_NEAR = 0.1
#: the iteration's first point, on the quadratic approximation at the optimum, moves each
#: nuisance coordinate by at most this much per unit of the target: a steeper tangent comes
#: from a nearly flat direction (a ridge towards a limit), along which the quadratic guess
#: lands far down the likelihood (thousands of nats on bursty genes), and each halving back
#: costs an evaluation (docs/maths.md, "Profile likelihood", *Venzon-Moolgavkar*)
_VM_START_SLOPE = 8.0


@njit(cache=True, error_model="numpy")
def _vm_model_end(phi, ll, gp, Hp, pinned, fix, target_ll, psi_hat, side):
    """The end from the profile model at an evaluated point (phi, ll, gradient
    gp and information Hp in phi): with the two nuisance coordinates free and
    their information positive definite, the model c0 + c1 d - c2 d^2 / 2 of
    the profile at psi = phi[fix] + d, maximised over the nuisance to second
    order; returns the root psi of c0 + ... = target_ll on the requested side
    (the nearest if two are) when |c0 - target_ll| and the nuisance's Newton
    decrement are below _VM_ACCEPT, the point lies on the requested side of
    the estimate ``psi_hat`` and the root within _VM_NEAR of its distance from
    it, else NaN."""
    dz = phi[fix] - psi_hat
    if not side * dz > 0.0:
        return np.nan
    i0 = -1
    i1 = -1
    for i in range(3):
        if i == fix:
            continue
        if pinned[i]:
            return np.nan
        if i0 < 0:
            i0 = i
        else:
            i1 = i
    # a = Hff^-1 g_f (the nuisance's Newton step), b = Hff^-1 H_fk
    a0, a1, ok = _nuisance_solve(Hp, fix, gp[i0], gp[i1])
    if not ok:
        return np.nan
    b0, b1, _ = _nuisance_solve(Hp, fix, Hp[i0, fix], Hp[i1, fix])
    dec = gp[i0] * a0 + gp[i1] * a1
    c = ll + 0.5 * dec - target_ll
    if not (abs(c) < _VM_ACCEPT and dec < _VM_ACCEPT):
        return np.nan
    c1 = gp[fix] - (Hp[fix, i0] * a0 + Hp[fix, i1] * a1)
    c2 = Hp[fix, fix] - (Hp[fix, i0] * b0 + Hp[fix, i1] * b1)   # the Schur complement
    if not c2 > 0.0:
        return np.nan
    # c + c1 d - c2 d^2 / 2 = 0
    disc = c1 * c1 + 2.0 * c2 * c
    if disc < 0.0:
        return np.nan
    r = math.sqrt(disc)
    best = np.nan
    for d in ((c1 + r) / c2, (c1 - r) / c2):
        if side * (dz + d) > 0.0 and not (abs(d) >= abs(best)):
            best = d
    if not abs(best) <= _VM_NEAR * abs(dz):
        # a long step on a flat profile: the model is not to be trusted that far
        return np.nan
    return phi[fix] + best


@njit(cache=True, error_model="numpy",
      unit=("float64(" + GENE_TYPE + ", float64[::1], "
            "float64, int64, float64, float64, float64[::1], float64, float64[::1], "
            "float64[:, ::1])"))
def _profile_bound_vm(gene, theta_hat, ll_hat, target, side, drop, buf, ll0, g0, H0):
    """Venzon-Moolgavkar: solve l(phi) = ll_hat - drop together with
    dl/dphi_j = 0 for the nuisance coordinates by Newton's method, one
    likelihood evaluation (with Louis information) per step. A nuisance
    coordinate that sits on the edge of the search box at the optimum with the
    likelihood rising outwards (a ridge towards a limit) is held on the edge
    instead; one that would leave the box later ends the iteration (NaN).
    The iteration starts from ``ll0``, ``g0``, ``H0``, the evaluation at
    ``theta_hat``, its first point on the quadratic approximation there (for
    burst frequency with no nuisance coordinate held, in the mean coordinates
    of :func:`telegraph.kernels.optimize._mean_coords`) with each nuisance
    coordinate moved by at most _VM_START_SLOPE per unit of the target, and
    ends at the root of an evaluated point's profile model
    once that model is within _VM_ACCEPT nats of the cut-off with the
    nuisance's Newton decrement below it (:func:`_vm_model_end`; docs/maths.md,
    "Profile likelihood", *Venzon-Moolgavkar*).
    Returns the bound (log scale) or NaN when it does not converge cleanly
    (the caller then profiles by nested maximisation)."""
    T, Tinv, fix = target_transform(target)
    lo = np.empty(3)
    hi = np.empty(3)
    search_box(target, lo, hi)
    g = np.zeros(3)
    H = np.zeros((3, 3))
    gp = np.zeros(3)
    Hp = np.zeros((3, 3))
    phi = np.zeros(3)
    theta = theta_hat.copy()
    to_phi(T, theta, phi)
    psi_hat = phi[fix]
    ll = ll0
    # element by element: a slice copy compiles Numba's shape-error message (~4 s cold)
    for i in range(3):
        g[i] = g0[i]
        for j in range(3):
            H[i, j] = H0[i, j]
    target_ll = ll_hat - drop
    J = np.zeros((3, 3))
    F = np.zeros(3)
    d = np.zeros(3)
    pinned = np.zeros(3, np.bool_)
    grad_info_phi(Tinv, g, H, gp, Hp)
    for i in range(3):
        if i != fix and ((phi[i] <= lo[i] + 1e-9 and gp[i] <= 0.0)
                         or (phi[i] >= hi[i] - 1e-9 and gp[i] >= 0.0)):
            pinned[i] = True
    for it in range(30):
        if it > 0:
            grad_info_phi(Tinv, g, H, gp, Hp)
        # the reduced system: pinned coordinates get an identity row/column
        A = Hp.copy()
        for i in range(3):
            if pinned[i]:
                for j in range(3):
                    A[i, j] = 0.0
                    A[j, i] = 0.0
                A[i, i] = 1.0
        if it == 0:
            # start from the quadratic approximation at the optimum; for burst
            # frequency with no nuisance coordinate held, in the mean coordinates
            # (log a, log b, log m), where the ridge towards the bursty limit
            # (b -> inf at fixed a and mean) runs along log b instead of curving
            # through log b and log lam (docs/maths.md, *Venzon-Moolgavkar*)
            mean = target == TARGET_LOG_A and not (pinned[1] or pinned[2])
            psi0 = np.zeros(3)
            if mean:
                g_m = np.zeros(3)
                _mean_coords(theta, g, H, psi0, g_m, A)
            Vinv = np.zeros(3)
            e_fix = np.zeros(3)
            e_fix[fix] = 1.0
            ok = solve3(A, e_fix, Vinv)
            if not ok or not (Vinv[fix] > 0.0):
                return np.nan
            r = math.sqrt(2.0 * drop / Vinv[fix])
            for i in range(3):
                if i != fix and abs(Vinv[i]) > _VM_START_SLOPE * Vinv[fix]:
                    Vinv[i] = math.copysign(_VM_START_SLOPE * Vinv[fix], Vinv[i])
            # the quadratic guess overshoots where the likelihood is skewed:
            # walk back along the same line until the drop is at most 2x
            phi0 = phi.copy()
            psi = np.zeros(3)
            found = False
            for _h in range(12):
                if mean:
                    for i in range(3):
                        psi[i] = psi0[i] + side * r * Vinv[i]
                    _from_mean(psi, phi)
                for i in range(3):
                    if not mean:
                        phi[i] = phi0[i] + side * r * Vinv[i]
                    if i != fix:
                        phi[i] = min(max(phi[i], lo[i]), hi[i])
                if lo[fix] <= phi[fix] <= hi[fix]:
                    to_theta(Tinv, phi, theta)
                    ll = telegraph_eval(gene, theta, True, g, H, buf)
                    if np.isfinite(ll) and ll_hat - ll <= 2.0 * drop:
                        found = True
                        break
                r *= 0.5
            if not found:
                return np.nan
            continue
        end = _vm_model_end(phi, ll, gp, Hp, pinned, fix, target_ll, psi_hat, side)
        if lo[fix] <= end <= hi[fix]:
            return end
        # residuals: F0 = l - target, Fj = dl/dphi_j for free nuisance j
        F[0] = ll - target_ll
        for j in range(3):
            J[0, j] = 0.0 if pinned[j] else gp[j]
        row = 1
        gmax = 0.0
        for i in range(3):
            if i == fix:
                continue
            if pinned[i]:
                F[row] = 0.0
                for j in range(3):
                    J[row, j] = 1.0 if j == i else 0.0
            else:
                F[row] = gp[i]
                gmax = max(gmax, abs(gp[i]))
                for j in range(3):
                    J[row, j] = 0.0 if pinned[j] else -Hp[i, j]
            row += 1
        if abs(F[0]) < 1e-6 and gmax < 1e-5 * (1.0 + abs(ll_hat)) ** 0.5:
            # a maximum over the free nuisance directions, on the right side,
            # with the pinned ones still pushing outwards
            ok = (phi[fix] - psi_hat) * side > 0.0
            for i in range(3):
                if pinned[i] and not ((phi[i] <= lo[i] + 1e-9 and gp[i] <= 1e-6)
                                      or (phi[i] >= hi[i] - 1e-9 and gp[i] >= -1e-6)):
                    ok = False
            free_n = 0
            idx0 = -1
            idx1 = -1
            for i in range(3):
                if i != fix and not pinned[i]:
                    if idx0 < 0:
                        idx0 = i
                    else:
                        idx1 = i
                    free_n += 1
            if free_n >= 1 and not (Hp[idx0, idx0] > 0.0):
                ok = False
            if free_n == 2 and not (Hp[idx0, idx0] * Hp[idx1, idx1] - Hp[idx0, idx1] ** 2 > 0.0):
                ok = False
            return phi[fix] if ok else np.nan
        for i in range(3):
            F[i] = -F[i]
        if not solve3(J, F, d):
            return np.nan
        smax = 0.0
        for i in range(3):
            smax = max(smax, abs(d[i]))
        if smax > 1.0:
            for i in range(3):
                d[i] *= 1.0 / smax
        # halve the step until the likelihood is finite; a nuisance coordinate running
        # out of the box ends the iteration (a ridge to a limit: the nested search
        # follows it to the edge in fewer evaluations than a Newton iteration pinned there)
        phi0 = phi.copy()
        stepped = False
        for _h in range(8):
            for i in range(3):
                phi[i] = phi0[i] + d[i]
            if not (lo[fix] <= phi[fix] <= hi[fix]):
                for i in range(3):
                    d[i] *= 0.5
                continue
            for i in range(3):
                if i != fix and (phi[i] < lo[i] or phi[i] > hi[i]):
                    return np.nan
            to_theta(Tinv, phi, theta)
            ll = telegraph_eval(gene, theta, True, g, H, buf)
            if np.isfinite(ll):
                stepped = True
                break
            for i in range(3):
                d[i] *= 0.5
        if not stepped:
            return np.nan
    return np.nan



@njit(cache=True, error_model="numpy")
def _negbinom_profile_point(gene, theta, fix, psi, max_iter, buf):
    """Profile log-likelihood of the negative binomial (theta = (log a, log
    beta, unused)) at theta[fix] = psi, maximised over the other coordinate
    from the warm start ``theta`` (updated)."""
    theta[fix] = psi
    free = np.zeros(3, np.bool_)
    free[1 - fix] = True
    lo = np.full(3, LIMIT_LO)
    hi = np.full(3, LIMIT_HI)
    eye = np.eye(3)
    ll, conv, it = maximize(MODEL_NEGBINOM, gene, theta, eye, eye,
                            free, lo, hi, max_iter, buf, np.empty(0),
                            np.empty((0, 3)), False, PROFILE_DECREMENT_TOL, np.empty(0),
                            np.empty((0, 3)))
    return ll


#: :func:`_negbinom_end_vm`: Newton steps at most, the largest step (log scale), and the
#: tolerance (nats) of the log-likelihood at the end, against the cut-off and against the
#: free coordinate's maximum (the rounding of a sum of 10^5 cells' terms is ~1e-10 of it)
_NB_VM_ITER = 30
_NB_VM_STEP = 1.0
_NB_VM_TOL = 1e-8


@njit(cache=True, error_model="numpy")
def _negbinom_end_vm(gene, theta_nb, cut, fix, side, buf, th):
    """The end of the negative binomial's profile interval of theta[fix] (log
    a or log beta) on ``side`` where the profile equals ``cut``, by
    Venzon and Moolgavkar's Newton iteration on the two equations l(theta) =
    cut and dl/dtheta_free = 0, from the quadratic approximation at the
    maximum ``theta_nb`` (one evaluation with information per step; the
    negative binomial's log-likelihood is smooth and its profile unimodal, so
    the iteration converges in a few steps). Returns (end, the profile there:
    the log-likelihood at the last point, within _NB_VM_TOL of ``cut`` and of
    the free coordinate's maximum), that point in ``th`` (3); (NaN, NaN) when
    it does not converge cleanly on the requested side (the caller then
    brackets)."""
    o = 1 - fix
    g = np.zeros(3)
    H = np.zeros((3, 3))
    for i in range(3):
        th[i] = theta_nb[i]
    ll = evaluate(MODEL_NEGBINOM, gene, th, True, g, H, buf)
    det = H[0, 0] * H[1, 1] - H[0, 1] * H[1, 0]
    if not (np.isfinite(ll) and det > 0.0 and H[o, o] > 0.0 and ll > cut):
        return np.nan, np.nan
    # the quadratic approximation: V = H^-1, the end at sqrt(2 (ll - cut) V_ff)
    v_ff = H[o, o] / det
    v_of = -H[o, fix] / det
    r = math.sqrt(2.0 * (ll - cut) * v_ff)
    th[fix] = theta_nb[fix] + side * r
    th[o] = theta_nb[o] + side * r * v_of / v_ff
    psi_hat = theta_nb[fix]
    for _ in range(_NB_VM_ITER):
        if not (LIMIT_LO < th[0] < LIMIT_HI and LIMIT_LO < th[1] < LIMIT_HI):
            return np.nan, np.nan
        ll = evaluate(MODEL_NEGBINOM, gene, th, True, g, H, buf)
        if not np.isfinite(ll):
            return np.nan, np.nan
        f0 = ll - cut
        f1 = g[o]
        # at the cut-off, and at the free coordinate's maximum (the log-likelihood
        # a Newton step in it would still gain, f1^2 / 2 H_oo, below the same tolerance)
        if abs(f0) < _NB_VM_TOL and H[o, o] > 0.0 and f1 * f1 < 2.0 * _NB_VM_TOL * H[o, o]:
            if side * (th[fix] - psi_hat) > 0.0:
                return th[fix], ll
            return np.nan, np.nan
        # Newton on (f0, f1): J = [[g_fix, g_o], [-H_of, -H_oo]] (H: observed information)
        j00 = g[fix]
        j01 = g[o]
        j10 = -H[o, fix]
        j11 = -H[o, o]
        dj = j00 * j11 - j01 * j10
        if dj == 0.0 or not np.isfinite(dj):
            return np.nan, np.nan
        d_fix = (-f0 * j11 + f1 * j01) / dj
        d_o = (-f1 * j00 + f0 * j10) / dj
        m = max(abs(d_fix), abs(d_o))
        if m > _NB_VM_STEP:
            d_fix *= _NB_VM_STEP / m
            d_o *= _NB_VM_STEP / m
        th[fix] += d_fix
        th[o] += d_o
        if not side * (th[fix] - psi_hat) > 0.0:
            return np.nan, np.nan
    return np.nan, np.nan


@njit(cache=True, error_model="numpy",
      unit=("float64(" + GENE_TYPE + ", float64[::1], float64, int64, float64, float64, int64, "
            "float64[::1])"))
def negbinom_profile_bound(gene, theta_nb, ll_nb, fix, side, drop, max_iter, buf):
    """One end of the profile-likelihood interval of log a (``fix`` = 0) or
    log burst size (``fix`` = 1) within the negative binomial, the bursty
    limit, at its own maximum ``ll_nb`` (theta_nb = (log a, log beta, 0)).

    First by Venzon and Moolgavkar's iteration (:func:`_negbinom_end_vm`, a
    few evaluations); where that does not converge cleanly, by bracketing
    (:func:`_negbinom_bracketed_end`). Returns +-inf when the profile stays
    above the cut-off up to the edge of the limit models' box, NaN when the
    estimate is not finite."""
    psi_hat = theta_nb[fix]
    if not (np.isfinite(psi_hat) and np.isfinite(ll_nb)):
        return np.nan
    end, _ = _negbinom_end_vm(gene, theta_nb, ll_nb - drop, fix, side, buf, np.empty(3))
    if np.isfinite(end):
        return end
    return _negbinom_bracketed_end(gene, theta_nb, ll_nb, fix, side, drop, max_iter, buf)


@njit(cache=True, error_model="numpy",
      unit=("float64(" + GENE_TYPE + ", float64[::1], float64, int64, float64, float64, int64, "
            "float64[::1])"))
def _negbinom_bracketed_end(gene, theta_nb, ll_nb, fix, side, drop, max_iter, buf):
    """:func:`negbinom_profile_bound`'s end where the Venzon-Moolgavkar
    iteration did not converge cleanly: steps outwards from the estimate
    (first step from the Wald standard error, then doubling) until the profile
    drops by more than ``drop``, then regula falsi (Illinois) on the signed
    root deviance; +-inf at the edge of the limit models' box (``theta_nb``
    finite, unchanged)."""
    psi_hat = theta_nb[fix]
    g = np.zeros(3)
    H = np.zeros((3, 3))
    evaluate(MODEL_NEGBINOM, gene, theta_nb, True, g, H, buf)
    det = H[0, 0] * H[1, 1] - H[0, 1] * H[1, 0]
    var = H[1 - fix, 1 - fix] / det if det > 0.0 else np.nan
    d = math.sqrt(2.0 * drop * var) if (var > 0.0 and np.isfinite(var)) else 0.5
    d = min(max(d, 0.02), 3.0)
    theta = theta_nb.copy()
    theta_in = theta_nb.copy()
    psi_in = psi_hat
    def_in = 0.0
    psi_out = np.nan
    def_out = np.nan
    for _ in range(40):
        psi = psi_in + side * d
        if psi <= LIMIT_LO or psi >= LIMIT_HI:
            return side * np.inf
        for i in range(3):
            theta[i] = theta_in[i]
        dev = ll_nb - _negbinom_profile_point(gene, theta, fix, psi, max_iter, buf)
        if dev >= drop:
            psi_out = psi
            def_out = dev
            break
        psi_in = psi
        def_in = max(dev, 0.0)
        for i in range(3):
            theta_in[i] = theta[i]
        d = _next_step(d, abs(psi_in - psi_hat), def_in, drop)
    if not np.isfinite(psi_out):
        return np.nan
    a_psi = psi_in
    b_psi = psi_out
    fa = math.sqrt(def_in) - math.sqrt(drop)
    fb = math.sqrt(def_out) - math.sqrt(drop)
    ra = fa
    rb = fb
    side_kept = 0
    for _ in range(30):
        if abs(b_psi - a_psi) < 1e-3:
            break
        c_psi = b_psi - fb * (b_psi - a_psi) / (fb - fa)
        for i in range(3):
            theta[i] = theta_in[i]
        dev = ll_nb - _negbinom_profile_point(gene, theta, fix, c_psi, max_iter, buf)
        fc = math.sqrt(max(dev, 0.0)) - math.sqrt(drop)
        if abs(fc) < 1e-6:
            return c_psi
        a_psi, fa, ra, b_psi, fb, rb, side_kept = illinois_step(a_psi, fa, ra, b_psi, fb, rb,
                                                                side_kept, c_psi, fc)
        if fc < 0:  # c is inside the interval: its maximiser starts the next point
            for i in range(3):
                theta_in[i] = theta[i]
    return secant_end(a_psi, ra, b_psi, rb)


#: :func:`bursty_limit_end`'s check (ii): Newton steps of the continuation from the
#: optimum before it is compared with the climb from the box edge
_EDGE_GUARD_ITER = 3


@njit(cache=True, error_model="numpy",
      unit=("UniTuple(float64, 2)(" + GENE_TYPE + ", "
            "float64[::1], float64, int64, float64, float64, float64[::1], float64, int64, "
            "float64[::1])"))
def bursty_limit_end(gene, theta_hat, ll_hat, target, side, drop, theta_nb, ll_nb, max_iter, buf):
    """The upper end of burst frequency (``target`` = TARGET_LOG_A, ``side``
    = 1) or the lower end of burst size (TARGET_LOG_BETA, -1) where the
    profile reaches its cut-off on the bursty limit (docs/maths.md, "Profile
    likelihood", *Ends on the bursty ridge*): returns (end, telegraph profile
    there), or (NaN, -inf) where that is not shown (any other target or side
    too), and the caller searches as usual.

    The profile over the model and its limits is max(telegraph in the box,
    negative binomial) at every psi, the negative binomial (at ``theta_nb`` =
    (log a, log beta, 0), maximum ``ll_nb``) being the telegraph law's limit
    b -> inf at fixed a and beta. On these two sides the telegraph profile
    runs up a ridge to that limit (at fixed a and beta its Fano factor 1 +
    beta b / (a + b + 1) grows with b towards the negative binomial's 1 +
    beta: more a at the same mean means less beta and more b), and nested
    maximisation walks the ridge at tens of evaluations and stops at the box
    edge, short of the limit. Instead the end is the negative binomial's own
    profile end at the cut-off ``ll_hat - drop`` (cheap: no series), accepted
    when the likelihood still rises along the ridge at the box edge there
    (one evaluation; a first look), (i) the profile stays above the cut-off from the estimate up to
    there (the end is the first crossing): the negative binomial's profile,
    unimodal, is above it at the estimate, or the telegraph profile is above
    it at the negative binomial's near end (a climb there stops once above
    it); and (ii) the telegraph profile at that end, climbed from the box edge
    next to the limit's point and, for a few steps, by continuation from the
    optimum (climbed to the end where that is higher), is no higher than the
    negative binomial's: the limit attains the profile there (docs/maths.md,
    "Profile likelihood", *Ends on the bursty ridge*)."""
    if not ((target == TARGET_LOG_A and side > 0) or (target == TARGET_LOG_BETA and side < 0)):
        return np.nan, -np.inf
    if not (ll_hat - ll_nb < drop) or not (np.isfinite(theta_nb[0])
                                           and np.isfinite(theta_nb[1])):
        return np.nan, -np.inf
    fix = 0 if target == TARGET_LOG_A else 1
    T, Tinv, fix_phi = target_transform(target)
    phi = np.zeros(3)
    to_phi(T, theta_hat, phi)
    psi_hat = phi[fix_phi]
    # the negative binomial's end and its profile there: from Venzon and Moolgavkar's
    # iteration, whose last point has the free coordinate maximised (no second search);
    # where it does not converge cleanly, bracketed and the profile maximised there
    th = np.empty(3)
    psi, ll_lim = _negbinom_end_vm(gene, theta_nb, ll_hat - drop, fix, side, buf, th)
    if not np.isfinite(psi):
        psi = _negbinom_bracketed_end(gene, theta_nb, ll_hat, fix, side, drop, max_iter, buf)
        if not np.isfinite(psi):
            return np.nan, -np.inf
        for i in range(3):
            th[i] = theta_nb[i]
        ll_lim = _negbinom_profile_point(gene, th, fix, psi, max_iter, buf)
    if not (side * (psi - psi_hat) > 0.0):
        return np.nan, -np.inf
    # a first look (one evaluation): at the edge of the box on the ridge through
    # the negative binomial's point, the likelihood must still rise towards the
    # limit; where it falls, a telegraph maximum inside the box is higher
    lo = np.empty(3)
    hi = np.empty(3)
    search_box(target, lo, hi)
    theta_e = np.empty(3)
    theta_e[0] = th[0]
    theta_e[1] = hi[1]
    theta_e[2] = th[1] + hi[1]
    g = np.zeros(3)
    H = np.zeros((3, 3))
    ll_edge = telegraph_eval(gene, theta_e, False, g, H, buf)
    if not np.isfinite(ll_edge) or not (g[1] + g[2] > 0.0):
        return np.nan, -np.inf
    # (i) the profile stays above the cut-off from the estimate to the negative
    # binomial's interval: the estimate lies in that interval (at once where it lies
    # between the negative binomial's maximum and the end: its profile is unimodal), or
    # the telegraph profile is above the cut-off at its near end
    theta = theta_hat.copy()
    psi_from = psi_hat
    inside = side * (psi_hat - theta_nb[fix]) >= 0.0
    if not inside:
        for i in range(3):
            th[i] = theta_nb[i]
        inside = ll_hat - _negbinom_profile_point(gene, th, fix, psi_hat, max_iter, buf) < drop
    if not inside:
        near = negbinom_profile_bound(gene, theta_nb.copy(), ll_hat,
                                      fix, -side, drop, max_iter, buf)
        if not np.isfinite(near) or not (side * (near - psi_hat) > 0.0):
            return np.nan, -np.inf
        # (any point there above the cut-off shows it, so a climb stops as soon as it
        # is; first straight from the optimum, then by continuation as the search would)
        cut = ll_hat - drop
        stop = cut + 1e-9 * (1.0 + abs(cut))
        if not (_profile_point(gene, theta, target, near, max_iter, buf, stop, np.empty(0)) > cut):
            for i in range(3):
                theta[i] = theta_hat[i]
            if not (_profile_walk(gene, theta, target, psi_hat,
                                  near, max_iter, buf, 0, stop, 0, np.empty(0)) > cut):
                return np.nan, -np.inf
        psi_from = near
    # (ii) the telegraph profile at psi: climbed from the box edge next to the limit's
    # point (the edge point above), where it typically stays (b held at the edge) in a
    # few steps, and by continuation from the optimum for a few steps; a continuation
    # already above the edge's climb heads for a maximum inside the box, and is
    # climbed to the end as the search would
    ll_tol = 1e-9 * (1.0 + abs(ll_lim))
    ll_e = _profile_point(gene, theta_e, target, psi, max_iter, buf, np.inf, np.empty(0))
    if not (ll_e <= ll_lim + ll_tol):
        return np.nan, ll_e
    ll_tg = _profile_walk(gene, theta, target, psi_from, psi,
                          max_iter, buf, _EDGE_GUARD_ITER, np.inf, _EDGE_GUARD_ITER, np.empty(0))
    # above it by rounding where the continuation has reached the edge's point (the same
    # optimum); elsewhere it heads for another maximum, climbed to its end
    if ll_tg > ll_e and not same_optimum(theta, theta_e):
        ll_tg = _profile_point(gene, theta, target, psi, max_iter, buf, np.inf, np.empty(0))
    if not (ll_tg <= ll_lim + ll_tol):
        return np.nan, ll_tg
    return psi, max(ll_tg, ll_e)


@njit(cache=True, error_model="numpy")
def _join(union, target, side, value):
    """Take ``value`` into the limit models' end of a target's side (union:
    (low, high) per target, log scale; NaN = none yet) if it lies further out
    (a NaN value, an end that failed, adds nothing)."""
    k = 2 * target + (0 if side < 0 else 1)
    if np.isnan(value):
        return
    if np.isnan(union[k]):
        union[k] = value
    elif side < 0:
        union[k] = min(union[k], value)
    else:
        union[k] = max(union[k], value)


@njit(cache=True, error_model="numpy",
      unit=("void(float64[::1], float64, boolean, float64, float64, float64, float64, float64, "
            "float64, " + GENE_TYPE + ", float64, boolean[::1], int64, float64[::1])"))
def limit_union_ends(union, d_union, all_limits, ll_sup, ll_nb, ll_zip, ll_p, nb_log_a,
                     nb_log_beta, gene, drop, profile_mask, max_iter,
                     buf):
    """The ends the limit models add to the profile intervals after the regime
    decision (docs/maths.md, "Profile likelihood", *Intervals after the regime
    decision*), to ``union`` (log scale, (low, high) for the targets log a, log
    beta, log b, log lam; NaN where none; only where ``profile_mask``): every
    limit model within ``d_union`` of the supremum (ll_sup - ll_limit <
    d_union) adds its own parameter values; only the bursty limit unless
    ``all_limits``.

    - bursty limit (k_off, k_syn -> inf): the negative binomial's own
      profile intervals of log a and log beta (cut-off ``drop`` below its
      maximum) join, and k_off, k_syn become unbounded above;
    - bimodal limit (k_on, k_off -> 0): k_on and k_off unbounded below,
      burst size above;
    - Poisson limit (k_on, k_off -> inf): k_on, k_off, k_syn unbounded
      above, burst size below.

    ``d_union`` <= 0 adds nothing (regimes whose intervals already cover).
    Computed before the profile searches: a side the union makes unbounded
    needs none (:func:`widen_near_limits` then applies the rest)."""
    if not (d_union > 0.0):
        return
    if ll_sup - ll_nb < d_union:
        th = np.zeros(3)
        th[0] = nb_log_a
        th[1] = nb_log_beta
        for t in (TARGET_LOG_A, TARGET_LOG_BETA):
            if not profile_mask[t]:
                continue
            fix = 0 if t == TARGET_LOG_A else 1
            for side in (-1.0, 1.0):
                end = negbinom_profile_bound(gene, th, ll_nb, fix, side, drop, max_iter, buf)
                _join(union, t, side, end)
        for t in (TARGET_LOG_B, TARGET_LOG_LAM):
            if profile_mask[t]:
                _join(union, t, 1.0, np.inf)
    if not all_limits:
        return
    if ll_sup - ll_zip < d_union:
        if profile_mask[TARGET_LOG_A]:
            _join(union, TARGET_LOG_A, -1.0, -np.inf)
        if profile_mask[TARGET_LOG_B]:
            _join(union, TARGET_LOG_B, -1.0, -np.inf)
        if profile_mask[TARGET_LOG_BETA]:
            _join(union, TARGET_LOG_BETA, 1.0, np.inf)
    if ll_sup - ll_p < d_union:
        for t in (TARGET_LOG_A, TARGET_LOG_B, TARGET_LOG_LAM):
            if profile_mask[t]:
                _join(union, t, 1.0, np.inf)
        if profile_mask[TARGET_LOG_BETA]:
            _join(union, TARGET_LOG_BETA, -1.0, -np.inf)


@njit(cache=True, error_model="numpy")
def unbounded_by_union(union, k):
    """Whether the limit models' end ``union[k]`` (k = 2 target + (0 low, 1
    high)) makes that side of the interval unbounded (-inf low, +inf high)."""
    return union[k] == (-np.inf if k % 2 == 0 else np.inf)


@njit(cache=True, error_model="numpy")
def widen_near_limits(ci, union):
    """Intervals after the regime decision: each end of ``ci`` (log scale,
    (low, high) per target) moves outwards to the limit models' end in
    ``union`` (:func:`limit_union_ends`) where that lies further out; an end
    whose search failed (NaN) stays NaN, unless the union makes it unbounded
    (then no search was run)."""
    for k in range(8):
        u = union[k]
        if np.isnan(u):
            continue
        if unbounded_by_union(union, k):
            ci[k] = u
        elif not np.isnan(ci[k]):
            ci[k] = min(ci[k], u) if k % 2 == 0 else max(ci[k], u)
