"""Learning curves in the style of Goldt et al. (2019): ODE against finite-N SGD for several N.

M=2, K=6, eta=0.5, v*=4, sigma=0, all weights N(0,1). For every N and seed, ``simulate`` runs
online SGD and ``integrate`` starts from the order parameters of that run's initial weights
(``OrderParams.random(N, K, M, v_star, seed)``); the plot shows the simulation mean +- std over
seeds (markers, band) and the mean of the ODE curves (line). Errors are noiseless eps_g from the
order parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import subplots
from . import _common

NAME = "curves"
FULL = dict(Ns=[250, 1000, 4000], K=6, M=2, eta=0.5, v_star=4.0, sigma=0.0, alpha_max=200.0,
            seeds=[0, 1, 2, 3])
QUICK = dict(FULL, Ns=[50, 100], alpha_max=10.0, seeds=[0, 1])


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    p = params
    rows, curves = [], {}
    for N in p["Ns"]:
        sp = dict(N=N, K=p["K"], M=p["M"], eta=p["eta"], alpha_max=p["alpha_max"],
                  v_star=p["v_star"], sigma=p["sigma"], n_test=0)
        alpha, _, _, S, O = _common.sim_and_ode(
            cache_dir, sp, dict(eta=p["eta"], alpha_max=p["alpha_max"], sigma=p["sigma"]),
            p["seeds"], dict(N=N, K=p["K"], M=p["M"], v_star=p["v_star"]), progress,
            desc=f"{NAME} N={N}")
        curves[str(N)] = dict(alpha=alpha.tolist(), sim=S.tolist(), ode=O.tolist())
        rows += _common.sim_ode_rows(alpha, S, O, N=N)
    return dict(figure=NAME, params=p, rows=rows, curves=curves,
                notes="eps_g (noiseless) from the order parameters; ode = integrate() from each "
                      "run's initial state, mean over seeds; sim mean and std over seeds.")


def plot(data: dict, out_dir: Path) -> list[Path]:
    p = data["params"]
    fig, ax = subplots(figsize=(6.2, 4.2))
    for n, N in enumerate(p["Ns"]):
        c = data["curves"][str(N)]
        a = np.array(c["alpha"])
        S, O = np.array(c["sim"]), np.array(c["ode"])
        m = a > 0
        mean, sd = S.mean(0), S.std(0, ddof=1) if S.shape[0] > 1 else np.zeros(a.size)
        col = f"C{n}"
        ax.fill_between(a[m], np.clip(mean - sd, 1e-4, None)[m], (mean + sd)[m], color=col,
                        alpha=0.2, lw=0)
        ax.plot(a[m], mean[m], "o", ms=3, color=col, label=f"SGD N={N} (±std, {S.shape[0]} seeds)")
        ax.plot(a[m], O.mean(0)[m], "-", color=col, lw=1.3, label="ODE from the same starts")
    ax.set(xscale="log", yscale="log", xlabel=r"$\alpha$ = steps / N",
           ylabel=r"$\epsilon_g$")
    ax.set_title(f"ODE vs simulation: M={p['M']}, K={p['K']}, η={p['eta']}, v*={p['v_star']:g}, "
                 f"σ={p['sigma']:g}", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return _common.save(fig, out_dir, NAME)
