"""The explicit engine (odeprune.ode.explicit): one status enumeration for every driver, what a
finished or failed run reports, and Dormand-Prince's step controller against scipy's
``solve_ivp(method="RK45")`` step for step (accepted and rejected counts)."""

from __future__ import annotations

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams
from odeprune.errors import DivergenceError, MaxStepsReached
from odeprune.ode import explicit, stiff
from odeprune.ode.explicit import STATUS_TEXT, Status


def test_one_status_enumeration():
    assert [s.name for s in Status] == ["SUCCESS", "CHUNK", "NONFINITE", "NOT_PSD",
                                        "STEP_TOO_SMALL", "MAX_STEPS"]
    # the compiled code's ints are the enumeration's values, and the stiff path uses the same
    assert (explicit.OK, explicit.CHUNK, explicit.NONFINITE, explicit.NOT_PSD,
            explicit.STEP_TOO_SMALL, explicit.MAX_STEPS) == tuple(Status)
    assert all(getattr(stiff, name) is getattr(explicit, name)
               for name in ("OK", "CHUNK", "NONFINITE", "NOT_PSD", "STEP_TOO_SMALL"))
    # every divergence has its text; success, a chunk and the budget are not divergences
    assert set(STATUS_TEXT) == {Status.NONFINITE, Status.NOT_PSD, Status.STEP_TOO_SMALL}


@pytest.mark.parametrize("method", ["auto", "dopri5", "rk4", "bdf"])
def test_a_finished_curve_says_success(method):
    s = OrderParams.random(200, 3, 2, v_star=2.0, seed=0)
    c = odeprune.integrate(s, 0.5, 20.0, method=method)
    assert c.metadata["status"] == "success" == Status.SUCCESS.name.lower()


@pytest.mark.parametrize("method", ["auto", "dopri5"])
def test_a_used_up_budget_is_max_steps_not_a_divergence(method):
    s = OrderParams.random(200, 3, 2, v_star=2.0, seed=0)
    with pytest.raises(MaxStepsReached, match="max_steps=30") as info:
        odeprune.integrate(s, 0.5, 1e3, method=method, max_steps=30)
    assert not isinstance(info.value, DivergenceError)
    assert 0 < info.value.alpha < 1e3 and info.value.max_steps == 30


@pytest.mark.parametrize("rtol,atol,h0,T", [(1e-6, 1e-9, 2.0, 30.0), (1e-4, 1e-7, 10.0, 100.0),
                                           (1e-8, 1e-11, 5.0, 200.0)])
def test_step_counts_equal_solve_ivp_rk45(rtol, atol, h0, T):
    """Same right-hand side, tolerances and first step: scipy's ``solve_ivp(method="RK45")``
    and our Dormand-Prince take the same number of accepted steps to ``T``, and the same
    rejections before the last step. The one convention that differs is the last step: scipy
    shortens it to end on ``T`` (here accepted at once: its ``nfev = 1 + 6 (accepted +
    rejected)`` counts no rejection there), ours keeps its size, steps past ``T`` and
    interpolates (and may be rejected on the way: the second case, once)."""
    from scipy.integrate import solve_ivp

    from odeprune.activations import get_activation
    from odeprune.ode.dynamics import _problem
    from odeprune.ode.explicit import CHUNK, N_ACCEPT, N_REJECT, Control, dopri5_run, new_run
    from odeprune.ode.rhs import rhs_eval
    from odeprune.options import Dynamics

    s = OrderParams.random(200, 3, 2, v_star=2.0, seed=3)
    p, y0, _ = _problem(s, Dynamics(eta=0.5), get_activation("erf").code)
    sol = solve_ivp(lambda t, y: rhs_eval(np.ascontiguousarray(y), p), (0.0, T), y0,
                    method="RK45", rtol=rtol, atol=atol, first_step=h0)
    assert sol.success
    accepted = len(sol.t) - 1
    rejected = (sol.nfev - 1) // 6 - accepted
    assert rejected > 0 and accepted > 20  # the rejection path (and the cap after it) runs
    r = new_run(y0, rhs_eval(y0, p), 0.0, h0)
    out = np.zeros((1, y0.size))
    status = dopri5_run(r, np.array([T]), out, p, Control(rtol, atol, 0.01, accepted - 1, 1e-7))
    assert status == CHUNK  # (the run is chunk-invariant: it goes on from here)
    np.testing.assert_allclose(r.ts[0], sol.t[-2], rtol=1e-9)
    assert int(r.counters[N_REJECT]) == rejected
    status = dopri5_run(r, np.array([T]), out, p, Control(rtol, atol, 0.01, 10**6, 1e-7))
    assert status == Status.SUCCESS and int(r.counters[N_ACCEPT]) == accepted
    np.testing.assert_allclose(out[0], sol.y[:, -1], rtol=10 * rtol, atol=10 * atol)


