"""Issue 27, item 3: what the first ``odeprune integrate`` costs (numba compiling the kernels).

Each run is a fresh process; CPU is the child's user + system time
(``resource.getrusage(RUSAGE_CHILDREN)``, so numba's compiler threads count), wall is
``time.perf_counter``. *Cold*: ``NUMBA_CACHE_DIR`` is a new, empty temporary directory, so every
kernel the command uses is compiled (and cached there); *warm*: the same command again on that
cache (min of ``--repeats``). ``--activation`` picks the network's activation (erf, the default
command, compiles only erf code since the activation is a compile-time type: issue 27 item 3).

    python benchmarks/bench_compile.py [--repeats 3] [--activation erf relu] [--cold-repeats 1]
                                       [--baseline-tree DIR]

``--baseline-tree DIR``: also run every command with ``DIR`` first on ``PYTHONPATH`` (a copy of
an older ``odeprune`` package, e.g. one saved before a change), interleaved with the current tree,
and print the ratio; that is how the before/after numbers in ``benchmarks/RESULTS.md`` were taken.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time

from _load import NEUTRAL, PY, ROOT, _with_path  # benchmarks/_load.py, beside this script


def run(cmd, env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.perf_counter()
    # from a neutral directory: ``python -m`` puts the working directory first on sys.path,
    # ahead of PYTHONPATH, so a run from a source tree would import that tree for every case
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=NEUTRAL)
    wall = time.perf_counter() - w0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def measure(cmd, env, cold_repeats, repeats):
    """(cold CPU, cold wall), warm CPU (min) of ``cmd`` on fresh caches."""
    cold, warm = (float("inf"), float("inf")), float("inf")
    for _ in range(cold_repeats):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(env, NUMBA_CACHE_DIR=cache)
            cold = min(cold, run(cmd, env))
            warm = min([warm] + [run(cmd, env)[0] for _ in range(repeats)])
    return cold, warm


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="warm runs (the minimum is shown)")
    ap.add_argument("--cold-repeats", type=int, default=1,
                    help="cold runs, each on its own empty cache (the minimum is shown)")
    ap.add_argument("--activation", nargs="+", default=["erf"], choices=["erf", "linear", "relu"])
    ap.add_argument("--baseline-tree", default=None,
                    help="a directory holding an older odeprune package to compare against")
    args = ap.parse_args()
    load = " ".join(open("/proc/loadavg").read().split()[:4]) if os.path.exists(
        "/proc/loadavg") else "?"
    print(f"load avg / runnable at start: {load}")
    trees = {"current": _with_path(ROOT)}
    if args.baseline_tree:
        trees = {"baseline": _with_path(args.baseline_tree), **trees}
    print("| command | tree | cold CPU s | cold wall s | warm CPU s (min) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name in args.activation:
        cmd = [PY, "-m", "odeprune", "integrate", "-q"]
        if name != "erf":
            cmd += ["--activation", name, "--v-star", "1"]
        res = {}
        for tree, env in trees.items():
            res[tree] = measure(cmd, env, args.cold_repeats, args.repeats)
            (cpu, wall), warm = res[tree]
            print(f"| `{' '.join(cmd[2:])}` | {tree} | {cpu:.1f} | {wall:.1f} | {warm:.2f} |",
                  flush=True)
        if len(res) == 2:
            print(f"| | current / baseline | {res['current'][0][0] / res['baseline'][0][0]:.2f} "
                  f"| | {res['current'][1] / res['baseline'][1]:.2f} |")


if __name__ == "__main__":
    main()
