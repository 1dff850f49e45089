"""General mass-action reaction networks: exact simulation with path scores.

A :class:`MassActionNetwork` holds species, reactions (reactant and product
stoichiometry) and named rate constants. Its :meth:`~MassActionNetwork.simulate`
runs Gillespie's direct method (compiled, parallel over cells, one random
stream per cell) and can return the path score of every rate constant,

    d log p(path) / d k = sum over reactions j using k of  N_j / k - int_0^t h_j(x_s) ds,

where N_j counts firings of reaction j and h_j is its combinatorial
mass-action factor (prod_s C(x_s, nu_js)), so that the propensity is k h_j.
Several reactions may share one rate constant (e.g. the steps of a chain).

Ready-made models: :func:`telegraph_model`, :func:`multistate_model` (a chain
of K off states before the on state: refractory promoters),
:func:`labelled_model` (new and old molecules during a labelling pulse) and
:func:`constitutive_model`.

Example
-------
>>> from telegraph.network import MassActionNetwork
>>> net = MassActionNetwork(
...     species=["G_off", "G_on", "M"],
...     reactions=[("G_off -> G_on", "k_on"), ("G_on -> G_off", "k_off"),
...                ("G_on -> G_on + M", "k_syn"), ("M -> 0", "k_deg")],
...     rates={"k_on": 0.5, "k_off": 2.0, "k_syn": 50.0, "k_deg": 1.0},
...     initial={"G_off": 1}, measured=["M"])
>>> x = net.simulate(n_cells=100, t=10.0, seed=0)
>>> x.shape                      # cells x species
(100, 3)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .kernels import ssa as _k
from .ssa import _capture, _kernel_array, _n_cells, _seed_parts, _times

__all__ = ["Reaction", "MassActionNetwork", "telegraph_model", "multistate_model",
           "constitutive_model", "labelled_model"]

_EMPTY = {"", "0", "∅", "Ø", "nothing", "None"}
_TERM = re.compile(r"^\s*(\d+)?\s*\*?\s*([A-Za-z_][A-Za-z0-9_.]*)\s*$")


def _parse_side(text: str) -> dict[str, int]:
    text = text.strip()
    if text in _EMPTY:
        return {}
    out: dict[str, int] = {}
    for term in text.split("+"):
        m = _TERM.match(term)
        if not m:
            raise ValueError(f"cannot parse reaction term {term.strip()!r}: write terms like "
                             "'M', '2 M' or '2*M', joined by '+', and '0' for nothing")
        coef = int(m.group(1)) if m.group(1) else 1
        out[m.group(2)] = out.get(m.group(2), 0) + coef
    return out


@dataclass(frozen=True)
class Reaction:
    """One mass-action reaction.

    Parameters
    ----------
    reactants, products : mapping species -> stoichiometric coefficient
        Molecules consumed and produced (a catalyst appears on both sides).
    rate : str
        Name of the rate constant. The propensity is
        ``rate * prod_s C(x_s, reactants[s])`` per unit time.
    """

    reactants: Mapping[str, int]
    products: Mapping[str, int]
    rate: str

    @classmethod
    def parse(cls, text: str, rate: str) -> "Reaction":
        """From ``"A + 2 B -> C"`` (``0`` or ``∅`` for nothing)."""
        if "->" not in text:
            raise ValueError(f"reaction {text!r} has no '->' between reactants and products")
        left, right = text.split("->", 1)
        return cls(_parse_side(left), _parse_side(right), rate)

    def __str__(self):
        def side(d):
            return " + ".join((f"{v} {k}" if v != 1 else k) for k, v in d.items()) or "0"
        return f"{side(self.reactants)} -> {side(self.products)}  [{self.rate}]"


@dataclass
class MassActionNetwork:
    """A stochastic mass-action reaction network.

    Parameters
    ----------
    species : sequence of str
        Species names; the state is the vector of their copy numbers.
    reactions : sequence of Reaction or (str, rate_name) pairs
        E.g. ``("G_on -> G_on + M", "k_syn")``.
    rates : mapping rate_name -> float
        Value of every rate constant named by a reaction, per unit time
        (for a reaction of total order r: per unit time per molecule^(r-1)).
    initial : mapping species -> int, optional
        Default initial state (unlisted species start at 0).
    measured : sequence of str, optional
        Species thinned by capture when simulated with ``capture < 1`` (the
        molecules a sequencing experiment counts, e.g. mRNA). Default: none.
    name : str, optional
    """

    species: Sequence[str]
    reactions: Sequence
    rates: Mapping[str, float]
    initial: Mapping[str, int] = field(default_factory=dict)
    measured: Sequence[str] = ()
    name: str = "network"

    def __post_init__(self):
        self.species = list(self.species)
        if len(set(self.species)) != len(self.species):
            raise ValueError("species names must be unique")
        if not self.species:
            raise ValueError("a network needs at least one species")
        reacs = []
        for r in self.reactions:
            if isinstance(r, Reaction):
                reacs.append(r)
            elif isinstance(r, (tuple, list)) and len(r) == 2 and isinstance(r[0], str):
                reacs.append(Reaction.parse(r[0], r[1]))
            else:
                raise TypeError("each reaction must be a Reaction or a ('A -> B', 'rate_name') "
                                f"pair, got {r!r}")
        if not reacs:
            raise ValueError("a network needs at least one reaction")
        self.reactions = reacs
        index = {s: i for i, s in enumerate(self.species)}
        for r in reacs:
            for s, v in list(r.reactants.items()) + list(r.products.items()):
                if s not in index:
                    raise ValueError(f"reaction '{r}' uses species {s!r}, which is not in "
                                     f"species={self.species}")
                if int(v) != v or v < 0:
                    raise ValueError(f"stoichiometric coefficients must be non-negative "
                                     f"integers, got {v!r} in '{r}'")
        self.rates = {k: float(v) for k, v in dict(self.rates).items()}
        self._check_rates(self.rates)
        self.initial = dict(self.initial)
        for s in self.initial:
            if s not in index:
                raise ValueError(f"initial state names unknown species {s!r}")
        self.measured = list(self.measured)
        for s in self.measured:
            if s not in index:
                raise ValueError(f"measured names unknown species {s!r}")

    # -- structure -----------------------------------------------------------------
    @property
    def parameters(self) -> list[str]:
        """Rate-constant names in order of first use: the score's last axis."""
        seen: list[str] = []
        for r in self.reactions:
            if r.rate not in seen:
                seen.append(r.rate)
        return seen

    def _check_rates(self, rates):
        for name in self.parameters:
            if name not in rates:
                raise ValueError(f"no value for rate constant {name!r}; give rates="
                                 f"{{{name!r}: value, ...}}")
            v = rates[name]
            if not np.isfinite(v) or v <= 0:
                raise ValueError(f"rate constant {name!r} must be finite and > 0, got {v!r}")

    def stoichiometry(self) -> tuple[np.ndarray, np.ndarray]:
        """(reactant, net change) matrices, reactions x species."""
        idx = {s: i for i, s in enumerate(self.species)}
        R, S = len(self.reactions), len(self.species)
        nu = np.zeros((R, S), np.int64)
        delta = np.zeros((R, S), np.int64)
        for j, r in enumerate(self.reactions):
            for s, v in r.reactants.items():
                nu[j, idx[s]] += int(v)
                delta[j, idx[s]] -= int(v)
            for s, v in r.products.items():
                delta[j, idx[s]] += int(v)
        return nu, delta

    def __str__(self):
        lines = [f"{self.name}: species {self.species}"]
        lines += [f"  {r}  = {self.rates.get(r.rate)}" for r in self.reactions]
        return "\n".join(lines)

    # -- simulation ------------------------------------------------------------------
    def _initial_array(self, initial, n_cells):
        S = len(self.species)
        if initial is None:
            initial = self.initial
        if isinstance(initial, Mapping):
            x = np.zeros(S, np.int64)
            for s, v in initial.items():
                if s not in self.species:
                    raise ValueError(f"initial state names unknown species {s!r}")
                x[self.species.index(s)] = int(v)
            arr = np.broadcast_to(x, (n_cells, S))
        else:
            a = np.asarray(initial)
            if a.ndim == 0 or a.shape[-1] != S:
                raise ValueError(f"initial must be a mapping species -> count or an integer "
                                 f"array with last axis {S} (species {self.species}), got "
                                 f"shape {a.shape}")
            if not np.all(np.mod(a, 1) == 0):
                raise ValueError("initial copy numbers must be integers")
            try:
                arr = np.broadcast_to(a, (n_cells, S))
            except ValueError:
                raise ValueError(f"initial array of shape {a.shape} does not broadcast to "
                                 f"(n_cells, n_species) = {(n_cells, S)}") from None
        arr = _kernel_array(arr, np.int64)
        if np.any(arr < 0):
            raise ValueError("initial copy numbers must be >= 0")
        return arr

    def simulate(self, n_cells, t, *, rates=None, initial=None, capture=1.0, seed=None,
                 score=False, species=None, return_events=False):
        """Simulate independent cells with Gillespie's direct method.

        Parameters
        ----------
        n_cells : int
            Number of independent paths.
        t : float or 1-D array
            Sample time(s) >= 0, sorted; same time unit as the rates.
        rates : mapping, optional
            Overrides of rate constants for this run (per unit time).
        initial : mapping species -> int, or int array (S,) or (n_cells, S), optional
            State at time 0 (default: the network's ``initial``).
        capture : float or array (n_cells,)
            Capture efficiency in (0, 1]; species in ``measured`` are recorded
            as Binomial(copy number, capture). No effect on the scores.
        seed : None, int, SeedSequence or Generator
            Same seed, same output, for any number of threads.
        score : bool
            Also return the path score for every rate constant (order
            :attr:`parameters`) on [0, t].
        species : sequence of str, optional
            Species to return (default all, in :attr:`species` order).
        return_events : bool
            Also return the number of reactions fired per cell.

        Returns
        -------
        counts : int64 array, shape (n_cells, n_species) or with a leading
            time axis (n_times, n_cells, n_species) when ``t`` is an array.
        scores : float64 array, shape counts.shape[:-1] + (n_parameters,),
            only if ``score=True``.
        events : int64 array (n_cells,), only if ``return_events=True``.
        """
        n_cells = _n_cells(n_cells)
        times, scalar_t = _times(t)
        cap = _capture(capture, n_cells)
        all_rates = dict(self.rates)
        if rates is not None:
            unknown = set(rates) - set(self.parameters)
            if unknown:
                raise ValueError(f"unknown rate constant(s) {sorted(unknown)}; this network's "
                                 f"are {self.parameters}")
            all_rates.update({k: float(v) for k, v in rates.items()})
        self._check_rates(all_rates)
        params = self.parameters
        rate_vec = np.array([all_rates[r.rate] for r in self.reactions], dtype=float)
        nu, delta = self.stoichiometry()
        R, S = nu.shape
        # Sparse rows: only the species a reaction reads / changes.
        L1 = max(1, int((nu > 0).sum(axis=1).max()))
        L2 = max(1, int((delta != 0).sum(axis=1).max()))
        r_species = np.zeros((R, L1), np.int64)
        r_order = np.zeros((R, L1), np.int64)
        n_react = np.zeros(R, np.int64)
        c_species = np.zeros((R, L2), np.int64)
        c_delta = np.zeros((R, L2), np.int64)
        n_chg = np.zeros(R, np.int64)
        for j in range(R):
            sp_ = np.flatnonzero(nu[j])
            n_react[j] = sp_.size
            r_species[j, :sp_.size] = sp_
            r_order[j, :sp_.size] = nu[j, sp_]
            sc = np.flatnonzero(delta[j])
            n_chg[j] = sc.size
            c_species[j, :sc.size] = sc
            c_delta[j, :sc.size] = delta[j, sc]
        # Dependency graph: reaction j changes species that reaction d reads.
        reads = nu > 0
        changes = delta != 0
        dep = [np.flatnonzero(reads[:, changes[j]].any(axis=1)) for j in range(R)]
        dep_ptr = np.zeros(R + 1, np.int64)
        dep_ptr[1:] = np.cumsum([d.size for d in dep])
        dep_idx = (np.concatenate(dep) if dep_ptr[-1] else np.zeros(1)).astype(np.int64)
        x0 = self._initial_array(initial, n_cells)
        measured = np.array([1 if s in self.measured else 0 for s in self.species], np.int64)
        key, _ = _seed_parts(seed)
        K = times.shape[0]
        counts = np.empty((K, n_cells, S), np.int64)
        scores = np.empty((K, n_cells, R)) if score else np.empty((0, 0, 0))
        events = np.empty(n_cells, np.int64)
        _k.network_paths(rate_vec, r_species, r_order, n_react, c_species, c_delta, n_chg,
                         dep_ptr, dep_idx, x0, times, cap, measured, key, bool(score), counts, scores, events)
        if species is not None:
            try:
                cols = [self.species.index(s) for s in species]
            except ValueError:
                raise ValueError(f"species must be among {self.species}, got {list(species)}") \
                    from None
            counts = counts[..., cols]
        out = [counts[0] if scalar_t else counts]
        if score:
            # Reactions sharing a rate constant add their score terms.
            P = len(params)
            which = np.array([params.index(r.rate) for r in self.reactions])
            pscore = np.zeros(scores.shape[:-1] + (P,))
            for j in range(R):
                pscore[..., which[j]] += scores[..., j]
            out.append(pscore[0] if scalar_t else pscore)
        if return_events:
            out.append(events)
        return out[0] if len(out) == 1 else tuple(out)


