"""Issue 27, item 1: the default thread setting against the serial I4 sum, idle and under load.

One process integrates M=5/K=20 to alpha=1000 with ``threads=False`` (serial), ``threads=True``
(the old default for K >= 15: numba's threads always) and ``threads=None`` (the new default:
threads on idle cores, decided before every chunk), interleaved, min of ``--repeats``. Then the
same with ``--spinners`` busy processes (default: one per usable core, ``while True: pass``)
started here and killed at the end. Prints CPU (``time.process_time``) and wall seconds and
the ratios to serial; checks that every setting gives the serial numbers bit for bit.

    python benchmarks/bench_threads.py [--repeats 3] [--alpha-max 1000] [--spinners N]
"""

from __future__ import annotations

import argparse
import os
import time

import numba
import numpy as np
from _load import spinners  # benchmarks/_load.py, beside this script

import odeprune
from odeprune.ode.dynamics import _usable_cores, idle_threads, integrate

SETTINGS = (("serial (threads=False)", False), ("old default (threads=True)", True),
            ("new default (threads=None)", None))


def one(state, alpha_max, threads):
    c0, w0 = time.process_time(), time.perf_counter()
    curve = integrate(state, 0.5, alpha_max, threads=threads, progress=False)
    return time.process_time() - c0, time.perf_counter() - w0, curve


def measure(state, alpha_max, repeats, label):
    best = {s: [np.inf, np.inf] for _, s in SETTINGS}
    ref = None
    for _ in range(repeats):
        for _, s in SETTINGS:
            cpu, wall, curve = one(state, alpha_max, s)
            best[s] = [min(best[s][0], cpu), min(best[s][1], wall)]
            if ref is None:
                ref = curve
            assert np.array_equal(curve.eg, ref.eg) and np.array_equal(curve.Q, ref.Q), \
                f"{s}: not the serial numbers"
    load = open("/proc/loadavg").read().split()[:4] if os.path.exists("/proc/loadavg") else "?"
    print(f"\n{label} (load avg / runnable now: {' '.join(load)}; idle_threads -> "
          f"{idle_threads(numba.get_num_threads())})")
    print("| setting | CPU s | wall s | CPU / serial | wall / serial |")
    print("| --- | --- | --- | --- | --- |")
    s_cpu, s_wall = best[False]
    for name, s in SETTINGS:
        cpu, wall = best[s]
        print(f"| {name} | {cpu:.2f} | {wall:.2f} | {cpu / s_cpu:.2f} | {wall / s_wall:.2f} |")
    print("bit-identical to serial: yes")
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--alpha-max", type=float, default=1000.0)
    ap.add_argument("--K", type=int, default=20)
    ap.add_argument("--M", type=int, default=5)
    ap.add_argument("--spinners", type=int, default=None,
                    help="busy processes of the loaded run (default: one per usable core)")
    args = ap.parse_args()
    state = odeprune.OrderParams.random(N=500, K=args.K, M=args.M, v_star=4.0, seed=0)
    print(f"M={args.M}, K={args.K}, alpha={args.alpha_max:g}; numba threads "
          f"{numba.get_num_threads()}, usable cores {_usable_cores()}")
    for _, s in SETTINGS:  # load the cache, start numba's pool
        one(state, 1.0, s)
    print(f"threading layer: {numba.threading_layer()}")
    measure(state, args.alpha_max, args.repeats, "no spinners (idle, or others' load)")
    n = _usable_cores() if args.spinners is None else args.spinners
    with spinners(n):
        time.sleep(0.5)
        measure(state, args.alpha_max, args.repeats, f"under load ({n} spinners)")


if __name__ == "__main__":
    main()
