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
#: quantities that can get profile-likelihood intervals (in the kernel's order)
PROFILE_TARGETS = ("burst_frequency", "burst_size", "k_off", "k_syn")
#: those that get them by default (``profile="all"`` / ``--profile all``: every one of
#: PROFILE_TARGETS); the others get Wald intervals from the observed information
PROFILE = ("burst_frequency", "burst_size")
#: profile intervals after the regime decision (docs/maths.md, "Profile likelihood"): in the
#: telegraph and bimodal regimes, a limit model that the decision rejected by only a little
#: still adds its own values to the intervals (:func:`telegraph.fitting.union_distances`);
#: False gives the plain profile intervals
LIMIT_UNION = True
#: telegraph regime: a limit counts as "rejected by only a little" while its one-sided test
#: would not reject at LIMIT_UNION_TELEGRAPH * (1 - ci)/2 (distance 6.39 at ci 0.95); bimodal
#: regime: the bursty limit, at LIMIT_UNION_BIMODAL * (1 - ci)/2 (distance 2.82). Both chosen by
#: measurement (benchmarks/bench_calibration.py): coverage given the regime of at least ci at
#: 30-300 cells without raising the coverage over all genes above 98.5%
LIMIT_UNION_TELEGRAPH = 0.007
LIMIT_UNION_BIMODAL = 0.35

# --------------------------------------------------------------------------- differential tests

#: null law of the likelihood-ratio statistics (docs/maths.md, "Differential bursting"):
#: "bootstrap" refers each statistic to chi2_1 scaled by the mean statistic of parametric
#: bootstrap draws of the same regime class; "chi2" to chi2_1 itself (faster, conservative near
#: the limits of the model)
CALIBRATION = "bootstrap"
#: bootstrap draws per pooled regime class: each gene of the class once, but at least
#: CALIBRATION_MIN_DRAWS (genes of a small class are drawn again, each at most
#: CALIBRATION_MAX_REPEATS times) and at most CALIBRATION_MAX_DRAWS (a random subset of a
#: large class); the relative standard error of a class's scale is about sqrt(2 / draws)
CALIBRATION_MIN_DRAWS = 400
CALIBRATION_MAX_DRAWS = 1000
CALIBRATION_MAX_REPEATS = 4
#: a subclass (pooled regime x number of groups in a limit regime) with fewer draws takes the
#: scale of its whole pooled regime
CALIBRATION_MIN_SUBCLASS = 40
#: a subclass with tested genes but fewer than CALIBRATION_TOP_UP_DRAWS bootstrap draws after
#: the first round draws its own genes again (about 2.5 times the shortfall, each gene at most
#: CALIBRATION_TOP_UP_REPEATS times more) and keeps the draws that land in it: a few dozen genes
#: with a group in the Poisson regime otherwise took the law of their whole pooled regime
#: (docs/maths.md, "Differential bursting")
CALIBRATION_TOP_UP_DRAWS = 150
CALIBRATION_TOP_UP_REPEATS = 8
#: seed of the bootstrap draws (the same data give the same p-values)
CALIBRATION_SEED = 0
#: likelihood-ratio statistics below this count as the null law's atom at zero (a group in a
#: limit regime that does not identify the target leaves nothing to test): the atom's weight
#: and the scale of the positive part are measured apart (docs/maths.md, "Differential
#: bursting"); 1e-4 is far above the fits' convergence error and holds 0.8% of chi2_1
CALIBRATION_ATOM_LR = 1e-4
#: weights of the multiple-testing adjustment: "information" (weighted Benjamini-Hochberg with
#: cross-weighted weights from each gene's standard error in the pooled fit,
#: :func:`telegraph.multitest.information_weights`) or "none" (plain Benjamini-Hochberg)
WEIGHTING = "information"
#: FDR level the weights are tuned for (they control the FDR at every level)
WEIGHT_ALPHA = 0.05
#: folds of the cross-weighting, genes per stratum of the covariate (at most WEIGHT_MAX_STRATA
#: strata; fewer than two strata means no weights), largest weight, seed of the folds
WEIGHT_FOLDS = 5
WEIGHT_GENES_PER_STRATUM = 300
WEIGHT_MAX_STRATA = 10
WEIGHT_MAX = 10.0
WEIGHT_SEED = 0
#: without capture, a note when the two groups' median total counts differ by more than this
#: factor: a difference in depth then looks like a difference in burst size or frequency
DEPTH_RATIO_WARN = 1.5

