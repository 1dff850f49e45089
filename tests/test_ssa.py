"""Tests of the telegraph Gillespie simulator (telegraph.simulate).

Statistical tests use fixed seeds and tolerances of Z standard errors derived
from the sample size (or chi-square p-value thresholds); references are exact:
closed moment equations solved by a matrix exponential, the truncated master
equation, and the stationary Poisson-Beta law.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import pytest

import telegraph as tg
from telegraph import config
from telegraph.ssa import stationary_state_score

from _ssa_reference import (chisq_gof, fano_and_se, mean_and_se, stationary_mean_fano,
                            telegraph_moments, telegraph_stationary_joint,
                            telegraph_stationary_logjoint_quad,
                            telegraph_transient)

Z = 4.0          # tolerance in standard errors (two-sided false alarm ~6e-5)
P_MIN = 1e-3     # chi-square p-value threshold

RATES = (0.5, 2.0, 20.0, 1.0)


# -- shapes, determinism, threads ---------------------------------------------------------
def test_output_shapes():
    n = tg.simulate(*RATES, n_cells=7, t=1.0, seed=0)
    assert n.shape == (7,) and n.dtype == np.int64
    n, s = tg.simulate(*RATES, n_cells=7, t=1.0, seed=0, score=True)
    assert s.shape == (7, 4) and s.dtype == np.float64
    n = tg.simulate([0.5, 1.0, 2.0], 2.0, 20.0, n_cells=7, t=1.0, seed=0)
    assert n.shape == (7, 3)
    n, s = tg.simulate([0.5, 1.0, 2.0], 2.0, [20.0, 5.0, 1.0], n_cells=7, t=[0.5, 1.0],
                       seed=0, score=True)
    assert n.shape == (2, 7, 3) and s.shape == (2, 7, 3, 4)
    n = tg.simulate(*RATES, n_cells=7, t=[0.0, 2.0], seed=0)
    assert n.shape == (2, 7)


def test_time_zero_is_the_initial_state():
    n, s = tg.simulate(*RATES, n_cells=50, t=[0.0, 0.0, 1.0], seed=1, score=True)
    assert (n[:2] == 0).all() and (s[:2] == 0).all()
    g0 = np.arange(50) % 2
    m0 = np.arange(50)
    n = tg.simulate(*RATES, n_cells=50, t=0.0, seed=1, initial=(g0, m0))
    np.testing.assert_array_equal(n, m0)


def test_same_seed_same_output_and_independent_genes():
    a = tg.simulate(*RATES, n_cells=200, t=[1.0, 3.0], seed=5, capture=0.5, score=True)
    b = tg.simulate(*RATES, n_cells=200, t=[1.0, 3.0], seed=5, capture=0.5, score=True)
    c = tg.simulate(*RATES, n_cells=200, t=[1.0, 3.0], seed=6, capture=0.5, score=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert (a[0] != c[0]).any()
    # Each (gene, cell) path has its own stream: adding genes or cells does not
    # change the paths already there.
    many = tg.simulate([0.5, 3.0], 2.0, [20.0, 7.0], n_cells=300, t=[1.0, 3.0], seed=5)
    np.testing.assert_array_equal(many[:, :200, 0], tg.simulate(
        *RATES, n_cells=200, t=[1.0, 3.0], seed=5))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs >= 2 Numba threads")
def test_thread_count_invariance():
    kw = dict(n_cells=3000, t=[0.5, 2.0], seed=42, score=True,
              capture=np.linspace(0.2, 1.0, 3000))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        n1, s1 = tg.simulate([0.5, 5.0], 2.0, [20.0, 3.0], **kw)
        n1s, s1s = tg.simulate(*RATES, initial="stationary", **kw)
        numba.set_num_threads(2)
        n2, s2 = tg.simulate([0.5, 5.0], 2.0, [20.0, 3.0], **kw)
        n2s, s2s = tg.simulate(*RATES, initial="stationary", **kw)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(n1, n2)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(n1s, n2s)
    np.testing.assert_array_equal(s1s, s2s)


@pytest.mark.parametrize("kwargs, match", [
    (dict(k_on=-1.0), "k_on must be finite and > 0"),
    (dict(k_syn=np.nan), "k_syn must be finite and > 0"),
    (dict(k_on=[1.0, 2.0], k_off=[1.0, 2.0, 3.0]), "same length"),
    (dict(k_on=np.ones((2, 2))), "1-D per-gene array"),
    (dict(t=[2.0, 1.0]), "sorted"),
    (dict(t=-1.0), ">= 0"),
    (dict(capture=1.5), r"\(0, 1\]"),
    (dict(capture=[0.5, 0.5]), "one value per cell"),
    (dict(n_cells=0), "n_cells must be a positive integer"),
    (dict(initial="equilibrium"), "initial must be one of"),
    (dict(initial=(2, 0)), "0 \\(off\\) or 1 \\(on\\)"),
    (dict(seed=-3), "non-negative"),
])
def test_bad_input_is_explained(kwargs, match):
    args = dict(k_on=0.5, k_off=2.0, k_syn=20.0, n_cells=5, t=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        tg.simulate(**args)


# -- moments ------------------------------------------------------------------------------
def test_transient_mean_and_fano_from_off():
    k = (0.4, 1.6, 30.0, 1.0)
    times = np.array([0.3, 1.0, 3.0])
    counts = tg.simulate(*k, n_cells=20000, t=times, seed=11)
    for i, ti in enumerate(times):
        mean, var = telegraph_moments(ti, *k)
        m, se = mean_and_se(counts[i])
        assert abs(m - mean) < Z * se, (ti, m, mean, se)
        f, fse = fano_and_se(counts[i])
        assert abs(f - var / mean) < Z * fse, (ti, f, var / mean, fse)


def test_stationary_moments_per_gene():
    # Slowest relaxation rate min(k_deg, k_on + k_off) is 0.5 for the last
    # gene: T = 20 leaves a transient of order e^-10.
    k_on = np.array([0.5, 2.0, 0.2])
    k_off = np.array([2.0, 8.0, 0.4])
    k_syn = np.array([50.0, 40.0, 5.0])
    k_deg = np.array([1.0, 1.0, 0.5])
    counts = tg.simulate(k_on, k_off, k_syn, k_deg, n_cells=10000, t=20.0, seed=3)
    for j in range(3):
        mean, fano = stationary_mean_fano(k_on[j], k_off[j], k_syn[j], k_deg[j])
        m, se = mean_and_se(counts[:, j])
        assert abs(m - mean) < Z * se, (j, m, mean, se)
        f, fse = fano_and_se(counts[:, j])
        assert abs(f - fano) < Z * fse, (j, f, fano, fse)


def test_moment_reference_is_exact_in_its_limits():
    # The reference itself: long-time limit equals the stationary formulas.
    k = (0.5, 2.0, 50.0, 1.0)
    mean, var = telegraph_moments(60.0, *k)
    ms, fano = stationary_mean_fano(*k)
    assert mean == pytest.approx(ms, rel=1e-10)
    assert var / mean == pytest.approx(fano, rel=1e-10)


# -- distributions ----------------------------------------------------------------------------
@pytest.mark.parametrize("capture", [1.0, 0.4])
def test_histogram_matches_stationary_pmf(capture):
    k = (0.5, 2.0, 30.0, 1.0)
    counts = tg.simulate(*k, n_cells=20000, t=15.0, capture=capture, seed=21)
    n = np.arange(counts.max() + 50)
    pmf = np.exp(tg.logpmf(n, *k, capture=capture))
    assert chisq_gof(counts, pmf) > P_MIN


def test_histogram_matches_master_equation_in_transient():
    k = (1.0, 3.0, 25.0, 1.0)
    counts = tg.simulate(*k, n_cells=20000, t=0.7, seed=22)
    p = telegraph_transient(0.7, *k, n_max=80).sum(axis=0)
    assert chisq_gof(counts, p) > P_MIN


def test_stationary_start_stays_stationary():
    k = (0.3, 1.2, 25.0, 1.0)
    cap = np.where(np.arange(20000) % 2 == 0, 0.3, 0.8)
    counts = tg.simulate(*k, n_cells=20000, t=[0.0, 1.5], capture=cap,
                         initial="stationary", seed=23)
    n = np.arange(counts.max() + 50)
    for i in range(2):
        for s in (0.3, 0.8):
            assert chisq_gof(counts[i][cap == s], np.exp(tg.logpmf(n, *k, capture=s))) > P_MIN


def test_stationary_draw_matches_joint_master_equation():
    # (promoter, mRNA) jointly: the on-fraction given n matches P(on | n).
    k = (0.7, 1.5, 12.0, 1.0)
    g0, m0 = tg.ssa.stationary_state(*k, (40000,), np.random.default_rng(7))
    joint = telegraph_stationary_joint(*k, n_max=120)
    assert m0.max() <= 120
    codes = g0 * 121 + m0
    assert chisq_gof(codes, joint.ravel()) > P_MIN


# -- scores -------------------------------------------------------------------------------------
@pytest.mark.parametrize("initial, times", [("off", [0.5, 4.0]), ("stationary", [0.0, 1.0])])
def test_score_has_mean_zero(initial, times):
    _, s = tg.simulate(0.6, 1.4, 15.0, 1.3, n_cells=20000, t=times, initial=initial,
                       seed=31, score=True)
    m, se = mean_and_se(s, axis=1)            # (times, 4)
    assert np.all(np.abs(m) < Z * se), (m, se)


def test_initial_state_score_matches_master_equation():
    # Finite differences of an independent quadrature of log P(g, n); a < 1
    # puts a singularity at p = 0, n = 25 is far in the tail.
    k = np.array([0.7, 1.5, 12.0, 1.3])
    g = np.array([0, 0, 1, 1, 0, 1])
    n = np.array([0, 7, 0, 7, 25, 25])
    got = stationary_state_score(g, n, *k)
    ref = np.empty_like(got)
    for i in range(4):
        h = 1e-5 * k[i]
        up, dn = k.copy(), k.copy()
        up[i] += h
        dn[i] -= h
        ref[:, i] = (telegraph_stationary_logjoint_quad(g, n, *up)
                     - telegraph_stationary_logjoint_quad(g, n, *dn)) / (2 * h)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-8)
    # The stationary law depends on the rates only through ratios to k_deg.
    np.testing.assert_allclose(got @ k, 0.0, atol=1e-10)


def test_score_gradient_of_transient_mean_matches_moment_equations():
    k = np.array([0.5, 2.0, 20.0, 1.0])
    t = 1.5
    counts, s = tg.simulate(*k, n_cells=40000, t=t, seed=41, score=True)
    grad, se = tg.gradient.lr_gradient(counts, s)
    ref = np.empty(4)
    for i in range(4):
        h = 1e-6 * k[i]
        up, dn = k.copy(), k.copy()
        up[i] += h
        dn[i] -= h
        ref[i] = (telegraph_moments(t, *up)[0] - telegraph_moments(t, *dn)[0]) / (2 * h)
    assert np.all(np.abs(grad - ref) < Z * se), (grad, ref, se)


@pytest.mark.parametrize("f", [lambda n: (n <= 2) * 1.0, lambda n: n * 1.0])
def test_score_gradient_of_stationary_expectation(f):
    # Stationary start plus a short path: sum of initial-state and path scores.
    k = (0.8, 1.6, 10.0, 1.0)
    counts, s = tg.simulate(*k, n_cells=40000, t=0.5, capture=0.6, initial="stationary",
                            seed=43, score=True)
    grad, se = tg.gradient.lr_gradient(f(counts), s)
    n = np.arange(200)
    ref = (f(n)[:, None] * tg.pmf(n, *k, capture=0.6)[:, None]
           * tg.score(n, *k, capture=0.6)).sum(axis=0)
    assert np.all(np.abs(grad - ref) < Z * se), (grad, ref, se)


def test_capture_thins_binomially():
    k = (0.5, 1.0, 20.0, 1.0)
    N = 20000
    cap = np.where(np.arange(N) < N // 2, 0.25, 1.0)
    n = tg.simulate(*k, n_cells=N, t=[0.0, 2.0], capture=cap, initial="stationary", seed=51)
    mean, fano = stationary_mean_fano(*k)
    for s, sel in ((0.25, cap == 0.25), (1.0, cap == 1.0)):
        for i in range(2):
            m, se = mean_and_se(n[i][sel])
            assert abs(m - s * mean) < Z * se
            # thinning keeps the Poisson-mixture form: Fano -> 1 + s (F - 1)
            f, fse = fano_and_se(n[i][sel])
            assert abs(f - (1 + s * (fano - 1))) < Z * fse


# -- simulate_anndata ----------------------------------------------------------------------------
def test_simulate_anndata_layout_and_determinism():
    import scipy.sparse as sp

    a = tg.simulate_anndata(300, 12, seed=5,
                            groups={"A": {}, "B": {"k_on": 3.0, "genes": [0, 1]},
                                    "C": {"k_syn": 2.0, "genes": ["gene0005"],
                                          "fraction": 0.2}})
    assert a.shape == (300, 12)
    assert sp.issparse(a.X) and a.X.format == "csr" and a.X.dtype == np.int64
    assert list(a.obs["group"].cat.categories) == ["A", "B", "C"]
    assert (a.obs["group"] == "C").sum() == 60
    assert ((a.obs["capture"] > 0) & (a.obs["capture"] <= 1)).all()
    assert list(a.var["differential"][:6]) == ["k_on", "k_on", "none", "none", "none", "k_syn"]
    np.testing.assert_allclose(a.var["true_k_on_B"][:2], 3 * a.var["true_k_on"][:2])
    np.testing.assert_allclose(a.var["true_burst_size"], a.var["true_k_syn"] / a.var["true_k_off"])
    b = tg.simulate_anndata(300, 12, seed=5,
                            groups={"A": {}, "B": {"k_on": 3.0, "genes": [0, 1]},
                                    "C": {"k_syn": 2.0, "genes": ["gene0005"],
                                          "fraction": 0.2}})
    assert (a.X != b.X).nnz == 0
    assert (a.X != tg.simulate_anndata(300, 12, seed=6).X).nnz > 0


def test_simulate_anndata_group_means_match_kinetics():
    k_on = np.array([0.5, 0.5])
    a = tg.simulate_anndata(20000, k_on=k_on, k_off=2.0, k_syn=[20.0, 40.0], seed=7,
                            groups={"A": {}, "B": {"k_on": 4.0, "genes": [0]}})
    X = a.X.toarray()
    cap = a.obs["capture"].to_numpy()
    for g in ("A", "B"):
        sel = (a.obs["group"] == g).to_numpy()
        for j in range(2):
            kon = a.var[f"true_k_on_{g}"].iloc[j]
            ksyn = a.var[f"true_k_syn_{g}"].iloc[j]
            mu = ksyn * kon / (kon + 2.0)
            # E[n_c] = s_c mu, cell by cell
            m, se = mean_and_se(X[sel, j] - cap[sel] * mu)
            assert abs(m) < Z * se, (g, j, m, se)


def test_simulate_anndata_time_course_from_off():
    k = (0.5, 2.0, 20.0, 1.0)
    times = [0.5, 2.0]
    a = tg.simulate_anndata(16000, k_on=[k[0]], k_off=k[1], k_syn=k[2], capture=0.5,
                            t=times, initial="off", seed=8)
    X = a.X.toarray()[:, 0]
    for ti in times:
        sel = (a.obs["time"] == ti).to_numpy()
        assert sel.sum() == 8000
        m, se = mean_and_se(X[sel])
        assert abs(m - 0.5 * telegraph_moments(ti, *k)[0]) < Z * se


@pytest.mark.parametrize("kwargs, match", [
    (dict(groups={"A": {"k_onn": 2.0}}), "unknown keys"),
    (dict(groups={"A": {"fraction": 0.7}, "B": {"fraction": 0.7}}), "sum to at most 1"),
    (dict(k_on=[1.0, 2.0], n_genes=3), "one value per gene"),
    (dict(initial="off"), "give the sampling time t"),
    (dict(capture=0.0), r"\(0, 1\]"),
])
def test_simulate_anndata_bad_input_is_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tg.simulate_anndata(20, **kwargs)


def test_one_compiled_kernel_for_all_input_kinds():
    # Lists, ints, read-only arrays (pandas .values) and per-cell capture must
    # all reuse one compiled kernel (compilation takes seconds).
    from telegraph.kernels.ssa import telegraph_paths

    ro = np.array([0.5, 1.0])
    ro.flags.writeable = False
    tg.simulate(1, 2, 3, n_cells=3, t=1)
    tg.simulate(ro, [2.0, 1.0], 3.0, np.float32(1.0), n_cells=3, t=ro, capture=[0.5, 1, 1],
                initial="stationary", score=True, seed=np.int64(3))
    tg.simulate(0.5, 2.0, 20.0, n_cells=3, t=1.0, initial=([1, 0, 1], [3, 4, 5]))
    assert len(telegraph_paths.signatures) == 1


# -- interruptible runs ---------------------------------------------------------------------
def test_blocks_of_cells_change_nothing(monkeypatch):
    """Simulated in blocks of a few cells or in one call: identical output (the streams
    are per (gene, cell)), scores, stationary starts and per-cell capture included."""
    kw = dict(n_cells=57, t=[0.5, 2.0], capture=np.linspace(0.2, 1.0, 57), seed=11,
              initial="stationary", score=True)
    rates = ([0.5, 3.0], 2.0, [20.0, 4.0], 1.0)
    monkeypatch.setattr(config, "SIMULATE_FIRST_BLOCK_PATHS", 10**9)
    one = tg.simulate(*rates, **kw)
    monkeypatch.setattr(config, "SIMULATE_FIRST_BLOCK_PATHS", 6)     # 3 cells
    monkeypatch.setattr(config, "SIMULATE_BLOCK_SECONDS", 0.0)       # then 1 cell a block
    calls = []
    real = tg.ssa._k.telegraph_paths
    monkeypatch.setattr(tg.ssa._k, "telegraph_paths",
                        lambda *a: calls.append(a[5].shape[0]) or real(*a))
    many = tg.simulate(*rates, **kw)
    assert calls[0] == 3 and len(calls) == 1 + 54
    for x, y in zip(one, many):
        np.testing.assert_array_equal(x, y)


_LONG_SIMULATION = """
import sys
import telegraph as tg
tg.simulate(1.0, 1.0, 10.0, n_cells=10, t=1.0, seed=0)     # compiled (or loaded) first
print("ready", flush=True)
tg.simulate(1.0, 1.0, 100.0, n_cells=200000, t=100.0, seed=0)  # about a minute
"""


def test_ctrl_c_stops_a_long_simulation_quickly():
    """Audit: Ctrl-C was ignored until the compiled kernel returned (73 s after SIGINT
    on a 74 s run). Simulated in blocks of cells, the run stops within about a block."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", _LONG_SIMULATION], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.5)
        assert proc.poll() is None
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        waited = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
    assert "KeyboardInterrupt" in proc.stderr.read()
    assert waited < 5.0

