"""Benchmark of issue 16 (speed where it still hurts), in one run:

1. the stiff path: alpha = 1e3, 1e4, 1e5 for M=2/K=6 and M=5/K=20, explicit Dormand-Prince vs
   implicit (BDF / Radau from the start) vs ``auto`` (explicit, then BDF once stiff): seconds,
   right-hand-side evaluations (Jacobians and stiffness probes included), Jacobians, steps, and
   the max relative eps_g error over the saved times against a tight reference;
2. start-up: ``python -c "import odeprune"`` and the quick-start command
   ``odeprune integrate --plot curve.png`` as whole processes, against ``python -c pass``, and
   what the heavy imports cost on their own;
3. the SGD step at N=500 (K=6/M=2, K=20/M=5): us per step and per step's Gaussian draws with the
   old generator (numba's ``Generator.standard_normal``) and the new one (odeprune._rng), same
   process;
4. placeholder rows for the threaded right-hand side (RHS us per I4 against a floor loop; 1 vs 2
   threads): :func:`rhs_threads_rows` is the hook.

    python benchmarks/bench_speed.py                  # everything (~10 min on 2 busy cores)
    python benchmarks/bench_speed.py --quick          # K=6 only for the stiff table
    python benchmarks/bench_speed.py --skip stiff,sgd --repeats 5

The machine is shared: every time is the minimum of ``--repeats`` runs, and ratios are taken
within this process. The implicit phase limits its LU factorisations to one BLAS thread itself
(threadpoolctl; see docs/speed.md), so nothing is set here.
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

ETA, V_STAR = 0.5, 4.0
ALPHAS = (1e3, 1e4, 1e5)


# ----------------------------------------------------------------------------- helpers
def row(cells, widths):
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"


def header(cells, widths):
    print(row(cells, widths))
    print(row(["-" * w for w in widths], widths))


def fmt_s(x):
    if x is None or not np.isfinite(x):
        return "-"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def best_of(fn, repeats):
    out, best = None, np.inf
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# ----------------------------------------------------------------------------- 1. stiff path
def problem(M, K, sigma=0.0, v_star=V_STAR):
    """``f``, ``make_chunk(rtol, atol)``, ``y0``, ``eg(Y)`` for OrderParams.random(500, K, M)
    (the adapter to the compiled right-hand side and Dormand-Prince stepper)."""
    import odeprune as op
    from odeprune.ode.drivers import stiff_callables
    from odeprune.ode.explicit import Control
    from odeprune.ode.rhs import make_params, pack, unpack

    state = op.OrderParams.random(500, K, M, v_star=v_star, seed=0)
    p = make_params(K, M, state.T, state.v_star, ETA, ETA, sigma)
    f = stiff_callables(p, Control(1e-7, 1e-10, 0.0, 1, 1e-9)).f

    def make_chunk(rtol, atol):
        return stiff_callables(p, Control(rtol, atol, 0.0, 1, 1e-9)).explicit_chunk

    def eg(Y):
        Q, R, v = unpack(np.atleast_2d(Y), K, M)
        m = Q.shape[0]
        C = np.zeros((m, K + M, K + M))
        C[:, :K, :K], C[:, :K, K:], C[:, K:, :K], C[:, K:, K:] = (Q, R, R.transpose(0, 2, 1),
                                                                  state.T)
        a = np.concatenate([v, -np.broadcast_to(state.v_star, (m, M))], axis=1)
        d = np.sqrt(1 + np.diagonal(C, axis1=1, axis2=2))
        I2 = (2 / np.pi) * np.arcsin(np.clip(C / (d[:, :, None] * d[:, None, :]), -1, 1))
        return 0.5 * np.einsum("mc,mcd,md->m", a, I2, a)

    return f, make_chunk, pack(state.Q, state.R, state.v), eg


def save_at(alpha_max, n=200):
    lo = min(0.01, alpha_max / 100.0)
    return np.unique(np.concatenate([[0.0], np.geomspace(lo, alpha_max, n)]))


class _Run(NamedTuple):
    nfev: int
    njev: int
    n_accept: int
    t_switch: float


def run_method(M, K, alpha, method, rtol=1e-7, atol=1e-10):
    """``odeprune.integrate`` as a user calls it (``method="explicit"``: its default Dormand-Prince
    stepper); returns ``(counters, eps_g at the saved alphas)``."""
    import odeprune as op

    state = op.OrderParams.random(500, K, M, v_star=V_STAR, seed=0)
    c = op.integrate(state, eta=ETA, alpha_max=alpha, save_at=save_at(alpha), rtol=rtol,
                     atol=atol, method="dopri5" if method == "explicit" else method,
                     progress=False)
    m = c.metadata
    return _Run(int(m["nfev"]), int(m.get("njev", 0)), int(m.get("n_accept", -1)),
                float(m.get("alpha_switch", np.nan))), c.eg


def bench_stiff(configs, alphas, repeats, with_reference, explicit_limit_s):
    print("\n## 1. Stiff path (default tolerances rtol=1e-7, atol=1e-10; 201 saved points)\n")
    print("reference: the explicit method at rtol=1e-11, atol=1e-14 where it costs under "
          "--explicit-limit seconds, else auto at rtol=1e-9, atol=1e-10 (marked *); the tests "
          "check auto against scipy's DOP853 at rtol=1e-13\n")
    widths = [10, 8, 9, 9, 8, 6, 6, 9, 10]
    header(["config", "alpha", "method", "s", "nfev", "njev", "steps", "switch α",
            "max rel err"], widths)
    summary = {}
    for M, K in configs:
        run_method(M, K, 1.0, "auto")  # compile / load caches
        explicit_rate = None  # s per unit alpha of the explicit method (stability-limited)
        for alpha in alphas:
            ref, star = None, ""
            if with_reference:
                if explicit_rate is None or explicit_rate * alpha * 2 <= explicit_limit_s:
                    ref = run_method(M, K, alpha, "explicit", 1e-11, 1e-14)[1]
                else:
                    ref, star = run_method(M, K, alpha, "auto", 1e-9, 1e-10)[1], "*"
            for method in ("explicit", "bdf", "radau", "auto"):
                if method == "explicit" and explicit_rate and explicit_rate * alpha > \
                        explicit_limit_s:
                    print(row([f"M={M}, K={K}", f"{alpha:g}", method,
                               f"~{explicit_rate * alpha:.0f} (projected)", "-", "-", "-", "-",
                               "-"], widths))
                    continue
                if method == "radau" and K > 10:
                    continue  # n Jacobians of n evaluations each: see docs/speed.md
                reps = 1 if (method == "explicit" and alpha >= 1e4) else repeats
                t, (sol, eg) = best_of(lambda m=method: run_method(M, K, alpha, m), reps)
                if method == "explicit":
                    explicit_rate = t / alpha
                err = float(np.max(np.abs(eg / ref - 1))) if ref is not None else np.nan
                summary[(M, K, alpha, method)] = (t, sol.nfev)
                print(row([f"M={M}, K={K}", f"{alpha:g}", method, fmt_s(t), sol.nfev, sol.njev,
                           sol.n_accept, fmt_s(sol.t_switch), f"{err:.1e}{star}"], widths))
                sys.stdout.flush()
    print()
    for M, K in configs:
        a3, a5 = summary.get((M, K, 1e3, "auto")), summary.get((M, K, 1e5, "auto"))
        e3 = summary.get((M, K, 1e3, "explicit"))
        if a3 and a5:
            msg = (f"M={M}, K={K}: auto alpha=1e5 / auto alpha=1e3: {a5[0] / a3[0]:.2f}x time, "
                   f"{a5[1] / a3[1]:.2f}x evaluations")
            if e3:
                msg += (f"; auto alpha=1e5 / explicit alpha=1e3: {a5[0] / e3[0]:.2f}x time, "
                        f"{a5[1] / e3[1]:.2f}x evaluations")
            print(msg)


def bench_small_noise(repeats):
    """Issue 16's small-noise case: sigma=1e-3, eps_g ~ 1e-7, final eps_g at the defaults."""
    import warnings

    import odeprune as op
    from odeprune.errors import OdepruneAccuracyWarning
    from odeprune.ode.rhs import pack
    from odeprune.ode.stiff import resolved_eg_floor

    print("\n## 1b. Small noise (M=K=2, v*=1, sigma=1e-3, alpha=1e4): relative error of the "
          "final eps_g\n")
    _, _, _, eg = problem(2, 2, sigma=1e-3, v_star=1.0)
    state = op.OrderParams.random(500, 2, 2, v_star=1.0, seed=0)
    t = save_at(1e4)

    def curve(method, rtol, atol):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OdepruneAccuracyWarning)
            c = op.integrate(state, eta=ETA, alpha_max=1e4, save_at=t, sigma=1e-3, rtol=rtol,
                             atol=atol, method=method, progress=False)
        Y = np.array([pack(c.Q[j], c.R[j], c.v[j]) for j in range(c.alpha.size)])
        return c, Y

    eg_ref = eg(curve("dopri5", 1e-12, 1e-15)[1])
    widths = [9, 7, 7, 7, 12, 12, 14]
    header(["method", "rtol", "atol", "nfev", "final error", "max error", "floor / eps_g"],
           widths)
    for rtol, atol in [(1e-7, 1e-10), (1e-9, 1e-12)]:
        for method in ("dopri5", "auto"):
            c, Y = curve(method, rtol, atol)
            e = eg(Y)
            floor = resolved_eg_floor(lambda y: float(eg(y)[0]), Y[-1], rtol, atol)
            print(row([method, f"{rtol:g}", f"{atol:g}", c.metadata["nfev"],
                       f"{abs(e[-1] / eg_ref[-1] - 1):.1e}",
                       f"{np.max(np.abs(e / eg_ref - 1)):.1e}", f"{floor / e[-1]:.1e}"], widths))
    print(f"(final eps_g = {eg_ref[-1]:.3e}; reference: dopri5 at rtol=1e-12, atol=1e-15; "
          "'floor' = resolved_eg_floor, the worst-case change of eps_g by errors within the "
          "tolerances)")