# --------------------------------------------------------------------------- metabolic labelling

#: default probability that a molecule made during the labelling pulse is seen as new
#: (``detection=`` of :func:`telegraph.labelled_logpmf` and the labelled simulator)
DETECTION = 1.0
#: search box of a labelled fit (telegraph.labelfit), rates per hour; an interval
#: reaching an end is unbounded there
LABEL_FIT_BOUNDS = {"k_on": (1e-4, 1e3), "k_off": (1e-4, 1e3), "k_syn": (1e-3, 1e5),
                    "k_deg": (1e-4, 1e2)}
#: a labelled fit is in the bursty regime when its likelihood at k_off =
#: LABEL_BURSTY_TEST * (k_on + k_deg + 1 / shortest t_label) (other rates re-maximised)
#: is within the confidence drop of its maximum
LABEL_BURSTY_TEST = 30.0
#: the ``pulse`` flag of a labelled fit: "short" when every pulse is shorter than
#: LABEL_SHORT_PULSE mRNA lifetimes (t_label * k_deg; few new molecules, k_deg rests on
#: them), "long" when every pulse exceeds LABEL_LONG_PULSE lifetimes (old molecules
#: below e^-5 of the total: k_deg rests on the few left)
#: a labelled fit does not evaluate its law where the uniformization would cost more than
#: max(LABEL_FIT_MIN_WORK, LABEL_FIT_WORK_FACTOR * (largest new + 2) * (largest old + 2))
#: steps x table entries ((k_on + k_off + c k_syn) t_label x (largest new + c k_syn (1 -
#: e^-k_deg t_label) / k_deg); ~1e-7 s each): such parameters are far from the data (the
#: optimiser shortens such steps; an interval end beyond them is reported as unbounded)
LABEL_FIT_MIN_WORK = 5e5
LABEL_FIT_WORK_FACTOR = 100
#: the bursty-limit test of a labelled fit gets this many times that budget
LABEL_BURSTY_WORK = 10.0
LABEL_SHORT_PULSE = 0.1
LABEL_LONG_PULSE = 5.0
#: most distinct pulse lengths (x detection probabilities) of one labelled fit: each is
#: a cell group of its own (round per-cell values that differ only by noise)
LABEL_MAX_PULSES = 64
#: ``detection="estimate"``: one detection probability shared by all genes, the maximum of
#: the summed profile log-likelihood over this many genes (those with the highest mean
#: new + old count; point fits only), then every gene fitted at it
#: (docs/maths.md, "Estimating the detection probability")
DETECTION_ESTIMATE_GENES = 100
#: the search range of that estimate (a probability in (0, 1]); an interval reaching its
#: lower end is unbounded there
DETECTION_ESTIMATE_RANGE = (0.02, 1.0)
#: accuracy of the estimate and of its interval ends, on the logit scale (0.01: about 0.2%
#: of pi at pi = 0.7, far below a useful interval's width)
DETECTION_ESTIMATE_XTOL = 0.01
#: the estimate is flagged "flat" (and a warning raised) when its interval is wider than
#: this (most of (0, 1]) or reaches the lower end of the search range: the data do not
#: identify pi (one pulse length, slowly degrading genes); give it instead
DETECTION_FLAT_WIDTH = 0.5

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
#: the pointwise law (tg.logpmf, tg.score, the posteriors) runs arrays of at least this many
#: valid entries in pieces on threads, shorter ones in one serial call (starting threads
#: costs ~80-150 us, the work of a few hundred entries, and two threads gained nothing below
#: ~10,000 entries on a 2-core machine; most calls inside the fits are short)
LAW_THREADS_FROM = 10_000
#: where per-gene fits written in Python (two species, labelled) run with ``n_jobs`` > 1:
#: "processes" (worker processes of joblib's loky, kept alive between calls and fed genes
#: in batches) or "threads". Their compiled kernels release the GIL but the Python around
#: them does not: on 2 cores, threads measured 1.19x one thread (CPU time up 40%),
#: processes 1.8x (benchmarks/bench_joint_fit.py)
GENE_WORKERS = "processes"
#: a per-gene fit of fewer genes runs on threads (starting worker processes costs ~2 s
#: once per session: importing telegraph and loading its kernels from Numba's cache)
PROCESSES_FROM_GENES = 24
#: a fit that will compile the fit kernel (a fresh installation or Numba cache) compiles
#: parts of it in a second process at the same time when there is a second core
#: (telegraph/kernels/_ahead.py); False compiles everything in the calling process
COMPILE_AHEAD = True
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

