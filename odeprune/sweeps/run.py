"""Running a sweep's plan: cached points read, the others in batches on an executor (a local
process pool by default, any :class:`concurrent.futures.Executor`, a dask Client, or this
process), each finished point cached as its batch comes back; :func:`sweep` gathers the answers
in an ``xarray.Dataset``, :func:`run_points` returns them as dicts."""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .. import _io
from .._cache import cache_dir
from .._pool import Items, available_cores, process_pool, stop_pool
from .._validate import check_size, check_workers
from ..ode.progress import make_bar, want_progress
from .cache import point_file, read_point, write_point
from .dataset import assemble, require_xarray, save
from .grid import RESERVED, Plan, check
from .tasks import BATCH_HINT, TASKS, resolve_task

__all__ = ["sweep", "run_points", "RunOptions", "run_options"]


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
        if name in RESERVED:
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
    fn = resolve_task(task)[0]
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
@dataclass(frozen=True)
class RunOptions:
    """How a sweep's points run (the options :func:`sweep` and :func:`run_points` share; see
    :func:`sweep`), checked when made: one line naming the option."""

    executor: Any = None
    cache: str | os.PathLike | None = None
    batch_size: int | None = None
    max_workers: int | None = None
    progress: bool | None = None
    errors: str = "record"
    desc: str | None = None

    def __post_init__(self) -> None:
        want_progress(self.progress)
        if self.errors not in ("record", "raise"):
            raise ValueError(f"errors={self.errors!r} must be 'record' or 'raise'")
        if self.batch_size is not None:
            check_size("batch_size", self.batch_size)
        check_workers("max_workers", self.max_workers)
        ex = self.executor
        if isinstance(ex, str) and ex not in ("local", "serial"):
            raise ValueError(f"executor={ex!r}: expected 'local', 'serial', a "
                             "concurrent.futures.Executor or a dask.distributed Client")
        if not (ex is None or isinstance(ex, (str, cf.Executor)) or hasattr(ex, "get_executor")):
            raise ValueError(f"executor must be a concurrent.futures.Executor or a dask Client, "
                             f"got {type(ex).__name__}")


def _executor_workers(executor, max_workers) -> int:
    """How many batches a given executor runs at once (for the batch size)."""
    n = getattr(executor, "_max_workers", None)
    if isinstance(n, int) and n > 0:
        return n
    client = getattr(executor, "_client", None) or (
        executor if hasattr(executor, "nthreads") and hasattr(executor, "get_executor") else None)
    if client is not None:
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:  # pragma: no cover - a client that cannot tell
            pass
    return max_workers or available_cores()


def _cached(plan: Plan, cache) -> tuple[list, list]:
    """Every point's cache file (None without a cache) and its answer where it is cached."""
    n = len(plan.points)
    results: list = [None] * n
    files: list = [None] * n
    if cache is not None:
        directory = cache_dir(cache)
        for i, p in enumerate(plan.points):
            files[i] = point_file(directory, plan.task_id, p)
            if files[i].exists():
                got = read_point(files[i])
                if got is not None:
                    results[i] = ("ok", *got)
    return results, files


def _batches(plan: Plan, todo: list, opts: RunOptions):
    """The executor to submit to (``"serial"``: this process), the pool made here (or None)
    and the batches of point indices, in grid order."""
    ex = opts.executor
    if hasattr(ex, "get_executor") and not isinstance(ex, cf.Executor):
        ex = ex.get_executor()
    if ex is None or ex == "local":
        workers = opts.max_workers or available_cores()
    elif ex == "serial":
        workers = 1
    else:
        workers = _executor_workers(ex, opts.max_workers)
    size = opts.batch_size or BATCH_HINT.get(plan.task_id) or \
        max(1, math.ceil(len(todo) / (4 * workers)))
    batches = [todo[j:j + size] for j in range(0, len(todo), size)]
    own = None
    if ex is None or ex == "local":
        if len(batches) == 1 or workers == 1:
            ex = "serial"
        else:
            own = ex = process_pool(min(workers, len(batches)))
    return ex, own, batches


def _submitted(ex, task_ref, batches: list, points: list, raising: bool):
    """``(batch, answers)`` as each batch comes back from ``ex``; a lost batch (a worker died)
    is answered with errors unless ``raising``."""
    pool = Items(ex)
    try:
        futures = dict(zip(pool.submit_all(_run_batch, ((task_ref, [points[i] for i in b],
                                                          raising) for b in batches)),
                           batches, strict=True))
        for fut in cf.as_completed(futures):
            b = futures[fut]
            try:
                answers = fut.result()
            except cf.BrokenExecutor as exc:
                raise RuntimeError(
                    f"the executor broke ({type(exc).__name__}: {exc}); finished points are "
                    "cached. With the default process pool, a script must guard its code with "
                    "`if __name__ == '__main__':` (the pool starts workers with spawn)") from exc
            except Exception as exc:  # this batch was lost (e.g. a worker died)
                if raising:
                    raise
                msg = " ".join(f"{type(exc).__name__}: {exc}".split())
                answers = [("error", f"batch failed: {msg}")] * len(b)
            yield b, answers
    except BaseException as exc:
        pool.ask_to_stop(exc)  # (a thread pool's batches stop at their runs' next chunk)
        raise


