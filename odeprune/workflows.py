r"""Prune, then train: retraining, pruning at initialisation and lottery tickets.

Three protocols a pruning practitioner runs, each in the thermodynamic limit (order parameters,
``docs/theory.md`` §4, §6, §8, §9) and at finite N (real weights, real masks, online SGD):

- :func:`retrain` / :func:`retrain_finite` -- prune a trained student (every node method, with
  or without reweighting; every edge rule) and train the pruned network again for ``Δα``. A
  node-pruned network is a smaller dense network (its pruned ``OrderParams`` integrated by
  :func:`odeprune.integrate`); an edge-pruned network keeps its mask while it trains (a
  :class:`~odeprune.sparse.SparseOrderParams`, one class per mask pattern).
- :func:`prune_at_init` / :func:`prune_at_init_finite` -- prune the random initial network
  (random, magnitude, SNIP; with or without the variance-restoring row rescale of Hayou et al.
  2021) and train the sparse network from ``alpha = 0``, beside the dense network.
- :func:`lottery_ticket` / :func:`lottery_ticket_finite` -- train densely to ``alpha_T``, take the
  magnitude mask of the trained weights, rewind the kept weights to their values at
  ``alpha_rewind`` and train again (Frankle & Carbin 2019; Zhang et al. 2023), beside the dense
  network, a random mask, the magnitude mask of the rewound weights themselves and fine-tuning of
  the pruned trained network. In the limit the ticket's per-class state comes from the joint
  Gaussian law of one coordinate ``(w(alpha_rewind), w(alpha_T), w*)`` (two-time overlaps, §9).
  :func:`iterative_magnitude_pruning_finite` runs several rounds at finite N.

Every function returns a :class:`WorkflowResult`: the learning curves of each *arm* (one pruned
network or protocol) on the time since (re)training started, and a tidy :attr:`~WorkflowResult.
table` (one row per arm and reported time; :meth:`~WorkflowResult.to_csv`). The finite-N
functions take trained simulations (``odeprune.simulate``) or seeds, run the same protocol on the
real weights, and also integrate the ODE from the exact order parameters of every real pruned
network (``eg_ode``): the gap between the two is the finite-N effect alone.

Seeds: simulation ``s`` trains from ``OrderParams.draw_weights(N, K, M, v_star, s)`` with the SGD
stream of ``s``; masks drawn for it use ``SeedSequence([s, 1])``; every retraining of it uses
the SGD stream of ``s + RETRAIN_SEED_OFFSET`` (common random numbers across arms).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _io, schedules
from ._stats import sem
from ._validate import check_int, check_seed
from .activations import get_activation
from .coords import CoordinateLaw, decide
from .ode.dynamics import integrate
from .ode.progress import make_bar, progress_bar, want_progress
from .pruning import node, prune, prune_weights, registry
from .pruning._api import check_method_args
from .pruning.edge import check_c
from .pruning.finite_edges import edge_mask
from .pruning.sparse_maps import sparse_state
from .sim import SimulationEnsemble, SimulationResult, simulate
from .sparse import SparseOrderParams
from .state import OrderParams

__all__ = ["WorkflowResult", "retrain", "retrain_finite", "prune_at_init",
           "prune_at_init_finite", "lottery_ticket", "lottery_ticket_finite",
           "iterative_magnitude_pruning", "iterative_magnitude_pruning_finite",
           "gradual_magnitude_pruning", "gradual_magnitude_pruning_finite", "table_to_csv", "time_grid", "RETRAIN_SEED_OFFSET",
           "INIT_RULES", "TICKET_ARMS", "ALL_TICKET_ARMS", "MC_REPLICAS"]

#: retraining of simulation seed ``s`` uses the SGD stream of ``s + RETRAIN_SEED_OFFSET``
RETRAIN_SEED_OFFSET = 1_000_003
#: edge rules that prune at initialisation
INIT_RULES = registry.methods("edge")
#: arms of :func:`lottery_ticket` run by default
TICKET_ARMS = ("dense", "ticket", "random", "magnitude_init", "finetune")
#: every arm :func:`lottery_ticket` knows: the defaults and ``reinit`` (the ticket's mask on
#: fresh random weights: the standard control of the lottery-ticket literature)
ALL_TICKET_ARMS = (*TICKET_ARMS, "reinit")
#: independent sub-samples of a coordinate Monte Carlo map; the spread of the eps_g curves
#: integrated from them gives the standard error of eps_g at every time (issue 26 item 9)
MC_REPLICAS = 8


# ---------------------------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------------------------
def safe_label(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in label)


@dataclass(frozen=True, eq=False)
class WorkflowResult:
    r"""Learning curves of the arms of a prune-and-train protocol, and a tidy table.

    Attributes
    ----------
    workflow : str
        ``"retrain"``, ``"prune_at_init"``, ``"lottery_ticket"`` or ``"imp"``.
    layer : str
        ``"limit"`` (order-parameter ODEs) or ``"finite"`` (SGD on real weights at finite N).
    alpha : dict of str to ndarray, shape (n,)
        Per arm, the saved times since (re)training started.
    eg : dict of str to ndarray
        Per arm, :math:`\epsilon_g` (noiseless labels): shape (n,) in the limit (for a random
        node method the mean over its outcomes, weighted by their probabilities), (n_seeds, n) at
        finite N (exact :math:`\epsilon_g` of the real weights' order parameters).
    eg_se : dict of str to ndarray, shape (n,)
        Limit: Monte Carlo standard error of ``eg`` (sampled node subsets; 0 when exact).
        Finite N: the standard error of the mean over seeds.
    eg_ode : dict of str to ndarray, shape (n_seeds, n), or empty
        Finite N only: the ODE integrated from the exact order parameters of each real pruned
        network (per-class for masked ones).
    table : list of dict
        One row per arm and reported time: ``workflow, layer, arm`` and the arm's parameters
        (``method, k, c, reweight, rescale``), ``alpha`` (time since (re)training), ``eg``,
        ``eg_se``, ``n`` (outcomes or seeds), and at finite N ``eg_ode`` and ``N``.
    metadata : dict
        Every parameter, the seeds, the package version.
    curves : dict
        Per arm the underlying results (LearningCurve / SparseLearningCurve, a list of them for a
        random node method, or the finite-N SimulationResult list). Not saved.
    """

    workflow: str
    layer: str
    alpha: dict
    eg: dict
    eg_se: dict
    table: list
    metadata: dict = field(default_factory=dict)
    eg_ode: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict, repr=False)

    KIND = "WorkflowResult"

    @property
    def arms(self) -> list[str]:
        """The arms, in the order they were run."""
        return list(self.alpha)

    def eg_mean(self, arm: str) -> np.ndarray:
        """Mean :math:`\\epsilon_g` of ``arm`` over seeds (finite N) or as stored (limit), (n,)."""
        e = np.asarray(self.eg[arm])
        return e.mean(0) if e.ndim == 2 else e

    def eg_at(self, arm: str, alpha: float) -> float:
        """Mean :math:`\\epsilon_g` of ``arm`` at a saved time (``ValueError`` when not saved)."""
        a = np.asarray(self.alpha[arm])
        idx = np.flatnonzero(np.isclose(a, alpha, rtol=1e-9, atol=1e-9))
        if idx.size == 0:
            raise ValueError(f"alpha={alpha!r} is not a saved time of arm {arm!r}")
        return float(self.eg_mean(arm)[idx[0]])

    def __repr__(self) -> str:
        return (f"WorkflowResult({self.workflow}, {self.layer}, arms={self.arms}, "
                f"rows={len(self.table)})")

    @classmethod
    def combine(cls, results: Sequence[WorkflowResult]) -> WorkflowResult:
        """One result with the arms and table rows of several results of the same workflow and
        layer (e.g. one :func:`retrain` per method); ``metadata["parts"]`` keeps each part's
        parameters."""
        results = list(results)
        if not results:
            raise ValueError("combine needs at least one WorkflowResult")
        first = results[0]
        if any((r.workflow, r.layer) != (first.workflow, first.layer) for r in results):
            raise ValueError("combine takes results of one workflow and one layer")
        alpha, eg, se, ode, curves, table = {}, {}, {}, {}, {}, []
        for r in results:
            clash = set(r.alpha) & set(alpha)
            if clash:
                raise ValueError(f"arms {sorted(clash)} appear in more than one result")
            alpha.update(r.alpha)
            eg.update(r.eg)
            se.update(r.eg_se)
            ode.update(r.eg_ode)
            curves.update(r.curves)
            table += r.table
        meta = dict(parts=[r.metadata for r in results],
                    odeprune_version=_io.package_version())
        return cls(first.workflow, first.layer, alpha, eg, se, table, meta, eg_ode=ode,
                   curves=curves)

    # ---------------------------------------------------------------- files
    def to_csv(self) -> str:
        """The table as CSV text (the union of the rows' columns, in first-seen order)."""
        return table_to_csv(self.table)

    def save(self, path: str | os.PathLike):
        """One ``.npz``: per arm ``alpha.<i>``, ``eg.<i>``, ``eg_se.<i>`` (and ``eg_ode.<i>``);
        the arms, the table and the parameters in the JSON metadata. Atomic."""
        arrays: dict[str, np.ndarray] = {}
        for i, arm in enumerate(self.arms):
            arrays[f"alpha.{i}"] = np.asarray(self.alpha[arm])
            arrays[f"eg.{i}"] = np.asarray(self.eg[arm])
            arrays[f"eg_se.{i}"] = np.asarray(self.eg_se[arm])
            if arm in self.eg_ode:
                arrays[f"eg_ode.{i}"] = np.asarray(self.eg_ode[arm])
        meta = dict(self.metadata, workflow=self.workflow, layer=self.layer, arms=self.arms,
                    table=self.table)
        return _io.write_npz(path, self.KIND, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> WorkflowResult:
        """Read a file written by :meth:`save`."""
        arrays, meta = _io.read_npz(path, cls.KIND)
        try:
            arms = list(meta.pop("arms"))
            table = list(meta.pop("table"))
            workflow, layer = meta.pop("workflow"), meta.pop("layer")
            alpha = {a: arrays[f"alpha.{i}"] for i, a in enumerate(arms)}
            eg = {a: arrays[f"eg.{i}"] for i, a in enumerate(arms)}
            eg_se = {a: arrays[f"eg_se.{i}"] for i, a in enumerate(arms)}
        except KeyError as exc:
            raise ValueError(f"file {str(path)!r} is a truncated {cls.KIND}: missing {exc}"
                             ) from None
        eg_ode = {a: arrays[f"eg_ode.{i}"] for i, a in enumerate(arms) if f"eg_ode.{i}" in arrays}
        for key in ("kind", "format_version"):
            meta.pop(key, None)
        return cls(workflow=workflow, layer=layer, alpha=alpha, eg=eg, eg_se=eg_se, table=table,
                   metadata=meta, eg_ode=eg_ode)


#: rows (dicts) as CSV text (:func:`odeprune._io.rows_to_csv`)
table_to_csv = _io.rows_to_csv


# ---------------------------------------------------------------------------------------------
# checks and small helpers
# ---------------------------------------------------------------------------------------------
def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} must be a number")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a number") from None
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name}={value!r} must be a finite number {'>=' if allow_zero else '>'}"
                         " 0")
    return x


