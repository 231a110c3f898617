"""Issue 27, item 4: a masked network's curve against the dense one (CPU time, same process).

M=2, K=6, eta=0.5, the paper state ``OrderParams.random(500, 6, 2, v_star=4, seed=0)``; the masked
network is the same state with an independent random edge mask at c=0.5
(``SparseOrderParams.random_mask``: 64 classes). Both to alpha=1000 with ``method="dopri5"``
(default tolerances); CPU time (``time.process_time``), min of ``--repeats``, dense and masked
interleaved. Also one right-hand side at the state the dense curve reaches at alpha=300
(per-evaluation ratio; the curves differ in their number of evaluations), called from Python and
in a compiled loop; the curve's CPU per evaluation less the compiled evaluation is the stepper's
own work per evaluation (its stage sums over the state vector: 39 entries dense, 822 masked).
Goal: masked <= 2x dense.

At default settings (``method="auto"``) both curves switch to BDF (dense at alpha ~ 24, masked
at ~ 22); the masked implicit steps solve with the classes' structure (``odeprune.ode.blocks``:
block-diagonal plus low rank, Woodbury). ``--defaults`` adds that table: dense and masked at
defaults to alpha = 1e3, 1e4, 1e5, the masked BDF with the Woodbury solve against a dense LU of
its whole 822-entry state (``AutoDriver(blocks=False)``), and K=8 (256 classes, n = 4 872)
at defaults against dopri5.

``--parts``: the implicit phase's pieces per call (one evaluation, the Jacobian, a factorisation,
a solve), masked against dense, and the default curve to alpha=1e3 as counts times those costs.

    python benchmarks/bench_masked.py [--repeats 3] [--defaults] [--parts] [--baseline-tree DIR]

``--baseline-tree DIR``: also measure ``DIR``'s ``odeprune`` (an older copy of the package), each
tree in its own child process (alternating, ``--rounds`` times, the minimum kept), and print the
ratios current / baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
from numba import njit

import odeprune
from odeprune import OrderParams
from odeprune.ode.lu import lu_factor
from odeprune.ode.rhs import make_params, make_work, pack, pack_classes, rhs_into
from odeprune.sparse import SparseOrderParams


def cpu(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


@njit
def _times(fn, n, args):
    """``fn(*args)`` ``n`` times: a piece timed in a compiled loop."""
    for _ in range(n):
        fn(*args)


def per_eval_compiled(y, p, n, repeats):
    args = (y, np.empty_like(y), p, make_work(p.K, p.M))
    _times(rhs_into, 1, args)
    return cpu(lambda: _times(rhs_into, n, args), repeats)[0] / n


def per_eval(y, p, n, repeats):
    w, dy = make_work(p.K, p.M), np.empty_like(y)
    rhs_into(y, dy, p, w)

    def loop():
        for _ in range(n):
            rhs_into(y, dy, p, w)
    return cpu(loop, repeats)[0] / n


def main(repeats: int) -> dict:
    warnings.simplefilter("ignore")  # the explicit method's accuracy note on the tiny final eps_g
    print("load avg / runnable:", " ".join(open("/proc/loadavg").read().split()[:4])
          if os.path.exists("/proc/loadavg") else "?")
    s = OrderParams.random(500, 6, 2, v_star=4.0, seed=0)
    sp = SparseOrderParams.random_mask(s, 0.5)
    kw = dict(progress=False, method="dopri5")
    for st in (s, sp):  # compile
        odeprune.integrate(st, 0.5, 10.0, **kw)
    td = tm = float("inf")
    for _ in range(repeats):
        t, cd = cpu(lambda: odeprune.integrate(s, 0.5, 1000.0, **kw), 1)
        td = min(td, t)
        t, cm = cpu(lambda: odeprune.integrate(sp, 0.5, 1000.0, **kw), 1)
        tm = min(tm, t)
    nd, nm = cd.metadata["nfev"], cm.metadata["nfev"]
    print(f"M=2, K=6, alpha=1000, dopri5 (CPU s, min of {repeats})")
    print("| network | CPU s | nfev | us / evaluation |\n| --- | ---: | ---: | ---: |")
    print(f"| dense | {td:.3f} | {nd} | {1e6 * td / nd:.1f} |")
    print(f"| random mask c=0.5 ({sp.n_classes} classes) | {tm:.3f} | {nm} | "
          f"{1e6 * tm / nm:.1f} |")
    print(f"curve ratio masked / dense: {tm / td:.2f}x (goal <= 2)")

    late = odeprune.integrate(s, 0.5, 300.0, save_at=[0.0, 300.0], **kw).final
    spl = SparseOrderParams.random_mask(late, 0.5)
    yd = pack(late.Q, late.R, late.v)
    pd = make_params(6, 2, late.T, late.v_star, 0.5, 0.5)
    ym = pack_classes(spl.patterns, spl.Q, spl.R, spl.v)
    pm = make_params(6, 2, spl.T.sum(0), spl.v_star, 0.5, 0.5, patterns=spl.patterns, f=spl.f,
                     T_cls=spl.T)
    ed, em = per_eval(yd, pd, 2000, repeats), per_eval(ym, pm, 500, repeats)
    print(f"one right-hand side at alpha=300: dense {1e6 * ed:.1f} us, masked {1e6 * em:.1f} us, "
          f"ratio {em / ed:.2f}x")
    ld, lm = per_eval_compiled(yd, pd, 20000, repeats), per_eval_compiled(ym, pm, 5000, repeats)
    print(f"in a compiled loop: dense {1e6 * ld:.2f} us, masked {1e6 * lm:.2f} us, ratio "
          f"{lm / ld:.2f}x; the stepper's own work per evaluation: dense "
          f"{1e6 * (td / nd - ld):.2f} us, masked {1e6 * (tm / nm - lm):.2f} us")
    return {"dense": td, "masked": tm, "curve_ratio": tm / td, "eval_dense": ed,
            "eval_masked": em, "eval_ratio": em / ed, "loop_dense": ld, "loop_masked": lm}


def defaults(repeats: int) -> None:
    """The curves at default settings (module docstring)."""
    from odeprune.ode import drivers

    warnings.simplefilter("ignore")
    s = OrderParams.random(500, 6, 2, v_star=4.0, seed=0)
    sp = SparseOrderParams.random_mask(s, 0.5)
    for st in (s, sp):  # compile
        odeprune.integrate(st, 0.5, 1e3, progress=False)
    print(f"M=2, K=6, default settings (method='auto'); CPU s, min of {repeats}")
    print("| alpha | dense | masked (64 classes) | masked / dense | masked switch at |\n"
          "| ---: | ---: | ---: | ---: | ---: |")
    for a in (1e3, 1e4, 1e5):
        td, _ = cpu(lambda: odeprune.integrate(s, 0.5, a, progress=False), repeats)
        tm, c = cpu(lambda: odeprune.integrate(sp, 0.5, a, progress=False), repeats)
        print(f"| {a:.0e} | {td:.4f} | {tm:.4f} | {tm / td:.2f}x | "
              f"{c.metadata['alpha_switch']:.1f} |")
    real = drivers.AutoDriver.__init__

    def dense_lu(self, *args, **kw):
        real(self, *args, **{**kw, "blocks": False})

    tb, cb = cpu(lambda: odeprune.integrate(sp, 0.5, 1e3, progress=False), repeats)
    drivers.AutoDriver.__init__ = dense_lu
    try:
        odeprune.integrate(sp, 0.5, 1e3, progress=False)  # compile the dense-LU path
        tl, cl = cpu(lambda: odeprune.integrate(sp, 0.5, 1e3, progress=False), 1)
    finally:
        drivers.AutoDriver.__init__ = real
    print(f"masked to 1e3, BDF steps solved by Woodbury {tb:.4f} s ({cb.metadata['nlu']} "
          f"factorisations) against a dense LU of the whole state {tl:.3f} s "
          f"({cl.metadata['nlu']}): {tl / tb:.0f}x; final eps_g agree to "
          f"{abs(cb.eg[-1] / cl.eg[-1] - 1):.1e}")
    s8 = SparseOrderParams.random_mask(OrderParams.random(500, 8, 2, v_star=4.0, seed=0), 0.5)
    odeprune.integrate(s8, 0.5, 10.0, progress=False)
    for a in (1e3, 1e4):
        ta, ca = cpu(lambda: odeprune.integrate(s8, 0.5, a, progress=False), 1)
        tp, cp = cpu(lambda: odeprune.integrate(s8, 0.5, a, progress=False, method="dopri5"), 1)
        print(f"K=8 (256 classes) to {a:.0e}: default {ta:.3f} s ({ca.metadata['final_phase']}, "
              f"{ca.metadata['nfev']} evaluations), dopri5 {tp:.3f} s ({cp.metadata['nfev']}); "
              f"eps_g agree to {abs(ca.eg[-1] / cp.eg[-1] - 1):.1e}")


@njit
def _dense_factor(A, J, piv):
    """The dense BDF's factorisation: ``A = I - 0.7 J``, LU in place."""
    A[:] = -0.7 * J
    for i in range(A.shape[0]):
        A[i, i] += 1.0
    lu_factor(A, piv)


