"""The lottery-ticket papers' experiments with a sparse teacher, in the limit and at finite N:
how fast tickets (oracle, magnitude, IMP, random) converge, and whether magnitude pruning of the
trained dense student finds the support (``docs/sparse_teacher.md``). The finite-N seeds run in
parallel (:func:`odeprune._pool.map_parallel`, in the seeds' order)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .._pool import map_parallel
from .._stats import sem
from ..coords.decide import decide
from ..coords.law import CoordinateLaw
from ..coords.run import integrate_law
from ..ode.dynamics import integrate
from ..options import OPTIONS, Dynamics, Option, Record, Solver, gather
from ..sim import simulate
from ..sparse import SparseOrderParams
from ..workflows import schedules
from .recovery import (
    rank_correlation_finite,
    rank_correlation_limit,
    support_recovery_finite,
    support_recovery_law,
    support_recovery_limit,
    time_to_reach,
    top_rows,
)
from .states import sparse_teacher_state
from .support import (
    Teacher,
    check_teacher_density,
    from_weights_split,
    oracle_ticket_mask,
    sparse_teacher_weights,
    student_mask,
)

__all__ = ["Convergence", "magnitude_ticket_limit", "convergence_limit", "convergence_finite",
           "support_recovery_experiment", "V_STAR"]

#: the teacher's second layer in these experiments (the table's default 4 is the paper's dense
#: teacher; a sparse teacher with ``v* = 1`` is the lottery-ticket papers' scale)
V_STAR = 1.0

#: the clock of a convergence experiment (no default is written twice: ``alpha_max`` takes the
#: table's check, the experiments' own default)
CONVERGENCE_OPTIONS = {o.name: o for o in (
    Option("alpha_max", 1000.0, "train every arm for this alpha", "positive"),
    Option("alpha_T", 200.0, "alpha of the one-shot magnitude decision (and of each IMP round)",
           "positive"),
    Option("thresholds", (1e-2, 1e-3), "the first-crossing times of eps_g <= each threshold",
           "reals"),
)}


@dataclass(frozen=True)
class Convergence(Record):
    """The clock of :func:`convergence_limit` and :func:`convergence_finite`: every arm trained
    for ``alpha_max``, the magnitude ticket decided at ``alpha_T``, the time to reach
    ``eps_g <= theta`` for each of ``thresholds``. Flat keywords or whole
    (``convergence=``)."""

    TABLE = CONVERGENCE_OPTIONS

    alpha_max: float = CONVERGENCE_OPTIONS["alpha_max"].default
    alpha_T: float = CONVERGENCE_OPTIONS["alpha_T"].default
    thresholds: Any = CONVERGENCE_OPTIONS["thresholds"].default


_SOLVER_KEYS = tuple(f.name for f in fields(Solver))


def _options(where: str, options: dict, records: tuple, solver: bool = True):
    """``(records, dynamics, ode)`` of an experiment: its own ``records`` (the teacher's
    ``v_star`` defaults to :data:`V_STAR`), the learning rule (``eta`` defaults to the command
    line's 0.5) and ``ode``, the options to pass on to its ODE runs as flat keywords: the rule's
    besides ``eta`` where they differ from the table's defaults, and the solver's keywords as
    given (their values checked here, before any work)."""
    kw = dict(options)
    if "teacher" not in kw:
        kw.setdefault("v_star", V_STAR)
    if "dynamics" not in kw:
        kw.setdefault("eta", OPTIONS["eta"].cli_default)
    solver_kw = {k: kw.pop(k) for k in _SOLVER_KEYS if solver and k in kw}
    *recs, dyn = gather(where, kw, (*records, Dynamics))
    Solver(**solver_kw)
    ode = {k: v for k, v in dyn.as_dict().items() if k != "eta" and v != OPTIONS[k].default}
    return recs, dyn, {**ode, **solver_kw}


# ---------------------------------------------------------------------------- tickets, limit
def magnitude_ticket_limit(state: SparseOrderParams, c: float, *, alpha_T: float,
                           alpha_max: float, eta: float = 0.5, save_at=None, S: int = 20_000,
                           replicas: int = 8, seed: Any = 0, scope: str = "row",
                           **ode) -> dict:
    """The magnitude ticket in the limit, exactly (``docs/theory.md`` §9, §11): train the dense
    student ``state`` to ``alpha_T`` with the two-time overlaps, draw the joint law of
    ``(w(0), w(alpha_T), w*)`` per class (:meth:`CoordinateLaw.from_joint`), keep the fraction
    ``c`` of largest trained ``|w|`` (per row, or ``scope="global"``), rewind the kept weights and
    ``v`` to 0 and train the ticket for ``alpha_max`` (:func:`odeprune.coords.integrate_law`).

    Returns
    -------
    dict
        ``curve`` (the ticket's :class:`~odeprune.coords.CoordinateCurve`, time since
        rewinding, with ``eg_se``), ``dense`` (the dense curve to ``alpha_T``), ``law_T``,
        ``law_0``, ``decided`` (the law at ``alpha_T`` with the ticket's mask), ``recovery``
        (:func:`support_recovery_law` of the decision).
    """
    ss = np.random.SeedSequence(seed if isinstance(seed, int) else 0)
    s_law, s_dec, s_train = (np.random.default_rng(x) for x in ss.spawn(3))
    dense = integrate(state, eta, alpha_T, track_initial=True, progress=False, **ode)
    law_T, law_0 = CoordinateLaw.from_joint(dense, -1, S=S, replicas=replicas, seed=s_law)
    rule = "magnitude_edge" if scope == "row" else "magnitude_edge_global"
    decided = decide(law_T, rule, c, seed=s_dec)
    ticket = law_0.replace(mask=decided.mask)
    curve = integrate_law(ticket, eta, alpha_max, save_at=save_at, seed=s_train,
                          progress=False, **ode)
    return dict(curve=curve, dense=dense, law_T=law_T, law_0=law_0, decided=decided,
                recovery=support_recovery_law(decided, R=dense.R[-1]))


def _crossings(alpha, E, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the rows of ``E`` of the first-crossing times (NaN where a
    row never crosses: then the mean is NaN too)."""
    A = time_to_reach(alpha, np.atleast_2d(E), thresholds)
    if A.shape[0] == 1:
        return A[0], np.zeros(A.shape[1])
    return A.mean(0), sem(A)


def convergence_limit(K: int, M: int, teacher_density: float, *, N_init: int = 500,
                      seed: int = 0, imp_rounds: int = 3, S: int = 20_000, replicas: int = 8,
                      save_at=None, **options) -> dict:
    """How fast do tickets converge, in the limit (from the order parameters of one real draw
    of size ``N_init``, seed ``seed``)? Arms, all trained for ``alpha_max`` from the same
    initial weights, kept fraction ``c = teacher_density``:

    - ``dense``: the dense student;
    - ``oracle``: the oracle ticket (student unit ``i`` masked with the support of teacher
      ``i mod M``);
    - ``magnitude``: one-shot magnitude pruning of the dense student trained to ``alpha_T``,
      rewound to 0 (:func:`magnitude_ticket_limit`);
    - ``imp``: IMP with rewinding to 0, ``imp_rounds`` rounds of ``alpha_T`` down to ``c``
      (:func:`odeprune.workflows.schedules.imp_limit`); its last round is the ticket;
    - ``random``: an independent Bernoulli(c) mask.

    ``options``, flat or as whole records: the clock (:class:`Convergence`: ``alpha_max``,
    ``alpha_T``, ``thresholds``), the teacher (:class:`~odeprune.teachers.support.Teacher`:
    ``v_star``, default :data:`V_STAR`, ``shared_support``, ``normalise``), the learning rule
    (:class:`~odeprune.options.Dynamics`, ``eta`` default 0.5) and the solver's keywords
    (``rtol``, ``method``, ...), passed on to every run.

    Returns a dict with per arm ``alpha``, ``eg``, ``eg_se`` (the Monte-Carlo error of the
    coordinate-law arms; 0 for the exact ODE arms), ``alpha_theta`` and ``alpha_theta_se`` (the
    time to reach each threshold, mean and error over replicas), ``c`` (kept fraction),
    and ``recovery`` (support recovery of the one-shot decision, particles and exact).
    """
    (teacher, clock), dyn, ode = _options("convergence_limit", options, (Teacher, Convergence))
    eta, alpha_max, alpha_T = dyn.eta, clock.alpha_max, clock.alpha_T
    c = check_teacher_density(teacher_density)
    th = np.atleast_1d(np.asarray(clock.thresholds, float))
    grid = (np.unique(np.concatenate([[0.0], np.geomspace(0.1, alpha_max, 120)]))
            if save_at is None else np.asarray(save_at, float))
    common = dict(seed=seed, N=N_init, teacher=teacher)
    dense_state = sparse_teacher_state(K, M, c, None, **common)
    out = dict(K=K, M=M, c=c, thresholds=th.tolist(), arms={})

    def ode_arm(state):
        cv = integrate(state, eta, alpha_max, save_at=grid, progress=False, **ode)
        a, se = _crossings(cv.alpha, cv.eg, th)
        return dict(alpha=cv.alpha, eg=cv.eg, eg_se=np.zeros_like(cv.eg), alpha_theta=a,
                    alpha_theta_se=se, c=state.density()[1])

    def law_arm(curve, density):
        a, se = _crossings(curve.alpha, curve.eg_replicas, th)
        return dict(alpha=curve.alpha, eg=curve.eg, eg_se=curve.eg_se, alpha_theta=a,
                    alpha_theta_se=se, c=density)

    out["arms"]["dense"] = ode_arm(dense_state)
    if c < 1:
        out["arms"]["oracle"] = ode_arm(sparse_teacher_state(K, M, c, "oracle", **common))
        out["arms"]["random"] = ode_arm(sparse_teacher_state(K, M, c, c, **common))
        mt = magnitude_ticket_limit(dense_state, c, alpha_T=alpha_T, alpha_max=alpha_max,
                                    eta=eta, save_at=grid, S=S, replicas=replicas, seed=seed,
                                    **ode)
        out["arms"]["magnitude"] = law_arm(mt["curve"], mt["decided"].density())
        rec = mt["recovery"]
        exact = support_recovery_limit(mt["dense"].final, c)
        out["recovery"] = dict(p_on=rec["p_on_mean"], p_on_se=rec["p_on_se"],
                               p_off=rec["p_off_mean"], p_off_se=rec["p_off_se"],
                               p_on_exact=exact["p_on"], p_off_exact=exact["p_off"])
        if imp_rounds > 0:
            pf = 1.0 - c ** (1.0 / imp_rounds)
            law0 = CoordinateLaw.from_state(dense_state, S=S, replicas=replicas,
                                            seed=np.random.SeedSequence([seed, 7]))
            imp = schedules.imp_limit(law0, rounds=imp_rounds, prune_fraction=pf,
                                      alpha_per_round=alpha_T, eta=eta, seed=seed, **ode)
            last = imp["laws"][-1]
            # the last round's ticket, trained for alpha_max (the rounds run alpha_T each)
            cv = integrate_law(law0.replace(mask=last.mask), eta, alpha_max, save_at=grid,
                               seed=np.random.SeedSequence([seed, 8]), progress=False, **ode)
            out["arms"]["imp"] = law_arm(cv, law0.replace(mask=last.mask).density())
    return out


# ---------------------------------------------------------------------------- finite N


def convergence_finite(K: int, M: int, teacher_density: float, *, N: int = 500,
                       seeds=(0, 1, 2, 3), save_at=None, workers: int | None = None,
                       **options) -> dict:
    """The arms of :func:`convergence_limit` on real weights (online SGD, the weights of
    :func:`sparse_teacher_weights` for each seed): ``dense``, ``oracle``, ``random`` and the
    one-shot ``magnitude`` ticket (dense SGD to ``alpha_T``, the ``round(c N)`` largest trained
    ``|w|`` per row, rewound to the initial weights and ``v``). Per arm ``alpha``, ``eg`` (seeds,
    n) (from the weights' order parameters, noiseless), ``alpha_theta`` (seeds, thresholds),
    means and standard errors over seeds (NaN where some seed never reaches a threshold),
    ``reached`` (fraction of seeds). ``options`` as :func:`convergence_limit`'s, but for the
    solver's (online SGD: ``gradient_flow`` does not apply); the learning rule is passed to
    every run."""
    (teacher, clock), dyn, _ = _options("convergence_finite", options, (Teacher, Convergence),
                                        solver=False)
    if dyn.gradient_flow:
        raise ValueError("gradient_flow does not apply to convergence_finite (online SGD)")
    alpha_max, alpha_T = clock.alpha_max, clock.alpha_T
    rule = dict(eta_v=dyn.eta_v, sigma=dyn.sigma, train_second_layer=dyn.train_second_layer,
                weight_decay=dyn.weight_decay, l1=dyn.l1)
    c = check_teacher_density(teacher_density)
    th = np.atleast_1d(np.asarray(clock.thresholds, float))
    grid = (np.unique(np.concatenate([[0.0], np.geomspace(0.1, alpha_max, 60)]))
            if save_at is None else np.asarray(save_at, float))
    seeds = [int(s) for s in seeds]

    def one(seed):
        w, ws, v, vs, sup = sparse_teacher_weights(N, K, M, c, teacher.v_star, seed,
                                                   shared_support=teacher.shared_support,
                                                   normalise=teacher.normalise)
        run = dict(save_at=grid, v_star=vs, n_test=0, progress=False, **rule)
        masks = dict(dense=None)
        if c < 1:
            masks["oracle"] = oracle_ticket_mask(sup, K)
            masks["random"] = student_mask(c, sup, K, np.random.SeedSequence([seed, 5]))
            pre = simulate(N, K, M, dyn.eta, alpha_T, init=(w, ws, v),
                           seed=schedules.segment_seed(seed, 0), v_star=vs, n_test=0,
                           progress=False, save_at=[0.0], **rule)
            masks["magnitude"] = top_rows(pre.w, c)
        out = {}
        for arm, m in masks.items():
            res = simulate(N, K, M, dyn.eta, alpha_max, init=(w, ws, v), mask=m,
                           seed=schedules.segment_seed(seed, 1), **run)
            out[arm] = (np.asarray(res.alpha), np.asarray(res.eg),
                        1.0 if m is None else float(np.mean(m)))
        return out

    per_seed = map_parallel(one, seeds, workers, name="odeprune-teachers")
    arms = {}
    for arm in per_seed[0]:
        alpha = per_seed[0][arm][0]
        E = np.array([r[arm][1] for r in per_seed])
        A = time_to_reach(alpha, E, th)
        arms[arm] = dict(alpha=alpha, eg=E, eg_mean=E.mean(0), eg_se=sem(E), alpha_theta_seeds=A,
                         alpha_theta=A.mean(0), alpha_theta_se=sem(A),
                         reached=np.mean(np.isfinite(A), 0),
                         c=float(np.mean([r[arm][2] for r in per_seed])))
    return dict(K=K, M=M, N=N, c=c, seeds=seeds, thresholds=th.tolist(), arms=arms)


def support_recovery_experiment(K: int, M: int, teacher_density: float, *, alpha_T,
                                kept=None, N: int = 500, seeds=(0, 1, 2, 3, 4, 5, 6, 7),
                                S: int = 0, replicas: int = 8, workers: int | None = None,
                                **options) -> list[dict]:
    """Does magnitude pruning of the trained dense student find the teacher's support, and does
    a good coordinate at initialisation stay good? In the limit and at finite N, from the same
    initial weights (seed by seed): the dense student trained to each ``alpha_T`` by the ODE
    (from the exact per-class state of the seed's weights) and by online SGD (N).

    Rows (one per seed, ``alpha_T``, kept fraction ``c`` in ``kept`` (default ``[c_t]``) and
    layer ``"limit"`` / ``"finite"``): ``p_on``, ``p_off`` (:func:`support_recovery_limit` exact;
    :func:`support_recovery_finite` on the real weights), ``rho`` (Spearman of ``|w|`` at 0 and at
    ``alpha_T``) and ``overlap`` (of the magnitude masks at 0 and ``alpha_T``). With ``S > 0`` the
    limit rows have ``rho`` and ``overlap`` from ``S`` joint-law particles in ``replicas``
    replicas (with ``rho_se``, ``overlap_se``, their Monte-Carlo errors).

    ``options``: the teacher (:class:`~odeprune.teachers.support.Teacher`: ``v_star``, default
    :data:`V_STAR`, ``shared_support``, ``normalise``), ``eta`` (default 0.5) and the options of
    the limit's ODE (the rest of :class:`~odeprune.options.Dynamics`, the solver's keywords)."""
    (teacher,), dyn, ode = _options("support_recovery_experiment", options, (Teacher,))
    eta = dyn.eta
    c_t = check_teacher_density(teacher_density)
    times = np.unique(np.asarray(alpha_T, float))
    kept = [c_t] if kept is None else [float(x) for x in kept]
    seeds = [int(s) for s in seeds]

    def one(seed):
        w, ws, v, vs, sup = sparse_teacher_weights(N, K, M, c_t, teacher.v_star, seed,
                                                   shared_support=teacher.shared_support,
                                                   normalise=teacher.normalise)
        state = from_weights_split(w, ws, v, vs, np.ones((K, N), bool), sup)
        # saved index 0 must be alpha = 0: the joint law takes its initial overlaps there
        cv = integrate(state, eta, float(times[-1]), save_at=np.concatenate([[0.0], times]),
                       track_initial=S > 0, progress=False, **ode)
        rows = []
        for k, a in enumerate(times):
            idx = int(np.argmin(np.abs(cv.alpha - a)))
            st = cv.sparse_state(idx)
            joint = None
            if S > 0:
                joint = CoordinateLaw.from_joint(cv, idx, S=S, replicas=replicas,
                                                 seed=np.random.SeedSequence([seed, k]))
            for c in kept:
                rec = support_recovery_limit(st, c)
                row = dict(layer="limit", N=N, seed=seed, alpha_T=float(a), c=c, c_t=c_t,
                           p_on=rec["p_on"], p_off=rec["p_off"])
                if joint is not None:
                    rc = rank_correlation_limit(*joint, c=c)
                    row.update(rho=rc["rho_mean"], rho_se=rc["rho_se"],
                               overlap=rc["overlap_mean"], overlap_se=rc["overlap_se"])
                rows.append(row)
        # finite N: the same weights, SGD in segments up to each alpha_T
        wt, vt, t = w, v, 0.0
        for k, a in enumerate(times):
            res = simulate(N, K, M, eta, float(a - t), init=(wt, ws, vt),
                           seed=schedules.segment_seed(seed, k), v_star=vs, n_test=0,
                           progress=False, save_at=[0.0])
            wt, vt, t = np.asarray(res.w), np.asarray(res.v[-1]), float(a)
            for c in kept:
                rec = support_recovery_finite(wt, ws, c)
                rc = rank_correlation_finite(w, wt, c)
                rows.append(dict(layer="finite", N=N, seed=seed, alpha_T=float(a), c=c,
                                 c_t=c_t, p_on=rec["p_on"], p_off=rec["p_off"], rho=rc["rho"],
                                 overlap=rc["overlap"]))
        return rows

    return [r for rows in map_parallel(one, seeds, workers, name="odeprune-teachers")
            for r in rows]
