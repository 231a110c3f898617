"""Lottery tickets: dense vs ticket vs random mask vs magnitude-at-init vs fine-tuning.

Train the paper's network densely (M=2, K=6, N=500, eta=0.5, v*=4, sigma=0) to alpha_T, take the
magnitude mask of the trained first layer (fraction c per row), rewind the kept weights and v to
their values at alpha_rewind and train again (:func:`odeprune.workflows.lottery_ticket`); beside
it the dense network from the same point, a random mask, the magnitude mask of the rewound
weights themselves, and fine-tuning of the magnitude-pruned trained network. Lines: the limit (the
ticket's per-class state from the joint law of (w(alpha_rewind), w(alpha_T), w*), §9), mean over
seeds' initial order parameters; markers: finite N (real weights, real masks, SGD, same seeds,
common random numbers across arms), mean +- standard error. Last panel: iterative magnitude
pruning with rewinding to alpha=0, in the limit and at finite N. The limit is exact in every
round (the coordinate law, docs/theory.md §11: the decisions act on particles, training between
them is the per-class ODE plus the linear response), up to its Monte-Carlo error (shaded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from .. import workflows
from .._stats import sem
from ..plotting import subplots
from ..state import OrderParams
from . import _cache, _common

NAME = "tickets"
ARMS = (("dense", "k", "dense"), ("ticket", "C3", "ticket (trained mask, rewound)"),
        ("random", "C1", "random mask"), ("magnitude_init", "C2", "magnitude mask at rewind"),
        ("finetune", "C0", "fine-tuned pruned network"))
FULL = dict(N=500, K=6, M=2, eta=0.5, v_star=4.0, alpha_T=500.0, alpha_max=1000.0,
            report=[1.0, 10.0, 100.0, 1000.0],
            panels=[dict(c=0.5, alpha_rewind=0.0), dict(c=0.2, alpha_rewind=0.0),
                    dict(c=0.2, alpha_rewind=1.0)],
            seeds=[0, 1, 2, 3], finite_seeds=list(range(8)), n_samples_map=100_000,
            marker_times=[1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0],
            imp=dict(rounds=4, prune_fraction=0.3, alpha_per_round=200.0))
QUICK = dict(FULL, N=60, K=3, M=1, alpha_T=10.0, alpha_max=10.0, report=[1.0, 10.0],
             panels=[dict(c=0.5, alpha_rewind=0.0)], seeds=[0], finite_seeds=[0, 1],
             n_samples_map=20_000, marker_times=[1.0, 10.0],
             imp=dict(rounds=1, prune_fraction=0.3, alpha_per_round=5.0))


def _curves(res, panel):
    return [dict(panel, arm=a, alpha=np.asarray(res.alpha[a]).tolist(),
                 eg=np.asarray(res.eg[a]).tolist()) for a in res.arms]


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    p = params
    N, K, M = p["N"], p["K"], p["M"]
    base = {n: p[n] for n in ("N", "K", "M", "eta", "v_star", "alpha_T", "alpha_max", "report")}
    rows, curves = [], {"limit": [], "finite": []}
    bar = _common.progress_bar(len(p["panels"]) * (len(p["seeds"]) + 1), f"{NAME}", progress)
    for panel in p["panels"]:
        for seed in p["seeds"]:
            key = dict(base, **panel, seed=seed, n_samples=p["n_samples_map"])

            def one(panel=panel, seed=seed):
                init = OrderParams.random(N, K, M, v_star=p["v_star"], seed=seed)
                r = workflows.lottery_ticket(init, panel["c"], alpha_T=p["alpha_T"],
                                             alpha_rewind=panel["alpha_rewind"],
                                             alpha_max=p["alpha_max"], eta=p["eta"],
                                             report=p["report"], seed=seed,
                                             n_samples=p["n_samples_map"])
                return dict(table=r.table, curves=_curves(r, dict(panel, seed=seed)))

            out = _cache.cached_json(cache_dir, f"{NAME}-limit", key, one)
            rows += [dict(r, seed=seed) for r in out["table"]]
            curves["limit"] += out["curves"]
            bar.update(1)
        key = dict(base, **panel, seeds=p["finite_seeds"], marker_times=p["marker_times"])

        def one_finite(panel=panel):
            r = workflows.lottery_ticket_finite(N, K, M, panel["c"], seeds=p["finite_seeds"],
                                                alpha_T=p["alpha_T"],
                                                alpha_rewind=panel["alpha_rewind"],
                                                alpha_max=p["alpha_max"], eta=p["eta"],
                                                v_star=p["v_star"], report=p["report"],
                                                save_at=[0.0] + list(p["marker_times"]))
            return dict(table=r.table, curves=_curves(r, dict(panel)))

        out = _cache.cached_json(cache_dir, f"{NAME}-finite", key, one_finite)
        rows += out["table"]
        curves["finite"] += out["curves"]
        bar.update(1)
    bar.close()
    # iterative magnitude pruning
    imp = p["imp"]
    for seed in p["seeds"]:
        key = dict(base, imp=imp, seed=seed, n_samples=p["n_samples_map"])

        def one_imp(seed=seed):
            init = OrderParams.random(N, K, M, v_star=p["v_star"], seed=seed)
            return workflows.iterative_magnitude_pruning(init, eta=p["eta"], seed=seed,
                                                         n_samples=p["n_samples_map"],
                                                         **imp).table

        rows += [dict(r, seed=seed) for r in _cache.cached_json(cache_dir, f"{NAME}-imp", key,
                                                                one_imp)]
    key = dict(base, imp=imp, seeds=p["finite_seeds"])
    rows += _cache.cached_json(
        cache_dir, f"{NAME}-imp-finite", key,
        lambda: workflows.iterative_magnitude_pruning_finite(N, K, M, eta=p["eta"],
                                                             v_star=p["v_star"],
                                                             seeds=p["finite_seeds"],
                                                             **imp).table)
    for r in rows:  # the figure tables' common value column
        r["mean"] = r["eg"]
    return dict(figure=NAME, params=p, rows=rows, curves=curves,
                notes="eps_g (noiseless) on the time since (re)training started. limit rows one "
                      "per seed's initial order parameters; finite rows mean and standard error "
                      "over seeds with eg_ode (ODE from the same real starts) and the paired gap. "
                      "imp rows: eps_g after each round (c = kept fraction) and eg_pruned, the "
                      "one-shot magnitude pruning of the previous round's trained network.")


def plot(data: dict, out_dir: Path) -> list[Path]:
    p, cv, rows = data["params"], data["curves"], data["rows"]
    panels = p["panels"]
    fig, axes = subplots(1, len(panels) + 1, figsize=(4.2 * (len(panels) + 1), 3.9),
                             squeeze=False)
    for j, panel in enumerate(panels):
        ax = axes[0, j]

        def match(x, panel=panel):
            return abs(x["c"] - panel["c"]) < 1e-12 and \
                abs(x["alpha_rewind"] - panel["alpha_rewind"]) < 1e-12

        for n, (arm, col, _) in enumerate(ARMS):
            lim = [x for x in cv["limit"] if match(x) and x["arm"] == arm]
            if lim:
                a = np.array(lim[0]["alpha"])
                ax.plot(a[1:], np.mean([x["eg"] for x in lim], axis=0)[1:], "-", color=col,
                        lw=1.3)
            fin = [x for x in cv["finite"] if match(x) and x["arm"] == arm]
            if fin:
                a = np.array(fin[0]["alpha"])
                E = np.array(fin[0]["eg"])
                se = sem(E)
                ax.errorbar(a[1:] * (1 + 0.05 * (n - 2)), E.mean(0)[1:], yerr=se[1:], fmt="o",
                            ms=3.2, color=col, capsize=2, lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel=r"$\alpha$ since (re)training started")
        ax.set_title(f"c = {panel['c']:g}, mask at α_T={p['alpha_T']:g}, rewind to "
                     f"α={panel['alpha_rewind']:g}", fontsize=8.5)
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel(r"$\epsilon_g$")
    # IMP panel
    ax = axes[0, -1]
    imp_l = [r for r in rows if r.get("workflow") == "imp" and r["layer"] == "limit"]
    imp_f = [r for r in rows if r.get("workflow") == "imp" and r["layer"] == "finite"]
    rounds = sorted({r["round"] for r in imp_l})
    if imp_l:
        c = [np.mean([r["c"] for r in imp_l if r["round"] == j]) for j in rounds]
        e = [np.mean([r["eg"] for r in imp_l if r["round"] == j]) for j in rounds]
        ax.plot(c, e, "-", color="C3", lw=1.3)
        s2 = [2 * np.sqrt(np.mean([r["eg_se"] ** 2 for r in imp_l if r["round"] == j]))
              for j in rounds]
        ax.fill_between(c, np.subtract(e, s2), np.add(e, s2), color="C3", alpha=0.2, lw=0)
        cp = [np.mean([r["c"] for r in imp_l if r["round"] == j]) for j in rounds[1:]]
        ep = [np.mean([r["eg_pruned"] for r in imp_l if r["round"] == j]) for j in rounds[1:]]
        ax.plot(cp, ep, ":", color="C0", lw=1.3)
    if imp_f:
        ax.errorbar([r["c"] for r in imp_f], [r["eg"] for r in imp_f],
                    yerr=[r["eg_se"] for r in imp_f], fmt="o", color="C3", ms=3.5, capsize=2)
        f1 = [r for r in imp_f if "eg_pruned" in r and r["eg_pruned"] is not None]
        ax.errorbar([r["c"] for r in f1], [r["eg_pruned"] for r in f1],
                    yerr=[r["eg_pruned_se"] for r in f1], fmt="s", color="C0", mfc="none",
                    ms=3.5, capsize=2)
    ax.set(xscale="log", yscale="log", xlabel="kept fraction after each round")
    ax.invert_xaxis()
    imp = p["imp"]
    ax.set_title(f"IMP: prune {imp['prune_fraction']:g} per round, rewind to 0, "
                 f"α={imp['alpha_per_round']:g}/round", fontsize=8.5)
    ax.grid(alpha=0.3, which="both")
    ax.legend(handles=[Line2D([], [], color="C3", label="after retraining the round"),
                       Line2D([], [], color="C0", ls=":",
                              label="one-shot pruned trained net\n(before rewinding)"),
                       Line2D([], [], color="0.3", label="N→∞: exact in every round\n"
                              "(coordinate law, ±2 s.e.)"),
                       Line2D([], [], color="0.3", ls="", marker="o", label="finite N")],
              fontsize=6.5)
    handles = [Line2D([], [], color=col, label=lab) for _, col, lab in ARMS]
    handles += [Line2D([], [], color="0.3", label="N→∞ (mean over seeds)"),
                Line2D([], [], color="0.3", ls="", marker="o",
                       label=f"finite N={p['N']} (±s.e., {len(p['finite_seeds'])} seeds)")]
    fig.legend(handles=handles, loc="lower center", ncol=7, fontsize=7.5, frameon=False)
    fig.suptitle(f"Lottery tickets (M={p['M']}, K={p['K']}, η={p['eta']}, v*={p['v_star']:g})",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return _common.save(fig, out_dir, NAME)