# ------------------------------------------------------------------ the tableaux, as data
def _rk_step(tab, f, t, y, h, weights=None):
    """One step of the tableau ``tab`` in plain numpy (stage times ``c = A.sum(1)``): the new
    state with ``weights`` (default ``B / B_den``) and the stages (the last: f at the new
    state, first same as last)."""
    A = np.asarray(tab.A)
    S = A.shape[0]
    c = A.sum(1)
    k = [f(t, y)]
    for s in range(1, S):
        k.append(f(t + c[s] * h, y + h * sum(A[s, q] * k[q] for q in range(s))))
    b = np.asarray(tab.B) / tab.B_den if weights is None else weights
    y_new = y + h * sum(b[q] * k[q] for q in range(S))
    return y_new, k + [f(t + h, y_new)]


def _slope(errors, hs):
    return np.polyfit(np.log(hs), np.log(errors), 1)[0]


def _ode(t, y):  # y' = cos(t) y: y(t) = y(t0) exp(sin t - sin t0)
    return np.cos(t) * y


def _exact(t0, y0, t):
    return y0 * np.exp(np.sin(t) - np.sin(t0))


@pytest.mark.parametrize("name, order", [("dopri5", 5), ("rk4", 4), ("euler", 1)])
def test_each_tableau_has_its_order(name, order):
    """The local error of one step of the tableau (plain numpy, a non-autonomous scalar ODE
    with a closed-form solution) falls as h^(order + 1); dopri5's embedded pair (weights
    ``B - E``) as h^5."""
    tab = explicit.TABLEAUX[name]
    t0, y0 = 0.3, 1.7
    hs = np.array([0.2, 0.1, 0.05])
    err = [abs(_rk_step(tab, _ode, t0, y0, h)[0] - _exact(t0, y0, t0 + h)) for h in hs]
    assert abs(_slope(err, hs) - (order + 1)) < 0.3, err
    np.testing.assert_allclose(np.sum(tab.B) / tab.B_den, 1.0, rtol=1e-15)
    if tab.adaptive:
        b_ext = np.append(np.asarray(tab.B) / tab.B_den, 0.0)
        np.testing.assert_allclose(np.sum(tab.E), 0.0, atol=1e-16)
        err4 = []
        for h in hs:
            _, k = _rk_step(tab, _ode, t0, y0, h)
            y4 = y0 + h * sum((b_ext[q] - tab.E[q]) * k[q] for q in range(len(k)))
            err4.append(abs(y4 - _exact(t0, y0, t0 + h)))
        assert abs(_slope(err4, hs) - 5) < 0.3, err4


def test_dopri5_dense_output_is_fourth_order():
    """Shampine's interpolant: at theta = 1 it is the step itself (its coefficients sum to the
    weights), and inside the step its error falls at least as h^5 (measured: slope 5.7 here,
    the h^6 term still large at these steps)."""
    tab = explicit.DOPRI5
    b_ext = np.append(np.asarray(tab.B) / tab.B_den, 0.0)
    np.testing.assert_allclose(np.asarray(tab.P).sum(1), b_ext, atol=1e-15)
    t0, y0, theta = 0.3, 1.7, 0.4
    hs = np.array([0.2, 0.1, 0.05])
    err = []
    for h in hs:
        _, k = _rk_step(tab, _ode, t0, y0, h)
        powers = theta ** np.arange(1, 5)
        y_mid = y0 + h * sum(k[q] * (tab.P[q] @ powers) for q in range(len(k)))
        err.append(abs(y_mid - _exact(t0, y0, t0 + theta * h)))
    assert 4.7 < _slope(err, hs) < 6.3, err


def test_the_steppers_are_the_one_loop_with_their_tableau():
    """Each stepper of METHODS is rk_run with the method's tableau: the same numbers, bit for
    bit, as calling rk_run directly."""
    from odeprune.activations import get_activation
    from odeprune.ode.dynamics import _problem
    from odeprune.ode.explicit import Control, new_run, rk_run
    from odeprune.ode.rhs import rhs_eval
    from odeprune.options import Dynamics

    s = OrderParams.random(200, 3, 2, v_star=2.0, seed=3)
    p, y0, _ = _problem(s, Dynamics(eta=0.5), get_activation("erf").code)
    f0 = rhs_eval(y0, p)
    t_out = np.array([0.0, 0.37, 1.0, 2.0])
    for name, stepper in explicit.METHODS.items():
        ctl = Control(1e-7, 1e-10, 0.05, 10**6, 1e-7)
        runs = [new_run(y0, f0, 0.0, 0.05) for _ in range(2)]
        outs = [np.zeros((t_out.size, y0.size)) for _ in range(2)]
        assert stepper(runs[0], t_out, outs[0], p, ctl) == Status.SUCCESS
        assert rk_run(runs[1], t_out, outs[1], p, ctl, explicit.TABLEAUX[name]) == Status.SUCCESS
        np.testing.assert_array_equal(outs[0], outs[1])
        np.testing.assert_array_equal(runs[0].counters, runs[1].counters)
        assert runs[0].counters[explicit.NFEV] > 1
