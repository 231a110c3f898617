r"""What every workflow shares: argument checks, the saved times, the learning rule of the
training phases, the Monte-Carlo error of a start carried through training, and the finite-N
arm runner (real weights, real masks, online SGD, and the ODE from the same real starts).

Seeds: simulation ``s`` trains from ``OrderParams.draw_weights(N, K, M, v_star, s)`` with the SGD
stream of ``s``; masks drawn for it use ``SeedSequence([s, 1])``; every retraining of it uses
the SGD stream of ``s + RETRAIN_SEED_OFFSET`` (common random numbers across arms).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

import numpy as np

from .._stats import sem
from ..activations import Activation
from ..grid import save_times
from ..ode.dynamics import integrate
from ..options import OPTIONS, Control, Dynamics, Ensemble, Network, Option, Output, Record, gather
from ..pruning.finite_edges import edge_mask
from ..pruning.reweight import reweight_edges_finite
from ..sim import SimulationEnsemble, SimulationResult, simulate
from ..sparse import SparseOrderParams
from ..state import OrderParams

__all__ = ["RETRAIN_SEED_OFFSET", "MC_REPLICAS", "WORKFLOW_DEFAULTS", "Table", "time_grid", "Rule",
           "Start", "FiniteArms", "option", "gather_options", "changed", "seeds_of", "LIMIT",
           "FINITE"]

#: retraining of simulation seed ``s`` uses the SGD stream of ``s + RETRAIN_SEED_OFFSET``
RETRAIN_SEED_OFFSET = 1_000_003
#: independent sub-samples of a coordinate Monte Carlo map; the spread of the eps_g curves
#: integrated from them gives the standard error of eps_g at every time (:func:`mc_se`)
MC_REPLICAS = 8


# ---------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------
#: The options whose default in the workflows differs from the option table
#: (:data:`odeprune.options.OPTIONS`), declared once here and applied wherever a workflow takes
#: the option: ``eta`` -- the paper's learning rate 0.5 (the table has no default: ``integrate``
#: and ``simulate`` need one); ``seeds`` -- a finite-N workflow runs eight networks, seeds 0..7
#: (the table's default: the one seed); ``n_test`` -- the per-seed engines of IMP and gradual
#: pruning (:func:`~odeprune.workflows.schedules.imp_finite`,
#: :func:`~odeprune.workflows.schedules.gradual_finite`) measure eps_g from the weights' order
#: parameters, so their simulations keep a token test set of 2 inputs (the table's: 10 000).
WORKFLOW_DEFAULTS = {"eta": 0.5, "seeds": tuple(range(8)), "n_test": 2}


#: the options of a workflow's table (checked by the table's vocabulary)
TABLE_OPTIONS = {o.name: o for o in (
    Option("report", (10.0, 100.0, 1000.0), "times of the table's rows (the run's end is "
           "always added)", "object"),
    Option("ode", True, "at finite N, the ODE from the same real start beside every curve",
           "bool"),
)}


@dataclass(frozen=True)
class Table(Record):
    """What a workflow's table reports: ``report``, the times of its rows (the run's end is
    always added), and ``ode`` (finite N): beside every finite-N curve, the order-parameter ODE
    integrated from the exact order parameters of the same real start (``eg_ode`` and the
    paired gap: the finite-N effect alone). Passed as flat keywords (``report=[10, 100]``,
    ``ode=False``) or whole (``table=Table(...)``)."""

    TABLE = TABLE_OPTIONS

    report: tuple = TABLE_OPTIONS["report"].default
    ode: bool = TABLE_OPTIONS["ode"].default

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "report", tuple(times("report", self.report).tolist()))


#: the records of a workflow in the limit, and at finite N
LIMIT = (Dynamics, Output, Control, Table)
FINITE = (Dynamics, Output, Control, Table, Network, Ensemble)


def seeds_of(ensemble: Ensemble) -> list[int]:
    """The seeds of a finite-N workflow: ``ensemble.seeds``, or the workflows' default
    (:data:`WORKFLOW_DEFAULTS`) when None (an ``Ensemble`` passed whole without seeds)."""
    return list(WORKFLOW_DEFAULTS["seeds"] if ensemble.seeds is None else ensemble.seeds)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. an array against None
        return False


def changed(record) -> dict:
    """The fields of ``record`` that differ from their defaults (as the record normalises
    them): what a workflow passes on to an engine, so that a default stays the engine's."""
    defaults = {f.name: f.default for f in fields(record) if f.default is not MISSING}
    base = replace(record, **defaults)
    return {n: getattr(record, n) for n in defaults
            if not _same(getattr(record, n), getattr(base, n))}


