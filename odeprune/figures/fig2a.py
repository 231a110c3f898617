"""Figure 2A: node pruning methods compared (Acharyya et al. 2021, Fig. 2A and Section 4).

M=2, K=6, N=500, v*=4, eta=0.5, all weights N(0,1), trained to alpha=1600 (the paper's 800 000
samples in one pass: online SGD with a fresh sample per step is the same protocol), sigma = 0 and
0.25. Error after pruning to k = 1..K units by DPP (kernel Q), importance (largest |v_i|) and
random node pruning, without reweighting and with the paper's reweighting (``"preact"``), plus the
best reweighting (``"refit"``, least squares on the teacher's output) in the limit layer.

Layers: thermodynamic limit ``prune(curve.final, ...)`` with the ODE started from each seed's
initial weights (lines, mean over seeds); finite-N ``prune_weights`` on the simulated weights
(markers, mean +- std over seeds and masks); the paper's closed forms on the specialised ansatz
with Z = K/M = 3 (dashed): Lemma 2 for DPP (k <= M) and the expected random-node error from
Lemma 3 (``theory.random_node_expected``). All errors are noiseless-label eps_g.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.lines import Line2D

from ..plotting import subplots
from ..pruning import theory
from . import _common, _sweep

NAME = "fig2a"
METHODS = ("dpp_node", "importance_node", "random_node")
LABELS = {"dpp_node": "DPP node", "importance_node": "importance node",
          "random_node": "random node"}
COLORS = {"dpp_node": "C0", "importance_node": "C2", "random_node": "C3"}
RW_LABEL = {"none": "no reweighting", "preact": "reweighting (paper's, preact)"}

FULL = dict(N=500, K=6, M=2, eta=0.5, v_star=4.0, alpha_max=1600.0, sigmas=[0.0, 0.25],
            seeds=list(range(10)), n_masks=10, n_samples=5000, limit_n_samples=2000,
            finite_reweights=["none", "preact"], limit_reweights=["none", "preact", "refit"])
QUICK = dict(FULL, N=100, alpha_max=20.0, seeds=[0, 1], n_masks=3, n_samples=1000,
             limit_n_samples=200)


def entries(p: dict) -> list[dict]:
    out = []
    for m in METHODS:
        for rw in p["limit_reweights"]:
            for k in range(1, p["K"] + 1):
                out.append(dict(method=m, reweight=rw, k=k, finite=rw in p["finite_reweights"]))
    return out


def theory_rows(p: dict) -> list[dict]:
    """The ansatz closed forms (Z = K/M), where they apply."""
    M, K, v = p["M"], p["K"], p["v_star"]
    Z = K // M
    rows = []
    if Z * M != K:
        return rows
    for k in range(1, K + 1):
        vals = {("random_node", "none"): theory.random_node_expected(M, Z, k, v),
                ("random_node", "preact"): theory.random_node_expected_reweighted(M, Z, k, v)}
        if k <= M:
            vals[("dpp_node", "none")] = theory.lemma2_dpp_node(M, Z, k, v)
            vals[("dpp_node", "preact")] = theory.lemma2_dpp_node_reweighted(M, Z, k, v)
        for (m, rw), val in vals.items():
            rows.append(dict(layer="theory", method=m, reweight=rw, k=k, mean=float(val),
                             std=0.0, sigma=None))
    return rows


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    ent = entries(params)
    items = _sweep.run(cache_dir, params, ent, progress, NAME)
    rows = _sweep.aggregate(items, ent, {}) + theory_rows(params)
    return dict(figure=NAME, params=params, rows=rows,
                per_seed={str(s): v for s, v in items.items()},
                notes="eps_g for noiseless labels; sim = exact eps_g of the pruned finite-N "
                      "weights (prune_weights eg_values), mean and std over seeds x masks; "
                      "ode = prune(curve.final) mean and std over seeds; theory = ansatz "
                      f"closed forms with Z=K/M={params['K'] // params['M']}.")


def plot(data: dict, out_dir: Path) -> list[Path]:
    p, rows = data["params"], data["rows"]
    sigmas = p["sigmas"]
    fig, axes = subplots(len(sigmas), 2, figsize=(10, 3.6 * len(sigmas)), sharex=True,
                             squeeze=False)
    for i, sigma in enumerate(sigmas):
        for j, rw in enumerate(("none", "preact")):
            ax = axes[i, j]
            for n, m in enumerate(METHODS):
                col = COLORS[m]
                k, mean, sd = _sweep.select(rows, layer="ode", sigma=sigma, method=m, reweight=rw)
                ax.plot(k, mean, "-", color=col, lw=1.5)
                if rw == "preact":
                    k2, mean2, _ = _sweep.select(rows, layer="ode", sigma=sigma, method=m,
                                                 reweight="refit")
                    ax.plot(k2, mean2, ":", color=col, lw=1.2)
                k, mean, sd = _sweep.select(rows, layer="sim", sigma=sigma, method=m, reweight=rw)
                off = (n - 1) * 0.08
                ax.errorbar(k + off, mean, yerr=sd, fmt="o", ms=4, color=col, capsize=2,
                            lw=0.8)
                k, mean, _ = _sweep.select(rows, layer="theory", method=m, reweight=rw)
                if k.size:
                    ax.plot(k, mean, "--", color=col, lw=1.0, marker="x", ms=4)
            un = [r for r in rows if r["method"] == "unpruned" and r["sigma"] == sigma
                  and r["layer"] == "ode"]
            if un:
                ax.axhline(un[0]["mean"], color="0.6", lw=0.8)
            ax.set_yscale("symlog", linthresh=1e-2)
            ax.set_ylim(bottom=0)
            ax.set_title(f"σ={sigma:g}, {RW_LABEL[rw]}", fontsize=9)
            ax.grid(alpha=0.3)
            if i == len(sigmas) - 1:
                ax.set_xlabel("kept nodes k")
            if j == 0:
                ax.set_ylabel(r"$\epsilon_g$ after pruning")
    handles = [Line2D([], [], color=COLORS[m], lw=2, label=LABELS[m]) for m in METHODS]
    handles += [Line2D([], [], color="k", ls="-", label="ODE limit (mean over seeds)"),
                Line2D([], [], color="k", ls="", marker="o",
                       label=f"N={p['N']} simulation (±std, seeds×masks)"),
                Line2D([], [], color="k", ls="--", marker="x",
                       label=f"ansatz closed form (Z={p['K'] // p['M']})"),
                Line2D([], [], color="k", ls=":", label="ODE limit, best reweighting (refit)"),
                Line2D([], [], color="0.6", label="unpruned (ODE)")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"Fig. 2A: node pruning, M={p['M']}, K={p['K']}, N={p['N']}, "
                 f"α={p['alpha_max']:g}, {len(p['seeds'])} seeds", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 0.97))
    return _common.save(fig, out_dir, NAME)
