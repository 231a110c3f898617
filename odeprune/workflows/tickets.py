r"""Lottery tickets (Frankle & Carbin 2019; Zhang et al. 2023), in the limit and at finite N:
train densely to ``alpha_T``, take the magnitude mask of the trained weights, rewind the kept
weights to their values at ``alpha_rewind`` and train again, beside the dense network, a random
mask, the magnitude mask of the rewound weights themselves, fine-tuning of the pruned trained
network and (on request) the ticket's mask on fresh weights. In the limit the ticket's per-class
state comes from the joint Gaussian law of one coordinate ``(w(alpha_rewind), w(alpha_T), w*)``
(two-time overlaps, ``docs/theory.md`` §9; decisions on its particles, §11).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import _io
from .._validate import check_real
from ..coords import CoordinateLaw, decide
from ..ode.dynamics import integrate
from ..ode.progress import make_bar
from ..pruning.edge_rules import check_c
from ..pruning.finite_edges import edge_mask
from ..sim import simulate
from ..sparse import SparseOrderParams
from ..state import OrderParams
from ._common import (
    FINITE,
    LIMIT,
    RETRAIN_SEED_OFFSET,
    FiniteArms,
    Rule,
    Start,
    check_scope,
    check_state,
    gather_options,
    mc_se,
    option,
    report_grid,
    seeds_of,
)
from .result import WorkflowResult

__all__ = ["lottery_ticket", "lottery_ticket_finite", "TICKET_ARMS", "ALL_TICKET_ARMS"]

#: arms of :func:`lottery_ticket` run by default
TICKET_ARMS = ("dense", "ticket", "random", "magnitude_init", "finetune")
#: every arm :func:`lottery_ticket` knows: the defaults and ``reinit`` (the ticket's mask on
#: fresh random weights: the standard control of the lottery-ticket literature)
ALL_TICKET_ARMS = (*TICKET_ARMS, "reinit")
#: the options of :func:`lottery_ticket` and :func:`lottery_ticket_finite`
LIMIT_USES = ("eta", "eta_v", "sigma", "report", "save_at", "progress")
FINITE_USES = (*LIMIT_USES, "ode", "seeds", "v_star")


def _check_ticket_args(c, alpha_T, alpha_rewind, alpha_max, scope, arms):
    c = check_c(c)
    alpha_T = check_real("alpha_T", alpha_T)
    alpha_rewind = check_real("alpha_rewind", alpha_rewind, allow_zero=True)
    if alpha_rewind >= alpha_T:
        raise ValueError(f"alpha_rewind={alpha_rewind!r} must be smaller than alpha_T="
                         f"{alpha_T!r} (the mask comes from the weights trained to alpha_T)")
    alpha_max = option("alpha_max", alpha_max)
    check_scope(scope)
    arms = tuple(arms)
    bad = [a for a in arms if a not in ALL_TICKET_ARMS]
    if bad or not arms:
        raise ValueError(f"arms={list(arms)!r}: allowed (a non-empty subset of) "
                         f"{ALL_TICKET_ARMS}")
    return c, alpha_T, alpha_rewind, alpha_max, arms


@dataclass(frozen=True)
class _Protocol:
    """The ticket's protocol: kept fraction ``c``, dense training to ``alpha_T``, rewinding to
    ``alpha_rewind``, magnitude masks per row or over the layer (``scope``)."""

    c: float
    alpha_T: float
    alpha_rewind: float
    scope: str

    @property
    def magnitude(self) -> str:
        """The magnitude edge rule of ``scope``."""
        return "magnitude_edge" if self.scope == "row" else "magnitude_edge_global"

    def params(self, arm: str) -> dict:
        """The table columns of ``arm``."""
        return dict(c=1.0 if arm == "dense" else self.c, scope=self.scope, alpha_T=self.alpha_T,
                    alpha_rewind=self.alpha_rewind)


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
                   alpha_rewind: float = 0.0, alpha_max: float = 1000.0, scope: str = "row",
                   arms: Sequence[str] = TICKET_ARMS, seed: int = 0, n_samples: int = 200_000,
                   **options) -> WorkflowResult:
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
    scope : {"row", "global"}
    arms : sequence of str
        A subset of :data:`ALL_TICKET_ARMS` (default :data:`TICKET_ARMS`).
    seed, n_samples :
        Coordinate Monte Carlo of the Gaussian-coordinate maps.
    **options
        The learning rule of every phase (:class:`odeprune.options.Dynamics`: ``eta`` (default
        0.5, :data:`~odeprune.workflows._common.WORKFLOW_DEFAULTS`), ``eta_v``, ``sigma``),
        ``report`` (the times of the table, default 10, 100, 1000; ``alpha_max`` is added:
        :class:`~odeprune.workflows._common.Table`), ``save_at`` and ``progress``, as flat
        keywords or records passed whole.

    Returns
    -------
    WorkflowResult
    """
    dyn, out, ctl, tab = gather_options("lottery_ticket", options, LIMIT, LIMIT_USES)
    rule, progress = Rule(dyn), ctl.progress
    state = check_state(state)
    c, alpha_T, alpha_rewind, alpha_max, arms = _check_ticket_args(c, alpha_T, alpha_rewind,
                                                                  alpha_max, scope, arms)
    rep, grid = report_grid(tab.report, alpha_max, out.save_at)
    if state.K > 12:
        raise ValueError(f"K={state.K}: 2^K mask classes, out of reach exactly in the limit; "
                         "use lottery_ticket_finite")
    proto = _Protocol(c, alpha_T, alpha_rewind, scope)
    make_start, s_T = _limit_starts(state, proto, rule)
    starts, map_se = {}, {}
    for arm in arms:
        starts[arm], map_se[arm] = make_start(arm, seed, n_samples)
    alpha, eg, se, curves, table = {}, {}, {}, {}, []
    bar = make_bar(progress, len(starts), "lottery_ticket arms", unit="arm")
    for arm, s in starts.items():
        cv = rule.integrate(s, alpha_max, grid)
        alpha[arm], eg[arm], se[arm], curves[arm] = (np.asarray(cv.alpha), np.asarray(cv.eg),
                                                     np.zeros(len(cv.alpha)), cv)
        if map_se[arm]:  # Monte Carlo start: its error carried through training
            se[arm] = mc_se(lambda sd, n, arm=arm: make_start(arm, sd, n)[0], seed, n_samples,
                            rule, alpha_max, cv.alpha)
        for a in rep:
            j = int(np.argmin(np.abs(alpha[arm] - a)))
            table.append(dict(workflow="lottery_ticket", layer="limit", arm=arm,
                              **proto.params(arm), alpha=float(alpha[arm][j]), eg=float(eg[arm][j]),
                              eg_se=float(se[arm][j]), n=1))
        bar.update(1)
    bar.close()
    meta = dict(c=c, alpha_T=alpha_T, alpha_rewind=alpha_rewind, alpha_max=alpha_max,
                eta=rule.eta, eta_v=rule.eta_v, sigma=rule.sigma, scope=scope, arms=list(arms),
                seed=seed,
                eg_trained=s_T.eg(), K=state.K, M=state.M,
                odeprune_version=_io.package_version())
    return WorkflowResult("lottery_ticket", "limit", alpha, eg, se, table, meta, curves=curves)


