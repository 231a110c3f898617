"""A sweep's answers as an ``xarray.Dataset`` (one dimension per grid axis, then each output's
own; ``error``; the task and every fixed parameter in the attributes) and its netCDF file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .. import _io
from .cache import canonical, init_token

__all__ = ["EXTRA_HINT", "require_xarray", "assemble", "save", "load"]

EXTRA_HINT = 'pip install "odeprune[sweep]"'


def require_xarray():
    try:
        import xarray
    except ImportError:
        raise ImportError(f"odeprune.sweep needs xarray and a netCDF engine: {EXTRA_HINT}"
                          ) from None
    return xarray


def _attr_value(v):
    if isinstance(v, (int, float, str)) and not isinstance(v, bool):
        return v
    return json.dumps(v, default=_io._json_default)


def assemble(xr, plan, results: list):
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
             "fixed_parameters": canonical({k: (init_token(v) if k == "init" else v)
                                             for k, v in plan.fixed.items()}),
             "n_points": n, "n_failed": n_failed}
    for k, v in plan.fixed.items():
        if k not in attrs:
            attrs[k] = _attr_value(init_token(v) if k == "init" and v is not None else v)
    return xr.Dataset(data_vars=data_vars, coords=coords, attrs=attrs)


# ------------------------------------------------------------------------------------ files
def save(ds, path: str | os.PathLike) -> Path:
    """Write ``ds`` as netCDF to ``path`` atomically (a temporary file beside it, then a
    rename). Read it back with ``xarray.open_dataset(path)`` or :func:`load`."""
    return _io.atomic_write_path(path, ds.to_netcdf)


def load(path: str | os.PathLike):
    """A saved sweep, read into memory (the file is closed)."""
    xr = require_xarray()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"file {str(path)!r} does not exist")
    with xr.open_dataset(path) as ds:
        return ds.load()
