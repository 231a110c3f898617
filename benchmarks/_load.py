"""A background load for the benchmarks that measure behaviour on a busy machine: ``n`` processes
spinning ``while True: pass``, stopped (and reaped) when the block ends."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager


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
