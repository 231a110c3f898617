"""Benchmark: learning curves of the order-parameter ODEs, per configuration and backend.

Prints tables (see benchmarks/README.md); record the output in benchmarks/RESULTS.md.

    python benchmarks/bench_integrate.py                 # all configurations (long on 2 cores)
    python benchmarks/bench_integrate.py --quick         # M=2/K=6 and M=5/K=20, fewer repeats
    python benchmarks/bench_integrate.py --configs 2x6,5x20 --skip jax

Per configuration (M, K) from OrderParams.random(500, K, M, v_star=4, seed=0), eta=0.5 to
alpha=1000: compile (first call) time, run time (median of repeats), right-hand-side evaluations,
time per evaluation, and the achieved accuracy (max relative eps_g error over the saved points)
against a tight run (rtol=1e-12). Then the in-process plain-numpy explicit Euler (dt=0.01) of
the same equations, timed over a short span and scaled per step, and its ratio to ours; the cost
per evaluation as a function of K; and the throughput of a batch of 64 curves.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

import odeprune as op
from odeprune._pool import available_cores
from odeprune.ode.rhs import pack, rhs

ALPHA, ETA, V_STAR = 1000.0, 0.5, 4.0
ALL_CONFIGS = [(2, 6), (5, 20), (2, 30), (5, 50)]
#: the authors' C++ integrator (Goldt et al. 2019; explicit Euler, dt=0.01) to alpha=1000, and the
#: goals of issue 2 for our default integrator after compilation
CPP_REFERENCE = {(2, 6): 2.5, (5, 20): 260.0}
GOAL = {(2, 6): 0.05, (5, 20): 3.0}


# ----------------------------------------------------------------------------- machine
def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return (f"{model}; nproc={os.cpu_count()} (usable {available_cores()}); "
            f"python {platform.python_version()}; numpy {np.__version__}; "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def jax_info() -> str:
    try:
        import diffrax
        import jax
    except ImportError:
        return "jax: not installed"
    return f"jax {jax.__version__} ({jax.default_backend()}: {jax.devices()}), diffrax {diffrax.__version__}"


# ----------------------------------------------------------------------------- plain numpy RHS
def numpy_rhs(y, K, M, T, v_star, eta, eta_v, sigma):
    """The right-hand side (docs/theory.md §4, erf) written straightforwardly in numpy: full
    (i, k, c, d) tensors, no symmetry used. The baseline that a first implementation would be."""
    nq = K * (K + 1) // 2
    iu = np.triu_indices(K)
    Q = np.zeros((K, K))
    Q[iu] = y[:nq]
    Q = Q + Q.T - np.diag(np.diag(Q))
    R = y[nq:nq + K * M].reshape(K, M)
    v = y[nq + K * M:]
    C = np.block([[Q, R], [R.T, T]])
    a = np.concatenate([v, -v_star])
    d = np.diag(C)
    # I3(i, b, c)
    lam3 = (1 + d[:K, None]) * (1 + d[None, :]) - C[:K, :] ** 2                      # (K, L)
    I3 = (2 / np.pi) / np.sqrt(lam3)[:, None, :] * (
        C[None, :, :] * (1 + d[:K, None, None]) - C[:K, :, None] * C[:K, None, :]
    ) / (1 + d[:K, None, None])                                                        # (K,L,L)
    S3 = I3 @ a                                                                         # (K, L)
    # I4(i, k, c, d)
    Ci = C[:K, :]
    cii, ckk, cik = 1 + d[:K, None], 1 + d[None, :K], C[:K, :K]
    lam4 = cii * ckk - cik ** 2                                                         # (K, K)
    ci_c = Ci[:, None, :, None]
    ck_c = Ci[None, :, :, None]
    ci_d = Ci[:, None, None, :]
    ck_d = Ci[None, :, None, :]
    l4 = lam4[:, :, None, None]
    lam0 = (l4 * C[None, None] - ck_c * ck_d * cii[..., None, None]
            - ci_c * ci_d * ckk[..., None, None] + cik[..., None, None] * (ci_c * ck_d + ci_d * ck_c))
    lam1 = (lam4[:, :, None] * (1 + d[None, None, :]) - Ci[None, :, :] ** 2 * cii[..., None]
            - Ci[:, None, :] ** 2 * ckk[..., None] + 2 * cik[..., None] * Ci[:, None, :] * Ci[None, :, :])
    x = lam0 / np.sqrt(lam1[:, :, :, None] * lam1[:, :, None, :])
    I4 = (4 / np.pi ** 2) / np.sqrt(l4) * np.arcsin(np.clip(x, -1, 1))
    S4 = np.einsum("ikcd,c,d->ik", I4, a, a)
    J2 = (2 / np.pi) / np.sqrt(lam4)
    dQ = (-eta * (v[:, None] * S3[:, :K] + v[None, :] * S3[:, :K].T)
          + eta ** 2 * v[:, None] * v[None, :] * (S4 + sigma ** 2 * J2))
    dR = -eta * v[:, None] * S3[:, K:]
    I2 = (2 / np.pi) * np.arcsin(np.clip(Ci / np.sqrt((1 + d[:K, None]) * (1 + d[None, :])), -1, 1))
    dv = -eta_v * I2 @ a
    return np.concatenate([dQ[iu], dR.ravel(), dv])


def numpy_euler_seconds(state, budget_s: float) -> tuple[float, int]:
    """Seconds per Euler step of the numpy baseline, timed over ``budget_s`` (>= 20 steps)."""
    K, M = state.K, state.M
    y = pack(state.Q, state.R, state.v)
    T, v_star = state.T, state.v_star
    steps = 0
    t0 = time.perf_counter()
    while steps < 20 or time.perf_counter() - t0 < budget_s:
        y = y + 0.01 * numpy_rhs(y, K, M, T, v_star, ETA, ETA, 0.0)
        steps += 1
    return (time.perf_counter() - t0) / steps, steps


# ----------------------------------------------------------------------------- timing helpers
def timed(fn, repeats):
    first_t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - first_t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return first, (statistics.median(times) if times else first), out


def max_rel(eg, ref):
    return float(np.max(np.abs(eg / ref - 1.0)))


def fmt_s(x):
    if x is None or not np.isfinite(x):
        return "-"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def row(cells, widths):
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"


# ----------------------------------------------------------------------------- sections
def bench_config(M, K, backends, repeats, alpha, numpy_budget):
    state = op.OrderParams.random(500, K, M, v_star=V_STAR, seed=0)
    t_ref = time.perf_counter()
    ref = op.integrate(state, ETA, alpha, rtol=1e-12, atol=1e-15)
    t_ref = time.perf_counter() - t_ref
    out = []
    for backend in backends:
        first, run, curve = timed(lambda b=backend: op.integrate(state, ETA, alpha, backend=b),
                                  repeats)
        nfev = curve.metadata["nfev"]
        # with no timed repeat the only run includes compilation: no separate compile time
        out.append(dict(config=f"M={M}, K={K}", backend=backend,
                        compile=max(first - run, 0.0) if repeats else None,
                        run=run, nfev=nfev, per_eval=run / nfev, acc=max_rel(curve.eg, ref.eg)))
    per_step, n_steps = numpy_euler_seconds(state, numpy_budget)
    euler_total = per_step * round(alpha / 0.01)
    return out, dict(config=f"M={M}, K={K}", per_step=per_step, measured_steps=n_steps,
                     projected=euler_total, ref_time=t_ref, ref_nfev=ref.metadata["nfev"])


def euler_accuracy(M, K, alpha):
    """Accuracy of the authors' method (explicit Euler, dt=0.01) in compiled code, vs tight."""
    state = op.OrderParams.random(500, K, M, v_star=V_STAR, seed=0)
    ref = op.integrate(state, ETA, alpha, rtol=1e-12, atol=1e-15)
    op.integrate(state, ETA, 0.1, method="euler", dt=0.01)  # compile / load the cache
    t0 = time.perf_counter()
    eu = op.integrate(state, ETA, alpha, method="euler", dt=0.01)
    return max_rel(eu.eg, ref.eg), time.perf_counter() - t0


