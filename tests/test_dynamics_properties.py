"""Properties of :func:`odeprune.integrate` (``odeprune/ode/dynamics.py``) over random valid
states (hypothesis): the state stays valid and symmetric, and the only warning is declared."""

import re
import warnings

import numpy as np
from conftest import psd_states
from hypothesis import example, given
from hypothesis import strategies as st

import odeprune
from odeprune import OrderParams

_TINY = 1.24402326e-117


@given(psd_states(max_K=3, max_M=2), st.floats(0.05, 1.0))
# found by hypothesis 6.170: rounding left Q[0,0] = -1.5e-111 (now a zero norm)
@example(OrderParams(Q=[[_TINY]], R=[[_TINY]], T=[[_TINY]], v=[3.0], v_star=[0.0]), 1.0)
def test_short_integration_keeps_a_valid_symmetric_state(s, eta):
    # the one warning a random state may draw, declared: an eps_g the default tolerances do not
    # resolve; never for an eps_g at or below atol (zero within the tolerance; issue 26 item 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("error")
        warnings.simplefilter("always", odeprune.OdepruneAccuracyWarning)
        curve = odeprune.integrate(s, eta=eta, alpha_max=1.0, save_at=[0.5])
    for w in caught:
        assert curve.eg[-1] > 1e-10, str(w.message)
        assert re.search(r"(\d% of it|times eps_g itself)\)", str(w.message)), str(w.message)
    assert np.array_equal(curve.Q, np.swapaxes(curve.Q, 1, 2))
    assert np.all(np.isfinite(curve.eg))
    assert curve.final.K == s.K  # building it validates the state (PSD) again

