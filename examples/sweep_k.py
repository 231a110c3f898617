"""Sweep the number of kept units k (and c = k/K for edge pruning) on an ODE-converged student.

Integrates the order-parameter ODEs for M=2, K=6 (the paper's Fig. 2A setting, N -> infinity),
then prints eg after pruning to k = 1..K units with each method, and the paper's closed forms on
the specialised ansatz for comparison (Lemma 2, Lemma 4). A few seconds.
"""

import numpy as np

import odeprune
from odeprune import OrderParams
from odeprune.pruning import theory

curve = odeprune.integrate(OrderParams.random(500, 6, 2, v_star=4.0, seed=0), eta=0.5,
                           alpha_max=1600.0)
state = curve.final
K, M = state.K, state.M
Z = K // M
print(f"converged: eg = {state.eg():.3g};  Q =\n{np.round(state.Q, 2)}")

methods = ["random_node", "importance_node", "dpp_node", "dpp_map_node"]
print(f"\n{'k':>3} {'c':>6} " + " ".join(f"{m:>15}" for m in methods)
      + f" {'random_edge':>12} {'Lemma2':>8} {'Lemma4':>8}")
for k in range(1, K + 1):
    row = []
    for m in methods:
        try:
            row.append(odeprune.prune(state, m, k=k).eg_mean)
        except ValueError:  # k above the rank of the DPP kernel
            row.append(float("nan"))
    edge = odeprune.prune(state, "random_edge", c=k / K).eg_mean
    l2 = theory.lemma2_dpp_node(M, Z, k, 4.0) if k <= M else float("nan")
    l4 = theory.lemma4_random_edge(M, Z, k / K, 4.0)
    print(f"{k:>3} {k / K:>6.3f} " + " ".join(f"{x:>15.4f}" for x in row)
          + f" {edge:>12.4f} {l2:>8.4f} {l4:>8.4f}")
