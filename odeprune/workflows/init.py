r"""Prune the random initial network and train the sparse network from ``alpha = 0``, beside the
dense network, in the limit and at finite N (``docs/theory.md`` §8): random, magnitude and SNIP
masks, with or without the variance-restoring row rescale of Hayou et al. 2021.
"""

from __future__ import annotations

import numpy as np

from .. import _io
from ..activations import get_activation
from ..ode.progress import make_bar
from ..pruning import registry
from ..pruning.edge_rules import check_c
from ..pruning.sparse_maps import sparse_state
from ..state import OrderParams
from ._common import (
    FINITE,
    LIMIT,
    FiniteArms,
    Rule,
    Start,
    check_state,
    gather_options,
    mc_se,
    option,
    prune_edges,
    report_grid,
    seeds_of,
)
from .result import WorkflowResult

__all__ = ["prune_at_init", "prune_at_init_finite", "INIT_RULES"]

#: edge rules that prune at initialisation
INIT_RULES = registry.methods("edge")
#: the options of :func:`prune_at_init` and :func:`prune_at_init_finite`
LIMIT_USES = ("eta", "eta_v", "sigma", "report", "save_at", "progress")
FINITE_USES = ("eta", "eta_v", "sigma", "report", "ode", "save_at", "progress", "seeds", "v_star")


def _check_init_args(method, c, rescale) -> tuple[float, bool]:
    if method not in INIT_RULES:
        raise ValueError(f"method={method!r} is unknown for pruning at initialisation; allowed "
                         f"{INIT_RULES}")
    c = check_c(c)
    if not isinstance(rescale, (bool, np.bool_)):
        raise ValueError(f"rescale={rescale!r} must be True or False")
    return c, bool(rescale)


def _label(method: str, c: float, rescale: bool) -> str:
    return f"{method} c={c:.4g} {'rescale' if rescale else 'plain'}"


def _params(method: str, c: float, rescale: bool):
    """The table columns of an arm: the rule's, or the dense network's."""
    return lambda name: dict(method=method if name != "dense" else "dense",
                             c=c if name != "dense" else 1.0,
                             rescale=rescale if name != "dense" else False)