# ----------------------------------------------------------------------------- 2. start-up
def process_seconds(argv, repeats, cwd=None, cpu=True):
    """Min over ``repeats`` of the child's CPU time (user + sys; robust to a busy machine, where
    wall time mostly measures waiting for a core) or of its wall time."""
    import resource

    best = np.inf
    for _ in range(repeats):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, cwd=cwd)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        best = min(best, used if cpu else wall)
    return best


def bench_startup(repeats):
    print("\n## 2. Start-up (whole processes, warm caches; CPU seconds (user + sys) of the "
          f"process, min of {repeats}; wall-clock min in the last column)\n")
    py = sys.executable
    base = process_seconds([py, "-c", "pass"], repeats)
    base_wall = process_seconds([py, "-c", "pass"], repeats, cpu=False)
    widths = [58, 9, 12, 9]
    header(["process", "CPU s", "minus python", "wall s"], widths)
    print(row(["python -c pass", fmt_s(base), "-", fmt_s(base_wall)], widths))
    with tempfile.TemporaryDirectory() as tmp:
        process_seconds([py, "-m", "odeprune", "integrate", "--plot", "warm.png"], 1, cwd=tmp)
        rows = [("python -c 'import odeprune'", [py, "-c", "import odeprune"]),
                ("python -c 'import odeprune; odeprune.OrderParams'",
                 [py, "-c", "import odeprune; odeprune.OrderParams"]),
                ("odeprune integrate --plot curve.png (quick start)",
                 [py, "-m", "odeprune", "integrate", "--plot", "curve.png"]),
                ("odeprune integrate (no plot)", [py, "-m", "odeprune", "integrate"])]
        for name, argv in rows:
            t = process_seconds(argv, repeats, cwd=tmp)
            wall = process_seconds(argv, repeats, cwd=tmp, cpu=False)
            print(row([name, fmt_s(t), fmt_s(t - base), fmt_s(wall)], widths))
    print("\nwhat single imports cost (CPU seconds of the process minus python -c pass):")
    for stmt in ("import numpy", "import numba", "import scipy.special",
                 "import scipy.integrate", "import scipy.linalg",
                 "import matplotlib.figure, matplotlib.backends.backend_agg",
                 "import matplotlib.pyplot", "import tqdm.auto",
                 "import odeprune.ode.dynamics", "import odeprune.plotting"):
        t = process_seconds([py, "-c", stmt], repeats)
        print(f"  {stmt:60s} {t - base:6.3f} s")