def _times(name: str, values: Any) -> np.ndarray:
    try:
        a = np.atleast_1d(np.asarray(values, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(f"{name}={values!r} must be a list of positive numbers") from None
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"{name}={values!r} must be a non-empty list of positive numbers")
    return np.unique(a)


def _seeds(seeds: Any) -> list[int]:
    try:
        out = [check_seed("seeds[i]", s) for s in seeds]
    except TypeError:
        raise ValueError(f"seeds={seeds!r} must be a list of integers") from None
    if not out or len(set(out)) != len(out):
        raise ValueError(f"seeds={seeds!r} must be distinct integers >= 0 (at least one)")
    return out


def time_grid(alpha_max: float, report: Sequence[float] = (), n: int = 40) -> np.ndarray:
    """Saved times: 0, ``n`` log-spaced times from ``min(1, alpha_max/100)`` to ``alpha_max``,
    and the ``report`` times (those <= ``alpha_max``)."""
    lo = min(1.0, alpha_max / 100.0)
    rep = [a for a in report if a <= alpha_max]
    return np.unique(np.concatenate([[0.0], np.geomspace(lo, alpha_max, n), rep]))


def _report_grid(report, alpha_max: float, save_at) -> tuple[np.ndarray, np.ndarray]:
    """The report times (0, those of ``report`` up to ``alpha_max``, and ``alpha_max``) and the
    saved times: :func:`time_grid`, or ``save_at`` plus the report times."""
    rep = np.unique(np.concatenate([[0.0], [a for a in _times("report", report) if a <= alpha_max],
                                    [alpha_max]]))
    grid = time_grid(alpha_max, rep) if save_at is None else \
        np.unique(np.concatenate([np.asarray(save_at, float), rep]))
    return rep, grid


def _check_state(state) -> OrderParams:
    if not isinstance(state, OrderParams):
        raise ValueError(f"state must be an OrderParams (e.g. a LearningCurve's .final), got "
                         f"{type(state).__name__}")
    return state


def _integrate(state, eta, alpha_max, save_at, common):
    return integrate(state, eta=eta, alpha_max=alpha_max, save_at=save_at,
                     progress=False, **common)


def _replica_seed(seed, b: int) -> np.random.SeedSequence:
    """Seed of Monte Carlo replica ``b``: the same for every arm of a workflow (common random
    numbers), independent of the full sample's ``seed``."""
    return np.random.SeedSequence([int(seed), 3, b])


def _mc_se(make_start, seed, n_samples: int, eta, alpha_max, grid, common,
           n_replicas: int = MC_REPLICAS) -> np.ndarray:
    r"""Standard error of :math:`\epsilon_g` along training caused by the coordinate Monte
    Carlo of a start.

    ``make_start(seed, n_samples) -> per-class state`` is the Monte Carlo map. The start of an
    arm is the map on ``n_samples`` coordinates; its sampling error moves the whole curve. Split
    into ``n_replicas`` independent sub-samples of ``n_samples / n_replicas`` coordinates (seeds
    :func:`_replica_seed`, shared by the arms), each integrated over ``grid``; the curves'
    spread over ``sqrt(n_replicas)`` is the standard error of their mean, which estimates the
    one of the full-sample curve (same number of coordinates; to first order in the sampling
    error the curve is linear in the start). Calibrated against the seed-to-seed spread in
    ``tests/test_hostile_numerics.py``. Shape ``(len(grid),)``."""
    n_sub = max(n_samples // n_replicas, 1)
    E = np.array([np.asarray(_integrate(make_start(_replica_seed(seed, b), n_sub), eta,
                                        alpha_max, grid, common).eg)
                  for b in range(n_replicas)])
    return E.std(axis=0, ddof=1) / np.sqrt(n_replicas)


def _sparse_edge_state(state, method: str, c: float, seed, n_samples: int,
                       reweight: str = "none"):
    """``(per-class state, standard error of its eg)`` of ``state`` pruned by the edge rule
    ``method`` (mask decided by the weights it is applied to) and reweighted
    (:func:`odeprune.pruning.sparse_maps.sparse_state`; exact for ``random_edge``)."""
    sp, se = sparse_state(state, method, c, seed=seed, n_samples=n_samples, reweight=reweight)
    return sp, float(se)


# ---------------------------------------------------------------------------------------------
# retraining after pruning
# ---------------------------------------------------------------------------------------------
def _check_prune_args(method, k, c, reweight, K):
    return check_method_args(method, k, c, reweight, K)


def _arm_label(method: str, k, c, reweight: str) -> str:
    size = f"k={k}" if k is not None else f"c={c:.4g}"
    return f"{method} {size} {reweight}"


def retrain(state: OrderParams, method: str, *, k: int | None = None, c: float | None = None,
            reweight: str = "none", eta: float = 0.5, delta_alphas: Sequence[float] = (10, 100,
                                                                                     1000),
            eta_v: float | None = None, sigma: float = 0.0, train_second_layer: bool = True,
            kernel: str = "Q", seed: int = 0, max_outcomes: int = 64, n_samples: int = 200_000,
            save_at: Sequence[float] | None = None, progress: bool | None = None
            ) -> WorkflowResult:
    r"""Prune a trained student in the limit, then retrain the pruned network.

    Parameters
    ----------
    state : OrderParams
        The trained student (e.g. ``integrate(...).final``).
    method : str
        Any method of :func:`odeprune.prune`: node methods keep ``k`` units (the pruned network
        is a smaller dense network); edge rules keep a fraction ``c`` of the first-layer weights
        and the mask stays fixed while retraining (per-class state, ``docs/theory.md`` §8;
        ``random_edge`` is exact for K <= 12, the other rules need the Gaussian-coordinate
        per-class map).
    k, c : int or float
        Kept units (node) or kept fraction of edges (edge), as :func:`odeprune.prune`.
    reweight : str
        Second-layer reweighting before retraining (node: none, preact, activation, refit;
        edge: none, rescale, refit, rescale_rows).
    eta, eta_v, sigma, train_second_layer :
        Learning rule of the retraining, as :func:`odeprune.integrate`.
    delta_alphas : sequence of float
        Retraining durations reported in the table (the curve runs to the largest).
    kernel : str
        DPP kernel (``dpp_node``).
    seed : int
        Seeds subset sampling and coordinate Monte Carlo.
    max_outcomes : int
        A node method with more outcomes than this (random / DPP subsets of a large K) is
        retrained on ``max_outcomes`` outcomes drawn from its distribution (the table's
        ``eg_se`` is then their standard error).
    n_samples : int
        Coordinate Monte Carlo samples of the edge maps that need them.
    save_at : sequence of float, optional
        Saved times of the curves (default :func:`time_grid`).

    Returns
    -------
    WorkflowResult
        One arm (``"<method> k=.. <reweight>"``); table rows at ``alpha = 0`` (right after
        pruning) and at every ``delta_alphas``.

    Raises
    ------
    ValueError
        Unknown method or reweighting, ``k`` outside 1..K, ``c`` outside [0, 1], non-positive
        durations; an edge rule on K > 12 (2^K mask classes: use :func:`retrain_finite`).
    """
    state = _check_state(state)
    k, c = _check_prune_args(method, k, c, reweight, state.K)
    eta = _positive("eta", eta)
    d_alphas = _times("delta_alphas", delta_alphas)
    if isinstance(max_outcomes, bool) or not isinstance(max_outcomes, (int, np.integer)) \
            or max_outcomes < 1:
        raise ValueError(f"max_outcomes={max_outcomes!r} must be a positive integer")
    if method not in node.NODE_METHODS and state.K > 12:
        raise ValueError(f"{method} on K={state.K} units has 2^{state.K} mask classes: the limit "
                         "is out of reach exactly; use retrain_finite (finite N)")
    want_progress(progress)
    grid = time_grid(float(d_alphas[-1]), d_alphas) if save_at is None else \
        np.unique(np.concatenate([np.asarray(save_at, float), d_alphas]))
    common = dict(eta_v=eta_v, sigma=sigma, train_second_layer=train_second_layer)
    label = _arm_label(method, k, c, reweight)
    meta = dict(method=method, k=k, c=c, reweight=reweight, eta=eta, eta_v=eta_v, sigma=sigma,
                train_second_layer=train_second_layer, kernel=kernel, seed=seed,
                delta_alphas=d_alphas.tolist(), K=state.K, M=state.M,
                eg_unpruned=state.eg(), odeprune_version=_io.package_version())
    if method in node.NODE_METHODS:
        pr = prune(state, method, k=k, reweight=reweight, kernel=kernel, seed=seed,
                   progress=False)
        states, probs = pr.states, np.asarray(pr.probabilities)
        sampled = False
        if len(states) > max_outcomes:
            rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
            idx = rng.choice(len(states), size=max_outcomes, p=probs / probs.sum())
            states = [states[i] for i in idx]
            probs = np.full(max_outcomes, 1.0 / max_outcomes)
            sampled = True
        curves = []
        bar = make_bar(progress, len(states), f"retrain {label}", unit="outcome")
        for s in states:
            curves.append(_integrate(s, eta, float(d_alphas[-1]), grid, common))
            bar.update(1)
        bar.close()
        E = np.array([cv.eg for cv in curves])
        eg = probs @ E
        if sampled:
            se = sem(E)
        elif pr.exact:
            se = np.zeros(E.shape[1])
        else:  # prune sampled the subsets: Monte Carlo error of the frequency-weighted mean
            n_draws = int(pr.metadata["n_draws"])
            se = np.sqrt(np.maximum(probs @ (E - probs @ E) ** 2, 0.0) / max(n_draws - 1, 1))
        meta.update(n_outcomes=len(states), outcomes_sampled=sampled,
                    eg_pruned_exact=pr.eg_mean)
        arm_curves: Any = curves if len(curves) > 1 else curves[0]
        n = len(states)
    else:
        sp, map_se = _sparse_edge_state(state, method, c, seed, n_samples, reweight)
        curve = _integrate(sp, eta, float(d_alphas[-1]), grid, common)
        eg = np.asarray(curve.eg)
        se = np.zeros_like(eg)
        if map_se > 0:  # a Monte Carlo map: its error carried through training
            se = _mc_se(lambda sd, n: sparse_state(state, method, c, seed=sd, n_samples=n,
                                                   reweight=reweight)[0],
                        seed, n_samples, eta, float(d_alphas[-1]), curve.alpha, common)
        meta.update(n_classes=sp.n_classes, density=sp.density()[1], map_eg_se=map_se)
        arm_curves, n = curve, 1
    alpha = np.asarray(arm_curves[0].alpha if isinstance(arm_curves, list) else arm_curves.alpha)
    table = []
    for a in np.concatenate([[0.0], d_alphas]):
        j = int(np.argmin(np.abs(alpha - a)))
        table.append(dict(workflow="retrain", layer="limit", arm=label, method=method, k=k,
                          c=c if c is not None else k / state.K, reweight=reweight,
                          alpha=float(a), eg=float(eg[j]), eg_se=float(se[j]), n=n))
    return WorkflowResult("retrain", "limit", {label: alpha}, {label: eg}, {label: se}, table,
                          meta, curves={label: arm_curves})


def _sims(trained) -> list:
    if isinstance(trained, SimulationResult):
        return [trained]
    if isinstance(trained, SimulationEnsemble):
        return list(trained.runs)
    runs = list(trained)
    if not runs or not all(isinstance(r, SimulationResult) for r in runs):
        raise ValueError("trained must be a SimulationResult, a SimulationEnsemble or a list of "
                         "SimulationResult (odeprune.simulate)")
    return runs


def _finite_edge_prune(w, v, w_star, v_star, method, c, reweight, rng, n_samples, act):
    """(mask, pruned w, v') of real weights: the finite-N rule and reweighting of
    :func:`odeprune.pruning.prune_weights` (least squares on ``n_samples`` inputs)."""
    K, N = w.shape
    mask = edge_mask(w, method, c, seed=rng, v=v, w_star=w_star, v_star=v_star,
                     n_samples=n_samples, activation=act.name)[0]
    wp = w * mask
    vp = np.array(v, dtype=float)
    if reweight == "rescale_rows":
        norms = np.linalg.norm(wp, axis=1)
        full = np.linalg.norm(w, axis=1)
        wp = wp * np.where(norms > 0, full / np.where(norms > 0, norms, 1.0), 1.0)[:, None]
    elif reweight in ("rescale", "refit"):
        X = rng.standard_normal((n_samples, N))
        Gp = act.g(X @ wp.T / math.sqrt(N))
        y = act.g(X @ w_star.T / math.sqrt(N)) @ v_star
        if reweight == "rescale":
            phi = Gp @ vp
            den = float(phi @ phi)
            vp = vp * (float(phi @ y) / den if den > 1e-14 * max(1.0, float(y @ y)) else 1.0)
        else:
            vp = np.linalg.lstsq(Gp, y, rcond=1e-10)[0]
    return mask, wp, vp


def _simulate_arm(N, K, M, eta, alpha_max, grid, init, mask, seed, common, v_star):
    return simulate(N, K, M, eta, alpha_max, save_at=grid, init=init, mask=mask,
                    seed=seed, n_test=0, progress=False, v_star=v_star, **common)


def _finite_table(workflow, label, params, alpha, E, O, report, N):
    rows = []
    for a in report:
        j = int(np.argmin(np.abs(alpha - a)))
        col, ode = E[:, j], O[:, j]
        n = col.size
        rows.append(dict(workflow=workflow, layer="finite", arm=label, **params,
                         alpha=float(alpha[j]), eg=float(col.mean()),
                         eg_se=float(sem(col)), eg_ode=float(ode.mean()),
                         eg_ode_se=float(sem(ode)), gap=float((col - ode).mean()),
                         gap_se=float(sem(col - ode)),
                         n=n, N=N))
    return rows


def _summarise_arms(workflow, names, sims, E, O, ode, report, N, params_of):
    """Per arm: saved alphas, per-seed eps_g (seeds, n), its standard error, the ODE curves
    (when run) and the table rows of :func:`_finite_table`."""
    alpha, eg, se, eg_ode, table = {}, {}, {}, {}, []
    for name in names:
        A = np.asarray(sims[name][0].alpha)
        Ea, Oa = np.array(E[name]), np.array(O[name])
        alpha[name], eg[name], se[name] = A, Ea, sem(Ea)
        if ode:
            eg_ode[name] = Oa
        table += _finite_table(workflow, name, params_of(name), A, Ea, Oa, report, N)
    return alpha, eg, se, eg_ode, table


def retrain_finite(trained, method: str, *, k: int | None = None, c: float | None = None,
                   reweight: str = "none", eta: float = 0.5,
                   delta_alphas: Sequence[float] = (10, 100, 1000), eta_v: float | None = None,
                   sigma: float = 0.0, train_second_layer: bool = True, kernel: str = "Q",
                   n_samples: int = 10_000, save_at: Sequence[float] | None = None,
                   ode: bool = True, progress: bool | None = None) -> WorkflowResult:
    r"""Prune real trained weights at finite N, then retrain them by online SGD.

    The same protocol as :func:`retrain` on every run of ``trained``: node methods keep the
    units chosen on the real weights (:func:`odeprune.pruning.prune_weights`: the DPP on the
    empirical kernel, reweighting by least squares) and retrain a ``k``-unit network; edge rules
    make a real mask (:func:`odeprune.pruning.finite_edges.edge_mask`) and retrain with it fixed
    (``simulate(mask=...)``). One mask / subset per run (seeded by the run's seed).

    Parameters
    ----------
    trained : SimulationResult, SimulationEnsemble or list of SimulationResult
        Trained students (``odeprune.simulate``), one per seed.
    method, k, c, reweight, eta, delta_alphas, eta_v, sigma, train_second_layer, kernel :
        As :func:`retrain`.
    n_samples : int
        Inputs of the empirical kernel / gradient / least-squares reweighting.
    save_at : sequence of float, optional
        Saved times (default :func:`time_grid`).
    ode : bool
        Also integrate the ODE from the exact order parameters of each real pruned network
        (``eg_ode``; per-class state for masked networks).

    Returns
    -------
    WorkflowResult
        ``eg[arm]`` of shape (n_seeds, n); table rows (mean, standard error over seeds, the ODE
        from the same starts and the paired gap) at 0 and every ``delta_alphas``.
    """
    runs = _sims(trained)
    K, M, N = runs[0].K, runs[0].M, runs[0].N
    k, c = _check_prune_args(method, k, c, reweight, K)
    eta = _positive("eta", eta)
    d_alphas = _times("delta_alphas", delta_alphas)
    if any(r.N != N or r.K != K or r.M != M for r in runs):
        raise ValueError("all trained runs must share N, K and M")
    want_progress(progress)
    act = get_activation(runs[0].activation)
    grid = time_grid(float(d_alphas[-1]), d_alphas) if save_at is None else \
        np.unique(np.concatenate([np.asarray(save_at, float), d_alphas]))
    common = dict(eta_v=eta_v, sigma=sigma, train_second_layer=train_second_layer,
                  activation=act.name)
    label = _arm_label(method, k, c, reweight)
    E, O, sims = [], [], []
    bar = make_bar(progress, len(runs), f"retrain N={N} {label}", unit="seed")
    for run in runs:
        s = int(run.metadata.get("seed", 0))
        w, v, w_star, v_star = np.array(run.w), np.array(run.v[-1]), np.array(run.w_star), \
            np.array(run.v_star)
        rng = np.random.default_rng(np.random.SeedSequence([s, 1]))
        if method in node.NODE_METHODS:
            fp = prune_weights(w, v, w_star, v_star, method=method, k=k, reweight=reweight,
                               kernel=kernel, n_samples=n_samples, n_masks=1, seed=rng,
                               n_test=0, predict=False, activation=act.name, progress=False)
            S = np.asarray(fp.subsets[0])
            init = (w[S], w_star, np.asarray(fp.v[0]))
            sim = _simulate_arm(N, k, M, eta, float(d_alphas[-1]), grid, init, None,
                                s + RETRAIN_SEED_OFFSET, common, v_star)
            start = OrderParams.from_weights(*init[:2], init[2], v_star, activation=act.name)
        else:
            mask, wp, vp = _finite_edge_prune(w, v, w_star, v_star, method, c, reweight, rng,
                                              n_samples, act)
            sim = _simulate_arm(N, K, M, eta, float(d_alphas[-1]), grid, (wp, w_star, vp), mask,
                                s + RETRAIN_SEED_OFFSET, common, v_star)
            start = SparseOrderParams.from_weights(wp, w_star, vp, v_star, mask,
                                                   activation=act.name)
        sims.append(sim)
        E.append(np.asarray(sim.eg))
        if ode:
            oc = _integrate(start, eta, float(d_alphas[-1]), np.asarray(sim.alpha),
                            {k_: v_ for k_, v_ in common.items() if k_ != "activation"})
            O.append(np.asarray(oc.eg))
        else:
            O.append(np.full(len(sim.alpha), np.nan))
        bar.update(1)
    bar.close()
    E, O = np.array(E), np.array(O)
    alpha = np.asarray(sims[0].alpha)
    params = dict(method=method, k=k, c=c if c is not None else k / K, reweight=reweight)
    table = _finite_table("retrain", label, params, alpha, E, O,
                          np.concatenate([[0.0], d_alphas]), N)
    se = sem(E)
    meta = dict(params, eta=eta, eta_v=eta_v, sigma=sigma, kernel=kernel, N=N, K=K, M=M,
                seeds=[r.metadata.get("seed") for r in runs], n_samples=n_samples,
                delta_alphas=d_alphas.tolist(), retrain_seed_offset=RETRAIN_SEED_OFFSET,
                alpha_trained=float(runs[0].alpha[-1]), odeprune_version=_io.package_version())
    return WorkflowResult("retrain", "finite", {label: alpha}, {label: E}, {label: se}, table,
                          meta, eg_ode={label: O} if ode else {}, curves={label: sims})


# ---------------------------------------------------------------------------------------------
# pruning at initialisation
# ---------------------------------------------------------------------------------------------
def _check_init_args(method, c, rescale):
    if method not in INIT_RULES:
        raise ValueError(f"method={method!r} is unknown for pruning at initialisation; allowed "
                         f"{INIT_RULES}")
    c = check_c(c)
    if not isinstance(rescale, (bool, np.bool_)):
        raise ValueError(f"rescale={rescale!r} must be True or False")
    return c, bool(rescale)


def prune_at_init(state: OrderParams, method: str, c: float, *, rescale: bool = False,
                  eta: float = 0.5, alpha_max: float = 1000.0,
                  report: Sequence[float] = (10, 100, 1000), eta_v: float | None = None,
                  sigma: float = 0.0, dense: bool = True, seed: int = 0,
                  n_samples: int = 200_000, save_at: Sequence[float] | None = None,
                  progress: bool | None = None) -> WorkflowResult:
    r"""Prune the initial network in the limit and train the sparse network from ``alpha = 0``.

    Parameters
    ----------
    state : OrderParams
        The initial network (e.g. ``OrderParams.random(N=500, K=6, M=2, v_star=4, seed=0)``).
    method : {"random_edge", "magnitude_edge", "magnitude_edge_global", "snip_edge", ...}
        The edge rule, applied to the initial weights (SNIP's scores use the initial gradient).
    c : float
        Kept fraction of first-layer weights, in [0, 1].
    rescale : bool
        Restore every row's norm after pruning (``rescale_rows``; Hayou et al. 2021's rescaling).
    eta, eta_v, sigma :
        Learning rule (:func:`odeprune.integrate`).
    alpha_max : float
        Training time.
    report : sequence of float
        Times reported in the table (``alpha_max`` is always added).
    dense : bool
        Also train the unpruned network (arm ``"dense"``).
    seed, n_samples :
        Coordinate Monte Carlo of the rules that need it.

    Returns
    -------
    WorkflowResult
        Arms ``"<method> c=.. rescale|plain"`` (and ``"dense"``).
    """
    state = _check_state(state)
    c, rescale = _check_init_args(method, c, rescale)
    eta = _positive("eta", eta)
    alpha_max = _positive("alpha_max", alpha_max)
    rep, grid = _report_grid(report, alpha_max, save_at)
    if state.K > 12:
        raise ValueError(f"K={state.K}: 2^K mask classes, out of reach exactly in the limit; "
                         "use prune_at_init_finite")
    want_progress(progress)
    common = dict(eta_v=eta_v, sigma=sigma)
    sp, map_se = _sparse_edge_state(state, method, c, seed, n_samples,
                                    "rescale_rows" if rescale else "none")
    label = f"{method} c={c:.4g} {'rescale' if rescale else 'plain'}"
    runs = [(label, sp)] + ([("dense", state)] if dense else [])
    alpha, eg, se, curves, table = {}, {}, {}, {}, []
    for name, s in runs:
        cv = _integrate(s, eta, alpha_max, grid, common)
        alpha[name], eg[name] = np.asarray(cv.alpha), np.asarray(cv.eg)
        se[name], curves[name] = np.zeros(len(cv.alpha)), cv
        if name != "dense" and map_se > 0:  # Monte Carlo map: its error through training
            se[name] = _mc_se(
                lambda sd, n: sparse_state(state, method, c, seed=sd, n_samples=n,
                                           reweight="rescale_rows" if rescale else "none")[0],
                seed, n_samples, eta, alpha_max, cv.alpha, common)
        for a in rep:
            j = int(np.argmin(np.abs(alpha[name] - a)))
            table.append(dict(workflow="prune_at_init", layer="limit", arm=name,
                              method=method if name != "dense" else "dense",
                              c=c if name != "dense" else 1.0,
                              rescale=rescale if name != "dense" else False,
                              alpha=float(alpha[name][j]), eg=float(eg[name][j]),
                              eg_se=float(se[name][j]), n=1))
    meta = dict(method=method, c=c, rescale=rescale, eta=eta, eta_v=eta_v, sigma=sigma,
                alpha_max=alpha_max, seed=seed, K=state.K, M=state.M, n_classes=sp.n_classes,
                density=sp.density()[1], map_eg_se=map_se, odeprune_version=_io.package_version())
    return WorkflowResult("prune_at_init", "limit", alpha, eg, se, table, meta, curves=curves)


def prune_at_init_finite(N: int, K: int, M: int, method: str, c: float, *,
                         rescale: bool = False, seeds: Sequence[int] = tuple(range(8)),
                         eta: float = 0.5, alpha_max: float = 1000.0,
                         report: Sequence[float] = (10, 100, 1000), v_star=4.0,
                         eta_v: float | None = None, sigma: float = 0.0, dense: bool = True,
                         n_samples: int = 10_000, save_at: Sequence[float] | None = None,
                         ode: bool = True, progress: bool | None = None) -> WorkflowResult:
    r"""Prune real initial weights at finite N and train the sparse network by online SGD.

    For every seed ``s``: the initial draw ``OrderParams.draw_weights(N, K, M, v_star, s)`` is
    pruned by the finite-N rule (:func:`odeprune.pruning.finite_edges.edge_mask`; SNIP with the
    empirical gradient over ``n_samples`` inputs), optionally row-rescaled, and trained with the
    mask fixed by the SGD stream of ``s`` -- the stream the dense arm (``simulate(seed=s)``) also
    uses, so the arms differ only by the mask.

    Returns
    -------
    WorkflowResult
        As :func:`prune_at_init`, with ``eg`` of shape (n_seeds, n) and the ODE from the same
        real starts (``eg_ode``).
    """
    c, rescale = _check_init_args(method, c, rescale)
    eta = _positive("eta", eta)
    alpha_max = _positive("alpha_max", alpha_max)
    seeds = _seeds(seeds)
    rep, grid = _report_grid(report, alpha_max, save_at)
    want_progress(progress)
    act = get_activation("erf")
    common = dict(eta_v=eta_v, sigma=sigma)
    label = f"{method} c={c:.4g} {'rescale' if rescale else 'plain'}"
    names = [label] + (["dense"] if dense else [])
    E = {n: [] for n in names}
    O = {n: [] for n in names}
    sims: dict[str, list] = {n: [] for n in names}
    bar = make_bar(progress, len(seeds), f"prune_at_init N={N} {label}", unit="seed")
    for s in seeds:
        w, w_star, v, vs = OrderParams.draw_weights(N, K, M, v_star, s)
        rng = np.random.default_rng(np.random.SeedSequence([s, 1]))
        mask, wp, vp = _finite_edge_prune(w, v, w_star, vs, method, c,
                                          "rescale_rows" if rescale else "none", rng, n_samples,
                                          act)
        for name in names:
            if name == "dense":
                init, m = (w, w_star, v), None
                start = OrderParams.from_weights(w, w_star, v, vs)
            else:
                init, m = (wp, w_star, vp), mask
                start = SparseOrderParams.from_weights(wp, w_star, vp, vs, mask)
            sim = _simulate_arm(N, K, M, eta, alpha_max, grid, init, m, s, common, vs)
            sims[name].append(sim)
            E[name].append(np.asarray(sim.eg))
            O[name].append(np.asarray(_integrate(start, eta, alpha_max, np.asarray(sim.alpha),
                                                 common).eg) if ode
                           else np.full(len(sim.alpha), np.nan))
        bar.update(1)
    bar.close()
    alpha, eg, se, eg_ode, table = _summarise_arms(
        "prune_at_init", names, sims, E, O, ode, rep, N,
        lambda name: dict(method=method if name != "dense" else "dense",
                          c=c if name != "dense" else 1.0,
                          rescale=rescale if name != "dense" else False))
    meta = dict(method=method, c=c, rescale=rescale, eta=eta, eta_v=eta_v, sigma=sigma,
                alpha_max=alpha_max, N=N, K=K, M=M, v_star=v_star, seeds=seeds,
                n_samples=n_samples, odeprune_version=_io.package_version())
    return WorkflowResult("prune_at_init", "finite", alpha, eg, se, table, meta, eg_ode=eg_ode,
                          curves=sims)


# ---------------------------------------------------------------------------------------------
# lottery tickets
# ---------------------------------------------------------------------------------------------
def _check_ticket_args(c, alpha_T, alpha_rewind, alpha_max, scope, arms):
    c = check_c(c)
    alpha_T = _positive("alpha_T", alpha_T)
    alpha_rewind = _positive("alpha_rewind", alpha_rewind, allow_zero=True)
    if alpha_rewind >= alpha_T:
        raise ValueError(f"alpha_rewind={alpha_rewind!r} must be smaller than alpha_T="
                         f"{alpha_T!r} (the mask comes from the weights trained to alpha_T)")
    alpha_max = _positive("alpha_max", alpha_max)
    if scope not in ("row", "global"):
        raise ValueError(f"scope={scope!r} must be 'row' (each unit keeps a fraction c) or "
                         "'global' (fraction c of the whole first layer)")
    arms = tuple(arms)
    bad = [a for a in arms if a not in ALL_TICKET_ARMS]
    if bad or not arms:
        raise ValueError(f"arms={list(arms)!r}: allowed (a non-empty subset of) "
                         f"{ALL_TICKET_ARMS}")
    return c, alpha_T, alpha_rewind, alpha_max, arms


def _reinit(ticket: SparseOrderParams, init: OrderParams, v) -> SparseOrderParams:
    r"""The ticket's mask on fresh random first-layer weights (the lottery-ticket literature's
    control; ``docs/theory.md`` §8): per class the kept weights are a fresh draw with the
    initial law, independent of the teacher and of the mask decision,

    .. math:: Q^s_{ik} = f_s Q^{(0)}_{ik}\ (i, k \in s),\quad R^s = 0,\quad T^s = T^s_{ticket},

    with the ticket's classes (patterns, fractions, teacher blocks) and second layer ``v``."""
    m = ticket.patterns.astype(float)
    Q = ticket.f[:, None, None] * m[:, :, None] * m[:, None, :] * np.asarray(init.Q)[None]
    return ticket.replace(Q=Q, R=np.zeros_like(np.asarray(ticket.R)), v=np.asarray(v))


def lottery_ticket(state: OrderParams, c: float, *, alpha_T: float = 200.0,
                   alpha_rewind: float = 0.0, alpha_max: float = 1000.0, eta: float = 0.5,
                   eta_v: float | None = None, sigma: float = 0.0, scope: str = "row",
                   arms: Sequence[str] = TICKET_ARMS, report: Sequence[float] = (10, 100, 1000),
                   seed: int = 0, n_samples: int = 200_000,
                   save_at: Sequence[float] | None = None, progress: bool | None = None
                   ) -> WorkflowResult:
    r"""Lottery tickets in the limit: train, take the magnitude mask, rewind, retrain.

    From ``state`` (the initial network), train densely to ``alpha_rewind`` and on to
    ``alpha_T`` while tracking the two-time overlaps with ``w(alpha_rewind)`` (§9). The arms,
    each trained for ``alpha_max`` from its start (time 0 of its curve):

    - ``dense``: the unpruned network from ``w(alpha_rewind)``;
    - ``ticket``: the magnitude mask of ``w(alpha_T)`` (fraction ``c`` per row, or of the whole
      layer with ``scope="global"``) applied to ``w(alpha_rewind)``, ``v(alpha_rewind)``;
    - ``random``: an independent Bernoulli(``c``) mask on ``w(alpha_rewind)``;
    - ``magnitude_init``: the magnitude mask of ``w(alpha_rewind)`` itself (at initialisation
      when ``alpha_rewind = 0``);
    - ``finetune``: the magnitude-pruned trained network ``w(alpha_T)``, ``v(alpha_T)``, trained on;
    - ``reinit`` (not run by default; :data:`ALL_TICKET_ARMS`): the ticket's mask on fresh
      random first-layer weights (a draw with the initial law of ``state``, independent of the
      teacher and of the mask), second layer ``v(alpha_rewind)``: the standard control.

    Every Monte Carlo arm reports at every time the standard error of its curve caused by the
    coordinate Monte Carlo (:data:`MC_REPLICAS` independent sub-samples, shared by the arms).

    Parameters
    ----------
    state : OrderParams
    c : float
        Kept fraction of first-layer weights, in [0, 1].
    alpha_T, alpha_rewind, alpha_max : float
        Dense training time, rewinding point (``0 <= alpha_rewind < alpha_T``), retraining time.
    eta, eta_v, sigma :
        Learning rule of every phase.
    scope : {"row", "global"}
    arms : sequence of str
        A subset of :data:`TICKET_ARMS`.
    report : sequence of float
        Times reported in the table (``alpha_max`` added).
    seed, n_samples :
        Coordinate Monte Carlo of the Gaussian-coordinate maps.

    Returns
    -------
    WorkflowResult
    """
    state = _check_state(state)
    c, alpha_T, alpha_rewind, alpha_max, arms = _check_ticket_args(c, alpha_T, alpha_rewind,
                                                                  alpha_max, scope, arms)
    eta = _positive("eta", eta)
    rep, grid = _report_grid(report, alpha_max, save_at)
    if state.K > 12:
        raise ValueError(f"K={state.K}: 2^K mask classes, out of reach exactly in the limit; "
                         "use lottery_ticket_finite")
    want_progress(progress)
    common = dict(eta_v=eta_v, sigma=sigma)
    rule = "magnitude_edge" if scope == "row" else "magnitude_edge_global"
    s_r = state if alpha_rewind == 0 else _integrate(state, eta, alpha_rewind, [0.0, alpha_rewind],
                                                     common).final
    two = integrate(s_r, eta=eta, alpha_max=alpha_T - alpha_rewind,
                    save_at=[0.0, alpha_T - alpha_rewind], track_initial=True,
                    progress=False, **common)
    s_T = two.final

    def make_start(arm, sd, n):
        """``(start, whether it is a Monte Carlo map)`` of ``arm`` from ``n`` coordinates of
        seed ``sd``. The Monte Carlo arms decide on the same particles of the joint law of
        (w(alpha_rewind), w(alpha_T), w*) (common random numbers: their differences carry no
        sampling noise of the masks)."""
        if arm == "dense":
            return s_r, False
        if arm == "random":
            return SparseOrderParams.random_mask(s_r, c), False
        law_T, law_r = CoordinateLaw.from_joint(two, -1, S=n, replicas=1, seed=sd)
        if arm == "magnitude_init":
            return decide(law_r, rule, c, seed=sd).sparse(), True
        mask = decide(law_T, rule, c, seed=sd).mask
        if arm == "finetune":
            return law_T.replace(mask=mask).sparse(), True
        ticket = law_r.replace(mask=mask).sparse()
        if arm == "ticket":
            return ticket, True
        return _reinit(ticket, state, s_r.v), True

    starts, map_se = {}, {}
    for arm in arms:
        starts[arm], map_se[arm] = make_start(arm, seed, n_samples)
    alpha, eg, se, curves, table = {}, {}, {}, {}, []
    bar = make_bar(progress, len(starts), "lottery_ticket arms", unit="arm")
    for arm, s in starts.items():
        cv = _integrate(s, eta, alpha_max, grid, common)
        alpha[arm], eg[arm], se[arm], curves[arm] = (np.asarray(cv.alpha), np.asarray(cv.eg),
                                                     np.zeros(len(cv.alpha)), cv)
        if map_se[arm]:  # Monte Carlo start: its error carried through training
            se[arm] = _mc_se(lambda sd, n, arm=arm: make_start(arm, sd, n)[0], seed, n_samples,
                             eta, alpha_max, cv.alpha, common)
        for a in rep:
            j = int(np.argmin(np.abs(alpha[arm] - a)))
            table.append(dict(workflow="lottery_ticket", layer="limit", arm=arm,
                              c=1.0 if arm == "dense" else c, scope=scope,
                              alpha_T=alpha_T, alpha_rewind=alpha_rewind,
                              alpha=float(alpha[arm][j]), eg=float(eg[arm][j]),
                              eg_se=float(se[arm][j]), n=1))
        bar.update(1)
    bar.close()
    meta = dict(c=c, alpha_T=alpha_T, alpha_rewind=alpha_rewind, alpha_max=alpha_max, eta=eta,
                eta_v=eta_v, sigma=sigma, scope=scope, arms=list(arms), seed=seed,
                eg_trained=s_T.eg(), K=state.K, M=state.M,
                odeprune_version=_io.package_version())
    return WorkflowResult("lottery_ticket", "limit", alpha, eg, se, table, meta, curves=curves)


def lottery_ticket_finite(N: int, K: int, M: int, c: float, *,
                          seeds: Sequence[int] = tuple(range(8)), alpha_T: float = 200.0,
                          alpha_rewind: float = 0.0, alpha_max: float = 1000.0,
                          eta: float = 0.5, v_star=4.0, eta_v: float | None = None,
                          sigma: float = 0.0, scope: str = "row",
                          arms: Sequence[str] = TICKET_ARMS,
                          report: Sequence[float] = (10, 100, 1000),
                          save_at: Sequence[float] | None = None, ode: bool = True,
                          progress: bool | None = None) -> WorkflowResult:
    r"""Lottery tickets at finite N, on real weights with real masks (same arms as
    :func:`lottery_ticket`).

    For every seed ``s``: ``simulate(seed=s)`` to ``alpha_rewind`` and to ``alpha_T`` (the same
    SGD stream, so ``w(alpha_rewind)`` is the trained run's own past); masks by exact top-|w| per
    row (or over the layer); every arm retrained by the SGD stream of
    ``s + RETRAIN_SEED_OFFSET`` (common random numbers: arms differ only by their start).

    Returns
    -------
    WorkflowResult
        ``eg`` of shape (n_seeds, n) per arm, and the ODE from the same real starts.
    """
    c, alpha_T, alpha_rewind, alpha_max, arms = _check_ticket_args(c, alpha_T, alpha_rewind,
                                                                  alpha_max, scope, arms)
    eta = _positive("eta", eta)
    seeds = _seeds(seeds)
    rep, grid = _report_grid(report, alpha_max, save_at)
    want_progress(progress)
    common = dict(eta_v=eta_v, sigma=sigma)
    rule = "magnitude_edge" if scope == "row" else "magnitude_edge_global"
    E = {a: [] for a in arms}
    O = {a: [] for a in arms}
    sims: dict[str, list] = {a: [] for a in arms}
    eg_T = []
    bar = make_bar(progress, len(seeds), f"lottery_ticket N={N}", unit="seed")
    for s in seeds:
        w0, w_star, v0, vs = OrderParams.draw_weights(N, K, M, v_star, s)
        if alpha_rewind > 0:
            r = simulate(N, K, M, eta, alpha_rewind, save_at=[alpha_rewind], seed=s,
                         n_test=0, progress=False, v_star=v_star, **common)
            w_r, v_r = np.array(r.w), np.array(r.v[-1])
        else:
            w_r, v_r = w0, v0
        t = simulate(N, K, M, eta, alpha_T, save_at=[alpha_T], seed=s, n_test=0,
                     progress=False, v_star=v_star, **common)
        w_T, v_T = np.array(t.w), np.array(t.v[-1])
        eg_T.append(float(t.eg[-1]))
        rng = np.random.default_rng(np.random.SeedSequence([s, 1]))
        m_T = edge_mask(w_T, rule, c)[0]
        for arm in arms:
            if arm == "dense":
                init, m = (w_r, w_star, v_r), None
            elif arm == "ticket":
                init, m = (w_r * m_T, w_star, v_r), m_T
            elif arm == "random":
                m = edge_mask(w_r, "random_edge", c, seed=rng)[0]
                init = (w_r * m, w_star, v_r)
            elif arm == "magnitude_init":
                m = edge_mask(w_r, rule, c)[0]
                init = (w_r * m, w_star, v_r)
            elif arm == "reinit":  # the ticket's mask on a fresh draw of the first layer
                fresh = OrderParams.draw_weights(N, K, M, v_star,
                                                 np.random.SeedSequence([s, 4]))[0]
                init, m = (fresh * m_T, w_star, v_r), m_T
            else:  # finetune
                init, m = (w_T * m_T, w_star, v_T), m_T
            sim = _simulate_arm(N, K, M, eta, alpha_max, grid, init, m, s + RETRAIN_SEED_OFFSET,
                                common, vs)
            sims[arm].append(sim)
            E[arm].append(np.asarray(sim.eg))
            if ode:
                start = (OrderParams.from_weights(init[0], w_star, init[2], vs) if m is None else
                         SparseOrderParams.from_weights(init[0], w_star, init[2], vs, m))
                O[arm].append(np.asarray(_integrate(start, eta, alpha_max, np.asarray(sim.alpha),
                                                    common).eg))
            else:
                O[arm].append(np.full(len(sim.alpha), np.nan))
        bar.update(1)
    bar.close()
    alpha, eg, se, eg_ode, table = _summarise_arms(
        "lottery_ticket", arms, sims, E, O, ode, rep, N,
        lambda arm: dict(c=1.0 if arm == "dense" else c, scope=scope, alpha_T=alpha_T,
                         alpha_rewind=alpha_rewind))
    meta = dict(c=c, alpha_T=alpha_T, alpha_rewind=alpha_rewind, alpha_max=alpha_max, eta=eta,
                eta_v=eta_v, sigma=sigma, scope=scope, arms=list(arms), N=N, K=K, M=M,
                v_star=v_star, seeds=seeds, eg_trained=eg_T,
                retrain_seed_offset=RETRAIN_SEED_OFFSET, odeprune_version=_io.package_version())
    return WorkflowResult("lottery_ticket", "finite", alpha, eg, se, table, meta, eg_ode=eg_ode,
                          curves=sims)


def iterative_magnitude_pruning(state: OrderParams, *, rounds: int = 3,
                                prune_fraction: float = 0.2, alpha_per_round: float = 200.0,
                                eta: float = 0.5, eta_v: float | None = None, sigma: float = 0.0,
                                scope: str = "row", rewind_to: float = 0.0, seed: int = 0,
                                n_samples: int = 160_000, replicas: int = 8,
                                save_at: Sequence[float] | None = None,
                                progress: bool | None = None) -> WorkflowResult:
    r"""Iterative magnitude pruning with rewinding, exactly in the limit in every round.

    Round 0 trains the dense network from ``state`` for ``alpha_per_round``; each further round
    keeps, among the weights kept so far, the fraction ``1 - prune_fraction`` of largest trained
    magnitude (per row, or over the layer with ``scope="global"``), rewinds the kept weights
    and ``v`` to the dense network at ``rewind_to`` (0: the initial weights) and trains the
    masked network for ``alpha_per_round``. The decisions act on particles of the coordinate law
    (``docs/theory.md`` §11; :func:`odeprune.schedules.imp_limit`), the training between them is
    the per-class ODE plus the linear response: exact up to the Monte-Carlo error of the
    decisions, ``n_samples`` particles split over ``replicas`` independent replicas whose spread
    gives ``eg_se`` at every saved time. The protocol of
    :func:`iterative_magnitude_pruning_finite`.

    Returns
    -------
    WorkflowResult
        Arm ``"round <r>"`` per round, with the learning curve of that round (replica mean); the
        table has per round the kept fraction ``c``, ``eg`` after training with ``eg_se``,
        ``eg_pruned`` (the previous round's trained network pruned to this round's mask, before
        rewinding) with ``eg_pruned_se``.
    """
    state = _check_state(state)
    rounds, pf, apr, scope, rw = schedules.check_imp_args(rounds, prune_fraction,
                                                          alpha_per_round, scope, rewind_to)
    replicas = check_int("replicas", replicas, 2)
    S = check_int("n_samples", n_samples, 2 * replicas) // replicas
    eta = _positive("eta", eta)
    want_progress(progress)
    grid = time_grid(apr) if save_at is None else np.unique(np.asarray(save_at, float))
    with progress_bar(progress, 1, "IMP (limit)", unit="run") as bar:
        out = schedules.imp_limit(state, rounds=rounds, prune_fraction=pf, alpha_per_round=apr,
                                  eta=eta, scope=scope, rewind_to=rw, S=S, replicas=replicas,
                                  seed=seed, save_at=grid, eta_v=eta_v, sigma=sigma)
        bar.update(1)
    alpha, eg, se, curves, table = {}, {}, {}, {}, []
    for r in range(rounds + 1):
        arm = f"round {r}"
        alpha[arm], eg[arm], se[arm] = out["alpha"], out["eg"][r], out["eg_se"][r]
        curves[arm] = out["curves"][r]
        row = dict(workflow="imp", layer="limit", arm=arm, round=r, c=float(out["c"][r]),
                   alpha=apr, eg=float(out["eg"][r][-1]), eg_se=float(out["eg_se"][r][-1]),
                   n=replicas)
        if r:
            row.update(eg_pruned=float(out["eg_pruned"][r]),
                       eg_pruned_se=float(out["eg_pruned_se"][r]))
        table.append(row)
    meta = dict(rounds=rounds, prune_fraction=pf, alpha_per_round=apr, eta=eta, eta_v=eta_v,
                sigma=sigma, scope=scope, rewind_to=rw, seed=seed, n_samples=S * replicas,
                replicas=replicas, K=state.K, M=state.M, odeprune_version=_io.package_version())
    return WorkflowResult("imp", "limit", alpha, eg, se, table, meta, curves=curves)


def iterative_magnitude_pruning_finite(N: int, K: int, M: int, *, rounds: int = 3,
                                       prune_fraction: float = 0.2, alpha_per_round: float = 200.0,
                                       seeds: Sequence[int] = tuple(range(8)), eta: float = 0.5,
                                       v_star=4.0, sigma: float = 0.0, scope: str = "row",
                                       rewind_to: float = 0.0, fresh_streams: bool = True,
                                       progress: bool | None = None) -> WorkflowResult:
    r"""Iterative magnitude pruning with rewinding at finite N, over seeds
    (:func:`odeprune.schedules.imp_finite` per seed: real weights, real masks; a new SGD stream
    per round, the limit's protocol, or with ``fresh_streams=False`` one stream replayed in
    every round).

    Round ``r`` trains the network whose mask keeps ``(1 - prune_fraction)^r`` of the weights for
    ``alpha_per_round``; the table has one row per round: the kept fraction, :math:`\epsilon_g`
    after training (mean and standard error over seeds) and right after pruning the previous
    round's trained weights (one-shot magnitude pruning at that sparsity).

    Returns
    -------
    WorkflowResult
        Arm ``"round <r>"`` per round (final errors only: ``alpha`` holds ``alpha_per_round``).
    """
    seeds = _seeds(seeds)
    rounds, pf, apr, scope, rw = schedules.check_imp_args(rounds, prune_fraction,
                                                          alpha_per_round, scope, rewind_to)
    want_progress(progress)
    res = []
    bar = make_bar(progress, len(seeds), f"IMP N={N}", unit="seed")
    for s in seeds:
        res.append(schedules.imp_finite(N, K, M, rounds=rounds, prune_fraction=pf,
                                        alpha_per_round=apr, eta=eta, v_star=v_star,
                                        sigma=sigma, scope=scope, rewind_to=rw, seed=s,
                                        fresh_streams=fresh_streams))
        bar.update(1)
    bar.close()
    T = np.array([r["eg"] for r in res])             # (seeds, rounds + 1)
    P = np.array([r["eg_pruned"][1:] for r in res])  # (seeds, rounds)
    kept = res[0]["c"]
    n = len(seeds)
    alpha, eg, se, table = {}, {}, {}, []
    for j in range(rounds + 1):
        arm = f"round {j}"
        alpha[arm] = np.array([apr])
        eg[arm] = T[:, j:j + 1]
        se[arm] = np.array([sem(T[:, j])])
        row = dict(workflow="imp", layer="finite", arm=arm, round=j, c=float(kept[j]),
                   alpha=apr, eg=float(T[:, j].mean()), eg_se=float(se[arm][0]), n=n, N=N)
        if j > 0:
            row.update(eg_pruned=float(P[:, j - 1].mean()),
                       eg_pruned_se=float(sem(P[:, j - 1])))
        table.append(row)
    meta = dict(rounds=rounds, prune_fraction=pf, alpha_per_round=apr, seeds=seeds, eta=eta,
                v_star=v_star, sigma=sigma, scope=scope, rewind_to=rw,
                fresh_streams=bool(fresh_streams), N=N, K=K, M=M,
                odeprune_version=_io.package_version())
    return WorkflowResult("imp", "finite", alpha, eg, se, table, meta, curves={"imp": res})


def gradual_magnitude_pruning(state: OrderParams, schedule, alpha_max: float, *,
                              eta: float = 0.5, eta_v: float | None = None, sigma: float = 0.0,
                              scope: str = "row", seed: int = 0, n_samples: int = 160_000,
                              replicas: int = 8, progress: bool | None = None
                              ) -> WorkflowResult:
    r"""Gradual magnitude pruning during training (Zhu & Gupta 2017), exactly in the limit.

    ``schedule``: ``(alphas, densities)`` (e.g. :func:`odeprune.schedules.zhu_gupta_schedule`):
    at each time the current weights are pruned by magnitude to that density (per row or over
    the layer); no rewinding; training goes on with the mask fixed to ``alpha_max``. Exact up
    to the Monte-Carlo error of the decisions (``docs/theory.md`` §11;
    :func:`odeprune.schedules.gradual_limit`). The protocol of
    :func:`gradual_magnitude_pruning_finite`.

    Returns
    -------
    WorkflowResult
        One arm ``"gradual"``: the curve over the whole run (with ``eg_se``); the table has the
        final density and :math:`\epsilon_g`.
    """
    state = _check_state(state)
    replicas = check_int("replicas", replicas, 2)
    S = check_int("n_samples", n_samples, 2 * replicas) // replicas
    eta = _positive("eta", eta)
    want_progress(progress)
    with progress_bar(progress, 1, "gradual pruning (limit)", unit="run") as bar:
        out = schedules.gradual_limit(state, schedule, alpha_max, eta=eta, scope=scope, S=S,
                                      replicas=replicas, seed=seed, eta_v=eta_v, sigma=sigma)
        bar.update(1)
    alphas, dens = out["schedule"]
    table = [dict(workflow="gradual", layer="limit", arm="gradual", c=float(dens[-1]),
                  alpha=float(alpha_max), eg=out["eg_final"], eg_se=out["eg_final_se"],
                  n=replicas)]
    meta = dict(schedule_alpha=alphas.tolist(), schedule_density=dens.tolist(),
                alpha_max=float(alpha_max), eta=eta, eta_v=eta_v, sigma=sigma, scope=scope,
                seed=seed, n_samples=S * replicas, replicas=replicas, K=state.K, M=state.M,
                odeprune_version=_io.package_version())
    return WorkflowResult("gradual", "limit", {"gradual": out["alpha"]},
                          {"gradual": out["eg"]}, {"gradual": out["eg_se"]}, table, meta,
                          curves={"gradual": out["curve"]})


def gradual_magnitude_pruning_finite(N: int, K: int, M: int, schedule, alpha_max: float, *,
                                     seeds: Sequence[int] = tuple(range(8)), eta: float = 0.5,
                                     v_star=4.0, sigma: float = 0.0, scope: str = "row",
                                     progress: bool | None = None) -> WorkflowResult:
    """Gradual magnitude pruning on real weights at finite N, over seeds
    (:func:`odeprune.schedules.gradual_finite` per seed)."""
    seeds = _seeds(seeds)
    want_progress(progress)
    res = []
    bar = make_bar(progress, len(seeds), f"gradual N={N}", unit="seed")
    for s in seeds:
        res.append(schedules.gradual_finite(N, K, M, schedule, alpha_max, eta=eta,
                                            v_star=v_star, sigma=sigma, scope=scope, seed=s))
        bar.update(1)
    bar.close()
    E = np.array([r["eg_final"] for r in res])
    table = [dict(workflow="gradual", layer="finite", arm="gradual",
                  c=float(res[0]["density"]), alpha=float(alpha_max), eg=float(E.mean()),
                  eg_se=float(sem(E)), n=len(seeds), N=N)]
    alphas, dens = schedules.check_schedule(schedule, alpha_max)
    meta = dict(schedule_alpha=alphas.tolist(), schedule_density=dens.tolist(),
                alpha_max=float(alpha_max), seeds=seeds, eta=eta, v_star=v_star, sigma=sigma,
                scope=scope, N=N, K=K, M=M, odeprune_version=_io.package_version())
    return WorkflowResult("gradual", "finite", {"gradual": np.array([float(alpha_max)])},
                          {"gradual": E[:, None]}, {"gradual": np.array([sem(E)])}, table,
                          meta, curves={"gradual": res})
