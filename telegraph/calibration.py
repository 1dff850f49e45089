"""The null law of the differential likelihood-ratio statistics, calibrated
on the data (docs/maths.md, "Differential bursting").

Near the limits of the telegraph model (bursty, bimodal, Poisson) the
parameters sit on or near the boundary of the parameter space and the
likelihood-ratio statistic of a differential test is no longer chi-square(1)
under the null: it is smaller on average, and how much smaller depends on
where the gene lies. This module measures it.

- :func:`pooled_fit`: the telegraph model fitted to the cells of both groups
  together (each cell with its own capture) -- the maximum-likelihood fit of
  the hypothesis that nothing differs, a function of the data that says
  nothing about a null gene's statistic;
- :func:`regime_classes`: its regime puts each gene in a class: ``telegraph``
  or ``bursty`` (both burst frequency and burst size identified: tested), or
  none (``bimodal``, ``poisson``: neither is identified, the gene is not
  tested); within a class, which of the two groups' own fits are in the
  ``poisson`` or ``bimodal`` regime makes the subclass -- the statistic is
  far smaller when a group does not identify the target;
- :func:`sample_histograms`: parametric-bootstrap data, the two groups' cells
  (same numbers, same capture groups) drawn from a gene's pooled fit;
- :func:`null_scales`: for each subclass and test, from the statistics of
  bootstrap draws of the class's genes that fall in the subclass (by their
  own groups' fits, as the data did), the null law: an atom at zero of weight
  w (the fraction of draws below ``config.CALIBRATION_ATOM_LR``) and, above
  it, chi-square(1) scaled by the Bartlett-type scale c, the mean of the
  positive draws (:attr:`NullScales.atom`, :attr:`NullScales.scale`);
  :meth:`NullScales.pvalues` and :meth:`NullScales.critical` refer statistics
  to it.

The statistics themselves come from the caller (a function of two
histograms), so that this module shares the test's code path exactly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from scipy import special

from . import blocks, config
from .fitting import chi2_1_ppf, fit_raw
from .histogram import CountHistograms
from .inputs import FitSettings
from .kernels import fit as kfit

__all__ = ["critical_statistic", "POOLED", "GROUP_LIMITS", "CLASSES", "pooled_fit", "groups_in_limit", "regime_classes",
           "sample_histograms", "NullScales", "null_law", "null_scales"]

log = logging.getLogger("telegraph")

#: regimes of the pooled fit whose genes are tested
POOLED = ("telegraph", "bursty")
#: which limit regime the groups' own fits are in (neither group, one group poisson, ...),
#: without regard to which group: the second part of a subclass
GROUP_LIMITS = ("none", "poisson", "bimodal", "poisson+poisson", "poisson+bimodal",
                "bimodal+bimodal")
#: the subclasses, in class-index order: pooled regime x the groups' limit regimes
CLASSES = tuple(f"{r} / {g}" for r in POOLED for g in GROUP_LIMITS)
_POOLED_OF_REGIME = {kfit.REGIME_TELEGRAPH: 0, kfit.REGIME_BURSTY: 1}
_N = len(GROUP_LIMITS)


def pooled_fit(hist1: CountHistograms, hist2: CountHistograms, settings: FitSettings, *,
               n_jobs: int | None = None, progress: bool | None = config.PROGRESS,
               chunk_genes: int | None = None) -> np.ndarray:
    """Raw fit rows (:class:`~telegraph.kernels.fit.FitRows`) of each gene
    fitted to the cells of both groups, each cell with its own capture.

    ``settings`` gives ci, min_cells and max_iter; no intervals, no goodness
    of fit."""
    joined = hist1.join(hist2)
    st = FitSettings(ci=settings.ci, interval="wald", min_cells=settings.min_cells, profile=(),
                     max_iter=settings.max_iter, gof_min_expected=0.0)
    rows = []
    with blocks.gene_blocks(joined.n_genes, chunk_genes=chunk_genes, n_jobs=n_jobs,
                            progress=progress, desc="telegraph test: pooled fit") as chunks:
        for start, stop in chunks:
            rows.append(fit_raw(joined, st, slice(start, stop)))
    return np.vstack(rows) if rows else np.empty((0, kfit.N_RESULT))


def groups_in_limit(raw1, raw2) -> np.ndarray:
    """Index into :data:`GROUP_LIMITS` of each gene: the limit regimes
    (``poisson``, ``bimodal``) among the two groups' own fits (raw rows),
    whichever group they are in."""
    def code(raw):  # 0 neither, 1 poisson, 2 bimodal
        r = kfit.FitRows(raw).regime
        return np.where(r == kfit.REGIME_POISSON, 1, np.where(r == kfit.REGIME_BIMODAL, 2, 0))
    a, b = code(raw1), code(raw2)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    # (0,0) none, (0,1) poisson, (0,2) bimodal, (1,1), (1,2), (2,2)
    table = np.array([[0, 1, 2], [1, 3, 4], [2, 4, 5]])
    return table[lo, hi]


def regime_classes(pooled, raw1, raw2) -> np.ndarray:
    """Class index of each gene (int, into :data:`CLASSES`): the pooled
    regime (0 ``telegraph``, 1 ``bursty``) and the groups' limit regimes
    (:func:`groups_in_limit`); -1 not identified (pooled regime bimodal or
    Poisson, or not fitted)."""
    regime = kfit.FitRows(pooled).regime
    pooled_class = np.full(regime.shape, -1, np.int64)
    for code, k in _POOLED_OF_REGIME.items():
        pooled_class[regime == code] = k
    return np.where(pooled_class >= 0, _N * pooled_class + groups_in_limit(raw1, raw2), -1)


def _cell_rates(rows: kfit.FitRows, i: int, n: int, rng) -> np.ndarray:
    """Per-cell Poisson rates at capture 1 (lam p) of ``n`` cells drawn from
    gene i's pooled fit: the law whose supremum it is (a limit model where the
    supremum is attained there)."""
    at = rows.at_limit[i]
    if at == kfit.REGIME_BURSTY:
        return rng.gamma(np.exp(rows.nb_log_a[i]), np.exp(rows.nb_log_beta[i]), n)
    if at == kfit.REGIME_BIMODAL:
        on = rng.random(n) < rows.zip_f[i]
        return np.exp(rows.zip_log_lam[i]) * on
    if at == kfit.REGIME_POISSON:
        return np.full(n, rows.poisson_mu[i])
    return np.exp(rows.log_lam[i]) * rng.beta(np.exp(rows.log_a[i]), np.exp(rows.log_b[i]), n)


def sample_histograms(hist: CountHistograms, genes, pooled, rngs) -> CountHistograms:
    """Histograms of bootstrap data: for each entry i of ``genes``, the cells
    gene i has in ``hist`` (the same number in each capture group) with
    counts drawn from gene i's pooled fit (``pooled``, raw fit rows), as the
    stationary law prescribes: n ~ Poisson(capture * lam p), p from the
    fitted law; entry j draws from the generator ``rngs[j]``. One histogram
    per entry, in order (a gene may appear more than once)."""
    rows = kfit.FitRows(pooled)
    genes = np.asarray(genes, np.int64)
    n_groups = hist.n_groups
    indptr = np.zeros(genes.size + 1, np.int64)
    values, groups, weights, n_cells = [], [], [], np.zeros(genes.size, np.int64)
    for j, i in enumerate(genes):
        per_group = np.rint(hist.cells_per_group(i)).astype(np.int64)
        group_of_cell = np.repeat(np.arange(n_groups), per_group)
        n = group_of_cell.size
        lam = _cell_rates(rows, i, n, rngs[j])
        counts = rngs[j].poisson(hist.capture[group_of_cell] * lam)
        top = int(counts.max()) + 1 if n else 1
        key, w = np.unique(group_of_cell * top + counts, return_counts=True)
        values.append(key % top)
        groups.append(key // top)
        weights.append(w.astype(np.float64))
        indptr[j + 1] = indptr[j] + key.size
        n_cells[j] = n
    cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
    return CountHistograms(indptr, cat(values, np.int64), cat(groups, np.int64),
                           cat(weights, np.float64), hist.capture.copy(), n_cells,
                           np.zeros(genes.size, np.int64))


def _draw_statistics(hist1, hist2, pooled, genes, statistics, seed, start):
    """Statistics and groups' limit regimes of bootstrap draws of ``genes``
    (the draws numbered from ``start`` on, each with its own streams)."""
    rngs1, rngs2 = _streams(hist1, hist2, genes, seed, start)
    b1 = sample_histograms(hist1, genes, pooled, rngs1)
    b2 = sample_histograms(hist2, genes, pooled, rngs2)
    lr, limits = statistics(b1, b2)
    return np.asarray(lr, dtype=float), np.asarray(limits, np.int64)


def _streams(hist1, hist2, genes, seed, start=0):
    """Random generators of each draw's two groups. A group's stream depends
    on the draw and on the group's place in an order of the two groups by
    their cells (number, then total capture) that does not depend on which
    is called group 1: swapping the groups gives the same draws, hence the
    same p-values. Groups with the same cells (two alleles) keep their order."""
    r1, r2 = [], []
    for j, i in enumerate(np.asarray(genes, np.int64)):
        sig = []
        for h in (hist1, hist2):
            cells = h.cells_per_group(i)
            sig.append((round(float(cells.sum())), round(float(cells @ h.capture), 9)))
        first = 1 if sig[1] < sig[0] else 0
        roles = (1, 0) if first else (0, 1)
        r1.append(np.random.default_rng([seed, start + j, roles[0]]))
        r2.append(np.random.default_rng([seed, start + j, roles[1]]))
    return r1, r2


@dataclass
class NullScales:
    """The statistics' null laws, per subclass and test: an atom at zero of
    weight ``atom`` and, above ``config.CALIBRATION_ATOM_LR``, chi2(1) scaled
    by ``scale`` (docs/maths.md, "Differential bursting").

    Attributes
    ----------
    mean : ndarray, shape (len(CLASSES), 2)
        Per subclass and test (burst frequency, burst size): the scale of
        chi2_1 fitted to the positive bootstrap statistics by their mean
        (:func:`null_law`; NaN where there are too few draws).
    se : ndarray, same shape
        The standard error of that mean.
    draws : ndarray of int, same shape
        Bootstrap statistics behind each law.
    genes : ndarray of int, shape (len(CLASSES),)
        Genes of each subclass among the tested ones.
    seconds : float
        Time the bootstrap took.
    method : str
        "bootstrap" or "chi2".
    zeros : ndarray, shape (len(CLASSES), 2)
        The fraction of the bootstrap statistics below ``threshold`` (0 where
        there are too few draws).
    threshold : float
        Statistics below it are in the atom (``config.CALIBRATION_ATOM_LR``;
        0 for the plain chi2(1) reference, which has no atom).
    """

    mean: np.ndarray
    se: np.ndarray
    draws: np.ndarray
    genes: np.ndarray
    seconds: float = 0.0
    method: str = "bootstrap"
    zeros: np.ndarray | None = None
    threshold: float = config.CALIBRATION_ATOM_LR

    def __post_init__(self):
        if self.zeros is None:
            self.zeros = np.zeros(np.shape(self.mean))

    @classmethod
    def chi2(cls) -> "NullScales":
        """No calibration: every scale 1, no atom (the plain chi2(1) reference)."""
        shape = (len(CLASSES), 2)
        return cls(np.ones(shape), np.zeros(shape), np.zeros(shape, np.int64),
                   np.zeros(len(CLASSES), np.int64), 0.0, "chi2", np.zeros(shape), 0.0)

    @property
    def scale(self) -> np.ndarray:
        """The scales used: each subclass's scale fitted to the mean of its
        positive bootstrap statistics (1 where there are too few draws). Adding a standard error was
        measured too (docs/maths.md, "Differential bursting"): it made the
        tests conservative by about a percentage point of false positives."""
        ok = np.isfinite(self.mean) & (self.mean > 0)
        return np.where(ok, self.mean, 1.0)

    @property
    def atom(self) -> np.ndarray:
        """The weight of each subclass's atom at zero (0 where the scale is 1
        for want of draws)."""
        ok = np.isfinite(self.mean) & (self.mean > 0)
        return np.where(ok, np.clip(self.zeros, 0.0, 1.0 - 1e-9), 0.0)

    def of_genes(self, classes) -> np.ndarray:
        """(n_genes, 2) scale of each gene's tests (1 outside the classes)."""
        return self._per_gene(self.scale, classes, 1.0)

    def atom_of_genes(self, classes) -> np.ndarray:
        """(n_genes, 2) atom weight of each gene's tests (0 outside the classes)."""
        return self._per_gene(self.atom, classes, 0.0)

    @staticmethod
    def _per_gene(table, classes, default):
        classes = np.asarray(classes)
        out = np.full((classes.size, 2), default)
        ok = classes >= 0
        out[ok] = table[classes[ok]]
        return out

    def pvalues(self, lr, classes, k: int, seed: int = config.CALIBRATION_SEED) -> np.ndarray:
        """p-values of test ``k``'s statistics ``lr`` (one per gene, NaN where
        not tested) under each gene's null law: (1 - w) P(chi2_1 > lr / c) /
        P(chi2_1 > t0 / c) above the atom's threshold t0 (:attr:`threshold`),
        and a uniform draw on [1 - w, 1] at the atom (a randomised p-value, Habiger & Pena 2011:
        the atom's genes are spread over the top w of the unit interval, as a
        uniform null law asks, instead of being piled at 1). The draw is fixed
        by ``seed`` and the gene's position, so the same data give the same
        p-values."""
        lr = np.asarray(lr, float)
        c = self.of_genes(classes)[:, k]
        w = self.atom_of_genes(classes)[:, k]
        t0 = np.where(np.asarray(classes) >= 0, self.threshold, 0.0)  # chi2_1 outside
        u = np.random.default_rng([seed, 7, k]).random(lr.size)
        with np.errstate(invalid="ignore"):
            tail = (1.0 - w) * _chi2_1_sf(lr / c) / _chi2_1_sf(t0 / c)
            p = np.where(lr >= t0, np.minimum(tail, 1.0 - w), 1.0 - w * u)
        return np.where(np.isfinite(lr), p, np.nan)

    def critical(self, classes, level: float) -> np.ndarray:
        """(n_genes, 2) critical statistic of each gene's tests at confidence
        ``level``: the lr at which :meth:`pvalues` equals 1 - level (the
        threshold the interval of the log fold change inverts); the atom's
        threshold where the atom alone holds more than ``level``."""
        c = self.of_genes(classes)
        w = self.atom_of_genes(classes)
        t0 = np.where(np.asarray(classes) >= 0, self.threshold, 0.0)[:, None]
        q = np.clip((1.0 - level) * _chi2_1_sf(t0 / c) / (1.0 - w), 0.0, 1.0)
        return np.maximum(c * chi2_1_ppf(1.0 - q), t0)

    def record(self) -> dict:
        """h5ad-writable summary for ``attrs`` / ``uns``."""
        return {"method": self.method, "classes": list(CLASSES),
                "scale": self.scale.tolist(), "atom": self.atom.tolist(),
                "mean": np.nan_to_num(self.mean).tolist(),
                "se": self.se.tolist(), "draws": self.draws.tolist(),
                "genes": self.genes.tolist(), "seconds": float(self.seconds),
                "threshold": float(self.threshold)}


