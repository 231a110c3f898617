"""ReLU networks in the limit: learning curves and one pruning comparison.

(A-C) M=2 teachers, K = 2, 4, 6 students, ``g(x) = max(0, x)``, eta = eta_v = 0.5, v* = 1,
sigma = 0, all weights N(0, 1). For every seed, ``simulate`` runs online SGD at size N and
``integrate`` starts from the order parameters of that run's initial weights (the full ReLU ODEs,
the eta^2 term with the four-point average I4 included). The curves show the unspecialised
plateau (eps_g ~ 0.07) and its end, where the students specialise.

(D) The K=6 student of seed ``prune_seed``, trained by the ODE to ``alpha_max``, pruned to a
fraction ``c = k/K`` of its first-layer parameters: node methods (random, importance, k-DPP with
the Q kernel; without reweighting and with the refitted second layer) against edge rules (random,
magnitude, DPP-edge, SNIP; the ReLU edge maps), all as maps on order parameters
(:func:`odeprune.prune`). Errors are noiseless eps_g from the order parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import subplots
from ..pruning import prune
from ..sim import default_save_at
from . import _common

NAME = "relu"
FULL = dict(N=1000, Ks=[2, 4, 6], M=2, eta=0.5, v_star=1.0, sigma=0.0, alpha_max=600.0,
            seeds=[0, 1, 2, 3], n_save=40, prune_K=6, prune_seed=0, n_samples=20_000,
            node_methods=["random_node", "importance_node", "dpp_node"],
            node_reweights=["none", "refit"],
            edge_methods=["random_edge", "magnitude_edge", "dpp_edge", "snip_edge"])
QUICK = dict(FULL, N=60, alpha_max=20.0, seeds=[0, 1], n_save=12, n_samples=2000)


#: lower end of the learning-curve axes (the ODE goes on to ~1e-10 once specialised)
_FLOOR = 1e-7


def _save_at(p: dict) -> np.ndarray:
    return default_save_at(p["alpha_max"], p["n_save"])


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    p = params
    rows, curves = [], {}
    save_at = _save_at(p)
    trained = None
    for K in p["Ks"]:
        sp = dict(N=p["N"], K=K, M=p["M"], eta=p["eta"], alpha_max=p["alpha_max"],
                  v_star=p["v_star"], sigma=p["sigma"], n_test=0, activation="relu",
                  save_at=save_at)
        alpha, _, odes, S, O = _common.sim_and_ode(
            cache_dir, sp, dict(eta=p["eta"], alpha_max=p["alpha_max"], sigma=p["sigma"]),
            p["seeds"], dict(N=p["N"], K=K, M=p["M"], v_star=p["v_star"], activation="relu"),
            progress, desc=f"{NAME} K={K}")
        if K == p["prune_K"] and p["prune_seed"] in p["seeds"]:
            trained = odes[list(p["seeds"]).index(p["prune_seed"])].final
        curves[str(K)] = dict(alpha=alpha.tolist(), sim=S.tolist(), ode=O.tolist())
        rows += _common.sim_ode_rows(alpha, S, O, panel="curve", K=K, alpha=None,
                                     layer=None, method="unpruned",
                                     reweight="none", k=K, c=1.0)
    if trained is None:
        raise ValueError(f"prune_K={p['prune_K']} / prune_seed={p['prune_seed']} must be one of "
                         f"Ks={p['Ks']} / seeds={p['seeds']}")
    K = trained.K
    prune_rows = [dict(panel="prune", K=K, alpha=p["alpha_max"], layer="ode", method="unpruned",
                       reweight="none", k=K, c=1.0, mean=trained.eg(), std=0.0, sem=0.0,
                       n_seeds=1)]
    bar = _common.progress_bar(K * (len(p["node_methods"]) * len(p["node_reweights"])
                                    + len(p["edge_methods"])), f"{NAME} prune", progress)
    for k in range(1, K + 1):
        c = k / K
        for method in p["node_methods"]:
            for rw in p["node_reweights"]:
                res = prune(trained, method=method, k=k, reweight=rw, seed=k)
                prune_rows.append(dict(panel="prune", K=K, alpha=p["alpha_max"], layer="ode",
                                       method=method, reweight=rw, k=k, c=c, mean=res.eg_mean,
                                       std=res.eg_std, sem=res.eg_se, n_seeds=1))
                bar.update(1)
        for method in p["edge_methods"]:
            res = prune(trained, method=method, c=c, seed=k, n_samples=p["n_samples"])
            prune_rows.append(dict(panel="prune", K=K, alpha=p["alpha_max"], layer="ode",
                                   method=method, reweight="none", k=k, c=c, mean=res.eg_mean,
                                   std=res.eg_std, sem=res.eg_se, n_seeds=1))
            bar.update(1)
    bar.close()
    rows += prune_rows
    return dict(figure=NAME, params=p, rows=rows, curves=curves,
                trained=dict(Q=np.asarray(trained.Q).tolist(), R=np.asarray(trained.R).tolist(),
                             v=np.asarray(trained.v).tolist(), eg=trained.eg()),
                notes="ReLU; eps_g (noiseless) from the order parameters. Curves: ode = "
                      "integrate() from each run's initial state; sim mean and std over seeds. "
                      "Prune: the ODE-trained student of prune_seed at alpha_max, node methods "
                      "at k units vs edge rules at c = k/K (equal parameter count); mean over "
                      "the method's randomness, sem = Monte Carlo error of an edge map.")


def plot(data: dict, out_dir: Path) -> list[Path]:
    p = data["params"]
    Ks = p["Ks"]
    fig, axes = subplots(1, len(Ks) + 1, figsize=(4.0 * (len(Ks) + 1), 3.9))
    for ax, K in zip(axes, Ks, strict=False):
        c = data["curves"][str(K)]
        a = np.array(c["alpha"])
        S, O = np.array(c["sim"]), np.array(c["ode"])
        m = a > 0
        mean = S.mean(0)
        sd = S.std(0, ddof=1) if S.shape[0] > 1 else np.zeros(a.size)
        ax.fill_between(a[m], np.clip(mean - sd, _FLOOR, None)[m], (mean + sd)[m], color="C0",
                        alpha=0.2, lw=0)
        ax.plot(a[m], mean[m], "o", ms=3, color="C0",
                label=f"SGD N={p['N']} (±std, {S.shape[0]} seeds)")
        for j in range(O.shape[0]):
            ax.plot(a[m], O[j][m], "-", color="C3", lw=0.8, alpha=0.5,
                    label="ODE from the same starts" if j == 0 else None)
        ax.plot(a[m], O.mean(0)[m], "-", color="C3", lw=1.6, label="ODE mean")
        ax.set(xscale="log", yscale="log", xlabel=r"$\alpha$ = steps / N",
               ylabel=r"$\epsilon_g$", title=f"ReLU, M={p['M']}, K={K}")
        ax.set_ylim(bottom=_FLOOR)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6.5, loc="lower left")
    ax = axes[-1]
    prune = [r for r in data["rows"] if r["panel"] == "prune"]
    styles = {"random_node": ("C0", "o"), "importance_node": ("C1", "s"),
              "dpp_node": ("C2", "^"), "random_edge": ("C3", "v"),
              "magnitude_edge": ("C4", "D"), "dpp_edge": ("C5", "P"), "snip_edge": ("C6", "X")}
    series: dict = {}
    for r in prune:
        if r["method"] == "unpruned":
            continue
        series.setdefault((r["method"], r["reweight"]), []).append((r["c"], r["mean"]))
    for (method, rw), pts in series.items():
        pts = sorted(pts)
        col, mk = styles.get(method, ("k", "."))
        ls = "--" if rw == "refit" else "-"
        ax.plot([q[0] for q in pts], [max(q[1], 1e-12) for q in pts], ls, marker=mk, ms=4,
                color=col, lw=1.1, label=method + (" +refit" if rw == "refit" else ""))
    un = [r["mean"] for r in prune if r["method"] == "unpruned"][0]
    ax.axhline(max(un, 1e-12), color="k", lw=0.8, ls=":", label="unpruned")
    ax.set(yscale="log", xlabel="kept fraction c = k/K", ylabel=r"$\epsilon_g$ after pruning",
           title=f"pruning the trained K={p['prune_K']} ReLU student")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6, ncol=2)
    fig.suptitle(f"ReLU networks in the limit: η={p['eta']}, v*={p['v_star']:g}, "
                 f"σ={p['sigma']:g}", fontsize=10)
    fig.tight_layout()
    return _common.save(fig, out_dir, NAME)
