"""A learning curve: ODE (N -> infinity) against finite-N online SGD, then pruning.

The paper's setting (Acharyya et al. 2021, Section 4): M=2 teacher units, K=6 student units,
eta=0.5, v*=4, all weights N(0,1). Runs in about ten seconds.

    python examples/learning_curve.py
"""

import numpy as np

import odeprune

N, K, M, ETA, V_STAR, ALPHA = 500, 6, 2, 0.5, 4.0, 100.0

# finite N: three seeds of online SGD
runs = odeprune.simulate(N, K, M, ETA, ALPHA, v_star=V_STAR, n_runs=3, seed=0, n_test=0)

# thermodynamic limit: the ODE from each run's initial order parameters
curves = [odeprune.integrate(run.initial, ETA, ALPHA, save_at=runs.alpha) for run in runs]
ode_eg = np.mean([c.eg for c in curves], axis=0)

print(f"{'alpha':>8} {'SGD mean':>10} {'SGD std':>10} {'ODE':>10}")
for j in np.unique(np.geomspace(1, len(runs.alpha) - 1, 10).astype(int)):
    print(f"{runs.alpha[j]:8.3g} {runs.eg_mean[j]:10.4g} {runs.eg_std[j]:10.3g} {ode_eg[j]:10.4g}")

# prune the trained (ODE) student to k=2 units: DPP against random node pruning
state = curves[0].final
for method in ("dpp_node", "random_node"):
    res = odeprune.prune(state, method, k=2, reweight="preact")
    print(f"{method:12s} k=2: eps_g = {res.eg_mean:.4g} +- {res.eg_std:.3g}")
