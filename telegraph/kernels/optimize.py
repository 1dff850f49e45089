"""Maximum likelihood for one gene: the damped-Newton maximiser and the fits.

:func:`maximize` climbs any of the laws of :mod:`telegraph.kernels.models`
by damped (Levenberg) Newton steps on the free coordinates of a linear
reparameterisation phi = T theta, inside a box lo <= phi <= hi, with an
active set for coordinates that the likelihood pushes against the box. The
same maximiser serves the unconstrained fits and, with one coordinate of phi
held, the profiles (:mod:`telegraph.kernels.profile`,
:mod:`telegraph.kernels.differential`). The telegraph fits, and the profiles
that hold log a or log b, climb in the mean coordinates instead (log a, log b,
log of the mean count; :func:`_mean_coords`), in which the ridges towards the
bursty and Poisson limits run along a coordinate.

The box and the profile targets: rates k_on and k_off are searched in
[1e-4, 1e3] x k_deg and k_syn up to 1e6 x k_deg (beyond that the limit models
take over, docs/maths.md, "Limit regimes"). A target is log a (burst
frequency), log beta = log lam - log b (burst size), log b or log lam;
:func:`target_transform` gives the T that makes it a coordinate of phi, so
burst size is profiled exactly like the rates themselves.

The fits: :func:`fit_telegraph` (moment and regime-shaped starting values,
the best two climbed fully) and the fits of two of its limits,
:func:`fit_negbinom` (bursty) and :func:`fit_zip` (slow switching), in their
own coordinates and box.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit
from .linalg import SOLVE_WORK, grad_info_phi, solve_damped, to_phi, to_theta
from .models import GENE_TYPE, MODEL_NEGBINOM, MODEL_TELEGRAPH, MODEL_ZIP, evaluate, moments

__all__ = ["DECREMENT_TOL", "PROFILE_DECREMENT_TOL", "LOG_LO", "LOG_HI", "LOG_LAM_LO",
           "LOG_LAM_HI", "TARGET_LOG_A", "TARGET_LOG_BETA", "TARGET_LOG_B", "TARGET_LOG_LAM",
           "LIMIT_LO", "LIMIT_HI", "target_transform", "search_box", "same_optimum", "maximize",
           "fit_telegraph", "fit_negbinom", "fit_zip"]

# search box for (log a, log b): k_on, k_off in [1e-4, 1e3] x k_deg (beyond it the
# limits take over); lam up to 1e6
LOG_LO = math.log(1e-4)
LOG_HI = math.log(1e3)
LOG_LAM_LO = math.log(1e-4)
LOG_LAM_HI = math.log(1e6)

# profile targets: phi = T theta, the fixed coordinate is index 2 of phi for
# log beta and index k of theta otherwise
TARGET_LOG_A, TARGET_LOG_BETA, TARGET_LOG_B, TARGET_LOG_LAM = 0, 1, 2, 3

# search box of the limit models' coordinates, (log a, log beta) and (logit f, log lam)
LIMIT_LO = -30.0
LIMIT_HI = 30.0


@njit(cache=True, error_model="numpy")
def target_transform(target):
    """(T, Tinv, fixed index in phi) for a profile target."""
    T = np.eye(3)
    if target == TARGET_LOG_A:
        return T, np.eye(3), 0
    if target == TARGET_LOG_B:
        return T, np.eye(3), 1
    if target == TARGET_LOG_LAM:
        return T, np.eye(3), 2
    # log beta = log lam - log b
    T[2, 1] = -1.0
    Tinv = np.eye(3)
    Tinv[2, 1] = 1.0
    return T, Tinv, 2


@njit(cache=True, error_model="numpy")
def search_box(target, lo, hi):
    """The search box lo <= phi <= hi of a target's coordinates phi."""
    lo[0] = LOG_LO
    hi[0] = LOG_HI
    lo[1] = LOG_LO
    hi[1] = LOG_HI
    if target == TARGET_LOG_BETA:
        lo[2] = LOG_LAM_LO - LOG_HI
        hi[2] = LOG_LAM_HI - LOG_LO
    else:
        lo[2] = LOG_LAM_LO
        hi[2] = LOG_LAM_HI


