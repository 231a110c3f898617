"""The one rule for default saved times (``odeprune.grid.save_times``): the rule against a
direct computation, the presets of every driver, and bad input."""

import numpy as np
import pytest

from odeprune.coords.particles import log_times
from odeprune.grid import default_lo, save_times
from odeprune.ode.dynamics import default_save_at as ode_default
from odeprune.sim.run import default_save_at as sim_default
from odeprune.workflows import time_grid

ALPHAS = [1e-3, 0.5, 1.0, 7.0, 99.9, 100.0, 150.0, 1000.0, 12345.6]


@pytest.mark.parametrize("alpha_max", ALPHAS)
@pytest.mark.parametrize("n", [2, 8, 40])
def test_rule_is_zero_log_part_end_and_report(alpha_max, n):
    """0, then lo * r^i (r = (alpha_max/lo)^(1/(n-1))), alpha_max, the report times up to
    alpha_max; sorted, unique."""
    lo = min(1.0, alpha_max / 100)
    report = [alpha_max / 3, alpha_max / 7, 2 * alpha_max]
    t = save_times(alpha_max, n, report=report)
    log_part = lo * (alpha_max / lo) ** (np.arange(n) / (n - 1))
    want = sorted({0.0, *log_part, alpha_max, alpha_max / 3, alpha_max / 7})
    np.testing.assert_allclose(t, want, rtol=1e-12, atol=0)
    assert t[0] == 0.0 and t[-1] == alpha_max and np.all(np.diff(t) > 0)
    assert default_lo(alpha_max) == lo


def test_end_point_is_saved_even_with_one_log_time():
    np.testing.assert_array_equal(save_times(10.0, 1, lo=2.0), [0.0, 2.0, 10.0])


@pytest.mark.parametrize("alpha_max", ALPHAS)
def test_every_driver_default_is_the_one_rule(alpha_max):
    """The presets of the ODE (200 times from min(0.01, alpha_max/100)), the simulation and the
    workflows (40 from min(1, alpha_max/100)) and the coordinate law (20 from
    min(1, alpha_max)) are the one rule with their (n, lo)."""
    np.testing.assert_array_equal(ode_default(alpha_max),
                                  save_times(alpha_max, 200, lo=min(0.01, alpha_max / 100)))
    np.testing.assert_array_equal(sim_default(alpha_max), save_times(alpha_max, 40))
    np.testing.assert_array_equal(time_grid(alpha_max, [alpha_max / 2]),
                                  save_times(alpha_max, 40, report=[alpha_max / 2]))
    np.testing.assert_array_equal(log_times(alpha_max),
                                  save_times(alpha_max, 20, lo=min(1.0, alpha_max)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha_max=0.0), "alpha_max"),
    (dict(alpha_max=float("inf")), "alpha_max"),
    (dict(alpha_max=True), "alpha_max"),
    (dict(alpha_max=10.0, n=0), "n="),
    (dict(alpha_max=10.0, n=True), "n="),
    (dict(alpha_max=10.0, lo=20.0), "lo="),
    (dict(alpha_max=10.0, lo=-1.0), "lo="),
    (dict(alpha_max=10.0, report=[-1.0]), "report"),
    (dict(alpha_max=10.0, report=["x"]), "report"),
])
def test_bad_input_is_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match):
        save_times(**kwargs)