# ----------------------------------------------------------------------------- 3. SGD step
def _old_sgd_kernel():
    """``sgd_steps`` with the Gaussian loop of before issue 16 (numba's ``standard_normal`` per
    number): the same source with the draw replaced."""
    from numba import njit

    import odeprune.sim.kernel as kernel

    src = textwrap.dedent(inspect.getsource(kernel.sgd_steps.py_func))
    new = "fill_normals(rng, x)"
    if new not in src:
        return None
    src = src.replace(new, "for j in range(N):\n            x[j] = rng.standard_normal()\n        #")
    src = "\n".join(line for line in src.splitlines() if not line.startswith("@"))
    ns = dict(vars(kernel))
    exec(src, ns)  # noqa: S102 - our own source, modified
    return njit(nogil=True, error_model="numpy", fastmath=kernel.FASTMATH)(ns["sgd_steps"])


def _sgd_step_fn(kernel, N, K, M, n_steps=2000):
    """A callable timing ``n_steps`` steps of ``kernel`` (``sgd_steps``'s signature; returns
    seconds per step)."""
    from odeprune.sim.kernel import make_sgd_params

    gen = np.random.default_rng(1)
    w_star = gen.standard_normal((M, N))
    w0 = gen.standard_normal((K, N))
    w, v, v_star = w0.copy(), np.full(K, 0.1), np.ones(M)
    rng, noise_rng = np.random.default_rng(2), np.random.default_rng(3)
    x, counter = np.empty(N), np.zeros(1, np.int64)
    p = make_sgd_params(w_star, v_star, ETA, ETA, 0.0, 0, True)
    kernel(w, v, x, counter, rng, noise_rng, 1, p)

    def timed():
        w[:] = w0
        v[:] = 0.1
        t0 = time.thread_time()  # CPU time: robust to being descheduled on a busy machine
        kernel(w, v, x, counter, rng, noise_rng, n_steps, p)
        return (time.thread_time() - t0) / n_steps

    return timed