def telegraph_model(k_on, k_off, k_syn, k_deg=1.0):
    """The two-state telegraph model as a network.

    Species ``G_off, G_on, M``; rate constants ``k_on, k_off, k_syn, k_deg``
    (per unit time); starts with the promoter off and no mRNA; ``M`` is
    measured.
    """
    return MassActionNetwork(
        species=["G_off", "G_on", "M"],
        reactions=[("G_off -> G_on", "k_on"), ("G_on -> G_off", "k_off"),
                   ("G_on -> G_on + M", "k_syn"), ("M -> 0", "k_deg")],
        rates={"k_on": k_on, "k_off": k_off, "k_syn": k_syn, "k_deg": k_deg},
        initial={"G_off": 1}, measured=["M"], name="telegraph")


def multistate_model(k_on, k_off, k_syn, k_deg=1.0, *, n_off=2):
    """Refractory promoter: a chain of ``n_off`` off states before the on state.

    ``G_off1 -> G_off2 -> ... -> G_off{K} -> G_on -> G_off1``, transcription
    ``G_on -> G_on + M`` and degradation ``M -> 0``. Rates per unit time.

    Parameters
    ----------
    k_on : float or sequence of length n_off
        Rate of each forward step of the off chain. A scalar is one shared rate
        constant named ``k_on`` (mean off time ``n_off / k_on``; the off time is
        Erlang, less variable than the telegraph model's exponential). A
        sequence gives step-specific constants ``k_on1 ... k_on{K}``.
    k_off, k_syn, k_deg : float
        Inactivation, transcription (while on) and mRNA degradation rates.
    n_off : int
        Number K >= 1 of off states; K = 1 is the telegraph model.
    """
    if int(n_off) != n_off or n_off < 1:
        raise ValueError(f"n_off must be a positive integer, got {n_off!r}")
    n_off = int(n_off)
    offs = [f"G_off{i + 1}" for i in range(n_off)]
    steps = np.atleast_1d(np.asarray(k_on, dtype=float))
    if steps.size == 1 and np.ndim(k_on) == 0:
        names = ["k_on"] * n_off
        rates = {"k_on": float(steps[0])}
    elif steps.size == n_off:
        names = [f"k_on{i + 1}" for i in range(n_off)]
        rates = dict(zip(names, map(float, steps)))
    else:
        raise ValueError(f"k_on must be a scalar or have n_off={n_off} step rates, got "
                         f"{steps.size}")
    chain = offs + ["G_on"]
    reactions = [(f"{chain[i]} -> {chain[i + 1]}", names[i]) for i in range(n_off)]
    reactions += [("G_on -> G_off1", "k_off"), ("G_on -> G_on + M", "k_syn"),
                  ("M -> 0", "k_deg")]
    rates.update({"k_off": k_off, "k_syn": k_syn, "k_deg": k_deg})
    return MassActionNetwork(species=offs + ["G_on", "M"], reactions=reactions,
                             rates=rates, initial={"G_off1": 1}, measured=["M"],
                             name=f"multistate(K={n_off})")