def _limit_starts(state: OrderParams, proto: _Protocol, rule: Rule):
    """``(make_start, state at alpha_T)``: train ``state`` densely to ``alpha_rewind`` and on to
    ``alpha_T`` with the two-time overlaps (§9); ``make_start(arm, seed, n)`` is the start of
    ``arm`` and whether it is a Monte Carlo map, from ``n`` coordinates of ``seed``. The Monte
    Carlo arms decide on the same particles of the joint law of (w(alpha_rewind), w(alpha_T),
    w*) (common random numbers: their differences carry no sampling noise of the masks)."""
    c, alpha_T, alpha_rewind, mag = proto.c, proto.alpha_T, proto.alpha_rewind, proto.magnitude
    s_r = state if alpha_rewind == 0 else rule.integrate(state, alpha_rewind,
                                                         [0.0, alpha_rewind]).final
    two = integrate(s_r, eta=rule.eta, alpha_max=alpha_T - alpha_rewind,
                    save_at=[0.0, alpha_T - alpha_rewind], track_initial=True,
                    progress=False, eta_v=rule.eta_v, sigma=rule.sigma)

    def make_start(arm, sd, n):
        if arm == "dense":
            return s_r, False
        if arm == "random":
            return SparseOrderParams.random_mask(s_r, c), False
        law_T, law_r = CoordinateLaw.from_joint(two, -1, S=n, replicas=1, seed=sd)
        if arm == "magnitude_init":
            return decide(law_r, mag, c, seed=sd).sparse(), True
        mask = decide(law_T, mag, c, seed=sd).mask
        if arm == "finetune":
            return law_T.replace(mask=mask).sparse(), True
        ticket = law_r.replace(mask=mask).sparse()
        if arm == "ticket":
            return ticket, True
        return _reinit(ticket, state, s_r.v), True

    return make_start, two.final


