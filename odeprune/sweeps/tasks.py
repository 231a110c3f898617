"""The built-in tasks of a sweep (:data:`TASKS`): ``integrate``, ``simulate`` and ``prune``, each a
function of keyword parameters answering ``({name: (dims, array)}, {dim: coordinates})``; and how a
task argument (a name, a function or ``"package.module:function"``) becomes a function.

A task's parameters are options of the library, named by their keywords (a grid axis over
``eta`` or ``rtol`` is the keyword ``eta`` or ``rtol``): each task lists the ones a sweep
records (:attr:`parameters`: their defaults are the table's, :data:`odeprune.options.OPTIONS`,
and the pruning record's, :class:`odeprune.pruning._api.PruneOptions`, except the few of
:data:`SWEEP_DEFAULTS`, a sweep's own) and takes the other options of the records it routes to
(:attr:`options`) when a grid or ``fixed`` names them."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import fields

import numpy as np

from ..ode.dynamics import integrate
from ..options import OPTIONS, Data, Dynamics, Network, Solver
from ..pruning import prune
from ..pruning._api import PRUNE_USES, PruneOptions, load_masked
from ..sim import simulate
from ..state import OrderParams
from .cache import canonical, init_token

__all__ = ["TASKS", "BATCH_HINT", "SWEEP_DEFAULTS", "task_integrate", "task_simulate",
           "task_prune", "resolve_task"]

#: a sweep's own defaults, where the library has none or another (a sweep runs with nothing
#: fixed: a K=6, M=2 student at N=500, learning at eta=0.5 with the erf activation)
SWEEP_DEFAULTS = {"N": 500, "K": 6, "M": 2, "eta": 0.5, "activation": "erf"}

#: the parameters that draw the initial network (or give it: ``init``)
_DRAW = ("N", "K", "M", "v_star", "seed")


def _default(name: str):
    if name in SWEEP_DEFAULTS:
        return SWEEP_DEFAULTS[name]
    if name in OPTIONS:
        return OPTIONS[name].default
    return {f.name: f.default for f in fields(PruneOptions)}[name]


def _task(names: tuple, records: tuple = (), **own):
    """Make a function ``fn(**params)`` a built-in task: ``fn.parameters`` (name -> default,
    in this order: what a sweep records and keys its cache by), ``fn.options`` (the other
    keywords of ``records``, taken when given) and a signature saying both."""
    parameters = {n: own[n] if n in own else _default(n) for n in names}
    extra = tuple(sorted({f.name for r in records for f in fields(r)} - set(parameters)))

    def make(fn: Callable) -> Callable:
        fn.parameters = parameters
        fn.options = extra
        kw = inspect.Parameter.KEYWORD_ONLY
        fn.__signature__ = inspect.Signature(
            [inspect.Parameter(n, kw, default=d) for n, d in parameters.items()]
            + [inspect.Parameter("options", inspect.Parameter.VAR_KEYWORD)])
        return fn
    return make


def _complete(fn: Callable, given: dict) -> dict:
    """The task's parameters with its defaults filled in and the options given; a keyword it
    does not take is a ``TypeError``."""
    given = {k: v for k, v in given.items() if k != "_memo"}
    unknown = sorted(set(given) - set(fn.parameters) - set(fn.options))
    if unknown:
        raise TypeError(f"{fn.__name__}() got unexpected keyword argument(s) {unknown}")
    return {**fn.parameters, **given}


def _initial_state(p: dict, masked: bool = False):
    """The initial draw, or ``p["init"]`` (an OrderParams or a file). A file holding a masked
    network (:func:`odeprune.pruning._api.load_masked`) gives its SparseOrderParams when
    ``masked`` (the integrate task trains it as the masked network it is) and is refused
    otherwise: its summed state is not a dense network with the same dynamics."""
    init = p["init"]
    if init is None:
        return OrderParams.random(p["N"], p["K"], p["M"], v_star=p["v_star"], seed=p["seed"])
    if isinstance(init, OrderParams):
        return init
    sparse = load_masked(init)
    if sparse is not None:
        if not masked:
            raise ValueError(f"init={str(init)!r} holds a masked network; the prune task "
                             "prunes a dense one (the integrate task trains it)")
        return sparse
    return OrderParams.load(init)


@_task(("N", "K", "M", "v_star", "seed", "init", "eta", "alpha_max", "save_at", "eta_v",
        "sigma", "rtol", "atol", "method", "activation", "train_second_layer", "gradient_flow",
        "dt"), (Dynamics, Solver), init=None, alpha_max=1000.0)
def task_integrate(**params):
    """``integrate(OrderParams.random(N, K, M, v_star, seed), ...)`` (or from ``init``, an
    OrderParams or a saved file): ``eg`` over ``alpha``. Further options of
    :class:`~odeprune.options.Dynamics` and :class:`~odeprune.options.Solver`
    (``weight_decay``, ``max_steps``, ...) pass to :func:`odeprune.integrate`."""
    p = _complete(task_integrate, params)
    state = _initial_state(p, masked=True)
    curve = integrate(state, **{k: v for k, v in p.items() if k not in _DRAW + ("init",)})
    return {"eg": (("alpha",), np.asarray(curve.eg))}, {"alpha": np.asarray(curve.alpha)}


@_task(("N", "K", "M", "eta", "alpha_max", "save_at", "eta_v", "sigma", "v_star", "activation",
        "seed", "n_test", "train_second_layer", "n_train"), (Dynamics, Network, Data),
       alpha_max=100.0)
def task_simulate(**params):
    """One finite-N run ``simulate(...)``: ``eg`` (from the order parameters) and ``eg_test``
    (NaN with ``n_test=0``) over ``alpha``. Further options of
    :class:`~odeprune.options.Dynamics` (``weight_decay``, ``l1``) pass to
    :func:`odeprune.simulate`."""
    run = simulate(**_complete(task_simulate, params))
    return ({"eg": (("alpha",), np.asarray(run.eg)),
             "eg_test": (("alpha",), np.asarray(run.eg_test, dtype=float))},
            {"alpha": np.asarray(run.alpha)})


#: the parameters of the prune task that train the state before it is pruned
_TRAIN = ("eta", "alpha_max", "sigma", "activation")


@_task(("N", "K", "M", "v_star", "seed", "init", "eta", "alpha_max", "sigma", "method", "k",
        "c", "reweight", "kernel", "prune_seed", "exact", "n_samples", "activation"),
       init=None, alpha_max=0.0, method="random_node", k=None, c=None, prune_seed=0)
def task_prune(**params):
    """Prune ``OrderParams.random(N, K, M, v_star, seed)`` (or ``init``), first trained by
    ``integrate`` up to ``alpha_max`` when it is > 0 (trained once per batch and state; the
    last eight are kept, so put the axes that change the state first):
    ``eg_mean``, ``eg_std``, ``eg_se`` and ``eg_unpruned``. ``method``, ``k``, ``c`` and the
    options ``reweight``, ``kernel``, ``exact``, ``n_samples`` are :func:`odeprune.prune`'s,
    ``prune_seed`` its seed.

    A node method given ``c`` instead of ``k`` keeps ``k = c K`` units (equal parameter count,
    Acharyya et al. 2021, Eq. 1), which must be a whole number; so one grid can hold node and
    edge methods over ``c``."""
    memo = {} if params.get("_memo") is None else params["_memo"]
    p = _complete(task_prune, params)
    key = canonical(dict({n: p[n] for n in _DRAW + _TRAIN}, init=init_token(p["init"])))
    if key not in memo:
        state = _initial_state(p)
        if p["alpha_max"] > 0:
            state = integrate(state, **{n: p[n] for n in _TRAIN}).final
        while len(memo) >= 8:  # a few trained states per batch (put seed axes first)
            memo.pop(next(iter(memo)))
        memo[key] = state
    state = memo[key]
    method, k, c = p["method"], p["k"], p["c"]
    if method.endswith("_node") and k is None and c is not None:
        kc = float(c) * state.K
        if abs(kc - round(kc)) > 1e-9:
            raise ValueError(f"c={c!r} gives k = c*K = {kc:g} kept units for {method} "
                             f"(K={state.K}); choose c with c*K a whole number")
        k, c = int(round(kc)), None
    res = prune(state, method, k=k, c=c, seed=p["prune_seed"], activation=p["activation"],
                **{n: p[n] for n in PRUNE_USES if n in p})
    return {"eg_mean": ((), res.eg_mean), "eg_std": ((), res.eg_std), "eg_se": ((), res.eg_se),
            "eg_unpruned": ((), float(res.metadata.get("eg_unpruned", np.nan)))}, {}


#: Default batch size of tasks whose points are expensive (a finite-N run): one point per
#: batch, so each is cached as soon as it is done.
BATCH_HINT = {"simulate": 1}

#: Built-in tasks: name -> function of keyword parameters (their defaults are the sweep's).
TASKS: dict[str, Callable] = {"integrate": task_integrate, "simulate": task_simulate,
                              "prune": task_prune}


def resolve_task(task) -> tuple[Callable, str, bool]:
    """The function, its identifier (for the cache key and the attrs), whether built in."""
    if isinstance(task, str):
        if task in TASKS:
            return TASKS[task], task, True
        if ":" in task:
            module_name, _, attr = task.partition(":")
            try:
                fn = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise ValueError(f"task {task!r}: cannot import it ({exc})") from None
            return fn, task, False
        raise ValueError(f"task={task!r} is unknown; expected one of {list(TASKS)}, a function "
                         "or 'package.module:function'")
    if callable(task):
        name = f"{getattr(task, '__module__', '?')}:{getattr(task, '__qualname__', repr(task))}"
        return task, name, False
    raise ValueError(f"task must be a name {list(TASKS)}, a function or "
                     f"'package.module:function', got {type(task).__name__}")
