"""The solver behind the joint law, piece by piece, against independent
references (the law itself is checked in tests/test_joint.py):

- the nested-dissection tree built by the compiled kernel equals the one of a
  plain recursive construction (the definition, written out here);
- the panel-blocked GTH elimination equals the pivot-by-pivot one, entry by
  entry in relative terms, on fronts whose rates span hundreds of orders of
  magnitude (both only add products of positive numbers);
- a fit's trimmed box (the start of the next evaluation) gives the same
  log P, score and information as the box it was cut from, and the same as a
  box twice as wide: the mass it leaves out is below the tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest

from telegraph import config
from telegraph.joint import _k, dissection, evaluate_bins


def _tree_reference(nu, ns, ref, leaf=24):
    """The elimination tree by its definition: cut the longer side through the
    middle (the first cut through ``ref``), recurse; a node's front is its own
    points then its children's boundaries; it eliminates what is not on its
    rectangle's boundary (points touching the rest of the box) and keeps the
    boundary, sorted; the reference point ends the root front."""
    nodes = []

    def boundary(u0, u1, s0, s1):
        pts = set()
        for j in range(s0, s1):
            for i in range(u0, u1):
                if ((i == u0 and u0 > 0) or (i == u1 - 1 and u1 < nu)
                        or (j == s0 and s0 > 0) or (j == s1 - 1 and s1 < ns)):
                    pts.add(j * nu + i)
        return sorted(pts)

    def rec(u0, u1, s0, s1, cut=None):
        du, ds = u1 - u0, s1 - s0
        if cut is None and (du * ds <= leaf or max(du, ds) < 3):
            own, kids = [j * nu + i for j in range(s0, s1) for i in range(u0, u1)], []
        else:
            if ds >= du:
                m = (s0 + s1) // 2 if cut is None else cut[1]
                halves = [(u0, u1, s0, m), (u0, u1, m + 1, s1)]
                own = [m * nu + i for i in range(u0, u1)]
            else:
                m = (u0 + u1) // 2 if cut is None else cut[0]
                halves = [(u0, m, s0, s1), (m + 1, u1, s0, s1)]
                own = [j * nu + m for j in range(s0, s1)]
            kids = [rec(*h) for h in halves if h[1] > h[0] and h[3] > h[2]]
        bnd = boundary(u0, u1, s0, s1)
        front = own + [p for k in kids for p in nodes[k][1]]
        elim = [p for p in front if p not in set(bnd)]
        nodes.append((set(own), bnd, elim + bnd, len(elim), kids))
        return len(nodes) - 1

    rec(0, nu, 0, ns, cut=ref)
    rp = ref[1] * nu + ref[0]
    own, bnd, front, ne, kids = nodes[-1]
    nodes[-1] = (own, bnd, [p for p in front if p != rp] + [rp], ne, kids)
    fptr, fr, nel, kid, flag = [0], [], [], [], []
    for own, _, front, ne, kids in nodes:
        for p in front:
            fr += [2 * p, 2 * p + 1]
            flag += [int(p in own)] * 2
        fptr.append(len(fr))
        nel.append(2 * ne)
        kid.append((kids + [-1, -1])[:2])
    nel[-1] = fptr[-1] - fptr[-2] - 1
    return [np.array(x, np.int64) for x in (fptr, fr, nel, kid, flag)]


def test_dissection_kernel_matches_the_definition():
    rng = np.random.default_rng(0)
    shapes = [(1, 1, (0, 0)), (1, 9, (0, 4)), (9, 1, (8, 0)), (2, 30, (0, 5)),
              (30, 2, (29, 1)), (5, 7, (0, 0)), (7, 5, (6, 4)), (3, 3, (1, 1))]
    shapes += [(int(a), int(b), (int(rng.integers(a)), int(rng.integers(b))))
               for a, b in rng.integers(1, 45, (40, 2))]
    for nu, ns, ref in shapes:
        want = _tree_reference(nu, ns, ref)
        got = dissection(nu, ns, ref)
        for name, x, y in zip(("fptr", "fr", "nel", "kid", "own"), want, got):
            np.testing.assert_array_equal(y, x, err_msg=f"{name} of {nu} x {ns}, ref {ref}")


@pytest.mark.parametrize("f, ne, sparse", [(300, 200, False), (260, 259, True), (90, 60, True)])
def test_blocked_elimination_equals_pivot_by_pivot(f, ne, sparse):
    """Same factors and pivots to rounding, in relative terms, on rates from
    1e-250 to 1e3 (with the zero pattern of a front's sparse early rows)."""
    rng = np.random.default_rng(f)
    A = 10.0 ** rng.uniform(-250, 3, (f, f))
    if sparse:
        A[rng.random((f, f)) < 0.7] = 0.0
        A[: ne // 3, :] *= rng.random((ne // 3, f)) < 0.05     # separator-like rows
    for i in range(f):
        A[i, (i + 1) % f] += 1.0          # every pivot row has an exit
    fr = np.arange(f)
    F1, F2 = A.copy(), A.copy()
    p1, p2 = np.zeros(f), np.zeros(f)
    assert not _k._eliminate(F1, ne, f, fr, 0, p1)
    assert not _k._eliminate_blocked(F2, ne, f, fr, 0, p2)
    nzero = F1 != 0
    assert np.array_equal(nzero, F2 != 0)
    assert np.max(np.abs(F2[nzero] / F1[nzero] - 1.0)) < 1e-12
    assert np.max(np.abs(p2[:ne] / p1[:ne] - 1.0)) < 1e-12


@pytest.mark.parametrize("case", [(0.3, 3.0, 40.0, 0.3),      # bursty, spliced mean ~12
                                  (1.0, 2.5, 30.0, 0.25)])
def test_trimmed_box_keeps_the_law(case):
    """evaluate_bins(trim=...) returns a box cut to where the law falls below
    the required depth plus the margin; solving on it gives every requested
    bin's log P, score and information as on the box it came from and on one
    half as wide again (the truncation's own error, ~1e-10 relative, is far inside
    the 1e-6 the fit's estimates may move)."""
    a, b, lam, gam = case
    rng = np.random.default_rng(2)
    u = rng.poisson(lam * a / (a + b), 200)
    s = rng.poisson(lam * a / ((a + b) * gam), 200)
    rows, used = evaluate_bins(a, b, lam, gam, u, s, want=2, tail=config.JOINT_FIT_TAIL)
    rows_t, trimmed = evaluate_bins(a, b, lam, gam, u, s, want=2, tail=config.JOINT_FIT_TAIL,
                                    trim=config.JOINT_FIT_TRIM)
    assert trimmed[1] * trimmed[3] < used[1] * used[3]          # it does cut
    assert trimmed[0] >= used[0] and trimmed[2] >= used[2]
    assert trimmed[0] + trimmed[1] <= used[0] + used[1]
    assert trimmed[2] + trimmed[3] <= used[2] + used[3]
    # the same bins on the trimmed box, on the used one and on a much wider one
    on_trim, _ = evaluate_bins(a, b, lam, gam, u, s, want=2, box=trimmed)
    wide = (0, 3 * (used[0] + used[1]) // 2, 0, 3 * (used[2] + used[3]) // 2)
    on_wide, _ = evaluate_bins(a, b, lam, gam, u, s, want=2, box=wide)
    for got in (on_trim, rows, rows_t):
        assert np.max(np.abs(got.logp - on_wide.logp)) < 1e-8
        assert np.max(np.abs(got.score - on_wide.score)) < 1e-7 * np.max(np.abs(on_wide.score))
        assert np.max(np.abs(got.info - on_wide.info)) < 1e-6 * np.max(np.abs(on_wide.info))
    # a start from the trimmed box is grown back only where it must be
    again, box2 = evaluate_bins(a, b, lam, gam, u, s, want=0, start_box=trimmed,
                                tail=config.JOINT_FIT_TAIL)
    assert box2 == trimmed
    assert np.max(np.abs(again.logp - on_wide.logp)) < 1e-8


@pytest.mark.parametrize("case", [(0.3, 3.0, 40.0, 0.3),      # bursty, heavy spliced tail
                                  (1.0, 2.5, 40.0, 1.5)])
def test_margin_below_the_thinned_bins_keeps_their_accuracy(case):
    """bin_margin=True asks for the edge margin below each bin's own (thinned)
    probability instead of below the table at count / rho: on bins thinned to
    rho = 0.3-0.9 of the table's capture its log P, score and information agree
    with a box a quarter as wide again as the one used, to what the margin asks for
    (an edge d nats below a probability moves it by ~exp(-1.8 d)), and its box
    is no larger than the count / rho criterion's."""
    a, b, lam, gam = case
    rng = np.random.default_rng(5)
    rho = rng.choice([0.3, 0.5, 0.9], 300)
    u = rng.poisson(rho * lam * a / (a + b) * rng.gamma(0.5, 2.0, 300))
    s = rng.poisson(rho * lam * a / ((a + b) * gam) * rng.gamma(0.5, 2.0, 300))
    margin = config.JOINT_FIT_EDGE_MARGIN
    kw = dict(want=2, tail=config.JOINT_FIT_TAIL, edge_margin=margin)
    new, box_new = evaluate_bins(a, b, lam, gam, u, s, rho, rho, bin_margin=True, **kw)
    old, box_old = evaluate_bins(a, b, lam, gam, u, s, rho, rho, **kw)
    assert box_new[1] * box_new[3] <= box_old[1] * box_old[3]
    wide = (0, 5 * (box_old[0] + box_old[1]) // 4, 0, 5 * (box_old[2] + box_old[3]) // 4)
    ref, _ = evaluate_bins(a, b, lam, gam, u, s, rho, rho, want=2, box=wide)
    tol = 10 * np.exp(-1.8 * margin)
    for got in (new, old):
        assert np.max(np.abs(got.logp - ref.logp)) < tol
        assert np.max(np.abs(got.score - ref.score)) < tol * np.max(np.abs(ref.score))
        assert np.max(np.abs(got.info - ref.info)) < 10 * tol * np.max(np.abs(ref.info))
