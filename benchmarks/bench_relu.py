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
0. (``--before-after``, issue 27 item 4) the ReLU ``I4`` bracket ``S4[i, k] = sum a_c a_d I4``
   of one right-hand side: before (a frozen copy, in this file, of the kernels as they were:
   the per-pair sum of ``rhs._s4_relu`` over the old path-integral integrand) against after
   (``activations.relu_s4_sums``: one path integral per set of four fields for its six
   moments, the leaner integrand, the one-merge closed forms; since then also the adaptive
   quadrature rule, the looked-up closed forms of the repeated-index terms and, in the fourth
   round, the integrand's roots and angles from det R(t) and a vectorised atan2), interleaved in
   one process, CPU time, min of repeats, with their largest difference; then the acceptance
   numbers: the M=2/K=6 curve to alpha=1000 at the default settings (goal <= 1 s of CPU) and
   the M=5/K=20 right-hand side (goal: >= 5x faster than the 218 s curve to alpha=100;
   ``--k20-curve`` runs that curve), each curve in its own process; ``--baseline-tree DIR``
   runs them with ``DIR``'s odeprune too (alternating, ``--rounds`` times for K=6).
"""

from __future__ import annotations

import argparse
import math
import os
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
        "a, b, c, d distinct, well conditioned": (0, 1, 2, 3, "1-D path integral (8 nodes)"),
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


# ---- frozen copy of the kernels before issue 27 item 4 (for the before/after table only) ----
# the rule before: 8-node Gauss-Legendre on the u-panels [3^-(j+1), 3^-j] down to
# ~sqrt(lambda_min), at most 26 of them, then [0, 3^-J]
_OLD_N = 8
_OLD_X, _OLD_W = np.polynomial.legendre.leggauss(_OLD_N)
_OLD_X, _OLD_W = 0.5 * (_OLD_X + 1.0), 0.5 * _OLD_W
_OLD_RATIO = 1.0 / 3.0
_OLD_MAX_LEVELS = 26


@njit(cache=False, error_model="numpy", inline="always")
def _old_asin_ratio(num, vk, vl):
    return A.fast_asin(num / math.sqrt(max(vk * vl, 1e-300)))


@njit(cache=False, error_model="numpy", inline="always")
def _old_integrand(s, p01, p02, p03, p12, p13, p23):
    t = 1.0 - s
    r01, r02, r03, r12, r13, r23 = t * p01, t * p02, t * p03, t * p12, t * p13, t * p23
    n01, v2, v3 = A._pair_partial(r01, r02, r03, r12, r13, r23)
    a01 = _old_asin_ratio(n01, v2, v3)
    n, vk, vl = A._pair_partial(r02, r01, r03, r12, r23, r13)
    a02 = _old_asin_ratio(n, vk, vl)
    n, vk, vl = A._pair_partial(r03, r01, r02, r13, r23, r12)
    a03 = _old_asin_ratio(n, vk, vl)
    n, vk, vl = A._pair_partial(r12, r01, r13, r02, r23, r03)
    a12 = _old_asin_ratio(n, vk, vl)
    n, vk, vl = A._pair_partial(r13, r01, r12, r03, r23, r02)
    a13 = _old_asin_ratio(n, vk, vl)
    n, vk, vl = A._pair_partial(r23, r02, r12, r03, r13, r01)
    a23 = _old_asin_ratio(n, vk, vl)
    o01, o02, o03 = A._one_minus_sq(p01, s), A._one_minus_sq(p02, s), A._one_minus_sq(p03, s)
    o12, o13 = A._one_minus_sq(p12, s), A._one_minus_sq(p13, s)
    q01 = (0.25 + A._1_2PI * a01) / math.sqrt(o01)
    q02 = (0.25 + A._1_2PI * a02) / math.sqrt(o02)
    q03 = (0.25 + A._1_2PI * a03) / math.sqrt(o03)
    q12 = (0.25 + A._1_2PI * a12) / math.sqrt(o12)
    q13 = (0.25 + A._1_2PI * a13) / math.sqrt(o13)
    q23 = (0.25 + A._1_2PI * a23) / math.sqrt(A._one_minus_sq(p23, s))
    D01 = ((math.sqrt(max(v2 * v3 - n01 * n01, 0.0)) + n01 * (A._HALF_PI + a01))
           * A._1_4PI2 / (o01 * math.sqrt(o01)))
    D02 = (r13 - r03 * r01) * q01 + (r23 - r03 * r02) * q02 + o03 * q03
    D03 = (r12 - r02 * r01) * q01 + o02 * q02 + (r23 - r02 * r03) * q03
    D12 = (r03 - r13 * r01) * q01 + (r23 - r13 * r12) * q12 + o13 * q13
    D13 = (r02 - r12 * r01) * q01 + o12 * q12 + (r23 - r12 * r13) * q13
    dP4 = p01 * q01 + p02 * q02 + p03 * q03 + p12 * q12 + p13 * q13 + p23 * q23
    return (p01 * D01 + A._1_2PI * (p02 * D02 + p03 * D03 + p12 * D12 + p13 * D13
                                    + p23 * s * dP4))


@njit(cache=False, error_model="numpy")
def _old_levels(p01, p02, p03, p12, p13, p23):
    # the panel count of the rule before (lambda_min >= det / e3, ratio-1/3 panels)
    n01, v2, v3 = A._pair_partial(p01, p02, p03, p12, p13, p23)
    d01 = 1.0 - p01 * p01
    det = (v2 * v3 - n01 * n01) / d01 if d01 > 0.0 else 0.0
    e3 = (v2 + v3 + (1.0 - p02 * p02 - p03 * p03 - p23 * p23 + 2.0 * p02 * p03 * p23)
          + (1.0 - p12 * p12 - p13 * p13 - p23 * p23 + 2.0 * p12 * p13 * p23))
    eps = det / e3 if e3 > 0.0 else 0.0
    if eps > 0.0:
        levels = int(math.ceil(0.5 * math.log(1.0 / eps) / math.log(1.0 / _OLD_RATIO)))
        return min(max(levels, 1), _OLD_MAX_LEVELS)
    return _OLD_MAX_LEVELS


@njit(cache=False, error_model="numpy", fastmath={"reassoc", "contract", "arcp"})
def _old_m4(p01, p02, p03, p12, p13, p23):
    levels = _old_levels(p01, p02, p03, p12, p13, p23)
    total = 0.0
    hi = 1.0
    for panel in range(levels + 1):
        lo = hi * _OLD_RATIO if panel < levels else 0.0
        h = hi - lo
        s = 0.0
        for j in range(_OLD_N):
            u = lo + h * _OLD_X[j]
            s += _OLD_W[j] * u * _old_integrand(u * u, p01, p02, p03, p12, p13, p23)
        total += 2.0 * h * s
        hi = lo
    return 0.125 / math.pi + p23 / 16.0 + total


@njit(cache=False, error_model="numpy")
def _old_s4_sums(C, a, K, S4):
    # odeprune.ode.rhs._s4_relu of every pair, as before (relu_I4_merged is unchanged)
    L = C.shape[0]
    ri, rk = np.empty(L), np.empty(L)
    sr, R3 = np.empty((4, 4)), np.empty((3, 3))
    grp, pos = np.empty(4, dtype=np.int64), np.empty(4, dtype=np.int64)
    for i in range(K):
        for k in range(i, K):
            cii, ckk = C[i, i], C[k, k]
            s = 0.0
            if cii > 0.0 and ckk > 0.0:
                for c in range(L):
                    if C[c, c] > 0.0:
                        ri[c] = A._corr(C[i, c], cii, C[c, c])
                        rk[c] = A._corr(C[k, c], ckk, C[c, c])
                p01 = A._corr(C[i, k], cii, ckk)
                for c in range(L):
                    ccc = C[c, c]
                    if ccc <= 0.0:
                        continue
                    p02, p12 = ri[c], rk[c]
                    m0 = max(abs(p01), abs(p02), abs(p12))
                    for d in range(c, L):
                        cdd = C[d, d]
                        if cdd <= 0.0:
                            continue
                        scale = math.sqrt(ccc * cdd)
                        p03, p13, p23 = ri[d], rk[d], A._corr(C[c, d], ccc, cdd)
                        if max(m0, abs(p03), abs(p13), abs(p23)) < 1.0:
                            val = scale * _old_m4(p01, p02, p03, p12, p13, p23)
                        else:
                            val = A.relu_I4_merged(scale, p01, p02, p03, p12, p13, p23, sr, grp,
                                                   pos, R3)
                        s += (1.0 if c == d else 2.0) * a[c] * a[d] * val
            S4[i, k] = s


def _states(K, M, late_alpha):
    s0 = op.OrderParams.random(500, K, M, v_star=4.0, seed=0, activation="relu")
    with warnings.catch_warnings():  # the explicit method's note on a small final eps_g
        warnings.simplefilter("ignore")
        late = op.integrate(s0, 0.5, late_alpha, save_at=[0.0, late_alpha], method="dopri5",
                            progress=False).final
    return (("initial", s0), (f"alpha={late_alpha:g}", late))


def bench_before_after(repeats: int) -> dict:
    print("\n## 0. The ReLU I4 bracket of one right-hand side, before and after issue 27 item 4 "
          "(CPU time, min of repeats, interleaved)\n")
    print("| M | K | state | before (us) | after (us) | speed-up | max abs diff | max abs S4 |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    ratios = {}
    for M, K, late_alpha in ((2, 6, 300.0), (5, 20, 30.0)):
        for label, s in _states(K, M, late_alpha):
            C = np.block([[s.Q, s.R], [s.R.T, s.T]]).astype(float)
            a = np.concatenate([s.v, -np.asarray(s.v_star, dtype=float)])
            before, after = np.zeros((K, K)), np.zeros((K, K))
            _old_s4_sums(C, a, K, before)
            A.relu_s4_sums(C, a, K, after)
            iu = np.triu_indices(K)
            diff = np.abs(after[iu] - before[iu]).max()
            number = 2 if K == 20 else 100
            best = {"before": float("inf"), "after": float("inf")}
            for _ in range(repeats):
                for key, fn, out in (("before", _old_s4_sums, before),
                                     ("after", A.relu_s4_sums, after)):
                    t0 = time.process_time()
                    for _ in range(number):
                        fn(C, a, K, out)
                    best[key] = min(best[key], (time.process_time() - t0) / number)
            ratios[(K, label)] = best["before"] / best["after"]
            print(f"| {M} | {K} | {label} | {best['before'] * 1e6:.0f} | "
                  f"{best['after'] * 1e6:.0f} | {ratios[(K, label)]:.2f}x | {diff:.1e} | "
                  f"{np.abs(after[iu]).max():.2g} |")
    return ratios


def curve_k6(repeats: int = 2) -> dict:
    """The acceptance curve of issue 27 item 4: M=2/K=6, v*=4, eta=0.5 to alpha=1000 at the
    default settings of ``integrate``, CPU s (min of ``repeats``, after compiling)."""
    s = op.OrderParams.random(500, 6, 2, v_star=4.0, seed=0, activation="relu")
    op.integrate(s, 0.5, 1.0, progress=False)  # compile
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        c = op.integrate(s, 0.5, 1000.0, progress=False)
        best = min(best, time.process_time() - t0)
    return {"cpu": best, "nfev": int(c.metadata["nfev"]), "eg": float(c.eg[-1])}


def curve_k20() -> dict:
    """M=5/K=20, v*=4, eta=0.5 to alpha=100 at the default settings, CPU s (once: minutes)."""
    s = op.OrderParams.random(500, 20, 5, v_star=4.0, seed=0, activation="relu")
    op.integrate(s, 0.5, 0.01, progress=False)  # compile
    t0 = time.process_time()
    c = op.integrate(s, 0.5, 100.0, progress=False)
    return {"cpu": time.process_time() - t0, "nfev": int(c.metadata["nfev"]),
            "eg": float(c.eg[-1])}


def _in_tree(tree: str | None, what: str) -> dict:
    """``what`` (``curve_k6`` or ``curve_k20``) in a child process importing ``tree``'s
    odeprune (this checkout's when None)."""
    import json
    import subprocess
    import sys

    from _load import NEUTRAL, ROOT, _with_path

    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", what],
                         env=_with_path(tree or ROOT), cwd=NEUTRAL, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_acceptance(ratios: dict, k20_curve: bool, baseline: str | None, rounds: int) -> None:
    print("\n## Acceptance (issue 27 item 4)\n")
    uses_new = _rhs_uses_relu_s4_sums()
    trees = {"current": None} if baseline is None else {"baseline": baseline, "current": None}
    best = {}
    for _ in range(rounds):  # each tree in its own process, alternating
        for name, tree in trees.items():
            r = _in_tree(tree, "curve_k6")
            if name not in best or r["cpu"] < best[name]["cpu"]:
                best[name] = r
    for name, r in best.items():
        print(f"- {name}: M=2/K=6, v*=4, eta=0.5 to alpha=1000, default settings: "
              f"{r['cpu']:.3f} s CPU, {r['nfev']} evaluations, final eps_g {r['eg']:.3e}")
    cur = best["current"]["cpu"]
    print(f"  (goal <= 1 s: {'met' if cur <= 1.0 else 'NOT met'}; the right-hand side "
          f"{'calls' if uses_new else 'does NOT yet call'} relu_s4_sums)")
    k20 = min(ratios[(20, lab)] for lab in ("initial", "alpha=30"))
    print(f"- M=5/K=20: the I4 bracket (~90 % of an evaluation) {k20:.2f}x faster than before "
          f"item 4 (goal >= 5x on the curve to alpha=100, 218 s before)")
    if k20_curve:
        for name, tree in trees.items():
            r = _in_tree(tree, "curve_k20")
            print(f"- {name}: M=5/K=20 to alpha=100: {r['cpu']:.1f} s CPU "
                  f"({218 / r['cpu']:.1f}x the 218 s before), {r['nfev']} evaluations, "
                  f"eps_g {r['eg']:.6e}")


def _rhs_uses_relu_s4_sums() -> bool:
    # the right-hand side's bracket against both kernels at a random state
    from odeprune.ode.rhs import make_params, make_work, s4_sums, unpack_cov

    s = op.OrderParams.random(500, 5, 2, v_star=4.0, seed=1, activation="relu")
    y = pack(s.Q, s.R, s.v)
    p = make_params(5, 2, s.T, s.v_star, 0.5, 0.5, 0.0, act=A.RELU)
    w = make_work(5, 2)
    unpack_cov(y, p, w.C, w.a)
    s4_sums(p, w)
    new = np.zeros((5, 5))
    A.relu_s4_sums(w.C, w.a, 5, new)
    iu = np.triu_indices(5)
    return bool(np.array_equal(new[iu], w.S4[iu]))


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
                    help="only the before/after table and the acceptance numbers (issue 27)")
    ap.add_argument("--k20-curve", action="store_true",
                    help="also the M=5/K=20 ReLU curve to alpha=100 (minutes)")
    ap.add_argument("--baseline-tree", default=None,
                    help="also run the acceptance curves with this directory's odeprune (an "
                         "older copy of the package), each tree in its own processes")
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternations of the K=6 curve between the trees")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import json

        print(json.dumps({"curve_k6": curve_k6, "curve_k20": curve_k20}[args.child]()))
        return
    repeats = 3 if args.quick else 5
    print("# ReLU benchmark (benchmarks/bench_relu.py)\n")
    print(machine())
    ratios = bench_before_after(repeats)
    bench_acceptance(ratios, args.k20_curve, args.baseline_tree, args.rounds)
    if args.before_after:
        return
    bench_I4(repeats)
    bench_rhs(repeats)
    bench_curve(args.quick)
    if args.jax:
        bench_jax(repeats)


if __name__ == "__main__":
    main()
