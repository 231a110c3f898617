"""The built-in tasks of a sweep (:data:`TASKS`): ``integrate``, ``simulate`` and ``prune``, each a
function of keyword parameters whose defaults are the sweep's, answering
``({name: (dims, array)}, {dim: coordinates})``; and how a task argument (a name, a function or
``"package.module:function"``) becomes a function."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from ..ode.dynamics import DEFAULT_ATOL, DEFAULT_RTOL, integrate
from ..pruning import prune
from ..pruning._api import load_masked
from ..sim import simulate
from ..state import OrderParams
from .cache import canonical, init_token

__all__ = ["TASKS", "BATCH_HINT", "task_integrate", "task_simulate", "task_prune",
           "resolve_task"]


def _initial_state(N, K, M, v_star, seed, init, masked: bool = False):
    """The initial draw, or ``init`` (an OrderParams or a file). A file holding a masked
    network (:func:`odeprune.pruning._api.load_masked`) gives its SparseOrderParams when
    ``masked`` (the integrate task trains it as the masked network it is) and is refused
    otherwise: its summed state is not a dense network with the same dynamics."""
    if init is None:
        return OrderParams.random(N, K, M, v_star=v_star, seed=seed)
    if isinstance(init, OrderParams):
        return init
    sparse = load_masked(init)
    if sparse is not None:
        if not masked:
            raise ValueError(f"init={str(init)!r} holds a masked network; the prune task "
                             "prunes a dense one (the integrate task trains it)")
        return sparse
    return OrderParams.load(init)


def task_integrate(*, N: int = 500, K: int = 6, M: int = 2, v_star=4.0, seed: int = 0,
                   init=None, eta: float = 0.5, alpha_max: float = 1000.0, save_at=None,
                   eta_v=None, sigma: float = 0.0, rtol: float = DEFAULT_RTOL,
                   atol: float = DEFAULT_ATOL, method: str = "auto", activation: str = "erf",
                   train_second_layer: bool = True, gradient_flow: bool = False,
                   dt: float = 0.01, _memo=None):
    """``integrate(OrderParams.random(N, K, M, v_star, seed), ...)`` (or from ``init``, an
    OrderParams or a saved file): ``eg`` over ``alpha``."""
    state = _initial_state(N, K, M, v_star, seed, init, masked=True)
    curve = integrate(state, eta=eta, alpha_max=alpha_max, save_at=save_at, eta_v=eta_v,
                      sigma=sigma, rtol=rtol, atol=atol, method=method, activation=activation,
                      train_second_layer=train_second_layer, gradient_flow=gradient_flow, dt=dt)
    return {"eg": (("alpha",), np.asarray(curve.eg))}, {"alpha": np.asarray(curve.alpha)}


def task_simulate(*, N: int = 500, K: int = 6, M: int = 2, eta: float = 0.5,
                  alpha_max: float = 100.0, save_at=None, eta_v=None, sigma: float = 0.0,
                  v_star=4.0, activation: str = "erf", seed: int = 0, n_test: int = 10_000,
                  train_second_layer: bool = True, n_train=None, _memo=None):
    """One finite-N run ``simulate(...)``: ``eg`` (from the order parameters) and ``eg_test``
    (NaN with ``n_test=0``) over ``alpha``."""
    run = simulate(N=N, K=K, M=M, eta=eta, alpha_max=alpha_max, save_at=save_at, eta_v=eta_v,
                   sigma=sigma, v_star=v_star, activation=activation, seed=seed, n_test=n_test,
                   train_second_layer=train_second_layer, n_train=n_train)
    return ({"eg": (("alpha",), np.asarray(run.eg)),
             "eg_test": (("alpha",), np.asarray(run.eg_test, dtype=float))},
            {"alpha": np.asarray(run.alpha)})


def task_prune(*, N: int = 500, K: int = 6, M: int = 2, v_star=4.0, seed: int = 0, init=None,
               eta: float = 0.5, alpha_max: float = 0.0, sigma: float = 0.0,
               method: str = "random_node", k=None, c=None, reweight: str = "none",
               kernel: str = "Q", prune_seed: int = 0, exact: bool = True,
               n_samples: int = 10_000, activation: str = "erf", _memo=None):
    """Prune ``OrderParams.random(N, K, M, v_star, seed)`` (or ``init``), first trained by
    ``integrate`` up to ``alpha_max`` when it is > 0 (trained once per batch and state; the
    last eight are kept, so put the axes that change the state first):
    ``eg_mean``, ``eg_std``, ``eg_se`` and ``eg_unpruned``.

    A node method given ``c`` instead of ``k`` keeps ``k = c K`` units (equal parameter count,
    Acharyya et al. 2021, Eq. 1), which must be a whole number; so one grid can hold node and
    edge methods over ``c``."""
    memo = {} if _memo is None else _memo
    key = canonical(dict(N=N, K=K, M=M, v_star=v_star, seed=seed, init=init_token(init),
                          eta=eta, alpha_max=alpha_max, sigma=sigma, activation=activation))
    if key not in memo:
        state = _initial_state(N, K, M, v_star, seed, init)
        if alpha_max > 0:
            state = integrate(state, eta=eta, alpha_max=alpha_max, sigma=sigma,
                              activation=activation).final
        while len(memo) >= 8:  # a few trained states per batch (put seed axes first)
            memo.pop(next(iter(memo)))
        memo[key] = state
    state = memo[key]
    if method.endswith("_node") and k is None and c is not None:
        kc = float(c) * state.K
        if abs(kc - round(kc)) > 1e-9:
            raise ValueError(f"c={c!r} gives k = c*K = {kc:g} kept units for {method} "
                             f"(K={state.K}); choose c with c*K a whole number")
        k, c = int(round(kc)), None
    res = prune(state, method, k=k, c=c, reweight=reweight, kernel=kernel, seed=prune_seed,
                exact=exact, n_samples=n_samples, activation=activation)
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
