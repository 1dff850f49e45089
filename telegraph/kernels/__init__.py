"""Numba kernels: plain arrays in, plain arrays out.

Nothing in this subpackage knows about AnnData, pandas or files; the layers
above (model maths, inference, adapters, CLI) call into it.
"""
