r"""Prune a trained student, then train the pruned network again for ``Δα``, in the limit and at
finite N (``docs/theory.md`` §6, §8).

A node-pruned network is a smaller dense network (its pruned ``OrderParams`` integrated by
:func:`odeprune.integrate`); an edge-pruned network keeps its mask while it trains (a
:class:`~odeprune.sparse.SparseOrderParams`, one class per mask pattern).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _io
from .._stats import sem
from ..activations import get_activation
from ..ode.progress import make_bar
from ..options import Control, Dynamics, Output
from ..pruning import prune, prune_weights, registry
from ..pruning._api import check_method_args
from ..pruning.sparse_maps import sparse_state
from ..state import OrderParams
from ._common import (
    RETRAIN_SEED_OFFSET,
    FiniteArms,
    Rule,
    Start,
    Table,
    check_state,
    gather_options,
    mc_se,
    prune_edges,
    simulations,
    times,
    with_report,
)
from .result import WorkflowResult

__all__ = ["retrain", "retrain_finite"]

#: the options of the learning rule the retraining takes, and the saved times and progress bar
RULE = ("eta", "eta_v", "sigma", "train_second_layer", "save_at", "progress")


def _arm_label(method: str, k, c, reweight: str) -> str:
    size = f"k={k}" if k is not None else f"c={c:.4g}"
    return f"{method} {size} {reweight}"


def _check_max_outcomes(max_outcomes) -> int:
    if isinstance(max_outcomes, bool) or not isinstance(max_outcomes, (int, np.integer)) \
            or max_outcomes < 1:
        raise ValueError(f"max_outcomes={max_outcomes!r} must be a positive integer")
    return int(max_outcomes)


def retrain(state: OrderParams, method: str, *, k: int | None = None, c: float | None = None,
            reweight: str = "none", delta_alphas: Sequence[float] = (10, 100, 1000),
            kernel: str = "Q", seed: int = 0, max_outcomes: int = 64, n_samples: int = 200_000,
            **options) -> WorkflowResult:
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
    **options
        The learning rule of the retraining (:class:`odeprune.options.Dynamics`: ``eta``
        (default 0.5, :data:`~odeprune.workflows._common.WORKFLOW_DEFAULTS`), ``eta_v``,
        ``sigma``, ``train_second_layer``), ``save_at`` (the saved times of the curves, default
        :func:`time_grid`; :class:`~odeprune.options.Output`) and ``progress``
        (:class:`~odeprune.options.Control`), as flat keywords or records passed whole.

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
    dyn, out, ctl = gather_options("retrain", options, (Dynamics, Output, Control), RULE)
    rule, save_at, progress = Rule(dyn), out.save_at, ctl.progress
    state = check_state(state)
    k, c = check_method_args(method, k, c, reweight, state.K)
    d_alphas = times("delta_alphas", delta_alphas)
    max_outcomes = _check_max_outcomes(max_outcomes)
    if method not in registry.NODE_METHODS and state.K > 12:
        raise ValueError(f"{method} on K={state.K} units has 2^{state.K} mask classes: the limit "
                         "is out of reach exactly; use retrain_finite (finite N)")
    alpha_max = float(d_alphas[-1])
    grid = with_report(alpha_max, d_alphas, save_at)
    label = _arm_label(method, k, c, reweight)
    meta = dict(method=method, k=k, c=c, reweight=reweight, eta=rule.eta, eta_v=rule.eta_v,
                sigma=rule.sigma, train_second_layer=dyn.train_second_layer, kernel=kernel,
                seed=seed,
                delta_alphas=d_alphas.tolist(), K=state.K, M=state.M,
                eg_unpruned=state.eg(), odeprune_version=_io.package_version())
    if method in registry.NODE_METHODS:
        pr = prune(state, method, k=k, reweight=reweight, kernel=kernel, seed=seed,
                   progress=False)
        states, probs, sampled = _outcomes(pr, seed, max_outcomes)
        curves = []
        bar = make_bar(progress, len(states), f"retrain {label}", unit="outcome")
        for s in states:
            curves.append(rule.integrate(s, alpha_max, grid))
            bar.update(1)
        bar.close()
        eg, se = _outcome_mean(pr, np.array([cv.eg for cv in curves]), probs, sampled)
        meta.update(n_outcomes=len(states), outcomes_sampled=sampled,
                    eg_pruned_exact=pr.eg_mean)
        arm_curves: Any = curves if len(curves) > 1 else curves[0]
        n = len(states)
    else:
        sp, map_se = sparse_state(state, method, c, seed=seed, n_samples=n_samples,
                                  reweight=reweight)
        map_se = float(map_se)
        arm_curves = rule.integrate(sp, alpha_max, grid)
        eg = np.asarray(arm_curves.eg)
        se = np.zeros_like(eg)
        if map_se > 0:  # a Monte Carlo map: its error carried through training
            se = mc_se(lambda sd, n: sparse_state(state, method, c, seed=sd, n_samples=n,
                                                  reweight=reweight)[0],
                       seed, n_samples, rule, alpha_max, arm_curves.alpha)
        meta.update(n_classes=sp.n_classes, density=sp.density()[1], map_eg_se=map_se)
        n = 1
    alpha = np.asarray(arm_curves[0].alpha if isinstance(arm_curves, list) else arm_curves.alpha)
    table = []
    for a in np.concatenate([[0.0], d_alphas]):
        j = int(np.argmin(np.abs(alpha - a)))
        table.append(dict(workflow="retrain", layer="limit", arm=label, method=method, k=k,
                          c=c if c is not None else k / state.K, reweight=reweight,
                          alpha=float(a), eg=float(eg[j]), eg_se=float(se[j]), n=n))
    return WorkflowResult("retrain", "limit", {label: alpha}, {label: eg}, {label: se}, table,
                          meta, curves={label: arm_curves})


def _outcomes(pr, seed, max_outcomes: int) -> tuple[list, np.ndarray, bool]:
    """``(states, probabilities, sampled)`` of a node method's :func:`odeprune.prune` result:
    every outcome, or ``max_outcomes`` drawn from their law (then equally weighted)."""
    states, probs = pr.states, np.asarray(pr.probabilities)
    if len(states) <= max_outcomes:
        return states, probs, False
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    idx = rng.choice(len(states), size=max_outcomes, p=probs / probs.sum())
    return [states[i] for i in idx], np.full(max_outcomes, 1.0 / max_outcomes), True


def _outcome_mean(pr, E: np.ndarray, probs: np.ndarray, sampled: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Probability-weighted mean of the outcomes' curves ``E`` (n_outcomes, n) and its
    standard error: of the drawn outcomes when sampled here, 0 when :func:`odeprune.prune` was
    exact, else the Monte Carlo error of its frequency-weighted mean over its draws."""
    eg = probs @ E
    if sampled:
        return eg, sem(E)
    if pr.exact:
        return eg, np.zeros(E.shape[1])
    n_draws = int(pr.metadata["n_draws"])
    return eg, np.sqrt(np.maximum(probs @ (E - eg) ** 2, 0.0) / max(n_draws - 1, 1))