def critical_statistic(scale, atom, alpha: float,
                       threshold: float = config.CALIBRATION_ATOM_LR) -> np.ndarray:
    """The statistic above which :meth:`NullScales.pvalues` falls below
    ``alpha``, for null laws with scale ``scale`` and atom ``atom``
    (broadcast): :meth:`NullScales.critical` at level 1 - alpha, from the
    laws themselves (telegraph.design predicts power with it)."""
    c = np.asarray(scale, float)
    w = np.asarray(atom, float)
    q = np.clip(alpha * _chi2_1_sf(threshold / c) / (1.0 - w), 0.0, 1.0)
    return np.maximum(c * chi2_1_ppf(1.0 - q), threshold)


def null_law(x, threshold: float = config.CALIBRATION_ATOM_LR) -> tuple[float, float, float]:
    """The null law of statistics ``x`` (bootstrap draws of one subclass):
    the weight w of the atom (the fraction below ``threshold``), the scale c
    of chi2_1 x c above it, fitted by its mean (the mean of a chi2_1 x c
    truncated at t is c P(chi2_3 > t/c) / P(chi2_1 > t/c)), and the standard
    error of that mean; c NaN when fewer than 10 draws are positive."""
    x = np.asarray(x, float)
    pos = x[x >= threshold]
    if pos.size < 10 or pos.mean() <= 0:
        return 0.0, np.nan, 0.0
    m = pos.mean()
    c = m
    for _ in range(4):   # a contraction: each step moves c by a factor ~ sqrt(threshold / c)
        c = m * _chi2_1_sf(threshold / c) / special.gammaincc(1.5, threshold / c / 2.0)
    return 1.0 - pos.size / x.size, c, pos.std(ddof=1) / np.sqrt(pos.size)


