"""ODE learning curve against finite-N SGD simulations (mean +- std over seeds).

The pruning paper's two settings (Acharyya et al. 2021, Section 4): N=500, eta=0.5, v*=4,
(M, K) = (2, 6) and (5, 20), sigma in {0, 0.25}. Each seed's ODE starts from the order parameters
of that run's initial weights (``simulate`` draws them exactly as ``OrderParams.random`` does);
the line is the mean of these ODE curves.
Defaults are small (alpha up to 30, 3 seeds: about a minute); ``--alpha-max 1000 --runs 10`` for
the full curves.

    python examples/ode_vs_simulation.py [--alpha-max 30] [--runs 3] [--output ode_vs_sim.png]
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import odeprune  # noqa: E402

N, ETA, V_STAR = 500, 0.5, 4.0


def main() -> None:
    ap = argparse.ArgumentParser(description="ODE vs finite-N SGD learning curves")
    ap.add_argument("--alpha-max", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--output", default="ode_vs_simulation.png")
    args = ap.parse_args()
    save_at = np.geomspace(0.1, args.alpha_max, 30)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (M, K) in zip(axes, ((2, 6), (5, 20))):
        for sigma, color in ((0.0, "C0"), (0.25, "C1")):
            ens = odeprune.simulate(N, K, M, ETA, args.alpha_max, save_at=save_at, sigma=sigma,
                                    v_star=V_STAR, seed=0, n_runs=args.runs, n_test=0)
            # one ODE per seed, from that run's initial order parameters; plot their mean
            ode_eg = np.mean([odeprune.integrate(run.initial, ETA, args.alpha_max,
                                                 save_at=ens.alpha, sigma=sigma).eg
                              for run in ens], axis=0)
            a = ens.alpha[1:]  # skip alpha = 0 on the log axis
            lo, hi = (ens.eg_mean - ens.eg_std)[1:], (ens.eg_mean + ens.eg_std)[1:]
            ax.fill_between(a, np.clip(lo, 1e-6, None), hi, color=color, alpha=0.25)
            ax.plot(a, ens.eg_mean[1:], "o", ms=3, color=color,
                    label=f"SGD N={N}, σ={sigma} ({args.runs} seeds)")
            ax.plot(a, ode_eg[1:], "-", color=color, label=f"ODE, σ={sigma} (same starts)")
        ax.set(xscale="log", yscale="log", xlabel=r"$\alpha$", title=f"M={M}, K={K}")
        ax.legend(fontsize=7)
    axes[0].set_ylabel(r"$\epsilon_g$ (noiseless labels)")
    fig.tight_layout()
    fig.savefig(args.output, dpi=130)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
