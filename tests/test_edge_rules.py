"""Edge-pruning rules as Gaussian-coordinate maps: closed forms, quadrature vs Monte
Carlo, and real pruning of Gaussian coordinates at large N."""

import math

import numpy as np
import pytest
from scipy import special

import odeprune
from odeprune import OrderParams
from odeprune.pruning.edge_map import edge_prune_map
from odeprune.pruning.edge_rules import random_edge_map
from odeprune.pruning.gaussian import gradient_covariance
from odeprune.pruning.registry import EDGE_METHODS


@pytest.fixture(scope="module")
def trained():
    return odeprune.integrate(OrderParams.random(500, 6, 2, 4.0, seed=0), 0.5, 150).final


@pytest.mark.parametrize("c", [0.0, 0.1, 0.37, 1.0])
def test_random_edge_through_mechanism_equals_lemma6(trained, c):
    got = edge_prune_map(trained, "random_edge", c).state
    ref = random_edge_map(trained, c)
    np.testing.assert_allclose(got.Q, ref.Q, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got.R, ref.R, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("c", [0.1, 0.3, 0.5])
def test_magnitude_closed_form_diagonal(trained, c):
    z = special.ndtri(1 - c / 2)
    m = c + 2 * z * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    got = edge_prune_map(trained, "magnitude_edge", c).state
    np.testing.assert_allclose(np.diag(got.Q), m * np.diag(trained.Q), rtol=1e-10)
    np.testing.assert_allclose(got.R, m * trained.R, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("rule", EDGE_METHODS)
def test_quadrature_agrees_with_coordinate_monte_carlo(trained, rule):
    c = 0.3
    quad = edge_prune_map(trained, rule, c)
    mc = edge_prune_map(trained, rule, c, method="mc", n_samples=400_000, seed=1)
    # 5 standard errors of the Monte Carlo estimate (+ the MC error of SNIP's own Q'_ik)
    se_Q = np.hypot(mc.Q_se, quad.Q_se)
    assert np.all(np.abs(quad.state.Q - mc.state.Q) <= 5 * se_Q + 1e-12)
    se_R = np.hypot(mc.R_se, quad.R_se)
    assert np.all(np.abs(quad.state.R - mc.state.R) <= 5 * se_R + 1e-12)


def _coords(state, N, rng):
    C = np.array(state.covariance())
    lam, U = np.linalg.eigh(C)
    A = U * np.sqrt(np.clip(lam, 0, None))
    return (rng.standard_normal((N, C.shape[0])) @ A.T).T  # (K+M, N)


@pytest.mark.parametrize("rule", ["magnitude_edge", "magnitude_edge_global", "dpp_edge"])
def test_real_pruning_of_gaussian_coordinates_matches_map(trained, rule):
    """Prune real weight vectors whose coordinates are N(0, C): top-|w| per row exactly, or
    independent masks with the DPP-edge probabilities; the order parameters converge to the map."""
    K, c = trained.K, 0.3
    pred = edge_prune_map(trained, rule, c)
    rng = np.random.default_rng(5)
    N, reps = 40_000, 6
    devs = []
    for _ in range(reps):
        z = _coords(trained, N, rng)
        w, w_star = z[:K], z[K:]
        if rule == "magnitude_edge":
            thr = np.quantile(np.abs(w), 1 - c, axis=1, keepdims=True)
            mask = np.abs(w) > thr
        elif rule == "magnitude_edge_global":
            mask = np.abs(w) > np.quantile(np.abs(w), 1 - c)
        else:
            lam = pred.rule.lam[:, None]
            mask = rng.random(w.shape) < lam * w**2 / (1 + lam * w**2)
        pruned = OrderParams.from_weights(w * mask, w_star, trained.v, trained.v_star)
        devs.append(np.concatenate([(pruned.Q - pred.state.Q).ravel(),
                                    (pruned.R - pred.state.R).ravel()]))
    devs = np.array(devs)
    mean = devs.mean(axis=0)
    se = devs.std(axis=0, ddof=1) / np.sqrt(reps)
    # finite-N fluctuations are O(N^-1/2) ~ 5e-3; the tolerance is 5 standard errors of the mean
    # over independent draws plus an O(1/N) allowance for exact quantiles vs the limit threshold
    assert np.all(np.abs(mean) <= 5 * se + 5.0 / N), np.max(np.abs(mean) / (se + 1e-300))


@pytest.mark.parametrize("name", ["snip_edge", "snip_edge_global"])
def test_snip_monte_carlo_marginals_match_quadrature(trained, name):
    """The Monte Carlo Q'_ii and R'_i of SNIP against one-dimensional quadrature."""
    from odeprune.pruning.edge_map import snip_marginal_quadrature

    res = edge_prune_map(trained, name, 0.3, n_samples=400_000, seed=3)
    from odeprune.pruning.gaussian import augmented_covariance

    Sigma = augmented_covariance(trained)
    for i in range(trained.K):
        q_ii, r_i = snip_marginal_quadrature(res.rule, Sigma, trained.K, trained.M, i)
        assert abs(res.state.Q[i, i] - q_ii) <= 5 * res.Q_se[i, i] + 1e-12
        assert np.all(np.abs(res.state.R[i] - r_i) <= 5 * res.R_se[i] + 1e-12)


@pytest.mark.parametrize("c", [0.0, 1.0])
def test_snip_extremes_are_exact(trained, c):
    res = edge_prune_map(trained, "snip_edge", c, n_samples=20_000, seed=1)
    np.testing.assert_allclose(res.state.Q, c * trained.Q, atol=1e-10)
    np.testing.assert_allclose(res.state.R, c * trained.R, atol=1e-10)


def test_snip_gradient_covariance_is_the_first_order_ode_term(trained):
    # d R_in / d alpha (gradient flow) = -eta G_{i, K+n}; dQ_ik = -eta (G_ik + G_ki)
    from odeprune.ode.dynamics import rhs_state

    G = gradient_covariance(trained)
    dQ, dR, _ = rhs_state(trained, eta=1.0, gradient_flow=True)
    K = trained.K
    np.testing.assert_allclose(dR, -G[:, K:], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dQ, -(G[:, :K] + G[:, :K].T), rtol=1e-12, atol=1e-14)


def test_kept_fraction_is_c(trained):
    from odeprune.pruning.edge_rules import RULES

    for name in ("dpp_edge", "snip_edge", "snip_edge_global", "magnitude_edge_global"):
        mc = edge_prune_map(trained, RULES[name](), 0.25, method="mc", n_samples=200_000, seed=2)
        rng = np.random.default_rng(3)
        Sigma = np.array(trained.covariance())
        if mc.rule.needs_gradient:
            from odeprune.pruning.gaussian import augmented_covariance

            Sigma = augmented_covariance(trained)
        lam, U = np.linalg.eigh(Sigma)
        z = rng.standard_normal((200_000, Sigma.shape[0])) @ (U * np.sqrt(np.clip(lam, 0, None))).T
        K, M = trained.K, trained.M
        g = z[:, K + M:] if mc.rule.needs_gradient else [None] * K
        P = np.column_stack([mc.rule.keep_prob(i, z[:, i], None if g[0] is None else g[:, i])
                             for i in range(K)])
        if name.endswith("global"):
            assert abs(P.mean() - 0.25) < 5 * P.std() / np.sqrt(P.size) * np.sqrt(K)
        else:
            np.testing.assert_allclose(P.mean(axis=0), 0.25, atol=5 * 0.5 / np.sqrt(2e5))


@pytest.mark.parametrize("c", [-0.1, 1.5, float("nan")])
def test_bad_c(trained, c):
    with pytest.raises(ValueError, match="c="):
        edge_prune_map(trained, "magnitude_edge", c)


def test_unknown_rule(trained):
    with pytest.raises(ValueError, match="rule='top_edge' is unknown"):
        edge_prune_map(trained, "top_edge", 0.5)


def test_rule_with_bad_probabilities_is_rejected(trained):
    from odeprune.pruning.edge_rules import EdgeRule

    class Broken(EdgeRule):
        name = "broken"

        def calibrate(self, laws, c):
            pass

        def keep_prob(self, i, w, g=None):
            return 2.0 * np.abs(w)

    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        edge_prune_map(trained, Broken(), 0.5)


def test_custom_rule_is_one_function(trained):
    """Adding a rule is writing its p: a soft magnitude rule."""
    from odeprune.pruning.edge_rules import EdgeRule

    class Soft(EdgeRule):
        name = "soft"

        def calibrate(self, laws, c):
            self.sd = laws.sd[0]        # one stratum: the dense network

        def keep_prob(self, i, w, g=None):
            return 1 - np.exp(-(w / self.sd[i]) ** 2)

    quad = edge_prune_map(trained, Soft(), 0.5)
    mc = edge_prune_map(trained, Soft(), 0.5, method="mc", seed=4)
    assert np.all(np.abs(quad.state.Q - mc.state.Q) <= 5 * mc.Q_se + 1e-12)


@pytest.mark.parametrize("name", EDGE_METHODS)
def test_one_calibration_for_dense_and_mixture(trained, name):
    """A dense network is one stratum: splitting it into strata with the same law (any masses)
    leaves every threshold unchanged; a stratum whose units are all pruned (mass 0) does not
    count; and the calibrated rule keeps the fraction c of the mixture's kept weights."""
    from odeprune.pruning.edge_rules import RULES, UnitLaws
    from odeprune.pruning.gaussian import augmented_covariance

    K, M, c = trained.K, trained.M, 0.3
    cls = RULES[name]
    Sigma = (augmented_covariance(trained) if cls.needs_gradient
             else np.array(trained.covariance()))
    grad = list(range(K + M, 2 * K + M)) if cls.needs_gradient else None
    dense = cls()
    dense.calibrate(UnitLaws.dense(Sigma, K, M, cls.needs_gradient), c)
    other = 0.5 * Sigma        # a different law, in a stratum with every unit pruned
    split = cls()
    split.calibrate(UnitLaws.from_strata([Sigma, Sigma, other],
                                         [np.full(K, 0.3), np.full(K, 0.7), np.zeros(K)],
                                         list(range(K)), grad), c)
    for attr in ("c", "tau", "lam"):
        if hasattr(dense, attr):
            np.testing.assert_allclose(getattr(split, attr), getattr(dense, attr), rtol=1e-10)
    # two different strata: the kept fraction of the mixture is c (Monte Carlo over each law)
    masses = [np.full(K, 0.25), np.full(K, 0.75)]
    mixed = cls()
    mixed.calibrate(UnitLaws.from_strata([Sigma, other], masses, list(range(K)), grad), c)
    rng = np.random.default_rng(7)
    kept = np.zeros(K)
    for S, m in zip([Sigma, other], masses, strict=True):
        lam, U = np.linalg.eigh(S)
        z = rng.standard_normal((200_000, S.shape[0])) @ (U * np.sqrt(np.clip(lam, 0, None))).T
        g = z[:, K + M:] if cls.needs_gradient else [None] * K
        P = np.column_stack([mixed.keep_prob(i, z[:, i], None if g[0] is None else g[:, i])
                             for i in range(K)])
        kept += m * P.mean(axis=0)
    if cls.scope == "global":
        assert abs(kept.mean() - c) < 5 * 0.5 / np.sqrt(2e5 * K)
    else:
        np.testing.assert_allclose(kept, c, atol=5 * 0.5 / np.sqrt(2e5))
