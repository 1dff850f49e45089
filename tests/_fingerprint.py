"""SHA-256 fingerprints of an AnnData, to pin simulated data bit for bit.

:func:`fingerprint` hashes ``X`` (format, dtype, shape, ``data``, ``indices``,
``indptr``), ``obs`` and ``var`` (index, column names, dtypes and values;
categoricals by categories and codes; floating-point columns rounded to float32,
since NumPy's vectorised ``power``/``exp`` (SVML on CPUs with AVX-512, the C library
elsewhere) may differ in the last bit of a float64 from one CPU to another) and
``uns`` (as sorted JSON) separately, so a failing pin says which part changed. Pins
are computed once on trusted code and asserted by the tests afterwards
(tests/test_datasets.py, tests/test_study.py).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()


def _text(values) -> bytes:
    return "\x1f".join(map(str, values)).encode()


def _frame(df: pd.DataFrame) -> str:
    parts = [_text(df.index), _text(df.columns)]
    for col in df.columns:
        s = df[col]
        parts.append(str(s.dtype).encode())
        if isinstance(s.dtype, pd.CategoricalDtype):
            parts.append(_text(s.cat.categories))
            parts.append(np.ascontiguousarray(s.cat.codes.to_numpy()).tobytes())
        elif s.dtype == object:
            parts.append(_text(s.to_numpy()))
        elif np.issubdtype(s.dtype, np.floating):
            parts.append(np.ascontiguousarray(s.to_numpy(), dtype=np.float32).tobytes())
        else:
            parts.append(np.ascontiguousarray(s.to_numpy()).tobytes())
    return _sha(*parts)


def fingerprint(adata) -> dict[str, str]:
    """``{"X": sha, "obs": sha, "var": sha, "uns": sha}`` of an AnnData with CSR ``X``."""
    X = adata.X
    return {
        "X": _sha(f"{X.format} {X.dtype} {X.shape}".encode(),
                  np.ascontiguousarray(X.data).tobytes(),
                  np.ascontiguousarray(X.indices).tobytes(),
                  np.ascontiguousarray(X.indptr).tobytes()),
        "obs": _frame(adata.obs),
        "var": _frame(adata.var),
        "uns": _sha(json.dumps(dict(adata.uns), sort_keys=True).encode()),
    }