def interleaved_min(fns, repeats):
    """Minimum time of each callable, calling them in turn ``repeats`` times (a busy machine's
    slow phases then hit all of them alike)."""
    best = [np.inf] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], fn())
    return best


def bench_sgd(repeats):
    from numba import njit

    from odeprune._rng import fill_normals
    from odeprune.sim.kernel import sgd_steps

    @njit
    def gauss_old(rng, x, reps):
        for _ in range(reps):
            for j in range(x.shape[0]):
                x[j] = rng.standard_normal()

    @njit
    def gauss_new(rng, x, reps):
        for _ in range(reps):
            fill_normals(rng, x)

    print("\n## 3. SGD step (N=500, erf, eta=0.5; CPU µs per step (thread time), min of "
          f"{repeats} x 2000 steps, old and new interleaved)\n")
    old = _old_sgd_kernel()
    widths = [10, 12, 12, 8, 16, 16]
    header(["config", "old step µs", "new step µs", "old/new", "old Gaussians µs",
            "new Gaussians µs"], widths)
    for M, K in ((2, 6), (5, 20)):
        N = 500
        x, r = np.empty(N), np.random.default_rng(0)
        gauss_old(r, x, 1)
        gauss_new(r, x, 1)

        def g(fn):
            def timed():
                t0 = time.thread_time()
                fn(r, x, 2000)
                return (time.thread_time() - t0) / 2000
            return timed

        fns = [g(gauss_old), g(gauss_new), _sgd_step_fn(sgd_steps, N, K, M)]
        if old is not None:
            fns.append(_sgd_step_fn(old, N, K, M))
        times = [t * 1e6 for t in interleaved_min(fns, repeats)]
        g_old, g_new, s_new = times[:3]
        s_old = times[3] if old is not None else np.nan
        print(row([f"M={M}, K={K}", f"{s_old:.2f}", f"{s_new:.2f}", f"{s_old / s_new:.2f}×",
                   f"{g_old:.2f}", f"{g_new:.2f}"], widths))
    print("('Gaussians': N=500 draws in a bare compiled loop; inside the kernel the old draw "
          "costs more, see old - new step)")