@njit
def _fresh_solve(solve, r, r0, before, after):
    """``solve(*before, r, *after)`` with ``r`` reset to ``r0`` first (a repeated solve in
    place would shrink or grow ``r`` geometrically)."""
    r[:] = r0
    solve(*before, r, *after)


def parts(repeats: int) -> None:
    """Per call, in a compiled loop, the pieces of a masked curve's implicit phase at the paper
    state (M=2, K=6, c=0.5: n = 822, m = 39, 64 classes) against the dense state's (n = 39):
    one right-hand side, the Jacobian (blocks: ``2 m + max n_s + 1`` evaluations; dense: plain
    forward differences, ``n + 1``), one factorisation of ``I - c J`` (blocks: each class's LU,
    ``W`` and the capacitance matrix; dense: one LU) and one solve; then the default curve to
    alpha=1e3 as counts times these costs (a Newton iteration is one evaluation and one solve)."""
    from odeprune.ode.blocks import blocks_factor, blocks_jacobian, blocks_solve, new_blocks
    from odeprune.ode.jacobian import fd_jacobian_into
    from odeprune.ode.lu import lu_solve

    warnings.simplefilter("ignore")
    s = OrderParams.random(500, 6, 2, v_star=4.0, seed=0)
    sp = SparseOrderParams.random_mask(s, 0.5)
    ym = pack_classes(sp.patterns, sp.Q, sp.R, sp.v)
    pm = make_params(6, 2, sp.T.sum(0), sp.v_star, 0.5, 0.5, patterns=sp.patterns, f=sp.f,
                     T_cls=sp.T)
    yd = pack(s.Q, s.R, s.v)
    pd = make_params(6, 2, s.T, s.v_star, 0.5, 0.5)
    b = new_blocks(sp.patterns, 6, 2, False, pm.off)
    w = make_work(6, 2)
    J = np.empty((yd.size, yd.size))
    A, piv = np.empty_like(J), np.empty(yd.size, dtype=np.int64)
    r0m, r0d = np.linspace(-1.0, 1.0, ym.size), np.linspace(-1.0, 1.0, yd.size)
    z = np.empty(b.UT.shape[0])

    dy_m, dy_d = np.empty_like(ym), np.empty_like(yd)
    _dense_factor(A, J, piv)
    pieces = {"masked": ((rhs_into, (ym, dy_m, pm, w)), (blocks_jacobian, (ym, pm, w, b)),
                         (blocks_factor, (b, pm, 0.7)), (_fresh_solve, (blocks_solve, r0m.copy(), r0m,
                                                                        (b, pm), (z,)))),
              "dense": ((rhs_into, (yd, dy_d, pd, w)), (fd_jacobian_into, (yd, pd, w, J)),
                        (_dense_factor, (A, J, piv)), (_fresh_solve, (lu_solve, r0d.copy(), r0d,
                                                                      (A, piv), ())))}
    names = ("evaluation", "Jacobian", "factorisation", "solve")
    counts = {"masked": (5000, 50, 500, 5000), "dense": (20000, 2000, 20000, 20000)}
    per = {}
    for label, calls in pieces.items():
        for k, ((fn, a), n) in enumerate(zip(calls, counts[label])):
            _times(fn, 1, a)
            per[label, k] = cpu(lambda: _times(fn, n, a), repeats)[0] / n
    runs = {}
    for label, st in (("masked", sp), ("dense", s)):
        odeprune.integrate(st, 0.5, 1e3, progress=False)
        t, c = cpu(lambda: odeprune.integrate(st, 0.5, 1e3, progress=False), repeats)
        runs[label] = (t, c.metadata)
    print(f"M=2, K=6, per call in a compiled loop (us of CPU, min of {repeats})")
    print("| piece | dense (n = 39) | masked (n = 822, 64 classes) | masked / dense |\n"
          "| --- | ---: | ---: | ---: |")
    for k, name in enumerate(names):
        d, m = 1e6 * per["dense", k], 1e6 * per["masked", k]
        print(f"| {name} | {d:.2f} | {m:.2f} | {m / d:.1f}x |")
    print("the default curve to alpha=1e3: counts x per-call costs (ms); a Newton iteration is "
          "one evaluation and one solve, so solves <= evaluations")
    print("| network | CPU ms | evaluations | Jacobians | factorisations | <= solves |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |")
    for label in ("dense", "masked"):
        t, md = runs[label]
        nf, nj, nl = md["nfev"], md["njev"], md["nlu"]
        print(f"| {label} | {1e3 * t:.1f} | {nf} x {1e6 * per[label, 0]:.1f} us = "
              f"{1e3 * nf * per[label, 0]:.1f} | {nj} x = {1e3 * nj * per[label, 1]:.1f} | "
              f"{nl} x = {1e3 * nl * per[label, 2]:.1f} | {1e3 * nf * per[label, 3]:.1f} |")
    print(f"curve ratio masked / dense: {runs['masked'][0] / runs['dense'][0]:.2f}x")


