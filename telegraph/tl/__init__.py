"""scanpy-style tools: ``tg.tl.fit(adata, ...)`` and friends.

Functions take ``adata`` first, read counts from ``adata.X`` or a ``layer``,
write results into ``adata.var`` / ``adata.uns`` under ``key_added`` and
return ``None`` (or a copy with ``copy=True``).
"""

from .kinetics import fit

__all__ = ["fit"]

try:  # differential bursting arrives with its own module
    from .differential import differential_bursting, differential_bursting_alleles  # noqa: F401
    __all__ += ["differential_bursting", "differential_bursting_alleles"]
except ImportError:  # pragma: no cover
    pass
