"""``integrate(method="auto" | "bdf" | "radau")``: the stiff path of odeprune.ode.stiff wired into
the driver (issue 16): accuracy against a tight explicit reference, cost that stops growing with
alpha, exact resume, masked networks, and the small-eps_g warning of explicit runs."""

from __future__ import annotations

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams
from odeprune.errors import OdepruneAccuracyWarning, OdepruneInterrupted
from odeprune.sparse import SparseOrderParams


@pytest.fixture(scope="module")
def paper_state():
    return OrderParams.random(500, 6, 2, v_star=4.0, seed=0)


def test_auto_matches_a_tight_reference_and_its_cost_stops_growing(paper_state):
    save = np.geomspace(1, 1e4, 30)
    ref = odeprune.integrate(paper_state, 0.5, 1e4, save_at=save, rtol=1e-11, atol=1e-13)
    auto = odeprune.integrate(paper_state, 0.5, 1e4, save_at=save, method="auto")
    np.testing.assert_allclose(auto.eg, ref.eg, rtol=1e-6)
    short = odeprune.integrate(paper_state, 0.5, 1e3, method="auto")
    explicit = odeprune.integrate(paper_state, 0.5, 1e4, method="dopri5")
    assert auto.metadata["final_phase"] == "implicit"
    assert auto.metadata["nfev"] < 2 * short.metadata["nfev"]
    assert auto.metadata["nfev"] < explicit.metadata["nfev"] / 5


@pytest.mark.parametrize("method", ["bdf", "radau"])
def test_implicit_from_the_start(paper_state, method):
    save = [10.0, 100.0, 500.0]
    ref = odeprune.integrate(paper_state, 0.5, 500.0, save_at=save, rtol=1e-11, atol=1e-13)
    c = odeprune.integrate(paper_state, 0.5, 500.0, save_at=save, method=method)
    np.testing.assert_allclose(c.eg[1:], ref.eg[1:], rtol=2e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_auto_resume_is_exact(tmp_path, monkeypatch, paper_state, masked):
    """Interrupted in the middle of the implicit phase, resumed from the checkpoint: the same
    numbers and evaluations. Masked (64 classes): the checkpoint holds the blocks of
    :mod:`odeprune.ode.blocks`."""
    from odeprune.ode.drivers import AutoDriver

    state = SparseOrderParams.random_mask(paper_state, 0.5) if masked else paper_state
    kw = dict(eta=0.5, alpha_max=1e3 if masked else 3e3, method="auto", chunk_steps=10)
    real = AutoDriver.advance
    phases = []

    def record(self, n):
        phases.append(self.phase)
        return real(self, n)

    monkeypatch.setattr(AutoDriver, "advance", record)
    full = odeprune.integrate(state, **kw)
    assert full.metadata["final_phase"] == "implicit"
    first = phases.index("implicit")
    stop = (first + len(phases)) // 2  # a chunk in the middle of the implicit phase
    assert first < stop < len(phases) - 1
    ckpt = tmp_path / "c.npz"
    calls = {"n": 0}

    def flaky(self, n):
        calls["n"] += 1
        if calls["n"] == stop:
            raise KeyboardInterrupt
        return real(self, n)

    monkeypatch.setattr(AutoDriver, "advance", flaky)
    with pytest.raises(OdepruneInterrupted, match="resume"):
        odeprune.integrate(state, checkpoint=ckpt, **kw)
    monkeypatch.setattr(AutoDriver, "advance", real)
    with np.load(ckpt) as saved:
        assert int(saved["auto_ints"][0]) == 1  # interrupted inside the implicit (BDF) phase
        assert ("blk_UT" in saved.files) == masked
        if masked:
            assert saved["blk_UT"].shape == (39, 822)
    resumed = odeprune.integrate(state, checkpoint=ckpt, resume=True, **kw)
    np.testing.assert_array_equal(resumed.eg, full.eg)
    assert resumed.metadata["nfev"] == full.metadata["nfev"]


def test_masked_network_with_auto():
    s = OrderParams.random(500, 4, 2, v_star=3.0, seed=0)
    sp = SparseOrderParams.random_mask(s, 0.5)
    save = [10.0, 1e3, 5e3]
    ref = odeprune.integrate(sp, 0.5, 5e3, save_at=save, rtol=1e-11, atol=1e-13)
    c = odeprune.integrate(sp, 0.5, 5e3, save_at=save, method="auto")
    np.testing.assert_allclose(c.eg, ref.eg, rtol=1e-6)
    assert isinstance(c.final, SparseOrderParams)


def test_small_eps_g_of_an_explicit_run_warns_and_auto_is_right():
    # issue 16: sigma = 1e-3, M = K = 2, v* = 1: final eps_g ~ 1e-7
    s = OrderParams.random(500, 2, 2, v_star=1.0, seed=0)
    kw = dict(eta=0.5, alpha_max=1e4, sigma=1e-3, save_at=[1e4])
    with pytest.warns(OdepruneAccuracyWarning, match="method='auto'"):
        explicit = odeprune.integrate(s, method="dopri5", **kw)
    auto = odeprune.integrate(s, method="auto", **kw)
    ref = odeprune.integrate(s, rtol=1e-11, atol=1e-16, **kw)
    assert auto.metadata["final_phase"] == "implicit"
    assert abs(auto.eg[-1] / ref.eg[-1] - 1) < 1e-4
    assert abs(explicit.eg[-1] / ref.eg[-1] - 1) > abs(auto.eg[-1] / ref.eg[-1] - 1)
