"""The stiff path (odeprune.ode.stiff): implicit methods on a linear stiff system with a closed-form
solution, the automatic explicit -> implicit switch on the order-parameter ODEs against a tight
independent reference (scipy's DOP853 at rtol 1e-13), tolerance-scaled errors, a cost budget,
and exact resume from a saved state; the compiled BDF against scipy's, its LU against numpy.

Python callables run through the :class:`Stepper` protocol (``run_stepper``); the compiled
problem through ``integrate`` (:class:`AutoDriver`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

import odeprune as op
from odeprune.ode import stiff as _stiff
from odeprune.ode.drivers import stiff_callables
from odeprune.ode.explicit import CHUNK, OK
from odeprune.ode.stiff import (
    Stepper,
    StiffProblem,
    SwitchRule,
    fd_jacobian,
    spectral_radius,
)


def run_stepper(f, y0, t_out, rtol=1e-7, atol=1e-10, method="auto", explicit_chunk=None,
                check=None, jac=None, **options):
    """``y' = f(y)`` from ``t_out[0]`` through ``t_out`` by the :class:`Stepper` protocol
    (``options``: the Stepper's own, or the fields of a :class:`SwitchRule`)."""
    t_out = np.asarray(t_out, dtype=float)
    y0 = np.asarray(y0, dtype=float)
    rule = {k: options.pop(k) for k in SwitchRule._fields if k in options}
    st = Stepper(StiffProblem(f, explicit_chunk, check, jac), t_out,
                 np.zeros((t_out.size, y0.size)), rtol, atol, method=method,
                 switch=SwitchRule(**rule), **options).start(float(t_out[0]), y0)
    while st.step_chunk() == CHUNK:
        pass
    return st


# ------------------------------------------------------------------ adapters to the compiled core
# (the only place that knows the signatures of the compiled right-hand side and stepper)
def order_param_problem(K=6, M=2, eta=0.5, sigma=0.0, seed=0):
    """``f(y)``, ``explicit_chunk``, ``y0`` and ``eg(Y)`` for OrderParams.random(500, K, M, 4)."""
    from odeprune.ode.explicit import Control
    from odeprune.ode.rhs import make_params, pack, unpack

    state = op.OrderParams.random(500, K, M, v_star=4.0, seed=seed)
    p = make_params(K, M, state.T, state.v_star, eta, eta, sigma)
    f = stiff_callables(p, Control(1e-7, 1e-10, 0.0, 1, 1e-9)).f

    def make_chunk(rtol, atol):
        return stiff_callables(p, Control(rtol, atol, 0.0, 1, 1e-9)).explicit_chunk

    def eg(Y):
        # erf generalisation error, Saad & Solla (1995): 1/2 sum_cd a_c a_d I2(c, d)
        Q, R, v = unpack(np.atleast_2d(Y), K, M)
        m = Q.shape[0]
        C = np.zeros((m, K + M, K + M))
        C[:, :K, :K], C[:, :K, K:], C[:, K:, :K], C[:, K:, K:] = Q, R, R.transpose(0, 2, 1), \
            state.T
        a = np.concatenate([v, -np.broadcast_to(state.v_star, (m, M))], axis=1)
        d = np.sqrt(1 + np.diagonal(C, axis1=1, axis2=2))
        I2 = (2 / np.pi) * np.arcsin(C / (d[:, :, None] * d[:, None, :]))
        return 0.5 * np.einsum("mc,mcd,md->m", a, I2, a)

    return f, make_chunk, pack(state.Q, state.R, state.v), eg


def save_at(alpha_max, n=60):
    return np.unique(np.concatenate([[0.0], np.geomspace(0.01, alpha_max, n)]))


_REF = {}


def reference_eg(alpha_max):
    """eps_g at save_at(alpha_max) by scipy's DOP853 at rtol 1e-13 (independent of our code)."""
    if alpha_max not in _REF:
        f, _, y0, eg = order_param_problem()
        t = save_at(alpha_max)
        sol = solve_ivp(lambda _, y: f(y), (0.0, alpha_max), y0, method="DOP853", t_eval=t,
                        rtol=1e-13, atol=1e-15)
        assert sol.success
        _REF[alpha_max] = eg(sol.y.T)
    return _REF[alpha_max]


def auto_run(alpha_max, rtol=1e-7, atol=1e-10, **kw):
    f, make_chunk, y0, eg = order_param_problem()
    sol = run_stepper(f, y0, save_at(alpha_max), rtol, atol, method=kw.pop("method", "auto"),
                      explicit_chunk=make_chunk(rtol, atol), **kw)
    assert sol.status == OK, sol.message
    return sol, eg(sol.Y_out)


# ------------------------------------------------------------------ a linear stiff system
def linear_problem(n=6, stiffness=1e5, seed=1):
    rng = np.random.default_rng(seed)
    V = np.linalg.qr(rng.standard_normal((n, n)))[0]
    lam = -np.geomspace(1.0, stiffness, n)
    A = V @ np.diag(lam) @ V.T
    y0 = rng.standard_normal(n)
    return A, y0


@pytest.mark.parametrize("method", ["radau", "bdf"])
def test_linear_stiff_error_converges_with_tolerance(method):
    A, y0 = linear_problem()
    t = np.array([0.0, 0.1, 3.0])
    exact = np.array([expm(A * ti) @ y0 for ti in t])
    err = [np.abs(run_stepper(lambda y: A @ y, y0, t, rtol, rtol * 1e-3, method=method).Y_out
                  - exact).max() for rtol in (1e-5, 1e-8)]
    assert err[1] < err[0] / 100, err


@pytest.mark.parametrize("method", ["radau", "bdf"])
@pytest.mark.parametrize("rtol", [1e-5, 1e-8])
def test_linear_stiff_system_tolerance_scaled(method, rtol):
    A, y0 = linear_problem()
    t = np.array([0.0, 1e-3, 0.1, 1.0, 3.0])
    atol = rtol * 1e-3
    sol = run_stepper(lambda y: A @ y, y0, t, rtol, atol, method=method, chunk_steps=20)
    assert sol.status == OK
    exact = np.array([expm(A * ti) @ y0 for ti in t])
    scaled = np.abs(sol.Y_out - exact) / (atol + rtol * np.abs(exact))
    # the controllers bound the local error per step by the tolerance: the global error is at
    # most their sum; Radau's is within a small multiple of the tolerance, BDF's (variable order,
    # lower-order error estimate) within ~1e2 at rtol=1e-8 (measured 98 on this problem)
    assert scaled.max() < (20 if method == "radau" else sol.n_accept), scaled.max()
    # stiff: hundreds of steps, not the ~3e5 / 3.3 ~ 1e5 an explicit method would need
    assert sol.n_accept < 2000


def test_fd_jacobian_and_spectral_radius_on_a_linear_map():
    A, y0 = linear_problem(stiffness=1e4)
    J = fd_jacobian(lambda y: A @ y, y0, A @ y0)
    np.testing.assert_allclose(J, A, rtol=0, atol=1e-6 * np.abs(A).max())
    rho, n_iter = spectral_radius(lambda y: A @ y, y0, A @ y0, max_iter=200, rel_tol=1e-6)
    np.testing.assert_allclose(rho, 1e4, rtol=1e-3)
    assert n_iter <= 200


def test_bad_arguments():
    with pytest.raises(ValueError, match="method='rk9' is unknown"):
        Stepper(lambda y: y, [0.0, 1.0], np.zeros((2, 1)), 1e-6, 1e-9, method="rk9")
    with pytest.raises(ValueError, match="needs explicit_chunk"):
        Stepper(lambda y: y, [0.0, 1.0], np.zeros((2, 1)), 1e-6, 1e-9, method="auto")


# ------------------------------------------------------------------ order-parameter ODEs
@pytest.mark.parametrize("alpha_max", [1e3, 1e4])
def test_auto_matches_tight_reference(alpha_max):
    ref = reference_eg(alpha_max)
    sol, eg = auto_run(alpha_max)
    assert np.isfinite(sol.t_switch)  # the long tail is integrated implicitly
    np.testing.assert_allclose(eg, ref, rtol=1e-6, atol=0)


def test_error_scales_with_tolerance():
    ref = reference_eg(1e3)
    errs = {}
    for rtol in (1e-6, 1e-8):
        _, eg = auto_run(1e3, rtol=rtol, atol=rtol * 1e-3)
        errs[rtol] = np.max(np.abs(eg / ref - 1))
        assert errs[rtol] < 10 * rtol, (rtol, errs[rtol])
    assert errs[1e-8] < errs[1e-6] / 10


def test_cost_budget_auto_vs_explicit():
    sol3, _ = auto_run(1e3)
    sol4, _ = auto_run(1e4)
    exp4, _ = auto_run(1e4, method="explicit")
    assert sol4.nfev <= 2 * sol3.nfev, (sol3.nfev, sol4.nfev)
    assert sol4.nfev <= exp4.nfev / 3, (sol4.nfev, exp4.nfev)
    assert exp4.njev == 0 and np.isnan(exp4.t_switch)


def test_short_run_stays_explicit():
    sol, _ = auto_run(5.0)
    assert np.isnan(sol.t_switch) and sol.njev == 0


def _stepper(Y, stiff_method, chunk_steps):
    f, make_chunk, _, _ = order_param_problem()
    return Stepper(StiffProblem(f, make_chunk(1e-7, 1e-10)), save_at(2e3), Y, 1e-7, 1e-10,
                   method="auto", stiff_method=stiff_method, chunk_steps=chunk_steps)


def _run_to_end(st):
    while st.step_chunk() == CHUNK:
        pass
    assert st.status == OK
    return st


@pytest.mark.parametrize("stiff_method", ["bdf", "radau"])
def test_resume_from_saved_state(tmp_path, stiff_method):
    y0 = order_param_problem()[2]
    t = save_at(2e3)
    Y_full = np.zeros((t.size, y0.size))
    st = _run_to_end(_stepper(Y_full, stiff_method, 40).start(0.0, y0))
    assert np.isfinite(st.t_switch)

    # interrupted after a few chunks in each phase, state through an .npz file, resumed
    for n_chunks in (1, 30):
        Y = np.zeros_like(Y_full)
        st1 = _stepper(Y, stiff_method, 40).start(0.0, y0)
        for _ in range(n_chunks):
            st1.step_chunk()
        assert st1.phase == (_stiff.EXPLICIT if n_chunks == 1 else _stiff.STIFF)
        np.savez(tmp_path / "ckpt.npz", Y_done=Y[:st1.i_out], **st1.get_state())
        saved = dict(np.load(tmp_path / "ckpt.npz"))
        Y2 = np.zeros_like(Y_full)
        Y2[:int(saved["i_out"])] = saved.pop("Y_done")
        st2 = _run_to_end(_stepper(Y2, stiff_method, 40).set_state(saved))
        if stiff_method == "bdf" or n_chunks == 1:  # BDF's whole state is saved: bit for bit
            np.testing.assert_array_equal(Y2, Y_full)
            assert (st2.nfev, st2.njev, st2.n_accept) == (st.nfev, st.njev, st.n_accept)
        else:  # Radau restarts its controller and Newton guess: within the tolerance
            np.testing.assert_allclose(Y2, Y_full, rtol=1e-6, atol=1e-9)


def test_numbers_do_not_depend_on_the_chunking():
    y0 = order_param_problem()[2]
    t = save_at(2e3)
    Ys = []
    for chunk_steps in (7, 40, 100_000):
        Y = np.zeros((t.size, y0.size))
        _run_to_end(_stepper(Y, "bdf", chunk_steps).start(0.0, y0))
        Ys.append(Y)
    np.testing.assert_array_equal(Ys[0], Ys[2])
    np.testing.assert_array_equal(Ys[1], Ys[2])


@pytest.mark.slow
def test_auto_matches_tight_reference_alpha_1e5():
    # the reference is explicit and stability-limited: ~2e6 evaluations
    ref = reference_eg(1e5)
    sol3, _ = auto_run(1e3)
    sol, eg = auto_run(1e5)
    np.testing.assert_allclose(eg, ref, rtol=1e-6, atol=0)
    assert sol.nfev <= 2 * sol3.nfev


def test_module_imports_scipy_only_when_stepping():
    assert "solve_ivp" not in vars(_stiff)


def test_resolved_eg_floor_of_a_quadratic_and_the_message():
    # eps_g = |y - y*|^2 / 2 near its minimum: gradient y - y*, floor = sum |y_j - y*_j| tol_j
    y_star = np.array([1.0, -2.0, 0.5])
    y = y_star + np.array([1e-4, -2e-4, 0.0])
    rtol, atol = 1e-7, 1e-10

    def eg(z):
        return 0.5 * float(np.sum((z - y_star) ** 2))

    floor = _stiff.resolved_eg_floor(eg, y, rtol, atol)
    expected = float(np.sum(np.abs(y - y_star) * (atol + rtol * np.abs(y))))
    np.testing.assert_allclose(floor, expected, rtol=1e-6)
    assert _stiff.eg_resolution_message(eg(y), floor, False) is None  # 1e-4 relative
    msg = _stiff.eg_resolution_message(1e-12, floor, False)
    assert msg is not None and "method='auto'" in msg
    assert _stiff.eg_resolution_message(1e-12, floor, True) is None


# ------------------------------------------------------------------ the compiled path
def test_lu_factor_and_solve_against_numpy():
    from odeprune.ode.bdf import lu_factor, lu_solve

    rng = np.random.default_rng(4)
    for n in (1, 5, 70):  # 70 crosses two column blocks
        A = rng.standard_normal((n, n))  # no diagonal dominance: pivoting is needed
        b = rng.standard_normal(n)
        LU, piv = A.copy(), np.zeros(n, dtype=np.int64)
        lu_factor(LU, piv)
        x = b.copy()
        lu_solve(LU, piv, x)
        np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-9, atol=1e-12)


