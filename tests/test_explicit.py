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

    from odeprune.ode.dynamics import _problem
    from odeprune.ode.explicit import CHUNK, N_ACCEPT, N_REJECT, Control, dopri5_run, new_run
    from odeprune.ode.rhs import rhs_eval

    s = OrderParams.random(200, 3, 2, v_star=2.0, seed=3)
    p, y0, _ = _problem(s, 0.5, 0.5, 0.0, 0, True, True, False)
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
