"""Cost of ``odeprune.sweep`` against a plain loop of ``integrate``.

n ODE curves (M=2, K=6, v*=4, eta=0.5, alpha_max=1000, 201 saved times; one initial draw per
seed, N=500) computed

- by a plain Python loop of ``integrate`` (the reference),
- through ``sweep(..., executor="serial")`` in this process, without and with the on-disk cache
  (the pure overhead of the sweep machinery: batching, output normalisation, assembly of the
  Dataset, and with the cache one atomic, fsynced ``.npz`` per point),
- re-read from a complete cache (what a resumed sweep costs when nothing is left to do),
- through the default local process pool (spawn, one process per core; its start-up, which
  loads odeprune and numba's compiled kernels in every worker, included) and through a
  process pool whose workers are already warm,
- through a ``dask.distributed.LocalCluster`` (processes, one thread each), cluster start-up
  timed separately.

Every variant is checked to give the loop's numbers bit for bit. Run:

    python benchmarks/bench_sweep.py            # 1000 curves
    python benchmarks/bench_sweep.py --n 200    # a quicker check

Timings are wall-clock seconds, and CPU seconds of this process for the in-process variants;
on a loaded machine the CPU ratio is the meaningful overhead (loop and serial sweep are measured
alternately, best of ``--repeat``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

PARAMS = dict(N=500, K=6, M=2, v_star=4.0, eta=0.5, alpha_max=1000.0)


def plain_loop(n: int) -> np.ndarray:
    import odeprune

    out = []
    for seed in range(n):
        state = odeprune.OrderParams.random(PARAMS["N"], PARAMS["K"], PARAMS["M"],
                                            v_star=PARAMS["v_star"], seed=seed)
        out.append(odeprune.integrate(state, eta=PARAMS["eta"],
                                      alpha_max=PARAMS["alpha_max"]).eg)
    return np.array(out)


def run_sweep(n: int, **kw):
    import odeprune

    return odeprune.sweep("integrate", {"seed": list(range(n))}, fixed=PARAMS, progress=False, **kw)


def timed(fn, *a, **kw):
    """Wall-clock seconds and the result; CPU seconds of this process in ``LAST_CPU``."""
    global LAST_CPU
    t, c = time.perf_counter(), time.process_time()
    out = fn(*a, **kw)
    LAST_CPU = time.process_time() - c
    return time.perf_counter() - t, out


LAST_CPU = 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="curves (default 1000)")
    ap.add_argument("--repeat", type=int, default=2, help="best of (loop and serial sweep)")
    ap.add_argument("--workers", type=int, default=None, help="pool / cluster processes")
    ap.add_argument("--no-dask", action="store_true")
    args = ap.parse_args()
    n = args.n
    from odeprune._pool import available_cores, process_pool

    workers = args.workers or available_cores()
    plain_loop(2)  # compile / load the numba cache outside the timings
    rows = []
    t_loop = t_serial = c_loop = c_serial = np.inf
    ref = None
    for _ in range(args.repeat):  # alternate, so that load changes hit both alike
        t, eg = timed(plain_loop, n)
        t_loop, c_loop, ref = min(t_loop, t), min(c_loop, LAST_CPU), eg
        t, ds = timed(run_sweep, n, executor="serial")
        t_serial, c_serial = min(t_serial, t), min(c_serial, LAST_CPU)
        np.testing.assert_array_equal(ds["eg"].values, ref)
    rows += [("plain loop of integrate", 1, t_loop, c_loop),
             ("sweep, serial, no cache", 1, t_serial, c_serial)]

    cache = tempfile.mkdtemp(prefix="odeprune-bench-sweep-")
    try:
        t, ds = timed(run_sweep, n, executor="serial", cache=cache)
        np.testing.assert_array_equal(ds["eg"].values, ref)
        rows.append(("sweep, serial, writing the cache", 1, t, LAST_CPU))
        t, ds = timed(run_sweep, n, executor="serial", cache=cache)
        np.testing.assert_array_equal(ds["eg"].values, ref)
        rows.append(("sweep, everything cached (resume)", 1, t, LAST_CPU))
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    t, ds = timed(run_sweep, n, max_workers=workers)
    np.testing.assert_array_equal(ds["eg"].values, ref)
    rows.append(("sweep, default local pool (cold start)", workers, t, None))
    with process_pool(workers) as pool:
        list(pool.map(plain_loop, [1] * (4 * workers)))  # start and warm every worker
        t, ds = timed(run_sweep, n, executor=pool)
    np.testing.assert_array_equal(ds["eg"].values, ref)
    rows.append(("sweep, process pool (warm workers)", workers, t, None))

    if not args.no_dask:
        import distributed

        t0 = time.perf_counter()
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            t_start = time.perf_counter() - t0
            client.run(plain_loop, 1)  # load odeprune and the numba cache on every worker
            t, ds = timed(run_sweep, n, executor=client)
            np.testing.assert_array_equal(ds["eg"].values, ref)
        rows.append((f"dask LocalCluster start-up ({workers} workers)", workers, t_start, None))
        rows.append(("sweep, dask LocalCluster (warm workers)", workers, t, None))

    print(f"\n{n} curves: M={PARAMS['M']}, K={PARAMS['K']}, alpha_max={PARAMS['alpha_max']:g}, "
          f"eta={PARAMS['eta']}; {available_cores()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'variant':<42} {'procs':>5} {'wall s':>8} {'ms/curve':>9} {'vs loop':>8} "
          f"{'CPU ms/curve':>12} {'vs loop':>8}")
    for name, procs, t, cpu in rows:
        ms = "" if "start-up" in name else f"{1e3 * t / n:9.2f}"
        rel = "" if "start-up" in name else f"{t / t_loop:8.3f}"
        cms = "" if cpu is None else f"{1e3 * cpu / n:12.2f}"
        crel = "" if cpu is None else f"{cpu / c_loop:8.3f}"
        print(f"{name:<42} {procs:>5} {t:8.2f} {ms:>9} {rel:>8} {cms:>12} {crel:>8}")
    print(f"\noverhead of the sweep machinery (serial, no cache): wall "
          f"{100 * (t_serial / t_loop - 1):+.1f} %, CPU {100 * (c_serial / c_loop - 1):+.1f} %")


if __name__ == "__main__":
    main()
