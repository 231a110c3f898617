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

    python benchmarks/bench_masked.py [--repeats 3] [--baseline-tree DIR]

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
def _loop(y, dy, p, w, n):
    for _ in range(n):
        rhs_into(y, dy, p, w)


def per_eval_compiled(y, p, n, repeats):
    w, dy = make_work(p.K, p.M), np.empty_like(y)
    _loop(y, dy, p, w, 1)
    return cpu(lambda: _loop(y, dy, p, w, n), repeats)[0] / n


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
    args = ap.parse_args()
    if args.baseline_tree:
        compare(args.baseline_tree, args.repeats, args.rounds)
    else:
        res = main(args.repeats)
        if args.json:
            print(json.dumps(res))
