"""Maximum likelihood in a box: Newton's method and profile-likelihood intervals.

The generic machinery of the exact-likelihood fits of several rates per gene
(:mod:`telegraph.jointfit`, two species; :mod:`telegraph.labelfit`, metabolic
labelling). A gene's objective is a callable ``f(y) -> (loglik, gradient,
information)`` in log-rates ``y`` (``loglik = -inf`` where it cannot be
evaluated); these functions only ever call it, so they serve any model whose
exact score and observed information are available (docs/maths.md, "Fitting
two species").

- :func:`_maximise`: projected Newton with backtracking inside a box;
- :func:`_profile_side`: one end of a profile-likelihood interval of a linear
  combination of the coordinates: first by the Venzon-Moolgavkar iteration
  (:func:`_profile_end_vm`, one evaluation per Newton step on the end's
  equations), else by re-maximising the nuisance coordinates at each trial
  point, the end found by Newton's method on the signed root of the
  likelihood ratio, safeguarded by bisection;
- :func:`_wald_se`: the standard error of such a combination from the
  information.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import config

__all__ = ["_newton_step", "_maximise", "_profile_side", "_wald_se", "n_threads", "layer_means",
           "genes_on_threads"]


# ---------------------------------------------------------------------------
# Newton's method in a box
# ---------------------------------------------------------------------------

def _newton_step(g, info):
    """Ascent direction from the gradient and the information (eigenvalues
    floored at a small positive fraction of the largest, so the step always
    climbs)."""
    w, V = np.linalg.eigh(0.5 * (info + info.T))
    top = max(float(np.max(np.abs(w))), 1e-12)
    w = np.maximum(np.abs(w), 1e-8 * top + 1e-12)
    return V @ ((V.T @ g) / w)


def _maximise(f, y0, lo, hi, free=None, max_iter=None, tol=1e-7, state=None, wall=None,
              wall_tol=None, stall=None, floor=None):
    """Maximise f over the box [lo, hi] in the free coordinates (the others
    stay at y0). Projected Newton with backtracking; coordinates on a bound
    whose gradient points out are held there.

    ``wall``: for objectives that cannot be evaluated beyond some region (f
    returns -inf there, possibly only after an expensive attempt), the factor
    by which the step is cut after such a trial point (instead of 1/2), and
    the iterations stop once a step cut short by that region gains less than
    ``tol`` (the maximum lies on its edge; creeping along it costs many
    failed evaluations for gains below the tolerance). Default None: plain
    halving. ``wall_tol`` (default ``tol``): the gain below which such a
    step ends the iterations.

    ``stall``: stop (as converged) once three successive steps together gain
    less than this (nats). On a flat ridge towards a limit of the model (the
    two-species bursty limit, k_off -> infinity at fixed burst size) the
    Newton decrement stays above ``tol`` while each step gains ~1e-5 nats:
    a two-species fit took 80 evaluations, each solving its lattice, to gain
    0.002 nats there. Default None: no such rule.

    ``floor``: for a caller that only asks whether the maximum reaches this
    value (a test): stop (not converged) once the log-likelihood plus four
    times the gain the Newton step's quadratic model promises (2 x the
    decrement g' I^-1 g, with the information's eigenvalues floored, so
    never less than the model's gain) plus one nat is still below it.
    Default None.

    Returns (y, loglik, gradient, information, iterations, converged)."""
    max_iter = config.JOINT_MAX_ITER if max_iter is None else max_iter
    wall_tol = tol if wall_tol is None else wall_tol
    y = np.clip(np.asarray(y0, float), lo, hi)
    free = np.ones(y.shape, bool) if free is None else np.asarray(free, bool)
    ll, g, info = f(y) if state is None else state
    if not np.isfinite(ll):
        return y, ll, g, info, 0, False
    gains = []
    for it in range(1, max_iter + 1):
        act = free & ~(((y <= lo) & (g < 0)) | ((y >= hi) & (g > 0)))
        if not act.any():
            return y, ll, g, info, it, True
        d = np.zeros_like(y)
        d[act] = _newton_step(g[act], info[np.ix_(act, act)])
        dec = float(g[act] @ d[act])
        if dec < tol:
            return y, ll, g, info, it, True
        if floor is not None and ll + 2.0 * dec + 1.0 < floor:
            return y, ll, g, info, it, False
        d = _edge_step(d, y, g, info, act, lo, hi)
        n = np.max(np.abs(d))
        if n > 2.0:
            d *= 2.0 / n
        t = 1.0
        walled = False
        for _ in range(30):
            y_new = np.clip(y + t * d, lo, hi)
            res = f(y_new)
            if res[0] >= ll + 1e-4 * t * min(dec, 1.0) or (
                    np.isfinite(res[0]) and res[0] >= ll and t < 1e-3):
                break
            if wall is not None and not np.isfinite(res[0]):
                walled = True
                t *= wall
            else:
                t *= 0.5
        else:
            return y, ll, g, info, it, dec < 1e-3
        if not np.isfinite(res[0]):
            return y, ll, g, info, it, False
        gain = res[0] - ll
        y, (ll, g, info) = y_new, res
        if (gain < 0.1 * tol and t < 1.0) or (walled and gain < wall_tol):
            return y, ll, g, info, it, True
        gains = (gains + [gain])[-3:]
        if stall is not None and len(gains) == 3 and sum(gains) < stall:
            return y, ll, g, info, it, True
    return y, ll, g, info, max_iter, False


def _edge_step(d, y, g, info, act, lo, hi):
    """The Newton step ``d`` with every coordinate it would carry through the box
    moved to that edge instead, and the other active coordinates re-solved with
    that move included (their gradient there is g_f - I_fh d_h): on a ridge
    through the box edge the coordinates along it move together (clipped alone,
    the step left the ridge and the line search halved it many times over). The
    plain step (clipped later) if the result does not climb."""
    act = act.copy()
    held = np.zeros_like(act)
    e = d.copy()
    for _ in range(d.shape[0]):
        out = act & ((y + e < lo) | (y + e > hi))
        if not out.any():
            break
        e[out] = np.where(y[out] + e[out] > hi[out], hi[out], lo[out]) - y[out]
        held |= out
        act &= ~out
        if not act.any():
            break
        rhs = g[act] - info[np.ix_(act, held)] @ e[held]
        e[act] = _newton_step(rhs, info[np.ix_(act, act)])
    if not held.any():
        return d
    return e if float(g @ e) > 0.0 else d


# ---------------------------------------------------------------------------
# profile intervals
# ---------------------------------------------------------------------------

def _profile_side(gene, yhat, llhat, lo, hi, A, k, sign, drop, se, info_hat, wall=None,
                  stall=None):
    """One end of the profile interval of z_k (y = A z): the value where the
    profile log-likelihood has fallen by ``drop``, or +-inf (unbounded within
    the search box). First the Venzon-Moolgavkar iteration
    (:func:`_profile_end_vm`, a few evaluations); where it does not converge,
    Newton's method on the signed root of the likelihood ratio with the
    nuisance re-maximised at each trial value, safeguarded by bisection
    (:func:`_bracketing_end`). ``wall``, ``stall``: passed to :func:`_maximise`."""
    Ainv = np.linalg.inv(A)
    zhat = Ainv @ yhat
    # the box in z: bounds of y mapped through (z-box of coordinate k from the y-box)
    ylo, yhi = lo, hi
    if np.allclose(A, np.eye(A.shape[0])):
        zlo, zhi = ylo.copy(), yhi.copy()
    else:
        zlo = np.full(A.shape[0], -np.inf)
        zhi = np.full(A.shape[0], np.inf)
        for j in range(A.shape[0]):
            row = Ainv[j]
            zlo[j] = np.sum(np.where(row > 0, row * ylo, row * yhi))
            zhi[j] = np.sum(np.where(row > 0, row * yhi, row * ylo))
    edge = zhi[k] if sign > 0 else zlo[k]

    def fz(z):
        y = A @ z
        if np.any(y < ylo - 1e-9) or np.any(y > yhi + 1e-9):
            return -np.inf, None, None
        ll, g, info = gene(y)
        if not np.isfinite(ll):
            return ll, None, None
        return ll, A.T @ g, A.T @ info @ A

    free = np.ones(A.shape[0], bool)
    free[k] = False
    Iz = A.T @ info_hat @ A
    end, far = _profile_end_vm(fz, zhat, llhat, zlo, zhi, k, sign, drop, Iz, wall)
    if end is not None:
        return end
    tau = _bracketing_end(fz, zhat, llhat, zlo, zhi, k, sign, drop, se, Iz, edge, free, wall,
                          stall, far)
    if far is not None and sign * (far[0][k] - tau) > 0.0:
        # the iteration found the log-likelihood above the cut-off farther out: the
        # confidence set reaches at least there
        return float(far[0][k])
    return tau


def _bracketing_end(fz, zhat, llhat, zlo, zhi, k, sign, drop, se, Iz, edge, free, wall,
                    stall=None, far=None):
    """The end of :func:`_profile_side` by re-maximising the nuisance at trial
    values of z_k: Newton's method on the signed root of the likelihood ratio,
    safeguarded by bisection. ``far``: (z, information) of a point whose
    log-likelihood is above the cut-off (the farthest the Venzon-Moolgavkar
    iteration reached): the profile there is too, so the search starts from
    it, half a step beyond, instead of from the estimate."""
    target = math.sqrt(2.0 * drop)
    step = se * target if np.isfinite(se) and se > 0 else 1.0
    step = min(max(step, 0.05), 5.0)
    inside, outside = zhat[k], None       # the bracket: D < drop at inside, > at outside
    z = zhat.copy()
    tau = zhat[k] + sign * step
    if far is not None and sign * (far[0][k] - zhat[k]) > 0.0:
        z, Iz = far[0].copy(), far[1]
        inside = z[k]
        tau = inside + sign * 0.5 * step
    for _ in range(12):
        if sign * (tau - edge) >= 0:
            tau = edge
        z_try = z.copy()
        z_try[k] = tau
        # the nuisance optimum moves by -I_ff^-1 I_fk d tau (to first order)
        try:
            shift = -np.linalg.solve(Iz[np.ix_(free, free)], Iz[free, k]) * (tau - z[k])
            if np.all(np.isfinite(shift)) and np.max(np.abs(shift)) < 3.0:
                z_try[free] += shift
        except np.linalg.LinAlgError:
            pass
        zs, ll, g, info_z, _, _ = _maximise(fz, z_try, zlo, zhi, free=free, max_iter=25,
                                            tol=1e-4, wall=wall, stall=stall)
        if not np.isfinite(ll):
            # beyond what can be evaluated: treat as far out
            outside = tau
            tau = 0.5 * (inside + outside)
            continue
        D = max(llhat - ll, 0.0)
        rho = math.sqrt(2.0 * D)
        if D < drop:
            inside = tau
            z = zs
            if info_z is not None:
                Iz = info_z
            if tau == edge:
                return sign * np.inf
        else:
            outside = tau
        if abs(rho - target) < 0.03:
            return tau
        slope = -sign * g[k] / rho if rho > 1e-8 else 0.0   # d rho / d |tau - zhat|
        if slope > 1e-8:
            new = tau + sign * (target - rho) / slope
        else:
            new = tau + sign * abs(tau - zhat[k]) if outside is None else np.nan
        if outside is not None and not (min(inside, outside) < new < max(inside, outside)):
            new = 0.5 * (inside + outside)
        if outside is not None and abs(outside - inside) < 1e-3:
            return 0.5 * (inside + outside)
        tau = new
    return tau if outside is not None else sign * np.inf


def _profile_end_vm(fz, zhat, llhat, zlo, zhi, k, sign, drop, Iz, wall=None):
    """One end of a profile interval by the Venzon-Moolgavkar iteration, or None.

    Solves l(z) = llhat - drop together with dl/dz_f = 0 for the nuisance
    coordinates f (every coordinate but k) by Newton's method on that system
    (docs/maths.md, "Fitting two species", *Profile ends by the
    Venzon-Moolgavkar iteration*): at each point the quadratic model of l
    with the exact observed information gives, for a step d in z_k, the
    nuisance step that maximises the model (a + b d) and the profile model
    c0 + c1 d + c2 d^2 / 2; d solves c0 + c1 d + c2 d^2 / 2 = llhat - drop
    on the requested side. One evaluation (value, score, information) per
    step, against a full re-maximisation of the nuisance per trial value in
    the bracketing search of :func:`_profile_side`. A nuisance coordinate
    that a step would carry through the search box is held on that edge (an
    active set, as in :func:`_maximise`), and released when its gradient
    turns back inside: the end of the profile over the box, the edge
    included. The step that takes a coordinate to the edge moves the free
    nuisance by the quadratic model with that move included (on a ridge,
    the coordinates along it move together).

    Returns (end, far): end is the root of the profile model (z_k + d) of an
    evaluated point where the nuisance Newton decrement and the distance of that
    model from the cut-off are both below :data:`telegraph.config.PROFILE_VM_ACCEPT`
    (the model is exact to second order there, so the end is closer than the point
    itself), or None when the iteration
    does not get there within :data:`telegraph.config.PROFILE_VM_MAX_EVAL`
    evaluations or leaves the safe ground (a nuisance information that is not
    positive definite, z_k beyond the search box, a point that cannot be
    evaluated after three shorter tries): the caller then falls back to the
    bracketing search, which also finds ends on the box's edge; ``far`` is
    then the (z, information) of the point farthest out on that side whose
    log-likelihood was still above the cut-off (so is the profile there), or
    None: an end of the search short of it is moved out to it. A step
    that had to be shortened because the objective could not be evaluated
    (``wall``: the factor of each shortening, else 1/2) makes the place it
    reached the edge, for this end, of the nuisance coordinate that moved
    most (the profile over the region where the model can be evaluated, as
    the bracketing search's re-maximisation finds it). Where the profile
    model is not concave or does not reach the cut-off on that side, the
    step re-maximises the nuisance at the current z_k (d = 0), or, with the
    nuisance already at its maximum there and the profile below the cut-off,
    goes halfway back towards the estimate; a step that lands more than
    :data:`telegraph.config.PROFILE_VM_OVERSHOOT` nats below the cut-off is
    halved (up to three times)."""
    n = zhat.shape[0]
    target = llhat - drop
    tol = config.PROFILE_VM_TOL
    z, ll, g, H = zhat.copy(), llhat, np.zeros(n), -Iz
    zlo, zhi = zlo.copy(), zhi.copy()
    nuis = np.arange(n) != k
    held = nuis & ((z <= zlo) | (z >= zhi))
    far = None       # (z, information) of the farthest point above the cut-off
    evals = 0
    while evals < config.PROFILE_VM_MAX_EVAL:
        # release held coordinates whose gradient points back into the box
        held &= ((z <= zlo) & (g <= 0.0)) | ((z >= zhi) & (g >= 0.0)) | (evals == 0)
        # the step of each held coordinate: to its edge (0 once there)
        delta = np.zeros(n)
        for _ in range(n):
            f = nuis & ~held
            Hff, Hfk = H[np.ix_(f, f)], H[f, k]
            try:
                np.linalg.cholesky(-Hff)        # the nuisance's information: positive definite
            except np.linalg.LinAlgError:
                return None, far
            # the quadratic model with the held coordinates moved by delta: the free
            # nuisance's gradient there is g_f + H_fh delta_h (on a ridge, a coordinate
            # held at the edge moves the others with it)
            dh = delta[held]
            r0 = g[f] + H[np.ix_(f, held)] @ dh
            a = np.linalg.solve(-Hff, r0)
            b = np.linalg.solve(-Hff, Hfk)
            dec = float(r0 @ a)     # the nuisance Newton decrement
            c0 = ll + float(g[held] @ dh) + 0.5 * float(dh @ H[np.ix_(held, held)] @ dh) \
                + 0.5 * dec
            c1 = g[k] + float(H[k, held] @ dh) + float(Hfk @ a)
            c2 = H[k, k] + float(Hfk @ b)
            d = _vm_root(c0 - target, c1, c2, z[k] - zhat[k], sign)
            if evals > 0 and not dh.any() and d is not None and \
                    abs(c0 - target) < config.PROFILE_VM_ACCEPT and \
                    dec < config.PROFILE_VM_ACCEPT:
                # the model at this point, exact to second order, puts the end d away
                return float(z[k] + d), None
            if d is None:
                if dec > tol or dh.any():
                    d = 0.0     # the nuisance first: a Newton step at this z_k
                elif c0 < target and sign * (z[k] - zhat[k]) > 0.0:
                    d = -0.5 * (z[k] - zhat[k])     # beyond the end: halfway back
                else:
                    return None, far
            step = delta.copy()
            step[k] = d
            step[f] = a + b * d
            big = float(np.max(np.abs(step)))
            if big > config.PROFILE_VM_MAX_STEP:
                step *= config.PROFILE_VM_MAX_STEP / big
            out = f & (((z + step) < zlo) | ((z + step) > zhi))
            if not out.any():
                break
            # hold them on the edge (a step of their own to it) and solve again for the rest
            held |= out
            delta[out] = np.where(z[out] + step[out] > zhi[out], zhi[out], zlo[out]) - z[out]
        walled = False
        for tries in range(4):
            z_new = z + step
            if not zlo[k] - 1e-9 <= z_new[k] <= zhi[k] + 1e-9:
                return None, far
            z_new = np.clip(z_new, zlo, zhi)
            res = fz(z_new)
            evals += 1
            if not (np.isfinite(res[0]) and res[1] is not None):
                walled = True
                step *= 0.5 if wall is None else wall
            elif res[0] < target - config.PROFILE_VM_OVERSHOOT and step[k] != 0.0 and tries < 3:
                step *= 0.5     # far beyond the cut-off: the model's step was too long
            else:
                break
        else:
            return None, far
        if walled:
            # beyond here the objective cannot be evaluated: that region's edge is an
            # edge of the box for the nuisance coordinate that moved most
            j = int(np.argmax(np.where(nuis, np.abs(step), -1.0)))
            if step[j] > 0:
                zhi[j] = z_new[j]
            else:
                zlo[j] = z_new[j]
            held[j] = True
        z, (ll, g, Iz_new) = z_new, res
        H = -Iz_new
        # (not the first point: the quadratic model's jump, its nuisance not yet corrected
        # by a step of its own, is a poor start for the bracketing search's re-maximisation)
        if evals >= 2 and ll >= target and sign * (z[k] - zhat[k]) > (
                0.0 if far is None else sign * (far[0][k] - zhat[k])):
            far = (z.copy(), Iz_new)
    return None, far


def _vm_root(c, c1, c2, dz, sign):
    """The step d of the profile model c + c1 d + c2 d^2 / 2 = 0 (c: the model's
    height above the cut-off at the current point, dz its distance from the
    estimate in the profiled coordinate) that lands on the requested side of
    the estimate, the nearest if two do; None if the model is not concave or
    has no such root."""
    if not c2 < 0.0:
        return None
    disc = c1 * c1 - 2.0 * c2 * c
    if disc < 0.0:
        return None
    r = math.sqrt(disc)
    roots = [x for x in ((-c1 + r) / c2, (-c1 - r) / c2) if sign * (dz + x) > 0.0]
    return min(roots, key=abs) if roots else None


def _wald_se(info, A, k):
    """Standard error of z_k (y = A z) from the information in y."""
    try:
        Iz = A.T @ info @ A
        cov = np.linalg.inv(Iz)
        v = cov[k, k]
        return math.sqrt(v) if v > 0 else np.inf
    except np.linalg.LinAlgError:
        return np.inf


def n_threads(n_jobs) -> int:
    """Threads of a per-gene fit: all cores for ``n_jobs=None``, else at least one."""
    return (os.cpu_count() or 1) if n_jobs is None else max(1, int(n_jobs))


def genes_on_threads(fit_one, n_genes: int, n_jobs: int | None = 1, bar=None) -> list:
    """``[fit_one(g) for g in range(n_genes)]`` on ``n_jobs`` threads (the
    per-gene fits release no GIL of their own, but their compiled kernels do),
    advancing ``bar`` by one per gene."""

    def one(g):
        row = fit_one(g)
        if bar is not None:
            bar.update(1)
        return row

    n_jobs = 1 if n_jobs is None else max(1, int(n_jobs))
    if n_jobs == 1 or n_genes < 2:
        return [one(g) for g in range(n_genes)]
    with ThreadPoolExecutor(n_jobs) as pool:
        return list(pool.map(one, range(n_genes)))


def layer_means(hists):
    """Mean observed count of each of the two layers, per gene, of two-layer
    histograms (``hists.gene(g)`` -> first layer, second layer, group, weight);
    NaN for a gene without cells."""
    n = hists.n_genes
    first, second = np.full(n, np.nan), np.full(n, np.nan)
    for g in range(n):
        a, b, _, w = hists.gene(g)
        tot = float(np.sum(w))
        if tot > 0:
            first[g] = float(np.sum(w * a)) / tot
            second[g] = float(np.sum(w * b)) / tot
    return first, second
