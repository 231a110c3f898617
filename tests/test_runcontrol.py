"""Run control of long commands (issue 17, items 4-6, 12-14): Ctrl-C and SIGTERM leave a
checkpoint and a one-line hint (no traceback), chunks are sized by time so that any K can be
interrupted, bad chunking is refused, divergence messages name what happened, and fixed-step
methods take the same steps whatever the save times."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams
from odeprune.errors import DivergenceError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "odeprune", *args], cwd=kw.pop("cwd", ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_for_checkpoint(path, proc, timeout=120):
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None or time.time() - t0 > timeout:
            out, err = proc.communicate(timeout=5) if proc.poll() is not None else ("", "")
            pytest.fail(f"no checkpoint appeared (rc={proc.poll()}): {err[-2000:]}")
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_integrate_interrupt_leaves_checkpoint_and_hint(tmp_path, sig):
    out = tmp_path / "c.npz"
    # K=40: each step costs milliseconds, the run takes far longer than the test waits
    args = ["integrate", "--K", "40", "--M", "2", "--alpha-max", "2000", "-o", str(out), "-q"]
    proc = _cli(args)
    ckpt = tmp_path / "c.ckpt.npz"
    _wait_for_checkpoint(ckpt, proc)
    proc.send_signal(sig)
    t0 = time.time()
    _, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 30
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), err  # issue 26: 128 + 15
    assert "Traceback" not in err and "SystemError" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "--resume" in lines[0] and "checkpoint saved" in lines[0], err
    assert ckpt.exists() and not out.exists()


@pytest.mark.slow
def test_large_K_is_interruptible_within_seconds(tmp_path):
    # one chunk is sized by time (one step when a step is slow), so SIGINT is seen quickly
    out = tmp_path / "big.npz"
    proc = _cli(["integrate", "--K", "100", "--M", "2", "--alpha-max", "1", "-o", str(out),
                 "-q"])
    time.sleep(8.0)  # import + compile + a few steps
    if proc.poll() is not None:
        pytest.skip("the run finished before it could be interrupted")
    proc.send_signal(signal.SIGINT)
    t0 = time.time()
    _, err = proc.communicate(timeout=120)
    assert time.time() - t0 < 45, "interrupt not honoured within one step"
    assert proc.returncode == 130 and "Traceback" not in err, err


def test_chunk_steps_must_be_positive():
    s = OrderParams.random(50, 2, 1, seed=0)
    for bad in (0, -3, 1.5):
        with pytest.raises(ValueError, match="chunk_steps"):
            odeprune.integrate(s, 0.5, 1.0, chunk_steps=bad)


def test_chunking_does_not_change_the_numbers():
    s = OrderParams.random(200, 3, 2, v_star=3.0, seed=1)
    a = odeprune.integrate(s, 0.5, 200, chunk_steps=1)
    b = odeprune.integrate(s, 0.5, 200)
    np.testing.assert_array_equal(a.eg, b.eg)
    assert a.metadata["nfev"] == b.metadata["nfev"]


# ------------------------------------------------------------------------------ messages
@pytest.mark.parametrize("kw, match", [
    # rtol = atol = 1 diverged with the controller before issue 26 (which let the step grow
    # right after a rejection); with scipy's min(1, factor) cap it ends near the reference,
    # so the case of too loose tolerances is 0.1 now
    (dict(rtol=0.1, atol=0.1, eta=0.5), "tolerances rtol=0.1, atol=0.1 are too loose"),
    (dict(method="rk4", dt=500.0, eta=0.5), "fixed step dt=500"),
    (dict(sigma=1e6, eta=0.5), "noise term"),
])
def test_divergence_message_names_the_cause(kw, match):
    s = OrderParams.random(500, 6, 2, v_star=4.0, seed=0)  # the CLI's default network
    eta = kw.pop("eta")
    with pytest.raises(DivergenceError, match=match) as info:
        odeprune.integrate(s, eta, 1000.0, **kw)
    assert "eta is likely too large" not in str(info.value)


def test_overflowing_inputs_are_refused_before_work():
    s = OrderParams.random(50, 2, 1, v_star=1e200, seed=0)
    with pytest.raises(ValueError, match="overflows"):
        odeprune.integrate(s, 0.5, 10.0)


def test_specialised_ansatz_is_integrable_and_a_singular_start_is_explained():
    # the exact ansatz is a singular covariance (a fixed point with eps_g = 0); it integrates
    # (round-off moves it off the fixed point), and if a singular start ever loses PSD the
    # message says so rather than blaming eta
    from odeprune.ode.divergence import diagnosis
    from odeprune.sparse import SparseOrderParams

    s = OrderParams.specialised(2, 3, 4.0)
    assert np.isfinite(odeprune.integrate(s, 0.5, 100.0).eg[-1])
    params = dict(eta=0.5, method="dopri5", rtol=1e-7, atol=1e-10, sigma=0.0, dt=0.01,
                  alpha_max=100.0)
    msg = diagnosis(params, SparseOrderParams.from_dense(s), 100, not_psd=True, t_run=39.0)
    assert "singular" in msg and "specialised" in msg and "eta is likely too large" not in msg


def test_fixed_steps_do_not_depend_on_save_times():
    s = OrderParams.random(100, 3, 2, v_star=2.0, seed=3)
    for method in ("euler", "rk4"):
        a = odeprune.integrate(s, 0.5, 10.0, method=method, dt=0.5, save_at=[10.0])
        b = odeprune.integrate(s, 0.5, 10.0, method=method, dt=0.5,
                               save_at=[0.3, 1.1, 2.7, 10.0])
        np.testing.assert_array_equal(a.eg[-1], b.eg[-1])  # same grid, same final state
        assert a.metadata["n_accept"] == b.metadata["n_accept"] == 20


def test_fixed_step_interpolation_keeps_the_order():
    # RK4 outputs between grid points (cubic Hermite) converge at 4th order like the grid
    s = OrderParams.random(100, 3, 2, v_star=2.0, seed=3)
    ref = odeprune.integrate(s, 0.5, 3.0, save_at=[1.37], rtol=1e-12, atol=1e-14)
    errs = []
    for dt in (0.1, 0.05):
        c = odeprune.integrate(s, 0.5, 3.0, method="rk4", dt=dt, save_at=[1.37])
        errs.append(abs(c.eg[1] - ref.eg[1]))
    slope = np.log2(errs[0] / errs[1])
    assert slope > 3.5, (errs, slope)


def test_dormand_prince_tableau_is_scipys():
    from scipy.integrate import RK45

    from odeprune.ode import explicit as _solvers
    for name in ("A", "B", "E", "P"):
        np.testing.assert_allclose(getattr(_solvers.DOPRI5, name), getattr(RK45, name),
                                   rtol=1e-15, atol=1e-16)
    assert _solvers.DOPRI5.B_den == 1.0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_last_chunk_is_passed_on(sig):
    """A signal that came while a run was active only set its flag; when the run's last chunk
    was under way, nothing looked at the flag again and the signal was lost: ``odeprune figure
    tickets`` went on for minutes after Ctrl-C / SIGTERM landed in the last chunk of one of its
    many short simulations. The run now hands it to the handler in place before it."""
    from odeprune.ode.runcontrol import RunControl

    got = []
    old = signal.signal(sig, lambda s, f: got.append(s))
    try:
        with RunControl(1.0, "t", progress=False) as rc:
            signal.raise_signal(sig)  # during the run: the flag only
            assert got == [] and rc.interrupted is not None
        assert got == [sig]  # the run ended without stopping for it: passed on
        got.clear()
        with pytest.raises(RuntimeError):  # a run that stops (raises) has acted on it
            with RunControl(1.0, "t", progress=False):
                signal.raise_signal(sig)
                raise RuntimeError
        with RunControl(1.0, "t", progress=False):
            pass
        assert got == []
    finally:
        signal.signal(sig, old)


def test_a_simulation_stopped_in_its_last_chunk_stops_and_resumes(monkeypatch, tmp_path):
    """SIGTERM in the last chunk of ``simulate``: its loop ended without another look at the
    flag and the run went on as if nothing had come. It now stops as in any other chunk (the
    checkpoint holds the end), and the resumed run is the uninterrupted one, bit for bit."""
    from odeprune.errors import OdepruneInterrupted
    from odeprune.sim import run as simrun

    kw = dict(alpha_max=2.0, n_test=100, progress=False, seed=3)
    ref = odeprune.simulate(50, 2, 1, 0.5, **kw)
    advance = simrun.Run.advance

    def last_chunk_interrupted(self, max_steps):
        n = advance(self, max_steps)
        if self.done:
            signal.raise_signal(signal.SIGTERM)
        return n

    def reached_the_script(signum, frame):  # (not the default: it would end the test run)
        raise RuntimeError("the run did not stop for it; the script's handler got it")

    ck = tmp_path / "ck.npz"
    monkeypatch.setattr(simrun.Run, "advance", last_chunk_interrupted)
    old = signal.signal(signal.SIGTERM, reached_the_script)
    try:
        with pytest.raises(OdepruneInterrupted, match=r"\(SIGTERM\) at alpha=2;.*resume"):
            odeprune.simulate(50, 2, 1, 0.5, checkpoint=ck, **kw)
    finally:
        signal.signal(signal.SIGTERM, old)
    monkeypatch.setattr(simrun.Run, "advance", advance)
    back = odeprune.simulate(50, 2, 1, 0.5, checkpoint=ck, resume=True, **kw)
    for name in ("eg", "Q", "R", "v", "eg_test", "w"):
        assert np.array_equal(getattr(back, name), getattr(ref, name)), name
    assert not ck.exists()
