"""Speed of the finite-N SGD simulation (one run, one core).

N=500, (M, K) = (2, 6) and (5, 20), eta=0.5, v*=4. Each run goes to ``--alpha`` (default 100,
i.e. 50 000 steps) and the time is scaled to alpha=1000 (the cost per step is constant); median of
``--repeats`` runs, no test set, two saved times. In the same process, a plain-numpy loop of the
same update (one ``rng.standard_normal(N)`` and a few matrix-vector products per step) runs over a
shorter span, and the table prints the ratio of the per-step times. Reference: the C++ simulator of
Goldt et al. (2019) takes about 11 s (M=2, K=6) and 20 s (M=5, K=20) for alpha=1000 at N=500
(figures quoted in the issue, measured on another machine).

    python benchmarks/bench_simulation.py [--alpha 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.special import erf  # noqa: E402

import odeprune  # noqa: E402
from odeprune.sim import sgd_streams  # noqa: E402

N = 500
CPP_SECONDS = {(2, 6): 11.0, (5, 20): 20.0}


def numpy_loop(N, K, M, eta, n_steps, seed=0):
    """Plain numpy: the same online-SGD update, one sample at a time."""
    w, w_star, v, v_star = odeprune.OrderParams.draw_weights(N, K, M, 4.0, seed)
    rng = sgd_streams(seed)[0]
    s = 1.0 / math.sqrt(N)
    c = math.sqrt(2.0 / math.pi)
    for _ in range(n_steps):
        x = rng.standard_normal(N)
        y = v_star @ erf(w_star @ x * s / math.sqrt(2))
        lam = w @ x * s
        gl = erf(lam / math.sqrt(2))
        delta = v @ gl - y
        w -= (eta * s * delta) * (v * c * np.exp(-0.5 * lam * lam))[:, None] * x[None, :]
        v -= (eta / N) * delta * gl
    return w, v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alpha", type=float, default=100.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--numpy-alpha", type=float, default=4.0)
    args = ap.parse_args()
    odeprune.simulate(N, 2, 1, 0.5, 0.1, n_test=0)  # compile / load the cache
    print(f"N={N}, eta=0.5, v*=4; simulate to alpha={args.alpha:g}, scaled to alpha=1000; "
          f"median of {args.repeats}; numpy loop over alpha={args.numpy_alpha:g}")
    header = (f"{'M':>3} {'K':>3} {'us/step':>9} {'s/alpha=1000':>13} {'C++ s':>7} "
              f"{'vs C++':>7} {'numpy us/step':>14} {'vs numpy':>9}")
    print(header)
    print("-" * len(header))
    for M, K in ((2, 6), (5, 20)):
        times = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            odeprune.simulate(N, K, M, 0.5, args.alpha, save_at=[args.alpha], n_test=0, seed=r)
            times.append(time.perf_counter() - t0)
        per_step = float(np.median(times)) / (args.alpha * N)
        n_np = int(args.numpy_alpha * N)
        t0 = time.perf_counter()
        numpy_loop(N, K, M, 0.5, n_np)
        np_step = (time.perf_counter() - t0) / n_np
        full = per_step * 1000 * N
        print(f"{M:>3} {K:>3} {per_step * 1e6:9.2f} {full:13.2f} {CPP_SECONDS[(M, K)]:7.1f} "
              f"{CPP_SECONDS[(M, K)] / full:6.1f}x {np_step * 1e6:14.2f} "
              f"{np_step / per_step:8.1f}x")


if __name__ == "__main__":
    main()