def matched_accuracy(M, K, alpha, repeats):
    """numba at a looser tolerance that is still far more accurate than Euler dt=0.01."""
    state = op.OrderParams.random(500, K, M, v_star=V_STAR, seed=0)
    ref = op.integrate(state, ETA, alpha, rtol=1e-12, atol=1e-15)
    _, run, curve = timed(lambda: op.integrate(state, ETA, alpha, rtol=1e-5, atol=1e-8),
                          max(repeats, 1))
    return run, max_rel(curve.eg, ref.eg), curve.metadata["nfev"]


def k_scaling(M, Ks, backends):
    """Seconds per right-hand-side evaluation vs K; fit of log(time) on log(K^2 (K+M)^2)."""
    rows = []
    for K in Ks:
        s = op.OrderParams.random(500, K, M, v_star=V_STAR, seed=0)
        y = pack(s.Q, s.R, s.v)
        T, vs = np.ascontiguousarray(s.T), np.ascontiguousarray(s.v_star)
        rhs(y, K, M, T, vs, ETA, ETA, 0.0)
        n, t0 = 0, time.perf_counter()
        while n < 5 or time.perf_counter() - t0 < 0.5:
            rhs(y, K, M, T, vs, ETA, ETA, 0.0)
            n += 1
        r = dict(K=K, numba=(time.perf_counter() - t0) / n)
        if "jax" in backends:
            r["jax"] = _jax_rhs_time(s)
        rows.append(r)
    return rows


