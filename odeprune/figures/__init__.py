"""The figures of Acharyya et al. (2021) and a Goldt et al. (2019)-style learning-curve figure.

Each module has ``QUICK`` and ``FULL`` parameter sets, ``compute(params, cache_dir, progress)``
(the expensive part, cached item by item in ``cache_dir``) and ``plot(data, out_dir)`` (PNG and
PDF). :func:`make` runs both and writes the data behind the plot (``NAME.json`` with all
parameters, seeds and the odeprune version; ``NAME.csv`` in long format).

Not imported by ``odeprune`` itself: plotting never runs on import. A figure's module (and with
it the numerics and matplotlib) is imported only when the figure is asked for (:func:`get`).
"""

from __future__ import annotations

import importlib
import time
import warnings
from pathlib import Path

from ..errors import OdepruneAccuracyWarning
from . import _cache

#: figure name -> module (``odeprune.figures.<name>``)
FIGURES = {
    "fig2a": "fig2a",
    "fig2b": "fig2b",
    "fig3": "fig3",
    "fig4": "fig4",
    "curves": "curves",
    "edges": "edges",
    "relu": "relu",
    "limit": "limit",
    "retrain": "retrain", "init-pruning": "init_pruning", "tickets": "tickets",
    "deep-init": "deep_init", "gradual": "gradual",
    "sparse-teacher": "sparse_teacher",
}

__all__ = ["FIGURES", "get", "make"]


def get(name: str):
    """The module of figure ``name``."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; expected one of {list(FIGURES)}")
    return importlib.import_module(f"{__name__}.{FIGURES[name]}")


def make(name: str, out_dir: str | Path, quick: bool = False, cache_dir: str | Path | None = None,
         progress: bool = True, params: dict | None = None) -> dict:
    """Compute (from the cache when possible), write the data and plot figure ``name``.

    Parameters
    ----------
    name : str
        One of :data:`FIGURES`.
    out_dir : path
        Where ``NAME.png``, ``NAME.pdf``, ``NAME.json`` and ``NAME.csv`` go (created).
    quick : bool
        The reduced ``QUICK`` parameters instead of ``FULL``.
    cache_dir : path or None
        Cache of the expensive items (None: no cache).
    params : dict, optional
        Explicit parameters (override ``QUICK``/``FULL``).

    Returns
    -------
    dict
        ``paths`` (written files), ``data`` (what ``plot`` drew), ``seconds`` (wall time),
        ``params``.
    """
    module = get(name)
    p = dict(params if params is not None else (module.QUICK if quick else module.FULL))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = None if cache_dir is None else Path(cache_dir)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # trained students reach eps_g ~ 1e-12, below what the default tolerances resolve: the
        # figures use their order parameters (accurate), not those last digits of eps_g
        warnings.simplefilter("ignore", OdepruneAccuracyWarning)
        data = _cache.cached_json(cache, f"{name}-data", p,
                                  lambda: module.compute(p, cache, progress))
    data["quick"] = bool(quick)
    data["seconds_this_run"] = time.perf_counter() - t0  # ~0 when read from the cache
    paths = _cache.write_data(out_dir, name, data)
    paths += module.plot(data, out_dir)
    return dict(paths=paths, data=data, seconds=time.perf_counter() - t0, params=p)
