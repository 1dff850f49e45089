"""scanpy-style tools: ``tg.tl.fit(adata, ...)`` and friends.

Functions take ``adata`` first, read counts from ``adata.X`` or a ``layer``,
write results into ``adata.var`` / ``adata.uns`` under ``key_added`` and
return ``None`` (or a copy with ``copy=True``); the tests also return their
table. :mod:`telegraph.get` reads the results back; :func:`store_results`
puts a table of :func:`telegraph.fit` or :func:`telegraph.fit_file` into an
AnnData as :func:`fit` does.
"""

from ._differential import differential_bursting, differential_bursting_alleles
from ._fit import fit, store_results

__all__ = ["fit", "differential_bursting", "differential_bursting_alleles", "store_results"]
