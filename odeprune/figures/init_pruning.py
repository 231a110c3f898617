"""Pruning at initialisation: prune the random initial network, then train from alpha = 0.

Random, magnitude (per row) and SNIP (per row, initial gradient) edge pruning of the paper's
initial network (M=2, K=6, N=500, all weights N(0,1), eta=0.5, v*=4, sigma=0) at
c in {0.5, 0.3, 0.1}, without and with the variance-restoring row rescale of Hayou et al. (2021),
trained beside the dense network (:func:`odeprune.workflows.prune_at_init`). Lines: the limit
(per-class state of the masked network from each seed's initial order parameters, ODEs), mean
over seeds. Markers: finite N (:func:`odeprune.workflows.prune_at_init_finite`: real masks on the
real initial weights, SGD with the same stream as the dense run), mean +- standard error over
seeds.
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

NAME = "init-pruning"
RULES = (("random_edge", "C1", "random"), ("magnitude_edge", "C3", "magnitude"),
         ("snip_edge", "C5", "SNIP"))
FULL = dict(N=500, K=6, M=2, eta=0.5, v_star=4.0, alpha_max=1000.0, cs=[0.5, 0.3, 0.1],
            report=[1.0, 10.0, 100.0, 1000.0], seeds=[0, 1, 2, 3], finite_seeds=list(range(6)),
            n_samples_map=100_000, n_samples_finite=5000, marker_times=[1.0, 10.0, 100.0,
                                                                        1000.0])
QUICK = dict(FULL, N=60, K=3, M=1, alpha_max=10.0, cs=[0.5], report=[1.0, 10.0], seeds=[0],
             finite_seeds=[0, 1], n_samples_map=20_000, n_samples_finite=500,
             marker_times=[1.0, 10.0])


def _curve_rows(res, seed):
    out = []
    for arm in res.arms:
        E = np.asarray(res.eg[arm])
        out.append(dict(arm=arm, alpha=np.asarray(res.alpha[arm]).tolist(),
                        eg=(E if E.ndim == 1 else E).tolist(),
                        eg_ode=np.asarray(res.eg_ode[arm]).tolist() if arm in res.eg_ode
                        else None, seed=seed))
    return out


def compute(params: dict, cache_dir: Path | None, progress: bool = True) -> dict:
    p = params
    N, K, M = p["N"], p["K"], p["M"]
    arms = [(rule, c, rs) for rule, _, _ in RULES for c in p["cs"] for rs in (False, True)]
    base = {n: p[n] for n in ("N", "K", "M", "eta", "v_star", "alpha_max", "report")}
    rows, curves = [], {"limit": [], "finite": []}
    bar = _common.progress_bar(len(p["seeds"]) * len(arms), f"{NAME} limit", progress)
    for seed in p["seeds"]:
        init = OrderParams.random(N, K, M, v_star=p["v_star"], seed=seed)
        for n, (rule, c, rs) in enumerate(arms):
            key = dict(base, seed=seed, rule=rule, c=c, rescale=rs, dense=n == 0,
                       n_samples=p["n_samples_map"])

            def one(rule=rule, c=c, rs=rs, n=n, init=init, seed=seed):
                r = workflows.prune_at_init(init, rule, c, rescale=rs, eta=p["eta"],
                                            alpha_max=p["alpha_max"], report=p["report"],
                                            dense=n == 0, seed=seed,
                                            n_samples=p["n_samples_map"])
                return dict(table=r.table, curves=_curve_rows(r, seed))

            out = _cache.cached_json(cache_dir, f"{NAME}-limit", key, one)
            rows += [dict(r, seed=seed) for r in out["table"]]
            curves["limit"] += out["curves"]
            bar.update(1)
    bar.close()
    bar = _common.progress_bar(len(arms), f"{NAME} finite N={N}", progress)
    for n, (rule, c, rs) in enumerate(arms):
        key = dict(base, seeds=p["finite_seeds"], rule=rule, c=c, rescale=rs, dense=n == 0,
                   n_samples=p["n_samples_finite"], marker_times=p["marker_times"])

        def one(rule=rule, c=c, rs=rs, n=n):
            r = workflows.prune_at_init_finite(N, K, M, rule, c, rescale=rs,
                                               seeds=p["finite_seeds"], eta=p["eta"],
                                               alpha_max=p["alpha_max"], report=p["report"],
                                               v_star=p["v_star"], dense=n == 0,
                                               n_samples=p["n_samples_finite"],
                                               save_at=[0.0] + list(p["marker_times"]))
            return dict(table=r.table, curves=_curve_rows(r, None))

        out = _cache.cached_json(cache_dir, f"{NAME}-finite", key, one)
        rows += out["table"]
        curves["finite"] += out["curves"]
        bar.update(1)
    bar.close()
    for r in rows:  # the figure tables' common value column
        r["mean"] = r["eg"]
    return dict(figure=NAME, params=p, rows=rows, curves=curves,
                notes="eps_g (noiseless) at alpha after pruning the initial network. limit rows: "
                      "one per seed's initial order parameters (eg_se at alpha=0: coordinate "
                      "Monte Carlo of the map); finite rows: mean and standard error over seeds, "
                      "eg_ode = ODE from the same real masked starts, gap paired per seed.")


def _label(rule, c, rs):
    return f"{rule} c={c:.4g} {'rescale' if rs else 'plain'}"


def plot(data: dict, out_dir: Path) -> list[Path]:
    p, cv = data["params"], data["curves"]
    cs = p["cs"]
    fig, axes = subplots(1, len(cs), figsize=(4.4 * len(cs), 3.9), squeeze=False,
                             sharey=True)

    def draw(ax, arm, col, ls, mk, mfc, shift):
        lim = [x for x in cv["limit"] if x["arm"] == arm]
        if lim:
            a = np.array(lim[0]["alpha"])
            ax.plot(a[1:], np.mean([x["eg"] for x in lim], axis=0)[1:], ls, color=col, lw=1.3)
        fin = [x for x in cv["finite"] if x["arm"] == arm]
        if fin:
            a = np.array(fin[0]["alpha"])
            E = np.array(fin[0]["eg"])
            se = sem(E)
            ax.errorbar(a[1:] * shift, E.mean(0)[1:], yerr=se[1:], fmt=mk, ms=3.5, color=col,
                        mfc=mfc, capsize=2, lw=0.8)

    for j, c in enumerate(cs):
        ax = axes[0, j]
        draw(ax, "dense", "k", "-", "o", "k", 1.0)
        for n, (rule, col, _) in enumerate(RULES):
            draw(ax, _label(rule, c, False), col, "-", "o", col, 1.0 + 0.04 * (n + 1))
            draw(ax, _label(rule, c, True), col, "--", "s", "none", 1.0 - 0.03 * (n + 1))
        ax.set(xscale="log", yscale="log", xlabel=r"$\alpha$ (training from the pruned init)")
        ax.set_title(f"kept fraction c = {c:g}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel(r"$\epsilon_g$")
    handles = [Line2D([], [], color="k", label="dense")]
    handles += [Line2D([], [], color=col, label=lab) for _, col, lab in RULES]
    handles += [Line2D([], [], color="0.3", ls="--", label="+ row rescale (Hayou et al.)"),
                Line2D([], [], color="0.3", label="N→∞ (mean over seeds)"),
                Line2D([], [], color="0.3", ls="", marker="o",
                       label=f"finite N={p['N']} (±s.e.)")]
    fig.legend(handles=handles, loc="lower center", ncol=7, fontsize=7.5, frameon=False)
    fig.suptitle(f"Pruning at initialisation, then training (M={p['M']}, K={p['K']}, "
                 f"η={p['eta']}, v*={p['v_star']:g})", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return _common.save(fig, out_dir, NAME)
