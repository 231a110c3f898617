"""integrate_batch: equal to individual integrate calls, sweeps, bad input, JAX stays optional."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import odeprune as op

ALPHA = 60.0
SAVE_AT = np.concatenate([[0.0], np.geomspace(0.01, ALPHA, 40)])


@pytest.fixture(scope="module")
def states():
    return [op.OrderParams.random(500, 6, 2, v_star=4.0, seed=seed) for seed in range(4)]


def _same(curve, other):
    for name in ("alpha", "eg", "Q", "R", "v"):
        np.testing.assert_array_equal(getattr(curve, name), getattr(other, name))


def test_numba_batch_bit_identical_to_integrate(states):
    eta = np.array([0.3, 0.5, 0.7, 0.5])
    sigma = np.array([0.0, 0.25, 0.0, 0.1])
    batch = op.integrate_batch(states, eta=eta, alpha_max=ALPHA, save_at=SAVE_AT, sigma=sigma,
                               n_workers=2)
    assert len(batch) == len(states) and batch.ok.all()
    for j, s in enumerate(states):
        single = op.integrate(s, eta[j], ALPHA, save_at=SAVE_AT, sigma=sigma[j])
        _same(batch[j], single)
    assert batch.eg.shape == (4, SAVE_AT.size)
    assert batch.Q.shape == (4, SAVE_AT.size, 6, 6) and batch.R.shape == (4, SAVE_AT.size, 6, 2)
    np.testing.assert_array_equal(batch.eta, eta)
    np.testing.assert_array_equal(batch.eta_v, eta)  # eta_v defaults to eta, member by member


def test_sequential_and_executor_agree(states):
    kw = dict(eta=0.5, alpha_max=ALPHA, save_at=SAVE_AT, eta_v=0.2, train_second_layer=True)
    seq = op.integrate_batch(states, n_workers=1, **kw)
    with ThreadPoolExecutor(max_workers=3) as pool:
        ext = op.integrate_batch(states, executor=pool, **kw)
    for a, b in zip(seq, ext):
        _same(a, b)
    assert seq.metadata["n_workers"] == 1 and ext.metadata["executor"] == "ThreadPoolExecutor"


def test_eta_sweep_is_a_time_rescaling_under_gradient_flow(states):
    """Gradient flow with eta_v = eta is dy/dalpha = eta F(y): a sweep over eta from one state
    gives one curve on rescaled time axes, eps_g(alpha; eta) = eps_g(eta * alpha; 1)."""
    etas = np.array([1.0, 0.5, 0.25])
    t = np.geomspace(0.1, 10.0, 12)
    save_at = np.unique(np.concatenate([[0.0], t, 2 * t, 4 * t]))
    batch = op.integrate_batch([states[0]] * 3, eta=etas, alpha_max=40.0, save_at=save_at,
                               gradient_flow=True, rtol=1e-10, atol=1e-13)
    at = {a: i for i, a in enumerate(batch.alpha)}
    for j, eta in enumerate(etas):
        idx = [at[x / eta] for x in t]
        np.testing.assert_allclose(batch.eg[j, idx], batch.eg[0, [at[x] for x in t]], rtol=1e-7)
        assert batch[j].metadata["eta"] == eta


def test_bad_input(states):
    other = op.OrderParams.random(500, 5, 2, v_star=4.0, seed=0)
    with pytest.raises(ValueError, match="same K and M"):
        op.integrate_batch([states[0], other], eta=0.5, alpha_max=1.0)
    with pytest.raises(ValueError, match=r"eta must be a scalar or have one entry per state"):
        op.integrate_batch(states, eta=[0.5, 0.5], alpha_max=1.0)
    with pytest.raises(ValueError, match=r"sigma must be a scalar or have one entry"):
        op.integrate_batch(states, eta=0.5, sigma=np.zeros(5), alpha_max=1.0)
    with pytest.raises(ValueError, match=r"eta\[1\]"):
        op.integrate_batch(states, eta=[0.5, -1.0, 0.5, 0.5], alpha_max=1.0)
    with pytest.raises(ValueError, match="empty"):
        op.integrate_batch([], eta=0.5, alpha_max=1.0)
    with pytest.raises(ValueError, match="OrderParams"):
        op.integrate_batch([states[0], "x"], eta=0.5, alpha_max=1.0)
    with pytest.raises(ValueError, match="backend"):
        op.integrate_batch(states, eta=0.5, alpha_max=1.0, backend="torch")
    with pytest.raises(ValueError, match="n_workers"):
        op.integrate_batch(states, eta=0.5, alpha_max=1.0, n_workers=0)
    with pytest.raises(ValueError, match="errors"):
        op.integrate_batch(states, eta=0.5, alpha_max=1.0, errors="ignore")
    with pytest.raises(ValueError, match="alpha_max"):
        op.integrate_batch(states, eta=0.5, alpha_max=-1.0)


def test_divergent_member_kept_or_raised(states):
    eta = [0.5, 20.0]
    kw = dict(alpha_max=10.0, activation="linear", train_second_layer=False)
    states = [s.replace(activation="linear") for s in states]
    batch = op.integrate_batch(states[:2], eta=eta, errors="keep", **kw)
    assert list(batch.ok) == [True, False]
    assert isinstance(batch.errors[1], op.DivergenceError) and batch.errors[0] is None
    assert np.all(np.isnan(batch.eg[1])) and np.all(np.isfinite(batch.eg[0]))
    with pytest.raises(op.DivergenceError, match="batch member 1"):
        op.integrate_batch(states[:2], eta=eta, **kw)


def test_jax_batch_matches_numba(states):
    pytest.importorskip("jax")
    pytest.importorskip("diffrax")
    eta = np.array([0.3, 0.5, 0.7, 0.5])
    sigma = np.array([0.0, 0.25, 0.0, 0.1])
    kw = dict(eta=eta, alpha_max=ALPHA, save_at=SAVE_AT, sigma=sigma, rtol=1e-10, atol=1e-13)
    jb = op.integrate_batch(states, backend="jax", **kw)
    nb = op.integrate_batch(states, **kw)
    np.testing.assert_allclose(jb.eg, nb.eg, rtol=1e-6)
    np.testing.assert_allclose(jb.R, nb.R, rtol=1e-6, atol=1e-8)
    assert all(c.metadata["backend"] == "jax" for c in jb)
    lockstep = jb[0].metadata["lockstep_steps"]
    assert lockstep == max(c.metadata["num_steps"] for c in jb)
    # chunks of 2: same numbers within the tolerance, each chunk its own lockstep count
    jc = op.integrate_batch(states, backend="jax", chunk_size=2, **kw)
    np.testing.assert_allclose(jc.eg, nb.eg, rtol=1e-6)
    with pytest.raises(ValueError, match="executor"):
        op.integrate_batch(states, backend="jax", executor=ThreadPoolExecutor(1), **kw)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def test_import_does_not_import_jax():
    code = (
        "import sys, odeprune\n"
        "s = odeprune.OrderParams.random(50, 2, 1, v_star=1.0, seed=0)\n"
        "odeprune.integrate(s, 0.5, 1.0)\n"
        "odeprune.integrate_batch([s, s], eta=[0.5, 0.3], alpha_max=1.0)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'diffrax',"
        " 'equinox'))\n"
        "assert not bad, bad\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr


def test_missing_jax_says_how_to_install():
    code = (
        "import sys\n"
        "sys.modules['jax'] = None  # as if JAX were not installed\n"
        "import odeprune\n"
        "s = odeprune.OrderParams.random(50, 2, 1, v_star=1.0, seed=0)\n"
        "try:\n"
        "    odeprune.integrate(s, 0.5, 1.0, backend='jax')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert 'pip install -e ".[jax]"' in proc.stdout