def _jax_rhs_time(s, n=50):
    import jax
    import jax.numpy as jnp

    from odeprune.ode import jax_backend as jb

    lay = jb._layout(s.K, s.M)

    def loop(y, T, v_star):
        def body(i, y):
            return y + 1e-12 * jb._vector_field(y, T, v_star, ETA, ETA, 0.0, lay, True, True, True)
        return jax.lax.fori_loop(0, n, body, y)

    f = jax.jit(loop)
    with jax.enable_x64(True):
        args = (jnp.asarray(pack(s.Q, s.R, s.v)), jnp.asarray(s.T), jnp.asarray(s.v_star))
        f(*args).block_until_ready()
        t0 = time.perf_counter()
        f(*args).block_until_ready()
        return (time.perf_counter() - t0) / n


def slope(rows, M, key):
    x = np.log([r["K"] ** 2 * (r["K"] + M) ** 2 for r in rows])
    y = np.log([r[key] for r in rows])
    return float(np.polyfit(x, y, 1)[0])


def gil_held_fraction(state, alpha, n=5):
    """Fraction of an integrate() call spent outside the compiled (GIL-free) solver, and the
    Amdahl bound it puts on the thread speed-up with every core free."""
    import odeprune.ode.dynamics as dyn

    orig, inside = dyn.dopri5_run, [0.0]

    def wrapped(*a):
        t0 = time.perf_counter()
        try:
            return orig(*a)
        finally:
            inside[0] += time.perf_counter() - t0

    dyn.dopri5_run = wrapped
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            op.integrate(state, ETA, alpha)
        total = time.perf_counter() - t0
    finally:
        dyn.dopri5_run = orig
    f = 1.0 - inside[0] / total
    cores = available_cores()
    return f, 1.0 / (f + (1.0 - f) / cores)


