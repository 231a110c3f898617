"""The landscape's options (issue 22): l1_minimum's learning rule as a Dynamics, the settings
of Zhang et al.'s protocol as a record; flat keywords or whole, the same numbers; one check of
finite weights (state.check_weights)."""

import numpy as np
import pytest

from odeprune import OrderParams
from odeprune import landscape as ls
from odeprune.options import Dynamics
from odeprune.state import check_weights


@pytest.fixture(scope="module")
def minimum():
    st = OrderParams.random(200, 3, 2, v_star=1.0, seed=0)
    return st, ls.l1_minimum(st, 0.05, alpha_max=6.0, S=200, replicas=2, seed=0)


def test_l1_minimum_rule_flat_or_whole(minimum):
    st, mn = minimum
    assert mn.eta == 1.0 and mn.gradient_flow is True        # its own defaults (L1_RULE)
    whole = ls.l1_minimum(st, 0.05, alpha_max=6.0, S=200, replicas=2, seed=0,
                          dynamics=Dynamics(eta=1.0, gradient_flow=True, l1=0.05))
    assert np.array_equal(whole.law.w, mn.law.w) and whole.eg == mn.eg
    sgd = ls.l1_minimum(st, 0.05, alpha_max=2.0, S=100, replicas=2, seed=1, eta=0.5,
                        gradient_flow=False, sigma=0.1, dt=0.1)
    assert sgd.eta == 0.5 and not sgd.gradient_flow
    assert not np.array_equal(sgd.law.w, mn.law.w)
    with pytest.raises(ValueError, match="differs from the l1=0.1 of dynamics="):
        ls.l1_minimum(st, 0.05, dynamics=Dynamics(eta=1.0, l1=0.1))
    with pytest.raises(ValueError, match="eta=-1.0"):
        ls.l1_minimum(st, 0.05, eta=-1.0)
    with pytest.raises(TypeError, match="l1_minimum.*rtol"):
        ls.l1_minimum(st, 0.05, rtol=1e-9)


def test_protocol_settings_flat_or_whole(minimum):
    _, mn = minimum
    kw = dict(check="ignore")
    flat = ls.protocol_limit(mn, (1e-2,), B=64, xtol=2e-2, grid=5, batch_samples=256, **kw)
    whole = ls.protocol_limit(mn, (1e-2,), protocol=ls.Protocol(B=64, xtol=2e-2, grid=5,
                                                                batch_samples=256), **kw)
    for name in ("actual", "predicted", "batch_sd", "upper"):
        assert np.array_equal(getattr(flat, name), getattr(whole, name))
    assert flat.metadata["B"] == 64 and flat.metadata["grid"] == 5
    for bad, match in ((dict(xtol=1.5), "xtol=1.5 must be in"), (dict(grid=1), "grid="),
                       (dict(B=0), "B=0"), (dict(batch_samples=1), "batch_samples=")):
        with pytest.raises(ValueError, match=match):
            ls.protocol_limit(mn, **bad, **kw)
    with pytest.raises(TypeError, match="protocol_limit.*samples"):
        ls.protocol_limit(mn, samples=10, **kw)


def test_check_weights_is_the_one_check_of_finite_weights():
    w, ws = check_weights(np.ones((2, 5)), np.ones((1, 5)))
    assert w.shape == (2, 5) and not w.flags.writeable
    with pytest.raises(ValueError, match="must share N"):
        check_weights(np.ones((2, 3)), np.ones((1, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        ls.empirical_hessian(np.full((2, 3), np.nan), np.ones((1, 3)), np.ones(2), np.ones(1), 5)
    with pytest.raises(ValueError, match="must share N"):
        OrderParams.from_weights(np.ones((2, 3)), np.ones((1, 4)), np.ones(2), np.ones(1))