def _execute(plan: Plan, task, opts: RunOptions) -> list:
    """Every point's answer, in grid order: cached ones read, the others run in batches."""
    results, files = _cached(plan, opts.cache)
    n = len(plan.points)
    todo = [i for i in range(n) if results[i] is None]
    bar = make_bar(opts.progress, n, opts.desc or f"sweep {plan.task_id}", unit="pt")
    bar.update(n - len(todo))  # the cached points: the starting point
    task_ref = plan.task_id if plan.builtin or isinstance(task, str) else plan.fn
    raising = opts.errors == "raise"
    own = None
    try:
        if todo:
            ex, own, batches = _batches(plan, todo, opts)
            answered = ((b, _run_batch(task_ref, [plan.points[i] for i in b], raising))
                        for b in batches) if ex == "serial" else \
                _submitted(ex, task_ref, batches, plan.points, raising)
            for batch, answers in answered:
                for i, ans in zip(batch, answers, strict=True):
                    results[i] = ans
                    if ans[0] == "ok" and files[i] is not None:
                        write_point(files[i], plan.points[i], ans[1:])
                bar.update(len(batch))
    except BaseException:
        if own is not None:  # Ctrl-C or an error: stop the pool's workers now
            stop_pool(own)
            own = None
        raise
    finally:
        bar.close()
        if own is not None:
            own.shutdown(wait=True)
    return results


def run_options(where: str, keywords: dict) -> RunOptions:
    """The :class:`RunOptions` of :func:`sweep` or :func:`run_points` from their keywords; a
    keyword that is not one of its fields is a ``TypeError``, as Python's own."""
    known = [f.name for f in fields(RunOptions)]
    unknown = sorted(set(keywords) - set(known))
    if unknown:
        raise TypeError(f"{where}() got unexpected keyword argument(s) {unknown}; its options "
                        f"are {sorted(known)} and fixed, output")
    return RunOptions(**keywords)


def sweep(task, grid, *, fixed: Mapping | None = None,
          output: str | os.PathLike | None = None, **options):
    r"""Run ``task`` at every point of ``grid`` and gather the results in an ``xarray.Dataset``.

    Parameters
    ----------
    task : {"integrate", "simulate", "prune"}, callable or str
        A built-in task (:data:`odeprune.sweeps.TASKS`; see :mod:`odeprune.sweeps.tasks` for
        their parameters and outputs), a function ``fn(**params)`` returning a number, an
        array, an ``xarray.DataArray`` or a dict of those (names -> data variables), or
        ``"package.module:function"``.
    grid : dict
        Axes: ``name -> list of values`` (numbers or strings; the product of all axes is swept)
        or ``dim -> {name: list, ...}`` (zipped parameters sharing the dimension ``dim``).
    fixed : dict, optional
        Every other parameter of the task (JSON-serialisable; ``init`` may be an OrderParams).
    output : path, optional
        Also :func:`save` the Dataset there (netCDF, atomically).
    **options
        How the points run, the fields of :class:`RunOptions` (checked there):

    executor : concurrent.futures.Executor, dask Client, "local" or "serial", optional
        Where batches run; default ``"local"``: a process pool of ``max_workers`` (default: the
        available cores) started with ``spawn``, shut down at the end.
    cache : path, optional
        Directory of per-point results (created if needed): reused, so a sweep resumes.
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
    xr = require_xarray()
    opts = run_options("sweep", options)
    if output is not None:
        _io._check_writable(Path(output))
    plan = check(task, grid, fixed, opts.executor)
    ds = assemble(xr, plan, _execute(plan, task, opts))
    if output is not None:
        save(ds, output)
    return ds


def run_points(task, grid, *, fixed: Mapping | None = None, **options) -> list[dict]:
    """The engine of :func:`sweep` without xarray: the same validation, batching, executor and
    cache, answering one dict per point in grid order: ``params`` (the point's full
    parameters), ``outputs`` (name -> array; empty on failure) and ``error`` (None or the
    message). ``options``: the fields of :class:`RunOptions`, as :func:`sweep`'s."""
    opts = run_options("run_points", options)
    plan = check(task, grid, fixed, opts.executor)
    results = _execute(plan, task, opts)
    return [dict(params=p, outputs={n: a for n, (_, a) in r[1].items()} if r[0] == "ok" else {},
                 error=None if r[0] == "ok" else r[1])
            for p, r in zip(plan.points, results, strict=True)]
