"""``odeprune sweep SPEC.toml``: a parameter grid through :func:`odeprune.sweeps.sweep`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import CliError
from ._common import positive_int, progress_of
from ._inputs import check_outputs, info

DESCRIPTION = """\
Run a task at every point of a parameter grid described by a TOML file, on a local process pool
or a dask cluster, and write the results as one netCDF file (an xarray.Dataset: one dimension per
grid axis, plus alpha for learning curves) and a quick-look plot (lines for one axis, a heatmap
for two or more). Every finished point is cached, so running the same command again after an
interruption continues where it stopped. Needs the extra: pip install "odeprune[sweep]".

Spec format (see docs/sweep.md):

  task = "integrate"        # "integrate", "simulate", "prune" or "package.module:function"
  output = "phase.nc"       # optional, default SPEC.nc; relative paths are beside the spec
  plot = "phase.png"        # optional, default SPEC.png
  cache = "phase-cache"     # optional, default SPEC.cache
  batch_size = 8            # optional, points per submitted task

  [fixed]                   # every other parameter of the task
  alpha_max = 1000.0

  [grid]                    # axes; their product is swept
  eta = [0.25, 0.5, 1.0]
  seed = [0, 1, 2]

  [grid.size]               # a zipped axis: one dimension "size", K and M advance together
  K = [2, 4, 6]             # (each parameter on one axis only)
  M = [1, 2, 3]
"""

EPILOG = """\
examples:
  odeprune sweep phase.toml                            # local process pool, all cores
  odeprune sweep phase.toml --workers 2 --output out.nc --plot out.png
  odeprune sweep phase.toml --executor dask --scheduler tcp://10.0.0.1:8786
  odeprune sweep phase.toml --executor dask --workers 4 # a LocalCluster of 4 processes