# --------------------------------------------------------------------------- two species

#: the lattice box of the joint (unspliced, spliced) law ends where the marginal tails
#: (exact for unspliced, a Chernoff bound for spliced) fall below exp(-JOINT_TAIL), so
#: the probability it leaves out is negligible for the normalisation ...
JOINT_TAIL = 30.0
#: ... and it reaches this many nats beyond every requested count (a priori, in the
#: marginal laws, with the product of the marginals as the count's probability)
JOINT_MARGIN = 15.0
#: after solving, every truncating edge of the box must lie this many nats below the
#: least probable requested count (and below -JOINT_TAIL + 5), else it is moved out and
#: the law solved again. Measured: an edge d nats below a count moves its log P by about
#: exp(-1.8 d) (d = 10: 2e-8), so 12 keeps the required 1e-6 with a wide margin
JOINT_EDGE_MARGIN = 12.0
#: ... and in a fit, this many: an edge d nats below the least probable observed count moves
#: that count's log P by about exp(-1.8 d) (d = 6: 2e-5 nats), and only the few extreme
#: counts are that close, so a log-likelihood moves by ~1e-4, below what the optimiser (its
#: stall rule: 1e-3 nats over three steps) and the profile (0.01 nats) resolve. On heavy-tailed
#: laws this margin, not the normalisation tail, sets the box: measured on bench_joint_fit's
#: genes against 8, log-likelihoods moved by at most 1.6e-4 nats and interval ends by at most
#: 2e-4 (relative), and the heavy gene's fit took 1.2x (10,000 cells) to 1.5x (1,000) less CPU
JOINT_FIT_EDGE_MARGIN = 6.0
#: refuse boxes of more lattice points than this: the elimination needs ~10 kB per
#: point at that size (2e5 points: a few GB, ~10 s)
JOINT_MAX_POINTS = 200_000
#: rebuild the elimination tree through the most probable state when some node of it
#: eliminates states this many nats more probable than all it keeps (the sensitivities
#: then lose about exp(JOINT_TRAP) machine epsilons)
JOINT_TRAP = 12.0
#: search box of the two-species fit, in units of k_splice (log-uniform bounds of
#: k_on and k_off, of k_deg, and of k_syn); an interval reaching an end is unbounded there
JOINT_FIT_BOUNDS = {"k_on": (1e-4, 1e3), "k_off": (1e-4, 1e3), "k_syn": (1e-4, 1e6),
                    "k_deg": (1e-3, 1e3)}
