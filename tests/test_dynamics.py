"""The ODE right-hand side and the integrators (docs/theory.md §4), against independent computations."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.special import erf

import odeprune
from odeprune import DivergenceError, OrderParams
from odeprune.ode.dynamics import rhs_state
from odeprune.ode.rhs import pack, rhs, unpack


def _eg_numpy(Q, R, T, v, v_star, act="erf"):
    """eg from docs/theory.md §5 in plain numpy (erf: the paper's Eq. 5-8)."""
    C = np.block([[Q, R], [R.T, T]])
    a = np.concatenate([v, -v_star])
    if act == "linear":
        I2 = C
    else:
        d = np.sqrt(1 + np.diag(C))
        I2 = 2 / np.pi * np.arcsin(C / np.outer(d, d))
    return 0.5 * a @ I2 @ a


def _gradient_flow_numpy(s, eta, eta_v, act="erf", h=1e-6):
    """Gradient-flow ODEs from finite differences of eg(Q, R, v):

    dw_i/dalpha = -eta N d eg / d w_i, so with D_ik = d eg / d Q_ik (entries independent) and
    F_in = d eg / d R_in:  dR = -eta [(D + D^T) R + F T],  dQ = -eta [G + G^T] with
    G = (D + D^T) Q + F R^T, and dv = -eta_v d eg / d v.
    """
    Q, R, T, v, vs = (np.array(x, dtype=float) for x in (s.Q, s.R, s.T, s.v, s.v_star))
    K, M = R.shape

    def eg(Q_, R_, v_):
        return _eg_numpy(Q_, R_, T, v_, vs, act)

    D = np.zeros((K, K))
    for i in range(K):
        for k in range(K):
            E = np.zeros((K, K))
            E[i, k] = h
            D[i, k] = (eg(Q + E, R, v) - eg(Q - E, R, v)) / (2 * h)
    F = np.zeros((K, M))
    for i in range(K):
        for n in range(M):
            E = np.zeros((K, M))
            E[i, n] = h
            F[i, n] = (eg(Q, R + E, v) - eg(Q, R - E, v)) / (2 * h)
    dv = np.zeros(K)
    for i in range(K):
        e = np.zeros(K)
        e[i] = h
        dv[i] = (eg(Q, R, v + e) - eg(Q, R, v - e)) / (2 * h)
    S = D + D.T
    dR = -eta * (S @ R + F @ T)
    G = S @ Q + F @ R.T
    dQ = -eta * (G + G.T)
    return dQ, dR, -eta_v * dv


@pytest.mark.parametrize("act", ["erf", "linear"])
def test_first_order_terms_are_the_gradient_of_eg(act):
    s = OrderParams.random(80, 4, 3, v_star=[2.0, -1.0, 1.5], seed=7).replace(activation=act)
    dQ, dR, dv = rhs_state(s, eta=0.7, eta_v=0.3, activation=act, gradient_flow=True)
    eQ, eR, ev = _gradient_flow_numpy(s, 0.7, 0.3, act)
    np.testing.assert_allclose(dQ, eQ, atol=1e-7)  # central differences: O(h^2) + round-off/h
    np.testing.assert_allclose(dR, eR, atol=1e-7)
    np.testing.assert_allclose(dv, ev, atol=1e-7)


def test_second_order_terms_match_monte_carlo():
    # eta^2 v_i v_k E[g'(l_i) g'(l_k) (Delta^2)] with Delta = sum_c a_c g(c) + sigma zeta
    s = OrderParams.random(60, 3, 2, v_star=[1.5, -2.0], seed=3)
    eta, sigma = 0.6, 0.4
    full = rhs_state(s, eta=eta, sigma=sigma)[0]
    first = rhs_state(s, eta=eta, gradient_flow=True)[0]
    second = full - first
    rng = np.random.default_rng(1)
    C = s.covariance()
    x = rng.multivariate_normal(np.zeros(C.shape[0]), C, size=2_000_000, method="cholesky")
    a = s.signed_weights()
    delta2 = (erf(x / np.sqrt(2)) @ a) ** 2 + sigma**2
    gp = np.sqrt(2 / np.pi) * np.exp(-x[:, :3] ** 2 / 2)
    for i in range(3):
        for k in range(i, 3):
            samples = eta**2 * s.v[i] * s.v[k] * gp[:, i] * gp[:, k] * delta2
            se = samples.std(ddof=1) / np.sqrt(samples.size)
            assert abs(samples.mean() - second[i, k]) < 5 * se, (i, k)


def test_fast_erf_path_equals_generic_path(rng):
    for K, M in [(1, 1), (3, 2), (7, 4)]:
        s = OrderParams.random(40, K, M, v_star=2.0, seed=int(rng.integers(1000)))
        y = pack(s.Q, s.R, s.v)
        args = (K, M, s.T, s.v_star, 0.5, 0.3, 0.2)
        fast = rhs(y, *args, act=0, fast=True)
        generic = rhs(y, *args, act=0, fast=False)
        np.testing.assert_allclose(fast, generic, rtol=1e-13, atol=1e-14)


def test_fixed_point_teacher_equals_student():
    # K = M, Q = R = T, v = v*: the student is the teacher (eg = 0, rhs = 0 without noise)
    T = np.array([[1.0, 0.3], [0.3, 0.8]])
    s = OrderParams(Q=T, R=T, T=T, v=[1.0, -2.0], v_star=[1.0, -2.0])
    assert s.eg() == pytest.approx(0, abs=1e-14)
    for part in rhs_state(s, eta=0.5):
        np.testing.assert_allclose(part, 0, atol=1e-14)


def test_frozen_second_layer_and_symmetry():
    s = OrderParams.random(100, 5, 2, v_star=3.0, seed=0)
    dQ, dR, dv = rhs_state(s, eta=0.5, train_second_layer=False)
    assert np.all(dv == 0)
    np.testing.assert_array_equal(dQ, dQ.T)
    curve = odeprune.integrate(s, 0.5, 10, train_second_layer=False)
    np.testing.assert_array_equal(curve.v, np.broadcast_to(s.v, curve.v.shape))
    np.testing.assert_array_equal(curve.Q, np.swapaxes(curve.Q, 1, 2))


def test_pack_unpack_roundtrip(rng):
    s = OrderParams.random(30, 4, 3, seed=1)
    Q, R, v = unpack(pack(s.Q, s.R, s.v), 4, 3)
    np.testing.assert_array_equal(Q, s.Q)
    np.testing.assert_array_equal(R, s.R)
    np.testing.assert_array_equal(v, s.v)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dopri5", "auto"])
@pytest.mark.parametrize("sigma", [0.0, 0.25])
def test_accuracy_against_independent_integrator(sigma, method):
    """Default tolerances vs scipy's DOP853 at rtol=1e-13: eg within 1e-6 relative on [0, 1000];
    the state within rtol=1e-6, atol=1e-8 for dopri5; for "auto" (implicit from alpha ~ 24 on)
    within 3e-7 absolute (BDF's global error, measured 1.9e-7: docs/speed.md)."""
    s = OrderParams.random(500, 6, 2, v_star=4.0, seed=0)
    curve = odeprune.integrate(s, eta=0.5, alpha_max=1000, sigma=sigma, method=method)
    y0 = pack(s.Q, s.R, s.v)

    def fun(t, y):
        return rhs(y, 6, 2, s.T, s.v_star, 0.5, 0.5, sigma, act=0, fast=False)

    ref = solve_ivp(fun, (0, 1000), y0, method="DOP853", rtol=1e-13, atol=1e-15,
                    t_eval=curve.alpha)
    assert ref.success
    Q, R, v = unpack(ref.y.T, 6, 2)
    eg_ref = np.array([_eg_numpy(Q[j], R[j], s.T, v[j], s.v_star) for j in range(len(Q))])
    np.testing.assert_allclose(curve.eg, eg_ref, rtol=1e-6)
    state_ref = np.concatenate([Q.reshape(len(Q), -1), R.reshape(len(Q), -1), v], axis=1)
    state = np.concatenate([curve.Q.reshape(len(Q), -1), curve.R.reshape(len(Q), -1), curve.v],
                           axis=1)
    if method == "dopri5":
        np.testing.assert_allclose(state, state_ref, rtol=1e-6, atol=1e-8)
    else:
        assert curve.metadata["final_phase"] == "implicit"
        np.testing.assert_allclose(state, state_ref, rtol=0, atol=3e-7)


def test_error_scales_with_tolerance():
    s = OrderParams.random(500, 4, 2, v_star=2.0, seed=2)
    ref = odeprune.integrate(s, 0.5, 50, rtol=1e-12, atol=1e-14)
    errs = []
    for rtol in (1e-5, 1e-7, 1e-9):
        c = odeprune.integrate(s, 0.5, 50, save_at=ref.alpha, rtol=rtol, atol=rtol * 1e-3)
        errs.append(np.max(np.abs(c.eg - ref.eg) / ref.eg))
    # scipy-style check: error / tolerance bounded, and it falls as the tolerance does
    assert all(e < 50 * r for e, r in zip(errs, (1e-5, 1e-7, 1e-9)))
    assert errs[0] > errs[1] > errs[2]


@pytest.mark.parametrize("method, order", [("euler", 1), ("rk4", 4)])
def test_fixed_step_order(method, order):
    s = OrderParams.random(500, 3, 2, v_star=2.0, seed=5)
    ref = odeprune.integrate(s, 0.5, 2.0, save_at=[2.0], rtol=1e-13, atol=1e-15)
    dts = np.array([0.1, 0.05, 0.025]) if method == "rk4" else np.array([0.02, 0.01, 0.005])
    errs = [abs(odeprune.integrate(s, 0.5, 2.0, save_at=[2.0], method=method, dt=dt).eg[-1]
                - ref.eg[-1]) for dt in dts]
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.25, (slope, errs)


def test_save_at_and_final():
    s = OrderParams.random(100, 3, 1, seed=0)
    c = odeprune.integrate(s, 0.5, 20, save_at=[0, 1, 5])
    np.testing.assert_array_equal(c.alpha, [0, 1, 5, 20])
    assert c.initial == s
    assert c.at(5.0) == c.state(2)
    assert c.final.eg() == pytest.approx(c.eg[-1])
    with pytest.raises(ValueError, match="alpha=3.0 is not a saved time"):
        c.at(3.0)
    default = odeprune.integrate(s, 0.5, 20)
    assert default.alpha[0] == 0 and default.alpha[-1] == 20 and len(default) == 201
    assert np.all(np.diff(np.log(default.alpha[1:])) > 0)


def test_learning_curve_save_load(tmp_path):
    s = OrderParams.random(100, 3, 2, seed=0)
    c = odeprune.integrate(s, 0.5, 5, sigma=0.1)
    path = c.save(tmp_path / "curve.npz")
    with np.load(path) as data:
        # format 2 (issue 17): T and v_star are arrays, no longer inside the JSON metadata
        assert set(data.files) == {"alpha", "eg", "Q", "R", "v", "T", "v_star", "metadata"}
    back = odeprune.LearningCurve.load(path)
    for name in ("alpha", "eg", "Q", "R", "v", "T", "v_star"):
        np.testing.assert_array_equal(getattr(back, name), getattr(c, name))
    assert back.metadata["sigma"] == 0.1 and back.metadata["eta"] == 0.5
    assert OrderParams.load(path) == c.final
    assert isinstance(odeprune.load(path), odeprune.LearningCurve)


def test_divergence_reports_alpha_and_suggests_smaller_eta(tmp_path):
    # a linear network with a huge learning rate and a frozen second layer: the eta^2 terms run
    # away until the state is non-finite (with a trained v, v shrinks and the run stays finite
    # and stiff: it uses up max_steps, a budget, not a divergence; issue 26 item 5,
    # tests/test_hostile_numerics.py)
    s = OrderParams.random(100, 6, 2, v_star=4.0, seed=0).replace(activation="linear")
    with pytest.raises(DivergenceError, match=r"after alpha=.*try a smaller eta") as info:
        odeprune.integrate(s, eta=100.0, alpha_max=100, activation="linear", max_steps=20_000,
                           divergence_path=tmp_path / "last.npz", train_second_layer=False)
    err = info.value
    assert 0 <= err.alpha < 100
    assert err.last_state is not None and np.all(np.isfinite(err.last_state.Q))
    assert OrderParams.load(tmp_path / "last.npz") == err.last_state


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(eta=0), "eta=0 must be > 0"),
        (dict(eta=float("nan")), "eta=nan must be > 0"),
        (dict(alpha_max=-1), "alpha_max=-1 must be > 0"),
        (dict(sigma=-0.1), "sigma=-0.1 must be >= 0"),
        (dict(method="rk45"), "method='rk45' is unknown"),
        (dict(activation="tanh"), "activation='tanh' is unknown"),
        (dict(save_at=[1, 200]), "save_at contains 200.0 > alpha_max=10.0"),
        (dict(backend="torch"), "backend='torch' is unknown"),
    ],
)
def test_bad_arguments(kwargs, match):
    s = OrderParams.random(20, 2, 1, seed=0)
    args = dict(eta=0.5, alpha_max=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        odeprune.integrate(s, **args)


def test_interrupt_and_resume_is_exact(tmp_path, monkeypatch):
    import odeprune.ode.dynamics as dyn

    s = OrderParams.random(200, 4, 2, v_star=3.0, seed=1)
    # the explicit stepper's resume (the default "auto": tests/test_integrate_stiff.py)
    kwargs = dict(eta=0.5, alpha_max=300, sigma=0.1, chunk_steps=20, method="dopri5")
    full = odeprune.integrate(s, **kwargs)
    ckpt = tmp_path / "run.ckpt.npz"
    real = dyn._STEPPERS["dopri5"]
    calls = {"n": 0}

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setitem(dyn._STEPPERS, "dopri5", flaky)
    with pytest.raises(odeprune.OdepruneInterrupted, match="resume"):
        odeprune.integrate(s, checkpoint=ckpt, **kwargs)
    monkeypatch.setitem(dyn._STEPPERS, "dopri5", real)
    assert ckpt.exists()
    resumed = odeprune.integrate(s, checkpoint=ckpt, resume=True, **kwargs)
    for name in ("alpha", "eg", "Q", "R", "v"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(full, name))
    assert resumed.metadata["nfev"] == full.metadata["nfev"]
    assert not ckpt.exists()  # removed once the run completed
    with pytest.raises(ValueError, match="other parameters"):
        from odeprune import _io

        _io.write_npz(ckpt, "IntegrateCheckpoint", {"init": pack(s.Q, s.R, s.v)},
                      {"params": {"eta": 1.0}, "checkpoint_version": dyn.CHECKPOINT_VERSION})
        odeprune.integrate(s, checkpoint=ckpt, resume=True, **kwargs)


def test_jax_backend_rejects_numba_only_options(tmp_path):
    s = OrderParams.random(20, 2, 1, seed=0)
    with pytest.raises(ValueError, match="method='rk4' is not available with backend='jax'"):
        odeprune.integrate(s, 0.5, 1.0, method="rk4", backend="jax")
    with pytest.raises(ValueError, match="checkpoint/resume are not available"):
        odeprune.integrate(s, 0.5, 1.0, checkpoint=tmp_path / "c.npz", backend="jax")


def test_is_psd_matches_eigenvalues(rng):
    from odeprune.ode.explicit import is_psd

    for _ in range(200):
        L = int(rng.integers(1, 9))
        A = rng.normal(size=(L, L))
        C = A @ A.T - rng.uniform(0, 1.0) * np.eye(L) * rng.choice([0.0, 1.0])
        tol = 1e-8
        lam_min = np.linalg.eigvalsh(C)[0]
        scale = max(1.0, np.abs(C).max())
        if abs(lam_min / scale + tol) < 1e-9:
            continue  # too close to the boundary to call
        assert is_psd(C, tol, np.empty((L, L))) == (lam_min >= -tol * scale)
