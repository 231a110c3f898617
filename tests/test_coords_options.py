"""The coordinate law's options (issue 22): one split into the records for integrate_law and
particle_run, records passed whole, and the Heun kernels on tuples against a numpy twin."""

import numpy as np
import pytest

import odeprune
from odeprune.coords import CoordinateLaw, integrate_law
from odeprune.coords.particles import _correct, _moments, _predict, particle_run
from odeprune.options import Control, Dynamics, Solver


def _law(S=60, replicas=2):
    st = odeprune.OrderParams.random(100, 3, 2, v_star=1.0, seed=0)
    return CoordinateLaw.from_state(st, S=S, replicas=replicas, seed=0)


def test_records_passed_whole_give_the_flat_keywords_numbers():
    law = _law()
    flat = integrate_law(law, 0.4, 1.0, save_at=[0.5, 1.0], dt=0.1, seed=3, l1=0.02,
                         sigma=0.1, eta_v=0.3, progress=False)
    whole = integrate_law(law, None, 1.0, save_at=[0.5, 1.0], dt=0.1, seed=3,
                          dynamics=Dynamics(eta=0.4, l1=0.02, sigma=0.1, eta_v=0.3),
                          control=Control(progress=False))
    assert flat.method == whole.method == "particles"
    assert np.array_equal(flat.eg_replicas, whole.eg_replicas)
    assert np.array_equal(flat.final.w, whole.final.w)
    _, out = particle_run(law, None, 1.0, save_at=[0.5, 1.0], dt=0.1, seed=3,
                          dynamics=Dynamics(eta=0.4, l1=0.02, sigma=0.1, eta_v=0.3))
    assert np.array_equal(out["eg"], flat.eg_replicas)


def test_the_linear_engine_takes_the_ode_options_flat_or_as_a_solver():
    law = _law()
    a = integrate_law(law, 0.5, 1.0, save_at=[1.0], rtol=1e-9, atol=1e-12)
    b = integrate_law(law, 0.5, 1.0, save_at=[1.0], solver=Solver(rtol=1e-9, atol=1e-12))
    assert a.method == b.method == "linear"
    assert np.array_equal(a.eg_replicas, b.eg_replicas)
    # the per-class ODE of each replica is odeprune.integrate at these tolerances
    ref = odeprune.integrate(law.sparse_replica(0)[0], 0.5, 1.0, save_at=[1.0], rtol=1e-9,
                             atol=1e-12, track_initial=True)
    np.testing.assert_allclose(a.eg_replicas[0], ref.eg, rtol=1e-12)


def test_options_that_do_not_apply_are_refused_before_any_work():
    law = _law()
    with pytest.raises(ValueError, match=r"\['rtol'\] apply to method='linear' only"):
        integrate_law(law, 0.5, 1.0, method="particles", rtol=1e-9)
    with pytest.raises(ValueError, match="method and dt do not apply"):
        integrate_law(law, 0.5, 1.0, solver=Solver(method="bdf"))
    with pytest.raises(ValueError, match=r"\['eta'\] given beside dynamics="):
        integrate_law(law, 0.5, 1.0, dynamics=Dynamics(eta=0.5))
    with pytest.raises(TypeError, match="integrate_law.*etaa"):
        integrate_law(law, 0.5, 1.0, etaa=0.1)
    with pytest.raises(TypeError, match="particle_run.*rtol"):
        particle_run(law, 0.5, 1.0, rtol=1e-9)
    with pytest.raises(ValueError, match="chunk_steps and divergence_path"):
        particle_run(law, 0.5, 1.0, chunk_steps=10)


def _heun_twin(X, Y, m, wt, G1, G2, Bh, Z, h, decay, thresh):
    """One Heun step of the particles in plain numpy (the kernels' formulas)."""
    S, K = X.shape
    U = np.concatenate([X, Y], axis=1)
    Nz = np.where(m, (Z.reshape(S, K) @ Bh.T) * np.sqrt(h), 0.0)
    D1 = np.where(m, (U @ G1.T - decay * X) * h + Nz, 0.0)
    Xp = X + D1
    Up = np.concatenate([Xp, Y], axis=1)
    x = X + 0.5 * (D1 + Nz) + 0.5 * (Up @ G2.T - decay * Xp) * h
    if thresh > 0:
        x = np.sign(x) * np.maximum(np.abs(x) - thresh, 0.0)
    Xn = np.where(m, x, X)
    Un = np.concatenate([Xn, Y], axis=1)
    return Xp, (Up * wt[:, None]).T @ Up, Xn, (Un * wt[:, None]).T @ Un


@pytest.mark.parametrize("thresh", [0.0, 0.05])
def test_heun_kernels_against_a_numpy_twin(thresh):
    rng = np.random.default_rng(0)
    S, K, M = 40, 3, 2
    X, Y = rng.normal(size=(S, K)), rng.normal(size=(S, M))
    m = rng.random((S, K)) < 0.7
    wt = rng.random(S) / S
    G1, G2 = rng.normal(size=(K, K + M)), rng.normal(size=(K, K + M))
    Bh, Z, h, decay = rng.normal(size=(K, K)), rng.normal(size=S * K), 0.05, 0.1
    Xp_ref, Cp_ref, X_ref, C_ref = _heun_twin(X, Y, m, wt, G1, G2, Bh, Z, h, decay, thresh)
    Xk = X.copy()
    W = (np.empty((S, K)), np.empty((S, K)), np.empty((S, K)), np.empty((K + M, K + M)))
    _predict((Xk, Y, m, wt), G1, Bh, Z, h, decay, W)
    np.testing.assert_allclose(W[2], Xp_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(W[3], Cp_ref, rtol=1e-12, atol=1e-14)
    _correct((Xk, Y, m, wt), G2, h, decay, thresh, W)
    np.testing.assert_allclose(Xk, X_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(W[3], C_ref, rtol=1e-12, atol=1e-14)
    C = np.empty((K + M, K + M))
    _moments(Xk, Y, wt, C)
    np.testing.assert_allclose(C, C_ref, rtol=1e-12, atol=1e-14)