#: a step of :func:`maximize` gaining less than this many nats (or 1e-9 of the
#: log-likelihood) counts as flat; six flat steps in a row end the climb as converged: a
#: ridge rising towards a limit outside the box, where a damped Newton climb crawls
#: (docs/maths.md, "Fitting", *Damped Newton*)
_FLAT_GAIN = 1e-5

#: the longest Newton step of :func:`maximize` in any coordinate (log scale); the step
#: limit starts there, halves after a step that fails to raise the log-likelihood (a
#: backtracking line search along the same direction, down to _BACKTRACK_MIN, below which
#: the damping grows instead) and doubles back after a step that gains at least half of
#: what the quadratic model predicted
_STEP_MAX = 2.0
_BACKTRACK_MIN = 0.02
_RADIUS_MIN = 1e-3

#: :func:`maximize` has converged once the Newton decrement g' d (twice the gain the
#: quadratic model predicts) is below this many nats: the fits' maxima then lie within
#: about half of it of the optimum's
DECREMENT_TOL = 1e-9
#: ... and the inner maximisations of the profile searches, where a profile value within
#: 5e-6 nats moves an interval end by 5e-6 over the profile's slope there (at most a few
#: 1e-4 in log on the flattest profiles, within the end's tolerance of 1e-3): often one
#: Newton step fewer per point (docs/maths.md, "Profile likelihood", *Inner precision*)
PROFILE_DECREMENT_TOL = 1e-5

#: a climb whose iterate comes within this distance (largest change of a log-rate
#: coordinate) of an optimum already found, at no higher a log-likelihood, is taken to
#: end there (:func:`maximize`'s ``known``)
_SAME_OPTIMUM = 0.1


@njit(cache=True, error_model="numpy", inline="always")
def same_optimum(theta, other):
    """Whether ``theta`` lies within _SAME_OPTIMUM of ``other`` (its first three
    entries) in every coordinate: two climbs there are on their way to the same
    optimum."""
    for i in range(3):
        if not abs(theta[i] - other[i]) < _SAME_OPTIMUM:
            return False
    return True


