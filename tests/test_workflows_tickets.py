"""Lottery tickets (``odeprune.workflows.tickets``): at full density the ticket is the dense
network; the limit against real networks at finite N on the same seeds."""

from __future__ import annotations

import numpy as np
import pytest

from odeprune import OrderParams, workflows
from tests.test_workflows import SEEDS, V_STAR, K, M, _check_shrinks, _paired


def test_ticket_at_full_density_is_the_dense_network():
    """c = 1 keeps every weight: ticket, random, magnitude-at-init are the dense network."""
    init = OrderParams.random(N=500, K=3, M=1, v_star=4.0, seed=0)
    r = workflows.lottery_ticket(init, 1.0, alpha_T=5, alpha_max=5, report=[1],
                                 arms=("dense", "ticket", "random"), n_samples=20_000)
    for arm in ("ticket", "random"):
        np.testing.assert_allclose(r.eg[arm], r.eg["dense"], rtol=1e-9)


@pytest.mark.slow
def test_lottery_ticket_limit_matches_finite_N():
    """The ticket (mask of w(alpha_T) on w(0), from the two-time law in the limit) and the
    fine-tuned network, against real tickets on the same seeds."""
    alpha_T, alpha_max = 10.0, 10.0
    arms = ("ticket", "finetune")
    stats = {a: {} for a in arms}
    for N in (500, 2000):
        fin = workflows.lottery_ticket_finite(N, K, M, 0.5, seeds=SEEDS, alpha_T=alpha_T,
                                              alpha_max=alpha_max, report=[alpha_max],
                                              v_star=V_STAR, arms=arms, ode=False,
                                              save_at=[alpha_max])
        lim = {a: [] for a in arms}
        for s in SEEDS:
            r = workflows.lottery_ticket(OrderParams.random(N, K, M, V_STAR, seed=s), 0.5,
                                         alpha_T=alpha_T, alpha_max=alpha_max,
                                         report=[alpha_max], arms=arms, seed=s,
                                         n_samples=50_000, save_at=[alpha_max])
            for a in arms:
                lim[a].append(r.eg_at(a, alpha_max))
        for a in arms:
            stats[a][N] = _paired(lim[a], fin.eg[a][:, -1])
    for a in arms:
        _check_shrinks(stats[a])
