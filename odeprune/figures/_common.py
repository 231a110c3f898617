"""Shared machinery of the figures: a parameter-keyed cache, progress bars, data files.

Every expensive item (one simulation seed, one ODE curve, the pruning of one seed) is stored in
``cache_dir`` under a name made of its kind and a hash of everything it depends on, so an
interrupted ``odeprune reproduce`` continues where it stopped and a re-plot is instant. With
``cache_dir=None`` nothing is read or written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .. import _io

#: Bump when the meaning of a cached item changes (invalidates every cache entry).
CACHE_VERSION = 1


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_io._json_default))


def param_hash(kind: str, params: dict) -> str:
    """Short stable hash of ``kind``, ``params`` and the cache version."""
    text = json.dumps({"kind": kind, "params": _jsonable(params), "v": CACHE_VERSION},
                      sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def cache_path(cache_dir: Path | None, kind: str, params: dict, suffix: str) -> Path | None:
    if cache_dir is None:
        return None
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    return cache_dir / f"{kind}-{param_hash(kind, params)}{suffix}"


def cached_json(cache_dir: Path | None, kind: str, params: dict,
                compute: Callable[[], Any]) -> Any:
    """``compute()`` (a JSON-serialisable value), stored in and reused from ``cache_dir``."""
    path = cache_path(cache_dir, kind, params, ".json")
    if path is not None and path.exists():
        try:
            return json.loads(path.read_text())["value"]
        except (json.JSONDecodeError, KeyError):
            pass  # a corrupt entry: recompute
    value = _jsonable(compute())
    if path is not None:
        _io.atomic_write_text(path, json.dumps({"kind": kind, "params": _jsonable(params),
                                                "value": value}))
    return value


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr (a no-op object when disabled)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False,
                dynamic_ncols=True)


# ------------------------------------------------------------------------ simulations, curves
def simulation(cache_dir: Path | None, params: dict, seed: int):
    """One finite-N run ``simulate(**params, seed=seed)``, cached per seed."""
    import odeprune
    from odeprune.simulation import SimulationResult

    path = cache_path(cache_dir, "sim", dict(params, seed=seed), ".npz")
    if path is not None and path.exists():
        try:
            return SimulationResult.load(path)
        except ValueError:
            pass
    res = odeprune.simulate(**params, seed=seed)
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
    from odeprune.batch import available_cores
    from odeprune.sweep import run_points

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
    import odeprune
    from odeprune.results import LearningCurve

    path = cache_path(cache_dir, "ode", dict(params, state=key), ".npz")
    if path is not None and path.exists():
        try:
            return LearningCurve.load(path)
        except ValueError:
            pass
    curve = odeprune.integrate(state, **params)
    if path is not None:
        curve.save(path)
    return curve


# ------------------------------------------------------------------------ statistics, files
def mean_std(values: Iterable[float]) -> tuple[float, float, float, int]:
    """Mean, standard deviation (ddof=1; 0 for one value), standard error, count."""
    a = np.asarray(list(values), dtype=float)
    n = a.size
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    sd = float(a.std(ddof=1)) if n > 1 else 0.0
    return float(a.mean()), sd, sd / np.sqrt(n), n


def rows_to_csv(rows: list[dict]) -> str:
    """Long-format CSV (the union of the rows' keys, in first-seen order)."""
    fields: list[str] = []
    for r in rows:
        for k in r:
            if k not in fields:
                fields.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def write_data(out_dir: Path, name: str, data: dict) -> list[Path]:
    """``<name>.json`` (everything: parameters, version, seeds, results) and ``<name>.csv``
    (the long-format ``data["rows"]``), both written atomically."""
    out_dir = Path(out_dir)
    meta = dict(data)
    meta.setdefault("odeprune_version", _io.package_version())
    paths = [_io.atomic_write_text(out_dir / f"{name}.json",
                                   json.dumps(_jsonable(meta), sort_keys=True,
                                              separators=(",", ":")) + "\n")]
    if data.get("rows"):
        paths.append(_io.atomic_write_text(out_dir / f"{name}.csv", rows_to_csv(data["rows"])))
    return paths


def save(fig, out_dir: Path, name: str) -> list[Path]:
    """PNG and PDF of ``fig``, atomically."""
    from ..plotting import save_figure

    png = save_figure(fig, Path(out_dir) / f"{name}.png", pdf=True)
    return [png, png.with_suffix(".pdf")]