"""

SPEC_KEYS = ("task", "output", "plot", "cache", "batch_size", "fixed", "grid", "description")


#: one line for ``odeprune --help``
HELP = "a parameter grid on a process pool or a dask cluster"


def register(sub) -> None:
    p = sub.add_parser("sweep", help=HELP,
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", type=Path, metavar="SPEC.toml", help="the sweep specification")
    p.add_argument("--executor", choices=["local", "dask", "serial"], default="local",
                   help="local process pool (default), dask (a cluster, or a LocalCluster "
                        "without --scheduler), or serial (this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask scheduler address, e.g. tcp://host:8786 (with --executor dask)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="processes of the local pool or of the dask LocalCluster "
                        "(default: available cores)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="points per submitted task (overrides the spec)")
    p.add_argument("--output", "-o", type=Path, metavar="OUT.nc", help="overrides the spec")
    p.add_argument("--plot", type=Path, metavar="FIG.png", help="overrides the spec")
    p.add_argument("--no-plot", action="store_true", help="do not write the quick-look plot")
    p.add_argument("--cache", type=Path, metavar="DIR", help="overrides the spec")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write a cache")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no notes (the summary is still printed)")
    p.set_defaults(func=run_sweep)


def _load_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise CliError('reading SPEC.toml on Python 3.10 needs tomli: '
                           'pip install "odeprune[sweep]"') from None
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"{path}: invalid TOML: {exc}") from None


def read_spec(path: Path) -> dict:
    """The spec as a dict with ``task``, ``grid``, ``fixed``, resolved paths and
    ``batch_size``; a :class:`CliError` naming the file for anything malformed."""
    spec = _load_toml(path)
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise CliError(f"{path}: unknown key(s) {unknown}; allowed {list(SPEC_KEYS)}")
    if "task" not in spec:
        raise CliError(f"{path}: missing 'task' (\"integrate\", \"simulate\", \"prune\" or "
                       "\"package.module:function\")")
    if not isinstance(spec["task"], str):
        raise CliError(f"{path}: task must be a string, got {spec['task']!r}")
    if not isinstance(spec.get("grid"), dict) or not spec["grid"]:
        raise CliError(f"{path}: missing or empty [grid] table of axes")
    if not isinstance(spec.get("fixed", {}), dict):
        raise CliError(f"{path}: [fixed] must be a table")
    bs = spec.get("batch_size")
    if bs is not None and (not isinstance(bs, int) or isinstance(bs, bool) or bs < 1):
        raise CliError(f"{path}: batch_size must be a positive integer, got {bs!r}")
    base = path.resolve().parent
    out = {}
    for key, default in (("output", ".nc"), ("plot", ".png"), ("cache", ".cache")):
        val = spec.get(key)
        if val is not None and not isinstance(val, str):
            raise CliError(f"{path}: {key} must be a path string, got {val!r}")
        out[key] = base / (val if val is not None else path.stem + default)
    return dict(task=spec["task"], grid=spec["grid"], fixed=dict(spec.get("fixed", {})),
                batch_size=bs, **out)


def run_sweep(args) -> int:
    spec = read_spec(args.spec)
    import odeprune.sweeps as _sweep
    from odeprune._pool import available_cores
    from odeprune.sweeps.dataset import require_xarray

    try:
        require_xarray()
    except ImportError as exc:
        raise CliError(str(exc)) from None
    fixed = spec["fixed"]
    init = fixed.get("init")
    if isinstance(init, str) and not Path(init).is_absolute():
        fixed["init"] = str(args.spec.resolve().parent / init)
    output = args.output or spec["output"]
    plot = None if args.no_plot else (args.plot or spec["plot"])
    cache = None if args.no_cache else (args.cache or spec["cache"])
    batch_size = args.batch_size or spec["batch_size"]
    args.cache_used = cache  # for interrupt_note
    check_outputs(("output", output), ("plot", plot), ("cache", cache, "dir"))
    if args.scheduler and args.executor != "dask":
        raise CliError("--scheduler needs --executor dask")
    try:  # every check of the grid and the parameters, before any cluster starts
        _sweep.check(spec["task"], spec["grid"], fixed,
                     "local" if args.executor == "local" else "serial")
    except ValueError as exc:
        raise CliError(f"{args.spec}: {exc}") from None

    kw = dict(fixed=fixed, cache=cache, output=output, batch_size=batch_size,
              progress=progress_of(args), max_workers=args.workers)
    if args.executor == "dask":
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise CliError(f"--executor dask needs dask.distributed: {_sweep.EXTRA_HINT}"
                           ) from None
        if args.scheduler:
            with Client(args.scheduler) as client:
                ds = _sweep.sweep(spec["task"], spec["grid"], executor=client, **kw)
        else:
            import logging

            with LocalCluster(n_workers=args.workers or available_cores(), threads_per_worker=1,
                              processes=True, dashboard_address=None,
                              silence_logs=logging.ERROR) as cluster, \
                    Client(cluster) as client:
                ds = _sweep.sweep(spec["task"], spec["grid"], executor=client, **kw)
    else:
        ds = _sweep.sweep(spec["task"], spec["grid"], executor=args.executor, **kw)
    n_failed, n_points = int(ds.attrs["n_failed"]), int(ds.attrs["n_points"])
    print(ds)  # the result: printed with --quiet too
    info(f"saved {output} ({n_points} points, {n_failed} failed)")
    first = next((str(e) for e in ds["error"].values.ravel() if e), None)
    if n_failed == n_points:  # nothing computed: a failure, whatever was written
        print(f"odeprune sweep: error: every point failed ({n_points}); the first: {first}",
              file=sys.stderr)
        return EXIT_ALL_FAILED
    if n_failed:
        print(f"first failure: {first}", file=sys.stderr)
    if plot is not None:
        quicklook(ds, plot)
        info(f"plotted {plot}")
    return 0


#: exit code of a sweep whose every point failed (2 is kept for errors found before any work)
EXIT_ALL_FAILED = 1


def quicklook(ds, path: Path) -> Path:
    """Lines (one grid axis, or the learning curves of one axis) or a heatmap (two or more
    axes; further axes at their first value) of the first numeric variable; ``alpha`` is taken
    at its last value."""
    import numpy as np

    from odeprune.plotting import save_figure, subplots

    grid_dims = list(ds["error"].dims)
    names = [n for n, v in ds.data_vars.items()
             if v.dtype.kind == "f" and not n.endswith("_values")]
    fig, ax = subplots(figsize=(5.2, 3.8))
    if not names:
        ax.text(0.5, 0.5, "no numeric output", ha="center", va="center")
        return save_figure(fig, path)
    name = names[0]
    da = ds[name]
    extra = [d for d in da.dims if d not in grid_dims]
    title = name
    if len(grid_dims) == 1 and extra == ["alpha"] and "alpha" in ds.coords:
        (dim,) = grid_dims
        for j in range(ds.sizes[dim]):
            line = da.isel({dim: j})
            ax.plot(ds["alpha"].values[1:], line.values[1:],
                    label=f"{dim}={ds[dim].values[j]}" if dim in ds.coords else str(j))
        ax.set(xscale="log", yscale="log", xlabel="alpha", ylabel=name)
        ax.legend(fontsize=7)
    else:
        for d in extra:
            da = da.isel({d: -1}) if d == "alpha" else da.mean(d)
        title = f"{name} (final alpha)" if "alpha" in extra else name
        for d in grid_dims[2:]:
            da = da.isel({d: 0})
            title += f", {d}={ds[d].values[0]}" if d in ds.coords else f", {d}[0]"

        def ticks(d):
            return [str(v) for v in ds[d].values] if d in ds.coords else \
                [str(i) for i in range(ds.sizes[d])]

        if len(grid_dims) == 1:
            d = grid_dims[0]
            ax.plot(range(ds.sizes[d]), da.values, "o-")
            ax.set_xticks(range(ds.sizes[d]), ticks(d), rotation=45, fontsize=7)
            ax.set(xlabel=d, ylabel=name)
        else:
            d0, d1 = grid_dims[:2]
            vals = np.asarray(da.transpose(d1, d0).values, dtype=float)
            mesh = ax.pcolormesh(vals, shading="flat")
            fig.colorbar(mesh, ax=ax, label=name)
            ax.set_xticks(np.arange(ds.sizes[d0]) + 0.5, ticks(d0), rotation=45, fontsize=7)
            ax.set_yticks(np.arange(ds.sizes[d1]) + 0.5, ticks(d1), fontsize=7)
            ax.set(xlabel=d0, ylabel=d1)
    ax.set_title(f"{title} — {ds.attrs.get('task', '')}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def interrupt_note(args) -> str | None:
    """What an interrupted sweep leaves: its cached points (see ``odeprune.cli._interrupted``);
    the pool's workers are stopped by then (:mod:`odeprune.sweeps.run`)."""
    cache = getattr(args, "cache_used", None)
    if args.no_cache:
        return "nothing saved (--no-cache): run the same command again"
    if cache is None:
        return None
    return (f"finished points are cached in {cache}: the same command continues from there "
            "(workers stopped)")