def _chi2_1_sf(x):
    """P(chi2_1 > x), as ``scipy.stats.chi2.sf(x, 1)`` computes it."""
    return special.gammaincc(0.5, np.maximum(x, 0.0) / 2.0)


def _draw_genes(members: np.ndarray, rng, min_draws: int, max_draws: int,
                max_repeats: int) -> np.ndarray:
    """Genes of a class to draw: each once (a random subset of max_draws of a
    large class), more often for a small class, up to min_draws draws or
    max_repeats draws of every gene."""
    n = members.size
    if n >= max_draws:
        return np.sort(rng.choice(members, size=max_draws, replace=False))
    target = min(max(min_draws, n), max_repeats * n)
    reps = [members] * (target // n)
    extra = target - n * len(reps)
    if extra > 0:
        reps.append(rng.choice(members, size=extra, replace=False))
    return np.concatenate(reps)


def null_scales(hist1: CountHistograms, hist2: CountHistograms, pooled, classes, statistics,
                *, seed: int = config.CALIBRATION_SEED,
                min_draws: int = config.CALIBRATION_MIN_DRAWS,
                max_draws: int = config.CALIBRATION_MAX_DRAWS,
                max_repeats: int = config.CALIBRATION_MAX_REPEATS,
                min_subclass: int = config.CALIBRATION_MIN_SUBCLASS,
                top_up: int = config.CALIBRATION_TOP_UP_DRAWS,
                top_up_repeats: int = config.CALIBRATION_TOP_UP_REPEATS) -> NullScales:
    """Bartlett-type scales of the two tests' statistics per regime subclass,
    from a parametric bootstrap of the pooled fits.

    Draws are made per pooled regime (genes chosen by :func:`_draw_genes`);
    each draw falls in a subclass by its own groups' fits, as the data do. A
    subclass with tested genes but fewer than ``top_up`` draws gets a second
    round: its own genes are drawn again (each up to ``top_up_repeats`` times,
    about 2.5 times the shortfall in all), and the draws that land in it are
    added. A subclass still short of ``min_subclass`` draws takes the law of
    all the draws of its pooled regime.

    Parameters
    ----------
    hist1, hist2 : CountHistograms
        The two groups' data (for their cells and capture groups).
    pooled : ndarray
        Raw rows of :func:`pooled_fit`.
    classes : ndarray of int
        :func:`regime_classes` of the genes to be tested, -1 for the others.
    statistics : callable
        ``statistics(h1, h2)`` -> ((n, 2) likelihood-ratio statistics of the
        two tests (burst frequency, burst size), NaN where a draw cannot be
        tested; (n,) :func:`groups_in_limit` of the draws) for histograms of
        two groups.
    seed, min_draws, max_draws, max_repeats, min_subclass, top_up, top_up_repeats
        As ``config.CALIBRATION_*`` (top_up: ``CALIBRATION_TOP_UP_DRAWS``).

    Returns
    -------
    NullScales
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    classes = np.asarray(classes)
    k = len(CLASSES)
    mean = np.full((k, 2), np.nan)
    zeros = np.zeros((k, 2))
    se = np.zeros((k, 2))
    draws = np.zeros((k, 2), np.int64)
    genes = np.array([(classes == c).sum() for c in range(k)], np.int64)
    pooled_class = np.where(classes >= 0, classes // _N, -1)
    picked = []
    for r in range(len(POOLED)):
        members = np.flatnonzero(pooled_class == r)
        picked.append(_draw_genes(members, rng, min_draws, max_draws, max_repeats)
                      if members.size else np.zeros(0, np.int64))
    drawn = np.concatenate(picked)
    if drawn.size:
        lr, limits = _draw_statistics(hist1, hist2, pooled, drawn, statistics, seed, 0)
        origin = np.repeat(np.arange(len(POOLED)), [p.size for p in picked])
        sub = _N * origin + limits
        first_round = np.ones(lr.shape[0], bool)
        # subclasses short of draws: their own genes are drawn again, and the draws that
        # land in the subclass (by their own groups' fits) are kept
        landed = np.bincount(sub, minlength=k)
        short = np.flatnonzero((genes > 0) & (landed < top_up))
        if short.size:
            extra = np.concatenate([
                np.repeat(np.flatnonzero(classes == c),
                          int(np.clip(np.ceil(2.5 * (top_up - landed[c]) / genes[c]), 1,
                                      top_up_repeats)))
                for c in short])
            lr2, limits2 = _draw_statistics(hist1, hist2, pooled, extra, statistics, seed,
                                            drawn.size)
            sub2 = _N * (classes[extra] // _N) + limits2
            keep = sub2 == classes[extra]
            lr = np.vstack([lr, lr2[keep]])
            sub = np.concatenate([sub, sub2[keep]])
            origin = np.concatenate([origin, classes[extra][keep] // _N])
            first_round = np.concatenate([first_round, np.zeros(int(keep.sum()), bool)])
            drawn = np.concatenate([drawn, extra])
        for c in range(k):
            for t in range(2):
                x = lr[(sub == c) & np.isfinite(lr[:, t]), t]
                if x.size < min_subclass:
                    x = lr[first_round & (origin == c // _N) & np.isfinite(lr[:, t]), t]
                draws[c, t] = x.size
                if x.size >= 20:
                    zeros[c, t], mean[c, t], se[c, t] = null_law(x)
    out = NullScales(mean, se, draws, genes, time.perf_counter() - t0, zeros=zeros)
    log.info("null calibration: %d bootstrap draws in %.1f s; scales %s; atoms %s",
             drawn.size, out.seconds, np.round(out.scale, 3).tolist(),
             np.round(out.atom, 3).tolist())
    return out