def bench_batch(M, K, B, backends, alpha):
    states = [op.OrderParams.random(500, K, M, v_star=V_STAR, seed=s) for s in range(B)]
    res = []
    op.integrate(states[0], ETA, 1.0)  # numba compiled / cache loaded
    t0 = time.perf_counter()
    seq = op.integrate_batch(states, eta=ETA, alpha_max=alpha, n_workers=1)
    t_seq = time.perf_counter() - t0
    res.append(("numba, sequential (1 thread)", None, t_seq, B / t_seq))
    t0 = time.perf_counter()
    thr = op.integrate_batch(states, eta=ETA, alpha_max=alpha)
    t_thr = time.perf_counter() - t0
    assert np.array_equal(thr.eg, seq.eg)
    res.append((f"numba, threads ({thr.metadata['n_workers']})", None, t_thr, B / t_thr))
    if "jax" in backends:
        t0 = time.perf_counter()
        op.integrate_batch(states, eta=ETA, alpha_max=alpha, backend="jax")
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        jb = op.integrate_batch(states, eta=ETA, alpha_max=alpha, backend="jax")
        t_j = time.perf_counter() - t0
        acc = max_rel(jb.eg, seq.eg)
        res.append((f"jax vmap (lockstep {jb[0].metadata['lockstep_steps']} steps; "
                    f"eps_g vs numba {acc:.1e})", first - t_j, t_j, B / t_j))
    return res, t_seq / t_thr