# ----------------------------------------------------------------------------- 4. lead's hook
def rhs_threads_rows(repeats=5, configs=((2, 6), (5, 20), (5, 50))):
    """Issue 16, item 3: per config ``(config, rhs µs, µs per I4, floor µs per I4, 1 thread s,
    2 threads s, speed-up)``. The floor is a compiled, vectorised loop doing the least work an
    I4 term needs (one arcsine of a precomputed argument, fdlibm's branch-free ``fast_asin``, and
    one multiply-add) over as many terms as the RHS has; the thread columns time 50 evaluations
    of the threaded RHS on 1 and on every numba thread, and check that the numbers are the same
    bit for bit."""
    import numba
    from numba import njit

    import odeprune as op
    from odeprune.activations import fast_asin
    from odeprune.ode import rhs as _rhs

    @njit(fastmath={"reassoc", "contract", "arcp"})
    def floor_loop(x, n, reps):
        # n terms, their arguments read from a 1024-entry table that stays in L1 (the RHS makes
        # its arguments from the overlaps in registers; a table of all n terms would measure
        # the cache, and making them from the loop index costs conversions the RHS does not pay)
        s = 0.0
        for _ in range(reps):
            done = 0
            while done < n:
                m = min(1024, n - done)
                for j in range(m):
                    s += 0.5 * fast_asin(x[j])
                done += m
        return s

    rows = []
    n_max = numba.get_num_threads()
    for M, K in configs:
        L = K + M
        n_i4 = K * (K + 1) // 2 * L * (L + 1) // 2
        s = op.OrderParams.random(500, K, M, v_star=4.0, seed=0)
        y = _rhs.pack(s.Q, s.R, s.v)
        dy = np.empty_like(y)
        w = _rhs.make_work(K, M)
        p1 = _rhs.make_params(K, M, s.T, s.v_star, ETA, ETA)
        pt = _rhs.make_params(K, M, s.T, s.v_star, ETA, ETA, threads=True)
        _rhs.rhs_into(y, dy, p1, w)
        _rhs.rhs_into(y, dy, pt, w)
        n_eval = max(1, 20000 // n_i4)

        def serial():
            t0 = time.perf_counter()
            for _ in range(n_eval):
                _rhs.rhs_into(y, dy, p1, w)
            return (time.perf_counter() - t0) / n_eval

        table = np.random.default_rng(0).uniform(-0.9, 0.9, 1024)
        floor_loop(table, n_i4, 1)

        def floor():
            t0 = time.perf_counter()
            floor_loop(table, n_i4, n_eval)
            return (time.perf_counter() - t0) / n_eval

        t_rhs, t_floor = interleaved_min([serial, floor], repeats)
        times, outs = {}, {}
        try:
            for n in sorted({1, n_max}):
                numba.set_num_threads(n)

                def threaded():
                    t0 = time.perf_counter()
                    for _ in range(50):
                        _rhs.rhs_into(y, dy, pt, w)
                    return time.perf_counter() - t0

                times[n] = best_of(threaded, repeats)[0]
                outs[n] = dy.copy()
        finally:
            numba.set_num_threads(n_max)
        same = all(np.array_equal(outs[1], d) for d in outs.values())
        speed = times[1] / times[n_max]
        rows.append((f"M={M}, K={K}", f"{t_rhs * 1e6:.3g}", f"{t_rhs / n_i4 * 1e9:.2f} ns",
                     f"{t_floor / n_i4 * 1e9:.2f} ns", f"{times[1]:.3g}",
                     f"{times[n_max]:.3g} ({n_max})",
                     f"{speed:.2f}x{'' if same else ' NOT bit-identical'}"))
    return rows


def bench_rhs_threads():
    print("\n## 4. Right-hand side: µs per I4 against a floor loop; 1 vs 2 threads\n")
    widths = [10, 9, 10, 13, 11, 13, 12]
    header(["config", "rhs µs", "per I4", "asin loop", "1 thread s", "n threads s",
            "speed-up"], widths)
    rows = rhs_threads_rows()
    for r in rows or [("M=5, K=20", "-", "-", "-", "-", "-", "-")]:
        print(row(r, widths))
    print("(rhs µs: one serial evaluation; per I4: that over the K(K+1)/2 L(L+1)/2 terms of the "
          "I4 sum; asin loop: the floor, a bare compiled loop of the same fast_asin per term "
          "(its sqrt and division are most of an I4 term); thread columns: 50 evaluations of "
          "the threaded RHS, the same numbers bit for bit unless said)")


# ----------------------------------------------------------------------------- main
def machine():
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores, {model}; Python {platform.python_version()}, "
            f"numpy {np.__version__}; load average {load}; "
            f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="stiff table for M=2/K=6 only")
    ap.add_argument("--skip", default="", help="comma-separated: stiff, noise, startup, sgd, rhs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the tight reference runs (no accuracy column)")
    ap.add_argument("--explicit-limit", type=float, default=60.0,
                    help="project (do not run) explicit runs expected to take longer (s)")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    print(f"# odeprune speed benchmark (issue 16) — {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"machine: {machine()}")
    if "stiff" not in skip:
        configs = [(2, 6)] if args.quick else [(2, 6), (5, 20)]
        bench_stiff(configs, ALPHAS, args.repeats, not args.no_reference, args.explicit_limit)
    if "noise" not in skip:
        bench_small_noise(args.repeats)
    if "startup" not in skip:
        bench_startup(max(args.repeats, 3))
    if "sgd" not in skip:
        bench_sgd(max(4 * args.repeats, 20))
    if "rhs" not in skip:
        bench_rhs_threads()
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
