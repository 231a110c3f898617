"""Hostile input, malformed files, interrupted runs (issue 6)."""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import odeprune
from odeprune import OrderParams
from odeprune._io import FORMAT_VERSION, read_npz, write_npz

# ------------------------------------------------------------------ random states


@st.composite
def psd_states(draw, max_K=5, max_M=3):
    K = draw(st.integers(1, max_K))
    M = draw(st.integers(1, max_M))
    L = K + M
    A = draw(arrays(np.float64, (L, L + 1), elements=st.floats(-2, 2)))
    C = A @ A.T / (L + 1)
    v = draw(arrays(np.float64, (K,), elements=st.floats(-4, 4)))
    v_star = draw(arrays(np.float64, (M,), elements=st.floats(-4, 4)))
    return OrderParams(Q=C[:K, :K], R=C[:K, K:], T=C[K:, K:], v=v, v_star=v_star)


@given(psd_states())
def test_valid_states_have_nonnegative_error_and_symmetric_Q(s):
    assert np.array_equal(s.Q, s.Q.T)
    assert s.eg() >= -1e-12 * max(1.0, float(np.sum(np.abs(s.v)) + np.sum(np.abs(s.v_star))) ** 2)
    assert np.isfinite(s.eg())


@given(psd_states(max_K=3, max_M=2), st.floats(0.05, 1.0))
def test_short_integration_keeps_a_valid_symmetric_state(s, eta):
    curve = odeprune.integrate(s, eta=eta, alpha_max=1.0, save_at=[0.5])
    assert np.array_equal(curve.Q, np.swapaxes(curve.Q, 1, 2))
    assert np.all(np.isfinite(curve.eg))
    assert curve.final.K == s.K  # building it validates the state (PSD) again


@given(psd_states(), st.floats(-3, 3), st.integers(0, 30))
def test_corrupted_states_raise_value_error_not_nan(s, shift, idx):
    """Perturb one entry of Q: either still a valid state, or a ValueError -- never NaN."""
    Q = np.array(s.Q)
    i, k = divmod(idx % (s.K * s.K), s.K)
    Q[i, k] += shift
    Q[k, i] = Q[i, k]
    try:
        t = s.replace(Q=Q)
    except ValueError as exc:
        assert str(exc)
        return
    assert np.isfinite(t.eg())


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_entries(bad):
    s = OrderParams.specialised(2, 2, 1.0)
    v = np.array(s.v)
    v[1] = bad
    with pytest.raises(ValueError, match="v contains a non-finite value"):
        s.replace(v=v)


# ------------------------------------------------------------------ files


def test_not_an_npz(tmp_path):
    p = tmp_path / "x.npz"
    p.write_text("hello")
    with pytest.raises(ValueError, match="not a readable odeprune result"):
        odeprune.load(p)


def test_npz_without_metadata(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, Q=np.eye(2))
    with pytest.raises(ValueError, match="has no metadata entry"):
        OrderParams.load(p)


def test_truncated_file(tmp_path):
    s = OrderParams.specialised(2, 2, 1.0)
    p = s.save(tmp_path / "s.npz")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable odeprune result"):
        OrderParams.load(p)


def test_newer_format_version(tmp_path):
    p = write_npz(tmp_path / "s.npz", "OrderParams", {"Q": np.eye(1)})
    with np.load(p) as d:
        arrays_ = {k: d[k] for k in d.files}
    meta = json.loads(str(arrays_.pop("metadata")))
    meta["format_version"] = FORMAT_VERSION + 1
    np.savez(p, metadata=np.array(json.dumps(meta)), **arrays_)
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}.*upgrade"):
        read_npz(p)


def test_wrong_kind_and_missing_arrays(tmp_path):
    curve = odeprune.integrate(OrderParams.random(50, 2, 1, seed=0), 0.5, 1.0)
    p = curve.save(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="holds a LearningCurve, expected SimulationResult"):
        read_npz(p, "SimulationResult")
    q = write_npz(tmp_path / "o.npz", "OrderParams", {"Q": np.eye(1)})
    with pytest.raises(ValueError, match="lacks array"):
        OrderParams.load(q)


