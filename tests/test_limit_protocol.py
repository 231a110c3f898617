"""Zhang et al.'s pruning-limit protocol (odeprune.landscape.l1, .protocol): L1-trained networks in
the limit (coordinate law) against finite-N L1 SGD (eps_g, the coordinate histogram, the
protocol's actual and predicted limits; error bars shrinking with N), the gradient-flow L1
minimum (stationary, exact zeros, the protocol's own consistency), the batch-loss spread against
its closed form (linear) and Monte Carlo (erf, ReLU), and bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import odeprune
from odeprune import landscape as ls
from odeprune.coords import decide
from odeprune.landscape.protocol import _Replica

K, M, V_STAR, LAM, ETA, ALPHA = 3, 2, 2.0, 0.02, 0.5, 30.0
SEEDS = range(8)


def _start():
    return odeprune.OrderParams.random(500, K, M, v_star=V_STAR, seed=0)


def _z(a, sa, b, sb):
    return np.abs(np.asarray(a) - np.asarray(b)) / np.sqrt(np.asarray(sa) ** 2
                                                           + np.asarray(sb) ** 2)


def _seed_se(law, values):
    """Standard error over the replicas (seeds) of a per-replica quantity."""
    v = np.asarray(values)
    return v.std(axis=0, ddof=1) / math.sqrt(v.shape[0])


def _hist(law):
    return np.array([[float(np.sum(law.weights[r][:, None] * (np.abs(law.w[r]) < t)) / law.K)
                      for t in ls.HISTOGRAM_THRESHOLDS] for r in range(law.replicas)])


# ------------------------------------------------------------------ L1 SGD: limit vs finite N
@pytest.fixture(scope="module")
def sgd():
    """The same L1 online SGD (K=3, M=2, v*=2, lambda=0.02, eta=0.5, alpha=30) in the limit
    (particle SDE, 4000 particles x 8 replicas) and at N = 500, 2000 (8 seeds, weights realised
    with the start's order parameters)."""
    start = _start()
    limit = ls.l1_minimum(start, LAM, eta=ETA, alpha_max=ALPHA, gradient_flow=False, S=4000,
                          replicas=8, dt=0.05, seed=1)
    finite = {N: ls.l1_minimum_finite(start, N, LAM, eta=ETA, alpha_max=ALPHA, seeds=SEEDS)
              for N in (500, 2000)}
    return limit, finite


def test_l1_training_limit_against_finite_n(sgd):
    """eps_g and the fractions of |w| below 0.01, 0.05, 0.2 agree within 4 combined standard
    errors at N = 500 and 2000, and the finite-N error bars shrink with N."""
    limit, finite = sgd
    hl = _hist(limit.law)
    ses = {}
    for N, fin in finite.items():
        assert fin.N == N and fin.law.replicas == len(SEEDS)
        assert _z(fin.eg, fin.eg_se, limit.eg, limit.eg_se) < 4, (N, fin.eg, limit.eg)
        hf = _hist(fin.law)
        np.testing.assert_allclose(hf.mean(0), fin.histogram, rtol=1e-12)
        z = _z(hf.mean(0), _seed_se(fin.law, hf), hl.mean(0), _seed_se(limit.law, hl))
        assert np.all(z < 4), (N, hf.mean(0), hl.mean(0), z)
        ses[N] = (fin.eg_se, _seed_se(fin.law, hf))
    assert ses[2000][0] < ses[500][0]
    assert np.all(ses[2000][1] < ses[500][1])
    # L1 SGD leaves no exact zeros (a cusp), unlike gradient flow
    assert limit.histogram[0] > 0 and np.mean(limit.law.w == 0) < 0.01


def test_protocol_limit_against_finite_n(sgd):
    """Their protocol (one-shot global magnitude pruning, no refit; eps free and their batch
    spread) on the limit law and on the real networks: the actual and predicted kept fractions
    agree within 4 combined standard errors, and the finite-N error bars shrink with N."""
    limit, finite = sgd
    pl = ls.protocol_limit(limit, check="ignore", xtol=2e-3)
    assert pl.eps_labels[-1] == "batch" and pl.N is None
    se = {}
    for N, fin in finite.items():
        pf = ls.protocol_limit(fin, check="ignore", xtol=2e-3)
        assert pf.N == N
        # their epsilon (the last column; the others are the free tolerances)
        assert _z(pf.mean("eps")[-1], pf.se("eps")[-1], pl.mean("eps")[-1],
                  pl.se("eps")[-1]) < 4
        for q in ("actual", "predicted", "predicted_abs", "upper"):
            z = _z(pf.mean(q), pf.se(q), pl.mean(q), pl.se(q))
            # xtol = 2e-3 is the resolution of the actual limit: part of its error bar
            if q == "actual":
                z = np.abs(pf.mean(q) - pl.mean(q)) / np.sqrt(pf.se(q) ** 2 + pl.se(q) ** 2
                                                              + 2e-3 ** 2)
            assert np.all(z < 4), (N, q, pf.mean(q), pl.mean(q))
        se[N] = pf.se("predicted")
    assert np.all(se[2000] < se[500])
    # their batch epsilon at this state, and the formula below the actual limit (the gap)
    assert np.all(pl.batch_sd > 0)
    assert np.all(pl.mean("predicted") < pl.mean("actual"))


def test_non_stationary_minimum_is_refused():
    limit = ls.l1_minimum(_start(), LAM, alpha_max=20.0, S=500, replicas=2, seed=0)
    assert not limit.stationary and limit.message       # alpha = 20 is still learning
    with pytest.raises(ValueError, match="not an L1 minimum"):
        ls.protocol_limit(limit)
    with pytest.raises(ValueError, match="not an L1 minimum"):
        limit.check()


# ------------------------------------------------------------------ gradient flow: a minimum
@pytest.fixture(scope="module")
def gf_minimum():
    """Gradient flow with L1 (lambda = 0.02) from the unregularised gradient-flow minimum."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", odeprune.OdepruneAccuracyWarning)
        dense = odeprune.integrate(_start(), 1.0, 2000.0, gradient_flow=True,
                                   save_at=[0.0, 2000.0]).final
    return dense, ls.l1_minimum(dense, LAM, alpha_max=1500.0, S=1000, replicas=2, seed=0)


def test_gradient_flow_l1_minimum_is_stationary_with_exact_zeros(gf_minimum):
    dense, mn = gf_minimum
    assert mn.stationary, mn.message
    assert mn.gradient_flow and mn.velocity <= mn.tol
    assert np.all(mn.residual <= mn.residual_tol)
    assert abs(mn.eg_drift) <= mn.tol * mn.eg + 3 * mn.eg_drift_se
    assert np.mean(mn.law.w == 0) > 0.1                 # gradient flow gives exact zeros
    np.testing.assert_allclose(ls.l1_residual(mn.law, LAM), mn.residual)
    # the unregularised minimum is a KKT point of lambda = 0, not of lambda = 0.02
    dense_law = odeprune.CoordinateLaw.from_state(dense, S=1000, replicas=1, seed=0)
    assert ls.l1_residual(dense_law, 0.0)[0] == pytest.approx(
        ls.gradient(dense_law.replica_state(0)).norm, rel=1e-3)   # O(1) terms cancel to 1e-5
    assert ls.l1_residual(dense_law, LAM)[0] > mn.residual_tol
    with pytest.raises(ValueError, match="not a minimum"):
        ls.protocol_limit(dense_law, l1=LAM)


def test_protocol_consistency_at_the_gradient_flow_minimum(gf_minimum):
    """Pruned errors equal coords.decide; the actual limit brackets the tolerance; pruning the
    exact zeros costs nothing; the bounds are ordered as their theorem says."""
    _, mn = gf_minimum
    xtol = 1e-3
    pl = ls.protocol_limit(mn, xtol=xtol)
    law = mn.law
    for rho in (0.3, 0.6, 0.9):
        ref = decide(law, "magnitude_edge_global", rho).eg_replicas()
        mine = [_Replica(law, r).eg(rho) for r in range(law.replicas)]
        np.testing.assert_allclose(mine, ref, rtol=1e-12)
    for r in range(law.replicas):
        rep = _Replica(law, r)
        for j, e in enumerate(pl.eps[r]):
            c = pl.actual[r, j]
            assert rep.eg(c) <= pl.eg_star[r] + e
            if c > xtol:
                assert rep.eg(c - xtol) > pl.eg_star[r] + e
            assert c <= pl.nonzero[r] + xtol            # removing exact zeros is free
        assert rep.eg(pl.nonzero[r] + 1e-9) == pytest.approx(pl.eg_star[r], rel=1e-10)
    assert np.all(pl.predicted <= pl.trace + 1e-12)
    assert np.all(pl.predicted <= pl.upper + 1e-12)
    assert np.all(pl.predicted <= pl.predicted_theirs + 1e-12)
    assert np.all((pl.flat >= 0) & (pl.flat <= 1))


# ------------------------------------------------------------------ their epsilon
def test_batch_loss_sd_linear_closed_form():
    st = odeprune.OrderParams.random(500, 3, 2, v_star=1.0, seed=2, activation="linear")
    sp = ls.batch_loss_sd(st)
    assert sp.method == "exact"
    assert sp.sd == pytest.approx(st.eg() * math.sqrt(2 / 128), rel=1e-12)
    assert sp.sd == pytest.approx(st.eg() / 8, rel=1e-12)            # eps_g/8 at B = 128 (docs/landscape.md)
    assert ls.batch_loss_sd(st, B=32).sd == pytest.approx(2 * sp.sd, rel=1e-12)


@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_batch_loss_sd_against_monte_carlo(activation):
    """E[Delta^4] by quasi-Monte Carlo against plain Monte Carlo of the fields (5 combined
    standard errors), and the formula's sd against the spread of real B = 128 batch losses of a
    finite network with these order parameters (N = 60; sd of sd over 16 groups)."""
    st0 = odeprune.OrderParams.random(500, 3, 2, v_star=1.5, seed=3, activation=activation)
    st = odeprune.integrate(st0, 0.5, 5.0, save_at=[0.0, 5.0]).final
    sp = ls.batch_loss_sd(st, samples=2 ** 14, replicates=8, seed=0)
    rng = np.random.default_rng(11)
    C = np.array(st.covariance())
    ev, U = np.linalg.eigh(C)
    A = U * np.sqrt(np.clip(ev, 0, None))
    a = np.asarray(st.signed_weights())
    g = odeprune.activations.get_activation(activation).g
    batches = []
    for _ in range(10):
        z = rng.standard_normal((200_000, C.shape[0])) @ A.T
        batches.append(np.mean((g(z) @ a) ** 4))
    mc, mc_se = np.mean(batches), np.std(batches, ddof=1) / math.sqrt(len(batches))
    assert abs(sp.fourth_moment - mc) < 5 * math.hypot(mc_se, sp.fourth_moment_se)
    # real batches at finite N (the spread depends on the order parameters only)
    N, B = 60, 128
    w, w_star = ls.realise_weights(st, N, seed=5)
    groups = []
    for _ in range(16):
        x = rng.standard_normal((400 * B, N))
        d = g(x @ w.T / math.sqrt(N)) @ np.asarray(st.v) - g(x @ w_star.T / math.sqrt(N)) @ \
            np.asarray(st.v_star)
        groups.append(np.std(np.mean(0.5 * d.reshape(400, B) ** 2, axis=1), ddof=1))
    emp, emp_se = np.mean(groups), np.std(groups, ddof=1) / math.sqrt(len(groups))
    assert abs(emp - sp.sd) < 5 * math.hypot(emp_se, sp.sd_se), (emp, sp.sd)
    assert sp.sd != pytest.approx(st.eg() / 8, rel=0.05)           # not Gaussian


# ------------------------------------------------------------------ bad input
def test_bad_input():
    st = _start()
    with pytest.raises(ValueError, match="l1"):
        ls.l1_minimum(st, -0.1)
    with pytest.raises(ValueError, match="l1"):
        ls.l1_minimum_finite(st, 100, -1.0)
    with pytest.raises(ValueError, match="l1"):
        ls.l1_residual(odeprune.CoordinateLaw.from_state(st, S=50, replicas=1), -0.5)
    with pytest.raises(ValueError, match="window"):
        ls.l1_minimum(st, 0.1, alpha_max=1.0, window=2.0)
    with pytest.raises(ValueError, match="not a minimum"):          # a random network
        ls.protocol_limit(st, S=200, replicas=2)
    with pytest.raises(ValueError, match="not a minimum"):
        ls.protocol_limit(odeprune.CoordinateLaw.from_state(st, S=200, replicas=2), l1=0.1)
    with pytest.raises(ValueError, match="l1"):
        ls.protocol_limit(st, l1=-1.0)
    with pytest.raises(ValueError, match="eps"):
        ls.protocol_limit(st, eps=[0.0], check="ignore", S=200, replicas=2)
    with pytest.raises(ValueError, match="check"):
        ls.protocol_limit(st, check="maybe")
    with pytest.raises(ValueError, match="B="):
        ls.batch_loss_sd(st, B=0)
    with pytest.raises(ValueError, match="OrderParams"):
        ls.batch_loss_sd(st.Q)
