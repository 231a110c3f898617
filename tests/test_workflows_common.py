"""What the workflows share (``odeprune.workflows._common``): the finite-N edge reweighting
against independent least-squares fits, and the Monte-Carlo replicas' seeds."""

import math

import numpy as np
import pytest

from odeprune.activations import get_activation
from odeprune.pruning.finite_edges import edge_mask
from odeprune.pruning.reweight import reweight_edges_finite as reweight_edges
from odeprune.state import OrderParams
from odeprune.workflows._common import Start, prune_edges, replica_seed

N, K, M = 300, 4, 2


@pytest.fixture(scope="module")
def weights():
    w, w_star, v, v_star = OrderParams.draw_weights(N, K, M, 4.0, 0)
    return w, w_star, np.asarray(v, float) + 0.3, v_star


@pytest.mark.parametrize("reweight", ["none", "rescale", "refit", "rescale_rows"])
def test_edge_reweighting_is_the_least_squares_fit(weights, reweight):
    """refit: numpy's least squares of the teacher's output on the pruned fields; rescale: the
    best scalar on v; rescale_rows: each pruned row regains its norm; none: v unchanged."""
    w, w_star, v, v_star = weights
    act = get_activation("erf")
    mask = edge_mask(w, "magnitude_edge", 0.5)[0]
    X = np.random.default_rng(7).standard_normal((4000, N))
    wp, vp = reweight_edges(w, mask, v, w_star, v_star, reweight, X, act)
    G = act.g(X @ (w * mask).T / math.sqrt(N))
    y = act.g(X @ w_star.T / math.sqrt(N)) @ v_star
    if reweight == "refit":
        np.testing.assert_allclose(vp, np.linalg.lstsq(G, y, rcond=None)[0], rtol=1e-9)
    elif reweight == "rescale":
        phi = G @ v
        np.testing.assert_allclose(vp, v * (phi @ y) / (phi @ phi), rtol=1e-12)
    else:
        np.testing.assert_array_equal(vp, v)
    if reweight == "rescale_rows":
        np.testing.assert_allclose(np.linalg.norm(wp, axis=1), np.linalg.norm(w, axis=1),
                                   rtol=1e-12)
        np.testing.assert_array_equal(wp != 0, mask & (w != 0))
    else:
        np.testing.assert_array_equal(wp, w * mask)


def test_prune_edges_draws_the_mask_then_the_inputs(weights):
    """One generator: the random mask first, then the inputs of the fit (the streams the
    finite-N workflows document)."""
    w, w_star, v, v_star = weights
    act = get_activation("erf")
    out = prune_edges(Start(w, w_star, v, v_star), "random_edge", 0.5, "refit",
                      np.random.default_rng(3), 2000, act)
    rng = np.random.default_rng(3)
    mask = edge_mask(w, "random_edge", 0.5, seed=rng)[0]
    X = rng.standard_normal((2000, N))
    np.testing.assert_array_equal(out.mask, mask)
    np.testing.assert_allclose(out.v, reweight_edges(w, mask, v, w_star, v_star, "refit", X,
                                                     act)[1], rtol=1e-13)
    sp = out.order_params()
    assert sp.n_classes >= 1
    np.testing.assert_allclose(sp.eg(), OrderParams.from_weights(out.w, w_star, out.v,
                                                                 v_star).eg(), rtol=1e-10)


def test_replica_seeds_are_shared_by_arms_and_distinct_across_replicas():
    a = [np.random.default_rng(replica_seed(5, b)).random() for b in range(4)]
    assert a == [np.random.default_rng(replica_seed(5, b)).random() for b in range(4)]
    assert len(set(a)) == 4
    assert np.random.default_rng(replica_seed(6, 0)).random() != a[0]