def gather_options(where: str, options: dict, records: tuple, uses: Sequence[str]) -> list:
    """The ``records`` of the workflow ``where`` from its ``**options``
    (:func:`odeprune.options.gather`: flat keywords or records passed whole), with
    :data:`WORKFLOW_DEFAULTS` for the options it ``uses`` that were not given. An option of
    these records that the workflow has no use for must keep its default: one that is set is
    refused (``TypeError``, as an unexpected keyword), before any work."""
    kw = dict(options)
    for name, default in WORKFLOW_DEFAULTS.items():
        owner = next((r for r in records if name in {f.name for f in fields(r)}), None)
        if name in uses and owner is not None and owner.__name__.lower() not in kw:
            kw.setdefault(name, default)
    recs = gather(where, kw, records)
    unused = sorted(n for r in recs for n in changed(r) if n not in uses)
    if unused:
        raise TypeError(f"{where}() got option(s) it has no use for: {unused}; its options are "
                        f"{sorted(uses)}")
    return recs


def option(name: str, value: Any) -> Any:
    """``value`` of the shared option ``name`` checked by its one rule (:mod:`odeprune.options`)."""
    return OPTIONS[name].check(value)


def times(name: str, values: Any) -> np.ndarray:
    """A non-empty list of positive times, sorted and unique."""
    try:
        a = np.atleast_1d(np.asarray(values, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(f"{name}={values!r} must be a list of positive numbers") from None
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"{name}={values!r} must be a non-empty list of positive numbers")
    return np.unique(a)


def check_state(state) -> OrderParams:
    if not isinstance(state, OrderParams):
        raise ValueError(f"state must be an OrderParams (e.g. a LearningCurve's .final), got "
                         f"{type(state).__name__}")
    return state


def check_scope(scope: str) -> str:
    if scope not in ("row", "global"):
        raise ValueError(f"scope={scope!r} must be 'row' (each unit keeps a fraction c) or "
                         "'global' (fraction c of the whole first layer)")
    return scope


def simulations(trained) -> list[SimulationResult]:
    """The runs of ``trained`` (a result, an ensemble or a list of results)."""
    if isinstance(trained, SimulationResult):
        return [trained]
    if isinstance(trained, SimulationEnsemble):
        return list(trained.runs)
    runs = list(trained)
    if not runs or not all(isinstance(r, SimulationResult) for r in runs):
        raise ValueError("trained must be a SimulationResult, a SimulationEnsemble or a list of "
                         "SimulationResult (odeprune.simulate)")
    return runs


# ---------------------------------------------------------------------------------------------
# saved times
# ---------------------------------------------------------------------------------------------
def time_grid(alpha_max: float, report: Sequence[float] = (), n: int = 40) -> np.ndarray:
    """Saved times of a workflow: :func:`odeprune.grid.save_times` with ``n`` log-spaced times
    from ``min(1, alpha_max/100)``, plus 0, ``alpha_max`` and the ``report`` times (those
    <= ``alpha_max``)."""
    return save_times(alpha_max, n, report=report)


def report_grid(report, alpha_max: float, save_at) -> tuple[np.ndarray, np.ndarray]:
    """The report times (0, those of ``report`` up to ``alpha_max``, and ``alpha_max``) and the
    saved times: :func:`time_grid`, or ``save_at`` plus the report times."""
    rep = np.unique(np.concatenate([[0.0], [a for a in times("report", report) if a <= alpha_max],
                                    [alpha_max]]))
    return rep, with_report(alpha_max, rep, save_at)


def with_report(alpha_max: float, report: np.ndarray, save_at) -> np.ndarray:
    """The saved times: :func:`time_grid` with ``report``, or ``save_at`` plus ``report``."""
    if save_at is None:
        return time_grid(alpha_max, report)
    return np.unique(np.concatenate([np.asarray(save_at, float), report]))


# ---------------------------------------------------------------------------------------------
# the learning rule and the starts
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """The learning rule of every training phase of a workflow (``docs/theory.md`` §4):
    ``dynamics``, the :class:`odeprune.options.Dynamics` record that :func:`odeprune.integrate`
    and :func:`odeprune.simulate` take (checked by the option table), and ``activation`` (finite
    N only): the simulation's; None: the simulation default."""

    dynamics: Dynamics
    activation: str | None = None

    @classmethod
    def of(cls, eta: float, eta_v: float | None = None, sigma: float = 0.0,
           train_second_layer: bool = True, activation: str | None = None) -> Rule:
        """The rule of a workflow's keywords (each checked by :mod:`odeprune.options`)."""
        return cls(Dynamics(eta=eta, eta_v=eta_v, sigma=sigma,
                            train_second_layer=train_second_layer), activation)

    @property
    def eta(self) -> float:
        return self.dynamics.eta

    @property
    def eta_v(self) -> float | None:
        return self.dynamics.eta_v

    @property
    def sigma(self) -> float:
        return self.dynamics.sigma

    def integrate(self, state, alpha_max: float, save_at):
        """The order-parameter ODE from ``state`` (dense or per-class) to ``alpha_max``."""
        return integrate(state, alpha_max=alpha_max, save_at=save_at, progress=False,
                         **self.dynamics.as_dict())

    def simulate(self, start: Start, alpha_max: float, save_at, seed: int) -> SimulationResult:
        """Online SGD from the real weights of ``start`` (its mask fixed), no test set."""
        K, N = start.w.shape
        extra = {} if self.activation is None else dict(activation=self.activation)
        return simulate(N, K, start.w_star.shape[0], None, alpha_max, save_at,
                        init=(start.w, start.w_star, start.v), mask=start.mask, seed=seed,
                        n_test=0, progress=False, v_star=start.v_star, dynamics=self.dynamics,
                        **extra)


@dataclass(frozen=True, eq=False)
class Start:
    """Real weights a finite-N arm trains from: ``w`` (K, N), ``w_star`` (M, N), ``v`` (K,),
    ``v_star`` (M,), an optional 0/1 ``mask`` (K, N) kept fixed, and the activation of their
    order parameters."""

    w: np.ndarray
    w_star: np.ndarray
    v: np.ndarray
    v_star: np.ndarray
    mask: np.ndarray | None = None
    activation: str = "erf"

    def order_params(self) -> OrderParams | SparseOrderParams:
        """The exact order parameters of these weights (per class when masked, §8)."""
        if self.mask is None:
            return OrderParams.from_weights(self.w, self.w_star, self.v, self.v_star,
                                            activation=self.activation)
        return SparseOrderParams.from_weights(self.w, self.w_star, self.v, self.v_star,
                                              self.mask, activation=self.activation)


# ---------------------------------------------------------------------------------------------
# the Monte Carlo error of a start, carried through training
# ---------------------------------------------------------------------------------------------
def replica_seed(seed, b: int) -> np.random.SeedSequence:
    """Seed of Monte Carlo replica ``b``: the same for every arm of a workflow (common random
    numbers), independent of the full sample's ``seed``."""
    return np.random.SeedSequence([int(seed), 3, b])


def mc_se(make_start: Callable, seed, n_samples: int, rule: Rule, alpha_max: float, grid,
          n_replicas: int = MC_REPLICAS) -> np.ndarray:
    r"""Standard error of :math:`\epsilon_g` along training caused by the coordinate Monte
    Carlo of a start.

    ``make_start(seed, n_samples) -> per-class state`` is the Monte Carlo map. The start of an
    arm is the map on ``n_samples`` coordinates; its sampling error moves the whole curve. Split
    into ``n_replicas`` independent sub-samples of ``n_samples / n_replicas`` coordinates (seeds
    :func:`replica_seed`, shared by the arms), each integrated over ``grid``; the curves'
    spread over ``sqrt(n_replicas)`` is the standard error of their mean, which estimates the
    one of the full-sample curve (same number of coordinates; to first order in the sampling
    error the curve is linear in the start). Calibrated against the seed-to-seed spread in
    ``tests/test_hostile_numerics.py``. Shape ``(len(grid),)``."""
    n_sub = max(n_samples // n_replicas, 1)
    E = np.array([np.asarray(rule.integrate(make_start(replica_seed(seed, b), n_sub),
                                            alpha_max, grid).eg)
                  for b in range(n_replicas)])
    return E.std(axis=0, ddof=1) / np.sqrt(n_replicas)


# ---------------------------------------------------------------------------------------------
# finite N: pruning real weights, and the arms over seeds
# ---------------------------------------------------------------------------------------------
def prune_edges(start: Start, method: str, c: float, reweight: str, rng: np.random.Generator,
                n_samples: int, act: Activation) -> Start:
    """The masked start of ``start`` pruned by the finite-N edge rule ``method``
    (:func:`odeprune.pruning.finite_edges.edge_mask`) and reweighted (:func:`odeprune.pruning.reweight.reweight_edges_finite`
    on ``n_samples`` inputs drawn from ``rng`` after the mask)."""
    w, v = start.w, start.v
    mask = edge_mask(w, method, c, seed=rng, v=v, w_star=start.w_star, v_star=start.v_star,
                     n_samples=n_samples, activation=act.name)[0]
    X = (rng.standard_normal((n_samples, w.shape[1])) if reweight in ("rescale", "refit")
         else None)
    wp, vp = reweight_edges_finite(w, mask, v, start.w_star, start.v_star, reweight, X, act)
    return Start(wp, start.w_star, vp, start.v_star, mask, start.activation)


@dataclass
class FiniteArms:
    """The finite-N arms of a workflow over seeds: per arm the simulations, their exact
    :math:`\\epsilon_g` (from the real weights' order parameters) and, with ``ode``, the ODE
    integrated from the exact order parameters of the same real starts (NaN otherwise)."""

    workflow: str
    names: Sequence[str]
    ode: bool
    sims: dict = field(default_factory=dict)
    E: dict = field(default_factory=dict)
    O: dict = field(default_factory=dict)

    def run(self, name: str, rule: Rule, start: Start, alpha_max: float, grid, seed: int):
        """Train arm ``name`` from ``start`` by SGD (stream ``seed``) and, with ``ode``, the
        ODE from the same start on the saved times of the simulation."""
        sim = rule.simulate(start, alpha_max, grid, seed)
        self.sims.setdefault(name, []).append(sim)
        self.E.setdefault(name, []).append(np.asarray(sim.eg))
        self.O.setdefault(name, []).append(
            np.asarray(rule.integrate(start.order_params(), alpha_max,
                                      np.asarray(sim.alpha)).eg) if self.ode
            else np.full(len(sim.alpha), np.nan))
        return sim

    def summarise(self, report, N: int, params_of: Callable[[str], dict]):
        """``(alpha, eg, eg_se, eg_ode, table)`` per arm: the saved times, per-seed
        :math:`\\epsilon_g` (n_seeds, n), the standard error over seeds, the ODE curves (when
        run) and one table row per report time (mean and standard error over seeds, the ODE
        from the same starts and the paired gap)."""
        alpha, eg, se, eg_ode, table = {}, {}, {}, {}, []
        for name in self.names:
            A = np.asarray(self.sims[name][0].alpha)
            Ea, Oa = np.array(self.E[name]), np.array(self.O[name])
            alpha[name], eg[name], se[name] = A, Ea, sem(Ea)
            if self.ode:
                eg_ode[name] = Oa
            for a in report:
                j = int(np.argmin(np.abs(A - a)))
                col, ode = Ea[:, j], Oa[:, j]
                table.append(dict(workflow=self.workflow, layer="finite", arm=name,
                                  **params_of(name), alpha=float(A[j]), eg=float(col.mean()),
                                  eg_se=float(sem(col)), eg_ode=float(ode.mean()),
                                  eg_ode_se=float(sem(ode)), gap=float((col - ode).mean()),
                                  gap_se=float(sem(col - ode)), n=col.size, N=N))
        return alpha, eg, se, eg_ode, table
