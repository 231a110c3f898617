"""Figure 2B: DPP node pruning against random edge pruning at equal parameter count.

Equal parameter count (Eq. 1): keeping k of K nodes is compared with keeping a fraction
c = k/K of the first-layer edges. Two settings: M=5, K=20 (the paper's Fig. 2B; Z=4, Theorem 2
claims edge <= node for c <= 1/Z = 0.25) and M=2, K=6 with N=500, the node-to-edge ratios
1:83, 2:166, ..., 6:500 of Section 4 (c = k/6; the runs are those of Fig. 2A).

Top row: no reweighting (Theorem 2; DPP node vs random edge, Lemma 2 vs Lemma 4). Middle row:
reweighting, the paper's preact regression for DPP node and the best rescaling v' = A v for random
edge (Theorem 3, Eq. 14 vs Eq. 15). Layers as in Fig. 2A: ODE limit (lines, mean over seeds),
finite-N ``prune_weights`` (markers, mean +- std over seeds x masks), ansatz closed forms (dashed).
Magnitude edge pruning (keep the largest |w_ij| of each row, limit map of
``odeprune.pruning.edge_rules``) is an extra thin line, on seed 0's ODE state only. Bottom row:
node minus edge error for k <= M, the quantity whose sign Theorems 2 and 3 state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from ..plotting import subplots
from ..pruning import theory
from . import _common, _sweep

NAME = "fig2b"
COMMON = dict(eta=0.5, v_star=4.0, alpha_max=1600.0, sigmas=[0.0, 0.25], n_masks=10,
              n_samples=5000, limit_n_samples=300, magnitude_edge=True)
FULL = dict(COMMON, configs=[dict(N=500, K=20, M=5, seeds=list(range(5)),
                                  ks=[1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20]),
                             dict(N=500, K=6, M=2, seeds=list(range(10)))])
QUICK = dict(COMMON, alpha_max=20.0, magnitude_edge=False, n_masks=3, n_samples=1000, limit_n_samples=100,
             configs=[dict(N=100, K=8, M=2, seeds=[0, 1]), dict(N=100, K=6, M=2, seeds=[0, 1])])

PAIRS = {"none": (("dpp_node", "none"), ("random_edge", "none")),
         "reweighted": (("dpp_node", "preact"), ("random_edge", "rescale"))}
COLORS = {"dpp_node": "C0", "random_edge": "C1", "magnitude_edge": "C4"}


def entries(K: int, magnitude: bool = True, ks: list[int] | None = None) -> list[dict]:
    ks = list(range(1, K + 1)) if ks is None else list(ks)
    out = []
    for pair in PAIRS.values():
        for m, rw in pair:
            out += [dict(method=m, reweight=rw, k=k) for k in ks]
    if not magnitude:
        return out
    out += [dict(method="magnitude_edge", reweight="none", k=k, finite=False, seeds=[0])
            for k in ks]
    return out


def config_params(params: dict, cfg: dict) -> dict:
    p = {k: v for k, v in params.items() if k != "configs"}
    p.update(cfg)
    return p


def theory_rows(p: dict) -> list[dict]:
    M, K, v = p["M"], p["K"], p["v_star"]
    Z = K / M
    rows = []
    extra = dict(K=K, M=M, layer="theory", std=0.0, sigma=None)
    for k in range(1, K + 1):
        c = k / K
        vals = {("random_edge", "none"): theory.lemma4_random_edge(M, Z, c, v),
                ("random_edge", "rescale"): theory.theorem3_rescaled_edge(M, Z, c, v)[0]}
        if k <= M:
            vals[("dpp_node", "none")] = theory.lemma2_dpp_node(M, Z, k, v)
            vals[("dpp_node", "preact")] = theory.lemma2_dpp_node_reweighted(M, Z, k, v)
        for (m, rw), val in vals.items():
            rows.append(dict(extra, method=m, reweight=rw, k=k, c=c, mean=float(val)))
    return rows


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    rows, per_seed = [], {}
    for cfg in params["configs"]:
        p = config_params(params, cfg)
        ent = entries(p["K"], p["magnitude_edge"], p.get("ks"))
        items = _sweep.run(cache_dir, p, ent, progress, f"{NAME} K={p['K']}")
        new = _sweep.aggregate(items, ent, dict(K=p["K"], M=p["M"])) + theory_rows(p)
        for r in new:
            if r.get("k") is not None:
                r["c"] = r["k"] / p["K"]
                r["edges_per_unit"] = r["c"] * p["N"]
        rows += new
        per_seed[f"K{p['K']}_M{p['M']}"] = {str(s): v for s, v in items.items()}
    return dict(figure=NAME, params=params, rows=rows, per_seed=per_seed,
                notes="c = k/K (Eq. 1); for K=6, N=500: c*N = 83.3, 166.7, 250, 333.3, 416.7, "
                      "500 kept edges per unit (the paper's 1:83 ... 6:500). eps_g for "
                      "noiseless labels. sim: exact eps_g of the pruned finite-N weights, mean "
                      "and std over seeds x masks. magnitude_edge: ODE state of seed 0 only.")


def plot(data: dict, out_dir: Path) -> list[Path]:
    params, rows = data["params"], data["rows"]
    cols = [(cfg, s) for cfg in params["configs"] for s in params["sigmas"]]
    fig, axes = subplots(3, len(cols), figsize=(3.4 * len(cols), 9.6), squeeze=False)
    for j, (cfg, sigma) in enumerate(cols):
        K, M = cfg["K"], cfg["M"]
        for i, (name, pair) in enumerate(PAIRS.items()):
            ax = axes[i, j]
            for n, (m, rw) in enumerate(pair):
                col = COLORS[m]
                base = dict(K=K, M=M, method=m, reweight=rw)
                k, mean, _ = _sweep.select(rows, layer="ode", sigma=sigma, **base)
                ax.plot(k / K, mean, "-", color=col, lw=1.5)
                k, mean, sd = _sweep.select(rows, layer="sim", sigma=sigma, **base)
                ax.errorbar(k / K + (n - 0.5) * 0.006, mean, yerr=sd, fmt="o", ms=3.5,
                            color=col, capsize=2, lw=0.8)
                k, mean, _ = _sweep.select(rows, layer="theory", **base)
                if k.size:
                    ax.plot(k / K, mean, "--", color=col, lw=1.0, marker="x", ms=4)
            if name == "none":
                k, mean, _ = _sweep.select(rows, layer="ode", sigma=sigma, K=K, M=M,
                                           method="magnitude_edge", reweight="none")
                if k.size:
                    ax.plot(k / K, mean, "-.", color=COLORS["magnitude_edge"], lw=1.0)
            ax.axvline(M / K, color="0.5", lw=0.8, ls=":")
            ax.set_yscale("symlog", linthresh=1e-2)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            what = "no reweighting" if name == "none" else "reweighted"
            ax.set_title(f"M={M}, K={K}, σ={sigma:g}, {what}", fontsize=8.5)
            if j == 0:
                ax.set_ylabel(r"$\epsilon_g$ after pruning")
        _difference_panel(axes[2, j], rows, K, M, sigma)
        axes[2, j].set_xlabel("c = k/K (kept fraction of parameters)")
        if j == 0:
            axes[2, j].set_ylabel("ε(DPP node) − ε(random edge)")
    handles = [Line2D([], [], color="C0", lw=2, label="DPP node (reweighted: preact)"),
               Line2D([], [], color="C1", lw=2, label="random edge (reweighted: best A·v)"),
               Line2D([], [], color="C4", ls="-.", label="magnitude edge (ODE, seed 0)"),
               Line2D([], [], color="k", label="ODE limit (mean over seeds)"),
               Line2D([], [], color="k", ls="", marker="o",
                      label=f"simulation N={params['configs'][0]['N']} (±std, seeds×masks)"),
               Line2D([], [], color="k", ls="--", marker="x", label="ansatz closed form"),
               Line2D([], [], color="0.5", ls=":", label="c = 1/Z (k = M)")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"Fig. 2B: DPP node vs random edge at equal parameter count, "
                 f"α={params['alpha_max']:g}", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return _common.save(fig, out_dir, NAME)


def _difference_panel(ax, rows, K, M, sigma) -> None:
    """Node minus edge for k <= M (where Theorems 2-3 speak), both reweighting cases."""
    for name, pair in PAIRS.items():
        (mn, rn), (me, re) = pair
        ls = "-" if name == "none" else "--"
        for layer, fmt in (("ode", ls), ("sim", "o"), ("theory", "x")):
            match = {} if layer == "theory" else {"sigma": sigma}
            kn, node, _ = _sweep.select(rows, layer=layer, K=K, M=M, method=mn, reweight=rn,
                                        **match)
            ke, edge, _ = _sweep.select(rows, layer=layer, K=K, M=M, method=me, reweight=re,
                                        **match)
            e = dict(zip(ke.astype(int).tolist(), edge, strict=True))
            ks = [int(k) for k in kn if k <= M and int(k) in e]
            if not ks:
                continue
            d = [node[list(kn).index(k)] - e[k] for k in ks]
            col = "k" if name == "none" else "C2"
            ax.plot(np.array(ks) / K, d, fmt, color=col, ms=4, lw=1.2,
                    label=f"{'no reweighting' if name == 'none' else 'reweighted'}, {layer}")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_title(f"M={M}, K={K}, σ={sigma:g}: k ≤ M; > 0: edge better", fontsize=8.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)


def edge_beats_node(rows: list[dict], K: int, M: int, sigma: float, layer: str,
                    reweighted: bool = False) -> dict[int, bool]:
    """For k <= M: does random edge have a lower error than DPP node (Theorem 2's claim)?"""
    node, edge = PAIRS["reweighted" if reweighted else "none"]
    kn, mn, _ = _sweep.select(rows, layer=layer, sigma=sigma, K=K, M=M, method=node[0],
                              reweight=node[1])
    ke, me, _ = _sweep.select(rows, layer=layer, sigma=sigma, K=K, M=M, method=edge[0],
                              reweight=edge[1])
    e = dict(zip(ke.astype(int).tolist(), me, strict=True))
    return {int(k): bool(e[int(k)] <= m) for k, m in zip(kn, mn, strict=True) if k <= M}

