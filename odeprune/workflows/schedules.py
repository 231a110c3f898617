r"""Repeated pruning decisions during training: iterative magnitude pruning with rewinding and
gradual magnitude pruning, exactly in the limit (the coordinate law, ``docs/theory.md`` §11) and
on real weights at finite N, in the same protocol.

**IMP** (Frankle & Carbin 2019; rewinding as in Frankle et al. 2020): round 0 trains the dense
network from ``alpha = 0`` for ``alpha_per_round``; the rewind point is the dense network at
``rewind_to`` (0: the initial weights). Each later round keeps, among the weights kept so far,
the fraction ``1 - prune_fraction`` of largest trained magnitude (per row or over the layer),
resets the kept weights and ``v`` to the rewind point and trains the masked network for
``alpha_per_round``.

**Gradual magnitude pruning** (Zhu & Gupta 2017): no rewinding; at the times of ``schedule`` the
current weights are pruned by magnitude down to the scheduled density, and training continues
with the mask fixed until the next decision and then to ``alpha_max``.

In the limit the particles carry the decisions exactly and the training between decisions is
the per-class ODE plus the linear response (:mod:`odeprune.coords.linear`): every round, every
density is exact up to the Monte-Carlo error of the decisions, estimated from independent
replicas. At finite N the same protocol runs on real weights with :func:`odeprune.simulate`
(every training segment of a seed has its own SGD stream, the same in every round of IMP).

The engines (:func:`imp_limit`, :func:`imp_finite`, :func:`gradual_limit`,
:func:`gradual_finite`) return dicts of arrays for one start or one seed; the workflows
(:func:`iterative_magnitude_pruning`, :func:`gradual_magnitude_pruning` and their ``_finite``
forms) run them, over seeds at finite N, into a :class:`~odeprune.workflows.WorkflowResult`.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from .. import _io
from .._stats import sem
from .._validate import check_int, check_real
from ..coords.decide import decide, rule_and_scope
from ..coords.law import CoordinateLaw
from ..coords.linear import train_fixed_masks
from ..coords.particles import log_times
from ..coords.run import CoordinateCurve, curve_from_replicas
from ..ode.progress import make_bar, progress_bar
from ..options import Control, Data, Dynamics, Network, Output, Solver
from ..pruning.edge_rules import top_mask
from ..sim import simulate
from ..sparse import SparseOrderParams
from ..state import OrderParams
from ._common import FINITE, LIMIT, changed, check_state, gather_options, seeds_of, time_grid
from .result import WorkflowResult

__all__ = ["check_imp_args", "imp_limit", "imp_finite", "zhu_gupta_schedule", "check_schedule",
           "gradual_limit", "gradual_finite", "segment_seed", "iterative_magnitude_pruning",
           "iterative_magnitude_pruning_finite", "gradual_magnitude_pruning",
           "gradual_magnitude_pruning_finite"]


#: the options of :func:`iterative_magnitude_pruning_finite` and
#: :func:`gradual_magnitude_pruning_finite`
FINITE_USES = ("eta", "sigma", "seeds", "v_star", "progress")


def check_imp_args(rounds, prune_fraction, alpha_per_round, scope, rewind_to=0.0):
    """Validated ``(rounds, prune_fraction, alpha_per_round, scope, rewind_to)``."""
    rounds = check_int("rounds", rounds, 1)
    pf = check_real("prune_fraction", prune_fraction)
    if not pf < 1:
        raise ValueError(f"prune_fraction={prune_fraction!r} must be in (0, 1)")
    if scope not in ("row", "global"):
        raise ValueError(f"scope={scope!r} must be 'row' or 'global'")
    apr = check_real("alpha_per_round", alpha_per_round)
    rw = check_real("rewind_to", rewind_to, allow_zero=True)
    if rw > apr:
        raise ValueError(f"rewind_to={rewind_to!r} must not exceed alpha_per_round={apr!r} "
                         "(the rewind point is taken from the dense round-0 run)")
    return rounds, pf, apr, scope, rw


#: the options of the engines: the per-class ODE of the limit (every option of the learning rule
#: and the solver), the simulations of finite N (the learning rule of SGD, the network, the data)
ODE_USES = (*(f.name for f in fields(Dynamics)), *(f.name for f in fields(Solver)))
SIM_USES = (*(f.name for f in fields(Dynamics) if f.name != "gradient_flow"),
            *(f.name for f in fields(Network)), *(f.name for f in fields(Data)))


def _ode_options(where: str, options: dict, uses: tuple = ()) -> tuple[float, dict, Any]:
    """``(eta, the other options of the per-class ODE given different from their defaults,
    save_at)``."""
    dyn, solver, out = gather_options(where, options, (Dynamics, Solver, Output),
                                      (*ODE_USES, *uses))
    return dyn.eta, {**changed(dyn), **changed(solver)}, out.save_at


def _sim_options(where: str, options: dict) -> tuple[float, int, Any, dict]:
    """``(eta, seed, v_star, the other options of simulate given different from their
    defaults)``."""
    dyn, net, data = gather_options(where, options, (Dynamics, Network, Data), SIM_USES)
    extra = {n: v for n, v in changed(net).items() if n == "activation"}
    return dyn.eta, net.seed, net.v_star, {**changed(dyn), **changed(data), **extra}


def _start_law(state, S, replicas, rng) -> CoordinateLaw:
    """The law a protocol starts from: ``state`` itself if it is a :class:`CoordinateLaw` (e.g.
    a sparse teacher's), else the Gaussian law of an ``OrderParams`` / ``SparseOrderParams``."""
    if isinstance(state, CoordinateLaw):
        return state
    if not isinstance(state, (OrderParams, SparseOrderParams)):
        raise TypeError("state must be an OrderParams, a SparseOrderParams or a CoordinateLaw, "
                        f"got {type(state).__name__}")
    return CoordinateLaw.from_state(state, S=S, replicas=replicas, seed=rng)


def imp_limit(state, *, rounds: int = 3, prune_fraction: float = 0.2,
              alpha_per_round: float = 200.0, scope: str = "row", rewind_to: float = 0.0,
              S: int = 20_000, replicas: int = 8, seed: Any = 0, **options) -> dict:
    """IMP in the limit, exact in every round (coordinate-law particles + per-class ODE).

    ``state``: an ``OrderParams`` (or ``SparseOrderParams``: a masked start, e.g. a sparse
    teacher's per-class state), sampled into ``replicas`` x ``S`` particles, or a
    :class:`CoordinateLaw` used as it is. ``**options``: the learning rule
    (:class:`~odeprune.options.Dynamics`; ``eta`` default 0.5,
    :data:`~odeprune.workflows._common.WORKFLOW_DEFAULTS`) and the solver
    (:class:`~odeprune.options.Solver`) of the per-class ODE, flat or whole; :func:`imp_limit`
    also takes ``save_at``, the saved times of a round (default
    :func:`odeprune.coords.particles.log_times`).

    Returns a dict with ``alpha`` (the saved times of a round), per round ``eg`` / ``eg_se``
    (mean and Monte-Carlo standard error over ``replicas`` at the saved times), ``c`` (kept
    fraction), ``eg_pruned`` / ``eg_pruned_se`` (the previous round's trained network pruned to
    this round's mask, before rewinding; NaN for round 0), ``laws`` (the trained law of every
    round) and ``curves`` (per round, a :class:`~odeprune.coords.CoordinateCurve`)."""
    eta, ode, save_at = _ode_options("imp_limit", options, ("save_at",))
    rounds, pf, apr, scope, rw = check_imp_args(rounds, prune_fraction, alpha_per_round, scope,
                                                rewind_to)
    rule, scope = rule_and_scope("magnitude", scope)
    grid = log_times(apr) if save_at is None else np.unique(np.asarray(save_at, float))
    ss = np.random.SeedSequence(seed if isinstance(seed, int) else 0)
    s_law, s_train, s_dec = (np.random.default_rng(x) for x in ss.spawn(3))
    law0 = _start_law(state, S, replicas, s_law)
    rewind = law0
    if rw > 0:
        rewind, _ = train_fixed_masks(law0, eta, rw, seed=s_train, **ode)
    out = dict(alpha=grid, eg=[], eg_se=[], c=[], eg_pruned=[], eg_pruned_se=[], laws=[],
               curves=[])
    start, pruned = law0, (np.nan, np.nan)
    for r in range(rounds + 1):
        if r == 0 and rw > 0:  # round 0 continues the dense run from the rewind point
            trained, cvs = train_fixed_masks(rewind, eta, apr - rw, seed=s_train, **ode)
            curve = curve_from_replicas(cvs, trained, offset=rw)
            e = np.interp(grid, curve.alpha, curve.eg)
            se = np.interp(grid, curve.alpha, curve.eg_se)
        else:
            trained, cvs = train_fixed_masks(start, eta, apr, save_at=grid, seed=s_train, **ode)
            curve = curve_from_replicas(cvs, trained)
            e, se = curve.eg, curve.eg_se
        out["eg"].append(e)
        out["eg_se"].append(se)
        out["c"].append(start.density())
        out["eg_pruned"].append(pruned[0])
        out["eg_pruned_se"].append(pruned[1])
        out["laws"].append(trained)
        out["curves"].append(curve)
        if r == rounds:
            break
        decided = decide(trained, rule, 1.0 - pf, scope=scope, seed=s_dec)
        pruned = decided.eg()
        start = rewind.replace(mask=decided.mask)
    for k in ("eg", "eg_se"):
        out[k] = np.array(out[k])
    out["meta"] = dict(rounds=rounds, prune_fraction=pf, alpha_per_round=apr, eta=eta,
                       scope=scope, rewind_to=rw, S=law0.S, replicas=law0.replicas, seed=seed,
                       K=law0.K, M=law0.M, **{k: v for k, v in ode.items()})
    return out


def _prune_weights(w: np.ndarray, mask: np.ndarray, keep: float, scope: str) -> np.ndarray:
    """Keep the fraction ``keep`` of the kept weights of ``w`` (K, N) of largest magnitude (per
    row: the same count in every row; or over the layer)."""
    scores = np.where(mask, np.abs(w), -np.inf)
    if scope == "row":
        n_keep = int(round(mask.sum(axis=1).min() * keep))
        new = np.stack([top_mask(scores[i], n_keep) for i in range(w.shape[0])])
    else:
        new = top_mask(scores.ravel(), int(round(mask.sum() * keep))).reshape(mask.shape)
    return new & mask


def segment_seed(seed: int, k: int) -> int:
    """The SGD seed of training segment ``k`` of seed ``seed`` (its own stream)."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0] % (2 ** 31))


def imp_finite(N: int, K: int, M: int, *, rounds: int = 3, prune_fraction: float = 0.2,
               alpha_per_round: float = 200.0, scope: str = "row", rewind_to: float = 0.0,
               init=None, fresh_streams: bool = True, **options) -> dict:
    """IMP on the real weights of one network (seed ``seed``: the initial draw of
    :meth:`OrderParams.random`), the protocol of :func:`imp_limit`. Returns per round ``eg``
    (after training), ``c``, ``eg_pruned`` and the masks. ``**options``: the learning rule
    (:class:`~odeprune.options.Dynamics`), the network (:class:`~odeprune.options.Network`:
    ``v_star``, ``activation``, ``seed``) and the samples (:class:`~odeprune.options.Data`;
    ``n_test`` default 2, :data:`~odeprune.workflows._common.WORKFLOW_DEFAULTS`) of
    :func:`odeprune.simulate`, flat or whole."""
    eta, seed, v_star, sim = _sim_options("imp_finite", options)
    rounds, pf, apr, scope, rw = check_imp_args(rounds, prune_fraction, alpha_per_round, scope,
                                                rewind_to)
    common = dict(v_star=v_star, progress=False, **sim)
    seg = segment_seed(seed, 0)
    first = simulate(N, K, M, eta, rw if rw > 0 else apr, save_at=[0.0], seed=seed, init=init,
                     **common)
    if rw > 0:
        w0, ws, v0 = first.w, first.w_star, first.v[-1]
    elif init is not None:
        w0, ws, v0 = init
    else:
        w0, ws, v0, _ = OrderParams.draw_weights(N, K, M, v_star=v_star, seed=seed)
    if rw > 0:
        res = simulate(N, K, M, eta, apr - rw, save_at=[0.0], seed=seg, init=(w0, ws, v0),
                       **common)
    else:
        res = first
    mask = np.ones((K, N), bool)
    eg, c, eg_pruned, masks = [float(res.eg[-1])], [1.0], [np.nan], [mask]
    w_final, initial = [res.w], [res.initial]
    for _ in range(rounds):
        mask = _prune_weights(res.w, mask, 1.0 - pf, scope)
        eg_pruned.append(OrderParams.from_weights(res.w * mask, res.w_star, res.v[-1],
                                                  res.v_star, activation=res.activation).eg())
        if fresh_streams:
            seg = segment_seed(seed, len(eg) + 1)
        res = simulate(N, K, M, eta, apr, save_at=[0.0], seed=seg, init=(w0, ws, v0), mask=mask,
                       **common)
        eg.append(float(res.eg[-1]))
        c.append(float(mask.mean()))
        masks.append(mask)
        w_final.append(res.w)
        initial.append(res.initial)
    return dict(eg=np.array(eg), c=np.array(c), eg_pruned=np.array(eg_pruned),
                masks=np.array(masks), w=w_final, initial=initial)


def zhu_gupta_schedule(final_density: float, alpha_start: float, alpha_end: float,
                       n_prunes: int, initial_density: float = 1.0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Zhu & Gupta's cubic schedule: ``n_prunes`` decisions evenly spaced on
    ``[alpha_start, alpha_end]`` with density ``d_f + (d_i - d_f)(1 - t)^3``, ``t`` from
    ``1/n`` to 1. Returns ``(alphas, densities)``."""
    d_f = check_real("final_density", final_density)
    d_i = check_real("initial_density", initial_density)
    if not d_f <= d_i <= 1:
        raise ValueError(f"need 0 < final_density <= initial_density <= 1, got {d_f}, {d_i}")
    n = check_int("n_prunes", n_prunes, 1)
    a0 = check_real("alpha_start", alpha_start, allow_zero=True)
    a1 = check_real("alpha_end", alpha_end, allow_zero=True)
    if a1 < a0:
        raise ValueError(f"alpha_end={alpha_end!r} is before alpha_start={alpha_start!r}")
    t = np.arange(1, n + 1) / n
    return a0 + (a1 - a0) * (t - 1 / n) * n / max(n - 1, 1), d_f + (d_i - d_f) * (1 - t) ** 3


def check_schedule(schedule, alpha_max: float, density: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(alphas, densities)``: times in ``[0, alpha_max]`` strictly increasing,
    densities in (0, ``density``] and non-increasing."""
    try:
        alphas, dens = (np.asarray(x, dtype=float) for x in schedule)
    except (TypeError, ValueError):
        raise ValueError("schedule must be a pair (alphas, densities) of equal-length "
                         "sequences of numbers") from None
    if alphas.ndim != 1 or alphas.shape != dens.shape or alphas.size == 0:
        raise ValueError(f"schedule: alphas and densities must be 1-D of equal non-zero length, "
                         f"got shapes {alphas.shape} and {dens.shape}")
    if not (np.all(np.isfinite(alphas)) and np.all(np.isfinite(dens))):
        raise ValueError("schedule has non-finite entries")
    if np.any(np.diff(alphas) <= 0) or alphas[0] < 0 or alphas[-1] > alpha_max:
        raise ValueError(f"schedule times must increase strictly within [0, {alpha_max}]")
    if np.any(np.diff(dens) > 0):
        raise ValueError("schedule densities must be non-increasing (gradual pruning never "
                         "regrows weights)")
    if dens[0] > density or dens[-1] <= 0:
        raise ValueError(f"schedule densities must lie in (0, {density}] (the current "
                         f"density), got {dens[0]} .. {dens[-1]}")
    return alphas, dens


def gradual_limit(state, schedule, alpha_max: float, *, scope: str = "row", S: int = 20_000,
                  replicas: int = 8, seed: Any = 0, **options) -> dict:
    """Gradual magnitude pruning in the limit, exact (see the module docstring). ``schedule``:
    ``(alphas, densities)``, e.g. :func:`zhu_gupta_schedule`. Returns ``alpha``, ``eg``,
    ``eg_se`` (the piecewise curve over the whole run; a decision time appears twice, before
    and after it), ``density`` at each saved time, ``law`` (the final law) and ``curve`` (all
    of it as a :class:`~odeprune.coords.CoordinateCurve`). ``**options``: as
    :func:`imp_limit`."""
    eta, ode, _ = _ode_options("gradual_limit", options)
    alpha_max = check_real("alpha_max", alpha_max)
    check_schedule(schedule, alpha_max)  # the form, before any work
    rule, scope = rule_and_scope("magnitude", scope)
    ss = np.random.SeedSequence(seed if isinstance(seed, int) else 0)
    s_law, s_train, s_dec = (np.random.default_rng(x) for x in ss.spawn(3))
    law = _start_law(state, S, replicas, s_law)
    d_now = law.density()  # a masked start (e.g. a sparse-teacher law) prunes on from there
    alphas, dens = check_schedule(schedule, alpha_max, density=d_now + 1e-12)
    t = 0.0
    parts, D = [], []
    for a_next, d_next in [*zip(alphas, dens), (alpha_max, None)]:
        if a_next > t:
            law, cvs = train_fixed_masks(law, eta, a_next - t, save_at=log_times(a_next - t, 8),
                                         seed=s_train, **ode)
            parts.append(curve_from_replicas(cvs, law, offset=t))
            D.append(np.full(len(parts[-1]), law.density()))
            t = a_next
        if d_next is not None and d_next < d_now:
            law = decide(law, rule, d_next / d_now, scope=scope, seed=s_dec)
            d_now = d_next
    cat = {k: np.concatenate([getattr(c, k) for c in parts], axis=-1 if k == "eg_replicas"
                             else 0) for k in ("alpha", "eg", "eg_se", "eg_replicas", "Q", "R",
                                               "v")}
    curve = CoordinateCurve(**cat, final=law, method="linear",
                            metadata=dict(schedule_alpha=alphas.tolist(),
                                          schedule_density=dens.tolist(), eta=eta,
                                          scope=scope))
    e, se = law.eg()
    return dict(alpha=curve.alpha, eg=curve.eg, eg_se=curve.eg_se, density=np.concatenate(D),
                eg_final=e, eg_final_se=se, law=law, curve=curve, schedule=(alphas, dens))


def gradual_finite(N: int, K: int, M: int, schedule, alpha_max: float, *, scope: str = "row",
                   **options) -> dict:
    """Gradual magnitude pruning on the real weights of one network (the protocol of
    :func:`gradual_limit`; every training segment has its own SGD stream). ``**options``: as
    :func:`imp_finite`."""
    eta, seed, v_star, sim = _sim_options("gradual_finite", options)
    alpha_max = check_real("alpha_max", alpha_max)
    alphas, dens = check_schedule(schedule, alpha_max)
    if scope not in ("row", "global"):
        raise ValueError(f"scope={scope!r} must be 'row' or 'global'")
    w, ws, v = OrderParams.draw_weights(N, K, M, v_star=v_star, seed=seed)[:3]
    v = np.asarray(v, float)
    mask = np.ones((K, N), bool)
    t, d_now, res = 0.0, 1.0, None
    for k, (a_next, d_next) in enumerate([*zip(alphas, dens), (alpha_max, None)]):
        if a_next > t:
            res = simulate(N, K, M, eta, a_next - t, save_at=[0.0], seed=segment_seed(seed, k),
                           init=(w, ws, v), mask=mask, v_star=v_star, progress=False, **sim)
            w, v = res.w, res.v[-1]
            t = a_next
        if d_next is not None and d_next < d_now:
            mask = _prune_weights(w, mask, d_next / d_now, scope)
            w = w * mask
            d_now = d_next
    final = OrderParams.from_weights(w * mask, ws, v, res.v_star if res is not None else v_star)
    return dict(eg_final=float(final.eg()), density=float(mask.mean()), mask=mask)


def iterative_magnitude_pruning(state: OrderParams, *, rounds: int = 3,
                                prune_fraction: float = 0.2, alpha_per_round: float = 200.0,
                                scope: str = "row", rewind_to: float = 0.0, seed: int = 0,
                                n_samples: int = 160_000, replicas: int = 8,
                                **options) -> WorkflowResult:
    r"""Iterative magnitude pruning with rewinding, exactly in the limit in every round.

    Round 0 trains the dense network from ``state`` for ``alpha_per_round``; each further round
    keeps, among the weights kept so far, the fraction ``1 - prune_fraction`` of largest trained
    magnitude (per row, or over the layer with ``scope="global"``), rewinds the kept weights
    and ``v`` to the dense network at ``rewind_to`` (0: the initial weights) and trains the
    masked network for ``alpha_per_round``. The decisions act on particles of the coordinate law
    (``docs/theory.md`` §11; :func:`imp_limit`), the training between them is
    the per-class ODE plus the linear response: exact up to the Monte-Carlo error of the
    decisions, ``n_samples`` particles split over ``replicas`` independent replicas whose spread
    gives ``eg_se`` at every saved time. The protocol of
    :func:`iterative_magnitude_pruning_finite`.

    ``**options``: the learning rule (:class:`~odeprune.options.Dynamics`: ``eta`` (default 0.5,
    :data:`~odeprune.workflows._common.WORKFLOW_DEFAULTS`), ``eta_v``, ``sigma``), ``save_at``
    (the saved times of a round, default :func:`~odeprune.workflows.time_grid`) and
    ``progress``, flat or whole.

    Returns
    -------
    WorkflowResult
        Arm ``"round <r>"`` per round, with the learning curve of that round (replica mean); the
        table has per round the kept fraction ``c``, ``eg`` after training with ``eg_se``,
        ``eg_pruned`` (the previous round's trained network pruned to this round's mask, before
        rewinding) with ``eg_pruned_se``.
    """
    dyn, out, ctl, _ = gather_options("iterative_magnitude_pruning", options, LIMIT,
                                      ("eta", "eta_v", "sigma", "save_at", "progress"))
    eta, eta_v, sigma, save_at, progress = dyn.eta, dyn.eta_v, dyn.sigma, out.save_at, \
        ctl.progress
    state = check_state(state)
    rounds, pf, apr, scope, rw = check_imp_args(rounds, prune_fraction,
                                                alpha_per_round, scope, rewind_to)
    replicas = check_int("replicas", replicas, 2)
    S = check_int("n_samples", n_samples, 2 * replicas) // replicas
    grid = time_grid(apr) if save_at is None else np.unique(np.asarray(save_at, float))
    with progress_bar(progress, 1, "IMP (limit)", unit="run") as bar:
        out = imp_limit(state, rounds=rounds, prune_fraction=pf, alpha_per_round=apr,
                        scope=scope, rewind_to=rw, S=S, replicas=replicas, seed=seed,
                        save_at=grid, dynamics=dyn)
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
                                       scope: str = "row", rewind_to: float = 0.0,
                                       fresh_streams: bool = True, **options) -> WorkflowResult:
    r"""Iterative magnitude pruning with rewinding at finite N, over seeds
    (:func:`imp_finite` per seed: real weights, real masks; a new SGD stream
    per round, the limit's protocol, or with ``fresh_streams=False`` one stream replayed in
    every round).

    Round ``r`` trains the network whose mask keeps ``(1 - prune_fraction)^r`` of the weights for
    ``alpha_per_round``; the table has one row per round: the kept fraction, :math:`\epsilon_g`
    after training (mean and standard error over seeds) and right after pruning the previous
    round's trained weights (one-shot magnitude pruning at that sparsity).

    ``**options``: ``eta`` (default 0.5) and ``sigma`` (:class:`~odeprune.options.Dynamics`),
    ``seeds`` (:class:`~odeprune.options.Ensemble`; default 0..7), ``v_star``
    (:class:`~odeprune.options.Network`) and ``progress``, flat or whole
    (:data:`~odeprune.workflows._common.WORKFLOW_DEFAULTS`).

    Returns
    -------
    WorkflowResult
        Arm ``"round <r>"`` per round (final errors only: ``alpha`` holds ``alpha_per_round``).
    """
    dyn, _, ctl, _, net, ens = gather_options("iterative_magnitude_pruning_finite", options,
                                              FINITE, FINITE_USES)
    eta, sigma, v_star, seeds = dyn.eta, dyn.sigma, net.v_star, seeds_of(ens)
    rounds, pf, apr, scope, rw = check_imp_args(rounds, prune_fraction,
                                                alpha_per_round, scope, rewind_to)
    res = []
    bar = make_bar(ctl.progress, len(seeds), f"IMP N={N}", unit="seed")
    for s in seeds:
        res.append(imp_finite(N, K, M, rounds=rounds, prune_fraction=pf,
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
                              scope: str = "row", seed: int = 0, n_samples: int = 160_000,
                              replicas: int = 8, **options) -> WorkflowResult:
    r"""Gradual magnitude pruning during training (Zhu & Gupta 2017), exactly in the limit.

    ``schedule``: ``(alphas, densities)`` (e.g. :func:`zhu_gupta_schedule`):
    at each time the current weights are pruned by magnitude to that density (per row or over
    the layer); no rewinding; training goes on with the mask fixed to ``alpha_max``. Exact up
    to the Monte-Carlo error of the decisions (``docs/theory.md`` §11;
    :func:`gradual_limit`). The protocol of
    :func:`gradual_magnitude_pruning_finite`.

    ``**options``: the learning rule (:class:`~odeprune.options.Dynamics`: ``eta`` (default 0.5,
    :data:`~odeprune.workflows._common.WORKFLOW_DEFAULTS`), ``eta_v``, ``sigma``) and
    ``progress``, flat or whole.

    Returns
    -------
    WorkflowResult
        One arm ``"gradual"``: the curve over the whole run (with ``eg_se``); the table has the
        final density and :math:`\epsilon_g`.
    """
    dyn, ctl = gather_options("gradual_magnitude_pruning", options, (Dynamics, Control),
                              ("eta", "eta_v", "sigma", "progress"))
    eta, eta_v, sigma = dyn.eta, dyn.eta_v, dyn.sigma
    state = check_state(state)
    replicas = check_int("replicas", replicas, 2)
    S = check_int("n_samples", n_samples, 2 * replicas) // replicas
    with progress_bar(ctl.progress, 1, "gradual pruning (limit)", unit="run") as bar:
        out = gradual_limit(state, schedule, alpha_max, scope=scope, S=S, replicas=replicas,
                            seed=seed, dynamics=dyn)
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
                                     scope: str = "row", **options) -> WorkflowResult:
    """Gradual magnitude pruning on real weights at finite N, over seeds
    (:func:`gradual_finite` per seed). ``**options``: as
    :func:`iterative_magnitude_pruning_finite`."""
    dyn, _, ctl, _, net, ens = gather_options("gradual_magnitude_pruning_finite", options,
                                              FINITE, FINITE_USES)
    eta, sigma, v_star, seeds = dyn.eta, dyn.sigma, net.v_star, seeds_of(ens)
    res = []
    bar = make_bar(ctl.progress, len(seeds), f"gradual N={N}", unit="seed")
    for s in seeds:
        res.append(gradual_finite(N, K, M, schedule, alpha_max, eta=eta, v_star=v_star,
                                  sigma=sigma, scope=scope, seed=s))
        bar.update(1)
    bar.close()
    E = np.array([r["eg_final"] for r in res])
    table = [dict(workflow="gradual", layer="finite", arm="gradual",
                  c=float(res[0]["density"]), alpha=float(alpha_max), eg=float(E.mean()),
                  eg_se=float(sem(E)), n=len(seeds), N=N)]
    alphas, dens = check_schedule(schedule, alpha_max)
    meta = dict(schedule_alpha=alphas.tolist(), schedule_density=dens.tolist(),
                alpha_max=float(alpha_max), seeds=seeds, eta=eta, v_star=v_star, sigma=sigma,
                scope=scope, N=N, K=K, M=M, odeprune_version=_io.package_version())
    return WorkflowResult("gradual", "finite", {"gradual": np.array([float(alpha_max)])},
                          {"gradual": E[:, None]}, {"gradual": np.array([sem(E)])}, table,
                          meta, curves={"gradual": res})
