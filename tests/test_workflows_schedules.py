"""IMP and gradual pruning (``odeprune.workflows.schedules``): the limit engines against real networks
at finite N, masks nested and rewound, starts from a coordinate law or given weights, and the
SGD streams of the rounds."""

import numpy as np
import pytest

import odeprune
from odeprune.coords import CoordinateLaw, decide
from odeprune.workflows import schedules
from tests.test_coords import _state


def _imp_gap(N, seeds, rounds=2):
    L, F = [], []
    for s in seeds:
        st = odeprune.OrderParams.random(N=N, K=4, M=2, v_star=2.0, seed=s)
        lim = schedules.imp_limit(st, rounds=rounds, prune_fraction=0.4, alpha_per_round=20.0,
                                  S=8000, replicas=4, seed=s)
        fin = schedules.imp_finite(N, 4, 2, rounds=rounds, prune_fraction=0.4,
                                   alpha_per_round=20.0, v_star=2.0, seed=s)
        L.append(lim["eg"][:, -1])
        F.append(fin["eg"])
        assert np.allclose(fin["c"], lim["c"], atol=2 / N)
    return np.array(L), np.array(F)


def test_imp_limit_is_exact_in_round_two_against_finite_n():
    """IMP keeping 0.6 per row per round: the limit of each seed's own initial state against the
    real network, per seed, for N = 500 and 2000 over 6 seeds: the mean gap lies within 3
    standard errors of the per-seed gaps, and the rms gap shrinks with N."""
    rms = {}
    for N in (500, 2000):
        L, F = _imp_gap(N, range(6))
        d = (F - L)[:, 2]  # round 2 (36 % kept): where the per-class Gaussian closure fails
        assert abs(d.mean()) < 3 * d.std(ddof=1) / np.sqrt(len(d)) + 1e-4, (N, d)
        rms[N] = float(np.sqrt(np.mean(np.square(F - L))))
    assert rms[2000] < rms[500]


def test_imp_finite_masks_are_nested_and_rewound():
    imp = schedules.imp_finite(200, 4, 2, eta=0.5, alpha_per_round=10, rounds=2,
                               prune_fraction=0.5, v_star=3.0, seed=1, n_test=100)
    np.testing.assert_allclose(imp["c"], [1.0, 0.5, 0.25])
    assert np.all(imp["masks"][2] <= imp["masks"][1])
    for mask, w in zip(imp["masks"][1:], imp["w"][1:]):
        assert np.all(w[~mask] == 0)  # training keeps pruned weights at zero
    w0, ws, v0, _ = odeprune.OrderParams.draw_weights(200, 4, 2, 3.0, seed=1)
    for mask, init in zip(imp["masks"], imp["initial"]):  # every round starts from w(0) masked
        assert init == odeprune.OrderParams.from_weights(w0 * mask, ws, v0, init.v_star)
    assert np.isnan(imp["eg_pruned"][0]) and np.all(np.isfinite(imp["eg_pruned"][1:]))


def test_imp_from_a_coordinate_law_and_from_explicit_weights():
    st = _state(K=3, M=1)
    law = CoordinateLaw.from_state(st, S=2000, replicas=2, seed=0)
    out = schedules.imp_limit(law, rounds=1, prune_fraction=0.5, alpha_per_round=5.0)
    assert out["c"][0] == pytest.approx(1.0, abs=1e-12)
    assert out["c"][1] == pytest.approx(0.5, abs=1e-3)
    w, ws, v, vs = odeprune.OrderParams.draw_weights(100, 3, 1, v_star=1.0, seed=3)
    fin = schedules.imp_finite(100, 3, 1, rounds=1, prune_fraction=0.5, alpha_per_round=2.0,
                               v_star=1.0, init=(w, 0 * ws, v))
    assert fin["initial"][0].T[0, 0] == 0.0  # the given (here: zero) teacher was used


def test_gradual_from_a_masked_law_prunes_on_from_its_density():
    st = _state(K=3, M=1)
    law = decide(CoordinateLaw.from_state(st, S=3000, replicas=2, seed=0), "random", 0.5)
    out = schedules.gradual_limit(law, ([1.0], [0.25]), 2.0)
    assert out["law"].density() == pytest.approx(0.25, abs=0.01)
    with pytest.raises(ValueError, match="current"):
        schedules.gradual_limit(law, ([1.0], [0.6]), 2.0)


def test_imp_finite_fresh_streams_change_only_the_retraining_noise():
    kw = dict(rounds=2, prune_fraction=0.5, alpha_per_round=3.0, v_star=2.0, seed=2)
    same = schedules.imp_finite(200, 3, 1, fresh_streams=False, **kw)
    fresh = schedules.imp_finite(200, 3, 1, **kw)
    assert same["eg"][0] == fresh["eg"][0]                      # the dense round is shared
    assert np.array_equal(same["masks"][1], fresh["masks"][1])  # so is the first mask
    assert same["eg"][2] != fresh["eg"][2]
