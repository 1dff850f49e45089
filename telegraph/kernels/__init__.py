"""Numba kernels: plain arrays in, plain arrays out.

Nothing in this subpackage knows about AnnData, pandas or files; the layers
above (model maths, inference, adapters, CLI) call into it.

The per-gene fits are split by idea; each module imports only those listed
below it (no cycles):

- ``fit``: the per-gene driver :func:`~telegraph.kernels.fit.fit_genes` and
  the layout of its result rows; ``differential``: the two-group
  likelihood-ratio tests and the layout of their rows;
- ``profile``: Wald standard errors and profile-likelihood interval ends;
  ``gof``: the Pearson goodness-of-fit statistic and grouped information;
- ``optimize``: the damped-Newton maximiser, its search box, the profile
  targets and the fits of the telegraph model and its limits;
- ``models``: log-likelihood, gradient and information of the telegraph,
  negative-binomial and zero-inflated Poisson laws on one gene's histogram;
  ``linalg``: 3x3 solvers and the phi = T theta coordinate changes;
- ``poisson_beta``, ``special``: the stationary law's series and the
  polygamma functions;
- ``labelled``: the joint law of new and old molecules after a
  metabolic-labelling pulse (uniformization of the transient one-species law,
  Poisson-Beta old molecules) and the views of its results.
"""

__all__ = ["is_compiled"]


def is_compiled(dispatcher) -> bool:
    """Whether a cached kernel will run without compiling: it is compiled in
    this process, or Numba's on-disk cache holds an entry for its current
    source (the first call of a fresh installation compiles for about
    half a minute). False when that cannot be told."""
    if dispatcher.overloads:
        return True
    try:
        return bool(dispatcher._cache._cache_file._load_index())
    except Exception:  # noqa: BLE001 - Numba internals: any failure means "cannot tell"
        return False
