r"""Parameter sweeps: a grid of calls to one task, on any executor, as an ``xarray.Dataset``.

::

    import odeprune

    ds = odeprune.sweep("integrate", {"eta": [0.1, 0.5, 1.0], "K": [2, 4, 6]},
                        fixed={"M": 2, "alpha_max": 1000.0}, cache="sweep-cache",
                        output="phase.nc")
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
by the driver, as its batch comes back; the package's one cache, :mod:`odeprune._cache`), the
hash covering the task, all of the point's parameters (an ``init`` file by its content) and the
package version. A later sweep over an
overlapping grid reuses those points, so an interrupted or killed sweep continues where it
stopped and returns the same Dataset bit for bit. Failed points are not cached: they are retried.

Why netCDF and not zarr: a sweep's result is small (kilobytes to megabytes) and written once at
the end, so a single self-describing file that is renamed into place atomically, opened by
xarray, ncview, MATLAB or R without extra packages, suits it better than a directory store; the
per-point cache above already gives the incremental, resumable part.

The package's modules, one job each: :mod:`~odeprune.sweeps.tasks` (the built-in tasks),
:mod:`~odeprune.sweeps.grid` (the grid, its validation and the plan of points),
:mod:`~odeprune.sweeps.cache` (the points' cache files, in the package's one cache
:mod:`odeprune._cache`), :mod:`~odeprune.sweeps.run` (batches on an executor: :func:`sweep`,
:func:`run_points`), :mod:`~odeprune.sweeps.dataset` (the ``xarray.Dataset``, its netCDF file).
``odeprune.sweep`` is the function :func:`sweep`.
"""

from __future__ import annotations

from .._cache import CACHE_VERSION
from .cache import SweepPoint, point_key
from .dataset import EXTRA_HINT, load, save
from .grid import check
from .run import run_points, sweep
from .tasks import TASKS, task_integrate, task_prune, task_simulate

__all__ = ["sweep", "run_points", "check", "save", "load", "TASKS", "EXTRA_HINT", "CACHE_VERSION",
           "SweepPoint", "point_key", "task_integrate", "task_simulate", "task_prune"]