def _compiled_problem(K=6, M=2):
    from odeprune.ode.explicit import Control
    from odeprune.ode.rhs import make_params, pack

    state = op.OrderParams.random(500, K, M, v_star=4.0, seed=0)
    p = make_params(K, M, state.T, state.v_star, 0.5, 0.5, 0.0)
    return p, pack(state.Q, state.R, state.v), Control(1e-7, 1e-10, 0.0, 1, 1e-9)


@pytest.mark.parametrize("fd", [False, True])
def test_compiled_bdf_takes_the_steps_of_scipys_bdf(fd):
    """The port of scipy's BDF (same Jacobian, same first step): the same accepted steps,
    Jacobians and LU factorisations, the same outputs up to rounding. Both Jacobians of the
    compiled BDF: the structured one (``jacobian_into``) and the plain differences of the
    right-hand side (``fd_jacobian_into``, against scipy given ``stiff.fd_jacobian``)."""
    from odeprune.ode.drivers import AutoDriver
    from odeprune.ode.rhs import rhs_eval
    from odeprune.ode.stiff import fd_jacobian

    p, y0, ctl = _compiled_problem()
    t = save_at(2e3)
    sc = stiff_callables(p, ctl)
    jac = (lambda y: fd_jacobian(sc.f, y, sc.f(y))) if fd else sc.jac
    ref = run_stepper(sc.f, y0, t, ctl.rtol, ctl.atol, method="bdf", jac=jac, check=sc.check)
    assert ref.status == OK
    Y = np.zeros((t.size, y0.size))
    drv = AutoDriver("bdf", p, y0, rhs_eval(y0, p), 0.0, t, Y, ctl, fd_jacobian=fd)
    assert (drv.cols is None) == fd
    while drv.advance(37) == CHUNK:
        pass
    c = drv.counts()
    assert (c["n_accept"], c["njev"], c["nlu"]) == (ref.n_accept, ref.njev, ref.nlu)
    assert c["nfev"] == ref.nfev  # f(y0), the first-step guess, the Newton iterations
    assert ref.n_accept > 100
    np.testing.assert_allclose(Y, ref.Y_out, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("alpha_max", [1e3, 1e4])
def test_integrate_auto_matches_tight_reference(alpha_max):
    from odeprune.ode.rhs import pack

    ref = reference_eg(alpha_max)
    eg = order_param_problem()[3]
    s = op.OrderParams.random(500, 6, 2, v_star=4.0, seed=0)
    c = op.integrate(s, 0.5, alpha_max, save_at=save_at(alpha_max))
    assert c.metadata["method"] == "auto" and c.metadata["final_phase"] == "implicit"
    ours = eg(np.array([pack(c.Q[j], c.R[j], c.v[j]) for j in range(c.alpha.size)]))
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=0)


