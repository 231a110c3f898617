"""The committed tight references (tests/data, written by tests/data/make_references.py) are
what the package computes: a stale or wrong file fails here, not in the tests that use it."""

import numpy as np
from conftest import PAPER_ETA

import odeprune


def test_paper_reference_is_the_paper_state_at_tight_tolerances(paper_reference, paper_state):
    ref = paper_reference
    assert ref.metadata["alpha0"] == 0.0 and ref.metadata["alpha_max"] == 1e4
    assert ref.metadata["eta"] == PAPER_ETA and ref.metadata["sigma"] == 0.0
    assert ref.metadata["rtol"] == 1e-11 and ref.metadata["atol"] == 1e-13
    save = np.geomspace(1, 1e4, 30)
    for t in [*save, 10.0, 100.0, 500.0]:  # every saved time the tests look up
        assert np.any(np.isclose(ref.alpha, t, rtol=1e-12, atol=0)), t
    # the early part, recomputed tightly (cheap): the same numbers to far below any test's
    # tolerance
    early = ref.alpha[ref.alpha <= 100.0]
    tight = odeprune.integrate(paper_state, PAPER_ETA, 100.0, save_at=early, rtol=1e-11,
                               atol=1e-13)
    np.testing.assert_allclose(tight.eg, ref.eg[:early.size], rtol=1e-8)
    np.testing.assert_allclose(tight.Q, ref.Q[:early.size], rtol=1e-8, atol=1e-10)
    # the whole run against the default tolerances (rtol 1e-7): agreement to their accuracy
    loose = odeprune.integrate(paper_state, PAPER_ETA, 1e4, save_at=ref.alpha,
                               method="auto")
    np.testing.assert_allclose(loose.eg, ref.eg, rtol=1e-5)
    assert loose.final.activation == ref.final.activation == paper_state.activation
