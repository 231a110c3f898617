"""Shared pieces of the benchmarks that run processes: a background load for those that measure
behaviour on a busy machine (``n`` processes spinning ``while True: pass``, stopped and reaped
when the block ends), and how a child process is pointed at one tree's ``odeprune``."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager

PY = sys.executable
#: this checkout (its odeprune is the "current" one) and a directory holding no package (a child
#: run from the checkout would import the checkout's odeprune before PYTHONPATH's)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEUTRAL = tempfile.gettempdir()


def _with_path(first, env=None):
    """``env`` (default: this process's) with the tree ``first`` first on ``PYTHONPATH``."""
    env = dict(os.environ if env is None else env)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(first)] + rest)
    return env


@contextmanager
def spinners(n: int):
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
