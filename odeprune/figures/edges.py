"""Edge pruning beyond random: eg after pruning vs the kept fraction of parameters c.

Random, magnitude (per row), DPP-edge and SNIP (per row) edge pruning keep a fraction c of the
first-layer weights; DPP and importance node pruning keep k = cK units (equal parameter count,
Eq. 1 of Acharyya et al. 2021). On the paper's two settings (M=2, K=6 and M=5, K=20; N=500,
eta=0.5, v*=4, alpha=1600, sigma=0): the thermodynamic-limit maps of ``odeprune.prune`` on the
ODE-integrated order parameters (lines, mean over seeds) and the same rules on the real
finite-N weights (``prune_weights``: exact top-|w| per row, the authors' per-unit k-DPP on the
empirical kernel, SNIP from the empirical gradient; markers, mean +- std over seeds x masks).
The simulations and ODE curves are the cache items of Fig. 2A/2B.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.lines import Line2D

from ..plotting import subplots
from . import _common, _sweep

NAME = "edges"
METHODS = (("random_edge", "C1", "random edge"), ("magnitude_edge", "C3", "magnitude edge"),
           ("dpp_edge", "C2", "DPP edge"), ("snip_edge", "C5", "SNIP edge"),
           ("dpp_node", "C0", "DPP node"), ("importance_node", "C7", "importance node"))
COMMON = dict(eta=0.5, v_star=4.0, alpha_max=1600.0, sigmas=[0.0], n_masks=3, n_samples=5000,
              limit_n_samples=300)
FULL = dict(COMMON, configs=[dict(N=500, K=6, M=2, seeds=list(range(5))),
                             dict(N=500, K=20, M=5, seeds=list(range(3)),
                                  ks=[1, 2, 3, 4, 5, 8, 10, 15, 20])])
QUICK = dict(COMMON, alpha_max=20.0, n_masks=2, n_samples=500, limit_n_samples=100,
             configs=[dict(N=100, K=4, M=2, seeds=[0, 1])])


def entries(K: int, ks: list[int] | None = None) -> list[dict]:
    ks = list(range(1, K + 1)) if ks is None else list(ks)
    return [dict(method=m, reweight="none", k=k) for m, _, _ in METHODS for k in ks]


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    rows = []
    for cfg in params["configs"]:
        p = {k: v for k, v in params.items() if k != "configs"}
        p.update(cfg)
        ent = entries(p["K"], p.get("ks"))
        items = _sweep.run(cache_dir, p, ent, progress, f"{NAME} K={p['K']}")
        for r in _sweep.aggregate(items, ent, dict(K=p["K"], M=p["M"], N=p["N"])):
            if r.get("k") is not None:
                r["c"] = r["k"] / p["K"]
            rows.append(r)
    return dict(figure=NAME, params=params, rows=rows,
                notes="c = k/K: edge rules keep a fraction c of each row's weights, node "
                      "methods k units. eps_g for noiseless labels. ode: limit maps on the "
                      "ODE-integrated order parameters (mean over seeds); sim: exact eps_g of "
                      "the pruned N=500 weights (mean, std over seeds x masks).")


def plot(data: dict, out_dir: Path) -> list[Path]:
    params, rows = data["params"], data["rows"]
    cfgs = params["configs"]
    fig, axes = subplots(1, len(cfgs), figsize=(5.2 * len(cfgs), 4.2), squeeze=False)
    for j, cfg in enumerate(cfgs):
        ax = axes[0, j]
        K, M = cfg["K"], cfg["M"]
        for n, (m, col, _) in enumerate(METHODS):
            base = dict(K=K, M=M, method=m, reweight="none", sigma=0.0)
            k, mean, _ = _sweep.select(rows, layer="ode", **base)
            ax.plot(k / K, mean, "-", color=col, lw=1.6)
            k, mean, sd = _sweep.select(rows, layer="sim", **base)
            ax.errorbar(k / K + (n - 2.5) * 0.004, mean, yerr=sd, fmt="o", ms=3.2, color=col,
                        capsize=2, lw=0.8)
        ax.axvline(M / K, color="0.5", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.set_xlabel("c = kept fraction of parameters (k/K for node pruning)")
        ax.set_ylabel(r"$\epsilon_g$ after pruning")
        ax.set_title(f"M={M}, K={K}, N={cfg['N']}, α={params['alpha_max']:g}, σ=0", fontsize=9)
    handles = [Line2D([], [], color=col, lw=2, label=label) for _, col, label in METHODS]
    handles += [Line2D([], [], color="k", label="N→∞ map on ODE state (mean over seeds)"),
                Line2D([], [], color="k", ls="", marker="o",
                       label="finite N, real weights (±std, seeds×masks)"),
                Line2D([], [], color="0.5", ls=":", label="c = 1/Z")]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("Edge pruning rules vs node pruning at equal parameter count", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    return _common.save(fig, out_dir, NAME)
