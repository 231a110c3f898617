"""Issue 27, items 1 and 3: threads that never cost much more than serial, and start-up.

The default (``threads=None``) threads the I4 sum of K >= 15 only on idle cores, decided again
before every chunk of steps; whatever it decides, the numbers are those of the serial sum, bit
for bit.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time

import numba
import numpy as np
import pytest

from odeprune.ode import dynamics
from odeprune.ode.batch import integrate_batch
from odeprune.state import OrderParams

K15 = OrderParams.random(N=300, K=15, M=2, v_star=2.0, seed=3)
RUN = dict(eta=0.5, alpha_max=20.0, sigma=0.1, progress=False)


def _same(a, b):
    for name in ("eg", "Q", "R", "v"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_threads_give_the_serial_numbers_bit_for_bit_for_any_count_and_switching(monkeypatch):
    serial = dynamics.integrate(K15, threads=False, chunk_steps=7, **RUN)
    before = numba.get_num_threads()
    try:
        for n in sorted({1, before}):
            numba.set_num_threads(n)
            _same(dynamics.integrate(K15, threads=True, chunk_steps=7, **RUN), serial)
    finally:
        numba.set_num_threads(before)
    # the default decides per chunk (here: alternating threaded and serial chunks)
    decisions = itertools.cycle([before, 1, 2, 1])
    seen = []

    def idle(limit):
        seen.append(min(limit, next(decisions)))
        return seen[-1]

    monkeypatch.setattr(dynamics, "idle_threads", idle)
    switched = dynamics.integrate(K15, chunk_steps=7, **RUN)
    _same(switched, serial)
    assert len(seen) > 4  # it did decide again, chunk after chunk
    assert numba.get_num_threads() == before  # the caller's thread count is restored


def test_default_below_threaded_k_never_measures(monkeypatch):
    def fail(limit):
        raise AssertionError("measured idle cores for K < THREADED_K")

    monkeypatch.setattr(dynamics, "idle_threads", fail)
    small = OrderParams.random(N=300, K=4, M=2, v_star=2.0, seed=0)
    dynamics.integrate(small, 0.5, 5.0, progress=False)


def test_idle_threads_stays_within_its_bounds():
    assert dynamics.idle_threads(1) == 1
    for limit in (2, 3, 64):
        assert 1 <= dynamics.idle_threads(limit) <= limit


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="needs /proc (Linux)")
def test_idle_threads_sees_cores_taken_by_other_processes():
    """With every usable core running a busy process, one curve gets one thread."""
    cores = dynamics._usable_cores()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(cores)]
    try:
        deadline = time.monotonic() + 10.0
        seen = []
        while time.monotonic() < deadline:  # until the spinners run (they start in ~0.05 s)
            seen.append(dynamics.idle_threads(cores))
            if seen[-1] == 1 and len(seen) > 3 and seen[-4:] == [1] * 4:
                break
            time.sleep(0.05)
        assert seen[-4:] == [1] * 4, seen
    finally:
        for proc in spinners:
            proc.kill()
        for proc in spinners:
            proc.wait()


def test_batch_members_in_threads_use_the_serial_sum():
    states = [OrderParams.random(N=300, K=15, M=2, v_star=2.0, seed=s) for s in (0, 1)]
    common = dict(eta=0.5, alpha_max=5.0, progress=False)
    pooled = integrate_batch(states, n_workers=2, **common)
    for state, curve in zip(states, pooled.curves):
        _same(curve, dynamics.integrate(state, threads=False, **common))


def test_integrate_command_imports_only_what_it_needs(tmp_path):
    """``odeprune integrate`` (no plot) imports neither matplotlib nor scipy.integrate nor JAX."""
    code = ("import sys, json, io, contextlib\n"
            "from odeprune.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['integrate', '--alpha-max', '10']) == 0\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=tmp_path)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not {"matplotlib", "scipy.integrate", "scipy.special", "jax"} & loaded
