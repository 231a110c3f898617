"""Pruning at initialisation (``odeprune.workflows.init``): the row rescale, seeds, and the limit
against real networks at finite N on the same seeds."""

from __future__ import annotations

import numpy as np
import pytest

import odeprune
from odeprune import OrderParams, workflows
from tests.test_workflows import ETA, SEEDS, V_STAR, K, M, _check_shrinks, _paired


def test_prune_at_init_rescale_restores_row_norms():
    init = OrderParams.random(N=500, K=4, M=2, v_star=4.0, seed=0)
    r = workflows.prune_at_init(init, "random_edge", 0.3, rescale=True, alpha_max=5,
                                report=[1])
    sp = r.curves[r.arms[0]].initial
    np.testing.assert_allclose(np.diag(sp.dense().Q), np.diag(init.Q), rtol=1e-12)
    np.testing.assert_allclose(r.eg["dense"],
                               odeprune.integrate(init, eta=ETA, alpha_max=5.0,
                                                  save_at=r.alpha["dense"],
                                                  progress=False).eg, rtol=1e-12)


def test_finite_refuses_bad_seeds():
    with pytest.raises(ValueError, match="seeds"):
        workflows.prune_at_init_finite(100, 3, 1, "random_edge", 0.5, seeds=[0, 0])


@pytest.mark.slow
def test_prune_at_init_limit_matches_finite_N():
    alpha_max = 10.0
    stats = {}
    for N in (500, 2000):
        fin = workflows.prune_at_init_finite(N, K, M, "magnitude_edge", 0.5, seeds=SEEDS,
                                             alpha_max=alpha_max, report=[alpha_max],
                                             v_star=V_STAR, dense=False, ode=False,
                                             save_at=[alpha_max])
        arm = fin.arms[0]
        lim = []
        for s in SEEDS:
            r = workflows.prune_at_init(OrderParams.random(N, K, M, V_STAR, seed=s),
                                        "magnitude_edge", 0.5, alpha_max=alpha_max,
                                        report=[alpha_max], dense=False, seed=s,
                                        n_samples=50_000, save_at=[alpha_max])
            lim.append(r.eg_at(r.arms[0], alpha_max))
        stats[N] = _paired(lim, fin.eg[arm][:, -1])
    _check_shrinks(stats)