def compare(base: str, repeats: int, rounds: int) -> None:
    """Both trees in child processes, alternating; the minimum of each number over rounds."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    best: dict = {}
    for _ in range(rounds):
        for tree, root in (("baseline", os.path.abspath(base)), ("current", here)):
            env = dict(os.environ, PYTHONPATH=root)
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--repeats",
                                  str(repeats), "--json"], env=env, check=True,
                                 capture_output=True, text=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            for k, v in res.items():
                best.setdefault(tree, {})[k] = min(v, best.get(tree, {}).get(k, float("inf")))
    b, c = best["baseline"], best["current"]
    print("load avg / runnable:", " ".join(open("/proc/loadavg").read().split()[:4])
          if os.path.exists("/proc/loadavg") else "?")
    print(f"min over {rounds} rounds (each: min of {repeats}); CPU s, us per evaluation")
    print("| | baseline | current | current / baseline |\n| --- | ---: | ---: | ---: |")
    for k, scale in (("dense", 1), ("masked", 1), ("eval_dense", 1e6), ("eval_masked", 1e6),
                     ("loop_dense", 1e6), ("loop_masked", 1e6)):
        print(f"| {k} | {scale * b[k]:.3f} | {scale * c[k]:.3f} | {c[k] / b[k]:.2f} |")
    print(f"| masked / dense (curve) | {b['masked'] / b['dense']:.2f} | "
          f"{c['masked'] / c['dense']:.2f} | |")
    print(f"| masked / dense (one evaluation) | {b['eval_masked'] / b['eval_dense']:.2f} | "
          f"{c['eval_masked'] / c['eval_dense']:.2f} | |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-tree", default=None,
                    help="a directory holding an older odeprune package to compare against")
    ap.add_argument("--rounds", type=int, default=2, help="alternations with --baseline-tree")
    ap.add_argument("--json", action="store_true", help="print the numbers as JSON last")
    ap.add_argument("--defaults", action="store_true",
                    help="also the curves at default settings (module docstring)")
    ap.add_argument("--parts", action="store_true",
                    help="also the implicit phase's pieces per call, masked against dense")
    args = ap.parse_args()
    if args.parts:
        parts(args.repeats)
    if args.defaults:
        defaults(args.repeats)
    if args.baseline_tree:
        compare(args.baseline_tree, args.repeats, args.rounds)
    else:
        res = main(args.repeats)
        if args.json:
            print(json.dumps(res))
