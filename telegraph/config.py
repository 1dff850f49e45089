"""Every tunable of telegraph, in one place.

Defaults of the public functions are taken from here (so the documentation and
the code cannot drift apart), and the internal knobs below are read when a
function runs, so that setting one changes what follows::

    import telegraph as tg
    tg.config.CHUNK_ENTRIES = 2_000_000     # smaller slices when reading from disk

Nothing in this module imports the rest of the package.
"""

from __future__ import annotations

# --------------------------------------------------------------------------- fitting defaults

#: confidence level of every interval (profile or Wald), in (0, 1)
CI = 0.95
#: "profile" (profile-likelihood intervals) or "wald" (from the observed information)
INTERVAL = "profile"
#: genes with fewer non-missing cells are not fitted (regime "too_few_cells")
MIN_CELLS = 10
#: Newton iterations per optimisation before giving up (the fit is then flagged)
MAX_ITER = 100
#: smallest expected count of a pooled cell of the goodness-of-fit statistic
GOF_MIN_EXPECTED = 5.0
#: progress bars on stderr: None shows them when stderr is a terminal (or in a Jupyter
#: kernel), True always, False never (tqdm's ``disable=None`` convention)
PROGRESS = None
#: quantities that get profile-likelihood intervals (in the kernel's order)
PROFILE_TARGETS = ("burst_frequency", "burst_size", "k_off", "k_syn")

# --------------------------------------------------------------------------- metabolic labelling

#: default probability that a molecule made during the labelling pulse is seen as new
#: (``detection=`` of :func:`telegraph.labelled_logpmf` and the labelled simulator)
DETECTION = 1.0

# --------------------------------------------------------------------------- capture groups

#: cells whose capture efficiencies differ by less than a factor 1 + CAPTURE_RTOL share
#: a capture group (valued at their mean) once there are more than CAPTURE_BINS distinct
#: values; 0 keeps every distinct value
CAPTURE_RTOL = 0.05
#: up to this many distinct capture values are kept exactly (one group each)
CAPTURE_BINS = 256

# --------------------------------------------------------------------------- keys in AnnData

#: ``key_added`` of :func:`telegraph.tl.fit`: ``var["telegraph_<column>"]``, ``uns["telegraph"]``
FIT_KEY = "telegraph"
#: ``key_added`` of :func:`telegraph.tl.differential_bursting`
DIFFERENTIAL_KEY = "telegraph_differential"
#: ``key_added`` of :func:`telegraph.tl.differential_bursting_alleles`
ALLELES_KEY = "telegraph_alleles"

# --------------------------------------------------------------------------- work in blocks

#: genes per compiled call: ``clip(n_genes // 20 + 1, BLOCK_GENES_MIN, BLOCK_GENES_MAX)``
#: (a compiled call cannot be interrupted, so blocks are kept short)
BLOCK_GENES_MIN = 32
BLOCK_GENES_MAX = 1024
#: gene blocks per worker thread on a Dask cluster, and pieces of a block per local thread
#: (the cost of genes differs)
BLOCKS_PER_THREAD = 4
#: histograms merged per task in the tree reduction on a Dask cluster
FAN_IN = 4
#: seconds to wait for a Dask scheduler before giving up
CONNECT_TIMEOUT = 10.0

# --------------------------------------------------------------------------- simulation

#: seconds of simulation per compiled call of ``tg.simulate`` (blocks of cells; a compiled
#: call cannot be interrupted, so Ctrl-C waits at most about this long)
SIMULATE_BLOCK_SECONDS = 0.25
#: (cell, gene) paths of the first block, before its duration is known
SIMULATE_FIRST_BLOCK_PATHS = 1024
#: ``tg.simulate(progress=None)`` shows a bar once the rest of a run should take longer
SIMULATE_PROGRESS_SECONDS = 5.0

# --------------------------------------------------------------------------- reading

#: stored entries per slice when a matrix is read from disk without a chunk size:
#: about 64 MB of float32 data + int32 indices, some 200 MB while counted
CHUNK_ENTRIES = 8_000_000
#: objects that are neither NumPy arrays nor scipy.sparse matrices but offer
#: ``toarray`` are densified only up to this many entries
TOARRAY_MAX_ENTRIES = 10_000_000
#: entries (all blocks together) of the small-value table when counting histograms;
#: beyond it the tail of the count distribution goes through a sort
COUNT_TABLE_BUDGET = 1 << 23
#: (gene, capture group) pairs beyond which a histogram request is refused as a
#: capture-binning mistake (one group per cell), not a workload
MAX_GENE_GROUPS = 1 << 27

# --------------------------------------------------------------------------- experiment design

#: relative truncation tolerance of the expected information (telegraph.design): the sum
#: over counts stops when a bound on every neglected diagonal entry is below this fraction
#: of the entry summed so far (docs/maths.md, "Experiment design")
DESIGN_INFO_TOL = 1e-10
#: a predicted interval is flagged "few_cells" when the predicted standard error of log
#: burst frequency or log burst size exceeds this (the log-scale normal approximation of
#: the fitter's estimates then no longer holds)
DESIGN_MAX_LOG_SE = 0.2
#: ... or when fewer cells than this are expected to have a non-zero count
DESIGN_MIN_NONZERO = 100
#: ... and "near_<limit>" when the predicted probability that the fit reports a limit
#: regime (poisson, bimodal, bursty) exceeds this
DESIGN_MAX_P_LIMIT = 0.01
#: k_off / k_deg given, for planning, to a gene that an earlier fit placed in the bursty
#: (negative-binomial) limit: its burst frequency and size are kept, k_syn = size * k_off
DESIGN_BURSTY_K_OFF = 100.0
#: prior draws (parameter sets) averaged by the Bayesian criterion of telegraph.design.optimize
DESIGN_N_PRIOR = 256
#: simulated cells per parameter set of the score-function gradient estimate
DESIGN_N_SIM_CELLS = 2000
#: default cost model of telegraph.design.CostModel: cost of one cell's library, of one
#: read, the capture efficiency approached at saturating depth and the reads per cell at
#: which half of it is reached
DESIGN_CELL_COST = 1.0
DESIGN_READ_COST = 1e-5
DESIGN_CAPTURE_MAX = 0.3
DESIGN_READS_HALF = 20_000.0