def retrain_finite(trained, method: str, *, k: int | None = None, c: float | None = None,
                   reweight: str = "none", delta_alphas: Sequence[float] = (10, 100, 1000),
                   kernel: str = "Q", n_samples: int = 10_000, **options) -> WorkflowResult:
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
    method, k, c, reweight, delta_alphas, kernel :
        As :func:`retrain`.
    n_samples : int
        Inputs of the empirical kernel / gradient / least-squares reweighting.
    **options
        As :func:`retrain` (the learning rule, ``save_at``, ``progress``), and ``ode``
        (:class:`~odeprune.workflows._common.Table`, default True): also integrate the ODE from
        the exact order parameters of each real pruned network (``eg_ode``; per-class state for
        masked networks).

    Returns
    -------
    WorkflowResult
        ``eg[arm]`` of shape (n_seeds, n); table rows (mean, standard error over seeds, the ODE
        from the same starts and the paired gap) at 0 and every ``delta_alphas``.
    """
    dyn, out, ctl, tab = gather_options("retrain_finite", options,
                                        (Dynamics, Output, Control, Table), (*RULE, "ode"))
    save_at, progress = out.save_at, ctl.progress
    runs = simulations(trained)
    K, M, N = runs[0].K, runs[0].M, runs[0].N
    k, c = check_method_args(method, k, c, reweight, K)
    d_alphas = times("delta_alphas", delta_alphas)
    if any(r.N != N or r.K != K or r.M != M for r in runs):
        raise ValueError("all trained runs must share N, K and M")
    act = get_activation(runs[0].activation)
    alpha_max = float(d_alphas[-1])
    grid = with_report(alpha_max, d_alphas, save_at)
    rule = Rule(dyn, activation=act.name)
    label = _arm_label(method, k, c, reweight)
    arms = FiniteArms("retrain", [label], tab.ode)
    bar = make_bar(progress, len(runs), f"retrain N={N} {label}", unit="seed")
    for run in runs:
        s = int(run.metadata.get("seed", 0))
        trained_w = Start(np.array(run.w), np.array(run.w_star), np.array(run.v[-1]),
                          np.array(run.v_star), activation=act.name)
        rng = np.random.default_rng(np.random.SeedSequence([s, 1]))
        if method in registry.NODE_METHODS:
            fp = prune_weights(trained_w.w, trained_w.v, trained_w.w_star, trained_w.v_star,
                               method=method, k=k, reweight=reweight, kernel=kernel,
                               n_samples=n_samples, n_masks=1, seed=rng, n_test=0,
                               predict=False, activation=act.name, progress=False)
            S = np.asarray(fp.subsets[0])
            start = Start(trained_w.w[S], trained_w.w_star, np.asarray(fp.v[0]),
                          trained_w.v_star, activation=act.name)
        else:
            start = prune_edges(trained_w, method, c, reweight, rng, n_samples, act)
        arms.run(label, rule, start, alpha_max, grid, s + RETRAIN_SEED_OFFSET)
        bar.update(1)
    bar.close()
    params = dict(method=method, k=k, c=c if c is not None else k / K, reweight=reweight)
    alpha, eg, se, eg_ode, table = arms.summarise(np.concatenate([[0.0], d_alphas]), N,
                                                  lambda _: params)
    meta = dict(params, eta=rule.eta, eta_v=rule.eta_v, sigma=rule.sigma, kernel=kernel, N=N, K=K,
                M=M,
                seeds=[r.metadata.get("seed") for r in runs], n_samples=n_samples,
                delta_alphas=d_alphas.tolist(), retrain_seed_offset=RETRAIN_SEED_OFFSET,
                alpha_trained=float(runs[0].alpha[-1]), odeprune_version=_io.package_version())
    return WorkflowResult("retrain", "finite", alpha, eg, se, table, meta, eg_ode=eg_ode,
                          curves=arms.sims)
