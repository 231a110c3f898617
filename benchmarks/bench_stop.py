"""How fast a command stops: Ctrl-C or SIGTERM at random moments of its run.

Each try starts ``odeprune COMMAND`` in its own process group (output to a fresh temporary
directory), sends Ctrl-C to the group or SIGTERM to the process at a moment drawn uniformly in
the window, and measures the seconds until it exits. A try that has not stopped after
``--limit`` seconds is stopped with SIGABRT, and the Python stacks of every thread it prints
(``PYTHONFAULTHANDLER``) are shown: they say where the stop was lost.

    python benchmarks/bench_stop.py                                  # figure tickets, 20 tries
    python benchmarks/bench_stop.py --command "figure curves" --window 5 40 --tries 8

Run it on a warm numba cache (run the command once first): on a cold one a command finishes the
kernel it is compiling before it stops (docs/troubleshooting.md).
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_try(command: list[str], at: float, sig: int, limit: float) -> tuple[int | None, float,
                                                                           str]:
    """``(exit code, seconds from the signal to the exit, stderr)``; exit code None: it did
    not stop within ``limit`` seconds (then stderr ends with its threads' stacks)."""
    with tempfile.TemporaryDirectory(prefix="odeprune-stop-") as tmp:
        env = dict(os.environ, PYTHONFAULTHANDLER="1")
        proc = subprocess.Popen([sys.executable, "-m", "odeprune", *command, "-o",
                                 str(Path(tmp) / "out"), "-q"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True, cwd=tmp)
        try:
            time.sleep(at)
            if sig == signal.SIGINT:
                os.killpg(proc.pid, sig)  # a terminal's Ctrl-C reaches the whole group
            else:
                proc.send_signal(sig)  # a scheduler's SIGTERM reaches the process
            t0 = time.monotonic()
            try:
                err = proc.communicate(timeout=limit)[1]
                return proc.returncode, time.monotonic() - t0, err
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)
                err = proc.communicate()[1]
                return None, time.monotonic() - t0, err
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--command", default="figure tickets",
                    help="the odeprune command, without -o/-q (default: %(default)s)")
    ap.add_argument("--tries", type=int, default=20)
    ap.add_argument("--window", type=float, nargs=2, default=(2.0, 22.0), metavar=("FROM", "TO"),
                    help="seconds after the start in which the signal comes (default: 2 22)")
    ap.add_argument("--limit", type=float, default=20.0,
                    help="seconds a try may take to stop before it counts as lost")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    command = shlex.split(args.command)
    stops, lost = [], 0
    print(f"odeprune {args.command}: {args.tries} tries, signal at {args.window[0]:g}-"
          f"{args.window[1]:g} s, alternately SIGTERM and Ctrl-C")
    for i in range(args.tries):
        at = rng.uniform(*args.window)
        sig = signal.SIGTERM if i % 2 == 0 else signal.SIGINT
        code, seconds, err = one_try(command, at, sig, args.limit)
        name = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C "
        if code is None:
            lost += 1
            print(f"  {at:6.2f} s  {name}  NOT STOPPED after {args.limit:g} s; its stacks:")
            stacks = [ln for ln in err.splitlines()
                      if ln.startswith(("Thread", "Current thread", "  File"))]
            print("    " + "\n    ".join(stacks[:60]))
            continue
        stops.append(seconds)
        finished = " (had finished)" if code == 0 else ""
        print(f"  {at:6.2f} s  {name}  exit {code:3d}  stopped in {seconds:.2f} s{finished}")
    if stops:
        print(f"stopped: {len(stops)}/{args.tries}, slowest {max(stops):.2f} s, "
              f"median {sorted(stops)[len(stops) // 2]:.2f} s; not stopped: {lost}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
