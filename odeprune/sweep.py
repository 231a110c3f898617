r"""Parameter sweeps: a grid of calls to one task, on any executor, as an ``xarray.Dataset``.

::

    from odeprune.sweep import sweep

    ds = sweep("integrate", {"eta": [0.1, 0.5, 1.0], "K": [2, 4, 6]},
               fixed={"M": 2, "alpha_max": 1000.0}, cache="sweep-cache", output="phase.nc")
    ds.eg.isel(alpha=-1).plot()              # final eps_g over (eta, K)

A *grid* is a dict of axes. A list is an axis of its own and the axes multiply (the product);
a dict of equal-length lists is one *zipped* axis: a dimension named by the key along which its
parameters advance together (``{"shape": {"K": [2, 4], "M": [1, 2]}}``). ``fixed`` holds every
other parameter. The *task* is a built-in name (:data:`TASKS`: ``"integrate"``, ``"simulate"``,
``"prune"``), a function ``fn(**params)`` or the string ``"package.module:function"``.

The result has one dimension per grid axis (plus the task's own, ``alpha`` for learning curves),
a string variable ``error`` ("" where the point succeeded, ``"TypeName: message"`` where it
raised; its numeric outputs are then NaN), and attributes with the task, every fixed parameter
(defaults included), the grid and the package version. :func:`save` writes netCDF (see below);
plain ``xarray.open_dataset`` reads it.

Execution
---------
Points are grouped into batches (about four per worker, in grid order) and each batch is one
``executor.submit`` call, so thousands of cheap ODE curves cost a handful of scheduler round
trips. ``executor`` may be any :class:`concurrent.futures.Executor` (a thread or process pool,
``dask.distributed.Client(...).get_executor()``), a ``dask.distributed.Client`` itself,
``"local"`` (default: a process pool over the available cores, started with ``spawn``) or
``"serial"`` (in this process). Results do not depend on the executor, bit for bit.

Caching and resume
------------------
With ``cache=DIR`` every finished point is written to ``DIR/<task>-<hash>.npz`` (atomically,
by the driver, as its batch comes back), the hash covering the task, all of the point's
parameters (an ``init`` file by its content) and the package version. A later sweep over an
overlapping grid reuses those points, so an interrupted or killed sweep continues where it
stopped and returns the same Dataset bit for bit. Failed points are not cached: they are retried.

Why netCDF and not zarr: a sweep's result is small (kilobytes to megabytes) and written once at
the end, so a single self-describing file that is renamed into place atomically, opened by
xarray, ncview, MATLAB or R without extra packages, suits it better than a directory store; the
per-point cache above already gives the incremental, resumable part.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import importlib
import inspect
import itertools
import json
import math
import multiprocessing
import os
import pickle
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _io
from ._validate import check_int, check_real, check_seed, check_size
from .activations import get_activation
from .ode.dynamics import DEFAULT_ATOL, DEFAULT_RTOL, integrate
from .ode.dynamics import METHODS as INTEGRATE_METHODS
from .ode.progress import make_bar, want_progress
from .pruning import prune
from .pruning._api import load_masked
from .pruning.registry import METHODS as PRUNE_METHODS
from .pruning.registry import REWEIGHTS
from .sim import simulate
from .state import OrderParams

__all__ = ["sweep", "run_points", "check", "save", "load", "TASKS", "EXTRA_HINT", "CACHE_VERSION",
           "SweepPoint"]

#: Bump when the meaning of a cached point changes (invalidates every cached point).
CACHE_VERSION = 1

EXTRA_HINT = 'pip install "odeprune[sweep]"'

_KIND = "SweepPoint"
_RESERVED = ("error",)


def _require_xarray():
    try:
        import xarray
    except ImportError:
        raise ImportError(f"odeprune.sweep needs xarray and a netCDF engine: {EXTRA_HINT}"
                          ) from None
    return xarray


# ------------------------------------------------------------------------------------ tasks
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
                   atol: float = DEFAULT_ATOL, method: str = "dopri5", activation: str = "erf",
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
    key = _canonical(dict(N=N, K=K, M=M, v_star=v_star, seed=seed, init=_init_token(init),
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
_BATCH_HINT = {"simulate": 1}

#: Built-in tasks: name -> function of keyword parameters (their defaults are the sweep's).
TASKS: dict[str, Callable] = {"integrate": task_integrate, "simulate": task_simulate,
                              "prune": task_prune}


def _resolve_task(task) -> tuple[Callable, str, bool]:
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


# ------------------------------------------------------------------------------------- grid
@dataclass(frozen=True)
class _Axis:
    dim: str
    params: dict  # parameter name -> tuple of values (one entry: a plain axis)

    def __len__(self) -> int:
        return len(next(iter(self.params.values())))


@dataclass(frozen=True)
class _Plan:
    fn: Callable
    task_id: str
    builtin: bool
    axes: tuple
    fixed: dict  # every parameter not on an axis, defaults of built-in tasks included
    points: list  # full parameter dicts, in grid (row-major) order

    @property
    def shape(self) -> tuple:
        return tuple(len(a) for a in self.axes)

    @property
    def dims(self) -> tuple:
        return tuple(a.dim for a in self.axes)


def _scalar(value, where: str):
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"{where}: values must be numbers or strings (or booleans), got "
                         f"{value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: values must be finite, got {value!r}")
    return value


def _axis_values(name: str, values) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise ValueError(f"grid axis {name!r} must be a list of values, got {values!r}")
    vals = tuple(_scalar(v, f"grid axis {name!r}") for v in values)
    if not vals:
        raise ValueError(f"grid axis {name!r} is empty")
    if len({type(v) if type(v) in (str, bool) else float for v in vals}) > 1:
        raise ValueError(f"grid axis {name!r} mixes strings and numbers (or booleans): "
                         f"{list(vals)}")
    if len(set(vals)) != len(vals):
        raise ValueError(f"grid axis {name!r} has repeated values: {list(vals)}")
    return vals


def _parse_grid(grid) -> tuple:
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError("grid must be a non-empty dict of axes, e.g. {'eta': [0.1, 0.5], "
                         "'K': [2, 4]}")
    axes, seen = [], set()
    for dim, values in grid.items():
        if not isinstance(dim, str) or not dim.isidentifier():
            raise ValueError(f"grid axis name {dim!r} must be an identifier")
        if isinstance(values, Mapping):  # zipped axes
            if not values:
                raise ValueError(f"zipped axis {dim!r} is empty")
            params = {}
            for name, vals in values.items():
                if not isinstance(name, str) or not name.isidentifier():
                    raise ValueError(f"zipped axis {dim!r}: parameter name {name!r} must be an "
                                     "identifier")
                if isinstance(vals, (str, bytes)) or not isinstance(vals, (Sequence, np.ndarray)):
                    raise ValueError(f"zipped axis {dim!r}: {name!r} must be a list")
                params[name] = tuple(_scalar(v, f"zipped axis {dim!r}, {name!r}") for v in vals)
            lengths = {n: len(v) for n, v in params.items()}
            if len(set(lengths.values())) != 1 or 0 in lengths.values():
                raise ValueError(f"zipped axis {dim!r}: its lists must be non-empty and of "
                                 f"equal length, got lengths {lengths}")
            if len(set(zip(*params.values()))) != len(next(iter(params.values()))):
                raise ValueError(f"zipped axis {dim!r} has repeated rows")
            axis = _Axis(dim, params)
        else:
            axis = _Axis(dim, {dim: _axis_values(dim, values)})
        for name in axis.params:
            if name in seen:
                raise ValueError(f"parameter {name!r} appears on two grid axes")
            seen.add(name)
        if dim in seen - set(axis.params):
            raise ValueError(f"grid axis name {dim!r} is also a parameter of another axis")
        seen.add(dim)
        axes.append(axis)
    return tuple(axes)


def check(task, grid, fixed: Mapping | None = None, executor=None) -> _Plan:
    """Validate a sweep without running it: the task, the grid, the parameter names (against
    the task's signature) and, for a process pool, that the task can be sent to it. Raises
    ``ValueError`` with a one-line message; returns the plan (points in grid order)."""
    fn, task_id, builtin = _resolve_task(task)
    axes = _parse_grid(grid)
    fixed = dict(fixed or {})
    for name in fixed:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"fixed parameter name {name!r} must be an identifier")
    on_axes = [n for a in axes for n in a.params]
    both = sorted(set(on_axes) & set(fixed))
    if both:
        raise ValueError(f"parameter(s) {both} are both on the grid and fixed")
    clash = sorted({a.dim for a in axes} & set(_RESERVED))
    if clash:
        raise ValueError(f"grid axis name(s) {clash} are reserved")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        sig = None
    names = set(on_axes) | set(fixed)
    if sig is not None:
        accepted = {n: p for n, p in sig.parameters.items() if not n.startswith("_")}
        var_kw = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
        unknown = sorted(n for n in names if n not in accepted and not var_kw)
        if unknown:
            takes = sorted(n for n, p in accepted.items() if p.kind is not p.VAR_KEYWORD)
            raise ValueError(f"task {task_id!r} has no parameter(s) {unknown}; it takes {takes}")
        missing = sorted(n for n, p in accepted.items()
                         if p.default is p.empty and n not in names
                         and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
        if missing:
            raise ValueError(f"task {task_id!r} needs parameter(s) {missing}: put them in the "
                             "grid or in fixed")
        if builtin:  # record every default: the attrs and the cache key then say everything
            for n, p in accepted.items():
                if n not in names:
                    fixed[n] = p.default
    if builtin and "init" in fixed and fixed["init"] is not None:
        given = sorted(n for n in ("N", "K", "M", "v_star") if n in names)
        if given:
            raise ValueError(f"init fixes the initial state: drop {given} from the sweep")
        if not _is_orderparams(fixed["init"]):
            if not isinstance(fixed["init"], (str, os.PathLike)):
                raise ValueError(f"init={fixed['init']!r} must be a file name or an OrderParams")
            path = Path(fixed["init"])
            if not path.is_file():
                raise ValueError(f"init={str(path)!r}: no such file")
            # read once here: a file that is not a state fails now, not at every point
            if load_masked(path) is not None:
                if task_id == "prune":
                    raise ValueError(f"init={str(path)!r} holds a masked network; the prune "
                                     "task prunes a dense one (the integrate task trains it)")
            elif task_id in ("integrate", "prune"):
                OrderParams.load(path)
    for n, v in fixed.items():
        if n == "init" and _is_orderparams(v):
            continue
        try:
            json.dumps(v, default=_io._json_default)
        except (TypeError, ValueError):
            raise ValueError(f"fixed parameter {n!r}={v!r} is not JSON-serialisable (it must "
                             "be, to key the cache and to be recorded)") from None
    if builtin:
        _check_values(task_id, axes, fixed)
    if executor is None or executor == "local":
        try:
            pickle.dumps(fn)
        except Exception:
            raise ValueError(f"task {task_id!r} cannot be sent to a process pool (define it at "
                             "the top level of an importable module, or pass "
                             "executor='serial' or a thread pool)") from None
    points = []
    for combo in itertools.product(*(range(len(a)) for a in axes)):
        p = dict(fixed)
        for a, i in zip(axes, combo):
            for name, vals in a.params.items():
                p[name] = vals[i]
        points.append(p)
    return _Plan(fn=fn, task_id=task_id, builtin=builtin, axes=axes, fixed=fixed,
                 points=points)


def _optional(check):
    return lambda name, v: None if v is None else check(name, v)


def _choice(allowed):
    def check(name, v):
        if not isinstance(v, str) or v not in allowed:
            raise ValueError(f"{name}={v!r} is unknown; expected one of {list(allowed)}")
    return check


def _boolean(name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{name}={v!r} must be true or false")


def _real(name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                             np.floating)) \
            or not math.isfinite(v):
        raise ValueError(f"{name}={v!r} must be a finite real number")


def _v_star(name, v):
    for x in (v if isinstance(v, (list, tuple)) else [v]):
        _real(name, x)


def _save_at(name, v):
    values = v if isinstance(v, (list, tuple)) else [v]
    for x in values:
        _real(name, x)
        if x < 0:
            raise ValueError(f"{name}={v!r}: times must be >= 0")


def _fraction(name, v):
    _real(name, v)
    if not 0 <= v <= 1:
        raise ValueError(f"{name}={v!r} is out of range; allowed 0 <= c <= 1")


_POSITIVE = lambda name, v: check_real(name, v)  # noqa: E731
_NONNEG = lambda name, v: check_real(name, v, allow_zero=True)  # noqa: E731

#: the checks of the built-in tasks' parameters, as the library makes them when it runs
#: (``odeprune._validate``), applied to every value of the grid and of ``fixed`` before any
#: point is launched; ``(task, name)`` entries override ``name`` ones
_CHECKS: dict = {
    "N": check_size, "K": check_size, "M": check_size, "seed": check_seed,
    "prune_seed": check_seed, "v_star": _v_star, "eta": _POSITIVE,
    "eta_v": _optional(_NONNEG), "sigma": _NONNEG, "alpha_max": _POSITIVE,
    ("prune", "alpha_max"): _NONNEG, "rtol": _POSITIVE, "atol": _POSITIVE, "dt": _POSITIVE,
    "activation": lambda name, v: get_activation(v) if isinstance(v, str) else
    _choice(())(name, v),
    "train_second_layer": _boolean, "gradient_flow": _boolean, "exact": _boolean,
    "method": _choice(INTEGRATE_METHODS), ("prune", "method"): _choice(PRUNE_METHODS),
    "n_test": lambda name, v: check_int(name, v, 0), "n_train": _optional(check_size),
    "n_samples": check_size, "k": _optional(lambda name, v: check_int(name, v, 1)),
    "c": _optional(_fraction), "reweight": _choice(REWEIGHTS), "save_at": _optional(_save_at),
    "kernel": _choice(("Q", "activation")),
}


def _check_values(task_id: str, axes, fixed: dict) -> None:
    """Every value a built-in task will get, checked before any point runs (a sweep whose
    points would all fail is refused at once): one line naming the axis or ``fixed``, the
    parameter and the value."""
    for name, value in fixed.items():
        check = _CHECKS.get((task_id, name), _CHECKS.get(name))
        if check is not None:
            try:
                check(name, value)
            except ValueError as exc:
                raise ValueError(f"fixed parameter {name!r}: {exc}") from None
    for axis in axes:
        for name, values in axis.params.items():
            check = _CHECKS.get((task_id, name), _CHECKS.get(name))
            for value in values if check is not None else ():
                try:
                    check(name, value)
                except ValueError as exc:
                    where = (f"grid axis {name!r}" if axis.dim == name else
                             f"zipped axis {axis.dim!r}, {name!r}")
                    raise ValueError(f"{where}: {exc}") from None


# ------------------------------------------------------------------------------ cache keys
def _is_orderparams(x) -> bool:
    return type(x).__name__ == "OrderParams" and hasattr(x, "to_arrays")


def _init_token(init):
    """What identifies an initial state in a cache key: a file by its content, an OrderParams
    by its arrays."""
    if init is None:
        return None
    h = hashlib.sha256()
    if _is_orderparams(init):
        for name, a in sorted(init.to_arrays().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(a, dtype=float).tobytes())
        h.update(str(getattr(init, "activation", "")).encode())
        return f"OrderParams:{h.hexdigest()[:16]}"
    h.update(Path(init).read_bytes())
    return f"file:{Path(init).name}:{h.hexdigest()[:16]}"


def _canonical(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=_io._json_default)


def _key_params(p: dict) -> dict:
    if p.get("init") is not None:
        p = dict(p, init=_init_token(p["init"]))
    return p


def point_key(task_id: str, params: dict) -> str:
    """Hash of the task, a point's full parameters, the package version and the cache
    version: the cache file's name."""
    text = json.dumps({"task": task_id, "params": json.loads(_canonical(_key_params(params))),
                       "version": _io.package_version(), "cache": CACHE_VERSION},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _cache_file(cache: Path, task_id: str, key: str) -> Path:
    stem = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in task_id.split(":")[-1])
    return cache / f"{stem}-{key}.npz"


def _write_point(path: Path, params: dict, result) -> None:
    data, coords = result
    arrays = {f"v:{n}": a for n, (_, a) in data.items()}
    arrays.update({f"c:{n}": a for n, a in coords.items()})
    meta = dict(params=json.loads(_canonical(_key_params(params))),
                dims={n: list(d) for n, (d, _) in data.items()},
                order=list(data), coords=list(coords))
    _io.write_npz(path, _KIND, arrays, meta)


@dataclass(frozen=True, eq=False)
class SweepPoint:
    """One cached point of a sweep, as :func:`sweep` writes it to ``DIR/<task>-<hash>.npz``
    (an ordinary odeprune file: :func:`odeprune.load` reads it).

    Attributes
    ----------
    params : dict
        The point's full parameters (defaults included; an ``init`` by its content hash).
    outputs : dict
        Output name -> array (``eg`` over ``alpha`` for the ``integrate`` task, ...).
    dims : dict
        Output name -> its own dimensions (``("alpha",)``).
    coords : dict
        Dimension -> coordinate array (``alpha``).
    metadata : dict
        The rest of the file's metadata (package version, ...).
    """

    params: dict
    outputs: dict
    dims: dict
    coords: dict
    metadata: dict

    KIND = _KIND

    @classmethod
    def load(cls, path: str | os.PathLike) -> SweepPoint:
        arrays, meta = _io.read_npz(path, cls.KIND)
        try:
            outputs = {n: arrays[f"v:{n}"] for n in meta["order"]}
            coords = {n: arrays[f"c:{n}"] for n in meta["coords"]}
            dims = {n: tuple(meta["dims"][n]) for n in meta["order"]}
            params = dict(meta["params"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"file {str(path)!r} is a truncated SweepPoint: missing {exc}"
                             ) from None
        rest = {k: v for k, v in meta.items()
                if k not in ("order", "coords", "dims", "params", "kind", "format_version")}
        return cls(params=params, outputs=outputs, dims=dims, coords=coords, metadata=rest)

    def __repr__(self) -> str:
        return f"SweepPoint({self.params}, outputs={list(self.outputs)})"


def _read_point(path: Path):
    try:
        arrays, meta = _io.read_npz(path, _KIND)
        data = {n: (tuple(meta["dims"][n]), arrays[f"v:{n}"]) for n in meta["order"]}
        coords = {n: arrays[f"c:{n}"] for n in meta["coords"]}
    except (ValueError, KeyError, TypeError):
        return None  # unreadable or foreign: recompute
    return data, coords


# -------------------------------------------------------------------------------- workers
def _normalise(out, builtin: bool = False) -> tuple[dict, dict]:
    """A task's return value -> ({name: (dims, array)}, {dim: coordinate array})."""
    if builtin:
        data, coords = out  # the built-in tasks answer in this form already
    else:
        if not isinstance(out, Mapping):
            out = {"value": out}
        data, coords = {}, {}
        for name, val in out.items():
            if hasattr(val, "dims") and hasattr(val, "coords") and hasattr(val, "values"):
                dims = tuple(str(d) for d in val.dims)
                for d in dims:
                    if d in val.coords:
                        coords[d] = np.asarray(val.coords[d].values)
                data[str(name)] = (dims, val.values)
            else:
                a = np.asarray(val)
                data[str(name)] = (tuple(f"{name}_dim_{i}" for i in range(a.ndim)), a)
    clean = {}
    for name, (dims, a) in data.items():
        if name in _RESERVED:
            raise ValueError(f"output name {name!r} is reserved")
        a = np.asarray(a)
        if a.dtype.kind in "biuf":
            a = a.astype(np.float64)
        elif a.dtype.kind in "US":
            a = a.astype(str)
        else:
            raise TypeError(f"output {name!r} has dtype {a.dtype}; return numbers or strings")
        if a.ndim != len(dims):
            raise ValueError(f"output {name!r}: {a.ndim}-d array with dims {dims}")
        clean[name] = (tuple(dims), a)
    return clean, {d: np.asarray(c) for d, c in coords.items()}


def _run_batch(task, points: list, raise_errors: bool = False) -> list:
    """Run ``points`` one after the other (in a worker); each entry of the answer is
    ``("ok", data, coords)`` or ``("error", "TypeName: message")``."""
    fn = _resolve_task(task)[0]
    builtin = isinstance(task, str) and task in TASKS
    memo: dict = {}
    out = []
    for p in points:
        try:
            res = fn(**p, _memo=memo) if builtin else fn(**p)
            data, coords = _normalise(res, builtin)
            out.append(("ok", data, coords))
        except Exception as exc:
            if raise_errors:
                raise
            msg = " ".join(f"{type(exc).__name__}: {exc}".split())
            out.append(("error", msg))
    return out


# -------------------------------------------------------------------------------- driver
def _n_workers(executor, max_workers) -> int:
    for attr in ("_max_workers",):
        n = getattr(executor, attr, None)
        if isinstance(n, int) and n > 0:
            return n
    client = getattr(executor, "_client", None) or (
        executor if hasattr(executor, "nthreads") and hasattr(executor, "get_executor") else None)
    if client is not None:
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:  # pragma: no cover - a client that cannot tell
            pass
    return max_workers or _cores()


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what is queued and kill the running workers of a pool this module owns, at once.

    SIGKILL, not SIGTERM: a worker inside ``integrate`` or ``simulate`` takes SIGTERM as a
    request to stop that one run (their run control), and would go on with the rest of its
    batch; and nothing is lost, since only the driver writes (the cache, the output)."""
    kill = getattr(pool, "kill_workers", None)  # Python >= 3.14
    if kill is not None:
        kill()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.kill()
    for proc in processes:
        proc.join(timeout=2)


def _make_cache_dir(cache_dir: Path) -> None:
    """Create the cache directory (and its parents); one line when it cannot be one."""
    if cache_dir.exists() and not cache_dir.is_dir():
        raise ValueError(f"cache={str(cache_dir)!r} is a file; the cache is a directory (give "
                         "another path, or delete the file)")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cache={str(cache_dir)!r}: cannot create the directory "
                         f"({exc.strerror or exc})") from None


def _check_run_args(executor, batch_size, max_workers, errors, progress=None) -> None:
    want_progress(progress)
    if errors not in ("record", "raise"):
        raise ValueError(f"errors={errors!r} must be 'record' or 'raise'")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
        raise ValueError(f"max_workers={max_workers!r} must be a positive integer")
    if isinstance(executor, str) and executor not in ("local", "serial"):
        raise ValueError(f"executor={executor!r}: expected 'local', 'serial', a "
                         "concurrent.futures.Executor or a dask.distributed Client")
    if not (executor is None or isinstance(executor, (str, cf.Executor))
            or hasattr(executor, "get_executor")):
        raise ValueError(f"executor must be a concurrent.futures.Executor or a dask Client, got "
                         f"{type(executor).__name__}")


def _execute(plan: _Plan, task, executor, cache, batch_size, max_workers, progress, errors,
             desc) -> list:
    """Every point's answer, in grid order: cached ones read, the others run in batches."""
    cache_dir = None if cache is None else Path(cache)
    if cache_dir is not None:
        _make_cache_dir(cache_dir)

    n = len(plan.points)
    results: list = [None] * n
    files: list = [None] * n
    if cache_dir is not None:
        for i, p in enumerate(plan.points):
            files[i] = _cache_file(cache_dir, plan.task_id, point_key(plan.task_id, p))
            if files[i].exists():
                got = _read_point(files[i])
                if got is not None:
                    results[i] = ("ok", *got)
    todo = [i for i in range(n) if results[i] is None]

    bar = make_bar(progress, n, desc or f"sweep {plan.task_id}", unit="pt")
    bar.update(n - len(todo))  # the cached points: the starting point
    task_ref = plan.task_id if plan.builtin or isinstance(task, str) else plan.fn
    own = None
    try:
        if todo:
            ex = executor
            if hasattr(ex, "get_executor") and not isinstance(ex, cf.Executor):
                ex = ex.get_executor()
            if ex is None or ex == "local":
                workers = max_workers or _cores()
            elif ex == "serial":
                workers = 1
            else:
                workers = _n_workers(ex, max_workers)
            size = batch_size or _BATCH_HINT.get(plan.task_id) or \
                max(1, math.ceil(len(todo) / (4 * workers)))
            batches = [todo[j:j + size] for j in range(0, len(todo), size)]
            if ex is None or ex == "local":
                if len(batches) == 1 or workers == 1:
                    ex = "serial"
                else:
                    own = ex = cf.ProcessPoolExecutor(
                        max_workers=min(workers, len(batches)),
                        mp_context=multiprocessing.get_context("spawn"))

            def done(batch, answers):
                for i, ans in zip(batch, answers, strict=True):
                    results[i] = ans
                    if ans[0] == "ok" and files[i] is not None:
                        _write_point(files[i], plan.points[i], ans[1:])
                bar.update(len(batch))

            raising = errors == "raise"
            if ex == "serial":
                for b in batches:
                    done(b, _run_batch(task_ref, [plan.points[i] for i in b], raising))
            else:
                futures = {ex.submit(_run_batch, task_ref, [plan.points[i] for i in b], raising):
                           b for b in batches}
                try:
                    for fut in cf.as_completed(futures):
                        b = futures[fut]
                        try:
                            answers = fut.result()
                        except cf.BrokenExecutor as exc:
                            raise RuntimeError(
                                f"the executor broke ({type(exc).__name__}: {exc}); finished "
                                "points are cached. With the default process pool, a script "
                                "must guard its code with `if __name__ == '__main__':` (the "
                                "pool starts workers with spawn)") from exc
                        except Exception as exc:  # this batch was lost (e.g. a worker died)
                            if raising:
                                raise
                            msg = " ".join(f"{type(exc).__name__}: {exc}".split())
                            answers = [("error", f"batch failed: {msg}")] * len(b)
                        done(b, answers)
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    except BaseException:
        if own is not None:  # Ctrl-C or an error: stop the pool's workers now
            _stop_pool(own)
            own = None
        raise
    finally:
        bar.close()
        if own is not None:
            own.shutdown(wait=True)

    return results


def sweep(task, grid, *, fixed: Mapping | None = None, executor=None,
          cache: str | os.PathLike | None = None, output: str | os.PathLike | None = None,
          batch_size: int | None = None, max_workers: int | None = None,
          progress: bool | None = None, errors: str = "record", desc: str | None = None):
    r"""Run ``task`` at every point of ``grid`` and gather the results in an ``xarray.Dataset``.

    Parameters
    ----------
    task : {"integrate", "simulate", "prune"}, callable or str
        A built-in task (:data:`TASKS`; see :func:`task_integrate`, :func:`task_simulate`,
        :func:`task_prune` for their parameters and outputs), a function ``fn(**params)``
        returning a number, an array, an ``xarray.DataArray`` or a dict of those (names ->
        data variables), or ``"package.module:function"``.
    grid : dict
        Axes: ``name -> list of values`` (numbers or strings; the product of all axes is swept)
        or ``dim -> {name: list, ...}`` (zipped parameters sharing the dimension ``dim``).
    fixed : dict, optional
        Every other parameter of the task (JSON-serialisable; ``init`` may be an OrderParams).
    executor : concurrent.futures.Executor, dask Client, "local" or "serial", optional
        Where batches run; default ``"local"``: a process pool of ``max_workers`` (default: the
        available cores) started with ``spawn``, shut down at the end.
    cache : path, optional
        Directory of per-point results (created if needed): reused, so a sweep resumes.
    output : path, optional
        Also :func:`save` the Dataset there (netCDF, atomically).
    batch_size : int, optional
        Points per submitted task (default: about four batches per worker; one for
        ``"simulate"``). A point is cached when its batch returns, so expensive user tasks
        want small batches.
    max_workers : int, optional
        Processes of the default pool.
    progress : bool or None
        A bar (stderr) counting points; ``None`` (default): when stderr is a terminal
        (:mod:`odeprune.ode.progress`).
    errors : {"record", "raise"}
        ``"record"`` (default): a point that raises gets its message in the ``error`` variable
        and NaN outputs; ``"raise"``: re-raise the first exception (after cancelling the rest).
    desc : str, optional
        Label of the progress bar.

    Returns
    -------
    xarray.Dataset
        Dimensions: the grid axes (in order), then each output's own (``alpha``); ``error``
        (str, "" on success); attrs ``task``, ``odeprune_version``, ``grid`` and
        ``fixed_parameters`` (JSON), ``n_points``, ``n_failed`` and each fixed parameter.

    Raises
    ------
    ValueError
        A bad task, grid, parameter name or executor (before any work starts).
    ImportError
        Without xarray: ``pip install "odeprune[sweep]"``.
    """
    xr = _require_xarray()
    _check_run_args(executor, batch_size, max_workers, errors, progress)
    if output is not None:
        _io._check_writable(Path(output))
    plan = check(task, grid, fixed, executor)
    results = _execute(plan, task, executor, cache, batch_size, max_workers, progress, errors,
                       desc)
    ds = _assemble(xr, plan, results)
    if output is not None:
        save(ds, output)
    return ds


def run_points(task, grid, *, fixed: Mapping | None = None, executor=None,
               cache: str | os.PathLike | None = None, batch_size: int | None = None,
               max_workers: int | None = None, progress: bool | None = None,
               errors: str = "record",
               desc: str | None = None) -> list[dict]:
    """The engine of :func:`sweep` without xarray: the same validation, batching, executor and
    cache, answering one dict per point in grid order: ``params`` (the point's full
    parameters), ``outputs`` (name -> array; empty on failure) and ``error`` (None or the
    message). The figures use it for their per-seed grids."""
    _check_run_args(executor, batch_size, max_workers, errors, progress)
    plan = check(task, grid, fixed, executor)
    results = _execute(plan, task, executor, cache, batch_size, max_workers, progress, errors,
                       desc)
    return [dict(params=p, outputs={n: a for n, (_, a) in r[1].items()} if r[0] == "ok" else {},
                 error=None if r[0] == "ok" else r[1])
            for p, r in zip(plan.points, results, strict=True)]


# ------------------------------------------------------------------------------- assembly
def _attr_value(v):
    if isinstance(v, (int, float, str)) and not isinstance(v, bool):
        return v
    return json.dumps(v, default=_io._json_default)


def _assemble(xr, plan: _Plan, results: list):
    shape, dims = plan.shape, plan.dims
    n = len(results)
    errors = np.array([r[1] if r[0] == "error" else "" for r in results], dtype=object)
    # outputs in first-seen order; a point whose outputs disagree with the first is a failure
    spec: dict = {}
    for i, r in enumerate(results):
        if r[0] != "ok":
            continue
        data = r[1]
        bad = None
        for name, (d, a) in data.items():
            if set(d) & set(dims):
                bad = f"output {name!r} has a dimension named like a grid axis ({d})"
            elif name in spec and (spec[name][0] != d or spec[name][1] != a.dtype.kind):
                bad = (f"output {name!r} has dims {d} and dtype kind {a.dtype.kind!r}, other "
                       f"points {spec[name][0]} and {spec[name][1]!r}")
        if bad is None:
            for name, (d, a) in data.items():
                spec.setdefault(name, (d, a.dtype.kind))
        else:
            results[i] = ("error", f"ValueError: {bad}")
            errors[i] = results[i][1]
    ok = [i for i, r in enumerate(results) if r[0] == "ok"]
    # sizes of the outputs' own dims (the largest over points; shorter ones are NaN-padded)
    sizes: dict = {}
    for i in ok:
        for d, a in results[i][1].values():
            for dim, s in zip(d, a.shape):
                sizes[dim] = max(sizes.get(dim, 0), s)
    data_vars = {}
    for name, (d, kind) in spec.items():
        full = (n, *(sizes[x] for x in d))
        arr = np.full(full, "", dtype=object) if kind in "US" else np.full(full, np.nan)
        for i in ok:
            got = results[i][1].get(name)
            if got is not None:
                a = got[1]
                arr[(i, *(slice(0, s) for s in a.shape))] = a
        data_vars[name] = ((*dims, *d), arr.reshape(*shape, *full[1:]))
    data_vars["error"] = (dims, errors.reshape(shape))
    coords = {}
    for a in plan.axes:
        for name, vals in a.params.items():
            coords[name] = (a.dim, np.array(vals, dtype=object if isinstance(vals[0], str)
                                            else None))
    for dim in sizes:
        cs = [results[i][2][dim] for i in ok if dim in results[i][2]]
        if not cs:
            continue
        first = cs[0]
        if all(c.shape == first.shape and np.array_equal(c, first) for c in cs) \
                and first.shape == (sizes[dim],):
            coords[dim] = (dim, first)
        else:  # the points disagree (e.g. simulate's alpha rounded to steps of 1/N)
            arr = np.full((n, sizes[dim]), np.nan)
            for i in ok:
                c = results[i][2].get(dim)
                if c is not None:
                    arr[i, :c.size] = c
            data_vars[f"{dim}_values"] = ((*dims, dim), arr.reshape(*shape, sizes[dim]))
    n_failed = int(sum(1 for e in errors if e))
    attrs = {"task": plan.task_id, "odeprune_version": _io.package_version(),
             "grid": json.dumps({a.dim: {k: list(v) for k, v in a.params.items()}
                                 for a in plan.axes}),
             "fixed_parameters": _canonical({k: (_init_token(v) if k == "init" else v)
                                             for k, v in plan.fixed.items()}),
             "n_points": n, "n_failed": n_failed}
    for k, v in plan.fixed.items():
        if k not in attrs:
            attrs[k] = _attr_value(_init_token(v) if k == "init" and v is not None else v)
    return xr.Dataset(data_vars=data_vars, coords=coords, attrs=attrs)


# ------------------------------------------------------------------------------------ files
def save(ds, path: str | os.PathLike) -> Path:
    """Write ``ds`` as netCDF to ``path`` atomically (a temporary file beside it, then a
    rename). Read it back with ``xarray.open_dataset(path)`` or :func:`load`."""
    return _io.atomic_write_path(path, ds.to_netcdf)


def load(path: str | os.PathLike):
    """A saved sweep, read into memory (the file is closed)."""
    xr = _require_xarray()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"file {str(path)!r} does not exist")
    with xr.open_dataset(path) as ds:
        return ds.load()


class _CallableModule(types.ModuleType):
    """``odeprune.sweep(...)`` calls :func:`sweep`: the package attribute ``odeprune.sweep``
    is this module as soon as it has been imported, so the module itself must be the entry
    function too (``from odeprune.sweep import sweep`` works as well)."""

    def __call__(self, *args, **kwargs):
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
