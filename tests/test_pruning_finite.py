"""Pruning real finite-N weights against the order-parameter prediction of the same weights."""

from __future__ import annotations

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams
from odeprune.pruning import FinitePruneResult, prune, prune_weights

Z5 = 5.0  # standard errors allowed


def trained_like(N=100, K=6, M=2, seed=1):
    """Synthetic 'converged' weights: Z = K/M noisy copies of each teacher unit, one flipped."""
    rng = np.random.default_rng(seed)
    w_star = rng.standard_normal((M, N))
    block = np.repeat(np.arange(M), K // M)
    sign = np.ones(K)
    sign[-1] = -1.0  # an odd activation: (-w, -v) is the same unit
    w = sign[:, None] * (w_star[block] * rng.uniform(0.8, 1.2, K)[:, None]
                         + 0.3 * rng.standard_normal((K, N)))
    v = sign * 4.0 / (K // M) * rng.uniform(0.7, 1.3, K)
    return w, v, w_star, np.full(M, 4.0)


CASES = [("random_node", dict(k=2), "none"), ("random_node", dict(k=3), "activation"),
         ("importance_node", dict(k=2), "preact"), ("dpp_node", dict(k=2), "none"),
         ("dpp_node", dict(k=2), "refit"), ("dpp_map_node", dict(k=2), "activation"),
         ("random_edge", dict(c=0.5), "none"), ("random_edge", dict(c=0.5), "rescale")]


@pytest.fixture(scope="module")
def weights():
    return trained_like()


@pytest.mark.parametrize("method,size,reweight", CASES)
def test_finite_agrees_with_order_parameter_prediction(weights, method, size, reweight):
    w, v, w_star, v_star = weights
    r = prune_weights(w, v, w_star, v_star, method=method, reweight=reweight, n_samples=20_000,
                      n_masks=30, n_test=2000, seed=0, **size)
    assert isinstance(r, FinitePruneResult)
    # 1. the measured test error is an unbiased estimate of eg of the pruned weights
    d = r.test_errors - r.eg_values
    se = np.std(d, ddof=1) / np.sqrt(r.n_masks) if r.n_masks > 1 else r.test_errors_se[0]
    assert abs(d.mean()) < Z5 * se
    # 2. ... and agrees with the limit prediction of the same weights' order parameters
    p = r.prediction
    assert p.metadata["method"] == method
    se_total = np.hypot(r.test_error_se, r.limit_se)
    if method != "random_edge":
        # same subsets: a paired comparison (only test noise and the n-sample reweighting fit)
        diff, se_pair = r.paired_difference
        assert abs(diff) < Z5 * se_pair + 2e-3 * p.eg_mean, (diff, se_pair)
    # mean over masks against the exact expectation over the method's randomness
    assert abs(r.test_error_mean - p.eg_mean) < Z5 * se_total + 0.02 * p.eg_mean, \
        (r.test_error_mean, r.test_error_se, p.eg_mean)


def test_deterministic_methods_pick_the_limit_subset(weights):
    w, v, w_star, v_star = weights
    for method in ("importance_node", "dpp_map_node"):
        r = prune_weights(w, v, w_star, v_star, method=method, k=2, n_samples=20_000,
                          n_test=500, seed=1)
        assert r.n_masks == 1
        np.testing.assert_array_equal(r.subsets, r.prediction.subsets)


def test_dpp_subset_distribution_matches_limit(weights):
    """Empirical-kernel k-DPP subsets vs the exact k-DPP of Q (Lemma 1): within 5 SE."""
    w, v, w_star, v_star = weights
    r = prune_weights(w, v, w_star, v_star, method="dpp_node", k=2, n_samples=20_000,
                      n_masks=400, n_test=2, seed=2)
    p = r.prediction
    for S, prob in zip(p.subsets, p.probabilities, strict=True):
        freq = np.mean(np.all(r.subsets == S, axis=1))
        assert abs(freq - prob) < Z5 * np.sqrt(prob * (1 - prob) / r.n_masks) + 0.01


def test_edge_mask_order_parameters_lemma6():
    """Bernoulli masks: E[Q'] and E[R'] of the pruned weights match Lemma 6 within SE."""
    w, v, w_star, v_star = trained_like(N=400)
    r = prune_weights(w, v, w_star, v_star, method="random_edge", c=0.3, n_samples=100,
                      n_masks=40, n_test=2, seed=3)
    np.testing.assert_allclose(r.kept_fraction.mean(), 0.3, atol=5 * np.sqrt(0.21 / (6 * 400 * 40)))
    np.testing.assert_allclose(r.eg_limit, r.prediction.eg_mean)


@pytest.mark.parametrize("reweight", ["none", "refit"])
def test_edge_pruned_eg_matches_lemma6_limit(reweight):
    """eg of the edge-pruned weights (exact per mask, from their order parameters) against the
    Lemma-6 limit of the same unpruned weights. Per-mask eg fluctuates by O(1/sqrt(N)) (about
    6% at N=800, c=0.4) and the mean is biased at O(1/N) (refit at N=50: -12%), so this runs at
    N=2000 and allows 5 SE."""
    w, v, w_star, v_star = trained_like(N=2000, seed=4)
    r = prune_weights(w, v, w_star, v_star, method="random_edge", c=0.4, reweight=reweight,
                      n_samples=10_000, n_masks=12, n_test=2, seed=5)
    assert abs(r.eg_mean - r.prediction.eg_mean) < Z5 * r.eg_se, (r.eg_mean, r.eg_se)


def test_accepts_simulation_result():
    sim = odeprune.simulate(N=100, K=6, M=2, eta=0.5, alpha_max=100.0, seed=0, n_test=100)
    r = prune_weights(sim, method="dpp_node", k=2, n_samples=5000, n_masks=5, n_test=500,
                      seed=0)
    state = OrderParams.from_weights(sim.w, sim.w_star, sim.v[-1], sim.v_star)
    expected = prune(state, "dpp_node", k=2)
    assert r.prediction.eg_mean == pytest.approx(expected.eg_mean, rel=1e-12)
    assert r.metadata["N"] == 100 and r.metadata["activation"] == "erf"


def test_finite_bad_input(weights):
    w, v, w_star, v_star = weights
    with pytest.raises(ValueError, match="k=7 is out of range"):
        prune_weights(w, v, w_star, v_star, method="random_node", k=7)
    with pytest.raises(ValueError, match="c=2"):
        prune_weights(w, v, w_star, v_star, method="random_edge", c=2)
    with pytest.raises(ValueError, match="method='x' is unknown"):
        prune_weights(w, v, w_star, v_star, method="x", k=1)
    with pytest.raises(ValueError, match="kernel='L' is unknown"):
        prune_weights(w, v, w_star, v_star, method="dpp_node", k=1, kernel="L")
    with pytest.raises(ValueError, match="needs w, v, w_star and v_star"):
        prune_weights(w, method="random_node", k=1)
    with pytest.raises(ValueError, match="n_masks=0"):
        prune_weights(w, v, w_star, v_star, method="random_node", k=1, n_masks=0)


@pytest.mark.slow
def test_paper_setting_finite_vs_limit():
    """Acharyya et al. (2021), Section 4: M=2, K=6, N=500, eta=0.5, v*=4, alpha=1600. For every
    method (k = 1, 2) the pruned test error agrees with the prediction from the simulation's own
    final order parameters (paired, 5 SE plus 2% for the n-sample kernel/reweighting)."""
    sim = odeprune.simulate(N=500, K=6, M=2, eta=0.5, alpha_max=1600.0, seed=0, n_test=100)
    for method, size in [("random_node", dict(k=2)), ("importance_node", dict(k=1)),
                         ("dpp_node", dict(k=2)), ("dpp_map_node", dict(k=2)),
                         ("random_edge", dict(c=1 / 3))]:
        r = prune_weights(sim, method=method, n_samples=20_000, n_masks=20, n_test=2000,
                          seed=0, **size)
        p = r.prediction
        assert abs(r.test_error_mean - p.eg_mean) < (Z5 * np.hypot(r.test_error_se, r.limit_se)
                                                     + 0.02 * p.eg_mean), (method, r)


def test_finite_reweightings_are_least_squares_on_the_samples():
    """The finite-N reweightings (the limit maps on empirical second moments) against direct
    least squares on the same samples."""
    from odeprune.activations import get_activation
    from odeprune.pruning.reweight import reweight_edges_finite, reweight_node_finite

    rng = np.random.default_rng(11)
    K, M, N, n = 5, 2, 40, 3000
    w, w_star = rng.standard_normal((K, N)), rng.standard_normal((M, N))
    v, v_star = rng.standard_normal(K), rng.standard_normal(M)
    act = get_activation("erf")
    X = rng.standard_normal((n, N))
    H = X @ w.T / np.sqrt(N)
    Gs, Gt = act.g(H), act.g(X @ w_star.T / np.sqrt(N))
    y = Gt @ v_star
    S = np.array([0, 2, 3])
    rem = np.array([1, 4])

    def lstsq(A, b):
        return np.linalg.lstsq(A, b, rcond=None)[0]

    expect = {"none": v[S], "preact": v[S] + lstsq(H[:, S], H[:, rem] @ v[rem]),
              "activation": v[S] + lstsq(Gs[:, S], Gs[:, rem] @ v[rem]),
              "refit": lstsq(Gs[:, S], y)}
    for how, ref in expect.items():
        got = reweight_node_finite(H, Gs, Gt, v, v_star, S[None], how)[0]
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    mask = rng.random((K, N)) < 0.6
    wp = w * mask
    Gp = act.g(X @ wp.T / np.sqrt(N))
    phi = Gp @ v
    norms = np.linalg.norm(w, axis=1) / np.linalg.norm(wp, axis=1)
    expect = {"none": (wp, v), "rescale_rows": (wp * norms[:, None], v),
              "rescale": (wp, v * (phi @ y) / (phi @ phi)), "refit": (wp, lstsq(Gp, y))}
    for how, (w_ref, v_ref) in expect.items():
        w_got, v_got = reweight_edges_finite(w, mask, v, w_star, v_star, how, X, act)
        np.testing.assert_allclose(w_got, w_ref, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(v_got, v_ref, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="needs the training inputs"):
        reweight_edges_finite(w, mask, v, w_star, v_star, "refit", None, act)
