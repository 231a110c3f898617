"""The coordinate law's costs, printed against the finite-N runs they replace (same process).

1. IMP, 4 rounds, K=6, M=2, v*=4, eta=0.5, alpha=200 per round, rewind to 0, prune 0.2 per row
   per round: the exact limit (linear response between decisions, 8 replicas) with its
   Monte-Carlo error on eps_g against one finite-N seed at N=2000 of the same protocol
   (``schedules.imp_finite``, the package's own SGD).
2. L1 (lambda=0.01) with S = 1e5 particles (8 replicas x 12500), K=6, to alpha=100 with
   dt = 0.1, and again with dt = 0.05: the time, the Monte-Carlo error and the change on halving
   the step (an estimate of the time-step error of the dt = 0.1 run).

3. The particle SDE without decisions or L1 against the ODE (K=6, alpha=2, dt=0.02): the
   Monte-Carlo error for S = 1e4, 1e5, 1e6 particles (16 replicas), its ratio (sqrt(10) = 3.16
   expected) and the actual error.

Run: ``python benchmarks/bench_coords.py`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import time

import odeprune
from odeprune import schedules
from odeprune.coords import CoordinateLaw, integrate_law


def imp() -> None:
    st = odeprune.OrderParams.random(N=500, K=6, M=2, v_star=4.0, seed=0)
    kw = dict(rounds=4, prune_fraction=0.2, alpha_per_round=200.0, eta=0.5)
    schedules.imp_limit(st, S=200, replicas=2, **dict(kw, rounds=1, alpha_per_round=1.0))
    schedules.imp_finite(200, 6, 2, v_star=4.0, **dict(kw, rounds=1, alpha_per_round=1.0))
    t = time.process_time()
    lim = schedules.imp_limit(st, S=12_500, replicas=8, seed=0, **kw)
    t_lim = time.process_time() - t
    t = time.process_time()
    fin = schedules.imp_finite(2000, 6, 2, v_star=4.0, seed=0, **kw)
    t_fin = time.process_time() - t
    print("1. IMP, 4 rounds x alpha=200, K=6 (CPU seconds)")
    print(f"   limit (8 x 12500 particles): {t_lim:6.1f} s   finite N=2000, one seed: "
          f"{t_fin:6.1f} s   ratio finite/limit = {t_fin / t_lim:.1f}")
    for r in range(5):
        e, se = lim["eg"][r, -1], lim["eg_se"][r, -1]
        print(f"   round {r}: c={lim['c'][r]:.3f}  limit {e:.5f} +- {se:.5f} "
              f"({100 * se / e:.2f} %)   finite (seed 0) {fin['eg'][r]:.5f}")


def l1() -> None:
    st = odeprune.OrderParams.random(N=500, K=6, M=2, v_star=4.0, seed=0)
    law = CoordinateLaw.from_state(st, S=12_500, replicas=8, seed=0)
    integrate_law(law, 0.5, 0.2, l1=0.01, dt=0.1)  # compile
    out = {}
    for dt in (0.1, 0.05):
        t0, c0 = time.perf_counter(), time.process_time()
        cv = integrate_law(law, 0.5, 100.0, save_at=[10.0, 100.0], l1=0.01, dt=dt, seed=1)
        out[dt] = (cv, time.perf_counter() - t0, time.process_time() - c0)
    print("2. L1 lambda=0.01, S=1e5 particles (8 replicas), K=6, alpha=100")
    for dt, (cv, wall, cpu) in out.items():
        print(f"   dt={dt:<5}: {wall:6.1f} s wall, {cpu:6.1f} s CPU; eg(10)={cv.eg[0]:.5f} "
              f"+- {cv.eg_se[0]:.5f}, eg(100)={cv.eg[-1]:.5f} +- {cv.eg_se[-1]:.5f}; "
              f"|w|<0.05: {cv.final.fraction_below([0.05])[0]:.4f}")
    a, b = out[0.1][0], out[0.05][0]
    for k, lab in ((0, "alpha=10"), (-1, "alpha=100")):
        d = abs(a.eg[k] - b.eg[k])
        print(f"   {lab}: change on halving dt {d:.2e} vs Monte-Carlo se {a.eg_se[k]:.2e} "
              f"(ratio {d / a.eg_se[k]:.2f})")


def scaling() -> None:
    st = odeprune.OrderParams.random(N=500, K=6, M=2, v_star=4.0, seed=0)
    ode = odeprune.integrate(st, 0.5, 2.0, save_at=[2.0], rtol=1e-10, atol=1e-12).eg[-1]
    print("3. particles vs the ODE, K=6, alpha=2 (no decisions, no L1)")
    prev = None
    for S in (10_000, 100_000, 1_000_000):
        law = CoordinateLaw.from_state(st, S=S // 16, replicas=16, seed=0)
        t = time.perf_counter()
        cv = integrate_law(law, 0.5, 2.0, save_at=[2.0], method="particles", dt=0.02, seed=1)
        wall = time.perf_counter() - t
        se = cv.eg_se[-1]
        ratio = f"   se ratio to the previous S: {prev / se:.2f}" if prev else ""
        print(f"   S={S:>8}: eg={cv.eg[-1]:.6f} +- {se:.2e}, ODE {ode:.6f}, error "
              f"{cv.eg[-1] - ode:+.2e} ({(cv.eg[-1] - ode) / se:+.2f} se), {wall:.1f} s{ratio}")
        prev = se


if __name__ == "__main__":
    import sys

    for part in sys.argv[1:] or ["imp", "l1", "scaling"]:
        {"imp": imp, "l1": l1, "scaling": scaling}[part]()
