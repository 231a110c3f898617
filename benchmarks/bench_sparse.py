"""Masked-network ODE and threaded right-hand side: printed numbers, not tests.

Rows (each against a baseline measured in the same process, minimum over repeats):

- M=2, K=6: dense curve to alpha=1000 vs the same network with an independent random mask
  (c=0.5: 64 classes) and with two-time overlaps tracked (goal: masked <= 3x dense);
- K=20, M=5: one right-hand side on 1 vs 2 numba threads (goal >= 1.6x on an idle 2-core
  machine; the numbers are bit-identical, checked here too).

Run: ``python benchmarks/bench_sparse.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

import odeprune
from odeprune import OrderParams
from odeprune.ode import rhs as _rhs
from odeprune.sparse import SparseOrderParams


def best_time(fn, repeats):
    out, best = None, float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(repeats: int) -> None:
    s = OrderParams.random(500, 6, 2, v_star=4.0, seed=0)
    sp = SparseOrderParams.random_mask(s, 0.5)
    for st in (s, sp):  # compile
        odeprune.integrate(st, 0.5, 10.0, progress=False)
    odeprune.integrate(sp, 0.5, 10.0, track_initial=True, progress=False)
    td, cd = best_time(lambda: odeprune.integrate(s, 0.5, 1000.0, progress=False), repeats)
    tm, cm = best_time(lambda: odeprune.integrate(sp, 0.5, 1000.0, progress=False), repeats)
    tp, cp = best_time(lambda: odeprune.integrate(sp, 0.5, 1000.0, track_initial=True,
                                                  progress=False), repeats)
    print("M=2, K=6, eta=0.5, alpha=1000 (minimum of", repeats, "runs)")
    print(f"  {'network':34s} {'seconds':>8s} {'nfev':>6s} {'us/eval':>8s} {'vs dense':>9s}")
    for name, t, c in (("dense", td, cd), (f"random mask c=0.5 ({sp.n_classes} classes)", tm, cm),
                       ("  + two-time overlaps P", tp, cp)):
        nfev = c.metadata["nfev"]
        print(f"  {name:34s} {t:8.3f} {nfev:6d} {1e6 * t / nfev:8.1f} {t / td:8.2f}x")

    K, M = 20, 5
    s20 = OrderParams.random(500, K, M, v_star=4.0, seed=0)
    y = _rhs.pack(s20.Q, s20.R, s20.v)
    p = _rhs.make_params(K, M, s20.T, s20.v_star, 0.5, 0.5, 0.0, 0,
                         threads=True)
    w = _rhs.make_work(K, M)
    dy = np.empty_like(y)
    _rhs.rhs_into(y, dy, p, w)
    n_max = numba.get_num_threads()
    res = {}
    try:
        for n in sorted({1, n_max}):
            numba.set_num_threads(n)
            t, _ = best_time(lambda: [_rhs.rhs_into(y, dy, p, w) for _ in range(50)], repeats)
            res[n] = (t / 50, dy.copy())
    finally:
        numba.set_num_threads(n_max)
    print("\nK=20, M=5: one right-hand side (threaded I4 sum)")
    for n, (t, _) in res.items():
        print(f"  {n} thread(s): {1e6 * t:8.0f} us   speed-up {res[1][0] / t:5.2f}x")
    same = all(np.array_equal(res[1][1], d) for _, d in res.values())
    print(f"  bit-identical across thread counts: {same}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    main(ap.parse_args().repeats)
