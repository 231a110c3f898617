"""A sweep's grid: axes (plain or zipped), the validation of the task, the parameter names and
every value a built-in task will get (before any point runs), and the plan: every point's full
parameters in grid (row-major) order."""

from __future__ import annotations

import inspect
import itertools
import json
import math
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .. import _io
from .._validate import check_int, check_real, check_seed
from ..options import OPTIONS
from ..pruning._api import PruneOptions, load_masked
from ..pruning.registry import METHODS as PRUNE_METHODS
from ..pruning.registry import REWEIGHTS
from ..state import OrderParams
from .cache import is_orderparams
from .tasks import resolve_task

__all__ = ["Axis", "Plan", "check", "RESERVED"]

#: names a grid axis or an output may not take
RESERVED = ("error",)


@dataclass(frozen=True)
class Axis:
    """One dimension of the grid: ``params`` advance together along ``dim`` (one entry: a plain
    axis; several: a zipped one)."""

    dim: str
    params: dict  # parameter name -> tuple of values (one entry: a plain axis)

    def __len__(self) -> int:
        return len(next(iter(self.params.values())))


@dataclass(frozen=True)
class Plan:
    """A checked sweep (:func:`check`): the task, the axes, the fixed parameters and every
    point's full parameters."""

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
            axis = Axis(dim, params)
        else:
            axis = Axis(dim, {dim: _axis_values(dim, values)})
        for name in axis.params:
            if name in seen:
                raise ValueError(f"parameter {name!r} appears on two grid axes")
            seen.add(name)
        if dim in seen - set(axis.params):
            raise ValueError(f"grid axis name {dim!r} is also a parameter of another axis")
        seen.add(dim)
        axes.append(axis)
    return tuple(axes)


def check(task, grid, fixed: Mapping | None = None, executor=None) -> Plan:
    """Validate a sweep without running it: the task, the grid, the parameter names (against
    the task's signature) and, for a process pool, that the task can be sent to it. Raises
    ``ValueError`` with a one-line message; returns the plan (points in grid order)."""
    fn, task_id, builtin = resolve_task(task)
    axes = _parse_grid(grid)
    fixed = dict(fixed or {})
    for name in fixed:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"fixed parameter name {name!r} must be an identifier")
    on_axes = [n for a in axes for n in a.params]
    both = sorted(set(on_axes) & set(fixed))
    if both:
        raise ValueError(f"parameter(s) {both} are both on the grid and fixed")
    clash = sorted({a.dim for a in axes} & set(RESERVED))
    if clash:
        raise ValueError(f"grid axis name(s) {clash} are reserved")
    names = set(on_axes) | set(fixed)
    if builtin:  # the task's parameters (their defaults recorded) and the options it takes
        takes = list(fn.parameters) + list(fn.options)
        unknown = sorted(n for n in names if n not in takes)
        if unknown:
            raise ValueError(f"task {task_id!r} has no parameter(s) {unknown}; it takes "
                             f"{sorted(takes)}")
        for n, default in fn.parameters.items():  # the attrs and the cache key say everything
            if n not in names:
                fixed[n] = default
    else:
        _check_names(fn, task_id, names)
    if builtin and "init" in fixed and fixed["init"] is not None:
        given = sorted(n for n in ("N", "K", "M", "v_star") if n in names)
        if given:
            raise ValueError(f"init fixes the initial state: drop {given} from the sweep")
        if not is_orderparams(fixed["init"]):
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
        if n == "init" and is_orderparams(v):
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
    return Plan(fn=fn, task_id=task_id, builtin=builtin, axes=axes, fixed=fixed,
                 points=points)


def _check_names(fn: Callable, task_id: str, names: set) -> None:
    """A user's task: every name among its keyword parameters (or it takes ``**kw``), and
    every parameter without a default given."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return
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


def _optional(check):
    return lambda name, v: None if v is None else check(name, v)


def _choice(allowed):
    def check(name, v):
        if not isinstance(v, str) or v not in allowed:
            raise ValueError(f"{name}={v!r} is unknown; expected one of {list(allowed)}")
    return check


def _real(name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                             np.floating)) \
            or not math.isfinite(v):
        raise ValueError(f"{name}={v!r} must be a finite real number")


def _save_at(name, v):
    values = v if isinstance(v, (list, tuple)) else [v]
    for x in values:
        _real(name, x)
        if x < 0:
            raise ValueError(f"{name}={v!r}: times must be >= 0")


def _nonneg(name, v):
    check_real(name, v, allow_zero=True)


def _fraction(name, v):
    _real(name, v)
    if not 0 <= v <= 1:
        raise ValueError(f"{name}={v!r} is out of range; allowed 0 <= c <= 1")


def _table(name, v):
    OPTIONS[name].check(v)


def _prune_option(name, v):
    PruneOptions(**{name: v})


#: the checks of the built-in tasks' parameters, as the library makes them when it runs,
#: applied to every value of the grid and of ``fixed`` before any point is launched: an option
#: of the table (:data:`odeprune.options.OPTIONS`) or of the pruning record
#: (:class:`~odeprune.pruning._api.PruneOptions`) by its own check, the few others here;
#: ``(task, name)`` entries override ``name`` ones
_CHECKS: dict = {
    **{f.name: _prune_option for f in fields(PruneOptions)}, **{name: _table for name in OPTIONS},
    "prune_seed": check_seed, ("prune", "alpha_max"): _nonneg,
    ("prune", "method"): _choice(PRUNE_METHODS),
    "k": _optional(lambda name, v: check_int(name, v, 1)), "c": _optional(_fraction),
    "reweight": _choice(REWEIGHTS), "save_at": _optional(_save_at),
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
