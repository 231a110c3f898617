"""The public calls of a round, before and after, in one process (issue 22's speed check).

The package at ``--base`` (default ``4b3e8df``, the start of the round that routed every option
through the records, composed the results and split the engine) is extracted with ``git
archive``; both versions make the same public calls with the same flat keywords, each in its
own process (alternating ``--rounds`` times, each with its own numba cache), and the table
prints the minimum CPU time of each and their ratio (now / base: < 1.03 is the bar). Separate
processes, not one: with two copies of the kernels in one process the one compiled first runs
up to 16 % faster (measured with two identical copies), which swamps a 3 % bar.

    python benchmarks/bench_round.py [--base REF] [--repeats 5] [--rounds 3]

The numbers of each pair are also compared (they must agree: same methods, same seeds).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu(fn):
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def cases(op):
    """name -> (call, the number it returns) for one version of the package ``op``."""
    s6 = op.OrderParams.random(500, 6, 2, v_star=4.0, seed=0)
    s20 = op.OrderParams.random(500, 20, 5, v_star=4.0, seed=0)
    masked = op.prune(s6, "magnitude_edge", c=0.5, seed=0).sparse_state
    return {
        "integrate K=6 alpha=1000 (default)":
            lambda: op.integrate(s6, eta=0.5, alpha_max=1000).eg[-1],
        "integrate K=20 alpha=1000 (default)":
            lambda: op.integrate(s20, eta=0.5, alpha_max=1000, threads=False).eg[-1],
        "integrate K=6 alpha=1000 dopri5":
            lambda: op.integrate(s6, eta=0.5, alpha_max=1000, method="dopri5").eg[-1],
        "integrate masked K=6 alpha=100":
            lambda: op.integrate(masked, eta=0.5, alpha_max=100).eg[-1],
        "simulate N=500 K=6 alpha=20":
            lambda: op.simulate(500, 6, 2, eta=0.5, alpha_max=20, n_test=0, seed=1).eg[-1],
        "prune magnitude_edge K=6 c=0.5":
            lambda: op.prune(s6, "magnitude_edge", c=0.5, seed=0).eg_mean,
    }


def child(repeats: int) -> None:
    """Time every case of the ``odeprune`` on ``sys.path`` (warm: each called once first)."""
    import json

    import odeprune as op
    out = {}
    for name, fn in cases(op).items():
        value = float(fn())
        out[name] = (min(cpu(fn)[0] for _ in range(repeats)), value)
    print(json.dumps(out))


def run_tree(tree: str, repeats: int, cache: str) -> dict:
    import json
    import subprocess

    env = dict(os.environ, PYTHONPATH=tree, NUMBA_CACHE_DIR=cache)
    res = subprocess.run([sys.executable, __file__, "--child", "--repeats", str(repeats)],
                         env=env, capture_output=True, text=True, check=True,
                         cwd=tempfile.gettempdir())
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="4b3e8df", help="git ref of the code before")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the two trees")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.repeats)
    print(f"# public calls, base {args.base} vs now — {time.strftime('%Y-%m-%d %H:%M')}; load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    root = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory() as tmp:
        base_tree = Path(tmp) / "base"
        base_tree.mkdir()
        subprocess_archive(args.base, base_tree)
        best: dict = {}
        for _ in range(args.rounds):
            for label, tree in (("base", str(base_tree)), ("now", root)):
                for name, (t, v) in run_tree(tree, args.repeats,
                                             str(Path(tmp) / f"cache-{label}")).items():
                    old = best.setdefault(name, {}).get(label, (np.inf, v))
                    best[name][label] = (min(old[0], t), v)
        print("| call | base (s CPU) | now (s CPU) | now / base | same number |")
        print("| --- | ---: | ---: | ---: | --- |")
        for name, d in best.items():
            (t_old, v_old), (t_new, v_new) = d["base"], d["now"]
            same = "yes" if v_old == v_new else f"{abs(v_new - v_old) / abs(v_old):.1e} rel."
            print(f"| {name} | {t_old:.4f} | {t_new:.4f} | {t_new / t_old:.3f} | {same} |")


def subprocess_archive(ref: str, where: Path) -> None:
    """``odeprune`` at ``ref`` under ``where`` (a tree to put first on ``PYTHONPATH``)."""
    import subprocess
    import tarfile

    root = Path(__file__).resolve().parents[1]
    tar = where / "base.tar"
    with open(tar, "wb") as fh:
        subprocess.run(["git", "-C", str(root), "archive", ref, "odeprune"], stdout=fh,
                       check=True)
    with tarfile.open(tar) as tf:
        tf.extractall(where, filter="data")


if __name__ == "__main__":
    main()