#: the bursty limit (k_off -> infinity at fixed burst size k_syn / k_off) of the
#: two-species model is evaluated at k_off = JOINT_BURSTY_OFF * (k_splice + k_on + k_deg):
#: every correction is O(1 / JOINT_BURSTY_OFF) relative
JOINT_BURSTY_OFF = 1e3
#: Newton steps of a two-species fit (and of each nuisance optimisation of a profile)
JOINT_MAX_ITER = 60
#: encoding base of (unspliced, spliced) pairs when two layers are read from disk in
#: slices (one base for every slice): at most this many minus one unspliced molecules
#: of a gene in a cell, and spliced counts below 2**31 / JOINT_STREAM_BASE
JOINT_STREAM_BASE = 1 << 13
#: two-species fits solve the joint law once per capture level: cells whose capture is
#: within this factor of the level's largest share one solution (the others of the
#: level are binomial thinnings of it)
JOINT_CAPTURE_LEVEL = 0.35
#: ... but a level holding less than this fraction of a gene's cells joins the level
#: above it (its bins are thinned further from that level's law: the same accuracy, as
#: the edges are grown wherever its bins need; a level's solve costs a fixed ~1 ms of
#: Python and lattice however few its cells): on 16 genes x 10,000 cells with lognormal
#: per-cell capture, whose lowest level held ~0.5% of the cells, 1.17x less CPU per gene
#: (mean; median 1.03x), log-likelihoods within 5e-5 nats
JOINT_LEVEL_MIN_FRACTION = 0.02
#: a two-species fit does not evaluate its law on lattices of more than
#: max(JOINT_FIT_MIN_POINTS, JOINT_FIT_BOX_FACTOR * (largest u + 2) * (largest s + 2))
#: points: parameters that need more are far from the data (the optimiser shortens
#: such steps; an interval end beyond them is reported at the last point reached)
JOINT_FIT_MIN_POINTS = 25000
JOINT_FIT_BOX_FACTOR = 25
#: a two-species fit whose estimate sits on the edge of what its lattice budget can evaluate
#: (a profile end at the estimate itself) is refitted once with this many times the budget
JOINT_WALL_BUDGET = 4.0
#: backtracking factor of a two-species fit's Newton steps (and profile re-maximisations)
#: after a trial point whose law needs more than the gene's lattice budget, instead of
#: 1/2: such a point often costs a full solve on the largest allowed box before it
#: fails, and halving towards the budget's edge repeated that a dozen times per step.
#: The iterations also stop once a step cut short there gains less than the tolerance
#: (likelihood_fit._maximise's ``wall``)
JOINT_WALL_STEP = 0.1
#: a two-species point fit whose Newton steps are cut short by the lattice budget and gain
#: less than this (nats) stops there; if its last steps were cut short that way (the
#: maximum lies beyond the budget) the budget is raised at once by JOINT_WALL_BUDGET and
#: the fit goes on from that point (creeping along the budget's edge cost a low-count
#: bursty gene 175 evaluations before its refit)
JOINT_WALL_TOL = 0.01
#: a two-species fit is in the bursty regime when its likelihood at k_off =
#: JOINT_BURSTY_TEST * (k_splice + k_on + k_deg) (other rates re-maximised) is within the
#: confidence drop of its maximum
JOINT_BURSTY_TEST = 30.0
#: ... a test not run (not bursty) where the unspliced counts alone reject the bursty
#: limit by more than this many nats (or 10 times the confidence drop): the one-species
#: likelihood ratio of the unspliced marginal against its negative-binomial limit
#: (jointfit._marginal_rejects_bursty)
JOINT_BURSTY_SCREEN = 20.0
#: a two-species fit solves its laws on boxes whose truncating edges lie below
#: exp(-JOINT_FIT_TAIL + 5) (and JOINT_EDGE_MARGIN nats below every observed count): the
#: mass left out changes a log-likelihood of N cells by about N exp(-JOINT_FIT_TAIL)
#: (1e-5 at 10^4 cells), far below what the optimiser and the profile resolve
JOINT_FIT_TAIL = 22.0
#: a two-species fit starts each evaluation from the box of the previous one (at nearby
#: parameters) cut down to where that law fell this many nats below the depth its edges
#: must reach (boxes grown from the marginal bounds overshoot, by tens of nats on the
#: spliced side; a box that is too small at the new parameters is grown again)
JOINT_FIT_TRIM = 4.0
#: ... while the log-rates have moved less than this (each, natural log) from where that box
#: was made; farther, from the a priori box of the marginal bounds. The start box only saves
#: work (every evaluation grows its box until the edges are deep enough), and the a priori
#: boxes overshoot on the spliced side by tens of counts (a gene's heaviest evaluations
#: solved boxes 1.5-3 times the points needed): measured on the bench_joint_fit mix, 0.3
#: solved 1189 of 2556 laws on a priori boxes (16.5 of 30 CPU s), 1.0 solved 641 (8.8 s;
#: all 25.4 s), unlimited reuse 48 (27.2 s: boxes carried far were then too small or large)
JOINT_FIT_BOX_REUSE = 1.0
#: a two-species fit ranks its moment starts by the exact likelihood of the unspliced counts
#: alone (cheap) and evaluates this many of the best with the joint law (each solves the
#: law on a lattice: the six starts cost a quarter of a typical gene's fit)
JOINT_FIT_STARTS = 1
#: a two-species point fit stops once three successive Newton steps together gain less than
#: this (nats): far below what the profile intervals resolve (their search stops within
#: ~0.03 of the cut-off in the signed root), and on a flat ridge towards the bursty limit
#: the Newton decrement never falls below its tolerance while each step gains ~1e-5 nats
#: (one gene of the wide benchmark mix: 80 evaluations, 47 CPU s, for 0.002 nats)
JOINT_FIT_STALL = 1e-3

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
#: capture groups (of about equal weight, each at its mean capture) over which
#: design.optimize_pulse averages the information at every step of its ascent: the
#: information is smooth in the capture, and each group costs a sum over its (new, old) lattice
DESIGN_PULSE_CAPTURE_GROUPS = 8
#: genes simulated per parameter set to predict the calibrated null scale of the
#: differential test (telegraph.design.power, cells_needed), run through the real test in
#: experiments of DESIGN_NULL_PANEL genes (each a class of genes like the set, whose
#: bootstrap draws up to CALIBRATION_MAX_DRAWS statistics): the predicted scale averages
#: DESIGN_NULL_GENES / DESIGN_NULL_PANEL such bootstraps
DESIGN_NULL_GENES = 1000
DESIGN_NULL_PANEL = 250
#: ... each simulated with at most this many cells per group (a design of more cells takes
#: the scale at this many: the scale settles as cells grow, and memory stays bounded)
DESIGN_NULL_MAX_CELLS = 5000
#: simulated experiments of the panel (telegraph.design.power and cells_needed with
#: calibration="panel", plan, telegraph design) whose critical values the predicted power
#: averages: the scale the test applies in one experiment varies with its bootstrap (sd about
#: 0.05 in scale, 1% in power), so one simulated experiment would shift every gene's
#: predicted power by its own draw; as many draws as DESIGN_NULL_GENES / DESIGN_NULL_PANEL
DESIGN_NULL_PANELS = 4
#: default cost model of telegraph.design.CostModel: cost of one cell's library, of one
#: read, the capture efficiency approached at saturating depth and the reads per cell at
#: which half of it is reached
DESIGN_CELL_COST = 1.0
DESIGN_READ_COST = 1e-5
DESIGN_CAPTURE_MAX = 0.3
DESIGN_READS_HALF = 20_000.0

# ---------------------------------------------------------------------------
# profile-interval ends of the multi-rate fits (likelihood_fit._profile_end_vm)
# ---------------------------------------------------------------------------

#: the Venzon-Moolgavkar iteration re-maximises the nuisance first (a step at the current
#: value of the target) while its Newton decrement is above this (nats)
PROFILE_VM_TOL = 0.01
#: ... and ends at the root of the profile model of the point it evaluated once that
#: model is within this many nats of the cut-off and the nuisance Newton decrement is
#: below it (the model is exact to second order there: on 16 two-species genes the ends
#: moved by at most 0.007 in log, median < 1e-5, against stopping at 0.01 nats at the
#: point itself, and a well-behaved end took one evaluation instead of two)
PROFILE_VM_ACCEPT = 0.05
#: evaluations (value, score, information) the iteration may spend on one end before
#: the bracketing search with re-maximised nuisance takes over
PROFILE_VM_MAX_EVAL = 12
#: a step of the iteration that lands more than this many nats below the cut-off is halved
PROFILE_VM_OVERSHOOT = 1.0
#: largest change of any log-rate coordinate in one step of the iteration
PROFILE_VM_MAX_STEP = 2.0