@njit(cache=True, error_model="numpy", inline="always")
def on_known_path(theta, known):
    """Whether ``theta`` lies within _SAME_OPTIMUM of the optimum in ``known``
    (its first three entries) or of one of the points listed after its
    log-likelihood (entries 4 + 3j .. 6 + 3j), in every coordinate: a climb
    there follows the known climb to its optimum."""
    if same_optimum(theta, known):
        return True
    for j in range((known.shape[0] - 4) // 3):
        if same_optimum(theta, known[4 + 3 * j:]):
            return True
    return False


@njit(cache=True, error_model="numpy", inline="always")
def _log1p_ratio(u, v):
    """log(1 + e^(v - u)) = log((a + b) / a) for u = log a, v = log b."""
    d = v - u
    if d > 0.0:
        return d + math.log1p(math.exp(-d))
    return math.log1p(math.exp(d))


@njit(cache=True, error_model="numpy",
      unit=("void(float64[::1], float64[::1], float64[:, ::1], float64[::1], float64[::1], "
            "float64[:, ::1])"))
def _mean_coords(theta, g, H, psi, gp, Hp):
    """The mean coordinates psi = (log a, log b, log m) of theta = (log a, log b,
    log lam), m = lam a / (a + b) the mean count at capture 1, and the gradient
    and information of the log-likelihood in them (docs/maths.md, "Fitting",
    *Mean coordinates*): theta = (u, v, m - u + log(e^u + e^v)), so with
    p = a / (a + b), q = 1 - p the Jacobian J = d theta / d psi has the row
    (-q, q, 1) for log lam, gp = J' g and Hp = J' H J - g_lam p q [[1, -1],
    [-1, 1]] (the curvature of log(e^u + e^v), in the (u, v) block)."""
    u = theta[0]
    v = theta[1]
    psi[0] = u
    psi[1] = v
    psi[2] = theta[2] - _log1p_ratio(u, v)
    q = 1.0 / (1.0 + math.exp(u - v)) if v < u else 1.0 - 1.0 / (1.0 + math.exp(v - u))
    p = 1.0 - q
    # J columns: d theta / d u = (1, 0, -q), d / d v = (0, 1, q), d / d m = (0, 0, 1)
    gp[0] = g[0] - q * g[2]
    gp[1] = g[1] + q * g[2]
    gp[2] = g[2]
    # H J: column k of H times J's column k
    HJ = np.empty((3, 3))
    for i in range(3):
        HJ[i, 0] = H[i, 0] - q * H[i, 2]
        HJ[i, 1] = H[i, 1] + q * H[i, 2]
        HJ[i, 2] = H[i, 2]
    for j in range(3):
        Hp[0, j] = HJ[0, j] - q * HJ[2, j]
        Hp[1, j] = HJ[1, j] + q * HJ[2, j]
        Hp[2, j] = HJ[2, j]
    c = g[2] * p * q
    Hp[0, 0] -= c
    Hp[1, 1] -= c
    Hp[0, 1] += c
    Hp[1, 0] += c


@njit(cache=True, error_model="numpy", inline="always")
def _from_mean(psi, theta):
    """theta = (log a, log b, log lam) of the mean coordinates psi (:func:`_mean_coords`)."""
    theta[0] = psi[0]
    theta[1] = psi[1]
    theta[2] = psi[2] + _log1p_ratio(psi[0], psi[1])


@njit(cache=True, error_model="numpy", inline="always")
def _keep(g, H, g_end, H_end):
    """Copy the gradient and information of the climb's point to ``g_end`` and
    ``H_end`` (:func:`maximize`), unless they are empty."""
    if g_end.shape[0] == 3:
        for i in range(3):
            g_end[i] = g[i]
            for j in range(3):
                H_end[i, j] = H[i, j]


#: floats of scratch :func:`_climb` takes
_CLIMB_WORK = 57 + SOLVE_WORK


@njit(cache=True, error_model="numpy", borrow=True,
      unit=("Tuple((float64, boolean, int64))(int64, " + GENE_TYPE + ", "
            "float64[::1], float64[:, ::1], float64[:, ::1], boolean[::1], "
            "float64[::1], float64[::1], int64, float64[::1], float64[::1], float64[:, ::1], "
            "boolean, float64, float64[::1], float64[:, ::1], float64[::1], boolean[::1])"))
def _climb(model, gene, theta, T, Tinv, free, lo, hi, max_iter, buf, known, trail, mean, tol,
           g_end, H_end, work, act):
    """:func:`maximize`'s climb, in the scratch that maximize allocates:
    ``work`` (_CLIMB_WORK floats) and ``act`` (3 booleans). It allocates
    nothing and counts no references (it borrows: kernels/_jit.py)."""
    nfree = 0
    for i in range(3):
        if free[i]:
            nfree += 1
    for i in range(_CLIMB_WORK):
        work[i] = 0.0
    g = work[0:3]
    H = work[3:12].reshape((3, 3))
    gp = work[12:15]
    Hp = work[15:24].reshape((3, 3))
    step = work[24:27]
    step_newton = work[27:30]
    phi = work[30:33]
    phi_new = work[33:36]
    theta_new = work[36:39]
    g_new = work[39:42]
    H_new = work[42:51].reshape((3, 3))
    lo_c = work[51:54]
    hi_c = work[54:57]
    solve_work = work[57:57 + SOLVE_WORK]
    to_phi(T, theta, phi)
    for i in range(3):
        if free[i]:
            phi[i] = min(max(phi[i], lo[i]), hi[i])
    to_theta(Tinv, phi, theta)
    ll = evaluate(model, gene, theta, True, g, H, buf)
    if not np.isfinite(ll):
        return ll, False, 0
    if known.shape[0] == 1 and ll >= known[0]:
        _keep(g, H, g_end, H_end)
        return ll, False, 0
    mu = 0.0
    radius = _STEP_MAX
    converged = False
    flat = 0
    it = 0
    n_trail = 0
    for i in range(3):
        lo_c[i] = lo[i]
        hi_c[i] = hi[i]
    while it < max_iter:
        it += 1
        in_mean = mean and not (free[2] and ((theta[2] <= lo[2] + 1e-12 and g[2] < 0.0)
                                             or (theta[2] >= hi[2] - 1e-12 and g[2] > 0.0)))
        if in_mean:
            # log m is not boxed; log lam is kept in its box below
            _mean_coords(theta, g, H, phi, gp, Hp)
            lo_c[2] = -np.inf
            hi_c[2] = np.inf
        else:
            grad_info_phi(Tinv, g, H, gp, Hp)
            if mean:
                # back from the mean coordinates (T is the identity)
                to_phi(T, theta, phi)
                lo_c[2] = lo[2]
                hi_c[2] = hi[2]
        # coordinates pinned at the box edge with the gradient pointing out are
        # held (active set), so the Newton step works in the remaining ones
        for i in range(3):
            act[i] = free[i]
            if free[i]:
                if phi[i] <= lo_c[i] + 1e-12 and gp[i] < 0.0:
                    act[i] = False
                if phi[i] >= hi_c[i] - 1e-12 and gp[i] > 0.0:
                    act[i] = False
        nact = 0
        gmax = 0.0
        for i in range(3):
            if act[i]:
                nact += 1
                gmax = max(gmax, abs(gp[i]))
        if nact == 0:
            converged = True
            break
        scale = 0.0
        for i in range(3):
            if act[i]:
                scale = max(scale, abs(Hp[i, i]))
        if scale == 0.0:
            scale = 1.0
        # projected Newton: a coordinate at the box edge whose step points out
        # of the box is held too, and the step is then shortened (not clipped
        # per coordinate, which would leave the ridge of a flat likelihood)
        ok = False
        for _rep in range(3):
            ok = solve_damped(Hp, gp, act, nact, mu, step, solve_work)
            tries = 0
            while not ok and tries < 60:
                mu = max(mu * 4.0, 1e-6 * scale)
                ok = solve_damped(Hp, gp, act, nact, mu, step, solve_work)
                tries += 1
            if not ok:
                break
            changed = False
            for i in range(3):
                if act[i] and ((phi[i] <= lo_c[i] + 1e-12 and step[i] < 0.0)
                               or (phi[i] >= hi_c[i] - 1e-12 and step[i] > 0.0)):
                    act[i] = False
                    nact -= 1
                    changed = True
            if not changed or nact == 0:
                break
        if not ok or nact == 0:
            converged = nact == 0
            break
        # Newton decrement: converged when the predicted gain is negligible. A damped
        # step's is smaller than the Newton step's, so with damping left over from
        # earlier steps the undamped one decides (where the information is positive
        # definite), rather than more evaluations at the optimum while the damping decays
        dec = 0.0
        for i in range(3):
            dec += gp[i] * step[i]
        if dec < tol:
            if mu == 0.0:
                converged = True
                break
            if solve_damped(Hp, gp, act, nact, 0.0, step_newton, solve_work):
                dec0 = 0.0
                for i in range(3):
                    dec0 += gp[i] * step_newton[i]
                if dec0 < tol:
                    converged = True
                    break
        smax = 0.0
        for i in range(3):
            smax = max(smax, abs(step[i]))
        shrink = 1.0
        if smax > radius:
            shrink = radius / smax
        for i in range(3):
            if free[i] and step[i] != 0.0:
                if step[i] > 0.0:
                    room = hi_c[i] - phi[i]
                    if step[i] * shrink > room:
                        shrink = room / step[i]
                else:
                    room = lo_c[i] - phi[i]
                    if step[i] * shrink < room:
                        shrink = room / step[i]
        for i in range(3):
            step[i] *= shrink
        smax *= shrink
        for i in range(3):
            phi_new[i] = phi[i] + step[i]
            if free[i]:
                phi_new[i] = min(max(phi_new[i], lo_c[i]), hi_c[i])
        if in_mean:
            _from_mean(phi_new, theta_new)
            if free[2]:
                theta_new[2] = min(max(theta_new[2], lo[2]), hi[2])
        else:
            to_theta(Tinv, phi_new, theta_new)
        ll_new = evaluate(model, gene, theta_new, True, g_new, H_new, buf)
        if np.isfinite(ll_new) and ll_new >= ll - 1e-12 * (1.0 + abs(ll)):
            gain = ll_new - ll
            # the gain the quadratic model predicted for the step taken
            pred = 0.0
            for i in range(3):
                pred += gp[i] * step[i]
                for j in range(3):
                    pred -= 0.5 * step[i] * Hp[i, j] * step[j]
            if gain > 0.5 * pred:
                radius = min(_STEP_MAX, 2.0 * radius)
            elif gain < 0.1 * pred:
                radius = max(0.5 * smax, _RADIUS_MIN)
            for i in range(3):
                phi[i] = phi_new[i]
                theta[i] = theta_new[i]
                g[i] = g_new[i]
                for j in range(3):
                    H[i, j] = H_new[i, j]
            ll = ll_new
            mu = mu * 0.25 if mu > 1e-9 * scale else 0.0
            if n_trail < trail.shape[0]:
                for i in range(3):
                    trail[n_trail, i] = theta[i]
                n_trail += 1
            if known.shape[0] >= 4 and ll <= known[3] and on_known_path(theta, known):
                return -np.inf, False, it
            if known.shape[0] == 1 and ll >= known[0]:
                _keep(g, H, g_end, H_end)
                return ll, False, it
            if gain < 1e-11 * (1.0 + abs(ll)) and smax < 1e-7:
                converged = True
                break
            # on a ridge that rises towards a limit outside the box the steps
            # stay long while the gains vanish: stop when the likelihood is
            # flat over several steps, each gaining less than 1e-9 of it or
            # _FLAT_GAIN nats (the limit models take over)
            if gain < max(1e-9 * (1.0 + abs(ll)), _FLAT_GAIN):
                flat += 1
                if flat >= 6:
                    converged = True
                    break
            else:
                flat = 0
        else:
            if smax > _BACKTRACK_MIN:
                # back along the same direction: a long step that left a curved ridge
                radius = 0.5 * smax
                continue
            mu = max(mu * 4.0, 1e-3 * scale)
            if mu > 1e12 * scale:
                # no ascent direction left at machine precision
                converged = gmax < 1e-3 * (1.0 + abs(ll))
                break
    _keep(g, H, g_end, H_end)
    return ll, converged, it


@njit(cache=True, error_model="numpy",
      unit=("Tuple((float64, boolean, int64))(int64, " + GENE_TYPE + ", "
            "float64[::1], float64[:, ::1], float64[:, ::1], boolean[::1], "
            "float64[::1], float64[::1], int64, float64[::1], float64[::1], float64[:, ::1], "
            "boolean, float64, float64[::1], float64[:, ::1])"))
def maximize(model, gene, theta, T, Tinv, free, lo, hi, max_iter, buf, known, trail, mean,
             tol, g_end, H_end):
    """Damped Newton ascent of the log-likelihood over the free coordinates of
    phi = T theta, within the box lo <= phi <= hi. ``theta`` is updated in place.
    Returns (loglik, converged, iterations).

    ``known``: empty, or (theta*, loglik*) of an optimum another climb reached
    followed by the points that climb passed through on its way there (4 + 3k
    floats, theta of each): once an accepted step lands within _SAME_OPTIMUM
    of theta* or of one of those points (in every coordinate of theta) at a
    log-likelihood no higher than loglik*, the climb is on its way there and
    stops, returning -inf (it adds nothing to the optimum known): a
    multi-start fit climbs its second start only as far as it takes to tell
    whether it leads elsewhere. Or one float, a level: the climb stops (not
    converged) once the log-likelihood reaches it, for a caller that only
    needs to know that the maximum lies above it.

    ``trail``: empty (0 rows), or an array of at least ``max_iter`` rows of NaN,
    where the climb writes theta after each accepted step, in order (the points
    a later climb's ``known`` lists).

    ``mean``: climb in the mean coordinates (log a, log b, log m) of the
    telegraph model (:func:`_mean_coords`; T must be the identity, the box
    still bounds theta). The ridges that rise towards the bursty and Poisson
    limits, curved in theta, run along a coordinate there, so the climb
    follows them in a few steps where it would zig-zag in theta. While log lam
    is held at its edge, that iteration works in theta.

    ``tol``: the climb has converged once the Newton decrement (twice the gain
    the quadratic model predicts) is below it, in nats: DECREMENT_TOL for the
    fits; the profile's inner maximisations use PROFILE_DECREMENT_TOL.

    ``g_end``, ``H_end``: empty, or (3,) and (3, 3) arrays that receive the
    gradient and observed information in theta at the returned theta (where
    the returned log-likelihood is finite), so that a caller needs no second
    evaluation there."""
    work = np.empty(_CLIMB_WORK)
    act = np.empty(3, np.bool_)
    return _climb(model, gene, theta, T, Tinv, free, lo, hi, max_iter, buf, known, trail, mean,
                  tol, g_end, H_end, work, act)


@njit(cache=True, error_model="numpy")
def _telegraph_starts(gene):
    """Starting values of the telegraph fit, theta = (log a, log b, log lam):
    the method of moments where it gives positive rates, then one start
    shaped like each regime and a moderate one. Returns (starts, count)."""
    m1, m2, m3, zf = moments(gene[0], gene[1], gene[2], gene[3])
    starts = np.empty((5, 3))
    ns = 0
    # method of moments (as txburst): from the first three factorial moments
    if m1 > 0 and m2 > 0 and m3 > 0:
        r1 = m1
        r2 = m2 / m1
        r3 = m3 / m2
        den = r1 * r2 - 2.0 * r1 * r3 + r2 * r3
        den2 = r1 - 2.0 * r2 + r3
        if den != 0.0 and den2 != 0.0:
            kon = 2.0 * r1 * (r3 - r2) / den
            koff = 2.0 * (r3 - r2) * (r1 - r3) * (r2 - r1) / (den * den2)
            ksyn = (-r1 * r2 + 2.0 * r1 * r3 - r2 * r3) / den2
            if kon > 0 and koff > 0 and ksyn > 0:
                starts[ns, 0] = math.log(kon)
                starts[ns, 1] = math.log(koff)
                starts[ns, 2] = math.log(ksyn)
                ns += 1
    mean = max(m1, 1e-3)
    var_lp = m2 - m1 * m1  # variance of lam p
    # bursty (negative-binomial-like) start: p ~ Gamma(a, beta/lam)
    if var_lp > 1e-3 * mean:
        beta = var_lp / mean
        a = mean / beta
    else:
        beta = 0.5
        a = mean / beta
    starts[ns, 0] = math.log(max(a, 2e-4))
    starts[ns, 1] = math.log(50.0)
    starts[ns, 2] = math.log(beta * 50.0)
    ns += 1
    # slow switching (bimodal) start
    fon = max(1.0 - zf, 1e-3)
    starts[ns, 0] = math.log(0.3 * fon + 1e-4)
    starts[ns, 1] = math.log(0.3 * (1.0 - fon) + 1e-4)
    starts[ns, 2] = math.log(mean / fon)
    ns += 1
    # near-Poisson start
    starts[ns, 0] = math.log(20.0)
    starts[ns, 1] = math.log(20.0)
    starts[ns, 2] = math.log(2.0 * mean)
    ns += 1
    # moderate start
    starts[ns, 0] = math.log(1.0)
    starts[ns, 1] = math.log(1.0)
    starts[ns, 2] = math.log(2.0 * mean + 0.5)
    ns += 1
    return starts, ns


@njit(cache=True, error_model="numpy",
      unit=("Tuple((float64, boolean, int64))(" + GENE_TYPE + ", "
            "float64[::1], int64, float64[::1], float64[::1], float64[:, ::1])"))
def fit_telegraph(gene, theta_out, max_iter, buf, g_out, H_out):
    """Multi-start fit of the telegraph model in the search box; the optimum
    goes to ``theta_out``, the gradient and observed information in theta
    there to ``g_out`` and ``H_out`` (NaN if no climb reached a finite
    log-likelihood). Returns (ll, converged, iterations of the climb that
    reached it; at most ``max_iter``)."""
    starts, ns = _telegraph_starts(gene)
    T = np.eye(3)
    free = np.ones(3, np.bool_)
    lo = np.empty(3)
    hi = np.empty(3)
    search_box(TARGET_LOG_A, lo, hi)
    # screen the starts by their log-likelihood (cheap, no information
    # matrix), then climb fully from the two best: one start alone gets
    # trapped in the wrong mode of bimodal data, all five cost 2.5x more
    g = np.zeros(3)
    H = np.zeros((3, 3))
    score_s = np.empty(ns)
    for s in range(ns):
        for i in range(3):
            starts[s, i] = min(max(starts[s, i], lo[i]), hi[i])
        ll0 = evaluate(MODEL_TELEGRAPH, gene, starts[s], False, g, H, buf)
        score_s[s] = ll0 if np.isfinite(ll0) else -np.inf
    # the starts by descending score, ties in their order (an insertion sort:
    # at most five starts; NumPy's argsort of -score_s gives the same order)
    order = np.arange(ns)
    for i in range(1, ns):
        o = order[i]
        j = i
        while j > 0 and score_s[order[j - 1]] < score_s[o]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = o
    best_ll = -np.inf
    best_conv = False
    best_it = 0
    th = np.empty(3)
    g_c = np.empty(3)
    H_c = np.empty((3, 3))
    g_out[:] = np.nan
    H_out[:, :] = np.nan
    # the second climb stops once it is on the first one's way to its optimum
    known = np.empty(0)
    trail = np.full((max_iter, 3), np.nan)
    no_trail = np.empty((0, 3))
    for r in range(min(2, ns)):
        s = order[r]
        for i in range(3):
            th[i] = starts[s, i]
        ll, conv, it = maximize(MODEL_TELEGRAPH, gene, th, T, T, free,
                                lo, hi, max_iter, buf, known, trail if r == 0 else no_trail,
                                True, DECREMENT_TOL, g_c, H_c)
        if r == 0 and np.isfinite(ll):
            n_path = 0
            while n_path < max_iter and not np.isnan(trail[n_path, 0]):
                n_path += 1
            known = np.empty(4 + 3 * n_path)
            for i in range(3):
                known[i] = th[i]
            known[3] = ll
            for j in range(n_path):
                for i in range(3):
                    known[4 + 3 * j + i] = trail[j, i]
        if ll > best_ll + 1e-9 or (abs(ll - best_ll) <= 1e-9 and conv and not best_conv):
            best_ll = ll
            best_conv = conv
            best_it = it
            for i in range(3):
                theta_out[i] = th[i]
                g_out[i] = g_c[i]
                for j in range(3):
                    H_out[i, j] = H_c[i, j]
    return best_ll, best_conv, best_it


@njit(cache=True, error_model="numpy")
def _fit_limit(model, gene, theta, max_iter, buf):
    """Fit a two-parameter limit model from the start ``theta`` (updated) in
    the box LIMIT_LO <= theta <= LIMIT_HI. Returns (ll, converged, iterations)."""
    T = np.eye(3)
    free = np.zeros(3, np.bool_)
    free[0] = True
    free[1] = True
    lo = np.full(3, LIMIT_LO)
    hi = np.full(3, LIMIT_HI)
    return maximize(model, gene, theta, T, T, free, lo, hi,
                    max_iter, buf, np.empty(0), np.empty((0, 3)), False, DECREMENT_TOL,
                    np.empty(0), np.empty((0, 3)))


@njit(cache=True, error_model="numpy", inline="always")
def fit_negbinom(gene, theta_tg, theta_out, max_iter, buf):
    """Fit of the bursty limit, the negative binomial: theta_out = (log a,
    log beta, 0), started from the telegraph fit ``theta_tg``'s burst
    frequency and size. Returns (ll, converged, iterations)."""
    theta_out[0] = theta_tg[0]
    theta_out[1] = theta_tg[2] - theta_tg[1]
    return _fit_limit(MODEL_NEGBINOM, gene, theta_out, max_iter, buf)


@njit(cache=True, error_model="numpy", inline="always")
def fit_zip(gene, theta_out, max_iter, buf):
    """Fit of the slow-switching limit, the zero-inflated Poisson: theta_out =
    (logit f, log lam, 0), started from the fraction of non-zero counts and
    the capture-corrected mean. Returns (ll, converged, iterations)."""
    m1, m2, m3, zf = moments(gene[0], gene[1], gene[2], gene[3])
    f0 = min(max(1.0 - zf, 1e-3), 1.0 - 1e-3)
    theta_out[0] = math.log(f0 / (1.0 - f0))
    theta_out[1] = math.log(max(m1 / f0, 1e-3))
    return _fit_limit(MODEL_ZIP, gene, theta_out, max_iter, buf)