def prune_at_init(state: OrderParams, method: str, c: float, *, rescale: bool = False,
                  alpha_max: float = 1000.0, dense: bool = True, seed: int = 0,
                  n_samples: int = 200_000, **options) -> WorkflowResult:
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
    alpha_max : float
        Training time.
    dense : bool
        Also train the unpruned network (arm ``"dense"``).
    seed, n_samples :
        Coordinate Monte Carlo of the rules that need it.
    **options
        The learning rule (:class:`odeprune.options.Dynamics`: ``eta`` (default 0.5,
        :data:`~odeprune.workflows._common.WORKFLOW_DEFAULTS`), ``eta_v``, ``sigma``),
        ``report`` (the times of the table, default 10, 100, 1000; ``alpha_max`` is always
        added: :class:`~odeprune.workflows._common.Table`), ``save_at``
        (:class:`~odeprune.options.Output`) and ``progress``
        (:class:`~odeprune.options.Control`), as flat keywords or records passed whole.

    Returns
    -------
    WorkflowResult
        Arms ``"<method> c=.. rescale|plain"`` (and ``"dense"``).
    """
    dyn, out, _, tab = gather_options("prune_at_init", options, LIMIT, LIMIT_USES)
    rule = Rule(dyn)
    state = check_state(state)
    c, rescale = _check_init_args(method, c, rescale)
    alpha_max = option("alpha_max", alpha_max)
    rep, grid = report_grid(tab.report, alpha_max, out.save_at)
    if state.K > 12:
        raise ValueError(f"K={state.K}: 2^K mask classes, out of reach exactly in the limit; "
                         "use prune_at_init_finite")
    reweight = "rescale_rows" if rescale else "none"
    sp, map_se = sparse_state(state, method, c, seed=seed, n_samples=n_samples,
                              reweight=reweight)
    map_se = float(map_se)
    label = _label(method, c, rescale)
    params = _params(method, c, rescale)
    runs = [(label, sp)] + ([("dense", state)] if dense else [])
    alpha, eg, se, curves, table = {}, {}, {}, {}, []
    for name, s in runs:
        cv = rule.integrate(s, alpha_max, grid)
        alpha[name], eg[name] = np.asarray(cv.alpha), np.asarray(cv.eg)
        se[name], curves[name] = np.zeros(len(cv.alpha)), cv
        if name != "dense" and map_se > 0:  # Monte Carlo map: its error through training
            se[name] = mc_se(lambda sd, n: sparse_state(state, method, c, seed=sd, n_samples=n,
                                                        reweight=reweight)[0],
                             seed, n_samples, rule, alpha_max, cv.alpha)
        for a in rep:
            j = int(np.argmin(np.abs(alpha[name] - a)))
            table.append(dict(workflow="prune_at_init", layer="limit", arm=name, **params(name),
                              alpha=float(alpha[name][j]), eg=float(eg[name][j]),
                              eg_se=float(se[name][j]), n=1))
    meta = dict(method=method, c=c, rescale=rescale, eta=rule.eta, eta_v=rule.eta_v,
                sigma=rule.sigma, alpha_max=alpha_max, seed=seed, K=state.K, M=state.M, n_classes=sp.n_classes,
                density=sp.density()[1], map_eg_se=map_se, odeprune_version=_io.package_version())
    return WorkflowResult("prune_at_init", "limit", alpha, eg, se, table, meta, curves=curves)


def prune_at_init_finite(N: int, K: int, M: int, method: str, c: float, *,
                         rescale: bool = False, alpha_max: float = 1000.0, dense: bool = True,
                         n_samples: int = 10_000, **options) -> WorkflowResult:
    r"""Prune real initial weights at finite N and train the sparse network by online SGD.

    For every seed ``s``: the initial draw ``OrderParams.draw_weights(N, K, M, v_star, s)`` is
    pruned by the finite-N rule (:func:`odeprune.pruning.finite_edges.edge_mask`; SNIP with the
    empirical gradient over ``n_samples`` inputs), optionally row-rescaled, and trained with the
    mask fixed by the SGD stream of ``s`` -- the stream the dense arm (``simulate(seed=s)``) also
    uses, so the arms differ only by the mask.

    ``**options``: as :func:`prune_at_init`, and ``seeds`` (:class:`~odeprune.options.Ensemble`; default 0..7,
    :data:`~odeprune.workflows._common.WORKFLOW_DEFAULTS`), ``v_star``
    (:class:`~odeprune.options.Network`), ``ode`` (:class:`~odeprune.workflows._common.Table`:
    also integrate the ODE from the same real starts, default True). ``n_samples``: inputs of
    SNIP's empirical gradient.

    Returns
    -------
    WorkflowResult
        As :func:`prune_at_init`, with ``eg`` of shape (n_seeds, n) and the ODE from the same
        real starts (``eg_ode``).
    """
    dyn, out, ctl, tab, net, ens = gather_options("prune_at_init_finite", options, FINITE,
                                                  FINITE_USES)
    rule, progress, seeds, v_star = Rule(dyn), ctl.progress, seeds_of(ens), net.v_star
    c, rescale = _check_init_args(method, c, rescale)
    alpha_max = option("alpha_max", alpha_max)
    rep, grid = report_grid(tab.report, alpha_max, out.save_at)
    act = get_activation("erf")
    label = _label(method, c, rescale)
    names = [label] + (["dense"] if dense else [])
    arms = FiniteArms("prune_at_init", names, tab.ode)
    bar = make_bar(progress, len(seeds), f"prune_at_init N={N} {label}", unit="seed")
    for s in seeds:
        w, w_star, v, vs = OrderParams.draw_weights(N, K, M, v_star, s)
        rng = np.random.default_rng(np.random.SeedSequence([s, 1]))
        initial = Start(w, w_star, v, vs)
        pruned = prune_edges(initial, method, c, "rescale_rows" if rescale else "none", rng,
                             n_samples, act)
        for name in names:
            arms.run(name, rule, initial if name == "dense" else pruned, alpha_max, grid, s)
        bar.update(1)
    bar.close()
    alpha, eg, se, eg_ode, table = arms.summarise(rep, N, _params(method, c, rescale))
    meta = dict(method=method, c=c, rescale=rescale, eta=rule.eta, eta_v=rule.eta_v,
                sigma=rule.sigma, alpha_max=alpha_max, N=N, K=K, M=M, v_star=v_star, seeds=seeds,
                n_samples=n_samples, odeprune_version=_io.package_version())
    return WorkflowResult("prune_at_init", "finite", alpha, eg, se, table, meta, eg_ode=eg_ode,
                          curves=arms.sims)
