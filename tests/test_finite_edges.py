"""Edge rules through prune(), on real weights, and iterative magnitude pruning."""

import numpy as np
import pytest

import odeprune
from odeprune import prune
from odeprune.pruning import prune_weights
from odeprune.pruning.edge_map import edge_prune_map
from odeprune.pruning.edge_rules import RULES
from odeprune.pruning.finite_edges import (
    edge_mask,
    prune_edges_weights,
)
from odeprune.pruning.registry import EDGE_METHODS
from odeprune.workflows.schedules import imp_finite


@pytest.fixture(scope="module")
def sim():
    return odeprune.simulate(N=400, K=4, M=2, eta=0.5, alpha_max=40, v_star=3.0, seed=2,
                             n_test=200)


def test_every_edge_rule_is_a_prune_method():
    assert set(EDGE_METHODS) == set(RULES)


@pytest.mark.parametrize("method", EDGE_METHODS)
@pytest.mark.parametrize("reweight", ["none", "rescale", "refit", "rescale_rows"])
def test_prune_edge_methods(sim, method, reweight):
    state = sim.final
    r = prune(state, method, c=0.4, reweight=reweight, seed=0)
    assert r.exact or r.eg_se >= 0
    assert np.isfinite(r.eg_mean) and r.eg_mean >= 0
    pruned = r.state
    if reweight == "rescale_rows":
        np.testing.assert_allclose(np.diag(pruned.Q), np.diag(state.Q), rtol=1e-10)
    if reweight == "none":
        assert r.eg_mean == pytest.approx(edge_prune_map(state, method, 0.4, seed=0)
                                          .state.eg(), rel=1e-12, abs=1e-12) \
            or method.startswith("snip")
    if reweight == "refit":  # the best second layer can only help
        assert r.eg_mean <= prune(state, method, c=0.4, seed=0).eg_mean + 1e-12


@pytest.mark.parametrize("rule", ["magnitude_edge", "magnitude_edge_global", "snip_edge",
                                  "snip_edge_global", "dpp_edge", "random_edge"])
def test_masks_keep_the_right_number(sim, rule):
    K, N = sim.w.shape
    mask, info = edge_mask(sim.w, rule, 0.25, seed=1, v=sim.v[-1], w_star=sim.w_star,
                           v_star=sim.v_star, n_samples=2000)
    assert mask.shape == (K, N) and mask.dtype == bool
    if rule in ("magnitude_edge", "snip_edge", "dpp_edge"):
        np.testing.assert_array_equal(mask.sum(axis=1), round(0.25 * N))
    elif rule != "random_edge":
        assert mask.sum() == round(0.25 * K * N)
    if rule == "magnitude_edge":  # every kept weight is at least as large as every dropped one
        for i in range(K):
            assert np.abs(sim.w[i][mask[i]]).min() >= np.abs(sim.w[i][~mask[i]]).max()


def test_masks_are_seeded(sim):
    w = sim.w[:2, :200]
    a, _ = edge_mask(w, "dpp_edge", 0.3, seed=4, n_samples=1000)
    b, _ = edge_mask(w, "dpp_edge", 0.3, seed=4, n_samples=1000)
    c, _ = edge_mask(w, "dpp_edge", 0.3, seed=5, n_samples=1000)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_finite_magnitude_matches_limit(sim):
    """Test error of the really pruned network vs the map on its own order parameters."""
    r = prune_edges_weights(sim, rule="magnitude_edge", c=0.5, n_test=40_000, seed=3)
    # the test error estimates the pruned network's own eg within sampling error
    assert abs(r.test_error_mean - r.eg_mean) < 5 * r.test_error_se
    # and the limit map predicts it up to finite-N fluctuations (N=400: a few per cent,
    # measured in benchmarks/edge_gaussianity.py)
    assert r.eg_mean == pytest.approx(r.eg_limit, rel=0.1)


def test_prune_weights_accepts_edge_rules(sim):
    r = prune_weights(sim, method="magnitude_edge", c=0.5, n_test=2000, seed=0)
    assert r.n_masks == 1 and r.prediction is not None
    assert r.eg_limit[0] == pytest.approx(prune(sim.final, "magnitude_edge", c=0.5).eg_mean,
                                          rel=1e-12)


def test_bad_input(sim):
    with pytest.raises(ValueError, match="rule='top' is unknown"):
        edge_mask(sim.w, "top", 0.5)
    with pytest.raises(ValueError, match="c=1.5 is out of range"):
        edge_mask(sim.w, "magnitude_edge", 1.5)
    with pytest.raises(ValueError, match="needs v, w_star and v_star"):
        edge_mask(sim.w, "snip_edge", 0.5)
    with pytest.raises(ValueError, match="prune_fraction=1.0"):
        imp_finite(50, 2, 1, eta=0.5, alpha_per_round=1, rounds=1, prune_fraction=1.0)
    with pytest.raises(ValueError, match=r"mask must have shape \(K, N\)"):
        odeprune.simulate(N=50, K=2, M=1, eta=0.5, alpha_max=1, mask=np.ones((2, 3)))


def test_snip_monte_carlo_standard_error_is_honest(sim):
    """The reported eg_se of SNIP's coordinate Monte Carlo matches the seed-to-seed spread."""
    res = [prune(sim.final, "snip_edge", c=0.4, seed=s, n_samples=50_000) for s in range(8)]
    spread = np.std([r.eg_mean for r in res], ddof=1)
    se = np.mean([r.eg_se for r in res])
    assert se > 0
    # the sample std of 8 draws is within a factor ~2 of the truth with probability > 0.99
    assert 0.4 < spread / se < 2.2, (spread, se)