def labelled_model(k_on, k_off, k_syn, k_deg=1.0):
    """The telegraph model during a metabolic-labelling pulse.

    Species ``G_off, G_on, new, old``: molecules made while the label is
    present are ``new``; ``old`` are those present when the pulse started
    (give them in ``initial``, e.g. drawn from the stationary law). Both
    degrade at ``k_deg``; rate constants per unit time. Starts with the
    promoter off and no molecules; nothing is ``measured`` (capture and the
    misclassification of new molecules are applied by the caller,
    :func:`telegraph.study.sample_ssa_labelled`).
    """
    return MassActionNetwork(
        species=["G_off", "G_on", "new", "old"],
        reactions=[("G_off -> G_on", "k_on"), ("G_on -> G_off", "k_off"),
                   ("G_on -> G_on + new", "k_syn"), ("new -> 0", "k_deg"),
                   ("old -> 0", "k_deg")],
        rates={"k_on": k_on, "k_off": k_off, "k_syn": k_syn, "k_deg": k_deg},
        initial={"G_off": 1}, name="labelled")


def constitutive_model(k_syn, k_deg=1.0):
    """Constitutive expression: ``0 -> M`` at ``k_syn``, ``M -> 0`` at ``k_deg`` per
    molecule (per unit time). Starts at M = 0; stationary law Poisson(k_syn/k_deg)."""
    return MassActionNetwork(species=["M"], reactions=[("0 -> M", "k_syn"),
                                                       ("M -> 0", "k_deg")],
                             rates={"k_syn": k_syn, "k_deg": k_deg}, measured=["M"],
                             name="constitutive")