def test_default_short_run_is_dopri5_bit_for_bit():
    s = op.OrderParams.random(500, 6, 2, v_star=4.0, seed=0)
    auto = op.integrate(s, 0.5, 5.0)
    dp = op.integrate(s, 0.5, 5.0, method="dopri5")
    assert auto.metadata["method"] == "auto" and np.isnan(auto.metadata["alpha_switch"])
    assert auto.metadata["njev"] == 0
    for name in ("eg", "Q", "R", "v"):
        np.testing.assert_array_equal(getattr(auto, name), getattr(dp, name))


def test_integrate_auto_does_not_depend_on_the_chunking():
    s = op.OrderParams.random(500, 6, 2, v_star=4.0, seed=0)
    runs = [op.integrate(s, 0.5, 2e3, chunk_steps=n) for n in (7, 40, None)]
    assert runs[0].metadata["final_phase"] == "implicit"
    for c in runs[:2]:
        np.testing.assert_array_equal(c.Q, runs[2].Q)
        np.testing.assert_array_equal(c.v, runs[2].v)
        assert c.metadata["nfev"] == runs[2].metadata["nfev"]


def test_auto_stays_explicit_for_relu_bit_for_bit():
    """ReLU has no analytic I4 gradient, so the default "auto" never enters its implicit phase
    (odeprune.ode.drivers.AUTO_SWITCH_ACTIVATIONS): the curve is dopri5's, bit for bit, and no
    stiffness probe is spent."""
    s = op.OrderParams.random(200, 3, 2, 1.0, seed=1, activation="relu")
    a = op.integrate(s, eta=0.5, alpha_max=200.0, progress=False)
    b = op.integrate(s, eta=0.5, alpha_max=200.0, method="dopri5", progress=False)
    assert np.array_equal(a.Q, b.Q) and np.array_equal(a.eg, b.eg)
    assert a.metadata["n_probe"] == 0 and math.isnan(a.metadata["alpha_switch"])
    from odeprune.activations import ERF, LINEAR, RELU
    from odeprune.ode.drivers import AUTO_SWITCH_ACTIVATIONS

    assert RELU not in AUTO_SWITCH_ACTIVATIONS and {ERF, LINEAR} <= set(AUTO_SWITCH_ACTIVATIONS)
