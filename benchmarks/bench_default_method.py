"""Benchmark of issue 27, item 2: the default method is stiff-aware.

Before: ``method="dopri5"`` (the default until then). After: the default, ``method="auto"``
(Dormand-Prince until the step is stability-limited, then the compiled BDF with the exact
erf ``I4`` Jacobian, or for a small state the plain differences; ``docs/speed.md``). Same
process, before and after interleaved, CPU time (``time.process_time``), minimum of
``--repeats``:

1. CPU seconds at alpha = 1e3 and 1e5 for M=2/K=6 and M=5/K=20 (erf, eta=0.5, the paper's
   initial state ``OrderParams.random(500, K, M, v_star=4, seed=0)``, 201 saved points), and
   the ratios of the acceptance: default(1e5) / default(1e3) <= 2 and
   default(1e3) / dopri5(1e3) <= 1.2;
2. the relative error of the final eps_g at sigma = 1e-3 (M=K=2, v*=1, alpha=1e4: the
   small-noise case of issue 16; and M=2/K=6, alpha=1e5) against two tight references: scipy's
   ``Radau`` at rtol=1e-10 (implicit, scipy's code) and Dormand-Prince at rtol=1e-11 (explicit,
   ours); target 1e-4;
3. (``--jacobian``) the compiled BDF's two Jacobians, plain differences of the right-hand side
   (states of at most ``FD_JACOBIAN_MAX_N`` entries) and the structured one, by state size.

    python benchmarks/bench_default_method.py            # everything (~3 min, dopri5 K=20 1e5 ~80 s)
    python benchmarks/bench_default_method.py --quick    # M=2/K=6 only
    python benchmarks/bench_default_method.py --jacobian # section 3 only
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ETA, V_STAR = 0.5, 4.0


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(state, alpha, method=None, **kw):
    """``(CPU seconds, curve)`` of ``integrate`` as a user calls it (``method=None``: the
    default)."""
    import odeprune as op

    if method is not None:
        kw["method"] = method
    t0 = time.process_time()
    c = op.integrate(state, eta=ETA, alpha_max=alpha, progress=False, **kw)
    return time.process_time() - t0, c


def bench_cost(configs, repeats, slow_dopri5):
    import odeprune as op

    print("\n## 1. CPU seconds, dopri5 (before) vs the default (after)\n")
    print("| config | alpha | dopri5 s (nfev) | default s (nfev, njev, switch alpha) |")
    print("| --- | --- | --- | --- |")
    out = {}
    for M, K in configs:
        s = op.OrderParams.random(500, K, M, v_star=V_STAR, seed=0)
        run(s, 200.0)  # compile / load the caches of both phases
        run(s, 1.0, "dopri5")
        for alpha in (1e3, 1e5):
            slow = alpha >= 1e5 and K > 6
            best = {"dopri5": np.inf, "default": np.inf}
            curves = {}
            for r in range(repeats):
                for name, method in (("dopri5", "dopri5"), ("default", None)):
                    if name == "dopri5" and (slow and (r > 0 or not slow_dopri5)
                                             or alpha >= 1e5 and r > 0):
                        continue
                    t, curves[name] = run(s, alpha, method)
                    best[name] = min(best[name], t)
            out[(M, K, alpha)] = best
            d = curves["default"].metadata
            dp = (f"{best['dopri5']:.3g} ({curves['dopri5'].metadata['nfev']})"
                  if "dopri5" in curves else "skipped (--slow-dopri5)")
            print(f"| M={M}, K={K} | {alpha:g} | {dp} | {best['default']:.3g} "
                  f"({d['nfev']}, {d['njev']}, {d['alpha_switch']:.3g}) |")
            sys.stdout.flush()
    print("\nAcceptance (issue 27): default(1e5)/default(1e3) <= 2; "
          "default(1e3)/dopri5(1e3) <= 1.2")
    for M, K in configs:
        a3, a5 = out[(M, K, 1e3)], out[(M, K, 1e5)]
        growth = a5["default"] / a3["default"]
        short = a3["default"] / a3["dopri5"]
        line = (f"  M={M}, K={K}: default 1e5/1e3 = {growth:.2f}x "
                f"[{'ok' if growth <= 2 else 'FAIL'}]; default/dopri5 at 1e3 = {short:.2f}x "
                f"[{'ok' if short <= 1.2 else 'FAIL'}]")
        if np.isfinite(a5["dopri5"]):
            line += (f"; dopri5 1e5/1e3 = {a5['dopri5'] / a3['dopri5']:.0f}x, "
                     f"default/dopri5 at 1e5 = {a5['default'] / a5['dopri5']:.3f}x")
        print(line)


def _radau_reference(state, alpha, sigma):
    """Final eps_g by scipy's Radau at rtol=1e-10, atol=1e-14 on the compiled right-hand side
    (scipy's implicit code, its own finite-difference Jacobian)."""
    from scipy.integrate import solve_ivp

    import odeprune as op
    from odeprune.ode.dynamics import _problem
    from odeprune.ode.rhs import rhs_eval, unpack
    from odeprune.options import Dynamics

    p, y0, _ = _problem(state, Dynamics(eta=ETA, sigma=sigma), 0)
    sol = solve_ivp(lambda t, y: rhs_eval(np.ascontiguousarray(y), p), (0.0, alpha), y0,
                    method="Radau", rtol=1e-10, atol=1e-14, t_eval=[alpha])
    assert sol.success, sol.message
    Q, R, v = unpack(sol.y[:, -1], state.K, state.M)
    return op.OrderParams(Q=Q, R=R, T=state.T, v=v, v_star=state.v_star).eg()


def bench_small_noise(quick):
    import warnings

    import odeprune as op
    from odeprune.errors import OdepruneAccuracyWarning

    print("\n## 2. Final eps_g at sigma = 1e-3 (default tolerances rtol=1e-7, atol=1e-10)\n")
    print("| case | final eps_g | ref: Radau 1e-10 vs dopri5 1e-11 | dopri5 error | "
          "default error | default s |")
    print("| --- | --- | --- | --- | --- | --- |")
    cases = [("M=K=2, v*=1, alpha=1e4", op.OrderParams.random(500, 2, 2, v_star=1.0, seed=0),
              1e4)]
    if not quick:
        cases.append(("M=2, K=6, v*=4, alpha=1e5",
                      op.OrderParams.random(500, 6, 2, v_star=V_STAR, seed=0), 1e5))
    for name, s, alpha in cases:
        kw = dict(sigma=1e-3, save_at=[alpha])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OdepruneAccuracyWarning)
            radau = _radau_reference(s, alpha, 1e-3)
            tight = run(s, alpha, "dopri5", rtol=1e-11, atol=1e-16, **kw)[1].eg[-1]
            dp = run(s, alpha, "dopri5", **kw)[1].eg[-1]
        t, c = run(s, alpha, None, **kw)
        e = c.eg[-1]
        print(f"| {name} | {radau:.6e} | {abs(tight / radau - 1):.1e} | "
              f"{abs(dp / radau - 1):.1e} | {abs(e / radau - 1):.1e} "
              f"[{'ok' if abs(e / radau - 1) <= 1e-4 else 'FAIL'}] | {t:.3g} |")