# ----------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="M=2/K=6 and M=5/K=20 only, one repeat, batch of 16")
    p.add_argument("--configs", help="comma-separated MxK list, e.g. 2x6,5x20 (default: all)")
    p.add_argument("--skip", default="", help="comma-separated sections/backends to skip: "
                   "jax, numpy, euler, scaling, batch")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per run after the first (median); 0: the first run only, "
                        "compile time included in 'run s'")
    p.add_argument("--alpha", type=float, default=ALPHA, help="final alpha (default 1000)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 64)")
    p.add_argument("--numpy-budget", type=float, default=5.0,
                   help="seconds to time the numpy Euler baseline per configuration")
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    configs = ([tuple(int(x) for x in c.split("x")) for c in args.configs.split(",")]
               if args.configs else (ALL_CONFIGS[:2] if args.quick else ALL_CONFIGS))
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    batch_size = args.batch or (16 if args.quick else 64)
    backends = ["numba"] + ([] if "jax" in skip else ["jax"])
    if "jax" in backends:
        try:
            import jax  # noqa: F401
        except ImportError:
            backends.remove("jax")
            print("(jax not installed: numba only)")

    print(f"# odeprune benchmark — {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"machine: {machine()}")
    print(jax_info())
    print(f"setting: OrderParams.random(500, K, M, v_star={V_STAR}, seed=0), eta={ETA}, "
          f"alpha={args.alpha:g}, default tolerances (rtol=1e-7, atol=1e-10), 201 saved points\n")

    widths = [12, 7, 11, 9, 7, 11, 12, 12, 11]
    print(row(["config", "backend", "compile s", "run s", "nfev", "µs/eval", "max rel err",
               "C++ Euler s", "goal s"], widths))
    print(row(["-" * w for w in widths], widths))
    base = []
    for M, K in configs:
        rows, eu = bench_config(M, K, backends, repeats, args.alpha,
                                0.0 if "numpy" in skip else args.numpy_budget)
        base.append((rows, eu))
        for r in rows:
            scale = args.alpha / ALPHA
            cpp = CPP_REFERENCE.get((M, K))
            print(row([r["config"], r["backend"], fmt_s(r["compile"]), fmt_s(r["run"]), r["nfev"],
                       f"{r['per_eval'] * 1e6:.1f}", f"{r['acc']:.1e}",
                       fmt_s(cpp * scale) if cpp else "-",
                       fmt_s(GOAL[(M, K)] * scale) if (M, K) in GOAL else "-"], widths))
        sys.stdout.flush()

    if "numpy" not in skip:
        print("\nPlain-numpy explicit Euler, dt=0.01 (same process; timed over a short span, "
              "scaled per step to the full run)")
        widths2 = [12, 12, 14, 16, 16, 14]
        print(row(["config", "ms/step", "steps timed", f"projected s (α={args.alpha:g})",
                   "numba run s", "numpy / numba"], widths2))
        print(row(["-" * w for w in widths2], widths2))
        for rows, eu in base:
            nb = next(r for r in rows if r["backend"] == "numba")
            print(row([eu["config"], f"{eu['per_step'] * 1e3:.2f}", eu["measured_steps"],
                       fmt_s(eu["projected"]), fmt_s(nb["run"]),
                       f"{eu['projected'] / nb['run']:.0f}×"], widths2))

    if "euler" not in skip:
        print("\nAccuracy of the authors' method (explicit Euler, dt=0.01, compiled) vs rtol=1e-12")
        for M, K in configs:
            if K > 20:
                continue
            acc, t = euler_accuracy(M, K, args.alpha)
            print(f"  M={M}, K={K}: max rel eps_g error {acc:.1e} (compiled Euler {t:.2f} s)")
            run, acc5, nfev = matched_accuracy(M, K, args.alpha, repeats)
            cpp = CPP_REFERENCE.get((M, K))
            print(f"    numba dopri5 at rtol=1e-5, atol=1e-8: {run:.3f} s, {nfev} evaluations, "
                  f"max rel error {acc5:.1e} ({acc / acc5:.0f}x more accurate than Euler)"
                  + (f"; {cpp * args.alpha / ALPHA / run:.0f}x faster than the C++ Euler"
                     if cpp else ""))

    if "scaling" not in skip:
        M = 2
        Ks = [4, 6, 10, 16, 24, 32, 48] if not args.quick else [4, 8, 16, 32]
        print(f"\nCost per right-hand-side evaluation vs K (M={M}); expected ∝ K²(K+M)²")
        rows = k_scaling(M, Ks, backends)
        hdr = ["K", "numba µs"] + (["jax µs"] if "jax" in backends else [])
        widths3 = [4, 12, 12]
        print(row(hdr, widths3))
        print(row(["-" * w for w in widths3[:len(hdr)]], widths3))
        for r in rows:
            print(row([r["K"], f"{r['numba'] * 1e6:.1f}"]
                      + ([f"{r['jax'] * 1e6:.1f}"] if "jax" in r else []), widths3))
        big = [r for r in rows if r["K"] >= 10]
        msg = f"  fitted exponent of K²(K+M)² for K >= 10: numba {slope(big, M, 'numba'):.2f}"
        if "jax" in backends:
            msg += f", jax {slope(big, M, 'jax'):.2f}"
        print(msg)

    if "batch" not in skip:
        M, K = 2, 6
        print(f"\nBatch of {batch_size} curves (M={M}, K={K}, α={args.alpha:g}, seeds 0..{batch_size - 1})")
        res, speedup = bench_batch(M, K, batch_size, backends, args.alpha)
        widths4 = [64, 10, 9, 9]
        print(row(["how", "compile s", "run s", "curves/s"], widths4))
        print(row(["-" * w for w in widths4], widths4))
        for name, comp, t, thr in res:
            print(row([name, fmt_s(comp) if comp is not None else "-", fmt_s(t), f"{thr:.1f}"],
                      widths4))
        print(f"  numba threads over sequential: {speedup:.2f}× on {available_cores()} cores "
              f"(load average now {os.getloadavg()[0]:.2f})")
        f, bound = gil_held_fraction(op.OrderParams.random(500, K, M, v_star=V_STAR, seed=0),
                                     args.alpha)
        print(f"  GIL held for {100 * f:.1f}% of an integrate() call (compiled solver is nogil): "
              f"Amdahl bound {bound:.2f}× on {available_cores()} idle cores")
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