def lottery_ticket_finite(N: int, K: int, M: int, c: float, *, alpha_T: float = 200.0,
                          alpha_rewind: float = 0.0, alpha_max: float = 1000.0,
                          scope: str = "row", arms: Sequence[str] = TICKET_ARMS,
                          **options) -> WorkflowResult:
    r"""Lottery tickets at finite N, on real weights with real masks (same arms as
    :func:`lottery_ticket`).

    For every seed ``s``: ``simulate(seed=s)`` to ``alpha_rewind`` and to ``alpha_T`` (the same
    SGD stream, so ``w(alpha_rewind)`` is the trained run's own past); masks by exact top-|w| per
    row (or over the layer); every arm retrained by the SGD stream of
    ``s + RETRAIN_SEED_OFFSET`` (common random numbers: arms differ only by their start).

    ``**options``: as :func:`lottery_ticket`, and ``seeds`` (:class:`~odeprune.options.Ensemble`;
    default 0..7, :data:`~odeprune.workflows._common.WORKFLOW_DEFAULTS`), ``v_star``
    (:class:`~odeprune.options.Network`), ``ode`` (:class:`~odeprune.workflows._common.Table`:
    also integrate the ODE from the same real starts, default True).

    Returns
    -------
    WorkflowResult
        ``eg`` of shape (n_seeds, n) per arm, and the ODE from the same real starts.
    """
    dyn, out, ctl, tab, net, ens = gather_options("lottery_ticket_finite", options, FINITE,
                                                  FINITE_USES)
    rule, progress, seeds, v_star = Rule(dyn), ctl.progress, seeds_of(ens), net.v_star
    c, alpha_T, alpha_rewind, alpha_max, arms = _check_ticket_args(c, alpha_T, alpha_rewind,
                                                                  alpha_max, scope, arms)
    rep, grid = report_grid(tab.report, alpha_max, out.save_at)
    proto = _Protocol(c, alpha_T, alpha_rewind, scope)
    runs = FiniteArms("lottery_ticket", arms, tab.ode)
    eg_T = []
    bar = make_bar(progress, len(seeds), f"lottery_ticket N={N}", unit="seed")
    for s in seeds:
        starts, e_T = _finite_starts(N, K, M, v_star, s, proto, rule, arms)
        eg_T.append(e_T)
        for arm in arms:
            runs.run(arm, rule, starts[arm], alpha_max, grid, s + RETRAIN_SEED_OFFSET)
        bar.update(1)
    bar.close()
    alpha, eg, se, eg_ode, table = runs.summarise(rep, N, proto.params)
    meta = dict(c=c, alpha_T=alpha_T, alpha_rewind=alpha_rewind, alpha_max=alpha_max,
                eta=rule.eta, eta_v=rule.eta_v, sigma=rule.sigma, scope=scope, arms=list(arms),
                N=N, K=K, M=M, v_star=v_star, seeds=seeds, eg_trained=eg_T,
                retrain_seed_offset=RETRAIN_SEED_OFFSET, odeprune_version=_io.package_version())
    return WorkflowResult("lottery_ticket", "finite", alpha, eg, se, table, meta, eg_ode=eg_ode,
                          curves=runs.sims)


def _finite_starts(N, K, M, v_star, s: int, proto: _Protocol, rule: Rule, arms):
    """``(starts, eps_g at alpha_T)`` of seed ``s``: train the real network of seed ``s`` to
    ``alpha_rewind`` and ``alpha_T`` (one SGD stream: ``w(alpha_rewind)`` is the trained run's
    own past) and make every arm's real start (exact top-|w| masks)."""
    c, alpha_T, alpha_rewind, mag = proto.c, proto.alpha_T, proto.alpha_rewind, proto.magnitude
    sim = dict(n_test=0, progress=False, v_star=v_star, eta_v=rule.eta_v, sigma=rule.sigma)
    w0, w_star, v0, vs = OrderParams.draw_weights(N, K, M, v_star, s)
    if alpha_rewind > 0:
        r = simulate(N, K, M, rule.eta, alpha_rewind, save_at=[alpha_rewind], seed=s, **sim)
        w_r, v_r = np.array(r.w), np.array(r.v[-1])
    else:
        w_r, v_r = w0, v0
    t = simulate(N, K, M, rule.eta, alpha_T, save_at=[alpha_T], seed=s, **sim)
    w_T, v_T = np.array(t.w), np.array(t.v[-1])
    rng = np.random.default_rng(np.random.SeedSequence([s, 1]))
    m_T = edge_mask(w_T, mag, c)[0]
    starts = {}
    for arm in arms:
        if arm == "dense":
            w, v, m = w_r, v_r, None
        elif arm == "ticket":
            w, v, m = w_r * m_T, v_r, m_T
        elif arm == "random":
            m = edge_mask(w_r, "random_edge", c, seed=rng)[0]
            w, v = w_r * m, v_r
        elif arm == "magnitude_init":
            m = edge_mask(w_r, mag, c)[0]
            w, v = w_r * m, v_r
        elif arm == "reinit":  # the ticket's mask on a fresh draw of the first layer
            fresh = OrderParams.draw_weights(N, K, M, v_star, np.random.SeedSequence([s, 4]))[0]
            w, v, m = fresh * m_T, v_r, m_T
        else:  # finetune
            w, v, m = w_T * m_T, v_T, m_T
        starts[arm] = Start(w, w_star, v, vs, m)
    return starts, float(t.eg[-1])
