"""Shared machinery of the figures: cached simulations and ODE curves, progress bars,
statistics, saving a plot.

Every expensive item (one simulation seed, one ODE curve, the pruning of one seed) is stored in
``cache_dir`` (the package's one cache, :mod:`odeprune._cache`) under a name made of its kind
and a hash of everything it depends on, so an interrupted ``odeprune reproduce`` continues where
it stopped and a re-plot is instant. With ``cache_dir=None`` nothing is read or written.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .._cache import cached_file, entry
from .._pool import map_parallel
from ..ode.dynamics import integrate
from ..ode.progress import make_bar
from ..plotting import save_figure
from ..results import LearningCurve
from ..sim import SimulationResult, simulate


def progress_bar(total: int, desc: str, enabled: bool):
    """The package's progress bar (:func:`odeprune.ode.progress.make_bar`, on stderr; a no-op
    object when disabled), with the figures' argument order."""
    return make_bar(bool(enabled), total, desc)


# ------------------------------------------------------------------------ simulations, curves
def simulation(cache_dir: Path | None, params: dict, seed: int):
    """One finite-N run ``simulate(**params, seed=seed)``, cached per seed."""
    return cached_file(cache_dir, "sim", dict(params, seed=seed),
                       lambda: simulate(**params, seed=seed), SimulationResult.load)


def simulations(cache_dir: Path | None, params: dict, seeds: Sequence[int], progress: bool,
                desc: str = "simulate") -> list:
    """Runs for all ``seeds`` (cached per seed): the missing ones in parallel on a thread pool
    (the compiled SGD loop releases the GIL; :func:`odeprune._pool.map_parallel`), the one code
    path of every figure's seeds. Without a cache directory the runs go through a temporary
    one."""
    seeds = [int(s) for s in seeds]
    with tempfile.TemporaryDirectory(prefix="odeprune-fig-") as scratch:
        where = Path(scratch) if cache_dir is None else Path(cache_dir)
        missing = [s for s in seeds
                   if not entry(where, "sim", dict(params, seed=s), ".npz").exists()]
        if missing:
            bar = progress_bar(len(missing), f"{desc} ({len(missing)} seeds)", progress)
            try:
                map_parallel(lambda s: simulation(where, params, s), missing,
                             on_done=bar.update, name="odeprune-fig")
            finally:
                bar.close()
        return [simulation(where, params, s) for s in seeds]


def ode_curve(cache_dir: Path | None, state, params: dict, key: dict):
    """``integrate(state, **params)``, cached under ``key`` (which must identify ``state``)."""
    return cached_file(cache_dir, "ode", dict(params, state=key),
                       lambda: integrate(state, **params), LearningCurve.load)


def sim_and_ode(cache_dir: Path | None, sim_params: dict, ode_params: dict, seeds, key: dict,
                progress: bool, desc: str):
    """The figures' comparison of finite N with the limit: ``simulate(**sim_params)`` for each
    seed, and ``integrate`` from each run's own initial state (``ode_params``, at the run's saved
    times; cached under ``key`` and the seed). Returns ``(alpha, sims, curves, S, O)``: the
    runs, the ODE curves, and their eps_g as arrays (seeds, times)."""
    sims = simulations(cache_dir, sim_params, seeds, progress, desc=f"{desc} simulate")
    alpha = np.array(sims[0].alpha)
    bar = progress_bar(len(sims), f"{desc} ODE", progress)
    curves = []
    for seed, sim in zip(seeds, sims, strict=True):
        curves.append(ode_curve(cache_dir, sim.initial, dict(ode_params, save_at=alpha),
                                key=dict(key, seed=seed)))
        bar.update(1)
    bar.close()
    S = np.array([s.eg for s in sims])
    O = np.array([np.array(c.eg) for c in curves])
    return alpha, sims, curves, S, O


def sim_ode_rows(alpha, S, O, /, **labels) -> list[dict]:
    """One row per saved time and layer (``sim``, ``ode``): mean, std, sem and count over
    seeds, with the figure's ``labels`` (a label ``alpha=None`` / ``layer=None`` only fixes
    where that column goes in the CSV)."""
    rows = []
    for j, a in enumerate(alpha):
        for layer, A in (("sim", S), ("ode", O)):
            mean, sd, se, n = mean_std(A[:, j])
            rows.append(dict(labels, alpha=float(a), layer=layer, mean=mean, std=sd, sem=se,
                             n_seeds=n))
    return rows


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
