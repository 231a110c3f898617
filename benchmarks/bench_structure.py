"""Issue 11: the restructured kernels against the code before the restructuring, in one process.

The package as it was at ``--base`` (default ``eb20933^``, the last commit before the kernels
took records: ``rhs_into`` with 18 positional arguments, ``dopri5_run`` 22, ``_sgd_block`` 17)
is extracted with ``git archive`` into a temporary directory as the package ``odeprune_base``
and compiled there; both versions then run the same problems, interleaved, and the table prints
the minimum over ``--repeats`` of each and their ratio (base / now: > 1 means now is faster).

    python benchmarks/bench_structure.py               # ~2 min (compiles the base once)
    python benchmarks/bench_structure.py --repeats 9

Rows:

- the dense right-hand side, µs per evaluation (K=6/M=2, K=20/M=5, erf, SGD terms), in a
  compiled loop (what the steppers pay) and called from Python (the implicit phase);
- ``integrate`` to alpha = 1000 (default Dormand-Prince, default tolerances), whole call;
- one SGD step at N = 500: the base kernel against today's ``sgd_steps`` with the *base's*
  Gaussian draw swapped in (so that only the structure differs; issue 16 changed the draw), and
  today's kernel as shipped;
- ``simulate`` (N = 500, K = 6, M = 2, alpha = 20, no test set), whole call.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ETA = 0.5


def extract_base(ref: str, where: Path) -> None:
    """``odeprune`` at ``ref`` as the package ``odeprune_base`` under ``where``."""
    tar = where / "base.tar"
    with open(tar, "wb") as fh:
        subprocess.run(["git", "-C", str(ROOT), "archive", ref, "odeprune"], stdout=fh,
                       check=True)
    with tarfile.open(tar) as tf:
        tf.extractall(where, filter="data")
    (where / "odeprune").rename(where / "odeprune_base")
    # absolute self-imports of the old tree point at the old tree
    for f in (where / "odeprune_base").rglob("*.py"):
        src = f.read_text()
        if "odeprune" in src:
            src = src.replace("from odeprune.", "from odeprune_base.").replace(
                "import odeprune\n", "import odeprune_base as odeprune\n")
            f.write_text(src)


def best(fn, repeats):
    out = np.inf
    for _ in range(repeats):
        out = min(out, fn())
    return out


def interleaved(fns, repeats):
    t = [np.inf] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t[i] = min(t[i], fn())
    return t


def rhs_timers(base, K, M, n=20000):
    """Per evaluation, inside a compiled loop (what the steppers pay) and called from Python
    (what the implicit phase pays: unboxing the arguments)."""
    from numba import njit

    import odeprune as op
    from odeprune.ode.rhs import make_params, make_work, pack, rhs_into

    s = op.OrderParams.random(500, K, M, v_star=4.0, seed=0)
    y = pack(s.Q, s.R, s.v)
    dy = np.empty_like(y)
    p = make_params(K, M, s.T, s.v_star, ETA, ETA)
    w = make_work(K, M)
    L = K + M
    T, vs = np.ascontiguousarray(s.T), np.ascontiguousarray(s.v_star)
    scratch = (np.zeros((L, L)), np.zeros(L), np.zeros((K, L)), np.zeros(L), np.zeros(L))
    brhs = base._rhs.rhs_into
    d_old = dy.copy()
    brhs(y, d_old, K, M, T, vs, ETA, ETA, 0.0, 0, True, True, True, *scratch)
    rhs_into(y, dy, p, w)
    assert np.allclose(dy, d_old, rtol=1e-12, atol=1e-14), "the two right-hand sides differ"

    @njit
    def loop_old(y, dy, n, K, M, T, vs, C, a, S3, u, Cu):
        for _ in range(n):
            brhs(y, dy, K, M, T, vs, 0.5, 0.5, 0.0, 0, True, True, True, C, a, S3, u, Cu)

    @njit
    def loop_new(y, dy, n, p, w):
        for _ in range(n):
            rhs_into(y, dy, p, w)

    loop_old(y, dy, 1, K, M, T, vs, *scratch)
    loop_new(y, dy, 1, p, w)
    m = max(1, n * 36 // (K * K))

    def compiled_old():
        t0 = time.perf_counter()
        loop_old(y, dy, m, K, M, T, vs, *scratch)
        return (time.perf_counter() - t0) / m

    def compiled_new():
        t0 = time.perf_counter()
        loop_new(y, dy, m, p, w)
        return (time.perf_counter() - t0) / m

    def python_old():
        t0 = time.perf_counter()
        for _ in range(200):
            brhs(y, dy, K, M, T, vs, ETA, ETA, 0.0, 0, True, True, True, *scratch)
        return (time.perf_counter() - t0) / 200

    def python_new():
        t0 = time.perf_counter()
        for _ in range(200):
            rhs_into(y, dy, p, w)
        return (time.perf_counter() - t0) / 200

    return (compiled_old, compiled_new), (python_old, python_new)


def integrate_timers(base, K, M, alpha=1000.0):
    import odeprune as op

    s = op.OrderParams.random(500, K, M, v_star=4.0, seed=0)
    sb = base.state.OrderParams(Q=s.Q, R=s.R, T=s.T, v=s.v, v_star=s.v_star)
    kw = dict(eta=ETA, alpha_max=alpha, progress=False)
    a = base.dynamics.integrate(sb, **kw).eg
    b = op.integrate(s, threads=False, **kw).eg
    assert np.allclose(a, b, rtol=1e-6), "the two integrations differ"

    def old():
        t0 = time.perf_counter()
        base.dynamics.integrate(sb, **kw)
        return time.perf_counter() - t0

    def new():
        t0 = time.perf_counter()
        op.integrate(s, threads=False, **kw)
        return time.perf_counter() - t0

    return old, new


def sgd_timers(base, K, M, N=500, n_steps=2000):
    from numba import njit

    import odeprune.sim.kernel as kernel
    from odeprune.sim.kernel import make_sgd_params

    # today's kernel with the base's Gaussian draw (numba's standard_normal per number)
    src = textwrap.dedent(inspect.getsource(kernel.sgd_steps.py_func))
    src = src.replace("fill_normals(rng, x)",
                      "for j in range(N):\n            x[j] = rng.standard_normal()\n        #")
    src = "\n".join(line for line in src.splitlines() if not line.startswith("@"))
    ns = dict(vars(kernel))
    exec(src, ns)  # noqa: S102 - our own source, modified
    now_old_draw = njit(nogil=True, error_model="numpy", fastmath=kernel.FASTMATH)(
        ns["sgd_steps"])

    gen = np.random.default_rng(1)
    w_star = gen.standard_normal((M, N))
    w0 = gen.standard_normal((K, N))
    v_star = np.ones(M)
    p = make_sgd_params(w_star, v_star, ETA, ETA, 0.0, 0, True)

    def timer(call):
        w, v = w0.copy(), np.full(K, 0.1)
        rng, noise = np.random.default_rng(2), np.random.default_rng(3)
        x, counter = np.empty(N), np.zeros(1, np.int64)
        call(w, v, x, counter, rng, noise, 1)

        def timed():
            w[:] = w0
            v[:] = 0.1
            t0 = time.thread_time()
            call(w, v, x, counter, rng, noise, n_steps)
            return (time.thread_time() - t0) / n_steps

        return timed

    def base_call(w, v, x, counter, rng, noise, n):
        base.simulation._sgd_block(w, v, w_star, v_star, rng, noise, x, n, p.eta_w, p.eta_v,
                                   0.0, 0, True, p.inv_sqrt_N, counter, np.ones((1, 1)), False)

    def now_old_call(w, v, x, counter, rng, noise, n):
        now_old_draw(w, v, x, counter, rng, noise, n, p)

    def now_call(w, v, x, counter, rng, noise, n):
        kernel.sgd_steps(w, v, x, counter, rng, noise, n, p)

    return timer(base_call), timer(now_old_call), timer(now_call)


def simulate_timers(base, K=6, M=2, N=500, alpha=20.0):
    import odeprune as op

    kw = dict(N=N, K=K, M=M, eta=ETA, alpha_max=alpha, n_test=0, seed=0, progress=False)

    def old():
        t0 = time.perf_counter()
        base.simulation.simulate(**kw)
        return time.perf_counter() - t0

    def new():
        t0 = time.perf_counter()
        op.simulate(**kw)
        return time.perf_counter() - t0

    old(), new()
    return old, new


def row(cells, widths):
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="eb20933^", help="git ref of the code before (default: "
                    "the last commit before the restructuring)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"# issue 11 structure benchmark — {time.strftime('%Y-%m-%d %H:%M')}; base "
          f"{args.base}; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    with tempfile.TemporaryDirectory() as tmp:
        extract_base(args.base, Path(tmp))
        sys.path.insert(0, tmp)
        base = type("Base", (), {})()
        for name in ("_rhs", "state", "dynamics", "simulation"):
            setattr(base, name, importlib.import_module(f"odeprune_base.{name}"))
        widths = [44, 12, 12, 12]
        print(row(["what", "base", "now", "base / now"], widths))
        print(row(["-" * w for w in widths], widths))

        def show(label, unit, scale, t_old, t_new):
            print(row([label, f"{t_old * scale:.3g} {unit}", f"{t_new * scale:.3g} {unit}",
                       f"{t_old / t_new:.2f}"], widths))
            sys.stdout.flush()

        for K, M in ((6, 2), (20, 5)):
            compiled, python = rhs_timers(base, K, M)
            show(f"RHS, K={K}, M={M}, in a compiled loop", "µs", 1e6,
                 *interleaved(compiled, args.repeats))
            show(f"RHS, K={K}, M={M}, called from Python", "µs", 1e6,
                 *interleaved(python, args.repeats))
        for K, M in ((6, 2), (20, 5)):
            reps = args.repeats if K < 10 else max(2, args.repeats // 2)
            t = interleaved(integrate_timers(base, K, M), reps)
            show(f"integrate alpha=1000, K={K}, M={M}", "s", 1, *t)
        for K, M in ((6, 2), (20, 5)):
            t_base, t_now_old, t_now = interleaved(sgd_timers(base, K, M), 4 * args.repeats)
            show(f"SGD step N=500, K={K} (same draw)", "µs", 1e6, t_base, t_now_old)
            show(f"SGD step N=500, K={K} (now: issue-16 draw)", "µs", 1e6, t_base, t_now)
        t = interleaved(simulate_timers(base), args.repeats)
        show("simulate N=500, K=6, alpha=20", "s", 1, *t)


if __name__ == "__main__":
    main()
