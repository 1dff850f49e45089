"""One-thread BLAS and OpenMP pools for per-gene CPU timings. Import before numpy.

The per-gene benchmarks time one gene on one thread with ``time.process_time``,
which counts every thread of the process. OpenBLAS (numpy's and scipy's BLAS)
runs a pool of worker threads that busy-wait after each call, so a method that
makes many small BLAS/LAPACK calls -- the txburst method's quadrature and
L-BFGS-B -- was charged its idle workers' spinning too: on this 2-core machine
its CPU time per gene came out 2.1-2.4 times its one-thread time. With the pools
at one thread both sides are timed as what they are, one thread's work.
A variable the caller has set is left as it is.

Imported after numpy (a script that reuses a benchmark's generators), the
variables come too late for the BLAS already loaded; the pools are then limited
at run time through threadpoolctl (installed with scanpy's scikit-learn), and
without it a warning says that timings include the BLAS workers.
"""

import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

if "numpy" in sys.modules:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scanpy brings it
        import warnings
        warnings.warn("benchmarks/_one_thread.py imported after numpy and threadpoolctl is "
                      "missing: CPU timings include the BLAS worker threads", stacklevel=2)
    else:
        _LIMITS = threadpool_limits(limits=1)
