"""Issue 27, item 3: what a short ``odeprune integrate`` costs as a whole process.

Each case runs in a fresh process (min of ``--repeats``, interleaved); CPU is the child's
user + system time (``resource.getrusage(RUSAGE_CHILDREN)``), wall is ``time.perf_counter``.
``--cold`` adds the first run with an empty numba cache (``NUMBA_CACHE_DIR`` = a new temporary
directory): the compilation of every kernel the command uses. ``--spinners N`` runs it all
next to N busy processes.

    python benchmarks/bench_startup.py [--repeats 5] [--cold] [--spinners N] [--baseline-tree DIR]
                                       [--bytecode-cache]

``--baseline-tree DIR``: also ``odeprune integrate`` with ``DIR`` (an older copy of the package)
first on ``PYTHONPATH``, interleaved with the others, and the ratio current / baseline.

``--bytecode-cache``: the children write and read their bytecode in a temporary
``PYTHONPYCACHEPREFIX`` (``PYTHONDONTWRITEBYTECODE`` removed), as an installed package's modules
are read from their ``.pyc``. Without it the children inherit this environment: where
``PYTHONDONTWRITEBYTECODE`` is set and a source tree has no ``__pycache__`` (this project's
development machines), every run compiles odeprune's modules from source (about 0.06 s).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time

from _load import NEUTRAL, PY, ROOT, _with_path, spinners  # benchmarks/_load.py, beside this script

MPL = ("import numpy as np\nfrom matplotlib.figure import Figure\n"
       "fig = Figure(figsize=(5, 3.6)); ax = fig.subplots()\n"
       "x = np.geomspace(0.01, 1000, 200); ax.plot(x, 1 / x, label='a')\n"
       "ax.set_xscale('log'); ax.set_yscale('log'); ax.legend()\n"
       "fig.savefig({path!r}, dpi=150, bbox_inches='tight')\n")


def _with_bytecode_cache(prefix):
    """``_with_path`` for children that keep their bytecode under ``prefix``."""
    def env_for(first, env=None):
        env = _with_path(first, env)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = prefix
        return env
    return env_for


NUMBA = "import numba\n@numba.njit(cache=True)\ndef f(x):\n    return x + 1\nf(1)\n"


def _script(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def cases(tmp):
    return {
        "python -c pass": [PY, "-c", "pass"],
        "import numpy": [PY, "-c", "import numpy"],
        "import numba": [PY, "-c", "import numba"],
        "numba: import + first cached dispatch": [PY, _script(tmp, "nb.py", NUMBA)],
        "odeprune integrate": [PY, "-m", "odeprune", "integrate"],
        "odeprune integrate --plot": [PY, "-m", "odeprune", "integrate", "--plot",
                                      os.path.join(tmp, "c.png")],
        "matplotlib alone (numpy + Figure + savefig)": [
            PY, "-c", MPL.format(path=os.path.join(tmp, "m.png"))],
    }


def run(cmd, env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.perf_counter()
    # from a neutral directory: ``python -m`` puts the working directory first on sys.path,
    # ahead of PYTHONPATH, so a run from a source tree would import that tree for every case
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=NEUTRAL)
    wall = time.perf_counter() - w0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cold", action="store_true", help="also the first run on an empty cache")
    ap.add_argument("--spinners", type=int, default=0)
    ap.add_argument("--baseline-tree", default=None,
                    help="a directory holding an older odeprune package to compare against")
    ap.add_argument("--bytecode-cache", action="store_true",
                    help="children keep their bytecode (a temporary PYTHONPYCACHEPREFIX)")
    args = ap.parse_args()
    with spinners(args.spinners):
        with tempfile.TemporaryDirectory() as tmp:
            # the environment of a child, with a tree first on PYTHONPATH
            env_for = (_with_bytecode_cache(os.path.join(tmp, "pycache")) if args.bytecode_cache
                       else _with_path)
            todo = cases(tmp)
            envs = {name: env_for(ROOT) for name in todo}
            if args.baseline_tree:
                todo["odeprune integrate (baseline tree)"] = todo["odeprune integrate"]
                envs["odeprune integrate (baseline tree)"] = env_for(args.baseline_tree)
            for name, cmd in todo.items():  # warm the numba cache and the OS file cache
                run(cmd, envs[name])
            best = {name: [float("inf")] * 2 for name in todo}
            for _ in range(args.repeats):
                for name, cmd in todo.items():
                    cpu, wall = run(cmd, envs[name])
                    best[name] = [min(best[name][0], cpu), min(best[name][1], wall)]
            load = open("/proc/loadavg").read().split()[:4] if os.path.exists(
                "/proc/loadavg") else "?"
            pyc = ("bytecode cached (--bytecode-cache)" if args.bytecode_cache else
                   "no bytecode written (PYTHONDONTWRITEBYTECODE)"
                   if os.environ.get("PYTHONDONTWRITEBYTECODE") else "bytecode as the environment")
            print(f"warm cache, min of {args.repeats}; {args.spinners} spinners; {pyc}; "
                  f"load avg / runnable: {' '.join(load)}")
            print("| process | CPU s | wall s |\n| --- | --- | --- |")
            for name, (cpu, wall) in best.items():
                print(f"| {name} | {cpu:.2f} | {wall:.2f} |")
            plot = best["odeprune integrate --plot"][0] - best["odeprune integrate"][0]
            mpl = best["matplotlib alone (numpy + Figure + savefig)"][0] - best["import numpy"][0]
            if args.baseline_tree:
                b, c = best["odeprune integrate (baseline tree)"][0], best["odeprune integrate"][0]
                print(f"odeprune integrate: current / baseline CPU {c / b:.2f} ({c:.2f} / {b:.2f} s)")
            print(f"--plot adds {plot:.2f} s of CPU; matplotlib itself (over numpy) "
                  f"{mpl:.2f} s: ratio {plot / mpl:.2f}")
            if args.cold:
                with tempfile.TemporaryDirectory() as cache:
                    env = env_for(ROOT, dict(os.environ, NUMBA_CACHE_DIR=cache))
                    cpu, wall = run(todo["odeprune integrate"], env)
                    cpu2, wall2 = run(todo["odeprune integrate"], env)
                print(f"cold cache (empty NUMBA_CACHE_DIR): odeprune integrate {cpu:.1f} s CPU,"
                      f" {wall:.1f} s wall; the next run {cpu2:.2f} s CPU")


if __name__ == "__main__":
    main()
