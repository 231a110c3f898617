"""Timings of odeprune.landscape (prints a table; not part of the test command).

    python benchmarks/bench_landscape.py

Hessian spectrum, gradient and pruning limit at random states of the paper's sizes, and the
dense finite-N Hessians (JAX population, numpy empirical) they replace.
"""

from __future__ import annotations

import time

from odeprune import landscape as ls
from odeprune.state import OrderParams


def best_of(f, repeat=3):
    """The least CPU time of ``repeat`` calls (``time.process_time``: robust to a loaded
    machine)."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        f()
        times.append(time.process_time() - t0)
    return min(times)


def main():
    rows = []
    for K, M in ((6, 2), (20, 5)):
        s = OrderParams.random(500, K, M, v_star=4.0, seed=0)
        rows.append((f"hessian_spectrum K={K} M={M}", best_of(lambda: ls.hessian_spectrum(s))))
        rows.append((f"gradient K={K} M={M}", best_of(lambda: ls.gradient(s))))
        rows.append((f"pruning_limit K={K} M={M} (check off, no upper bound)",
                     best_of(lambda: ls.pruning_limit(s, 0.01, check="ignore",
                                                      upper_samples=0), 10)))
        rows.append((f"pruning_limit K={K} M={M} (check off)",
                     best_of(lambda: ls.pruning_limit(s, 0.01, check="ignore",
                                                      upper_samples=20_000), 1)))
    for N in (50, 100, 200):
        w, ws, v, vs = OrderParams.draw_weights(N, 6, 2, v_star=4.0, seed=0)
        rows.append((f"population_hessian_weights (JAX, with jit) K=6 N={N}",
                     best_of(lambda: ls.population_hessian_weights(w, ws, v, vs), 1)))
        rows.append((f"empirical_hessian K=6 N={N} n=4KN",
                     best_of(lambda: ls.empirical_hessian(w, ws, v, vs, 4 * 6 * N), 1)))
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  CPU seconds")
    for name, t in rows:
        print(f"{name:<{width}}  {t:.4f}")


if __name__ == "__main__":
    main()
