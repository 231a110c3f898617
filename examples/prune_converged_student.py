"""Prune a converged student: the thermodynamic limit vs real finite-N weights.

The paper's setting (Acharyya et al. 2021, Section 4): M=2, K=6, N=500, eta=0.5, v*=4,
alpha=1600. Train a finite-N student by online SGD, then prune it with every method, both as a
map on its own final order parameters (N -> infinity) and on its real weights (test error on
fresh samples, standard errors over masks). Runs in about a minute.
"""

import odeprune
from odeprune.pruning import prune_weights

sim = odeprune.simulate(N=500, K=6, M=2, eta=0.5, alpha_max=1600.0, v_star=4.0, seed=0)
state = odeprune.OrderParams.from_weights(sim.w, sim.w_star, sim.v[-1], sim.v_star)
print(f"trained student: eg = {state.eg():.4g} (test {sim.eg_test[-1]:.4g})")

# "+-": standard error of the finite-N mean (over masks, fresh test samples per mask);
# "z": (finite - limit) / sqrt(se^2 + limit_std^2 / n_masks)
print(f"{'method':<16}{'k/c':>7}  {'reweight':<11}{'limit':>10}{'finite N':>10}{'+-':>8}"
      f"{'z':>7}")
for k in (1, 2):
    for method, reweights in [("random_node", ("none", "activation")),
                              ("importance_node", ("none", "activation")),
                              ("dpp_node", ("none", "activation")),
                              ("dpp_map_node", ("none",)),
                              ("random_edge", ("none", "rescale"))]:
        size = dict(c=k / 6) if method == "random_edge" else dict(k=k)
        for rw in reweights:
            r = prune_weights(sim, method=method, reweight=rw, n_samples=20_000, n_masks=20,
                              n_test=5_000, seed=1, **size)
            label = f"{k}" if method != "random_edge" else f"{k / 6:.3f}"
            z = ((r.test_error_mean - r.prediction.eg_mean)
                 / (r.test_error_se**2 + r.limit_se**2) ** 0.5)
            print(f"{method:<16}{label:>7}  {rw:<11}{r.prediction.eg_mean:>10.4f}"
                  f"{r.test_error_mean:>10.4f}{r.test_error_se:>8.4f}{z:>7.2f}")