def bench_jacobian_choice(repeats):
    """3. The compiled BDF's Jacobian by state size (``ode.jacobian.FD_JACOBIAN_MAX_N``): the
    plain differences of the right-hand side against the structured Jacobian, M=2 and K=6, 8,
    10 (n = 39, 60, 85), both forced (the bar moved to 0 or past n), interleaved."""
    import odeprune as op
    from odeprune.ode import drivers

    print("\n## 3. The BDF's Jacobian: structured vs plain differences (auto, defaults)\n")
    print("| M, K | n | alpha | structured s | differences s | ratio | njev | final eps_g rel. diff |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    saved = drivers.FD_JACOBIAN_MAX_N
    try:
        for K in (6, 8, 10):
            state = op.OrderParams.random(500, K, 2, v_star=V_STAR, seed=0)
            n = K * (K + 1) // 2 + 2 * K + K
            for alpha in (1e3, 1e5):
                best, curves = {}, {}
                for _ in range(repeats + 1):  # (the first round compiles)
                    for fd in (False, True):
                        drivers.FD_JACOBIAN_MAX_N = 10**9 if fd else 0
                        t, curves[fd] = run(state, alpha)
                        best[fd] = min(best.get(fd, float("inf")), t)
                e0, e1 = curves[False].eg[-1], curves[True].eg[-1]
                print(f"| 2, {K} | {n} | {alpha:g} | {best[False]:.4f} | {best[True]:.4f} | "
                      f"{best[True] / best[False]:.2f} | {curves[True].metadata['njev']} | "
                      f"{abs(e1 - e0) / abs(e0):.1e} |", flush=True)
    finally:
        drivers.FD_JACOBIAN_MAX_N = saved
    print(f"\nthe bar: FD_JACOBIAN_MAX_N = {saved} (the default curve, M=2/K=6: n = 39)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="M=2/K=6 only")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-slow-dopri5", dest="slow_dopri5", action="store_false",
                    help="skip dopri5 at M=5/K=20, alpha=1e5 (~80 s)")
    ap.add_argument("--jacobian", action="store_true",
                    help="only section 3: the BDF's Jacobian by state size (~1 min)")
    args = ap.parse_args(argv)
    if args.jacobian:
        bench_jacobian_choice(max(args.repeats, 5))
        return
    print(f"# issue 27 item 2: the default method — {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"load average at the start: {load()} ({os.cpu_count()} cores)")
    configs = [(2, 6)] if args.quick else [(2, 6), (5, 20)]
    bench_cost(configs, args.repeats, args.slow_dopri5)
    bench_small_noise(args.quick)
    print(f"\nload average at the end: {load()}")


if __name__ == "__main__":
    main()
