"""One-thread BLAS and OpenMP pools for per-gene CPU timings. Import before numpy.

The per-gene benchmarks time one gene on one thread with ``time.process_time``,
which counts every thread of the process. OpenBLAS (numpy's and scipy's BLAS)
runs a pool of worker threads that busy-wait after each call, so a method that
makes many small BLAS/LAPACK calls -- the txburst method's quadrature and
L-BFGS-B -- was charged its idle workers' spinning too: on this 2-core machine
its CPU time per gene came out 2.1-2.4 times its one-thread time. With the pools
at one thread both sides are timed as what they are, one thread's work.
A variable the caller has set is left as it is.
"""

import os
import sys

if "numpy" in sys.modules:
    raise ImportError("benchmarks/_one_thread.py must be imported before numpy")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
