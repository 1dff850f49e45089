"""telegraph: transcriptional bursting kinetics from single-cell RNA counts.

The two-state (telegraph) model: a promoter switches on with rate ``k_on`` and
off with rate ``k_off``, transcribes with rate ``k_syn`` while on, and mRNA
degrades with rate ``k_deg``.  All rates are per unit time; a snapshot of
counts identifies them only in units of ``k_deg``.

Public API (``import telegraph as tg``):

- stationary law: :func:`logpmf`, :func:`pmf`, :func:`score`,
  :func:`posterior_on`, :func:`posterior_mean`, :func:`posterior_var`
- two species (unspliced, spliced): :func:`joint_logpmf`, :func:`joint_pmf`,
  :func:`joint_score`, :func:`joint_information`
- metabolic labelling (new and old RNA after a pulse, rates per hour):
  :func:`labelled_logpmf`, :func:`labelled_pmf`, :func:`labelled_score`,
  :func:`labelled_information`, :func:`simulate_labelled_anndata`
- simulation: :func:`simulate`, :func:`simulate_anndata`, :func:`score_gradient`
- inference: :func:`fit`; :func:`fit_file` for .h5ad/.zarr on disk (bounded memory,
  optionally on a Dask cluster)
- experiment design: :mod:`telegraph.design` (precision, cells needed, the cells/depth
  split of a budget, from the expected information)
- scanpy-style: :mod:`telegraph.tl`, :mod:`telegraph.pl`, :mod:`telegraph.get`
- data: :mod:`telegraph.datasets`, :mod:`telegraph.io`
- tunables: :mod:`telegraph.config`

Submodules are imported lazily so that ``import telegraph`` stays cheap.
"""

from __future__ import annotations

import importlib
import os

# Numba's OpenMP workers spin while waiting by default; on a shared or busy
# machine that burns the cores the other threads need (measured: chunked
# histogram passes 3-8x slower in wall time). Users can still override it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first access so that a
# user who only simulates never pays for compiling the fitting kernels.
_LAZY = {
    "logpmf": "telegraph.stationary",
    "pmf": "telegraph.stationary",
    "score": "telegraph.stationary",
    "posterior_on": "telegraph.stationary",
    "posterior_mean": "telegraph.stationary",
    "posterior_var": "telegraph.stationary",
    "joint_logpmf": "telegraph.joint",
    "joint_pmf": "telegraph.joint",
    "joint_score": "telegraph.joint",
    "joint_information": "telegraph.joint",
    "simulate": "telegraph.ssa",
    "simulate_anndata": "telegraph.study",
    "score_gradient": "telegraph.gradient",
    "fit": "telegraph.layerfit",
    "fit_file": "telegraph.backed",
    "labelled_logpmf": "telegraph.labelled",
    "labelled_pmf": "telegraph.labelled",
    "labelled_score": "telegraph.labelled",
    "labelled_information": "telegraph.labelled",
    "simulate_labelled_anndata": "telegraph.study",
}
#: every submodule, importable as ``tg.<name>`` (tests/test_architecture.py
#: checks that this lists every module of the package)
_SUBMODULES = {"backed", "blocks", "calibration", "cli", "cluster", "config", "datasets",
               "design", "differential", "fitting", "get", "goodness", "gradient", "histogram",
               "inputs", "io", "joint", "jointfit", "kernels", "labelfit", "labelled", "layerfit", "likelihood_fit",
               "multitest", "network",
               "ondisk", "pl", "ssa", "stationary", "study", "tl"}

__all__ = sorted(set(_LAZY) | _SUBMODULES | {"__version__"})


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"telegraph.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'telegraph' has no attribute {name!r}")


def __dir__():
    return __all__
