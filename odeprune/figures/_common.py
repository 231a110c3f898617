"""Shared machinery of the figures: cached simulations and ODE curves, progress bars,
statistics, saving a plot.

Every expensive item (one simulation seed, one ODE curve, the pruning of one seed) is stored in
``cache_dir`` (:mod:`odeprune.figures._cache`) under a name made of its kind and a hash of
everything it depends on, so an interrupted ``odeprune reproduce`` continues where it stopped and
a re-plot is instant. With ``cache_dir=None`` nothing is read or written.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..ode.batch import available_cores
from ..ode.dynamics import integrate
from ..plotting import save_figure
from ..results import LearningCurve
from ..sim import SimulationResult, simulate
from ..sweep import run_points
from ._cache import cache_path


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr (a no-op object when disabled)."""
    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False,
                dynamic_ncols=True)


# ------------------------------------------------------------------------ simulations, curves
def simulation(cache_dir: Path | None, params: dict, seed: int):
    """One finite-N run ``simulate(**params, seed=seed)``, cached per seed."""
    path = cache_path(cache_dir, "sim", dict(params, seed=seed), ".npz")
    if path is not None and path.exists():
        try:
            return SimulationResult.load(path)
        except ValueError:
            pass
    res = simulate(**params, seed=seed)
    if path is not None:
        res.save(path)
    return res


def simulation_point(cache_dir: str, params: dict, seed: int) -> dict:
    """One point of the figures' grids over seeds (run by :func:`odeprune.sweep.run_points`):
    the seed's simulation, written to its cache file in ``cache_dir``."""
    simulation(Path(cache_dir), params, int(seed))
    return {"seed": int(seed)}


def simulations(cache_dir: Path | None, params: dict, seeds: Sequence[int], progress: bool,
                desc: str = "simulate") -> list:
    """Runs for all ``seeds`` (cached per seed): the missing ones as a grid over the seeds
    through :func:`odeprune.sweep.run_points` on a thread pool (the compiled SGD loop releases
    the GIL), the one code path of every figure's grid. Without a cache directory the runs go
    through a temporary one."""
    seeds = [int(s) for s in seeds]
    with tempfile.TemporaryDirectory(prefix="odeprune-fig-") as scratch:
        where = Path(scratch) if cache_dir is None else Path(cache_dir)
        missing = [s for s in seeds
                   if not cache_path(where, "sim", dict(params, seed=s), ".npz").exists()]
        if missing:
            workers = max(1, min(len(missing), available_cores()))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="odeprune-fig") as ex:
                run_points(simulation_point, {"seed": missing}, executor=ex, batch_size=1,
                           progress=progress, errors="raise", desc=f"{desc} ({len(missing)} seeds)",
                           fixed=dict(cache_dir=str(where), params=dict(params)))
        return [simulation(where, params, s) for s in seeds]


def ode_curve(cache_dir: Path | None, state, params: dict, key: dict):
    """``integrate(state, **params)``, cached under ``key`` (which must identify ``state``)."""
    path = cache_path(cache_dir, "ode", dict(params, state=key), ".npz")
    if path is not None and path.exists():
        try:
            return LearningCurve.load(path)
        except ValueError:
            pass
    curve = integrate(state, **params)
    if path is not None:
        curve.save(path)
    return curve


# ------------------------------------------------------------------------ statistics, plots
def mean_std(values: Iterable[float]) -> tuple[float, float, float, int]:
    """Mean, standard deviation (ddof=1; 0 for one value), standard error, count."""
    a = np.asarray(list(values), dtype=float)
    n = a.size
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    sd = float(a.std(ddof=1)) if n > 1 else 0.0
    return float(a.mean()), sd, sd / np.sqrt(n), n


def save(fig, out_dir: Path, name: str) -> list[Path]:
    """PNG and PDF of ``fig``, atomically."""
    png = save_figure(fig, Path(out_dir) / f"{name}.png", pdf=True)
    return [png, png.with_suffix(".pdf")]
