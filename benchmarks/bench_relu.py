"""Benchmark: the ReLU order-parameter ODEs (issue 18) against erf.

Prints tables (numbers, not a test); record them in docs/relu.md.

    python benchmarks/bench_relu.py            # everything (a few minutes on a loaded 2-core box)
    python benchmarks/bench_relu.py --quick    # fewer repeats, one curve per activation
    python benchmarks/bench_relu.py --jax      # also the JAX right-hand side

1. The cost of one ReLU four-point average ``I4`` by its reduction (four distinct fields: the
   1-D path integral; aligned fields merged: closed forms), in a compiled loop.
2. The cost of one right-hand-side evaluation (numba) for M=2/K=6 and M=5/K=20, ReLU against erf
   (erf's hoisted fast path and its generic path), at the random initial state
   ``OrderParams.random(500, K, M, v_star, seed=0)`` and at the state the ODE reaches at
   alpha = 300 (nearly aligned students: more panels in the I4 integral).
3. A full M=2/K=6 learning curve to alpha = 1000 (eta = 0.5, default tolerances) for ReLU and erf:
   wall time after compilation, right-hand-side evaluations, time per evaluation.
0. (``--before-after``, issue 27 item 4) one ReLU right-hand side with the specialised I4 sum
   (``fast=True``, the default: ``odeprune.ode.rhs._s4_relu``) against the generic sum of
   ``relu_I4`` calls it replaced (``fast=False``, still the reference path), interleaved in one
   process, CPU time, min of repeats; the two must agree bit for bit (checked here).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from bench_integrate import machine  # the sibling benchmark (run from benchmarks/)
from numba import njit

import odeprune as op
from odeprune import activations as A
from odeprune.ode.rhs import pack, rhs


def timeit(fn, repeats: int, number: int) -> float:
    """Median over ``repeats`` of the mean time of ``number`` calls, seconds."""
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        out.append((time.perf_counter() - t0) / number)
    return statistics.median(out)


@njit(cache=False)
def _loop_I4(n, c):
    s = 0.0
    for _ in range(n):
        s += A.I4(A.RELU, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9])
    return s


def bench_I4(repeats: int) -> None:
    print("\n## 1. One ReLU I4 (compiled loop of 10^5 calls)\n")
    print("| fields | reduction | ns per call |")
    print("| --- | --- | ---: |")
    rng = np.random.default_rng(0)
    B = rng.normal(size=(4, 500)) / np.sqrt(500)
    C = B @ B.T
    cases = {
        "a, b, c, d distinct, well conditioned": (0, 1, 2, 3, "1-D path integral (~2 panels)"),
        "a = b (i = k)": (0, 0, 2, 3, "3-D closed form"),
        "a = c, b = d": (0, 1, 0, 1, "2-D closed form"),
    }
    for name, (a, b, c, d, how) in cases.items():
        args = np.array([C[a, a], C[a, b], C[a, c], C[a, d], C[b, b], C[b, c], C[b, d],
                         C[c, c], C[c, d], C[d, d]])
        t = timeit(lambda args=args: _loop_I4(100_000, args), repeats, 1) / 100_000
        print(f"| {name} | {how} | {t * 1e9:.0f} |")
    for delta in (1e-4, 1e-8, 1e-12):
        B2 = B.copy()
        B2[3] = B2[2] + delta * rng.normal(size=500) / np.sqrt(500)
        C2 = B2 @ B2.T
        args = np.array([C2[0, 0], C2[0, 1], C2[0, 2], C2[0, 3], C2[1, 1], C2[1, 2], C2[1, 3],
                         C2[2, 2], C2[2, 3], C2[3, 3]])
        t = timeit(lambda args=args: _loop_I4(100_000, args), repeats, 1) / 100_000
        merged = C2[2, 3] / np.sqrt(C2[2, 2] * C2[3, 3]) >= 1.0
        how = ("merged (the correlation rounds to 1): 3-D closed form" if merged
               else "path integral, graded deeper")
        print(f"| distinct, c ~ d within {delta:g} | {how} | {t * 1e9:.0f} |")


def bench_rhs(repeats: int) -> None:
    print("\n## 2. One right-hand side (numba, eta=0.5, online SGD terms included)\n")
    print("| M | K | state | erf fast (us) | erf generic (us) | relu (us) | relu / erf fast |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for M, K in ((2, 6), (5, 20)):
        s0 = op.OrderParams.random(500, K, M, v_star=1.0, seed=0, activation="relu")
        late = op.integrate(s0, 0.5, 300.0, save_at=[0.0, 300.0]).final
        for label, s in (("initial", s0), ("alpha=300", late)):
            y = pack(s.Q, s.R, s.v)
            T, vs = np.asarray(s.T), np.asarray(s.v_star)
            number = 3 if (K == 20) else 50
            times = {}
            for key, act, fast in (("erf fast", A.ERF, True), ("erf generic", A.ERF, False),
                                   ("relu", A.RELU, False)):
                times[key] = timeit(lambda act=act, fast=fast: rhs(
                    y, K, M, T, vs, 0.5, 0.5, 0.0, act=act, fast=fast),
                    repeats, number if act == A.RELU else 200)
            print(f"| {M} | {K} | {label} | {times['erf fast'] * 1e6:.1f} | "
                  f"{times['erf generic'] * 1e6:.1f} | {times['relu'] * 1e6:.0f} | "
                  f"{times['relu'] / times['erf fast']:.0f} |")


def bench_before_after(repeats: int) -> None:
    print("\n## 0. One ReLU right-hand side: specialised I4 sum against the generic one "
          "(CPU time, min of repeats, interleaved)\n")
    print("| M | K | state | generic, before (us) | specialised, after (us) | speed-up |")
    print("| ---: | ---: | --- | ---: | ---: | ---: |")
    for M, K, late_alpha in ((2, 6, 300.0), (5, 20, 30.0)):
        s0 = op.OrderParams.random(500, K, M, v_star=4.0, seed=0, activation="relu")
        with warnings.catch_warnings():  # the explicit method's note on a small final eps_g
            warnings.simplefilter("ignore")
            late = op.integrate(s0, 0.5, late_alpha, save_at=[0.0, late_alpha],
                                method="dopri5", progress=False).final
        for label, s in (("initial", s0), (f"alpha={late_alpha:g}", late)):
            y = pack(s.Q, s.R, s.v)
            T, vs = np.asarray(s.T), np.asarray(s.v_star)
            number = 2 if K == 20 else 100

            def run(fast, y=y, T=T, vs=vs, K=K, M=M):
                return rhs(y, K, M, T, vs, 0.5, 0.5, 0.0, act=A.RELU, fast=fast)
            assert np.array_equal(run(True), run(False)), "specialised sum differs"
            best = {True: float("inf"), False: float("inf")}
            for _ in range(repeats):
                for fast in (False, True):
                    t0 = time.process_time()
                    for _ in range(number):
                        run(fast)
                    best[fast] = min(best[fast], (time.process_time() - t0) / number)
            print(f"| {M} | {K} | {label} | {best[False] * 1e6:.0f} | {best[True] * 1e6:.0f} | "
                  f"{best[False] / best[True]:.2f}x |")


def bench_curve(quick: bool) -> None:
    print("\n## 3. Full M=2/K=6 learning curve to alpha=1000 (eta=0.5, default tolerances)\n")
    print("| activation | v* | wall (s) | RHS evaluations | ms per evaluation | final eps_g |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for v_star in ((1.0,) if quick else (1.0, 4.0)):
        for name in ("relu", "erf"):
            s = op.OrderParams.random(500, 6, 2, v_star=v_star, seed=0, activation=name)
            op.integrate(s, 0.5, 1.0)  # compile
            t0 = time.perf_counter()
            c = op.integrate(s, 0.5, 1000.0)
            wall = time.perf_counter() - t0
            nfev = int(c.metadata["nfev"])
            print(f"| {name} | {v_star:g} | {wall:.2f} | {nfev} | {wall / nfev * 1e3:.3f} | "
                  f"{c.eg[-1]:.2e} |")


def bench_jax(repeats: int) -> None:
    from odeprune.ode import jax_backend as jb

    print("\n## 4. One right-hand side with JAX (jitted, CPU; fixed 252-node ReLU I4 rule)\n")
    print("| M | K | erf (ms) | relu (ms) |")
    print("| ---: | ---: | ---: | ---: |")
    for M, K in ((2, 6), (5, 20)):
        s = op.OrderParams.random(500, K, M, v_star=1.0, seed=0)
        y = pack(s.Q, s.R, s.v)
        t = {name: timeit(lambda name=name: jb.rhs(y, K, M, s.T, s.v_star, 0.5, 0.5, 0.0, name),
                          repeats, 3) for name in ("erf", "relu")}
        print(f"| {M} | {K} | {t['erf'] * 1e3:.2f} | {t['relu'] * 1e3:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, one curve per activation")
    ap.add_argument("--jax", action="store_true", help="also time the JAX right-hand side")
    ap.add_argument("--before-after", action="store_true",
                    help="only the specialised-against-generic right-hand side (issue 27)")
    args = ap.parse_args()
    repeats = 3 if args.quick else 5
    print("# ReLU benchmark (benchmarks/bench_relu.py)\n")
    print(machine())
    bench_before_after(repeats)
    if args.before_after:
        return
    bench_I4(repeats)
    bench_rhs(repeats)
    bench_curve(args.quick)
    if args.jax:
        bench_jax(repeats)


if __name__ == "__main__":
    main()