def test_pickled_objects_are_refused(tmp_path):
    p = tmp_path / "evil.npz"
    np.savez(p, metadata=np.array(json.dumps({"kind": "OrderParams", "format_version": 1})),
             Q=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="not a readable odeprune result"):
        OrderParams.load(p)


def test_unwritable_output(tmp_path):
    s = OrderParams.specialised(1, 1, 1.0)
    with pytest.raises(ValueError, match="does not exist"):
        s.save(tmp_path / "missing" / "s.npz")
    with pytest.raises(ValueError, match="is a directory"):
        s.save(tmp_path)
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(ValueError, match="not writable"):
            s.save(ro / "s.npz")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    s = OrderParams.specialised(1, 2, 1.0)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        s.save(tmp_path / "s.npz")
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_file_one_line(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"PK\x03\x04garbage")
    proc = subprocess.run([sys.executable, "-m", "odeprune", "integrate", "--init", str(p)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not a readable odeprune result" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "odeprune", "--debug", "integrate", "--init",
                           str(p)], capture_output=True, text=True)
    assert "Traceback" in proc.stderr


# ------------------------------------------------------------------ kill and resume


def _kill_when(path, proc, timeout=120):
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            err = proc.stderr.read()
            proc.stderr.close()
            pytest.fail(f"run finished before a checkpoint appeared: {err}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            proc.wait()
            proc.stderr.close()
            pytest.fail("no checkpoint appeared")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


@pytest.mark.slow
def test_kill_and_resume_integrate_is_exact(tmp_path):
    args = ["integrate", "-q", "--K", "8", "--M", "3", "--alpha-max", "20000", "--sigma", "0.3",
            "--rtol", "1e-10", "--atol", "1e-12"]
    full = tmp_path / "full.npz"
    subprocess.run([sys.executable, "-m", "odeprune", *args, "--output", str(full)], check=True)
    out = tmp_path / "killed.npz"
    ckpt = tmp_path / "killed.ckpt.npz"
    proc = subprocess.Popen([sys.executable, "-m", "odeprune", *args, "--output", str(out)],
                            stderr=subprocess.PIPE, text=True)
    _kill_when(ckpt, proc)
    assert not out.exists()
    subprocess.run([sys.executable, "-m", "odeprune", *args, "--output", str(out), "--resume"],
                   check=True)
    a, b = odeprune.LearningCurve.load(full), odeprune.LearningCurve.load(out)
    for name in ("alpha", "eg", "Q", "R", "v"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not ckpt.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_kill_and_resume_simulate_is_exact(tmp_path):
    env = dict(os.environ, ODEPRUNE_CHECKPOINT_EVERY_S="0")
    args = ["simulate", "-q", "--N", "300", "--alpha-max", "60", "--sigma", "0.2", "--n-test",
            "100", "--seed", "3"]
    full = tmp_path / "full.npz"
    subprocess.run([sys.executable, "-m", "odeprune", *args, "--output", str(full)], check=True,
                   env=env)
    out = tmp_path / "killed.npz"
    ckpt = tmp_path / "killed.ckpt.npz"
    proc = subprocess.Popen([sys.executable, "-m", "odeprune", *args, "--output", str(out),
                             "--checkpoint", str(ckpt)], stderr=subprocess.PIPE, text=True,
                            env=env)
    _kill_when(ckpt, proc)
    assert not out.exists()
    subprocess.run([sys.executable, "-m", "odeprune", *args, "--output", str(out), "--checkpoint",
                    str(ckpt), "--resume"], check=True, env=env)
    a, b = odeprune.load(full), odeprune.load(out)
    for name in ("alpha", "eg", "Q", "R", "v", "eg_test", "w"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    with zipfile.ZipFile(out) as z:
        assert "metadata.npy" in z.namelist()
